/**
 * The interactive console as a person uses it: `typevisor run --engine soft`
 * on a real terminal (a pseudo-terminal made by test/fixtures/pty-run.py),
 * the default image's busybox shell on ttyS0, keys typed one by one.
 *
 * Issue criterion: an interactive run gives a usable shell on a TTY (typing,
 * Ctrl-C in the guest, Ctrl-A X to quit) and leaves the terminal as it was.
 * One boot serves every step: Linux takes a minute or more to reach the shell
 * on the soft engine. Beside it: the console alone on a pty
 * (test/fixtures/pty-console.ts, a second), and what happens when the
 * terminal hangs up under a running VM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { PassThrough, Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { which } from '../image/helpers.js';
import { attachConsole, type SerialInput } from '../../src/backends/terminal.js';
import { linuxImageOrSkip } from './run-guest.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const PTY_RUN = `${REPO}test/fixtures/pty-run.py`;

/** Boot to the shell prompt: ~60–110 s alone on the soft engine, 220 s measured beside other soft-engine runs on 2 cores. */
const BOOT_MS = 420_000;
/** A command's answer on the slow soft CPU, with the host busy. */
const REPLY_MS = 30_000;
/** Ctrl-A X to the VMM's exit: stopping is immediate, this bounds a hang. */
const QUIT_MS = 15_000;
/** Between keystrokes: a quick typist. */
const KEY_GAP_MS = 40;

const CTRL_A = '\x01';
const CTRL_C = '\x03';
/** What the shell script around the VMM prints after it, then `stty -a` follows. */
const EXIT_MARK = 'typevisor exited with status ';
/** Busybox ash's prompt for root in / (`\w \$ `), seen after its cursor query (ESC [6n) or not. */
const PROMPT = /\/ # (?:\x1b\[6n)?$/;

/** A terminal session: bytes in as keys, everything the pty shows collected. */
class Terminal {
  output = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly child: ChildProcessWithoutNullStreams) {
    const collect = (s: string): void => {
      this.output += s;
      this.wake();
    };
    child.stdout.setEncoding('latin1').on('data', collect);
    child.stderr.setEncoding('latin1').on('data', collect);
    child.on('close', (code, signal) => {
      this.exit = { code, signal };
      this.wake();
    });
  }

  get running(): boolean {
    return this.exit === null;
  }

  /** Where the output ends now: a mark for `waitFor` to search from. */
  mark(): number {
    return this.output.length;
  }

  /**
   * Resolves with the first match of `pattern` in the output from `from`, or
   * rejects after `ms` (or when the session ends first) with the output's tail.
   */
  async waitFor(pattern: RegExp, from: number, ms: number, what: string): Promise<RegExpMatchArray> {
    const started = performance.now();
    for (;;) {
      const m = this.output.slice(from).match(pattern);
      if (m) return m;
      if (this.exit) throw new Error(`${what}: the session ended (status ${this.exit.code}, signal ${this.exit.signal}) first\n${this.tail()}`);
      const left = ms - (performance.now() - started);
      if (left <= 0) throw new Error(`${what}: not seen within ${ms / 1000} s\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  /** Resolves when the session has ended (or after `ms`). */
  async ended(ms: number): Promise<boolean> {
    const started = performance.now();
    while (!this.exit && performance.now() - started < ms) await sleep(50);
    return this.exit !== null;
  }

  /** Sends bytes at once, as a paste does. */
  send(text: string): void {
    this.child.stdin.write(Buffer.from(text, 'latin1'));
  }

  /** Sends one key at a time with a typist's gap between keys. */
  async type(text: string): Promise<void> {
    for (const ch of text) {
      this.send(ch);
      await sleep(KEY_GAP_MS);
    }
  }

  tail(n = 2500): string {
    return `--- terminal (last ${n} characters, escaped)\n${JSON.stringify(this.output.slice(-n))}`;
  }

  kill(): void {
    if (!this.exit) this.child.kill('SIGTERM');
  }

  /** Closes the pty's master, as closing a terminal window does (see pty-run.py). */
  hangUp(): void {
    this.child.kill('SIGUSR1');
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}

/** Why the pseudo-terminal cannot be made here, or undefined. */
function ptyMissing(): string | undefined {
  return which('python3') ? undefined : 'python3 is not installed: the test makes its pseudo-terminal with python3\'s pty module';
}

/**
 * Runs `argv` on a new pseudo-terminal from a shell that then prints its exit
 * status and `stty -a`: the modes a program leaves behind are read from the
 * very terminal it used.
 */
function openTerminal(argv: string[], options: { bare?: boolean } = {}): Terminal {
  const script = `"$@"; echo "${EXIT_MARK}$?"; stty -a`;
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm' };
  delete env['TYPEVISOR_DEBUG'];
  // bare: `argv` itself leads the pty's session and gets the hang-up's SIGHUP
  // (a login shell would pass it on to its job); the relay exits with its status.
  const command = options.bare ? argv : ['sh', '-c', script, 'sh', ...argv];
  return new Terminal(spawn('python3', [PTY_RUN, ...command], { env, stdio: ['pipe', 'pipe', 'pipe'] }));
}

/** The relay's status for a command that SIGHUP ended (128 + 1). */
const ENDED_BY_SIGHUP = 129;

/** `flag` shown set (not `-flag`) in `stty -a` output. */
function sttyHas(stty: string, flag: string): boolean {
  return new RegExp(`(^|\\s)${flag}(\\s|$)`).test(stty);
}

/** The modes a shell's terminal starts in: echo, line editing, ^C as a signal, ^S/^Q flow control, CR→NL. */
const COOKED_FLAGS = ['icanon', 'echo', 'isig', 'iexten', 'icrnl', 'ixon', 'opost'];

function assertCooked(stty: string, when: string): void {
  for (const flag of COOKED_FLAGS) assert.ok(sttyHas(stty, flag), `stty -a ${when} shows ${flag}\n${stty}`);
}

/** Terminal control sequences (CSI) and carriage returns removed: what a person reads. */
function screenText(s: string): string {
  return s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
}

/** `count` characters of [a-z0-9] from a fixed seed: a lost, doubled or swapped byte changes the text. */
function pasteText(count: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let x = 0x2545f491;
  let s = '';
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    s += alphabet[(x >>> 0) % alphabet.length];
  }
  return s;
}

// The console alone on a real terminal, in about a second and without the
// image: what the Linux test below relies on, each byte accounted for.
test('console on a TTY: raw while attached, every byte (Ctrl-C, Ctrl-Z, Ctrl-S, CR, 0x00-0xFF) reaches the UART in order, Ctrl-A keys act, the terminal is cooked after Ctrl-A X', { timeout: 60_000 }, async (t) => {
  const why = ptyMissing();
  if (why) return t.skip(why);
  const fixture = `${REPO}dist/test/fixtures/pty-console.js`;
  if (!existsSync(fixture)) return t.skip(`${fixture} is not built`);
  const term = openTerminal([process.execPath, fixture]);
  t.after(() => term.kill());
  const attached = await term.waitFor(/stty-attached: (.*)\r*\n[\s\S]*ready\r*\n/, 0, REPLY_MS, 'the console attached');
  const raw = attached[1] ?? '';
  // libuv's raw mode: no line editing, echo or signal keys, ^S/^Q and CR
  // passed through; output post-processing (NL→CRNL) stays on.
  for (const flag of ['icanon', 'echo', 'isig', 'iexten', 'icrnl', 'ixon']) {
    assert.ok(sttyHas(raw, `-${flag}`), `while attached, stty -a shows -${flag}\n${raw}`);
  }

  // The keys a shell user sends, then a paste far larger than the console's
  // 64 KiB input high-water mark (stdin pauses and resumes) that holds every
  // byte value except the escape key.
  const keys = '\x03\x1a\x1c\x13\x11\x04\r\x7f';
  const paste = Buffer.alloc(200 * 1024);
  for (let i = 0; i < paste.length; i++) paste[i] = (i * 131 + (i >> 8)) & 0xff;
  for (let i = 0; i < paste.length; i++) if (paste[i] === 0x01) paste[i] = 0x02;
  const escapedCtrlA = '\x01\x01';
  const want = Buffer.concat([Buffer.from(keys, 'latin1'), paste, Buffer.from('\x01', 'latin1')]);
  term.send(keys);
  term.send(paste.toString('latin1'));
  term.send(escapedCtrlA);

  let from = term.mark();
  term.send('\x01h');
  await term.waitFor(/C-a x {4}quit the VM[\s\S]*C-a h {4}this help/, from, REPLY_MS, 'the help after Ctrl-A H');
  from = term.mark();
  term.send('\x01c');
  await term.waitFor(/ctrl-alt-del\r*\n/, from, REPLY_MS, 'Ctrl-Alt-Del after Ctrl-A C');
  assert.ok(term.running, `no key stopped the console\n${term.tail()}`);
  from = term.mark();
  term.send('\x01x');
  const got = await term.waitFor(/received (\d+) ([0-9a-f]{64}) max-pending (\d+)/, from, REPLY_MS, 'the bytes the UART received, after Ctrl-A X');
  t.diagnostic(`${want.length} bytes in; at most ${got[3]} held back for the UART at once`);
  assert.equal(Number(got[1]), want.length, 'byte count');
  assert.equal(got[2], createHash('sha256').update(want).digest('hex'), 'bytes and order');
  const detached = await term.waitFor(/stty-detached: (.*)\r*\n/, from, QUIT_MS, 'the modes after the console closed');
  assertCooked(detached[1] ?? '', 'after the console closed, before the process exits');
  const exited = await term.waitFor(new RegExp(`${EXIT_MARK}(\\d+)`), from, QUIT_MS, 'the console process exiting');
  assert.equal(exited[1], '0', term.tail());
  assert.ok(await term.ended(QUIT_MS), term.tail());
  assertCooked(term.output.slice(term.output.indexOf(EXIT_MARK)), 'after the process exited');
});

/** A terminal's two streams for `attachConsole`: writes fail with EIO once `hangUp()` is called, as on Linux. */
function fakeTerminal(): { input: PassThrough; output: Writable; written: () => string; hangUp: () => void } {
  let hungUp = false;
  const chunks: Buffer[] = [];
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: false, setRawMode(this: { isRaw: boolean }, m: boolean) { this.isRaw = m; } });
  const output = Object.assign(new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (hungUp) return cb(Object.assign(new Error('write EIO'), { code: 'EIO' }));
      chunks.push(chunk);
      cb();
    },
  }), { isTTY: true });
  return { input, output, written: () => Buffer.concat(chunks).toString('latin1'), hangUp: () => { hungUp = true; } };
}

const anySerial: SerialInput = { enqueueInput: (b) => b.length, onInputSpace: () => () => {} };

test('terminal: output failing with EIO on a terminal is a hang-up, reported once; later output is dropped and close() resolves', async () => {
  const term = fakeTerminal();
  let hangUps = 0;
  const con = attachConsole({ input: term.input, output: term.output, serial: anySerial, onQuit() {}, onCtrlAltDel() {}, onHangUp: () => hangUps++ });
  con.write(Buffer.from('before\r\n'));
  await con.flush();
  assert.equal(term.written(), 'before\r\n');
  term.hangUp();
  con.write(Buffer.from('lost'));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(hangUps, 1, 'the EIO is reported as a hang-up, not thrown');
  assert.equal(con.hungUp, true);
  con.write(Buffer.from('after'));
  con.writeByte(0x41);
  assert.equal(con.pendingOutput, 0, 'output after the hang-up is not kept');
  await con.close();
  assert.equal(hangUps, 1, 'once');
  assert.equal(term.written(), 'before\r\n');
});

test('terminal: a terminal input that ends is a hang-up; a pipe that ends is not, and EIO on a pipe or file stays an error', async () => {
  const term = fakeTerminal();
  let hangUps = 0;
  const con = attachConsole({ input: term.input, output: term.output, serial: anySerial, onQuit() {}, onCtrlAltDel() {}, onHangUp: () => hangUps++ });
  term.input.end();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(hangUps, 1);
  con.detach();

  const pipeIn = new PassThrough();
  let pipeHangUps = 0;
  const failing = new Writable({ write(_c, _e, cb) { cb(Object.assign(new Error('write EIO'), { code: 'EIO' })); } });
  const errors: Error[] = [];
  // attachConsole re-throws what is not a hang-up; the stream's emit surfaces it here.
  failing.emit = ((orig) => function (this: Writable, event: string | symbol, ...args: unknown[]) {
    try {
      return orig.call(this, event, ...args);
    } catch (e) {
      errors.push(e as Error);
      return true;
    }
  })(failing.emit) as typeof failing.emit;
  const piped = attachConsole({ input: pipeIn, output: failing, serial: anySerial, onQuit() {}, onCtrlAltDel() {}, onHangUp: () => pipeHangUps++ });
  pipeIn.end();
  piped.write(Buffer.from('x'));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(pipeHangUps, 0, 'neither the end of piped input nor EIO on a non-terminal is a hang-up');
  assert.equal(errors.length, 1, 'the EIO of a non-terminal is re-thrown');
  assert.match(errors[0]!.message, /EIO/);
  piped.detach();
});

test('console on a TTY: a hang-up ends the process by SIGHUP, not by an abort at exit', { timeout: 60_000 }, async (t) => {
  const why = ptyMissing();
  if (why) return t.skip(why);
  const fixture = `${REPO}dist/test/fixtures/pty-console.js`;
  if (!existsSync(fixture)) return t.skip(`${fixture} is not built`);
  const term = openTerminal([process.execPath, fixture], { bare: true });
  t.after(() => term.kill());
  await term.waitFor(/ready\r*\n/, 0, REPLY_MS, 'the console attached');
  term.hangUp();
  assert.ok(await term.ended(QUIT_MS), 'the console process ended after the hang-up');
  assert.equal(term.exit?.code, ENDED_BY_SIGHUP, `ended by SIGHUP (status ${term.exit?.code}; 134 is SIGABRT, 139 SIGSEGV)`);
});

test('Linux on soft: on a terminal the shell takes typed keys and a paste, Ctrl-C interrupts a guest command, Ctrl-A H/X answer, the terminal is restored', { timeout: BOOT_MS + 120_000 }, async (t) => {
  const image = await linuxImageOrSkip(t, ptyMissing());
  if (!image) return;

  const vmm = [process.execPath, `${REPO}bin/typevisor.js`, 'run', '--engine', 'soft', '--cpus', '1', '--memory', '512M', '--kernel', image.kernel, '--initrd', image.initrd];
  const started = performance.now();
  const term = openTerminal(vmm);
  t.after(() => term.kill());
  const seconds = (from: number): string => ((performance.now() - from) / 1000).toFixed(1);

  // 1. The shell's prompt, after the image's banner line.
  await term.waitFor(/typevisor guest: Linux [\s\S]*\/ # /, 0, BOOT_MS, 'the shell prompt after boot');
  t.diagnostic(`shell prompt after ${seconds(started)} s`);

  // 2. Typed keys are echoed by the guest and the command runs: only the
  // shell can compute 42 from what was typed.
  let from = term.mark();
  await term.type('echo $((6*7))\r');
  await term.waitFor(/echo \$\(\(6\*7\)\)\r*\n42\r*\n/, from, REPLY_MS, 'the echoed command and its answer 42');
  await term.waitFor(PROMPT, from, REPLY_MS, 'the prompt after echo $((6*7))');

  // A paste arrives in one write, far faster than the 16550's 16-byte FIFO
  // drains: every byte must still reach the shell, in order.
  const payload = pasteText(200);
  from = term.mark();
  term.send(`echo ${payload} | tr a-z A-Z\r`);
  const answer = await term.waitFor(/\n([A-Z0-9]{20,})\r*\n/, from, REPLY_MS, 'the pasted line\'s answer');
  assert.equal(answer[1], payload.toUpperCase(), `the shell received the pasted 200 characters whole and in order\n${term.tail()}`);
  // The echo of the line may be wrapped and redrawn by the shell's line
  // editor at 80 columns, but no character may be missing from it.
  const echoed = screenText(term.output.slice(from, from + (answer.index ?? 0))).replace(/\n/g, '');
  assert.ok(echoed.includes(payload), `the paste was echoed whole\n${JSON.stringify(echoed)}\n${term.tail()}`);
  await term.waitFor(PROMPT, from, REPLY_MS, 'the prompt after the paste');

  // 3. Ctrl-C goes to the guest's line discipline as SIGINT for the foreground
  // job, not to the VMM. `tr` answering a typed line proves it is running and
  // reading the terminal when the key arrives (keys typed before it starts
  // wait in the guest's tty buffer, unechoed, as on any Linux console);
  // status 130 (128 + SIGINT) proves how it ended.
  from = term.mark();
  await term.type('tr a-z A-Z\r');
  await term.type('ping\r');
  await term.waitFor(/\nPING\r*\n/, from, REPLY_MS, 'tr answering a typed line');
  const ctrlC = performance.now();
  from = term.mark();
  term.send(CTRL_C);
  await term.waitFor(/\^C[\s\S]*\/ # /, from, REPLY_MS, 'the prompt after Ctrl-C');
  t.diagnostic(`Ctrl-C to prompt in ${seconds(ctrlC)} s`);
  from = term.mark();
  await term.type('echo status=$?\r');
  await term.waitFor(/\nstatus=130\r*\n/, from, REPLY_MS, 'tr\'s status 130 (killed by SIGINT)');
  assert.ok(term.running, 'the VMM still runs after Ctrl-C');
  assert.doesNotMatch(term.output, /SIGINT/, `Ctrl-C did not reach the VMM as a signal\n${term.tail()}`);

  // 4. The escape key: help is the VMM's own text, then quit.
  from = term.mark();
  term.send(`${CTRL_A}h`);
  await term.waitFor(/C-a x {4}quit the VM[\s\S]*C-a h {4}this help/, from, REPLY_MS, 'the console help after Ctrl-A H');
  const quit = performance.now();
  from = term.mark();
  term.send(`${CTRL_A}x`);
  const exited = await term.waitFor(new RegExp(`${EXIT_MARK}(\\d+)`), from, QUIT_MS, 'the VMM exiting after Ctrl-A X');
  t.diagnostic(`Ctrl-A X to exit in ${seconds(quit)} s; whole session ${seconds(started)} s`);
  // The README: status 0 when the user quits from the console.
  assert.equal(exited[1], '0', term.tail());
  assert.match(term.output.slice(from), /typevisor: stopped from the host/, term.tail());
  assert.ok(await term.ended(QUIT_MS), `the session ends after stty\n${term.tail()}`);
  assert.equal(term.exit?.code, 0, term.tail());

  // What the user is left with. (Node also resets its terminal at exit; the
  // console's own restore is checked before exit by the test above.)
  assertCooked(term.output.slice(term.output.indexOf(EXIT_MARK)), 'after the VMM');
});

test('typevisor run on a TTY: a hang-up while the guest runs stops the VM and typevisor ends by SIGHUP', { timeout: 240_000 }, async (t) => {
  const image = await linuxImageOrSkip(t, ptyMissing());
  if (!image) return;
  const term = openTerminal([process.execPath, `${REPO}bin/typevisor.js`, 'run', '--engine', 'soft', '--cpus', '1', '--memory', '512M', '--kernel', image.kernel, '--initrd', image.initrd], { bare: true });
  t.after(() => term.kill());
  // The kernel's banner: the console is attached and the guest is running.
  await term.waitFor(/Linux version /, 0, 120_000, 'the kernel banner');
  const hungUp = performance.now();
  term.hangUp();
  assert.ok(await term.ended(QUIT_MS), `typevisor ended within ${QUIT_MS / 1000} s of the hang-up`);
  t.diagnostic(`ended ${((performance.now() - hungUp) / 1000).toFixed(2)} s after the hang-up`);
  assert.equal(term.exit?.code, ENDED_BY_SIGHUP, `ended by SIGHUP (status ${term.exit?.code}; 134 is SIGABRT, 139 SIGSEGV)`);
});
