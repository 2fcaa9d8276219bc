/**
 * ACPI system description tables for a hardware-reduced x86-64 machine
 * (ACPI 6.4 chapter 5.2): RSDP, XSDT, FADT, MADT and DSDT, each built as a
 * byte array with a correct header and checksum. Addresses are guest-physical.
 *
 * Hardware-reduced (FADT flag HW_REDUCED_ACPI) means no PM1/GPE register
 * blocks, no SCI, no SMI command port and no FACS (§5.2.10: with the flag set
 * and both FIRMWARE_CTRL fields zero "there is no FACS available"). Linux's
 * ACPICA then skips the fixed hardware, sleeps through SLEEP_CONTROL_REG and
 * resets through RESET_REG.
 */
import {
  ACPI_RESET_VALUE,
  IOAPIC_ADDR,
  LAPIC_ADDR,
  PORT_ACPI_RESET,
  PORT_ACPI_SLEEP_CONTROL,
  PORT_ACPI_SLEEP_STATUS,
} from '../arch/x86_64/layout.js';

export class AcpiError extends Error {
  constructor(message: string) {
    super(`acpi: ${message}`);
    this.name = 'AcpiError';
  }
}

/** OEMID of every table and of the RSDP (6 bytes). */
export const OEM_ID = 'TYPEVR';
/** OEM revision of every table. */
export const OEM_REVISION = 1;
/** Creator ID: the vendor of the tool that built the table (4 bytes). */
export const CREATOR_ID = 'TYPV';
export const CREATOR_REVISION = 1;

/** Size of the common table header (§5.2.6). */
export const TABLE_HEADER_SIZE = 36;
/** Offset of the checksum byte in the common header. */
const HEADER_CHECKSUM = 9;

/** RSDP revision 2 (ACPI 2.0+): 36 bytes, with XsdtAddress and an extended checksum (§5.2.5.3). */
export const RSDP_REVISION = 2;
export const RSDP_SIZE = 36;
/** The first 20 bytes (ACPI 1.0 RSDP) carry their own checksum. */
const RSDP_V1_SIZE = 20;

/** XSDT revision (§5.2.8). */
export const XSDT_REVISION = 1;
/** FADT major revision 6, minor 4: the ACPI 6.4 layout, 276 bytes (§5.2.9). */
export const FADT_REVISION = 6;
export const FADT_MINOR_REVISION = 4;
export const FADT_SIZE = 276;
/** MADT revision 5 (ACPI 6.3+, §5.2.12). */
export const MADT_REVISION = 5;
/** DSDT revision 2: integers in the definition block are 64 bits wide (§5.2.11.1). */
export const DSDT_REVISION = 2;

// FADT Flags (§5.2.9 Table 5.10).
/** WBINVD works (required of every ACPI 1.0+ processor). */
export const FADT_F_WBINVD = 1 << 0;
/** No fixed-feature power button (it is a control-method device or absent). */
export const FADT_F_PWR_BUTTON = 1 << 4;
/** No fixed-feature sleep button. */
export const FADT_F_SLP_BUTTON = 1 << 5;
/** RESET_REG is supported. */
export const FADT_F_RESET_REG_SUP = 1 << 10;
/** Hardware-reduced ACPI: no fixed hardware. */
export const FADT_F_HW_REDUCED_ACPI = 1 << 20;

// IA-PC Boot Architecture Flags (§5.2.9.3 Table 5.11).
/** LEGACY_DEVICES: user-visible ISA/LPC devices (Linux reads it only to keep PnP BIOS probing). */
export const IAPC_LEGACY_DEVICES = 1 << 0;
/** 8042: an 8042 keyboard controller is present. Linux marks the i8042 "firmware absent" without it (FADT rev >= 2). */
export const IAPC_8042 = 1 << 1;
/** VGA Not Present: do not probe VGA memory or ports. */
export const IAPC_VGA_NOT_PRESENT = 1 << 2;
/** MSI Not Supported. */
export const IAPC_MSI_NOT_SUPPORTED = 1 << 3;
/** CMOS RTC Not Present. */
export const IAPC_CMOS_RTC_NOT_PRESENT = 1 << 5;

/** Generic Address Structure address space IDs (§5.2.3.2). */
export const GAS_SYSTEM_IO = 1;
/** GAS access size 1: byte access. */
export const GAS_ACCESS_BYTE = 1;
export const GAS_SIZE = 12;

/** FADT Hypervisor Vendor Identity (offset 268): eight ASCII bytes. */
export const HYPERVISOR_VENDOR_ID = 'TYPEVISR';

// MADT (§5.2.12).
/** MADT flag PCAT_COMPAT: the machine also has dual 8259 PICs. We say no (see README). */
export const MADT_PCAT_COMPAT = 1 << 0;
/** Interrupt controller structure types and lengths. */
export const MADT_TYPE_LOCAL_APIC = 0;
export const MADT_LOCAL_APIC_SIZE = 8;
export const MADT_TYPE_IO_APIC = 1;
export const MADT_IO_APIC_SIZE = 12;
/** Processor Local APIC flag: Enabled. */
export const MADT_LAPIC_ENABLED = 1 << 0;
/**
 * IOAPIC ID reported in the MADT. It is the reset value of the IOAPIC ID
 * register (KVM's in-kernel IOAPIC starts at 0), so Linux finds the table and
 * the chip in agreement. IOAPIC IDs are a namespace apart from APIC IDs on
 * x86-64, so sharing 0 with the first CPU is harmless.
 */
export const IOAPIC_ID = 0;
/** xAPIC IDs are 8 bits and 0xFF is the broadcast ID: at most 255 CPUs (IDs 0..254) without x2APIC entries. */
export const MAX_CPUS = 255;

/** Sum of bytes mod 256. A valid table sums to zero. */
export function checksum(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

function ascii(dst: Uint8Array, at: number, text: string, width: number, what: string): void {
  if (text.length !== width || !/^[\x20-\x7e]*$/.test(text)) throw new AcpiError(`${what} "${text}" must be ${width} printable ASCII characters`);
  for (let i = 0; i < width; i++) dst[at + i] = text.charCodeAt(i);
}

function checkAddress(addr: number, what: string): void {
  if (!Number.isSafeInteger(addr) || addr < 0) throw new AcpiError(`${what} address ${addr} is not a non-negative safe integer`);
}

/**
 * A System Description Table: the 36-byte header (§5.2.6) followed by `body`,
 * checksummed so all bytes sum to zero. `oemTableId` is padded to 8 bytes.
 */
export function sdt(signature: string, revision: number, oemTableId: string, body: Uint8Array): Uint8Array {
  const table = new Uint8Array(TABLE_HEADER_SIZE + body.length);
  const dv = new DataView(table.buffer);
  ascii(table, 0, signature, 4, 'signature');
  dv.setUint32(4, table.length, true);
  dv.setUint8(8, revision);
  ascii(table, 10, OEM_ID, 6, 'OEM ID');
  ascii(table, 16, oemTableId.padEnd(8, ' '), 8, 'OEM table ID');
  dv.setUint32(24, OEM_REVISION, true);
  ascii(table, 28, CREATOR_ID, 4, 'creator ID');
  dv.setUint32(32, CREATOR_REVISION, true);
  table.set(body, TABLE_HEADER_SIZE);
  table[HEADER_CHECKSUM] = (0x100 - checksum(table)) & 0xff;
  return table;
}

/**
 * RSDP revision 2 (§5.2.5.3): "RSD PTR ", a checksum over the first 20 bytes,
 * no RSDT (RsdtAddress 0: an OS that reads revision 2 uses the XSDT), the
 * XSDT address and an extended checksum over all 36 bytes.
 */
export function buildRsdp(xsdtAddr: number): Uint8Array {
  checkAddress(xsdtAddr, 'XSDT');
  const r = new Uint8Array(RSDP_SIZE);
  const dv = new DataView(r.buffer);
  ascii(r, 0, 'RSD PTR ', 8, 'RSDP signature');
  ascii(r, 9, OEM_ID, 6, 'OEM ID');
  dv.setUint8(15, RSDP_REVISION);
  dv.setUint32(16, 0, true);
  dv.setUint32(20, RSDP_SIZE, true);
  dv.setBigUint64(24, BigInt(xsdtAddr), true);
  r[8] = (0x100 - checksum(r.subarray(0, RSDP_V1_SIZE))) & 0xff;
  r[32] = (0x100 - checksum(r)) & 0xff;
  return r;
}

/** XSDT (§5.2.8): the 64-bit addresses of every table except the DSDT (the FADT points to it). */
export function buildXsdt(tableAddrs: readonly number[]): Uint8Array {
  const body = new Uint8Array(8 * tableAddrs.length);
  const dv = new DataView(body.buffer);
  tableAddrs.forEach((a, i) => {
    checkAddress(a, 'XSDT entry');
    dv.setBigUint64(8 * i, BigInt(a), true);
  });
  return sdt('XSDT', XSDT_REVISION, 'TVXSDT', body);
}

/** Writes a Generic Address Structure (§5.2.3.2) for a byte-wide system-I/O register. */
function ioGas(dv: DataView, at: number, port: number): void {
  dv.setUint8(at, GAS_SYSTEM_IO);
  dv.setUint8(at + 1, 8);
  dv.setUint8(at + 2, 0);
  dv.setUint8(at + 3, GAS_ACCESS_BYTE);
  dv.setBigUint64(at + 4, BigInt(port), true);
}

export interface FadtOptions {
  /** Guest-physical address of the DSDT (X_DSDT). */
  dsdtAddr: number;
  /** An i8042 answers at ports 0x60/0x64 (IAPC 8042 flag). Default true. */
  i8042?: boolean;
  /** A CMOS RTC answers at ports 0x70/0x71 (clears IAPC CMOS RTC Not Present). Default true. */
  cmosRtc?: boolean;
}

// FADT field offsets (§5.2.9 Table 5.9) that we fill in.
/** CMOS index of the century byte (FADT offset 108; Linux's rtc-cmos reads the century there). */
const FADT_CENTURY = 108;
export const CMOS_CENTURY_INDEX = 0x32;
const FADT_IAPC_BOOT_ARCH = 109;
const FADT_FLAGS = 112;
const FADT_RESET_REG = 116;
const FADT_RESET_VALUE = 128;
const FADT_MINOR_VERSION = 131;
const FADT_X_DSDT = 140;
const FADT_SLEEP_CONTROL_REG = 244;
const FADT_SLEEP_STATUS_REG = 256;
const FADT_HYPERVISOR_VENDOR = 268;

/**
 * FADT 6.4, hardware-reduced. Everything a full-hardware FADT describes
 * (SCI_INT, SMI_CMD, PM1/PM2/PM timer/GPE blocks, FACS) stays zero. The
 * 32-bit DSDT field stays zero too: §5.2.9 wants it zero when X_DSDT is set.
 */
export function buildFadt(options: FadtOptions): Uint8Array {
  checkAddress(options.dsdtAddr, 'DSDT');
  const body = new Uint8Array(FADT_SIZE - TABLE_HEADER_SIZE);
  const dv = new DataView(body.buffer);
  const at = (offset: number): number => offset - TABLE_HEADER_SIZE;

  let bootArch = IAPC_VGA_NOT_PRESENT;
  if (options.i8042 ?? true) bootArch |= IAPC_8042;
  if (!(options.cmosRtc ?? true)) bootArch |= IAPC_CMOS_RTC_NOT_PRESENT;
  dv.setUint16(at(FADT_IAPC_BOOT_ARCH), bootArch, true);
  if (options.cmosRtc ?? true) body[at(FADT_CENTURY)] = CMOS_CENTURY_INDEX;
  dv.setUint32(at(FADT_FLAGS), FADT_F_WBINVD | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_RESET_REG_SUP | FADT_F_HW_REDUCED_ACPI, true);
  ioGas(dv, at(FADT_RESET_REG), PORT_ACPI_RESET);
  dv.setUint8(at(FADT_RESET_VALUE), ACPI_RESET_VALUE);
  dv.setUint8(at(FADT_MINOR_VERSION), FADT_MINOR_REVISION);
  dv.setBigUint64(at(FADT_X_DSDT), BigInt(options.dsdtAddr), true);
  ioGas(dv, at(FADT_SLEEP_CONTROL_REG), PORT_ACPI_SLEEP_CONTROL);
  ioGas(dv, at(FADT_SLEEP_STATUS_REG), PORT_ACPI_SLEEP_STATUS);
  for (let i = 0; i < 8; i++) body[at(FADT_HYPERVISOR_VENDOR) + i] = HYPERVISOR_VENDOR_ID.charCodeAt(i);
  return sdt('FACP', FADT_REVISION, 'TVFACP', body);
}

/**
 * MADT (§5.2.12): the local APIC address, one enabled Processor Local APIC
 * per vCPU (ACPI processor UID = APIC ID = index) and one I/O APIC with GSI
 * base 0. Flags are 0: no 8259 pair is offered to the guest. No Interrupt
 * Source Overrides: ISA IRQs map 1:1 onto GSIs with ISA's edge/active-high,
 * which is what the DSDT's descriptors say anyway.
 */
export function buildMadt(cpus: number): Uint8Array {
  if (!Number.isInteger(cpus) || cpus < 1) throw new AcpiError(`cpu count ${cpus} must be a positive integer`);
  if (cpus > MAX_CPUS) throw new AcpiError(`${cpus} CPUs: the MADT describes at most ${MAX_CPUS} xAPIC CPUs (x2APIC entries are not built)`);
  const body = new Uint8Array(8 + MADT_LOCAL_APIC_SIZE * cpus + MADT_IO_APIC_SIZE);
  const dv = new DataView(body.buffer);
  dv.setUint32(0, LAPIC_ADDR, true);
  dv.setUint32(4, 0, true);
  let p = 8;
  for (let i = 0; i < cpus; i++) {
    dv.setUint8(p, MADT_TYPE_LOCAL_APIC);
    dv.setUint8(p + 1, MADT_LOCAL_APIC_SIZE);
    dv.setUint8(p + 2, i);
    dv.setUint8(p + 3, i);
    dv.setUint32(p + 4, MADT_LAPIC_ENABLED, true);
    p += MADT_LOCAL_APIC_SIZE;
  }
  dv.setUint8(p, MADT_TYPE_IO_APIC);
  dv.setUint8(p + 1, MADT_IO_APIC_SIZE);
  dv.setUint8(p + 2, IOAPIC_ID);
  dv.setUint32(p + 4, IOAPIC_ADDR, true);
  dv.setUint32(p + 8, 0, true);
  return sdt('APIC', MADT_REVISION, 'TVMADT', body);
}

/** DSDT (§5.2.11.1): the header and a definition block of AML. */
export function buildDsdt(aml: Uint8Array): Uint8Array {
  return sdt('DSDT', DSDT_REVISION, 'TVDSDT', aml);
}
