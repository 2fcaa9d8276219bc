/**
 * Shifts and rotates: SHL/SAL SHR SAR ROL ROR RCL RCR SHLD SHRD (SDM Vol. 2B,
 * "SAL/SAR/SHL/SHR", "RCL/RCR/ROL/ROR", "SHLD", "SHRD").
 *
 * A masked count of 0 changes no flag. Shifts set CF to the last bit out,
 * OF as the SDM defines it for a count of 1 (for larger counts, where it is
 * undefined, the same formula on the final result), AF = 0. Rotates change
 * only CF and OF.
 */
import { OP_GPR } from '../decode/index.js';
import { getCF, setCarryOverflow } from '../flags.js';
import type { Cpu } from '../cpu.js';
import type { Op } from '../op.js';
import { maskOf, rd, sext, writeBack } from '../operands.js';
import { FLAG_CF, FLAG_OF, LF_CO } from '../state.js';
import type { HandlerMap } from './types.js';

/** 64-bit results of the pair helpers (no allocation). */
export let RLO = 0;
export let RHI = 0;

export function shl64(lo: number, hi: number, n: number): void {
  if (n === 0) { RLO = lo; RHI = hi; } else if (n < 32) { RHI = (hi << n) | (lo >>> (32 - n)); RLO = lo << n; } else { RHI = lo << (n - 32); RLO = 0; }
}

export function shr64(lo: number, hi: number, n: number): void {
  if (n === 0) { RLO = lo; RHI = hi; } else if (n < 32) { RLO = (lo >>> n) | (hi << (32 - n)); RHI = hi >>> n; } else { RLO = hi >>> (n - 32); RHI = 0; }
}

export function sar64(lo: number, hi: number, n: number): void {
  if (n === 0) { RLO = lo; RHI = hi; } else if (n < 32) { RLO = (lo >>> n) | (hi << (32 - n)); RHI = hi >> n; } else { RLO = hi >> (n - 32); RHI = hi >> 31; }
}

export function bit64(lo: number, hi: number, k: number): number {
  return k < 32 ? (lo >>> k) & 1 : (hi >>> (k - 32)) & 1;
}

export function setCO(c: Cpu, size: number, r: number, rh: number, cf: number, of: number): void {
  c.lfOp = LF_CO;
  c.lfSize = size;
  c.lfRes = r;
  c.lfResHi = rh;
  c.lfAux = cf | (of << 11);
}

function count(c: Cpu, i: Op, size: number): number {
  return rd(c, i, 1, 1) & (size === 8 ? 63 : 31);
}

/** A count of 0 changes nothing, except that a 32-bit register destination is zero-extended. */
function zeroCount(c: Cpu, i: Op, size: number, d: number): void {
  if (size === 4 && i.kind0 === OP_GPR) writeBack(c, i, 0, 4, d, 0);
}

const SHL = 0, SHR = 1, SAR = 2;

function shift(c: Cpu, i: Op, kind: number): void {
  const size = i.size0;
  const n = count(c, i, size);
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  if (n === 0) { zeroCount(c, i, size, d); return; }
  if (size === 8) {
    let cf: number;
    let of: number;
    if (kind === SHL) { shl64(d, dh, n); cf = bit64(d, dh, 64 - n); of = (RHI >>> 31) ^ cf; }
    else if (kind === SHR) { shr64(d, dh, n); cf = bit64(d, dh, n - 1); of = dh >>> 31; }
    else { sar64(d, dh, n); cf = bit64(d, dh, n - 1); of = 0; }
    writeBack(c, i, 0, 8, RLO, RHI);
    setCO(c, 8, RLO, RHI, cf, of);
    return;
  }
  const bits = size * 8;
  const m = maskOf(size);
  let r: number;
  let cf: number;
  let of: number;
  if (kind === SHL) {
    r = (d << n) & m;
    cf = n <= bits ? (d >>> (bits - n)) & 1 : 0;
    of = ((r >>> (bits - 1)) & 1) ^ cf;
  } else if (kind === SHR) {
    r = size === 4 ? d >>> n : d >>> n;
    r &= m;
    cf = (d >>> (n - 1)) & 1;
    of = (d >>> (bits - 1)) & 1;
  } else {
    const sx = sext(d, size);
    r = (sx >> n) & m;
    cf = (sx >> Math.min(n - 1, 31)) & 1;
    of = 0;
  }
  writeBack(c, i, 0, size, r, 0);
  setCO(c, size, r, 0, cf, of);
}

const ROL = 0, ROR = 1, RCL = 2, RCR = 3;

function rotate(c: Cpu, i: Op, kind: number): void {
  const size = i.size0;
  const raw = count(c, i, size);
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  if (raw === 0) { zeroCount(c, i, size, d); return; }
  const bits = size * 8;
  let lo: number;
  let hi = 0;
  let cf: number;
  let of: number;
  if (kind === ROL || kind === ROR) {
    const n = raw % bits;
    if (size === 8) {
      const k = kind === ROL ? n : (64 - n) % 64;
      shl64(d, dh, k); const aL = RLO, aH = RHI;
      shr64(d, dh, (64 - k) % 64);
      lo = k === 0 ? d : aL | RLO;
      hi = k === 0 ? dh : aH | RHI;
      const msb = hi >>> 31;
      if (kind === ROL) { cf = lo & 1; of = msb ^ cf; } else { cf = msb; of = msb ^ ((hi >>> 30) & 1); }
    } else {
      const m = maskOf(size);
      const k = kind === ROL ? n : (bits - n) % bits;
      lo = k === 0 ? d : ((d << k) | (d >>> (bits - k))) & m;
      const msb = (lo >>> (bits - 1)) & 1;
      if (kind === ROL) { cf = lo & 1; of = msb ^ cf; } else { cf = msb; of = msb ^ ((lo >>> (bits - 2)) & 1); }
    }
  } else {
    // Through carry: (bits + 1)-bit rotation, one bit at a time (rare in compiled code).
    const n = size === 1 ? raw % 9 : size === 2 ? raw % 17 : raw;
    let l = d, h = size === 8 ? dh : 0;
    let carry = getCF(c);
    for (let k = 0; k < n; k++) {
      if (kind === RCL) {
        const out = size === 8 ? h >>> 31 : (l >>> (bits - 1)) & 1;
        if (size === 8) { h = (h << 1) | (l >>> 31); l = (l << 1) | carry; } else l = ((l << 1) | carry) & maskOf(size);
        carry = out;
      } else {
        const out = l & 1;
        if (size === 8) { l = (l >>> 1) | (h << 31); h = (h >>> 1) | (carry << 31); } else l = ((l >>> 1) | (carry << (bits - 1))) & maskOf(size);
        carry = out;
      }
    }
    lo = l; hi = h; cf = carry;
    const msb = size === 8 ? hi >>> 31 : (lo >>> (bits - 1)) & 1;
    const msb2 = size === 8 ? (hi >>> 30) & 1 : (lo >>> (bits - 2)) & 1;
    of = kind === RCL ? msb ^ cf : msb ^ msb2;
  }
  writeBack(c, i, 0, size, lo, hi);
  setCarryOverflow(c, FLAG_CF | FLAG_OF, cf | (of << 11));
}

/** SHLD/SHRD: the destination shifted with bits from the source (operands 0, 1; count operand 2). */
function doubleShift(c: Cpu, i: Op, left: boolean): void {
  const size = i.size0;
  const n = rd(c, i, 2, 1) & (size === 8 ? 63 : 31);
  const s = rd(c, i, 1, size);
  const sh = c.hi;
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  if (n === 0) { zeroCount(c, i, size, d); return; }
  const bits = BigInt(size * 8);
  const mask = (1n << bits) - 1n;
  const D = size === 8 ? (BigInt(dh >>> 0) << 32n) | BigInt(d >>> 0) : BigInt(size === 4 ? d >>> 0 : d);
  const S = size === 8 ? (BigInt(sh >>> 0) << 32n) | BigInt(s >>> 0) : BigInt(size === 4 ? s >>> 0 : s);
  const N = BigInt(n);
  // 16-bit counts above 16 are undefined; this takes bits from a repeated source, as Intel parts do.
  let r: bigint;
  let cf: bigint;
  if (left) {
    const wide = (D << bits) | S;
    r = (wide << N >> bits) & mask;
    cf = (wide >> (2n * bits - N)) & 1n;
  } else {
    const wide = (S << bits) | D;
    r = (wide >> N) & mask;
    cf = (wide >> (N - 1n)) & 1n;
  }
  const lo = Number(BigInt.asIntN(32, r));
  const hi = size === 8 ? Number(BigInt.asIntN(32, r >> 32n)) : 0;
  const rv = size === 4 ? lo : size === 8 ? lo : Number(r);
  const of = Number(((r ^ D) >> (bits - 1n)) & 1n);
  writeBack(c, i, 0, size, rv, hi);
  setCO(c, size, rv, hi, Number(cf), of);
}

export const SHIFT: HandlerMap = {
  shift_shl: (c, i) => shift(c, i, SHL),
  shift_shr: (c, i) => shift(c, i, SHR),
  shift_sar: (c, i) => shift(c, i, SAR),
  shift_rol: (c, i) => rotate(c, i, ROL),
  shift_ror: (c, i) => rotate(c, i, ROR),
  shift_rcl: (c, i) => rotate(c, i, RCL),
  shift_rcr: (c, i) => rotate(c, i, RCR),
  shift_shld: (c, i) => doubleShift(c, i, true),
  shift_shrd: (c, i) => doubleShift(c, i, false),
};
