/**
 * The instruction templates of the differential test (native.test.ts): every
 * family of 64-bit user-mode forms the decoder's table binds to a handler,
 * at each operand size and operand shape (register, immediate, memory
 * window), plus random short programs over a flag-safe subset. Each
 * template names the flags and registers the SDM leaves undefined for it.
 */
import { AF, CF, DF, OF, PF, Rng, SF, STATUS, type Template, ZF } from './native-harness.js';

export function templates(): Template[] {
  const T: Template[] = [];
  let family = '';
  const add = (name: string, code: string, undefinedFlags = 0, extra: Partial<Template> = {}): void => {
    T.push({ name, family, code, undefinedFlags, ...extra });
  };

  family = 'alu';
  for (const op of ['add', 'adc', 'sub', 'sbb', 'and', 'or', 'xor', 'cmp', 'test']) {
    const u = ['and', 'or', 'xor', 'test'].includes(op) ? AF : 0;
    for (const [a, b] of [['rax', 'rbx'], ['eax', 'ebx'], ['ax', 'bx'], ['al', 'bl'], ['ah', 'cl'], ['r9d', 'r10d'], ['r12', 'r13'], ['sil', 'dil'], ['r14b', 'bpl']]) add(`${op} ${a},${b}`, `${op} ${a}, ${b}`, u);
    add(`${op} rax,imm8`, `${op} rax, -5`, u);
    add(`${op} rcx,imm32`, `${op} rcx, 0x7fff1234`, u);
    add(`${op} rdx,-imm32`, `${op} rdx, -0x70000000`, u);
    add(`${op} dx,imm16`, `${op} dx, 0x8001`, u);
    add(`${op} bh,imm8`, `${op} bh, 0x81`, u);
    add(`${op} eax,imm32 (short form)`, `${op} eax, 0x80000001`, u);
    add(`${op} al,imm8 (short form)`, `${op} al, 0x7f`, u);
    add(`${op} mem64,r`, `${op} [W + 8], rax`, u);
    add(`${op} mem32,r`, `${op} [W + 20], ebx`, u);
    add(`${op} mem16,r`, `${op} [W + 30], cx`, u);
    add(`${op} mem8,r`, `${op} [W + 41], dl`, u);
    if (op !== 'test') {
      add(`${op} r64,mem`, `${op} rax, [W + 48]`, u);
      add(`${op} r16,mem`, `${op} si, [W + 3]`, u);
      add(`${op} r8,mem`, `${op} r8b, [W + 127]`, u);
    }
    add(`${op} mem64,imm8`, `${op} qword ptr [W + 56], -3`, u);
    add(`${op} mem32,imm32`, `${op} dword ptr [W + 64], 0x12345678`, u);
    add(`${op} mem8,imm8`, `${op} byte ptr [W + 70], 0x80`, u);
    add(`${op} rip-relative`, `mov [rip + scratch], rbx; ${op} [rip + scratch], rax; mov rdx, [rip + scratch]`, u);
    if (op !== 'cmp' && op !== 'test') add(`lock ${op} mem`, `lock ${op} [W + 16], rdx`, u);
  }
  for (const op of ['inc', 'dec', 'neg', 'not']) {
    for (const r of ['rax', 'ecx', 'dx', 'bl', 'bh', 'r11d', 'r13w', 'spl']) if (r !== 'spl') add(`${op} ${r}`, `${op} ${r}`);
    add(`${op} mem64`, `${op} qword ptr [W + 32]`);
    add(`${op} mem8`, `${op} byte ptr [W + 33]`);
    add(`lock ${op} mem32`, `lock ${op} dword ptr [W + 36]`);
  }

  family = 'shift';
  for (const op of ['shl', 'shr', 'sar', 'rol', 'ror', 'rcl', 'rcr']) {
    const rot = op.startsWith('r');
    for (const r of ['rax', 'ebx', 'dx', 'sil', 'ah']) {
      const small = r === 'dx' || r === 'sil' || r === 'ah';
      add(`${op} ${r},1`, `${op} ${r}, 1`, rot ? 0 : AF);
      // Counts 0 and 1: every flag defined except AF after a shift by 1.
      add(`${op} ${r},cl (0 or 1)`, `and ecx, 1; ${op} ${r}, cl`, rot ? 0 : AF);
      // Any count (masked to 5 or 6 bits by the CPU): OF undefined above 1; CF undefined for SHL/SHR when count >= width.
      add(`${op} ${r},cl`, `${op} ${r}, cl`, (rot ? OF : AF | OF) | (small && !rot ? CF : 0));
      add(`${op} ${r},imm`, `${op} ${r}, 5`, rot ? OF : AF | OF);
    }
    add(`${op} r8,33`, `${op} r8, 33`, rot ? OF : AF | OF);
    // 64-bit counts on each side of 32, for the lo/hi-half paths.
    for (const n of [31, 32, 47, 63]) add(`${op} r12,${n}`, `${op} r12, ${n}`, rot ? OF : AF | OF);
    add(`${op} eax,40 (masked to 8)`, `${op} eax, 40`, rot ? OF : AF | OF);
    add(`${op} al,9`, `${op} al, 9`, rot ? OF : AF | OF | CF);
    add(`${op} ax,17`, `${op} ax, 17`, rot ? OF : AF | OF | CF);
    add(`${op} rax,64 (masked to 0)`, `${op} rax, 64`);
    add(`${op} r9d,31`, `${op} r9d, 31`, rot ? OF : AF | OF);
    add(`${op} bl,8`, `${op} bl, 8`, rot ? OF : AF | OF | (rot ? 0 : CF));
    add(`${op} cx,16`, `${op} cx, 16`, rot ? OF : AF | OF | (rot ? 0 : CF));
    add(`${op} mem64,cl`, `${op} qword ptr [W + 8], cl`, (rot ? OF : AF | OF));
    add(`${op} mem16,1`, `${op} word ptr [W + 10], 1`, rot ? 0 : AF);
    add(`${op} mem8,imm`, `${op} byte ptr [W + 13], 3`, rot ? OF : AF | OF);
  }
  for (const op of ['shld', 'shrd']) {
    add(`${op} rax,rbx,imm`, `${op} rax, rbx, 7`, AF | OF);
    add(`${op} rax,rbx,1`, `${op} rax, rbx, 1`, AF);
    add(`${op} eax,ebx,cl`, `${op} eax, ebx, cl`, AF | OF);
    add(`${op} rdx,rsi,cl`, `${op} rdx, rsi, cl`, AF | OF);
    add(`${op} r10,r11,cl (0 or 1)`, `and ecx, 1; ${op} r10, r11, cl`, AF);
    // 16-bit with a count above 16: result and flags undefined (SDM SHLD/SHRD); counts 0-15 compared.
    add(`${op} si,di,cl`, `and ecx, 15; ${op} si, di, cl`, AF | OF);
    add(`${op} mem64,r,cl`, `${op} [W + 24], rbx, cl`, AF | OF);
    add(`${op} mem32,r,imm`, `${op} [W + 28], edx, 19`, AF | OF);
  }

  family = 'muldiv';
  const MULU = SF | ZF | AF | PF;
  for (const r of ['rbx', 'ebx', 'bx', 'bl', 'r12']) { add(`mul ${r}`, `mul ${r}`, MULU); add(`imul ${r}`, `imul ${r}`, MULU); }
  add('mul mem64', 'mul qword ptr [W + 8]', MULU);
  add('imul mem16', 'imul word ptr [W + 2]', MULU);
  add('imul r,r 64', 'imul rax, rbx', MULU);
  add('imul r,r 32', 'imul ecx, edx', MULU);
  add('imul r,r 16', 'imul si, di', MULU);
  add('imul r,mem 64', 'imul r9, [W + 16]', MULU);
  add('imul r,r,imm', 'imul eax, ebx, 1000', MULU);
  add('imul r,r,imm8 64', 'imul rax, rbx, -3', MULU);
  add('imul r,r,imm32 64', 'imul rdx, rcx, 0x7654321', MULU);
  add('imul r,r,imm16', 'imul dx, cx, -300', MULU);
  // Factors below 2^32 and factors in int32 range take shorter paths in the 64-bit multiply.
  add('mul r64 (32-bit factors)', 'mov eax, eax; mov ebx, ebx; mul rbx', MULU);
  add('imul r64 (32-bit factors)', 'mov eax, eax; mov ebx, ebx; imul rbx', MULU);
  add('imul r,r 64 (32-bit factors)', 'mov eax, eax; mov ebx, ebx; imul rax, rbx', MULU);
  add('imul r,r 64 (int32 factors)', 'movsxd rax, eax; movsxd rbx, ebx; imul rax, rbx', MULU);
  add('imul r64 (int32 factors)', 'movsxd rax, eax; movsxd rbx, ebx; imul rbx', MULU);
  add('imul r,r 64 (int32 and 32-bit)', 'movsxd rax, eax; mov ebx, ebx; imul rax, rbx', MULU);
  add('imul r,r,imm 64 (int32 factor)', 'movsxd rcx, ecx; imul rdx, rcx, -0x7654321', MULU);
  // Raw operands: mostly quotient overflow or a zero divisor, so #DE; the fault and the state at it are compared.
  for (const r of ['rbx', 'ebx', 'bx', 'bl', 'r13']) { add(`div ${r} raw`, `div ${r}`, STATUS); add(`idiv ${r} raw`, `idiv ${r}`, STATUS); }
  add('div mem64 raw', 'div qword ptr [W + 40]', STATUS);
  add('idiv mem32 raw', 'idiv dword ptr [W + 44]', STATUS);
  add('div r64', 'xor edx, edx; div rbx', STATUS);
  add('div r64 wide', 'mov rdx, rcx; shr rdx, 1; mov rbx, rcx; or rbx, 1; div rbx', STATUS);
  add('div r32', 'xor edx, edx; div ebx', STATUS);
  add('div r32 wide', 'mov edx, ecx; shr edx, 1; mov ebx, ecx; or ebx, 1; div ebx', STATUS);
  add('div r16', 'xor edx, edx; div bx', STATUS);
  add('div r8', 'movzx eax, al; div bl', STATUS);
  add('div r8 ah', 'movzx eax, ax; div bh', STATUS);
  add('idiv r64', 'cqo; idiv rbx', STATUS);
  add('idiv r64 small', 'cqo; sar rbx, 40; idiv rbx', STATUS);
  add('idiv r32', 'cdq; idiv ebx', STATUS);
  add('idiv r16', 'cwd; idiv bx', STATUS);
  add('idiv r8', 'cbw; idiv bl', STATUS);
  add('idiv min/-1 64', 'mov rax, 0x8000000000000000; cqo; mov rbx, -1; idiv rbx', STATUS);
  add('idiv min/-1 32', 'mov eax, 0x80000000; cdq; mov ebx, -1; idiv ebx', STATUS);
  add('idiv min/-1 8', 'mov ax, 0xff80; mov bl, -1; idiv bl', STATUS);
  add('idiv wide', 'mov rdx, rcx; sar rdx, 1; sar rdx, 62; idiv rbx', STATUS);

  family = 'bit';
  for (const op of ['bt', 'bts', 'btr', 'btc']) {
    const u = OF | SF | AF | PF;
    add(`${op} r64,r`, `${op} rax, rbx`, u);
    add(`${op} r16,r`, `${op} ax, bx`, u);
    add(`${op} r32,imm`, `${op} eax, 13`, u);
    add(`${op} r64,imm`, `${op} rdx, 61`, u);
    add(`${op} mem,r`, `and rbx, 511; sub rbx, 256; ${op} [W + 64], rbx`, u);
    add(`${op} mem32,r`, `and ebx, 511; sub ebx, 256; ${op} [W + 64], ebx`, u);
    add(`${op} mem16,r`, `and ebx, 511; sub ebx, 256; ${op} [W + 64], bx`, u);
    add(`${op} mem,imm`, `${op} qword ptr [W + 8], 45`, u);
    if (op !== 'bt') add(`lock ${op} mem,r`, `and rbx, 255; lock ${op} [W + 32], rbx`, u);
  }
  // Immediate bit offsets are taken modulo the operand width, for registers and memory alike.
  for (const code of ['bt eax, 45', 'bts rax, 100', 'btc ax, 20', 'btr word ptr [W], 20', 'bt dword ptr [W + 4], 63', 'bts qword ptr [W + 8], 255']) add(code, code, OF | SF | AF | PF);
  for (const [op, r1, r2] of [['bsf', 'rax', 'rbx'], ['bsr', 'rax', 'rbx'], ['bsf', 'ecx', 'edx'], ['bsr', 'ecx', 'edx'], ['bsf', 'si', 'di'], ['bsr', 'si', 'di']] as const) {
    add(`${op} ${r1},${r2}`, `${op} ${r1}, ${r2}`, STATUS & ~ZF);
    add(`${op} ${r1},mem`, `${op} ${r1}, [W + 8]`, STATUS & ~ZF);
    add(`${op} ${r1} zero source`, `xor ${r2}, ${r2}; ${op} ${r1}, ${r2}`, STATUS & ~ZF);
  }
  for (const [r1, r2] of [['rax', 'rbx'], ['ecx', 'edx'], ['si', 'di']]) {
    add(`popcnt ${r1}`, `popcnt ${r1}, ${r2}`);
    add(`popcnt ${r1},mem`, `popcnt ${r1}, [W + 16]`);
  }
  for (const code of ['bswap rax', 'bswap ecx', 'bswap r10', 'bswap r13d']) add(code, code);

  family = 'setcc/cmovcc';
  const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];
  for (const cc of CC) {
    add(`cmov${cc}`, `cmov${cc} rcx, rdx`);
    add(`cmov${cc} 32`, `cmov${cc} ecx, edx`);
    add(`cmov${cc} 16`, `cmov${cc} cx, dx`);
    add(`cmov${cc} mem`, `cmov${cc} r8, [W + 24]`);
    add(`set${cc}`, `set${cc} cl`);
    add(`set${cc} mem`, `set${cc} byte ptr [W + 5]`);
    add(`cmp+set${cc}`, `cmp rax, rbx; set${cc} dl`);
    add(`cmp16+set${cc}`, `cmp ax, bx; set${cc} dil`);
    add(`add+cmov${cc}`, `add eax, ebx; cmov${cc} esi, edi`);
    add(`sub8+set${cc}`, `sub al, bl; set${cc} dl`);
    add(`cmp32+j${cc}`, `cmp eax, ebx; mov esi, 1; j${cc} 1f; mov esi, 2; 1:`);
    add(`test+j${cc}`, `test rax, rbx; mov esi, 1; j${cc} 1f; mov esi, 2; 1:`);
    add(`inc+j${cc}`, `inc rax; mov esi, 1; j${cc} 1f; mov esi, 2; 1:`);
    add(`j${cc} flags`, `mov esi, 1; j${cc} 1f; mov esi, 2; 1:`);
  }

  family = 'mov';
  for (const code of ['movzx eax, bl', 'movzx rcx, dx', 'movzx eax, bh', 'movzx r9w, r10b', 'movsx rax, bx', 'movsx ecx, dl', 'movsx esi, ah', 'movsx di, r11b',
    'movsxd rax, ebx', 'movsxd r12, r13d', 'movzx eax, byte ptr [W + 9]', 'movzx r9, word ptr [W + 126]', 'movzx esi, byte ptr [rip + scratch]', 'movsx rdx, word ptr [W + 14]', 'movsxd rcx, dword ptr [W + 100]',
    'cbw', 'cwde', 'cdqe', 'cwd', 'cdq', 'cqo', 'mov eax, ebx', 'mov ax, bx', 'mov al, 0x12', 'mov ah, bl', 'mov r10b, 0x85', 'mov r11w, 0x1234',
    'mov rax, -7', 'mov ecx, 0xdeadbeef', 'movabs rdx, 0x123456789abcdef0', 'mov [W + 3], rbx', 'mov [W + 7], di', 'mov rsi, [W + 120]',
    'mov byte ptr [W + 1], 0x99', 'mov qword ptr [W + 64], -2', 'movnti [W + 16], rcx', 'xchg rax, rbx', 'xchg ecx, edx', 'xchg al, bh', 'xchg r8w, r9w',
    'xchg [W + 16], rsi', 'xchg [W + 17], cl', 'xchg eax, eax', 'nop', 'nop dword ptr [rax + rax*1 + 0]']) add(code, code);

  family = 'lea';
  for (const code of ['lea rax, [rbx + rcx*4 + 8]', 'lea eax, [rbx + rcx - 1]', 'lea ax, [rbx + rdx*2]', 'lea rdx, [rsi*8]', 'lea rcx, [rdi + 0x7fffffff]',
    'lea r8, [r9 + r10*2 - 0x80000000]', 'lea r11d, [r12 + r13*8 + 100]', 'lea rsi, [rbp + rbp*1]', 'lea eax, [ebx + ecx*4 + 8]', 'lea rax, [ebx + ecx*2 - 1]',
    'lea ecx, [edx]', 'lea r14, [r14 + 1]', 'lea rdi, [rip + 1]', 'lea r12w, [r13 + r14 - 2]']) add(code, code);

  family = 'addressing';
  // Base, index, scale and displacement shapes into the window; rsp- and rbp-based forms through the stack.
  for (const m of ['[rbx + 16]', '[rbx + rcx*8 + 8]', '[rbx + rcx*4 - 4]', '[rbx + rcx*2 + 0x40]', '[rcx*8 + rbx]', '[rbx + rcx]', '[rdi + rcx*8 + 0x7f]',
    '[r12 + r13*4]', '[r12 + 8]', '[rbp + rcx*1 + 3]', '[ebx + ecx*8 + 8]', '[ebx - 8]']) {
    const setup = 'lea rbx, [W + 24]; and ecx, 7; lea rdi, [W - 0x7f]; lea r12, [W + 4]; mov r13d, ecx; lea rbp, [W + 16]';
    const v = m.replace(/e(b|c)x/g, 'e$1x');
    const note = v.startsWith('[e') ? 'lea ebx, [W + 24]; ' : '';
    add(`add r64, ${m}`, `${note ? setup + '; ' + note : setup + '; '}add rax, qword ptr ${v}; sub rbx, r15; sub rdi, r15; sub r12, r15; sub rbp, r15`, 0);
    add(`mov ${m}, imm`, `${setup}; ${note}mov dword ptr ${v}, 0x12345678; mov rax, [W + 24]; sub rbx, r15; sub rdi, r15; sub r12, r15; sub rbp, r15`);
  }
  add('push/pop rsp-relative', 'push rax; push rbx; pop qword ptr [rsp]; pop rcx');
  add('push qword ptr [rsp]', 'push rax; push qword ptr [rsp]; pop rcx; pop rdx');
  add('push rsp', 'mov rsi, rsp; push rsp; pop rax; sub rax, rsi; xor esi, esi');
  add('lea rsp-relative', 'lea rax, [rsp + 8]; sub rax, rsp; lea rdx, [rsp + rcx*2]; sub rdx, rsp', STATUS);
  add('mov [rsp]', 'push rax; mov [rsp], rbx; mov rdx, [rsp + 0]; add rsp, 8', STATUS);
  add('xlatb', 'lea rbx, [W]; xlatb; sub rbx, r15');
  add('rip-relative store', 'mov [rip + scratch + 8], rcx; mov rdx, [rip + scratch + 8]; mov [rip + scratch + 12], ax; mov rsi, [rip + scratch + 8]');

  // High-byte registers cannot be encoded with REX, so their memory forms go through rip-relative scratch.
  for (const code of ['add ah, byte ptr [rip + scratch + 1]', 'sub byte ptr [rip + scratch + 2], ch', 'xchg dh, byte ptr [rip + scratch + 3]',
    'cmp bh, byte ptr [rip + scratch]', 'movzx ecx, ah', 'movsx edx, bh', 'shl ah, cl', 'rcr dh, 1', 'inc ch', 'neg bh', 'xadd ah, ch', 'cmpxchg bh, dl',
    'mov ah, byte ptr [rip + scratch + 5]', 'mov byte ptr [rip + scratch + 6], dh', 'test ch, 0x81', 'adc ah, bh', 'setc ah', 'bswap eax']) {
    add(`high byte: ${code}`, `mov [rip + scratch], rsi; ${code}; mov rdi, [rip + scratch]`, code.startsWith('shl') ? AF | OF | CF : code.startsWith('test') ? AF : 0);
  }

  // Near (rel32) conditional jumps, CALL through memory, the /6 alias of SHL and the /1 alias of TEST, hint instructions.
  for (const cc of CC) add(`j${cc} rel32`, `mov esi, 1; j${cc} 1f; mov esi, 2; .skip 160, 0x90; 1:`);
  add('jmp rel32', 'mov esi, 1; jmp 1f; .skip 160, 0xcc; 1:');
  add('call mem', 'lea rdx, [rip + 1f]; mov [W], rdx; call qword ptr [W]; jmp 2f; 1: inc ebx; ret; 2: xor edx, edx; mov [W], rdx');
  add('sal /6 alias', '.byte 0xd1, 0xf0; .byte 0x48, 0xc1, 0xf3, 0x05', AF | OF);
  add('sal /6 alias by cl and 8-bit', 'and ecx, 1; .byte 0xd3, 0xf2; .byte 0xd0, 0xf3; .byte 0xd2, 0xf6; .byte 0xc0, 0xf7, 0x03', AF | OF);
  add('hint nops 0f 19-1e', '.byte 0x0f, 0x19, 0xc0; .byte 0x0f, 0x1a, 0xc0; .byte 0x0f, 0x1b, 0xc0; .byte 0x0f, 0x1c, 0xc0; .byte 0x0f, 0x1d, 0xc0; .byte 0x0f, 0x1e, 0xc0; .byte 0x0f, 0x18, 0x20');
  add('mov moffs', 'movabs qword ptr [scratch], rax; movabs eax, dword ptr [scratch + 4]; movabs byte ptr [scratch + 9], al; movabs ax, word ptr [scratch + 8]');
  add('test /1 alias', '.byte 0xf6, 0xc8, 0x55; .byte 0x48, 0xf7, 0xcb, 0x78, 0x56, 0x34, 0x12', AF);
  add('prefetch of an unmapped address does not fault', 'prefetcht0 [0x10]; prefetchnta [0x20]; mov eax, 1');
  add('hints and fences', 'mfence; lfence; sfence; pause; prefetchnta [W]; prefetcht0 [W + 8]; prefetcht1 [W]; prefetcht2 [W]; clflush [W + 64]; endbr64; endbr32; nop word ptr [rax + rax]');

  add('movsxd r32 without REX.W', '.byte 0x63, 0xc3');
  add('instruction of 15 bytes', '.byte 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66; nop');

  // Prefix rules of 64-bit mode (SDM Vol. 2A, 2.2.1): a REX not directly before the opcode is ignored, the last
  // REX counts, REX.W beats 66h, F2/F3 on a non-string opcode and segment overrides other than FS/GS do nothing,
  // a REX byte turns AH..BH into SPL..DIL.
  for (const [what, bytes] of [['REX then 66h', '0x48, 0x66, 0x01, 0xd8'], ['two REX prefixes', '0x41, 0x48, 0x01, 0xd8'], ['66h then REX.W', '0x66, 0x48, 0x01, 0xd8'],
    ['F3 on add', '0xf3, 0x01, 0xd8'], ['F2 F3 66 on add', '0xf2, 0xf3, 0x66, 0x01, 0xd8'], ['ES/CS/SS/DS overrides', '0x26, 0x2e, 0x36, 0x3e, 0x41, 0x8b, 0x47, 0x08'],
    ['REX selects SIL', '0x40, 0xb6, 0x12'], ['REX selects SIL as source', '0x40, 0x88, 0xf0'], ['branch hints', '0x2e, 0x74, 0x00, 0x3e, 0x75, 0x00'],
    ['addr32 rip-relative', '0x67, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00'], ['66h on a 64-bit push', '0x66, 0x50, 0x66, 0x5b']]) {
    add(`prefixes: ${what}`, `.byte ${bytes}`);
  }

  family = 'faults';
  add('ud0', 'ud0 eax, eax');
  add('ud1', 'ud1 eax, eax');
  add('in at CPL 3', 'in al, dx');
  add('out at CPL 3', 'out dx, al');
  add('cli at CPL 3', 'cli');
  add('lock on a register operand', '.byte 0xf0; add eax, ebx');
  add('lock on mov', '.byte 0xf0; mov [W], eax');
  add('instruction longer than 15 bytes', '.byte 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x90');
  for (const [what, bytes] of [['push es', '0x06'], ['daa', '0x27'], ['salc', '0xd6'], ['mov cs, ax', '0x8e, 0xc8'], ['aam', '0xd4, 0x0a'], ['into', '0xce'],
    ['les', '0xc4, 0x00'], ['jmp far absolute', '0xea, 0, 0, 0, 0, 0, 0'], ['pusha', '0x60']]) {
    add(`64-bit mode invalid: ${what}`, `.byte ${bytes}`);
  }
  add('sti at CPL 3', 'sti');
  add('ud2', 'ud2');
  add('cmov with a false condition still reads its source', 'cmp eax, eax; cmovne rax, qword ptr [0x10]');
  // Stack instructions that fault leave RSP as it was (the record holds RSP's change).
  add('push from unmapped memory', 'push qword ptr [0x10]');
  add('pop to unmapped memory', 'push rax; pop qword ptr [0x10]');
  add('call through unmapped memory', 'call qword ptr [0x10]');
  add('call to an unmapped target', 'mov rdx, 0x10; call rdx');
  add('ret to an unmapped target', 'push 0x10; ret');
  add('ret to a non-canonical target', 'mov rdx, 0x0000800000000000; push rdx; ret');
  add('jmp to a non-canonical target', 'mov rdx, 0x0000800000000000; jmp rdx');
  add('load from page 0', 'add rax, rbx; mov rcx, qword ptr [0x10]', 0);
  add('load non-canonical', 'mov rdx, 0x8000000000000000; mov rcx, [rdx]', 0);
  add('cmpxchg16b unaligned', 'cmpxchg16b [W + 8]', STATUS & ~ZF);
  add('ldmxcsr reserved bits', 'mov dword ptr [W], 0x11f80; ldmxcsr [W]');
  add('div zero after work', 'add rax, rbx; xor ecx, ecx; div rcx', STATUS);
  add('idiv overflow after flags', 'sub rax, rdx; mov rbx, -1; mov rax, 0x8000000000000000; cqo; idiv rbx', STATUS);

  family = 'xchg/cmpxchg';
  add('xadd', 'xadd rax, rbx');
  add('xadd 32', 'xadd ecx, edx');
  add('xadd 16', 'xadd cx, dx');
  add('xadd 8', 'xadd al, bh');
  add('xadd mem', 'xadd [W + 8], rdx');
  add('lock xadd mem32', 'lock xadd [W + 12], esi');
  for (const [a, r, m, s] of [['rax', 'rcx', 'rbx', '64'], ['eax', 'ecx', 'ebx', '32'], ['ax', 'cx', 'bx', '16'], ['al', 'cl', 'bl', '8']] as const) {
    add(`cmpxchg ${s} miss`, `cmpxchg ${r}, ${m}`);
    add(`cmpxchg ${s} hit`, `mov ${a}, ${r}; cmpxchg ${r}, ${m}`);
    add(`cmpxchg mem${s} miss`, `lock cmpxchg [W + 16], ${m}`);
    add(`cmpxchg mem${s} hit`, `mov ${a}, [W + 16]; lock cmpxchg [W + 16], ${m}`);
  }
  add('cmpxchg8b miss', 'cmpxchg8b [W + 40]', STATUS & ~ZF);
  add('cmpxchg8b hit', 'mov eax, [W + 40]; mov edx, [W + 44]; lock cmpxchg8b [W + 40]', STATUS & ~ZF);
  add('cmpxchg16b miss', 'cmpxchg16b [W + 48]', STATUS & ~ZF);
  add('cmpxchg16b hit', 'mov rax, [W + 48]; mov rdx, [W + 56]; lock cmpxchg16b [W + 48]', STATUS & ~ZF);
  add('cmpxchg16b half hit', 'mov rax, [W + 48]; lock cmpxchg16b [W + 48]', STATUS & ~ZF);

  family = 'flags';
  add('lahf/sahf', 'lahf; xor ah, 0xd5; sahf; lahf');
  add('sahf', 'sahf');
  add('lahf', 'lahf');
  add('clc/stc/cmc', 'stc; cmc; setc al; clc; setc bl; cmc');
  add('cmc', 'cmc');
  add('pushf/popf', 'pushfq; pop rax; xor rax, 0x8d5; push rax; popfq');
  add('add+pushf', 'add rax, rbx; pushfq; pop rcx; and ecx, 0x8d5');
  add('popf of DF, NT, AC, ID', 'pushfq; pop rax; mov rdx, rax; xor rax, 0x244400; push rax; popfq; pushfq; pop rbx; push rdx; popfq');
  add('popf cannot set IF, IOPL, TF-free bits', 'pushfq; pop rax; mov rdx, rax; or rax, 0x3200; push rax; popfq; pushfq; pop rbx; push rdx; popfq');
  add('std/cld', 'std; pushfq; pop rax; cld; and eax, 0x400', 0, { inputFlags: DF });

  family = 'stack';
  add('push/pop', 'push rax; push bx; pop cx; pop rdx');
  add('push imm/mem', 'push -5; push 0x12345678; push qword ptr [W + 8]; pop rax; pop rbx; pop rcx');
  add('pop mem', 'push rdx; pop qword ptr [W + 16]; push si; pop word ptr [W + 24]');
  add('push r/pop r', 'push r12; push r13; pop r14; pop r8; push rbp; pop r9');
  add('enter/leave', 'mov rsi, rsp; enter 32, 0; mov rdi, rsp; sub rdi, rsi; leave; mov r8, rsp; sub r8, rsi; xor esi, esi');
  add('enter nested', 'mov rsi, rsp; lea rbp, [W + 64]; enter 24, 3; mov rax, [rbp]; mov rbx, [rbp - 8]; mov rcx, [rbp - 16]; mov rdx, [rbp - 24]; sub rdx, rsi; mov rdi, rbp; sub rdi, rsi; mov r8, rsp; sub r8, rsi; leave; mov r9, rsp; sub r9, rsi; mov r10, rbp; sub r10, r15; xor esi, esi; xor ebp, ebp');
  add('enter 1', 'mov rsi, rsp; enter 8, 1; mov rax, [rbp - 8]; sub rax, rsi; mov rdx, rbp; sub rdx, rsi; leave; xor esi, esi');
  add('call/ret', 'call 1f; jmp 2f; 1: mov eax, 7; ret; 2:');
  add('call/ret imm', 'call 1f; jmp 2f; 1: mov eax, 7; ret 16; 2: lea rsp, [rsp - 16]');
  add('call indirect', 'lea rdx, [rip + 1f]; call rdx; jmp 2f; 1: inc rbx; ret; 2: xor edx, edx');
  add('jmp indirect mem', 'lea rdx, [rip + 1f]; mov [W], rdx; jmp qword ptr [W]; mov eax, 1; 1: xor edx, edx; mov [W], rdx');
  add('loop', 'and ecx, 15; or ecx, 1; xor eax, eax; 1: inc eax; loop 1b');
  add('loope', 'and ecx, 15; or ecx, 1; xor eax, eax; 1: inc eax; cmp eax, ebx; loope 1b');
  add('loopne', 'and ecx, 15; or ecx, 1; and ebx, 7; xor eax, eax; 1: inc eax; cmp eax, ebx; loopne 1b');
  add('loop addr32', 'and ecx, 7; or ecx, 1; bts rcx, 32; xor eax, eax; 1: inc eax; .byte 0x67; loop 1b', AF | OF);
  add('jrcxz', 'and ecx, 1; mov eax, 1; jrcxz 1f; mov eax, 2; 1:');
  add('jecxz', 'shl rcx, 32; mov eax, 1; jecxz 1f; mov eax, 2; 1:', AF | OF);
  add('jrcxz high', 'shl rcx, 32; mov eax, 1; jrcxz 1f; mov eax, 2; 1:', AF | OF);

  family = 'string';
  // Pointers start mid-window so 7 elements of 8 bytes fit either way; DF is random.
  const sfx: Record<string, number> = { b: 1, w: 2, d: 4, q: 8 };
  for (const s of ['b', 'w', 'd', 'q']) {
    const pre = 'and ecx, 7; lea rsi, [W + 60]; lea rdi, [W + 64]; ';
    const post = '; sub rsi, r15; sub rdi, r15';
    const o = { inputFlags: DF };
    add(`rep movs${s}`, `${pre}rep movs${s}${post}`, 0, o);
    add(`movs${s}`, `${pre}movs${s}${post}`, 0, o);
    add(`rep stos${s}`, `${pre}rep stos${s}${post}`, 0, o);
    add(`lods${s}`, `${pre}lods${s}${post}`, 0, o);
    add(`rep lods${s}`, `${pre}rep lods${s}${post}`, 0, o);
    add(`cmps${s}`, `${pre}cmps${s}${post}`, 0, o);
    add(`scas${s}`, `${pre}scas${s}${post}`, 0, o);
    // Equal runs: the source half copied over the destination first, so REPE runs on.
    add(`repe cmps${s}`, `${pre}repe cmps${s}${post}`, 0, o);
    add(`repe cmps${s} equal`, `mov rdx, [W + 8]; mov [W + 72], rdx; mov rdx, [W + 16]; mov [W + 80], rdx; mov rdx, [W + 0]; mov [W + 64], rdx; and ecx, 7; lea rsi, [W + 0]; lea rdi, [W + 64]; repe cmps${s}; sub rsi, r15; sub rdi, r15`, 0);
    add(`repne cmps${s}`, `${pre}repne cmps${s}${post}`, 0, o);
    add(`repe scas${s}`, `${pre}mov rax, [W + 64]; repe scas${s}${post}`, 0, o);
    add(`repne scas${s}`, `${pre}mov rax, [W + ${64 + 3 * (sfx[s] ?? 1)}]; repne scas${s}${post}`, 0, o);
  }
  // REP strings that run off the start of the image (0x400000; nothing is mapped below) fault part-way:
  // RCX, RSI and RDI hold the progress made, DF stays as set. Only reads: the image is not writable natively.
  add('rep lodsb into unmapped memory', 'mov rsi, 0x400008; std; mov ecx, 32; rep lodsb');
  add('rep lodsd into unmapped memory', 'mov rsi, 0x400004; std; mov ecx, 8; rep lodsd');
  add('repe cmpsb into unmapped memory', 'mov rsi, 0x400008; mov rdi, 0x400108; std; mov ecx, 32; repe cmpsb');
  add('rep movsb from unmapped memory', 'mov rsi, 0x400008; lea rdi, [W + 100]; std; mov ecx, 32; rep movsb; sub rdi, r15');
  add('rep movsb long', 'lea rsi, [W]; lea rdi, [W + 61]; mov ecx, 60; rep movsb; sub rsi, r15; sub rdi, r15');
  add('rep movsb overlap', 'lea rsi, [W]; lea rdi, [W + 3]; mov ecx, 50; rep movsb; sub rsi, r15; sub rdi, r15');
  add('rep stosq zero count', 'xor ecx, ecx; lea rdi, [W + 8]; rep stosq; sub rdi, r15');
  add('rep movsd addr32', 'and ecx, 7; lea esi, [rip + buf1]; lea edi, [rip + scratch]; addr32 rep movsd; mov rax, [rip + scratch]; mov rbx, [rip + scratch + 8]; lea rdx, [rip + scratch]; sub rdi, rdx; xor esi, esi');
  add('repne scasb buf', 'lea rdi, [rip + buf1]; mov al, 0x20; mov ecx, 60; repne scasb; lea rdx, [rip + buf1]; sub rdi, rdx');

  family = 'sse-int';
  for (const op of ['paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubw', 'psubd', 'psubq', 'paddsb', 'paddsw', 'paddusb', 'paddusw',
    'psubsb', 'psubsw', 'psubusb', 'psubusw', 'pmullw', 'pmulhw', 'pmulhuw', 'pmuludq', 'pmaddwd', 'psadbw', 'pavgb', 'pavgw',
    'pminub', 'pmaxub', 'pminsw', 'pmaxsw', 'pand', 'pandn', 'por', 'pxor', 'pcmpeqb', 'pcmpeqw', 'pcmpeqd', 'pcmpgtb', 'pcmpgtw',
    'pcmpgtd', 'packsswb', 'packssdw', 'packuswb', 'punpcklbw', 'punpcklwd', 'punpckldq', 'punpcklqdq', 'punpckhbw', 'punpckhwd',
    'punpckhdq', 'punpckhqdq', 'psrlw', 'psrld', 'psrlq', 'psraw', 'psrad', 'psllw', 'pslld', 'psllq', 'unpcklps', 'unpckhps', 'unpcklpd', 'unpckhpd',
    'andps', 'andpd', 'andnps', 'andnpd', 'orps', 'orpd', 'xorps', 'xorpd']) {
    add(op, `${op} xmm0, xmm1`);
    add(`${op} mem`, `${op} xmm2, [W + 32]`);
    add(`${op} same`, `${op} xmm3, xmm3`);
  }
  for (const sh of ['psrlw', 'psrld', 'psrlq', 'psraw', 'psrad', 'psllw', 'pslld', 'psllq']) {
    add(`${sh} count from rcx`, `movq xmm1, rcx; ${sh} xmm0, xmm1`);
    for (const n of [0, 1, 7, 15, 16, 31, 32, 63, 64, 200]) add(`${sh} imm ${n}`, `${sh} xmm0, ${n}`);
  }
  for (const n of [0, 1, 5, 8, 15, 16, 255]) { add(`psrldq ${n}`, `psrldq xmm0, ${n}`); add(`pslldq ${n}`, `pslldq xmm1, ${n}`); }
  for (const imm of [0x00, 0x1b, 0x4e, 0xb1, 0xe4, 0xff, 0x93]) {
    add(`pshufd ${imm}`, `pshufd xmm0, xmm1, ${imm}`);
    add(`pshufhw ${imm}`, `pshufhw xmm0, xmm1, ${imm}`);
    add(`pshuflw ${imm}`, `pshuflw xmm2, [W + 48], ${imm}`);
    add(`shufps ${imm}`, `shufps xmm0, xmm1, ${imm}`);
  }
  for (const imm of [0, 1, 2, 3]) add(`shufpd ${imm}`, `shufpd xmm0, xmm1, ${imm}`);
  for (const code of ['pmovmskb eax, xmm0', 'movmskps ecx, xmm1', 'movmskpd edx, xmm0', 'pextrw eax, xmm0, 5', 'pextrw r9d, xmm3, 0', 'pinsrw xmm1, ebx, 2',
    'pinsrw xmm2, word ptr [W + 6], 7', 'movd xmm0, eax', 'movq xmm1, rdx', 'movd xmm2, [W + 4]', 'movq xmm3, [W + 8]', 'movd ecx, xmm1', 'movq rdx, xmm0',
    'movd [W + 12], xmm1', 'movq [W + 16], xmm2', 'movq xmm0, xmm1', 'movhlps xmm0, xmm1', 'movlhps xmm0, xmm1', 'movss xmm0, xmm1', 'movsd xmm1, xmm0',
    'movss xmm2, [W + 8]', 'movsd xmm3, [W + 16]', 'movss [W + 20], xmm0', 'movsd [W + 24], xmm1', 'movdqa xmm0, xmm1', 'movaps xmm2, [W + 32]',
    'movapd [W + 48], xmm3', 'movdqu xmm0, [W + 3]', 'movups [W + 5], xmm1', 'movupd xmm2, [W + 7]', 'movlps xmm0, [W + 4]', 'movhps xmm1, [W + 12]',
    'movlpd [W + 24], xmm2', 'movhpd [W + 32], xmm3', 'movntdq [W + 64], xmm1', 'movntps [W + 80], xmm2',
    'lea rdi, [W + 32]; maskmovdqu xmm0, xmm1; xor edi, edi', 'movaps [W + 16], xmm0', 'movups xmm0, xmm1', 'movdqu [W + 1], xmm2', 'movupd [W + 3], xmm1',
    'movhps [W + 8], xmm1', 'movlps [W], xmm0', 'movlpd xmm1, [W]', 'movhpd xmm2, [W + 8]', 'movntpd [W + 16], xmm1', 'movdqa [W + 32], xmm3', 'movapd xmm0, xmm1',
    'movups [W + 9], xmm3', 'movupd xmm2, xmm0', 'movaps xmm3, xmm1', 'movdqu xmm1, xmm2']) add(code, code);

  // REX-extended XMM registers (xmm8-15) as sources, destinations and memory-operand targets.
  for (const op of ['paddb', 'pmullw', 'punpcklbw', 'pshufd', 'addpd', 'mulps', 'cvtdq2ps', 'andnps', 'pcmpgtd', 'psrlq', 'movdqa', 'sqrtsd', 'unpckhpd']) {
    const imm = op === 'pshufd' ? ', 0x4e' : '';
    add(`${op} xmm8-15`, `movdqa xmm9, xmm1; movdqa xmm12, xmm0; ${op} xmm12, xmm9${imm}; ${op} xmm9, [W + 32]${imm}; movdqa xmm0, xmm12; movdqa xmm1, xmm9`);
  }
  add('pinsrw/pextrw high index', 'pinsrw xmm0, eax, 12; pextrw ecx, xmm1, 9; pinsrw xmm11, ebx, 3; pextrw edx, xmm11, 3');
  add('pmaddwd 0x8000', 'pcmpeqw xmm1, xmm1; psllw xmm1, 15; movdqa xmm0, xmm1; pmaddwd xmm0, xmm1');
  add('shufps mem', 'shufps xmm0, [W + 16], 0x72');
  add('movq xmm8 rax', 'movq xmm8, rax; movq rbx, xmm8; movd xmm13, ecx; movdqa xmm2, xmm13');

  family = 'sse-fp';
  for (const op of ['addsd', 'subsd', 'mulsd', 'divsd', 'minsd', 'maxsd', 'sqrtsd', 'addss', 'subss', 'mulss', 'divss', 'minss', 'maxss', 'sqrtss',
    'addpd', 'subpd', 'mulpd', 'divpd', 'minpd', 'maxpd', 'sqrtpd', 'addps', 'subps', 'mulps', 'divps', 'minps', 'maxps', 'sqrtps']) {
    add(`${op}`, `${op} xmm0, xmm1`);
    add(`${op} mem`, `${op} xmm2, [W + 64]`);
    add(`${op} ints`, `cvtsi2sd xmm0, rax; cvtsi2sd xmm1, rcx; cvtsi2ss xmm0, edx; ${op} xmm0, xmm1`);
  }
  for (const code of ['cvtsi2sd xmm0, rax', 'cvtsi2sd xmm1, ebx', 'cvtsi2ss xmm0, rcx', 'cvtsi2ss xmm1, edx', 'cvtsi2sd xmm2, qword ptr [W + 8]',
    'cvttsd2si rax, xmm0', 'cvtsd2si rcx, xmm1', 'cvttsd2si eax, xmm1', 'cvtsd2si edx, xmm2', 'cvttss2si rdx, xmm0', 'cvtss2si eax, xmm1', 'cvtss2si r9, xmm3',
    'cvttss2si ecx, xmm2', 'cvtsd2si rax, qword ptr [W + 16]', 'cvtsd2ss xmm0, xmm1', 'cvtss2sd xmm0, xmm1', 'cvtps2pd xmm0, xmm1', 'cvtpd2ps xmm0, xmm1',
    'cvtdq2ps xmm0, xmm1', 'cvtdq2pd xmm0, xmm1', 'cvttps2dq xmm0, xmm1', 'cvtps2dq xmm1, xmm0', 'cvtpd2dq xmm0, xmm1', 'cvttpd2dq xmm1, xmm0',
    'cvtsi2sd xmm0, rax; cvtsd2si rbx, xmm0', 'cvtps2pd xmm0, qword ptr [W + 8]', 'cvtdq2pd xmm1, qword ptr [W + 4]', 'cvtss2sd xmm2, dword ptr [W]',
    'cvtsd2ss xmm3, qword ptr [W + 24]', 'cvttps2dq xmm0, [W + 16]', 'cvtsi2ss xmm1, dword ptr [W + 8]', 'sqrtss xmm2, dword ptr [W + 4]', 'cvtpd2ps xmm3, [W + 32]',
    'cvttsd2si r12, qword ptr [W + 40]', 'cvtss2si r13d, dword ptr [W + 44]', 'cvtsi2sd xmm9, r14; movq rax, xmm9', 'xorpd xmm1, xmm1; divsd xmm1, xmm1', 'xorps xmm0, xmm0; sqrtsd xmm0, xmm1; cvtsi2sd xmm1, rax; mulsd xmm1, xmm0',
    'stmxcsr [W + 4]; mov eax, [W + 4]; and eax, 0xffc0', 'mov [W], eax; or dword ptr [W], 0x1f80; and dword ptr [W], 0xffff; ldmxcsr [W]; addsd xmm0, xmm1; cvtsd2si rax, xmm0; stmxcsr [W + 8]; and dword ptr [W + 8], 0xffc0', 'mov dword ptr [W], 0x11f80; ldmxcsr [W]']) add(code, code);
  for (const p of ['eq', 'lt', 'le', 'unord', 'neq', 'nlt', 'nle', 'ord']) {
    add(`cmp${p}sd`, `cmp${p}sd xmm0, xmm1`);
    add(`cmp${p}ss`, `cmp${p}ss xmm0, xmm1`);
    add(`cmp${p}pd`, `cmp${p}pd xmm2, xmm3`);
    add(`cmp${p}ps`, `cmp${p}ps xmm2, [W + 16]`);
  }
  for (const op of ['ucomisd', 'comisd', 'ucomiss', 'comiss']) {
    add(`${op}`, `${op} xmm0, xmm1`);
    add(`${op} mem`, `${op} xmm2, [W + 8]`);
    add(`${op} ints`, `cvtsi2sd xmm0, eax; cvtsi2sd xmm1, ebx; cvtsi2ss xmm0, ecx; ${op} xmm0, xmm1`);
    add(`${op} equal`, `movdqa xmm1, xmm0; ${op} xmm0, xmm1`);
  }

  family = 'x87';
  // The driver sets FCW to 53-bit precision with a random rounding mode: binary64 arithmetic, which is what the soft FPU computes.
  add('x87 arith', 'movsx rax, ax; movsx rbx, bx; or rbx, 1; mov [W], rax; mov [W + 8], rbx; fild qword ptr [W]; fild qword ptr [W + 8]; fdivp; fld st(0); fmul st, st(0); faddp; fistp qword ptr [W + 16]');
  add('x87 compare', 'movsx rax, ax; movsx rbx, bx; mov [W], rax; mov [W + 8], rbx; fild qword ptr [W]; fild qword ptr [W + 8]; fcomip st, st(1); fstp st(0); fnstsw ax; and eax, 0x4500');
  add('x87 fcom', 'fld qword ptr [W]; fcom qword ptr [W + 8]; fnstsw ax; fstp st(0); and eax, 0x4500');
  add('x87 store double', 'mov [W], eax; fild dword ptr [W]; mov dword ptr [W + 4], 7; fild dword ptr [W + 4]; fdivp; fld st(0); fmulp; fstp qword ptr [W + 8]');
  add('x87 rounding', 'mov [W], eax; fild dword ptr [W]; mov dword ptr [W + 4], 7; fidiv dword ptr [W + 4]; fistp dword ptr [W + 8]');
  add('x87 m80', 'sar rax, 11; mov [W], rax; fild qword ptr [W]; fstp tbyte ptr [W + 16]; fld tbyte ptr [W + 16]; fistp qword ptr [W + 32]');
  // Each result goes through memory before the next operation: the soft FPU's registers are binary64, so a
  // result beyond binary64's exponent range but finite in the 80-bit format is not kept (README.md).
  add('x87 double ops', 'fld qword ptr [W]; fld qword ptr [W + 8]; faddp; fstp qword ptr [W + 24]; fld qword ptr [W + 24]; fld qword ptr [W + 16]; fmulp; fstp qword ptr [W + 32]');
  add('x87 double from ints', 'movsx rax, eax; mov [W], rax; fild qword ptr [W]; fld qword ptr [W + 8]; fsubrp; fstp qword ptr [W + 40]; fld qword ptr [W + 8]; fchs; fabs; fstp qword ptr [W + 48]');
  add('x87 fsqrt', 'mov [W], eax; fild dword ptr [W]; fabs; fsqrt; fstp qword ptr [W + 8]');
  add('x87 frndint', 'movsx rax, eax; mov [W], rax; fild qword ptr [W]; mov dword ptr [W + 4], 3; fidiv dword ptr [W + 4]; frndint; fistp qword ptr [W + 16]');
  // FISTTP is SSE3, not advertised (the soft CPU raises #UD, the host has it).
  add('x87 fist', 'fld qword ptr [W]; fistp dword ptr [W + 8]; fld qword ptr [W + 16]; fistp qword ptr [W + 24]');
  add('x87 consts', 'fld1; fldz; fldpi; faddp; faddp; fstp qword ptr [W]');
  add('x87 fxch/fcmov', 'fld qword ptr [W]; fld qword ptr [W + 8]; fxch; fcmovb st, st(1); fstp qword ptr [W + 16]; fstp qword ptr [W + 24]');
  add('x87 ftst/fxam', 'fld qword ptr [W]; ftst; fnstsw ax; and eax, 0x4500; fxam; fnstsw [W + 8]; and word ptr [W + 8], 0x4700; fstp st(0)');
  add('fnstcw/fldcw', 'fnstcw [W]; movzx eax, word ptr [W]; or word ptr [W], 0xc00; fldcw [W]; fnstcw [W + 2]; movzx ebx, word ptr [W + 2]; fninit');
  add('x87 fst m32 rounding', 'fld qword ptr [W]; fst dword ptr [W + 8]; fstp dword ptr [W + 12]');
  add('x87 fild m16/m32', 'fild word ptr [W]; fild dword ptr [W + 4]; faddp; fstp qword ptr [W + 8]');
  add('x87 fcomi/fucomi', 'fld qword ptr [W]; fld qword ptr [W + 8]; fcomi st, st(1); setb al; sete bl; setp cl; fucomip st, st(1); fstp st(0)', 0);
  for (const cc of ['b', 'e', 'be', 'u', 'nb', 'ne', 'nbe', 'nu']) {
    add(`x87 fcmov${cc}`, `fld qword ptr [W]; fld qword ptr [W + 8]; fcmov${cc} st, st(1); fstp qword ptr [W + 16]; fstp st(0)`);
  }
  add('x87 fprem', 'mov [W], eax; fild dword ptr [W]; mov dword ptr [W + 4], 7; fild dword ptr [W + 4]; fxch; fprem; fnstsw ax; and eax, 0x4700; fstp qword ptr [W + 8]; fstp st(0)');
  add('x87 fprem1', 'mov [W], eax; fild dword ptr [W]; mov [W + 4], ebx; fild dword ptr [W + 4]; fxch; fprem1; fnstsw ax; and eax, 0x4700; fstp qword ptr [W + 8]; fstp st(0)');
  add('x87 fscale', 'movsx rax, al; mov [W], rax; fild qword ptr [W]; fld qword ptr [W + 8]; fscale; fstp qword ptr [W + 16]; fstp st(0)');
  add('x87 fxtract', 'fld qword ptr [W]; fxtract; fstp qword ptr [W + 8]; fstp qword ptr [W + 16]');
  add('x87 frndint any', 'fld qword ptr [W]; frndint; fstp qword ptr [W + 8]');
  add('x87 fist m16', 'fld qword ptr [W]; fist word ptr [W + 8]; fistp dword ptr [W + 12]');
 for (const op of ['fadd', 'fsub', 'fsubr', 'fmul', 'fdiv', 'fdivr']) {
    // Products and quotients of random doubles can land among binary64's denormals; the host rounds those twice
    // (to 53 bits in the wide-exponent register, then on the store), the soft FPU once (README.md). For
    // these, the operands' exponents are kept within [2^-511, 2): bit 62 cleared, bit 61 set.
    const pre = op === 'fmul' || op === 'fdiv' || op === 'fdivr'
      ? 'btr qword ptr [W], 62; bts qword ptr [W], 61; btr qword ptr [W + 8], 62; bts qword ptr [W + 8], 61; btr dword ptr [W], 30; bts dword ptr [W], 29; ' : '';
    add(`${op} m64`, `${pre}fld qword ptr [W]; ${op} qword ptr [W + 8]; fstp qword ptr [W + 16]`);
    add(`${op} m32`, `${pre}fld dword ptr [W]; ${op} dword ptr [W + 4]; fstp qword ptr [W + 16]`);
    add(`${op} st, st(i)`, `${pre}fld qword ptr [W]; fld qword ptr [W + 8]; ${op} st, st(1); fstp qword ptr [W + 16]; fstp qword ptr [W + 24]`);
    add(`${op} st(i), st`, `${pre}fld qword ptr [W]; fld qword ptr [W + 8]; ${op} st(1), st; fstp qword ptr [W + 16]; fstp qword ptr [W + 24]`);
    add(`${op}p`, `${pre}fld qword ptr [W]; fld qword ptr [W + 8]; ${op}p st(1), st; fstp qword ptr [W + 16]`);
    add(`fi${op.slice(1)} m32`, `${pre}movsx rax, ax; mov [W + 8], eax; fld qword ptr [W]; fi${op.slice(1)} dword ptr [W + 8]; fstp qword ptr [W + 16]`);
    add(`fi${op.slice(1)} m16`, `${pre}mov [W + 8], ax; fld qword ptr [W]; fi${op.slice(1)} word ptr [W + 8]; fstp qword ptr [W + 16]`);
  }
  for (const code of ['fcom st(1)', 'fcomp st(1)', 'fcompp', 'fucom st(1)', 'fucomp st(1)', 'fucompp', 'fcom dword ptr [W + 4]', 'fcomp qword ptr [W + 8]',
    'ficom word ptr [W + 8]', 'ficomp dword ptr [W + 8]', 'fucomi st, st(1)', 'fcomi st, st(1)']) {
    add(`x87 ${code}`, `fld qword ptr [W + 8]; fld qword ptr [W]; ${code}; fnstsw ax; and eax, 0x4500; setb cl; setz dl; setp bl; fninit`);
  }
  for (const code of ['fcomp dword ptr [W + 4]', 'fcom qword ptr [W + 8]', 'ficom dword ptr [W + 8]', 'ficomp word ptr [W + 8]']) {
    add(`x87 ${code} (2)`, `fld qword ptr [W]; ${code}; fnstsw ax; and eax, 0x4500; fninit`);
  }
  add('x87 fst m64/m32/st(i), fistp m16/m32', 'fld qword ptr [W]; fst qword ptr [W + 8]; fst dword ptr [W + 16]; fld1; fst st(1); fistp word ptr [W + 20]; fistp dword ptr [W + 24]');
  add('x87 fldenv', 'fld1; fnstenv [W + 32]; mov qword ptr [W + 44], 0; mov qword ptr [W + 52], 0; and dword ptr [W + 32], 0xf3f; or word ptr [W + 36], 0x4500; fldenv [W + 32]; fnstsw ax; fnstcw [W + 64]; fninit');
  // FNSAVE/FRSTOR and FXSAVE/FXRSTOR through the 1 KiB rip-relative scratch area; the instruction and operand pointers are cleared before the compare.
  add('x87 fnsave/frstor', 'fld qword ptr [W]; fld qword ptr [W + 8]; fnsave [rip + scratch]; mov qword ptr [rip + scratch + 12], 0; mov qword ptr [rip + scratch + 20], 0; '
    + 'mov rax, [rip + scratch]; mov rbx, [rip + scratch + 8]; mov rcx, [rip + scratch + 28]; mov rdx, [rip + scratch + 36]; mov rsi, [rip + scratch + 44]; '
    + 'and word ptr [rip + scratch + 4], 0xff80; mov rax, [rip + scratch]; fnstsw [W + 64]; and word ptr [W + 64], 0xff80; frstor [rip + scratch]; fstp qword ptr [W + 72]; fstp qword ptr [W + 80]; fnstsw [W + 88]; and word ptr [W + 88], 0xff80');
  add('fxsave/fxrstor', 'fld qword ptr [W]; fld1; fxsave [rip + scratch]; mov qword ptr [rip + scratch + 8], 0; mov qword ptr [rip + scratch + 16], 0; and word ptr [rip + scratch + 2], 0xff80; '
    + 'mov rax, [rip + scratch]; mov rbx, [rip + scratch + 24]; mov rcx, [rip + scratch + 32]; mov rdx, [rip + scratch + 40]; mov rsi, [rip + scratch + 48]; '
    + 'mov rdi, [rip + scratch + 160]; mov r8, [rip + scratch + 168]; mov r9, [rip + scratch + 184]; mov r10, [rip + scratch + 296]; '
    + 'fninit; pxor xmm0, xmm0; mov dword ptr [rip + scratch + 24], 0x7f80; fxrstor [rip + scratch]; fstp qword ptr [W + 72]; fstp qword ptr [W + 80]; stmxcsr [W + 88]');
  add('x87 fld/fst st(i)', 'fld qword ptr [W]; fld st(0); fld qword ptr [W + 8]; fst st(2); fstp qword ptr [W + 16]; fstp qword ptr [W + 24]; fstp qword ptr [W + 32]');
  add('x87 fldl2e/l2t/lg2/ln2', 'fldl2e; fstp qword ptr [W]; fldl2t; fstp qword ptr [W + 8]; fldlg2; fstp qword ptr [W + 16]; fldln2; fstp qword ptr [W + 24]');
  add('x87 ffree/fincstp/fdecstp', 'fld1; fldz; ffree st(1); fincstp; fdecstp; fnop; fwait; fnclex; fnstsw ax; fstp qword ptr [W]; fnstsw [W + 8]');
  add('x87 fist m32/m16', 'fld qword ptr [W]; fist dword ptr [W + 8]; fist word ptr [W + 16]; fistp qword ptr [W + 24]');
  // FNSTENV's instruction and operand pointers (FIP, FDP, FOP) are not modelled: cleared before the compare.
  add('x87 fnstenv', 'fld qword ptr [W]; fld1; fnstenv [W + 32]; fstp st(0); fstp st(0); and word ptr [W + 36], 0xff80; mov eax, [W + 32]; mov ebx, [W + 36]; mov ecx, [W + 40]; mov qword ptr [W + 44], 0; mov qword ptr [W + 52], 0');
  // EMMS leaves TOP on Intel's description; this AMD host sets TOP to 0 (not compared: vendor-specific, see README.md).
  add('emms', 'fld1; emms; fnstsw ax; and eax, 0xc7ff; fninit');
  add('x87 stack', 'fld1; fld1; fld1; fnstsw ax; fstp st(0); fstp st(0); fstp st(0); fnstsw [W]');

  family = 'programs';
  T.push(...randomPrograms(1500, 0x5eed));
  T.push(...randomSsePrograms(400, 0x55e));
  return T;
}

interface Step { code: string; reads: number; writes: number; undef: number }

const SUB: Record<number, string[]> = {
  8: ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14'],
  4: ['eax', 'ebx', 'ecx', 'edx', 'esi', 'edi', 'ebp', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d'],
  2: ['ax', 'bx', 'cx', 'dx', 'si', 'di', 'bp', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w'],
  1: ['al', 'bl', 'cl', 'dl', 'sil', 'dil', 'bpl', 'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b'],
};
const CC_READS: Record<string, number> = {
  o: OF, no: OF, b: CF, ae: CF, e: ZF, ne: ZF, be: CF | ZF, a: CF | ZF, s: SF, ns: SF, p: PF, np: PF, l: SF | OF, ge: SF | OF, le: ZF | SF | OF, g: ZF | SF | OF,
};

/**
 * Random straight-line programs (with short forward branches) over the
 * instructions whose flags are fully defined, or whose undefined flags are
 * tracked: a step that reads a flag left undefined by an earlier step is not
 * generated, and flags still undefined at the end are not compared. They
 * cover the interplay of lazy flags: a flag produced by one kind of
 * instruction and consumed after others changed some of the flags.
 */
export function randomPrograms(count: number, seed: number): Template[] {
  const r = new Rng(seed);
  const pick = <X>(a: readonly X[]): X => a[r.below(a.length)] as X;
  const reg = (size: number): string => pick(SUB[size] as string[]);
  const sizeOf = (): number => pick([8, 8, 4, 4, 2, 1]);
  const imm = (size: number): string => String(pick([0, 1, -1, 5, 0x7f, -0x80, 0x1234, -0x7fff, 0x7fffffff]) % (size === 1 ? 128 : size === 2 ? 32768 : 0x80000000));
  const gens: (() => Step)[] = [
    () => { const s = sizeOf(); const op = pick(['add', 'sub', 'cmp', 'neg']); return { code: op === 'neg' ? `neg ${reg(s)}` : `${op} ${reg(s)}, ${pick([reg(s), imm(s)])}`, reads: 0, writes: STATUS, undef: 0 }; },
    () => { const s = sizeOf(); const op = pick(['adc', 'sbb']); return { code: `${op} ${reg(s)}, ${pick([reg(s), imm(s)])}`, reads: CF, writes: STATUS, undef: 0 }; },
    () => { const s = sizeOf(); const op = pick(['and', 'or', 'xor', 'test']); return { code: `${op} ${reg(s)}, ${pick([reg(s), imm(s)])}`, reads: 0, writes: STATUS & ~AF, undef: AF }; },
    () => { const s = sizeOf(); return { code: `${pick(['inc', 'dec'])} ${reg(s)}`, reads: 0, writes: STATUS & ~CF, undef: 0 }; },
    () => { const s = sizeOf(); return { code: `not ${reg(s)}`, reads: 0, writes: 0, undef: 0 }; },
    () => { const s = sizeOf(); const op = pick(['shl', 'shr', 'sar']); return { code: `${op} ${reg(s)}, 1`, reads: 0, writes: STATUS & ~AF, undef: AF }; },
    () => { const s = sizeOf(); const op = pick(['shl', 'shr', 'sar']); return { code: `${op} ${reg(s)}, ${1 + r.below(s * 8 - 1)}`, reads: 0, writes: CF | ZF | SF | PF, undef: AF | OF }; },
    () => { const s = sizeOf(); const op = pick(['rol', 'ror']); return { code: `${op} ${reg(s)}, 1`, reads: 0, writes: CF | OF, undef: 0 }; },
    () => { const s = sizeOf(); const op = pick(['rcl', 'rcr']); return { code: `${op} ${reg(s)}, 1`, reads: CF, writes: CF | OF, undef: 0 }; },
    () => { const s = pick([8, 4, 2]); return { code: `imul ${reg(s)}, ${reg(s)}`, reads: 0, writes: CF | OF, undef: SF | ZF | AF | PF }; },
    () => { const s = pick([8, 4]); return { code: `bt ${reg(s)}, ${r.below(s * 8)}`, reads: 0, writes: CF, undef: OF | SF | AF | PF }; },
    () => { const cc = pick(Object.keys(CC_READS)); return { code: `set${cc} ${reg(1)}`, reads: CC_READS[cc] ?? 0, writes: 0, undef: 0 }; },
    () => { const cc = pick(Object.keys(CC_READS)); const s = pick([8, 4, 2]); return { code: `cmov${cc} ${reg(s)}, ${reg(s)}`, reads: CC_READS[cc] ?? 0, writes: 0, undef: 0 }; },
    () => { const cc = pick(Object.keys(CC_READS)); return { code: `j${cc} 1f; ${pick(['inc', 'not', 'neg'])} ${reg(sizeOf())}; 1:`, reads: CC_READS[cc] ?? 0, writes: 0, undef: 0 }; },
    () => ({ code: `lea ${reg(8)}, [${reg(8)} + ${reg(8)}*${pick([1, 2, 4, 8])} + ${imm(4)}]`, reads: 0, writes: 0, undef: 0 }),
    () => ({ code: `mov ${reg(4)}, ${reg(4)}`, reads: 0, writes: 0, undef: 0 }),
    () => ({ code: `movzx ${reg(4)}, ${reg(pick([1, 2]))}`, reads: 0, writes: 0, undef: 0 }),
    () => ({ code: `movsx ${reg(8)}, ${reg(pick([1, 2]))}`, reads: 0, writes: 0, undef: 0 }),
    () => ({ code: `xchg ${reg(8)}, ${reg(8)}`, reads: 0, writes: 0, undef: 0 }),
    () => ({ code: `bswap ${reg(pick([8, 4]))}`, reads: 0, writes: 0, undef: 0 }),
    () => ({ code: pick(['clc', 'stc', 'cmc']), reads: 0, writes: CF, undef: 0 }),
    () => ({ code: 'lahf', reads: STATUS & ~OF, writes: 0, undef: 0 }),
    () => ({ code: `add [W + ${8 * r.below(15)}], ${reg(8)}`, reads: 0, writes: STATUS, undef: 0 }),
    () => ({ code: `adc ${reg(8)}, [W + ${8 * r.below(15)}]`, reads: CF, writes: STATUS, undef: 0 }),
    () => ({ code: `xadd ${reg(4)}, ${reg(4)}`, reads: 0, writes: STATUS, undef: 0 }),
    () => { const s = pick([8, 4]); return { code: `${pick(['shl', 'shr', 'sar'])} ${reg(s)}, cl`, reads: 0, writes: 0, undef: AF | OF | CF | ZF | SF | PF }; },
    () => { const s = pick([8, 4, 2]); return { code: `imul ${reg(s)}, ${reg(s)}, ${imm(s)}`, reads: 0, writes: CF | OF, undef: SF | ZF | AF | PF }; },
    () => ({ code: `${pick(['mul', 'imul'])} ${reg(pick([8, 4, 2, 1]))}`, reads: 0, writes: CF | OF, undef: SF | ZF | AF | PF }),
    () => ({ code: `cmp ${reg(8)}, [W + ${8 * r.below(15)}]`, reads: 0, writes: STATUS, undef: 0 }),
    () => { const cc = pick(Object.keys(CC_READS)); return { code: `cmov${cc} ${reg(8)}, [W + ${8 * r.below(15)}]`, reads: CC_READS[cc] ?? 0, writes: 0, undef: 0 }; },
    () => ({ code: `${pick(['bts', 'btr', 'btc'])} ${reg(8)}, ${r.below(64)}`, reads: 0, writes: CF, undef: OF | SF | AF | PF }),
    () => ({ code: `${pick(['shld', 'shrd'])} ${reg(4)}, ${reg(4)}, ${1 + r.below(31)}`, reads: 0, writes: CF | ZF | SF | PF, undef: AF | OF }),
    () => ({ code: 'sahf', reads: 0, writes: STATUS & ~OF, undef: 0 }),
    () => ({ code: `popcnt ${reg(8)}, ${reg(8)}`, reads: 0, writes: STATUS, undef: 0 }),
  ];
  const out: Template[] = [];
  for (let p = 0; p < count; p++) {
    let undef = 0;
    const steps: string[] = [];
    const n = 3 + r.below(6);
    let tries = 0;
    while (steps.length < n && tries++ < 100) {
      const s = (pick(gens))();
      if ((s.reads & undef) !== 0) continue;
      // A jump over one step: that step may not run, so what it defines stays as undefined as before.
      if (s.code.startsWith('j')) { steps.push(s.code); continue; }
      steps.push(s.code);
      undef = (undef & ~s.writes) | s.undef;
    }
    out.push({ name: `program ${p}`, family: 'programs', code: steps.join('; '), undefinedFlags: undef });
  }
  return out;
}

const SSE_OPS = ['paddb', 'paddw', 'paddd', 'paddq', 'psubb', 'psubusb', 'paddsw', 'pmullw', 'pmulhw', 'pmuludq', 'pmaddwd', 'psadbw', 'pavgb', 'pminub', 'pmaxsw',
  'pand', 'pandn', 'por', 'pxor', 'pcmpeqb', 'pcmpgtw', 'pcmpeqd', 'packsswb', 'packuswb', 'packssdw', 'punpcklbw', 'punpckhwd', 'punpckldq', 'punpckhqdq',
  'addps', 'subps', 'mulps', 'divps', 'minps', 'maxps', 'sqrtps', 'addpd', 'subpd', 'mulpd', 'divpd', 'minpd', 'maxpd', 'sqrtpd', 'addss', 'mulsd', 'divss',
  'subsd', 'sqrtsd', 'andps', 'orpd', 'xorps', 'unpcklps', 'unpckhpd', 'cvtps2pd', 'cvtpd2ps', 'cvtdq2ps', 'cvttps2dq', 'cvtps2dq', 'cvtdq2pd', 'cvtpd2dq',
  'cvtss2sd', 'cvtsd2ss', 'movss', 'movsd', 'movhlps', 'movlhps', 'movdqa', 'cmpltps', 'cmpunordpd', 'cmpnless', 'cmpeqsd'];
const SSE_IMM_OPS = ['pshufd', 'pshufhw', 'pshuflw', 'shufps', 'shufpd'];

/**
 * Random SSE/SSE2 sequences over XMM0-3 and the window, under the random
 * MXCSR of each case: each step's NaN, rounding, flush and denormal rules
 * feed the next step. COMISS/UCOMISD and MOVMSKPS end some of them, so
 * flags and general registers see the results too.
 */
export function randomSsePrograms(count: number, seed: number): Template[] {
  const r = new Rng(seed);
  const pick = <X>(a: readonly X[]): X => a[r.below(a.length)] as X;
  const xmm = (): string => `xmm${r.below(4)}`;
  const out: Template[] = [];
  for (let p = 0; p < count; p++) {
    const steps: string[] = [];
    const n = 3 + r.below(5);
    for (let k = 0; k < n; k++) {
      const src = r.below(4) === 0 ? `[W + ${16 * r.below(8)}]` : xmm();
      const kind = r.below(10);
      if (kind === 0) steps.push(`${pick(SSE_IMM_OPS)} ${xmm()}, ${src}, ${r.below(256)}`);
      else if (kind === 1) steps.push(`${pick(['psrlw', 'psrad', 'psllq', 'psrldq', 'pslldq'])} ${xmm()}, ${r.below(20)}`);
      else if (kind === 2) steps.push(`cvtsi2sd ${xmm()}, ${pick(['rax', 'rbx', 'ecx', 'edx'])}`);
      else if (kind === 3) steps.push(`${pick(['cvtsd2si', 'cvttsd2si', 'cvtss2si'])} ${pick(['rax', 'esi', 'r9'])}, ${xmm()}`);
      else {
        const op = pick(SSE_OPS);
        // MOVHLPS/MOVLHPS take registers only; the rest take a register or an aligned window slot.
        steps.push(`${op} ${xmm()}, ${op === 'movhlps' || op === 'movlhps' ? xmm() : src}`);
      }
    }
    const end = r.below(3);
    if (end === 0) steps.push(`${pick(['comiss', 'ucomisd', 'comisd'])} ${xmm()}, ${xmm()}`);
    else if (end === 1) steps.push(`${pick(['movmskps', 'movmskpd', 'pmovmskb'])} edi, ${xmm()}`);
    out.push({ name: `sse program ${p}`, family: 'sse programs', code: steps.join('; '), undefinedFlags: 0 });
  }
  return out;
}
