/**
 * MC146818 real-time clock and CMOS RAM (Motorola MC146818A datasheet), at
 * ports 0x70 (index) and 0x71 (data).
 *
 * The clock is the injected `now()` (host time, read as UTC) plus an offset
 * the guest changes by writing the time registers, so guest time keeps
 * running with the host's and no timer is needed. Registers read as the chip
 * would: BCD or binary per register B's DM bit, 12- or 24-hour per its 24/12
 * bit, UIP set around each second boundary, register D's VRT set.
 *
 * Not implemented: periodic, alarm and update-ended interrupts (register C
 * reads 0, IRQ 8 is never raised). Linux does not need them to boot or to
 * read the time; /dev/rtc users that wait for them will time out.
 */
import type { BusDevice } from '../../bus/index.js';
import { StateReader, readBytes, writeBytes } from './common.js';

/** Offset 0: index (port 0x70, write-only); offset 1: data (port 0x71). */
export const RTC_PORT_SPAN = 2;
const PORT_INDEX = 0;
const PORT_DATA = 1;

/** Index bit 7 on a PC gates NMI (1 = disabled); it is not part of the CMOS address. */
export const INDEX_NMI_DISABLE = 0x80;
const INDEX_MASK = 0x7f;
export const CMOS_SIZE = 128;

/** Time and calendar registers (datasheet "Address Map"). */
export const REG_SECONDS = 0x00;
export const REG_SECONDS_ALARM = 0x01;
export const REG_MINUTES = 0x02;
export const REG_MINUTES_ALARM = 0x03;
export const REG_HOURS = 0x04;
export const REG_HOURS_ALARM = 0x05;
/** Day of week, 1 = Sunday. */
export const REG_DAY_OF_WEEK = 0x06;
export const REG_DAY_OF_MONTH = 0x07;
export const REG_MONTH = 0x08;
/** Year within the century, 0–99. */
export const REG_YEAR = 0x09;
export const REG_A = 0x0a;
export const REG_B = 0x0b;
export const REG_C = 0x0c;
export const REG_D = 0x0d;
/** Century, by the PC convention QEMU and SeaBIOS follow; the FADT's CENTURY field should name it. */
export const REG_CENTURY = 0x32;

/** Register A bit 7: update in progress (read-only). */
export const REG_A_UIP = 0x80;
/** Register A bits 6:4: divider chain; 010 = 32.768 kHz time base, running. */
const REG_A_DV_MASK = 0x70;
const REG_A_DV_RUNNING = 0x20;
/** Register A bits 3:0: periodic rate select; 0110 = 1024 Hz, the firmware default. */
const REG_A_DEFAULT = REG_A_DV_RUNNING | 0x06;

/** Register B bit 7: SET, updates inhibited while the guest sets the time. */
export const REG_B_SET = 0x80;
/** Register B bit 6: periodic interrupt enable. */
export const REG_B_PIE = 0x40;
/** Register B bit 5: alarm interrupt enable. */
export const REG_B_AIE = 0x20;
/** Register B bit 4: update-ended interrupt enable; writing SET clears it. */
export const REG_B_UIE = 0x10;
/** Register B bit 2: data mode, 1 = binary, 0 = BCD. */
export const REG_B_DM_BINARY = 0x04;
/** Register B bit 1: 1 = 24-hour mode, 0 = 12-hour mode. */
export const REG_B_24H = 0x02;
/** Firmware default: BCD, 24-hour. */
const REG_B_DEFAULT = REG_B_24H;

/** Register D bit 7: valid RAM and time (the battery is good). */
export const REG_D_VRT = 0x80;

/** In 12-hour mode, bit 7 of the hours register marks PM. */
const HOURS_PM = 0x80;

/**
 * UIP is set 244 µs before each update and stays set for the 1984 µs update
 * cycle (datasheet, "Update Cycle"). With a millisecond clock: the last
 * millisecond before a second boundary and the first two after it.
 */
const UIP_LEAD_MS = 1;
const UIP_TRAIL_MS = 2;

/** CMOS bytes 0x15/0x16: base memory in KiB (PC/AT convention). */
const CMOS_BASE_MEM_LO = 0x15;
/** CMOS bytes 0x17/0x18 and 0x30/0x31: memory above 1 MiB in KiB, capped at 0xFFFF. */
const CMOS_EXT_MEM_LO = 0x17;
const CMOS_EXT_MEM2_LO = 0x30;
/** CMOS bytes 0x34/0x35: memory between 16 MiB and 4 GiB in 64 KiB units (QEMU/SeaBIOS convention). */
const CMOS_MEM_ABOVE_16M_LO = 0x34;
/** CMOS bytes 0x5B–0x5D: memory above 4 GiB in 64 KiB units (QEMU/SeaBIOS convention). */
const CMOS_MEM_ABOVE_4G_LO = 0x5b;

export interface RtcState {
  index: number;
  regA: number;
  regB: number;
  /** Guest time minus host time, in milliseconds, while the clock runs. */
  offsetMs: number;
  /** The calendar held while register B's SET bit stops the clock; null while it runs. */
  frozen: RtcTime | null;
  /** All 128 CMOS bytes; the clock and control registers in it are not used. */
  cmos: number[];
}

/**
 * The calendar fields as the chip holds them, each within its own range but
 * not necessarily a real date together (the guest writes them one at a time;
 * a 31 in February is clamped when the clock starts).
 */
export interface RtcTime {
  second: number;
  minute: number;
  /** 0–23. */
  hour: number;
  /** 1–31. */
  day: number;
  /** 1–12. */
  month: number;
  /** Full year, 0–9999. */
  year: number;
}

const FIELD_LIMITS: Record<keyof RtcTime, [number, number]> = {
  second: [0, 59],
  minute: [0, 59],
  hour: [0, 23],
  day: [1, 31],
  month: [1, 12],
  year: [0, 9999],
};

function daysInMonth(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

/** Milliseconds since the epoch of `t`, the day clamped into its month. */
function timeToMs(t: RtcTime): number {
  const d = new Date(0);
  d.setUTCFullYear(t.year, t.month - 1, Math.min(t.day, daysInMonth(t.year, t.month)));
  d.setUTCHours(t.hour, t.minute, t.second, 0);
  return d.getTime();
}

function msToTime(ms: number): RtcTime {
  const d = new Date(ms);
  return {
    second: d.getUTCSeconds(),
    minute: d.getUTCMinutes(),
    hour: d.getUTCHours(),
    day: d.getUTCDate(),
    month: d.getUTCMonth() + 1,
    year: d.getUTCFullYear(),
  };
}

export interface RtcOptions {
  /** Host time; read as UTC. */
  now: () => Date;
  /** RAM sizes to record in CMOS the way PC firmware does (optional; Linux does not read them). */
  memory?: { below4g: number; above4g: number };
}

const toBcd = (v: number): number => ((Math.floor(v / 10) % 10) << 4) | v % 10;
const fromBcd = (v: number): number => (v >> 4) * 10 + (v & 0x0f);
const isBcd = (v: number): boolean => (v >> 4) <= 9 && (v & 0x0f) <= 9;

export class Rtc implements BusDevice {
  private readonly now: () => Date;

  private index = 0;
  private regA = REG_A_DEFAULT;
  private regB = REG_B_DEFAULT;
  private offsetMs = 0;
  private frozen: RtcTime | null = null;
  private cmos = new Uint8Array(CMOS_SIZE);

  constructor(options: RtcOptions) {
    this.now = options.now;
    if (options.memory) this.recordMemory(options.memory.below4g, options.memory.above4g);
  }

  read(offset: number, data: Uint8Array): void {
    readBytes(RTC_PORT_SPAN, offset, data, (port) => (port === PORT_DATA ? this.readRegister(this.index) : 0xff));
  }

  write(offset: number, data: Uint8Array): void {
    writeBytes(RTC_PORT_SPAN, offset, data, (port, value) => {
      if (port === PORT_INDEX) this.index = value & INDEX_MASK;
      else this.writeRegister(this.index, value);
    });
  }

  saveState(): RtcState {
    return {
      index: this.index,
      regA: this.regA,
      regB: this.regB,
      offsetMs: this.offsetMs,
      frozen: this.frozen && { ...this.frozen },
      cmos: [...this.cmos],
    };
  }

  /** Restores a state from `saveState`; throws DeviceStateError (and changes nothing) if it is malformed. */
  restoreState(state: RtcState): void {
    const r = new StateReader('rtc', state);
    const index = r.int('index', INDEX_MASK);
    const regA = r.int('regA', 0x7f);
    const regB = r.int('regB', 0xff);
    const offsetMs = r.num('offsetMs');
    const rawFrozen = (state as { frozen?: unknown }).frozen;
    let frozen: RtcTime | null = null;
    if (rawFrozen !== null) {
      const f = new StateReader('rtc.frozen', rawFrozen);
      const field = (k: keyof RtcTime): number => {
        const [lo, hi] = FIELD_LIMITS[k];
        const v = f.int(k, hi);
        if (v < lo) f.fail(k, `must be at least ${lo}`);
        return v;
      };
      frozen = { second: field('second'), minute: field('minute'), hour: field('hour'), day: field('day'), month: field('month'), year: field('year') };
    }
    if ((regB & REG_B_SET) !== 0 !== (frozen !== null)) r.fail('frozen', 'must be set exactly when register B has SET');
    const cmos = r.bytes('cmos', CMOS_SIZE, true);
    this.index = index;
    this.regA = regA;
    this.regB = regB;
    this.offsetMs = offsetMs;
    this.frozen = frozen;
    this.cmos = Uint8Array.from(cmos);
  }

  /** The running guest clock in milliseconds since the epoch. */
  private runningMs(): number {
    return this.now().getTime() + this.offsetMs;
  }

  private currentTime(): RtcTime {
    return this.frozen ? { ...this.frozen } : msToTime(this.runningMs());
  }

  /** Makes `t` the guest's time, keeping the running clock's position within the second. */
  private setTime(t: RtcTime): void {
    if (this.frozen) {
      this.frozen = t;
      return;
    }
    const subSecond = ((this.runningMs() % 1000) + 1000) % 1000;
    this.offsetMs = timeToMs(t) + subSecond - this.now().getTime();
  }

  private encode(v: number): number {
    return this.regB & REG_B_DM_BINARY ? v : toBcd(v);
  }

  /** Decodes a written value; NaN when it is not valid BCD in BCD mode. */
  private decode(v: number): number {
    if (this.regB & REG_B_DM_BINARY) return v;
    return isBcd(v) ? fromBcd(v) : NaN;
  }

  private updateInProgress(): boolean {
    if (this.regB & REG_B_SET || (this.regA & REG_A_DV_MASK) !== REG_A_DV_RUNNING) return false;
    const ms = ((this.runningMs() % 1000) + 1000) % 1000;
    return ms >= 1000 - UIP_LEAD_MS || ms < UIP_TRAIL_MS;
  }

  private readRegister(reg: number): number {
    if (reg <= REG_YEAR || reg === REG_CENTURY) {
      const t = this.currentTime();
      switch (reg) {
        case REG_SECONDS:
          return this.encode(t.second);
        case REG_MINUTES:
          return this.encode(t.minute);
        case REG_HOURS: {
          const h = t.hour;
          if (this.regB & REG_B_24H) return this.encode(h);
          return this.encode(h % 12 === 0 ? 12 : h % 12) | (h >= 12 ? HOURS_PM : 0);
        }
        case REG_DAY_OF_WEEK:
          return this.encode(new Date(timeToMs(t)).getUTCDay() + 1);
        case REG_DAY_OF_MONTH:
          return this.encode(t.day);
        case REG_MONTH:
          return this.encode(t.month);
        case REG_YEAR:
          return this.encode(t.year % 100);
        case REG_CENTURY:
          return this.encode(Math.floor(t.year / 100));
        default:
          // Alarm registers are plain storage.
          return this.cmos[reg]!;
      }
    }
    switch (reg) {
      case REG_A:
        return this.regA | (this.updateInProgress() ? REG_A_UIP : 0);
      case REG_B:
        return this.regB;
      case REG_C:
        return 0;
      case REG_D:
        return REG_D_VRT;
      default:
        return this.cmos[reg] ?? 0xff;
    }
  }

  private writeRegister(reg: number, value: number): void {
    switch (reg) {
      case REG_A:
        this.regA = value & ~REG_A_UIP & 0xff;
        return;
      case REG_B: {
        const wasSet = (this.regB & REG_B_SET) !== 0;
        const set = (value & REG_B_SET) !== 0;
        if (set && !wasSet) this.frozen = this.currentTime();
        if (!set && wasSet && this.frozen !== null) {
          // The clock starts from the set time at the start of its second.
          this.offsetMs = timeToMs(this.frozen) - this.now().getTime();
          this.frozen = null;
        }
        this.regB = set ? value & ~REG_B_UIE : value;
        return;
      }
      case REG_C:
      case REG_D:
        return;
      case REG_SECONDS:
      case REG_MINUTES:
      case REG_HOURS:
      case REG_DAY_OF_MONTH:
      case REG_MONTH:
      case REG_YEAR:
      case REG_CENTURY:
        this.writeTime(reg, value);
        return;
      case REG_DAY_OF_WEEK:
        // Derived from the date here; the write is ignored.
        return;
      default:
        this.cmos[reg] = value;
    }
  }

  /**
   * Replaces one calendar field. A value that is not valid BCD (in BCD mode)
   * or is out of the field's own range is ignored rather than carried into an
   * impossible time; fields are otherwise independent, as on the chip.
   */
  private writeTime(reg: number, value: number): void {
    let v: number;
    if (reg === REG_HOURS && (this.regB & REG_B_24H) === 0) {
      const h12 = this.decode(value & ~HOURS_PM);
      if (!(h12 >= 1 && h12 <= 12)) return;
      v = (h12 % 12) + (value & HOURS_PM ? 12 : 0);
    } else {
      v = this.decode(value);
    }
    if (Number.isNaN(v)) return;
    const t = this.currentTime();
    const within = (k: keyof RtcTime): boolean => v >= FIELD_LIMITS[k][0] && v <= FIELD_LIMITS[k][1];
    switch (reg) {
      case REG_SECONDS:
        if (!within('second')) return;
        t.second = v;
        break;
      case REG_MINUTES:
        if (!within('minute')) return;
        t.minute = v;
        break;
      case REG_HOURS:
        if (!within('hour')) return;
        t.hour = v;
        break;
      case REG_DAY_OF_MONTH:
        if (!within('day')) return;
        t.day = v;
        break;
      case REG_MONTH:
        if (!within('month')) return;
        t.month = v;
        break;
      case REG_YEAR:
        if (v > 99) return;
        t.year = t.year - (t.year % 100) + v;
        break;
      case REG_CENTURY:
        if (v > 99) return;
        t.year = v * 100 + (t.year % 100);
        break;
    }
    this.setTime(t);
  }

  private recordMemory(below4g: number, above4g: number): void {
    const KiB = 1024;
    const put16 = (at: number, v: number): void => {
      this.cmos[at] = v & 0xff;
      this.cmos[at + 1] = (v >> 8) & 0xff;
    };
    put16(CMOS_BASE_MEM_LO, 640);
    const ext = Math.min(0xffff, Math.max(0, Math.floor((below4g - 1024 * KiB) / KiB)));
    put16(CMOS_EXT_MEM_LO, ext);
    put16(CMOS_EXT_MEM2_LO, ext);
    put16(CMOS_MEM_ABOVE_16M_LO, Math.min(0xffff, Math.max(0, Math.floor((below4g - 16 * 1024 * KiB) / (64 * KiB)))));
    const high = Math.min(0xffffff, Math.max(0, Math.floor(above4g / (64 * KiB))));
    this.cmos[CMOS_MEM_ABOVE_4G_LO] = high & 0xff;
    this.cmos[CMOS_MEM_ABOVE_4G_LO + 1] = (high >> 8) & 0xff;
    this.cmos[CMOS_MEM_ABOVE_4G_LO + 2] = (high >> 16) & 0xff;
  }
}
