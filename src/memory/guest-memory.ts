import { GuestMemoryError } from './errors.js';
import type { WasmMemory } from './wasm-backing.js';

/**
 * One contiguous range of guest-physical RAM backed by host memory.
 * `hostAddress` is the host virtual address of `bytes` when the backing is
 * native (mmap), which is what a hardware engine hands to the kernel.
 */
export interface MemoryRegion {
  readonly base: number;
  readonly size: number;
  readonly bytes: Uint8Array;
  readonly hostAddress?: bigint;
  /** Set when `bytes` lie in a WebAssembly.Memory (WasmMemoryBacking): which, and at what offset. */
  readonly wasm?: { readonly memory: WasmMemory; readonly offset: number };
}

/** Largest guest-physical address we represent as a JS number (2^52: far above any RAM we map). */
export const MAX_GUEST_ADDRESS = 2 ** 52;

/**
 * Converts a guest-supplied 64-bit value to a guest address, or fails.
 * Guests hand us bigint-sized values (descriptor addresses, registers);
 * anything past MAX_GUEST_ADDRESS cannot be RAM.
 */
export function toGuestAddress(value: bigint, length = 0): number {
  if (value < 0n || value >= BigInt(MAX_GUEST_ADDRESS)) throw new GuestMemoryError('invalid', value, length);
  return Number(value);
}

function validRange(address: number, length: number): boolean {
  return (
    Number.isSafeInteger(address) &&
    Number.isSafeInteger(length) &&
    address >= 0 &&
    length >= 0 &&
    address + length <= MAX_GUEST_ADDRESS
  );
}

/**
 * Guest-physical memory: a sorted set of non-overlapping RAM regions.
 *
 * Every access names an address and a length and is checked as a whole
 * before any byte moves: a read or write either happens completely or throws
 * a GuestMemoryError and touches nothing. Typed arrays silently drop
 * out-of-range writes, so no unchecked view ever leaves this class.
 */
export class GuestMemory {
  readonly regions: readonly MemoryRegion[];
  private readonly view: DataView[];

  constructor(regions: readonly MemoryRegion[]) {
    const sorted = [...regions].sort((a, b) => a.base - b.base);
    for (let i = 0; i < sorted.length; i++) {
      const r = sorted[i]!;
      if (!validRange(r.base, r.size) || r.size === 0) throw new RangeError(`bad memory region at 0x${r.base.toString(16)}`);
      if (r.bytes.byteLength !== r.size) throw new RangeError(`region at 0x${r.base.toString(16)}: backing is ${r.bytes.byteLength} bytes, not ${r.size}`);
      const prev = sorted[i - 1];
      if (prev && prev.base + prev.size > r.base) throw new RangeError(`memory regions overlap at 0x${r.base.toString(16)}`);
    }
    this.regions = sorted;
    this.view = sorted.map((r) => new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
  }

  /** Total bytes of RAM. */
  get size(): number {
    return this.regions.reduce((n, r) => n + r.size, 0);
  }

  /** Highest RAM address + 1. */
  get end(): number {
    const last = this.regions[this.regions.length - 1];
    return last ? last.base + last.size : 0;
  }

  private regionIndex(address: number): number {
    const rs = this.regions;
    let lo = 0;
    let hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = rs[mid]!;
      if (address < r.base) hi = mid - 1;
      else if (address >= r.base + r.size) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** True when every byte of [address, address+length) is RAM (possibly across adjacent regions). */
  isValid(address: number, length: number): boolean {
    if (!validRange(address, length)) return false;
    let at = address;
    const end = address + length;
    if (length === 0) return this.regionIndex(address) >= 0 || address === this.end;
    while (at < end) {
      const i = this.regionIndex(at);
      if (i < 0) return false;
      const r = this.regions[i]!;
      at = r.base + r.size;
    }
    return true;
  }

  /**
   * A view of [address, address+length) that lies within one region. Views
   * alias guest RAM (zero-copy device I/O); they are checked here, once, for
   * both address and length.
   */
  slice(address: number, length: number): Uint8Array {
    if (!validRange(address, length)) throw new GuestMemoryError('invalid', address, length);
    const i = this.regionIndex(address);
    if (i < 0) throw new GuestMemoryError('unmapped', address, length);
    const r = this.regions[i]!;
    if (address + length > r.base + r.size) {
      throw new GuestMemoryError(this.isValid(address, length) ? 'not-contiguous' : 'unmapped', address, length);
    }
    const off = address - r.base;
    return r.bytes.subarray(off, off + length);
  }

  private check(address: number, length: number): void {
    if (!validRange(address, length)) throw new GuestMemoryError('invalid', address, length);
    if (!this.isValid(address, length)) throw new GuestMemoryError('unmapped', address, length);
  }

  /** Copies guest bytes into `into` (its whole length). All or nothing. */
  readInto(address: number, into: Uint8Array): void {
    this.check(address, into.length);
    let done = 0;
    while (done < into.length) {
      const at = address + done;
      const r = this.regions[this.regionIndex(at)]!;
      const off = at - r.base;
      const n = Math.min(into.length - done, r.size - off);
      into.set(r.bytes.subarray(off, off + n), done);
      done += n;
    }
  }

  read(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    this.readInto(address, out);
    return out;
  }

  /** Copies `data` into guest RAM at `address`. All or nothing. */
  write(address: number, data: Uint8Array): void {
    this.check(address, data.length);
    let done = 0;
    while (done < data.length) {
      const at = address + done;
      const r = this.regions[this.regionIndex(at)]!;
      const off = at - r.base;
      const n = Math.min(data.length - done, r.size - off);
      r.bytes.set(data.subarray(done, done + n), off);
      done += n;
    }
  }

  /** Fills [address, address+length) with `value`. All or nothing. */
  fill(address: number, length: number, value = 0): void {
    this.check(address, length);
    let done = 0;
    while (done < length) {
      const at = address + done;
      const r = this.regions[this.regionIndex(at)]!;
      const off = at - r.base;
      const n = Math.min(length - done, r.size - off);
      r.bytes.fill(value, off, off + n);
      done += n;
    }
  }

  private scalar(address: number, size: number): { dv: DataView; off: number } | undefined {
    if (!validRange(address, size)) return undefined;
    const i = this.regionIndex(address);
    if (i < 0) return undefined;
    const r = this.regions[i]!;
    const off = address - r.base;
    if (off + size > r.size) return undefined;
    return { dv: this.view[i]!, off };
  }

  // Little-endian scalar accessors. The fast path is one region; a scalar
  // that straddles two adjacent regions goes through the byte copy path.
  readU8(address: number): number {
    const s = this.scalar(address, 1);
    return s ? s.dv.getUint8(s.off) : this.read(address, 1)[0]!;
  }
  readU16(address: number): number {
    const s = this.scalar(address, 2);
    return s ? s.dv.getUint16(s.off, true) : new DataView(this.read(address, 2).buffer).getUint16(0, true);
  }
  readU32(address: number): number {
    const s = this.scalar(address, 4);
    return s ? s.dv.getUint32(s.off, true) : new DataView(this.read(address, 4).buffer).getUint32(0, true);
  }
  readU64(address: number): bigint {
    const s = this.scalar(address, 8);
    return s ? s.dv.getBigUint64(s.off, true) : new DataView(this.read(address, 8).buffer).getBigUint64(0, true);
  }
  writeU8(address: number, value: number): void {
    const s = this.scalar(address, 1);
    if (s) s.dv.setUint8(s.off, value);
    else this.write(address, Uint8Array.of(value));
  }
  writeU16(address: number, value: number): void {
    const s = this.scalar(address, 2);
    if (s) s.dv.setUint16(s.off, value, true);
    else this.writeScalarSlow(address, 2, (dv) => dv.setUint16(0, value, true));
  }
  writeU32(address: number, value: number): void {
    const s = this.scalar(address, 4);
    if (s) s.dv.setUint32(s.off, value >>> 0, true);
    else this.writeScalarSlow(address, 4, (dv) => dv.setUint32(0, value >>> 0, true));
  }
  writeU64(address: number, value: bigint): void {
    const s = this.scalar(address, 8);
    if (s) s.dv.setBigUint64(s.off, BigInt.asUintN(64, value), true);
    else this.writeScalarSlow(address, 8, (dv) => dv.setBigUint64(0, BigInt.asUintN(64, value), true));
  }
  private writeScalarSlow(address: number, size: number, put: (dv: DataView) => void): void {
    const tmp = new Uint8Array(size);
    put(new DataView(tmp.buffer));
    this.write(address, tmp);
  }
}
