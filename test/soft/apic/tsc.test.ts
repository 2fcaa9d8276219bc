import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ApicStateError, CPUID1_ECX_TSC_DEADLINE, CPUID1_EDX_APIC, CPUID6_EAX_ARAT, CPUID80000007_EDX_INVARIANT_TSC, CRYSTAL_HZ, GuestTsc,
  mergeTimeCpuid, TSC_HZ_DEFAULT, tscEarlyKhzArgument,
} from '../../../src/engine/soft/apic/index.js';
import { FakeClock } from './helpers.js';

test('the guest TSC follows host time, not instructions: 1 GHz reads nanoseconds since creation', () => {
  const clock = new FakeClock(1e12);
  const tsc = new GuestTsc({ clock: clock.read });
  assert.equal(tsc.hz, TSC_HZ_DEFAULT);
  assert.equal(tsc.read(), 0n);
  clock.advance(1234.7);
  assert.equal(tsc.read(), 1234n, 'whole ticks');
  clock.advance(1e9);
  assert.equal(tsc.read(), 1_000_001_234n);
});

test('other frequencies scale exactly; hostNsAt is the first instant the TSC reaches a value', () => {
  const clock = new FakeClock(0);
  const tsc = new GuestTsc({ clock: clock.read, hz: 2_100_000_000 });
  clock.advance(1e9);
  assert.equal(tsc.read(), 2_100_000_000n);
  const target = tsc.read() + 1000n;
  const at = tsc.hostNsAt(target);
  assert.ok(tsc.read(at) >= target);
  assert.ok(tsc.read(at - 2) < target, 'not later than needed (within the 1 ns guard)');
  assert.equal(tsc.hostNsAt(5n), clock.now, 'already reached: now');
});

test('WRMSR IA32_TSC sets the count, which runs on from there; the initial value is honoured', () => {
  const clock = new FakeClock(100);
  const tsc = new GuestTsc({ clock: clock.read, initial: 1n << 40n });
  assert.equal(tsc.read(), 1n << 40n);
  tsc.write(500n);
  clock.advance(10);
  assert.equal(tsc.read(), 510n);
  tsc.write(-1n);
  assert.equal(tsc.read(), (1n << 64n) - 1n, 'values are 64-bit');
});

test('the real clock: the TSC advances with wall time', async () => {
  const tsc = new GuestTsc();
  const a = tsc.read();
  await new Promise((r) => setTimeout(r, 20));
  const d = tsc.read() - a;
  assert.ok(d >= 15_000_000n && d < 2_000_000_000n, `advanced ${d} ns in ~20 ms`);
});

test('bad frequencies are refused', () => {
  for (const hz of [0, 999_999, 1.5e9 + 0.5, 20e9, Number.NaN]) assert.throws(() => new GuestTsc({ hz }), RangeError, String(hz));
});

test('save/restore continues from the saved count; a state for another frequency is refused', () => {
  const a = new FakeClock(0);
  const tsc = new GuestTsc({ clock: a.read });
  a.advance(5000);
  const saved = JSON.parse(JSON.stringify(tsc.saveState()));
  const b = new FakeClock(9e9);
  const other = new GuestTsc({ clock: b.read });
  other.restoreState(saved);
  assert.equal(other.read(), 5000n);
  b.advance(1);
  assert.equal(other.read(), 5001n);
  assert.throws(() => new GuestTsc({ hz: 2e9 }).restoreState(saved), /hz is 1000000000/);
  assert.throws(() => other.restoreState({ hz: 1e9, tsc: '-1' }), ApicStateError);
  assert.throws(() => other.restoreState({ hz: 1e9, tsc: 5 } as never), ApicStateError);
  assert.equal(other.read(), 5001n, 'unchanged');
});

function leaf(l: number, base: number[] = [0, 0, 0, 0], apicId = 0, tscHz = TSC_HZ_DEFAULT, apicEnabled = true): number[] {
  const out = Int32Array.from(base);
  mergeTimeCpuid(l, 0, out, { tscHz, apicId, apicEnabled });
  return [...out].map((v) => v >>> 0);
}

test('CPUID: 0x15 ratio and crystal, 0x16 MHz, ARAT, TSC-deadline, invariant TSC, APIC and its ID merged into the core’s leaves', () => {
  assert.deepEqual(leaf(0, [7, 1, 2, 3]), [0x16, 1, 2, 3], 'max basic leaf raised to 0x16');
  assert.deepEqual(leaf(0, [0x20, 1, 2, 3]), [0x20, 1, 2, 3], 'never lowered');
  const l1 = leaf(1, [0x830f10, 0x00010800, 0x1, 0x1], 3);
  assert.equal(l1[1], 0x03010800, 'initial APIC ID in EBX[31:24]');
  assert.equal(l1[2]! & CPUID1_ECX_TSC_DEADLINE, CPUID1_ECX_TSC_DEADLINE);
  assert.equal(l1[2]! & 1, 1, 'the core’s own bits kept');
  assert.equal(l1[3]! & (CPUID1_EDX_APIC | 0x30), CPUID1_EDX_APIC | 0x30, 'APIC, TSC, MSR');
  assert.equal(leaf(1, [0, 0, 0, 0], 0, TSC_HZ_DEFAULT, false)[3]! & CPUID1_EDX_APIC, 0, 'APIC bit clear while IA32_APIC_BASE.EN is 0');
  assert.equal(leaf(6)[0]! & CPUID6_EAX_ARAT, CPUID6_EAX_ARAT);
  assert.equal(leaf(0x80000007)[3]! & CPUID80000007_EDX_INVARIANT_TSC, CPUID80000007_EDX_INVARIANT_TSC);
  const l15 = leaf(0x15);
  assert.equal(l15[2], CRYSTAL_HZ);
  assert.equal((l15[2]! * l15[1]!) / l15[0]!, 1e9, 'TSC = crystal × EBX / EAX');
  assert.deepEqual(leaf(0x16), [1000, 1000, 25, 0]);
  const odd = leaf(0x15, undefined, 0, 2_345_678_901);
  assert.equal((CRYSTAL_HZ * odd[1]!) / odd[0]!, 2_345_678_901, 'any integer frequency');
  assert.deepEqual(leaf(2, [9, 8, 7, 6]), [9, 8, 7, 6], 'other leaves untouched');
  assert.equal(tscEarlyKhzArgument(1e9), 'tsc_early_khz=1000000');
});

test('readSplit gives the same 64-bit value as read, on the fast path and past it', () => {
  const clock = new FakeClock(0);
  const out = new Uint32Array(2);
  const join = (): bigint => (BigInt(out[1]!) << 32n) | BigInt(out[0]!);
  const tsc = new GuestTsc({ clock: clock.read });
  for (const step of [0, 1, 4294967295, 1, 7e12, 0.4]) {
    clock.advance(step);
    tsc.readSplit(out);
    assert.equal(join(), tsc.read());
  }
  for (const start of [(1n << 53n) - 3n, (1n << 64n) - 2n]) {
    tsc.write(start);
    clock.advance(5);
    tsc.readSplit(out);
    assert.equal(join(), tsc.read(), `from ${start}`);
  }
  const slow = new GuestTsc({ clock: clock.read, hz: 3e9 });
  clock.advance(1000);
  const i32 = new Int32Array(2);
  slow.readSplit(i32);
  assert.equal(i32[0], 3000);
});
