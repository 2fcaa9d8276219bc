/**
 * xz container decoding for kernel payloads.
 *
 * `@napi-rs/lzma` (lzma-rs) decodes LZMA2 but knows no BCJ filter, and Linux
 * builds x86 xz kernels with the x86 BCJ filter in front of LZMA2. So we walk
 * the container ourselves (The .xz File Format 1.1.0: stream header, blocks,
 * index, footer), hand each block's raw LZMA2 data to lzma-rs, undo BCJ here
 * and verify each block's size and CRC32 against the index.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { lzma2 } from '@napi-rs/lzma';
import { bcjX86Decode } from './bcj-x86.js';

const XZ_HEADER_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const XZ_FOOTER_MAGIC = [0x59, 0x5a]; // "YZ"
const STREAM_HEADER_SIZE = 12;
const STREAM_FOOTER_SIZE = 12;

/** Filter IDs (xz format section 5.3). */
const FILTER_X86 = 0x04;
const FILTER_LZMA2 = 0x21;
/** Check types (section 3.1.3) whose value we verify. */
const CHECK_CRC32 = 0x1;
const CHECK_SHA256 = 0xa;

/** Block header flags (section 3.1.2). */
const BLOCK_FLAG_FILTER_COUNT = 0x03;
const BLOCK_FLAG_COMPRESSED_SIZE = 0x40;
const BLOCK_FLAG_UNCOMPRESSED_SIZE = 0x80;

export class XzError extends Error {
  override name = 'XzError';
}

/** A filter chain this decoder cannot handle (a caller may fall back to in-guest decompression). */
export class XzUnsupportedError extends XzError {
  override name = 'XzUnsupportedError';
}

/** Size of the check field for each check type (section 3.1.3: sizes grow in groups of three). */
function checkSize(type: number): number {
  return type === 0 ? 0 : 4 << Math.floor((type - 1) / 3);
}

function u32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

class Reader {
  constructor(
    readonly b: Uint8Array,
    public at: number,
    readonly end: number,
  ) {}
  byte(): number {
    if (this.at >= this.end) throw new XzError('truncated xz header');
    return this.b[this.at++]!;
  }
  /** Multibyte integer (section 1.2): 7 bits per byte, at most 9 bytes, no trailing zero byte. */
  varint(): number {
    let v = 0;
    for (let i = 0; i < 9; i++) {
      const b = this.byte();
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new XzError('non-minimal multibyte integer');
        if (!Number.isSafeInteger(v)) throw new XzError('multibyte integer too large');
        return v;
      }
    }
    throw new XzError('multibyte integer longer than 9 bytes');
  }
}

function expect(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new XzError(msg);
}

interface Filter {
  id: number;
  props: Uint8Array;
}

/** Decompresses a single-stream .xz file (trailing zero stream padding allowed). */
export function decompressXz(input: Uint8Array): Uint8Array {
  expect(input.length >= STREAM_HEADER_SIZE + STREAM_FOOTER_SIZE, 'xz stream too short');
  expect(XZ_HEADER_MAGIC.every((m, i) => input[i] === m), 'not an xz stream (bad magic)');
  expect(input[6] === 0 && (input[7]! & 0xf0) === 0, 'unsupported xz stream flags');
  expect(crc32(input.subarray(6, 8)) === u32(input, 8), 'xz stream header CRC32 mismatch');
  const check = input[7]!;

  let end = input.length;
  while (end >= 4 && u32(input, end - 4) === 0) end -= 4;
  expect(end >= 2 * STREAM_HEADER_SIZE, 'xz stream too short');
  const footer = end - STREAM_FOOTER_SIZE;
  expect(input[end - 2] === XZ_FOOTER_MAGIC[0] && input[end - 1] === XZ_FOOTER_MAGIC[1], 'xz stream footer missing (only one stream is supported)');
  expect(crc32(input.subarray(footer + 4, footer + 10)) === u32(input, footer), 'xz stream footer CRC32 mismatch');
  expect(input[footer + 8] === input[6] && input[footer + 9] === input[7], 'xz stream footer flags differ from the header');
  const indexSize = (u32(input, footer + 4) + 1) * 4;
  const indexStart = footer - indexSize;
  expect(indexStart >= STREAM_HEADER_SIZE, 'xz index lies outside the stream');
  expect(crc32(input.subarray(indexStart, footer - 4)) === u32(input, footer - 4), 'xz index CRC32 mismatch');

  const ix = new Reader(input, indexStart, footer - 4);
  expect(ix.byte() === 0, 'xz index indicator missing');
  const count = ix.varint();
  const records: { unpadded: number; uncompressed: number }[] = [];
  for (let i = 0; i < count; i++) records.push({ unpadded: ix.varint(), uncompressed: ix.varint() });

  const total = records.reduce((n, r) => n + r.uncompressed, 0);
  expect(Number.isSafeInteger(total) && total < 2 ** 32, `xz stream declares ${total} bytes of output`);
  const out = new Uint8Array(total);
  let op = 0;
  let at = STREAM_HEADER_SIZE;
  const csize = checkSize(check);
  for (const rec of records) {
    expect(at < indexStart, 'xz block lies past the index');
    const headerSize = (input[at]! + 1) * 4;
    expect(input[at] !== 0 && at + headerSize <= indexStart, 'bad xz block header size');
    expect(crc32(input.subarray(at, at + headerSize - 4)) === u32(input, at + headerSize - 4), 'xz block header CRC32 mismatch');
    const h = new Reader(input, at + 1, at + headerSize - 4);
    const flags = h.byte();
    expect((flags & 0x3c) === 0, 'unsupported xz block flags');
    if (flags & BLOCK_FLAG_COMPRESSED_SIZE) h.varint();
    if (flags & BLOCK_FLAG_UNCOMPRESSED_SIZE) h.varint();
    const filters: Filter[] = [];
    for (let i = 0; i <= (flags & BLOCK_FLAG_FILTER_COUNT); i++) {
      const id = h.varint();
      const n = h.varint();
      expect(n <= h.end - h.at, 'xz filter properties truncated');
      filters.push({ id, props: input.subarray(h.at, h.at + n) });
      h.at += n;
    }
    const dataStart = at + headerSize;
    const dataSize = rec.unpadded - headerSize - csize;
    expect(dataSize > 0 && dataStart + dataSize <= indexStart, 'xz block size in the index is inconsistent');
    const blockEnd = dataStart + Math.ceil(dataSize / 4) * 4 + csize;
    expect(blockEnd <= indexStart, 'xz block overruns the index');
    for (let p = dataStart + dataSize; p < blockEnd - csize; p++) expect(input[p] === 0, 'xz block padding is not zero');

    const last = filters[filters.length - 1]!;
    if (last.id !== FILTER_LZMA2) throw new XzUnsupportedError(`xz filter chain ends in filter 0x${last.id.toString(16)}, not LZMA2`);
    const pre = filters.slice(0, -1);
    for (const f of pre) if (f.id !== FILTER_X86) throw new XzUnsupportedError(`xz filter 0x${f.id.toString(16)} is not supported (x86 BCJ and LZMA2 are)`);

    let data: Uint8Array;
    try {
      data = lzma2.decompressSync(input.subarray(dataStart, dataStart + dataSize));
    } catch (e) {
      throw new XzError(`LZMA2 data is corrupt: ${(e as Error).message}`);
    }
    expect(data.length === rec.uncompressed, `xz block decompressed to ${data.length} bytes, the index says ${rec.uncompressed}`);
    for (const f of pre.reverse()) {
      expect(f.props.length === 0 || f.props.length === 4, 'bad x86 BCJ filter properties');
      bcjX86Decode(data, f.props.length === 4 ? u32(f.props, 0) : 0);
    }
    const checkAt = blockEnd - csize;
    if (check === CHECK_CRC32) {
      expect(crc32(data) === u32(input, checkAt), 'xz block CRC32 mismatch: the payload is corrupt');
    } else if (check === CHECK_SHA256) {
      const digest = createHash('sha256').update(data).digest();
      expect(digest.equals(input.subarray(checkAt, checkAt + 32)), 'xz block SHA-256 mismatch: the payload is corrupt');
    }
    // CHECK_NONE, CRC64 and reserved types: sizes are checked against the index, the value is not.
    out.set(data, op);
    op += data.length;
    at = blockEnd;
  }
  expect(at === indexStart, 'xz stream has data between its last block and the index');
  return out;
}
