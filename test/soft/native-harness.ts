/**
 * Differential testing of the soft CPU against the host CPU (v86's approach):
 * instruction templates run with random register values and random status
 * flags in one static program, built with the host's gcc, executed natively
 * and under process mode; the register and flag images must match except
 * for flags the SDM leaves undefined for that instruction.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Kernel } from '../../src/process/kernel.js';

export interface Template {
  name: string;
  /** Intel-syntax instructions (one or more, separated by ';'). */
  code: string;
  /** RFLAGS bits left undefined by the code (not compared). */
  undefinedFlags?: number;
}

export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, OF = 0x800;
export const STATUS = CF | PF | AF | ZF | SF | OF;

/** Registers saved per case: rax rbx rcx rdx rsi rdi r8 r9 r10 r11, rflags, xmm0, xmm1. */
export const REG_NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11'];
const RECORD = REG_NAMES.length * 8 + 8 + 32;

/** Deterministic PRNG (xorshift64*) so failures reproduce. */
export class Rng {
  private s: bigint;
  constructor(seed: bigint) { this.s = seed || 1n; }
  next64(): bigint {
    let x = this.s;
    x ^= x >> 12n; x ^= (x << 25n) & 0xffffffffffffffffn; x ^= x >> 27n;
    this.s = x;
    return (x * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn;
  }
  /** Interesting 64-bit values: edges more often than uniform. */
  value(): bigint {
    const r = Number(this.next64() % 16n);
    const edges = [0n, 1n, 0xffffffffffffffffn, 0x8000000000000000n, 0x7fffffffffffffffn, 0x80000000n, 0x7fffffffn, 0xffffffffn, 0x80n, 0x7fn, 0xffn, 0x8000n];
    if (r < 4) return edges[Number(this.next64() % BigInt(edges.length))] as bigint;
    if (r < 7) return this.next64() & 0xffn;
    if (r < 9) return this.next64() & 0xffffffffn;
    return this.next64();
  }
}

export interface Case {
  template: Template;
  regs: bigint[];
  flags: number;
}

export function buildCases(templates: readonly Template[], perTemplate: number, seed = 0x7e57n): Case[] {
  const rng = new Rng(seed);
  const cases: Case[] = [];
  for (const t of templates) {
    for (let k = 0; k < perTemplate; k++) {
      cases.push({
        template: t,
        regs: REG_NAMES.map(() => rng.value()),
        flags: Number(rng.next64() & BigInt(STATUS)) | 0x2,
      });
    }
  }
  return cases;
}

function asmFor(cases: readonly Case[]): string {
  const lines: string[] = [
    '.intel_syntax noprefix', '.globl _start', '.text', '_start:',
    '  lea r15, [rip + out]',
  ];
  cases.forEach((c, k) => {
    REG_NAMES.forEach((r, j) => lines.push(`  movabs ${r}, ${c.regs[j]}`));
    lines.push('  movq xmm0, rax', '  movq xmm1, rbx', '  pinsrw xmm0, ecx, 5', '  pinsrw xmm1, edx, 6');
    lines.push(`  push ${c.flags}`, '  popfq');
    for (const ins of c.template.code.split(';')) lines.push(`  ${ins.trim()}`);
    lines.push('  pushfq', `  pop qword ptr [r15 + ${k * RECORD + REG_NAMES.length * 8}]`);
    REG_NAMES.forEach((r, j) => lines.push(`  mov [r15 + ${k * RECORD + j * 8}], ${r}`));
    lines.push(`  movdqu [r15 + ${k * RECORD + REG_NAMES.length * 8 + 8}], xmm0`, `  movdqu [r15 + ${k * RECORD + REG_NAMES.length * 8 + 24}], xmm1`);
  });
  lines.push(
    '  mov eax, 1', '  mov edi, 1', '  lea rsi, [rip + out]', `  mov rdx, ${cases.length * RECORD}`, '  syscall',
    '  mov eax, 231', '  xor edi, edi', '  syscall',
    '.data', '.balign 16', 'buf1: .ascii "The quick brown fox jumps over the lazy dog 0123456789"', '.balign 16',
    'buf2: .ascii "The quick brown fox jumps over the lazy cat 0123456789"', '.balign 16', 'scratch: .zero 256',
    '.bss', '.balign 16', `out: .zero ${cases.length * RECORD}`,
  );
  return lines.join('\n') + '\n';
}

/** Assembles and links the cases into a static executable; undefined without gcc. */
export function buildProgram(cases: readonly Case[]): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tv-native-'));
  const src = path.join(dir, 'cases.s');
  const exe = path.join(dir, 'cases');
  fs.writeFileSync(src, asmFor(cases));
  try {
    execFileSync('gcc', ['-nostdlib', '-static', '-no-pie', '-o', exe, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const msg = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
    if (/ENOENT/.test(String(e))) return undefined;
    throw new Error(`assembling the cases failed:\n${msg.slice(0, 4000)}`);
  }
  return exe;
}

export function runNative(exe: string): Buffer {
  return execFileSync(exe, [], { maxBuffer: 1 << 28 });
}

/** Runs `exe` in process mode with stdout into a temporary file; returns stdout. */
export async function runEmulated(exe: string, argv: string[] = [exe], stdin = 0): Promise<{ out: Buffer; status: number; log: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tv-emu-'));
  const outPath = path.join(dir, 'stdout');
  const errPath = path.join(dir, 'stderr');
  const outFd = fs.openSync(outPath, 'w');
  const errFd = fs.openSync(errPath, 'w');
  const log: string[] = [];
  try {
    const k = new Kernel({ stdio: [stdin, outFd, errFd], log: (m) => log.push(m) });
    const p = k.spawn(exe, argv, ['PATH=/usr/bin:/bin']);
    const status = await k.run(p);
    return { out: fs.readFileSync(outPath), status, log };
  } finally {
    fs.closeSync(outFd);
    fs.closeSync(errFd);
  }
}

export interface Mismatch {
  case: Case;
  index: number;
  what: string;
}

export function compare(cases: readonly Case[], native: Buffer, emulated: Buffer): Mismatch[] {
  const out: Mismatch[] = [];
  if (native.length !== cases.length * RECORD) throw new Error(`native output has ${native.length} bytes, expected ${cases.length * RECORD}`);
  if (emulated.length !== native.length) return [{ case: cases[0] as Case, index: -1, what: `emulated output has ${emulated.length} bytes, native ${native.length}` }];
  cases.forEach((c, k) => {
    const base = k * RECORD;
    const diffs: string[] = [];
    REG_NAMES.forEach((r, j) => {
      const a = native.readBigUInt64LE(base + j * 8), b = emulated.readBigUInt64LE(base + j * 8);
      if (a !== b) diffs.push(`${r}: native 0x${a.toString(16)} soft 0x${b.toString(16)}`);
    });
    const mask = STATUS & ~(c.template.undefinedFlags ?? 0);
    const fa = Number(native.readBigUInt64LE(base + REG_NAMES.length * 8)) & mask;
    const fb = Number(emulated.readBigUInt64LE(base + REG_NAMES.length * 8)) & mask;
    if (fa !== fb) diffs.push(`flags: native 0x${fa.toString(16)} soft 0x${fb.toString(16)}`);
    for (const [x, off] of [['xmm0', 8], ['xmm1', 24]] as const) {
      const a = native.subarray(base + REG_NAMES.length * 8 + off, base + REG_NAMES.length * 8 + off + 16).toString('hex');
      const b = emulated.subarray(base + REG_NAMES.length * 8 + off, base + REG_NAMES.length * 8 + off + 16).toString('hex');
      if (a !== b) diffs.push(`${x}: native ${a} soft ${b}`);
    }
    if (diffs.length) {
      const init = REG_NAMES.map((r, j) => `${r}=0x${(c.regs[j] as bigint).toString(16)}`).join(' ');
      out.push({ case: c, index: k, what: `${c.template.name} [${c.template.code}] with ${init} flags=0x${c.flags.toString(16)}: ${diffs.join('; ')}` });
    }
  });
  return out;
}

export function hasGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
