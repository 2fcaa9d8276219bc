/**
 * The x86-64 machine's fixed addresses, in one place.
 *
 * Guest-physical map (RAM is mapped from 0; the 32-bit hole below 4 GiB holds
 * device MMIO and the interrupt controllers; RAM beyond the hole continues at 4 GiB):
 *
 *   0x0000_0000  real-mode IVT / BDA (RAM, reserved in e820 up to 0x1000)
 *   0x0000_0500  boot GDT (GDT_ADDR)
 *   0x0000_7000  boot_params, the "zero page" (ZERO_PAGE_ADDR)
 *   0x0000_8ff0  initial stack top for the boot CPU (BOOT_STACK_TOP)
 *   0x0000_9000  boot page tables: PML4, PDPT, 4 PDs (PAGE_TABLES_ADDR .. +0x6000)
 *   0x0002_0000  kernel command line (CMDLINE_ADDR, CMDLINE_MAX bytes)
 *   0x0009_fc00  EBDA .. 1 MiB: legacy hole (reserved in e820)
 *   0x000e_0000  ACPI tables (ACPI_ADDR .. +ACPI_SIZE, inside the legacy hole)
 *   0x0010_0000  HIMEM_START: bzImage protected-mode kernel default load address
 *   ...          kernel (vmlinux PT_LOADs at their physical addresses, typically 16 MiB)
 *   below RAM top (< 4 GiB): initrd, placed as high as the kernel allows
 *   0xd000_0000  MMIO_START: virtio-mmio slots, 4 KiB each
 *   0xfec0_0000  IOAPIC
 *   0xfee0_0000  local APIC
 *   0x1_0000_0000  RAM above the hole
 */

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export const PAGE_SIZE = 0x1000;

/** Boot GDT: null, unused, __BOOT_CS 0x10, __BOOT_DS 0x18 (32 bytes, as the 64-bit boot protocol asks; TR keeps its reset state). */
export const GDT_ADDR = 0x500;
export const IDT_ADDR = 0x520;
export const ZERO_PAGE_ADDR = 0x7000;
export const BOOT_STACK_TOP = 0x8ff0;
/** PML4 at +0, PDPT at +0x1000, page directories at +0x2000.. (identity map of the first 4 GiB with 2 MiB pages). */
export const PAGE_TABLES_ADDR = 0x9000;
export const PAGE_TABLES_SIZE = 0x6000;
export const CMDLINE_ADDR = 0x20000;
/** Boot protocol 2.06+ allows cmdline_size from the setup header; we cap lower. */
export const CMDLINE_MAX = 4096;

/** Start of the Extended BIOS Data Area: RAM below is usable, from here to 1 MiB is reserved. */
export const EBDA_START = 0x9fc00;
export const ACPI_ADDR = 0xe0000;
export const ACPI_SIZE = 0x20000;

export const HIMEM_START = 0x100000;

/** The 32-bit MMIO hole: RAM stops here and resumes at 4 GiB. */
export const MMIO_HOLE_START = 0xc000_0000;
export const MMIO_HOLE_END = 0x1_0000_0000;

/** Virtio-mmio device slots. */
export const MMIO_START = 0xd000_0000;
export const MMIO_SLOT_SIZE = 0x1000;
export const MMIO_SLOTS = 32;

export const IOAPIC_ADDR = 0xfec0_0000;
export const LAPIC_ADDR = 0xfee0_0000;

/** RAM above the 32-bit hole starts here. */
export const HIGH_RAM_START = 0x1_0000_0000;

/** ISA IRQs of the legacy devices (identity-mapped to IOAPIC pins / GSIs). */
export const IRQ_KEYBOARD = 1;
export const IRQ_COM1 = 4;
export const IRQ_RTC = 8;
/** GSIs handed to virtio-mmio slots, in order. The IOAPIC has 24 pins. */
export const IRQ_DEVICE_FIRST = 5;
export const IRQ_DEVICE_LAST = 23;
export const IOAPIC_PINS = 24;

/** Legacy port-I/O devices. */
export const PORT_COM1 = 0x3f8;
export const PORT_I8042_DATA = 0x60;
export const PORT_I8042_CMD = 0x64;
export const PORT_RTC = 0x70;
/** ACPI hardware-reduced sleep control / status and reset registers (FADT points here). */
export const PORT_ACPI_SLEEP_CONTROL = 0x600;
export const PORT_ACPI_SLEEP_STATUS = 0x601;
export const PORT_ACPI_RESET = 0x602;
/** Value the guest writes to PORT_ACPI_RESET to reset (FADT RESET_VALUE). */
export const ACPI_RESET_VALUE = 0x1;

/** Guest RAM ranges for `memBytes` of RAM: low RAM up to the MMIO hole, the rest above 4 GiB. */
export function ramRanges(memBytes: number): { base: number; size: number }[] {
  if (memBytes <= MMIO_HOLE_START) return [{ base: 0, size: memBytes }];
  return [
    { base: 0, size: MMIO_HOLE_START },
    { base: HIGH_RAM_START, size: memBytes - MMIO_HOLE_START },
  ];
}

export type E820Type = 1 /* RAM */ | 2 /* reserved */ | 3 /* ACPI reclaimable */;
export interface E820Entry {
  addr: number;
  size: number;
  type: E820Type;
}

/** The e820 map the guest sees for `memBytes` of RAM. */
export function e820Map(memBytes: number): E820Entry[] {
  const out: E820Entry[] = [{ addr: 0, size: EBDA_START, type: 1 }];
  out.push({ addr: EBDA_START, size: HIMEM_START - EBDA_START, type: 2 });
  const lowTop = Math.min(memBytes, MMIO_HOLE_START);
  if (lowTop > HIMEM_START) out.push({ addr: HIMEM_START, size: lowTop - HIMEM_START, type: 1 });
  if (memBytes > MMIO_HOLE_START) out.push({ addr: HIGH_RAM_START, size: memBytes - MMIO_HOLE_START, type: 1 });
  return out;
}

/** Guest RAM must hold the boot structures, a kernel and some working room. */
export const MIN_MEMORY = 16 * MiB;
