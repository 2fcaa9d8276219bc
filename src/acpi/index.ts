/**
 * buildAcpi: lays out and writes the machine's ACPI tables into guest memory
 * inside [ACPI_ADDR, ACPI_ADDR + ACPI_SIZE). See README.md for the layout.
 */
import type { GuestMemory } from '../memory/index.js';
import { ACPI_ADDR, ACPI_SIZE } from '../arch/x86_64/layout.js';
import { scope, termList } from './aml.js';
import { sleepStatesAml } from './devices.js';
import { AcpiError, buildDsdt, buildFadt, buildMadt, buildRsdp, buildXsdt, FADT_SIZE, RSDP_SIZE, TABLE_HEADER_SIZE, type FadtOptions } from './tables.js';

export * from './aml.js';
export * from './devices.js';
export * from './tables.js';

/** Tables start on 16-byte boundaries (the RSDP must; the others follow suit). */
export const TABLE_ALIGN = 16;

export interface AcpiConfig {
  /** Number of vCPUs, 1..MAX_CPUS. */
  cpus: number;
  /** AML device nodes (Device(...) terms) to put under \_SB_. */
  devices: readonly Uint8Array[];
  /** IA-PC boot flags of the FADT; both default to present. */
  i8042?: FadtOptions['i8042'];
  cmosRtc?: FadtOptions['cmosRtc'];
}

export interface AcpiTableInfo {
  signature: string;
  addr: number;
  length: number;
}

export interface AcpiResult {
  /** Guest-physical address of the RSDP, for boot_params.acpi_rsdp_addr. */
  rsdpAddr: number;
  /** Where each table was written, in address order (RSDP first). */
  tables: AcpiTableInfo[];
}

/** The XSDT lists the FADT and the MADT. */
const XSDT_ENTRIES = 2;

const align = (n: number): number => Math.ceil(n / TABLE_ALIGN) * TABLE_ALIGN;

/**
 * Builds RSDP, XSDT, FADT, MADT and DSDT and writes them to guest memory.
 * Throws AcpiError when they do not fit the ACPI window or the window is not
 * RAM; nothing is written in either case.
 */
export function buildAcpi(memory: GuestMemory, config: AcpiConfig): AcpiResult {
  const dsdt = buildDsdt(termList([sleepStatesAml(), scope('\\_SB_', config.devices)]));
  const madt = buildMadt(config.cpus);

  const rsdpAddr = ACPI_ADDR;
  const xsdtAddr = align(rsdpAddr + RSDP_SIZE);
  const fadtAddr = align(xsdtAddr + TABLE_HEADER_SIZE + 8 * XSDT_ENTRIES);
  const madtAddr = align(fadtAddr + FADT_SIZE);
  const dsdtAddr = align(madtAddr + madt.length);
  const end = dsdtAddr + dsdt.length;
  if (end > ACPI_ADDR + ACPI_SIZE) {
    throw new AcpiError(`tables need ${end - ACPI_ADDR} bytes, more than the ${ACPI_SIZE}-byte window at 0x${ACPI_ADDR.toString(16)} (DSDT is ${dsdt.length} bytes)`);
  }
  if (!memory.isValid(ACPI_ADDR, end - ACPI_ADDR)) {
    throw new AcpiError(`guest RAM does not cover the ACPI tables at 0x${ACPI_ADDR.toString(16)}..0x${end.toString(16)}`);
  }

  const placed: { signature: string; addr: number; bytes: Uint8Array }[] = [
    { signature: 'RSD PTR ', addr: rsdpAddr, bytes: buildRsdp(xsdtAddr) },
    { signature: 'XSDT', addr: xsdtAddr, bytes: buildXsdt([fadtAddr, madtAddr]) },
    { signature: 'FACP', addr: fadtAddr, bytes: buildFadt({ dsdtAddr, i8042: config.i8042, cmosRtc: config.cmosRtc }) },
    { signature: 'APIC', addr: madtAddr, bytes: madt },
    { signature: 'DSDT', addr: dsdtAddr, bytes: dsdt },
  ];
  memory.fill(ACPI_ADDR, end - ACPI_ADDR, 0);
  for (const t of placed) memory.write(t.addr, t.bytes);
  return { rsdpAddr, tables: placed.map((t) => ({ signature: t.signature, addr: t.addr, length: t.bytes.length })) };
}
