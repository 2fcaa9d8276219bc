import { readFile, stat } from 'node:fs/promises';
import { Bus } from '../bus/index.js';
import type { EngineVm, VmStop } from '../engine/engine.js';
import { allocateGuestMemory, type GuestMemory } from '../memory/index.js';
import * as layout from '../arch/x86_64/layout.js';
import { buildAcpi } from '../acpi/index.js';
import { prepareLinuxBoot } from '../boot/index.js';
import { VmmError } from './errors.js';
import { DEFAULT_CMDLINE, type MachineConfig, type BootSourceConfig, type DevicesConfig } from './config.js';
import { VirtioSlots } from './virtio-devices.js';
import { VirtioRng } from '../virtio/index.js';
import { BlockBackendError, FileBackend, VirtioBlock } from '../virtio/blk/index.js';
import { VirtioNet } from '../virtio/net/index.js';
import { VirtioVsock } from '../virtio/vsock/index.js';
import { TapBackend } from '../backends/tap.js';
import { UnixVsockBackend } from '../backends/unix-vsock.js';
import { BusDispatcher } from './dispatcher.js';
import { selectEngine } from './engines.js';
import { LegacyDevices } from './legacy-devices.js';
import { formatSize } from './size.js';

export interface MachineOptions {
  /** One-line notices from the VMM (engine choice, device resets…). */
  log?: (line: string) => void;
  /** Also log each guest access to an address no device claims (once per address). */
  debug?: boolean;
}

/**
 * Appends the engine's kernel parameters whose keys the command line does not
 * already set, so a user's own choice always wins.
 */
export function withEngineArgs(cmdline: string, args: readonly string[]): string {
  const keys = new Set(cmdline.split(/\s+/).filter(Boolean).map((t) => t.split('=')[0]));
  const extra = args.filter((a) => !keys.has(a.split('=')[0]));
  return extra.length ? `${cmdline} ${extra.join(' ')}` : cmdline;
}

async function readInput(path: string, what: string): Promise<Uint8Array> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new VmmError('bad-file', `${what} ${path} is not a regular file`);
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if (e instanceof VmmError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new VmmError('bad-file', `${what} ${path} does not exist`);
    if (code === 'EACCES') throw new VmmError('bad-file', `${what} ${path} is not readable (permission denied)`);
    throw new VmmError('bad-file', `cannot read ${what} ${path}: ${(e as Error).message}`);
  }
}

/** Opens a drive's raw image; an unusable file is a VmmError that says why. */
export function openDrive(path: string, readOnly: boolean): FileBackend {
  try {
    return FileBackend.open(path, { readOnly });
  } catch (e) {
    if (e instanceof BlockBackendError) throw new VmmError('bad-file', e.message);
    throw e;
  }
}

/** Host-side resources behind the devices, released together when the VM ends or a build fails. */
class HostResources {
  readonly drives = new Map<string, VirtioBlock>();
  private readonly closers: (() => Promise<void>)[] = [];

  add(close: () => Promise<void>): void {
    this.closers.push(close);
  }

  async close(): Promise<void> {
    const closers = this.closers.splice(0);
    await Promise.all(closers.map((c) => c().catch(() => {})));
  }
}

/**
 * One x86-64 PC-like machine: RAM, the legacy devices, ACPI, a booted kernel,
 * and an engine running its vCPUs. Knows nothing of front ends; knows engines
 * only through the Engine interface.
 */
export class Machine {
  private constructor(
    readonly engineName: string,
    readonly memory: GuestMemory,
    private readonly vm: EngineVm,
    private readonly legacy: LegacyDevices,
    private readonly virtio: VirtioSlots,
    private readonly dispatcher: BusDispatcher,
    private readonly releaseEngine: () => void,
    private readonly host: HostResources,
  ) {}

  static async build(config: { machine: MachineConfig; boot: BootSourceConfig; devices?: DevicesConfig }, options: MachineOptions = {}): Promise<Machine> {
    // Host resources (disk images, TAPs, sockets) are opened while planning;
    // a build that fails later releases them.
    const host = new HostResources();
    try {
      return await Machine.buildWith(config, options, host);
    } catch (e) {
      await host.close();
      throw e;
    }
  }

  private static async buildWith(config: { machine: MachineConfig; boot: BootSourceConfig; devices?: DevicesConfig }, options: MachineOptions, host: HostResources): Promise<Machine> {
    const log = options.log ?? (() => {});
    const { machine, boot } = config;
    const virtio = await Machine.planVirtio(config.devices ?? {}, host);
    const kernel = await readInput(boot.kernelPath, 'kernel');
    const initrd = boot.initrdPath !== undefined ? await readInput(boot.initrdPath, 'initrd') : undefined;
    if (initrd && initrd.length >= machine.memBytes) {
      throw new VmmError('invalid-config', `initrd ${boot.initrdPath} (${formatSize(initrd.length)}) is larger than guest memory (${formatSize(machine.memBytes)})`);
    }

    const { engine, note } = await selectEngine(machine.engine);
    if (note) log(note);
    if (machine.vcpuCount > engine.maxCpus()) {
      throw new VmmError('invalid-config', `vCPU count ${machine.vcpuCount} is above the ${engine.name} engine's limit of ${engine.maxCpus()} here`);
    }

    const memory = allocateGuestMemory(layout.ramRanges(machine.memBytes), engine.memoryBacking());
    const pioBus = new Bus('pio');
    const mmioBus = new Bus('mmio');
    const legacy = new LegacyDevices();
    const acpi = buildAcpi(memory, { cpus: machine.vcpuCount, devices: [...LegacyDevices.aml(), ...virtio.aml()] });
    let bootInfo;
    try {
      bootInfo = prepareLinuxBoot(memory, {
        kernel,
        ...(initrd && { initrd }),
        cmdline: withEngineArgs(boot.cmdline ?? DEFAULT_CMDLINE, engine.kernelArgs?.(machine.vcpuCount) ?? []),
        rsdpAddr: acpi.rsdpAddr,
        memBytes: machine.memBytes,
      });
    } catch (e) {
      if (e instanceof Error && !(e instanceof VmmError)) throw new VmmError('bad-file', e.message);
      throw e;
    }
    // Guests probe for hardware that is not there (Linux: PCI config ports,
    // the PIT); each unclaimed address is worth a line only when debugging.
    const dispatcher = new BusDispatcher(pioBus, mmioBus, options.debug ? (what) => log(what) : () => {});
    const release = () => engine.close?.();
    let vm: EngineVm;
    try {
      vm = await engine.createVm({ memory, cpus: machine.vcpuCount, boot: bootInfo.cpu, dispatcher });
    } catch (e) {
      release();
      throw e;
    }
    legacy.attach(pioBus, vm, machine.memBytes);
    virtio.attach(mmioBus, vm, memory, log);
    return new Machine(engine.name, memory, vm, legacy, virtio, dispatcher, release, host);
  }

  private static async planVirtio(devices: DevicesConfig, host: HostResources): Promise<VirtioSlots> {
    const slots = new VirtioSlots();
    for (const d of devices.drives ?? []) {
      if (host.drives.has(d.id)) throw new VmmError('invalid-config', `two drives have the id "${d.id}"`);
      const blk = new VirtioBlock({ backend: openDrive(d.pathOnHost, d.readOnly), id: d.id });
      host.drives.set(d.id, blk);
      host.add(() => blk.close());
      slots.add(`virtio-blk:${d.id}`, blk);
    }
    for (const n of devices.nets ?? []) {
      let tap: TapBackend;
      try {
        tap = TapBackend.open(n.tap);
      } catch (e) {
        throw new VmmError('bad-file', `network interface ${n.id}: ${(e as Error).message}`);
      }
      host.add(() => tap.close());
      slots.add(`virtio-net:${n.id}`, new VirtioNet({ backend: tap, ...(n.mac !== undefined && { mac: n.mac }) }));
    }
    if (devices.vsock) {
      const { cid, udsPath } = devices.vsock;
      let uds: UnixVsockBackend;
      try {
        uds = await UnixVsockBackend.listen(udsPath);
      } catch (e) {
        throw new VmmError('bad-file', `vsock: ${(e as Error).message}`);
      }
      host.add(() => uds.close());
      slots.add('virtio-vsock', new VirtioVsock({ cid, backend: uds }));
    }
    if (devices.entropy) {
      const rate = devices.entropy.rateBytesPerSec;
      if (rate !== undefined && (!Number.isSafeInteger(rate) || rate <= 0)) {
        throw new VmmError('invalid-config', `entropy rate must be a positive whole number of bytes per second (got ${rate})`);
      }
      slots.add('virtio-rng', new VirtioRng(rate !== undefined ? { limit: { rate, burst: Math.max(rate / 4, 4096) } } : {}));
    }
    return slots;
  }

  /** The COM1 UART, for a console backend to feed input into. */
  get serial() {
    return this.legacy.serial;
  }

  /**
   * Where guest serial output goes, byte by byte (the UART transmits bytes;
   * the sink batches). Output before a sink is set is kept, up to 1 MiB.
   */
  setSerialOutput(sink: (byte: number) => void): void {
    this.legacy.setSerialOutput(sink);
  }

  run(): Promise<VmStop> {
    return this.vm.run();
  }

  requestStop(stop: VmStop): void {
    this.vm.requestStop(stop);
  }

  pause(): Promise<void> {
    return this.vm.pause();
  }

  resume(): void {
    this.vm.resume();
  }

  sendCtrlAltDel(): void {
    this.legacy.sendCtrlAltDel();
  }

  stats(): Record<string, number> {
    return { ...this.vm.stats(), pioExits: this.dispatcher.pioExits, mmioExits: this.dispatcher.mmioExits };
  }

  /**
   * Points drive `id` at another image while the VM runs (Firecracker's
   * PATCH /drives/{id}): requests in flight finish on the old file, the guest
   * gets a configuration change and rereads the capacity.
   */
  replaceDrive(id: string, pathOnHost: string): void {
    const blk = this.host.drives.get(id);
    if (!blk) throw new VmmError('invalid-config', `no drive "${id}" in this VM`);
    blk.replaceBackend(openDrive(pathOnHost, blk.readOnly));
  }

  async close(): Promise<void> {
    await this.vm.close();
    this.virtio.reset();
    await this.host.close();
    this.releaseEngine();
  }
}
