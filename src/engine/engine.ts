import type { GuestMemory, MemoryBacking } from '../memory/index.js';
import type { IrqLine } from '../bus/index.js';

/**
 * The contract between the machine model and a CPU engine (kvm or soft).
 * Devices, boot, ACPI and management never import an engine; the machine
 * builds one through this interface and receives guest exits as data.
 */

/** 64-bit register file as the boot path sets it and as reports print it. */
export interface Registers {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

export interface Segment {
  base: bigint;
  limit: number;
  selector: number;
  /** Access byte type field (4 bits) and flags, as in the descriptor. */
  type: number;
  present: boolean;
  dpl: number;
  /** Descriptor type: 1 = code/data, 0 = system. */
  s: boolean;
  /** Default operation size (D/B). */
  db: boolean;
  /** 64-bit code segment. */
  l: boolean;
  /** Granularity (limit in 4 KiB units). */
  g: boolean;
  avl: boolean;
}

export interface SpecialRegisters {
  cs: Segment; ds: Segment; es: Segment; fs: Segment; gs: Segment; ss: Segment;
  tr: Segment; ldt: Segment;
  gdt: { base: bigint; limit: number };
  idt: { base: bigint; limit: number };
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint;
  apicBase: bigint;
}

/** The boot CPU's state at the kernel entry point, produced by the boot path. */
export interface BootCpuState {
  regs: Registers;
  sregs: SpecialRegisters;
}

/**
 * Where guest port I/O and MMIO go. `data.length` is the access size; a read
 * fills `data`, a write consumes it. Called on the machine's thread; must not
 * throw for any guest-chosen address or size.
 */
export interface ExitDispatcher {
  pio(cpu: number, port: number, data: Uint8Array, isWrite: boolean): void;
  mmio(cpu: number, address: number, data: Uint8Array, isWrite: boolean): void;
}

/** Why a VM stopped running. */
export type VmStop =
  | { reason: 'poweroff' }
  | { reason: 'reset' }
  /** Triple fault or other architectural shutdown of a vCPU. */
  | { reason: 'triple-fault'; cpu: number; regs?: Registers }
  /** The engine could not continue (emulation failure, KVM internal error, bad state). */
  | { reason: 'engine-error'; cpu: number; message: string; regs?: Registers }
  /** Stopped from the host side (Ctrl-A X, API stop, signal). */
  | { reason: 'host-stop' };

export interface EngineVmConfig {
  memory: GuestMemory;
  cpus: number;
  boot: BootCpuState;
  dispatcher: ExitDispatcher;
}

/** A VM instance inside an engine. */
export interface EngineVm {
  /** Line into the engine's IOAPIC pin `gsi`. */
  irqLine(gsi: number): IrqLine;
  /** Runs all vCPUs until the VM stops; resolves with why. Call once. */
  run(): Promise<VmStop>;
  /** Asks the VM to stop; run() resolves with `stop`. Safe from any callback. */
  requestStop(stop: VmStop): void;
  pause(): Promise<void>;
  resume(): void;
  /**
   * Delivers guest writes of `value` (`length` bytes, little-endian) at MMIO
   * `address` to `handler` on the machine thread, without stopping the vCPU
   * where the engine can (KVM: an ioeventfd with datamatch). Several writes may
   * arrive as one call, after the guest has moved on, so the handler must act on
   * state (a virtqueue's avail index), not count calls. Writes of any other
   * value or size at `address` still reach the ExitDispatcher. An engine
   * without such a path may omit the method, or return having registered
   * nothing: the write then reaches the dispatcher like any other. Throws a
   * RangeError for an address inside guest RAM, a bad length or a value that
   * does not fit. Returns the function that unregisters it.
   */
  addMmioNotifier?(address: number, length: 1 | 2 | 4 | 8, value: number, handler: () => void): () => void;
  /** Engine figures for status and metrics (exits, instructions…). */
  stats(): Record<string, number>;
  /** Releases host resources (fds, threads, mappings), notifiers included. */
  close(): Promise<void>;
}

export interface Engine {
  readonly name: 'kvm' | 'soft';
  /** Largest vCPU count this engine supports here. */
  maxCpus(): number;
  /**
   * Kernel command-line parameters a Linux guest needs on this engine's
   * virtual CPU (e.g. a TSC frequency Linux cannot find by itself). The
   * machine appends each one whose key the user's command line lacks.
   */
  kernelArgs?(cpus: number): string[];
  /** Where this engine needs guest RAM to live (KVM: mmap'ed host memory). */
  memoryBacking(): MemoryBacking;
  /** Creates a VM over `memory`. Memory must come from `memoryBacking()`. */
  createVm(config: EngineVmConfig): Promise<EngineVm>;
}

/** An engine that cannot run here, with a reason a user can act on. */
export class EngineUnavailableError extends Error {
  override name = 'EngineUnavailableError';
}
