/**
 * virtio-blk drives in the VMM: the --disk parser, the configure-drive
 * action's phase rules and file checks, and a started machine's drives
 * (slots, DSDT nodes, runtime path change) on the soft engine's memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDisks } from '../../src/cli/run.js';
import { VmmError } from '../../src/vmm/errors.js';
import { Vmm } from '../../src/vmm/vmm.js';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-blk-wiring-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const vmmError = (code: string, re: RegExp) => (e: unknown) => e instanceof VmmError && e.code === code && re.test(e.message);

test('cli --disk: PATH[,ro][,id=NAME], ids disk0, disk1… by position', () => {
  assert.deepEqual(parseDisks([]), []);
  assert.deepEqual(parseDisks(['/a.img', '/b.img,ro', '/c.img,id=scratch,ro', '/d.img']), [
    { id: 'disk0', pathOnHost: '/a.img', readOnly: false },
    { id: 'disk1', pathOnHost: '/b.img', readOnly: true },
    { id: 'scratch', pathOnHost: '/c.img', readOnly: true },
    { id: 'disk3', pathOnHost: '/d.img', readOnly: false },
  ]);
});

test('cli --disk: bad specs are refused with the reason', () => {
  const bad = (specs: string[], re: RegExp) => assert.throws(() => parseDisks(specs), vmmError('invalid-config', re));
  bad([',ro'], /a path to a raw image comes first/);
  bad(['/a.img,rw'], /unknown option "rw" \(expected ro or id=NAME\)/);
  bad(['/a.img,id='], /id "" must be 1 to 64/);
  bad(['/a.img,id=a b'], /id "a b" must be/);
  bad(['/a.img,id=x', '/b.img,id=x'], /id "x" is already used/);
  bad(['/a.img', '/b.img,id=disk0'], /id "disk0" is already used/);
});

test('configure-drive before start: the image is checked now; same id replaces in place, a new id appends', (t) => {
  const dir = tempDir(t);
  const a = join(dir, 'a.img');
  const b = join(dir, 'b.img');
  writeFileSync(a, Buffer.alloc(4096));
  writeFileSync(b, Buffer.alloc(8192));
  const vmm = new Vmm();
  vmm.configureDrive({ id: 'root', pathOnHost: a, readOnly: false });
  vmm.configureDrive({ id: 'data', pathOnHost: b, readOnly: true });
  vmm.configureDrive({ id: 'root', pathOnHost: b, readOnly: true });
  assert.deepEqual(vmm.config().devices?.drives, [
    { id: 'root', pathOnHost: b, readOnly: true },
    { id: 'data', pathOnHost: b, readOnly: true },
  ]);
  assert.throws(() => vmm.configureDrive({ id: 'x', pathOnHost: join(dir, 'none.img'), readOnly: false }), vmmError('bad-file', /drive x: .*does not exist/));
  assert.throws(() => vmm.configureDrive({ id: 'x', pathOnHost: dir, readOnly: true }), vmmError('bad-file', /is a directory/));
  chmodSync(a, 0o444);
  assert.throws(() => vmm.configureDrive({ id: 'x', pathOnHost: a, readOnly: false }), vmmError('bad-file', /marked read-only.*add ,ro/));
  assert.throws(() => vmm.configureDrive({ id: 'bad id', pathOnHost: a, readOnly: true }), vmmError('invalid-config', /drive id "bad id"/));
  assert.throws(() => vmm.configureDrive({ id: 'x', pathOnHost: '', readOnly: true }), vmmError('invalid-config', /host path/));
  assert.equal(vmm.config().devices?.drives?.length, 2, 'refused drives leave the list alone');
});

test('configure-drive through dispatch; a start that fails leaves the drives configurable', async (t) => {
  const dir = tempDir(t);
  const a = join(dir, 'a.img');
  writeFileSync(a, Buffer.alloc(4096));
  const vmm = new Vmm();
  await vmm.dispatch({ kind: 'configure-drive', drive: { id: 'd', pathOnHost: a, readOnly: false } });
  assert.equal(vmm.config().devices?.drives?.[0]?.id, 'd');
  // A Vmm that failed to start (no kernel) is still not-started: drives can still change.
  await assert.rejects(vmm.start(), vmmError('invalid-config', /no boot source/));
  vmm.configureDrive({ id: 'd', pathOnHost: a, readOnly: true });
});
