/**
 * The wasm encoder (src/engine/soft/wasm/encode.ts): integer encodings
 * against a BigInt reference and against V8's own decoder (modules that
 * return what was encoded), labels resolved to the right depths, memory
 * imports, and the emitter mistakes it refuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { wasmApi } from '../../src/memory/index.js';
import { Bytes, Code, encodeModule, EncodeError, I32, I64, Op } from '../../src/engine/soft/wasm/encode.js';

/** LEB128 the simple way, for comparison. */
function refSigned(v: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) return [...out, b];
    out.push(b | 0x80);
  }
}

function refUnsigned(v: bigint): number[] {
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v === 0n ? b : b | 0x80);
  } while (v !== 0n);
  return out;
}

/** A deterministic spread of 64-bit values: edges, then every bit length, then pseudo-random. */
function values64(): bigint[] {
  const out = [0n, 1n, -1n, 63n, 64n, -64n, -65n, 127n, 128n, 0x7fffffffn, -0x80000000n, 0xffffffffn, 0x100000000n,
    (1n << 63n) - 1n, -(1n << 63n), (1n << 53n) + 1n];
  for (let k = 1; k < 64; k++) out.push((1n << BigInt(k)) - 1n, -(1n << BigInt(k)), 1n << BigInt(k));
  let x = 0x243f6a8885a308d3n;
  for (let k = 0; k < 300; k++) {
    x = BigInt.asUintN(64, x * 6364136223846793005n + 1442695040888963407n);
    out.push(BigInt.asIntN(64, x) >> BigInt(k % 64));
  }
  return out;
}

test('LEB128: u32, s32 and s64 (from int32 halves) match the reference encoding', () => {
  for (const v of values64()) {
    const lo = Number(BigInt.asIntN(32, v)), hi = Number(BigInt.asIntN(32, v >> 32n));
    assert.deepEqual([...new Bytes().s64(lo, hi).view()], refSigned(BigInt.asIntN(64, v)), `s64 ${v}`);
    const s = BigInt.asIntN(32, v);
    assert.deepEqual([...new Bytes().s32(Number(s)).view()], refSigned(s), `s32 ${s}`);
    const u = BigInt.asUintN(32, v);
    assert.deepEqual([...new Bytes().u32(Number(u)).view()], refUnsigned(u), `u32 ${u}`);
  }
});

test('i64 constants come back from V8 as encoded, through i64n and the halves', () => {
  const values = values64();
  const code = new Code(1);
  // One function: a br_table over the index returns the constant at that index.
  const labels = values.map((_, k) => `v${k}`);
  code.open(Op.block, 'out');
  for (let k = values.length - 1; k >= 0; k--) code.open(Op.block, labels[k] as string);
  code.get(0).brTable(labels, 'out');
  values.forEach((v, k) => {
    code.close(labels[k] as string);
    code.i64n(v).op(Op.return);
  });
  code.close('out').i64(0, 0);
  const bytes = encodeModule({
    types: [{ params: [I32], results: [I64] }], imports: [], functions: [{ type: 0, code }], exports: [{ name: 'at', func: 0 }],
  });
  assert.ok(wasmApi.validate(bytes));
  const at = new wasmApi.Instance(new wasmApi.Module(bytes), {}).exports.at as (k: number) => bigint;
  values.forEach((v, k) => assert.equal(at(k), BigInt.asIntN(64, v), `constant ${k}`));
});

test('labels resolve to their depths: a loop summing 1..n with an early exit, and an if/else', () => {
  const code = new Code(1);
  const sum = code.local(I64), i = code.local(I64);
  code.open(Op.block, 'done').open(Op.loop, 'again');
  code.get(i).get(0).op(Op.i64Eq).brIf('done');
  code.get(i).i64(1, 0).op(Op.i64Add).set(i);
  // Past 1000: stop adding (the if's branch to `done` crosses two labels).
  code.get(i).i64n(1000).op(Op.i64GtU).open(Op.if, 'big').br('done').else('big').get(sum).get(i).op(Op.i64Add).set(sum).close('big');
  code.br('again').close('again').close('done');
  code.get(sum);
  const bytes = encodeModule({ types: [{ params: [I64], results: [I64] }], imports: [], functions: [{ type: 0, code }], exports: [{ name: 'sum', func: 0 }] });
  const f = new wasmApi.Instance(new wasmApi.Module(bytes), {}).exports.sum as (n: bigint) => bigint;
  assert.equal(f(0n), 0n);
  assert.equal(f(10n), 55n);
  assert.equal(f(5000n), 500500n);
});

test('memory imports (plain and shared), loads and stores at their natural alignment, and imported functions', () => {
  for (const shared of [false, true]) {
    const memory = new wasmApi.Memory(shared ? { initial: 1, maximum: 2, shared: true } : { initial: 1 });
    const code = new Code(1);
    // mem[8 + a] = mem[a] (i64) + seen(a); returns the 16-bit load at a + 16 sign-extended.
    code.get(0).get(0).mem(Op.i64Load, 0).get(0).call(0).op(Op.i64ExtendI32U).op(Op.i64Add).mem(Op.i64Store, 8);
    code.get(0).mem(Op.i32Load16S, 16);
    const bytes = encodeModule({
      types: [{ params: [I32], results: [I32] }],
      imports: [{ module: 'e', name: 'seen', kind: 'func', type: 0 }, { module: 'e', name: 'mem', kind: 'memory', min: 1, ...(shared ? { max: 2, shared: true } : {}) }],
      functions: [{ type: 0, code }],
      exports: [{ name: 'f', func: 1 }],
    });
    const seen: number[] = [];
    const { f } = new wasmApi.Instance(new wasmApi.Module(bytes), { e: { mem: memory, seen: (a: number) => { seen.push(a); return 7; } } }).exports as { f: (a: number) => number };
    const view = new DataView(memory.buffer);
    view.setBigUint64(40, 0xfffffffffffffffen, true);
    view.setInt16(56, -12345, true);
    assert.equal(f(40), -12345);
    assert.equal(view.getBigUint64(48, true), 5n, 'wraps at 64 bits');
    assert.deepEqual(seen, [40]);
  }
});

test('table imports, call_indirect and return_call_indirect: a million tail calls across two modules run in constant stack', () => {
  const table = new wasmApi.Table({ element: 'anyfunc', initial: 4 });
  const types = [{ params: [I32, I32], results: [I32] }] as const;
  const tableImport = { module: 'e', name: 't', kind: 'table', min: 1 } as const;
  // down(n, other): n = 0 → 0; else a tail call of the function at slot `other` with (n - 1, own slot).
  const down = (own: number, tail: boolean): ((n: number, other: number) => number) => {
    const code = new Code(2);
    code.get(0).op(Op.i32Eqz).open(Op.if, 'zero').i32(own).op(Op.return).close('zero');
    code.get(0).i32(1).op(Op.i32Sub).i32(own).get(1).callIndirect(0, 0, tail);
    const bytes = encodeModule({ types, imports: [tableImport], functions: [{ type: 0, code }], exports: [{ name: 'f', func: 0 }] });
    assert.ok(wasmApi.validate(bytes));
    return new wasmApi.Instance(new wasmApi.Module(bytes), { e: { t: table } }).exports.f as (n: number, other: number) => number;
  };
  table.set(0, down(0, true));
  table.set(1, down(1, true));
  const a = table.get(0) as (n: number, other: number) => number;
  // Each returns its own slot when n reaches 0: the one reached by an even or odd number of hops.
  assert.equal(a(1_000_000, 1), 0);
  assert.equal(a(999_999, 1), 1);
  // Plain call_indirect nests frames: the same depth overflows the stack.
  table.set(2, down(2, false));
  table.set(3, down(3, false));
  assert.equal((table.get(2) as (n: number, o: number) => number)(10, 3), 2);
  assert.throws(() => (table.get(2) as (n: number, o: number) => number)(1_000_000, 3), RangeError);
  // An empty slot traps.
  table.grow(1);
  assert.throws(() => a(1, 4), /null|uninitialized|element/i);
});

test('emitter mistakes are refused with a reason', () => {
  const c = new Code(0);
  assert.throws(() => c.br('nowhere'), EncodeError);
  c.open(Op.block, 'a');
  assert.throws(() => c.close('b'), /closing b but a is open/);
  const d = new Code(0).open(Op.block, 'x');
  assert.throws(() => d.finish(), /unclosed: x/);
  assert.throws(() => new Code(0).else('y'), /not the innermost/);
  assert.throws(() => new Code(0).mem(Op.i32Add, 0), /not a load or store/);
  assert.throws(() => new Bytes().u32(-1), /not a u32/);
  assert.throws(() => new Bytes().u32(2 ** 32), /not a u32/);
  assert.throws(() => new Bytes().s32(2 ** 31), /not an s32/);
  assert.throws(() => encodeModule({ types: [], imports: [{ module: 'e', name: 'm', kind: 'memory', min: 1, shared: true }], functions: [], exports: [] }), /needs a maximum/);
});
