import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmInfo } from '../../src/web/vm-process.js';
import { buildGuests, guestToolchainMissing } from '../guest/build-guests.js';
import { call, ConsoleClient, startServer, vmMissing, waitForState } from './helpers.js';

async function create(server: Awaited<ReturnType<typeof startServer>>, body: Record<string, unknown>): Promise<VmInfo> {
  const r = await call(server, '/api/vms', { body });
  assert.equal(r.status, 201, r.text);
  return r.json() as VmInfo;
}

test('a console guest VM: create, start, type a command, pause, resume, power off', async (t) => {
  const missing = vmMissing();
  if (missing) return t.skip(`needs KVM and gcc: ${missing}`);
  const server = await startServer();
  t.after(() => server.close());

  const vm = await create(server, { image: 'console-guest', name: 'shell', memMib: 32 });
  assert.equal(vm.state, 'created', vm.reason);
  assert.equal(vm.engine, 'kvm');
  const con = await ConsoleClient.open(server, vm.id);
  t.after(() => con.close());

  const started = await call(server, `/api/vms/${vm.id}/start`, { method: 'POST' });
  assert.equal(started.status, 200, started.text);
  assert.equal((started.json() as VmInfo).state, 'running');
  await con.waitFor('$ ');
  con.send('echo hello\r');
  await con.waitFor('hello\r\n$ ');
  con.send('uname\r');
  await con.waitFor('typevisor-console-guest');

  const again = await call(server, `/api/vms/${vm.id}/start`, { method: 'POST' });
  assert.equal(again.status, 409);
  assert.match(again.text, /cannot start VM vm1: it is running/);

  assert.equal((await call(server, `/api/vms/${vm.id}/pause`, { method: 'POST' })).status, 200);
  assert.equal((await waitForState(server, vm.id, ['paused'])).state, 'paused');
  const mark = con.text.length;
  con.send('echo while-paused\r');
  await new Promise((r) => setTimeout(r, 500));
  assert.doesNotMatch(con.text.slice(mark), /while-paused\r\n/, 'a paused guest does not answer');
  assert.equal((await call(server, `/api/vms/${vm.id}/pause`, { method: 'POST' })).status, 409, 'pausing twice');
  assert.equal((await call(server, `/api/vms/${vm.id}/resume`, { method: 'POST' })).status, 200);
  await con.waitFor('while-paused\r\n$ ');

  // Figures: the `exits N` command makes N port writes, each one VM exit.
  con.send('exits 3000\r');
  await con.waitFor('3000 exits');
  await new Promise((r) => setTimeout(r, 700));
  const info = (await call(server, `/api/vms/${vm.id}`)).json() as VmInfo;
  assert.ok(info.samples.length >= 2, 'samples are taken while the VM runs');
  assert.ok(info.samples.some((s) => (s.exitsPerSec ?? 0) > 100), `exits/s moved: ${JSON.stringify(info.samples)}`);
  assert.ok(info.samples.every((s) => s.rssBytes === undefined || s.rssBytes > 1 << 20));
  assert.ok((info.uptimeSec ?? 0) > 0);

  con.send('poweroff\r');
  const ended = await waitForState(server, vm.id, ['stopped', 'crashed']);
  assert.equal(ended.state, 'stopped');
  assert.equal(ended.exitCode, 0);
  assert.match(ended.reason ?? '', /guest powered off/);
  assert.equal((await call(server, `/api/vms/${vm.id}/resume`, { method: 'POST' })).status, 409);
  assert.equal((await call(server, `/api/vms/${vm.id}`, { method: 'DELETE' })).status, 204);
  assert.equal(server.manager.list().length, 0);
});

test('a killed VMM process shows as crashed; the other VMs and the server carry on', async (t) => {
  const missing = vmMissing();
  if (missing) return t.skip(`needs KVM and gcc: ${missing}`);
  const server = await startServer();
  t.after(() => server.close());

  const victim = await create(server, { image: 'console-guest', name: 'victim', memMib: 32, start: true });
  const other = await create(server, { image: 'console-guest', name: 'other', memMib: 32, start: true });
  assert.equal(victim.state, 'running', victim.reason);
  assert.equal(other.state, 'running', other.reason);
  assert.ok(victim.pid !== undefined && other.pid !== undefined && victim.pid !== other.pid, 'each VM has its own process');

  process.kill(victim.pid!, 'SIGKILL');
  const crashed = await waitForState(server, victim.id, ['crashed', 'stopped']);
  assert.equal(crashed.state, 'crashed');
  assert.equal(crashed.signal, 'SIGKILL');
  assert.match(crashed.reason ?? '', /killed by SIGKILL/);
  assert.equal((await call(server, `/api/vms/${victim.id}/pause`, { method: 'POST' })).status, 409, 'a crashed VM takes no actions');

  const con = await ConsoleClient.open(server, other.id);
  t.after(() => con.close());
  con.send('echo still-here\r');
  await con.waitFor('still-here\r\n');
  assert.equal(((await call(server, `/api/vms/${other.id}`)).json() as VmInfo).state, 'running');
});

test('a VMM ended from outside the console shows as stopped, with its reason', async (t) => {
  const missing = vmMissing();
  if (missing) return t.skip(`needs KVM and gcc: ${missing}`);
  const server = await startServer();
  t.after(() => server.close());
  const vm = await create(server, { image: 'console-guest', memMib: 32, start: true });
  assert.equal(vm.state, 'running', vm.reason);
  const con = await ConsoleClient.open(server, vm.id);
  t.after(() => con.close());
  await con.waitFor('$ ');
  // SIGTERM sent by someone else than the console: the VMM stops the VM and
  // exits 0, which is an end the console did not ask for but not a crash.
  process.kill(vm.pid!, 'SIGTERM');
  const ended = await waitForState(server, vm.id, ['stopped', 'crashed']);
  assert.equal(ended.state, 'stopped');
  assert.match(ended.reason ?? '', /stopped from the host/);
});

test('a configuration the VMM refuses leaves a failed VM with its reason', async (t) => {
  const missing = vmMissing();
  if (missing) return t.skip(`needs KVM and gcc: ${missing}`);
  const server = await startServer();
  t.after(() => server.close());
  const absent = join(tmpdir(), 'typevisor-web-no-such-kernel');
  const vm = await create(server, { image: 'custom', kernelPath: absent });
  assert.equal(vm.state, 'failed');
  assert.match(vm.reason ?? '', /kernel_image_path/);
  assert.equal((await call(server, `/api/vms/${vm.id}/start`, { method: 'POST' })).status, 409);

  const notAKernel = join(tmpdir(), `typevisor-web-not-a-kernel-${process.pid}`);
  writeFileSync(notAKernel, 'plain text, not a kernel');
  const bad = await create(server, { image: 'custom', kernelPath: notAKernel, engine: 'kvm', start: true });
  assert.equal(bad.state, 'failed');
  assert.ok((bad.reason ?? '').length > 0, 'the VMM says why it cannot boot it');
});

test('a guest that crashes its CPU shows as crashed, with the VMM\'s last words', async (t) => {
  const missing = vmMissing() ?? guestToolchainMissing();
  if (missing) return t.skip(`needs KVM and gcc: ${missing}`);
  const server = await startServer();
  t.after(() => server.close());
  const guest = buildGuests().testGuest;
  const vm = await create(server, { image: 'custom', kernelPath: guest, engine: 'kvm', memMib: 64, cmdline: 'console=ttyS0 tg.test=boot tg.exit=triple-fault', start: true });
  const ended = await waitForState(server, vm.id, ['crashed', 'stopped']);
  assert.equal(ended.state, 'crashed');
  assert.equal(ended.exitCode, 3);
  assert.match(ended.reason ?? '', /exited with status 3: .*triple fault/);
});
