import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, type BusDevice, type IrqLine } from '../../src/bus/index.js';
import type { EngineVm, ExitDispatcher, VmStop } from '../../src/engine/engine.js';
import { allocateGuestMemory, heapBacking, type GuestMemory } from '../../src/memory/index.js';
import { MMIO_SLOT_SIZE, MMIO_START } from '../../src/arch/x86_64/layout.js';
import { VIRTIO_MMIO_QUEUE_NOTIFY, VirtioRng } from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue } from '../../src/virtio/mock-driver.js';
import { VirtioSlots } from '../../src/vmm/virtio-devices.js';
import { NOTIFY_ADDRESS, notifyGuest } from '../../bench/kvm/notify-guest.js';
import { PORT_POWEROFF, kvmOrSkip } from './mini-guest.js';

const QUEUE = layoutQueue(0x30_0000, 16);
const BUFFER = 0x38_0000;

/** A virtio-rng in slot `index` driven through the MMIO bus like a guest driver, its queue ready with one 64-byte request. */
function rngRequest(mmio: Bus, memory: GuestMemory, index = 0): MockVirtqueue {
  const base = MMIO_START + index * MMIO_SLOT_SIZE;
  const port: BusDevice = {
    read: (offset, data) => void mmio.read(base + offset, data),
    write: (offset, data) => void mmio.write(base + offset, data),
  };
  assert.equal(new MockMmioDriver(port).init([QUEUE]), 0x0f, 'the driver brought the device up');
  const ring = new MockVirtqueue(memory, QUEUE);
  ring.addChain([{ address: BUFFER, length: 64, writable: true }]);
  return ring;
}

/** An EngineVm that records notifier registrations and does nothing else. */
function fakeVm(withNotifiers: boolean): { vm: EngineVm; added: { address: number; length: number; value: number; handler: () => void }[] } {
  const added: { address: number; length: number; value: number; handler: () => void }[] = [];
  const line: IrqLine = { set: () => {} };
  const vm: EngineVm = {
    irqLine: () => line,
    run: () => new Promise<VmStop>(() => {}),
    requestStop: () => {},
    pause: async () => {},
    resume: () => {},
    stats: () => ({}),
    close: async () => {},
  };
  if (withNotifiers) {
    vm.addMmioNotifier = (address, length, value, handler) => {
      added.push({ address, length, value, handler });
      return () => {};
    };
  }
  return { vm, added };
}

test('vmm/virtio: each slot registers its QueueNotify writes with an engine that offers notifiers', () => {
  const memory = allocateGuestMemory([{ base: 0, size: 0x40_0000 }], heapBacking);
  const slots = new VirtioSlots();
  slots.add('rng0', new VirtioRng());
  slots.add('rng1', new VirtioRng());
  const mmio = new Bus('mmio');
  const { vm, added } = fakeVm(true);
  slots.attach(mmio, vm, memory, () => {});
  assert.deepEqual(
    added.map(({ address, length, value }) => ({ address, length, value })),
    [
      { address: MMIO_START + VIRTIO_MMIO_QUEUE_NOTIFY, length: 4, value: 0 },
      { address: MMIO_START + MMIO_SLOT_SIZE + VIRTIO_MMIO_QUEUE_NOTIFY, length: 4, value: 0 },
    ],
  );
  // The handler is the device's queue notification: slot 1's request is answered, slot 0's queue is untouched.
  const ring1 = rngRequest(mmio, memory, 1);
  added[0]!.handler();
  assert.equal(ring1.usedIdx(), 0);
  added[1]!.handler();
  assert.deepEqual(ring1.takeUsed().map((u) => u.len), [64]);
});

test('vmm/virtio: without notifiers (soft engine) QueueNotify works through the MMIO bus alone', () => {
  const memory = allocateGuestMemory([{ base: 0, size: 0x40_0000 }], heapBacking);
  const slots = new VirtioSlots();
  slots.add('rng', new VirtioRng());
  const mmio = new Bus('mmio');
  slots.attach(mmio, fakeVm(false).vm, memory, () => {});
  const ring = rngRequest(mmio, memory);
  mmio.write(MMIO_START + VIRTIO_MMIO_QUEUE_NOTIFY, Uint8Array.of(0, 0, 0, 0));
  assert.deepEqual(ring.takeUsed().map((u) => u.len), [64]);
});

test('kvm/ioeventfd: a guest QueueNotify write reaches virtio-rng without an MMIO exit', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  assert.equal(NOTIFY_ADDRESS, MMIO_START + VIRTIO_MMIO_QUEUE_NOTIFY, 'the notify guest writes slot 0 QueueNotify');
  // One write of queue index 0 to QueueNotify, then a stream of port-I/O exits, then poweroff.
  const { memory, boot } = notifyGuest(engine.memoryBacking(), { mode: 'busy', count: 2000, value: 0, other: 0 });
  const mmio = new Bus('mmio');
  let stop = (): void => {};
  const dispatcher: ExitDispatcher = {
    pio: (_cpu, port, _data, isWrite) => {
      if (isWrite && port === PORT_POWEROFF) stop();
    },
    mmio: (_cpu, address, data, isWrite) => void (isWrite ? mmio.write(address, data) : mmio.read(address, data)),
  };
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher });
  stop = () => vm.requestStop({ reason: 'poweroff' });
  const slots = new VirtioSlots();
  slots.add('rng', new VirtioRng());
  slots.attach(mmio, vm, memory, () => {});
  const ring = rngRequest(mmio, memory);
  assert.deepEqual(await vm.run(), { reason: 'poweroff' });
  const s = vm.stats();
  assert.equal(s['exits.mmio'], 0);
  assert.equal(s['notify.writes'], 1);
  assert.deepEqual(ring.takeUsed().map((u) => u.len), [64], 'the request was answered');
  assert.ok(memory.read(BUFFER, 64).some((b) => b !== 0), 'with entropy');
  slots.reset();
  await vm.close();
  engine.close();
});
