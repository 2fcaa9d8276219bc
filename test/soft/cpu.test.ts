/**
 * The interpreter core without an operating system: handler binding against
 * the table, faults, CPUID gates, self-modifying code, page-crossing
 * instructions, lazy flags, state snapshots. Machine code is written out by
 * hand (bytes with their Intel-syntax meaning beside them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodeCache, Cpu, EXIT_EXCEPTION, EXIT_LIMIT, EXIT_STOP } from '../../src/engine/soft/cpu.js';
import { HANDLER_NAMES, MODE_16, MODE_64 } from '../../src/engine/soft/decode/index.js';
import { getRflags } from '../../src/engine/soft/flags.js';
import { notYetReason, unboundHandlers } from '../../src/engine/soft/handlers.js';
import { ACCESS_EXEC, PAGE_SIZE, type PageFrame, VEC_DE, VEC_GP, VEC_PF, VEC_UD } from '../../src/engine/soft/mmu.js';
import { RAX, RBX, RCX, RDX, RSP } from '../../src/engine/soft/state.js';
import { FlatPlatform } from './region-harness.js';

function setup(code: number[], at = 0x10000): { cpu: Cpu; p: FlatPlatform } {
  const p = new FlatPlatform();
  p.poke(at, code);
  const cpu = new Cpu(p);
  cpu.log = () => undefined;
  cpu.rip = at;
  cpu.setReg64(RSP, 0x80000n);
  return { cpu, p };
}

test('every handler name in the table is bound or listed as not yet implemented', () => {
  assert.deepEqual(unboundHandlers(), []);
  const notYet = HANDLER_NAMES.filter((n) => notYetReason(n) !== undefined);
  // The user-mode families are complete: nothing of alu/shift/mul/bit/str (but port I/O)/stack/mov/flow (near) is pending.
  for (const n of notYet) assert.doesNotMatch(n, /^(alu_(add|sub|adc|sbb|and|or|xor|cmp|test|inc|dec|neg|not|xadd|cmpxchg)|shift_.*|mul_.*|bit_.*|mov_.*|flow_(jcc|jmp|call|ret|loop))$/, n);
});

test('add/adc/sub flags on the 64-bit edges', () => {
  // mov rax, 0x7fffffffffffffff; add rax, 1; (OF, SF set; CF clear)
  const { cpu } = setup([0x48, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x48, 0x83, 0xc0, 0x01]);
  assert.equal(cpu.run(2), EXIT_LIMIT);
  assert.equal(cpu.reg64(RAX), 0x8000000000000000n);
  assert.equal(getRflags(cpu) & 0x8d5, 0x800 | 0x80 | 0x10 | 0x4);
  // stc; mov rbx, -1; adc rbx, 0: CF out, ZF set, result 0
  const t = setup([0xf9, 0x48, 0xc7, 0xc3, 0xff, 0xff, 0xff, 0xff, 0x48, 0x83, 0xd3, 0x00]);
  t.cpu.run(3);
  assert.equal(t.cpu.reg64(RBX), 0n);
  assert.equal(getRflags(t.cpu) & 0x8d5, 0x1 | 0x40 | 0x10 | 0x4);
});

test('32-bit results zero the upper half; 8- and 16-bit results keep it', () => {
  // mov rax, -1; mov eax, eax(89 c0); mov rbx, -1; mov bl, 0 (b3 00); mov rcx, -1; mov cx, 0 (66 b9 00 00)
  const { cpu } = setup([0x48, 0xc7, 0xc0, 0xff, 0xff, 0xff, 0xff, 0x89, 0xc0, 0x48, 0xc7, 0xc3, 0xff, 0xff, 0xff, 0xff, 0xb3, 0x00,
    0x48, 0xc7, 0xc1, 0xff, 0xff, 0xff, 0xff, 0x66, 0xb9, 0x00, 0x00]);
  cpu.run(6);
  assert.equal(cpu.reg64(RAX), 0xffffffffn);
  assert.equal(cpu.reg64(RBX), 0xffffffffffffff00n);
  assert.equal(cpu.reg64(RCX), 0xffffffffffff0000n);
});

test('divide by zero and quotient overflow raise #DE with RIP at the instruction', () => {
  // xor ecx, ecx; div ecx
  const { cpu } = setup([0x31, 0xc9, 0xf7, 0xf1]);
  assert.equal(cpu.run(10), EXIT_EXCEPTION);
  assert.equal(cpu.exception?.vector, VEC_DE);
  assert.equal(cpu.rip, 0x10002);
  // mov edx, 1; mov ecx, 1; div ecx (EDX:EAX / 1 does not fit in 32 bits)
  const t = setup([0xba, 1, 0, 0, 0, 0xb9, 1, 0, 0, 0, 0xf7, 0xf1]);
  assert.equal(t.cpu.run(10), EXIT_EXCEPTION);
  assert.equal(t.cpu.exception?.vector, VEC_DE);
});

test('an unimplemented form raises #UD and is reported once, with its bytes', () => {
  // lar eax, eax (not written yet) twice
  const { cpu } = setup([0x0f, 0x02, 0xc0]);
  const logs: string[] = [];
  cpu.log = (m) => logs.push(m);
  assert.equal(cpu.run(1), EXIT_EXCEPTION);
  assert.equal(cpu.exception?.vector, VEC_UD);
  assert.equal(cpu.run(1), EXIT_EXCEPTION);
  assert.equal(logs.length, 1);
  assert.match(logs[0] ?? '', /lar .*sys_lar.*: 0f 02 c0/);
});

test('invalid encodings raise #UD; forms of unadvertised features too; privileged forms #GP at CPL 3', () => {
  const ud2 = setup([0x0f, 0x0b]);
  assert.equal(ud2.cpu.run(1), EXIT_EXCEPTION);
  assert.equal(ud2.cpu.exception?.vector, VEC_UD);
  // rdrand eax (not advertised)
  const rdrand = setup([0x0f, 0xc7, 0xf0]);
  assert.equal(rdrand.cpu.run(1), EXIT_EXCEPTION);
  assert.equal(rdrand.cpu.exception?.vector, VEC_UD);
  assert.match(rdrand.cpu.exception?.message ?? '', /rdrand/);
  // hlt at CPL 3
  const hlt = setup([0xf4]);
  assert.equal(hlt.cpu.run(1), EXIT_EXCEPTION);
  assert.equal(hlt.cpu.exception?.vector, VEC_GP);
  // tzcnt without BMI1 executes as bsf: tzcnt eax, ecx with ecx = 8 gives 3 either way; with ecx = 0 bsf leaves eax.
  const tz = setup([0xb8, 7, 0, 0, 0, 0x31, 0xc9, 0xf3, 0x0f, 0xbc, 0xc1]);
  tz.cpu.run(3);
  assert.equal(tz.cpu.reg64(RAX), 7n);
});

test('fetch from a page without execute permission and writes to a read-only page fault with the address', () => {
  const { cpu } = setup([0xe9, ...le32(0x80000 - 0x10005)]); // jmp 0x80000
  assert.equal(cpu.run(5), EXIT_EXCEPTION);
  assert.equal(cpu.exception?.vector, VEC_PF);
  assert.equal(cpu.exception?.address, 0x80000);
  // mov [0x81000], eax
  const w = setup([0x89, 0x04, 0x25, ...le32(0x81000)]);
  assert.equal(w.cpu.run(1), EXIT_EXCEPTION);
  assert.equal(w.cpu.exception?.vector, VEC_PF);
  assert.equal(w.cpu.rip, 0x10000);
});

test('self-modifying code: a store into decoded code is seen by the next execution', () => {
  // loop: mov eax, imm32; inc byte [rip - 10] (the immediate); dec ecx; jnz loop
  const code = [0xb8, 0x00, 0, 0, 0, 0xfe, 0x05, 0xf6, 0xff, 0xff, 0xff, 0xff, 0xc9, 0x75, 0xf1];
  const { cpu } = setup(code);
  cpu.setReg64(RCX, 3n);
  cpu.run(12);
  // Third pass loads the immediate incremented twice.
  assert.equal(cpu.reg64(RAX), 2n);
  assert.equal(cpu.reg64(RCX), 0n);
});

test('an instruction that straddles two pages executes', () => {
  const at = 0x10ffd; // mov eax, 0x11223344 spans 0x10ffd..0x11001
  const { cpu } = setup([0xb8, 0x44, 0x33, 0x22, 0x11], at);
  assert.equal(cpu.run(1), EXIT_LIMIT);
  assert.equal(cpu.reg64(RAX), 0x11223344n);
  assert.equal(cpu.rip, at + 5);
});

test('a straddling instruction is kept and revalidated: a store into its second page and a new frame there are seen', () => {
  // 0x10ffd: mov eax, 0x11223344  (second page holds 22 11)
  // 0x11002: mov [rip-8], dl      (patches the byte at 0x11000, the immediate's third byte)
  // 0x11008: add dl, 1 ; inc ecx ; cmp ecx, 3 ; jb 0x10ffd
  const { cpu, p } = setup([
    0xb8, 0x44, 0x33, 0x22, 0x11,
    0x88, 0x15, 0xf8, 0xff, 0xff, 0xff,
    0x80, 0xc2, 0x01, 0xff, 0xc1, 0x83, 0xf9, 0x03, 0x72, 0xeb,
  ], 0x10ffd);
  cpu.setReg64(RDX, 0x77n);
  cpu.run(6);
  assert.equal(cpu.reg64(RAX), 0x11223344n);
  cpu.run(12);
  assert.equal(cpu.reg64(RAX), 0x11783344n, 'the third pass decodes the byte the second one stored');
  assert.equal(cpu.reg64(RCX), 3n);
  // Another frame mapped at the second page (the platform unmaps and invalidates): its bytes are decoded.
  const other = new ArrayBuffer(PAGE_SIZE);
  const frame: PageFrame = { bytes: new Uint8Array(other), view: new DataView(other) };
  frame.bytes.set(p.translate(0x11, ACCESS_EXEC).bytes);
  frame.bytes[0] = 0x99;
  p.pages.set(0x11, frame);
  cpu.invalidatePage(0x11);
  cpu.rip = 0x10ffd;
  cpu.run(1);
  assert.equal(cpu.reg64(RAX), 0x11993344n);
});

test('an instruction that continues on a page without execute permission faults there', () => {
  // mov eax, imm32 from 0x7fffd: its last two bytes are on page 0x80 (no execute).
  const { cpu } = setup([0xb8, 0x44, 0x33, 0x22, 0x11], 0x7fffd);
  for (let pass = 0; pass < 2; pass++) {
    assert.equal(cpu.run(1), EXIT_EXCEPTION);
    assert.equal(cpu.exception?.vector, VEC_PF);
    assert.equal(cpu.exception?.address, 0x80000);
    assert.equal(cpu.rip, 0x7fffd);
  }
});

test('SYSCALL goes to the platform, which can stop the run loop', () => {
  const { cpu, p } = setup([0x0f, 0x05, 0x90]);
  assert.equal(cpu.run(10), EXIT_STOP);
  assert.equal(p.syscalls, 1);
  assert.equal(cpu.rip, 0x10002);
});

test('CPUID reports the documented model and only implemented features', () => {
  // xor eax, eax; inc eax; cpuid
  const { cpu } = setup([0x31, 0xc0, 0xff, 0xc0, 0x0f, 0xa2]);
  cpu.run(3);
  const edx = Number(cpu.reg64(RDX));
  assert.equal(edx & (1 << 26), 1 << 26, 'SSE2');
  assert.equal(Number(cpu.reg64(RCX)) & 1, 0, 'SSE3 is not advertised');
  assert.equal(Number(cpu.reg64(RCX)) & (1 << 26), 0, 'no XSAVE');
  assert.equal(cpu.reg64(RBX) & 0xffn, 0n);
});

test('state snapshots are plain data and restore exactly, flags included', () => {
  const { cpu, p } = setup([0x48, 0x83, 0xe8, 0x01]); // sub rax, 1 (lazy flags pending)
  cpu.run(1);
  const snap = cpu.snapshot();
  const json = JSON.parse(JSON.stringify(snap));
  const other = new Cpu(p);
  other.restore(json);
  assert.equal(other.reg64(RAX), 0xffffffffffffffffn);
  assert.equal(getRflags(other), getRflags(cpu));
  assert.throws(() => other.restore({ ...json, gpr: [1, 2] }), /wrong register array length/);
});

function le32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}

test('decoded code is shared per physical page: a write through an alias on another CPU drops it for both', () => {
  // Page 0x20 is also mapped at 0x30 (same frame): CPU B patches through the alias.
  const p = new FlatPlatform();
  p.pages.set(0x30, p.translate(0x20, 1));
  const code = new CodeCache();
  const a = new Cpu(p);
  const b = new Cpu(p);
  a.joinCodeCache(code);
  b.joinCodeCache(code);
  // mov eax, 1; ret-free straight line: run one instruction at a time.
  p.poke(0x20000, [0xb8, 0x01, 0x00, 0x00, 0x00]);
  a.rip = 0x20000;
  assert.equal(a.run(1), EXIT_LIMIT);
  assert.equal(a.reg64(RAX), 1n);
  b.rip = 0x20000;
  assert.equal(b.run(1), EXIT_LIMIT, 'B runs the same decoded page');
  assert.equal(a.codePages, 1);
  // B: mov byte [0x30001], 7 (the immediate of A's instruction, through the alias).
  p.poke(0x21000, [0xc6, 0x04, 0x25, 0x01, 0x00, 0x03, 0x00, 0x07]);
  b.rip = 0x21000;
  assert.equal(b.run(1), EXIT_LIMIT);
  a.rip = 0x20000;
  assert.equal(a.run(1), EXIT_LIMIT);
  assert.equal(a.reg64(RAX), 7n, 'A decodes the patched instruction');
});

test('decoded code is kept per mode: the same page decodes differently in 16- and 64-bit mode', () => {
  const { cpu } = setup([0xb8, 0x34, 0x12, 0x90, 0x90]); // 64-bit: mov eax, 0x90901234; 16-bit: mov ax, 0x1234
  assert.equal(cpu.run(1), EXIT_LIMIT);
  assert.equal(cpu.reg64(RAX), 0x90901234n);
  cpu.setReg64(RAX, 0n);
  cpu.setMode(MODE_16);
  cpu.rip = 0x10000;
  assert.equal(cpu.run(1), EXIT_LIMIT);
  assert.equal(cpu.reg64(RAX), 0x1234n);
  assert.equal(cpu.rip, 0x10003);
  cpu.setMode(MODE_64);
  cpu.rip = 0x10000;
  assert.equal(cpu.run(1), EXIT_LIMIT);
  assert.equal(cpu.reg64(RAX), 0x90901234n);
});

test('16-bit mode: near CALL/RET push and pop IP as an offset in CS, on SS:SP', () => {
  const { cpu, p } = setup([0xe8, 0x01, 0x00, 0x90, 0xc3]); // call +1; nop; ret
  cpu.setMode(MODE_16);
  cpu.segBase[1] = 0x10000; // CS base: IP 0 is linear 0x10000
  cpu.segBase[2] = 0x20000; // SS base
  cpu.setReg64(RSP, 0xdead0100n);
  cpu.rip = 0x10000;
  assert.equal(cpu.run(1), EXIT_LIMIT);
  assert.equal(cpu.rip, 0x10004);
  assert.equal(cpu.reg64(RSP), 0xdead00fen, 'SP moved by 2, the upper bits kept');
  const word = p.translate(0x20, 1).view.getUint16(0xfe, true);
  assert.equal(word, 3, 'the return offset, not the linear address');
  assert.equal(cpu.run(1), EXIT_LIMIT);
  assert.equal(cpu.rip, 0x10003);
  assert.equal(cpu.reg64(RSP), 0xdead0100n);
});

test('REP string instructions yield every 4096 elements and resume where they stopped', () => {
  // rep stosb over 10,000 bytes at 0x30000
  const { cpu, p } = setup([0xf3, 0xaa]);
  cpu.setReg64(RCX, 10_000n);
  cpu.setReg64(7 /* RDI */, 0x30000n);
  cpu.setReg64(RAX, 0x5an);
  assert.equal(cpu.run(1), EXIT_LIMIT);
  assert.equal(cpu.rip, 0x10000, 'still on the instruction');
  assert.equal(cpu.reg64(RCX), 10_000n - 4096n);
  assert.equal(cpu.reg64(7), 0x30000n + 4096n);
  assert.equal(cpu.run(2), EXIT_LIMIT, 'two more executions: 4096 and 1808 elements');
  assert.equal(cpu.reg64(RCX), 0n);
  assert.equal(cpu.rip, 0x10002);
  const bytes = [0x30, 0x31, 0x32].flatMap((vpn) => Array.from(p.translate(vpn, 1).bytes));
  assert.equal(bytes.slice(0, 10_000).every((b) => b === 0x5a), true);
  assert.equal(bytes[10_000], 0);
});

test('REP MOVS and STOS a page at a time: the bytes and registers an element-by-element model gives, overlaps, MMIO-free faults and all', () => {
  // A byte-level model: memory as a Map of linear address -> byte, element order as x86 specifies.
  const RSI = 6, RDI = 7;
  interface Case { name: string; code: number[]; size: number; rsi: number; rdi: number; rcx: number; rax: bigint; movs: boolean }
  const cases: Case[] = [];
  for (const [size, movs, code] of [[1, false, [0xf3, 0xaa]], [2, false, [0xf3, 0x66, 0xab]], [4, false, [0xf3, 0xab]], [8, false, [0xf3, 0x48, 0xab]],
    [1, true, [0xf3, 0xa4]], [2, true, [0xf3, 0x66, 0xa5]], [4, true, [0xf3, 0xa5]], [8, true, [0xf3, 0x48, 0xa5]]] as const) {
    const name = `rep ${movs ? 'movs' : 'stos'}${['', 'b', 'w', '', 'd', '', '', '', 'q'][size]}`;
    for (const rax of [0n, 0x1122334455667788n, 0xa5a5a5a5a5a5a5a5n]) {
      // Page-crossing source and destination at odd offsets; a count past the yield point.
      cases.push({ name: `${name}, crossing pages`, code: [...code], size, rsi: 0x20ffd, rdi: 0x30ff3, rcx: 5000, rax, movs });
      if (!movs) continue;
      // Forward overlap (x86 repeats the first elements), backward overlap, and an exact alias.
      cases.push({ name: `${name}, onto its source + 3`, code: [...code], size, rsi: 0x20f00, rdi: 0x20f03, rcx: 700, rax, movs });
      cases.push({ name: `${name}, onto its source - 5`, code: [...code], size, rsi: 0x20f05, rdi: 0x20f00, rcx: 700, rax, movs });
      cases.push({ name: `${name}, onto itself`, code: [...code], size, rsi: 0x20f00, rdi: 0x20f00, rcx: 300, rax, movs });
    }
  }
  for (const k of cases) {
    const { cpu, p } = setup(k.code);
    // A source pattern over pages 0x20-0x23.
    const mem = new Map<number, number>();
    for (let a = 0x20000; a < 0x24000; a++) {
      const v = (a * 7 + (a >> 8)) & 0xff;
      (p.translate(a >> 12, 2).bytes)[a & 0xfff] = v;
      mem.set(a, v);
    }
    let si = k.rsi, di = k.rdi;
    for (let n = 0; n < k.rcx; n++) {
      // The whole element is read before any of it is written.
      const element = Array.from({ length: k.size }, (_, b) => k.movs ? mem.get(si + b) ?? 0 : Number((k.rax >> BigInt(8 * b)) & 0xffn));
      element.forEach((v, b) => mem.set(di + b, v));
      si += k.size; di += k.size;
    }
    cpu.setReg64(RSI, BigInt(k.rsi));
    cpu.setReg64(RDI, BigInt(k.rdi));
    cpu.setReg64(RCX, BigInt(k.rcx));
    cpu.setReg64(RAX, k.rax);
    while (cpu.rip === 0x10000) assert.equal(cpu.run(1), EXIT_LIMIT, k.name);
    const what = `${k.name}, RAX ${k.rax.toString(16)}`;
    assert.deepEqual([cpu.reg64(RCX), cpu.reg64(RDI), cpu.reg64(RSI)], [0n, BigInt(di), BigInt(k.movs ? si : k.rsi)], `${what}: registers`);
    for (const [a, v] of mem) assert.equal((p.translate(Math.floor(a / PAGE_SIZE), 1).bytes)[a % PAGE_SIZE], v, `${what}: byte at 0x${a.toString(16)}`);
  }
});

test('REP MOVS into a read-only page: the elements before it are done, RCX, RSI and RDI say so, the page is untouched', () => {
  // rep movsq from 0x20000 to 0x80ff0 (page 0x81 is read-only): two elements fit before it.
  const { cpu, p } = setup([0xf3, 0x48, 0xa5]);
  for (let a = 0; a < 64; a++) (p.translate(0x20, 2).bytes)[a] = a + 1;
  cpu.setReg64(6, 0x20000n);
  cpu.setReg64(7, 0x80ff0n);
  cpu.setReg64(RCX, 8n);
  assert.equal(cpu.run(1), EXIT_EXCEPTION);
  assert.equal(cpu.exception?.vector, VEC_PF);
  assert.deepEqual([cpu.reg64(RCX), cpu.reg64(6), cpu.reg64(7), cpu.rip], [6n, 0x20010n, 0x81000n, 0x10000]);
  assert.deepEqual(Array.from(p.translate(0x80, 1).bytes.subarray(0xff0)), Array.from({ length: 16 }, (_, k) => k + 1));
  assert.ok(p.translate(0x81, 1).bytes.every((b) => b === 0), 'nothing written past the fault');
});
