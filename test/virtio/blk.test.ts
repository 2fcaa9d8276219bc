import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DeviceStateError } from '../../src/devices/legacy/common.js';
import { STATUS_DEVICE_NEEDS_RESET, VIRTIO_F_EVENT_IDX, VIRTIO_ID_BLOCK, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID } from '../../src/virtio/index.js';
import {
  BLK_CONFIG_SIZE,
  BlockBackendError,
  FileBackend,
  MAX_DISCARD_SECTORS,
  MAX_DISCARD_SEGMENTS,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VirtioBlock,
} from '../../src/virtio/blk/index.js';
import { MockVirtqueue } from '../../src/virtio/mock-driver.js';
import { DATA_AREA, MemoryBackend, setupBlk, tick, type BlkSetup } from './blk-helpers.js';

const DISK = 64 * 1024; // 128 sectors
const SECTORS = DISK / 512;

function config(s: BlkSetup, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(length);
  s.transport.read(VIRTIO_MMIO_CONFIG + offset, b);
  return b;
}
const u32 = (b: Uint8Array, at = 0): number => new DataView(b.buffer, b.byteOffset).getUint32(at, true);

/** Writes one 16-byte discard/write-zeroes range at `address`. */
function range(s: BlkSetup, address: number, sector: number, sectors: number, flags = 0): void {
  s.memory.writeU64(address, BigInt(sector));
  s.memory.writeU32(address + 8, sectors);
  s.memory.writeU32(address + 12, flags);
}

test('blk: device ID 2, one 256-entry queue, features and configuration space (§5.2.3, §5.2.4)', () => {
  const s = setupBlk(new MemoryBackend(DISK));
  assert.equal(s.driver.read32(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
  assert.equal(s.driver.queueNumMax(0), 256);
  assert.equal(s.driver.queueNumMax(1), 0);
  const f = s.driver.deviceFeatures();
  for (const bit of [VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES]) assert.notEqual(f & bit, 0n, `bit ${bit}`);
  assert.equal(f & VIRTIO_BLK_F_RO, 0n);
  assert.equal(f & VIRTIO_BLK_F_MQ, 0n);
  const c = config(s, 0, BLK_CONFIG_SIZE);
  const v = new DataView(c.buffer);
  assert.equal(v.getBigUint64(0, true), BigInt(SECTORS), 'capacity in 512-byte sectors');
  assert.equal(v.getUint32(12, true), 254, 'seg_max = queue size - 2');
  assert.equal(v.getUint32(20, true), 512, 'blk_size');
  assert.equal(v.getUint32(36, true), MAX_DISCARD_SECTORS);
  assert.equal(v.getUint32(40, true), MAX_DISCARD_SEGMENTS);
  assert.equal(v.getUint32(44, true), 8);
  assert.equal(v.getUint32(48, true), MAX_DISCARD_SECTORS);
  assert.equal(v.getUint32(52, true), MAX_DISCARD_SEGMENTS);
  assert.equal(c[56], 1, 'write_zeroes_may_unmap');
  // Partial and out-of-range reads; writes ignored.
  assert.equal(u32(config(s, 0, 4)), SECTORS);
  assert.equal(u32(config(s, 4, 4)), 0, 'capacity high word');
  assert.deepEqual([...config(s, BLK_CONFIG_SIZE - 2, 4)], [0, 0, 0, 0]);
  assert.deepEqual([...config(s, 0x400, 4)], [0, 0, 0, 0]);
  s.transport.write(VIRTIO_MMIO_CONFIG, Uint8Array.of(1, 2, 3, 4));
  assert.equal(u32(config(s, 0, 4)), SECTORS);
});

test('blk: a read-only disk offers RO and neither DISCARD nor WRITE_ZEROES', () => {
  const s = setupBlk(new MemoryBackend(DISK, true));
  const f = s.driver.deviceFeatures();
  assert.notEqual(f & VIRTIO_BLK_F_RO, 0n);
  assert.equal(f & (VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES), 0n);
  assert.notEqual(f & VIRTIO_BLK_F_FLUSH, 0n);
  assert.deepEqual([...config(s, 36, 24)], new Array(24).fill(0), 'discard and write-zeroes limits read 0');
});

test('blk: OUT then IN round trip across descriptors, direct and indirect; used lengths and interrupts', async () => {
  const backend = new MemoryBackend(DISK);
  const s = setupBlk(backend, { features: (o) => o & ~VIRTIO_F_EVENT_IDX });
  const pattern = randomBytes(1536);
  s.memory.write(DATA_AREA, pattern.subarray(0, 512));
  s.memory.write(DATA_AREA + 0x1000, pattern.subarray(512));
  const w = s.submit(VIRTIO_BLK_T_OUT, 3, [
    { address: DATA_AREA, length: 512 },
    { address: DATA_AREA + 0x1000, length: 1024 },
  ]);
  await tick();
  assert.equal(s.statusOf(w), VIRTIO_BLK_S_OK);
  assert.deepEqual(s.ring.takeUsed(), [{ id: w.head, len: 1 }]);
  assert.deepEqual(backend.data.subarray(3 * 512, 6 * 512), new Uint8Array(pattern));
  assert.deepEqual(backend.ops, ['write 1536+1536']);

  const r = s.submit(
    VIRTIO_BLK_T_IN,
    3,
    [
      { address: DATA_AREA + 0x8000, length: 100, writable: true },
      { address: DATA_AREA + 0x9000, length: 1436, writable: true },
    ],
    { indirect: true },
  );
  await tick();
  assert.equal(s.statusOf(r), VIRTIO_BLK_S_OK);
  assert.deepEqual(s.ring.takeUsed(), [{ id: r.head, len: 1537 }], 'data + status');
  assert.deepEqual(Buffer.concat([s.memory.read(DATA_AREA + 0x8000, 100), s.memory.read(DATA_AREA + 0x9000, 1436)]), pattern);
  assert.equal(s.irq.edges, 2);
  assert.deepEqual(s.memory.violations, []);
  assert.equal(s.blk.metrics.reads, 1);
  assert.equal(s.blk.metrics.writeBytes, 1536);
});

test('blk: the header may be split over descriptors (§2.7.4.1)', async () => {
  const backend = new MemoryBackend(DISK);
  backend.data.fill(0x5a, 512, 1024);
  const s = setupBlk(backend);
  const hdr = 0x7_0000;
  s.memory.writeU32(hdr, VIRTIO_BLK_T_IN);
  s.memory.writeU64(hdr + 8, 1n);
  const r = s.submit(VIRTIO_BLK_T_IN, 0, [{ address: DATA_AREA, length: 512, writable: true }], {
    header: [
      { address: hdr, length: 5 },
      { address: hdr + 5, length: 11 },
    ],
  });
  await tick();
  assert.equal(s.statusOf(r), VIRTIO_BLK_S_OK);
  assert.ok(s.memory.read(DATA_AREA, 512).every((b) => b === 0x5a));
});

test('blk: FLUSH reaches the backend after the writes it covers; without FLUSH negotiated every write is synced before completion', async () => {
  const backend = new MemoryBackend(DISK);
  const s = setupBlk(backend);
  s.submit(VIRTIO_BLK_T_OUT, 0, [{ address: DATA_AREA, length: 512 }]);
  await tick();
  const f = s.submit(VIRTIO_BLK_T_FLUSH, 0);
  await tick();
  assert.equal(s.statusOf(f), VIRTIO_BLK_S_OK);
  assert.deepEqual(backend.ops, ['write 0+512', 'flush']);
  assert.equal(s.blk.metrics.flushes, 1);

  const wt = new MemoryBackend(DISK, false, true);
  const t = setupBlk(wt, { features: (o) => o & ~VIRTIO_BLK_F_FLUSH });
  const w = t.submit(VIRTIO_BLK_T_OUT, 0, [{ address: DATA_AREA, length: 512 }]);
  await tick();
  wt.complete(0);
  await tick();
  assert.deepEqual(wt.ops, ['write 0+512', 'flush'], 'write-through: a sync follows the write');
  assert.equal(t.statusOf(w), 0xee, 'not completed before the sync');
  assert.deepEqual(t.ring.takeUsed(), []);
  wt.complete(0);
  await tick();
  assert.equal(t.statusOf(w), VIRTIO_BLK_S_OK);
  assert.equal(t.ring.takeUsed().length, 1);
});

test('blk: GET_ID answers the drive id NUL-padded to 20 bytes, or as much as the buffer holds', async () => {
  const s = setupBlk(new MemoryBackend(DISK), { id: 'rootfs' });
  s.memory.fill(DATA_AREA, 32, 0xff);
  const r = s.submit(VIRTIO_BLK_T_GET_ID, 0, [{ address: DATA_AREA, length: 20, writable: true }]);
  assert.equal(s.statusOf(r), VIRTIO_BLK_S_OK);
  assert.deepEqual(s.ring.takeUsed(), [{ id: r.head, len: 21 }]);
  const id = s.memory.read(DATA_AREA, 20);
  assert.equal(Buffer.from(id.subarray(0, 6)).toString('latin1'), 'rootfs');
  assert.ok(id.subarray(6).every((b) => b === 0));
  const short = s.submit(VIRTIO_BLK_T_GET_ID, 0, [{ address: DATA_AREA + 0x100, length: 4, writable: true }]);
  assert.equal(s.statusOf(short), VIRTIO_BLK_S_OK);
  assert.equal(Buffer.from(s.memory.read(DATA_AREA + 0x100, 4)).toString('latin1'), 'root');

  const long = setupBlk(new MemoryBackend(DISK), { id: 'a-drive-id-longer-than-twenty' });
  const l = long.submit(VIRTIO_BLK_T_GET_ID, 0, [{ address: DATA_AREA, length: 64, writable: true }]);
  assert.deepEqual(long.ring.takeUsed(), [{ id: l.head, len: 21 }]);
  assert.equal(Buffer.from(long.memory.read(DATA_AREA, 20)).toString('latin1'), 'a-drive-id-longer-th');
});

test('blk: DISCARD and WRITE_ZEROES carry their ranges to the backend; zeroed ranges read back as zeros', async () => {
  const backend = new MemoryBackend(DISK);
  backend.data.fill(0x77);
  const s = setupBlk(backend);
  const seg = 0x7_0000;
  range(s, seg, 2, 4);
  range(s, seg + 16, 10, 1);
  const d = s.submit(VIRTIO_BLK_T_DISCARD, 0, [{ address: seg, length: 32 }]);
  await tick();
  assert.equal(s.statusOf(d), VIRTIO_BLK_S_OK);
  range(s, seg + 32, 20, 2, 1);
  range(s, seg + 48, 30, 1, 0);
  const z = s.submit(VIRTIO_BLK_T_WRITE_ZEROES, 0, [{ address: seg + 32, length: 32 }]);
  await tick();
  assert.equal(s.statusOf(z), VIRTIO_BLK_S_OK);
  assert.deepEqual(backend.ops, ['discard 1024+2048', 'discard 5120+512', 'zeroes 10240+1024 unmap', 'zeroes 15360+512']);
  assert.ok(backend.data.subarray(20 * 512, 22 * 512).every((b) => b === 0));
  assert.ok(backend.data.subarray(30 * 512, 31 * 512).every((b) => b === 0));
  assert.equal(backend.data[31 * 512], 0x77, 'nothing past the range');
  assert.equal(s.blk.metrics.discards, 1);
  assert.equal(s.blk.metrics.writeZeroes, 1);
});

test('blk: bad DISCARD/WRITE_ZEROES requests: UNSUPP for unmap on discard, unknown flags, feature not negotiated; IOERR for bad shapes', async () => {
  const backend = new MemoryBackend(DISK);
  const s = setupBlk(backend);
  const seg = 0x7_0000;
  const one = (type: number, sector: number, sectors: number, flags = 0, length = 16): number => {
    range(s, seg, sector, sectors, flags);
    return s.statusOf(s.submit(type, 0, [{ address: seg, length }]));
  };
  assert.equal(one(VIRTIO_BLK_T_DISCARD, 0, 1, 1), VIRTIO_BLK_S_UNSUPP, 'discard with unmap (§5.2.6.2)');
  assert.equal(one(VIRTIO_BLK_T_DISCARD, 0, 1, 2), VIRTIO_BLK_S_UNSUPP, 'unknown flag');
  assert.equal(one(VIRTIO_BLK_T_WRITE_ZEROES, 0, 1, 0x8000_0001), VIRTIO_BLK_S_UNSUPP, 'unknown flag');
  assert.equal(one(VIRTIO_BLK_T_DISCARD, SECTORS - 1, 2), VIRTIO_BLK_S_IOERR, 'past the end');
  assert.equal(one(VIRTIO_BLK_T_WRITE_ZEROES, 0, MAX_DISCARD_SECTORS + 1), VIRTIO_BLK_S_IOERR, 'more than max sectors');
  assert.equal(one(VIRTIO_BLK_T_DISCARD, 0, 1, 0, 15), VIRTIO_BLK_S_IOERR, 'not whole ranges');
  assert.equal(s.statusOf(s.submit(VIRTIO_BLK_T_DISCARD, 0, [])), VIRTIO_BLK_S_IOERR, 'no ranges');
  assert.equal(
    s.statusOf(s.submit(VIRTIO_BLK_T_DISCARD, 0, [{ address: seg, length: 16 * (MAX_DISCARD_SEGMENTS + 1) }])),
    VIRTIO_BLK_S_IOERR,
    'more than max segments',
  );
  await tick();
  assert.deepEqual(backend.ops, []);

  const t = setupBlk(new MemoryBackend(DISK), { features: (o) => o & ~(VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES) });
  range(t, seg, 0, 1);
  assert.equal(t.statusOf(t.submit(VIRTIO_BLK_T_DISCARD, 0, [{ address: seg, length: 16 }])), VIRTIO_BLK_S_UNSUPP);
  assert.equal(t.statusOf(t.submit(VIRTIO_BLK_T_WRITE_ZEROES, 0, [{ address: seg, length: 16 }])), VIRTIO_BLK_S_UNSUPP);
  assert.equal(t.blk.metrics.unsupported, 2);
});

test('blk: a read-only disk answers OUT, DISCARD and WRITE_ZEROES with IOERR and its file stays byte-identical (§5.2.6.2)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'ro.img');
  const original = randomBytes(DISK);
  writeFileSync(path, original);
  const backend = FileBackend.open(path, { readOnly: true });
  const s = setupBlk(backend);
  s.memory.fill(DATA_AREA, 512, 0xab);
  range(s, 0x7_0000, 0, 4);
  const reqs = [
    s.submit(VIRTIO_BLK_T_OUT, 0, [{ address: DATA_AREA, length: 512 }]),
    s.submit(VIRTIO_BLK_T_DISCARD, 0, [{ address: 0x7_0000, length: 16 }]),
    s.submit(VIRTIO_BLK_T_WRITE_ZEROES, 0, [{ address: 0x7_0000, length: 16 }]),
  ];
  const f = s.submit(VIRTIO_BLK_T_FLUSH, 0);
  const r = s.submit(VIRTIO_BLK_T_IN, 0, [{ address: DATA_AREA + 0x1000, length: 512, writable: true }]);
  await s.blk.drain();
  for (const q of reqs) assert.equal(s.statusOf(q), VIRTIO_BLK_S_IOERR);
  assert.equal(s.statusOf(f), VIRTIO_BLK_S_OK);
  assert.equal(s.statusOf(r), VIRTIO_BLK_S_OK);
  assert.deepEqual(s.memory.read(DATA_AREA + 0x1000, 512), new Uint8Array(original.subarray(0, 512)));
  await s.blk.close();
  assert.ok(readFileSync(path).equals(original), 'file unchanged');
});

test('blk: requests past the capacity are IOERR, at the exact end they are fine', async () => {
  const backend = new MemoryBackend(DISK);
  const s = setupBlk(backend);
  const rd = (sector: number | bigint, length: number): number => s.statusOf(s.submit(VIRTIO_BLK_T_IN, sector, [{ address: DATA_AREA, length, writable: true }]));
  assert.equal(rd(SECTORS, 512), VIRTIO_BLK_S_IOERR);
  assert.equal(rd(SECTORS - 1, 1024), VIRTIO_BLK_S_IOERR);
  assert.equal(rd(0xffff_ffff_ffff_ffffn, 512), VIRTIO_BLK_S_IOERR, 'sector + length overflows 64 bits');
  assert.equal(rd(2n ** 53n, 512), VIRTIO_BLK_S_IOERR);
  assert.equal(s.statusOf(s.submit(VIRTIO_BLK_T_OUT, SECTORS, [{ address: DATA_AREA, length: 512 }])), VIRTIO_BLK_S_IOERR);
  const end = s.submit(VIRTIO_BLK_T_IN, SECTORS - 1, [{ address: DATA_AREA, length: 512, writable: true }]);
  const empty = s.submit(VIRTIO_BLK_T_IN, SECTORS, [{ address: DATA_AREA, length: 0, writable: true }]);
  await tick();
  assert.equal(s.statusOf(end), VIRTIO_BLK_S_OK);
  assert.equal(s.statusOf(empty), VIRTIO_BLK_S_OK, 'zero sectors at the end');
  assert.deepEqual(backend.ops, [`read ${DISK - 512}+512`]);
  assert.equal(s.blk.metrics.badRequests, 5);
});

test('blk: malformed requests: short header, wrong directions, odd lengths → IOERR; unknown types → UNSUPP', async () => {
  const backend = new MemoryBackend(DISK);
  const s = setupBlk(backend);
  const st = (type: number, data: { address: number; length: number; writable?: boolean }[], header?: { address: number; length: number }[]): number =>
    s.statusOf(s.submit(type, 0, data, header ? { header } : {}));
  assert.equal(st(VIRTIO_BLK_T_IN, [{ address: DATA_AREA, length: 512, writable: true }], [{ address: 0x7_0000, length: 15 }]), VIRTIO_BLK_S_IOERR, 'header of 15 bytes');
  assert.equal(st(VIRTIO_BLK_T_IN, [{ address: DATA_AREA, length: 512 }, { address: DATA_AREA + 0x1000, length: 512, writable: true }]), VIRTIO_BLK_S_IOERR, 'IN with readable data');
  assert.equal(st(VIRTIO_BLK_T_OUT, [{ address: DATA_AREA, length: 512, writable: true }]), VIRTIO_BLK_S_IOERR, 'OUT with writable data');
  assert.equal(st(VIRTIO_BLK_T_IN, [{ address: DATA_AREA, length: 500, writable: true }]), VIRTIO_BLK_S_IOERR, 'IN not a multiple of 512');
  assert.equal(st(VIRTIO_BLK_T_OUT, [{ address: DATA_AREA, length: 513 }]), VIRTIO_BLK_S_IOERR, 'OUT not a multiple of 512');
  assert.equal(st(VIRTIO_BLK_T_FLUSH, [{ address: DATA_AREA, length: 512 }]), VIRTIO_BLK_S_IOERR, 'FLUSH with data');
  assert.equal(st(VIRTIO_BLK_T_GET_ID, [{ address: DATA_AREA, length: 16 }]), VIRTIO_BLK_S_IOERR, 'GET_ID with readable data');
  assert.equal(st(VIRTIO_BLK_T_GET_LIFETIME, [{ address: DATA_AREA, length: 16, writable: true }]), VIRTIO_BLK_S_UNSUPP);
  assert.equal(st(0xdead, []), VIRTIO_BLK_S_UNSUPP);
  await tick();
  assert.deepEqual(backend.ops, []);
  assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, 0, 'a bad request is not a bad queue');
  assert.deepEqual(s.memory.violations, []);
});

test('blk: a chain with no device-writable status byte cannot be answered: DEVICE_NEEDS_RESET and a config interrupt (§2.1.2)', async () => {
  const backend = new MemoryBackend(DISK);
  const s = setupBlk(backend);
  const edges = s.irq.edges;
  s.submit(VIRTIO_BLK_T_OUT, 0, [{ address: DATA_AREA, length: 512 }], { noStatus: true });
  await tick();
  assert.notEqual(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, 0);
  assert.match(s.resets[0] ?? '', /no device-writable status byte/);
  assert.equal(s.irq.edges, edges + 1);
  assert.deepEqual(s.ring.takeUsed(), []);
  assert.deepEqual(backend.ops, []);
  // The driver resets and starts over on fresh rings: the device works again.
  const ring = new MockVirtqueue(s.memory, s.ring.layout);
  assert.equal(s.driver.init([ring.layout]), 0x0f);
  ring.addChain([{ address: 0x7_0000, length: 16 }, { address: 0x7_0100, length: 1, writable: true }]);
  s.memory.writeU32(0x7_0000, VIRTIO_BLK_T_FLUSH);
  s.driver.notify(0);
  await tick();
  assert.equal(ring.takeUsed().length, 1);
  assert.equal(s.memory.readU8(0x7_0100), VIRTIO_BLK_S_OK);
});

test('blk: requests complete out of order, each with its own used element and data', async () => {
  const backend = new MemoryBackend(DISK, false, true);
  for (let i = 0; i < 3; i++) backend.data.fill(0x10 + i, i * 512, (i + 1) * 512);
  const s = setupBlk(backend, { features: (o) => o & ~VIRTIO_F_EVENT_IDX });
  const reqs = [0, 1, 2].map((i) => s.submit(VIRTIO_BLK_T_IN, i, [{ address: DATA_AREA + i * 0x1000, length: 512, writable: true }]));
  await tick();
  assert.equal(backend.pending.length, 3, 'all three started at once');
  assert.equal(s.blk.inFlight, 3);
  backend.complete(2); // request 2
  await tick();
  backend.complete(0); // request 0
  await tick();
  backend.complete(0); // request 1
  await tick();
  assert.deepEqual(
    s.ring.takeUsed().map((u) => u.id),
    [reqs[2]!.head, reqs[0]!.head, reqs[1]!.head],
  );
  for (let i = 0; i < 3; i++) {
    assert.equal(s.statusOf(reqs[i]!), VIRTIO_BLK_S_OK);
    assert.ok(s.memory.read(DATA_AREA + i * 0x1000, 512).every((b) => b === 0x10 + i), `request ${i} data`);
  }
  assert.equal(s.irq.edges, 3);
  assert.equal(s.blk.inFlight, 0);
});

test('blk: at most maxInFlight requests run; the rest wait in the ring and resume as requests complete', async () => {
  const backend = new MemoryBackend(DISK, false, true);
  const s = setupBlk(backend, { maxInFlight: 2 });
  const reqs = [0, 1, 2, 3, 4].map((i) => s.submit(VIRTIO_BLK_T_IN, i, [{ address: DATA_AREA + i * 0x1000, length: 512, writable: true }]));
  await tick();
  assert.equal(backend.pending.length, 2);
  assert.equal(s.blk.metrics.throttled, 3, 'requests 2, 3 and 4 found the bound reached');
  while (backend.pending.length > 0) {
    backend.complete(0);
    await tick();
    await tick();
  }
  assert.equal(s.ring.takeUsed().length, 5);
  for (const r of reqs) assert.equal(s.statusOf(r), VIRTIO_BLK_S_OK);
  assert.equal(backend.ops.length, 5);
});

test('blk: a failed host operation answers IOERR and the device carries on', async () => {
  const backend = new MemoryBackend(DISK);
  backend.failing.add('write');
  const s = setupBlk(backend);
  const w = s.submit(VIRTIO_BLK_T_OUT, 0, [{ address: DATA_AREA, length: 512 }]);
  await tick();
  assert.equal(s.statusOf(w), VIRTIO_BLK_S_IOERR);
  assert.equal(s.blk.metrics.ioErrors, 1);
  const r = s.submit(VIRTIO_BLK_T_IN, 0, [{ address: DATA_AREA, length: 512, writable: true }]);
  await tick();
  assert.equal(s.statusOf(r), VIRTIO_BLK_S_OK);
  assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, 0);
});

test('blk: a request that completes after a device reset touches neither the used ring nor its buffers', async () => {
  const backend = new MemoryBackend(DISK, false, true);
  backend.data.fill(0x42, 0, 512);
  const s = setupBlk(backend);
  s.memory.fill(DATA_AREA, 512, 0);
  const r = s.submit(VIRTIO_BLK_T_IN, 0, [{ address: DATA_AREA, length: 512, writable: true }]);
  await tick();
  s.driver.write32(0x70, 0); // status = 0: reset
  const usedIdx = s.ring.usedIdx();
  backend.complete(0);
  await tick();
  assert.equal(s.ring.usedIdx(), usedIdx);
  assert.equal(s.statusOf(r), 0xee);
  assert.ok(s.memory.read(DATA_AREA, 512).every((b) => b === 0), 'no data landed');
  await s.blk.drain();
});

test('blk: replacing the backend under a running device: config interrupt, new capacity, old backend closed once idle', async () => {
  const old = new MemoryBackend(DISK, false, true);
  const s = setupBlk(old);
  s.submit(VIRTIO_BLK_T_IN, 0, [{ address: DATA_AREA, length: 512, writable: true }]);
  await tick();
  const edges = s.irq.edges;
  const next = new MemoryBackend(2 * DISK);
  s.blk.replaceBackend(next);
  assert.equal(s.irq.edges, edges + 1);
  assert.equal(s.driver.read32(0x60) & 2, 2, 'InterruptStatus: configuration change');
  assert.equal(u32(config(s, 0, 4)), 2 * SECTORS);
  assert.equal(old.closed, false, 'a request still runs on it');
  old.complete(0);
  await tick();
  await tick();
  assert.equal(old.closed, true);
  const r = s.submit(VIRTIO_BLK_T_IN, SECTORS + 1, [{ address: DATA_AREA, length: 512, writable: true }]);
  await tick();
  assert.equal(s.statusOf(r), VIRTIO_BLK_S_OK, 'the larger capacity applies');
  assert.deepEqual(next.ops, [`read ${(SECTORS + 1) * 512}+512`]);
  assert.throws(() => s.blk.replaceBackend(new MemoryBackend(DISK, true)), /must be read-write/);
});

test('blk: snapshot state holds what the guest knows of the disk; a different disk is refused', async () => {
  const blk = new VirtioBlock({ backend: new MemoryBackend(DISK), id: 'disk0' });
  const state = blk.saveState();
  assert.deepEqual(state, { capacity: SECTORS, readOnly: false });
  blk.restoreState(structuredClone(state));
  assert.throws(() => blk.restoreState({ capacity: SECTORS + 1, readOnly: false }), (e: unknown) => e instanceof DeviceStateError && /capacity/.test(e.message));
  assert.throws(() => blk.restoreState({ capacity: SECTORS, readOnly: true }), DeviceStateError);
  assert.throws(() => blk.restoreState(null), DeviceStateError);
  const busy = new MemoryBackend(DISK, false, true);
  const s = setupBlk(busy);
  s.submit(VIRTIO_BLK_T_FLUSH, 0);
  await tick();
  assert.throws(() => s.blk.saveState(), /in flight; drain/);
  busy.complete(0);
  await s.blk.drain();
  assert.deepEqual(s.blk.saveState(), { capacity: SECTORS, readOnly: false });
});

test('blk: file backend: write, flush, discard and write-zeroes through the device land in the image', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'disk.img');
  const size = 4 * 1024 * 1024;
  writeFileSync(path, Buffer.alloc(size, 0x33));
  const backend = FileBackend.open(path, { readOnly: false });
  const s = setupBlk(backend);
  const big = randomBytes(700 * 1024); // more than one IO_CHUNK
  s.memory.write(DATA_AREA, big);
  const w = s.submit(VIRTIO_BLK_T_OUT, 16, [{ address: DATA_AREA, length: big.length }]);
  await s.blk.drain();
  const f = s.submit(VIRTIO_BLK_T_FLUSH, 0);
  await s.blk.drain();
  range(s, 0x7_0000, 4096, 2048); // 1 MiB at 2 MiB: discard
  range(s, 0x7_0010, 6144, 8, 1); // write-zeroes with unmap
  range(s, 0x7_0020, 6200, 8, 0); // write-zeroes keeping blocks
  const d = s.submit(VIRTIO_BLK_T_DISCARD, 0, [{ address: 0x7_0000, length: 16 }]);
  const z = s.submit(VIRTIO_BLK_T_WRITE_ZEROES, 0, [{ address: 0x7_0010, length: 32 }]);
  await s.blk.drain();
  for (const q of [w, f, d, z]) assert.equal(s.statusOf(q), VIRTIO_BLK_S_OK);
  const blocksBefore = statSync(path).blocks;
  await s.blk.close();
  const file = readFileSync(path);
  assert.ok(file.subarray(16 * 512, 16 * 512 + big.length).equals(big));
  assert.ok(file.subarray(6144 * 512, 6152 * 512).every((b) => b === 0));
  assert.ok(file.subarray(6200 * 512, 6208 * 512).every((b) => b === 0));
  assert.equal(file[6208 * 512], 0x33);
  assert.equal(file.length, size, 'size kept');
  // Hole punching freed the discarded MiB (ext4, xfs, tmpfs; the backend falls back elsewhere).
  t.diagnostic(`allocated 512-byte blocks after discard: ${blocksBefore} of ${size / 512}`);
  assert.ok(blocksBefore <= size / 512 - 2048, 'the discarded range is deallocated');
});

test('blk: opening an image: clear errors for missing, directory, read-only, odd size', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const err = (path: string, readOnly: boolean, re: RegExp): void => {
    assert.throws(() => FileBackend.open(path, { readOnly }), (e: unknown) => e instanceof BlockBackendError && re.test(e.message));
  };
  err(join(dir, 'nope.img'), false, /does not exist/);
  mkdirSync(join(dir, 'sub'));
  err(join(dir, 'sub'), true, /is a directory/);
  const ro = join(dir, 'ro.img');
  writeFileSync(ro, Buffer.alloc(4096));
  chmodSync(ro, 0o444);
  err(ro, false, /read-only.*add ,ro/);
  FileBackend.check(ro, { readOnly: true });
  const odd = join(dir, 'odd.img');
  writeFileSync(odd, Buffer.alloc(1000));
  err(odd, true, /1000 bytes, not a whole number of 512-byte sectors.*truncate -s %512/);
});

test('blk: opening an image without permission to read it is a clear error', (t) => {
  if (process.getuid?.() === 0) {
    t.skip('running as root: permission bits do not stop root, so no file here is unreadable');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-blk-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const secret = join(dir, 'secret.img');
  writeFileSync(secret, Buffer.alloc(512));
  chmodSync(secret, 0o000);
  assert.throws(() => FileBackend.open(secret, { readOnly: true }), (e: unknown) => e instanceof BlockBackendError && /permission denied/.test(e.message));
});
