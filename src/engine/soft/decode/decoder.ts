/**
 * x86 instruction decoder, driven by the dispatch arrays compiled from
 * TABLE (forms.ts). Decodes one instruction from a byte window into a
 * caller-owned Instruction record without allocating.
 *
 * Prefix, REX, ModRM/SIB and immediate rules: SDM Vol. 2A, chapter 2.
 */
import {
  A_A, A_C, A_D, A_E, A_FIXGPR, A_FIXSEG, A_G, A_I, A_J, A_M, A_N, A_O, A_ONE, A_P, A_Q, A_R, A_S, A_ST0,
  A_STI, A_U, A_V, A_W, A_X, A_XMM0, A_Y, A_Z, COMPILED, F_F64, F_D64, F_I64, F_LOCK, F_MODREG, F_MODRM,
  F_O64, F_PFX66, S_A, S_B, S_BS, S_D, S_NONE, S_P, S_Q, S_QO, S_S, S_SD, S_SS, S_T, S_V, S_W, S_X, S_Y, S_Z,
  SLOT_SUBTABLE,
} from './forms.js';
import {
  BASE_RIP, type DecodeMode, type Instruction, MAX_INSN_LENGTH, MODE_16, MODE_64, OP_CR, OP_DR, OP_FAR, OP_GPR,
  OP_IMM, OP_IMM2, OP_MEM, OP_MMX, OP_NONE, OP_REL, OP_SEG, OP_ST, OP_STR_DST, OP_STR_SRC, OP_XMM, PFX_ADDRSIZE,
  PFX_LOCK, PFX_OPSIZE, PFX_REP, PFX_REPNE, PFX_REX, PFX_REX_B, PFX_REX_R, PFX_REX_W, PFX_REX_X, PFX_SEG, REG_AH,
  REG_NONE, SEG_DS, SEG_ES, SEG_FS, SEG_SS, STATUS_EVEX, STATUS_INVALID, STATUS_OK, STATUS_TOO_LONG,
  STATUS_TRUNCATED, STATUS_VEX,
} from './instruction.js';

const { slotForm, slotModrm, slotIndex, subtable, formFlags, formOps, formHandler, formAlt64, xchg90 } = COMPILED;

/** 16-bit ModRM r/m (SDM Vol. 2A, Table 2-1): base and index register numbers. */
const RM16_BASE = Int8Array.of(3, 3, 5, 5, 6, 7, 5, 3); // BX BX BP BP SI DI BP BX
const RM16_INDEX = Int8Array.of(6, 7, 6, 7, -1, -1, -1, -1); // SI DI SI DI - - - -

function stop(out: Instruction, status: number, length: number): number {
  out.status = status;
  out.length = length;
  return status;
}

/** Past the window or past 15 bytes: which one. */
function outOfBytes(out: Instruction, p: number, start: number): number {
  return p - start >= MAX_INSN_LENGTH ? stop(out, STATUS_TOO_LONG, MAX_INSN_LENGTH) : stop(out, STATUS_TRUNCATED, p - start);
}

/**
 * Decodes the instruction starting at `code[start]` in `mode`; bytes at and
 * after `end` are not available (the window ends at a page the engine has not
 * translated, or the end of the buffer). Fills `out` and returns out.status:
 * STATUS_TRUNCATED asks for a longer window (then decode again; a real CPU
 * faults on the next page only if the instruction reaches it).
 */
export function decode(out: Instruction, code: Uint8Array, start: number, end: number, mode: DecodeMode): number {
  const lim = Math.min(end, code.length, start + MAX_INSN_LENGTH);
  const mode64 = mode === MODE_64;
  let p = start;
  let prefixes = 0;
  let rex = 0;
  let seg = -1;
  let b = 0;

  // Legacy prefixes in any order, then at most one REX that counts: a REX
  // followed by anything but the opcode is ignored (SDM Vol. 2A, 2.2.1).
  for (;;) {
    if (p >= lim) return outOfBytes(out, p, start);
    b = code[p++] ?? 0;
    switch (b) {
      case 0xf0: prefixes |= PFX_LOCK; rex = 0; continue;
      case 0xf2: prefixes = (prefixes & ~PFX_REP) | PFX_REPNE; rex = 0; continue;
      case 0xf3: prefixes = (prefixes & ~PFX_REPNE) | PFX_REP; rex = 0; continue;
      case 0x66: prefixes |= PFX_OPSIZE; rex = 0; continue;
      case 0x67: prefixes |= PFX_ADDRSIZE; rex = 0; continue;
      case 0x26: case 0x2e: case 0x36: case 0x3e: seg = (b >> 3) & 3; rex = 0; continue; // ES CS SS DS
      case 0x64: seg = SEG_FS; rex = 0; continue;
      case 0x65: seg = SEG_FS + 1; rex = 0; continue;
    }
    if (mode64 && (b & 0xf0) === 0x40) { rex = b; continue; }
    break;
  }
  if (rex !== 0) {
    prefixes |= PFX_REX | (rex & 8 ? PFX_REX_W : 0) | (rex & 4 ? PFX_REX_R : 0) | (rex & 2 ? PFX_REX_X : 0) | (rex & 1 ? PFX_REX_B : 0);
  }

  let map = 0;
  if (b === 0x0f) {
    if (p >= lim) return outOfBytes(out, p, start);
    b = code[p++] ?? 0;
    map = 1;
    if (b === 0x38 || b === 0x3a) {
      map = b === 0x38 ? 2 : 3;
      if (p >= lim) return outOfBytes(out, p, start);
      b = code[p++] ?? 0;
    }
  } else if (b === 0xc4 || b === 0xc5 || b === 0x62 || b === 0x8f) {
    // VEX (C4/C5), EVEX (62) and XOP (8F) reuse LES/LDS/BOUND/POP Ev: outside
    // 64-bit mode the next byte's mod (reg for XOP) tells them apart.
    if (p >= lim) return outOfBytes(out, p, start);
    const next = code[p] ?? 0;
    if (b === 0x8f) {
      if ((next & 0x38) !== 0) return stop(out, STATUS_INVALID, p - start); // XOP: AMD-only, absent on current CPUs
    } else if (mode64 || next >= 0xc0) {
      // SDM Vol. 2A, 2.3.2: a VEX after 66, F2, F3, LOCK or REX is #UD.
      if (rex !== 0 || (prefixes & (PFX_LOCK | PFX_OPSIZE | PFX_REP | PFX_REPNE)) !== 0) return stop(out, STATUS_INVALID, p - start);
      return stop(out, b === 0x62 ? STATUS_EVEX : STATUS_VEX, p - start);
    }
  }

  const slot = (map << 8) | b;
  let modrm = -1;
  if (slotModrm[slot] === 1) {
    if (p >= lim) return outOfBytes(out, p, start);
    modrm = code[p++] ?? 0;
  }
  let form = slotForm[slot] ?? -1;
  if (form === SLOT_SUBTABLE) {
    const k = slot * 5;
    const pfx = prefixes & PFX_REP ? 2 : prefixes & PFX_REPNE ? 3 : prefixes & PFX_OPSIZE ? 1 : 0;
    form = subtable[(slotIndex[k] ?? 0) + pfx * (slotIndex[k + 1] ?? 0) + ((modrm >> 3) & 7) * (slotIndex[k + 2] ?? 0) +
      (modrm >= 0xc0 ? 1 : 0) * (slotIndex[k + 3] ?? 0) + (modrm & 7) * (slotIndex[k + 4] ?? 0)] ?? -1;
  }
  if (slot === 0x90 && (rex & 1) !== 0) form = xchg90;
  if (form < 0) return stop(out, STATUS_INVALID, p - start);
  let flags = formFlags[form] ?? 0;
  if (mode64) {
    if (flags & F_I64) {
      form = formAlt64[form] ?? -1;
      if (form < 0) return stop(out, STATUS_INVALID, p - start);
      flags = formFlags[form] ?? 0;
    }
  } else if (flags & F_O64) {
    return stop(out, STATUS_INVALID, p - start);
  }
  // LOCK only on lockable forms with a memory destination (SDM Vol. 2A, "LOCK").
  if ((prefixes & PFX_LOCK) !== 0 && ((flags & F_LOCK) === 0 || modrm >= 0xc0)) return stop(out, STATUS_INVALID, p - start);

  // Operand size (SDM Vol. 1, 3.6; 64-bit mode: Vol. 1, 3.6.1 Table 3-4).
  const opsizePfx = (prefixes & PFX_OPSIZE) !== 0 && (flags & F_PFX66) === 0;
  let osize: number;
  if (mode64) {
    if (flags & F_F64) osize = 8;
    else if (rex & 8) osize = 8;
    else if (opsizePfx) osize = 2;
    else osize = flags & F_D64 ? 8 : 4;
  } else {
    osize = (mode === MODE_16) !== opsizePfx ? 2 : 4;
  }
  const addrPfx = (prefixes & PFX_ADDRSIZE) !== 0;
  const asize = mode64 ? (addrPfx ? 4 : 8) : (mode === MODE_16) !== addrPfx ? 2 : 4;

  // Segment overrides: in 64-bit mode only FS and GS count (SDM Vol. 1, 3.3.7.1).
  if (seg >= 0) {
    if (mode64 && seg < SEG_FS) seg = -1;
    else prefixes |= PFX_SEG;
  }

  // ModRM, SIB, displacement.
  let reg = 0;
  let rm = 0;
  let base = REG_NONE;
  let index = REG_NONE;
  let scale = 0;
  let disp = 0;
  let dispHi = 0;
  let dispBytes = 0;
  let memSeg = SEG_DS;
  let isMem = false;
  if (flags & F_MODRM) {
    const mod = modrm >> 6;
    reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
    rm = modrm & 7;
    if (mod === 3 || (flags & F_MODREG) !== 0) {
      rm |= (rex & 1) << 3;
    } else {
      isMem = true;
      if (asize === 2) {
        base = RM16_BASE[rm] ?? REG_NONE;
        index = RM16_INDEX[rm] ?? REG_NONE;
        if (rm === 2 || rm === 3 || (rm === 6 && mod !== 0)) memSeg = SEG_SS;
        dispBytes = mod === 1 ? 1 : mod === 2 || (mod === 0 && rm === 6) ? 2 : 0;
        if (mod === 0 && rm === 6) {
          base = REG_NONE;
          if (p + 2 > lim) return outOfBytes(out, p + 2, start);
          disp = (code[p] ?? 0) | ((code[p + 1] ?? 0) << 8);
          p += 2;
        } else if (mod === 1) {
          if (p + 1 > lim) return outOfBytes(out, p + 1, start);
          disp = ((code[p++] ?? 0) << 24) >> 24;
        } else if (mod === 2) {
          if (p + 2 > lim) return outOfBytes(out, p + 2, start);
          disp = (((code[p] ?? 0) | ((code[p + 1] ?? 0) << 8)) << 16) >> 16;
          p += 2;
        }
      } else {
        dispBytes = mod === 1 ? 1 : mod === 2 ? 4 : 0;
        if (rm === 4) {
          if (p >= lim) return outOfBytes(out, p + 1, start);
          const sib = code[p++] ?? 0;
          scale = sib >> 6;
          index = ((sib >> 3) & 7) | ((rex & 2) << 2);
          if (index === 4) index = REG_NONE; // SIB.index=100 without REX.X: no index
          const sibBase = sib & 7;
          if (sibBase === 5 && mod === 0) {
            dispBytes = 4; // [index*scale + disp32], no base (Table 2-3 note 1)
          } else {
            base = sibBase | ((rex & 1) << 3);
          }
        } else if (rm === 5 && mod === 0) {
          dispBytes = 4;
          if (mode64) base = BASE_RIP; // RIP-relative (SDM Vol. 2A, 2.2.1.6); EIP-relative with 67h
        } else {
          base = rm | ((rex & 1) << 3);
        }
        if (base === 4 || base === 5) memSeg = SEG_SS;
        if (dispBytes === 1) {
          if (p + 1 > lim) return outOfBytes(out, p + 1, start);
          disp = ((code[p++] ?? 0) << 24) >> 24;
        } else if (dispBytes === 4) {
          if (p + 4 > lim) return outOfBytes(out, p + 4, start);
          disp = (code[p] ?? 0) | ((code[p + 1] ?? 0) << 8) | ((code[p + 2] ?? 0) << 16) | ((code[p + 3] ?? 0) << 24);
          p += 4;
        }
      }
      dispHi = disp >> 31;
    }
  }

  // Operands, in table order; immediates follow the displacement in that order.
  let immCount = 0;
  let imm = 0;
  let immHi = 0;
  let imm2 = 0;
  let nops = 0;
  const kinds = out.opKind;
  const regs = out.opReg;
  const sizes = out.opSize;
  const opBase = form * 4;
  for (let i = 0; i < 4; i++) {
    const d = formOps[opBase + i] ?? 0;
    if (d === 0) break;
    nops++;
    const addr = d >>> 16;
    const sc = (d >>> 8) & 0xff;
    let size: number;
    switch (sc) {
      case S_NONE: size = 0; break;
      case S_B: case S_BS: size = 1; break;
      case S_W: size = 2; break;
      case S_D: case S_SS: size = 4; break;
      case S_Q: case S_SD: size = 8; break;
      case S_V: size = osize; break;
      case S_Z: size = osize === 2 ? 2 : 4; break;
      case S_Y: size = osize === 8 ? 8 : 4; break;
      case S_X: size = 16; break;
      case S_T: size = 10; break;
      case S_P: size = 2 + osize; break;
      case S_S: size = mode64 ? 10 : 6; break;
      case S_A: size = 2 * osize; break;
      case S_QO: size = rex & 8 ? 16 : 8; break;
      default: size = 0;
    }
    let kind = OP_NONE;
    let r = 0;
    switch (addr) {
      case A_E: case A_M: case A_R:
        if (isMem) { kind = OP_MEM; }
        else { kind = OP_GPR; r = size === 1 && rex === 0 && rm >= 4 && rm < 8 ? REG_AH + rm - 4 : rm; }
        break;
      case A_G:
        kind = OP_GPR;
        r = size === 1 && rex === 0 && reg >= 4 && reg < 8 ? REG_AH + reg - 4 : reg;
        break;
      case A_Z:
        kind = OP_GPR;
        r = (b & 7) | ((rex & 1) << 3);
        if (size === 1 && rex === 0 && r >= 4) r = REG_AH + r - 4;
        break;
      case A_FIXGPR: kind = OP_GPR; r = d & 0xff; break;
      case A_FIXSEG: kind = OP_SEG; r = d & 0xff; break;
      case A_S:
        kind = OP_SEG;
        r = reg & 7; // REX.R does not extend Sreg
        if (r > 5) return stop(out, STATUS_INVALID, p - start);
        break;
      case A_C: kind = OP_CR; r = reg; break;
      case A_D: kind = OP_DR; r = reg; break;
      case A_V: kind = OP_XMM; r = reg; break;
      case A_W: case A_U:
        if (isMem) kind = OP_MEM; else { kind = OP_XMM; r = rm; }
        break;
      case A_P: kind = OP_MMX; r = reg & 7; break;
      case A_Q: case A_N:
        if (isMem) kind = OP_MEM; else { kind = OP_MMX; r = rm & 7; }
        break;
      case A_ST0: kind = OP_ST; r = 0; break;
      case A_STI: kind = OP_ST; r = rm & 7; break;
      case A_XMM0: kind = OP_XMM; r = 0; break;
      case A_ONE: kind = OP_IMM; imm = 1; immHi = 0; immCount++; break;
      case A_X: kind = OP_STR_SRC; memSeg = SEG_DS; break;
      case A_Y: kind = OP_STR_DST; break;
      case A_O: {
        kind = OP_MEM;
        isMem = true;
        if (p + asize > lim) return outOfBytes(out, p + asize, start);
        if (asize === 2) disp = (code[p] ?? 0) | ((code[p + 1] ?? 0) << 8);
        else disp = (code[p] ?? 0) | ((code[p + 1] ?? 0) << 8) | ((code[p + 2] ?? 0) << 16) | ((code[p + 3] ?? 0) << 24);
        dispHi = asize === 8 ? (code[p + 4] ?? 0) | ((code[p + 5] ?? 0) << 8) | ((code[p + 6] ?? 0) << 16) | ((code[p + 7] ?? 0) << 24) : 0;
        p += asize;
        dispBytes = asize;
        break;
      }
      case A_I: case A_J: case A_A: {
        // Width: Ib/Ibs/Jb 1, Iw 2, Iz/Jz 2 or 4, Iv 2/4/8; far pointers add a selector.
        const n = sc === S_B || sc === S_BS ? 1 : sc === S_W ? 2 : sc === S_V ? osize : osize === 2 ? 2 : 4;
        const total = addr === A_A ? n + 2 : n;
        if (p + total > lim) return outOfBytes(out, p + total, start);
        let lo: number;
        let hi: number;
        if (n === 1) {
          lo = code[p] ?? 0;
          if (sc === S_BS || addr === A_J) lo = (lo << 24) >> 24;
          hi = sc === S_BS || addr === A_J ? lo >> 31 : 0;
        } else if (n === 2) {
          lo = (code[p] ?? 0) | ((code[p + 1] ?? 0) << 8);
          if (sc !== S_W && addr !== A_A) lo = (lo << 16) >> 16; // far offsets are unsigned
          hi = lo >> 31;
        } else {
          lo = (code[p] ?? 0) | ((code[p + 1] ?? 0) << 8) | ((code[p + 2] ?? 0) << 16) | ((code[p + 3] ?? 0) << 24);
          if (n === 8) hi = (code[p + 4] ?? 0) | ((code[p + 5] ?? 0) << 8) | ((code[p + 6] ?? 0) << 16) | ((code[p + 7] ?? 0) << 24);
          else hi = sc === S_V || addr === A_A ? 0 : lo >> 31; // Iv imm32 (mov r32) is not sign-extended
        }
        p += n;
        if (addr === A_A) {
          kind = OP_FAR;
          imm = lo; immHi = 0;
          imm2 = (code[p] ?? 0) | ((code[p + 1] ?? 0) << 8);
          p += 2;
        } else if (addr === A_J) {
          kind = OP_REL; imm = lo; immHi = hi;
        } else if (immCount === 0) {
          kind = OP_IMM; imm = lo; immHi = hi;
        } else {
          kind = OP_IMM2; imm2 = lo;
        }
        immCount++;
        size = n;
        break;
      }
      default:
        return stop(out, STATUS_INVALID, p - start);
    }
    kinds[i] = kind;
    regs[i] = r;
    sizes[i] = size;
  }
  if (nops < 4) kinds[nops] = OP_NONE; // entries past nops are stale; this one terminates the list

  if (seg >= 0) memSeg = seg;
  out.status = STATUS_OK;
  out.length = p - start;
  out.form = form;
  out.handler = formHandler[form] ?? -1;
  out.mode = mode;
  out.osize = osize;
  out.asize = asize;
  out.prefixes = prefixes;
  out.rex = rex;
  out.map = map;
  out.opcode = b;
  out.modrm = modrm;
  out.reg = reg;
  out.rm = rm;
  out.segment = memSeg;
  out.base = base;
  out.index = index;
  out.scale = scale;
  out.disp = disp;
  out.dispHi = dispHi;
  out.dispBytes = dispBytes;
  out.imm = imm;
  out.immHi = immHi;
  out.imm2 = imm2;
  out.nops = nops;
  return STATUS_OK;
}

/** Segment of a string destination operand: always ES (no override). */
export const STRING_DEST_SEGMENT = SEG_ES;
