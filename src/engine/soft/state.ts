/**
 * Architectural state of one soft-engine CPU.
 *
 * 64-bit values travel as int32 halves (lo, hi): unsigned value =
 * (lo >>> 0) + (hi >>> 0) * 2**32 (README.md has the measurement behind the
 * choice). GPR r lives at gpr[2r] (lo) and gpr[2r + 1] (hi). Linear addresses
 * and RIP are float64 numbers holding the signed (canonical) 64-bit value,
 * exact because canonical addresses need 48 bits.
 *
 * Arithmetic flags are lazy (see flags.ts): an instruction records what it
 * computed and the six status flags are derived only when read.
 */

/** GPR numbers (SDM Vol. 2A, Table 2-2 "32-Bit Addressing Forms", REX.B/R/X extend to 15). */
/** XMM0-15 and two scratch registers, four int32 lanes each (CpuState.xmm). */
export const XMM_LANES = 18 * 4;

export const RAX = 0;
export const RCX = 1;
export const RDX = 2;
export const RBX = 3;
export const RSP = 4;
export const RBP = 5;
export const RSI = 6;
export const RDI = 7;
export const R8 = 8;
export const R9 = 9;
export const R10 = 10;
export const R11 = 11;

/** RFLAGS bits (SDM Vol. 1, 3.4.3). */
export const FLAG_CF = 1 << 0;
export const FLAG_RESERVED1 = 1 << 1; // always 1
export const FLAG_PF = 1 << 2;
export const FLAG_AF = 1 << 4;
export const FLAG_ZF = 1 << 6;
export const FLAG_SF = 1 << 7;
export const FLAG_TF = 1 << 8;
export const FLAG_IF = 1 << 9;
export const FLAG_DF = 1 << 10;
export const FLAG_OF = 1 << 11;
export const FLAG_NT = 1 << 14;
export const FLAG_RF = 1 << 16;
export const FLAG_AC = 1 << 18;
export const FLAG_ID = 1 << 21;
export const STATUS_FLAGS = FLAG_CF | FLAG_PF | FLAG_AF | FLAG_ZF | FLAG_SF | FLAG_OF;
/** Bits POPF may change at CPL 3 with IOPL 0 (SDM Vol. 2B, POPF, Table 4-15): not IF, IOPL, VM, VIF, VIP. */
export const POPF_USER_MASK = STATUS_FLAGS | FLAG_TF | FLAG_DF | FLAG_NT | FLAG_AC | FLAG_ID;

/**
 * Lazy-flag kinds (CpuState.lfOp): which instruction class last set the
 * status flags. lfDst/lfSrc/lfRes hold its operands and result; for sizes 1
 * and 2 they are zero-extended, for size 4 the raw int32, for size 8 the
 * lo halves with the hi halves in lfDstHi/lfSrcHi/lfResHi.
 */
export const LF_NONE = 0; // the status flags are in flagsBase
export const LF_ADD = 1; // CF/OF/AF from an addition (ADD, XADD)
export const LF_ADC = 2; // addition with carry-in lfAux
export const LF_SUB = 3; // subtraction (SUB, CMP, NEG with dst 0, CMPXCHG, SCAS, CMPS)
export const LF_SBB = 4; // subtraction with borrow-in lfAux
export const LF_LOGIC = 5; // AND/OR/XOR/TEST: CF = OF = 0, AF left 0
export const LF_INC = 6; // as LF_ADD with src 1, CF preserved in lfAux
export const LF_DEC = 7; // as LF_SUB with src 1, CF preserved in lfAux
export const LF_CO = 8; // CF, OF (and AF) given in lfAux as FLAG_* bits; ZF/SF/PF from the result (shifts, MUL)

/** Control registers, EFER bits used in user mode (SDM Vol. 3A, 2.5; 2.2.1). */
export const CR0_PE = 1 << 0;
export const CR0_MP = 1 << 1;
export const CR0_ET = 1 << 4;
export const CR0_NE = 1 << 5;
export const CR0_PG = 1 << 31;
export const CR4_PAE = 1 << 5;
export const CR4_PGE = 1 << 7;
export const CR4_OSFXSR = 1 << 9;
export const CR4_OSXMMEXCPT = 1 << 10;
export const EFER_SCE = 1 << 0;
export const EFER_LME = 1 << 8;
export const EFER_LMA = 1 << 10;
export const EFER_NXE = 1 << 11;

/** Segment registers in the Sreg encoding (SDM Vol. 2A, Table 3-6). */
export const SEG_ES = 0;
export const SEG_CS = 1;
export const SEG_SS = 2;
export const SEG_DS = 3;
export const SEG_FS = 4;
export const SEG_GS = 5;

/** x87 control word at FNINIT (SDM Vol. 1, 8.1.5): all exceptions masked, 64-bit precision, round to nearest. */
export const FCW_DEFAULT = 0x037f;
/** MXCSR at reset (SDM Vol. 1, 10.2.3): all exceptions masked, round to nearest. */
export const MXCSR_DEFAULT = 0x1f80;

/** A CPU's whole state as plain data (snapshot files, tests, fork). */
export interface CpuStateSnapshot {
  gpr: number[];
  rip: number;
  rflags: number;
  segSel: number[];
  segBase: number[];
  cr0: number; cr2: number; cr3: number; cr4: number; efer: number; cpl: number;
  fpr: number[]; fpTop: number; fpTag: number; fcw: number; fsw: number;
  mmx: number[];
  xmm: number[];
  mxcsr: number;
  kernelGsBase: number;
}

export class CpuState {
  /** The 16 GPRs as int32 halves; `placeRegisters` may move them into shared memory (never while running). */
  gpr: Int32Array<ArrayBufferLike> = new Int32Array(32);
  /** Address of the current instruction (signed canonical value). */
  rip = 0;
  /** RFLAGS bits that are not lazy, and the status flags when lfOp is LF_NONE. */
  flagsBase = FLAG_RESERVED1;
  lfOp = LF_NONE;
  lfSize = 4;
  lfDst = 0;
  lfDstHi = 0;
  lfSrc = 0;
  lfSrcHi = 0;
  lfRes = 0;
  lfResHi = 0;
  lfAux = 0;

  readonly segSel = new Uint16Array(6);
  /**
   * Segment bases; in 64-bit mode only FS and GS are non-zero (SDM Vol. 1,
   * 3.4.2.1). `placeSegmentBases` may move them into shared memory (never
   * while running).
   */
  segBase: Float64Array<ArrayBufferLike> = new Float64Array(6);
  kernelGsBase = 0;

  cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
  cr2 = 0;
  cr3 = 0;
  cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
  efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
  cpl = 3;

  /**
   * x87 registers by physical number, as float64: 64-bit precision, not the
   * 80-bit extended format (README.md says where that shows).
   */
  readonly fpr = new Float64Array(8);
  fpTop = 0;
  /** One bit per physical register: 1 = empty (the abridged FXSAVE tag, inverted). */
  fpTag = 0xff;
  fcw = FCW_DEFAULT;
  /** Status word without TOP (bits 13-11 come from fpTop). */
  fsw = 0;
  /** MMX registers MM0-7 as (lo, hi); kept apart from the x87 stack (README.md). */
  readonly mmx = new Int32Array(16);
  /**
   * XMM0-15, four int32 lanes each, lane 0 least significant, then two
   * scratch registers (16, 17) where SSE handlers load memory operands so
   * that every operand is a register index. Float and byte views share the
   * buffer (little-endian hosts: x86-64 and arm64). `placeXmm` may move
   * them into shared memory (never while running).
   */
  xmm: Int32Array<ArrayBufferLike> = new Int32Array(XMM_LANES);
  xmmF32: Float32Array<ArrayBufferLike> = new Float32Array(this.xmm.buffer);
  xmmF64: Float64Array<ArrayBufferLike> = new Float64Array(this.xmm.buffer);
  xmmU8: Uint8Array<ArrayBufferLike> = new Uint8Array(this.xmm.buffer);
  xmmI8: Int8Array<ArrayBufferLike> = new Int8Array(this.xmm.buffer);
  xmmU16: Uint16Array<ArrayBufferLike> = new Uint16Array(this.xmm.buffer);
  xmmI16: Int16Array<ArrayBufferLike> = new Int16Array(this.xmm.buffer);
  xmmU32: Uint32Array<ArrayBufferLike> = new Uint32Array(this.xmm.buffer);
  mxcsr = MXCSR_DEFAULT;

  /**
   * Moves the register file into `to` (32 int32s, 8-byte aligned: register
   * r is the little-endian i64 at byte 8r), keeping its values: the soft
   * engine puts it in the machine's WebAssembly.Memory.
   */
  placeRegisters(to: Int32Array): void {
    if (to.length !== 32 || to.byteOffset % 8 !== 0) throw new RangeError('a register file is 32 int32s, 8-byte aligned');
    to.set(this.gpr);
    this.gpr = to;
  }

  /** Moves XMM0-15 and the scratch registers into `to` (XMM_LANES int32s, 16-byte aligned), keeping their values; every view follows. */
  placeXmm(to: Int32Array): void {
    if (to.length !== XMM_LANES || to.byteOffset % 16 !== 0) throw new RangeError(`the XMM file is ${XMM_LANES} int32s, 16-byte aligned`);
    to.set(this.xmm);
    const b = to.buffer, o = to.byteOffset, bytes = XMM_LANES * 4;
    this.xmm = to;
    this.xmmF32 = new Float32Array(b, o, bytes / 4);
    this.xmmF64 = new Float64Array(b, o, bytes / 8);
    this.xmmU8 = new Uint8Array(b, o, bytes);
    this.xmmI8 = new Int8Array(b, o, bytes);
    this.xmmU16 = new Uint16Array(b, o, bytes / 2);
    this.xmmI16 = new Int16Array(b, o, bytes / 2);
    this.xmmU32 = new Uint32Array(b, o, bytes / 4);
  }

  /** Moves the segment bases into `to` (6 float64s), keeping their values (as placeRegisters). */
  placeSegmentBases(to: Float64Array): void {
    if (to.length !== 6) throw new RangeError('segment bases are 6 float64s');
    to.set(this.segBase);
    this.segBase = to;
  }

  snapshot(): CpuStateSnapshot {
    return {
      gpr: Array.from(this.gpr), rip: this.rip, rflags: this.readRflagsForSnapshot(),
      segSel: Array.from(this.segSel), segBase: Array.from(this.segBase),
      cr0: this.cr0, cr2: this.cr2, cr3: this.cr3, cr4: this.cr4, efer: this.efer, cpl: this.cpl,
      fpr: Array.from(this.fpr), fpTop: this.fpTop, fpTag: this.fpTag, fcw: this.fcw, fsw: this.fsw,
      mmx: Array.from(this.mmx), xmm: Array.from(this.xmm.subarray(0, 64)), mxcsr: this.mxcsr, kernelGsBase: this.kernelGsBase,
    };
  }

  restore(s: CpuStateSnapshot): void {
    if (s.gpr.length !== 32 || s.xmm.length !== 64 || s.fpr.length !== 8 || s.mmx.length !== 16 || s.segSel.length !== 6 || s.segBase.length !== 6) {
      throw new RangeError('CPU snapshot: wrong register array length');
    }
    this.gpr.set(s.gpr);
    this.rip = s.rip;
    this.flagsBase = (s.rflags | FLAG_RESERVED1) >>> 0;
    this.lfOp = LF_NONE;
    this.segSel.set(s.segSel);
    this.segBase.set(s.segBase);
    this.cr0 = s.cr0; this.cr2 = s.cr2; this.cr3 = s.cr3; this.cr4 = s.cr4; this.efer = s.efer; this.cpl = s.cpl;
    this.fpr.set(s.fpr); this.fpTop = s.fpTop & 7; this.fpTag = s.fpTag & 0xff; this.fcw = s.fcw; this.fsw = s.fsw;
    this.mmx.set(s.mmx); this.xmm.set(s.xmm); this.mxcsr = s.mxcsr; this.kernelGsBase = s.kernelGsBase;
  }

  /** Overridden by flags-aware code; the base class stores flags eagerly only. */
  protected readRflagsForSnapshot(): number {
    return this.flagsBase;
  }

  /** A GPR as an unsigned bigint (tests, traces; not the hot path). */
  reg64(r: number): bigint {
    return (BigInt((this.gpr[2 * r + 1] ?? 0) >>> 0) << 32n) | BigInt((this.gpr[2 * r] ?? 0) >>> 0);
  }

  setReg64(r: number, v: bigint): void {
    this.gpr[2 * r] = Number(BigInt.asIntN(32, v));
    this.gpr[2 * r + 1] = Number(BigInt.asIntN(32, v >> 32n));
  }
}
