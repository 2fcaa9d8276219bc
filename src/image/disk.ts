/**
 * `typevisor image disk`: an ext4 disk image made by e2fsprogs' mke2fs, with
 * the contents of a host directory (`mke2fs -d`, e2fsprogs ≥ 1.43). The file
 * is made beside its destination and renamed into place once complete.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, ftruncateSync, openSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { isRoot, runTool, which, type HostTools } from './debian.js';
import { ImageError, isNoSpace, saysNoSpace } from './errors.js';

/** Sector size of the block device the image becomes (virtio-blk counts capacity in 512-byte sectors). */
const SECTOR_SIZE = 512;
/** Below this mke2fs cannot fit ext4's metadata and journal with room to spare. */
export const MIN_DISK_SIZE = 1024 * 1024;

/** Where mke2fs lives on Debian; a user's PATH often lacks the sbin directories. */
const SBIN_DIRS = ['/usr/sbin', '/sbin'];

export interface DiskOptions {
  /** Size in bytes: a multiple of 512, at least 1 MiB. */
  size: number;
  /** Directory whose contents become the file system's root (default: an empty file system). */
  from?: string;
  /** The image file to write. */
  out: string;
  log?: (line: string) => void;
  /** Environment of mke2fs and apt-get (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Directories searched for mke2fs after PATH (default /usr/sbin, /sbin). */
  sbinDirs?: string[];
}

function findMke2fs(tools: HostTools, sbinDirs: string[]): string | undefined {
  const path = [tools.env['PATH'] ?? '', ...sbinDirs].join(':');
  return which('mke2fs', { PATH: path });
}

/** mke2fs's directory, installing e2fsprogs with apt as root when it is absent. */
function ensureMke2fs(tools: HostTools, sbinDirs: string[]): string {
  const found = findMke2fs(tools, sbinDirs);
  if (found) return dirname(found);
  if (isRoot() && which('apt-get', tools.env)) {
    tools.log('mke2fs is missing: installing e2fsprogs with apt-get');
    const r = runTool(tools, 'apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'e2fsprogs']);
    const now = findMke2fs(tools, sbinDirs);
    if (r.status === 0 && now) return dirname(now);
  }
  const how = which('apt-get', tools.env) ? 'run: sudo apt-get install e2fsprogs' : "install e2fsprogs with your system's package manager";
  throw new ImageError('tool-missing', `mke2fs (from e2fsprogs) is not installed: ${how}`);
}

/** Writes an ext4 image of `size` bytes at `out`. */
export function makeDiskImage(options: DiskOptions): void {
  const log = options.log ?? (() => {});
  const tools: HostTools = { env: options.env ?? process.env, log };
  const { size } = options;
  if (!Number.isSafeInteger(size) || size < MIN_DISK_SIZE) throw new ImageError('invalid-argument', `disk size ${size} is below the 1 MiB ext4 needs`);
  if (size % SECTOR_SIZE !== 0) throw new ImageError('invalid-argument', `disk size ${size} is not a whole number of ${SECTOR_SIZE}-byte sectors`);
  if (options.from !== undefined) {
    let isDir = false;
    try {
      isDir = statSync(options.from).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) throw new ImageError('invalid-argument', `--from ${options.from} is not a directory`);
  }
  const out = resolve(options.out);
  const mkfsDir = ensureMke2fs(tools, options.sbinDirs ?? SBIN_DIRS);
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${randomBytes(4).toString('hex')}`);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
    log(`making an ext4 file system of ${size} bytes${options.from ? ` from ${options.from}` : ''}`);
    // root_owner: the root directory belongs to root whoever runs this (mke2fs defaults to the caller).
    const args = ['-q', '-F', '-t', 'ext4', '-E', 'root_owner=0:0', ...(options.from ? ['-d', resolve(options.from)] : []), tmp];
    const r = runTool({ ...tools, env: { ...tools.env, PATH: `${mkfsDir}:${tools.env['PATH'] ?? ''}` } }, 'mke2fs', args);
    if (r.status !== 0) {
      const why = r.stderr.trim().split('\n').slice(-1)[0] ?? '';
      if (saysNoSpace(r.stderr)) throw new ImageError('disk-full', `no space left on device writing ${out}: ${why}`);
      // mke2fs -d says this when the files do not fit the new file system.
      if (/Could not allocate block|No free space in the filesystem/i.test(r.stderr)) {
        throw new ImageError('invalid-argument', `${options.from} does not fit in an ext4 file system of ${size} bytes: give a larger --size`);
      }
      throw new ImageError('tool-failed', `mke2fs failed: ${why}`);
    }
    const sync = openSync(tmp, 'r+');
    try {
      fsyncSync(sync);
    } finally {
      closeSync(sync);
    }
    renameSync(tmp, out);
  } catch (e) {
    if (isNoSpace(e)) throw new ImageError('disk-full', `no space left on device writing ${out}`);
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}
