import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ApicRouter, ApicStateError, DM_FIXED, DM_INIT, DM_LOWEST, DM_NMI, DM_STARTUP, ESR_ILLEGAL_REGISTER, ESR_RECEIVE_ILLEGAL_VECTOR,
  ESR_SEND_ILLEGAL_VECTOR, GuestTsc, Lapic, LAPIC_DEFAULT_BASE, REG_APR, REG_DFR, REG_EOI, REG_ESR, REG_ICR_HIGH, REG_ICR_LOW, REG_ID,
  REG_IRR, REG_ISR, REG_LDR, REG_LVT_ERROR, REG_LVT_LINT0, REG_LVT_LINT1, REG_LVT_PERF, REG_LVT_THERMAL, REG_LVT_TIMER, REG_PPR,
  REG_SVR, REG_TIMER_CURRENT, REG_TIMER_DIVIDE, REG_TIMER_INITIAL, REG_TMR, REG_TPR, REG_VERSION, type ApicMessage,
} from '../../../src/engine/soft/apic/index.js';
import { FakeClock, lapicRig, linuxApicSetup, read32, write32 } from './helpers.js';

const LOCAL_TIMER_VECTOR = 0xec; // Linux arch/x86/include/asm/irq_vectors.h
const LVT_TSC_DEADLINE = 2 << 17;
const LVT_PERIODIC = 1 << 17;
const MASKED = 1 << 16;

function fixed(vector: number, levelTriggered = false): ApicMessage {
  return { vector, mode: DM_FIXED, logical: false, destination: 0, levelTriggered, shorthand: 'none' };
}

function enabled(): ReturnType<typeof lapicRig> {
  const rig = lapicRig();
  linuxApicSetup(rig.lapic);
  return rig;
}

test('reset state: ID from the vCPU index, version 0x14 with 6 LVTs, everything masked, software-disabled', () => {
  const { lapic } = lapicRig({ index: 3 });
  assert.equal(read32(lapic, REG_ID), 3 << 24);
  assert.equal(read32(lapic, REG_VERSION), 0x00050014);
  assert.equal(read32(lapic, REG_SVR), 0xff);
  assert.equal(read32(lapic, REG_DFR), 0xffffffff);
  assert.equal(read32(lapic, REG_TPR), 0);
  for (const reg of [REG_LVT_TIMER, REG_LVT_THERMAL, REG_LVT_PERF, REG_LVT_LINT0, REG_LVT_LINT1, REG_LVT_ERROR]) {
    assert.equal(read32(lapic, reg), MASKED, `LVT 0x${reg.toString(16)}`);
  }
  assert.equal(lapic.softwareEnabled, false);
  assert.equal(lapic.readApicBase(), BigInt(LAPIC_DEFAULT_BASE) | 0x800n, 'AP: enabled, not BSP');
  assert.equal(lapicRig().lapic.readApicBase(), 0xfee00900n, 'BSP bit on vCPU 0');
  assert.throws(() => lapicRig({ index: 255 }), RangeError);
});

test('Linux boot: enable via SVR, LVT setup, TSC-deadline timer programmed, fired by the clock, acknowledged, EOI', () => {
  const { lapic, clock, tsc, wakes } = enabled();
  assert.equal(lapic.softwareEnabled, true);
  assert.equal(read32(lapic, REG_SVR), 0x1ff);
  assert.equal(read32(lapic, REG_LVT_LINT0), 0x10700);
  assert.equal(read32(lapic, REG_LVT_LINT1), 0x400);
  assert.equal(read32(lapic, REG_LVT_ERROR), 0xfe);
  assert.equal(read32(lapic, REG_ESR), 0, 'no error during setup');
  assert.equal(read32(lapic, REG_LDR), 1 << 24);
  assert.equal(read32(lapic, REG_PPR), 0x10);

  // lapic_timer_set_oneshot (TSC-deadline) then lapic_next_deadline: wrmsr(0x6E0, rdtsc() + delta).
  write32(lapic, REG_LVT_TIMER, LOCAL_TIMER_VECTOR | LVT_TSC_DEADLINE);
  const deadline = tsc.read() + 4_000_000n; // 4 ms at 1 GHz
  lapic.writeTscDeadline(deadline);
  assert.equal(lapic.readTscDeadline(), deadline);
  assert.equal(lapic.nextDeadlineNs(), clock.now + 4_000_000 + 1, 'the engine may sleep until then');

  clock.advance(3_999_000);
  lapic.poll(clock.now);
  assert.equal(lapic.hasInterrupt(), false, 'not yet');
  const wakesBefore = wakes.count;
  clock.advance(1_001);
  lapic.poll(clock.now);
  assert.ok(wakes.count > wakesBefore, 'expiry wakes the vCPU');
  assert.equal(lapic.hasInterrupt(), true);
  assert.equal(lapic.readTscDeadline(), 0n, 'IA32_TSC_DEADLINE clears when it fires');
  assert.equal(lapic.nextDeadlineNs(), undefined);
  assert.equal((read32(lapic, REG_IRR + 0x70) >>> (LOCAL_TIMER_VECTOR & 31)) & 1, 1);

  assert.equal(lapic.acknowledge(), LOCAL_TIMER_VECTOR);
  assert.equal(lapic.hasInterrupt(), false);
  assert.equal((read32(lapic, REG_ISR + 0x70) >>> (LOCAL_TIMER_VECTOR & 31)) & 1, 1);
  assert.equal(read32(lapic, REG_PPR), 0xe0, 'PPR takes the in-service class');
  write32(lapic, REG_EOI, 0);
  assert.equal(read32(lapic, REG_ISR + 0x70), 0);
  assert.equal(read32(lapic, REG_PPR), 0x10);
});

test('TSC deadline: ignored outside deadline mode, past deadlines fire at once, 0 disarms, mode changes disarm', () => {
  const { lapic, clock, tsc } = enabled();
  write32(lapic, REG_LVT_TIMER, 0x40); // one-shot mode
  lapic.writeTscDeadline(tsc.read() + 100n);
  assert.equal(lapic.readTscDeadline(), 0n, 'reads 0 outside TSC-deadline mode');

  write32(lapic, REG_LVT_TIMER, 0x40 | LVT_TSC_DEADLINE);
  assert.equal(lapic.readTscDeadline(), 0n, 'the write in one-shot mode was ignored');
  write32(lapic, REG_TIMER_INITIAL, 1000);
  assert.equal(read32(lapic, REG_TIMER_INITIAL), 0, 'initial count ignored in deadline mode');
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 0);

  clock.advance(1000);
  lapic.writeTscDeadline(tsc.read() - 5n);
  assert.equal(lapic.hasInterrupt(), true, 'a deadline already passed fires on the write');
  assert.equal(lapic.acknowledge(), 0x40);
  write32(lapic, REG_EOI, 0);

  lapic.writeTscDeadline(tsc.read() + 1000n);
  lapic.writeTscDeadline(0n);
  assert.equal(lapic.nextDeadlineNs(), undefined, '0 disarms');
  clock.advance(10_000);
  lapic.poll(clock.now);
  assert.equal(lapic.hasInterrupt(), false);

  lapic.writeTscDeadline(tsc.read() + 1000n);
  write32(lapic, REG_LVT_TIMER, 0x40); // leave deadline mode
  write32(lapic, REG_LVT_TIMER, 0x40 | LVT_TSC_DEADLINE);
  assert.equal(lapic.readTscDeadline(), 0n, 'leaving TSC-deadline mode disarmed it');
});

test('TSC deadline expiring while the LVT is masked is lost, and the engine is not asked to wake for it', () => {
  const { lapic, clock, tsc } = enabled();
  write32(lapic, REG_LVT_TIMER, 0x40 | LVT_TSC_DEADLINE | MASKED);
  lapic.writeTscDeadline(tsc.read() + 1000n);
  assert.equal(lapic.nextDeadlineNs(), undefined);
  clock.advance(2000);
  assert.equal(lapic.readTscDeadline(), 0n, 'expired (state settles on read)');
  write32(lapic, REG_LVT_TIMER, 0x40 | LVT_TSC_DEADLINE);
  lapic.poll(clock.now);
  assert.equal(lapic.hasInterrupt(), false);
});

test('one-shot timer: counts down at 25 MHz / divisor, fires once, current count reads 0 after', () => {
  const { lapic, clock } = enabled();
  write32(lapic, REG_TIMER_DIVIDE, 0x3); // divide by 16: 640 ns per count
  write32(lapic, REG_LVT_TIMER, 0x41);
  write32(lapic, REG_TIMER_INITIAL, 1000);
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 1000);
  assert.equal(lapic.nextDeadlineNs(), clock.now + 640_000);
  clock.advance(64_000);
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 900);
  clock.advance(576_000);
  lapic.poll(clock.now);
  assert.equal(lapic.acknowledge(), 0x41);
  write32(lapic, REG_EOI, 0);
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 0);
  clock.advance(10_000_000);
  lapic.poll(clock.now);
  assert.equal(lapic.hasInterrupt(), false, 'one-shot');
  assert.equal(lapic.nextDeadlineNs(), undefined);
  write32(lapic, REG_TIMER_INITIAL, 10);
  write32(lapic, REG_TIMER_INITIAL, 0);
  assert.equal(lapic.nextDeadlineNs(), undefined, 'writing 0 stops it');
});

test('divide configuration: every encoding, and a change keeps the current count', () => {
  const { lapic, clock } = enabled();
  const divisors = [[0x0, 2], [0x1, 4], [0x2, 8], [0x3, 16], [0x8, 32], [0x9, 64], [0xa, 128], [0xb, 1]] as const;
  write32(lapic, REG_LVT_TIMER, 0x41 | MASKED);
  for (const [config, div] of divisors) {
    write32(lapic, REG_TIMER_DIVIDE, config | 0xf0);
    assert.equal(read32(lapic, REG_TIMER_DIVIDE), config, 'only bits 0, 1 and 3 are kept');
    write32(lapic, REG_TIMER_INITIAL, 1000);
    clock.advance(40 * div * 10);
    assert.equal(read32(lapic, REG_TIMER_CURRENT), 990, `divide by ${div}`);
  }
  write32(lapic, REG_TIMER_DIVIDE, 0xb); // by 1: 40 ns per count
  write32(lapic, REG_TIMER_INITIAL, 1000);
  clock.advance(4000);
  write32(lapic, REG_TIMER_DIVIDE, 0x0); // by 2
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 900);
  clock.advance(8000);
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 800);
});

test('periodic timer: reloads, one interrupt however many periods a slow engine let pass, next deadline on the period grid', () => {
  const { lapic, clock } = enabled();
  write32(lapic, REG_TIMER_DIVIDE, 0xb); // 40 ns per count
  write32(lapic, REG_LVT_TIMER, 0x42 | LVT_PERIODIC);
  const start = clock.now;
  write32(lapic, REG_TIMER_INITIAL, 100); // 4 µs period
  clock.advance(4000);
  lapic.poll(clock.now);
  assert.equal(lapic.acknowledge(), 0x42);
  write32(lapic, REG_EOI, 0);
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 100, 'reloaded');
  clock.advance(1000);
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 75);
  clock.advance(30_000); // now at start + 35 µs: 8 more expiries
  lapic.poll(clock.now);
  assert.equal(lapic.acknowledge(), 0x42);
  assert.equal(lapic.hasInterrupt(), false, 'one IRR bit for many periods');
  write32(lapic, REG_EOI, 0);
  assert.equal(lapic.nextDeadlineNs(), start + 36_000);
  assert.equal(read32(lapic, REG_TIMER_CURRENT), 25);
});

test('a timer expiring while masked delivers nothing when unmasked later', () => {
  const { lapic, clock } = enabled();
  write32(lapic, REG_TIMER_DIVIDE, 0xb);
  write32(lapic, REG_LVT_TIMER, 0x43 | MASKED);
  write32(lapic, REG_TIMER_INITIAL, 10);
  assert.equal(lapic.nextDeadlineNs(), undefined, 'masked: no wake-up wanted');
  clock.advance(1000);
  write32(lapic, REG_LVT_TIMER, 0x43);
  lapic.poll(clock.now);
  assert.equal(lapic.hasInterrupt(), false);
});

test('priority: highest class first, same or lower class waits for EOI, higher class nests; EOI clears the highest ISR bit', () => {
  const { lapic } = enabled();
  for (const v of [0x31, 0x45, 0x50]) lapic.acceptInterrupt(v);
  assert.equal(lapic.acknowledge(), 0x50);
  lapic.acceptInterrupt(0x55);
  assert.equal(lapic.hasInterrupt(), false, '0x55 is in the in-service class 5');
  lapic.acceptInterrupt(0x61);
  assert.equal(lapic.acknowledge(), 0x61, 'class 6 preempts class 5');
  assert.equal(read32(lapic, REG_PPR), 0x60);
  write32(lapic, REG_EOI, 0); // ends 0x61
  assert.equal(read32(lapic, REG_ISR + 0x30), 0, '0x61 out of service');
  assert.equal((read32(lapic, REG_ISR + 0x20) >>> 16) & 1, 1, '0x50 still in service');
  assert.equal(lapic.hasInterrupt(), false);
  write32(lapic, REG_EOI, 0); // ends 0x50
  assert.deepEqual([lapic.acknowledge(), lapic.acknowledge(), lapic.acknowledge()], [0x55, 0xff, 0xff]);
  write32(lapic, REG_EOI, 0);
  assert.equal(lapic.acknowledge(), 0x45);
  write32(lapic, REG_EOI, 0);
  assert.equal(lapic.acknowledge(), 0x31);
  write32(lapic, REG_EOI, 0);
  assert.equal(lapic.acknowledge(), 0xff, 'nothing left: spurious');
  write32(lapic, REG_EOI, 0); // EOI with an empty ISR does nothing
  assert.equal(read32(lapic, REG_PPR), 0x10);
});

test('TPR masks classes at or below it; lowering it releases them and wakes the vCPU; CR8 is TPR[7:4]', () => {
  const { lapic, wakes } = enabled();
  write32(lapic, REG_TPR, 0x45);
  lapic.acceptInterrupt(0x4f);
  assert.equal(lapic.hasInterrupt(), false);
  assert.equal(read32(lapic, REG_PPR), 0x45);
  lapic.acceptInterrupt(0x50);
  assert.equal(lapic.acknowledge(), 0x50);
  write32(lapic, REG_EOI, 0);
  const w = wakes.count;
  write32(lapic, REG_TPR, 0x30);
  assert.ok(wakes.count > w);
  assert.equal(lapic.hasInterrupt(), true);
  assert.equal(lapic.readCr8(), 3);
  lapic.writeCr8(0x14);
  assert.equal(read32(lapic, REG_TPR), 0x40, 'CR8 writes bits 3:0 into TPR[7:4]');
  assert.equal(lapic.hasInterrupt(), false);
});

test('spurious vector: a request masked between INTR and INTA acknowledges as the SVR vector, ISR untouched', () => {
  const { lapic } = enabled();
  write32(lapic, REG_SVR, 0x1ef);
  lapic.acceptInterrupt(0x35);
  assert.equal(lapic.hasInterrupt(), true);
  write32(lapic, REG_TPR, 0x30);
  assert.equal(lapic.acknowledge(), 0xef);
  for (let i = 0; i < 8; i++) assert.equal(read32(lapic, REG_ISR + i * 0x10), 0);
});

test('APR follows the SDM formula', () => {
  const { lapic } = enabled();
  write32(lapic, REG_TPR, 0x20);
  assert.equal(read32(lapic, REG_APR), 0x20);
  lapic.acceptInterrupt(0x67);
  assert.equal(read32(lapic, REG_APR), 0x60, 'IRR class above TPR');
});

test('software-disabled: fixed interrupts refused, LVT masks stick, NMI/INIT/SIPI still accepted; disabling masks every LVT', () => {
  const { lapic } = lapicRig();
  assert.equal(lapic.acceptInterrupt(0x40), false);
  write32(lapic, REG_LVT_TIMER, 0x40);
  assert.equal(read32(lapic, REG_LVT_TIMER), 0x40 | MASKED);
  assert.equal(lapic.accept({ ...fixed(0), mode: DM_NMI }), true);
  assert.equal(lapic.takeNmi(), true);
  assert.equal(lapic.takeNmi(), false);

  linuxApicSetup(lapic);
  write32(lapic, REG_LVT_TIMER, 0x40);
  lapic.acceptInterrupt(0x40);
  write32(lapic, REG_SVR, 0xff); // software disable
  assert.equal(lapic.hasInterrupt(), false, 'held, not delivered');
  for (const reg of [REG_LVT_TIMER, REG_LVT_LINT1, REG_LVT_ERROR]) assert.equal(read32(lapic, reg) & MASKED, MASKED);
  write32(lapic, REG_SVR, 0x1ff);
  assert.equal(lapic.hasInterrupt(), true, 'IRR was kept');
  assert.equal(read32(lapic, REG_LVT_TIMER) & MASKED, MASKED, 're-enabling does not unmask');
});

test('level-triggered vectors set TMR and broadcast their EOI; edge ones clear TMR and do not', () => {
  const { lapic, eois } = enabled();
  lapic.accept(fixed(0x61, true));
  assert.equal((read32(lapic, REG_TMR + 0x30) >>> 1) & 1, 1);
  assert.equal(lapic.acknowledge(), 0x61);
  write32(lapic, REG_EOI, 0);
  assert.deepEqual(eois, [0x61]);
  lapic.accept(fixed(0x61, false));
  assert.equal(read32(lapic, REG_TMR + 0x30), 0);
  lapic.acknowledge();
  write32(lapic, REG_EOI, 0);
  assert.deepEqual(eois, [0x61]);
});

test('self-IPI is delivered locally; the ICR delivery status bit always reads idle', () => {
  const { lapic, sent } = enabled();
  write32(lapic, REG_ICR_LOW, (1 << 18) | 0x48); // shorthand self, fixed
  assert.equal(read32(lapic, REG_ICR_LOW) & (1 << 12), 0, 'delivery status idle');
  assert.equal(read32(lapic, REG_ICR_LOW), (1 << 18) | 0x48);
  assert.equal(sent.length, 0, 'never leaves the APIC');
  assert.equal(lapic.acknowledge(), 0x48);
  write32(lapic, REG_ICR_LOW, (1 << 18) | 0x400); // self NMI
  assert.equal(lapic.takeNmi(), true);
  write32(lapic, REG_ICR_LOW, (1 << 18) | 0x500); // self INIT: invalid combination, ignored
  assert.equal(lapic.takeInit(), false);
});

test('INIT, INIT de-assert and SIPI go out as Linux wakes an AP (wakeup_secondary_cpu_via_init)', () => {
  const { lapic, sent } = enabled();
  write32(lapic, REG_ICR_HIGH, 0x01_000000 | 0xabcdef);
  assert.equal(read32(lapic, REG_ICR_HIGH), 0x01_000000, 'only bits 31:24 kept');
  write32(lapic, REG_ICR_LOW, 0xc500); // INIT, level trigger, assert
  write32(lapic, REG_ICR_LOW, 0x8500); // INIT level de-assert: ignored since the Pentium 4
  write32(lapic, REG_ICR_LOW, 0x0608); // STARTUP, page 8
  write32(lapic, REG_ICR_LOW, 0x0608);
  assert.deepEqual(sent.map((m) => [m.mode, m.vector, m.destination, m.logical, m.shorthand, m.source]), [
    [DM_INIT, 0, 1, false, 'none', 0],
    [DM_STARTUP, 8, 1, false, 'none', 0],
    [DM_STARTUP, 8, 1, false, 'none', 0],
  ]);
  write32(lapic, REG_ICR_LOW, (3 << 18) | 0x400); // NMI to all excluding self
  write32(lapic, REG_ICR_LOW, (2 << 18) | 0x0830 | DM_LOWEST << 8); // logical, all including self
  assert.deepEqual(sent.slice(3).map((m) => [m.mode, m.shorthand]), [[DM_NMI, 'others'], [DM_LOWEST, 'all']]);
});

test('illegal vectors: sending one sets ESR bit 5, receiving one bit 6, and the error LVT interrupts', () => {
  const { lapic, sent } = enabled();
  write32(lapic, REG_ICR_LOW, 0x0005);
  assert.equal(sent.length, 0, 'not sent');
  assert.equal(lapic.acceptInterrupt(0x0f), false);
  assert.equal(read32(lapic, REG_ESR), 0, 'ESR shows errors only after a write');
  write32(lapic, REG_ESR, 0);
  assert.equal(read32(lapic, REG_ESR), ESR_SEND_ILLEGAL_VECTOR | ESR_RECEIVE_ILLEGAL_VECTOR);
  assert.equal(lapic.acknowledge(), 0xfe, 'the error vector');
  write32(lapic, REG_EOI, 0);
  write32(lapic, REG_ESR, 0);
  assert.equal(read32(lapic, REG_ESR), 0, 'cleared by the next write');

  write32(lapic, REG_LVT_ERROR, 0x03); // an illegal error vector must not recurse
  lapic.acceptInterrupt(0x02);
  write32(lapic, REG_ESR, 0);
  assert.equal(read32(lapic, REG_ESR), ESR_RECEIVE_ILLEGAL_VECTOR);
  assert.equal(lapic.hasInterrupt(), false);
});

test('reserved register offsets read 0 and latch "illegal register address"', () => {
  const { lapic } = enabled();
  for (const reg of [0x000, 0x010, 0x040, 0x290, 0x2f0, 0x3a0, 0x3f0, 0x400, 0xff0]) {
    assert.equal(read32(lapic, reg), 0, `0x${reg.toString(16)}`);
    write32(lapic, reg, 0xffffffff);
    write32(lapic, REG_ESR, 0);
    assert.equal(read32(lapic, REG_ESR), ESR_ILLEGAL_REGISTER, `0x${reg.toString(16)}`);
    lapic.acknowledge();
    write32(lapic, REG_EOI, 0);
  }
});

test('access sizes: narrow reads see bytes 0..3, bytes 4..15 read 0, only aligned 32-bit writes count', () => {
  const { lapic } = lapicRig({ index: 0x12 });
  const b = new Uint8Array(1);
  lapic.read(REG_ID + 3, b);
  assert.equal(b[0], 0x12);
  const w = new Uint8Array(2);
  lapic.read(REG_VERSION, w);
  assert.deepEqual([...w], [0x14, 0x00]);
  const q = new Uint8Array(8);
  lapic.read(REG_ID, q);
  assert.deepEqual([...q], [0, 0, 0, 0x12, 0, 0, 0, 0]);
  lapic.read(REG_ID + 4, q);
  assert.deepEqual([...q], [0, 0, 0, 0, 0, 0, 0, 0]);
  lapic.write(REG_TPR, new Uint8Array([0x20]));
  lapic.write(REG_TPR + 4, new Uint8Array([0x20, 0, 0, 0]));
  lapic.write(REG_TPR, new Uint8Array([0x20, 0, 0, 0, 0, 0, 0, 0]));
  assert.equal(read32(lapic, REG_TPR), 0, 'ignored');
  write32(lapic, REG_TPR, 0xffffff20);
  assert.equal(read32(lapic, REG_TPR), 0x20, 'reserved bits read 0');
  write32(lapic, REG_DFR, 0x0);
  assert.equal(read32(lapic, REG_DFR), 0x0fffffff, 'DFR bits 27:0 read as ones');
  write32(lapic, REG_VERSION, 0);
  write32(lapic, REG_PPR, 0xff);
  assert.equal(read32(lapic, REG_VERSION), 0x50014, 'read-only');
  assert.equal(read32(lapic, REG_PPR), 0x20);
});

test('IA32_APIC_BASE: relocation, reserved bits and x2APIC refused; clearing EN hides the APIC and resets it', () => {
  const { lapic } = enabled();
  assert.equal(lapic.writeApicBase(0xfed00900n), false, 'relocation refused (#GP)');
  assert.equal(lapic.writeApicBase(0xfee00900n | 1n), false, 'reserved bit 0');
  assert.equal(lapic.writeApicBase(0xfee00900n | (1n << 10n)), false, 'x2APIC not offered');
  assert.equal(lapic.writeApicBase(0xfee00900n | (1n << 52n)), false, 'above MAXPHYADDR');
  assert.equal(lapic.writeApicBase(0xfee00900n), true, 'rewriting the same value');
  assert.equal(lapic.softwareEnabled, true, 'unchanged');

  lapic.acceptInterrupt(0x40);
  assert.equal(lapic.writeApicBase(0xfee00000n), true, 'BSP bit written as 0 is ignored');
  assert.equal(lapic.readApicBase(), 0xfee00100n);
  assert.equal(lapic.hardwareEnabled, false);
  assert.equal(read32(lapic, REG_ID), 0, 'MMIO not decoded');
  assert.equal(lapic.hasInterrupt(), false);
  assert.equal(lapic.acceptInterrupt(0x41), false);
  assert.equal(lapic.accept({ ...fixed(0), mode: DM_NMI }), false);
  lapic.writeApicBase(0xfee00900n);
  assert.equal(read32(lapic, REG_SVR), 0xff, 'back in the reset state');
  assert.equal(read32(lapic, REG_IRR + 0x20), 0);
});

test('receiving INIT resets the APIC but its ID and raises INIT; SIPI carries its vector', () => {
  const { lapic } = enabled();
  write32(lapic, REG_ID, 0x07000000);
  lapic.acceptInterrupt(0x40);
  assert.equal(lapic.accept({ ...fixed(0), mode: DM_INIT }), true);
  assert.equal(lapic.hasEvent(), true);
  assert.equal(lapic.takeInit(), true);
  assert.equal(read32(lapic, REG_ID), 0x07000000);
  assert.equal(read32(lapic, REG_SVR), 0xff);
  assert.equal(read32(lapic, REG_IRR + 0x20), 0);
  assert.equal(lapic.accept({ ...fixed(0x9a), mode: DM_STARTUP }), true);
  assert.equal(lapic.takeSipi(), 0x9a);
  assert.equal(lapic.takeSipi(), -1);
  assert.equal(lapic.hasEvent(), false);
  assert.equal(lapic.accept({ ...fixed(0x30), mode: 2 /* SMI */ }), false, 'no SMM');
  assert.equal(lapic.accept({ ...fixed(0x30), mode: 7 /* ExtINT */ }), false, 'no 8259');
});

test('destinations: physical ID and broadcast, logical flat and cluster, shorthands', () => {
  const { lapic } = lapicRig({ index: 2 });
  const m = (destination: number, logical: boolean): ApicMessage => ({ ...fixed(0x40), destination, logical });
  assert.equal(lapic.isDestination(m(2, false)), true);
  assert.equal(lapic.isDestination(m(3, false)), false);
  assert.equal(lapic.isDestination(m(0xff, false)), true);
  write32(lapic, REG_LDR, 0x04000000);
  assert.equal(lapic.isDestination(m(0x04, true)), true, 'flat: bit 2');
  assert.equal(lapic.isDestination(m(0x0b, true)), false);
  write32(lapic, REG_DFR, 0x0fffffff); // cluster model
  write32(lapic, REG_LDR, 0x32000000); // cluster 3, member bit 1
  assert.equal(lapic.isDestination(m(0x36, true)), true);
  assert.equal(lapic.isDestination(m(0x26, true)), false, 'other cluster');
  assert.equal(lapic.isDestination(m(0x31, true)), false, 'other member');
  assert.equal(lapic.isDestination(m(0xff, true)), true, 'cluster broadcast');
  assert.equal(lapic.isDestination({ ...m(0, false), shorthand: 'others', source: 2 }), false);
  assert.equal(lapic.isDestination({ ...m(0, false), shorthand: 'others', source: 0 }), true);
  assert.equal(lapic.isDestination({ ...m(0, false), shorthand: 'all', source: 2 }), true);
});

test('router: IPIs between two APICs, lowest priority picks the least busy, the default sendIpi loops back', () => {
  const clock = new FakeClock();
  const tsc = new GuestTsc({ clock: clock.read });
  const router = new ApicRouter();
  const a = new Lapic({ index: 0, tsc, sendIpi: (msg) => { router.deliver(msg); } });
  const b = new Lapic({ index: 1, tsc, sendIpi: (msg) => { router.deliver(msg); } });
  router.add(a);
  router.add(b);
  assert.throws(() => router.add(new Lapic({ index: 1, tsc })), RangeError);
  linuxApicSetup(a);
  linuxApicSetup(b);
  write32(a, REG_ICR_HIGH, 1 << 24);
  write32(a, REG_ICR_LOW, 0x0051);
  assert.equal(b.acknowledge(), 0x51);
  write32(b, REG_EOI, 0);
  assert.equal(a.hasInterrupt(), false);
  write32(a, REG_ICR_LOW, (3 << 18) | 0x52);
  assert.equal(a.hasInterrupt(), false, 'all excluding self');
  assert.equal(b.hasInterrupt(), true);
  b.acknowledge(); // 0x52, b now busy at class 5
  write32(b, REG_TPR, 0x50);
  assert.equal(router.deliver({ ...fixed(0x61), mode: DM_LOWEST, destination: 0xff }), true);
  assert.equal(a.acknowledge(), 0x61, 'lowest priority went to the idle APIC');
  assert.equal(router.deliver({ ...fixed(0x61), destination: 7 }), false, 'nobody has ID 7');

  const solo = new Lapic({ index: 0, tsc });
  linuxApicSetup(solo);
  write32(solo, REG_ICR_HIGH, 0);
  write32(solo, REG_ICR_LOW, 0x0070);
  assert.equal(solo.acknowledge(), 0x70, 'physical IPI to itself without a router');
});

test('save/restore round-trips as a plain JSON object, timer phase and deadline included', () => {
  const { lapic, clock, tsc } = enabled();
  write32(lapic, REG_TIMER_DIVIDE, 0xb);
  write32(lapic, REG_LVT_TIMER, 0x42 | LVT_PERIODIC);
  write32(lapic, REG_TIMER_INITIAL, 100);
  clock.advance(1000);
  lapic.accept(fixed(0x61, true));
  lapic.acknowledge();
  lapic.acceptInterrupt(0x33);
  const saved = JSON.parse(JSON.stringify({ lapic: lapic.saveState(), tsc: tsc.saveState() }));

  const other = lapicRig();
  other.clock.now = 123_456_789;
  other.tsc.restoreState(saved.tsc);
  other.lapic.restoreState(saved.lapic);
  assert.deepEqual(other.lapic.saveState(), lapic.saveState());
  assert.equal(read32(other.lapic, REG_TIMER_CURRENT), 75);
  other.clock.advance(3000);
  other.lapic.poll(other.clock.now);
  assert.equal(read32(other.lapic, REG_TIMER_CURRENT), 100, 'fired and reloaded on schedule');
  assert.equal(other.lapic.processorPriority(), 0x60);

  write32(lapic, REG_LVT_TIMER, 0x40 | LVT_TSC_DEADLINE);
  lapic.writeTscDeadline(tsc.read() + 777n);
  const s2 = JSON.parse(JSON.stringify({ lapic: lapic.saveState(), tsc: tsc.saveState() }));
  const third = lapicRig();
  third.tsc.restoreState(s2.tsc);
  third.lapic.restoreState(s2.lapic);
  assert.equal(third.lapic.readTscDeadline(), BigInt(s2.lapic.tscDeadline));
  assert.equal(third.lapic.nextDeadlineNs(), third.clock.now + 777 + 1);
});

test('restoreState rejects malformed states by field and changes nothing', () => {
  const { lapic } = enabled();
  const good = lapic.saveState();
  const bad: [string, unknown][] = [
    ['object', 5],
    ['tpr', { ...good, tpr: 256 }],
    ['irr', { ...good, irr: [1, 0, 0, 0, 0, 0, 0, 0] }],
    ['isr', { ...good, isr: [0, 0, 0] }],
    ['lvt', { ...good, lvt: [0x1000, 0x10000, 0x10000, 0x10000, 0x10000, 0x10000] }],
    ['apicBase', { ...good, apicBase: '4275045120' }],
    ['apicBase', { ...good, apicBase: 'fee00900' }],
    ['tscDeadline', { ...good, tscDeadline: '18446744073709551616' }],
    ['sipiVector', { ...good, sipiVector: 300 }],
    ['timerBaseRelNs', { ...good, timerBaseRelNs: 5 }],
    ['timerCountBase', { ...good, timerArmed: true, timerCountBase: 0 }],
    ['dfr', { ...good, dfr: 0 }],
  ];
  for (const [field, state] of bad) {
    assert.throws(() => lapic.restoreState(state as never), (e: Error) => e instanceof ApicStateError && e.message.includes(field.split(' ')[0]!), field);
  }
  assert.deepEqual(lapic.saveState(), good);
  const ap = lapicRig({ index: 1 });
  assert.throws(() => ap.lapic.restoreState(good), /BSP/);
});

test('register reads the SDM lists all answer without an illegal-register error', () => {
  const { lapic } = enabled();
  const regs = [0x20, 0x30, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x280, 0x300, 0x310, 0x380, 0x390, 0x3e0];
  for (let i = 0; i < 8; i++) regs.push(REG_ISR + i * 16, REG_TMR + i * 16, REG_IRR + i * 16);
  for (let i = 0; i < 6; i++) regs.push(REG_LVT_TIMER + i * 16);
  for (const reg of regs) read32(lapic, reg);
  write32(lapic, REG_ESR, 0);
  assert.equal(read32(lapic, REG_ESR), 0);
});
