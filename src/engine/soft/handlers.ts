/**
 * Binds the table's handler names to the functions of each instruction
 * family (ops/*.ts), once, at module load. A name with no function and no
 * entry in NOT_YET fails test/soft/handlers.test.ts; executing a NOT_YET
 * form raises #UD and reports the form once.
 *
 * Per form, two gates come first (FORM_HANDLERS): a CPUID feature this CPU
 * does not advertise makes the form #UD as on a part without it (except the
 * forms that hardware without the feature runs as an older instruction),
 * and `priv` forms are #GP outside CPL 0.
 */
import { FORMS, HANDLER_NAMES, type HandlerName } from './decode/index.js';
import { F_PRIV } from './decode/forms.js';
import type { Cpu } from './cpu.js';
import { ADVERTISED } from './cpuid.js';
import { CpuException, VEC_GP, VEC_UD } from './mmu.js';
import type { Handler, Op } from './op.js';
import { ALU } from './ops/alu.js';
import { BIT } from './ops/bit.js';
import { BRANCH } from './ops/branch.js';
import { MISC } from './ops/misc.js';
import { MOV } from './ops/mov.js';
import { MULDIV } from './ops/muldiv.js';
import { SHIFT } from './ops/shift.js';
import { STACK } from './ops/stack.js';
import { STRING } from './ops/string.js';
import { SSE } from './ops/sse.js';
import { SYSTEM } from './ops/system.js';
import { X87 } from './ops/x87.js';
import type { HandlerMap } from './ops/types.js';

export const FAMILIES: Readonly<Record<string, HandlerMap>> = {
  alu: ALU, bit: BIT, branch: BRANCH, misc: MISC, mov: MOV, muldiv: MULDIV, shift: SHIFT, stack: STACK,
  string: STRING, sse: SSE, x87: X87,
  // Last: machine-mode handlers override part-1 ones and hand back to them without a machine.
  system: SYSTEM,
};

const ALL: HandlerMap = Object.assign({}, ...Object.values(FAMILIES)) as HandlerMap;

/** Families and forms not implemented yet, and why. */
const NOT_YET_GROUPS: [RegExp, string][] = [
  [/^sys_/, 'system instructions: part 2 (kernel mode)'],
  [/^(flow_call_far|flow_jmp_far|flow_ret_far|flow_iret|seg_load_far)$/, 'far transfers: part 2'],
  [/^io_|^str_(ins|outs)$/, 'port I/O: part 2 (#GP at CPL 3 with IOPL 0 meanwhile)'],
  [/^bcd_|^flag_salc$/, 'invalid in 64-bit mode (the decoder rejects them); 16/32-bit modes: part 2'],
  [/^(stack_pusha|stack_popa)$/, 'invalid in 64-bit mode'],
  [/^fpu_x(save|rstor)/, 'XSAVE family: XSAVE is not advertised'],
  [/^(tsx_|aes_|sha_|crc_|alu_adcx|alu_adox|misc_rdrand|misc_rdseed|flag_clac|flag_stac)/, 'extension not advertised'],
  [/^mmx_/, 'MMX forms: not used by the x86-64 user code run so far'],
  [/^sse_/, 'SSE form beyond SSE2 or not yet written'],
  [/^x87_/, 'x87 form not yet written'],
];

export function notYetReason(name: HandlerName): string | undefined {
  if (ALL[name]) return undefined;
  for (const [re, why] of NOT_YET_GROUPS) if (re.test(name)) return why;
  return undefined;
}

/** Handler names the table uses that have neither a function nor a NOT_YET reason. */
export function unboundHandlers(): HandlerName[] {
  return HANDLER_NAMES.filter((n) => !ALL[n] && notYetReason(n) === undefined);
}

export const missingHandler: Handler = (c: Cpu, i: Op) => c.unimplemented(i);

/** Indexed by Instruction.handler. */
export const HANDLER_TABLE: readonly Handler[] = HANDLER_NAMES.map((n) => ALL[n] ?? missingHandler);

/** Forms that CPUs without their feature execute as an older instruction (table.ts header). */
const RUNS_WITHOUT_FEATURE: ReadonlySet<string> = new Set(['misc_nop', 'misc_prefetch', 'cet_rdssp', 'bit_tzcnt', 'bit_lzcnt', 'sys_wbinvd']);

function notAdvertised(feature: string): Handler {
  return (c: Cpu, i: Op) => {
    throw new CpuException(VEC_UD, 0, c.rip, `#UD: ${FORMS[i.form]?.mnemonic ?? '?'} needs CPUID feature ${feature}, not advertised`);
  };
}

function privileged(h: Handler): Handler {
  return (c: Cpu, i: Op) => {
    if (c.cpl !== 0) throw new CpuException(VEC_GP, 0, c.rip, `#GP: ${FORMS[i.form]?.mnemonic ?? '?'} at CPL ${c.cpl}`);
    h(c, i);
  };
}

/** Indexed by Instruction.form: the handler with the CPUID and privilege gates applied. */
export const FORM_HANDLERS: readonly Handler[] = FORMS.map((f) => {
  const h = HANDLER_TABLE[f.handlerIndex] ?? missingHandler;
  if (f.cpuid !== undefined && !ADVERTISED.has(f.cpuid) && !RUNS_WITHOUT_FEATURE.has(f.handler)) return notAdvertised(f.cpuid);
  if ((f.flags & F_PRIV) !== 0) return privileged(h);
  return h;
});
