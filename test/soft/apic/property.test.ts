/**
 * Random register accesses, messages and time steps thrown at the local
 * APIC and the IOAPIC: nothing throws, and the architectural invariants hold
 * after every step.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { GuestTsc, IoApic, Lapic, type ApicMessage, type Shorthand } from '../../../src/engine/soft/apic/index.js';
import { FakeClock, linuxApicSetup } from './helpers.js';

const RUNS = Number(process.env.APIC_FUZZ_RUNS ?? 300);

const LAPIC_REGS = [
  0x20, 0x30, 0x80, 0x90, 0xa0, 0xb0, 0xc0, 0xd0, 0xe0, 0xf0, 0x100, 0x170, 0x180, 0x200, 0x270, 0x280, 0x2f0, 0x300, 0x310,
  0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x390, 0x3e0,
];

const value32 = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: 0, max: 0xff }),
  // LVT / SVR / ICR-shaped values: vector, mode bits, mask, timer modes
  fc.tuple(fc.integer({ min: 0, max: 0xff }), fc.integer({ min: 0, max: 7 }), fc.boolean(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }))
    .map(([v, dm, masked, mode, sh]) => (v | (dm << 8) | (masked ? 1 << 16 : 0) | (mode << 17) | (sh << 18) | 0x100) >>> 0),
);

const shorthand = fc.constantFrom<Shorthand>('none', 'all', 'others');
const message: fc.Arbitrary<ApicMessage> = fc.record({
  vector: fc.integer({ min: 0, max: 0xff }),
  mode: fc.integer({ min: 0, max: 7 }),
  logical: fc.boolean(),
  destination: fc.integer({ min: 0, max: 0xff }),
  levelTriggered: fc.boolean(),
  shorthand,
  source: fc.integer({ min: 0, max: 3 }),
});

type LapicCmd =
  | { k: 'write'; offset: number; size: number; value: number }
  | { k: 'read'; offset: number; size: number }
  | { k: 'accept'; m: ApicMessage }
  | { k: 'fixed'; vector: number; level: boolean }
  | { k: 'ack' }
  | { k: 'time'; ns: number }
  | { k: 'deadline'; delta: bigint }
  | { k: 'base'; value: bigint }
  | { k: 'cr8'; value: number }
  | { k: 'take' };

const offset = fc.oneof(fc.constantFrom(...LAPIC_REGS), fc.integer({ min: 0, max: 0xfff }));
const size = fc.constantFrom(1, 2, 4, 4, 4, 8);
const lapicCmd: fc.Arbitrary<LapicCmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('write' as const), offset, size, value: value32 }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('read' as const), offset, size }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('accept' as const), m: message }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('fixed' as const), vector: fc.integer({ min: 0, max: 0xff }), level: fc.boolean() }) },
  { weight: 4, arbitrary: fc.constant({ k: 'ack' as const }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('time' as const), ns: fc.integer({ min: 0, max: 20_000_000 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('deadline' as const), delta: fc.bigInt({ min: -1000n, max: 10_000_000n }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('base' as const), value: fc.constantFrom(0xfee00900n, 0xfee00100n, 0xfee00d00n, 0xfec00900n, 0xfee00901n) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('cr8' as const), value: fc.integer({ min: 0, max: 0xff }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'take' as const }) },
);

function bits(lapic: Lapic, base: number): number[] {
  const out: number[] = [];
  const b = new Uint8Array(4);
  for (let i = 0; i < 8; i++) {
    lapic.read(base + i * 16, b);
    const w = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    for (let j = 0; j < 32; j++) if ((w >>> j) & 1) out.push(i * 32 + j);
  }
  return out;
}

function checkLapicInvariants(lapic: Lapic): void {
  if (!lapic.hardwareEnabled) return;
  const isr = bits(lapic, 0x100);
  const irr = bits(lapic, 0x200);
  assert.ok(isr.every((v) => v >= 16) && irr.every((v) => v >= 16), 'vectors 0..15 never accepted');
  const classes = isr.map((v) => v >> 4);
  assert.equal(new Set(classes).size, classes.length, `at most one in-service vector per priority class: ${isr}`);
  if (!lapic.softwareEnabled) assert.equal(lapic.hasInterrupt(), false, 'software-disabled APIC interrupts nobody');
  const next = lapic.nextDeadlineNs();
  assert.ok(next === undefined || Number.isFinite(next));
}

test('local APIC: random accesses, messages and time never throw and keep the priority invariants', () => {
  fc.assert(
    fc.property(fc.boolean(), fc.array(lapicCmd, { maxLength: 150 }), (setup, cmds) => {
      const clock = new FakeClock();
      const tsc = new GuestTsc({ clock: clock.read });
      const lapic = new Lapic({ index: 0, tsc });
      if (setup) linuxApicSetup(lapic);
      for (const c of cmds) {
        switch (c.k) {
          case 'write': {
            const d = new Uint8Array(c.size);
            for (let i = 0; i < c.size; i++) d[i] = (c.value >>> (8 * (i & 3))) & 0xff;
            lapic.write(c.offset, d);
            break;
          }
          case 'read': {
            const d = new Uint8Array(c.size);
            lapic.read(c.offset, d);
            break;
          }
          case 'accept': lapic.accept(c.m); break;
          case 'fixed': lapic.acceptInterrupt(c.vector, c.level); break;
          case 'ack': {
            const pending = lapic.hasInterrupt();
            const ppr = lapic.processorPriority();
            const isrBefore = bits(lapic, 0x100);
            const v = lapic.acknowledge();
            assert.ok(v >= 0 && v <= 0xff);
            if (pending) {
              assert.ok((v & 0xf0) > (ppr & 0xf0), `vector 0x${v.toString(16)} not above PPR 0x${ppr.toString(16)}`);
              assert.ok(bits(lapic, 0x100).includes(v), 'moved to ISR');
            } else {
              assert.deepEqual(bits(lapic, 0x100), isrBefore, 'spurious: ISR untouched');
            }
            break;
          }
          case 'time': clock.advance(c.ns); lapic.poll(clock.now); break;
          case 'deadline': lapic.writeTscDeadline(tsc.read() + c.delta); break;
          case 'base': lapic.writeApicBase(c.value); break;
          case 'cr8': lapic.writeCr8(c.value); break;
          case 'take': lapic.takeNmi(); lapic.takeInit(); lapic.takeSipi(); break;
        }
        checkLapicInvariants(lapic);
      }
      const saved = JSON.parse(JSON.stringify(lapic.saveState()));
      const copy = new Lapic({ index: 0, tsc });
      copy.restoreState(saved);
      assert.deepEqual(copy.saveState(), lapic.saveState(), 'save/restore round trip');
    }),
    { numRuns: RUNS },
  );
});

type IoCmd =
  | { k: 'write'; offset: number; size: number; value: number }
  | { k: 'read'; offset: number; size: number }
  | { k: 'sel'; reg: number; value: number }
  | { k: 'irq'; pin: number; level: boolean }
  | { k: 'eoi'; vector: number }
  | { k: 'accept'; value: boolean };

const ioCmd: fc.Arbitrary<IoCmd> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ k: fc.constant('write' as const), offset: fc.oneof(fc.constantFrom(0, 0x10, 0x40), fc.integer({ min: 0, max: 0xfff })), size: size, value: value32 }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('read' as const), offset: fc.oneof(fc.constantFrom(0, 0x10), fc.integer({ min: 0, max: 0xfff })), size }) },
  { weight: 5, arbitrary: fc.record({ k: fc.constant('sel' as const), reg: fc.integer({ min: 0, max: 0x45 }), value: value32 }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('irq' as const), pin: fc.integer({ min: 0, max: 23 }), level: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('eoi' as const), vector: fc.integer({ min: 0, max: 0xff }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('accept' as const), value: fc.boolean() }) },
);

test('IOAPIC: random programming, lines and EOIs never throw; only unmasked entries deliver; remote IRR only on level entries', () => {
  fc.assert(
    fc.property(fc.array(ioCmd, { maxLength: 200 }), (cmds) => {
      let accepting = true;
      const deliver = (m: ApicMessage): boolean => {
        assert.ok(m.vector >= 0 && m.vector <= 0xff && m.destination >= 0 && m.destination <= 0xff && m.mode >= 0 && m.mode <= 7);
        let from = false;
        for (let pin = 0; pin < 24; pin++) {
          const e: number = Number(io.entry(pin) & 0xffffffffn);
          if ((e & (1 << 16)) === 0 && (e & 0xff) === m.vector) from = true;
        }
        assert.ok(from, `message 0x${m.vector.toString(16)} from no unmasked entry`);
        return accepting;
      };
      const io: IoApic = new IoApic({ deliver });
      for (const c of cmds) {
        switch (c.k) {
          case 'write': {
            const d = new Uint8Array(c.size);
            for (let i = 0; i < c.size; i++) d[i] = (c.value >>> (8 * (i & 3))) & 0xff;
            io.write(c.offset, d);
            break;
          }
          case 'read': io.read(c.offset, new Uint8Array(c.size)); break;
          case 'sel': io.writeRegister(c.reg, c.value); break;
          case 'irq': io.setIrq(c.pin, c.level); break;
          case 'eoi': io.endOfInterrupt(c.vector); break;
          case 'accept': accepting = c.value; break;
        }
        for (let pin = 0; pin < 24; pin++) {
          const e: number = Number(io.entry(pin) & 0xffffffffn);
          if (e & (1 << 14)) assert.ok(e & (1 << 15), `pin ${pin}: remote IRR on an edge entry`);
          assert.equal(e & (1 << 12), 0, 'delivery status idle');
        }
      }
      const saved = JSON.parse(JSON.stringify(io.saveState()));
      const copy = new IoApic({ deliver: () => true });
      copy.restoreState(saved);
      assert.deepEqual(copy.saveState(), io.saveState());
    }),
    { numRuns: RUNS },
  );
});
