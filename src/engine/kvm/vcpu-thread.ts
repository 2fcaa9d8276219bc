import { Worker } from 'node:worker_threads';

/**
 * Starting vCPU threads ahead of their VM (README.md, "Starting vCPU threads
 * ahead"). This module imports nothing but node:worker_threads, so a caller
 * can start a thread before it has loaded the rest of the engine or koffi.
 */

export const VCPU_WORKER = new URL('./vcpu-worker.js', import.meta.url);

/** A vCPU worker started without a VM: it loads its modules, then waits for its set-up data as a message. */
export class SpareVcpuThread {
  private readonly worker = new Worker(VCPU_WORKER, { name: 'vcpu (spare)' });
  private died = false;
  private readonly onDeath = (): void => {
    this.died = true;
  };

  constructor() {
    // Nothing waits for a spare: it must never keep the process alive.
    this.worker.unref();
    // Until a VM takes it, a failure only makes it unusable; the VM then starts a thread of its own.
    this.worker.on('error', this.onDeath);
    this.worker.on('exit', this.onDeath);
  }

  /** It failed or ended before a VM took it. */
  get dead(): boolean {
    return this.died;
  }

  /** Hands the thread over: from now on its events and its life are the caller's. */
  take(): Worker {
    this.worker.off('error', this.onDeath);
    this.worker.off('exit', this.onDeath);
    this.worker.ref();
    return this.worker;
  }

  /** Ends an unused spare. */
  end(): void {
    this.died = true;
    void this.worker.terminate();
  }
}
