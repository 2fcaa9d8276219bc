/**
 * Pieces every legacy device shares: ISA-style splitting of wide accesses into
 * byte cycles, and validation of restored state.
 */

/**
 * The legacy devices sit on an 8-bit ISA bus. A 16- or 32-bit I/O instruction
 * aimed at an 8-bit device is split by the bus into consecutive byte cycles at
 * port, port+1, …, so a device only ever has to answer byte accesses.
 * Bytes that fall beyond the device's `span` read as 0xFF (nothing drives the
 * bus there) and are dropped on writes.
 */
export function readBytes(span: number, offset: number, data: Uint8Array, readByte: (offset: number) => number): void {
  for (let i = 0; i < data.length; i++) {
    const at = offset + i;
    data[i] = at >= 0 && at < span ? readByte(at) & 0xff : 0xff;
  }
}

export function writeBytes(span: number, offset: number, data: Uint8Array, writeByte: (offset: number, value: number) => void): void {
  for (let i = 0; i < data.length; i++) {
    const at = offset + i;
    if (at >= 0 && at < span) writeByte(at, data[i]!);
  }
}

/** A saved device state that cannot be restored; the message names the device and the field. */
export class DeviceStateError extends Error {
  override name = 'DeviceStateError';
}

/** Field readers for `restoreState`: each throws DeviceStateError naming `device.field`. */
export class StateReader {
  private readonly obj: Record<string, unknown>;

  constructor(
    private readonly device: string,
    state: unknown,
  ) {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) {
      throw new DeviceStateError(`${device}: state must be an object`);
    }
    this.obj = state as Record<string, unknown>;
  }

  fail(field: string, why: string): never {
    throw new DeviceStateError(`${this.device}: ${field} ${why}`);
  }

  /** An integer in [0, max] whose set bits all lie in `mask` (default: any bit up to max). */
  int(field: string, max: number, mask?: number): number {
    const v = this.obj[field];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) this.fail(field, `must be an integer in 0..${max}`);
    if (mask !== undefined && (v & ~mask) !== 0) this.fail(field, `has bits outside 0x${mask.toString(16)}`);
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
}
