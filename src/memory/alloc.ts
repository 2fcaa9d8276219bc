import { GuestMemory, type MemoryRegion } from './guest-memory.js';

/** Where guest RAM lives on the host. */
export interface MemoryBacking {
  /** Allocates `size` zeroed bytes for the region at guest address `base`. */
  allocate(base: number, size: number): MemoryRegion;
}

/**
 * RAM in SharedArrayBuffers: enough for the soft engine and for tests, and
 * shareable with worker threads. No host address (a hardware engine needs a
 * native backing).
 */
export const heapBacking: MemoryBacking = {
  allocate(base, size) {
    return { base, size, bytes: new Uint8Array(new SharedArrayBuffer(size)) };
  },
};

/** Host buffers are capped per region; larger RAM ranges are split. */
export const MAX_REGION_BYTES = 2 ** 30;

/** Builds guest memory for RAM ranges [base, size), splitting ranges larger than MAX_REGION_BYTES. */
export function allocateGuestMemory(ranges: readonly { base: number; size: number }[], backing: MemoryBacking): GuestMemory {
  const regions: MemoryRegion[] = [];
  for (const { base, size } of ranges) {
    for (let off = 0; off < size; off += MAX_REGION_BYTES) {
      regions.push(backing.allocate(base + off, Math.min(MAX_REGION_BYTES, size - off)));
    }
  }
  return new GuestMemory(regions);
}
