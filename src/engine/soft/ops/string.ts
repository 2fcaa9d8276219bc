/**
 * String instructions: MOVS, STOS, LODS, SCAS, CMPS with REP/REPE/REPNE
 * (SDM Vol. 2B; Vol. 1, 7.3.9). INS/OUTS need port I/O (part 2).
 *
 * A repeated instruction runs at most REP_BUDGET elements per step, then
 * leaves RIP on itself with RSI/RDI/RCX updated, so interrupts are taken in
 * between and it resumes where it stopped (SDM Vol. 2B, REP: "interrupted
 * ... the instruction is restarted"); registers are written back even when
 * an element faults, as on hardware.
 */
import { PFX_REP, PFX_REPNE } from '../decode/index.js';
import type { Cpu } from '../cpu.js';
import type { Op } from '../op.js';
import { maskOf, readMem, readReg, writeMem, writeReg } from '../operands.js';
import { FLAG_DF, LF_SUB, RAX, RCX, RDI, RSI } from '../state.js';
import { PAGE_MASK, PAGE_SIZE } from '../mmu.js';
import { setArith } from './alu.js';
import type { HandlerMap } from './types.js';
import { T32 } from '../operands.js';

const MOVS = 0, STOS = 1, LODS = 2, SCAS = 3, CMPS = 4;
/** Elements one execution of a REP string instruction processes before it yields (~0.1-0.3 ms here). */
const REP_BUDGET = 4096;

/** A pointer register as an address of the instruction's address size. */
function ptr(c: Cpu, r: number, asize: number): number {
  const lo = c.gpr[2 * r] as number;
  if (asize === 8) return (c.gpr[2 * r + 1] as number) * T32 + (lo >>> 0);
  return asize === 4 ? lo >>> 0 : lo & 0xffff;
}

function setPtr(c: Cpu, r: number, asize: number, v: number): void {
  if (asize === 8) { c.gpr[2 * r] = v; c.gpr[2 * r + 1] = Math.floor(v / T32); }
  else writeReg(c, r, asize, asize === 4 ? v : v & 0xffff, 0);
}

function str(c: Cpu, i: Op, kind: number): void {
  const size = kind === SCAS || kind === STOS ? i.size0 : kind === LODS ? i.size1 : i.size0;
  const asize = i.asize;
  const step = (c.flagsBase & FLAG_DF) !== 0 ? -size : size;
  const rep = (i.prefixes & (PFX_REP | PFX_REPNE)) !== 0;
  const repne = (i.prefixes & PFX_REPNE) !== 0;
  const srcBase = c.segBase[i.segment] as number;
  let si = ptr(c, RSI, asize);
  let di = ptr(c, RDI, asize);
  let n = rep ? (asize === 8 ? readReg(c, RCX, 8) >>> 0 : readReg(c, RCX, asize) >>> 0) + (asize === 8 ? (c.hi >>> 0) * T32 : 0) : 1;
  const amask = asize === 8 ? 0 : asize === 4 ? T32 : 65536;
  const acc = readReg(c, RAX, size);
  const accHi = c.hi;
  let budget = rep ? REP_BUDGET : 1;
  try {
    // Forward MOVS and STOS with 64-bit addresses: a page's worth of elements at a time on the frames' bytes.
    if (rep && step > 0 && asize === 8 && (kind === MOVS || kind === STOS)) {
      while (n > 0 && budget > 0) {
        const k = bulk(c, kind, size, srcBase + si, di, Math.min(n, budget), acc, accHi);
        if (k === 0) break;
        si += k * size; di += k * size; n -= k; budget -= k;
      }
    }
    while (n > 0) {
      if (budget-- === 0) {
        // Yield: execute this instruction again for the remaining elements.
        // c.rip, not c.rip: decoded code is shared by every linear alias of its frame.
        c.nextRip = c.rip;
        break;
      }
      switch (kind) {
        case MOVS: { const v = readMem(c, srcBase + si, size); writeMem(c, di, size, v, c.hi); si += step; di += step; break; }
        case STOS: writeMem(c, di, size, acc, accHi); di += step; break;
        case LODS: { const v = readMem(c, srcBase + si, size); writeReg(c, RAX, size, v, c.hi); si += step; break; }
        case SCAS: {
          const v = readMem(c, di, size);
          const vh = c.hi;
          setArith(c, LF_SUB, size, acc, accHi, v, vh, (acc - v) & maskOf(size), size === 8 ? (accHi - vh - ((acc >>> 0) < (v >>> 0) ? 1 : 0)) | 0 : 0, 0);
          di += step;
          break;
        }
        default: {
          const a = readMem(c, srcBase + si, size);
          const ah = c.hi;
          const b = readMem(c, di, size);
          const bh = c.hi;
          setArith(c, LF_SUB, size, a, ah, b, bh, (a - b) & maskOf(size), size === 8 ? (ah - bh - ((a >>> 0) < (b >>> 0) ? 1 : 0)) | 0 : 0, 0);
          si += step; di += step;
        }
      }
      if (amask !== 0) { si = ((si % amask) + amask) % amask; di = ((di % amask) + amask) % amask; }
      n--;
      if (rep && (kind === SCAS || kind === CMPS)) {
        const equal = size === 8 ? c.lfDst === c.lfSrc && c.lfDstHi === c.lfSrcHi : c.lfDst === c.lfSrc;
        if (repne ? equal : !equal) break;
      }
    }
  } finally {
    if (kind === MOVS || kind === LODS || kind === CMPS) setPtr(c, RSI, asize, si);
    if (kind !== LODS) setPtr(c, RDI, asize, di);
    if (rep) {
      if (asize === 8) { c.gpr[2 * RCX] = n; c.gpr[2 * RCX + 1] = Math.floor(n / T32); }
      else writeReg(c, RCX, asize, n, 0);
    }
  }
}

/**
 * Up to `max` elements of a forward MOVS (from linear `src`) or STOS (of
 * acc:accHi) to linear `dst`, as far as the source and destination pages
 * both reach, on the frames' bytes; returns how many were done (0: the
 * next element straddles a page, a page is MMIO, or the copy runs forward
 * into its own source, which x86 repeats element by element: the caller
 * goes on one element at a time). Faults before writing anything.
 */
function bulk(c: Cpu, kind: number, size: number, src: number, dst: number, max: number, acc: number, accHi: number): number {
  const dOff = dst & PAGE_MASK;
  let k = Math.min(max, Math.floor((PAGE_SIZE - dOff) / size));
  let from: Uint8Array | undefined;
  let sOff = 0;
  if (kind === MOVS) {
    sOff = src & PAGE_MASK;
    k = Math.min(k, Math.floor((PAGE_SIZE - sOff) / size));
    if (k === 0) return 0;
    from = c.readFrame(src);
    if (from === undefined) return 0;
  }
  if (k === 0) return 0;
  const to = c.writeFrame(dst);
  if (to === undefined) return 0;
  const len = k * size;
  if (from !== undefined) {
    const a = from.byteOffset + sOff, b = to.byteOffset + dOff;
    if (from.buffer === to.buffer && b > a && b < a + len) return 0;
    to.set(from.subarray(sOff, sOff + len), dOff);
  } else if (size === 1 || (acc === 0 && (size < 8 || accHi === 0))) to.fill(acc & 0xff, dOff, dOff + len);
  else {
    const v = new DataView(to.buffer, to.byteOffset + dOff, len);
    for (let j = 0; j < len; j += size) {
      if (size === 2) v.setUint16(j, acc, true);
      else {
        v.setInt32(j, acc, true);
        if (size === 8) v.setInt32(j + 4, accHi, true);
      }
    }
  }
  return k;
}

export const STRING: HandlerMap = {
  str_movs: (c, i) => str(c, i, MOVS),
  str_stos: (c, i) => str(c, i, STOS),
  str_lods: (c, i) => str(c, i, LODS),
  str_scas: (c, i) => str(c, i, SCAS),
  str_cmps: (c, i) => str(c, i, CMPS),
};
