/**
 * Conditions computed in wasm from the flag record a region stored in the
 * scratch block: one small module per machine memory whose function every
 * region imports (a wasm-to-wasm call, where a condition with no producer
 * in its own basic block used to call into JS). A switch compiles to
 * `cmp al, 'x'; je …` blocks whose fall-through tests the same record with
 * `jb`: hundreds of such conditions per pass through a shell's parser.
 *
 * The same module sets CF (and OF) in such a record for BT and the rotates
 * (`co`, the engine's setCarryOverflow): the record becomes an LF_CO one.
 *
 * Covered: records of ADD, SUB, AND/OR/XOR/TEST, INC, DEC and the CF/OF
 * records of shifts, rotates and IMUL (LF_CO), at every size. The rest
 * (ADC/SBB, a record only the Cpu holds: after a handler or an exit) goes to
 * the engine through the fallbacks.
 */
import { FLAG_AF, FLAG_CF, LF_ADC, LF_ADD, LF_CO, LF_DEC, LF_INC, LF_LOGIC, LF_SBB, LF_SUB } from '../state.js';
import { wasmApi, type WasmMemory } from '../../../memory/index.js';
import { Code, encodeModule, I32, I64, Op as W } from './encode.js';
import { S_DIRTY, S_LF_AUX, S_LF_DST, S_LF_OP, S_LF_RES, S_LF_SIZE, S_LF_SRC } from './emitter.js';

/** cond(st, cc): condition cc (0-15) of the flag record of the state block at `st`, as 0 or 1. */
export type CondFn = (st: number, cc: number) => number;
/** co(st, mask, bits): the flags of `mask` (CF, OF) in the record at `st` become those of `bits`. */
export type CarryFn = (st: number, mask: number, bits: number) => void;

/** The helper's functions. */
export interface FlagHelper { readonly cond: CondFn; readonly co: CarryFn }

/** The function types of the helper (and of the fallbacks it imports). */
export const COND_TYPE = { params: [I32, I32], results: [I32] } as const;
export const CARRY_TYPE = { params: [I32, I32, I32], results: [] } as const;

/**
 * The locals a helper function decodes a record into (parameter 0 is the
 * state block), and the code that does: `other` runs (and must leave the
 * function) when the record is not one computed here.
 */
class Record {
  readonly OP: number; readonly D: number; readonly S: number; readonly R: number;
  readonly CF: number; readonly OF: number; readonly AF: number; private readonly SH: number;
  constructor(readonly c: Code) {
    this.OP = c.local(I32); this.D = c.local(I64); this.S = c.local(I64); this.R = c.local(I64);
    this.CF = c.local(I32); this.OF = c.local(I32); this.AF = c.local(I32); this.SH = c.local(I64);
  }

  /** Decodes the record at parameter 0 into the locals: CF and OF as 0/1, AF as FLAG_AF or 0 (with `af`). */
  decode(other: () => void, af: boolean): void {
    const { c, OP, D, S, R, CF, OF, AF, SH } = this;
    const ST = 0;
    // Not newer than the Cpu's record, or not one of the kinds computed here: the engine.
    c.get(ST).mem(W.i32Load, S_DIRTY).op(W.i32Eqz).open(W.if, 'old');
    other();
    c.close('old');
    c.get(ST).mem(W.i32Load, S_LF_OP).tee(OP).i32(1).op(W.i32Sub).i32(LF_CO - 1).op(W.i32GtU);
    c.get(OP).i32(LF_ADC).op(W.i32Eq).op(W.i32Or).get(OP).i32(LF_SBB).op(W.i32Eq).op(W.i32Or);
    c.open(W.if, 'other');
    other();
    c.close('other');
    // Operands shifted up so that the size's sign bit is bit 63: sums, differences and comparisons then hold at 64 bits.
    c.i32(64).get(ST).mem(W.i32Load, S_LF_SIZE).i32(3).op(W.i32Shl).op(W.i32Sub).op(W.i64ExtendI32U).set(SH);
    const load = (offset: number, l: number): void => { c.get(ST).mem(W.i64Load, offset).get(SH).op(W.i64Shl).set(l); };
    load(S_LF_DST, D); load(S_LF_SRC, S); load(S_LF_RES, R);
    const sum = (): void => { c.get(D).get(R).op(W.i64Xor).get(S).get(R).op(W.i64Xor).op(W.i64And).i64(0, 0).op(W.i64LtS); };
    const difference = (): void => { c.get(D).get(S).op(W.i64Xor).get(D).get(R).op(W.i64Xor).op(W.i64And).i64(0, 0).op(W.i64LtS); };
    const aux = (): void => { c.get(ST).mem(W.i32Load, S_LF_AUX); };
    const auxCf = (): void => { aux(); c.i32(FLAG_CF).op(W.i32And).set(CF); };
    // CF and OF by kind.
    c.get(OP).i32(LF_ADD).op(W.i32Eq).open(W.if, 'add');
    c.get(R).get(D).op(W.i64LtU).set(CF); sum(); c.set(OF);
    c.else('add');
    c.get(OP).i32(LF_SUB).op(W.i32Eq).open(W.if, 'sub');
    c.get(D).get(S).op(W.i64LtU).set(CF); difference(); c.set(OF);
    c.else('sub');
    c.get(OP).i32(LF_INC).op(W.i32Eq).open(W.if, 'inc');
    auxCf(); sum(); c.set(OF);
    c.else('inc');
    c.get(OP).i32(LF_DEC).op(W.i32Eq).open(W.if, 'dec');
    auxCf(); difference(); c.set(OF);
    c.else('dec');
    c.get(OP).i32(LF_CO).op(W.i32Eq).open(W.if, 'co');
    auxCf(); aux(); c.i32(11).op(W.i32ShrU).i32(1).op(W.i32And).set(OF);
    c.close('co').close('dec').close('inc').close('sub').close('add');
    // (LOGIC: CF and OF stay 0, the locals' initial value.)
    if (!af) return;
    // AF: from the operands of an arithmetic record, kept in an LF_CO one, 0 after a logic one.
    c.get(OP).i32(LF_CO).op(W.i32Eq).open(W.if, 'kept');
    aux(); c.i32(FLAG_AF).op(W.i32And).set(AF);
    c.else('kept');
    c.get(OP).i32(LF_LOGIC).op(W.i32Ne).open(W.if, 'arith');
    for (const at of [S_LF_DST, S_LF_SRC, S_LF_RES]) c.get(ST).mem(W.i32Load, at);
    c.op(W.i32Xor).op(W.i32Xor).i32(FLAG_AF).op(W.i32And).set(AF);
    c.close('arith').close('kept');
  }
}

/** cond(st, cc), function 2 of the module (0 and 1 are the fallbacks). */
function condition(): Code {
  const c = new Code(2);
  const ST = 0, CC = 1;
  const f = new Record(c);
  const { CF, OF, R } = f;
  f.decode(() => { c.get(ST).get(CC).call(0).op(W.return); }, false);
  const zf = (): void => { c.get(R).op(W.i64Eqz); };
  const sf = (): void => { c.get(R).i64(0, 0).op(W.i64LtS); };
  const pf = (): void => { c.get(ST).mem(W.i32Load, S_LF_RES).i32(0xff).op(W.i32And).op(W.i32Popcnt).i32(1).op(W.i32And).op(W.i32Eqz); };
  const cases: (() => void)[] = [
    () => c.get(OF),
    () => c.get(CF),
    zf,
    () => { c.get(CF); zf(); c.op(W.i32Or); },
    sf,
    pf,
    () => { sf(); c.get(OF).op(W.i32Xor); },
    () => { sf(); c.get(OF).op(W.i32Xor); zf(); c.op(W.i32Or); },
  ];
  const labels = cases.map((_, k) => `c${k}`);
  c.open(W.block, 'value', I32);
  for (let k = cases.length - 1; k >= 0; k--) c.open(W.block, labels[k] as string);
  c.get(CC).i32(1).op(W.i32ShrU).brTable(labels, 'c7');
  cases.forEach((g, k) => {
    c.close(labels[k] as string);
    g();
    c.br('value');
  });
  c.close('value');
  c.get(CC).i32(1).op(W.i32And).op(W.i32Xor);
  return c;
}

/**
 * co(st, mask, bits), function 3: as the engine's setCarryOverflow, the
 * record becomes LF_CO with its result (ZF, SF, PF), AF, and CF and OF from
 * `bits` where `mask` has them, from the record where it does not.
 */
function carryOverflow(): Code {
  const c = new Code(3);
  const ST = 0, MASK = 1, BITS = 2;
  const f = new Record(c);
  f.decode(() => { c.get(ST).get(MASK).get(BITS).call(1).op(W.return); }, true);
  c.get(ST);
  c.get(f.CF).get(f.OF).i32(11).op(W.i32Shl).op(W.i32Or).get(f.AF).op(W.i32Or);
  c.get(MASK).i32(-1).op(W.i32Xor).op(W.i32And);
  c.get(BITS).get(MASK).op(W.i32And).op(W.i32Or);
  c.mem(W.i32Store, S_LF_AUX);
  c.get(ST).i32(LF_CO).mem(W.i32Store, S_LF_OP);
  return c;
}

/**
 * Builds the helper over `memory`; the fallbacks answer what the scratch
 * record cannot (it is not newer than the Cpu's, or ADC/SBB).
 */
export function flagHelper(memory: WasmMemory, fallback: { cond: CondFn; co: CarryFn }): FlagHelper {
  const bytes = encodeModule({
    types: [COND_TYPE, CARRY_TYPE],
    imports: [
      { module: 'e', name: 'cond', kind: 'func', type: 0 },
      { module: 'e', name: 'co', kind: 'func', type: 1 },
      { module: 'e', name: 'mem', kind: 'memory', min: 0, max: 65536, shared: true },
    ],
    functions: [{ type: 0, code: condition() }, { type: 1, code: carryOverflow() }],
    exports: [{ name: 'cond', func: 2 }, { name: 'co', func: 3 }],
  });
  const e = new wasmApi.Instance(new wasmApi.Module(bytes), { e: { ...fallback, mem: memory } }).exports;
  return { cond: e.cond as CondFn, co: e.co as CarryFn };
}
