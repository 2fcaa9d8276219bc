/**
 * Decoder for the x86 BCJ filter (xz filter ID 0x04), which Linux applies
 * before LZMA2 when it builds an xz-compressed x86 kernel (scripts/xz_wrap.sh
 * passes `--x86`).
 *
 * The encoder turned the rel32 operand of E8 (CALL) and E9 (JMP) opcodes into
 * an absolute address so that repeated calls to one function compress well.
 * Decoding subtracts the position again. To avoid touching bytes that merely
 * look like E8/E9, both sides only convert operands whose top byte is 00 or
 * FF (a short, plausible displacement) and keep a 3-bit history of recent
 * E8/E9 bytes that vetoes conversions which the encoder also skipped. The
 * rules below are those of the xz file format's x86 filter; the decoder must
 * reproduce the encoder's decisions bit for bit.
 */

/** The history states in which a conversion is still allowed (indexed by the 3-bit mask). */
const ALLOWED = [true, true, true, false, true, false, false, false];
/** For a history mask, which operand byte (counted from the high end) decides the veto. */
const BYTE_INDEX = [0, 1, 2, 2, 3, 3, 3, 3];

function plausible(b: number): boolean {
  return b === 0x00 || b === 0xff;
}

/** Decodes `buf` in place; `startOffset` is the filter's start offset property (usually 0). */
export function bcjX86Decode(buf: Uint8Array, startOffset = 0): void {
  if (buf.length < 5) return;
  const last = buf.length - 4;
  let prevMask = 0;
  let prevPos = -1;
  for (let i = 0; i < last; i++) {
    if ((buf[i]! & 0xfe) !== 0xe8) continue;
    const gap = i - prevPos;
    if (gap > 3) {
      prevMask = 0;
    } else {
      prevMask = (prevMask << (gap - 1)) & 7;
      if (prevMask !== 0) {
        const b = buf[i + 4 - BYTE_INDEX[prevMask]!]!;
        if (!ALLOWED[prevMask] || plausible(b)) {
          prevPos = i;
          prevMask = (prevMask << 1) | 1;
          continue;
        }
      }
    }
    prevPos = i;
    if (!plausible(buf[i + 4]!)) {
      prevMask = (prevMask << 1) | 1;
      continue;
    }
    let src = (buf[i + 1]! | (buf[i + 2]! << 8) | (buf[i + 3]! << 16) | (buf[i + 4]! << 24)) >>> 0;
    let dest: number;
    for (;;) {
      dest = (src - (startOffset + i + 5)) >>> 0;
      if (prevMask === 0) break;
      const shift = BYTE_INDEX[prevMask]! * 8;
      if (!plausible((dest >>> (24 - shift)) & 0xff)) break;
      src = (dest ^ (2 ** (32 - shift) - 1)) >>> 0;
    }
    // Sign-extend bit 24 into the top byte: the operand is a ±16 MiB displacement.
    dest &= 0x01ffffff;
    if (dest & 0x01000000) dest |= 0xff000000;
    buf[i + 1] = dest & 0xff;
    buf[i + 2] = (dest >>> 8) & 0xff;
    buf[i + 3] = (dest >>> 16) & 0xff;
    buf[i + 4] = (dest >>> 24) & 0xff;
    i += 4;
  }
}
