/**
 * A token bucket for device I/O budgets (bytes or operations per second),
 * shaped like Firecracker's rate limiter: a bucket of `burst` tokens refilled
 * continuously at `rate` tokens per second. Time comes from an injected
 * clock so devices stay pure state machines and tests control time.
 */

/** Time source and one-shot timers, injected into devices that wait. */
export interface DeviceClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Calls `fn` once after `ms` milliseconds; `cancel` prevents it. */
  setTimer(ms: number, fn: () => void): { cancel(): void };
}

/** The host's monotonic clock; timers do not keep the process alive. */
export const hostClock: DeviceClock = {
  now: () => performance.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

export interface TokenBucketConfig {
  /** Tokens added per second (> 0). */
  rate: number;
  /** Bucket capacity: the most tokens that can be spent at once after idling (> 0). */
  burst: number;
}

export interface TokenBucketState {
  tokens: number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly config: TokenBucketConfig,
    private readonly clock: DeviceClock,
  ) {
    const { rate, burst } = config;
    if (!(Number.isFinite(rate) && rate > 0)) throw new RangeError(`token bucket: rate ${rate} must be a positive number`);
    if (!(Number.isFinite(burst) && burst >= 1)) throw new RangeError(`token bucket: burst ${burst} must be a number ≥ 1`);
    this.tokens = burst;
    this.last = clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.config.burst, this.tokens + (elapsed * this.config.rate) / 1000);
  }

  /** Takes up to `wanted` whole tokens; returns how many were granted (possibly 0). */
  take(wanted: number): number {
    this.refill();
    const granted = Math.max(0, Math.min(Math.floor(wanted), Math.floor(this.tokens)));
    this.tokens -= granted;
    return granted;
  }

  /** Milliseconds until at least `n` tokens (at most `burst`) are available. */
  msUntil(n = 1): number {
    this.refill();
    const need = Math.min(n, this.config.burst) - this.tokens;
    return need <= 0 ? 0 : Math.ceil((need * 1000) / this.config.rate);
  }

  /** Back to a full bucket. */
  reset(): void {
    this.tokens = this.config.burst;
    this.last = this.clock.now();
  }

  saveState(): TokenBucketState {
    this.refill();
    return { tokens: this.tokens };
  }

  restoreState(s: TokenBucketState): void {
    if (typeof s.tokens !== 'number' || !Number.isFinite(s.tokens) || s.tokens < 0 || s.tokens > this.config.burst) {
      throw new RangeError(`token bucket: tokens ${String(s.tokens)} must be in 0..${this.config.burst}`);
    }
    this.tokens = s.tokens;
    this.last = this.clock.now();
  }
}
