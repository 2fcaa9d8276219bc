/**
 * Open file descriptions of process mode: host files (through node's fs,
 * with offsets kept here because node has no lseek), pipes between emulated
 * processes, and the host's standard streams. One description may be shared
 * by several descriptors and processes (dup, fork), as in Linux.
 */
import * as fs from 'node:fs';
import { isatty } from 'node:tty';
import { err, hostErrno, SyscallError } from './errno.js';

/** Returned by read/write when the caller must wait (the process blocks and retries). */
export const BLOCK = -1;

/** open(2) flags, x86-64 values (include/uapi/asm-generic/fcntl.h). */
export const O_ACCMODE = 3;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;

/** st_mode file types (include/uapi/linux/stat.h). */
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;

export interface StatInfo {
  dev: bigint; ino: bigint; mode: number; nlink: bigint; uid: number; gid: number; rdev: bigint;
  size: bigint; blksize: bigint; blocks: bigint; atimeNs: bigint; mtimeNs: bigint; ctimeNs: bigint;
}

export function fromNodeStat(s: fs.BigIntStats): StatInfo {
  return {
    dev: s.dev, ino: s.ino, mode: Number(s.mode), nlink: s.nlink, uid: Number(s.uid), gid: Number(s.gid), rdev: s.rdev,
    size: s.size, blksize: s.blksize, blocks: s.blocks, atimeNs: s.atimeNs, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs,
  };
}

/** struct stat for x86-64 (arch/x86/include/uapi/asm/stat.h), 144 bytes. */
export function encodeStat(s: StatInfo): Uint8Array {
  const b = new Uint8Array(144);
  const v = new DataView(b.buffer);
  const ns = 1_000_000_000n;
  v.setBigUint64(0, s.dev, true);
  v.setBigUint64(8, s.ino, true);
  v.setBigUint64(16, s.nlink, true);
  v.setUint32(24, s.mode, true);
  v.setUint32(28, s.uid, true);
  v.setUint32(32, s.gid, true);
  v.setBigUint64(40, s.rdev, true);
  v.setBigInt64(48, s.size, true);
  v.setBigInt64(56, s.blksize, true);
  v.setBigInt64(64, s.blocks, true);
  v.setBigInt64(72, s.atimeNs / ns, true);
  v.setBigInt64(80, s.atimeNs % ns, true);
  v.setBigInt64(88, s.mtimeNs / ns, true);
  v.setBigInt64(96, s.mtimeNs % ns, true);
  v.setBigInt64(104, s.ctimeNs / ns, true);
  v.setBigInt64(112, s.ctimeNs % ns, true);
  return b;
}

function syntheticStat(mode: number): StatInfo {
  const now = BigInt(Date.now()) * 1_000_000n;
  return {
    dev: 0xcn, ino: BigInt(Math.floor(Math.random() * 1e9)), mode, nlink: 1n, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0,
    rdev: 0n, size: 0n, blksize: 4096n, blocks: 0n, atimeNs: now, mtimeNs: now, ctimeNs: now,
  };
}

export abstract class OpenFile {
  refs = 1;
  constructor(public flags: number, readonly path: string) {}
  abstract read(buf: Uint8Array): number;
  abstract write(buf: Uint8Array): number;
  abstract stat(): StatInfo;
  seek(_offset: number, _whence: number): number {
    throw err('ESPIPE');
  }
  pread(_buf: Uint8Array, _pos: number): number {
    throw err('ESPIPE');
  }
  pwrite(_buf: Uint8Array, _pos: number): number {
    throw err('ESPIPE');
  }
  isTty(): boolean {
    return false;
  }
  /** Directory entries for getdents64 (directories only). */
  dirEntries(): DirCursor {
    throw err('ENOTDIR');
  }
  protected abstract release(): void;
  /** Drops one reference; the last closes. */
  close(): void {
    if (--this.refs === 0) this.release();
  }
  canRead(): boolean {
    return (this.flags & O_ACCMODE) !== O_WRONLY;
  }
  canWrite(): boolean {
    return (this.flags & O_ACCMODE) !== 0;
  }
}

export interface DirCursor {
  entries: { name: string; ino: bigint; type: number }[];
  pos: number;
}

/** Sleeps the whole emulator briefly (a host descriptor said "try again"). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class HostFile extends OpenFile {
  private position = 0;
  private dir: DirCursor | undefined;
  constructor(
    readonly fd: number,
    flags: number,
    path: string,
    /** Regular files and block devices: offsets are kept here; others use the host's. */
    private readonly seekable: boolean,
    private readonly owned: boolean,
  ) {
    super(flags, path);
  }

  read(buf: Uint8Array): number {
    if (!this.canRead()) throw err('EBADF');
    for (;;) {
      try {
        const n = fs.readSync(this.fd, buf, 0, buf.length, this.seekable ? this.position : null);
        if (this.seekable) this.position += n;
        return n;
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') {
          if (this.flags & O_NONBLOCK) throw err('EAGAIN');
          pause(5);
          continue;
        }
        if ((e as { code?: string }).code === 'EOF') return 0;
        throw new SyscallError(hostErrno(e));
      }
    }
  }

  write(buf: Uint8Array): number {
    if (!this.canWrite()) throw err('EBADF');
    let done = 0;
    while (done < buf.length) {
      try {
        const pos = this.seekable && (this.flags & O_APPEND) === 0 ? this.position : null;
        const n = fs.writeSync(this.fd, buf, done, buf.length - done, pos);
        done += n;
        if (this.seekable) this.position = (this.flags & O_APPEND) !== 0 ? Number(fs.fstatSync(this.fd).size) : this.position + n;
      } catch (e) {
        if ((e as { code?: string }).code === 'EAGAIN') { pause(5); continue; }
        if (done > 0) return done;
        throw new SyscallError(hostErrno(e));
      }
    }
    return done;
  }

  stat(): StatInfo {
    try {
      return fromNodeStat(fs.fstatSync(this.fd, { bigint: true }));
    } catch (e) {
      throw new SyscallError(hostErrno(e));
    }
  }

  override seek(offset: number, whence: number): number {
    if (!this.seekable) {
      if (this.dir && whence === 0 && offset === 0) { this.dir.pos = 0; return 0; }
      throw err('ESPIPE');
    }
    let base: number;
    switch (whence) {
      case 0: base = 0; break; // SEEK_SET
      case 1: base = this.position; break; // SEEK_CUR
      case 2: base = Number(this.stat().size); break; // SEEK_END
      default: throw err('EINVAL');
    }
    const p = base + offset;
    if (p < 0) throw err('EINVAL');
    this.position = p;
    return p;
  }

  override pread(buf: Uint8Array, pos: number): number {
    if (!this.seekable) throw err('ESPIPE');
    try { return fs.readSync(this.fd, buf, 0, buf.length, pos); } catch (e) { throw new SyscallError(hostErrno(e)); }
  }

  override pwrite(buf: Uint8Array, pos: number): number {
    if (!this.seekable) throw err('ESPIPE');
    try { return fs.writeSync(this.fd, buf, 0, buf.length, pos); } catch (e) { throw new SyscallError(hostErrno(e)); }
  }

  override isTty(): boolean {
    return isatty(this.fd);
  }

  override dirEntries(): DirCursor {
    if (this.dir) return this.dir;
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(this.path, { withFileTypes: true });
    } catch (e) {
      throw new SyscallError(hostErrno(e));
    }
    const ino = (p: string): bigint => { try { return fs.lstatSync(p, { bigint: true }).ino; } catch { return 0n; } };
    const type = (d: fs.Dirent): number => d.isFIFO() ? 1 : d.isCharacterDevice() ? 2 : d.isDirectory() ? 4 : d.isBlockDevice() ? 6 : d.isFile() ? 8 : d.isSymbolicLink() ? 10 : d.isSocket() ? 12 : 0;
    this.dir = {
      entries: [
        { name: '.', ino: ino(this.path), type: 4 },
        { name: '..', ino: ino(`${this.path}/..`), type: 4 },
        ...names.map((d) => ({ name: d.name, ino: ino(`${this.path}/${d.name}`), type: type(d) })),
      ],
      pos: 0,
    };
    return this.dir;
  }

  protected release(): void {
    if (this.owned) {
      try { fs.closeSync(this.fd); } catch { /* already gone */ }
    }
  }
}

/** Pipe capacity (Linux's default, 16 pages). */
export const PIPE_CAPACITY = 65536;

export class Pipe {
  private readonly chunks: Uint8Array[] = [];
  size = 0;
  readers = 0;
  writers = 0;

  read(buf: Uint8Array): number {
    let done = 0;
    while (done < buf.length && this.chunks.length > 0) {
      const c = this.chunks[0] as Uint8Array;
      const n = Math.min(c.length, buf.length - done);
      buf.set(c.subarray(0, n), done);
      done += n;
      if (n === c.length) this.chunks.shift(); else this.chunks[0] = c.subarray(n);
    }
    this.size -= done;
    return done;
  }

  write(buf: Uint8Array): number {
    const n = Math.min(buf.length, PIPE_CAPACITY - this.size);
    if (n > 0) {
      this.chunks.push(buf.slice(0, n));
      this.size += n;
    }
    return n;
  }
}

export class PipeEnd extends OpenFile {
  private readonly ino = syntheticStat(S_IFIFO | 0o600);
  constructor(readonly pipe: Pipe, readonly isReader: boolean, flags: number) {
    super(flags, 'pipe:');
    if (isReader) pipe.readers++; else pipe.writers++;
  }

  read(buf: Uint8Array): number {
    if (!this.isReader) throw err('EBADF');
    if (buf.length === 0) return 0;
    if (this.pipe.size === 0) {
      if (this.pipe.writers === 0) return 0;
      if (this.flags & O_NONBLOCK) throw err('EAGAIN');
      return BLOCK;
    }
    return this.pipe.read(buf);
  }

  /** Throws EPIPE when no reader is left (the caller raises SIGPIPE). */
  write(buf: Uint8Array): number {
    if (this.isReader) throw err('EBADF');
    if (this.pipe.readers === 0) throw err('EPIPE');
    if (buf.length === 0) return 0;
    const n = this.pipe.write(buf);
    if (n === 0) {
      if (this.flags & O_NONBLOCK) throw err('EAGAIN');
      return BLOCK;
    }
    return n;
  }

  stat(): StatInfo {
    return { ...this.ino, size: BigInt(this.pipe.size) };
  }

  protected release(): void {
    if (this.isReader) this.pipe.readers--; else this.pipe.writers--;
  }
}

export function openHost(path: string, flags: number, mode: number): HostFile {
  let fd: number;
  try {
    fd = fs.openSync(path, flags & ~O_CLOEXEC, mode);
  } catch (e) {
    throw new SyscallError(hostErrno(e));
  }
  let seekable = false;
  try {
    const s = fs.fstatSync(fd);
    seekable = s.isFile() || s.isBlockDevice();
  } catch { /* treat as a stream */ }
  return new HostFile(fd, flags & ~O_CLOEXEC, path, seekable, true);
}

/** The host's stdin/stdout/stderr: used with the host's own offsets and never closed. */
export function hostStdio(fd: number): HostFile {
  return new HostFile(fd, fd === 0 ? 0 : O_WRONLY, `/dev/fd/${fd}`, false, false);
}
