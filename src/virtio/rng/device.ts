/**
 * virtio-rng, the entropy device (virtio 1.2 §5.4): one request queue whose
 * device-writable buffers are filled with bytes from the host's CSPRNG
 * (node:crypto randomFillSync, i.e. the kernel's getrandom).
 *
 * Event handling: the transport calls `processQueue(0)` on a queue
 * notification; when the rate limiter runs dry the request stays in the ring
 * and a timer resumes processing once the bucket holds a byte again.
 */
import { randomFillSync } from 'node:crypto';
import { fillBuffers } from '../chain.js';
import { VIRTIO_ID_RNG, VIRTIO_RING_FEATURES, type VirtioActivation, type VirtioDevice } from '../device.js';
import { TokenBucket, hostClock, type DeviceClock, type TokenBucketConfig } from '../rate-limiter.js';
import { RngMetrics } from './metrics.js';
import { readRngState, type RngState } from './state.js';

/** Queue 0: requestq (§5.4.2). */
const REQUEST_QUEUE = 0;
/** Default size of the request queue. */
export const RNG_QUEUE_SIZE = 256;
/**
 * Most bytes given per request. §5.4.6.2 lets the device use less than the
 * whole buffer; the cap bounds the work one chain can cause.
 */
export const RNG_MAX_REQUEST_BYTES = 64 * 1024;
/** Default budget: 1 MiB/s with a 256 KiB burst, ample for seeding a guest's CRNG. */
export const RNG_DEFAULT_LIMIT: TokenBucketConfig = { rate: 1024 * 1024, burst: 256 * 1024 };

export interface VirtioRngOptions {
  /** Byte budget; null = unlimited. Default RNG_DEFAULT_LIMIT. */
  limit?: TokenBucketConfig | null;
  clock?: DeviceClock;
  /** Fills a buffer with random bytes. Default: node:crypto randomFillSync. */
  source?: (into: Uint8Array) => void;
  /** Request queue size (a power of 2). Default RNG_QUEUE_SIZE. */
  queueSize?: number;
}

export class VirtioRng implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_RNG;
  readonly queueMaxSizes: readonly number[];
  /** No device-specific features (§5.4.3); the ring features the queue implements. */
  readonly features = VIRTIO_RING_FEATURES;
  readonly metrics = new RngMetrics();

  private readonly bucket: TokenBucket | undefined;
  private readonly clock: DeviceClock;
  private readonly source: (into: Uint8Array) => void;
  private act: VirtioActivation | undefined;
  private timer: { cancel(): void } | undefined;

  constructor(options: VirtioRngOptions = {}) {
    this.clock = options.clock ?? hostClock;
    const limit = options.limit === undefined ? RNG_DEFAULT_LIMIT : options.limit;
    this.bucket = limit === null ? undefined : new TokenBucket(limit, this.clock);
    this.source = options.source ?? ((into) => randomFillSync(into));
    this.queueMaxSizes = [options.queueSize ?? RNG_QUEUE_SIZE];
  }

  // No configuration space (§5.4.4): reads as zeros, writes ignored.
  readConfig(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }
  writeConfig(): void {}

  activate(activation: VirtioActivation): void {
    this.act = activation;
    // Requests may already be waiting (queued before DRIVER_OK, or restored from a snapshot).
    this.processQueue(REQUEST_QUEUE);
  }

  reset(): void {
    this.act = undefined;
    this.timer?.cancel();
    this.timer = undefined;
    this.bucket?.reset();
  }

  processQueue(index: number): void {
    const act = this.act;
    if (!act || index !== REQUEST_QUEUE) return;
    const q = act.queues[REQUEST_QUEUE]!;
    let used = false;
    for (;;) {
      const chain = q.popChain();
      if (!chain) break;
      // §5.4.6.1: the driver must not place device-readable buffers in the queue.
      // Such a request is refused, not the queue: it is used with length 0 ("no
      // random bytes"), which Linux's virtio-rng treats as an empty read and retries.
      if (chain.readable.length > 0 || chain.writableBytes === 0) {
        q.addUsed(chain.head, 0);
        this.metrics.badRequests++;
        used = true;
        continue;
      }
      const want = Math.min(chain.writableBytes, RNG_MAX_REQUEST_BYTES);
      const granted = this.bucket ? this.bucket.take(want) : want;
      if (granted === 0) {
        // §5.4.6.2 demands at least one byte per used buffer: wait until the
        // bucket can pay for the whole request (not one byte per wake-up).
        q.undoPop();
        this.metrics.throttled++;
        this.armTimer(want);
        break;
      }
      let written: number;
      try {
        written = fillBuffers(act.memory, chain.writable, granted, this.source);
        this.metrics.requests++;
      } catch {
        written = 0;
        this.metrics.hostRngFailures++;
      }
      q.addUsed(chain.head, written);
      this.metrics.bytes += written;
      used = true;
    }
    if (used && q.needsInterrupt()) act.interrupt.trigger('used');
  }

  private armTimer(bytes: number): void {
    if (this.timer || !this.bucket) return;
    this.timer = this.clock.setTimer(this.bucket.msUntil(bytes), () => {
      this.timer = undefined;
      const act = this.act;
      if (!act) return;
      // Outside the transport's call path: a fault here must still end as DEVICE_NEEDS_RESET.
      try {
        this.processQueue(REQUEST_QUEUE);
      } catch (e) {
        act.needsReset(`virtio-rng: ${e instanceof Error ? e.message : String(e)}`);
      }
    });
  }

  /** True while a throttled request waits for the rate limiter. */
  get waiting(): boolean {
    return this.timer !== undefined;
  }

  saveState(): RngState {
    return { tokens: this.bucket ? this.bucket.saveState().tokens : null };
  }

  restoreState(state: unknown): void {
    const s = readRngState(state, this.bucket ? this.bucket.config.burst : null);
    if (this.bucket && s.tokens !== null) this.bucket.restoreState({ tokens: s.tokens });
  }
}
