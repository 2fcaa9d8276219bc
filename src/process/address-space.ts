/**
 * A user process's address space: page-granular regions with r/w/x
 * permissions, backed by 4 KiB frames allocated on first touch.
 *
 * The CPU reaches it only through translate() (the SoftMmu interface it will
 * later reach guest page tables through); system calls copy in and out with
 * readBytes/writeBytes, which check permissions the same way and report
 * EFAULT instead of faulting. Addresses are plain numbers: user space is
 * [MMAP_MIN_ADDR, USER_TOP), well inside 2^53.
 */
import {
  ACCESS_READ, ACCESS_WRITE, PAGE_SIZE, pageFault, type PageFrame, type SoftMmu,
} from '../engine/soft/mmu.js';

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

/** Lowest mappable address (Linux's default vm.mmap_min_addr). */
export const MMAP_MIN_ADDR = 0x10000;
/** One past the highest user address on x86-64 with 4-level paging (TASK_SIZE_MAX). */
export const USER_TOP = 0x7ffffffff000;

export interface Region {
  start: number;
  /** Exclusive, page-aligned. */
  end: number;
  prot: number;
  name: string;
}

/** A failed user-memory access from a system call. */
export class EfaultError extends Error {
  override name = 'EfaultError';
}

const SLAB_PAGES = 16;

export function pageAlignUp(n: number): number {
  return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;
}

export class AddressSpace implements SoftMmu {
  /** Sorted by start, non-overlapping. */
  private regions: Region[] = [];
  private readonly frames = new Map<number, PageFrame>();
  private slab: ArrayBuffer = new ArrayBuffer(0);
  private slabNext = SLAB_PAGES;
  /** Told about pages whose translation or contents identity changed (unmap, protect). */
  private readonly listeners: ((vpn: number, count: number) => void)[] = [];

  onInvalidate(fn: (vpn: number, count: number) => void): void {
    this.listeners.push(fn);
  }

  private invalidate(start: number, end: number): void {
    const vpn = start / PAGE_SIZE;
    const count = (end - start) / PAGE_SIZE;
    for (const fn of this.listeners) fn(vpn, count);
  }

  private newFrame(): PageFrame {
    if (this.slabNext === SLAB_PAGES) {
      this.slab = new ArrayBuffer(SLAB_PAGES * PAGE_SIZE);
      this.slabNext = 0;
    }
    const off = this.slabNext++ * PAGE_SIZE;
    return { bytes: new Uint8Array(this.slab, off, PAGE_SIZE), view: new DataView(this.slab, off, PAGE_SIZE) };
  }

  /** Index of the region containing `addr`, or -1. */
  private find(addr: number): number {
    const r = this.regions;
    let lo = 0, hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const g = r[mid] as Region;
      if (addr < g.start) hi = mid - 1;
      else if (addr >= g.end) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  regionAt(addr: number): Region | undefined {
    const k = this.find(addr);
    return k < 0 ? undefined : this.regions[k];
  }

  listRegions(): readonly Region[] {
    return this.regions;
  }

  translate(vpn: number, access: number): PageFrame {
    const addr = vpn * PAGE_SIZE;
    const k = this.find(addr);
    if (k < 0) throw pageFault(addr, access, false);
    const prot = (this.regions[k] as Region).prot;
    // x86 pages are readable whenever present: PROT_WRITE or PROT_EXEC imply read (PROT_NONE does not).
    const ok = access === ACCESS_READ ? prot !== 0 : access === ACCESS_WRITE ? (prot & PROT_WRITE) !== 0 : (prot & PROT_EXEC) !== 0;
    if (!ok) throw pageFault(addr, access, true);
    let f = this.frames.get(vpn);
    if (f === undefined) {
      f = this.newFrame();
      this.frames.set(vpn, f);
    }
    return f;
  }

  /** Maps [start, start+len) fresh (zero-filled), replacing whatever was there. */
  map(start: number, len: number, prot: number, name: string): void {
    const end = start + pageAlignUp(len);
    this.unmap(start, end - start);
    const r: Region = { start, end, prot, name };
    const k = this.regions.findIndex((g) => g.start > start);
    if (k < 0) this.regions.push(r); else this.regions.splice(k, 0, r);
  }

  /** Removes [start, start+len) from every region, dropping its pages. */
  unmap(start: number, len: number): void {
    const end = start + pageAlignUp(len);
    const out: Region[] = [];
    let touched = false;
    for (const g of this.regions) {
      if (g.end <= start || g.start >= end) { out.push(g); continue; }
      touched = true;
      if (g.start < start) out.push({ ...g, end: start });
      if (g.end > end) out.push({ ...g, start: end });
    }
    if (!touched) return;
    this.regions = out;
    for (let a = start; a < end; a += PAGE_SIZE) this.frames.delete(a / PAGE_SIZE);
    this.invalidate(start, end);
  }

  /** Changes the protection of [start, start+len); false if part of it is not mapped (ENOMEM). */
  protect(start: number, len: number, prot: number): boolean {
    const end = start + pageAlignUp(len);
    if (!this.isMapped(start, end)) return false;
    const out: Region[] = [];
    for (const g of this.regions) {
      if (g.end <= start || g.start >= end) { out.push(g); continue; }
      if (g.start < start) out.push({ ...g, end: start });
      out.push({ ...g, start: Math.max(g.start, start), end: Math.min(g.end, end), prot });
      if (g.end > end) out.push({ ...g, start: end });
    }
    this.regions = out;
    this.invalidate(start, end);
    return true;
  }

  /** True when every page of [start, end) belongs to some region. */
  isMapped(start: number, end: number): boolean {
    let a = start;
    while (a < end) {
      const k = this.find(a);
      if (k < 0) return false;
      a = (this.regions[k] as Region).end;
    }
    return true;
  }

  /** True when no page of [start, end) is mapped. */
  isFree(start: number, end: number): boolean {
    if (start < MMAP_MIN_ADDR || end > USER_TOP) return false;
    return this.regions.every((g) => g.end <= start || g.start >= end);
  }

  /** Highest free range of `len` bytes ending at or below `top` (top-down, as Linux's mmap). */
  findFree(len: number, top: number): number | undefined {
    let end = top;
    for (let k = this.regions.length - 1; k >= -1; k--) {
      const g = this.regions[k];
      if (g && g.start >= end) continue;
      const lowest = g ? g.end : MMAP_MIN_ADDR;
      if (end - lowest >= len) return end - len;
      if (!g) break;
      end = Math.min(end, g.start);
    }
    return undefined;
  }

  /** Drops the pages of [start, start+len): they read as zero again (MADV_DONTNEED on private anonymous memory). */
  discard(start: number, len: number): void {
    const end = start + pageAlignUp(len);
    for (let a = start; a < end; a += PAGE_SIZE) this.frames.delete(a / PAGE_SIZE);
    this.invalidate(start, end);
  }

  /** Moves a mapping's pages to a new range (mremap): the frames move with it. */
  move(oldStart: number, oldLen: number, newStart: number, newLen: number): void {
    const g = this.regionAt(oldStart);
    const prot = g?.prot ?? PROT_READ | PROT_WRITE;
    const name = g?.name ?? 'anon';
    const moved: [number, PageFrame][] = [];
    for (let a = oldStart; a < oldStart + Math.min(oldLen, newLen); a += PAGE_SIZE) {
      const f = this.frames.get(a / PAGE_SIZE);
      if (f) moved.push([(a - oldStart + newStart) / PAGE_SIZE, f]);
    }
    this.unmap(oldStart, oldLen);
    this.map(newStart, newLen, prot, name);
    for (const [vpn, f] of moved) this.frames.set(vpn, f);
  }

  // ---- Copies for system calls (user permissions, EFAULT on failure) ----

  private frameFor(addr: number, access: number): PageFrame {
    try {
      return this.translate(Math.floor(addr / PAGE_SIZE), access);
    } catch {
      throw new EfaultError(`bad user address 0x${addr.toString(16)}`);
    }
  }

  readBytes(addr: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(addr, out);
    return out;
  }

  readInto(addr: number, out: Uint8Array): void {
    let done = 0;
    while (done < out.length) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, out.length - done);
      out.set(this.frameFor(a, ACCESS_READ).bytes.subarray(off, off + n), done);
      done += n;
    }
  }

  writeBytes(addr: number, data: Uint8Array): void {
    // Check the whole range first: a failed copy leaves memory unchanged.
    for (let a = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE; a < addr + data.length; a += PAGE_SIZE) this.frameFor(a, ACCESS_WRITE);
    this.writeUnchecked(addr, data);
  }

  /** Writes ignoring permissions (loader: segments before their final protection). */
  writeUnchecked(addr: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, data.length - done);
      const vpn = Math.floor(a / PAGE_SIZE);
      if (this.find(a) < 0) throw new EfaultError(`bad user address 0x${a.toString(16)}`);
      let f = this.frames.get(vpn);
      if (f === undefined) { f = this.newFrame(); this.frames.set(vpn, f); }
      f.bytes.set(data.subarray(done, done + n), off);
      done += n;
    }
    this.invalidateCode(addr, data.length);
  }

  private invalidateCode(addr: number, len: number): void {
    const s = Math.floor(addr / PAGE_SIZE) * PAGE_SIZE;
    this.invalidate(s, pageAlignUp(addr + len));
  }

  /** A NUL-terminated string of at most `max` bytes (without the NUL). */
  readCString(addr: number, max = 4096): Uint8Array {
    const parts: number[] = [];
    for (let a = addr; parts.length < max; ) {
      const f = this.frameFor(a, ACCESS_READ);
      const off = a % PAGE_SIZE;
      const end = f.bytes.indexOf(0, off);
      const stop = end < 0 ? PAGE_SIZE : end;
      for (let k = off; k < stop && parts.length < max; k++) parts.push(f.bytes[k] as number);
      if (end >= 0) return Uint8Array.from(parts);
      a += PAGE_SIZE - off;
    }
    throw new EfaultError('string too long');
  }

  readU64(addr: number): number {
    const b = this.readBytes(addr, 8);
    const v = new DataView(b.buffer);
    return v.getUint32(4, true) * 4294967296 + v.getUint32(0, true);
  }

  /** A copy for fork(): same regions, private copies of every touched page. */
  clone(): AddressSpace {
    const c = new AddressSpace();
    c.regions = this.regions.map((g) => ({ ...g }));
    for (const [vpn, f] of this.frames) {
      const n = c.newFrame();
      n.bytes.set(f.bytes);
      c.frames.set(vpn, n);
    }
    return c;
  }

  /** Pages materialised so far (memory use). */
  get residentPages(): number {
    return this.frames.size;
  }
}

