/**
 * SSE2 forms lowered to wasm SIMD (emitter.ts places XMM0-15 beside the
 * registers): the 128-bit moves, MOVD/MOVQ, the packed-integer logic,
 * compare, add/subtract, min/max and average forms, PMOVMSKB/MOVMSKPS/PD,
 * the unpacks and shuffles, byte shifts and element shifts by an
 * immediate; and BSF/BSR (and TZCNT where it runs as BSF). These are what
 * glibc's string functions are made of. Each form computes exactly what its
 * handler in ops/sse.ts or ops/bit.ts computes; a memory operand goes
 * through the TLB like any other (16-byte accesses all or nothing).
 */
import { OP_GPR, OP_IMM, OP_MEM, OP_XMM } from '../decode/index.js';
import { ADVERTISED } from '../cpuid.js';
import type { Op } from '../op.js';
import { LF_LOGIC } from '../state.js';
import { Op as W, Simd } from './encode.js';
import { type Emitter, type Known, plainMem } from './emitter.js';

/** dst = op(dst, src) on whole registers, by handler name. */
const BINARY: Readonly<Record<string, number>> = {
  sse_pand: Simd.v128And, sse_andps: Simd.v128And, sse_andpd: Simd.v128And,
  sse_por: Simd.v128Or, sse_orps: Simd.v128Or, sse_orpd: Simd.v128Or,
  sse_pxor: Simd.v128Xor, sse_xorps: Simd.v128Xor, sse_xorpd: Simd.v128Xor,
  sse_pcmpeqb: Simd.i8x16Eq, sse_pcmpeqw: Simd.i16x8Eq, sse_pcmpeqd: Simd.i32x4Eq,
  sse_pcmpgtb: Simd.i8x16GtS, sse_pcmpgtw: Simd.i16x8GtS, sse_pcmpgtd: Simd.i32x4GtS,
  sse_paddb: Simd.i8x16Add, sse_paddw: Simd.i16x8Add, sse_paddd: Simd.i32x4Add, sse_paddq: Simd.i64x2Add,
  sse_psubb: Simd.i8x16Sub, sse_psubw: Simd.i16x8Sub, sse_psubd: Simd.i32x4Sub, sse_psubq: Simd.i64x2Sub,
  sse_paddsb: Simd.i8x16AddSatS, sse_paddsw: Simd.i16x8AddSatS, sse_paddusb: Simd.i8x16AddSatU, sse_paddusw: Simd.i16x8AddSatU,
  sse_psubsb: Simd.i8x16SubSatS, sse_psubsw: Simd.i16x8SubSatS, sse_psubusb: Simd.i8x16SubSatU, sse_psubusw: Simd.i16x8SubSatU,
  sse_pminub: Simd.i8x16MinU, sse_pmaxub: Simd.i8x16MaxU, sse_pminsw: Simd.i16x8MinS, sse_pmaxsw: Simd.i16x8MaxS,
  sse_pavgb: Simd.i8x16AvgrU, sse_pavgw: Simd.i16x8AvgrU, sse_pmullw: Simd.i16x8Mul,
};

/** The full-register moves (MOVUPS/MOVUPD/MOVAPS/MOVAPD/MOVDQA/MOVDQU/MOVNT*, LDDQU). */
const MOVE128 = new Set(['sse_movups', 'sse_movupd', 'sse_movaps', 'sse_movdqa', 'sse_movdqu']);

/** Element shifts by an immediate: the element width and the wasm shift. */
const SHIFT: Readonly<Record<string, { bits: number; o: number; arith: boolean }>> = {
  sse_psllw: { bits: 16, o: Simd.i16x8Shl, arith: false }, sse_pslld: { bits: 32, o: Simd.i32x4Shl, arith: false }, sse_psllq: { bits: 64, o: Simd.i64x2Shl, arith: false },
  sse_psrlw: { bits: 16, o: Simd.i16x8ShrU, arith: false }, sse_psrld: { bits: 32, o: Simd.i32x4ShrU, arith: false }, sse_psrlq: { bits: 64, o: Simd.i64x2ShrU, arith: false },
  sse_psraw: { bits: 16, o: Simd.i16x8ShrS, arith: true }, sse_psrad: { bits: 32, o: Simd.i32x4ShrS, arith: true },
};

const ZERO16: readonly number[] = new Array<number>(16).fill(0);

/** Byte lanes of PUNPCKL/H at element size `bytes`: the low (or high) halves of dst (0-15) and src (16-31) interleaved. */
function unpackLanes(bytes: number, high: boolean): number[] {
  const out: number[] = [];
  const base = high ? 8 : 0;
  for (let k = 0; k < 8 / bytes; k++) {
    for (let j = 0; j < bytes; j++) out.push(base + k * bytes + j);
    for (let j = 0; j < bytes; j++) out.push(16 + base + k * bytes + j);
  }
  return out;
}

/** Byte lanes of PSHUFD (dwords), PSHUFLW/PSHUFHW (words of one half) with selector `imm`. */
function shuffleLanes(name: string, imm: number): number[] {
  const out: number[] = [];
  if (name === 'sse_pshufd') {
    for (let q = 0; q < 4; q++) for (let j = 0; j < 4; j++) out.push(((imm >> (2 * q)) & 3) * 4 + j);
    return out;
  }
  const high = name === 'sse_pshufhw';
  const o = high ? 4 : 0;
  for (let w = 0; w < 8; w++) {
    const from = w >= o && w < o + 4 ? o + ((imm >> (2 * (w - o))) & 3) : w;
    out.push(2 * from, 2 * from + 1);
  }
  return out;
}

/** Byte lanes of PSLLDQ/PSRLDQ by `n` bytes over (dst, zero): lane 16 is a zero byte. */
function byteShiftLanes(left: boolean, n: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < 16; k++) {
    const from = left ? k - n : k + n;
    out.push(from >= 0 && from < 16 ? from : 16);
  }
  return out;
}

/**
 * Lowers an SSE2 form or a bit scan; returns 'keep' (flags untouched), the
 * record a bit scan leaves, or undefined when the form is not lowered here.
 */
export function lowerSse(m: Emitter, op: Op, name: string, s: number, e: number, k: number): Known | 'keep' | undefined {
  const c = m.c;
  const k0 = op.kind0, k1 = op.kind1;
  const x0 = k0 === OP_XMM && op.reg0 < 16, x1 = k1 === OP_XMM && op.reg1 < 16;
  const gpr0 = k0 === OP_GPR && op.reg0 < 16;
  const mem0 = k0 === OP_MEM && plainMem(op), mem1 = k1 === OP_MEM && plainMem(op);
  if (name === 'bit_bsf' || name === 'bit_bsr' || (name === 'bit_tzcnt' && !ADVERTISED.has('bmi1'))) return bitScan(m, op, name === 'bit_bsr', s, e, k);
  /** The 16-byte source operand into V (a register, or memory through the TLB); false if it is neither. */
  const source = (): boolean => {
    if (x1) { m.xmm(op.reg1); c.set(m.V); return true; }
    if (!mem1) return false;
    m.ea(op, e);
    m.load128(s, k);
    c.set(m.V);
    return true;
  };
  const done = (): 'keep' => { if (mem0 || mem1) m.stopCheck(e, k); return 'keep'; };
  if (MOVE128.has(name)) {
    if (x0) {
      if (!source()) return undefined;
      m.setXmm(op.reg0, () => c.get(m.V));
      return done();
    }
    if (mem0 && x1) {
      m.ea(op, e);
      m.store128(op.reg1, s, k);
      return done();
    }
    return undefined;
  }
  const binary = BINARY[name];
  if (binary !== undefined) {
    if (!x0) return undefined;
    // PXOR/XORPS of a register with itself: zero, whatever it held.
    if (x1 && op.reg1 === op.reg0 && binary === Simd.v128Xor) { m.setXmm(op.reg0, () => c.v128(ZERO16)); return 'keep'; }
    if (!source()) return undefined;
    m.setXmm(op.reg0, () => { m.xmm(op.reg0); c.get(m.V).simd(binary); });
    return done();
  }
  if (name === 'sse_pandn' || name === 'sse_andnps' || name === 'sse_andnpd') {
    if (!x0 || !source()) return undefined;
    // dst = ~dst & src: wasm's andnot(a, b) is a & ~b.
    m.setXmm(op.reg0, () => { c.get(m.V); m.xmm(op.reg0); c.simd(Simd.v128AndNot); });
    return done();
  }
  if ((name === 'sse_pmovmskb' || name === 'sse_movmskps' || name === 'sse_movmskpd') && gpr0 && x1) {
    const o = name === 'sse_pmovmskb' ? Simd.i8x16Bitmask : name === 'sse_movmskps' ? Simd.i32x4Bitmask : Simd.i64x2Bitmask;
    m.setReg(op.reg0, () => { m.xmm(op.reg1); c.simd(o).op(W.i64ExtendI32U); });
    return 'keep';
  }
  if (name === 'sse_movd' || name === 'sse_movq') return moveScalar(m, op, name, s, e, k);
  if (name.startsWith('sse_punpck')) {
    const bytes = name.endsWith('qdq') ? 8 : name.endsWith('dq') ? 4 : name.endsWith('wd') ? 2 : 1;
    if (!x0 || !source()) return undefined;
    const lanes = unpackLanes(bytes, name.startsWith('sse_punpckh'));
    m.setXmm(op.reg0, () => { m.xmm(op.reg0); c.get(m.V).shuffle(lanes); });
    return done();
  }
  if ((name === 'sse_pshufd' || name === 'sse_pshuflw' || name === 'sse_pshufhw') && x0) {
    if (!source()) return undefined;
    const lanes = shuffleLanes(name, op.imm & 0xff);
    m.setXmm(op.reg0, () => { c.get(m.V).get(m.V).shuffle(lanes); });
    return done();
  }
  if ((name === 'sse_pslldq' || name === 'sse_psrldq') && x0 && k1 === OP_IMM) {
    const lanes = byteShiftLanes(name === 'sse_pslldq', Math.min(op.imm & 0xff, 16));
    m.setXmm(op.reg0, () => { m.xmm(op.reg0); c.v128(ZERO16).shuffle(lanes); });
    return 'keep';
  }
  const shift = SHIFT[name];
  if (shift !== undefined && x0 && k1 === OP_IMM) {
    const n = op.imm & 0xff;
    // wasm takes the count modulo the element width; x86 zeroes (or fills with the sign) past it.
    if (n >= shift.bits && !shift.arith) m.setXmm(op.reg0, () => c.v128(ZERO16));
    else m.setXmm(op.reg0, () => { m.xmm(op.reg0); c.i32(Math.min(n, shift.bits - 1)).simd(shift.o); });
    return 'keep';
  }
  return undefined;
}

/** MOVD/MOVQ between XMM registers, GPRs and memory: a register destination's upper lanes are zeroed. */
function moveScalar(m: Emitter, op: Op, name: string, s: number, e: number, k: number): 'keep' | undefined {
  const c = m.c;
  const k0 = op.kind0, k1 = op.kind1;
  const x0 = k0 === OP_XMM && op.reg0 < 16, x1 = k1 === OP_XMM && op.reg1 < 16;
  const mem0 = k0 === OP_MEM && plainMem(op), mem1 = k1 === OP_MEM && plainMem(op);
  // The value's size: MOVQ is always 8 bytes; MOVD/MOVQ with a GPR or memory operand takes that operand's size.
  const size = name === 'sse_movq' ? 8 : x0 ? op.size1 : op.size0;
  if (size !== 4 && size !== 8) return undefined;
  const mask = (): void => { if (size === 4) c.i64(-1, 0).op(W.i64And); };
  if (x0) {
    // Into A: the low lane's value.
    if (x1) { m.xmm(op.reg1); c.simdLane(Simd.i64x2ExtractLane, 0); mask(); }
    else if (m.readRm(op, size, s, e, k) === undefined) return undefined;
    c.set(m.A);
    m.setXmm(op.reg0, () => { c.v128(ZERO16).get(m.A).simdLane(Simd.i64x2ReplaceLane, 0); });
    if (mem1) m.stopCheck(e, k);
    return 'keep';
  }
  if (!x1) return undefined;
  const low = (): void => { m.xmm(op.reg1); c.simdLane(Simd.i64x2ExtractLane, 0); mask(); };
  if (k0 === OP_GPR && op.reg0 < 16) { m.setReg(op.reg0, low); return 'keep'; }
  if (mem0) {
    m.ea(op, e);
    m.store(size, s, k, low);
    m.stopCheck(e, k);
    return 'keep';
  }
  return undefined;
}

/**
 * BSF/BSR r, r/m at 32 and 64 bits: a zero source leaves the destination
 * and sets ZF; the record is LF_LOGIC of 0 or 1 (ops/bit.ts scan records
 * the same), so ZF, SF, PF, CF, OF and AF follow.
 */
function bitScan(m: Emitter, op: Op, reverse: boolean, s: number, e: number, k: number): Known | undefined {
  const c = m.c;
  const size = op.size0;
  if ((size !== 4 && size !== 8) || op.kind0 !== OP_GPR || op.reg0 >= 16) return undefined;
  const from = m.readRm(op, size, s, e, k);
  if (from === undefined) return undefined;
  const memory = from === 'memory';
  c.set(m.A);
  c.get(m.A).op(W.i64Eqz).op(W.i32Eqz).set(m.R4);
  c.get(m.R4).open(W.if, 'found');
  m.setReg(op.reg0, () => {
    if (!reverse) c.get(m.A).op(W.i64Ctz);
    else { c.i64(size * 8 - 1, 0); c.get(m.A); if (size === 4) c.i64(32, 0).op(W.i64Shl); c.op(W.i64Clz).op(W.i64Sub); }
  });
  c.close('found');
  m.recordOf(LF_LOGIC, 4, -1, -1, m.R4, 0);
  if (memory) m.stopCheck(e, k);
  return { kind: 'logic', size: 4 };
}
