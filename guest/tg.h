/*
 * typevisor test guest: shared declarations.
 * Freestanding: no libc; everything the guest needs is here.
 */
#ifndef TG_H
#define TG_H

/* Highest vCPU count the guest can track (AP stacks, ID table). */
#define TG_MAX_CPUS 64
/* Per-AP stack; the AP path is a few calls deep and prints one line. */
#define TG_AP_STACK_SIZE 4096
/*
 * Where the AP real-mode trampoline is copied: page aligned (the SIPI vector
 * is a page number), below 1 MiB (real mode), inside e820 RAM on our machine
 * and clear of the zero page (0x7000), boot page tables (0x9000..0xf000) and
 * command line (0x20000). The guest still checks the last two at run time.
 */
#define TG_TRAMPOLINE_ADDR 0x10000
/* GDT selectors (entry.S). */
#define TG_CS64 0x08
#define TG_DS 0x10
#define TG_CS32 0x18

/* Indices into entry_state[]: CPU state exactly as the loader handed it over. */
#define ES_RSI 0
#define ES_RSP 1
#define ES_RFLAGS 2
#define ES_CS 3
#define ES_DS 4
#define ES_SS 5
#define ES_CR0 6
#define ES_CR3 7
#define ES_CR4 8
#define ES_EFER 9
#define ES_GDT_BASE 10
#define ES_GDT_LIMIT 11
#define ES_COUNT 12

#ifndef __ASSEMBLER__
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef unsigned long size_t;
typedef long i64;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Everything below 4 GiB is identity mapped by our own page tables (entry.S). */
#define TG_MAPPED_LIMIT 0x100000000UL

/* ---- port I/O and CPU helpers ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}
static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}
static inline u32 mmio_read32(u64 addr) { return *(volatile u32 *)addr; }
static inline void mmio_write32(u64 addr, u32 v) { *(volatile u32 *)addr = v; }
__attribute__((noreturn)) void halt_forever(void);

/* ---- tg.c: memory, strings, checksums ---- */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
bool range_mapped(u64 addr, u64 len);
u32 crc32(const void *data, size_t len);
/* Counts occurrences of `needle` in `hay`. */
u32 count_bytes(const u8 *hay, size_t hay_len, const void *needle, size_t needle_len);
/* Finds `key=` as a whole token of the command line; returns the value, or NULL. */
const char *cmdline_value(const char *cmdline, const char *key, size_t *value_len);
/* Whether the comma-separated list [list, list+len) contains `word`. */
bool list_has(const char *list, size_t len, const char *word);

/* ---- console.c: COM1 output and the TG line protocol ---- */
enum console_mode { CONSOLE_OUTB, CONSOLE_OUTSB };
void console_set_mode(enum console_mode mode);
void tg_mute(bool on);
void console_write(const char *s, size_t n);
void console_puts(const char *s);
/* One protocol line: "TG <record> key=value ...\n", emitted atomically across CPUs. */
void tg_begin(const char *record);
void tg_begin_forced(const char *record);
void tg_hex(const char *key, u64 value);
void tg_dec(const char *key, u64 value);
void tg_word(const char *key, const char *value);
void tg_list(const char *key, const u32 *values, size_t n);
void tg_str(const char *key, const void *bytes, size_t len);
void tg_end(void);

/* ---- acpi.c ---- */
struct acpi_gas {
	u8 space;	/* 0 = system memory, 1 = system I/O */
	u8 bit_width;
	u8 bit_offset;
	u8 access_size;
	u64 address;
} __attribute__((packed));

struct acpi_info {
	bool found;
	bool fadt_found;
	struct acpi_gas reset_reg;
	u8 reset_value;
	struct acpi_gas sleep_control;
	bool s5_found;
	u8 slp_typ_s5;
	u32 lapic_count;
	u32 lapic_ids[TG_MAX_CPUS];
	u32 lapic_addr;
};
void acpi_probe(const u8 *boot_params, struct acpi_info *out);

/* ---- smp.c ---- */
void smp_boot(const struct acpi_info *acpi, const u8 *boot_params);
void ap_main(u32 ticket);

/* ---- entry.S ---- */
extern const u8 trampoline_start[], trampoline_end[];
extern u8 idt_table[];
void load_idt(void);
void load_null_idt(void);
extern const u64 exc_stub_table[32];
extern u64 entry_state[ES_COUNT];
void exception_handler(u64 *frame);

#endif /* __ASSEMBLER__ */
#endif
