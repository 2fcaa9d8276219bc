/**
 * Differential testing of the soft CPU against the host CPU (v86's
 * approach, batched): instruction templates are assembled once with the
 * fixed driver native/driver.s into one static executable; random case
 * records (registers, flags, XMM, MXCSR, x87 control word, a 128-byte
 * memory window) are streamed through it natively and on the soft CPU
 * (native-emulate.ts), and the records that come back must match except
 * for what the SDM leaves undefined for that template.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runEmulatedHarness } from './native-emulate.js';

export interface Template {
  name: string;
  /** Instruction family, for the counts in the summary. */
  family: string;
  /**
   * Intel-syntax instructions separated by ';'. `W` stands for the memory
   * window's base (`r15 + 192`): `[W + 8]`. r15 and rsp must be left as found.
   */
  code: string;
  /** RFLAGS status bits the SDM leaves undefined after the code (not compared). */
  undefinedFlags?: number;
  /** Registers (rax … r14, xmm0 … xmm3) whose value the SDM leaves undefined (not compared). */
  ignore?: readonly string[];
  /** RFLAGS bits besides the status flags that inputs set at random (DF for string templates). */
  inputFlags?: number;
}

export const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, DF = 0x400, OF = 0x800;
export const STATUS = CF | PF | AF | ZF | SF | OF;

// Record layout: native/driver.s has the table.
export const REC = 352;
const O_STATUS = 0, O_MXCSR = 4, O_FLAGS = 8, O_GPR = 16, O_XMM = 128, O_WIN = 192, O_FAULT_RIP = 320, O_RSP_DELTA = 328, O_FCW = 336, O_FSW = 338;
export const WINDOW = 128;
export const GPR_NAMES = ['rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rbp', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14'] as const;
export type GprName = typeof GPR_NAMES[number];
export const XMM_NAMES = ['xmm0', 'xmm1', 'xmm2', 'xmm3'] as const;

/** MXCSR bits compared: all but the six exception flags, which the soft CPU does not raise (src/engine/soft/README.md). */
const MXCSR_COMPARED = 0xffff & ~0x3f;
/** FSW bits compared: C0, C2, C3 and TOP; C1 and the exception flags are not modelled (README.md). */
const FSW_COMPARED = 0x4500 | 0x3800;
/** RFLAGS bits compared besides the status flags. */
const FLAGS_COMPARED = DF;
/** MXCSR fields (SDM Vol. 1, 10.2.3): rounding control, flush-to-zero, denormals-are-zeros. */
const MXCSR_DEFAULT = 0x1f80, MXCSR_RC_SHIFT = 13, MXCSR_FZ = 0x8000, MXCSR_DAZ = 0x40;
/** FCW with all exceptions masked and 53-bit precision (SDM Vol. 1, 8.1.5): the soft FPU computes in binary64. */
const FCW_PC53 = 0x027f, FCW_RC_SHIFT = 10;

/** Deterministic PRNG (xoshiro128**), so a failing seed reproduces. */
export class Rng {
  private a: number; private b: number; private c: number; private d: number;
  constructor(seed: number) {
    // splitmix32 to spread the seed over the state
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next(); this.b = next(); this.c = next(); this.d = next() | 1;
  }
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a; this.d ^= this.b; this.b ^= this.c; this.a ^= this.d;
    this.c ^= t; this.d = rotl(this.d, 11);
    return r;
  }
  below(n: number): number { return this.u32() % n; }
}

function rotl(x: number, k: number): number { return (x << k) | (x >>> (32 - k)); }

const EDGES: readonly (readonly [number, number])[] = [
  [0, 0], [1, 0], [0xffffffff, 0xffffffff], [0, 0x80000000], [0xffffffff, 0x7fffffff], [0x80000000, 0], [0x7fffffff, 0],
  [0xffffffff, 0], [0x80, 0], [0x7f, 0], [0xff, 0], [0x8000, 0], [0x7fff, 0], [0xffff, 0], [0x80000000, 0xffffffff],
  [0xfffffffe, 0xffffffff], [2, 0], [63, 0], [64, 0], [31, 0], [32, 0], [8, 0], [16, 0],
];

/** A binary64 bit pattern from the interesting classes: zeros, denormals, near 1, near integer limits, huge, inf, NaN. */
function fp64(r: Rng): [number, number] {
  const sign = r.below(2) << 31;
  const mLo = r.u32(), mHi = r.u32() & 0xfffff;
  let exp: number;
  switch (r.below(10)) {
    case 0: return [0, sign];
    case 1: exp = 0; break; // denormal
    case 2: exp = 0x7ff; return r.below(3) === 0 ? [0, sign | 0x7ff00000] : [mLo | 1, sign | (exp << 20) | mHi | (r.below(2) << 19)];
    case 3: exp = 0x3ff + r.below(3) - 1; break;
    case 4: exp = 0x41e + r.below(3) - 1; break; // around 2^31
    case 5: exp = 0x43e + r.below(3) - 1; break; // around 2^63
    case 6: exp = 0x7fe - r.below(2); break;
    case 7: exp = 1 + r.below(2); break; // smallest normals
    case 8: return [0, sign | ((0x3ff + r.below(64)) << 20) | (r.below(16) << 16)]; // short mantissas: exact integers and halves
    default: exp = r.below(0x7ff); break;
  }
  return [mLo, sign | (exp << 20) | mHi];
}

/** A binary32 bit pattern from the same classes. */
function fp32(r: Rng): number {
  const sign = r.below(2) << 31;
  const m = r.u32() & 0x7fffff;
  let exp: number;
  switch (r.below(10)) {
    case 0: return sign >>> 0;
    case 1: exp = 0; break;
    case 2: return r.below(3) === 0 ? (sign | 0x7f800000) >>> 0 : (sign | 0x7f800000 | m | 1 | (r.below(2) << 22)) >>> 0;
    case 3: exp = 0x7f + r.below(3) - 1; break;
    case 4: exp = 0x9e + r.below(3) - 1; break; // around 2^31
    case 5: exp = 0xbe + r.below(3) - 1; break; // around 2^63
    case 6: exp = 0xfe - r.below(2); break;
    case 7: exp = 1 + r.below(2); break;
    case 8: return (sign | ((0x7f + r.below(32)) << 23) | (r.below(16) << 19)) >>> 0;
    default: exp = r.below(0xff); break;
  }
  return (sign | (exp << 23) | m) >>> 0;
}

/** An interesting 64-bit value as (lo, hi): edges, small, 32-bit, sign-extended, float patterns, uniform. */
function value64(r: Rng): [number, number] {
  const k = r.below(20);
  if (k < 4) return (EDGES[r.below(EDGES.length)] as [number, number]).slice() as [number, number];
  if (k < 7) return [r.below(256), 0];
  if (k < 9) return [r.u32(), 0];
  if (k < 11) { const lo = r.u32(); return [lo, lo & 0x80000000 ? 0xffffffff : 0]; }
  if (k < 13) return fp64(r);
  if (k === 13) { const v = value64Edge(r); return [(v[0] + r.below(5) - 2) >>> 0, v[1]]; }
  return [r.u32(), r.u32()];
}

function value64Edge(r: Rng): readonly [number, number] { return EDGES[r.below(EDGES.length)] as [number, number]; }

/** Input fields of one case; what is left out is zero (MXCSR and FCW: their defaults). */
export interface CaseInput {
  regs?: Partial<Record<GprName, bigint>>;
  flags?: number;
  /** xmm0 … xmm3 as 128-bit values. */
  xmm?: readonly bigint[];
  mxcsr?: number;
  fcw?: number;
  window?: Uint8Array;
}

/** Writes one case's record (template index `t`) at `off` of `buf`. */
export function encodeCase(buf: Buffer, off: number, t: number, c: CaseInput): void {
  buf.fill(0, off, off + REC);
  buf.writeUInt32LE(t, off + O_STATUS);
  buf.writeUInt32LE(c.mxcsr ?? MXCSR_DEFAULT, off + O_MXCSR);
  buf.writeBigUInt64LE(BigInt((c.flags ?? 0) | 2), off + O_FLAGS);
  GPR_NAMES.forEach((n, j) => buf.writeBigUInt64LE(BigInt.asUintN(64, c.regs?.[n] ?? 0n), off + O_GPR + 8 * j));
  (c.xmm ?? []).forEach((v, j) => {
    buf.writeBigUInt64LE(BigInt.asUintN(64, v), off + O_XMM + 16 * j);
    buf.writeBigUInt64LE(BigInt.asUintN(64, v >> 64n), off + O_XMM + 16 * j + 8);
  });
  if (c.window) buf.set(c.window.subarray(0, WINDOW), off + O_WIN);
  buf.writeUInt16LE(c.fcw ?? FCW_PC53, off + O_FCW);
}

/** The inputs of the record at `off`, as a CaseInput literal (how a regression case is written down). */
export function describeInput(buf: Buffer, off: number): string {
  const regs = GPR_NAMES.map((n, j) => `${n}: 0x${buf.readBigUInt64LE(off + O_GPR + 8 * j).toString(16)}n`).join(', ');
  const xmm = XMM_NAMES.map((_, j) => {
    const v = (buf.readBigUInt64LE(off + O_XMM + 16 * j + 8) << 64n) | buf.readBigUInt64LE(off + O_XMM + 16 * j);
    return `0x${v.toString(16)}n`;
  }).join(', ');
  const flags = Number(buf.readBigUInt64LE(off + O_FLAGS)) & ~2;
  return `{ regs: { ${regs} }, flags: 0x${flags.toString(16)}, xmm: [${xmm}], mxcsr: 0x${buf.readUInt32LE(off + O_MXCSR).toString(16)}, `
    + `fcw: 0x${buf.readUInt16LE(off + O_FCW).toString(16)}, window: hex('${buf.subarray(off + O_WIN, off + O_WIN + WINDOW).toString('hex')}') }`;
}

/** `perTemplate` random cases for each template, as one input stream; template k's cases use index k. */
export function randomCases(templates: readonly Template[], perTemplate: (t: Template) => number, seed: number): Buffer {
  const r = new Rng(seed);
  const total = templates.reduce((n, t) => n + perTemplate(t), 0);
  const buf = Buffer.alloc(total * REC);
  let off = 0;
  templates.forEach((t, k) => {
    const n = perTemplate(t);
    for (let i = 0; i < n; i++, off += REC) {
      buf.writeUInt32LE(k, off + O_STATUS);
      let mxcsr = MXCSR_DEFAULT;
      if (r.below(2) === 0) mxcsr |= r.below(4) << MXCSR_RC_SHIFT;
      if (r.below(8) === 0) mxcsr |= MXCSR_FZ;
      if (r.below(8) === 0) mxcsr |= MXCSR_DAZ;
      buf.writeUInt32LE(mxcsr, off + O_MXCSR);
      const flags = (r.u32() & (STATUS | (t.inputFlags ?? 0))) | 2;
      buf.writeUInt32LE(flags, off + O_FLAGS);
      for (let j = 0; j < GPR_NAMES.length; j++) {
        const [lo, hi] = value64(r);
        buf.writeUInt32LE(lo >>> 0, off + O_GPR + 8 * j);
        buf.writeUInt32LE(hi >>> 0, off + O_GPR + 8 * j + 4);
      }
      for (let h = 0; h < 8; h++) {
        const at = off + O_XMM + 8 * h;
        const k2 = r.below(10);
        if (k2 < 4) { const [lo, hi] = fp64(r); buf.writeUInt32LE(lo >>> 0, at); buf.writeUInt32LE(hi >>> 0, at + 4); }
        else if (k2 < 7) { buf.writeUInt32LE(fp32(r), at); buf.writeUInt32LE(fp32(r), at + 4); }
        else { const [lo, hi] = value64(r); buf.writeUInt32LE(lo >>> 0, at); buf.writeUInt32LE(hi >>> 0, at + 4); }
      }
      for (let w = 0; w < WINDOW; w += 4) buf.writeUInt32LE(r.u32(), off + O_WIN + w);
      buf.writeUInt16LE(FCW_PC53 | (r.below(2) === 0 ? r.below(4) << FCW_RC_SHIFT : 0), off + O_FCW);
    }
  });
  return buf;
}

function templatesAsm(templates: readonly Template[]): string {
  const lines: string[] = ['.intel_syntax noprefix', '.text', '.globl t_0'];
  templates.forEach((t, k) => {
    lines.push(`t_${k}:`);
    for (const ins of t.code.split(';')) lines.push(`  ${ins.trim().replace(/\bW\b/g, 'r15 + 192')}`);
    lines.push('  jmp case_done');
  });
  lines.push('.globl templates_end', 'templates_end:');
  lines.push(
    '.data', '.balign 8', '.globl template_table', '.globl template_count',
    `template_count: .long ${templates.length}`, '.balign 8',
    `template_table: ${templates.length ? `.quad ${templates.map((_, k) => `t_${k}`).join(', ')}` : ''}`,
    '.balign 16', 'buf1: .ascii "The quick brown fox jumps over the lazy dog 0123456789"',
    '.balign 16', 'buf2: .ascii "The quick brown fox jumps over the lazy cat 0123456789"',
    '.balign 16', 'scratch: .zero 1024',
  );
  return lines.join('\n') + '\n';
}

/** native/driver.s in the source tree (this file runs from dist/test/soft/). */
function driverPath(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const p of [path.join(here, 'native', 'driver.s'), path.join(here, '..', '..', '..', 'test', 'soft', 'native', 'driver.s')]) {
    if (fs.existsSync(p)) return p;
  }
  throw new Error(`native/driver.s not found from ${here}`);
}

export function hasGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Assembles the driver and the templates into a static executable; its path. */
export function buildHarness(templates: readonly Template[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tv-native-'));
  const src = path.join(dir, 'templates.s');
  const exe = path.join(dir, 'harness');
  fs.writeFileSync(src, templatesAsm(templates));
  try {
    execFileSync('gcc', ['-nostdlib', '-static', '-no-pie', '-o', exe, driverPath(), src], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const msg = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
    throw new Error(`assembling the templates failed:\n${msg.slice(0, 4000)}`);
  }
  return exe;
}

/** Removes the directory buildHarness made for `exe`. */
export function disposeHarness(exe: string): void {
  fs.rmSync(path.dirname(exe), { recursive: true, force: true });
}

export function runNative(exe: string, input: Buffer): Buffer {
  return execFileSync(exe, [], { input, maxBuffer: input.length + (1 << 20) });
}

/** Instructions the emulated run may take: the driver's ~60 per case plus a generous template budget. */
export function instructionBudget(input: Buffer): number {
  return (input.length / REC) * 2000 + 1_000_000;
}

export function runEmulated(exe: string, input: Buffer): { out: Buffer; instructions: number; log: string[] } {
  return runEmulatedHarness(exe, input, instructionBudget(input));
}

export interface Mismatch {
  template: Template;
  /** Record number in the input stream. */
  index: number;
  what: string;
}

const hex64 = (b: Buffer, at: number): string => `0x${b.readBigUInt64LE(at).toString(16)}`;

/** Differences between the native and emulated output of `input`, ignoring what each template declares undefined. */
export function compare(templates: readonly Template[], input: Buffer, native: Buffer, emulated: Buffer): Mismatch[] {
  if (native.length !== input.length) throw new Error(`native output has ${native.length} bytes, expected ${input.length}`);
  if (emulated.length !== input.length) throw new Error(`emulated output has ${emulated.length} bytes, expected ${input.length}`);
  const out: Mismatch[] = [];
  for (let off = 0, index = 0; off < input.length; off += REC, index++) {
    if (native.compare(emulated, off, off + REC, off, off + REC) === 0) continue;
    const t = templates[input.readUInt32LE(off)] as Template;
    const ignore = new Set(t.ignore ?? []);
    const diffs: string[] = [];
    const ns = native.readUInt32LE(off + O_STATUS), es = emulated.readUInt32LE(off + O_STATUS);
    if (ns !== es) diffs.push(`fault: native ${faultName(ns)} soft ${faultName(es)}`);
    const nr = native.readBigUInt64LE(off + O_FAULT_RIP), er = emulated.readBigUInt64LE(off + O_FAULT_RIP);
    if (nr !== er) diffs.push(`fault rip: native 0x${nr.toString(16)} soft 0x${er.toString(16)}`);
    const nd = native.readBigInt64LE(off + O_RSP_DELTA), ed = emulated.readBigInt64LE(off + O_RSP_DELTA);
    if (nd !== ed) diffs.push(`rsp change: native ${nd} soft ${ed}`);
    const mx = MXCSR_COMPARED;
    if ((native.readUInt32LE(off + O_MXCSR) & mx) !== (emulated.readUInt32LE(off + O_MXCSR) & mx)) {
      diffs.push(`mxcsr: native 0x${native.readUInt32LE(off + O_MXCSR).toString(16)} soft 0x${emulated.readUInt32LE(off + O_MXCSR).toString(16)}`);
    }
    const fm = (STATUS | FLAGS_COMPARED) & ~(t.undefinedFlags ?? 0);
    const nf = native.readUInt32LE(off + O_FLAGS) & fm, ef = emulated.readUInt32LE(off + O_FLAGS) & fm;
    if (nf !== ef) diffs.push(`flags: native 0x${nf.toString(16)} soft 0x${ef.toString(16)} (differ 0x${(nf ^ ef).toString(16)})`);
    GPR_NAMES.forEach((n, j) => {
      const at = off + O_GPR + 8 * j;
      if (!ignore.has(n) && native.readBigUInt64LE(at) !== emulated.readBigUInt64LE(at)) diffs.push(`${n}: native ${hex64(native, at)} soft ${hex64(emulated, at)}`);
    });
    XMM_NAMES.forEach((n, j) => {
      const at = off + O_XMM + 16 * j;
      if (!ignore.has(n) && native.compare(emulated, at, at + 16, at, at + 16) !== 0) {
        diffs.push(`${n}: native ${native.toString('hex', at, at + 16)} soft ${emulated.toString('hex', at, at + 16)}`);
      }
    });
    if (native.compare(emulated, off + O_WIN, off + O_WIN + WINDOW, off + O_WIN, off + O_WIN + WINDOW) !== 0) {
      for (let b = 0; b < WINDOW; b += 8) {
        const at = off + O_WIN + b;
        if (native.readBigUInt64LE(at) !== emulated.readBigUInt64LE(at)) diffs.push(`window[${b}]: native ${hex64(native, at)} soft ${hex64(emulated, at)}`);
      }
    }
    const nw = native.readUInt16LE(off + O_FSW) & FSW_COMPARED, ew = emulated.readUInt16LE(off + O_FSW) & FSW_COMPARED;
    if (nw !== ew) diffs.push(`fsw: native 0x${nw.toString(16)} soft 0x${ew.toString(16)}`);
    if (diffs.length) out.push({ template: t, index, what: `${t.name} [${t.code}] with ${describeInput(input, off)}: ${diffs.join('; ')}` });
  }
  return out;
}

function faultName(s: number): string {
  if (s === 0) return 'none';
  const sig = s & 0xff, code = s >>> 8;
  const names: Record<number, string> = { 4: 'SIGILL', 5: 'SIGTRAP', 7: 'SIGBUS', 8: 'SIGFPE', 11: 'SIGSEGV' };
  return `${names[sig] ?? `signal ${sig}`}/${code}`;
}

/** The number of faulting records in an output stream, by template family (the summary shows that #DE paths ran). */
export function faultsByFamily(templates: readonly Template[], input: Buffer, output: Buffer): Map<string, number> {
  const m = new Map<string, number>();
  for (let off = 0; off < output.length; off += REC) {
    if (output.readUInt32LE(off + O_STATUS) === 0) continue;
    const f = (templates[input.readUInt32LE(off)] as Template).family;
    m.set(f, (m.get(f) ?? 0) + 1);
  }
  return m;
}

/** Parses a hex string into bytes (regression cases write windows this way). */
export function hex(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, 'hex'));
}
