/**
 * SSE and SSE2 (SDM Vol. 2, each instruction's entry; Vol. 1, chapters 10-11):
 * moves, packed integer, packed and scalar single/double floating point,
 * comparisons, conversions, shuffles, MXCSR.
 *
 * Every operand is a register index into cpu.xmm: a memory source is first
 * loaded into scratch register 16. Floating point uses the host's IEEE
 * binary64 (and Math.fround for binary32, which rounds +, -, *, /, sqrt
 * exactly as a binary32 unit would); NaN results follow the SSE rules
 * (first NaN operand, quietened; else the default NaN, sign set). MXCSR
 * exception flags are not raised, and exceptions stay masked (README.md).
 * Legacy-SSE alignment checks (#GP on unaligned 16-byte operands) are not made.
 */
import { OP_GPR, OP_MEM, OP_XMM } from '../decode/index.js';
import { setStatus } from '../flags.js';
import type { Cpu } from '../cpu.js';
import { CpuException, VEC_GP } from '../mmu.js';
import { opKind, opReg, type Op } from '../op.js';
import { ea, rd, regAddr, wr, writeReg } from '../operands.js';
import { FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF, RDI } from '../state.js';
import type { HandlerMap } from './types.js';
import type { Handler } from '../op.js';

const SCR = 16;

const T32 = 4294967296;

/** Loads `bytes` from memory into register r (the rest zeroed). */
function load(c: Cpu, a: number, r: number, bytes: number): void {
  const x = c.xmm;
  const b = r * 4;
  x[b] = 0; x[b + 1] = 0; x[b + 2] = 0; x[b + 3] = 0;
  switch (bytes) {
    case 16: x[b] = c.read32(a); x[b + 1] = c.read32(a + 4); x[b + 2] = c.read32(a + 8); x[b + 3] = c.read32(a + 12); return;
    case 8: x[b] = c.read32(a); x[b + 1] = c.read32(a + 4); return;
    case 4: x[b] = c.read32(a); return;
    case 2: x[b] = c.read16(a); return;
    default: x[b] = c.read8(a);
  }
}

function store(c: Cpu, a: number, r: number, bytes: number): void {
  const x = c.xmm;
  const b = r * 4;
  switch (bytes) {
    case 16:
      c.probeWrite(a, 16);
      c.write64(a, x[b] as number, x[b + 1] as number);
      c.write64(a + 8, x[b + 2] as number, x[b + 3] as number);
      return;
    case 8: c.write64(a, x[b] as number, x[b + 1] as number); return;
    case 4: c.write32(a, x[b] as number); return;
    case 2: c.write16(a, x[b] as number); return;
    default: c.write8(a, x[b] as number);
  }
}

/** Operand n as a register index, loading `bytes` from memory into scratch if it is a memory operand. */
function src(c: Cpu, i: Op, n: number, bytes: number): number {
  if (opKind(i, n) === OP_XMM) return opReg(i, n);
  load(c, ea(c, i), SCR, bytes);
  return SCR;
}

/** A 16-byte load into XMM register r, all or nothing (compiled regions call it on a TLB miss). */
export function load128(c: Cpu, a: number, r: number): void {
  load(c, a, SCR, 16);
  copyReg(c, r, SCR);
}

/** A 16-byte store of XMM register r, all or nothing (compiled regions call it on a TLB miss). */
export function store128(c: Cpu, a: number, r: number): void {
  store(c, a, r, 16);
}

function copyReg(c: Cpu, d: number, s: number): void {
  const x = c.xmm;
  x[d * 4] = x[s * 4] as number; x[d * 4 + 1] = x[s * 4 + 1] as number; x[d * 4 + 2] = x[s * 4 + 2] as number; x[d * 4 + 3] = x[s * 4 + 3] as number;
}

/** Full 128-bit move in either direction (MOVAPS/MOVUPS/MOVDQA/MOVDQU/MOVNT*, LDDQU). */
function move128(c: Cpu, i: Op): void {
  if (i.kind0 === OP_XMM) copyReg(c, i.reg0, src(c, i, 1, 16));
  else store(c, ea(c, i), i.reg1, 16);
}

/** MOVSS/MOVSD: from memory the rest is zeroed; between registers only the low element moves. */
function moveScalar(c: Cpu, i: Op, bytes: number): void {
  const x = c.xmm;
  if (i.kind0 === OP_XMM) {
    const d = (i.reg0) * 4;
    if (i.kind1 === OP_XMM) {
      const s = (i.reg1) * 4;
      x[d] = x[s] as number;
      if (bytes === 8) x[d + 1] = x[s + 1] as number;
    } else {
      load(c, ea(c, i), SCR, bytes);
      copyReg(c, i.reg0, SCR);
    }
  } else if (i.kind1 === OP_XMM && i.kind0 !== OP_MEM) {
    const d = (i.reg0) * 4, s = (i.reg1) * 4;
    x[d] = x[s] as number;
    if (bytes === 8) x[d + 1] = x[s + 1] as number;
  } else {
    store(c, ea(c, i), i.reg1, bytes);
  }
}

/** MOVLPS/MOVLPD/MOVHPS/MOVHPD (memory forms): one 64-bit half to or from memory. */
function moveHalf(c: Cpu, i: Op, high: boolean): void {
  const x = c.xmm;
  const h = high ? 2 : 0;
  if (i.kind0 === OP_XMM) {
    const d = (i.reg0) * 4 + h;
    const a = ea(c, i);
    const lo = c.read32(a), hi = c.read32(a + 4);
    x[d] = lo; x[d + 1] = hi;
  } else {
    const s = (i.reg1) * 4 + h;
    c.write64(ea(c, i), x[s] as number, x[s + 1] as number);
  }
}

function sse_movd(c: Cpu, i: Op): void {
  const x = c.xmm;
  if (i.kind0 === OP_XMM) {
    const size = i.size1;
    const v = rd(c, i, 1, size);
    const d = (i.reg0) * 4;
    x[d] = v; x[d + 1] = size === 8 ? c.hi : 0; x[d + 2] = 0; x[d + 3] = 0;
  } else {
    const size = i.size0;
    const s = (i.reg1) * 4;
    wr(c, i, 0, size, x[s] as number, x[s + 1] as number);
  }
}

/** MOVQ xmm, xmm/m64 (F3 0F 7E) and MOVQ xmm/m64, xmm (66 0F D6): the upper half of a register destination is zeroed. */
function sse_movq(c: Cpu, i: Op): void {
  const x = c.xmm;
  if (i.kind0 === OP_XMM) {
    const s = src(c, i, 1, 8) * 4;
    const d = (i.reg0) * 4;
    x[d] = x[s] as number; x[d + 1] = x[s + 1] as number; x[d + 2] = 0; x[d + 3] = 0;
  } else {
    store(c, ea(c, i), i.reg1, 8);
  }
}

function movmsk(c: Cpu, i: Op, lanes: number): void {
  const s = i.reg1;
  let m = 0;
  if (lanes === 16) { for (let k = 0; k < 16; k++) m |= ((c.xmmU8[s * 16 + k] as number) >> 7) << k; }
  else if (lanes === 4) { for (let k = 0; k < 4; k++) m |= ((c.xmm[s * 4 + k] as number) >>> 31) << k; }
  else { m = ((c.xmm[s * 4 + 1] as number) >>> 31) | (((c.xmm[s * 4 + 3] as number) >>> 31) << 1); }
  writeReg(c, i.reg0, i.size0, m, 0);
}

// ---- Packed integer ----

type View = Uint8Array | Int8Array | Uint16Array | Int16Array | Int32Array | Uint32Array;

/** dst[k] = f(dst[k], src[k]) over `n` lanes of a view (its typed array wraps or saturates as f decides). */
function lanes(view: (c: Cpu) => View, n: number, f: (a: number, b: number) => number): Handler {
  return (c, i) => {
    const s = src(c, i, 1, 16) * n;
    const d = (i.reg0) * n;
    const v = view(c);
    for (let k = 0; k < n; k++) v[d + k] = f(v[d + k] as number, v[s + k] as number);
  };
}

const U8 = (c: Cpu): View => c.xmmU8;
const I8 = (c: Cpu): View => c.xmmI8;
const U16 = (c: Cpu): View => c.xmmU16;
const I16 = (c: Cpu): View => c.xmmI16;
const I32 = (c: Cpu): View => c.xmm;

const clamp = (v: number, lo: number, hi: number): number => (v < lo ? lo : v > hi ? hi : v);

/** 64-bit lanes as int32 pairs: dst = f(dst, src) with f on (lo, hi) pairs via the module pair. */
function lanes64(f: (c: Cpu, dl: number, dh: number, sl: number, sh: number) => void): Handler {
  return (c, i) => {
    const s = src(c, i, 1, 16) * 4;
    const d = (i.reg0) * 4;
    const x = c.xmm;
    for (let k = 0; k < 4; k += 2) {
      f(c, x[d + k] as number, x[d + k + 1] as number, x[s + k] as number, x[s + k + 1] as number);
      x[d + k] = PL; x[d + k + 1] = PH;
    }
  };
}
let PL = 0, PH = 0;

function add64(_c: Cpu, dl: number, dh: number, sl: number, sh: number): void {
  const lo = (dl >>> 0) + (sl >>> 0);
  PL = lo | 0; PH = (dh + sh + (lo > 0xffffffff ? 1 : 0)) | 0;
}
function sub64(_c: Cpu, dl: number, dh: number, sl: number, sh: number): void {
  PL = (dl - sl) | 0; PH = (dh - sh - ((dl >>> 0) < (sl >>> 0) ? 1 : 0)) | 0;
}
function muludq(_c: Cpu, dl: number, _dh: number, sl: number): void {
  const a = dl >>> 0, b = sl >>> 0;
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const mid = a1 * b0 + a0 * b1;
  const low = a0 * b0 + (mid % 65536) * 65536;
  PL = low | 0;
  PH = (a1 * b1 + Math.floor(mid / 65536) + Math.floor(low / T32)) | 0;
}

/** Shift counts: from an immediate (register-only forms) or the low 64 bits of an XMM/m128 source. */
function shiftCount(c: Cpu, i: Op): number {
  if (i.kind1 !== OP_XMM && i.kind1 !== OP_MEM) return i.imm & 0xff;
  const s = src(c, i, 1, 16) * 4;
  const hi = c.xmm[s + 1] as number;
  const lo = (c.xmm[s] as number) >>> 0;
  return hi !== 0 || lo > 255 ? 255 : lo;
}

function shiftHandler(bits: number, kind: 'l' | 'r' | 'a'): Handler {
  return (c, i) => {
    const n = shiftCount(c, i);
    const d = i.reg0;
    if (bits === 64) {
      const x = c.xmm;
      for (let k = 0; k < 4; k += 2) {
        const lo = x[d * 4 + k] as number, hi = x[d * 4 + k + 1] as number;
        let rl: number, rh: number;
        if (n >= 64) { rl = 0; rh = 0; }
        else if (n === 0) { rl = lo; rh = hi; }
        else if (kind === 'l') { if (n < 32) { rh = (hi << n) | (lo >>> (32 - n)); rl = lo << n; } else { rh = lo << (n - 32); rl = 0; } }
        else if (n < 32) { rl = (lo >>> n) | (hi << (32 - n)); rh = hi >>> n; } else { rl = hi >>> (n - 32); rh = 0; }
        x[d * 4 + k] = rl; x[d * 4 + k + 1] = rh;
      }
      return;
    }
    const per = 128 / bits;
    const v = bits === 16 ? (kind === 'a' ? c.xmmI16 : c.xmmU16) : (kind === 'a' ? c.xmm : c.xmmU32);
    for (let k = 0; k < per; k++) {
      const e = v[d * per + k] as number;
      if (kind === 'l') v[d * per + k] = n >= bits ? 0 : e << n;
      else if (kind === 'r') v[d * per + k] = n >= bits ? 0 : e >>> n;
      else v[d * per + k] = e >> Math.min(n, bits - 1);
    }
  };
}

/**
 * Scratch copies of source lanes for the shuffles below, so the hot ones
 * (glibc's string functions run PUNPCKLBW and PSLLDQ in every call) allocate
 * nothing: a typed-array slice per instruction cost more than the shuffle.
 */
const TMP_A = new Uint8Array(16);
const TMP_B = new Uint8Array(16);
const TMP_W = new Uint16Array(8);

function copy16(from: Uint8Array, at: number, to: Uint8Array): Uint8Array {
  for (let k = 0; k < 16; k++) to[k] = from[at + k] as number;
  return to;
}

function byteShift(c: Cpu, i: Op, left: boolean): void {
  const n = Math.min(i.imm & 0xff, 16);
  const d = (i.reg0) * 16;
  const u = c.xmmU8;
  const t = copy16(u, d, TMP_A);
  for (let k = 0; k < 16; k++) {
    const from = left ? k - n : k + n;
    u[d + k] = from >= 0 && from < 16 ? t[from] as number : 0;
  }
}

function pack(c: Cpu, i: Op, kind: 'sswb' | 'ssdw' | 'uswb'): void {
  const s = src(c, i, 1, 16);
  const d = i.reg0;
  if (kind === 'ssdw') {
    const v = c.xmm;
    const out = new Int16Array(8);
    for (let k = 0; k < 4; k++) { out[k] = clamp(v[d * 4 + k] as number, -32768, 32767); out[k + 4] = clamp(v[s * 4 + k] as number, -32768, 32767); }
    c.xmmI16.set(out, d * 8);
    return;
  }
  const v = c.xmmI16;
  const lo = kind === 'sswb' ? -128 : 0, hi = kind === 'sswb' ? 127 : 255;
  const out = new Uint8Array(16);
  for (let k = 0; k < 8; k++) { out[k] = clamp(v[d * 8 + k] as number, lo, hi) & 0xff; out[k + 8] = clamp(v[s * 8 + k] as number, lo, hi) & 0xff; }
  c.xmmU8.set(out, d * 16);
}

/** PUNPCKL/H: interleave the low (or high) halves of dst and src by element size. */
function unpack(c: Cpu, i: Op, bytes: number, high: boolean): void {
  const s = src(c, i, 1, 16) * 16;
  const d = (i.reg0) * 16;
  const u = c.xmmU8;
  const a = copy16(u, d, TMP_A), b = copy16(u, s, TMP_B);
  const base = high ? 8 : 0;
  const n = 8 / bytes;
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < bytes; j++) {
      u[d + 2 * k * bytes + j] = a[base + k * bytes + j] as number;
      u[d + (2 * k + 1) * bytes + j] = b[base + k * bytes + j] as number;
    }
  }
}

function pshufd(c: Cpu, i: Op): void {
  const s = src(c, i, 1, 16) * 4;
  const d = (i.reg0) * 4;
  const x = c.xmm;
  const m = i.imm;
  // All four read before any is written: the destination may be the source.
  const t0 = x[s + (m & 3)] as number, t1 = x[s + ((m >> 2) & 3)] as number, t2 = x[s + ((m >> 4) & 3)] as number, t3 = x[s + ((m >> 6) & 3)] as number;
  x[d] = t0; x[d + 1] = t1; x[d + 2] = t2; x[d + 3] = t3;
}

function pshufw(c: Cpu, i: Op, high: boolean): void {
  const s = src(c, i, 1, 16) * 8;
  const d = (i.reg0) * 8;
  const u = c.xmmU16;
  const t = TMP_W;
  for (let k = 0; k < 8; k++) t[k] = u[s + k] as number;
  const o = high ? 4 : 0;
  for (let k = 0; k < 8; k++) u[d + k] = t[k] as number;
  for (let k = 0; k < 4; k++) u[d + o + k] = t[o + ((i.imm >> (2 * k)) & 3)] as number;
}

function shufps(c: Cpu, i: Op): void {
  const s = src(c, i, 1, 16) * 4;
  const d = (i.reg0) * 4;
  const x = c.xmm;
  const m = i.imm;
  const a0 = x[d + (m & 3)] as number, a1 = x[d + ((m >> 2) & 3)] as number, b0 = x[s + ((m >> 4) & 3)] as number, b1 = x[s + ((m >> 6) & 3)] as number;
  x[d] = a0; x[d + 1] = a1; x[d + 2] = b0; x[d + 3] = b1;
}

function shufpd(c: Cpu, i: Op): void {
  const s = src(c, i, 1, 16) * 4;
  const d = (i.reg0) * 4;
  const x = c.xmm;
  const m = i.imm;
  const lo = d + (m & 1) * 2, hi = s + ((m >> 1) & 1) * 2;
  const a0 = x[lo] as number, a1 = x[lo + 1] as number, b0 = x[hi] as number, b1 = x[hi + 1] as number;
  x[d] = a0; x[d + 1] = a1; x[d + 2] = b0; x[d + 3] = b1;
}

function pmaddwd(c: Cpu, i: Op): void {
  const s = src(c, i, 1, 16);
  const d = i.reg0;
  const v = c.xmmI16;
  const out = new Int32Array(4);
  for (let k = 0; k < 4; k++) out[k] = (v[d * 8 + 2 * k] as number) * (v[s * 8 + 2 * k] as number) + (v[d * 8 + 2 * k + 1] as number) * (v[s * 8 + 2 * k + 1] as number);
  c.xmm.set(out, d * 4);
}

function psadbw(c: Cpu, i: Op): void {
  const s = src(c, i, 1, 16) * 16;
  const d = (i.reg0) * 16;
  const u = c.xmmU8;
  const sums = [0, 0];
  for (let k = 0; k < 16; k++) sums[k >> 3] = (sums[k >> 3] as number) + Math.abs((u[d + k] as number) - (u[s + k] as number));
  const x = c.xmm;
  const b = d / 4;
  x[b] = sums[0] as number; x[b + 1] = 0; x[b + 2] = sums[1] as number; x[b + 3] = 0;
}

function pinsrw(c: Cpu, i: Op): void {
  const v = rd(c, i, 1, 2);
  c.xmmU16[(i.reg0) * 8 + (i.imm & 7)] = v;
}

function pextrw(c: Cpu, i: Op): void {
  const s = i.reg1;
  const v = c.xmmU16[s * 8 + (i.imm & 7)] as number;
  if (i.kind0 === OP_GPR) writeReg(c, i.reg0, i.size0, v, 0);
  else wr(c, i, 0, 2, v, 0);
}

function maskmovdqu(c: Cpu, i: Op): void {
  const d = (i.reg0) * 16, m = (i.reg1) * 16;
  const base = regAddr(c, RDI) + (c.segBase[i.segment] as number);
  for (let k = 0; k < 16; k++) if (((c.xmmU8[m + k] as number) & 0x80) !== 0) c.write8(base + k, c.xmmU8[d + k] as number);
}

// ---- Floating point ----

/** NaN result of a binary double op at lanes (out, a, b) by int32 index of the low word. */
function nan64(x: Int32Array, out: number, a: number, b: number, an: boolean, bn: boolean): void {
  if (an) { const lo = x[a] as number, hi = x[a + 1] as number; x[out] = lo; x[out + 1] = hi | 0x80000; }
  else if (bn) { const lo = x[b] as number, hi = x[b + 1] as number; x[out] = lo; x[out + 1] = hi | 0x80000; }
  else { x[out] = 0; x[out + 1] = 0xfff80000 | 0; }
}

function nan32(x: Int32Array, out: number, a: number, b: number, an: boolean, bn: boolean): void {
  if (an) x[out] = (x[a] as number) | 0x400000;
  else if (bn) x[out] = (x[b] as number) | 0x400000;
  else x[out] = 0xffc00000 | 0;
}

type F2 = (a: number, b: number) => number;
const fadd: F2 = (a, b) => a + b;
const fsub: F2 = (a, b) => a - b;
const fmul: F2 = (a, b) => a * b;
const fdiv: F2 = (a, b) => a / b;
const fsqrt: F2 = (_a, b) => Math.sqrt(b);
const OP_ADD = 0, OP_SUB = 1, OP_MUL = 2, OP_DIV = 3, OP_SQRT = 4;
const OPS: readonly F2[] = [fadd, fsub, fmul, fdiv, fsqrt];

// ---- MXCSR rounding control, flush-to-zero, denormals-are-zeros (SDM Vol. 1, 10.2.3) ----

const MXCSR_DAZ = 1 << 6; // denormal source operands read as zero
const MXCSR_UM = 1 << 11; // underflow masked (flush-to-zero acts only then)
const MXCSR_RC_SHIFT = 13; // rounding control: 0 nearest even, 1 down, 2 up, 3 toward zero
const MXCSR_FZ = 1 << 15; // tiny results flushed to zero
/** MXCSR bits that take floating point off the round-to-nearest path. */
const MXCSR_SLOW = MXCSR_DAZ | (3 << MXCSR_RC_SHIFT) | MXCSR_FZ;
const RC_DOWN = 1, RC_UP = 2, RC_ZERO = 3;

const MIN_NORMAL64 = 2.2250738585072014e-308;
const MIN_NORMAL32 = 1.1754943508222875e-38;
const MAX32 = 3.4028234663852886e38;

const bitsBuf = new DataView(new ArrayBuffer(8));

/** A denormal read as a zero of its sign (DAZ). */
function daz(x: number, single: boolean): number {
  return x !== 0 && x > -(single ? MIN_NORMAL32 : MIN_NORMAL64) && x < (single ? MIN_NORMAL32 : MIN_NORMAL64) ? (x < 0 ? -0 : 0) : x;
}

/** Finite x as the exact integer x * 2^1074 (every binary64 value is a multiple of 2^-1074). */
function scaled(x: number): bigint {
  bitsBuf.setFloat64(0, x, true);
  const hi = bitsBuf.getUint32(4, true), e = (hi >>> 20) & 0x7ff;
  let m = (BigInt(hi & 0xfffff) << 32n) | BigInt(bitsBuf.getUint32(0, true));
  if (e !== 0) m = (m | (1n << 52n)) << BigInt(e - 1);
  return hi >>> 31 !== 0 ? -m : m;
}

function signOf(v: bigint): number {
  return v > 0n ? 1 : v < 0n ? -1 : 0;
}

/** The sign of (exact result - r) for op on finite a, b: which side of the exact value r lies on. */
function errorSign(op: number, a: number, b: number, r: number): number {
  switch (op) {
    case OP_ADD: return signOf(scaled(a) + scaled(b) - scaled(r));
    case OP_SUB: return signOf(scaled(a) - scaled(b) - scaled(r));
    case OP_MUL: return signOf(scaled(a) * scaled(b) - (scaled(r) << 1074n));
    case OP_DIV: return signOf((scaled(a) << 1074n) - scaled(r) * scaled(b)) * (b < 0 ? -1 : 1);
    default: { const R = scaled(r); return signOf((scaled(b) << 1074n) - R * R); }
  }
}

/** The neighbour of r toward +infinity (up) or -infinity, in binary64 or binary32. */
function nextAfter(r: number, up: boolean, single: boolean): number {
  if (r === 0) return (up ? 1 : -1) * (single ? 1.401298464324817e-45 : 5e-324);
  const away = (r > 0) === up;
  if (single) {
    bitsBuf.setFloat32(0, r, true);
    bitsBuf.setUint32(0, bitsBuf.getUint32(0, true) + (away ? 1 : -1), true);
    return bitsBuf.getFloat32(0, true);
  }
  bitsBuf.setFloat64(0, r, true);
  bitsBuf.setBigUint64(0, bitsBuf.getBigUint64(0, true) + (away ? 1n : -1n), true);
  return bitsBuf.getFloat64(0, true);
}

/**
 * A round-to-nearest result r (not NaN) redone under MXCSR: rounded down, up
 * or toward zero when inexact (errorSign `s` says on which side of the exact
 * value r lies), overflow to the largest finite value where the mode says so,
 * and a tiny result flushed to zero under FZ with underflow masked.
 */
function directed(mxcsr: number, r: number, s: number, overflowed: boolean, single: boolean): number {
  const mode = (mxcsr >> MXCSR_RC_SHIFT) & 3;
  if (overflowed) {
    const max = single ? MAX32 : Number.MAX_VALUE;
    if (r > 0 && (mode === RC_DOWN || mode === RC_ZERO)) r = max;
    else if (r < 0 && (mode === RC_UP || mode === RC_ZERO)) r = -max;
  } else if (s !== 0 && mode !== 0) {
    if (mode === RC_UP ? s > 0 : mode === RC_DOWN ? s < 0 : (r > 0 && s < 0) || (r < 0 && s > 0)) r = nextAfter(r, s > 0, single);
  }
  if ((mxcsr & (MXCSR_FZ | MXCSR_UM)) === (MXCSR_FZ | MXCSR_UM) && r !== 0 && Math.abs(r) < (single ? MIN_NORMAL32 : MIN_NORMAL64)) r = r < 0 ? -0 : 0;
  return r;
}

/**
 * One lane of ADD/SUB/MUL/DIV/SQRT under a non-default MXCSR: DAZ on the
 * operands, then the round-to-nearest result corrected to the mode.
 * Returns NaN when the result is a NaN (the caller applies the SSE NaN rules).
 */
function arithLane(mxcsr: number, op: number, a: number, b: number, single: boolean): number {
  if ((mxcsr & MXCSR_DAZ) !== 0) { a = daz(a, single); b = daz(b, single); }
  const f = OPS[op] as F2;
  const r = single ? Math.fround(f(a, b)) : f(a, b);
  if (r !== r) return r;
  const finiteIn = (op === OP_SQRT || Number.isFinite(a)) && Number.isFinite(b);
  if (!finiteIn || (op === OP_DIV && b === 0)) return r;
  if (!Number.isFinite(r)) return directed(mxcsr, r, 0, true, single);
  const s = errorSign(op, a, b, r);
  // An exact zero sum of opposite-signed operands is -0 when rounding down (IEEE 754-2008, 6.3).
  if (r === 0 && s === 0 && ((mxcsr >> MXCSR_RC_SHIFT) & 3) === RC_DOWN && (op === OP_ADD || op === OP_SUB)) {
    const bb = op === OP_SUB ? -b : b;
    if (a !== 0 || bb !== 0 || Object.is(a, -0) || Object.is(bb, -0)) return -0;
  }
  return directed(mxcsr, r, s, false, single);
}

/**
 * x87 arithmetic at 53-bit precision under FCW.RC (same encoding as
 * MXCSR.RC): binary64 `op` (OP_ADD … OP_SQRT; for OP_SQRT only b) rounded
 * down, up or toward zero.
 */
export function x87Rounded(rc: number, op: number, a: number, b: number): number {
  return arithLane((rc & 3) << MXCSR_RC_SHIFT, op, a, b, false);
}

/** A binary64 value stored as binary32 under FCW.RC (FST m32). */
export function x87ToSingle(rc: number, v: number): number {
  return toSingle((rc & 3) << MXCSR_RC_SHIFT, v);
}

/** v * 2^n (FSCALE) under FCW.RC: exact unless it overflows or lands among the denormals. */
export function x87Scale(rc: number, v: number, n: number): number {
  const r = v * Math.pow(2, n);
  if (rc === 0 || r !== r || !Number.isFinite(v)) return r;
  const mxcsr = (rc & 3) << MXCSR_RC_SHIFT;
  if (!Number.isFinite(r)) return directed(mxcsr, r, 0, true, false);
  if (Math.abs(r) >= MIN_NORMAL64 || n > 0) return r;
  // Among the denormals the product may be inexact: which side of v * 2^n r lies on, exactly.
  const s = signOf(scaled(v) - (scaled(r) << BigInt(-n)));
  return directed(mxcsr, r, s, false, false);
}

export { nextAfter, OP_ADD, OP_DIV, OP_MUL, OP_SQRT, OP_SUB };

/** A double narrowed to binary32 under MXCSR (CVTSD2SS, CVTPD2PS): DAZ, rounding control, FZ. */
function toSingle(mxcsr: number, v: number): number {
  if ((mxcsr & MXCSR_SLOW) === 0) return Math.fround(v);
  if ((mxcsr & MXCSR_DAZ) !== 0) v = daz(v, false);
  const r = Math.fround(v);
  if (r !== r || !Number.isFinite(v)) return r;
  if (!Number.isFinite(r)) return directed(mxcsr, r, 0, true, true);
  return directed(mxcsr, r, v > r ? 1 : v < r ? -1 : 0, false, true);
}

/** An integer converted to binary64 or binary32, rounded by MXCSR.RC (CVTSI2SD/SS, CVTDQ2PS). */
function fromInt(v: bigint, single: boolean, mode: number): number {
  const neg = v < 0n;
  let m = neg ? -v : v;
  const bits = m.toString(2).length, p = single ? 24 : 53;
  if (m === 0n || bits <= p) return Number(v);
  const shift = BigInt(bits - p);
  let q = m >> shift;
  const rem = m - (q << shift), half = 1n << (shift - 1n);
  const up = mode === 0 ? rem > half || (rem === half && (q & 1n) === 1n)
    : mode === RC_UP ? !neg && rem !== 0n : mode === RC_DOWN ? neg && rem !== 0n : false;
  if (up) q += 1n;
  m = q << shift;
  return Number(neg ? -m : m);
}

/** Arithmetic on `count` double lanes (1: scalar sd, 2: packed pd). */
function arithD(op: number, count: number): Handler {
  const f = OPS[op] as F2;
  return (c, i) => {
    const s = src(c, i, 1, count * 8);
    const d = i.reg0;
    const F = c.xmmF64;
    const slow = (c.mxcsr & MXCSR_SLOW) !== 0;
    for (let k = 0; k < count; k++) {
      const a = F[d * 2 + k] as number, b = F[s * 2 + k] as number;
      const r = slow ? arithLane(c.mxcsr, op, a, b, false) : f(a, b);
      if (r !== r) {
        if (op === OP_SQRT) nan64(c.xmm, d * 4 + 2 * k, s * 4 + 2 * k, s * 4 + 2 * k, b !== b, false);
        else nan64(c.xmm, d * 4 + 2 * k, d * 4 + 2 * k, s * 4 + 2 * k, a !== a, b !== b);
      } else F[d * 2 + k] = r;
    }
  };
}

function arithS(op: number, count: number): Handler {
  const f = OPS[op] as F2;
  return (c, i) => {
    const s = src(c, i, 1, count * 4);
    const d = i.reg0;
    const F = c.xmmF32;
    const slow = (c.mxcsr & MXCSR_SLOW) !== 0;
    for (let k = 0; k < count; k++) {
      const a = F[d * 4 + k] as number, b = F[s * 4 + k] as number;
      const r = slow ? arithLane(c.mxcsr, op, a, b, true) : Math.fround(f(a, b));
      if (r !== r) {
        if (op === OP_SQRT) nan32(c.xmm, d * 4 + k, s * 4 + k, s * 4 + k, b !== b, false);
        else nan32(c.xmm, d * 4 + k, d * 4 + k, s * 4 + k, a !== a, b !== b);
      } else F[d * 4 + k] = r;
    }
  };
}

/** MIN/MAX: the second operand when either is NaN or both are zero (SDM "MINSD"); DAZ reads denormals as zeros. */
function minmax(max: boolean, dbl: boolean, count: number): Handler {
  return (c, i) => {
    const s = src(c, i, 1, count * (dbl ? 8 : 4));
    const d = i.reg0;
    const x = c.xmm;
    const dz = (c.mxcsr & MXCSR_DAZ) !== 0;
    for (let k = 0; k < count; k++) {
      let a = dbl ? c.xmmF64[d * 2 + k] as number : c.xmmF32[d * 4 + k] as number;
      let b = dbl ? c.xmmF64[s * 2 + k] as number : c.xmmF32[s * 4 + k] as number;
      if (dz) { a = daz(a, !dbl); b = daz(b, !dbl); }
      const takeA = max ? a > b : a < b;
      if (dz && (takeA || b === b)) {
        // The operand taken is the one read under DAZ (a flushed denormal gives a zero).
        const r = takeA ? a : b;
        if (dbl) c.xmmF64[d * 2 + k] = r; else c.xmmF32[d * 4 + k] = r;
      } else if (!takeA) {
        if (dbl) { x[d * 4 + 2 * k] = x[s * 4 + 2 * k] as number; x[d * 4 + 2 * k + 1] = x[s * 4 + 2 * k + 1] as number; }
        else x[d * 4 + k] = x[s * 4 + k] as number;
      }
    }
  };
}

/** RCPPS/RSQRTPS and scalar forms: exact values (hardware gives 12-bit approximations). */
function approx(rsqrt: boolean, count: number): Handler {
  return (c, i) => {
    const s = src(c, i, 1, count * 4);
    const d = i.reg0;
    for (let k = 0; k < count; k++) {
      const b = c.xmmF32[s * 4 + k] as number;
      c.xmmF32[d * 4 + k] = rsqrt ? 1 / Math.sqrt(b) : 1 / b;
    }
  };
}

function bitwise(f: (a: number, b: number) => number): Handler {
  return (c, i) => {
    const s = src(c, i, 1, 16) * 4;
    const d = (i.reg0) * 4;
    const x = c.xmm;
    for (let k = 0; k < 4; k++) x[d + k] = f(x[d + k] as number, x[s + k] as number);
  };
}

function cmpPred(a: number, b: number, p: number): boolean {
  const un = a !== a || b !== b;
  switch (p & 7) {
    case 0: return a === b;
    case 1: return a < b;
    case 2: return a <= b;
    case 3: return un;
    case 4: return !(a === b);
    case 5: return !(a < b);
    case 6: return !(a <= b);
    default: return !un;
  }
}

function cmpOp(dbl: boolean, count: number): Handler {
  return (c, i) => {
    const s = src(c, i, 1, count * (dbl ? 8 : 4));
    const d = i.reg0;
    const x = c.xmm;
    const dz = (c.mxcsr & MXCSR_DAZ) !== 0;
    for (let k = 0; k < count; k++) {
      if (dbl) {
        let a = c.xmmF64[d * 2 + k] as number, b = c.xmmF64[s * 2 + k] as number;
        if (dz) { a = daz(a, false); b = daz(b, false); }
        const r = cmpPred(a, b, i.imm) ? -1 : 0;
        x[d * 4 + 2 * k] = r; x[d * 4 + 2 * k + 1] = r;
      } else {
        let a = c.xmmF32[d * 4 + k] as number, b = c.xmmF32[s * 4 + k] as number;
        if (dz) { a = daz(a, true); b = daz(b, true); }
        x[d * 4 + k] = cmpPred(a, b, i.imm) ? -1 : 0;
      }
    }
  };
}

/** UCOMISS/UCOMISD/COMISS/COMISD: ZF, PF, CF from the comparison; OF, SF, AF cleared. */
function comis(dbl: boolean): Handler {
  return (c, i) => {
    const s = src(c, i, 1, dbl ? 8 : 4);
    const d = i.reg0;
    let a = dbl ? c.xmmF64[d * 2] as number : c.xmmF32[d * 4] as number;
    let b = dbl ? c.xmmF64[s * 2] as number : c.xmmF32[s * 4] as number;
    if ((c.mxcsr & MXCSR_DAZ) !== 0) { a = daz(a, !dbl); b = daz(b, !dbl); }
    const f = a !== a || b !== b ? FLAG_ZF | FLAG_PF | FLAG_CF : a < b ? FLAG_CF : a === b ? FLAG_ZF : 0;
    setStatus(c, FLAG_ZF | FLAG_PF | FLAG_CF | FLAG_OF | FLAG_SF | FLAG_AF, f);
  };
}

/** Round to integer by MXCSR.RC (or truncate). */
function roundMode(x: number, mode: number): number {
  switch (mode) {
    case 1: return Math.floor(x);
    case 2: return Math.ceil(x);
    case 3: return Math.trunc(x);
    default: {
      const r = Math.round(x);
      return r - x === 0.5 && (r % 2) !== 0 ? r - 1 : r;
    }
  }
}

/** Float to integer conversion: out of range or NaN gives the integer indefinite value. */
function toInt(c: Cpu, i: Op, x: number, truncate: boolean): void {
  const size = i.size0;
  const r = roundMode(x, truncate ? 3 : (c.mxcsr >> 13) & 3);
  const reg = i.reg0;
  if (size === 8) {
    if (!(r >= -9223372036854775808 && r < 9223372036854775808)) { writeReg(c, reg, 8, 0, 0x80000000 | 0); return; }
    writeReg(c, reg, 8, r % T32 | 0, Math.floor(r / T32));
  } else {
    if (!(r >= -2147483648 && r <= 2147483647)) { writeReg(c, reg, 4, 0x80000000 | 0, 0); return; }
    writeReg(c, reg, 4, r, 0);
  }
}

function cvtToInt(dbl: boolean, truncate: boolean): Handler {
  return (c, i) => {
    const s = src(c, i, 1, dbl ? 8 : 4);
    const v = dbl ? c.xmmF64[s * 2] as number : c.xmmF32[s * 4] as number;
    toInt(c, i, (c.mxcsr & MXCSR_DAZ) !== 0 ? daz(v, !dbl) : v, truncate);
  };
}

function cvtFromInt(dbl: boolean): Handler {
  return (c, i) => {
    const size = i.size1;
    const lo = rd(c, i, 1, size);
    const mode = (c.mxcsr >> MXCSR_RC_SHIFT) & 3;
    const d = i.reg0;
    if (dbl) c.xmmF64[d * 2] = size === 8 ? fromInt((BigInt(c.hi) << 32n) | BigInt(lo >>> 0), false, mode) : lo;
    // binary32 from a 64-bit integer: rounded once from the integer (through binary64 it could round twice).
    else c.xmmF32[d * 4] = size === 8 ? fromInt((BigInt(c.hi) << 32n) | BigInt(lo >>> 0), true, mode) : mode === 0 ? lo : fromInt(BigInt(lo), true, mode);
  };
}

function cvtss2sd(c: Cpu, i: Op): void {
  const s = src(c, i, 1, 4);
  const d = i.reg0;
  const v = c.xmmF32[s * 4] as number;
  if (v !== v) { const b = c.xmm[s * 4] as number; c.xmm[d * 4 + 1] = (b & 0x80000000) | 0x7ff80000 | ((b >>> 3) & 0x7ffff); c.xmm[d * 4] = b << 29; return; }
  c.xmmF64[d * 2] = (c.mxcsr & MXCSR_DAZ) !== 0 ? daz(v, true) : v;
}

function cvtsd2ss(c: Cpu, i: Op): void {
  const s = src(c, i, 1, 8);
  const d = i.reg0;
  const v = c.xmmF64[s * 2] as number;
  if (v !== v) { const hi = c.xmm[s * 4 + 1] as number, lo = c.xmm[s * 4] as number; c.xmm[d * 4] = (hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29); return; }
  c.xmmF32[d * 4] = toSingle(c.mxcsr, v);
}

function cvtPacked(kind: string): Handler {
  return (c, i) => {
    const bytes = kind === 'ps2pd' || kind === 'dq2pd' ? 8 : 16;
    const s = src(c, i, 1, bytes);
    const d = i.reg0;
    const x = c.xmm;
    const mode = (c.mxcsr >> 13) & 3;
    const out = new Int32Array(4);
    const o64 = new Float64Array(out.buffer);
    const o32 = new Float32Array(out.buffer);
    const ind = (v: number): number => (v >= -2147483648 && v <= 2147483647 ? v : 0x80000000 | 0);
    const dz = (c.mxcsr & MXCSR_DAZ) !== 0;
    const f32 = (k: number): number => (dz ? daz(c.xmmF32[s * 4 + k] as number, true) : c.xmmF32[s * 4 + k] as number);
    const f64 = (k: number): number => (dz ? daz(c.xmmF64[s * 2 + k] as number, false) : c.xmmF64[s * 2 + k] as number);
    switch (kind) {
      case 'ps2pd': {
        // NaNs widen as CVTSS2SD does: quietened, payload kept (Float64Array assignment would canonicalise them).
        for (let k = 1; k >= 0; k--) {
          const v = f32(k);
          if (v !== v) { const b = x[s * 4 + k] as number; out[2 * k + 1] = (b & 0x80000000) | 0x7ff80000 | ((b >>> 3) & 0x7ffff); out[2 * k] = b << 29; }
          else o64[k] = v;
        }
        break;
      }
      case 'pd2ps':
        for (let k = 0; k < 2; k++) {
          const v = f64(k);
          if (v !== v) { const hi = x[s * 4 + 2 * k + 1] as number, lo = x[s * 4 + 2 * k] as number; out[k] = (hi & 0x80000000) | 0x7fc00000 | ((hi & 0x7ffff) << 3) | (lo >>> 29); }
          else o32[k] = toSingle(c.mxcsr, v);
        }
        break;
      case 'dq2ps': for (let k = 0; k < 4; k++) o32[k] = mode === 0 ? x[s * 4 + k] as number : fromInt(BigInt(x[s * 4 + k] as number), true, mode); break;
      case 'dq2pd': o64[0] = x[s * 4] as number; o64[1] = x[s * 4 + 1] as number; break;
      case 'ps2dq': for (let k = 0; k < 4; k++) out[k] = ind(roundMode(f32(k), mode)); break;
      case 'tps2dq': for (let k = 0; k < 4; k++) out[k] = ind(Math.trunc(f32(k))); break;
      case 'pd2dq': out[0] = ind(roundMode(f64(0), mode)); out[1] = ind(roundMode(f64(1), mode)); break;
      default: out[0] = ind(Math.trunc(f64(0))); out[1] = ind(Math.trunc(f64(1)));
    }
    x.set(out, d * 4);
  };
}

function unpckFloat(c: Cpu, i: Op, dbl: boolean, high: boolean): void {
  unpack(c, i, dbl ? 8 : 4, high);
}

function ldmxcsr(c: Cpu, i: Op): void {
  const v = c.read32(ea(c, i));
  // Reserved bits set: #GP (SDM "LDMXCSR"); MXCSR_MASK is 0xFFFF here (DAZ supported).
  if ((v & ~0xffff) !== 0) throw new CpuException(VEC_GP, 0, c.rip, 'ldmxcsr: reserved MXCSR bits');
  c.mxcsr = v;
}

function stmxcsr(c: Cpu, i: Op): void {
  c.write32(ea(c, i), c.mxcsr);
}

const sat = (lo: number, hi: number) => (a: number, b: number, sub: boolean): number => clamp(sub ? a - b : a + b, lo, hi);
const sI8 = sat(-128, 127), sU8 = sat(0, 255), sI16 = sat(-32768, 32767), sU16 = sat(0, 65535);

export const SSE: HandlerMap = {
  sse_movups: move128, sse_movupd: move128, sse_movaps: move128, sse_movdqa: move128, sse_movdqu: move128,
  sse_movss: (c, i) => moveScalar(c, i, 4),
  sse_movsd: (c, i) => moveScalar(c, i, 8),
  sse_movlps: (c, i) => moveHalf(c, i, false),
  sse_movhps: (c, i) => moveHalf(c, i, true),
  sse_movhlps: (c, i) => { const x = c.xmm; const d = (i.reg0) * 4, s = (i.reg1) * 4; x[d] = x[s + 2] as number; x[d + 1] = x[s + 3] as number; },
  sse_movlhps: (c, i) => { const x = c.xmm; const d = (i.reg0) * 4, s = (i.reg1) * 4; x[d + 2] = x[s] as number; x[d + 3] = x[s + 1] as number; },
  sse_movd,
  sse_movq,
  sse_movmskps: (c, i) => movmsk(c, i, 4),
  sse_movmskpd: (c, i) => movmsk(c, i, 2),
  sse_pmovmskb: (c, i) => movmsk(c, i, 16),
  sse_maskmovdqu: maskmovdqu,

  sse_paddb: lanes(U8, 16, (a, b) => a + b),
  sse_paddw: lanes(U16, 8, (a, b) => a + b),
  sse_paddd: lanes(I32, 4, (a, b) => a + b),
  sse_paddq: lanes64(add64),
  sse_psubb: lanes(U8, 16, (a, b) => a - b),
  sse_psubw: lanes(U16, 8, (a, b) => a - b),
  sse_psubd: lanes(I32, 4, (a, b) => a - b),
  sse_psubq: lanes64(sub64),
  sse_paddsb: lanes(I8, 16, (a, b) => sI8(a, b, false)),
  sse_paddsw: lanes(I16, 8, (a, b) => sI16(a, b, false)),
  sse_paddusb: lanes(U8, 16, (a, b) => sU8(a, b, false)),
  sse_paddusw: lanes(U16, 8, (a, b) => sU16(a, b, false)),
  sse_psubsb: lanes(I8, 16, (a, b) => sI8(a, b, true)),
  sse_psubsw: lanes(I16, 8, (a, b) => sI16(a, b, true)),
  sse_psubusb: lanes(U8, 16, (a, b) => sU8(a, b, true)),
  sse_psubusw: lanes(U16, 8, (a, b) => sU16(a, b, true)),
  sse_pmullw: lanes(I16, 8, (a, b) => Math.imul(a, b)),
  sse_pmulhw: lanes(I16, 8, (a, b) => (a * b) >> 16),
  sse_pmulhuw: lanes(U16, 8, (a, b) => (a * b) >>> 16),
  sse_pmuludq: lanes64(muludq),
  sse_pmaddwd: pmaddwd,
  sse_psadbw: psadbw,
  sse_pavgb: lanes(U8, 16, (a, b) => (a + b + 1) >> 1),
  sse_pavgw: lanes(U16, 8, (a, b) => (a + b + 1) >> 1),
  sse_pminub: lanes(U8, 16, Math.min),
  sse_pmaxub: lanes(U8, 16, Math.max),
  sse_pminsw: lanes(I16, 8, Math.min),
  sse_pmaxsw: lanes(I16, 8, Math.max),
  sse_pand: bitwise((a, b) => a & b),
  sse_pandn: bitwise((a, b) => ~a & b),
  sse_por: bitwise((a, b) => a | b),
  sse_pxor: bitwise((a, b) => a ^ b),
  sse_pcmpeqb: lanes(U8, 16, (a, b) => (a === b ? 0xff : 0)),
  sse_pcmpeqw: lanes(U16, 8, (a, b) => (a === b ? 0xffff : 0)),
  sse_pcmpeqd: lanes(I32, 4, (a, b) => (a === b ? -1 : 0)),
  sse_pcmpgtb: lanes(I8, 16, (a, b) => (a > b ? -1 : 0)),
  sse_pcmpgtw: lanes(I16, 8, (a, b) => (a > b ? -1 : 0)),
  sse_pcmpgtd: lanes(I32, 4, (a, b) => (a > b ? -1 : 0)),
  sse_packsswb: (c, i) => pack(c, i, 'sswb'),
  sse_packssdw: (c, i) => pack(c, i, 'ssdw'),
  sse_packuswb: (c, i) => pack(c, i, 'uswb'),
  sse_punpcklbw: (c, i) => unpack(c, i, 1, false),
  sse_punpcklwd: (c, i) => unpack(c, i, 2, false),
  sse_punpckldq: (c, i) => unpack(c, i, 4, false),
  sse_punpcklqdq: (c, i) => unpack(c, i, 8, false),
  sse_punpckhbw: (c, i) => unpack(c, i, 1, true),
  sse_punpckhwd: (c, i) => unpack(c, i, 2, true),
  sse_punpckhdq: (c, i) => unpack(c, i, 4, true),
  sse_punpckhqdq: (c, i) => unpack(c, i, 8, true),
  sse_pshufd: pshufd,
  sse_pshufhw: (c, i) => pshufw(c, i, true),
  sse_pshuflw: (c, i) => pshufw(c, i, false),
  sse_psrlw: shiftHandler(16, 'r'),
  sse_psrld: shiftHandler(32, 'r'),
  sse_psrlq: shiftHandler(64, 'r'),
  sse_psraw: shiftHandler(16, 'a'),
  sse_psrad: shiftHandler(32, 'a'),
  sse_psllw: shiftHandler(16, 'l'),
  sse_pslld: shiftHandler(32, 'l'),
  sse_psllq: shiftHandler(64, 'l'),
  sse_psrldq: (c, i) => byteShift(c, i, false),
  sse_pslldq: (c, i) => byteShift(c, i, true),
  sse_pinsrw: pinsrw,
  sse_pextrw: pextrw,

  sse_addss: arithS(OP_ADD, 1), sse_addps: arithS(OP_ADD, 4), sse_addsd: arithD(OP_ADD, 1), sse_addpd: arithD(OP_ADD, 2),
  sse_subss: arithS(OP_SUB, 1), sse_subps: arithS(OP_SUB, 4), sse_subsd: arithD(OP_SUB, 1), sse_subpd: arithD(OP_SUB, 2),
  sse_mulss: arithS(OP_MUL, 1), sse_mulps: arithS(OP_MUL, 4), sse_mulsd: arithD(OP_MUL, 1), sse_mulpd: arithD(OP_MUL, 2),
  sse_divss: arithS(OP_DIV, 1), sse_divps: arithS(OP_DIV, 4), sse_divsd: arithD(OP_DIV, 1), sse_divpd: arithD(OP_DIV, 2),
  sse_minss: minmax(false, false, 1), sse_minps: minmax(false, false, 4), sse_minsd: minmax(false, true, 1), sse_minpd: minmax(false, true, 2),
  sse_maxss: minmax(true, false, 1), sse_maxps: minmax(true, false, 4), sse_maxsd: minmax(true, true, 1), sse_maxpd: minmax(true, true, 2),
  sse_sqrtss: arithS(OP_SQRT, 1), sse_sqrtps: arithS(OP_SQRT, 4), sse_sqrtsd: arithD(OP_SQRT, 1), sse_sqrtpd: arithD(OP_SQRT, 2),
  sse_rcpss: approx(false, 1), sse_rcpps: approx(false, 4), sse_rsqrtss: approx(true, 1), sse_rsqrtps: approx(true, 4),
  sse_andps: bitwise((a, b) => a & b), sse_andpd: bitwise((a, b) => a & b),
  sse_andnps: bitwise((a, b) => ~a & b), sse_andnpd: bitwise((a, b) => ~a & b),
  sse_orps: bitwise((a, b) => a | b), sse_orpd: bitwise((a, b) => a | b),
  sse_xorps: bitwise((a, b) => a ^ b), sse_xorpd: bitwise((a, b) => a ^ b),
  sse_cmpss: cmpOp(false, 1), sse_cmpps: cmpOp(false, 4), sse_cmpsd: cmpOp(true, 1), sse_cmppd: cmpOp(true, 2),
  sse_ucomiss: comis(false), sse_comiss: comis(false), sse_ucomisd: comis(true), sse_comisd: comis(true),
  sse_cvtsi2ss: cvtFromInt(false), sse_cvtsi2sd: cvtFromInt(true),
  sse_cvttss2si: cvtToInt(false, true), sse_cvttsd2si: cvtToInt(true, true),
  sse_cvtss2si: cvtToInt(false, false), sse_cvtsd2si: cvtToInt(true, false),
  sse_cvtss2sd: cvtss2sd, sse_cvtsd2ss: cvtsd2ss,
  sse_cvtps2pd: cvtPacked('ps2pd'), sse_cvtpd2ps: cvtPacked('pd2ps'), sse_cvtdq2ps: cvtPacked('dq2ps'),
  sse_cvtdq2pd: cvtPacked('dq2pd'), sse_cvtps2dq: cvtPacked('ps2dq'), sse_cvttps2dq: cvtPacked('tps2dq'),
  sse_cvtpd2dq: cvtPacked('pd2dq'), sse_cvttpd2dq: cvtPacked('tpd2dq'),
  sse_unpcklps: (c, i) => unpckFloat(c, i, false, false), sse_unpckhps: (c, i) => unpckFloat(c, i, false, true),
  sse_unpcklpd: (c, i) => unpckFloat(c, i, true, false), sse_unpckhpd: (c, i) => unpckFloat(c, i, true, true),
  sse_shufps: shufps, sse_shufpd: shufpd,
  sse_ldmxcsr: ldmxcsr, sse_stmxcsr: stmxcsr,
};

