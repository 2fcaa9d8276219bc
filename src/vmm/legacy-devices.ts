import type { Bus } from '../bus/index.js';
import type { EngineVm } from '../engine/engine.js';
import * as layout from '../arch/x86_64/layout.js';
import { com1Aml, i8042Aml, cmosRtcAml, S5_SLP_TYP, type Aml } from '../acpi/index.js';
import { Serial16550, I8042, Rtc, AcpiPower, DebugPort, SERIAL_PORT_SPAN, I8042_PORT_SPAN, RTC_PORT_SPAN, ACPI_POWER_PORT_SPAN, DEBUG_PORT, DEBUG_PORT_SPAN } from '../devices/legacy/index.js';

/** Guest output produced before a console is attached is kept up to this many bytes. */
const EARLY_OUTPUT_LIMIT = 1 << 20;

/**
 * The PC legacy devices of the machine: COM1, the i8042 (reset and
 * Ctrl-Alt-Del), the CMOS RTC, the ACPI sleep/reset registers and the POST
 * port. Built once the engine VM exists, because each device is wired to one
 * of its interrupt lines.
 */
export class LegacyDevices {
  serial!: Serial16550;
  private i8042!: I8042;
  private sink: ((byte: number) => void) | undefined;
  private early: number[] = [];

  /** The AML these devices contribute to the DSDT (static: known before the devices exist). */
  static aml(): Aml[] {
    return [com1Aml(), i8042Aml(), cmosRtcAml()];
  }

  attach(pio: Bus, vm: EngineVm, memBytes: number): void {
    this.serial = new Serial16550({ irq: vm.irqLine(layout.IRQ_COM1), out: (b) => this.output(b) });
    this.i8042 = new I8042({ irq: vm.irqLine(layout.IRQ_KEYBOARD), onReset: () => vm.requestStop({ reason: 'reset' }) });
    const rtc = new Rtc({
      now: () => new Date(),
      memory: { below4g: Math.min(memBytes, layout.MMIO_HOLE_START), above4g: Math.max(0, memBytes - layout.MMIO_HOLE_START) },
    });
    const power = new AcpiPower({
      onPowerOff: () => vm.requestStop({ reason: 'poweroff' }),
      onReset: () => vm.requestStop({ reason: 'reset' }),
      s5SleepType: S5_SLP_TYP,
    });
    pio.insert(this.serial, layout.PORT_COM1, SERIAL_PORT_SPAN, 'com1');
    pio.insert(this.i8042, layout.PORT_I8042_DATA, I8042_PORT_SPAN, 'i8042');
    pio.insert(rtc, layout.PORT_RTC, RTC_PORT_SPAN, 'rtc');
    pio.insert(power, layout.PORT_ACPI_SLEEP_CONTROL, ACPI_POWER_PORT_SPAN, 'acpi-power');
    pio.insert(new DebugPort(), DEBUG_PORT, DEBUG_PORT_SPAN, 'post');
  }

  private output(byte: number): void {
    if (this.sink) {
      this.sink(byte);
    } else if (this.early.length < EARLY_OUTPUT_LIMIT) {
      this.early.push(byte);
    }
  }

  setSerialOutput(sink: (byte: number) => void): void {
    this.sink = sink;
    for (const b of this.early) sink(b);
    this.early = [];
  }

  sendCtrlAltDel(): void {
    this.i8042.sendCtrlAltDel();
  }
}
