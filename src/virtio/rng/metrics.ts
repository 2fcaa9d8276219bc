/**
 * Counters of the entropy device, for the metrics endpoint and tests. They
 * only grow; they are not part of the snapshot state.
 */
export class RngMetrics {
  /** Requests answered with random bytes. */
  requests = 0;
  /** Random bytes written into guest buffers. */
  bytes = 0;
  /** Chains refused (device-readable buffers, or nothing writable): used with length 0. */
  badRequests = 0;
  /** Times the rate limiter left a request waiting in the ring. */
  throttled = 0;
  /** Times the host's random source failed (the request is answered with length 0). */
  hostRngFailures = 0;

  snapshot(): Record<'requests' | 'bytes' | 'badRequests' | 'throttled' | 'hostRngFailures', number> {
    return { requests: this.requests, bytes: this.bytes, badRequests: this.badRequests, throttled: this.throttled, hostRngFailures: this.hostRngFailures };
  }
}
