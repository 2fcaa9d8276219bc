import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { EscapeParser, HELP_TEXT, attachConsole, type ConsoleEvent, type SerialInput } from '../../src/backends/terminal.js';
import { Serial16550 } from '../../src/devices/legacy/index.js';
import type { IrqLine } from '../../src/bus/index.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const CTRL_A = '\x01';
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function dataOf(events: ConsoleEvent[]): string {
  return events.map((e) => (e.kind === 'data' ? new TextDecoder().decode(e.bytes) : `<${e.kind}>`)).join('');
}

test('terminal: EscapeParser maps Ctrl-A sequences and passes everything else', () => {
  const p = new EscapeParser();
  assert.equal(dataOf(p.feed(enc('echo hi\r'))), 'echo hi\r');
  assert.equal(dataOf(p.feed(enc(`a${CTRL_A}xb`))), 'a<quit>b');
  assert.equal(dataOf(p.feed(enc(`${CTRL_A}X`))), '<quit>');
  assert.equal(dataOf(p.feed(enc(`${CTRL_A}c${CTRL_A}C`))), '<ctrl-alt-del><ctrl-alt-del>');
  assert.equal(dataOf(p.feed(enc(`${CTRL_A}h${CTRL_A}H${CTRL_A}?`))), '<help><help><help>');
  const literal = p.feed(enc(`x${CTRL_A}${CTRL_A}y`));
  assert.equal(literal.length, 1, 'one data event');
  assert.deepEqual([...(literal[0] as { bytes: Uint8Array }).bytes], [0x78, 0x01, 0x79], 'Ctrl-A Ctrl-A sends one Ctrl-A');
  assert.equal(dataOf(p.feed(enc(`1${CTRL_A}z2`))), '12', 'an unknown key after Ctrl-A is swallowed');
  assert.equal(dataOf(p.feed(enc('\x03\x04'))), '\x03\x04', 'Ctrl-C and Ctrl-D go to the guest');
});

test('terminal: EscapeParser keeps the escape across reads', () => {
  const p = new EscapeParser();
  assert.equal(dataOf(p.feed(enc(`ab${CTRL_A}`))), 'ab');
  assert.equal(dataOf(p.feed(enc('x'))), '<quit>');
  assert.equal(dataOf(p.feed(enc(CTRL_A))), '');
  assert.equal(dataOf(p.feed(enc(CTRL_A))), CTRL_A);
  assert.equal(dataOf(p.feed(new Uint8Array(0))), '');
  const other = new EscapeParser(0x1d);
  assert.equal(dataOf(other.feed(enc(`${CTRL_A}\x1dx`))), `${CTRL_A}<quit>`, 'configurable escape key');
});

/** A UART stand-in that takes at most `room` bytes until `drain` is called. */
class SlowSerial implements SerialInput {
  received: number[] = [];
  queued: number[] = [];
  private listeners = new Set<() => void>();
  constructor(private readonly room: number) {}
  enqueueInput(bytes: Uint8Array): number {
    const n = Math.min(bytes.length, this.room - this.queued.length);
    for (let i = 0; i < n; i++) this.queued.push(bytes[i]!);
    return n;
  }
  onInputSpace(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  /** The guest reads everything queued; the UART reports room. */
  drain(): void {
    this.received.push(...this.queued.splice(0));
    for (const l of this.listeners) l();
  }
}

function collect(stream: PassThrough): () => string {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks).toString('latin1');
}

function fakeTty(): PassThrough & { isTTY: boolean; isRaw: boolean; modes: boolean[]; setRawMode(m: boolean): void } {
  const s = new PassThrough() as PassThrough & { isTTY: boolean; isRaw: boolean; modes: boolean[]; setRawMode(m: boolean): void };
  s.isTTY = true;
  s.isRaw = false;
  s.modes = [];
  s.setRawMode = (m: boolean) => {
    s.modes.push(m);
    s.isRaw = m;
  };
  return s;
}

test('terminal: with pipes, bytes pass through unchanged and end of input is not a quit', async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  const serial = new SlowSerial(1 << 20);
  let quits = 0;
  let cads = 0;
  const con = attachConsole({ input, output, serial, onQuit: () => quits++, onCtrlAltDel: () => cads++ });
  assert.equal(con.raw, false);
  input.write(Buffer.from(`ls${CTRL_A}x${CTRL_A}c\x03\n`, 'latin1'));
  input.end();
  await turn();
  await turn();
  assert.equal(Buffer.from(serial.queued).toString('latin1'), `ls${CTRL_A}x${CTRL_A}c\x03\n`);
  assert.equal(quits, 0);
  assert.equal(cads, 0);
  con.detach();
});

test('terminal: on a TTY, raw mode, escape keys, help, and the mode restored on quit and detach', async () => {
  const input = fakeTty();
  const output = new PassThrough();
  const text = collect(output);
  const serial = new SlowSerial(1 << 20);
  let quits = 0;
  let cads = 0;
  const exitListeners = process.listenerCount('exit');
  const con = attachConsole({ input, output, serial, onQuit: () => quits++, onCtrlAltDel: () => cads++ });
  assert.deepEqual(input.modes, [true]);
  assert.equal(con.raw, true);
  assert.equal(process.listenerCount('exit'), exitListeners + 1, 'restores the terminal at process exit');
  input.write(Buffer.from(`top${CTRL_A}c${CTRL_A}h${CTRL_A}${CTRL_A}`, 'latin1'));
  await turn();
  await turn();
  assert.equal(Buffer.from(serial.queued).toString('latin1'), `top${CTRL_A}`);
  assert.equal(cads, 1);
  assert.equal(text(), HELP_TEXT);
  input.write(Buffer.from(`${CTRL_A}x`, 'latin1'));
  await turn();
  assert.equal(quits, 1);
  assert.deepEqual(input.modes, [true, false], 'quit restores the mode before onQuit runs');
  con.detach();
  con.detach();
  assert.deepEqual(input.modes, [true, false], 'restored once');
  assert.equal(process.listenerCount('exit'), exitListeners);
});

test('terminal: a crash (uncaught exception) still restores the terminal mode', () => {
  const moduleUrl = new URL('../../src/backends/terminal.js', import.meta.url).href;
  const script = `
    import { PassThrough } from 'node:stream';
    import { attachConsole } from ${JSON.stringify(moduleUrl)};
    const input = new PassThrough();
    input.isTTY = true;
    input.setRawMode = (m) => process.stdout.write('raw=' + m + ';');
    attachConsole({ input, output: new PassThrough(), serial: { enqueueInput: (b) => b.length, onInputSpace: () => () => {} },
      onQuit() {}, onCtrlAltDel() {} });
    setImmediate(() => { throw new Error('boom'); });
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
  assert.notEqual(r.status, 0, 'the child crashed');
  assert.match(r.stderr, /boom/);
  assert.equal(r.stdout, 'raw=true;raw=false;');
});

test('terminal: guest output is batched into one write per event-loop turn', async () => {
  const input = new PassThrough();
  const writes: Buffer[] = [];
  const output = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk);
      cb();
    },
  });
  const con = attachConsole({ input, output, serial: new SlowSerial(0), onQuit() {}, onCtrlAltDel() {} });
  for (const c of enc('Linux version 6.1.0\n')) con.writeByte(c);
  con.write(enc('more'));
  assert.equal(writes.length, 0, 'nothing written synchronously');
  await con.flush();
  assert.equal(writes.length, 1);
  assert.equal(writes[0]!.toString(), 'Linux version 6.1.0\nmore');
  await con.close();
});

test('terminal: output under backpressure is held, in order, never dropped, never blocking', async () => {
  const input = new PassThrough();
  const got: Buffer[] = [];
  let inFlight = 0;
  // The stream holds its writes until the rounds below are over (then completes them 2 ms apart): a backlog must form
  // however fast or slow the host runs the rounds.
  let hold = true;
  const held: (() => void)[] = [];
  const output = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _enc, cb) {
      inFlight++;
      const done = (): void => {
        got.push(chunk);
        inFlight--;
        cb();
      };
      if (hold) held.push(done);
      else setTimeout(done, 2);
    },
  });
  const con = attachConsole({ input, output, serial: new SlowSerial(0), onQuit() {}, onCtrlAltDel() {} });
  const expected: number[] = [];
  for (let round = 0; round < 20; round++) {
    const start = Date.now();
    for (let i = 0; i < 500; i++) {
      const b = (round * 500 + i) & 0xff;
      expected.push(b);
      con.writeByte(b);
    }
    assert.ok(Date.now() - start < 50, 'writeByte does not block');
    await turn();
    assert.ok(inFlight <= 1, 'one write outstanding at a time while the stream pushes back');
  }
  assert.ok(con.pendingOutput > 0, 'a backlog formed');
  hold = false;
  for (const done of held.splice(0)) done();
  await con.close();
  assert.equal(con.pendingOutput, 0);
  assert.deepEqual([...Buffer.concat(got)], expected);
});

test('terminal: input waits for a slow UART, stdin pauses and resumes, nothing is lost', async () => {
  const input = new PassThrough();
  const serial = new SlowSerial(16);
  const con = attachConsole({ input, output: new PassThrough(), serial, onQuit() {}, onCtrlAltDel() {}, inputHighWater: 64 });
  const sent: number[] = [];
  for (let i = 0; i < 40; i++) {
    const chunk = Buffer.alloc(25, 0);
    for (let j = 0; j < 25; j++) chunk[j] = (i * 25 + j) & 0xff;
    sent.push(...chunk);
    input.write(chunk);
  }
  await turn();
  assert.ok(input.isPaused(), 'stdin paused above the high-water mark');
  assert.ok(con.pendingInput >= 64);
  for (let i = 0; i < 200 && serial.received.length + serial.queued.length < sent.length; i++) {
    serial.drain();
    await turn();
  }
  serial.drain();
  assert.deepEqual(serial.received, sent);
  assert.equal(con.pendingInput, 0);
  assert.ok(!input.isPaused(), 'stdin resumed once the backlog drained');
  con.detach();
});

test('terminal: end to end with the 16550A: a guest reading RBR pulls held input through', async () => {
  const irq: IrqLine = { set() {} };
  const uart = new Serial16550({ irq, out() {} });
  uart.write(2, Uint8Array.of(0x01)); // FCR: FIFO on, as Linux's 8250 driver sets it
  const input = new PassThrough();
  const con = attachConsole({ input, output: new PassThrough(), serial: uart, onQuit() {}, onCtrlAltDel() {} });
  const line = 'a command line much longer than the sixteen-byte FIFO\r';
  input.write(line);
  await turn();
  assert.equal(con.pendingInput, line.length - 16);
  const b = new Uint8Array(1);
  const got: number[] = [];
  for (;;) {
    uart.read(5, b); // LSR
    if ((b[0]! & 1) === 0) break;
    uart.read(0, b); // RBR
    got.push(b[0]!);
  }
  assert.equal(String.fromCharCode(...got), line);
  assert.equal(con.pendingInput, 0);
  con.detach();
});
