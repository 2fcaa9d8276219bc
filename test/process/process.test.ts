/**
 * Process mode without outside programs: the address space, the ELF loader
 * (on hand-built executables), the initial stack, exit statuses, faults
 * as signals, unknown system calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, PAGE_SIZE, VEC_PF } from '../../src/engine/soft/mmu.js';
import { AddressSpace, EfaultError, PROT_EXEC, PROT_READ, PROT_WRITE } from '../../src/process/address-space.js';
import { AT_ENTRY, AT_NULL, AT_PAGESZ, AT_PHDR, AT_RANDOM, ElfError, loadElf } from '../../src/process/elf.js';
import { ExecError, exitCodeOf, Kernel } from '../../src/process/kernel.js';

test('translate: permissions per region, faults name the address and the access', () => {
  const as = new AddressSpace();
  as.map(0x400000, 0x2000, PROT_READ | PROT_EXEC, 'text');
  as.map(0x600000, 0x1000, PROT_READ | PROT_WRITE, 'data');
  assert.ok(as.translate(0x400, ACCESS_EXEC));
  assert.ok(as.translate(0x401, ACCESS_READ));
  assert.throws(() => as.translate(0x400, ACCESS_WRITE), (e: { vector?: number; address?: number }) => e.vector === VEC_PF && e.address === 0x400000);
  assert.throws(() => as.translate(0x600, ACCESS_EXEC), /fetch at 0x600000 \(protection\)/);
  assert.throws(() => as.translate(0x402, ACCESS_READ), /read at 0x402000 \(not mapped\)/);
});

test('unmap and protect split regions; pages read as zero again after a new map', () => {
  const as = new AddressSpace();
  as.map(0x10000, 4 * PAGE_SIZE, PROT_READ | PROT_WRITE, 'a');
  as.writeBytes(0x11000, Uint8Array.of(1, 2, 3));
  as.unmap(0x12000, PAGE_SIZE);
  assert.deepEqual(as.listRegions().map((r) => [r.start, r.end]), [[0x10000, 0x12000], [0x13000, 0x14000]]);
  assert.equal(as.protect(0x10000, PAGE_SIZE, PROT_READ), true);
  assert.equal(as.protect(0x12000, PAGE_SIZE, PROT_READ), false, 'unmapped range');
  assert.throws(() => as.writeBytes(0x10000, Uint8Array.of(9)), EfaultError);
  assert.deepEqual(Array.from(as.readBytes(0x11000, 3)), [1, 2, 3]);
  as.map(0x11000, PAGE_SIZE, PROT_READ, 'b');
  assert.deepEqual(Array.from(as.readBytes(0x11000, 3)), [0, 0, 0]);
});

test('system-call copies are all-or-nothing and report EFAULT', () => {
  const as = new AddressSpace();
  as.map(0x10000, PAGE_SIZE, PROT_READ | PROT_WRITE, 'a');
  // A write running off the mapped page changes nothing.
  assert.throws(() => as.writeBytes(0x10ffe, Uint8Array.of(1, 2, 3, 4)), EfaultError);
  assert.deepEqual(Array.from(as.readBytes(0x10ffe, 2)), [0, 0]);
  assert.throws(() => as.readBytes(0x10ffe, 4), EfaultError);
  as.writeBytes(0x10ffe, Uint8Array.of(0x41, 0x42));
  assert.throws(() => as.readCString(0x10ffe), EfaultError, 'no NUL before the end of the mapping');
});

test('findFree goes top-down and skips mappings; clone copies pages', () => {
  const as = new AddressSpace();
  as.map(0x7000_0000_0000 - 0x3000, 0x3000, PROT_READ, 'x');
  assert.equal(as.findFree(0x2000, 0x7000_0000_0000), 0x7000_0000_0000 - 0x5000);
  as.map(0x20000, PAGE_SIZE, PROT_READ | PROT_WRITE, 'y');
  as.writeBytes(0x20000, Uint8Array.of(7));
  const c = as.clone();
  c.writeBytes(0x20000, Uint8Array.of(8));
  assert.equal(as.readBytes(0x20000, 1)[0], 7);
  assert.equal(c.readBytes(0x20000, 1)[0], 8);
});

/** A minimal static ELF64 executable: one PT_LOAD (R+X) at 0x400000 holding `code` after the headers. */
function tinyElf(code: number[], patch?: (v: DataView) => void): Uint8Array {
  const b = new Uint8Array(0x78 + code.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, 0x464c457f, true);
  b[4] = 2; b[5] = 1; b[6] = 1;
  v.setUint16(0x10, 2, true); // ET_EXEC
  v.setUint16(0x12, 62, true); // x86-64
  v.setUint32(0x14, 1, true);
  v.setBigUint64(0x18, 0x400078n, true); // entry
  v.setBigUint64(0x20, 0x40n, true); // phoff
  v.setUint16(0x34, 64, true);
  v.setUint16(0x36, 56, true);
  v.setUint16(0x38, 1, true);
  v.setUint32(0x40, 1, true); // PT_LOAD
  v.setUint32(0x44, 5, true); // R+X
  v.setBigUint64(0x48, 0n, true);
  v.setBigUint64(0x50, 0x400000n, true);
  v.setBigUint64(0x58, 0x400000n, true);
  v.setBigUint64(0x60, BigInt(b.length), true);
  v.setBigUint64(0x68, BigInt(b.length), true);
  v.setBigUint64(0x70, 0x1000n, true);
  b.set(code, 0x78);
  patch?.(v);
  return b;
}

const EXIT_42 = [0xb8, 60, 0, 0, 0, 0xbf, 42, 0, 0, 0, 0x0f, 0x05]; // mov eax, 60; mov edi, 42; syscall

test('the ELF loader checks every header before mapping anything', () => {
  const bad: [string, Uint8Array, RegExp][] = [
    ['short', new Uint8Array(10), /too short/],
    ['magic', tinyElf(EXIT_42, (v) => v.setUint32(0, 0x12345678, true)), /bad magic/],
    ['class', tinyElf(EXIT_42, (v) => v.setUint8(4, 1)), /64-bit/],
    ['machine', tinyElf(EXIT_42, (v) => v.setUint16(0x12, 3, true)), /x86-64/],
    ['type', tinyElf(EXIT_42, (v) => v.setUint16(0x10, 1, true)), /not an executable/],
    ['phentsize', tinyElf(EXIT_42, (v) => v.setUint16(0x36, 32, true)), /header size/],
    ['phdrs past end', tinyElf(EXIT_42, (v) => v.setBigUint64(0x20, 0x10000n, true)), /past the end/],
    ['filesz > memsz', tinyElf(EXIT_42, (v) => v.setBigUint64(0x68, 1n, true)), /p_filesz > p_memsz/],
    ['segment past end', tinyElf(EXIT_42, (v) => { v.setBigUint64(0x60, 0x100000n, true); v.setBigUint64(0x68, 0x100000n, true); }), /past the end/],
    ['alignment', tinyElf(EXIT_42, (v) => v.setBigUint64(0x50, 0x400010n, true)), /modulo the page size/],
    ['kernel address', tinyElf(EXIT_42, (v) => v.setBigUint64(0x50, 0x7fff_ffff_0000n, true)), /outside user space/],
    ['no load', tinyElf(EXIT_42, (v) => v.setUint32(0x40, 4, true)), /no PT_LOAD/],
  ];
  for (const [name, file, re] of bad) {
    const as = new AddressSpace();
    assert.throws(() => loadElf(file, as), (e: unknown) => e instanceof ElfError && re.test(e.message), name);
    assert.equal(as.listRegions().length, 0, `${name}: nothing mapped`);
  }
});

function writeExe(bytes: Uint8Array): string {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tv-proc-')), 'prog');
  fs.writeFileSync(f, bytes, { mode: 0o755 });
  return f;
}

test('a program runs and its exit status passes through', async () => {
  const k = new Kernel({ log: () => undefined });
  const p = k.spawn(writeExe(tinyElf(EXIT_42)), ['prog'], []);
  assert.equal(exitCodeOf(await k.run(p)), 42);
});

test('the initial stack holds argc, argv, envp and the auxiliary vector (psABI 3.4.1)', () => {
  const file = writeExe(tinyElf(EXIT_42));
  const k = new Kernel({ log: () => undefined });
  const p = k.spawn(file, ['prog', 'one', 'two'], ['A=1']);
  const sp = Number(p.cpu.reg64(4));
  assert.equal(sp % 16, 0, 'RSP 16-byte aligned');
  const word = (n: number): number => p.as.readU64(sp + n * 8);
  const cstr = (a: number): string => new TextDecoder().decode(p.as.readCString(a));
  assert.equal(word(0), 3);
  assert.deepEqual([1, 2, 3].map((n) => cstr(word(n))), ['prog', 'one', 'two']);
  assert.equal(word(4), 0);
  assert.equal(cstr(word(5)), 'A=1');
  assert.equal(word(6), 0);
  const aux = new Map<number, number>();
  for (let n = 7; ; n += 2) { const t = word(n); if (t === AT_NULL) break; aux.set(t, word(n + 1)); }
  assert.equal(aux.get(AT_PAGESZ), 4096);
  assert.equal(aux.get(AT_ENTRY), 0x400078);
  assert.equal(aux.get(AT_PHDR), 0x400040);
  assert.equal(p.as.readBytes(aux.get(AT_RANDOM) ?? 0, 16).length, 16);
  assert.equal(p.cpu.rip, 0x400078);
});

test('an unknown system call returns -ENOSYS and is reported once', async () => {
  // mov eax, 999; syscall; mov eax, 999; syscall; mov edi, eax; mov eax, 60; syscall
  const code = [0xb8, 0xe7, 3, 0, 0, 0x0f, 0x05, 0xb8, 0xe7, 3, 0, 0, 0x0f, 0x05, 0x89, 0xc7, 0xb8, 60, 0, 0, 0, 0x0f, 0x05];
  const log: string[] = [];
  const k = new Kernel({ log: (m) => log.push(m) });
  const p = k.spawn(writeExe(tinyElf(code)), ['prog'], []);
  assert.equal(exitCodeOf(await k.run(p)), (256 - 38) & 0xff);
  assert.deepEqual(log, ['unimplemented system call 999: returning -ENOSYS']);
});

test('a fault kills the process with the matching signal (128 + n as an exit code)', async () => {
  // mov [0], eax -> SIGSEGV; ud2 -> SIGILL; xor ecx, ecx; div ecx -> SIGFPE
  const cases: [number[], number][] = [[[0x89, 0x04, 0x25, 0, 0, 0, 0], 11], [[0x0f, 0x0b], 4], [[0x31, 0xc9, 0xf7, 0xf1], 8]];
  for (const [code, sig] of cases) {
    const log: string[] = [];
    const k = new Kernel({ log: (m) => log.push(m) });
    const p = k.spawn(writeExe(tinyElf(code)), ['prog'], []);
    assert.equal(exitCodeOf(await k.run(p)), 128 + sig);
    assert.match(log.join('\n'), new RegExp(`killed by signal ${sig}`));
  }
});

test('exec of a missing or non-ELF file is an ExecError', () => {
  const k = new Kernel({ log: () => undefined });
  assert.throws(() => k.spawn('/no/such/file', ['x'], []), ExecError);
  assert.throws(() => k.spawn(writeExe(new TextEncoder().encode('#!/bin/sh\necho hi\n')), ['x'], []), /not a static x86-64 executable/);
});
