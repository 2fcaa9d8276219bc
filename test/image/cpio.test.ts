/**
 * The newc writer against GNU cpio, byte for byte, and its refusals.
 *
 * GNU cpio archives a real tree; we make its output comparable:
 * - mtime: every entry of the tree is set to the epoch (`touch -h -d @0`), the
 *   writer's default;
 * - uid/gid: `-R 0:0`, the writer's fixed owner;
 * - inode numbers and the archived files' device: `--reproducible`
 *   (= --renumber-inodes --ignore-devno) numbers inodes 0, 1, 2… in archive
 *   order and writes device 0:0, as the writer does;
 * - nlink: GNU writes st_nlink; regular files have one link in the tree (no
 *   hard links), directories 2 + subdirectories on Linux file systems (the
 *   test checks that holds where it builds the tree), which the writer computes;
 * - order and names: GNU reads the names from stdin, given in the order of our
 *   entry list, relative ("bin/busybox"), as the writer writes them;
 * - length: GNU pads the archive to its 512-byte block; so does the writer by default.
 * Device nodes keep their rdev numbers in both (--ignore-devno zeroes only the
 * device the file lives on).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, statSync, symlinkSync, writeFileSync, chmodSync, rmSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNewc, CpioError, type CpioEntry } from '../../src/image/cpio.js';
import { treeEntries } from '../../src/image/tree.js';
import { isRoot, needTool } from './helpers.js';

const dec = new TextDecoder();

/** A tree with every entry kind: nested dirs, files of sizes 0..9 (every padding case), special modes, symlinks, device nodes. */
function makeTree(withDevices: boolean): string {
  const root = mkdtempSync(join(tmpdir(), 'typevisor-cpio-'));
  mkdirSync(join(root, 'bin'));
  mkdirSync(join(root, 'etc/deep/er'), { recursive: true });
  mkdirSync(join(root, 'tmp'));
  chmodSync(join(root, 'tmp'), 0o1777);
  for (let n = 0; n < 10; n++) writeFileSync(join(root, 'etc', `f${n}`), 'x'.repeat(n));
  writeFileSync(join(root, 'bin/tool'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3, 255]));
  chmodSync(join(root, 'bin/tool'), 0o4755);
  writeFileSync(join(root, 'etc/deep/er/secret'), 'top secret\n');
  chmodSync(join(root, 'etc/deep/er/secret'), 0o600);
  writeFileSync(join(root, 'init'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'init'), 0o755);
  symlinkSync('tool', join(root, 'bin/sh'));
  symlinkSync('../etc/deep/er/secret', join(root, 'bin/a-much-longer-symlink-name'));
  if (withDevices) {
    mkdirSync(join(root, 'dev'));
    execFileSync('mknod', ['-m', '600', join(root, 'dev/console'), 'c', '5', '1']);
    execFileSync('mknod', ['-m', '660', join(root, 'dev/ttyS0'), 'c', '4', '64']);
    execFileSync('mknod', ['-m', '660', join(root, 'dev/vda'), 'b', '254', '0']);
    execFileSync('mknod', ['-m', '600', join(root, 'dev/big'), 'c', '511', '70000']); // minor > 255: the split dev_t encoding
  }
  execFileSync('sh', ['-c', 'find . -exec touch -h -d @0 {} +'], { cwd: root });
  return root;
}

function gnuCpio(root: string, entries: CpioEntry[]): Buffer {
  return execFileSync('cpio', ['-o', '-H', 'newc', '--reproducible', '-R', '0:0', '--quiet'], {
    cwd: root,
    input: entries.map((e) => `${e.path}\n`).join(''),
    maxBuffer: 64 * 1024 * 1024,
  });
}

test('newc output is byte-identical to GNU cpio -H newc --reproducible -R 0:0', (t) => {
  const missing = needTool('cpio', 'cpio');
  if (missing) return t.skip(missing);
  const root = makeTree(isRoot);
  try {
    // The nlink normalisation assumes Linux directory link counts.
    assert.equal(statSync(join(root, 'etc')).nlink, 3, 'directory nlink is 2 + subdirectories on this file system');
    assert.equal(lstatSync(join(root, 'bin/sh')).mtimeMs, 0);
    const entries = treeEntries(root);
    assert.ok(entries.some((e) => e.type === 'symlink') && entries.some((e) => e.type === 'dir'));
    if (isRoot) assert.ok(entries.some((e) => e.type === 'block') && entries.some((e) => e.type === 'char'));
    const ours = writeNewc(entries);
    const theirs = gnuCpio(root, entries);
    assert.equal(ours.length, theirs.length, 'archive length');
    assert.ok(Buffer.from(ours).equals(theirs), 'archives differ');
    if (!isRoot) t.diagnostic('not root: device nodes left out of the compared tree (mknod needs root)');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('GNU cpio unpacks the archive to the same tree', (t) => {
  const missing = needTool('cpio', 'cpio');
  if (missing) return t.skip(missing);
  const root = makeTree(isRoot);
  const out = mkdtempSync(join(tmpdir(), 'typevisor-cpio-out-'));
  try {
    const entries = treeEntries(root);
    execFileSync('cpio', ['-i', '-d', '-m', '--quiet'], { cwd: out, input: writeNewc(entries) });
    assert.deepEqual(treeEntries(out), entries);
  } finally {
    rmSync(root, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
});

test('header fields, name and data padding, trailer and block padding', () => {
  const a = writeNewc([{ path: 'd', type: 'dir', mode: 0o755 }, { path: 'd/abc', type: 'file', mode: 0o644, data: new Uint8Array([1, 2, 3, 4, 5]) }], { mtime: 0x1234 });
  const field = (at: number, i: number) => parseInt(dec.decode(a.subarray(at + 6 + i * 8, at + 14 + i * 8)), 16);
  assert.equal(dec.decode(a.subarray(0, 6)), '070701');
  // entry 0: "d" — 110 + 2 bytes of name = 112, already aligned
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 11].map((i) => field(0, i)), [0, 0o040755, 0, 0, 2, 0x1234, 0, 2]);
  assert.equal(dec.decode(a.subarray(110, 111)), 'd');
  // entry 1 at 112: header + name "d/abc\0" = 116 bytes, aligned; 5 data bytes at 228 padded to 8
  assert.deepEqual([0, 1, 4, 6, 11].map((i) => field(112, i)), [1, 0o100644, 1, 5, 6]);
  assert.deepEqual([...a.subarray(228, 236)], [1, 2, 3, 4, 5, 0, 0, 0]);
  // trailer at 236: 110 + "TRAILER!!!\0" = 121, padded to 124
  assert.equal(dec.decode(a.subarray(236 + 110, 236 + 121)), 'TRAILER!!!\0');
  assert.deepEqual([0, 1, 4, 6, 11].map((i) => field(236, i)), [0, 0, 1, 0, 11]);
  assert.equal(a.length, 512);
  assert.ok(a.subarray(236 + 121).every((b) => b === 0));
  // Without block padding the archive ends at the 4-byte-aligned trailer.
  const b = writeNewc([{ path: 'x', type: 'file', mode: 0o644, data: new Uint8Array(3) }], { blockSize: 4 });
  assert.equal(b.length, 112 + 4 + 124);
});

test('symlink data is its target without NUL; device numbers in rdev', () => {
  const a = writeNewc([
    { path: 'l', type: 'symlink', mode: 0o777, target: 'busybox' },
    { path: 'c', type: 'char', mode: 0o600, major: 4, minor: 64 },
  ], { blockSize: 4 });
  const field = (at: number, i: number) => parseInt(dec.decode(a.subarray(at + 6 + i * 8, at + 14 + i * 8)), 16);
  assert.equal(field(0, 1), 0o120777);
  assert.equal(field(0, 6), 7);
  assert.equal(dec.decode(a.subarray(112, 119)), 'busybox');
  const c = 120;
  assert.equal(field(c, 1), 0o020600);
  assert.deepEqual([field(c, 6), field(c, 7), field(c, 8), field(c, 9), field(c, 10)], [0, 0, 0, 4, 64]);
});

test('entry lists that cannot form an archive are refused with the reason', () => {
  const file = (path: string, mode = 0o644): CpioEntry => ({ path, type: 'file', mode, data: new Uint8Array(0) });
  const cases: [CpioEntry[], RegExp][] = [
    [[file('a/b')], /"a\/b": its directory "a" must come earlier/],
    [[file('a'), file('a/b')], /its directory "a" must come earlier/],
    [[file('a'), file('a')], /"a" appears twice/],
    [[file('/etc')], /relative, with no leading or trailing/],
    [[file('etc/')], /relative, with no leading or trailing/],
    [[file('')], /relative/],
    [[{ path: 'x', type: 'dir', mode: 0o755 }, file('x/../y')], /"\.\." components/],
    [[file('./y')], /"\." and "\.\." components/],
    [[file('a//b')], /empty/],
    [[file('n\0ul')], /NUL/],
    [[file('x'.repeat(4096))], /PATH_MAX/],
    [[file('m', 0o10000)], /mode 0o10000 is not permission bits/],
    [[file('m', -1)], /not permission bits/],
    [[{ path: 'l', type: 'symlink', mode: 0o777, target: '' }], /symlink target/],
    [[{ path: 'd', type: 'char', mode: 0o600, major: 4096, minor: 0 }], /major 4096/],
    [[{ path: 'd', type: 'block', mode: 0o600, major: 1, minor: 1 << 20 }], /minor 1048576/],
    [[{ path: 'd', type: 'char', mode: 0o600, major: 1.5, minor: 0 }], /major 1.5/],
  ];
  for (const [entries, re] of cases) assert.throws(() => writeNewc(entries), (e: unknown) => e instanceof CpioError && re.test(e.message), `${JSON.stringify(entries.map((e) => e.path))} → ${re}`);
  assert.throws(() => writeNewc([], { blockSize: 6 }), /block size 6/);
  assert.throws(() => writeNewc([], { mtime: -1 }), /mtime -1/);
  assert.throws(() => writeNewc([], { mtime: 2 ** 32 }), /mtime/);
});

test('a file too large for the 32-bit size field is refused', () => {
  // A fake length: the check must not need 4 GiB of memory.
  const huge = { length: 2 ** 32 } as unknown as Uint8Array;
  assert.throws(() => writeNewc([{ path: 'big', type: 'file', mode: 0o644, data: huge }]), /32-bit size field/);
});

test('the same entries always give the same bytes', () => {
  const entries: CpioEntry[] = [{ path: 'a', type: 'dir', mode: 0o755 }, { path: 'a/f', type: 'file', mode: 0o644, data: new Uint8Array([9]) }];
  assert.deepEqual(writeNewc(entries), writeNewc(entries));
});
