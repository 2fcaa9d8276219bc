import { heapBacking, type MemoryBacking } from './alloc.js';
import type { MemoryRegion } from './guest-memory.js';

/**
 * The part of the WebAssembly JS API typevisor uses. The project's
 * TypeScript libraries (ES2023 + Node) carry no wasm typings, so this is
 * the typed boundary: `wasmApi` is the global object seen through it.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}
/** A table of functions (funcref elements); `null` is an empty slot. */
export interface WasmTable {
  readonly length: number;
  grow(delta: number): number;
  get(index: number): unknown;
  set(index: number, value: unknown): void;
}
export interface WasmApi {
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Table: new (d: { element: 'anyfunc'; initial: number; maximum?: number }) => WasmTable;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
  validate(bytes: Uint8Array): boolean;
}
export const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** A WebAssembly page: 64 KiB. */
export const WASM_PAGE = 65536;
/** wasm32 addresses 4 GiB: 65,536 pages. */
export const WASM_MAX_PAGES = 65536;

/**
 * Guest RAM in one shared WebAssembly.Memory, so that guest code compiled
 * to WebAssembly reaches RAM by offset: each region it holds says where
 * (`MemoryRegion.wasm`). Regions are placed in allocation order on 64 KiB
 * boundaries; `reserve` takes engine state (register files, TLBs) from the
 * same memory. What does not fit below 4 GiB — `reserveBytes` are kept free
 * for state — comes from the heap as with `heapBacking`, without a wasm
 * placement (compiled code reaches it through the engine).
 *
 * Shared: the buffer is a SharedArrayBuffer, never detached by growing, so
 * views handed out stay valid and worker threads can map the same RAM.
 * Pages are zero when the memory grows.
 */
export class WasmMemoryBacking implements MemoryBacking {
  readonly memory: WasmMemory;

  constructor(private readonly reserveBytes = 16 * 2 ** 20) {
    this.memory = new wasmApi.Memory({ initial: 0, maximum: WASM_MAX_PAGES, shared: true });
  }

  allocate(base: number, size: number): MemoryRegion {
    const placed = reserveWasm(this.memory, size, this.reserveBytes);
    if (placed === undefined) return heapBacking.allocate(base, size);
    return { base, size, bytes: placed, wasm: { memory: this.memory, offset: placed.byteOffset } };
  }

  /** `size` zeroed bytes of engine state in the same memory (64 KiB aligned), or undefined when it is full. */
  reserve(size: number): Uint8Array | undefined {
    return reserveWasm(this.memory, size);
  }
}

/**
 * Grows `memory` by the pages `size` bytes need and returns them (zeroed,
 * 64 KiB aligned), or undefined when that would leave fewer than
 * `keepFree` bytes below wasm32's 4 GiB. Whoever holds the memory can take
 * state from it this way (the soft engine's register files and TLBs).
 */
export function reserveWasm(memory: WasmMemory, size: number, keepFree = 0): Uint8Array | undefined {
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`wasm backing: bad size ${size}`);
  const pages = Math.ceil(size / WASM_PAGE);
  const offset = memory.buffer.byteLength;
  if (offset / WASM_PAGE + pages > WASM_MAX_PAGES - Math.ceil(keepFree / WASM_PAGE)) return undefined;
  memory.grow(pages);
  return new Uint8Array(memory.buffer, offset, size);
}
