/**
 * The shared-memory table between the machine thread and a VM's I/O worker
 * (README.md, "MMIO notifiers"). Both sides import it.
 *
 * The machine thread owns the fd column: it writes a slot's eventfd (or -1),
 * bumps GENERATION and writes the control eventfd so the worker, asleep in
 * poll(), reloads. The worker owns the PENDING column: when a notifier's
 * eventfd fires it reads the counter (guest writes since the last read), adds
 * it to the slot's PENDING word, sets ANY and rings the VM's doorbell; the
 * machine thread swaps PENDING to 0 and runs the handler.
 */

/** Int32 word indices of the header. */
export const N = {
  /** NCMD_RUN or NCMD_EXIT, written by the machine thread. */
  COMMAND: 0,
  /** Bumped by the machine thread after each change of the fd column. */
  GENERATION: 1,
  /** The generation the worker polls now; eventfds dropped before it are no longer in its poll set. */
  ACK: 2,
  /** Set by the worker when some PENDING word or ACK changed; swapped to 0 by the machine thread. */
  ANY: 3,
  /** Times the worker came back from poll() (a figure for stats). */
  WAKES: 4,
  /**
   * 1 while the machine thread polls the eventfds itself: the worker then
   * waits on this word instead of in poll(), so a kick wakes no third thread.
   */
  MACHINE_POLLING: 5,
} as const;
const HEADER_WORDS = 8;

export const NCMD_RUN = 0;
export const NCMD_EXIT = 1;

/**
 * Notifiers per VM. Each virtio-mmio queue takes one; 256 covers every slot of
 * the machine with room for multi-queue devices, and keeps one poll() cheap.
 */
export const MAX_NOTIFIERS = 256;

export const FD_COLUMN = HEADER_WORDS;
export const PENDING_COLUMN = FD_COLUMN + MAX_NOTIFIERS;
export const CHANNEL_BYTES = (PENDING_COLUMN + MAX_NOTIFIERS) * 4;

/** What the I/O worker is started with. */
export interface IoWorkerData {
  channel: SharedArrayBuffer;
  doorbell: SharedArrayBuffer;
  /** Eventfd the machine thread writes to wake the worker (table changed, or exit). */
  controlFd: number;
  /** How long the worker keeps polling (timeout 0) after an event before it sleeps in poll() (µs). */
  spinMicros: number;
}
