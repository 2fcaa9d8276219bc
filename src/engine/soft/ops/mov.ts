/**
 * Data movement: MOV, MOVZX, MOVSX, MOVSXD, LEA, XCHG, BSWAP, CBW/CWDE/CDQE,
 * CWD/CDQ/CQO, XLAT, MOV to/from segment registers, CMOVcc, SETcc, MOVBE
 * (SDM Vol. 2A/2B).
 */
import { BASE_RIP, OP_GPR } from '../decode/index.js';
import { cond } from '../flags.js';
import type { Cpu } from '../cpu.js';
import type { Op } from '../op.js';
import { maskOf, rd, readReg, regAddr, sext, T32, wr, writeBack, writeReg } from '../operands.js';
import { CpuException, VEC_UD } from '../mmu.js';
import { RAX, RBX, RDX, SEG_CS, SEG_FS, SEG_GS } from '../state.js';
import type { HandlerMap } from './types.js';

function mov_mov(c: Cpu, i: Op): void {
  const size = i.size0;
  const v = rd(c, i, 1, size);
  wr(c, i, 0, size, v, c.hi);
}

function mov_movzx(c: Cpu, i: Op): void {
  const v = rd(c, i, 1, i.size1);
  wr(c, i, 0, i.size0, v, 0);
}

/** MOVSX and MOVSXD: sign-extend operand 1 to operand 0's size. */
function mov_movsx(c: Cpu, i: Op): void {
  const size = i.size0;
  const v = sext(rd(c, i, 1, i.size1), i.size1);
  wr(c, i, 0, size, v & maskOf(size), v >> 31);
}

/**
 * LEA: the offset only, no segment base (SDM "LEA"), in exact 64-bit
 * arithmetic: compilers use it to add and multiply arbitrary values.
 */
function mov_lea(c: Cpu, i: Op): void {
  const g = c.gpr;
  let lo = i.disp | 0;
  let hi = i.dispBytes === 8 ? i.dispHi : lo >> 31;
  const b = i.base;
  if (b >= 0) {
    let bl: number, bh: number;
    if (b === BASE_RIP) { bl = c.nextRip | 0; bh = Math.floor(c.nextRip / T32); }
    else { bl = g[2 * b] as number; bh = g[2 * b + 1] as number; }
    const l = (lo >>> 0) + (bl >>> 0);
    hi = (hi + bh + (l > 0xffffffff ? 1 : 0)) | 0;
    lo = l | 0;
  }
  const x = i.index;
  if (x >= 0) {
    const s = i.scale;
    let xl = g[2 * x] as number, xh = g[2 * x + 1] as number;
    if (s > 0) { xh = (xh << s) | (xl >>> (32 - s)); xl <<= s; }
    const l = (lo >>> 0) + (xl >>> 0);
    hi = (hi + xh + (l > 0xffffffff ? 1 : 0)) | 0;
    lo = l | 0;
  }
  const size = i.size0;
  if (i.asize === 4) hi = 0;
  else if (i.asize === 2) { lo &= 0xffff; hi = 0; }
  writeReg(c, i.reg0, size, size === 2 ? lo & 0xffff : lo, hi);
}

function mov_xchg(c: Cpu, i: Op): void {
  const size = i.size0;
  const b = rd(c, i, 1, size);
  const bh = c.hi;
  const a = rd(c, i, 0, size);
  const ah = c.hi;
  writeBack(c, i, 0, size, b, bh);
  writeReg(c, i.reg1, size, a, ah);
}

function bswap32(x: number): number {
  return ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

function mov_bswap(c: Cpu, i: Op): void {
  const r = i.reg0;
  const size = i.size0;
  if (size === 8) {
    const lo = c.gpr[2 * r] as number, hi = c.gpr[2 * r + 1] as number;
    writeReg(c, r, 8, bswap32(hi), bswap32(lo));
  } else if (size === 4) {
    writeReg(c, r, 4, bswap32(c.gpr[2 * r] as number), 0);
  } else {
    writeReg(c, r, 2, 0, 0); // 16-bit BSWAP is undefined; current parts give 0
  }
}

function mov_cbw(c: Cpu, i: Op): void {
  switch (i.osize) {
    case 2: writeReg(c, RAX, 2, sext(readReg(c, RAX, 1), 1) & 0xffff, 0); break;
    case 4: writeReg(c, RAX, 4, sext(readReg(c, RAX, 2), 2), 0); break;
    default: { const v = readReg(c, RAX, 4); writeReg(c, RAX, 8, v, v >> 31); }
  }
}

function mov_cwd(c: Cpu, i: Op): void {
  switch (i.osize) {
    case 2: writeReg(c, RDX, 2, (sext(readReg(c, RAX, 2), 2) >> 16) & 0xffff, 0); break;
    case 4: writeReg(c, RDX, 4, readReg(c, RAX, 4) >> 31, 0); break;
    default: { const s = (c.gpr[2 * RAX + 1] as number) >> 31; writeReg(c, RDX, 8, s, s); }
  }
}

function mov_xlat(c: Cpu, i: Op): void {
  let a = regAddr(c, RBX);
  if (i.asize === 4) a = a >>> 0;
  a += readReg(c, RAX, 1) + (c.segBase[i.segment] as number);
  writeReg(c, RAX, 1, c.read8(a), 0);
}

function mov_from_seg(c: Cpu, i: Op): void {
  const sel = c.segSel[i.reg1] as number;
  const size = i.kind0 === OP_GPR ? i.size0 : 2;
  wr(c, i, 0, size, sel, 0);
}

function mov_to_seg(c: Cpu, i: Op): void {
  // 64-bit mode, no descriptor tables yet: the selector is kept; FS/GS bases
  // go to 0 as for a null or flat descriptor (part 2 loads descriptors).
  const s = i.reg0;
  // MOV cannot load CS (SDM Vol. 2B, "MOV—Move": #UD if the destination is CS).
  if (s === SEG_CS) throw new CpuException(VEC_UD, 0, c.rip, '#UD: mov to CS');
  const sel = rd(c, i, 1, 2);
  c.segSel[s] = sel;
  if (s === SEG_FS || s === SEG_GS) c.segBase[s] = 0;
}

function mov_cmov(c: Cpu, i: Op): void {
  const size = i.size0;
  const v = rd(c, i, 1, size); // the source is read (and may fault) whatever the condition
  if (cond(c, i.opcode & 15)) writeReg(c, i.reg0, size, v, c.hi);
  else if (size === 4) writeReg(c, i.reg0, 4, c.gpr[2 * (i.reg0)] as number, 0);
}

function mov_setcc(c: Cpu, i: Op): void {
  wr(c, i, 0, 1, cond(c, i.opcode & 15) ? 1 : 0, 0);
}

function mov_movbe(c: Cpu, i: Op): void {
  const size = i.size0;
  let v = rd(c, i, 1, size);
  let h = c.hi;
  if (size === 8) { const t = bswap32(v); v = bswap32(h); h = t; }
  else if (size === 4) v = bswap32(v);
  else v = ((v & 0xff) << 8) | (v >>> 8);
  wr(c, i, 0, size, v, h);
}

export const MOV: HandlerMap = {
  mov_mov,
  mov_movzx,
  mov_movsx,
  mov_movsxd: mov_movsx,
  mov_lea,
  mov_xchg,
  mov_bswap,
  mov_cbw,
  mov_cwd,
  mov_xlat,
  mov_from_seg,
  mov_to_seg,
  mov_cmov,
  mov_setcc,
  mov_movbe,
  mov_movdiri: mov_mov,
};
