/**
 * Snapshot state of the entropy device: only the rate limiter's budget.
 * The queue positions belong to the transport's state.
 */
import { StateReader } from '../../devices/legacy/common.js';

export interface RngState {
  /** Tokens (bytes) left in the rate limiter's bucket; null when the device is unlimited. */
  tokens: number | null;
}

/** Checks a restored object; throws DeviceStateError naming the bad field. */
export function readRngState(state: unknown, burst: number | null): RngState {
  const r = new StateReader('virtio-rng', state);
  const raw = (state as Record<string, unknown>).tokens;
  if (burst === null) {
    if (raw !== null) r.fail('tokens', 'must be null: this device has no rate limit');
    return { tokens: null };
  }
  const tokens = r.num('tokens');
  if (tokens < 0 || tokens > burst) r.fail('tokens', `must be in 0..${burst}`);
  return { tokens };
}
