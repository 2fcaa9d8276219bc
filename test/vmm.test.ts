import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Bus, type BusDevice } from '../src/bus/index.js';
import { BusDispatcher } from '../src/vmm/dispatcher.js';
import { parseSize, formatSize } from '../src/vmm/size.js';
import { validateMachine, DEFAULT_MACHINE } from '../src/vmm/config.js';
import { describeStop, EXIT } from '../src/vmm/exit-status.js';
import { Vmm, VmmError, VERSION } from '../src/index.js';

test('vmm: sizes parse in binary units and refuse nonsense', () => {
  assert.equal(parseSize('512M'), 512 * 2 ** 20);
  assert.equal(parseSize('2G'), 2 * 2 ** 30);
  assert.equal(parseSize('1.5GiB'), 1.5 * 2 ** 30);
  assert.equal(parseSize('256'), 256 * 2 ** 20);
  assert.equal(parseSize('64k'), 65536);
  for (const bad of ['', 'M', '12Q', '-5M', '1e9', '0x10M']) assert.throws(() => parseSize(bad), VmmError, bad);
  assert.equal(formatSize(16 * 2 ** 20), '16 MiB');
});

test('vmm: machine configuration limits', () => {
  const host = 8 * 2 ** 30;
  assert.doesNotThrow(() => validateMachine(DEFAULT_MACHINE, host));
  const bad: [Partial<typeof DEFAULT_MACHINE>, RegExp][] = [
    [{ vcpuCount: 0 }, /at least 1/],
    [{ vcpuCount: 1.5 }, /at least 1/],
    [{ vcpuCount: 256 }, /limit of 255/],
    [{ memBytes: 2 ** 20 }, /at least 16 MiB/],
    [{ memBytes: 2 ** 30 + 1 }, /multiple of 4 KiB/],
    [{ memBytes: 16 * 2 ** 30 }, /more than this host has/],
    [{ engine: 'qemu' as 'kvm' }, /unknown engine/],
  ];
  for (const [patch, msg] of bad) assert.throws(() => validateMachine({ ...DEFAULT_MACHINE, ...patch }, host), msg);
});

test('vmm: unclaimed I/O floats high, MMIO reads zero, each reported once', () => {
  const pio = new Bus('pio');
  const mmio = new Bus('mmio');
  const seen: string[] = [];
  const writes: number[] = [];
  const dev: BusDevice = { read: (_o, d) => d.fill(0x42), write: (_o, d) => writes.push(d[0]!) };
  pio.insert(dev, 0x3f8, 8, 'com1');
  const d = new BusDispatcher(pio, mmio, (w) => seen.push(w));
  const b = new Uint8Array(2);
  d.pio(0, 0x3f8, b, false);
  assert.deepEqual([...b], [0x42, 0x42]);
  d.pio(0, 0x3f8, Uint8Array.of(7), true);
  assert.deepEqual(writes, [7]);
  d.pio(0, 0x1234, b, false);
  assert.deepEqual([...b], [0xff, 0xff]);
  d.pio(0, 0x1234, b, false);
  const m = new Uint8Array(4).fill(9);
  d.mmio(0, 0xd000_0000, m, false);
  assert.deepEqual([...m], [0, 0, 0, 0]);
  assert.deepEqual(seen, ['unclaimed 2-byte read from port 0x1234', 'unclaimed 4-byte read from MMIO 0xd0000000']);
  assert.equal(d.pioExits, 4);
});

test('vmm: each way a VM ends has its exit status', () => {
  assert.equal(describeStop({ reason: 'poweroff' }).status, EXIT.OK);
  assert.equal(describeStop({ reason: 'reset' }).status, EXIT.OK);
  assert.equal(describeStop({ reason: 'host-stop' }).status, EXIT.OK);
  const tf = describeStop({ reason: 'triple-fault', cpu: 1, regs: { rip: 0x1000n, rsp: 0x8000n, rflags: 2n } as never });
  assert.equal(tf.status, EXIT.GUEST_CRASH);
  assert.match(tf.message, /triple fault on vCPU 1 \(rip=0x1000/);
  assert.equal(describeStop({ reason: 'engine-error', cpu: 0, message: 'KVM_EXIT_INTERNAL_ERROR' }).status, EXIT.ENGINE_ERROR);
});

test('vmm: actions are checked against the phase', async () => {
  const vm = new Vmm();
  assert.equal(vm.phase, 'not-started');
  assert.throws(() => vm.sendCtrlAltDel(), (e: unknown) => e instanceof VmmError && e.code === 'wrong-phase');
  await assert.rejects(vm.pause(), /not allowed while the VM is not-started/);
  await assert.rejects(vm.start(), /no boot source/);
  assert.throws(() => vm.configureMachine({ vcpuCount: 0 }), /at least 1/);
  assert.equal(vm.config().machine.vcpuCount, 1, 'a refused change leaves the config as it was');
  vm.configureBootSource({ kernelPath: '/nonexistent/vmlinux' });
  await assert.rejects(vm.dispatch({ kind: 'start' }), (e: unknown) => e instanceof VmmError && e.code === 'bad-file');
  assert.equal(vm.phase, 'not-started', 'a failed start can be retried');
  assert.throws(() => vm.exited(), /has not been started/);
});

test('vmm: the version matches package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.equal(VERSION, pkg.version);
});

test('vmm: engine kernel parameters are appended unless the command line sets them', async () => {
  const { withEngineArgs } = await import('../src/vmm/machine.js');
  assert.equal(withEngineArgs('console=ttyS0', ['tsc_early_khz=1000000', 'tsc=reliable']), 'console=ttyS0 tsc_early_khz=1000000 tsc=reliable');
  assert.equal(withEngineArgs('console=ttyS0 tsc_early_khz=2000', ['tsc_early_khz=1000000']), 'console=ttyS0 tsc_early_khz=2000');
  assert.equal(withEngineArgs('quiet  tsc=unstable', ['tsc=reliable']), 'quiet  tsc=unstable');
  assert.equal(withEngineArgs('console=ttyS0', []), 'console=ttyS0');
});
