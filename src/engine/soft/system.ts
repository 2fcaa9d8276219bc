/**
 * The soft CPU's system architecture in machine mode: descriptor tables and
 * segment loads, the state system instructions touch (GDTR/IDTR/LDTR/TR,
 * MSRs), privilege changes, and event delivery through the IDT with the
 * double- and triple-fault rules (SDM Vol. 3A, chapters 3, 5, 6 and 7).
 *
 * Process mode (src/process) has no SystemState (`cpu.sys` undefined) and
 * keeps the part-1 behaviour.
 */
import { MODE_16, MODE_32, MODE_64 } from './decode/index.js';
import type { Cpu } from './cpu.js';
import { getRflags } from './flags.js';
import { CpuException, hex, VEC_GP } from './mmu.js';
import type { MachineMmu } from './paging.js';
import { SystemError } from './paging.js';
import {
  CR0_PE, EFER_LMA, FLAG_IF, FLAG_NT, FLAG_RESERVED1, FLAG_RF, FLAG_TF, LF_NONE, RSP, SEG_CS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS,
} from './state.js';

/** Exception vectors beyond mmu.ts's (SDM Vol. 3A, Table 6-1). */
export const VEC_NMI = 2;
export const VEC_DF = 8;
export const VEC_TS = 10;
export const VEC_NP = 11;
export const VEC_SS = 12;

/** Segment attributes as kept here: descriptor byte 5 (type, S, DPL, P) in bits 0-7, byte 6's high nibble (AVL, L, D/B, G) in bits 8-11. */
export const ATTR_TYPE_MASK = 0x0f;
export const ATTR_S = 0x10;
export const ATTR_P = 0x80;
export const ATTR_L = 0x200;
export const ATTR_DB = 0x400;
export const ATTR_G = 0x800;
/** Code segment type bit (type field bit 3) and data-writable / code-readable bit (bit 1). */
const TYPE_CODE = 0x8;
const TYPE_WRITABLE = 0x2;

/** System descriptor and gate types in IA-32e mode (SDM Vol. 3A, Table 3-2). */
export const SYS_LDT = 0x2;
export const SYS_TSS_AVAILABLE = 0x9;
export const SYS_TSS_BUSY = 0xb;
export const GATE_INTERRUPT = 0xe;
export const GATE_TRAP = 0xf;

/** Flat segments as SYSCALL/SYSRET load them without reading the GDT (SDM Vol. 2B, SYSCALL). */
const ATTR_FLAT_CODE64 = ATTR_P | ATTR_S | 0xb | ATTR_L | ATTR_G;
const ATTR_FLAT_CODE32 = ATTR_P | ATTR_S | 0xb | ATTR_DB | ATTR_G;
const ATTR_FLAT_DATA = ATTR_P | ATTR_S | 0x3 | ATTR_DB | ATTR_G;
/** Real-mode segment: present, writable/readable, 64 KiB, 16-bit. */
export const ATTR_REAL = ATTR_P | ATTR_S | 0x3;

/** Exceptions that push an error code (SDM Vol. 3A, Table 6-1). */
const HAS_ERROR_CODE = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
/** Contributory exceptions (SDM Vol. 3A, Table 6-4). */
const CONTRIBUTORY = new Set([0, 10, 11, 12, 13]);
const VEC_PF_ = 14;

/** What a machine provides to system instructions: port I/O, MSRs backed by devices, CPUID, time. */
export interface MachineHooks {
  pio(port: number, data: Uint8Array, isWrite: boolean): void;
  /** MSRs owned by the machine (TSC, APIC base, TSC deadline); undefined = not one of those. */
  rdmsr(msr: number): bigint | undefined;
  /** True when handled, false for #GP, undefined when not one of the machine's MSRs. */
  wrmsr(msr: number, value: bigint): boolean | undefined;
  /** Completes CPUID after the core's own answer (APIC, TSC leaves). */
  cpuid(leaf: number, subleaf: number, out: Int32Array): void;
  /** RDTSC into out[0] = EAX, out[1] = EDX. */
  rdtsc(out: Int32Array): void;
  readCr8(): number;
  writeCr8(value: number): void;
  /** A write to the APIC page or CR8 may have unmasked an interrupt: end the slice to look. */
  interruptWindow(): void;
}

/** The system registers a machine-mode CPU adds to the part-1 state. */
export class SystemState {
  gdtBase = 0;
  gdtLimit = 0xffff;
  idtBase = 0;
  idtLimit = 0xffff;
  ldtSel = 0;
  ldtBase = 0;
  ldtLimit = 0;
  trSel = 0;
  trBase = 0;
  trLimit = 0xffff;
  trAttr = ATTR_P | SYS_TSS_BUSY;
  readonly segLimit = new Float64Array(6).fill(0xffff);
  readonly segAttr = new Int32Array(6).fill(ATTR_REAL);
  /** Bases as loaded, including those 64-bit mode ignores (cpu.segBase holds the effective ones). */
  readonly segLoadedBase = new Float64Array(6);
  /** MSRs kept as plain values: STAR, LSTAR, CSTAR, SFMASK, PAT, MTRRs, … (bigint: rare accesses). */
  readonly msrs = new Map<number, bigint>();
  /** Interrupts are inhibited for one instruction after STI that set IF, and after MOV SS / POP SS. */
  shadow = false;
  /** Set while the CPU waits for a startup IPI (APs after INIT). */
  waitForSipi = false;

  constructor(readonly mmu: MachineMmu, readonly hooks: MachineHooks) {}
}

/** The machine-mode system state, or #UD for a process-mode CPU. */
export function sysOf(c: Cpu): SystemState {
  const s = c.sys;
  if (s === undefined) throw new CpuException(6, 0, c.rip, '#UD: system instruction without a machine');
  return s;
}

/** Recomputes the decoding mode from CS and EFER.LMA (SDM Vol. 3A, 5.2.1): 64-bit needs LMA and CS.L. */
export function updateMode(c: Cpu): void {
  const s = sysOf(c);
  const a = s.segAttr[SEG_CS] as number;
  const long = (c.efer & EFER_LMA) !== 0 && (a & ATTR_L) !== 0 && (c.cr0 & CR0_PE) !== 0;
  c.setMode(long ? MODE_64 : (a & ATTR_DB) !== 0 && (c.cr0 & CR0_PE) !== 0 ? MODE_32 : MODE_16);
  applyBases(c);
}

/** In 64-bit mode the CS, DS, ES and SS bases are treated as 0 (SDM Vol. 3A, 3.4.4). */
function applyBases(c: Cpu): void {
  const s = sysOf(c);
  const mode64 = c.mode === MODE_64;
  for (const r of [SEG_ES, SEG_CS, SEG_SS, SEG_DS]) c.segBase[r] = mode64 ? 0 : (s.segLoadedBase[r] as number);
  c.segBase[SEG_FS] = s.segLoadedBase[SEG_FS] as number;
  c.segBase[SEG_GS] = s.segLoadedBase[SEG_GS] as number;
}

export function setSegment(c: Cpu, seg: number, sel: number, base: number, limit: number, attr: number): void {
  const s = sysOf(c);
  c.segSel[seg] = sel;
  s.segLoadedBase[seg] = base;
  s.segLimit[seg] = limit;
  s.segAttr[seg] = attr;
  if (seg === SEG_CS) updateMode(c);
  else applyBases(c);
}

/** Writes a segment base directly (WRFSBASE, MSR_FS_BASE/GS_BASE, SWAPGS). */
export function setSegBase(c: Cpu, seg: number, base: number): void {
  const s = c.sys;
  if (s !== undefined) s.segLoadedBase[seg] = base;
  c.segBase[seg] = base;
}

/** Changes CPL; TLB entries hold permissions checked as user (CPL 3) or supervisor, so crossing between the two swaps TLBs. */
export function setCpl(c: Cpu, cpl: number): void {
  if (c.cpl === cpl) return;
  const user = cpl === 3;
  const wasUser = c.cpl === 3;
  c.cpl = cpl;
  if (user !== wasUser) c.switchPrivilege();
}

const descBuf = new Uint8Array(16);
const descView = new DataView(descBuf.buffer);

export interface Descriptor {
  lo: number;
  hi: number;
  /** Bits 63:32 of the base for 16-byte system descriptors. */
  upper: number;
  base: number;
  limit: number;
  attr: number;
}

/** Reads the descriptor `sel` names from the GDT or LDT; #GP(sel) beyond the table limit. */
export function readDescriptor(c: Cpu, sel: number, size: 8 | 16, vector = VEC_GP): Descriptor {
  const s = sysOf(c);
  const ldt = (sel & 4) !== 0;
  const tableBase = ldt ? s.ldtBase : s.gdtBase;
  const tableLimit = ldt ? s.ldtLimit : s.gdtLimit;
  const off = sel & 0xfff8;
  if (off + size - 1 > tableLimit) throw new CpuException(vector, sel & 0xfffc, c.rip, `selector 0x${sel.toString(16)} beyond the ${ldt ? 'LDT' : 'GDT'} limit 0x${tableLimit.toString(16)}`);
  const buf = descBuf.subarray(0, size);
  s.mmu.readSystem(c, tableBase + off, buf);
  const lo = descView.getInt32(0, true);
  const hi = descView.getInt32(4, true);
  // Signed: bases in the upper half stay exact as canonical numbers.
  const upper = size === 16 ? descView.getInt32(8, true) : 0;
  let limit = (lo & 0xffff) | (hi & 0xf0000);
  if ((hi & (1 << 23)) !== 0) limit = limit * 4096 + 4095;
  const base = ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0;
  const attr = ((hi >>> 8) & 0xff) | ((hi >>> 12) & 0xf00);
  return { lo, hi, upper, base: base + upper * 4294967296, limit, attr };
}

/**
 * MOV/POP to DS, ES, FS, GS, SS (SDM Vol. 2B, MOV "Operation"): real mode
 * takes selector × 16; protected and long mode load the descriptor with the
 * checks Linux can hit (limit, present, type, privilege for SS).
 */
export function loadDataSegment(c: Cpu, seg: number, sel: number): void {
  const s = sysOf(c);
  if ((c.cr0 & CR0_PE) === 0) {
    setSegment(c, seg, sel, sel * 16, 0xffff, s.segAttr[seg] as number);
    return;
  }
  if ((sel & 0xfffc) === 0) {
    // A null selector: allowed for SS only in 64-bit mode below CPL 3 with RPL = CPL.
    if (seg === SEG_SS && (c.mode !== MODE_64 || c.cpl === 3 || (sel & 3) !== c.cpl)) throw new CpuException(VEC_GP, 0, c.rip, '#GP: null SS');
    setSegment(c, seg, sel, 0, 0, seg === SEG_SS ? ATTR_FLAT_DATA | (c.cpl << 5) : 0);
    return;
  }
  const d = readDescriptor(c, sel, 8);
  const type = d.attr & ATTR_TYPE_MASK;
  const dpl = (d.attr >> 5) & 3;
  if ((d.attr & ATTR_S) === 0) throw new CpuException(VEC_GP, sel & 0xfffc, c.rip, `#GP: selector 0x${sel.toString(16)} is a system descriptor`);
  if (seg === SEG_SS) {
    if ((type & TYPE_CODE) !== 0 || (type & TYPE_WRITABLE) === 0 || (sel & 3) !== c.cpl || dpl !== c.cpl) {
      throw new CpuException(VEC_GP, sel & 0xfffc, c.rip, `#GP: SS selector 0x${sel.toString(16)} (type ${type}, DPL ${dpl}) at CPL ${c.cpl}`);
    }
    if ((d.attr & ATTR_P) === 0) throw new CpuException(VEC_SS, sel & 0xfffc, c.rip, `#SS: segment 0x${sel.toString(16)} not present`);
  } else {
    if ((type & TYPE_CODE) !== 0 && (type & TYPE_WRITABLE) === 0) throw new CpuException(VEC_GP, sel & 0xfffc, c.rip, `#GP: execute-only code selector 0x${sel.toString(16)} into a data register`);
    if ((d.attr & ATTR_P) === 0) throw new CpuException(VEC_NP_(), sel & 0xfffc, c.rip, `#NP: segment 0x${sel.toString(16)} not present`);
  }
  setSegment(c, seg, sel, d.base, d.limit, d.attr);
}

function VEC_NP_(): number {
  return VEC_NP;
}

/** Loads CS from a code descriptor for a far transfer at the same or a new privilege level. */
export function loadCodeSegment(c: Cpu, sel: number, newCpl: number): void {
  if ((c.cr0 & CR0_PE) === 0) {
    setSegment(c, SEG_CS, sel, sel * 16, 0xffff, ATTR_REAL);
    return;
  }
  if ((sel & 0xfffc) === 0) throw new CpuException(VEC_GP, 0, c.rip, '#GP: null CS');
  const d = readDescriptor(c, sel, 8);
  if ((d.attr & ATTR_S) === 0 || (d.attr & TYPE_CODE) === 0) throw new CpuException(VEC_GP, sel & 0xfffc, c.rip, `#GP: CS selector 0x${sel.toString(16)} is not a code segment`);
  if ((d.attr & ATTR_P) === 0) throw new CpuException(VEC_NP, sel & 0xfffc, c.rip, `#NP: code segment 0x${sel.toString(16)} not present`);
  setCpl(c, newCpl);
  setSegment(c, SEG_CS, (sel & 0xfffc) | newCpl, d.base, d.limit, d.attr);
}

/** Puts a CPU in the state SIPI leaves an AP in: real mode at vector << 12 (SDM Vol. 3A, 9.4.4.1 and 10.6.1). */
export function startupAp(c: Cpu, vector: number): void {
  const s = sysOf(c);
  c.cr0 = 0x60000010; // CD, NW, ET: the reset value (SDM Vol. 3A, Table 9-1)
  c.cr3 = 0;
  c.cr4 = 0;
  c.efer = 0;
  setCpl(c, 0);
  c.flagsBase = FLAG_RESERVED1;
  c.lfOp = LF_NONE;
  for (const seg of [SEG_ES, SEG_SS, SEG_DS, SEG_FS, SEG_GS]) setSegment(c, seg, 0, 0, 0xffff, ATTR_REAL);
  setSegment(c, SEG_CS, vector << 8, vector << 12, 0xffff, ATTR_REAL);
  s.gdtBase = 0; s.gdtLimit = 0xffff; s.idtBase = 0; s.idtLimit = 0xffff;
  c.rip = vector << 12;
  c.flushTlb();
  c.halted = false;
  s.waitForSipi = false;
}

/** Software INT n / INT3 / INTO: delivered with the gate's DPL check, RIP already past the instruction. */
export class SoftwareInterrupt extends CpuException {
  override name = 'SoftwareInterrupt';
}

/** The CPU shut down (triple fault): the VM ends. */
export class TripleFault extends Error {
  override name = 'TripleFault';
}

function classOf(v: number): 'benign' | 'contributory' | 'pf' | 'df' {
  if (v === VEC_DF) return 'df';
  if (v === VEC_PF_) return 'pf';
  return CONTRIBUTORY.has(v) ? 'contributory' : 'benign';
}

/**
 * Delivers an exception the last instruction raised (or a software
 * interrupt), applying SDM Vol. 3A Table 6-5: a fault while delivering
 * becomes #DF when both are contributory or page faults, a fault while
 * delivering #DF shuts the CPU down (TripleFault).
 */
export function deliverException(c: Cpu, e: CpuException): void {
  let vector = e.vector;
  let code = e.errorCode;
  let soft = e instanceof SoftwareInterrupt;
  if (vector === VEC_PF_) c.cr2 = e.address;
  for (;;) {
    const saved = saveFrameState(c);
    try {
      deliver(c, vector, HAS_ERROR_CODE.has(vector) && !soft ? code : -1, soft, false);
      return;
    } catch (e2) {
      if (!(e2 instanceof CpuException)) throw e2;
      restoreFrameState(c, saved);
      const first = classOf(vector);
      const second = classOf(e2.vector);
      if (first === 'df') throw new TripleFault(`triple fault: ${e2.message} while delivering #DF (first: ${e.message})`);
      if ((first === 'contributory' && second === 'contributory') || (first === 'pf' && (second === 'contributory' || second === 'pf'))) {
        vector = VEC_DF;
        code = 0;
      } else {
        vector = e2.vector;
        code = e2.errorCode;
        if (vector === VEC_PF_) c.cr2 = e2.address;
      }
      soft = false;
    }
  }
}

/** Delivers external interrupt `vector` (LAPIC) at the current instruction boundary. */
export function deliverInterrupt(c: Cpu, vector: number): void {
  const saved = saveFrameState(c);
  try {
    deliver(c, vector, -1, false, true);
  } catch (e) {
    if (!(e instanceof CpuException)) throw e;
    restoreFrameState(c, saved);
    deliverException(c, e);
  }
  c.halted = false;
}

interface FrameState { rsp: number; rspHi: number; cpl: number; cs: number; csBase: number; csLimit: number; csAttr: number; ss: number; ssAttr: number }

function saveFrameState(c: Cpu): FrameState {
  const s = sysOf(c);
  return {
    rsp: c.gpr[2 * RSP] as number, rspHi: c.gpr[2 * RSP + 1] as number, cpl: c.cpl,
    cs: c.segSel[SEG_CS] as number, csBase: s.segLoadedBase[SEG_CS] as number, csLimit: s.segLimit[SEG_CS] as number, csAttr: s.segAttr[SEG_CS] as number,
    ss: c.segSel[SEG_SS] as number, ssAttr: s.segAttr[SEG_SS] as number,
  };
}

function restoreFrameState(c: Cpu, f: FrameState): void {
  c.gpr[2 * RSP] = f.rsp;
  c.gpr[2 * RSP + 1] = f.rspHi;
  setCpl(c, f.cpl);
  setSegment(c, SEG_CS, f.cs, f.csBase, f.csLimit, f.csAttr);
  c.segSel[SEG_SS] = f.ss;
  sysOf(c).segAttr[SEG_SS] = f.ssAttr;
}

const gateBuf = new Uint8Array(16);
const gateView = new DataView(gateBuf.buffer);
const T32 = 4294967296;

/**
 * IA-32e interrupt delivery (SDM Vol. 3A, 6.14): 16-byte gate, stack switch
 * to TSS.RSPn on a privilege change or to an IST stack, 16-byte aligned
 * frame SS, RSP, RFLAGS, CS, RIP [, error code].
 */
function deliver(c: Cpu, vector: number, errorCode: number, soft: boolean, external: boolean): void {
  const s = sysOf(c);
  if ((c.efer & EFER_LMA) === 0) {
    throw new SystemError(`exception or interrupt ${vector} outside long mode (CR0 0x${hex(c.cr0)}) is not implemented`);
  }
  const ext = external ? 1 : 0;
  const idtErr = (vector << 3) | 2 | ext;
  if (vector * 16 + 15 > s.idtLimit) throw new CpuException(VEC_GP, idtErr, c.rip, `#GP: vector ${vector} beyond the IDT limit 0x${s.idtLimit.toString(16)}`);
  s.mmu.readSystem(c, s.idtBase + vector * 16, gateBuf);
  const w0 = gateView.getUint32(0, true);
  const w1 = gateView.getUint32(4, true);
  const w2 = gateView.getUint32(8, true);
  const type = (w1 >>> 8) & 0xf;
  const dpl = (w1 >>> 13) & 3;
  const present = (w1 & (1 << 15)) !== 0;
  const ist = w1 & 7;
  if (type !== GATE_INTERRUPT && type !== GATE_TRAP) throw new CpuException(VEC_GP, idtErr, c.rip, `#GP: IDT entry ${vector} has type ${type}, not a 64-bit interrupt or trap gate`);
  if (soft && dpl < c.cpl) throw new CpuException(VEC_GP, idtErr, c.rip, `#GP: INT ${vector} through a gate of DPL ${dpl} at CPL ${c.cpl}`);
  if (!present) throw new CpuException(VEC_NP, idtErr, c.rip, `#NP: IDT entry ${vector} not present`);
  const sel = w0 >>> 16;
  const offset = ((w0 & 0xffff) | (w1 & 0xffff0000)) >>> 0;
  // Signed high half: the sum stays exact (canonical addresses need 48 bits).
  const targetSigned = (w2 | 0) * T32 + offset;
  if ((sel & 0xfffc) === 0) throw new CpuException(VEC_GP, ext, c.rip, `#GP: IDT entry ${vector} has a null selector`);
  const cs = readDescriptor(c, sel, 8);
  const newCpl = (cs.attr >> 5) & 3;
  if ((cs.attr & ATTR_S) === 0 || (cs.attr & TYPE_CODE) === 0 || (cs.attr & ATTR_L) === 0 || newCpl > c.cpl) {
    throw new CpuException(VEC_GP, (sel & 0xfffc) | ext, c.rip, `#GP: IDT entry ${vector} selector 0x${sel.toString(16)} is not a 64-bit code segment at or above CPL ${c.cpl}`);
  }
  const oldSs = c.segSel[SEG_SS] as number;
  const oldRsp = (c.gpr[2 * RSP + 1] as number) * T32 + ((c.gpr[2 * RSP] as number) >>> 0);
  const oldCs = c.segSel[SEG_CS] as number;
  const rflags = getRflags(c);
  let rsp = oldRsp;
  if (ist !== 0) rsp = readTssRsp(c, 0x24 + (ist - 1) * 8);
  else if (newCpl < c.cpl) rsp = readTssRsp(c, 4 + newCpl * 8);
  rsp -= rsp % 16 === 0 ? 0 : ((rsp % 16) + 16) % 16;
  setCpl(c, newCpl);
  const push = (lo: number, hi: number): void => {
    rsp -= 8;
    c.write64(rsp, lo, hi);
  };
  push(oldSs, 0);
  push(oldRsp % T32 | 0, Math.floor(oldRsp / T32));
  push(rflags, 0);
  push(oldCs, 0);
  push(c.rip % T32 | 0, Math.floor(c.rip / T32));
  if (errorCode >= 0) push(errorCode, 0);
  c.gpr[2 * RSP] = rsp % T32 | 0;
  c.gpr[2 * RSP + 1] = Math.floor(rsp / T32);
  if (newCpl !== ((oldCs & 3))) {
    // A privilege change loads SS with a null selector whose RPL is the new CPL (SDM Vol. 3A, 6.14.4).
    c.segSel[SEG_SS] = newCpl;
    s.segAttr[SEG_SS] = ATTR_FLAT_DATA;
  }
  setSegment(c, SEG_CS, (sel & 0xfffc) | newCpl, 0, cs.limit, cs.attr);
  let f = rflags & ~(FLAG_TF | FLAG_NT | FLAG_RF | (1 << 17));
  if (type === GATE_INTERRUPT) f &= ~FLAG_IF;
  c.flagsBase = (f | FLAG_RESERVED1) >>> 0;
  c.lfOp = LF_NONE;
  c.rip = targetSigned;
  s.shadow = false;
}

function readTssRsp(c: Cpu, off: number): number {
  const s = sysOf(c);
  if (off + 7 > s.trLimit) throw new CpuException(VEC_TS, s.trSel & 0xfffc, c.rip, `#TS: TSS offset 0x${off.toString(16)} beyond its limit`);
  s.mmu.readSystem(c, s.trBase + off, gateBuf.subarray(0, 8));
  const lo = gateView.getUint32(0, true);
  const hi = gateView.getInt32(4, true);
  return hi * T32 + lo;
}

export { ATTR_FLAT_CODE32, ATTR_FLAT_CODE64, ATTR_FLAT_DATA, SEG_CS, SEG_SS };
