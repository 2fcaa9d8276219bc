/**
 * The SSE2 forms and bit scans compiled to wasm SIMD (wasm/lower-sse.ts)
 * against the interpreter and the JS regions: each form runs in a loop over
 * operands loaded from a byte pattern with the values that matter (0, 0x7f,
 * 0x80, 0xff, runs of zero bytes), with register and memory sources, the
 * memory ones walking across a page boundary (the TLB's miss path), and
 * every outcome — GPRs, flags, XMM0-15, the count — must match.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RDI, RSI } from '../../src/engine/soft/state.js';
import { AFTERS, le32, runWith } from './region-harness.js';

const NP: number[] = [], P66 = [0x66], PF3 = [0xf3], PF2 = [0xf2];

/** prefix 0F op with ModRM: `rm` a register (mod 3) or 'mem' ([rsi + 7]); `ext` replaces reg for the group forms. */
function form(pfx: number[], op: number, reg: number, rm: number | 'mem', imm?: number, rexW = false): number[] {
  const modrm = rm === 'mem' ? [0x40 | (reg << 3) | 6, 7] : [0xc0 | (reg << 3) | rm];
  return [...pfx, ...(rexW ? [0x48] : []), 0x0f, op, ...modrm, ...(imm === undefined ? [] : [imm])];
}

/**
 * mov ecx, 8; loop: movdqu xmm0-3, [rsi], [rsi + 16], [rsi + 32], [rsi + 48]; <body>;
 * add rsi, 5; add rdi, 5; dec ecx; jnz loop; jmp $. RSI starts where the loads reach
 * the page boundary at 0x11000 in the fourth pass; RDI walks across 0x31000.
 */
function program(body: number[]): number[] {
  const head = [0xb9, ...le32(8)];
  const loads = [0xf3, 0x0f, 0x6f, 0x06, 0xf3, 0x0f, 0x6f, 0x4e, 0x10, 0xf3, 0x0f, 0x6f, 0x56, 0x20, 0xf3, 0x0f, 0x6f, 0x5e, 0x30];
  const tail = [0x48, 0x83, 0xc6, 0x05, 0x48, 0x83, 0xc7, 0x05, 0xff, 0xc9];
  const loop = [...loads, ...body, ...tail];
  if (loop.length + 2 > 128) throw new Error('body too long for jnz rel8');
  const code = new Array<number>(0x1100).fill(0x90);
  [...head, ...loop, 0x75, (-(loop.length + 2)) & 0xff, 0xeb, 0xfe].forEach((b, k) => { code[k] = b; });
  // The pattern: values at the lanes' edges and runs of zeros, no period a 5-byte step repeats.
  for (let k = 0xf00; k < 0x1100; k++) code[k] = k % 23 < 6 ? 0 : [0x7f, 0x80, 0xff, 0x01][k % 4] ?? 0;
  for (let k = 0xf00; k < 0x1100; k += 3) code[k] = (k * 0x9d + (k >> 3)) & 0xff;
  return code;
}

/** Runs `body` in the loop on the interpreter, JS regions and wasm regions, which must agree. */
function agree(what: string, body: number[]): void {
  const code = program(body);
  const regs: [number, bigint][] = [[RSI, 0x10fb0n], [RDI, 0x30fd8n]];
  const total = 10_000;
  const a = runWith(false, code, regs, total, total);
  assert.equal(a.rip, 0x10000 + 5 + 19 + body.length + 10 + 2, `${what}: ends at the final jmp $ (${a.vector === undefined ? 'no fault' : `fault ${a.vector}`})`);
  for (const after of AFTERS) for (const chunk of [7, total]) assert.deepEqual(runWith(after, code, regs, total, chunk, what), a, `${what}, after ${after}, chunk ${chunk}`);
}

/** The two-operand packed forms: 66 0F op. */
const PACKED: [string, number][] = [
  ['pand', 0xdb], ['pandn', 0xdf], ['por', 0xeb], ['pxor', 0xef],
  ['pcmpeqb', 0x74], ['pcmpeqw', 0x75], ['pcmpeqd', 0x76], ['pcmpgtb', 0x64], ['pcmpgtw', 0x65], ['pcmpgtd', 0x66],
  ['paddb', 0xfc], ['paddw', 0xfd], ['paddd', 0xfe], ['paddq', 0xd4], ['psubb', 0xf8], ['psubw', 0xf9], ['psubd', 0xfa], ['psubq', 0xfb],
  ['paddsb', 0xec], ['paddsw', 0xed], ['paddusb', 0xdc], ['paddusw', 0xdd], ['psubsb', 0xe8], ['psubsw', 0xe9], ['psubusb', 0xd8], ['psubusw', 0xd9],
  ['pminub', 0xda], ['pmaxub', 0xde], ['pminsw', 0xea], ['pmaxsw', 0xee], ['pavgb', 0xe0], ['pavgw', 0xe3], ['pmullw', 0xd5],
  ['punpcklbw', 0x60], ['punpcklwd', 0x61], ['punpckldq', 0x62], ['punpcklqdq', 0x6c],
  ['punpckhbw', 0x68], ['punpckhwd', 0x69], ['punpckhdq', 0x6a], ['punpckhqdq', 0x6d],
];

test('SSE2 packed-integer forms in wasm agree with the interpreter, register and memory sources', () => {
  for (const [name, op] of PACKED) {
    // op xmm1, xmm0; op xmm2, [rsi + 7]; op xmm3, xmm3; op xmm0, xmm2
    agree(name, [...form(P66, op, 1, 0), ...form(P66, op, 2, 'mem'), ...form(P66, op, 3, 3), ...form(P66, op, 0, 2)]);
  }
  // The packed-single/double spellings of the logic forms.
  for (const [name, pfx, op] of [['andps', NP, 0x54], ['andnps', NP, 0x55], ['orps', NP, 0x56], ['xorps', NP, 0x57],
    ['andpd', P66, 0x54], ['andnpd', P66, 0x55], ['orpd', P66, 0x56], ['xorpd', P66, 0x57]] as const) {
    agree(name, [...form(pfx, op, 1, 0), ...form(pfx, op, 2, 'mem'), ...form(pfx, op, 3, 3)]);
  }
});

test('SSE2 moves in wasm: 128-bit loads and stores across a page, MOVD/MOVQ in every direction', () => {
  // movups/movupd/movaps/movdqa/movdqu xmm4, [rsi + 7] and register forms; stores to [rdi] read back into xmm5.
  for (const [name, pfx, load, store] of [['movups', NP, 0x10, 0x11], ['movupd', P66, 0x10, 0x11], ['movaps', NP, 0x28, 0x29],
    ['movdqa', P66, 0x6f, 0x7f], ['movdqu', PF3, 0x6f, 0x7f]] as const) {
    // op xmm4, [rsi + 7]; op xmm6, xmm4; op [rdi], xmm6 (store: reg field is the source; rm [rdi] = 07); movdqu xmm5, [rdi]
    agree(name, [...form(pfx, load, 4, 'mem'), ...form(pfx, load, 6, 4), ...pfx, 0x0f, store, 0x37, 0xf3, 0x0f, 0x6f, 0x2f]);
  }
  // movntdq [rdi], xmm1 (66 0f e7 0f); movntps [rdi + 16], xmm2 (0f 2b 57 10); movdqu xmm5, [rdi]; movdqu xmm6, [rdi + 9] (f3 0f 6f 77 09)
  agree('movntdq, movntps', [0x66, 0x0f, 0xe7, 0x0f, 0x0f, 0x2b, 0x57, 0x10, 0xf3, 0x0f, 0x6f, 0x2f, 0xf3, 0x0f, 0x6f, 0x77, 0x09]);
  // movd xmm4, eax (66 0f 6e e0); movq xmm5, rbx (66 48 0f 6e eb); movd xmm6, [rsi + 7]; movq xmm7, [rsi + 7] (66 48 ...);
  // movd eax, xmm1 (66 0f 7e c8); movq rdx, xmm2 (66 48 0f 7e d2); add rbx, rdx; movd [rdi], xmm3 (66 0f 7e 1f);
  // movq [rdi + 8], xmm0 (66 48 0f 7e 47 08); movq xmm1, [rdi + 4] (f3 0f 7e 4f 04); movq xmm2, xmm3 (f3 0f 7e d3);
  // movq xmm3, xmm0 (66 0f d6 c3); movq [rdi + 12], xmm2 (66 0f d6 57 0c)
  agree('movd/movq', [0x66, 0x0f, 0x6e, 0xe0, 0x66, 0x48, 0x0f, 0x6e, 0xeb, ...form(P66, 0x6e, 6, 'mem'), ...form(P66, 0x6e, 7, 'mem', undefined, true),
    0x66, 0x0f, 0x7e, 0xc8, 0x66, 0x48, 0x0f, 0x7e, 0xd2, 0x48, 0x01, 0xd3, 0x66, 0x0f, 0x7e, 0x1f, 0x66, 0x48, 0x0f, 0x7e, 0x47, 0x08,
    0xf3, 0x0f, 0x7e, 0x4f, 0x04, 0xf3, 0x0f, 0x7e, 0xd3, 0x66, 0x0f, 0xd6, 0xc3, 0x66, 0x0f, 0xd6, 0x57, 0x0c]);
});

test('SSE2 shuffles, byte shifts, element shifts by every kind of count and the movemasks agree in wasm', () => {
  for (const [name, pfx] of [['pshufd', P66], ['pshufhw', PF3], ['pshuflw', PF2]] as const) {
    agree(name, [...form(pfx, 0x70, 1, 0, 0x1b), ...form(pfx, 0x70, 2, 'mem', 0x4e), ...form(pfx, 0x70, 3, 3, 0xd8), ...form(pfx, 0x70, 4, 1, 0x00)]);
  }
  // Group forms 66 0F 71/72/73 /ext ib on xmm1-3, counts within, at and past the element width.
  for (const [name, op, ext, bits] of [['psrlw', 0x71, 2, 16], ['psraw', 0x71, 4, 16], ['psllw', 0x71, 6, 16], ['psrld', 0x72, 2, 32],
    ['psrad', 0x72, 4, 32], ['pslld', 0x72, 6, 32], ['psrlq', 0x73, 2, 64], ['psllq', 0x73, 6, 64], ['psrldq', 0x73, 3, 16], ['pslldq', 0x73, 7, 16]] as const) {
    for (const n of [0, 1, 7, bits - 1, bits, bits + 1, 200]) agree(`${name} ${n}`, [...form(P66, op, ext, 1, n), ...form(P66, op, ext, 2, n >> 1), ...form(P66, op, ext, 3, 3)]);
  }
  // pmovmskb eax, xmm1 (66 0f d7 c1); add ebx, eax; movmskps edx, xmm2 (0f 50 d2); add ebx, edx;
  // movmskpd eax, xmm3 (66 0f 50 c3); shl eax, 4; add ebx, eax; pmovmskb rdx, xmm0 (66 48 0f d7 d0); add rbx, rdx
  agree('movemasks', [0x66, 0x0f, 0xd7, 0xc1, 0x01, 0xc3, 0x0f, 0x50, 0xd2, 0x01, 0xd3, 0x66, 0x0f, 0x50, 0xc3, 0xc1, 0xe0, 0x04, 0x01, 0xc3,
    0x66, 0x48, 0x0f, 0xd7, 0xd0, 0x48, 0x01, 0xd3]);
});

test('BSF, BSR and TZCNT in wasm: zero sources keep the destination, and every flag agrees', () => {
  for (const [name, pfx, op] of [['bsf', NP, 0xbc], ['bsr', NP, 0xbd], ['tzcnt', PF3, 0xbc]] as const) {
    // movd eax, xmm1; op edx, eax; setz bl... flags and results folded into RBX: op rdx, [rsi + 7]; pushf-free: sbb ebx, edx; lahf-free
    // op eax, [rsi + 7]; adc ebx, eax (11 c3); movq rax, xmm2 (66 48 0f 7e d0); op rdx, rax (48 0f bc/bd d0); sbb rbx, rdx (48 19 d3);
    // setz al (0f 94 c0); setp ah (0f 9a c4); add ebx, eax (01 c3); mov eax, 0 (b8 00 00 00 00); op eax, eax (0f bc c0); adc ebx, eax
    agree(name, [...pfx, 0x0f, op, 0x46, 0x07, 0x11, 0xc3, 0x66, 0x48, 0x0f, 0x7e, 0xd0, ...pfx, 0x48, 0x0f, op, 0xd0, 0x48, 0x19, 0xd3,
      0x0f, 0x94, 0xc0, 0x0f, 0x9a, 0xc4, 0x01, 0xc3, 0xb8, 0, 0, 0, 0, ...pfx, 0x0f, op, 0xc0, 0x11, 0xc3, 0x48, 0x0f, op, 0x56, 0x07, 0x48, 0x01, 0xd3]);
  }
});
