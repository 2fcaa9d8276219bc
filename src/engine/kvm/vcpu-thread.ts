import { Worker } from 'node:worker_threads';
import type { VcpuMessage } from './mailbox.js';

/**
 * Starting vCPU threads ahead of their VM (README.md, "Starting vCPU threads
 * ahead"). This module imports nothing but node:worker_threads, so a caller
 * can start a thread before it has loaded the rest of the engine or koffi.
 */

export const VCPU_WORKER = new URL('./vcpu-worker.js', import.meta.url);

/**
 * A vCPU worker started without a VM: it loads its modules, then waits for
 * its set-up data as a message.
 *
 * While it loads koffi it must not be terminated: a thread stopped inside a
 * native module's initialisation takes the whole process down with "FATAL
 * ERROR: Error::ThrowAsJavaScriptException napi_throw" (Node ends unref'd
 * workers that way at exit, and end() would too). So it keeps the process
 * alive until it reports 'loaded' (tens of milliseconds), and an end()
 * before then takes effect once it has.
 */
export class SpareVcpuThread {
  private readonly worker = new Worker(VCPU_WORKER, { name: 'vcpu (spare)' });
  private died = false;
  private loaded = false;
  private ending = false;
  private taken = false;
  private readonly onDeath = (): void => {
    this.died = true;
  };
  private readonly onMessage = (m: VcpuMessage): void => {
    if (m.type !== 'loaded') return;
    this.loaded = true;
    this.worker.off('message', this.onMessage);
    if (this.ending) void this.worker.terminate();
    // Nothing waits for a spare: once loaded it must never keep the process alive.
    else if (!this.taken) this.worker.unref();
  };

  constructor() {
    // Until a VM takes it, a failure only makes it unusable; the VM then starts a thread of its own.
    this.worker.on('error', this.onDeath);
    this.worker.on('exit', this.onDeath);
    this.worker.on('message', this.onMessage);
  }

  /** It failed or ended before a VM took it. */
  get dead(): boolean {
    return this.died;
  }

  /** Hands the thread over: from now on its events and its life are the caller's (a late 'loaded' message is for it to ignore). */
  take(): Worker {
    this.taken = true;
    this.worker.off('error', this.onDeath);
    this.worker.off('exit', this.onDeath);
    this.worker.off('message', this.onMessage);
    this.worker.ref();
    return this.worker;
  }

  /** Ends an unused spare (once it has loaded, so that no native initialisation is cut short). */
  end(): void {
    this.died = true;
    this.ending = true;
    if (this.loaded) void this.worker.terminate();
  }
}
