import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DeviceStateError,
  SERIAL_FIFO_SIZE,
  SERIAL_PORT_SPAN,
  Serial16550,
  type SerialState,
} from '../../src/devices/legacy/index.js';
import { CheckedIrqLine, ports } from './helpers.js';

// Register offsets and values as Linux's include/uapi/linux/serial_reg.h names them.
const RX = 0, TX = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const IER_RDI = 0x01, IER_THRI = 0x02, IER_RLSI = 0x04, IER_MSI = 0x08;
const MCR_DTR = 0x01, MCR_RTS = 0x02, MCR_OUT1 = 0x04, MCR_OUT2 = 0x08, MCR_LOOP = 0x10;
const LSR_DR = 0x01, LSR_OE = 0x02, LSR_THRE = 0x20, LSR_TEMT = 0x40;
const FCR_ENABLE_FIFO = 0x01, FCR_CLEAR_RCVR = 0x02, FCR_CLEAR_XMIT = 0x04, FCR_R_TRIG_10 = 0x80;
const LCR_WLEN8 = 0x03, LCR_DLAB = 0x80, LCR_CONF_MODE_B = 0xbf;

function setup() {
  const irq = new CheckedIrqLine();
  const sent: number[] = [];
  const uart = new Serial16550({ irq, out: (b) => sent.push(b) });
  return { uart, irq, sent, ...ports(uart) };
}

/** What serial8250_do_startup + set_termios leave behind on a 16550A: 8N1, FIFO with trigger 8, DTR/RTS/OUT2. */
function linuxOpen(s: ReturnType<typeof setup>): void {
  s.outb(FCR, FCR_ENABLE_FIFO | FCR_CLEAR_RCVR | FCR_CLEAR_XMIT);
  s.outb(FCR, 0);
  s.outb(LCR, LCR_WLEN8 | LCR_DLAB);
  s.outb(DLL, 1);
  s.outb(DLM, 0);
  s.outb(LCR, LCR_WLEN8);
  s.outb(FCR, FCR_ENABLE_FIFO | FCR_R_TRIG_10);
  s.outb(MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
}

test('serial: the 8250 autoconfig probe recognises a 16550A', () => {
  const s = setup();
  // IER probe: the upper nibble never sticks.
  s.outb(IER, 0);
  assert.equal(s.inb(IER), 0);
  s.outb(IER, 0xff);
  assert.equal(s.inb(IER), 0x0f);
  s.outb(IER, 0);
  // Scratch register holds what was written.
  s.outb(SCR, 0xa5);
  assert.equal(s.inb(SCR), 0xa5);
  s.outb(SCR, 0x5a);
  assert.equal(s.inb(SCR), 0x5a);
  // Loopback test: LOOP | OUT2 | RTS must read back as DCD | CTS.
  s.outb(MCR, MCR_LOOP | MCR_OUT2 | MCR_RTS);
  assert.equal(s.inb(MSR) & 0xf0, 0x90);
  s.outb(MCR, 0);
  // With LCR = 0xBF, offset 2 is IIR here (no EFR): non-zero, so no 16650-style EFR is found.
  s.outb(LCR, LCR_CONF_MODE_B);
  assert.notEqual(s.inb(IIR), 0);
  s.outb(LCR, 0);
  // FIFO detection: IIR bits 7:6 = 11 once the FIFO is enabled (16550A), 00 before.
  assert.equal(s.inb(IIR) >> 6, 0);
  s.outb(FCR, FCR_ENABLE_FIFO);
  assert.equal(s.inb(IIR) >> 6, 3);
  // TI16750 check: IIR bit 5 (64-byte FIFO) never sets, so IIR >> 5 stays 6 whatever FCR bit 5 says.
  s.outb(FCR, FCR_ENABLE_FIFO | 0x20);
  assert.equal(s.inb(IIR) >> 5, 6);
  s.outb(LCR, LCR_DLAB);
  s.outb(FCR, FCR_ENABLE_FIFO | 0x20);
  assert.equal(s.inb(IIR) >> 5, 6);
  s.outb(LCR, 0);
  // LSR safety check: an idle 16550A never reads 0xFF.
  assert.equal(s.inb(LSR), LSR_THRE | LSR_TEMT);
  assert.deepEqual(s.sent, [], 'the probe transmits nothing');
});

test('serial: THRE interrupt as serial8250_do_startup tests it (raised by enabling THRI, cleared by reading IIR)', () => {
  const s = setup();
  linuxOpen(s);
  s.outb(IER, IER_THRI);
  assert.equal(s.inb(IIR), 0xc2, 'THRE pending as soon as THRI is enabled');
  assert.equal(s.inb(IIR), 0xc1, 'reading IIR with THRE as the source cleared it');
  s.outb(IER, 0);
  s.outb(IER, IER_THRI);
  assert.equal(s.inb(IIR), 0xc2, 're-enabling THRI raises it again (no UART_BUG_THRE)');
  s.outb(IER, 0);
  assert.equal(s.inb(IIR), 0xc1);
});

test('serial: interrupt-driven transmit drives IRQ only with OUT2', () => {
  const s = setup();
  linuxOpen(s);
  assert.equal(s.irq.level, false);
  s.outb(IER, IER_THRI);
  assert.equal(s.irq.level, true, 'THRE pending with OUT2 set');
  for (const c of 'ok\n') s.outb(TX, c.charCodeAt(0));
  assert.deepEqual(String.fromCharCode(...s.sent), 'ok\n');
  assert.equal(s.irq.level, true, 'THR is empty again after each write');
  assert.equal(s.inb(IIR), 0xc2);
  assert.equal(s.irq.level, false, 'IIR read acknowledged THRE');
  s.outb(TX, 0x21);
  assert.equal(s.irq.level, true);
  s.outb(MCR, MCR_DTR | MCR_RTS);
  assert.equal(s.irq.level, false, 'OUT2 clear gates the interrupt off');
  assert.equal(s.inb(IIR), 0xc2, 'the interrupt is still pending inside the UART');
  s.outb(MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
  assert.equal(s.irq.level, false, 'acknowledged while gated');
  s.outb(IER, 0);
  assert.equal(s.inb(LSR) & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
});

test('serial: receive with FIFO trigger level, timeout id below it, IRQ drops when drained', () => {
  const s = setup();
  linuxOpen(s);
  s.outb(IER, IER_RDI | IER_RLSI);
  assert.equal(s.uart.enqueueInput(new TextEncoder().encode('ls\r')), 3);
  assert.equal(s.irq.level, true);
  assert.equal(s.inb(IIR), 0xcc, 'below the trigger level (8): character timeout');
  assert.equal(s.uart.enqueueInput(new TextEncoder().encode(' -la\r')), 5);
  assert.equal(s.inb(IIR), 0xc4, 'at the trigger level: received data available');
  // serial8250_rx_chars: read while LSR.DR.
  const got: number[] = [];
  while (s.inb(LSR) & LSR_DR) got.push(s.inb(RX));
  assert.equal(String.fromCharCode(...got), 'ls\r -la\r');
  assert.equal(s.inb(IIR), 0xc1);
  assert.equal(s.irq.level, false);
  assert.equal(s.inb(RX), 0, 'empty receiver reads 0');
});

test('serial: interrupt priority RLS > RDA > THRE > MSI', () => {
  const s = setup();
  s.outb(FCR, FCR_ENABLE_FIFO);
  s.outb(MCR, MCR_LOOP);
  for (let i = 0; i < SERIAL_FIFO_SIZE + 1; i++) s.outb(TX, i); // one more than fits: overrun
  s.outb(MCR, MCR_LOOP | MCR_RTS); // CTS changes: a modem status delta
  s.outb(IER, IER_RDI | IER_THRI | IER_RLSI | IER_MSI);
  assert.equal(s.inb(IIR), 0xc6, 'receiver line status first');
  assert.equal(s.inb(LSR), LSR_DR | LSR_OE | LSR_THRE | LSR_TEMT);
  assert.equal(s.inb(LSR) & LSR_OE, 0, 'OE clears on read');
  assert.equal(s.inb(IIR), 0xc4, 'then data (16 bytes ≥ trigger 1)');
  const got: number[] = [];
  while (s.inb(LSR) & LSR_DR) got.push(s.inb(RX));
  assert.deepEqual(got, [...Array(SERIAL_FIFO_SIZE).keys()], 'the FIFO kept its bytes; the 17th was lost');
  assert.equal(s.inb(IIR), 0xc2, 'then THRE');
  assert.equal(s.inb(IIR), 0xc0, 'then modem status');
  assert.equal(s.inb(MSR) & 0x0f, 0x0b, 'entering loopback dropped CTS, DSR, DCD; RTS raised CTS again');
  assert.equal(s.inb(IIR), 0xc1, 'nothing left');
});

test('serial: loopback wiring, deltas, and no interrupt or host input while looped', () => {
  const s = setup();
  s.outb(IER, IER_RDI | IER_MSI);
  assert.equal(s.inb(MSR), 0xb0, 'outside loopback: CTS, DSR, DCD asserted');
  s.outb(MCR, MCR_LOOP | MCR_OUT2);
  assert.equal(s.inb(MSR), 0x80 | 0x01 | 0x02, 'DCD from OUT2; CTS and DSR fell');
  s.outb(MCR, MCR_LOOP | MCR_OUT2 | MCR_OUT1 | MCR_DTR);
  assert.equal(s.inb(MSR), 0x80 | 0x40 | 0x20 | 0x02);
  s.outb(MCR, MCR_LOOP | MCR_OUT2 | MCR_DTR);
  assert.equal(s.inb(MSR) & 0x0f, 0x04, 'trailing edge of RI');
  s.outb(TX, 0x55);
  assert.deepEqual(s.sent, [], 'looped data does not leave the UART');
  assert.equal(s.inb(IIR) & 0x0f, 0x04, 'looped byte is received');
  assert.equal(s.irq.level, false, 'OUT2 is forced inactive in loopback: no interrupt on a PC');
  assert.equal(s.uart.wantsInput(), false);
  assert.equal(s.uart.enqueueInput(Uint8Array.of(1, 2)), 0, 'serial input is disconnected in loopback');
  assert.equal(s.inb(RX), 0x55);
  s.outb(MCR, MCR_OUT2);
  assert.equal(s.inb(MSR), 0xb0 | 0x01, 'back to the connected cable: CTS rose; DSR and DCD were already asserted');
});

test('serial: non-FIFO mode holds one byte; FIFO enable change and FCR clear empty the receiver', () => {
  const s = setup();
  assert.equal(s.uart.enqueueInput(Uint8Array.of(1, 2, 3)), 1);
  assert.equal(s.uart.wantsInput(), false);
  s.outb(FCR, FCR_ENABLE_FIFO);
  assert.equal(s.inb(LSR) & LSR_DR, 0, 'enabling the FIFO cleared the receiver');
  assert.equal(s.uart.enqueueInput(Uint8Array.of(1, 2, 3)), 3);
  s.outb(FCR, FCR_ENABLE_FIFO | FCR_CLEAR_RCVR);
  assert.equal(s.inb(LSR) & LSR_DR, 0);
  assert.equal(s.inb(IIR) >> 6, 3, 'FIFO still enabled after a clear');
  s.outb(FCR, 0x80); // bits other than 0 are not programmed while FCR0 = 0
  assert.equal(s.inb(IIR) >> 6, 0);
  assert.equal(s.uart.saveState().fcr, 0);
});

test('serial: divisor latch behind DLAB, LCR readable, wide accesses split into byte cycles', () => {
  const s = setup();
  s.outb(IER, 0x05);
  s.outb(LCR, LCR_DLAB | LCR_WLEN8);
  assert.equal(s.inb(LCR), 0x83);
  s.uart.write(DLL, Uint8Array.of(0x34, 0x12)); // outw: DLL then DLM
  const w = new Uint8Array(2);
  s.uart.read(DLL, w);
  assert.deepEqual([...w], [0x34, 0x12]);
  s.outb(LCR, LCR_WLEN8);
  assert.equal(s.inb(IER), 0x05, 'IER untouched by divisor writes');
  s.outb(SCR, 0x77);
  const d = new Uint8Array(4);
  s.uart.read(SCR, d);
  assert.deepEqual([...d], [0x77, 0xff, 0xff, 0xff], 'bytes beyond the UART float');
  s.uart.write(SERIAL_PORT_SPAN + 3, Uint8Array.of(1, 2, 3, 4));
  s.uart.read(-1, d);
  assert.equal(d[0], 0xff);
});

test('serial: host input is flow-controlled, never dropped', () => {
  const s = setup();
  linuxOpen(s);
  const text = new TextEncoder().encode('a line longer than sixteen bytes\n');
  let pending = text;
  let notified = 0;
  s.uart.onInputSpace(() => {
    notified++;
    pending = pending.subarray(s.uart.enqueueInput(pending));
  });
  pending = pending.subarray(s.uart.enqueueInput(pending));
  assert.equal(pending.length, text.length - SERIAL_FIFO_SIZE);
  assert.equal(s.uart.wantsInput(), false);
  const got: number[] = [];
  while (s.inb(LSR) & LSR_DR) got.push(s.inb(RX));
  assert.deepEqual(got, [...text]);
  assert.equal(pending.length, 0);
  assert.ok(notified >= 1 && notified <= text.length - SERIAL_FIFO_SIZE, `notified ${notified} times`);
  const before = notified;
  s.inb(RX);
  s.inb(LSR);
  assert.equal(notified, before, 'no notification without a refusal');
  const unsubscribe = s.uart.onInputSpace(() => assert.fail('unsubscribed listener ran'));
  unsubscribe();
  s.uart.enqueueInput(new Uint8Array(SERIAL_FIFO_SIZE + 1));
  s.inb(RX);
});

test('serial: state survives a JSON round trip; bad state is refused with a clear error', () => {
  const s = setup();
  linuxOpen(s);
  s.outb(IER, IER_RDI | IER_THRI);
  s.outb(SCR, 0x42);
  s.uart.enqueueInput(Uint8Array.of(7, 8, 9));
  const saved = JSON.parse(JSON.stringify(s.uart.saveState())) as SerialState;
  const t = setup();
  t.uart.restoreState(saved);
  assert.deepEqual(t.uart.saveState(), s.uart.saveState());
  assert.equal(t.irq.level, true, 'restore drives the line');
  assert.equal(t.inb(SCR), 0x42);
  assert.equal(t.inb(IIR), 0xcc);
  assert.deepEqual([t.inb(RX), t.inb(RX), t.inb(RX)], [7, 8, 9]);

  const bad: [string, unknown, RegExp][] = [
    ['not an object', 42, /serial: state must be an object/],
    ['array', [], /state must be an object/],
    ['IER high bits', { ...saved, ier: 0x10 }, /serial: ier has bits outside 0xf/],
    ['MCR high bits', { ...saved, mcr: 0x20 }, /serial: mcr has bits outside 0x1f/],
    ['byte out of range', { ...saved, scr: 256 }, /serial: scr must be an integer in 0\.\.255/],
    ['FIFO too long', { ...saved, rx: new Array(17).fill(0) }, /serial: rx holds 17 bytes, more than 16/],
    ['non-FIFO holds one', { ...saved, fcr: 0, rx: [1, 2] }, /rx holds 2 bytes, more than 1/],
    ['rx not bytes', { ...saved, rx: [1, 300] }, /rx must hold only bytes/],
    ['missing field', { ...saved, overrun: undefined }, /serial: overrun must be a boolean/],
    ['fcr reserved bits', { ...saved, fcr: 0x30 }, /fcr has bits outside/],
  ];
  for (const [why, state, message] of bad) {
    const u = setup();
    const before = u.uart.saveState();
    assert.throws(() => u.uart.restoreState(state as SerialState), (e: unknown) => e instanceof DeviceStateError && message.test(e.message), why);
    assert.deepEqual(u.uart.saveState(), before, `${why}: nothing changed`);
  }
});

const access = fc.record({
  write: fc.boolean(),
  offset: fc.integer({ min: -2, max: SERIAL_PORT_SPAN + 2 }),
  size: fc.constantFrom(1, 2, 4),
  value: fc.integer({ min: 0, max: 0xffffffff }),
});

test('serial: random register traffic never throws and keeps the line a boolean consistent with the registers', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(access, fc.uint8Array({ maxLength: 40 })), { maxLength: 200 }), (ops) => {
      const s = setup();
      for (const op of ops) {
        if (op instanceof Uint8Array) {
          const n = s.uart.enqueueInput(op);
          assert.ok(n >= 0 && n <= op.length);
        } else {
          const data = new Uint8Array(4);
          new DataView(data.buffer).setUint32(0, op.value >>> 0, true);
          if (op.write) s.uart.write(op.offset, data.subarray(0, op.size));
          else s.uart.read(op.offset, data.subarray(0, op.size));
        }
        assert.equal(typeof s.irq.level, 'boolean');
        // The line equals "interrupt pending && OUT2 (outside loopback)". IIR is read on a
        // restored twin, since reading it may acknowledge THRE.
        const st = s.uart.saveState();
        assert.ok(st.rx.length <= SERIAL_FIFO_SIZE);
        const twin = setup();
        twin.uart.restoreState(st);
        twin.outb(LCR, st.lcr & 0x7f);
        const pending = (twin.inb(IIR) & 1) === 0;
        const gated = (st.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
        assert.equal(s.irq.level, pending && gated);
      }
    }),
    { numRuns: 300 },
  );
});

test('serial: no host input byte is lost under random guest traffic (model check of the receive FIFO)', () => {
  const guestOp = fc.record({ write: fc.boolean(), offset: fc.integer({ min: 0, max: SERIAL_PORT_SPAN - 1 }), value: fc.integer({ min: 0, max: 0xff }) });
  fc.assert(
    fc.property(fc.array(fc.oneof(guestOp, fc.uint8Array({ minLength: 1, maxLength: 24 })), { maxLength: 300 }), (ops) => {
      const s = setup();
      // Model of the receive FIFO: host bytes carry their sequence number, looped bytes carry -1.
      const model: { byte: number; seq: number }[] = [];
      const pending: { byte: number; seq: number }[] = [];
      let produced = 0;
      const read: number[] = [];
      const clearedByGuest: number[] = [];
      const offer = (): void => {
        const n = s.uart.enqueueInput(Uint8Array.from(pending, (p) => p.byte));
        model.push(...pending.splice(0, n));
      };
      s.uart.onInputSpace(offer);
      for (const op of ops) {
        const st = s.uart.saveState();
        const fifo = (st.fcr & FCR_ENABLE_FIFO) !== 0;
        const cap = fifo ? SERIAL_FIFO_SIZE : 1;
        const loop = (st.mcr & MCR_LOOP) !== 0;
        const dlab = (st.lcr & LCR_DLAB) !== 0;
        if (op instanceof Uint8Array) {
          for (const byte of op) pending.push({ byte, seq: produced++ });
          offer();
        } else if (op.write) {
          // Apply the expected effect first: the access itself may make room and run `offer`.
          if (op.offset === TX && !dlab && loop) {
            if (model.length < cap) model.push({ byte: op.value, seq: -1 });
            else if (!fifo) {
              if (model[0]!.seq >= 0) clearedByGuest.push(model[0]!.seq);
              model[0] = { byte: op.value, seq: -1 };
            }
          } else if (op.offset === FCR) {
            const enable = (op.value & FCR_ENABLE_FIFO) !== 0;
            if (enable !== fifo || op.value & FCR_CLEAR_RCVR) {
              for (const m of model.splice(0)) if (m.seq >= 0) clearedByGuest.push(m.seq);
            }
          }
          s.outb(op.offset, op.value);
        } else {
          const expected = op.offset === RX && !dlab ? model.shift() : undefined;
          const v = s.inb(op.offset);
          if (op.offset === RX && !dlab) {
            assert.equal(v, expected?.byte ?? 0);
            if (expected && expected.seq >= 0) read.push(expected.seq);
          }
        }
        assert.deepEqual(s.uart.saveState().rx, model.map((m) => m.byte));
      }
      // Every host byte was read in order, cleared by the guest, or is still queued somewhere.
      for (let i = 1; i < read.length; i++) assert.ok(read[i]! > read[i - 1]!, 'host bytes arrive in order');
      const accounted = [...read, ...clearedByGuest, ...model.filter((m) => m.seq >= 0).map((m) => m.seq), ...pending.map((p) => p.seq)];
      assert.deepEqual(accounted.sort((a, b) => a - b), [...Array(produced).keys()]);
    }),
    { numRuns: 300 },
  );
});
