/* Freestanding basics: memory and string helpers, CRC-32, command-line lookup. */
#include "tg.h"

/* gcc may emit calls to these four even with -ffreestanding. */
void *memcpy(void *dst, const void *src, size_t n)
{
	u8 *d = dst;
	const u8 *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	u8 *d = dst;
	while (n--)
		*d++ = (u8)c;
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const u8 *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

/* Whether [addr, addr + len) lies inside our identity map, without overflow. */
bool range_mapped(u64 addr, u64 len)
{
	return addr < TG_MAPPED_LIMIT && len <= TG_MAPPED_LIMIT - addr;
}

/*
 * CRC-32 as zlib and IEEE 802.3 compute it (reflected polynomial 0xedb88320,
 * initial value and final xor 0xffffffff), so the host checks it with
 * zlib.crc32. Table driven: ~6 instructions a byte under an emulating KVM.
 */
#define CRC32_POLY_REFLECTED 0xedb88320u
static u32 crc_table[256];

u32 crc32(const void *data, size_t len)
{
	if (!crc_table[1]) {
		for (u32 i = 0; i < 256; i++) {
			u32 c = i;
			for (int k = 0; k < 8; k++)
				c = (c & 1) ? (c >> 1) ^ CRC32_POLY_REFLECTED : c >> 1;
			crc_table[i] = c;
		}
	}
	const u8 *p = data;
	u32 crc = 0xffffffffu;
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

u32 count_bytes(const u8 *hay, size_t hay_len, const void *needle, size_t needle_len)
{
	const u8 *n = needle;
	u32 count = 0;
	if (needle_len == 0 || needle_len > hay_len)
		return 0;
	for (size_t i = 0; i + needle_len <= hay_len; i++)
		if (hay[i] == n[0] && memcmp(hay + i, n, needle_len) == 0)
			count++;
	return count;
}

/* The command line is space separated; `key` matches only at a token start. */
const char *cmdline_value(const char *cmdline, const char *key, size_t *value_len)
{
	size_t klen = strlen(key);
	const char *p = cmdline;
	while (*p) {
		while (*p == ' ')
			p++;
		const char *tok = p;
		while (*p && *p != ' ')
			p++;
		if ((size_t)(p - tok) > klen && memcmp(tok, key, klen) == 0 && tok[klen] == '=') {
			*value_len = (size_t)(p - tok) - klen - 1;
			return tok + klen + 1;
		}
	}
	return NULL;
}

bool list_has(const char *list, size_t len, const char *word)
{
	size_t wlen = strlen(word);
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && list[j] != ',')
			j++;
		if (j - i == wlen && memcmp(list + i, word, wlen) == 0)
			return true;
		i = j + 1;
	}
	return false;
}
