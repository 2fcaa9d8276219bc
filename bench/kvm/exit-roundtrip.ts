/**
 * Exit round trip: the same guest loop (guest/mini/exit-loop.S) run by a raw C
 * KVM program and by KvmEngine, from CPL0 in long mode, N exits per run.
 *
 *   node dist/bench/kvm/exit-roundtrip.js [exits per run = 20000] [runs = 7]
 *
 * Prints µs per exit: median of the runs, spread (min–max), and ours/raw.
 * `measureExitRoundTrips` is the same measurement for bench/run.ts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineUnavailableError, type ExitDispatcher } from '../../src/engine/engine.js';
import { KvmEngine } from '../../src/engine/kvm/index.js';
import { EXIT_LOOP_MMIO, EXIT_LOOP_PIO, PORT_POWEROFF, guestBytes, longModeGuest } from '../../test/kvm/mini-guest.js';

const source = fileURLToPath(new URL('../../../bench/kvm/raw-exit.c', import.meta.url));

export type ExitMode = 'pio' | 'mmio';

/** µs per exit of each run, raw C and KvmEngine, per mode. */
export type ExitRoundTrips = Record<ExitMode, { raw: number[]; ours: number[] }>;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function raw(binary: string, mode: ExitMode, exits: number): number {
  const out = JSON.parse(execFileSync(binary, [mode, String(exits)], { encoding: 'utf8' })) as { seconds: number; exits: number };
  return (out.seconds / out.exits) * 1e6;
}

async function ours(engine: KvmEngine, mode: ExitMode, exits: number): Promise<number> {
  const { memory, boot } = longModeGuest(engine.memoryBacking(), guestBytes('exit-loop'), {
    entry: mode === 'pio' ? EXIT_LOOP_PIO : EXIT_LOOP_MMIO,
    rcx: BigInt(exits),
  });
  let stop = (): void => {};
  const dispatcher: ExitDispatcher = {
    pio(_cpu, port) {
      if (port === PORT_POWEROFF) stop();
    },
    mmio() {},
  };
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher });
  stop = () => vm.requestStop({ reason: 'poweroff' });
  const t0 = process.hrtime.bigint();
  await vm.run();
  const ns = Number(process.hrtime.bigint() - t0);
  const counted = vm.stats()[mode === 'pio' ? 'exits.io' : 'exits.mmio']!;
  await vm.close();
  if (counted < exits) throw new Error(`${mode}: ${counted} exits, expected ${exits}`);
  return ns / 1e3 / exits;
}

/**
 * Runs the raw C program and KvmEngine interleaved (so drift on the host hits
 * both alike), `runs` times per mode. Returns `{ skip }` when KVM cannot be
 * opened here.
 */
export async function measureExitRoundTrips(options: { exits: number; runs: number }): Promise<ExitRoundTrips | { skip: string }> {
  let engine: KvmEngine;
  try {
    engine = new KvmEngine();
  } catch (e) {
    if (e instanceof EngineUnavailableError) return { skip: e.message };
    throw e;
  }
  const dir = mkdtempSync(join(tmpdir(), 'raw-exit-'));
  try {
    const binary = join(dir, 'raw-exit');
    execFileSync('gcc', ['-O2', '-o', binary, source]);
    const result: ExitRoundTrips = { pio: { raw: [], ours: [] }, mmio: { raw: [], ours: [] } };
    for (const mode of ['pio', 'mmio'] as const) {
      for (let i = 0; i < options.runs; i++) {
        result[mode].raw.push(raw(binary, mode, options.exits));
        result[mode].ours.push(await ours(engine, mode, options.exits));
      }
    }
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
    engine.close();
  }
}

async function main(): Promise<void> {
  const exits = Number(process.argv[2] ?? 20_000);
  const runs = Math.max(5, Number(process.argv[3] ?? 7));
  const result = await measureExitRoundTrips({ exits, runs });
  if ('skip' in result) {
    console.log(`skipped: ${result.skip}`);
    return;
  }
  console.log(`exit round trip, CPL0 long mode, ${exits} exits per run, ${runs} runs (µs per exit)`);
  console.log('mode  raw C median (min–max)   KvmEngine median (min–max)   ours/raw');
  for (const mode of ['pio', 'mmio'] as const) {
    const { raw: r, ours: o } = result[mode];
    const fmt = (xs: number[]) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
    console.log(`${mode.padEnd(5)} ${fmt(r).padEnd(24)} ${fmt(o).padEnd(28)} ${(median(o) / median(r)).toFixed(2)}`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
