/**
 * Property test of virtio-net against a hostile driver and a hostile host:
 * random and malformed transmit and receive chains (random descriptors,
 * addresses at and past the ends of RAM, lengths that overflow, headers with
 * random flags) interleaved with random host packets. ≥ 25,000 chains per
 * run (VIRTIO_FUZZ_SCALE scales it).
 *
 * Properties: no exception escapes the device (the only DEVICE_NEEDS_RESET
 * reasons are malformed queues), no access outside guest RAM, every
 * transmitted frame the host sees is well formed, every receive answer fits
 * its chain, and every host packet is accounted for.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { STATUS_DEVICE_NEEDS_RESET, VirtioMmioTransport } from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue, type MockBuffer } from '../../src/virtio/mock-driver.js';
import { ETH_HLEN, NET_HDR_SIZE, VirtioNet, type NetBackend } from '../../src/virtio/net/index.js';
import { RAM_HIGH_A, RAM_HIGH_B, RAM_LOW, recordingMemory } from './helpers.js';
import { prng, type Rand, below } from './helpers.js';

const SCALE = Number(process.env.VIRTIO_FUZZ_SCALE ?? '1');


const RX = layoutQueue(0x1000, 64);
const TX = layoutQueue(0x3000, 64);
/** Where the bulk of buffers point: the upper half of low RAM and the two high regions. */
const AREAS = [
  { base: 0x8000, size: RAM_LOW.size - 0x8000 },
  RAM_HIGH_A,
  RAM_HIGH_B,
];
const RAM_END = RAM_HIGH_B.base + RAM_HIGH_B.size;

class FuzzNet implements NetBackend {
  onReadable: (() => void) | undefined;
  sent: Uint8Array[] = [];
  waiting: Uint8Array[] = [];
  refuse = false;
  send(p: Uint8Array): boolean {
    this.sent.push(p.slice());
    return !this.refuse;
  }
  receive(): Uint8Array | undefined {
    return this.waiting.shift();
  }
}

/** A buffer: usually in RAM (sometimes across the two adjacent high regions), sometimes at or past an edge. */
function buffer(r: Rand, hostility: number): MockBuffer {
  const writable = below(r, 2) === 0;
  if (below(r, 4 * hostility) === 0) {
    const edges = [RAM_LOW.size - 8, RAM_LOW.size, RAM_HIGH_A.base - 4, RAM_HIGH_B.base - 8, RAM_END - 16, RAM_END, 0xffff_fff0];
    const lens = [0, 1, 16, 64, 0x10000, 0xffff_ffff];
    return { address: edges[below(r, edges.length)]!, length: lens[below(r, lens.length)]!, writable };
  }
  const area = AREAS[below(r, AREAS.length)]!;
  const length = below(r, 6) === 0 ? below(r, 24) : below(r, 2100);
  return { address: area.base + below(r, Math.max(1, area.size - length)), length, writable };
}

/** Guest bytes at `b`: a plausible header (zeros) or random, then random frame bytes. */
function scribble(memory: ReturnType<typeof recordingMemory>, b: MockBuffer, r: Rand): void {
  if (b.length === 0 || b.length > 0x1000 || !memory.isValid(b.address, b.length)) return;
  const bytes = new Uint8Array(b.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = r() & 0xff;
  if (below(r, 2) === 0) bytes.fill(0, 0, Math.min(NET_HDR_SIZE, bytes.length));
  memory.write(b.address, bytes);
}

const caseArb = fc.record({
  seed: fc.integer(),
  chains: fc.integer({ min: 1, max: 12 }),
  hostPackets: fc.integer({ min: 0, max: 6 }),
  hostility: fc.constantFrom(1, 4, 16, 64, 256),
  rawDescriptors: fc.constantFrom(true, false, false, false),
  indirect: fc.boolean(),
});

test('net fuzz: random transmit/receive chains and host packets: no escape, no stray access, every frame well formed', (t) => {
  const memory = recordingMemory();
  let chains = 0;
  let needsReset = 0;
  const totals = new Map<string, number>();
  fc.assert(
    fc.property(caseArb, (c) => {
      const r = prng(c.seed);
      memory.violations = [];
      const backend = new FuzzNet();
      backend.refuse = below(r, 8) === 0;
      const net = new VirtioNet({ backend, mac: '02:00:00:00:00:01', queueSize: 64 });
      const reasons: string[] = [];
      const transport = new VirtioMmioTransport(net, { memory, irq: new RecordingIrqLine(), onNeedsReset: (why) => reasons.push(why) });
      const driver = new MockMmioDriver(transport);
      const rx = new MockVirtqueue(memory, RX);
      const tx = new MockVirtqueue(memory, TX);
      driver.init([RX, TX], (offered) => (c.indirect ? offered : offered & ~(1n << 28n)));
      let delivered = 0;
      for (let i = 0; i < c.chains; i++) {
        const q = below(r, 2) === 0 ? rx : tx;
        chains++;
        if (c.rawDescriptors && below(r, 3) === 0) {
          // A descriptor of random words, published as a chain head (possibly out of range).
          const slot = below(r, q.layout.size);
          q.writeDescriptor(slot, { address: BigInt(r()) | (BigInt(below(r, 4) === 0 ? r() : 0) << 32n), length: r(), flags: r() & 0xffff, next: r() & 0xffff });
          q.publish(below(r, 16) === 0 ? r() & 0xffff : slot);
        } else {
          const n = 1 + below(r, 4);
          const bufs: MockBuffer[] = [];
          for (let k = 0; k < n; k++) bufs.push(buffer(r, c.hostility));
          // Receive chains are mostly writable, transmit mostly readable; a hostile driver mixes them.
          for (const b of bufs) if (below(r, c.hostility) !== 0 || c.hostility === 1) b.writable = q === rx ? below(r, 8) !== 0 : below(r, 8) === 0;
          // §2.7.4.2 order (readable first) unless this driver is being hostile about it.
          if (below(r, c.hostility) !== 0) bufs.sort((x, y) => Number(!!x.writable) - Number(!!y.writable));
          if (q === tx) bufs.forEach((b) => scribble(memory, b, r));
          if (c.indirect && below(r, 4) === 0) q.addChain(bufs, { indirectTable: 0x6000 + 0x200 * below(r, 8) });
          else q.addChain(bufs);
        }
        driver.notify(q === rx ? 0 : 1);
        if (below(r, 3) === 0 && c.hostPackets > 0) {
          const k = 1 + below(r, c.hostPackets);
          const packets: Uint8Array[] = [];
          for (let j = 0; j < k; j++) {
            const len = below(r, 6) === 0 ? below(r, 40) : NET_HDR_SIZE + ETH_HLEN + below(r, 2000);
            const p = new Uint8Array(len);
            for (let x = 0; x < Math.min(len, 64); x++) p[x] = below(r, 3) === 0 ? r() & 0xff : 0;
            packets.push(p);
          }
          delivered += k;
          backend.waiting.push(...packets);
          backend.onReadable?.();
        }
      }
      assert.deepEqual(memory.violations, []);
      // Only a malformed queue may stop the device: device code never threw.
      for (const why of reasons) assert.match(why, /^virtqueue: /);
      const status = driver.status();
      if (status & STATUS_DEVICE_NEEDS_RESET) {
        needsReset++;
        return;
      }
      for (const p of backend.sent) {
        assert.ok(p.length >= NET_HDR_SIZE + ETH_HLEN);
        assert.deepEqual([...p.subarray(0, NET_HDR_SIZE)], new Array(NET_HDR_SIZE).fill(0));
      }
      const m = net.metrics;
      for (const [k, v] of Object.entries(m.snapshot())) totals.set(k, (totals.get(k) ?? 0) + v);
      assert.equal(m.rxFrames + m.rxNoBuffer + m.rxTooBig + m.rxBadPacket, delivered, 'every host packet delivered or counted');
      assert.equal(tx.usedIdx(), memory.readU16(TX.avail + 2), 'every transmit chain consumed');
      for (const u of rx.takeUsed()) assert.ok(u.len >= NET_HDR_SIZE + ETH_HLEN && u.len <= NET_HDR_SIZE + 2000 + ETH_HLEN);
    }),
    { numRuns: Math.max(1, Math.round(5_000 * SCALE)) },
  );
  t.diagnostic(`${chains} chains; ${needsReset} cases ended in DEVICE_NEEDS_RESET; others: ${[...totals].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(chains >= 25_000 * Math.min(1, SCALE), `${chains} chains`);
});
