/**
 * Inline templates for compiled blocks (block.ts): JS source for the
 * commonest register-only forms, register indices and immediates as
 * constants, so a hot run of them becomes straight-line code on `c.gpr`.
 * Each template does exactly what its specialised handler in fast.ts does
 * (same results, same lazy-flag record); block.ts uses one only for an
 * instruction that fast.ts specialised, and test/soft runs the differential
 * test with blocks compiled at once.
 */
import { BASE_RIP, HANDLER_NAMES, OP_GPR, OP_IMM, OP_MEM } from '../decode/index.js';
import type { Op } from '../op.js';
import { LF_ADD, LF_LOGIC, LF_SUB } from '../state.js';

export interface InlineSource {
  code: string;
  /** The code may set c.nextRip elsewhere, fault, or ask the run loop to stop. */
  mayLeave: boolean;
}

const ALU: Record<string, string> = { alu_add: 'add', alu_sub: 'sub', alu_cmp: 'cmp', alu_and: '&', alu_or: '|', alu_xor: '^', alu_test: 'test' };

/**
 * The effective address of a plain 64-bit memory operand (operands.ts ea()):
 * `W` is wrap64, in scope of the generated function.
 */
function eaSource(op: Op): string {
  let e = `${op.dispVal}`;
  if (op.base === BASE_RIP) e += ' + c.nextRip';
  else if (op.base >= 0) e += ` + (g[${2 * op.base + 1}] * 4294967296 + (g[${2 * op.base}] >>> 0))`;
  if (op.index >= 0) e += ` + (g[${2 * op.index + 1}] * 4294967296 + (g[${2 * op.index}] >>> 0)) * ${1 << op.scale}`;
  return `let a = ${e}; if (a >= 9007199254740992 || a < -9007199254740992) a = W(a); a += c.segBase[${op.segment}];`;
}

/** MOV r, [m] and MOV [m], r at 32/64 bits (fast.ts movRM*, movMR*); they may fault. */
function movMemSource(op: Op, size: number): InlineSource | undefined {
  if (op.asize !== 8 || !(op.base === BASE_RIP || op.base >= -1) || op.base > 16 || op.index > 15) return undefined;
  const k0 = op.opKind[0], k1 = op.opKind[1];
  if (k0 === OP_GPR && k1 === OP_MEM && (op.opReg[0] as number) < 16) {
    const d = 2 * (op.opReg[0] as number);
    return {
      code: size === 8 ? `{ ${eaSource(op)} const lo = c.read64(a); g[${d}] = lo; g[${d + 1}] = c.hi; }` : `{ ${eaSource(op)} const lo = c.read32(a); g[${d}] = lo; g[${d + 1}] = 0; }`,
      mayLeave: true,
    };
  }
  if (k0 === OP_MEM && k1 === OP_GPR && (op.opReg[1] as number) < 16) {
    const s = 2 * (op.opReg[1] as number);
    return { code: size === 8 ? `{ ${eaSource(op)} c.write64(a, g[${s}], g[${s + 1}]); }` : `{ ${eaSource(op)} c.write32(a, g[${s}]); }`, mayLeave: true };
  }
  return undefined;
}

/** Source for instruction `op`, or undefined to call its handler. */
export function inlineSource(op: Op): InlineSource | undefined {
  const name = HANDLER_NAMES[op.handler] ?? '';
  if (name === 'stack_push' && op.nops === 1 && op.osize === 8 && op.opKind[0] === OP_GPR && (op.opReg[0] as number) < 16) {
    // push64 (operands.ts): the store first, so a fault leaves RSP as it was.
    const r = 2 * (op.opReg[0] as number);
    return { code: `{ const v = g[${r}], vh = g[${r + 1}]; const sp = g[9] * 4294967296 + (g[8] >>> 0) - 8; c.write64(sp, v, vh); g[8] = sp; g[9] = Math.floor(sp / 4294967296); }`, mayLeave: true };
  }
  if (name === 'stack_pop' && op.nops === 1 && op.osize === 8 && op.opKind[0] === OP_GPR && (op.opReg[0] as number) < 16) {
    // pop64 then the register (fast.ts popR): POP RSP loads the value read.
    const r = 2 * (op.opReg[0] as number);
    return { code: `{ const sp = g[9] * 4294967296 + (g[8] >>> 0); const lo = c.read64(sp); g[8] = sp + 8; g[9] = Math.floor((sp + 8) / 4294967296); g[${r}] = lo; g[${r + 1}] = c.hi; }`, mayLeave: true };
  }
  if (op.nops !== 2) return undefined;
  const size = op.opSize[0] as number;
  if (size !== 4 && size !== 8) return undefined;
  const k1 = op.opKind[1];
  if (name === 'mov_mov' && (k1 === OP_MEM || op.opKind[0] === OP_MEM)) return movMemSource(op, size);
  if (op.opKind[0] !== OP_GPR || (op.opReg[0] as number) >= 16) return undefined;
  const d = 2 * (op.opReg[0] as number);
  let s: string, sh: string;
  if (k1 === OP_GPR && (op.opReg[1] as number) < 16) {
    const r = 2 * (op.opReg[1] as number);
    s = `g[${r}]`; sh = `g[${r + 1}]`;
  } else if (k1 === OP_IMM) {
    s = `${op.imm | 0}`; sh = `${op.immHi | 0}`;
  } else return undefined;
  if (name === 'mov_mov') {
    return { code: size === 8 ? `g[${d + 1}] = ${sh}; g[${d}] = ${s};` : `g[${d}] = ${s}; g[${d + 1}] = 0;`, mayLeave: false };
  }
  const kind = ALU[name];
  if (kind === undefined) return undefined;
  const write = kind !== 'cmp' && kind !== 'test';
  const logic = kind === '&' || kind === '|' || kind === '^' || kind === 'test';
  const opr = kind === 'test' ? '&' : kind;
  let code: string;
  if (size === 4) {
    if (logic) code = `{ const x = g[${d}] ${opr} ${s}; c.lfOp = ${LF_LOGIC}; c.lfSize = 4; c.lfRes = x; c.lfAux = 0;${write ? ` g[${d}] = x; g[${d + 1}] = 0;` : ''} }`;
    else {
      const add = kind === 'add';
      code = `{ const a = g[${d}], b = ${s}, x = (a ${add ? '+' : '-'} b) | 0; c.lfOp = ${add ? LF_ADD : LF_SUB}; c.lfDst = a; c.lfSrc = b; ` +
        `c.lfSize = 4; c.lfRes = x; c.lfAux = 0;${write ? ` g[${d}] = x; g[${d + 1}] = 0;` : ''} }`;
    }
  } else if (logic) {
    code = `{ const x = g[${d}] ${opr} ${s}, xh = g[${d + 1}] ${opr} ${sh}; c.lfOp = ${LF_LOGIC}; c.lfSize = 8; c.lfRes = x; c.lfResHi = xh; c.lfAux = 0;` +
      `${write ? ` g[${d}] = x; g[${d + 1}] = xh;` : ''} }`;
  } else {
    const add = kind === 'add';
    const hiExpr = add ? '(ah + bh + (lo > 0xffffffff ? 1 : 0)) | 0' : '(ah - bh - ((a >>> 0) < (b >>> 0) ? 1 : 0)) | 0';
    code = `{ const a = g[${d}], ah = g[${d + 1}], b = ${s}, bh = ${sh};` +
      (add ? ' const lo = (a >>> 0) + (b >>> 0); const x = lo | 0;' : ' const x = (a - b) | 0;') +
      ` const xh = ${hiExpr}; c.lfOp = ${add ? LF_ADD : LF_SUB}; c.lfDst = a; c.lfDstHi = ah; c.lfSrc = b; c.lfSrcHi = bh;` +
      ` c.lfSize = 8; c.lfRes = x; c.lfResHi = xh; c.lfAux = 0;${write ? ` g[${d}] = x; g[${d + 1}] = xh;` : ''} }`;
  }
  return { code, mayLeave: false };
}
