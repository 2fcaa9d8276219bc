/**
 * System instructions in machine mode (SDM Vol. 2, Vol. 3A): control and
 * debug registers, descriptor tables, segment loads, far transfers, IRET,
 * SYSCALL/SYSRET, SWAPGS, MSRs, port I/O, HLT, CLI/STI/POPF with the
 * interrupt window, INT n through the IDT.
 *
 * A CPU without a machine (process mode) keeps the part-1 handlers: where
 * this file overrides one, it hands the call back when `cpu.sys` is unset.
 */
import { OP_FAR, OP_GPR, OP_IMM, PFX_REP, PFX_REPNE, MODE_64 } from '../decode/index.js';
import type { Cpu } from '../cpu.js';
import { cpuid, EFER_AIBRSE } from '../cpuid.js';
import { getRflags } from '../flags.js';
import { CpuException, hex, PAGE_SIZE, VEC_BP, VEC_DB, VEC_GP, VEC_OF, VEC_UD } from '../mmu.js';
import { opKind, type Op } from '../op.js';
import { ea, popN, pushN, rd, readMem, readReg, regAddr, setRegAddr, T32, writeMem, writeReg, wr } from '../operands.js';
import {
  CR0_PE, CR0_PG, CR4_PAE, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE, FLAG_DF, FLAG_IF, FLAG_RESERVED1, FLAG_RF, LF_NONE,
  R11, RAX, RCX, RDI, RDX, RSI, RSP, SEG_CS, SEG_ES, SEG_FS, SEG_GS, SEG_SS,
} from '../state.js';
import {
  ATTR_FLAT_CODE32, ATTR_FLAT_CODE64, ATTR_FLAT_DATA, ATTR_P, loadCodeSegment, loadDataSegment, readDescriptor, setCpl, setSegBase,
  setSegment, SoftwareInterrupt, SYS_LDT, SYS_TSS_AVAILABLE, SYS_TSS_BUSY, sysOf, updateMode, VEC_NP,
} from '../system.js';
import { MISC } from './misc.js';
import { MOV } from './mov.js';
import { STACK } from './stack.js';
import { BRANCH } from './branch.js';
import type { HandlerMap } from './types.js';

/** MSR numbers (SDM Vol. 4; AMD APM Vol. 2, Appendix A). */
export const MSR_EFER = 0xc0000080;
export const MSR_STAR = 0xc0000081;
export const MSR_LSTAR = 0xc0000082;
export const MSR_CSTAR = 0xc0000083;
export const MSR_SFMASK = 0xc0000084;
export const MSR_FS_BASE = 0xc0000100;
export const MSR_GS_BASE = 0xc0000101;
export const MSR_KERNEL_GS_BASE = 0xc0000102;
export const MSR_TSC_AUX = 0xc0000103;
export const MSR_PAT = 0x277;
export const MSR_MTRR_CAP = 0xfe;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_MISC_ENABLE = 0x1a0;
/** AMD hardware configuration (APM Vol. 2, "MSRs"): bit 24 TscFreqSel = the TSC counts at the P0 frequency, as ours does. */
export const MSR_AMD_HWCR = 0xc0010015;
const HWCR_TSC_FREQ_SEL = 1n << 24n;
/** AMD northbridge configuration, which family 17h kernels touch: stored, no effect. */
export const MSR_AMD_NB_CFG = 0xc001001f;
export const MSR_SPEC_CTRL = 0x48;
export const MSR_PLATFORM_ID = 0x17;
export const MSR_BIOS_SIGN_ID = 0x8b;
export const MSR_MCG_CAP = 0x179;
export const MSR_MCG_STATUS = 0x17a;
/** PAT at reset (SDM Vol. 3A, 11.12.4): WB, WT, UC-, UC repeated. */
export const PAT_RESET = 0x0007040600070406n;

/** CR0 bits beyond state.ts's. */
const CR0_TS = 1 << 3;
const CR0_WP = 1 << 16;
/** CR4 bits whose change invalidates translations (SDM Vol. 3A, 4.10.4.1): PSE, PAE, PGE, PCIDE, SMEP, SMAP. */
const CR4_TLB_BITS = (1 << 4) | CR4_PAE | (1 << 7) | (1 << 17) | (1 << 20) | (1 << 21);
/** CR4 bits this CPU accepts: VME..PCE, OSFXSR, OSXMMEXCPT, FSGSBASE (SMEP/SMAP/PKE/OSXSAVE/LA57 are not offered). */
const CR4_SUPPORTED = 0x7ff | (1 << 16);
/** EFER bits this CPU accepts. */
const EFER_WRITABLE = EFER_SCE | EFER_LME | EFER_NXE | EFER_AIBRSE;
/** Bits SYSRET restores from R11 (SDM Vol. 2B, SYSRET): RF and VM cleared, bit 1 set. */
const SYSRET_FLAGS = 0x3c7fd7;

const MTRR_VARIABLE_PAIRS = 8;

function gp(c: Cpu, i: Op, why: string, code = 0): never {
  throw new CpuException(VEC_GP, code, c.rip, `#GP: ${why}`);
}

function iopl(c: Cpu): number {
  return (c.flagsBase >> 12) & 3;
}

/** Value of a 64-bit pair as a bigint (MSR traffic: rare). */
function pair(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

function signedAddress(v: bigint): number {
  return Number(BigInt.asIntN(64, v));
}

function canonical(a: number): boolean {
  return a >= -(2 ** 47) && a < 2 ** 47;
}

// ---- Control and debug registers ----

function readCr(c: Cpu, i: Op, n: number): number {
  switch (n) {
    // CR0/CR4 live as int32 bit sets (CR0.PG is bit 31); the register value is unsigned.
    case 0: return c.cr0 >>> 0;
    case 2: return c.cr2;
    case 3: return c.cr3;
    case 4: return c.cr4 >>> 0;
    case 8: return sysOf(c).hooks.readCr8();
    default: throw new CpuException(VEC_UD, 0, c.rip, `#UD: CR${n}`);
  }
}

function sys_mov_from_cr(c: Cpu, i: Op): void {
  const v = readCr(c, i, i.reg1);
  const size = c.mode === MODE_64 ? 8 : 4;
  writeReg(c, i.reg0, size, v % T32 | 0, Math.floor(v / T32));
}

export function writeCr0(c: Cpu, i: Op | undefined, v: number): void {
  const at = c.rip;
  v = v >>> 0;
  if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) throw new CpuException(VEC_GP, 0, at, '#GP: CR0.PG without PE');
  const old = c.cr0;
  if ((v & CR0_PG) !== 0 && (old & CR0_PG) === 0 && (c.efer & EFER_LME) !== 0) {
    // Activating paging with LME set enters IA-32e mode, which requires PAE (SDM Vol. 3A, 9.8.5).
    if ((c.cr4 & CR4_PAE) === 0) throw new CpuException(VEC_GP, 0, at, '#GP: long mode without CR4.PAE');
    c.efer |= EFER_LMA;
  }
  if ((v & CR0_PG) === 0) c.efer &= ~EFER_LMA;
  c.cr0 = v | 0x10; // ET is fixed at 1
  if (((old ^ c.cr0) & (CR0_PG | CR0_WP | CR0_PE)) !== 0) c.flushTlb();
  updateMode(c);
}

function writeCr(c: Cpu, i: Op, n: number, lo: number, hi: number): void {
  const v = hi * T32 + (lo >>> 0);
  switch (n) {
    case 0: if (hi !== 0) gp(c, i, 'reserved CR0 bits'); writeCr0(c, i, lo); return;
    case 2: c.cr2 = hi >= 0x80000000 ? v - 2 ** 64 : v; return;
    case 3:
      c.cr3 = (hi & 0xfffff) * T32 + ((lo & ~0xfff) >>> 0);
      c.flushNonGlobal();
      return;
    case 4: {
      if (hi !== 0 || (lo & ~CR4_SUPPORTED) !== 0) gp(c, i, `CR4 bits 0x${(lo & ~CR4_SUPPORTED).toString(16)} not supported`);
      if ((c.efer & EFER_LMA) !== 0 && (lo & CR4_PAE) === 0) gp(c, i, 'clearing CR4.PAE in long mode');
      const old = c.cr4;
      c.cr4 = lo;
      if (((old ^ lo) & CR4_TLB_BITS) !== 0) c.flushTlb();
      return;
    }
    case 8:
      if (hi !== 0 || (lo & ~15) !== 0) gp(c, i, 'reserved CR8 bits');
      sysOf(c).hooks.writeCr8(lo);
      return;
    default: throw new CpuException(VEC_UD, 0, c.rip, `#UD: CR${n}`);
  }
}

function sys_mov_to_cr(c: Cpu, i: Op): void {
  const size = c.mode === MODE_64 ? 8 : 4;
  const lo = readReg(c, i.reg1, size);
  writeCr(c, i, i.reg0, lo, size === 8 ? c.hi : 0);
}

const debugRegs = new WeakMap<Cpu, Float64Array>();
function drs(c: Cpu): Float64Array {
  let d = debugRegs.get(c);
  if (d === undefined) {
    d = new Float64Array(8);
    d[6] = 0xffff0ff0; // DR6 and DR7 at reset (SDM Vol. 3A, 18.2)
    d[7] = 0x400;
    debugRegs.set(c, d);
  }
  return d;
}

function sys_mov_from_dr(c: Cpu, i: Op): void {
  const v = drs(c)[(i.reg1) & 7] as number;
  writeReg(c, i.reg0, c.mode === MODE_64 ? 8 : 4, v % T32 | 0, Math.floor(v / T32));
}

function sys_mov_to_dr(c: Cpu, i: Op): void {
  const size = c.mode === MODE_64 ? 8 : 4;
  const lo = readReg(c, i.reg1, size);
  // Breakpoints are stored, not armed: DR7 enables are not honoured (README.md).
  drs(c)[(i.reg0) & 7] = (size === 8 ? c.hi : 0) * T32 + (lo >>> 0);
}

function sys_smsw(c: Cpu, i: Op): void {
  const size = i.kind0 === OP_GPR ? (i.size0) : 2;
  wr(c, i, 0, size, c.cr0, 0);
}

function sys_lmsw(c: Cpu, i: Op): void {
  // LMSW changes PE, MP, EM, TS only and cannot clear PE (SDM Vol. 2A, LMSW).
  const v = rd(c, i, 0, 2);
  writeCr0(c, i, (c.cr0 & ~0xe) | (v & 0xf) | (c.cr0 & CR0_PE));
}

// ---- Descriptor tables ----

function sys_lgdt_lidt(c: Cpu, i: Op, idt: boolean): void {
  const s = sysOf(c);
  const a = ea(c, i);
  const limit = c.read16(a);
  let base: number;
  if (c.mode === MODE_64) {
    const lo = c.read64(a + 2);
    base = c.hi * T32 + (lo >>> 0);
    if (!canonical(base)) gp(c, i, `non-canonical ${idt ? 'IDT' : 'GDT'} base 0x${hex(base)}`);
  } else {
    base = c.read32(a + 2) >>> 0;
    if (i.osize === 2) base &= 0xffffff;
  }
  if (idt) { s.idtBase = base; s.idtLimit = limit; } else { s.gdtBase = base; s.gdtLimit = limit; }
}

function sys_sgdt_sidt(c: Cpu, i: Op, idt: boolean): void {
  const s = sysOf(c);
  const a = ea(c, i);
  const base = idt ? s.idtBase : s.gdtBase;
  c.probeWrite(a, c.mode === MODE_64 ? 10 : 6);
  c.write16(a, idt ? s.idtLimit : s.gdtLimit);
  if (c.mode === MODE_64) c.write64(a + 2, base % T32 | 0, Math.floor(base / T32));
  else c.write32(a + 2, base | 0);
}

function sys_lldt(c: Cpu, i: Op): void {
  const s = sysOf(c);
  const sel = rd(c, i, 0, 2);
  if ((sel & 0xfffc) === 0) { s.ldtSel = sel; s.ldtBase = 0; s.ldtLimit = 0; return; }
  if ((sel & 4) !== 0) gp(c, i, 'LDT selector in the LDT', sel & 0xfffc);
  const d = readDescriptor(c, sel, c.mode === MODE_64 ? 16 : 8);
  if ((d.attr & 0x1f) !== SYS_LDT) gp(c, i, `selector 0x${sel.toString(16)} is not an LDT descriptor`, sel & 0xfffc);
  if ((d.attr & ATTR_P) === 0) throw new CpuException(VEC_NP, sel & 0xfffc, c.rip, `#NP: LDT 0x${sel.toString(16)} not present`);
  s.ldtSel = sel; s.ldtBase = d.base; s.ldtLimit = d.limit;
}

function sys_ltr(c: Cpu, i: Op): void {
  const s = sysOf(c);
  const sel = rd(c, i, 0, 2);
  if ((sel & 0xfffc) === 0 || (sel & 4) !== 0) gp(c, i, `TSS selector 0x${sel.toString(16)}`, sel & 0xfffc);
  const d = readDescriptor(c, sel, c.mode === MODE_64 ? 16 : 8);
  const type = d.attr & 0x1f;
  // The busy bit is checked but not written back: Linux maps its GDT read-only (README.md).
  if (type !== SYS_TSS_AVAILABLE && type !== SYS_TSS_BUSY) gp(c, i, `selector 0x${sel.toString(16)} is not an available TSS`, sel & 0xfffc);
  if ((d.attr & ATTR_P) === 0) throw new CpuException(VEC_NP, sel & 0xfffc, c.rip, `#NP: TSS 0x${sel.toString(16)} not present`);
  s.trSel = sel; s.trBase = d.base; s.trLimit = d.limit; s.trAttr = (d.attr & ~0xf) | SYS_TSS_BUSY;
}

function sys_sldt(c: Cpu, i: Op): void {
  wr(c, i, 0, i.kind0 === OP_GPR ? (i.size0) : 2, sysOf(c).ldtSel, 0);
}

function sys_str(c: Cpu, i: Op): void {
  wr(c, i, 0, i.kind0 === OP_GPR ? (i.size0) : 2, sysOf(c).trSel, 0);
}

// ---- Segment registers ----

function mov_to_seg(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (MOV.mov_to_seg as (c: Cpu, i: Op) => void)(c, i); return; }
  const seg = i.reg0;
  if (seg === SEG_CS) throw new CpuException(VEC_UD, 0, c.rip, '#UD: mov to CS');
  loadDataSegment(c, seg, rd(c, i, 1, 2));
  if (seg === SEG_SS) inhibit(c);
}

function stack_pop_seg(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (STACK.stack_pop_seg as (c: Cpu, i: Op) => void)(c, i); return; }
  const sp = regAddr(c, RSP);
  const v = popN(c, i.osize) & 0xffff;
  const seg = i.reg0;
  try {
    loadDataSegment(c, seg, v);
  } catch (e) {
    setRegAddr(c, RSP, sp);
    throw e;
  }
  if (seg === SEG_SS) inhibit(c);
}

/** The next instruction runs before any interrupt (STI, MOV SS, POP SS: SDM Vol. 3A, 6.8.3). */
function inhibit(c: Cpu): void {
  sysOf(c).shadow = true;
  c.requestStop();
}

// ---- Far transfers ----

/** Reads a far pointer operand: [offset (osize), selector] from memory or the Ap immediate. */
function farPointer(c: Cpu, i: Op): [number, number] {
  if (i.kind0 === OP_FAR) return [i.imm >>> 0, i.imm2 & 0xffff];
  const a = ea(c, i);
  const size = i.osize;
  const lo = readMem(c, a, size);
  const off = size === 8 ? c.hi * T32 + (lo >>> 0) : size === 4 ? lo >>> 0 : lo & 0xffff;
  const sel = c.read16(a + size);
  return [off, sel];
}

function farJump(c: Cpu, sel: number, off: number): void {
  loadCodeSegment(c, sel, c.cpl);
  c.nextRip = (c.segBase[SEG_CS] as number) + off;
}

function flow_jmp_far(c: Cpu, i: Op): void {
  sysOf(c);
  const [off, sel] = farPointer(c, i);
  farJump(c, sel, off);
}

function flow_call_far(c: Cpu, i: Op): void {
  sysOf(c);
  const [off, sel] = farPointer(c, i);
  const size = i.osize;
  const retOff = c.nextRip - (c.segBase[SEG_CS] as number);
  const cs = c.segSel[SEG_CS] as number;
  const sp = regAddr(c, RSP);
  pushN(c, size, cs, 0);
  pushN(c, size, retOff % T32 | 0, Math.floor(retOff / T32));
  try {
    farJump(c, sel, off);
  } catch (e) {
    setRegAddr(c, RSP, sp);
    throw e;
  }
}

function flow_ret_far(c: Cpu, i: Op): void {
  sysOf(c);
  const size = i.osize;
  const sp = regAddr(c, RSP);
  const lo = popN(c, size);
  const off = size === 8 ? c.hi * T32 + (lo >>> 0) : size === 4 ? lo >>> 0 : lo & 0xffff;
  const sel = popN(c, size) & 0xffff;
  const rpl = sel & 3;
  if (rpl !== c.cpl) {
    setRegAddr(c, RSP, sp);
    // Returns to an outer level pop SS:RSP too; Linux never uses them.
    gp(c, i, `far return to RPL ${rpl} from CPL ${c.cpl} is not implemented`, sel & 0xfffc);
  }
  try {
    farJump(c, sel, off);
  } catch (e) {
    setRegAddr(c, RSP, sp);
    throw e;
  }
  if (i.nops > 0) setRegAddr(c, RSP, regAddr(c, RSP) + (i.imm & 0xffff));
}

/**
 * IRET (SDM Vol. 2A, IRET, IA-32e mode): pops RIP, CS, RFLAGS and, in
 * 64-bit mode always, RSP and SS. Returning to CPL 3 reloads SS from the
 * stack image; IF/IOPL change only as POPF rules allow.
 */
function flow_iret(c: Cpu, i: Op): void {
  const s = sysOf(c);
  if (c.mode !== MODE_64) throw new CpuException(VEC_UD, 0, c.rip, '#UD: IRET outside 64-bit mode is not implemented');
  const size = i.osize;
  const sp = regAddr(c, RSP);
  const word = (a: number): number => {
    const lo = readMem(c, a, size);
    return size === 8 ? c.hi * T32 + (lo >>> 0) : size === 4 ? lo >>> 0 : lo & 0xffff;
  };
  const rip = word(sp);
  const cs = word(sp + size) & 0xffff;
  const flags = word(sp + 2 * size);
  const rsp = word(sp + 3 * size);
  const ss = word(sp + 4 * size) & 0xffff;
  const newCpl = cs & 3;
  if (newCpl < c.cpl) gp(c, i, `IRET to CPL ${newCpl} from CPL ${c.cpl}`, cs & 0xfffc);
  const oldCpl = c.cpl;
  loadCodeSegment(c, cs, newCpl);
  // Compatibility-mode targets keep only the low halves.
  const mask = oldCpl === 0 ? 0x3f7fd5 : iopl(c) >= oldCpl ? 0x3f7dd5 | FLAG_IF : 0x3f4dd5;
  const m = size === 2 ? mask & 0xffff : mask;
  const before = getRflags(c);
  c.flagsBase = ((before & ~m) | (flags & m) | FLAG_RESERVED1) >>> 0;
  c.lfOp = LF_NONE;
  if (newCpl !== oldCpl || (ss & 0xfffc) !== 0) {
    try {
      loadDataSegment(c, SEG_SS, ss);
    } catch (e) {
      throw e;
    }
  } else {
    c.segSel[SEG_SS] = ss;
    s.segAttr[SEG_SS] = ATTR_FLAT_DATA | (newCpl << 5);
  }
  setRegAddr(c, RSP, size === 8 ? (rsp >= 2 ** 63 ? rsp - 2 ** 64 : rsp) : rsp);
  c.nextRip = c.mode === MODE_64 && rip >= 2 ** 63 ? rip - 2 ** 64 : (c.segBase[SEG_CS] as number) + rip;
  if ((before & FLAG_IF) === 0 && (c.flagsBase & FLAG_IF) !== 0) c.requestStop();
}

// ---- SYSCALL / SYSRET / SWAPGS (AMD APM Vol. 2, 6.1.1; SDM Vol. 2B) ----

function msr(c: Cpu, n: number): bigint {
  return sysOf(c).msrs.get(n) ?? 0n;
}

function sys_syscall(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (MISC.sys_syscall as (c: Cpu, i: Op) => void)(c, i); return; }
  if ((c.efer & EFER_SCE) === 0) throw new CpuException(VEC_UD, 0, c.rip, '#UD: SYSCALL with EFER.SCE clear');
  if (c.mode !== MODE_64) throw new CpuException(VEC_UD, 0, c.rip, '#UD: SYSCALL outside 64-bit mode is not implemented');
  const star = msr(c, MSR_STAR);
  const sel = Number((star >> 32n) & 0xffffn);
  const ret = c.nextRip;
  c.gpr[2 * RCX] = ret % T32 | 0;
  c.gpr[2 * RCX + 1] = Math.floor(ret / T32);
  const flags = getRflags(c);
  c.gpr[2 * R11] = flags & ~FLAG_RF;
  c.gpr[2 * R11 + 1] = 0;
  const fmask = Number(msr(c, MSR_SFMASK) & 0xffffffffn);
  c.flagsBase = ((flags & ~fmask & ~FLAG_RF) | FLAG_RESERVED1) >>> 0;
  c.lfOp = LF_NONE;
  setCpl(c, 0);
  setSegment(c, SEG_CS, sel & 0xfffc, 0, 0xffffffff, ATTR_FLAT_CODE64);
  setSegment(c, SEG_SS, (sel + 8) & 0xfffc, 0, 0xffffffff, ATTR_FLAT_DATA);
  c.nextRip = signedAddress(msr(c, MSR_LSTAR));
}

function sys_sysret(c: Cpu, i: Op): void {
  if ((c.efer & EFER_SCE) === 0) throw new CpuException(VEC_UD, 0, c.rip, '#UD: SYSRET with EFER.SCE clear');
  if (c.mode !== MODE_64) throw new CpuException(VEC_UD, 0, c.rip, '#UD: SYSRET outside 64-bit mode is not implemented');
  const star = msr(c, MSR_STAR);
  const base = Number((star >> 48n) & 0xffffn);
  const to64 = i.osize === 8;
  const rip = to64 ? regAddr(c, RCX) : (c.gpr[2 * RCX] as number) >>> 0;
  if (!canonical(rip)) gp(c, i, `SYSRET to non-canonical 0x${hex(rip)}`);
  const flags = c.gpr[2 * R11] as number;
  c.flagsBase = ((flags & SYSRET_FLAGS) | FLAG_RESERVED1) >>> 0;
  c.lfOp = LF_NONE;
  setCpl(c, 3);
  setSegment(c, SEG_CS, ((to64 ? base + 16 : base) & 0xfffc) | 3, 0, 0xffffffff, (to64 ? ATTR_FLAT_CODE64 : ATTR_FLAT_CODE32) | (3 << 5));
  setSegment(c, SEG_SS, ((base + 8) & 0xfffc) | 3, 0, 0xffffffff, ATTR_FLAT_DATA | (3 << 5));
  c.nextRip = rip;
  if ((flags & FLAG_IF) !== 0) c.requestStop();
}

function sys_swapgs(c: Cpu): void {
  const gs = c.segBase[SEG_GS] as number;
  setSegBase(c, SEG_GS, c.kernelGsBase);
  c.kernelGsBase = gs;
}

// ---- MSRs ----

function isMtrr(n: number): boolean {
  return (n >= 0x200 && n < 0x200 + 2 * MTRR_VARIABLE_PAIRS) || n === 0x250 || n === 0x258 || n === 0x259 || (n >= 0x268 && n <= 0x26f) || n === MSR_MTRR_DEF_TYPE;
}

/** An MSR's value, or undefined for one this CPU does not have (#GP). */
export function readMsr(c: Cpu, n: number): bigint | undefined {
  const s = sysOf(c);
  const fromMachine = s.hooks.rdmsr(n);
  if (fromMachine !== undefined) return fromMachine;
  switch (n) {
    case MSR_EFER: return BigInt(c.efer >>> 0);
    case MSR_FS_BASE: return BigInt.asUintN(64, BigInt(c.segBase[SEG_FS] as number));
    case MSR_GS_BASE: return BigInt.asUintN(64, BigInt(c.segBase[SEG_GS] as number));
    case MSR_KERNEL_GS_BASE: return BigInt.asUintN(64, BigInt(c.kernelGsBase));
    case MSR_STAR: case MSR_LSTAR: case MSR_CSTAR: case MSR_SFMASK: case MSR_TSC_AUX: case MSR_SPEC_CTRL:
    case MSR_MCG_STATUS: case MSR_MISC_ENABLE:
      return s.msrs.get(n) ?? 0n;
    case MSR_PAT: return s.msrs.get(n) ?? PAT_RESET;
    case MSR_AMD_HWCR: return (s.msrs.get(n) ?? 0n) | HWCR_TSC_FREQ_SEL;
    case MSR_AMD_NB_CFG: return s.msrs.get(n) ?? 0n;
    // VCNT = 8 variable ranges, fixed ranges, write-combining (SDM Vol. 3A, 11.11.1).
    case MSR_MTRR_CAP: return BigInt(MTRR_VARIABLE_PAIRS) | (1n << 8n) | (1n << 10n);
    case MSR_MCG_CAP: return 0n;
    case MSR_PLATFORM_ID: case MSR_BIOS_SIGN_ID: return 0n;
  }
  if (isMtrr(n)) return s.msrs.get(n) ?? 0n;
  return undefined;
}

/** Writes an MSR; false for #GP (unknown MSR or reserved bits). */
export function writeMsr(c: Cpu, n: number, v: bigint): boolean {
  const s = sysOf(c);
  const handled = s.hooks.wrmsr(n, v);
  if (handled !== undefined) return handled;
  switch (n) {
    case MSR_EFER: {
      const lo = Number(v & 0xffffffffn);
      if ((v >> 32n) !== 0n || (lo & ~(EFER_WRITABLE | EFER_LMA)) !== 0) return false;
      // LME cannot change while paging is on (SDM Vol. 3A, 9.8.5); LMA is read-only.
      if ((c.cr0 & CR0_PG) !== 0 && ((lo ^ c.efer) & EFER_LME) !== 0) return false;
      const old = c.efer;
      c.efer = (lo & EFER_WRITABLE) | (c.efer & EFER_LMA);
      if (((old ^ c.efer) & EFER_NXE) !== 0) c.flushTlb();
      return true;
    }
    case MSR_FS_BASE: case MSR_GS_BASE: case MSR_KERNEL_GS_BASE: case MSR_LSTAR: case MSR_CSTAR: {
      const a = signedAddress(v);
      if (!canonical(a)) return false;
      if (n === MSR_FS_BASE) setSegBase(c, SEG_FS, a);
      else if (n === MSR_GS_BASE) setSegBase(c, SEG_GS, a);
      else if (n === MSR_KERNEL_GS_BASE) c.kernelGsBase = a;
      else s.msrs.set(n, v);
      return true;
    }
    case MSR_STAR: case MSR_TSC_AUX: case MSR_SPEC_CTRL: case MSR_MISC_ENABLE: case MSR_MCG_STATUS: case MSR_AMD_NB_CFG:
      s.msrs.set(n, v);
      return true;
    case MSR_AMD_HWCR:
      // TscFreqSel is read-only set.
      s.msrs.set(n, v | HWCR_TSC_FREQ_SEL);
      return true;
    case MSR_SFMASK:
      s.msrs.set(n, v & 0xffffffffn);
      return true;
    case MSR_PAT:
      s.msrs.set(n, v);
      return true;
    case MSR_BIOS_SIGN_ID:
      return true;
  }
  if (isMtrr(n)) { s.msrs.set(n, v); return true; }
  return false;
}

function sys_rdmsr(c: Cpu, i: Op): void {
  const n = (c.gpr[2 * RCX] as number) >>> 0;
  const v = readMsr(c, n);
  if (v === undefined) gp(c, i, `rdmsr 0x${n.toString(16)}: no such MSR`);
  writeReg(c, RAX, 4, Number(BigInt.asIntN(32, v)), 0);
  writeReg(c, RDX, 4, Number(BigInt.asIntN(32, v >> 32n)), 0);
}

function sys_wrmsr(c: Cpu, i: Op): void {
  const n = (c.gpr[2 * RCX] as number) >>> 0;
  const v = pair(c.gpr[2 * RAX] as number, c.gpr[2 * RDX] as number);
  if (!writeMsr(c, n, v)) gp(c, i, `wrmsr 0x${n.toString(16)} <- 0x${v.toString(16)}: no such MSR or reserved bits`);
}

// ---- CPUID, TSC ----

/** Leaf 1 EDX bits a machine adds to the core's (SDM Vol. 2A, Table 3-11): PSE, MSR, PAE, PGE, PAT; APIC comes from the APIC model. */
const MACHINE_L1_EDX = (1 << 3) | (1 << 5) | (1 << 6) | (1 << 13) | (1 << 16);
const regs4 = new Int32Array(4);

function sys_cpuid(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (MISC.sys_cpuid as (c: Cpu, i: Op) => void)(c, i); return; }
  const leaf = readReg(c, RAX, 4);
  const sub = readReg(c, RCX, 4);
  cpuid(leaf, sub, regs4);
  const l = leaf >>> 0;
  if (l === 1) regs4[3] = (regs4[3] as number) | MACHINE_L1_EDX;
  if (l === 0x80000001) regs4[3] = (regs4[3] as number) | (MACHINE_L1_EDX & ~(1 << 5));
  sysOf(c).hooks.cpuid(leaf, sub, regs4);
  writeReg(c, RAX, 4, regs4[0] as number, 0);
  writeReg(c, RBX_, 4, regs4[1] as number, 0);
  writeReg(c, RCX, 4, regs4[2] as number, 0);
  writeReg(c, RDX, 4, regs4[3] as number, 0);
}
const RBX_ = 3;

function sys_rdtsc(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (MISC.sys_rdtsc as (c: Cpu, i: Op) => void)(c, i); return; }
  // CR4.TSD makes RDTSC privileged (SDM Vol. 2B, RDTSC).
  if ((c.cr4 & (1 << 2)) !== 0 && c.cpl !== 0) gp(c, i, 'RDTSC with CR4.TSD at CPL 3');
  sysOf(c).hooks.rdtsc(regs4);
  writeReg(c, RAX, 4, regs4[0] as number, 0);
  writeReg(c, RDX, 4, regs4[1] as number, 0);
}

// ---- Interrupt flag, HLT, software interrupts ----

function flag_cli(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (MISC.flag_cli as (c: Cpu, i: Op) => void)(c, i); return; }
  if (c.cpl > iopl(c)) gp(c, i, `CLI at CPL ${c.cpl} with IOPL ${iopl(c)}`);
  c.flagsBase &= ~FLAG_IF;
}

function flag_sti(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (MISC.flag_sti as (c: Cpu, i: Op) => void)(c, i); return; }
  if (c.cpl > iopl(c)) gp(c, i, `STI at CPL ${c.cpl} with IOPL ${iopl(c)}`);
  if ((c.flagsBase & FLAG_IF) === 0) {
    c.flagsBase |= FLAG_IF;
    inhibit(c);
  }
}

function stack_popf(c: Cpu, i: Op): void {
  const before = c.flagsBase & FLAG_IF;
  (STACK.stack_popf as (c: Cpu, i: Op) => void)(c, i);
  if (c.sys === undefined) return;
  // At CPL 0 POPF also writes IOPL and IF (the part-1 mask); above it, IF only with CPL <= IOPL.
  if (c.cpl !== 0 && c.cpl <= iopl(c)) {
    // stack_popf kept IF at CPL 3; honour IOPL here.
    const v = readMem(c, regAddr(c, RSP) - i.osize, i.osize);
    c.flagsBase = (c.flagsBase & ~FLAG_IF) | (v & FLAG_IF);
  }
  if (before === 0 && (c.flagsBase & FLAG_IF) !== 0) c.requestStop();
}

function sys_hlt(c: Cpu): void {
  c.halted = true;
  c.requestStop();
}

function softInt(c: Cpu, i: Op, vector: number, what: string): never {
  c.rip = c.nextRip;
  throw new SoftwareInterrupt(vector, 0, c.rip, what);
}

function flow_int(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (BRANCH.flow_int as (c: Cpu, i: Op) => void)(c, i); return; }
  softInt(c, i, i.imm & 0xff, `int 0x${(i.imm & 0xff).toString(16)}`);
}

function flow_int3(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (BRANCH.flow_int3 as (c: Cpu, i: Op) => void)(c, i); return; }
  softInt(c, i, VEC_BP, 'int3');
}

function flow_into(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (BRANCH.flow_into as (c: Cpu, i: Op) => void)(c, i); return; }
  softInt(c, i, VEC_OF, 'into');
}

function flow_int1(c: Cpu, i: Op): void {
  if (c.sys === undefined) { (BRANCH.flow_int1 as (c: Cpu, i: Op) => void)(c, i); return; }
  // ICEBP is delivered like a hardware #DB: no gate DPL check (SDM Vol. 3A, 6.12.1.1).
  c.rip = c.nextRip;
  throw new CpuException(VEC_DB, 0, c.rip, 'int1');
}

// ---- Port I/O ----

const ioBuf = new Uint8Array(4);
const ioView = new DataView(ioBuf.buffer);

/**
 * I/O is allowed at CPL <= IOPL; the TSS I/O permission bitmap is not
 * consulted (README.md). A process (no machine) runs at CPL 3 with IOPL 0: #GP.
 */
function ioCheck(c: Cpu, i: Op, port: number): void {
  if (c.cpl > iopl(c)) gp(c, i, `port 0x${port.toString(16)} at CPL ${c.cpl} with IOPL ${iopl(c)}`);
  sysOf(c);
}

function portOf(c: Cpu, i: Op, n: number): number {
  return opKind(i, n) === OP_IMM ? i.imm & 0xff : (c.gpr[2 * RDX] as number) & 0xffff;
}

function pioRead(c: Cpu, port: number, size: number): number {
  const data = ioBuf.subarray(0, size);
  data.fill(0xff);
  sysOf(c).hooks.pio(port, data, false);
  return size === 1 ? ioView.getUint8(0) : size === 2 ? ioView.getUint16(0, true) : ioView.getInt32(0, true);
}

function pioWrite(c: Cpu, port: number, size: number, v: number): void {
  if (size === 1) ioView.setUint8(0, v & 0xff);
  else if (size === 2) ioView.setUint16(0, v & 0xffff, true);
  else ioView.setInt32(0, v, true);
  sysOf(c).hooks.pio(port, ioBuf.subarray(0, size), true);
}

function io_in(c: Cpu, i: Op): void {
  const port = portOf(c, i, 1);
  ioCheck(c, i, port);
  const size = i.size0;
  writeReg(c, RAX, size, pioRead(c, port, size), 0);
}

function io_out(c: Cpu, i: Op): void {
  const port = portOf(c, i, 0);
  ioCheck(c, i, port);
  const size = i.size1;
  pioWrite(c, port, size, readReg(c, RAX, size));
}

/** A pointer register at the address size. */
function ptr(c: Cpu, r: number, asize: number): number {
  if (asize === 8) return regAddr(c, r);
  const lo = c.gpr[2 * r] as number;
  return asize === 4 ? lo >>> 0 : lo & 0xffff;
}

function setPtr(c: Cpu, r: number, asize: number, v: number): void {
  if (asize === 8) setRegAddr(c, r, v);
  else writeReg(c, r, asize, asize === 4 ? v | 0 : v & 0xffff, 0);
}

/** INS/OUTS with REP: one port access per element, registers written back per element so a fault restarts cleanly. */
function strIo(c: Cpu, i: Op, out: boolean): void {
  const port = (c.gpr[2 * RDX] as number) & 0xffff;
  ioCheck(c, i, port);
  const size = (out ? i.size1 : i.size0) as number;
  const asize = i.asize;
  const rep = (i.prefixes & (PFX_REP | PFX_REPNE)) !== 0;
  const step = (c.flagsBase & FLAG_DF) !== 0 ? -size : size;
  const reg = out ? RSI : RDI;
  const base = out ? (c.segBase[i.segment] as number) : (c.segBase[SEG_ES] as number);
  let n = rep ? ptr(c, RCX, asize) : 1;
  while (n > 0) {
    const p = ptr(c, reg, asize);
    if (out) pioWrite(c, port, size, readMem(c, base + p, size));
    else {
      c.probeWrite(base + p, size);
      writeMem(c, base + p, size, pioRead(c, port, size), 0);
    }
    setPtr(c, reg, asize, p + step);
    n--;
    if (rep) setPtr(c, RCX, asize, n);
  }
}

export const SYSTEM: HandlerMap = {
  sys_mov_from_cr,
  sys_mov_to_cr,
  sys_mov_from_dr,
  sys_mov_to_dr,
  sys_smsw,
  sys_lmsw,
  sys_clts: (c) => { c.cr0 &= ~CR0_TS; },
  sys_lgdt: (c, i) => sys_lgdt_lidt(c, i, false),
  sys_lidt: (c, i) => sys_lgdt_lidt(c, i, true),
  sys_sgdt: (c, i) => sys_sgdt_sidt(c, i, false),
  sys_sidt: (c, i) => sys_sgdt_sidt(c, i, true),
  sys_lldt,
  sys_ltr,
  sys_sldt,
  sys_str,
  sys_invlpg: (c, i) => { sysOf(c); c.invalidatePage(Math.floor(ea(c, i) / PAGE_SIZE)); },
  sys_wbinvd: () => { /* caches are coherent here */ },
  sys_invd: () => { /* caches are coherent here */ },
  mov_to_seg,
  stack_pop_seg,
  flow_jmp_far,
  flow_call_far,
  flow_ret_far,
  flow_iret,
  sys_syscall,
  sys_sysret,
  sys_swapgs,
  sys_rdmsr,
  sys_wrmsr,
  sys_cpuid,
  sys_rdtsc,
  flag_cli,
  flag_sti,
  stack_popf,
  sys_hlt,
  flow_int,
  flow_int3,
  flow_into,
  flow_int1,
  io_in,
  io_out,
  str_ins: (c, i) => strIo(c, i, false),
  str_outs: (c, i) => strIo(c, i, true),
};
