import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineUnavailableError, type VmStop } from '../../src/engine/engine.js';
import { KvmEngine, kvmOpenError } from '../../src/engine/kvm/index.js';
import { heapBacking, mmapBacking } from '../../src/memory/index.js';
import { NativeError, errnoValue } from '../../src/native/index.js';
import {
  CODE_ADDR, MMIO_BASE, PORT_POWEROFF, RecordingDispatcher, guestBytes, kvmOrSkip, longModeGuest, runSmpGuest,
} from './mini-guest.js';

/** Stops the VM with 'poweroff' when the guest writes the ACPI sleep-control port. */
function powerOffOn(d: RecordingDispatcher, stop: (s: VmStop) => void): void {
  d.onPio = (_cpu, port, _data, isWrite) => {
    if (isWrite && port === PORT_POWEROFF) stop({ reason: 'poweroff' });
  };
}

test('kvm: a long-mode guest writes "hi" (and "yo!" by rep outsb) to 0x3f8 and powers off', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('hello'));
  const d = new RecordingDispatcher();
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: d });
  powerOffOn(d, (s) => vm.requestStop(s));
  const stop = await vm.run();
  assert.deepEqual(stop, { reason: 'poweroff' });
  assert.equal(d.text(), 'hiyo!');
  const stats = vm.stats();
  assert.ok(stats['exits.io']! >= 4, 'two OUTs, the string OUT, the poweroff write');
  await vm.close();
  engine.close();
});

test('kvm: MMIO reads return what the dispatcher supplies and writes carry the guest value', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('mmio'));
  const d = new RecordingDispatcher();
  d.onMmioRead = (address, data) => {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (address === MMIO_BASE && data.length === 4) dv.setUint32(0, 0xdeadbeef, true);
    if (address === MMIO_BASE + 16 && data.length === 8) dv.setBigUint64(0, 0x0123_4567_89ab_cdefn, true);
  };
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: d });
  powerOffOn(d, (s) => vm.requestStop(s));
  assert.deepEqual(await vm.run(), { reason: 'poweroff' });
  const le = (v: bigint, n: number) => [...Array(n)].map((_, i) => Number((v >> BigInt(8 * i)) & 0xffn));
  assert.deepEqual(d.mmioLog, [
    { cpu: 0, address: MMIO_BASE, data: le(0xdeadbeefn, 4), isWrite: false },
    { cpu: 0, address: MMIO_BASE + 8, data: le(0xdeadbeefn, 4), isWrite: true },
    { cpu: 0, address: MMIO_BASE + 16, data: le(0x0123_4567_89ab_cdefn, 8), isWrite: false },
    { cpu: 0, address: MMIO_BASE + 24, data: le(0x0123_4567_89ab_cdefn, 8), isWrite: true },
  ]);
  await vm.close();
  engine.close();
});

test('kvm: an empty IDT and ud2 end in triple-fault with the registers', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('triple-fault'));
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: new RecordingDispatcher() });
  const stop = await vm.run();
  assert.equal(stop.reason, 'triple-fault', JSON.stringify(stop, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
  if (stop.reason !== 'triple-fault') return;
  assert.equal(stop.cpu, 0);
  assert.ok(stop.regs, 'registers are reported');
  // lidt is 7 bytes; the faulting ud2 is at CODE_ADDR + 7.
  assert.equal(stop.regs.rip, BigInt(CODE_ADDR + 7));
  await vm.close();
  engine.close();
});

test('kvm: code outside RAM is an engine-error naming the exit and the address', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('halt'));
  boot.regs.rip = BigInt(MMIO_BASE);
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: new RecordingDispatcher() });
  const stop = await vm.run();
  assert.equal(stop.reason, 'engine-error');
  if (stop.reason !== 'engine-error') return;
  assert.match(stop.message, /^vCPU 0: KVM_EXIT_INTERNAL_ERROR: emulation failure at rip 0xd0000000/);
  assert.equal(stop.regs?.rip, BigInt(MMIO_BASE));
  await vm.close();
  engine.close();
});

test('kvm: a boot state KVM refuses (paging without protection) fails createVm with the ioctl named', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('halt'));
  boot.sregs.cr0 = 0x8000_0010n; // PG without PE
  await assert.rejects(engine.createVm({ memory, cpus: 1, boot, dispatcher: new RecordingDispatcher() }), /vCPU 0: KVM_SET_SREGS \(boot CPU state refused\): EINVAL/);
  engine.close();
});

test('kvm: requestStop ends a guest halted with interrupts off, promptly', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('halt'));
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: new RecordingDispatcher() });
  const running = vm.run();
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  vm.requestStop({ reason: 'host-stop' });
  assert.deepEqual(await running, { reason: 'host-stop' });
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `stopped after ${ms.toFixed(1)} ms`);
  assert.ok(vm.stats()['exits.intr']! >= 1, 'the kick took the vCPU out of KVM_RUN');
  await vm.close();
  engine.close();
});

test('kvm: pause holds a busy guest still and resume lets it go on', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('count'));
  const d = new RecordingDispatcher();
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: d });
  const io = () => vm.stats()['exits.io']!;
  const running = vm.run();
  const until = async (ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(ok());
  };
  await until(() => io() > 10);
  await vm.pause();
  const held = io();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(io(), held, 'no exits while paused');
  vm.resume();
  await until(() => io() > held + 10);
  // The bytes kept counting up across the pause: no OUT was lost or repeated.
  const bytes = d.out.get(0)!;
  bytes.forEach((b, i) => assert.equal(b, i & 0xff));
  vm.requestStop({ reason: 'host-stop' });
  assert.deepEqual(await running, { reason: 'host-stop' });
  await vm.close();
  engine.close();
});

test('kvm: pause and resume of a halted guest, then stop', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('halt'));
  const vm = await engine.createVm({ memory, cpus: 2, boot, dispatcher: new RecordingDispatcher() });
  const running = vm.run();
  await vm.pause();
  vm.resume();
  await vm.pause();
  vm.requestStop({ reason: 'host-stop' });
  assert.deepEqual(await running, { reason: 'host-stop' });
  await vm.close();
  engine.close();
});

test('kvm: 4 vCPUs: APs wait for SIPI, then run real-mode code the BSP starts through the LAPIC', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  await runSmpGuest(engine);
  engine.close();
});

test('kvm: irqLine(4) raises IOAPIC pin 4 and the guest takes the interrupt', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('irq'));
  const d = new RecordingDispatcher();
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: d });
  const line = vm.irqLine(4);
  d.onPio = (_cpu, _port, data, isWrite) => {
    if (!isWrite) return;
    if (data[0] === 'R'.charCodeAt(0)) {
      line.set(true);
      line.set(false);
    }
    if (data[0] === 'I'.charCodeAt(0)) vm.requestStop({ reason: 'host-stop' });
  };
  const timer = setTimeout(() => vm.requestStop({ reason: 'engine-error', cpu: -1, message: 'no interrupt' }), 10_000);
  const stop = await vm.run();
  clearTimeout(timer);
  assert.deepEqual(stop, { reason: 'host-stop' });
  assert.equal(d.text(), 'RI');
  await vm.close();
  engine.close();
});

test('kvm: bad input is refused with a clear error', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('halt'));
  const dispatcher = new RecordingDispatcher();
  const max = engine.maxCpus();
  assert.ok(max >= 1);
  for (const cpus of [0, -1, 1.5, max + 1]) {
    await assert.rejects(engine.createVm({ memory, cpus, boot, dispatcher }), new RegExp(`cpus must be an integer from 1 to ${max} \\(KVM_CAP_MAX_VCPUS here\\), not ${cpus}`));
  }
  const heap = longModeGuest(heapBacking, guestBytes('halt'));
  await assert.rejects(engine.createVm({ memory: heap.memory, cpus: 1, boot, dispatcher }), /has no host address: allocate guest memory with engine.memoryBacking\(\)/);
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher });
  for (const gsi of [-1, 24, 2.5]) assert.throws(() => vm.irqLine(gsi), new RegExp(`GSI ${gsi} is not an IOAPIC pin`));
  await vm.close();
  assert.throws(() => mmapBacking.allocate(0x800, 0x1000), /not page aligned/);
  assert.throws(() => mmapBacking.allocate(0, 100), /not a positive multiple of 4096/);
  engine.close();
});

test('kvm: an absent or forbidden /dev/kvm is EngineUnavailableError with advice', () => {
  assert.throws(() => new KvmEngine({ devicePath: '/nonexistent/kvm' }), (e: unknown) => e instanceof EngineUnavailableError && /\/nonexistent\/kvm is not present/.test(e.message));
  const eacces = kvmOpenError('/dev/kvm', new NativeError('open /dev/kvm', errnoValue('EACCES')!));
  assert.ok(eacces instanceof EngineUnavailableError);
  assert.match(eacces.message, /^no permission to open \/dev\/kvm: add your user to the kvm group/);
  const enoent = kvmOpenError('/dev/kvm', new NativeError('open /dev/kvm', errnoValue('ENOENT')!));
  assert.match(enoent.message, /^\/dev\/kvm is not present/);
});

// Regression: a resume followed at once by a pause (PAUSE → RUN → PAUSE) while a
// paused vCPU thread was between its checks left it asleep and pause() hanging.
test('kvm: rapid pause/resume cycles on a halted 2-vCPU guest never hang', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('halt'));
  const vm = await engine.createVm({ memory, cpus: 2, boot, dispatcher: new RecordingDispatcher() });
  const running = vm.run();
  const deadline = setTimeout(() => assert.fail('pause() did not settle within 20 s'), 20_000);
  try {
    for (let i = 0; i < 300; i++) {
      await vm.pause();
      vm.resume();
    }
  } finally {
    clearTimeout(deadline);
  }
  vm.requestStop({ reason: 'host-stop' });
  assert.deepEqual(await running, { reason: 'host-stop' });
  await vm.close();
  engine.close();
});
