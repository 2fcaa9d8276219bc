/**
 * An interrupt line from a device to the platform's interrupt controller.
 * Devices drive the level they would drive on the wire; the engine decides how
 * that reaches the guest (KVM: irqfd/KVM_IRQ_LINE into the in-kernel IOAPIC;
 * soft: its own IOAPIC model).
 */
export interface IrqLine {
  /** Drives the line to `level` (true = asserted). Idempotent. */
  set(level: boolean): void;
}

/** Edge helper: assert then deassert, for edge-triggered sources. */
export function pulse(line: IrqLine): void {
  line.set(true);
  line.set(false);
}

/** A line connected to nothing; records its level (useful in tests). */
export class RecordingIrqLine implements IrqLine {
  level = false;
  edges = 0;
  set(level: boolean): void {
    if (level && !this.level) this.edges++;
    this.level = level;
  }
}
