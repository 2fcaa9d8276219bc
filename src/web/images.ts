/**
 * The images the create form offers: the console guest (guest/console/, a
 * tiny shell that boots on KVM everywhere, even where KVM emulates guest
 * kernel code), the default Linux image (`typevisor image build`), or a
 * kernel the user names.
 */
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultImageDir, INITRD_FILE, KERNEL_FILE } from '../image/build.js';
import type { EngineName } from './vm-process.js';

/** guest/console/ of this installation (this file runs from dist/src/web/). */
export const CONSOLE_GUEST_SRC = fileURLToPath(new URL('../../../guest/console/', import.meta.url));

export type ImageId = 'console-guest' | 'linux-default' | 'custom';

export interface ImageChoice {
  id: ImageId;
  label: string;
  kernelPath?: string;
  initrdPath?: string;
  /** The engine the form preselects for it. */
  engine: EngineName;
  available: boolean;
  /** One line for the form: what it is, and why it cannot run here if so. */
  note: string;
}

export class ConsoleGuestBuildError extends Error {
  override name = 'ConsoleGuestBuildError';
}

function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'typevisor', 'guests');
}

function sourceHash(): string {
  const h = createHash('sha256');
  for (const name of readdirSync(CONSOLE_GUEST_SRC).sort()) {
    if (!/\.(c|h|S|ld|sh)$/.test(name)) continue;
    h.update(name).update('\0').update(readFileSync(join(CONSOLE_GUEST_SRC, name))).update('\0');
  }
  h.update(execFileSync('gcc', ['--version']));
  return h.digest('hex').slice(0, 16);
}

/** Why the console guest cannot be built here, or undefined. */
export function consoleGuestToolchainMissing(): string | undefined {
  for (const tool of ['gcc', 'objdump']) {
    const r = spawnSync(tool, ['--version'], { stdio: 'ignore' });
    if (r.error || r.status !== 0) return `${tool} not found: the console guest is built with the system gcc/binutils`;
  }
  return undefined;
}

/**
 * Builds the console guest once per content into the cache
 * ($XDG_CACHE_HOME/typevisor/guests/console-<hash>) and returns its ELF path.
 */
export function buildConsoleGuest(cacheDir = cacheRoot()): string {
  const missing = consoleGuestToolchainMissing();
  if (missing) throw new ConsoleGuestBuildError(missing);
  const dir = join(cacheDir, `console-${sourceHash()}`);
  const elf = join(dir, 'console-guest.elf');
  if (existsSync(elf)) return elf;
  mkdirSync(cacheDir, { recursive: true });
  // Built aside and renamed into place: a concurrent builder's result wins.
  const scratch = mkdtempSync(join(cacheDir, 'console-build-'));
  const r = spawnSync(join(CONSOLE_GUEST_SRC, 'build.sh'), [scratch], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(scratch, { recursive: true, force: true });
    throw new ConsoleGuestBuildError(`guest/console/build.sh failed (${r.error?.message ?? `status ${r.status}`}):\n${r.stderr}`);
  }
  try {
    renameSync(scratch, dir);
  } catch {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (!existsSync(elf)) throw new ConsoleGuestBuildError(`could not place the console guest build in ${dir}`);
  return elf;
}

/** KVM backed by PVM (software nested virtualization) emulates guest kernel code. */
function kvmIsPvm(): boolean {
  return existsSync('/sys/module/kvm_pvm');
}

export function listImages(): ImageChoice[] {
  const images: ImageChoice[] = [];
  try {
    images.push({ id: 'console-guest', label: 'Console test guest', kernelPath: buildConsoleGuest(), engine: 'kvm', available: true, note: 'A tiny shell on the serial console (echo, uname, help); boots on KVM in milliseconds.' });
  } catch (e) {
    images.push({ id: 'console-guest', label: 'Console test guest', engine: 'kvm', available: false, note: `cannot be built here: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` });
  }
  const dir = defaultImageDir();
  const kernel = join(dir, KERNEL_FILE);
  const initrd = join(dir, INITRD_FILE);
  const built = existsSync(kernel) && existsSync(initrd);
  const runs = kvmIsPvm()
    ? 'On this host it runs on the soft engine (KVM here emulates guest kernel code): about two minutes to a shell.'
    : 'Runs on KVM where it is hardware-assisted, on the soft engine elsewhere.';
  images.push({
    id: 'linux-default',
    label: 'Default Linux (Debian cloud kernel + busybox)',
    ...(built && { kernelPath: kernel, initrdPath: initrd }),
    engine: 'auto',
    available: built,
    note: built ? runs : `Not built: run "typevisor image build" first. ${runs}`,
  });
  images.push({ id: 'custom', label: 'Custom kernel and initrd', engine: 'auto', available: true, note: 'A bzImage or vmlinux ELF on this host, and an optional initrd.' });
  return images;
}
