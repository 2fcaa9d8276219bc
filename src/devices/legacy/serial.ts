/**
 * 16550A UART (National Semiconductor PC16550D datasheet, "PC16550D Universal
 * Asynchronous Receiver/Transmitter with FIFOs", June 1995), as the PC's COM1.
 *
 * A pure state machine: register accesses come in through `BusDevice`, the
 * transmitted bytes leave through the injected `out` sink, host input enters
 * through `enqueueInput`, and the interrupt output drives the injected line.
 * Transmission is instantaneous (THR and the transmitter are always empty
 * again by the next guest access), so THRE/TEMT read as set and a THRE
 * interrupt follows every THR write while ETBEI is enabled.
 *
 * PC wiring: the UART's INTR pin reaches the interrupt controller through a
 * buffer enabled by the OUT2 modem-control output, so the line is
 * `interrupt pending && OUT2`. In loopback mode the OUT pins are forced
 * inactive (datasheet, MCR bit 4), which also cuts the interrupt off on a PC.
 * Linux sets OUT2 when it opens a port with an IRQ (serial8250_do_startup).
 */
import type { BusDevice, IrqLine } from '../../bus/index.js';
import { StateReader, readBytes, writeBytes } from './common.js';

/** Eight consecutive registers: base+0 .. base+7. */
export const SERIAL_PORT_SPAN = 8;
/** Receive and transmit FIFO depth of the 16550A. */
export const SERIAL_FIFO_SIZE = 16;

// Register offsets (datasheet Table II). Offsets 0 and 1 switch to the divisor latch when LCR.DLAB = 1.
/** RBR (read) / THR (write); DLL when DLAB = 1. */
const REG_DATA = 0;
/** IER; DLM when DLAB = 1. */
const REG_IER = 1;
/** IIR (read) / FCR (write). */
const REG_IIR_FCR = 2;
/** Line control register. */
const REG_LCR = 3;
/** Modem control register. */
const REG_MCR = 4;
/** Line status register. */
const REG_LSR = 5;
/** Modem status register. */
const REG_MSR = 6;
/** Scratch register: no function, the 8250 driver's first probe. */
const REG_SCR = 7;

/** IER bit 0: enable received data available interrupt (ERBFI). */
export const IER_RDA = 0x01;
/** IER bit 1: enable transmitter holding register empty interrupt (ETBEI). */
export const IER_THRE = 0x02;
/** IER bit 2: enable receiver line status interrupt (ELSI). */
export const IER_RLS = 0x04;
/** IER bit 3: enable modem status interrupt (EDSSI). */
export const IER_MSI = 0x08;
/** IER bits 4–7 are always 0 on the 16550A (the 8250 driver's IER probe relies on it). */
const IER_MASK = 0x0f;

/** IIR bit 0: 0 = interrupt pending. */
export const IIR_NO_INT = 0x01;
/** IIR id: modem status (lowest priority). */
export const IIR_MSI = 0x00;
/** IIR id: transmitter holding register empty. */
export const IIR_THRE = 0x02;
/** IIR id: received data available (FIFO at or above trigger level). */
export const IIR_RDA = 0x04;
/** IIR id: receiver line status (highest priority). */
export const IIR_RLS = 0x06;
/** IIR id: character timeout (FIFO mode, data below trigger level). */
export const IIR_TIMEOUT = 0x0c;
/** IIR bits 7:6 = 11 when FCR0 is set: "FIFOs enabled", how the 8250 driver recognises a 16550A. */
export const IIR_FIFOS_ENABLED = 0xc0;

/** FCR bit 0: enable both FIFOs; changing it clears them. */
export const FCR_FIFO_ENABLE = 0x01;
/** FCR bit 1: clear the receive FIFO (self-clearing). */
export const FCR_CLEAR_RX = 0x02;
/** FCR bit 2: clear the transmit FIFO (self-clearing). */
export const FCR_CLEAR_TX = 0x04;
/** FCR bit 3: DMA mode select (RXRDY/TXRDY pins only). */
const FCR_DMA_MODE = 0x08;
/** FCR bits 7:6: receiver trigger level 1/4/8/14 bytes. */
const FCR_TRIGGER = 0xc0;
/** FCR bits kept as state; bits 1 and 2 self-clear, bits 4–5 are reserved on the 16550A. */
const FCR_KEPT = FCR_FIFO_ENABLE | FCR_DMA_MODE | FCR_TRIGGER;
const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const;

/** LCR bit 7: divisor latch access bit. */
export const LCR_DLAB = 0x80;

/** MCR bit 0: DTR output (loopback: DSR input). */
export const MCR_DTR = 0x01;
/** MCR bit 1: RTS output (loopback: CTS input). */
export const MCR_RTS = 0x02;
/** MCR bit 2: OUT1 output (loopback: RI input). */
export const MCR_OUT1 = 0x04;
/** MCR bit 3: OUT2 output; on a PC it enables the UART's interrupt onto the bus (loopback: DCD input). */
export const MCR_OUT2 = 0x08;
/** MCR bit 4: loopback (diagnostic) mode. */
export const MCR_LOOP = 0x10;
/** MCR bits 5–7 are always 0 on the 16550A. */
const MCR_MASK = 0x1f;

/** LSR bit 0: data ready. */
export const LSR_DR = 0x01;
/** LSR bit 1: overrun error (a character arrived with no room for it); cleared by reading LSR. */
export const LSR_OE = 0x02;
/** LSR bit 5: transmitter holding register (FIFO) empty. */
export const LSR_THRE = 0x20;
/** LSR bit 6: transmitter empty (THR and shift register). */
export const LSR_TEMT = 0x40;

/** MSR bit 0: delta CTS. */
const MSR_DCTS = 0x01;
/** MSR bit 1: delta DSR. */
const MSR_DDSR = 0x02;
/** MSR bit 2: trailing edge of RI (RI went from asserted to deasserted). */
const MSR_TERI = 0x04;
/** MSR bit 3: delta DCD. */
const MSR_DDCD = 0x08;
const MSR_DELTAS = MSR_DCTS | MSR_DDSR | MSR_TERI | MSR_DDCD;
/** MSR bit 4: clear to send. */
export const MSR_CTS = 0x10;
/** MSR bit 5: data set ready. */
export const MSR_DSR = 0x20;
/** MSR bit 6: ring indicator. */
export const MSR_RI = 0x40;
/** MSR bit 7: data carrier detect. */
export const MSR_DCD = 0x80;
/**
 * Outside loopback the host side is a cable that is always connected and ready:
 * CTS, DSR and DCD asserted, so a guest using hardware flow control transmits.
 */
const MSR_CONNECTED = MSR_CTS | MSR_DSR | MSR_DCD;

/** Divisor for 9600 baud from the PC's 1.8432 MHz clock (115200 / 12): a firmware-like default. */
const DEFAULT_DIVISOR = 12;

export interface SerialState {
  ier: number;
  lcr: number;
  mcr: number;
  fcr: number;
  scr: number;
  dll: number;
  dlm: number;
  /** LSR.OE: a character was lost since LSR was last read. */
  overrun: boolean;
  /** MSR delta bits 3:0 not yet read. */
  msrDeltas: number;
  /** A THRE interrupt is pending (cleared by reading it from IIR or writing THR). */
  threPending: boolean;
  /** Receive FIFO contents, oldest first. */
  rx: number[];
}

export interface SerialOptions {
  /** The UART's interrupt output after the OUT2 gate (COM1: ISA IRQ 4). */
  irq: IrqLine;
  /** Receives every byte the guest transmits, in order. Called synchronously; must not block. */
  out: (byte: number) => void;
}

export class Serial16550 implements BusDevice {
  private readonly irq: IrqLine;
  private readonly out: (byte: number) => void;

  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private fcr = 0;
  private scr = 0;
  private dll = DEFAULT_DIVISOR;
  private dlm = 0;
  private overrun = false;
  private msrDeltas = 0;
  private threPending = false;
  private rx: number[] = [];

  private irqLevel = false;
  /** Host input was refused for lack of room; tell the listeners when room appears. */
  private inputBlocked = false;
  private readonly spaceListeners = new Set<() => void>();

  constructor(options: SerialOptions) {
    this.irq = options.irq;
    this.out = options.out;
    this.irq.set(false);
  }

  read(offset: number, data: Uint8Array): void {
    readBytes(SERIAL_PORT_SPAN, offset, data, (reg) => this.readRegister(reg));
    this.afterAccess();
  }

  write(offset: number, data: Uint8Array): void {
    writeBytes(SERIAL_PORT_SPAN, offset, data, (reg, value) => this.writeRegister(reg, value));
    this.afterAccess();
  }

  /**
   * Offers host input to the receiver. Returns how many leading bytes were
   * taken (0 when the FIFO is full or the UART is in loopback, where the
   * serial input is disconnected). The caller keeps the rest and offers it
   * again once `onInputSpace` fires; nothing is ever dropped here.
   */
  enqueueInput(bytes: Uint8Array): number {
    const room = this.wantsInput() ? this.rxCapacity() - this.rx.length : 0;
    const n = Math.min(room, bytes.length);
    for (let i = 0; i < n; i++) this.rx.push(bytes[i]!);
    if (n < bytes.length) this.inputBlocked = true;
    this.updateIrq();
    return n;
  }

  /** True when `enqueueInput` would take at least one byte. */
  wantsInput(): boolean {
    return (this.mcr & MCR_LOOP) === 0 && this.rx.length < this.rxCapacity();
  }

  /**
   * Registers `listener` to run when the receiver has room again after an
   * `enqueueInput` call could not take everything. It runs synchronously at
   * the end of the guest register access that made room (usually an RBR
   * read), once per refusal, and may call `enqueueInput`. Returns a function
   * that unregisters it.
   */
  onInputSpace(listener: () => void): () => void {
    this.spaceListeners.add(listener);
    return () => this.spaceListeners.delete(listener);
  }

  saveState(): SerialState {
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      fcr: this.fcr,
      scr: this.scr,
      dll: this.dll,
      dlm: this.dlm,
      overrun: this.overrun,
      msrDeltas: this.msrDeltas,
      threPending: this.threPending,
      rx: [...this.rx],
    };
  }

  /** Restores a state from `saveState`; throws DeviceStateError (and changes nothing) if it is malformed. */
  restoreState(state: SerialState): void {
    const r = new StateReader('serial', state);
    const fcr = r.int('fcr', 0xff, FCR_KEPT);
    const s: SerialState = {
      ier: r.int('ier', 0xff, IER_MASK),
      lcr: r.int('lcr', 0xff),
      mcr: r.int('mcr', 0xff, MCR_MASK),
      fcr,
      scr: r.int('scr', 0xff),
      dll: r.int('dll', 0xff),
      dlm: r.int('dlm', 0xff),
      overrun: r.bool('overrun'),
      msrDeltas: r.int('msrDeltas', 0xff, MSR_DELTAS),
      threPending: r.bool('threPending'),
      rx: r.bytes('rx', fcr & FCR_FIFO_ENABLE ? SERIAL_FIFO_SIZE : 1),
    };
    Object.assign(this, s);
    this.inputBlocked = false;
    this.irqLevel = !this.computeIrqLevel();
    this.updateIrq();
  }

  private rxCapacity(): number {
    return this.fcr & FCR_FIFO_ENABLE ? SERIAL_FIFO_SIZE : 1;
  }

  private dlab(): boolean {
    return (this.lcr & LCR_DLAB) !== 0;
  }

  /** MSR bits 7:4 as the pins read them. */
  private modemInputs(): number {
    const m = this.mcr;
    if ((m & MCR_LOOP) === 0) return MSR_CONNECTED;
    // Loopback wiring (datasheet, MCR bit 4): RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD.
    return (m & MCR_RTS ? MSR_CTS : 0) | (m & MCR_DTR ? MSR_DSR : 0) | (m & MCR_OUT1 ? MSR_RI : 0) | (m & MCR_OUT2 ? MSR_DCD : 0);
  }

  /** Highest-priority pending interrupt id (datasheet Table IV), or IIR_NO_INT. */
  private pendingInterrupt(): number {
    const ier = this.ier;
    if (ier & IER_RLS && this.overrun) return IIR_RLS;
    if (ier & IER_RDA && this.rx.length > 0) {
      // Below the trigger level the 16550A reports a character timeout after four character
      // times without activity. Host input arrives in bursts, so waiting would only add
      // latency: the timeout is taken as already elapsed.
      if (this.fcr & FCR_FIFO_ENABLE && this.rx.length < RX_TRIGGER_LEVELS[this.fcr >> 6]!) return IIR_TIMEOUT;
      return IIR_RDA;
    }
    if (ier & IER_THRE && this.threPending) return IIR_THRE;
    if (ier & IER_MSI && this.msrDeltas !== 0) return IIR_MSI;
    return IIR_NO_INT;
  }

  private computeIrqLevel(): boolean {
    return (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2 && this.pendingInterrupt() !== IIR_NO_INT;
  }

  private updateIrq(): void {
    const level = this.computeIrqLevel();
    if (level !== this.irqLevel) {
      this.irqLevel = level;
      this.irq.set(level);
    }
  }

  private afterAccess(): void {
    this.updateIrq();
    if (this.inputBlocked && this.wantsInput()) {
      this.inputBlocked = false;
      for (const listener of this.spaceListeners) listener();
    }
  }

  /** A character entering the receiver from the transmitter in loopback mode. */
  private receiveLoopback(byte: number): void {
    if (this.rx.length < this.rxCapacity()) {
      this.rx.push(byte);
    } else {
      this.overrun = true;
      // FIFO mode: the character in the shift register is lost, the FIFO is kept.
      // Non-FIFO mode: the new character overwrites the unread one in RBR.
      if ((this.fcr & FCR_FIFO_ENABLE) === 0) this.rx[0] = byte;
    }
  }

  private setMcr(value: number): void {
    const before = this.modemInputs();
    this.mcr = value & MCR_MASK;
    const after = this.modemInputs();
    const changed = before ^ after;
    if (changed & MSR_CTS) this.msrDeltas |= MSR_DCTS;
    if (changed & MSR_DSR) this.msrDeltas |= MSR_DDSR;
    if (changed & MSR_DCD) this.msrDeltas |= MSR_DDCD;
    if (before & MSR_RI && !(after & MSR_RI)) this.msrDeltas |= MSR_TERI;
  }

  private setFcr(value: number): void {
    const wasEnabled = (this.fcr & FCR_FIFO_ENABLE) !== 0;
    const enable = (value & FCR_FIFO_ENABLE) !== 0;
    // Changing FCR0 clears both FIFOs; the other bits are programmed only while FCR0 is 1.
    if (enable !== wasEnabled || value & FCR_CLEAR_RX) {
      this.rx.length = 0;
    }
    this.fcr = enable ? value & FCR_KEPT : 0;
  }

  private readRegister(reg: number): number {
    switch (reg) {
      case REG_DATA: {
        if (this.dlab()) return this.dll;
        return this.rx.shift() ?? 0;
      }
      case REG_IER:
        return this.dlab() ? this.dlm : this.ier;
      case REG_IIR_FCR: {
        const id = this.pendingInterrupt();
        // Reading IIR while THRE is the reported source clears it (datasheet Table IV).
        if (id === IIR_THRE) this.threPending = false;
        return id | (this.fcr & FCR_FIFO_ENABLE ? IIR_FIFOS_ENABLED : 0);
      }
      case REG_LCR:
        return this.lcr;
      case REG_MCR:
        return this.mcr;
      case REG_LSR: {
        const v = (this.rx.length > 0 ? LSR_DR : 0) | (this.overrun ? LSR_OE : 0) | LSR_THRE | LSR_TEMT;
        this.overrun = false;
        return v;
      }
      case REG_MSR: {
        const v = this.modemInputs() | this.msrDeltas;
        this.msrDeltas = 0;
        return v;
      }
      case REG_SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  private writeRegister(reg: number, value: number): void {
    switch (reg) {
      case REG_DATA:
        if (this.dlab()) {
          this.dll = value;
        } else {
          if (this.mcr & MCR_LOOP) this.receiveLoopback(value);
          else this.out(value);
          // The character leaves THR at once, so THR is empty again: a fresh THRE interrupt.
          this.threPending = true;
        }
        break;
      case REG_IER:
        if (this.dlab()) {
          this.dlm = value;
        } else {
          const before = this.ier;
          this.ier = value & IER_MASK;
          // Enabling ETBEI while THR is empty raises THRE at once; Linux's startup test of
          // the transmitter interrupt (serial8250_do_startup) depends on it.
          if (this.ier & IER_THRE && !(before & IER_THRE)) this.threPending = true;
        }
        break;
      case REG_IIR_FCR:
        this.setFcr(value);
        break;
      case REG_LCR:
        this.lcr = value;
        break;
      case REG_MCR:
        this.setMcr(value);
        break;
      case REG_SCR:
        this.scr = value;
        break;
      default:
        // LSR and MSR are read-only (writes are factory-test only).
        break;
    }
  }
}
