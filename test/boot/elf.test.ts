import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocateGuestMemory, heapBacking } from '../../src/memory/index.js';
import { loadElf } from '../../src/boot/elf.js';
import { BootError } from '../../src/boot/errors.js';
import { buildElf, PT_LOAD, pseudoRandom } from '../fixtures/kernel-images.js';

const MiB = 1024 * 1024;
const mem = (size = 64 * MiB) => allocateGuestMemory([{ base: 0, size }], heapBacking);

function bootError(fn: () => unknown, kind: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BootError, `expected BootError, got ${String(e)}`);
    assert.equal(e.kind, kind);
    assert.match(e.message, message);
    return true;
  });
}

test('loads PT_LOADs at their physical addresses, copies filesz and zeroes the rest of memsz', () => {
  const text = pseudoRandom(0x3000, 1);
  const data = pseudoRandom(0x800, 2);
  const elf = buildElf({
    entry: 0x1000000,
    segments: [
      { paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: text },
      { paddr: 0x1200000, vaddr: 0xffffffff81200000n, data, memsz: 0x2000 },
    ],
  });
  const m = mem();
  m.fill(0x1200000, 0x2000, 0xaa); // stale bytes where .bss goes
  const r = loadElf(m, elf);
  assert.equal(r.entry, 0x1000000);
  assert.deepEqual(r.segments.map((s) => [s.addr, s.size, s.fileSize]), [[0x1000000, 0x3000, 0x3000], [0x1200000, 0x2000, 0x800]]);
  assert.equal(r.kernelEnd, 0x1202000);
  assert.deepEqual(m.read(0x1000000, 0x3000), text);
  assert.deepEqual(m.read(0x1200000, 0x800), data);
  assert.ok(m.read(0x1200800, 0x1800).every((b) => b === 0));
  assert.equal(r.pvhEntry, undefined);
});

test('maps a virtual e_entry through the segment containing it', () => {
  const elf = buildElf({ entry: 0xffffffff81000040n, segments: [{ paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: new Uint8Array(0x100) }] });
  assert.equal(loadElf(mem(), elf).entry, 0x1000040);
});

test('reads the PVH entry from the Xen PHYS32_ENTRY note', () => {
  const elf = buildElf({ pvhEntry: 0x1000850, segments: [{ paddr: 0x1000000, data: new Uint8Array(16) }] });
  assert.equal(loadElf(mem(), elf).pvhEntry, 0x1000850);
});

test('entry outside every segment is an error', () => {
  const elf = buildElf({ entry: 0x5000000, segments: [{ paddr: 0x1000000, data: new Uint8Array(16) }] });
  bootError(() => loadElf(mem(), elf), 'malformed', /entry point 0x5000000 lies in no loadable segment/);
});

test('ELF32, big-endian, wrong machine and non-executable files are named', () => {
  const seg = [{ paddr: 0x100000, data: new Uint8Array(8) }];
  bootError(() => loadElf(mem(), buildElf({ elfClass: 1, segments: seg })), 'unsupported', /^ELF32 kernel: a 64-bit x86-64 kernel is needed$/);
  bootError(() => loadElf(mem(), buildElf({ data: 2, segments: seg })), 'unsupported', /big-endian/);
  bootError(() => loadElf(mem(), buildElf({ machine: 183, segments: seg })), 'unsupported', /for AArch64, not x86-64/);
  bootError(() => loadElf(mem(), buildElf({ machine: 3, segments: seg })), 'unsupported', /for i386/);
  bootError(() => loadElf(mem(), buildElf({ machine: 999, segments: seg })), 'unsupported', /machine 999/);
  bootError(() => loadElf(mem(), buildElf({ type: 1, segments: seg })), 'unsupported', /relocatable object/);
});

test('truncated files: header, program headers, segment data', () => {
  const elf = buildElf({ segments: [{ paddr: 0x100000, data: new Uint8Array(64) }] });
  bootError(() => loadElf(mem(), elf.subarray(0, 40)), 'truncated', /shorter than an ELF64 header/);
  bootError(() => loadElf(mem(), elf.subarray(0, 100)), 'truncated', /program header table/);
  bootError(() => loadElf(mem(), elf.subarray(0, elf.length - 1)), 'truncated', /segment 0 .* lies beyond the \d+-byte file/);
  bootError(() => loadElf(mem(), elf.subarray(0, 3)), 'not-a-kernel', /bad magic/);
});

test('segment data offset beyond the file is rejected', () => {
  const elf = buildElf({ segments: [{ paddr: 0x100000, data: new Uint8Array(64), offset: 0x7fffffff }] });
  bootError(() => loadElf(mem(), elf), 'truncated', /file offset 0x7fffffff/);
});

test('a segment beyond RAM says how much RAM there is, and nothing is written', () => {
  const elf = buildElf({
    segments: [
      { paddr: 0x100000, data: new Uint8Array(16).fill(1) },
      { paddr: 0x3f00000, data: new Uint8Array(16), memsz: 2 * MiB },
    ],
  });
  const m = mem(64 * MiB);
  bootError(() => loadElf(m, elf), 'does-not-fit', /segment at 0x3f00000 \(2 MiB\) does not fit in 64 MiB of RAM/);
  assert.equal(m.readU8(0x100000), 0, 'validation happens before any write');
});

test('overlapping, overflowing and inconsistent headers are rejected', () => {
  const d = new Uint8Array(0x1000);
  bootError(() => loadElf(mem(), buildElf({ segments: [{ paddr: 0x100000, data: d }, { paddr: 0x100800, data: d }] })), 'malformed', /segments overlap/);
  bootError(() => loadElf(mem(), buildElf({ segments: [{ paddr: 0xfffffffffffff000n, data: d }] })), 'malformed', /overflows/);
  bootError(() => loadElf(mem(), buildElf({ segments: [{ paddr: 0x100000, data: d, memsz: 0x10 }] })), 'malformed', /file size 4096 exceeds memory size 16/);
  bootError(() => loadElf(mem(), buildElf({ phentsize: 32, segments: [{ paddr: 0x100000, data: d }] })), 'malformed', /program header size is 32/);
  bootError(() => loadElf(mem(), buildElf({ segments: [] })), 'malformed', /no program headers/);
  bootError(() => loadElf(mem(), buildElf({ segments: [{ type: 6, paddr: 0x100000, data: d }] })), 'malformed', /no loadable segment/);
});

test('garbage after a valid ELF magic never escapes as anything but a BootError', () => {
  const base = buildElf({ segments: [{ paddr: 0x100000, data: new Uint8Array(256) }] });
  for (let seed = 1; seed <= 300; seed++) {
    const img = base.slice();
    const noise = pseudoRandom(16, seed);
    // Corrupt a few header bytes (class/data/type kept valid half the time).
    for (let i = 0; i < 8; i++) img[16 + (noise[i]! % 104)] = noise[i + 8]!;
    try {
      loadElf(mem(4 * MiB), img);
    } catch (e) {
      assert.ok(e instanceof BootError, `seed ${seed}: ${String(e)}`);
    }
  }
  assert.equal(PT_LOAD, 1);
});
