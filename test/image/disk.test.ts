/**
 * `typevisor image disk`: the ext4 image holds the tree (read back with
 * e2fsprogs' debugfs, an independent reader), and every bad input fails with
 * a message that says what to do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { makeDiskImage } from '../../src/image/disk.js';
import { ImageError } from '../../src/image/errors.js';
import { imageCommand } from '../../src/cli/image.js';
import { needTool } from './helpers.js';

const MiB = 1024 * 1024;

function work(): string {
  return mkdtempSync(join(tmpdir(), 'typevisor-disk-'));
}

function debugfs(image: string, request: string): string {
  const debugfsPath = ['/usr/sbin/debugfs', '/sbin/debugfs'].find(existsSync) ?? 'debugfs';
  return execFileSync(debugfsPath, ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * MiB });
}

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({ write(chunk, _enc, done) { text += String(chunk); done(); } });
  return { stream, text: () => text };
}

test('the ext4 image holds the files, directories and symlinks of --from', async (t) => {
  const missing = needTool('mke2fs', 'e2fsprogs') ?? needTool('debugfs', 'e2fsprogs');
  if (missing) return t.skip(missing);
  const dir = work();
  try {
    const from = join(dir, 'tree');
    mkdirSync(join(from, 'etc/deep'), { recursive: true });
    writeFileSync(join(from, 'hello.txt'), 'hello from the host\n');
    writeFileSync(join(from, 'etc/deep/big.bin'), Buffer.alloc(3 * MiB, 0x5a));
    execFileSync('ln', ['-s', 'hello.txt', join(from, 'link')]);
    const out = join(dir, 'disk.img');
    const stdout = sink();
    const stderr = sink();
    const status = await imageCommand(['disk', '--size', '16M', '--from', from, out], { stdout: stdout.stream, stderr: stderr.stream });
    assert.equal(status, 0, stderr.text());
    assert.equal(statSync(out).size, 16 * MiB);
    assert.equal(debugfs(out, 'cat /hello.txt'), 'hello from the host\n');
    assert.equal(debugfs(out, 'cat /etc/deep/big.bin'), 'Z'.repeat(3 * MiB));
    assert.match(debugfs(out, 'stat /link'), /Fast link dest: "hello\.txt"/);
    assert.match(debugfs(out, 'stats'), /Filesystem features:.*extent/);
    assert.match(debugfs(out, 'stat /'), /User:\s+0\s+Group:\s+0/);
    assert.deepEqual(readdirSync(dir).sort(), ['disk.img', 'tree'], 'no temporary file left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without --from the image is an empty ext4 file system', (t) => {
  const missing = needTool('mke2fs', 'e2fsprogs') ?? needTool('debugfs', 'e2fsprogs');
  if (missing) return t.skip(missing);
  const dir = work();
  try {
    const out = join(dir, 'empty.img');
    makeDiskImage({ size: 4 * MiB, out });
    const names = debugfs(out, 'ls -p /').split('\n').filter((l) => l !== '').map((l) => l.split('/')[5]);
    assert.deepEqual(names.sort(), ['.', '..', 'lost+found']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad sizes and sources are refused before anything is written', () => {
  const dir = work();
  try {
    const out = join(dir, 'x.img');
    const fails = (opts: Partial<Parameters<typeof makeDiskImage>[0]>, re: RegExp) =>
      assert.throws(() => makeDiskImage({ size: 8 * MiB, out, ...opts }), (e: unknown) => e instanceof ImageError && e.kind === 'invalid-argument' && re.test(e.message), String(re));
    fails({ size: 512 * 1024 }, /below the 1 MiB/);
    fails({ size: 8 * MiB + 100 }, /not a whole number of 512-byte sectors/);
    fails({ from: join(dir, 'nope') }, /--from .*nope is not a directory/);
    writeFileSync(join(dir, 'file'), '');
    fails({ from: join(dir, 'file') }, /is not a directory/);
    assert.equal(existsSync(out), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('contents larger than the image: says to give a larger --size, leaves no file', (t) => {
  const missing = needTool('mke2fs', 'e2fsprogs');
  if (missing) return t.skip(missing);
  const dir = work();
  try {
    const from = join(dir, 'tree');
    mkdirSync(from);
    writeFileSync(join(from, 'big'), Buffer.alloc(6 * MiB, 1));
    const out = join(dir, 'small.img');
    assert.throws(() => makeDiskImage({ size: 4 * MiB, from, out }), /does not fit in an ext4 file system of 4194304 bytes: give a larger --size/);
    assert.deepEqual(readdirSync(dir), ['tree']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mke2fs missing: names e2fsprogs', () => {
  const dir = work();
  try {
    const empty = join(dir, 'bin');
    mkdirSync(empty);
    assert.throws(
      () => makeDiskImage({ size: 4 * MiB, out: join(dir, 'x.img'), env: { PATH: empty }, sbinDirs: [] }),
      (e: unknown) => e instanceof ImageError && e.kind === 'tool-missing' && /mke2fs \(from e2fsprogs\) is not installed: install e2fsprogs/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the disk command line: --size and one output are required, sizes are parsed', async () => {
  const cases: [string[], RegExp][] = [
    [['disk', 'out.img'], /--size is required/],
    [['disk', '--size', '8M'], /exactly one output file/],
    [['disk', '--size', '8M', 'a.img', 'b.img'], /exactly one output file/],
    [['disk', '--size', 'lots', 'a.img'], /--size "lots" is not a size/],
    [['disk', '--size', '8M', '--bogus', 'a.img'], /Unknown option '--bogus'/],
    [['frobnicate'], /unknown image command "frobnicate"/],
    [['build', 'extra'], /Unexpected argument 'extra'|positional/],
  ];
  for (const [args, re] of cases) {
    const stdout = sink();
    const stderr = sink();
    assert.equal(await imageCommand(args, { stdout: stdout.stream, stderr: stderr.stream }), 2, args.join(' '));
    assert.match(stderr.text(), re);
  }
  const help = sink();
  assert.equal(await imageCommand(['--help'], { stdout: help.stream, stderr: sink().stream }), 0);
  assert.match(help.text(), /typevisor image build \[--out DIR\]/);
});
