/**
 * Basic blocks: runs of decoded instructions that the run loop (cpu.ts)
 * executes with one code-page lookup, and, once hot, as one JS function
 * generated with `new Function`.
 *
 * A block starts where control arrives and ends after the first instruction
 * whose form changes control flow (the table's `flow=` class), before an
 * instruction that does not decode or crosses into the next page, at the
 * page end, or after MAX_BLOCK instructions. It holds offsets relative to its
 * start, never linear addresses: decoded code is keyed by physical frame and
 * may run at several linear addresses (aliases, other vCPUs).
 *
 * Every instruction still runs its own handler with `cpu.rip` at its address
 * and `cpu.nextRip` past it, exactly as in the one-at-a-time loop; after each
 * the block goes on only if the handler neither branched (nextRip changed:
 * REP strings that resume, far transfers) nor asked the loop to stop or look
 * again (a store into decoded code, a TLB flush, a mode or CPL change, HLT,
 * an interrupt window). So faults stay precise: the instructions before the
 * faulting one have retired, the faulting one has no effect and RIP
 * addresses it.
 */
import { FORMS, MODE_64 } from './decode/index.js';
import type { Cpu } from './cpu.js';
import type { Op } from './op.js';
import { FORM_HANDLERS, HANDLER_TABLE } from './handlers.js';
import { isSpecialised } from './ops/fast.js';
import { inlineSource, type InlineSource } from './ops/inline.js';
import { wrap64 } from './operands.js';

/** Longest block: bounds the work between the run loop's looks at its budget and stop requests. */
export const MAX_BLOCK = 64;

/** Runs a compiled block; returns the instructions retired (all of them, or fewer when one branched or stopped the loop). */
export type BlockFn = (c: Cpu) => number;

export class Block {
  fn: BlockFn | undefined = undefined;

  constructor(
    readonly ops: readonly Op[],
    /** Offset of instruction k from the block's start. */
    readonly starts: Int32Array,
    /** Offset just past instruction k. */
    readonly ends: Int32Array,
  ) {}

  get count(): number {
    return this.ops.length;
  }

  /**
   * Instructions retired before a fault raised with RIP at `delta` from the
   * block's start. Traps (INT n, INT3) leave RIP past the instruction, which
   * ends its block: that instruction does not count, as in the
   * one-at-a-time loop.
   */
  retiredAt(delta: number): number {
    const s = this.starts;
    for (let k = 0; k < s.length; k++) if (s[k] === delta) return k;
    return s.length - 1;
  }
}

/** Whether the block must end after `op` (its form may change control flow). */
export function endsBlock(op: Op): boolean {
  const f = FORMS[op.form];
  return f === undefined || f.flow !== 'none';
}

/** Arrivals at a block start before it is compiled, default. */
export const JIT_AFTER_DEFAULT = 65000;
/** Upper bound of TYPEVISOR_SOFT_JIT_AFTER (the documented range; heat was a 16-bit counter when it was set). */
const JIT_AFTER_MAX = 65534;

/**
 * Arrivals at a block start before it is compiled (TYPEVISOR_SOFT_JIT_AFTER,
 * 0 to 65534; `off` never compiles). Tests set `jit.after` directly.
 */
export const jit = {
  after: jitAfterFromEnv(process.env.TYPEVISOR_SOFT_JIT_AFTER),
};

function jitAfterFromEnv(v: string | undefined): number {
  if (v === undefined || v === '') return JIT_AFTER_DEFAULT;
  if (v === 'off') return Infinity;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, JIT_AFTER_MAX) : JIT_AFTER_DEFAULT;
}

/**
 * Calls an instruction's handler from compiled code. Blocks call generic
 * handlers through this one site, which V8 therefore sees as megamorphic
 * and never inlines them into blocks: each block carries only its
 * templates, the memory accesses they make and the small specialised
 * handlers of ops/fast.ts (called directly), and compiles faster.
 */
function callHandler(c: Cpu, o: Op): void {
  o.fn(c, o);
}

/** A template for `op` (64-bit mode, no CPUID or privilege gate on its form), or undefined. */
function templated(op: Op): InlineSource | undefined {
  if (op.mode !== MODE_64 || FORM_HANDLERS[op.form] !== HANDLER_TABLE[op.handler]) return undefined;
  return inlineSource(op);
}

/**
 * Generates the block's function. Forms with an inline template
 * (ops/inline.ts) become straight-line code on `c.gpr` with constant register
 * indices; the rest call their bound handler, one call site per instruction,
 * which V8 can inline because each site sees one target.
 */
export function compileBlock(b: Block): BlockFn | undefined {
  // V8 spends milliseconds optimising each generated function; only blocks that are mostly templates repay it.
  let inlined = 0;
  for (const op of b.ops) if (templated(op) !== undefined) inlined++;
  if (inlined * 2 < b.ops.length) return undefined;
  const names: string[] = ['W', 'X'];
  const values: unknown[] = [wrap64, callHandler];
  const lines: string[] = ['const r = c.rip; const g = c.gpr;'];
  const m = b.ops.length;
  /** c.rip lags behind after inline instructions (they cannot fault); set it before the next handler call. */
  let ripStale = false;
  for (let k = 0; k < m; k++) {
    const op = b.ops[k] as Op;
    const end = b.ends[k] as number;
    const last = k === m - 1;
    const inl = templated(op);
    if (inl !== undefined && !inl.mayLeave) {
      lines.push(inl.code.replaceAll('NEXT', `${end}`));
      if (last) lines.push(`c.rip = c.nextRip = r + ${end};`);
      ripStale = true;
      continue;
    }
    if (ripStale) lines.push(`c.rip = r + ${b.starts[k] as number};`);
    ripStale = false;
    lines.push(`c.nextRip = r + ${end};`);
    if (inl !== undefined) lines.push(inl.code);
    else {
      names.push(`o${k}`);
      values.push(op);
      if (isSpecialised(op.fn)) {
        names.push(`f${k}`);
        values.push(op.fn);
        lines.push(`f${k}(c, o${k});`);
      } else lines.push(`X(c, o${k});`);
    }
    if (last) lines.push('c.rip = c.nextRip;');
    else lines.push(`c.rip = c.nextRip; if (c.nextRip !== r + ${end} || c.stopRequested !== 0) return ${k + 1};`);
  }
  lines.push(`return ${m};`);
  const factory = new Function(...names, `return function block(c) {\n${lines.join('\n')}\n};`) as (...a: unknown[]) => BlockFn;
  return factory(...values);
}
