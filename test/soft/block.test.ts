/**
 * Compiled blocks (src/engine/soft/block.ts) against the one-at-a-time
 * interpreter: the same program runs on two CPUs, one compiling every block
 * at its first arrival (jit.after = 0) and one never (jit.after = Infinity),
 * and must end in the same state with the same instruction count — through
 * faults in the middle of a block, stores into the running block, and
 * instruction limits that end inside a block. Machine code is written out
 * by hand (bytes with their Intel-syntax meaning beside them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit } from '../../src/engine/soft/block.js';
import { Cpu, EXIT_EXCEPTION, EXIT_LIMIT } from '../../src/engine/soft/cpu.js';
import { PAGE_SIZE, VEC_PF } from '../../src/engine/soft/mmu.js';
import { R8, RAX, RBX, RCX, RDX, RDI, RSI, RSP, SEG_FS, SEG_GS } from '../../src/engine/soft/state.js';
import { chainSet, placeInWasm } from '../../src/engine/soft/wasm/region.js';
import { reserveWasm, WASM_MAX_PAGES, wasmApi, type WasmMemory } from '../../src/memory/index.js';
import { AFTERS, entriesOver, FlatPlatform, le32, le64, onWasm, runWith } from './region-harness.js';

// loop: add eax, ebx (01 d8); lea rdx, [rdx + rax*2 + 5] (48 8d 54 42 05); mov [rsp - 8], rdx (48 89 54 24 f8);
// cmp qword [rsp - 8], 0 (48 83 7c 24 f8 00); mov rbx, [rsp - 8] (48 8b 5c 24 f8); dec ecx (ff c9); jnz loop (75 e5)

const LOOP = [0x01, 0xd8, 0x48, 0x8d, 0x54, 0x42, 0x05, 0x48, 0x89, 0x54, 0x24, 0xf8, 0x48, 0x83, 0x7c, 0x24, 0xf8, 0x00,
  0x48, 0x8b, 0x5c, 0x24, 0xf8, 0xff, 0xc9, 0x75, 0xe5];

test('a compiled loop ends in the same state and count as the interpreter, for limits that end inside a block', () => {
  const regs: [number, bigint][] = [[RAX, 3n], [RBX, 0x7fffffffn], [RCX, 50n], [RDX, 0xffffffff00000001n]];
  for (const chunk of [1, 3, 7, 1000]) {
    const a = runWith(false, LOOP, regs, 333, chunk);
    for (const after of AFTERS) assert.deepEqual(runWith(after, LOOP, regs, 333, chunk), a, `chunk ${chunk}, after ${after}`);
    assert.equal(a.icount, 333);
  }
});

test('a fault in the middle of a compiled block: earlier instructions retired, RIP at the faulting one, no effect', () => {
  // loop: inc eax (ff c0); mov [rbx], eax (89 03); add rbx, 0x400 (48 81 c3 00 04 00 00); jmp loop (eb f3)
  // RBX walks into the read-only page 0x81000.
  const code = [0xff, 0xc0, 0x89, 0x03, 0x48, 0x81, 0xc3, 0x00, 0x04, 0x00, 0x00, 0xeb, 0xf3];
  const regs: [number, bigint][] = [[RBX, 0x7f000n]];
  const a = runWith(false, code, regs, 10_000);
  const b = runWith(true, code, regs, 10_000);
  assert.equal(a.exit, EXIT_EXCEPTION);
  assert.equal(a.vector, VEC_PF);
  assert.equal(a.rip, 0x10002);
  assert.deepEqual(b, a);
  for (const after of AFTERS) assert.deepEqual(runWith(after, code, regs, 10_000), a, `after ${after}`);
});

test('the stack across 4 GiB and accesses that straddle a page: compiled templates agree with the interpreter', () => {
  // RSP starts at 0x1_0000_0010: the pushes borrow from its high half, the pops carry into it, and the loads and the
  // store at RSP - 0x11..0x14 cross the page boundary at 4 GiB, each starting in the last bytes its size allows
  // (the templates' TLB hit path must not take them).
  // 0x10000: mov ecx, 30 (b9 1e 00 00 00)
  // loop: push rax; push rbx; push rcx; push rdx (50 53 51 52); call f (e8 2f 00 00 00)
  //   pop rdx; pop rcx; pop rbx; pop rax (5a 59 5b 58); mov r8, [rsp - 0x14] (4c 8b 44 24 ec)
  //   mov [rsp - 0x14], r8 (4c 89 44 24 ec); mov r10d, [rsp - 0x12] (44 8b 54 24 ee); add rax, r10 (4c 01 d0)
  //   movzx r9d, word [rsp - 0x11] (44 0f b7 4c 24 ef); add rax, r8 (4c 01 c0); add rax, r9 (4c 01 c8); inc rbx (48 ff c3)
  //   mov [rsp - 0x1c], bl (88 5c 24 e4); dec ecx (ff c9); jnz loop (75 ca); jmp $ (eb fe)
  // f: add rax, 0x11 (48 83 c0 11); mov r9d, [rsp + 4] (44 8b 4c 24 04) — the high half of the return address —;
  //   add rax, r9 (4c 01 c8); ret (c3)
  const code = [0xb9, 0x1e, 0, 0, 0, 0x50, 0x53, 0x51, 0x52, 0xe8, 0x2f, 0, 0, 0, 0x5a, 0x59, 0x5b, 0x58,
    0x4c, 0x8b, 0x44, 0x24, 0xec, 0x4c, 0x89, 0x44, 0x24, 0xec, 0x44, 0x8b, 0x54, 0x24, 0xee, 0x4c, 0x01, 0xd0,
    0x44, 0x0f, 0xb7, 0x4c, 0x24, 0xef, 0x4c, 0x01, 0xc0, 0x4c, 0x01, 0xc8, 0x48, 0xff, 0xc3, 0x88, 0x5c, 0x24, 0xe4,
    0xff, 0xc9, 0x75, 0xca, 0xeb, 0xfe, 0x48, 0x83, 0xc0, 0x11, 0x44, 0x8b, 0x4c, 0x24, 0x04, 0x4c, 0x01, 0xc8, 0xc3];
  const regs: [number, bigint][] = [[RSP, 0x100000010n], [RAX, 0x0123456789abcdefn], [RBX, 0xfedcba9876543210n], [RDX, 0xffffffffn]];
  const total = 30 * (4 + 1 + 4 + 4 + 13) + 40;
  for (const chunk of [1, 7, 2048]) {
    const a = runWith(false, code, regs, total, chunk);
    assert.equal(a.rip, 0x1003b, 'ends at the final jmp $');
    assert.equal(a.regs[4], 0x100000010n, 'RSP back where it started');
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, regs, total, chunk), a, `chunk ${chunk}, after ${after}`);
  }
});

test('SSE moves, PXOR/POR/PAND/PANDN, PCMPEQB, PMOVMSKB, NOP [m] and JMP r/m64: compiled templates agree with the interpreter', () => {
  // RSI walks over a byte pattern in the code's page up to and across the page boundary at 0x11000 (16-byte loads: the
  // TLB hit path, then the miss path); RDI walks across 0x31000 (16-byte stores, read back).
  // 0x10000: mov ecx, 24 (b9 18 00 00 00)
  // loop: movdqu xmm0, [rsi] (f3 0f 6f 06); movdqu xmm1, [rsi + 5] (f3 0f 6f 4e 05); pxor xmm2, xmm2 (66 0f ef d2)
  //   pcmpeqb xmm2, xmm0 (66 0f 74 d0); pmovmskb eax, xmm2 (66 0f d7 c2); por xmm3, xmm0 (66 0f eb d8)
  //   pxor xmm3, xmm1 (66 0f ef d9); pand xmm1, xmm3 (66 0f db cb); pandn xmm1, xmm0 (66 0f df c8)
  //   pcmpeqb xmm4, xmm4 (66 0f 74 e4); pxor xmm4, xmm1 (66 0f ef e1); movups [rdi], xmm4 (0f 11 27)
  //   movaps xmm5, [rdi] (0f 28 2f); movq rdx, xmm5 (66 48 0f 7e ea); add rbx, rax (48 01 c3); add rbx, rdx (48 01 d3)
  //   pshufd xmm6, xmm5, 0x4e (66 0f 70 f5 4e); movq r10, xmm6 (66 49 0f 7e f2); add rbx, r10 (4c 01 d3)
  //   movq r11, xmm3 (66 49 0f 7e db); add rbx, r11 (4c 01 db); movdqa xmm7, xmm3 (66 0f 6f fb)
  //   pshufd xmm7, xmm7, 0x1b (66 0f 70 ff 1b); movq r12, xmm7 (66 49 0f 7e fc); add rbx, r12 (4c 01 e3)
  //   nop word [rax + rax] (66 0f 1f 04 00); inc rsi (48 ff c6); inc rdi (48 ff c7); lea r9, [rip + 3] (4c 8d 0d 03 00 00 00)
  //   jmp r9 (41 ff e1); jmp [r8] (41 ff 20) — R8 points at a quadword holding the address of the next instruction —
  //   dec ecx (ff c9); jnz loop (75 80); jmp $ (eb fe)
  const code = new Array<number>(0x1010).fill(0);
  const put = (at: number, bytes: number[]): void => bytes.forEach((b, k) => { code[at + k] = b; });
  put(0, [0xb9, 0x18, 0, 0, 0, 0xf3, 0x0f, 0x6f, 0x06, 0xf3, 0x0f, 0x6f, 0x4e, 0x05, 0x66, 0x0f, 0xef, 0xd2, 0x66, 0x0f, 0x74, 0xd0,
    0x66, 0x0f, 0xd7, 0xc2, 0x66, 0x0f, 0xeb, 0xd8, 0x66, 0x0f, 0xef, 0xd9, 0x66, 0x0f, 0xdb, 0xcb, 0x66, 0x0f, 0xdf, 0xc8,
    0x66, 0x0f, 0x74, 0xe4, 0x66, 0x0f, 0xef, 0xe1, 0x0f, 0x11, 0x27, 0x0f, 0x28, 0x2f, 0x66, 0x48, 0x0f, 0x7e, 0xea,
    0x48, 0x01, 0xc3, 0x48, 0x01, 0xd3, 0x66, 0x0f, 0x70, 0xf5, 0x4e, 0x66, 0x49, 0x0f, 0x7e, 0xf2, 0x4c, 0x01, 0xd3,
    0x66, 0x49, 0x0f, 0x7e, 0xdb, 0x4c, 0x01, 0xdb, 0x66, 0x0f, 0x6f, 0xfb, 0x66, 0x0f, 0x70, 0xff, 0x1b, 0x66, 0x49, 0x0f, 0x7e, 0xfc,
    0x4c, 0x01, 0xe3, 0x66, 0x0f, 0x1f, 0x04, 0x00, 0x48, 0xff, 0xc6, 0x48, 0xff, 0xc7,
    0x4c, 0x8d, 0x0d, 0x03, 0, 0, 0, 0x41, 0xff, 0xe1, 0x41, 0xff, 0x20, 0xff, 0xc9, 0x75, 0x80, 0xeb, 0xfe]);
  put(0x800, le64(0x10081n));
  // Bytes with sign bits and zeros in a pattern that no shift of it repeats.
  for (let k = 0xfe0; k < 0x1010; k++) code[k] = k % 5 === 0 ? 0 : (k * 0x9d + (k >> 3)) & 0xff;
  const regs: [number, bigint][] = [[RSI, 0x10fe0n], [RDI, 0x30fe8n], [R8, 0x10800n], [RBX, 0x5555n]];
  const total = 1 + 24 * 33 + 3;
  for (const chunk of [1, 9, 2048]) {
    const a = runWith(false, code, regs, total, chunk);
    assert.equal(a.rip, 0x10085, 'ends at the final jmp $');
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, regs, total, chunk), a, `chunk ${chunk}, after ${after}`);
  }
  // A non-canonical target faults at the JMP with nothing changed (the sixth pass). 0x10000: mov ecx, 6 (b9 06 00 00 00)
  // loop: lea rax, [rip - 7] (48 8d 05 f9 ff ff ff); mov rdx, 0x800000000000 (48 ba ...); dec ecx (ff c9)
  //   cmovz rax, rdx (48 0f 44 c2); jmp rax (ff e0)
  const bad = [0xb9, 0x06, 0, 0, 0, 0x48, 0x8d, 0x05, 0xf9, 0xff, 0xff, 0xff, 0x48, 0xba, ...le64(0x800000000000n), 0xff, 0xc9,
    0x48, 0x0f, 0x44, 0xc2, 0xff, 0xe0];
  const a = runWith(false, bad, [], 100);
  assert.equal(a.exit, EXIT_EXCEPTION);
  assert.equal(a.vector, 13);
  assert.equal(a.rip, 0x1001c);
  assert.equal(a.icount, 1 + 6 * 5 - 1);
  for (const after of AFTERS) assert.deepEqual(runWith(after, bad, [], 100), a, `after ${after}`);
});

test('a flag record overwritten within a block is not stored, unless something reads it or may fault first', () => {
  // 0x10000: mov edi, 40 (bf 28 00 00 00)
  // loop: lea eax, [rdi + rdi*8] (8d 04 ff); xor eax, 0x5a (83 f0 5a); mov ebx, 0x100 (bb 00 01 00 00)
  //   cmp eax, ebx (39 d8); setb cl (0f 92 c1) — reads CMP's record —; add eax, 1 (83 c0 01); movzx ecx, cl (0f b6 c9)
  //   add edx, ecx (01 ca); cmp eax, ebx (39 d8); inc esi (ff c6) — keeps CMP's carry —; adc edx, 0 (83 d2 00)
  //   sub eax, ebx (29 d8); dec edi (ff cf); jnz loop (75 db); jmp $ (eb fe)
  const reads = [0xbf, 0x28, 0, 0, 0, 0x8d, 0x04, 0xff, 0x83, 0xf0, 0x5a, 0xbb, 0x00, 0x01, 0, 0, 0x39, 0xd8, 0x0f, 0x92, 0xc1,
    0x83, 0xc0, 0x01, 0x0f, 0xb6, 0xc9, 0x01, 0xca, 0x39, 0xd8, 0xff, 0xc6, 0x83, 0xd2, 0x00, 0x29, 0xd8, 0xff, 0xcf, 0x75, 0xdb, 0xeb, 0xfe];
  const a = runWith(false, reads, [], 1 + 40 * 14 + 1);
  assert.equal(a.rip, 0x1002a);
  assert.equal(a.regs[3], BigInt(2 * [...Array(40)].map((_, k) => k + 1).filter((d) => ((9 * d) ^ 0x5a) < 0x100).length), 'EDX: twice the passes with EAX below 0x100');
  for (const after of AFTERS) assert.deepEqual(runWith(after, reads, [], 1 + 40 * 14 + 1), a, `after ${after}`);
  // 0x10000: mov ecx, 10 (b9 0a 00 00 00)
  // loop: mov eax, ecx (89 c8); sub eax, 5 (83 e8 05); mov [rdx], ebx (89 1a) — the fifth pass writes the read-only page:
  //   RFLAGS must be SUB's —; add eax, 7 (83 c0 07); add rdx, 0x100 (48 81 c2 00 01 00 00); dec ecx (ff c9); jnz loop (75 eb)
  const faults = [0xb9, 0x0a, 0, 0, 0, 0x89, 0xc8, 0x83, 0xe8, 0x05, 0x89, 0x1a, 0x83, 0xc0, 0x07, 0x48, 0x81, 0xc2, 0x00, 0x01, 0, 0,
    0xff, 0xc9, 0x75, 0xeb, 0xeb, 0xfe];
  const f = runWith(false, faults, [[RDX, 0x80c00n]], 100);
  assert.equal(f.exit, EXIT_EXCEPTION);
  assert.equal(f.rip, 0x1000a);
  for (const after of AFTERS) assert.deepEqual(runWith(after, faults, [[RDX, 0x80c00n]], 100), f, `after ${after}`);
});

test('a store into the running compiled block is seen before its next instruction executes', () => {
  // loop: inc byte [rip + 1] (fe 05 01 00 00 00) — the immediate of the next instruction —; mov eax, 0 (b8 00 00 00 00);
  // inc ebx (ff c3); jmp loop (eb f1). Pass k loads k.
  const code = [0xfe, 0x05, 0x01, 0x00, 0x00, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x00, 0xff, 0xc3, 0xeb, 0xf1];
  const a = runWith(false, code, [], 40);
  const b = runWith(true, code, [], 40);
  assert.equal(a.regs[0], 10n);
  assert.deepEqual(b, a);
  for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], 40), a, `after ${after}`);
});

test('a compiled block that writes the read-only page faults with RIP at the store (ALU templates on memory)', () => {
  // mov eax, 7 (b8 07 00 00 00); cmp dword [0x81000], eax (39 04 25 00 10 08 00); add eax, [0x81000] (03 04 25 ...);
  // mov [0x81000], eax (89 04 25 ...); jmp start (eb e4)
  const code = [0xb8, 0x07, 0, 0, 0, 0x39, 0x04, 0x25, ...le32(0x81000), 0x03, 0x04, 0x25, ...le32(0x81000),
    0x89, 0x04, 0x25, ...le32(0x81000), 0xeb, 0xe4];
  const a = runWith(false, code, [], 100);
  const b = runWith(true, code, [], 100);
  assert.equal(a.exit, EXIT_EXCEPTION);
  assert.equal(a.rip, 0x10013);
  assert.equal(a.icount, 3);
  assert.deepEqual(b, a);
  for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], 100), a, `after ${after}`);
});


/** Flag-setting forms on RAX/RBX (or memory at RSI) whose condition a compiled Jcc reads straight from the record. */
const FLAG_FORMS: [string, number[]][] = [
  ['cmp al, bl', [0x38, 0xd8]], ['cmp eax, ebx', [0x39, 0xd8]], ['cmp rax, rbx', [0x48, 0x39, 0xd8]],
  ['cmp al, 0x80', [0x3c, 0x80]], ['cmp byte [rsi], bl', [0x38, 0x1e]], ['cmp bl, [rsi]', [0x3a, 0x1e]],
  // CMPXCHG (a SUB record of RAX and the destination; twice: the second finds EAX equal), INC/DEC of byte and word registers.
  ['cmpxchg [rsi], ebx (x2)', [0x0f, 0xb1, 0x1e, 0x0f, 0xb1, 0x1e]], ['lock cmpxchg [rsi], rbx', [0xf0, 0x48, 0x0f, 0xb1, 0x1e]],
  // BT: CF from the bit, the rest from the record before (known here, stored by an earlier block, or only the Cpu's after STC).
  ['cmp eax, ebx; bt eax, 5', [0x39, 0xd8, 0x0f, 0xba, 0xe0, 0x05]], ['cmp rax, rbx; bt rbx, 63', [0x48, 0x39, 0xd8, 0x48, 0x0f, 0xba, 0xe3, 0x3f]],
  ['add al, bl; jmp +0; bt dword [rsi], 3', [0x00, 0xd8, 0xeb, 0x00, 0x0f, 0xba, 0x26, 0x03]], ['inc eax; jmp +0; bt rax, rbx', [0xff, 0xc0, 0xeb, 0x00, 0x48, 0x0f, 0xa3, 0xd8]],
  ['add al, bl; jmp +0; bt eax, 3; lahf (AF kept)', [0x00, 0xd8, 0xeb, 0x00, 0x0f, 0xba, 0xe0, 0x03, 0x9f]],
  ['sub rax, rbx; jmp +0; bt rax, 1; lahf', [0x48, 0x29, 0xd8, 0xeb, 0x00, 0x48, 0x0f, 0xba, 0xe0, 0x01, 0x9f]],
  ['stc; bt eax, ebx', [0xf9, 0x0f, 0xa3, 0xd8]], ['sub rax, rbx; jmp +0; rol eax, 3', [0x48, 0x29, 0xd8, 0xeb, 0x00, 0xc1, 0xc0, 0x03]],
  ['inc al', [0xfe, 0xc0]], ['dec bx', [0x66, 0xff, 0xcb]], ['cmp eax, ebx; dec bl', [0x39, 0xd8, 0xfe, 0xcb]], ['stc; inc ax', [0xf9, 0x66, 0xff, 0xc0]],
  ['test al, bl', [0x84, 0xd8]], ['test eax, ebx', [0x85, 0xd8]], ['test rax, rbx', [0x48, 0x85, 0xd8]],
  ['test byte [rsi], 0x81', [0xf6, 0x06, 0x81]],
  ['add al, bl', [0x00, 0xd8]], ['add eax, ebx', [0x01, 0xd8]], ['add rax, rbx', [0x48, 0x01, 0xd8]],
  ['sub al, bl', [0x28, 0xd8]], ['sub eax, ebx', [0x29, 0xd8]], ['sub rax, rbx', [0x48, 0x29, 0xd8]],
  ['and al, bl', [0x20, 0xd8]], ['or eax, ebx', [0x09, 0xd8]], ['xor rax, rbx', [0x48, 0x31, 0xd8]],
  ['shl eax, 5', [0xc1, 0xe0, 0x05]], ['shr eax, 31', [0xc1, 0xe8, 0x1f]], ['sar eax, 1', [0xc1, 0xf8, 0x01]], ['shl eax, 0', [0xc1, 0xe0, 0x00]],
  ['shl rax, 5', [0x48, 0xc1, 0xe0, 0x05]], ['shl rax, 32', [0x48, 0xc1, 0xe0, 0x20]], ['shl rax, 63', [0x48, 0xc1, 0xe0, 0x3f]],
  ['shr rax, 33', [0x48, 0xc1, 0xe8, 0x21]], ['shr rax, 1', [0x48, 0xc1, 0xe8, 0x01]], ['sar rax, 40', [0x48, 0xc1, 0xf8, 0x28]],
  ['sar rax, 31', [0x48, 0xc1, 0xf8, 0x1f]], ['shl rax, 1', [0x48, 0xd1, 0xe0]],
  ['imul rax, rbx', [0x48, 0x0f, 0xaf, 0xc3]], ['imul rbx, rax', [0x48, 0x0f, 0xaf, 0xd8]], ['imul rax, rax', [0x48, 0x0f, 0xaf, 0xc0]],
  ['inc eax', [0xff, 0xc0]], ['dec eax', [0xff, 0xc8]], ['inc rax', [0x48, 0xff, 0xc0]], ['dec rax', [0x48, 0xff, 0xc8]],
  ['movzx eax, bl', [0x0f, 0xb6, 0xc3]], ['movzx rax, bx', [0x48, 0x0f, 0xb7, 0xc3]], ['movsx eax, bl', [0x0f, 0xbe, 0xc3]],
  ['movsx rax, bx', [0x48, 0x0f, 0xbf, 0xc3]], ['movsxd rax, ebx', [0x48, 0x63, 0xc3]],
  ['cmp ax, bx', [0x66, 0x39, 0xd8]], ['add ax, bx', [0x66, 0x01, 0xd8]], ['sub ax, 0x8000', [0x66, 0x2d, 0x00, 0x80]],
  ['test ax, bx', [0x66, 0x85, 0xd8]], ['cmp word [rsi], bx', [0x66, 0x39, 0x1e]], ['cmp ax, -1', [0x66, 0x83, 0xf8, 0xff]],
  ['xor ax, [rsi]', [0x66, 0x33, 0x06]], ['mov ax, bx', [0x66, 0x89, 0xd8]], ['mov ax, [rsi]', [0x66, 0x8b, 0x06]],
  ['mov [rsi], bx then mov ax, [rsi]', [0x66, 0x89, 0x1e, 0x66, 0x8b, 0x06]], ['mov al, 0x80', [0xb0, 0x80]],
  ['adc rax, rbx', [0x48, 0x11, 0xd8]], ['sbb eax, ebx', [0x19, 0xd8]], ['sbb rax, -1', [0x48, 0x83, 0xd8, 0xff]],
  ['cmp eax, ebx; adc rax, rbx', [0x39, 0xd8, 0x48, 0x11, 0xd8]], ['cmp rax, rbx; sbb eax, ebx', [0x48, 0x39, 0xd8, 0x19, 0xd8]],
  ['cmp al, bl; adc eax, 7', [0x38, 0xd8, 0x83, 0xd0, 0x07]], ['test eax, eax; adc rax, rbx', [0x85, 0xc0, 0x48, 0x11, 0xd8]],
  ['cmp ax, bx; inc eax', [0x66, 0x39, 0xd8, 0xff, 0xc0]], ['add eax, ebx; adc rax, 0', [0x01, 0xd8, 0x48, 0x83, 0xd0, 0x00]],
  ['cmp rax, rbx; mov ecx, 5; dec rax', [0x48, 0x39, 0xd8, 0xb9, 0x05, 0x00, 0x00, 0x00, 0x48, 0xff, 0xc8]],
  ['stc; sbb rax, rbx', [0xf9, 0x48, 0x19, 0xd8]], ['stc; adc rax, rbx', [0xf9, 0x48, 0x11, 0xd8]],
  // Rotates after no known record, and after each kind of record a region knows (their AF kept, CF and OF replaced).
  ['rol eax, 5', [0xc1, 0xc0, 0x05]], ['ror eax, 31', [0xc1, 0xc8, 0x1f]], ['rol rax, 1', [0x48, 0xd1, 0xc0]],
  ['ror rax, 63', [0x48, 0xc1, 0xc8, 0x3f]], ['ror rax, 32', [0x48, 0xc1, 0xc8, 0x20]], ['rol eax, 32 (no count)', [0xc1, 0xc0, 0x20]],
  ['xor eax, ebx; ror eax, 7', [0x31, 0xd8, 0xc1, 0xc8, 0x07]], ['add rax, rbx; rol rax, 13', [0x48, 0x01, 0xd8, 0x48, 0xc1, 0xc0, 0x0d]],
  ['sub eax, ebx; ror rax, 1', [0x29, 0xd8, 0x48, 0xd1, 0xc8]], ['shl eax, 3; ror eax, 2', [0xc1, 0xe0, 0x03, 0xc1, 0xc8, 0x02]],
  ['inc eax; rol eax, 1', [0xff, 0xc0, 0xd1, 0xc0]], ['cmp al, bl; ror eax, 9', [0x38, 0xd8, 0xc1, 0xc8, 0x09]],
  ['ror eax, 3; ror eax, 5', [0xc1, 0xc8, 0x03, 0xc1, 0xc8, 0x05]], ['adc rax, rbx; rol rax, 7', [0x48, 0x11, 0xd8, 0x48, 0xc1, 0xc0, 0x07]],
  ['xor eax, ebx; rol eax, 4; mov ecx, eax', [0x31, 0xd8, 0xc1, 0xc0, 0x04, 0x89, 0xc1]],
  // LAHF after the rotate: AF (kept from the record before) lands in AH.
  ['add rax, rbx; rol rax, 13; lahf', [0x48, 0x01, 0xd8, 0x48, 0xc1, 0xc0, 0x0d, 0x9f]], ['inc eax; ror eax, 1; lahf', [0xff, 0xc0, 0xd1, 0xc8, 0x9f]],
  ['sub al, bl; ror rax, 3; lahf', [0x28, 0xd8, 0x48, 0xc1, 0xc8, 0x03, 0x9f]], ['rol eax, 3; lahf', [0xc1, 0xc0, 0x03, 0x9f]],
  // NOT and BSWAP keep flags; NEG sets them as 0 - x.
  ['cmp rax, rbx; not eax', [0x48, 0x39, 0xd8, 0xf7, 0xd0]], ['cmp eax, ebx; not rax', [0x39, 0xd8, 0x48, 0xf7, 0xd0]],
  ['neg eax', [0xf7, 0xd8]], ['neg rax', [0x48, 0xf7, 0xd8]], ['neg rbx', [0x48, 0xf7, 0xdb]],
  ['cmp rax, rbx; bswap eax', [0x48, 0x39, 0xd8, 0x0f, 0xc8]], ['cmp eax, ebx; bswap rax', [0x39, 0xd8, 0x48, 0x0f, 0xc8]],
  // Read-modify-write on memory ([rsi] holds AL in its low byte), read back into ECX or RCX.
  ['add [rsi], ebx', [0x01, 0x1e, 0x8b, 0x0e]], ['sub [rsi], rbx', [0x48, 0x29, 0x1e, 0x48, 0x8b, 0x0e]],
  ['and dword [rsi], 0x7f', [0x83, 0x26, 0x7f, 0x8b, 0x0e]], ['or [rsi], rax', [0x48, 0x09, 0x06, 0x48, 0x8b, 0x0e]],
  ['xor dword [rsi], -1', [0x83, 0x36, 0xff, 0x8b, 0x0e]], ['add qword [rsi], 0x7fffffff', [0x48, 0x81, 0x06, 0xff, 0xff, 0xff, 0x7f, 0x48, 0x8b, 0x0e]],
  ['inc dword [rsi]', [0xff, 0x06, 0x8b, 0x0e]], ['dec qword [rsi]', [0x48, 0xff, 0x0e, 0x48, 0x8b, 0x0e]],
  ['stc; inc qword [rsi]', [0xf9, 0x48, 0xff, 0x06, 0x48, 0x8b, 0x0e]], ['cmp eax, ebx; dec dword [rsi]', [0x39, 0xd8, 0xff, 0x0e, 0x8b, 0x0e]],
  // Shifts by CL = BL (counts of 0 after masking among the pairs: the flags before are kept).
  ['mov ecx, ebx; shl rax, cl', [0x89, 0xd9, 0x48, 0xd3, 0xe0]], ['mov ecx, ebx; shr eax, cl', [0x89, 0xd9, 0xd3, 0xe8]],
  ['mov ecx, ebx; sar rax, cl', [0x89, 0xd9, 0x48, 0xd3, 0xf8]], ['cmp rax, rbx; mov ecx, ebx; sar eax, cl', [0x48, 0x39, 0xd8, 0x89, 0xd9, 0xd3, 0xf8]],
  ['sub eax, ebx; mov ecx, ebx; shl eax, cl', [0x29, 0xd8, 0x89, 0xd9, 0xd3, 0xe0]], ['mov ecx, ebx; shl rcx, cl', [0x89, 0xd9, 0x48, 0xd3, 0xe1]],
  ['cmp al, bl; mov ecx, ebx; shr rax, cl', [0x38, 0xd8, 0x89, 0xd9, 0x48, 0xd3, 0xe8]],
];

const PAIRS: [bigint, bigint][] = [
  [0n, 0n], [1n, 2n], [2n, 1n], [0x80n, 0x7fn], [0x7fn, 0x80n], [0xffn, 1n], [0xffffffffn, 0n], [0x7fffffffn, 0x80000000n],
  [0x8000000000000000n, 1n], [0xffffffffffffffffn, 1n], [0x123456789abcdef0n, 0x123456789abcdef0n], [0x100000000n, 0xffffffffn],
  [0xffffffffn, 0xffffffffn], [0xffffffff80000000n, 0xffffffff80000000n], [0xffffffff80000000n, 0xffffffffn],
  // A count of 0x60 in CL: 32 for 64-bit shifts, none for 32-bit ones.
  [0xfedcba9876543210n, 0x60n],
];

/**
 * Every condition after each form of FLAG_FORMS, against the interpreter:
 * with `split`, a JMP to the next instruction ends the block between the
 * form and its Jcc, so the condition comes from the stored record (cond.ts,
 * or the engine when only the Cpu holds it) instead of the form's locals.
 */
function everyCondition(split: boolean): void {
  const jmp = split ? [0xeb, 0x00] : [];
  // (Split, half the pairs: signs, carries, overflows, zero, and a CL count past 31.)
  const pairs = split ? PAIRS.filter((_, k) => k % 2 === 0 || k === PAIRS.length - 1) : PAIRS;
  for (const [name, form] of FLAG_FORMS) {
    for (const [x, y] of pairs) {
      // mov rsi, 0x40000; mov r8d, 3. Three passes (a block is compiled at an arrival and runs compiled from the next one) of,
      // per cc: mov rax, x; mov rbx, y; mov [rsi], al; <form>; [jmp +0]; jcc +6; or edx, 1 << cc. Then dec r8d; jnz pass; jmp $.
      const code: number[] = [0x48, 0xbe, ...le64(0x40000n), 0x41, 0xb8, ...le32(3)];
      const pass = code.length;
      for (let cc = 0; cc < 16; cc++) {
        code.push(0x48, 0xb8, ...le64(x), 0x48, 0xbb, ...le64(y), 0x88, 0x06, ...form, ...jmp, 0x70 + cc, 0x06, 0x81, 0xca, ...le32(1 << cc));
      }
      code.push(0x41, 0xff, 0xc8, 0x0f, 0x85, ...le32(pass - (code.length + 9)), 0xeb, 0xfe);
      const total = split ? 600 : 500;
      const a = runWith(false, code, [], total);
      assert.equal(a.rip, 0x10000 + code.length - 2, `${name}: ends at the final jmp $`);
      for (const after of [0, 1]) {
        const what = `${name} with ${x.toString(16)}, ${y.toString(16)}; after ${after}`;
        assert.deepEqual(runWith(after, code, [], total, total, what), a, what);
      }
    }
  }
}

test('every condition code after each flag-setting template: compiled Jcc agrees with the interpreter', () => {
  everyCondition(false);
});

test('every condition code of a record stored by an earlier block (cond.ts): compiled Jcc agrees with the interpreter', () => {
  everyCondition(true);
});

test('a region with branches, a local call and its return, and byte loops matches the interpreter at every budget', () => {
  // 0x10000: mov ecx, 40 (b9 28 00 00 00); xor edx, edx (31 d2)
  // outer (0x10007): lea rsi, [rip + str] (48 8d 35 rel32 → 0x10100); call scan (e8 rel32 → 0x10040)
  //   add edx, eax (01 c2); test cl, 1 (f6 c1 01); jz even (74 05); add edx, 3 (83 c2 03); jmp next (eb 03)
  //   even: sub edx, 1 (83 ea 01)
  //   next: dec ecx (ff c9); jnz outer (75 e1); jmp $ (eb fe)
  // scan (0x10040): xor eax, eax (31 c0)
  //   loop: mov bl, [rsi] (8a 1e); cmp bl, 0x3d (80 fb 3d); je out (74 0a); add rsi, 1 (48 83 c6 01); inc eax (ff c0);
  //   test bl, bl (84 db); jne loop (75 ef)
  //   out: ret (c3)
  const code = new Array<number>(0x120).fill(0x90);
  const put = (at: number, bytes: number[]): void => bytes.forEach((b, k) => { code[at + k] = b; });
  put(0x00, [0xb9, 0x28, 0, 0, 0, 0x31, 0xd2]);
  put(0x07, [0x48, 0x8d, 0x35, ...le32(0x100 - 0x0e)]);
  put(0x0e, [0xe8, ...le32(0x40 - 0x13)]);
  put(0x13, [0x01, 0xc2, 0xf6, 0xc1, 0x01, 0x74, 0x05, 0x83, 0xc2, 0x03, 0xeb, 0x03, 0x83, 0xea, 0x01, 0xff, 0xc9, 0x75, 0xe1, 0xeb, 0xfe]);
  put(0x40, [0x31, 0xc0, 0x8a, 0x1e, 0x80, 0xfb, 0x3d, 0x74, 0x0a, 0x48, 0x83, 0xc6, 0x01, 0xff, 0xc0, 0x84, 0xdb, 0x75, 0xef, 0xc3]);
  put(0x100, [...'abcdefg'].map((ch) => ch.charCodeAt(0)).concat([0x3d, 0]));
  const total = 40 * (2 + 7 + 8 * 7 + 4 + 1 + 4 + 2) + 20;
  for (const chunk of [1, 5, 13, 2048]) {
    const a = runWith(false, code, [], total, chunk);
    assert.equal(a.regs[3], 40n * 7n + 20n * 3n - 20n, 'EDX: 7 characters before "=" per pass, +3 on odd passes, -1 on even ones');
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], total, chunk), a, `chunk ${chunk}, after ${after}`);
  }
});

test('wasm regions chain into the region at their exit, and never into code that changed or was remapped since', () => {
  // 0x10000: mov ecx, 3000 (b9 b8 0b 00 00); loop: call 0x20000 (e8 rel32); dec ecx (ff c9); jnz loop (75 f7); jmp $ (eb fe)
  // 0x20000: add eax, 1 (83 c0 01); ret (c3) — then its frame is swapped for one with add eax, 100.
  const caller = [0xb9, 0xb8, 0x0b, 0, 0, 0xe8, ...le32(0x20000 - 0x1000a), 0xff, 0xc9, 0x75, 0xf7, 0xeb, 0xfe];
  const saved = { after: jit.after, wasm: jit.wasm, share: jit.wasmCallShare };
  jit.after = 1; jit.wasm = true; jit.wasmCallShare = Infinity;
  try {
    const p = new FlatPlatform(new wasmApi.Memory({ initial: 0, maximum: WASM_MAX_PAGES, shared: true }));
    p.poke(0x10000, caller);
    p.poke(0x20000, [0x83, 0xc0, 0x01, 0xc3]);
    const cpu = new Cpu(p);
    assert.ok(placeInWasm(cpu, p.memory as WasmMemory));
    const state = cpu.wasm;
    assert.ok(state !== undefined);
    cpu.rip = 0x10000;
    cpu.setReg64(RSP, 0x80000n);
    // 1,000 iterations of five instructions: the regions settle, then chain.
    assert.equal(cpu.run(1 + 5 * 1000), EXIT_LIMIT);
    assert.equal(cpu.reg64(RAX), 1000n);
    const before = state.entries;
    assert.equal(cpu.run(5 * 1000), EXIT_LIMIT);
    assert.equal(cpu.reg64(RAX), 2000n);
    assert.ok(state.entries - before < 20, `1,000 calls and returns took ${state.entries - before} entries from the run loop`);
    // Another frame at 0x20000; the TLB flush that makes it visible must also stop the chains into the old code.
    const other = reserveWasm(p.memory as WasmMemory, PAGE_SIZE) as Uint8Array;
    other.set([0x83, 0xc0, 0x64, 0xc3]);
    p.pages.set(0x20, { bytes: other, view: new DataView(other.buffer, other.byteOffset, PAGE_SIZE), mmio: undefined, wasm: other.byteOffset });
    cpu.flushTlb();
    assert.equal(cpu.run(5 * 10), EXIT_LIMIT);
    assert.equal(cpu.reg64(RAX), 2000n + 10n * 100n, 'the new frame\'s code ran');
    // A store into the callee (through the CPU, from outside the regions): add eax, 7.
    cpu.write8(0x20002, 7);
    assert.equal(cpu.run(5 * 10), EXIT_LIMIT);
    assert.equal(cpu.reg64(RAX), 3000n + 70n, 'the rewritten code ran');
  } finally {
    jit.after = saved.after; jit.wasm = saved.wasm; jit.wasmCallShare = saved.share;
  }
});

test('calls between regions on two pages: chained wasm regions end where the interpreter does, at every budget', () => {
  // 0x10000: mov ecx, 200; loop: call 0x11000; add ebx, eax; dec ecx; jnz loop; jmp $   0x11000: lea eax, [rcx + rcx*2]; ret
  const code = new Array<number>(0x1010).fill(0x90);
  const put = (at: number, bytes: number[]): void => bytes.forEach((b, k) => { code[at + k] = b; });
  put(0x00, [0xb9, 0xc8, 0, 0, 0, 0xe8, ...le32(0x1000 - 0x0a), 0x01, 0xc3, 0xff, 0xc9, 0x75, 0xf5, 0xeb, 0xfe]);
  put(0x1000, [0x8d, 0x04, 0x49, 0xc3]);
  const total = 1 + 200 * 6 + 10;
  for (const chunk of [1, 7, 50, 2048]) {
    const a = runWith(false, code, [], total, chunk);
    assert.equal(a.regs[1], 3n * (200n * 201n) / 2n);
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], total, chunk), a, `chunk ${chunk}, after ${after}`);
  }
});

test('FS- and GS-relative operands add the segment base in compiled code, and see it change between runs', () => {
  // loop: mov rax, fs:[rbx + 8] (64 48 8b 43 08); add rcx, gs:[rbx] (65 48 03 0b); mov gs:[rbx + 16], ecx (65 89 4b 10);
  // add dword fs:[rbx], 3 (64 83 03 03); lea rdx, fs:[rbx + 4] (64 48 8d 53 04: no base); dec esi (ff ce); jnz loop (75 e6); jmp $ (eb fe)
  const code = [0x64, 0x48, 0x8b, 0x43, 0x08, 0x65, 0x48, 0x03, 0x0b, 0x65, 0x89, 0x4b, 0x10, 0x64, 0x83, 0x03, 0x03,
    0x64, 0x48, 0x8d, 0x53, 0x04, 0xff, 0xce, 0x75, 0xe6, 0xeb, 0xfe];
  const regs: [number, bigint][] = [[RBX, 0x100n], [RSI, 50n]];
  // Different values at the two bases: which segment an access used shows in RAX and RCX.
  const bases = (fs: number, gs: number) => (cpu: Cpu): void => {
    cpu.segBase[SEG_FS] = fs; cpu.segBase[SEG_GS] = gs;
    for (const [a, v] of [[0x30108, 0x1111], [0x38108, 0x2222], [0x30100, 0x10], [0x38100, 0x20]] as const) cpu.write64(a, v, 0);
  };
  for (const [fs, gs] of [[0x30000, 0x38000], [0x38000, 0x30000], [0x30000, 0x30000]] as const) {
    for (const chunk of [3, 100]) {
      const a = runWith(false, code, regs, 360, chunk, '', bases(fs, gs));
      assert.equal(a.vector, undefined);
      assert.equal(a.regs[3], 0x104n, 'LEA ignores the FS base');
      assert.equal(a.regs[0], fs === 0x30000 ? 0x1111n : 0x2222n, 'RAX: fs:[0x108]');
      // RCX sums gs:[0x100] over 50 passes; FS's ADD of 3 to the same dword shows when the bases are equal.
      assert.equal(a.regs[2], fs === gs ? 50n * 0x10n + 3n * (49n * 50n) / 2n : gs === 0x30000 ? 50n * 0x10n : 50n * 0x20n);
      for (const after of AFTERS) assert.deepEqual(runWith(after, code, regs, 360, chunk, `fs ${fs.toString(16)}, after ${after}`, bases(fs, gs)), a);
    }
  }
});

test('SETcc and CMOVcc of every condition after each flag-setting form: compiled code agrees with the interpreter', () => {
  const forms: [string, number[]][] = [
    ['cmp eax, ebx', [0x39, 0xd8]], ['cmp rax, rbx', [0x48, 0x39, 0xd8]], ['cmp al, bl', [0x38, 0xd8]], ['test eax, ebx', [0x85, 0xd8]],
    ['sub rax, rbx', [0x48, 0x29, 0xd8]], ['dec eax', [0xff, 0xc8]], ['add al, bl', [0x00, 0xd8]], ['shr rax, 1', [0x48, 0xc1, 0xe8, 0x01]],
  ];
  for (const [name, form] of forms) {
    for (const [x, y] of PAIRS) {
      // Three passes of, per cc: xor ecx, ecx; mov r10, 0xffffffff00000000; mov r9d, 1; mov rax, x; mov rbx, y; <form>;
      // setcc cl; cmovcc r10d, r9d (zero-extends either way); shl edx, 1; or dl, cl; shl edx, 1; or edx, r10d;
      // mov r11, r10; shr r11, 32; or edx, r11d. Then jmp $.
      const code: number[] = [0x41, 0xb8, ...le32(3)];
      const pass = code.length;
      for (let cc = 0; cc < 16; cc++) {
        code.push(0x31, 0xc9, 0x49, 0xba, ...le64(0xffffffff00000000n), 0x41, 0xb9, ...le32(1), 0x48, 0xb8, ...le64(x), 0x48, 0xbb, ...le64(y),
          ...form, 0x0f, 0x90 + cc, 0xc1, 0x45, 0x0f, 0x40 + cc, 0xd1, 0xd1, 0xe2, 0x08, 0xca, 0xd1, 0xe2, 0x44, 0x09, 0xd2,
          0x4d, 0x89, 0xd3, 0x49, 0xc1, 0xeb, 0x20, 0x44, 0x09, 0xda);
      }
      code.push(0x41, 0xff, 0xc8, 0x0f, 0x85, ...le32(pass - (code.length + 9)), 0xeb, 0xfe);
      const a = runWith(false, code, [], 1000);
      assert.equal(a.rip, 0x10000 + code.length - 2, `${name}: ends at the final jmp $`);
      for (const after of [0, 1]) assert.deepEqual(runWith(after, code, [], 1000), a, `${name} with ${x.toString(16)}, ${y.toString(16)}; after ${after}`);
    }
  }
});

test('CALL through a register and through memory: chained or not, they end where the interpreter does; bad targets fault first', () => {
  // 0x10000: mov ecx, 20 (b9 14 00 00 00)
  // loop: mov eax, 0x11000 (b8 00 10 01 00); call rax (ff d0); call [r8] (41 ff 10); dec ecx (ff c9); jnz loop (75 f2); jmp $ (eb fe)
  // 0x11000: add rbx, rcx (48 01 cb); ret (c3). 0x11010: lea rbx, [rbx*2 + 1] (48 8d 1c 5d 01 00 00 00); ret (c3)
  const code = new Array<number>(0x1020).fill(0x90);
  const put = (at: number, bytes: number[]): void => bytes.forEach((b, k) => { code[at + k] = b; });
  put(0, [0xb9, 0x14, 0, 0, 0, 0xb8, 0x00, 0x10, 0x01, 0x00, 0xff, 0xd0, 0x41, 0xff, 0x10, 0xff, 0xc9, 0x75, 0xf2, 0xeb, 0xfe]);
  put(0x800, le64(0x11010n));
  put(0x1000, [0x48, 0x01, 0xcb, 0xc3]);
  put(0x1010, [0x48, 0x8d, 0x1c, 0x5d, 0x01, 0, 0, 0, 0xc3]);
  const total = 1 + 20 * 9;
  for (const chunk of [1, 4, 1000]) {
    const a = runWith(false, code, [[R8, 0x10800n]], total, chunk);
    assert.equal(a.rip, 0x10013, 'ends at the final jmp $');
    assert.equal(a.regs[4], 0x80000n, 'every call returned');
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, [[R8, 0x10800n]], total, chunk), a, `chunk ${chunk}, after ${after}`);
  }
  // The pointer unmapped (R8 past the mapped pages): #PF at the CALL [r8] with RSP as it was.
  const pf = runWith(false, code, [[R8, 0x200000n]], total);
  assert.deepEqual([pf.vector, pf.rip, pf.regs[4]], [VEC_PF, 0x1000c, 0x80000n]);
  for (const after of AFTERS) assert.deepEqual(runWith(after, code, [[R8, 0x200000n]], total), pf, `unmapped pointer, after ${after}`);
  // Lowered, not left to the handler (which ends the region): once compiled, the calls and returns chain.
  code[1] = 0xe8; code[2] = 0x07; // mov ecx, 2024
  onWasm([[0x10000, code]], (cpu) => {
    cpu.setReg64(R8, 0x10800n);
    assert.equal(cpu.run(1 + 9 * 1000), EXIT_LIMIT);
    const entries = entriesOver(cpu, 9 * 1000);
    assert.ok(entries < 20, `1,000 passes of CALL rax and CALL [r8] took ${entries} entries from the run loop`);
  });
  // A non-canonical target: #GP at the CALL with nothing pushed. mov rax, 0x800000000000 (48 b8 ...); call rax (ff d0)
  const bad = [0x48, 0xb8, ...le64(0x800000000000n), 0xff, 0xd0];
  const gp = runWith(false, bad, [], 10);
  assert.deepEqual([gp.vector, gp.rip, gp.regs[4], gp.icount], [13, 0x1000a, 0x80000n, 1]);
  for (const after of AFTERS) assert.deepEqual(runWith(after, bad, [], 10), gp, `non-canonical, after ${after}`);
});

test('a branch from a wasm region to another region of its own page chains into it', () => {
  // 0x11000: mov ecx, 3000 (b9 b8 0b 00 00); loop: call 0x10800 (e8 rel32); dec ecx (ff c9); jnz loop (75 f7); jmp $ (eb fe)
  // 0x10800: mov eax, 0x10900 (b8 00 09 01 00); jmp rax (ff e0) — an indirect target, never part of this region
  // 0x10900: add ebx, 1 (83 c3 01); ret (c3)
  onWasm([[0x11000, [0xb9, 0xb8, 0x0b, 0, 0, 0xe8, ...le32(0x10800 - 0x1100a), 0xff, 0xc9, 0x75, 0xf7, 0xeb, 0xfe]],
    [0x10800, [0xb8, 0x00, 0x09, 0x01, 0x00, 0xff, 0xe0]], [0x10900, [0x83, 0xc3, 0x01, 0xc3]]], (cpu) => {
    assert.equal(cpu.run(1 + 7 * 1000), EXIT_LIMIT);
    const entries = entriesOver(cpu, 7 * 1000);
    assert.equal(cpu.reg64(RBX), 2000n);
    assert.ok(entries < 20, `1,000 passes took ${entries} entries from the run loop`);
  });
});

test('two targets in the same chain-cache set both stay chained', () => {
  // 0x10000: mov ecx, 3000 (b9 b8 0b 00 00); loop: call A (e8); call B (e8); dec ecx (ff c9); jnz loop (75 f2); jmp $ (eb fe)
  // A = 0x20000: add eax, 1 (83 c0 01); ret (c3). B: the first address on page 0x21000 in A's set: add ebx, 1 (83 c3 01); ret (c3)
  const a = 0x20000;
  let b = 0x21000;
  while (chainSet(b) !== chainSet(a)) b++;
  onWasm([[0x10000, [0xb9, 0xb8, 0x0b, 0, 0, 0xe8, ...le32(a - 0x1000a), 0xe8, ...le32(b - 0x1000f), 0xff, 0xc9, 0x75, 0xf2, 0xeb, 0xfe]],
    [a, [0x83, 0xc0, 0x01, 0xc3]], [b, [0x83, 0xc3, 0x01, 0xc3]]], (cpu) => {
    assert.equal(cpu.run(1 + 8 * 1000), EXIT_LIMIT);
    const entries = entriesOver(cpu, 8 * 1000);
    assert.deepEqual([cpu.reg64(RAX), cpu.reg64(RBX)], [2000n, 2000n]);
    assert.ok(entries < 20, `1,000 passes calling 0x${a.toString(16)} and 0x${b.toString(16)} took ${entries} entries from the run loop`);
  });
});

test('the code after an instruction that straddles two pages starts a block, and compiles', () => {
  // 0x10000: mov ecx, 2000 (b9 d0 07 00 00); jmp 0x10ffd (e9 rel32)
  // 0x10ffd: mov eax, 0x01020304 (b8 04 03 02 01, ending at 0x11002)
  // 0x11002: add ebx, eax (01 c3); add edx, ebx (01 da); dec ecx (ff c9); jnz 0x10ffd (0f 85 rel32); jmp $ (eb fe)
  const code = new Array<number>(0x1020).fill(0x90);
  const put = (at: number, bytes: number[]): void => bytes.forEach((b, k) => { code[at + k] = b; });
  put(0, [0xb9, 0xd0, 0x07, 0, 0, 0xe9, ...le32(0xffd - 0xa)]);
  put(0xffd, [0xb8, 0x04, 0x03, 0x02, 0x01, 0x01, 0xc3, 0x01, 0xda, 0xff, 0xc9, 0x0f, 0x85, ...le32(0xffd - 0x100e), 0xeb, 0xfe]);
  const total = 2 + 2000 * 5 + 1;
  const a = runWith(false, code, [], total);
  assert.equal(a.rip, 0x1100e);
  for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], total, 333), a, `after ${after}`);
  // Compiled: the block at 0x11002 is entered from the run loop on every pass once it is hot.
  onWasm([[0x10000, code]], (cpu) => {
    assert.equal(cpu.run(2 + 5 * 1000), EXIT_LIMIT);
    assert.equal(entriesOver(cpu, 5 * 1000), 1000, 'one region entry per pass');
  });
});

test('memory outside the wasm memory is reached through the engine from compiled code, never through a stale offset', () => {
  // RBX alternates between a page in the wasm memory (0x30000) and one outside it (0x90000), sharing a TLB slot's low bits.
  // loop: mov rax, [rbx] (48 8b 03); add rax, rcx (48 01 c8); mov [rbx + 8], rax (48 89 43 08); movdqu xmm0, [rbx] (f3 0f 6f 03);
  //   movdqu [rbx + 16], xmm0 (f3 0f 7f 43 10); xor rbx, rdx (48 31 d3); dec ecx (ff c9); jnz loop (75 e5); jmp $ (eb fe)
  const code = [0x48, 0x8b, 0x03, 0x48, 0x01, 0xc8, 0x48, 0x89, 0x43, 0x08, 0xf3, 0x0f, 0x6f, 0x03, 0xf3, 0x0f, 0x7f, 0x43, 0x10,
    0x48, 0x31, 0xd3, 0xff, 0xc9, 0x75, 0xe6, 0xeb, 0xfe];
  const regs: [number, bigint][] = [[RBX, 0x30ff0n], [RDX, 0x30ff0n ^ 0x90ff0n], [RCX, 300n]];
  const a = runWith(false, code, regs, 300 * 8 + 1);
  assert.equal(a.rip, 0x1001a);
  for (const after of AFTERS) for (const chunk of [5, 5000]) assert.deepEqual(runWith(after, code, regs, 300 * 8 + 1, chunk), a, `after ${after}, chunk ${chunk}`);
});

test('a compiled store into code that was decoded after the store\'s page entered the TLB is seen (the wasm tags follow)', () => {
  // 0x10000: mov ecx, 200 (b9 c8 00 00 00); mov rdi, 0x20002 (48 c7 c7 02 00 02 00)
  // loop: mov [rdi], cl (88 0f) — the immediate of the callee's ADD —; call 0x20000 (e8 rel32); dec ecx (ff c9); jnz loop (75 f5); jmp $ (eb fe)
  // 0x20000: add eax, 1 (83 c0 01); ret (c3)
  const code = new Array<number>(0x1010).fill(0x90);
  const put = (at: number, bytes: number[]): void => bytes.forEach((b, k) => { code[at + k] = b; });
  put(0, [0xb9, 0xc8, 0, 0, 0, 0x48, 0xc7, 0xc7, 0x02, 0x00, 0x02, 0x00, 0x88, 0x0f, 0xe8, ...le32(0x20000 - 0x10013), 0xff, 0xc9, 0x75, 0xf5, 0xeb, 0xfe]);
  const callee = (cpu: Cpu): void => { for (const [k, b] of [0x83, 0xc0, 0x01, 0xc3].entries()) cpu.write8(0x20000 + k, b); };
  const a = runWith(false, code, [], 2 + 200 * 6 + 1, 2 + 200 * 6 + 1, '', callee);
  // ADD EAX, imm8 sign-extends: passes 200..128 add cl - 256.
  const sum = Array.from({ length: 200 }, (_, k) => k + 1).reduce((n, c) => n + (c < 128 ? c : c - 256), 0);
  assert.equal(a.regs[0], BigInt(sum >>> 0), 'EAX: the sum of the values stored into the ADD');
  for (const after of AFTERS) for (const chunk of [7, 5000]) assert.deepEqual(runWith(after, code, [], 2 + 200 * 6 + 1, chunk, '', callee), a, `after ${after}, chunk ${chunk}`);
});

test('compiled loads see a data page remapped after a TLB flush or an INVLPG of it', () => {
  // loop: mov rax, [rbx] (48 8b 03); add rcx, rax (48 01 c1); dec esi (ff ce); jnz loop (75 f6); jmp $ (eb fe)
  onWasm([[0x10000, [0x48, 0x8b, 0x03, 0x48, 0x01, 0xc1, 0xff, 0xce, 0x75, 0xf6, 0xeb, 0xfe]]], (cpu, p) => {
    cpu.setReg64(RBX, 0x40000n);
    cpu.setReg64(RSI, 1000000n);
    cpu.write64(0x40000, 1, 0);
    // A fresh frame for page 0x40 holding `value`.
    const remap = (value: number): void => {
      const bytes = reserveWasm(p.memory as WasmMemory, PAGE_SIZE) as Uint8Array;
      new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE).setUint32(0, value, true);
      p.pages.set(0x40, { bytes, view: new DataView(bytes.buffer, bytes.byteOffset, PAGE_SIZE), mmio: undefined, wasm: bytes.byteOffset });
    };
    assert.equal(cpu.run(4 * 100), EXIT_LIMIT);
    assert.equal(cpu.reg64(RCX), 100n);
    remap(1000);
    cpu.flushTlb();
    assert.equal(cpu.run(4 * 100), EXIT_LIMIT);
    assert.equal(cpu.reg64(RCX), 100n + 100n * 1000n, 'the new frame after a flush');
    remap(7);
    cpu.invalidatePage(0x40);
    assert.equal(cpu.run(4 * 100), EXIT_LIMIT);
    assert.equal(cpu.reg64(RCX), 100100n + 700n, 'the new frame after INVLPG');
  });
});

test('PUSH imm, PUSH [m] and LEAVE: compiled code agrees with the interpreter, and a fault changes no register', () => {
  // 0x10000: mov ecx, 50 (b9 32 00 00 00); loop: call f (e8 rel32); add rdx, rax (48 01 c2); dec ecx (ff c9); jnz loop (75 f4); jmp $ (eb fe)
  // f = 0x10100: push rbp (55); mov rbp, rsp (48 89 e5); push 0x12345678 (68 78 56 34 12); push -2 (6a fe); push qword [rbp - 8] (ff 75 f8);
  //   pop rax (58); pop rbx (5b); add rax, rbx (48 01 d8); add rax, rcx (48 01 c8); leave (c9); ret (c3)
  const code = new Array<number>(0x120).fill(0x90);
  const put = (at: number, bytes: number[]): void => bytes.forEach((b, k) => { code[at + k] = b; });
  put(0, [0xb9, 0x32, 0, 0, 0, 0xe8, ...le32(0x100 - 0x0a), 0x48, 0x01, 0xc2, 0xff, 0xc9, 0x75, 0xf4, 0xeb, 0xfe]);
  put(0x100, [0x55, 0x48, 0x89, 0xe5, 0x68, 0x78, 0x56, 0x34, 0x12, 0x6a, 0xfe, 0xff, 0x75, 0xf8, 0x58, 0x5b, 0x48, 0x01, 0xd8, 0x48, 0x01, 0xc8, 0xc9, 0xc3]);
  const total = 1 + 50 * 15 + 1;
  for (const chunk of [1, 6, 1000]) {
    const a = runWith(false, code, [], total, chunk);
    assert.equal(a.rip, 0x10011);
    assert.equal(a.regs[3], 50n * (0x12345678n - 2n) + (50n * 51n) / 2n, 'RDX: the pushed values popped back, plus RCX');
    assert.equal(a.regs[4], 0x80000n);
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], total, chunk), a, `chunk ${chunk}, after ${after}`);
  }
  // Faults: push qword [rax] with RAX unmapped (48 c7 c0 00 00 20 00; ff 30); leave with RBP unmapped (48 c7 c5 00 00 20 00; c9);
  // push 0x12345678 onto a read-only page (RSP 0x82000: the slot is in page 0x81).
  for (const [what, bad, regs] of [['push [unmapped]', [0x48, 0xc7, 0xc0, 0, 0, 0x20, 0, 0xff, 0x30], []],
    ['leave, RBP unmapped', [0x48, 0xc7, 0xc5, 0, 0, 0x20, 0, 0xc9], []],
    ['push imm, read-only stack', [0x90, 0x68, 0x78, 0x56, 0x34, 0x12], [[RSP, 0x82000n]]]] as [string, number[], [number, bigint][]][]) {
    const f = runWith(false, bad, regs, 10);
    assert.deepEqual([f.vector, f.icount], [VEC_PF, 1], what);
    assert.equal(f.regs[4], regs.length > 0 ? 0x82000n : 0x80000n, `${what}: RSP unchanged`);
    for (const after of AFTERS) assert.deepEqual(runWith(after, bad, regs, 10), f, `${what}, after ${after}`);
  }
});
