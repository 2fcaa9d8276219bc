/**
 * The soft engine: typevisor's own x86-64 CPU behind the Engine interface,
 * for hosts where KVM is missing or emulates guest kernel code.
 *
 * All vCPUs run on the machine's thread in bounded slices (SLICE_MS of work,
 * then setImmediate), so the event loop — console, API, timers — stays live.
 * Port I/O goes synchronously to the ExitDispatcher (devices live on this
 * thread); the LAPIC and IOAPIC pages are handled here, as KVM's in-kernel
 * irqchip does, and other non-RAM accesses go to dispatcher.mmio. A vCPU in
 * HLT costs nothing: when every vCPU sleeps the loop waits on a host timer
 * set to the nearest LAPIC deadline, or until a device or IPI wakes it.
 */
import { writeFileSync } from 'node:fs';
import { type MemoryBacking, WasmMemoryBacking } from '../../memory/index.js';
import type { IrqLine } from '../../bus/index.js';
import type { BootCpuState, Engine, EngineVm, EngineVmConfig, ExitDispatcher, Registers, Segment, VmStop } from '../engine.js';
import {
  createInterruptControllers, GuestTsc, IOAPIC_MMIO_SIZE, LAPIC_DEFAULT_BASE, LAPIC_MMIO_SIZE, mergeTimeCpuid, MSR_APIC_BASE,
  MSR_TSC_DEADLINE, TSC_HZ_DEFAULT, tscEarlyKhzArgument, type InterruptControllers, type Lapic,
} from './apic/index.js';
import { CodeCache, Cpu, EXIT_EXCEPTION, EXIT_HLT } from './cpu.js';
import { placeInWasm } from './wasm/region.js';
import { getRflags } from './flags.js';
import { CpuException, hex, type PageFrame, type SoftPlatform } from './mmu.js';
import { MachineMmu, PhysicalPages, SystemError } from './paging.js';
import { FLAG_IF, LF_NONE, SEG_CS, SEG_DS, SEG_ES, SEG_FS, SEG_GS, SEG_SS } from './state.js';
import {
  ATTR_DB, ATTR_G, ATTR_L, ATTR_P, ATTR_S, deliverException, deliverInterrupt, setCpl, setSegment, startupAp, SystemState,
  TripleFault, VEC_NMI, type MachineHooks,
} from './system.js';

/** IOAPIC MMIO page (the MADT's address; src/arch/x86_64/layout.ts IOAPIC_ADDR). */
const IOAPIC_BASE = 0xfec0_0000;
/** IA32_TIME_STAMP_COUNTER (SDM Vol. 4, Table 2-2). */
const MSR_TSC = 0x10;
/** Host time one scheduling slice may run before yielding to the event loop. */
const SLICE_MS = 4;
/**
 * Instructions a vCPU runs between looks at the clock, the LAPIC and the
 * other vCPUs: the bound on interrupt latency (~0.1 ms at compiled speed,
 * under 1 ms interpreted). Every chunk's end breaks the compiled regions'
 * chains and runs its last block's instructions one at a time, so it is
 * not small: 16,384 against 2,048 took a Linux boot from ~11.0 to ~10.1 s
 * and the shell loop from ~3.7 to ~2.5 s per 20,000 iterations (README).
 */
const CHUNK = 16384;
/** vCPUs the soft engine offers (one xAPIC ID byte; all run on one thread today). */
const MAX_CPUS = 64;
/** Mean instructions between guest RIP samples (TYPEVISOR_SOFT_PROFILE_INTERVAL overrides). */
const PROFILE_INTERVAL = 20_000;
const GPR_NAMES = ['rax', 'rcx', 'rdx', 'rbx', 'rsp', 'rbp', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15'] as const;

export interface SoftEngineOptions {
  /** Where one-time reports go (unimplemented instructions); default stderr. */
  log?: (message: string) => void;
  /**
   * Milliseconds between progress lines (RIP, CPL, instructions per vCPU)
   * on `log`; 0 = none. Default from TYPEVISOR_SOFT_TRACE_MS.
   */
  traceMs?: number;
  /**
   * Ends the VM (host-stop, with a log line) once this many instructions have
   * retired: bounded runs for tests and measurements. Default from
   * TYPEVISOR_SOFT_INSTRUCTION_LIMIT; none when unset.
   */
  instructionLimit?: number;
}

export class SoftEngine implements Engine {
  readonly name = 'soft' as const;

  constructor(private readonly options: SoftEngineOptions = {}) {}

  maxCpus(): number {
    return MAX_CPUS;
  }

  /** RAM in a shared WebAssembly.Memory (one per VM), where code compiled to WebAssembly can reach it; still SharedArrayBuffers. */
  memoryBacking(): MemoryBacking {
    return new WasmMemoryBacking();
  }

  /**
   * Linux reads the TSC frequency from CPUID 0x15/0x16 only on Intel CPUs and
   * this CPU does not claim to be one (README.md), and with no PIT or HPET to
   * calibrate against it would hang at t = 0: tell it the rate. The
   * clocksource watchdog checks the TSC against jiffies, which lag whenever a
   * slow guest takes its timer interrupts late; it then marks the TSC unstable
   * and falls back to refined-jiffies, on which guest time drifts from host
   * time (a `sleep 5` measured 6.8 s of guest uptime in 1.8 s of host time).
   * The guest TSC follows host time by construction (GuestTsc), so it is
   * reliable, with one vCPU or several.
   */
  kernelArgs(_cpus: number): string[] {
    return [tscEarlyKhzArgument(TSC_HZ_DEFAULT), 'tsc=reliable'];
  }

  createVm(config: EngineVmConfig): Promise<EngineVm> {
    if (!Number.isInteger(config.cpus) || config.cpus < 1 || config.cpus > MAX_CPUS) {
      return Promise.reject(new RangeError(`soft engine: ${config.cpus} vCPUs requested, 1..${MAX_CPUS} supported`));
    }
    return Promise.resolve(new SoftVm(config, this.options));
  }
}

interface Vcpu {
  index: number;
  cpu: Cpu;
  sys: SystemState;
  lapic: Lapic;
}

/** Engine figures (stats()). */
interface Counters {
  pio: number;
  mmio: number;
  apicMmio: number;
  hlt: number;
  exceptions: number;
  interrupts: number;
  slices: number;
}

export class SoftVm implements EngineVm {
  readonly vcpus: Vcpu[] = [];
  readonly irq: InterruptControllers;
  private readonly dispatcher: ExitDispatcher;
  private stop: VmStop | undefined;
  private resolveRun: ((s: VmStop) => void) | undefined;
  private running = false;
  private paused = false;
  private pauseWaiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private readonly counters: Counters = { pio: 0, mmio: 0, apicMmio: 0, hlt: 0, exceptions: 0, interrupts: 0, slices: 0 };
  private runNs = 0;
  private readonly traceMs: number;
  private readonly instructionLimit: number;
  private lastTrace = performance.now();
  private readonly log: (m: string) => void;
  /** Runs one chunk of a vCPU: step(), or step() under the guest profiler. */
  private readonly stepVcpu: (v: Vcpu) => boolean;
  private readonly profile: GuestProfile | undefined;

  constructor(config: EngineVmConfig, options: SoftEngineOptions = {}) {
    this.dispatcher = config.dispatcher;
    const profilePath = process.env.TYPEVISOR_SOFT_PROFILE;
    if (profilePath) {
      const profile = new GuestProfile(profilePath, Number(process.env.TYPEVISOR_SOFT_PROFILE_INTERVAL) || PROFILE_INTERVAL,
        Number(process.env.TYPEVISOR_SOFT_PROFILE_STACK) || 0, Number(process.env.TYPEVISOR_SOFT_PROFILE_AFTER) || 0, config.cpus);
      this.profile = profile;
      this.stepVcpu = (v) => profile.step(v, (chunk) => this.step(v, chunk));
    } else this.stepVcpu = (v) => this.step(v, CHUNK);
    this.traceMs = options.traceMs ?? (Number(process.env.TYPEVISOR_SOFT_TRACE_MS) || 0);
    this.instructionLimit = options.instructionLimit ?? (Number(process.env.TYPEVISOR_SOFT_INSTRUCTION_LIMIT) || Infinity);
    this.log = options.log ?? ((m) => process.stderr.write(`typevisor: ${m}\n`));
    const tsc = new GuestTsc();
    this.irq = createInterruptControllers({ cpus: config.cpus, tsc, wake: (cpu) => this.wake(cpu) });
    const phys = new PhysicalPages(config.memory);
    const code = new CodeCache();
    for (let index = 0; index < config.cpus; index++) {
      const lapic = this.irq.lapics[index] as Lapic;
      const mmu = new MachineMmu(phys);
      const platform: SoftPlatform = {
        translate: (vpn: number, access: number): PageFrame => mmu.translate(vpn, access),
        syscall: () => { throw new SystemError('SYSCALL reached the process-mode path'); },
        mmio: (address, data, isWrite) => this.mmio(index, address, data, isWrite),
      };
      const cpu = new Cpu(platform);
      // Registers and TLBs beside the RAM in its WebAssembly.Memory (WasmMemoryBacking): regions then compile to WebAssembly.
      const wasm = config.memory.regions[0]?.wasm?.memory;
      // Regions compiled within a slice are instantiated together at its end (one module: cpu.ts deferWasm).
      if (wasm !== undefined && placeInWasm(cpu, wasm)) cpu.deferWasm = true;
      cpu.joinCodeCache(code);
      if (options.log) cpu.log = options.log;
      mmu.cpu = cpu;
      const sys = new SystemState(mmu, this.hooks(index, lapic, tsc));
      cpu.sys = sys;
      const v: Vcpu = { index, cpu, sys, lapic };
      this.vcpus.push(v);
      if (index === 0) loadBootState(v, config.boot);
      else {
        // APs wait for INIT and STARTUP (SDM Vol. 3A, 9.4.4).
        sys.waitForSipi = true;
        cpu.halted = true;
      }
    }
  }

  private hooks(index: number, lapic: Lapic, tsc: GuestTsc): MachineHooks {
    return {
      pio: (port, data, isWrite) => {
        this.counters.pio++;
        this.dispatcher.pio(index, port, data, isWrite);
      },
      rdmsr: (msr) => {
        if (msr === MSR_TSC) return tsc.read();
        if (msr === MSR_APIC_BASE) return lapic.readApicBase();
        if (msr === MSR_TSC_DEADLINE) return lapic.readTscDeadline();
        return undefined;
      },
      wrmsr: (msr, value) => {
        if (msr === MSR_TSC) { tsc.write(value); return true; }
        if (msr === MSR_APIC_BASE) return lapic.writeApicBase(value);
        if (msr === MSR_TSC_DEADLINE) { lapic.writeTscDeadline(value); return true; }
        return undefined;
      },
      cpuid: (leaf, subleaf, out) => mergeTimeCpuid(leaf, subleaf, out, { tscHz: tsc.hz, apicId: index, apicEnabled: lapic.hardwareEnabled }),
      rdtsc: (out) => tsc.readSplit(out),
      readCr8: () => lapic.readCr8(),
      writeCr8: (value) => {
        lapic.writeCr8(value);
        this.vcpus[index]?.cpu.requestStop();
      },
      interruptWindow: () => this.vcpus[index]?.cpu.requestStop(),
    };
  }

  /** Physical accesses outside RAM: this vCPU's LAPIC page, the IOAPIC page, else the machine's MMIO. */
  private mmio(index: number, address: number, data: Uint8Array, isWrite: boolean): void {
    const v = this.vcpus[index] as Vcpu;
    if (address >= LAPIC_DEFAULT_BASE && address < LAPIC_DEFAULT_BASE + LAPIC_MMIO_SIZE && v.lapic.hardwareEnabled) {
      this.counters.apicMmio++;
      if (isWrite) {
        v.lapic.write(address - LAPIC_DEFAULT_BASE, data);
        // EOI, TPR or an IPI may open an interrupt window: end the chunk to look.
        v.cpu.requestStop();
      } else v.lapic.read(address - LAPIC_DEFAULT_BASE, data);
      return;
    }
    if (address >= IOAPIC_BASE && address < IOAPIC_BASE + IOAPIC_MMIO_SIZE) {
      this.counters.apicMmio++;
      if (isWrite) this.irq.ioapic.write(address - IOAPIC_BASE, data);
      else this.irq.ioapic.read(address - IOAPIC_BASE, data);
      return;
    }
    this.counters.mmio++;
    this.dispatcher.mmio(index, address, data, isWrite);
  }

  irqLine(gsi: number): IrqLine {
    return this.irq.ioapic.irqLine(gsi);
  }

  /** A vCPU may have something to take: end its chunk, and end the loop's sleep. */
  private wake(index: number): void {
    this.vcpus[index]?.cpu.requestStop();
    if (this.timer !== undefined && this.running && !this.paused) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.schedule(0);
    }
  }

  run(): Promise<VmStop> {
    if (this.running || this.resolveRun) return Promise.reject(new Error('soft engine: run() called twice'));
    return new Promise<VmStop>((resolve) => {
      this.resolveRun = resolve;
      this.running = true;
      this.schedule(0);
    });
  }

  private schedule(delayMs: number): void {
    if (this.immediate !== undefined || this.timer !== undefined) return;
    if (delayMs <= 0) this.immediate = setImmediate(() => { this.immediate = undefined; this.slice(); });
    else this.timer = setTimeout(() => { this.timer = undefined; this.slice(); }, delayMs);
  }

  private finish(): void {
    const stop = this.stop ?? { reason: 'host-stop' };
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    if (this.profile !== undefined) this.writeProfile(this.profile);
    const r = this.resolveRun;
    this.resolveRun = undefined;
    for (const w of this.pauseWaiters.splice(0)) w();
    r?.(stop);
  }

  /** One scheduling slice: round-robin chunks over runnable vCPUs for up to SLICE_MS. */
  private slice(): void {
    if (this.stop !== undefined) { this.finish(); return; }
    if (this.paused) {
      for (const w of this.pauseWaiters.splice(0)) w();
      return;
    }
    this.counters.slices++;
    const started = performance.now();
    let any = true;
    try {
      while (any && performance.now() - started < SLICE_MS) {
        any = false;
        for (const v of this.vcpus) {
          if (this.stepVcpu(v)) any = true;
          if (this.stop !== undefined) break;
        }
        if (this.stop !== undefined) break;
      }
      for (const v of this.vcpus) v.cpu.flushWasm();
    } catch (e) {
      this.internalError(e);
    }
    this.runNs += (performance.now() - started) * 1e6;
    if (this.stop === undefined && this.instructionLimit !== Infinity) {
      const n = this.vcpus.reduce((k, v) => k + v.cpu.icount, 0);
      if (n >= this.instructionLimit) {
        this.log(`soft engine: instruction limit ${this.instructionLimit} reached (${n} retired; vCPU 0 at 0x${hex((this.vcpus[0] as Vcpu).cpu.rip)})`);
        this.requestStop({ reason: 'host-stop' });
      }
    }
    if (this.traceMs > 0 && performance.now() - this.lastTrace >= this.traceMs) {
      this.lastTrace = performance.now();
      this.log(`soft trace: heap ${Math.round(process.memoryUsage().heapUsed / 1048576)} MiB; ${this.vcpus.map((v) => `cpu${v.index} rip=0x${hex(v.cpu.rip)} cpl=${v.cpu.cpl} n=${v.cpu.icount} code=${v.cpu.codePages}${v.cpu.halted ? ' hlt' : ''}`).join('; ')}`);
    }
    if (this.stop !== undefined) { this.finish(); return; }
    if (this.paused) {
      for (const w of this.pauseWaiters.splice(0)) w();
      return;
    }
    if (any) { this.schedule(0); return; }
    // Every vCPU sleeps: wait for the nearest timer deadline or a wake().
    const now = this.irq.tsc.nowNs();
    let next = Infinity;
    for (const v of this.vcpus) {
      const d = v.lapic.nextDeadlineNs();
      if (d !== undefined && d < next) next = d;
    }
    if (next === Infinity) {
      // Nothing can wake the VM but a device or the host; keep a slow heartbeat so a lost wake cannot hang it.
      this.schedule(100);
    } else this.schedule(Math.max(1, Math.ceil((next - now) / 1e6)));
  }

  /**
   * Runs one chunk of vCPU `v` after taking what its LAPIC holds (INIT,
   * SIPI, NMI, a maskable interrupt when RFLAGS.IF allows). Returns false
   * when the vCPU sleeps (HLT or waiting for SIPI) with nothing to take.
   */
  private step(v: Vcpu, chunk: number): boolean {
    const { cpu, sys, lapic } = v;
    lapic.poll();
    if (lapic.takeInit()) {
      if (v.index !== 0) {
        sys.waitForSipi = true;
        cpu.halted = true;
      }
    }
    if (sys.waitForSipi) {
      const vector = lapic.takeSipi();
      if (vector < 0) return false;
      startupAp(cpu, vector);
    }
    try {
      if (lapic.takeNmi()) {
        this.counters.interrupts++;
        deliverInterrupt(cpu, VEC_NMI);
      }
      const ifSet = (cpu.flagsBase & FLAG_IF) !== 0;
      if (ifSet && !sys.shadow && lapic.hasInterrupt()) {
        this.counters.interrupts++;
        deliverInterrupt(cpu, lapic.acknowledge());
      }
      if (cpu.halted) return false;
      const shadow = sys.shadow;
      const r = cpu.run(shadow ? 1 : chunk);
      if (shadow) sys.shadow = false;
      if (r === EXIT_HLT) this.counters.hlt++;
      else if (r === EXIT_EXCEPTION) {
        this.counters.exceptions++;
        const e = cpu.exception as CpuException;
        if (this.traceMs > 0 && this.counters.exceptions <= 64) this.log(`soft trace: cpu${v.index} exception ${e.vector} error 0x${e.errorCode.toString(16)} at 0x${hex(cpu.rip)}: ${e.message}`);
        deliverException(cpu, e);
      }
    } catch (e) {
      if (e instanceof TripleFault) {
        this.requestStop({ reason: 'triple-fault', cpu: v.index, regs: registersOf(cpu) });
        cpu.log(`vCPU ${v.index}: ${e.message}`);
        return false;
      }
      throw Object.assign(e instanceof Error ? e : new Error(String(e)), { vcpu: v.index });
    }
    return true;
  }

  private writeProfile(p: GuestProfile): void {
    const instructions = this.vcpus.reduce((n, v) => n + v.cpu.icount, 0);
    try {
      writeFileSync(p.path, p.json(instructions, this.runNs / 1e6));
      this.log(`soft engine: ${p.sampleCount} guest RIP samples written to ${p.path}`);
    } catch (e) {
      this.log(`soft engine: cannot write the guest profile to ${p.path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private internalError(e: unknown): void {
    const index = typeof e === 'object' && e !== null && 'vcpu' in e && typeof e.vcpu === 'number' ? e.vcpu : 0;
    const v = this.vcpus[index] as Vcpu;
    const what = e instanceof SystemError ? e.message : e instanceof Error ? `internal error: ${e.message}` : String(e);
    const message = `soft engine: vCPU ${index} at 0x${hex(v.cpu.rip)}: ${what}`;
    this.requestStop({ reason: 'engine-error', cpu: index, message, regs: registersOf(v.cpu) });
  }

  requestStop(stop: VmStop): void {
    if (this.stop !== undefined) return;
    this.stop = stop;
    for (const v of this.vcpus) v.cpu.requestStop();
    if (this.running && this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.schedule(0);
    }
  }

  pause(): Promise<void> {
    if (!this.running || this.paused) { this.paused = true; return Promise.resolve(); }
    this.paused = true;
    for (const v of this.vcpus) v.cpu.requestStop();
    if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; }
    if (this.immediate === undefined) return Promise.resolve();
    return new Promise((resolve) => this.pauseWaiters.push(resolve));
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (this.running) this.schedule(0);
  }

  stats(): Record<string, number> {
    const instructions = this.vcpus.reduce((n, v) => n + v.cpu.icount, 0);
    const seconds = this.runNs / 1e9;
    return {
      instructions,
      instructionsPerSecond: seconds > 0 ? Math.round(instructions / seconds) : 0,
      exitsPio: this.counters.pio,
      exitsMmio: this.counters.mmio,
      apicMmio: this.counters.apicMmio,
      hlt: this.counters.hlt,
      exceptions: this.counters.exceptions,
      interrupts: this.counters.interrupts,
      slices: this.counters.slices,
    };
  }

  close(): Promise<void> {
    if (this.running) this.requestStop({ reason: 'host-stop' });
    return Promise.resolve();
  }
}

/**
 * The developer's guest profiler (TYPEVISOR_SOFT_PROFILE=<file>; README.md):
 * samples each vCPU's RIP and CPL every `interval` retired instructions on
 * average (jittered, so loops cannot alias with it) by ending a chunk exactly
 * there, and adds to the sample the host time the vCPU ran since the previous
 * one. With `stackWords`, a kernel-mode sample also reads that many words
 * from RSP up and counts the distinct ones that look like kernel text
 * addresses: return addresses, and stale values too (a heuristic caller
 * view; Linux 6.1 unwinds with ORC, not frame pointers). Written as JSON when
 * the VM stops.
 */
class GuestProfile {
  /** "cpl:rip" (rip as unsigned hex) → [samples, host ms]. */
  private readonly samples = new Map<string, [number, number]>();
  /** Per vCPU: the instruction count of the next sample, host ms run since the last. */
  private readonly due: number[];
  private readonly ms: number[];
  /** Stack words that looked like kernel text addresses → samples they appeared in. */
  private readonly stack = new Map<string, number>();
  private readonly seen = new Set<string>();
  sampleCount = 0;

  /** `after`: instructions each vCPU retires before its first sample. */
  constructor(readonly path: string, readonly interval: number, readonly stackWords: number, after: number, cpus: number) {
    this.due = Array.from({ length: cpus }, () => after + this.gap());
    this.ms = new Array<number>(cpus).fill(0);
  }

  private gap(): number {
    return 1 + Math.floor(Math.random() * 2 * this.interval);
  }

  step(v: Vcpu, run: (chunk: number) => boolean): boolean {
    const { cpu, index } = v;
    let due = this.due[index] as number;
    const started = performance.now();
    const r = run(Math.max(1, Math.min(CHUNK, due - cpu.icount)));
    // Before the first sample is near (TYPEVISOR_SOFT_PROFILE_AFTER), time does not count.
    if (due - cpu.icount <= 2 * this.interval) this.ms[index] = (this.ms[index] as number) + performance.now() - started;
    if (cpu.icount >= due) {
      const key = `${cpu.cpl}:${hex(cpu.rip)}`;
      const s = this.samples.get(key);
      const ms = this.ms[index] as number;
      if (s === undefined) this.samples.set(key, [1, ms]);
      else { s[0]++; s[1] += ms; }
      this.ms[index] = 0;
      this.sampleCount++;
      if (this.stackWords > 0 && cpu.cpl === 0) this.scanStack(cpu);
      while (due <= cpu.icount) due += this.gap();
      this.due[index] = due;
    }
    return r;
  }

  private scanStack(cpu: Cpu): void {
    const seen = this.seen;
    seen.clear();
    const rsp = (cpu.gpr[8] as number) >>> 0;
    const sp = ((cpu.gpr[9] as number) | 0) * 0x1_0000_0000 + rsp;
    try {
      for (let k = 0; k < this.stackWords; k++) {
        const lo = cpu.read64(sp + 8 * k) >>> 0;
        // 0xffffffff80000000 and up: the kernel image and modules.
        if (cpu.hi === -1 && lo >= 0x8000_0000) seen.add(`ffffffff${lo.toString(16)}`);
      }
    } catch (e) {
      if (!(e instanceof CpuException)) throw e;
    }
    for (const a of seen) this.stack.set(a, (this.stack.get(a) ?? 0) + 1);
  }

  json(instructions: number, runMs: number): string {
    const samples: Record<string, [number, number]> = {};
    for (const [k, [n, ms]] of [...this.samples].sort((a, b) => b[1][0] - a[1][0])) samples[k] = [n, Math.round(ms * 1000) / 1000];
    const stack = Object.fromEntries([...this.stack].sort((a, b) => b[1] - a[1]));
    return JSON.stringify({ interval: this.interval, instructions, runMs: Math.round(runMs), sampleCount: this.sampleCount, samples, stack });
  }
}

function attrOf(s: Segment): number {
  return (s.type & 0xf) | (s.s ? ATTR_S : 0) | ((s.dpl & 3) << 5) | (s.present ? ATTR_P : 0) | (s.avl ? 0x100 : 0) |
    (s.l ? ATTR_L : 0) | (s.db ? ATTR_DB : 0) | (s.g ? ATTR_G : 0);
}

/** The BSP's state at the kernel entry, as the boot path built it for any engine. */
function loadBootState(v: Vcpu, boot: BootCpuState): void {
  const { cpu, sys } = v;
  const r = boot.regs;
  GPR_NAMES.forEach((name, k) => cpu.setReg64(k, r[name]));
  cpu.flagsBase = Number(r.rflags & 0xffffffffn) | 2;
  cpu.lfOp = LF_NONE;
  const s = boot.sregs;
  cpu.cr0 = Number(BigInt.asUintN(32, s.cr0));
  cpu.cr3 = Number(s.cr3);
  cpu.cr4 = Number(BigInt.asUintN(32, s.cr4));
  cpu.cr2 = 0;
  cpu.efer = Number(BigInt.asUintN(32, s.efer));
  sys.gdtBase = Number(BigInt.asIntN(64, s.gdt.base));
  sys.gdtLimit = s.gdt.limit;
  sys.idtBase = Number(BigInt.asIntN(64, s.idt.base));
  sys.idtLimit = s.idt.limit;
  sys.trSel = s.tr.selector;
  sys.trBase = Number(s.tr.base);
  sys.trLimit = s.tr.limit;
  sys.ldtSel = s.ldt.selector;
  sys.ldtBase = Number(s.ldt.base);
  sys.ldtLimit = s.ldt.limit;
  setCpl(cpu, s.cs.dpl & 3);
  const segs: [number, Segment][] = [[SEG_ES, s.es], [SEG_SS, s.ss], [SEG_DS, s.ds], [SEG_FS, s.fs], [SEG_GS, s.gs], [SEG_CS, s.cs]];
  for (const [seg, d] of segs) setSegment(cpu, seg, d.selector, Number(BigInt.asIntN(64, d.base)), d.limit, attrOf(d));
  cpu.rip = Number(BigInt.asIntN(64, r.rip));
  cpu.flushTlb();
}

/** The register file for stop reports. */
export function registersOf(cpu: Cpu): Registers {
  const g = (k: number): bigint => cpu.reg64(k);
  return {
    rax: g(0), rcx: g(1), rdx: g(2), rbx: g(3), rsp: g(4), rbp: g(5), rsi: g(6), rdi: g(7),
    r8: g(8), r9: g(9), r10: g(10), r11: g(11), r12: g(12), r13: g(13), r14: g(14), r15: g(15),
    rip: BigInt.asUintN(64, BigInt(cpu.rip)), rflags: BigInt(getRflags(cpu) >>> 0),
  };
}
