/**
 * One VM of the web console: a VMM child process driven through its
 * Firecracker-compatible API, its serial console on the child's stdin/stdout.
 *
 * Each VM runs in its own process so that a VMM that crashes (a KVM fault, an
 * engine bug, a kill -9) takes only itself down; the console server sees the
 * process end and shows the VM as crashed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { ApiCallError, VmmApiClient } from './api-client.js';

export type EngineName = 'auto' | 'kvm' | 'soft';

/** What the create form asks for. */
export interface VmSpec {
  name: string;
  /** The image's label in the list ("console guest", "default Linux", "custom"). */
  image: string;
  kernelPath: string;
  initrdPath?: string;
  cmdline?: string;
  cpus: number;
  memMib: number;
  engine: EngineName;
  /** Host files attached as virtio block devices disk0, disk1, … */
  disks: string[];
}

/**
 * starting: the process is being launched and configured; created: configured,
 * not booted; stopping: asked to end; stopped: ended as asked or as the guest
 * chose (power-off, reset); crashed: the process died on its own (a signal, a
 * guest or engine failure); failed: the configuration or start was refused.
 */
export type VmState = 'starting' | 'created' | 'running' | 'paused' | 'stopping' | 'stopped' | 'crashed' | 'failed';

/** One point of the live figures, taken about once a second while the VM runs. */
export interface VmSample {
  /** Milliseconds since the epoch. */
  t: number;
  /** VM exits to the VMM per second (KVM_RUN returns). */
  exitsPerSec?: number;
  /** Guest instructions per second, where the engine counts them. */
  instructionsPerSec?: number;
  /** Resident memory of the VMM process (guest RAM touched so far included). */
  rssBytes?: number;
}

export interface VmInfo {
  id: string;
  name: string;
  image: string;
  state: VmState;
  /** The engine asked for. */
  engine: EngineName;
  cpus: number;
  memMib: number;
  kernelPath: string;
  disks: string[];
  createdAt: string;
  startedAt?: string;
  /** Seconds since InstanceStart while the VM lives; its whole run once it has ended. */
  uptimeSec?: number;
  pid?: number;
  exitCode?: number | null;
  signal?: string | null;
  /** Why the VM is failed, crashed or stopped, in one line. */
  reason?: string;
  samples: VmSample[];
}

export interface VmProcessOptions {
  id: string;
  spec: VmSpec;
  /** A private directory for the socket, logs and metrics (short: socket paths hold 107 bytes). */
  dir: string;
  /** The VMM program: argv[0] and leading arguments; `--api-sock PATH --id ID` are appended. */
  command: readonly string[];
  /** Figures are sampled this often while the VM runs. */
  sampleMs?: number;
}

export interface VmProcessEvents {
  output: [Uint8Array];
  state: [VmState];
}

/** Guest output kept for consoles that connect later. */
const SCROLLBACK_BYTES = 256 * 1024;
/** Samples kept for the chart: two minutes at one a second. */
const SAMPLES_KEPT = 120;
/** Lines of the VMM's stderr kept to explain a crash. */
const STDERR_LINES = 20;
const SOCKET_WAIT_MS = 10_000;
/** After SIGTERM the VMM stops the VM and exits; past this it is killed. */
const STOP_GRACE_MS = 5_000;
const DEFAULT_SAMPLE_MS = 1_000;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function connectable(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** VmRSS of a process, from /proc (proc(5)); undefined once it is gone. */
function residentBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export class VmProcess extends EventEmitter<VmProcessEvents> {
  readonly id: string;
  readonly spec: VmSpec;
  readonly createdAt = new Date();
  readonly dir: string;
  private stateValue: VmState = 'starting';
  private readonly child: ChildProcess;
  private readonly api: VmmApiClient;
  private readonly metricsPath: string;
  private metricsOffset = 0;
  private scrollback: Buffer[] = [];
  private scrollbackBytes = 0;
  private stderrLines: string[] = [];
  private stderrPartial = '';
  private samples: VmSample[] = [];
  private lastCounters: { t: number; exits?: number; instructions?: number } | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private startedAt: Date | undefined;
  private endedAt: Date | undefined;
  private reasonText: string | undefined;
  private exitCode: number | null | undefined;
  private exitSignal: string | null | undefined;
  private readonly exitedPromise: Promise<void>;
  private readonly sampleMs: number;

  private constructor(opts: VmProcessOptions) {
    super();
    this.id = opts.id;
    this.dir = opts.dir;
    this.spec = { ...opts.spec, disks: [...opts.spec.disks] };
    this.sampleMs = opts.sampleMs ?? DEFAULT_SAMPLE_MS;
    const socketPath = join(opts.dir, 'api.sock');
    this.api = new VmmApiClient(socketPath);
    this.metricsPath = join(opts.dir, 'metrics.json');
    const [program, ...args] = opts.command;
    if (program === undefined) throw new Error('the VMM command is empty');
    this.child = spawn(program, [...args, '--api-sock', socketPath, '--id', opts.id], { stdio: ['pipe', 'pipe', 'pipe'], cwd: opts.dir });
    this.child.stdout!.on('data', (chunk: Buffer) => this.onOutput(chunk));
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (text: string) => this.onStderr(text));
    // A guest that stops reading input must not crash the server with EPIPE.
    this.child.stdin!.on('error', () => {});
    this.exitedPromise = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.onExit(code, signal);
        resolve();
      });
      this.child.once('error', (e) => {
        this.reasonText = `the VMM process could not be started: ${e.message}`;
        this.exitCode = null;
        this.endedAt = new Date();
        this.setState('failed');
        resolve();
      });
    });
  }

  /** Launches the VMM process and configures the VM; resolves in state created, or failed. */
  static async launch(opts: VmProcessOptions): Promise<VmProcess> {
    const vm = new VmProcess(opts);
    await vm.configure();
    return vm;
  }

  get state(): VmState {
    return this.stateValue;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True while the VMM process runs. */
  get alive(): boolean {
    return this.exitCode === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves when the VMM process has ended. */
  exited(): Promise<void> {
    return this.exitedPromise;
  }

  private setState(s: VmState): void {
    if (this.stateValue === s) return;
    this.stateValue = s;
    if (s !== 'running' && s !== 'paused') this.stopSampling();
    this.emit('state', s);
  }

  private fail(reason: string): void {
    this.reasonText = reason;
    this.setState('failed');
    if (this.alive) this.child.kill('SIGKILL');
  }

  private async configure(): Promise<void> {
    const s = this.spec;
    try {
      await this.waitForSocket();
      // The VMM's log goes to a file: its stderr then carries only what
      // explains an early death, which the crash report quotes.
      await this.api.call('PUT', '/logger', { log_path: join(this.dir, 'vmm.log'), level: 'Info' });
      await this.api.call('PUT', '/machine-config', { vcpu_count: s.cpus, mem_size_mib: s.memMib, engine: s.engine });
      await this.api.call('PUT', '/boot-source', {
        kernel_image_path: s.kernelPath,
        ...(s.initrdPath !== undefined && { initrd_path: s.initrdPath }),
        ...(s.cmdline !== undefined && { boot_args: s.cmdline }),
      });
      for (const [i, path] of s.disks.entries()) {
        await this.api.call('PUT', `/drives/disk${i}`, { drive_id: `disk${i}`, path_on_host: path, is_root_device: false, is_read_only: false });
      }
      await this.api.call('PUT', '/metrics', { metrics_path: this.metricsPath });
      if (this.stateValue === 'starting') this.setState('created');
    } catch (e) {
      if (this.stateValue === 'starting') this.fail(e instanceof Error ? e.message : String(e));
    }
  }

  private async waitForSocket(): Promise<void> {
    const deadline = Date.now() + SOCKET_WAIT_MS;
    while (Date.now() < deadline) {
      if (!this.alive) throw new ApiCallError(`the VMM process ended before serving its API${this.lastStderr ? `: ${this.lastStderr}` : ''}`, 0);
      if (await connectable(this.api.socketPath)) return;
      await sleep(20);
    }
    throw new ApiCallError(`the VMM process did not open its API socket within ${SOCKET_WAIT_MS / 1000} s`, 0);
  }

  private requireState(action: string, ...allowed: VmState[]): void {
    if (!allowed.includes(this.stateValue)) throw new VmStateError(`cannot ${action} VM ${this.id}: it is ${this.stateValue}`);
  }

  /** Boots the configured VM (InstanceStart). */
  async start(): Promise<void> {
    this.requireState('start', 'created');
    try {
      await this.api.call('PUT', '/actions', { action_type: 'InstanceStart' });
    } catch (e) {
      if (this.alive) this.fail(e instanceof Error ? e.message : String(e));
      throw e;
    }
    this.startedAt = new Date();
    if (this.stateValue === 'created') this.setState('running');
    this.sampler = setInterval(() => void this.sample(), this.sampleMs);
  }

  async pause(): Promise<void> {
    this.requireState('pause', 'running');
    await this.api.call('PATCH', '/vm', { state: 'Paused' });
    if (this.stateValue === 'running') this.setState('paused');
  }

  async resume(): Promise<void> {
    this.requireState('resume', 'paused');
    await this.api.call('PATCH', '/vm', { state: 'Resumed' });
    if (this.stateValue === 'paused') this.setState('running');
  }

  /**
   * Ends the VM: SIGTERM makes the VMM stop the guest and exit (Firecracker's
   * API has no stop action either); one that does not is killed.
   */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.setState('stopping');
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.exitedPromise;
    clearTimeout(timer);
  }

  /** Keystrokes for the guest's serial port. */
  input(bytes: Uint8Array): void {
    if (this.alive && this.child.stdin!.writable) this.child.stdin!.write(bytes);
  }

  /** Guest output so far (up to the scrollback size), for a console that connects now. */
  history(): Buffer {
    return Buffer.concat(this.scrollback);
  }

  private onOutput(chunk: Buffer): void {
    this.scrollback.push(chunk);
    this.scrollbackBytes += chunk.length;
    while (this.scrollbackBytes > SCROLLBACK_BYTES && this.scrollback.length > 1) {
      this.scrollbackBytes -= this.scrollback.shift()!.length;
    }
    this.emit('output', chunk);
  }

  private onStderr(text: string): void {
    const lines = (this.stderrPartial + text).split('\n');
    this.stderrPartial = lines.pop() ?? '';
    for (const l of lines) if (l.trim() !== '') this.stderrLines.push(l);
    if (this.stderrLines.length > STDERR_LINES) this.stderrLines.splice(0, this.stderrLines.length - STDERR_LINES);
  }

  private get lastStderr(): string | undefined {
    const l = this.stderrPartial.trim() || this.stderrLines[this.stderrLines.length - 1];
    return l?.replace(/^typevisor: /, '');
  }

  /** The VMM's last stderr lines, for the crash report. */
  stderrTail(): string[] {
    return [...this.stderrLines, ...(this.stderrPartial ? [this.stderrPartial] : [])];
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.exitCode = code;
    this.exitSignal = signal;
    this.endedAt = new Date();
    this.stopSampling();
    const last = this.lastStderr;
    if (this.stateValue === 'failed') return;
    if (this.stateValue === 'stopping') {
      this.reasonText = 'stopped from the console';
      this.setState('stopped');
    } else if (code === 0) {
      this.reasonText = last ?? 'the VMM process ended';
      this.setState('stopped');
    } else {
      this.reasonText = signal ? `the VMM process was killed by ${signal}` : `the VMM process exited with status ${code}${last ? `: ${last}` : ''}`;
      this.setState('crashed');
    }
  }

  private stopSampling(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = undefined;
  }

  /**
   * One sample: FlushMetrics makes the VMM write a metrics line now, whose
   * `vm` group holds the engine's counters; rates are deltas between samples.
   */
  private async sample(): Promise<void> {
    if (this.stateValue !== 'running' && this.stateValue !== 'paused') return;
    const t = Date.now();
    try {
      await this.api.call('PUT', '/actions', { action_type: 'FlushMetrics' });
    } catch {
      return;
    }
    const vm = this.readLastMetrics();
    const s: VmSample = { t };
    const rss = this.child.pid !== undefined ? residentBytes(this.child.pid) : undefined;
    if (rss !== undefined) s.rssBytes = rss;
    if (vm) {
      const exits = vm.kvm_run ?? Object.entries(vm).filter(([k]) => /^exits\.[^.]+$/.test(k)).reduce((a, [, v]) => a + v, 0);
      const instructions = vm.instructions;
      const prev = this.lastCounters;
      if (prev) {
        const dt = (t - prev.t) / 1000;
        if (dt > 0 && prev.exits !== undefined) s.exitsPerSec = Math.max(0, (exits - prev.exits) / dt);
        if (dt > 0 && prev.instructions !== undefined && instructions !== undefined) s.instructionsPerSec = Math.max(0, (instructions - prev.instructions) / dt);
      }
      this.lastCounters = { t, exits, ...(instructions !== undefined && { instructions }) };
    }
    this.samples.push(s);
    if (this.samples.length > SAMPLES_KEPT) this.samples.splice(0, this.samples.length - SAMPLES_KEPT);
  }

  /** The `vm` group of the newest line appended to the metrics file since the last read. */
  private readLastMetrics(): Record<string, number> | undefined {
    let fd: number;
    try {
      fd = openSync(this.metricsPath, 'r');
    } catch {
      return undefined;
    }
    let text = '';
    try {
      const buf = Buffer.alloc(64 * 1024);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.metricsOffset);
        if (n <= 0) break;
        this.metricsOffset += n;
        text += buf.toString('utf8', 0, n);
      }
    } finally {
      closeSync(fd);
    }
    const lines = text.split('\n').filter((l) => l.trim() !== '');
    const last = lines[lines.length - 1];
    if (last === undefined) return undefined;
    try {
      const parsed = JSON.parse(last) as { vm?: Record<string, unknown> };
      if (!parsed.vm) return undefined;
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(parsed.vm)) if (typeof v === 'number') out[k] = v;
      return out;
    } catch {
      return undefined;
    }
  }

  info(): VmInfo {
    const s = this.spec;
    const i: VmInfo = {
      id: this.id,
      name: s.name,
      image: s.image,
      state: this.stateValue,
      engine: s.engine,
      cpus: s.cpus,
      memMib: s.memMib,
      kernelPath: s.kernelPath,
      disks: [...s.disks],
      createdAt: this.createdAt.toISOString(),
      samples: this.samples.slice(),
    };
    if (this.startedAt) {
      i.startedAt = this.startedAt.toISOString();
      i.uptimeSec = Math.max(0, ((this.endedAt ?? new Date()).getTime() - this.startedAt.getTime()) / 1000);
    }
    if (this.child.pid !== undefined) i.pid = this.child.pid;
    if (this.exitCode !== undefined) i.exitCode = this.exitCode;
    if (this.exitSignal !== undefined) i.signal = this.exitSignal;
    if (this.reasonText !== undefined) i.reason = this.reasonText;
    return i;
  }
}

/** An action the VM's state does not allow (start twice, pause a stopped VM). */
export class VmStateError extends Error {
  override name = 'VmStateError';
}
