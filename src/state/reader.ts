/**
 * Validation of saved component state (snapshots, restoreState). Every
 * component saves a plain JSON object; restoring one is untrusted input, so
 * each field is checked and a bad one is reported by component and field name.
 * This sits at the bottom of the layering (like src/memory) so that devices and
 * engines share one reader.
 */

/** A saved state that cannot be restored; subclasses name the kind of component. */
export class StateError extends Error {
  override name = 'StateError';
}

export type StateErrorClass = new (message: string) => StateError;

/** Field readers for `restoreState`: each throws the given StateError subclass naming `component: field`. */
export class StateReader {
  private readonly obj: Record<string, unknown>;

  constructor(
    private readonly component: string,
    state: unknown,
    private readonly ErrorClass: StateErrorClass = StateError,
  ) {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) {
      throw new ErrorClass(`${component}: state must be an object`);
    }
    this.obj = state as Record<string, unknown>;
  }

  fail(field: string, why: string): never {
    throw new this.ErrorClass(`${this.component}: ${field} ${why}`);
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

  /** An array of bytes, at most `maxLength` long (exactly `maxLength` when `exact`). */
  bytes(field: string, maxLength: number, exact = false): number[] {
    const v = this.obj[field];
    if (!Array.isArray(v)) this.fail(field, 'must be an array of bytes');
    if (v.length > maxLength || (exact && v.length !== maxLength)) {
      this.fail(field, exact ? `must hold exactly ${maxLength} bytes` : `holds ${v.length} bytes, more than ${maxLength}`);
    }
    for (const b of v) {
      if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b > 0xff) this.fail(field, 'must hold only bytes (0..255)');
    }
    return [...(v as number[])];
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
