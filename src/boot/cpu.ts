/**
 * The boot CPU at the 64-bit entry point (boot.rst, "64-bit BOOT PROTOCOL"):
 * long mode with paging, an identity map covering the kernel, boot_params and
 * the command line, a GDT with flat __BOOT_CS (0x10, execute/read) and
 * __BOOT_DS (0x18, read/write) descriptors, CS = __BOOT_CS, DS/ES/SS =
 * __BOOT_DS, interrupts off, RSI = boot_params.
 *
 * The GDT and page tables are written into guest RAM (the kernel reads the
 * GDT back when it reloads segments); the engine loads the returned register
 * state, including the hidden descriptor caches described by `Segment`.
 */
import type { GuestMemory } from '../memory/index.js';
import type { BootCpuState, Registers, Segment, SpecialRegisters } from '../engine/engine.js';
import { BOOT_STACK_TOP, GDT_ADDR, GiB, IDT_ADDR, LAPIC_ADDR, PAGE_SIZE, PAGE_TABLES_ADDR, PAGE_TABLES_SIZE } from '../arch/x86_64/layout.js';

/** GDT selectors of the 64-bit boot protocol (arch/x86/include/asm/segment.h GDT_ENTRY_BOOT_CS/DS). */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
/** null, unused, __BOOT_CS, __BOOT_DS: four 8-byte descriptors, ending where IDT_ADDR begins. */
export const GDT_ENTRIES = 4;

// Control register and MSR bits (Intel SDM Vol. 3A 2.5, 2.2.1).
export const CR0_PE = 1n << 0n; // protected mode
export const CR0_ET = 1n << 4n; // extension type: hard-wired 1 on every CPU since the 486
export const CR0_NE = 1n << 5n; // native x87 error reporting
export const CR0_PG = 1n << 31n; // paging
export const CR4_PAE = 1n << 5n; // physical address extension: required for long mode
export const EFER_LME = 1n << 8n; // long mode enable
export const EFER_LMA = 1n << 10n; // long mode active
/** IA32_APIC_BASE: the default xAPIC base with BSP (bit 8) and global enable (bit 11). */
export const APIC_BASE_MSR = BigInt(LAPIC_ADDR) | (1n << 8n) | (1n << 11n);
/** RFLAGS bit 1 is reserved and always 1; IF (bit 9) clear: interrupts off. */
export const RFLAGS_BOOT = 0x2n;

// Page-table entry bits (Intel SDM Vol. 3A 4.5).
export const PTE_PRESENT = 1n << 0n;
export const PTE_WRITE = 1n << 1n;
export const PTE_PS = 1n << 7n; // in a page directory entry: maps a 2 MiB page
export const PML4_ADDR = PAGE_TABLES_ADDR;
export const PDPT_ADDR = PAGE_TABLES_ADDR + PAGE_SIZE;
export const PD_ADDR = PAGE_TABLES_ADDR + 2 * PAGE_SIZE;
/** Page directories of 512 × 2 MiB: four map the first 4 GiB. */
export const PD_COUNT = 4;
export const IDENTITY_MAP_BYTES = PD_COUNT * GiB;
const HUGE_PAGE = 2 * 1024 * 1024;

const flat = { base: 0n, limit: 0xffffffff, present: true, dpl: 0, s: true, g: true, avl: false } as const;
/** Execute/read, accessed (type 0xb), 64-bit (L=1, D=0). */
export const CODE64: Segment = { ...flat, selector: BOOT_CS, type: 0xb, l: true, db: false };
/** Read/write, accessed (type 0x3), 32-bit default size. */
export const DATA: Segment = { ...flat, selector: BOOT_DS, type: 0x3, l: false, db: true };
/**
 * TR and LDTR as the CPU has them after reset (selector 0, limit 0xffff), with
 * TR typed as a busy 64-bit TSS (type 11) because VM entry into long mode
 * demands it. Linux loads its own TSS and LDT; nothing reads these before.
 */
export const TR: Segment = { base: 0n, limit: 0xffff, selector: 0, type: 0xb, present: true, dpl: 0, s: false, db: false, l: false, g: false, avl: false };
export const LDT: Segment = { ...TR, type: 0x2 };

/** A segment as the 8-byte descriptor the GDT holds (Intel SDM Vol. 3A 3.4.5). */
export function encodeDescriptor(seg: Segment): bigint {
  const limit = seg.g ? seg.limit >>> 12 : seg.limit;
  const base = seg.base;
  const access = (seg.type & 0xf) | (seg.s ? 0x10 : 0) | ((seg.dpl & 3) << 5) | (seg.present ? 0x80 : 0);
  const flags = (seg.avl ? 1 : 0) | (seg.l ? 2 : 0) | (seg.db ? 4 : 0) | (seg.g ? 8 : 0);
  return (
    BigInt(limit & 0xffff) |
    ((base & 0xffffffn) << 16n) |
    (BigInt(access) << 40n) |
    (BigInt((limit >>> 16) & 0xf) << 48n) |
    (BigInt(flags) << 52n) |
    (((base >> 24n) & 0xffn) << 56n)
  );
}

/** The boot GDT: null, unused, __BOOT_CS, __BOOT_DS. */
export function bootGdt(): bigint[] {
  return [0n, 0n, encodeDescriptor(CODE64), encodeDescriptor(DATA)];
}

/** Writes the identity map of the first 4 GiB (PML4 → PDPT → 4 PDs of 2 MiB pages). */
export function writeIdentityPageTables(memory: GuestMemory): void {
  memory.fill(PAGE_TABLES_ADDR, PAGE_TABLES_SIZE, 0);
  memory.writeU64(PML4_ADDR, BigInt(PDPT_ADDR) | PTE_PRESENT | PTE_WRITE);
  for (let i = 0; i < PD_COUNT; i++) {
    const pd = PD_ADDR + i * PAGE_SIZE;
    memory.writeU64(PDPT_ADDR + i * 8, BigInt(pd) | PTE_PRESENT | PTE_WRITE);
    const entries = new Uint8Array(PAGE_SIZE);
    const dv = new DataView(entries.buffer);
    for (let j = 0; j < 512; j++) {
      dv.setBigUint64(j * 8, BigInt((i * 512 + j) * HUGE_PAGE) | PTE_PRESENT | PTE_WRITE | PTE_PS, true);
    }
    memory.write(pd, entries);
  }
}

/**
 * Writes the GDT and page tables and returns the CPU state for entering the
 * kernel at `entry` with RSI = `zeroPage`.
 */
export function bootCpuState(memory: GuestMemory, entry: number, zeroPage: number): BootCpuState {
  const gdt = bootGdt();
  gdt.forEach((d, i) => memory.writeU64(GDT_ADDR + i * 8, d));
  writeIdentityPageTables(memory);

  const regs: Registers = {
    rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n,
    rsi: BigInt(zeroPage), rdi: 0n, rsp: BigInt(BOOT_STACK_TOP), rbp: BigInt(BOOT_STACK_TOP),
    r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n,
    rip: BigInt(entry), rflags: RFLAGS_BOOT,
  };
  const sregs: SpecialRegisters = {
    cs: { ...CODE64 }, ds: { ...DATA }, es: { ...DATA }, fs: { ...DATA }, gs: { ...DATA }, ss: { ...DATA },
    tr: { ...TR }, ldt: { ...LDT },
    gdt: { base: BigInt(GDT_ADDR), limit: GDT_ENTRIES * 8 - 1 },
    // No IDT: interrupts are off and the kernel installs its own before enabling them.
    idt: { base: BigInt(IDT_ADDR), limit: 0 },
    cr0: CR0_PE | CR0_ET | CR0_NE | CR0_PG,
    cr2: 0n,
    cr3: BigInt(PML4_ADDR),
    cr4: CR4_PAE,
    cr8: 0n,
    efer: EFER_LME | EFER_LMA,
    apicBase: APIC_BASE_MSR,
  };
  return { regs, sregs };
}
