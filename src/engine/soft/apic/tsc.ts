/**
 * The guest's time-stamp counter and the CPUID bits that tell Linux its
 * frequency, so that it needs no PIT/HPET calibration (there is neither).
 *
 * The guest TSC is a function of host time, never of instructions retired:
 * `tsc = offset + floor((hostNs - epoch) * hz / 1e9)`. However slowly the
 * soft engine executes, a guest `udelay(10)` lasts 10 µs of host time and
 * wall-clock time in the guest advances with the host's.
 *
 * Frequency: a fixed 1 GHz by default, not the host's measured TSC. The guest
 * never sees the host TSC (RDTSC is emulated), so matching it buys nothing;
 * a fixed rate keeps snapshots portable between hosts and makes the guest
 * TSC read in nanoseconds, so deadline arithmetic is exact.
 *
 * Numeric width: TSC values are bigint at this interface (they are 64-bit);
 * host times are numbers of nanoseconds in the injected clock's timebase.
 */
import { ApicStateError, StateReader } from './state.js';

/** Default guest TSC frequency: 1 GHz, one tick per nanosecond. */
export const TSC_HZ_DEFAULT = 1_000_000_000;
/**
 * The core crystal clock announced in CPUID 0x15 ECX; the local APIC timer
 * counts at this rate before its divider (SDM Vol. 3 "APIC Timer": on parts
 * that enumerate 0x15 the APIC timer runs at the crystal frequency, which is
 * how Linux derives lapic_timer_period from it). 25 MHz as on Intel servers.
 */
export const CRYSTAL_HZ = 25_000_000;

const NS_PER_S = 1_000_000_000;
const NS_PER_S_N = 1_000_000_000n;
const U64 = (1n << 64n) - 1n;
const TWO_32 = 4294967296;

export interface GuestTscOptions {
  /** Guest TSC frequency in Hz (integer, 1 MHz .. 10 GHz). Default TSC_HZ_DEFAULT. */
  hz?: number;
  /** Monotonic host time in nanoseconds (any epoch). Default: performance.now() in ns. */
  clock?: () => number;
  /** TSC value at creation. Default 0 (as after reset). */
  initial?: bigint;
}

export interface GuestTscState {
  hz: number;
  /** TSC value when saved, as a decimal string (64-bit). */
  tsc: string;
}

const defaultClock = (): number => performance.now() * 1e6;

export class GuestTsc {
  readonly hz: number;
  readonly clock: () => number;
  /** Host time the tick count is measured from. */
  private readonly epochNs: number;
  /** TSC value at epochNs (mod 2^64 when read). */
  private offset = 0n;
  /** `offset` as a number when readSplit may use it, else -1. */
  private offsetNumber = -1;

  constructor(options: GuestTscOptions = {}) {
    const hz = options.hz ?? TSC_HZ_DEFAULT;
    if (!Number.isSafeInteger(hz) || hz < 1_000_000 || hz > 10_000_000_000) {
      throw new RangeError(`guest TSC frequency ${hz} Hz: must be an integer from 1 MHz to 10 GHz`);
    }
    this.hz = hz;
    this.clock = options.clock ?? defaultClock;
    this.epochNs = this.clock();
    this.setOffset(BigInt.asUintN(64, options.initial ?? 0n));
  }

  /** Host time now, in the clock's timebase. */
  nowNs(): number {
    return this.clock();
  }

  /** Whole TSC ticks between the epoch and host time `ns` (0 before the epoch). */
  private ticks(ns: number): bigint {
    const elapsed = Math.floor(ns - this.epochNs);
    if (!(elapsed > 0)) return 0n;
    if (this.hz === NS_PER_S) return BigInt(elapsed);
    return (BigInt(elapsed) * BigInt(this.hz)) / NS_PER_S_N;
  }

  /** The guest TSC at host time `nowNs` (RDTSC, RDMSR 0x10). */
  read(nowNs: number = this.clock()): bigint {
    return (this.offset + this.ticks(nowNs)) & U64;
  }

  /**
   * RDTSC for an int32-pair CPU: the TSC at `nowNs` as out[0] = low and
   * out[1] = high 32 bits, without allocating a bigint while the count
   * stays below 2^53 at 1 GHz (104 days).
   */
  readSplit(out: Uint32Array | Int32Array, nowNs: number = this.clock()): void {
    if (this.offsetNumber >= 0) {
      const elapsed = Math.floor(nowNs - this.epochNs);
      const v = this.offsetNumber + (elapsed > 0 ? elapsed : 0);
      if (v <= Number.MAX_SAFE_INTEGER) {
        out[0] = v % TWO_32;
        out[1] = Math.floor(v / TWO_32);
        return;
      }
    }
    const t = this.read(nowNs);
    out[0] = Number(t & 0xffffffffn);
    out[1] = Number(t >> 32n);
  }

  /** WRMSR IA32_TSC (0x10): the TSC reads `value` now and counts on from there. */
  write(value: bigint, nowNs: number = this.clock()): void {
    this.setOffset(BigInt.asUintN(64, value) - this.ticks(nowNs));
  }

  private setOffset(offset: bigint): void {
    this.offset = offset;
    // The allocation-free path of readSplit: 1 GHz and a small non-negative offset.
    this.offsetNumber = this.hz === NS_PER_S && offset >= 0n && offset <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(offset) : -1;
  }

  /**
   * The earliest host time at which the TSC reads `value` or more; `nowNs`
   * or earlier if it already does. Wrap-around is not modelled: at 1 GHz
   * the counter wraps after 584 years.
   */
  hostNsAt(value: bigint, nowNs: number = this.clock()): number {
    const v = BigInt.asUintN(64, value);
    if (v <= this.read(nowNs)) return nowNs;
    const remaining = v - this.offset;
    // ceil(remaining * 1e9 / hz) nanoseconds after the epoch.
    const ns = this.hz === NS_PER_S ? remaining : (remaining * NS_PER_S_N + BigInt(this.hz) - 1n) / BigInt(this.hz);
    return this.epochNs + Number(ns) + 1;
  }

  saveState(nowNs: number = this.clock()): GuestTscState {
    return { hz: this.hz, tsc: this.read(nowNs).toString() };
  }

  /** Continues counting from the saved value. Throws ApicStateError (changing nothing) on a malformed or mismatched state. */
  restoreState(state: GuestTscState, nowNs: number = this.clock()): void {
    const r = new StateReader('tsc', state);
    const hz = r.int('hz', Number.MAX_SAFE_INTEGER);
    if (hz !== this.hz) r.fail('hz', `is ${hz}, this guest TSC runs at ${this.hz} Hz`);
    this.write(r.u64('tsc'), nowNs);
  }
}

// --- CPUID: what goes with a known-frequency TSC and the local APIC ---------

/** CPUID.1:EDX bit 4: time-stamp counter (SDM Vol. 2A, Table 3-11). */
export const CPUID1_EDX_TSC = 1 << 4;
/** CPUID.1:EDX bit 5: RDMSR/WRMSR (needed for IA32_TSC_DEADLINE and IA32_APIC_BASE). */
export const CPUID1_EDX_MSR = 1 << 5;
/** CPUID.1:EDX bit 9: on-chip local APIC (cleared while IA32_APIC_BASE.EN is 0). */
export const CPUID1_EDX_APIC = 1 << 9;
/** CPUID.1:ECX bit 24: the local APIC timer supports TSC-deadline mode (Table 3-10). */
export const CPUID1_ECX_TSC_DEADLINE = 1 << 24;
/** CPUID.6:EAX bit 2: APIC timer always running (ARAT), not stopped in deep C-states. */
export const CPUID6_EAX_ARAT = 1 << 2;
/** CPUID.80000007H:EDX bit 8: invariant TSC (constant rate in all P-/C-states). */
export const CPUID80000007_EDX_INVARIANT_TSC = 1 << 8;
/** CPUID leaf 0x15: TSC / core crystal clock ratio and crystal Hz. */
export const CPUID_LEAF_TSC = 0x15;
/** CPUID leaf 0x16: processor base / max / bus (reference) frequency in MHz. */
export const CPUID_LEAF_FREQ = 0x16;
/** Linux reads 0x15/0x16 only when leaf 0 reports them (boot_cpu_data.cpuid_level >= 0x16). */
export const CPUID_MIN_BASIC_LEAF = CPUID_LEAF_FREQ;

export interface TimeCpuidOptions {
  /** Guest TSC frequency in Hz (GuestTsc.hz). */
  tscHz: number;
  /** This vCPU's initial APIC ID (CPUID.1:EBX[31:24]). */
  apicId: number;
  /** IA32_APIC_BASE.EN: when false the APIC bit reads 0 (SDM Vol. 3 "Enabling or Disabling the Local APIC"). */
  apicEnabled?: boolean;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Merges the time and APIC CPUID facts into `out` = [EAX, EBX, ECX, EDX] as
 * the CPU core's own CPUID left it for (leaf, subleaf): ORs the feature bits
 * in, fills leaves 0x15/0x16 and raises leaf 0's maximum to 0x16.
 *
 * Caveat, Linux 6.1 arch/x86/kernel/tsc.c: native_calibrate_tsc() and
 * cpu_khz_from_cpuid() read 0x15/0x16 only when the vendor is GenuineIntel.
 * Under another vendor string the guest needs `tsc_early_khz=` on its
 * command line (see tscEarlyKhzArgument) or it finds no TSC frequency.
 */
export function mergeTimeCpuid(leaf: number, _subleaf: number, out: Int32Array, options: TimeCpuidOptions): void {
  const enabled = options.apicEnabled ?? true;
  switch (leaf >>> 0) {
    case 0:
      if ((out[0]! >>> 0) < CPUID_MIN_BASIC_LEAF) out[0] = CPUID_MIN_BASIC_LEAF;
      return;
    case 1:
      out[1] = (out[1]! & 0x00ffffff) | ((options.apicId & 0xff) << 24);
      out[2] = out[2]! | CPUID1_ECX_TSC_DEADLINE;
      out[3] = (out[3]! | CPUID1_EDX_TSC | CPUID1_EDX_MSR | CPUID1_EDX_APIC) & (enabled ? -1 : ~CPUID1_EDX_APIC);
      return;
    case 6:
      out[0] = out[0]! | CPUID6_EAX_ARAT;
      return;
    case CPUID_LEAF_TSC: {
      // TSC Hz = ECX * EBX / EAX (SDM Vol. 2A, CPUID leaf 15H), as a reduced fraction.
      const g = gcd(options.tscHz, CRYSTAL_HZ);
      out[0] = CRYSTAL_HZ / g;
      out[1] = options.tscHz / g;
      out[2] = CRYSTAL_HZ;
      out[3] = 0;
      return;
    }
    case CPUID_LEAF_FREQ:
      out[0] = Math.floor(options.tscHz / 1e6);
      out[1] = Math.floor(options.tscHz / 1e6);
      out[2] = Math.floor(CRYSTAL_HZ / 1e6);
      out[3] = 0;
      return;
    case 0x80000007:
      out[3] = out[3]! | CPUID80000007_EDX_INVARIANT_TSC;
      return;
  }
}

/** The `tsc_early_khz=` kernel argument for a guest TSC of `hz` (Linux 6.1 tsc.c: trusted as the TSC rate, no calibration). */
export function tscEarlyKhzArgument(hz: number): string {
  return `tsc_early_khz=${Math.floor(hz / 1000)}`;
}

export { ApicStateError };
