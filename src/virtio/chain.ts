/**
 * Gather/scatter over the buffers of a validated chain. A device sees a
 * request as one byte stream across however many descriptors the driver
 * used (§2.7.4.1: the device must not assume any particular split).
 */
import type { GuestMemory } from '../memory/index.js';
import type { GuestBuffer } from './queue.js';

/**
 * Copies up to `into.length` bytes starting `offset` bytes into `buffers`
 * (a chain's readable list) into `into`; returns the number copied.
 */
export function readFromBuffers(memory: GuestMemory, buffers: readonly GuestBuffer[], offset: number, into: Uint8Array): number {
  let done = 0;
  let skip = offset;
  for (const b of buffers) {
    if (done === into.length) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, into.length - done);
    memory.readInto(b.address + skip, into.subarray(done, done + n));
    done += n;
    skip = 0;
  }
  return done;
}

/**
 * Copies `data` into `buffers` (a chain's writable list) starting `offset`
 * bytes in; returns the number of bytes written (less than data.length when
 * the buffers end first).
 */
export function writeToBuffers(memory: GuestMemory, buffers: readonly GuestBuffer[], offset: number, data: Uint8Array): number {
  let done = 0;
  let skip = offset;
  for (const b of buffers) {
    if (done === data.length) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, data.length - done);
    memory.write(b.address + skip, data.subarray(done, done + n));
    done += n;
    skip = 0;
  }
  return done;
}

/**
 * Calls `fill` with views of the first `length` bytes of `buffers`, in
 * order, to be filled in place. A buffer that lies inside one RAM region is
 * handed over as a view of guest RAM (zero copy); one that straddles two
 * adjacent regions is filled in a bounce buffer and written back. Returns
 * the number of bytes filled.
 */
export function fillBuffers(memory: GuestMemory, buffers: readonly GuestBuffer[], length: number, fill: (view: Uint8Array) => void): number {
  let done = 0;
  for (const b of buffers) {
    if (done >= length) break;
    const n = Math.min(b.length, length - done);
    if (withinOneRegion(memory, b.address, n)) {
      fill(memory.slice(b.address, n));
    } else {
      const bounce = new Uint8Array(n);
      fill(bounce);
      memory.write(b.address, bounce);
    }
    done += n;
  }
  return done;
}

function withinOneRegion(memory: GuestMemory, address: number, length: number): boolean {
  for (const r of memory.regions) {
    if (address >= r.base && address < r.base + r.size) return address + length <= r.base + r.size;
  }
  return false;
}
