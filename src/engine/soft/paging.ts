/**
 * Machine-mode address translation for the soft CPU: guest-physical page
 * frames over GuestMemory, and the page-table walker behind
 * `SoftPlatform.translate` (SDM Vol. 3A, chapter 4).
 *
 * The CPU's TLB (cpu.ts) caches what translate() returns per access kind, so
 * the walker runs only on a miss; it sets accessed/dirty bits as hardware
 * does at that moment. A leaf with G set (CR4.PGE on) marks the translation
 * global for the CPU (Cpu.translatedGlobal), whose TLB keeps it across CR3
 * writes (Cpu.flushNonGlobal).
 */
import type { GuestMemory } from '../../memory/index.js';
import type { Cpu } from './cpu.js';
import {
  ACCESS_EXEC, ACCESS_WRITE, CpuException, hex, PAGE_SIZE, type PageFrame, PF_FETCH, PF_PRESENT, PF_USER, PF_WRITE, VEC_GP, VEC_PF,
} from './mmu.js';
import { CR0_PG, CR4_PAE, CR4_PGE, EFER_LMA, EFER_NXE } from './state.js';

/** CR0.WP: supervisor writes honour read-only pages (SDM Vol. 3A, 2.5). */
export const CR0_WP = 1 << 16;
/** Page-fault error code RSVD: a reserved bit was set in a paging entry (SDM Vol. 3A, 4.7). */
export const PF_RSVD = 1 << 3;

/** Paging-entry bits (SDM Vol. 3A, Table 4-19/4-20). */
export const PTE_P = 1 << 0;
export const PTE_RW = 1 << 1;
export const PTE_US = 1 << 2;
export const PTE_A = 1 << 5;
export const PTE_D = 1 << 6;
/** Page size: a 1 GiB page in a PDPTE, 2 MiB in a PDE. */
export const PTE_PS = 1 << 7;
/** Global: the translation outlives CR3 writes while CR4.PGE is set (in a leaf entry). */
export const PTE_G = 1 << 8;

const T32 = 4294967296;
/** Canonical linear page numbers are in [-2^35, 2^35) (48-bit addresses). */
const VPN_LIMIT = 2 ** 35;
/** By paging level (1-4): the 4 KiB pages one entry maps, 512^(level-1). */
const LEVEL_SPAN = [0, 1, 512, 512 * 512, 512 * 512 * 512];
const EMPTY_PAGE = new Uint8Array(PAGE_SIZE);
const EMPTY_VIEW = new DataView(EMPTY_PAGE.buffer);

/**
 * Guest-physical memory as page frames: one frame object per physical page,
 * shared by every vCPU (decoded code is keyed by frame). Pages outside RAM
 * come back as MMIO frames.
 */
export class PhysicalPages {
  /** Frames below the top of RAM by page number (every page walk looks up four: an array, not a Map). */
  private readonly low: (PageFrame | undefined)[];
  /** Frames above it (MMIO). */
  private readonly frames = new Map<number, PageFrame>();

  constructor(readonly memory: GuestMemory) {
    const top = memory.regions.reduce((t, r) => Math.max(t, r.base + r.size), 0);
    this.low = new Array<PageFrame | undefined>(Math.ceil(top / PAGE_SIZE)).fill(undefined);
  }

  frame(ppn: number): PageFrame {
    const low = this.low;
    const inLow = ppn >= 0 && ppn < low.length;
    let f = inLow ? low[ppn] : this.frames.get(ppn);
    if (f !== undefined) return f;
    const address = ppn * PAGE_SIZE;
    const region = this.memory.regions.find((r) => address >= r.base && address + PAGE_SIZE <= r.base + r.size);
    if (region !== undefined) {
      const bytes = region.bytes.subarray(address - region.base, address - region.base + PAGE_SIZE);
      const wasm = region.wasm !== undefined ? region.wasm.offset + address - region.base : -1;
      f = { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE), mmio: undefined, wasm };
    } else {
      f = { bytes: EMPTY_PAGE, view: EMPTY_VIEW, mmio: address, wasm: -1 };
    }
    if (inLow) low[ppn] = f;
    else this.frames.set(ppn, f);
    return f;
  }

  /** The RAM frame of `address`, or an error naming the structure that is not in RAM. */
  ram(address: number, what: string): PageFrame {
    const f = this.frame(Math.floor(address / PAGE_SIZE));
    if (f.mmio !== undefined) throw new SystemError(`${what} at physical 0x${hex(address)} is not RAM`);
    return f;
  }
}

/** A state the soft engine cannot continue from (not a guest fault): ends the VM with an engine error. */
export class SystemError extends Error {
  override name = 'SystemError';
}

/**
 * One vCPU's translate(): paging off (linear = physical), or 4-level paging
 * in long mode. 32-bit paging modes are not needed by the 64-bit boot path or
 * the AP trampolines (they enable long mode and paging at once).
 */
export class MachineMmu {
  cpu: Cpu | undefined;
  /** Linear address of the access being translated (exact CR2); set by the CPU before translate(). */
  faultAddress = 0;

  constructor(readonly phys: PhysicalPages) {}

  translate(vpn: number, access: number): PageFrame {
    const c = this.cpu as Cpu;
    this.faultAddress = c.faultAddr;
    if ((c.cr0 & CR0_PG) === 0) return this.phys.frame(vpn < 0 ? vpn + VPN_LIMIT * 2 : vpn);
    return this.phys.frame(this.walk(c, vpn, access, c.cpl === 3));
  }

  /**
   * The physical page behind linear page `vpn` for `access`, at user or
   * supervisor privilege; sets A (and D for writes) on the way, or throws
   * #PF / #GP (non-canonical).
   */
  walk(c: Cpu, vpn: number, access: number, user: boolean): number {
    if ((c.efer & EFER_LMA) === 0 || (c.cr4 & CR4_PAE) === 0) {
      throw new SystemError(`paging without long mode (CR0 0x${hex(c.cr0)}, CR4 0x${hex(c.cr4)}, EFER 0x${hex(c.efer)}) is not implemented`);
    }
    if (vpn < -VPN_LIMIT || vpn >= VPN_LIMIT) {
      throw new CpuException(VEC_GP, 0, vpn * PAGE_SIZE, `#GP: non-canonical address 0x${hex(vpn * PAGE_SIZE)}`);
    }
    const v = vpn < 0 ? vpn + 2 * VPN_LIMIT : vpn; // 36-bit page number
    const write = access === ACCESS_WRITE;
    const fetch = access === ACCESS_EXEC;
    const nxe = (c.efer & EFER_NXE) !== 0;
    let table = c.cr3 - (c.cr3 % PAGE_SIZE);
    let rw = true;
    let us = true;
    let nx = false;
    for (let level = 4; level >= 1; level--) {
      // 4 KiB pages one entry of this level maps (a table: `2 ** shift` compiles to a call of pow).
      const span = LEVEL_SPAN[level] as number;
      const index = Math.floor(v / span) & 511;
      const entryAddr = table + index * 8;
      const frame = this.phys.frame(Math.floor(entryAddr / PAGE_SIZE));
      // The message is built only on failure: walks are hot.
      if (frame.mmio !== undefined) this.phys.ram(entryAddr, `level-${level} paging entry`);
      const off = entryAddr % PAGE_SIZE;
      let lo = frame.view.getInt32(off, true);
      const hi = frame.view.getInt32(off + 4, true);
      if ((lo & PTE_P) === 0) throw this.fault(c, access, user, false, 0);
      if (hi < 0 && !nxe) throw this.fault(c, access, user, true, PF_RSVD);
      if ((lo & PTE_RW) === 0) rw = false;
      if ((lo & PTE_US) === 0) us = false;
      if (hi < 0) nx = true;
      const leaf = level === 1 || ((lo & PTE_PS) !== 0 && level <= 3);
      if (leaf) {
        if ((user && !us) || (write && !rw && (user || (c.cr0 & CR0_WP) !== 0)) || (fetch && nx)) {
          throw this.fault(c, access, user, true, 0);
        }
        const set = PTE_A | (write ? PTE_D : 0);
        if ((lo & set) !== set) frame.view.setInt32(off, lo | set, true);
        c.translatedGlobal = (lo & PTE_G) !== 0 && (c.cr4 & CR4_PGE) !== 0;
        const base = ((lo & 0xfffff000) >>> 0) + (hi & 0xfffff) * T32;
        // A large page: the bits below its size come from the linear address.
        return Math.floor(base / PAGE_SIZE / span) * span + (v % span);
      }
      if ((lo & PTE_A) === 0) {
        lo |= PTE_A;
        frame.view.setInt32(off, lo, true);
      }
      table = ((lo & 0xfffff000) >>> 0) + (hi & 0xfffff) * T32;
    }
    throw new SystemError('unreachable: paging walk without a leaf');
  }

  private fault(c: Cpu, access: number, user: boolean, present: boolean, extra: number): CpuException {
    const code = (present ? PF_PRESENT : 0) | (access === ACCESS_WRITE ? PF_WRITE : 0) | (user ? PF_USER : 0) |
      (access === ACCESS_EXEC && (c.efer & EFER_NXE) !== 0 ? PF_FETCH : 0) | extra;
    const a = this.faultAddress;
    const what = access === ACCESS_WRITE ? 'write' : access === ACCESS_EXEC ? 'fetch' : 'read';
    return new CpuException(VEC_PF, code, a, `#PF: ${what} at 0x${hex(a)} (${present ? 'protection' : 'not present'}, error 0x${code.toString(16)})`);
  }

  /** Physical address of linear `a` for a supervisor access (descriptor tables, TSS, IDT). */
  supervisorPhys(c: Cpu, a: number, access: number): number {
    if ((c.cr0 & CR0_PG) === 0) return a < 0 ? a + 2 ** 64 : a;
    this.faultAddress = a;
    const ppn = this.walk(c, Math.floor(a / PAGE_SIZE), access, false);
    return ppn * PAGE_SIZE + (((a % PAGE_SIZE) + PAGE_SIZE) % PAGE_SIZE);
  }

  /** Reads `out.length` bytes at linear `a` with supervisor rights (implicit system accesses). */
  readSystem(c: Cpu, a: number, out: Uint8Array): void {
    for (let k = 0; k < out.length; k++) {
      const p = this.supervisorPhys(c, a + k, 1);
      out[k] = this.phys.ram(p, 'system table').bytes[p % PAGE_SIZE] as number;
    }
  }
}
