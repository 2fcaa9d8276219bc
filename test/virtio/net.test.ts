import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { STATUS_DEVICE_NEEDS_RESET, VIRTIO_ID_NET, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_RING_FEATURES, VirtioMmioTransport } from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue, type MockBuffer } from '../../src/virtio/mock-driver.js';
import { NET_HDR_SIZE, NET_MAX_FRAME, VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VirtioNet, finishChecksum, formatMac, parseMac, randomMac, type NetBackend } from '../../src/virtio/net/index.js';
import { recordingMemory } from './helpers.js';

/** A host network under the test's control. */
class FakeNet implements NetBackend {
  onReadable: (() => void) | undefined;
  sent: Uint8Array[] = [];
  waiting: Uint8Array[] = [];
  refuse = false;
  send(packet: Uint8Array): boolean {
    if (this.refuse) return false;
    this.sent.push(packet.slice());
    return true;
  }
  receive(): Uint8Array | undefined {
    return this.waiting.shift();
  }
  /** Packets arrive from the host (header + frame each). */
  deliver(...packets: Uint8Array[]): void {
    this.waiting.push(...packets);
    this.onReadable?.();
  }
}

const RX = layoutQueue(0x1000, 16);
const TX = layoutQueue(0x3000, 16);
const BUF = 0x10_0000;

function frame(length: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff);
}

/** Header (zeros, or the given bytes) + frame, as the host or the guest puts them. */
function packet(f: Uint8Array, header: Partial<Record<number, number>> = {}): Uint8Array {
  const p = new Uint8Array(NET_HDR_SIZE + f.length);
  for (const [i, v] of Object.entries(header)) p[Number(i)] = v!;
  p.set(f, NET_HDR_SIZE);
  return p;
}

function setup(mac = '02:00:00:00:00:07') {
  const memory = recordingMemory([{ base: 0, size: 0x40_0000 }]);
  const irq = new RecordingIrqLine();
  const backend = new FakeNet();
  const net = new VirtioNet({ backend, mac });
  const resets: string[] = [];
  const transport = new VirtioMmioTransport(net, { memory, irq, onNeedsReset: (r) => resets.push(r) });
  const driver = new MockMmioDriver(transport);
  assert.equal(driver.init([RX, TX]), 0x0f);
  const rx = new MockVirtqueue(memory, RX);
  const tx = new MockVirtqueue(memory, TX);
  /** The guest transmits `bytes` (header + frame) split into descriptors of `split` bytes. */
  const transmit = (bytes: Uint8Array, split: number[] = [bytes.length]): number => {
    memory.write(BUF, bytes);
    let at = BUF;
    const bufs: MockBuffer[] = split.map((length) => ({ address: (at += length) - length, length }));
    const head = tx.addChain(bufs);
    driver.notify(1);
    return head;
  };
  /** The guest posts a receive chain of writable buffers (at BUF + 0x1_0000 * slot). */
  const post = (slot: number, lengths: number[]): number => {
    let at = BUF + 0x1_0000 * (slot + 1);
    const head = rx.addChain(lengths.map((length) => ({ address: (at += length) - length, length, writable: true })));
    driver.notify(0);
    return head;
  };
  const received = (slot: number, len: number): Uint8Array => memory.read(BUF + 0x1_0000 * (slot + 1), len);
  return { memory, irq, backend, net, transport, driver, rx, tx, transmit, post, received, resets };
}

test('net: device ID 1, receive and transmit queues, MAC and link status in configuration space', () => {
  const s = setup('52:54:00:12:34:56');
  assert.equal(s.driver.read32(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_NET);
  assert.deepEqual([0, 1, 2].map((i) => s.driver.queueNumMax(i)), [256, 256, 0]);
  assert.equal(s.net.features, VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_RING_FEATURES, 'no offloads, no control queue');
  const cfg = new Uint8Array(12).fill(0xaa);
  s.transport.read(VIRTIO_MMIO_CONFIG, cfg);
  assert.deepEqual([...cfg], [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 0, 0, 0, 0]);
  s.transport.write(VIRTIO_MMIO_CONFIG, new Uint8Array(8));
  const again = new Uint8Array(2);
  s.transport.read(VIRTIO_MMIO_CONFIG + 4, again);
  assert.deepEqual([...again], [0x34, 0x56], 'read-only, and readable at any offset');
});

test('net: MAC addresses: parsed, formatted, random ones locally administered unicast; bad ones refused by content', () => {
  assert.equal(formatMac(parseMac('02-AB-cd-00-00-01')), '02:ab:cd:00:00:01');
  assert.throws(() => parseMac('02:00:00:00:00'), /not six hexadecimal octets/);
  assert.throws(() => parseMac('02:00:00:00:00:0g'), /not six hexadecimal octets/);
  assert.throws(() => parseMac('01:00:5e:00:00:01'), /is a multicast address/);
  assert.throws(() => parseMac('00:00:00:00:00:00'), /all zeros/);
  assert.throws(() => new VirtioNet({ backend: new FakeNet(), mac: 'ff:ff:ff:ff:ff:ff' }), /multicast/);
  for (let i = 0; i < 50; i++) {
    const m = randomMac();
    assert.equal(m[0]! & 3, 2);
  }
  assert.deepEqual([...randomMac((b) => b.fill(0xff))], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]);
  const net = new VirtioNet({ backend: new FakeNet() });
  assert.equal(net.mac[0]! & 3, 2, 'default: random local unicast');
});

test('net: a transmit chain reaches the backend as header + frame, however the guest splits it', () => {
  const s = setup();
  const f = frame(1514);
  const splits = [[NET_HDR_SIZE + 1514], [NET_HDR_SIZE, 1514], [5, 7, 1000, 514], [NET_HDR_SIZE + 100, 1414]];
  for (const split of splits) s.transmit(packet(f), split);
  assert.equal(s.backend.sent.length, splits.length);
  for (const p of s.backend.sent) assert.deepEqual(p, packet(f));
  assert.deepEqual(s.tx.takeUsed().map((u) => u.len), [0, 0, 0, 0], 'nothing written back');
  assert.equal(s.net.metrics.txFrames, 4);
  assert.equal(s.net.metrics.txBytes, 4 * 1514);
  assert.ok(s.irq.edges > 0);
});

test('net: malformed transmit chains are dropped and counted, never sent, and the queue goes on', () => {
  const s = setup();
  s.transmit(packet(frame(13)));
  s.transmit(packet(frame(60), { 0: 1 })); // NEEDS_CSUM without VIRTIO_NET_F_CSUM
  s.transmit(packet(frame(60), { 1: 1 })); // gso_type TCPV4 without HOST_TSO4
  s.transmit(new Uint8Array(NET_HDR_SIZE - 1));
  const big = new Uint8Array(NET_HDR_SIZE + NET_MAX_FRAME + 1);
  s.memory.write(BUF, big);
  s.tx.addChain([{ address: BUF, length: big.length }]);
  s.driver.notify(1);
  s.tx.addChain([{ address: BUF, length: 100 }, { address: BUF + 0x1000, length: 100, writable: true }]);
  s.driver.notify(1);
  assert.equal(s.backend.sent.length, 0);
  assert.equal(s.net.metrics.txMalformed, 6);
  assert.equal(s.tx.takeUsed().length, 6);
  // Fields that mean nothing without offloads are not passed to the host.
  s.transmit(packet(frame(60), { 2: 0x12, 3: 0x34, 6: 9, 10: 5 }));
  assert.deepEqual(s.backend.sent[0], packet(frame(60)));
  s.backend.refuse = true;
  s.transmit(packet(frame(60)));
  assert.equal(s.net.metrics.txErrors, 1);
  assert.deepEqual(s.resets, []);
});

test('net: a received frame lands in a receive chain after a header with num_buffers = 1', () => {
  const s = setup();
  const head = s.post(0, [NET_HDR_SIZE + 1514]);
  const f = frame(1514, 3);
  s.backend.deliver(packet(f, { 0: 0, 11: 0 }));
  assert.deepEqual(s.rx.takeUsed(), [{ id: head, len: NET_HDR_SIZE + 1514 }]);
  const got = s.received(0, NET_HDR_SIZE + 1514);
  assert.deepEqual([...got.subarray(0, NET_HDR_SIZE)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
  assert.deepEqual(got.subarray(NET_HDR_SIZE), f);
  // Split into several buffers, as a driver may.
  s.post(1, [NET_HDR_SIZE, 100, 2000]);
  s.backend.deliver(packet(f));
  assert.deepEqual(s.received(1, NET_HDR_SIZE + 2100).subarray(NET_HDR_SIZE, NET_HDR_SIZE + 1514), f);
  assert.equal(s.net.metrics.rxFrames, 2);
  assert.equal(s.net.metrics.rxBytes, 3028);
  assert.deepEqual(s.memory.violations, []);
});

test('net: no receive buffer drops the frame and counts it; a chain too small keeps waiting for a frame that fits', () => {
  const s = setup();
  s.backend.deliver(packet(frame(60)), packet(frame(60)));
  assert.equal(s.net.metrics.rxNoBuffer, 2);
  assert.equal(s.backend.waiting.length, 0, 'frames do not pile up waiting for buffers');
  const small = s.post(0, [NET_HDR_SIZE + 100]);
  s.backend.deliver(packet(frame(101)));
  assert.equal(s.net.metrics.rxTooBig, 1);
  assert.deepEqual(s.rx.takeUsed(), []);
  s.backend.deliver(packet(frame(100)));
  assert.deepEqual(s.rx.takeUsed(), [{ id: small, len: NET_HDR_SIZE + 100 }]);
});

test('net: host packets the guest cannot take (GSO, short, bad checksum offsets) are dropped; partial checksums are finished', () => {
  const s = setup();
  s.post(0, [2048]);
  s.backend.deliver(packet(frame(100), { 1: 1 }), new Uint8Array(NET_HDR_SIZE + 13), packet(frame(100), { 0: 1, 6: 98, 8: 2 }));
  assert.equal(s.net.metrics.rxBadPacket, 3);
  // A UDP-like frame: checksum from byte 34, field at +6, holding the pseudo-header sum 0x1234.
  const f = frame(80);
  f[40] = 0x12;
  f[41] = 0x34;
  s.backend.deliver(packet(f, { 0: 1, 6: 34, 8: 6 }));
  const got = s.received(0, NET_HDR_SIZE + 80);
  assert.equal(got[0], 0, 'flags cleared: the guest did not negotiate GUEST_CSUM');
  const sum = (b: Uint8Array, x = 0): number => {
    for (let i = 0; i < b.length; i += 2) x += (b[i]! << 8) | (b[i + 1] ?? 0);
    while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
    return x;
  };
  // The receiver's check: the data from csum_start plus the pseudo-header sum (which the field held) folds to 0xffff.
  assert.equal(sum(got.subarray(NET_HDR_SIZE + 34), 0x1234), 0xffff, 'the completed checksum verifies');
  assert.notDeepEqual([...got.subarray(NET_HDR_SIZE + 40, NET_HDR_SIZE + 42)], [0x12, 0x34]);
  assert.deepEqual(finishChecksum(new Uint8Array(10), 8, 2), undefined);
  assert.deepEqual(finishChecksum(new Uint8Array(10), 2, 3), undefined);
});

test('net: before DRIVER_OK and after reset frames are dropped; queued transmits go out at activation', () => {
  const s = setup();
  s.driver.write32(0x70, 0);
  s.backend.deliver(packet(frame(60)));
  assert.equal(s.net.metrics.rxNoBuffer, 1);
  s.transmit(packet(frame(60)));
  assert.equal(s.backend.sent.length, 0);
  assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, 0);
});
