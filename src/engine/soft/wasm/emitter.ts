/**
 * The emitter of wasm regions (region.ts): the layout the generated code
 * shares with the engine (register file, scratch block, TLB and chain cache
 * offsets), the imports it calls, and `Emitter`, the function under
 * construction with its locals and the building blocks every lowering uses:
 * registers, effective addresses, TLB-checked loads and stores, flag
 * records, conditions, and the ways out (to a block, out of the region, or
 * chained into the next one).
 */
import { BASE_RIP, OP_GPR, OP_MEM } from '../decode/index.js';
import { CHAIN_SETS, TLB_CHAIN_AT } from '../tlb.js';
import type { Op } from '../op.js';
import { PAGE_SIZE, TLB_ENTRIES, TLB_SIZE } from '../mmu.js';
import { LF_ADD, LF_LOGIC, LF_SUB, SEG_FS, SEG_GS, XMM_LANES } from '../state.js';
import { Code, F64, I32, I64, Op as W, Simd, V128, type ValType } from './encode.js';

/** Bytes of the register file at the start of a vCPU's state block. */
export const REGISTER_BYTES = 128;
/** Bytes of the scratch block after it. */
export const SCRATCH_BYTES = 192;
// Scratch layout, from st + REGISTER_BYTES.
export const S = REGISTER_BYTES;
export const S_EXIT_KIND = S + 0; // i32: 0 target at S_TARGET, 1 the engine set RIP
export const S_TARGET = S + 8; // f64: where control goes after the region
export const S_AT = S + 16; // i32: page offset of the instruction at a fault point, or -1 (a handler keeps RIP)
export const S_RETIRED = S + 20; // i32: instructions retired before it
export const S_DIRTY = S + 24; // i32: the flag record below is newer than the Cpu's
// The lazy-flag record (state.ts), laid out so that a record takes few stores: dirty and lfOp share an i64, as do
// lfSize and lfAux; dst, src and result are little-endian i64s (lo, hi).
export const S_LF_OP = S + 28; // i32
export const S_LF_SIZE = S + 32; // i32
export const S_LF_AUX = S + 36; // i32
export const S_LF_DST = S + 40; // i64
export const S_LF_SRC = S + 48; // i64
export const S_LF_RES = S + 56; // i64
export const S_VALUE = S + 64; // i64: a value read through the engine
export const S_BASE = S + 72; // f64: page base of the region running (regions chain into one another)
export const S_GEN = S + 80; // i32: the Cpu's code generation (Cpu.codeGeneration)
export const S_DF = S + 84; // i32: RFLAGS.DF, as the engine last left it (set at every entry and after every handler)
export const S_SEG = S + 128; // 6 × f64: the segment bases (CpuState.segBase)
/** The XMM file after the scratch block (CpuState.placeXmm): register r at st + X + 16r, 16-byte aligned. */
export const X = REGISTER_BYTES + SCRATCH_BYTES;
export const XMM_BYTES = XMM_LANES * 4;
/** The XMM register a 16-byte load the TLB could not serve lands in (sse.ts's scratch register). */
export const XMM_SCRATCH = 16;
/**
 * TLB block layout (cpu.ts placeTlb): rTag, wTag (f64, the engine's), rOff,
 * wOff (i32), rTagW, wTagW (i64, compared here), each TLB_ENTRIES long: way
 * 0 of every set, then way 1.
 */
export const T_ROFF = TLB_ENTRIES * 16, T_WOFF = TLB_ENTRIES * 20, T_RTAGW = TLB_ENTRIES * 24, T_WTAGW = TLB_ENTRIES * 32;

/** A two-operand ALU form: the record it leaves, whether it writes its destination, its wasm operators. */
export interface AluForm { kind: 'add' | 'sub' | 'logic'; writes: boolean; o64: number; o32: number }
export const ALU: Readonly<Record<string, AluForm>> = {
  alu_add: { kind: 'add', writes: true, o64: W.i64Add, o32: W.i32Add },
  alu_sub: { kind: 'sub', writes: true, o64: W.i64Sub, o32: W.i32Sub },
  alu_cmp: { kind: 'sub', writes: false, o64: W.i64Sub, o32: W.i32Sub },
  alu_and: { kind: 'logic', writes: true, o64: W.i64And, o32: W.i32And },
  alu_or: { kind: 'logic', writes: true, o64: W.i64Or, o32: W.i32Or },
  alu_xor: { kind: 'logic', writes: true, o64: W.i64Xor, o32: W.i32Xor },
  alu_test: { kind: 'logic', writes: false, o64: W.i64And, o32: W.i32And },
};

/** A memory operand with 64-bit addressing (an FS or GS base is added; other segments have none in 64-bit mode). */
export function plainMem(op: Op): boolean {
  return op.asize === 8 && op.base >= -1 && op.base <= BASE_RIP && op.index <= 15;
}

/** A flag record a lowered ALU form left in locals, for the conditions after it in the same basic block. */
export interface Known {
  /** 'result': only ZF, SF and PF follow from the result here (INC/DEC, shifts, IMUL); the rest asks the engine. */
  kind: 'add' | 'sub' | 'logic' | 'result';
  /** Sizes 1 and 2 keep their operands in the 32-bit locals shifted up to bit 31 (lowerSmall). */
  size: 1 | 2 | 4 | 8;
  /** The stored record is LF_CO: CF, AF and OF are in its aux (shifts, IMUL, rotates). */
  co?: boolean;
}

export class Emitter {
  readonly c = new Code(6);
  // Parameters.
  readonly OFF = 0; readonly BUDGET = 1; readonly BASE = 2; readonly ST = 3; readonly TLB = 4; readonly DONE = 5;
  readonly PC: number; readonly N: number; readonly STOP: number;
  /** Where a chained exit goes (i64 linear address): the code after the `chain` block. */
  readonly TARGET: number;
  readonly EA: number; readonly VPN: number; readonly T: number; readonly FA: number;
  readonly A: number; readonly B: number; readonly X: number;
  readonly D8: number; readonly S8: number; readonly R8: number; readonly D4: number; readonly S4: number; readonly R4: number;
  /** An i32 temporary no flag record uses. */
  readonly V32: number;
  /** Set when the entry dispatch runs for a branch inside the region (not at entry): a miss then chains. */
  readonly DYN: number;
  /** A v128 temporary (an SSE source operand). */
  readonly V: number;
  /** How many handler calls are the rare paths of lowered instructions (viaHandler). */
  slowPaths = 0;

  /**
   * `index`: the region's blocks by page offset; `calls`: the handler calls
   * of the module the function joins, by the index the import receives
   * (this function's are pushed on).
   */
  constructor(readonly index: Map<number, number>, readonly calls: Op[] = []) {
    const c = this.c;
    const l = (t: ValType): number => c.local(t);
    this.PC = l(I32); this.N = l(I32); this.STOP = l(I32);
    this.EA = l(I64); this.VPN = l(I64); this.T = l(I32); this.FA = l(I32);
    this.A = l(I64); this.B = l(I64); this.X = l(I64);
    this.D8 = l(I64); this.S8 = l(I64); this.R8 = l(I64); this.D4 = l(I32); this.S4 = l(I32); this.R4 = l(I32);
    this.V32 = l(I32);
    this.TARGET = l(I64);
    this.DYN = l(I32);
    this.V = l(V128);
  }

  reg(r: number): void {
    this.c.get(this.ST).mem(W.i64Load, 8 * r);
  }

  /** Stores the i64 that `value` leaves on the stack into register r. */
  setReg(r: number, value: () => void): void {
    this.c.get(this.ST);
    value();
    this.c.mem(W.i64Store, 8 * r);
  }

  scratchI32(offset: number, value: () => void): void {
    this.c.get(this.ST);
    value();
    this.c.mem(W.i32Store, offset);
  }

  /**
   * Leaves the region with RIP = base + `target` after `retired` (a local
   * expression) instructions; with `chain`, into the region compiled there
   * if the chain cache knows one (the `chain` tail). Not for leaving at a
   * block the budget cannot fit, which would only come back.
   */
  exitTo(target: number, retired: () => void, chain: boolean): void {
    const c = this.c;
    if (chain) {
      retired();
      c.set(this.N);
      c.get(this.BASE).f64(target).op(W.f64Add).op(W.i64TruncF64S).set(this.TARGET).br('chain');
      return;
    }
    c.get(this.ST).get(this.BASE).f64(target).op(W.f64Add).mem(W.f64Store, S_TARGET);
    this.scratchI32(S_EXIT_KIND, () => c.i32(0));
    retired();
    c.op(W.return);
  }

  /**
   * The tail every chained exit branches to, N and TARGET set: a tail call
   * of the region the chain cache holds for TARGET, if it was made in the
   * current code generation and the engine did not ask to stop; else back
   * to the run loop with RIP = TARGET.
   */
  chainTail(): void {
    const c = this.c;
    // The set (region.ts chainSet); its second way when the first does not hold TARGET.
    c.get(this.TARGET).op(W.i32WrapI64).tee(this.T).get(this.T).i32(11).op(W.i32ShrU).op(W.i32Xor);
    c.i32(CHAIN_SETS - 1).op(W.i32And).i32(5).op(W.i32Shl).get(this.TLB).op(W.i32Add).set(this.FA);
    c.get(this.FA).mem(W.i64Load, TLB_CHAIN_AT).get(this.TARGET).op(W.i64Ne);
    c.open(W.if, 'way').get(this.FA).i32(16).op(W.i32Add).set(this.FA).close('way');
    c.get(this.FA).mem(W.i64Load, TLB_CHAIN_AT).get(this.TARGET).op(W.i64Eq);
    c.get(this.FA).mem(W.i32Load, TLB_CHAIN_AT + 12).get(this.ST).mem(W.i32Load, S_GEN).op(W.i32Eq).op(W.i32And);
    c.get(this.STOP).op(W.i32Eqz).op(W.i32And);
    c.open(W.if, 'chained');
    // The entry's word: the slot (bits 0-15), the index + 1 of the block there (16 and up), passed on above the page offset.
    c.get(this.FA).mem(W.i32Load, TLB_CHAIN_AT + 8).set(this.V32);
    c.get(this.T).i32(PAGE_SIZE - 1).op(W.i32And).get(this.V32).i32(-0x10000).op(W.i32And).op(W.i32Or).get(this.BUDGET);
    c.get(this.TARGET).i64n(-PAGE_SIZE).op(W.i64And).op(W.f64ConvertI64S);
    c.get(this.ST).get(this.TLB).get(this.N);
    c.get(this.V32).i32(0xffff).op(W.i32And);
    c.callIndirect(TYPE_RUN, 0, true);
    c.close('chained');
    c.get(this.ST).get(this.TARGET).op(W.f64ConvertI64S).mem(W.f64Store, S_TARGET);
    this.scratchI32(S_EXIT_KIND, () => c.i32(0));
    c.get(this.N);
  }

  /**
   * Goes to page offset `t`: a block of the region (dispatch; or nothing
   * when it is `fallInto`, the block whose code follows), or out.
   */
  goTo(t: number, retired: () => void, fallInto = -1): void {
    const k = this.index.get(t);
    if (k !== undefined) {
      const c = this.c;
      retired();
      c.set(this.N);
      if (k !== fallInto) c.i32(k).set(this.PC).br('top');
    } else this.exitTo(t, retired, true);
  }

  /**
   * Goes to the linear address in i64 local `target`: a block of the region
   * when it lies in this page (the entry dispatch), else out (chaining).
   */
  dynamicGoto(target: number, retired: () => void): void {
    const c = this.c;
    retired();
    c.set(this.N);
    c.get(target).get(this.BASE).op(W.i64TruncF64S).op(W.i64Sub).set(this.VPN);
    // (Not when the engine asked to stop, during the branch's own memory access.)
    c.get(this.VPN).i64(PAGE_SIZE, 0).op(W.i64LtU).get(this.STOP).op(W.i32Eqz).op(W.i32And).open(W.if, 'here');
    c.get(this.VPN).op(W.i32WrapI64).set(this.OFF).i32(1).set(this.DYN).br('entry');
    c.close('here');
    c.get(target).set(this.TARGET).br('chain');
  }

  /** Linear address of a plainMem operand into EA; `e` is the page offset after the instruction (RIP-relative). */
  ea(op: Op, e: number): void {
    this.address(op, e);
    if (op.segment === SEG_FS || op.segment === SEG_GS) this.c.get(this.ST).mem(W.f64Load, S_SEG + 8 * op.segment).op(W.i64TruncF64S).op(W.i64Add);
    this.c.set(this.EA);
  }

  /** The effective address (no segment base) of a plainMem operand, as an i64 on the stack. */
  address(op: Op, e: number): void {
    const c = this.c;
    c.i64n(op.dispVal);
    if (op.base === BASE_RIP) c.get(this.BASE).f64(e).op(W.f64Add).op(W.i64TruncF64S).op(W.i64Add);
    else if (op.base >= 0) { this.reg(op.base); c.op(W.i64Add); }
    if (op.index >= 0) {
      this.reg(op.index);
      if (op.scale !== 0) c.i64(op.scale, 0).op(W.i64Shl);
      c.op(W.i64Add);
    }
  }

  /**
   * Leaves on the stack the frame address (i32) of EA for an access of
   * `size` bytes, or runs `miss` (which leaves what the hit path would,
   * `result` typed) when the TLB cannot serve it. One comparison per way:
   * the entry of EA's page against the page of the access's last byte,
   * which differs when the access crosses into the next page; a frame
   * outside the wasm memory has a tag that matches nothing (cpu.ts tagW).
   * Way 0 first, where the engine keeps the entry it used last.
   */
  private tlb(size: number, write: boolean, result: number, hit: () => void, miss: () => void): void {
    const c = this.c;
    const tags = write ? T_WTAGW : T_RTAGW, offs = write ? T_WOFF : T_ROFF;
    c.get(this.EA).i64(12, 0).op(W.i64ShrS).op(W.i32WrapI64).i32(TLB_SIZE - 1).op(W.i32And).set(this.T);
    c.get(this.TLB).get(this.T).i32(3).op(W.i32Shl).op(W.i32Add).mem(W.i64Load, tags);
    c.get(this.EA);
    if (size > 1) c.i64(size - 1, 0).op(W.i64Add);
    c.i64(12, 0).op(W.i64ShrS).tee(this.VPN).op(W.i64Eq);
    c.open(W.if, 'hit', result);
    c.get(this.TLB).get(this.T).i32(2).op(W.i32Shl).op(W.i32Add).mem(W.i32Load, offs);
    c.get(this.EA).op(W.i32WrapI64).i32(PAGE_SIZE - 1).op(W.i32And).op(W.i32Add);
    hit();
    c.else('hit');
    // The set's other way (the engine keeps the entry it used last in way 0).
    c.get(this.TLB).get(this.T).i32(3).op(W.i32Shl).op(W.i32Add).mem(W.i64Load, tags + 8 * TLB_SIZE).get(this.VPN).op(W.i64Eq);
    c.open(W.if, 'way1', result);
    c.get(this.TLB).get(this.T).i32(2).op(W.i32Shl).op(W.i32Add).mem(W.i32Load, offs + 4 * TLB_SIZE);
    c.get(this.EA).op(W.i32WrapI64).i32(PAGE_SIZE - 1).op(W.i32And).op(W.i32Add);
    hit();
    c.else('way1');
    miss();
    c.close('way1');
    c.close('hit');
  }

  /**
   * Calls the handler of `op` (page offsets `s` and `e`, the block's `k`th
   * instruction) through the import, which sets RIP and the next RIP and
   * pulls the flag record first; leaves its i32 result (1: leave the
   * region) on the stack.
   */
  callHandler(op: Op, s: number, e: number, k: number): void {
    const call = this.calls.length;
    this.calls.push(op);
    this.scratchI32(S_AT, () => this.c.i32(-1));
    this.scratchI32(S_RETIRED, () => this.c.get(this.N).i32(k).op(W.i32Add));
    this.c.i32(call).i32(s).i32(e).call(IMPORT_HANDLER);
  }

  /**
   * The rare path of a lowered instruction (a divide error, say): its
   * handler does the whole instruction and the region leaves after it.
   */
  viaHandler(op: Op, s: number, e: number, k: number): void {
    const c = this.c;
    this.slowPaths++;
    this.callHandler(op, s, e, k);
    c.open(W.if, 'left');
    this.leaveAfterHandler(k);
    c.close('left');
    this.exitTo(e, () => c.get(this.N).i32(k + 1).op(W.i32Add), false);
  }

  /**
   * The frame address (i32, in local `out`) of the `len` bytes (i64 local,
   * at least 1) at the linear address in i64 local `ea`, when the TLB maps
   * them all in one page for reading or writing; else -1.
   */
  rangeFrame(write: boolean, ea: number, len: number, out: number): void {
    const c = this.c;
    const tags = write ? T_WTAGW : T_RTAGW, offs = write ? T_WOFF : T_ROFF;
    c.get(ea).i64(12, 0).op(W.i64ShrS).op(W.i32WrapI64).i32(TLB_SIZE - 1).op(W.i32And).set(this.T);
    c.get(ea).get(len).op(W.i64Add).i64(1, 0).op(W.i64Sub).i64(12, 0).op(W.i64ShrS).set(this.VPN);
    // Way 0, else way 1: T becomes the entry that holds the page, if either does.
    c.get(this.TLB).get(this.T).i32(3).op(W.i32Shl).op(W.i32Add).mem(W.i64Load, tags).get(this.VPN).op(W.i64Ne);
    c.open(W.if, 'way1').get(this.T).i32(TLB_SIZE).op(W.i32Add).set(this.T).close('way1');
    c.get(this.TLB).get(this.T).i32(3).op(W.i32Shl).op(W.i32Add).mem(W.i64Load, tags).get(this.VPN).op(W.i64Eq);
    c.open(W.if, 'mapped', I32);
    c.get(this.TLB).get(this.T).i32(2).op(W.i32Shl).op(W.i32Add).mem(W.i32Load, offs);
    c.get(ea).op(W.i32WrapI64).i32(PAGE_SIZE - 1).op(W.i32And).op(W.i32Add);
    c.else('mapped');
    c.i32(-1);
    c.close('mapped');
    c.set(out);
  }

  /** Records the fault point before a call into the engine: RIP at offset `s`, `k` instructions of the block retired. */
  faultPoint(s: number, k: number): void {
    this.scratchI32(S_AT, () => this.c.i32(s));
    this.scratchI32(S_RETIRED, () => this.c.get(this.N).i32(k).op(W.i32Add));
  }

  /** Loads `size` bytes at EA, zero-extended, as an i64 on the stack. */
  load(size: number, s: number, k: number): void {
    const c = this.c;
    const o = size === 8 ? W.i64Load : size === 4 ? W.i64Load32U : size === 2 ? W.i64Load16U : W.i64Load8U;
    this.tlb(size, false, I64, () => { c.mem(o, 0); }, () => {
      this.faultPoint(s, k);
      c.i32(size).get(this.EA).op(W.f64ConvertI64S).call(IMPORT_READ).set(this.STOP);
      c.get(this.ST).mem(W.i64Load, S_VALUE);
    });
  }

  /** `store` after a read by the same instruction: a stop the read asked for outlives the store's own access. */
  storeAfterRead(size: number, s: number, k: number, value: () => void): void {
    const c = this.c;
    c.get(this.STOP).set(this.V32);
    this.store(size, s, k, value);
    c.get(this.STOP).get(this.V32).op(W.i32Or).set(this.STOP);
  }

  /** Leaves the region after a handler ran the block's `k`th instruction (it set RIP): exit kind 1, k + 1 retired. */
  leaveAfterHandler(k: number): void {
    const c = this.c;
    this.scratchI32(S_EXIT_KIND, () => c.i32(1));
    c.get(this.N).i32(k + 1).op(W.i32Add).op(W.return);
  }

  /** Stores the low `size` bytes of the i64 `value` leaves at EA. */
  store(size: number, s: number, k: number, value: () => void): void {
    const c = this.c;
    const o = size === 8 ? W.i64Store : size === 4 ? W.i64Store32 : size === 2 ? W.i64Store16 : W.i64Store8;
    this.tlb(size, true, 0x40, () => { value(); c.mem(o, 0); }, () => {
      this.faultPoint(s, k);
      value();
      c.set(this.X);
      c.i32(size).get(this.EA).op(W.f64ConvertI64S).get(this.X).op(W.i32WrapI64).get(this.X).i64(32, 0).op(W.i64ShrU).op(W.i32WrapI64);
      c.call(IMPORT_WRITE).set(this.STOP);
    });
  }

  /**
   * Operand 1 of `op` when it is a GPR or a plain memory operand: its low
   * `size` bytes, zero-extended, as an i64 on the stack; says which it was,
   * or undefined (nothing emitted) for any other operand.
   */
  readRm(op: Op, size: number, s: number, e: number, k: number): 'memory' | 'register' | undefined {
    const c = this.c;
    if (op.kind1 === OP_MEM) {
      if (!plainMem(op)) return undefined;
      this.ea(op, e);
      this.load(size, s, k);
      return 'memory';
    }
    if (op.kind1 !== OP_GPR || op.reg1 >= 16) return undefined;
    this.reg(op.reg1);
    if (size < 8) c.i64n(size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff).op(W.i64And);
    return 'register';
  }

  /** XMM register r as a v128 on the stack. */
  xmm(r: number): void {
    this.c.get(this.ST).simdMem(Simd.v128Load, X + 16 * r);
  }

  /** Stores the v128 that `value` leaves on the stack into XMM register r. */
  setXmm(r: number, value: () => void): void {
    this.c.get(this.ST);
    value();
    this.c.simdMem(Simd.v128Store, X + 16 * r);
  }

  /** Loads the 16 bytes at EA as a v128; a miss loads them through the engine into the scratch XMM register, all or nothing. */
  load128(s: number, k: number): void {
    const c = this.c;
    this.tlb(16, false, V128, () => { c.simdMem(Simd.v128Load, 0); }, () => {
      this.faultPoint(s, k);
      c.get(this.EA).op(W.f64ConvertI64S).i32(XMM_SCRATCH).call(IMPORT_LOAD128).set(this.STOP);
      this.xmm(XMM_SCRATCH);
    });
  }

  /** Stores XMM register r at EA (16 bytes); a miss stores through the engine, which checks both pages first. */
  store128(r: number, s: number, k: number): void {
    const c = this.c;
    this.tlb(16, true, 0x40, () => { this.xmm(r); c.simdMem(Simd.v128Store, 0); }, () => {
      this.faultPoint(s, k);
      c.get(this.EA).op(W.f64ConvertI64S).i32(r).call(IMPORT_STORE128).set(this.STOP);
    });
  }

  /** After an instruction that went to the engine for memory: leave if it asked to stop. */
  stopCheck(e: number, k: number): void {
    const c = this.c;
    c.get(this.STOP).open(W.if, 'stop');
    this.exitTo(e, () => c.get(this.N).i32(k + 1).op(W.i32Add), false);
    c.close('stop');
  }

  /** D, S and R of `size` (the D8/S8/R8 or D4/S4/R4 locals) from i64 locals A and B: R = D op S, `o64` or `o32`. */
  arith(size: 4 | 8, o64: number, o32: number): void {
    const c = this.c;
    if (size === 8) c.get(this.A).tee(this.D8).get(this.B).tee(this.S8).op(o64).set(this.R8);
    else c.get(this.A).op(W.i32WrapI64).tee(this.D4).get(this.B).op(W.i32WrapI64).tee(this.S4).op(o32).set(this.R4);
  }

  /** Stores the lazy-flag record of an ALU form whose dst, src and result are in the D/S/R locals of `size`. */
  record(kind: 'add' | 'sub' | 'logic', size: 4 | 8): void {
    const [d, s, r] = size === 8 ? [this.D8, this.S8, this.R8] : [this.D4, this.S4, this.R4];
    const lf = kind === 'add' ? LF_ADD : kind === 'sub' ? LF_SUB : LF_LOGIC;
    this.recordOf(lf, size, kind === 'logic' ? -1 : d, kind === 'logic' ? -1 : s, r, 0);
  }

  /**
   * Stores a lazy-flag record (state.ts format) in the scratch block, marked
   * newer than the Cpu's: `lf`, `size`, dst/src/result from locals of the
   * size's type (-1: not written), aux a constant or an i32 expression.
   * Five stores at most.
   */
  recordOf(lf: number, size: 1 | 2 | 4 | 8, d: number, s: number, r: number, aux: number | (() => void)): void {
    const c = this.c;
    const put64 = (offset: number, l: number): void => {
      c.get(this.ST).get(l);
      if (size !== 8) c.op(W.i64ExtendI32U);
      c.mem(W.i64Store, offset);
    };
    c.get(this.ST).i64(1, lf).mem(W.i64Store, S_DIRTY);
    if (typeof aux === 'number') c.get(this.ST).i64(size, aux).mem(W.i64Store, S_LF_SIZE);
    else {
      this.scratchI32(S_LF_SIZE, () => c.i32(size));
      this.scratchI32(S_LF_AUX, aux);
    }
    if (d >= 0) put64(S_LF_DST, d);
    if (s >= 0) put64(S_LF_SRC, s);
    put64(S_LF_RES, r);
  }

  /** Condition cc as an i32: from a known record where it can, else from the engine (which reads the stored record). */
  test(f: Known | undefined, cc: number): void {
    const base = cc & ~1;
    if (f !== undefined && (f.kind !== 'result' || base === 4 || base === 8 || base === 10)) this.condition(f, cc);
    else this.c.get(this.ST).i32(cc).call(IMPORT_COND);
  }

  /** Condition cc (0-15) of a known record, as an i32 on the stack. */
  condition(f: Known, cc: number): void {
    const c = this.c;
    const w = f.size === 8;
    const [d, s, r] = w ? [this.D8, this.S8, this.R8] : [this.D4, this.S4, this.R4];
    const o = (x: keyof typeof W8): number => (w ? W8[x] : W4[x]);
    const zero = (): void => { if (w) c.i64(0, 0); else c.i32(0); };
    const zf = (): void => { c.get(r).op(o('eqz')); };
    const sf = (): void => { c.get(r); zero(); c.op(o('ltS')); };
    const cf = (): void => {
      if (f.kind === 'sub') c.get(d).get(s).op(o('ltU'));
      else if (f.kind === 'add') c.get(r).get(d).op(o('ltU'));
      else c.i32(0);
    };
    const of = (): void => {
      if (f.kind === 'logic') { c.i32(0); return; }
      if (f.kind === 'sub') c.get(d).get(s).op(o('xor')).get(d).get(r).op(o('xor')).op(o('and'));
      else c.get(d).get(r).op(o('xor')).get(s).get(r).op(o('xor')).op(o('and'));
      zero();
      c.op(o('ltS'));
    };
    const pf = (): void => {
      c.get(r);
      if (w) c.op(W.i32WrapI64);
      else if (f.size < 4) c.i32(32 - 8 * f.size).op(W.i32ShrU);
      c.i32(0xff).op(W.i32And).op(W.i32Popcnt).i32(1).op(W.i32And).op(W.i32Eqz);
    };
    const sub = f.kind === 'sub';
    switch (cc & ~1) {
      case 0: of(); break;
      case 2: cf(); break;
      case 4: zf(); break;
      case 6: if (sub) c.get(d).get(s).op(o('leU')); else { cf(); zf(); c.op(W.i32Or); } break;
      case 8: sf(); break;
      case 10: pf(); break;
      case 12: if (sub) c.get(d).get(s).op(o('ltS')); else { sf(); of(); c.op(W.i32Xor); } break;
      default: if (sub) c.get(d).get(s).op(o('leS')); else { sf(); of(); c.op(W.i32Xor); zf(); c.op(W.i32Or); } break;
    }
    if ((cc & 1) !== 0) c.op(W.i32Eqz);
  }
}

export const W8 = { eqz: W.i64Eqz, ltS: W.i64LtS, ltU: W.i64LtU, leS: W.i64LeS, leU: W.i64LeU, xor: W.i64Xor, and: W.i64And } as const;
export const W4 = { eqz: W.i32Eqz, ltS: W.i32LtS, ltU: W.i32LtU, leS: W.i32LeS, leU: W.i32LeU, xor: W.i32Xor, and: W.i32And } as const;

// Imported functions, by index; the region's own function follows them.
export const IMPORT_HANDLER = 0, IMPORT_COND = 1, IMPORT_READ = 2, IMPORT_WRITE = 3, IMPORT_NONCANON = 4, IMPORT_CARRY_OVERFLOW = 5;
export const IMPORT_LOAD128 = 6, IMPORT_STORE128 = 7, IMPORTED_FUNCTIONS = 8;
export const TYPES = [
  { params: [I32, I32, I32], results: [I32] }, // handler(k, s, e) -> leave
  { params: [I32, I32], results: [I32] }, // cond(st, cc) (cond.ts)
  { params: [I32, F64], results: [I32] }, // read(size, address) -> stop
  { params: [I32, F64, I32, I32], results: [I32] }, // write(size, address, lo, hi) -> stop
  { params: [I32, I32], results: [] }, // nonCanonical(s, hi)
  { params: [I32, I32, I32], results: [] }, // carryOverflow(st, mask, bits): CF and/or OF (bit 11) into the flag record (cond.ts)
  { params: [I32, I32, F64, I32, I32, I32], results: [I32] }, // run(off, budget, base, st, tlb, done) -> retired, done included
  { params: [F64, I32], results: [I32] }, // load128(address, xmm) / store128(address, xmm) -> stop
] as const;
export const TYPE_RUN = 6;
