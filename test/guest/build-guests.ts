/**
 * Builds the test guests (guest/build.sh) once per content: the output goes to
 * a directory named by a hash of the guest sources and the compiler version,
 * so parallel test files and repeated runs share one build.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The guest/ folder of this checkout (this file runs from dist/test/guest/). */
export const GUEST_SRC = fileURLToPath(new URL('../../../guest/', import.meta.url));

export interface GuestImages {
  /** vmlinux-style ELF64 of guest/test-guest.c, linked at 16 MiB. */
  testGuest: string;
  /** Linker map and disassembly beside it, for reading failures. */
  map: string;
  disassembly: string;
  dir: string;
}

export class GuestBuildError extends Error {
  override name = 'GuestBuildError';
}

const TOOLS = ['gcc', 'ld', 'objdump'];

/** Why the guests cannot be built here, or undefined when they can. */
export function guestToolchainMissing(): string | undefined {
  for (const tool of TOOLS) {
    const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (r.error || r.status !== 0) return `${tool} not found: the test guests are built with the system gcc/binutils`;
  }
  return undefined;
}

function sourceHash(): string {
  const h = createHash('sha256');
  for (const name of readdirSync(GUEST_SRC).sort()) {
    if (!/\.(c|h|S|ld|sh)$/.test(name)) continue;
    h.update(name).update('\0').update(readFileSync(join(GUEST_SRC, name))).update('\0');
  }
  h.update(execFileSync('gcc', ['--version']));
  return h.digest('hex').slice(0, 16);
}

let built: GuestImages | undefined;

/** Builds (or reuses) the guests; throws GuestBuildError with the compiler's output. */
export function buildGuests(): GuestImages {
  if (built) return built;
  const dir = join(tmpdir(), `typevisor-guests-${sourceHash()}`);
  const images = (d: string): GuestImages => ({
    testGuest: join(d, 'test-guest.elf'),
    map: join(d, 'test-guest.map'),
    disassembly: join(d, 'test-guest.dis'),
    dir: d,
  });
  if (!existsSync(images(dir).testGuest)) {
    // Build aside, then rename into place: a concurrent builder's finished
    // directory wins and ours is dropped.
    const scratch = mkdtempSync(join(tmpdir(), 'typevisor-guests-build-'));
    const r = spawnSync(join(GUEST_SRC, 'build.sh'), [scratch], { encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      rmSync(scratch, { recursive: true, force: true });
      throw new GuestBuildError(`guest/build.sh failed (${r.error?.message ?? `status ${r.status}`}):\n${r.stderr}`);
    }
    try {
      renameSync(scratch, dir);
    } catch {
      rmSync(scratch, { recursive: true, force: true });
      if (!existsSync(images(dir).testGuest)) throw new GuestBuildError(`could not place the guest build in ${dir}`);
    }
  }
  built = images(dir);
  return built;
}
