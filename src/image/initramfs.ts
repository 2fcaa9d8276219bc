/**
 * The default guest's initramfs tree: busybox, /init, the modules and the
 * device nodes the kernel needs before /init mounts devtmpfs.
 */
import { gzipSync } from 'node:zlib';
import { writeNewc, type CpioEntry } from './cpio.js';
import type { ModuleFile } from './modules.js';

/** Where /init finds the module list; one path per line, relative to /lib/modules/<release>. */
export const MODULE_LIST_PATH = 'etc/typevisor/modules';

/**
 * Device nodes (Documentation/admin-guide/devices.txt). The kernel opens
 * /dev/console for init's stdin/stdout/stderr before any /init code runs, so
 * it must be in the archive; the others serve until devtmpfs is mounted.
 */
const DEVICE_NODES: CpioEntry[] = [
  { path: 'dev/console', type: 'char', major: 5, minor: 1, mode: 0o600 },
  { path: 'dev/ttyS0', type: 'char', major: 4, minor: 64, mode: 0o660 },
  { path: 'dev/null', type: 'char', major: 1, minor: 3, mode: 0o666 },
];

export interface InitramfsInput {
  /** Kernel release, e.g. "6.1.0-50-cloud-amd64": the modules go under lib/modules/<release>. */
  release: string;
  /** The static busybox binary. */
  busybox: Uint8Array;
  /** The /init script. */
  init: Uint8Array;
  /** Modules in load order. */
  modules: readonly ModuleFile[];
}

/** The archive's entries, parents first. */
export function initramfsEntries(input: InitramfsInput): CpioEntry[] {
  const dirs = new Set<string>();
  const entries: CpioEntry[] = [];
  const dir = (path: string, mode = 0o755) => {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (dirs.has(p)) continue;
      dirs.add(p);
      entries.push({ path: p, type: 'dir', mode: p === path ? mode : 0o755 });
    }
  };
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'etc/typevisor', 'root']) dir(d, d === 'root' ? 0o700 : 0o755);
  dir('tmp', 0o1777);
  entries.push(...DEVICE_NODES);
  entries.push({ path: 'bin/busybox', type: 'file', mode: 0o755, data: input.busybox });
  entries.push({ path: 'bin/sh', type: 'symlink', mode: 0o777, target: 'busybox' });
  entries.push({ path: 'init', type: 'file', mode: 0o755, data: input.init });
  const base = `lib/modules/${input.release}`;
  for (const m of input.modules) {
    const path = `${base}/${m.path}`;
    dir(path.slice(0, path.lastIndexOf('/')));
    entries.push({ path, type: 'file', mode: 0o644, data: m.data });
  }
  const list = input.modules.map((m) => `${m.path}\n`).join('');
  entries.push({ path: MODULE_LIST_PATH, type: 'file', mode: 0o644, data: new TextEncoder().encode(list) });
  return entries;
}

/** The gzip'd newc archive. Linux's initramfs unpacker takes gzip in every Debian kernel (CONFIG_RD_GZIP=y). */
export function buildInitramfs(input: InitramfsInput): Uint8Array {
  // gzip's header mtime is left 0 by zlib, so the same input gives the same bytes.
  return gzipSync(writeNewc(initramfsEntries(input)), { level: 9 });
}
