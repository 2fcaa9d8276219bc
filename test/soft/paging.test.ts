/**
 * PhysicalPages (src/engine/soft/paging.ts): the frames a machine's page
 * walks hand to the CPU, and where each lies in the machine's
 * WebAssembly.Memory for code compiled to WebAssembly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SoftEngine } from '../../src/engine/soft/engine.js';
import { PAGE_SIZE } from '../../src/engine/soft/mmu.js';
import { PhysicalPages } from '../../src/engine/soft/paging.js';
import { GuestMemory, heapBacking, WasmMemoryBacking } from '../../src/memory/index.js';

test('RAM frames carry their offset in the WebAssembly.Memory; MMIO and heap RAM carry -1', () => {
  const engine = new SoftEngine();
  const backing = engine.memoryBacking();
  assert.ok(backing instanceof WasmMemoryBacking);
  const memory = new GuestMemory([backing.allocate(0, 0x20000), backing.allocate(0x100000, 0x10000), heapBacking.allocate(0x200000, 0x1000)]);
  const pages = new PhysicalPages(memory);
  const raw = new Uint8Array(backing.memory.buffer);
  for (const [address, offset] of [[0, 0], [0x1f000, 0x1f000], [0x100000, 0x20000], [0x10f000, 0x2f000]] as const) {
    const f = pages.frame(address / PAGE_SIZE);
    assert.equal(f.wasm, offset, `frame at 0x${address.toString(16)}`);
    assert.equal(f.mmio, undefined);
    // The frame's bytes are the memory's bytes there.
    f.bytes[5] = 0xa5;
    assert.equal(raw[offset + 5], 0xa5);
    assert.equal(memory.readU8(address + 5), 0xa5);
  }
  assert.equal(pages.frame(0x200000 / PAGE_SIZE).wasm, -1, 'RAM on the heap');
  const mmio = pages.frame(0xfee00000 / PAGE_SIZE);
  assert.equal(mmio.mmio, 0xfee00000);
  assert.equal(mmio.wasm, -1);
  assert.equal(pages.frame(0x30000 / PAGE_SIZE).mmio, 0x30000, 'a hole between regions is not RAM');
});
