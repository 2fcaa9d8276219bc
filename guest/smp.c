/*
 * Starts every application processor the MADT lists, the way an OS does on a
 * PC: INIT, then STARTUP IPIs through the xAPIC's ICR (Intel SDM Vol. 3A,
 * 10.6 "Issuing Interprocessor Interrupts" and 9.4.4 "MP Initialization
 * Example"), into a real-mode trampoline below 1 MiB (entry.S).
 */
#include "tg.h"

/* IA32_APIC_BASE (SDM 10.4.4): bit 11 = APIC global enable, bits 51:12 = base. */
#define MSR_APIC_BASE		0x1b
#define APIC_BASE_ENABLE	(1u << 11)
#define APIC_BASE_MASK		0xffffff000UL

/* xAPIC registers, offsets from the base (SDM Table 10-1). */
#define LAPIC_ID		0x020	/* bits 31:24 */
#define LAPIC_SVR		0x0f0	/* spurious-interrupt vector */
#define LAPIC_ICR_LO		0x300
#define LAPIC_ICR_HI		0x310	/* bits 31:24 = destination */
#define SVR_APIC_ENABLED	(1u << 8)
#define SPURIOUS_VECTOR		0xff
#define ICR_DM_INIT		(5u << 8)
#define ICR_DM_STARTUP		(6u << 8)
#define ICR_DELIVERY_PENDING	(1u << 12)
#define ICR_LEVEL_ASSERT	(1u << 14)
#define ICR_TRIGGER_LEVEL	(1u << 15)

/* Boot params fields that must not overlap the trampoline (zero-page.rst). */
#define BP_RAMDISK_IMAGE	0x218
#define BP_RAMDISK_SIZE		0x21c
#define BP_CMD_LINE_PTR		0x228
#define BP_EXT_RAMDISK_IMAGE	0x0c0
#define BP_EXT_RAMDISK_SIZE	0x0c4
#define BP_EXT_CMD_LINE_PTR	0x0c8

/*
 * How long the BSP waits for the APs, in TSC ticks: about a second at the
 * 2-3 GHz TSCs this runs on, whether the APs run natively or in KVM's
 * emulator. The iteration cap ends the wait should the TSC not advance.
 */
#define AP_WAIT_TSC		3000000000UL
#define AP_WAIT_MAX_SPINS	200000000UL
/* Bound on waiting for the ICR to accept an IPI. */
#define ICR_WAIT_SPINS		100000

static volatile u32 aps_up;
static volatile u32 ap_ids[TG_MAX_CPUS];
static u64 lapic_base;

static u32 lapic_read(u32 reg) { return mmio_read32(lapic_base + reg); }
static void lapic_write(u32 reg, u32 v) { mmio_write32(lapic_base + reg, v); }

static bool send_ipi(u32 apic_id, u32 icr_lo)
{
	lapic_write(LAPIC_ICR_HI, apic_id << 24);
	lapic_write(LAPIC_ICR_LO, icr_lo);
	for (u32 i = 0; i < ICR_WAIT_SPINS; i++)
		if (!(lapic_read(LAPIC_ICR_LO) & ICR_DELIVERY_PENDING))
			return true;
	return false;
}

static bool overlaps(u64 a, u64 alen, u64 b, u64 blen) { return alen && blen && a < b + blen && b < a + alen; }

void ap_main(u32 ticket)
{
	u32 id = lapic_read(LAPIC_ID) >> 24;
	ap_ids[ticket] = id;
	tg_begin("ap");
	tg_dec("ticket", ticket);
	tg_dec("apic_id", id);
	tg_end();
	__atomic_fetch_add(&aps_up, 1, __ATOMIC_RELEASE);
}

void smp_boot(const struct acpi_info *acpi, const u8 *bp)
{
	u64 apic_msr = rdmsr(MSR_APIC_BASE);
	lapic_base = apic_msr & APIC_BASE_MASK;
	u32 bsp_id = lapic_read(LAPIC_ID) >> 24;
	u32 listed = acpi->lapic_count < TG_MAX_CPUS ? acpi->lapic_count : TG_MAX_CPUS;
	u32 expected = 0, ipi_failures = 0;
	const char *status = "ok";
	size_t tramp_len = (size_t)(trampoline_end - trampoline_start);

	u64 cmdline = *(const u32 *)(bp + BP_CMD_LINE_PTR) | (u64) * (const u32 *)(bp + BP_EXT_CMD_LINE_PTR) << 32;
	u64 initrd = *(const u32 *)(bp + BP_RAMDISK_IMAGE) | (u64) * (const u32 *)(bp + BP_EXT_RAMDISK_IMAGE) << 32;
	u64 initrd_len = *(const u32 *)(bp + BP_RAMDISK_SIZE) | (u64) * (const u32 *)(bp + BP_EXT_RAMDISK_SIZE) << 32;

	if (!acpi->found || !acpi->lapic_count) {
		status = "no-madt";
	} else if (!(apic_msr & APIC_BASE_ENABLE)) {
		status = "apic-disabled";
	} else if (overlaps(TG_TRAMPOLINE_ADDR, tramp_len, (u64)bp, 0x1000) ||
		   overlaps(TG_TRAMPOLINE_ADDR, tramp_len, cmdline, 4096) ||
		   overlaps(TG_TRAMPOLINE_ADDR, tramp_len, initrd, initrd_len)) {
		status = "trampoline-overlap";
	} else {
		memcpy((void *)TG_TRAMPOLINE_ADDR, trampoline_start, tramp_len);
		lapic_write(LAPIC_SVR, SVR_APIC_ENABLED | SPURIOUS_VECTOR);
		for (u32 i = 0; i < listed; i++) {
			u32 id = acpi->lapic_ids[i];
			if (id == bsp_id)
				continue;
			expected++;
			/* INIT assert then de-assert, then two STARTUPs with vector = page number. */
			bool ok = send_ipi(id, ICR_DM_INIT | ICR_LEVEL_ASSERT | ICR_TRIGGER_LEVEL) &&
				  send_ipi(id, ICR_DM_INIT | ICR_TRIGGER_LEVEL) &&
				  send_ipi(id, ICR_DM_STARTUP | (TG_TRAMPOLINE_ADDR >> 12)) &&
				  send_ipi(id, ICR_DM_STARTUP | (TG_TRAMPOLINE_ADDR >> 12));
			if (!ok)
				ipi_failures++;
		}
	}

	u64 start = rdtsc(), waited = 0;
	for (u64 spins = 0; spins < AP_WAIT_MAX_SPINS; spins++) {
		waited = rdtsc() - start;
		if (__atomic_load_n(&aps_up, __ATOMIC_ACQUIRE) >= expected || waited > AP_WAIT_TSC)
			break;
		cpu_relax();
	}
	u32 up = __atomic_load_n(&aps_up, __ATOMIC_ACQUIRE);
	if (up < expected && status[0] == 'o')
		status = "timeout";

	u32 ids[TG_MAX_CPUS];
	u32 n = 0;
	ids[n++] = bsp_id;
	for (u32 i = 0; i < up && i < TG_MAX_CPUS - 1; i++)
		ids[n++] = ap_ids[i];
	for (u32 i = 1; i < n; i++)
		for (u32 j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			u32 t = ids[j];
			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}

	tg_begin("smp");
	tg_word("status", status);
	tg_hex("apic_base", apic_msr);
	tg_dec("bsp_apic_id", bsp_id);
	tg_dec("listed", acpi->lapic_count);
	tg_dec("expected", expected + 1);
	tg_dec("cpus_up", up + 1);
	tg_list("apic_ids", ids, n);
	tg_dec("ipi_failures", ipi_failures);
	tg_hex("trampoline", TG_TRAMPOLINE_ADDR);
	tg_dec("wait_tsc", waited);
	tg_end();
}
