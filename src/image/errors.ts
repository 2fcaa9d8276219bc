/** Why a guest image could not be built. */
export type ImageErrorKind =
  /** The host has no apt (not Debian-like): the image cannot be built here. */
  | 'apt-missing'
  /** A host tool the build needs (dpkg-deb, mke2fs, …) is absent. */
  | 'tool-missing'
  /** apt could not resolve or download a package. */
  | 'package-unavailable'
  /** A downloaded package does not hold what the image needs. */
  | 'bad-package'
  /** The file system ran out of space (or quota) while writing. */
  | 'disk-full'
  /** A caller passed something unusable (size, path). */
  | 'invalid-argument'
  /** A host tool failed for another reason; its message is included. */
  | 'tool-failed';

export class ImageError extends Error {
  override name = 'ImageError';
  constructor(
    readonly kind: ImageErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** Errno codes that mean "no room to write". */
export function isNoSpace(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** Tool output that says the same (tar, dpkg-deb and mke2fs print strerror text). */
export function saysNoSpace(text: string): boolean {
  return /No space left on device|Disk quota exceeded/i.test(text);
}
