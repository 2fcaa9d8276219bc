/**
 * The harness of the compiled-code tests (block.test.ts, wasm-sse.test.ts):
 * a flat address space of demand pages, and runs of one program on the
 * interpreter, on JS regions and on wasm regions, whose outcomes must match.
 */
import assert from 'node:assert/strict';
import { jit } from '../../src/engine/soft/block.js';
import { Cpu, EXIT_LIMIT } from '../../src/engine/soft/cpu.js';
import { getRflags } from '../../src/engine/soft/flags.js';
import { ACCESS_EXEC, ACCESS_WRITE, PAGE_SIZE, pageFault, type PageFrame, type SoftPlatform } from '../../src/engine/soft/mmu.js';
import { RAX, RBX, RCX, RDX, RSP } from '../../src/engine/soft/state.js';
import { placeInWasm } from '../../src/engine/soft/wasm/region.js';
import { reserveWasm, WASM_MAX_PAGES, wasmApi, type WasmMemory } from '../../src/memory/index.js';

/**
 * Pages on demand in [0x1000, 0x100000) and 64 KiB either side of 4 GiB;
 * page 0x80 is not executable, page 0x81 read-only; a SYSCALL is counted
 * and ends the run. With `memory`, frames come from that
 * WebAssembly.Memory and know their offset in it (as a machine's RAM does),
 * so regions compile to WebAssembly — except pages 0x90-0x9f, which stay
 * outside it (as RAM past wasm32's 4 GiB does) and must be reached through
 * the engine.
 */
export class FlatPlatform implements SoftPlatform {
  readonly pages = new Map<number, PageFrame>();
  syscalls = 0;
  private chunk: Uint8Array | undefined;
  private used = 0;
  constructor(readonly memory?: WasmMemory) {}
  translate(vpn: number, access: number): PageFrame {
    if ((vpn < 1 || vpn >= 0x100) && (vpn < 0xffff0 || vpn >= 0x100010)) throw pageFault(vpn * PAGE_SIZE, access, false);
    if (vpn === 0x80 && access === ACCESS_EXEC) throw pageFault(vpn * PAGE_SIZE, access, true);
    if (vpn === 0x81 && access === ACCESS_WRITE) throw pageFault(vpn * PAGE_SIZE, access, true);
    let f = this.pages.get(vpn);
    if (!f) {
      if (this.memory !== undefined && (vpn < 0x90 || vpn > 0x9f)) {
        if (this.chunk === undefined || this.used === this.chunk.length) {
          this.chunk = reserveWasm(this.memory, 16 * PAGE_SIZE) as Uint8Array;
          this.used = 0;
        }
        const bytes = this.chunk.subarray(this.used, this.used + PAGE_SIZE);
        this.used += PAGE_SIZE;
        f = { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE), mmio: undefined, wasm: bytes.byteOffset };
      } else {
        const buf = new ArrayBuffer(PAGE_SIZE);
        f = { bytes: new Uint8Array(buf), view: new DataView(buf) };
      }
      this.pages.set(vpn, f);
    }
    return f;
  }
  poke(addr: number, bytes: number[]): void {
    bytes.forEach((b, k) => { const a = addr + k; (this.translate(Math.floor(a / PAGE_SIZE), 1).bytes)[a % PAGE_SIZE] = b; });
  }
  syscall(cpu: unknown): void {
    this.syscalls++;
    (cpu as Cpu).requestStop();
  }
}

export const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
export const le64 = (v: bigint): number[] => Array.from({ length: 8 }, (_, k) => Number((v >> BigInt(8 * k)) & 0xffn));

/** Where a run ended: exit, RIP, count, RAX-RDX and RSP, RFLAGS, the fault's vector, XMM0-15 as int32 lanes. */
export interface Outcome { exit: number; rip: number; icount: number; regs: bigint[]; flags: number; vector: number | undefined; xmm: number[] }

/**
 * Runs `code` at 0x10000 with `regs`, in run() calls of `chunk` instructions
 * up to `total`, compiling a region once control arrived at its start more
 * than `after` times (`false`: never, `true`: at the first arrival). With
 * after = 0 a region holds only the block where it starts (no other block
 * has run yet); larger values let it take in the blocks that ran before.
 */
export function runWith(after: boolean | number, code: number[], regs: [number, bigint][], total: number, chunk = total, what = '', setup?: (cpu: Cpu) => void): Outcome {
  const js = runOn(after, false, code, regs, total, chunk, setup);
  if (after === false) return js;
  // The same regions compiled to WebAssembly must end exactly where the JS ones do.
  assert.deepEqual(runOn(after, true, code, regs, total, chunk, setup), js, `regions compiled to WebAssembly ${what}`);
  return js;
}

export function runOn(after: boolean | number, wasm: boolean, code: number[], regs: [number, bigint][], total: number, chunk: number, setup?: (cpu: Cpu) => void): Outcome {
  const saved = jit.after, savedWasm = jit.wasm, savedShare = jit.wasmCallShare;
  jit.after = after === false ? Infinity : after === true ? 0 : after;
  jit.wasm = wasm;
  // Every region to WebAssembly, however many of its forms call handlers.
  jit.wasmCallShare = Infinity;
  try {
    const p = new FlatPlatform(wasm ? new wasmApi.Memory({ initial: 0, maximum: WASM_MAX_PAGES, shared: true }) : undefined);
    p.poke(0x10000, code);
    const cpu = new Cpu(p);
    if (p.memory !== undefined) assert.ok(placeInWasm(cpu, p.memory));
    cpu.log = () => undefined;
    cpu.rip = 0x10000;
    cpu.setReg64(RSP, 0x80000n);
    for (const [r, v] of regs) cpu.setReg64(r, v);
    setup?.(cpu);
    let exit = EXIT_LIMIT;
    for (let done = 0; done < total && exit === EXIT_LIMIT; done += chunk) exit = cpu.run(Math.min(chunk, total - done));
    return {
      exit, rip: cpu.rip, icount: cpu.icount, regs: [RAX, RBX, RCX, RDX, RSP].map((r) => cpu.reg64(r)), flags: getRflags(cpu),
      vector: cpu.exception?.vector, xmm: Array.from(cpu.xmm.subarray(0, 64)),
    };
  } finally {
    jit.after = saved;
    jit.wasm = savedWasm;
    jit.wasmCallShare = savedShare;
  }
}

/** The thresholds the compiled runs use: single-block regions, and regions that take in the blocks that already ran. */
export const AFTERS = [0, 1, 3];

/**
 * Runs `body` with a Cpu over a FlatPlatform in a fresh WebAssembly.Memory
 * holding `code` (address → bytes), RIP at the first address and RSP at
 * 0x80000, every region compiling to wasm from its second arrival however
 * many of its instructions call handlers; jit settings are restored after.
 */
export function onWasm(code: [number, number[]][], body: (cpu: Cpu, p: FlatPlatform) => void): void {
  const saved = { after: jit.after, wasm: jit.wasm, share: jit.wasmCallShare };
  jit.after = 1; jit.wasm = true; jit.wasmCallShare = Infinity;
  try {
    const p = new FlatPlatform(new wasmApi.Memory({ initial: 0, maximum: WASM_MAX_PAGES, shared: true }));
    for (const [at, bytes] of code) p.poke(at, bytes);
    const cpu = new Cpu(p);
    assert.ok(placeInWasm(cpu, p.memory as WasmMemory));
    cpu.rip = code[0]?.[0] ?? 0x10000;
    cpu.setReg64(RSP, 0x80000n);
    body(cpu, p);
  } finally {
    jit.after = saved.after; jit.wasm = saved.wasm; jit.wasmCallShare = saved.share;
  }
}

/** Entries from the run loop into wasm regions while `cpu` runs `n` instructions (which must all retire). */
export function entriesOver(cpu: Cpu, n: number): number {
  const before = cpu.wasm?.entries ?? 0;
  assert.equal(cpu.run(n), EXIT_LIMIT);
  return (cpu.wasm?.entries ?? 0) - before;
}
