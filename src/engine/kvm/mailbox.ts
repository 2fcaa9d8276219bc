import type { BootCpuState, VmStop } from '../engine.js';

/**
 * The shared-memory channel between the machine thread and one vCPU worker.
 * (README.md, "Serving exits", has the measurements behind this design.)
 *
 * One SharedArrayBuffer per vCPU: a header of Int32 words (the request
 * handshake and the command word), exit counters as Float64, and a data area
 * for I/O payloads. The hot path (port I/O and MMIO exits) never posts a
 * message: the worker writes the request, flips STATE to REQUEST and blocks
 * in Atomics.wait (after a short poll); the machine thread, which polls the
 * doorbell for a while after each exit and otherwise sleeps in
 * Atomics.waitAsync, runs the dispatcher, writes the reply and flips STATE to
 * REPLY. Rare events (ready,
 * paused, stopped, errors) travel as worker messages.
 */

/** Int32 word indices of the header. */
export const W = {
  /** Request handshake: IDLE → REQUEST (worker) → REPLY (machine) → IDLE (worker). */
  STATE: 0,
  /** REQ_PIO or REQ_MMIO. */
  KIND: 1,
  /** Port number, or the low 32 bits of the MMIO address. */
  ADDR_LO: 2,
  ADDR_HI: 3,
  /** Access size in bytes. */
  SIZE: 4,
  /** 1 = guest write (OUT / store), 0 = read. */
  WRITE: 5,
  /** String I/O repeat count (1 otherwise). */
  COUNT: 6,
  /** What the machine wants the worker to do: CMD_*. */
  COMMAND: 7,
  /** Number of the latest pause request; a paused worker acknowledges each one. */
  PAUSE_SEQ: 8,
} as const;
export const HEADER_WORDS = 16;

export const STATE_IDLE = 0;
export const STATE_REQUEST = 1;
export const STATE_REPLY = 2;

export const REQ_PIO = 1;
export const REQ_MMIO = 2;

/** Wait at the start line (vCPU created, not yet running). */
export const CMD_HOLD = 0;
export const CMD_RUN = 1;
export const CMD_PAUSE = 2;
/** Leave KVM_RUN for good; the VM has stopped. */
export const CMD_STOP = 3;
/** Release the vCPU and end the worker. */
export const CMD_EXIT = 4;

/** Exit counters, by kind; index into the Float64 stats area. `intr` counts KVM_RUN ending in EINTR (kicks). */
export const EXIT_KINDS = ['io', 'mmio', 'intr', 'hlt', 'shutdown', 'system_event', 'internal_error', 'fail_entry', 'other'] as const;
export type ExitKind = (typeof EXIT_KINDS)[number];
export const STAT: Readonly<Record<ExitKind | 'kvm_run', number>> = {
  ...(Object.fromEntries(EXIT_KINDS.map((k, i) => [k, i])) as Record<ExitKind, number>),
  /** KVM_RUN calls. */
  kvm_run: EXIT_KINDS.length,
};

const STATS_OFFSET = HEADER_WORDS * 4;
const STATS_SLOTS = 16;
export const DATA_OFFSET = STATS_OFFSET + STATS_SLOTS * 8;
/** KVM places string I/O data in one page of kvm_run, so no request carries more. */
export const DATA_BYTES = 4096;
export const MAILBOX_BYTES = DATA_OFFSET + DATA_BYTES;

export interface Mailbox {
  readonly sab: SharedArrayBuffer;
  readonly words: Int32Array;
  readonly stats: Float64Array;
  readonly data: Uint8Array;
}

export function mailbox(sab: SharedArrayBuffer = new SharedArrayBuffer(MAILBOX_BYTES)): Mailbox {
  return {
    sab,
    words: new Int32Array(sab, 0, HEADER_WORDS),
    stats: new Float64Array(sab, STATS_OFFSET, STATS_SLOTS),
    data: new Uint8Array(sab, DATA_OFFSET, DATA_BYTES),
  };
}

/**
 * The VM's doorbell: one Int32 every worker increments (and notifies) after
 * posting a request, so the machine thread waits on one word for all vCPUs.
 */
export const DOORBELL_BYTES = 4;

/** What a vCPU worker is started with. */
export interface VcpuWorkerData {
  cpu: number;
  vmFd: number;
  runSize: number;
  /** kvm_cpuid2 for this vCPU. */
  cpuid: Uint8Array;
  /** The boot CPU's state (vCPU 0 only); APs wait for INIT/SIPI. */
  boot: BootCpuState | undefined;
  kickSignal: number;
  mailbox: SharedArrayBuffer;
  doorbell: SharedArrayBuffer;
  /** How long the worker polls for the reply before sleeping in Atomics.wait (µs). */
  spinMicros: number;
}

/** Messages from a vCPU worker to the machine thread. */
export type VcpuMessage =
  /** A spare thread (no workerData) has loaded its modules and koffi and waits for its set-up data. */
  | { type: 'loaded' }
  | { type: 'ready'; cpu: number; tid: number; mpState: number }
  | { type: 'setup-failed'; cpu: number; message: string }
  | { type: 'paused'; cpu: number; seq: number }
  | { type: 'stop'; cpu: number; stop: VmStop }
  | { type: 'stopped'; cpu: number };
