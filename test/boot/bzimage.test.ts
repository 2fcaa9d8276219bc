import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { gzipSync } from 'node:zlib';
import { allocateGuestMemory, heapBacking } from '../../src/memory/index.js';
import { parseSetupHeader } from '../../src/boot/bzimage.js';
import { loadKernel } from '../../src/boot/loader.js';
import { BootError } from '../../src/boot/errors.js';
import { buildBzImage, buildElf, pseudoRandom, STARTUP_64_MARKER, withSizeTrailer } from '../fixtures/kernel-images.js';
import { which } from '../fixtures/debian-kernel.js';

const MiB = 1024 * 1024;
const mem = (size = 64 * MiB) => allocateGuestMemory([{ base: 0, size }], heapBacking);
const text = pseudoRandom(0x2000, 5);
const vmlinux = buildElf({ entry: 0x1000000, pvhEntry: 0x1000040, segments: [{ paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: text, memsz: 0x3000 }] });
const gzImage = () => buildBzImage({ payload: gzipSync(vmlinux) });

function bootError(fn: () => unknown, kind: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BootError, `expected BootError, got ${String(e)}`);
    assert.equal(e.kind, kind);
    assert.match(e.message, message);
    return true;
  });
}

test('parses the setup header fields the loader uses', () => {
  const h = parseSetupHeader(buildBzImage({ payload: new Uint8Array(100), cmdlineSize: 1000, initrdAddrMax: 0x37ffffff, initSize: 0x200000 }));
  assert.equal(h.version, 0x020f);
  assert.equal(h.setupSects, 4);
  assert.equal(h.cmdlineSize, 1000);
  assert.equal(h.initrdAddrMax, 0x37ffffff);
  assert.equal(h.prefAddress, 0x1000000);
  assert.equal(h.initSize, 0x200000);
  assert.equal(h.kernelAlignment, 0x200000);
  assert.equal(h.relocatable, true);
  assert.equal(h.headerEnd, 0x26c);
  assert.equal(h.payloadOffset, 0x400);
  assert.equal(parseSetupHeader(buildBzImage({ payload: new Uint8Array(1), setupSects: 0 })).setupSects, 4, 'setup_sects 0 means 4');
});

test('a bzImage is decompressed on the host and its vmlinux loaded', () => {
  const m = mem();
  const r = loadKernel(m, gzImage());
  assert.equal(r.format, 'bzimage-decompressed');
  assert.equal(r.compression, 'gzip');
  assert.equal(r.entry, 0x1000000);
  assert.equal(r.pvhEntry, 0x1000040);
  assert.deepEqual(r.loadedRanges, [{ addr: 0x1000000, size: 0x3000 }]);
  assert.equal(r.kernelEnd, 0x1003000);
  assert.deepEqual(m.read(0x1000000, text.length), text);
  assert.equal(r.cmdlineMax, 2048, 'cmdline_size 2047 + NUL');
  assert.equal(r.initrdAddrMax, 0x7fffffff);
  assert.equal(r.setupHeader?.length, 0x26c - 0x1f1);
  assert.equal(r.setupHeader?.[0x202 - 0x1f1], 0x48, 'header starts with "HdrS" at 0x202');
  assert.ok((r.decompressMs ?? -1) >= 0);
});

test('cmdline capacity is capped by the machine buffer', () => {
  assert.equal(loadKernel(mem(), buildBzImage({ payload: gzipSync(vmlinux), cmdlineSize: 100_000 })).cmdlineMax, 4096);
});

test('lz4-compressed bzImage (lz4 -l + size trailer, as Linux builds it)', (t) => {
  if (!which('lz4')) return t.skip('lz4 CLI not installed (apt-get install lz4)');
  const c = new Uint8Array(execFileSync('lz4', ['-l', '-9', '-c', '-'], { input: vmlinux }));
  const r = loadKernel(mem(), buildBzImage({ payload: withSizeTrailer(c, vmlinux.length) }));
  assert.equal(r.format, 'bzimage-decompressed');
  assert.equal(r.compression, 'lz4');
});

test('unsupported compression falls back to the compressed kernel at pref_address, entered at +0x200', () => {
  const payload = withSizeTrailer(Uint8Array.from([0x42, 0x5a, 0x68, 0x39, ...pseudoRandom(200)]), 4096); // "BZh9"
  const img = buildBzImage({ payload, initSize: 0x400000 });
  const m = mem();
  const r = loadKernel(m, img);
  assert.equal(r.format, 'bzimage');
  assert.equal(r.compression, 'bzip2');
  assert.match(r.fallbackReason ?? '', /^unsupported compression bzip2, falling back/);
  assert.equal(r.entry, 0x1000200);
  assert.deepEqual([...m.read(r.entry, 4)], STARTUP_64_MARKER);
  const setupSize = 5 * 512;
  assert.deepEqual(r.loadedRanges, [{ addr: 0x1000000, size: img.length - setupSize }]);
  assert.deepEqual(m.read(0x1000000, img.length - setupSize), img.subarray(setupSize));
  assert.equal(r.kernelEnd, 0x1400000, 'the decompressor owns load + init_size');
});

test('unknown payload magic and decompress:false also fall back', () => {
  const r = loadKernel(mem(), buildBzImage({ payload: Uint8Array.from([9, 9, 9, 9, 0, 0, 0, 0]) }));
  assert.equal(r.format, 'bzimage');
  assert.match(r.fallbackReason ?? '', /unknown compression \(magic 09 09 09 09\)/);
  const off = loadKernel(mem(), gzImage(), { decompress: false });
  assert.equal(off.format, 'bzimage');
  assert.equal(off.compression, 'gzip');
  assert.equal(off.entry, 0x1000200);
});

test('the fallback needs init_size bytes of RAM at the load address', () => {
  const img = buildBzImage({ payload: Uint8Array.from([9, 9, 9, 9]), initSize: 40 * MiB });
  bootError(() => loadKernel(mem(32 * MiB), img), 'does-not-fit', /kernel needs 40 MiB at 0x1000000 \(init_size\) but does not fit in 32 MiB of RAM/);
});

test('a corrupt payload is an error, not a silent fallback', () => {
  const gz = gzipSync(vmlinux);
  gz.fill(0x55, 20, 60);
  bootError(() => loadKernel(mem(), buildBzImage({ payload: gz })), 'corrupt-payload', /bzImage payload \(gzip\) does not decompress/);
  const notElf = gzipSync(pseudoRandom(1000));
  bootError(() => loadKernel(mem(), buildBzImage({ payload: notElf })), 'corrupt-payload', /not an ELF file/);
});

test('header validation: old protocol, no 64-bit entry, zImage, bad boot flag, truncation', () => {
  const p = new Uint8Array(64);
  bootError(() => parseSetupHeader(buildBzImage({ payload: p, version: 0x020b })), 'unsupported', /boot protocol 2\.11 is too old for the 64-bit boot protocol \(2\.12 or later is needed\)/);
  bootError(() => parseSetupHeader(buildBzImage({ payload: p, xloadflags: 0x2 })), 'unsupported', /no 64-bit entry point \(XLF_KERNEL_64/);
  bootError(() => parseSetupHeader(buildBzImage({ payload: p, loadflags: 0 })), 'unsupported', /zImage/);
  bootError(() => parseSetupHeader(buildBzImage({ payload: p, bootFlag: 0x1234 })), 'malformed', /boot_flag is 0x1234/);
  const img = buildBzImage({ payload: p });
  bootError(() => parseSetupHeader(img.subarray(0, img.length - 1)), 'truncated', /truncated bzImage: the header declares \d+ bytes, the file has \d+/);
  bootError(() => parseSetupHeader(img.subarray(0, 0x240)), 'truncated', /the setup header alone needs/);
  const badPayload = img.slice();
  new DataView(badPayload.buffer).setUint32(0x24c, 0x100000, true);
  bootError(() => parseSetupHeader(badPayload), 'malformed', /payload .* lies outside/);
  const badEnd = img.slice();
  badEnd[0x201] = 0x10;
  bootError(() => parseSetupHeader(badEnd), 'malformed', /setup header ends at 0x212/);
});

test('loadKernel: empty, garbage and near-miss files get one clear line', () => {
  bootError(() => loadKernel(mem(), new Uint8Array(0)), 'not-a-kernel', /^not a Linux kernel: the file is empty$/);
  bootError(() => loadKernel(mem(), pseudoRandom(4096)), 'not-a-kernel', /^not a Linux kernel: neither a bzImage nor an ELF64 file$/);
  bootError(() => loadKernel(mem(), Uint8Array.from([0x7f])), 'not-a-kernel', /neither a bzImage nor an ELF64 file/);
  bootError(() => loadKernel(mem(), gzImage().subarray(0, 0x206)), 'truncated', /truncated bzImage: 518 bytes/);
  bootError(() => loadKernel(mem(), gzImage().subarray(0, 0x205)), 'not-a-kernel', /neither/);
  bootError(() => loadKernel(mem(), gzImage().subarray(0, 0x210)), 'truncated', /truncated bzImage/);
});

test('loadKernel on a vmlinux ELF', () => {
  const r = loadKernel(mem(), vmlinux);
  assert.equal(r.format, 'elf');
  assert.equal(r.entry, 0x1000000);
  assert.equal(r.setupHeader, undefined);
  assert.equal(r.cmdlineMax, 2048);
  assert.equal(r.initrdAddrMax, 0x37ffffff);
  assert.equal(r.protocolVersion, 0x020f);
});

test('random header corruption yields a BootError or a load, never another exception', () => {
  const base = gzImage();
  for (let seed = 1; seed <= 300; seed++) {
    const img = base.slice();
    const r = pseudoRandom(24, seed);
    for (let k = 0; k < 6; k++) img[0x1f1 + (((r[k * 3]! << 8) | r[k * 3 + 1]!) % 0x7b)] = r[k * 3 + 2]!;
    try {
      loadKernel(mem(32 * MiB), img);
    } catch (e) {
      assert.ok(e instanceof BootError, `seed ${seed}: ${String(e)}`);
    }
  }
});
