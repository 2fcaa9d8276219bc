/**
 * The decoded-instruction record and the numbers it holds.
 *
 * One record is allocated by the caller and refilled by every decode: all
 * fields are small integers set in the constructor, so V8 keeps one hidden
 * class and stores them unboxed. 64-bit quantities travel as int32 halves
 * (lo, hi); unsigned value = (lo >>> 0) + hi * 2**32.
 */

/** Decoding mode: the default operand/address size of the code segment (CS.L, CS.D). */
export const MODE_16 = 0; // real mode, virtual-8086, 16-bit protected mode
export const MODE_32 = 1; // 32-bit protected mode, compatibility mode with CS.D=1
export const MODE_64 = 2; // 64-bit mode (CS.L=1)
export type DecodeMode = typeof MODE_16 | typeof MODE_32 | typeof MODE_64;

/** Outcome of a decode. */
export const STATUS_OK = 0;
/** Invalid or undefined encoding: the CPU raises #UD. */
export const STATUS_INVALID = 1;
/** Longer than 15 bytes: #GP(0) (SDM Vol. 2A, 2.3.11 "Instruction Length"). */
export const STATUS_TOO_LONG = 2;
/** A VEX-encoded (C4/C5) instruction: valid x86, not implemented here yet. */
export const STATUS_VEX = 3;
/** An EVEX-encoded (62, AVX-512) instruction: valid x86, not implemented here. */
export const STATUS_EVEX = 4;
/** The instruction runs past the end of the given byte window: fetch more and decode again. */
export const STATUS_TRUNCATED = 5;
export const STATUS_NAMES = ['ok', 'invalid', 'too-long', 'vex-not-supported', 'evex-not-supported', 'truncated'] as const;

/** Resolved operand kinds (Instruction.opKind). */
export const OP_NONE = 0;
/** General-purpose register: opReg 0-15; 16-19 are AH, CH, DH, BH (r/m8 without REX). */
export const OP_GPR = 1;
/** The instruction's memory operand: Instruction.base/index/scale/disp/segment. */
export const OP_MEM = 2;
/** Immediate in imm/immHi (sign- or zero-extended as the operand notation says). */
export const OP_IMM = 3;
/** Second immediate (ENTER's nesting level), in imm2. */
export const OP_IMM2 = 4;
/** Branch displacement in imm/immHi, relative to the next instruction. */
export const OP_REL = 5;
/** Segment register: opReg 0-5 = ES, CS, SS, DS, FS, GS. */
export const OP_SEG = 6;
/** Control register CRn (opReg 0-15). */
export const OP_CR = 7;
/** Debug register DRn (opReg 0-15). */
export const OP_DR = 8;
/** XMM register (opReg 0-15). */
export const OP_XMM = 9;
/** MMX register (opReg 0-7). */
export const OP_MMX = 10;
/** x87 stack register ST(i) (opReg 0-7). */
export const OP_ST = 11;
/** Far pointer immediate: offset in imm, selector in imm2. */
export const OP_FAR = 12;
/** String source: segment:[rSI] (segment override applies), address size from asize. */
export const OP_STR_SRC = 13;
/** String destination: ES:[rDI] (no override, SDM Vol. 1, 3.7.5). */
export const OP_STR_DST = 14;
export const OP_KIND_NAMES = ['none', 'gpr', 'mem', 'imm', 'imm2', 'rel', 'seg', 'cr', 'dr', 'xmm', 'mmx', 'st', 'far', 'str-src', 'str-dst'] as const;

/** Segment register numbers (the Sreg encoding, SDM Vol. 2A, Table 3-6). */
export const SEG_ES = 0;
export const SEG_CS = 1;
export const SEG_SS = 2;
export const SEG_DS = 3;
export const SEG_FS = 4;
export const SEG_GS = 5;

/** Memory-operand base for RIP-relative addressing (64-bit mode, mod=00 r/m=101). */
export const BASE_RIP = 16;
/** No base or index register. */
export const REG_NONE = -1;
/** First of the four legacy high-byte registers AH, CH, DH, BH in OP_GPR operands. */
export const REG_AH = 16;

/** Prefix bits (Instruction.prefixes). */
export const PFX_LOCK = 0x1; // F0
export const PFX_REP = 0x2; // F3 (REP/REPE), the last of F2/F3
export const PFX_REPNE = 0x4; // F2 (REPNE), the last of F2/F3
export const PFX_OPSIZE = 0x8; // 66
export const PFX_ADDRSIZE = 0x10; // 67
export const PFX_REX = 0x20; // a REX prefix that counts (the last byte before the opcode)
export const PFX_SEG = 0x40; // an effective segment override (not CS/DS/ES/SS in 64-bit mode)
export const PFX_REX_W = 0x100;
export const PFX_REX_R = 0x200;
export const PFX_REX_X = 0x400;
export const PFX_REX_B = 0x800;

/** Maximum instruction length (SDM Vol. 2A, 2.3.11). */
export const MAX_INSN_LENGTH = 15;

export const MAX_OPERANDS = 4;

export class Instruction {
  /** STATUS_*. Fields below are meaningful when status is STATUS_OK. */
  status = 0;
  /** Bytes consumed (for non-OK statuses: bytes examined so far). */
  length = 0;
  /** Index into FORMS: mnemonic, operand notation, flags, CPUID gate, control-flow class. */
  form = -1;
  /** Index into HANDLER_NAMES. */
  handler = -1;
  /** DecodeMode the instruction was decoded in. */
  mode = 0;
  /** Operand-size attribute in bytes: 2, 4 or 8. */
  osize = 4;
  /** Address-size attribute in bytes: 2, 4 or 8. */
  asize = 8;
  /** PFX_* bits. */
  prefixes = 0;
  /** The counting REX byte (0x40-0x4F), or 0. */
  rex = 0;
  /** Opcode map (0: one-byte, 1: 0F, 2: 0F 38, 3: 0F 3A) and opcode byte. */
  map = 0;
  opcode = 0;
  /** Raw ModRM byte, or -1; reg and rm with their REX extensions. */
  modrm = -1;
  reg = 0;
  rm = 0;
  /** Memory operand (when an operand is OP_MEM): effective address = base + (index << scale) + disp, modulo the address size. */
  segment = SEG_DS;
  base = REG_NONE;
  index = REG_NONE;
  scale = 0;
  disp = 0;
  dispHi = 0;
  /** Displacement bytes encoded (0, 1, 2, 4; moffs: 2, 4, 8). */
  dispBytes = 0;
  /** First immediate / branch displacement / far offset (lo, hi). */
  imm = 0;
  immHi = 0;
  /** Second immediate (ENTER level, far selector). */
  imm2 = 0;
  /**
   * Operand count and, per operand, OP_* kind, register number and size in
   * bytes (0: unsized). Entries at and past nops are not cleared, except
   * opKind[nops] = OP_NONE.
   */
  nops = 0;
  readonly opKind = new Int32Array(MAX_OPERANDS);
  readonly opReg = new Int32Array(MAX_OPERANDS);
  readonly opSize = new Int32Array(MAX_OPERANDS);
}
