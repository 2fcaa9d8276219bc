import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { DeviceStateError } from '../../src/devices/legacy/common.js';
import {
  RNG_DEFAULT_LIMIT,
  RNG_MAX_REQUEST_BYTES,
  STATUS_DEVICE_NEEDS_RESET,
  TokenBucket,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_ID_RNG,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_STATUS,
  VirtioMmioTransport,
  VirtioRng,
  type TokenBucketConfig,
  type VirtioRngOptions,
} from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue } from '../../src/virtio/mock-driver.js';
import { FakeClock, recordingMemory } from './helpers.js';

const LAYOUT = layoutQueue(0x1000, 16);

/** A counting byte source: deterministic, so tests can check exactly what landed where. */
function counter(): (into: Uint8Array) => void {
  let n = 1;
  return (into) => {
    for (let i = 0; i < into.length; i++) into[i] = n++ & 0xff;
  };
}

function setup(options: VirtioRngOptions = {}, features?: (offered: bigint) => bigint) {
  const memory = recordingMemory([{ base: 0, size: 0x40_0000 }]);
  const irq = new RecordingIrqLine();
  const clock = new FakeClock();
  const rng = new VirtioRng({ clock, ...options });
  const transport = new VirtioMmioTransport(rng, { memory, irq });
  const driver = new MockMmioDriver(transport);
  assert.equal(driver.init([LAYOUT], features), 0x0f);
  const ring = new MockVirtqueue(memory, LAYOUT);
  /** Adds a request of writable buffers and kicks, as Linux's virtio-rng does. */
  const request = (...lengths: number[]): number => {
    let at = 0x10_0000;
    const head = ring.addChain(lengths.map((length) => ({ address: (at += 0x2_0000) - 0x2_0000, length, writable: true })));
    driver.notify(0);
    return head;
  };
  return { memory, irq, clock, rng, transport, driver, ring, request };
}

test('rng: device ID 4, one request queue, an empty configuration space', () => {
  const s = setup();
  assert.equal(s.driver.read32(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_RNG);
  assert.equal(s.driver.queueNumMax(0), 256);
  assert.equal(s.driver.queueNumMax(1), 0);
  const cfg = new Uint8Array(4).fill(7);
  s.transport.read(VIRTIO_MMIO_CONFIG, cfg);
  assert.deepEqual([...cfg], [0, 0, 0, 0]);
  s.transport.write(VIRTIO_MMIO_CONFIG, cfg.fill(1));
});

test('rng: a request is filled with host randomness and used with its length, then an interrupt', () => {
  const s = setup({ limit: null }, (offered) => offered & ~VIRTIO_F_EVENT_IDX);
  const head = s.request(64);
  assert.deepEqual(s.ring.takeUsed(), [{ id: head, len: 64 }]);
  const first = s.memory.read(0x10_0000, 64);
  assert.ok(first.some((b) => b !== 0), 'not left zero');
  s.request(64);
  assert.notDeepEqual(s.memory.read(0x10_0000, 64), first, 'two requests get different bytes');
  assert.equal(s.irq.edges, 2);
  assert.deepEqual(s.rng.metrics.snapshot(), { requests: 2, bytes: 128, badRequests: 0, throttled: 0, hostRngFailures: 0 });
  assert.deepEqual(s.memory.violations, []);
});

test('rng: every writable buffer of a chain is filled in order, direct or indirect', () => {
  const s = setup({ limit: null, source: counter() });
  s.request(3, 5);
  assert.deepEqual(s.ring.takeUsed(), [{ id: 0, len: 8 }]);
  assert.deepEqual([...s.memory.read(0x10_0000, 3)], [1, 2, 3]);
  assert.deepEqual([...s.memory.read(0x12_0000, 5)], [4, 5, 6, 7, 8]);
  const head = s.ring.addChain(
    [
      { address: 0x20_0000, length: 2, writable: true },
      { address: 0x20_1000, length: 2, writable: true },
    ],
    { indirectTable: 0x30_0000 },
  );
  s.driver.notify(0);
  assert.deepEqual(s.ring.takeUsed(), [{ id: head, len: 4 }]);
  assert.deepEqual([...s.memory.read(0x20_1000, 2)], [11, 12]);
});

test('rng: a chain with device-readable buffers is refused with length 0 (§5.4.6.1), and the queue goes on', () => {
  const s = setup({ limit: null });
  const bad = s.ring.addChain([
    { address: 0x10_0000, length: 16 },
    { address: 0x11_0000, length: 16, writable: true },
  ]);
  s.driver.notify(0);
  s.memory.fill(0x11_0000, 16, 0);
  const good = s.request(16);
  assert.deepEqual(s.ring.takeUsed(), [
    { id: bad, len: 0 },
    { id: good, len: 16 },
  ]);
  assert.equal(s.rng.metrics.badRequests, 1);
  assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, 0);
});

test('rng: a chain with nothing writable is refused with length 0', () => {
  const s = setup({ limit: null });
  const head = s.request(0);
  assert.deepEqual(s.ring.takeUsed(), [{ id: head, len: 0 }]);
  assert.equal(s.rng.metrics.badRequests, 1);
});

test(`rng: one request gets at most ${RNG_MAX_REQUEST_BYTES} bytes (§5.4.6.2 allows less than the buffer)`, () => {
  const s = setup({ limit: null });
  const head = s.ring.addChain([{ address: 0x10_0000, length: 0x3_0000, writable: true }]);
  s.driver.notify(0);
  assert.deepEqual(s.ring.takeUsed(), [{ id: head, len: RNG_MAX_REQUEST_BYTES }]);
});

test('rng: the rate limiter grants the burst, then partial requests, then holds requests until tokens return', () => {
  const limit: TokenBucketConfig = { rate: 1000, burst: 100 };
  const s = setup({ limit });
  const a = s.request(64);
  const b = s.request(64);
  assert.deepEqual(s.ring.takeUsed(), [
    { id: a, len: 64 },
    { id: b, len: 36 },
  ]);
  const c = s.request(64);
  assert.deepEqual(s.ring.takeUsed(), [], 'no budget: the request waits in the ring');
  assert.equal(s.rng.metrics.throttled, 1);
  assert.equal(s.rng.waiting, true);
  assert.equal(s.clock.pending, 1);
  const edges = s.irq.edges;
  s.ring.setUsedEvent(2); // the driver waits for c's completion
  s.clock.advance(63);
  assert.deepEqual(s.ring.takeUsed(), [], 'the wake-up waits for the whole request, not for one byte');
  s.clock.advance(1); // 64 bytes at 1000 B/s
  assert.deepEqual(s.ring.takeUsed(), [{ id: c, len: 64 }]);
  assert.equal(s.irq.edges, edges + 1, 'the timer-driven completion interrupts the driver');
  assert.equal(s.rng.waiting, false);
});

test('rng: the default limit is 1 MiB/s with a 256 KiB burst', () => {
  assert.deepEqual(RNG_DEFAULT_LIMIT, { rate: 1 << 20, burst: 256 << 10 });
  const s = setup();
  for (let i = 0; i < 4; i++) s.request(RNG_MAX_REQUEST_BYTES);
  assert.equal(s.ring.takeUsed().reduce((n, u) => n + u.len, 0), 256 << 10);
  s.request(16);
  assert.deepEqual(s.ring.takeUsed(), []);
});

test('rng: reset cancels a pending wake-up; the timer then touches nothing', () => {
  const s = setup({ limit: { rate: 1000, burst: 10 } });
  s.request(10);
  s.request(10);
  assert.equal(s.clock.pending, 1);
  s.driver.write32(VIRTIO_MMIO_STATUS, 0);
  assert.equal(s.clock.pending, 0);
  const accesses = s.memory.accesses;
  s.clock.advance(1000);
  assert.equal(s.memory.accesses, accesses);
});

test('rng: a failing host random source answers with length 0 and is counted', () => {
  const s = setup({
    limit: null,
    source: () => {
      throw new Error('getrandom failed');
    },
  });
  const head = s.request(8);
  assert.deepEqual(s.ring.takeUsed(), [{ id: head, len: 0 }]);
  assert.equal(s.rng.metrics.hostRngFailures, 1);
  assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, 0);
});

test('rng: with EVENT_IDX the driver is interrupted only when used idx reaches used_event', () => {
  const s = setup({ limit: null });
  s.ring.setUsedEvent(1);
  s.request(4);
  assert.equal(s.irq.edges, 0);
  s.request(4);
  assert.equal(s.irq.edges, 1);
  const n = setup({ limit: null }, (offered) => offered & ~VIRTIO_F_EVENT_IDX);
  n.request(4);
  n.request(4);
  assert.equal(n.irq.edges, 2);
});

test('rng: a malformed request queue puts the device in DEVICE_NEEDS_RESET', () => {
  const s = setup({ limit: null });
  s.ring.writeDescriptor(0, { address: 0x10_0000, length: 8, flags: 3, next: 0 });
  s.ring.publish(0);
  s.driver.notify(0);
  assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, STATUS_DEVICE_NEEDS_RESET);
  assert.deepEqual(s.ring.takeUsed(), []);
});

test('rng: the limiter budget survives save/restore; restored requests waiting in the ring are served', () => {
  const limit = { rate: 1000, burst: 100 };
  const s = setup({ limit });
  s.request(70);
  s.ring.takeUsed();
  const state = JSON.parse(JSON.stringify(s.transport.saveState()));
  assert.deepEqual(state.device, { tokens: 30 });
  // A request the old device never saw, then the new device takes over.
  s.ring.addChain([{ address: 0x10_0000, length: 64, writable: true }]);
  const rng = new VirtioRng({ clock: s.clock, limit });
  const transport = new VirtioMmioTransport(rng, { memory: s.memory, irq: new RecordingIrqLine() });
  transport.restoreState(state);
  assert.deepEqual(s.ring.takeUsed(), [{ id: 1, len: 30 }]);
});

test('rng: restoreState refuses a malformed device state', () => {
  const rng = new VirtioRng({ clock: new FakeClock(), limit: { rate: 10, burst: 100 } });
  for (const bad of [{ tokens: 101 }, { tokens: -1 }, { tokens: 'x' }, { tokens: null }, null]) {
    assert.throws(() => rng.restoreState(bad), DeviceStateError, JSON.stringify(bad));
  }
  const unlimited = new VirtioRng({ limit: null });
  assert.throws(() => unlimited.restoreState({ tokens: 5 }), /must be null/);
  unlimited.restoreState({ tokens: null });
});

test('rng: token bucket arithmetic and bad configurations', () => {
  const clock = new FakeClock();
  const b = new TokenBucket({ rate: 100, burst: 50 }, clock);
  assert.equal(b.take(80), 50);
  assert.equal(b.take(1), 0);
  assert.equal(b.msUntil(1), 10);
  assert.equal(b.msUntil(500), 500, 'waits for at most a full bucket');
  clock.advance(250);
  assert.equal(b.take(80), 25);
  clock.advance(10_000);
  assert.equal(b.take(80), 50, 'never more than the burst');
  for (const bad of [{ rate: 0, burst: 1 }, { rate: 1, burst: 0 }, { rate: NaN, burst: 1 }, { rate: 1, burst: Infinity }]) {
    assert.throws(() => new TokenBucket(bad, clock), RangeError);
  }
});
