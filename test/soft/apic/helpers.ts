/** Shared pieces of the APIC tests: a hand-driven clock and 32-bit MMIO accessors. */
import type { BusDevice } from '../../../src/bus/index.js';
import { GuestTsc, Lapic, type ApicMessage, type LapicOptions } from '../../../src/engine/soft/apic/index.js';

/** Host time that moves only when the test says so. */
export class FakeClock {
  constructor(public now = 5_000_000) {}
  readonly read = (): number => this.now;
  advance(ns: number): number {
    this.now += ns;
    return this.now;
  }
}

export function write32(dev: BusDevice, offset: number, value: number): void {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, value >>> 0, true);
  dev.write(offset, b);
}

export function read32(dev: BusDevice, offset: number): number {
  const b = new Uint8Array(4);
  dev.read(offset, b);
  return new DataView(b.buffer).getUint32(0, true);
}

export interface LapicRig {
  clock: FakeClock;
  tsc: GuestTsc;
  lapic: Lapic;
  sent: ApicMessage[];
  eois: number[];
  wakes: { count: number };
}

/** A local APIC on a fake clock, recording the IPIs it sends, its EOI broadcasts and wake calls. */
export function lapicRig(options: Partial<LapicOptions> = {}, hz?: number): LapicRig {
  const clock = new FakeClock();
  const tsc = new GuestTsc({ clock: clock.read, hz });
  const sent: ApicMessage[] = [];
  const eois: number[] = [];
  const wakes = { count: 0 };
  const lapic = new Lapic({
    index: 0,
    tsc,
    sendIpi: (m) => sent.push(m),
    eoiBroadcast: (v) => eois.push(v),
    wake: () => wakes.count++,
    ...options,
  });
  return { clock, tsc, lapic, sent, eois, wakes };
}

/** What Linux 6.1's setup_local_APIC + lapic_setup_esr leave behind on the boot CPU (apic.c). */
export function linuxApicSetup(lapic: Lapic): void {
  write32(lapic, 0x0f0, read32(lapic, 0x0f0) & ~0x100); // soft-disable first, in case kexec left it on
  write32(lapic, 0x0e0, 0xffffffff); // DFR flat
  write32(lapic, 0x0d0, (read32(lapic, 0x0d0) & 0x00ffffff) | (1 << 24)); // LDR: logical ID bit of CPU 0
  write32(lapic, 0x080, (read32(lapic, 0x080) & ~0xff) | 0x10); // TPR: block vectors 0..31
  write32(lapic, 0x0f0, (read32(lapic, 0x0f0) & ~0xff) | 0x100 | 0xff); // SVR: enable, spurious 0xFF
  write32(lapic, 0x350, 0x700 | 0x10000); // LINT0: ExtINT, masked
  write32(lapic, 0x360, 0x400); // LINT1: NMI
  write32(lapic, 0x280, 0); // ESR
  read32(lapic, 0x280);
  write32(lapic, 0x370, 0xfe); // LVT error: vector 0xFE
  write32(lapic, 0x280, 0);
  read32(lapic, 0x280);
}
