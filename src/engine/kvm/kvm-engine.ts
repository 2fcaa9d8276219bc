import { Worker } from 'node:worker_threads';
import type { IrqLine } from '../../bus/index.js';
import { mmapBacking, type GuestMemory, type MemoryBacking } from '../../memory/index.js';
import {
  KVM, KVM_API_VERSION, KVM_CAP, KVM_PIT_SPEAKER_DUMMY, NativeError, O_CLOEXEC, O_RDWR, close, getpid, ioctl, ioctlBuf,
  kvm_cpuid2, kvm_cpuid_entry2, kvm_irq_level, kvm_pit_config, kvm_userspace_memory_region, open, schedYield, sigrtmin, tgkill,
} from '../../native/index.js';
import { EngineUnavailableError, type Engine, type EngineVm, type EngineVmConfig, type VmStop } from '../engine.js';
import { decodeCpuid, encodeCpuid, vcpuCpuid, type CpuidEntry } from './cpuid.js';
import { MmioNotifiers, checkNotifier } from './notifiers.js';
import {
  CMD_EXIT, CMD_HOLD, CMD_PAUSE, CMD_RUN, CMD_STOP, DOORBELL_BYTES, EXIT_KINDS, REQ_PIO, STATE_REPLY, STATE_REQUEST, STAT, W, mailbox,
  type Mailbox, type VcpuMessage, type VcpuWorkerData,
} from './mailbox.js';
import { SpareVcpuThread, VCPU_WORKER } from './vcpu-thread.js';

export const KVM_DEVICE = '/dev/kvm';

/** Atomics.waitAsync (Node 16+, ES2024; the project's lib is ES2023). */
type WaitAsync = (
  ta: Int32Array, index: number, value: number, timeout?: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * Three pages KVM needs for the real-mode TSS on Intel VMX (KVM_SET_TSS_ADDR),
 * and the page after them for the EPT identity map (KVM_SET_IDENTITY_MAP_ADDR):
 * just below the 4 GiB boundary, in the MMIO hole under the BIOS area, where
 * QEMU and Firecracker put them; no RAM or device lives there.
 */
const KVM_TSS_ADDRESS = 0xfffb_d000;
const KVM_IDENTITY_MAP_ADDRESS = 0xfffb_c000;
/** Host page size: memory slots start and end on it. */
const HOST_PAGE = 4096;
/** GSIs of the in-kernel IOAPIC (KVM's default routing: 0..23; 0..15 also reach the PIC). */
const KVM_IOAPIC_PINS = 24;
/** Entries asked of KVM_GET_SUPPORTED_CPUID; KVM answers E2BIG if it has more. */
const MAX_CPUID_ENTRIES = 256;
/**
 * The kick signal: a real-time signal nothing else in Node uses. It is
 * blocked in vCPU threads except inside KVM_RUN and never delivered, so it
 * needs no handler (README.md, "Kicking a vCPU").
 */
const KICK_SIGNAL_OFFSET = 6;

/** Turns a failure to open /dev/kvm into advice a user can act on. */
export function kvmOpenError(path: string, e: unknown): Error {
  if (!(e instanceof NativeError)) return e instanceof Error ? e : new Error(String(e));
  switch (e.code) {
    case 'ENOENT':
    case 'ENXIO':
    case 'ENODEV':
      return new EngineUnavailableError(`${path} is not present: this host has no KVM (load kvm_intel/kvm_amd, enable virtualization in the firmware, or use the soft engine)`);
    case 'EACCES':
    case 'EPERM':
      return new EngineUnavailableError(`no permission to open ${path}: add your user to the kvm group (sudo usermod -aG kvm $USER, then log in again) or use the soft engine`);
    default:
      return new EngineUnavailableError(`cannot open ${path}: ${e.message}`);
  }
}

export interface KvmEngineOptions {
  /** The KVM device; tests point it elsewhere. */
  devicePath?: string;
  /**
   * Polling budgets in µs (README.md, "Serving exits"): how long the machine
   * thread keeps polling for the next exit after serving one, how long a
   * vCPU thread polls for the reply before sleeping, and how long the I/O
   * worker keeps polling its eventfds after a kick (default 0: on two cores a
   * third polling thread slows the round trip down). 0 = always sleep.
   */
  spin?: { machine?: number; vcpu?: number; io?: number };
  /**
   * Whether the machine thread, while it polls after an exit or a kick, also
   * polls the notifiers' eventfds itself (default true). false leaves them to
   * the I/O worker alone; the benchmark compares the two.
   */
  pollNotifiers?: boolean;
  /**
   * vCPU threads the caller started before opening the engine (see
   * prestartVcpus); the engine owns them once constructed, the caller still
   * does if construction throws.
   */
  spares?: SpareVcpuThread[];
}

/** Defaults of KvmEngineOptions.spin, from bench/kvm (README.md). */
export const DEFAULT_MACHINE_SPIN_US = 50;
export const DEFAULT_VCPU_SPIN_US = 20;
export const DEFAULT_IO_SPIN_US = 0;
/** Longest stretch the machine thread serves exits without letting the event loop run (ms). */
const SERVE_SLICE_MS = 2;

/**
 * The hardware engine: guest code runs on the host CPU through /dev/kvm, with
 * KVM's in-kernel LAPIC, IOAPIC, PIC and PIT. Construction opens /dev/kvm and
 * throws EngineUnavailableError when KVM cannot be used here.
 */
export class KvmEngine implements Engine {
  readonly name = 'kvm' as const;
  private fd: number;
  private supported: CpuidEntry[] | undefined;
  private readonly spin: { machine: number; vcpu: number; io: number };
  private readonly pollNotifiers: boolean;
  private spares: SpareVcpuThread[];

  constructor(options: KvmEngineOptions = {}) {
    const path = options.devicePath ?? KVM_DEVICE;
    this.spin = {
      machine: options.spin?.machine ?? DEFAULT_MACHINE_SPIN_US,
      vcpu: options.spin?.vcpu ?? DEFAULT_VCPU_SPIN_US,
      io: options.spin?.io ?? DEFAULT_IO_SPIN_US,
    };
    this.pollNotifiers = options.pollNotifiers ?? true;
    this.spares = [...(options.spares ?? [])];
    for (const [k, v] of Object.entries(this.spin)) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`kvm: spin.${k} must be a non-negative number of µs, not ${v}`);
    }
    try {
      this.fd = open(path, O_RDWR | O_CLOEXEC);
    } catch (e) {
      throw kvmOpenError(path, e);
    }
    const version = ioctl(this.fd, KVM.GET_API_VERSION, 0, 'KVM_GET_API_VERSION');
    if (version !== KVM_API_VERSION) {
      close(this.fd);
      throw new EngineUnavailableError(`${path} speaks KVM API version ${version}; typevisor needs ${KVM_API_VERSION}`);
    }
    for (const [cap, name] of [[KVM_CAP.IRQCHIP, 'KVM_CAP_IRQCHIP'], [KVM_CAP.PIT2, 'KVM_CAP_PIT2']] as const) {
      if (this.extension(cap) <= 0) {
        close(this.fd);
        throw new EngineUnavailableError(`${path} lacks ${name}, which the machine needs`);
      }
    }
  }

  /** KVM_CHECK_EXTENSION on the system fd. */
  extension(cap: number): number {
    return ioctl(this.liveFd(), KVM.CHECK_EXTENSION, cap, 'KVM_CHECK_EXTENSION');
  }

  maxCpus(): number {
    const max = this.extension(KVM_CAP.MAX_VCPUS);
    // Before KVM_CAP_MAX_VCPUS existed, KVM_CAP_NR_VCPUS was also the maximum.
    return max > 0 ? max : this.extension(KVM_CAP.NR_VCPUS);
  }

  memoryBacking(): MemoryBacking {
    return mmapBacking;
  }

  /** What KVM can virtualise on this host (KVM_GET_SUPPORTED_CPUID), fetched once. */
  supportedCpuid(): CpuidEntry[] {
    if (!this.supported) {
      const buf = new Uint8Array(kvm_cpuid2.size + MAX_CPUID_ENTRIES * kvm_cpuid_entry2.size);
      new DataView(buf.buffer).setUint32(kvm_cpuid2.fields.nent!.offset, MAX_CPUID_ENTRIES, true);
      ioctlBuf(this.liveFd(), KVM.GET_SUPPORTED_CPUID, buf, 'KVM_GET_SUPPORTED_CPUID');
      this.supported = decodeCpuid(buf);
    }
    return this.supported;
  }

  /**
   * Makes sure `count` vCPU worker threads are started ahead of createVm.
   * Starting a thread and loading its modules and koffi takes ~40 ms here,
   * which then overlaps whatever the caller does before createVm (loading
   * modules and the kernel, building ACPI tables); createVm hands these
   * threads their vCPUs and starts new ones only for the rest. Spare threads
   * never keep the process alive; close() ends those left unused.
   */
  prestartVcpus(count: number): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`kvm: prestartVcpus count must be a whole number, not ${count}`);
    this.liveFd();
    this.spares = this.spares.filter((s) => !s.dead);
    while (this.spares.length < count) this.spares.push(new SpareVcpuThread());
  }

  /** How many vCPU threads started by prestartVcpus wait for a VM. */
  spareVcpus(): number {
    return this.spares.filter((s) => !s.dead).length;
  }

  /** Up to `count` live spare workers, taken out of the pool. */
  private takeSpares(count: number): Worker[] {
    const live = this.spares.filter((s) => !s.dead);
    this.spares = live.slice(count);
    return live.slice(0, count).map((s) => s.take());
  }

  async createVm(config: EngineVmConfig): Promise<EngineVm> {
    const max = this.maxCpus();
    if (!Number.isInteger(config.cpus) || config.cpus < 1 || config.cpus > max) {
      throw new RangeError(`kvm: cpus must be an integer from 1 to ${max} (KVM_CAP_MAX_VCPUS here), not ${config.cpus}`);
    }
    checkMemory(config.memory);
    const runSize = ioctl(this.liveFd(), KVM.GET_VCPU_MMAP_SIZE, 0, 'KVM_GET_VCPU_MMAP_SIZE');
    const supported = this.supportedCpuid();
    const vmFd = ioctl(this.liveFd(), KVM.CREATE_VM, 0, 'KVM_CREATE_VM');
    const vm = new KvmVm(vmFd, config, this.spin, this.extension(KVM_CAP.IOEVENTFD) > 0, this.pollNotifiers);
    try {
      setUpVm(vmFd, config.memory);
      await vm.startVcpus(runSize, supported, this.takeSpares(config.cpus));
    } catch (e) {
      await vm.close();
      throw e;
    }
    return vm;
  }

  /** Closes /dev/kvm. VMs already created keep running on their own fds. */
  close(): void {
    for (const s of this.spares) s.end();
    this.spares = [];
    if (this.fd >= 0) close(this.fd);
    this.fd = -1;
  }

  private liveFd(): number {
    if (this.fd < 0) throw new Error('kvm: engine is closed');
    return this.fd;
  }
}

function checkMemory(memory: GuestMemory): void {
  if (memory.regions.length === 0) throw new RangeError('kvm: the VM has no memory');
  for (const r of memory.regions) {
    const where = `memory region at 0x${r.base.toString(16)}`;
    if (r.hostAddress === undefined) throw new TypeError(`kvm: ${where} has no host address: allocate guest memory with engine.memoryBacking()`);
    if (r.base % HOST_PAGE || r.size % HOST_PAGE || Number(r.hostAddress % BigInt(HOST_PAGE))) {
      throw new RangeError(`kvm: ${where} (+0x${r.size.toString(16)}) is not aligned to ${HOST_PAGE}-byte pages`);
    }
  }
}

function setUpVm(vmFd: number, memory: GuestMemory): void {
  ioctl(vmFd, KVM.SET_TSS_ADDR, KVM_TSS_ADDRESS, 'KVM_SET_TSS_ADDR');
  const idmap = new Uint8Array(8);
  new DataView(idmap.buffer).setBigUint64(0, BigInt(KVM_IDENTITY_MAP_ADDRESS), true);
  ioctlBuf(vmFd, KVM.SET_IDENTITY_MAP_ADDR, idmap, 'KVM_SET_IDENTITY_MAP_ADDR');
  // The irqchip must exist before any vCPU, so each vCPU gets its in-kernel LAPIC.
  ioctl(vmFd, KVM.CREATE_IRQCHIP, 0, 'KVM_CREATE_IRQCHIP');
  const pit = new Uint8Array(kvm_pit_config.size);
  new DataView(pit.buffer).setUint32(kvm_pit_config.fields.flags!.offset, KVM_PIT_SPEAKER_DUMMY, true);
  ioctlBuf(vmFd, KVM.CREATE_PIT2, pit, 'KVM_CREATE_PIT2');

  const F = kvm_userspace_memory_region.fields;
  memory.regions.forEach((r, slot) => {
    const buf = new Uint8Array(kvm_userspace_memory_region.size);
    const dv = new DataView(buf.buffer);
    dv.setUint32(F.slot!.offset, slot, true);
    dv.setBigUint64(F.guest_phys_addr!.offset, BigInt(r.base), true);
    dv.setBigUint64(F.memory_size!.offset, BigInt(r.size), true);
    dv.setBigUint64(F.userspace_addr!.offset, r.hostAddress!, true);
    ioctlBuf(vmFd, KVM.SET_USER_MEMORY_REGION, buf, `KVM_SET_USER_MEMORY_REGION slot ${slot} at 0x${r.base.toString(16)}`);
  });
}

interface Vcpu {
  readonly cpu: number;
  readonly worker: Worker;
  readonly mb: Mailbox;
  tid: number;
  mpState: number;
  /** Worker thread has ended. */
  exited: boolean;
}

type Phase = 'created' | 'running' | 'stopping' | 'stopped' | 'closed';

/** A VM on KVM: one worker thread per vCPU, exits served on this thread. */
export class KvmVm implements EngineVm {
  private readonly vcpus: Vcpu[] = [];
  private readonly kickSignal = sigrtmin() + KICK_SIGNAL_OFFSET;
  private readonly pid = getpid();
  private readonly lines = new Map<number, IrqLine>();
  private readonly irqBuf = new Uint8Array(kvm_irq_level.size);
  private readonly irqView = new DataView(this.irqBuf.buffer);
  private phase: Phase = 'created';
  private stopReason: VmStop | undefined;
  private stoppedCount = 0;
  private resolveRun: ((s: VmStop) => void) | undefined;
  private readonly runPromise: Promise<VmStop>;
  private pausedWaiters: { seq: number; need: Set<number>; resolve: () => void }[] = [];
  private paused = false;
  private pauseSeq = 0;

  private readonly doorbellSab = new SharedArrayBuffer(DOORBELL_BYTES);
  private readonly doorbell = new Int32Array(this.doorbellSab);
  /** Undefined when KVM lacks KVM_CAP_IOEVENTFD: notified writes then take the exit path. */
  private readonly notifiers: MmioNotifiers | undefined;

  constructor(
    private vmFd: number,
    private readonly config: EngineVmConfig,
    private readonly spin: { machine: number; vcpu: number; io: number },
    ioeventfd: boolean,
    private readonly pollNotifiers: boolean,
  ) {
    this.runPromise = new Promise((resolve) => (this.resolveRun = resolve));
    if (ioeventfd) {
      this.notifiers = new MmioNotifiers(vmFd, config.memory, this.doorbellSab, { spinMicros: spin.io }, (message) =>
        // The write came from some vCPU; which one, the eventfd does not say.
        this.requestStop({ reason: 'engine-error', cpu: 0, message: `MMIO ${message}` }),
      );
    }
  }

  /**
   * Creates the vCPU workers (or hands vCPUs to `spares`, threads started
   * ahead by KvmEngine.prestartVcpus) and waits until each has set up its vCPU.
   */
  async startVcpus(runSize: number, supported: readonly CpuidEntry[], spares: Worker[] = []): Promise<void> {
    const { cpus, boot } = this.config;
    const ready: Promise<void>[] = [];
    for (let cpu = 0; cpu < cpus; cpu++) {
      const mb = mailbox();
      mb.words[W.COMMAND] = CMD_HOLD;
      const workerData: VcpuWorkerData = {
        cpu, vmFd: this.vmFd, runSize, cpuid: encodeCpuid(vcpuCpuid(supported, cpu, cpus)),
        boot: cpu === 0 ? boot : undefined, kickSignal: this.kickSignal, mailbox: mb.sab,
        doorbell: this.doorbellSab, spinMicros: this.spin.vcpu,
      };
      const spare = spares.shift();
      let worker: Worker;
      if (spare) {
        worker = spare;
        worker.postMessage(workerData);
      } else {
        worker = new Worker(VCPU_WORKER, { workerData, name: `vcpu${cpu}` });
      }
      const v: Vcpu = { cpu, worker, mb, tid: 0, mpState: -1, exited: false };
      this.vcpus.push(v);
      ready.push(new Promise<void>((resolve, reject) => {
        worker.on('message', (m: VcpuMessage) => {
          if (m.type === 'ready') {
            v.tid = m.tid;
            v.mpState = m.mpState;
            resolve();
          } else if (m.type === 'setup-failed') {
            reject(new Error(m.message));
          } else {
            this.onMessage(m);
          }
        });
        worker.on('error', (e) => {
          reject(e);
          this.finish({ reason: 'engine-error', cpu, message: `vCPU ${cpu} worker failed: ${e.message}` });
        });
        worker.on('exit', () => {
          v.exited = true;
          reject(new Error(`vCPU ${cpu} worker exited during setup`));
          if (this.phase === 'running') this.finish({ reason: 'engine-error', cpu, message: `vCPU ${cpu} worker exited` });
        });
      }));
    }
    const results = await Promise.allSettled(ready);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** KVM_MP_STATE_* of each vCPU right after creation (APs: UNINITIALIZED, waiting for INIT/SIPI). */
  initialMpStates(): number[] {
    return this.vcpus.map((v) => v.mpState);
  }

  irqLine(gsi: number): IrqLine {
    if (!Number.isInteger(gsi) || gsi < 0 || gsi >= KVM_IOAPIC_PINS) {
      throw new RangeError(`kvm: GSI ${gsi} is not an IOAPIC pin (0..${KVM_IOAPIC_PINS - 1})`);
    }
    let line = this.lines.get(gsi);
    if (!line) {
      line = { set: (level) => this.setIrq(gsi, level) };
      this.lines.set(gsi, line);
    }
    return line;
  }

  private setIrq(gsi: number, level: boolean): void {
    if (this.vmFd < 0) return;
    this.irqView.setUint32(kvm_irq_level.fields.irq!.offset, gsi, true);
    this.irqView.setUint32(kvm_irq_level.fields.level!.offset, level ? 1 : 0, true);
    ioctlBuf(this.vmFd, KVM.IRQ_LINE, this.irqBuf, 'KVM_IRQ_LINE');
  }

  /**
   * EngineVm.addMmioNotifier: an ioeventfd with datamatch, served by the I/O
   * worker and delivered by the exit loop (README.md, "MMIO notifiers").
   */
  addMmioNotifier(address: number, length: 1 | 2 | 4 | 8, value: number, handler: () => void): () => void {
    if (this.phase === 'closed') throw new Error('kvm: cannot add a notifier to a closed VM');
    if (!this.notifiers) {
      checkNotifier(this.config.memory, address, length, value);
      return () => {};
    }
    return this.notifiers.add(address, length, value, handler);
  }

  run(): Promise<VmStop> {
    if (this.phase !== 'created') throw new Error(`kvm: run() called on a ${this.phase} VM`);
    this.phase = 'running';
    void this.serve();
    if (this.stopReason) {
      for (const v of this.vcpus) this.command(v, CMD_STOP);
      this.finish(this.stopReason);
      return this.runPromise;
    }
    const go = (): void => {
      // A stop or pause may have come while the I/O worker started.
      if (this.phase !== 'running' || this.paused) return;
      for (const v of this.vcpus) this.command(v, CMD_RUN);
    };
    const ready = this.notifiers?.ready();
    if (ready) void ready.then(go);
    else go();
    return this.runPromise;
  }

  requestStop(stop: VmStop): void {
    if (this.phase === 'created') {
      this.stopReason ??= stop;
      return;
    }
    this.finish(stop);
  }

  async pause(): Promise<void> {
    if (this.phase !== 'running') return;
    this.paused = true;
    const seq = ++this.pauseSeq;
    const need = new Set(this.vcpus.map((v) => v.cpu));
    const done = new Promise<void>((resolve) => this.pausedWaiters.push({ seq, need, resolve }));
    for (const v of this.vcpus) {
      Atomics.store(v.mb.words, W.PAUSE_SEQ, seq);
      this.command(v, CMD_PAUSE);
    }
    await done;
  }

  resume(): void {
    if (this.phase !== 'running' || !this.paused) return;
    this.paused = false;
    for (const v of this.vcpus) this.command(v, CMD_RUN);
  }

  stats(): Record<string, number> {
    const out: Record<string, number> = { cpus: this.vcpus.length, kvm_run: 0 };
    for (const kind of EXIT_KINDS) out[`exits.${kind}`] = 0;
    for (const v of this.vcpus) {
      const runs = v.mb.stats[STAT.kvm_run]!;
      out[`cpu${v.cpu}.kvm_run`] = runs;
      out.kvm_run! += runs;
      for (const kind of EXIT_KINDS) {
        const n = v.mb.stats[STAT[kind]]!;
        out[`cpu${v.cpu}.exits.${kind}`] = n;
        out[`exits.${kind}`]! += n;
      }
    }
    if (this.notifiers) Object.assign(out, this.notifiers.stats());
    return out;
  }

  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    if (this.phase === 'running' || this.phase === 'stopping') this.finish({ reason: 'host-stop' });
    this.phase = 'closed';
    const exits = this.vcpus.map((v) => {
      if (v.exited) return Promise.resolve();
      // Stopped workers are unref'd; waiting for their exit must keep the process alive.
      v.worker.ref();
      return new Promise<void>((r) => v.worker.once('exit', () => r()));
    });
    for (const v of this.vcpus) this.command(v, CMD_EXIT);
    await Promise.all([...exits, this.notifiers?.close()]);
    if (this.vmFd >= 0) close(this.vmFd);
    this.vmFd = -1;
    Atomics.add(this.doorbell, 0, 1);
    Atomics.notify(this.doorbell, 0);
    this.resolveRun?.(this.stopReason ?? { reason: 'host-stop' });
  }

  /** Sets a vCPU's command word, wakes it where it waits, and kicks it out of KVM_RUN. */
  private command(v: Vcpu, cmd: number): void {
    Atomics.store(v.mb.words, W.COMMAND, cmd);
    Atomics.notify(v.mb.words, W.COMMAND);
    Atomics.notify(v.mb.words, W.STATE);
    if (cmd !== CMD_RUN && v.tid > 0 && !v.exited) {
      try {
        tgkill(this.pid, v.tid, this.kickSignal);
      } catch (e) {
        // ESRCH: the thread has just ended; nothing to kick.
        if (!(e instanceof NativeError && e.code === 'ESRCH')) throw e;
      }
    }
  }

  private onMessage(m: VcpuMessage): void {
    switch (m.type) {
      case 'stop':
        this.finish(m.stop);
        break;
      case 'paused':
        for (const w of this.pausedWaiters) if (m.seq >= w.seq) w.need.delete(m.cpu);
        this.settlePauseWaiters();
        break;
      case 'stopped':
        this.stoppedCount++;
        // A stopped vCPU counts as paused.
        for (const w of this.pausedWaiters) w.need.delete(m.cpu);
        this.settlePauseWaiters();
        if (this.stoppedCount === this.vcpus.length && this.phase === 'stopping') {
          this.phase = 'stopped';
          // Parked workers must not keep the process alive once the VM is over.
          for (const v of this.vcpus) v.worker.unref();
          const stop = this.stopReason!;
          void (this.notifiers?.stop() ?? Promise.resolve()).then(() => this.resolveRun?.(stop));
        }
        break;
    }
  }

  private settlePauseWaiters(): void {
    this.pausedWaiters = this.pausedWaiters.filter((w) => {
      if (w.need.size > 0) return true;
      w.resolve();
      return false;
    });
  }

  /** Stops every vCPU; run() resolves with the first reason once all have left KVM_RUN. */
  private finish(stop: VmStop): void {
    if (this.phase !== 'running') return;
    this.phase = 'stopping';
    this.stopReason = stop;
    for (const v of this.vcpus) this.command(v, CMD_STOP);
  }

  /**
   * Serves every vCPU's I/O and MMIO requests until the VM is closed. After
   * an exit it polls the doorbell for `spin.machine` µs, because exits come
   * in bursts and a wake-up from Atomics.waitAsync costs ~70 µs here; it lets
   * the event loop run at least every SERVE_SLICE_MS while busy.
   */
  private async serve(): Promise<void> {
    const bell = this.doorbell;
    const spinMs = this.spin.machine / 1000;
    let sliceStart = performance.now();
    while (this.phase !== 'closed') {
      const ring = Atomics.load(bell, 0);
      if (this.serveReady()) {
        if (performance.now() - sliceStart > SERVE_SLICE_MS) {
          await new Promise((r) => setImmediate(r));
          sliceStart = performance.now();
        }
        continue;
      }
      if (spinMs > 0) {
        const until = performance.now() + spinMs;
        // While polling anyway, look at the notifiers' eventfds too: a kick is
        // then seen without waiting for the I/O worker to wake (README.md).
        const notifiers = this.pollNotifiers ? this.notifiers : undefined;
        notifiers?.machinePolling(true);
        let kicked = false;
        while (!kicked && Atomics.load(bell, 0) === ring && performance.now() < until) {
          kicked = notifiers?.pollNow() ?? false;
          if (!kicked) schedYield();
        }
        if (kicked || Atomics.load(bell, 0) !== ring) continue;
      }
      this.notifiers?.machinePolling(false);
      const w = waitAsync(bell, 0, ring);
      if (w.async) await w.value;
      sliceStart = performance.now();
    }
  }

  private serveReady(): boolean {
    let served = this.notifiers?.deliver() ?? false;
    for (const v of this.vcpus) {
      if (Atomics.load(v.mb.words, W.STATE) === STATE_REQUEST) {
        this.dispatch(v);
        served = true;
      }
    }
    return served;
  }

  private dispatch(v: Vcpu): void {
    const { words, data } = v.mb;
    const size = words[W.SIZE]!;
    const isWrite = words[W.WRITE] === 1;
    const n = words[W.COUNT]!;
    const { dispatcher } = this.config;
    try {
      if (words[W.KIND] === REQ_PIO) {
        const port = words[W.ADDR_LO]!;
        if (!isWrite) data.fill(0, 0, size * n);
        for (let i = 0; i < n; i++) dispatcher.pio(v.cpu, port, data.subarray(i * size, (i + 1) * size), isWrite);
      } else {
        const address = (words[W.ADDR_LO]! >>> 0) + (words[W.ADDR_HI]! >>> 0) * 2 ** 32;
        if (!isWrite) data.fill(0, 0, size);
        dispatcher.mmio(v.cpu, address, data.subarray(0, size), isWrite);
      }
    } catch (e) {
      const what = words[W.KIND] === REQ_PIO ? `port 0x${words[W.ADDR_LO]!.toString(16)}` : 'MMIO';
      this.finish({ reason: 'engine-error', cpu: v.cpu, message: `dispatcher threw on ${what} ${isWrite ? 'write' : 'read'}: ${e instanceof Error ? e.message : String(e)}` });
    }
    Atomics.store(words, W.STATE, STATE_REPLY);
    Atomics.notify(words, W.STATE);
  }
}
