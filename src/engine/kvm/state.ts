import { kvm_dtable, kvm_fpu, kvm_regs, kvm_segment, kvm_sregs, SREGS_SEGMENTS } from '../../native/index.js';
import type { Registers, Segment, SpecialRegisters } from '../engine.js';

/**
 * Conversions between the engine interface's register records (bigint at the
 * edges) and KVM's C structs, plus the architectural reset values KVM leaves
 * to userspace (boot MSRs, FPU control words, LAPIC LINT pins).
 */

const REG_NAMES = Object.keys(kvm_regs.fields) as (keyof Registers)[];

export function encodeRegs(regs: Registers): Uint8Array {
  const buf = new Uint8Array(kvm_regs.size);
  const dv = new DataView(buf.buffer);
  for (const name of REG_NAMES) dv.setBigUint64(kvm_regs.fields[name]!.offset, BigInt.asUintN(64, regs[name]), true);
  return buf;
}

export function decodeRegs(buf: Uint8Array): Registers {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Partial<Registers> = {};
  for (const name of REG_NAMES) out[name] = dv.getBigUint64(kvm_regs.fields[name]!.offset, true);
  return out as Registers;
}

function seg(field: string): number {
  return kvm_segment.fields[field]!.offset;
}

function encodeSegment(dv: DataView, at: number, s: Segment): void {
  dv.setBigUint64(at + seg('base'), BigInt.asUintN(64, s.base), true);
  dv.setUint32(at + seg('limit'), s.limit >>> 0, true);
  dv.setUint16(at + seg('selector'), s.selector, true);
  dv.setUint8(at + seg('type'), s.type & 0xf);
  dv.setUint8(at + seg('present'), s.present ? 1 : 0);
  dv.setUint8(at + seg('dpl'), s.dpl & 3);
  dv.setUint8(at + seg('db'), s.db ? 1 : 0);
  dv.setUint8(at + seg('s'), s.s ? 1 : 0);
  dv.setUint8(at + seg('l'), s.l ? 1 : 0);
  dv.setUint8(at + seg('g'), s.g ? 1 : 0);
  dv.setUint8(at + seg('avl'), s.avl ? 1 : 0);
  // KVM's "unusable" is VMX's notion of a null/absent segment.
  dv.setUint8(at + seg('unusable'), s.present ? 0 : 1);
}

function decodeSegment(dv: DataView, at: number): Segment {
  return {
    base: dv.getBigUint64(at + seg('base'), true),
    limit: dv.getUint32(at + seg('limit'), true),
    selector: dv.getUint16(at + seg('selector'), true),
    type: dv.getUint8(at + seg('type')),
    present: dv.getUint8(at + seg('present')) !== 0,
    dpl: dv.getUint8(at + seg('dpl')),
    db: dv.getUint8(at + seg('db')) !== 0,
    s: dv.getUint8(at + seg('s')) !== 0,
    l: dv.getUint8(at + seg('l')) !== 0,
    g: dv.getUint8(at + seg('g')) !== 0,
    avl: dv.getUint8(at + seg('avl')) !== 0,
  };
}

const SREG_SCALARS = [
  ['cr0', 'cr0'], ['cr2', 'cr2'], ['cr3', 'cr3'], ['cr4', 'cr4'], ['cr8', 'cr8'], ['efer', 'efer'], ['apicBase', 'apic_base'],
] as const;

/** Writes `s` over `buf` (a kvm_sregs from KVM_GET_SREGS, so fields we do not model keep KVM's values). */
export function encodeSregs(s: SpecialRegisters, buf: Uint8Array): Uint8Array {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const name of SREGS_SEGMENTS) encodeSegment(dv, kvm_sregs.fields[name]!.offset, s[name]);
  for (const name of ['gdt', 'idt'] as const) {
    const at = kvm_sregs.fields[name]!.offset;
    dv.setBigUint64(at + kvm_dtable.fields.base!.offset, BigInt.asUintN(64, s[name].base), true);
    dv.setUint16(at + kvm_dtable.fields.limit!.offset, s[name].limit, true);
  }
  for (const [ours, theirs] of SREG_SCALARS) dv.setBigUint64(kvm_sregs.fields[theirs]!.offset, BigInt.asUintN(64, s[ours]), true);
  return buf;
}

export function decodeSregs(buf: Uint8Array): SpecialRegisters {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dt = (name: 'gdt' | 'idt') => {
    const at = kvm_sregs.fields[name]!.offset;
    return { base: dv.getBigUint64(at + kvm_dtable.fields.base!.offset, true), limit: dv.getUint16(at + kvm_dtable.fields.limit!.offset, true) };
  };
  const scalar = (name: string) => dv.getBigUint64(kvm_sregs.fields[name]!.offset, true);
  const segs = Object.fromEntries(SREGS_SEGMENTS.map((n) => [n, decodeSegment(dv, kvm_sregs.fields[n]!.offset)])) as Record<(typeof SREGS_SEGMENTS)[number], Segment>;
  return {
    ...segs,
    gdt: dt('gdt'),
    idt: dt('idt'),
    cr0: scalar('cr0'), cr2: scalar('cr2'), cr3: scalar('cr3'), cr4: scalar('cr4'), cr8: scalar('cr8'),
    efer: scalar('efer'), apicBase: scalar('apic_base'),
  };
}

// MSR indices (Intel SDM vol. 4, table 2-2) and their values at boot.
const MSR_IA32_TSC = 0x10;
const MSR_IA32_SYSENTER_CS = 0x174;
const MSR_IA32_SYSENTER_ESP = 0x175;
const MSR_IA32_SYSENTER_EIP = 0x176;
const MSR_IA32_MISC_ENABLE = 0x1a0;
const MSR_MTRR_DEF_TYPE = 0x2ff;
const MSR_STAR = 0xc000_0081;
const MSR_LSTAR = 0xc000_0082;
const MSR_CSTAR = 0xc000_0083;
const MSR_SYSCALL_MASK = 0xc000_0084;
const MSR_KERNEL_GS_BASE = 0xc000_0102;
/** IA32_MISC_ENABLE bit 0: fast-string operations enabled (Linux checks it for `rep movs` tuning). */
const MISC_ENABLE_FAST_STRING = 1n;
/** IA32_MTRR_DEF_TYPE: E (bit 11) = MTRRs enabled, type 6 = write-back for all memory not covered by a range. */
const MTRR_ENABLE_WB = (1n << 11n) | 6n;

/** The MSRs Linux expects at reset, as Firecracker sets them on every vCPU. */
export const BOOT_MSRS: readonly { index: number; name: string; value: bigint }[] = [
  { index: MSR_IA32_SYSENTER_CS, name: 'IA32_SYSENTER_CS', value: 0n },
  { index: MSR_IA32_SYSENTER_ESP, name: 'IA32_SYSENTER_ESP', value: 0n },
  { index: MSR_IA32_SYSENTER_EIP, name: 'IA32_SYSENTER_EIP', value: 0n },
  { index: MSR_STAR, name: 'STAR', value: 0n },
  { index: MSR_CSTAR, name: 'CSTAR', value: 0n },
  { index: MSR_KERNEL_GS_BASE, name: 'KERNEL_GS_BASE', value: 0n },
  { index: MSR_SYSCALL_MASK, name: 'SYSCALL_MASK', value: 0n },
  { index: MSR_LSTAR, name: 'LSTAR', value: 0n },
  { index: MSR_IA32_TSC, name: 'IA32_TSC', value: 0n },
  { index: MSR_IA32_MISC_ENABLE, name: 'IA32_MISC_ENABLE', value: MISC_ENABLE_FAST_STRING },
  { index: MSR_MTRR_DEF_TYPE, name: 'IA32_MTRR_DEF_TYPE', value: MTRR_ENABLE_WB },
];

/** x87 control word at FNINIT: all exceptions masked, 64-bit precision, round to nearest. */
const FPU_FCW_INIT = 0x37f;
/** MXCSR at reset: all SIMD exceptions masked. */
const MXCSR_INIT = 0x1f80;

export function bootFpu(): Uint8Array {
  const buf = new Uint8Array(kvm_fpu.size);
  const dv = new DataView(buf.buffer);
  dv.setUint16(kvm_fpu.fields.fcw!.offset, FPU_FCW_INIT, true);
  dv.setUint32(kvm_fpu.fields.mxcsr!.offset, MXCSR_INIT, true);
  return buf;
}

// Local APIC register offsets and LVT delivery modes (Intel SDM vol. 3, 11.5.1).
const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
const APIC_DELIVERY_MODE_SHIFT = 8;
const APIC_DELIVERY_MODE_MASK = 0x700;
const APIC_MODE_NMI = 0x4;
const APIC_MODE_EXTINT = 0x7;

/**
 * LINT0 ← ExtINT (the 8259 PIC's output) and LINT1 ← NMI, the wiring of a PC
 * and what the MP spec's virtual-wire mode expects; other fields are kept.
 */
export function wireLintPins(lapic: Uint8Array): Uint8Array {
  const dv = new DataView(lapic.buffer, lapic.byteOffset, lapic.byteLength);
  const set = (reg: number, mode: number) =>
    dv.setUint32(reg, (dv.getUint32(reg, true) & ~APIC_DELIVERY_MODE_MASK) | (mode << APIC_DELIVERY_MODE_SHIFT), true);
  set(APIC_LVT_LINT0, APIC_MODE_EXTINT);
  set(APIC_LVT_LINT1, APIC_MODE_NMI);
  return lapic;
}
