/**
 * Hot code compiled to JS: a *region* is the code of one page reachable from
 * a hot block start through branches whose targets are known (Jcc, JMP and
 * CALL rel, the fall-through) and that has already run, cut into basic blocks and generated as one
 * function with `new Function`. Inside it a dispatch loop (`switch` on the
 * page offset) moves from block to block without returning to the run loop:
 * a loop that stays in its page runs as a JS loop, and a RET or indirect
 * branch whose target is one of the region's blocks goes on inside it too.
 * Anything else leaves the function with `cpu.rip` at the next instruction.
 *
 * A region holds page offsets, never linear addresses: decoded code is keyed
 * by physical frame and may run at several linear addresses (aliases, other
 * vCPUs), so the function takes the page's linear base from the run loop.
 *
 * Exactness: before a basic block runs, the function checks that all of it
 * fits the instruction budget the run loop gives, else it stops there; so
 * `run(limit)`, the engine's 16,384-instruction chunks (interrupt latency) and
 * `--stats` stay exact to the instruction. A handler runs with `cpu.rip` at
 * its address and `cpu.nextRip` past it, as in the one-at-a-time loop; a
 * template that may fault records its page offset in a local instead, from
 * which the function's catch sets `cpu.rip`. After a handler the function goes on
 * only if it neither branched (nextRip changed: REP strings that resume, far
 * transfers) nor asked the loop to stop or look again (a store into decoded
 * code, a TLB flush, a mode or CPL change, HLT, an interrupt window). A fault
 * propagates with `cpu.rip` at the faulting instruction; the function leaves
 * the number of instructions retired before it in `cpu.retiredInBlock`.
 */
import { FORMS, HANDLER_NAMES, MODE_64, OP_REL } from './decode/index.js';
import type { Cpu } from './cpu.js';
import type { Op } from './op.js';
import { FORM_HANDLERS, HANDLER_TABLE } from './handlers.js';
import { cond, getCF } from './flags.js';
import { checkCanonicalTarget } from './ops/branch.js';
import { imulInto, isSpecialised } from './ops/fast.js';
import { condSource, type FlagRecord, indirectTargetSource, inlineSource, type InlineSource, POP_SP, PUSH_SP, read64Source, write64Source } from './ops/inline.js';
import { load128, store128 } from './ops/sse.js';
import { wrap64 } from './operands.js';
import { PAGE_SIZE } from './mmu.js';
import type { WasmRegion } from './wasm/region.js';

/** Longest basic block: bounds the instructions between two looks at the budget. */
export const MAX_BLOCK = 64;
/** Most instructions in one region (V8's compile time grows with the function). */
export const MAX_REGION = 64;

/**
 * Runs a compiled region entered at `cpu.rip` (a block start of the region)
 * in the page whose linear address is `base`, retiring at most `budget`
 * instructions. Returns the number retired, 0 if the first block did not fit.
 */
export type BlockFn = (c: Cpu, budget: number, base: number) => number;

/** One basic block of a region: its instructions and their page offsets. */
export interface BasicBlock {
  readonly start: number;
  readonly ops: readonly Op[];
  /** Page offset of instruction k. */
  readonly starts: readonly number[];
  /** Page offset just past instruction k. */
  readonly ends: readonly number[];
}

export class Block {
  fn: BlockFn | undefined = undefined;
  /** The region compiled to WebAssembly, when it is (`fn` then enters it through wasm/region.ts enterWasm). */
  wasm: WasmRegion | undefined = undefined;
  /** By start offset. */
  private readonly byStart = new Map<number, BasicBlock>();

  constructor(readonly blocks: readonly BasicBlock[]) {
    for (const b of blocks) this.byStart.set(b.start, b);
  }

  /**
   * Instructions retired in the basic block at `start` before a fault raised
   * with RIP at page offset `off`. Traps (INT n, INT3) leave RIP past the
   * instruction, which ends its block: that instruction does not count, as
   * in the one-at-a-time loop.
   */
  retiredAt(start: number, off: number): number {
    const b = this.byStart.get(start);
    if (b === undefined) return 0;
    const s = b.starts;
    for (let k = 0; k < s.length; k++) if (s[k] === off) return k;
    return s.length - 1;
  }
}

/** Whether a basic block must end after `op` (its form may change control flow). */
export function endsBlock(op: Op): boolean {
  const f = FORMS[op.form];
  return f === undefined || f.flow !== 'none';
}

/** Arrivals at a block start before its region is compiled, default. */
export const JIT_AFTER_DEFAULT = 65000;
/** Default of `jit.wasmAfter` (measured: README, "Tenth round"; 4,000 before modules were shared). */
export const WASM_AFTER_DEFAULT = 1000;
/** Default of `jit.wasmBatch` (README, "Tenth round"). */
export const WASM_BATCH_DEFAULT = 64;
/** Default of `jit.wasmBatchMs` (measured: README, "Tenth round"). */
export const WASM_BATCH_MS_DEFAULT = 40;
/** Upper bound of TYPEVISOR_SOFT_JIT_AFTER (the documented range; heat was a 16-bit counter when it was set). */
const JIT_AFTER_MAX = 65534;

/**
 * Arrivals at a block start before its region is compiled
 * (TYPEVISOR_SOFT_JIT_AFTER, 0 to 65534; `off` never compiles). Tests set
 * `jit.after` directly.
 */
export const jit = {
  after: jitAfterFromEnv(process.env.TYPEVISOR_SOFT_JIT_AFTER),
  /**
   * Compile to WebAssembly (wasm/region.ts) where the Cpu's state lives in
   * the machine's WebAssembly.Memory (a VM's, not process mode's): the
   * default since it is faster than the JS regions on every Linux row
   * (README); `TYPEVISOR_SOFT_WASM=off` keeps to JS regions.
   */
  wasm: process.env.TYPEVISOR_SOFT_WASM !== 'off',
  /** A region whose instructions call their handler more often than this share stays JS (wasm/region.ts). */
  wasmCallShare: Number(process.env.TYPEVISOR_SOFT_WASM_CALLS ?? 0.1),
  /**
   * Arrivals before a region compiles to WebAssembly, when it does
   * (TYPEVISOR_SOFT_WASM_AFTER, same range as `after`): a wasm region
   * compiles in about a millisecond, so it pays off far sooner than a JS
   * one. A region that would stay JS waits for `after`.
   */
  wasmAfter: jitAfterFromEnv(process.env.TYPEVISOR_SOFT_WASM_AFTER, WASM_AFTER_DEFAULT),
  /**
   * Regions per WebAssembly module at most, when a Cpu defers their
   * instantiation (cpu.ts deferWasm; TYPEVISOR_SOFT_WASM_BATCH, 1 to 1024).
   */
  wasmBatch: wasmBatchFromEnv(process.env.TYPEVISOR_SOFT_WASM_BATCH, WASM_BATCH_DEFAULT, 1, 1024),
  /**
   * Milliseconds a deferred region waits for others to join its module
   * (TYPEVISOR_SOFT_WASM_BATCH_MS, 0 to 1000; 0: every slice's regions
   * are a module of their own). Meanwhile its blocks are interpreted.
   */
  wasmBatchMs: wasmBatchFromEnv(process.env.TYPEVISOR_SOFT_WASM_BATCH_MS, WASM_BATCH_MS_DEFAULT, 0, 1000),
};

/** The batching settings, as the JIT thresholds read theirs: a value that is not an integer in [min, max] keeps the default. */
function wasmBatchFromEnv(v: string | undefined, fallback: number, min: number, max: number): number {
  const n = Number(v);
  return v !== undefined && v !== '' && Number.isInteger(n) && n >= min && n <= max ? n : fallback;
}

function jitAfterFromEnv(v: string | undefined, fallback = JIT_AFTER_DEFAULT): number {
  if (v === undefined || v === '') return fallback;
  if (v === 'off') return Infinity;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, JIT_AFTER_MAX) : fallback;
}

/**
 * Finds the region reachable from page offset `entry`: basic blocks found by
 * following fall-throughs and branch targets known at decode time, within
 * the page. `opAt(off)` returns the instruction decoded at a page offset, or
 * undefined where none decodes cleanly within the page; `ran(off)` says
 * whether control ever arrived there (a block that never ran stays out, and
 * branching to it leaves the region).
 */
export function discoverRegion(entry: number, opAt: (off: number) => Op | undefined, ran: (off: number) => boolean): BasicBlock[] {
  const blocks: BasicBlock[] = [];
  const seen = new Set<number>();
  const work = [entry];
  let total = 0;
  while (work.length > 0 && total < MAX_REGION) {
    const start = work.shift() as number;
    if (seen.has(start)) continue;
    seen.add(start);
    const ops: Op[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    let off = start;
    while (off < PAGE_SIZE && ops.length < MAX_BLOCK && total + ops.length < MAX_REGION) {
      const op = opAt(off);
      if (op === undefined) break;
      ops.push(op);
      starts.push(off);
      off += op.length;
      ends.push(off);
      if (op.endsBlock) break;
    }
    if (ops.length === 0) continue;
    total += ops.length;
    blocks.push({ start, ops, starts, ends });
    const last = ops[ops.length - 1] as Op;
    const inPage = (o: number): void => { if (o >= 0 && o < PAGE_SIZE && !seen.has(o) && ran(o)) work.push(o); };
    if (!last.endsBlock) inPage(off);
    else if (last.kind0 === OP_REL) {
      // Jcc, LOOP, JRCXZ, JMP rel, CALL rel: the target; for all but JMP the next instruction too (CALL: where RET comes back).
      inPage(off + last.imm);
      if (HANDLER_NAMES[last.handler] !== 'flow_jmp') inPage(off);
    }
  }
  return blocks;
}

/**
 * Calls an instruction's handler from compiled code. Regions call generic
 * handlers through this one site, which V8 therefore sees as megamorphic
 * and never inlines them into regions: each region carries only its
 * templates, the memory accesses they make and the small specialised
 * handlers of ops/fast.ts (called directly), and compiles faster.
 */
function callHandler(c: Cpu, o: Op): void {
  o.fn(c, o);
}

/** Whether `op` runs its table handler in 64-bit mode (no CPUID or privilege gate on its form): templates apply. */
export function plain64(op: Op): boolean {
  return op.mode === MODE_64 && FORM_HANDLERS[op.form] === HANDLER_TABLE[op.handler];
}

/** A template for `op` (`before`: the flag record the previous template left), or undefined. */
function templated(op: Op, before: FlagRecord | undefined): InlineSource | undefined {
  return plain64(op) ? inlineSource(op, before) : undefined;
}

/**
 * Where control goes from one basic block to page offset `to`, known at
 * compile time: nothing when that is the block placed next (the switch falls
 * through into it), the dispatch loop for another block of the region, else
 * out of the region with `cpu.rip` there.
 */
type Goto = (to: number) => string;

/**
 * The terminating branch of a block as a template (Jcc, JMP, CALL rel, RET),
 * with `n` advanced by the block's `len` once nothing can fault any more;
 * undefined to call the handler.
 */
function branchSource(op: Op, s: number, e: number, len: number, go: Goto, flags: FlagRecord | undefined): string | undefined {
  if (!plain64(op)) return undefined;
  const name = HANDLER_NAMES[op.handler];
  const t = e + op.imm;
  if (name === 'flow_jcc' && op.kind0 === OP_REL) {
    const cc = op.opcode & 15;
    // Right after a template whose flag record is known, the condition reads the record directly (V8 forwards the stores).
    const test = (flags !== undefined ? condSource(flags, cc) : undefined) ?? `C(c, ${cc})`;
    const taken = go(t);
    // The taken side may be the block placed next (empty: fall through into it).
    return taken === '' ? `n += ${len}; if (!(${test})) { ${go(e)} }` : `n += ${len}; if (${test}) { ${taken} } ${go(e)}`;
  }
  if (name === 'flow_jmp' && op.kind0 === OP_REL) return `n += ${len}; ${go(t)}`;
  if (name === 'flow_jmp') {
    // JMP r/m64 (branch.ts flow_jmp): a non-canonical target faults at the JMP.
    const load = indirectTargetSource(op);
    if (load !== undefined) {
      return `c.rip = base + ${s}; at = ${s}; { ${load.replaceAll('NEXT', `${e}`)} K(c, hi); const t = hi * 4294967296 + (lo >>> 0); n += ${len}; ${dynamicGoto('t')} }`;
    }
  }
  if (name === 'flow_call' && op.kind0 === OP_REL) {
    // fast.ts callRel: the return address pushed first (a fault leaves RSP as it was).
    return `c.rip = base + ${s}; at = ${s}; c.nextRip = base + ${e}; { const ret = base + ${e}; ${PUSH_SP} ` +
      `const rl = ret | 0, rh = Math.floor(ret / 4294967296); ${write64Source('sp', 'rl', 'rh')} g[8] = sl; g[9] = sh; } n += ${len}; ` +
      `if (c.stopRequested !== 0) { c.rip = base + ${t}; return n; } ${go(t)}`;
  }
  if (name === 'flow_ret' && op.nops === 0) {
    // fast.ts ret: a non-canonical return address faults with RSP unchanged.
    return `c.rip = base + ${s}; at = ${s}; { const sp = g[9] * 4294967296 + (g[8] >>> 0); ${read64Source('sp', 'lo', 'hi')} K(c, hi); ` +
      `const t = hi * 4294967296 + (lo >>> 0); ${POP_SP} n += ${len}; ` +
      `${dynamicGoto('t')} }`;
  }
  return undefined;
}

/** Control goes to linear address `t` (an expression), known only at run time: on inside the region if it is one of its blocks. */
function dynamicGoto(t: string): string {
  return `c.rip = ${t}; if (c.stopRequested !== 0) return n; { const d = c.rip - base; if (d >= 0 && d < ${PAGE_SIZE}) { pc = d | 0; continue; } } return n;`;
}

/** The stores of a template's flag record (ops/inline.ts writes each as `c.lfX = value;`). */
const FLAG_STORE = / ?c\.lf[A-Za-z]+ = [^;]*;/g;

/** Templates that read the flag record (conditions, carries) rather than only write it. */
const READS_FLAGS = new Set(['mov_setcc', 'mov_cmov', 'alu_inc', 'alu_dec', 'alu_adc', 'alu_sbb']);

/**
 * Whether the flag record instruction k of a basic block writes is dead: a
 * later template of the block writes a whole new record (an ALU form on
 * registers or immediates) and nothing in between can read flags, fault or
 * leave (only register templates that neither read nor write them). Its
 * stores are then left out: in a run of register arithmetic only the last
 * record is stored, which V8 cannot do itself (every typed-array access is
 * a possible deoptimisation, which keeps heap stores before it in place).
 */
function flagsOverwritten(ops: readonly Op[], k: number): boolean {
  const mine = templated(ops[k] as Op, undefined);
  if (mine === undefined || mine.mayLeave || mine.flags === undefined) return false;
  for (let j = k + 1; j < ops.length; j++) {
    const op = ops[j] as Op;
    if (op.endsBlock) return false;
    const t = templated(op, undefined);
    if (t === undefined || t.mayLeave || READS_FLAGS.has(HANDLER_NAMES[op.handler] ?? '')) return false;
    if (t.flags !== undefined) return true;
    // Shifts by an immediate (the only templates neither keeping nor recording flags today) are safe too; unknown kinds stop here.
    if (t.keepsFlags !== true) return false;
  }
  return false;
}

/** Blocks in the order they are generated: each followed, where possible, by the block its fall-through enters. */
function layout(blocks: readonly BasicBlock[]): BasicBlock[] {
  const byStart = new Map(blocks.map((b) => [b.start, b]));
  const placed = new Set<BasicBlock>();
  const order: BasicBlock[] = [];
  for (const b of blocks) {
    let x: BasicBlock | undefined = b;
    while (x !== undefined && !placed.has(x)) {
      placed.add(x);
      order.push(x);
      x = byStart.get(x.ends[x.ends.length - 1] as number);
    }
  }
  return order;
}

/** Locals of a region for the TLB arrays (ops/inline.ts memory templates), and the Cpu fields they hold. */
const TLB_LOCALS: readonly (readonly [string, string])[] = [
  ['tR', 'rTag'], ['vR', 'rView'], ['bR', 'rBytes'], ['tW', 'wTag'], ['vW', 'wView'], ['bW', 'wBytes'],
];

/**
 * Generates the region's function. Forms with an inline template
 * (ops/inline.ts) become straight-line code on `c.gpr` with constant register
 * indices; small specialised handlers are called directly (V8 inlines them);
 * the rest go through `callHandler`.
 */
export function compileRegion(r: Block): BlockFn | undefined {
  // A code page holds one decoding mode's instructions, so the first tells the region's.
  if (r.blocks[0]?.ops[0]?.mode !== MODE_64) return undefined;
  const names: string[] = ['W', 'X', 'C', 'K', 'R', 'G', 'XL', 'XS', 'IM'];
  const values: unknown[] = [wrap64, callHandler, cond, checkCanonicalTarget, r, getCF, load128, store128, imulInto];
  const inRegion = new Set(r.blocks.map((b) => b.start));
  const order = layout(r.blocks);
  const lines: string[] = [];
  let nOps = 0;
  order.forEach((b, ix) => {
    const following = order[ix + 1]?.start;
    const go: Goto = (to) => to === following ? '' : inRegion.has(to) ? `pc = ${to}; continue;` : `c.rip = base + ${to}; return n;`;
    const m = b.ops.length;
    lines.push(`case ${b.start}: {`, `pc = ${b.start}; if (n + ${m} > budget) break;`);
    let ended = false;
    /** The flag record the previous instruction left, when it was a template. */
    let flags: FlagRecord | undefined;
    for (let k = 0; k < m; k++) {
      const op = b.ops[k] as Op;
      const s = b.starts[k] as number, e = b.ends[k] as number;
      const last = k === m - 1;
      const before = flags;
      flags = undefined;
      if (last && op.endsBlock) {
        const br = branchSource(op, s, e, m, go, before);
        if (br !== undefined) {
          lines.push(br);
          ended = true;
          break;
        }
      }
      const inl = templated(op, before);
      flags = inl?.keepsFlags === true ? before : inl?.flags;
      if (inl !== undefined && !inl.mayLeave) {
        const code = flagsOverwritten(b.ops, k) ? inl.code.replace(FLAG_STORE, '') : inl.code;
        lines.push(code.replaceAll('NEXT', `${e}`));
        continue;
      }
      if (inl !== undefined) {
        // Only a fault reads RIP here (RIP-relative addresses are constants from the page base): the catch sets it from `at`.
        lines.push(`at = ${s};`);
        lines.push(inl.code.replaceAll('NEXT', `${e}`));
        lines.push(`if (c.stopRequested !== 0) { c.rip = base + ${e}; return n + ${k + 1}; }`);
        continue;
      }
      lines.push(`c.rip = base + ${s}; c.nextRip = base + ${e}; at = -1;`);
      const o = `o${nOps++}`;
      names.push(o);
      values.push(op);
      if (isSpecialised(op.fn)) {
        names.push(`f${o}`);
        values.push(op.fn);
        lines.push(`f${o}(c, ${o});`);
      } else lines.push(`X(c, ${o});`);
      if (last && op.endsBlock) {
        // A branch without a template: wherever the handler sent control.
        lines.push(`n += ${m}; ${dynamicGoto('c.nextRip')}`);
        ended = true;
      } else lines.push(`if (c.nextRip !== base + ${e} || c.stopRequested !== 0) { c.rip = c.nextRip; return n + ${k + 1}; }`);
    }
    if (!ended) lines.push(`n += ${m}; ${go(b.ends[m - 1] as number)}`);
    lines.push('}');
  });
  // The TLB arrays the templates use, loaded once (a privilege change swaps them, and it ends the region).
  const text = lines.join('\n');
  const tlb = TLB_LOCALS.filter(([local]) => new RegExp(`\\b${local}\\[`).test(text)).map(([local, field]) => `${local} = c.${field}`);
  const body = [
    'const g = c.gpr; const r = base;',
    ...(tlb.length > 0 ? [`const ${tlb.join(', ')};`] : []),
    // The page offset of the template running, for the catch (-1: a handler, which keeps c.rip itself).
    'let pc = (c.rip - base) | 0, n = 0, at = -1;',
    'try {',
    'for (;;) {',
    'switch (pc) {',
    ...lines,
    // Dispatch to an offset that is not a block of the region (a RET or indirect branch within the page).
    'default: c.rip = base + pc; return n;',
    '}',
    // A block that did not fit the budget.
    'c.rip = base + pc; return n;',
    '}',
    '} catch (e) { if (at >= 0) c.rip = base + at; c.retiredInBlock = n + R.retiredAt(pc, c.rip - base); throw e; }',
  ];
  const factory = new Function(...names, `return function region(c, budget, base) {\n${body.join('\n')}\n};`) as (...a: unknown[]) => BlockFn;
  return factory(...values);
}
