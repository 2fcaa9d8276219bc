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
 * slot, code generation) in the current privilege level's chain cache
 * (2,048 sets of two ways, the newest address first); a
 * region leaving for an address the cache holds in the current generation
 * tail-calls that region (return_call_indirect) with the instructions
 * retired so far, so control stays in wasm until the budget runs out, a
 * handler ends the region, or the cache misses. Whatever could change the
 * code behind an address (TLB flushes, dropped code, a decoding mode)
 * moves the Cpu's code generation on, which empties every cache at once.
 */
import { MODE_64 } from '../decode/index.js';
import type { Cpu } from '../cpu.js';
import { CHAIN_SETS, TLB_AREA_BYTES, TLB_CHAIN_AT } from '../tlb.js';
import type { Op } from '../op.js';
import { type Block, jit } from '../block.js';
import { cond, setCarryOverflow } from '../flags.js';
import { checkCanonicalTarget } from '../ops/branch.js';
import { load128, store128 } from '../ops/sse.js';
import { FLAG_DF } from '../state.js';
import { reserveWasm, wasmApi, type WasmMemory, type WasmTable } from '../../../memory/index.js';
import { Code, encodeModule, F64, I32, Op as W } from './encode.js';
import { Emitter, IMPORTED_FUNCTIONS, type Known, S_AT, S_BASE, S_DF, S_DIRTY, S_EXIT_KIND, S_GEN, S_LF_AUX, S_LF_DST, S_LF_OP, S_LF_RES, S_LF_SIZE, S_LF_SRC, S_RETIRED, S_SEG, S_TARGET, S_VALUE, TYPE_RUN, TYPES, X, XMM_BYTES } from './emitter.js';
import { lower } from './lower.js';
import { flagHelper, type FlagHelper } from './cond.js';

export { REGISTER_BYTES, SCRATCH_BYTES } from './emitter.js';

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
  /**
   * Calls the region in a slot: every entry from the run loop goes through
   * this one function, so the JS-to-wasm call is the same at every entry
   * (V8 compiles it once, instead of one call site per region's export).
   */
  readonly dispatch: (slot: number, off: number, budget: number, base: number, st: number, tlb: number, done: number) => number;
  /** Conditions, and CF/OF merges, of a record stored in the scratch block (cond.ts). */
  readonly flags: FlagHelper;
}

/** A module whose one function tail-calls the region in a table slot with the rest of its arguments. */
function dispatcher(table: WasmTable): ChainTable['dispatch'] {
  const c = new Code(7);
  for (let k = 1; k < 7; k++) c.get(k);
  c.get(0).callIndirect(TYPE_RUN, 0, true);
  const bytes = encodeModule({
    types: [...TYPES, { params: [I32, I32, I32, F64, I32, I32, I32], results: [I32] }],
    imports: [{ module: 'e', name: 'chain', kind: 'table', min: 0 }],
    functions: [{ type: TYPES.length, code: c }],
    exports: [{ name: 'd', func: 0 }],
  });
  return new wasmApi.Instance(new wasmApi.Module(bytes), { e: { chain: table } }).exports.d as ChainTable['dispatch'];
}

/** Slots of a chain table before it is emptied. */
// (At most 0x10000: a chain-cache entry keeps the slot in 16 bits.)
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
  /** Modules instantiated (`flushWasm`), each holding one or more regions. */
  modules: number;
  /** Regions compiled since the last `flushWasm`, to be instantiated as one module. */
  pending: WasmRegion[];
  /** When the first of them was compiled (performance.now()). */
  pendingSince: number;
  /** Their functions' code, in the same order. */
  codes: Code[];
  /** Their handler calls, by the index the module's handler import receives. */
  calls: Op[];
}

/**
 * Puts `cpu`'s register file, scratch block and read/write TLBs in `memory`
 * (after what it holds), where regions compiled here reach them; returns
 * false, leaving the CPU as it was, when the memory is full.
 */
export function placeInWasm(cpu: Cpu, memory: WasmMemory): boolean {
  const area = reserveWasm(memory, X + XMM_BYTES + TLB_AREA_BYTES);
  if (area === undefined) return false;
  cpu.placeRegisters(new Int32Array(area.buffer, area.byteOffset, 32));
  cpu.placeSegmentBases(new Float64Array(area.buffer, area.byteOffset + S_SEG, 6));
  cpu.placeXmm(new Int32Array(area.buffer, area.byteOffset + X, XMM_BYTES / 4));
  cpu.placeTlb(area.subarray(X + XMM_BYTES));
  const generation = new Int32Array(area.buffer, area.byteOffset + S_GEN, 1);
  generation[0] = cpu.codeGeneration[0] as number;
  cpu.codeGeneration = generation;
  let chains = chainTables.get(memory);
  if (chains === undefined) {
    const table = new wasmApi.Table({ element: 'anyfunc', initial: 0, maximum: CHAIN_SLOTS });
    chains = { table, next: 0, epoch: 0, cpus: [], dispatch: dispatcher(table), flags: flagHelper(memory, { cond: importCond, co: importCarryOverflow }) };
    chainTables.set(memory, chains);
  }
  chains.cpus.push(cpu);
  cpu.wasm = { memory, i32: new Int32Array(area.buffer), f64: new Float64Array(area.buffer), chains, entries: 0, modules: 0, pending: [], pendingSince: 0, codes: [], calls: [] };
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

/** The chain cache set of a linear address whose low 32 bits are int32 `x`: its byte offset from the cache's start. */
export function chainSet(x: number): number {
  return ((x ^ (x >>> 11)) & (CHAIN_SETS - 1)) << 5;
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
  const f = st >> 2;
  c.lfOp = i32[f + (S_LF_OP >> 2)] as number;
  c.lfSize = i32[f + (S_LF_SIZE >> 2)] as number;
  c.lfAux = i32[f + (S_LF_AUX >> 2)] as number;
  c.lfDst = i32[f + (S_LF_DST >> 2)] as number;
  c.lfDstHi = i32[f + (S_LF_DST >> 2) + 1] as number;
  c.lfSrc = i32[f + (S_LF_SRC >> 2)] as number;
  c.lfSrcHi = i32[f + (S_LF_SRC >> 2) + 1] as number;
  c.lfRes = i32[f + (S_LF_RES >> 2)] as number;
  c.lfResHi = i32[f + (S_LF_RES >> 2) + 1] as number;
}

/** A condition of the Cpu's flag record (or of a record cond.ts does not compute), for cond.ts. */
function importCond(_st: number, cc: number): number {
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

/** A 16-byte load the TLB could not serve, into XMM register r; returns 1 if the engine asked to stop. */
function importLoad128(a: number, r: number): number {
  const c = ctx.c as Cpu;
  load128(c, a, r);
  return c.stopRequested !== 0 ? 1 : 0;
}

/** A 16-byte store of XMM register r the TLB could not serve (both pages checked before either is written). */
function importStore128(a: number, r: number): number {
  const c = ctx.c as Cpu;
  store128(c, a, r);
  return c.stopRequested !== 0 ? 1 : 0;
}

/** CF and/or OF (bit 11) of `mask` into a flag record only the Cpu knows (or one cond.ts does not compute), for cond.ts. */
function importCarryOverflow(_st: number, mask: number, bits: number): void {
  const c = ctx.c as Cpu;
  pullFlags(c, ctx.i32, ctx.st);
  setCarryOverflow(c, mask, bits);
}

/** A branch target whose high half is not canonical: #GP at the branch (offset `s`). */
function importNonCanonical(s: number, hi: number): void {
  const c = ctx.c as Cpu;
  c.rip = runningBase() + s;
  checkCanonicalTarget(c, hi);
}

/**
 * Compiles region `r` to a wasm function over `state`'s memory, or returns
 * undefined when it is not 64-bit code or would mostly call handlers. The
 * function joins `state.pending`; `flushWasm` instantiates them, after
 * which `r.fn` is set and `enterWasm` runs it.
 */
export function compileWasmRegion(r: Block, state: WasmState): WasmRegion | undefined {
  if (r.blocks[0]?.ops[0]?.mode !== MODE_64) return undefined;
  const index = new Map<number, number>();
  r.blocks.forEach((b, k) => index.set(b.start, k));
  const before = state.calls.length;
  const m = new Emitter(index, state.calls);
  const c = m.c;
  const nb = r.blocks.length;
  c.get(m.ST).get(m.BASE).mem(W.f64Store, S_BASE);
  c.get(m.DONE).set(m.N);
  c.open(W.block, 'chain');
  // Dispatch on page offset OFF: at entry, and after a RET or an indirect branch (dynamicGoto). Not a block: leave.
  c.open(W.loop, 'entry');
  // An entry that names its block (bits 16 and up of OFF: the block's index + 1, from the chain cache) skips the search.
  c.get(m.OFF).i32(16).op(W.i32ShrU).i32(1).op(W.i32Sub).tee(m.PC).i32(0).op(W.i32LtS).open(W.if, 'find');
  r.blocks.forEach((b, k) => { c.get(m.OFF).i32(b.start).op(W.i32Eq).open(W.if, 'is').i32(k).set(m.PC).close('is'); });
  c.close('find');
  c.get(m.PC).i32(0).op(W.i32LtS).open(W.if, 'none');
  // A branch to this page outside the region: another region may start there. (Never at entry, which would come back here.)
  c.get(m.DYN).open(W.if, 'dyn');
  c.get(m.BASE).get(m.OFF).op(W.f64ConvertI32S).op(W.f64Add).op(W.i64TruncF64S).set(m.TARGET).br('chain');
  c.close('dyn');
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
      m.callHandler(op, s, e, k);
      const last = k === n - 1 && op.endsBlock;
      if (last) {
        // A branch without a lowering: the import has set RIP wherever the handler sent control.
        c.op(W.drop);
        m.leaveAfterHandler(k);
        ended = true;
        break;
      }
      c.open(W.if, 'left');
      m.leaveAfterHandler(k);
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
  if (state.calls.length - before - m.slowPaths > total * jit.wasmCallShare) {
    state.calls.length = before;
    return undefined;
  }
  const w = new WasmRegion(r, state, index);
  if (state.pending.length === 0) state.pendingSince = performance.now();
  state.pending.push(w);
  state.codes.push(c);
  return w;
}

/**
 * Instantiates the regions `compileWasmRegion` left pending as one module,
 * gives each a slot in the chain table and makes its block enter it.
 *
 * One module for many regions because a chained entry into another module
 * costs far more than one within a module: a chain of tail calls through
 * 400 one-function modules ran at ~150 ns per call, through the same 400
 * functions in one module at ~10 ns, in groups of ten at ~20 ns (README,
 * "Tenth round"; code and instance locality in V8).
 */
export function flushWasm(state: WasmState): void {
  const regions = state.pending;
  if (regions.length === 0) return;
  const { codes, calls } = state;
  state.pending = [];
  state.codes = [];
  state.calls = [];
  const bytes = encodeModule({
    types: TYPES,
    imports: [
      { module: 'e', name: 'h', kind: 'func', type: 0 },
      { module: 'e', name: 'cond', kind: 'func', type: 1 },
      { module: 'e', name: 'rd', kind: 'func', type: 2 },
      { module: 'e', name: 'wr', kind: 'func', type: 3 },
      { module: 'e', name: 'nc', kind: 'func', type: 4 },
      { module: 'e', name: 'co', kind: 'func', type: 5 },
      { module: 'e', name: 'l16', kind: 'func', type: 7 },
      { module: 'e', name: 's16', kind: 'func', type: 7 },
      { module: 'e', name: 'mem', kind: 'memory', min: 0, max: 65536, shared: true },
      { module: 'e', name: 'chain', kind: 'table', min: 0 },
    ],
    functions: codes.map((code) => ({ type: TYPE_RUN, code })),
    exports: regions.map((_, k) => ({ name: `r${k}`, func: IMPORTED_FUNCTIONS + k })),
  });
  const handler = (k: number, s: number, e: number): number => {
    const cpu = ctx.c as Cpu;
    const base = runningBase();
    pullFlags(cpu, ctx.i32, ctx.st);
    const op = calls[k] as Op;
    cpu.rip = base + s;
    cpu.nextRip = base + e;
    op.fn(cpu, op);
    ctx.i32[(ctx.st + S_DF) >> 2] = cpu.flagsBase & FLAG_DF;
    if (cpu.nextRip !== base + e || cpu.stopRequested !== 0 || op.endsBlock) {
      cpu.rip = cpu.nextRip;
      return 1;
    }
    return 0;
  };
  const instance = new wasmApi.Instance(new wasmApi.Module(bytes), {
    e: { h: handler, cond: state.chains.flags.cond, rd: importRead, wr: importWrite, nc: importNonCanonical, co: state.chains.flags.co, l16: importLoad128, s16: importStore128, mem: state.memory, chain: state.chains.table },
  });
  state.modules++;
  regions.forEach((w, k) => { w.ready(instance.exports[`r${k}`]); });
}

/** A region compiled here: its function, its slot in the chain table (while `epoch` is the table's); both from `flushWasm`. */
export class WasmRegion {
  run: unknown = undefined;
  slot = -1;
  epoch = -1;
  /** `index`: the region's blocks by page offset. */
  constructor(readonly region: Block, readonly state: WasmState, readonly index: ReadonlyMap<number, number>) {}

  /** The region's function is instantiated: take a slot, and let the run loop enter it. */
  ready(run: unknown): void {
    this.run = run;
    this.slot = register(this.state.chains, run);
    this.epoch = this.state.chains.epoch;
    this.region.fn = (c, budget, base) => enterWasm(c, this, budget, base);
  }
}

/**
 * Runs compiled region `w` entered at `cpu.rip` (in the page at linear
 * `base`) for at most `budget` instructions, chaining on as far as the
 * chain cache allows; behaves as block.ts's BlockFn. One function for every
 * region, so that V8 optimises it once.
 */
export function enterWasm(cpu: Cpu, w: WasmRegion, budget: number, base: number): number {
  const state = w.state;
  const { i32, f64, chains } = state;
  const st = cpu.gpr.byteOffset;
  ctx.c = cpu; ctx.st = st; ctx.i32 = i32; ctx.f64 = f64;
  const rip = cpu.rip, tlb = cpu.rTag.byteOffset;
  state.entries++;
  // Chained exits to this address may enter here directly from now on.
  if (w.epoch !== chains.epoch) {
    w.slot = register(chains, w.run);
    w.epoch = chains.epoch;
  }
  // Into the set's first way; what it held (another address) moves to the second.
  const p = (tlb + TLB_CHAIN_AT + chainSet(rip | 0)) >> 2;
  const lo = rip | 0, hi = Math.floor(rip / 4294967296) | 0;
  if (i32[p] !== lo || i32[p + 1] !== hi) {
    for (let k = 0; k < 4; k++) i32[p + 4 + k] = i32[p + k] as number;
    i32[p] = lo;
    i32[p + 1] = hi;
  }
  // The slot, and the index + 1 of the block entered (an entry chained here goes straight to it).
  const entry = ((w.index.get(rip - base) ?? -1) + 1) << 16;
  i32[p + 2] = w.slot | entry;
  i32[p + 3] = i32[(st + S_GEN) >> 2] as number;
  // DF for the string forms; only a handler changes it while wasm runs.
  i32[(st + S_DF) >> 2] = cpu.flagsBase & FLAG_DF;
  let n: number;
  try {
    n = chains.dispatch(w.slot, (rip - base) | entry, budget, base, st, tlb, 0);
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
}
