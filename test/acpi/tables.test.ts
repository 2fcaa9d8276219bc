import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocateGuestMemory, heapBacking, GuestMemory } from '../../src/memory/index.js';
import { ACPI_ADDR, ACPI_SIZE, IOAPIC_ADDR, LAPIC_ADDR, MiB, PORT_ACPI_RESET, PORT_ACPI_SLEEP_CONTROL, PORT_ACPI_SLEEP_STATUS, ramRanges } from '../../src/arch/x86_64/layout.js';
import {
  AcpiError,
  AmlError,
  buildAcpi,
  buildFadt,
  buildMadt,
  buildRsdp,
  checksum,
  com1Aml,
  FADT_F_HW_REDUCED_ACPI,
  FADT_F_RESET_REG_SUP,
  IAPC_8042,
  IAPC_CMOS_RTC_NOT_PRESENT,
  i8042Aml,
  S5_SLEEP_CONTROL_VALUE,
  S5_SLP_TYP,
  sdt,
  sleepTypeOf,
  virtioMmioAml,
  type AcpiResult,
} from '../../src/acpi/index.js';

function memory(): GuestMemory {
  return allocateGuestMemory(ramRanges(2 * MiB), heapBacking);
}

function table(m: GuestMemory, r: AcpiResult, signature: string): { addr: number; bytes: Uint8Array; dv: DataView } {
  const t = r.tables.find((x) => x.signature === signature);
  assert.ok(t, `table ${signature} present`);
  const bytes = m.read(t.addr, t.length);
  return { addr: t.addr, bytes, dv: new DataView(bytes.buffer) };
}

const text = (b: Uint8Array, at: number, n: number): string => String.fromCharCode(...b.subarray(at, at + n));

function build(cpus = 2): { m: GuestMemory; r: AcpiResult } {
  const m = memory();
  const r = buildAcpi(m, { cpus, devices: [com1Aml(), i8042Aml(), virtioMmioAml({ uid: 0, base: 0xd000_0000, size: 0x1000, gsi: 5 })] });
  return { m, r };
}

test('acpi tables: every table checksums to zero and its length field matches', () => {
  const { m, r } = build();
  assert.deepEqual(r.tables.map((t) => t.signature), ['RSD PTR ', 'XSDT', 'FACP', 'APIC', 'DSDT']);
  for (const t of r.tables) {
    if (t.signature === 'RSD PTR ') continue;
    const bytes = m.read(t.addr, t.length);
    assert.equal(text(bytes, 0, 4), t.signature);
    assert.equal(new DataView(bytes.buffer).getUint32(4, true), t.length, `${t.signature} length`);
    assert.equal(checksum(bytes), 0, `${t.signature} checksum`);
    assert.equal(text(bytes, 10, 6), 'TYPEVR');
  }
});

test('acpi tables: the RSDP is at ACPI_ADDR, 16-byte aligned, with both checksums and the XSDT address', () => {
  const { m, r } = build();
  assert.equal(r.rsdpAddr, ACPI_ADDR);
  assert.equal(r.rsdpAddr % 16, 0);
  const rsdp = m.read(r.rsdpAddr, 36);
  const dv = new DataView(rsdp.buffer);
  assert.equal(text(rsdp, 0, 8), 'RSD PTR ');
  assert.equal(checksum(rsdp.subarray(0, 20)), 0);
  assert.equal(checksum(rsdp), 0);
  assert.equal(rsdp[15], 2);
  assert.equal(dv.getUint32(20, true), 36);
  const xsdt = r.tables.find((t) => t.signature === 'XSDT')!;
  assert.equal(Number(dv.getBigUint64(24, true)), xsdt.addr);
  assert.throws(() => buildRsdp(-1), AcpiError);
});

test('acpi tables: the XSDT lists FADT and MADT, the FADT points at the DSDT', () => {
  const { m, r } = build();
  const xsdt = table(m, r, 'XSDT');
  assert.equal(xsdt.bytes.length, 36 + 16);
  const addrs = [Number(xsdt.dv.getBigUint64(36, true)), Number(xsdt.dv.getBigUint64(44, true))];
  assert.deepEqual(addrs, [table(m, r, 'FACP').addr, table(m, r, 'APIC').addr]);
  const fadt = table(m, r, 'FACP');
  assert.equal(Number(fadt.dv.getBigUint64(140, true)), table(m, r, 'DSDT').addr);
  assert.equal(fadt.dv.getUint32(40, true), 0, '32-bit DSDT field stays zero when X_DSDT is set');
});

test('acpi tables: the FADT is a hardware-reduced 6.4 FADT with sleep and reset registers in system I/O', () => {
  const { m, r } = build();
  const { bytes, dv } = table(m, r, 'FACP');
  assert.equal(bytes.length, 276);
  assert.equal(bytes[8], 6);
  assert.equal(bytes[131], 4);
  const flags = dv.getUint32(112, true);
  assert.ok(flags & FADT_F_HW_REDUCED_ACPI);
  assert.ok(flags & FADT_F_RESET_REG_SUP);
  assert.equal(dv.getUint32(36, true), 0, 'no FACS');
  assert.equal(dv.getBigUint64(132, true), 0n, 'no X_FACS');
  assert.equal(dv.getUint16(46, true), 0, 'no SCI');
  const gas = (at: number) => ({ space: bytes[at], width: bytes[at + 1], offset: bytes[at + 2], access: bytes[at + 3], addr: Number(dv.getBigUint64(at + 4, true)) });
  assert.deepEqual(gas(116), { space: 1, width: 8, offset: 0, access: 1, addr: PORT_ACPI_RESET });
  assert.equal(bytes[128], 1);
  assert.deepEqual(gas(244), { space: 1, width: 8, offset: 0, access: 1, addr: PORT_ACPI_SLEEP_CONTROL });
  assert.deepEqual(gas(256), { space: 1, width: 8, offset: 0, access: 1, addr: PORT_ACPI_SLEEP_STATUS });
  const bootArch = dv.getUint16(109, true);
  assert.ok(bootArch & IAPC_8042);
  assert.equal(bootArch & IAPC_CMOS_RTC_NOT_PRESENT, 0);
  assert.equal(bytes[108], 0x32, 'CENTURY names the CMOS century byte');
  assert.equal(text(bytes, 268, 8), 'TYPEVISR');
});

test('acpi tables: the FADT boot flags follow the i8042 and RTC options', () => {
  const f = buildFadt({ dsdtAddr: 0x1000, i8042: false, cmosRtc: false });
  const bootArch = new DataView(f.buffer).getUint16(109, true);
  assert.equal(bootArch & IAPC_8042, 0);
  assert.ok(bootArch & IAPC_CMOS_RTC_NOT_PRESENT);
  assert.equal(f[108], 0, 'no century byte without an RTC');
  assert.equal(checksum(f), 0);
  assert.throws(() => buildFadt({ dsdtAddr: 1.5 }), AcpiError);
});

for (const n of [1, 4, 255]) {
  test(`acpi tables: the MADT of ${n} CPU(s) has ${n} enabled local APICs with IDs 0..${n - 1} and one IOAPIC`, () => {
    const madt = buildMadt(n);
    const dv = new DataView(madt.buffer);
    assert.equal(checksum(madt), 0);
    assert.equal(dv.getUint32(4, true), madt.length);
    assert.equal(dv.getUint32(36, true), LAPIC_ADDR);
    assert.equal(dv.getUint32(40, true), 0, 'no PCAT_COMPAT');
    const ids: number[] = [];
    let ioapics = 0;
    for (let p = 44; p < madt.length; p += madt[p + 1]!) {
      const type = madt[p]!;
      const len = madt[p + 1]!;
      assert.ok(len > 0 && p + len <= madt.length, 'entry inside the table');
      if (type === 0) {
        assert.equal(len, 8);
        assert.equal(madt[p + 2], madt[p + 3], 'processor UID = APIC ID');
        assert.equal(dv.getUint32(p + 4, true), 1, 'enabled');
        ids.push(madt[p + 3]!);
      } else if (type === 1) {
        assert.equal(len, 12);
        assert.equal(dv.getUint32(p + 4, true), IOAPIC_ADDR);
        assert.equal(dv.getUint32(p + 8, true), 0, 'GSI base 0');
        ioapics++;
      } else {
        assert.fail(`unexpected MADT entry type ${type}`);
      }
    }
    assert.deepEqual(ids, Array.from({ length: n }, (_, i) => i));
    assert.equal(ioapics, 1);
  });
}

test('acpi tables: CPU counts the MADT cannot describe are refused', () => {
  assert.throws(() => buildMadt(256), (e: unknown) => e instanceof AcpiError && /at most 255 xAPIC CPUs/.test(e.message));
  assert.throws(() => buildMadt(0), (e: unknown) => e instanceof AcpiError && /positive integer/.test(e.message));
  assert.throws(() => buildMadt(1.5), AcpiError);
  assert.throws(() => buildAcpi(memory(), { cpus: 300, devices: [] }), AcpiError);
});

test('acpi tables: header fields are validated', () => {
  assert.throws(() => sdt('FACPX', 1, 'X', new Uint8Array()), (e: unknown) => e instanceof AcpiError && /signature "FACPX"/.test(e.message));
  assert.throws(() => sdt('FACP', 1, 'TOOLONGID', new Uint8Array()), (e: unknown) => e instanceof AcpiError && /OEM table ID/.test(e.message));
});

test('acpi tables: all tables lie inside the ACPI window, 16-byte aligned, without overlap', () => {
  const { r } = build(255);
  let prevEnd = ACPI_ADDR;
  for (const t of r.tables) {
    assert.equal(t.addr % 16, 0, t.signature);
    assert.ok(t.addr >= prevEnd, `${t.signature} after the previous table`);
    prevEnd = t.addr + t.length;
  }
  assert.ok(prevEnd <= ACPI_ADDR + ACPI_SIZE);
});

test('acpi tables: a legacy scan of 0xE0000..0xFFFFF finds the RSDP too', () => {
  const { m, r } = build();
  let found = -1;
  for (let a = 0xe0000; a < 0x100000; a += 16) {
    if (text(m.read(a, 8), 0, 8) === 'RSD PTR ' && checksum(m.read(a, 20)) === 0) {
      found = a;
      break;
    }
  }
  assert.equal(found, r.rsdpAddr);
});

test('acpi tables: tables that overflow the window are refused and nothing is written', () => {
  const m = memory();
  m.fill(ACPI_ADDR, ACPI_SIZE, 0xaa);
  const huge = new Uint8Array(ACPI_SIZE);
  assert.throws(() => buildAcpi(m, { cpus: 1, devices: [huge] }), (e: unknown) => e instanceof AcpiError && /more than the 131072-byte window/.test(e.message));
  assert.ok(m.read(ACPI_ADDR, ACPI_SIZE).every((b) => b === 0xaa));
});

test('acpi tables: guest RAM that does not cover the window is refused', () => {
  const m = allocateGuestMemory([{ base: 0, size: 0x10000 }], heapBacking);
  assert.throws(() => buildAcpi(m, { cpus: 1, devices: [] }), (e: unknown) => e instanceof AcpiError && /does not cover/.test(e.message));
});

test('acpi devices: S5 is SLP_TYP 5, written with SLP_EN as 0x34', () => {
  assert.equal(S5_SLP_TYP, 5);
  assert.equal(S5_SLEEP_CONTROL_VALUE, 0x34);
  assert.equal(sleepTypeOf(0x34), 5);
  assert.equal(sleepTypeOf(0x14), undefined, 'SLP_EN clear');
  assert.equal(sleepTypeOf(0x20), 0);
});

test('acpi devices: virtio-mmio nodes refuse GSIs beyond the IOAPIC and bad slots', () => {
  assert.throws(() => virtioMmioAml({ uid: 0, base: 0xd000_0000, size: 0x1000, gsi: 24 }), (e: unknown) => e instanceof AmlError && /not an IOAPIC pin/.test(e.message));
  assert.throws(() => virtioMmioAml({ uid: 256, base: 0xd000_0000, size: 0x1000, gsi: 5 }), (e: unknown) => e instanceof AmlError && /uid 256/.test(e.message));
  assert.throws(() => virtioMmioAml({ uid: 1, base: 0xffff_f000, size: 0x2000, gsi: 5 }), (e: unknown) => e instanceof AmlError && /crosses 4 GiB/.test(e.message));
  const node = virtioMmioAml({ uid: 31, base: 0xd001_f000, size: 0x1000, gsi: 23 });
  assert.deepEqual([...node.subarray(0, 2)], [0x5b, 0x82]);
  assert.ok(String.fromCharCode(...node).includes('VR1F'));
});
