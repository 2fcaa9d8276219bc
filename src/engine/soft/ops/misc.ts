/**
 * Everything small: flag instructions (CLC STC CMC CLD STD CLI STI LAHF
 * SAHF), NOP/PAUSE/hints/fences/prefetches/CLFLUSH, UD0/UD1/UD2, CPUID,
 * RDTSC, SYSCALL (handed to the platform: process mode has no kernel),
 * and the FS/GS base instructions.
 */
import { getRflags, materialize, setCarryOverflow, setStatus } from '../flags.js';
import type { Cpu } from '../cpu.js';
import { cpuid } from '../cpuid.js';
import { CpuException, VEC_GP, VEC_UD } from '../mmu.js';
import type { Op } from '../op.js';
import { ea, readReg, writeReg } from '../operands.js';
import {
  FLAG_AF, FLAG_CF, FLAG_DF, FLAG_IF, FLAG_PF, FLAG_SF, FLAG_ZF, RAX, RBX, RCX, RDX,
} from '../state.js';
import type { HandlerMap } from './types.js';

const regs4 = new Int32Array(4);

function sys_cpuid(c: Cpu): void {
  cpuid(readReg(c, RAX, 4), readReg(c, RCX, 4), regs4);
  writeReg(c, RAX, 4, regs4[0] as number, 0);
  writeReg(c, RBX, 4, regs4[1] as number, 0);
  writeReg(c, RCX, 4, regs4[2] as number, 0);
  writeReg(c, RDX, 4, regs4[3] as number, 0);
}

/** TSC: nanoseconds since the process started, i.e. a 1 GHz invariant TSC. */
const T0 = process.hrtime.bigint();
function sys_rdtsc(c: Cpu): void {
  const t = process.hrtime.bigint() - T0;
  writeReg(c, RAX, 4, Number(BigInt.asIntN(32, t)), 0);
  writeReg(c, RDX, 4, Number(BigInt.asIntN(32, t >> 32n)), 0);
}

function cliSti(c: Cpu, i: Op, set: boolean): void {
  // IOPL is 0 in process mode: CLI/STI at CPL 3 are #GP (SDM "CLI", protected-mode table).
  if (c.cpl > ((c.flagsBase >> 12) & 3)) throw new CpuException(VEC_GP, 0, c.rip, set ? 'sti at CPL 3' : 'cli at CPL 3');
  c.flagsBase = set ? c.flagsBase | FLAG_IF : c.flagsBase & ~FLAG_IF;
}

function flag_lahf(c: Cpu): void {
  writeReg(c, 16 /* AH */, 1, getRflags(c) & 0xff, 0);
}

function flag_sahf(c: Cpu): void {
  const ah = readReg(c, 16, 1);
  const m = FLAG_SF | FLAG_ZF | FLAG_AF | FLAG_PF | FLAG_CF;
  setStatus(c, m, ah);
}

function nop(): void {
  // no architectural effect
}

function misc_ud(c: Cpu, _i: Op): void {
  throw new CpuException(VEC_UD, 0, c.rip, 'ud');
}

function sys_syscall(c: Cpu): void {
  c.platform.syscall(c);
}

function fsgs(c: Cpu, i: Op, seg: number, write: boolean): void {
  const size = i.size0;
  if (write) {
    const lo = readReg(c, i.reg0, size);
    c.segBase[seg] = size === 8 ? c.hi * 4294967296 + (lo >>> 0) : lo >>> 0;
  } else {
    const b = c.segBase[seg] as number;
    writeReg(c, i.reg0, size, b, Math.floor(b / 4294967296));
  }
}

export const MISC: HandlerMap = {
  flag_clc: (c) => setCarryOverflow(c, FLAG_CF, 0),
  flag_stc: (c) => setCarryOverflow(c, FLAG_CF, FLAG_CF),
  flag_cmc: (c) => { materialize(c); c.flagsBase ^= FLAG_CF; },
  flag_cld: (c) => { c.flagsBase &= ~FLAG_DF; },
  flag_std: (c) => { c.flagsBase |= FLAG_DF; },
  flag_cli: (c, i) => cliSti(c, i, false),
  flag_sti: (c, i) => cliSti(c, i, true),
  flag_lahf,
  flag_sahf,
  misc_nop: nop,
  misc_pause: nop,
  misc_prefetch: nop,
  misc_fence: nop,
  // Caches are coherent here, but the line's address is checked like a read (#PF, #GP); MMIO is not touched.
  misc_clflush: (c, i) => c.probeRead(ea(c, i), 1),
  misc_ud,
  cet_rdssp: nop, // without shadow stacks RDSSP is a NOP that leaves its register (SDM Vol. 1, 18.3.4)
  sys_cpuid,
  sys_rdtsc,
  sys_syscall,
  sys_rdfsbase: (c, i) => fsgs(c, i, 4, false),
  sys_rdgsbase: (c, i) => fsgs(c, i, 5, false),
  sys_wrfsbase: (c, i) => fsgs(c, i, 4, true),
  sys_wrgsbase: (c, i) => fsgs(c, i, 5, true),
};
