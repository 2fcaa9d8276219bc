import { VmmError } from './errors.js';

const UNITS: Record<string, number> = {
  '': 2 ** 20, // a bare number is MiB, as with `qemu -m`
  k: 2 ** 10, kib: 2 ** 10, kb: 2 ** 10,
  m: 2 ** 20, mib: 2 ** 20, mb: 2 ** 20,
  g: 2 ** 30, gib: 2 ** 30, gb: 2 ** 30,
  t: 2 ** 40, tib: 2 ** 40, tb: 2 ** 40,
};

/**
 * Parses a memory size such as `512M`, `1G`, `1.5GiB` or `256` (MiB).
 * Sizes are binary (K = 1024); the result is a whole number of bytes.
 */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new VmmError('invalid-config', `${what} "${text}" is not a size (examples: 512M, 2G, 256)`);
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw new VmmError('invalid-config', `${what} "${text}" is too large`);
  return bytes;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n} ${unit}`;
  }
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}
