/**
 * The table tests itself: every opcode form is encoded several times with
 * random prefixes, REX, ModRM, SIB, displacement and immediate bytes, in each
 * mode where it is valid, and the decoder's length, mnemonic and operand text
 * are compared with GNU objdump's on the same bytes (v86's approach: the
 * instruction table generates its own tests).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  compileTable, decode, type DecodeMode, FORMS, formatInstruction, type Form, HANDLER_NAMES, Instruction, mnemonic,
  MODE_16, MODE_32, MODE_64, OP_REL, STATUS_OK, TABLE, TableError, type TableRow,
} from '../../../src/engine/soft/decode/index.js';
import { F_I64, F_LOCK, F_O64 } from '../../../src/engine/soft/decode/forms.js';
import { which } from '../../fixtures/debian-kernel.js';
import { splitObjdumpText } from './objdump.js';

/** Deterministic PRNG (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 66 90 is a NOP; objdump prints the XCHG it aliases. */
const XCHG_NOP = /^xchg (ax,ax|eax,eax)$/;
const STRIDE = 32;
const PAD = 0x90;
const SAMPLES_PER_FORM = 8;
const MAP_ESCAPE = [[], [0x0f], [0x0f, 0x38], [0x0f, 0x3a]];
const MODES: { mode: DecodeMode; arch: string; disasm: string }[] = [
  { mode: MODE_64, arch: 'i386:x86-64', disasm: 'intel,intel64' },
  { mode: MODE_32, arch: 'i386', disasm: 'intel' },
  { mode: MODE_16, arch: 'i8086', disasm: 'intel' },
];

function encode(form: Form, mode: DecodeMode, rand: () => number): number[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const out: number[] = [];
  if (rand() < 0.1) out.push(pick([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65]));
  if (rand() < 0.15) out.push(0x67);
  if ((form.flags & F_LOCK) && rand() < 0.3) out.push(0xf0);
  if (form.prefix === 1) out.push(0x66);
  else if (form.prefix < 0 && rand() < 0.25) out.push(0x66); // any or NFx: 66h is the operand size
  if (form.prefix === 2) out.push(0xf3);
  else if (form.prefix === 3) out.push(0xf2);
  else if (form.prefix === -1 && rand() < 0.05) out.push(pick([0xf2, 0xf3]));
  if (mode === MODE_64 && rand() < 0.6) out.push(0x40 | Math.floor(rand() * 16));
  out.push(...(MAP_ESCAPE[form.map] ?? []));
  const plusR = form.operands.some((o) => o.text.startsWith('Z'));
  out.push(form.opcode + (plusR ? Math.floor(rand() * 8) : 0));
  if (form.flags & 1) {
    const reg = form.modrmReg >= 0 ? form.modrmReg : Math.floor(rand() * 8);
    const rm = form.modrmRm >= 0 ? form.modrmRm : Math.floor(rand() * 8);
    const mod = form.modrmMod === 1 ? 3 : form.modrmMod === 0 ? Math.floor(rand() * 3) : Math.floor(rand() * 4);
    out.push((mod << 6) | (reg << 3) | rm);
  }
  for (let i = 0; i < 14; i++) out.push(Math.floor(rand() * 256));
  return out;
}

/**
 * Where objdump and this decoder differ by design. Each returns the reason,
 * printed with its count.
 */
function knownDivergence(bytes: Uint8Array, insn: Instruction, theirMnemonic: string, theirText: string): string | undefined {
  if (/\bnotrack\b/.test(theirText)) return '3E on an indirect branch: objdump shows NOTRACK and hides the DS override';
  if (theirMnemonic.startsWith('bnd')) {
    return 'MPX (0F 1A/1B) is gone from current CPUs and Linux; without it these are hint NOPs';
  }
  if (insn.opcode === 0x9b && insn.map === 0 && insn.rex !== 0) {
    return 'objdump prints a REX before FWAIT as an instruction of its own';
  }
  if (insn.opcode === 0x90 && insn.map === 0 && (insn.rex & 1) && bytes.includes(0xf3)) {
    return 'F3 REX.B 90: XCHG r8 (as QEMU decodes it), objdump says PAUSE';
  }
  if (theirMnemonic.startsWith('pclmul') && ((insn.imm & 0xff) === 2 || (insn.imm & 0xff) === 3)) {
    return 'PCLMULQDQ with imm8 2 or 3: objdump names them as if they were 0x10/0x11';
  }
  if (theirMnemonic.startsWith('prefetchit')) {
    return 'PREFETCHIT0/1 (RIP-relative 0F 18 /7, /6) are hint NOPs without the PREFETCHI feature';
  }
  if (insn.handler === FRSTOR_ETC.frstor || insn.handler === FRSTOR_ETC.fldenv || insn.handler === FRSTOR_ETC.fnsave ||
      insn.handler === FRSTOR_ETC.fnstenv) {
    if ((insn.rex & 8) && bytes.includes(0x66)) return 'x87 environment with 66h and REX.W: objdump lets 66h win';
  }
  if (FORMS[insn.form]?.operands.some((o) => o.text === 'Mp') && (insn.rex & 8)) {
    return 'far pointer with REX.W: m16:64 (Intel), objdump ignores REX.W';
  }
  return undefined;
}

const FRSTOR_ETC = {
  frstor: HANDLER_NAMES.indexOf('x87_frstor'), fldenv: HANDLER_NAMES.indexOf('x87_fldenv'),
  fnsave: HANDLER_NAMES.indexOf('x87_fnsave'), fnstenv: HANDLER_NAMES.indexOf('x87_fnstenv'),
};

function normalise(text: string, insn: Instruction): string {
  if (insn.osize === 2 && insn.opKind.includes(OP_REL)) {
    // A 16-bit branch wraps IP at 64 KiB; objdump prints the unwrapped sum.
    text = text.replace(/0x[0-9a-f]+$/, (h) => '0x' + (parseInt(h, 16) & 0xffff).toString(16));
  }
  return text
    .replace(/\[eiz\*\d-0x([0-9a-f]+)\]/g, (_m, h: string) => 'ds:0x' + ((2 ** 32 - parseInt(h, 16)) >>> 0).toString(16))
    .replace(/\[riz\*\d-0x([0-9a-f]+)\]/g, (_m, h: string) => 'ds:0x' + (2n ** 64n - BigInt('0x' + h)).toString(16))
    .replace(/\s+#.*$/, '')
    .replace(/\[[re]iz\*\d\+(0x[0-9a-f]+)\]/g, 'ds:$1') // objdump names SIB.index=100 "riz"
    .replace(/([cdefgs]s:)ds:/g, '$1')
    .replace(/\+[re]iz\*\d/g, '')
    .replace(/\[[re]iz\*\d\+/g, '[')
    .replace(/\s+/g, ' ')
    .trim();
}

test('every table form agrees with objdump on length, mnemonic and operands, in each mode', (t) => {
  if (!which('objdump')) {
    t.skip('objdump (binutils) is not installed');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-decode-'));
  const rand = rng(0x5eed);
  const insn = new Instruction();
  const mismatches: string[] = [];
  const byRow = new Map<string, { count: number; example: string }>();
  const divergences = new Map<string, number>();
  const formsCompared = new Set<number>();
  let compared = 0;
  let oursOnly = 0;
  try {
    for (const { mode, arch, disasm } of MODES) {
      const candidates: Uint8Array[] = [];
      for (const form of FORMS) {
        if (mode === MODE_64 && (form.flags & F_I64)) continue;
        if (mode !== MODE_64 && (form.flags & F_O64)) continue;
        for (let k = 0; k < SAMPLES_PER_FORM; k++) {
          const raw = Uint8Array.from(encode(form, mode, rand));
          const status = decode(insn, raw, 0, raw.length, mode);
          candidates.push(raw.subarray(0, status === STATUS_OK ? insn.length : 15));
        }
      }
      const image = new Uint8Array(candidates.length * STRIDE).fill(PAD);
      candidates.forEach((c, i) => image.set(c, i * STRIDE));
      const file = join(dir, `forms-${mode}.bin`);
      writeFileSync(file, image);
      const text = execFileSync('objdump', ['-D', '-b', 'binary', '-m', arch, '-M', disasm, '--insn-width=15', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
      const lines = new Map<number, { length: number; text: string }>();
      for (const line of text.split('\n')) {
        const m = /^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$/.exec(line);
        if (m) lines.set(parseInt(m[1] ?? '', 16), { length: (m[2] ?? '').split(' ').length, text: m[3] ?? '' });
      }
      candidates.forEach((c, i) => {
        decode(insn, image, i * STRIDE, i * STRIDE + STRIDE, mode);
        const hex = Buffer.from(c).toString('hex').replace(/(..)/g, '$1 ').trim();
        const theirs = lines.get(i * STRIDE);
        if (insn.status !== STATUS_OK) return;
        const ours = formatInstruction(insn, BigInt(i * STRIDE));
        if (!theirs) { mismatches.push(`mode ${mode} ${hex}: objdump has no instruction there; ours "${ours}"`); return; }
        const split = splitObjdumpText(theirs.text);
        if (split.mnemonic === '(bad)') { oursOnly++; return; }
        compared++;
        formsCompared.add(insn.form);
        const name = mnemonic(insn);
        const want = `${split.mnemonic}${split.operands ? ' ' + split.operands : ''}`;
        if (insn.length !== theirs.length || (name !== split.mnemonic && !(name === 'nop' && XCHG_NOP.test(want))) ||
            (normalise(ours, insn) !== normalise(want, insn) && !XCHG_NOP.test(want))) {
          const row = FORMS[insn.form]?.row.join(' | ') ?? '';
          const why = knownDivergence(c, insn, split.mnemonic, theirs.text);
          if (why) { divergences.set(why, (divergences.get(why) ?? 0) + 1); return; }
          const seen = byRow.get(row);
          if (seen) seen.count++;
          else byRow.set(row, { count: 1, example: `mode ${mode} ${hex}: length ${insn.length}/${theirs.length} ours "${ours}" objdump "${theirs.text}"` });
          mismatches.push(row);
        }
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const claimed = new Set(FORMS.map((f) => f.id));
  console.log(`table forms vs objdump: ${compared} encodings of ${formsCompared.size}/${claimed.size} forms compared, ` +
    `${oursOnly} that objdump calls (bad), ${mismatches.length} mismatches`);
  for (const [why, n] of divergences) console.log(`  known objdump divergence (${n}): ${why}`);
  assert.deepEqual([...byRow].map(([row, { count, example }]) => `${count} x [${row}] e.g. ${example}`), []);
});

test('every form is reachable: the decoder returns it for its own encoding', () => {
  const rand = rng(7);
  const insn = new Instruction();
  const unreachable: string[] = [];
  for (const form of FORMS) {
    const mode = form.flags & F_I64 ? MODE_32 : MODE_64;
    let hit = false;
    for (let k = 0; k < 64 && !hit; k++) {
      const raw = Uint8Array.from(encode(form, mode, rand));
      if (decode(insn, raw, 0, raw.length, mode) === STATUS_OK && insn.form === form.id) hit = true;
    }
    if (!hit) unreachable.push(form.row.join(' | '));
  }
  assert.deepEqual(unreachable, []);
});

test('handler names follow <family>_<operation> and each family is one of the known ones', () => {
  const families = new Set(['alu', 'mul', 'shift', 'bit', 'mov', 'stack', 'str', 'flow', 'io', 'flag', 'bcd', 'seg', 'sys',
    'misc', 'x87', 'fpu', 'mmx', 'sse', 'aes', 'sha', 'crc', 'tsx', 'cet']);
  for (const h of HANDLER_NAMES) assert.ok(families.has(h.split('_')[0] ?? ''), `handler ${h}`);
});

test('the table names a CPUID gate for every SIMD and extension form', () => {
  for (const f of FORMS) {
    if (/^(sse|mmx|aes|sha|crc|tsx)_/.test(f.handler)) assert.ok(f.cpuid, `${f.row.join(' | ')} has no cpu= gate`);
  }
});

function compileRows(rows: TableRow[]): () => void {
  return () => { compileTable(rows); };
}

test('malformed tables are rejected with a message naming the row', () => {
  const xchg: TableRow = ['90+r', 'xchg', 'Zv,rAX', 'mov_xchg', ''];
  assert.doesNotThrow(compileRows([xchg]));
  assert.throws(compileRows([xchg, ['00', 'add', 'Eb,Kz', 'alu_add', '']]), (e: Error) => e instanceof TableError && /unknown operand "Kz"/.test(e.message));
  assert.throws(compileRows([xchg, ['00', 'add', 'Eb,Gb', 'alu_add', 'locked']]), /unknown attribute "locked"/);
  assert.throws(compileRows([xchg, ['00', 'add', 'Eb,Gb', 'alu_add', ''], ['00', 'sub', 'Eb,Gb', 'alu_sub', '']]), /claim the same encoding/);
  assert.throws(compileRows([xchg, ['04', 'add', 'AL,Ib', 'alu_add', 'lock']]), /lock needs a memory destination/);
  assert.throws(compileRows([xchg, ['50+r /0', 'push', 'Zv', 'stack_push', '']]), /\+r opcode has no ModRM/);
  assert.throws(compileRows([xchg, ['0F 01 /2', 'lgdt', 'Ms', 'sys_lgdt', ''], ['0F 01', 'x', '', 'sys_x', '']]), /disagree on whether a ModRM/);
  assert.throws(compileRows([xchg, ['8D reg', 'lea', 'Gv,M', 'mov_lea', '']]), /contradicts reg/);
  assert.throws(compileRows([xchg, ['0F 01 10', 'x', '', 'sys_x', '']]), /must be a register form/);
  assert.throws(compileRows([xchg, ['04', 'add', 'AL,Iq', 'alu_add', '']]), /immediate "Iq"/);
  assert.throws(compileRows([xchg, ['G4', 'add', '', 'alu_add', '']]), /bad opcode byte/);
  assert.throws(compileRows([xchg, ['04', 'add', 'AL,Ib', 'Alu-Add', '']]), /bad handler name/);
  assert.throws(compileRows([['90', 'nop', '', 'misc_nop', '']]), /no xchg \+r row/);
  assert.equal(compileTable(TABLE).forms.length, TABLE.length);
});
