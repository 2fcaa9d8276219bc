/**
 * Debian's stock cloud kernel through the real loader: format, compression,
 * entry point and every PT_LOAD checked against an independent decoding
 * (the lz4 CLI and binutils' readelf).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateGuestMemory, heapBacking } from '../../src/memory/index.js';
import { ramRanges } from '../../src/arch/x86_64/layout.js';
import { loadKernel } from '../../src/boot/loader.js';
import { debianCloudKernel, which } from '../fixtures/debian-kernel.js';

const MiB = 1024 * 1024;

interface Load {
  offset: number;
  paddr: number;
  filesz: number;
  memsz: number;
}

/** The vmlinux inside the bzImage, decompressed by the lz4 CLI (offsets read by hand from the header). */
function vmlinuxByCli(image: Buffer, dir: string): string {
  const setupSects = image[0x1f1] || 4;
  const pm = (setupSects + 1) * 512;
  const off = image.readUInt32LE(0x248);
  const len = image.readUInt32LE(0x24c);
  const payload = join(dir, 'payload.lz4');
  writeFileSync(payload, image.subarray(pm + off, pm + off + len - 4)); // without the size trailer
  const out = join(dir, 'vmlinux');
  execFileSync('lz4', ['-d', '-f', '-q', payload, out]);
  return out;
}

function readelfLoads(path: string): { entry: number; loads: Load[] } {
  const text = execFileSync('readelf', ['-hlW', path], { encoding: 'utf8' });
  const entry = Number(/Entry point address:\s+(0x[0-9a-f]+)/.exec(text)?.[1]);
  const loads = [...text.matchAll(/^\s*LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/gm)].map((m) => ({
    offset: Number(m[1]),
    paddr: Number(m[3]),
    filesz: Number(m[4]),
    memsz: Number(m[5]),
  }));
  return { entry, loads };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test("Debian's cloud kernel: host-decompressed, loaded at the ELF's physical addresses", (t) => {
  const fixture = debianCloudKernel();
  if ('skip' in fixture) return t.skip(fixture.skip);
  const image = readFileSync(fixture.path);
  const memory = allocateGuestMemory(ramRanges(512 * MiB), heapBacking);

  const r = loadKernel(memory, image);
  t.diagnostic(`${fixture.path}: ${image.length} bytes, ${r.compression}, host decompression ${r.decompressMs?.toFixed(0)} ms`);
  assert.equal(r.format, 'bzimage-decompressed');
  assert.equal(r.compression, 'lz4', 'DESIGN.md: the cloud kernel is LZ4-compressed');
  assert.equal(r.entry, 0x1000000, 'startup_64 at 16 MiB physical');
  assert.ok(r.pvhEntry !== undefined && r.pvhEntry > 0x1000000 && r.pvhEntry < r.kernelEnd, 'the PVH note points into the kernel');
  assert.equal(r.protocolVersion, 0x020f);
  assert.equal(r.cmdlineMax, 2048);

  if (!which('lz4') || !which('readelf')) return t.skip('lz4 CLI or readelf missing: cannot cross-check the segments');
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-vmlinux-'));
  try {
    const path = vmlinuxByCli(image, dir);
    const { entry, loads } = readelfLoads(path);
    assert.ok(loads.length >= 3, `readelf found ${loads.length} PT_LOADs`);
    assert.equal(r.entry, entry);
    assert.deepEqual(r.loadedRanges, loads.map((l) => ({ addr: l.paddr, size: l.memsz })).sort((a, b) => a.addr - b.addr));
    const elf = readFileSync(path);
    for (const l of loads) {
      assert.equal(sha(memory.read(l.paddr, l.filesz)), sha(elf.subarray(l.offset, l.offset + l.filesz)), `segment at 0x${l.paddr.toString(16)}`);
      if (l.memsz > l.filesz) assert.ok(memory.read(l.paddr + l.filesz, l.memsz - l.filesz).every((b) => b === 0));
    }
    assert.equal(r.kernelEnd, Math.max(...loads.map((l) => l.paddr + l.memsz)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("Debian's cloud kernel: the compressed fallback enters the decompressor at pref_address + 0x200", (t) => {
  const fixture = debianCloudKernel();
  if ('skip' in fixture) return t.skip(fixture.skip);
  const image = readFileSync(fixture.path);
  const memory = allocateGuestMemory(ramRanges(512 * MiB), heapBacking);
  const r = loadKernel(memory, image, { decompress: false });
  assert.equal(r.format, 'bzimage');
  assert.equal(r.entry, 0x1000200);
  const pm = ((image[0x1f1] || 4) + 1) * 512;
  assert.equal(sha(memory.read(0x1000000, 4096)), sha(image.subarray(pm, pm + 4096)));
  assert.equal(r.kernelEnd, 0x1000000 + image.readUInt32LE(0x260));
});
