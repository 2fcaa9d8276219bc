import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory, GuestMemoryError, heapBacking, allocateGuestMemory, WASM_MAX_PAGES, WASM_PAGE, WasmMemoryBacking } from '../src/memory/index.js';

function twoRegions(): GuestMemory {
  return new GuestMemory([heapBacking.allocate(0, 0x1000), heapBacking.allocate(0x1000, 0x1000), heapBacking.allocate(0x10000, 0x100)]);
}

test('memory: reads and writes round-trip across adjacent regions', () => {
  const m = twoRegions();
  const data = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
  m.write(0x1000 - 32, data);
  assert.deepEqual(m.read(0x1000 - 32, 64), data);
  m.writeU64(0xffc, 0x1122334455667788n);
  assert.equal(m.readU64(0xffc), 0x1122334455667788n);
  assert.equal(m.readU32(0x1000), 0x11223344);
});

test('memory: an access touching a hole fails whole and writes nothing', () => {
  const m = twoRegions();
  const before = m.read(0x1ff0, 16);
  assert.throws(() => m.write(0x1ff0, new Uint8Array(32).fill(0xaa)), (e: unknown) => e instanceof GuestMemoryError && e.kind === 'unmapped');
  assert.deepEqual(m.read(0x1ff0, 16), before);
  assert.throws(() => m.readU32(0x2000), GuestMemoryError);
  assert.throws(() => m.readU8(-1), GuestMemoryError);
  assert.throws(() => m.read(0x10000, 0x101), GuestMemoryError);
});

test('memory: slice refuses ranges that leave one region', () => {
  const m = twoRegions();
  assert.equal(m.slice(0x10, 0x10).length, 0x10);
  assert.throws(() => m.slice(0xff0, 0x20), (e: unknown) => e instanceof GuestMemoryError && e.kind === 'not-contiguous');
  assert.throws(() => m.slice(0x2000, 1), (e: unknown) => e instanceof GuestMemoryError && e.kind === 'unmapped');
  assert.throws(() => m.slice(0, Number.MAX_SAFE_INTEGER), (e: unknown) => e instanceof GuestMemoryError && e.kind === 'invalid');
});

test('memory: overlapping or mis-sized regions are rejected', () => {
  assert.throws(() => new GuestMemory([heapBacking.allocate(0, 0x2000), heapBacking.allocate(0x1000, 0x1000)]), /overlap/);
  assert.throws(() => new GuestMemory([{ base: 0, size: 0x2000, bytes: new Uint8Array(0x1000) }]), /backing/);
});

test('memory: large RAM is split into capped regions', () => {
  const m = allocateGuestMemory([{ base: 0, size: 0x3000 }], { allocate: (base, size) => ({ base, size, bytes: new Uint8Array(size) }) });
  assert.equal(m.size, 0x3000);
});

test('memory: property — any access is either fully in RAM or refused without side effects', () => {
  const m = twoRegions();
  fc.assert(
    fc.property(fc.integer({ min: -16, max: 0x11000 }), fc.integer({ min: 0, max: 0x3000 }), (addr, len) => {
      const inRam = m.isValid(addr, len);
      const snapshot = m.regions.map((r) => r.bytes.slice());
      try {
        m.fill(addr, len, 0x5a);
        assert.ok(inRam, 'fill succeeded outside RAM');
      } catch (e) {
        assert.ok(e instanceof GuestMemoryError);
        assert.ok(!inRam, 'fill refused inside RAM');
        m.regions.forEach((r, i) => assert.deepEqual(r.bytes, snapshot[i]));
      }
    }),
    { numRuns: 2000 },
  );
});

test('memory: the wasm backing places RAM in one shared WebAssembly.Memory, 64 KiB aligned, zeroed, then falls back to the heap', () => {
  // Room for three pages below the reserve: two regions fit, the third does not.
  const backing = new WasmMemoryBacking(WASM_MAX_PAGES * WASM_PAGE - 3 * WASM_PAGE);
  const m = allocateGuestMemory([{ base: 0, size: 0x1000 }, { base: 0x10000, size: 2 * WASM_PAGE }, { base: 0x100000, size: 0x2000 }], backing);
  const [a, b, c] = m.regions;
  assert.deepEqual([a?.wasm?.offset, b?.wasm?.offset, c?.wasm], [0, WASM_PAGE, undefined]);
  assert.equal(a?.wasm?.memory, backing.memory);
  assert.ok(backing.memory.buffer instanceof SharedArrayBuffer);
  assert.ok(c?.bytes.buffer instanceof SharedArrayBuffer, 'the heap fallback is shareable too');
  // Guest writes are the memory's bytes at the placement's offset.
  m.writeU64(0x10008, 0x1122334455667788n);
  const raw = new DataView(backing.memory.buffer);
  assert.equal(raw.getBigUint64(WASM_PAGE + 8, true), 0x1122334455667788n);
  assert.ok(new Uint8Array(backing.memory.buffer, 0, 3 * WASM_PAGE).every((x, i) => x === 0 || (i >= WASM_PAGE + 8 && i < WASM_PAGE + 16)));
  // Engine state still fits (the reserve), RAM no longer does.
  const state = backing.reserve(100);
  assert.equal(state?.byteOffset, 3 * WASM_PAGE);
  assert.equal(backing.reserve(4 * WASM_PAGE * WASM_PAGE), undefined);
  assert.throws(() => backing.allocate(0, 0), /bad size/);
  assert.throws(() => backing.reserve(-1), /bad size/);
});
