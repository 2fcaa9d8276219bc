/** Why a kernel, initrd or boot structure could not be set up. */
export type BootErrorKind =
  /** Neither a bzImage nor an ELF64 file. */
  | 'not-a-kernel'
  /** The file ends before a structure it declares. */
  | 'truncated'
  /** A header field is malformed or inconsistent (overlap, overflow, bad magic). */
  | 'malformed'
  /** Well-formed, but not something this machine can boot (ELF32, other architecture, old protocol). */
  | 'unsupported'
  /** A compressed payload failed to decompress. */
  | 'corrupt-payload'
  /** Kernel, initrd or boot data does not fit in guest RAM. */
  | 'does-not-fit';

export class BootError extends Error {
  override name = 'BootError';
  constructor(
    readonly kind: BootErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** `n` bytes as MiB for messages: whole numbers stay whole, others get one decimal. */
export function mib(n: number): string {
  const v = n / (1024 * 1024);
  return Number.isInteger(v) ? `${v} MiB` : `${v.toFixed(1)} MiB`;
}

export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}
