/*
 * Finds and checks the ACPI tables the machine built (ACPI 6.5 spec, chapter 5):
 * RSDP -> XSDT -> FADT (-> DSDT), MADT. The tables are treated as untrusted
 * input: every address and length is checked against our identity map and
 * table bounds before a byte is read, and a bad table is reported, not followed.
 */
#include "tg.h"

/* Boot params (Documentation/arch/x86/zero-page.rst). */
#define BP_ACPI_RSDP_ADDR	0x070	/* u64 */

/* RSDP (ACPI 6.5, 5.2.5.3). */
#define RSDP_SIGNATURE		"RSD PTR "
#define RSDP_V1_LENGTH		20	/* bytes covered by the first checksum */
#define RSDP_OEMID		9
#define RSDP_REVISION		15
#define RSDP_RSDT		16	/* u32 */
#define RSDP_LENGTH		20	/* u32, revision >= 2 */
#define RSDP_XSDT		24	/* u64, revision >= 2 */
#define RSDP_V2_MIN_LENGTH	36
/* Where a BIOS would leave the RSDP (5.2.5.1): checked only if boot_params has none. */
#define RSDP_SCAN_START		0xe0000
#define RSDP_SCAN_END		0x100000

/* System description table header (5.2.6). */
#define SDT_LENGTH		4	/* u32 */
#define SDT_REVISION		8
#define SDT_OEMID		10
#define SDT_HEADER_SIZE		36
/* No table of ours comes near this; a larger length is taken as corrupt. */
#define SDT_MAX_LENGTH		(1u << 20)

/* FADT (5.2.9). */
#define FADT_DSDT		40	/* u32 */
#define FADT_FLAGS		112	/* u32 */
#define FADT_HW_REDUCED_ACPI	(1u << 20)
#define FADT_RESET_REG		116	/* GAS */
#define FADT_RESET_VALUE	128
#define FADT_MINOR_VERSION	131
#define FADT_X_DSDT		140	/* u64 */
#define FADT_SLEEP_CONTROL_REG	244	/* GAS, ACPI 5.0+ */
#define FADT_SLEEP_STATUS_REG	256	/* GAS, ACPI 5.0+ */
#define FADT_HYPERVISOR_ID	268	/* 8 bytes, ACPI 6.0+ */
#define FADT_LENGTH_V5		268
#define FADT_LENGTH_V6		276

/* MADT (5.2.12). */
#define MADT_LAPIC_ADDR		36	/* u32 */
#define MADT_FLAGS		40	/* u32 */
#define MADT_ENTRIES		44
#define MADT_TYPE_LAPIC		0
#define MADT_TYPE_IOAPIC	1
#define MADT_TYPE_ISO		2	/* interrupt source override */
#define MADT_TYPE_LAPIC_NMI	4
#define MADT_TYPE_X2APIC	9
#define MADT_LAPIC_ENABLED	(1u << 0)
#define MADT_LAPIC_ONLINE_CAPABLE (1u << 1)

/* AML opcodes (ACPI 6.5, 20.3) used to read \_S5 and EISA IDs. */
#define AML_ZERO_OP		0x00
#define AML_ONE_OP		0x01
#define AML_BYTE_PREFIX		0x0a
#define AML_WORD_PREFIX		0x0b
#define AML_DWORD_PREFIX	0x0c
#define AML_PACKAGE_OP		0x12
/* "PNP0501" compressed as an EISA ID (20.2.5.4 / EisaId macro), little endian. */
static const u8 pnp0501_eisa[] = { AML_DWORD_PREFIX, 0x41, 0xd0, 0x05, 0x01 };

static u32 rd32(const u8 *p) { return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24; }
static u64 rd64(const u8 *p) { return rd32(p) | (u64)rd32(p + 4) << 32; }

static bool sum_ok(const u8 *p, size_t len)
{
	u8 sum = 0;
	while (len--)
		sum = (u8)(sum + *p++);
	return sum == 0;
}

static const char *ok(bool b) { return b ? "ok" : "bad"; }

/* A table's header is readable, its length sane and fully mapped: returns it, or NULL. */
static const u8 *sdt_at(u64 addr, u32 *len_out)
{
	if (!addr || !range_mapped(addr, SDT_HEADER_SIZE))
		return NULL;
	const u8 *t = (const u8 *)addr;
	u32 len = rd32(t + SDT_LENGTH);
	if (len < SDT_HEADER_SIZE || len > SDT_MAX_LENGTH || !range_mapped(addr, len))
		return NULL;
	*len_out = len;
	return t;
}

static void gas_word(const char *key, const u8 *gas)
{
	static char buf[32];
	u64 a = rd64(gas + 4);
	const char *space = gas[0] == 0 ? "mem" : gas[0] == 1 ? "io" : "other";
	size_t n = 0;
	if (!a) {
		tg_word(key, "none");
		return;
	}
	while (*space)
		buf[n++] = *space++;
	buf[n++] = ':';
	buf[n++] = '0';
	buf[n++] = 'x';
	int shift = 60;
	while (shift > 0 && !((a >> shift) & 0xf))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		buf[n++] = "0123456789abcdef"[(a >> shift) & 0xf];
	buf[n] = 0;
	tg_word(key, buf);
}

static void read_gas(const u8 *p, struct acpi_gas *g) { memcpy(g, p, sizeof(*g)); }

/* \_S5's first package element is SLP_TYP for S5 (7.4.2, "\_Sx"). */
static bool find_s5(const u8 *dsdt, u32 len, u8 *slp_typ)
{
	for (u32 i = SDT_HEADER_SIZE; i + 4 <= len; i++) {
		if (memcmp(dsdt + i, "_S5_", 4))
			continue;
		u32 p = i + 4;
		if (p >= len || dsdt[p] != AML_PACKAGE_OP)
			continue;
		p++;
		if (p >= len)
			return false;
		/* PkgLength: bits 7:6 of the lead byte count the bytes that follow (20.2.4). */
		p += 1 + (dsdt[p] >> 6);
		p++; /* NumElements */
		if (p >= len)
			return false;
		switch (dsdt[p]) {
		case AML_ZERO_OP: *slp_typ = 0; return true;
		case AML_ONE_OP: *slp_typ = 1; return true;
		case AML_BYTE_PREFIX:
		case AML_WORD_PREFIX:
		case AML_DWORD_PREFIX:
			if (p + 1 >= len)
				return false;
			*slp_typ = dsdt[p + 1];
			return true;
		default:
			return false;
		}
	}
	return false;
}

static void probe_dsdt(u64 addr, struct acpi_info *out)
{
	u32 len;
	const u8 *t = sdt_at(addr, &len);
	tg_begin("acpi-dsdt");
	tg_hex("addr", addr);
	if (!t || memcmp(t, "DSDT", 4)) {
		tg_word("status", t ? "bad-signature" : "unreadable");
		tg_end();
		return;
	}
	tg_word("status", "ok");
	tg_dec("length", len);
	tg_word("checksum", ok(sum_ok(t, len)));
	tg_dec("lnro0005", count_bytes(t, len, "LNRO0005", 8));
	tg_dec("pnp0501", count_bytes(t, len, "PNP0501", 7) + count_bytes(t, len, pnp0501_eisa, sizeof(pnp0501_eisa)));
	out->s5_found = find_s5(t, len, &out->slp_typ_s5);
	if (out->s5_found)
		tg_dec("s5", out->slp_typ_s5);
	else
		tg_word("s5", "none");
	tg_end();
}

static void probe_fadt(const u8 *t, u32 len, struct acpi_info *out)
{
	out->fadt_found = true;
	tg_begin("acpi-fadt");
	tg_dec("revision", t[SDT_REVISION]);
	tg_dec("length", len);
	if (len < FADT_LENGTH_V5) {
		/* No sleep registers before ACPI 5.0: nothing a hardware-reduced machine can use. */
		tg_word("status", "too-short");
		tg_end();
		return;
	}
	u32 flags = rd32(t + FADT_FLAGS);
	read_gas(t + FADT_RESET_REG, &out->reset_reg);
	out->reset_value = t[FADT_RESET_VALUE];
	read_gas(t + FADT_SLEEP_CONTROL_REG, &out->sleep_control);
	u64 dsdt = rd64(t + FADT_X_DSDT);
	if (!dsdt)
		dsdt = rd32(t + FADT_DSDT);
	tg_word("status", "ok");
	tg_dec("minor", t[FADT_MINOR_VERSION]);
	tg_hex("flags", flags);
	tg_dec("hw_reduced", !!(flags & FADT_HW_REDUCED_ACPI));
	tg_hex("dsdt", rd32(t + FADT_DSDT));
	tg_hex("x_dsdt", rd64(t + FADT_X_DSDT));
	gas_word("reset_reg", t + FADT_RESET_REG);
	tg_dec("reset_width", out->reset_reg.bit_width);
	tg_hex("reset_value", out->reset_value);
	gas_word("sleep_control", t + FADT_SLEEP_CONTROL_REG);
	gas_word("sleep_status", t + FADT_SLEEP_STATUS_REG);
	if (len >= FADT_LENGTH_V6)
		tg_str("hypervisor", t + FADT_HYPERVISOR_ID, 8);
	tg_end();
	probe_dsdt(dsdt, out);
}

static void probe_madt(const u8 *t, u32 len, struct acpi_info *out)
{
	u32 ioapics = 0, overrides = 0, nmis = 0, x2apics = 0, bad = 0, disabled = 0;
	u32 ioapic_id = 0, ioapic_addr = 0, ioapic_gsi = 0;
	out->lapic_addr = rd32(t + MADT_LAPIC_ADDR);
	for (u32 p = MADT_ENTRIES; p < len;) {
		/* Each entry's own length walks the list; a short or overrunning one ends it. */
		if (p + 2 > len || t[p + 1] < 2 || p + t[p + 1] > len) {
			bad++;
			break;
		}
		const u8 *e = t + p;
		u8 type = e[0], elen = e[1];
		if (type == MADT_TYPE_LAPIC && elen >= 8) {
			u32 flags = rd32(e + 4);
			if (flags & MADT_LAPIC_ENABLED) {
				if (out->lapic_count < TG_MAX_CPUS)
					out->lapic_ids[out->lapic_count] = e[3];
				out->lapic_count++;
			} else {
				disabled++;
			}
		} else if (type == MADT_TYPE_X2APIC && elen >= 16) {
			x2apics++;
		} else if (type == MADT_TYPE_IOAPIC && elen >= 12) {
			if (!ioapics) {
				ioapic_id = e[2];
				ioapic_addr = rd32(e + 4);
				ioapic_gsi = rd32(e + 8);
			}
			ioapics++;
		} else if (type == MADT_TYPE_ISO && elen >= 10) {
			overrides++;
		} else if (type == MADT_TYPE_LAPIC_NMI && elen >= 6) {
			nmis++;
		} else if (type <= MADT_TYPE_X2APIC && type != 3 && type != 5 && type != 6 && type != 7 && type != 8) {
			bad++; /* a known type that is too short */
		}
		p += elen;
	}
	tg_begin("acpi-madt");
	tg_hex("lapic_addr", out->lapic_addr);
	tg_hex("flags", rd32(t + MADT_FLAGS));
	tg_dec("lapics", out->lapic_count);
	tg_list("lapic_ids", out->lapic_ids, out->lapic_count < TG_MAX_CPUS ? out->lapic_count : TG_MAX_CPUS);
	tg_dec("lapics_disabled", disabled);
	tg_dec("x2apics", x2apics);
	tg_dec("ioapics", ioapics);
	tg_dec("ioapic_id", ioapic_id);
	tg_hex("ioapic_addr", ioapic_addr);
	tg_dec("ioapic_gsi_base", ioapic_gsi);
	tg_dec("overrides", overrides);
	tg_dec("nmis", nmis);
	tg_dec("bad_entries", bad);
	tg_end();
}

static u64 scan_rsdp(void)
{
	for (u64 a = RSDP_SCAN_START; a < RSDP_SCAN_END; a += 16)
		if (!memcmp((const void *)a, RSDP_SIGNATURE, 8) && sum_ok((const u8 *)a, RSDP_V1_LENGTH))
			return a;
	return 0;
}

void acpi_probe(const u8 *bp, struct acpi_info *out)
{
	const char *source = "boot_params";
	u64 rsdp_addr = rd64(bp + BP_ACPI_RSDP_ADDR);
	memset(out, 0, sizeof(*out));
	if (!rsdp_addr) {
		source = "scan";
		rsdp_addr = scan_rsdp();
	}
	tg_begin("acpi-rsdp");
	tg_hex("addr", rsdp_addr);
	tg_word("source", rsdp_addr ? source : "none");
	if (!rsdp_addr || !range_mapped(rsdp_addr, RSDP_V2_MIN_LENGTH)) {
		tg_word("status", rsdp_addr ? "unmapped" : "absent");
		tg_end();
		return;
	}
	const u8 *r = (const u8 *)rsdp_addr;
	bool sig = !memcmp(r, RSDP_SIGNATURE, 8);
	u8 rev = r[RSDP_REVISION];
	u32 rlen = rev >= 2 ? rd32(r + RSDP_LENGTH) : RSDP_V1_LENGTH;
	bool ext_ok = rev >= 2 && rlen >= RSDP_V2_MIN_LENGTH && rlen <= 4096 &&
		      range_mapped(rsdp_addr, rlen) && sum_ok(r, rlen);
	u64 xsdt_addr = rev >= 2 ? rd64(r + RSDP_XSDT) : 0;
	tg_word("status", "ok");
	tg_word("signature", ok(sig));
	tg_word("checksum", ok(sum_ok(r, RSDP_V1_LENGTH)));
	tg_dec("revision", rev);
	tg_dec("length", rlen);
	tg_word("ext_checksum", rev >= 2 ? ok(ext_ok) : "none");
	tg_str("oem", r + RSDP_OEMID, 6);
	tg_hex("rsdt", rd32(r + RSDP_RSDT));
	tg_hex("xsdt", xsdt_addr);
	tg_end();
	if (!sig)
		return;

	u32 xlen;
	const u8 *x = sdt_at(xsdt_addr, &xlen);
	tg_begin("acpi-xsdt");
	tg_hex("addr", xsdt_addr);
	if (!x || memcmp(x, "XSDT", 4)) {
		tg_word("status", x ? "bad-signature" : "unreadable");
		tg_end();
		return;
	}
	u32 entries = (xlen - SDT_HEADER_SIZE) / 8;
	tg_word("status", "ok");
	tg_dec("length", xlen);
	tg_dec("revision", x[SDT_REVISION]);
	tg_word("checksum", ok(sum_ok(x, xlen)));
	tg_str("oem", x + SDT_OEMID, 6);
	tg_dec("entries", entries);
	tg_end();
	out->found = true;

	for (u32 i = 0; i < entries; i++) {
		u64 addr = rd64(x + SDT_HEADER_SIZE + 8 * i);
		u32 len;
		const u8 *t = sdt_at(addr, &len);
		tg_begin("acpi-table");
		tg_dec("index", i);
		tg_hex("addr", addr);
		if (!t) {
			tg_word("status", "unreadable");
			tg_end();
			continue;
		}
		tg_word("status", "ok");
		tg_str("signature", t, 4);
		tg_dec("length", len);
		tg_dec("revision", t[SDT_REVISION]);
		tg_word("checksum", ok(sum_ok(t, len)));
		tg_end();
		if (!memcmp(t, "FACP", 4))
			probe_fadt(t, len, out);
		else if (!memcmp(t, "APIC", 4) && len >= MADT_ENTRIES)
			probe_madt(t, len, out);
	}
}
