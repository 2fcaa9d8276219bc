/**
 * Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h): the
 * guest ABI, whatever the host's own numbering (macOS differs).
 */
export const LINUX_ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, ENOEXEC: 8, EBADF: 9, ECHILD: 10,
  EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENOTBLK: 15, EBUSY: 16, EEXIST: 17, EXDEV: 18, ENODEV: 19,
  ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, EMFILE: 24, ENOTTY: 25, ETXTBSY: 26, EFBIG: 27, ENOSPC: 28,
  ESPIPE: 29, EROFS: 30, EMLINK: 31, EPIPE: 32, EDOM: 33, ERANGE: 34, EDEADLK: 35, ENAMETOOLONG: 36, ENOLCK: 37,
  ENOSYS: 38, ENOTEMPTY: 39, ELOOP: 40, ENODATA: 61, EOVERFLOW: 75, ENOTSOCK: 88, EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97, EADDRINUSE: 98, ECONNREFUSED: 111, ETIMEDOUT: 110,
} as const;

export type ErrnoName = keyof typeof LINUX_ERRNO;

/** A system call's failure, carried to the dispatcher (returns -errno). */
export class SyscallError extends Error {
  override name = 'SyscallError';
  constructor(readonly errno: number, message?: string) {
    super(message ?? `errno ${errno}`);
  }
}

export function err(name: ErrnoName): SyscallError {
  return new SyscallError(LINUX_ERRNO[name], name);
}

/** Linux errno for an error thrown by node's fs (by its code name); EIO when unknown. */
export function hostErrno(e: unknown): number {
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in LINUX_ERRNO) return LINUX_ERRNO[code as ErrnoName];
  return LINUX_ERRNO.EIO;
}
