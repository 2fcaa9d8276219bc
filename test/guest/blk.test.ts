/**
 * The test guest drives virtio-blk on the KVM engine through the CLI's
 * --disk (guest/virtio-blk.c, tg.test=blk): it writes a pattern, flushes,
 * reads it back and asks for the device ID; the host then looks at the
 * image file. With ,ro the write must fail with IOERR and the file stay
 * byte-identical.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { MMIO_START } from '../../src/arch/x86_64/layout.js';
import { VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK } from '../../src/virtio/blk/index.js';
import { buildGuests, guestToolchainMissing } from './build-guests.js';
import { GuestReport, tgNumber, unescapeTg } from './protocol.js';
import { cliMissing, kvmMissing } from './run-guest.js';
import { Vmm } from '../../src/vmm/vmm.js';
import { VmmError } from '../../src/vmm/errors.js';

const CLI_BIN = fileURLToPath(new URL('../../../bin/typevisor.js', import.meta.url));
/** guest/virtio-blk.c: 8 sectors from sector 3. */
const SECTOR = 3;
const SECTORS = 8;
const IMAGE_BYTES = 1024 * 1024;

/** guest/virtio-blk.c blk_pattern(i). */
function guestPattern(): Buffer {
  const b = Buffer.alloc(SECTORS * 512);
  for (let i = 0; i < b.length; i++) b[i] = ((i * 7) ^ (i >> 9) ^ 0x5a) & 0xff;
  return b;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  report: GuestReport;
}

/** Runs the test guest with tg.test=blk and the given --disk options; undefined (skipped) when it cannot run here. */
async function runBlk(t: TestContext, disks: string[], tests = 'blk'): Promise<Run | undefined> {
  const why = guestToolchainMissing() ?? kvmMissing() ?? cliMissing();
  if (why) {
    t.skip(why);
    return undefined;
  }
  const args = [CLI_BIN, 'run', '--engine', 'kvm', '--kernel', buildGuests().testGuest, '--cmdline', `tg.test=${tests} tg.exit=poweroff`, '--memory', '256M'];
  for (const d of disks) args.push('--disk', d);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('latin1').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const status = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  return { status, stdout, stderr, report: new GuestReport(stdout) };
}

const ctx = (r: Run): string => `status=${r.status}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

function request(r: Run, op: string): Record<string, string> {
  const found = r.report.all('blk-req').find((x) => x.fields.op === op);
  assert.ok(found, `no TG blk-req op=${op}\n${ctx(r)}`);
  return found.fields;
}

test('guest on kvm: virtio-blk write, flush, read back and GET_ID through --disk; the image holds the pattern', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-guest-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const image = join(dir, 'disk.img');
  const original = randomBytes(IMAGE_BYTES);
  writeFileSync(image, original);
  const r = await runBlk(t, [`${image},id=guest-disk_1`]);
  if (!r) return;
  assert.equal(r.status, 0, ctx(r));
  const blk = r.report.one('blk');
  assert.equal(blk.status, 'ok', ctx(r));
  assert.equal(tgNumber(blk.base), BigInt(MMIO_START), 'the only virtio device sits in slot 0');
  assert.equal(Number(blk.capacity), IMAGE_BYTES / 512);
  assert.equal(blk.ro, '0');
  assert.equal(blk.flush, '1', 'FLUSH offered and negotiated');
  assert.deepEqual([request(r, 'write').status, request(r, 'flush').status], [String(VIRTIO_BLK_S_OK), String(VIRTIO_BLK_S_OK)], ctx(r));
  const read = request(r, 'read');
  assert.equal(read.status, String(VIRTIO_BLK_S_OK));
  assert.equal(read.match, '1', 'the guest read back what it wrote');
  assert.equal(Number(read.used_len), SECTORS * 512 + 1);
  const pattern = guestPattern();
  assert.equal(tgNumber(read.crc32), BigInt(crc32(pattern)));
  const id = request(r, 'get-id');
  assert.equal(id.status, String(VIRTIO_BLK_S_OK));
  assert.equal(unescapeTg(id.id!).toString('latin1'), 'guest-disk_1'.slice(0, 20));

  const file = readFileSync(image);
  assert.ok(file.subarray(SECTOR * 512, (SECTOR + SECTORS) * 512).equals(pattern), 'the pattern is in the image');
  assert.ok(file.subarray(0, SECTOR * 512).equals(original.subarray(0, SECTOR * 512)), 'sectors before it untouched');
  assert.ok(file.subarray((SECTOR + SECTORS) * 512).equals(original.subarray((SECTOR + SECTORS) * 512)), 'sectors after it untouched');
});

test('guest on kvm: with ,ro the device offers RO, the write fails with IOERR and the image stays byte-identical', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-guest-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const image = join(dir, 'ro.img');
  const original = randomBytes(IMAGE_BYTES);
  writeFileSync(image, original);
  const r = await runBlk(t, [`${image},ro`]);
  if (!r) return;
  assert.equal(r.status, 0, ctx(r));
  const blk = r.report.one('blk');
  assert.equal(blk.status, 'ok', ctx(r));
  assert.equal(blk.ro, '1');
  assert.equal(request(r, 'write').status, String(VIRTIO_BLK_S_IOERR), ctx(r));
  const read = request(r, 'read');
  assert.equal(read.status, String(VIRTIO_BLK_S_OK));
  assert.equal(read.match, '0');
  assert.equal(tgNumber(read.crc32), BigInt(crc32(original.subarray(SECTOR * 512, (SECTOR + SECTORS) * 512))), 'the guest read the original bytes');
  assert.equal(unescapeTg(request(r, 'get-id').id!).toString('latin1'), 'disk0', 'default id');
  assert.ok(readFileSync(image).equals(original), 'image unchanged');
});

test('guest on kvm: two disks take slots 0 and 1 in --disk order, each an LNRO0005 node in the DSDT; the guest drives the first', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-guest-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = join(dir, 'a.img');
  const b = join(dir, 'b.img');
  writeFileSync(a, Buffer.alloc(IMAGE_BYTES));
  const second = randomBytes(IMAGE_BYTES);
  writeFileSync(b, second);
  const r = await runBlk(t, [a, b], 'acpi,blk');
  if (!r) return;
  assert.equal(r.status, 0, ctx(r));
  assert.equal(r.report.one('acpi-dsdt').lnro0005, '2', ctx(r));
  assert.equal(tgNumber(r.report.one('blk').base), BigInt(MMIO_START));
  assert.equal(unescapeTg(request(r, 'get-id').id!).toString('latin1'), 'disk0');
  assert.ok(readFileSync(a).subarray(SECTOR * 512, (SECTOR + SECTORS) * 512).equals(guestPattern()));
  assert.ok(readFileSync(b).equals(second), 'the second disk untouched');
});

test('guest on kvm: a bad --disk stops the CLI before the VM starts, with the reason', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-guest-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const odd = join(dir, 'odd.img');
  writeFileSync(odd, Buffer.alloc(1000));
  for (const [disk, message] of [
    [join(dir, 'missing.img'), /does not exist/],
    [dir, /is a directory/],
    [odd, /not a whole number of 512-byte sectors/],
    [`${odd},bogus`, /unknown option "bogus"/],
  ] as const) {
    const r = await runBlk(t, [disk]);
    if (!r) return;
    assert.equal(r.status, 1, ctx(r));
    assert.match(r.stderr, message);
    assert.equal(r.report.has('blk'), false, 'the guest never ran');
  }
});

test('guest on kvm: configure-drive while the VM runs points a drive at another image; adding or changing ro is refused', async (t) => {
  const why = guestToolchainMissing() ?? kvmMissing();
  if (why) {
    t.skip(why);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-guest-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = join(dir, 'first.img');
  const second = join(dir, 'second.img');
  writeFileSync(first, Buffer.alloc(IMAGE_BYTES));
  writeFileSync(second, Buffer.alloc(2 * IMAGE_BYTES));
  const vmm = new Vmm();
  vmm.configureMachine({ engine: 'kvm', memBytes: 256 * 1024 * 1024 });
  vmm.configureBootSource({ kernelPath: buildGuests().testGuest, cmdline: 'tg.test=blk tg.exit=halt' });
  vmm.configureDrive({ id: 'root', pathOnHost: first, readOnly: false });
  await vmm.start();
  let out = '';
  vmm.runningMachine!.setSerialOutput((byte) => (out += String.fromCharCode(byte)));
  try {
    for (let i = 0; i < 200 && !out.includes('TG halt'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.match(out, /TG blk-req op=get-id [^\n]*id=root/, out);
    vmm.configureDrive({ id: 'root', pathOnHost: second, readOnly: false });
    assert.equal(vmm.config().devices?.drives?.[0]?.pathOnHost, second);
    assert.throws(() => vmm.configureDrive({ id: 'more', pathOnHost: second, readOnly: false }), (e: unknown) => e instanceof VmmError && e.code === 'wrong-phase');
    assert.throws(() => vmm.configureDrive({ id: 'root', pathOnHost: second, readOnly: true }), (e: unknown) => e instanceof VmmError && /cannot change/.test(e.message));
    assert.throws(() => vmm.configureDrive({ id: 'root', pathOnHost: join(dir, 'none.img'), readOnly: false }), (e: unknown) => e instanceof VmmError && e.code === 'bad-file');
  } finally {
    await vmm.stop();
  }
  assert.ok(readFileSync(first).subarray(SECTOR * 512, (SECTOR + SECTORS) * 512).equals(guestPattern()), 'the guest wrote to the first image');
});
