/**
 * Lazy status flags: CF, PF, AF, ZF, SF, OF derived from the last
 * flag-setting instruction's record (CpuState.lf*), exactly as the SDM
 * defines them for that instruction (Vol. 1, Appendix A "EFLAGS Cross-Reference").
 *
 * Undefined flags (SDM "undefined"), and what this CPU leaves in them:
 *   AND/OR/XOR/TEST: AF = 0.  Shifts/rotates by more than 1: OF as for a
 *   count of 1 computed from the last step (shift.ts).  MUL/IMUL: SF, ZF, PF
 *   from the low half of the result, AF = 0.  BSF/BSR/TZCNT-as-BSF with a
 *   non-zero source: CF, OF, SF, AF, PF from a LOGIC record of the result.
 *   DIV/IDIV: flags unchanged.
 */
import {
  type CpuState, FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF, LF_ADC, LF_ADD, LF_CO, LF_DEC, LF_INC, LF_LOGIC,
  LF_NONE, LF_SBB, LF_SUB, STATUS_FLAGS,
} from './state.js';

/** PF: set when the low byte of the result has an even number of 1 bits. */
const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i;
  b ^= b >> 4; b ^= b >> 2; b ^= b >> 1;
  PARITY[i] = (b & 1) === 0 ? 1 : 0;
}

/** Sign bit of a size-byte value held zero-extended (1, 2) or as int32 (4). */
function signOf(v: number, size: number): number {
  return (v >>> (size * 8 - 1)) & 1;
}

function unsignedOf(v: number, size: number): number {
  return size === 4 ? v >>> 0 : v;
}

export function getCF(s: CpuState): number {
  const size = s.lfSize;
  switch (s.lfOp) {
    case LF_NONE: return s.flagsBase & 1;
    case LF_ADD: case LF_ADC: {
      const cin = s.lfOp === LF_ADC ? s.lfAux : 0;
      if (size === 8) {
        const lo = (s.lfDst >>> 0) + (s.lfSrc >>> 0) + cin;
        return (s.lfDstHi >>> 0) + (s.lfSrcHi >>> 0) + (lo > 0xffffffff ? 1 : 0) > 0xffffffff ? 1 : 0;
      }
      return unsignedOf(s.lfDst, size) + unsignedOf(s.lfSrc, size) + cin > unsignedOf(size === 4 ? -1 : (1 << (size * 8)) - 1, size) ? 1 : 0;
    }
    case LF_SUB: case LF_SBB: {
      const bin = s.lfOp === LF_SBB ? s.lfAux : 0;
      if (size === 8) {
        const borrow = (s.lfDst >>> 0) < (s.lfSrc >>> 0) + bin ? 1 : 0;
        return (s.lfDstHi >>> 0) < (s.lfSrcHi >>> 0) + borrow ? 1 : 0;
      }
      return unsignedOf(s.lfDst, size) < unsignedOf(s.lfSrc, size) + bin ? 1 : 0;
    }
    case LF_LOGIC: return 0;
    case LF_INC: case LF_DEC: case LF_CO: return s.lfAux & FLAG_CF;
  }
  return 0;
}

export function getZF(s: CpuState): number {
  if (s.lfOp === LF_NONE) return (s.flagsBase >> 6) & 1;
  if (s.lfSize === 8) return (s.lfRes | s.lfResHi) === 0 ? 1 : 0;
  return s.lfRes === 0 ? 1 : 0;
}

export function getSF(s: CpuState): number {
  if (s.lfOp === LF_NONE) return (s.flagsBase >> 7) & 1;
  if (s.lfSize === 8) return s.lfResHi >>> 31;
  return signOf(s.lfRes, s.lfSize);
}

export function getPF(s: CpuState): number {
  if (s.lfOp === LF_NONE) return (s.flagsBase >> 2) & 1;
  return PARITY[s.lfRes & 0xff] ?? 0;
}

export function getAF(s: CpuState): number {
  switch (s.lfOp) {
    case LF_NONE: return (s.flagsBase >> 4) & 1;
    case LF_LOGIC: return 0;
    case LF_CO: return (s.lfAux >> 4) & 1;
    default: return ((s.lfDst ^ s.lfSrc ^ s.lfRes) >> 4) & 1;
  }
}

export function getOF(s: CpuState): number {
  const size = s.lfSize;
  switch (s.lfOp) {
    case LF_NONE: return (s.flagsBase >> 11) & 1;
    case LF_ADD: case LF_ADC: case LF_INC:
      if (size === 8) return (((s.lfDstHi ^ s.lfResHi) & (s.lfSrcHi ^ s.lfResHi)) >>> 31);
      return signOf((s.lfDst ^ s.lfRes) & (s.lfSrc ^ s.lfRes), size);
    case LF_SUB: case LF_SBB: case LF_DEC:
      if (size === 8) return (((s.lfDstHi ^ s.lfSrcHi) & (s.lfDstHi ^ s.lfResHi)) >>> 31);
      return signOf((s.lfDst ^ s.lfSrc) & (s.lfDst ^ s.lfRes), size);
    case LF_LOGIC: return 0;
    case LF_CO: return (s.lfAux >> 11) & 1;
  }
  return 0;
}

/** The status flags as RFLAGS bits. */
export function statusFlags(s: CpuState): number {
  if (s.lfOp === LF_NONE) return s.flagsBase & STATUS_FLAGS;
  return getCF(s) | (getPF(s) << 2) | (getAF(s) << 4) | (getZF(s) << 6) | (getSF(s) << 7) | (getOF(s) << 11);
}

export function getRflags(s: CpuState): number {
  return ((s.flagsBase & ~STATUS_FLAGS) | statusFlags(s)) >>> 0;
}

/** Makes flagsBase hold every flag (before an instruction changes single status bits). */
export function materialize(s: CpuState): void {
  if (s.lfOp !== LF_NONE) {
    s.flagsBase = getRflags(s);
    s.lfOp = LF_NONE;
  }
}

/** Sets the status flags in `mask` to `bits`, leaving the others. */
export function setStatus(s: CpuState, mask: number, bits: number): void {
  materialize(s);
  s.flagsBase = (s.flagsBase & ~mask) | (bits & mask);
}

/**
 * Sets only CF and/or OF (rotates, BT*, CLC/STC/CMC) without deriving the
 * other flags: the pending record becomes an LF_CO record with the same
 * result (so ZF, SF, PF stay derivable) and AF carried over.
 */
export function setCarryOverflow(s: CpuState, mask: number, bits: number): void {
  if (s.lfOp === LF_NONE) {
    s.flagsBase = (s.flagsBase & ~mask) | (bits & mask);
    return;
  }
  const keep = s.lfOp === LF_CO ? s.lfAux : ((mask & FLAG_CF) !== 0 ? 0 : getCF(s)) | (getAF(s) << 4) | ((mask & FLAG_OF) !== 0 ? 0 : getOF(s) << 11);
  s.lfAux = (keep & ~mask) | (bits & mask);
  s.lfOp = LF_CO;
}

/** Sign-extends a size-byte value held zero-extended to int32. */
function sx(v: number, size: number): number {
  return size === 1 ? (v << 24) >> 24 : size === 2 ? (v << 16) >> 16 : v | 0;
}

/**
 * Condition code cc (the low nibble of Jcc/SETcc/CMOVcc, SDM Vol. 1, Table
 * B-1) as 0 or 1. CMP and TEST records are answered without deriving flags.
 */
export function cond(s: CpuState, cc: number): boolean {
  const op = s.lfOp;
  if (op === LF_SUB && cc >= 2) {
    const size = s.lfSize;
    if (size === 8) {
      const dh = s.lfDstHi, sh = s.lfSrcHi, dl = s.lfDst >>> 0, sl = s.lfSrc >>> 0;
      switch (cc) {
        case 2: return (dh >>> 0) < (sh >>> 0) || (dh === sh && dl < sl);
        case 3: return !((dh >>> 0) < (sh >>> 0) || (dh === sh && dl < sl));
        case 4: return dh === sh && dl === sl;
        case 5: return !(dh === sh && dl === sl);
        case 6: return (dh >>> 0) < (sh >>> 0) || (dh === sh && dl <= sl);
        case 7: return !((dh >>> 0) < (sh >>> 0) || (dh === sh && dl <= sl));
        case 12: return dh < sh || (dh === sh && dl < sl);
        case 13: return !(dh < sh || (dh === sh && dl < sl));
        case 14: return dh < sh || (dh === sh && dl <= sl);
        case 15: return !(dh < sh || (dh === sh && dl <= sl));
      }
    } else {
      const d = s.lfDst, v = s.lfSrc;
      switch (cc) {
        case 2: return unsignedOf(d, size) < unsignedOf(v, size);
        case 3: return unsignedOf(d, size) >= unsignedOf(v, size);
        case 4: return d === v;
        case 5: return d !== v;
        case 6: return unsignedOf(d, size) <= unsignedOf(v, size);
        case 7: return unsignedOf(d, size) > unsignedOf(v, size);
        case 12: return sx(d, size) < sx(v, size);
        case 13: return sx(d, size) >= sx(v, size);
        case 14: return sx(d, size) <= sx(v, size);
        case 15: return sx(d, size) > sx(v, size);
      }
    }
  } else if (op === LF_LOGIC) {
    switch (cc) {
      case 0: case 2: return false;
      case 1: case 3: return true;
      case 4: case 6: return getZF(s) === 1;
      case 5: case 7: return getZF(s) === 0;
      case 8: case 12: return getSF(s) === 1;
      case 9: case 13: return getSF(s) === 0;
      case 14: return getZF(s) === 1 || getSF(s) === 1;
      case 15: return getZF(s) === 0 && getSF(s) === 0;
    }
  }
  let r: boolean;
  switch (cc >> 1) {
    case 0: r = getOF(s) === 1; break;
    case 1: r = getCF(s) === 1; break;
    case 2: r = getZF(s) === 1; break;
    case 3: r = getCF(s) === 1 || getZF(s) === 1; break;
    case 4: r = getSF(s) === 1; break;
    case 5: r = getPF(s) === 1; break;
    case 6: r = getSF(s) !== getOF(s); break;
    default: r = getZF(s) === 1 || getSF(s) !== getOF(s); break;
  }
  return (cc & 1) === 0 ? r : !r;
}

export { FLAG_AF, FLAG_CF, FLAG_OF, FLAG_PF, FLAG_SF, FLAG_ZF };
