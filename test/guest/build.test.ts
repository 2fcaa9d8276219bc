import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildGuests, guestToolchainMissing, GUEST_SRC } from './build-guests.js';

const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
const EM_X86_64 = 62;
const PT_LOAD = 1;
const KERNEL_LOAD = 0x100_0000n;
const FOUR_GIB = 0x1_0000_0000n;

interface Phdr { type: number; flags: number; offset: bigint; vaddr: bigint; paddr: bigint; filesz: bigint; memsz: bigint }

function readElf(buf: Buffer) {
  assert.equal(buf.toString('latin1', 0, 4), '\x7fELF', 'ELF magic');
  const phoff = buf.readBigUInt64LE(0x20);
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const phdrs: Phdr[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = Number(phoff) + i * phentsize;
    phdrs.push({
      type: buf.readUInt32LE(o), flags: buf.readUInt32LE(o + 4), offset: buf.readBigUInt64LE(o + 8),
      vaddr: buf.readBigUInt64LE(o + 16), paddr: buf.readBigUInt64LE(o + 24),
      filesz: buf.readBigUInt64LE(o + 32), memsz: buf.readBigUInt64LE(o + 40),
    });
  }
  return { cls: buf[4], data: buf[5], type: buf.readUInt16LE(0x10), machine: buf.readUInt16LE(0x12), entry: buf.readBigUInt64LE(0x18), phdrs };
}

function symbols(elf: string): Map<string, bigint> {
  const r = spawnSync('nm', [elf], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = new Map<string, bigint>();
  for (const line of r.stdout.split('\n')) {
    const [addr, , name] = line.split(' ');
    if (addr && name) out.set(name, BigInt(`0x${addr}`));
  }
  return out;
}

test('guest build: test-guest.elf is a vmlinux-style ELF64 loaded and entered at 16 MiB', (t) => {
  const missing = guestToolchainMissing();
  if (missing) return t.skip(missing);
  const { testGuest } = buildGuests();
  const elf = readElf(readFileSync(testGuest));
  assert.equal(elf.cls, ELFCLASS64);
  assert.equal(elf.data, ELFDATA2LSB);
  assert.equal(elf.type, ET_EXEC);
  assert.equal(elf.machine, EM_X86_64);
  assert.equal(elf.entry, KERNEL_LOAD, 'e_entry is startup_64 at 16 MiB');
  const loads = elf.phdrs.filter((p) => p.type === PT_LOAD);
  assert.equal(loads.length, 2, 'one R+X and one R+W segment');
  assert.equal(loads[0]!.paddr, KERNEL_LOAD);
  for (const p of loads) {
    assert.equal(p.paddr, p.vaddr, 'identity mapped: physical = virtual');
    assert.ok(p.memsz >= p.filesz);
    assert.ok(p.paddr + p.memsz <= FOUR_GIB, 'below 4 GiB: inside the boot identity map and reachable by the 32-bit AP path');
  }
  // Small and quick: the whole image is well under 1 MiB.
  const end = loads.reduce((m, p) => (p.paddr + p.memsz > m ? p.paddr + p.memsz : m), 0n);
  assert.ok(end - KERNEL_LOAD < 0x10_0000n, `image spans ${end - KERNEL_LOAD} bytes`);
});

test('guest build: the AP trampoline fits one page and the entry points exist', (t) => {
  const missing = guestToolchainMissing();
  if (missing) return t.skip(missing);
  const syms = symbols(buildGuests().testGuest);
  for (const name of ['startup_64', 'trampoline_start', 'trampoline_end', 'exception_handler', 'ap_main', 'tg_main']) {
    assert.ok(syms.has(name), `symbol ${name}`);
  }
  const size = syms.get('trampoline_end')! - syms.get('trampoline_start')!;
  assert.ok(size > 0n && size <= 0x1000n, `trampoline is ${size} bytes`);
  assert.equal(syms.get('startup_64'), KERNEL_LOAD);
});

test('guest build: no SSE/AVX instructions (the boot protocol does not enable them)', (t) => {
  const missing = guestToolchainMissing();
  if (missing) return t.skip(missing);
  const dis = readFileSync(buildGuests().disassembly, 'utf8');
  const vector = dis.split('\n').filter((l) => /\t(v?mov(aps|ups|dqa|dqu|q\s+%xmm)|pxor|xorps|%[xy]mm)/.test(l));
  assert.deepEqual(vector, []);
});

test('guest build: build.sh refuses a missing OUTDIR and a missing compiler with a clear message', (t) => {
  const missing = guestToolchainMissing();
  if (missing) return t.skip(missing);
  const script = join(GUEST_SRC, 'build.sh');
  const noArg = spawnSync(script, [], { encoding: 'utf8' });
  assert.equal(noArg.status, 2);
  assert.match(noArg.stderr, /usage: .*build\.sh OUTDIR/);
  const noCc = spawnSync(script, ['/tmp/typevisor-never-built'], { encoding: 'utf8', env: { ...process.env, CC: 'no-such-cc' } });
  assert.equal(noCc.status, 3);
  assert.match(noCc.stderr, /C compiler 'no-such-cc' not found/);
});
