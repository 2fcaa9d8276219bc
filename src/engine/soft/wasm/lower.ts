/**
 * Guest instructions lowered to wasm through the Emitter (emitter.ts): each
 * returns the flag record it leaves known in locals, or says it kept or
 * lost the one before, or declines (region.ts then calls the handler).
 */
import { BASE_RIP, HANDLER_NAMES, OP_GPR, OP_IMM, OP_MEM, OP_REL } from '../decode/index.js';
import type { Op } from '../op.js';
import { plain64 } from '../block.js';
import { FLAG_AF, FLAG_CF, FLAG_OF, LF_ADC, LF_ADD, LF_CO, LF_DEC, LF_INC, LF_LOGIC, LF_SBB, LF_SUB } from '../state.js';
import { I32, Op as W } from './encode.js';
import { lowerMisc } from './lower-misc.js';
import { lowerSse } from './lower-sse.js';
import { ALU, type Emitter, IMPORT_CARRY_OVERFLOW, IMPORT_NONCANON, type Known, plainMem, S_LF_AUX, S_LF_DST, S_LF_OP, S_LF_RES, S_LF_SRC } from './emitter.js';

/**
 * Lowers one instruction; returns the flag record it leaves known, 'keep'
 * when it leaves flags as they were, or undefined when it is not lowered
 * (the caller calls its handler).
 */
export function lower(m: Emitter, op: Op, s: number, e: number, k: number, known: Known | undefined, next: number): Known | 'keep' | 'forget' | 'branch' | undefined {
  if (!plain64(op)) return undefined;
  const c = m.c;
  const name = HANDLER_NAMES[op.handler] ?? '';
  const retiredHere = (): void => { c.get(m.N).i32(k + 1).op(W.i32Add); };
  if (name === 'misc_nop') return 'keep';
  if (name === 'flow_jcc' && op.kind0 === OP_REL) {
    const cc = op.opcode & 15;
    m.test(known, cc);
    c.open(W.if, 'taken');
    m.goTo(e + op.imm, retiredHere);
    c.close('taken');
    m.goTo(e, retiredHere, next);
    return 'branch';
  }
  if (name === 'flow_jmp' && op.kind0 === OP_REL) {
    m.goTo(e + op.imm, retiredHere, next);
    return 'branch';
  }
  if (name === 'flow_call' && op.kind0 === OP_REL) {
    // The return address pushed first; a fault leaves RSP as it was.
    c.get(m.ST).mem(W.i64Load, 8 * 4).i64(8, 0).op(W.i64Sub).set(m.EA);
    m.store(8, s, k, () => { c.get(m.BASE).f64(e).op(W.f64Add).op(W.i64TruncF64S); });
    m.setReg(4, () => c.get(m.EA));
    m.stopCheck(e + op.imm, k);
    m.goTo(e + op.imm, retiredHere);
    return 'branch';
  }
  if (name === 'flow_ret' && op.nops === 0) {
    c.get(m.ST).mem(W.i64Load, 8 * 4).set(m.EA);
    m.load(8, s, k);
    c.set(m.A);
    // A non-canonical return address faults with RSP unchanged.
    canonical(m, s, k);
    m.setReg(4, () => c.get(m.EA).i64(8, 0).op(W.i64Add));
    m.dynamicGoto(m.A, retiredHere);
    return 'branch';
  }
  // JMP and CALL through a register or memory (PLT stubs, switch tables, function pointers).
  if ((name === 'flow_jmp' || name === 'flow_call') && op.nops === 1 && op.osize === 8 &&
    ((op.kind0 === OP_GPR && op.reg0 < 16) || (op.kind0 === OP_MEM && plainMem(op)))) {
    if (op.kind0 === OP_GPR) m.reg(op.reg0);
    else {
      m.ea(op, e);
      m.load(8, s, k);
    }
    c.set(m.A);
    // The target is checked before anything is pushed: #GP leaves RSP as it was.
    canonical(m, s, k);
    if (name === 'flow_call') {
      c.get(m.ST).mem(W.i64Load, 8 * 4).i64(8, 0).op(W.i64Sub).set(m.EA);
      m.storeAfterRead(8, s, k, () => { c.get(m.BASE).f64(e).op(W.f64Add).op(W.i64TruncF64S); });
      m.setReg(4, () => c.get(m.EA));
    }
    m.dynamicGoto(m.A, retiredHere);
    return 'branch';
  }
  if (name === 'stack_push' && op.nops === 1 && op.osize === 8 && op.kind0 === OP_GPR && op.reg0 < 16) {
    c.get(m.ST).mem(W.i64Load, 8 * 4).i64(8, 0).op(W.i64Sub).set(m.EA);
    m.store(8, s, k, () => m.reg(op.reg0));
    m.setReg(4, () => c.get(m.EA));
    m.stopCheck(e, k);
    return 'keep';
  }
  if (name === 'stack_push' && op.nops === 1 && op.osize === 8 && (op.kind0 === OP_IMM || (op.kind0 === OP_MEM && plainMem(op)))) {
    // The value first (a memory operand's address uses RSP before the push); a stop its read asked for outlives the store's.
    if (op.kind0 === OP_IMM) c.i64(op.imm | 0, op.immHi | 0).set(m.A);
    else {
      m.ea(op, e);
      m.load(8, s, k);
      c.set(m.A);
    }
    c.get(m.ST).mem(W.i64Load, 8 * 4).i64(8, 0).op(W.i64Sub).set(m.EA);
    m.storeAfterRead(8, s, k, () => c.get(m.A));
    m.setReg(4, () => c.get(m.EA));
    m.stopCheck(e, k);
    return 'keep';
  }
  if (name === 'stack_leave' && op.osize === 8) {
    // RSP = RBP + 8 and RBP = [RBP], both only once the read has not faulted.
    m.reg(5); c.set(m.EA);
    m.load(8, s, k);
    c.set(m.A);
    m.setReg(4, () => c.get(m.EA).i64(8, 0).op(W.i64Add));
    m.setReg(5, () => c.get(m.A));
    m.stopCheck(e, k);
    return 'keep';
  }
  if (name === 'stack_pop' && op.nops === 1 && op.osize === 8 && op.kind0 === OP_GPR && op.reg0 < 16) {
    // RSP moves first, then the register: POP RSP loads the value read.
    c.get(m.ST).mem(W.i64Load, 8 * 4).set(m.EA);
    m.load(8, s, k);
    c.set(m.A);
    m.setReg(4, () => c.get(m.EA).i64(8, 0).op(W.i64Add));
    m.setReg(op.reg0, () => c.get(m.A));
    m.stopCheck(e, k);
    return 'keep';
  }
  if ((name === 'alu_inc' || name === 'alu_dec') && op.nops === 1 && op.kind0 === OP_GPR && op.reg0 < 16 && (op.size0 === 4 || op.size0 === 8)) {
    const size = op.size0;
    const dec = name === 'alu_dec';
    // CF is kept: its current value goes into the record's aux.
    m.test(known, 2);
    c.set(m.T);
    if (size === 8) {
      m.reg(op.reg0); c.tee(m.D8).i64(1, 0).op(dec ? W.i64Sub : W.i64Add).set(m.R8); c.i64(1, 0).set(m.S8);
      m.setReg(op.reg0, () => c.get(m.R8));
    } else {
      m.reg(op.reg0); c.op(W.i32WrapI64).tee(m.D4).i32(1).op(dec ? W.i32Sub : W.i32Add).set(m.R4); c.i32(1).set(m.S4);
      m.setReg(op.reg0, () => c.get(m.R4).op(W.i64ExtendI32U));
    }
    const [d, sr, r] = size === 8 ? [m.D8, m.S8, m.R8] : [m.D4, m.S4, m.R4];
    m.recordOf(dec ? LF_DEC : LF_INC, size, d, sr, r, () => c.get(m.T));
    return { kind: 'result', size };
  }
  if (name === 'mov_setcc' && op.size0 === 1 && op.kind0 === OP_GPR && op.reg0 < 16) {
    m.test(known, op.opcode & 15);
    c.set(m.T);
    m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64n(-256).op(W.i64And).get(m.T).op(W.i64ExtendI32U).op(W.i64Or); });
    return 'keep';
  }
  const misc = lowerMisc(m, op, name, s, e, k, known);
  if (misc !== undefined) return misc;
  const more = lowerMore(m, op, name, s, e, k, known);
  if (more !== undefined) return more;
  const sse = lowerSse(m, op, name, s, e, k);
  if (sse !== undefined) return sse;
  if (op.nops !== 2) return undefined;
  const size = op.size0;
  if (size === 1 || size === 2) return lowerSmall(m, op, name, size, s, e, k);
  if (size !== 4 && size !== 8) return undefined;
  if ((name === 'alu_adc' || name === 'alu_sbb') && op.kind0 === OP_GPR && op.reg0 < 16 && ((op.kind1 === OP_GPR && op.reg1 < 16) || op.kind1 === OP_IMM)) {
    const sbb = name === 'alu_sbb';
    m.test(known, 2);
    c.set(m.T);
    if (op.kind1 === OP_GPR) m.reg(op.reg1); else c.i64(op.imm | 0, op.immHi | 0);
    c.set(m.B);
    m.reg(op.reg0);
    c.set(m.A);
    const o = sbb ? W.i64Sub : W.i64Add;
    if (size === 8) {
      c.get(m.A).set(m.D8).get(m.B).set(m.S8);
      c.get(m.A).get(m.B).op(o).get(m.T).op(W.i64ExtendI32U).op(o).set(m.R8);
      m.setReg(op.reg0, () => c.get(m.R8));
      m.recordOf(sbb ? LF_SBB : LF_ADC, 8, m.D8, m.S8, m.R8, () => c.get(m.T));
    } else {
      const o32 = sbb ? W.i32Sub : W.i32Add;
      c.get(m.A).op(W.i32WrapI64).set(m.D4).get(m.B).op(W.i32WrapI64).set(m.S4);
      c.get(m.D4).get(m.S4).op(o32).get(m.T).op(o32).set(m.R4);
      m.setReg(op.reg0, () => c.get(m.R4).op(W.i64ExtendI32U));
      m.recordOf(sbb ? LF_SBB : LF_ADC, 4, m.D4, m.S4, m.R4, () => c.get(m.T));
    }
    return { kind: 'result', size };
  }
  const shiftKind = name === 'shift_shl' ? 0 : name === 'shift_shr' ? 1 : name === 'shift_sar' ? 2 : -1;
  const byCl = op.kind1 === OP_GPR && op.reg1 === 1 && op.size1 === 1;
  if (shiftKind >= 0 && op.kind0 === OP_GPR && op.reg0 < 16 && (op.kind1 === OP_IMM || byCl)) {
    const bits = size * 8;
    const n = byCl ? -1 : op.imm & (bits - 1);
    // No count: flags unchanged; a 32-bit destination still loses its upper half.
    const none = (): void => { if (size === 4) m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64(-1, 0).op(W.i64And); }); };
    if (n === 0) { none(); return 'keep'; }
    if (byCl) {
      // The count from CL, masked, in V32; a count of 0 is known only when the code runs.
      m.reg(1); c.op(W.i32WrapI64).i32(bits - 1).op(W.i32And).tee(m.V32).op(W.i32Eqz).open(W.if, 'none');
      none();
      c.else('none');
    }
    /** The shift's amount (`cf` false) or the position of the last bit out (true), as an i32. */
    const amount = (cf: boolean): void => {
      if (!byCl) c.i32(!cf ? n : shiftKind === 0 ? bits - n : n - 1);
      else if (!cf) c.get(m.V32);
      else if (shiftKind === 0) c.i32(bits).get(m.V32).op(W.i32Sub);
      else c.get(m.V32).i32(1).op(W.i32Sub);
    };
    if (size === 8) {
      const sh = (cf: boolean): void => { amount(cf); c.op(W.i64ExtendI32U); };
      m.reg(op.reg0); c.set(m.A);
      c.get(m.A); sh(false); c.op(shiftKind === 0 ? W.i64Shl : shiftKind === 1 ? W.i64ShrU : W.i64ShrS).set(m.R8);
      // CF: the last bit shifted out; OF: SHL msb(result) ^ CF, SHR msb(source), SAR 0.
      c.get(m.A); sh(true); c.op(W.i64ShrU).op(W.i32WrapI64).i32(1).op(W.i32And).set(m.T);
      if (shiftKind === 0) c.get(m.R8).i64(63, 0).op(W.i64ShrU).op(W.i32WrapI64).get(m.T).op(W.i32Xor);
      else if (shiftKind === 1) c.get(m.A).i64(63, 0).op(W.i64ShrU).op(W.i32WrapI64);
      else c.i32(0);
      c.set(m.FA);
      m.setReg(op.reg0, () => c.get(m.R8));
      m.recordOf(LF_CO, 8, -1, -1, m.R8, () => c.get(m.T).get(m.FA).i32(11).op(W.i32Shl).op(W.i32Or));
    } else {
      m.reg(op.reg0); c.op(W.i32WrapI64).set(m.D4);
      c.get(m.D4); amount(false); c.op(shiftKind === 0 ? W.i32Shl : shiftKind === 1 ? W.i32ShrU : W.i32ShrS).set(m.R4);
      c.get(m.D4); amount(true); c.op(W.i32ShrU).i32(1).op(W.i32And).set(m.T);
      if (shiftKind === 0) c.get(m.R4).i32(31).op(W.i32ShrU).get(m.T).op(W.i32Xor);
      else if (shiftKind === 1) c.get(m.D4).i32(31).op(W.i32ShrU);
      else c.i32(0);
      c.set(m.FA);
      m.setReg(op.reg0, () => c.get(m.R4).op(W.i64ExtendI32U));
      m.recordOf(LF_CO, 4, -1, -1, m.R4, () => c.get(m.T).get(m.FA).i32(11).op(W.i32Shl).op(W.i32Or));
    }
    if (!byCl) return { kind: 'result', size, co: true };
    // Either way the stored record is the flags' state; the locals are not.
    c.close('none');
    return 'forget';
  }
  if (name === 'mul_imul2' && size === 8 && op.kind0 === OP_GPR && op.reg0 < 16 && op.kind1 === OP_GPR && op.reg1 < 16) {
    m.reg(op.reg0); c.set(m.A); m.reg(op.reg1); c.set(m.B);
    c.get(m.A).get(m.B).op(W.i64Mul).set(m.R8);
    // Overflow: the product does not fit 64 bits signed (A = -1 overflows only for B = -2^63; else R / A = B exactly when it fits).
    c.get(m.A).op(W.i64Eqz).open(W.if, 'zero', I32).i32(0).else('zero');
    c.get(m.A).i64(-1, -1).op(W.i64Eq).open(W.if, 'm1', I32);
    c.get(m.B).i64(0, -0x80000000).op(W.i64Eq);
    c.else('m1');
    c.get(m.R8).get(m.A).op(W.i64DivS).get(m.B).op(W.i64Ne);
    c.close('m1').close('zero').set(m.T);
    m.setReg(op.reg0, () => c.get(m.R8));
    m.recordOf(LF_CO, 8, -1, -1, m.R8, () => c.get(m.T).i32(FLAG_CF | FLAG_OF).op(W.i32Mul));
    return { kind: 'result', size, co: true };
  }
  const from = op.size1;
  if ((name === 'mov_movzx' || name === 'mov_movsx' || name === 'mov_movsxd') && op.kind0 === OP_GPR && op.reg0 < 16 &&
    (from === 1 || from === 2 || (from === 4 && name === 'mov_movsxd' && size === 8))) {
    const from1 = m.readRm(op, from, s, e, k);
    if (from1 === undefined) return undefined;
    const memory = from1 === 'memory';
    if (name !== 'mov_movzx') c.op(from === 1 ? W.i64Extend8S : from === 2 ? W.i64Extend16S : W.i64Extend32S);
    if (size === 4) c.i64(-1, 0).op(W.i64And);
    c.set(m.A);
    m.setReg(op.reg0, () => c.get(m.A));
    if (memory) m.stopCheck(e, k);
    return 'keep';
  }
  if (name === 'mov_cmov' && op.kind0 === OP_GPR && op.reg0 < 16 && op.kind1 === OP_GPR && op.reg1 < 16) {
    m.test(known, op.opcode & 15);
    c.open(W.if, 'move');
    m.setReg(op.reg0, () => { m.reg(op.reg1); if (size === 4) c.i64(-1, 0).op(W.i64And); });
    if (size === 4) {
      c.else('move');
      m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64(-1, 0).op(W.i64And); });
    }
    c.close('move');
    return 'keep';
  }
  const k0 = op.kind0, k1 = op.kind1;
  const alu = ALU[name];
  const zext = (): void => { if (size === 4) c.i64(-1, 0).op(W.i64And); };
  if (name === 'mov_lea') {
    if (k0 !== OP_GPR || op.reg0 >= 16 || k1 !== OP_MEM || op.asize !== 8 || op.base < -1 || op.base > BASE_RIP || op.index > 15) return undefined;
    // LEA ignores segments: the effective address alone.
    m.setReg(op.reg0, () => { m.address(op, e); zext(); });
    return 'keep';
  }
  if (name === 'mov_mov') {
    if (k0 === OP_GPR && op.reg0 < 16) {
      if (k1 === OP_GPR && op.reg1 < 16) { m.setReg(op.reg0, () => { m.reg(op.reg1); zext(); }); return 'keep'; }
      if (k1 === OP_IMM) { m.setReg(op.reg0, () => { c.i64(op.imm | 0, size === 8 ? op.immHi | 0 : 0); }); return 'keep'; }
      if (k1 === OP_MEM && plainMem(op)) {
        m.ea(op, e);
        m.load(size, s, k);
        c.set(m.A);
        m.setReg(op.reg0, () => c.get(m.A));
        m.stopCheck(e, k);
        return 'keep';
      }
      return undefined;
    }
    if (k0 === OP_MEM && plainMem(op) && ((k1 === OP_GPR && op.reg1 < 16) || k1 === OP_IMM)) {
      m.ea(op, e);
      m.store(size, s, k, () => { if (k1 === OP_GPR) m.reg(op.reg1); else c.i64(op.imm | 0, op.immHi | 0); });
      m.stopCheck(e, k);
      return 'keep';
    }
    return undefined;
  }
  if (alu === undefined) return undefined;
  const { writes, kind } = alu;
  // Operands: a (first) and b (second) as i64 in A and B.
  let memory = false;
  if (k0 === OP_GPR && op.reg0 < 16) {
    if (k1 === OP_GPR && op.reg1 < 16) { m.reg(op.reg1); c.set(m.B); }
    else if (k1 === OP_IMM) { c.i64(op.imm | 0, op.immHi | 0).set(m.B); }
    else if (k1 === OP_MEM && plainMem(op)) { m.ea(op, e); m.load(size, s, k); c.set(m.B); memory = true; }
    else return undefined;
    m.reg(op.reg0);
    c.set(m.A);
  } else if (k0 === OP_MEM && !writes && plainMem(op)) {
    if (k1 === OP_GPR && op.reg1 < 16) { m.reg(op.reg1); c.set(m.B); }
    else if (k1 === OP_IMM) { c.i64(op.imm | 0, op.immHi | 0).set(m.B); }
    else return undefined;
    m.ea(op, e);
    m.load(size, s, k);
    c.set(m.A);
    memory = true;
  } else return undefined;
  m.arith(size, alu.o64, alu.o32);
  if (writes) m.setReg(op.reg0, () => (size === 8 ? c.get(m.R8) : c.get(m.R4).op(W.i64ExtendI32U)));
  m.record(kind, size);
  if (memory) m.stopCheck(e, k);
  return { kind, size };
}

/** #GP at the branch at offset `s` when the target in A is not canonical (bits 63-47 differ). */
function canonical(m: Emitter, s: number, k: number): void {
  const c = m.c;
  c.get(m.A).i64(16, 0).op(W.i64Shl).i64(16, 0).op(W.i64ShrS).get(m.A).op(W.i64Ne).open(W.if, 'bad');
  m.faultPoint(s, k);
  c.i32(s).get(m.A).i64(32, 0).op(W.i64ShrU).op(W.i32WrapI64).call(IMPORT_NONCANON);
  c.close('bad');
}

/**
 * Rotates by an immediate, NOT, NEG and BSWAP of a register, and
 * read-modify-write ALU forms on memory (ADD/SUB/AND/OR/XOR [m], r/imm;
 * INC/DEC [m]), at 32 and 64 bits. 'forget': lowered, but the flag record
 * is now the Cpu's (a rotate merged its CF and OF into a record not known
 * here).
 */
function lowerMore(m: Emitter, op: Op, name: string, s: number, e: number, k: number, known: Known | undefined): Known | 'keep' | 'forget' | undefined {
  const c = m.c;
  const size = op.size0;
  if (size !== 4 && size !== 8) return undefined;
  const w = size === 8;
  const reg0 = op.kind0 === OP_GPR && op.reg0 < 16;
  const toReg = (): void => { if (!w) c.op(W.i64ExtendI32U); };
  if ((name === 'shift_rol' || name === 'shift_ror') && reg0 && op.kind1 === OP_IMM) {
    const n = op.imm & (size * 8 - 1);
    // A count of 0 leaves flags alone (and still clears a 32-bit register's upper half): the handler's case.
    if (n === 0) return undefined;
    const rol = name === 'shift_rol';
    // The result in A (zero-extended for 32 bits); CF and OF (bit 11) into T.
    m.reg(op.reg0);
    if (w) c.i64(n, 0).op(rol ? W.i64Rotl : W.i64Rotr).set(m.A);
    else c.op(W.i32WrapI64).i32(n).op(rol ? W.i32Rotl : W.i32Rotr).op(W.i64ExtendI32U).set(m.A);
    const bit = (b: number): void => { c.get(m.A).i64(b, 0).op(W.i64ShrU).op(W.i32WrapI64).i32(1).op(W.i32And); };
    const msb = size * 8 - 1;
    // ROL: CF = bit 0, OF = msb ^ CF; ROR: CF = msb, OF = msb ^ the bit below it.
    if (rol) { bit(0); c.tee(m.T); bit(msb); c.op(W.i32Xor); } else { bit(msb); c.tee(m.T); bit(msb - 1); c.op(W.i32Xor); }
    c.i32(11).op(W.i32Shl).get(m.T).op(W.i32Or).set(m.T);
    m.setReg(op.reg0, () => c.get(m.A));
    if (known === undefined) {
      c.get(m.ST).i32(FLAG_CF | FLAG_OF).get(m.T).call(IMPORT_CARRY_OVERFLOW);
      return 'forget';
    }
    // The stored record becomes LF_CO: ZF, SF and PF still from its result; AF kept; CF and OF the rotate's.
    if (known.co === true) c.get(m.ST).mem(W.i32Load, S_LF_AUX).i32(~(FLAG_CF | FLAG_OF)).op(W.i32And);
    else if (known.kind === 'logic') c.i32(0);
    else {
      const f = (at: number): void => { c.get(m.ST).mem(W.i32Load, at); };
      f(S_LF_DST); f(S_LF_SRC); c.op(W.i32Xor); f(S_LF_RES); c.op(W.i32Xor);
      c.i32(FLAG_AF).op(W.i32And);
    }
    c.get(m.T).op(W.i32Or).set(m.T);
    m.scratchI32(S_LF_AUX, () => c.get(m.T));
    m.scratchI32(S_LF_OP, () => c.i32(LF_CO));
    return { kind: 'result', size: known.size, co: true };
  }
  if (name === 'alu_not' && reg0 && op.nops === 1) {
    m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64(-1, -1).op(W.i64Xor); if (!w) c.i64(-1, 0).op(W.i64And); });
    return 'keep';
  }
  if (name === 'mov_bswap' && reg0) {
    // Bytes of each 32-bit half reversed; for 64 bits the halves swap too.
    const swap32 = (): void => {
      c.tee(m.V32).i32(24).op(W.i32Shl);
      c.get(m.V32).i32(8).op(W.i32Shl).i32(0xff0000).op(W.i32And).op(W.i32Or);
      c.get(m.V32).i32(8).op(W.i32ShrU).i32(0xff00).op(W.i32And).op(W.i32Or);
      c.get(m.V32).i32(24).op(W.i32ShrU).op(W.i32Or);
      c.op(W.i64ExtendI32U);
    };
    m.reg(op.reg0); c.set(m.A);
    m.setReg(op.reg0, () => {
      c.get(m.A).op(W.i32WrapI64); swap32();
      if (w) { c.i64(32, 0).op(W.i64Shl); c.get(m.A).i64(32, 0).op(W.i64ShrU).op(W.i32WrapI64); swap32(); c.op(W.i64Or); }
    });
    return 'keep';
  }
  const [d, sr, r] = w ? [m.D8, m.S8, m.R8] : [m.D4, m.S4, m.R4];
  if (name === 'alu_neg' && reg0 && op.nops === 1) {
    // 0 - x, recorded as that subtraction.
    c.i64(0, 0).set(m.A);
    m.reg(op.reg0); c.set(m.B);
    m.arith(size, W.i64Sub, W.i32Sub);
    m.setReg(op.reg0, () => { c.get(r); toReg(); });
    m.record('sub', size);
    return { kind: 'sub', size };
  }
  if (op.kind0 !== OP_MEM || !plainMem(op)) return undefined;
  if ((name === 'alu_inc' || name === 'alu_dec') && op.nops === 1) {
    const dec = name === 'alu_dec';
    // CF is kept (V32: the memory access uses the other temporaries).
    m.test(known, 2);
    c.set(m.V32);
    m.ea(op, e);
    m.load(size, s, k); c.set(m.A);
    c.i64(1, 0).set(m.B);
    m.arith(size, dec ? W.i64Sub : W.i64Add, dec ? W.i32Sub : W.i32Add);
    m.store(size, s, k, () => { c.get(r); toReg(); });
    m.recordOf(dec ? LF_DEC : LF_INC, size, d, sr, r, () => c.get(m.V32));
    m.stopCheck(e, k);
    return { kind: 'result', size };
  }
  const alu = ALU[name];
  if (alu === undefined || !alu.writes || op.nops !== 2) return undefined;
  if (!((op.kind1 === OP_GPR && op.reg1 < 16) || op.kind1 === OP_IMM)) return undefined;
  if (op.kind1 === OP_GPR) m.reg(op.reg1); else c.i64(op.imm | 0, op.immHi | 0);
  c.set(m.B);
  m.ea(op, e);
  m.load(size, s, k); c.set(m.A);
  const kind = alu.kind;
  m.arith(size, alu.o64, alu.o32);
  // The record only once the store has not faulted.
  m.store(size, s, k, () => { c.get(r); toReg(); });
  m.record(kind, size);
  m.stopCheck(e, k);
  return { kind, size };
}

/**
 * Byte and word forms (fast.ts aluSmall and movMem at sizes 1 and 2):
 * operands travel zero-extended, a register keeps the bits above the size.
 * MOV between registers, memory and immediates; ADD/SUB/CMP/AND/OR/XOR/TEST
 * with register, immediate and memory operands (read-modify-write on memory). Registers are the low byte
 * or word of GPR 0-15 (AH-BH decode as 16-19 and take their handler).
 */
function lowerSmall(m: Emitter, op: Op, name: string, size: 1 | 2, s: number, e: number, k: number): Known | 'keep' | undefined {
  const c = m.c;
  const mask = size === 1 ? 0xff : 0xffff;
  const k0 = op.kind0, k1 = op.kind1;
  const reg0 = k0 === OP_GPR && op.reg0 < 16, reg1 = k1 === OP_GPR && op.reg1 < 16;
  const mem0 = k0 === OP_MEM && plainMem(op), mem1 = k1 === OP_MEM && plainMem(op);
  const writeReg = (r: number, value: () => void): void => {
    m.setReg(r, () => { m.reg(r); c.i64n(~mask).op(W.i64And); value(); c.op(W.i64ExtendI32U).op(W.i64Or); });
  };
  /** Operand `which` (0 or 1) as an i32 zero-extended value on the stack; memory loads go through EA (already computed). */
  const value = (which: number): void => {
    const kind = which === 0 ? k0 : k1;
    if (kind === OP_GPR) { m.reg(which === 0 ? op.reg0 : op.reg1); c.op(W.i32WrapI64).i32(mask).op(W.i32And); }
    else if (kind === OP_IMM) c.i32(op.imm & mask);
    else { m.load(size, s, k); c.op(W.i32WrapI64); }
  };
  if (name === 'mov_mov') {
    if (reg0 && (reg1 || k1 === OP_IMM)) { writeReg(op.reg0, () => value(1)); return 'keep'; }
    // (A MOV keeps a known flag record: the temporary is not one of its locals.)
    if (reg0 && mem1) { m.ea(op, e); value(1); c.set(m.V32); writeReg(op.reg0, () => c.get(m.V32)); m.stopCheck(e, k); return 'keep'; }
    if (mem0 && (reg1 || k1 === OP_IMM)) {
      m.ea(op, e);
      m.store(size, s, k, () => { value(1); c.op(W.i64ExtendI32U); });
      m.stopCheck(e, k);
      return 'keep';
    }
    return undefined;
  }
  const alu = ALU[name];
  if (alu === undefined) return undefined;
  const { writes, kind } = alu;
  // Operand shapes: r, r/imm/[m]; or [m], r/imm (the memory operand read first; written back by all but CMP and TEST).
  if (!((reg0 && (reg1 || k1 === OP_IMM || mem1)) || (mem0 && (reg1 || k1 === OP_IMM)))) return undefined;
  const memory = mem0 || mem1;
  if (memory) m.ea(op, e);
  value(0); c.set(m.D4);
  value(1); c.set(m.S4);
  c.get(m.D4).get(m.S4).op(alu.o32).i32(mask).op(W.i32And).set(m.R4);
  // The record only once a memory destination's store has not faulted.
  if (writes && mem0) {
    m.storeAfterRead(size, s, k, () => c.get(m.R4).op(W.i64ExtendI32U));
  } else if (writes) writeReg(op.reg0, () => c.get(m.R4));
  m.recordOf(kind === 'add' ? LF_ADD : kind === 'sub' ? LF_SUB : LF_LOGIC, size, kind === 'logic' ? -1 : m.D4, kind === 'logic' ? -1 : m.S4, m.R4, 0);
  // Conditions read the operands shifted up so the size's sign bit is bit 31 (the i32 comparisons then hold).
  const sh = 32 - 8 * size;
  for (const l of [m.D4, m.S4, m.R4]) c.get(l).i32(sh).op(W.i32Shl).set(l);
  if (memory) m.stopCheck(e, k);
  return { kind, size };
}

