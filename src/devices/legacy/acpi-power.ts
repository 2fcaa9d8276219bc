/**
 * The sleep control, sleep status and reset registers of a hardware-reduced
 * ACPI platform (ACPI 6.5 §4.8.3.7 "Sleep Control and Status Registers",
 * §4.8.3.6 "Reset Register"), where the FADT's SLEEP_CONTROL_REG,
 * SLEEP_STATUS_REG and RESET_REG point. Offsets are relative to
 * PORT_ACPI_SLEEP_CONTROL: 0 sleep control, 1 sleep status, 2 reset, all
 * 8 bits wide.
 *
 * The guest powers off by writing SLP_EN with SLP_TYP = the S5 value of the
 * DSDT's \_S5 package (Linux: acpi_hw_extended_sleep); it resets by writing
 * the FADT's RESET_VALUE to the reset register (Linux: acpi_reboot, used by
 * `reboot=acpi`). Other sleep states are not offered to the guest; a request
 * for one is ignored.
 */
import type { BusDevice } from '../../bus/index.js';
import { ACPI_RESET_VALUE, PORT_ACPI_RESET, PORT_ACPI_SLEEP_CONTROL, PORT_ACPI_SLEEP_STATUS } from '../../arch/x86_64/layout.js';
import { StateReader, readBytes, writeBytes } from './common.js';

const REG_SLEEP_CONTROL = PORT_ACPI_SLEEP_CONTROL - PORT_ACPI_SLEEP_CONTROL;
const REG_SLEEP_STATUS = PORT_ACPI_SLEEP_STATUS - PORT_ACPI_SLEEP_CONTROL;
const REG_RESET = PORT_ACPI_RESET - PORT_ACPI_SLEEP_CONTROL;
export const ACPI_POWER_PORT_SPAN = REG_RESET + 1;

/** Sleep control bits 4:2: SLP_TYPx, the sleep type from the \_Sx package. */
export const SLP_TYP_MASK = 0x1c;
export const SLP_TYP_SHIFT = 2;
/** Sleep control bit 5: SLP_EN, write-only; writing 1 enters the state in SLP_TYP. */
export const SLP_EN = 0x20;
/** Sleep status bit 7: WAK_STS, set on waking from a sleep state; write 1 to clear. */
export const WAK_STS = 0x80;
/** Default SLP_TYP for S5 when the ACPI builder does not say otherwise. */
export const DEFAULT_S5_SLEEP_TYPE = 5;

export interface AcpiPowerState {
  /** SLP_TYP last written (the control register reads it back; SLP_EN reads 0). */
  sleepType: number;
  wakeStatus: boolean;
}

export interface AcpiPowerOptions {
  /** The guest entered S5 (soft off). */
  onPowerOff: () => void;
  /** The guest wrote the reset value to the reset register. */
  onReset: () => void;
  /** SLP_TYP of the DSDT's \_S5 package, 0–7. */
  s5SleepType?: number;
}

export class AcpiPower implements BusDevice {
  private readonly onPowerOff: () => void;
  private readonly onReset: () => void;
  private readonly s5SleepType: number;
  private sleepType = 0;
  private wakeStatus = false;

  constructor(options: AcpiPowerOptions) {
    const s5 = options.s5SleepType ?? DEFAULT_S5_SLEEP_TYPE;
    if (!Number.isInteger(s5) || s5 < 0 || s5 > 7) throw new RangeError(`acpi-power: S5 sleep type ${s5} is not in 0..7`);
    this.onPowerOff = options.onPowerOff;
    this.onReset = options.onReset;
    this.s5SleepType = s5;
  }

  read(offset: number, data: Uint8Array): void {
    readBytes(ACPI_POWER_PORT_SPAN, offset, data, (reg) => {
      if (reg === REG_SLEEP_CONTROL) return this.sleepType << SLP_TYP_SHIFT;
      if (reg === REG_SLEEP_STATUS) return this.wakeStatus ? WAK_STS : 0;
      return 0;
    });
  }

  write(offset: number, data: Uint8Array): void {
    writeBytes(ACPI_POWER_PORT_SPAN, offset, data, (reg, value) => {
      if (reg === REG_SLEEP_CONTROL) {
        this.sleepType = (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
        if (value & SLP_EN && this.sleepType === this.s5SleepType) this.onPowerOff();
      } else if (reg === REG_SLEEP_STATUS) {
        if (value & WAK_STS) this.wakeStatus = false;
      } else if (reg === REG_RESET) {
        if (value === ACPI_RESET_VALUE) this.onReset();
      }
    });
  }

  saveState(): AcpiPowerState {
    return { sleepType: this.sleepType, wakeStatus: this.wakeStatus };
  }

  /** Restores a state from `saveState`; throws DeviceStateError (and changes nothing) if it is malformed. */
  restoreState(state: AcpiPowerState): void {
    const r = new StateReader('acpi-power', state);
    const sleepType = r.int('sleepType', 7);
    const wakeStatus = r.bool('wakeStatus');
    this.sleepType = sleepType;
    this.wakeStatus = wakeStatus;
  }
}
