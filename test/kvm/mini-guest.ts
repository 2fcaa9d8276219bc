import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { BootCpuState, ExitDispatcher, Segment } from '../../src/engine/engine.js';
import { EngineUnavailableError } from '../../src/engine/engine.js';
import { KvmEngine, KvmVm } from '../../src/engine/kvm/index.js';
import { KVM_MP_STATE } from '../../src/native/index.js';
import { allocateGuestMemory, type GuestMemory, type MemoryBacking } from '../../src/memory/index.js';

/**
 * Tiny guests for the KVM engine's tests and benchmark, assembled from
 * guest/mini/*.S (hex of `.text`; test/kvm/mini-guest.test.ts re-assembles
 * the sources and checks these bytes), and the long-mode machine state they
 * start in: the same shape the boot path gives a Linux kernel (flat 64-bit
 * segments, identity-mapped first 4 GiB, paging on).
 */
export const GUESTS = {
  'exit-loop': '66baf803ee48ffc975fa66ba0006b034eef4bb000000d0890348ffc975f966ba0006b034eef4',
  count: '66baf803eefec0ebfb',
  halt: 'faf4ebfc',
  hello: '66baf803b068eeb069ee488d350f000000b903000000f36e66ba0006b034eef4796f21',
  irq:
    'b0ffe621e6a1488d056a000000bf0034000066890766c74702080066c74704008e48c1e8106689470648c1e810894708c7470c000000000f011d48' +
    '000000bb0000e0fec783f0000000ff010000b90000c0fec70118000000c7411040000000c70119000000c7411000000000fb66baf803b052eef4eb' +
    'fdb049eec783b00000000000000048cfff0f0030000000000000',
  mmio: 'bb000000d08b03894308488b43104889431866ba0006b034eef4',
  'smp-ap': 'baf803b041eefaf4ebfc',
  'smp-bsp':
    'bb0000e0fec783f0000000ff010000c7831003000000000000c7830003000000450c00c7830003000008460c0066baf803b042eefaf4ebfc',
  'triple-fault': '0f011d030000000f0bf400000000000000000000',
} as const;
export type GuestName = keyof typeof GUESTS;

export function guestBytes(name: GuestName): Uint8Array {
  return Uint8Array.from(Buffer.from(GUESTS[name], 'hex'));
}

/** Offsets of the two loops in exit-loop.S. */
export const EXIT_LOOP_PIO = 0;
export const EXIT_LOOP_MMIO = 0x12;

export const MEM_SIZE = 4 << 20;
export const CODE_ADDR = 0x10_0000;
const GDT_ADDR = 0x500;
const PML4_ADDR = 0x9000;
const STACK_TOP = 0x8ff0;
/** Where smp-ap runs: SIPI vector 0x08 → 0x0800:0000. */
export const AP_CODE_ADDR = 0x8000;
/** Port 0x600 write: the ACPI sleep-control register the machine treats as poweroff. */
export const PORT_POWEROFF = 0x600;
export const PORT_OUT = 0x3f8;
/** MMIO window the mmio guest touches (unmapped: the VMM serves it). */
export const MMIO_BASE = 0xd000_0000;

const code64: Segment = { base: 0n, limit: 0xfffff, selector: 0x08, type: 0xb, present: true, dpl: 0, s: true, db: false, l: true, g: true, avl: false };
const data: Segment = { base: 0n, limit: 0xfffff, selector: 0x10, type: 0x3, present: true, dpl: 0, s: true, db: true, l: false, g: true, avl: false };
const tss: Segment = { base: 0n, limit: 0xfffff, selector: 0x18, type: 0xb, present: true, dpl: 0, s: false, db: false, l: false, g: true, avl: false };
const noLdt: Segment = { base: 0n, limit: 0, selector: 0, type: 0x2, present: false, dpl: 0, s: false, db: false, l: false, g: false, avl: false };

/** Guest RAM with a GDT, 4 GiB identity page tables and `code` at CODE_ADDR; the boot CPU enters at `entry`. */
export function longModeGuest(backing: MemoryBacking, code: Uint8Array, opts: { entry?: number; rcx?: bigint } = {}): { memory: GuestMemory; boot: BootCpuState } {
  const memory = allocateGuestMemory([{ base: 0, size: MEM_SIZE }], backing);
  // GDT: null, code64 (0x08), data (0x10), 64-bit TSS (0x18).
  memory.writeU64(GDT_ADDR + 0x08, 0x00af_9b00_0000_ffffn);
  memory.writeU64(GDT_ADDR + 0x10, 0x00cf_9300_0000_ffffn);
  memory.writeU64(GDT_ADDR + 0x18, 0x008f_8b00_0000_ffffn);
  // PML4 → PDPT → 4 page directories of 2 MiB pages: identity map of [0, 4 GiB).
  memory.writeU64(PML4_ADDR, BigInt(PML4_ADDR + 0x1000) | 3n);
  for (let i = 0; i < 4; i++) memory.writeU64(PML4_ADDR + 0x1000 + i * 8, BigInt(PML4_ADDR + 0x2000 + i * 0x1000) | 3n);
  for (let i = 0; i < 4 * 512; i++) memory.writeU64(PML4_ADDR + 0x2000 + i * 8, (BigInt(i) << 21n) | 0x83n);
  memory.write(CODE_ADDR, code);
  const zero = 0n;
  const boot: BootCpuState = {
    regs: {
      rax: zero, rbx: zero, rcx: opts.rcx ?? zero, rdx: zero, rsi: zero, rdi: zero, rsp: BigInt(STACK_TOP), rbp: zero,
      r8: zero, r9: zero, r10: zero, r11: zero, r12: zero, r13: zero, r14: zero, r15: zero,
      rip: BigInt(CODE_ADDR + (opts.entry ?? 0)), rflags: 2n,
    },
    sregs: {
      cs: code64, ds: data, es: data, fs: data, gs: data, ss: data, tr: tss, ldt: noLdt,
      gdt: { base: BigInt(GDT_ADDR), limit: 4 * 8 - 1 },
      idt: { base: 0n, limit: 0 },
      cr0: 0x8000_0011n, // PG | ET | PE
      cr2: zero,
      cr3: BigInt(PML4_ADDR),
      cr4: 0x20n, // PAE
      cr8: zero,
      efer: 0x500n, // LMA | LME
      apicBase: 0xfee0_0900n, // LAPIC at 0xfee00000, enabled, BSP
    },
  };
  return { memory, boot };
}

/** A dispatcher that records what the guest does and lets a test react. */
export class RecordingDispatcher implements ExitDispatcher {
  /** Bytes written to PORT_OUT, per vCPU. */
  readonly out = new Map<number, number[]>();
  readonly mmioLog: { cpu: number; address: number; data: number[]; isWrite: boolean }[] = [];
  onPio: ((cpu: number, port: number, data: Uint8Array, isWrite: boolean) => void) | undefined;
  onMmioRead: ((address: number, data: Uint8Array) => void) | undefined;

  pio(cpu: number, port: number, data: Uint8Array, isWrite: boolean): void {
    if (isWrite && port === PORT_OUT) {
      const list = this.out.get(cpu) ?? [];
      list.push(...data);
      this.out.set(cpu, list);
    }
    this.onPio?.(cpu, port, data, isWrite);
  }

  mmio(cpu: number, address: number, data: Uint8Array, isWrite: boolean): void {
    if (!isWrite) this.onMmioRead?.(address, data);
    this.mmioLog.push({ cpu, address, data: [...data], isWrite });
  }

  text(cpu = 0): string {
    return String.fromCharCode(...(this.out.get(cpu) ?? []));
  }
}

/** The KVM engine, or undefined after marking the test skipped with the reason. */
export function kvmOrSkip(t: TestContext): KvmEngine | undefined {
  try {
    return new KvmEngine();
  } catch (e) {
    if (e instanceof EngineUnavailableError) {
      t.skip(e.message);
      return undefined;
    }
    throw e;
  }
}

/**
 * Boots the SMP pair of guests on 4 vCPUs and checks the outcome: only the
 * BSP runnable at first, each AP started through INIT/SIPI by the BSP, and
 * every vCPU writing its letter (B for the BSP, A for each AP). `created`
 * runs right after createVm, for checks of the engine at that point.
 */
export async function runSmpGuest(engine: KvmEngine, created: () => void = () => {}): Promise<void> {
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('smp-bsp'));
  memory.write(AP_CODE_ADDR, guestBytes('smp-ap'));
  const d = new RecordingDispatcher();
  const vm = await engine.createVm({ memory, cpus: 4, boot, dispatcher: d });
  created();
  assert.ok(vm instanceof KvmVm);
  assert.deepEqual(vm.initialMpStates(), [KVM_MP_STATE.RUNNABLE, KVM_MP_STATE.UNINITIALIZED, KVM_MP_STATE.UNINITIALIZED, KVM_MP_STATE.UNINITIALIZED]);
  d.onPio = () => {
    if ([0, 1, 2, 3].every((c) => d.text(c).length > 0)) vm.requestStop({ reason: 'host-stop' });
  };
  const timer = setTimeout(() => vm.requestStop({ reason: 'engine-error', cpu: -1, message: 'timeout' }), 20_000);
  const stop = await vm.run();
  clearTimeout(timer);
  assert.deepEqual(stop, { reason: 'host-stop' });
  assert.deepEqual([0, 1, 2, 3].map((c) => d.text(c)), ['B', 'A', 'A', 'A']);
  await vm.close();
}
