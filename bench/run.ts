/**
 * `npm run bench`: typevisor against its references on this machine, in one
 * run, written to bench/results/ as JSON, Markdown and SVG.
 *
 *   node dist/bench/run.js [--quick] [--out DIR] [--only kvm,vmm,linux,process] [--runs N]
 *
 * With --only, the other suites' rows already in DIR/results.json are kept.
 * --runs sets the runs per measurement (at least 3; default 5, 3 with --quick).
 *
 * --quick is the smoke run CI does (well under 2 minutes): every suite runs
 * with small sizes and the output is written to a temporary directory unless
 * --out says otherwise; its figures prove the harness works, not how fast
 * anything is.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EngineUnavailableError } from '../src/engine/engine.js';
import { KvmEngine } from '../src/engine/kvm/index.js';
import { ensureQemu, machineInfo } from './lib/host.js';
import { markdown, writeResults } from './lib/report.js';
import type { BenchResults, Row } from './lib/results.js';
import type { Suite, SuiteContext } from './lib/suite.js';
import { kvmExits } from './suites/kvm-exits.js';
import { linuxTcg } from './suites/linux-tcg.js';
import { processMode } from './suites/process-mode.js';
import { vmmCosts } from './suites/vmm-costs.js';
import { snapshotTypevisor } from './lib/vmms.js';

/** Suites in table order. */
export const SUITES: Record<string, Suite> = { linux: linuxTcg, process: processMode, kvm: kvmExits, vmm: vmmCosts };

/** Row id prefix of each suite's rows. */
const ROW_PREFIX: Record<string, string> = { linux: 'linux.', process: 'process.', kvm: 'kvm.', vmm: 'vmm.' };

function readPrevious(dir: string): BenchResults | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults;
  } catch {
    return undefined;
  }
}

/** bench/results/ of this checkout (this file runs from dist/bench/). */
export const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

export interface RunOptions {
  quick: boolean;
  out: string;
  only?: string[];
  /** Runs per measurement; at least MIN_RUNS (default 5, 3 with quick). */
  runs?: number;
  log?: (line: string) => void;
}

/** Every figure is a median with its spread: fewer runs than this say nothing about either. */
export const MIN_RUNS = 3;

function kvmUsable(): true | string {
  try {
    new KvmEngine().close();
    return true;
  } catch (e) {
    if (e instanceof EngineUnavailableError) return e.message;
    throw e;
  }
}

export async function runBench(options: RunOptions): Promise<{ results: BenchResults; files: ReturnType<typeof writeResults> }> {
  const log = options.log ?? ((line: string) => process.stderr.write(`bench: ${line}\n`));
  const started = Date.now();
  const refs = ensureQemu(log);
  const machine = await machineInfo(refs);
  if (options.runs !== undefined && !(Number.isInteger(options.runs) && options.runs >= MIN_RUNS)) throw new RangeError(`runs must be a whole number of at least ${MIN_RUNS}, got ${options.runs}`);
  const ctx: SuiteContext = { quick: options.quick, runs: options.runs ?? (options.quick ? 3 : 5), refs, kvm: kvmUsable(), log };
  const rows: Row[] = [];
  // Node reads every certificate in NODE_EXTRA_CA_CERTS when it starts (40 ms
  // of CPU with a distribution's whole bundle). No VM needs it, and QEMU pays
  // nothing of the kind, so the VMs the benchmarks start run without it.
  const caCerts = process.env.NODE_EXTRA_CA_CERTS;
  if (caCerts !== undefined) {
    delete process.env.NODE_EXTRA_CA_CERTS;
    log(`NODE_EXTRA_CA_CERTS (${caCerts}) is unset for the VMs started here`);
  }
  const dropSnapshot = snapshotTypevisor();
  try {
    for (const [name, suite] of Object.entries(SUITES)) {
      if (options.only && !options.only.includes(name)) continue;
      log(`suite ${name}`);
      rows.push(...(await suite(ctx)));
    }
  } finally {
    dropSnapshot();
    if (caCerts !== undefined) process.env.NODE_EXTRA_CA_CERTS = caCerts;
  }
  const date = new Date(started).toISOString();
  const suiteDates: Record<string, string> = {};
  for (const name of Object.keys(SUITES)) if (!options.only || options.only.includes(name)) suiteDates[name] = date;
  // Re-running some suites into an existing results directory keeps the other suites' rows (and their dates).
  const previous = options.only ? readPrevious(options.out) : undefined;
  if (previous) {
    for (const [name, prefix] of Object.entries(ROW_PREFIX)) {
      if (options.only!.includes(name)) continue;
      const kept = previous.rows.filter((r) => r.id.startsWith(prefix));
      if (kept.length === 0) continue;
      rows.push(...kept);
      suiteDates[name] = previous.suiteDates?.[name] ?? previous.date;
    }
    const order = Object.values(ROW_PREFIX);
    rows.sort((a, b) => order.findIndex((p) => a.id.startsWith(p)) - order.findIndex((p) => b.id.startsWith(p)));
  }
  const results: BenchResults = {
    date,
    suiteDates,
    mode: options.quick ? 'quick' : 'full',
    machine,
    rows,
    seconds: (Date.now() - started) / 1000,
  };
  return { results, files: writeResults(options.out, results) };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, out: { type: 'string' }, only: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/run.js [--quick] [--out DIR] [--only kvm,vmm,linux,process] [--runs N]\n');
    return 0;
  }
  const only = values.only?.split(',').map((s) => s.trim());
  const unknown = only?.filter((s) => !(s in SUITES)) ?? [];
  if (unknown.length) {
    process.stderr.write(`bench: unknown suite ${unknown.join(', ')} (choose from ${Object.keys(SUITES).join(', ')})\n`);
    return 2;
  }
  let runs: number | undefined;
  if (values.runs !== undefined) {
    if (!/^\d+$/.test(values.runs) || Number(values.runs) < MIN_RUNS) {
      process.stderr.write(`bench: --runs ${values.runs}: a whole number of at least ${MIN_RUNS}\n`);
      return 2;
    }
    runs = Number(values.runs);
  }
  const out = values.out ?? (values.quick ? mkdtempSync(join(tmpdir(), 'typevisor-bench-quick-')) : RESULTS_DIR);
  const { results, files } = await runBench({ quick: values.quick, out, ...(only && { only }), ...(runs !== undefined && { runs }) });
  process.stdout.write(markdown(results));
  process.stdout.write(`\nwritten: ${files.json}, ${files.markdown}, ${files.charts.length} charts in ${join(out, 'charts')}\n`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = await main();
