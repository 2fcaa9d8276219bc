/**
 * Regions compiled to WebAssembly and instantiated together (region.ts
 * flushWasm): while a Cpu defers them they run interpreted, a flush makes
 * one module of them, the batch limit flushes early, and a region turned
 * down in the middle of a batch (too many handler calls) leaves nothing of
 * its own in the module's handler calls. Every run must end where the
 * interpreter does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit } from '../../src/engine/soft/block.js';
import type { Cpu } from '../../src/engine/soft/cpu.js';
import { EXIT_LIMIT } from '../../src/engine/soft/cpu.js';
import { RAX, RBX, RCX, RDX, RSI, RSP } from '../../src/engine/soft/state.js';
import type { WasmState } from '../../src/engine/soft/wasm/region.js';
import { le32, onWasm, runOn } from './region-harness.js';

const rel = (from: number, to: number): number[] => le32(to - from);
// Page A: mov ecx, 1000; L: call B; call C; call D; dec ecx; jnz L; jmp $
const A = [0xb9, ...le32(1000)];
const L = 0x10000 + A.length;
A.push(0xe8, ...rel(L + 5, 0x11000), 0xe8, ...rel(L + 10, 0x12000), 0xe8, ...rel(L + 15, 0x13000), 0xff, 0xc9);
A.push(0x0f, 0x85, ...rel(0x10000 + A.length + 6, L), 0xeb, 0xfe);
// B: add rax, 3; lea rdx, [rdx + rax*2]; add rbx, rdx; xadd rdx, rax (a handler); ret
const B = [0x48, 0x83, 0xc0, 0x03, 0x48, 0x8d, 0x14, 0x42, 0x48, 0x01, 0xd3, 0x48, 0x0f, 0xc1, 0xc2, 0xc3];
// C: xadd rbx, rdx; xadd rsi, rbx; ret (two handlers in three: stays JS)
const C = [0x48, 0x0f, 0xc1, 0xd3, 0x48, 0x0f, 0xc1, 0xde, 0xc3];
// D: xadd rdi, rax (a handler); add rdi, rbx; sub rsi, 5; ret
const D = [0x48, 0x0f, 0xc1, 0xc7, 0x48, 0x01, 0xdf, 0x48, 0x83, 0xee, 0x05, 0xc3];
const PASS = 5 + 5 + 3 + 4;
const PAGES: [number, number[]][] = [[0x10000, A], [0x11000, B], [0x12000, C], [0x13000, D]];

/** The four pages as one array at 0x10000, for the interpreter's run. */
function flat(): number[] {
  const out = new Array<number>(0x3000 + D.length).fill(0);
  for (const [at, bytes] of PAGES) out.splice(at - 0x10000, bytes.length, ...bytes);
  return out;
}

/** Asserts that `cpu` is where the interpreter is after `n` instructions. */
function agrees(cpu: Cpu, n: number, what: string): void {
  const ref = runOn(false, false, flat(), [], n, n);
  assert.equal(cpu.icount, n, `${what}: count`);
  assert.equal(cpu.rip, ref.rip, `${what}: RIP`);
  assert.deepEqual([RAX, RBX, RCX, RDX, RSP].map((r) => cpu.reg64(r)), ref.regs, `${what}: RAX-RDX, RSP`);
}

/** Runs `body` with wasm regions deferred, `batch` to a module, handlers allowed in up to 3 of 10 instructions. */
function deferred(batch: number, body: (cpu: Cpu, w: WasmState) => void): void {
  const saved = { batch: jit.wasmBatch, ms: jit.wasmBatchMs };
  try {
    onWasm(PAGES, (cpu) => {
      jit.wasmCallShare = 0.3;
      jit.wasmBatch = batch;
      jit.wasmBatchMs = 1000;
      cpu.deferWasm = true;
      body(cpu, cpu.wasm as WasmState);
    });
  } finally {
    jit.wasmBatch = saved.batch;
    jit.wasmBatchMs = saved.ms;
  }
}

test('deferred regions run interpreted until the flush, then from one module', () => {
  deferred(64, (cpu, w) => {
    assert.equal(cpu.run(1 + 3 * PASS), EXIT_LIMIT);
    // A, B and D wait; C has too many handler calls for wasm.
    assert.deepEqual([w.pending.length, w.modules, w.entries], [3, 0, 0], 'three regions pending, none entered');
    assert.equal(w.calls.length, 2, "the handler calls of B and D, none of C's");
    agrees(cpu, 1 + 3 * PASS, 'pending');
    // Inside the window nothing happens; past it, one module.
    cpu.flushWasm();
    assert.equal(w.modules, 0, 'no flush inside the window');
    jit.wasmBatchMs = 0;
    cpu.flushWasm();
    assert.deepEqual([w.pending.length, w.modules], [0, 1], 'one module for the three');
    assert.equal(cpu.run(100 * PASS), EXIT_LIMIT);
    assert.ok(w.entries > 0, 'the module runs');
    agrees(cpu, 1 + 103 * PASS, 'after the flush');
    // Every handler call of B and D ran its own instruction: the loop ends where the interpreter's does.
    while (cpu.rip !== 0x10000 + A.length - 2) assert.equal(cpu.run(PASS), EXIT_LIMIT);
    agrees(cpu, cpu.icount, 'at the end');
    assert.equal(cpu.reg64(RCX), 0n);
    assert.notEqual(cpu.reg64(RSI), 0n);
  });
});

test('a batch at its limit is instantiated at once', () => {
  deferred(2, (cpu, w) => {
    assert.equal(cpu.run(1 + 3 * PASS), EXIT_LIMIT);
    assert.deepEqual([w.modules, w.pending.length], [1, 1], 'A and B a module; D waits');
    jit.wasmBatchMs = 0;
    cpu.flushWasm();
    assert.equal(w.modules, 2);
    assert.equal(cpu.run(50 * PASS), EXIT_LIMIT);
    agrees(cpu, 1 + 53 * PASS, 'two modules');
  });
});

test('without deferring, each region is a module of its own at once', () => {
  onWasm(PAGES, (cpu) => {
    jit.wasmCallShare = 0.3;
    const w = cpu.wasm as WasmState;
    assert.equal(cpu.run(1 + 3 * PASS), EXIT_LIMIT);
    assert.deepEqual([w.modules, w.pending.length], [3, 0]);
    assert.ok(w.entries > 0);
    agrees(cpu, 1 + 3 * PASS, 'undeferred');
  });
});
