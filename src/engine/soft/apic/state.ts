/**
 * Validation of restored interrupt-controller state. The legacy devices have
 * their own reader (src/devices/legacy/common.ts); engines may not import
 * devices (layering rule), so the few readers needed here live here.
 */

/** A saved APIC/IOAPIC/TSC state that cannot be restored; the message names the component and the field. */
export class ApicStateError extends Error {
  override name = 'ApicStateError';
}

export class StateReader {
  private readonly obj: Record<string, unknown>;

  constructor(
    private readonly component: string,
    state: unknown,
  ) {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) {
      throw new ApicStateError(`${component}: state must be an object`);
    }
    this.obj = state as Record<string, unknown>;
  }

  fail(field: string, why: string): never {
    throw new ApicStateError(`${this.component}: ${field} ${why}`);
  }

  /** An integer in [0, max] whose set bits (for max ≤ 2^32-1) all lie in `mask`. */
  int(field: string, max: number, mask?: number): number {
    const v = this.obj[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) this.fail(field, `must be an integer in 0..${max}`);
    if (mask !== undefined && ((v & ~mask) >>> 0) !== 0) this.fail(field, `has bits outside 0x${(mask >>> 0).toString(16)}`);
    return v;
  }

  bool(field: string): boolean {
    const v = this.obj[field];
    if (typeof v !== 'boolean') this.fail(field, 'must be a boolean');
    return v;
  }

  /** A finite number (may be negative or fractional). */
  num(field: string): number {
    const v = this.obj[field];
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, 'must be a finite number');
    return v;
  }

  /** A 64-bit unsigned value saved as a decimal string. */
  u64(field: string): bigint {
    const v = this.obj[field];
    if (typeof v !== 'string' || !/^[0-9]{1,20}$/.test(v) || BigInt(v) >= 1n << 64n) this.fail(field, 'must be a decimal string of a 64-bit unsigned value');
    return BigInt(v);
  }

  /** An array of exactly `length` 32-bit unsigned words. */
  words(field: string, length: number): number[] {
    const v = this.obj[field];
    if (!Array.isArray(v) || v.length !== length) this.fail(field, `must be an array of ${length} 32-bit words`);
    for (const w of v) {
      if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 0xffffffff) this.fail(field, 'must hold only 32-bit unsigned words');
    }
    return [...(v as number[])];
  }

  /** The raw value, for nested readers. */
  raw(field: string): unknown {
    return this.obj[field];
  }
}
