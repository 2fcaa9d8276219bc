/**
 * A small WebAssembly binary encoder: what a back end that turns guest code
 * into wasm functions needs, and nothing else (core spec 1.0 plus
 * sign-extension, shared memory imports, tail calls and the fixed-width
 * SIMD instructions).
 *
 * Written by hand: the npm encoders are either assemblers of the text
 * format (wabt: a 3 MB build, parses text) or general IR toolkits
 * (binaryen: a 10 MB compiler); a region is emitted thousands of times per
 * boot and must cost microseconds, so the encoder writes bytes straight
 * into one growing buffer and resolves branch labels by name as it goes.
 */

export const I32 = 0x7f;
export const I64 = 0x7e;
export const F64 = 0x7c;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof I64 | typeof F64 | typeof V128;
/** Block type of a block without results. */
export const VOID = 0x40;

/** Opcodes (core spec 5.4), by the spec's names in camel case. */
export const Op = {
  unreachable: 0x00, nop: 0x01, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b,
  br: 0x0c, brIf: 0x0d, brTable: 0x0e, return: 0x0f, call: 0x10, callIndirect: 0x11, returnCallIndirect: 0x13, drop: 0x1a, select: 0x1b,
  localGet: 0x20, localSet: 0x21, localTee: 0x22,
  i32Load: 0x28, i64Load: 0x29, f64Load: 0x2b, i32Load8S: 0x2c, i32Load8U: 0x2d, i32Load16S: 0x2e, i32Load16U: 0x2f,
  i64Load8S: 0x30, i64Load8U: 0x31, i64Load16S: 0x32, i64Load16U: 0x33, i64Load32S: 0x34, i64Load32U: 0x35,
  i32Store: 0x36, i64Store: 0x37, f64Store: 0x39, i32Store8: 0x3a, i32Store16: 0x3b, i64Store8: 0x3c, i64Store16: 0x3d, i64Store32: 0x3e,
  i32Const: 0x41, i64Const: 0x42, f64Const: 0x44,
  i32Eqz: 0x45, i32Eq: 0x46, i32Ne: 0x47, i32LtS: 0x48, i32LtU: 0x49, i32GtS: 0x4a, i32GtU: 0x4b, i32LeS: 0x4c, i32LeU: 0x4d, i32GeS: 0x4e, i32GeU: 0x4f,
  i64Eqz: 0x50, i64Eq: 0x51, i64Ne: 0x52, i64LtS: 0x53, i64LtU: 0x54, i64GtS: 0x55, i64GtU: 0x56, i64LeS: 0x57, i64LeU: 0x58, i64GeS: 0x59, i64GeU: 0x5a,
  f64Eq: 0x61, f64Ne: 0x62,
  i32Clz: 0x67, i32Ctz: 0x68, i32Popcnt: 0x69, i32Add: 0x6a, i32Sub: 0x6b, i32Mul: 0x6c,
  i32And: 0x71, i32Or: 0x72, i32Xor: 0x73, i32Shl: 0x74, i32ShrS: 0x75, i32ShrU: 0x76, i32Rotl: 0x77, i32Rotr: 0x78,
  i64Clz: 0x79, i64Ctz: 0x7a, i64Popcnt: 0x7b, i64Add: 0x7c, i64Sub: 0x7d, i64Mul: 0x7e, i64DivS: 0x7f, i64DivU: 0x80, i64RemS: 0x81, i64RemU: 0x82,
  i64And: 0x83, i64Or: 0x84, i64Xor: 0x85, i64Shl: 0x86, i64ShrS: 0x87, i64ShrU: 0x88, i64Rotl: 0x89, i64Rotr: 0x8a,
  f64Add: 0xa0, i32WrapI64: 0xa7, i64TruncF64S: 0xb0, i64ExtendI32S: 0xac, i64ExtendI32U: 0xad, f64ConvertI32S: 0xb7, f64ConvertI64S: 0xb9,
  i32Extend8S: 0xc0, i32Extend16S: 0xc1, i64Extend8S: 0xc2, i64Extend16S: 0xc3, i64Extend32S: 0xc4,
} as const;

/**
 * SIMD opcodes (the 0xfd prefix, then this number as a u32), by the spec's
 * names in camel case; the integer forms an x86 SSE2 lowering uses.
 */
export const Simd = {
  v128Load: 0x00, v128Store: 0x0b, v128Const: 0x0c, i8x16Shuffle: 0x0d, i8x16Swizzle: 0x0e,
  i8x16Splat: 0x0f, i16x8Splat: 0x10, i32x4Splat: 0x11, i64x2Splat: 0x12,
  i32x4ExtractLane: 0x1b, i32x4ReplaceLane: 0x1c, i64x2ExtractLane: 0x1d, i64x2ReplaceLane: 0x1e,
  i8x16Eq: 0x23, i8x16GtS: 0x27, i16x8Eq: 0x2d, i16x8GtS: 0x31, i32x4Eq: 0x37, i32x4GtS: 0x3b,
  v128Not: 0x4d, v128And: 0x4e, v128AndNot: 0x4f, v128Or: 0x50, v128Xor: 0x51, v128AnyTrue: 0x53,
  v128Load32Zero: 0x5c, v128Load64Zero: 0x5d,
  i8x16Bitmask: 0x64, i8x16Add: 0x6e, i8x16AddSatS: 0x6f, i8x16AddSatU: 0x70, i8x16Sub: 0x71, i8x16SubSatS: 0x72, i8x16SubSatU: 0x73,
  i8x16MinU: 0x77, i8x16MaxU: 0x79, i8x16AvgrU: 0x7b,
  i16x8Shl: 0x8b, i16x8ShrS: 0x8c, i16x8ShrU: 0x8d, i16x8Add: 0x8e, i16x8AddSatS: 0x8f, i16x8AddSatU: 0x90,
  i16x8Sub: 0x91, i16x8SubSatS: 0x92, i16x8SubSatU: 0x93, i16x8Mul: 0x95, i16x8MinS: 0x96, i16x8MaxS: 0x98, i16x8AvgrU: 0x9b,
  i32x4Bitmask: 0xa4, i32x4Shl: 0xab, i32x4ShrS: 0xac, i32x4ShrU: 0xad, i32x4Add: 0xae, i32x4Sub: 0xb1,
  i64x2Bitmask: 0xc4, i64x2Shl: 0xcb, i64x2ShrU: 0xcd, i64x2Add: 0xce, i64x2Sub: 0xd1,
} as const;
/** The SIMD loads and stores, with their natural alignment (log2 bytes). */
const SIMD_ALIGN: Readonly<Record<number, number>> = { [Simd.v128Load]: 4, [Simd.v128Store]: 4, [Simd.v128Load32Zero]: 2, [Simd.v128Load64Zero]: 3 };
/** The lane operators, with their lane count. */
const SIMD_LANES: Readonly<Record<number, number>> = {
  [Simd.i32x4ExtractLane]: 4, [Simd.i32x4ReplaceLane]: 4, [Simd.i64x2ExtractLane]: 2, [Simd.i64x2ReplaceLane]: 2,
};
const SIMD_PREFIX = 0xfd;

/** Natural alignment (log2 bytes) of each load and store, for its memarg. */
const ALIGN: Readonly<Record<number, number>> = {
  [Op.i32Load]: 2, [Op.i64Load]: 3, [Op.f64Load]: 3, [Op.i32Load8S]: 0, [Op.i32Load8U]: 0, [Op.i32Load16S]: 1, [Op.i32Load16U]: 1,
  [Op.i64Load8S]: 0, [Op.i64Load8U]: 0, [Op.i64Load16S]: 1, [Op.i64Load16U]: 1, [Op.i64Load32S]: 2, [Op.i64Load32U]: 2,
  [Op.i32Store]: 2, [Op.i64Store]: 3, [Op.f64Store]: 3, [Op.i32Store8]: 0, [Op.i32Store16]: 1, [Op.i64Store8]: 0, [Op.i64Store16]: 1, [Op.i64Store32]: 2,
};

const F64_SCRATCH = new Float64Array(1);
const F64_BYTES = new Uint8Array(F64_SCRATCH.buffer);

export class EncodeError extends Error {
  override name = 'EncodeError';
}

/** A growing byte buffer with the spec's integer encodings. */
export class Bytes {
  private buf = new Uint8Array(256);
  length = 0;

  byte(b: number): this {
    if (this.length === this.buf.length) this.grow(1);
    this.buf[this.length++] = b;
    return this;
  }

  append(b: ArrayLike<number> | Bytes): this {
    const src = b instanceof Bytes ? b.view() : b;
    this.grow(src.length);
    this.buf.set(src, this.length);
    this.length += src.length;
    return this;
  }

  /** Unsigned LEB128 of an integer in [0, 2^32). */
  u32(n: number): this {
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new EncodeError(`not a u32: ${n}`);
    let v = n >>> 0;
    for (;;) {
      const b = v & 0x7f;
      v >>>= 7;
      if (v === 0) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  /** Signed LEB128 of an integer in [-2^31, 2^31). */
  s32(n: number): this {
    if (!Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) throw new EncodeError(`not an s32: ${n}`);
    let v = n | 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  /** Signed LEB128 of the 64-bit value hi:lo (two int32 halves, as the soft engine holds registers). */
  s64(lo: number, hi: number): this {
    // Seven bits at a time from the 64-bit two's complement value; stop once the rest is all sign.
    let l = lo >>> 0, h = hi | 0;
    for (;;) {
      const b = l & 0x7f;
      l = ((l >>> 7) | (h << 25)) >>> 0;
      h >>= 7;
      const done = (h === 0 && l === 0 && (b & 0x40) === 0) || (h === -1 && l === 0xffffffff && (b & 0x40) !== 0);
      if (done) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  /** The bytes written so far (a view, valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  private grow(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.view());
    this.buf = next;
  }
}

/**
 * One function body: instructions with structured control flow whose
 * branch targets are named labels (the depth is worked out here, so emitters
 * cannot miscount), locals declared as they are needed.
 */
export class Code {
  readonly bytes = new Bytes();
  private readonly labels: string[] = [];
  private readonly locals: ValType[] = [];

  /** `params` are locals 0..n-1; further locals come from `local()`. */
  constructor(private readonly params: number) {}

  /** A new local of type `t`; returns its index. */
  local(t: ValType): number {
    this.locals.push(t);
    return this.params + this.locals.length - 1;
  }

  op(o: number): this {
    this.bytes.byte(o);
    return this;
  }

  get(l: number): this {
    this.bytes.byte(Op.localGet).u32(l);
    return this;
  }

  set(l: number): this {
    this.bytes.byte(Op.localSet).u32(l);
    return this;
  }

  tee(l: number): this {
    this.bytes.byte(Op.localTee).u32(l);
    return this;
  }

  i32(n: number): this {
    this.bytes.byte(Op.i32Const).s32(n | 0);
    return this;
  }

  /** i64.const hi:lo; `i64n` takes a safe integer or a bigint. */
  i64(lo: number, hi: number): this {
    this.bytes.byte(Op.i64Const).s64(lo, hi);
    return this;
  }

  f64(v: number): this {
    F64_SCRATCH[0] = v;
    this.bytes.byte(Op.f64Const).append(F64_BYTES);
    return this;
  }

  i64n(v: number | bigint): this {
    const b = BigInt.asIntN(64, BigInt(v));
    return this.i64(Number(BigInt.asIntN(32, b)), Number(b >> 32n));
  }

  /** A load or store with its natural alignment and a constant offset. */
  mem(o: number, offset: number): this {
    const align = ALIGN[o];
    if (align === undefined) throw new EncodeError(`0x${o.toString(16)} is not a load or store`);
    this.bytes.byte(o).u32(align).u32(offset);
    return this;
  }

  /** A SIMD operator without immediates. */
  simd(o: number): this {
    if (SIMD_ALIGN[o] !== undefined || SIMD_LANES[o] !== undefined || o === Simd.v128Const || o === Simd.i8x16Shuffle) throw new EncodeError(`SIMD 0x${o.toString(16)} takes immediates`);
    this.bytes.byte(SIMD_PREFIX).u32(o);
    return this;
  }

  /** A SIMD load or store with its natural alignment and a constant offset. */
  simdMem(o: number, offset: number): this {
    const align = SIMD_ALIGN[o];
    if (align === undefined) throw new EncodeError(`SIMD 0x${o.toString(16)} is not a load or store`);
    this.bytes.byte(SIMD_PREFIX).u32(o).u32(align).u32(offset);
    return this;
  }

  /** A SIMD extract or replace of lane `lane`. */
  simdLane(o: number, lane: number): this {
    const n = SIMD_LANES[o];
    if (n === undefined) throw new EncodeError(`SIMD 0x${o.toString(16)} is not a lane operator`);
    if (!Number.isInteger(lane) || lane < 0 || lane >= n) throw new EncodeError(`lane ${lane} of ${n}`);
    this.bytes.byte(SIMD_PREFIX).u32(o).byte(lane);
    return this;
  }

  /** v128.const of 16 bytes (lane 0 first). */
  v128(bytes: readonly number[]): this {
    if (bytes.length !== 16) throw new EncodeError(`v128.const takes 16 bytes, not ${bytes.length}`);
    this.bytes.byte(SIMD_PREFIX).u32(Simd.v128Const).append(bytes.map((b) => b & 0xff));
    return this;
  }

  /** memory.copy (dst, src, n on the stack) within memory 0: as memmove. */
  memoryCopy(): this {
    this.bytes.byte(0xfc).u32(10).byte(0).byte(0);
    return this;
  }

  /** memory.fill (dst, byte, n on the stack) of memory 0. */
  memoryFill(): this {
    this.bytes.byte(0xfc).u32(11).byte(0);
    return this;
  }

  /** i8x16.shuffle: result byte k is byte lanes[k] of the two operands (0-15 the first, 16-31 the second). */
  shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16 || lanes.some((l) => !Number.isInteger(l) || l < 0 || l > 31)) throw new EncodeError(`a shuffle takes 16 lanes in 0-31: ${lanes.join(',')}`);
    this.bytes.byte(SIMD_PREFIX).u32(Simd.i8x16Shuffle).append(lanes);
    return this;
  }

  call(func: number): this {
    this.bytes.byte(Op.call).u32(func);
    return this;
  }

  /**
   * Calls the function at the table index on top of the stack, which must
   * have type `type` (checked when it runs); `tail` replaces the caller's
   * frame (return_call_indirect, the tail-call proposal).
   */
  callIndirect(type: number, table: number, tail = false): this {
    this.bytes.byte(tail ? Op.returnCallIndirect : Op.callIndirect).u32(type).u32(table);
    return this;
  }

  /** Opens a block, loop or if (kind) named `label`, without results unless `type` says so. */
  open(kind: typeof Op.block | typeof Op.loop | typeof Op.if, label: string, type: number = VOID): this {
    this.bytes.byte(kind).byte(type);
    this.labels.push(label);
    return this;
  }

  /** Closes the innermost open construct, which must be `label` (a check on the emitter). */
  close(label: string): this {
    const top = this.labels.pop();
    if (top !== label) throw new EncodeError(`closing ${label} but ${top ?? 'nothing'} is open`);
    this.bytes.byte(Op.end);
    return this;
  }

  /** `else` of the innermost `if`, which must be `label`. */
  else(label: string): this {
    if (this.labels[this.labels.length - 1] !== label) throw new EncodeError(`else of ${label}, which is not the innermost construct`);
    this.bytes.byte(Op.else);
    return this;
  }

  private depth(label: string): number {
    const at = this.labels.lastIndexOf(label);
    if (at < 0) throw new EncodeError(`no enclosing ${label}`);
    return this.labels.length - 1 - at;
  }

  br(label: string): this {
    this.bytes.byte(Op.br).u32(this.depth(label));
    return this;
  }

  brIf(label: string): this {
    this.bytes.byte(Op.brIf).u32(this.depth(label));
    return this;
  }

  brTable(targets: readonly string[], otherwise: string): this {
    this.bytes.byte(Op.brTable).u32(targets.length);
    for (const t of targets) this.bytes.u32(this.depth(t));
    this.bytes.u32(this.depth(otherwise));
    return this;
  }

  /** The encoded body (locals declaration, instructions, final end). */
  finish(): Bytes {
    if (this.labels.length !== 0) throw new EncodeError(`unclosed: ${this.labels.join(', ')}`);
    const out = new Bytes();
    // Runs of equal types share one declaration.
    const runs: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = runs[runs.length - 1];
      if (last !== undefined && last[1] === t) last[0]++;
      else runs.push([1, t]);
    }
    out.u32(runs.length);
    for (const [n, t] of runs) out.u32(n).byte(t);
    out.append(this.bytes).byte(Op.end);
    return out;
  }
}

export interface FuncType {
  params: readonly ValType[];
  results: readonly ValType[];
}

export type Import =
  | { module: string; name: string; kind: 'func'; type: number }
  | { module: string; name: string; kind: 'memory'; min: number; max?: number; shared?: boolean }
  | { module: string; name: string; kind: 'table'; min: number; max?: number };

export interface ModuleSpec {
  types: readonly FuncType[];
  imports: readonly Import[];
  /** Defined functions; their indices follow the imported functions'. */
  functions: readonly { type: number; code: Code }[];
  exports: readonly { name: string; func: number }[];
}

function name(out: Bytes, s: string): void {
  const b = Buffer.from(s, 'utf8');
  out.u32(b.length).append(b);
}

function section(out: Bytes, id: number, body: Bytes): void {
  out.byte(id).u32(body.length).append(body);
}

/** The binary module for `spec`. */
export function encodeModule(spec: ModuleSpec): Uint8Array {
  const out = new Bytes().append([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const types = new Bytes().u32(spec.types.length);
  for (const t of spec.types) {
    types.byte(0x60).u32(t.params.length).append(t.params).u32(t.results.length).append(t.results);
  }
  section(out, 1, types);
  if (spec.imports.length > 0) {
    const imports = new Bytes().u32(spec.imports.length);
    for (const i of spec.imports) {
      name(imports, i.module);
      name(imports, i.name);
      if (i.kind === 'func') imports.byte(0x00).u32(i.type);
      else if (i.kind === 'table') {
        // funcref elements; limits as for a memory.
        imports.byte(0x01).byte(0x70).byte(i.max !== undefined ? 1 : 0).u32(i.min);
        if (i.max !== undefined) imports.u32(i.max);
      } else {
        if (i.shared === true && i.max === undefined) throw new EncodeError('a shared memory needs a maximum');
        imports.byte(0x02).byte((i.max !== undefined ? 1 : 0) | (i.shared === true ? 2 : 0)).u32(i.min);
        if (i.max !== undefined) imports.u32(i.max);
      }
    }
    section(out, 2, imports);
  }
  const funcs = new Bytes().u32(spec.functions.length);
  for (const f of spec.functions) funcs.u32(f.type);
  section(out, 3, funcs);
  const exports = new Bytes().u32(spec.exports.length);
  for (const e of spec.exports) {
    name(exports, e.name);
    exports.byte(0x00).u32(e.func);
  }
  section(out, 7, exports);
  const code = new Bytes().u32(spec.functions.length);
  for (const f of spec.functions) {
    const body = f.code.finish();
    code.u32(body.length).append(body);
  }
  section(out, 10, code);
  return out.view().slice();
}
