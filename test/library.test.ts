/**
 * The README's library example, run for real: configure, start, read the
 * serial console, pause, resume, and the exit report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Vmm, VmmError } from '../src/index.js';
import { buildGuests, guestToolchainMissing } from './guest/build-guests.js';
import { kvmMissing } from './guest/run-guest.js';

test('library: the README example boots the test guest and reports its exit', async (t) => {
  const missing = kvmMissing() ?? guestToolchainMissing();
  if (missing) return t.skip(missing);
  const disk = join(mkdtempSync(join(tmpdir(), 'typevisor-lib-')), 'disk.img');
  writeFileSync(disk, Buffer.alloc(64 * 1024));
  const vm = new Vmm({ log: () => {} });
  vm.configureMachine({ vcpuCount: 2, memBytes: 64 * 2 ** 20, engine: 'kvm' });
  vm.configureBootSource({ kernelPath: buildGuests().testGuest, cmdline: 'console=ttyS0 tg.test=boot,acpi,smp tg.exit=halt' });
  vm.configureDrive({ id: 'data', pathOnHost: disk, readOnly: false });
  vm.configureEntropy({});
  await vm.start();
  assert.equal(vm.phase, 'running');
  assert.throws(() => vm.configureEntropy({}), (e: unknown) => e instanceof VmmError && e.code === 'wrong-phase');
  let out = '';
  vm.runningMachine!.setSerialOutput((byte) => (out += String.fromCharCode(byte)));
  const deadline = Date.now() + 20_000;
  while (!/TG halt /.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.match(out, /TG smp status=ok .*cpus_up=2/);
  assert.match(out, /TG acpi-dsdt .*lnro0005=2/);
  await vm.pause();
  assert.equal(vm.phase, 'paused');
  vm.resume();
  assert.equal(vm.phase, 'running');
  const report = await vm.stop();
  assert.equal(report.status, 0);
  assert.equal(report.message, 'stopped from the host');
  assert.equal(vm.phase, 'stopped');
});
