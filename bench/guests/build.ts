/**
 * Builds bench-guest.S into its three variants with the system gcc/binutils,
 * once per content: the output directory is named by a hash of the sources
 * and the compiler version, so repeated runs reuse it.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/guests/ of this checkout (this file runs from dist/bench/guests/). */
const SRC = fileURLToPath(new URL('../../../bench/guests/', import.meta.url));
const FILES = ['bench-guest.S', 'bench-guest.ld'];

export const BENCH_GUEST_MODES = ['exit', 'touch', 'idle'] as const;
export type BenchGuestMode = (typeof BENCH_GUEST_MODES)[number];
export type BenchGuests = Record<BenchGuestMode, string>;

/** What bench-guest.S prints, and how much RAM MODE_TOUCH writes. */
export const MARK_FIRST = '!';
export const MARK_TOUCHED = 'T';
export const TOUCH_BYTES = 64 * 2 ** 20;

export function benchGuestToolchainMissing(): string | undefined {
  const r = spawnSync('gcc', ['--version'], { stdio: 'ignore' });
  return r.error || r.status !== 0 ? 'gcc not found: the benchmark guest is built with the system gcc/binutils' : undefined;
}

export function buildBenchGuests(): BenchGuests {
  const h = createHash('sha256');
  for (const f of FILES) h.update(f).update('\0').update(readFileSync(join(SRC, f))).update('\0');
  h.update(execFileSync('gcc', ['--version']));
  const dir = join(tmpdir(), `typevisor-bench-guests-${h.digest('hex').slice(0, 16)}`);
  const paths = Object.fromEntries(BENCH_GUEST_MODES.map((m) => [m, join(dir, `bench-guest-${m}.elf`)])) as BenchGuests;
  if (BENCH_GUEST_MODES.every((m) => existsSync(paths[m]))) return paths;
  mkdirSync(tmpdir(), { recursive: true });
  // Built aside and renamed whole, so a concurrent run never sees half a directory.
  const stage = mkdtempSync(`${dir}.stage-`);
  try {
    for (const m of BENCH_GUEST_MODES) {
      execFileSync('gcc', [
        '-nostdlib', '-static', '-no-pie', `-DMODE_${m.toUpperCase()}`,
        `-Wl,-T,${join(SRC, 'bench-guest.ld')}`, '-Wl,--build-id=none', '-Wl,-z,max-page-size=0x1000', '-Wl,-z,noexecstack',
        '-o', join(stage, `bench-guest-${m}.elf`), join(SRC, 'bench-guest.S'),
      ], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    try {
      renameSync(stage, dir);
    } catch (e) {
      // Another run finished first: use its build.
      if (!existsSync(paths.exit)) throw e;
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  return paths;
}
