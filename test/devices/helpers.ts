import type { BusDevice, IrqLine } from '../../src/bus/index.js';

/** An IRQ line that records its level and refuses anything but a boolean. */
export class CheckedIrqLine implements IrqLine {
  level = false;
  sets = 0;
  rises = 0;
  set(level: boolean): void {
    if (typeof level !== 'boolean') throw new TypeError(`irq level ${String(level)} is not a boolean`);
    if (level && !this.level) this.rises++;
    this.level = level;
    this.sets++;
  }
}

/** Byte-wide port I/O on a device, as `inb`/`outb` would do it. */
export function ports(dev: BusDevice): { inb(offset: number): number; outb(offset: number, value: number): void } {
  const b = new Uint8Array(1);
  return {
    inb(offset) {
      dev.read(offset, b);
      return b[0]!;
    },
    outb(offset, value) {
      b[0] = value;
      dev.write(offset, b);
    },
  };
}
