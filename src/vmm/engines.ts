import { EngineUnavailableError, type Engine, type ExitDispatcher } from '../engine/engine.js';
import type { KvmEngine } from '../engine/kvm/index.js';
import { allocateGuestMemory } from '../memory/index.js';
import { bootCpuState } from '../boot/index.js';
import { HIMEM_START, MiB, ZERO_PAGE_ADDR } from '../arch/x86_64/layout.js';
import { VmmError } from './errors.js';
import type { EngineChoice } from './config.js';

/**
 * The engine registry: the one place that knows which engines exist and how
 * to pick one. The machine asks for an engine by choice and gets an Engine or
 * a VmmError saying why none can run here.
 *
 * Each engine's modules are imported only when it is chosen: the soft engine's
 * decoder tables alone take longer to load than the KVM engine needs to reach
 * the guest's first instruction.
 */

export interface EngineSelection {
  engine: Engine & { close?(): void };
  /** One line for the user when the choice was made for them. */
  note?: string;
}

/** Guest kernel code faster than this (instructions/s) counts as running natively. */
const NATIVE_IPS = 100e6;
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
}

/**
 * Runs a 100,000-instruction loop in kernel mode under KVM and times it. On
 * hardware-assisted KVM it takes microseconds; where guest kernel code is
 * emulated (PVM, or nested setups without VT-x) it takes tens of milliseconds.
 */
export async function probeKvm(engine: KvmEngine): Promise<KvmProbe> {
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

async function openKvm(): Promise<KvmEngine> {
  const { KvmEngine } = await import('../engine/kvm/index.js');
  try {
    const devicePath = process.env.TYPEVISOR_KVM_DEVICE;
    return new KvmEngine(devicePath ? { devicePath } : {});
  } catch (e) {
    if (e instanceof EngineUnavailableError) throw new VmmError('engine-unavailable', `kvm engine: ${e.message}`);
    throw e;
  }
}

async function softEngine(): Promise<Engine> {
  const { SoftEngine } = await import('../engine/soft/engine.js');
  return new SoftEngine();
}

export async function selectEngine(choice: EngineChoice): Promise<EngineSelection> {
  switch (choice) {
    case 'kvm':
      return { engine: await openKvm() };
    case 'soft':
      return { engine: await softEngine() };
    case 'auto': {
      let kvm: KvmEngine;
      try {
        kvm = await openKvm();
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        return { engine: await softEngine(), note: `engine: soft (${why})` };
      }
      const probe = await probeKvm(kvm);
      const rate = `${(probe.ips / 1e6).toFixed(probe.ips < 1e7 ? 1 : 0)} M instructions/s`;
      if (probe.native) return { engine: kvm, note: `engine: kvm (guest kernel code runs natively, ${rate})` };
      kvm.close();
      return {
        engine: await softEngine(),
        note: `engine: soft (KVM here emulates guest kernel code: ${rate}; use --engine kvm to run on it anyway)`,
      };
    }
  }
}
