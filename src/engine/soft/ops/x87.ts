/**
 * x87 FPU (SDM Vol. 1, chapter 8; Vol. 2 entries) and FXSAVE/FXRSTOR.
 *
 * Registers hold float64 values: arithmetic is at 53-bit precision whatever
 * FCW.PC says, and 80-bit memory operands (FLD/FSTP m80, FNSAVE, FXSAVE)
 * are converted with round-to-nearest-even. Code that depends on the 64-bit
 * mantissa (long double) sees double results (README.md). Exceptions are
 * always masked: invalid operations give the indefinite NaN, stack
 * overflow/underflow is not reported; FSW condition codes are exact for
 * compares, FXAM, FPREM/FPREM1.
 */
import { OP_MEM, OP_ST } from '../decode/index.js';
import { getCF, getPF, getZF, setStatus } from '../flags.js';
import type { Cpu } from '../cpu.js';
import { opReg, type Op } from '../op.js';
import { ea, writeReg } from '../operands.js';
import { FCW_DEFAULT, FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF, RAX } from '../state.js';
import { nextAfter, OP_ADD, OP_DIV, OP_MUL, OP_SQRT, OP_SUB, x87Rounded, x87Scale, x87ToSingle } from './sse.js';
import type { HandlerMap } from './types.js';
import type { Handler } from '../op.js';

// FSW bits (SDM Vol. 1, Figure 8-4).
const C0 = 1 << 8;
const C1 = 1 << 9;
const C2 = 1 << 10;
const C3 = 1 << 14;
const CC = C0 | C1 | C2 | C3;


function st(c: Cpu, k: number): number {
  return c.fpr[(c.fpTop + k) & 7] as number;
}

function setSt(c: Cpu, k: number, v: number): void {
  const p = (c.fpTop + k) & 7;
  c.fpr[p] = v;
  c.fpTag &= ~(1 << p);
}

function push(c: Cpu, v: number): void {
  c.fpTop = (c.fpTop - 1) & 7;
  c.fpr[c.fpTop] = v;
  c.fpTag &= ~(1 << c.fpTop);
}

function pop(c: Cpu): void {
  c.fpTag |= 1 << c.fpTop;
  c.fpTop = (c.fpTop + 1) & 7;
}

export function fswWithTop(c: Cpu): number {
  return (c.fsw & ~0x3800) | (c.fpTop << 11);
}

function setCC(c: Cpu, bits: number): void {
  c.fsw = (c.fsw & ~CC) | bits;
}

// ---- 80-bit extended precision conversion ----

/** float64 -> 80-bit extended (little-endian 10 bytes) into out at off. */
export function toF80(v: number, out: Uint8Array, off: number): void {
  const b = new DataView(new ArrayBuffer(8));
  b.setFloat64(0, v, true);
  const bits = b.getBigUint64(0, true);
  const sign = Number(bits >> 63n);
  const exp = Number((bits >> 52n) & 0x7ffn);
  let frac = bits & ((1n << 52n) - 1n);
  let e80: number;
  let mant: bigint;
  if (exp === 0x7ff) {
    e80 = 0x7fff;
    mant = (1n << 63n) | (frac << 11n);
  } else if (exp === 0) {
    if (frac === 0n) { e80 = 0; mant = 0n; } else {
      // Double denormal: normalise (extended has the range for it).
      let e = -1022;
      while ((frac & (1n << 52n)) === 0n) { frac <<= 1n; e--; }
      e80 = e + 16383;
      mant = frac << 11n;
    }
  } else {
    e80 = exp - 1023 + 16383;
    mant = (1n << 63n) | (frac << 11n);
  }
  const dv = new DataView(out.buffer, out.byteOffset + off, 10);
  dv.setBigUint64(0, mant, true);
  dv.setUint16(8, (sign << 15) | e80, true);
}

/** 80-bit extended -> float64, rounding to nearest even. */
export function fromF80(bytes: Uint8Array, off: number): number {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + off, 10);
  const mant = dv.getBigUint64(0, true);
  const se = dv.getUint16(8, true);
  const sign = se >> 15 ? -1 : 1;
  const e = se & 0x7fff;
  if (e === 0x7fff) {
    if ((mant & ((1n << 63n) - 1n)) === 0n) return sign * Infinity;
    // NaN: keep the payload's top bits and the sign.
    const out = new DataView(new ArrayBuffer(8));
    out.setBigUint64(0, (BigInt(se >> 15) << 63n) | (0x7ffn << 52n) | ((mant >> 11n) & ((1n << 52n) - 1n)) | (1n << 51n), true);
    return out.getFloat64(0, true);
  }
  if (mant === 0n) return sign * 0;
  // value = mant * 2^sh. A normal binary64 result: Number(BigInt) rounds the 64-bit mantissa to 53 bits
  // correctly and the scaling is exact (in two steps: 2^sh alone may be below the binary64 range).
  const sh = e - 16383 - 63;
  if (sh + bitLength(mant) - 1 >= -1022) {
    const a = Math.max(sh, -1000);
    return sign * Number(mant) * Math.pow(2, a) * Math.pow(2, sh - a);
  }
  // A denormal binary64 result: round the mantissa once, to the multiple of 2^-1074, nearest even.
  const drop = BigInt(-1074 - sh);
  let q = mant >> drop;
  const rem = mant - (q << drop), half = 1n << (drop - 1n);
  if (rem > half || (rem === half && (q & 1n) === 1n)) q += 1n;
  return sign * Number(q) * 5e-324;
}

function bitLength(v: bigint): number {
  return v.toString(2).length;
}

// ---- Memory operands ----

function loadReal(c: Cpu, i: Op, size: number): number {
  const a = ea(c, i);
  // A signalling NaN loads quietened (invalid operation, masked: SDM Vol. 1, 8.5.1.2).
  if (size === 4) { f32i[0] = c.read32(a); if ((f32i[0] & 0x7f800000) === 0x7f800000 && (f32i[0] & 0x7fffff) !== 0) f32i[0] |= 0x400000; return f32[0] as number; }
  if (size === 8) {
    f64i[0] = c.read32(a); f64i[1] = c.read32(a + 4);
    if ((f64i[1] & 0x7ff00000) === 0x7ff00000 && ((f64i[1] & 0xfffff) | f64i[0]) !== 0) f64i[1] |= 0x80000;
    return f64[0] as number;
  }
  const b = new Uint8Array(10);
  for (let k = 0; k < 10; k++) b[k] = c.read8(a + k);
  return fromF80(b, 0);
}

function storeReal(c: Cpu, i: Op, size: number, v: number): void {
  const a = ea(c, i);
  if (size === 4) { f32[0] = rcOf(c.fcw) === 0 ? v : x87ToSingle(rcOf(c.fcw), v); c.write32(a, f32i[0] as number); return; }
  if (size === 8) { f64[0] = v; c.write64(a, f64i[0] as number, f64i[1] as number); return; }
  const b = new Uint8Array(10);
  toF80(v, b, 0);
  c.probeWrite(a, 10);
  for (let k = 0; k < 10; k++) c.write8(a + k, b[k] as number);
}

const f32 = new Float32Array(1);
const f32i = new Int32Array(f32.buffer);
const f64 = new Float64Array(1);
const f64i = new Int32Array(f64.buffer);

function loadInt(c: Cpu, i: Op, size: number): number {
  const a = ea(c, i);
  if (size === 2) return (c.read16(a) << 16) >> 16;
  if (size === 4) return c.read32(a);
  const lo = c.read32(a), hi = c.read32(a + 4);
  return Number((BigInt(hi) << 32n) | BigInt(lo >>> 0));
}

function roundFcw(c: Cpu, v: number): number {
  switch ((c.fcw >> 10) & 3) {
    case 1: return Math.floor(v);
    case 2: return Math.ceil(v);
    case 3: return Math.trunc(v);
    default: {
      const r = Math.round(v);
      return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
    }
  }
}

function storeInt(c: Cpu, i: Op, size: number, v: number, truncate: boolean): void {
  const a = ea(c, i);
  const r = truncate ? Math.trunc(v) : roundFcw(c, v);
  const lim = size === 2 ? 32768 : size === 4 ? 2147483648 : 9223372036854775808;
  const ok = r >= -lim && r < lim;
  if (size === 2) c.write16(a, ok ? r & 0xffff : 0x8000);
  else if (size === 4) c.write32(a, ok ? r | 0 : 0x80000000 | 0);
  else if (!ok) c.write64(a, 0, 0x80000000 | 0);
  else { const b = BigInt(r); c.write64(a, Number(BigInt.asIntN(32, b)), Number(BigInt.asIntN(32, b >> 32n))); }
}

// ---- Arithmetic ----

type F2 = (d: number, s: number, fcw: number) => number;

/**
 * The six arithmetic families in their forms: `op m32/m64` (ST0 op= mem),
 * `op ST0, STi`, `op STi, ST0`, and the popping `opP STi, ST0`.
 */
function arith(f: F2, popAfter: boolean): Handler {
  return (c, i) => {
    if (i.kind0 === OP_MEM) { setSt(c, 0, nanRule(f, st(c, 0), loadReal(c, i, i.size0), c.fcw)); return; }
    const d = i.reg0, s = i.kind1 === OP_ST ? i.reg1 : 0;
    setSt(c, d, nanRule(f, st(c, d), st(c, s), c.fcw));
    if (popAfter) pop(c);
  };
}

/** Two NaN operands: the result is the one with the larger significand, quietened (SDM Vol. 1, Table 4-7). */
function nanRule(f: F2, a: number, b: number, fcw: number): number {
  const r = f(a, b, fcw);
  if (r === r || a === a || b === b) return r;
  f64[0] = a;
  const ah = (f64i[1] as number) & 0xfffff, al = (f64i[0] as number) >>> 0;
  f64[0] = b;
  const bh = (f64i[1] as number) & 0xfffff, bl = (f64i[0] as number) >>> 0;
  f64[0] = ah > bh || (ah === bh && al >= bl) ? a : b;
  f64i[1] = (f64i[1] as number) | 0x80000;
  return f64[0] as number;
}

/** The x87 "real indefinite" QNaN an invalid operation returns (SDM Vol. 1, 8.2.2): negative. */
const INDEFINITE = new Float64Array(new Uint32Array([0, 0xfff80000]).buffer)[0] as number;

function arithInt(f: F2): Handler {
  return (c, i) => setSt(c, 0, f(st(c, 0), loadInt(c, i, i.size0), c.fcw));
}

/** A loaded control word as the FPU keeps it: bits 6 reads as one, bits 13-15 as zeros (reserved; as the host CPU stores them). */
function fcwOf(v: number): number {
  return (v & 0x1f3f) | 0x40;
}

/** FCW.RC (SDM Vol. 1, 8.1.5.3): 0 nearest even, else rounded by x87Rounded. */
const rcOf = (fcw: number): number => (fcw >> 10) & 3;
const add: F2 = (d, s, fcw) => (rcOf(fcw) === 0 ? d + s : x87Rounded(rcOf(fcw), OP_ADD, d, s));
const sub: F2 = (d, s, fcw) => (rcOf(fcw) === 0 ? d - s : x87Rounded(rcOf(fcw), OP_SUB, d, s));
const subr: F2 = (d, s, fcw) => (rcOf(fcw) === 0 ? s - d : x87Rounded(rcOf(fcw), OP_SUB, s, d));
const mul: F2 = (d, s, fcw) => (rcOf(fcw) === 0 ? d * s : x87Rounded(rcOf(fcw), OP_MUL, d, s));
const div: F2 = (d, s, fcw) => (rcOf(fcw) === 0 ? d / s : x87Rounded(rcOf(fcw), OP_DIV, d, s));
const divr: F2 = (d, s, fcw) => (rcOf(fcw) === 0 ? s / d : x87Rounded(rcOf(fcw), OP_DIV, s, d));

/** Compare ST0 with v: C3/C2/C0 (SDM "FCOM" Table 3-21). */
function compareCC(c: Cpu, a: number, b: number): void {
  setCC(c, a !== a || b !== b ? C3 | C2 | C0 : a > b ? 0 : a < b ? C0 : C3);
}

function fcomOperand(c: Cpu, i: Op): number {
  if (i.nops === 0) return st(c, 1);
  if (i.kind0 === OP_MEM) return loadReal(c, i, i.size0);
  return st(c, opReg(i, i.nops - 1));
}

function fcom(pops: number): Handler {
  return (c, i) => {
    compareCC(c, st(c, 0), fcomOperand(c, i));
    for (let k = 0; k < pops; k++) pop(c);
  };
}

function ficom(pops: number): Handler {
  return (c, i) => {
    compareCC(c, st(c, 0), loadInt(c, i, i.size0));
    if (pops) pop(c);
  };
}

/** FCOMI/FUCOMI(P): ZF, PF, CF (SDM "FCOMI" Table 3-31); pops when the opcode is DF. */
function fcomi(c: Cpu, i: Op): void {
  const a = st(c, 0), b = st(c, i.reg1);
  const f = a !== a || b !== b ? FLAG_ZF | FLAG_PF | FLAG_CF : a > b ? 0 : a < b ? FLAG_CF : FLAG_ZF;
  setStatus(c, FLAG_ZF | FLAG_PF | FLAG_CF | FLAG_OF | FLAG_SF | FLAG_AF, f);
  setCC(c, c.fsw & ~C1);
  if (i.opcode === 0xdf) pop(c);
}

function fcmov(c: Cpu, i: Op): void {
  // DA /0-3: B E BE U; DB /0-3: NB NE NBE NU.
  const k = (i.modrm >> 3) & 3;
  const cf = getCF(c) === 1, zf = getZF(c) === 1, pf = getPF(c) === 1;
  let t = k === 0 ? cf : k === 1 ? zf : k === 2 ? cf || zf : pf;
  if (i.opcode === 0xdb) t = !t;
  if (t) setSt(c, 0, st(c, i.reg1));
}

function fxam(c: Cpu): void {
  const p = c.fpTop;
  const v = st(c, 0);
  // The sign bit, NaNs included (a comparison would miss a negative NaN's).
  f64[0] = v;
  const sign = (f64i[1] as number) < 0 ? C1 : 0;
  let cls: number;
  if ((c.fpTag >> p) & 1) cls = C3 | C0;
  else if (v !== v) cls = C0;
  else if (v === Infinity || v === -Infinity) cls = C2 | C0;
  else if (v === 0) cls = C3;
  else if (Math.abs(v) < 2.2250738585072014e-308) cls = C2; // a double denormal is a normal extended value
  else cls = C2;
  setCC(c, cls | sign);
}

function fprem(c: Cpu, ieee: boolean): void {
  const x = st(c, 0), y = st(c, 1);
  let r: number;
  let q: number;
  if (!ieee) { r = x % y; q = Math.trunc(x / y); }
  else {
    q = Math.round(x / y);
    // Math.round takes a tie upward, for either sign: the even neighbour is below.
    if (Math.abs(x / y - Math.trunc(x / y)) === 0.5 && q % 2 !== 0) q -= 1;
    r = x - q * y;
    if (!Number.isFinite(r)) r = x % y;
    // A zero remainder has the dividend's sign (IEEE 754 remainder).
    if (r === 0) r = x < 0 || Object.is(x, -0) ? -0 : 0;
  }
  if (r !== r && x === x && y === y) r = INDEFINITE;
  setSt(c, 0, r);
  const qa = Math.abs(q) % 8;
  setCC(c, (qa & 4 ? C0 : 0) | (qa & 2 ? C3 : 0) | (qa & 1 ? C1 : 0));
}

function fxtract(c: Cpu): void {
  const v = st(c, 0);
  if (v === 0) { setSt(c, 0, -Infinity); push(c, v); return; }
  if (!Number.isFinite(v)) { setSt(c, 0, v !== v ? v : Infinity); push(c, v); return; }
  const e = Math.floor(Math.log2(Math.abs(v)));
  let m = v / Math.pow(2, e);
  let ex = e;
  if (Math.abs(m) >= 2) { m /= 2; ex++; } else if (Math.abs(m) < 1) { m *= 2; ex--; }
  setSt(c, 0, ex);
  push(c, m);
}

// ---- Environment and state images (SDM Vol. 1, 8.1.10, Figures 8-9/8-10; FXSAVE Table 10-2) ----

/** Full 2-bit tag word from the empty bits (valid 00, zero 01, special 10, empty 11). */
function fullTags(c: Cpu): number {
  let t = 0;
  for (let p = 0; p < 8; p++) {
    let tag: number;
    if ((c.fpTag >> p) & 1) tag = 3;
    else { const v = c.fpr[p] as number; tag = v === 0 ? 1 : !Number.isFinite(v) ? 2 : 0; }
    t |= tag << (2 * p);
  }
  return t;
}

function storeEnv(c: Cpu, a: number): void {
  c.probeWrite(a, 28);
  // 32-bit format (SDM Vol. 1, Figure 8-9): the upper halves of the control, status, tag and
  // data-selector words are reserved and stored as ones, as hardware does. FIP/FDP/FOP are not kept (README.md).
  c.write32(a, c.fcw | 0xffff0000);
  c.write32(a + 4, fswWithTop(c) | 0xffff0000);
  c.write32(a + 8, fullTags(c) | 0xffff0000);
  for (let k = 12; k < 24; k += 4) c.write32(a + k, 0);
  c.write32(a + 24, 0xffff0000 | 0);
}

function loadEnv(c: Cpu, a: number): void {
  c.fcw = fcwOf(c.read16(a));
  const sw = c.read16(a + 4);
  c.fsw = sw & ~0x3800;
  c.fpTop = (sw >> 11) & 7;
  const tw = c.read16(a + 8);
  let empty = 0;
  for (let p = 0; p < 8; p++) if (((tw >> (2 * p)) & 3) === 3) empty |= 1 << p;
  c.fpTag = empty;
}

function fninit(c: Cpu): void {
  c.fcw = FCW_DEFAULT;
  c.fsw = 0;
  c.fpTop = 0;
  c.fpTag = 0xff;
}

function fnsave(c: Cpu, i: Op): void {
  const a = ea(c, i);
  c.probeWrite(a, 108);
  storeEnv(c, a);
  const b = new Uint8Array(10);
  for (let k = 0; k < 8; k++) {
    toF80(st(c, k), b, 0);
    for (let j = 0; j < 10; j++) c.write8(a + 28 + k * 10 + j, b[j] as number);
  }
  fninit(c);
}

function frstor(c: Cpu, i: Op): void {
  const a = ea(c, i);
  loadEnv(c, a);
  const b = new Uint8Array(10);
  for (let k = 0; k < 8; k++) {
    for (let j = 0; j < 10; j++) b[j] = c.read8(a + 28 + k * 10 + j);
    c.fpr[(c.fpTop + k) & 7] = fromF80(b, 0);
  }
}

/** FXSAVE: 512 bytes, 16-byte aligned (SDM Vol. 1, Table 10-2, 64-bit layout). */
function fxsave(c: Cpu, i: Op): void {
  const a = ea(c, i);
  const img = new Uint8Array(512);
  const v = new DataView(img.buffer);
  v.setUint16(0, c.fcw, true);
  v.setUint16(2, fswWithTop(c), true);
  img[4] = ~c.fpTag & 0xff; // abridged tag: 1 = valid
  v.setUint32(24, c.mxcsr, true);
  v.setUint32(28, 0xffff, true); // MXCSR_MASK
  for (let k = 0; k < 8; k++) toF80(st(c, k), img, 32 + k * 16);
  for (let k = 0; k < 64; k++) v.setInt32(160 + k * 4, c.xmm[k] as number, true);
  c.probeWrite(a, 512);
  for (let k = 0; k < 512; k += 4) c.write32(a + k, v.getInt32(k, true));
}

function fxrstor(c: Cpu, i: Op): void {
  const a = ea(c, i);
  const img = new Uint8Array(512);
  const v = new DataView(img.buffer);
  for (let k = 0; k < 512; k += 4) v.setInt32(k, c.read32(a + k), true);
  c.fcw = fcwOf(v.getUint16(0, true));
  const sw = v.getUint16(2, true);
  c.fsw = sw & ~0x3800;
  c.fpTop = (sw >> 11) & 7;
  c.fpTag = ~(img[4] as number) & 0xff;
  c.mxcsr = v.getUint32(24, true);
  for (let k = 0; k < 8; k++) c.fpr[(c.fpTop + k) & 7] = fromF80(img, 32 + k * 16);
  for (let k = 0; k < 64; k++) c.xmm[k] = v.getInt32(160 + k * 4, true);
}

/**
 * FLDPI and the other constants: binary64 `v` is the nearest value; `above`
 * says the true constant lies above it, so rounding up (or down, when below)
 * takes the neighbour (SDM Vol. 1, 8.3.8: the constants are rounded by FCW.RC).
 */
const consts = (v: number, above = false): Handler => (c) => {
  const rc = rcOf(c.fcw);
  push(c, rc === 0 || v === 0 || v === 1 ? v : rc === 2 ? (above ? nextAfter(v, true, false) : v) : (above ? v : nextAfter(v, false, false)));
};

export const X87: HandlerMap = {
  // EMMS empties the x87 tag word (SDM Vol. 2A, EMMS); Linux runs it on AMD before FXRSTOR (X86_BUG_FXSAVE_LEAK).
  mmx_emms: (c) => { c.fpTag = 0xff; },
  x87_fld: (c, i) => push(c, i.kind0 === OP_MEM ? loadReal(c, i, i.size0) : st(c, i.reg0)),
  x87_fst: (c, i) => { if (i.kind0 === OP_MEM) storeReal(c, i, i.size0, st(c, 0)); else setSt(c, i.reg0, st(c, 0)); },
  x87_fstp: (c, i) => { if (i.kind0 === OP_MEM) storeReal(c, i, i.size0, st(c, 0)); else setSt(c, i.reg0, st(c, 0)); pop(c); },
  x87_fild: (c, i) => push(c, loadInt(c, i, i.size0)),
  x87_fist: (c, i) => storeInt(c, i, i.size0, st(c, 0), false),
  x87_fistp: (c, i) => { storeInt(c, i, i.size0, st(c, 0), false); pop(c); },
  x87_fisttp: (c, i) => { storeInt(c, i, i.size0, st(c, 0), true); pop(c); },
  x87_fxch: (c, i) => { const k = i.reg0; const t = st(c, 0); setSt(c, 0, st(c, k)); setSt(c, k, t); },
  x87_fldz: consts(0), x87_fld1: consts(1), x87_fldpi: consts(Math.PI, true), x87_fldl2e: consts(Math.LOG2E, true),
  x87_fldl2t: consts(Math.log2(10), true), x87_fldlg2: consts(Math.log10(2), false), x87_fldln2: consts(Math.LN2, true),
  x87_fchs: (c) => setSt(c, 0, -st(c, 0)),
  x87_fabs: (c) => setSt(c, 0, Math.abs(st(c, 0))),
  x87_ftst: (c) => compareCC(c, st(c, 0), 0),
  x87_fxam: fxam,
  x87_fadd: arith(add, false), x87_faddp: arith(add, true),
  x87_fsub: arith(sub, false), x87_fsubp: arith(sub, true),
  x87_fsubr: arith(subr, false), x87_fsubrp: arith(subr, true),
  x87_fmul: arith(mul, false), x87_fmulp: arith(mul, true),
  x87_fdiv: arith(div, false), x87_fdivp: arith(div, true),
  x87_fdivr: arith(divr, false), x87_fdivrp: arith(divr, true),
  x87_fiadd: arithInt(add), x87_fisub: arithInt(sub), x87_fisubr: arithInt(subr),
  x87_fimul: arithInt(mul), x87_fidiv: arithInt(div), x87_fidivr: arithInt(divr),
  x87_fcom: fcom(0), x87_fcomp: fcom(1), x87_fcompp: fcom(2),
  x87_fucom: fcom(0), x87_fucomp: fcom(1), x87_fucompp: fcom(2),
  x87_ficom: ficom(0), x87_ficomp: ficom(1),
  x87_fcomi: fcomi, x87_fucomi: fcomi,
  x87_fcmov: fcmov,
  x87_fnstsw: (c, i) => { if (i.kind0 === OP_MEM) c.write16(ea(c, i), fswWithTop(c)); else writeReg(c, RAX, 2, fswWithTop(c), 0); },
  x87_fnstcw: (c, i) => c.write16(ea(c, i), c.fcw),
  x87_fldcw: (c, i) => { c.fcw = fcwOf(c.read16(ea(c, i))); },
  x87_fninit: fninit,
  x87_fnclex: (c) => { c.fsw &= ~0x80ff; },
  x87_fwait: () => undefined,
  x87_fnop: () => undefined,
  x87_ffree: (c, i) => { c.fpTag |= 1 << ((c.fpTop + (i.reg0)) & 7); },
  x87_fincstp: (c) => { c.fpTop = (c.fpTop + 1) & 7; },
  x87_fdecstp: (c) => { c.fpTop = (c.fpTop - 1) & 7; },
  x87_fsqrt: (c) => setSt(c, 0, rcOf(c.fcw) === 0 ? Math.sqrt(st(c, 0)) : x87Rounded(rcOf(c.fcw), OP_SQRT, 0, st(c, 0))),
  x87_frndint: (c) => setSt(c, 0, roundFcw(c, st(c, 0))),
  x87_fscale: (c) => setSt(c, 0, x87Scale(rcOf(c.fcw), st(c, 0), Math.trunc(st(c, 1)))),
  x87_fprem: (c) => fprem(c, false),
  x87_fprem1: (c) => fprem(c, true),
  x87_fsin: (c) => { setSt(c, 0, Math.sin(st(c, 0))); setCC(c, c.fsw & ~(C2 | C1)); },
  x87_fcos: (c) => { setSt(c, 0, Math.cos(st(c, 0))); setCC(c, c.fsw & ~(C2 | C1)); },
  x87_fsincos: (c) => { const v = st(c, 0); setSt(c, 0, Math.sin(v)); push(c, Math.cos(v)); setCC(c, c.fsw & ~(C2 | C1)); },
  x87_fptan: (c) => { setSt(c, 0, Math.tan(st(c, 0))); push(c, 1); setCC(c, c.fsw & ~(C2 | C1)); },
  x87_fpatan: (c) => { setSt(c, 1, Math.atan2(st(c, 1), st(c, 0))); pop(c); },
  x87_f2xm1: (c) => setSt(c, 0, Math.pow(2, st(c, 0)) - 1),
  x87_fyl2x: (c) => { setSt(c, 1, st(c, 1) * Math.log2(st(c, 0))); pop(c); },
  x87_fyl2xp1: (c) => { setSt(c, 1, st(c, 1) * Math.log1p(st(c, 0)) / Math.LN2); pop(c); },
  x87_fxtract: fxtract,
  x87_fnstenv: (c, i) => { storeEnv(c, ea(c, i)); c.fcw |= 0x3f; },
  x87_fldenv: (c, i) => loadEnv(c, ea(c, i)),
  x87_fnsave: fnsave,
  x87_frstor: frstor,
  fpu_fxsave: fxsave,
  fpu_fxrstor: fxrstor,
};

