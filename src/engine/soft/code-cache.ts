/**
 * Decoded instructions kept for reuse: per page frame and decoding mode,
 * shared by a machine's vCPUs (cpu.ts looks code up here and drops it when
 * its frame is written).
 */
import type { Cpu } from './cpu.js';
import { PAGE_SIZE, type PageFrame } from './mmu.js';
import type { Op } from './op.js';

/**
 * The decoded code of one page frame in one decoding mode: instructions by
 * page offset. A block's heat and compiled code live on the Op where it
 * starts (Op.heat, Op.block), not in per-page arrays beside this one: the
 * run loop then touches one sparse 32 KiB array per page instead of three,
 * and in branchy code those loads were cache misses (measured: README.md, Speed).
 */
export class CodePage {
  readonly ops: (Op | undefined)[] = new Array<Op | undefined>(PAGE_SIZE).fill(undefined);
  /**
   * The last instruction decoded across this page's end (offset `tailOff`),
   * valid while the page that follows it is `tailPage`: the code of the frame
   * mapped after it when it was decoded (a write to that frame, or another
   * frame mapped there, makes it a different CodePage).
   */
  tailOp: Op | undefined = undefined;
  tailOff = -1;
  tailPage: CodePage | undefined = undefined;

  constructor(readonly frame: PageFrame) {}

  clear(): void {
    this.ops.fill(undefined);
    this.tailOp = undefined;
    this.tailPage = undefined;
    this.tailOff = -1;
  }
}

/**
 * Decoded code shared by the vCPUs of one machine: per decoding mode, by
 * page frame (= physical page). A write through any alias on any vCPU drops
 * the frame's code everywhere (Linux patches its text on one CPU while the
 * others run it); each mode has its own pages, so an AP decoding its
 * trampoline in real mode never shares instructions with 64-bit code.
 */
export class CodeCache {
  /** Indexed by DecodeMode. */
  readonly pages: Map<PageFrame, CodePage>[] = [new Map(), new Map(), new Map()];
  readonly cpus: Cpu[] = [];

  has(frame: PageFrame): boolean {
    const p = this.pages;
    return (p[0] as Map<PageFrame, CodePage>).has(frame) || (p[1] as Map<PageFrame, CodePage>).has(frame) || (p[2] as Map<PageFrame, CodePage>).has(frame);
  }

  /** Pages with decoded code, all modes. */
  get size(): number {
    return this.pages.reduce((n, m) => n + m.size, 0);
  }
}
