/**
 * The two ways of the soft TLB's sets (cpu.ts, mmu.ts TLB_SIZE): two pages
 * whose numbers share their low 10 bits stay mapped together, on the
 * interpreter, in JS regions and in wasm regions; INVLPG of either way
 * reaches the one it names; a write entry parked in way 1 is dropped when
 * its page turns out to hold code (self-modifying code still seen).
 *
 * In FlatPlatform page 0x5 (0x5000) and page 0x100005 (0x1_0000_5000)
 * share set 5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cpu } from '../../src/engine/soft/cpu.js';
import { EXIT_LIMIT } from '../../src/engine/soft/cpu.js';
import { PAGE_SIZE, type PageFrame } from '../../src/engine/soft/mmu.js';
import { RAX, RBX, RSI, RDI } from '../../src/engine/soft/state.js';
import { AFTERS, type FlatPlatform, le32, le64, onWasm, runOn, runWith } from './region-harness.js';

const LOW = 0x5000n, HIGH = 0x1_0000_5000n;
const movAbs = (reg: number, v: bigint): number[] => [0x48 | (reg >> 3), 0xb8 + (reg & 7), ...le64(v)];

/** Counts the translations `cpu` asks its platform for, and the reads and writes that reach its accessors, from now on. */
function count(cpu: Cpu): () => { walks: number; accesses: number } {
  const p = cpu.platform as FlatPlatform;
  const translate = p.translate.bind(p);
  const n = { walks: 0, accesses: 0 };
  p.translate = (vpn: number, access: number): PageFrame => { n.walks++; return translate(vpn, access); };
  const read64 = cpu.read64.bind(cpu), write64 = cpu.write64.bind(cpu);
  cpu.read64 = (a: number): number => { n.accesses++; return read64(a); };
  cpu.write64 = (a: number, lo: number, hi: number): void => { n.accesses++; write64(a, lo, hi); };
  return () => n;
}

test('two pages of one set stay mapped together: no page walk once both are in, and compiled wasm reaches both inline', () => {
  // mov rsi, LOW; mov rdi, HIGH; loop: add rax, [rsi]; add [rdi], rax; add rbx, [rdi]; add qword [rsi], 1; jmp loop
  const code = [...movAbs(RSI, LOW), ...movAbs(RDI, HIGH)];
  const loop = code.length;
  code.push(0x48, 0x03, 0x06, 0x48, 0x01, 0x07, 0x48, 0x03, 0x1f, 0x48, 0x83, 0x06, 0x01);
  code.push(0xeb, (loop - (code.length + 2)) & 0xff);
  const warm = 2 + 5 * 8;
  for (const after of [false, ...AFTERS] as const) {
    for (const wasm of after === false ? [false] : [false, true]) {
      let counts = (): { walks: number; accesses: number } => ({ walks: -1, accesses: -1 });
      // Whole passes in one run, so that none ends mid-block (its rest would be interpreted).
      const o = runOn(after, wasm, code, [], 5 * 400, 5 * 400, (cpu) => {
        // Both pages in and written once (the first passes), then count.
        cpu.run(warm);
        counts = count(cpu);
      });
      const what = `${after === false ? 'interpreter' : `after ${after}`}${wasm ? ', wasm' : ''}`;
      assert.equal(o.exit, EXIT_LIMIT, what);
      assert.equal(counts().walks, 0, `${what}: no translation after the first passes`);
      // Compiled wasm finds either way's entry itself: no access goes through the engine.
      if (wasm) assert.equal(counts().accesses, 0, `${what}: every access served inline`);
    }
  }
  // And every tier computes the same.
  const a = runWith(false, code, [], 2 + 5 * 300);
  for (const after of AFTERS) assert.deepEqual(runWith(after, code, [], 2 + 5 * 300, 2 + 5 * 300, `after ${after}`), a);
});

test('INVLPG of a page in either way of a set, or a CR3 write: the next access translates again, in compiled code too', () => {
  // loop: mov rax, [rsi]; mov rbx, [rdi]; jmp loop (RSI = LOW, RDI = HIGH: LOW ends up in way 1, HIGH in way 0)
  const code = [...movAbs(RSI, LOW), ...movAbs(RDI, HIGH), 0x48, 0x8b, 0x06, 0x48, 0x8b, 0x1f, 0xeb, 0xf8];
  const value = 0x1234_5678_9abc_def0n;
  for (const [name, page, expect, flush] of [
    ['LOW, in way 1', LOW, [value, 0n], 'invlpg'], ['HIGH, in way 0', HIGH, [0n, value], 'invlpg'],
    ['LOW, in way 1', LOW, [value, 0n], 'cr3'], ['HIGH, in way 0', HIGH, [0n, value], 'cr3'],
  ] as const) {
    onWasm([[0x10000, code]], (cpu, p) => {
      const vpn = Number(page) / PAGE_SIZE;
      assert.equal(cpu.run(2 + 3 * 200), EXIT_LIMIT);
      assert.ok((cpu.wasm?.entries ?? 0) > 0, `${name}: compiled`);
      // The page now maps another frame, which holds another value.
      const bytes = new Uint8Array(PAGE_SIZE);
      bytes.set(le64(value));
      p.pages.set(vpn, { bytes, view: new DataView(bytes.buffer), mmio: undefined, wasm: undefined });
      assert.equal(cpu.run(3 * 10), EXIT_LIMIT);
      assert.deepEqual([cpu.reg64(RAX), cpu.reg64(RBX)], [0n, 0n], `${name}: the old frames (zeros) until INVLPG`);
      if (flush === 'invlpg') cpu.invalidatePage(vpn);
      else cpu.flushNonGlobal();
      assert.equal(cpu.run(3 * 10), EXIT_LIMIT);
      assert.deepEqual([cpu.reg64(RAX), cpu.reg64(RBX)], expect, `${name}: the new frame after ${flush}`);
    });
  }
});

test('a write entry parked in way 1 is dropped when its page is decoded: code written through it is seen', () => {
  // P at 0x5000: mov eax, 1; ret. Q at HIGH shares its set.
  // mov rsi, 0x5000; mov rdi, HIGH; mov byte [rsi + 6], 0x90 (a write to P: P's write entry in way 0);
  // mov [rdi], rbx (Q's write: P's entry moves to way 1); call rsi (P decoded);
  // mov byte [rsi + 1], 2 (mov eax, 2); call rsi; mov rcx, rax ... ends at jmp $.
  const code = [...movAbs(RSI, LOW), ...movAbs(RDI, HIGH), 0xc6, 0x46, 0x06, 0x90, 0x48, 0x89, 0x1f, 0xff, 0xd6, 0x89, 0xc3];
  code.push(0xc6, 0x46, 0x01, 0x02, 0xff, 0xd6, 0xeb, 0xfe);
  const p = [0xb8, ...le32(1), 0xc3];
  for (const after of [false, ...AFTERS] as const) {
    for (const wasm of after === false ? [false] : [false, true]) {
      const o = runOn(after, wasm, code, [], 12, 12, (cpu) => { (cpu.platform as FlatPlatform).poke(0x5000, p); });
      const what = `${after === false ? 'interpreter' : `after ${after}`}${wasm ? ', wasm' : ''}`;
      assert.deepEqual([o.regs[1], o.regs[0]], [1n, 2n], `${what}: the first call returned 1, the second 2`);
    }
  }
});

test('a CR3 write keeps the global entry of a set and drops the other, whichever way each is in', () => {
  // Through a platform that calls LOW's translation global: HIGH filled first, then LOW (HIGH to way 1), then HIGH
  // again (a JS miss that swaps the ways: the global marks must move with their entries).
  for (const swap of [false, true]) {
    onWasm([[0x10000, [0xeb, 0xfe]]], (cpu, p) => {
      const translate = p.translate.bind(p);
      p.translate = (vpn: number, access: number): PageFrame => {
        const f = translate(vpn, access);
        cpu.translatedGlobal = vpn === Number(LOW) / PAGE_SIZE;
        return f;
      };
      cpu.write64(Number(HIGH), 0x11, 0);
      cpu.write64(Number(LOW), 0x22, 0);
      assert.equal(cpu.read64(Number(HIGH)), 0x11);
      assert.equal(cpu.read64(Number(LOW)), 0x22);
      if (swap) assert.equal(cpu.read64(Number(HIGH)), 0x11);
      // Both pages now map fresh frames (zeros); a CR3 write.
      for (const page of [LOW, HIGH]) {
        const bytes = new Uint8Array(PAGE_SIZE);
        p.pages.set(Number(page) / PAGE_SIZE, { bytes, view: new DataView(bytes.buffer), mmio: undefined, wasm: undefined });
      }
      cpu.flushNonGlobal();
      const what = swap ? 'after a swap' : 'HIGH in way 1';
      assert.equal(cpu.read64(Number(LOW)), 0x22, `${what}: the global entry kept its frame`);
      assert.equal(cpu.read64(Number(HIGH)), 0, `${what}: the other walked again`);
      cpu.write64(Number(HIGH), 0x33, 0);
      assert.equal(cpu.read64(Number(HIGH)), 0x33);
    });
  }
});

test('a CR3 write after more fills than the list of filled sets holds still drops every non-global entry', () => {
  onWasm([[0x10000, [0xeb, 0xfe]]], (cpu, p) => {
    // Pages 0x1-0xff and 0x100000-0x10000f (sets 0-0xff, 271 fills: more than flushNonGlobal lists), then
    // 0xffff0-0xfffff (sets 0x3f0-0x3ff, filled only after the list is full).
    const pages = [...Array.from({ length: 0xff }, (_, k) => k + 1), ...Array.from({ length: 16 }, (_, k) => 0x100000 + k),
      ...Array.from({ length: 16 }, (_, k) => 0xffff0 + k)];
    for (const vpn of pages) cpu.read64(vpn * PAGE_SIZE);
    for (const vpn of pages) {
      const bytes = new Uint8Array(PAGE_SIZE);
      bytes[0] = vpn & 0xff;
      p.pages.set(vpn, { bytes, view: new DataView(bytes.buffer), mmio: undefined, wasm: undefined });
    }
    cpu.flushNonGlobal();
    for (const vpn of pages) assert.equal(cpu.read64(vpn * PAGE_SIZE), vpn & 0xff, `page 0x${vpn.toString(16)} walked again`);
  });
});
