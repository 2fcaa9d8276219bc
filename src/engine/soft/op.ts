/**
 * A decoded instruction as the interpreter caches it: the fields of the
 * decoder's record that execution reads, plus what the run loop needs
 * without looking anything up again.
 *
 * Laid out for the cache, because the run loop and the handlers touch one
 * Op per instruction executed and a busy guest's working set is thousands
 * of them. Every field is a number or a reference set in declaration order,
 * so V8 gives all Ops one hidden class with the fields in that order: the
 * run loop's fields come first, then the operands, then what only slow
 * paths read. No typed arrays or byte copies hang off an Op (an earlier
 * layout with three Int32Arrays and a copy of the bytes per Op spent more
 * memory on them than on the Ops, and each was another cache miss); the
 * bytes are read back from guest memory for the rare report that shows them.
 */
import type { Instruction } from './decode/index.js';
import type { Block } from './block.js';
import type { Cpu } from './cpu.js';

/** Executes one instruction. Sets cpu.nextRip to branch; throws CpuException to fault. */
export type Handler = (c: Cpu, i: Op) => void;

export class Op {
  // ---- The run loop's ----
  /** The handler bound by the table's handler name. */
  fn: Handler = noHandler;
  /** Bytes the instruction takes. */
  length = 0;
  /**
   * The instruction right after this one in the same code page, once the run
   * loop has followed the fall-through once: it then skips the page lookup.
   * Dropping a page's code drops every Op in it, links included.
   */
  next: Op | undefined = undefined;
  /**
   * Where control went last time it branched from here within the page (page
   * offset, -1: nowhere yet) and the Op there: a one-entry cache for the
   * page lookup of the branch target, checked by offset (indirect branches
   * change targets).
   */
  jumpOff = -1;
  jump: Op | undefined = undefined;
  /** Its form may change control flow: a block (block.ts) ends after it. */
  endsBlock = false;
  /** Arrivals of control here after a branch, until a block starting here is built (block.ts jit.after). */
  heat = 0;
  /** The block starting here once it was built (compiled, or cpu.ts NO_BLOCK when not worth it). */
  block: Block | undefined = undefined;

  // ---- Operands 0 and 1 (instruction.ts OP_*, register numbers, sizes in bytes) ----
  /** 2 × reg0 and 2 × reg1: the GPR pair indices in cpu.gpr, for the specialised handlers (ops/fast.ts). */
  r0 = 0;
  r1 = 0;
  kind0 = 0;
  kind1 = 0;
  reg0 = 0;
  reg1 = 0;
  size0 = 0;
  size1 = 0;
  /** Operand-size and address-size attributes in bytes. */
  osize = 4;
  asize = 8;

  // ---- The memory operand and immediates ----
  segment = 0;
  base = -1;
  index = -1;
  scale = 0;
  /** Memory displacement as a signed number (moffs: the full 64-bit offset). */
  dispVal = 0;
  imm = 0;
  immHi = 0;
  imm2 = 0;

  // ---- The rest of the decoder's record ----
  nops = 0;
  kind2 = 0;
  kind3 = 0;
  reg2 = 0;
  reg3 = 0;
  size2 = 0;
  size3 = 0;
  form = -1;
  handler = -1;
  mode = 0;
  prefixes = 0;
  opcode = 0;
  modrm = -1;
  disp = 0;
  dispHi = 0;
  dispBytes = 0;

  /** Copies what execution reads from a decoded record (status OK). */
  static from(d: Instruction): Op {
    const op = new Op();
    op.length = d.length;
    const k = d.opKind, r = d.opReg, s = d.opSize;
    const n = d.nops;
    op.nops = n;
    // Entries past nops are stale in the decoder's record: zero them here.
    op.kind0 = n > 0 ? k[0] as number : 0;
    op.kind1 = n > 1 ? k[1] as number : 0;
    op.kind2 = n > 2 ? k[2] as number : 0;
    op.kind3 = n > 3 ? k[3] as number : 0;
    op.reg0 = n > 0 ? r[0] as number : 0;
    op.reg1 = n > 1 ? r[1] as number : 0;
    op.reg2 = n > 2 ? r[2] as number : 0;
    op.reg3 = n > 3 ? r[3] as number : 0;
    op.size0 = n > 0 ? s[0] as number : 0;
    op.size1 = n > 1 ? s[1] as number : 0;
    op.size2 = n > 2 ? s[2] as number : 0;
    op.size3 = n > 3 ? s[3] as number : 0;
    op.r0 = 2 * op.reg0;
    op.r1 = 2 * op.reg1;
    op.osize = d.osize;
    op.asize = d.asize;
    op.segment = d.segment;
    op.base = d.base;
    op.index = d.index;
    op.scale = d.scale;
    op.dispVal = d.dispBytes === 8 ? d.dispHi * 4294967296 + (d.disp >>> 0) : d.disp;
    op.imm = d.imm;
    op.immHi = d.immHi;
    op.imm2 = d.imm2;
    op.form = d.form;
    op.handler = d.handler;
    op.mode = d.mode;
    op.prefixes = d.prefixes;
    op.opcode = d.opcode;
    op.modrm = d.modrm;
    op.disp = d.disp;
    op.dispHi = d.dispHi;
    op.dispBytes = d.dispBytes;
    return op;
  }
}

/** Operand n's kind (OP_*). */
export function opKind(i: Op, n: number): number {
  return n === 0 ? i.kind0 : n === 1 ? i.kind1 : n === 2 ? i.kind2 : n === 3 ? i.kind3 : 0;
}

/** Operand n's register number. */
export function opReg(i: Op, n: number): number {
  return n === 0 ? i.reg0 : n === 1 ? i.reg1 : n === 2 ? i.reg2 : n === 3 ? i.reg3 : 0;
}

/** Operand n's size in bytes (0: unsized). */
export function opSize(i: Op, n: number): number {
  return n === 0 ? i.size0 : n === 1 ? i.size1 : n === 2 ? i.size2 : n === 3 ? i.size3 : 0;
}

function noHandler(): void {
  throw new Error('instruction without a bound handler');
}
