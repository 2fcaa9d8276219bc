import { Worker } from 'node:worker_threads';
import type { GuestMemory } from '../../memory/index.js';
import {
  EFD_CLOEXEC, EFD_NONBLOCK, KVM, NativeError, POLLIN, close, eventfd, ioctlBuf, kvm_ioeventfd, poll, read, write,
} from '../../native/index.js';
import {
  CHANNEL_BYTES, FD_COLUMN, MAX_NOTIFIERS, N, NCMD_EXIT, PENDING_COLUMN, type IoWorkerData,
} from './notifier-channel.js';

/** kvm_ioeventfd.flags bit 0 (<linux/kvm.h> KVM_IOEVENTFD_FLAG_DATAMATCH): fire only when the written value equals datamatch. */
export const KVM_IOEVENTFD_FLAG_DATAMATCH = 1 << 0;
/** kvm_ioeventfd.flags bit 2 (KVM_IOEVENTFD_FLAG_DEASSIGN): remove the matching registration. */
export const KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;

/** How long add() waits for the worker to let go of retired slots when every slot is taken (ms). */
const RELOAD_WAIT_MS = 1000;
/** Access sizes KVM's ioeventfd accepts with datamatch (virt/kvm/eventfd.c). */
const LENGTHS = new Set([1, 2, 4, 8]);

export interface NotifierOptions {
  /** I/O worker: polling budget after an event before sleeping in poll() (µs). */
  spinMicros: number;
}

interface Entry {
  readonly address: number;
  readonly length: number;
  readonly value: number;
  readonly handler: () => void;
  readonly fd: number;
}

/** Atomics.waitAsync (Node 16+, ES2024; the project's lib is ES2023). */
type WaitAsync = (
  ta: Int32Array, index: number, value: number, timeout?: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

const hex = (n: number) => `0x${n.toString(16)}`;

/** Checks a notifier's address, size and value; the message names what is wrong. */
export function checkNotifier(memory: GuestMemory, address: number, length: number, value: number): void {
  if (!LENGTHS.has(length)) throw new RangeError(`kvm: notifier length must be 1, 2, 4 or 8 bytes, not ${length}`);
  if (!Number.isSafeInteger(address) || address < 0 || address + length > 2 ** 52) {
    throw new RangeError(`kvm: notifier address ${address} is not a guest-physical address`);
  }
  if (!Number.isSafeInteger(value) || value < 0 || (length < 8 && value >= 2 ** (8 * length))) {
    throw new RangeError(`kvm: notifier value ${value} does not fit a ${length}-byte write`);
  }
  for (const r of memory.regions) {
    if (address < r.base + r.size && r.base < address + length) {
      throw new RangeError(`kvm: notifier at ${hex(address)} lies in guest RAM, where writes never leave the guest`);
    }
  }
}

/**
 * A VM's MMIO notifiers (README.md, "MMIO notifiers"): one eventfd per
 * registration, attached with KVM_IOEVENTFD and datamatch so KVM completes the
 * guest's write in the kernel and only signals the eventfd; an I/O worker
 * sleeping in poll() over the eventfds rings the VM's doorbell; the machine
 * thread's exit loop calls `deliver()`, which runs the handlers.
 *
 * Unregistering: KVM_IOEVENTFD deassign first, so later writes take the exit
 * path; but writes KVM caught just before are still in the eventfd or in the
 * slot's PENDING word. The slot and its eventfd are kept ("retired") until the
 * worker has reloaded its set (ACK), then both counts are collected and the
 * old handler gets one last call for them. So no caught write is lost, no
 * kick reaches the wrong handler, and an eventfd number is never reused while
 * the worker may still poll it.
 */
export class MmioNotifiers {
  private readonly channel = new SharedArrayBuffer(CHANNEL_BYTES);
  private readonly words = new Int32Array(this.channel);
  private readonly entries: (Entry | undefined)[] = new Array<Entry | undefined>(MAX_NOTIFIERS).fill(undefined);
  /** Slots unregistered but not yet collected: not free. */
  private readonly retiring = new Uint8Array(MAX_NOTIFIERS);
  private live: number[] = [];
  /** poll() set over the live notifiers' eventfds, in `live` order (pollNow). */
  private pollSet: { fd: number; events: number }[] = [];
  /** Unregistered notifiers the worker may still poll, with the generation that dropped them. */
  private retired: { slot: number; entry: Entry; generation: number }[] = [];
  /** Last calls owed to unregistered notifiers, run by the next deliver(). */
  private finals: { entry: Entry; writes: number }[] = [];
  private readonly counter = new Uint8Array(8);
  private readonly assignBuf = new Uint8Array(kvm_ioeventfd.size);
  private controlFd = -1;
  private worker: Worker | undefined;
  private workerExit: Promise<void> | undefined;
  /** Resolves once the worker polls its first set; undefined when it does (or there is no worker). */
  private workerReady: Promise<void> | undefined;
  private stopped = false;
  private closed = false;
  private writes = 0;
  private calls = 0;
  private machinePolls = 0;

  constructor(
    private readonly vmFd: number,
    private readonly memory: GuestMemory,
    private readonly doorbell: SharedArrayBuffer,
    private readonly options: NotifierOptions,
    /** Stops the VM with an engine error (a handler threw, the worker died). */
    private readonly fault: (message: string) => void,
  ) {
    this.words.fill(-1, FD_COLUMN, FD_COLUMN + MAX_NOTIFIERS);
    this.words.fill(0, PENDING_COLUMN, PENDING_COLUMN + MAX_NOTIFIERS);
  }

  add(address: number, length: number, value: number, handler: () => void): () => void {
    if (this.closed) throw new Error('kvm: cannot add a notifier to a closed VM');
    checkNotifier(this.memory, address, length, value);
    if (typeof handler !== 'function') throw new TypeError('kvm: notifier handler must be a function');
    const slot = this.freeSlot();
    if (slot < 0) throw new RangeError(`kvm: a VM takes at most ${MAX_NOTIFIERS} MMIO notifiers`);
    const fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      this.ioeventfd(address, length, value, fd, false);
    } catch (e) {
      close(fd);
      if (e instanceof NativeError && e.code === 'EEXIST') {
        throw new Error(`kvm: a notifier for ${length}-byte writes of ${hex(value)} at ${hex(address)} already exists`);
      }
      throw e;
    }
    this.entries[slot] = { address, length, value, handler, fd };
    Atomics.store(this.words, PENDING_COLUMN + slot, 0);
    Atomics.store(this.words, FD_COLUMN + slot, fd);
    this.relist();
    this.publish();
    this.startWorker();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.remove(slot);
    };
  }

  /**
   * Undefined when the worker (if any) is polling; otherwise resolves when it
   * is. The VM holds its vCPUs until then, so the first kicks are not left
   * waiting behind the worker's start-up (~40 ms: loading koffi).
   */
  ready(): Promise<void> | undefined {
    return this.workerReady;
  }

  /**
   * The VM has stopped for good: no guest writes any more, so the worker
   * ends. Once it is gone, runs what the guest wrote before it stopped and
   * no handler has seen yet — counts the worker took, writes still in the
   * eventfds, last calls owed to notifiers unregistered just before — so a
   * stop right after a write loses no notification.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    this.endWorker();
    if (this.workerExit) await this.workerExit;
    if (this.closed) return;
    this.reap();
    for (const slot of this.live) {
      const entry = this.entries[slot];
      if (entry) Atomics.add(this.words, PENDING_COLUMN + slot, this.drain(entry.fd));
    }
    Atomics.store(this.words, N.ANY, 1);
    this.deliver();
  }

  /**
   * Runs the handler of every notifier whose eventfd fired since the last
   * call; true if any ran. Called by the machine thread's exit loop each time
   * round, so one atomic load when nothing is pending.
   */
  deliver(): boolean {
    if (Atomics.load(this.words, N.ANY) === 0) return false;
    // Cleared before the PENDING words are read: a kick counted after this sets ANY again.
    Atomics.store(this.words, N.ANY, 0);
    if (this.retired.length > 0) this.reap();
    let ran = false;
    for (const slot of this.live) {
      const n = Atomics.exchange(this.words, PENDING_COLUMN + slot, 0);
      const entry = this.entries[slot];
      if (n !== 0 && entry) ran = this.call(entry, n >>> 0);
    }
    if (this.finals.length > 0) {
      const finals = this.finals;
      this.finals = [];
      for (const f of finals) ran = this.call(f.entry, f.writes);
    }
    return ran;
  }

  /**
   * The machine thread's own look at the live eventfds (poll with timeout 0),
   * for when it is polling anyway: counts what fired into PENDING exactly as
   * the worker does (whichever of the two reads an eventfd first takes its
   * count; the other reads nothing). True if anything fired; deliver() runs it.
   */
  pollNow(): boolean {
    if (this.pollSet.length === 0) return false;
    let revents: number[];
    try {
      revents = poll(this.pollSet, 0);
    } catch (e) {
      if (e instanceof NativeError && e.code === 'EINTR') return false;
      throw e;
    }
    let fired = false;
    for (let i = 0; i < revents.length; i++) {
      if (!revents[i]) continue;
      const n = this.drain(this.pollSet[i]!.fd);
      if (n > 0) {
        Atomics.add(this.words, PENDING_COLUMN + this.live[i]!, n);
        fired = true;
      }
    }
    if (fired) {
      Atomics.store(this.words, N.ANY, 1);
      this.machinePolls++;
    }
    return fired;
  }

  /**
   * The machine thread says whether it is polling the eventfds itself
   * (pollNow); while it is, the worker stays off them. Turned off before the
   * machine thread sleeps, which wakes the worker to take over.
   */
  machinePolling(on: boolean): void {
    if ((Atomics.load(this.words, N.MACHINE_POLLING) === 1) === on) return;
    Atomics.store(this.words, N.MACHINE_POLLING, on ? 1 : 0);
    if (!on) Atomics.notify(this.words, N.MACHINE_POLLING);
  }

  private call(entry: Entry, writes: number): true {
    this.writes += writes;
    this.calls++;
    try {
      entry.handler();
    } catch (e) {
      this.fault(`notifier for ${hex(entry.value)} at ${hex(entry.address)} threw: ${e instanceof Error ? e.message : String(e)}`);
    }
    return true;
  }

  stats(): Record<string, number> {
    return {
      notifiers: this.live.length,
      'notify.writes': this.writes,
      'notify.calls': this.calls,
      'notify.wakes': Atomics.load(this.words, N.WAKES),
      'notify.machine_polls': this.machinePolls,
    };
  }

  /** Ends the worker and closes every eventfd. Call before the VM fd is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.endWorker();
    if (this.workerExit) await this.workerExit;
    // Closing the VM fd right after drops KVM's own references to these eventfds.
    for (const e of this.entries) if (e) close(e.fd);
    for (const r of this.retired) close(r.entry.fd);
    this.entries.fill(undefined);
    this.retired = [];
    this.finals = [];
    this.live = [];
    if (this.controlFd >= 0) close(this.controlFd);
    this.controlFd = -1;
  }

  private remove(slot: number): void {
    const entry = this.entries[slot];
    if (!entry || this.closed) return;
    this.ioeventfd(entry.address, entry.length, entry.value, entry.fd, true);
    this.entries[slot] = undefined;
    Atomics.store(this.words, FD_COLUMN + slot, -1);
    this.relist();
    this.retiring[slot] = 1;
    this.retired.push({ slot, entry, generation: this.publish() });
    if (!this.worker) this.reap();
  }

  private freeSlot(): number {
    const free = (): number => this.entries.findIndex((e, slot) => !e && !this.retiring[slot]);
    let slot = free();
    if (slot < 0 && this.retired.length > 0 && this.worker) {
      // Every slot is live or retiring; the worker lets go of retired ones as
      // soon as it reloads (it has been woken), so wait for that briefly.
      const want = this.retired[this.retired.length - 1]!.generation;
      const until = performance.now() + RELOAD_WAIT_MS;
      for (let ack = Atomics.load(this.words, N.ACK); ack < want && performance.now() < until; ack = Atomics.load(this.words, N.ACK)) {
        Atomics.wait(this.words, N.ACK, ack, RELOAD_WAIT_MS);
      }
      this.reap();
      slot = free();
    }
    return slot;
  }

  /**
   * Collects retired notifiers the worker no longer polls: their last counts
   * become final calls (run by deliver()), their eventfds are closed and their
   * slots freed.
   */
  private reap(): void {
    const ack = Atomics.load(this.words, N.ACK);
    const alive = this.worker !== undefined;
    this.retired = this.retired.filter((r) => {
      if (alive && r.generation > ack) return true;
      const writes = Atomics.exchange(this.words, PENDING_COLUMN + r.slot, 0) + this.drain(r.entry.fd);
      close(r.entry.fd);
      this.retiring[r.slot] = 0;
      if (writes > 0) this.finals.push({ entry: r.entry, writes });
      return false;
    });
    if (this.finals.length > 0) {
      // deliver() runs them from the exit loop, which may be asleep on the doorbell.
      Atomics.store(this.words, N.ANY, 1);
      const bell = new Int32Array(this.doorbell);
      Atomics.add(bell, 0, 1);
      Atomics.notify(bell, 0);
    }
  }

  /** Reads and resets an eventfd's counter; 0 when it is empty (EAGAIN: nonblocking). */
  private drain(fd: number): number {
    try {
      read(fd, this.counter);
    } catch (e) {
      if (e instanceof NativeError && e.code === 'EAGAIN') return 0;
      throw e;
    }
    return Number(new DataView(this.counter.buffer).getBigUint64(0, true));
  }

  private relist(): void {
    this.live = [];
    this.entries.forEach((e, slot) => {
      if (e) this.live.push(slot);
    });
    this.pollSet = this.live.map((slot) => ({ fd: this.entries[slot]!.fd, events: POLLIN }));
  }

  /** Publishes a change of the fd column; returns its generation. */
  private publish(): number {
    const generation = Atomics.add(this.words, N.GENERATION, 1) + 1;
    this.wakeWorker();
    return generation;
  }

  private wakeWorker(): void {
    Atomics.notify(this.words, N.MACHINE_POLLING);
    if (this.controlFd < 0) return;
    const one = new Uint8Array(8);
    one[0] = 1;
    write(this.controlFd, one);
  }

  private startWorker(): void {
    if (this.stopped || this.closed || this.worker) return;
    this.controlFd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    Atomics.store(this.words, N.COMMAND, 0);
    const workerData: IoWorkerData = {
      channel: this.channel, doorbell: this.doorbell, controlFd: this.controlFd,
      spinMicros: this.options.spinMicros,
    };
    const worker = new Worker(new URL('./io-worker.js', import.meta.url), { workerData, name: 'kvm-io' });
    // It must never keep the process alive by itself: the vCPU workers do
    // that while the VM exists and has not stopped. Once it has stopped,
    // stop() ends this worker, which Node could not do while it sits in
    // poll() (Node joins worker threads at exit).
    worker.unref();
    this.worker = worker;
    // Ready once it has acknowledged a generation (ACK starts at -1). A
    // waitAsync, unlike a 'message' listener, never keeps the process alive.
    Atomics.store(this.words, N.ACK, -1);
    let ready = (): void => {};
    this.workerReady = new Promise<void>((resolve) => (ready = resolve)).then(() => {
      this.workerReady = undefined;
    });
    const w = waitAsync(this.words, N.ACK, -1);
    if (w.async) void w.value.then(ready);
    else ready();
    this.workerExit = new Promise<void>((resolve) => {
      worker.once('exit', () => {
        this.worker = undefined;
        this.workerReady = undefined;
        ready();
        this.reap();
        resolve();
      });
    });
    worker.on('error', (e) => this.fault(`I/O worker failed: ${e.message}`));
  }

  private endWorker(): void {
    if (!this.worker) return;
    Atomics.store(this.words, N.COMMAND, NCMD_EXIT);
    // Waiting for its exit (close) must keep the process alive.
    this.worker.ref();
    this.wakeWorker();
  }

  private ioeventfd(address: number, length: number, value: number, fd: number, deassign: boolean): void {
    const F = kvm_ioeventfd.fields;
    const dv = new DataView(this.assignBuf.buffer);
    this.assignBuf.fill(0);
    dv.setBigUint64(F.datamatch!.offset, BigInt(value), true);
    dv.setBigUint64(F.addr!.offset, BigInt(address), true);
    dv.setUint32(F.len!.offset, length, true);
    dv.setInt32(F.fd!.offset, fd, true);
    dv.setUint32(F.flags!.offset, KVM_IOEVENTFD_FLAG_DATAMATCH | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0), true);
    const what = `KVM_IOEVENTFD ${deassign ? 'deassign' : 'assign'} ${length}-byte ${hex(value)} at ${hex(address)}`;
    ioctlBuf(this.vmFd, KVM.IOEVENTFD, this.assignBuf, what);
  }
}
