import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EngineVm } from '../../src/engine/engine.js';
import type { KvmEngine } from '../../src/engine/kvm/index.js';
import {
  NOTIFY_ADDRESS, NOTIFY_GUEST_HEX, NOTIFY_GUEST_SOURCE, REPLY_ADDRESS, notifyGuest, type NotifyGuestOptions,
} from '../../bench/kvm/notify-guest.js';
import { PORT_POWEROFF, RecordingDispatcher, kvmOrSkip } from './mini-guest.js';

/** The value a virtio driver writes to QueueNotify for queue 0, and one no notifier catches. */
const VALUE = 0;
const OTHER = 7;

interface Run {
  vm: EngineVm;
  d: RecordingDispatcher;
  /** The number of caught writes at each handler call. */
  calls: number[];
  unregister: () => void;
}

/**
 * A notify guest with a notifier for VALUE at NOTIFY_ADDRESS whose handler
 * calls `onCall`, then answers with the number of writes caught so far; the
 * dispatcher answers a VALUE write that takes the exit path by adding one to
 * the reply. Stops on the poweroff port.
 */
async function notifyVm(
  engine: KvmEngine,
  o: Omit<NotifyGuestOptions, 'value' | 'other'>,
  opts: { register?: boolean; onCall?: (r: Run) => void } = {},
): Promise<Run> {
  const { memory, boot } = notifyGuest(engine.memoryBacking(), { ...o, value: VALUE, other: OTHER });
  const d = new RecordingDispatcher();
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: d });
  const run: Run = { vm, d, calls: [], unregister: () => {} };
  d.onPio = (_cpu, port, _data, isWrite) => {
    if (isWrite && port === PORT_POWEROFF) vm.requestStop({ reason: 'poweroff' });
  };
  const record = d.mmio.bind(d);
  d.mmio = (cpu, address, data, isWrite) => {
    record(cpu, address, data, isWrite);
    if (isWrite && address === NOTIFY_ADDRESS && data.length === 4 && data[0] === VALUE) memory.writeU32(REPLY_ADDRESS, memory.readU32(REPLY_ADDRESS) + 1);
  };
  if (opts.register ?? true) {
    run.unregister = vm.addMmioNotifier!(NOTIFY_ADDRESS, 4, VALUE, () => {
      const seen = vm.stats()['notify.writes']!;
      run.calls.push(seen);
      opts.onCall?.(run);
      memory.writeU32(REPLY_ADDRESS, seen);
    });
  }
  return run;
}

function kvm(t: TestContext): KvmEngine | undefined {
  const engine = kvmOrSkip(t);
  if (engine && engine.extension(36 /* KVM_CAP_IOEVENTFD */) <= 0) {
    engine.close();
    t.skip('KVM here lacks KVM_CAP_IOEVENTFD');
    return undefined;
  }
  return engine;
}

const otherWrite = { cpu: 0, address: NOTIFY_ADDRESS, data: [OTHER, 0, 0, 0], isWrite: true };

test('kvm/ioeventfd: the notify guest bytes are what NOTIFY_GUEST_SOURCE assembles to', (t) => {
  if (spawnSync('as', ['--version']).status !== 0 || spawnSync('objcopy', ['--version']).status !== 0) return t.skip('binutils (as, objcopy) is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'notify-guest-'));
  try {
    writeFileSync(join(dir, 'notify.S'), NOTIFY_GUEST_SOURCE);
    execFileSync('as', ['--64', '-o', join(dir, 'notify.o'), join(dir, 'notify.S')]);
    execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'notify.o'), join(dir, 'notify.bin')]);
    assert.equal(readFileSync(join(dir, 'notify.bin')).toString('hex'), NOTIFY_GUEST_HEX);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kvm/ioeventfd: caught writes run the handler without an MMIO exit; another value still exits', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  const rounds = 40;
  const { vm, d, calls } = await notifyVm(engine, { mode: 'round-trip', count: rounds });
  assert.deepEqual(await vm.run(), { reason: 'poweroff' });
  const s = vm.stats();
  // Each round waits for its answer, so every write is its own handler call.
  assert.deepEqual(calls, Array.from({ length: rounds }, (_, i) => i + 1));
  assert.equal(s['notify.writes'], rounds);
  assert.equal(s['exits.mmio'], 1, 'only the write of another value left the guest');
  assert.deepEqual(d.mmioLog, [otherWrite]);
  await vm.close();
  engine.close();
});

test('kvm/ioeventfd: a burst of writes is counted whole while the vCPU keeps running', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  const writes = 500;
  const { vm, d, calls } = await notifyVm(engine, { mode: 'fire', count: writes });
  assert.deepEqual(await vm.run(), { reason: 'poweroff' });
  const s = vm.stats();
  assert.equal(s['notify.writes'], writes);
  assert.equal(calls.at(-1), writes);
  assert.ok(calls.length <= writes, 'writes coalesce into calls');
  assert.equal(s['notify.calls'], calls.length);
  assert.equal(s['exits.mmio'], 1);
  assert.deepEqual(d.mmioLog, [otherWrite]);
  await vm.close();
  engine.close();
});

test('kvm/ioeventfd: the handler runs while the machine thread is busy serving exits', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  // One caught write, then a stream of port-I/O exits that keeps the machine thread serving.
  const outs = 3000;
  let outsAtCall = -1;
  const { vm, d, calls } = await notifyVm(engine, { mode: 'busy', count: outs }, { onCall: (r) => (outsAtCall = r.d.out.get(0)?.length ?? 0) });
  assert.deepEqual(await vm.run(), { reason: 'poweroff' });
  assert.equal(calls.length, 1);
  assert.equal(d.out.get(0)?.length, outs);
  assert.ok(outsAtCall >= 0 && outsAtCall < outs / 2, `delivered after ${outsAtCall} of ${outs} exits`);
  assert.equal(vm.stats()['exits.mmio'], 0);
  await vm.close();
  engine.close();
});

test('kvm/ioeventfd: after unregistering, the writes take the exit path (before run and from the handler)', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  {
    const { vm, d, calls, unregister } = await notifyVm(engine, { mode: 'round-trip', count: 3 });
    unregister();
    unregister();
    assert.deepEqual(await vm.run(), { reason: 'poweroff' });
    assert.deepEqual(calls, []);
    assert.equal(vm.stats()['exits.mmio'], 4);
    assert.equal(vm.stats().notifiers, 0);
    assert.equal(d.mmioLog.filter((m) => m.data[0] === VALUE).length, 3);
    await vm.close();
  }
  {
    const rounds = 10;
    const stopAfter = 4;
    const { vm, d, calls } = await notifyVm(engine, { mode: 'round-trip', count: rounds }, {
      onCall: (r) => {
        if (r.calls.length === stopAfter) r.unregister();
      },
    });
    assert.deepEqual(await vm.run(), { reason: 'poweroff' });
    assert.deepEqual(calls, [1, 2, 3, 4]);
    assert.equal(vm.stats()['exits.mmio'], rounds - stopAfter + 1);
    assert.equal(d.mmioLog.filter((m) => m.data[0] === VALUE).length, rounds - stopAfter);
    await vm.close();
  }
  engine.close();
});

test('kvm/ioeventfd: a write caught just before unregistering still reaches the handler, once', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  const { vm, d, calls, unregister } = await notifyVm(engine, { mode: 'busy', count: 20 });
  let calledAtUnregister = -1;
  const onPio = d.onPio!;
  d.onPio = (cpu, port, data, isWrite) => {
    // The caught write comes before the first OUT in program order, so KVM has
    // signalled it by now; unregistering here races the delivery on purpose.
    if (port !== PORT_POWEROFF && calledAtUnregister < 0) {
      calledAtUnregister = calls.length;
      unregister();
    }
    onPio(cpu, port, data, isWrite);
  };
  assert.deepEqual(await vm.run(), { reason: 'poweroff' });
  assert.ok(calledAtUnregister === 0 || calledAtUnregister === 1);
  assert.deepEqual(calls, [1], 'one call for the one write, whether before or after unregistering');
  assert.equal(vm.stats()['exits.mmio'], 0);
  await vm.close();
  engine.close();
});

test('kvm/ioeventfd: a handler that throws stops the VM with an engine error naming the notifier', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  const { memory, boot } = notifyGuest(engine.memoryBacking(), { mode: 'round-trip', count: 1, value: VALUE, other: OTHER });
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: new RecordingDispatcher() });
  vm.addMmioNotifier!(NOTIFY_ADDRESS, 4, VALUE, () => {
    throw new Error('queue exploded');
  });
  const stop = await vm.run();
  assert.equal(stop.reason, 'engine-error');
  assert.match(stop.reason === 'engine-error' ? stop.message : '', /notifier for 0x0 at 0xd0000050 threw: queue exploded/);
  await vm.close();
  engine.close();
});

test('kvm/ioeventfd: bad notifiers are refused with a clear error', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  const { memory, boot } = notifyGuest(engine.memoryBacking(), { mode: 'round-trip', count: 1, value: VALUE, other: OTHER });
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: new RecordingDispatcher() });
  const add = vm.addMmioNotifier!.bind(vm);
  const nop = () => {};
  assert.throws(() => add(REPLY_ADDRESS, 4, 0, nop), { name: 'RangeError', message: /0x200000 lies in guest RAM/ });
  assert.throws(() => add(NOTIFY_ADDRESS, 3 as 4, 0, nop), { name: 'RangeError', message: /length must be 1, 2, 4 or 8 bytes, not 3/ });
  assert.throws(() => add(NOTIFY_ADDRESS, 4, 2 ** 32, nop), { name: 'RangeError', message: /value 4294967296 does not fit a 4-byte write/ });
  assert.throws(() => add(NOTIFY_ADDRESS, 1, 256, nop), { name: 'RangeError', message: /does not fit a 1-byte write/ });
  assert.throws(() => add(NOTIFY_ADDRESS, 4, -1, nop), { name: 'RangeError', message: /value -1/ });
  assert.throws(() => add(-4, 4, 0, nop), { name: 'RangeError', message: /address -4 is not a guest-physical address/ });
  assert.throws(() => add(2 ** 52, 4, 0, nop), { name: 'RangeError', message: /not a guest-physical address/ });
  assert.throws(() => add(NOTIFY_ADDRESS, 4, 0, 'x' as unknown as () => void), { name: 'TypeError', message: /handler must be a function/ });
  const off = add(NOTIFY_ADDRESS, 4, 0, nop);
  assert.throws(() => add(NOTIFY_ADDRESS, 4, 0, nop), { message: 'kvm: a notifier for 4-byte writes of 0x0 at 0xd0000050 already exists' });
  // Same address, other values or sizes: separate notifiers.
  const more = [add(NOTIFY_ADDRESS, 4, 1, nop), add(NOTIFY_ADDRESS, 2, 0, nop)];
  off();
  // Once unregistered, the same notifier can be added again.
  more.push(add(NOTIFY_ADDRESS, 4, 0, nop));
  for (const f of more) f();
  for (let i = 0; i < 256; i++) more.push(add(0xd000_1000 + i * 4, 4, 0, nop));
  assert.throws(() => add(0xd000_2000, 4, 0, nop), { name: 'RangeError', message: 'kvm: a VM takes at most 256 MMIO notifiers' });
  assert.equal(vm.stats().notifiers, 256);
  await vm.close();
  assert.throws(() => add(NOTIFY_ADDRESS, 4, 9, nop), { message: 'kvm: cannot add a notifier to a closed VM' });
  engine.close();
});

test('kvm/ioeventfd: close() releases every eventfd and ends the I/O worker', async (t) => {
  const engine = kvm(t);
  if (!engine) return;
  const fds = () => readdirSync('/proc/self/fd').length;
  const before = fds();
  // Closed while the guest waits for an answer that never comes: the worker is running.
  const { memory, boot } = notifyGuest(engine.memoryBacking(), { mode: 'round-trip', count: 1, value: VALUE, other: OTHER });
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher: new RecordingDispatcher() });
  let called = 0;
  const offs = [vm.addMmioNotifier!(NOTIFY_ADDRESS, 4, VALUE, () => called++), vm.addMmioNotifier!(NOTIFY_ADDRESS + 0x1000, 4, VALUE, () => {})];
  offs[1]!();
  assert.ok(fds() >= before + 3, 'VM fd, vCPU fd, an eventfd');
  const running = vm.run();
  const until = Date.now() + 5000;
  while (called === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.equal(called, 1, 'the guest notified once');
  await vm.close();
  assert.deepEqual(await running, { reason: 'host-stop' });
  assert.equal(fds(), before);
  engine.close();
});

// (A VM created and never run holds the process through its vCPU workers, notifiers or not.)
test('kvm/ioeventfd: a process whose VM had notifiers exits by itself after the VM stops, without close()', (t) => {
  const engine = kvm(t);
  if (!engine) return;
  engine.close();
  const dist = new URL('../../', import.meta.url).href;
  const child = `
    import { KvmEngine } from '${dist}src/engine/kvm/index.js';
    import { notifyGuest, NOTIFY_ADDRESS, REPLY_ADDRESS } from '${dist}bench/kvm/notify-guest.js';
    const engine = new KvmEngine();
    const { memory, boot } = notifyGuest(engine.memoryBacking(), { mode: 'round-trip', count: 3, value: 0, other: 7 });
    let vm;
    const dispatcher = { pio: (_c, port) => { if (port === 0x600) vm.requestStop({ reason: 'poweroff' }); }, mmio: () => {} };
    vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher });
    vm.addMmioNotifier(NOTIFY_ADDRESS, 4, 0, () => memory.writeU32(REPLY_ADDRESS, vm.stats()['notify.writes']));
    process.stdout.write((await vm.run()).reason);
  `;
  // A file, not --eval: workers inherit execArgv, and --input-type breaks their start.
  const dir = mkdtempSync(join(tmpdir(), 'notify-exit-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'child.mjs'), child);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(dir, 'child.mjs')], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.error, undefined, 'the child exited before the timeout');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'poweroff');
  // The I/O worker sleeps in poll() without a timeout: were it not ended when the VM stops, the child would hang.
  assert.ok(Date.now() - t0 < 10_000, `exited after ${Date.now() - t0} ms`);
});
