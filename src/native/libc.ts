import { createRequire } from 'node:module';
import type * as Koffi from 'koffi';

/**
 * The Linux system calls Node does not expose (ioctl, mmap, eventfd, signal
 * masks, thread-directed signals), called through glibc with koffi.
 *
 * Every wrapper checks the C return value and throws a NativeError naming the
 * call and the errno, so callers never test for -1 themselves. Pointers travel
 * as bigint host addresses; buffers passed as `void *` are Uint8Arrays that
 * the kernel reads and writes in place.
 */

type KoffiModule = typeof Koffi;
type Fn = ReturnType<Koffi.LibraryHandle['func']>;

// koffi and libc load on first use, so that importing this module (memory
// does) costs nothing where the native layer is never called: other OSes,
// the soft engine, a browser bundle.
let koffiModule: KoffiModule | undefined;
function k(): KoffiModule {
  koffiModule ??= createRequire(import.meta.url)('koffi') as KoffiModule;
  return koffiModule;
}

let errnoNames: Map<number, string> | undefined;

/** errno number → symbolic name (EACCES, ENOENT…), from koffi's table of this OS. */
export function errnoName(errno: number): string {
  if (!errnoNames) {
    // Aliases share a number (EWOULDBLOCK = EAGAIN); the first name set wins, so the usual one goes first.
    const table = k().os.errno;
    errnoNames = new Map();
    for (const name of ['EAGAIN', 'EDEADLK', 'EOPNOTSUPP', ...Object.keys(table)]) {
      const n = table[name];
      if (n !== undefined && !errnoNames.has(n)) errnoNames.set(n, name);
    }
  }
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** errno value of a symbolic name on this OS. */
export function errnoValue(name: string): number | undefined {
  return k().os.errno[name];
}

/** A failed system call: `call` is what was attempted, `code` the errno name. */
export class NativeError extends Error {
  override name = 'NativeError';
  readonly code: string;
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    const code = errnoName(errno);
    super(`${call}: ${code} (${strerror(errno)})`);
    this.code = code;
  }
}

function bind() {
  const libc = k().load('libc.so.6');
  return {
    strerror: libc.func('const char *strerror(int errnum)'),
    open: libc.func('int open(const char *path, int flags)'),
    close: libc.func('int close(int fd)'),
    // ioctl is variadic in C; on x86-64 SysV a fixed third argument is passed
    // in the same register, so two fixed prototypes cover integer and pointer arguments.
    ioctlInt: libc.func('int ioctl(int fd, unsigned long request, unsigned long arg)'),
    ioctlPtr: libc.func('int ioctl(int fd, unsigned long request, void *arg)'),
    mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: libc.func('int munmap(void *addr, size_t length)'),
    eventfd: libc.func('int eventfd(unsigned int initval, int flags)'),
    write: libc.func('intptr_t write(int fd, const void *buf, size_t count)'),
    read: libc.func('intptr_t read(int fd, void *buf, size_t count)'),
    poll: libc.func('int poll(void *fds, unsigned long nfds, int timeout)'),
    gettid: libc.func('int gettid(void)'),
    getpid: libc.func('int getpid(void)'),
    tgkill: libc.func('int tgkill(int tgid, int tid, int sig)'),
    pthreadSigmask: libc.func('int pthread_sigmask(int how, const void *set, void *oldset)'),
    sigtimedwait: libc.func('int sigtimedwait(const void *set, void *info, const void *timeout)'),
    sigrtmin: libc.func('int __libc_current_sigrtmin(void)'),
    schedYield: libc.func('int sched_yield(void)'),
  } satisfies Record<string, Fn>;
}

let bound: ReturnType<typeof bind> | undefined;
function libc(): ReturnType<typeof bind> {
  bound ??= bind();
  return bound;
}

function strerror(errno: number): string {
  return libc().strerror(errno) as string;
}

function check(result: number, call: string): number {
  if (result < 0) throw new NativeError(call, k().errno());
  return result;
}

// <fcntl.h>, <sys/mman.h>, <sys/eventfd.h>, <signal.h> values for Linux x86-64.
export const O_RDONLY = 0;
export const O_RDWR = 2;
/** Close on exec: children (e.g. a spawned QEMU) must not inherit VM fds. */
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
/** Do not reserve swap: guest RAM is committed page by page as the guest touches it. */
export const MAP_NORESERVE = 0x4000;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIG_SETMASK = 2;
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
/** glibc's sigset_t is 1024 bits; the kernel's is 64 (same bit layout at the start). */
export const SIGSET_BYTES = 128;
export const KERNEL_SIGSET_BYTES = 8;

export function open(path: string, flags: number): number {
  return check(libc().open(path, flags) as number, `open ${path}`);
}

export function close(fd: number): void {
  check(libc().close(fd) as number, `close fd ${fd}`);
}

/**
 * Runs a system call again while it fails with EINTR: a signal (a profiler's,
 * or a vCPU kick aimed at another thread) landing during a set-up call such
 * as KVM_CREATE_VM interrupts it before it did anything.
 */
function retryIntr(call: () => number): number {
  for (;;) {
    const r = call();
    if (r >= 0 || k().errno() !== k().os.errno.EINTR) return r;
  }
}

/** ioctl with an integer (or no) argument; returns the call's non-negative result. EINTR is retried. */
export function ioctl(fd: number, request: number, arg: number | bigint = 0, name = `ioctl 0x${request.toString(16)}`): number {
  return check(retryIntr(() => libc().ioctlInt(fd, request, arg) as number), name);
}

/** ioctl with a pointer to `buf`, which the kernel reads and/or fills in place. EINTR is retried. */
export function ioctlBuf(fd: number, request: number, buf: Uint8Array, name = `ioctl 0x${request.toString(16)}`): number {
  return check(retryIntr(() => libc().ioctlPtr(fd, request, buf) as number), name);
}

/** ioctl returning -errno instead of throwing, for hot paths that expect EINTR. */
export function ioctlRaw(fd: number, request: number, arg: number | bigint = 0): number {
  const r = libc().ioctlInt(fd, request, arg) as number;
  return r < 0 ? -k().errno() : r;
}

/** Maps `length` bytes; returns the host address. */
export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0): bigint {
  const p = libc().mmap(null, length, prot, flags, fd, offset) as bigint | null;
  // MAP_FAILED is (void *)-1; koffi hands it back as an address of all ones.
  if (p === null || p === 0xffff_ffff_ffff_ffffn || p === -1n) throw new NativeError(`mmap ${length} bytes`, k().errno());
  return p;
}

export function munmap(address: bigint, length: number): void {
  check(libc().munmap(address, length) as number, `munmap 0x${address.toString(16)}`);
}

/** An ArrayBuffer aliasing `length` bytes of host memory at `address` (no copy). */
export function view(address: bigint, length: number): ArrayBuffer {
  return k().view(address, length);
}

export function eventfd(initval: number, flags: number): number {
  return check(libc().eventfd(initval, flags) as number, 'eventfd');
}

export function write(fd: number, data: Uint8Array): number {
  return check(Number(libc().write(fd, data, data.length)), `write fd ${fd}`);
}

export function read(fd: number, into: Uint8Array): number {
  return check(Number(libc().read(fd, into, into.length)), `read fd ${fd}`);
}

/** poll(2) over `fds`; returns the revents of each, in order. */
export function poll(fds: readonly { fd: number; events: number }[], timeoutMs: number): number[] {
  // struct pollfd { int fd; short events; short revents; }
  const buf = new Uint8Array(8 * fds.length);
  const dv = new DataView(buf.buffer);
  fds.forEach((f, i) => {
    dv.setInt32(i * 8, f.fd, true);
    dv.setInt16(i * 8 + 4, f.events, true);
  });
  check(libc().poll(buf, fds.length, timeoutMs) as number, 'poll');
  return fds.map((_, i) => dv.getUint16(i * 8 + 6, true));
}

/** Kernel thread id of the calling thread (a worker thread has its own). */
export function gettid(): number {
  return libc().gettid() as number;
}

export function getpid(): number {
  return libc().getpid() as number;
}

/** Sends `sig` to one thread of process `tgid`. */
export function tgkill(tgid: number, tid: number, sig: number): void {
  check(libc().tgkill(tgid, tid, sig) as number, `tgkill ${tid} signal ${sig}`);
}

/** Gives the CPU to another runnable thread, if any (polling loops call it so they never starve the thread they wait for). */
export function schedYield(): void {
  libc().schedYield();
}

/** First real-time signal number glibc leaves to applications. */
export function sigrtmin(): number {
  return libc().sigrtmin() as number;
}

/** A sigset_t (glibc size) holding `signals`. */
export function sigset(...signals: number[]): Uint8Array {
  const set = new Uint8Array(SIGSET_BYTES);
  for (const s of signals) {
    if (!Number.isInteger(s) || s < 1 || s > 64) throw new RangeError(`bad signal number ${s}`);
    set[(s - 1) >> 3]! |= 1 << ((s - 1) & 7);
  }
  return set;
}

export function sigismember(set: Uint8Array, sig: number): boolean {
  return ((set[(sig - 1) >> 3] ?? 0) & (1 << ((sig - 1) & 7))) !== 0;
}

/** Changes the calling thread's signal mask; returns the previous mask. */
export function pthreadSigmask(how: number, set: Uint8Array | null): Uint8Array {
  const old = new Uint8Array(SIGSET_BYTES);
  const r = libc().pthreadSigmask(how, set, old) as number;
  // pthread_sigmask returns the error number instead of setting errno.
  if (r !== 0) throw new NativeError('pthread_sigmask', r);
  return old;
}

const zeroTimeout = new Uint8Array(16);

/** Takes one pending signal of `set` without waiting; returns its number, or 0 when none is pending. */
export function sigpoll(set: Uint8Array): number {
  const r = libc().sigtimedwait(set, null, zeroTimeout) as number;
  if (r >= 0) return r;
  const e = k().errno();
  if (e === k().os.errno.EAGAIN || e === k().os.errno.EINTR) return 0;
  throw new NativeError('sigtimedwait', e);
}
