/**
 * Local APIC in xAPIC mode (Intel SDM Vol. 3A, chapter "Advanced Programmable
 * Interrupt Controller (APIC)"; register map in the table "Local APIC
 * Register Address Map"), one per vCPU, as a pure state machine:
 *
 * - the guest reaches it through `BusDevice` on its 4 KiB MMIO page
 *   (0xFEE00000) and through MSRs the CPU core forwards (IA32_APIC_BASE,
 *   IA32_TSC_DEADLINE) and CR8;
 * - the CPU core asks `hasInterrupt()` / `acknowledge()` (the INTR/INTA
 *   cycle) and takes NMI, INIT and SIPI events;
 * - the IOAPIC and other local APICs deliver through `accept()`;
 * - edges out are injected: IPIs (`sendIpi`), EOI broadcasts to the IOAPIC
 *   (`eoiBroadcast`) and `wake` (something may now be deliverable);
 * - time comes from the shared GuestTsc: the engine calls `poll(now)` and
 *   sleeps until `nextDeadlineNs()` when the vCPU halts.
 *
 * Access sizes: the SDM asks for 32-bit accesses at 16-byte aligned
 * registers and calls anything touching bytes 4..15 of a register undefined.
 * Here reads of bytes 0..3 of a register at any size return those bytes of
 * the register; bytes 4..15 read as zero; writes other than an aligned 32-bit
 * store are ignored (KVM does the same). A register offset the map reserves
 * reads as zero, ignores writes and latches "Illegal Register Address" in
 * ESR, as P6 and later hardware does.
 */
import type { BusDevice } from '../../../bus/index.js';
import {
  DEST_BROADCAST, DM_EXTINT, DM_FIXED, DM_INIT, DM_LOWEST, DM_NMI, DM_SMI, DM_STARTUP, type ApicMessage, type Shorthand,
} from './message.js';
import { StateReader } from './state.js';
import { CRYSTAL_HZ, type GuestTsc } from './tsc.js';

/** The xAPIC register page. */
export const LAPIC_MMIO_SIZE = 0x1000;
/** Default (and only) physical base of the page: IA32_APIC_BASE[35:12] after reset. */
export const LAPIC_DEFAULT_BASE = 0xfee0_0000;

// Register offsets (SDM Vol. 3A, "Local APIC Register Address Map").
/** Local APIC ID, bits 31:24. */
export const REG_ID = 0x020;
/** Version: bits 7:0 version, 23:16 max LVT entry. */
export const REG_VERSION = 0x030;
/** Task priority register. */
export const REG_TPR = 0x080;
/** Arbitration priority register (read-only). */
export const REG_APR = 0x090;
/** Processor priority register (read-only). */
export const REG_PPR = 0x0a0;
/** End of interrupt (write-only). */
export const REG_EOI = 0x0b0;
/** Remote read register (read-only; reads 0 on xAPICs). */
export const REG_RRD = 0x0c0;
/** Logical destination register, bits 31:24. */
export const REG_LDR = 0x0d0;
/** Destination format register: bits 31:28 model (1111 flat, 0000 cluster), 27:0 read as ones. */
export const REG_DFR = 0x0e0;
/** Spurious-interrupt vector register. */
export const REG_SVR = 0x0f0;
/** In-service register, 8 words at 0x100..0x170. */
export const REG_ISR = 0x100;
/** Trigger mode register, 8 words at 0x180..0x1F0. */
export const REG_TMR = 0x180;
/** Interrupt request register, 8 words at 0x200..0x270. */
export const REG_IRR = 0x200;
/** Error status register. */
export const REG_ESR = 0x280;
/** Interrupt command register, low and high words. */
export const REG_ICR_LOW = 0x300;
export const REG_ICR_HIGH = 0x310;
/** LVT timer, thermal, performance counter, LINT0, LINT1, error: consecutive from 0x320. */
export const REG_LVT_TIMER = 0x320;
export const REG_LVT_THERMAL = 0x330;
export const REG_LVT_PERF = 0x340;
export const REG_LVT_LINT0 = 0x350;
export const REG_LVT_LINT1 = 0x360;
export const REG_LVT_ERROR = 0x370;
/** Timer initial count, current count (read-only), divide configuration. */
export const REG_TIMER_INITIAL = 0x380;
export const REG_TIMER_CURRENT = 0x390;
export const REG_TIMER_DIVIDE = 0x3e0;

/** LVT indices in register order (offset = REG_LVT_TIMER + 0x10 * index). */
export const LVT_TIMER = 0;
export const LVT_THERMAL = 1;
export const LVT_PERF = 2;
export const LVT_LINT0 = 3;
export const LVT_LINT1 = 4;
export const LVT_ERROR = 5;
const LVT_COUNT = 6;

/** Integrated xAPIC version (0x14, as Pentium 4 and later); Linux's modern_apic() wants >= 0x14. */
export const APIC_VERSION = 0x14;
/** Version register: max LVT entry = LVT_COUNT - 1 in bits 23:16; bit 24 (EOI-broadcast suppression) clear. */
export const VERSION_VALUE = APIC_VERSION | ((LVT_COUNT - 1) << 16);

/** SVR bit 8: APIC software enable. */
export const SVR_ENABLE = 1 << 8;
/** SVR bit 9: focus processor checking disabled (lowest-priority delivery; no effect here). */
export const SVR_FOCUS_DISABLED = 1 << 9;
/** SVR bits kept: vector 7:0 (all writable on P4 and later), enable, focus. Bit 12 is reserved (no EOI suppression). */
const SVR_MASK = 0xff | SVR_ENABLE | SVR_FOCUS_DISABLED;

/** LVT bit 16: masked. */
export const LVT_MASKED = 1 << 16;
/** LVT bits 10:8: delivery mode (thermal, perf, LINT0/1). */
const LVT_DM_SHIFT = 8;
/** LVT bit 13: input pin polarity (LINT0/1). */
const LVT_POLARITY = 1 << 13;
/** LVT bit 15: trigger mode, 1 = level (LINT0/1). */
const LVT_LEVEL = 1 << 15;
/** LVT timer bits 18:17: timer mode. */
const LVT_TIMER_MODE_SHIFT = 17;
export const TIMER_ONESHOT = 0;
export const TIMER_PERIODIC = 1;
export const TIMER_TSC_DEADLINE = 2;
/** Writable bits per LVT entry; delivery status (12) and remote IRR (14) are read-only. */
const LVT_WRITABLE = [
  0xff | LVT_MASKED | (3 << LVT_TIMER_MODE_SHIFT), // timer: vector, mask, mode
  0x7ff | LVT_MASKED, // thermal: vector, delivery mode, mask
  0x7ff | LVT_MASKED, // perf
  0x7ff | LVT_POLARITY | LVT_LEVEL | LVT_MASKED, // LINT0
  0x7ff | LVT_POLARITY | LVT_LEVEL | LVT_MASKED, // LINT1
  0xff | LVT_MASKED, // error: vector, mask
] as const;

// ICR low bits (SDM Vol. 3A, "Interrupt Command Register (ICR)").
/** ICR bit 11: destination mode, 1 = logical. */
const ICR_LOGICAL = 1 << 11;
/** ICR bit 12: delivery status (read-only): always idle here, messages go out synchronously. */
export const ICR_BUSY = 1 << 12;
/** ICR bit 14: level, 0 = de-assert (INIT level de-assert only). */
const ICR_ASSERT = 1 << 14;
/** ICR bit 15: trigger mode, 1 = level. */
const ICR_LEVEL = 1 << 15;
/** ICR bits 19:18: destination shorthand. */
const ICR_SHORTHAND_SHIFT = 18;
const ICR_LOW_MASK = 0xfff | ICR_ASSERT | ICR_LEVEL | (3 << ICR_SHORTHAND_SHIFT);
const SHORTHAND_NONE = 0;
const SHORTHAND_SELF = 1;
const SHORTHAND_ALL = 2;

// ESR bits (SDM Vol. 3A, "Error Handling").
/** ESR bit 5: a message this APIC sent carried an illegal vector (0..15). */
export const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
/** ESR bit 6: an interrupt received or generated locally carried an illegal vector. */
export const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
/** ESR bit 7: access to a reserved register offset. */
export const ESR_ILLEGAL_REGISTER = 1 << 7;

// IA32_APIC_BASE (MSR 0x1B) bits.
export const MSR_APIC_BASE = 0x1b;
export const MSR_TSC_DEADLINE = 0x6e0;
/** IA32_APIC_BASE bit 8: this is the bootstrap processor (read-only). */
export const APIC_BASE_BSP = 1n << 8n;
/** IA32_APIC_BASE bit 10: x2APIC mode (not offered: CPUID.1:ECX[21] is clear). */
export const APIC_BASE_EXTD = 1n << 10n;
/** IA32_APIC_BASE bit 11: APIC global enable. */
export const APIC_BASE_ENABLE = 1n << 11n;
/** Bits a write may set: BSP (ignored), EN, and base bits 12..47 (MAXPHYADDR 48). */
const APIC_BASE_WRITABLE = APIC_BASE_BSP | APIC_BASE_ENABLE | (((1n << 48n) - 1n) & ~0xfffn);

/** First legal vector: 0..15 are reserved for exceptions and rejected as "illegal vector". */
const FIRST_LEGAL_VECTOR = 16;
const NS_PER_CRYSTAL_TICK = 1e9 / CRYSTAL_HZ;

export interface LapicOptions {
  /** vCPU index; also the initial APIC ID. Index 0 is the bootstrap processor. */
  index: number;
  /** The VM's guest TSC, which is also the clock of the APIC timer. */
  tsc: GuestTsc;
  /**
   * Sends an IPI the ICR asked for to the other local APICs (and this one when
   * it is a destination). Default: a one-CPU system, where the message reaches
   * this APIC if it matches and nobody else.
   */
  sendIpi?: (message: ApicMessage) => void;
  /** EOI of a level-triggered vector, for the IOAPIC's remote IRR. */
  eoiBroadcast?: (vector: number) => void;
  /** Called when an interrupt, NMI, INIT or SIPI may have become deliverable: wake a halted vCPU. */
  wake?: () => void;
}

export interface LapicState {
  apicBase: string;
  id: number;
  tpr: number;
  ldr: number;
  dfr: number;
  svr: number;
  isr: number[];
  tmr: number[];
  irr: number[];
  esr: number;
  esrPending: number;
  icrLow: number;
  icrHigh: number;
  lvt: number[];
  timerInitial: number;
  timerDivide: number;
  /** Count timer running (one-shot not yet expired, or periodic). */
  timerArmed: boolean;
  /** Count at the base instant, and that instant relative to the save (≤ 0 ns). */
  timerCountBase: number;
  timerBaseRelNs: number;
  tscDeadline: string;
  nmiPending: boolean;
  initPending: boolean;
  /** Start-up vector waiting for the vCPU, or -1. */
  sipiVector: number;
}

/** Divide configuration bits 0, 1, 3 → divisor (SDM "Divide Configuration Register"). */
function divisorOf(divideConfig: number): number {
  const v = ((divideConfig >> 1) & 4) | (divideConfig & 3);
  return 1 << ((v + 1) & 7);
}

function highestBit(words: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const w = words[i]!;
    if (w !== 0) return (i << 5) | (31 - Math.clz32(w));
  }
  return -1;
}

function testBit(words: Uint32Array, v: number): boolean {
  return ((words[v >> 5]! >>> (v & 31)) & 1) !== 0;
}

function setBit(words: Uint32Array, v: number): void {
  words[v >> 5] = words[v >> 5]! | (1 << (v & 31));
}

function clearBit(words: Uint32Array, v: number): void {
  words[v >> 5] = words[v >> 5]! & ~(1 << (v & 31));
}

export class Lapic implements BusDevice {
  readonly index: number;
  private readonly tsc: GuestTsc;
  private readonly sendIpiOut: (message: ApicMessage) => void;
  private readonly eoiOut: (vector: number) => void;
  private readonly wakeOut: () => void;

  private apicBase: bigint;
  private id = 0;
  private tpr = 0;
  private ldr = 0;
  private dfr = 0xffffffff;
  private svr = 0xff;
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);
  private readonly irr = new Uint32Array(8);
  /** ESR as last latched by a write. */
  private esr = 0;
  /** Errors detected since the last ESR write. */
  private esrPending = 0;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Uint32Array(LVT_COUNT);
  private timerInitial = 0;
  private timerDivide = 0;
  private timerArmed = false;
  private timerCountBase = 0;
  private timerBaseNs = 0;
  private tscDeadline = 0n;
  private nmiPending = false;
  private initPending = false;
  private sipiVector = -1;

  constructor(options: LapicOptions) {
    if (!Number.isInteger(options.index) || options.index < 0 || options.index > 0xfe) {
      throw new RangeError(`local APIC index ${options.index}: must be an integer in 0..254 (0xFF is the broadcast ID)`);
    }
    this.index = options.index;
    this.tsc = options.tsc;
    this.sendIpiOut = options.sendIpi ?? ((m) => { if (this.isDestination(m)) this.accept(m); });
    this.eoiOut = options.eoiBroadcast ?? (() => {});
    this.wakeOut = options.wake ?? (() => {});
    this.apicBase = BigInt(LAPIC_DEFAULT_BASE) | APIC_BASE_ENABLE | (this.index === 0 ? APIC_BASE_BSP : 0n);
    this.resetRegisters();
    this.id = this.index << 24;
  }

  /** Power-up / INIT state of every register but the APIC ID (SDM "Local APIC State After Power-Up or Reset"). */
  private resetRegisters(): void {
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = 0xffffffff;
    this.svr = 0xff;
    this.isr.fill(0);
    this.tmr.fill(0);
    this.irr.fill(0);
    this.esr = 0;
    this.esrPending = 0;
    this.icrLow = 0;
    this.icrHigh = 0;
    this.lvt.fill(LVT_MASKED);
    this.timerInitial = 0;
    this.timerDivide = 0;
    this.timerArmed = false;
    this.timerCountBase = 0;
    this.timerBaseNs = 0;
    this.tscDeadline = 0n;
  }

  // --- state the CPU core and the router read ------------------------------

  /** IA32_APIC_BASE.EN: the APIC exists for the guest (MMIO decoded, messages accepted). */
  get hardwareEnabled(): boolean {
    return (this.apicBase & APIC_BASE_ENABLE) !== 0n;
  }

  /** SVR bit 8. */
  get softwareEnabled(): boolean {
    return (this.svr & SVR_ENABLE) !== 0;
  }

  /** The 8-bit xAPIC ID. */
  get apicId(): number {
    return this.id >>> 24;
  }

  /** PPR (SDM "Processor Priority Register"): TPR, or the in-service class if that is higher. */
  processorPriority(): number {
    const isrv = Math.max(highestBit(this.isr), 0);
    return (this.tpr & 0xf0) >= (isrv & 0xf0) ? this.tpr : isrv & 0xf0;
  }

  /** APR (SDM, P6 "Arbitration Priority Register"), used to pick a lowest-priority target. */
  arbitrationPriority(): number {
    const isrv = Math.max(highestBit(this.isr), 0);
    const irrv = Math.max(highestBit(this.irr), 0);
    if ((this.tpr & 0xf0) >= (irrv & 0xf0) && (this.tpr & 0xf0) > (isrv & 0xf0)) return this.tpr;
    return Math.max(this.tpr & 0xf0, isrv & 0xf0, irrv & 0xf0);
  }

  /** Whether `message` is for this APIC (shorthand, physical ID or logical match; SDM "Determining IPI Destination"). */
  isDestination(message: ApicMessage): boolean {
    if (message.shorthand === 'all') return true;
    if (message.shorthand === 'others') return message.source !== this.index;
    const dest = message.destination & 0xff;
    if (!message.logical) return dest === DEST_BROADCAST || dest === this.apicId;
    const logicalId = this.ldr >>> 24;
    const model = this.dfr >>> 28;
    if (model === 0xf) return (logicalId & dest) !== 0;
    if (model === 0x0) {
      if (dest === DEST_BROADCAST) return true;
      return dest >>> 4 === logicalId >>> 4 && (dest & logicalId & 0xf) !== 0;
    }
    return false;
  }

  // --- the CPU core's interface -------------------------------------------

  /** A maskable interrupt is waiting whose class is above the PPR class (the CPU still checks RFLAGS.IF). */
  hasInterrupt(): boolean {
    if (!this.hardwareEnabled || !this.softwareEnabled) return false;
    const v = highestBit(this.irr);
    return v >= 0 && (v & 0xf0) > (this.processorPriority() & 0xf0);
  }

  /**
   * The INTA cycle: moves the highest deliverable IRR vector to ISR and
   * returns it. When nothing is deliverable any more (TPR raised or the
   * request withdrawn since `hasInterrupt`), returns the spurious vector
   * without touching ISR (SDM "Spurious Interrupt").
   */
  acknowledge(): number {
    if (!this.hasInterrupt()) return this.svr & 0xff;
    const v = highestBit(this.irr);
    clearBit(this.irr, v);
    setBit(this.isr, v);
    return v;
  }

  /** Takes a pending NMI (delivered by IPI, IOAPIC or an LVT entry in NMI mode). */
  takeNmi(): boolean {
    const p = this.nmiPending;
    this.nmiPending = false;
    return p;
  }

  /** Takes a pending INIT: the vCPU resets and waits for a SIPI. The APIC has already reset itself. */
  takeInit(): boolean {
    const p = this.initPending;
    this.initPending = false;
    return p;
  }

  /** Takes a pending start-up vector (execution starts at vector × 4096 in real mode), or -1. */
  takeSipi(): number {
    const v = this.sipiVector;
    this.sipiVector = -1;
    return v;
  }

  /** NMI, INIT or SIPI waiting (these wake a halted vCPU whatever RFLAGS.IF says). */
  hasEvent(): boolean {
    return this.nmiPending || this.initPending || this.sipiVector >= 0;
  }

  /** MOV from CR8: TPR[7:4] (SDM "Task Priority in IA-32e Mode"). */
  readCr8(): number {
    return (this.tpr >> 4) & 0xf;
  }

  /** MOV to CR8: TPR[7:4] = value[3:0], TPR[3:0] = 0. */
  writeCr8(value: number): void {
    this.tpr = (value & 0xf) << 4;
    this.wakeOut();
  }

  /** RDMSR IA32_APIC_BASE. */
  readApicBase(): bigint {
    return this.apicBase;
  }

  /**
   * WRMSR IA32_APIC_BASE. Returns false (the CPU raises #GP) for reserved
   * bits, the x2APIC enable bit (x2APIC is not offered) and any base but
   * 0xFEE00000: relocation is refused rather than ignored so that a guest
   * trying it fails at once instead of writing into a page nobody decodes.
   * Linux never moves it. Clearing EN turns the APIC off (registers to their
   * reset state, MMIO not decoded, nothing accepted); setting it again brings
   * it back software-disabled, as after reset.
   */
  writeApicBase(value: bigint): boolean {
    const v = BigInt.asUintN(64, value);
    if ((v & ~APIC_BASE_WRITABLE) !== 0n) return false;
    if ((v & ~0xfffn) !== BigInt(LAPIC_DEFAULT_BASE)) return false;
    const enable = (v & APIC_BASE_ENABLE) !== 0n;
    if (enable !== this.hardwareEnabled) {
      const id = this.id;
      this.resetRegisters();
      this.id = id;
      this.nmiPending = false;
      this.initPending = false;
      this.sipiVector = -1;
    }
    this.apicBase = (this.apicBase & APIC_BASE_BSP) | (v & ~APIC_BASE_BSP);
    return true;
  }

  /**
   * WRMSR IA32_TSC_DEADLINE (0x6E0). Ignored unless the LVT timer is in
   * TSC-deadline mode (SDM "TSC-Deadline Mode"). 0 disarms; a deadline
   * already reached fires at once.
   */
  writeTscDeadline(value: bigint, nowNs: number = this.tsc.nowNs()): void {
    if (!this.hardwareEnabled || this.timerMode() !== TIMER_TSC_DEADLINE) return;
    this.settleTimer(nowNs);
    this.tscDeadline = BigInt.asUintN(64, value);
    this.settleTimer(nowNs);
  }

  /** RDMSR IA32_TSC_DEADLINE: the armed deadline, 0 once it fired or outside TSC-deadline mode. */
  readTscDeadline(nowNs: number = this.tsc.nowNs()): bigint {
    if (!this.hardwareEnabled || this.timerMode() !== TIMER_TSC_DEADLINE) return 0n;
    this.settleTimer(nowNs);
    return this.tscDeadline;
  }

  // --- time ---------------------------------------------------------------

  /** Fires timers whose time has come (sets the timer vector in IRR when unmasked). */
  poll(nowNs: number = this.tsc.nowNs()): void {
    this.settleTimer(nowNs);
  }

  /**
   * Host time (the GuestTsc clock's timebase) of the next timer interrupt,
   * or undefined when none can come: the engine sleeps a halted vCPU until
   * then (or until `wake`) and calls `poll`. A masked timer reports nothing;
   * its expiry has no visible effect but state, which is settled lazily.
   */
  nextDeadlineNs(): number | undefined {
    if (!this.hardwareEnabled || (this.lvt[LVT_TIMER]! & LVT_MASKED) !== 0) return undefined;
    if (this.timerMode() === TIMER_TSC_DEADLINE) {
      return this.tscDeadline === 0n ? undefined : this.tsc.hostNsAt(this.tscDeadline);
    }
    return this.timerArmed ? this.countExpiryNs() : undefined;
  }

  private timerMode(): number {
    return (this.lvt[LVT_TIMER]! >>> LVT_TIMER_MODE_SHIFT) & 3;
  }

  private tickNs(): number {
    return divisorOf(this.timerDivide) * NS_PER_CRYSTAL_TICK;
  }

  private countExpiryNs(): number {
    return this.timerBaseNs + this.timerCountBase * this.tickNs();
  }

  /** Current-count register (one-shot/periodic; 0 in TSC-deadline mode or when stopped). */
  private currentCount(nowNs: number): number {
    if (!this.timerArmed || this.timerMode() === TIMER_TSC_DEADLINE) return 0;
    const ticks = Math.max(0, Math.floor((nowNs - this.timerBaseNs) / this.tickNs()));
    if (ticks < this.timerCountBase) return this.timerCountBase - ticks;
    if (this.timerMode() !== TIMER_PERIODIC || this.timerInitial === 0) return 0;
    return this.timerInitial - ((ticks - this.timerCountBase) % this.timerInitial);
  }

  /** Applies every expiry up to `nowNs` with the current mask state; one interrupt however many periods passed. */
  private settleTimer(nowNs: number): void {
    if (this.timerMode() === TIMER_TSC_DEADLINE) {
      if (this.tscDeadline !== 0n && this.tsc.read(nowNs) >= this.tscDeadline) {
        this.tscDeadline = 0n;
        this.deliverLvt(LVT_TIMER);
      }
      return;
    }
    if (!this.timerArmed) return;
    const expiry = this.countExpiryNs();
    if (nowNs < expiry) return;
    if (this.timerMode() === TIMER_PERIODIC && this.timerInitial > 0) {
      const period = this.timerInitial * this.tickNs();
      const passed = Math.floor((nowNs - expiry) / period);
      this.timerBaseNs = expiry + passed * period;
      this.timerCountBase = this.timerInitial;
    } else {
      this.timerArmed = false;
    }
    this.deliverLvt(LVT_TIMER);
  }

  // --- message acceptance -------------------------------------------------

  /**
   * An interrupt message from the IOAPIC or another local APIC. Returns
   * whether this APIC accepted it (the IOAPIC sets remote IRR only then).
   * Fixed and lowest-priority vectors need the APIC software-enabled; vectors
   * 0..15 are refused with "Receive Illegal Vector". SMI and ExtINT are
   * dropped: there is no SMM and no 8259 to supply an ExtINT vector.
   */
  accept(message: ApicMessage): boolean {
    if (!this.hardwareEnabled) return false;
    switch (message.mode) {
      case DM_FIXED:
      case DM_LOWEST:
        return this.acceptInterrupt(message.vector, message.levelTriggered);
      case DM_NMI:
        this.nmiPending = true;
        this.wakeOut();
        return true;
      case DM_INIT: {
        // SDM "Local APIC State After an INIT Reset": power-up state except the APIC ID.
        const id = this.id;
        this.resetRegisters();
        this.id = id;
        this.initPending = true;
        this.sipiVector = -1;
        this.wakeOut();
        return true;
      }
      case DM_STARTUP:
        this.sipiVector = message.vector & 0xff;
        this.wakeOut();
        return true;
      case DM_SMI:
      case DM_EXTINT:
      default:
        return false;
    }
  }

  /** A fixed interrupt into IRR; TMR records its trigger mode (SDM "Interrupt Acceptance for Fixed Interrupts"). */
  acceptInterrupt(vector: number, levelTriggered = false): boolean {
    if (!this.hardwareEnabled || !this.softwareEnabled) return false;
    const v = vector & 0xff;
    if (v < FIRST_LEGAL_VECTOR) {
      this.raiseError(ESR_RECEIVE_ILLEGAL_VECTOR);
      return false;
    }
    setBit(this.irr, v);
    if (levelTriggered) setBit(this.tmr, v);
    else clearBit(this.tmr, v);
    this.wakeOut();
    return true;
  }

  /** A local interrupt from LVT entry `index`, if unmasked. */
  private deliverLvt(index: number): void {
    const entry = this.lvt[index]!;
    if (entry & LVT_MASKED) return;
    const vector = entry & 0xff;
    const mode = index === LVT_TIMER || index === LVT_ERROR ? DM_FIXED : (entry >> LVT_DM_SHIFT) & 7;
    if (mode === DM_FIXED) {
      if (vector < FIRST_LEGAL_VECTOR) {
        // The error LVT's own illegal vector is recorded without raising another error interrupt.
        if (index === LVT_ERROR) this.esrPending |= ESR_RECEIVE_ILLEGAL_VECTOR;
        else this.raiseError(ESR_RECEIVE_ILLEGAL_VECTOR);
        return;
      }
      this.acceptInterrupt(vector, index === LVT_LINT0 || index === LVT_LINT1 ? (entry & LVT_LEVEL) !== 0 : false);
      return;
    }
    this.accept({ vector, mode, logical: false, destination: this.apicId, levelTriggered: false, shorthand: 'none' });
  }

  private raiseError(bit: number): void {
    this.esrPending |= bit;
    this.deliverLvt(LVT_ERROR);
  }

  private eoi(): void {
    const v = highestBit(this.isr);
    if (v < 0) return;
    clearBit(this.isr, v);
    if (testBit(this.tmr, v)) this.eoiOut(v);
    this.wakeOut();
  }

  // --- ICR ----------------------------------------------------------------

  private sendIcr(low: number): void {
    this.icrLow = low & ICR_LOW_MASK;
    const vector = low & 0xff;
    const mode = (low >> 8) & 7;
    const shorthand = (low >>> ICR_SHORTHAND_SHIFT) & 3;
    // INIT level de-assert (INIT, trigger level, level 0) only resynchronises arbitration IDs on
    // P6-era APIC buses; Pentium 4 and later ignore it (SDM "ICR", delivery mode 101).
    if (mode === DM_INIT && (low & ICR_LEVEL) !== 0 && (low & ICR_ASSERT) === 0) return;
    if ((mode === DM_FIXED || mode === DM_LOWEST) && vector < FIRST_LEGAL_VECTOR) {
      this.raiseError(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    if (mode === DM_SMI || mode === DM_EXTINT || mode === 3) return;
    if (shorthand === SHORTHAND_SELF) {
      // "Self" is valid for fixed delivery only (SDM table "Valid Combinations for the ICR");
      // NMI is accepted too, as Linux's shortcut path may send one and KVM delivers it.
      if (mode === DM_FIXED || mode === DM_NMI) this.accept({ vector, mode, logical: false, destination: this.apicId, levelTriggered: false, shorthand: 'none' });
      return;
    }
    const kind: Shorthand = shorthand === SHORTHAND_NONE ? 'none' : shorthand === SHORTHAND_ALL ? 'all' : 'others';
    // IPIs are edge-triggered; the trigger bit matters only for INIT de-assert above.
    this.sendIpiOut({
      vector, mode, logical: (low & ICR_LOGICAL) !== 0, destination: this.icrHigh >>> 24, levelTriggered: false, shorthand: kind, source: this.index,
    });
  }

  // --- MMIO ---------------------------------------------------------------

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (!this.hardwareEnabled) return;
    const within = offset & 0xf;
    if (within >= 4 || offset < 0 || offset >= LAPIC_MMIO_SIZE) return;
    const value = this.readRegister(offset - within);
    for (let i = 0; i < data.length && within + i < 4; i++) data[i] = (value >>> (8 * (within + i))) & 0xff;
  }

  write(offset: number, data: Uint8Array): void {
    if (!this.hardwareEnabled || data.length !== 4 || (offset & 0xf) !== 0 || offset < 0 || offset >= LAPIC_MMIO_SIZE) return;
    const value = (data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24)) >>> 0;
    this.writeRegister(offset, value);
  }

  /** A 32-bit register read at a 16-byte aligned offset. */
  readRegister(reg: number): number {
    if (reg >= REG_ISR && reg < REG_ISR + 0x80) return this.isr[(reg - REG_ISR) >> 4]!;
    if (reg >= REG_TMR && reg < REG_TMR + 0x80) return this.tmr[(reg - REG_TMR) >> 4]!;
    if (reg >= REG_IRR && reg < REG_IRR + 0x80) return this.irr[(reg - REG_IRR) >> 4]!;
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) return this.lvt[(reg - REG_LVT_TIMER) >> 4]!;
    switch (reg) {
      case REG_ID: return this.id >>> 0;
      case REG_VERSION: return VERSION_VALUE;
      case REG_TPR: return this.tpr;
      case REG_APR: return this.arbitrationPriority();
      case REG_PPR: return this.processorPriority();
      case REG_EOI: return 0;
      case REG_RRD: return 0;
      case REG_LDR: return this.ldr >>> 0;
      case REG_DFR: return (this.dfr | 0x0fffffff) >>> 0;
      case REG_SVR: return this.svr;
      case REG_ESR: return this.esr;
      case REG_ICR_LOW: return this.icrLow;
      case REG_ICR_HIGH: return this.icrHigh >>> 0;
      case REG_TIMER_INITIAL: return this.timerInitial;
      case REG_TIMER_CURRENT: {
        const now = this.tsc.nowNs();
        this.settleTimer(now);
        return this.currentCount(now);
      }
      case REG_TIMER_DIVIDE: return this.timerDivide;
      default:
        this.raiseError(ESR_ILLEGAL_REGISTER);
        return 0;
    }
  }

  /** A 32-bit register write at a 16-byte aligned offset. */
  writeRegister(reg: number, value: number): void {
    value >>>= 0;
    if (reg >= REG_ISR && reg < REG_IRR + 0x80) return; // ISR, TMR, IRR: read-only
    if (reg >= REG_LVT_TIMER && reg <= REG_LVT_ERROR) {
      this.writeLvt((reg - REG_LVT_TIMER) >> 4, value);
      return;
    }
    switch (reg) {
      case REG_ID: this.id = value & 0xff000000; return;
      case REG_TPR: this.tpr = value & 0xff; this.wakeOut(); return;
      case REG_EOI: this.eoi(); return;
      case REG_LDR: this.ldr = value & 0xff000000; return;
      case REG_DFR: this.dfr = (value | 0x0fffffff) >>> 0; return;
      case REG_SVR: this.writeSvr(value); return;
      case REG_ESR:
        // A write latches the errors seen since the previous write (SDM "Error Handling").
        this.esr = this.esrPending;
        this.esrPending = 0;
        return;
      case REG_ICR_LOW: this.sendIcr(value); return;
      case REG_ICR_HIGH: this.icrHigh = value & 0xff000000; return;
      case REG_TIMER_INITIAL: this.writeInitialCount(value); return;
      case REG_TIMER_DIVIDE: this.writeDivide(value); return;
      case REG_VERSION: case REG_APR: case REG_PPR: case REG_RRD: case REG_TIMER_CURRENT:
        return; // read-only
      default:
        this.raiseError(ESR_ILLEGAL_REGISTER);
    }
  }

  private writeSvr(value: number): void {
    this.svr = value & SVR_MASK;
    if (!this.softwareEnabled) {
      // Software disable masks every LVT entry (SDM "Local APIC State After It Has Been Software Disabled").
      this.settleTimer(this.tsc.nowNs());
      for (let i = 0; i < LVT_COUNT; i++) this.lvt[i] = this.lvt[i]! | LVT_MASKED;
    }
    this.wakeOut();
  }

  private writeLvt(index: number, value: number): void {
    const now = this.tsc.nowNs();
    let entry = (value & LVT_WRITABLE[index]!) >>> 0;
    // While software-disabled the mask bits stay set.
    if (!this.softwareEnabled) entry |= LVT_MASKED;
    if (index !== LVT_TIMER) {
      this.lvt[index] = entry;
      return;
    }
    this.settleTimer(now);
    const oldMode = this.timerMode();
    this.lvt[LVT_TIMER] = entry;
    const newMode = this.timerMode();
    // Moving into or out of TSC-deadline mode disarms the timer (SDM "TSC-Deadline Mode").
    if ((oldMode === TIMER_TSC_DEADLINE) !== (newMode === TIMER_TSC_DEADLINE)) {
      this.tscDeadline = 0n;
      this.timerArmed = false;
      this.timerInitial = 0;
    }
  }

  private writeInitialCount(value: number): void {
    // In TSC-deadline mode writes to the initial count are ignored.
    if (this.timerMode() === TIMER_TSC_DEADLINE) return;
    const now = this.tsc.nowNs();
    this.settleTimer(now);
    this.timerInitial = value;
    this.timerArmed = value !== 0;
    this.timerCountBase = value;
    this.timerBaseNs = now;
  }

  private writeDivide(value: number): void {
    const now = this.tsc.nowNs();
    this.settleTimer(now);
    // A running count continues from where it is at the new rate.
    if (this.timerArmed) {
      this.timerCountBase = this.currentCount(now);
      this.timerBaseNs = now;
      this.timerArmed = this.timerCountBase > 0;
    }
    this.timerDivide = value & 0xb;
  }

  // --- save / restore -----------------------------------------------------

  saveState(nowNs: number = this.tsc.nowNs()): LapicState {
    this.settleTimer(nowNs);
    return {
      apicBase: this.apicBase.toString(),
      id: this.id >>> 0,
      tpr: this.tpr,
      ldr: this.ldr >>> 0,
      dfr: this.dfr >>> 0,
      svr: this.svr,
      isr: [...this.isr],
      tmr: [...this.tmr],
      irr: [...this.irr],
      esr: this.esr,
      esrPending: this.esrPending,
      icrLow: this.icrLow,
      icrHigh: this.icrHigh >>> 0,
      lvt: [...this.lvt],
      timerInitial: this.timerInitial,
      timerDivide: this.timerDivide,
      timerArmed: this.timerArmed,
      timerCountBase: this.timerCountBase,
      timerBaseRelNs: this.timerArmed ? this.timerBaseNs - nowNs : 0,
      tscDeadline: this.tscDeadline.toString(),
      nmiPending: this.nmiPending,
      initPending: this.initPending,
      sipiVector: this.sipiVector,
    };
  }

  /** Restores a state from `saveState`; throws ApicStateError (and changes nothing) if it is malformed. */
  restoreState(state: LapicState, nowNs: number = this.tsc.nowNs()): void {
    const r = new StateReader(`lapic${this.index}`, state);
    const apicBase = r.u64('apicBase');
    if ((apicBase & ~APIC_BASE_WRITABLE) !== 0n || (apicBase & ~0xfffn) !== BigInt(LAPIC_DEFAULT_BASE)) r.fail('apicBase', 'is not a value this APIC accepts');
    if (((apicBase & APIC_BASE_BSP) !== 0n) !== (this.index === 0)) r.fail('apicBase', `BSP bit does not match vCPU ${this.index}`);
    const lvt = r.words('lvt', LVT_COUNT);
    lvt.forEach((w, i) => {
      if ((w & ~LVT_WRITABLE[i]!) !== 0) r.fail('lvt', `entry ${i} has bits outside 0x${LVT_WRITABLE[i]!.toString(16)}`);
    });
    const timerArmed = r.bool('timerArmed');
    const timerBaseRelNs = r.num('timerBaseRelNs');
    if (timerBaseRelNs > 0) r.fail('timerBaseRelNs', 'must not be in the future (≤ 0)');
    const sipi = r.raw('sipiVector');
    if (sipi !== -1) r.int('sipiVector', 0xff);
    const s = {
      apicBase,
      id: r.int('id', 0xffffffff, 0xff000000),
      tpr: r.int('tpr', 0xff),
      ldr: r.int('ldr', 0xffffffff, 0xff000000),
      dfr: r.int('dfr', 0xffffffff),
      svr: r.int('svr', SVR_MASK, SVR_MASK),
      isr: r.words('isr', 8),
      tmr: r.words('tmr', 8),
      irr: r.words('irr', 8),
      esr: r.int('esr', 0xff),
      esrPending: r.int('esrPending', 0xff),
      icrLow: r.int('icrLow', 0xffffffff, ICR_LOW_MASK),
      icrHigh: r.int('icrHigh', 0xffffffff, 0xff000000),
      timerInitial: r.int('timerInitial', 0xffffffff),
      timerDivide: r.int('timerDivide', 0xb, 0xb),
      timerCountBase: r.int('timerCountBase', 0xffffffff),
      tscDeadline: r.u64('tscDeadline'),
      nmiPending: r.bool('nmiPending'),
      initPending: r.bool('initPending'),
    };
    if ((s.dfr & 0x0fffffff) !== 0x0fffffff) r.fail('dfr', 'bits 27:0 must read as ones');
    for (const f of ['isr', 'irr'] as const) {
      if ((s[f][0]! & 0xffff) !== 0) r.fail(f, 'has vectors 0..15 set, which no APIC accepts');
    }
    if (timerArmed && s.timerCountBase === 0) r.fail('timerCountBase', 'must be non-zero while the timer is armed');
    this.apicBase = s.apicBase;
    this.id = s.id;
    this.tpr = s.tpr;
    this.ldr = s.ldr;
    this.dfr = s.dfr;
    this.svr = s.svr;
    this.isr.set(s.isr);
    this.tmr.set(s.tmr);
    this.irr.set(s.irr);
    this.esr = s.esr;
    this.esrPending = s.esrPending;
    this.icrLow = s.icrLow;
    this.icrHigh = s.icrHigh;
    this.lvt.set(lvt);
    this.timerInitial = s.timerInitial;
    this.timerDivide = s.timerDivide;
    this.timerArmed = timerArmed;
    this.timerCountBase = s.timerCountBase;
    this.timerBaseNs = nowNs + timerBaseRelNs;
    this.tscDeadline = s.tscDeadline;
    this.nmiPending = s.nmiPending;
    this.initPending = s.initPending;
    this.sipiVector = sipi === -1 ? -1 : (sipi as number);
    this.wakeOut();
  }
}
