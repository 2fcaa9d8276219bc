import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { xz } from '@napi-rs/lzma';
import {
  decodeLz4Block,
  decompressKernelPayload,
  decompressLz4Legacy,
  decompressXz,
  detectCompression,
  Lz4Error,
  UnsupportedCompressionError,
  XzError,
} from '../../src/boot/decompress/index.js';
import { codeLike, pseudoRandom, withSizeTrailer } from '../fixtures/kernel-images.js';
import { which } from '../fixtures/debian-kernel.js';

const MiB = 1024 * 1024;

function cli(cmd: string, args: string[], input: Uint8Array): Uint8Array {
  return new Uint8Array(execFileSync(cmd, args, { input, maxBuffer: 256 * MiB }));
}

/** A slice of the node binary: real x86-64 machine code for the BCJ filter. */
function machineCode(n: number): Uint8Array {
  const buf = new Uint8Array(n);
  const fd = openSync(process.execPath, 'r');
  try {
    readSync(fd, buf, 0, n, 4 * MiB);
  } finally {
    closeSync(fd);
  }
  return buf;
}

function legacyFrame(...blocks: number[][]): Uint8Array {
  const parts: number[] = [0x02, 0x21, 0x4c, 0x18];
  for (const b of blocks) parts.push(b.length & 0xff, (b.length >> 8) & 0xff, 0, 0, ...b);
  return Uint8Array.from(parts);
}

test('detects every format Linux builds kernels with by its magic', () => {
  const cases: [number[], string][] = [
    [[0x1f, 0x8b, 8], 'gzip'],
    [[0x42, 0x5a, 0x68, 0x39], 'bzip2'],
    [[0x5d, 0, 0, 0x80], 'lzma'],
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0], 'xz'],
    [[0x89, 0x4c, 0x5a, 0x4f], 'lzo'],
    [[0x02, 0x21, 0x4c, 0x18], 'lz4'],
    [[0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
    [[0x7f, 0x45, 0x4c, 0x46], 'none'],
  ];
  for (const [magic, format] of cases) assert.equal(detectCompression(Uint8Array.from(magic)), format);
  assert.equal(detectCompression(Uint8Array.from([1, 2, 3, 4])), undefined);
  assert.equal(detectCompression(new Uint8Array(0)), undefined);
});

test('gzip payload (node:zlib) decompresses', () => {
  const data = codeLike(300_000);
  assert.ok(Buffer.from(decompressKernelPayload(gzipSync(data), 'gzip')).equals(data));
});

test('xz payload without BCJ (@napi-rs/lzma) decompresses through our container parser', () => {
  const data = codeLike(500_000);
  const c = new Uint8Array(xz.compressSync(data));
  assert.ok(Buffer.from(decompressXz(c)).equals(data));
  assert.ok(Buffer.from(decompressKernelPayload(withSizeTrailer(c, data.length), 'xz')).equals(data));
});

test('xz payload with the x86 BCJ filter, as Linux builds it (xz CLI)', (t) => {
  if (!which('xz')) return t.skip('xz CLI not installed (apt-get install xz-utils)');
  for (const data of [codeLike(1_000_000), machineCode(3 * MiB)]) {
    const c = cli('xz', ['--check=crc32', '--x86', '--lzma2=dict=32MiB', '-c'], data);
    const out = decompressKernelPayload(withSizeTrailer(c, data.length), 'xz');
    assert.equal(out.length, data.length);
    assert.ok(Buffer.from(out).equals(Buffer.from(data)), 'BCJ-decoded output differs from the original');
  }
});

test('multi-block xz streams (xz -T2 --block-size) decompress', (t) => {
  if (!which('xz')) return t.skip('xz CLI not installed (apt-get install xz-utils)');
  const data = machineCode(2 * MiB);
  const c = cli('xz', ['--check=crc32', '--x86', '--lzma2=dict=1MiB', '--block-size=300000', '-T2', '-c'], data);
  assert.ok(Buffer.from(decompressXz(c)).equals(Buffer.from(data)));
});

test('xz with a filter we lack is "unsupported", not corrupt', (t) => {
  if (!which('xz')) return t.skip('xz CLI not installed (apt-get install xz-utils)');
  const data = codeLike(10_000);
  const c = cli('xz', ['--check=crc32', '--delta=dist=4', '--lzma2', '-c'], data);
  assert.throws(() => decompressKernelPayload(withSizeTrailer(c, data.length), 'xz'), (e: unknown) => e instanceof UnsupportedCompressionError && /unsupported compression xz \(xz filter 0x3/.test(e.message));
});

test('corrupt or truncated xz streams (CRC32 check, as Linux uses) throw XzError', (t) => {
  if (!which('xz')) return t.skip('xz CLI not installed (apt-get install xz-utils)');
  const data = codeLike(200_000);
  const c = cli('xz', ['--check=crc32', '--x86', '--lzma2', '-c'], data);
  assert.throws(() => decompressXz(c.subarray(0, c.length - 13)), XzError);
  assert.throws(() => decompressXz(c.subarray(0, 20)), XzError);
  assert.throws(() => decompressXz(new Uint8Array(8)), XzError);
  for (let seed = 1; seed <= 60; seed++) {
    const bad = c.slice();
    const r = pseudoRandom(8, seed);
    const at = ((r[0]! << 16) | (r[1]! << 8) | r[2]!) % bad.length;
    bad[at] = bad[at]! ^ (r[3]! | 1);
    assert.throws(() => decompressXz(bad), (e: unknown) => e instanceof XzError, `seed ${seed}: flipping byte ${at} must be detected`);
  }
});

test('zstd payload (zstd CLI) decompresses with fzstd', (t) => {
  if (!which('zstd')) return t.skip('zstd CLI not installed (apt-get install zstd)');
  const data = codeLike(2_000_000);
  const c = cli('zstd', ['-19', '-c', '-q'], data);
  assert.ok(Buffer.from(decompressKernelPayload(withSizeTrailer(c, data.length), 'zstd')).equals(data));
});

test('lz4 legacy frames (lz4 -l CLI), several 8 MiB blocks, decompress exactly', (t) => {
  if (!which('lz4')) return t.skip('lz4 CLI not installed (apt-get install lz4)');
  const data = new Uint8Array(17 * MiB + 12345);
  data.set(codeLike(data.length));
  const c = cli('lz4', ['-l', '-9', '-c', '-'], data);
  const out = decompressLz4Legacy(c, data.length);
  assert.ok(Buffer.from(out).equals(Buffer.from(data)));
  // Without a declared size the output grows as needed.
  assert.ok(Buffer.from(decompressLz4Legacy(c)).equals(Buffer.from(data)));
  assert.ok(Buffer.from(decompressKernelPayload(withSizeTrailer(c, data.length), 'lz4')).equals(Buffer.from(data)));
  // Incompressible input takes literal-only paths.
  const noise = pseudoRandom(100_000, 9);
  assert.deepEqual(decompressLz4Legacy(cli('lz4', ['-l', '-c', '-'], noise)), noise);
});

test('lz4: concatenated legacy frames continue the output', () => {
  const f = legacyFrame([0x10, 0x61]);
  const two = new Uint8Array([...f, ...legacyFrame([0x10, 0x62]).subarray(0)]);
  assert.deepEqual([...decompressLz4Legacy(two)], [0x61, 0x62]);
});

test('lz4 block: overlapping matches repeat bytes', () => {
  // 1 literal 'a', match offset 1 length 8, then the final literal 'b'.
  const out = decompressLz4Legacy(legacyFrame([0x14, 0x61, 0x01, 0x00, 0x10, 0x62]));
  assert.equal(Buffer.from(out).toString(), 'aaaaaaaaab');
});

test('lz4 block: malformed sequences are reported, never read or written out of bounds', () => {
  const dst = new Uint8Array(64);
  const block = (b: number[], dend = 64) => () => decodeLz4Block(Uint8Array.from(b), 0, b.length, dst, 0, dend);
  assert.throws(block([0x14, 0x61, 0x00, 0x00, 0x10, 0x62]), /match offset 0/);
  assert.throws(block([0x14, 0x61, 0x02, 0x00, 0x10, 0x62]), /match offset 2 at output offset 1 reaches before the start/);
  assert.throws(block([0xf0, 0x05, 0x61, 0x62]), /20 literals .* run past the end of the block/);
  assert.throws(block([0x40, 1, 2, 3, 4], 3), /overflow the output/);
  assert.throws(block([0x1f, 0x61, 0x01, 0x00, 0xff, 0xff, 0x10], 64), /block ends inside|overflows the output/);
  assert.throws(block([0x1f, 0x61, 0x01, 0x00, 0x30, 0x10, 0x62], 16), /match of 67 bytes at output offset 1 overflows the output \(16 bytes\)/);
  assert.throws(block([0x14, 0x61, 0x01]), /inside a match offset/);
  assert.throws(block([0xf0, 0xff]), /inside a literal length/);
  assert.throws(block([]), /ends inside a sequence/);
});

test('lz4 frame: bad magic, truncated blocks, oversized blocks, stray bytes and size mismatches', () => {
  assert.throws(() => decompressLz4Legacy(Uint8Array.from([1, 2, 3, 4])), /magic 0x184C2102 missing/);
  const good = legacyFrame([0x10, 0x61]);
  assert.throws(() => decompressLz4Legacy(good.subarray(0, good.length - 1)), /truncated/);
  assert.throws(() => decompressLz4Legacy(Uint8Array.from([...good, 1, 2])), /2 stray bytes/);
  assert.throws(() => decompressLz4Legacy(Uint8Array.from([0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0])), /empty block/);
  assert.throws(() => decompressLz4Legacy(Uint8Array.from([0x02, 0x21, 0x4c, 0x18, 0xff, 0xff, 0xff, 0x7f])), /exceeds the legacy maximum/);
  assert.throws(() => decompressLz4Legacy(good, 2), /decompressed to 1 bytes, 2 were declared/);
  assert.throws(() => decompressLz4Legacy(legacyFrame([0x14, 0x61, 0x01, 0x00, 0x10, 0x62]), 5), /overflow/);
});

test('lz4: random corruption of a valid stream yields Lz4Error or output, nothing else', (t) => {
  if (!which('lz4')) return t.skip('lz4 CLI not installed (apt-get install lz4)');
  const data = codeLike(200_000, 3);
  const c = cli('lz4', ['-l', '-9', '-c', '-'], data);
  for (let seed = 1; seed <= 400; seed++) {
    const bad = c.slice();
    const r = pseudoRandom(12, seed);
    for (let k = 0; k < 3; k++) {
      const at = 4 + (((r[k * 4]! << 16) | (r[k * 4 + 1]! << 8) | r[k * 4 + 2]!) % (bad.length - 4));
      bad[at] = r[k * 4 + 3]!;
    }
    try {
      const out = decompressLz4Legacy(bad, data.length);
      assert.equal(out.length, data.length);
    } catch (e) {
      assert.ok(e instanceof Lz4Error, `seed ${seed}: ${String(e)}`);
    }
  }
});

test('lz4: random bytes as a block never escape as anything but Lz4Error', () => {
  const dst = new Uint8Array(4096);
  for (let seed = 1; seed <= 2000; seed++) {
    const src = pseudoRandom(1 + (seed % 97), seed);
    try {
      decodeLz4Block(src, 0, src.length, dst, 0, dst.length);
    } catch (e) {
      assert.ok(e instanceof Lz4Error, `seed ${seed}: ${String(e)}`);
    }
  }
});

test('bzip2, lzma and lzo payloads are unsupported here (the guest can decompress them)', () => {
  for (const format of ['bzip2', 'lzma', 'lzo'] as const) {
    assert.throws(() => decompressKernelPayload(new Uint8Array(64).fill(1), format), (e: unknown) => e instanceof UnsupportedCompressionError && e.message === `unsupported compression ${format}`);
  }
});

test('a payload whose size trailer disagrees with its contents is rejected', () => {
  const data = codeLike(5000);
  const c = new Uint8Array(xz.compressSync(data));
  assert.throws(() => decompressKernelPayload(withSizeTrailer(c, data.length + 1), 'xz'), /decompressed to 5000 bytes, the payload declares 5001/);
  assert.throws(() => decompressKernelPayload(withSizeTrailer(c, 0), 'xz'), /uncompressed size of 0 bytes/);
  assert.throws(() => decompressKernelPayload(new Uint8Array(2), 'lz4'), /too short/);
});
