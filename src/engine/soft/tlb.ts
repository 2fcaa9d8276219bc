/**
 * The soft TLB's data (cpu.ts keeps the fills and flushes): the per-entry
 * arrays of one privilege level, their layout in the machine's
 * WebAssembly.Memory where compiled code reads them (wasm/emitter.ts), the
 * chain cache placed after them (wasm/region.ts), and the operations on
 * single entries and ways that the Cpu's fills and flushes share.
 *
 * Each read and write TLB has TLB_SIZE sets of two ways (mmu.ts): way 1 of
 * set t is entry t + TLB_SIZE. The fetch TLB is direct-mapped.
 */
import { CodePage } from './code-cache.js';
import { PAGE_SIZE, type PageFrame, TLB_ENTRIES, TLB_SIZE } from './mmu.js';

export const NO_FRAME: PageFrame = { bytes: new Uint8Array(PAGE_SIZE), view: new DataView(new ArrayBuffer(PAGE_SIZE)) };
export const NO_CODE = new CodePage(NO_FRAME);

/**
 * High half of a wasm tag that matches no page: virtual page numbers of
 * canonical addresses lie within ±2^35, so their high halves within ±8.
 */
export const NO_TAG_HI = 0x7fffffff;

/** The wasm tag of entry t: `vpn` as a little-endian i64 (two int32s), or none when the frame is not in wasm memory. */
export function tagW(a: Int32Array, t: number, vpn: number, wasm: number | undefined): void {
  if (wasm === undefined) {
    a[2 * t + 1] = NO_TAG_HI;
    return;
  }
  a[2 * t] = vpn | 0;
  a[2 * t + 1] = Math.floor(vpn / 4294967296) | 0;
}

/** Empties the entries of one TLB (tags, and wasm tags when it has them) not marked global. */
export function dropNonGlobal(tag: Float64Array, tw: Int32Array | undefined, global: Uint8Array): void {
  for (let k = 0; k < global.length; k++) dropNonGlobalAt(tag, tw, global, k);
}

/** Empties entry `k` of one TLB if it holds page `vpn` (INVLPG). */
export function dropPageAt(tag: Float64Array, tw: Int32Array, k: number, vpn: number): void {
  if (tag[k] !== vpn) return;
  tag[k] = NaN;
  tw[2 * k + 1] = NO_TAG_HI;
}

/** Empties entry `k` of one TLB unless it is marked global. */
export function dropNonGlobalAt(tag: Float64Array, tw: Int32Array | undefined, global: Uint8Array, k: number): void {
  if (global[k] !== 0) return;
  tag[k] = NaN;
  if (tw !== undefined) tw[2 * k + 1] = NO_TAG_HI;
}

/** Sets flushNonGlobal lists; past this many it scans every entry instead. */
export const FILLED_SETS = 256;

/** Swaps the two ways of set `t` of one TLB (tags, frames, wasm offsets and tags, global marks). */
export function swapWays(tag: Float64Array, view: DataView[], bytes: Uint8Array[], off: Int32Array, tw: Int32Array, global: Uint8Array, t: number): void {
  const u = t + TLB_SIZE;
  const gl = global[t] as number;
  global[t] = global[u] as number;
  global[u] = gl;
  const g = tag[t] as number, v = view[t] as DataView, b = bytes[t] as Uint8Array, o = off[t] as number;
  const lo = tw[2 * t] as number, hi = tw[2 * t + 1] as number;
  tag[t] = tag[u] as number; view[t] = view[u] as DataView; bytes[t] = bytes[u] as Uint8Array; off[t] = off[u] as number;
  tw[2 * t] = tw[2 * u] as number; tw[2 * t + 1] = tw[2 * u + 1] as number;
  tag[u] = g; view[u] = v; bytes[u] = b; off[u] = o;
  tw[2 * u] = lo; tw[2 * u + 1] = hi;
}

/** One privilege level's read, write and fetch TLBs, while the other level's are in use (Cpu.switchPrivilege). */
export class TlbSet {
  rTag: Float64Array<ArrayBufferLike> = new Float64Array(TLB_ENTRIES).fill(NaN);
  rView: DataView[] = new Array<DataView>(TLB_ENTRIES).fill(NO_FRAME.view);
  rBytes: Uint8Array[] = new Array<Uint8Array>(TLB_ENTRIES).fill(NO_FRAME.bytes);
  wTag: Float64Array<ArrayBufferLike> = new Float64Array(TLB_ENTRIES).fill(NaN);
  wView: DataView[] = new Array<DataView>(TLB_ENTRIES).fill(NO_FRAME.view);
  wBytes: Uint8Array[] = new Array<Uint8Array>(TLB_ENTRIES).fill(NO_FRAME.bytes);
  xTag = new Float64Array(TLB_SIZE).fill(NaN);
  xCode: CodePage[] = new Array<CodePage>(TLB_SIZE).fill(NO_CODE);
  rGlobal = new Uint8Array(TLB_ENTRIES);
  wGlobal = new Uint8Array(TLB_ENTRIES);
  xGlobal = new Uint8Array(TLB_SIZE);
  rOff: Int32Array<ArrayBufferLike> = new Int32Array(TLB_ENTRIES).fill(-1);
  wOff: Int32Array<ArrayBufferLike> = new Int32Array(TLB_ENTRIES).fill(-1);
  rTagW: Int32Array<ArrayBufferLike> = new Int32Array(2 * TLB_ENTRIES).fill(NO_TAG_HI);
  wTagW: Int32Array<ArrayBufferLike> = new Int32Array(2 * TLB_ENTRIES).fill(NO_TAG_HI);
}

/**
 * Sets of one privilege level's chain cache (wasm/region.ts): linear
 * address → compiled region, two ways of 16 bytes each (i64 address, i32
 * table slot, i32 generation), right after the level's placed TLB arrays.
 * A loop through a few hundred functions thrashed a direct-mapped cache of
 * 1,024 entries (pairs of targets evicting each other on every pass).
 */
export const CHAIN_SETS = 2048;
/** Where the chain cache starts in a privilege level's placed block. */
export const TLB_CHAIN_AT = TLB_ENTRIES * (8 + 8 + 4 + 4 + 8 + 8);
/** Bytes of one privilege level's block in shared memory (Cpu.placeTlb): rTag, wTag, rOff, wOff, the chain cache. */
export const TLB_PLACED_BYTES = TLB_CHAIN_AT + CHAIN_SETS * 32;
/** What Cpu.placeTlb needs: both privilege levels. */
export const TLB_AREA_BYTES = 2 * TLB_PLACED_BYTES;

/** What one privilege level keeps in shared memory (Cpu and TlbSet): its tags, wasm tags and frame offsets. */
interface PlacedLevel { rTag: Float64Array; wTag: Float64Array; rOff: Int32Array; wOff: Int32Array; rTagW: Int32Array; wTagW: Int32Array }

/**
 * Moves one privilege level's read/write tags, wasm tags and frame offsets
 * into `area` at byte `at` (Cpu.placeTlb), keeping their entries. Layout:
 * rTag and wTag (f64 × TLB_ENTRIES each), rOff and wOff (i32 ×
 * TLB_ENTRIES each), rTagW and wTagW (i64 × TLB_ENTRIES each), then the
 * level's chain cache (TLB_CHAIN_AT), which the wasm tier keeps.
 */
export function placeLevel(area: Uint8Array, at: number, set: PlacedLevel): void {
  const o = area.byteOffset + at, b = area.buffer;
  const f64 = (k: number, from: Float64Array): Float64Array => {
    const v = new Float64Array(b, o + k * TLB_ENTRIES * 8, TLB_ENTRIES);
    v.set(from);
    return v;
  };
  const i32 = (k: number, from: Int32Array): Int32Array => {
    const v = new Int32Array(b, o + 16 * TLB_ENTRIES + k * TLB_ENTRIES * 4, TLB_ENTRIES);
    v.set(from);
    return v;
  };
  const i64 = (k: number, from: Int32Array): Int32Array => {
    const v = new Int32Array(b, o + 24 * TLB_ENTRIES + k * TLB_ENTRIES * 8, 2 * TLB_ENTRIES);
    v.set(from);
    return v;
  };
  set.rTag = f64(0, set.rTag);
  set.wTag = f64(1, set.wTag);
  set.rOff = i32(0, set.rOff);
  set.wOff = i32(1, set.wOff);
  set.rTagW = i64(0, set.rTagW);
  set.wTagW = i64(1, set.wTagW);
}
