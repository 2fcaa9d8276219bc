/**
 * Register representation for the soft engine's hot path, by measurement.
 *
 * One micro-interpreter (a switch over a tiny bytecode) runs the same loop
 * body with 64-bit registers held three ways:
 *   bigint   — a BigInt64Array (values masked with BigInt.asUintN)
 *   pair     — int32 lo/hi halves in one Int32Array
 *   f64hi    — low half as a float64 in [0, 2^32) plus an int32 high word
 * Body: add, adc (carry from the add), shl by 3, mul (low 64 bits), a
 * 32-bit add (which must zero the upper half), cmp + jcc back.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/soft/regs.js
 */

const ITER = 3_000_000;
const OPS_PER_ITER = 7;

// Bytecode: [op, dst, src] triples.
const ADD = 0, ADC = 1, SHL3 = 2, MUL = 3, ADD32 = 4, DEC = 5, JNZ = 6;
const PROGRAM = Int32Array.from([
  ADD, 0, 1,
  ADC, 2, 3,
  SHL3, 4, 0,
  MUL, 5, 6,
  ADD32, 7, 1,
  DEC, 8, 0,
  JNZ, 0, 0,
]);

const M64 = (1n << 64n) - 1n;

function runBigint(): bigint {
  const r = new BigInt64Array(16);
  r[1] = 0x123456789abcdefn; r[3] = 0x7fffffffffffffffn; r[6] = 0x100000001n; r[5] = 3n; r[8] = BigInt(ITER);
  let cf = 0n;
  let zf = false;
  let pc = 0;
  const p = PROGRAM;
  for (;;) {
    const op = p[pc]!, d = p[pc + 1]!, s = p[pc + 2]!;
    pc += 3;
    switch (op) {
      case ADD: { const a = BigInt.asUintN(64, r[d]!), b = BigInt.asUintN(64, r[s]!); const t = a + b; cf = t >> 64n; r[d] = BigInt.asIntN(64, t); zf = (t & M64) === 0n; break; }
      case ADC: { const a = BigInt.asUintN(64, r[d]!), b = BigInt.asUintN(64, r[s]!); const t = a + b + cf; cf = t >> 64n; r[d] = BigInt.asIntN(64, t); zf = (t & M64) === 0n; break; }
      case SHL3: { r[d] = BigInt.asIntN(64, r[s]! << 3n); break; }
      case MUL: { r[d] = BigInt.asIntN(64, r[d]! * r[s]!); break; }
      case ADD32: { r[d] = BigInt.asUintN(32, r[d]! + r[s]!); break; }
      case DEC: { r[d] = r[d]! - 1n; zf = r[d] === 0n; break; }
      case JNZ: if (!zf) pc = 0; else return r[5]! ^ r[4]! ^ r[2]! ^ r[7]!; break;
    }
  }
}

/** 64x64 -> low 64 multiply on halves, with Math.imul and 16-bit partial products. */
function mulLo(aLo: number, aHi: number, bLo: number, bHi: number, out: Int32Array, d: number): void {
  const a0 = aLo & 0xffff, a1 = aLo >>> 16, b0 = bLo & 0xffff, b1 = bLo >>> 16;
  const p00 = a0 * b0;
  const mid = a1 * b0 + a0 * b1 + (p00 >>> 16);
  const lo = ((mid & 0xffff) << 16) | (p00 & 0xffff);
  const carry = Math.floor(mid / 65536) + a1 * b1;
  out[d] = lo;
  out[d + 1] = (carry + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) | 0;
}

function runPair(): number {
  const r = new Int32Array(32);
  const set = (i: number, v: bigint) => { r[2 * i] = Number(BigInt.asIntN(32, v)); r[2 * i + 1] = Number(BigInt.asIntN(32, v >> 32n)); };
  set(1, 0x123456789abcdefn); set(3, 0x7fffffffffffffffn); set(6, 0x100000001n); set(5, 3n); set(8, BigInt(ITER));
  let cf = 0;
  let zf = false;
  let pc = 0;
  const p = PROGRAM;
  for (;;) {
    const op = p[pc]!, d = 2 * p[pc + 1]!, s = 2 * p[pc + 2]!;
    pc += 3;
    switch (op) {
      case ADD: case ADC: {
        const c = op === ADC ? cf : 0;
        const aLo = r[d]! >>> 0, bLo = r[s]! >>> 0;
        const lo = aLo + bLo + c;
        const carry = lo > 0xffffffff ? 1 : 0;
        const aHi = r[d + 1]! >>> 0, bHi = r[s + 1]! >>> 0;
        const hi = aHi + bHi + carry;
        cf = hi > 0xffffffff ? 1 : 0;
        r[d] = lo; r[d + 1] = hi;
        zf = (lo | hi) === 0 || (r[d]! | r[d + 1]!) === 0;
        break;
      }
      case SHL3: { const lo = r[s]!, hi = r[s + 1]!; r[d] = lo << 3; r[d + 1] = (hi << 3) | (lo >>> 29); break; }
      case MUL: mulLo(r[d]!, r[d + 1]!, r[s]!, r[s + 1]!, r, d); break;
      case ADD32: r[d] = (r[d]! + r[s]!) | 0; r[d + 1] = 0; break;
      case DEC: {
        const lo = r[d]!;
        r[d] = lo - 1;
        if (lo === 0) r[d + 1] = r[d + 1]! - 1;
        zf = (r[d]! | r[d + 1]!) === 0;
        break;
      }
      case JNZ: if (!zf) pc = 0; else return r[10]! ^ r[8]! ^ r[4]! ^ r[14]!; break;
    }
  }
}

function runF64Hi(): number {
  const lo = new Float64Array(16); // [0, 2^32)
  const hi = new Int32Array(16);
  const set = (i: number, v: bigint) => { lo[i] = Number(v & 0xffffffffn); hi[i] = Number(BigInt.asIntN(32, v >> 32n)); };
  set(1, 0x123456789abcdefn); set(3, 0x7fffffffffffffffn); set(6, 0x100000001n); set(5, 3n); set(8, BigInt(ITER));
  let cf = 0;
  let zf = false;
  let pc = 0;
  const p = PROGRAM;
  const T32 = 4294967296;
  for (;;) {
    const op = p[pc]!, d = p[pc + 1]!, s = p[pc + 2]!;
    pc += 3;
    switch (op) {
      case ADD: case ADC: {
        const c = op === ADC ? cf : 0;
        let l = lo[d]! + lo[s]! + c;
        let carry = 0;
        if (l >= T32) { l -= T32; carry = 1; }
        const h = (hi[d]! >>> 0) + (hi[s]! >>> 0) + carry;
        cf = h >= T32 ? 1 : 0;
        lo[d] = l; hi[d] = h | 0;
        zf = l === 0 && (h | 0) === 0;
        break;
      }
      case SHL3: { const l = lo[s]!; const h = hi[s]!; lo[d] = (l * 8) % T32; hi[d] = (h << 3) | (l >>> 29); break; }
      case MUL: {
        const aLo = lo[d]!, bLo = lo[s]!;
        const a0 = aLo % 65536, a1 = Math.floor(aLo / 65536), b0 = bLo % 65536, b1 = Math.floor(bLo / 65536);
        const p00 = a0 * b0;
        const mid = a1 * b0 + a0 * b1 + Math.floor(p00 / 65536);
        lo[d] = (mid % 65536) * 65536 + (p00 % 65536);
        hi[d] = (Math.floor(mid / 65536) + a1 * b1 + Math.imul(aLo | 0, hi[s]!) + Math.imul(hi[d]!, bLo | 0)) | 0;
        break;
      }
      case ADD32: lo[d] = (lo[d]! + lo[s]!) % T32; hi[d] = 0; break;
      case DEC: {
        const l = lo[d]!;
        if (l === 0) { lo[d] = T32 - 1; hi[d] = hi[d]! - 1; } else lo[d] = l - 1;
        zf = lo[d] === 0 && hi[d] === 0;
        break;
      }
      case JNZ: if (!zf) pc = 0; else return lo[5]! + hi[4]! + lo[2]! + lo[7]!; break;
    }
  }
}

function measure(name: string, fn: () => unknown): number {
  fn(); // warm-up: let V8 optimise the loop
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const ns = Number(process.hrtime.bigint() - t0);
    runs.push((ITER * OPS_PER_ITER) / (ns / 1e9));
  }
  const best = Math.max(...runs);
  console.log(`${name.padEnd(8)} ${(best / 1e6).toFixed(1).padStart(7)} M ops/s`);
  return best;
}

// The three must agree before their speeds mean anything.
const check = [BigInt.asIntN(32, runBigint()), BigInt(runPair())];
if (check[0] !== check[1]) throw new Error(`bigint and pair disagree: ${check[0]} vs ${check[1]}`);
measure('bigint', runBigint);
measure('pair', runPair);
measure('f64hi', runF64Hi);
