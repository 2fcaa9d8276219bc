import { workerData } from 'node:worker_threads';
import { NativeError, POLLIN, poll, read, schedYield } from '../../native/index.js';
import { FD_COLUMN, MAX_NOTIFIERS, N, NCMD_EXIT, PENDING_COLUMN, type IoWorkerData } from './notifier-channel.js';

/**
 * A VM's I/O worker: Node cannot wait on a file descriptor of its own
 * choosing, so this thread sleeps in poll() over the VM's ioeventfds and turns
 * each one that fires into a PENDING count and a ring of the doorbell the
 * machine thread already waits on (README.md, "MMIO notifiers").
 */

const data = workerData as IoWorkerData;
const words = new Int32Array(data.channel);
const doorbell = new Int32Array(data.doorbell);
const spinMs = data.spinMicros / 1000;
const counter = new Uint8Array(8);
const counterView = new DataView(counter.buffer);

let generation = -1;
/** poll() set: the control eventfd first, then one entry per live notifier. */
let set: { fd: number; events: number }[] = [];
/** Slot of each entry of `set` (-1 for the control fd). */
let slots: number[] = [];

function ring(): void {
  Atomics.store(words, N.ANY, 1);
  Atomics.add(doorbell, 0, 1);
  Atomics.notify(doorbell, 0);
}

/** Rebuilds the poll set from the fd column and tells the machine thread which generation it now polls. */
function reload(): void {
  generation = Atomics.load(words, N.GENERATION);
  set = [{ fd: data.controlFd, events: POLLIN }];
  slots = [-1];
  for (let s = 0; s < MAX_NOTIFIERS; s++) {
    const fd = Atomics.load(words, FD_COLUMN + s);
    if (fd >= 0) {
      set.push({ fd, events: POLLIN });
      slots.push(s);
    }
  }
  Atomics.store(words, N.ACK, generation);
  Atomics.notify(words, N.ACK);
  ring();
}

/** Reads and resets an eventfd's counter; 0 when it had nothing (EAGAIN: nonblocking). */
function drain(fd: number): number {
  try {
    read(fd, counter);
  } catch (e) {
    if (e instanceof NativeError && e.code === 'EAGAIN') return 0;
    throw e;
  }
  return Number(counterView.getBigUint64(0, true));
}

function pollSet(timeoutMs: number): number[] | undefined {
  try {
    return poll(set, timeoutMs);
  } catch (e) {
    // A process-directed signal may land on this thread.
    if (e instanceof NativeError && e.code === 'EINTR') return undefined;
    throw e;
  }
}

function main(): void {
  let spinUntil = 0;
  reload();
  for (;;) {
    if (Atomics.load(words, N.COMMAND) === NCMD_EXIT) return;
    if (Atomics.load(words, N.GENERATION) !== generation) reload();
    if (Atomics.load(words, N.MACHINE_POLLING) === 1) {
      // The machine thread takes the kicks; it wakes this word when it stops polling, or to command.
      Atomics.wait(words, N.MACHINE_POLLING, 1);
      continue;
    }
    const spinning = spinMs > 0 && performance.now() < spinUntil;
    const revents = pollSet(spinning ? 0 : -1);
    if (!revents) continue;
    if (!spinning) Atomics.add(words, N.WAKES, 1);
    if (revents[0]) drain(data.controlFd);
    // Woken by a kick while the machine thread polls: leave it to that thread.
    if (Atomics.load(words, N.MACHINE_POLLING) === 1) continue;
    let fired = false;
    for (let i = 1; i < revents.length; i++) {
      if (!revents[i]) continue;
      const n = drain(set[i]!.fd);
      if (n > 0) {
        Atomics.add(words, PENDING_COLUMN + slots[i]!, n);
        fired = true;
      }
    }
    if (fired) {
      ring();
      // Kicks come in bursts; waking from poll() costs tens of µs on this host.
      if (spinMs > 0) spinUntil = performance.now() + spinMs;
    } else if (spinning) {
      schedYield();
    }
  }
}

main();
