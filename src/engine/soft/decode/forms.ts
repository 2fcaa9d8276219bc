/**
 * Compiles TABLE (table.ts) once, at module load, into the forms the decoder
 * returns and the dispatch arrays it indexes. A malformed or ambiguous row
 * throws TableError here, so a bad table fails the first test that imports it.
 */
import { TABLE, type CpuFeature, type FlowClass, type HandlerName, type TableRow } from './table.js';

export class TableError extends Error {
  override name = 'TableError';
}

/** Operand addressing methods (SDM Vol. 2D, A.2.1), plus fixed operands. */
export const A_E = 1; // ModRM r/m: GPR or memory
export const A_M = 2; // ModRM r/m: memory only
export const A_R = 3; // ModRM r/m: GPR only (mod = 3)
export const A_G = 4; // ModRM reg: GPR
export const A_Z = 5; // low three opcode bits (+ REX.B): GPR
export const A_I = 6; // immediate
export const A_J = 7; // relative branch displacement
export const A_O = 8; // memory offset (moffs), address-size wide, no ModRM
export const A_A = 9; // far pointer immediate
export const A_X = 10; // string source seg:[rSI]
export const A_Y = 11; // string destination ES:[rDI]
export const A_S = 12; // ModRM reg: segment register
export const A_C = 13; // ModRM reg: control register
export const A_D = 14; // ModRM reg: debug register
export const A_V = 15; // ModRM reg: XMM
export const A_W = 16; // ModRM r/m: XMM or memory
export const A_U = 17; // ModRM r/m: XMM only
export const A_P = 18; // ModRM reg: MMX
export const A_Q = 19; // ModRM r/m: MMX or memory
export const A_N = 20; // ModRM r/m: MMX only
export const A_FIXGPR = 21; // a fixed GPR: register number in the size byte's upper bits
export const A_FIXSEG = 22; // a fixed segment register
export const A_ST0 = 23; // ST(0)
export const A_STI = 24; // ST(r/m)
export const A_XMM0 = 25; // implicit XMM0 (BLENDV*, SHA256RNDS2)
export const A_ONE = 26; // the constant 1 of the D0-D3 shifts

/** Operand size codes (SDM Vol. 2D, A.2.2). */
export const S_NONE = 0;
export const S_B = 1;
export const S_W = 2;
export const S_D = 3;
export const S_Q = 4;
export const S_V = 5; // 2/4/8 by operand size
export const S_Z = 6; // 2 for 16-bit operand size, else 4
export const S_Y = 7; // 8 for 64-bit operand size, else 4
export const S_X = 8; // 16 (128-bit XMM; VEX.L is not decoded here)
export const S_SS = 9; // 4: scalar single
export const S_SD = 10; // 8: scalar double
export const S_T = 11; // 10: x87 extended real / packed BCD
export const S_P = 12; // far pointer: 2 + operand size
export const S_S = 13; // pseudo-descriptor: 6, or 10 in 64-bit mode
export const S_A = 14; // BOUND pair: 2 x operand size
export const S_BS = 15; // imm8 sign-extended to the operand size
export const S_QO = 16; // 8, or 16 with REX.W (CMPXCHG8B/CMPXCHG16B)

/** Form flags. */
export const F_MODRM = 0x1;
export const F_LOCK = 0x2;
export const F_I64 = 0x4;
export const F_O64 = 0x8;
export const F_D64 = 0x10;
export const F_F64 = 0x20;
export const F_MODREG = 0x40;
/** 66 is this form's mandatory prefix, not an operand-size override. */
export const F_PFX66 = 0x80;
export const F_PRIV = 0x100;
export const F_MN_ASIZE = 0x200;
/** Mnemonic takes objdump's w/d suffix when 66h changes the operand size. */
export const F_SFX = 0x400;
/** Mnemonic takes a w/d suffix by operand size outside 64-bit mode. */
export const F_SFXL = 0x800;

export interface OperandSpec {
  /** As written in the table, e.g. "Ev". */
  text: string;
  addr: number;
  size: number;
  /** Register number for A_FIXGPR / A_FIXSEG. */
  reg: number;
}

export interface Form {
  id: number;
  row: TableRow;
  /** 0: one-byte, 1: 0F, 2: 0F 38, 3: 0F 3A. */
  map: number;
  opcode: number;
  /** Mandatory prefix 0: NP, 1: 66, 2: F3, 3: F2; -1: any; -2: NFx (none or 66). */
  prefix: number;
  /** ModRM.reg required, or -1. */
  modrmReg: number;
  /** 0: memory form only, 1: register form only, -1: either. */
  modrmMod: number;
  /** Exact ModRM.rm (register forms), or -1. */
  modrmRm: number;
  mnemonic: string;
  /** Mnemonic variants: by operand size (3), REX.W (2) or address size (3, `mn=asize`). */
  variants: readonly string[];
  operands: readonly OperandSpec[];
  handler: HandlerName;
  handlerIndex: number;
  flags: number;
  cpuid: CpuFeature | undefined;
  flow: FlowClass;
}

const CPU_FEATURES: ReadonlySet<string> = new Set<CpuFeature>([
  'fpu', 'tsc', 'msr', 'cx8', 'sep', 'cmov', 'clflush', 'mmx', 'fxsr', 'sse', 'sse2', 'sse3', 'pclmulqdq',
  'monitor', 'ssse3', 'cx16', 'sse4_1', 'sse4_2', 'movbe', 'popcnt', 'aes', 'xsave', 'rdrand', 'syscall',
  'lahf_lm', 'abm', '3dnowprefetch', 'rdtscp', 'fsgsbase', 'bmi1', 'invpcid', 'rtm', 'rdseed', 'adx', 'smap',
  'clflushopt', 'clwb', 'sha_ni', 'xsaveopt', 'xsavec', 'xsaves', 'pku', 'rdpid', 'serialize', 'vmx', 'svm',
  'prefetchwt1', 'movdiri', 'cldemote', 'wbnoinvd', 'shstk', 'sev_es',
]);
const FLOWS: ReadonlySet<string> = new Set<FlowClass>(['none', 'jump', 'jcc', 'call', 'ret', 'iret', 'syscall', 'int', 'hlt', 'ud']);

const ADDR_LETTERS: Record<string, number> = {
  E: A_E, M: A_M, R: A_R, G: A_G, Z: A_Z, I: A_I, J: A_J, O: A_O, A: A_A, X: A_X, Y: A_Y, S: A_S, C: A_C,
  D: A_D, V: A_V, W: A_W, U: A_U, P: A_P, Q: A_Q, N: A_N,
};
const SIZE_CODES: Record<string, number> = {
  '': S_NONE, b: S_B, w: S_W, d: S_D, q: S_Q, v: S_V, z: S_Z, y: S_Y, x: S_X, dq: S_X, ps: S_X, pd: S_X,
  ss: S_SS, sd: S_SD, t: S_T, p: S_P, s: S_S, a: S_A, bs: S_BS, qo: S_QO,
};
/** Fixed operands: [addressing, size, register]. */
const FIXED: Record<string, [number, number, number]> = {
  AL: [A_FIXGPR, S_B, 0], CL: [A_FIXGPR, S_B, 1], AX: [A_FIXGPR, S_W, 0], DX: [A_FIXGPR, S_W, 2],
  rAX: [A_FIXGPR, S_V, 0], eAX: [A_FIXGPR, S_Z, 0],
  ES: [A_FIXSEG, S_W, 0], CS: [A_FIXSEG, S_W, 1], SS: [A_FIXSEG, S_W, 2], DS: [A_FIXSEG, S_W, 3],
  FS: [A_FIXSEG, S_W, 4], GS: [A_FIXSEG, S_W, 5],
  ST0: [A_ST0, S_T, 0], STi: [A_STI, S_T, 0], XMM0: [A_XMM0, S_X, 0], '1': [A_ONE, S_B, 0],
};
const MODRM_ADDR = new Set([A_E, A_M, A_R, A_G, A_S, A_C, A_D, A_V, A_W, A_U, A_P, A_Q, A_N, A_STI]);
const MEM_ONLY = new Set([A_M]);
const REG_ONLY = new Set([A_R, A_U, A_N]);

function parseOperand(text: string, where: string): OperandSpec {
  const fixed = FIXED[text];
  if (fixed) return { text, addr: fixed[0], size: fixed[1], reg: fixed[2] };
  const addr = ADDR_LETTERS[text.charAt(0)];
  const size = SIZE_CODES[text.slice(1)];
  if (addr === undefined || size === undefined) throw new TableError(`${where}: unknown operand "${text}"`);
  if ((addr === A_I || addr === A_J) && ![S_B, S_W, S_Z, S_V, S_BS].includes(size)) {
    throw new TableError(`${where}: immediate "${text}" must be b, bs, w, z or v`);
  }
  return { text, addr, size, reg: 0 };
}

/** Mandatory-prefix column; NFx (-2) covers none and 66. */
const PREFIX_NAMES: Record<string, number> = { NP: 0, '66': 1, F3: 2, F2: 3, NFx: -2 };
const PREFIX_ANY = -1;
const PREFIX_NFX = -2;
const MAP_NAMES = ['', '0F', '0F 38', '0F 3A'];

interface Parsed {
  form: Form;
  /** Opcodes this row covers (8 for +r rows). */
  opcodes: number[];
  plusR: boolean;
  hasModrm: boolean;
}

function parseRow(row: TableRow, id: number, handlerIndex: (h: string) => number): Parsed {
  const [opcodeSpec, mnemonicSpec, operandSpec, handler, attrSpec] = row;
  const where = `table row "${opcodeSpec}" (${mnemonicSpec})`;
  const tokens = opcodeSpec.split(/\s+/);
  let i = 0;
  let prefix = PREFIX_ANY;
  const first = tokens[0] ?? '';
  if (first in PREFIX_NAMES && !(first === '66' && tokens.length === 1)) {
    prefix = PREFIX_NAMES[first] ?? PREFIX_ANY;
    i++;
  }
  let map = 0;
  if (tokens[i] === '0F') {
    map = 1;
    i++;
    if (tokens[i] === '38' && tokens[i + 1] !== undefined && /^[0-9A-F]{2}$/.test(tokens[i + 1] ?? '')) { map = 2; i++; }
    else if (tokens[i] === '3A' && tokens[i + 1] !== undefined && /^[0-9A-F]{2}$/.test(tokens[i + 1] ?? '')) { map = 3; i++; }
  }
  const opTok = tokens[i++] ?? '';
  const m = /^([0-9A-F]{2})(\+r)?$/.exec(opTok);
  if (!m) throw new TableError(`${where}: bad opcode byte "${opTok}"`);
  const opcode = parseInt(m[1] ?? '', 16);
  const plusR = m[2] !== undefined;
  let modrmReg = -1;
  let modrmMod = -1;
  let modrmRm = -1;
  let explicitModrm = false;
  for (; i < tokens.length; i++) {
    const t = tokens[i] ?? '';
    if (t === '/r') explicitModrm = true;
    else if (/^\/[0-7]$/.test(t)) { modrmReg = Number(t[1]); explicitModrm = true; }
    else if (/^[0-9A-F]{2}$/.test(t)) {
      const b = parseInt(t, 16);
      if (b < 0xc0) throw new TableError(`${where}: exact ModRM byte ${t} must be a register form (>= C0)`);
      modrmMod = 1;
      modrmReg = (b >> 3) & 7;
      modrmRm = b & 7;
      explicitModrm = true;
    } else if (t === 'mem') modrmMod = 0;
    else if (t === 'reg') modrmMod = 1;
    else throw new TableError(`${where}: unknown opcode token "${t}"`);
  }
  const operands = operandSpec === '' ? [] : operandSpec.split(',').map((o) => parseOperand(o, where));
  if (operands.length > 4) throw new TableError(`${where}: more than four operands`);
  const usesModrm = operands.some((o) => MODRM_ADDR.has(o.addr));
  const hasModrm = explicitModrm || usesModrm || modrmMod >= 0;
  if (plusR && hasModrm) throw new TableError(`${where}: a +r opcode has no ModRM`);
  if (plusR !== operands.some((o) => o.addr === A_Z)) throw new TableError(`${where}: Z operands go with +r opcodes`);
  for (const o of operands) {
    const need = MEM_ONLY.has(o.addr) ? 0 : REG_ONLY.has(o.addr) || o.addr === A_STI ? 1 : -1;
    if (need < 0) continue;
    if (modrmMod >= 0 && modrmMod !== need) throw new TableError(`${where}: operand ${o.text} contradicts ${modrmMod ? 'reg' : 'mem'}`);
    modrmMod = need;
  }

  let flags = hasModrm ? F_MODRM : 0;
  if (prefix === 1) flags |= F_PFX66;
  let cpuid: CpuFeature | undefined;
  let flow: FlowClass = 'none';
  for (const a of attrSpec.split(/\s+/).filter((s) => s !== '')) {
    if (a === 'lock') flags |= F_LOCK;
    else if (a === 'i64') flags |= F_I64;
    else if (a === 'o64') flags |= F_O64;
    else if (a === 'd64') flags |= F_D64;
    else if (a === 'f64') flags |= F_F64;
    else if (a === 'modreg') flags |= F_MODREG;
    else if (a === 'priv') flags |= F_PRIV;
    else if (a === 'mn=asize') flags |= F_MN_ASIZE;
    else if (a === 'sfx') flags |= F_SFX;
    else if (a === 'sfxl') flags |= F_SFXL;
    else if (a.startsWith('cpu=') && CPU_FEATURES.has(a.slice(4))) cpuid = a.slice(4) as CpuFeature;
    else if (a.startsWith('flow=') && FLOWS.has(a.slice(5))) flow = a.slice(5) as FlowClass;
    else throw new TableError(`${where}: unknown attribute "${a}"`);
  }
  if (flags & F_MODREG) modrmMod = -1; // mod is ignored: one form serves every mod
  if ((flags & F_LOCK) && !operands.some((o) => o.addr === A_E || o.addr === A_M)) {
    throw new TableError(`${where}: lock needs a memory destination operand`);
  }
  const variants = mnemonicSpec.split('|');
  if (variants.length > 3) throw new TableError(`${where}: at most three mnemonic variants`);
  if ((flags & F_MN_ASIZE) && variants.length !== 3) throw new TableError(`${where}: mn=asize needs three variants`);
  if (!/^[a-z_][a-z0-9_]*$/.test(handler)) throw new TableError(`${where}: bad handler name "${handler}"`);

  const form: Form = {
    id, row, map, opcode, prefix, modrmReg, modrmMod, modrmRm,
    mnemonic: variants[variants.length === 3 ? 1 : 0] ?? '',
    variants,
    operands,
    handler: handler as HandlerName,
    handlerIndex: handlerIndex(handler),
    flags, cpuid, flow,
  };
  const opcodes = plusR ? [0, 1, 2, 3, 4, 5, 6, 7].map((k) => opcode + k) : [opcode];
  if (plusR && (opcode & 7) !== 0) throw new TableError(`${where}: +r opcode must be a multiple of 8`);
  return { form, opcodes, plusR, hasModrm };
}

/** Dispatch dimensions: mandatory prefix (4) x ModRM.reg (8) x register form (2) x ModRM.rm (8). */
const DIM_PFX = 1;
const DIM_REG = 2;
const DIM_MOD = 4;
const DIM_RM = 8;

export const SLOTS = 4 * 256;
/** Per slot (map * 256 + opcode): a form id (>= 0), SLOT_INVALID, or SLOT_SUBTABLE. */
export const SLOT_INVALID = -1;
export const SLOT_SUBTABLE = -2;

export interface CompiledTable {
  forms: Form[];
  handlerNames: HandlerName[];
  slotForm: Int32Array;
  slotModrm: Uint8Array;
  /** Subtable base and strides for the four dimensions, 5 ints per slot. */
  slotIndex: Int32Array;
  subtable: Int32Array;
  /** Per form: flags, operand descriptors (4 per form: addr << 16 | size << 8 | reg), handler, alternative in 64-bit mode. */
  formFlags: Int32Array;
  formOps: Int32Array;
  formHandler: Int32Array;
  formAlt64: Int32Array;
  /** The xchg r, rAX form of opcode 90 (REX.B 90 is XCHG r8, rAX, not NOP). */
  xchg90: number;
}

export function compileTable(table: readonly TableRow[]): CompiledTable {
  const handlerNames: HandlerName[] = [];
  const handlerIds = new Map<string, number>();
  const handlerIndex = (h: string): number => {
    let id = handlerIds.get(h);
    if (id === undefined) {
      id = handlerNames.length;
      handlerIds.set(h, id);
      handlerNames.push(h as HandlerName);
    }
    return id;
  };
  const parsed = table.map((row, id) => parseRow(row, id, handlerIndex));
  const forms = parsed.map((p) => p.form);

  const bySlot = new Map<number, Parsed[]>();
  for (const p of parsed) {
    for (const op of p.opcodes) {
      const slot = p.form.map * 256 + op;
      const list = bySlot.get(slot) ?? [];
      list.push(p);
      bySlot.set(slot, list);
    }
  }

  const slotForm = new Int32Array(SLOTS).fill(SLOT_INVALID);
  const slotModrm = new Uint8Array(SLOTS);
  const slotIndex = new Int32Array(SLOTS * 5);
  const formAlt64 = new Int32Array(forms.length).fill(-1);
  const sub: number[] = [];
  let xchg90 = -1;

  for (const [slot, list] of bySlot) {
    const where = `opcode ${[MAP_NAMES[slot >> 8], (slot & 255).toString(16).toUpperCase().padStart(2, '0')].filter((s) => s).join(' ')}`;
    const modrm = list[0]?.hasModrm ?? false;
    if (list.some((p) => p.hasModrm !== modrm)) throw new TableError(`${where}: rows disagree on whether a ModRM byte follows`);
    slotModrm[slot] = modrm ? 1 : 0;
    if (slot === 0x90) {
      xchg90 = list.find((p) => p.plusR)?.form.id ?? -1;
    }
    let dims = 0;
    for (const { form: f } of list) {
      if (f.prefix !== PREFIX_ANY) dims |= DIM_PFX;
      if (f.modrmReg >= 0) dims |= DIM_REG;
      if (f.modrmMod >= 0) dims |= DIM_MOD;
      if (f.modrmRm >= 0) dims |= DIM_RM;
    }
    const nP = dims & DIM_PFX ? 4 : 1;
    const nR = dims & DIM_REG ? 8 : 1;
    const nM = dims & DIM_MOD ? 2 : 1;
    const nRm = dims & DIM_RM ? 8 : 1;
    const cells = new Int32Array(nP * nR * nM * nRm).fill(SLOT_INVALID);
    const rank = new Int32Array(cells.length).fill(-2);
    // Less specific rows first; a more specific row overrides them (see
    // specificity). Equal rank on one cell is an error in the table.
    const ordered = [...list].sort((a, b) => specificity(a) - specificity(b));
    for (const p of ordered) {
      const f = p.form;
      const s = specificity(p);
      for (let ip = 0; ip < nP; ip++) {
        if (f.prefix === PREFIX_NFX ? ip > 1 : f.prefix >= 0 && f.prefix !== ip) continue;
        for (let ir = 0; ir < nR; ir++) {
          if (f.modrmReg >= 0 && f.modrmReg !== ir) continue;
          for (let im = 0; im < nM; im++) {
            if (f.modrmMod >= 0 && f.modrmMod !== im) continue;
            for (let irm = 0; irm < nRm; irm++) {
              if (f.modrmRm >= 0 && f.modrmRm !== irm) continue;
              const c = ((ip * nR + ir) * nM + im) * nRm + irm;
              const prev = cells[c] ?? SLOT_INVALID;
              if (rank[c] === s && prev !== f.id) {
                const other = forms[prev];
                if (other && (other.flags & F_I64) && (f.flags & F_O64)) { formAlt64[prev] = f.id; continue; }
                if (other && (other.flags & F_O64) && (f.flags & F_I64)) { formAlt64[f.id] = prev; cells[c] = f.id; continue; }
                throw new TableError(`${where}: rows "${other?.row.join(' ')}" and "${f.row.join(' ')}" claim the same encoding`);
              }
              cells[c] = f.id;
              rank[c] = s;
            }
          }
        }
      }
    }
    if (cells.length === 1) {
      slotForm[slot] = cells[0] ?? SLOT_INVALID;
    } else {
      slotForm[slot] = SLOT_SUBTABLE;
      const k = slot * 5;
      slotIndex[k] = sub.length;
      slotIndex[k + 1] = dims & DIM_PFX ? nR * nM * nRm : 0;
      slotIndex[k + 2] = dims & DIM_REG ? nM * nRm : 0;
      slotIndex[k + 3] = dims & DIM_MOD ? nRm : 0;
      slotIndex[k + 4] = dims & DIM_RM ? 1 : 0;
      for (const c of cells) sub.push(c);
    }
  }

  const formFlags = new Int32Array(forms.length);
  const formOps = new Int32Array(forms.length * 4);
  const formHandler = new Int32Array(forms.length);
  for (const f of forms) {
    formFlags[f.id] = f.flags;
    formHandler[f.id] = f.handlerIndex;
    f.operands.forEach((o, k) => { formOps[f.id * 4 + k] = (o.addr << 16) | (o.size << 8) | o.reg; });
  }
  if (xchg90 < 0) throw new TableError('opcode 90: no xchg +r row');
  return { forms, handlerNames, slotForm, slotModrm, slotIndex, subtable: Int32Array.from(sub), formFlags, formOps, formHandler, formAlt64, xchg90 };
}

function specificity(p: Parsed): number {
  if (p.plusR) return -1;
  const f = p.form;
  // A mandatory prefix outranks one ModRM constraint: F2 0F 38 F0 is CRC32
  // even though MOVBE claims every memory form of 0F 38 F0.
  return (f.prefix !== PREFIX_ANY ? 2 : 0) + (f.modrmReg >= 0 ? 1 : 0) + (f.modrmMod >= 0 ? 1 : 0) + (f.modrmRm >= 0 ? 1 : 0);
}

export const COMPILED: CompiledTable = compileTable(TABLE);
/** Every opcode form, indexed by Instruction.form. */
export const FORMS: readonly Form[] = COMPILED.forms;
/** Handler names, indexed by Instruction.handler. */
export const HANDLER_NAMES: readonly HandlerName[] = COMPILED.handlerNames;
