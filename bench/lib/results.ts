/**
 * What a benchmark run produces: rows of "ours against a reference", each side
 * either measured (every run kept, summarised by median and min–max) or
 * absent with the reason. Nothing here invents a figure: a side that was not
 * measured says why.
 */

export interface Measured {
  /** Every run's value, in `units`. */
  runs: number[];
  median: number;
  min: number;
  max: number;
}

export interface Absent {
  /** Why there is no figure, e.g. "not available yet: the soft engine is not built". */
  absent: string;
}

export type Side = Measured | Absent;

export interface Row {
  /** Stable identifier, e.g. "kvm.exit.pio". */
  id: string;
  /** Section of the table: "soft engine vs QEMU TCG", … */
  group: string;
  benchmark: string;
  units: string;
  /** Whether a bigger number is better (rates) or worse (times, bytes). */
  better: 'higher' | 'lower';
  ours: Side;
  /** What "ours" is, e.g. "typevisor kvm engine". */
  oursLabel: string;
  reference: Side;
  referenceLabel: string;
  /** What exactly is compared and how it was observed. */
  notes: string;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  /** "PVM (kvm_pvm: guest CPL0 emulated, ~N M instructions/s)", "hardware-assisted", "absent: …" */
  kvm: string;
  node: string;
  qemu: string;
  qemuUser: string;
  os: string;
}

export interface BenchResults {
  /** ISO 8601, when the run started. */
  date: string;
  /** When each suite's rows were measured (differs from `date` for rows kept from an earlier run). */
  suiteDates?: Record<string, string>;
  mode: 'full' | 'quick';
  machine: MachineInfo;
  rows: Row[];
  /** Wall-clock seconds the whole run took. */
  seconds: number;
}

export function isMeasured(s: Side): s is Measured {
  return 'runs' in s;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of no values');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A measured side from its runs; non-finite values are a bug in the benchmark, not a figure. */
export function measured(runs: readonly number[]): Measured {
  if (runs.length === 0) throw new RangeError('a measurement needs at least one run');
  for (const r of runs) if (!Number.isFinite(r)) throw new RangeError(`a run produced ${r}`);
  return { runs: [...runs], median: median(runs), min: Math.min(...runs), max: Math.max(...runs) };
}

export function absent(reason: string): Absent {
  return { absent: reason };
}

/** ours ÷ reference of the medians, when both were measured and the reference is not zero. */
export function ratio(row: Row): number | undefined {
  if (!isMeasured(row.ours) || !isMeasured(row.reference) || row.reference.median === 0) return undefined;
  return row.ours.median / row.reference.median;
}
