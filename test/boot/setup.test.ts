import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { allocateGuestMemory, type GuestMemory, heapBacking } from '../../src/memory/index.js';
import { CMDLINE_ADDR, e820Map, GDT_ADDR, IDT_ADDR, MMIO_HOLE_START, ramRanges, ZERO_PAGE_ADDR } from '../../src/arch/x86_64/layout.js';
import { buildBootParams, writeBootParams } from '../../src/boot/bootparams.js';
import { BOOT_CS, BOOT_DS, bootCpuState, encodeDescriptor } from '../../src/boot/cpu.js';
import { placeInitrd } from '../../src/boot/initrd.js';
import { BootError, prepareLinuxBoot } from '../../src/boot/index.js';
import { CmdlineError } from '../../src/boot/cmdline.js';
import type { Segment } from '../../src/engine/engine.js';
import { buildBzImage, buildElf, pseudoRandom } from '../fixtures/kernel-images.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const mem = (size: number) => allocateGuestMemory(ramRanges(size), heapBacking);

// --- initrd placement ---

test('initrd goes as high as possible, page-aligned, below the RAM top', () => {
  const m = mem(512 * MiB);
  const p = placeInitrd(m, 5_000_000, { kernelEnd: 0x3e00000, initrdAddrMax: 0x7fffffff });
  assert.equal(p.addr % 4096, 0);
  assert.ok(p.addr + p.size <= 512 * MiB);
  assert.ok(512 * MiB - (p.addr + p.size) < 4096, 'no wasted page at the top');
  assert.equal(p.addr, Math.floor((512 * MiB - 5_000_000) / 4096) * 4096);
});

test('initrd respects initrd_addr_max (inclusive) and stays below the MMIO hole', () => {
  const m = mem(512 * MiB);
  const p = placeInitrd(m, 4096, { kernelEnd: 0x2000000, initrdAddrMax: 0x0fffffff });
  assert.equal(p.addr, 0x10000000 - 4096);
  const big = mem(4 * GiB);
  const q = placeInitrd(big, 1 * MiB, { kernelEnd: 0x2000000, initrdAddrMax: 0xffffffff });
  assert.equal(q.addr + q.size, MMIO_HOLE_START);
});

test('an initrd that does not fit above the kernel is a clear error', () => {
  const m = mem(64 * MiB);
  assert.throws(
    () => placeInitrd(m, 40 * MiB, { kernelEnd: 0x3e00000, initrdAddrMax: 0x7fffffff }),
    (e: unknown) => e instanceof BootError && e.kind === 'does-not-fit' && /^initrd of 40 MiB does not fit in 64 MiB of RAM above the kernel/.test(e.message),
  );
  // Exactly the room left fits.
  const room = 64 * MiB - 0x3e00000;
  assert.equal(placeInitrd(m, room, { kernelEnd: 0x3e00000, initrdAddrMax: 0x7fffffff }).addr, 0x3e00000);
  assert.throws(() => placeInitrd(m, room + 1, { kernelEnd: 0x3e00000, initrdAddrMax: 0x7fffffff }), /does not fit/);
  assert.throws(() => placeInitrd(m, 0, { kernelEnd: 0, initrdAddrMax: 0x7fffffff }), /not a positive byte count/);
});

// --- boot_params ---

test('boot_params from a bzImage header: copied header, loader fields, e820, RSDP', () => {
  const img = buildBzImage({ payload: new Uint8Array(16) });
  const setupHeader = img.slice(0x1f1, 0x26c);
  const e820 = e820Map(512 * MiB);
  const page = buildBootParams({ setupHeader, protocolVersion: 0x020f, cmdlineAddr: 0x20000, cmdlineLength: 13, initrd: { addr: 0x1f000000, size: 0x123456 }, e820, rsdpAddr: 0xe0000 });
  const dv = new DataView(page.buffer);
  assert.equal(page.length, 4096);
  assert.equal(dv.getUint16(0x1fe, true), 0xaa55);
  assert.equal(dv.getUint32(0x202, true), 0x53726448);
  assert.equal(dv.getUint16(0x206, true), 0x020f);
  assert.equal(dv.getUint32(0x238, true), 2047, 'cmdline_size stays the kernel\'s');
  assert.equal(page[0x210], 0xff, 'type_of_loader');
  assert.equal(page[0x211]! & 0x01, 0x01, 'LOADED_HIGH');
  assert.equal(dv.getUint32(0x228, true), 0x20000, 'cmd_line_ptr');
  assert.equal(dv.getUint32(0x0c8, true), 0, 'ext_cmd_line_ptr');
  assert.equal(dv.getUint32(0x218, true), 0x1f000000, 'ramdisk_image');
  assert.equal(dv.getUint32(0x21c, true), 0x123456, 'ramdisk_size');
  assert.equal(dv.getUint32(0x0c0, true), 0);
  assert.equal(dv.getUint32(0x0c4, true), 0);
  assert.equal(dv.getBigUint64(0x070, true), 0xe0000n, 'acpi_rsdp_addr');
  assert.equal(page[0x1e8], e820.length);
  e820.forEach((e, i) => {
    const at = 0x2d0 + i * 20;
    assert.deepEqual([Number(dv.getBigUint64(at, true)), Number(dv.getBigUint64(at + 8, true)), dv.getUint32(at + 16, true)], [e.addr, e.size, e.type]);
  });
  assert.equal(page[0x1ef], 0, 'sentinel stays 0');
});

test('boot_params for a vmlinux: minimal header, 64-bit initrd split into ext_ fields', () => {
  const page = buildBootParams({ protocolVersion: 0x020f, cmdlineAddr: 0x20000, cmdlineLength: 9, initrd: { addr: 0x1_2345_6000, size: 0x1_0000_0010 }, e820: [], rsdpAddr: 0 });
  const dv = new DataView(page.buffer);
  assert.equal(dv.getUint16(0x1fe, true), 0xaa55);
  assert.equal(dv.getUint32(0x202, true), 0x53726448);
  assert.equal(dv.getUint16(0x206, true), 0x020f);
  assert.equal(page[0x210], 0xff);
  assert.equal(dv.getUint32(0x238, true), 9);
  assert.equal(dv.getUint32(0x218, true), 0x2345_6000);
  assert.equal(dv.getUint32(0x0c0, true), 1);
  assert.equal(dv.getUint32(0x21c, true), 0x10);
  assert.equal(dv.getUint32(0x0c4, true), 1);
  assert.equal(page[0x1e8], 0);
});

test('boot_params rejects more than 128 e820 entries and oversized headers', () => {
  const e820 = Array.from({ length: 129 }, (_, i) => ({ addr: i * 4096, size: 4096, type: 1 as const }));
  assert.throws(() => buildBootParams({ protocolVersion: 0x020f, cmdlineAddr: 0, cmdlineLength: 0, e820, rsdpAddr: 0 }), /129 e820 entries exceed the zero page's 128/);
  assert.throws(() => buildBootParams({ setupHeader: new Uint8Array(0xa0), protocolVersion: 0x020f, cmdlineAddr: 0, cmdlineLength: 0, e820: [], rsdpAddr: 0 }), /overruns boot_params/);
});

test('writeBootParams writes the page at the zero page address', () => {
  const m = mem(16 * MiB);
  writeBootParams(m, ZERO_PAGE_ADDR, { protocolVersion: 0x020f, cmdlineAddr: CMDLINE_ADDR, cmdlineLength: 1, e820: e820Map(16 * MiB), rsdpAddr: 0 });
  assert.equal(m.readU32(ZERO_PAGE_ADDR + 0x202), 0x53726448);
});

// --- CPU state, GDT, page tables ---

/** Walks 4-level paging for `va` the way the MMU does; undefined when not present. */
function translate(m: GuestMemory, cr3: bigint, va: number): number | undefined {
  const idx = (shift: number) => BigInt(Math.floor(va / 2 ** shift) % 512);
  const pml4e = m.readU64(Number(cr3 & ~0xfffn) + Number(idx(39)) * 8);
  if (!(pml4e & 1n)) return undefined;
  const pdpte = m.readU64(Number(pml4e & 0xffffffffff000n) + Number(idx(30)) * 8);
  if (!(pdpte & 1n)) return undefined;
  assert.equal(pdpte & 0x80n, 0n, 'no 1 GiB pages');
  const pde = m.readU64(Number(pdpte & 0xffffffffff000n) + Number(idx(21)) * 8);
  if (!(pde & 1n)) return undefined;
  assert.equal(pde & 0x80n, 0x80n, '2 MiB pages');
  assert.equal(pde & 2n, 2n, 'writable');
  return Number(pde & 0xfffffffe00000n) + (va % (2 * MiB));
}

test('page tables identity-map 0..4 GiB with 2 MiB pages and nothing above', () => {
  const m = mem(64 * MiB);
  const { sregs } = bootCpuState(m, 0x1000000, ZERO_PAGE_ADDR);
  for (const va of [0, 0x7000, 0x1000000, 0x1234567, 63 * MiB, 0xbfffffff, 0xd0000000, 0xfee00000, 4 * GiB - 1]) {
    assert.equal(translate(m, sregs.cr3, va), va, `0x${va.toString(16)}`);
  }
  assert.equal(translate(m, sregs.cr3, 4 * GiB), undefined);
  assert.equal(translate(m, sregs.cr3, 512 * GiB), undefined);
});

function decode(d: bigint): Omit<Segment, 'selector'> {
  const limitRaw = Number((d & 0xffffn) | (((d >> 48n) & 0xfn) << 16n));
  const access = Number((d >> 40n) & 0xffn);
  const flags = Number((d >> 52n) & 0xfn);
  const g = (flags & 8) !== 0;
  return {
    base: (d >> 16n) & 0xffffffn | (((d >> 56n) & 0xffn) << 24n),
    limit: g ? limitRaw * 4096 + 4095 : limitRaw,
    type: access & 0xf, s: (access & 0x10) !== 0, dpl: (access >> 5) & 3, present: (access & 0x80) !== 0,
    avl: (flags & 1) !== 0, l: (flags & 2) !== 0, db: (flags & 4) !== 0, g,
  };
}

test('GDT in memory matches the segment registers of the 64-bit boot protocol', () => {
  const m = mem(64 * MiB);
  const { sregs, regs } = bootCpuState(m, 0x1000200, ZERO_PAGE_ADDR);
  assert.equal(sregs.cs.selector, BOOT_CS);
  assert.equal(BOOT_CS, 0x10);
  assert.equal(BOOT_DS, 0x18);
  for (const s of [sregs.ds, sregs.es, sregs.ss]) assert.equal(s.selector, BOOT_DS);
  assert.equal(sregs.gdt.base, BigInt(GDT_ADDR));
  assert.ok(GDT_ADDR + sregs.gdt.limit < IDT_ADDR, 'GDT stays clear of the IDT slot');
  for (const seg of [sregs.cs, sregs.ds]) {
    assert.ok(seg.selector + 7 <= sregs.gdt.limit);
    const { selector: _s, ...hidden } = seg;
    assert.deepEqual(decode(m.readU64(GDT_ADDR + seg.selector)), hidden);
  }
  assert.equal(m.readU64(GDT_ADDR), 0n, 'null descriptor');
  assert.equal(encodeDescriptor(sregs.cs), 0x00af9b000000ffffn);
  assert.equal(encodeDescriptor(sregs.ds), 0x00cf93000000ffffn);
  assert.equal(sregs.cs.l, true);
  assert.equal(sregs.cs.db, false);
  assert.equal(sregs.tr.type, 11, 'busy 64-bit TSS');
  assert.equal(sregs.tr.s, false);
  assert.equal(sregs.cr0 & 0x80000001n, 0x80000001n, 'PE and PG');
  assert.equal(sregs.cr4 & 0x20n, 0x20n, 'PAE');
  assert.equal(sregs.efer & 0x500n, 0x500n, 'LME and LMA');
  assert.equal(regs.rip, 0x1000200n);
  assert.equal(regs.rsi, BigInt(ZERO_PAGE_ADDR));
  assert.equal(regs.rflags, 2n, 'interrupts off');
  assert.equal(regs.rsp, 0x8ff0n);
});

// --- prepareLinuxBoot ---

const vmlinux = buildElf({ entry: 0x1000000, segments: [{ paddr: 0x1000000, vaddr: 0xffffffff81000000n, data: pseudoRandom(0x1000), memsz: 0x200000 }] });

test('prepareLinuxBoot wires kernel, cmdline, initrd, boot_params and CPU state together', () => {
  const m = mem(256 * MiB);
  const initrd = pseudoRandom(3 * MiB + 17, 4);
  const boot = prepareLinuxBoot(m, { kernel: buildBzImage({ payload: gzipSync(vmlinux) }), initrd, cmdline: 'console=ttyS0 panic=-1', rsdpAddr: 0xe0000, memBytes: 256 * MiB });
  assert.equal(boot.kernel.format, 'bzimage-decompressed');
  assert.equal(boot.cmdline, 'console=ttyS0 panic=-1');
  assert.equal(Buffer.from(m.read(CMDLINE_ADDR, 23)).toString('latin1'), 'console=ttyS0 panic=-1\0');
  assert.ok(boot.initrd);
  assert.ok(boot.initrd.addr >= boot.kernel.kernelEnd);
  assert.deepEqual(m.read(boot.initrd.addr, initrd.length), initrd);
  assert.equal(m.readU32(ZERO_PAGE_ADDR + 0x218), boot.initrd.addr);
  assert.equal(m.readU32(ZERO_PAGE_ADDR + 0x21c), initrd.length);
  assert.equal(m.readU32(ZERO_PAGE_ADDR + 0x228), CMDLINE_ADDR);
  assert.equal(m.readU8(ZERO_PAGE_ADDR + 0x1e8), e820Map(256 * MiB).length);
  assert.equal(m.readU64(ZERO_PAGE_ADDR + 0x70), 0xe0000n);
  assert.equal(boot.cpu.regs.rip, 0x1000000n);
  assert.equal(boot.cpu.regs.rsi, BigInt(ZERO_PAGE_ADDR));
});

test('prepareLinuxBoot with a vmlinux and no initrd', () => {
  const m = mem(64 * MiB);
  const boot = prepareLinuxBoot(m, { kernel: vmlinux, cmdline: '', rsdpAddr: 0, memBytes: 64 * MiB });
  assert.equal(boot.kernel.format, 'elf');
  assert.equal(boot.initrd, undefined);
  assert.equal(m.readU8(CMDLINE_ADDR), 0);
  assert.equal(m.readU32(ZERO_PAGE_ADDR + 0x218), 0);
  assert.equal(m.readU16(ZERO_PAGE_ADDR + 0x206), 0x020f);
});

test('prepareLinuxBoot refuses a command line longer than the kernel accepts', () => {
  const m = mem(64 * MiB);
  const kernel = buildBzImage({ payload: gzipSync(vmlinux), cmdlineSize: 15 });
  assert.throws(() => prepareLinuxBoot(m, { kernel, cmdline: 'console=ttyS0 quiet', rsdpAddr: 0, memBytes: 64 * MiB }), (e: unknown) => e instanceof CmdlineError && e.kind === 'too-long' && /limit of 16/.test(e.message));
});
