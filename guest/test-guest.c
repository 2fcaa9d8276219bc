/*
 * typevisor's test guest: reports what the machine handed it, as TG lines on
 * COM1 (guest/README.md), then leaves the way the command line asks.
 *
 *   tg.test=boot,acpi,smp[,blk][,exception]   what to check and report (default: boot,acpi,smp)
 *   tg.exit=poweroff|reset|kbd-reset|triple-fault|halt   how to leave (default: poweroff)
 *   tg.console=outb|outsb               one OUT per byte, or one REP OUTSB per line
 */
#include "tg.h"

#define TG_VERSION "1"

/* virtio-blk.c: tg.test=blk. */
void blk_test(void);

/* Boot params, "zero page" (Documentation/arch/x86/zero-page.rst, boot.rst). */
#define BP_EXT_RAMDISK_IMAGE	0x0c0
#define BP_EXT_RAMDISK_SIZE	0x0c4
#define BP_EXT_CMD_LINE_PTR	0x0c8
#define BP_E820_ENTRIES		0x1e8	/* u8 */
#define BP_HDR_VERSION		0x206	/* u16 */
#define BP_HDR_MAGIC		0x202	/* "HdrS" */
#define BP_TYPE_OF_LOADER	0x210
#define BP_LOADFLAGS		0x211
#define BP_RAMDISK_IMAGE	0x218
#define BP_RAMDISK_SIZE		0x21c
#define BP_CMD_LINE_PTR		0x228
#define BP_CMDLINE_SIZE		0x238
#define BP_E820_TABLE		0x2d0	/* struct boot_e820_entry[128] */
#define E820_MAX_ENTRIES_ZEROPAGE 128
#define E820_ENTRY_SIZE		20	/* u64 addr, u64 size, u32 type */
/* We read at most this much command line (the machine caps it at 4 KiB too). */
#define CMDLINE_MAX		4096

/* i8042 (IBM PC AT technical reference): status port, command 0xfe pulses reset. */
#define I8042_STATUS		0x64
#define I8042_COMMAND		0x64
#define I8042_STATUS_IBF	(1u << 1)	/* input buffer full: controller busy */
#define I8042_CMD_RESET_PULSE	0xfe
#define I8042_WAIT_READS	1000

/* ACPI sleep control register (ACPI 6.5, 4.8.3.7): SLP_TYP bits 4:2, SLP_EN bit 5. */
#define SLP_TYP_SHIFT		2
#define SLP_EN			(1u << 5)
/* Used when the DSDT carries no \_S5 package; reported as s5_source=default. */
#define SLP_TYP_S5_DEFAULT	5

/* How long a requested exit may take before the guest reports it failed. */
#define EXIT_WAIT_TSC		1000000000UL
#define EXIT_WAIT_MAX_SPINS	100000000UL

#define CR0_PG			(1UL << 31)
#define EFER_LMA		(1UL << 10)
#define RFLAGS_IF		(1UL << 9)

#define IDT_TYPE_INTERRUPT_GATE	0x8e	/* present, DPL0, 64-bit interrupt gate */

static char cmdline[CMDLINE_MAX + 1];

static u32 rd32(const u8 *p) { return *(const u32 *)p; }
static u64 rd64(const u8 *p) { return *(const u64 *)p; }

static void idt_init(void)
{
	for (u32 v = 0; v < 32; v++) {
		u64 h = exc_stub_table[v];
		u8 *g = idt_table + 16 * v;
		*(u16 *)(g + 0) = (u16)h;
		*(u16 *)(g + 2) = TG_CS64;
		g[4] = 0;	/* no IST */
		g[5] = IDT_TYPE_INTERRUPT_GATE;
		*(u16 *)(g + 6) = (u16)(h >> 16);
		*(u32 *)(g + 8) = (u32)(h >> 32);
		*(u32 *)(g + 12) = 0;
	}
	load_idt();
}

static __attribute__((noreturn)) void halt_with(const char *reason)
{
	tg_begin("halt");
	tg_word("reason", reason);
	tg_end();
	halt_forever();
}

/* Frame built by entry.S: vector, error, then what the CPU pushed. */
void exception_handler(u64 *f)
{
	u64 cr2;
	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	tg_begin_forced("exception");
	tg_dec("vector", f[0]);
	tg_hex("error", f[1]);
	tg_hex("rip", f[2]);
	tg_hex("cs", f[3]);
	tg_hex("rflags", f[4]);
	tg_hex("rsp", f[5]);
	tg_hex("cr2", cr2);
	tg_end();
	halt_with("exception");
}

static void report_entry(void)
{
	const u64 *s = entry_state;
	tg_begin("entry");
	tg_hex("rsi", s[ES_RSI]);
	tg_hex("rsp", s[ES_RSP]);
	tg_hex("rflags", s[ES_RFLAGS]);
	tg_dec("if", !!(s[ES_RFLAGS] & RFLAGS_IF));
	tg_hex("cs", s[ES_CS]);
	tg_hex("ds", s[ES_DS]);
	tg_hex("ss", s[ES_SS]);
	tg_hex("cr0", s[ES_CR0]);
	tg_hex("cr3", s[ES_CR3]);
	tg_hex("cr4", s[ES_CR4]);
	tg_hex("efer", s[ES_EFER]);
	tg_dec("paging", !!(s[ES_CR0] & CR0_PG));
	tg_dec("long_mode", !!(s[ES_EFER] & EFER_LMA));
	tg_hex("gdt_base", s[ES_GDT_BASE]);
	tg_hex("gdt_limit", s[ES_GDT_LIMIT]);
	tg_end();
}

/* Copies the command line out of guest memory, bounded; returns its address. */
static u64 read_cmdline(const u8 *bp, bool *terminated)
{
	u64 addr = rd32(bp + BP_CMD_LINE_PTR) | (u64)rd32(bp + BP_EXT_CMD_LINE_PTR) << 32;
	size_t n = 0;
	*terminated = false;
	if (addr && range_mapped(addr, 1)) {
		const char *src = (const char *)addr;
		while (n < CMDLINE_MAX && range_mapped(addr + n, 1) && src[n]) {
			cmdline[n] = src[n];
			n++;
		}
		*terminated = n < CMDLINE_MAX && range_mapped(addr + n, 1);
	}
	cmdline[n] = 0;
	return addr;
}

static void report_boot_params(const u8 *bp, u64 cmdline_addr, bool terminated)
{
	bool hdrs = !memcmp(bp + BP_HDR_MAGIC, "HdrS", 4);
	tg_begin("bootparams");
	tg_hex("addr", (u64)bp);
	tg_word("header", hdrs ? "HdrS" : "none");
	tg_hex("version", *(const u16 *)(bp + BP_HDR_VERSION));
	tg_hex("loader", bp[BP_TYPE_OF_LOADER]);
	tg_hex("loadflags", bp[BP_LOADFLAGS]);
	tg_dec("cmdline_size", rd32(bp + BP_CMDLINE_SIZE));
	tg_end();

	tg_begin("cmdline");
	tg_hex("addr", cmdline_addr);
	tg_dec("length", strlen(cmdline));
	tg_dec("terminated", terminated);
	tg_str("text", cmdline, strlen(cmdline));
	tg_end();

	u32 n = bp[BP_E820_ENTRIES];
	tg_begin("e820");
	tg_dec("entries", n);
	tg_end();
	if (n > E820_MAX_ENTRIES_ZEROPAGE)
		n = E820_MAX_ENTRIES_ZEROPAGE;
	for (u32 i = 0; i < n; i++) {
		const u8 *e = bp + BP_E820_TABLE + E820_ENTRY_SIZE * i;
		tg_begin("e820-entry");
		tg_dec("index", i);
		tg_hex("addr", rd64(e));
		tg_hex("size", rd64(e + 8));
		tg_dec("type", rd32(e + 16));
		tg_end();
	}

	u64 addr = rd32(bp + BP_RAMDISK_IMAGE) | (u64)rd32(bp + BP_EXT_RAMDISK_IMAGE) << 32;
	u64 size = rd32(bp + BP_RAMDISK_SIZE) | (u64)rd32(bp + BP_EXT_RAMDISK_SIZE) << 32;
	tg_begin("initrd");
	tg_hex("addr", addr);
	tg_dec("size", size);
	if (!size) {
		tg_word("status", "absent");
	} else if (!range_mapped(addr, size)) {
		tg_word("status", "unmapped");
	} else {
		tg_word("status", "ok");
		tg_hex("crc32", crc32((const void *)addr, size));
	}
	tg_end();
}

static void wait_for_exit(const char *how)
{
	u64 start = rdtsc();
	for (u64 i = 0; i < EXIT_WAIT_MAX_SPINS && rdtsc() - start < EXIT_WAIT_TSC; i++)
		cpu_relax();
	tg_begin("exit-failed");
	tg_word("how", how);
	tg_end();
	halt_with("exit-failed");
}

static bool gas_write8(const struct acpi_gas *g, u8 v)
{
	if (g->space == 1 && g->address && g->address <= 0xffff) {
		outb((u16)g->address, v);
		return true;
	}
	if (g->space == 0 && g->address && range_mapped(g->address, 1)) {
		*(volatile u8 *)g->address = v;
		return true;
	}
	return false;
}

static void exit_begin(const char *how, const char *via, u64 value)
{
	tg_begin("exit");
	tg_word("how", how);
	tg_word("via", via);
	tg_hex("value", value);
	tg_end();
}

static bool is(const char *s, size_t len, const char *word)
{
	return len == strlen(word) && !memcmp(s, word, len);
}

static const char *const known_tests[] = { "boot", "acpi", "smp", "blk", "exception" };
static const char *const known_exits[] = { "poweroff", "reset", "kbd-reset", "triple-fault", "halt" };

static __attribute__((noreturn)) void leave(const char *how, size_t how_len, const struct acpi_info *acpi)
{
	if (is(how, how_len, "poweroff")) {
		u8 typ = acpi->s5_found ? acpi->slp_typ_s5 : SLP_TYP_S5_DEFAULT;
		u8 v = (u8)((typ << SLP_TYP_SHIFT) | SLP_EN);
		exit_begin("poweroff", acpi->s5_found ? "sleep_control" : "sleep_control,s5_source=default", v);
		if (!acpi->fadt_found || !gas_write8(&acpi->sleep_control, v))
			halt_with("no-sleep-control-register");
		wait_for_exit("poweroff");
	} else if (is(how, how_len, "reset")) {
		exit_begin("reset", "reset_reg", acpi->reset_value);
		if (!acpi->fadt_found || !gas_write8(&acpi->reset_reg, acpi->reset_value))
			halt_with("no-reset-register");
		wait_for_exit("reset");
	} else if (is(how, how_len, "kbd-reset")) {
		exit_begin("kbd-reset", "i8042", I8042_CMD_RESET_PULSE);
		for (u32 i = 0; i < I8042_WAIT_READS && (inb(I8042_STATUS) & I8042_STATUS_IBF); i++)
			;
		outb(I8042_COMMAND, I8042_CMD_RESET_PULSE);
		wait_for_exit("kbd-reset");
	} else if (is(how, how_len, "triple-fault")) {
		exit_begin("triple-fault", "null-idt", 0);
		load_null_idt();
		__asm__ volatile("ud2");
		wait_for_exit("triple-fault");
	}
	halt_with("requested");
}

/* Refuses a bad tg.test / tg.exit before doing anything, rather than skip silently. */
static void check_config(const char *tests, size_t tests_len, const char *how, size_t how_len)
{
	for (size_t i = 0; i < tests_len;) {
		size_t j = i;
		while (j < tests_len && tests[j] != ',')
			j++;
		bool known = false;
		for (size_t k = 0; k < ARRAY_SIZE(known_tests); k++)
			known |= is(tests + i, j - i, known_tests[k]);
		if (!known) {
			tg_begin("error");
			tg_word("what", "unknown-test");
			tg_str("value", tests + i, j - i);
			tg_end();
			halt_with("bad-config");
		}
		i = j + 1;
	}
	bool known = false;
	for (size_t k = 0; k < ARRAY_SIZE(known_exits); k++)
		known |= is(how, how_len, known_exits[k]);
	if (!known) {
		tg_begin("error");
		tg_word("what", "unknown-exit");
		tg_str("value", how, how_len);
		tg_end();
		halt_with("bad-config");
	}
}

void tg_main(const u8 *bp)
{
	u64 t0 = rdtsc();
	console_puts("typevisor test guest " TG_VERSION "\n");
	idt_init();
	report_entry();

	bool terminated;
	u64 cmdline_addr = read_cmdline(bp, &terminated);
	size_t len;
	const char *v = cmdline_value(cmdline, "tg.console", &len);
	if (v && is(v, len, "outsb"))
		console_set_mode(CONSOLE_OUTSB);

	const char *tests = "boot,acpi,smp";
	size_t tests_len = 13;
	v = cmdline_value(cmdline, "tg.test", &len);
	if (v) {
		tests = v;
		tests_len = len;
	}
	const char *how = "poweroff";
	size_t how_len = 8;
	v = cmdline_value(cmdline, "tg.exit", &len);
	if (v) {
		how = v;
		how_len = len;
	}
	tg_begin("config");
	tg_str("test", tests, tests_len);
	tg_str("exit", how, how_len);
	tg_end();
	check_config(tests, tests_len, how, how_len);

	if (list_has(tests, tests_len, "boot"))
		report_boot_params(bp, cmdline_addr, terminated);

	static struct acpi_info acpi;
	tg_mute(!list_has(tests, tests_len, "acpi"));
	acpi_probe(bp, &acpi);
	tg_mute(false);
	if (list_has(tests, tests_len, "smp"))
		smp_boot(&acpi, bp);
	if (list_has(tests, tests_len, "blk"))
		blk_test();
	if (list_has(tests, tests_len, "exception"))
		__asm__ volatile("ud2");

	tg_begin("done");
	tg_dec("tsc", rdtsc() - t0);
	tg_end();
	leave(how, how_len, &acpi);
}
