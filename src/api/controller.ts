/**
 * The Firecracker-compatible API, free of HTTP: a request (method, path,
 * body text) in, a status and JSON body out. It parses and checks the
 * request, then drives the Vmm through its action API; the Vmm owns the
 * phase rules of its own actions, this layer adds Firecracker's for the
 * resources the Vmm does not hold yet (devices, logger, metrics, serial).
 *
 * Requests run one at a time, in arrival order, as Firecracker's API thread
 * hands them to its VMM thread one by one: a GET never sees a half-applied PUT.
 */
import { Vmm, type VmExitReport } from '../vmm/vmm.js';
import { MiB } from '../arch/x86_64/layout.js';
import { DEFAULT_CMDLINE, type EngineChoice } from '../vmm/config.js';
import { VERSION } from '../version.js';
import { attachConsole, type Console } from '../backends/terminal.js';
import { ApiError, HTTP } from './errors.js';
import { parseJson, parseModel, type AnyObjectSpec, type ObjectSpec } from './schema.js';
import * as M from './models.js';
import { ApiLogger } from './logger.js';
import { ApiMetrics, METRICS_PERIOD_MS } from './metrics.js';
import { checkHostFile, DeviceResources } from './resources.js';
import { ByteBatcher, HostFile } from './sinks.js';

export type HttpMethod = 'GET' | 'PUT' | 'PATCH';

export interface ApiRequest {
  method: string;
  /** The request target's path (a query string is ignored, as Firecracker does). */
  path: string;
  /** The body text; undefined or '' when the request has none. */
  body?: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
}

/** Firecracker's defaults before any PUT /machine-config: 1 vCPU, 128 MiB. */
export const FIRECRACKER_DEFAULT_MEM_MIB = 128;
export const DEFAULT_INSTANCE_ID = 'anonymous-instance';
export const APP_NAME = 'typevisor';

export interface ControllerOptions {
  /** The instance ID (`--id`): in GET / and every log line. */
  id?: string;
  /** The engine when machine-config names none (`--engine`); default auto. */
  defaultEngine?: EngineChoice;
  /** Where guest serial output goes unless PUT /serial names a file (default stdout). */
  serialOutput?: NodeJS.WritableStream;
  /** Host input for the guest's serial console (the CLI passes stdin); none by default. */
  serialInput?: NodeJS.ReadableStream;
  /** Where log lines go until PUT /logger names a file (default stderr). */
  logFallback?: (line: string) => void;
  metricsPeriodMs?: number;
}

interface Route {
  method: HttpMethod;
  /** Path template: `{name}` matches one segment. */
  path: string;
  /** Firecracker's metric name for the resource (`<name>_count`, `<name>_fails`). */
  metric: string;
  handle(params: Record<string, string>, body: unknown): Promise<ApiResponse>;
  /** The request carries a JSON body (PUT/PATCH). */
  body?: AnyObjectSpec;
}

const NO_CONTENT: ApiResponse = { status: HTTP.NO_CONTENT };
const ORIGIN = 'api';

export class ApiController {
  readonly vmm: Vmm;
  readonly logger: ApiLogger;
  readonly metrics: ApiMetrics;
  readonly devices = new DeviceResources();
  readonly id: string;
  private readonly routes: Route[];
  private queue: Promise<unknown> = Promise.resolve();
  private extras: Required<Pick<M.MachineConfiguration, 'smt' | 'track_dirty_pages' | 'huge_pages'>> = { smt: false, track_dirty_pages: false, huge_pages: 'None' };
  private readonly defaultEngine: EngineChoice;
  private serialFile: HostFile | undefined;
  private serialBatcher: ByteBatcher | undefined;
  private console: Console | undefined;
  private exitReport: VmExitReport | undefined;

  constructor(private readonly options: ControllerOptions = {}) {
    this.id = options.id ?? DEFAULT_INSTANCE_ID;
    this.logger = new ApiLogger(this.id, options.logFallback ?? ((line) => process.stderr.write(line)));
    this.vmm = new Vmm({ log: (line) => this.logger.info('vmm', line) });
    this.defaultEngine = options.defaultEngine ?? 'auto';
    this.vmm.configureMachine({ vcpuCount: 1, memBytes: FIRECRACKER_DEFAULT_MEM_MIB * MiB, engine: this.defaultEngine });
    this.metrics = new ApiMetrics(this.id, () => this.gauges());
    this.vmm.on('exit', (report) => this.onExit(report));
    this.routes = this.buildRoutes();
  }

  /** Every method and path served, for the contract test and the README. */
  get served(): { method: HttpMethod; path: string }[] {
    return this.routes.map(({ method, path }) => ({ method, path }));
  }

  /** Handles one request after every earlier one has finished. */
  handle(req: ApiRequest): Promise<ApiResponse> {
    const next = this.queue.then(() => this.handleNow(req));
    this.queue = next.catch(() => {});
    return next;
  }

  private async handleNow(req: ApiRequest): Promise<ApiResponse> {
    const method = req.method.toUpperCase();
    const path = req.path.split('?')[0] ?? '';
    const body = req.body ?? '';
    let route: Route | undefined;
    this.logger.info(ORIGIN, `${method} ${path}${body ? ` with body ${body}` : ''}`);
    try {
      const match = this.match(method, path);
      route = match.route;
      this.metrics.inc(`${method.toLowerCase()}_api_requests`, `${route.metric}_count`);
      let parsed: unknown;
      if (route.body) {
        if (body.trim() === '') throw ApiError.badRequest(`${method} ${route.path} needs a JSON body (${route.body.name})`);
        parsed = parseModel(parseJson(body), route.body);
      } else if (body.trim() !== '') {
        throw ApiError.badRequest(`${method} ${route.path} takes no request body`);
      }
      const res = await route.handle(match.params, parsed);
      this.logger.debug(ORIGIN, `${method} ${path}: ${res.status}`);
      return res;
    } catch (e) {
      const err = ApiError.from(e);
      if (route) this.metrics.inc(`${method.toLowerCase()}_api_requests`, `${route.metric}_fails`);
      this.logger.error(ORIGIN, `${method} ${path}: ${err.status}: ${err.message}`);
      if (err.status >= HTTP.INTERNAL_SERVER_ERROR && e instanceof Error) this.logger.debug(ORIGIN, e.stack ?? '');
      return { status: err.status, body: { fault_message: err.message } };
    }
  }

  private match(method: string, rawPath: string): { route: Route; params: Record<string, string> } {
    const invalid = () => ApiError.badRequest(`invalid request method and/or path: ${method} ${rawPath}`);
    let segments: string[];
    try {
      segments = rawPath.replace(/^\/+/, '').replace(/\/$/, '').split('/').map(decodeURIComponent);
    } catch {
      throw ApiError.badRequest(`the path ${rawPath} is not validly percent-encoded`);
    }
    if (segments.length === 1 && segments[0] === '') segments = [];
    let pathMatched = false;
    for (const route of this.routes) {
      const tpl = route.path.split('/').slice(1).filter((s) => s !== '');
      const params: Record<string, string> = {};
      let ok = tpl.length === segments.length;
      for (let i = 0; ok && i < tpl.length; i++) {
        const t = tpl[i]!;
        const s = segments[i]!;
        if (t.startsWith('{')) params[t.slice(1, -1)] = s;
        else if (t !== s) ok = false;
      }
      if (!ok) {
        // "/drives" with no ID: Firecracker's "The ID cannot be empty", named.
        if (tpl.length === segments.length + 1 && tpl[tpl.length - 1]!.startsWith('{') && tpl.slice(0, -1).every((t, i) => t === segments[i]) && route.method === method) {
          throw ApiError.badRequest(`${method} ${route.path}: the ${tpl[tpl.length - 1]!.slice(1, -1)} is missing from the path`);
        }
        continue;
      }
      pathMatched = true;
      if (route.method !== method) continue;
      for (const [name, value] of Object.entries(params)) {
        if (!new RegExp(M.RESOURCE_ID_PATTERN, 'u').test(value)) {
          throw ApiError.badRequest(`${name} "${value}" in the path is not valid: IDs are made of letters, digits and underscores`);
        }
      }
      return { route, params };
    }
    if (pathMatched) {
      const allowed = this.routes.filter((r) => this.samePath(r.path, segments)).map((r) => r.method);
      throw ApiError.badRequest(`invalid request method and/or path: ${method} ${rawPath} (this path takes ${allowed.join(', ')})`);
    }
    throw invalid();
  }

  private samePath(template: string, segments: string[]): boolean {
    const tpl = template.split('/').slice(1).filter((s) => s !== '');
    return tpl.length === segments.length && tpl.every((t, i) => t.startsWith('{') || t === segments[i]);
  }

  private get started(): boolean {
    return this.vmm.phase !== 'not-started';
  }

  private preBoot(what: string): void {
    if (this.started) throw ApiError.notAfterStart(what);
  }

  private postBoot(what: string): void {
    if (this.vmm.phase === 'not-started') throw ApiError.notBeforeStart(what);
    if (this.vmm.phase === 'stopped') throw ApiError.badRequest(`${what}: the microVM has stopped (${this.exitReport?.message ?? 'ended'})`);
  }

  private checkIdMatch(kind: string, pathId: string, bodyId: string): void {
    if (pathId !== bodyId) throw ApiError.badRequest(`the ${kind} in the path (${pathId}) does not match the one in the body (${bodyId})`);
  }

  instanceInfo(): M.InstanceInfo {
    const state: M.InstanceInfo['state'] = ({ 'not-started': 'Not started', starting: 'Not started', running: 'Running', paused: 'Paused', stopped: 'Stopped' } as const)[this.vmm.phase];
    return { id: this.id, state, vmm_version: VERSION, app_name: APP_NAME };
  }

  machineConfig(): M.MachineConfiguration {
    const m = this.vmm.config().machine;
    return { vcpu_count: m.vcpuCount, mem_size_mib: Math.floor(m.memBytes / MiB), ...this.extras, engine: m.engine };
  }

  fullConfig(): M.FullVmConfiguration {
    const boot = this.vmm.config().boot;
    const d = this.devices.configs();
    let bootSource: M.BootSource | null = null;
    if (boot) {
      bootSource = { kernel_image_path: boot.kernelPath };
      if (boot.initrdPath !== undefined) bootSource.initrd_path = boot.initrdPath;
      if (boot.cmdline !== undefined) bootSource.boot_args = boot.cmdline;
    }
    return {
      'boot-source': bootSource,
      'machine-config': this.machineConfig(),
      drives: d.drives,
      'network-interfaces': d.networkInterfaces,
      vsock: d.vsock ?? null,
      entropy: d.entropy ?? null,
      logger: this.logger.config ?? null,
      metrics: this.metrics.config ?? null,
    };
  }

  private applyMachine(next: M.MachineConfiguration, what: string): void {
    this.preBoot(what);
    if (next.smt === true) throw ApiError.badRequest('smt: simultaneous multithreading is not supported by typevisor (only false)');
    if (next.huge_pages === '2M') throw ApiError.badRequest('huge_pages: hugetlbfs-backed guest memory ("2M") is not supported by typevisor (None or Transparent)');
    if (next.huge_pages === 'Transparent' && next.mem_size_mib % 2 !== 0) {
      throw ApiError.badRequest(`mem_size_mib must be a multiple of 2 with transparent huge pages (got ${next.mem_size_mib})`);
    }
    if (next.cpu_template !== undefined && next.cpu_template !== 'None') {
      throw ApiError.badRequest(`cpu_template: CPU templates (${next.cpu_template}) are not supported by typevisor (only None)`);
    }
    this.vmm.configureMachine({ vcpuCount: next.vcpu_count, memBytes: next.mem_size_mib * MiB, engine: next.engine ?? this.defaultEngine });
    this.extras = { smt: false, track_dirty_pages: next.track_dirty_pages ?? false, huge_pages: next.huge_pages ?? 'None' };
  }

  /**
   * Hands the stored drives to the Vmm in Firecracker's order (the root
   * device first, so it is /dev/vda) and, as Firecracker does, names the root
   * device on the kernel command line unless boot_args already chose one.
   */
  private attachDrives(): void {
    const drives = this.devices.configs().drives;
    for (const d of drives) {
      this.vmm.configureDrive({ id: d.drive_id, pathOnHost: d.path_on_host!, readOnly: d.is_read_only ?? false });
    }
    const root = drives.find((d) => d.is_root_device);
    const boot = this.vmm.config().boot;
    if (root && boot) {
      const cmdline = boot.cmdline ?? DEFAULT_CMDLINE;
      if (!/(^|\s)root=/.test(cmdline)) {
        const device = root.partuuid !== undefined ? `PARTUUID=${root.partuuid}` : '/dev/vda';
        this.vmm.configureBootSource({ ...boot, cmdline: `${cmdline} root=${device} ${root.is_read_only ? 'ro' : 'rw'}` });
      }
    }
  }

  /** Network interfaces become virtio-net NICs on their TAPs; the vsock device its Unix socket. */
  private attachNetAndVsock(): void {
    const d = this.devices.configs();
    for (const n of d.networkInterfaces) {
      this.vmm.configureNet({ id: n.iface_id, tap: n.host_dev_name, ...(n.guest_mac !== undefined && { mac: n.guest_mac }) });
      if (n.rx_rate_limiter || n.tx_rate_limiter || n.mtu !== undefined) {
        this.logger.warn(ORIGIN, `network interface ${n.iface_id}: rate limiters and mtu are accepted but not applied yet`);
      }
    }
    if (d.vsock) this.vmm.configureVsock({ cid: d.vsock.guest_cid, udsPath: d.vsock.uds_path });
  }

  private async start(): Promise<void> {
    this.preBoot('InstanceStart');
    const boot = this.vmm.config().boot;
    if (!boot) throw ApiError.badRequest('cannot start the microVM without a boot source: PUT /boot-source first');
    const serial = this.devices.configs().serial;
    this.attachDrives();
    this.attachNetAndVsock();
    const entropy = this.devices.configs().entropy;
    if (entropy) {
      // Firecracker's bandwidth bucket: `size` bytes per `refill_time` ms.
      const bw = entropy.rate_limiter?.bandwidth;
      this.vmm.configureEntropy(bw && bw.refill_time > 0 ? { rateBytesPerSec: Math.max(1, Math.round((bw.size * 1000) / bw.refill_time)) } : {});
    }
    const file = serial?.serial_out_path !== undefined ? HostFile.open(serial.serial_out_path, 'serial_out_path') : undefined;
    try {
      await this.vmm.start();
    } catch (e) {
      file?.close();
      throw e;
    }
    const machine = this.vmm.runningMachine!;
    if (file) {
      this.serialFile = file;
      this.serialBatcher = new ByteBatcher((chunk) => file.write(chunk));
      machine.setSerialOutput(this.serialBatcher.writeByte);
    } else if (this.options.serialInput) {
      this.console = attachConsole({
        input: this.options.serialInput,
        output: this.options.serialOutput ?? process.stdout,
        serial: machine.serial,
        onQuit: () => void this.vmm.stop().catch(() => {}),
        onCtrlAltDel: () => this.vmm.sendCtrlAltDel(),
      });
      const c = this.console;
      machine.setSerialOutput((b) => c.writeByte(b));
    } else {
      const out = this.options.serialOutput ?? process.stdout;
      this.serialBatcher = new ByteBatcher((chunk) => out.write(chunk));
      machine.setSerialOutput(this.serialBatcher.writeByte);
    }
    this.logger.info(ORIGIN, `microVM started on the ${this.vmm.describe().engine ?? '?'} engine`);
  }

  private onExit(report: VmExitReport): void {
    this.exitReport = report;
    this.serialBatcher?.flush();
    this.logger.info(ORIGIN, `microVM stopped: ${report.message}`);
    this.metrics.flush();
  }

  /** Figures for the metrics file, read when a line is written. */
  private gauges(): Record<string, Record<string, number>> {
    const g: Record<string, Record<string, number>> = {};
    const stats = this.vmm.describe().stats;
    if (stats) g.vm = { ...stats };
    const uart: Record<string, number> = {};
    if (this.serialBatcher) uart.write_count = this.serialBatcher.written;
    if (this.serialFile) uart.missed_write_count = this.serialFile.dropped;
    if (Object.keys(uart).length > 0) g.uart = uart;
    g.logger = { missed_log_count: this.logger.missed };
    return g;
  }

  /**
   * Stops the VM if it runs, flushes the metrics and closes every file;
   * resolves with the VM's exit report, if it ever started.
   */
  async close(): Promise<VmExitReport | undefined> {
    await this.queue;
    let report = this.exitReport;
    if (this.vmm.phase === 'running' || this.vmm.phase === 'paused') report = await this.vmm.stop();
    else if (this.vmm.phase === 'stopped') report = await this.vmm.exited();
    this.serialBatcher?.flush();
    await this.console?.close();
    this.console = undefined;
    this.serialFile?.close();
    this.metrics.flush();
    this.metrics.close();
    this.logger.close();
    return report;
  }

  private buildRoutes(): Route[] {
    const get = (path: string, metric: string, handle: () => unknown): Route => ({
      method: 'GET',
      path,
      metric,
      handle: async () => ({ status: HTTP.OK, body: handle() }),
    });
    const put = <T extends object>(method: 'PUT' | 'PATCH', path: string, metric: string, spec: ObjectSpec<T>, handle: (params: Record<string, string>, body: T) => Promise<void> | void): Route => ({
      method,
      path,
      metric,
      body: spec,
      handle: async (params, body) => {
        await handle(params, body as T);
        return NO_CONTENT;
      },
    });
    return [
      get('/', 'instance_info', () => this.instanceInfo()),
      get('/version', 'vmm_version', () => ({ firecracker_version: VERSION })),
      get('/machine-config', 'machine_cfg', () => this.machineConfig()),
      get('/vm/config', 'vm_config', () => this.fullConfig()),
      put('PUT', '/machine-config', 'machine_cfg', M.MACHINE_CONFIGURATION, (_, b) => this.applyMachine(b, 'PUT /machine-config')),
      put('PATCH', '/machine-config', 'machine_cfg', M.PARTIAL_MACHINE_CONFIGURATION, (_, b) => {
        if (Object.keys(b).length === 0) throw ApiError.badRequest('PATCH /machine-config with no fields changes nothing');
        this.applyMachine({ ...this.machineConfig(), ...b }, 'PATCH /machine-config');
      }),
      put('PUT', '/boot-source', 'boot_source', M.BOOT_SOURCE, async (_, b) => {
        this.preBoot('PUT /boot-source');
        await checkHostFile(b.kernel_image_path, 'kernel_image_path');
        if (b.initrd_path !== undefined) await checkHostFile(b.initrd_path, 'initrd_path');
        this.vmm.configureBootSource({
          kernelPath: b.kernel_image_path,
          ...(b.initrd_path !== undefined && { initrdPath: b.initrd_path }),
          ...(b.boot_args !== undefined && { cmdline: b.boot_args }),
        });
      }),
      put('PUT', '/drives/{drive_id}', 'drive', M.DRIVE, async (p, b) => {
        this.checkIdMatch('drive_id', p.drive_id!, b.drive_id);
        this.preBoot('PUT /drives (attaching a drive to a running microVM)');
        await this.devices.putDrive(b);
      }),
      put('PATCH', '/drives/{drive_id}', 'drive', M.PARTIAL_DRIVE, async (p, b) => {
        this.checkIdMatch('drive_id', p.drive_id!, b.drive_id);
        this.postBoot('PATCH /drives');
        const d = await this.devices.patchDrive(b);
        if (b.path_on_host !== undefined) this.vmm.configureDrive({ id: d.drive_id, pathOnHost: d.path_on_host!, readOnly: d.is_read_only ?? false });
      }),
      put('PUT', '/network-interfaces/{iface_id}', 'network', M.NETWORK_INTERFACE, (p, b) => {
        this.checkIdMatch('iface_id', p.iface_id!, b.iface_id);
        this.preBoot('PUT /network-interfaces (attaching an interface to a running microVM)');
        this.devices.putNetworkInterface(b);
      }),
      put('PATCH', '/network-interfaces/{iface_id}', 'network', M.PARTIAL_NETWORK_INTERFACE, (p, b) => {
        this.checkIdMatch('iface_id', p.iface_id!, b.iface_id);
        this.postBoot('PATCH /network-interfaces');
        this.devices.patchNetworkInterface(b);
      }),
      put('PUT', '/vsock', 'vsock', M.VSOCK, async (_, b) => {
        this.preBoot('PUT /vsock');
        await this.devices.setVsock(b);
      }),
      put('PUT', '/entropy', 'entropy', M.ENTROPY_DEVICE, (_, b) => {
        this.preBoot('PUT /entropy');
        this.devices.setEntropy(b);
      }),
      put('PUT', '/serial', 'serial', M.SERIAL_DEVICE, async (_, b) => {
        this.preBoot('PUT /serial');
        await this.devices.setSerial(b);
      }),
      put('PUT', '/logger', 'logger', M.LOGGER, (_, b) => {
        this.preBoot('PUT /logger');
        this.logger.configure(b);
      }),
      put('PUT', '/metrics', 'metrics', M.METRICS, (_, b) => {
        this.preBoot('PUT /metrics');
        this.metrics.configure(b, this.options.metricsPeriodMs ?? METRICS_PERIOD_MS);
      }),
      put('PUT', '/actions', 'actions', M.INSTANCE_ACTION_INFO, async (_, b) => {
        switch (b.action_type) {
          case 'InstanceStart':
            return this.start();
          case 'SendCtrlAltDel':
            this.postBoot('SendCtrlAltDel');
            return this.vmm.sendCtrlAltDel();
          case 'FlushMetrics':
            this.postBoot('FlushMetrics');
            this.metrics.flush();
            return;
        }
      }),
      put('PATCH', '/vm', 'vm', M.VM_STATE, async (_, b) => {
        this.postBoot(`PATCH /vm ${b.state}`);
        if (b.state === 'Paused') await this.vmm.pause();
        else this.vmm.resume();
      }),
    ];
  }
}
