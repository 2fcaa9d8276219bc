import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeviceStateError, I8042, I8042_PORT_SPAN, type I8042State } from '../../src/devices/legacy/index.js';
import { CheckedIrqLine, ports } from './helpers.js';

// Names as in Linux's drivers/input/serio/i8042.h and atkbd.c.
const DATA = 0, STATUS = 4, COMMAND = 4;
const STR_OBF = 0x01, STR_IBF = 0x02, STR_AUXDATA = 0x20, STR_KEYLOCK = 0x10;
const CTR_KBDINT = 0x01, CTR_KBDDIS = 0x10, CTR_XLATE = 0x40;
const SET1_CTRL_ALT_DEL = [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d];
const SET2_CTRL_ALT_DEL = [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14];

function setup() {
  const irq = new CheckedIrqLine();
  let resets = 0;
  const kbc = new I8042({ irq, onReset: () => resets++ });
  const io = ports(kbc);
  /** i8042_command: write a command (and parameters), read `replies` bytes, polling OBF as Linux does. */
  const command = (cmd: number, params: number[] = [], replies = 0): number[] => {
    assert.equal(io.inb(STATUS) & STR_IBF, 0);
    io.outb(COMMAND, cmd);
    for (const p of params) io.outb(DATA, p);
    const out: number[] = [];
    for (let i = 0; i < replies; i++) {
      assert.ok(io.inb(STATUS) & STR_OBF, `reply ${i} to 0x${cmd.toString(16)} is there`);
      out.push(io.inb(DATA));
    }
    return out;
  };
  /** Everything in the output buffer. */
  const drain = (): number[] => {
    const out: number[] = [];
    while (io.inb(STATUS) & STR_OBF) out.push(io.inb(DATA));
    return out;
  };
  return { kbc, irq, io, command, drain, resets: () => resets };
}

test("i8042: Linux's controller probe (flush, CTR read/write, self-test, interface test)", () => {
  const k = setup();
  assert.deepEqual(k.drain(), [], 'i8042_flush finds nothing');
  const status = k.io.inb(STATUS);
  assert.ok(status & STR_KEYLOCK, 'keyboard not inhibited (no "Keylock active")');
  assert.notEqual(status, 0xff, 'a controller is there');
  const [ctr1] = k.command(0x20, [], 1);
  const [ctr2] = k.command(0x20, [], 1);
  assert.equal(ctr1, ctr2, 'two consecutive CTR reads agree');
  assert.ok(ctr1! & CTR_XLATE, 'firmware left translation on');
  const ctr = (ctr1! & ~CTR_KBDDIS) | CTR_KBDINT;
  k.command(0x60, [ctr]);
  assert.deepEqual(k.command(0x20, [], 1), [ctr]);
  assert.deepEqual(k.command(0xaa, [], 1), [0x55], 'self-test passed');
  assert.deepEqual(k.command(0xab, [], 1), [0x00], 'keyboard interface ok');
  assert.deepEqual(k.drain(), []);
});

test('i8042: the AUX probe finds no AUX port without waiting for a timeout', () => {
  const k = setup();
  k.io.outb(COMMAND, 0xd3);
  k.io.outb(DATA, 0x5a);
  const st = k.io.inb(STATUS);
  assert.ok(st & STR_OBF, 'a reply is there at once (no 500 ms timeout)');
  assert.equal(st & STR_AUXDATA, 0, 'not from the AUX port: Linux takes it as "auxerr"');
  // Linux then runs AUX_TEST, reading the stale loop byte first; either reply rules the port out.
  const r = k.command(0xa9, [], 2);
  assert.deepEqual(r, [0x5a, 0x02]);
  k.command(0xa8);
  assert.equal(k.command(0x20, [], 1)[0]! & 0x20, 0, 'AUX enable clears CTR.AUXDIS');
  k.command(0xa7);
  assert.equal(k.command(0x20, [], 1)[0]! & 0x20, 0x20);
  k.io.outb(COMMAND, 0xd4);
  k.io.outb(DATA, 0xff);
  assert.deepEqual(k.drain(), [], 'a byte sent to the absent AUX device vanishes, not to the keyboard');
});

test("i8042: atkbd's keyboard probe and setup, one IRQ edge per byte", () => {
  const k = setup();
  const rises = k.irq.rises;
  k.io.outb(DATA, 0xf2); // ATKBD_CMD_GETID
  assert.deepEqual(k.drain(), [0xfa, 0xab, 0x41], 'MF2 id, second byte translated');
  assert.equal(k.irq.rises - rises, 3, 'each byte raised IRQ 1 anew');
  assert.equal(k.irq.level, false);
  k.io.outb(DATA, 0xf5); // deactivate
  k.io.outb(DATA, 0xed); // set LEDs
  k.io.outb(DATA, 0x00);
  k.io.outb(DATA, 0xf3); // typematic rate
  k.io.outb(DATA, 0x20);
  k.io.outb(DATA, 0xf4); // activate
  assert.deepEqual(k.drain(), [0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa]);
  k.io.outb(DATA, 0xf0);
  k.io.outb(DATA, 0x00);
  assert.deepEqual(k.drain(), [0xfa, 0xfa, 0x41], 'scan code set 2, as read through translation');
  k.io.outb(DATA, 0xee);
  assert.deepEqual(k.drain(), [0xee], 'echo');
  k.io.outb(DATA, 0xff);
  assert.deepEqual(k.drain(), [0xfa, 0xaa], 'reset: ACK then BAT passed');
  k.io.outb(DATA, 0x42);
  assert.deepEqual(k.drain(), [0xfe], 'unknown keyboard command: resend');
  k.io.outb(DATA, 0xfe);
  assert.deepEqual(k.drain(), [0xfe], 'resend repeats the last byte');
  k.io.outb(DATA, 0xf0);
  k.io.outb(DATA, 0x09);
  assert.deepEqual(k.drain(), [0xfa, 0xfe], 'invalid scan code set refused');
  // Without translation the keyboard's own bytes show.
  k.command(0x60, [CTR_KBDINT]);
  k.io.outb(DATA, 0xf2);
  assert.deepEqual(k.drain(), [0xfa, 0xab, 0x83]);
  k.io.outb(DATA, 0xf0);
  k.io.outb(DATA, 0x00);
  assert.deepEqual(k.drain(), [0xfa, 0xfa, 0x02]);
});

test('i8042: reset line — 0xFE pulses reset, output port bit 0 written low resets, others do not', () => {
  const k = setup();
  k.io.outb(COMMAND, 0xff); // pulse nothing
  assert.equal(k.resets(), 0);
  k.io.outb(COMMAND, 0xfe);
  assert.equal(k.resets(), 1);
  assert.deepEqual(k.command(0xd0, [], 1), [0x03], 'output port: reset deasserted, A20 on');
  k.command(0xd1, [0x03]);
  assert.equal(k.resets(), 1);
  k.command(0xd1, [0x02]);
  assert.equal(k.resets(), 2);
  k.io.outb(COMMAND, 0x12); // unknown command: ignored
  assert.deepEqual(k.drain(), []);
});

test('i8042: Ctrl-Alt-Del arrives as set-1 scan codes through translation, each with an IRQ 1 edge', () => {
  const k = setup();
  k.command(0x60, [CTR_KBDINT | CTR_XLATE | 0x04]);
  const rises = k.irq.rises;
  assert.equal(k.kbc.sendCtrlAltDel(), true);
  assert.equal(k.irq.level, true);
  // i8042_interrupt: one status read and one data read per interrupt.
  const got: number[] = [];
  while (k.irq.level) {
    assert.ok(k.io.inb(STATUS) & STR_OBF);
    got.push(k.io.inb(DATA));
  }
  assert.deepEqual(got, SET1_CTRL_ALT_DEL);
  assert.equal(k.irq.rises - rises, SET1_CTRL_ALT_DEL.length);
});

test('i8042: Ctrl-Alt-Del in set 2 untranslated; refused while the keyboard is disabled; held while the interface is', () => {
  const k = setup();
  k.command(0x60, [CTR_KBDINT]);
  assert.equal(k.kbc.sendCtrlAltDel(), true);
  assert.deepEqual(k.drain(), SET2_CTRL_ALT_DEL);
  k.io.outb(DATA, 0xf5);
  assert.deepEqual(k.drain(), [0xfa]);
  assert.equal(k.kbc.sendCtrlAltDel(), false, 'keyboard not scanning');
  k.io.outb(DATA, 0xf4);
  k.drain();
  k.command(0xad);
  assert.equal(k.kbc.sendCtrlAltDel(), true);
  assert.deepEqual(k.command(0x20, [], 1), [CTR_KBDINT | CTR_KBDDIS], 'controller replies still come through');
  assert.deepEqual(k.drain(), [], 'keyboard bytes wait while its interface is disabled');
  assert.equal(k.irq.level, false);
  k.command(0xae);
  assert.deepEqual(k.drain(), SET2_CTRL_ALT_DEL);
  let accepted = 0;
  while (accepted < 10 && k.kbc.sendCtrlAltDel()) accepted++;
  assert.ok(accepted >= 2 && accepted < 10, `the keyboard buffer is bounded (${accepted} sequences fit)`);
  assert.deepEqual(k.drain(), new Array<number[]>(accepted).fill(SET2_CTRL_ALT_DEL).flat(), 'only whole sequences, none cut');
});

test('i8042: IRQ 1 only with CTR.KBDINT; empty data reads repeat the last byte; wide and split-port access', () => {
  const k = setup();
  k.command(0x60, [0x00]);
  k.command(0xaa);
  assert.ok(k.io.inb(STATUS) & STR_OBF);
  assert.equal(k.irq.level, false, 'KBDINT clear: no interrupt');
  k.command(0x60, [CTR_KBDINT]);
  assert.equal(k.irq.level, true, 'enabling KBDINT with a byte waiting raises the line');
  assert.equal(k.io.inb(DATA), 0x55);
  assert.equal(k.io.inb(DATA), 0x55, 'empty buffer reads the last byte again');
  const d = new Uint8Array(4);
  k.kbc.read(2, d);
  assert.deepEqual([...d], [0xff, 0xff, k.io.inb(STATUS), 0xff]);
  const b = new Uint8Array(1);
  k.kbc.commandPort.read(0, b);
  assert.equal(b[0], k.io.inb(STATUS));
  k.kbc.commandPort.write(0, Uint8Array.of(0xfe));
  assert.equal(k.resets(), 1);
  k.kbc.dataPort.write(0, Uint8Array.of(0xee));
  k.kbc.dataPort.read(0, b);
  assert.equal(b[0], 0xee);
});

test('i8042: state survives a JSON round trip; bad state is refused with a clear error', () => {
  const k = setup();
  k.command(0x60, [CTR_KBDINT | CTR_XLATE]);
  k.io.outb(DATA, 0xed); // leaves the keyboard waiting for the LED byte
  k.kbc.sendCtrlAltDel();
  k.io.outb(COMMAND, 0xd1); // leaves the controller waiting for its data byte
  const saved = JSON.parse(JSON.stringify(k.kbc.saveState())) as I8042State;
  const t = setup();
  t.kbc.restoreState(saved);
  assert.deepEqual(t.kbc.saveState(), k.kbc.saveState());
  assert.equal(t.irq.level, true);
  t.io.outb(DATA, 0x03); // completes 0xD1
  assert.deepEqual(t.drain(), [0xfa, ...SET1_CTRL_ALT_DEL]);
  assert.equal(t.resets(), 0);

  const bad: [string, unknown, RegExp][] = [
    ['null', null, /i8042: state must be an object/],
    ['ctr', { ...saved, ctr: -1 }, /i8042: ctr must be an integer in 0\.\.255/],
    ['pending command', { ...saved, pendingCommand: 0x20 }, /pendingCommand is not a command that takes data/],
    ['output', { ...saved, output: 'x' }, /i8042: output must be an integer/],
    ['queue too long', { ...saved, keyboardQueue: new Array(33).fill(1) }, /keyboardQueue holds 33 bytes, more than 32/],
    ['keyboard missing', { ...saved, keyboard: undefined }, /i8042\.keyboard: state must be an object/],
    ['scan code set', { ...saved, keyboard: { ...saved.keyboard, scancodeSet: 0 } }, /scancodeSet must be 1, 2 or 3/],
    ['keyboard pending', { ...saved, keyboard: { ...saved.keyboard, pendingCommand: 0xf4 } }, /pendingCommand is not a command that takes a parameter/],
  ];
  for (const [why, state, message] of bad) {
    const u = setup();
    const before = u.kbc.saveState();
    assert.throws(() => u.kbc.restoreState(state as I8042State), (e: unknown) => e instanceof DeviceStateError && message.test(e.message), why);
    assert.deepEqual(u.kbc.saveState(), before, `${why}: nothing changed`);
  }
});

test('i8042: random port traffic never throws; IRQ 1 always equals OBF && KBDINT', () => {
  const op = fc.oneof(
    fc.record({ write: fc.boolean(), offset: fc.integer({ min: -1, max: I8042_PORT_SPAN + 1 }), size: fc.constantFrom(1, 2, 4), value: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.constant('ctrl-alt-del' as const),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const k = setup();
      for (const o of ops) {
        if (o === 'ctrl-alt-del') {
          k.kbc.sendCtrlAltDel();
        } else {
          const data = new Uint8Array(4);
          new DataView(data.buffer).setUint32(0, o.value >>> 0, true);
          if (o.write) k.kbc.write(o.offset, data.subarray(0, o.size));
          else k.kbc.read(o.offset, data.subarray(0, o.size));
        }
        assert.equal(typeof k.irq.level, 'boolean');
        const obf = (k.io.inb(STATUS) & STR_OBF) !== 0;
        assert.equal(k.irq.level, obf && (k.kbc.saveState().ctr & CTR_KBDINT) !== 0);
      }
    }),
    { numRuns: 300 },
  );
});

test('i8042: no scan code is lost or reordered among controller traffic', () => {
  // Controller commands that do not talk to the keyboard; their replies never look like these scan codes.
  const op = fc.oneof(
    fc.constant({ kind: 'cad' as const }),
    fc.constant({ kind: 'read' as const }),
    fc.constant({ kind: 'status' as const }),
    fc.record({ kind: fc.constant('cmd' as const), cmd: fc.constantFrom(0x20, 0xaa, 0xab, 0xa7, 0xa8, 0xad, 0xae, 0xd0) }),
  );
  const codes = new Set(SET1_CTRL_ALT_DEL);
  fc.assert(
    fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const k = setup();
      const sent: number[] = [];
      const got: number[] = [];
      for (const o of ops) {
        if (o.kind === 'cad') {
          if (k.kbc.sendCtrlAltDel()) sent.push(...SET1_CTRL_ALT_DEL);
        } else if (o.kind === 'read') {
          if (k.io.inb(STATUS) & STR_OBF) got.push(k.io.inb(DATA));
        } else if (o.kind === 'status') {
          k.io.inb(STATUS);
        } else {
          k.io.outb(COMMAND, o.cmd);
        }
      }
      k.command(0xae);
      got.push(...k.drain());
      assert.deepEqual(got.filter((b) => codes.has(b)), sent);
    }),
    { numRuns: 300 },
  );
});
