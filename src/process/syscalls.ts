/**
 * The Linux x86-64 system-call layer of process mode.
 *
 * Numbers: arch/x86/entry/syscalls/syscall_64.tbl. Arguments in RDI, RSI,
 * RDX, R10, R8, R9; result (or -errno) in RAX; SYSCALL leaves the return
 * address in RCX and RFLAGS in R11, and Linux preserves the other registers.
 * Structure layouts cite their uapi header. A number not handled here
 * returns -ENOSYS and is reported once; the table's `enosys` entries are
 * calls whose ENOSYS makes the C library fall back quietly (clone3, statx, rseq).
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getRflags } from '../engine/soft/flags.js';
import { PAGE_SIZE } from '../engine/soft/mmu.js';
import { setRegAddr } from '../engine/soft/operands.js';
import { R10, R11, R8, R9, RAX, RCX, RDI, RDX, RSI, SEG_FS, SEG_GS } from '../engine/soft/state.js';
import { EfaultError, pageAlignUp, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP } from './address-space.js';
import { err, hostErrno, LINUX_ERRNO, SyscallError } from './errno.js';
import {
  BLOCK, encodeStat, fromNodeStat, O_CLOEXEC, O_DIRECTORY, O_NONBLOCK, openHost, type OpenFile, Pipe, PipeEnd, S_IFDIR,
} from './files.js';
import { type Kernel, type Process, SIGKILL, SIGPIPE, SIG_DFL } from './kernel.js';

const T32 = 4294967296;
const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;
const AT_EMPTY_PATH = 0x1000;

/** A system call that must wait: rewind to the SYSCALL instruction and retry later. */
const BLOCKED = Symbol('blocked');
type Result = number | typeof BLOCKED;

class Args {
  constructor(private readonly g: Int32Array) {}
  private static readonly REGS = [RDI, RSI, RDX, R10, R8, R9];
  /** Argument k as an unsigned 64-bit number (exact below 2^53). */
  u(k: number): number {
    const r = Args.REGS[k] as number;
    return ((this.g[2 * r + 1] as number) >>> 0) * T32 + ((this.g[2 * r] as number) >>> 0);
  }
  /** Argument k as a signed 64-bit number. */
  s(k: number): number {
    const r = Args.REGS[k] as number;
    return (this.g[2 * r + 1] as number) * T32 + ((this.g[2 * r] as number) >>> 0);
  }
  /** Argument k as a C int (low 32 bits, signed). */
  i(k: number): number {
    return this.g[2 * (Args.REGS[k] as number)] as number;
  }
}

type Sys = (k: Kernel, p: Process, a: Args) => Result;

const dec = new TextDecoder();
const enc = new TextEncoder();

function str(p: Process, addr: number): string {
  if (addr === 0) throw err('EFAULT');
  return dec.decode(p.as.readCString(addr, 4096));
}

function resolvePath(p: Process, dirfd: number, name: string): string {
  if (name === '/proc/self/exe') return p.exe;
  if (path.isAbsolute(name)) return name;
  if (dirfd === AT_FDCWD) return path.resolve(p.cwd, name);
  const f = fileOf(p, dirfd);
  return path.resolve(f.path, name);
}

function fileOf(p: Process, fd: number): OpenFile {
  const e = p.fd(fd);
  if (!e) throw err('EBADF');
  return e.file;
}

/** Runs a node fs call, turning its error into the Linux errno. */
function host<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof SyscallError) throw e;
    throw new SyscallError(hostErrno(e));
  }
}

function writeU64(p: Process, addr: number, v: number | bigint): void {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(v)), true);
  p.as.writeBytes(addr, b);
}

function writeU32(p: Process, addr: number, v: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  p.as.writeBytes(addr, b);
}

function readPtrArray(p: Process, addr: number): string[] {
  const out: string[] = [];
  if (addr === 0) return out;
  for (let k = 0; k < 65536; k++) {
    const ptr = p.as.readU64(addr + k * 8);
    if (ptr === 0) return out;
    out.push(str(p, ptr));
  }
  throw err('E2BIG');
}

// ---- I/O ----

function doRead(k: Kernel, p: Process, f: OpenFile, addr: number, len: number): Result {
  const buf = new Uint8Array(Math.min(len, 1 << 20));
  const n = f.read(buf);
  if (n === BLOCK) return BLOCKED;
  if (n > 0) p.as.writeBytes(addr, buf.subarray(0, n));
  void k;
  return n;
}

function doWrite(k: Kernel, p: Process, f: OpenFile, data: Uint8Array): Result {
  try {
    const n = f.write(data);
    return n === BLOCK ? BLOCKED : n;
  } catch (e) {
    if (e instanceof SyscallError && e.errno === LINUX_ERRNO.EPIPE) k.signal(p, SIGPIPE);
    throw e;
  }
}

function iovecs(p: Process, addr: number, count: number): [number, number][] {
  if (count < 0 || count > 1024) throw err('EINVAL');
  const raw = p.as.readBytes(addr, count * 16);
  const v = new DataView(raw.buffer);
  const out: [number, number][] = [];
  for (let j = 0; j < count; j++) {
    out.push([v.getUint32(j * 16 + 4, true) * T32 + v.getUint32(j * 16, true), v.getUint32(j * 16 + 12, true) * T32 + v.getUint32(j * 16 + 8, true)]);
  }
  return out;
}

const sys_read: Sys = (k, p, a) => doRead(k, p, fileOf(p, a.i(0)), a.u(1), a.u(2));
const sys_write: Sys = (k, p, a) => doWrite(k, p, fileOf(p, a.i(0)), p.as.readBytes(a.u(1), Math.min(a.u(2), 1 << 24)));

const sys_readv: Sys = (k, p, a) => {
  const f = fileOf(p, a.i(0));
  const iov = iovecs(p, a.u(1), a.i(2));
  const total = iov.reduce((s, [, l]) => s + l, 0);
  const buf = new Uint8Array(Math.min(total, 1 << 20));
  const n = f.read(buf);
  if (n === BLOCK) return BLOCKED;
  let done = 0;
  for (const [base, len] of iov) {
    if (done >= n) break;
    const m = Math.min(len, n - done);
    p.as.writeBytes(base, buf.subarray(done, done + m));
    done += m;
  }
  return n;
};

const sys_writev: Sys = (k, p, a) => {
  const f = fileOf(p, a.i(0));
  const parts = iovecs(p, a.u(1), a.i(2)).map(([base, len]) => p.as.readBytes(base, len));
  const total = parts.reduce((s, b) => s + b.length, 0);
  const buf = new Uint8Array(total);
  let o = 0;
  for (const b of parts) { buf.set(b, o); o += b.length; }
  return doWrite(k, p, f, buf);
};

const sys_pread64: Sys = (_k, p, a) => {
  const buf = new Uint8Array(Math.min(a.u(2), 1 << 24));
  const n = fileOf(p, a.i(0)).pread(buf, a.s(3));
  p.as.writeBytes(a.u(1), buf.subarray(0, n));
  return n;
};

const sys_pwrite64: Sys = (_k, p, a) => fileOf(p, a.i(0)).pwrite(p.as.readBytes(a.u(1), a.u(2)), a.s(3));

function openAt(p: Process, dirfd: number, name: string, flags: number, mode: number): number {
  const full = resolvePath(p, dirfd, name);
  const f = openHost(full, flags, mode & ~p.umask);
  if ((flags & O_DIRECTORY) !== 0 && (Number(f.stat().mode) & 0o170000) !== S_IFDIR) {
    f.close();
    throw err('ENOTDIR');
  }
  return p.allocFd(f, (flags & O_CLOEXEC) !== 0);
}

const sys_open: Sys = (_k, p, a) => openAt(p, AT_FDCWD, str(p, a.u(0)), a.i(1), a.i(2));
const sys_openat: Sys = (_k, p, a) => openAt(p, a.i(0), str(p, a.u(1)), a.i(2), a.i(3));
const sys_creat: Sys = (_k, p, a) => openAt(p, AT_FDCWD, str(p, a.u(0)), 0o1101, a.i(1));
const sys_close: Sys = (_k, p, a) => { if (!p.closeFd(a.i(0))) throw err('EBADF'); return 0; };
const sys_lseek: Sys = (_k, p, a) => fileOf(p, a.i(0)).seek(a.s(1), a.i(2));

function statPath(p: Process, dirfd: number, name: string, flags: number): Uint8Array {
  if (name === '' && (flags & AT_EMPTY_PATH) !== 0) return encodeStat(fileOf(p, dirfd).stat());
  const full = resolvePath(p, dirfd, name);
  const st = host(() => ((flags & AT_SYMLINK_NOFOLLOW) !== 0 ? fs.lstatSync(full, { bigint: true }) : fs.statSync(full, { bigint: true })));
  return encodeStat(fromNodeStat(st));
}

const sys_stat: Sys = (_k, p, a) => { p.as.writeBytes(a.u(1), statPath(p, AT_FDCWD, str(p, a.u(0)), 0)); return 0; };
const sys_lstat: Sys = (_k, p, a) => { p.as.writeBytes(a.u(1), statPath(p, AT_FDCWD, str(p, a.u(0)), AT_SYMLINK_NOFOLLOW)); return 0; };
const sys_fstat: Sys = (_k, p, a) => { p.as.writeBytes(a.u(1), encodeStat(fileOf(p, a.i(0)).stat())); return 0; };
const sys_newfstatat: Sys = (_k, p, a) => { p.as.writeBytes(a.u(2), statPath(p, a.i(0), a.u(1) === 0 ? '' : str(p, a.u(1)), a.i(3))); return 0; };

const TCGETS = 0x5401;
const TCSETS = 0x5402;
const TCSETSW = 0x5403;
const TCSETSF = 0x5404;
const TIOCGPGRP = 0x540f;
const TIOCSPGRP = 0x5410;
const TIOCGWINSZ = 0x5413;
const FIONREAD = 0x541b;
const FIONBIO = 0x5421;

const sys_ioctl: Sys = (_k, p, a) => {
  const f = fileOf(p, a.i(0));
  const req = a.u(1) >>> 0;
  const arg = a.u(2);
  if (req === FIONBIO) {
    const on = p.as.readBytes(arg, 4).some((b) => b !== 0);
    f.flags = on ? f.flags | O_NONBLOCK : f.flags & ~O_NONBLOCK;
    return 0;
  }
  if (req === FIONREAD && f instanceof PipeEnd) { writeU32(p, arg, f.pipe.size); return 0; }
  if (!f.isTty()) throw err('ENOTTY');
  switch (req) {
    case TCGETS: {
      // struct termios (include/uapi/asm-generic/termbits.h): a cooked terminal (ICRNL IXON, OPOST ONLCR, B38400 CS8 CREAD, ISIG ICANON ECHO...).
      const t = new Uint8Array(36);
      const v = new DataView(t.buffer);
      v.setUint32(0, 0x500, true);
      v.setUint32(4, 0x5, true);
      v.setUint32(8, 0xbf, true);
      v.setUint32(12, 0x8a3b, true);
      t.set([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0], 17);
      p.as.writeBytes(arg, t);
      return 0;
    }
    case TCSETS: case TCSETSW: case TCSETSF: return 0;
    case TIOCGPGRP: writeU32(p, arg, p.pgid); return 0;
    case TIOCSPGRP: return 0;
    case TIOCGWINSZ: {
      const w = new Uint8Array(8);
      const v = new DataView(w.buffer);
      v.setUint16(0, process.stdout.rows || 24, true);
      v.setUint16(2, process.stdout.columns || 80, true);
      p.as.writeBytes(arg, w);
      return 0;
    }
  }
  throw err('ENOTTY');
};

const sys_access: Sys = (_k, p, a) => { host(() => fs.accessSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))), a.i(1))); return 0; };
const sys_faccessat: Sys = (_k, p, a) => { host(() => fs.accessSync(resolvePath(p, a.i(0), str(p, a.u(1))), a.i(2))); return 0; };

function pipeInto(p: Process, addr: number, flags: number): number {
  const pipe = new Pipe();
  const st = flags & O_NONBLOCK;
  const r = new PipeEnd(pipe, true, st);
  const w = new PipeEnd(pipe, false, st | 1);
  const cloexec = (flags & O_CLOEXEC) !== 0;
  const fr = p.allocFd(r, cloexec);
  const fw = p.allocFd(w, cloexec);
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setInt32(0, fr, true);
  v.setInt32(4, fw, true);
  try {
    p.as.writeBytes(addr, b);
  } catch (e) {
    p.closeFd(fr);
    p.closeFd(fw);
    throw e;
  }
  return 0;
}

const sys_pipe: Sys = (_k, p, a) => pipeInto(p, a.u(0), 0);
const sys_pipe2: Sys = (_k, p, a) => pipeInto(p, a.u(0), a.i(1));

function dupTo(p: Process, oldfd: number, newfd: number, cloexec: boolean): number {
  const f = fileOf(p, oldfd);
  if (newfd < 0 || newfd > 65535) throw err('EBADF');
  if (oldfd === newfd) return newfd;
  p.closeFd(newfd);
  f.refs++;
  p.fds[newfd] = { file: f, cloexec };
  return newfd;
}

const sys_dup: Sys = (_k, p, a) => { const f = fileOf(p, a.i(0)); f.refs++; return p.allocFd(f, false); };
const sys_dup2: Sys = (_k, p, a) => dupTo(p, a.i(0), a.i(1), false);
const sys_dup3: Sys = (_k, p, a) => { if (a.i(0) === a.i(1)) throw err('EINVAL'); return dupTo(p, a.i(0), a.i(1), (a.i(2) & O_CLOEXEC) !== 0); };

const F_DUPFD = 0, F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
const FD_CLOEXEC = 1;

const sys_fcntl: Sys = (_k, p, a) => {
  const fd = a.i(0);
  const e = p.fd(fd);
  if (!e) throw err('EBADF');
  switch (a.i(1)) {
    case F_DUPFD: case F_DUPFD_CLOEXEC: e.file.refs++; return p.allocFd(e.file, a.i(1) === F_DUPFD_CLOEXEC, Math.max(0, a.i(2)));
    case F_GETFD: return e.cloexec ? FD_CLOEXEC : 0;
    case F_SETFD: e.cloexec = (a.i(2) & FD_CLOEXEC) !== 0; return 0;
    case F_GETFL: return e.file.flags;
    case F_SETFL: e.file.flags = (e.file.flags & ~(O_NONBLOCK | 0o2000)) | (a.i(2) & (O_NONBLOCK | 0o2000)); return 0;
    default: return 0; // locks and ownership: single-user emulation, nothing to arbitrate
  }
};

const sys_getdents64: Sys = (_k, p, a) => {
  const cur = fileOf(p, a.i(0)).dirEntries();
  const cap = a.u(2);
  const out = new Uint8Array(Math.min(cap, 1 << 20));
  const v = new DataView(out.buffer);
  let o = 0;
  while (cur.pos < cur.entries.length) {
    const e = cur.entries[cur.pos] as { name: string; ino: bigint; type: number };
    const name = enc.encode(e.name);
    // struct linux_dirent64 (include/linux/dirent.h): ino, off, reclen, type, name, NUL, padded to 8.
    const reclen = Math.ceil((19 + name.length + 1) / 8) * 8;
    if (o + reclen > out.length) break;
    v.setBigUint64(o, e.ino, true);
    v.setBigUint64(o + 8, BigInt(cur.pos + 1), true);
    v.setUint16(o + 16, reclen, true);
    out[o + 18] = e.type;
    out.set(name, o + 19);
    o += reclen;
    cur.pos++;
  }
  if (o === 0 && cur.pos < cur.entries.length) throw err('EINVAL');
  p.as.writeBytes(a.u(1), out.subarray(0, o));
  return o;
};

// ---- Memory ----

const MAP_SHARED = 0x1;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_FIXED_NOREPLACE = 0x100000;

const sys_mmap: Sys = (_k, p, a) => {
  const hint = a.u(0), len = a.u(1), prot = a.i(2) & 7, flags = a.i(3), fd = a.i(4), off = a.u(5);
  if (len === 0 || len > USER_TOP) throw err('EINVAL');
  if (off % PAGE_SIZE !== 0) throw err('EINVAL');
  const size = pageAlignUp(len);
  let addr: number;
  if ((flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0) {
    if (hint % PAGE_SIZE !== 0 || hint + size > USER_TOP) throw err('EINVAL');
    if ((flags & MAP_FIXED_NOREPLACE) !== 0 && !p.as.isFree(hint, hint + size)) throw err('EEXIST');
    addr = hint;
  } else if (hint !== 0 && hint % PAGE_SIZE === 0 && p.as.isFree(hint, hint + size)) {
    addr = hint;
  } else {
    const f = p.as.findFree(size, p.mmapTop);
    if (f === undefined) throw err('ENOMEM');
    addr = f;
  }
  let file: OpenFile | undefined;
  if ((flags & MAP_ANONYMOUS) === 0) {
    file = fileOf(p, fd);
    if ((flags & MAP_SHARED) !== 0 && (prot & PROT_WRITE) !== 0) throw err('ENODEV'); // shared writable file mappings: not supported
  }
  p.as.map(addr, size, prot, file ? file.path : 'anon');
  if (file) {
    const buf = new Uint8Array(len);
    const n = file.pread(buf, off);
    p.as.writeUnchecked(addr, buf.subarray(0, n));
  }
  return addr;
};

const sys_munmap: Sys = (_k, p, a) => {
  if (a.u(0) % PAGE_SIZE !== 0 || a.u(1) === 0) throw err('EINVAL');
  p.as.unmap(a.u(0), a.u(1));
  return 0;
};

const sys_mprotect: Sys = (_k, p, a) => {
  if (a.u(0) % PAGE_SIZE !== 0) throw err('EINVAL');
  if (!p.as.protect(a.u(0), a.u(1), a.i(2) & (PROT_READ | PROT_WRITE | PROT_EXEC))) throw err('ENOMEM');
  return 0;
};

const MREMAP_MAYMOVE = 1;
const MREMAP_FIXED = 2;

const sys_mremap: Sys = (_k, p, a) => {
  const old = a.u(0), oldLen = pageAlignUp(a.u(1)), newLen = pageAlignUp(a.u(2)), flags = a.i(3);
  if (old % PAGE_SIZE !== 0 || newLen === 0) throw err('EINVAL');
  const g = p.as.regionAt(old);
  if (!g) throw err('EFAULT');
  if ((flags & MREMAP_FIXED) !== 0) {
    const to = a.u(4);
    p.as.move(old, oldLen, to, newLen);
    return to;
  }
  if (newLen <= oldLen) {
    if (newLen < oldLen) p.as.unmap(old + newLen, oldLen - newLen);
    return old;
  }
  if (p.as.isFree(old + oldLen, old + newLen)) {
    p.as.map(old + oldLen, newLen - oldLen, g.prot, g.name);
    return old;
  }
  if ((flags & MREMAP_MAYMOVE) === 0) throw err('ENOMEM');
  const to = p.as.findFree(newLen, p.mmapTop);
  if (to === undefined) throw err('ENOMEM');
  p.as.move(old, oldLen, to, newLen);
  return to;
};

const sys_brk: Sys = (_k, p, a) => {
  const want = a.u(0);
  if (want < p.brkStart) return p.brkEnd;
  const cur = pageAlignUp(p.brkEnd);
  const next = pageAlignUp(want);
  if (next > cur) {
    if (!p.as.isFree(cur, next)) return p.brkEnd;
    p.as.map(cur, next - cur, PROT_READ | PROT_WRITE, 'heap');
  } else if (next < cur) {
    p.as.unmap(next, cur - next);
  }
  p.brkEnd = want;
  return want;
};

const MADV_DONTNEED = 4;
const sys_madvise: Sys = (_k, p, a) => {
  if (a.i(2) === MADV_DONTNEED) {
    const g = p.as.regionAt(a.u(0));
    if (g && g.name !== 'elf') p.as.discard(a.u(0), a.u(1));
  }
  return 0;
};

// ---- Processes ----

const CLONE_VM = 0x100;
const CLONE_VFORK = 0x4000;
const CLONE_THREAD = 0x10000;
const CLONE_SETTLS = 0x80000;
const CLONE_PARENT_SETTID = 0x100000;
const CLONE_CHILD_CLEARTID = 0x200000;
const CLONE_CHILD_SETTID = 0x1000000;

function doClone(k: Kernel, p: Process, flags: number, stack: number, ptid: number, ctid: number, tls: number): Result {
  if ((flags & CLONE_THREAD) !== 0) {
    k.log('clone: threads (CLONE_THREAD) are not supported in process mode');
    throw err('ENOSYS');
  }
  const child = k.fork(p, (flags & CLONE_VM) !== 0);
  const c = child.cpu;
  setRegAddr(c, RAX, 0);
  if (stack !== 0) setRegAddr(c, 4, stack);
  if ((flags & CLONE_SETTLS) !== 0) c.segBase[SEG_FS] = tls;
  if ((flags & CLONE_PARENT_SETTID) !== 0) writeU32(p, ptid, child.pid);
  if ((flags & CLONE_CHILD_SETTID) !== 0) writeU32(child, ctid, child.pid);
  if ((flags & CLONE_CHILD_CLEARTID) !== 0) child.clearTid = ctid;
  // The child returns from SYSCALL like its parent: RCX/R11 as SYSCALL left them.
  setRegAddr(c, RCX, p.cpu.nextRip);
  setRegAddr(c, R11, getRflags(p.cpu));
  if ((flags & CLONE_VFORK) !== 0) {
    child.vforkParent = p;
    p.vforkWaiting = true;
    p.cpu.requestStop();
  }
  return child.pid;
}

const sys_clone: Sys = (k, p, a) => doClone(k, p, a.u(0) % T32, a.u(1), a.u(2), a.u(3), a.u(4));
const sys_fork: Sys = (k, p) => doClone(k, p, 17, 0, 0, 0, 0);
const sys_vfork: Sys = (k, p) => doClone(k, p, CLONE_VM | CLONE_VFORK | 17, 0, 0, 0, 0);

const sys_execve: Sys = (k, p, a) => {
  const file = str(p, a.u(0));
  const argv = readPtrArray(p, a.u(1));
  const envp = readPtrArray(p, a.u(2));
  const r = k.execInto(p, file, argv, envp);
  if (r < 0) return r;
  return 0;
};

const sys_exit_group: Sys = (k, p, a) => { k.terminate(p, (a.i(0) & 0xff) << 8); return 0; };

const WNOHANG = 1;
const sys_wait4: Sys = (k, p, a) => {
  const want = a.i(0);
  const matches = [...p.children].filter((c) => want === -1 || c.pid === want || (want === 0 && c.pgid === p.pgid) || (want < -1 && c.pgid === -want));
  if (matches.length === 0) throw err('ECHILD');
  const done = matches.find((c) => c.state === 'zombie');
  if (!done) {
    if ((a.i(2) & WNOHANG) !== 0) return 0;
    return BLOCKED;
  }
  if (a.u(1) !== 0) writeU32(p, a.u(1), done.waitStatus);
  if (a.u(3) !== 0) p.as.writeBytes(a.u(3), new Uint8Array(144));
  p.children.delete(done);
  k.procs.delete(done.pid);
  return done.pid;
};

const sys_kill: Sys = (k, p, a) => {
  const pid = a.i(0), sig = a.i(1);
  if (sig < 0 || sig > 64) throw err('EINVAL');
  const targets = pid > 0 ? [k.procs.get(pid)] : [...k.procs.values()].filter((q) => pid === -1 || q.pgid === (pid === 0 ? p.pgid : -pid));
  const live = targets.filter((q): q is Process => q !== undefined && q.state !== 'zombie');
  if (live.length === 0) throw err('ESRCH');
  for (const q of live) k.signal(q, sig);
  return 0;
};

const sys_tgkill: Sys = (k, p, a) => {
  const q = k.procs.get(a.i(1));
  if (!q) throw err('ESRCH');
  k.signal(q, a.i(2));
  return 0;
};

const sys_rt_sigaction: Sys = (_k, p, a) => {
  const sig = a.i(0);
  if (sig < 1 || sig > 64 || sig === SIGKILL || sig === 19) throw err('EINVAL');
  if (a.u(2) !== 0) p.as.writeBytes(a.u(2), p.sigactions.get(sig) ?? new Uint8Array(32));
  if (a.u(1) !== 0) {
    const act = p.as.readBytes(a.u(1), 32);
    if (new DataView(act.buffer).getBigUint64(0, true) === BigInt(SIG_DFL)) p.sigactions.delete(sig);
    else p.sigactions.set(sig, act);
  }
  return 0;
};

const sys_rt_sigprocmask: Sys = (_k, p, a) => {
  if (a.u(2) !== 0) writeU64(p, a.u(2), p.sigmask);
  if (a.u(1) !== 0) {
    const set = new DataView(p.as.readBytes(a.u(1), 8).buffer).getBigUint64(0, true);
    switch (a.i(0)) {
      case 0: p.sigmask |= set; break;
      case 1: p.sigmask &= ~set; break;
      case 2: p.sigmask = set; break;
      default: throw err('EINVAL');
    }
  }
  return 0;
};

// ---- Identity, time, system ----

const sys_uname: Sys = (_k, p, a) => {
  // struct new_utsname (include/uapi/linux/utsname.h): six 65-byte fields.
  const b = new Uint8Array(65 * 6);
  ['Linux', os.hostname(), os.release(), '#1 SMP typevisor', 'x86_64', '(none)'].forEach((s, k) => b.set(enc.encode(s).subarray(0, 64), k * 65));
  p.as.writeBytes(a.u(0), b);
  return 0;
};

const ARCH_SET_GS = 0x1001;
const ARCH_SET_FS = 0x1002;
const ARCH_GET_FS = 0x1003;
const ARCH_GET_GS = 0x1004;

const sys_arch_prctl: Sys = (_k, p, a) => {
  switch (a.i(0)) {
    case ARCH_SET_FS: p.cpu.segBase[SEG_FS] = a.u(1); return 0;
    case ARCH_SET_GS: p.cpu.segBase[SEG_GS] = a.u(1); return 0;
    case ARCH_GET_FS: writeU64(p, a.u(1), p.cpu.segBase[SEG_FS] as number); return 0;
    case ARCH_GET_GS: writeU64(p, a.u(1), p.cpu.segBase[SEG_GS] as number); return 0;
  }
  throw err('EINVAL');
};

function nowNs(clock: number): bigint {
  // CLOCK_REALTIME 0, _COARSE 5, TAI 11: wall time; the others: monotonic (include/uapi/linux/time.h).
  if (clock === 0 || clock === 5 || clock === 11) return BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  return process.hrtime.bigint();
}

const sys_clock_gettime: Sys = (_k, p, a) => {
  const t = nowNs(a.i(0));
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, t / 1_000_000_000n, true);
  v.setBigInt64(8, t % 1_000_000_000n, true);
  p.as.writeBytes(a.u(1), b);
  return 0;
};

const sys_clock_getres: Sys = (_k, p, a) => {
  if (a.u(1) !== 0) { const b = new Uint8Array(16); new DataView(b.buffer).setBigInt64(8, 1n, true); p.as.writeBytes(a.u(1), b); }
  return 0;
};

const sys_gettimeofday: Sys = (_k, p, a) => {
  if (a.u(0) !== 0) {
    const t = nowNs(0);
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setBigInt64(0, t / 1_000_000_000n, true);
    v.setBigInt64(8, (t % 1_000_000_000n) / 1000n, true);
    p.as.writeBytes(a.u(0), b);
  }
  if (a.u(1) !== 0) p.as.writeBytes(a.u(1), new Uint8Array(8));
  return 0;
};

const sys_time: Sys = (_k, p, a) => {
  const s = Math.floor(Date.now() / 1000);
  if (a.u(0) !== 0) writeU64(p, a.u(0), s);
  return s;
};

function sleepNs(ns: number): void {
  if (ns > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ns / 1e6);
}

const sys_nanosleep: Sys = (_k, p, a) => {
  const v = new DataView(p.as.readBytes(a.u(0), 16).buffer);
  sleepNs(Number(v.getBigInt64(0, true)) * 1e9 + Number(v.getBigInt64(8, true)));
  return 0;
};

const sys_clock_nanosleep: Sys = (_k, p, a) => {
  const v = new DataView(p.as.readBytes(a.u(2), 16).buffer);
  let ns = Number(v.getBigInt64(0, true)) * 1e9 + Number(v.getBigInt64(8, true));
  if ((a.i(1) & 1) !== 0) ns -= Number(nowNs(a.i(0))); // TIMER_ABSTIME
  sleepNs(ns);
  return 0;
};

const sys_getrandom: Sys = (_k, p, a) => {
  const b = new Uint8Array(Math.min(a.u(1), 1 << 20));
  randomFillSync(b);
  p.as.writeBytes(a.u(0), b);
  return b.length;
};

const sys_getcwd: Sys = (_k, p, a) => {
  const b = enc.encode(p.cwd + '\0');
  if (b.length > a.u(1)) throw err('ERANGE');
  p.as.writeBytes(a.u(0), b);
  return b.length;
};

const sys_chdir: Sys = (_k, p, a) => {
  const d = resolvePath(p, AT_FDCWD, str(p, a.u(0)));
  if (!host(() => fs.statSync(d)).isDirectory()) throw err('ENOTDIR');
  p.cwd = d;
  return 0;
};

const sys_fchdir: Sys = (_k, p, a) => { p.cwd = fileOf(p, a.i(0)).path; return 0; };

function readlinkInto(p: Process, dirfd: number, name: string, buf: number, size: number): number {
  const full = name === '/proc/self/exe' ? undefined : resolvePath(p, dirfd, name);
  const target = full === undefined ? p.exe : host(() => fs.readlinkSync(full));
  const b = enc.encode(target).subarray(0, size);
  p.as.writeBytes(buf, b);
  return b.length;
}

const sys_readlink: Sys = (_k, p, a) => readlinkInto(p, AT_FDCWD, str(p, a.u(0)), a.u(1), a.u(2));
const sys_readlinkat: Sys = (_k, p, a) => readlinkInto(p, a.i(0), str(p, a.u(1)), a.u(2), a.u(3));

const RLIM_INFINITY = 2n ** 64n - 1n;
function rlimit(resource: number): [bigint, bigint] {
  switch (resource) {
    case 3: return [8n << 20n, RLIM_INFINITY]; // RLIMIT_STACK
    case 7: return [1024n, 1048576n]; // RLIMIT_NOFILE
    default: return [RLIM_INFINITY, RLIM_INFINITY];
  }
}

function writeRlimit(p: Process, addr: number, resource: number): void {
  const [cur, max] = rlimit(resource);
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, cur, true);
  v.setBigUint64(8, max, true);
  p.as.writeBytes(addr, b);
}

const sys_prlimit64: Sys = (_k, p, a) => { if (a.u(3) !== 0) writeRlimit(p, a.u(3), a.i(1)); return 0; };
const sys_getrlimit: Sys = (_k, p, a) => { writeRlimit(p, a.u(1), a.i(0)); return 0; };

const sys_sysinfo: Sys = (_k, p, a) => {
  // struct sysinfo (include/uapi/linux/sysinfo.h), mem_unit 1.
  const b = new Uint8Array(112);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, BigInt(Math.floor(os.uptime())), true);
  v.setBigUint64(32, BigInt(os.totalmem()), true);
  v.setBigUint64(40, BigInt(os.freemem()), true);
  v.setUint16(80, 1, true);
  v.setUint32(104, 1, true);
  p.as.writeBytes(a.u(0), b);
  return 0;
};

const sys_sched_getaffinity: Sys = (_k, p, a) => {
  if (a.u(1) < 8) throw err('EINVAL');
  const b = new Uint8Array(8);
  b[0] = 1;
  p.as.writeBytes(a.u(2), b);
  return 8;
};

const sys_umask: Sys = (_k, p, a) => { const old = p.umask; p.umask = a.i(0) & 0o777; return old; };

const sys_unlink: Sys = (_k, p, a) => { host(() => fs.unlinkSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))))); return 0; };
const sys_unlinkat: Sys = (_k, p, a) => {
  const f = resolvePath(p, a.i(0), str(p, a.u(1)));
  host(() => ((a.i(2) & AT_REMOVEDIR) !== 0 ? fs.rmdirSync(f) : fs.unlinkSync(f)));
  return 0;
};
const sys_mkdir: Sys = (_k, p, a) => { host(() => fs.mkdirSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))), a.i(1) & ~p.umask)); return 0; };
const sys_mkdirat: Sys = (_k, p, a) => { host(() => fs.mkdirSync(resolvePath(p, a.i(0), str(p, a.u(1))), a.i(2) & ~p.umask)); return 0; };
const sys_rmdir: Sys = (_k, p, a) => { host(() => fs.rmdirSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))))); return 0; };
const sys_rename: Sys = (_k, p, a) => { host(() => fs.renameSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))), resolvePath(p, AT_FDCWD, str(p, a.u(1))))); return 0; };
const sys_renameat: Sys = (_k, p, a) => { host(() => fs.renameSync(resolvePath(p, a.i(0), str(p, a.u(1))), resolvePath(p, a.i(2), str(p, a.u(3))))); return 0; };
const sys_chmod: Sys = (_k, p, a) => { host(() => fs.chmodSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))), a.i(1))); return 0; };
const sys_fchmodat: Sys = (_k, p, a) => { host(() => fs.chmodSync(resolvePath(p, a.i(0), str(p, a.u(1))), a.i(2))); return 0; };
const sys_fchmod: Sys = (_k, p, a) => { host(() => fs.chmodSync(fileOf(p, a.i(0)).path, a.i(1))); return 0; };
const sys_symlink: Sys = (_k, p, a) => { host(() => fs.symlinkSync(str(p, a.u(0)), resolvePath(p, AT_FDCWD, str(p, a.u(1))))); return 0; };
const sys_link: Sys = (_k, p, a) => { host(() => fs.linkSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))), resolvePath(p, AT_FDCWD, str(p, a.u(1))))); return 0; };
const sys_ftruncate: Sys = (_k, p, a) => {
  const f = fileOf(p, a.i(0));
  if (!('fd' in f)) throw err('EINVAL');
  host(() => fs.ftruncateSync((f as unknown as { fd: number }).fd, a.s(1)));
  return 0;
};
const sys_truncate: Sys = (_k, p, a) => { host(() => fs.truncateSync(resolvePath(p, AT_FDCWD, str(p, a.u(0))), a.s(1))); return 0; };

const sys_utimensat: Sys = (_k, p, a) => {
  const name = a.u(1) === 0 ? fileOf(p, a.i(0)).path : resolvePath(p, a.i(0), str(p, a.u(1)));
  let at = Date.now() / 1000, mt = at;
  if (a.u(2) !== 0) {
    const v = new DataView(p.as.readBytes(a.u(2), 32).buffer);
    const t = (o: number, now: number): number => {
      const ns = Number(v.getBigInt64(o + 8, true));
      if (ns === 0x3fffffff) return now; // UTIME_NOW
      if (ns === 0x3ffffffe) return NaN; // UTIME_OMIT
      return Number(v.getBigInt64(o, true)) + ns / 1e9;
    };
    at = t(0, at);
    mt = t(16, mt);
  }
  const st = host(() => fs.statSync(name));
  host(() => fs.utimesSync(name, Number.isNaN(at) ? st.atime : at, Number.isNaN(mt) ? st.mtime : mt));
  return 0;
};

const sys_poll: Sys = (_k, p, a) => {
  // Every descriptor is reported ready for what it asked (pipes and files never wait in a poll here).
  const n = a.u(1);
  const b = p.as.readBytes(a.u(0), n * 8);
  const v = new DataView(b.buffer);
  for (let j = 0; j < n; j++) v.setInt16(j * 8 + 6, v.getInt16(j * 8 + 4, true) & 0x5, true);
  p.as.writeBytes(a.u(0), b);
  return n;
};

const ok0: Sys = () => 0;
const enosys: Sys = () => { throw err('ENOSYS'); };

const pid: Sys = (_k, p) => p.pid;
const uid: Sys = () => process.getuid?.() ?? 0;
const gid: Sys = () => process.getgid?.() ?? 0;

/** Syscall table (syscall_64.tbl numbers). */
const TABLE: Record<number, [string, Sys]> = {
  0: ['read', sys_read], 1: ['write', sys_write], 2: ['open', sys_open], 3: ['close', sys_close], 4: ['stat', sys_stat],
  5: ['fstat', sys_fstat], 6: ['lstat', sys_lstat], 7: ['poll', sys_poll], 8: ['lseek', sys_lseek], 9: ['mmap', sys_mmap],
  10: ['mprotect', sys_mprotect], 11: ['munmap', sys_munmap], 12: ['brk', sys_brk], 13: ['rt_sigaction', sys_rt_sigaction],
  14: ['rt_sigprocmask', sys_rt_sigprocmask], 16: ['ioctl', sys_ioctl], 17: ['pread64', sys_pread64],
  18: ['pwrite64', sys_pwrite64], 19: ['readv', sys_readv], 20: ['writev', sys_writev], 21: ['access', sys_access],
  22: ['pipe', sys_pipe], 24: ['sched_yield', ok0], 25: ['mremap', sys_mremap], 26: ['msync', ok0], 28: ['madvise', sys_madvise],
  32: ['dup', sys_dup], 33: ['dup2', sys_dup2], 35: ['nanosleep', sys_nanosleep], 37: ['alarm', ok0], 39: ['getpid', pid],
  40: ['sendfile', () => { throw err('EINVAL'); }], 56: ['clone', sys_clone], 57: ['fork', sys_fork], 58: ['vfork', sys_vfork],
  59: ['execve', sys_execve], 60: ['exit', sys_exit_group], 61: ['wait4', sys_wait4], 62: ['kill', sys_kill],
  63: ['uname', sys_uname], 72: ['fcntl', sys_fcntl], 73: ['flock', ok0], 74: ['fsync', ok0], 75: ['fdatasync', ok0],
  76: ['truncate', sys_truncate], 77: ['ftruncate', sys_ftruncate], 79: ['getcwd', sys_getcwd], 80: ['chdir', sys_chdir],
  81: ['fchdir', sys_fchdir], 82: ['rename', sys_rename], 83: ['mkdir', sys_mkdir], 84: ['rmdir', sys_rmdir],
  85: ['creat', sys_creat], 86: ['link', sys_link], 87: ['unlink', sys_unlink], 88: ['symlink', sys_symlink],
  89: ['readlink', sys_readlink], 90: ['chmod', sys_chmod], 91: ['fchmod', sys_fchmod], 92: ['chown', ok0], 93: ['fchown', ok0],
  94: ['lchown', ok0], 95: ['umask', sys_umask], 96: ['gettimeofday', sys_gettimeofday], 97: ['getrlimit', sys_getrlimit],
  98: ['getrusage', (_k, p, a) => { p.as.writeBytes(a.u(1), new Uint8Array(144)); return 0; }], 99: ['sysinfo', sys_sysinfo],
  102: ['getuid', uid], 104: ['getgid', gid], 105: ['setuid', ok0], 106: ['setgid', ok0], 107: ['geteuid', uid],
  108: ['getegid', gid], 109: ['setpgid', (_k, p, a) => { if (a.i(0) === 0 || a.i(0) === p.pid) p.pgid = a.i(1) || p.pid; return 0; }],
  110: ['getppid', (_k, p) => p.ppid], 111: ['getpgrp', (_k, p) => p.pgid], 112: ['setsid', (_k, p) => { p.pgid = p.pid; return p.pid; }],
  115: ['getgroups', ok0], 121: ['getpgid', (_k, p) => p.pgid], 124: ['getsid', (_k, p) => p.pgid], 131: ['sigaltstack', ok0],
  157: ['prctl', ok0], 158: ['arch_prctl', sys_arch_prctl], 160: ['setrlimit', ok0], 186: ['gettid', pid],
  201: ['time', sys_time], 202: ['futex', (_k, _p, a) => { if ((a.i(1) & 0x7f) === 0) throw err('EAGAIN'); return 0; }],
  204: ['sched_getaffinity', sys_sched_getaffinity], 217: ['getdents64', sys_getdents64],
  218: ['set_tid_address', (_k, p, a) => { p.clearTid = a.u(0); return p.pid; }], 228: ['clock_gettime', sys_clock_gettime],
  229: ['clock_getres', sys_clock_getres], 230: ['clock_nanosleep', sys_clock_nanosleep], 231: ['exit_group', sys_exit_group],
  234: ['tgkill', sys_tgkill], 257: ['openat', sys_openat], 258: ['mkdirat', sys_mkdirat], 262: ['newfstatat', sys_newfstatat],
  263: ['unlinkat', sys_unlinkat], 264: ['renameat', sys_renameat], 267: ['readlinkat', sys_readlinkat],
  268: ['fchmodat', sys_fchmodat], 269: ['faccessat', sys_faccessat], 271: ['ppoll', sys_poll], 273: ['set_robust_list', ok0],
  280: ['utimensat', sys_utimensat], 292: ['dup3', sys_dup3], 293: ['pipe2', sys_pipe2], 302: ['prlimit64', sys_prlimit64],
  318: ['getrandom', sys_getrandom], 332: ['statx', enosys], 334: ['rseq', enosys], 435: ['clone3', enosys],
  221: ['fadvise64', ok0], 137: ['statfs', enosys], 138: ['fstatfs', enosys], 439: ['faccessat2', (k, p, a) => sys_faccessat(k, p, a)],
};

/** Executes the system call in RAX for process `p`. */
export function dispatchSyscall(k: Kernel, p: Process): void {
  const c = p.cpu;
  const nr = c.gpr[2 * RAX] as number;
  const entry = TABLE[nr];
  let r: Result;
  if (!entry) {
    if (!k.loggedSyscalls.has(nr)) {
      k.loggedSyscalls.add(nr);
      k.log(`unimplemented system call ${nr}: returning -ENOSYS`);
    }
    r = -LINUX_ERRNO.ENOSYS;
  } else {
    try {
      r = entry[1](k, p, new Args(c.gpr));
    } catch (e) {
      if (e instanceof SyscallError) r = -e.errno;
      else if (e instanceof EfaultError) r = -LINUX_ERRNO.EFAULT;
      else throw e;
    }
  }
  if (r === BLOCKED) {
    p.state = 'blocked';
    c.nextRip = c.rip;
    c.requestStop();
    return;
  }
  if (p.state === 'zombie') return;
  if (nr === 59 && r === 0) return; // execve: the new image's registers stand
  setRegAddr(c, RAX, r);
  setRegAddr(c, RCX, c.nextRip);
  setRegAddr(c, R11, getRflags(c));
}
