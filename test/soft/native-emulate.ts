/**
 * The emulated side of the differential test: runs the harness executable
 * (native/driver.s + templates) on the soft CPU inside this node process,
 * with the four system calls the driver makes and the fault path of its
 * signal handler. Process mode is not used because it does not run signal
 * handlers (src/process/README.md), and the driver needs one for #DE.
 */
import * as fs from 'node:fs';
import { Cpu, EXIT_EXCEPTION, EXIT_LIMIT } from '../../src/engine/soft/cpu.js';
import { decode, Instruction, MODE_64, STATUS_OK } from '../../src/engine/soft/decode/index.js';
import {
  CpuException, PAGE_SIZE, pageFault, type PageFrame, type SoftPlatform, VEC_AC, VEC_BP, VEC_DE, VEC_GP, VEC_PF, VEC_UD,
} from '../../src/engine/soft/mmu.js';
import { FLAG_IF, FLAG_RESERVED1, RAX, RDI, RDX, RSI, RSP } from '../../src/engine/soft/state.js';

/** ELF64 constants (System V gABI, "ELF Header", "Program Header", "Section Header"). */
const PT_LOAD = 1;
const SHT_SYMTAB = 2;

/** Signal numbers and si_code values Linux reports for each exception on x86-64 (arch/x86/kernel/traps.c). */
const SIGILL = 4, SIGTRAP = 5, SIGBUS = 7, SIGFPE = 8, SIGSEGV = 11;
const FPE_INTDIV = 1, ILL_ILLOPN = 2, BUS_ADRALN = 1, SEGV_MAPERR = 1, SEGV_ACCERR = 2, SI_KERNEL = 0x80;

/** The driver's fault record for an exception: signal | si_code << 8, as the native handler stores it. */
export function faultStatus(e: CpuException): number {
  switch (e.vector) {
    case VEC_DE: return SIGFPE | (FPE_INTDIV << 8);
    case VEC_UD: return SIGILL | (ILL_ILLOPN << 8);
    case VEC_GP: return SIGSEGV | (SI_KERNEL << 8);
    case VEC_PF: return SIGSEGV | (((e.errorCode & 1) !== 0 ? SEGV_ACCERR : SEGV_MAPERR) << 8);
    case VEC_AC: return SIGBUS | (BUS_ADRALN << 8);
    case VEC_BP: return SIGTRAP | (SI_KERNEL << 8);
    default: return 0xff | (e.vector << 8);
  }
}

/** Pages in each half of the 48-bit canonical address space. */
const CANONICAL_PAGES = 2 ** 47 / PAGE_SIZE;

/** Loaded image: its pages and the driver's symbols. */
class Image implements SoftPlatform {
  readonly pages = new Map<number, PageFrame>();
  readonly symbols = new Map<string, number>();
  entry = 0;
  input: Buffer = Buffer.alloc(0);
  inputPos = 0;
  readonly output: Buffer[] = [];
  exitStatus: number | undefined;

  page(vpn: number): PageFrame {
    let f = this.pages.get(vpn);
    if (!f) {
      const b = new ArrayBuffer(PAGE_SIZE);
      f = { bytes: new Uint8Array(b), view: new DataView(b) };
      this.pages.set(vpn, f);
    }
    return f;
  }

  translate(vpn: number, access: number): PageFrame {
    // A non-canonical address raises #GP, not #PF (SDM Vol. 3A, 3.3.7.1).
    if (vpn < -CANONICAL_PAGES || vpn >= CANONICAL_PAGES) throw new CpuException(VEC_GP, 0, vpn * PAGE_SIZE, 'non-canonical address');
    const f = this.pages.get(vpn);
    if (!f) throw pageFault(vpn * PAGE_SIZE, access, false);
    return f;
  }

  copyIn(addr: number, src: Uint8Array): void {
    for (let k = 0; k < src.length;) {
      const a = addr + k, off = a % PAGE_SIZE, n = Math.min(PAGE_SIZE - off, src.length - k);
      this.translate(Math.floor(a / PAGE_SIZE), 2).bytes.set(src.subarray(k, k + n), off);
      k += n;
    }
  }

  copyOut(addr: number, len: number): Buffer {
    const out = Buffer.alloc(len);
    for (let k = 0; k < len;) {
      const a = addr + k, off = a % PAGE_SIZE, n = Math.min(PAGE_SIZE - off, len - k);
      out.set(this.translate(Math.floor(a / PAGE_SIZE), 1).bytes.subarray(off, off + n), k);
      k += n;
    }
    return out;
  }

  /** read(0), write(1), rt_sigaction (handlers are emulated in runHarness), exit_group. */
  syscall(cpu: unknown): void {
    const c = cpu as Cpu;
    const nr = Number(c.reg64(RAX));
    const a0 = Number(c.reg64(RDI)), a1 = Number(c.reg64(RSI)), a2 = Number(c.reg64(RDX));
    let ret = 0;
    switch (nr) {
      case 0: {
        if (a0 !== 0) throw new Error(`harness read from fd ${a0}`);
        const n = Math.min(a2, this.input.length - this.inputPos);
        this.copyIn(a1, this.input.subarray(this.inputPos, this.inputPos + n));
        this.inputPos += n;
        ret = n;
        break;
      }
      case 1:
        if (a0 !== 1) throw new Error(`harness write to fd ${a0}`);
        this.output.push(this.copyOut(a1, a2));
        ret = a2;
        break;
      case 13: break;
      case 231: case 60:
        this.exitStatus = a0;
        c.requestStop();
        break;
      default: throw new Error(`harness made system call ${nr}`);
    }
    c.setReg64(RAX, BigInt(ret));
  }
}

function load(exe: string): Image {
  const f = fs.readFileSync(exe);
  if (f.readUInt32BE(0) !== 0x7f454c46 || f[4] !== 2 || f[5] !== 1) throw new Error(`${exe}: not a little-endian ELF64 file`);
  const img = new Image();
  img.entry = Number(f.readBigUInt64LE(24));
  const phoff = Number(f.readBigUInt64LE(32)), phentsize = f.readUInt16LE(54), phnum = f.readUInt16LE(56);
  for (let k = 0; k < phnum; k++) {
    const p = phoff + k * phentsize;
    if (f.readUInt32LE(p) !== PT_LOAD) continue;
    const off = Number(f.readBigUInt64LE(p + 8)), vaddr = Number(f.readBigUInt64LE(p + 16));
    const filesz = Number(f.readBigUInt64LE(p + 32)), memsz = Number(f.readBigUInt64LE(p + 40));
    for (let vpn = Math.floor(vaddr / PAGE_SIZE); vpn * PAGE_SIZE < vaddr + memsz; vpn++) img.page(vpn);
    img.copyIn(vaddr, f.subarray(off, off + filesz));
  }
  const shoff = Number(f.readBigUInt64LE(40)), shentsize = f.readUInt16LE(58), shnum = f.readUInt16LE(60);
  for (let k = 0; k < shnum; k++) {
    const s = shoff + k * shentsize;
    if (f.readUInt32LE(s + 4) !== SHT_SYMTAB) continue;
    const symOff = Number(f.readBigUInt64LE(s + 24)), symSize = Number(f.readBigUInt64LE(s + 32));
    const strSec = shoff + f.readUInt32LE(s + 40) * shentsize;
    const strOff = Number(f.readBigUInt64LE(strSec + 24));
    for (let e = symOff; e < symOff + symSize; e += 24) {
      const nameAt = strOff + f.readUInt32LE(e);
      const name = f.toString('latin1', nameAt, f.indexOf(0, nameAt));
      if (name) img.symbols.set(name, Number(f.readBigUInt64LE(e + 8)));
    }
  }
  return img;
}

export interface EmulatedRun {
  out: Buffer;
  instructions: number;
  /** Forms the CPU reported as unimplemented. */
  log: string[];
}

/** Stack of the emulated driver (the native one's address differs; templates never compare RSP). */
const STACK_TOP = 0x7ff00000;
const STACK_PAGES = 16;

/**
 * Runs the harness `exe` with `input` as its stdin on a fresh soft CPU and
 * returns its stdout. A fault is handled as the driver's signal handler does
 * natively: the fault is recorded and the case ends at `case_fault` with the
 * registers as they were at the faulting instruction.
 */
export function runEmulatedHarness(exe: string, input: Buffer, maxInstructions: number): EmulatedRun {
  const img = load(exe);
  img.input = input;
  for (let k = 1; k <= STACK_PAGES; k++) img.page(STACK_TOP / PAGE_SIZE - k);
  const sym = (n: string): number => {
    const v = img.symbols.get(n);
    if (v === undefined) throw new Error(`harness executable lacks symbol ${n}`);
    return v;
  };
  const caseFault = sym('case_fault'), faultStatusAt = sym('fault_status'), faultRipAt = sym('fault_rip');
  const log: string[] = [];
  const cpu = new Cpu(img);
  cpu.log = (m) => log.push(m);
  cpu.rip = img.entry;
  // User mode runs with interrupts enabled, as Linux starts a process (process/kernel.ts does the same).
  cpu.flagsBase = FLAG_RESERVED1 | FLAG_IF;
  cpu.setReg64(RSP, BigInt(STACK_TOP - 64));
  const rec = Buffer.alloc(8);
  while (img.exitStatus === undefined) {
    if (cpu.icount > maxInstructions) throw new Error(`emulated harness ran over ${maxInstructions} instructions (a template loops?) at 0x${cpu.rip.toString(16)}`);
    const r = cpu.run(1_000_000);
    if (r === EXIT_EXCEPTION) {
      const e = cpu.exception as CpuException;
      rec.writeUInt32LE(faultStatus(e), 0);
      img.copyIn(faultStatusAt, rec.subarray(0, 4));
      rec.writeBigUInt64LE(BigInt.asUintN(64, BigInt(cpu.rip)), 0);
      img.copyIn(faultRipAt, rec);
      cpu.rip = caseFault;
    } else if (r !== EXIT_LIMIT && img.exitStatus === undefined) {
      throw new Error(`emulated harness stopped (${r}) at 0x${cpu.rip.toString(16)}`);
    }
  }
  if (img.exitStatus !== 0) throw new Error(`emulated harness exited with status ${img.exitStatus}`);
  return { out: Buffer.concat(img.output), instructions: cpu.icount, log };
}

/**
 * The decoder forms (FORMS ids) of every instruction in the templates' code
 * of harness `exe`: a linear sweep from the first template to the end of
 * its executable segment (templates are straight-line code).
 */
export function templateForms(exe: string): Set<number> {
  const img = load(exe);
  const start = img.symbols.get('t_0');
  const forms = new Set<number>();
  if (start === undefined) return forms;
  const end = img.symbols.get('templates_end') ?? start;
  const bytes = img.copyOut(start, end - start);
  const op = new Instruction();
  for (let off = 0; off < bytes.length;) {
    const st = decode(op, bytes, off, bytes.length, MODE_64);
    if (st !== STATUS_OK || op.length === 0) { off++; continue; }
    forms.add(op.form);
    off += op.length;
  }
  return forms;
}
