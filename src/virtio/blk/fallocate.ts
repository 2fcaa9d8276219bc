/**
 * fallocate(2) for discard and write-zeroes, called through koffi on the
 * libuv threadpool (koffi's `.async`), so hole punching never blocks the
 * event loop. Node has no fallocate; the native layer (src/native) has no
 * binding for it either, so this file holds the one prototype it needs.
 * koffi and libc load on first use, as in src/native.
 */
import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';

/** <linux/falloc.h>: keep the file size even when the range runs past the end. */
export const FALLOC_FL_KEEP_SIZE = 0x01;
/** <linux/falloc.h>: deallocate the range; reads return zeros (requires KEEP_SIZE). */
export const FALLOC_FL_PUNCH_HOLE = 0x02;
/** <linux/falloc.h>: zero the range, keeping (or allocating) its blocks. */
export const FALLOC_FL_ZERO_RANGE = 0x10;

type AsyncFn = ((...args: unknown[]) => unknown) & { async: (...args: unknown[]) => void };

let bound: { fallocate: AsyncFn; errno: () => number } | null | undefined;

function bind(): { fallocate: AsyncFn; errno: () => number } | null {
  if (bound !== undefined) return bound;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
    const libc = koffi.load('libc.so.6');
    bound = { fallocate: libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as unknown as AsyncFn, errno: () => koffi.errno() };
  } catch {
    bound = null; // no koffi or no glibc here: callers fall back to writing zeros
  }
  return bound;
}

/**
 * fallocate(fd, mode, offset, length) off the event loop. Resolves true on
 * success, false when the call failed or cannot be made here (no koffi, a
 * file system without the mode: EOPNOTSUPP); the caller then falls back.
 */
export function fallocateAsync(fd: number, mode: number, offset: number, length: number): Promise<boolean> {
  const b = bind();
  if (!b) return Promise.resolve(false);
  return new Promise((resolve) => {
    b.fallocate.async(fd, mode, offset, length, (err: unknown, result: unknown) => resolve(!err && result === 0));
  });
}
