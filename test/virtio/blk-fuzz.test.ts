/**
 * Property test of virtio-blk against random and malformed request chains:
 * random types (known and not), sectors at and past the capacity and near
 * 2^64, headers short, split or device-writable, data buffers of random
 * sizes and directions at and past the edges of RAM regions, missing or
 * oversized status buffers, random discard ranges and flags.
 *
 * For every case: no exception escapes the device (a throw would show as a
 * "device fault" DEVICE_NEEDS_RESET), no access outside guest RAM, every
 * DEVICE_NEEDS_RESET has a rule behind it (a malformed queue, or a chain
 * without a status byte), every request is answered with OK/IOERR/UNSUPP,
 * the ones an oracle knows are bad get IOERR or UNSUPP, and a read-only
 * disk stays byte-identical. fast-check draws the structure and shrinks a
 * failure; bulk choices come from a seeded PRNG so ≥ 25,000 chains fit in
 * a few seconds. BLK_FUZZ_SCALE (default 1) scales the run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { STATUS_DEVICE_NEEDS_RESET, VirtioMmioTransport } from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue, type MockBuffer } from '../../src/virtio/mock-driver.js';
import {
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_GET_LIFETIME,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_SECURE_ERASE,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VirtioBlock,
} from '../../src/virtio/blk/index.js';
import { MemoryBackend, tick } from './blk-helpers.js';
import { RAM_HIGH_A, RAM_HIGH_B, RAM_LOW, recordingMemory } from './helpers.js';
import { prng, below, pick, chance } from './helpers.js';

const SCALE = Number(process.env.BLK_FUZZ_SCALE ?? '1');
const CASES = Math.max(1, Math.round(3000 * SCALE));
const MIN_CHAINS = Math.round(25_000 * SCALE);


const DISK_SECTORS = 64;
/** 128 entries: room for every descriptor of a case, so none is reused while its chain may still wait in the ring (maxInFlight). */
const LAYOUT = layoutQueue(0x1000, 128);
const HEADER_AREA = 0x4000;
const STATUS_AREA = 0x8000;
const DATA_START = RAM_HIGH_A.base;
const DATA_END = RAM_HIGH_B.base + RAM_HIGH_B.size;
const KNOWN = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES];
const TYPES = [...KNOWN, ...KNOWN, VIRTIO_BLK_T_GET_LIFETIME, VIRTIO_BLK_T_SECURE_ERASE, 2, 3, 0xffff_ffff];
const SECTORS: readonly bigint[] = [0n, 1n, 7n, BigInt(DISK_SECTORS - 1), BigInt(DISK_SECTORS), BigInt(DISK_SECTORS + 1), 0xffff_ffffn, 2n ** 53n, 2n ** 64n - 1n, 2n ** 64n - 8n];
const LENGTHS = [0, 1, 15, 16, 32, 511, 512, 1024, 1536, 4096, 8192];
/** Buffer addresses: mostly inside the data area, some at region edges, in the hole, past RAM. */
const EDGES = [RAM_LOW.size - 1, RAM_LOW.size, RAM_HIGH_A.base - 16, RAM_HIGH_B.base - 8, DATA_END - 1, DATA_END, DATA_END - 512, 0x1_0000_0000];
const ALLOWED_RESET = /^(virtqueue: |virtio-blk: request at head \d+ has no device-writable status byte)/;

interface Sent {
  status: number | undefined;
  /** The oracle's verdict: the request must fail (IOERR or UNSUPP). */
  mustFail: boolean;
}

async function runCase(seed: number, readOnly: boolean, chains: number): Promise<number> {
  const r = prng(seed);
  const memory = recordingMemory();
  const backend = new MemoryBackend(DISK_SECTORS * 512, readOnly);
  for (let i = 0; i < backend.data.length; i++) backend.data[i] = (i * 131 + seed) & 0xff;
  const before = createHash('sha256').update(backend.data).digest('hex');
  const blk = new VirtioBlock({ backend, id: 'fuzz', queueSize: 128, maxInFlight: 1 + below(r, 8) });
  const resets: string[] = [];
  const transport = new VirtioMmioTransport(blk, { memory, irq: new RecordingIrqLine(), onNeedsReset: (why) => resets.push(why) });
  const driver = new MockMmioDriver(transport);
  const offered = driver.deviceFeatures();
  driver.init([LAYOUT], () => offered & BigInt(r()) | (offered & (1n << 32n)) | (r() & 1 ? offered : 0n));
  const ring = new MockVirtqueue(memory, LAYOUT);
  const sent: Sent[] = [];
  for (let c = 0; c < chains; c++) {
    const hdr = HEADER_AREA + c * 0x40;
    const type = pick(r, TYPES);
    const sector = pick(r, SECTORS);
    memory.writeU32(hdr, type);
    memory.writeU32(hdr + 4, r());
    memory.writeU64(hdr + 8, chance(r, 0.5) ? sector : BigInt(below(r, DISK_SECTORS + 4)));
    const bufs: MockBuffer[] = [];
    const headerShape = below(r, 10);
    let standardHeader = false;
    if (headerShape === 0) bufs.push({ address: hdr, length: below(r, 16) }); // short
    else if (headerShape === 1) bufs.push({ address: hdr, length: 16, writable: true }); // wrong direction
    else if (headerShape === 2) {
      const cut = 1 + below(r, 15);
      bufs.push({ address: hdr, length: cut }, { address: hdr + cut, length: 16 - cut });
    } else {
      bufs.push({ address: hdr, length: 16 });
      standardHeader = true;
    }
    const nData = below(r, 4);
    let writableSeen = false;
    let dataBytes = 0;
    let dataWrongWay = false;
    for (let i = 0; i < nData; i++) {
      const length = pick(r, LENGTHS);
      const address = chance(r, 0.05) ? pick(r, EDGES) : DATA_START + below(r, DATA_END - DATA_START - length + 1);
      // Mostly in the direction the type wants; sometimes the other way (and sometimes readable after writable: a malformed queue).
      const wantWritable = type === VIRTIO_BLK_T_IN || type === VIRTIO_BLK_T_GET_ID;
      let writable = chance(r, 0.9) ? wantWritable : !wantWritable;
      if (writableSeen && !writable && chance(r, 0.7)) writable = true;
      writableSeen ||= writable;
      if (writable !== wantWritable && length > 0) dataWrongWay = true;
      dataBytes += length;
      if (!writable && (type === VIRTIO_BLK_T_DISCARD || type === VIRTIO_BLK_T_WRITE_ZEROES) && address + length <= DATA_END && address >= DATA_START) {
        for (let o = 0; o + 16 <= length; o += 16) {
          memory.writeU64(address + o, chance(r, 0.7) ? BigInt(below(r, DISK_SECTORS)) : pick(r, SECTORS));
          memory.writeU32(address + o + 8, chance(r, 0.8) ? below(r, 16) : r());
          memory.writeU32(address + o + 12, chance(r, 0.8) ? 0 : below(r, 4));
        }
      }
      bufs.push({ address, length, writable });
    }
    const statusShape = below(r, 12);
    const status = STATUS_AREA + c;
    memory.writeU8(status, 0xee);
    let statusAt: number | undefined = status;
    if (statusShape === 0) statusAt = undefined; // no status byte
    else if (statusShape === 1) {
      // The status byte as the last byte of a bigger writable buffer.
      const big = STATUS_AREA + 0x100 + c * 8;
      memory.writeU8(big + 3, 0xee);
      bufs.push({ address: big, length: 4, writable: true });
      statusAt = big + 3;
    } else bufs.push({ address: status, length: 1, writable: true });
    const sectorNow = memory.readU64(hdr + 8);
    const pastEnd = sectorNow >= BigInt(DISK_SECTORS) && dataBytes > 0;
    const mustFail =
      standardHeader &&
      statusShape > 1 &&
      ((!KNOWN.includes(type)) ||
        (readOnly && (type === VIRTIO_BLK_T_OUT || type === VIRTIO_BLK_T_DISCARD || type === VIRTIO_BLK_T_WRITE_ZEROES)) ||
        ((type === VIRTIO_BLK_T_IN || type === VIRTIO_BLK_T_OUT) && (pastEnd || dataWrongWay || dataBytes % 512 !== 0)));
    ring.addChain(bufs, chance(r, 0.2) ? { indirectTable: 0xa000 + c * 0x80 } : {});
    sent.push({ status: statusAt, mustFail });
    driver.notify(0);
  }
  for (let i = 0; i < 4 && blk.inFlight > 0; i++) await tick();
  await blk.drain();
  await tick();

  assert.deepEqual(memory.violations, [], `seed ${seed}: accesses outside guest RAM`);
  for (const why of resets) assert.match(why, ALLOWED_RESET, `seed ${seed}: DEVICE_NEEDS_RESET without a rule behind it`);
  const needsReset = (driver.status() & STATUS_DEVICE_NEEDS_RESET) !== 0;
  const used = ring.takeUsed();
  if (!needsReset) assert.equal(used.length, chains, `seed ${seed}: every request answered`);
  if (!needsReset) {
    for (const [i, s] of sent.entries()) {
      if (s.status === undefined) continue;
      const v = memory.readU8(s.status);
      assert.ok(v <= VIRTIO_BLK_S_UNSUPP, `seed ${seed}: chain ${i} status ${v}`);
      if (s.mustFail) assert.ok(v === VIRTIO_BLK_S_IOERR || v === VIRTIO_BLK_S_UNSUPP, `seed ${seed}: chain ${i} must fail, got ${v}`);
    }
  }
  if (readOnly) assert.equal(createHash('sha256').update(backend.data).digest('hex'), before, `seed ${seed}: read-only disk changed`);
  return chains;
}

test(`blk fuzz: ≥ ${MIN_CHAINS} random and malformed request chains: no escape, no access outside RAM, only IOERR/UNSUPP or needs-reset for bad ones, read-only stays identical`, async (t) => {
  let total = 0;
  const started = performance.now();
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 0x7fff_ffff }), fc.boolean(), fc.integer({ min: 1, max: 20 }), async (seed, readOnly, chains) => {
      total += await runCase(seed, readOnly, chains);
    }),
    { numRuns: CASES },
  );
  t.diagnostic(`${total} chains in ${CASES} cases, ${(performance.now() - started).toFixed(0)} ms`);
  assert.ok(total >= MIN_CHAINS, `only ${total} chains`);
});
