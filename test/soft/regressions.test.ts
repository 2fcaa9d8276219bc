/**
 * Named regression cases for bugs the differential test (native.test.ts)
 * found in the soft CPU: each is the template and the exact inputs of a
 * failing case, run natively and on the soft CPU like the random ones
 * (native-harness.ts), so the bug's fix stays checked against the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  buildHarness, type CaseInput, compare, disposeHarness, encodeCase, hasGcc, hex, REC, runEmulated, runNative, type Template,
} from './native-harness.js';

interface Regression {
  /** What was wrong, as the test's name. */
  bug: string;
  template: Omit<Template, 'name' | 'family'>;
  input: CaseInput;
  /** Set while the bug is open: the case runs and is reported, not failed. */
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
  {
    bug: 'addsd ignored MXCSR.RC: rounding up',
    template: { code: 'addsd xmm0, xmm1' },
    input: { xmm: [0xd64645354127cc45013bbdb980000000n, 0x43ec14beae73b41c0000000000000080n], mxcsr: 0x5f80 },
  },
  {
    bug: 'divsd ignored MXCSR.RC: 1/3 rounded up',
    template: { code: 'divsd xmm0, xmm1' },
    input: { xmm: [0x3ff0000000000000n, 0x4008000000000000n], mxcsr: 0x5f80 },
  },
  {
    bug: 'sqrtsd ignored MXCSR.RC: sqrt(2) rounded down',
    template: { code: 'sqrtsd xmm0, xmm1' },
    input: { xmm: [0n, 0x4000000000000000n], mxcsr: 0x3f80 },
  },
  {
    bug: 'mulss ignored MXCSR.RC: (1 + 2^-23)^2 rounded up',
    template: { code: 'mulss xmm0, xmm1' },
    input: { xmm: [0x3f800001n, 0x3f800001n], mxcsr: 0x5f80 },
  },
  {
    bug: 'subsd of equal values rounding down gives -0',
    template: { code: 'subsd xmm0, xmm1' },
    input: { xmm: [0x3ff8000000000000n, 0x3ff8000000000000n], mxcsr: 0x3f80 },
  },
  {
    bug: 'mulsd rounding up overflows to infinity, rounding toward zero to the largest finite value',
    template: { code: 'movdqa xmm2, xmm0; mulsd xmm0, xmm1; mov dword ptr [W], 0x7f80; ldmxcsr [W]; mulsd xmm2, xmm1' },
    input: { xmm: [0x7fe0000000000000n, 0x4000000000000000n], mxcsr: 0x5f80 },
  },
  {
    bug: 'addsd ignored MXCSR.FZ: a denormal result is flushed to zero',
    template: { code: 'addsd xmm0, xmm1' },
    input: { xmm: [0x6a6c32bc16e05154000000000cd04a13n, 0x41e436d4aedd9f9600000000000000ean], mxcsr: 0x9f80 },
  },
  {
    bug: 'addsd ignored MXCSR.DAZ: denormal operands read as zero',
    template: { code: 'addsd xmm0, xmm1' },
    input: { xmm: [1n, 1n], mxcsr: 0x1fc0 },
  },
  {
    bug: 'minsd under DAZ returns the second operand flushed when the first is a NaN',
    template: { code: 'minsd xmm0, xmm1' },
    input: { xmm: [0x3fe721d3d4b17e1c7fffffffffffffffn, 0xc3e997f676ab019a8003a3aff44266bcn], mxcsr: 0x9fc0 },
  },
  {
    bug: 'comisd under DAZ sees a denormal equal to zero',
    template: { code: 'comisd xmm0, xmm1' },
    input: { xmm: [1n, 0n], mxcsr: 0x1fc0 },
  },
  {
    bug: 'cvtsi2ss from a 64-bit integer rounded twice (through binary64)',
    template: { code: 'cvtsi2ss xmm0, rax' },
    input: { regs: { rax: 0x1000001000000001n } },
  },
  {
    bug: 'cvtsi2sd from a 64-bit integer ignored MXCSR.RC',
    template: { code: 'cvtsi2sd xmm0, rax' },
    input: { regs: { rax: 0x7fffffffffffffffn }, mxcsr: 0x3f80 },
  },
  {
    bug: 'cvtdq2ps ignored MXCSR.RC',
    template: { code: 'cvtdq2ps xmm0, xmm1' },
    input: { xmm: [0n, 0x7fffffff7fffffff7fffffff7fffffffn], mxcsr: 0x3f80 },
  },
  {
    bug: 'cvtsd2ss ignored MXCSR.RC: 1/3 toward zero',
    template: { code: 'cvtsd2ss xmm0, xmm1' },
    input: { xmm: [0n, 0x3fd5555555555555n], mxcsr: 0x7f80 },
  },
  {
    bug: 'x87 fdiv ignored FCW.RC: 1/3 rounded up at 53-bit precision',
    template: { code: 'fld1; fld qword ptr [W]; fdivp; fstp qword ptr [W + 8]' },
    input: { fcw: 0xa7f, window: hex('0000000000000840') },
  },
  {
    bug: 'x87 fsqrt ignored FCW.RC: sqrt(2) rounded down',
    template: { code: 'fld qword ptr [W]; fsqrt; fstp qword ptr [W + 8]' },
    input: { fcw: 0x67f, window: hex('0000000000000040') },
  },
  {
    bug: 'x87 fldpi ignored FCW.RC: pi rounded up',
    template: { code: 'fldpi; fstp qword ptr [W]' },
    input: { fcw: 0xa7f },
  },
  {
    bug: 'x87 fst m32 ignored FCW.RC: a value beyond binary32 rounds toward zero to its largest finite value',
    template: { code: 'fld qword ptr [W]; fst dword ptr [W + 8]; fstp dword ptr [W + 12]' },
    input: { fcw: 0xe7f, window: hex('9c7500883ce4377e') },
  },
  {
    bug: 'x87 fscale ignored FCW.RC on overflow',
    template: { code: 'fild dword ptr [W]; fld qword ptr [W + 8]; fscale; fstp qword ptr [W + 16]; fstp st(0)' },
    input: { fcw: 0xe7f, window: hex('d007000000000000000000000000f83f') },
  },
  {
    bug: 'x87 fld m64 kept a signalling NaN signalling (it loads quietened)',
    template: { code: 'fld qword ptr [W]; fstp qword ptr [W + 16]; fld dword ptr [W + 8]; fstp qword ptr [W + 24]' },
    input: { window: hex('7378d2135d8df7ff0100807f00000000') },
  },
  {
    bug: 'x87 arithmetic on two NaNs returns the one with the larger significand',
    template: { code: 'fld qword ptr [W]; fld qword ptr [W + 8]; fsubp; fstp qword ptr [W + 16]' },
    input: { window: hex('010000000000f87f020000000000f8ff') },
  },
  {
    bug: 'x87 fprem1 rounded a negative tie quotient away from even',
    template: { code: 'mov [W], eax; fild dword ptr [W]; mov [W + 4], ebx; fild dword ptr [W + 4]; fxch; fprem1; fnstsw ax; and eax, 0x4700; fstp qword ptr [W + 8]; fstp st(0)' },
    input: { regs: { rax: 0x7bc6e3dfe27f29b1n, rbx: 0x2n } },
  },
  {
    bug: 'x87 fprem1 with a zero remainder gives a zero of the dividend\'s sign',
    template: { code: 'mov [W], eax; fild dword ptr [W]; mov [W + 4], ebx; fild dword ptr [W + 4]; fxch; fprem1; fnstsw ax; and eax, 0x4700; fstp qword ptr [W + 8]; fstp st(0)' },
    input: { regs: { rax: 0x29b57e21d3b8587cn, rbx: 0x7fffffffffffffffn } },
  },
  {
    // Before the fix the NaN's sign came from V8 (JS `%` and `*` on Infinity): negative when run cold, positive once optimised.
    bug: 'x87 fprem1 by zero gives the negative real indefinite',
    template: { code: 'mov [W], eax; fild dword ptr [W]; mov [W + 4], ebx; fild dword ptr [W + 4]; fxch; fprem1; fstp qword ptr [W + 8]; fstp st(0)' },
    input: { regs: { rax: 0x6en, rbx: 0n } },
  },
  {
    bug: 'x87 fnstenv stores the reserved upper halves of its 32-bit words as ones',
    template: { code: 'fld1; fnstenv [W + 32]; fstp st(0); mov qword ptr [W + 44], 0; mov qword ptr [W + 52], 0' },
    input: {},
  },
  {
    bug: 'x87 fldcw keeps reserved bit 6 set and bits 13-15 clear',
    template: { code: 'mov word ptr [W], 0; fldcw [W]; fnstcw [W + 2]; mov word ptr [W + 4], 0xffff; fldcw [W + 4]; fnstcw [W + 6]; fninit' },
    input: {},
  },
  {
    bug: 'mov to CS raises #UD (it loaded the selector)',
    template: { code: '.byte 0x8e, 0xc8' },
    input: { regs: { rax: 0x1234n } },
  },
  {
    bug: 'x87 80-bit loads of binary64 denormals gave zero (fld m80, frstor, fxrstor)',
    template: { code: 'fld qword ptr [W]; fstp tbyte ptr [W + 16]; fld tbyte ptr [W + 16]; fstp qword ptr [W + 32]; fld qword ptr [W + 8]; fnsave [rip + scratch]; frstor [rip + scratch]; fstp qword ptr [W + 40]' },
    input: { window: hex('ea4d8a12dc7245800100000000000000') },
  },
  {
    bug: 'x87 fxam reports the sign of a negative NaN in C1',
    template: { code: 'fld qword ptr [W]; fxam; fnstsw ax; and eax, 0x4700; fstp st(0)' },
    input: { window: hex('970b4661ab81f1ff') },
  },
  {
    bug: 'ret to a non-canonical address raises #GP at the ret, before popping (it faulted at the target)',
    template: { code: 'mov rdx, 0x0000800000000000; push rdx; ret' },
    input: {},
  },
  {
    bug: 'jmp through a register to a non-canonical address raises #GP at the jmp',
    template: { code: 'mov rdx, 0xfff0000000000000; jmp rdx' },
    input: {},
  },
  {
    bug: 'call through memory to a non-canonical address raises #GP before pushing',
    template: { code: 'mov rdx, 0x0000800000000000; mov [W], rdx; call qword ptr [W]' },
    input: {},
  },
  {
    bug: 'clflush of an unmapped address raises #PF (it was a no-op)',
    template: { code: 'clflush [0x10]' },
    input: {},
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
    let native: Buffer, emu: { out: Buffer };
    try {
      native = runNative(exe, input);
      emu = runEmulated(exe, input);
    } finally {
      disposeHarness(exe);
    }
    const out = new Map<number, string[]>();
    for (const m of compare(templates, input, native, emu.out)) out.set(m.index, [...(out.get(m.index) ?? []), m.what]);
    return out;
  })();
  return results;
}


REGRESSIONS.forEach((r, k) => {
  test(r.bug, async (t) => {
    if (!hasGcc()) { t.skip('gcc is not installed (apt-get install gcc)'); return; }
    const diffs = (await runAll()).get(k) ?? [];
    assert.deepEqual(diffs, []);
  });
});
