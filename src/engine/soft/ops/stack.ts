/**
 * Stack: PUSH, POP, PUSHF, POPF, ENTER, LEAVE, PUSH/POP FS/GS (SDM Vol. 2B).
 * 64-bit mode: operand size 8 by default, 2 with 66h (d64); SS base 0.
 */
import { getRflags } from '../flags.js';
import type { Cpu } from '../cpu.js';
import type { Op } from '../op.js';
import { popN, push64, pushN, rd, regAddr, setRegAddr, wr } from '../operands.js';
import { FLAG_RESERVED1, FLAG_RF, LF_NONE, POPF_USER_MASK, RBP, RSP } from '../state.js';
import type { HandlerMap } from './types.js';

function stack_push(c: Cpu, i: Op): void {
  const size = i.osize;
  const v = rd(c, i, 0, size);
  pushN(c, size, v, c.hi);
}

function stack_pop(c: Cpu, i: Op): void {
  const size = i.osize;
  const sp = regAddr(c, RSP);
  const v = popN(c, size);
  const h = c.hi;
  try {
    // The destination address is computed with the incremented RSP (SDM "POP").
    wr(c, i, 0, size, v, h);
  } catch (e) {
    setRegAddr(c, RSP, sp);
    throw e;
  }
}

function stack_pushf(c: Cpu, i: Op): void {
  // VM and RF read as 0 in the pushed image (SDM "PUSHF").
  const f = getRflags(c) & ~FLAG_RF & ~(1 << 17);
  pushN(c, i.osize, i.osize === 2 ? f & 0xffff : f, 0);
}

function stack_popf(c: Cpu, i: Op): void {
  const v = popN(c, i.osize);
  // CPL 3, IOPL 0: IF and IOPL are kept (SDM "POPF", Table 4-15); 16-bit POPF keeps the upper half.
  const mask = c.cpl === 0 ? 0x3f7fd5 : POPF_USER_MASK;
  const m = i.osize === 2 ? mask & 0xffff : mask;
  c.flagsBase = ((getRflags(c) & ~m) | (v & m) | FLAG_RESERVED1) >>> 0;
  c.lfOp = LF_NONE;
}

function stack_leave(c: Cpu, i: Op): void {
  const size = i.osize;
  const bp = regAddr(c, RBP);
  const v = size === 8 ? c.read64(bp) : c.read16(bp);
  const h = c.hi;
  setRegAddr(c, RSP, bp + size);
  if (size === 8) { c.gpr[2 * RBP] = v; c.gpr[2 * RBP + 1] = h; }
  else c.gpr[2 * RBP] = ((c.gpr[2 * RBP] as number) & ~0xffff) | v;
}

function stack_enter(c: Cpu, i: Op): void {
  const size = i.osize;
  const alloc = i.imm & 0xffff;
  const level = i.imm2 & 31;
  const sp0 = regAddr(c, RSP);
  const bp = regAddr(c, RBP);
  pushN(c, size, c.gpr[2 * RBP] as number, c.gpr[2 * RBP + 1] as number);
  const frame = regAddr(c, RSP);
  try {
    for (let k = 1; k < level; k++) {
      const a = bp - k * size;
      const v = size === 8 ? c.read64(a) : c.read16(a);
      pushN(c, size, v, c.hi);
    }
    if (level > 0) pushN(c, size, frame, Math.floor(frame / 4294967296));
  } catch (e) {
    setRegAddr(c, RSP, sp0);
    throw e;
  }
  if (size === 8) setRegAddr(c, RBP, frame);
  else c.gpr[2 * RBP] = ((c.gpr[2 * RBP] as number) & ~0xffff) | (frame & 0xffff);
  setRegAddr(c, RSP, regAddr(c, RSP) - alloc);
}

function stack_push_seg(c: Cpu, i: Op): void {
  const sel = c.segSel[i.reg0] as number;
  if (i.osize === 8) push64(c, sel, 0);
  else pushN(c, i.osize, sel, 0);
}

function stack_pop_seg(c: Cpu, i: Op): void {
  const v = popN(c, i.osize) & 0xffff;
  const s = i.reg0;
  c.segSel[s] = v;
  c.segBase[s] = 0; // no descriptor tables in process mode (part 2 loads them)
}

export const STACK: HandlerMap = {
  stack_push,
  stack_pop,
  stack_pushf,
  stack_popf,
  stack_leave,
  stack_enter,
  stack_push_seg,
  stack_pop_seg,
};
