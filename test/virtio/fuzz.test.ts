/**
 * Property tests of every guest-facing surface of the virtio core: random
 * and malformed queue states and chains (descriptor tables of random bytes,
 * random avail indices, loops, nested indirect tables, addresses at and past
 * the ends of RAM regions, lengths that overflow 2^32), and random MMIO
 * register scripts.
 *
 * fast-check draws the structure (queue size, features, seeds, scripts) so
 * failures shrink to a small case; the bulk bytes come from a seeded PRNG,
 * which keeps the ~100,000 cases of a run within seconds. Set
 * VIRTIO_FUZZ_SCALE (default 1) to run more or fewer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecordingIrqLine } from '../../src/bus/index.js';
import {
  DESC_SIZE,
  STATUS_DEVICE_NEEDS_RESET,
  VIRTIO_MMIO_CONFIG,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  RNG_MAX_REQUEST_BYTES,
  VirtioMmioTransport,
  VirtioRng,
  Virtqueue,
  queueAreaSizes,
  writeToBuffers,
  type DescriptorChain,
  type VirtioActivation,
  type VirtioDevice,
} from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue, type MockBuffer, type QueueLayout } from '../../src/virtio/mock-driver.js';
import { RAM_HIGH_A, RAM_HIGH_B, RAM_LOW, recordingMemory, type RecordingMemory } from './helpers.js';
import { prng, type Rand, below, pick } from './helpers.js';

const SCALE = Number(process.env.VIRTIO_FUZZ_SCALE ?? '1');
const runs = (n: number): number => Math.max(1, Math.round(n * SCALE));


const REGIONS = [RAM_LOW, RAM_HIGH_A, RAM_HIGH_B];
const RAM_END = RAM_HIGH_B.base + RAM_HIGH_B.size;
/** Where the rings live (RAM_LOW), where indirect tables live, and where buffers point. */
const RING_BASE = 0x1000;
const INDIRECT_AREA = 0x8000;
const INDIRECT_SLOTS = 4;
const INDIRECT_SLOT_BYTES = 0x1800;

/** [low, high] address words at and around the edges of RAM, and beyond it. */
const EDGE_ADDRESSES: readonly [number, number][] = [
  [0, 0],
  [RAM_LOW.size - 1, 0],
  [RAM_LOW.size - 16, 0],
  [RAM_LOW.size, 0],
  [RAM_HIGH_A.base - 1, 0],
  [RAM_HIGH_A.base, 0],
  [RAM_HIGH_B.base - 8, 0],
  [RAM_END - 1, 0],
  [RAM_END - 16, 0],
  [RAM_END, 0],
  [0xffff_ffff, 0],
  [0, 1],
  [0xffff_ffff, 0x000f_ffff],
  [0, 0x0010_0000],
  [0xffff_fff0, 0xffff_ffff],
  [0xffff_ffff, 0xffff_ffff],
];
const EDGE_LENGTHS = [0, 1, 2, 15, 16, 17, 4096, 0x10000, 0x10001, 0x7fff_ffff, 0x8000_0000, 0xffff_fff0, 0xffff_ffff];
const N = VIRTQ_DESC_F_NEXT;
const W = VIRTQ_DESC_F_WRITE;
const I = VIRTQ_DESC_F_INDIRECT;
/** Mostly chain-building flags; INDIRECT and its forbidden combinations less often. */
const FLAG_CHOICES = [0, 0, N, N, N, N, W, W, N | W, N | W, N | W, N | W, I, I, I | N, I | W];

/** A buffer inside RAM (sometimes across the boundary of the two adjacent regions). */
function ramBuffer(r: Rand): [number, number, number] {
  if (below(r, 8) === 0) {
    const len = 1 + below(r, 64);
    return [RAM_HIGH_B.base - below(r, len), 0, len];
  }
  const reg = pick(r, REGIONS);
  const len = below(r, 4) === 0 ? 0 : 1 + below(r, 0x800);
  return [reg.base + below(r, reg.size - len + 1), 0, len];
}

/**
 * Writes one descriptor at `at` in `dv`: plausible, or (one time in
 * `hostility`) random bytes or aimed at an edge.
 */
function randomDescriptor(dv: DataView, at: number, r: Rand, tableSize: number, queueSize: number, hostility: number): void {
  const mode = below(r, 4 * hostility);
  if (mode === 0) {
    for (let i = 0; i < DESC_SIZE; i += 4) dv.setUint32(at + i, r(), true);
  } else {
    let flags = below(r, 16 * hostility) === 0 ? r() & 0xffff : pick(r, FLAG_CHOICES);
    let [lo, hi, len] = ramBuffer(r);
    if (flags & VIRTQ_DESC_F_INDIRECT) {
      // Mostly a real table slot with a plausible length; sometimes an edge.
      lo = INDIRECT_AREA + INDIRECT_SLOT_BYTES * below(r, INDIRECT_SLOTS);
      hi = 0;
      len = below(r, 2 * hostility) === 0 ? pick(r, EDGE_LENGTHS) : DESC_SIZE * (1 + below(r, queueSize + (below(r, 8) === 0 ? 1 : 0))) + (below(r, 8 * hostility) === 0 ? 8 : 0);
    }
    if (mode === 1) [lo, hi] = pick(r, EDGE_ADDRESSES);
    if (mode === 2) len = pick(r, EDGE_LENGTHS);
    if (mode === 3) flags = r() & 0xffff;
    dv.setUint32(at, lo, true);
    dv.setUint32(at + 4, hi, true);
    dv.setUint32(at + 8, len, true);
    dv.setUint16(at + 12, flags, true);
    dv.setUint16(at + 14, below(r, 8 * hostility) === 0 ? (below(r, 2) ? r() & 0xffff : tableSize) : below(r, tableSize), true);
  }
}

/** Writes `n` random descriptors as one table at `address`. */
function randomTable(memory: RecordingMemory, address: number, n: number, r: Rand, queueSize: number, hostility: number): void {
  const bytes = new Uint8Array(DESC_SIZE * n);
  const dv = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) randomDescriptor(dv, DESC_SIZE * i, r, n, queueSize, hostility);
  memory.write(address, bytes);
}

interface QueueCase {
  seed: number;
  sizeLog: number;
  indirect: boolean;
  eventIdx: boolean;
  /** Start of the device's avail/used positions (near 65535 tests wrap-around). */
  start: number;
  /** How many heads the driver publishes (beyond size = malformed). */
  heads: number;
  /** 0: normal avail idx; 1: random avail idx; 2: a misplaced or misaligned layout; 3: more heads than the ring holds. */
  twist: number;
  /** One descriptor in 4 × hostility is random bytes or aimed at an edge. */
  hostility: number;
}

const queueCase: fc.Arbitrary<QueueCase> = fc.record({
  seed: fc.integer(),
  sizeLog: fc.integer({ min: 0, max: 8 }),
  indirect: fc.constantFrom(true, true, true, false),
  eventIdx: fc.boolean(),
  start: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xfff0, max: 0xffff })),
  heads: fc.integer({ min: 0, max: 260 }),
  twist: fc.integer({ min: 0, max: 20 }),
  hostility: fc.constantFrom(1, 2, 8, 64),
});

/**
 * Fills a queue's rings and the indirect area with the case's random
 * contents, as a driver (a hostile one) would. Returns the layout.
 */
function scribble(memory: RecordingMemory, c: QueueCase, r: Rand): QueueLayout {
  const size = 1 << c.sizeLog;
  let layout = layoutQueue(RING_BASE, size);
  const a = queueAreaSizes(size);
  randomTable(memory, layout.desc, size, r, size, c.hostility);
  const n = Math.min(size + 1, INDIRECT_SLOT_BYTES / DESC_SIZE);
  for (let t = 0; t < INDIRECT_SLOTS; t++) randomTable(memory, INDIRECT_AREA + INDIRECT_SLOT_BYTES * t, n, r, size, c.hostility);
  memory.fill(layout.avail, a.avail);
  memory.fill(layout.used, a.used);
  const heads = c.twist === 3 ? size + 1 + (c.heads % 3) : c.heads % (size + 1);
  for (let i = 0; i < heads; i++) {
    const head = below(r, 10) === 0 ? r() & 0xffff : below(r, size);
    memory.writeU16(layout.avail + 4 + 2 * ((c.start + i) % size), head);
  }
  memory.writeU16(layout.avail, r() & 0xffff); // flags
  memory.writeU16(layout.avail + 2, c.twist === 1 ? r() & 0xffff : (c.start + heads) & 0xffff);
  memory.writeU16(layout.avail + 4 + 2 * size, r() & 0xffff); // used_event
  memory.writeU16(layout.used + 2, c.start);
  if (c.twist === 2) {
    const [lo] = pick(r, EDGE_ADDRESSES);
    layout = { ...layout, [pick(r, ['desc', 'avail', 'used'] as const)]: lo + below(r, 3) };
  }
  return layout;
}

/** Checks a chain the queue handed out: every buffer is non-empty RAM, the totals add up, the length is bounded. */
function checkChain(memory: RecordingMemory, chain: DescriptorChain, size: number): void {
  assert.ok(chain.head < size);
  let total = 0;
  for (const list of [chain.readable, chain.writable]) {
    for (const b of list) {
      assert.ok(b.length > 0 && memory.isValid(b.address, b.length), `buffer 0x${b.address.toString(16)}+${b.length}`);
      total += b.length;
    }
  }
  assert.equal(total, chain.readableBytes + chain.writableBytes);
  assert.ok(total <= 2 ** 32);
  assert.ok(chain.readable.length + chain.writable.length <= size);
}

test('virtio fuzz: random and malformed queue states never escape, never touch memory outside RAM, always end', (t) => {
  const memory = recordingMemory();
  /** How cases ended: an error kind, or how many chains were consumed; reported so coverage is visible. */
  const outcomes = new Map<string, number>();
  const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  fc.assert(
    fc.property(queueCase, (c) => {
      const r = prng(c.seed);
      memory.violations = [];
      const layout = scribble(memory, c, r);
      const size = layout.size;
      const q = new Virtqueue(256);
      Object.assign(q, { size, ready: true, descLow: layout.desc, availLow: layout.avail, usedLow: layout.used });
      q.restoreState({ ...q.saveState(), nextAvail: c.start, nextUsed: c.start, signalledUsed: c.start });
      let reported = 0;
      q.onError = () => reported++;
      const accessesBefore = memory.accesses;
      q.activate(memory, { indirect: c.indirect, eventIdx: c.eventIdx });
      let pops = 0;
      for (let chain = q.popChain(); chain; chain = q.popChain()) {
        checkChain(memory, chain, size);
        assert.ok(++pops <= size, 'processing ends: no more chains than the ring holds');
        q.addUsed(chain.head, below(r, chain.writableBytes + 1));
        if (below(r, 3) === 0) q.needsInterrupt();
      }
      q.needsInterrupt();
      count(q.error ? `${q.error.kind} after ${pops ? 'some' : 'no'} chains` : pops ? 'chains consumed' : 'nothing to do');
      // Either the queue is malformed (reported exactly once), or every published chain was consumed.
      if (q.error) assert.equal(reported, 1);
      else if (q.active) assert.equal(q.availableCount(), 0);
      assert.deepEqual(memory.violations, []);
      // Work is bounded by the queue size: ≤ size chains of ≤ size descriptors each, plus ring accesses.
      assert.ok(memory.accesses - accessesBefore <= (size + 2) * (size + 8) + 16, `${memory.accesses - accessesBefore} accesses`);
    }),
    { numRuns: runs(55_000) },
  );
  t.diagnostic([...outcomes].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(', '));
});

test('virtio fuzz: valid chains, direct and indirect, come out exactly as the driver built them', () => {
  const memory = recordingMemory();
  const chainArb = fc.record({
    seed: fc.integer(),
    sizeLog: fc.integer({ min: 0, max: 8 }),
    start: fc.integer({ min: 0, max: 0xffff }),
    chains: fc.array(fc.record({ readable: fc.nat(4), writable: fc.nat(4), indirect: fc.boolean() }), { minLength: 1, maxLength: 8 }),
  });
  fc.assert(
    fc.property(chainArb, (c) => {
      const r = prng(c.seed);
      const size = 1 << c.sizeLog;
      const layout = layoutQueue(RING_BASE, size);
      const driver = new MockVirtqueue(memory, layout);
      driver.startAt(c.start);
      const q = new Virtqueue(256);
      Object.assign(q, { size, ready: true, descLow: layout.desc, availLow: layout.avail, usedLow: layout.used });
      q.restoreState({ ...q.saveState(), nextAvail: c.start, nextUsed: c.start, signalledUsed: c.start });
      q.activate(memory, { indirect: true, eventIdx: false });
      const expected: { head: number; readable: MockBuffer[]; writable: MockBuffer[] }[] = [];
      let descriptorsLeft = size;
      c.chains.forEach((spec, i) => {
        const indirect = spec.indirect && i < INDIRECT_SLOTS;
        const n = Math.max(1, spec.readable + spec.writable);
        if (n > size || (!indirect && n > descriptorsLeft) || (indirect && descriptorsLeft < 1)) return;
        const bufs: MockBuffer[] = [];
        for (let k = 0; k < n; k++) {
          const [address, , length] = ramBuffer(r);
          bufs.push({ address, length, writable: k >= spec.readable && spec.readable + spec.writable > 0 });
        }
        descriptorsLeft -= indirect ? 1 : n;
        const head = driver.addChain(bufs, indirect ? { indirectTable: INDIRECT_AREA + INDIRECT_SLOT_BYTES * i } : {});
        const strip = (w: boolean): MockBuffer[] => bufs.filter((b) => !!b.writable === w && b.length > 0).map((b) => ({ address: b.address, length: b.length }));
        expected.push({ head, readable: strip(false), writable: strip(true) });
      });
      for (const e of expected) {
        const chain = q.popChain();
        assert.ok(chain, q.error?.message);
        assert.deepEqual({ head: chain.head, readable: chain.readable, writable: chain.writable }, e);
        q.addUsed(chain.head, chain.writableBytes);
      }
      assert.equal(q.popChain(), undefined);
      assert.equal(q.error, undefined);
      assert.deepEqual(driver.takeUsed().map((u) => u.id), expected.map((e) => e.head));
    }),
    { numRuns: runs(8_000) },
  );
});

/** A device that consumes every chain, writing into its writable buffers. */
class EchoDevice implements VirtioDevice {
  readonly deviceType = 99;
  readonly queueMaxSizes = [256, 4];
  readonly features = (1n << 28n) | (1n << 29n) | 1n;
  private act: VirtioActivation | undefined;
  readConfig(_o: number, d: Uint8Array): void {
    d.fill(0x11);
  }
  writeConfig(): void {}
  activate(a: VirtioActivation): void {
    this.act = a;
  }
  reset(): void {
    this.act = undefined;
  }
  processQueue(i: number): void {
    const a = this.act!;
    const q = a.queues[i]!;
    for (let c = q.popChain(); c; c = q.popChain()) {
      q.addUsed(c.head, writeToBuffers(a.memory, c.writable, 0, new Uint8Array(Math.min(c.writableBytes, 64)).fill(0xee)));
    }
    if (q.needsInterrupt()) a.interrupt.trigger('used');
  }
}

const REGISTER_OFFSETS = [0x000, 0x004, 0x008, 0x00c, 0x010, 0x014, 0x020, 0x024, 0x030, 0x034, 0x038, 0x044, 0x050, 0x060, 0x064, 0x070, 0x080, 0x084, 0x090, 0x094, 0x0a0, 0x0a4, 0x0ac, 0x0b0, 0x0c0, 0x0fc, 0x100, 0x104, 0xffc];
const mmioOp = fc.record({
  write: fc.boolean(),
  offset: fc.oneof(fc.constantFrom(...REGISTER_OFFSETS), fc.integer({ min: 0, max: 0xfff })),
  width: fc.constantFrom(1, 2, 4, 4, 4, 8),
  value: fc.oneof(fc.integer({ min: 0, max: 0xff }), fc.constantFrom(0, 1, 2, 0xf, 0xffff_ffff), fc.nat()),
});

test('virtio fuzz: random register scripts and random rings through the transport: no exception escapes the bus', () => {
  const memory = recordingMemory();
  fc.assert(
    fc.property(queueCase, fc.boolean(), fc.array(mmioOp, { maxLength: 40 }), (c, initFirst, script) => {
      const r = prng(c.seed);
      memory.violations = [];
      const layout = scribble(memory, c, r);
      const irq = new RecordingIrqLine();
      const transport = new VirtioMmioTransport(new EchoDevice(), { memory, irq });
      const driver = new MockMmioDriver(transport);
      if (initFirst) driver.init([layout]);
      for (const op of script) {
        const data = new Uint8Array(op.width);
        for (let i = 0; i < data.length; i++) data[i] = (op.value >>> (8 * (i % 4))) & 0xff;
        if (op.write) transport.write(op.offset, data);
        else transport.read(op.offset, data);
        if (below(r, 4) === 0) driver.notify(below(r, 3));
      }
      driver.notify(0);
      assert.deepEqual(memory.violations, []);
      const status = driver.status();
      assert.equal(status & ~0xff, 0);
      // Once a queue is malformed, the device says so.
      if (transport.queues.some((q) => q.error)) assert.ok(status & STATUS_DEVICE_NEEDS_RESET);
    }),
    { numRuns: runs(12_000) },
  );
});

test('virtio fuzz: virtio-rng on random rings answers every chain, or needs a reset; writes only inside RAM', () => {
  const memory = recordingMemory();
  fc.assert(
    fc.property(queueCase, (c) => {
      const r = prng(c.seed);
      memory.violations = [];
      const size = 1 << c.sizeLog;
      const rng = new VirtioRng({ limit: null, queueSize: 256 });
      const transport = new VirtioMmioTransport(rng, { memory, irq: new RecordingIrqLine() });
      const driver = new MockMmioDriver(transport);
      const features = (offered: bigint): bigint => offered & ~(c.indirect ? 0n : 1n << 28n) & ~(c.eventIdx ? 0n : 1n << 29n);
      // Bring the device up on clean rings, then let the hostile driver scribble and kick.
      const clean = layoutQueue(RING_BASE, size);
      new MockVirtqueue(memory, clean);
      if (c.twist === 2) {
        driver.init([scribble(memory, c, r)], features);
      } else {
        driver.init([clean], features);
        scribble(memory, { ...c, start: 0 }, r);
      }
      const availIdx = memory.readU16(clean.avail + 2);
      driver.notify(0);
      driver.notify(0);
      assert.deepEqual(memory.violations, []);
      const status = driver.status();
      if (status & STATUS_DEVICE_NEEDS_RESET) return;
      if (c.twist === 2) return; // a layout that happened to be valid elsewhere
      // Every published chain was answered, none with more than the per-request cap.
      // The cap is checked on the device's own count, not on the used ring: a
      // hostile driver may point a writable buffer at the used ring, and the
      // random bytes the device then writes there overwrite earlier used lengths.
      assert.equal(memory.readU16(clean.used + 2), availIdx);
      assert.equal(rng.metrics.requests + rng.metrics.badRequests, availIdx);
      assert.ok(rng.metrics.bytes <= rng.metrics.requests * RNG_MAX_REQUEST_BYTES, `${rng.metrics.bytes} bytes for ${rng.metrics.requests} requests`);
      const cfg = new Uint8Array(4);
      transport.read(VIRTIO_MMIO_CONFIG, cfg);
    }),
    {
      numRuns: runs(28_000),
      // Found by a CI run: the second chain's writable buffer covered the used
      // ring, so its random bytes replaced the first used element's length.
      examples: [[{ seed: -1357643878, sizeLog: 1, indirect: true, eventIdx: false, start: 65520, heads: 230, twist: 0, hostility: 8 }]],
    },
  );
});
