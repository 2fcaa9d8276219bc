/**
 * Queue-notify costs: a guest write that the VMM must act on, delivered by an
 * MMIO exit (the dispatcher) or by an ioeventfd (addMmioNotifier), from CPL0
 * in long mode (bench/kvm/notify-guest.ts).
 *
 *   node dist/bench/kvm/notify.js [writes per run = 5000] [runs = 7]
 *
 * round trip: the guest writes, the VMM's handler answers in RAM, the guest
 *   waits for the answer before the next write (µs per round trip);
 * burst: the guest writes back to back, then waits for the count of all of
 *   them (µs of guest time per write: what a vCPU pays per kick).
 */
import { EngineUnavailableError, type ExitDispatcher } from '../../src/engine/engine.js';
import { KvmEngine, type KvmEngineOptions } from '../../src/engine/kvm/index.js';
import { NOTIFY_ADDRESS, REPLY_ADDRESS, notifyGuest } from './notify-guest.js';

const writes = Number(process.argv[2] ?? 5000);
const runs = Math.max(3, Number(process.argv[3] ?? 7));

/** The ways a write can reach the VMM, each on its own engine. */
const PATHS: { name: string; path: Path; options: KvmEngineOptions }[] = [
  { name: 'exit', path: 'exit', options: {} },
  { name: 'ioeventfd, worker only', path: 'ioeventfd', options: { pollNotifiers: false } },
  { name: 'ioeventfd, worker spins 20 µs', path: 'ioeventfd', options: { pollNotifiers: false, spin: { io: 20 } } },
  { name: 'ioeventfd (default)', path: 'ioeventfd', options: {} },
];

const VALUE = 0;
const OTHER = 1;
const PORT_POWEROFF = 0x600;
const STARTUP_GRACE_MS = 300;

type Path = 'exit' | 'ioeventfd';
type Mode = 'round-trip' | 'fire';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One run; returns µs per write and the handler calls (ioeventfd) or exits (exit path) it took. */
interface Result {
  us: number;
  /** Handler calls (ioeventfd) or exits (exit path). */
  calls: number;
  /** I/O worker wake-ups from poll(). */
  wakes: number;
  /** Kicks the machine thread found itself while polling. */
  machine: number;
}

async function once(engine: KvmEngine, path: Path, mode: Mode): Promise<Result> {
  const { memory, boot } = notifyGuest(engine.memoryBacking(), { mode, count: writes, value: VALUE, other: OTHER });
  let stop = (): void => {};
  let seen = 0;
  const dispatcher: ExitDispatcher = {
    pio(_cpu, port) {
      if (port === PORT_POWEROFF) stop();
    },
    mmio(_cpu, address, data, isWrite) {
      if (isWrite && address === NOTIFY_ADDRESS && data[0] === VALUE) memory.writeU32(REPLY_ADDRESS, ++seen);
    },
  };
  const vm = await engine.createVm({ memory, cpus: 1, boot, dispatcher });
  stop = () => vm.requestStop({ reason: 'poweroff' });
  if (path === 'ioeventfd') {
    vm.addMmioNotifier!(NOTIFY_ADDRESS, 4, VALUE, () => memory.writeU32(REPLY_ADDRESS, vm.stats()['notify.writes']!));
  }
  // run() holds the vCPUs until the I/O worker polls (its start-up, ~40 ms, is
  // a one-off per VM); give it that time first so the figures are per write.
  await new Promise((r) => setTimeout(r, STARTUP_GRACE_MS));
  const t0 = process.hrtime.bigint();
  await vm.run();
  const ns = Number(process.hrtime.bigint() - t0);
  const s = vm.stats();
  await vm.close();
  if (path === 'ioeventfd' && s['notify.writes'] !== writes) throw new Error(`ioeventfd ${mode}: ${s['notify.writes']} writes caught, expected ${writes}`);
  if (path === 'exit' && seen !== writes) throw new Error(`exit ${mode}: ${seen} exits, expected ${writes}`);
  return {
    us: ns / 1e3 / writes, calls: path === 'ioeventfd' ? s['notify.calls']! : seen,
    wakes: s['notify.wakes'] ?? 0, machine: s['notify.machine_polls'] ?? 0,
  };
}

async function main(): Promise<void> {
  const engines: KvmEngine[] = [];
  try {
    for (const p of PATHS) engines.push(new KvmEngine(p.options));
  } catch (e) {
    if (e instanceof EngineUnavailableError) {
      console.log(`skipped: ${e.message}`);
      return;
    }
    throw e;
  }
  console.log(`queue notify, CPL0 long mode, ${writes} writes per run, ${runs} runs; medians (min–max)`);
  console.log('mode        path                           µs per write            handler calls  worker wakes  machine polls');
  try {
    for (const mode of ['round-trip', 'fire'] as const) {
      const results = PATHS.map(() => [] as Result[]);
      // Interleaved, so drift on the host hits every path alike.
      for (let i = 0; i < runs; i++) {
        for (const [j, p] of PATHS.entries()) results[j]!.push(await once(engines[j]!, p.path, mode));
      }
      for (const [j, p] of PATHS.entries()) {
        const r = results[j]!;
        const us = r.map((x) => x.us);
        const fmt = `${median(us).toFixed(2)} (${Math.min(...us).toFixed(2)}–${Math.max(...us).toFixed(2)})`;
        const col = (f: (x: Result) => number) => (p.path === 'exit' ? '-' : String(median(r.map(f))));
        console.log(`${mode.padEnd(11)} ${p.name.padEnd(30)} ${fmt.padEnd(23)} ${String(median(r.map((x) => x.calls))).padEnd(14)} ${col((x) => x.wakes).padEnd(13)} ${col((x) => x.machine)}`);
      }
    }
  } finally {
    for (const e of engines) e.close();
  }
}

await main();
