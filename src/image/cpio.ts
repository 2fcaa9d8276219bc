/**
 * A writer for the "newc" cpio format, the one Linux unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst; init/initramfs.c).
 *
 * Every header is the magic "070701" and 13 fields of 8 upper-case hex digits:
 * ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
 * rdevminor, namesize (with the NUL), check (0 for newc). The NUL-terminated
 * name follows, then the data, each padded to a multiple of 4 bytes counted
 * from the start of the archive. A "TRAILER!!!" entry ends the archive.
 *
 * Output is deterministic: inodes are numbered in entry order from 0, owners,
 * mtimes and the device of the archived file are fixed, so one tree gives one
 * archive, byte for byte what GNU cpio writes with `-H newc --reproducible
 * -R 0:0` for files whose mtime is the one given here.
 */

/** Permission bits and set-id/sticky bits: what an entry's `mode` may hold. */
const PERMISSION_MASK = 0o7777;
/** File type bits of st_mode (inode(7)). */
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

const MAGIC = '070701';
const HEADER_SIZE = 110;
const TRAILER = 'TRAILER!!!';
/** Every newc field is 8 hex digits. */
const FIELD_MAX = 0xffff_ffff;
/** Linux's initramfs unpacker refuses names longer than PATH_MAX (init/initramfs.c, do_header). */
const PATH_MAX = 4096;
/** Linux dev_t: 12-bit major, 20-bit minor (include/linux/kdev_t.h MINORBITS). */
const MAJOR_MAX = 0xfff;
const MINOR_MAX = 0xfffff;

interface EntryBase {
  /** Path inside the archive, relative, '/'-separated, without "." or ".." components: "bin/busybox". */
  path: string;
  /** Permission bits (0o7777 at most); the type bits come from `type`. */
  mode: number;
}

export type CpioEntry =
  | (EntryBase & { type: 'dir' })
  | (EntryBase & { type: 'file'; data: Uint8Array })
  | (EntryBase & { type: 'symlink'; target: string })
  | (EntryBase & { type: 'char' | 'block'; major: number; minor: number });

export interface CpioOptions {
  /** Modification time of every entry, in seconds since the epoch (default 0). */
  mtime?: number;
  /** Pad the archive to a multiple of this many bytes with zeros, as GNU cpio does with 512; 4 for none (default 512). */
  blockSize?: number;
}

/** An entry list that cannot form a valid archive. */
export class CpioError extends Error {
  override name = 'CpioError';
}

const encoder = new TextEncoder();

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

function checkPath(path: string): void {
  if (path === '' || path.startsWith('/') || path.endsWith('/')) throw new CpioError(`"${path}": an archive path is relative, with no leading or trailing "/"`);
  for (const part of path.split('/')) {
    if (part === '' || part === '.' || part === '..') throw new CpioError(`"${path}": empty, "." and ".." components are not allowed`);
  }
  if (path.includes('\0')) throw new CpioError(`"${path}": a path cannot contain NUL`);
  if (encoder.encode(path).length + 1 > PATH_MAX) throw new CpioError(`"${path.slice(0, 40)}…": longer than PATH_MAX (${PATH_MAX})`);
}

function typeBits(e: CpioEntry): number {
  switch (e.type) {
    case 'dir': return S_IFDIR;
    case 'file': return S_IFREG;
    case 'symlink': return S_IFLNK;
    case 'char': return S_IFCHR;
    case 'block': return S_IFBLK;
  }
}

function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/**
 * Checks the entry list: valid paths, no duplicates, each parent directory
 * listed before its children (the kernel creates entries in archive order and
 * does not make missing parents), sizes and device numbers that fit.
 * Returns the link count of each directory: 2 plus its subdirectories, as
 * stat(2) reports it on Linux file systems.
 */
function validate(entries: readonly CpioEntry[]): Map<string, number> {
  const dirLinks = new Map<string, number>();
  const seen = new Set<string>();
  for (const e of entries) {
    checkPath(e.path);
    if (seen.has(e.path)) throw new CpioError(`"${e.path}" appears twice`);
    seen.add(e.path);
    if (!Number.isInteger(e.mode) || e.mode < 0 || e.mode > PERMISSION_MASK) {
      throw new CpioError(`"${e.path}": mode 0o${e.mode.toString(8)} is not permission bits (0 to 0o7777)`);
    }
    const parent = parentOf(e.path);
    if (parent !== '') {
      const links = dirLinks.get(parent);
      if (links === undefined) throw new CpioError(`"${e.path}": its directory "${parent}" must come earlier in the list`);
      if (e.type === 'dir') dirLinks.set(parent, links + 1);
    }
    if (e.type === 'dir') dirLinks.set(e.path, 2);
    if (e.type === 'file' && e.data.length > FIELD_MAX) throw new CpioError(`"${e.path}": ${e.data.length} bytes do not fit newc's 32-bit size field`);
    if (e.type === 'symlink') {
      const len = encoder.encode(e.target).length;
      if (len === 0 || len >= PATH_MAX || e.target.includes('\0')) throw new CpioError(`"${e.path}": symlink target must be 1 to ${PATH_MAX - 1} bytes without NUL`);
    }
    if (e.type === 'char' || e.type === 'block') {
      if (!Number.isInteger(e.major) || e.major < 0 || e.major > MAJOR_MAX) throw new CpioError(`"${e.path}": device major ${e.major} is outside 0..${MAJOR_MAX}`);
      if (!Number.isInteger(e.minor) || e.minor < 0 || e.minor > MINOR_MAX) throw new CpioError(`"${e.path}": device minor ${e.minor} is outside 0..${MINOR_MAX}`);
    }
  }
  return dirLinks;
}

/** Accumulates output chunks, tracking the offset that padding is counted from. */
class Sink {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    if (n > 0) this.push(new Uint8Array(n));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

interface Header {
  ino: number;
  mode: number;
  nlink: number;
  mtime: number;
  filesize: number;
  rdevmajor: number;
  rdevminor: number;
  name: Uint8Array;
}

function writeHeader(sink: Sink, h: Header): void {
  const hex = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
  // uid, gid, devmajor, devminor and check are always 0 here.
  const text = MAGIC + [h.ino, h.mode, 0, 0, h.nlink, h.mtime, h.filesize, 0, 0, h.rdevmajor, h.rdevminor, h.name.length + 1, 0].map(hex).join('');
  sink.push(encoder.encode(text));
  sink.push(h.name);
  sink.push(new Uint8Array(1 + pad4(HEADER_SIZE + h.name.length + 1)));
}

/** The newc archive of `entries`, in the order given. */
export function writeNewc(entries: readonly CpioEntry[], options: CpioOptions = {}): Uint8Array {
  const mtime = options.mtime ?? 0;
  const blockSize = options.blockSize ?? 512;
  if (!Number.isInteger(mtime) || mtime < 0 || mtime > FIELD_MAX) throw new CpioError(`mtime ${mtime} does not fit newc's 32-bit field`);
  if (!Number.isInteger(blockSize) || blockSize < 4 || blockSize % 4 !== 0) throw new CpioError(`block size ${blockSize} is not a positive multiple of 4`);
  const dirLinks = validate(entries);
  const sink = new Sink();
  entries.forEach((e, ino) => {
    const data = e.type === 'file' ? e.data : e.type === 'symlink' ? encoder.encode(e.target) : new Uint8Array(0);
    const device = e.type === 'char' || e.type === 'block';
    writeHeader(sink, {
      ino,
      mode: typeBits(e) | e.mode,
      // Regular files are never hard links: nlink 1 keeps the kernel's link table out of play.
      nlink: e.type === 'dir' ? dirLinks.get(e.path)! : 1,
      mtime,
      filesize: data.length,
      rdevmajor: device ? e.major : 0,
      rdevminor: device ? e.minor : 0,
      name: encoder.encode(e.path),
    });
    sink.push(data);
    sink.pad(4);
  });
  writeHeader(sink, { ino: 0, mode: 0, nlink: 1, mtime: 0, filesize: 0, rdevmajor: 0, rdevminor: 0, name: encoder.encode(TRAILER) });
  sink.pad(blockSize);
  return sink.concat();
}
