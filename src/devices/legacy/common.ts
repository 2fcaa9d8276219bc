import { StateError, StateReader as BaseStateReader } from '../../state/reader.js';
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
export class DeviceStateError extends StateError {
  override name = 'DeviceStateError';
}

/** Field readers for a device's `restoreState`: each throws DeviceStateError naming `device.field`. */
export class StateReader extends BaseStateReader {
  constructor(device: string, state: unknown) {
    super(device, state, DeviceStateError);
  }
}
