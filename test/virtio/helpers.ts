import { GuestMemory, heapBacking, type MemoryRegion } from '../../src/memory/index.js';
import type { DeviceClock } from '../../src/virtio/index.js';
import { Virtqueue, type QueueFeatures } from '../../src/virtio/index.js';
import type { QueueLayout } from '../../src/virtio/mock-driver.js';

/**
 * Guest memory that checks every access itself before GuestMemory does:
 * any access outside RAM is recorded as a violation (and then refused by
 * GuestMemory as usual). Code under test must produce none: it has to
 * validate guest addresses before touching them, not rely on a throw.
 */
export class RecordingMemory extends GuestMemory {
  violations: string[] = [];
  accesses = 0;

  private note(op: string, address: number, length: number): void {
    this.accesses++;
    if (!this.isValid(address, length)) this.violations.push(`${op} 0x${address.toString(16)}+${length}`);
  }

  override readInto(address: number, into: Uint8Array): void {
    this.note('read', address, into.length);
    super.readInto(address, into);
  }
  override write(address: number, data: Uint8Array): void {
    this.note('write', address, data.length);
    super.write(address, data);
  }
  override fill(address: number, length: number, value = 0): void {
    this.note('fill', address, length);
    super.fill(address, length, value);
  }
  override slice(address: number, length: number): Uint8Array {
    this.note('slice', address, length);
    return super.slice(address, length);
  }
  override readU8(address: number): number {
    this.note('readU8', address, 1);
    return super.readU8(address);
  }
  override readU16(address: number): number {
    this.note('readU16', address, 2);
    return super.readU16(address);
  }
  override readU32(address: number): number {
    this.note('readU32', address, 4);
    return super.readU32(address);
  }
  override readU64(address: number): bigint {
    this.note('readU64', address, 8);
    return super.readU64(address);
  }
  override writeU8(address: number, value: number): void {
    this.note('writeU8', address, 1);
    super.writeU8(address, value);
  }
  override writeU16(address: number, value: number): void {
    this.note('writeU16', address, 2);
    super.writeU16(address, value);
  }
  override writeU32(address: number, value: number): void {
    this.note('writeU32', address, 4);
    super.writeU32(address, value);
  }
  override writeU64(address: number, value: bigint): void {
    this.note('writeU64', address, 8);
    super.writeU64(address, value);
  }
}

/**
 * The RAM map of the queue tests: low RAM, a hole, then two adjacent
 * regions (accesses may straddle them) — so buffers can sit at and past the
 * end of a region, in a hole, and across a region boundary.
 */
export const RAM_LOW = { base: 0, size: 0x10000 };
export const RAM_HIGH_A = { base: 0x20000, size: 0x10000 };
export const RAM_HIGH_B = { base: 0x30000, size: 0x10000 };
export const RAM_RANGES = [RAM_LOW, RAM_HIGH_A, RAM_HIGH_B];

export function recordingMemory(ranges: readonly { base: number; size: number }[] = RAM_RANGES): RecordingMemory {
  const regions: MemoryRegion[] = ranges.map((r) => heapBacking.allocate(r.base, r.size));
  return new RecordingMemory(regions);
}

/** A queue configured by hand (no transport) on `layout` and activated. */
export function activeQueue(memory: GuestMemory, layout: QueueLayout, features: QueueFeatures = { indirect: true, eventIdx: false }, maxSize = 256): Virtqueue {
  const q = new Virtqueue(maxSize);
  q.size = layout.size;
  q.ready = true;
  q.descLow = layout.desc;
  q.availLow = layout.avail;
  q.usedLow = layout.used;
  q.activate(memory, features);
  return q;
}

/** A clock whose time moves only when the test says so. */
export class FakeClock implements DeviceClock {
  time = 0;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];

  now(): number {
    return this.time;
  }

  setTimer(ms: number, fn: () => void): { cancel(): void } {
    const t = { at: this.time + ms, fn, live: true };
    this.timers.push(t);
    return {
      cancel: () => {
        t.live = false;
      },
    };
  }

  get pending(): number {
    return this.timers.filter((t) => t.live).length;
  }

  /** Advances time by `ms`, running timers that come due, in order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.live = false;
      this.time = due.at;
      due.fn();
    }
    this.time = end;
    this.timers = this.timers.filter((t) => t.live);
  }
}

/** mulberry32: a small, fast, seedable PRNG for the fuzz tests (determinism matters, quality does not). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}
export type Rand = () => number;
export const below = (r: Rand, n: number): number => r() % n;
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[below(r, xs.length)]!;
export const chance = (r: Rand, p: number): boolean => r() / 2 ** 32 < p;
