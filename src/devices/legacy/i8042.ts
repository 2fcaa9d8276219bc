/**
 * i8042 keyboard controller with a PS/2 keyboard behind it, no AUX (mouse) port.
 *
 * It exists for two things: the reset line (command 0xFE pulses the CPU reset,
 * the oldest way a PC reboots and one Linux's `reboot=k` uses), and a keyboard
 * that can deliver Ctrl-Alt-Del so the host can ask the guest to shut down
 * cleanly. It answers everything Linux's i8042 and atkbd drivers ask while
 * probing (drivers/input/serio/i8042.c, drivers/input/keyboard/atkbd.c), so
 * the probe neither fails nor sits in timeouts.
 *
 * Registers (IBM PS/2 Technical Reference, "Keyboard/Auxiliary Device Controller"):
 * offset 0 (port 0x60) is the data port, offset 4 (port 0x64) reads status and
 * takes controller commands. The controller has one output byte; behind it
 * wait the controller's own replies (served first) and the keyboard's bytes,
 * which move up only while the keyboard interface is enabled. IRQ 1 follows
 * "output buffer full && CTR.KBDINT"; it drops on every data read, so each
 * byte reaches an edge-triggered ISA interrupt input as a fresh edge.
 *
 * Keyboard bytes are produced in the scan code set the guest sees: set 1 when
 * the controller translates (CTR.XLATE, Linux's default) the keyboard's set 2.
 */
import type { BusDevice, IrqLine } from '../../bus/index.js';
import { StateReader, readBytes, writeBytes } from './common.js';

/** Offsets 0 (data, port 0x60) to 4 (status/command, port 0x64). Offsets 1–3 are not ours and float. */
export const I8042_PORT_SPAN = 5;
const REG_DATA = 0;
const REG_COMMAND = 4;

/** Status bit 0: output buffer full (a byte waits at port 0x60). */
export const STATUS_OBF = 0x01;
/** Status bit 1: input buffer full (never: commands are taken at once). */
export const STATUS_IBF = 0x02;
/** Status bit 2: system flag, mirrors CTR bit 2 (set after a successful self-test). */
export const STATUS_SYS = 0x04;
/** Status bit 3: last write was to the command port (1) or the data port (0). */
export const STATUS_CMD = 0x08;
/** Status bit 4: keyboard not inhibited (keylock switch open); Linux warns "Keylock active" when clear. */
export const STATUS_UNLOCKED = 0x10;

/** CTR bit 0: interrupt (IRQ 1) on keyboard output buffer full. */
export const CTR_KBDINT = 0x01;
/** CTR bit 1: interrupt (IRQ 12) on AUX output buffer full. */
export const CTR_AUXINT = 0x02;
/** CTR bit 2: system flag. */
export const CTR_SYS = 0x04;
/** CTR bit 4: keyboard interface disabled (clock held low). */
export const CTR_KBDDIS = 0x10;
/** CTR bit 5: AUX interface disabled. */
export const CTR_AUXDIS = 0x20;
/** CTR bit 6: translate keyboard scan code set 2 into set 1. */
export const CTR_XLATE = 0x40;
/** What firmware leaves behind: keyboard interrupt on, POST passed, translation on, AUX off. */
const CTR_DEFAULT = CTR_KBDINT | CTR_SYS | CTR_AUXDIS | CTR_XLATE;

/** Output port bit 0: CPU reset line, active low. */
export const OUTPORT_RESET = 0x01;
/** Output port bit 1: A20 gate. */
export const OUTPORT_A20 = 0x02;
const OUTPORT_DEFAULT = OUTPORT_RESET | OUTPORT_A20;

/** Controller command: read the command byte (CTR). */
export const CMD_READ_CTR = 0x20;
/** Controller command: write the command byte; the next data byte is the CTR. */
export const CMD_WRITE_CTR = 0x60;
/** Controller command: disable the AUX interface. */
export const CMD_AUX_DISABLE = 0xa7;
/** Controller command: enable the AUX interface. */
export const CMD_AUX_ENABLE = 0xa8;
/** Controller command: AUX interface test (0 = ok, 1–4 = line stuck). */
export const CMD_AUX_TEST = 0xa9;
/** Controller command: self-test, answers 0x55. */
export const CMD_SELF_TEST = 0xaa;
/** Controller command: keyboard interface test, answers 0 (ok). */
export const CMD_KBD_TEST = 0xab;
/** Controller command: disable the keyboard interface. */
export const CMD_KBD_DISABLE = 0xad;
/** Controller command: enable the keyboard interface. */
export const CMD_KBD_ENABLE = 0xae;
/** Controller command: read the output port. */
export const CMD_READ_OUTPORT = 0xd0;
/** Controller command: write the output port; the next data byte is it. */
export const CMD_WRITE_OUTPORT = 0xd1;
/** Controller command: the next data byte appears as if the keyboard sent it. */
export const CMD_KBD_LOOP = 0xd2;
/** Controller command: the next data byte appears as if the AUX device sent it. */
export const CMD_AUX_LOOP = 0xd3;
/** Controller command: the next data byte goes to the AUX device. */
export const CMD_AUX_SEND = 0xd4;
/** Controller commands 0xF0–0xFF pulse output port bits 3:0 low where the command's bit is 0; 0xFE pulses reset. */
export const CMD_PULSE_FIRST = 0xf0;
export const CMD_PULSE_RESET = 0xfe;

/** Controller self-test passed. */
const REPLY_SELF_TEST_OK = 0x55;
/** Interface test: no error. */
const REPLY_TEST_OK = 0x00;
/** AUX interface test: clock line stuck high, what a controller with no AUX port wired reports. */
const REPLY_AUX_CLOCK_STUCK = 0x02;

/** Keyboard command: set LEDs; parameter follows. */
export const KBD_SET_LEDS = 0xed;
/** Keyboard command: echo, answers 0xEE. */
export const KBD_ECHO = 0xee;
/** Keyboard command: get (parameter 0) or set (1–3) the scan code set. */
export const KBD_SCANCODE_SET = 0xf0;
/** Keyboard command: identify, answers ACK 0xAB 0x83 (0xAB 0x41 through translation). */
export const KBD_GET_ID = 0xf2;
/** Keyboard command: set typematic rate/delay; parameter follows. */
export const KBD_SET_TYPEMATIC = 0xf3;
/** Keyboard command: enable scanning. */
export const KBD_ENABLE = 0xf4;
/** Keyboard command: disable scanning and restore defaults. */
export const KBD_DISABLE = 0xf5;
/** Keyboard command: restore defaults. */
export const KBD_SET_DEFAULTS = 0xf6;
/** Keyboard command: resend the last byte. */
export const KBD_RESEND = 0xfe;
/** Keyboard command: reset and self-test, answers ACK then 0xAA. */
export const KBD_RESET = 0xff;

/** Keyboard reply: acknowledge. */
export const KBD_ACK = 0xfa;
/** Keyboard reply: basic assurance test passed. */
export const KBD_BAT_OK = 0xaa;
/** Keyboard reply: resend (command not understood). */
export const KBD_NAK = 0xfe;
/** Keyboard ID, first byte: MF2 keyboard. */
const KBD_ID_MF2 = 0xab;
/** Keyboard ID, second byte as the keyboard sends it. */
const KBD_ID_MF2_RAW = 0x83;
/** Keyboard ID, second byte after the controller's set 2 → set 1 translation. */
const KBD_ID_MF2_TRANSLATED = 0x41;
/** Scan code sets 1, 2, 3 as their number reads through translation (translation table entries 1–3). */
const SCANCODE_SET_TRANSLATED = [0, 0x43, 0x41, 0x3f] as const;

/**
 * Ctrl-Alt-Del press and release: left Ctrl, left Alt, Delete (an E0-prefixed
 * key), released in reverse order. Set 1 marks a release with bit 7; set 2
 * with an F0 prefix; set 3 has its own codes and no E0 prefixes.
 */
const CTRL_ALT_DEL_SET1 = [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d];
const CTRL_ALT_DEL_SET2 = [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14];
const CTRL_ALT_DEL_SET3 = [0x11, 0x19, 0x64, 0xf0, 0x64, 0xf0, 0x19, 0xf0, 0x11];

/** Bytes the controller and keyboard can hold before further output is dropped (a keyboard buffers 16). */
const QUEUE_LIMIT = 32;

export interface I8042State {
  ctr: number;
  outputPort: number;
  /** Status bit 3: the last write went to the command port. */
  lastWriteWasCommand: boolean;
  /** Controller command waiting for its data byte, or 0. */
  pendingCommand: number;
  /** The byte in the output buffer, or null when it is empty. */
  output: number | null;
  /** The last byte the guest read from port 0x60 (read again while the buffer is empty). */
  lastRead: number;
  /** Controller replies waiting for the output buffer. */
  controllerQueue: number[];
  /** Keyboard bytes waiting for the output buffer. */
  keyboardQueue: number[];
  keyboard: {
    scanning: boolean;
    scancodeSet: number;
    leds: number;
    /** Keyboard command waiting for its parameter byte, or 0. */
    pendingCommand: number;
    /** The keyboard's last byte, for KBD_RESEND. */
    lastSent: number;
  };
}

export interface I8042Options {
  /** ISA IRQ 1. */
  irq: IrqLine;
  /** The guest pulsed the CPU reset line (command 0xFE, or the output port's reset bit written low). */
  onReset: () => void;
}

export class I8042 implements BusDevice {
  private readonly irq: IrqLine;
  private readonly onReset: () => void;

  private ctr = CTR_DEFAULT;
  private outputPort = OUTPORT_DEFAULT;
  private lastWriteWasCommand = false;
  private pendingCommand = 0;
  private output: number | null = null;
  private lastRead = 0;
  private controllerQueue: number[] = [];
  private keyboardQueue: number[] = [];
  private kbdScanning = true;
  private kbdScancodeSet = 2;
  private kbdLeds = 0;
  private kbdPendingCommand = 0;
  private kbdLastSent = 0;

  private irqLevel = false;

  /** Port 0x60 alone, for buses that give each port its own range. */
  readonly dataPort: BusDevice = {
    read: (offset, data) => this.read(offset + REG_DATA, data),
    write: (offset, data) => this.write(offset + REG_DATA, data),
  };
  /** Port 0x64 alone. */
  readonly commandPort: BusDevice = {
    read: (offset, data) => this.read(offset + REG_COMMAND, data),
    write: (offset, data) => this.write(offset + REG_COMMAND, data),
  };

  constructor(options: I8042Options) {
    this.irq = options.irq;
    this.onReset = options.onReset;
    this.irq.set(false);
  }

  read(offset: number, data: Uint8Array): void {
    readBytes(I8042_PORT_SPAN, offset, data, (reg) => this.readRegister(reg));
  }

  write(offset: number, data: Uint8Array): void {
    writeBytes(I8042_PORT_SPAN, offset, data, (reg, value) => this.writeRegister(reg, value));
  }

  /**
   * Presses and releases Ctrl-Alt-Del on the keyboard. Returns false (and
   * sends nothing) when the keyboard is not scanning (after a KBD_DISABLE) or
   * its buffer lacks room for the whole sequence.
   */
  sendCtrlAltDel(): boolean {
    if (!this.kbdScanning) return false;
    const translated = (this.ctr & CTR_XLATE) !== 0;
    let codes: number[];
    if (this.kbdScancodeSet === 3 && !translated) codes = CTRL_ALT_DEL_SET3;
    else if (this.kbdScancodeSet === 2 && !translated) codes = CTRL_ALT_DEL_SET2;
    else codes = CTRL_ALT_DEL_SET1;
    if (this.keyboardQueue.length + codes.length > QUEUE_LIMIT) return false;
    for (const c of codes) this.keyboardQueue.push(c);
    this.kbdLastSent = codes[codes.length - 1]!;
    this.refill();
    return true;
  }

  saveState(): I8042State {
    return {
      ctr: this.ctr,
      outputPort: this.outputPort,
      lastWriteWasCommand: this.lastWriteWasCommand,
      pendingCommand: this.pendingCommand,
      output: this.output,
      lastRead: this.lastRead,
      controllerQueue: [...this.controllerQueue],
      keyboardQueue: [...this.keyboardQueue],
      keyboard: {
        scanning: this.kbdScanning,
        scancodeSet: this.kbdScancodeSet,
        leds: this.kbdLeds,
        pendingCommand: this.kbdPendingCommand,
        lastSent: this.kbdLastSent,
      },
    };
  }

  /** Restores a state from `saveState`; throws DeviceStateError (and changes nothing) if it is malformed. */
  restoreState(state: I8042State): void {
    const r = new StateReader('i8042', state);
    const ctr = r.int('ctr', 0xff);
    const outputPort = r.int('outputPort', 0xff);
    const lastWriteWasCommand = r.bool('lastWriteWasCommand');
    const pendingCommand = r.int('pendingCommand', 0xff);
    if (pendingCommand !== 0 && !COMMANDS_WITH_DATA.has(pendingCommand)) r.fail('pendingCommand', 'is not a command that takes data');
    const rawOutput = (state as { output?: unknown }).output;
    const output = rawOutput === null ? null : r.int('output', 0xff);
    const lastRead = r.int('lastRead', 0xff);
    const controllerQueue = r.bytes('controllerQueue', QUEUE_LIMIT);
    const keyboardQueue = r.bytes('keyboardQueue', QUEUE_LIMIT);
    const k = new StateReader('i8042.keyboard', (state as { keyboard?: unknown }).keyboard);
    const scanning = k.bool('scanning');
    const scancodeSet = k.int('scancodeSet', 3);
    if (scancodeSet === 0) k.fail('scancodeSet', 'must be 1, 2 or 3');
    const leds = k.int('leds', 7);
    const kbdPending = k.int('pendingCommand', 0xff);
    if (kbdPending !== 0 && !KBD_COMMANDS_WITH_PARAM.has(kbdPending)) k.fail('pendingCommand', 'is not a command that takes a parameter');
    const lastSent = k.int('lastSent', 0xff);

    this.ctr = ctr;
    this.outputPort = outputPort;
    this.lastWriteWasCommand = lastWriteWasCommand;
    this.pendingCommand = pendingCommand;
    this.output = output;
    this.lastRead = lastRead;
    this.controllerQueue = controllerQueue;
    this.keyboardQueue = keyboardQueue;
    this.kbdScanning = scanning;
    this.kbdScancodeSet = scancodeSet;
    this.kbdLeds = leds;
    this.kbdPendingCommand = kbdPending;
    this.kbdLastSent = lastSent;
    this.irqLevel = !this.computeIrqLevel();
    this.refill();
  }

  private computeIrqLevel(): boolean {
    return this.output !== null && (this.ctr & CTR_KBDINT) !== 0;
  }

  private updateIrq(): void {
    const level = this.computeIrqLevel();
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  /** Moves the next waiting byte into an empty output buffer and updates IRQ 1. */
  private refill(): void {
    if (this.output === null) {
      const next = this.controllerQueue.shift();
      if (next !== undefined) this.output = next;
      else if ((this.ctr & CTR_KBDDIS) === 0) this.output = this.keyboardQueue.shift() ?? null;
    }
    this.updateIrq();
  }

  private controllerReply(byte: number): void {
    if (this.controllerQueue.length < QUEUE_LIMIT) this.controllerQueue.push(byte);
  }

  private keyboardReply(...bytes: number[]): void {
    for (const b of bytes) {
      if (this.keyboardQueue.length >= QUEUE_LIMIT) break;
      this.keyboardQueue.push(b);
      this.kbdLastSent = b;
    }
  }

  private status(): number {
    return (
      (this.output !== null ? STATUS_OBF : 0) |
      (this.ctr & CTR_SYS ? STATUS_SYS : 0) |
      (this.lastWriteWasCommand ? STATUS_CMD : 0) |
      STATUS_UNLOCKED
    );
  }

  private readRegister(reg: number): number {
    if (reg === REG_COMMAND) return this.status();
    if (reg !== REG_DATA) return 0xff;
    if (this.output === null) return this.lastRead;
    this.lastRead = this.output;
    this.output = null;
    // Drop the line before the next byte moves up so that byte raises a new edge.
    this.updateIrq();
    this.refill();
    return this.lastRead;
  }

  private writeRegister(reg: number, value: number): void {
    if (reg === REG_COMMAND) {
      this.lastWriteWasCommand = true;
      this.controllerCommand(value);
    } else if (reg === REG_DATA) {
      this.lastWriteWasCommand = false;
      this.dataWrite(value);
    }
    this.refill();
  }

  private controllerCommand(cmd: number): void {
    this.pendingCommand = 0;
    if (COMMANDS_WITH_DATA.has(cmd)) {
      this.pendingCommand = cmd;
      return;
    }
    switch (cmd) {
      case CMD_READ_CTR:
        this.controllerReply(this.ctr);
        break;
      case CMD_AUX_DISABLE:
        this.ctr |= CTR_AUXDIS;
        break;
      case CMD_AUX_ENABLE:
        this.ctr &= ~CTR_AUXDIS;
        break;
      case CMD_AUX_TEST:
        // No AUX port is wired. Linux's i8042_check_aux takes a stuck line as "no AUX port".
        this.controllerReply(REPLY_AUX_CLOCK_STUCK);
        break;
      case CMD_SELF_TEST:
        this.ctr |= CTR_SYS;
        this.controllerReply(REPLY_SELF_TEST_OK);
        break;
      case CMD_KBD_TEST:
        this.controllerReply(REPLY_TEST_OK);
        break;
      case CMD_KBD_DISABLE:
        this.ctr |= CTR_KBDDIS;
        break;
      case CMD_KBD_ENABLE:
        this.ctr &= ~CTR_KBDDIS;
        break;
      case CMD_READ_OUTPORT:
        this.controllerReply(this.outputPort);
        break;
      default:
        if (cmd >= CMD_PULSE_FIRST && (cmd & OUTPORT_RESET) === 0) this.onReset();
        // Other commands (RAM beyond the CTR, input port, vendor extensions) are not implemented: ignored.
        break;
    }
  }

  private dataWrite(value: number): void {
    const cmd = this.pendingCommand;
    this.pendingCommand = 0;
    switch (cmd) {
      case CMD_WRITE_CTR:
        this.ctr = value;
        return;
      case CMD_WRITE_OUTPORT: {
        this.outputPort = value;
        if ((value & OUTPORT_RESET) === 0) this.onReset();
        return;
      }
      case CMD_KBD_LOOP:
        this.keyboardReply(value);
        return;
      case CMD_AUX_LOOP:
        // With no AUX port the byte comes back on the keyboard channel (status AUXDATA clear),
        // which Linux's __i8042_command reports as an AUX error at once instead of timing out.
        this.controllerReply(value);
        return;
      case CMD_AUX_SEND:
        // Nothing is attached to the AUX port.
        return;
      default:
        this.keyboardCommand(value);
    }
  }

  private keyboardCommand(value: number): void {
    const pending = this.kbdPendingCommand;
    if (pending !== 0) {
      this.kbdPendingCommand = 0;
      switch (pending) {
        case KBD_SET_LEDS:
          this.kbdLeds = value & 7;
          this.keyboardReply(KBD_ACK);
          return;
        case KBD_SET_TYPEMATIC:
          this.keyboardReply(KBD_ACK);
          return;
        case KBD_SCANCODE_SET:
          if (value === 0) {
            const set = this.ctr & CTR_XLATE ? SCANCODE_SET_TRANSLATED[this.kbdScancodeSet]! : this.kbdScancodeSet;
            this.keyboardReply(KBD_ACK, set);
          } else if (value >= 1 && value <= 3) {
            this.kbdScancodeSet = value;
            this.keyboardReply(KBD_ACK);
          } else {
            this.keyboardReply(KBD_NAK);
          }
          return;
      }
    }
    switch (value) {
      case KBD_SET_LEDS:
      case KBD_SET_TYPEMATIC:
      case KBD_SCANCODE_SET:
        this.kbdPendingCommand = value;
        this.keyboardReply(KBD_ACK);
        break;
      case KBD_ECHO:
        this.keyboardReply(KBD_ECHO);
        break;
      case KBD_GET_ID:
        this.keyboardReply(KBD_ACK, KBD_ID_MF2, this.ctr & CTR_XLATE ? KBD_ID_MF2_TRANSLATED : KBD_ID_MF2_RAW);
        break;
      case KBD_ENABLE:
        this.kbdScanning = true;
        this.keyboardReply(KBD_ACK);
        break;
      case KBD_DISABLE:
        // Disabling also clears the keyboard's buffer and restores its defaults.
        this.keyboardQueue.length = 0;
        this.kbdScanning = false;
        this.kbdDefaults();
        this.keyboardReply(KBD_ACK);
        break;
      case KBD_SET_DEFAULTS:
        this.kbdDefaults();
        this.keyboardReply(KBD_ACK);
        break;
      case KBD_RESEND:
        this.keyboardReply(this.kbdLastSent);
        break;
      case KBD_RESET:
        this.keyboardQueue.length = 0;
        this.kbdScanning = true;
        this.kbdDefaults();
        this.kbdLeds = 0;
        this.keyboardReply(KBD_ACK, KBD_BAT_OK);
        break;
      default:
        // 0xF7–0xFD are scan-code-set-3 key attribute commands: accepted, without effect.
        if (value >= 0xf7 && value <= 0xfd) this.keyboardReply(KBD_ACK);
        else this.keyboardReply(KBD_NAK);
    }
  }

  private kbdDefaults(): void {
    this.kbdScancodeSet = 2;
  }
}

const COMMANDS_WITH_DATA = new Set([CMD_WRITE_CTR, CMD_WRITE_OUTPORT, CMD_KBD_LOOP, CMD_AUX_LOOP, CMD_AUX_SEND]);
const KBD_COMMANDS_WITH_PARAM = new Set([KBD_SET_LEDS, KBD_SET_TYPEMATIC, KBD_SCANCODE_SET]);
