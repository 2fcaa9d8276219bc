/**
 * The system bus between the IOAPIC and the local APICs: resolves a
 * message's destination (shorthand, physical ID, logical flat/cluster) to
 * local APICs and hands it to each; carries EOI broadcasts back to the
 * IOAPIC(s). One per VM; with one vCPU it has a single APIC.
 */
import type { Lapic } from './lapic.js';
import { DM_LOWEST, type ApicMessage } from './message.js';

export class ApicRouter {
  private readonly lapics: Lapic[] = [];
  private readonly eoiListeners: ((vector: number) => void)[] = [];

  /** Adds a vCPU's local APIC; its `sendIpi` should call `deliver`. */
  add(lapic: Lapic): void {
    if (this.lapics.some((l) => l.index === lapic.index)) throw new RangeError(`local APIC ${lapic.index} is already on the bus`);
    this.lapics.push(lapic);
  }

  /** Registers a receiver of EOI broadcasts (an IOAPIC's `endOfInterrupt`). */
  onEoi(listener: (vector: number) => void): void {
    this.eoiListeners.push(listener);
  }

  /**
   * Delivers `message` to every local APIC it addresses; lowest-priority
   * delivery picks the one with the lowest arbitration priority (ties: the
   * lowest index; focus-processor checking is not modelled). Returns whether
   * any APIC accepted it.
   */
  deliver(message: ApicMessage): boolean {
    let targets = this.lapics.filter((l) => l.hardwareEnabled && l.isDestination(message));
    if (message.mode === DM_LOWEST && targets.length > 1) {
      let best = targets[0]!;
      for (const l of targets) if (l.arbitrationPriority() < best.arbitrationPriority()) best = l;
      targets = [best];
    }
    let accepted = false;
    for (const l of targets) accepted = l.accept(message) || accepted;
    return accepted;
  }

  /** A local APIC's EOI of a level-triggered vector. */
  eoi(vector: number): void {
    for (const listener of this.eoiListeners) listener(vector);
  }
}
