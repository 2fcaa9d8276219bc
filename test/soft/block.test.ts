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
import { getRflags } from '../../src/engine/soft/flags.js';
import { ACCESS_WRITE, PAGE_SIZE, pageFault, type PageFrame, type SoftPlatform, VEC_PF } from '../../src/engine/soft/mmu.js';
import { RAX, RBX, RCX, RDX, RSP } from '../../src/engine/soft/state.js';

/** Pages on demand in [0x1000, 0x100000); page 0x81 is read-only. */
class FlatPlatform implements SoftPlatform {
  readonly pages = new Map<number, PageFrame>();
  translate(vpn: number, access: number): PageFrame {
    if (vpn < 1 || vpn >= 0x100) throw pageFault(vpn * PAGE_SIZE, access, false);
    if (vpn === 0x81 && access === ACCESS_WRITE) throw pageFault(vpn * PAGE_SIZE, access, true);
    let f = this.pages.get(vpn);
    if (!f) {
      const buf = new ArrayBuffer(PAGE_SIZE);
      f = { bytes: new Uint8Array(buf), view: new DataView(buf) };
      this.pages.set(vpn, f);
    }
    return f;
  }
  poke(addr: number, bytes: number[]): void {
    bytes.forEach((b, k) => { const a = addr + k; (this.translate(Math.floor(a / PAGE_SIZE), 1).bytes)[a % PAGE_SIZE] = b; });
  }
  syscall(): void {
    throw new Error('no system calls here');
  }
}

const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

interface Outcome { exit: number; rip: number; icount: number; regs: bigint[]; flags: number; vector: number | undefined }

/** Runs `code` at 0x10000 with `regs`, in run() calls of `chunk` instructions up to `total`, compiling blocks or not. */
function runWith(compile: boolean, code: number[], regs: [number, bigint][], total: number, chunk = total): Outcome {
  const saved = jit.after;
  jit.after = compile ? 0 : Infinity;
  try {
    const p = new FlatPlatform();
    p.poke(0x10000, code);
    const cpu = new Cpu(p);
    cpu.log = () => undefined;
    cpu.rip = 0x10000;
    cpu.setReg64(RSP, 0x80000n);
    for (const [r, v] of regs) cpu.setReg64(r, v);
    let exit = EXIT_LIMIT;
    for (let done = 0; done < total && exit === EXIT_LIMIT; done += chunk) exit = cpu.run(Math.min(chunk, total - done));
    return {
      exit, rip: cpu.rip, icount: cpu.icount, regs: [RAX, RBX, RCX, RDX, RSP].map((r) => cpu.reg64(r)), flags: getRflags(cpu),
      vector: cpu.exception?.vector,
    };
  } finally {
    jit.after = saved;
  }
}

// loop: add eax, ebx (01 d8); lea rdx, [rdx + rax*2 + 5] (48 8d 54 42 05); mov [rsp - 8], rdx (48 89 54 24 f8);
// cmp qword [rsp - 8], 0 (48 83 7c 24 f8 00); mov rbx, [rsp - 8] (48 8b 5c 24 f8); dec ecx (ff c9); jnz loop (75 e5)
const LOOP = [0x01, 0xd8, 0x48, 0x8d, 0x54, 0x42, 0x05, 0x48, 0x89, 0x54, 0x24, 0xf8, 0x48, 0x83, 0x7c, 0x24, 0xf8, 0x00,
  0x48, 0x8b, 0x5c, 0x24, 0xf8, 0xff, 0xc9, 0x75, 0xe5];

test('a compiled loop ends in the same state and count as the interpreter, for limits that end inside a block', () => {
  const regs: [number, bigint][] = [[RAX, 3n], [RBX, 0x7fffffffn], [RCX, 50n], [RDX, 0xffffffff00000001n]];
  for (const chunk of [1, 3, 7, 1000]) {
    const a = runWith(false, LOOP, regs, 333, chunk);
    const b = runWith(true, LOOP, regs, 333, chunk);
    assert.deepEqual(b, a, `chunk ${chunk}`);
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
});

test('a store into the running compiled block is seen before its next instruction executes', () => {
  // loop: inc byte [rip + 1] (fe 05 01 00 00 00) — the immediate of the next instruction —; mov eax, 0 (b8 00 00 00 00);
  // inc ebx (ff c3); jmp loop (eb f1). Pass k loads k.
  const code = [0xfe, 0x05, 0x01, 0x00, 0x00, 0x00, 0xb8, 0x00, 0x00, 0x00, 0x00, 0xff, 0xc3, 0xeb, 0xf1];
  const a = runWith(false, code, [], 40);
  const b = runWith(true, code, [], 40);
  assert.equal(a.regs[0], 10n);
  assert.deepEqual(b, a);
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
});
