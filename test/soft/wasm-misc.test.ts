/**
 * The forms of wasm/lower-misc.ts against the interpreter and the JS
 * regions: sign extensions of RAX into itself and into RDX, SETcc to
 * memory, XCHG with memory and between registers, CMPXCHG on both of its
 * paths, across operand values where the signs and halves matter; and a
 * fault in each memory form, which must leave registers, flags and memory
 * as they were. (Their flags, and INC/DEC of byte and word registers, are
 * checked for every condition in block.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VEC_DE, VEC_PF } from '../../src/engine/soft/mmu.js';
import { RBX, RSI } from '../../src/engine/soft/state.js';
import { AFTERS, le32, le64, runWith } from './region-harness.js';

const VALUES = [0n, 0x80n, 0x7fn, 0x8000n, 0x80000000n, 0x7fffffffn, 0xffffffff80007f80n, 0x123456789abcdef0n, 0xfedcba9876543210n];

test('CBW/CWDE/CDQE, CWD/CDQ/CQO, SETcc [m], XCHG and CMPXCHG: compiled code agrees with the interpreter', () => {
  const movRax = (v: bigint): number[] => [0x48, 0xb8, ...le64(v)];
  const addRcxRax = [0x48, 0x01, 0xc1], addRcxRdx = [0x48, 0x01, 0xd1];
  for (const x of VALUES) {
    for (const y of [0x8000n, x, 0xfedcba9876543210n]) {
      // mov rsi, 0x40000; mov r9d, 3. Three passes of the body, then jmp $.
      const code: number[] = [0x48, 0xbe, ...le64(0x40000n), 0x41, 0xb9, ...le32(3)];
      const pass = code.length;
      code.push(
        ...movRax(x), 0x48, 0xbb, ...le64(y),
        // cbw; cwde; cdqe; cwd; cdq; cqo, each from RAX = x, folded into RCX.
        0x66, 0x98, ...addRcxRax, ...movRax(x), 0x98, ...addRcxRax, ...movRax(x), 0x48, 0x98, ...addRcxRax,
        ...movRax(x), 0x66, 0x99, ...addRcxRdx, ...movRax(x), 0x99, ...addRcxRdx, ...movRax(x), 0x48, 0x99, ...addRcxRdx,
        // cmp rax, rbx; setb [rsi]; setg [rsi + 1]
        0x48, 0x39, 0xd8, 0x0f, 0x92, 0x06, 0x0f, 0x9f, 0x46, 0x01,
        // mov [rsi + 8], rbx; xchg [rsi + 8], eax; xchg rbx, rax; xchg edx, ecx; mov [rsi + 16], rax
        0x48, 0x89, 0x5e, 0x08, 0x87, 0x46, 0x08, 0x48, 0x93, 0x87, 0xca, 0x48, 0x89, 0x46, 0x10,
        // cmpxchg [rsi + 8], ebx (twice: a miss loads EAX, then it matches); lock cmpxchg [rsi + 16], rcx (twice)
        0x0f, 0xb1, 0x5e, 0x08, 0x0f, 0xb1, 0x5e, 0x08, 0xf0, 0x48, 0x0f, 0xb1, 0x4e, 0x10, 0xf0, 0x48, 0x0f, 0xb1, 0x4e, 0x10,
        // add rcx, [rsi]; add rcx, [rsi + 8]; add rdx, [rsi + 16]
        0x48, 0x03, 0x0e, 0x48, 0x03, 0x4e, 0x08, 0x48, 0x03, 0x56, 0x10,
      );
      code.push(0x41, 0xff, 0xc9, 0x0f, 0x85, ...le32(pass - (code.length + 9)), 0xeb, 0xfe);
      const what = `x ${x.toString(16)}, y ${y.toString(16)}`;
      const a = runWith(false, code, [], 200);
      assert.equal(a.rip, 0x10000 + code.length - 2, `${what}: ends at the final jmp $`);
      for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], 200, 200, `${what}, after ${after}`), a, `${what}, after ${after}`);
    }
  }
});

test('SETcc, XCHG and CMPXCHG that fault on a read-only page leave registers and the count as they were', () => {
  // loop: mov eax, 0x1234 (b8 …); mov ebx, 0x5678 (bb …); cmp eax, ebx (39 d8); [before]; <form writing [rsi]>;
  // add rsi, 0x400 (48 81 c6 00 04 00 00); jmp loop. RSI walks from 0x80000 into the read-only page 0x81000 in the
  // fifth pass, after the loop has been compiled.
  const forms: [string, number[], number[]][] = [
    ['setb [rsi]', [], [0x0f, 0x92, 0x06]], ['xchg [rsi], eax', [], [0x87, 0x06]], ['xchg [rsi], rbx', [], [0x48, 0x87, 0x1e]],
    // EAX differs from [rsi] (the unchanged value is written back), or matches it (xor eax, eax): either way the write faults.
    ['cmpxchg [rsi], ebx', [], [0x0f, 0xb1, 0x1e]], ['lock cmpxchg [rsi], rbx', [], [0xf0, 0x48, 0x0f, 0xb1, 0x1e]],
    ['cmpxchg [rsi], ebx, EAX matching', [0x31, 0xc0], [0x0f, 0xb1, 0x1e]],
    // Byte and word read-modify-write (lower.ts lowerSmall).
    ['and [rsi], eax', [], [0x21, 0x06]], ['and [rsi], al', [], [0x20, 0x06]], ['or word [rsi], 0x81', [], [0x66, 0x81, 0x0e, 0x81, 0x00]], ['sub byte [rsi], 3', [], [0x80, 0x2e, 0x03]],
  ];
  for (const [name, before, form] of forms) {
    const head = [0xb8, ...le32(0x1234), 0xbb, ...le32(0x5678), 0x39, 0xd8, ...before];
    const code = [...head, ...form, 0x48, 0x81, 0xc6, 0x00, 0x04, 0x00, 0x00];
    code.push(0xeb, -(code.length + 2) & 0xff);
    const perPass = 3 + before.length / 2 + 3, untilWrite = 3 + before.length / 2;
    const regs: [number, bigint][] = [[RSI, 0x80000n]];
    const a = runWith(false, code, regs, 100);
    assert.deepEqual([a.vector, a.rip, a.icount], [VEC_PF, 0x10000 + head.length, 4 * perPass + untilWrite], `${name}: a page fault at the write in the fifth pass`);
    assert.deepEqual(a.regs.slice(0, 2), [before.length > 0 ? 0n : 0x1234n, 0x5678n], `${name}: RAX and RBX as the pass set them`);
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, regs, 100, 100, `${name}, after ${after}`), a, `${name}, after ${after}`);
  }
});

test('MUL and DIV at 32 and 64 bits: compiled code agrees with the interpreter, the rare dividends included', () => {
  const movRax = (v: bigint): number[] => [0x48, 0xb8, ...le64(v)];
  const fold = [0x48, 0x83, 0xd1, 0x00, 0x48, 0x01, 0xc1, 0x48, 0x01, 0xd1]; // adc rcx, 0 (CF); add rcx, rax; add rcx, rdx
  for (const x of VALUES) {
    for (const y of [1n, 3n, 0x80000000n, 0xffffffffn, 0x100000001n, 0xfedcba9876543210n, x | 1n]) {
      // mov rsi, 0x40000; mov r9d, 3. Three passes of the body, then jmp $.
      const code: number[] = [0x48, 0xbe, ...le64(0x40000n), 0x41, 0xb9, ...le32(3)];
      const pass = code.length;
      code.push(
        0x48, 0xbb, ...le64(y), 0x48, 0x89, 0x1e, // mov rbx, y; mov [rsi], rbx
        // mul rbx; mul ebx; mul qword [rsi]; mul dword [rsi]
        ...movRax(x), 0x48, 0xf7, 0xe3, ...fold, ...movRax(x), 0xf7, 0xe3, ...fold,
        ...movRax(x), 0x48, 0xf7, 0x26, ...fold, ...movRax(x), 0xf7, 0x26, ...fold,
        // xor edx, edx; div ebx; div rbx; mov edx, 1; div qword [rsi] (a 128-bit dividend: the handler's, or #DE past the first pass)
        0x31, 0xd2, ...movRax(x), 0xf7, 0xf3, ...fold, 0x31, 0xd2, ...movRax(x), 0x48, 0xf7, 0xf3, ...fold,
        // edx < ebx: mov edx, ebx; shr edx, 1; div ebx (a quotient of 33 bits past 32 when EBX is 1: #DE)
        0x89, 0xda, 0xd1, 0xea, ...movRax(x), 0xf7, 0xf3, ...fold,
      );
      code.push(0x41, 0xff, 0xc9, 0x0f, 0x85, ...le32(pass - (code.length + 9)), 0xeb, 0xfe);
      const what = `x ${x.toString(16)}, y ${y.toString(16)}`;
      const a = runWith(false, code, [], 300);
      for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], 300, 300, `${what}, after ${after}`), a, `${what}, after ${after}`);
    }
  }
});

test('DIV by 0 and DIV whose quotient does not fit raise #DE from compiled code with registers and the count as they were', () => {
  // loop: mov eax, 7 (b8 …); mov edx, d (ba …); <div>; dec ebx (ff cb); jmp loop. EBX = 3 runs down to 2, 1, 0.
  const cases: [string, number[], number, number][] = [
    ['div ebx by 0', [0xf7, 0xf3], 0, 3], ['div rbx by 0', [0x48, 0xf7, 0xf3], 0, 3],
    // EDX = 2 fits under EBX = 3 only (the 64-bit form divides 2:7 by 3 on the handler's 128-bit path first).
    ['div ebx, quotient too large', [0xf7, 0xf3], 2, 1], ['div rbx, quotient too large', [0x48, 0xf7, 0xf3], 2, 1],
  ];
  for (const [name, div, d, passes] of cases) {
    const code = [0xb8, ...le32(7), 0xba, ...le32(d), ...div, 0xff, 0xcb];
    code.push(0xeb, -(code.length + 2) & 0xff);
    const a = runWith(false, code, [[RBX, 3n]], 100);
    assert.deepEqual([a.vector, a.rip, a.icount], [VEC_DE, 0x10000 + 10, 5 * passes + 2], `${name}: #DE at the DIV`);
    assert.deepEqual([a.regs[0], a.regs[3]], [7n, BigInt(d)], `${name}: RAX and RDX as they were`);
    for (const after of AFTERS) assert.deepEqual(runWith(after, code, [[RBX, 3n]], 100, 100, `${name}, after ${after}`), a, `${name}, after ${after}`);
  }
});

test('MOVS and STOS, with and without REP: compiled code agrees with the interpreter on counts, overlaps, page crossings and DF', () => {
  const mov64 = (op: number, v: number): number[] => [0x48, op, ...le64(BigInt(v))];
  // Fill [0x40000, 0x42200) with its address's low byte: xor ecx, ecx; fill: mov [rcx + 0x40000], cl; inc ecx; cmp ecx, 0x2200; jb fill.
  const fill = [0x31, 0xc9, 0x88, 0x89, ...le32(0x40000), 0xff, 0xc1, 0x81, 0xf9, ...le32(0x2200), 0x72, 0xf0];
  // [name, RSI, RDI, RCX, instruction bytes, DF set]
  const cases: [string, number, number, number, number[], boolean][] = [
    ['rep movsb, RCX 0', 0x40010, 0x41010, 0, [0xf3, 0xa4], false],
    ['rep movsb, RCX 1', 0x40011, 0x41011, 1, [0xf3, 0xa4], false],
    ['rep movsb, 100 bytes', 0x40123, 0x41321, 100, [0xf3, 0xa4], false],
    ['rep movsb into the next page', 0x40100, 0x41f80, 300, [0xf3, 0xa4], false],
    ['rep movsb from the page before', 0x40f80, 0x41a00, 300, [0xf3, 0xa4], false],
    ['rep movsb past the yield point', 0x40000, 0x40000 + 0x1100, 5000, [0xf3, 0xa4], false],
    ['rep movsb onto its own next byte (repeats the first)', 0x40200, 0x40201, 50, [0xf3, 0xa4], false],
    ['rep movsb onto its own previous byte', 0x40301, 0x40300, 50, [0xf3, 0xa4], false],
    ['rep movsq', 0x40400, 0x41400, 10, [0xf3, 0x48, 0xa5], false],
    ['movsd', 0x40500, 0x41500, 7, [0xa5], false],
    ['movsb', 0x40501, 0x41501, 7, [0xa4], false],
    ['rep stosb', 0, 0x41600, 77, [0xf3, 0xaa], false],
    ['stosb', 0, 0x41700, 7, [0xaa], false],
    ['std; rep movsb', 0x40820, 0x41820, 20, [0xf3, 0xa4], true],
    ['std; rep stosb', 0, 0x41920, 20, [0xf3, 0xaa], true],
  ];
  const code: number[] = [0x41, 0xb9, ...le32(3)];
  const pass = code.length;
  code.push(...fill, 0x31, 0xdb, 0x31, 0xd2); // xor ebx, ebx; xor edx, edx
  for (const [, rsi, rdi, rcx, instr, df] of cases) {
    code.push(...mov64(0xbe, rsi), ...mov64(0xbf, rdi), ...mov64(0xb9, rcx), 0xb0, rdi & 0xff, ...(df ? [0xfd] : []), ...instr, ...(df ? [0xfc] : []));
    // add rbx, rsi; add rdx, rdi; add rbx, rcx; then add rbx, [a] for qwords around the destination.
    code.push(0x48, 0x01, 0xf3, 0x48, 0x01, 0xfa, 0x48, 0x01, 0xcb);
    for (const a of [rdi - 8, rdi, rdi + 8, rdi + Math.max(0, rcx - 8), rdi + rcx]) code.push(0x48, 0x03, 0x1c, 0x25, ...le32(a));
    // jmp +0: each case starts a block (after a REP that yields, the rest of its block runs interpreted).
    code.push(0xeb, 0x00);
  }
  code.push(0x41, 0xff, 0xc9, 0x0f, 0x85, ...le32(pass - (code.length + 9)), 0xeb, 0xfe);
  const a = runWith(false, code, [], 200_000);
  assert.equal(a.rip, 0x10000 + code.length - 2, 'ends at the final jmp $');
  for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], 200_000, 200_000, `after ${after}`), a, `after ${after}`);
});
