/**
 * Integer arithmetic and logic: ADD OR ADC SBB AND SUB XOR CMP TEST, INC DEC
 * NEG NOT, XADD, CMPXCHG, CMPXCHG8B/16B (SDM Vol. 2A/2B, one entry each).
 * Flags are recorded lazily (flags.ts).
 */
import { OP_MEM } from '../decode/index.js';
import { getCF, setStatus } from '../flags.js';
import { CpuException, VEC_GP } from '../mmu.js';
import type { Cpu } from '../cpu.js';
import type { Op } from '../op.js';
import { ea, maskOf, rd, readReg, writeBack, writeReg } from '../operands.js';
import { FLAG_ZF, LF_ADC, LF_ADD, LF_DEC, LF_INC, LF_LOGIC, LF_SBB, LF_SUB, RAX, RBX, RCX, RDX } from '../state.js';
import type { HandlerMap } from './types.js';

const K_ADD = 0, K_OR = 1, K_ADC = 2, K_SBB = 3, K_AND = 4, K_SUB = 5, K_XOR = 6, K_CMP = 7, K_TEST = 8;

export function setArith(c: Cpu, kind: number, size: number, d: number, dh: number, s: number, sh: number, r: number, rh: number, aux: number): void {
  c.lfOp = kind;
  c.lfSize = size;
  c.lfDst = d; c.lfDstHi = dh;
  c.lfSrc = s; c.lfSrcHi = sh;
  c.lfRes = r; c.lfResHi = rh;
  c.lfAux = aux;
}

export function setLogic(c: Cpu, size: number, r: number, rh: number): void {
  c.lfOp = LF_LOGIC;
  c.lfSize = size;
  c.lfRes = r; c.lfResHi = rh;
}

function binop(c: Cpu, i: Op, k: number): void {
  const size = i.size0;
  const s = rd(c, i, 1, size);
  const sh = c.hi;
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  // A destination in memory that cannot be written faults before the flags change.
  if (i.kind0 === OP_MEM && k !== K_CMP && k !== K_TEST) c.probeWrite(c.addr, size);
  let r: number;
  let rh = 0;
  if (size === 8) {
    switch (k) {
      case K_ADD: case K_ADC: {
        const cin = k === K_ADC ? getCF(c) : 0;
        const lo = (d >>> 0) + (s >>> 0) + cin;
        r = lo | 0;
        rh = (dh + sh + (lo > 0xffffffff ? 1 : 0)) | 0;
        setArith(c, k === K_ADD ? LF_ADD : LF_ADC, 8, d, dh, s, sh, r, rh, cin);
        break;
      }
      case K_SUB: case K_SBB: case K_CMP: {
        const bin = k === K_SBB ? getCF(c) : 0;
        r = (d - s - bin) | 0;
        rh = (dh - sh - ((d >>> 0) < (s >>> 0) + bin ? 1 : 0)) | 0;
        setArith(c, k === K_SBB ? LF_SBB : LF_SUB, 8, d, dh, s, sh, r, rh, bin);
        if (k === K_CMP) return;
        break;
      }
      case K_OR: r = d | s; rh = dh | sh; setLogic(c, 8, r, rh); break;
      case K_XOR: r = d ^ s; rh = dh ^ sh; setLogic(c, 8, r, rh); break;
      default: r = d & s; rh = dh & sh; setLogic(c, 8, r, rh); if (k === K_TEST) return;
    }
  } else {
    const m = maskOf(size);
    switch (k) {
      case K_ADD: r = (d + s) & m; setArith(c, LF_ADD, size, d, 0, s, 0, r, 0, 0); break;
      case K_ADC: { const cin = getCF(c); r = (d + s + cin) & m; setArith(c, LF_ADC, size, d, 0, s, 0, r, 0, cin); break; }
      case K_SUB: r = (d - s) & m; setArith(c, LF_SUB, size, d, 0, s, 0, r, 0, 0); break;
      case K_CMP: setArith(c, LF_SUB, size, d, 0, s, 0, (d - s) & m, 0, 0); return;
      case K_SBB: { const bin = getCF(c); r = (d - s - bin) & m; setArith(c, LF_SBB, size, d, 0, s, 0, r, 0, bin); break; }
      case K_OR: r = d | s; setLogic(c, size, r, 0); break;
      case K_XOR: r = d ^ s; setLogic(c, size, r, 0); break;
      default: r = d & s; setLogic(c, size, r, 0); if (k === K_TEST) return;
    }
  }
  writeBack(c, i, 0, size, r, rh);
}

function incdec(c: Cpu, i: Op, dec: boolean): void {
  const size = i.size0;
  const cf = getCF(c);
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  if (i.kind0 === OP_MEM) c.probeWrite(c.addr, size);
  let r: number;
  let rh = 0;
  if (size === 8) {
    if (dec) { r = (d - 1) | 0; rh = d === 0 ? (dh - 1) | 0 : dh; }
    else { r = (d + 1) | 0; rh = r === 0 ? (dh + 1) | 0 : dh; }
  } else {
    r = (dec ? d - 1 : d + 1) & maskOf(size);
  }
  setArith(c, dec ? LF_DEC : LF_INC, size, d, dh, 1, 0, r, rh, cf);
  writeBack(c, i, 0, size, r, rh);
}

function alu_neg(c: Cpu, i: Op): void {
  const size = i.size0;
  const s = rd(c, i, 0, size);
  const sh = c.hi;
  if (i.kind0 === OP_MEM) c.probeWrite(c.addr, size);
  let r: number;
  let rh = 0;
  if (size === 8) { r = (-s) | 0; rh = (~sh + (s === 0 ? 1 : 0)) | 0; }
  else r = (-s) & maskOf(size);
  setArith(c, LF_SUB, size, 0, 0, s, sh, r, rh, 0);
  writeBack(c, i, 0, size, r, rh);
}

function alu_not(c: Cpu, i: Op): void {
  const size = i.size0;
  const d = rd(c, i, 0, size);
  writeBack(c, i, 0, size, ~d & maskOf(size), ~c.hi);
}

function alu_xadd(c: Cpu, i: Op): void {
  const size = i.size0;
  const s = rd(c, i, 1, size);
  const sh = c.hi;
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  let r: number;
  let rh = 0;
  if (size === 8) {
    const lo = (d >>> 0) + (s >>> 0);
    r = lo | 0;
    rh = (dh + sh + (lo > 0xffffffff ? 1 : 0)) | 0;
  } else r = (d + s) & maskOf(size);
  setArith(c, LF_ADD, size, d, dh, s, sh, r, rh, 0);
  // SDM XADD: TEMP <- SRC + DEST; SRC <- DEST; DEST <- TEMP (the destination write wins when both are one register).
  writeReg(c, i.reg1, size, d, dh);
  writeBack(c, i, 0, size, r, rh);
}

function alu_cmpxchg(c: Cpu, i: Op): void {
  const size = i.size0;
  const d = rd(c, i, 0, size);
  const dh = c.hi;
  const a = readReg(c, RAX, size);
  const ah = c.hi;
  const m = maskOf(size);
  if (a === d && (size !== 8 || ah === dh)) {
    const s = rd(c, i, 1, size);
    writeBack(c, i, 0, size, s, c.hi);
  } else {
    // A memory destination is written back unchanged (a locked cycle always writes); a register
    // destination is not written, so a 32-bit one keeps its upper half (as the host CPU does).
    if (i.kind0 === OP_MEM) writeBack(c, i, 0, size, d, dh);
    writeReg(c, RAX, size, d, dh);
  }
  // The flags of RAX - destination, once the write has not faulted.
  setArith(c, LF_SUB, size, a, ah, d, dh, (a - d) & m, size === 8 ? (ah - dh - ((a >>> 0) < (d >>> 0) ? 1 : 0)) | 0 : 0, 0);
}

function alu_cmpxchg8b(c: Cpu, i: Op): void {
  const a = ea(c, i);
  if ((i.size0) === 16) {
    if ((a & 15) !== 0) throw new CpuException(VEC_GP, 0, c.rip, 'cmpxchg16b: operand not 16-byte aligned');
    const l0 = c.read64(a), h0 = c.hi, l1 = c.read64(a + 8), h1 = c.hi;
    const g = c.gpr;
    if (l0 === g[2 * RAX] && h0 === g[2 * RAX + 1] && l1 === g[2 * RDX] && h1 === g[2 * RDX + 1]) {
      c.probeWrite(a, 16);
      c.write64(a, g[2 * RBX] as number, g[2 * RBX + 1] as number);
      c.write64(a + 8, g[2 * RCX] as number, g[2 * RCX + 1] as number);
      setStatus(c, FLAG_ZF, FLAG_ZF);
    } else {
      c.probeWrite(a, 16);
      c.write64(a, l0, h0);
      c.write64(a + 8, l1, h1);
      g[2 * RAX] = l0; g[2 * RAX + 1] = h0; g[2 * RDX] = l1; g[2 * RDX + 1] = h1;
      setStatus(c, FLAG_ZF, 0);
    }
    return;
  }
  const lo = c.read32(a), hi = c.read32(a + 4);
  const g = c.gpr;
  if (lo === g[2 * RAX] && hi === g[2 * RDX]) {
    c.write64(a, g[2 * RBX] as number, g[2 * RCX] as number);
    setStatus(c, FLAG_ZF, FLAG_ZF);
  } else {
    c.write64(a, lo, hi);
    writeReg(c, RAX, 4, lo, 0);
    writeReg(c, RDX, 4, hi, 0);
    setStatus(c, FLAG_ZF, 0);
  }
}

export const ALU: HandlerMap = {
  alu_add: (c, i) => binop(c, i, K_ADD),
  alu_or: (c, i) => binop(c, i, K_OR),
  alu_adc: (c, i) => binop(c, i, K_ADC),
  alu_sbb: (c, i) => binop(c, i, K_SBB),
  alu_and: (c, i) => binop(c, i, K_AND),
  alu_sub: (c, i) => binop(c, i, K_SUB),
  alu_xor: (c, i) => binop(c, i, K_XOR),
  alu_cmp: (c, i) => binop(c, i, K_CMP),
  alu_test: (c, i) => binop(c, i, K_TEST),
  alu_inc: (c, i) => incdec(c, i, false),
  alu_dec: (c, i) => incdec(c, i, true),
  alu_neg,
  alu_not,
  alu_xadd,
  alu_cmpxchg,
  alu_cmpxchg8b,
};
