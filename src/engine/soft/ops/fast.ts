/**
 * Specialised handlers for the commonest operand shapes, chosen once when an
 * instruction is decoded (cpu.ts): MOV, LEA-free ALU ops, PUSH/POP, Jcc,
 * with 32- and 64-bit register, immediate and simple memory operands.
 * Each does exactly what the generic family handler does for that shape
 * (test/soft/native.test.ts runs both); the generic ones cover the rest.
 */
import { BASE_RIP, OP_GPR, OP_IMM, OP_MEM, OP_REL } from '../decode/index.js';
import { cond, getCF, setCarryOverflow } from '../flags.js';
import type { Cpu } from '../cpu.js';
import { opKind, opReg, type Handler, type Op } from '../op.js';
import { ea, pop64, push64, regAddr, setRegAddr, T32 } from '../operands.js';
import { FLAG_CF, FLAG_OF, LF_ADC, LF_ADD, LF_CO, LF_DEC, LF_INC, LF_LOGIC, LF_SBB, LF_SUB, RSP } from '../state.js';
import { checkCanonicalTarget } from './branch.js';
import { setArith, setLogic } from './alu.js';
import { mulS64, P0, P1, P2, P3, setMulFlags } from './muldiv.js';
import { bit64, RHI, RLO, sar64, setCO, shl64, shr64 } from './shift.js';

const ADD = 0, SUB = 1, AND = 2, OR = 3, XOR = 4, CMP = 5, TEST = 6;
const ALU_HANDLERS: Record<string, number> = { alu_add: ADD, alu_sub: SUB, alu_and: AND, alu_or: OR, alu_xor: XOR, alu_cmp: CMP, alu_test: TEST };

/** dst (lo, hi) op src (lo, hi) for 64-bit operands; returns lo, high half in RH; records flags. */
let RH = 0;
function alu64(c: Cpu, k: number, d: number, dh: number, s: number, sh: number): number {
  let r: number;
  switch (k) {
    case ADD: {
      const lo = (d >>> 0) + (s >>> 0);
      r = lo | 0;
      RH = (dh + sh + (lo > 0xffffffff ? 1 : 0)) | 0;
      c.lfOp = LF_ADD; c.lfDst = d; c.lfDstHi = dh; c.lfSrc = s; c.lfSrcHi = sh;
      break;
    }
    case SUB: case CMP:
      r = (d - s) | 0;
      RH = (dh - sh - ((d >>> 0) < (s >>> 0) ? 1 : 0)) | 0;
      c.lfOp = LF_SUB; c.lfDst = d; c.lfDstHi = dh; c.lfSrc = s; c.lfSrcHi = sh;
      break;
    case AND: case TEST: r = d & s; RH = dh & sh; c.lfOp = LF_LOGIC; break;
    case OR: r = d | s; RH = dh | sh; c.lfOp = LF_LOGIC; break;
    default: r = d ^ s; RH = dh ^ sh; c.lfOp = LF_LOGIC;
  }
  c.lfSize = 8; c.lfRes = r; c.lfResHi = RH; c.lfAux = 0;
  return r;
}

function alu32(c: Cpu, k: number, d: number, s: number): number {
  let r: number;
  switch (k) {
    case ADD: r = (d + s) | 0; c.lfOp = LF_ADD; c.lfDst = d; c.lfSrc = s; break;
    case SUB: case CMP: r = (d - s) | 0; c.lfOp = LF_SUB; c.lfDst = d; c.lfSrc = s; break;
    case AND: case TEST: r = d & s; c.lfOp = LF_LOGIC; break;
    case OR: r = d | s; c.lfOp = LF_LOGIC; break;
    default: r = d ^ s; c.lfOp = LF_LOGIC;
  }
  c.lfSize = 4; c.lfRes = r; c.lfAux = 0;
  return r;
}

function aluRR(k: number, size: number): Handler {
  const write = k !== CMP && k !== TEST;
  if (size === 8) {
    return (c, i) => {
      const g = c.gpr;
      const d = i.r0, s = i.r1;
      const r = alu64(c, k, g[d] as number, g[d + 1] as number, g[s] as number, g[s + 1] as number);
      if (write) { g[d] = r; g[d + 1] = RH; }
    };
  }
  return (c, i) => {
    const g = c.gpr;
    const d = i.r0, s = i.r1;
    const r = alu32(c, k, g[d] as number, g[s] as number);
    if (write) { g[d] = r; g[d + 1] = 0; }
  };
}

function aluRI(k: number, size: number): Handler {
  const write = k !== CMP && k !== TEST;
  if (size === 8) {
    return (c, i) => {
      const g = c.gpr;
      const d = i.r0;
      const r = alu64(c, k, g[d] as number, g[d + 1] as number, i.imm, i.immHi);
      if (write) { g[d] = r; g[d + 1] = RH; }
    };
  }
  return (c, i) => {
    const g = c.gpr;
    const d = i.r0;
    const r = alu32(c, k, g[d] as number, i.imm);
    if (write) { g[d] = r; g[d + 1] = 0; }
  };
}

/** op reg, [mem] */
function aluRM(k: number, size: number): Handler {
  const write = k !== CMP && k !== TEST;
  if (size === 8) {
    return (c, i) => {
      const g = c.gpr;
      const s = c.read64(ea(c, i));
      const d = i.r0;
      const r = alu64(c, k, g[d] as number, g[d + 1] as number, s, c.hi);
      if (write) { g[d] = r; g[d + 1] = RH; }
    };
  }
  return (c, i) => {
    const g = c.gpr;
    const s = c.read32(ea(c, i));
    const d = i.r0;
    const r = alu32(c, k, g[d] as number, s);
    if (write) { g[d] = r; g[d + 1] = 0; }
  };
}

/** cmp/test [mem], reg|imm (no write) */
function aluMX(k: number, size: number, imm: boolean): Handler {
  if (size === 8) {
    return (c, i) => {
      const d = c.read64(ea(c, i));
      const dh = c.hi;
      const s = imm ? i.imm : c.gpr[i.r1] as number;
      const sh = imm ? i.immHi : c.gpr[i.r1 + 1] as number;
      alu64(c, k, d, dh, s, sh);
    };
  }
  return (c, i) => {
    const d = c.read32(ea(c, i));
    alu32(c, k, d, imm ? i.imm : c.gpr[i.r1] as number);
  };
}

/** dst op src for byte or word operands (zero-extended); returns the result; records flags as alu.ts binop does. */
function aluSmallOp(c: Cpu, k: number, size: number, d: number, s: number): number {
  const m = size === 1 ? 0xff : 0xffff;
  let r: number;
  switch (k) {
    case ADD: r = (d + s) & m; setArith(c, LF_ADD, size, d, 0, s, 0, r, 0, 0); break;
    case SUB: case CMP: r = (d - s) & m; setArith(c, LF_SUB, size, d, 0, s, 0, r, 0, 0); break;
    case AND: case TEST: r = d & s; setLogic(c, size, r, 0); break;
    case OR: r = d | s; setLogic(c, size, r, 0); break;
    default: r = d ^ s; setLogic(c, size, r, 0);
  }
  return r;
}

/** op r, r / r, imm / r, [m] at 8 or 16 bits on the low bytes/words of RAX-R15 (not AH-BH). */
function aluSmall(k: number, size: number, src: 'reg' | 'imm' | 'mem'): Handler {
  const write = k !== CMP && k !== TEST;
  const m = size === 1 ? 0xff : 0xffff;
  return (c, i) => {
    const g = c.gpr;
    const s = src === 'reg' ? (g[i.r1] as number) & m : src === 'imm' ? i.imm & m : size === 1 ? c.read8(ea(c, i)) : c.read16(ea(c, i));
    const d = i.r0;
    const r = aluSmallOp(c, k, size, (g[d] as number) & m, s);
    if (write) g[d] = ((g[d] as number) & ~m) | r;
  };
}

/** cmp/test [m], r|imm at 8 or 16 bits */
function aluMXSmall(k: number, size: number, imm: boolean): Handler {
  const m = size === 1 ? 0xff : 0xffff;
  return (c, i) => {
    const d = size === 1 ? c.read8(ea(c, i)) : c.read16(ea(c, i));
    aluSmallOp(c, k, size, d, imm ? i.imm & m : (c.gpr[i.r1] as number) & m);
  };
}

/** MOV at 8 or 16 bits: the low byte/word of the destination register is replaced, the rest kept. */
function movSmall(size: number, shape: 'rr' | 'ri' | 'rm' | 'mr' | 'mi'): Handler {
  const m = size === 1 ? 0xff : 0xffff;
  const merge = (c: Cpu, d: number, v: number): void => { const g = c.gpr; g[d] = ((g[d] as number) & ~m) | v; };
  switch (shape) {
    case 'rr': return (c, i) => merge(c, i.r0, (c.gpr[i.r1] as number) & m);
    case 'ri': return (c, i) => merge(c, i.r0, i.imm & m);
    case 'rm': return (c, i) => merge(c, i.r0, size === 1 ? c.read8(ea(c, i)) : c.read16(ea(c, i)));
    case 'mr': return (c, i) => { const v = (c.gpr[i.r1] as number) & m; if (size === 1) c.write8(ea(c, i), v); else c.write16(ea(c, i), v); };
    default: return (c, i) => { if (size === 1) c.write8(ea(c, i), i.imm & m); else c.write16(ea(c, i), i.imm & m); };
  }
}
const MOV_SMALL = [1, 2].map((size) => ({
  rr: movSmall(size, 'rr'), ri: movSmall(size, 'ri'), rm: movSmall(size, 'rm'), mr: movSmall(size, 'mr'), mi: movSmall(size, 'mi'),
}));

const movRR8: Handler = (c, i) => {
  const g = c.gpr;
  const d = i.r0, s = i.r1;
  g[d] = g[s] as number; g[d + 1] = g[s + 1] as number;
};
const movRR4: Handler = (c, i) => {
  const g = c.gpr;
  const d = i.r0;
  g[d] = g[i.r1] as number; g[d + 1] = 0;
};
const movRI8: Handler = (c, i) => { const d = i.r0; c.gpr[d] = i.imm; c.gpr[d + 1] = i.immHi; };
const movRI4: Handler = (c, i) => { const d = i.r0; c.gpr[d] = i.imm; c.gpr[d + 1] = 0; };
const movRM8: Handler = (c, i) => { const lo = c.read64(ea(c, i)); const d = i.r0; c.gpr[d] = lo; c.gpr[d + 1] = c.hi; };
const movRM4: Handler = (c, i) => { const lo = c.read32(ea(c, i)); const d = i.r0; c.gpr[d] = lo; c.gpr[d + 1] = 0; };
const movMR8: Handler = (c, i) => { const s = i.r1; c.write64(ea(c, i), c.gpr[s] as number, c.gpr[s + 1] as number); };
const movMR4: Handler = (c, i) => { c.write32(ea(c, i), c.gpr[i.r1] as number); };
const movMI8: Handler = (c, i) => { c.write64(ea(c, i), i.imm, i.immHi); };
const movMI4: Handler = (c, i) => { c.write32(ea(c, i), i.imm); };

const pushR: Handler = (c, i) => { const r = i.r0; push64(c, c.gpr[r] as number, c.gpr[r + 1] as number); };
const popR: Handler = (c, i) => { const lo = pop64(c); const r = i.r0; c.gpr[r] = lo; c.gpr[r + 1] = c.hi; };

const JCC: Handler[] = [];
for (let cc = 0; cc < 16; cc++) JCC.push((c, i) => { if (cond(c, cc)) c.nextRip += i.imm; });
const jmpRel: Handler = (c, i) => { c.nextRip += i.imm; };
const callRel: Handler = (c, i) => {
  const ret = c.nextRip;
  push64(c, ret, Math.floor(ret / T32));
  c.nextRip = ret + i.imm;
};
const ret: Handler = (c) => {
  const sp = regAddr(c, RSP);
  const lo = c.read64(sp);
  checkCanonicalTarget(c, c.hi);
  c.nextRip = c.hi * T32 + (lo >>> 0);
  setRegAddr(c, RSP, sp + 8);
};

/** ROL/ROR r32, imm8: CF and OF as the SDM defines them; other flags kept (shift.ts). */
function rot32(left: boolean): Handler {
  return (c, i) => {
    const n = (i.imm & 31);
    if (n === 0) { c.gpr[i.r0 + 1] = 0; return; }
    const d = i.r0;
    const v = c.gpr[d] as number;
    const r = left ? (v << n) | (v >>> (32 - n)) : (v >>> n) | (v << (32 - n));
    c.gpr[d] = r;
    c.gpr[d + 1] = 0;
    const msb = r >>> 31;
    const cf = left ? r & 1 : msb;
    const of = left ? msb ^ cf : msb ^ ((r >>> 30) & 1);
    setCarryOverflow(c, FLAG_CF | FLAG_OF, cf | (of << 11));
  };
}

/** SHL/SHR/SAR r32, imm8 (count 1-31). */
function shift32(kind: number): Handler {
  return (c, i) => {
    const n = i.imm & 31;
    const d = i.r0;
    const v = c.gpr[d] as number;
    c.gpr[d + 1] = 0;
    if (n === 0) return;
    let r: number, cf: number, of: number;
    if (kind === 0) { r = v << n; cf = (v >>> (32 - n)) & 1; of = (r >>> 31) ^ cf; }
    else if (kind === 1) { r = v >>> n; cf = (v >>> (n - 1)) & 1; of = v >>> 31; }
    else { r = v >> n; cf = (v >> (n - 1)) & 1; of = 0; }
    c.gpr[d] = r;
    c.lfOp = LF_CO; c.lfSize = 4; c.lfRes = r; c.lfResHi = 0; c.lfAux = cf | (of << 11);
  };
}

/** SHL/SHR/SAR r64, imm8 (shift.ts shift, without the generic operand access). */
function shift64(kind: number): Handler {
  return (c, i) => {
    const n = i.imm & 63;
    if (n === 0) return;
    const g = c.gpr;
    const d = i.r0;
    const lo = g[d] as number, hi = g[d + 1] as number;
    let cf: number, of: number;
    if (kind === 0) { shl64(lo, hi, n); cf = bit64(lo, hi, 64 - n); of = (RHI >>> 31) ^ cf; }
    else if (kind === 1) { shr64(lo, hi, n); cf = bit64(lo, hi, n - 1); of = hi >>> 31; }
    else { sar64(lo, hi, n); cf = bit64(lo, hi, n - 1); of = 0; }
    g[d] = RLO; g[d + 1] = RHI;
    setCO(c, 8, RLO, RHI, cf, of);
  };
}

/** IMUL r64, r64 / r64, [m] (muldiv.ts imulTrunc): the truncated product, CF = OF = it did not fit. */
function imul64(mem: boolean): Handler {
  return (c, i) => {
    if (mem) {
      const b = c.read64(ea(c, i));
      imulInto(c, i.r0, b, c.hi);
    } else imulInto(c, i.r0, c.gpr[i.r1] as number, c.gpr[i.r1 + 1] as number);
  };
}

/** GPR pair d (2 × register) = d × (b, bh), truncated to 64 bits, with IMUL's flags. Compiled regions call it for factors beyond 32 bits. */
export function imulInto(c: Cpu, d: number, b: number, bh: number): void {
  const g = c.gpr;
  mulS64(g[d] as number, g[d + 1] as number, b, bh);
  g[d] = P0; g[d + 1] = P1;
  setMulFlags(c, 8, P0, P1, !(P2 === P1 >> 31 && P3 === P1 >> 31));
}

/** ADC/SBB r, r at 32/64 bits (alu.ts binop): the carry-in from the pending flags, kept in the record's aux. */
function adcSbbRR(sbb: boolean, size: number): Handler {
  return (c, i) => {
    const g = c.gpr;
    const dr = i.r0, sr = i.r1;
    const cin = getCF(c);
    const d = g[dr] as number, s = g[sr] as number;
    if (size === 4) {
      const r = (sbb ? d - s - cin : d + s + cin) | 0;
      setArith(c, sbb ? LF_SBB : LF_ADC, 4, d, 0, s, 0, r, 0, cin);
      g[dr] = r; g[dr + 1] = 0;
      return;
    }
    const dh = g[dr + 1] as number, sh = g[sr + 1] as number;
    let r: number, rh: number;
    if (sbb) {
      r = (d - s - cin) | 0;
      rh = (dh - sh - ((d >>> 0) < (s >>> 0) + cin ? 1 : 0)) | 0;
    } else {
      const lo = (d >>> 0) + (s >>> 0) + cin;
      r = lo | 0;
      rh = (dh + sh + (lo > 0xffffffff ? 1 : 0)) | 0;
    }
    setArith(c, sbb ? LF_SBB : LF_ADC, 8, d, dh, s, sh, r, rh, cin);
    g[dr] = r; g[dr + 1] = rh;
  };
}

/** CMOVcc r, r at 32/64 bits (mov.ts mov_cmov): a 32-bit destination is zero-extended either way. */
function cmovRR(size: number): Handler {
  return (c, i) => {
    const g = c.gpr;
    const d = i.r0;
    if (cond(c, i.opcode & 15)) {
      const s = i.r1;
      g[d] = g[s] as number;
      g[d + 1] = size === 8 ? g[s + 1] as number : 0;
    } else if (size === 4) g[d + 1] = 0;
  };
}

/** SETcc r8, a low-byte register (mov.ts mov_setcc). */
const setccR: Handler = (c, i) => {
  const g = c.gpr;
  const d = i.r0;
  g[d] = ((g[d] as number) & ~0xff) | (cond(c, i.opcode & 15) ? 1 : 0);
};

/** MOVZX r32/r64, r8/r16 and MOVSX/MOVSXD r32/r64, r8/r16/r32 (mov.ts mov_movzx, mov_movsx). */
function extendRR(signed: boolean, from: number, size: number): Handler {
  const shift = 32 - from * 8;
  return (c, i) => {
    const g = c.gpr;
    const d = i.r0;
    const v = g[i.r1] as number;
    if (!signed) {
      g[d] = v & ((1 << (from * 8)) - 1);
      g[d + 1] = 0;
      return;
    }
    const x = shift === 0 ? v : (v << shift) >> shift;
    g[d] = x;
    g[d + 1] = size === 8 ? x >> 31 : 0;
  };
}

/** INC/DEC r32/r64 (alu.ts incdec): CF kept in the record's aux. */
function incdec(dec: boolean, size: number): Handler {
  return (c, i) => {
    const cf = getCF(c);
    const g = c.gpr;
    const k = i.r0;
    const d = g[k] as number, dh = size === 8 ? g[k + 1] as number : 0;
    const r = (dec ? d - 1 : d + 1) | 0;
    const rh = size === 8 ? (dec ? (d === 0 ? (dh - 1) | 0 : dh) : (r === 0 ? (dh + 1) | 0 : dh)) : 0;
    c.lfOp = dec ? LF_DEC : LF_INC; c.lfSize = size;
    c.lfDst = d; c.lfDstHi = dh; c.lfSrc = 1; c.lfSrcHi = 0; c.lfRes = r; c.lfResHi = rh; c.lfAux = cf;
    g[k] = r; g[k + 1] = rh;
  };
}

/** MOVZX r32/r64, byte or word [m] (mov.ts mov_movzx). */
const movzxM8: Handler = (c, i) => { const v = c.read8(ea(c, i)); const d = i.r0; c.gpr[d] = v; c.gpr[d + 1] = 0; };
const movzxM16: Handler = (c, i) => { const v = c.read16(ea(c, i)); const d = i.r0; c.gpr[d] = v; c.gpr[d + 1] = 0; };

/** Memory operand simple enough for the specialised path: 64-bit addressing, no 16-bit forms. */
function plainMem(i: Op): boolean {
  return i.asize === 8 && (i.base === BASE_RIP || i.base >= -1);
}

/**
 * Whether `fn` is one of this file's handlers: each is a few lines for one
 * operand shape, small enough for compiled regions to call directly (V8 then
 * inlines it) where other handlers go through one shared call site.
 */
export function isSpecialised(fn: Handler): boolean {
  return SPECIALISED.has(fn);
}

const SPECIALISED = new WeakSet<Handler>();

/** A specialised handler for `i` (by the name the table binds), or undefined to keep the generic one. */
export function specialize(name: string, i: Op): Handler | undefined {
  const h = pick(name, i);
  if (h !== undefined) SPECIALISED.add(h);
  return h;
}

function pick(name: string, i: Op): Handler | undefined {
  const k0 = i.kind0, k1 = i.kind1;
  const size = i.size0;
  const gpr = (n: number): boolean => opKind(i, n) === OP_GPR && opReg(i, n) < 16;
  if (name === 'mov_mov' && (size === 8 || size === 4) && i.nops === 2) {
    if (gpr(0) && gpr(1)) return size === 8 ? movRR8 : movRR4;
    if (gpr(0) && k1 === OP_IMM) return size === 8 ? movRI8 : movRI4;
    if (gpr(0) && k1 === OP_MEM && plainMem(i)) return size === 8 ? movRM8 : movRM4;
    if (k0 === OP_MEM && gpr(1) && plainMem(i)) return size === 8 ? movMR8 : movMR4;
    if (k0 === OP_MEM && k1 === OP_IMM && plainMem(i)) return size === 8 ? movMI8 : movMI4;
    return undefined;
  }
  if (name === 'mov_mov' && (size === 1 || size === 2) && i.nops === 2) {
    const mv = MOV_SMALL[size - 1] as (typeof MOV_SMALL)[number];
    if (gpr(0) && gpr(1)) return mv.rr;
    if (gpr(0) && k1 === OP_IMM) return mv.ri;
    if (gpr(0) && k1 === OP_MEM && plainMem(i)) return mv.rm;
    if (k0 === OP_MEM && gpr(1) && plainMem(i)) return mv.mr;
    if (k0 === OP_MEM && k1 === OP_IMM && plainMem(i)) return mv.mi;
    return undefined;
  }
  const k = ALU_HANDLERS[name];
  if (k !== undefined && (size === 1 || size === 2) && i.nops === 2) {
    if (gpr(0) && gpr(1)) return aluSmall(k, size, 'reg');
    if (gpr(0) && k1 === OP_IMM) return aluSmall(k, size, 'imm');
    if (gpr(0) && k1 === OP_MEM && plainMem(i)) return aluSmall(k, size, 'mem');
    if ((k === CMP || k === TEST) && k0 === OP_MEM && plainMem(i) && (gpr(1) || k1 === OP_IMM)) return aluMXSmall(k, size, k1 === OP_IMM);
    return undefined;
  }
  if (k !== undefined && (size === 8 || size === 4) && i.nops === 2) {
    if (gpr(0) && gpr(1)) return aluRR(k, size);
    if (gpr(0) && k1 === OP_IMM) return aluRI(k, size);
    if (gpr(0) && k1 === OP_MEM && plainMem(i)) return aluRM(k, size);
    if ((k === CMP || k === TEST) && k0 === OP_MEM && plainMem(i) && (gpr(1) || k1 === OP_IMM)) return aluMX(k, size, k1 === OP_IMM);
    return undefined;
  }
  if ((name === 'shift_rol' || name === 'shift_ror') && size === 4 && gpr(0) && k1 === OP_IMM) return rot32(name === 'shift_rol');
  if ((name === 'shift_shl' || name === 'shift_shr' || name === 'shift_sar') && size === 4 && gpr(0) && k1 === OP_IMM) {
    return shift32(name === 'shift_shl' ? 0 : name === 'shift_shr' ? 1 : 2);
  }
  if ((name === 'shift_shl' || name === 'shift_shr' || name === 'shift_sar') && size === 8 && gpr(0) && k1 === OP_IMM) {
    return shift64(name === 'shift_shl' ? 0 : name === 'shift_shr' ? 1 : 2);
  }
  if ((name === 'alu_adc' || name === 'alu_sbb') && (size === 8 || size === 4) && i.nops === 2 && gpr(0) && gpr(1)) return adcSbbRR(name === 'alu_sbb', size);
  if (name === 'mov_cmov' && (size === 8 || size === 4) && gpr(0) && gpr(1)) return cmovRR(size);
  if (name === 'mov_setcc' && size === 1 && gpr(0)) return setccR;
  if ((name === 'mov_movzx' || name === 'mov_movsx' || name === 'mov_movsxd') && (size === 8 || size === 4) && gpr(0) && gpr(1) &&
    (i.size1 === 1 || i.size1 === 2 || (i.size1 === 4 && name === 'mov_movsxd' && size === 8))) {
    return extendRR(name !== 'mov_movzx', i.size1, size);
  }
  if (name === 'mul_imul2' && size === 8 && gpr(0) && (gpr(1) || (k1 === OP_MEM && plainMem(i)))) return imul64(k1 === OP_MEM);
  if ((name === 'alu_inc' || name === 'alu_dec') && (size === 8 || size === 4) && i.nops === 1 && gpr(0)) return incdec(name === 'alu_dec', size);
  if (name === 'mov_movzx' && (size === 8 || size === 4) && gpr(0) && k1 === OP_MEM && plainMem(i)) {
    if (i.size1 === 1) return movzxM8;
    if (i.size1 === 2) return movzxM16;
  }
  if (name === 'stack_push' && i.osize === 8 && gpr(0)) return pushR;
  if (name === 'stack_pop' && i.osize === 8 && gpr(0)) return popR;
  if (name === 'flow_jcc') return JCC[i.opcode & 15];
  if (name === 'flow_jmp' && k0 === OP_REL) return jmpRel;
  if (name === 'flow_call' && k0 === OP_REL) return callRel;
  if (name === 'flow_ret' && i.nops === 0) return ret;
  return undefined;
}
