/**
 * The soft CPU against the host CPU: ~3,700 instruction templates
 * (native-templates.ts) with random registers, flags, XMM, MXCSR, x87
 * control and memory (native-harness.ts), all run through one native
 * process and one in-process soft CPU. Every difference is listed with its
 * inputs, written as a CaseInput for regressions.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildHarness, compare, disposeHarness, faultsByFamily, hasGcc, randomCases, REC, runEmulated, runNative, type Template } from './native-harness.js';
import { templates } from './native-templates.js';
import { templateForms } from './native-emulate.js';
import { FORMS } from '../../src/engine/soft/decode/index.js';
import { F_I64, F_PRIV } from '../../src/engine/soft/decode/forms.js';
import { ADVERTISED } from '../../src/engine/soft/cpuid.js';
import { HANDLER_TABLE, missingHandler } from '../../src/engine/soft/handlers.js';

/** Cases per run: 250,000, spread evenly over the templates (the issue asks for at least 100,000). */
const MIN_CASES = 250_000;
/** Seed: fixed so CI runs reproduce; TV_NATIVE_SEED explores others. */
const SEED = Number(process.env.TV_NATIVE_SEED ?? 0x7e57);

test('soft CPU matches the host CPU on random operands, flags and memory', async (t) => {
  if (!hasGcc()) { t.skip('gcc is not installed (apt-get install gcc)'); return; }
  const T = templates();
  const per = Math.ceil(MIN_CASES / T.length);
  const t0 = performance.now();
  const exe = buildHarness(T);
  t.after(() => disposeHarness(exe));
  const input = randomCases(T, () => per, SEED);
  const t1 = performance.now();
  const native = runNative(exe, input);
  const t2 = performance.now();
  const emu = runEmulated(exe, input);
  const t3 = performance.now();
  const bad = compare(T, input, native, emu.out);
  const cases = input.length / REC;
  const perFamily = new Map<string, number>();
  for (const x of T) perFamily.set(x.family, (perFamily.get(x.family) ?? 0) + per);
  const differ = new Map<string, number>();
  for (const m of bad) differ.set(m.template.family, (differ.get(m.template.family) ?? 0) + 1);
  const faults = faultsByFamily(T, input, native);
  t.diagnostic(`native differential: ${cases} cases, ${T.length} templates, ${bad.length} differences, seed 0x${SEED.toString(16)}; `
    + `build ${((t1 - t0) / 1000).toFixed(1)} s, native ${((t2 - t1) / 1000).toFixed(1)} s, soft ${((t3 - t2) / 1000).toFixed(1)} s `
    + `(${(emu.instructions / 1e6).toFixed(1)} M instructions)`);
  t.diagnostic(`native differential by family (cases/differences/faults): ${[...perFamily].map(([f, n]) => `${f} ${n}/${differ.get(f) ?? 0}/${faults.get(f) ?? 0}`).join(', ')}`);
  // Form coverage: the table's forms with a handler that 64-bit user mode can execute, against those the templates contain.
  const used = templateForms(exe);
  const runnable = FORMS.filter((f) => (f.flags & (F_PRIV | F_I64)) === 0 && (f.cpuid === undefined || ADVERTISED.has(f.cpuid))
    && HANDLER_TABLE[f.handlerIndex] !== missingHandler);
  const missing = [...new Set(runnable.filter((f) => !used.has(f.id)).map((f) => f.mnemonic))].sort();
  t.diagnostic(`native differential form coverage: ${runnable.filter((f) => used.has(f.id)).length} of ${runnable.length} user-mode forms; `
    + `mnemonics with forms not covered: ${missing.join(' ')}`);
  assert.ok(cases >= 100_000, `only ${cases} cases`);
  // The fault paths ran: #DE from the divide templates and every deliberate fault.
  assert.ok((faults.get('muldiv') ?? 0) > 0 && (faults.get('faults') ?? 0) === perFamily.get('faults'), 'faults were not raised where expected');
  assert.deepEqual(emu.log, [], 'the soft CPU reported unimplemented forms');
  // One example per template that differs, so a single bug does not hide the others.
  const firstPerTemplate = new Map<string, string>();
  for (const m of bad) if (!firstPerTemplate.has(m.template.name)) firstPerTemplate.set(m.template.name, m.what);
  assert.deepEqual([...firstPerTemplate.values()].slice(0, 40), [], `${bad.length} of ${cases} cases differ, in ${firstPerTemplate.size} templates`);
});

test('the harness reports differences: documented approximations and features not advertised', (t) => {
  if (!hasGcc()) { t.skip('gcc is not installed (apt-get install gcc)'); return; }
  // RCPPS is exact here and a 12-bit approximation on the host; FISTTP (SSE3) is #UD here and runs on the host.
  const T: Template[] = [
    { name: 'rcpps', family: 'check', code: 'rcpps xmm0, xmm1' },
    { name: 'fisttp', family: 'check', code: 'fld qword ptr [W]; fisttp qword ptr [W + 8]' },
  ];
  const exe = buildHarness(T);
  t.after(() => disposeHarness(exe));
  const input = randomCases(T, () => 50, SEED);
  const bad = compare(T, input, runNative(exe, input), runEmulated(exe, input).out);
  assert.ok(bad.some((m) => m.template.name === 'rcpps' && /xmm0: native/.test(m.what)), 'an XMM difference went unreported');
  assert.ok(bad.some((m) => m.template.name === 'fisttp' && /fault: native none soft SIGILL/.test(m.what)), 'a fault difference went unreported');
});
