/**
 * Control transfer within the code segment: Jcc, JMP, CALL, RET, LOOP/LOOPcc,
 * JrCXZ, and the software interrupts INT3/INT1/INT n/INTO, which fault to
 * the platform here (process mode has no IDT; part 2 delivers them).
 */
import { cond, getZF } from '../flags.js';
import type { Cpu } from '../cpu.js';
import { CpuException, VEC_BP, VEC_DB, VEC_GP, VEC_OF } from '../mmu.js';
import type { Op } from '../op.js';
import { popN, push64, pushN, rd, readReg, regAddr, setRegAddr, T32, writeReg } from '../operands.js';
import { MODE_64, OP_REL } from '../decode/index.js';
import { RCX, RSP } from '../state.js';
import type { HandlerMap } from './types.js';

/** Branch target of an r/m operand (operand size 8 in 64-bit mode, f64). */
function target(c: Cpu, i: Op): number {
  const size = i.osize;
  const lo = rd(c, i, 0, size);
  return size === 8 ? c.hi * T32 + (lo >>> 0) : lo >>> 0;
}

/**
 * A near branch to a non-canonical address raises #GP(0) at the branch, before
 * RSP or RIP change (SDM Vol. 2A, JMP/CALL/RET "64-Bit Mode Exceptions").
 * `hi` is the target's high half: bits 63-47 must be equal.
 */
export function checkCanonicalTarget(c: Cpu, hi: number): void {
  const top = hi >> 15;
  if (top !== 0 && top !== -1) throw new CpuException(VEC_GP, 0, c.rip, '#GP: branch to a non-canonical address');
}

function flow_jcc(c: Cpu, i: Op): void {
  if (cond(c, i.opcode & 15)) c.nextRip += i.imm;
}

/** CS base outside 64-bit mode: RIP is kept linear, branch targets are offsets in CS. */
const CS = 1;

function flow_jmp(c: Cpu, i: Op): void {
  if (i.kind0 === OP_REL) c.nextRip += i.imm;
  else if (c.mode === MODE_64) { const t = target(c, i); checkCanonicalTarget(c, c.hi); c.nextRip = t; }
  else c.nextRip = (c.segBase[CS] as number) + target(c, i);
}

/** Near CALL outside 64-bit mode: pushes the offset in CS at the operand size (SDM Vol. 2A, CALL). */
function callLegacy(c: Cpu, i: Op): void {
  const base = c.segBase[CS] as number;
  const ret = c.nextRip - base;
  const dest = i.kind0 === OP_REL ? c.nextRip + i.imm : base + target(c, i);
  pushN(c, i.osize, ret, 0);
  c.nextRip = dest;
}

function flow_call(c: Cpu, i: Op): void {
  if (c.mode !== MODE_64) { callLegacy(c, i); return; }
  const ret = c.nextRip;
  let dest: number;
  if (i.kind0 === OP_REL) dest = ret + i.imm;
  else { dest = target(c, i); checkCanonicalTarget(c, c.hi); }
  push64(c, ret, Math.floor(ret / T32));
  c.nextRip = dest;
}

function flow_ret(c: Cpu, i: Op): void {
  if (c.mode !== MODE_64) {
    const v = popN(c, i.osize);
    c.nextRip = (c.segBase[CS] as number) + (i.osize === 2 ? v & 0xffff : v >>> 0);
    if (i.nops > 0) setRegAddr(c, RSP, regAddr(c, RSP) + (i.imm & 0xffff));
    return;
  }
  const sp = regAddr(c, RSP);
  const lo = c.read64(sp);
  checkCanonicalTarget(c, c.hi);
  c.nextRip = c.hi * T32 + (lo >>> 0);
  setRegAddr(c, RSP, sp + 8 + (i.nops > 0 ? i.imm & 0xffff : 0));
}

function counter(c: Cpu, i: Op): number {
  return readReg(c, RCX, i.asize);
}

function flow_loop(c: Cpu, i: Op): void {
  const size = i.asize;
  let lo = readReg(c, RCX, size);
  let hi = c.hi;
  if (size === 8) { if (lo === 0) hi = (hi - 1) | 0; lo = (lo - 1) | 0; }
  else lo = (lo - 1) & (size === 2 ? 0xffff : -1);
  writeReg(c, RCX, size, lo, hi);
  const nonzero = size === 8 ? (lo | hi) !== 0 : lo !== 0;
  let take = nonzero;
  if (i.opcode === 0xe0) take = nonzero && getZF(c) === 0;
  else if (i.opcode === 0xe1) take = nonzero && getZF(c) === 1;
  if (take) c.nextRip += i.imm;
}

function flow_jcxz(c: Cpu, i: Op): void {
  const lo = counter(c, i);
  const zero = i.asize === 8 ? (lo | c.hi) === 0 : lo === 0;
  if (zero) c.nextRip += i.imm;
}

/** Software interrupts trap with RIP past the instruction (SDM Vol. 3A, 6.5 "trap"). */
function trap(c: Cpu, i: Op, vector: number, what: string): never {
  c.rip = c.nextRip;
  throw new CpuException(vector, 0, c.rip, what);
}

export const BRANCH: HandlerMap = {
  flow_jcc,
  flow_jmp,
  flow_call,
  flow_ret,
  flow_loop,
  flow_jcxz,
  flow_int3: (c, i) => trap(c, i, VEC_BP, 'int3'),
  flow_int1: (c, i) => trap(c, i, VEC_DB, 'int1'),
  flow_into: (c, i) => trap(c, i, VEC_OF, 'into'),
  // INT n from CPL 3 through a gate the kernel did not open is #GP(n*8+2) (SDM Vol. 3A, 6.12.1.1).
  flow_int: (c, i) => { throw new CpuException(VEC_GP, ((i.imm & 0xff) << 3) | 2, c.rip, `int 0x${(i.imm & 0xff).toString(16)}`); },
};

