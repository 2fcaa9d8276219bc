import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ApicStateError, createInterruptControllers, DM_FIXED, DM_NMI, GuestTsc, IOAPIC_EOI, IOAPIC_IOREGSEL, IOAPIC_IOWIN, IoApic,
  REG_EOI, REG_ISR, REG_TMR, type ApicMessage,
} from '../../../src/engine/soft/apic/index.js';
import { FakeClock, linuxApicSetup, read32, write32 } from './helpers.js';

const MASKED = 1 << 16;
const LEVEL = 1 << 15;
const REMOTE_IRR = 1 << 14;

function rig(accept = true): { io: IoApic; sent: ApicMessage[]; accepting: { value: boolean } } {
  const sent: ApicMessage[] = [];
  const accepting = { value: accept };
  const io = new IoApic({ deliver: (m) => { sent.push(m); return accepting.value; } });
  return { io, sent, accepting };
}

function readReg(io: IoApic, reg: number): number {
  write32(io, IOAPIC_IOREGSEL, reg);
  return read32(io, IOAPIC_IOWIN);
}

function writeReg(io: IoApic, reg: number, value: number): void {
  write32(io, IOAPIC_IOREGSEL, reg);
  write32(io, IOAPIC_IOWIN, value);
}

/** Linux's ioapic_write_entry order: high word first, then low. */
function program(io: IoApic, pin: number, low: number, destination = 0): void {
  writeReg(io, 0x11 + 2 * pin, destination << 24);
  writeReg(io, 0x10 + 2 * pin, low);
}

test('identification registers: ID, version 0x20 with 24 entries, arbitration ID; entries reset masked', () => {
  const { io } = rig();
  assert.equal(readReg(io, 0x00), 0);
  assert.equal(readReg(io, 0x01), 0x00170020);
  assert.equal(readReg(io, 0x02), 0);
  writeReg(io, 0x00, 0xffffffff);
  assert.equal(readReg(io, 0x00), 0x0f000000, 'ID bits 27:24');
  assert.equal(readReg(io, 0x02), 0x0f000000, 'arbitration ID follows');
  writeReg(io, 0x01, 0);
  assert.equal(readReg(io, 0x01), 0x00170020, 'version is read-only');
  for (let pin = 0; pin < 24; pin++) {
    assert.equal(readReg(io, 0x10 + 2 * pin), MASKED);
    assert.equal(readReg(io, 0x11 + 2 * pin), 0);
  }
  assert.equal(readReg(io, 0x40), 0, 'past the table: 0');
  assert.equal(readReg(io, 0x03), 0);
  assert.equal(read32(io, IOAPIC_IOREGSEL), 0x03, 'IOREGSEL reads back');
  assert.equal(read32(io, 0x20), 0, 'unused offsets read 0');
  assert.throws(() => new IoApic({ deliver: () => true, id: 16 }), RangeError);
});

test('redirection entries: writable fields read back, delivery status and remote IRR are read-only', () => {
  const { io } = rig();
  program(io, 5, 0xffffffff, 0xff);
  assert.equal(readReg(io, 0x10 + 10), 0x1afff, 'vector, mode, dest mode, polarity, trigger, mask');
  assert.equal(readReg(io, 0x11 + 10), 0xff000000, 'destination bits 63:56 only');
  assert.equal(io.entry(5), 0xff000000_0001afffn);
});

test('edge-triggered: a rising edge delivers once; a held line does not repeat; the next edge delivers again', () => {
  const { io, sent } = rig();
  program(io, 4, 0x34, 1);
  io.setIrq(4, true);
  io.setIrq(4, true);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0], { vector: 0x34, mode: DM_FIXED, logical: false, destination: 1, levelTriggered: false, shorthand: 'none' });
  io.setIrq(4, false);
  io.setIrq(4, true);
  assert.equal(sent.length, 2);
  assert.equal(readReg(io, 0x10 + 8) & REMOTE_IRR, 0, 'no remote IRR for edge');
});

test('edge-triggered: an edge on a masked pin is lost, as the 82093AA datasheet says, and unmasking does not bring it back', () => {
  const { io, sent } = rig();
  program(io, 9, MASKED | 0x39);
  io.setIrq(9, true);
  io.setIrq(9, false);
  io.setIrq(9, true);
  program(io, 9, 0x39);
  assert.equal(sent.length, 0);
  io.setIrq(9, false);
  io.setIrq(9, true);
  assert.equal(sent.length, 1, 'the next edge after unmasking is delivered');
});

test('level-triggered: remote IRR holds the line until the EOI; EOI with the line still asserted delivers again', () => {
  const { io, sent } = rig();
  program(io, 10, LEVEL | 0x3a);
  io.setIrq(10, true);
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.levelTriggered, true);
  assert.equal(readReg(io, 0x10 + 20) & REMOTE_IRR, REMOTE_IRR);
  io.setIrq(10, true);
  io.endOfInterrupt(0x3b);
  assert.equal(sent.length, 1, 'neither re-asserting nor another vector’s EOI');
  io.endOfInterrupt(0x3a);
  assert.equal(sent.length, 2, 'still asserted: again');
  io.setIrq(10, false);
  io.endOfInterrupt(0x3a);
  assert.equal(sent.length, 2);
  assert.equal(readReg(io, 0x10 + 20) & REMOTE_IRR, 0);
});

test('level-triggered: a masked asserted line delivers when unmasked; remote IRR set only when a local APIC accepted', () => {
  const { io, sent, accepting } = rig(false);
  program(io, 11, MASKED | LEVEL | 0x3b);
  io.setIrq(11, true);
  assert.equal(sent.length, 0);
  program(io, 11, LEVEL | 0x3b);
  assert.equal(sent.length, 1, 'unmask delivers the pending level');
  assert.equal(readReg(io, 0x10 + 22) & REMOTE_IRR, 0, 'nobody accepted');
  accepting.value = true;
  program(io, 11, LEVEL | 0x3b); // rewriting the entry retries
  assert.equal(sent.length, 2);
  assert.equal(readReg(io, 0x10 + 22) & REMOTE_IRR, REMOTE_IRR);
  program(io, 11, LEVEL | 0x3b);
  assert.equal(sent.length, 2, 'remote IRR blocks');
});

test('stale remote IRR: the EOI register and a switch to edge both clear it (Linux __eoi_ioapic_pin)', () => {
  const { io, sent } = rig();
  program(io, 12, LEVEL | 0x3c);
  io.setIrq(12, true);
  io.setIrq(12, false);
  write32(io, IOAPIC_EOI, 0x3c);
  assert.equal(readReg(io, 0x10 + 24) & REMOTE_IRR, 0);
  io.setIrq(12, true);
  assert.equal(sent.length, 2);
  io.setIrq(12, false);
  program(io, 12, MASKED | 0x3c); // to edge, masked
  program(io, 12, MASKED | LEVEL | 0x3c);
  assert.equal(readReg(io, 0x10 + 24) & REMOTE_IRR, 0);
});

test('NMI entries act edge-triggered whatever the trigger bit says', () => {
  const { io, sent } = rig();
  program(io, 2, LEVEL | (DM_NMI << 8));
  io.setIrq(2, true);
  io.setIrq(2, false);
  io.setIrq(2, true);
  assert.deepEqual(sent.map((m) => [m.mode, m.levelTriggered]), [[DM_NMI, false], [DM_NMI, false]]);
  assert.equal(readReg(io, 0x10 + 4) & REMOTE_IRR, 0);
});

test('polarity is kept but does not invert the asserted state the IrqLine carries', () => {
  const { io, sent } = rig();
  program(io, 6, (1 << 13) | 0x36);
  assert.equal(readReg(io, 0x10 + 12), (1 << 13) | 0x36);
  io.setIrq(6, true);
  assert.equal(sent.length, 1);
});

test('irqLine(pin) drives the pin; pins outside 0..23 are wiring errors', () => {
  const { io, sent } = rig();
  program(io, 23, 0x57);
  const line = io.irqLine(23);
  line.set(true);
  line.set(false);
  assert.equal(sent.length, 1);
  assert.throws(() => io.irqLine(24), RangeError);
  assert.throws(() => io.setIrq(-1, true), RangeError);
  assert.throws(() => io.setIrq(1.5, true), RangeError);
});

test('access sizes: IOREGSEL takes a byte, IOWIN only dwords, narrow IOWIN reads see their bytes', () => {
  const { io } = rig();
  io.write(IOAPIC_IOREGSEL, new Uint8Array([0x01]));
  const b = new Uint8Array(1);
  io.read(IOAPIC_IOWIN + 2, b);
  assert.equal(b[0], 0x17, 'max redirection entry byte');
  io.write(IOAPIC_IOREGSEL, new Uint8Array([0x10]));
  io.write(IOAPIC_IOWIN, new Uint8Array([0x40, 0x00]));
  io.write(IOAPIC_IOWIN + 1, new Uint8Array([0x40, 0, 0, 0]));
  assert.equal(readReg(io, 0x10), MASKED, 'ignored');
  io.write(0x20, new Uint8Array([1, 2, 3, 4]));
  io.write(IOAPIC_IOWIN, new Uint8Array(0));
});

test('end to end: a level-triggered device line through IOAPIC and local APIC, EOI broadcast back, as Linux drives it', () => {
  const clock = new FakeClock();
  const wakes: number[] = [];
  const { lapics, ioapic } = createInterruptControllers({ cpus: 1, tsc: new GuestTsc({ clock: clock.read }), wake: (cpu) => wakes.push(cpu) });
  const lapic = lapics[0]!;
  linuxApicSetup(lapic);
  program(ioapic, 5, LEVEL | 0x41, 0);
  const line = ioapic.irqLine(5);
  line.set(true);
  assert.ok(wakes.includes(0));
  assert.equal(lapic.acknowledge(), 0x41);
  // ioapic_ack_level: reads TMR for the vector, then EOIs the local APIC.
  assert.equal((read32(lapic, REG_TMR + 0x20) >>> 1) & 1, 1);
  line.set(false); // the handler quiets the device
  write32(lapic, REG_EOI, 0);
  assert.equal(readReg(ioapic, 0x10 + 10) & REMOTE_IRR, 0, 'EOI broadcast cleared remote IRR');
  assert.equal(lapic.hasInterrupt(), false);

  line.set(true);
  lapic.acknowledge();
  write32(lapic, REG_EOI, 0); // device still asserting: delivered again
  assert.equal(lapic.acknowledge(), 0x41);
  assert.equal((read32(lapic, REG_ISR + 0x20) >>> 1) & 1, 1);

  program(ioapic, 4, 0x34, 0); // edge COM1
  ioapic.setIrq(4, true);
  assert.equal(lapic.hasInterrupt(), false, 'class 3 waits below the in-service class 4');
  write32(lapic, REG_EOI, 0); // the line is still up: 0x41 comes back before the handler quiets it
  line.set(false);
  assert.equal(lapic.acknowledge(), 0x41, 'higher class first');
  write32(lapic, REG_EOI, 0);
  assert.equal(readReg(ioapic, 0x10 + 10) & REMOTE_IRR, 0);
  assert.equal(lapic.acknowledge(), 0x34);
  write32(lapic, REG_EOI, 0);
  assert.equal(lapic.hasInterrupt(), false);
});

test('save/restore round-trips as a plain JSON object and rejects malformed states', () => {
  const { io } = rig();
  program(io, 3, LEVEL | 0x33, 2);
  io.setIrq(3, true);
  write32(io, IOAPIC_IOREGSEL, 0x17);
  const saved = JSON.parse(JSON.stringify(io.saveState()));
  const other = rig();
  other.io.restoreState(saved);
  assert.deepEqual(other.io.saveState(), io.saveState());
  assert.equal(other.sent.length, 0, 'restoring sends nothing');
  other.io.endOfInterrupt(0x33);
  assert.equal(other.sent.length, 1, 'restored line and remote IRR');

  const bad: [string, unknown][] = [
    ['object', null],
    ['id', { ...saved, id: 16 }],
    ['low', { ...saved, low: saved.low.slice(1) }],
    ['low', { ...saved, low: [1 << 20, ...saved.low.slice(1)] }],
    ['high', { ...saved, high: [1, ...saved.high.slice(1)] }],
    ['lines', { ...saved, lines: 1 << 24 }],
  ];
  for (const [field, state] of bad) {
    assert.throws(() => io.restoreState(state as never), (e: Error) => e instanceof ApicStateError && e.message.includes(field), field);
  }
  assert.deepEqual(io.saveState(), saved);
});
