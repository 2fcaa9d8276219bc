/**
 * I/O APIC (Intel 82093AA datasheet, "82093AA I/O Advanced Programmable
 * Interrupt Controller (IOAPIC)", 1996), 24 pins, as a pure state machine:
 * the guest programs it through IOREGSEL/IOWIN on its MMIO page, device
 * interrupt lines come in through `setIrq` / `irqLine(pin)`, and interrupt
 * messages leave through the injected `deliver`, which returns whether some
 * local APIC accepted the message.
 *
 * Version 0x20 (the PCI-era IOAPIC of Intel's ICH chipsets), which adds an
 * EOI register at offset 0x40: Linux uses it to clear a stale remote IRR
 * (io_apic.c, __eoi_ioapic_pin) instead of toggling the trigger mode.
 *
 * Pin semantics (datasheet 3.2.4, "Interrupt Mask"):
 * - edge-triggered: a rising edge on an unmasked pin sends one message; an
 *   edge on a masked pin is ignored, not held pending (QEMU and KVM do the
 *   same). Linux expects exactly this: pins stay masked until request_irq()
 *   unmasks them, drivers of edge-triggered devices clear their device's
 *   interrupt state after request_irq, and an edge lost while Linux disables
 *   an IRQ lazily cannot happen, since lazy disable leaves the pin unmasked
 *   and Linux resends it itself (kernel/irq/resend.c, ioapic_retrigger_irq).
 * - level-triggered: while the line is asserted, unmasked and remote IRR is
 *   clear, a message goes out; when a local APIC accepts it remote IRR is
 *   set, and the EOI broadcast for its vector (`endOfInterrupt`) clears it,
 *   sending again if the line is still asserted. Unmasking an asserted line
 *   sends too. NMI, INIT and ExtINT entries are always edge-triggered
 *   (datasheet, delivery mode table).
 * - polarity: `setIrq` receives the line's *asserted* state, as the IrqLine
 *   contract says; the machine's ACPI tables declare every line active-high,
 *   so the polarity bit is kept and read back but does not invert the input
 *   (as QEMU and KVM). A guest that programs active-low anyway does not get
 *   an interrupt storm from every idle line.
 */
import type { BusDevice, IrqLine } from '../../../bus/index.js';
import { DM_FIXED, DM_LOWEST, type ApicMessage } from './message.js';
import { StateReader } from './state.js';

/** The IOAPIC's MMIO window (registers at 0x00, 0x10 and 0x40; the rest reads as zero). */
export const IOAPIC_MMIO_SIZE = 0x1000;
/** Number of redirection entries / input pins. */
export const IOAPIC_NUM_PINS = 24;
/** IOREGSEL (datasheet 3.1.1): bits 7:0 select the register IOWIN reaches. */
export const IOAPIC_IOREGSEL = 0x00;
/** IOWIN (datasheet 3.1.2): 32-bit window onto the selected register. */
export const IOAPIC_IOWIN = 0x10;
/** EOI register (IOAPIC version 0x20): writing a vector clears remote IRR of the entries using it. */
export const IOAPIC_EOI = 0x40;

/** Register 0x00: IOAPIC ID in bits 27:24. */
export const IOAPIC_REG_ID = 0x00;
/** Register 0x01: version (bits 7:0) and maximum redirection entry (bits 23:16). */
export const IOAPIC_REG_VERSION = 0x01;
/** Register 0x02: arbitration ID in bits 27:24 (read-only). */
export const IOAPIC_REG_ARB = 0x02;
/** Registers 0x10 + 2n (low) and 0x11 + 2n (high): redirection entry n. */
export const IOAPIC_REG_REDTBL = 0x10;

export const IOAPIC_VERSION = 0x20;
export const IOAPIC_VERSION_VALUE = IOAPIC_VERSION | ((IOAPIC_NUM_PINS - 1) << 16);
const ID_MASK = 0x0f000000;

// Redirection entry, low word (datasheet 3.2.4).
/** Bits 10:8: delivery mode. */
const RTE_DM_SHIFT = 8;
/** Bit 11: destination mode, 1 = logical. */
export const RTE_LOGICAL = 1 << 11;
/** Bit 12: delivery status (read-only): always idle, messages go out synchronously. */
export const RTE_DELIVERY_STATUS = 1 << 12;
/** Bit 13: input polarity, 1 = active low. */
export const RTE_ACTIVE_LOW = 1 << 13;
/** Bit 14: remote IRR (read-only). */
export const RTE_REMOTE_IRR = 1 << 14;
/** Bit 15: trigger mode, 1 = level. */
export const RTE_LEVEL = 1 << 15;
/** Bit 16: interrupt mask. */
export const RTE_MASKED = 1 << 16;
const RTE_LOW_WRITABLE = 0xff | (7 << RTE_DM_SHIFT) | RTE_LOGICAL | RTE_ACTIVE_LOW | RTE_LEVEL | RTE_MASKED;
/** High word bits 31:24 (entry bits 63:56): destination APIC ID or logical set. */
const RTE_HIGH_WRITABLE = 0xff000000;

export interface IoApicOptions {
  /** Sends a message to the local APIC(s); returns true when at least one accepted it. */
  deliver: (message: ApicMessage) => boolean;
  /** IOAPIC ID (MADT), 0..15. Default 0. */
  id?: number;
}

export interface IoApicState {
  id: number;
  ioregsel: number;
  /** Redirection entries' low words (remote IRR included) and high words. */
  low: number[];
  high: number[];
  /** Asserted input lines, bit n = pin n. */
  lines: number;
}

export class IoApic implements BusDevice {
  private readonly deliverOut: (message: ApicMessage) => boolean;
  private id: number;
  private ioregsel = 0;
  private readonly low = new Uint32Array(IOAPIC_NUM_PINS).fill(RTE_MASKED);
  private readonly high = new Uint32Array(IOAPIC_NUM_PINS);
  private lines = 0;

  constructor(options: IoApicOptions) {
    const id = options.id ?? 0;
    if (!Number.isInteger(id) || id < 0 || id > 15) throw new RangeError(`IOAPIC id ${id}: must be an integer in 0..15`);
    this.id = id << 24;
    this.deliverOut = options.deliver;
  }

  /** Drives input pin `pin` (0..23) to `asserted`. Throws RangeError for a pin that does not exist (a wiring error). */
  setIrq(pin: number, asserted: boolean): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_NUM_PINS) {
      throw new RangeError(`IOAPIC pin ${pin}: must be an integer in 0..${IOAPIC_NUM_PINS - 1}`);
    }
    const bit = 1 << pin;
    const was = (this.lines & bit) !== 0;
    this.lines = asserted ? this.lines | bit : this.lines & ~bit;
    if (this.isLevel(pin)) {
      if (asserted) this.serviceLevel(pin);
    } else if (asserted && !was && (this.low[pin]! & RTE_MASKED) === 0) {
      this.send(pin);
    }
  }

  /** The line for pin `pin`, as the engine's `irqLine(gsi)` hands it to a device. */
  irqLine(pin: number): IrqLine {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_NUM_PINS) {
      throw new RangeError(`IOAPIC pin ${pin}: must be an integer in 0..${IOAPIC_NUM_PINS - 1}`);
    }
    return { set: (level: boolean) => this.setIrq(pin, level) };
  }

  /** EOI broadcast from a local APIC for `vector`: clears remote IRR of level entries with that vector. */
  endOfInterrupt(vector: number): void {
    const v = vector & 0xff;
    for (let pin = 0; pin < IOAPIC_NUM_PINS; pin++) {
      const e = this.low[pin]!;
      if ((e & RTE_REMOTE_IRR) === 0 || (e & 0xff) !== v) continue;
      this.low[pin] = e & ~RTE_REMOTE_IRR;
      if (this.isLevel(pin)) this.serviceLevel(pin);
    }
  }

  /** Redirection entry `pin` as a 64-bit value (for diagnostics and tests). */
  entry(pin: number): bigint {
    return (BigInt(this.high[pin] ?? 0) << 32n) | BigInt(this.low[pin] ?? 0);
  }

  /** Level-triggered in effect: NMI, INIT and ExtINT entries act edge-triggered whatever bit 15 says. */
  private isLevel(pin: number): boolean {
    const e = this.low[pin]!;
    const mode = (e >> RTE_DM_SHIFT) & 7;
    return (e & RTE_LEVEL) !== 0 && (mode === DM_FIXED || mode === DM_LOWEST);
  }

  private serviceLevel(pin: number): void {
    const e = this.low[pin]!;
    if ((this.lines & (1 << pin)) === 0 || (e & (RTE_MASKED | RTE_REMOTE_IRR)) !== 0) return;
    if (this.send(pin)) this.low[pin] = this.low[pin]! | RTE_REMOTE_IRR;
  }

  private send(pin: number): boolean {
    const e = this.low[pin]!;
    return this.deliverOut({
      vector: e & 0xff,
      mode: (e >> RTE_DM_SHIFT) & 7,
      logical: (e & RTE_LOGICAL) !== 0,
      destination: this.high[pin]! >>> 24,
      levelTriggered: this.isLevel(pin),
      shorthand: 'none',
    });
  }

  // --- MMIO ---------------------------------------------------------------

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    let value: number;
    let base: number;
    if (offset >= IOAPIC_IOREGSEL && offset < IOAPIC_IOREGSEL + 4) {
      value = this.ioregsel;
      base = IOAPIC_IOREGSEL;
    } else if (offset >= IOAPIC_IOWIN && offset < IOAPIC_IOWIN + 4) {
      value = this.readRegister(this.ioregsel);
      base = IOAPIC_IOWIN;
    } else {
      return;
    }
    for (let i = 0; i < data.length && offset - base + i < 4; i++) data[i] = (value >>> (8 * (offset - base + i))) & 0xff;
  }

  /**
   * IOREGSEL and EOI take their low byte from a write of any size at their
   * offset; IOWIN must be written as a dword (datasheet 3.1.2): narrower or
   * misaligned writes are ignored.
   */
  write(offset: number, data: Uint8Array): void {
    if (data.length === 0) return;
    if (offset === IOAPIC_IOREGSEL) {
      this.ioregsel = data[0]!;
    } else if (offset === IOAPIC_EOI) {
      this.endOfInterrupt(data[0]!);
    } else if (offset === IOAPIC_IOWIN && data.length === 4) {
      this.writeRegister(this.ioregsel, (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0);
    }
  }

  /** Indirect register `reg` (what IOWIN reads when IOREGSEL = reg); unimplemented ones read 0. */
  readRegister(reg: number): number {
    switch (reg) {
      case IOAPIC_REG_ID: return this.id >>> 0;
      case IOAPIC_REG_VERSION: return IOAPIC_VERSION_VALUE;
      case IOAPIC_REG_ARB: return this.id >>> 0;
    }
    const n = reg - IOAPIC_REG_REDTBL;
    if (n < 0 || n >= 2 * IOAPIC_NUM_PINS) return 0;
    return n & 1 ? this.high[n >> 1]! >>> 0 : this.low[n >> 1]!;
  }

  writeRegister(reg: number, value: number): void {
    if (reg === IOAPIC_REG_ID) {
      this.id = value & ID_MASK;
      return;
    }
    const n = reg - IOAPIC_REG_REDTBL;
    if (n < 0 || n >= 2 * IOAPIC_NUM_PINS) return;
    const pin = n >> 1;
    if (n & 1) {
      this.high[pin] = value & RTE_HIGH_WRITABLE;
      return;
    }
    let e = (this.low[pin]! & RTE_REMOTE_IRR) | (value & RTE_LOW_WRITABLE);
    // Switching to edge clears remote IRR: the old way to clear a stale one (Linux io_apic.c, __eoi_ioapic_pin).
    if ((e & RTE_LEVEL) === 0) e &= ~RTE_REMOTE_IRR;
    this.low[pin] = e >>> 0;
    if (this.isLevel(pin)) this.serviceLevel(pin);
  }

  // --- save / restore -----------------------------------------------------

  saveState(): IoApicState {
    return { id: this.id >>> 24, ioregsel: this.ioregsel, low: [...this.low], high: [...this.high], lines: this.lines };
  }

  /** Restores a state from `saveState`; throws ApicStateError (and changes nothing) if it is malformed. Sends nothing. */
  restoreState(state: IoApicState): void {
    const r = new StateReader('ioapic', state);
    const id = r.int('id', 15);
    const ioregsel = r.int('ioregsel', 0xff);
    const low = r.words('low', IOAPIC_NUM_PINS);
    const high = r.words('high', IOAPIC_NUM_PINS);
    const lines = r.int('lines', (1 << IOAPIC_NUM_PINS) - 1);
    low.forEach((w) => {
      if ((w & ~(RTE_LOW_WRITABLE | RTE_REMOTE_IRR)) !== 0) r.fail('low', `entry has bits outside 0x${(RTE_LOW_WRITABLE | RTE_REMOTE_IRR).toString(16)}`);
    });
    high.forEach((w) => {
      if ((w & ~RTE_HIGH_WRITABLE) !== 0) r.fail('high', 'entry has bits outside 31:24');
    });
    this.id = id << 24;
    this.ioregsel = ioregsel;
    this.low.set(low);
    this.high.set(high);
    this.lines = lines;
  }
}
