/**
 * A small machine for soft-engine system tests: 4 MiB of RAM with our own
 * page tables, GDT, TSS and IDT, code assembled by GNU as at run time, and a
 * SoftVm running it until the code writes to the test port.
 *
 * Layout (physical = linear for the low 4 MiB; linear 0xffff800000000000 +
 * x aliases physical x):
 *   0x1000 PML4, 0x2000 PDPT, 0x3000 PD, 0x4000 PT (first 2 MiB, 4 KiB pages),
 *   0xd000 PD of 3-4 GiB (2 MiB uncached pages for the IOAPIC and LAPIC)
 *   0x5000 GDT, 0x6000 TSS, 0x7000 IDT (GATES gates)
 *   0x8000 stubs: vector k at 0x8000 + 16k: mov al, k; out TEST_PORT, al; hlt
 *   0x9000 top of the RSP0 stack, 0xa000 top of the IST1 stack, 0xc000 top of the boot stack
 *   0x10000.. test code (`.org` relative to CODE)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateGuestMemory, type GuestMemory } from '../../src/memory/index.js';
import type { BootCpuState, ExitDispatcher, Segment, VmStop } from '../../src/engine/engine.js';
import { SoftEngine, type SoftVm } from '../../src/engine/soft/engine.js';

export const PML4 = 0x1000;
export const PDPT = 0x2000;
export const PD = 0x3000;
export const PT = 0x4000;
export const GDT = 0x5000;
export const TSS = 0x6000;
export const IDT = 0x7000;
export const STUBS = 0x8000;
export const RSP0_TOP = 0x9000;
export const IST1_TOP = 0xa000;
export const BOOT_STACK_TOP = 0xc000;
export const CODE = 0x10000;
export const PD_HIGH = 0xd000;
/** IDT entries the harness fills: the exceptions and vectors 0x20-0x3f for interrupt tests. */
export const GATES = 64;
/** The port whose write asks the host to raise IOAPIC pin 4 about 50 ms later (interrupt tests). */
export const RAISE_PORT = 0xf1;
export const DATA = 0x30000;
export const HIGH_ALIAS = 0xffff800000000000n;
/** The port test code and exception stubs write to: the run ends there. */
export const TEST_PORT = 0xf0;

/** GDT selectors, ordered for SYSCALL/SYSRET (STAR[47:32] = 0x08, STAR[63:48] = 0x10). */
export const KERNEL_CS = 0x08;
export const KERNEL_DS = 0x10;
export const USER_DS = 0x18;
export const USER_CS = 0x20;
export const TSS_SEL = 0x28;

const P = 1, RW = 2, US = 4;

/** Why GNU as cannot assemble test code here, or undefined. */
export function assemblerMissing(): string | undefined {
  const r = spawnSync('as', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'GNU as (binutils) is not installed';
}

/** Assembles 64-bit AT&T code placed at `org` into raw bytes. */
export function assemble(source: string, org = CODE): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-soft-asm-'));
  try {
    writeFileSync(join(dir, 'a.s'), `.code64\n${source}\n`);
    const as = spawnSync('as', ['--64', '-o', join(dir, 'a.o'), join(dir, 'a.s')], { encoding: 'utf8' });
    if (as.status !== 0) throw new Error(`as failed:\n${as.stderr}`);
    const ld = spawnSync('ld', ['-Ttext', `0x${org.toString(16)}`, '--oformat', 'binary', '-o', join(dir, 'a.bin'), join(dir, 'a.o')], { encoding: 'utf8' });
    if (ld.status !== 0) throw new Error(`ld failed:\n${ld.stderr}`);
    return new Uint8Array(readFileSync(join(dir, 'a.bin')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function seg(selector: number, code: boolean, dpl = 0): Segment {
  return { base: 0n, limit: 0xffffffff, selector: selector | dpl, type: code ? 0xb : 0x3, present: true, dpl, s: true, db: !code, l: code, g: true, avl: false };
}

function descriptor(code: boolean, dpl: number): bigint {
  // limit 0xfffff, base 0, present, S, type, G; code: L; data: D/B (SDM Vol. 3A, Figure 3-8).
  const type = code ? 0xbn : 0x3n;
  const access = 0x80n | (BigInt(dpl) << 5n) | 0x10n | type;
  const flags = code ? 0xan : 0xcn;
  return 0xffffn | (access << 40n) | (0xfn << 48n) | (flags << 52n);
}

export interface Machine {
  memory: GuestMemory;
  vm: SoftVm;
  /** Port writes to TEST_PORT, in order (the byte written). */
  marks: number[];
  /** Other port I/O (port, isWrite). */
  pio: [number, boolean][];
  run(): Promise<VmStop>;
  u64(address: number): bigint;
  setU64(address: number, value: bigint): void;
  pte(linear: number): number;
}

export interface MachineOptions {
  /** Extra set-up of memory before the VM is created. */
  setup?: (m: GuestMemory) => void;
  /** Stop at the first TEST_PORT write (default) or after `marks` writes. */
  marks?: number;
  cpus?: number;
}

/** Builds the machine, loads `code` at CODE and returns it ready to run (entry at CODE, CPL 0, IF = 0). */
export async function machine(code: Uint8Array, options: MachineOptions = {}): Promise<Machine> {
  const memory = allocateGuestMemory([{ base: 0, size: 4 << 20 }], new SoftEngine().memoryBacking());
  const dv = (a: number, v: bigint): void => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    memory.write(a, b);
  };
  dv(PML4, BigInt(PDPT | P | RW | US));
  dv(PML4 + 256 * 8, BigInt(PDPT | P | RW | US));
  dv(PDPT, BigInt(PD | P | RW | US));
  dv(PD, BigInt(PT | P | RW | US));
  dv(PD + 8, BigInt(0x200000 | P | RW | US | 0x80));
  dv(PDPT + 3 * 8, BigInt(PD_HIGH | P | RW));
  // 2 MiB pages at 0xfec00000 and 0xfee00000, PCD (SDM Vol. 3A, Table 4-18).
  dv(PD_HIGH + 0x1f6 * 8, BigInt((0xfec00000 | P | RW | 0x10 | 0x80) >>> 0));
  dv(PD_HIGH + 0x1f7 * 8, BigInt((0xfee00000 | P | RW | 0x10 | 0x80) >>> 0));
  for (let k = 0; k < 512; k++) dv(PT + k * 8, k === 0 ? 0n : BigInt((k << 12) | P | RW | US));
  dv(GDT + KERNEL_CS, descriptor(true, 0));
  dv(GDT + KERNEL_DS, descriptor(false, 0));
  dv(GDT + USER_DS, descriptor(false, 3));
  dv(GDT + USER_CS, descriptor(true, 3));
  // 64-bit available TSS, limit 0x67 (SDM Vol. 3A, Figure 8-4).
  dv(GDT + TSS_SEL, 0x67n | (BigInt(TSS & 0xffff) << 16n) | (BigInt((TSS >> 16) & 0xff) << 32n) | (0x89n << 40n));
  dv(TSS + 4, BigInt(RSP0_TOP));
  dv(TSS + 0x24, BigInt(IST1_TOP));
  for (let v = 0; v < GATES; v++) {
    const stub = STUBS + v * 16;
    memory.write(stub, Uint8Array.of(0xb0, v, 0xe6, TEST_PORT, 0xf4, 0xeb, 0xfd));
    // Interrupt gate, DPL 3 so tests can INT n from user mode (SDM Vol. 3A, Figure 6-8).
    const lo = BigInt(stub & 0xffff) | (BigInt(KERNEL_CS) << 16n) | (0xeen << 40n) | (BigInt(stub >>> 16) << 48n);
    dv(IDT + v * 16, lo);
  }
  memory.write(CODE, code);
  options.setup?.(memory);
  const marks: number[] = [];
  const pio: [number, boolean][] = [];
  const want = options.marks ?? 1;
  const holder: { vm?: SoftVm } = {};
  const dispatcher: ExitDispatcher = {
    pio(_cpu, port, data, isWrite) {
      if (port === RAISE_PORT && isWrite) {
        setTimeout(() => holder.vm?.irqLine(4).set(true), 50);
        return;
      }
      if (port === TEST_PORT && isWrite) {
        marks.push(data[0] ?? 0);
        if (marks.length >= want) holder.vm?.requestStop({ reason: 'poweroff' });
        return;
      }
      pio.push([port, isWrite]);
    },
    mmio() {},
  };
  const boot: BootCpuState = {
    regs: {
      rax: 0n, rbx: 0n, rcx: 0n, rdx: 0n, rsi: 0n, rdi: 0n, rsp: BigInt(BOOT_STACK_TOP), rbp: 0n,
      r8: 0n, r9: 0n, r10: 0n, r11: 0n, r12: 0n, r13: 0n, r14: 0n, r15: 0n, rip: BigInt(CODE), rflags: 2n,
    },
    sregs: {
      cs: seg(KERNEL_CS, true), ds: seg(KERNEL_DS, false), es: seg(KERNEL_DS, false), fs: seg(KERNEL_DS, false),
      gs: seg(KERNEL_DS, false), ss: seg(KERNEL_DS, false),
      tr: { base: BigInt(TSS), limit: 0x67, selector: TSS_SEL, type: 0xb, present: true, dpl: 0, s: false, db: false, l: false, g: false, avl: false },
      ldt: { base: 0n, limit: 0, selector: 0, type: 2, present: false, dpl: 0, s: false, db: false, l: false, g: false, avl: false },
      gdt: { base: BigInt(GDT), limit: 0x37 }, idt: { base: BigInt(IDT), limit: GATES * 16 - 1 },
      cr0: 0x80050033n, cr2: 0n, cr3: BigInt(PML4), cr4: 0x6a0n, cr8: 0n, efer: 0xd01n, apicBase: 0xfee00900n,
    },
  };
  const vm = (await new SoftEngine({ log: () => {} }).createVm({ memory, cpus: options.cpus ?? 1, boot, dispatcher })) as SoftVm;
  holder.vm = vm;
  const timeout = (): Promise<VmStop> => new Promise((resolve) => {
    const t = setTimeout(() => { vm.requestStop({ reason: 'host-stop' }); }, 5000);
    void vm.run().then((s) => { clearTimeout(t); resolve(s); });
  });
  return {
    memory, vm, marks, pio, run: timeout,
    u64: (a) => new DataView(memory.read(a, 8).buffer).getBigUint64(0, true),
    setU64: dv,
    pte: (linear) => PT + (linear >>> 12) * 8,
  };
}
