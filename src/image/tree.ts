/**
 * Reads a host directory tree into cpio entries: parents before children,
 * names sorted by byte value within a directory, so one tree gives one list.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { CpioEntry } from './cpio.js';

/** Linux's dev_t encoding (include/linux/kdev_t.h new_decode_dev): 12-bit major, 20-bit minor split around it. */
export function devMajor(rdev: number): number {
  return Math.floor(rdev / 256) & 0xfff;
}
export function devMinor(rdev: number): number {
  return (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00);
}

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Every entry under `root` (not `root` itself); sockets and FIFOs are refused, since an initramfs has no use for them. */
export function treeEntries(root: string): CpioEntry[] {
  const out: CpioEntry[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort(byBytes)) {
      const path = rel === '' ? name : `${rel}/${name}`;
      const full = join(root, path);
      const st = lstatSync(full);
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        out.push({ path, mode, type: 'dir' });
        walk(path);
      } else if (st.isFile()) out.push({ path, mode, type: 'file', data: readFileSync(full) });
      else if (st.isSymbolicLink()) out.push({ path, mode, type: 'symlink', target: readlinkSync(full) });
      else if (st.isCharacterDevice() || st.isBlockDevice()) {
        out.push({ path, mode, type: st.isCharacterDevice() ? 'char' : 'block', major: devMajor(st.rdev), minor: devMinor(st.rdev) });
      } else throw new Error(`${full}: not a file, directory, symlink or device node`);
    }
  };
  walk('');
  return out;
}
