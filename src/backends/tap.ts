/**
 * The TAP backend of virtio-net: packets (virtio_net_hdr_v1 + frame) to and
 * from an existing tap interface.
 *
 * Node cannot wait on an arbitrary fd: `net.Socket({ fd })` refuses a
 * character device, and `fs.read` parks a libuv pool thread in read(2) for
 * as long as the link is idle. So a dedicated worker thread owns the receive
 * side: it sleeps in poll(2) on the tap and a stop eventfd, reads every frame
 * that is ready, and appends it to a single-producer/single-consumer byte ring
 * in a SharedArrayBuffer. The main thread sleeps in `Atomics.waitAsync` on the
 * ring's write index, so a frame costs no message and no copy between
 * threads until the device copies it into guest buffers. When the ring is
 * full the worker stops reading: frames then wait in the kernel's tap queue
 * (txqueuelen) and the kernel drops past it, counted on the host interface.
 *
 * Sending needs no thread: a tap write never sleeps (O_NONBLOCK, and the
 * kernel injects the frame into its stack in the caller's context), so the
 * main thread writes each packet directly.
 *
 * This file is also the worker's entry point (`runReader` when started with
 * the reader's workerData), so the backend is one file.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { EFD_CLOEXEC, EFD_NONBLOCK, NativeError, POLLIN, close, eventfd, poll, read, write } from '../native/libc.js';
import { VNET_HDR_V1_SIZE, openTap } from '../native/tap.js';
import type { NetBackend } from '../virtio/net/backend.js';

/** Bytes of the receive ring (a power of 2): ~700 full-size 1500-byte frames, or 16 of 64 KiB. */
export const TAP_RING_BYTES = 1 << 20;
/** Largest packet read from the tap: header + a 64 KiB frame (tap MTU at most 65535) + Ethernet and VLAN headers. */
export const TAP_MAX_PACKET = VNET_HDR_V1_SIZE + 65535 + 18;

// Int32 slots of the ring's control block.
/** Bytes ever written (free-running, wraps at 2^32): published by the worker after the bytes. */
const W = 0;
/** Bytes ever consumed (free-running): published by the main thread. */
const R = 1;
/** Non-zero: the worker must exit. */
const STOP = 2;
const CONTROL_INTS = 4;
/** Record header: the packet length, as a u32 at a 4-byte aligned ring offset. */
const RECORD_HEADER = 4;
/** Record length meaning "the rest of the ring is padding, continue at offset 0". */
const WRAP = 0xffff_ffff;

/** poll(2) revents: error, hang-up, fd not open. */
const POLLERR = 0x8;
const POLLHUP = 0x10;
const POLLNVAL = 0x20;

const READER_ROLE = 'typevisor-tap-reader';

interface ReaderData {
  role: typeof READER_ROLE;
  fd: number;
  stopFd: number;
  control: SharedArrayBuffer;
  ring: SharedArrayBuffer;
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Atomics.waitAsync (ES2024, in Node since 16); the project's lib setting is ES2023. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

export interface TapMetrics {
  /** Packets handed to the device. */
  rxPackets: number;
  /** Packets written to the tap. */
  txPackets: number;
  /** Writes the kernel refused (interface down, bad header…). */
  txErrors: number;
}

export class TapBackend implements NetBackend {
  onReadable: (() => void) | undefined;
  readonly metrics: TapMetrics = { rxPackets: 0, txPackets: 0, txErrors: 0 };
  /** Set when the reader thread stopped on an error (e.g. the interface was deleted). */
  failure: Error | undefined;

  private readonly control = new Int32Array(new SharedArrayBuffer(CONTROL_INTS * 4));
  private readonly ring = new Uint8Array(new SharedArrayBuffer(TAP_RING_BYTES));
  private readonly ringView = new DataView(this.ring.buffer);
  private readonly worker: Worker;
  private readonly stopFd: number;
  /** Consumer position including the packet last returned by `receive` (released on the next call). */
  private next = 0;
  private closed: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    private readonly fd: number,
  ) {
    this.stopFd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const data: ReaderData = { role: READER_ROLE, fd, stopFd: this.stopFd, control: this.control.buffer as SharedArrayBuffer, ring: this.ring.buffer as SharedArrayBuffer };
    this.worker = new Worker(new URL(import.meta.url), { workerData: data, name: `tap ${name}` });
    this.worker.on('message', (m: { error?: string }) => {
      if (m.error) this.failure = new Error(`tap ${name}: ${m.error}`);
    });
    this.worker.on('error', (e) => {
      this.failure = e;
    });
    // The VM, not its network card, decides when the process ends (after the listeners: adding a
    // 'message' listener refs the worker again).
    this.worker.unref();
    // A thread blocked in poll(2) cannot be terminated by Node; at process exit it would hold the
    // process forever. Wake it so it returns by itself (both hooks run synchronously).
    process.once('beforeExit', this.wakeReader);
    process.once('exit', this.wakeReader);
    this.arm();
  }

  /** Attaches to the existing tap `name`; throws TapError with the administrator's fix when it cannot. */
  static open(name: string): TapBackend {
    return new TapBackend(name, openTap(name));
  }

  send(packet: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      write(this.fd, packet);
      this.metrics.txPackets++;
      return true;
    } catch (e) {
      if (!(e instanceof NativeError)) throw e;
      this.metrics.txErrors++;
      return false;
    }
  }

  receive(): Uint8Array | undefined {
    const c = this.control;
    Atomics.store(c, R, this.next);
    Atomics.notify(c, R);
    if (this.closed) return undefined;
    for (;;) {
      const w = Atomics.load(c, W) >>> 0;
      if (w === this.next >>> 0) return undefined;
      const at = this.next % TAP_RING_BYTES;
      const len = this.ringView.getUint32(at, true);
      if (len === WRAP) {
        this.next = (this.next + TAP_RING_BYTES - at) >>> 0;
        continue;
      }
      this.next = (this.next + RECORD_HEADER + align4(len)) >>> 0;
      this.metrics.rxPackets++;
      return this.ring.subarray(at + RECORD_HEADER, at + RECORD_HEADER + len);
    }
  }

  /** Sleeps until the worker publishes a new write position, then tells the device. */
  private arm(): void {
    if (this.closed) return;
    const seen = Atomics.load(this.control, W);
    const wake = (): void => {
      if (this.closed) return;
      if ((Atomics.load(this.control, W) >>> 0) !== (this.next >>> 0)) this.onReadable?.();
      this.arm();
    };
    const r = waitAsync(this.control, W, seen);
    if (r.async) void r.value.then(wake);
    else setImmediate(wake);
  }

  /** Tells the reader thread to stop, and wakes it wherever it sleeps. */
  private readonly wakeReader = (): void => {
    if (Atomics.exchange(this.control, STOP, 1) !== 0) return;
    Atomics.notify(this.control, R);
    // Settles the pending waitAsync so nothing stays armed.
    Atomics.notify(this.control, W);
    write(this.stopFd, new Uint8Array(new BigUint64Array([1n]).buffer));
  };

  /** Stops the reader thread and closes the tap (the interface itself stays, it belongs to the administrator). */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      process.off('beforeExit', this.wakeReader);
      process.off('exit', this.wakeReader);
      // Whoever awaits close() must not see the event loop end before the thread does.
      this.worker.ref();
      this.worker.once('exit', () => {
        close(this.fd);
        close(this.stopFd);
        resolve();
      });
      this.wakeReader();
    });
    return this.closed;
  }
}

/** The reader thread: poll, read every ready frame into the ring, publish, repeat. */
function runReader(d: ReaderData): void {
  const control = new Int32Array(d.control);
  const ring = new Uint8Array(d.ring);
  const view = new DataView(d.ring);
  const scratch = new Uint8Array(TAP_MAX_PACKET);
  const fds = [
    { fd: d.fd, events: POLLIN },
    { fd: d.stopFd, events: POLLIN },
  ];
  let w = Atomics.load(control, W) >>> 0;
  const stopped = (): boolean => Atomics.load(control, STOP) !== 0;

  /** Waits until `need` bytes are free; false when told to stop meanwhile. */
  const room = (need: number): boolean => {
    for (;;) {
      if (stopped()) return false;
      const r = Atomics.load(control, R);
      if (TAP_RING_BYTES - ((w - r) >>> 0) >= need) return true;
      Atomics.wait(control, R, r, 100);
    }
  };

  for (;;) {
    if (stopped()) return;
    let revents: number[];
    try {
      revents = poll(fds, -1);
    } catch (e) {
      if (e instanceof NativeError && e.code === 'EINTR') continue;
      throw e;
    }
    if (revents[1]) return;
    const tap = revents[0] ?? 0;
    if (tap & (POLLERR | POLLHUP | POLLNVAL)) {
      postError(`the interface went away (poll revents 0x${tap.toString(16)})`);
      return;
    }
    for (;;) {
      let n: number;
      try {
        n = read(d.fd, scratch);
      } catch (e) {
        if (e instanceof NativeError && (e.code === 'EAGAIN' || e.code === 'EINTR')) break;
        postError(e instanceof Error ? e.message : String(e));
        return;
      }
      if (n <= 0) break;
      const at = w % TAP_RING_BYTES;
      const need = RECORD_HEADER + align4(n);
      const tail = TAP_RING_BYTES - at;
      // A record never wraps: if it does not fit before the end, pad to the end and start at 0.
      if (!room(need > tail ? tail + need : need)) return;
      if (need > tail) {
        view.setUint32(at, WRAP, true);
        w = (w + tail) >>> 0;
      }
      const pos = w % TAP_RING_BYTES;
      view.setUint32(pos, n, true);
      ring.set(scratch.subarray(0, n), pos + RECORD_HEADER);
      w = (w + need) >>> 0;
      Atomics.store(control, W, w | 0);
      Atomics.notify(control, W);
    }
  }
}

function postError(message: string): void {
  parentPort?.postMessage({ error: message });
}

if (!isMainThread && (workerData as Partial<ReaderData> | null)?.role === READER_ROLE) runReader(workerData as ReaderData);
