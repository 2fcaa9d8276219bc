/**
 * Named regression cases for bugs the differential test (native.test.ts)
 * found in the soft CPU: each is the template and the exact inputs of a
 * failing case, run natively and on the soft CPU like the random ones
 * (native-harness.ts), so the bug's fix stays checked against the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildHarness, type CaseInput, compare, encodeCase, hasGcc, REC, runEmulated, runNative, type Template,
} from './native-harness.js';

interface Regression {
  /** What was wrong, as the test's name. */
  bug: string;
  template: Omit<Template, 'name' | 'family'>;
  input: CaseInput;
  /** Set while the bug is open: the case runs and is reported, not failed. */
  todo?: string;
}

const REGRESSIONS: Regression[] = [
  {
    bug: 'cmpxchg r32 that misses leaves the destination\'s upper half (it was zero-extended)',
    template: { code: 'cmpxchg ecx, ebx' },
    input: { regs: { rax: 0x2n, rbx: 0xe023e7c9c7c88cebn, rcx: 0xee0b36acbf760e3bn }, flags: 0x8c1 },
  },
  {
    bug: 'cmpxchg r32 that hits zero-extends the destination and leaves rax',
    template: { code: 'mov eax, ecx; cmpxchg ecx, ebx' },
    input: { regs: { rax: 0xffffffff00000000n, rbx: 0xe023e7c9c7c88cebn, rcx: 0xee0b36acbf760e3bn } },
  },
  {
    bug: 'cmpxchg m32 that misses writes the old value back and loads eax zero-extended',
    template: { code: 'lock cmpxchg [W + 16], ebx' },
    input: { regs: { rax: 0x1234567800000002n, rbx: 0x5n }, window: Uint8Array.from({ length: 128 }, (_, k) => k) },
  },
];

const templates: Template[] = REGRESSIONS.map((r) => ({ name: r.bug, family: 'regression', undefinedFlags: 0, ...r.template }));

let results: Promise<Map<number, string[]>> | undefined;

/** Runs every regression case once (one build, one native run, one soft run); differences by case. */
function runAll(): Promise<Map<number, string[]>> {
  results ??= (async () => {
    const exe = buildHarness(templates);
    const input = Buffer.alloc(REGRESSIONS.length * REC);
    REGRESSIONS.forEach((r, k) => encodeCase(input, k * REC, k, r.input));
    const native = runNative(exe, input);
    const emu = runEmulated(exe, input);
    const out = new Map<number, string[]>();
    for (const m of compare(templates, input, native, emu.out)) out.set(m.index, [...(out.get(m.index) ?? []), m.what]);
    return out;
  })();
  return results;
}


REGRESSIONS.forEach((r, k) => {
  test(r.bug, { todo: r.todo }, async (t) => {
    if (!hasGcc()) { t.skip('gcc is not installed (apt-get install gcc)'); return; }
    const diffs = (await runAll()).get(k) ?? [];
    assert.deepEqual(diffs, []);
  });
});
