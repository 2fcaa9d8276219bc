/**
 * `typevisor image build` end to end with Debian's packages (fetched by the
 * host's apt; the .debs are kept in the test cache so re-runs are fast): the
 * image's contents read back with GNU cpio, the cache (reuse, timing,
 * corruption), and each error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { aptListsStamp, buildImage, verifyImage, INIT_SCRIPT, IMAGE_FORMAT, type BuiltImage, type ImageManifest } from '../../src/image/build.js';
import { ImageError } from '../../src/image/errors.js';
import { readModinfo } from '../../src/image/modules.js';
import { imageCommand } from '../../src/cli/image.js';
import { debCache, imageBuildMissing, isRoot, needTool, testCacheDir } from './helpers.js';

/** A fresh directory in the test cache (the same file system as the .deb cache). */
function scratch(): string {
  const base = join(testCacheDir(), 'image-tests');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, 'run-'));
}

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({ write(chunk, _enc, done) { text += String(chunk); done(); } });
  return { stream, text: () => text };
}

const work = scratch();
let first: BuiltImage | undefined;
const progress: string[] = [];

/** The image built once in this file, fresh (not from an earlier run). */
async function image(): Promise<BuiltImage> {
  first ??= await buildImage({ out: join(work, 'default'), debCache: debCache(), log: (l) => progress.push(l) });
  return first;
}

test.after(() => rmSync(work, { recursive: true, force: true }));

test('builds the default image: bzImage, gzip newc initramfs, manifest', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  const img = await image();
  assert.equal(img.reused, false);
  const kernel = readFileSync(img.kernel);
  assert.equal(kernel.toString('latin1', 0x202, 0x206), 'HdrS', 'a bzImage (boot protocol header)');
  const m = img.manifest;
  assert.equal(m.format, IMAGE_FORMAT);
  assert.deepEqual(m.packages.map((p) => p.name).filter((n) => !/^linux-image-\d/.test(n)), ['linux-image-cloud-amd64', 'busybox-static']);
  const versioned = m.packages.find((p) => /^linux-image-\d/.test(p.name));
  assert.ok(versioned && versioned.name === `linux-image-${m.kernelRelease}`, 'the real kernel package the metapackage depends on');
  assert.ok(m.packages.every((p) => /^[\d:][\w.+:~-]*$/.test(p.version)), 'versions as apt reports them');
  assert.deepEqual(verifyImage(img.dir), { ok: true, manifest: m });
  assert.ok(m.modules.includes('kernel/drivers/virtio/virtio_mmio.ko'));
  assert.ok(m.modules.indexOf('kernel/drivers/virtio/virtio.ko') < m.modules.indexOf('kernel/drivers/virtio/virtio_mmio.ko'));
  for (const want of ['downloading|using linux-image-', 'unpacking', 'modules: virtio', 'writing the initramfs']) {
    assert.ok(progress.some((l) => new RegExp(want).test(l)), `progress line /${want}/ in ${JSON.stringify(progress)}`);
  }
  const debs = readdirSync(debCache());
  assert.ok(debs.some((f) => f.startsWith('busybox-static_')) && !debs.some((f) => f.startsWith('.download-')), 'downloads kept whole in the .deb cache');
});

test('GNU cpio unpacks /init, busybox, the modules in load order and the device nodes', async (t) => {
  const missing = imageBuildMissing() ?? needTool('cpio', 'cpio');
  if (missing) return t.skip(missing);
  const img = await image();
  const archive = gunzipSync(readFileSync(img.initrd));
  const listing = execFileSync('cpio', ['-t', '-v', '--quiet'], { input: archive, encoding: 'utf8' });
  const line = (path: string) => listing.split('\n').find((l) => l.endsWith(` ${path}`)) ?? '';
  assert.match(line('dev/console'), /^crw------- +1 root +root +5, +1 /);
  assert.match(line('dev/ttyS0'), /^crw-rw---- +1 root +root +4, +64 /);
  assert.match(line('dev/null'), /^crw-rw-rw- +1 root +root +1, +3 /);
  assert.match(line('init'), /^-rwxr-xr-x /);
  assert.match(line('bin/busybox'), /^-rwxr-xr-x /);
  assert.match(line('tmp'), /^drwxrwxrwt /);

  const out = mkdtempSync(join(work, 'unpacked-'));
  // Device nodes need root to create; the listing above checked them.
  spawnSync('cpio', ['-i', '-d', '-m', '--quiet', '--no-absolute-filenames'], { cwd: out, input: archive });
  assert.deepEqual(readFileSync(join(out, 'init')), readFileSync(INIT_SCRIPT));
  const busybox = readFileSync(join(out, 'bin/busybox'));
  assert.equal(busybox.toString('latin1', 1, 4), 'ELF');
  const list = readFileSync(join(out, 'etc/typevisor/modules'), 'utf8').trimEnd().split('\n');
  assert.deepEqual(list, img.manifest.modules);
  for (const path of list) {
    const ko = readFileSync(join(out, 'lib/modules', img.manifest.kernelRelease, path));
    const name = readModinfo(ko, path).find((kv) => kv.key === 'name')?.value;
    assert.equal(name, path.slice(path.lastIndexOf('/') + 1, -3).replace(/-/g, '_'), path);
  }
  const names = list.map((p) => p.slice(p.lastIndexOf('/') + 1));
  for (const want of ['virtio.ko', 'virtio_ring.ko', 'virtio_mmio.ko', 'virtio_blk.ko', 'virtio_net.ko', 'virtio_console.ko', 'virtio-rng.ko', 'vsock.ko', 'vmw_vsock_virtio_transport_common.ko', 'vmw_vsock_virtio_transport.ko']) {
    assert.ok(names.includes(want), `${want} in the initramfs`);
  }
});

test('a second build reuses the verified image in under 2 s', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  const img = await image();
  const lines: string[] = [];
  const start = performance.now();
  const again = await buildImage({ out: img.dir, debCache: debCache(), log: (l) => lines.push(l) });
  const ms = performance.now() - start;
  t.diagnostic(`second build: ${ms.toFixed(0)} ms`);
  assert.equal(again.reused, true);
  assert.deepEqual(again.manifest, img.manifest);
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms`);
  assert.deepEqual(lines, [`image ${img.dir} is up to date`]);
});

/** Ways a cached image goes bad, and the reason verifyImage must give. */
const CORRUPTIONS: [string, (dir: string) => void, RegExp][] = [
  ['truncated initrd', (d) => truncateSync(join(d, 'initrd.img'), 1000), /initrd\.img has 1000 bytes/],
  ['one kernel byte changed', (d) => {
    const k = readFileSync(join(d, 'vmlinuz'));
    const i = k.length >> 1;
    k[i] = k[i]! ^ 0xff;
    writeFileSync(join(d, 'vmlinuz'), k);
  }, /vmlinuz does not match its SHA-256/],
  ['initrd missing', (d) => rmSync(join(d, 'initrd.img')), /initrd\.img is missing/],
  ['manifest missing', (d) => rmSync(join(d, 'manifest.json')), /no manifest/],
  ['manifest garbage', (d) => writeFileSync(join(d, 'manifest.json'), '{"format":'), /unreadable manifest/],
  ['older build format', (d) => {
    const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8'));
    writeFileSync(join(d, 'manifest.json'), JSON.stringify({ ...m, format: 0 }));
  }, /build format 0/],
];

function corruptCopy(img: BuiltImage, what: string): string {
  const [, corrupt] = CORRUPTIONS.find(([name]) => name === what)!;
  const dir = join(work, `corrupt-${what.replace(/\W+/g, '-')}`);
  cpSync(img.dir, dir, { recursive: true });
  corrupt(dir);
  return dir;
}

test('verifyImage finds each corruption and says which', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  const img = await image();
  for (const [what, , reason] of CORRUPTIONS) {
    const dir = corruptCopy(img, what);
    const v = verifyImage(dir);
    assert.ok(!v.ok && reason.test(v.reason), `${what}: ${JSON.stringify(v)}`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a corrupted image is rebuilt, to the same bytes', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  const img = await image();
  // Every corruption takes the same path once verifyImage fails; two real rebuilds (a data file, the manifest) cover it.
  for (const what of ['truncated initrd', 'manifest garbage']) {
    const dir = corruptCopy(img, what);
    const lines: string[] = [];
    const rebuilt = await buildImage({ out: dir, debCache: debCache(), log: (l) => lines.push(l) });
    assert.equal(rebuilt.reused, false, what);
    assert.match(lines[0] ?? '', /^rebuilding .*: /, what);
    assert.deepEqual(rebuilt.manifest.files, img.manifest.files, `${what}: same bytes as the first build`);
    assert.equal(verifyImage(dir).ok, true, what);
    assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('.')), [], `${what}: no staging directory left`);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("when apt's package lists change, versions are checked again: same → kept, newer → rebuilt", async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  if (aptListsStamp() === undefined) return t.skip('apt has no package lists on this host');
  const img = await image();
  const dir = join(work, 'lists-changed');
  cpSync(img.dir, dir, { recursive: true });
  const manifestPath = join(dir, 'manifest.json');
  const edit = (f: (m: ImageManifest) => ImageManifest) => writeFileSync(manifestPath, JSON.stringify(f(JSON.parse(readFileSync(manifestPath, 'utf8')) as ImageManifest)));

  edit((m) => ({ ...m, aptLists: 'lists before an apt-get update' }));
  const kept = await buildImage({ out: dir, debCache: debCache() });
  assert.equal(kept.reused, true, 'same versions: kept');
  assert.equal((JSON.parse(readFileSync(manifestPath, 'utf8')) as ImageManifest).aptLists, aptListsStamp(), 'the check is recorded');

  edit((m) => ({ ...m, aptLists: 'lists before an apt-get update', packages: m.packages.map((p) => (p.name === 'busybox-static' ? { ...p, version: '1:0.1-1' } : p)) }));
  const lines: string[] = [];
  const rebuilt = await buildImage({ out: dir, debCache: debCache(), log: (l) => lines.push(l) });
  assert.equal(rebuilt.reused, false);
  assert.match(lines[0] ?? '', /^rebuilding .*: apt now has busybox-static \S+ \(image: 1:0\.1-1\)$/);
  assert.deepEqual(rebuilt.manifest.packages, img.manifest.packages);
});

test('apt missing: says so and how to boot without the default image', async () => {
  const dir = scratch();
  try {
    const empty = join(dir, 'empty-bin');
    mkdirSync(empty);
    const stdout = sink();
    const stderr = sink();
    const status = await imageCommand(['build', '--out', join(dir, 'img')], { stdout: stdout.stream, stderr: stderr.stream, env: { PATH: empty } });
    assert.equal(status, 1);
    const lines = stderr.text().trimEnd().split('\n');
    assert.equal(lines.length, 1, stderr.text());
    assert.match(lines[0]!, /^typevisor: apt-get is not on this host \(it is not Debian.*typevisor run --kernel BZIMAGE --initrd INITRD$/);
    assert.deepEqual(readdirSync(dir), ['empty-bin'], 'nothing written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('apt missing, but a verified image exists: it is used', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  const img = await image();
  const empty = mkdtempSync(join(work, 'empty-bin-'));
  const again = await buildImage({ out: img.dir, env: { PATH: empty } });
  assert.equal(again.reused, true);
});

test('a package that cannot be downloaded is named', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  const dir = scratch();
  try {
    await assert.rejects(
      buildImage({ out: join(dir, 'img'), debCache: debCache(), packages: { busybox: 'typevisor-no-such-package' } }),
      (e: unknown) => e instanceof ImageError && e.kind === 'package-unavailable' && /cannot download Debian package "typevisor-no-such-package": apt knows no such package/.test(e.message),
    );
    assert.deepEqual(readdirSync(dir), [], 'nothing written');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Disk full, for real: a small tmpfs (mounting needs root). It holds a
 * verified image; a forced rebuild there runs out of space unpacking the
 * kernel package (~110 MiB). The error says so, and the old image is intact
 * with nothing else left behind.
 */
test('disk full (small tmpfs): says so, leaves the previous image and nothing else', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  if (!isRoot) return t.skip('mounting a small tmpfs needs root');
  const img = await image();
  const mnt = mkdtempSync(join(work, 'tmpfs-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', mnt], { encoding: 'utf8' });
  if (mount.status !== 0) return t.skip(`cannot mount a tmpfs here: ${mount.stderr.trim()}`);
  try {
    const out = join(mnt, 'img');
    cpSync(img.dir, out, { recursive: true });
    await assert.rejects(
      buildImage({ out, debCache: debCache(), force: true }),
      (e: unknown) => e instanceof ImageError && e.kind === 'disk-full' && /no space left on device/.test(e.message) && /free some space/.test(e.message),
    );
    assert.deepEqual(readdirSync(mnt), ['img'], 'no staging directory left');
    assert.equal(verifyImage(out).ok, true, 'previous image intact');
  } finally {
    spawnSync('umount', [mnt]);
  }
});

/**
 * Disk full at the last step, without root: the writer is replaced by one
 * that fails with ENOSPC after the kernel is written, as a full disk would.
 */
test('disk full while writing the image (injected ENOSPC): no image, no staging left', async (t) => {
  const missing = imageBuildMissing();
  if (missing) return t.skip(missing);
  const dir = scratch();
  try {
    const out = join(dir, 'img');
    let writes = 0;
    const writeFile = (path: string, data: Uint8Array) => {
      if (++writes === 2) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: 'ENOSPC' });
      writeFileSync(path, data);
    };
    await assert.rejects(
      buildImage({ out, debCache: debCache(), writeFile }),
      (e: unknown) => e instanceof ImageError && e.kind === 'disk-full' && new RegExp(`no space left on device while building the image in ${dir}`).test(e.message),
    );
    assert.equal(writes, 2);
    assert.deepEqual(readdirSync(dir), []);
    assert.equal(existsSync(out), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
