import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir, release, version } from 'node:os';
import { dirname, join } from 'node:path';
import { EngineUnavailableError, type Engine, type ExitDispatcher } from '../engine/engine.js';
import type { KvmEngine } from '../engine/kvm/index.js';
import type { SpareVcpuThread } from '../engine/kvm/vcpu-thread.js';
import { allocateGuestMemory } from '../memory/index.js';
import { HIMEM_START, MiB, ZERO_PAGE_ADDR } from '../arch/x86_64/layout.js';
import { VmmError } from './errors.js';
import type { EngineChoice } from './config.js';

/**
 * The engine registry: the one place that knows which engines exist and how
 * to pick one. The machine asks for an engine by choice and gets an Engine or
 * a VmmError saying why none can run here.
 *
 * Start-up time is spent here or saved here: each engine's modules are
 * imported only when it is chosen (the soft engine's decoder tables alone take
 * longer to load than the KVM engine needs to reach the guest's first
 * instruction), a front end that knows the choice early can open the engine
 * while the machine's modules load (prepareEngine), and `auto`'s KVM probe is
 * remembered per host boot (probeKvmCached).
 */

export interface EngineSelection {
  engine: Engine & { close?(): void };
  /** One line for the user when the choice was made for them. */
  note?: string;
}

/** Guest kernel code faster than this (instructions/s) counts as running natively. */
const NATIVE_IPS = 100e6;
/**
 * Probe results below this are remembered as "emulated": 10× under the
 * native threshold, so a native KVM measured on a busy host (a probe of
 * ~30 µs stretched past 1 ms by preemption) is not cached as slow.
 */
const EMULATED_IPS = NATIVE_IPS / 10;
const PROBE_LOOPS = 50_000;
const PORT_PROBE_START = 0x80;
const PORT_PROBE_END = 0x81;

/**
 * The probe guest, entered in 64-bit mode at CPL0 like a kernel:
 *   out 0x80, al; mov ecx, PROBE_LOOPS; 1: dec ecx; jnz 1b; out 0x81, al; 2: hlt; jmp 2b
 */
function probeCode(): Uint8Array {
  const n = PROBE_LOOPS;
  return Uint8Array.of(0xe6, PORT_PROBE_START, 0xb9, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24, 0xff, 0xc9, 0x75, 0xfc, 0xe6, PORT_PROBE_END, 0xf4, 0xeb, 0xfd);
}

export interface KvmProbe {
  /** Guest CPL0 instructions per second measured on KVM. */
  ips: number;
  native: boolean;
  /** Taken from the probe cache rather than measured now. */
  cached?: boolean;
}

/**
 * Runs a 100,000-instruction loop in kernel mode under KVM and times it. On
 * hardware-assisted KVM it takes microseconds; where guest kernel code is
 * emulated (PVM, or nested setups without VT-x) it takes tens of milliseconds.
 */
export async function probeKvm(engine: KvmEngine): Promise<KvmProbe> {
  const { bootCpuState } = await import('../boot/index.js');
  const memory = allocateGuestMemory([{ base: 0, size: 4 * MiB }], engine.memoryBacking());
  memory.write(HIMEM_START, probeCode());
  let started = 0n;
  let elapsed = 0n;
  const stopper: { stop?: () => void } = {};
  const dispatcher: ExitDispatcher = {
    pio(_cpu, port, _data, isWrite) {
      if (!isWrite) return;
      if (port === PORT_PROBE_START) started = process.hrtime.bigint();
      if (port === PORT_PROBE_END) {
        elapsed = process.hrtime.bigint() - started;
        stopper.stop?.();
      }
    },
    mmio() {},
  };
  const vm = await engine.createVm({ memory, cpus: 1, boot: bootCpuState(memory, HIMEM_START, ZERO_PAGE_ADDR), dispatcher });
  stopper.stop = () => vm.requestStop({ reason: 'host-stop' });
  const timeout = setTimeout(() => vm.requestStop({ reason: 'host-stop' }), 5000);
  try {
    await vm.run();
  } finally {
    clearTimeout(timeout);
    await vm.close();
  }
  // Timed out: slower than 20 k instructions/s, surely not native.
  const seconds = elapsed > 0n ? Number(elapsed) / 1e9 : 5;
  const ips = (2 * PROBE_LOOPS) / seconds;
  return { ips, native: ips >= NATIVE_IPS };
}

/**
 * What a probe result depends on: the host kernel, this boot of it (firmware
 * settings, nesting set up by an outer hypervisor), which KVM modules are
 * loaded, and the device node itself (reloading a KVM module creates a new
 * node: new inode, new ctime). Any change makes the cached result stale.
 */
export interface KvmHostKey {
  release: string;
  version: string;
  bootId: string;
  modules: string[];
  device: string;
  dev: { rdev: number; ino: number; ctimeMs: number };
}

/** The key of this host and `devicePath` now; undefined if part of it cannot be read (nothing is cached then). */
export function kvmHostKey(devicePath: string): KvmHostKey | undefined {
  try {
    const st = statSync(devicePath);
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    // /sys/module lists loaded modules and built-in ones with parameters (kvm, kvm_amd, kvm_pvm…).
    const modules = readdirSync('/sys/module').filter((name) => name.startsWith('kvm')).sort();
    return { release: release(), version: version(), bootId, modules, device: devicePath, dev: { rdev: st.rdev, ino: st.ino, ctimeMs: st.ctimeMs } };
  } catch {
    return undefined;
  }
}

/** `$XDG_CACHE_HOME/typevisor/kvm-probe.json`, else `~/.cache/typevisor/kvm-probe.json`. */
export function defaultProbeCachePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'typevisor', 'kvm-probe.json');
}

const PROBE_CACHE_VERSION = 1;

interface ProbeCacheFile {
  version: number;
  key: KvmHostKey;
  ips: number;
}

function readProbeCache(path: string, key: KvmHostKey): KvmProbe | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined; // absent or corrupt: probe again and overwrite
  }
  const file = parsed as Partial<ProbeCacheFile> | null;
  if (!file || typeof file !== 'object' || file.version !== PROBE_CACHE_VERSION) return undefined;
  if (typeof file.ips !== 'number' || !Number.isFinite(file.ips) || file.ips <= 0) return undefined;
  if (JSON.stringify(file.key) !== JSON.stringify(key)) return undefined;
  // Only clear verdicts are written; a file saying otherwise was not written by us.
  if (file.ips >= EMULATED_IPS && file.ips < NATIVE_IPS) return undefined;
  return { ips: file.ips, native: file.ips >= NATIVE_IPS, cached: true };
}

function writeProbeCache(path: string, key: KvmHostKey, ips: number): void {
  const file: ProbeCacheFile = { version: PROBE_CACHE_VERSION, key, ips };
  // Written aside and renamed, so a concurrent reader sees the old file or the new one, never half.
  const temp = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(temp, `${JSON.stringify(file)}\n`);
    renameSync(temp, path);
  } catch {
    // A cache that cannot be written costs the next run a probe, nothing more.
  }
}

export interface ProbeCacheOptions {
  /** The cache file (default: defaultProbeCachePath()). */
  path?: string;
  /** This host's key (default: kvmHostKey(device)); tests inject one. */
  key?: KvmHostKey | undefined;
  /** The probe to run on a miss (default: probeKvm). */
  probe?: (engine: KvmEngine) => Promise<KvmProbe>;
}

/**
 * probeKvm, remembered: the result is stored with the host key and reused
 * while the key is unchanged. Only clear verdicts are stored (native, or
 * under EMULATED_IPS); a result in between is measured again next time.
 */
export async function probeKvmCached(engine: KvmEngine, device: string, options: ProbeCacheOptions = {}): Promise<KvmProbe> {
  const path = options.path ?? defaultProbeCachePath();
  const key = 'key' in options ? options.key : kvmHostKey(device);
  const hit = key && readProbeCache(path, key);
  if (hit) return hit;
  const probe = await (options.probe ?? probeKvm)(engine);
  if (key && (probe.native || probe.ips < EMULATED_IPS)) writeProbeCache(path, key, probe.ips);
  return probe;
}

function kvmDevice(): string {
  return process.env.TYPEVISOR_KVM_DEVICE || '/dev/kvm';
}

/**
 * Opens KVM with the boot CPU's thread already starting: the thread is
 * started first, so its start-up overlaps loading the engine's modules and
 * koffi here and whatever the machine does before createVm.
 */
async function openKvm(): Promise<KvmEngine> {
  const device = kvmDevice();
  let spare: SpareVcpuThread | undefined;
  try {
    // No device, no thread: the open below fails with the reason anyway.
    if (existsSync(device)) {
      const { SpareVcpuThread } = await import('../engine/kvm/vcpu-thread.js');
      spare = new SpareVcpuThread();
    }
    const { KvmEngine } = await import('../engine/kvm/index.js');
    return new KvmEngine({ devicePath: device, ...(spare && { spares: [spare] }) });
  } catch (e) {
    spare?.end();
    if (e instanceof EngineUnavailableError) throw new VmmError('engine-unavailable', `kvm engine: ${e.message}`);
    throw e;
  }
}

/** The probe result cached for this host and device, if any. */
function cachedProbe(): KvmProbe | undefined {
  const key = kvmHostKey(kvmDevice());
  return key && readProbeCache(defaultProbeCachePath(), key);
}

/** A KVM engine opened by prepareEngine for the next selectEngine. */
let prepared: Promise<KvmEngine> | undefined;

/**
 * Opens the engine `choice` will need now, for a front end that knows the
 * choice before it builds the machine: for `kvm` and `auto`, /dev/kvm is
 * opened and the boot CPU's thread starts while the machine's modules load.
 * The next selectEngine('kvm' or 'auto') takes it (and reports its errors);
 * nothing is prepared for `soft`.
 */
export function prepareEngine(choice: EngineChoice): void {
  if (choice === 'soft' || prepared) return;
  if (choice === 'auto' && cachedProbe()?.native === false) return;
  prepared = openKvm();
  // Its failure is reported by the selectEngine that takes it.
  prepared.catch(() => {});
}

function takeKvm(): Promise<KvmEngine> {
  const kvm = prepared ?? openKvm();
  prepared = undefined;
  return kvm;
}

function rate(probe: KvmProbe): string {
  const ips = `${(probe.ips / 1e6).toFixed(probe.ips < 1e7 ? 1 : 0)} M instructions/s`;
  return probe.cached ? `${ips}, measured earlier this boot` : ips;
}

async function softEngine(): Promise<Engine> {
  const { SoftEngine } = await import('../engine/soft/engine.js');
  return new SoftEngine();
}

export async function selectEngine(choice: EngineChoice): Promise<EngineSelection> {
  switch (choice) {
    case 'kvm':
      return { engine: await takeKvm() };
    case 'soft':
      return { engine: await softEngine() };
    case 'auto': {
      const emulated = (probe: KvmProbe) => ({
        note: `engine: soft (KVM here emulates guest kernel code: ${rate(probe)}; use --engine kvm to run on it anyway)`,
      });
      // Known to be emulated here: no need to open KVM at all.
      const known = cachedProbe();
      if (known && !known.native) {
        if (prepared) void takeKvm().then((kvm) => kvm.close(), () => {});
        return { engine: await softEngine(), ...emulated(known) };
      }
      let kvm: KvmEngine;
      try {
        kvm = await takeKvm();
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        return { engine: await softEngine(), note: `engine: soft (${why})` };
      }
      const probe = await probeKvmCached(kvm, kvmDevice());
      if (probe.native) {
        // The probe's VM (if it ran) took the thread started for the machine.
        kvm.prestartVcpus(1);
        return { engine: kvm, note: `engine: kvm (guest kernel code runs natively, ${rate(probe)})` };
      }
      kvm.close();
      return { engine: await softEngine(), ...emulated(probe) };
    }
  }
}
