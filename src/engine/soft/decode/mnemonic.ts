/**
 * Intel-syntax text of a decoded instruction, spelled as GNU objdump
 * `-M intel` spells it, so the two can be compared line by line.
 */
import { FORMS, F_D64, F_F64, F_MN_ASIZE, F_SFX, F_SFXL } from './forms.js';
import {
  BASE_RIP, type Instruction, MODE_16, MODE_64, OP_CR, OP_DR, OP_FAR, OP_GPR, OP_IMM, OP_IMM2, OP_MEM, OP_MMX, OP_REL, OP_SEG,
  OP_ST, OP_STR_DST, OP_STR_SRC, OP_XMM, PFX_REX_W, REG_AH, REG_NONE, SEG_ES, STATUS_OK,
} from './instruction.js';

/** CMPPS/CMPPD/CMPSS/CMPSD predicates 0-7, which objdump folds into the mnemonic. */
const CMP_PREDICATES = ['eq', 'lt', 'le', 'unord', 'neq', 'nlt', 'nle', 'ord'];
/** PCLMULQDQ immediates 0x00, 0x01, 0x10, 0x11, likewise folded. */
const CLMUL_NAMES: Record<number, string> = { 0x00: 'pclmullqlqdq', 0x01: 'pclmulhqlqdq', 0x10: 'pclmullqhqdq', 0x11: 'pclmulhqhqdq' };

/** The mnemonic of a decoded instruction (status must be STATUS_OK). */
export function mnemonic(insn: Instruction): string {
  const form = FORMS[insn.form];
  if (!form || insn.status !== STATUS_OK) return '(bad)';
  const v = form.variants;
  let name: string;
  if (v.length === 3) {
    const size = form.flags & F_MN_ASIZE ? insn.asize : insn.osize;
    name = (size === 2 ? v[0] : size === 4 ? v[1] : v[2]) ?? form.mnemonic;
  } else if (v.length === 2) {
    name = ((insn.prefixes & PFX_REX_W) !== 0 ? v[1] : v[0]) ?? form.mnemonic;
  } else {
    name = form.mnemonic;
  }
  if (form.flags & F_SFX) {
    const wide = insn.mode === MODE_64 && (form.flags & (F_D64 | F_F64)) !== 0;
    const natural = insn.mode === MODE_16 ? 2 : wide ? 8 : 4;
    if (insn.osize !== natural && insn.osize !== 8) name += insn.osize === 2 ? 'w' : 'd';
  } else if ((form.flags & F_SFXL) && insn.mode !== MODE_64) {
    name += insn.osize === 2 ? 'w' : 'd';
  }
  if (insn.mode !== MODE_64 && (form.handler === 'sys_sysret' || form.handler === 'sys_sysexit')) name = name.replace(/d$/, '');
  if (insn.map === 1 && insn.opcode === 0xc2 && (insn.imm & 0xff) < 8) {
    name = 'cmp' + CMP_PREDICATES[insn.imm & 7] + name.slice(3);
  } else if (insn.map === 3 && insn.opcode === 0x44) {
    name = CLMUL_NAMES[insn.imm & 0xff] ?? name;
  }
  return name;
}

const GPR64 = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'];
const GPR32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi', 'r8d', 'r9d', 'r10d', 'r11d', 'r12d', 'r13d', 'r14d', 'r15d'];
const GPR16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di', 'r8w', 'r9w', 'r10w', 'r11w', 'r12w', 'r13w', 'r14w', 'r15w'];
const GPR8 = ['al', 'cl', 'dl', 'bl', 'spl', 'bpl', 'sil', 'dil', 'r8b', 'r9b', 'r10b', 'r11b', 'r12b', 'r13b', 'r14b', 'r15b', 'ah', 'ch', 'dh', 'bh'];
const SEGS = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'];
const PTR: Record<number, string> = { 1: 'BYTE PTR ', 2: 'WORD PTR ', 4: 'DWORD PTR ', 8: 'QWORD PTR ', 10: 'TBYTE PTR ', 16: 'XMMWORD PTR ' };

export function gprName(reg: number, size: number): string {
  const table = size === 8 ? GPR64 : size === 4 ? GPR32 : size === 2 ? GPR16 : GPR8;
  return table[reg] ?? `r?${reg}`;
}

function hex(lo: number, hi: number): string {
  if (hi === 0) return '0x' + (lo >>> 0).toString(16);
  return '0x' + ((BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)).toString(16);
}

function addrRegName(reg: number, asize: number): string {
  return gprName(reg, asize);
}

/**
 * Intel-syntax text, close to objdump's: mnemonic and operands. `address`
 * (the instruction's own address, as a bigint) resolves relative branches
 * and RIP-relative operands.
 */
export function formatInstruction(insn: Instruction, address = 0n): string {
  if (insn.status !== STATUS_OK) return '(bad)';
  const form = FORMS[insn.form];
  if (!form) return '(bad)';
  const next = address + BigInt(insn.length);
  const parts: string[] = [];
  for (let i = 0; i < insn.nops; i++) {
    const kind = insn.opKind[i] ?? 0;
    const reg = insn.opReg[i] ?? 0;
    const size = insn.opSize[i] ?? 0;
    const text = form.operands[i]?.text ?? '';
    switch (kind) {
      case OP_GPR: parts.push(gprName(reg, reg >= REG_AH ? 1 : size)); break;
      case OP_SEG: parts.push(SEGS[reg] ?? '?'); break;
      case OP_CR: parts.push(`cr${reg}`); break;
      case OP_DR: parts.push(`dr${reg}`); break;
      case OP_XMM: parts.push(`xmm${reg}`); break;
      case OP_MMX: parts.push(`mm${reg}`); break;
      case OP_ST: parts.push(reg === 0 && text === 'ST0' ? 'st' : `st(${reg})`); break;
      case OP_IMM: parts.push(text === '1' ? '1' : immText(insn, size, text)); break;
      case OP_IMM2: parts.push(hex(insn.imm2, 0)); break;
      case OP_FAR: parts.push(`${hex(insn.imm2, 0)}:${hex(insn.imm, 0)}`); break;
      case OP_REL: {
        let target = next + (BigInt(insn.immHi) << 32n) + BigInt(insn.imm >>> 0);
        target &= insn.osize === 2 ? 0xffffn : insn.mode === MODE_64 ? 0xffffffffffffffffn : 0xffffffffn;
        parts.push('0x' + target.toString(16));
        break;
      }
      case OP_STR_SRC:
        parts.push(`${PTR[size] ?? ''}${SEGS[insn.segment]}:[${addrRegName(6, insn.asize)}]`);
        break;
      case OP_STR_DST:
        parts.push(`${PTR[size] ?? ''}${SEGS[SEG_ES]}:[${addrRegName(7, insn.asize)}]`);
        break;
      case OP_MEM: parts.push(memText(insn, ptrText(size, text))); break;
      default: parts.push('?');
    }
  }
  if (form.handler === 'mov_xlat') parts.push(`BYTE PTR ${SEGS[insn.segment]}:[${addrRegName(3, insn.asize)}]`);
  const name = mnemonic(insn);
  if (name !== form.mnemonic && (form.handler.startsWith('sse_cmp') || form.handler === 'aes_pclmulqdq')) parts.pop(); // predicate folded into the name
  let text = parts.length ? `${name} ${parts.join(',')}` : name;
  if (insn.base === BASE_RIP && insn.opKind.includes(OP_MEM)) {
    text += `        # 0x${((next + BigInt(insn.disp)) & (insn.asize === 8 ? 0xffffffffffffffffn : 0xffffffffn)).toString(16)}`;
  }
  return text;
}

/** Sign-extended immediates print at the operand size, as objdump does. */
function immText(insn: Instruction, size: number, text: string): string {
  if (text !== 'Ibs' && text !== 'Iz') return hex(size === 2 ? insn.imm & 0xffff : insn.imm, size === 8 ? insn.immHi : 0);
  if (insn.osize === 8) return hex(insn.imm, insn.immHi);
  return hex(insn.osize === 2 ? insn.imm & 0xffff : insn.imm, 0);
}

/** objdump's size keyword: none for descriptor tables and unsized operands, FWORD for far pointers. */
function ptrText(size: number, spec: string): string {
  if (spec === 'M' || spec === 'Ms' || spec.startsWith('O')) return '';
  if (spec === 'Mp') return size === 4 ? 'DWORD PTR ' : 'FWORD PTR ';
  if (spec === 'Mqo' && size === 16) return 'OWORD PTR ';
  return PTR[size] ?? '';
}

function memText(insn: Instruction, ptr: string): string {
  const seg = insn.prefixes & 0x40 ? `${SEGS[insn.segment]}:` : '';
  if (insn.base === REG_NONE && insn.index === REG_NONE) {
    const abs = insn.asize === 2 ? insn.disp & 0xffff : insn.disp;
    return `${ptr}${seg || 'ds:'}${hex(abs, insn.asize === 8 ? insn.dispHi : 0)}`;
  }
  let s = '';
  if (insn.base === BASE_RIP) s = insn.asize === 8 ? 'rip' : 'eip';
  else if (insn.base !== REG_NONE) s = addrRegName(insn.base, insn.asize);
  if (insn.index !== REG_NONE) {
    s += `${s ? '+' : ''}${addrRegName(insn.index, insn.asize)}${insn.asize === 2 ? '' : `*${1 << insn.scale}`}`;
  }
  if (insn.base === BASE_RIP) s += `+${hex(insn.disp, insn.dispHi)}`; // objdump: rip+<disp as unsigned 64-bit>
  else if (insn.disp !== 0 || insn.dispBytes !== 0) s += insn.disp < 0 ? `-0x${(-insn.disp).toString(16)}` : `+0x${insn.disp.toString(16)}`;
  return `${ptr}${seg}[${s}]`;
}
