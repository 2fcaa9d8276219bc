/**
 * The AML each device of the machine contributes to the DSDT, one function
 * per device (the device manager passes the results to buildAcpi, which puts
 * them under \_SB_). Linux binds drivers by _HID: 8250_pnp to PNP0501, the
 * i8042 PnP driver to PNP0303, rtc-cmos to PNP0B00, virtio_mmio to LNRO0005
 * (as a platform device whose resources come from _CRS).
 */
import { IOAPIC_PINS, IRQ_COM1, IRQ_KEYBOARD, IRQ_RTC, PORT_COM1, PORT_I8042_CMD, PORT_I8042_DATA, PORT_RTC } from '../arch/x86_64/layout.js';
import { AmlError, device, eisaIdName, extendedInterrupt, integer, io, memory32Fixed, name, pkg, resourceTemplate, string, type Aml, type InterruptOptions } from './aml.js';

/**
 * ISA interrupts are edge-triggered, active high; with no Interrupt Source
 * Override in the MADT, Linux assumes exactly that for IRQs 0–15.
 */
const ISA_INTERRUPT: InterruptOptions = { mode: 'edge', polarity: 'high', sharing: 'exclusive' };

function checkGsi(gsi: number): void {
  if (!Number.isInteger(gsi) || gsi < 0 || gsi >= IOAPIC_PINS) throw new AmlError(`GSI ${gsi} is not an IOAPIC pin (0-${IOAPIC_PINS - 1})`);
}

export interface SerialPortAml {
  /** Device name, a NameSeg ("COM1"). */
  name: string;
  /** _UID, distinguishing ports of the same _HID. */
  uid: number;
  /** Base port of the eight 16550 registers. */
  port: number;
  /** GSI (= ISA IRQ) of the port. */
  gsi: number;
}

/** A 16550 UART: PNP0501 with eight ports and an ISA interrupt. */
export function serialPortAml(p: SerialPortAml): Aml {
  checkGsi(p.gsi);
  return device(p.name, [
    name('_HID', eisaIdName('PNP0501')),
    name('_UID', integer(p.uid)),
    name('_CRS', resourceTemplate([io(p.port, p.port, 1, 8), extendedInterrupt(ISA_INTERRUPT, [p.gsi])])),
  ]);
}

/** COM1 at 0x3F8, IRQ 4. */
export function com1Aml(): Aml {
  return serialPortAml({ name: 'COM1', uid: 0, port: PORT_COM1, gsi: IRQ_COM1 });
}

/**
 * The i8042 keyboard controller: PNP0303 with the data port first and the
 * command/status port second (the order drivers/input/serio/i8042-acpipnpio.h
 * reads them in) and IRQ 1. Linux would probe 0x60/0x64 directly anyway when
 * the FADT's 8042 flag is set; the device entry makes the ports and IRQ
 * explicit and reserved. No PNP0F13 (AUX) is listed: there is no mouse, and
 * without it the driver leaves the AUX port alone.
 */
export function i8042Aml(): Aml {
  return device('PS2K', [
    name('_HID', eisaIdName('PNP0303')),
    name('_CRS', resourceTemplate([io(PORT_I8042_DATA, PORT_I8042_DATA, 1, 1), io(PORT_I8042_CMD, PORT_I8042_CMD, 1, 1), extendedInterrupt(ISA_INTERRUPT, [IRQ_KEYBOARD])])),
  ]);
}

/**
 * The CMOS RTC: PNP0B00 with ports 0x70–0x71 and, if `irq`, IRQ 8. In a
 * hardware-reduced machine Linux installs no legacy PIC and so has no ISA IRQ
 * mapping of its own: the x86 fallback platform device's IRQ 8 would not be
 * routed, while the interrupt named here is registered through ACPI.
 */
export function cmosRtcAml(options: { irq?: boolean } = {}): Aml {
  const crs = [io(PORT_RTC, PORT_RTC, 1, 2)];
  if (options.irq ?? true) crs.push(extendedInterrupt(ISA_INTERRUPT, [IRQ_RTC]));
  return device('RTC_', [name('_HID', eisaIdName('PNP0B00')), name('_CRS', resourceTemplate(crs))]);
}

/** _HID under which Linux's virtio_mmio driver matches ACPI devices. */
export const VIRTIO_MMIO_HID = 'LNRO0005';

export interface VirtioMmioAml {
  /** Slot number: the _UID and the device name VR00..VRFF. */
  uid: number;
  /** Base of the device's register window. */
  base: number;
  /** Size of the register window. */
  size: number;
  /** GSI the device raises (an IOAPIC pin). */
  gsi: number;
}

/**
 * A virtio-mmio transport: LNRO0005, Memory32Fixed(base, size) and one
 * edge-triggered, active-high interrupt.
 *
 * Edge, because our devices signal each used-buffer or config notification
 * as a fresh edge (KVM: a write to an irqfd; soft engine: a pulse on the
 * IOAPIC pin), and the driver's handler reads InterruptStatus and
 * acknowledges exactly the bits it saw, so nothing is lost. Level would
 * need the line to follow InterruptStatus and, under KVM, a resample eventfd
 * to lower it after the guest's EOI: an extra exit per interrupt on a host
 * where exits cost ~11 µs. Firecracker makes the same choice.
 */
export function virtioMmioAml(d: VirtioMmioAml): Aml {
  if (!Number.isInteger(d.uid) || d.uid < 0 || d.uid > 0xff) throw new AmlError(`virtio-mmio uid ${d.uid} is not 0-255`);
  checkGsi(d.gsi);
  return device(`VR${d.uid.toString(16).toUpperCase().padStart(2, '0')}`, [
    name('_HID', string(VIRTIO_MMIO_HID)),
    name('_UID', integer(d.uid)),
    name('_CRS', resourceTemplate([memory32Fixed(d.base, d.size), extendedInterrupt(ISA_INTERRUPT, [d.gsi])])),
  ]);
}

// Hardware-reduced sleep (ACPI 6.4 §4.8.3.7 Sleep Control and Status Registers).
/** SLEEP_CONTROL_REG bit 5, SLP_EN: enter the sleep state in SLP_TYP. */
export const SLEEP_CONTROL_SLP_EN = 0x20;
/** SLEEP_CONTROL_REG bits 4:2, SLP_TYPx. */
export const SLEEP_CONTROL_SLP_TYP_SHIFT = 2;
export const SLEEP_CONTROL_SLP_TYP_MASK = 0x1c;
/** SLEEP_STATUS_REG bit 7, WAK_STS: the OS writes 1 to clear it before sleeping. */
export const SLEEP_STATUS_WAK_STS = 0x80;

/** SLP_TYP this machine assigns to S5 (soft off) in \_S5_. */
export const S5_SLP_TYP = 5;
/** The byte a guest writes to SLEEP_CONTROL_REG to power off: SLP_EN | S5_SLP_TYP << 2 = 0x34. */
export const S5_SLEEP_CONTROL_VALUE = SLEEP_CONTROL_SLP_EN | (S5_SLP_TYP << SLEEP_CONTROL_SLP_TYP_SHIFT);

/** The SLP_TYP a SLEEP_CONTROL_REG write asks to enter, or undefined if SLP_EN is clear. */
export function sleepTypeOf(controlWrite: number): number | undefined {
  if (!(controlWrite & SLEEP_CONTROL_SLP_EN)) return undefined;
  return (controlWrite & SLEEP_CONTROL_SLP_TYP_MASK) >> SLEEP_CONTROL_SLP_TYP_SHIFT;
}

/**
 * Name(\_S5_, Package() { SLP_TYPa, SLP_TYPb }) (§7.4.2): Linux offers ACPI
 * power-off only when \_S5_ exists and, hardware-reduced, both sleep
 * registers are in the FADT. It then writes S5_SLEEP_CONTROL_VALUE. SLP_TYPb
 * is for a PM1b block we do not have. The path is absolute so the object lands
 * in the root namespace wherever it is placed.
 */
export function sleepStatesAml(): Aml {
  return name('\\_S5_', pkg([integer(S5_SLP_TYP), integer(0)]));
}
