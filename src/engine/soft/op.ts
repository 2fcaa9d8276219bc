/**
 * A decoded instruction as the interpreter caches it: the decoder's record
 * plus what execution needs without looking anything up again.
 */
import { Instruction } from './decode/index.js';
import type { Block } from './block.js';
import type { Cpu } from './cpu.js';

/** Executes one instruction. Sets cpu.nextRip to branch; throws CpuException to fault. */
export type Handler = (c: Cpu, i: Op) => void;

export class Op extends Instruction {
  /** The handler bound by the table's handler name. */
  fn: Handler = noHandler;
  /** Memory displacement as a signed number (moffs: the full 64-bit offset). */
  dispVal = 0;
  /** Linear address the instruction was decoded at. */
  address = 0;
  /** Its form may change control flow: a block (block.ts) ends after it. */
  endsBlock = false;
  /**
   * 2 × opReg[0] and 2 × opReg[1]: the operands' GPR pair indices as plain
   * fields, so specialised handlers (ops/fast.ts) read the Op alone and not
   * its Int32Array (one dependent load, often a cache miss, fewer).
   */
  r0 = 0;
  r1 = 0;
  /** opKind[0], opKind[1], opReg[0], opReg[1] as plain fields, for the generic operand access (operands.ts rd/wr). */
  kind0 = 0;
  kind1 = 0;
  reg0 = 0;
  reg1 = 0;
  /** Arrivals of control here after a branch, until a block starting here is built (block.ts jit.after). */
  heat = 0;
  /** The block starting here once it was built (compiled, or cpu.ts NO_BLOCK when not worth it). */
  block: Block | undefined = undefined;
  /** The instruction's bytes (for reports of unimplemented forms). */
  bytes: Uint8Array = EMPTY;
}

const EMPTY = new Uint8Array(0);

function noHandler(): void {
  throw new Error('instruction without a bound handler');
}
