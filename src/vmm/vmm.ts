import { EventEmitter } from 'node:events';
import type { VmStop } from '../engine/engine.js';
import { VmmError } from './errors.js';
import { DEFAULT_MACHINE, validateDrive, validateMachine, type BootSourceConfig, type DevicesConfig, type NetConfig, type VsockConfig, type DriveConfig, type EntropyConfig, type MachineConfig, type VmConfig, validateNet, validateVsock } from './config.js';
import { BlockBackendError, FileBackend } from '../virtio/blk/index.js';
import { Machine, type MachineOptions } from './machine.js';
import { describeStop } from './exit-status.js';

/**
 * The one internal action API. Every front end (CLI, REST API, web console,
 * library users) drives a VM through these actions; each is checked against
 * the VM's phase here, once, so the front ends only parse.
 */
export type VmmAction =
  | { kind: 'configure-machine'; config: Partial<MachineConfig> }
  | { kind: 'configure-boot-source'; boot: BootSourceConfig }
  | { kind: 'configure-entropy'; entropy: EntropyConfig }
  | { kind: 'configure-net'; net: NetConfig }
  | { kind: 'configure-vsock'; vsock: VsockConfig }
  | { kind: 'configure-drive'; drive: DriveConfig }
  | { kind: 'start' }
  | { kind: 'pause' }
  | { kind: 'resume' }
  | { kind: 'send-ctrl-alt-del' }
  | { kind: 'stop' };

export type VmPhase = 'not-started' | 'starting' | 'running' | 'paused' | 'stopped';

export interface VmExitReport {
  stop: VmStop;
  status: number;
  message: string;
}

export interface VmDescription {
  phase: VmPhase;
  config: VmConfig;
  engine?: string;
  startedAt?: Date;
  stats?: Record<string, number>;
}

export interface VmmEvents {
  phase: [VmPhase];
  exit: [VmExitReport];
}

/** One VM and its life: configure → start → (pause ⇄ resume) → stopped. */
export class Vmm extends EventEmitter<VmmEvents> {
  private machineConfig: MachineConfig = { ...DEFAULT_MACHINE };
  private bootSource: BootSourceConfig | undefined;
  private devices: DevicesConfig = {};
  private machine: Machine | undefined;
  private phaseValue: VmPhase = 'not-started';
  private startedAt: Date | undefined;
  private exitReport: Promise<VmExitReport> | undefined;

  constructor(private readonly options: MachineOptions = {}) {
    super();
  }

  get phase(): VmPhase {
    return this.phaseValue;
  }

  /** The running machine (for front ends that attach a console), once started. */
  get runningMachine(): Machine | undefined {
    return this.machine;
  }

  private setPhase(p: VmPhase): void {
    this.phaseValue = p;
    this.emit('phase', p);
  }

  private requirePhase(action: string, ...allowed: VmPhase[]): void {
    if (!allowed.includes(this.phaseValue)) {
      throw new VmmError('wrong-phase', `${action} is not allowed while the VM is ${this.phaseValue}`);
    }
  }

  configureMachine(config: Partial<MachineConfig>): void {
    this.requirePhase('configuring the machine', 'not-started');
    const next = { ...this.machineConfig, ...config };
    validateMachine(next);
    this.machineConfig = next;
  }

  configureBootSource(boot: BootSourceConfig): void {
    this.requirePhase('configuring the boot source', 'not-started');
    if (!boot.kernelPath) throw new VmmError('invalid-config', 'a kernel image path is required');
    this.bootSource = { ...boot };
  }

  /** Adds (or replaces) the virtio-rng entropy device. */
  configureEntropy(entropy: EntropyConfig): void {
    this.requirePhase('configuring the entropy device', 'not-started');
    const rate = entropy.rateBytesPerSec;
    if (rate !== undefined && (!Number.isSafeInteger(rate) || rate <= 0)) {
      throw new VmmError('invalid-config', `entropy rate must be a positive whole number of bytes per second (got ${rate})`);
    }
    this.devices = { ...this.devices, entropy: { ...entropy } };
  }

  /**
   * Before start: adds a virtio-blk drive, or replaces the one with the same
   * id (keeping its slot). While the VM runs or is paused: points an existing
   * drive at another image (Firecracker's PATCH /drives/{id} path_on_host);
   * the guest is told to reread the capacity. The image is opened and checked
   * here, so a bad path fails now rather than at start.
   */
  configureDrive(drive: DriveConfig): void {
    validateDrive(drive);
    const d: DriveConfig = { id: drive.id, pathOnHost: drive.pathOnHost, readOnly: drive.readOnly };
    const drives = this.devices.drives ?? [];
    const at = drives.findIndex((x) => x.id === d.id);
    if (this.phaseValue === 'running' || this.phaseValue === 'paused') {
      const current = drives[at];
      if (!current) throw new VmmError('wrong-phase', `adding drive "${d.id}" is not allowed while the VM is ${this.phaseValue}; only an existing drive's path can change`);
      if (current.readOnly !== d.readOnly) throw new VmmError('wrong-phase', `drive "${d.id}" is ${current.readOnly ? 'read-only' : 'read-write'}; that cannot change while the VM is ${this.phaseValue}`);
      this.machine!.replaceDrive(d.id, d.pathOnHost);
    } else {
      this.requirePhase('configuring a drive', 'not-started');
      checkDriveImage(d);
    }
    const next = [...drives];
    if (at >= 0) next[at] = d;
    else next.push(d);
    this.devices = { ...this.devices, drives: next };
  }

  /** Adds (or replaces, by id) a NIC on a host TAP device; before start only. */
  configureNet(net: NetConfig): void {
    this.requirePhase('configuring a network interface', 'not-started');
    validateNet(net);
    const nets = [...(this.devices.nets ?? [])];
    const clash = nets.find((x) => x.id !== net.id && (x.tap === net.tap || (net.mac !== undefined && x.mac?.toLowerCase() === net.mac.toLowerCase())));
    if (clash) throw new VmmError('invalid-config', `network interface ${net.id}: TAP ${net.tap} or its MAC is already used by ${clash.id}`);
    const at = nets.findIndex((x) => x.id === net.id);
    const n: NetConfig = { id: net.id, tap: net.tap, ...(net.mac !== undefined && { mac: net.mac }) };
    if (at >= 0) nets[at] = n;
    else nets.push(n);
    this.devices = { ...this.devices, nets };
  }

  /** Sets the vsock device (one per VM); before start only. */
  configureVsock(vsock: VsockConfig): void {
    this.requirePhase('configuring vsock', 'not-started');
    validateVsock(vsock);
    this.devices = { ...this.devices, vsock: { cid: vsock.cid, udsPath: vsock.udsPath } };
  }

  describe(): VmDescription {
    const d: VmDescription = { phase: this.phaseValue, config: this.config() };
    if (this.machine) {
      d.engine = this.machine.engineName;
      d.stats = this.machine.stats();
    }
    if (this.startedAt) d.startedAt = this.startedAt;
    return d;
  }

  config(): VmConfig {
    const c: VmConfig = { machine: { ...this.machineConfig }, devices: structuredClone(this.devices) };
    if (this.bootSource) c.boot = { ...this.bootSource };
    return c;
  }

  /**
   * Builds the machine and starts the vCPUs. Resolves once the guest runs;
   * `exited()` resolves when it stops.
   */
  async start(): Promise<void> {
    this.requirePhase('starting the VM', 'not-started');
    if (!this.bootSource) throw new VmmError('invalid-config', 'no boot source: give a kernel image before starting');
    this.setPhase('starting');
    try {
      this.machine = await Machine.build({ machine: this.machineConfig, boot: this.bootSource, devices: this.devices }, this.options);
    } catch (e) {
      this.setPhase('not-started');
      throw e;
    }
    this.startedAt = new Date();
    this.setPhase('running');
    const machine = this.machine;
    this.exitReport = machine.run().then(
      async (stop) => {
        await machine.close();
        const report = { stop, ...describeStop(stop) };
        this.setPhase('stopped');
        this.emit('exit', report);
        return report;
      },
      async (e: unknown) => {
        await machine.close().catch(() => {});
        const stop: VmStop = { reason: 'engine-error', cpu: -1, message: e instanceof Error ? e.message : String(e) };
        const report = { stop, ...describeStop(stop) };
        this.setPhase('stopped');
        this.emit('exit', report);
        return report;
      },
    );
  }

  /** Resolves when the VM has stopped, with why and the process exit status. */
  exited(): Promise<VmExitReport> {
    if (!this.exitReport) throw new VmmError('wrong-phase', 'the VM has not been started');
    return this.exitReport;
  }

  async pause(): Promise<void> {
    this.requirePhase('pausing', 'running', 'paused');
    if (this.phaseValue === 'paused') return;
    await this.machine!.pause();
    this.setPhase('paused');
  }

  resume(): void {
    this.requirePhase('resuming', 'running', 'paused');
    if (this.phaseValue === 'running') return;
    this.machine!.resume();
    this.setPhase('running');
  }

  sendCtrlAltDel(): void {
    this.requirePhase('sending Ctrl-Alt-Del', 'running', 'paused');
    this.machine!.sendCtrlAltDel();
  }

  /** Stops the VM from the host side; resolves with the exit report. */
  async stop(): Promise<VmExitReport> {
    this.requirePhase('stopping', 'running', 'paused', 'stopped');
    this.machine!.requestStop({ reason: 'host-stop' });
    if (this.phaseValue === 'paused') this.machine!.resume();
    return this.exited();
  }

  /** Carries out one action; the entry point of the REST API and web console. */
  async dispatch(action: VmmAction): Promise<void> {
    switch (action.kind) {
      case 'configure-machine':
        return this.configureMachine(action.config);
      case 'configure-boot-source':
        return this.configureBootSource(action.boot);
      case 'configure-entropy':
        return this.configureEntropy(action.entropy);
      case 'configure-net':
        return this.configureNet(action.net);
      case 'configure-vsock':
        return this.configureVsock(action.vsock);
      case 'configure-drive':
        return this.configureDrive(action.drive);
      case 'start':
        return this.start();
      case 'pause':
        return this.pause();
      case 'resume':
        return this.resume();
      case 'send-ctrl-alt-del':
        return this.sendCtrlAltDel();
      case 'stop':
        await this.stop();
        return;
    }
  }
}

/** Opens and closes a drive's image as the machine will; a VmmError says what is wrong with it. */
function checkDriveImage(d: DriveConfig): void {
  try {
    FileBackend.check(d.pathOnHost, { readOnly: d.readOnly });
  } catch (e) {
    if (e instanceof BlockBackendError) throw new VmmError('bad-file', `drive ${d.id}: ${e.message}`);
    throw e;
  }
}
