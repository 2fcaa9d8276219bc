import type { References } from './host.js';
import type { Row } from './results.js';

export interface SuiteContext {
  /** Smoke run: fewer, smaller repetitions; figures are produced but not meant to be quoted. */
  quick: boolean;
  /** Runs per measurement (at least 3: every figure is a median with its spread). */
  runs: number;
  refs: References;
  /** KVM is usable here, or why not. */
  kvm: true | string;
  log(line: string): void;
}

/** A group of benchmark rows; never throws for a missing tool or engine: the row says why instead. */
export type Suite = (ctx: SuiteContext) => Promise<Row[]>;
