export * from './message.js';
export * from './tsc.js';
export * from './lapic.js';
export * from './ioapic.js';
export * from './router.js';
export { ApicStateError } from './state.js';

import { IoApic } from './ioapic.js';
import { Lapic } from './lapic.js';
import { ApicRouter } from './router.js';
import { GuestTsc } from './tsc.js';

export interface InterruptControllersOptions {
  /** Number of vCPUs (one local APIC each, APIC ID = index). */
  cpus: number;
  /** The VM's guest TSC (shared by every vCPU). */
  tsc: GuestTsc;
  /** Called when vCPU `cpu` may have an interrupt or event to take: wake it if halted. */
  wake?: (cpu: number) => void;
}

export interface InterruptControllers {
  tsc: GuestTsc;
  lapics: Lapic[];
  ioapic: IoApic;
  router: ApicRouter;
}

/** The machine's interrupt hardware as the MADT describes it: one local APIC per vCPU, one IOAPIC (id 0, GSI 0..23). */
export function createInterruptControllers(options: InterruptControllersOptions): InterruptControllers {
  const router = new ApicRouter();
  const lapics: Lapic[] = [];
  for (let cpu = 0; cpu < options.cpus; cpu++) {
    const lapic = new Lapic({
      index: cpu,
      tsc: options.tsc,
      sendIpi: (m) => { router.deliver(m); },
      eoiBroadcast: (v) => router.eoi(v),
      wake: options.wake ? () => options.wake!(cpu) : undefined,
    });
    router.add(lapic);
    lapics.push(lapic);
  }
  const ioapic = new IoApic({ deliver: (m) => router.deliver(m) });
  router.onEoi((v) => ioapic.endOfInterrupt(v));
  return { tsc: options.tsc, lapics, ioapic, router };
}
