/*
 * COM1 output and the TG line protocol (guest/README.md).
 *
 * The UART is written without programming the divisor or polling LSR.THRE:
 * the machine's 16550A takes a THR write at any time, and each extra register
 * access costs a VM exit (~11 µs here). Lines are built in a buffer and sent
 * under a spinlock so lines from several CPUs never interleave.
 */
#include "tg.h"

#define COM1_BASE	0x3f8
#define UART_THR	0	/* transmit holding register (DLAB = 0) */

static enum console_mode mode = CONSOLE_OUTB;
static volatile u32 console_lock;

static bool muted;
static char line[512];
static size_t line_len;

void console_set_mode(enum console_mode m) { mode = m; }

/* Drops TG lines while set: the tables are read for SMP and the exits even
 * when their report was not asked for. */
void tg_mute(bool on) { muted = on; }

static void uart_write(const char *s, size_t n)
{
	if (mode == CONSOLE_OUTSB) {
		/* One string instruction per chunk: KVM hands it to the VMM as a single
		 * port-I/O exit with count > 1. */
		__asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"((u16)(COM1_BASE + UART_THR)) : "memory");
		return;
	}
	while (n--)
		outb(COM1_BASE + UART_THR, (u8)*s++);
}

static void lock(void)
{
	while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE))
		while (console_lock)
			cpu_relax();
}

static void unlock(void) { __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE); }

void console_write(const char *s, size_t n)
{
	lock();
	uart_write(s, n);
	unlock();
}

void console_puts(const char *s) { console_write(s, strlen(s)); }

static void put(char c)
{
	if (line_len == sizeof(line)) {
		if (!muted)
			uart_write(line, line_len);
		line_len = 0;
	}
	line[line_len++] = c;
}

static void puts_raw(const char *s)
{
	while (*s)
		put(*s++);
}

static void put_hex(u64 v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 60;
	puts_raw("0x");
	while (shift > 0 && !((v >> shift) & 0xf))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		put(digits[(v >> shift) & 0xf]);
}

static void put_dec(u64 v)
{
	char buf[20];
	int n = 0;
	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		put(buf[--n]);
}

/* The lock is held from tg_begin to tg_end: the buffer is shared. */
void tg_begin(const char *record)
{
	lock();
	line_len = 0;
	puts_raw("TG ");
	puts_raw(record);
}

/* For exception handlers: the interrupted code may hold the lock; take it over. */
void tg_begin_forced(const char *record)
{
	__atomic_store_n(&console_lock, 1, __ATOMIC_SEQ_CST);
	muted = false;
	line_len = 0;
	puts_raw("TG ");
	puts_raw(record);
}

static void key(const char *k)
{
	put(' ');
	puts_raw(k);
	put('=');
}

void tg_hex(const char *k, u64 v) { key(k); put_hex(v); }
void tg_dec(const char *k, u64 v) { key(k); put_dec(v); }
void tg_word(const char *k, const char *v) { key(k); puts_raw(v); }

/* A comma-separated decimal list, "none" when empty. */
void tg_list(const char *k, const u32 *v, size_t n)
{
	key(k);
	if (!n)
		puts_raw("none");
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(',');
		put_dec(v[i]);
	}
}

/* Bytes 0x21..0x7e pass through except '\'; everything else becomes \xNN, so a
 * value never contains a space and the line splits on spaces. */
void tg_str(const char *k, const void *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const u8 *b = bytes;
	key(k);
	for (size_t i = 0; i < len; i++) {
		if (b[i] > 0x20 && b[i] < 0x7f && b[i] != '\\') {
			put((char)b[i]);
		} else {
			put('\\');
			put('x');
			put(digits[b[i] >> 4]);
			put(digits[b[i] & 0xf]);
		}
	}
}

void tg_end(void)
{
	put('\n');
	if (!muted)
		uart_write(line, line_len);
	line_len = 0;
	unlock();
}
