/**
 * The soft CPU's narrow platform interface: where linear addresses go and
 * what the CPU cannot do alone (system calls in process mode; port I/O and
 * paging in machine mode, part 2).
 *
 * Memory goes through page translation only: the CPU asks for the 4 KiB
 * frame behind a linear page once, keeps it in its TLB (cpu.ts), and reads
 * and writes the frame's bytes directly until the platform invalidates it.
 * User-mode processes translate through their region map
 * (src/process/address-space.ts); the machine will translate through the
 * guest's page tables into guest RAM with the same interface.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 4096;
export const PAGE_MASK = PAGE_SIZE - 1;
/**
 * Sets per read or write TLB (cpu.ts), indexed by the low bits of the page
 * number, of two ways each (TLB_ENTRIES in all; way 1 of set t at entry
 * t + TLB_SIZE): large enough for the kernel's working set, small enough to
 * flush on CR3 writes. Direct-mapped, two of a process's hot pages whose
 * numbers (randomised at each exec) shared their low 10 bits evicted each
 * other at every access: in about one boot in three the shell loop then
 * took up to a million page walks a second.
 */
export const TLB_SIZE = 1024;
export const TLB_ENTRIES = 2 * TLB_SIZE;

/** Kinds of access, as bits (translate() gets exactly one). */
export const ACCESS_READ = 1;
export const ACCESS_WRITE = 2;
export const ACCESS_EXEC = 4;

/** One 4 KiB page frame: its bytes and a little-endian view on the same memory. */
export interface PageFrame {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /**
   * Set for a page that is not RAM: its physical address. The CPU never
   * caches it and sends every access to `SoftPlatform.mmio`.
   */
  readonly mmio?: number;
  /**
   * Where the frame's bytes lie in the machine's WebAssembly.Memory
   * (guest RAM from WasmMemoryBacking), or -1; unset where no frame does
   * (process mode, tests).
   */
  readonly wasm?: number;
}

/** Exception vectors (SDM Vol. 3A, Table 6-1). */
export const VEC_DE = 0;
export const VEC_DB = 1;
export const VEC_BP = 3;
export const VEC_OF = 4;
export const VEC_UD = 6;
export const VEC_NM = 7;
export const VEC_GP = 13;
export const VEC_PF = 14;
export const VEC_MF = 16;
export const VEC_AC = 17;
export const VEC_XM = 19;

/**
 * A fault raised by an instruction. The instruction has no effect beyond
 * what it did before faulting; RIP still addresses it.
 */
export class CpuException extends Error {
  override name = 'CpuException';
  constructor(
    readonly vector: number,
    readonly errorCode: number,
    /** Faulting linear address (#PF, CR2), or the instruction's address. */
    readonly address: number,
    message: string,
  ) {
    super(message);
  }
}

/** Page-fault error code bits (SDM Vol. 3A, 4.7). */
export const PF_PRESENT = 1 << 0;
export const PF_WRITE = 1 << 1;
export const PF_USER = 1 << 2;
export const PF_FETCH = 1 << 4;

export function pageFault(address: number, access: number, present: boolean): CpuException {
  const code = (present ? PF_PRESENT : 0) | (access === ACCESS_WRITE ? PF_WRITE : 0) | PF_USER | (access === ACCESS_EXEC ? PF_FETCH : 0);
  const what = access === ACCESS_WRITE ? 'write' : access === ACCESS_EXEC ? 'fetch' : 'read';
  return new CpuException(VEC_PF, code, address, `page fault: ${what} at 0x${hex(address)} (${present ? 'protection' : 'not mapped'})`);
}

/** Unsigned hex of a signed canonical address. */
export function hex(a: number): string {
  return (a < 0 ? BigInt.asUintN(64, BigInt(a)) : BigInt(a)).toString(16);
}

export interface SoftMmu {
  /**
   * The frame holding linear page `vpn` (address / 4096) for one access
   * kind, or throws the CpuException the access raises (#PF, #GP for a
   * non-canonical address).
   */
  translate(vpn: number, access: number): PageFrame;
}

/** What the CPU hands to its platform and how the run loop ends. */
export interface SoftPlatform extends SoftMmu {
  /**
   * SYSCALL executed with no kernel to enter (process mode): the platform
   * acts on the registers. It may ask the run loop to stop (cpu.requestStop).
   */
  syscall(cpu: unknown): void;
  /**
   * An access to an MMIO page (a frame with `mmio` set) at physical
   * `address`: a read fills `data`, a write consumes it. Machine mode only.
   */
  mmio?(address: number, data: Uint8Array, isWrite: boolean): void;
}
