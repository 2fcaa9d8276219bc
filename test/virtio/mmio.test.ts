import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, RecordingIrqLine } from '../../src/bus/index.js';
import { DeviceStateError } from '../../src/devices/legacy/common.js';
import { MMIO_SLOT_SIZE, MMIO_START } from '../../src/arch/x86_64/layout.js';
import {
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_SHM_BASE_HIGH,
  VIRTIO_MMIO_SHM_LEN_LOW,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_RING_FEATURES,
  VirtioMmioTransport,
  writeToBuffers,
  type VirtioActivation,
  type VirtioDevice,
} from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue, type QueueLayout } from '../../src/virtio/mock-driver.js';
import { recordingMemory } from './helpers.js';

/** A device-specific feature the test device offers (bit 5). */
const F_TEST = 1n << 5n;

/** A device that answers every chain by writing 0xab into it; it records what the transport does to it. */
class SinkDevice implements VirtioDevice {
  readonly deviceType = 42;
  readonly queueMaxSizes = [16, 8];
  readonly features = F_TEST | VIRTIO_RING_FEATURES;
  readonly config = new Uint8Array(8);
  act: VirtioActivation | undefined;
  activations = 0;
  resets = 0;
  processed: number[] = [];
  throwIn: 'process' | 'activate' | 'config' | undefined;

  readConfig(offset: number, data: Uint8Array): void {
    if (this.throwIn === 'config') throw new Error('config boom');
    for (let i = 0; i < data.length; i++) data[i] = this.config[offset + i] ?? 0;
  }
  writeConfig(offset: number, data: Uint8Array): void {
    data.forEach((b, i) => {
      if (offset + i < this.config.length) this.config[offset + i] = b;
    });
  }
  activate(a: VirtioActivation): void {
    if (this.throwIn === 'activate') throw new Error('activate boom');
    this.act = a;
    this.activations++;
  }
  reset(): void {
    this.act = undefined;
    this.resets++;
  }
  processQueue(index: number): void {
    this.processed.push(index);
    if (this.throwIn === 'process') throw new Error('process boom');
    const a = this.act!;
    const q = a.queues[index]!;
    for (let c = q.popChain(); c; c = q.popChain()) {
      const n = writeToBuffers(a.memory, c.writable, 0, new Uint8Array(c.writableBytes).fill(0xab));
      q.addUsed(c.head, n);
    }
    if (q.needsInterrupt()) a.interrupt.trigger('used');
  }
}

const QUEUES: QueueLayout[] = [layoutQueue(0x1000, 16), layoutQueue(0x2000, 8)];

function setup() {
  const memory = recordingMemory();
  const irq = new RecordingIrqLine();
  const device = new SinkDevice();
  const reasons: string[] = [];
  const transport = new VirtioMmioTransport(device, { memory, irq, onNeedsReset: (r) => reasons.push(r) });
  const driver = new MockMmioDriver(transport);
  return { memory, irq, device, transport, driver, reasons };
}

function running() {
  const s = setup();
  assert.equal(s.driver.init(QUEUES), STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  const rings = QUEUES.map((l) => new MockVirtqueue(s.memory, l));
  return { ...s, rings };
}

test('mmio: magic, version 2, device and vendor IDs (§4.2.2)', () => {
  const { driver } = setup();
  assert.equal(driver.read32(VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
  assert.equal(driver.read32(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
  assert.equal(driver.read32(VIRTIO_MMIO_VERSION), 2);
  assert.equal(driver.read32(VIRTIO_MMIO_DEVICE_ID), 42);
  assert.equal(driver.read32(VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
});

test('mmio: device features through the two 32-bit windows; VIRTIO_F_VERSION_1 always offered', () => {
  const { driver } = setup();
  driver.write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  assert.equal(driver.read32(VIRTIO_MMIO_DEVICE_FEATURES), Number(F_TEST | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX));
  driver.write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  assert.equal(driver.read32(VIRTIO_MMIO_DEVICE_FEATURES), 1, 'bit 32 = VERSION_1');
  driver.write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
  assert.equal(driver.read32(VIRTIO_MMIO_DEVICE_FEATURES), 0, 'no bits past 63');
  driver.write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffff_ffff);
  assert.equal(driver.read32(VIRTIO_MMIO_DEVICE_FEATURES), 0);
});

test('mmio: driver features are written per window and ignored past window 1', () => {
  const { driver, transport } = setup();
  driver.addStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  driver.write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  driver.write32(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  driver.write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  driver.write32(VIRTIO_MMIO_DRIVER_FEATURES, Number(F_TEST));
  driver.write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
  driver.write32(VIRTIO_MMIO_DRIVER_FEATURES, 0xffff_ffff);
  assert.equal(transport.negotiatedFeatures, VIRTIO_F_VERSION_1 | F_TEST);
});

test('mmio: registers need 32-bit aligned accesses; other widths read 0 and writes are ignored (§4.2.2.2)', () => {
  const { transport, driver } = setup();
  const b = new Uint8Array(2);
  transport.read(VIRTIO_MMIO_MAGIC_VALUE, b);
  assert.deepEqual([...b], [0, 0]);
  const one = new Uint8Array(1);
  transport.read(VIRTIO_MMIO_VERSION, one);
  assert.equal(one[0], 0);
  const four = new Uint8Array(4);
  transport.read(VIRTIO_MMIO_MAGIC_VALUE + 1, four);
  assert.deepEqual([...four], [0, 0, 0, 0]);
  transport.write(VIRTIO_MMIO_STATUS, Uint8Array.of(STATUS_ACKNOWLEDGE));
  transport.write(VIRTIO_MMIO_STATUS + 2, Uint8Array.of(STATUS_ACKNOWLEDGE, 0, 0, 0));
  const eight = new Uint8Array(8);
  transport.read(VIRTIO_MMIO_STATUS, eight);
  assert.deepEqual([...eight], new Array(8).fill(0));
  assert.equal(driver.status(), 0);
});

test('mmio: write-only and reserved registers read 0; writes to read-only registers change nothing', () => {
  const { driver } = setup();
  for (const off of [VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x018, 0x0f8]) {
    assert.equal(driver.read32(off), 0, `offset 0x${off.toString(16)}`);
  }
  driver.write32(VIRTIO_MMIO_MAGIC_VALUE, 0);
  driver.write32(VIRTIO_MMIO_DEVICE_ID, 7);
  driver.write32(VIRTIO_MMIO_INTERRUPT_STATUS, 3);
  assert.equal(driver.read32(VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
  assert.equal(driver.read32(VIRTIO_MMIO_DEVICE_ID), 42);
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
});

test('mmio: no shared memory regions: SHM length and base read as all ones', () => {
  const { driver } = setup();
  assert.equal(driver.read32(VIRTIO_MMIO_SHM_LEN_LOW), 0xffff_ffff);
  assert.equal(driver.read32(VIRTIO_MMIO_SHM_BASE_HIGH), 0xffff_ffff);
});

test('mmio: status follows ACKNOWLEDGE → DRIVER → FEATURES_OK → DRIVER_OK; skipped steps and cleared bits are ignored (§2.1, §3.1.1)', () => {
  const { driver, device } = setup();
  driver.write32(VIRTIO_MMIO_STATUS, STATUS_DRIVER);
  assert.equal(driver.status(), 0, 'DRIVER needs ACKNOWLEDGE');
  driver.addStatus(STATUS_ACKNOWLEDGE);
  driver.addStatus(STATUS_FEATURES_OK);
  assert.equal(driver.status(), STATUS_ACKNOWLEDGE, 'FEATURES_OK needs DRIVER');
  driver.addStatus(STATUS_DRIVER);
  driver.writeDriverFeatures(VIRTIO_F_VERSION_1);
  driver.addStatus(STATUS_DRIVER_OK);
  assert.equal(driver.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER, 'DRIVER_OK needs FEATURES_OK');
  driver.addStatus(STATUS_FEATURES_OK);
  assert.equal(driver.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
  driver.write32(VIRTIO_MMIO_STATUS, STATUS_ACKNOWLEDGE | STATUS_FEATURES_OK);
  assert.equal(driver.status(), STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK, 'bits are never cleared except by reset');
  driver.write32(VIRTIO_MMIO_STATUS, driver.status() | STATUS_DEVICE_NEEDS_RESET);
  assert.equal(driver.status() & STATUS_DEVICE_NEEDS_RESET, 0, 'the driver cannot set DEVICE_NEEDS_RESET');
  driver.addStatus(STATUS_DRIVER_OK);
  assert.equal(driver.status(), 0x0f);
  assert.equal(device.activations, 1);
  driver.addStatus(STATUS_FAILED);
  assert.equal(driver.status(), 0x8f);
});

test('mmio: FEATURES_OK is refused when the driver does not accept VIRTIO_F_VERSION_1 (§6.1)', () => {
  const { driver, device } = setup();
  const status = driver.init(QUEUES, (offered) => offered & ~VIRTIO_F_VERSION_1);
  assert.equal(status, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  driver.addStatus(STATUS_FEATURES_OK | STATUS_DRIVER_OK);
  assert.equal(driver.status() & (STATUS_FEATURES_OK | STATUS_DRIVER_OK), 0);
  assert.equal(device.activations, 0);
});

test('mmio: FEATURES_OK is refused when the driver accepts a feature that was not offered (§2.2.1)', () => {
  const { driver } = setup();
  assert.equal(driver.init(QUEUES, (offered) => offered | (1n << 7n)), STATUS_ACKNOWLEDGE | STATUS_DRIVER);
});

test('mmio: driver features are frozen once FEATURES_OK is set', () => {
  const { driver, transport } = setup();
  driver.init(QUEUES, () => VIRTIO_F_VERSION_1);
  driver.writeDriverFeatures(VIRTIO_F_VERSION_1 | F_TEST);
  assert.equal(transport.negotiatedFeatures, VIRTIO_F_VERSION_1);
});

test('mmio: queue registers: QueueNumMax per queue, 0 for a queue that does not exist, QueueReady reads back', () => {
  const { driver } = setup();
  assert.equal(driver.queueNumMax(0), 16);
  assert.equal(driver.queueNumMax(1), 8);
  assert.equal(driver.queueNumMax(2), 0);
  driver.addStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  driver.writeDriverFeatures(VIRTIO_F_VERSION_1);
  driver.addStatus(STATUS_FEATURES_OK);
  driver.write32(VIRTIO_MMIO_QUEUE_SEL, 1);
  assert.equal(driver.read32(VIRTIO_MMIO_QUEUE_READY), 0);
  driver.write32(VIRTIO_MMIO_QUEUE_READY, 1);
  assert.equal(driver.read32(VIRTIO_MMIO_QUEUE_READY), 1);
  driver.write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  assert.equal(driver.read32(VIRTIO_MMIO_QUEUE_READY), 0);
  driver.write32(VIRTIO_MMIO_QUEUE_SEL, 5);
  driver.write32(VIRTIO_MMIO_QUEUE_READY, 1);
  assert.equal(driver.read32(VIRTIO_MMIO_QUEUE_READY), 0, 'a queue that does not exist never becomes ready');
});

test('mmio: queue registers are ignored before FEATURES_OK, while the queue is ready, and after DRIVER_OK', () => {
  const { driver, transport } = setup();
  driver.addStatus(STATUS_ACKNOWLEDGE | STATUS_DRIVER);
  driver.write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  driver.write32(VIRTIO_MMIO_QUEUE_NUM, 4);
  driver.write32(VIRTIO_MMIO_QUEUE_READY, 1);
  assert.equal(transport.queues[0]!.size, 16);
  assert.equal(transport.queues[0]!.ready, false, 'before FEATURES_OK');
  driver.writeDriverFeatures(VIRTIO_F_VERSION_1);
  driver.addStatus(STATUS_FEATURES_OK);
  driver.setupQueue(0, QUEUES[0]!);
  driver.write32(VIRTIO_MMIO_QUEUE_NUM, 4);
  driver.write32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x9000);
  assert.equal(transport.queues[0]!.size, 16, 'while ready');
  assert.equal(transport.queues[0]!.descLow, QUEUES[0]!.desc);
  driver.addStatus(STATUS_DRIVER_OK);
  driver.write32(VIRTIO_MMIO_QUEUE_READY, 0);
  driver.write32(VIRTIO_MMIO_QUEUE_SEL, 1);
  driver.write32(VIRTIO_MMIO_QUEUE_NUM, 2);
  assert.equal(transport.queues[0]!.ready, true, 'after DRIVER_OK');
  assert.equal(transport.queues[1]!.size, 8);
});

test('mmio: DRIVER_OK activates the device once with the negotiated features and the queues', () => {
  const { device, transport } = running();
  assert.equal(device.activations, 1);
  assert.equal(device.act?.features, transport.deviceFeatures);
  assert.equal(device.act?.queues.length, 2);
  assert.ok(device.act?.queues.every((q) => q.active));
  assert.equal(transport.activated, true);
});

test('mmio: a queue with a bad layout at DRIVER_OK means DEVICE_NEEDS_RESET, a config interrupt, and no activation', () => {
  const { driver, device, irq, reasons } = setup();
  const status = driver.init([QUEUES[0]!, { ...QUEUES[1]!, size: 6 }]);
  assert.equal(status, 0x0f | STATUS_DEVICE_NEEDS_RESET);
  assert.equal(device.activations, 0);
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
  assert.equal(irq.edges, 1);
  assert.match(reasons[0]!, /layout/);
});

test('mmio: QueueNotify reaches processQueue(index); notifyQueue is the same path (for an ioeventfd)', () => {
  const { driver, device, transport, rings } = running();
  rings[1]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(1);
  assert.deepEqual(device.processed, [1]);
  assert.deepEqual(rings[1]!.takeUsed(), [{ id: 0, len: 4 }]);
  transport.notifyQueue(0);
  assert.deepEqual(device.processed, [1, 0]);
});

test('mmio: queueNotifiers describe the QueueNotify writes an ioeventfd would catch, one per queue', () => {
  const { transport, device, driver, rings } = running();
  assert.deepEqual(transport.queueNotifiers(), [
    { offset: VIRTIO_MMIO_QUEUE_NOTIFY, length: 4, value: 0, queue: 0 },
    { offset: VIRTIO_MMIO_QUEUE_NOTIFY, length: 4, value: 1, queue: 1 },
  ]);
  // Delivering the caught write through notifyQueue has the same effect as the MMIO write.
  for (const n of transport.queueNotifiers()) {
    rings[n.queue]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
    transport.notifyQueue(n.queue);
  }
  assert.deepEqual(device.processed, [0, 1]);
  assert.deepEqual(rings.map((r) => r.usedIdx()), [1, 1]);
  assert.equal(driver.status(), 0x0f);
});

test('mmio: notifications before DRIVER_OK, for absent queues or queues not made ready are dropped', () => {
  const s = setup();
  s.driver.notify(0);
  s.driver.init([QUEUES[0]!]); // queue 1 left not ready
  s.driver.notify(1);
  s.driver.notify(2);
  s.driver.notify(0xffff_ffff);
  assert.deepEqual(s.device.processed, []);
  s.driver.notify(0);
  assert.deepEqual(s.device.processed, [0]);
});

test('mmio: used-buffer interrupts set InterruptStatus bit 0 and raise one edge each; ACK clears (§4.2.3.4)', () => {
  const { driver, irq, memory } = setup();
  driver.init(QUEUES, (offered) => offered & ~VIRTIO_F_EVENT_IDX);
  const rings = QUEUES.map((l) => new MockVirtqueue(memory, l));
  rings[0]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(0);
  assert.equal(irq.edges, 1);
  assert.equal(irq.level, false, 'an edge: the line is not left asserted');
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
  // A second used buffer before the driver acked: another edge, same status.
  rings[0]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(0);
  assert.equal(irq.edges, 2);
  assert.equal(driver.ackInterrupt(), VIRTIO_MMIO_INT_VRING);
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
  rings[0]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(0);
  assert.equal(irq.edges, 3);
});

test('mmio: config interrupts set bit 1 and bump ConfigGeneration; ACK clears only the bits written', () => {
  const { driver, device, irq, rings } = running();
  const gen = driver.read32(VIRTIO_MMIO_CONFIG_GENERATION);
  device.act!.interrupt.trigger('config');
  assert.equal(driver.read32(VIRTIO_MMIO_CONFIG_GENERATION), gen + 1);
  rings[0]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(0);
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
  assert.equal(irq.edges, 2);
  driver.write32(VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG | 0xfffc);
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
});

test('mmio: EVENT_IDX suppression reaches the interrupt line', () => {
  const { driver, irq, rings } = running();
  const ring = rings[0]!;
  ring.setUsedEvent(5);
  for (let i = 0; i < 3; i++) {
    ring.addChain([{ address: 0x8000, length: 4, writable: true }]);
    driver.notify(0);
  }
  assert.equal(irq.edges, 0, 'used idx 0..2 do not reach used_event 5');
  for (let i = 0; i < 3; i++) ring.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(0);
  assert.equal(irq.edges, 1);
});

test('mmio: writing 0 to Status resets device, queues, features and interrupt status (§4.2.2.1)', () => {
  const { driver, device, transport, rings } = running();
  rings[0]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(0);
  const act = device.act!;
  const resets = device.resets;
  driver.write32(VIRTIO_MMIO_STATUS, 0);
  assert.equal(device.resets, resets + 1);
  assert.equal(driver.status(), 0);
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
  assert.equal(transport.negotiatedFeatures, 0n);
  assert.ok(transport.queues.every((q) => !q.ready && !q.active));
  driver.write32(VIRTIO_MMIO_QUEUE_SEL, 0);
  assert.equal(driver.read32(VIRTIO_MMIO_QUEUE_READY), 0);
  // The old activation is dead: its interrupts and reset requests go nowhere.
  act.interrupt.trigger('used');
  act.needsReset('stale');
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
  assert.equal(driver.status(), 0);
  // And the device comes back.
  assert.equal(driver.init(QUEUES), 0x0f);
  assert.equal(device.activations, 2);
});

test('mmio: a malformed queue during processing: DEVICE_NEEDS_RESET, config interrupt, queues stop until reset', () => {
  const { driver, device, irq, rings, reasons } = running();
  rings[0]!.publish(77);
  driver.notify(0);
  assert.equal(driver.status() & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  assert.equal(driver.read32(VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
  assert.equal(irq.edges, 1);
  assert.match(reasons[0]!, /descriptor-index/);
  rings[1]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  driver.notify(1);
  assert.deepEqual(device.processed, [0], 'no more processing in DEVICE_NEEDS_RESET');
  assert.equal(rings[1]!.usedIdx(), 0);
  assert.equal(driver.init(QUEUES), 0x0f, 'a reset brings the device back');
});

test('mmio: a device that throws ends in DEVICE_NEEDS_RESET, never in an exception on the bus', () => {
  for (const where of ['process', 'activate', 'config'] as const) {
    const s = setup();
    s.device.throwIn = where;
    s.driver.init(QUEUES);
    s.driver.notify(0);
    const cfg = new Uint8Array(4).fill(0x55);
    s.transport.read(VIRTIO_MMIO_CONFIG, cfg);
    if (where === 'config') assert.deepEqual([...cfg], [0, 0, 0, 0]);
    assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET, where);
    assert.match(s.reasons[0]!, new RegExp(`${where} boom`));
  }
});

test('mmio: configuration space at 0x100 goes to the device at any width', () => {
  const { transport, device } = setup();
  transport.write(VIRTIO_MMIO_CONFIG + 2, Uint8Array.of(1, 2, 3));
  assert.deepEqual([...device.config], [0, 0, 1, 2, 3, 0, 0, 0]);
  const b = new Uint8Array(2);
  transport.read(VIRTIO_MMIO_CONFIG + 3, b);
  assert.deepEqual([...b], [2, 3]);
  const far = new Uint8Array(4).fill(9);
  transport.read(VIRTIO_MMIO_CONFIG + 0x400, far);
  assert.deepEqual([...far], [0, 0, 0, 0]);
});

test('mmio: the transport works on the MMIO bus at a slot of the machine layout', () => {
  const { transport } = setup();
  const bus = new Bus('mmio');
  bus.insert(transport, MMIO_START, MMIO_SLOT_SIZE, 'virtio-mmio@0');
  const b = new Uint8Array(4);
  assert.equal(bus.read(MMIO_START + VIRTIO_MMIO_MAGIC_VALUE, b), true);
  assert.equal(new DataView(b.buffer).getUint32(0, true), VIRTIO_MMIO_MAGIC);
});

test('mmio: saveState/restoreState carries a running device into a new transport', () => {
  const a = running();
  a.rings[0]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  a.driver.notify(0);
  const state = JSON.parse(JSON.stringify(a.transport.saveState()));
  const device = new SinkDevice();
  const transport = new VirtioMmioTransport(device, { memory: a.memory, irq: new RecordingIrqLine() });
  transport.restoreState(state);
  assert.equal(device.activations, 1);
  assert.equal(new MockMmioDriver(transport).status(), 0x0f);
  a.rings[0]!.addChain([{ address: 0x8000, length: 4, writable: true }]);
  transport.notifyQueue(0);
  assert.deepEqual(a.rings[0]!.takeUsed(), [{ id: 0, len: 4 }, { id: 1, len: 4 }], 'the restored queue continues where the old one stopped');
  assert.deepEqual(transport.saveState().queues, a.transport.saveState().queues.map((q, i) => (i === 0 ? { ...q, nextAvail: 2, nextUsed: 2, signalledUsed: 2 } : q)));
});

test('mmio: restoreState refuses malformed states by field name and changes nothing', () => {
  const { transport, device } = running();
  const good = transport.saveState();
  const resets = device.resets;
  const bad: [string, unknown][] = [
    ['status', { ...good, status: 0x30 }],
    ['interruptStatus', { ...good, interruptStatus: 4 }],
    ['queues', { ...good, queues: [good.queues[0]] }],
    ['queue 1: nextAvail', { ...good, queues: [good.queues[0], { ...good.queues[1], nextAvail: 65536 }] }],
    ['driverFeatures', { ...good, driverFeaturesHigh: 0 }],
    ['state must be an object', null],
  ];
  for (const [field, state] of bad) {
    assert.throws(() => transport.restoreState(state as never), (e: unknown) => e instanceof DeviceStateError && e.message.includes(field), field);
  }
  assert.equal(device.resets, resets);
  assert.equal(transport.activated, true);
});
