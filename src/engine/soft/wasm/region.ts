/**
 * Regions compiled to WebAssembly: the same regions as block.ts (basic
 * blocks of one code page, a dispatch loop over their page offsets), but
 * emitted as a wasm function that V8 compiles in tens of microseconds
 * (Liftoff) instead of TurboFan's tens of milliseconds, with guest
 * registers as native i64s.
 *
 * What the function reaches, all in the machine's WebAssembly.Memory
 * (engine.ts placeInWasm): guest RAM, the vCPU's register file (16 × i64
 * at `st`), a scratch block after it (exit target, fault point, the
 * lazy-flag record, a value from the engine), and the current privilege
 * level's TLB (tags and frame offsets at `tlb`, cpu.ts placeTlb).
 *
 * Lowered forms: MOV between registers, immediates and memory, ADD/SUB/
 * CMP/AND/OR/XOR/TEST with register, immediate and memory operands
 * (8/16/32/64 bits; read-modify-write on memory at 32/64), ADC/SBB,
 * INC/DEC, shifts and rotates by an immediate, NOT/NEG/BSWAP, IMUL r64,
 * MOVZX/MOVSX/MOVSXD, SETcc, CMOVcc, LEA, PUSH/POP r64, Jcc, JMP rel, CALL
 * rel, RET, NOP; memory operands may be FS/GS-relative. The rest calls its handler through one imported function, exactly
 * as a JS region does. Memory: the TLB hit path inline; a miss, a page
 * crossing or MMIO goes to the Cpu accessors through an import (which fill
 * the TLB, fault or reach the device).
 *
 * Flags: a lowered ALU form stores the lazy-flag record in the scratch
 * block (the JS format of state.ts, `dirty` set) and keeps dst, src and
 * result in locals, from which a condition later in the same basic block
 * is computed directly. Anything else that reads flags — a handler, a
 * condition with no known producer — first copies the record into the Cpu
 * (`pullFlags`), as does every exit.
 *
 * Chaining: every region has a slot in one function table per machine
 * memory. Entering a region from the run loop records (linear address,
 * slot, code generation) in the current privilege level's chain cache; a
 * region leaving for an address the cache holds in the current generation
 * tail-calls that region (return_call_indirect) with the instructions
 * retired so far, so control stays in wasm until the budget runs out, a
 * handler ends the region, or the cache misses. Whatever could change the
 * code behind an address (TLB flushes, dropped code, a decoding mode)
 * moves the Cpu's code generation on, which empties every cache at once.
 */
import { BASE_RIP, HANDLER_NAMES, MODE_64, OP_GPR, OP_IMM, OP_MEM, OP_REL } from '../decode/index.js';
import { SEG_FS, SEG_GS } from '../state.js';
import { CHAIN_ENTRIES, type Cpu, TLB_AREA_BYTES, TLB_CHAIN_AT } from '../cpu.js';
import type { Op } from '../op.js';
import { type Block, type BlockFn, jit, plain64 } from '../block.js';
import { cond, setCarryOverflow } from '../flags.js';
import { checkCanonicalTarget } from '../ops/branch.js';
import { PAGE_SIZE, TLB_SIZE } from '../mmu.js';
import { FLAG_AF, FLAG_CF, FLAG_OF, LF_ADC, LF_ADD, LF_CO, LF_DEC, LF_INC, LF_LOGIC, LF_SBB, LF_SUB } from '../state.js';
import { reserveWasm, wasmApi, type WasmMemory, type WasmTable } from '../../../memory/index.js';
import { Code, encodeModule, F64, I32, I64, Op as W, type ValType } from './encode.js';

/** Bytes of the register file at the start of a vCPU's state block. */
export const REGISTER_BYTES = 128;
/** Bytes of the scratch block after it. */
export const SCRATCH_BYTES = 192;
// Scratch layout, from st + REGISTER_BYTES.
const S = REGISTER_BYTES;
const S_EXIT_KIND = S + 0; // i32: 0 target at S_TARGET, 1 the engine set RIP
const S_TARGET = S + 8; // f64: where control goes after the region
const S_AT = S + 16; // i32: page offset of the instruction at a fault point, or -1 (a handler keeps RIP)
const S_RETIRED = S + 20; // i32: instructions retired before it
const S_DIRTY = S + 24; // i32: the flag record below is newer than the Cpu's
const S_LF = S + 28; // 9 × i32: lfOp, lfSize, lfDst, lfDstHi, lfSrc, lfSrcHi, lfRes, lfResHi, lfAux
const S_VALUE = S + 64; // i64: a value read through the engine
const S_BASE = S + 72; // f64: page base of the region running (regions chain into one another)
const S_GEN = S + 80; // i32: the Cpu's code generation (Cpu.codeGeneration)
const S_SEG = S + 128; // 6 × f64: the segment bases (CpuState.segBase)
/** TLB block layout (cpu.ts placeTlb): rTag, wTag (f64), rOff, wOff (i32). */
const T_RTAG = 0, T_WTAG = TLB_SIZE * 8, T_ROFF = TLB_SIZE * 16, T_WOFF = TLB_SIZE * 20;

const ALU: Readonly<Record<string, 'add' | 'sub' | 'cmp' | 'and' | 'or' | 'xor' | 'test'>> = {
  alu_add: 'add', alu_sub: 'sub', alu_cmp: 'cmp', alu_and: 'and', alu_or: 'or', alu_xor: 'xor', alu_test: 'test',
};

/**
 * The regions of one machine's memory that others can chain into: a slot
 * each in one function table, which every region module imports. When the
 * table is full it is emptied (stale regions must not live on through it)
 * and every CPU's chain cache with it; regions still in use take a new
 * slot at their next entry from the run loop.
 */
interface ChainTable {
  readonly table: WasmTable;
  next: number;
  epoch: number;
  readonly cpus: Cpu[];
}

/** Slots of a chain table before it is emptied. */
const CHAIN_SLOTS = 16384;
const chainTables = new WeakMap<WasmMemory, ChainTable>();

/** The views of the machine's memory a wrapper reads and writes, and its chain table (one per Cpu). */
export interface WasmState {
  readonly memory: WasmMemory;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly chains: ChainTable;
  /** Entries into compiled regions from the run loop (the others chained). */
  entries: number;
}

/**
 * Puts `cpu`'s register file, scratch block and read/write TLBs in `memory`
 * (after what it holds), where regions compiled here reach them; returns
 * false, leaving the CPU as it was, when the memory is full.
 */
export function placeInWasm(cpu: Cpu, memory: WasmMemory): boolean {
  const area = reserveWasm(memory, REGISTER_BYTES + SCRATCH_BYTES + TLB_AREA_BYTES);
  if (area === undefined) return false;
  cpu.placeRegisters(new Int32Array(area.buffer, area.byteOffset, 32));
  cpu.placeSegmentBases(new Float64Array(area.buffer, area.byteOffset + S_SEG, 6));
  cpu.placeTlb(area.subarray(REGISTER_BYTES + SCRATCH_BYTES));
  const generation = new Int32Array(area.buffer, area.byteOffset + S_GEN, 1);
  generation[0] = cpu.codeGeneration[0] as number;
  cpu.codeGeneration = generation;
  let chains = chainTables.get(memory);
  if (chains === undefined) {
    chains = { table: new wasmApi.Table({ element: 'anyfunc', initial: 0, maximum: CHAIN_SLOTS }), next: 0, epoch: 0, cpus: [] };
    chainTables.set(memory, chains);
  }
  chains.cpus.push(cpu);
  cpu.wasm = { memory, i32: new Int32Array(area.buffer), f64: new Float64Array(area.buffer), chains, entries: 0 };
  return true;
}

/** Gives `run` a slot in the chain table (emptying the table first when it is full); returns the slot. */
function register(chains: ChainTable, run: unknown): number {
  if (chains.next === CHAIN_SLOTS) {
    for (let k = 0; k < chains.table.length; k++) chains.table.set(k, null);
    chains.next = 0;
    chains.epoch++;
    for (const c of chains.cpus) c.newCodeGeneration();
  }
  if (chains.next === chains.table.length) chains.table.grow(Math.min(1024, CHAIN_SLOTS - chains.table.length));
  chains.table.set(chains.next, run);
  return chains.next++;
}

/** The chain cache entry of linear address `a` (low 32 bits as int32 `x`): its byte offset from the cache's start. */
function chainEntry(x: number): number {
  return ((x ^ (x >>> 10)) & (CHAIN_ENTRIES - 1)) << 4;
}

/** Shared by every region's imports: the Cpu running and its state block. */
const ctx: { c: Cpu | undefined; st: number; i32: Int32Array; f64: Float64Array } = {
  c: undefined, st: 0, i32: new Int32Array(0), f64: new Float64Array(0),
};

/** Page base of the region running (chained regions each store theirs on entry). */
function runningBase(): number {
  return ctx.f64[(ctx.st + S_BASE) >> 3] as number;
}

/** Copies the flag record a region left in the scratch block into the Cpu, if it is newer. */
function pullFlags(c: Cpu, i32: Int32Array, st: number): void {
  const k = (st + S_DIRTY) >> 2;
  if (i32[k] === 0) return;
  i32[k] = 0;
  const f = (st + S_LF) >> 2;
  c.lfOp = i32[f] as number;
  c.lfSize = i32[f + 1] as number;
  c.lfDst = i32[f + 2] as number;
  c.lfDstHi = i32[f + 3] as number;
  c.lfSrc = i32[f + 4] as number;
  c.lfSrcHi = i32[f + 5] as number;
  c.lfRes = i32[f + 6] as number;
  c.lfResHi = i32[f + 7] as number;
  c.lfAux = i32[f + 8] as number;
}

function importCond(cc: number): number {
  const c = ctx.c as Cpu;
  pullFlags(c, ctx.i32, ctx.st);
  return cond(c, cc) ? 1 : 0;
}

/** A read the TLB could not serve: the value goes to the scratch block; returns 1 if the engine asked to stop. */
function importRead(size: number, a: number): number {
  const c = ctx.c as Cpu;
  const v = ctx.st + S_VALUE;
  let lo: number, hi = 0;
  if (size === 8) {
    lo = c.read64(a);
    hi = c.hi;
  } else lo = size === 4 ? c.read32(a) : size === 2 ? c.read16(a) : c.read8(a);
  ctx.i32[v >> 2] = lo;
  ctx.i32[(v >> 2) + 1] = hi;
  return c.stopRequested !== 0 ? 1 : 0;
}

function importWrite(size: number, a: number, lo: number, hi: number): number {
  const c = ctx.c as Cpu;
  if (size === 8) c.write64(a, lo, hi);
  else if (size === 4) c.write32(a, lo);
  else if (size === 2) c.write16(a, lo & 0xffff);
  else c.write8(a, lo & 0xff);
  return c.stopRequested !== 0 ? 1 : 0;
}

/** A rotate's CF and OF (bit 11) into a flag record only the Cpu knows. */
function importCarryOverflow(bits: number): void {
  const c = ctx.c as Cpu;
  pullFlags(c, ctx.i32, ctx.st);
  setCarryOverflow(c, FLAG_CF | FLAG_OF, bits);
}

/** A branch target whose high half is not canonical: #GP at the branch (offset `s`). */
function importNonCanonical(s: number, hi: number): void {
  const c = ctx.c as Cpu;
  c.rip = runningBase() + s;
  checkCanonicalTarget(c, hi);
}

/** A memory operand with 64-bit addressing (an FS or GS base is added; other segments have none in 64-bit mode). */
function plainMem(op: Op): boolean {
  return op.asize === 8 && op.base >= -1 && op.base <= BASE_RIP && op.index <= 15;
}

/** A flag record a lowered ALU form left in locals, for the conditions after it in the same basic block. */
interface Known {
  /** 'result': only ZF, SF and PF follow from the result here (INC/DEC, shifts, IMUL); the rest asks the engine. */
  kind: 'add' | 'sub' | 'logic' | 'result';
  /** Sizes 1 and 2 keep their operands in the 32-bit locals shifted up to bit 31 (lowerSmall). */
  size: 1 | 2 | 4 | 8;
  /** The stored record is LF_CO: CF, AF and OF are in its aux (shifts, IMUL, rotates). */
  co?: boolean;
}

class Emitter {
  readonly c = new Code(6);
  // Parameters.
  readonly OFF = 0; readonly BUDGET = 1; readonly BASE = 2; readonly ST = 3; readonly TLB = 4; readonly DONE = 5;
  readonly PC: number; readonly N: number; readonly STOP: number;
  /** Where a chained exit goes (i64 linear address): the code after the `chain` block. */
  readonly TARGET: number;
  readonly EA: number; readonly VPN: number; readonly T: number; readonly MO: number; readonly FA: number;
  readonly A: number; readonly B: number; readonly X: number;
  readonly D8: number; readonly S8: number; readonly R8: number; readonly D4: number; readonly S4: number; readonly R4: number;
  /** An i32 temporary no flag record uses. */
  readonly V32: number;
  /** Handler calls: the ops, by the index the import receives. */
  readonly calls: Op[] = [];

  constructor(readonly index: Map<number, number>) {
    const c = this.c;
    const l = (t: ValType): number => c.local(t);
    this.PC = l(I32); this.N = l(I32); this.STOP = l(I32);
    this.EA = l(I64); this.VPN = l(I64); this.T = l(I32); this.MO = l(I32); this.FA = l(I32);
    this.A = l(I64); this.B = l(I64); this.X = l(I64);
    this.D8 = l(I64); this.S8 = l(I64); this.R8 = l(I64); this.D4 = l(I32); this.S4 = l(I32); this.R4 = l(I32);
    this.V32 = l(I32);
    this.TARGET = l(I64);
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
    c.get(this.TARGET).op(W.i32WrapI64).tee(this.T).get(this.T).i32(10).op(W.i32ShrU).op(W.i32Xor);
    c.i32(CHAIN_ENTRIES - 1).op(W.i32And).i32(4).op(W.i32Shl).get(this.TLB).op(W.i32Add).set(this.FA);
    c.get(this.FA).mem(W.f64Load, TLB_CHAIN_AT).get(this.TARGET).op(W.f64ConvertI64S).op(W.f64Eq);
    c.get(this.FA).mem(W.i32Load, TLB_CHAIN_AT + 12).get(this.ST).mem(W.i32Load, S_GEN).op(W.i32Eq).op(W.i32And);
    c.get(this.STOP).op(W.i32Eqz).op(W.i32And);
    c.open(W.if, 'chained');
    c.get(this.T).i32(PAGE_SIZE - 1).op(W.i32And).get(this.BUDGET);
    c.get(this.TARGET).i64n(-PAGE_SIZE).op(W.i64And).op(W.f64ConvertI64S);
    c.get(this.ST).get(this.TLB).get(this.N);
    c.get(this.FA).mem(W.i32Load, TLB_CHAIN_AT + 8);
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
    c.get(this.VPN).op(W.i32WrapI64).set(this.OFF).br('entry');
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
   * `result` typed) when the TLB cannot serve it.
   */
  private tlb(size: number, write: boolean, result: number, hit: () => void, miss: () => void): void {
    const c = this.c;
    c.get(this.EA).i64(12, 0).op(W.i64ShrS).set(this.VPN);
    c.get(this.VPN).op(W.i32WrapI64).i32(TLB_SIZE - 1).op(W.i32And).set(this.T);
    c.get(this.TLB).get(this.T).i32(3).op(W.i32Shl).op(W.i32Add).mem(W.f64Load, write ? T_WTAG : T_RTAG);
    c.get(this.VPN).op(W.f64ConvertI64S).op(W.f64Eq);
    c.get(this.TLB).get(this.T).i32(2).op(W.i32Shl).op(W.i32Add).mem(W.i32Load, write ? T_WOFF : T_ROFF).tee(this.FA).i32(0).op(W.i32GeS).op(W.i32And);
    c.get(this.EA).op(W.i32WrapI64).i32(PAGE_SIZE - 1).op(W.i32And).tee(this.MO).i32(PAGE_SIZE - size).op(W.i32LeU).op(W.i32And);
    c.open(W.if, 'hit', result);
    c.get(this.FA).get(this.MO).op(W.i32Add);
    hit();
    c.else('hit');
    miss();
    c.close('hit');
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

  /** After an instruction that went to the engine for memory: leave if it asked to stop. */
  stopCheck(e: number, k: number): void {
    const c = this.c;
    c.get(this.STOP).open(W.if, 'stop');
    this.exitTo(e, () => c.get(this.N).i32(k + 1).op(W.i32Add), false);
    c.close('stop');
  }

  /** Stores the lazy-flag record of an ALU form whose dst, src and result are in the D/S/R locals of `size`. */
  record(kind: 'add' | 'sub' | 'logic', size: 4 | 8): void {
    const [d, s, r] = size === 8 ? [this.D8, this.S8, this.R8] : [this.D4, this.S4, this.R4];
    const lf = kind === 'add' ? LF_ADD : kind === 'sub' ? LF_SUB : LF_LOGIC;
    this.recordOf(lf, size, kind === 'logic' ? -1 : d, kind === 'logic' ? -1 : s, r, () => this.c.i32(0));
  }

  /**
   * Stores a lazy-flag record (state.ts format) in the scratch block:
   * `lf`, `size`, dst/src/result from locals of the size's type (-1: not
   * written), aux from `aux` (an i32 expression).
   */
  recordOf(lf: number, size: 1 | 2 | 4 | 8, d: number, s: number, r: number, aux: () => void): void {
    const c = this.c;
    const put = (i: number, v: () => void): void => this.scratchI32(S_LF + 4 * i, v);
    const lo = (l: number): (() => void) => () => (size === 8 ? c.get(l).op(W.i32WrapI64) : c.get(l));
    const hi = (l: number): (() => void) => () => (size === 8 ? c.get(l).i64(32, 0).op(W.i64ShrU).op(W.i32WrapI64) : c.i32(0));
    put(0, () => c.i32(lf));
    put(1, () => c.i32(size));
    if (d >= 0) { put(2, lo(d)); put(3, hi(d)); }
    if (s >= 0) { put(4, lo(s)); put(5, hi(s)); }
    put(6, lo(r)); put(7, hi(r)); put(8, aux);
    this.scratchI32(S_DIRTY, () => c.i32(1));
  }

  /** Condition cc as an i32: from a known record where it can, else from the engine (which reads the stored record). */
  test(f: Known | undefined, cc: number): void {
    const base = cc & ~1;
    if (f !== undefined && (f.kind !== 'result' || base === 4 || base === 8 || base === 10)) this.condition(f, cc);
    else this.c.i32(cc).call(IMPORT_COND);
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

const W8 = { eqz: W.i64Eqz, ltS: W.i64LtS, ltU: W.i64LtU, leS: W.i64LeS, leU: W.i64LeU, xor: W.i64Xor, and: W.i64And } as const;
const W4 = { eqz: W.i32Eqz, ltS: W.i32LtS, ltU: W.i32LtU, leS: W.i32LeS, leU: W.i32LeU, xor: W.i32Xor, and: W.i32And } as const;

// Imported functions, by index.
const IMPORT_HANDLER = 0, IMPORT_COND = 1, IMPORT_READ = 2, IMPORT_WRITE = 3, IMPORT_NONCANON = 4, IMPORT_CARRY_OVERFLOW = 5;
const TYPES = [
  { params: [I32, I32, I32], results: [I32] }, // handler(k, s, e) -> leave
  { params: [I32], results: [I32] }, // cond(cc)
  { params: [I32, F64], results: [I32] }, // read(size, address) -> stop
  { params: [I32, F64, I32, I32], results: [I32] }, // write(size, address, lo, hi) -> stop
  { params: [I32, I32], results: [] }, // nonCanonical(s, hi)
  { params: [I32], results: [] }, // carryOverflow(bits): CF and OF (bit 11) merged into the Cpu's flags
  { params: [I32, I32, F64, I32, I32, I32], results: [I32] }, // run(off, budget, base, st, tlb, done) -> retired, done included
] as const;
const TYPE_RUN = 6;

/**
 * Lowers one instruction; returns the flag record it leaves known, 'keep'
 * when it leaves flags as they were, or undefined when it is not lowered
 * (the caller calls its handler).
 */
function lower(m: Emitter, op: Op, s: number, e: number, k: number, known: Known | undefined, next: number): Known | 'keep' | 'forget' | 'branch' | undefined {
  if (!plain64(op)) return undefined;
  const c = m.c;
  const name = HANDLER_NAMES[op.handler] ?? '';
  const retiredHere = (): void => { c.get(m.N).i32(k + 1).op(W.i32Add); };
  if (name === 'misc_nop') return 'keep';
  if (name === 'flow_jcc' && op.kind0 === OP_REL) {
    const cc = op.opcode & 15;
    m.test(known, cc);
    c.open(W.if, 'taken');
    m.goTo(e + op.imm, retiredHere);
    c.close('taken');
    m.goTo(e, retiredHere, next);
    return 'branch';
  }
  if (name === 'flow_jmp' && op.kind0 === OP_REL) {
    m.goTo(e + op.imm, retiredHere, next);
    return 'branch';
  }
  if (name === 'flow_call' && op.kind0 === OP_REL) {
    // The return address pushed first; a fault leaves RSP as it was.
    c.get(m.ST).mem(W.i64Load, 8 * 4).i64(8, 0).op(W.i64Sub).set(m.EA);
    m.store(8, s, k, () => { c.get(m.BASE).f64(e).op(W.f64Add).op(W.i64TruncF64S); });
    m.setReg(4, () => c.get(m.EA));
    m.stopCheck(e + op.imm, k);
    m.goTo(e + op.imm, retiredHere);
    return 'branch';
  }
  if (name === 'flow_ret' && op.nops === 0) {
    c.get(m.ST).mem(W.i64Load, 8 * 4).set(m.EA);
    m.load(8, s, k);
    c.set(m.A);
    // A non-canonical return address faults with RSP unchanged.
    c.get(m.A).i64(16, 0).op(W.i64Shl).i64(16, 0).op(W.i64ShrS).get(m.A).op(W.i64Ne).open(W.if, 'bad');
    m.faultPoint(s, k);
    c.i32(s).get(m.A).i64(32, 0).op(W.i64ShrU).op(W.i32WrapI64).call(IMPORT_NONCANON);
    c.close('bad');
    m.setReg(4, () => c.get(m.EA).i64(8, 0).op(W.i64Add));
    m.dynamicGoto(m.A, retiredHere);
    return 'branch';
  }
  if (name === 'stack_push' && op.nops === 1 && op.osize === 8 && op.kind0 === OP_GPR && op.reg0 < 16) {
    c.get(m.ST).mem(W.i64Load, 8 * 4).i64(8, 0).op(W.i64Sub).set(m.EA);
    m.store(8, s, k, () => m.reg(op.reg0));
    m.setReg(4, () => c.get(m.EA));
    m.stopCheck(e, k);
    return 'keep';
  }
  if (name === 'stack_pop' && op.nops === 1 && op.osize === 8 && op.kind0 === OP_GPR && op.reg0 < 16) {
    // RSP moves first, then the register: POP RSP loads the value read.
    c.get(m.ST).mem(W.i64Load, 8 * 4).set(m.EA);
    m.load(8, s, k);
    c.set(m.A);
    m.setReg(4, () => c.get(m.EA).i64(8, 0).op(W.i64Add));
    m.setReg(op.reg0, () => c.get(m.A));
    m.stopCheck(e, k);
    return 'keep';
  }
  if ((name === 'alu_inc' || name === 'alu_dec') && op.nops === 1 && op.kind0 === OP_GPR && op.reg0 < 16 && (op.size0 === 4 || op.size0 === 8)) {
    const size = op.size0;
    const dec = name === 'alu_dec';
    // CF is kept: its current value goes into the record's aux.
    m.test(known, 2);
    c.set(m.T);
    if (size === 8) {
      m.reg(op.reg0); c.tee(m.D8).i64(1, 0).op(dec ? W.i64Sub : W.i64Add).set(m.R8); c.i64(1, 0).set(m.S8);
      m.setReg(op.reg0, () => c.get(m.R8));
    } else {
      m.reg(op.reg0); c.op(W.i32WrapI64).tee(m.D4).i32(1).op(dec ? W.i32Sub : W.i32Add).set(m.R4); c.i32(1).set(m.S4);
      m.setReg(op.reg0, () => c.get(m.R4).op(W.i64ExtendI32U));
    }
    const [d, sr, r] = size === 8 ? [m.D8, m.S8, m.R8] : [m.D4, m.S4, m.R4];
    m.recordOf(dec ? LF_DEC : LF_INC, size, d, sr, r, () => c.get(m.T));
    return { kind: 'result', size };
  }
  if (name === 'mov_setcc' && op.size0 === 1 && op.kind0 === OP_GPR && op.reg0 < 16) {
    m.test(known, op.opcode & 15);
    c.set(m.T);
    m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64n(-256).op(W.i64And).get(m.T).op(W.i64ExtendI32U).op(W.i64Or); });
    return 'keep';
  }
  const more = lowerMore(m, op, name, s, e, k, known);
  if (more !== undefined) return more;
  if (op.nops !== 2) return undefined;
  const size = op.size0;
  if (size === 1 || size === 2) return lowerSmall(m, op, name, size, s, e, k);
  if (size !== 4 && size !== 8) return undefined;
  if ((name === 'alu_adc' || name === 'alu_sbb') && op.kind0 === OP_GPR && op.reg0 < 16 && ((op.kind1 === OP_GPR && op.reg1 < 16) || op.kind1 === OP_IMM)) {
    const sbb = name === 'alu_sbb';
    m.test(known, 2);
    c.set(m.T);
    if (op.kind1 === OP_GPR) m.reg(op.reg1); else c.i64(op.imm | 0, op.immHi | 0);
    c.set(m.B);
    m.reg(op.reg0);
    c.set(m.A);
    const o = sbb ? W.i64Sub : W.i64Add;
    if (size === 8) {
      c.get(m.A).set(m.D8).get(m.B).set(m.S8);
      c.get(m.A).get(m.B).op(o).get(m.T).op(W.i64ExtendI32U).op(o).set(m.R8);
      m.setReg(op.reg0, () => c.get(m.R8));
      m.recordOf(sbb ? LF_SBB : LF_ADC, 8, m.D8, m.S8, m.R8, () => c.get(m.T));
    } else {
      const o32 = sbb ? W.i32Sub : W.i32Add;
      c.get(m.A).op(W.i32WrapI64).set(m.D4).get(m.B).op(W.i32WrapI64).set(m.S4);
      c.get(m.D4).get(m.S4).op(o32).get(m.T).op(o32).set(m.R4);
      m.setReg(op.reg0, () => c.get(m.R4).op(W.i64ExtendI32U));
      m.recordOf(sbb ? LF_SBB : LF_ADC, 4, m.D4, m.S4, m.R4, () => c.get(m.T));
    }
    return { kind: 'result', size };
  }
  const shiftKind = name === 'shift_shl' ? 0 : name === 'shift_shr' ? 1 : name === 'shift_sar' ? 2 : -1;
  if (shiftKind >= 0 && op.kind0 === OP_GPR && op.reg0 < 16 && op.kind1 === OP_IMM) {
    const bits = size * 8;
    const n = op.imm & (bits - 1);
    if (n === 0) {
      // No count: flags unchanged; a 32-bit destination still loses its upper half.
      if (size === 4) m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64(-1, 0).op(W.i64And); });
      return 'keep';
    }
    if (size === 8) {
      const sh = (v: number): void => { c.i64(v, 0); };
      m.reg(op.reg0); c.set(m.A);
      c.get(m.A); sh(n); c.op(shiftKind === 0 ? W.i64Shl : shiftKind === 1 ? W.i64ShrU : W.i64ShrS).set(m.R8);
      // CF: the last bit shifted out; OF: SHL msb(result) ^ CF, SHR msb(source), SAR 0.
      c.get(m.A); sh(shiftKind === 0 ? 64 - n : n - 1); c.op(W.i64ShrU).op(W.i32WrapI64).i32(1).op(W.i32And).set(m.T);
      if (shiftKind === 0) c.get(m.R8).i64(63, 0).op(W.i64ShrU).op(W.i32WrapI64).get(m.T).op(W.i32Xor);
      else if (shiftKind === 1) c.get(m.A).i64(63, 0).op(W.i64ShrU).op(W.i32WrapI64);
      else c.i32(0);
      c.set(m.FA);
      m.setReg(op.reg0, () => c.get(m.R8));
      m.recordOf(LF_CO, 8, -1, -1, m.R8, () => c.get(m.T).get(m.FA).i32(11).op(W.i32Shl).op(W.i32Or));
    } else {
      m.reg(op.reg0); c.op(W.i32WrapI64).set(m.D4);
      c.get(m.D4).i32(n).op(shiftKind === 0 ? W.i32Shl : shiftKind === 1 ? W.i32ShrU : W.i32ShrS).set(m.R4);
      c.get(m.D4).i32(shiftKind === 0 ? 32 - n : n - 1).op(W.i32ShrU).i32(1).op(W.i32And).set(m.T);
      if (shiftKind === 0) c.get(m.R4).i32(31).op(W.i32ShrU).get(m.T).op(W.i32Xor);
      else if (shiftKind === 1) c.get(m.D4).i32(31).op(W.i32ShrU);
      else c.i32(0);
      c.set(m.FA);
      m.setReg(op.reg0, () => c.get(m.R4).op(W.i64ExtendI32U));
      m.recordOf(LF_CO, 4, -1, -1, m.R4, () => c.get(m.T).get(m.FA).i32(11).op(W.i32Shl).op(W.i32Or));
    }
    return { kind: 'result', size, co: true };
  }
  if (name === 'mul_imul2' && size === 8 && op.kind0 === OP_GPR && op.reg0 < 16 && op.kind1 === OP_GPR && op.reg1 < 16) {
    m.reg(op.reg0); c.set(m.A); m.reg(op.reg1); c.set(m.B);
    c.get(m.A).get(m.B).op(W.i64Mul).set(m.R8);
    // Overflow: the product does not fit 64 bits signed (A = -1 overflows only for B = -2^63; else R / A = B exactly when it fits).
    c.get(m.A).op(W.i64Eqz).open(W.if, 'zero', I32).i32(0).else('zero');
    c.get(m.A).i64(-1, -1).op(W.i64Eq).open(W.if, 'm1', I32);
    c.get(m.B).i64(0, -0x80000000).op(W.i64Eq);
    c.else('m1');
    c.get(m.R8).get(m.A).op(W.i64DivS).get(m.B).op(W.i64Ne);
    c.close('m1').close('zero').set(m.T);
    m.setReg(op.reg0, () => c.get(m.R8));
    m.recordOf(LF_CO, 8, -1, -1, m.R8, () => c.get(m.T).i32(FLAG_CF | FLAG_OF).op(W.i32Mul));
    return { kind: 'result', size, co: true };
  }
  const from = op.size1;
  if ((name === 'mov_movzx' || name === 'mov_movsx' || name === 'mov_movsxd') && op.kind0 === OP_GPR && op.reg0 < 16 &&
    (from === 1 || from === 2 || (from === 4 && name === 'mov_movsxd' && size === 8))) {
    const memory = op.kind1 === OP_MEM;
    if (memory) {
      if (!plainMem(op)) return undefined;
      m.ea(op, e);
      m.load(from, s, k);
    } else if (op.kind1 === OP_GPR && op.reg1 < 16) {
      m.reg(op.reg1);
      if (name === 'mov_movzx') c.i64(from === 1 ? 0xff : 0xffff, 0).op(W.i64And);
    } else return undefined;
    if (name !== 'mov_movzx') c.op(from === 1 ? W.i64Extend8S : from === 2 ? W.i64Extend16S : W.i64Extend32S);
    if (size === 4) c.i64(-1, 0).op(W.i64And);
    c.set(m.A);
    m.setReg(op.reg0, () => c.get(m.A));
    if (memory) m.stopCheck(e, k);
    return 'keep';
  }
  if (name === 'mov_cmov' && op.kind0 === OP_GPR && op.reg0 < 16 && op.kind1 === OP_GPR && op.reg1 < 16) {
    m.test(known, op.opcode & 15);
    c.open(W.if, 'move');
    m.setReg(op.reg0, () => { m.reg(op.reg1); if (size === 4) c.i64(-1, 0).op(W.i64And); });
    if (size === 4) {
      c.else('move');
      m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64(-1, 0).op(W.i64And); });
    }
    c.close('move');
    return 'keep';
  }
  const k0 = op.kind0, k1 = op.kind1;
  const alu = ALU[name];
  const zext = (): void => { if (size === 4) c.i64(-1, 0).op(W.i64And); };
  if (name === 'mov_lea') {
    if (k0 !== OP_GPR || op.reg0 >= 16 || k1 !== OP_MEM || op.asize !== 8 || op.base < -1 || op.base > BASE_RIP || op.index > 15) return undefined;
    // LEA ignores segments: the effective address alone.
    m.setReg(op.reg0, () => { m.address(op, e); zext(); });
    return 'keep';
  }
  if (name === 'mov_mov') {
    if (k0 === OP_GPR && op.reg0 < 16) {
      if (k1 === OP_GPR && op.reg1 < 16) { m.setReg(op.reg0, () => { m.reg(op.reg1); zext(); }); return 'keep'; }
      if (k1 === OP_IMM) { m.setReg(op.reg0, () => { c.i64(op.imm | 0, size === 8 ? op.immHi | 0 : 0); }); return 'keep'; }
      if (k1 === OP_MEM && plainMem(op)) {
        m.ea(op, e);
        m.load(size, s, k);
        c.set(m.A);
        m.setReg(op.reg0, () => c.get(m.A));
        m.stopCheck(e, k);
        return 'keep';
      }
      return undefined;
    }
    if (k0 === OP_MEM && plainMem(op) && ((k1 === OP_GPR && op.reg1 < 16) || k1 === OP_IMM)) {
      m.ea(op, e);
      m.store(size, s, k, () => { if (k1 === OP_GPR) m.reg(op.reg1); else c.i64(op.imm | 0, op.immHi | 0); });
      m.stopCheck(e, k);
      return 'keep';
    }
    return undefined;
  }
  if (alu === undefined) return undefined;
  const writes = alu !== 'cmp' && alu !== 'test';
  const kind = alu === 'add' ? 'add' : alu === 'sub' || alu === 'cmp' ? 'sub' : 'logic';
  // Operands: a (first) and b (second) as i64 in A and B.
  let memory = false;
  if (k0 === OP_GPR && op.reg0 < 16) {
    if (k1 === OP_GPR && op.reg1 < 16) { m.reg(op.reg1); c.set(m.B); }
    else if (k1 === OP_IMM) { c.i64(op.imm | 0, op.immHi | 0).set(m.B); }
    else if (k1 === OP_MEM && plainMem(op)) { m.ea(op, e); m.load(size, s, k); c.set(m.B); memory = true; }
    else return undefined;
    m.reg(op.reg0);
    c.set(m.A);
  } else if (k0 === OP_MEM && !writes && plainMem(op)) {
    if (k1 === OP_GPR && op.reg1 < 16) { m.reg(op.reg1); c.set(m.B); }
    else if (k1 === OP_IMM) { c.i64(op.imm | 0, op.immHi | 0).set(m.B); }
    else return undefined;
    m.ea(op, e);
    m.load(size, s, k);
    c.set(m.A);
    memory = true;
  } else return undefined;
  const o64 = alu === 'add' ? W.i64Add : alu === 'sub' || alu === 'cmp' ? W.i64Sub : alu === 'and' || alu === 'test' ? W.i64And : alu === 'or' ? W.i64Or : W.i64Xor;
  const o32 = alu === 'add' ? W.i32Add : alu === 'sub' || alu === 'cmp' ? W.i32Sub : alu === 'and' || alu === 'test' ? W.i32And : alu === 'or' ? W.i32Or : W.i32Xor;
  if (size === 8) {
    c.get(m.A).set(m.D8).get(m.B).set(m.S8);
    c.get(m.A).get(m.B).op(o64).set(m.R8);
    if (writes) m.setReg(op.reg0, () => c.get(m.R8));
  } else {
    c.get(m.A).op(W.i32WrapI64).set(m.D4).get(m.B).op(W.i32WrapI64).set(m.S4);
    c.get(m.D4).get(m.S4).op(o32).set(m.R4);
    if (writes) m.setReg(op.reg0, () => c.get(m.R4).op(W.i64ExtendI32U));
  }
  m.record(kind, size);
  if (memory) m.stopCheck(e, k);
  return { kind, size };
}

/**
 * Rotates by an immediate, NOT, NEG and BSWAP of a register, and
 * read-modify-write ALU forms on memory (ADD/SUB/AND/OR/XOR [m], r/imm;
 * INC/DEC [m]), at 32 and 64 bits. 'forget': lowered, but the flag record
 * is now the Cpu's (a rotate merged its CF and OF into a record not known
 * here).
 */
function lowerMore(m: Emitter, op: Op, name: string, s: number, e: number, k: number, known: Known | undefined): Known | 'keep' | 'forget' | undefined {
  const c = m.c;
  const size = op.size0;
  if (size !== 4 && size !== 8) return undefined;
  const w = size === 8;
  const reg0 = op.kind0 === OP_GPR && op.reg0 < 16;
  const toReg = (): void => { if (!w) c.op(W.i64ExtendI32U); };
  if ((name === 'shift_rol' || name === 'shift_ror') && reg0 && op.kind1 === OP_IMM) {
    const n = op.imm & (size * 8 - 1);
    // A count of 0 leaves flags alone (and still clears a 32-bit register's upper half): the handler's case.
    if (n === 0) return undefined;
    const rol = name === 'shift_rol';
    // The result in A (zero-extended for 32 bits); CF and OF (bit 11) into T.
    m.reg(op.reg0);
    if (w) c.i64(n, 0).op(rol ? W.i64Rotl : W.i64Rotr).set(m.A);
    else c.op(W.i32WrapI64).i32(n).op(rol ? W.i32Rotl : W.i32Rotr).op(W.i64ExtendI32U).set(m.A);
    const bit = (b: number): void => { c.get(m.A).i64(b, 0).op(W.i64ShrU).op(W.i32WrapI64).i32(1).op(W.i32And); };
    const msb = size * 8 - 1;
    // ROL: CF = bit 0, OF = msb ^ CF; ROR: CF = msb, OF = msb ^ the bit below it.
    if (rol) { bit(0); c.tee(m.T); bit(msb); c.op(W.i32Xor); } else { bit(msb); c.tee(m.T); bit(msb - 1); c.op(W.i32Xor); }
    c.i32(11).op(W.i32Shl).get(m.T).op(W.i32Or).set(m.T);
    m.setReg(op.reg0, () => c.get(m.A));
    if (known === undefined) {
      c.get(m.T).call(IMPORT_CARRY_OVERFLOW);
      return 'forget';
    }
    // The stored record becomes LF_CO: ZF, SF and PF still from its result; AF kept; CF and OF the rotate's.
    const aux = S_LF + 32;
    if (known.co === true) c.get(m.ST).mem(W.i32Load, aux).i32(~(FLAG_CF | FLAG_OF)).op(W.i32And);
    else if (known.kind === 'logic') c.i32(0);
    else {
      const f = (x: number): void => { c.get(m.ST).mem(W.i32Load, S_LF + 4 * x); };
      f(2); f(4); c.op(W.i32Xor); f(6); c.op(W.i32Xor);
      c.i32(FLAG_AF).op(W.i32And);
    }
    c.get(m.T).op(W.i32Or).set(m.T);
    m.scratchI32(aux, () => c.get(m.T));
    m.scratchI32(S_LF, () => c.i32(LF_CO));
    return { kind: 'result', size: known.size, co: true };
  }
  if (name === 'alu_not' && reg0 && op.nops === 1) {
    m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64(-1, -1).op(W.i64Xor); if (!w) c.i64(-1, 0).op(W.i64And); });
    return 'keep';
  }
  if (name === 'mov_bswap' && reg0) {
    // Bytes of each 32-bit half reversed; for 64 bits the halves swap too.
    const swap32 = (): void => {
      c.tee(m.V32).i32(24).op(W.i32Shl);
      c.get(m.V32).i32(8).op(W.i32Shl).i32(0xff0000).op(W.i32And).op(W.i32Or);
      c.get(m.V32).i32(8).op(W.i32ShrU).i32(0xff00).op(W.i32And).op(W.i32Or);
      c.get(m.V32).i32(24).op(W.i32ShrU).op(W.i32Or);
      c.op(W.i64ExtendI32U);
    };
    m.reg(op.reg0); c.set(m.A);
    m.setReg(op.reg0, () => {
      c.get(m.A).op(W.i32WrapI64); swap32();
      if (w) { c.i64(32, 0).op(W.i64Shl); c.get(m.A).i64(32, 0).op(W.i64ShrU).op(W.i32WrapI64); swap32(); c.op(W.i64Or); }
    });
    return 'keep';
  }
  const [d, sr, r] = w ? [m.D8, m.S8, m.R8] : [m.D4, m.S4, m.R4];
  /** D, S and R of `size` from A and B with `o64`/`o32` (R = D op S). */
  const compute = (o64: number, o32: number): void => {
    if (w) c.get(m.A).tee(m.D8).get(m.B).tee(m.S8).op(o64).set(m.R8);
    else c.get(m.A).op(W.i32WrapI64).tee(m.D4).get(m.B).op(W.i32WrapI64).tee(m.S4).op(o32).set(m.R4);
  };
  if (name === 'alu_neg' && reg0 && op.nops === 1) {
    // 0 - x, recorded as that subtraction.
    c.i64(0, 0).set(m.A);
    m.reg(op.reg0); c.set(m.B);
    compute(W.i64Sub, W.i32Sub);
    m.setReg(op.reg0, () => { c.get(r); toReg(); });
    m.record('sub', size);
    return { kind: 'sub', size };
  }
  if (op.kind0 !== OP_MEM || !plainMem(op)) return undefined;
  if ((name === 'alu_inc' || name === 'alu_dec') && op.nops === 1) {
    const dec = name === 'alu_dec';
    // CF is kept (V32: the memory access uses the other temporaries).
    m.test(known, 2);
    c.set(m.V32);
    m.ea(op, e);
    m.load(size, s, k); c.set(m.A);
    c.i64(1, 0).set(m.B);
    compute(dec ? W.i64Sub : W.i64Add, dec ? W.i32Sub : W.i32Add);
    m.store(size, s, k, () => { c.get(r); toReg(); });
    m.recordOf(dec ? LF_DEC : LF_INC, size, d, sr, r, () => c.get(m.V32));
    m.stopCheck(e, k);
    return { kind: 'result', size };
  }
  const alu = ALU[name];
  if (alu === undefined || alu === 'cmp' || alu === 'test' || op.nops !== 2) return undefined;
  if (!((op.kind1 === OP_GPR && op.reg1 < 16) || op.kind1 === OP_IMM)) return undefined;
  if (op.kind1 === OP_GPR) m.reg(op.reg1); else c.i64(op.imm | 0, op.immHi | 0);
  c.set(m.B);
  m.ea(op, e);
  m.load(size, s, k); c.set(m.A);
  const kind = alu === 'add' ? 'add' : alu === 'sub' ? 'sub' : 'logic';
  compute(
    alu === 'add' ? W.i64Add : alu === 'sub' ? W.i64Sub : alu === 'and' ? W.i64And : alu === 'or' ? W.i64Or : W.i64Xor,
    alu === 'add' ? W.i32Add : alu === 'sub' ? W.i32Sub : alu === 'and' ? W.i32And : alu === 'or' ? W.i32Or : W.i32Xor);
  // The record only once the store has not faulted.
  m.store(size, s, k, () => { c.get(r); toReg(); });
  m.record(kind, size);
  m.stopCheck(e, k);
  return { kind, size };
}

/**
 * Byte and word forms (fast.ts aluSmall and movMem at sizes 1 and 2):
 * operands travel zero-extended, a register keeps the bits above the size.
 * MOV between registers, memory and immediates; ADD/SUB/CMP/AND/OR/XOR/TEST
 * with register, immediate and memory operands. Registers are the low byte
 * or word of GPR 0-15 (AH-BH decode as 16-19 and take their handler).
 */
function lowerSmall(m: Emitter, op: Op, name: string, size: 1 | 2, s: number, e: number, k: number): Known | 'keep' | undefined {
  const c = m.c;
  const mask = size === 1 ? 0xff : 0xffff;
  const k0 = op.kind0, k1 = op.kind1;
  const reg0 = k0 === OP_GPR && op.reg0 < 16, reg1 = k1 === OP_GPR && op.reg1 < 16;
  const mem0 = k0 === OP_MEM && plainMem(op), mem1 = k1 === OP_MEM && plainMem(op);
  const writeReg = (r: number, value: () => void): void => {
    m.setReg(r, () => { m.reg(r); c.i64n(~mask).op(W.i64And); value(); c.op(W.i64ExtendI32U).op(W.i64Or); });
  };
  /** Operand `which` (0 or 1) as an i32 zero-extended value on the stack; memory loads go through EA (already computed). */
  const value = (which: number): void => {
    const kind = which === 0 ? k0 : k1;
    if (kind === OP_GPR) { m.reg(which === 0 ? op.reg0 : op.reg1); c.op(W.i32WrapI64).i32(mask).op(W.i32And); }
    else if (kind === OP_IMM) c.i32(op.imm & mask);
    else { m.load(size, s, k); c.op(W.i32WrapI64); }
  };
  if (name === 'mov_mov') {
    if (reg0 && (reg1 || k1 === OP_IMM)) { writeReg(op.reg0, () => value(1)); return 'keep'; }
    // (A MOV keeps a known flag record: the temporary is not one of its locals.)
    if (reg0 && mem1) { m.ea(op, e); value(1); c.set(m.V32); writeReg(op.reg0, () => c.get(m.V32)); m.stopCheck(e, k); return 'keep'; }
    if (mem0 && (reg1 || k1 === OP_IMM)) {
      m.ea(op, e);
      m.store(size, s, k, () => { value(1); c.op(W.i64ExtendI32U); });
      m.stopCheck(e, k);
      return 'keep';
    }
    return undefined;
  }
  const alu = ALU[name];
  if (alu === undefined) return undefined;
  const writes = alu !== 'cmp' && alu !== 'test';
  // Operand shapes: r, r/imm/[m]; or [m], r/imm for CMP and TEST (the memory operand read first).
  if (!((reg0 && (reg1 || k1 === OP_IMM || mem1)) || (mem0 && !writes && (reg1 || k1 === OP_IMM)))) return undefined;
  const memory = mem0 || mem1;
  if (memory) m.ea(op, e);
  value(0); c.set(m.D4);
  value(1); c.set(m.S4);
  const kind = alu === 'add' ? 'add' : alu === 'sub' || alu === 'cmp' ? 'sub' : 'logic';
  const o32 = alu === 'add' ? W.i32Add : kind === 'sub' ? W.i32Sub : alu === 'and' || alu === 'test' ? W.i32And : alu === 'or' ? W.i32Or : W.i32Xor;
  c.get(m.D4).get(m.S4).op(o32).i32(mask).op(W.i32And).set(m.R4);
  if (writes) writeReg(op.reg0, () => c.get(m.R4));
  m.recordOf(kind === 'add' ? LF_ADD : kind === 'sub' ? LF_SUB : LF_LOGIC, size, kind === 'logic' ? -1 : m.D4, kind === 'logic' ? -1 : m.S4, m.R4, () => c.i32(0));
  // Conditions read the operands shifted up so the size's sign bit is bit 31 (the i32 comparisons then hold).
  const sh = 32 - 8 * size;
  for (const l of [m.D4, m.S4, m.R4]) c.get(l).i32(sh).op(W.i32Shl).set(l);
  if (memory) m.stopCheck(e, k);
  return { kind, size };
}

/**
 * Compiles region `r` to a wasm function over `state`'s memory, or returns
 * undefined when it is not 64-bit code. The BlockFn it returns behaves as
 * block.ts compileRegion's.
 */
export function compileWasmRegion(r: Block, state: WasmState): BlockFn | undefined {
  if (r.blocks[0]?.ops[0]?.mode !== MODE_64) return undefined;
  const index = new Map<number, number>();
  r.blocks.forEach((b, k) => index.set(b.start, k));
  const m = new Emitter(index);
  const c = m.c;
  const nb = r.blocks.length;
  c.get(m.ST).get(m.BASE).mem(W.f64Store, S_BASE);
  c.get(m.DONE).set(m.N);
  c.open(W.block, 'chain');
  // Dispatch on page offset OFF: at entry, and after a RET or an indirect branch (dynamicGoto). Not a block: leave.
  c.open(W.loop, 'entry');
  c.i32(-1).set(m.PC);
  r.blocks.forEach((b, k) => { c.get(m.OFF).i32(b.start).op(W.i32Eq).open(W.if, 'is').i32(k).set(m.PC).close('is'); });
  c.get(m.PC).i32(0).op(W.i32LtS).open(W.if, 'none');
  c.get(m.ST).get(m.BASE).get(m.OFF).op(W.f64ConvertI32S).op(W.f64Add).mem(W.f64Store, S_TARGET);
  m.scratchI32(S_EXIT_KIND, () => c.i32(0));
  c.get(m.N).op(W.return);
  c.close('none');
  c.open(W.loop, 'top');
  const labels = r.blocks.map((_, k) => `b${k}`);
  for (let k = nb - 1; k >= 0; k--) c.open(W.block, labels[k] as string);
  c.get(m.PC).brTable(labels, 'top');
  r.blocks.forEach((b, bk) => {
    c.close(labels[bk] as string);
    const n = b.ops.length;
    // The whole basic block must fit the budget, else leave at its start.
    c.get(m.N).i32(n).op(W.i32Add).get(m.BUDGET).op(W.i32GtS).open(W.if, 'full');
    m.exitTo(b.start, () => c.get(m.N), false);
    c.close('full');
    let known: Known | undefined;
    let ended = false;
    for (let k = 0; k < n; k++) {
      const op = b.ops[k] as Op;
      const s = b.starts[k] as number, e = b.ends[k] as number;
      const got = lower(m, op, s, e, k, known, bk + 1);
      if (got === 'branch') { ended = true; break; }
      if (got === 'keep') continue;
      if (got === 'forget') { known = undefined; continue; }
      if (got !== undefined) { known = got; continue; }
      // The handler, with RIP and the next RIP set and the flag record pulled (the import does both).
      known = undefined;
      const call = m.calls.length;
      m.calls.push(op);
      m.scratchI32(S_AT, () => c.i32(-1));
      m.scratchI32(S_RETIRED, () => c.get(m.N).i32(k).op(W.i32Add));
      c.i32(call).i32(s).i32(e).call(IMPORT_HANDLER);
      const last = k === n - 1 && op.endsBlock;
      if (last) {
        // A branch without a lowering: the import has set RIP wherever the handler sent control.
        c.op(W.drop);
        m.scratchI32(S_EXIT_KIND, () => c.i32(1));
        c.get(m.N).i32(k + 1).op(W.i32Add).op(W.return);
        ended = true;
        break;
      }
      c.open(W.if, 'left');
      m.scratchI32(S_EXIT_KIND, () => c.i32(1));
      c.get(m.N).i32(k + 1).op(W.i32Add).op(W.return);
      c.close('left');
    }
    if (!ended) m.goTo(b.ends[n - 1] as number, () => c.get(m.N).i32(n).op(W.i32Add), bk + 1);
  });
  c.close('top');
  c.close('entry');
  c.op(W.unreachable);
  c.close('chain');
  m.chainTail();
  // A region that would mostly call handlers runs faster as JS, where V8 inlines them: leave it to block.ts.
  const total = r.blocks.reduce((a, b) => a + b.ops.length, 0);
  if (m.calls.length > total * jit.wasmCallShare) return undefined;
  const bytes = encodeModule({
    types: TYPES,
    imports: [
      { module: 'e', name: 'h', kind: 'func', type: 0 },
      { module: 'e', name: 'cond', kind: 'func', type: 1 },
      { module: 'e', name: 'rd', kind: 'func', type: 2 },
      { module: 'e', name: 'wr', kind: 'func', type: 3 },
      { module: 'e', name: 'nc', kind: 'func', type: 4 },
      { module: 'e', name: 'co', kind: 'func', type: 5 },
      { module: 'e', name: 'mem', kind: 'memory', min: 0, max: 65536, shared: true },
      { module: 'e', name: 'chain', kind: 'table', min: 0 },
    ],
    functions: [{ type: TYPE_RUN, code: c }],
    exports: [{ name: 'run', func: 6 }],
  });
  const calls = m.calls;
  const handler = (k: number, s: number, e: number): number => {
    const cpu = ctx.c as Cpu;
    const base = runningBase();
    pullFlags(cpu, ctx.i32, ctx.st);
    const op = calls[k] as Op;
    cpu.rip = base + s;
    cpu.nextRip = base + e;
    op.fn(cpu, op);
    if (cpu.nextRip !== base + e || cpu.stopRequested !== 0 || op.endsBlock) {
      cpu.rip = cpu.nextRip;
      return 1;
    }
    return 0;
  };
  const instance = new wasmApi.Instance(new wasmApi.Module(bytes), {
    e: { h: handler, cond: importCond, rd: importRead, wr: importWrite, nc: importNonCanonical, co: importCarryOverflow, mem: state.memory, chain: state.chains.table },
  });
  const run = instance.exports.run as (off: number, budget: number, base: number, st: number, tlb: number, done: number) => number;
  const { i32, f64, chains } = state;
  let slot = register(chains, run), epoch = chains.epoch;
  return (cpu: Cpu, budget: number, base: number): number => {
    const st = cpu.gpr.byteOffset;
    ctx.c = cpu; ctx.st = st; ctx.i32 = i32; ctx.f64 = f64;
    const rip = cpu.rip, tlb = cpu.rTag.byteOffset;
    state.entries++;
    // Chained exits to this address may enter here directly from now on.
    if (epoch !== chains.epoch) {
      slot = register(chains, run);
      epoch = chains.epoch;
    }
    const p = tlb + TLB_CHAIN_AT + chainEntry(rip | 0);
    f64[p >> 3] = rip;
    i32[(p + 8) >> 2] = slot;
    i32[(p + 12) >> 2] = i32[(st + S_GEN) >> 2] as number;
    let n: number;
    try {
      n = run(rip - base, budget, base, st, tlb, 0);
    } catch (e) {
      pullFlags(cpu, i32, st);
      const at = i32[(st + S_AT) >> 2] as number;
      if (at >= 0) cpu.rip = (f64[(st + S_BASE) >> 3] as number) + at;
      cpu.retiredInBlock = i32[(st + S_RETIRED) >> 2] as number;
      throw e;
    }
    pullFlags(cpu, i32, st);
    if (i32[(st + S_EXIT_KIND) >> 2] === 0) cpu.rip = f64[(st + S_TARGET) >> 3] as number;
    return n;
  };
}
