/** Why a guest-memory access was refused. */
export type GuestMemoryErrorKind =
  /** Some byte of the range lies outside every RAM region. */
  | 'unmapped'
  /** The range straddles two regions (or a region and a hole) where one contiguous view was asked for. */
  | 'not-contiguous'
  /** Address or length is not a non-negative safe integer, or address + length overflows. */
  | 'invalid';

export class GuestMemoryError extends Error {
  constructor(
    readonly kind: GuestMemoryErrorKind,
    readonly address: number | bigint,
    readonly length: number,
  ) {
    super(`guest memory: ${kind} access at 0x${address.toString(16)} (+${length} bytes)`);
    this.name = 'GuestMemoryError';
  }
}
