/**
 * MUL, IMUL (one, two and three operands), DIV, IDIV (SDM Vol. 2A/2B).
 *
 * 32x32 and 64x64 products are built from exact float64 partial products of
 * 16/32-bit halves (no BigInt on the hot path: gcc turns every division by a
 * constant into a MUL). Division uses float64 while both operands stay below
 * 2^53 (where % is exact) and BigInt beyond. #DE on a zero divisor or a
 * quotient too large for the destination (SDM "DIV": "#DE If the source
 * operand (divisor) is 0; if the quotient is too large for the designated register").
 */
import type { Cpu } from '../cpu.js';
import { CpuException, VEC_DE } from '../mmu.js';
import type { Op } from '../op.js';
import { maskOf, rd, readReg, sext, T32, wr, writeReg } from '../operands.js';
import { FLAG_CF, FLAG_OF, LF_CO, RAX, RDX } from '../state.js';
import type { HandlerMap } from './types.js';

/** Products: low 64 bits in (P0, P1), high 64 bits in (P2, P3). */
export let P0 = 0, P1 = 0, P2 = 0, P3 = 0;

/**
 * Unsigned 32x32 -> 64 into (M0, M1), in integer operations only: the low
 * half from Math.imul, the high half from 16-bit partial products (each
 * < 2^32, exact). No float `%` (V8 calls fmod for it).
 */
let M0 = 0, M1 = 0;
function mulU32(a: number, b: number): void {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p01 = a0 * b1, p10 = a1 * b0;
  const mid = ((a0 * b0) >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  M0 = Math.imul(a, b);
  M1 = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) | 0;
}

/** Unsigned 64x64 -> 128 into P0..P3. */
export function mulU64(aL: number, aH: number, bL: number, bH: number): void {
  if ((aH | bH) === 0) {
    // Both factors below 2^32 (multi-precision code multiplies 32-bit halves): one partial product.
    mulU32(aL, bL);
    P0 = M0; P1 = M1; P2 = 0; P3 = 0;
    return;
  }
  mulU32(aL, bL); const w0 = M0, c0 = M1 >>> 0;
  mulU32(aL, bH); const x0 = M0 >>> 0, x1 = M1 >>> 0;
  mulU32(aH, bL); const y0 = M0 >>> 0, y1 = M1 >>> 0;
  mulU32(aH, bH); const z0 = M0 >>> 0, z1 = M1 >>> 0;
  const s1 = c0 + x0 + y0;
  const s2 = x1 + y1 + z0 + Math.floor(s1 / T32);
  P0 = w0;
  P1 = s1 | 0;
  P2 = s2 | 0;
  P3 = (z1 + Math.floor(s2 / T32)) | 0;
}

/** Signed 64x64 -> 128: the unsigned product with the high half corrected for negative factors. */
export function mulS64(aL: number, aH: number, bL: number, bH: number): void {
  if (aH === aL >> 31 && bH === bL >> 31) {
    // Both factors fit in int32: the 32x32 signed product, sign-extended.
    mulU32(aL, bL);
    P0 = M0;
    P1 = (M1 - (aL < 0 ? bL : 0) - (bL < 0 ? aL : 0)) | 0;
    P2 = P3 = P1 >> 31;
    return;
  }
  mulU64(aL, aH, bL, bH);
  if (aH < 0) sub64hi(bL, bH);
  if (bH < 0) sub64hi(aL, aH);
}

function sub64hi(l: number, h: number): void {
  const lo = (P2 >>> 0) - (l >>> 0);
  P2 = lo | 0;
  P3 = (P3 - h - (lo < 0 ? 1 : 0)) | 0;
}

export function setMulFlags(c: Cpu, size: number, lo: number, hi: number, overflow: boolean): void {
  c.lfOp = LF_CO;
  c.lfSize = size;
  c.lfRes = lo;
  c.lfResHi = hi;
  c.lfAux = overflow ? FLAG_CF | FLAG_OF : 0;
}

function mul_mul(c: Cpu, i: Op): void {
  const size = i.size0;
  const s = rd(c, i, 0, size);
  const sh = c.hi;
  const a = readReg(c, RAX, size);
  const ah = c.hi;
  switch (size) {
    case 1: { const p = a * s; writeReg(c, RAX, 2, p, 0); setMulFlags(c, 1, p & 0xff, 0, p > 0xff); return; }
    case 2: { const p = a * s; writeReg(c, RAX, 2, p & 0xffff, 0); writeReg(c, RDX, 2, p >>> 16, 0); setMulFlags(c, 2, p & 0xffff, 0, p > 0xffff); return; }
    case 4: mulU32(a, s); writeReg(c, RAX, 4, M0, 0); writeReg(c, RDX, 4, M1, 0); setMulFlags(c, 4, M0, 0, M1 !== 0); return;
    default:
      mulU64(a, ah, s, sh);
      writeReg(c, RAX, 8, P0, P1); writeReg(c, RDX, 8, P2, P3);
      setMulFlags(c, 8, P0, P1, (P2 | P3) !== 0);
  }
}

function mul_imul(c: Cpu, i: Op): void {
  const size = i.size0;
  const s = rd(c, i, 0, size);
  const sh = c.hi;
  const a = readReg(c, RAX, size);
  const ah = c.hi;
  switch (size) {
    case 1: { const p = sext(a, 1) * sext(s, 1); writeReg(c, RAX, 2, p & 0xffff, 0); setMulFlags(c, 1, p & 0xff, 0, p !== sext(p & 0xff, 1)); return; }
    case 2: { const p = sext(a, 2) * sext(s, 2); writeReg(c, RAX, 2, p & 0xffff, 0); writeReg(c, RDX, 2, (p >> 16) & 0xffff, 0); setMulFlags(c, 2, p & 0xffff, 0, p !== sext(p & 0xffff, 2)); return; }
    case 4: {
      mulU32(a, s);
      const hi = (M1 - (a < 0 ? s : 0) - (s < 0 ? a : 0)) | 0;
      writeReg(c, RAX, 4, M0, 0); writeReg(c, RDX, 4, hi, 0);
      setMulFlags(c, 4, M0, 0, hi !== M0 >> 31);
      return;
    }
    default:
      mulS64(a, ah, s, sh);
      writeReg(c, RAX, 8, P0, P1); writeReg(c, RDX, 8, P2, P3);
      setMulFlags(c, 8, P0, P1, !(P2 === P1 >> 31 && P3 === P1 >> 31));
  }
}

/** IMUL r, r/m (, imm): truncated signed product; operands 1 and (2 or 0). */
function imulTrunc(c: Cpu, i: Op, srcA: number, srcB: number): void {
  const size = i.size0;
  const b = rd(c, i, srcB, size);
  const bh = c.hi;
  const a = rd(c, i, srcA, size);
  const ah = c.hi;
  if (size === 8) {
    mulS64(a, ah, b, bh);
    wr(c, i, 0, 8, P0, P1);
    setMulFlags(c, 8, P0, P1, !(P2 === P1 >> 31 && P3 === P1 >> 31));
  } else if (size === 4) {
    mulU32(a, b);
    const hi = (M1 - (a < 0 ? b : 0) - (b < 0 ? a : 0)) | 0;
    wr(c, i, 0, 4, M0, 0);
    setMulFlags(c, 4, M0, 0, hi !== M0 >> 31);
  } else {
    const p = sext(a, size) * sext(b, size);
    const r = p & maskOf(size);
    wr(c, i, 0, size, r, 0);
    setMulFlags(c, size, r, 0, p !== sext(r, size));
  }
}

function divideError(c: Cpu, why: string): never {
  throw new CpuException(VEC_DE, 0, c.rip, `#DE: ${why}`);
}

function mul_div(c: Cpu, i: Op): void {
  const size = i.size0;
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  if (size === 1 || size === 2) {
    if (d === 0) divideError(c, 'divide by zero');
    const n = size === 1 ? readReg(c, RAX, 2) : readReg(c, RDX, 2) * 65536 + readReg(c, RAX, 2);
    const r = n % d;
    const q = (n - r) / d;
    if (q > maskOf(size)) divideError(c, 'quotient too large');
    if (size === 1) writeReg(c, RAX, 2, q | (r << 8), 0);
    else { writeReg(c, RAX, 2, q, 0); writeReg(c, RDX, 2, r, 0); }
    return;
  }
  const a = readReg(c, RAX, size);
  const ah = c.hi;
  const x = readReg(c, RDX, size);
  const xh = c.hi;
  if (size === 4) {
    const dv = d >>> 0;
    if (dv === 0) divideError(c, 'divide by zero');
    const hi = x >>> 0;
    if (hi >= dv) divideError(c, 'quotient too large');
    if (hi < 0x200000) {
      const n = hi * T32 + (a >>> 0);
      const r = n % dv;
      writeReg(c, RAX, 4, (n - r) / dv, 0);
      writeReg(c, RDX, 4, r, 0);
      return;
    }
    const n = (BigInt(hi) << 32n) | BigInt(a >>> 0);
    const D = BigInt(dv);
    writeReg(c, RAX, 4, Number(BigInt.asIntN(32, n / D)), 0);
    writeReg(c, RDX, 4, Number(BigInt.asIntN(32, n % D)), 0);
    return;
  }
  const dvLo = d >>> 0, dvHi = dh >>> 0;
  if ((dvLo | dvHi) === 0) divideError(c, 'divide by zero');
  if ((x | xh) === 0 && (ah >>> 0) < 0x200000 && dvHi < 0x200000) {
    const n = (ah >>> 0) * T32 + (a >>> 0);
    const dv = dvHi * T32 + dvLo;
    const r = n % dv;
    const q = (n - r) / dv;
    writeReg(c, RAX, 8, q, Math.floor(q / T32));
    writeReg(c, RDX, 8, r, Math.floor(r / T32));
    return;
  }
  const n = (BigInt(xh >>> 0) << 96n) | (BigInt(x >>> 0) << 64n) | (BigInt(ah >>> 0) << 32n) | BigInt(a >>> 0);
  const D = (BigInt(dvHi) << 32n) | BigInt(dvLo);
  const q = n / D;
  if (q >> 64n !== 0n) divideError(c, 'quotient too large');
  const r = n % D;
  writeReg(c, RAX, 8, Number(BigInt.asIntN(32, q)), Number(BigInt.asIntN(32, q >> 32n)));
  writeReg(c, RDX, 8, Number(BigInt.asIntN(32, r)), Number(BigInt.asIntN(32, r >> 32n)));
}

function mul_idiv(c: Cpu, i: Op): void {
  const size = i.size0;
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  if (size === 1 || size === 2) {
    const dv = sext(d, size);
    if (dv === 0) divideError(c, 'divide by zero');
    const n = size === 1 ? sext(readReg(c, RAX, 2), 2) : (sext(readReg(c, RDX, 2), 2) * 65536 + readReg(c, RAX, 2));
    const r = n % dv;
    const q = (n - r) / dv;
    const lim = size === 1 ? 0x80 : 0x8000;
    if (q >= lim || q < -lim) divideError(c, 'quotient too large');
    if (size === 1) writeReg(c, RAX, 2, (q & 0xff) | ((r & 0xff) << 8), 0);
    else { writeReg(c, RAX, 2, q & 0xffff, 0); writeReg(c, RDX, 2, r & 0xffff, 0); }
    return;
  }
  const a = readReg(c, RAX, size);
  const ah = c.hi;
  const x = readReg(c, RDX, size);
  const xh = c.hi;
  if (size === 4) {
    if (d === 0) divideError(c, 'divide by zero');
    // Dividend EDX:EAX as a signed number; exact when EDX is a sign extension-ish small value.
    if (x === (a >> 31)) {
      const r = a % d;
      const q = (a - r) / d;
      if (q > 0x7fffffff || q < -0x80000000) divideError(c, 'quotient too large');
      writeReg(c, RAX, 4, q, 0); writeReg(c, RDX, 4, r, 0);
      return;
    }
    const n = (BigInt(x) << 32n) | BigInt(a >>> 0);
    const D = BigInt(d);
    const q = n / D;
    if (q > 0x7fffffffn || q < -0x80000000n) divideError(c, 'quotient too large');
    writeReg(c, RAX, 4, Number(q), 0);
    writeReg(c, RDX, 4, Number(BigInt.asIntN(32, n % D)), 0);
    return;
  }
  if ((d | dh) === 0) divideError(c, 'divide by zero');
  const sign = ah >> 31;
  if (x === sign && xh === sign && ((ah >= 0 && ah < 0x200000) || (ah < 0 && ah >= -0x200000)) && dh >= -0x200000 && dh < 0x200000) {
    const n = ah * T32 + (a >>> 0);
    const dv = dh * T32 + (d >>> 0);
    const r = n % dv;
    const q = (n - r) / dv;
    writeReg(c, RAX, 8, q, Math.floor(q / T32));
    writeReg(c, RDX, 8, r, Math.floor(r / T32));
    return;
  }
  const n = BigInt.asIntN(128, (BigInt(xh >>> 0) << 96n) | (BigInt(x >>> 0) << 64n) | (BigInt(ah >>> 0) << 32n) | BigInt(a >>> 0));
  const D = BigInt.asIntN(64, (BigInt(dh >>> 0) << 32n) | BigInt(d >>> 0));
  const q = n / D;
  if (q >= 1n << 63n || q < -(1n << 63n)) divideError(c, 'quotient too large');
  const r = n % D;
  writeReg(c, RAX, 8, Number(BigInt.asIntN(32, q)), Number(BigInt.asIntN(32, q >> 32n)));
  writeReg(c, RDX, 8, Number(BigInt.asIntN(32, r)), Number(BigInt.asIntN(32, r >> 32n)));
}

export const MULDIV: HandlerMap = {
  mul_mul,
  mul_imul,
  mul_imul2: (c, i) => imulTrunc(c, i, 0, 1),
  mul_imul3: (c, i) => imulTrunc(c, i, 1, 2),
  mul_div,
  mul_idiv,
};
