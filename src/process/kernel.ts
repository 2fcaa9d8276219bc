/**
 * Process mode: runs static x86-64 Linux executables on the soft CPU with a
 * Linux system-call layer in TypeScript (syscalls.ts), like qemu-user.
 *
 * fork/vfork/clone create another emulated process in the same node
 * process: its own CPU and a copy of the address space (or the same one for
 * CLONE_VM). execve replaces the image of the calling process. Processes
 * run in turn, in slices; a system call that must wait (read from an empty
 * pipe, wait4 for a running child) rewinds to the SYSCALL instruction and
 * yields, and is retried on the process's next turn.
 */
import { randomFillSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Cpu, EXIT_EXCEPTION } from '../engine/soft/cpu.js';
import { LEAF1_EDX } from '../engine/soft/cpuid.js';
import { type CpuException, type PageFrame, type SoftPlatform, VEC_BP, VEC_DB, VEC_DE, VEC_UD, VEC_XM, VEC_MF, hex } from '../engine/soft/mmu.js';
import { FCW_DEFAULT, LF_NONE, FLAG_RESERVED1, FLAG_IF, MXCSR_DEFAULT, RSP } from '../engine/soft/state.js';
import { AddressSpace } from './address-space.js';
import { buildStack, ElfError, loadElf, loadSpan } from './elf.js';
import { hostStdio, type OpenFile } from './files.js';
import { dispatchSyscall } from './syscalls.js';

/** Signals (arch/x86/include/uapi/asm/signal.h). */
export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGILL = 4;
export const SIGTRAP = 5;
export const SIGABRT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGSEGV = 11;
export const SIGPIPE = 13;
export const SIGTERM = 15;
export const SIGCHLD = 17;

export const SIG_DFL = 0;
export const SIG_IGN = 1;

/** Signals whose default action is to be ignored (signal(7)). */
const DEFAULT_IGNORED = new Set([SIGCHLD, 23 /* SIGURG */, 28 /* SIGWINCH */]);

/** Top of the mmap area (Linux's mmap_base without randomisation: below the stack and its gap). */
const MMAP_TOP = 0x7ffff7fff000;

/** Instructions a process runs before the next one gets a turn. */
const SLICE = 200_000;

export interface FdEntry {
  file: OpenFile;
  cloexec: boolean;
}

export type ProcState = 'running' | 'blocked' | 'zombie';

/** The platform a process's CPU sees: its current address space, its kernel. */
class ProcPlatform implements SoftPlatform {
  constructor(private readonly proc: Process) {}
  translate(vpn: number, access: number): PageFrame {
    return this.proc.as.translate(vpn, access);
  }
  syscall(): void {
    this.proc.kernel.syscall(this.proc);
  }
}

export class Process {
  readonly cpu: Cpu;
  state: ProcState = 'running';
  /** wait4 status word once a zombie (exit code << 8, or the signal number). */
  waitStatus = 0;
  fds: (FdEntry | undefined)[] = [];
  cwd: string;
  exe = '';
  brkStart = 0;
  brkEnd = 0;
  mmapTop = MMAP_TOP;
  umask = 0o022;
  pgid: number;
  sigactions = new Map<number, Uint8Array>();
  sigmask = 0n;
  /** CLONE_VFORK: the parent waits until this child execs or exits. */
  vforkParent: Process | undefined;
  vforkWaiting = false;
  children = new Set<Process>();
  clearTid = 0;

  constructor(readonly kernel: Kernel, readonly pid: number, public ppid: number, public as: AddressSpace, cwd: string) {
    this.cpu = new Cpu(new ProcPlatform(this));
    this.cwd = cwd;
    this.pgid = pid;
    this.attach(as);
  }

  /** Switches to `as`, wiring its invalidations to this CPU's TLB and code cache. */
  attach(as: AddressSpace): void {
    this.as = as;
    const cpu = this.cpu;
    as.onInvalidate((vpn, count) => {
      if (this.as !== as) return;
      if (count > 4096) cpu.flushAll();
      else for (let k = 0; k < count; k++) cpu.invalidatePage(vpn + k);
    });
    cpu.flushAll();
  }

  fd(n: number): FdEntry | undefined {
    return n >= 0 ? this.fds[n] : undefined;
  }

  allocFd(file: OpenFile, cloexec: boolean, min = 0): number {
    let n = min;
    while (this.fds[n] !== undefined) n++;
    this.fds[n] = { file, cloexec };
    return n;
  }

  closeFd(n: number): boolean {
    const e = this.fds[n];
    if (!e) return false;
    this.fds[n] = undefined;
    e.file.close();
    return true;
  }

  sigHandler(sig: number): number {
    const a = this.sigactions.get(sig);
    if (!a) return SIG_DFL;
    return new DataView(a.buffer, a.byteOffset).getUint32(0, true) + new DataView(a.buffer, a.byteOffset).getUint32(4, true) * 4294967296;
  }
}

export interface KernelOptions {
  /** Host descriptors the first process gets as 0, 1, 2. */
  stdio?: [number, number, number];
  cwd?: string;
  /** Called once per unimplemented system call number and instruction form. */
  log?: (message: string) => void;
}

export class ExecError extends Error {
  override name = 'ExecError';
}

export class Kernel {
  readonly procs = new Map<number, Process>();
  private nextPid = 1000;
  readonly log: (message: string) => void;
  readonly loggedSyscalls = new Set<number>();
  private readonly stdio: [number, number, number];
  private readonly cwd: string;
  /** Total instructions retired by every process. */
  instructions = 0;

  constructor(opts: KernelOptions = {}) {
    this.stdio = opts.stdio ?? [0, 1, 2];
    this.cwd = opts.cwd ?? process.cwd();
    this.log = opts.log ?? ((m) => process.stderr.write(`typevisor: ${m}\n`));
  }

  /** Creates the first process running `file` (host path) with argv/envp. */
  spawn(file: string, argv: string[], envp: string[]): Process {
    const p = new Process(this, this.nextPid++, process.pid, new AddressSpace(), this.cwd);
    p.cpu.log = this.log;
    p.fds = this.stdio.map((fd) => ({ file: hostStdio(fd), cloexec: false }));
    this.procs.set(p.pid, p);
    const e = this.execInto(p, file, argv, envp);
    if (e !== 0) throw new ExecError(`cannot execute ${file}: ${e === -8 ? 'not a static x86-64 executable' : `errno ${-e}`}`);
    return p;
  }

  /**
   * Loads `file` into a fresh address space for `p` (execve). Returns 0, or
   * -errno with `p` unchanged.
   */
  execInto(p: Process, file: string, argv: string[], envp: string[]): number {
    const resolved = file === '/proc/self/exe' ? p.exe : path.resolve(p.cwd, file);
    let bytes: Uint8Array;
    try {
      const st = fs.statSync(resolved);
      if (st.isDirectory()) return -13; // EACCES
      bytes = fs.readFileSync(resolved);
    } catch (e) {
      const code = (e as { code?: string }).code;
      return code === 'ENOENT' ? -2 : code === 'EACCES' ? -13 : code === 'ENOTDIR' ? -20 : -5;
    }
    const as = new AddressSpace();
    let sp: number;
    let img;
    let entry: number;
    try {
      img = loadElf(bytes, as);
      const random = new Uint8Array(16);
      randomFillSync(random);
      entry = img.entry;
      let base = 0;
      if (img.interp !== undefined) {
        // The dynamic loader goes where Linux's mmap would put it: top-down below the mmap base.
        const ld = fs.readFileSync(img.interp);
        const at = as.findFree(loadSpan(ld), MMAP_TOP);
        if (at === undefined) throw new ElfError('no room for the interpreter');
        const li = loadElf(ld, as, at);
        if (li.interp !== undefined) throw new ElfError('the interpreter names an interpreter');
        base = at;
        entry = li.entry;
      }
      sp = buildStack(as, img, { argv, envp, execfn: file, hwcap: LEAF1_EDX, random, base, programEntry: img.entry });
    } catch (e) {
      if ((e as { code?: string }).code === 'ENOENT') return -2;
      if (e instanceof ElfError) {
        if (p.exe !== '') this.log(`execve ${file}: ${e.message}`);
        return -8; // ENOEXEC
      }
      throw e;
    }
    p.exe = resolved;
    p.attach(as);
    resetCpu(p.cpu);
    p.cpu.rip = entry;
    p.cpu.nextRip = entry;
    p.cpu.gpr[2 * RSP] = sp;
    p.cpu.gpr[2 * RSP + 1] = Math.floor(sp / 4294967296);
    p.brkStart = p.brkEnd = Math.ceil(img.brk / 4096) * 4096;
    p.mmapTop = MMAP_TOP;
    for (let n = 0; n < p.fds.length; n++) if (p.fds[n]?.cloexec) p.closeFd(n);
    // Handled signals revert to the default action; ignored ones stay ignored (execve(2)).
    for (const sig of [...p.sigactions.keys()]) if (p.sigHandler(sig) !== SIG_IGN) p.sigactions.delete(sig);
    this.releaseVfork(p);
    return 0;
  }

  /** fork/vfork/clone: a new process with a copy of (or, with shareVm, the same) address space. */
  fork(parent: Process, shareVm: boolean): Process {
    const child = new Process(this, this.nextPid++, parent.pid, shareVm ? parent.as : parent.as.clone(), parent.cwd);
    child.cpu.log = this.log;
    child.cpu.restore(parent.cpu.snapshot());
    child.cpu.rip = parent.cpu.nextRip;
    child.exe = parent.exe;
    child.brkStart = parent.brkStart;
    child.brkEnd = parent.brkEnd;
    child.mmapTop = parent.mmapTop;
    child.umask = parent.umask;
    child.pgid = parent.pgid;
    child.sigmask = parent.sigmask;
    for (const [k, v] of parent.sigactions) child.sigactions.set(k, v.slice());
    child.fds = parent.fds.map((e) => {
      if (!e) return undefined;
      e.file.refs++;
      return { file: e.file, cloexec: e.cloexec };
    });
    parent.children.add(child);
    this.procs.set(child.pid, child);
    return child;
  }

  private releaseVfork(p: Process): void {
    if (p.vforkParent) {
      p.vforkParent.vforkWaiting = false;
      p.vforkParent = undefined;
    }
  }

  /** Ends `p` with a wait status; closes its descriptors; wakes its vfork parent. */
  terminate(p: Process, status: number): void {
    if (p.state === 'zombie') return;
    p.state = 'zombie';
    p.waitStatus = status;
    for (let n = 0; n < p.fds.length; n++) p.closeFd(n);
    this.releaseVfork(p);
    for (const c of p.children) c.ppid = 1;
    const parent = this.procs.get(p.ppid);
    if (!parent || parent.state === 'zombie') this.procs.delete(p.pid);
    p.cpu.requestStop();
  }

  /** Delivers `sig` with its default or ignored disposition (handlers are not run: README.md). */
  signal(p: Process, sig: number): void {
    if (sig === 0 || p.state === 'zombie') return;
    const h = p.sigHandler(sig);
    if (sig !== SIGKILL && (h === SIG_IGN || (h === SIG_DFL && DEFAULT_IGNORED.has(sig)))) return;
    if (h > SIG_IGN && sig !== SIGKILL) return; // a handler is installed: not delivered (README.md)
    this.terminate(p, sig);
  }

  syscall(p: Process): void {
    dispatchSyscall(this, p);
  }

  private faultSignal(e: CpuException): number {
    switch (e.vector) {
      case VEC_DE: return SIGFPE;
      case VEC_UD: return SIGILL;
      case VEC_BP: case VEC_DB: return SIGTRAP;
      case VEC_MF: case VEC_XM: return SIGFPE;
      default: return SIGSEGV;
    }
  }

  /**
   * Runs until the first process exits; returns its wait status. Yields to
   * node's event loop between rounds so signals and timers stay live.
   */
  async run(first: Process): Promise<number> {
    let lastYield = Date.now();
    while (first.state !== 'zombie') {
      let progressed = false;
      for (const p of [...this.procs.values()]) {
        if (p.state === 'zombie') continue;
        if (p.vforkWaiting) continue;
        p.state = 'running';
        const before = p.cpu.icount;
        const r = p.cpu.run(SLICE);
        this.instructions += p.cpu.icount - before;
        if (r === EXIT_EXCEPTION && p.cpu.exception) {
          const e = p.cpu.exception;
          const sig = this.faultSignal(e);
          if (p === first) this.log(`${path.basename(p.exe)}[${p.pid}]: ${e.message} (rip 0x${hex(p.cpu.rip)}): killed by signal ${sig}`);
          this.terminate(p, sig);
          progressed = true;
          continue;
        }
        if ((p.state as ProcState) !== 'blocked' || p.cpu.icount - before > 1) progressed = true;
      }
      if (!progressed) {
        const blocked = [...this.procs.values()].filter((p) => p.state === 'blocked');
        if (blocked.length > 0 && blocked.every((p) => p.state === 'blocked')) {
          this.log(`deadlock: every process waits (${blocked.map((p) => p.pid).join(', ')})`);
          for (const p of blocked) this.terminate(p, SIGKILL);
        }
      }
      if (Date.now() - lastYield > 50) {
        await new Promise((r) => setImmediate(r));
        lastYield = Date.now();
      }
    }
    return first.waitStatus;
  }
}

function resetCpu(c: Cpu): void {
  c.gpr.fill(0);
  c.flagsBase = FLAG_RESERVED1 | FLAG_IF;
  c.lfOp = LF_NONE;
  c.segBase.fill(0);
  c.segSel.fill(0);
  c.xmm.fill(0);
  c.mmx.fill(0);
  c.fpr.fill(0);
  c.fpTop = 0;
  c.fpTag = 0xff;
  c.fcw = FCW_DEFAULT;
  c.fsw = 0;
  c.mxcsr = MXCSR_DEFAULT;
}

/** Shell-style exit status of a wait status: the code, or 128 + signal. */
export function exitCodeOf(status: number): number {
  return (status & 0x7f) === 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
}
