/**
 * The host side of the serial console: host input → UART receiver, guest
 * output → a host stream.
 *
 * On a terminal, stdin goes to raw mode so every key (Ctrl-C included)
 * reaches the guest, and Ctrl-A is an escape key for the VMM itself (the
 * convention of QEMU's and screen's consoles). With pipes, bytes pass through
 * unchanged and end of input is not a request to quit.
 *
 * Neither direction ever drops a byte. Input the UART cannot take yet waits
 * here until the UART reports room (and stdin is paused while much waits);
 * output is gathered into one write per event-loop turn and held while the
 * stream applies backpressure.
 *
 * A terminal can go away under a running VM (its window closed, the SSH
 * connection dropped): Linux then fails writes with EIO and reads end. The
 * console reports that once (`onHangUp`) and drops further output, rather
 * than crash on the stream error or wait forever for a drain.
 */

/** The escape key: Ctrl-A. */
export const ESCAPE_KEY = 0x01;

/** What a key after the escape key means. */
export type ConsoleEvent =
  | { kind: 'data'; bytes: Uint8Array }
  | { kind: 'quit' }
  | { kind: 'ctrl-alt-del' }
  | { kind: 'help' };

const KEY_QUIT = new Set([0x78 /* x */, 0x58 /* X */]);
const KEY_CTRL_ALT_DEL = new Set([0x63 /* c */, 0x43 /* C */]);
const KEY_HELP = new Set([0x68 /* h */, 0x48 /* H */, 0x3f /* ? */]);

export const HELP_TEXT =
  '\r\n' +
  'C-a x    quit the VM\r\n' +
  'C-a c    send Ctrl-Alt-Del to the guest\r\n' +
  'C-a C-a  send C-a to the guest\r\n' +
  'C-a h    this help\r\n';

/**
 * Splits terminal input into guest bytes and escape commands. Pure: it holds
 * only "the last byte was the escape key", so an escape sequence may straddle
 * two reads. An unknown key after the escape key is swallowed.
 */
export class EscapeParser {
  private escaped = false;

  constructor(private readonly escapeKey = ESCAPE_KEY) {}

  feed(chunk: Uint8Array): ConsoleEvent[] {
    const events: ConsoleEvent[] = [];
    let runStart = 0;
    const flush = (end: number): void => {
      if (end > runStart) events.push({ kind: 'data', bytes: chunk.slice(runStart, end) });
    };
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.escaped) {
        this.escaped = false;
        runStart = i + 1;
        if (b === this.escapeKey) runStart = i;
        else if (KEY_QUIT.has(b)) events.push({ kind: 'quit' });
        else if (KEY_CTRL_ALT_DEL.has(b)) events.push({ kind: 'ctrl-alt-del' });
        else if (KEY_HELP.has(b)) events.push({ kind: 'help' });
      } else if (b === this.escapeKey) {
        flush(i);
        this.escaped = true;
        runStart = i + 1;
      }
    }
    if (!this.escaped) flush(chunk.length);
    return mergeData(events);
  }
}

function mergeData(events: ConsoleEvent[]): ConsoleEvent[] {
  const out: ConsoleEvent[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (e.kind === 'data' && last?.kind === 'data') {
      const joined = new Uint8Array(last.bytes.length + e.bytes.length);
      joined.set(last.bytes);
      joined.set(e.bytes, last.bytes.length);
      out[out.length - 1] = { kind: 'data', bytes: joined };
    } else {
      out.push(e);
    }
  }
  return out;
}

/** The UART side the console needs (Serial16550 provides it). */
export interface SerialInput {
  /** Takes as many leading bytes as there is room for; returns how many. */
  enqueueInput(bytes: Uint8Array): number;
  /** Calls `listener` when room appears after a refusal; returns an unsubscribe function. */
  onInputSpace(listener: () => void): () => void;
}

export interface ConsoleOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  serial: SerialInput;
  /** Ctrl-A X on a terminal. */
  onQuit: () => void;
  /** Ctrl-A C on a terminal. */
  onCtrlAltDel: () => void;
  /** The terminal hung up (output failed with EIO, or a terminal input ended). Called once. */
  onHangUp?: () => void;
  /** Escape key (default Ctrl-A). */
  escapeKey?: number;
  /** Input bytes waiting for the UART beyond which stdin is paused (default 64 KiB). */
  inputHighWater?: number;
}

export interface Console {
  /** Queues guest output. Never blocks; the bytes are copied. */
  write(bytes: Uint8Array): void;
  /** Queues one guest byte: usable directly as Serial16550's `out`. */
  writeByte(byte: number): void;
  /** Resolves once everything queued so far has been handed to the output stream and drained. */
  flush(): Promise<void>;
  /** `detach()`, then `flush()`. */
  close(): Promise<void>;
  /** Input bytes still waiting for room in the UART. */
  readonly pendingInput: number;
  /** Output bytes not yet accepted by the output stream without backpressure. */
  readonly pendingOutput: number;
  /** True when the console put its input terminal into raw mode. */
  readonly raw: boolean;
  /** True once the terminal hung up: output is dropped from then on. */
  readonly hungUp: boolean;
  /** Stops reading input, restores the terminal mode. Queued output is still written. Idempotent. */
  detach(): void;
}

interface RawCapable {
  isTTY?: boolean;
  isRaw?: boolean;
  setRawMode?: (mode: boolean) => unknown;
}

/** A growable byte queue with O(1) amortised append and consume. */
class ByteQueue {
  private buf = new Uint8Array(256);
  private head = 0;
  private tail = 0;

  get length(): number {
    return this.tail - this.head;
  }

  push(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buf.set(bytes, this.tail);
    this.tail += bytes.length;
  }

  pushByte(b: number): void {
    this.reserve(1);
    this.buf[this.tail++] = b;
  }

  /** A view of the queued bytes (valid until the next mutation). */
  peek(): Uint8Array {
    return this.buf.subarray(this.head, this.tail);
  }

  consume(n: number): void {
    this.head += n;
    if (this.head === this.tail) this.head = this.tail = 0;
  }

  /** Removes and returns everything queued, as a copy. */
  take(): Uint8Array {
    const out = this.buf.slice(this.head, this.tail);
    this.head = this.tail = 0;
    return out;
  }

  private reserve(n: number): void {
    if (this.tail + n <= this.buf.length) return;
    const live = this.length;
    if (live + n <= this.buf.length / 2) {
      this.buf.copyWithin(0, this.head, this.tail);
    } else {
      let size = this.buf.length * 2;
      while (size < live + n) size *= 2;
      const next = new Uint8Array(size);
      next.set(this.buf.subarray(this.head, this.tail));
      this.buf = next;
    }
    this.head = 0;
    this.tail = live;
  }
}

/**
 * Connects `input`/`output` to a UART. On a TTY input, raw mode and the escape
 * key are on and the terminal mode is restored on detach, on quit and when the
 * process exits (normally or through an uncaught exception).
 */
export function attachConsole(options: ConsoleOptions): Console {
  const { input, output, serial, onQuit, onCtrlAltDel } = options;
  const highWater = options.inputHighWater ?? 64 * 1024;
  const tty = input as unknown as RawCapable;
  const interactive = tty.isTTY === true && typeof tty.setRawMode === 'function';
  const parser = interactive ? new EscapeParser(options.escapeKey ?? ESCAPE_KEY) : null;

  let detached = false;
  let raw = false;
  let wasRaw = false;
  const restoreTerminal = (): void => {
    if (!raw) return;
    raw = false;
    try {
      tty.setRawMode?.(wasRaw);
    } catch {
      // The terminal is gone (hung up); there is nothing left to restore.
    }
  };
  if (interactive) {
    wasRaw = tty.isRaw === true;
    tty.setRawMode!(true);
    raw = true;
    process.once('exit', restoreTerminal);
  }

  // Guest output: gathered, written once per event-loop turn, held during backpressure.
  const outQueue = new ByteQueue();
  let flushScheduled = false;
  let waitingDrain = false;
  let drainWaiters: (() => void)[] = [];
  const settleWaiters = (): void => {
    if (outQueue.length === 0 && !waitingDrain) {
      const waiters = drainWaiters;
      drainWaiters = [];
      for (const w of waiters) w();
    }
  };
  let hungUp = false;
  const hangUp = (): void => {
    if (hungUp) return;
    hungUp = true;
    // Nobody is left to read it, and a destroyed stream never drains.
    outQueue.take();
    waitingDrain = false;
    settleWaiters();
    options.onHangUp?.();
  };
  // EIO on a terminal is the hang-up (a file would report a disk error the
  // same way: that stays an error).
  const outputIsTty = (output as unknown as RawCapable).isTTY === true;
  const onOutputError = (e: NodeJS.ErrnoException): void => {
    if (outputIsTty && e.code === 'EIO') hangUp();
    else throw e;
  };
  const onInputError = (e: NodeJS.ErrnoException): void => {
    if (interactive && e.code === 'EIO') hangUp();
    else throw e;
  };
  // In raw mode Ctrl-D is a byte for the guest: a terminal's input ends only when it hangs up.
  const onInputEnd = (): void => {
    if (interactive) hangUp();
  };
  output.on('error', onOutputError);

  const pump = (): void => {
    flushScheduled = false;
    if (waitingDrain || outQueue.length === 0) {
      settleWaiters();
      return;
    }
    const chunk = outQueue.take();
    const ok = output.write(chunk);
    if (!ok) {
      waitingDrain = true;
      output.once('drain', () => {
        waitingDrain = false;
        pump();
      });
    }
    settleWaiters();
  };
  const schedulePump = (): void => {
    if (flushScheduled || waitingDrain) return;
    flushScheduled = true;
    setImmediate(pump);
  };

  const writeByte = (byte: number): void => {
    if (hungUp) return;
    outQueue.pushByte(byte & 0xff);
    schedulePump();
  };
  const write = (bytes: Uint8Array): void => {
    if (bytes.length === 0 || hungUp) return;
    outQueue.push(bytes);
    schedulePump();
  };

  // Host input: offered to the UART, the rest kept until it reports room.
  const inQueue = new ByteQueue();
  let inputPaused = false;
  const deliver = (): void => {
    while (inQueue.length > 0) {
      const n = serial.enqueueInput(inQueue.peek());
      if (n <= 0) break;
      inQueue.consume(n);
    }
    if (inputPaused && inQueue.length < highWater / 2 && !detached) {
      inputPaused = false;
      input.resume();
    }
  };
  const unsubscribe = serial.onInputSpace(deliver);
  const toGuest = (bytes: Uint8Array): void => {
    inQueue.push(bytes);
    deliver();
    if (!inputPaused && inQueue.length >= highWater) {
      inputPaused = true;
      input.pause();
    }
  };

  const onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    if (!parser) {
      toGuest(bytes);
      return;
    }
    for (const e of parser.feed(bytes)) {
      switch (e.kind) {
        case 'data':
          toGuest(e.bytes);
          break;
        case 'quit':
          restoreTerminal();
          onQuit();
          break;
        case 'ctrl-alt-del':
          onCtrlAltDel();
          break;
        case 'help':
          write(new TextEncoder().encode(HELP_TEXT));
          break;
      }
    }
  };
  input.on('data', onData);
  input.on('error', onInputError);
  input.on('end', onInputEnd);
  input.resume();

  const detach = (): void => {
    if (detached) return;
    detached = true;
    input.removeListener('data', onData);
    input.removeListener('error', onInputError);
    input.removeListener('end', onInputEnd);
    // After a hang-up, late write errors may still arrive: keep absorbing them.
    if (!hungUp) output.removeListener('error', onOutputError);
    input.pause();
    unsubscribe();
    restoreTerminal();
    process.removeListener('exit', restoreTerminal);
  };

  const flush = (): Promise<void> =>
    new Promise<void>((resolve) => {
      drainWaiters.push(resolve);
      if (outQueue.length > 0) schedulePump();
      else settleWaiters();
    });

  return {
    write,
    writeByte,
    flush,
    close: () => {
      detach();
      return flush();
    },
    get pendingInput() {
      return inQueue.length;
    },
    get pendingOutput() {
      return outQueue.length;
    },
    get raw() {
      return raw;
    },
    get hungUp() {
      return hungUp;
    },
    detach,
  };
}

/**
 * Ends the process as an unhandled SIGHUP does, for a VMM whose terminal hung
 * up. A normal exit would crash instead: Node 20 resets its stdio terminals
 * at exit and asserts that tcsetattr succeeded, which a hung-up terminal
 * refuses with EIO (nodejs/node#51519; upstream ignores the error since
 * nodejs/node#58200). Any SIGHUP listener must be removed first.
 */
export function exitAsHangUp(): never {
  process.kill(process.pid, 'SIGHUP');
  // The default action ends the process when the signal is delivered, which
  // may be on another thread: wait for it without returning to JavaScript.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5000);
  process.exit(129);
}
