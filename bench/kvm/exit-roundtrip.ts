/**
 * Exit round trip: the same guest loop (guest/mini/exit-loop.S) run by a raw C
 * KVM program and by KvmEngine, from CPL0 in long mode, N exits per run.
 *
 *   node dist/bench/kvm/exit-roundtrip.js [exits per run = 20000] [runs = 7]
 *
 * Prints µs per exit: median of the runs, spread (min–max), and ours/raw.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EngineUnavailableError, type ExitDispatcher } from '../../src/engine/engine.js';
import { KvmEngine } from '../../src/engine/kvm/index.js';
import { EXIT_LOOP_MMIO, EXIT_LOOP_PIO, PORT_POWEROFF, guestBytes, longModeGuest } from '../../test/kvm/mini-guest.js';

const exits = Number(process.argv[2] ?? 20_000);
const runs = Math.max(5, Number(process.argv[3] ?? 7));
const source = fileURLToPath(new URL('../../../bench/kvm/raw-exit.c', import.meta.url));

type Mode = 'pio' | 'mmio';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function raw(binary: string, mode: Mode): number {
  const out = JSON.parse(execFileSync(binary, [mode, String(exits)], { encoding: 'utf8' })) as { seconds: number; exits: number };
  return (out.seconds / out.exits) * 1e6;
}

async function ours(engine: KvmEngine, mode: Mode): Promise<number> {
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

async function main(): Promise<void> {
  let engine: KvmEngine;
  try {
    engine = new KvmEngine();
  } catch (e) {
    if (e instanceof EngineUnavailableError) {
      console.log(`skipped: ${e.message}`);
      return;
    }
    throw e;
  }
  const dir = mkdtempSync(join(tmpdir(), 'raw-exit-'));
  try {
    const binary = join(dir, 'raw-exit');
    execFileSync('gcc', ['-O2', '-o', binary, source]);
    console.log(`exit round trip, CPL0 long mode, ${exits} exits per run, ${runs} runs (µs per exit)`);
    console.log('mode  raw C median (min–max)   KvmEngine median (min–max)   ours/raw');
    for (const mode of ['pio', 'mmio'] as const) {
      const r: number[] = [];
      const o: number[] = [];
      // Interleaved, so drift on the host hits both alike.
      for (let i = 0; i < runs; i++) {
        r.push(raw(binary, mode));
        o.push(await ours(engine, mode));
      }
      const fmt = (xs: number[]) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
      console.log(`${mode.padEnd(5)} ${fmt(r).padEnd(24)} ${fmt(o).padEnd(28)} ${(median(o) / median(r)).toFixed(2)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    engine.close();
  }
}

await main();
