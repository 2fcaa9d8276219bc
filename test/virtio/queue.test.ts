import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory, heapBacking } from '../../src/memory/index.js';
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  Virtqueue,
  readFromBuffers,
  writeToBuffers,
  fillBuffers,
  type VirtqueueErrorKind,
} from '../../src/virtio/index.js';
import { MockVirtqueue, layoutQueue, writeDescriptor, type QueueLayout } from '../../src/virtio/mock-driver.js';
import { RAM_HIGH_B, RAM_LOW, activeQueue, recordingMemory } from './helpers.js';

const R = VIRTQ_DESC_F_NEXT;
const W = VIRTQ_DESC_F_WRITE;

function setup(size = 16, features = { indirect: true, eventIdx: false }) {
  const memory = recordingMemory();
  const layout = layoutQueue(0x1000, size);
  const driver = new MockVirtqueue(memory, layout);
  const queue = activeQueue(memory, layout, features);
  const errors: string[] = [];
  queue.onError = (e) => errors.push(e.kind);
  return { memory, layout, driver, queue, errors };
}

/** Asserts the queue is malformed with `kind`, reported once, and hands out nothing more. */
function assertMalformed(s: ReturnType<typeof setup>, kind: VirtqueueErrorKind): void {
  assert.equal(s.queue.popChain(), undefined);
  assert.equal(s.queue.error?.kind, kind, s.queue.error?.message);
  assert.deepEqual(s.errors, [kind]);
  assert.equal(s.queue.active, false);
  assert.equal(s.queue.popChain(), undefined);
  assert.deepEqual(s.memory.violations, []);
}

test('queue: a direct chain comes out as readable then writable buffers, checked against RAM', () => {
  const s = setup();
  const head = s.driver.addChain([
    { address: 0x8000, length: 16 },
    { address: 0x8100, length: 32 },
    { address: 0x9000, length: 512, writable: true },
  ]);
  const chain = s.queue.popChain();
  assert.ok(chain);
  assert.equal(chain.head, head);
  assert.deepEqual(chain.readable, [{ address: 0x8000, length: 16 }, { address: 0x8100, length: 32 }]);
  assert.deepEqual(chain.writable, [{ address: 0x9000, length: 512 }]);
  assert.equal(chain.readableBytes, 48);
  assert.equal(chain.writableBytes, 512);
  assert.equal(s.queue.popChain(), undefined);
  s.queue.addUsed(chain.head, 7);
  assert.deepEqual(s.driver.takeUsed(), [{ id: head, len: 7 }]);
  assert.equal(s.queue.needsInterrupt(), true);
  assert.equal(s.queue.needsInterrupt(), false, 'nothing new since the last answer');
  assert.deepEqual(s.memory.violations, []);
});

test('queue: an empty ring gives nothing and an inactive queue touches no memory', () => {
  const s = setup();
  assert.equal(s.queue.popChain(), undefined);
  const idle = new Virtqueue(16);
  const before = s.memory.accesses;
  assert.equal(idle.popChain(), undefined);
  idle.addUsed(0, 0);
  assert.equal(idle.needsInterrupt(), false);
  assert.equal(s.memory.accesses, before);
});

test('queue: an indirect chain yields the table buffers; the WRITE flag on the table descriptor is ignored (§2.7.5.3.2)', () => {
  const s = setup();
  const head = s.driver.addChain(
    [
      { address: 0x8000, length: 8 },
      { address: 0xa000, length: 100, writable: true },
      { address: 0xb000, length: 200, writable: true },
    ],
    { indirectTable: 0x7000 },
  );
  // Set WRITE on the descriptor naming the table.
  s.driver.writeDescriptor(head, { address: 0x7000, length: 48, flags: VIRTQ_DESC_F_INDIRECT | W, next: 0 });
  const chain = s.queue.popChain();
  assert.ok(chain);
  assert.deepEqual(chain.readable, [{ address: 0x8000, length: 8 }]);
  assert.deepEqual(chain.writable, [{ address: 0xa000, length: 100 }, { address: 0xb000, length: 200 }]);
});

test('queue: direct descriptors followed by one indirect descriptor form one chain (§2.7.5.3.2)', () => {
  const s = setup();
  writeDescriptor(s.memory, 0x7000, 0, { address: 0xa000, length: 64, flags: W, next: 0 });
  s.driver.writeDescriptor(3, { address: 0x8000, length: 4, flags: R, next: 5 });
  s.driver.writeDescriptor(5, { address: 0x7000, length: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
  s.driver.publish(3);
  const chain = s.queue.popChain();
  assert.ok(chain);
  assert.equal(chain.head, 3);
  assert.deepEqual(chain.readable, [{ address: 0x8000, length: 4 }]);
  assert.deepEqual(chain.writable, [{ address: 0xa000, length: 64 }]);
});

test('queue: zero-length descriptors are dropped from the buffer lists', () => {
  const s = setup();
  s.driver.addChain([
    { address: 0xdead_0000, length: 0 },
    { address: 0x8000, length: 4 },
    { address: 0x9000, length: 0, writable: true },
    { address: 0x9000, length: 4, writable: true },
  ]);
  const chain = s.queue.popChain();
  assert.ok(chain);
  assert.deepEqual(chain.readable, [{ address: 0x8000, length: 4 }]);
  assert.deepEqual(chain.writable, [{ address: 0x9000, length: 4 }]);
});

test('queue: a buffer straddling two adjacent RAM regions is valid and copies across them', () => {
  const s = setup();
  const at = RAM_HIGH_B.base - 8;
  s.driver.addChain([{ address: at, length: 16, writable: true }]);
  const chain = s.queue.popChain();
  assert.ok(chain);
  const data = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  assert.equal(writeToBuffers(s.memory, chain.writable, 0, data), 16);
  const back = new Uint8Array(16);
  assert.equal(readFromBuffers(s.memory, chain.writable, 0, back), 16);
  assert.deepEqual(back, data);
  const filled = fillBuffers(s.memory, chain.writable, 16, (v) => v.fill(0xee));
  assert.equal(filled, 16);
  assert.ok(s.memory.read(at, 16).every((b) => b === 0xee));
});

test('queue: gather/scatter helpers honour offsets across buffers and stop at the end', () => {
  const s = setup();
  const bufs = [
    { address: 0x8000, length: 3 },
    { address: 0x8100, length: 5 },
  ];
  s.memory.write(0x8000, Uint8Array.of(1, 2, 3));
  s.memory.write(0x8100, Uint8Array.of(4, 5, 6, 7, 8));
  const out = new Uint8Array(10);
  assert.equal(readFromBuffers(s.memory, bufs, 2, out), 6);
  assert.deepEqual([...out.subarray(0, 6)], [3, 4, 5, 6, 7, 8]);
  assert.equal(writeToBuffers(s.memory, bufs, 7, Uint8Array.of(9, 9, 9)), 1);
  assert.equal(s.memory.readU8(0x8104), 9);
  assert.equal(fillBuffers(s.memory, bufs, 4, (v) => v.fill(0)), 4);
  assert.deepEqual([...s.memory.read(0x8100, 2)], [0, 5]);
});

test('queue: avail and used indices wrap from 65535 to 0', () => {
  const s = setup(4);
  s.driver.startAt(65534);
  // Restore the device to the same position, as if 65534 chains had gone round.
  s.queue.restoreState({ ...s.queue.saveState(), nextAvail: 65534, nextUsed: 65534, signalledUsed: 65534 });
  s.queue.activate(s.memory, { indirect: true, eventIdx: false });
  const heads = [0, 1, 2].map((i) => s.driver.addChain([{ address: 0x8000 + 0x100 * i, length: 4, writable: true }]));
  assert.equal(s.memory.readU16(s.layout.avail + 2), 1, 'avail idx wrapped');
  for (const h of heads) {
    const c = s.queue.popChain();
    assert.equal(c?.head, h);
    s.queue.addUsed(h, 4);
  }
  assert.equal(s.queue.popChain(), undefined);
  assert.equal(s.driver.usedIdx(), 1, 'used idx wrapped');
  assert.deepEqual(s.driver.takeUsed().map((u) => u.id), heads);
  assert.equal(s.queue.needsInterrupt(), true);
});

test('queue: undoPop hands the same chain out again', () => {
  const s = setup();
  const head = s.driver.addChain([{ address: 0x8000, length: 4, writable: true }]);
  assert.equal(s.queue.popChain()?.head, head);
  s.queue.undoPop();
  assert.equal(s.queue.availableCount(), 1);
  assert.equal(s.queue.popChain()?.head, head);
  assert.equal(s.queue.availableCount(), 0);
});

test('queue: VIRTQ_AVAIL_F_NO_INTERRUPT suppresses used-buffer notifications without EVENT_IDX (§2.7.7.2)', () => {
  const s = setup();
  s.driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  s.driver.addChain([{ address: 0x8000, length: 4, writable: true }]);
  s.queue.addUsed(s.queue.popChain()!.head, 0);
  assert.equal(s.queue.needsInterrupt(), false);
  s.driver.setAvailFlags(0);
  s.driver.addChain([{ address: 0x8000, length: 4, writable: true }]);
  s.queue.addUsed(s.queue.popChain()!.head, 0);
  assert.equal(s.queue.needsInterrupt(), true);
});

test('queue: with EVENT_IDX, used_event decides the notification and the flags are ignored (§2.7.7.2)', () => {
  const s = setup(16, { indirect: false, eventIdx: true });
  s.driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT); // must be ignored
  const complete = (n: number): void => {
    for (let i = 0; i < n; i++) s.driver.addChain([{ address: 0x8000, length: 4, writable: true }]);
    for (let i = 0; i < n; i++) s.queue.addUsed(s.queue.popChain()!.head, 1);
  };
  s.driver.setUsedEvent(2); // notify when the element at used index 2 is written
  complete(2); // used idx 0 → 2: elements 0 and 1
  assert.equal(s.queue.needsInterrupt(), false);
  complete(1); // element 2
  assert.equal(s.queue.needsInterrupt(), true);
  complete(3); // elements 3..5, used_event still 2
  assert.equal(s.queue.needsInterrupt(), false);
  s.driver.setUsedEvent(7);
  complete(4); // elements 6..9 include 7
  assert.equal(s.queue.needsInterrupt(), true);
});

test('queue: with EVENT_IDX, an empty ring publishes avail_event = next position (§2.7.10)', () => {
  const s = setup(16, { indirect: false, eventIdx: true });
  for (let i = 0; i < 3; i++) s.driver.addChain([{ address: 0x8000, length: 4, writable: true }]);
  while (s.queue.popChain());
  assert.equal(s.driver.availEvent(), 3);
});

test('queue: EVENT_IDX wrap-around: used_event near 65535 is honoured across the wrap', () => {
  const s = setup(8, { indirect: false, eventIdx: true });
  s.driver.startAt(65533);
  s.queue.restoreState({ ...s.queue.saveState(), nextAvail: 65533, nextUsed: 65533, signalledUsed: 65533 });
  s.queue.activate(s.memory, { indirect: false, eventIdx: true });
  s.driver.setUsedEvent(0); // element at used index 0, i.e. the 4th after 65533
  for (let i = 0; i < 3; i++) s.driver.addChain([{ address: 0x8000, length: 1, writable: true }]);
  for (let i = 0; i < 3; i++) s.queue.addUsed(s.queue.popChain()!.head, 1);
  assert.equal(s.queue.needsInterrupt(), false, '65533..65535 do not reach used_event 0');
  s.driver.addChain([{ address: 0x8000, length: 1, writable: true }]);
  s.queue.addUsed(s.queue.popChain()!.head, 1);
  assert.equal(s.queue.needsInterrupt(), true);
});

// Malformed layouts: each one stops the queue at activation.
const layoutCases: [string, (l: QueueLayout) => Partial<Record<'size' | 'descLow' | 'descHigh' | 'availLow' | 'usedLow' | 'usedHigh', number>>][] = [
  ['size not a power of 2', () => ({ size: 12 })],
  ['size 0', () => ({ size: 0 })],
  ['size above QueueNumMax', () => ({ size: 512 })],
  ['descriptor table not 16-byte aligned', (l) => ({ descLow: l.desc + 8 })],
  ['available ring not 2-byte aligned', (l) => ({ availLow: l.avail + 1 })],
  ['used ring not 4-byte aligned', (l) => ({ usedLow: l.used + 2 })],
  ['descriptor table running past the end of RAM', () => ({ descLow: RAM_LOW.size - 16 })],
  ['used ring in the hole between regions', () => ({ usedLow: RAM_LOW.size + 0x100 })],
  ['used ring at an address ≥ 2^52', () => ({ usedHigh: 0x0010_0000 })],
  ['descriptor table at 2^64 - 16', () => ({ descLow: 0xffff_fff0, descHigh: 0xffff_ffff })],
];
for (const [name, change] of layoutCases) {
  test(`queue: needs reset: layout: ${name}`, () => {
    const memory = recordingMemory();
    const layout = layoutQueue(0x1000, 16);
    const q = new Virtqueue(256);
    Object.assign(q, { size: 16, ready: true, descLow: layout.desc, availLow: layout.avail, usedLow: layout.used }, change(layout));
    const kinds: string[] = [];
    q.onError = (e) => kinds.push(e.kind);
    assert.equal(q.activate(memory, { indirect: true, eventIdx: true }), false);
    assert.deepEqual(kinds, ['layout']);
    assert.equal(q.popChain(), undefined);
    assert.deepEqual(memory.violations, []);
  });
}

test('queue: a queue the driver did not make ready stays inactive and is not checked', () => {
  const memory = recordingMemory();
  const q = new Virtqueue(16);
  q.size = 3;
  assert.equal(q.activate(memory, { indirect: false, eventIdx: false }), true);
  assert.equal(q.active, false);
  assert.equal(q.popChain(), undefined);
});

test('queue: needs reset: avail idx more than queue size ahead', () => {
  const s = setup(16);
  s.driver.setAvailIdx(17);
  assertMalformed(s, 'avail-index');
});

test('queue: needs reset: avail idx moved backwards (seen as a huge step forwards)', () => {
  const s = setup(16);
  s.driver.addChain([{ address: 0x8000, length: 4 }]);
  s.queue.popChain();
  s.driver.setAvailIdx(0);
  assertMalformed(s, 'avail-index');
});

test('queue: needs reset: head index outside the table', () => {
  const s = setup(16);
  s.driver.publish(16);
  assertMalformed(s, 'descriptor-index');
});

test('queue: needs reset: next index outside the table', () => {
  const s = setup(16);
  s.driver.writeDescriptor(0, { address: 0x8000, length: 4, flags: R, next: 16 });
  s.driver.publish(0);
  assertMalformed(s, 'descriptor-index');
});

test('queue: needs reset: next index outside an indirect table', () => {
  const s = setup(16);
  writeDescriptor(s.memory, 0x7000, 0, { address: 0x8000, length: 4, flags: R, next: 2 });
  writeDescriptor(s.memory, 0x7000, 1, { address: 0x8000, length: 4, flags: 0, next: 0 });
  s.driver.writeDescriptor(0, { address: 0x7000, length: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
  s.driver.publish(0);
  assertMalformed(s, 'descriptor-index');
});

test('queue: needs reset: a loop of next links ends at queue size', () => {
  const s = setup(16);
  s.driver.writeDescriptor(0, { address: 0x8000, length: 4, flags: R, next: 1 });
  s.driver.writeDescriptor(1, { address: 0x8000, length: 4, flags: R, next: 0 });
  s.driver.publish(0);
  const before = s.memory.accesses;
  assertMalformed(s, 'chain-too-long');
  assert.ok(s.memory.accesses - before < 40, 'the walk stopped after about queue-size descriptors');
});

test('queue: needs reset: a self-loop inside an indirect table', () => {
  const s = setup(16);
  writeDescriptor(s.memory, 0x7000, 0, { address: 0x8000, length: 4, flags: R, next: 0 });
  s.driver.writeDescriptor(0, { address: 0x7000, length: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
  s.driver.publish(0);
  assertMalformed(s, 'chain-too-long');
});

test('queue: needs reset: direct and indirect descriptors together longer than queue size', () => {
  const s = setup(4);
  for (let i = 0; i < 4; i++) writeDescriptor(s.memory, 0x7000, i, { address: 0x8000, length: 4, flags: i < 3 ? R : 0, next: i + 1 });
  s.driver.writeDescriptor(0, { address: 0x8000, length: 4, flags: R, next: 1 });
  s.driver.writeDescriptor(1, { address: 0x7000, length: 64, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
  s.driver.publish(0);
  assertMalformed(s, 'chain-too-long');
});

test('queue: needs reset: device-readable after device-writable', () => {
  const s = setup();
  s.driver.addChain([
    { address: 0x8000, length: 4, writable: true },
    { address: 0x8100, length: 4 },
  ]);
  assertMalformed(s, 'readable-after-writable');
});

test('queue: needs reset: a zero-length device-readable descriptor after a writable one still breaks the order', () => {
  const s = setup();
  s.driver.addChain([
    { address: 0x8000, length: 4, writable: true },
    { address: 0x8100, length: 0 },
  ]);
  assertMalformed(s, 'readable-after-writable');
});

const bufferCases: [string, number | bigint, number][] = [
  ['buffer running one byte past the end of a region into the hole', RAM_LOW.size - 4, 5],
  ['buffer starting exactly at the end of RAM', RAM_HIGH_B.base + RAM_HIGH_B.size, 1],
  ['buffer in the hole between regions', RAM_LOW.size + 0x1000, 16],
  ['buffer with length 0xffffffff', 0x8000, 0xffff_ffff],
  ['buffer at 2^52', 2n ** 52n, 4],
  ['buffer at 2^64 - 1', 2n ** 64n - 1n, 1],
  ['buffer whose end overflows 64 bits', 2n ** 64n - 2n, 16],
];
for (const [name, address, length] of bufferCases) {
  test(`queue: needs reset: ${name}`, () => {
    const s = setup();
    s.driver.writeDescriptor(0, { address, length, flags: W, next: 0 });
    s.driver.publish(0);
    assertMalformed(s, 'buffer-address');
  });
}

test('queue: a buffer ending exactly at the end of a region is valid', () => {
  const s = setup();
  s.driver.addChain([{ address: RAM_LOW.size - 4, length: 4, writable: true }]);
  assert.ok(s.queue.popChain());
  assert.equal(s.queue.error, undefined);
});

test('queue: needs reset: more than 2^32 bytes in one chain (§2.7.5.2)', (t) => {
  // Buffers may overlap, so five 1 GiB views of one 1 GiB region add up to 5 GiB.
  const GiB = 2 ** 30;
  let memory: GuestMemory;
  try {
    memory = new GuestMemory([heapBacking.allocate(0, GiB)]);
  } catch (e) {
    t.skip(`cannot allocate 1 GiB of test RAM: ${String(e)}`);
    return;
  }
  const layout = layoutQueue(0x1000, 8);
  const driver = new MockVirtqueue(memory, layout);
  const q = activeQueue(memory, layout);
  driver.addChain(Array.from({ length: 5 }, () => ({ address: 0, length: GiB, writable: true })));
  assert.equal(q.popChain(), undefined);
  assert.equal(q.error?.kind, 'chain-too-large');
});

const indirectCases: [string, (s: ReturnType<typeof setup>) => void][] = [
  [
    'INDIRECT without VIRTIO_F_INDIRECT_DESC',
    (s) => {
      s.queue.activate(s.memory, { indirect: false, eventIdx: false });
      s.driver.addChain([{ address: 0x8000, length: 4 }], { indirectTable: 0x7000 });
    },
  ],
  [
    'an indirect table inside an indirect table',
    (s) => {
      writeDescriptor(s.memory, 0x7000, 0, { address: 0x7100, length: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      writeDescriptor(s.memory, 0x7100, 0, { address: 0x8000, length: 4, flags: 0, next: 0 });
      s.driver.writeDescriptor(0, { address: 0x7000, length: 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      s.driver.publish(0);
    },
  ],
  [
    'INDIRECT together with NEXT',
    (s) => {
      writeDescriptor(s.memory, 0x7000, 0, { address: 0x8000, length: 4, flags: 0, next: 0 });
      s.driver.writeDescriptor(0, { address: 0x7000, length: 16, flags: VIRTQ_DESC_F_INDIRECT | R, next: 1 });
      s.driver.writeDescriptor(1, { address: 0x8000, length: 4, flags: 0, next: 0 });
      s.driver.publish(0);
    },
  ],
  ['an indirect table of length 0', (s) => (s.driver.writeDescriptor(0, { address: 0x7000, length: 0, flags: VIRTQ_DESC_F_INDIRECT, next: 0 }), s.driver.publish(0))],
  ['an indirect table length not a multiple of 16', (s) => (s.driver.writeDescriptor(0, { address: 0x7000, length: 24, flags: VIRTQ_DESC_F_INDIRECT, next: 0 }), s.driver.publish(0))],
  ['an indirect table with more entries than the queue size', (s) => (s.driver.writeDescriptor(0, { address: 0x7000, length: 17 * 16, flags: VIRTQ_DESC_F_INDIRECT, next: 0 }), s.driver.publish(0))],
];
for (const [name, build] of indirectCases) {
  test(`queue: needs reset: ${name}`, () => {
    const s = setup(16);
    build(s);
    assertMalformed(s, 'indirect');
  });
}

test('queue: needs reset: an indirect table outside RAM', () => {
  const s = setup(16);
  s.driver.writeDescriptor(0, { address: RAM_LOW.size - 16, length: 32, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
  s.driver.publish(0);
  assertMalformed(s, 'buffer-address');
});

test('queue: chains popped before a malformed one complete; nothing is used after it', () => {
  const s = setup();
  const good = s.driver.addChain([{ address: 0x8000, length: 4, writable: true }]);
  s.driver.publish(99);
  assert.equal(s.queue.popChain()?.head, good);
  assert.equal(s.queue.popChain(), undefined);
  assert.equal(s.queue.error?.kind, 'descriptor-index');
  s.queue.addUsed(good, 4);
  assert.equal(s.driver.usedIdx(), 0, 'a malformed queue writes no used entries');
});

test('queue: addUsed rejects a head or length the device could not have got from a chain', () => {
  const s = setup(16);
  assert.throws(() => s.queue.addUsed(16, 0), RangeError);
  assert.throws(() => s.queue.addUsed(0, 2 ** 32), RangeError);
  assert.throws(() => s.queue.addUsed(0, -1), RangeError);
});

test('queue: maximum sizes must be powers of 2 up to 32768', () => {
  for (const bad of [0, 3, 65536, 1.5]) assert.throws(() => new Virtqueue(bad), RangeError);
  assert.equal(new Virtqueue(32768).maxSize, 32768);
});

test('queue: reset forgets the configuration, positions and error', () => {
  const s = setup();
  s.driver.publish(99);
  s.queue.popChain();
  assert.ok(s.queue.error);
  s.queue.reset();
  assert.equal(s.queue.error, undefined);
  assert.equal(s.queue.ready, false);
  assert.equal(s.queue.size, s.queue.maxSize);
  assert.deepEqual(s.queue.saveState(), new Virtqueue(256).saveState());
});
