/**
 * Host-side decompression of a bzImage payload.
 *
 * Linux compresses the kernel with one of seven formats
 * (arch/x86/boot/compressed/Makefile) and, for all but gzip, appends the
 * uncompressed size as a little-endian u32 (`size_append`); gzip's own
 * trailer ends with that same ISIZE field. Formats are told apart by their
 * magic, the same way lib/decompress.c does.
 */
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { decompressLz4Legacy } from './lz4.js';
import { decompressXz, XzUnsupportedError } from './xz.js';

export { decompressLz4Legacy, decodeLz4Block, Lz4Error, LZ4_LEGACY_MAGIC } from './lz4.js';
export { decompressXz, XzError, XzUnsupportedError } from './xz.js';
export { bcjX86Decode } from './bcj-x86.js';

export type Compression = 'gzip' | 'bzip2' | 'lzma' | 'xz' | 'lzo' | 'lz4' | 'zstd' | 'none';

const MAGICS: { format: Compression; magic: number[] }[] = [
  { format: 'gzip', magic: [0x1f, 0x8b] },
  { format: 'gzip', magic: [0x1f, 0x9e] }, // old gzip magic, still accepted by lib/decompress.c
  { format: 'bzip2', magic: [0x42, 0x5a, 0x68] }, // "BZh"
  { format: 'lzma', magic: [0x5d, 0x00, 0x00] }, // lc/lp/pb properties byte + dictionary size
  { format: 'xz', magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { format: 'lzo', magic: [0x89, 0x4c, 0x5a, 0x4f] }, // "\x89LZO"
  { format: 'lz4', magic: [0x02, 0x21, 0x4c, 0x18] }, // legacy frame magic 0x184C2102, LE
  { format: 'zstd', magic: [0x28, 0xb5, 0x2f, 0xfd] },
  { format: 'none', magic: [0x7f, 0x45, 0x4c, 0x46] }, // CONFIG_KERNEL_UNCOMPRESSED: the payload is the ELF
];

export function detectCompression(payload: Uint8Array): Compression | undefined {
  return MAGICS.find(({ magic }) => payload.length >= magic.length && magic.every((m, i) => payload[i] === m))?.format;
}

/** Formats this host can decompress; the others are left to the guest's own decompressor. */
export const HOST_DECOMPRESSORS: ReadonlySet<Compression> = new Set<Compression>(['gzip', 'xz', 'lz4', 'zstd', 'none']);

/** The payload cannot be decompressed here, but the guest could (unsupported format or filter). */
export class UnsupportedCompressionError extends Error {
  override name = 'UnsupportedCompressionError';
  constructor(readonly format: Compression, detail?: string) {
    super(`unsupported compression ${format}${detail ? ` (${detail})` : ''}`);
  }
}

/** Largest vmlinux we accept: guards the output allocation against a garbage size trailer. */
export const MAX_DECOMPRESSED_KERNEL = 1024 * 1024 * 1024;

/**
 * Decompresses a kernel payload (including its trailing size word) to the
 * vmlinux bytes. Throws UnsupportedCompressionError for formats the host
 * does not handle, and another Error when the data is corrupt.
 */
export function decompressKernelPayload(payload: Uint8Array, format: Compression): Uint8Array {
  // The ELF loader ignores anything after the segments, so a size word (if any) may stay.
  if (format === 'none') return payload;
  if (payload.length < 4) throw new Error(`payload of ${payload.length} bytes is too short`);
  const declared = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(payload.length - 4, true);
  if (declared === 0 || declared > MAX_DECOMPRESSED_KERNEL) throw new Error(`payload declares an uncompressed size of ${declared} bytes`);
  const body = payload.subarray(0, payload.length - 4);
  let out: Uint8Array;
  switch (format) {
    case 'gzip':
      out = gunzipSync(payload, { maxOutputLength: declared });
      break;
    case 'lz4':
      out = decompressLz4Legacy(body, declared);
      break;
    case 'zstd':
      out = zstdDecompress(body, new Uint8Array(declared));
      break;
    case 'xz':
      try {
        out = decompressXz(body);
      } catch (e) {
        if (e instanceof XzUnsupportedError) throw new UnsupportedCompressionError('xz', e.message);
        throw e;
      }
      break;
    default:
      throw new UnsupportedCompressionError(format);
  }
  if (out.length !== declared) throw new Error(`decompressed to ${out.length} bytes, the payload declares ${declared}`);
  return out;
}
