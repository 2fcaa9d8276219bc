/**
 * Bit instructions: BT BTS BTR BTC, BSF BSR, POPCNT, TZCNT LZCNT (SDM Vol. 2A/2B).
 *
 * BT* with a register bit offset and a memory operand address bits outside
 * the operand (the offset is signed, SDM "BT" Table 3-2); this goes to the
 * byte that holds the bit. TZCNT/LZCNT execute as BSF/BSR while BMI1/ABM are
 * not advertised, as on CPUs without them (F3 is then an ignored prefix).
 * BSF/BSR with a zero source leave the destination unchanged (as AMD
 * documents and Intel parts do) and set ZF.
 */
import { OP_GPR, OP_IMM } from '../decode/index.js';
import { setCarryOverflow, setStatus } from '../flags.js';
import type { Cpu } from '../cpu.js';
import type { Op } from '../op.js';
import { ea, rd, T32, writeBack, writeReg } from '../operands.js';
import { FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF, FLAG_AF } from '../state.js';
import type { HandlerMap } from './types.js';
import { ADVERTISED } from '../cpuid.js';
import { setLogic } from './alu.js';

const BT = 0, BTS = 1, BTR = 2, BTC = 3;

function bitop(c: Cpu, i: Op, kind: number): void {
  const size = i.size0;
  const bits = size * 8;
  if (i.kind0 !== OP_GPR && i.kind1 !== OP_IMM) {
    // Memory operand with a register offset: any bit relative to the address.
    const off = rd(c, i, 1, size);
    const offVal = size === 8 ? c.hi * T32 + (off >>> 0) : size === 4 ? off : size === 2 ? (off << 16) >> 16 : off;
    const a = ea(c, i) + Math.floor(offVal / 8);
    const bit = offVal & 7;
    const byte = c.read8(a);
    const cf = (byte >> bit) & 1;
    if (kind !== BT) {
      const nb = kind === BTS ? byte | (1 << bit) : kind === BTR ? byte & ~(1 << bit) : byte ^ (1 << bit);
      c.write8(a, nb);
    }
    setCarryOverflow(c, FLAG_CF, cf);
    return;
  }
  const n = rd(c, i, 1, size) & (bits - 1);
  const d = rd(c, i, 0, size);
  let dh = c.hi;
  let lo = d;
  let cf: number;
  if (n < 32) {
    cf = (lo >>> n) & 1;
    if (kind === BTS) lo |= 1 << n; else if (kind === BTR) lo &= ~(1 << n); else if (kind === BTC) lo ^= 1 << n;
  } else {
    const k = n - 32;
    cf = (dh >>> k) & 1;
    if (kind === BTS) dh |= 1 << k; else if (kind === BTR) dh &= ~(1 << k); else if (kind === BTC) dh ^= 1 << k;
  }
  if (size < 4) lo &= (1 << bits) - 1;
  if (kind !== BT) writeBack(c, i, 0, size, lo, dh);
  setCarryOverflow(c, FLAG_CF, cf);
}

function clz64(lo: number, hi: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}

function ctz32(x: number): number {
  return x === 0 ? 32 : 31 - Math.clz32(x & -x);
}

function scan(c: Cpu, i: Op, reverse: boolean): void {
  const size = i.size0;
  const s = rd(c, i, 1, size);
  const sh = size === 8 ? c.hi : 0;
  // The flags as a logic result of 1 (found) or 0 (ZF and PF set): CF, OF, SF and AF clear (the compiled tiers record the same).
  if ((s | sh) === 0) {
    setLogic(c, 4, 0, 0);
    return;
  }
  let r: number;
  if (reverse) r = size === 8 ? 63 - clz64(s, sh) : 31 - Math.clz32(s);
  else r = s !== 0 ? ctz32(s) : 32 + ctz32(sh);
  writeReg(c, i.reg0, size, r, 0);
  setLogic(c, 4, 1, 0);
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

function bit_popcnt(c: Cpu, i: Op): void {
  const size = i.size0;
  const s = rd(c, i, 1, size);
  const n = popcount32(s) + (size === 8 ? popcount32(c.hi) : 0);
  writeReg(c, i.reg0, size, n, 0);
  setStatus(c, FLAG_ZF | FLAG_CF | FLAG_OF | FLAG_SF | FLAG_AF | FLAG_PF, n === 0 ? FLAG_ZF : 0);
}

/** TZCNT/LZCNT proper (BMI1/ABM): the operand size when the source is 0, CF = (source == 0), ZF = (result == 0). */
function count(c: Cpu, i: Op, leading: boolean): void {
  const size = i.size0;
  const s = rd(c, i, 1, size);
  const sh = size === 8 ? c.hi : 0;
  let n: number;
  if (leading) n = size === 8 ? clz64(s, sh) : Math.clz32(s) - (32 - size * 8);
  else n = Math.min(size * 8, s !== 0 ? ctz32(s) : 32 + ctz32(sh));
  writeReg(c, i.reg0, size, n, 0);
  setStatus(c, FLAG_ZF | FLAG_CF, (n === 0 ? FLAG_ZF : 0) | ((s | sh) === 0 ? FLAG_CF : 0));
}

export const BIT: HandlerMap = {
  bit_bt: (c, i) => bitop(c, i, BT),
  bit_bts: (c, i) => bitop(c, i, BTS),
  bit_btr: (c, i) => bitop(c, i, BTR),
  bit_btc: (c, i) => bitop(c, i, BTC),
  bit_bsf: (c, i) => scan(c, i, false),
  bit_bsr: (c, i) => scan(c, i, true),
  bit_popcnt,
  bit_tzcnt: (c, i) => (ADVERTISED.has('bmi1') ? count(c, i, false) : scan(c, i, false)),
  bit_lzcnt: (c, i) => (ADVERTISED.has('abm') ? count(c, i, true) : scan(c, i, true)),
};

