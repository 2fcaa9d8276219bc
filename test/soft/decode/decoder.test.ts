/**
 * Named cases for the encodings that decoders get wrong: prefix interplay,
 * REX, ModRM/SIB corner cases, operand and address sizes, limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BASE_RIP, decode, FORMS, formatInstruction, HANDLER_NAMES, Instruction, mnemonic, MODE_16, MODE_32, MODE_64,
  OP_CR, OP_GPR, OP_IMM2, OP_MEM, OP_MMX, OP_REL, OP_XMM, PFX_LOCK, PFX_OPSIZE, PFX_REP, PFX_REPNE, PFX_REX,
  PFX_REX_W, PFX_SEG, REG_AH, REG_NONE, SEG_CS, SEG_DS, SEG_FS, SEG_SS, STATUS_EVEX, STATUS_INVALID, STATUS_NAMES,
  STATUS_OK, STATUS_TOO_LONG, STATUS_TRUNCATED, STATUS_VEX, type DecodeMode,
} from '../../../src/engine/soft/decode/index.js';

function bytes(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function dec(hex: string, mode: DecodeMode = MODE_64): Instruction {
  const code = bytes(hex);
  const insn = new Instruction();
  decode(insn, code, 0, code.length, mode);
  return insn;
}

/** Decodes and checks status OK, the whole input consumed, and the Intel text. */
function ok(hex: string, text: string, mode: DecodeMode = MODE_64): Instruction {
  const insn = dec(hex, mode);
  assert.equal(STATUS_NAMES[insn.status], 'ok', `${hex}: status`);
  assert.equal(insn.length, bytes(hex).length, `${hex}: length`);
  assert.equal(formatInstruction(insn).replace(/\s+#.*$/, ''), text, `${hex}: text`);
  return insn;
}

function status(hex: string, expected: number, mode: DecodeMode = MODE_64): Instruction {
  const insn = dec(hex, mode);
  assert.equal(STATUS_NAMES[insn.status], STATUS_NAMES[expected], `${hex} in mode ${mode}`);
  return insn;
}

test('REX.W beats 66h; 66h alone gives 16-bit operands', () => {
  assert.equal(ok('66 48 01 c0', 'add rax,rax').osize, 8);
  assert.equal(ok('66 01 c0', 'add ax,ax').osize, 2);
});

test('a REX followed by a legacy prefix is ignored', () => {
  const insn = ok('48 66 01 c0', 'add ax,ax');
  assert.equal(insn.rex, 0);
  assert.equal(insn.prefixes & PFX_REX, 0);
  assert.equal(insn.osize, 2);
});

test('only the last REX counts', () => {
  assert.equal(ok('48 40 01 c0', 'add eax,eax').osize, 4);
  assert.equal(ok('40 49 01 c0', 'add r8,rax').rex, 0x49);
});

test('REP with REX.W: rep movsq', () => {
  const insn = ok('f3 48 a5', 'movs QWORD PTR es:[rdi],QWORD PTR ds:[rsi]');
  assert.equal(insn.prefixes & (PFX_REP | PFX_REX_W), PFX_REP | PFX_REX_W);
  assert.equal(insn.osize, 8);
});

test('66h with an F3 mandatory prefix is an operand-size override: popcnt ax', () => {
  assert.equal(ok('66 f3 0f b8 c1', 'popcnt ax,cx').osize, 2);
  assert.equal(ok('f3 48 0f b8 c1', 'popcnt rax,rcx').osize, 8);
  assert.equal(ok('0f bc c1', 'bsf eax,ecx').osize, 4);
  assert.equal(ok('f3 0f bc c1', 'tzcnt eax,ecx').osize, 4);
  assert.equal(ok('66 0f bc c1', 'bsf ax,cx').osize, 2);
});

test('mandatory prefixes select the SSE form: 66 0F 6F movdqa, F3 0F 6F movdqu, 0F 6F movq mm', () => {
  const a = ok('66 0f 6f c1', 'movdqa xmm0,xmm1');
  assert.equal(a.opKind[0], OP_XMM);
  assert.equal(a.osize, 4, '66 as a mandatory prefix does not change the operand size');
  ok('f3 0f 6f c1', 'movdqu xmm0,xmm1');
  const m = ok('0f 6f c1', 'movq mm0,mm1');
  assert.equal(m.opKind[0], OP_MMX);
  status('f2 0f 6f c1', STATUS_INVALID);
  ok('66 44 0f 6f 04 24', 'movdqa xmm8,XMMWORD PTR [rsp]');
});

test('F2/F3: the last one is the mandatory prefix, and it beats 66h', () => {
  ok('f2 f3 0f 10 c1', 'movss xmm0,xmm1');
  ok('f3 f2 0f 10 c1', 'movsd xmm0,xmm1');
  ok('66 f3 0f 10 c1', 'movss xmm0,xmm1');
  const insn = ok('f3 f2 ae', 'scas al,BYTE PTR es:[rdi]');
  assert.equal(insn.prefixes & (PFX_REP | PFX_REPNE), PFX_REPNE);
});

test('REX.W selects movq in the movd forms', () => {
  ok('66 0f 6e c0', 'movd xmm0,eax');
  ok('66 48 0f 6e c0', 'movq xmm0,rax');
  ok('66 48 0f 7e c0', 'movq rax,xmm0');
});

test('RIP-relative with an immediate after the displacement', () => {
  const insn = ok('c7 05 10 00 00 00 78 56 34 12', 'mov DWORD PTR [rip+0x10],0x12345678');
  assert.equal(insn.base, BASE_RIP);
  assert.equal(insn.index, REG_NONE);
  assert.equal(insn.disp, 0x10);
  assert.equal(insn.imm, 0x12345678);
  const neg = ok('48 83 3d f0 ff ff ff 07', 'cmp QWORD PTR [rip+0xfffffffffffffff0],0x7');
  assert.equal(neg.disp, -16);
  assert.equal(neg.dispHi, -1);
  assert.equal(neg.imm, 7);
  const eip = ok('67 8b 05 00 01 00 00', 'mov eax,DWORD PTR [eip+0x100]');
  assert.equal(eip.asize, 4);
  assert.equal(eip.base, BASE_RIP);
});

test('mod=00 r/m=101 is [disp32], not RIP-relative, outside 64-bit mode', () => {
  const insn = ok('8b 05 78 56 34 12', 'mov eax,DWORD PTR ds:0x12345678', MODE_32);
  assert.equal(insn.base, REG_NONE);
});

test('SIB with no base (mod=00, base=101) and no index (index=100)', () => {
  const abs = ok('8b 04 25 78 56 34 12', 'mov eax,DWORD PTR ds:0x12345678');
  assert.equal(abs.base, REG_NONE);
  assert.equal(abs.index, REG_NONE);
  const scaled = ok('8b 04 8d 00 10 00 00', 'mov eax,DWORD PTR [rcx*4+0x1000]');
  assert.equal(scaled.base, REG_NONE);
  assert.equal(scaled.index, 1);
  assert.equal(scaled.scale, 2);
  const b13 = ok('41 8b 04 25 00 10 00 00', 'mov eax,DWORD PTR ds:0x1000');
  assert.equal(b13.base, REG_NONE, 'REX.B does not turn SIB.base=101 with mod=00 into r13');
  assert.equal(ok('41 8b 45 00', 'mov eax,DWORD PTR [r13+0x0]').base, 13);
  assert.equal(ok('42 8b 04 20', 'mov eax,DWORD PTR [rax+r12*1]').index, 12);
  assert.equal(ok('8b 04 20', 'mov eax,DWORD PTR [rax]').index, REG_NONE);
  assert.equal(ok('8b 44 24 08', 'mov eax,DWORD PTR [rsp+0x8]').segment, SEG_SS);
});

test('r/m8: AH-BH without REX, SPL-DIL with any REX', () => {
  const ah = ok('88 e0', 'mov al,ah');
  assert.equal(ah.opKind[1], OP_GPR);
  assert.equal(ah.opReg[1], REG_AH);
  assert.equal(ok('40 88 e0', 'mov al,spl').opReg[1], 4);
  ok('44 88 e0', 'mov al,r12b');
  ok('0f b6 c4', 'movzx eax,ah');
  ok('40 0f b6 c4', 'movzx eax,spl');
  ok('40 b4 01', 'mov spl,0x1');
  ok('b4 01', 'mov ah,0x1');
  ok('88 e0', 'mov al,ah', MODE_32);
});

test('moffs: 8 bytes in 64-bit mode, address size otherwise', () => {
  const m64 = ok('48 a1 88 77 66 55 44 33 22 11', 'movabs rax,ds:0x1122334455667788');
  assert.equal(m64.disp, 0x55667788);
  assert.equal(m64.dispHi, 0x11223344);
  assert.equal(m64.opKind[1], OP_MEM);
  ok('67 a0 44 33 22 11', 'mov al,ds:0x11223344');
  ok('a1 44 33 22 11', 'mov eax,ds:0x11223344', MODE_32);
  ok('a1 22 11', 'mov ax,ds:0x1122', MODE_16);
  assert.equal(ok('64 48 a3 00 00 00 00 00 00 00 00', 'movabs fs:0x0,rax').segment, SEG_FS);
});

test('16-bit addressing modes', () => {
  assert.equal(ok('8b 00', 'mov ax,WORD PTR [bx+si]', MODE_16).segment, SEG_DS);
  assert.equal(ok('8b 46 fe', 'mov ax,WORD PTR [bp-0x2]', MODE_16).segment, SEG_SS);
  assert.equal(ok('8b 06 34 12', 'mov ax,WORD PTR ds:0x1234', MODE_16).base, REG_NONE);
  ok('8b 87 00 01', 'mov ax,WORD PTR [bx+0x100]', MODE_16);
  assert.equal(ok('8b 03', 'mov ax,WORD PTR [bp+di]', MODE_16).segment, SEG_SS);
  ok('67 8b 04 24', 'mov ax,WORD PTR [esp]', MODE_16);
  ok('67 8b 00', 'mov eax,DWORD PTR [bx+si]', MODE_32);
  ok('66 b8 78 56 34 12', 'mov eax,0x12345678', MODE_16);
  ok('e8 fd ff', 'call 0x0', MODE_16);
});

test('15-byte limit: #GP beyond, fine at exactly 15', () => {
  ok('66'.repeat(14) + '90', 'nop');
  status('66'.repeat(15) + '90', STATUS_TOO_LONG);
  // 5 ignored prefixes + C7 84 SIB disp32 imm32 = 16 bytes.
  const long = status('2e'.repeat(5) + 'c7 84 c0 00 00 00 00 00 00 00 00', STATUS_TOO_LONG);
  assert.equal(long.length, 15);
  ok('2e'.repeat(4) + 'c7 84 c0 00 00 00 00 00 00 00 00', 'mov DWORD PTR [rax+rax*8+0x0],0x0');
});

test('a window too short asks for more bytes', () => {
  const code = bytes('48 8b 04 25 00 10 00 00');
  const insn = new Instruction();
  for (let end = 0; end < code.length; end++) {
    assert.equal(decode(insn, code, 0, end, MODE_64), STATUS_TRUNCATED, `window of ${end} bytes`);
  }
  assert.equal(decode(insn, code, 0, code.length, MODE_64), STATUS_OK);
  assert.equal(insn.length, 8);
});

test('decodes at an offset inside a larger window', () => {
  const code = bytes('90 90 48 89 e5 c3');
  const insn = new Instruction();
  assert.equal(decode(insn, code, 2, code.length, MODE_64), STATUS_OK);
  assert.equal(formatInstruction(insn), 'mov rbp,rsp');
  assert.equal(decode(insn, code, 5, code.length, MODE_64), STATUS_OK);
  assert.equal(mnemonic(insn), 'ret');
});

test('VEX and EVEX are reported apart from invalid encodings', () => {
  status('c5 f9 6f c1', STATUS_VEX);
  status('c4 e2 79 00 c1', STATUS_VEX);
  status('62 f1 7c 48 10 c1', STATUS_EVEX);
  status('c5 f9 6f c1', STATUS_VEX, MODE_32);
  ok('c5 00', 'lds eax,FWORD PTR [eax]', MODE_32);
  ok('62 00', 'bound eax,QWORD PTR [eax]', MODE_32);
  status('66 c5 f9 6f c1', STATUS_INVALID);
  status('48 c5 f9 6f c1', STATUS_INVALID);
  status('f0 c4 e2 79 00 c1', STATUS_INVALID);
  status('8f e8 78 c0 c1 01', STATUS_INVALID); // XOP
  ok('8f c0', 'pop rax');
});

test('opcodes invalid in 64-bit mode are #UD there and valid in 32-bit mode', () => {
  const cases: [string, string][] = [
    ['06', 'push es'], ['07', 'pop es'], ['0e', 'push cs'], ['16', 'push ss'], ['17', 'pop ss'], ['1e', 'push ds'],
    ['1f', 'pop ds'], ['27', 'daa'], ['2f', 'das'], ['37', 'aaa'], ['3f', 'aas'], ['60', 'pusha'], ['61', 'popa'],
    ['9a 00 00 00 00 10 00', 'call 0x10:0x0'], ['ce', 'into'], ['d4 0a', 'aam 0xa'], ['d5 0a', 'aad 0xa'],
    ['d6', 'salc'], ['ea 00 00 00 00 10 00', 'jmp 0x10:0x0'], ['82 c0 01', 'add al,0x1'],
    ['c4 00', 'les eax,FWORD PTR [eax]'], ['62 00', 'bound eax,QWORD PTR [eax]'],
  ];
  for (const [hex, text] of cases) {
    ok(hex, text, MODE_32);
    const insn = dec(hex, MODE_64);
    assert.notEqual(insn.status, STATUS_OK, `${hex} must not decode in 64-bit mode`);
  }
});

test('40-4F are INC/DEC outside 64-bit mode and REX in it', () => {
  ok('40', 'inc eax', MODE_32);
  ok('4f', 'dec edi', MODE_32);
  ok('40', 'inc ax', MODE_16);
  ok('41 50', 'push r8');
});

test('63 is ARPL outside 64-bit mode and MOVSXD in it', () => {
  ok('63 00', 'arpl WORD PTR [eax],ax', MODE_32);
  ok('48 63 c1', 'movsxd rax,ecx');
});

test('64-bit-only forms are #UD elsewhere: swapgs, rdfsbase', () => {
  ok('0f 01 f8', 'swapgs');
  status('0f 01 f8', STATUS_INVALID, MODE_32);
  ok('f3 48 0f ae c0', 'rdfsbase rax');
  status('f3 0f ae c0', STATUS_INVALID, MODE_32);
});

test('LOCK is #UD on register destinations and on forms that do not allow it', () => {
  assert.equal(ok('f0 01 00', 'add DWORD PTR [rax],eax').prefixes & PFX_LOCK, PFX_LOCK);
  ok('f0 48 0f c7 0e', 'cmpxchg16b OWORD PTR [rsi]');
  ok('f0 0f c1 07', 'xadd DWORD PTR [rdi],eax');
  status('f0 01 c0', STATUS_INVALID);
  status('f0 89 00', STATUS_INVALID);
  status('f0 90', STATUS_INVALID);
  status('f0 83 38 00', STATUS_INVALID);
  status('f0 0f a3 00', STATUS_INVALID);
  status('f0 0f c7 f0', STATUS_INVALID);
});

test('segment overrides: CS/DS/ES/SS ignored in 64-bit mode, FS/GS kept', () => {
  const cs = ok('2e 8b 00', 'mov eax,DWORD PTR [rax]');
  assert.equal(cs.segment, SEG_DS);
  assert.equal(cs.prefixes & PFX_SEG, 0);
  assert.equal(ok('26 8b 45 00', 'mov eax,DWORD PTR [rbp+0x0]').segment, SEG_SS);
  const fs = ok('64 8b 00', 'mov eax,DWORD PTR fs:[rax]');
  assert.equal(fs.segment, SEG_FS);
  assert.equal(fs.prefixes & PFX_SEG, PFX_SEG);
  ok('65 48 8b 04 25 28 00 00 00', 'mov rax,QWORD PTR gs:0x28');
  assert.equal(ok('2e 8b 00', 'mov eax,DWORD PTR cs:[eax]', MODE_32).segment, SEG_CS);
  assert.equal(ok('36 8b 00', 'mov eax,DWORD PTR ss:[eax]', MODE_32).segment, SEG_SS);
});

test('recommended multi-byte NOPs (SDM Vol. 2B, NOP, Table 4-12) decode as one NOP each', () => {
  const nops = [
    '90', '66 90', '0f 1f 00', '0f 1f 40 00', '0f 1f 44 00 00', '66 0f 1f 44 00 00', '0f 1f 80 00 00 00 00',
    '0f 1f 84 00 00 00 00 00', '66 0f 1f 84 00 00 00 00 00', '66 2e 0f 1f 84 00 00 00 00 00',
    '66 66 2e 0f 1f 84 00 00 00 00 00',
  ];
  for (const hex of nops) {
    const insn = dec(hex);
    assert.equal(insn.status, STATUS_OK, hex);
    assert.equal(insn.length, bytes(hex).length, hex);
    assert.equal(HANDLER_NAMES[insn.handler], 'misc_nop', hex);
  }
  ok('0f 18 00', 'prefetchnta BYTE PTR [rax]');
  ok('0f 18 c0', 'nop eax');
  ok('0f 19 00', 'nop DWORD PTR [rax]');
  ok('f3 0f 1e fa', 'endbr64');
});

test('opcode 90: NOP, PAUSE with F3, XCHG with REX.B', () => {
  assert.equal(HANDLER_NAMES[ok('90', 'nop').handler], 'misc_nop');
  assert.equal(HANDLER_NAMES[ok('f3 90', 'pause').handler], 'misc_pause');
  assert.equal(HANDLER_NAMES[ok('41 90', 'xchg r8d,eax').handler], 'mov_xchg');
  ok('49 90', 'xchg r8,rax');
  ok('48 90', 'nop');
});

test('immediates: Iz sign-extends to 64 bits, Iv is imm64 only with REX.W, Ib sign-extends where the SDM says so', () => {
  const iz = ok('48 05 ff ff ff ff', 'add rax,0xffffffffffffffff');
  assert.equal(iz.imm, -1);
  assert.equal(iz.immHi, -1);
  const mov64 = ok('48 b8 88 77 66 55 44 33 22 11', 'movabs rax,0x1122334455667788');
  assert.equal(mov64.imm, 0x55667788);
  assert.equal(mov64.immHi, 0x11223344);
  const mov32 = ok('b8 ff ff ff ff', 'mov eax,0xffffffff');
  assert.equal(mov32.immHi, 0, 'mov r32, imm32 zero-extends');
  assert.equal(ok('6a ff', 'push 0xffffffffffffffff').imm, -1);
  assert.equal(ok('e4 80', 'in al,0x80').imm, 0x80, 'port numbers are unsigned');
  assert.equal(ok('c2 00 80', 'ret 0x8000').imm, 0x8000);
  const enter = ok('c8 10 00 01', 'enter 0x10,0x1');
  assert.equal(enter.opKind[1], OP_IMM2);
  assert.equal(enter.imm2, 1);
  assert.equal(ok('6b c0 80', 'imul eax,eax,0xffffff80').imm, -128);
});

test('near branches: 64-bit operand size, rel32 / rel8 displacements', () => {
  const call = ok('e8 fb ff ff ff', 'call 0x0');
  assert.equal(call.opKind[0], OP_REL);
  assert.equal(call.imm, -5);
  assert.equal(call.osize, 8);
  assert.equal(FORMS[call.form]?.flow, 'call');
  assert.equal(FORMS[ok('eb fe', 'jmp 0x0').form]?.flow, 'jump');
  assert.equal(FORMS[ok('0f 84 00 00 00 00', 'je 0x6').form]?.flow, 'jcc');
  assert.equal(ok('66 e8 00 00 00 00', 'call 0x6').osize, 8, 'Intel 64: 66h does not shrink near branches');
  assert.equal(FORMS[ok('0f 0b', 'ud2').form]?.flow, 'ud');
  assert.equal(FORMS[ok('f4', 'hlt').form]?.flow, 'hlt');
  assert.equal(FORMS[ok('48 cf', 'iretq').form]?.flow, 'iret');
  assert.equal(FORMS[ok('0f 05', 'syscall').form]?.flow, 'syscall');
});

test('push/pop default to 64-bit, 66h gives 16-bit', () => {
  assert.equal(ok('50', 'push rax').osize, 8);
  assert.equal(ok('66 50', 'push ax').osize, 2);
  assert.equal(ok('ff 30', 'push QWORD PTR [rax]').osize, 8);
  assert.equal(ok('0f a0', 'push fs').osize, 8);
});

test('MOV to/from CR and DR ignore ModRM.mod and are 64-bit in 64-bit mode', () => {
  const cr = ok('0f 20 00', 'mov rax,cr0');
  assert.equal(cr.opKind[1], OP_CR);
  assert.equal(cr.opSize[0], 8);
  ok('44 0f 20 c0', 'mov rax,cr8');
  ok('0f 22 d8', 'mov cr3,rax');
  ok('0f 23 d6', 'mov dr2,rsi');
  ok('0f 20 c0', 'mov eax,cr0', MODE_32);
});

test('MOV Sreg with Sreg 6 or 7 is #UD', () => {
  ok('8e d0', 'mov ss,eax');
  status('8e f0', STATUS_INVALID);
  status('8c f8', STATUS_INVALID);
});

test('group encodings with exact ModRM bytes: 0F 01', () => {
  ok('0f 01 ca', 'clac');
  ok('0f 01 cb', 'stac');
  ok('0f 01 d0', 'xgetbv');
  ok('0f 01 f9', 'rdtscp');
  ok('0f 01 15 00 00 00 00', 'lgdt [rip+0x0]');
  ok('0f 01 38', 'invlpg BYTE PTR [rax]');
  status('0f 01 ff', STATUS_INVALID);
});

test('register-only and memory-only forms reject the other mod', () => {
  ok('8d 04 24', 'lea eax,[rsp]');
  status('8d c0', STATUS_INVALID);
  ok('0f ae e8', 'lfence');
  ok('0f ae 38', 'clflush BYTE PTR [rax]');
  status('0f c7 c8', STATUS_INVALID); // cmpxchg8b with a register
  ok('0f c7 f0', 'rdrand eax');
  status('0f c7 30', STATUS_INVALID); // rdrand with memory
});

test('x87: memory and register forms, FWAIT is its own instruction', () => {
  ok('d9 e8', 'fld1');
  ok('dd 00', 'fld QWORD PTR [rax]');
  ok('d8 c1', 'fadd st,st(1)');
  ok('de e9', 'fsubp st(1),st');
  ok('df e0', 'fnstsw ax');
  ok('db 28', 'fld TBYTE PTR [rax]');
  ok('9b', 'fwait');
});

test('CMPccPS predicates fold into the mnemonic as objdump prints them', () => {
  ok('66 0f c2 c1 01', 'cmpltpd xmm0,xmm1');
  ok('f2 0f c2 c1 00', 'cmpeqsd xmm0,xmm1');
  ok('0f c2 c1 09', 'cmpps xmm0,xmm1,0x9');
});

test('16-bit mode: operand size 16, 66h selects 32', () => {
  assert.equal(ok('b8 34 12', 'mov ax,0x1234', MODE_16).osize, 2);
  assert.equal(ok('66 40', 'inc eax', MODE_16).osize, 4);
  assert.equal(ok('66 40', 'inc ax', MODE_32).prefixes & PFX_OPSIZE, PFX_OPSIZE);
  ok('0f 01 16 00 10', 'lgdtw ds:0x1000', MODE_16);
  ok('ea 00 10 00 f0', 'jmp 0xf000:0x1000', MODE_16);
});

test('an Instruction record is reused without leftovers', () => {
  const insn = new Instruction();
  const a = bytes('c7 44 24 08 01 00 00 00');
  decode(insn, a, 0, a.length, MODE_64);
  assert.equal(insn.nops, 2);
  const b = bytes('c3');
  decode(insn, b, 0, b.length, MODE_64);
  assert.equal(insn.nops, 0);
  assert.equal(insn.opKind[0], 0, 'the operand list is terminated');
  assert.equal(insn.modrm, -1);
});
