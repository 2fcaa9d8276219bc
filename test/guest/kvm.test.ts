/**
 * The test guest on the KVM engine, through the CLI: the guest reports what the
 * machine handed it (guest/README.md) and these tests compare that with what
 * the host configured.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { e820Map, IOAPIC_ADDR, LAPIC_ADDR, MiB, PORT_ACPI_RESET, PORT_ACPI_SLEEP_CONTROL, PORT_ACPI_SLEEP_STATUS, ZERO_PAGE_ADDR, BOOT_STACK_TOP } from '../../src/arch/x86_64/layout.js';
import { buildGuests, guestToolchainMissing } from './build-guests.js';
import { cliMissing, describe, kvmMissing, runGuest, type GuestResult, type GuestRun } from './run-guest.js';
import { tgNumber, unescapeTg, type GuestReport } from './protocol.js';

const MEMORY = '256M';
const MEMORY_BYTES = 256 * MiB;
/** CLI exit status for a guest that crashed its CPU (src/cli/run.ts usage text). */
const EXIT_TRIPLE_FAULT = 3;

function unavailable(): string | undefined {
  return guestToolchainMissing() ?? kvmMissing() ?? cliMissing();
}

/** Runs the test guest; skips the test (by name, with the reason) when it cannot run here. */
async function run(t: TestContext, opts: Omit<GuestRun, 'kernel' | 'memory'> & { memory?: string }): Promise<GuestResult | undefined> {
  const why = unavailable();
  if (why) {
    t.skip(why);
    return undefined;
  }
  const r = await runGuest({ kernel: buildGuests().testGuest, memory: MEMORY, ...opts });
  t.diagnostic(`${opts.cmdline} cpus=${opts.cpus}: status ${r.status}, ${r.wallMs.toFixed(0)} ms wall`);
  assert.equal(r.timedOut, false, `the VM did not finish in time\n${describe(r)}`);
  return r;
}

function field(report: GuestReport, record: string, key: string): string {
  const v = report.one(record)[key];
  assert.notEqual(v, undefined, `TG ${record} has no ${key}\n${report.output}`);
  return v!;
}

test('guest on kvm: entered per the 64-bit boot protocol; cmdline, e820 and initrd arrive intact', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-initrd-'));
  try {
    const initrd = join(dir, 'initrd.bin');
    const bytes = randomBytes(12 * 1024 + 7);
    writeFileSync(initrd, bytes);
    const cmdline = 'console=ttyS0 tg.test=boot tg.exit=poweroff tg.note=back\\slash,~tilde "spaced value"';
    const r = await run(t, { cmdline, cpus: 1, initrd });
    if (!r) return;
    const ctx = describe(r);
    assert.equal(r.status, 0, ctx);

    const entry = r.report.one('entry');
    assert.equal(tgNumber(entry.rsi), BigInt(ZERO_PAGE_ADDR), 'RSI = boot_params');
    assert.equal(tgNumber(entry.rsp), BigInt(BOOT_STACK_TOP));
    assert.equal(entry.if, '0', 'interrupts off');
    assert.equal(entry.paging, '1');
    assert.equal(entry.long_mode, '1');

    const cl = r.report.one('cmdline');
    assert.equal(cl.terminated, '1', ctx);
    assert.equal(unescapeTg(cl.text!).toString('latin1'), cmdline, ctx);

    const expected = e820Map(MEMORY_BYTES).map((e) => ({ addr: BigInt(e.addr), size: BigInt(e.size), type: BigInt(e.type) }));
    assert.equal(Number(field(r.report, 'e820', 'entries')), expected.length, ctx);
    const seen = r.report.all('e820-entry').map(({ fields: f }) => ({ addr: tgNumber(f.addr), size: tgNumber(f.size), type: tgNumber(f.type) }));
    assert.deepEqual(seen, expected);

    const rd = r.report.one('initrd');
    assert.equal(rd.status, 'ok', ctx);
    assert.equal(Number(rd.size), bytes.length);
    assert.equal(tgNumber(rd.crc32), BigInt(crc32(bytes)), 'initrd bytes as the host file');
    assert.equal(tgNumber(rd.addr) % 4096n, 0n, 'initrd page aligned');
    assert.equal(r.report.one('exit').how, 'poweroff');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('guest on kvm: without --initrd the guest sees none', async (t) => {
  const r = await run(t, { cmdline: 'tg.test=boot tg.exit=poweroff', cpus: 1 });
  if (!r) return;
  assert.equal(r.status, 0, describe(r));
  assert.deepEqual(r.report.one('initrd'), { addr: '0x0', size: '0', status: 'absent' });
});

test('guest on kvm: ACPI tables are valid, hardware-reduced, with one LAPIC per vCPU', async (t) => {
  const cpus = 4;
  const r = await run(t, { cmdline: 'tg.test=acpi tg.exit=poweroff', cpus });
  if (!r) return;
  const ctx = describe(r);
  assert.equal(r.status, 0, ctx);
  const rsdp = r.report.one('acpi-rsdp');
  assert.equal(rsdp.source, 'boot_params', 'acpi_rsdp_addr set in boot_params');
  assert.equal(rsdp.signature, 'ok');
  assert.equal(rsdp.checksum, 'ok');
  assert.equal(rsdp.ext_checksum, 'ok');
  assert.equal(rsdp.revision, '2');
  const xsdt = r.report.one('acpi-xsdt');
  assert.equal(xsdt.status, 'ok', ctx);
  assert.equal(xsdt.checksum, 'ok');

  const tables = r.report.all('acpi-table').map((x) => x.fields);
  assert.equal(tables.length, Number(xsdt.entries));
  for (const tb of tables) {
    assert.equal(tb.status, 'ok', `table ${tb.index} at ${tb.addr}\n${ctx}`);
    assert.equal(tb.checksum, 'ok', `table ${tb.signature} checksum`);
  }
  const sigs = tables.map((x) => x.signature).sort();
  assert.ok(sigs.includes('FACP') && sigs.includes('APIC'), `XSDT lists ${sigs.join(',')}`);

  const fadt = r.report.one('acpi-fadt');
  assert.equal(fadt.status, 'ok', ctx);
  assert.equal(fadt.hw_reduced, '1');
  assert.equal(fadt.sleep_control, `io:0x${PORT_ACPI_SLEEP_CONTROL.toString(16)}`);
  assert.equal(fadt.sleep_status, `io:0x${PORT_ACPI_SLEEP_STATUS.toString(16)}`);
  assert.equal(fadt.reset_reg, `io:0x${PORT_ACPI_RESET.toString(16)}`);
  assert.equal(tgNumber(fadt.reset_value), 1n);

  const dsdt = r.report.one('acpi-dsdt');
  assert.equal(dsdt.status, 'ok', ctx);
  assert.equal(dsdt.checksum, 'ok');
  assert.ok(Number(dsdt.pnp0501) >= 1, 'COM1 described as PNP0501');
  assert.match(dsdt.lnro0005!, /^\d+$/, 'virtio-mmio devices counted');
  assert.equal(dsdt.s5, '5', '\\_S5 gives SLP_TYP 5');

  const madt = r.report.one('acpi-madt');
  assert.equal(Number(madt.lapics), cpus, ctx);
  assert.equal(madt.lapic_ids, '0,1,2,3');
  assert.equal(madt.bad_entries, '0');
  assert.equal(tgNumber(madt.lapic_addr), BigInt(LAPIC_ADDR));
  assert.equal(madt.ioapics, '1');
  assert.equal(tgNumber(madt.ioapic_addr), BigInt(IOAPIC_ADDR));
  assert.equal(madt.ioapic_gsi_base, '0');
});

for (const cpus of [1, 4]) {
  test(`guest on kvm: INIT-SIPI-SIPI brings up every AP (${cpus} vCPU${cpus > 1 ? 's' : ''})`, async (t) => {
    const r = await run(t, { cmdline: 'tg.test=smp tg.exit=poweroff', cpus });
    if (!r) return;
    const ctx = describe(r);
    assert.equal(r.status, 0, ctx);
    const smp = r.report.one('smp');
    assert.equal(smp.status, 'ok', ctx);
    assert.equal(smp.ipi_failures, '0');
    assert.equal(Number(smp.cpus_up), cpus, ctx);
    assert.equal(smp.apic_ids, Array.from({ length: cpus }, (_, i) => i).join(','));
    const aps = r.report.all('ap').map((a) => Number(a.fields.apic_id)).sort((a, b) => a - b);
    assert.deepEqual(aps, Array.from({ length: cpus - 1 }, (_, i) => i + 1));
  });
}

for (const how of ['reset', 'kbd-reset', 'poweroff']) {
  test(`guest on kvm: tg.exit=${how} ends the VM with status 0`, async (t) => {
    const r = await run(t, { cmdline: `tg.test=boot tg.exit=${how}`, cpus: 2 });
    if (!r) return;
    const ctx = describe(r);
    assert.equal(r.report.one('exit').how, how, ctx);
    assert.equal(r.report.has('exit-failed'), false, ctx);
    assert.equal(r.halted, false, ctx);
    assert.equal(r.status, 0, ctx);
  });
}

test('guest on kvm: a triple fault ends the VM with a non-zero status', async (t) => {
  const r = await run(t, { cmdline: 'tg.test=boot tg.exit=triple-fault', cpus: 1 });
  if (!r) return;
  const ctx = describe(r);
  assert.equal(r.report.one('exit').how, 'triple-fault', ctx);
  assert.equal(r.report.has('exit-failed'), false, ctx);
  assert.equal(r.status, EXIT_TRIPLE_FAULT, ctx);
  assert.match(r.stderr, /triple.fault/i, 'the VMM says why');
});

test('guest on kvm: an unexpected exception is reported with its vector', async (t) => {
  const r = await run(t, { cmdline: 'tg.test=exception', cpus: 1 });
  if (!r) return;
  const ctx = describe(r);
  const exc = r.report.one('exception');
  assert.equal(exc.vector, '6', `#UD from ud2\n${ctx}`);
  assert.equal(r.report.one('halt').reason, 'exception');
  assert.equal(r.halted, true);
});

test('guest on kvm: the guest refuses an unknown tg.exit before doing anything', async (t) => {
  const r = await run(t, { cmdline: 'tg.exit=explode', cpus: 1 });
  if (!r) return;
  const err = r.report.one('error');
  assert.deepEqual(err, { what: 'unknown-exit', value: 'explode' }, describe(r));
  assert.equal(r.report.one('halt').reason, 'bad-config');
  assert.equal(r.report.has('bootparams'), false);
});

test('guest on kvm: rep outsb to COM1 prints the same as one out per byte', async (t) => {
  const base = 'tg.test=boot,acpi tg.exit=poweroff';
  const a = await run(t, { cmdline: `${base} tg.console=outb`, cpus: 1 });
  if (!a) return;
  const b = await run(t, { cmdline: `${base} tg.console=outsb`, cpus: 1 });
  if (!b) return;
  // Everything but what depends on the command line's text and on timing.
  const stable = (r: GuestResult) => r.report.records
    .filter((x) => !['cmdline', 'config', 'done'].includes(x.record))
    .map(({ record, fields: { cmdline_size: _, ...rest } }) => `${record} ${JSON.stringify(rest)}`);
  assert.deepEqual(stable(b), stable(a), describe(b));
  assert.equal(b.status, 0, describe(b));
});
