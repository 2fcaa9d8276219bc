/**
 * Decoder for LZ4's *legacy* frame, the format Linux compresses kernels and
 * initramfs images with (`lz4 -l`; lib/decompress_unlz4.c on the guest side).
 *
 * Legacy frame (lz4 "Frame format", section "Legacy frame"): magic 0x184C2102
 * (LE), then blocks of [u32 LE compressed size][LZ4 block]. Each block is
 * independent and expands to at most 8 MiB; there is no checksum and no end
 * mark: the frame ends with the input or where a new magic starts a new frame.
 *
 * Block format (lz4 "Block format"): sequences of a token (high nibble:
 * literal count, low nibble: match length - 4; 15 means "add following
 * bytes until one is not 255"), the literals, then a 2-byte LE back offset
 * (1..65535) and the match. The last sequence has literals only.
 *
 * Every length and offset is checked against both buffers before use: a
 * malformed stream throws Lz4Error, it never reads or writes out of bounds.
 */

export const LZ4_LEGACY_MAGIC = 0x184c2102;
/** Uncompressed size of every legacy block but the last (lz4 "Legacy frame"). */
export const LZ4_LEGACY_BLOCK_SIZE = 8 * 1024 * 1024;
/** LZ4_compressBound(): the largest a compressed block of `n` input bytes can be. */
function compressBound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}
const LZ4_LEGACY_MAX_COMPRESSED_BLOCK = compressBound(LZ4_LEGACY_BLOCK_SIZE);
/** Smallest match the format encodes (MINMATCH). */
const MIN_MATCH = 4;

export class Lz4Error extends Error {
  override name = 'Lz4Error';
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/**
 * Decodes one LZ4 block src[sp, send) into dst starting at dp, writing no
 * further than dend. Matches may reach back only into this block's output.
 * Returns the new output position.
 */
export function decodeLz4Block(src: Uint8Array, sp: number, send: number, dst: Uint8Array, dp: number, dend: number): number {
  const blockStart = dp;
  for (;;) {
    if (sp >= send) throw new Lz4Error(`block ends inside a sequence at input offset ${sp}`);
    const token = src[sp++]!;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (sp >= send) throw new Lz4Error('block ends inside a literal length');
        b = src[sp++]!;
        lit += b;
      } while (b === 255);
    }
    if (lit > send - sp) throw new Lz4Error(`${lit} literals at input offset ${sp} run past the end of the block`);
    if (lit > dend - dp) throw new Lz4Error(`${lit} literals at output offset ${dp} overflow the output (${dend} bytes)`);
    if (lit < 32) {
      for (let i = 0; i < lit; i++) dst[dp + i] = src[sp + i]!;
    } else {
      dst.set(src.subarray(sp, sp + lit), dp);
    }
    sp += lit;
    dp += lit;
    if (sp === send) return dp;

    if (send - sp < 2) throw new Lz4Error('block ends inside a match offset');
    const offset = src[sp]! | (src[sp + 1]! << 8);
    sp += 2;
    if (offset === 0 || offset > dp - blockStart) {
      throw new Lz4Error(`match offset ${offset} at output offset ${dp} reaches before the start of the block`);
    }
    let len = (token & 15) + MIN_MATCH;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (sp >= send) throw new Lz4Error('block ends inside a match length');
        b = src[sp++]!;
        len += b;
      } while (b === 255);
    }
    if (len > dend - dp) throw new Lz4Error(`match of ${len} bytes at output offset ${dp} overflows the output (${dend} bytes)`);
    const from = dp - offset;
    if (offset >= len && len >= 32) {
      dst.copyWithin(dp, from, from + len);
    } else {
      // Overlapping matches repeat the last `offset` bytes: copy forward byte by byte.
      for (let i = 0; i < len; i++) dst[dp + i] = dst[from + i]!;
    }
    dp += len;
  }
}

/**
 * Decompresses a legacy LZ4 stream (one or more concatenated frames).
 * With `expectedSize`, the output is exactly that long or this throws;
 * without it, the output grows as needed up to `maxSize`.
 */
export function decompressLz4Legacy(input: Uint8Array, expectedSize?: number, maxSize = 2 ** 31): Uint8Array {
  if (input.length < 4 || u32(input, 0) !== LZ4_LEGACY_MAGIC) throw new Lz4Error('not an LZ4 legacy frame (magic 0x184C2102 missing)');
  const limit = expectedSize ?? maxSize;
  let out = new Uint8Array(expectedSize ?? Math.min(limit, Math.max(LZ4_LEGACY_BLOCK_SIZE, input.length * 4)));
  let dp = 0;
  let sp = 4;
  while (sp < input.length) {
    if (input.length - sp < 4) throw new Lz4Error(`${input.length - sp} stray bytes at input offset ${sp} where a block size should be`);
    const size = u32(input, sp);
    sp += 4;
    if (size === LZ4_LEGACY_MAGIC) continue;
    if (size === 0) throw new Lz4Error(`empty block at input offset ${sp - 4}`);
    if (size > LZ4_LEGACY_MAX_COMPRESSED_BLOCK) throw new Lz4Error(`block size ${size} at input offset ${sp - 4} exceeds the legacy maximum of ${LZ4_LEGACY_MAX_COMPRESSED_BLOCK}`);
    if (size > input.length - sp) throw new Lz4Error(`block of ${size} bytes at input offset ${sp - 4} is truncated (${input.length - sp} bytes left)`);
    const want = Math.min(dp + LZ4_LEGACY_BLOCK_SIZE, limit);
    if (want > out.length) {
      const grown = new Uint8Array(Math.min(limit, Math.max(want, out.length * 2)));
      grown.set(out.subarray(0, dp));
      out = grown;
    }
    dp = decodeLz4Block(input, sp, sp + size, out, dp, want);
    sp += size;
  }
  if (expectedSize !== undefined && dp !== expectedSize) throw new Lz4Error(`stream decompressed to ${dp} bytes, ${expectedSize} were declared`);
  return dp === out.length ? out : out.slice(0, dp);
}
