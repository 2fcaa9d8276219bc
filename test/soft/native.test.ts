/**
 * The soft CPU against the host CPU: integer, flag, SSE and x87 instructions
 * with random operands and flags (native-harness.ts). Every mismatch is
 * listed with its inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AF, buildCases, buildProgram, compare, CF, hasGcc, OF, PF, runEmulated, runNative, SF, STATUS, type Template, ZF } from './native-harness.js';

const T: Template[] = [];
const add = (name: string, code: string, undefinedFlags = 0): void => { T.push({ name, code, undefinedFlags }); };

for (const op of ['add', 'adc', 'sub', 'sbb', 'and', 'or', 'xor', 'cmp', 'test']) {
  const u = ['and', 'or', 'xor', 'test'].includes(op) ? AF : 0;
  for (const [a, b] of [['rax', 'rbx'], ['eax', 'ebx'], ['ax', 'bx'], ['al', 'bl'], ['ah', 'cl'], ['r9d', 'r10d']]) add(`${op} ${a},${b}`, `${op} ${a}, ${b}`, u);
  add(`${op} rax,imm8`, `${op} rax, -5`, u);
  add(`${op} rcx,imm32`, `${op} rcx, 0x7fff1234`, u);
  add(`${op} dx,imm16`, `${op} dx, 0x8001`, u);
  add(`${op} mem64`, `mov [rip + scratch], rbx; ${op} [rip + scratch], rax; mov rdx, [rip + scratch]`, u);
}
for (const op of ['inc', 'dec', 'neg', 'not']) for (const r of ['rax', 'ecx', 'dx', 'bl', 'bh']) add(`${op} ${r}`, `${op} ${r}`);
for (const op of ['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr']) {
  for (const r of ['rax', 'ebx', 'dx', 'sil']) {
    add(`${op} ${r},1`, `${op} ${r}, 1`, AF);
    add(`${op} ${r},cl`, `and ecx, 0x47; ${op} ${r}, cl`, AF | OF | (r === 'dx' || r === 'sil' ? CF : 0));
    add(`${op} ${r},imm`, `${op} ${r}, 5`, AF | OF);
  }
  add(`${op} r8,33`, `${op} r8, 33`, AF | OF);
}
for (const op of ['shld', 'shrd']) {
  add(`${op} rax,rbx,imm`, `${op} rax, rbx, 7`, AF | OF);
  add(`${op} eax,ebx,cl`, `and ecx, 31; ${op} eax, ebx, cl`, AF | OF);
  add(`${op} rdx,rsi,cl`, `and ecx, 63; ${op} rdx, rsi, cl`, AF | OF);
}
const MULU = SF | ZF | AF | PF;
for (const r of ['rbx', 'ebx', 'bx', 'bl']) { add(`mul ${r}`, `mul ${r}`, MULU); add(`imul ${r}`, `imul ${r}`, MULU); }
add('imul r,r 64', 'imul rax, rbx', MULU);
add('imul r,r 32', 'imul ecx, edx', MULU);
add('imul r,r 16', 'imul si, di', MULU);
add('imul r,r,imm', 'imul eax, ebx, 1000', MULU);
add('imul r,r,imm8 64', 'imul rax, rbx, -3', MULU);
add('div r64', 'xor edx, edx; or rbx, 1; div rbx', STATUS);
add('div r64 wide', 'mov rdx, rcx; shr rdx, 1; mov rbx, rcx; or rbx, 1; div rbx', STATUS);
add('div r32', 'xor edx, edx; or ebx, 1; div ebx', STATUS);
add('div r32 wide', 'mov edx, ecx; shr edx, 1; mov ebx, ecx; or ebx, 1; div ebx', STATUS);
add('div r16', 'xor edx, edx; or bx, 1; div bx', STATUS);
add('div r8', 'movzx eax, al; or bl, 1; div bl', STATUS);
add('idiv r64', 'cqo; shr rbx, 1; or rbx, 1; idiv rbx', STATUS);
add('idiv r64 neg', 'cqo; shr rbx, 1; or rbx, 1; neg rbx; idiv rbx', STATUS);
add('idiv r32', 'cdq; shr ebx, 1; or ebx, 1; idiv ebx', STATUS);
add('idiv r8', 'cbw; shr bl, 1; or bl, 1; idiv bl', STATUS);
for (const op of ['bt', 'bts', 'btr', 'btc']) {
  add(`${op} r64,r`, `${op} rax, rbx`, OF | SF | AF | PF);
  add(`${op} r32,imm`, `${op} eax, 13`, OF | SF | AF | PF);
  add(`${op} mem,r`, `mov [rip + scratch + 64], rdx; and rbx, 127; ${op} [rip + scratch + 64], rbx; mov rdx, [rip + scratch + 64]; mov rsi, [rip + scratch + 72]`, OF | SF | AF | PF);
}
add('bsf r64', 'or rbx, 0x100000; bsf rax, rbx', STATUS & ~ZF);
add('bsr r32', 'or ebx, 1; bsr ecx, ebx', STATUS & ~ZF);
add('bsf zero', 'xor ebx, ebx; bsf rax, rbx', STATUS & ~ZF);
add('popcnt', 'popcnt rax, rbx');
add('popcnt 32', 'popcnt ecx, edx');
const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
for (const cc of CC) {
  add(`cmov${cc}`, `cmov${cc} rcx, rdx`);
  add(`cmov${cc} 32`, `cmov${cc} ecx, edx`);
  add(`set${cc}`, `set${cc} cl`);
  add(`cmp+set${cc}`, `cmp rax, rbx; set${cc} dl`);
  add(`cmp32+j${cc}`, `cmp eax, ebx; mov esi, 1; j${cc} 1f; mov esi, 2; 1:`);
  add(`sub8+j${cc}`, `sub al, bl; mov esi, 1; j${cc} 1f; mov esi, 2; 1:`);
  add(`test+j${cc}`, `test rax, rbx; mov esi, 1; j${cc} 1f; mov esi, 2; 1:`);
}
for (const code of ['bswap rax', 'bswap ecx', 'movzx eax, bl', 'movzx rcx, dx', 'movsx rax, bx', 'movsx ecx, dl', 'movsxd rax, ebx',
  'cbw', 'cwde', 'cdqe', 'cwd', 'cdq', 'cqo', 'lea rax, [rbx + rcx*4 + 8]', 'lea eax, [rbx + rcx - 1]', 'lea ax, [rbx + rdx*2]',
  'xchg rax, rbx', 'xchg ecx, edx', 'xchg al, bh', 'mov eax, ebx', 'mov ax, bx', 'mov al, 0x12', 'mov ah, bl']) add(code, code);
add('xadd', 'xadd rax, rbx');
add('xadd 16', 'xadd cx, dx');
add('cmpxchg miss', 'cmpxchg rcx, rbx');
add('cmpxchg hit', 'mov rax, rcx; cmpxchg rcx, rbx');
add('cmpxchg 32 hit', 'mov eax, ecx; cmpxchg ecx, ebx');
add('cmpxchg8b', 'mov [rip + scratch], rax; mov [rip + scratch + 8], rbx; mov eax, [rip + scratch]; cmpxchg8b [rip + scratch]; mov rsi, [rip + scratch]', STATUS & ~ZF);
add('cmpxchg16b', 'mov [rip + scratch + 32], rax; mov [rip + scratch + 40], rdx; cmpxchg16b [rip + scratch + 32]; mov rsi, [rip + scratch + 32]; mov rdi, [rip + scratch + 40]', STATUS & ~ZF);
add('lahf/sahf', 'lahf; xor ah, 0xd5; sahf; lahf');
add('clc/stc/cmc', 'stc; cmc; setc al; clc; setc bl; cmc');
add('push/pop', 'push rax; push bx; pop cx; pop rdx');
add('pushf/popf', 'pushfq; pop rax; xor rax, 0x8d5; push rax; popfq');
add('enter/leave', 'mov rsi, rsp; enter 32, 0; mov rdi, rsp; sub rdi, rsi; leave; mov r8, rsp; sub r8, rsi; xor esi, esi');
add('call/ret', 'call 1f; jmp 2f; 1: mov eax, 7; ret; 2:');
add('loop', 'and ecx, 15; or ecx, 1; xor eax, eax; 1: inc eax; loop 1b');
add('rep movsb', 'lea rsi, [rip + buf1]; lea rdi, [rip + scratch]; and ecx, 31; rep movsb; mov rax, [rip + scratch]; mov rbx, [rip + scratch + 8]');
add('rep stosq', 'lea rdi, [rip + scratch + 128]; and ecx, 7; rep stosq; mov rbx, [rip + scratch + 128]; mov rdx, [rip + scratch + 176]');
add('std movsd', 'std; lea rsi, [rip + buf1 + 16]; lea rdi, [rip + scratch + 16]; mov ecx, 3; rep movsd; cld; mov rax, [rip + scratch + 8]');
add('repe cmpsb', 'lea rsi, [rip + buf1]; lea rdi, [rip + buf2]; mov ecx, 60; repe cmpsb');
add('repne scasb', 'lea rdi, [rip + buf1]; mov al, 0x20; mov ecx, 60; repne scasb');
add('lodsw', 'lea rsi, [rip + buf1]; lodsw; lodsw');

// SSE2 (xmm0/xmm1 are seeded from rax/rbx/rcx/rdx by the harness).
for (const op of ['paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubw', 'psubd', 'psubq', 'paddsb', 'paddsw', 'paddusb', 'paddusw',
  'psubsb', 'psubsw', 'psubusb', 'psubusw', 'pmullw', 'pmulhw', 'pmulhuw', 'pmuludq', 'pmaddwd', 'psadbw', 'pavgb', 'pavgw',
  'pminub', 'pmaxub', 'pminsw', 'pmaxsw', 'pand', 'pandn', 'por', 'pxor', 'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'pcmpgtb', 'pcmpgtw',
  'pcmpgtd', 'packsswb', 'packssdw', 'packuswb', 'punpcklbw', 'punpcklwd', 'punpckldq', 'punpcklqdq', 'punpckhbw', 'punpckhwd',
  'punpckhdq', 'punpckhqdq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad', 'psllw', 'pslld', 'psllq', 'unpcklps', 'unpckhpd',
  'andps', 'andnpd', 'orps', 'xorpd']) add(op, `${op} xmm0, xmm1`);
for (const code of ['pshufd xmm0, xmm1, 0x1b', 'pshufhw xmm0, xmm1, 0x4e', 'pshuflw xmm0, xmm1, 0xb1', 'psrldq xmm0, 5', 'pslldq xmm1, 3',
  'psrlw xmm0, 3', 'psrad xmm1, 31', 'psllq xmm0, 40', 'shufps xmm0, xmm1, 0x93', 'shufpd xmm0, xmm1, 1', 'pmovmskb eax, xmm0',
  'movmskps ecx, xmm1', 'movmskpd edx, xmm0', 'pextrw eax, xmm0, 5', 'pinsrw xmm1, ebx, 2', 'movd xmm0, eax', 'movq xmm1, rdx',
  'movd ecx, xmm1', 'movq rdx, xmm0', 'movq xmm0, xmm1', 'movhlps xmm0, xmm1', 'movlhps xmm0, xmm1', 'movss xmm0, xmm1', 'movsd xmm1, xmm0',
  'movdqa xmm0, xmm1', 'movdqu [rip + scratch], xmm0; movups xmm1, [rip + scratch]; movlps xmm0, [rip + scratch + 4]',
  'movhps [rip + scratch], xmm1; movhpd xmm0, [rip + scratch]; movsd xmm1, [rip + scratch]']) add(code, code);
// Floating point: doubles made from the integer registers, including NaNs, infinities and denormals by bit pattern.
for (const op of ['addsd', 'subsd', 'mulsd', 'divsd', 'minsd', 'maxsd', 'sqrtsd', 'addss', 'subss', 'mulss', 'divss', 'minss', 'maxss',
  'sqrtss', 'addpd', 'mulpd', 'divps', 'subps', 'maxpd', 'minps']) {
  add(`${op} bits`, `movq xmm0, rax; movq xmm1, rbx; ${op} xmm0, xmm1`);
  add(`${op} ints`, `cvtsi2sd xmm0, rax; cvtsi2sd xmm1, rcx; cvtsi2ss xmm0, edx; ${op} xmm0, xmm1`);
}
for (const code of ['cvtsi2sd xmm0, rax', 'cvtsi2sd xmm1, ebx', 'cvtsi2ss xmm0, rcx', 'cvtsi2ss xmm1, edx', 'cvttsd2si rax, xmm0',
  'cvtsd2si rcx, xmm1', 'cvttsd2si eax, xmm1', 'cvttss2si rdx, xmm0', 'cvtss2si eax, xmm1', 'cvtsd2ss xmm0, xmm1', 'cvtss2sd xmm0, xmm1',
  'cvtps2pd xmm0, xmm1', 'cvtpd2ps xmm0, xmm1', 'cvtdq2ps xmm0, xmm1', 'cvtdq2pd xmm0, xmm1', 'cvttps2dq xmm0, xmm1', 'cvtps2dq xmm1, xmm0',
  'cvtpd2dq xmm0, xmm1', 'cvttpd2dq xmm1, xmm0', 'cmpltsd xmm0, xmm1', 'cmpunordpd xmm0, xmm1', 'cmpneqps xmm0, xmm1', 'cmpless xmm1, xmm0',
  'xorpd xmm1, xmm1; divsd xmm1, xmm1', 'xorps xmm0, xmm0; sqrtsd xmm0, xmm1; cvtsi2sd xmm1, rax; mulsd xmm1, xmm0']) add(code, code);
for (const op of ['ucomisd', 'comisd', 'ucomiss', 'comiss']) {
  add(`${op} bits`, `${op} xmm0, xmm1`);
  add(`${op} ints`, `cvtsi2sd xmm0, eax; cvtsi2sd xmm1, ebx; cvtsi2ss xmm0, ecx; ${op} xmm0, xmm1`);
  add(`${op} equal`, `movdqa xmm1, xmm0; ${op} xmm0, xmm1`);
}
// x87 with the precision control at 53 bits (FCW 0x27F): results are then those of binary64 arithmetic,
// which is what the soft FPU computes; exception flags are not modelled, so FSW is compared on C0-C3 only.
const PC53 = 'fninit; mov word ptr [rip + scratch + 200], 0x27f; fldcw [rip + scratch + 200]; ';
add('x87 arith', PC53 + 'movsx rax, ax; movsx rbx, bx; or rbx, 1; mov [rip + scratch], rax; mov [rip + scratch + 8], rbx; fild qword ptr [rip + scratch]; fild qword ptr [rip + scratch + 8]; fdivp; fld st(0); fmul st, st(0); faddp; fistp qword ptr [rip + scratch + 16]; mov rcx, [rip + scratch + 16]');
add('x87 compare', PC53 + 'movsx rax, ax; movsx rbx, bx; mov [rip + scratch], rax; mov [rip + scratch + 8], rbx; fild qword ptr [rip + scratch]; fild qword ptr [rip + scratch + 8]; fcomip st, st(1); fstp st(0); fnstsw ax; and eax, 0x4500', 0);
add('x87 store double', PC53 + 'mov [rip + scratch], eax; fild dword ptr [rip + scratch]; mov dword ptr [rip + scratch + 4], 7; fild dword ptr [rip + scratch + 4]; fdivp; fld st(0); fmulp; fstp qword ptr [rip + scratch + 8]; mov rdx, [rip + scratch + 8]');
add('x87 rounding', PC53 + 'mov [rip + scratch], eax; fild dword ptr [rip + scratch]; mov dword ptr [rip + scratch + 4], 7; fidiv dword ptr [rip + scratch + 4]; fistp dword ptr [rip + scratch + 8]; mov ecx, [rip + scratch + 8]');
add('x87 m80', PC53 + 'sar rax, 11; mov [rip + scratch], rax; fild qword ptr [rip + scratch]; fstp tbyte ptr [rip + scratch + 16]; mov rdx, [rip + scratch + 16]; movzx esi, word ptr [rip + scratch + 24]; fld tbyte ptr [rip + scratch + 16]; fistp qword ptr [rip + scratch + 32]; mov rdi, [rip + scratch + 32]');
add('fnstcw/fldcw', 'fnstcw [rip + scratch]; movzx eax, word ptr [rip + scratch]; or word ptr [rip + scratch], 0xc00; fldcw [rip + scratch]; fnstcw [rip + scratch + 2]; movzx ebx, word ptr [rip + scratch + 2]; fninit');

test('soft CPU matches the host CPU on random operands and flags', async (t) => {
  if (!hasGcc()) { t.skip('gcc is not installed (apt-get install gcc)'); return; }
  const cases = buildCases(T, 12);
  const exe = buildProgram(cases);
  if (!exe) { t.skip('gcc is not installed'); return; }
  const native = runNative(exe);
  const emu = await runEmulated(exe);
  assert.equal(emu.status, 0, `emulated run ended with status ${emu.status}: ${emu.log.join('\n')}`);
  const bad = compare(cases, native, emu.out);
  assert.deepEqual(bad.slice(0, 25).map((m) => m.what), [], `${bad.length} of ${cases.length} cases differ`);
});
