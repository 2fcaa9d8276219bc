/**
 * The soft engine's interpreter core: run loop, pre-decoded instruction
 * cache, TLB and the memory access path every handler uses.
 *
 * Shaped for V8: one Op object per decoded instruction, cached per code page
 * by page offset and reused until the page is written (self-modifying code)
 * or unmapped; no allocation per executed instruction; int32 arithmetic.
 */
import { decode, type DecodeMode, FORMS, HANDLER_NAMES, Instruction, MAX_INSN_LENGTH, MODE_64, STATUS_OK, STATUS_TOO_LONG, STATUS_TRUNCATED, STATUS_NAMES } from './decode/index.js';
import { getRflags } from './flags.js';
import { FORM_HANDLERS, HANDLER_TABLE, missingHandler } from './handlers.js';
import { Block, compileRegion, discoverRegion, endsBlock, jit } from './block.js';
import { specialize } from './ops/fast.js';
import { compileWasmRegion, enterWasm, flushWasm, type WasmState } from './wasm/region.js';
import {
  ACCESS_EXEC, ACCESS_READ, ACCESS_WRITE, CpuException, hex, PAGE_MASK, PAGE_SIZE, type PageFrame, type SoftPlatform, TLB_ENTRIES, TLB_SIZE,
  VEC_GP, VEC_UD,
} from './mmu.js';
import { Op } from './op.js';
import { CodeCache, CodePage } from './code-cache.js';
import {
  dropNonGlobal, dropNonGlobalAt, dropPageAt, FILLED_SETS, NO_CODE, NO_FRAME, NO_TAG_HI, placeLevel, swapWays, tagW, TLB_AREA_BYTES,
  TLB_PLACED_BYTES, TlbSet,
} from './tlb.js';

export { CodeCache } from './code-cache.js';
import { CpuState } from './state.js';
import type { SystemState } from './system.js';

/** Why run() returned. */
export const EXIT_LIMIT = 0; // the instruction budget ran out
export const EXIT_STOP = 1; // requestStop() (a system call that blocks or ends the process)
export const EXIT_EXCEPTION = 2; // an instruction faulted: cpu.exception
export const EXIT_HLT = 3; // HLT: the CPU sleeps until an interrupt (cpu.halted)

const STOP_REQUESTED = 1;
const STOP_REFETCH = 2;
const TLB_MASK = TLB_SIZE - 1;

/** Block starts whose region stays JS, waiting for jit.after arrivals (they reached jit.wasmAfter first). */
const heldBack = new WeakSet<Op>();
/** Marks a block start not worth compiling: its instructions run one at a time. */
const NO_BLOCK = new Block([]);

export class Cpu extends CpuState {
  /** Where control goes after the current instruction; handlers that branch set it. */
  nextRip = 0;
  /** High half of the last 64-bit read (read64, operand reads of size 8). */
  hi = 0;
  /** Linear address of the memory operand last read (read-modify-write). */
  addr = 0;
  /** Instructions retired since creation. */
  icount = 0;
  /** Machine-mode system registers; undefined for a process's CPU (src/process). */
  sys: SystemState | undefined;
  /** Linear address of the access being translated (CR2 of a page fault). */
  faultAddr = 0;
  /** Set when run() returned EXIT_EXCEPTION. */
  exception: CpuException | undefined;
  /** Instructions a compiled region retired before the fault it let through (block.ts). */
  retiredInBlock = 0;
  /** Decoding mode of the code segment (16/32/64-bit); set through setMode(). */
  mode: DecodeMode = MODE_64;
  /**
   * The machine's WebAssembly.Memory holding this CPU's registers, TLBs and
   * RAM (engine.ts placeInWasm): regions then compile to WebAssembly.
   */
  wasm: WasmState | undefined = undefined;
  /**
   * Regions compiled to WebAssembly wait to be instantiated together, up to
   * `jit.wasmBatch` of them, until `flushWasm()` (the engine's, after each
   * slice); false: each is instantiated as it is compiled.
   */
  deferWasm = false;
  /**
   * The code generation (element 0): whatever may change which code a
   * linear address runs — a TLB flush, dropped decoded code, a new decoding
   * mode — moves it on, which empties the chain caches (their entries carry
   * the generation they were made in). placeInWasm puts it beside the
   * registers; never 0, which marks an empty entry.
   */
  codeGeneration: Int32Array<ArrayBufferLike> = new Int32Array([1]);
  /** Set by HLT; the machine clears it when it delivers an interrupt or a SIPI. */
  halted = false;
  /** Reports an unimplemented instruction form (once per form). */
  log: (message: string) => void = (m) => process.stderr.write(`typevisor: ${m}\n`);

  /**
   * 0, STOP_REQUESTED, or STOP_REFETCH (decoded code was dropped; the run
   * loop must look again). Public for compiled regions (block.ts), which end
   * when it is set.
   */
  stopRequested = 0;
  private readonly reported = new Set<number>();

  // Read and write TLBs of the current privilege level: tag = virtual page
  // number (NaN = empty). Public for compiled regions, whose memory
  // templates test them inline (ops/inline.ts memory access); only cpu.ts
  // fills, empties or swaps them.
  rTag: Float64Array<ArrayBufferLike> = new Float64Array(TLB_ENTRIES).fill(NaN);
  rView: DataView[] = new Array<DataView>(TLB_ENTRIES).fill(NO_FRAME.view);
  rBytes: Uint8Array[] = new Array<Uint8Array>(TLB_ENTRIES).fill(NO_FRAME.bytes);
  wTag: Float64Array<ArrayBufferLike> = new Float64Array(TLB_ENTRIES).fill(NaN);
  wView: DataView[] = new Array<DataView>(TLB_ENTRIES).fill(NO_FRAME.view);
  wBytes: Uint8Array[] = new Array<Uint8Array>(TLB_ENTRIES).fill(NO_FRAME.bytes);
  /**
   * Per read/write entry: the offset of its frame in the machine's
   * WebAssembly.Memory (PageFrame.wasm), or -1 (MMIO, RAM outside it, no
   * machine): where code compiled to WebAssembly finds a hit.
   */
  rOff: Int32Array<ArrayBufferLike> = new Int32Array(TLB_ENTRIES).fill(-1);
  wOff: Int32Array<ArrayBufferLike> = new Int32Array(TLB_ENTRIES).fill(-1);
  /**
   * Per read/write entry, what compiled wasm compares: the tag as an i64, or
   * one that matches nothing when the frame is not in the WebAssembly.Memory
   * (so a hit needs no other check). Kept in step with rTag/wTag wherever
   * those change.
   */
  rTagW: Int32Array<ArrayBufferLike> = new Int32Array(2 * TLB_ENTRIES).fill(NO_TAG_HI);
  wTagW: Int32Array<ArrayBufferLike> = new Int32Array(2 * TLB_ENTRIES).fill(NO_TAG_HI);
  // The fetch TLB: tag and decoded code page.
  private xTag = new Float64Array(TLB_SIZE).fill(NaN);
  private xCode: CodePage[] = new Array<CodePage>(TLB_SIZE).fill(NO_CODE);
  /** Per read, write and fetch entry: 1 when its translation is global (kept across CR3 writes: flushNonGlobal). */
  private rGlobal = new Uint8Array(TLB_ENTRIES);
  private wGlobal = new Uint8Array(TLB_ENTRIES);
  private xGlobal = new Uint8Array(TLB_SIZE);
  /**
   * Set by the platform's translate(): the translation it returned is
   * global (the leaf entry's G bit with CR4.PGE set); false otherwise, and
   * for platforms that never set it.
   */
  translatedGlobal = false;
  /** Sets that took a non-global entry since the last CR3 write (read, write or fetch; either privilege level). */
  private readonly filledSets = new Int32Array(FILLED_SETS);
  /** How many of filledSets are listed; FILLED_SETS + 1 when more were filled than it holds. */
  private filledCount = 0;
  /**
   * The other privilege level's TLBs (user when running at CPL 0-2,
   * supervisor at CPL 3). An entry holds a translation checked for one of
   * the two (paging permissions depend on nothing else), so a system call or
   * an interrupt swaps the sets instead of emptying them, and both sides
   * find their working set still there when control comes back.
   */
  private other = new TlbSet();
  /** Decoded instructions, possibly shared with other vCPUs (CodeCache). */
  private codeCache = new CodeCache();
  /** The cache's pages for the current mode. */
  private code: Map<PageFrame, CodePage>;
  /** The frame each linear code page was last decoded from (invalidatePage). */
  private readonly codeFrameOf = new Map<number, PageFrame>();
  private readonly mmioBuf = new Uint8Array(8);
  private readonly mmioView = new DataView(this.mmioBuf.buffer);
  private readonly fetchBuf = new Uint8Array(16);
  /** The decoder's record, refilled by every decode; an Op copies what execution needs from it. */
  private readonly decoded = new Instruction();

  constructor(readonly platform: SoftPlatform) {
    super();
    this.codeCache.cpus.push(this);
    this.code = this.codeCache.pages[this.mode] as Map<PageFrame, CodePage>;
  }

  /** Shares decoded code with the other vCPUs of a machine (call before running). */
  joinCodeCache(cache: CodeCache): void {
    this.codeCache = cache;
    cache.cpus.push(this);
    this.code = cache.pages[this.mode] as Map<PageFrame, CodePage>;
    this.xTag.fill(NaN);
    this.other.xTag.fill(NaN);
    this.newCodeGeneration();
  }

  /** Moves the code generation on (skipping 0). */
  newCodeGeneration(): void {
    const g = this.codeGeneration;
    g[0] = ((g[0] as number) + 1) | 0 || 1;
  }

  /** Drops write-TLB entries of `bytes`, both privilege levels', so writes to it take the slow path (SMC detection). */
  private forgetWritable(bytes: Uint8Array): void {
    const wb = this.wBytes;
    for (let k = 0; k < TLB_ENTRIES; k++) if (wb[k] === bytes) { this.wTag[k] = NaN; this.wTagW[2 * k + 1] = NO_TAG_HI; }
    const o = this.other;
    for (let k = 0; k < TLB_ENTRIES; k++) if (o.wBytes[k] === bytes) { o.wTag[k] = NaN; o.wTagW[2 * k + 1] = NO_TAG_HI; }
  }

  /** Forgets the fetch TLBs (decoded code they point at was dropped). */
  private forgetCode(): void {
    this.xTag.fill(NaN);
    this.other.xTag.fill(NaN);
    this.newCodeGeneration();
    this.codeDropped();
  }

  /**
   * Moves both privilege levels' read/write TLB tags and frame offsets into
   * `area` (TLB_AREA_BYTES, 8-byte aligned; layout: tlb.ts placeLevel), keeping
   * their entries: the soft engine puts them in the machine's
   * WebAssembly.Memory, beside the RAM the offsets point into.
   */
  placeTlb(area: Uint8Array): void {
    if (area.byteLength < TLB_AREA_BYTES || area.byteOffset % 8 !== 0) throw new RangeError(`a TLB area is ${TLB_AREA_BYTES} bytes, 8-byte aligned`);
    placeLevel(area, 0, this);
    placeLevel(area, TLB_PLACED_BYTES, this.other);
  }

  /**
   * The privilege level moves between user (CPL 3) and supervisor (CPL 0-2):
   * swaps in the other level's TLBs. The run loop looks its code page up again.
   */
  switchPrivilege(): void {
    const o = this.other;
    const rTag = this.rTag, rView = this.rView, rBytes = this.rBytes;
    const wTag = this.wTag, wView = this.wView, wBytes = this.wBytes;
    const xTag = this.xTag, xCode = this.xCode;
    const rOff = this.rOff, wOff = this.wOff, rTagW = this.rTagW, wTagW = this.wTagW;
    const rGlobal = this.rGlobal, wGlobal = this.wGlobal, xGlobal = this.xGlobal;
    this.rGlobal = o.rGlobal; this.wGlobal = o.wGlobal; this.xGlobal = o.xGlobal;
    o.rGlobal = rGlobal; o.wGlobal = wGlobal; o.xGlobal = xGlobal;
    this.rTag = o.rTag; this.rView = o.rView; this.rBytes = o.rBytes;
    this.wTag = o.wTag; this.wView = o.wView; this.wBytes = o.wBytes;
    this.xTag = o.xTag; this.xCode = o.xCode;
    this.rOff = o.rOff; this.wOff = o.wOff; this.rTagW = o.rTagW; this.wTagW = o.wTagW;
    o.rTag = rTag; o.rView = rView; o.rBytes = rBytes;
    o.wTag = wTag; o.wView = wView; o.wBytes = wBytes;
    o.xTag = xTag; o.xCode = xCode;
    o.rOff = rOff; o.wOff = wOff; o.rTagW = rTagW; o.wTagW = wTagW;
    this.codeDropped();
  }

  protected override readRflagsForSnapshot(): number {
    return getRflags(this);
  }

  /** Pages with decoded code (figures for traces and stats). */
  get codePages(): number {
    return this.codeCache.size;
  }

  /** Ends run() after the current instruction. */
  requestStop(): void {
    this.stopRequested = STOP_REQUESTED;
  }

  private codeDropped(): void {
    if (this.stopRequested === 0) this.stopRequested = STOP_REFETCH;
  }

  /**
   * Runs up to `limit` instructions. Returns EXIT_*; on EXIT_EXCEPTION,
   * `exception` holds the fault and rip addresses the faulting instruction.
   */
  run(limit: number): number {
    this.stopRequested = 0;
    this.exception = undefined;
    let n = 0;
    /** Linear address of the code page `ops` belongs to (NaN: none yet). */
    let base = NaN;
    let page: CodePage = NO_CODE;
    /** A compiled region is running (a fault inside it leaves its count in retiredInBlock). */
    let inBlock = false;
    /** Control may have just arrived here (a block starts): look for a compiled region, count the heat. */
    let boundary = true;
    /**
     * The instruction that just ran, in the page in hand: its `next` link
     * (fall-through) or `jump` link (branch target) may lead to the current
     * one without the page lookup.
     */
    let prev: Op | undefined;
    // Regions compile at the sooner of the two thresholds; promote() holds back those that stay JS.
    const jitAfter = this.wasm !== undefined && jit.wasm ? Math.min(jit.after, jit.wasmAfter) : jit.after;
    try {
      while (n < limit) {
        const rip = this.rip;
        let op: Op | undefined;
        if (prev !== undefined) op = !boundary ? prev.next : rip - base === prev.jumpOff ? prev.jump : undefined;
        if (op === undefined) {
          let off = rip - base;
          if (!(off >= 0 && off < PAGE_SIZE)) {
            const pv = Math.floor(rip / PAGE_SIZE);
            const t = pv & TLB_MASK;
            page = this.xTag[t] === pv ? this.xCode[t] ?? NO_CODE : this.codePage(pv);
            base = pv * PAGE_SIZE;
            off = rip - base;
            prev = undefined;
          }
          // An int32 index keeps the element load on V8's fast path.
          const ix = off | 0;
          op = page.ops[ix];
          if (op === undefined) op = this.decodeAt(rip, page, ix);
          // Link only ops of the page in hand: a straddling op is not cached.
          if (prev !== undefined && page.ops[ix] === op) {
            if (!boundary) prev.next = op;
            else {
              prev.jump = op;
              prev.jumpOff = ix;
            }
          }
        }
        prev = undefined;
        if (boundary) {
          const b = op.block;
          if (b === undefined) {
            const h = op.heat + 1;
            op.heat = h;
            if (h > jitAfter) this.promote(page, (rip - base) | 0);
          } else if (b.fn !== undefined) {
            inBlock = true;
            const w = b.wasm;
            const k = w !== undefined ? enterWasm(this, w, limit - n, base) : b.fn(this, limit - n, base);
            inBlock = false;
            // 0: its first basic block did not fit the budget; run one instruction at a time.
            if (k !== 0) {
              n += k;
              if (this.stopRequested !== 0) {
                if (this.stopRequested !== STOP_REFETCH) break;
                this.stopRequested = 0;
                base = NaN;
              }
              continue;
            }
          }
        }
        const next: number = rip + op.length;
        this.nextRip = next;
        op.fn(this, op);
        this.rip = this.nextRip;
        n++;
        boundary = op.endsBlock || this.nextRip !== next;
        prev = op;
        if (this.stopRequested !== 0) {
          prev = undefined;
          if (this.stopRequested !== STOP_REFETCH) break;
          // Code was invalidated under the loop: look the page up again.
          this.stopRequested = 0;
          base = NaN;
        }
      }
    } catch (e) {
      if (!(e instanceof CpuException)) throw e;
      if (inBlock) n += this.retiredInBlock;
      this.exception = e;
      this.icount += n;
      return EXIT_EXCEPTION;
    }
    this.icount += n;
    if (this.halted) return EXIT_HLT;
    return this.stopRequested === STOP_REQUESTED ? EXIT_STOP : EXIT_LIMIT;
  }

  /** Instantiates the regions compiled to WebAssembly that wait for it (`deferWasm`). */
  flushWasm(): void {
    const w = this.wasm;
    if (w !== undefined && w.pending.length > 0 && performance.now() - w.pendingSince >= jit.wasmBatchMs) flushWasm(w);
  }

  /**
   * Control arrived at page offset `ix` (rip) often enough: compile the block
   * starting there, or remember that it is not worth it (block.ts). Decodes
   * what is not yet decoded, and only what decodes cleanly within the page:
   * never faults.
   */
  private promote(page: CodePage, ix: number): void {
    const first = page.ops[ix];
    // An instruction that straddles the page is decoded afresh each time: nothing to mark.
    if (first === undefined) return;
    const ops = page.ops;
    // Blocks control never reached (no heat, no region) stay out: cold paths would only make the function bigger.
    const region = new Block(discoverRegion(ix, (off) => ops[off] ?? this.decodeAhead(page, off), (off) => {
      const op = ops[off];
      return op !== undefined && (op.heat > 0 || op.block !== undefined);
    }));
    const w = this.wasm !== undefined && jit.wasm ? compileWasmRegion(region, this.wasm) : undefined;
    if (w !== undefined) {
      // Until flushWasm instantiates it (region.fn set), its blocks run here one instruction at a time.
      region.wasm = w;
      if (!this.deferWasm || w.state.pending.length >= jit.wasmBatch) flushWasm(w.state);
    } else {
      // Not for WebAssembly: a JS region only once the block is as hot as jit.after asks (h - 1 arrivals counted so far).
      const h = first.heat;
      if (h <= jit.after && !heldBack.has(first)) {
        heldBack.add(first);
        first.heat = 2 * h - jit.after - 1;
        return;
      }
      heldBack.delete(first);
      region.fn = compileRegion(region);
    }
    if (region.fn === undefined && region.wasm === undefined) {
      first.block = NO_BLOCK;
      return;
    }
    // Every block start of the region enters it, unless it has a region of its own already.
    for (const b of region.blocks) {
      const op = b.ops[0] as Op;
      if (op.block === undefined || op === first) op.block = region;
    }
  }

  /** Decodes and caches the instruction at `off` if it is valid and within the page; never faults. */
  private decodeAhead(page: CodePage, off: number): Op | undefined {
    if (decode(this.decoded, page.frame.bytes, off, PAGE_SIZE, this.mode) !== STATUS_OK) return undefined;
    const op = this.bind();
    page.ops[off] = op;
    return op;
  }

  /** The Op for the instruction just decoded into `decoded`, with its handler bound. */
  private bind(): Op {
    const op = Op.from(this.decoded);
    const fn = FORM_HANDLERS[op.form] ?? missingHandler;
    // The specialised shapes assume 64-bit mode (flat stack, 64-bit return addresses).
    op.fn = fn === HANDLER_TABLE[op.handler] && this.mode === MODE_64 ? specialize(HANDLER_NAMES[op.handler] ?? '', op) ?? fn : fn;
    op.endsBlock = endsBlock(op);
    return op;
  }

  /** The decoded-instruction page for `vpn`, checking execute permission. */
  private codePage(vpn: number, faultAddr = this.rip): CodePage {
    this.faultAddr = faultAddr;
    const frame = this.translate(vpn, ACCESS_EXEC);
    const global = this.translatedGlobal;
    if (frame.mmio !== undefined) throw new Error(`instruction fetch from MMIO (physical 0x${hex(frame.mmio)}) at 0x${hex(vpn * PAGE_SIZE)}`);
    let ops = this.code.get(frame);
    if (ops === undefined) {
      ops = new CodePage(frame);
      this.code.set(frame, ops);
      // Writes to a page with cached code, through any alias on any vCPU, must take the slow path to invalidate it.
      for (const c of this.codeCache.cpus) c.forgetWritable(frame.bytes);
    }
    this.codeFrameOf.set(vpn, frame);
    const t = vpn & TLB_MASK;
    this.xTag[t] = vpn;
    this.xCode[t] = ops;
    this.xGlobal[t] = global ? 1 : 0;
    if (!global) this.filledNonGlobal(t);
    return ops;
  }

  /** The code of page `vpn + 1`, execute permission checked (a fault there reports that page's first address). */
  private followingCode(vpn: number): CodePage {
    const t = (vpn + 1) & TLB_MASK;
    const cached = this.xTag[t] === vpn + 1 ? this.xCode[t] : undefined;
    return cached ?? this.codePage(vpn + 1, (vpn + 1) * PAGE_SIZE);
  }

  private decodeAt(rip: number, page: CodePage, off: number): Op {
    const d = this.decoded;
    const vpn = Math.floor(rip / PAGE_SIZE);
    // Only the page's last MAX_INSN_LENGTH - 1 bytes can start an instruction that continues on the next page.
    const nearEnd = off > PAGE_SIZE - MAX_INSN_LENGTH;
    if (nearEnd && page.tailOff === off && page.tailOp !== undefined && this.followingCode(vpn) === page.tailPage) return page.tailOp;
    const frame = page.frame;
    let status = decode(d, frame.bytes, off, PAGE_SIZE, this.mode);
    let next: CodePage | undefined;
    if (status === STATUS_TRUNCATED) {
      // The instruction continues on the next page: decode from a copy; it is kept aside, valid while that page's code is.
      const n = PAGE_SIZE - off;
      this.fetchBuf.set(frame.bytes.subarray(off));
      next = this.followingCode(vpn);
      this.fetchBuf.set(next.frame.bytes.subarray(0, 16 - n), n);
      status = decode(d, this.fetchBuf, 0, 16, this.mode);
    }
    const straddles = next !== undefined;
    if (status !== STATUS_OK) {
      const len = Math.max(1, Math.min(d.length, MAX_INSN_LENGTH));
      const bytes = straddles ? this.fetchBuf.subarray(0, len) : frame.bytes.subarray(off, Math.min(off + len, PAGE_SIZE));
      throw new CpuException(status === STATUS_TOO_LONG ? VEC_GP : VEC_UD, 0, rip,
        `${STATUS_NAMES[status] ?? status} instruction at 0x${hex(rip)}: ${hexBytes(bytes)}`);
    }
    const op = this.bind();
    if (next === undefined) page.ops[off] = op;
    else {
      page.tailOp = op;
      page.tailOff = off;
      page.tailPage = next;
      // No region holds it (regions are one page's code): the instruction after it starts a block, which can be compiled.
      op.endsBlock = true;
    }
    return op;
  }

  /**
   * Raises #UD for a form with no handler, reporting it once with its bytes.
   * Runs with cpu.rip at the instruction (the run loop and compiled regions keep it so for every handler).
   */
  unimplemented(i: Op, why = 'not implemented'): never {
    const at = this.rip;
    const bytes = hexBytes(this.peekCode(at, i.length));
    if (!this.reported.has(i.form)) {
      this.reported.add(i.form);
      const f = FORMS[i.form];
      this.log(`${why}: ${f ? `${f.mnemonic} ${f.row[2]}` : '?'} (${HANDLER_NAMES[i.handler] ?? '?'}) at 0x${hex(at)}: ${bytes}`);
    }
    throw new CpuException(VEC_UD, 0, at, `#UD: ${bytes} at 0x${hex(at)}`);
  }

  /** Up to `len` code bytes at `a`, for reports: as many as translate for execution (none if the page is gone). */
  private peekCode(a: number, len: number): Uint8Array {
    const out = new Uint8Array(Math.max(0, Math.min(len, MAX_INSN_LENGTH)));
    const saved = this.faultAddr;
    let k = 0;
    try {
      for (; k < out.length; k++) {
        const f = this.platform.translate(Math.floor((a + k) / PAGE_SIZE), ACCESS_EXEC);
        if (f.mmio !== undefined) break;
        out[k] = f.bytes[(a + k) & PAGE_MASK] as number;
      }
    } catch (e) {
      if (!(e instanceof CpuException)) throw e;
    } finally {
      this.faultAddr = saved;
    }
    return out.subarray(0, k);
  }

  // ---- TLB maintenance (called by the platform on unmap/protect, and by paging later) ----

  /** Forgets the translations and decoded code of page `vpn`. */
  invalidatePage(vpn: number): void {
    const t = vpn & TLB_MASK, o = this.other;
    for (let k = t; k < TLB_ENTRIES; k += TLB_SIZE) {
      dropPageAt(this.rTag, this.rTagW, k, vpn);
      dropPageAt(this.wTag, this.wTagW, k, vpn);
      dropPageAt(o.rTag, o.rTagW, k, vpn);
      dropPageAt(o.wTag, o.wTagW, k, vpn);
    }
    if (this.xTag[t] === vpn) this.xTag[t] = NaN;
    if (this.other.xTag[t] === vpn) this.other.xTag[t] = NaN;
    const frame = this.codeFrameOf.get(vpn);
    if (frame !== undefined) {
      this.codeFrameOf.delete(vpn);
      this.dropCode(frame);
    }
  }

  private dropCode(frame: PageFrame): void {
    let dropped = false;
    for (const pages of this.codeCache.pages) {
      const ops = pages.get(frame);
      if (ops === undefined) continue;
      ops.clear();
      pages.delete(frame);
      dropped = true;
    }
    if (dropped) for (const c of this.codeCache.cpus) c.forgetCode();
  }

  /**
   * Forgets every translation, both privilege levels', but keeps decoded
   * code (it is keyed by frame and revalidated through translate):
   * INVLPG-wide flushes, CR3 writes, paging-mode changes.
   */
  flushTlb(): void {
    this.forgetTranslations();
    this.xTag.fill(NaN);
    this.other.xTag.fill(NaN);
    this.newCodeGeneration();
    this.codeDropped();
  }

  /**
   * A CR3 write: forgets every translation but the global ones (SDM Vol.
   * 3A, 4.10.4.1), both privilege levels'. Kernel pages (global under Linux)
   * then survive a context switch; the code generation moves on all the
   * same (chained regions are looked up again).
   */
  flushNonGlobal(): void {
    const o = this.other;
    const n = this.filledCount;
    this.filledCount = 0;
    if (n > FILLED_SETS) {
      dropNonGlobal(this.rTag, this.rTagW, this.rGlobal);
      dropNonGlobal(this.wTag, this.wTagW, this.wGlobal);
      dropNonGlobal(this.xTag, undefined, this.xGlobal);
      dropNonGlobal(o.rTag, o.rTagW, o.rGlobal);
      dropNonGlobal(o.wTag, o.wTagW, o.wGlobal);
      dropNonGlobal(o.xTag, undefined, o.xGlobal);
    } else {
      // Only the sets that took a non-global entry since the last CR3 write can hold one (Linux switches often: this
      // visits tens of sets where the scan above visits 10,240 entries).
      for (let k = 0; k < n; k++) {
        const t = this.filledSets[k] as number;
        for (let u = t; u < TLB_ENTRIES; u += TLB_SIZE) {
          dropNonGlobalAt(this.rTag, this.rTagW, this.rGlobal, u);
          dropNonGlobalAt(this.wTag, this.wTagW, this.wGlobal, u);
          dropNonGlobalAt(o.rTag, o.rTagW, o.rGlobal, u);
          dropNonGlobalAt(o.wTag, o.wTagW, o.wGlobal, u);
        }
        dropNonGlobalAt(this.xTag, undefined, this.xGlobal, t);
        dropNonGlobalAt(o.xTag, undefined, o.xGlobal, t);
      }
    }
    this.newCodeGeneration();
    this.codeDropped();
  }

  /** Lists set `t` as holding a non-global entry (flushNonGlobal), or notes that the list overflowed. */
  private filledNonGlobal(t: number): void {
    const n = this.filledCount;
    if (n < FILLED_SETS) this.filledSets[n] = t;
    if (n <= FILLED_SETS) this.filledCount = n + 1;
  }

  /** Empties both privilege levels' read and write TLBs. */
  private forgetTranslations(): void {
    for (const set of [this, this.other]) {
      set.rTag.fill(NaN);
      set.wTag.fill(NaN);
      set.rTagW.fill(NO_TAG_HI);
      set.wTagW.fill(NO_TAG_HI);
    }
  }

  /** Changes the decoding mode: code is looked up among the new mode's pages. */
  setMode(mode: DecodeMode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    this.code = this.codeCache.pages[mode] as Map<PageFrame, CodePage>;
    this.codeFrameOf.clear();
    this.forgetCode();
  }

  /** Forgets every translation and all decoded code (execve). */
  flushAll(): void {
    this.forgetTranslations();
    for (const pages of this.codeCache.pages) {
      for (const ops of pages.values()) ops.clear();
      pages.clear();
    }
    this.codeFrameOf.clear();
    for (const c of this.codeCache.cpus) c.forgetCode();
  }

  // ---- Memory access: linear address `a` is a signed canonical number ----

  /** The platform's translation of page `vpn` for a TLB fill, with `translatedGlobal` saying whether it is global. */
  private translate(vpn: number, access: number): PageFrame {
    this.translatedGlobal = false;
    return this.platform.translate(vpn, access);
  }

  /** Fills the read TLB for `a`; -1 for an MMIO page (never cached: every access reaches the device). */
  private rFill(a: number): number {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    // In way 1: swap it into way 0, where the inline checks look.
    if (this.rTag[t + TLB_SIZE] === vpn) {
      swapWays(this.rTag, this.rView, this.rBytes, this.rOff, this.rTagW, this.rGlobal, t);
      return t;
    }
    this.faultAddr = a;
    const f = this.translate(vpn, ACCESS_READ);
    if (f.mmio !== undefined) return -1;
    // Way 0's entry moves to way 1 (and way 1's leaves).
    swapWays(this.rTag, this.rView, this.rBytes, this.rOff, this.rTagW, this.rGlobal, t);
    this.rGlobal[t] = this.translatedGlobal ? 1 : 0;
    if (!this.translatedGlobal) this.filledNonGlobal(t);
    this.rTag[t] = vpn;
    this.rView[t] = f.view;
    this.rBytes[t] = f.bytes;
    this.rOff[t] = f.wasm ?? -1;
    tagW(this.rTagW, t, vpn, f.wasm);
    return t;
  }

  private wFill(a: number): number {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    // (An entry in either way was checked for decoded code when it was filled; forgetWritable drops both since.)
    if (this.wTag[t + TLB_SIZE] === vpn) {
      swapWays(this.wTag, this.wView, this.wBytes, this.wOff, this.wTagW, this.wGlobal, t);
      return t;
    }
    this.faultAddr = a;
    const f = this.translate(vpn, ACCESS_WRITE);
    if (f.mmio !== undefined) return -1;
    const global = this.translatedGlobal;
    // Self-modifying code: forget what was decoded from this page.
    if (this.codeCache.has(f)) this.dropCode(f);
    swapWays(this.wTag, this.wView, this.wBytes, this.wOff, this.wTagW, this.wGlobal, t);
    this.wGlobal[t] = global ? 1 : 0;
    if (!global) this.filledNonGlobal(t);
    this.wTag[t] = vpn;
    this.wView[t] = f.view;
    this.wBytes[t] = f.bytes;
    this.wOff[t] = f.wasm ?? -1;
    tagW(this.wTagW, t, vpn, f.wasm);
    return t;
  }

  // One accessor per width, each a TLB hit path small enough for V8 to inline into every
  // handler and compiled region, and a miss path it calls (page crossing,
  // TLB fill, MMIO, faults): inlining the miss paths too made compiled
  // regions several times larger.

  read8(a: number): number {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    if (this.rTag[t] === vpn) return (this.rBytes[t] as Uint8Array)[a & PAGE_MASK] as number;
    return this.read8Miss(a);
  }

  private read8Miss(a: number): number {
    const t = this.rFill(a);
    if (t < 0) return this.mmioRead(a, 1);
    return (this.rBytes[t] as Uint8Array)[a & PAGE_MASK] as number;
  }

  read16(a: number): number {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    const off = a & PAGE_MASK;
    if (this.rTag[t] === vpn && off <= PAGE_SIZE - 2) return (this.rView[t] as DataView).getUint16(off, true);
    return this.read16Miss(a);
  }

  private read16Miss(a: number): number {
    const off = a & PAGE_MASK;
    if (off > PAGE_SIZE - 2) return this.read8(a) | (this.read8(a + 1) << 8);
    const t = this.rFill(a);
    if (t < 0) return this.mmioRead(a, 2);
    return (this.rView[t] as DataView).getUint16(off, true);
  }

  /** As int32. */
  read32(a: number): number {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    const off = a & PAGE_MASK;
    if (this.rTag[t] === vpn && off <= PAGE_SIZE - 4) return (this.rView[t] as DataView).getInt32(off, true);
    return this.read32Miss(a);
  }

  private read32Miss(a: number): number {
    const off = a & PAGE_MASK;
    if (off > PAGE_SIZE - 4) return this.read16(a) | (this.read16(a + 2) << 16);
    const t = this.rFill(a);
    if (t < 0) return this.mmioRead(a, 4);
    return (this.rView[t] as DataView).getInt32(off, true);
  }

  /** Returns the low half; the high half is in `hi`. */
  read64(a: number): number {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    const off = a & PAGE_MASK;
    if (this.rTag[t] === vpn && off <= PAGE_SIZE - 8) {
      const v = this.rView[t] as DataView;
      this.hi = v.getInt32(off + 4, true);
      return v.getInt32(off, true);
    }
    return this.read64Miss(a);
  }

  private read64Miss(a: number): number {
    const off = a & PAGE_MASK;
    if (off > PAGE_SIZE - 8) {
      const lo = this.read32(a);
      this.hi = this.read32(a + 4);
      return lo;
    }
    const t = this.rFill(a);
    if (t < 0) return this.mmioRead(a, 8);
    const v = this.rView[t] as DataView;
    this.hi = v.getInt32(off + 4, true);
    return v.getInt32(off, true);
  }

  write8(a: number, value: number): void {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    if (this.wTag[t] === vpn) (this.wBytes[t] as Uint8Array)[a & PAGE_MASK] = value;
    else this.write8Miss(a, value);
  }

  private write8Miss(a: number, value: number): void {
    const t = this.wFill(a);
    if (t < 0) this.mmioWrite(a, 1, value, 0);
    else (this.wBytes[t] as Uint8Array)[a & PAGE_MASK] = value;
  }

  write16(a: number, value: number): void {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    const off = a & PAGE_MASK;
    if (this.wTag[t] === vpn && off <= PAGE_SIZE - 2) (this.wView[t] as DataView).setUint16(off, value, true);
    else this.write16Miss(a, value);
  }

  private write16Miss(a: number, value: number): void {
    const off = a & PAGE_MASK;
    if (off > PAGE_SIZE - 2) {
      this.probeWrite(a, 2);
      this.write8(a, value);
      this.write8(a + 1, value >> 8);
      return;
    }
    const t = this.wFill(a);
    if (t < 0) this.mmioWrite(a, 2, value, 0);
    else (this.wView[t] as DataView).setUint16(off, value, true);
  }

  write32(a: number, value: number): void {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    const off = a & PAGE_MASK;
    if (this.wTag[t] === vpn && off <= PAGE_SIZE - 4) (this.wView[t] as DataView).setInt32(off, value, true);
    else this.write32Miss(a, value);
  }

  private write32Miss(a: number, value: number): void {
    const off = a & PAGE_MASK;
    if (off > PAGE_SIZE - 4) {
      this.probeWrite(a, 4);
      this.write16(a, value);
      this.write16(a + 2, value >> 16);
      return;
    }
    const t = this.wFill(a);
    if (t < 0) this.mmioWrite(a, 4, value, 0);
    else (this.wView[t] as DataView).setInt32(off, value, true);
  }

  write64(a: number, lo: number, hi: number): void {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    const off = a & PAGE_MASK;
    if (this.wTag[t] === vpn && off <= PAGE_SIZE - 8) {
      const v = this.wView[t] as DataView;
      v.setInt32(off, lo, true);
      v.setInt32(off + 4, hi, true);
    } else this.write64Miss(a, lo, hi);
  }

  private write64Miss(a: number, lo: number, hi: number): void {
    const off = a & PAGE_MASK;
    if (off > PAGE_SIZE - 8) {
      this.probeWrite(a, 8);
      this.write32(a, lo);
      this.write32(a + 4, hi);
      return;
    }
    const t = this.wFill(a);
    if (t < 0) { this.mmioWrite(a, 8, lo, hi); return; }
    const v = this.wView[t] as DataView;
    v.setInt32(off, lo, true);
    v.setInt32(off + 4, hi, true);
  }

  /** An access to a page the platform reports as MMIO: `size` bytes to the device, no TLB entry. */
  private mmioRead(a: number, size: number): number {
    const f = this.platform.translate(Math.floor(a / PAGE_SIZE), ACCESS_READ);
    const data = this.mmioBuf.subarray(0, size);
    data.fill(0);
    this.platform.mmio?.((f.mmio ?? 0) + (a & PAGE_MASK), data, false);
    const v = this.mmioView;
    switch (size) {
      case 8: this.hi = v.getInt32(4, true); return v.getInt32(0, true);
      case 4: return v.getInt32(0, true);
      case 2: return v.getUint16(0, true);
      default: return v.getUint8(0);
    }
  }

  private mmioWrite(a: number, size: number, lo: number, hi: number): void {
    const f = this.platform.translate(Math.floor(a / PAGE_SIZE), ACCESS_WRITE);
    const v = this.mmioView;
    v.setInt32(0, lo, true);
    v.setInt32(4, hi, true);
    this.platform.mmio?.((f.mmio ?? 0) + (a & PAGE_MASK), this.mmioBuf.subarray(0, size), true);
  }

  /** The frame behind linear `a` for reading, through the TLB (filling it, faulting as a read would); undefined for MMIO. */
  readFrame(a: number): Uint8Array | undefined {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    if (this.rTag[t] === vpn) return this.rBytes[t];
    const k = this.rFill(a);
    return k < 0 ? undefined : this.rBytes[k];
  }

  /** The frame behind linear `a` for writing (decoded code there dropped, as for any write); undefined for MMIO. */
  writeFrame(a: number): Uint8Array | undefined {
    const vpn = Math.floor(a / PAGE_SIZE);
    const t = vpn & TLB_MASK;
    if (this.wTag[t] === vpn) return this.wBytes[t];
    const k = this.wFill(a);
    return k < 0 ? undefined : this.wBytes[k];
  }

  /**
   * Faults before a multi-part write changes anything (writes are
   * all-or-nothing). Pages already in the write TLB are writable: no
   * translation (SSE stores probe every 16-byte write).
   */
  probeWrite(a: number, len: number): void {
    const vpn = Math.floor(a / PAGE_SIZE);
    if (this.wTag[vpn & TLB_MASK] !== vpn) this.wFill(a);
    const last = a + len - 1;
    const vpn2 = Math.floor(last / PAGE_SIZE);
    if (vpn2 !== vpn && this.wTag[vpn2 & TLB_MASK] !== vpn2) this.wFill(last);
  }

  /** Checks that [a, a+len) is readable before a multi-part read. */
  probeRead(a: number, len: number): void {
    const vpn = Math.floor(a / PAGE_SIZE);
    if (this.rTag[vpn & TLB_MASK] !== vpn) this.rFill(a);
    const last = a + len - 1;
    const vpn2 = Math.floor(last / PAGE_SIZE);
    if (vpn2 !== vpn && this.rTag[vpn2 & TLB_MASK] !== vpn2) this.rFill(last);
  }
}

export function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}
