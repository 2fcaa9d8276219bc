/**
 * The test guest on the soft engine, through the CLI: the same guest and the
 * same checks as on KVM (kvm.test.ts), run by typevisor's own CPU — long
 * mode, paging, IDT, port I/O, xAPIC, the real-mode AP trampoline.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { IOAPIC_ADDR, LAPIC_ADDR, ZERO_PAGE_ADDR } from '../../src/arch/x86_64/layout.js';
import { buildGuests, guestToolchainMissing } from './build-guests.js';
import { cliMissing, describe, runGuest, type GuestResult, type GuestRun } from './run-guest.js';
import { tgNumber } from './protocol.js';

const MEMORY = '256M';
/** CLI exit status for a guest that crashed its CPU (src/cli/run.ts usage text). */
const EXIT_TRIPLE_FAULT = 3;

async function run(t: TestContext, opts: Omit<GuestRun, 'kernel' | 'memory' | 'engine'>): Promise<GuestResult | undefined> {
  const why = guestToolchainMissing() ?? cliMissing();
  if (why) {
    t.skip(why);
    return undefined;
  }
  const r = await runGuest({ kernel: buildGuests().testGuest, memory: MEMORY, engine: 'soft', timeoutMs: 60_000, ...opts });
  t.diagnostic(`${opts.cmdline} cpus=${opts.cpus}: status ${r.status}, ${r.wallMs.toFixed(0)} ms wall`);
  assert.equal(r.timedOut, false, `the VM did not finish in time\n${describe(r)}`);
  return r;
}

test('guest on soft: entered per the 64-bit boot protocol, boot params and ACPI intact', async (t) => {
  const r = await run(t, { cmdline: 'console=ttyS0 tg.test=boot,acpi tg.exit=poweroff', cpus: 1 });
  if (!r) return;
  const ctx = describe(r);
  assert.equal(r.status, 0, ctx);
  const entry = r.report.one('entry');
  assert.equal(tgNumber(entry.rsi), BigInt(ZERO_PAGE_ADDR), 'RSI = boot_params');
  assert.equal(entry.if, '0');
  assert.equal(entry.paging, '1');
  assert.equal(entry.long_mode, '1');
  assert.equal(r.report.one('cmdline').terminated, '1', ctx);
  assert.equal(r.report.one('acpi-rsdp').checksum, 'ok', ctx);
  assert.equal(r.report.one('acpi-fadt').hw_reduced, '1', ctx);
  const madt = r.report.one('acpi-madt');
  assert.equal(tgNumber(madt.lapic_addr), BigInt(LAPIC_ADDR));
  assert.equal(tgNumber(madt.ioapic_addr), BigInt(IOAPIC_ADDR));
  assert.equal(r.report.one('exit').how, 'poweroff', ctx);
});

for (const cpus of [1, 4]) {
  test(`guest on soft: ${cpus} vCPU(s) start through INIT-SIPI-SIPI and the real-mode trampoline`, async (t) => {
    const r = await run(t, { cmdline: 'console=ttyS0 tg.test=acpi,smp tg.exit=poweroff', cpus });
    if (!r) return;
    const ctx = describe(r);
    assert.equal(r.status, 0, ctx);
    assert.equal(Number(r.report.one('acpi-madt').lapics), cpus, ctx);
    const smp = r.report.one('smp');
    assert.equal(smp.status, 'ok', ctx);
    assert.equal(Number(smp.cpus_up), cpus, ctx);
    assert.equal(smp.apic_ids, Array.from({ length: cpus }, (_, i) => i).join(','));
    const aps = r.report.all('ap').map((a) => Number(a.fields.apic_id)).sort((a, b) => a - b);
    assert.deepEqual(aps, Array.from({ length: cpus - 1 }, (_, i) => i + 1));
  });
}

test('guest on soft: an exception reaches the guest IDT with its vector, RIP and CS', async (t) => {
  const r = await run(t, { cmdline: 'console=ttyS0 tg.test=exception tg.exit=poweroff', cpus: 1 });
  if (!r) return;
  const ctx = describe(r);
  const e = r.report.one('exception');
  assert.equal(e.vector, '6', `ud2 raises #UD\n${ctx}`);
  assert.equal(e.cs, '0x8', ctx);
  assert.ok(tgNumber(e.rip) >= 0x1000000n, `RIP in the guest's text: ${e.rip}`);
  assert.equal(r.halted, true, ctx);
});

for (const how of ['poweroff', 'reset'] as const) {
  test(`guest on soft: tg.exit=${how} ends the VM with status 0`, async (t) => {
    const r = await run(t, { cmdline: `console=ttyS0 tg.test=boot tg.exit=${how}`, cpus: 1 });
    if (!r) return;
    const ctx = describe(r);
    assert.equal(r.report.one('exit').how, how, ctx);
    assert.equal(r.report.has('exit-failed'), false, ctx);
    assert.equal(r.halted, false, ctx);
    assert.equal(r.status, 0, ctx);
  });
}

test('guest on soft: a triple fault ends the VM with the triple-fault status and a report', async (t) => {
  const r = await run(t, { cmdline: 'console=ttyS0 tg.test=boot tg.exit=triple-fault', cpus: 1 });
  if (!r) return;
  const ctx = describe(r);
  assert.equal(r.report.one('exit').how, 'triple-fault', ctx);
  assert.equal(r.status, EXIT_TRIPLE_FAULT, ctx);
  assert.match(r.stderr, /triple fault/, ctx);
});

test('guest on soft: the console as one rep outsb per line', async (t) => {
  const r = await run(t, { cmdline: 'console=ttyS0 tg.test=boot tg.console=outsb tg.exit=poweroff', cpus: 1 });
  if (!r) return;
  const ctx = describe(r);
  assert.equal(r.status, 0, ctx);
  assert.equal(r.report.one('config').test, 'boot', ctx);
});
