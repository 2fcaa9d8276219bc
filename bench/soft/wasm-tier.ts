/**
 * Would a WebAssembly back end for hot code beat the JS regions? A probe.
 *
 * The loop is the inner loop of Linux 6.1's `mpihelp_submul_1` as Debian's
 * compiler emitted it (38 instructions: loads and stores through the TLB,
 * four IMUL r64, ADD/SUB/ADC, CMP with CMOVAE and SETB), which alone takes
 * ~15 % of a soft-engine boot (the crypto self-tests' Diffie-Hellman), with
 * a short outer loop around it. It runs three ways on the same data:
 *
 *   interpreter — the soft engine with regions off
 *   js region   — the soft engine compiling it to a JS region (ops/inline.ts)
 *   wasm        — the same instructions lowered by hand the way a wasm tier
 *                 would: guest registers in i64 locals for the region's run
 *                 (loaded from and stored to a register file in linear
 *                 memory), every guest access through a TLB held in linear
 *                 memory (tag compare, page-end check, frame offset), each
 *                 flag computed only where an instruction of the region
 *                 reads it, the lazy-flag record of the last writer stored
 *                 at exit, and the instruction budget checked per block.
 *
 * All three must leave the same registers and memory (checked), then each
 * is timed. It also times compiling and instantiating the wasm region
 * (what the JS regions pay instead: V8's parse, baseline tier, then
 * TurboFan on a worker).
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/soft/wasm-tier.js
 */
import { jit } from '../../src/engine/soft/block.js';
import { Cpu } from '../../src/engine/soft/cpu.js';
import { PAGE_SIZE, type PageFrame, type SoftPlatform } from '../../src/engine/soft/mmu.js';
import { Code, encodeModule, I32, I64, Op } from '../../src/engine/soft/wasm/encode.js';
import { wasmApi } from '../../src/memory/index.js';

/**
 * The loop in machine code (GNU as, Intel syntax), at 0x10000:
 *   mov rbx, 0x100000 ; mov r11, 0x200000 ; mov r9d, 0x12345678 ; mov r10d, 0x9abcdef0
 *   movabs rbp, 0x100000000 ; mov r15, 1000000000
 * outer: mov r8, -64 ; mov r12, -64 ; xor esi, esi ; mov rax, r8 ; jmp inner
 * inner: (the 38 instructions of mpihelp_submul_1's loop, movsxd rax, r8d ... add r8d, 1 ; jne inner)
 *   dec r15 ; jne outer
 */
const CODE = Buffer.from(
  '48c7c30000100049c7c30000200041b97856341241baf0debc9a48bd000000000100000049c7c700ca9a3b49c7c0c0ffffff49c7c4c0ffffff31f6' +
  '4c89c0eb004963c04c29e0488b0cc3488d3cc5000000004889ca89c948c1ea204889c8490fafc14989d54d0fafe9490fafca490fafd24989c6' +
  '89c049c1ee204c01e94c01f14989d64801ea4c39e94989cd490f43d64801f049c1e5204c01e84839f0400f92c64c01df48c1e9204c8b2f400f' +
  'b6f64929c54811ce4c892f4801d64183c0010f857bffffff49ffcf0f855dffffff', 'hex');
const CODE_AT = 0x10000;
const S1 = 0x100000, RES = 0x200000, LIMBS = 64;
const INNER = 38; // the loop, MOVSXD to JNE
const OUTER = 5 + 2; // the outer block's five plus dec/jne

// ---- the soft engine on a flat platform ----

class Flat implements SoftPlatform {
  readonly pages = new Map<number, PageFrame>();
  translate(vpn: number): PageFrame {
    let f = this.pages.get(vpn);
    if (f === undefined) {
      const b = new ArrayBuffer(PAGE_SIZE);
      f = { bytes: new Uint8Array(b), view: new DataView(b) };
      this.pages.set(vpn, f);
    }
    return f;
  }
  syscall(): void {
    throw new Error('no system calls here');
  }
}

function seed(write: (addr: number, v: bigint) => void): void {
  let x = 0x9e3779b97f4a7c15n;
  for (let k = 0; k < LIMBS; k++) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    write(S1 + 8 * k, x);
    write(RES + 8 * k, x ^ 0x5555aaaa5555aaaan);
  }
}

function softCpu(): { cpu: Cpu; p: Flat } {
  const p = new Flat();
  for (let k = 0; k < CODE.length; k++) {
    const a = CODE_AT + k;
    (p.translate(Math.floor(a / PAGE_SIZE)).bytes)[a % PAGE_SIZE] = CODE[k] as number;
  }
  seed((a, v) => p.translate(Math.floor(a / PAGE_SIZE)).view.setBigUint64(a % PAGE_SIZE, v, true));
  const cpu = new Cpu(p);
  cpu.rip = CODE_AT;
  return { cpu, p };
}

// ---- linear memory layout of the probe ----

const MEM_PAGES = 4; // 256 KiB
const REGS = 0x0000; // 16 x i64 guest registers
const FLAGS = 0x0080; // the lazy-flag record left at exit: kind, operand, result
const EXIT = 0x0098; // the block to enter next (0 outer, 1 inner, 2 after the loop; 0x100 a TLB miss)
const TLB_TAG = 0x1000; // 1,024 x i64 page numbers
const TLB_OFF = 0x3000; // 1,024 x i32 offsets of the frames in this memory
const RAM = 0x10000; // guest frames

/** The loop lowered to wasm: what a translator of these forms would emit. */
function lowerLoop(tag: bigint): Uint8Array {
  const c = new Code(1); // local 0: the budget
  const regs = Array.from({ length: 16 }, () => c.local(I64));
  const R = (r: number): number => regs[r] as number;
  const N = c.local(I32), A = c.local(I64), V = c.local(I64), T = c.local(I32), CF = c.local(I32), PC = c.local(I32);
  const count = (k: number): void => { c.get(N).i32(k).op(Op.i32Add).set(N); };
  /** Leaves the region, to come back at block `pc`, if `size` more instructions do not fit the budget. */
  const budget = (size: number, pc: number): void => {
    c.get(N).i32(size).op(Op.i32Add).get(0).op(Op.i32GtS).open(Op.if, 'full');
    c.i32(EXIT).i32(pc).mem(Op.i32Store, 0).br('exit').close('full');
  };
  const RAX = 0, RCX = 1, RDX = 2, RBX = 3, RBP = 5, RSI = 6, RDI = 7, R8 = 8, R9 = 9, R10 = 10, R11 = 11, R12 = 12, R13 = 13, R14 = 14, R15 = 15;
  const alu = (d: number, s: number, o: number): void => { c.get(R(d)).get(R(s)).op(o).set(R(d)); };
  const mov = (d: number, s: number): void => { c.get(R(s)).set(R(d)); };
  const zext32 = (d: number): void => { c.get(R(d)).i64(-1, 0).op(Op.i64And).set(R(d)); };
  const shri = (d: number, k: number): void => { c.get(R(d)).i64(k, 0).op(Op.i64ShrU).set(R(d)); };
  /**
   * Address in local A: leaves the frame address (i32) of a TLB hit on the
   * stack. A miss or a page-end crossing leaves the region (a tier would call
   * into the engine to fill the entry, or run the access through it, and go on).
   */
  const translate = (): void => {
    c.get(A).i64(12, 0).op(Op.i64ShrS).set(V);
    c.get(V).op(Op.i32WrapI64).i32(1023).op(Op.i32And).set(T);
    c.get(T).i32(3).op(Op.i32Shl).mem(Op.i64Load, TLB_TAG).get(V).op(Op.i64Ne);
    c.get(A).op(Op.i32WrapI64).i32(4095).op(Op.i32And).i32(PAGE_SIZE - 8).op(Op.i32GtU).op(Op.i32Or);
    c.open(Op.if, 'miss').i32(EXIT).i32(0x100).mem(Op.i32Store, 0).br('exit').close('miss');
    c.get(T).i32(2).op(Op.i32Shl).mem(Op.i32Load, TLB_OFF);
    c.get(A).op(Op.i32WrapI64).i32(4095).op(Op.i32And).op(Op.i32Add);
  };
  // Registers in; the block to enter.
  for (let r = 0; r < 16; r++) c.i32(0).mem(Op.i64Load, REGS + 8 * r).set(R(r));
  c.i32(0).set(N);
  c.i32(0).mem(Op.i32Load, EXIT).set(PC);
  c.open(Op.block, 'exit').open(Op.loop, 'top').open(Op.block, 'inner').open(Op.block, 'outer');
  c.get(PC).brTable(['outer', 'inner'], 'exit');
  c.close('outer');
  // outer: mov r8, -64 ; mov r12, -64 ; xor esi, esi ; mov rax, r8 ; jmp inner
  budget(5, 0);
  c.i64n(-64).set(R(R8)).i64n(-64).set(R(R12)).i64(0, 0).set(R(RSI));
  mov(RAX, R8);
  count(5);
  c.close('inner'); // falls in from outer or is entered by pc 1
  budget(INNER + 2, 1);
  // movsxd rax, r8d ; sub rax, r12
  c.get(R(R8)).op(Op.i32WrapI64).op(Op.i64ExtendI32S).set(R(RAX));
  alu(RAX, R12, Op.i64Sub);
  // mov rcx, [rbx + rax*8]
  c.get(R(RBX)).get(R(RAX)).i64(3, 0).op(Op.i64Shl).op(Op.i64Add).set(A);
  translate();
  c.mem(Op.i64Load, RAM).set(R(RCX));
  c.get(R(RAX)).i64(3, 0).op(Op.i64Shl).set(R(RDI)); // lea rdi, [rax*8]
  mov(RDX, RCX); zext32(RCX); shri(RDX, 32); mov(RAX, RCX);
  alu(RAX, R9, Op.i64Mul); mov(R13, RDX); alu(R13, R9, Op.i64Mul); alu(RCX, R10, Op.i64Mul); alu(RDX, R10, Op.i64Mul);
  mov(R14, RAX); zext32(RAX); shri(R14, 32);
  alu(RCX, R13, Op.i64Add); alu(RCX, R14, Op.i64Add); mov(R14, RDX); alu(RDX, RBP, Op.i64Add);
  // cmp rcx, r13 ; mov r13, rcx ; cmovae rdx, r14  (CF = rcx < r13, unsigned)
  c.get(R(RCX)).get(R(R13)).op(Op.i64LtU).set(CF);
  mov(R13, RCX);
  c.get(R(RDX)).get(R(R14)).get(CF).op(Op.select).set(R(RDX));
  alu(RAX, RSI, Op.i64Add);
  c.get(R(R13)).i64(32, 0).op(Op.i64Shl).set(R(R13));
  alu(RAX, R13, Op.i64Add);
  // cmp rax, rsi ; setb sil
  c.get(R(RSI)).i64n(-256).op(Op.i64And).get(R(RAX)).get(R(RSI)).op(Op.i64LtU).op(Op.i64ExtendI32U).op(Op.i64Or).set(R(RSI));
  alu(RDI, R11, Op.i64Add); shri(RCX, 32);
  // mov r13, [rdi]
  c.get(R(RDI)).set(A);
  translate();
  c.mem(Op.i64Load, RAM).set(R(R13));
  c.get(R(RSI)).i64(0xff, 0).op(Op.i64And).set(R(RSI)); // movzx esi, sil
  // sub r13, rax ; adc rsi, rcx
  c.get(R(R13)).get(R(RAX)).op(Op.i64LtU).set(CF);
  alu(R13, RAX, Op.i64Sub);
  c.get(R(RSI)).get(R(RCX)).op(Op.i64Add).get(CF).op(Op.i64ExtendI32U).op(Op.i64Add).set(R(RSI));
  // mov [rdi], r13
  c.get(R(RDI)).set(A);
  translate();
  c.get(R(R13)).mem(Op.i64Store, RAM);
  alu(RSI, RDX, Op.i64Add);
  // add r8d, 1 ; jne inner
  c.get(R(R8)).i64(1, 0).op(Op.i64Add).i64(-1, 0).op(Op.i64And).set(R(R8));
  count(INNER);
  c.i32(1).set(PC);
  c.get(R(R8)).op(Op.i32WrapI64).brIf('top');
  // dec r15 ; jne outer
  c.get(R(R15)).i64(1, 0).op(Op.i64Sub).set(R(R15));
  count(2);
  c.i32(0).set(PC);
  c.i32(EXIT).i32(0).mem(Op.i32Store, 0);
  c.get(R(R15)).i64(0, 0).op(Op.i64Ne).brIf('top');
  c.i32(EXIT).i32(2).mem(Op.i32Store, 0); // left the loop: pc 2 is "after it"
  c.close('top').close('exit');
  // Registers and the last flag writer's record out (`tag` only makes every compiled module distinct).
  for (let r = 0; r < 16; r++) c.i32(0).get(R(r)).mem(Op.i64Store, REGS + 8 * r);
  c.i32(0).i64n(tag).mem(Op.i64Store, FLAGS).i32(0).get(R(R8)).mem(Op.i64Store, FLAGS + 8);
  c.get(N);
  return encodeModule({
    types: [{ params: [I32], results: [I32] }],
    imports: [{ module: 'm', name: 'mem', kind: 'memory', min: MEM_PAGES }],
    functions: [{ type: 0, code: c }],
    exports: [{ name: 'run', func: 0 }],
  });
}

interface WasmRegion { run(budget: number): number }

function wasmMachine(): { run: (budget: number) => number; regs: BigInt64Array; ram: DataView } {
  const memory = new wasmApi.Memory({ initial: MEM_PAGES, maximum: MEM_PAGES });
  const view = new DataView(memory.buffer);
  const regs = new BigInt64Array(memory.buffer, REGS, 16);
  // Guest pages 0x100 and 0x200 live at RAM and RAM + 4 KiB.
  const tags = new BigInt64Array(memory.buffer, TLB_TAG, 1024).fill(-1n);
  const offs = new Int32Array(memory.buffer, TLB_OFF, 1024);
  tags[S1 / PAGE_SIZE] = BigInt(S1 / PAGE_SIZE); offs[S1 / PAGE_SIZE] = 0;
  tags[(RES / PAGE_SIZE) & 1023] = BigInt(RES / PAGE_SIZE); offs[(RES / PAGE_SIZE) & 1023] = PAGE_SIZE;
  seed((a, v) => view.setBigUint64(RAM + (a >= RES ? PAGE_SIZE + a - RES : a - S1), v, true));
  // The prologue the soft engine runs before the loop.
  regs[3] = BigInt(S1); regs[11] = BigInt(RES); regs[9] = 0x12345678n; regs[10] = 0x9abcdef0n; regs[5] = 0x100000000n; regs[15] = 1000000000n;
  const instance = new wasmApi.Instance(new wasmApi.Module(lowerLoop(0n)), { m: { mem: memory } });
  const region = instance.exports as unknown as WasmRegion;
  return { run: (budget) => region.run(budget), regs, ram: new DataView(memory.buffer, RAM) };
}

// ---- check, then time ----

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1] as number;
}

const PASSES = 1000; // outer passes for the check: 1000 x (7 + 64 x 37) instructions
const perPass = OUTER + 64 * INNER;

function checkSame(): void {
  jit.after = 10;
  const { cpu, p } = softCpu();
  cpu.run(6 + PASSES * perPass);
  const w = wasmMachine();
  let done = 0;
  while (done < PASSES * perPass) done += w.run(perPass);
  for (let r = 0; r < 16; r++) {
    if (r === 4) continue;
    const want = cpu.reg64(r);
    const got = BigInt.asUintN(64, w.regs[r] as bigint);
    if (want !== got) throw new Error(`register ${r}: soft engine 0x${want.toString(16)}, wasm 0x${got.toString(16)}`);
  }
  for (let k = 0; k < LIMBS; k++) {
    const want = p.translate(RES / PAGE_SIZE).view.getBigUint64(8 * k, true);
    const got = w.ram.getBigUint64(PAGE_SIZE + 8 * k, true);
    if (want !== got) throw new Error(`limb ${k}: soft engine 0x${want.toString(16)}, wasm 0x${got.toString(16)}`);
  }
}

function timeSoft(after: number, instructions: number): number {
  jit.after = after;
  const { cpu } = softCpu();
  cpu.run(2_000_000); // warm: regions compiled and optimised
  const t0 = performance.now();
  for (let n = 0; n < instructions; n += 1_000_000) cpu.run(1_000_000);
  return instructions / (performance.now() - t0) / 1e3;
}

function timeWasm(instructions: number): number {
  const w = wasmMachine();
  for (let n = 0; n < 2_000_000;) n += w.run(2048);
  const t0 = performance.now();
  // Chunks of 2,048 instructions, as the engine runs them.
  for (let n = 0; n < instructions;) n += w.run(2048);
  return instructions / (performance.now() - t0) / 1e3;
}

/** Mean microseconds to emit, compile, instantiate and run once `count` distinct modules. */
function timeCompile(count: number): { emit: number; compile: number; instantiate: number; first: number } {
  const memory = new wasmApi.Memory({ initial: MEM_PAGES, maximum: MEM_PAGES });
  const te = performance.now();
  const sources = Array.from({ length: count }, (_, k) => lowerLoop(BigInt(k + 1)));
  const t0 = performance.now();
  const modules = sources.map((bytes) => new wasmApi.Module(bytes));
  const t1 = performance.now();
  const regions = modules.map((m) => new wasmApi.Instance(m, { m: { mem: memory } }).exports as unknown as WasmRegion);
  const t2 = performance.now();
  // A budget of 0: entry and exit only, which is when a lazily compiled function is compiled.
  for (const r of regions) r.run(0);
  const t3 = performance.now();
  return { emit: (t0 - te) * 1000 / count, compile: (t1 - t0) * 1000 / count, instantiate: (t2 - t1) * 1000 / count, first: (t3 - t2) * 1000 / count };
}

checkSame();
const RUNS = 5;
const rows: [string, number[]][] = [['interpreter', []], ['js region', []], ['wasm', []]];
for (let k = 0; k < RUNS; k++) {
  rows[0]?.[1].push(timeSoft(Infinity, 100_000_000));
  rows[1]?.[1].push(timeSoft(10, 300_000_000));
  rows[2]?.[1].push(timeWasm(1_000_000_000));
}
const base = median(rows[1]?.[1] ?? []);
console.log(`mpihelp_submul_1's loop, M instructions/s (median of ${RUNS}; ratio to the JS region)`);
for (const [name, xs] of rows) console.log(`  ${name.padEnd(12)} ${median(xs).toFixed(0).padStart(6)}  ${(median(xs) / base).toFixed(2)}x`);
const bytes = lowerLoop(1n).length;
const c = timeCompile(500);
console.log(`wasm region: ${bytes} bytes; per module (mean of 500 distinct): emit ${c.emit.toFixed(0)} us, compile ${c.compile.toFixed(0)} us, ` +
  `instantiate ${c.instantiate.toFixed(0)} us, first call ${c.first.toFixed(0)} us`);
