/**
 * Operand access for handlers: registers by size, effective addresses,
 * memory by size. Values of size 1 and 2 travel zero-extended, size 4 as
 * int32, size 8 as (lo returned, hi in cpu.hi).
 *
 * Register writes follow SDM Vol. 1, 3.4.1.1: a 32-bit result zero-extends
 * into the full register; 8- and 16-bit results leave the other bits.
 */
import { BASE_RIP, MODE_64, OP_GPR, OP_IMM, OP_MEM, REG_AH } from './decode/index.js';
import type { Cpu } from './cpu.js';
import { opKind, opReg, type Op } from './op.js';

export const T32 = 4294967296;

/** Mask for a value of `size` bytes in an int32 (size 4: all bits). */
export function maskOf(size: number): number {
  return size === 1 ? 0xff : size === 2 ? 0xffff : -1;
}

/** A GPR's full value as a signed number (exact for |v| < 2^53; addresses). */
export function regAddr(c: Cpu, r: number): number {
  return (c.gpr[2 * r + 1] as number) * T32 + ((c.gpr[2 * r] as number) >>> 0);
}

export function setRegAddr(c: Cpu, r: number, a: number): void {
  c.gpr[2 * r] = a;
  c.gpr[2 * r + 1] = Math.floor(a / T32);
}

export function readReg(c: Cpu, r: number, size: number): number {
  const g = c.gpr;
  switch (size) {
    case 8: c.hi = g[2 * r + 1] as number; return g[2 * r] as number;
    case 4: return g[2 * r] as number;
    case 2: return (g[2 * r] as number) & 0xffff;
    default: return r < REG_AH ? (g[2 * r] as number) & 0xff : ((g[2 * (r - REG_AH)] as number) >> 8) & 0xff;
  }
}

export function writeReg(c: Cpu, r: number, size: number, lo: number, hi: number): void {
  const g = c.gpr;
  switch (size) {
    case 8: g[2 * r] = lo; g[2 * r + 1] = hi; return;
    case 4: g[2 * r] = lo; g[2 * r + 1] = 0; return;
    case 2: g[2 * r] = ((g[2 * r] as number) & ~0xffff) | (lo & 0xffff); return;
    default:
      if (r < REG_AH) g[2 * r] = ((g[2 * r] as number) & ~0xff) | (lo & 0xff);
      else { const k = 2 * (r - REG_AH); g[k] = ((g[k] as number) & ~0xff00) | ((lo & 0xff) << 8); }
  }
}

/** Effective linear address of the instruction's memory operand. */
export function ea(c: Cpu, i: Op): number {
  let a = i.dispVal;
  const b = i.base;
  if (b >= 0) a += b === BASE_RIP ? c.nextRip : regAddr(c, b);
  const x = i.index;
  if (x >= 0) a += regAddr(c, x) * (1 << i.scale);
  if (i.asize !== 8) a = i.asize === 4 ? a >>> 0 : a & 0xffff;
  else if (a >= 9007199254740992 || a < -9007199254740992) a = wrap64(a);
  return a + (c.segBase[i.segment] as number);
}

/** Reduces a sum of 64-bit quantities to the signed 64-bit range (beyond 2^53: inexact, but never canonical). */
export function wrap64(a: number): number {
  return a - Math.round(a / 18446744073709551616) * 18446744073709551616;
}

export function readMem(c: Cpu, a: number, size: number): number {
  switch (size) {
    case 8: return c.read64(a);
    case 4: return c.read32(a);
    case 2: return c.read16(a);
    default: return c.read8(a);
  }
}

export function writeMem(c: Cpu, a: number, size: number, lo: number, hi: number): void {
  switch (size) {
    case 8: c.write64(a, lo, hi); return;
    case 4: c.write32(a, lo); return;
    case 2: c.write16(a, lo); return;
    default: c.write8(a, lo);
  }
}

/**
 * Reads operand n at `size` bytes. Memory: records the address in c.addr for
 * a following writeBack. Immediates: sign-extended per the decoder, cut to size.
 */
export function rd(c: Cpu, i: Op, n: number, size: number): number {
  const kind = opKind(i, n);
  if (kind === OP_GPR) return readReg(c, opReg(i, n), size);
  if (kind === OP_MEM) {
    const a = ea(c, i);
    c.addr = a;
    return readMem(c, a, size);
  }
  if (kind === OP_IMM) {
    if (size === 8) { c.hi = i.immHi; return i.imm; }
    return i.imm & maskOf(size);
  }
  throw new Error(`operand ${n} of kind ${kind} is not a value`);
}

/** Writes operand n (memory: computes the address). */
export function wr(c: Cpu, i: Op, n: number, size: number, lo: number, hi: number): void {
  if (opKind(i, n) === OP_GPR) writeReg(c, opReg(i, n), size, lo, hi);
  else writeMem(c, ea(c, i), size, lo, hi);
}

/** Writes operand n after rd() read it (memory: the same address). */
export function writeBack(c: Cpu, i: Op, n: number, size: number, lo: number, hi: number): void {
  if (opKind(i, n) === OP_GPR) writeReg(c, opReg(i, n), size, lo, hi);
  else writeMem(c, c.addr, size, lo, hi);
}

/** Sign-extends a size-byte value to int32. */
export function sext(v: number, size: number): number {
  return size === 1 ? (v << 24) >> 24 : size === 2 ? (v << 16) >> 16 : v | 0;
}

// ---- Stack (64-bit mode: RSP, 8 or 2 bytes; SS base 0) ----

export function push64(c: Cpu, lo: number, hi: number): void {
  const sp = regAddr(c, 4) - 8;
  c.write64(sp, lo, hi);
  setRegAddr(c, 4, sp);
}

export function pop64(c: Cpu): number {
  const sp = regAddr(c, 4);
  const lo = c.read64(sp);
  setRegAddr(c, 4, sp + 8);
  return lo;
}

export function pushN(c: Cpu, size: number, lo: number, hi: number): void {
  if (size === 8) { push64(c, lo, hi); return; }
  if (c.mode !== MODE_64) { pushLegacy(c, size, lo); return; }
  const sp = regAddr(c, 4) - size;
  writeMem(c, sp, size, lo, hi);
  setRegAddr(c, 4, sp);
}

export function popN(c: Cpu, size: number): number {
  if (size === 8) return pop64(c);
  if (c.mode !== MODE_64) return popLegacy(c, size);
  const sp = regAddr(c, 4);
  const v = readMem(c, sp, size);
  setRegAddr(c, 4, sp + size);
  return v;
}

// ---- Stack outside 64-bit mode: SS base, SP or ESP by SS.B (SDM Vol. 1, 6.2.3) ----

/** SS.B in the machine's segment attributes (system.ts ATTR_DB). */
const SS_ATTR_B = 0x400;
const SEG_SS = 2;

function stack32(c: Cpu): boolean {
  const s = c.sys;
  return s !== undefined && ((s.segAttr[SEG_SS] as number) & SS_ATTR_B) !== 0;
}

function setSp(c: Cpu, wide: boolean, sp: number): void {
  if (wide) { c.gpr[2 * 4] = sp; c.gpr[2 * 4 + 1] = 0; }
  else c.gpr[2 * 4] = ((c.gpr[2 * 4] as number) & ~0xffff) | (sp & 0xffff);
}

function pushLegacy(c: Cpu, size: number, v: number): void {
  const wide = stack32(c);
  const sp = wide ? (c.gpr[2 * 4] as number) >>> 0 : (c.gpr[2 * 4] as number) & 0xffff;
  const nsp = wide ? (sp - size) >>> 0 : (sp - size) & 0xffff;
  writeMem(c, (c.segBase[SEG_SS] as number) + nsp, size, v, 0);
  setSp(c, wide, nsp);
}

function popLegacy(c: Cpu, size: number): number {
  const wide = stack32(c);
  const sp = wide ? (c.gpr[2 * 4] as number) >>> 0 : (c.gpr[2 * 4] as number) & 0xffff;
  const v = readMem(c, (c.segBase[SEG_SS] as number) + sp, size);
  setSp(c, wide, wide ? (sp + size) >>> 0 : (sp + size) & 0xffff);
  return v;
}
