import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { VmStop } from '../../src/engine/engine.js';
import {
  CODE_ADDR, MMIO_BASE, PORT_POWEROFF, RecordingDispatcher, guestBytes, kvmOrSkip, longModeGuest,
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
