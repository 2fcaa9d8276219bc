/**
 * More forms lowered through the Emitter (lower.ts takes the common ALU,
 * move, stack and branch forms): sign extensions of RAX (CBW/CWDE/CDQE,
 * CWD/CDQ/CQO), SETcc to memory, XCHG and CMPXCHG with a memory operand
 * (the lock-protected exchanges of stdio and malloc), INC/DEC of byte and
 * word registers, BT with an immediate or register bit offset. Each returns what `lower` does, or undefined to leave the
 * instruction to its handler.
 */
import { OP_GPR, OP_IMM, OP_MEM } from '../decode/index.js';
import type { Op } from '../op.js';
import { FLAG_CF, LF_DEC, LF_INC, RAX, RDX } from '../state.js';
import { Op as W } from './encode.js';
import { type Emitter, IMPORT_CARRY_OVERFLOW, type Known, plainMem } from './emitter.js';

export function lowerMisc(m: Emitter, op: Op, name: string, s: number, e: number, k: number, known: Known | undefined): Known | 'keep' | 'forget' | undefined {
  const c = m.c;
  if (name === 'mov_cbw') {
    // RAX from the half below it, sign-extended: AX = AL, EAX = AX (upper half cleared), RAX = EAX.
    const o = op.osize;
    m.setReg(RAX, () => {
      if (o === 2) { m.reg(RAX); c.i64n(-0x10000).op(W.i64And); m.reg(RAX); c.op(W.i64Extend8S).i64(0xffff, 0).op(W.i64And).op(W.i64Or); }
      else if (o === 4) { m.reg(RAX); c.op(W.i64Extend16S).i64(-1, 0).op(W.i64And); }
      else { m.reg(RAX); c.op(W.i64Extend32S); }
    });
    return 'keep';
  }
  if (name === 'mov_cwd') {
    // RDX (DX, EDX) from the sign of RAX (AX, EAX).
    const o = op.osize;
    m.setReg(RDX, () => {
      if (o === 2) { m.reg(RDX); c.i64n(-0x10000).op(W.i64And); m.reg(RAX); c.op(W.i64Extend16S).i64(16, 0).op(W.i64ShrS).i64(0xffff, 0).op(W.i64And).op(W.i64Or); }
      else if (o === 4) { m.reg(RAX); c.op(W.i64Extend32S).i64(32, 0).op(W.i64ShrS).i64(-1, 0).op(W.i64And); }
      else { m.reg(RAX); c.i64(63, 0).op(W.i64ShrS); }
    });
    return 'keep';
  }
  if (name === 'mov_setcc' && op.kind0 === OP_MEM && plainMem(op)) {
    m.test(known, op.opcode & 15);
    c.set(m.V32);
    m.ea(op, e);
    m.store(1, s, k, () => { c.get(m.V32).op(W.i64ExtendI32U); });
    m.stopCheck(e, k);
    return 'keep';
  }
  const size = op.size0;
  const wide = size === 4 || size === 8;
  const reg1 = op.kind1 === OP_GPR && op.reg1 < 16;
  const mem0 = op.kind0 === OP_MEM && plainMem(op);
  /** The low `size` bytes of the i64 on the stack (a 32-bit register write clears the upper half). */
  const fit = (): void => { if (size === 4) c.i64(-1, 0).op(W.i64And); };
  if (name === 'mov_xchg' && wide && reg1 && (mem0 || (op.kind0 === OP_GPR && op.reg0 < 16))) {
    m.reg(op.reg1); fit(); c.set(m.B);
    if (op.kind0 === OP_GPR) {
      m.reg(op.reg0); fit(); c.set(m.A);
      m.setReg(op.reg0, () => c.get(m.B));
      m.setReg(op.reg1, () => c.get(m.A));
      return 'keep';
    }
    // The memory's value first, then the register's stored there; the register only once both accesses are done.
    m.ea(op, e);
    m.load(size, s, k); c.set(m.A);
    // A stop the read asked for outlives the store's own access.
    c.get(m.STOP).set(m.V32);
    m.store(size, s, k, () => c.get(m.B));
    c.get(m.STOP).get(m.V32).op(W.i32Or).set(m.STOP);
    m.setReg(op.reg1, () => c.get(m.A));
    m.stopCheck(e, k);
    return 'keep';
  }
  if (name === 'alu_cmpxchg' && wide && reg1 && mem0) {
    // Compare RAX with the destination (flags of RAX - [m]); equal: [m] = source, else RAX = [m]. The memory is written
    // either way (a locked cycle writes back the value it read), and the flags and RAX change only once it has been.
    m.reg(RAX); fit(); c.set(m.A);
    m.ea(op, e);
    m.load(size, s, k); c.set(m.B);
    c.get(m.STOP).set(m.V32);
    m.store(size, s, k, () => { m.reg(op.reg1); c.get(m.B).get(m.A).get(m.B).op(W.i64Eq).op(W.select); });
    c.get(m.STOP).get(m.V32).op(W.i32Or).set(m.STOP);
    m.arith(size, W.i64Sub, W.i32Sub);
    c.get(m.A).get(m.B).op(W.i64Ne).open(W.if, 'differ');
    m.setReg(RAX, () => c.get(m.B));
    c.close('differ');
    m.record('sub', size);
    m.stopCheck(e, k);
    return { kind: 'sub', size };
  }
  if (name === 'bit_bt' && wide && (op.kind1 === OP_IMM || reg1) && (mem0 || (op.kind0 === OP_GPR && op.reg0 < 16)) &&
    !(mem0 && op.kind1 !== OP_IMM)) {
    // CF = the bit (offset mod the operand size; a register offset into memory addresses other bytes: the handler's);
    // the other flags stay as the record has them, which becomes an LF_CO record (cond.ts co).
    const bits = size * 8;
    if (op.kind1 === OP_IMM) c.i64(op.imm & (bits - 1), 0).set(m.B);
    else { m.reg(op.reg1); c.i64(bits - 1, 0).op(W.i64And).set(m.B); }
    if (mem0) { m.ea(op, e); m.load(size, s, k); } else m.reg(op.reg0);
    c.get(m.B).op(W.i64ShrU).op(W.i32WrapI64).i32(1).op(W.i32And).set(m.V32);
    c.get(m.ST).i32(FLAG_CF).get(m.V32).call(IMPORT_CARRY_OVERFLOW);
    if (mem0) m.stopCheck(e, k);
    return 'forget';
  }
  if ((name === 'alu_inc' || name === 'alu_dec') && op.nops === 1 && op.kind0 === OP_GPR && op.reg0 < 16 && (size === 1 || size === 2)) {
    // As the 32- and 64-bit forms (lower.ts), on the low byte or word; the bits above it are kept.
    const dec = name === 'alu_dec';
    const mask = size === 1 ? 0xff : 0xffff;
    m.test(known, 2);
    c.set(m.T);
    m.reg(op.reg0); c.op(W.i32WrapI64).i32(mask).op(W.i32And).tee(m.D4).i32(1).op(dec ? W.i32Sub : W.i32Add).i32(mask).op(W.i32And).set(m.R4);
    c.i32(1).set(m.S4);
    m.setReg(op.reg0, () => { m.reg(op.reg0); c.i64n(~mask).op(W.i64And).get(m.R4).op(W.i64ExtendI32U).op(W.i64Or); });
    m.recordOf(dec ? LF_DEC : LF_INC, size, m.D4, m.S4, m.R4, () => c.get(m.T));
    // Conditions read the operands shifted up so the size's sign bit is bit 31 (as lowerSmall leaves them).
    const sh = 32 - 8 * size;
    for (const l of [m.D4, m.S4, m.R4]) c.get(l).i32(sh).op(W.i32Shl).set(l);
    return { kind: 'result', size };
  }
  return undefined;
}
