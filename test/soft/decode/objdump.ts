/**
 * Cross-checks the decoder against GNU objdump: objdump's linear sweep of a
 * section gives instruction boundaries and Intel-syntax text; the decoder
 * decodes at every one of those addresses and both are compared.
 */
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import {
  decode, formatInstruction, Instruction, MAX_INSN_LENGTH, mnemonic, MODE_64, STATUS_NAMES, STATUS_OK, FORMS,
} from '../../../src/engine/soft/decode/index.js';

export interface SectionInfo {
  vma: bigint;
  fileOffset: number;
  size: number;
}

/** VMA, file offset and size of a section, from `objdump -h`. */
export function sectionInfo(file: string, section: string): SectionInfo {
  const out = execFileSync('objdump', ['-h', file], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[1] === section && f.length >= 6) {
      return { size: parseInt(f[2] ?? '', 16), vma: BigInt('0x' + f[3]), fileOffset: parseInt(f[5] ?? '', 16) };
    }
  }
  throw new Error(`${file} has no section ${section}`);
}

export interface CompareSummary {
  file: string;
  /** objdump instructions looked at. */
  compared: number;
  /** Instructions the table claims (decoded with STATUS_OK). */
  claimed: number;
  lengthMismatches: number;
  mnemonicMismatches: number;
  /** Claimed instructions whose operand text differs from objdump's. */
  operandMismatches: number;
  /** objdump says (bad), the decoder decodes an instruction. */
  badButDecoded: number;
  /** Both say invalid. */
  agreedInvalid: number;
  /** Not claimed: "<status> <objdump mnemonic>" -> count. */
  unclaimed: Map<string, number>;
  /** First few mismatches, for the log. */
  examples: string[];
  /** Per claimed form id: how often it occurred. */
  formHits: Map<number, number>;
  /** Seconds spent decoding (excluding objdump and parsing). */
  decodeSeconds: number;
}

/** objdump's prefix words before the mnemonic. */
const PREFIX_WORDS = new Set([
  'lock', 'rep', 'repz', 'repe', 'repnz', 'repne', 'data16', 'data32', 'addr16', 'addr32', 'cs', 'ds', 'es', 'ss',
  'fs', 'gs', 'notrack', 'bnd', 'xacquire', 'xrelease', 'rex', 'rex.w', '{disp32}', '{disp8}',
]);

/** objdump's mnemonic for the waited form after an FWAIT it merged in. */
const WAITED: Record<string, string> = { fstsw: 'fnstsw', fstcw: 'fnstcw', fclex: 'fnclex', finit: 'fninit', fstenv: 'fnstenv', fsave: 'fnsave' };

/** Where objdump's spelling differs from the table's by design. */
const ALIASES: Record<string, string> = {
  // 66 90 is the two-byte NOP; objdump prints it as the XCHG it aliases.
  'xchg ax,ax': 'nop',
};

export function splitObjdumpText(text: string): { mnemonic: string; operands: string } {
  const words = text.split(/\s+/).filter((w) => w !== '');
  let i = 0;
  while (i < words.length - 1 && (PREFIX_WORDS.has(words[i] ?? '') || /^rex\.[wrxb]+$/i.test(words[i] ?? ''))) i++;
  return { mnemonic: words[i] ?? '', operands: words.slice(i + 1).join(' ') };
}

const LINE = /^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*\t(.*)$/;

export interface CompareOptions {
  section?: string;
  /** Compare only these [start, stop) address ranges (objdump --start/--stop-address). */
  ranges?: [bigint, bigint][];
  maxExamples?: number;
}

export async function compareWithObjdump(file: string, options: CompareOptions = {}): Promise<CompareSummary> {
  const section = options.section ?? '.text';
  const info = sectionInfo(file, section);
  const image = readFileSync(file);
  const code = new Uint8Array(image.buffer, image.byteOffset, image.byteLength);
  const sectionEnd = info.fileOffset + info.size;
  const summary: CompareSummary = {
    file, compared: 0, claimed: 0, lengthMismatches: 0, mnemonicMismatches: 0, operandMismatches: 0, badButDecoded: 0,
    agreedInvalid: 0, unclaimed: new Map(), examples: [], formHits: new Map(), decodeSeconds: 0,
  };
  const maxExamples = options.maxExamples ?? 40;
  const operandSeen = new Set<string>();
  const insn = new Instruction();
  const waited = new Instruction();
  const sectionStop = info.vma + BigInt(info.size);
  const ranges = options.ranges ?? [[info.vma, sectionStop]];
  for (const [from, to] of ranges) {
    const args = ['-d', '-M', 'intel,intel64', '--insn-width=15', '-j', section, `--start-address=0x${from.toString(16)}`, `--stop-address=0x${to.toString(16)}`, file];
    const child = spawn('objdump', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
    for await (const line of lines) {
      const m = LINE.exec(line);
      if (!m) continue;
      const address = BigInt('0x' + m[1]);
      // objdump cuts the last instruction of a range short at --stop-address.
      if (to - address < BigInt(MAX_INSN_LENGTH) && to !== sectionStop) continue;
      const bytes = (m[2] ?? '').split(' ').length;
      const text = m[3] ?? '';
      const offset = info.fileOffset + Number(address - info.vma);
      summary.compared++;
      const t0 = performance.now();
      decode(insn, code, offset, sectionEnd, MODE_64);
      summary.decodeSeconds += (performance.now() - t0) / 1000;
      const theirs = splitObjdumpText(text);
      if (theirs.mnemonic === '(bad)' || theirs.mnemonic === '.byte') {
        if (insn.status === STATUS_OK) {
          summary.badButDecoded++;
          note(summary, maxExamples, `objdump (bad), decoded ${formatInstruction(insn, address)} at 0x${address.toString(16)}: ${m[2]}`);
        } else summary.agreedInvalid++;
        continue;
      }
      if (insn.status !== STATUS_OK) {
        const key = `${STATUS_NAMES[insn.status]} ${theirs.mnemonic}`;
        summary.unclaimed.set(key, (summary.unclaimed.get(key) ?? 0) + 1);
        continue;
      }
      let length = insn.length;
      let ours = mnemonic(insn);
      let oursText = formatInstruction(insn, address);
      let theirMnemonic = theirs.mnemonic;
      if (code[offset] === 0x9b && bytes > 1 && length === 1) {
        // objdump folds FWAIT into the x87 instruction after it (FSTSW = FWAIT FNSTSW).
        decode(waited, code, offset + 1, sectionEnd, MODE_64);
        if (waited.status === STATUS_OK) {
          length += waited.length;
          ours = mnemonic(waited);
          oursText = formatInstruction(waited, address + 1n);
          theirMnemonic = WAITED[theirMnemonic] ?? theirMnemonic;
        }
      }
      summary.claimed++;
      summary.formHits.set(insn.form, (summary.formHits.get(insn.form) ?? 0) + 1);
      const alias = ALIASES[text.trim().replace(/\s+/g, ' ')];
      if (length !== bytes) {
        summary.lengthMismatches++;
        note(summary, maxExamples, `length ${length} != ${bytes} at 0x${address.toString(16)}: ${m[2]} objdump "${text}" ours "${oursText}"`);
      } else if (ours !== theirMnemonic && ours !== alias) {
        summary.mnemonicMismatches++;
        note(summary, maxExamples, `mnemonic at 0x${address.toString(16)}: ${m[2]} objdump "${text}" ours "${oursText}"`);
      } else if (alias === undefined && normaliseOperands(oursText.slice(ours.length).trim()) !== normaliseOperands(theirs.operands)) {
        summary.operandMismatches++;
        const key = FORMS[insn.form]?.row.join(' ') ?? '';
        if (!operandSeen.has(key)) {
          operandSeen.add(key);
          note(summary, maxExamples, `operands at 0x${address.toString(16)}: ${m[2]} objdump "${text}" ours "${oursText}"`);
        }
      }
    }
    const code2 = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 0)));
    if (code2 !== 0) throw new Error(`objdump exited with status ${code2}`);
  }
  return summary;
}

function note(summary: CompareSummary, max: number, text: string): void {
  if (summary.examples.length < max) summary.examples.push(text);
}

/** objdump appends `# <address>` (and `<symbol>`) comments; spacing differs. */
function normaliseOperands(s: string): string {
  return s.replace(/\s*<[^>]*>/g, '').replace(/\s+#.*$/, '').replace(/\s+/g, ' ').trim();
}

export function formatSummary(s: CompareSummary): string {
  const lines = [
    `objdump cross-check of ${s.file}:`,
    `  instructions compared     ${s.compared}`,
    `  claimed by the table      ${s.claimed} (${s.formHits.size} distinct forms of ${FORMS.length})`,
    `  length mismatches         ${s.lengthMismatches}`,
    `  mnemonic mismatches       ${s.mnemonicMismatches}`,
    `  operand-text mismatches   ${s.operandMismatches}`,
    `  objdump (bad) we decode   ${s.badButDecoded}`,
    `  both invalid              ${s.agreedInvalid}`,
    `  not claimed               ${[...s.unclaimed.values()].reduce((a, b) => a + b, 0)}`,
  ];
  const top = [...s.unclaimed.entries()].sort((a, b) => b[1] - a[1]);
  for (const [k, n] of top.slice(0, 40)) lines.push(`    ${String(n).padStart(8)}  ${k}`);
  if (top.length > 40) lines.push(`    ... ${top.length - 40} more kinds`);
  lines.push(`  decode time               ${s.decodeSeconds.toFixed(2)} s (${(s.compared / s.decodeSeconds / 1e6).toFixed(1)} M/s incl. timer overhead)`);
  for (const e of s.examples) lines.push(`  ! ${e}`);
  return lines.join('\n');
}
