/**
 * Inline templates for compiled regions (block.ts): JS source for the
 * commonest forms (MOV, ALU, shifts by an immediate, INC/DEC, extensions,
 * SETcc, CMOVcc, PUSH/POP, LEA; register, immediate and plain 64-bit memory
 * operands), register indices and immediates as constants, so a hot run of
 * them becomes straight-line code on `c.gpr`. Each template does exactly
 * what the specialised handler in fast.ts does for that shape (same
 * results, same lazy-flag record). test/soft/block.test.ts runs each form
 * compiled and interpreted on edge values and compares state and flags.
 */
import { BASE_RIP, HANDLER_NAMES, OP_GPR, OP_IMM, OP_MEM, OP_XMM } from '../decode/index.js';
import type { Op } from '../op.js';
import { PAGE_SIZE, TLB_SIZE } from '../mmu.js';
import { FLAG_CF, FLAG_OF, LF_ADC, LF_ADD, LF_CO, LF_DEC, LF_INC, LF_LOGIC, LF_SBB, LF_SUB, SEG_FS, SEG_GS } from '../state.js';

export interface InlineSource {
  code: string;
  /** The code may set c.nextRip elsewhere, fault, or ask the run loop to stop. */
  mayLeave: boolean;
  /** The lazy-flag record the code leaves (ALU forms), for conditions read right after it (condSource). */
  flags?: FlagRecord | undefined;
  /** The code leaves the flags as they were (MOV, LEA, MOVZX, SETcc, CMOVcc, PUSH, POP): a record known before stays known. */
  keepsFlags?: boolean;
}

const MOVE128_NAMES = ['sse_movaps', 'sse_movups', 'sse_movapd', 'sse_movupd', 'sse_movdqa', 'sse_movdqu'];

/** Forms whose templates write no flags. */
const FLAGLESS = new Set(['mov_mov', 'mov_lea', 'mov_movzx', 'mov_movsx', 'mov_movsxd', 'mov_setcc', 'mov_cmov', 'stack_push', 'stack_pop',
  'misc_nop', ...MOVE128_NAMES, 'sse_pxor', 'sse_por', 'sse_pand', 'sse_pandn', 'sse_pcmpeqb', 'sse_pmovmskb']);

/**
 * What a template leaves in the lazy-flag record, at an operand size:
 * LF_SUB (SUB, CMP), LF_ADD, LF_LOGIC, or a record whose ZF and SF come
 * from the result but whose other flags need flags.ts ('result': INC, DEC,
 * ADC, SBB).
 */
export interface FlagRecord {
  kind: 'sub' | 'add' | 'logic' | 'result';
  size: number;
}

/**
 * CF of a known record as a JS expression (flags.ts getCF), or undefined to
 * call getCF: CF is the condition B (cc 2), which condSource knows for SUB
 * and logic records.
 */
function cfSource(f: FlagRecord | undefined): string | undefined {
  const below = f === undefined ? undefined : condSource(f, 2);
  return below === undefined ? undefined : `((${below}) ? 1 : 0)`;
}

const ALU: Record<string, string> = { alu_add: 'add', alu_sub: 'sub', alu_cmp: 'cmp', alu_and: '&', alu_or: '|', alu_xor: '^', alu_test: 'test' };

/**
 * The effective address of a plain 64-bit memory operand (operands.ts ea()):
 * `W` is wrap64, in scope of the generated function. Templates run only in
 * 64-bit mode, where the ES, CS, SS and DS bases are 0 (system.ts
 * applyBases): only FS and GS add theirs.
 */
function eaSource(op: Op): string {
  let e = `${op.dispVal}`;
  if (op.base === BASE_RIP) e += ' + (r + NEXT)';
  else if (op.base >= 0) e += ` + (g[${2 * op.base + 1}] * 4294967296 + (g[${2 * op.base}] >>> 0))`;
  if (op.index >= 0) e += ` + (g[${2 * op.index + 1}] * 4294967296 + (g[${2 * op.index}] >>> 0)) * ${1 << op.scale}`;
  const seg = op.segment === SEG_FS || op.segment === SEG_GS ? ` ea += c.segBase[${op.segment}];` : '';
  return `let ea = ${e}; if (ea >= 9007199254740992 || ea < -9007199254740992) ea = W(ea);${seg}`;
}

/*
 * Memory access in templates: the TLB hit path of cpu.ts read8..write64
 * written out in the template, and the accessor called only for a miss, a
 * page crossing or MMIO (it fills the TLB, faults, or reaches the device).
 * Calling the accessors everywhere left it to V8 to inline them, which it
 * stops doing once a function has inlined its budget: in a region with a
 * dozen memory accesses the rest became real calls, each boxing its 64-bit
 * address in a new heap number. `a` is a variable holding the linear
 * address; the names declared (mv, mt, mo, md) are the template's.
 */
/** Declares the page number, TLB slot and page offset of linear address `a`. */
function tlbHit(a: string): string {
  return `const mv = Math.floor(${a} / ${PAGE_SIZE}), mt = mv & ${TLB_SIZE - 1}, mo = ${a} & ${PAGE_SIZE - 1};`;
}

/** Declares `into` (bits 8, 16: zero-extended; 32: int32) read from linear address `a`. */
function readSource(bits: number, a: string, into: string): string {
  const hit = tlbHit(a);
  if (bits === 8) return `${hit} const ${into} = tR[mt] === mv ? bR[mt][mo] : c.read8(${a});`;
  const get = bits === 16 ? 'getUint16' : 'getInt32';
  return `${hit} const ${into} = tR[mt] === mv && mo <= ${PAGE_SIZE - bits / 8} ? vR[mt].${get}(mo, true) : c.read${bits}(${a});`;
}

/** Declares `lo` and `hi`, the halves of the 64-bit value at linear address `a`. */
export function read64Source(a: string, lo: string, hi: string): string {
  return `${tlbHit(a)} let ${lo}, ${hi}; if (tR[mt] === mv && mo <= ${PAGE_SIZE - 8}) { const md = vR[mt]; ` +
    `${lo} = md.getInt32(mo, true); ${hi} = md.getInt32(mo + 4, true); } else { ${lo} = c.read64(${a}); ${hi} = c.hi; }`;
}

/** Writes `value` (bits 8, 16, 32; an expression without side effects) to linear address `a`. */
function writeSource(bits: number, a: string, value: string): string {
  const hit = tlbHit(a);
  if (bits === 8) return `${hit} if (tW[mt] === mv) bW[mt][mo] = ${value}; else c.write8(${a}, ${value});`;
  const set = bits === 16 ? 'setUint16' : 'setInt32';
  return `${hit} if (tW[mt] === mv && mo <= ${PAGE_SIZE - bits / 8}) vW[mt].${set}(mo, ${value}, true); else c.write${bits}(${a}, ${value});`;
}

/** Writes the 64-bit value (lo, hi) (expressions without side effects) to linear address `a`. */
export function write64Source(a: string, lo: string, hi: string): string {
  return `${tlbHit(a)} if (tW[mt] === mv && mo <= ${PAGE_SIZE - 8}) { const md = vW[mt]; ` +
    `md.setInt32(mo, ${lo}, true); md.setInt32(mo + 4, ${hi}, true); } else c.write64(${a}, ${lo}, ${hi});`;
}

/**
 * RSP - 8 for a push: declares its halves `sl`, `sh` and the linear
 * address `sp`. The halves come from int32 arithmetic, so a run of pushes
 * (or pops) carries no float conversions from one to the next; only the
 * address for the TLB is a float.
 */
export const PUSH_SP = 'const sl = (g[8] - 8) | 0, sh = (g[8] >>> 0) < 8 ? (g[9] - 1) | 0 : g[9]; const sp = sh * 4294967296 + (sl >>> 0);';

/** RSP += 8 after a pop read its value at `sp`: the halves, as PUSH_SP does. */
export const POP_SP = '{ const sl = (g[8] + 8) | 0; g[9] = (sl >>> 0) < 8 ? (g[9] + 1) | 0 : g[9]; g[8] = sl; }';

/** A memory operand eaSource handles: 64-bit addressing (fast.ts plainMem). */
function plainMem(op: Op): boolean {
  return op.asize === 8 && op.base >= -1 && op.base <= BASE_RIP && op.index <= 15;
}

/**
 * ALU op on (a, ah) and (b, bh) already in scope, as fast.ts alu32/alu64 do
 * it: the lazy-flag record, and the result into g[d] unless d < 0.
 */
function aluSource(kind: string, size: number, d: number): string {
  const write = d >= 0 && kind !== 'cmp' && kind !== 'test';
  const logic = kind === '&' || kind === '|' || kind === '^' || kind === 'test';
  const opr = kind === 'test' ? '&' : kind;
  const add = kind === 'add';
  if (size === 1 || size === 2) {
    // Byte and word operands travel zero-extended (fast.ts aluSmall); the rest of the register is kept.
    const mask = size === 1 ? 0xff : 0xffff;
    const wb = write ? ` g[${d}] = (g[${d}] & ${~mask}) | x;` : '';
    if (logic) return `const x = a ${opr} b; c.lfOp = ${LF_LOGIC}; c.lfSize = ${size}; c.lfRes = x; c.lfResHi = 0;${wb}`;
    return `const x = (a ${add ? '+' : '-'} b) & ${mask}; c.lfOp = ${add ? LF_ADD : LF_SUB}; c.lfSize = ${size}; c.lfDst = a; c.lfDstHi = 0; ` +
      `c.lfSrc = b; c.lfSrcHi = 0; c.lfRes = x; c.lfResHi = 0; c.lfAux = 0;${wb}`;
  }
  if (size === 4) {
    if (logic) return `const x = a ${opr} b; c.lfOp = ${LF_LOGIC}; c.lfSize = 4; c.lfRes = x; c.lfAux = 0;${write ? ` g[${d}] = x; g[${d + 1}] = 0;` : ''}`;
    return `const x = (a ${add ? '+' : '-'} b) | 0; c.lfOp = ${add ? LF_ADD : LF_SUB}; c.lfDst = a; c.lfSrc = b; ` +
      `c.lfSize = 4; c.lfRes = x; c.lfAux = 0;${write ? ` g[${d}] = x; g[${d + 1}] = 0;` : ''}`;
  }
  if (logic) {
    return `const x = a ${opr} b, xh = ah ${opr} bh; c.lfOp = ${LF_LOGIC}; c.lfSize = 8; c.lfRes = x; c.lfResHi = xh; c.lfAux = 0;` +
      `${write ? ` g[${d}] = x; g[${d + 1}] = xh;` : ''}`;
  }
  const hiExpr = add ? '(ah + bh + (lo > 0xffffffff ? 1 : 0)) | 0' : '(ah - bh - ((a >>> 0) < (b >>> 0) ? 1 : 0)) | 0';
  return (add ? 'const lo = (a >>> 0) + (b >>> 0); const x = lo | 0;' : 'const x = (a - b) | 0;') +
    ` const xh = ${hiExpr}; c.lfOp = ${add ? LF_ADD : LF_SUB}; c.lfDst = a; c.lfDstHi = ah; c.lfSrc = b; c.lfSrcHi = bh;` +
    ` c.lfSize = 8; c.lfRes = x; c.lfResHi = xh; c.lfAux = 0;${write ? ` g[${d}] = x; g[${d + 1}] = xh;` : ''}`;
}

/** LEA r32/r64 with 64-bit addressing (mov.ts mov_lea): exact 64-bit sum, no segment base. */
function leaSource(op: Op, size: number, d: number): string {
  let code = `let lo = ${op.disp | 0}, hi = ${op.dispBytes === 8 ? op.dispHi | 0 : (op.disp | 0) >> 31};`;
  const add = (l: string, h: string): string => ` { const bl = ${l}, l = (lo >>> 0) + (bl >>> 0); hi = (hi + ${h} + (l > 0xffffffff ? 1 : 0)) | 0; lo = l | 0; }`;
  if (op.base === BASE_RIP) code += add('(r + NEXT) | 0', 'Math.floor((r + NEXT) / 4294967296)');
  else if (op.base >= 0) code += add(`g[${2 * op.base}]`, `g[${2 * op.base + 1}]`);
  if (op.index >= 0) {
    const x = 2 * op.index, s = op.scale;
    code += s === 0 ? add(`g[${x}]`, `g[${x + 1}]`) : add(`g[${x}] << ${s}`, `((g[${x + 1}] << ${s}) | (g[${x}] >>> ${32 - s}))`);
  }
  return `{ ${code} g[${d}] = lo; g[${d + 1}] = ${size === 8 ? 'hi' : '0'}; }`;
}

/** MOV r, [m] and MOV [m], r at 32/64 bits (fast.ts movRM*, movMR*); they may fault. */
function movMemSource(op: Op, size: number): InlineSource | undefined {
  if (!plainMem(op)) return undefined;
  const k0 = op.kind0, k1 = op.kind1;
  if (size === 1 || size === 2) {
    const mask = size === 1 ? 0xff : 0xffff, bits = size * 8;
    if (k0 === OP_GPR && k1 === OP_MEM && op.reg0 < 16) {
      const d = 2 * op.reg0;
      return { code: `{ ${eaSource(op)} ${readSource(bits, 'ea', 'v')} g[${d}] = (g[${d}] & ${~mask}) | v; }`, mayLeave: true };
    }
    if (k0 === OP_MEM && k1 === OP_GPR && op.reg1 < 16) return { code: `{ ${eaSource(op)} ${writeSource(bits, 'ea', `(g[${2 * op.reg1}] & ${mask})`)} }`, mayLeave: true };
    if (k0 === OP_MEM && k1 === OP_IMM) return { code: `{ ${eaSource(op)} ${writeSource(bits, 'ea', `${op.imm & mask}`)} }`, mayLeave: true };
    return undefined;
  }
  if (k0 === OP_GPR && k1 === OP_MEM && (op.reg0) < 16) {
    const d = 2 * (op.reg0);
    return {
      code: size === 8 ? `{ ${eaSource(op)} ${read64Source('ea', 'lo', 'hi')} g[${d}] = lo; g[${d + 1}] = hi; }` : `{ ${eaSource(op)} ${readSource(32, 'ea', 'lo')} g[${d}] = lo; g[${d + 1}] = 0; }`,
      mayLeave: true,
    };
  }
  if (k0 === OP_MEM && k1 === OP_GPR && (op.reg1) < 16) {
    const s = 2 * (op.reg1);
    return { code: size === 8 ? `{ ${eaSource(op)} ${write64Source('ea', `g[${s}]`, `g[${s + 1}]`)} }` : `{ ${eaSource(op)} ${writeSource(32, 'ea', `g[${s}]`)} }`, mayLeave: true };
  }
  return undefined;
}

/**
 * Source for instruction `op`, or undefined to call its handler. `before` is
 * the flag record the previous instruction's template left, if known: SETcc
 * and CMOVcc then read it directly (condSource). Names in scope of the
 * generated code: `c`, `g` (c.gpr), `W` (wrap64), `C` (cond), `G` (getCF),
 * `XL`/`XS` (sse.ts load128/store128), `IM` (fast.ts imulInto).
 */
export function inlineSource(op: Op, before?: FlagRecord): InlineSource | undefined {
  const name = HANDLER_NAMES[op.handler] ?? '';
  const src = formSource(op, name) ?? registerSource(op, name, before);
  if (src !== undefined && FLAGLESS.has(name)) src.keepsFlags = true;
  const kind = ALU[name];
  if (src !== undefined && kind !== undefined) {
    src.flags = { kind: kind === 'add' ? 'add' : kind === 'sub' || kind === 'cmp' ? 'sub' : 'logic', size: op.size0 };
  }
  return src;
}

/**
 * Condition cc (Jcc's low nibble) as a JS expression over the lazy-flag
 * record a template with `f` just wrote, as flags.ts cond() would derive
 * it; undefined where cond() is needed (OF, PF and the rest).
 */
export function condSource(f: FlagRecord, cc: number): string | undefined {
  const neg = (e: string | undefined): string | undefined => (e === undefined ? undefined : (cc & 1) === 0 ? e : `!(${e})`);
  const size = f.size;
  const zf = size === 8 ? '(c.lfRes | c.lfResHi) === 0' : 'c.lfRes === 0';
  const sf = size === 8 ? 'c.lfResHi < 0' : size === 4 ? 'c.lfRes < 0' : `(c.lfRes & ${size === 1 ? 0x80 : 0x8000}) !== 0`;
  const base = cc & ~1;
  if (f.kind === 'logic') {
    // CF = OF = 0.
    switch (base) {
      case 0: case 2: return (cc & 1) === 0 ? 'false' : 'true';
      case 4: case 6: return neg(zf);
      case 8: case 12: return neg(sf);
      case 14: return neg(`${zf} || ${sf}`);
      default: return undefined;
    }
  }
  if (f.kind === 'add' || f.kind === 'result') return base === 4 ? neg(zf) : base === 8 ? neg(sf) : undefined;
  if (size === 8) {
    const ult = '(c.lfDstHi >>> 0) < (c.lfSrcHi >>> 0) || (c.lfDstHi === c.lfSrcHi && (c.lfDst >>> 0) < (c.lfSrc >>> 0))';
    const ule = '(c.lfDstHi >>> 0) < (c.lfSrcHi >>> 0) || (c.lfDstHi === c.lfSrcHi && (c.lfDst >>> 0) <= (c.lfSrc >>> 0))';
    const slt = 'c.lfDstHi < c.lfSrcHi || (c.lfDstHi === c.lfSrcHi && (c.lfDst >>> 0) < (c.lfSrc >>> 0))';
    const sle = 'c.lfDstHi < c.lfSrcHi || (c.lfDstHi === c.lfSrcHi && (c.lfDst >>> 0) <= (c.lfSrc >>> 0))';
    switch (base) {
      case 2: return neg(ult);
      case 4: return neg('c.lfDst === c.lfSrc && c.lfDstHi === c.lfSrcHi');
      case 6: return neg(ule);
      case 8: return neg(sf);
      case 12: return neg(slt);
      case 14: return neg(sle);
      default: return undefined;
    }
  }
  // Size 4 (int32), sizes 1 and 2 (zero-extended).
  const u = (v: string): string => (size === 4 ? `(${v} >>> 0)` : v);
  const sg = (v: string): string => (size === 4 ? v : `((${v} << ${32 - size * 8}) >> ${32 - size * 8})`);
  switch (base) {
    case 2: return neg(`${u('c.lfDst')} < ${u('c.lfSrc')}`);
    case 4: return neg('c.lfDst === c.lfSrc');
    case 6: return neg(`${u('c.lfDst')} <= ${u('c.lfSrc')}`);
    case 8: return neg(sf);
    case 12: return neg(`${sg('c.lfDst')} < ${sg('c.lfSrc')}`);
    case 14: return neg(`${sg('c.lfDst')} <= ${sg('c.lfSrc')}`);
    default: return undefined;
  }
}

/** The forms of move128 (sse.ts): 16 bytes between XMM registers and memory, no alignment check. */
const MOVE128 = new Set(MOVE128_NAMES);
/** Bitwise SSE forms (sse.ts bitwise) on register pairs: lane k of the result from lane k of each. */
const BITWISE: Record<string, (d: string, s: string) => string> = {
  sse_pxor: (d, s) => `${d} ^ ${s}`, sse_por: (d, s) => `${d} | ${s}`, sse_pand: (d, s) => `${d} & ${s}`, sse_pandn: (d, s) => `~${d} & ${s}`,
};

/**
 * The SSE forms glibc's string functions run in every call (strlen, strchr,
 * memchr, memset): 128-bit moves, PXOR/POR/PAND/PANDN, PCMPEQB and PMOVMSKB
 * between registers. `c.xmm` holds XMM register r as int32 lanes 4r..4r+3
 * (`c.xmmU8` the same bytes); `XL`/`XS` are sse.ts load128/store128, called
 * on a TLB miss or a page crossing.
 */
function sseSource(op: Op, name: string): InlineSource | undefined {
  if (op.nops !== 2) return undefined;
  const k0 = op.kind0, k1 = op.kind1;
  const d = 4 * op.reg0, s = 4 * op.reg1;
  const lanes4 = (f: (k: number) => string): string => [0, 1, 2, 3].map(f).join(' ');
  if (MOVE128.has(name)) {
    if (k0 === OP_XMM && k1 === OP_XMM) {
      return { code: `{ const x = c.xmm; ${lanes4((k) => `const v${k} = x[${s + k}];`)} ${lanes4((k) => `x[${d + k}] = v${k};`)} }`, mayLeave: false };
    }
    if (!plainMem(op)) return undefined;
    const hit = tlbHit('ea');
    if (k0 === OP_XMM && k1 === OP_MEM) {
      return {
        code: `{ ${eaSource(op)} ${hit} if (tR[mt] === mv && mo <= ${PAGE_SIZE - 16}) { const md = vR[mt], x = c.xmm; ` +
          `${lanes4((k) => `x[${d + k}] = md.getInt32(mo + ${4 * k}, true);`)} } else XL(c, ea, ${op.reg0}); }`,
        mayLeave: true,
      };
    }
    if (k0 === OP_MEM && k1 === OP_XMM) {
      return {
        code: `{ ${eaSource(op)} ${hit} if (tW[mt] === mv && mo <= ${PAGE_SIZE - 16}) { const md = vW[mt], x = c.xmm; ` +
          `${lanes4((k) => `md.setInt32(mo + ${4 * k}, x[${s + k}], true);`)} } else XS(c, ea, ${op.reg1}); }`,
        mayLeave: true,
      };
    }
    return undefined;
  }
  const bit = BITWISE[name];
  if (bit !== undefined && k0 === OP_XMM && k1 === OP_XMM) {
    return { code: `{ const x = c.xmm; ${lanes4((k) => `x[${d + k}] = ${bit(`x[${d + k}]`, `x[${s + k}]`)};`)} }`, mayLeave: false };
  }
  if (name === 'sse_pcmpeqb' && k0 === OP_XMM && k1 === OP_XMM) {
    const lines = Array.from({ length: 16 }, (_, k) => `u[${4 * d + k}] = u[${4 * d + k}] === u[${4 * s + k}] ? 255 : 0;`);
    return { code: `{ const u = c.xmmU8; ${lines.join(' ')} }`, mayLeave: false };
  }
  if (name === 'sse_pmovmskb' && k0 === OP_GPR && op.reg0 < 16 && k1 === OP_XMM && (op.size0 === 4 || op.size0 === 8)) {
    // The sign bit of each byte; a 32- or 64-bit destination, zero-extended either way.
    const bits = Array.from({ length: 16 }, (_, k) => `((u[${4 * s + k}] >> 7) << ${k})`);
    return { code: `{ const u = c.xmmU8; g[${2 * op.reg0}] = ${bits.join(' | ')}; g[${2 * op.reg0 + 1}] = 0; }`, mayLeave: false };
  }
  return undefined;
}

/** The 64-bit target of JMP r/m64 with a register or plain memory operand, as code declaring `lo` and `hi` (RIP-relative: NEXT). */
export function indirectTargetSource(op: Op): string | undefined {
  if (op.osize !== 8 || op.nops !== 1) return undefined;
  if (op.kind0 === OP_GPR && op.reg0 < 16) return `const lo = g[${2 * op.reg0}], hi = g[${2 * op.reg0 + 1}];`;
  if (op.kind0 === OP_MEM && plainMem(op)) return `${eaSource(op)} ${read64Source('ea', 'lo', 'hi')}`;
  return undefined;
}

function formSource(op: Op, name: string): InlineSource | undefined {
  if (name === 'misc_nop') return { code: '', mayLeave: false };
  if (name.startsWith('sse_')) return sseSource(op, name);
  if (name === 'stack_push' && op.nops === 1 && op.osize === 8 && op.kind0 === OP_GPR && (op.reg0) < 16) {
    // push64 (operands.ts): the store first, so a fault leaves RSP as it was.
    const r = 2 * (op.reg0);
    return { code: `{ const v = g[${r}], vh = g[${r + 1}]; ${PUSH_SP} ${write64Source('sp', 'v', 'vh')} g[8] = sl; g[9] = sh; }`, mayLeave: true };
  }
  if (name === 'stack_pop' && op.nops === 1 && op.osize === 8 && op.kind0 === OP_GPR && (op.reg0) < 16) {
    // pop64 then the register (fast.ts popR): POP RSP loads the value read.
    const r = 2 * (op.reg0);
    return { code: `{ const sp = g[9] * 4294967296 + (g[8] >>> 0); ${read64Source('sp', 'lo', 'hi')} ${POP_SP} g[${r}] = lo; g[${r + 1}] = hi; }`, mayLeave: true };
  }
  if (op.nops !== 2) return undefined;
  const size = op.size0;
  if (size === 1 || size === 2) return smallSource(op, name, size);
  if (size !== 4 && size !== 8) return undefined;
  const k0 = op.kind0, k1 = op.kind1;
  if (name === 'mov_mov' && (k1 === OP_MEM || k0 === OP_MEM)) return movMemSource(op, size);
  const kind = ALU[name];
  if (kind === 'cmp' || kind === 'test') {
    // CMP/TEST [m], r/imm (fast.ts aluMX): memory first.
    if (k0 === OP_MEM && plainMem(op)) {
      let b: string;
      if (k1 === OP_IMM) b = `const b = ${op.imm | 0}, bh = ${op.immHi | 0};`;
      else if (k1 === OP_GPR && (op.reg1) < 16) b = `const b = g[${2 * (op.reg1)}], bh = g[${2 * (op.reg1) + 1}];`;
      else return undefined;
      const load = size === 8 ? read64Source('ea', 'a', 'ah') : `${readSource(32, 'ea', 'a')} const ah = 0;`;
      return { code: `{ ${eaSource(op)} ${load} ${b} ${aluSource(kind, size, -1)} }`, mayLeave: true };
    }
  }
  if (k0 !== OP_GPR || (op.reg0) >= 16) return undefined;
  const d = 2 * (op.reg0);
  if (name === 'mov_lea' && k1 === OP_MEM && op.asize === 8 && op.base >= -1 && op.base <= BASE_RIP && op.index <= 15) {
    return { code: leaSource(op, size, d), mayLeave: false };
  }
  if (name === 'mov_movzx' && k1 === OP_MEM && plainMem(op)) {
    const from = op.size1;
    if (from !== 1 && from !== 2) return undefined;
    return { code: `{ ${eaSource(op)} ${readSource(from * 8, 'ea', 'v')} g[${d}] = v; g[${d + 1}] = 0; }`, mayLeave: true };
  }
  if (kind === undefined && name !== 'mov_mov') return undefined;
  let src: string;
  let mem = false;
  if (k1 === OP_GPR && (op.reg1) < 16) {
    const r = 2 * (op.reg1);
    src = `const b = g[${r}], bh = g[${r + 1}];`;
  } else if (k1 === OP_IMM) {
    src = `const b = ${op.imm | 0}, bh = ${op.immHi | 0};`;
  } else if (k1 === OP_MEM && kind !== undefined && plainMem(op)) {
    // op r, [m] (fast.ts aluRM): memory first.
    src = `${eaSource(op)} ${size === 8 ? read64Source('ea', 'b', 'bh') : `${readSource(32, 'ea', 'b')} const bh = 0;`}`;
    mem = true;
  } else return undefined;
  if (name === 'mov_mov') return { code: `{ ${src} g[${d}] = b; g[${d + 1}] = ${size === 8 ? 'bh' : '0'}; }`, mayLeave: false };
  if (kind === undefined) return undefined;
  return { code: `{ ${src} const a = g[${d}], ah = g[${d + 1}]; ${aluSource(kind, size, d)} }`, mayLeave: mem };
}

/**
 * MOV and ALU forms on bytes and words: the low bytes/words of RAX-R15 (not
 * AH-BH), immediates and plain memory (fast.ts aluSmall, movSmall).
 */
function smallSource(op: Op, name: string, size: number): InlineSource | undefined {
  const k0 = op.kind0, k1 = op.kind1;
  const mask = size === 1 ? 0xff : 0xffff, bits = size * 8;
  if (name === 'mov_mov' && (k0 === OP_MEM || k1 === OP_MEM)) return movMemSource(op, size);
  const kind = ALU[name];
  if (kind === undefined && name !== 'mov_mov') return undefined;
  let b: string;
  let mem = false;
  if (k1 === OP_GPR && op.reg1 < 16) b = `const b = g[${2 * op.reg1}] & ${mask};`;
  else if (k1 === OP_IMM) b = `const b = ${op.imm & mask};`;
  else if (k1 === OP_MEM && kind !== undefined && plainMem(op)) {
    b = `${eaSource(op)} ${readSource(bits, 'ea', 'b')}`;
    mem = true;
  } else return undefined;
  if (k0 === OP_MEM) {
    // CMP/TEST [m], r/imm (fast.ts aluMXSmall): memory first.
    if ((kind !== 'cmp' && kind !== 'test') || !plainMem(op)) return undefined;
    return { code: `{ ${eaSource(op)} ${readSource(bits, 'ea', 'a')} ${b} ${aluSource(kind, size, -1)} }`, mayLeave: true };
  }
  if (k0 !== OP_GPR || op.reg0 >= 16) return undefined;
  const d = 2 * op.reg0;
  if (name === 'mov_mov') return { code: `{ ${b} g[${d}] = (g[${d}] & ${~mask}) | b; }`, mayLeave: false };
  if (kind === undefined) return undefined;
  return { code: `{ ${b} const a = g[${d}] & ${mask}; ${aluSource(kind, size, d)} }`, mayLeave: mem };
}

/** Bit k (constant) of the 64-bit value (lo, hi) as source (shift.ts bit64). */
function bitSource(k: number): string {
  return k < 32 ? `((lo >>> ${k}) & 1)` : `((hi >>> ${k - 32}) & 1)`;
}

/**
 * Register-only forms with constant shapes: SHL/SHR/SAR by an immediate,
 * INC/DEC, MOVZX/MOVSX/MOVSXD from a register, SETcc, CMOVcc — each as its
 * fast.ts handler does it (shift32, shift64, incdec, extendRR, setccR, cmovRR).
 */
function registerSource(op: Op, name: string, before: FlagRecord | undefined): InlineSource | undefined {
  const size = op.size0;
  if (op.kind0 !== OP_GPR || op.reg0 >= 16) return undefined;
  const d = 2 * op.reg0;
  const src1 = op.nops > 1 && op.kind1 === OP_GPR && op.reg1 < 16 ? 2 * op.reg1 : -1;
  const shiftKind = name === 'shift_shl' ? 0 : name === 'shift_shr' ? 1 : name === 'shift_sar' ? 2 : -1;
  if (shiftKind >= 0 && op.kind1 === OP_IMM && (size === 4 || size === 8)) {
    return { code: size === 4 ? shift32Source(shiftKind, op.imm & 31, d) : shift64Source(shiftKind, op.imm & 63, d), mayLeave: false };
  }
  if ((name === 'alu_inc' || name === 'alu_dec') && op.nops === 1 && (size === 4 || size === 8)) {
    const dec = name === 'alu_dec';
    const rh = size === 8 ? (dec ? '(a === 0 ? (ah - 1) | 0 : ah)' : '(x === 0 ? (ah + 1) | 0 : ah)') : '0';
    return {
      code: `{ const cf = ${cfSource(before) ?? 'G(c)'}; const a = g[${d}], ah = ${size === 8 ? `g[${d + 1}]` : '0'}; const x = (a ${dec ? '-' : '+'} 1) | 0, xh = ${rh}; ` +
        `c.lfOp = ${dec ? LF_DEC : LF_INC}; c.lfSize = ${size}; c.lfDst = a; c.lfDstHi = ah; c.lfSrc = 1; c.lfSrcHi = 0; c.lfRes = x; c.lfResHi = xh; c.lfAux = cf; ` +
        `g[${d}] = x; g[${d + 1}] = xh; }`,
      mayLeave: false,
      flags: { kind: 'result', size },
    };
  }
  if ((name === 'alu_adc' || name === 'alu_sbb') && op.nops === 2 && (size === 4 || size === 8) && (src1 >= 0 || op.kind1 === OP_IMM)) {
    // fast.ts adcSbbRR (and alu.ts binop for an immediate): the carry-in kept in the record's aux.
    const sbb = name === 'alu_sbb';
    const b = src1 >= 0 ? `const b = g[${src1}], bh = g[${src1 + 1}];` : `const b = ${op.imm | 0}, bh = ${op.immHi | 0};`;
    const lf = sbb ? LF_SBB : LF_ADC;
    if (size === 4) {
      return {
        code: `{ const cin = ${cfSource(before) ?? 'G(c)'}; ${b} const a = g[${d}]; const x = (a ${sbb ? '- b - cin' : '+ b + cin'}) | 0; ` +
          `c.lfOp = ${lf}; c.lfSize = 4; c.lfDst = a; c.lfDstHi = 0; c.lfSrc = b; c.lfSrcHi = 0; c.lfRes = x; c.lfResHi = 0; c.lfAux = cin; g[${d}] = x; g[${d + 1}] = 0; }`,
        mayLeave: false,
        flags: { kind: 'result', size },
      };
    }
    const hi = sbb ? 'const x = (a - b - cin) | 0, xh = (ah - bh - ((a >>> 0) < (b >>> 0) + cin ? 1 : 0)) | 0;'
      : 'const lo = (a >>> 0) + (b >>> 0) + cin, x = lo | 0, xh = (ah + bh + (lo > 0xffffffff ? 1 : 0)) | 0;';
    return {
      code: `{ const cin = ${cfSource(before) ?? 'G(c)'}; ${b} const a = g[${d}], ah = g[${d + 1}]; ${hi} ` +
        `c.lfOp = ${lf}; c.lfSize = 8; c.lfDst = a; c.lfDstHi = ah; c.lfSrc = b; c.lfSrcHi = bh; c.lfRes = x; c.lfResHi = xh; c.lfAux = cin; g[${d}] = x; g[${d + 1}] = xh; }`,
      mayLeave: false,
      flags: { kind: 'result', size },
    };
  }
  if (name === 'mul_imul2' && size === 8 && op.nops === 2 && src1 >= 0) {
    // fast.ts imulInto, inline where the factors make one 32 x 32 product (muldiv.ts mulU32's partial products): both
    // below 2^32 (multi-precision code multiplies 32-bit halves; CF = OF = bit 63 of the product) or both in int32 range
    // (never overflows).
    return {
      code: `{ const a = g[${d}], ah = g[${d + 1}], b = g[${src1}], bh = g[${src1 + 1}]; ` +
        'if ((ah | bh) === 0 || (ah === a >> 31 && bh === b >> 31)) { ' +
        'const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16, p01 = a0 * b1, p10 = a1 * b0; ' +
        'const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff); const lo = Math.imul(a, b); ' +
        'let hi = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0; if ((ah | bh) !== 0) hi = (hi - (a < 0 ? b : 0) - (b < 0 ? a : 0)) | 0; ' +
        `g[${d}] = lo; g[${d + 1}] = hi; c.lfOp = ${LF_CO}; c.lfSize = 8; c.lfRes = lo; c.lfResHi = hi; ` +
        `c.lfAux = (ah | bh) === 0 && hi < 0 ? ${FLAG_CF | FLAG_OF} : 0; } else IM(c, ${d}, b, bh); }`,
      mayLeave: false,
    };
  }
  const from = op.size1;
  if ((name === 'mov_movzx' || name === 'mov_movsx' || name === 'mov_movsxd') && (size === 4 || size === 8) && src1 >= 0 &&
    (from === 1 || from === 2 || (from === 4 && name === 'mov_movsxd' && size === 8))) {
    if (name === 'mov_movzx') return { code: `g[${d}] = g[${src1}] & ${from === 1 ? 0xff : 0xffff}; g[${d + 1}] = 0;`, mayLeave: false };
    const shift = 32 - from * 8;
    const x = shift === 0 ? `g[${src1}]` : `(g[${src1}] << ${shift}) >> ${shift}`;
    return { code: `{ const x = ${x}; g[${d}] = x; g[${d + 1}] = ${size === 8 ? 'x >> 31' : '0'}; }`, mayLeave: false };
  }
  const test = (cc: number): string => (before !== undefined ? condSource(before, cc) : undefined) ?? `C(c, ${cc})`;
  if (name === 'mov_setcc' && size === 1) return { code: `g[${d}] = (g[${d}] & -256) | ((${test(op.opcode & 15)}) ? 1 : 0);`, mayLeave: false };
  if (name === 'mov_cmov' && (size === 4 || size === 8) && src1 >= 0) {
    const move = `g[${d}] = g[${src1}]; g[${d + 1}] = ${size === 8 ? `g[${src1 + 1}]` : '0'};`;
    return { code: `if (${test(op.opcode & 15)}) { ${move} }${size === 4 ? ` else g[${d + 1}] = 0;` : ''}`, mayLeave: false };
  }
  return undefined;
}

/** SHL/SHR/SAR r32 by constant n (fast.ts shift32): count 0 only zero-extends. */
function shift32Source(kind: number, n: number, d: number): string {
  if (n === 0) return `g[${d + 1}] = 0;`;
  const body = kind === 0 ? `const r = v << ${n}, cf = (v >>> ${32 - n}) & 1, of = (r >>> 31) ^ cf;`
    : kind === 1 ? `const r = v >>> ${n}, cf = (v >>> ${n - 1}) & 1, of = v >>> 31;`
      : `const r = v >> ${n}, cf = (v >> ${n - 1}) & 1, of = 0;`;
  return `{ const v = g[${d}]; g[${d + 1}] = 0; ${body} g[${d}] = r; c.lfOp = ${LF_CO}; c.lfSize = 4; c.lfRes = r; c.lfResHi = 0; c.lfAux = cf | (of << 11); }`;
}

/** SHL/SHR/SAR r64 by constant n (fast.ts shift64, shift.ts shl64/shr64/sar64): count 0 changes nothing. */
function shift64Source(kind: number, n: number, d: number): string {
  if (n === 0) return '';
  let res: string;
  let flags: string;
  if (kind === 0) {
    res = n < 32 ? `const rl = lo << ${n}, rh = (hi << ${n}) | (lo >>> ${32 - n});` : `const rl = 0, rh = lo << ${n - 32};`;
    flags = `const cf = ${bitSource(64 - n)}, of = (rh >>> 31) ^ cf;`;
  } else {
    const hiPart = kind === 1 ? (n < 32 ? `hi >>> ${n}` : '0') : (n < 32 ? `hi >> ${n}` : 'hi >> 31');
    const loPart = n < 32 ? `(lo >>> ${n}) | (hi << ${32 - n})` : kind === 1 ? `hi >>> ${n - 32}` : `hi >> ${n - 32}`;
    res = `const rl = (${loPart}) | 0, rh = (${hiPart}) | 0;`;
    flags = `const cf = ${bitSource(n - 1)}, of = ${kind === 1 ? 'hi >>> 31' : '0'};`;
  }
  return `{ const lo = g[${d}], hi = g[${d + 1}]; ${res} ${flags} g[${d}] = rl; g[${d + 1}] = rh; ` +
    `c.lfOp = ${LF_CO}; c.lfSize = 8; c.lfRes = rl; c.lfResHi = rh; c.lfAux = cf | (of << 11); }`;
}
