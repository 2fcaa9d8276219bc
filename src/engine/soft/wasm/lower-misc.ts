/**
 * More forms lowered through the Emitter (lower.ts takes the common ALU,
 * move, stack and branch forms): sign extensions of RAX (CBW/CWDE/CDQE,
 * CWD/CDQ/CQO), SETcc to memory, XCHG and CMPXCHG with a memory operand
 * (the lock-protected exchanges of stdio and malloc), INC/DEC of byte and
 * word registers, BT with an immediate or register bit offset, MUL and DIV
 * at 32 and 64 bits, MOVS and STOS (glibc's and the kernel's short copies). Each returns what `lower` does, or undefined to leave the
 * instruction to its handler.
 */
import { OP_GPR, OP_IMM, OP_MEM, PFX_REP, PFX_REPNE } from '../decode/index.js';
import type { Op } from '../op.js';
import { FLAG_CF, FLAG_OF, LF_CO, LF_DEC, LF_INC, RAX, RCX, RDI, RDX, RSI, SEG_FS, SEG_GS } from '../state.js';
import { Op as W } from './encode.js';
import { type Emitter, IMPORT_CARRY_OVERFLOW, type Known, plainMem, S_DF } from './emitter.js';

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
  if ((name === 'str_movs' || name === 'str_stos') && op.asize === 8 && op.segment !== SEG_FS && op.segment !== SEG_GS) {
    const movs = name === 'str_movs';
    if (movs || op.size0 === 1) return strings(m, op, movs, s, e, k);
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
    m.storeAfterRead(size, s, k, () => c.get(m.B));
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
    m.storeAfterRead(size, s, k, () => { m.reg(op.reg1); c.get(m.B).get(m.A).get(m.B).op(W.i64Eq).op(W.select); });
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
  if ((name === 'mul_mul' || name === 'mul_div') && wide && op.nops === 1 && (mem0 || (op.kind0 === OP_GPR && op.reg0 < 16))) {
    // The source into B (zero-extended to the size).
    if (mem0) { m.ea(op, e); m.load(size, s, k); } else { m.reg(op.reg0); fit(); }
    c.set(m.B);
    const got = name === 'mul_mul' ? mul(m, size, m.B) : div(m, op, size, s, e, k);
    if (mem0) m.stopCheck(e, k);
    return got;
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

/**
 * MUL of RAX (EAX) by the i64 local `src`: RDX:RAX (EDX:EAX) = the
 * unsigned product; an LF_CO record of the low half, CF = OF = a non-zero
 * high half. The 64-bit high half is summed from the four 32-bit partial
 * products.
 */
function mul(m: Emitter, size: 4 | 8, src: number): Known {
  const c = m.c;
  const lo32 = (l: number): void => { c.get(l).i64(-1, 0).op(W.i64And); };
  const hi32 = (l: number): void => { c.get(l).i64(32, 0).op(W.i64ShrU); };
  m.reg(RAX);
  if (size === 4) {
    c.i64(-1, 0).op(W.i64And).get(src).op(W.i64Mul).set(m.A);
    lo32(m.A); c.set(m.R8);
    hi32(m.A); c.set(m.X);
  } else {
    c.set(m.A);
    c.get(m.A).get(src).op(W.i64Mul).set(m.R8);
    // a = a1:a0, b = b1:b0; mid = hi(a0 b0) + lo(a0 b1) + lo(a1 b0); high = a1 b1 + hi(a0 b1) + hi(a1 b0) + hi(mid).
    const [a0, a1, b0, b1] = [(): void => lo32(m.A), (): void => hi32(m.A), (): void => lo32(src), (): void => hi32(src)];
    a0(); b1(); c.op(W.i64Mul).set(m.D8);
    a1(); b0(); c.op(W.i64Mul).set(m.S8);
    a0(); b0(); c.op(W.i64Mul).i64(32, 0).op(W.i64ShrU);
    lo32(m.D8); c.op(W.i64Add); lo32(m.S8); c.op(W.i64Add).i64(32, 0).op(W.i64ShrU);
    a1(); b1(); c.op(W.i64Mul).op(W.i64Add);
    hi32(m.D8); c.op(W.i64Add); hi32(m.S8); c.op(W.i64Add).set(m.X);
  }
  m.setReg(RAX, () => c.get(m.R8));
  m.setReg(RDX, () => c.get(m.X));
  if (size === 4) c.get(m.R8).op(W.i32WrapI64).set(m.R4);
  const [r] = size === 8 ? [m.R8] : [m.R4];
  m.recordOf(LF_CO, size, -1, -1, r, () => { c.get(m.X).op(W.i64Eqz).op(W.i32Eqz).i32(FLAG_CF | FLAG_OF).op(W.i32Mul); });
  return { kind: 'result', size, co: true };
}

/**
 * DIV of RDX:RAX (EDX:EAX) by the i64 local B: the quotient in RAX, the
 * remainder in RDX; flags kept. A divisor of 0 or a quotient too large for
 * RAX (or, at 64 bits, any RDX but 0: a 128-bit dividend) goes to the
 * handler, which raises #DE or divides.
 */
function div(m: Emitter, op: Op, size: 4 | 8, s: number, e: number, k: number): 'keep' {
  const c = m.c;
  m.reg(RDX);
  if (size === 4) c.i64(-1, 0).op(W.i64And);
  c.set(m.X);
  c.get(m.B).op(W.i64Eqz).get(m.X);
  if (size === 4) c.get(m.B).op(W.i64GeU); else c.i64(0, 0).op(W.i64Ne);
  c.op(W.i32Or).open(W.if, 'rare');
  m.viaHandler(op, s, e, k);
  c.close('rare');
  // The dividend: EDX:EAX, or RAX alone.
  if (size === 4) { c.get(m.X).i64(32, 0).op(W.i64Shl); m.reg(RAX); c.i64(-1, 0).op(W.i64And).op(W.i64Or).set(m.A); } else { m.reg(RAX); c.set(m.A); }
  m.setReg(RAX, () => c.get(m.A).get(m.B).op(W.i64DivU));
  m.setReg(RDX, () => c.get(m.A).get(m.B).op(W.i64RemU));
  return 'keep';
}

/**
 * MOVS (any size) and STOS (bytes), with or without REP, 64-bit addresses:
 * with DF clear, at most 4,096 elements (the handler's yield point), and
 * source and destination each within one page the TLB maps, one
 * memory.copy or memory.fill; RSI and RDI move past them and RCX becomes 0.
 * A copy onto the bytes just after its source (which x86 repeats byte by
 * byte where memory.copy moves the whole), and every other case, is the
 * handler's.
 */
function strings(m: Emitter, op: Op, movs: boolean, s: number, e: number, k: number): 'keep' {
  const c = m.c;
  const size = op.size0;
  const rep = (op.prefixes & (PFX_REP | PFX_REPNE)) !== 0;
  // A: elements; B: bytes; FA: destination frame; V32: source frame.
  if (rep) m.reg(RCX); else c.i64(1, 0);
  c.set(m.A);
  c.get(m.A).op(W.i64Eqz).op(W.i32Eqz).open(W.if, 'some');
  c.get(m.ST).mem(W.i32Load, S_DF).get(m.A).i64(4096, 0).op(W.i64GtU).op(W.i32Or).open(W.if, 'rare');
  m.viaHandler(op, s, e, k);
  c.close('rare');
  c.get(m.A).i64(Math.log2(size), 0).op(W.i64Shl).set(m.B);
  m.reg(RDI); c.set(m.EA);
  m.rangeFrame(true, m.EA, m.B, m.FA);
  if (movs) {
    m.reg(RSI); c.set(m.X);
    m.rangeFrame(false, m.X, m.B, m.V32);
  }
  c.get(m.FA).i32(0).op(W.i32LtS);
  // (Unsigned: V32 - FA below B is a destination inside the source's bytes after its start.)
  if (movs) c.get(m.V32).i32(0).op(W.i32LtS).op(W.i32Or).get(m.FA).get(m.V32).op(W.i32Sub).get(m.B).op(W.i32WrapI64).op(W.i32LtU).get(m.FA).get(m.V32).op(W.i32Ne).op(W.i32And).op(W.i32Or);
  c.open(W.if, 'unmapped');
  m.viaHandler(op, s, e, k);
  c.close('unmapped');
  c.get(m.FA);
  if (movs) c.get(m.V32).get(m.B).op(W.i32WrapI64).memoryCopy();
  else { m.reg(RAX); c.op(W.i32WrapI64).get(m.B).op(W.i32WrapI64).memoryFill(); }
  m.setReg(RDI, () => c.get(m.EA).get(m.B).op(W.i64Add));
  if (movs) m.setReg(RSI, () => c.get(m.X).get(m.B).op(W.i64Add));
  if (rep) m.setReg(RCX, () => c.i64(0, 0));
  c.close('some');
  return 'keep';
}
