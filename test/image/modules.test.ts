/**
 * Module load order: synthetic modules for each rule (dependencies, name
 * normalisation, built-ins, cycles, compression), and Debian's real kernel
 * package cross-checked against the modules.dep that kmod's depmod writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readModinfo, resolveModules } from '../../src/image/modules.js';
import { GUEST_MODULES } from '../../src/image/build.js';
import { ImageError } from '../../src/image/errors.js';
import { debCache, imageBuildMissing, needTool, testImage, which } from './helpers.js';

/** A minimal ELF64 relocatable with sections: null, .modinfo, .shstrtab. */
function fakeModule(modinfo: string[], elfClass = 2): Uint8Array {
  const info = Buffer.from(modinfo.map((s) => `${s}\0`).join(''));
  const shstr = Buffer.from('\0.modinfo\0.shstrtab\0');
  const infoAt = 0x40;
  const strAt = infoAt + info.length;
  const shoff = (strAt + shstr.length + 7) & ~7;
  const out = Buffer.alloc(shoff + 3 * 0x40);
  out.set([0x7f, 0x45, 0x4c, 0x46, elfClass, 1, 1], 0);
  out.writeUInt16LE(1, 0x10); // ET_REL
  out.writeUInt16LE(62, 0x12); // EM_X86_64
  out.writeBigUInt64LE(BigInt(shoff), 0x28);
  out.writeUInt16LE(0x40, 0x34);
  out.writeUInt16LE(0x40, 0x3a);
  out.writeUInt16LE(3, 0x3c);
  out.writeUInt16LE(2, 0x3e);
  out.set(info, infoAt);
  out.set(shstr, strAt);
  const sh = (i: number, name: number, offset: number, size: number) => {
    const at = shoff + i * 0x40;
    out.writeUInt32LE(name, at);
    out.writeUInt32LE(1, at + 4); // SHT_PROGBITS
    out.writeBigUInt64LE(BigInt(offset), at + 0x18);
    out.writeBigUInt64LE(BigInt(size), at + 0x20);
  };
  sh(1, 1, infoAt, info.length);
  sh(2, 10, strAt, shstr.length);
  return out;
}

function tree(files: Record<string, Uint8Array | string>): string {
  const root = mkdtempSync(join(tmpdir(), 'typevisor-modules-'));
  for (const [path, data] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), data);
  }
  return root;
}

const mod = (name: string, depends: string) => fakeModule([`license=GPL`, `depends=${depends}`, `name=${name}`]);

test('readModinfo returns the key=value strings of .modinfo', () => {
  assert.deepEqual(readModinfo(fakeModule(['license=GPL', 'depends=a,b', 'alias=x=y'])), [
    { key: 'license', value: 'GPL' },
    { key: 'depends', value: 'a,b' },
    { key: 'alias', value: 'x=y' },
  ]);
});

test('readModinfo refuses what is not an ELF64 module, naming the file', () => {
  const good = fakeModule(['depends=']);
  const noModinfo = Buffer.from(good);
  noModinfo.set(Buffer.from('.nomodin'), 0x40 + 'depends=\0'.length + 1); // rename the section
  const cases: [Uint8Array, RegExp][] = [
    [Buffer.from('not an elf at all, but long enough to have a header.................'), /m.ko: not a valid kernel module \(no ELF magic\)/],
    [fakeModule(['depends='], 1), /not ELF64/],
    [good.subarray(0, 0x50), /section headers out of bounds/],
    [noModinfo, /no \.modinfo section/],
  ];
  for (const [bytes, re] of cases) assert.throws(() => readModinfo(bytes, 'm.ko'), (e: unknown) => e instanceof ImageError && e.kind === 'bad-package' && re.test(e.message), String(re));
});

test('dependencies load first, each once; names with - and _ are one module; built-ins are skipped', () => {
  const root = tree({
    'kernel/drivers/top.ko': mod('top', 'mid,leaf_dash,core'),
    'kernel/drivers/mid.ko': mod('mid', 'leaf_dash'),
    'kernel/lib/leaf-dash.ko': mod('leaf_dash', ''),
    'kernel/other/unrelated.ko': mod('unrelated', ''),
    'modules.builtin': 'kernel/lib/core.ko\nkernel/fs/ext9/ext9.ko\n',
  });
  try {
    const set = resolveModules(root, ['top', 'ext9', 'mid']);
    assert.deepEqual(set.load.map((m) => m.name), ['leaf_dash', 'mid', 'top']);
    assert.deepEqual(set.load.map((m) => m.path), ['kernel/lib/leaf-dash.ko', 'kernel/drivers/mid.ko', 'kernel/drivers/top.ko']);
    assert.deepEqual(set.builtin, ['core', 'ext9']);
    assert.deepEqual(set.load[2]!.data, mod('top', 'mid,leaf_dash,core'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a missing module is an error naming it and what needs it; a cycle is an error listing it', () => {
  const root = tree({
    'kernel/a.ko': mod('a', 'gone'),
    'kernel/b.ko': mod('b', 'c'),
    'kernel/c.ko': mod('c', 'b'),
  });
  try {
    assert.throws(() => resolveModules(root, ['nothere']), /kernel module "nothere" is neither in .* nor built in/);
    assert.throws(() => resolveModules(root, ['a']), /kernel module "gone" \(needed by a\)/);
    assert.throws(() => resolveModules(root, ['b']), /module dependency cycle: b -> c -> b/);
    assert.throws(() => resolveModules(join(root, 'kernel'), ['a']), /has no kernel\/ directory/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('compressed modules (.ko.xz, .ko.zst, .ko.gz) are decompressed and stored as .ko', (t) => {
  if (!which('xz') || !which('zstd')) return t.skip('xz or zstd CLI not installed (apt-get install xz-utils zstd)');
  const plain = { x: mod('x', ''), z: mod('z', 'x'), g: mod('g', 'z') };
  // kmod compresses with `xz --check=crc32` (the kernel's xz decoder knows no CRC64) and `zstd`.
  const xz = execFileSync('xz', ['--check=crc32', '-c'], { input: plain.x });
  const zst = execFileSync('zstd', ['-q', '-c'], { input: plain.z });
  const root = tree({ 'kernel/x.ko.xz': xz, 'kernel/z.ko.zst': zst, 'kernel/g.ko.gz': gzipSync(plain.g) });
  try {
    const set = resolveModules(root, ['g']);
    assert.deepEqual(set.load.map((m) => m.path), ['kernel/x.ko', 'kernel/z.ko', 'kernel/g.ko']);
    assert.deepEqual(set.load.map((m) => Buffer.from(m.data)), [plain.x, plain.z, plain.g].map((b) => Buffer.from(b)));
    writeFileSync(join(root, 'kernel/z.ko.zst'), 'not zstd');
    assert.throws(() => resolveModules(root, ['g']), /kernel\/z\.ko\.zst: cannot decompress/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** modules.dep lines: "kernel/x.ko: kernel/dep1.ko kernel/dep2.ko" (all dependencies, nearest first). */
function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) deps.set(line.slice(0, i), line.slice(i + 1).trim().split(/\s+/).filter((d) => d !== ''));
  }
  return deps;
}

test("Debian's kernel: the order agrees with depmod's modules.dep", async (t) => {
  const missing = imageBuildMissing() ?? needTool('depmod', 'kmod');
  if (missing) return t.skip(missing);
  await testImage(); // fills the .deb cache
  const deb = readdirSync(debCache()).find((f) => f.startsWith('linux-image-') && f.includes('-cloud-amd64_') && f.endsWith('.deb'));
  if (!deb) return t.skip('no linux-image-*-cloud-amd64 .deb in the test cache');
  const root = mkdtempSync(join(tmpdir(), 'typevisor-kernel-'));
  try {
    execFileSync('dpkg-deb', ['-x', join(debCache(), deb), root]);
    const release = readdirSync(join(root, 'lib/modules'))[0]!;
    const depmod = which('depmod') ?? '/usr/sbin/depmod';
    execFileSync(depmod, ['-b', root, release]);
    const modulesDir = join(root, 'lib/modules', release);
    const dep = parseModulesDep(readFileSync(join(modulesDir, 'modules.dep'), 'utf8'));
    const set = resolveModules(modulesDir, GUEST_MODULES);
    const order = set.load.map((m) => m.path);
    for (const [i, path] of order.entries()) {
      const needs = dep.get(path);
      assert.ok(needs, `${path} is in modules.dep`);
      for (const d of needs) assert.ok(order.indexOf(d) >= 0 && order.indexOf(d) < i, `${d} loads before ${path}`);
    }
    // Exactly the wanted modules and everything modules.dep says they need.
    const byName = new Map([...dep.keys()].map((p) => [p.slice(p.lastIndexOf('/') + 1, -3).replace(/-/g, '_'), p]));
    const expected = new Set<string>();
    for (const w of GUEST_MODULES) {
      const p = byName.get(w);
      if (!p) continue; // built in
      expected.add(p);
      for (const d of dep.get(p)!) expected.add(d);
    }
    assert.deepEqual(new Set(order), expected);
    const builtin = readFileSync(join(modulesDir, 'modules.builtin'), 'utf8');
    for (const b of set.builtin) assert.match(builtin, new RegExp(`/${b}\\.ko$`, 'm'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
