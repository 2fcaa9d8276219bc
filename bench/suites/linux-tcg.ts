/**
 * Linux on the soft engine against QEMU TCG: the default guest image (Debian's
 * cloud kernel + busybox initramfs, src/image), 512 MiB, 1 vCPU, the same
 * kernel, initramfs, disk and command line on both (but for the TSC rate, see
 * `cmdline`).
 *
 * Two boots per run: an empty one (`true`) for boot and whole-run times, and
 * one that runs the workloads and prints guest-uptime stamps around each.
 * Then idle guests at their shell prompt, as many as run at once.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { buildImage } from '../../src/image/build.js';
import { guestCommandParam, guestExitStatus } from '../../src/image/guest-cmdline.js';
import { DEFAULT_CMDLINE } from '../../src/vmm/config.js';
import { benchCache } from '../lib/cache.js';
import { hostBusybox } from '../lib/busybox.js';
import { hostTscKhz } from '../lib/host.js';
import { idleVms, type IdleVms } from '../lib/idle-vms.js';
import { watch } from '../lib/proc.js';
import { absent, measured, type Row, type Side } from '../lib/results.js';
import type { Suite, SuiteContext } from '../lib/suite.js';
import { qemuMicrovm, typevisor, type Command, type GuestSpec } from '../lib/vmms.js';

const GROUP = 'soft engine vs QEMU TCG (Linux 6.1, 512 MiB, 1 vCPU)';
const MEMORY = '512M';
const MiB = 2 ** 20;
const MEMORY_BYTES = 512 * MiB;
/** The kernel's line when it hands over to the initramfs (init/main.c, run_init_process). */
const INIT_LINE = 'Run /init as init process';
/**
 * What the default image's /init shows once its interactive shell waits for
 * input (no tv.cmd): busybox ash's root prompt in / after its banner. On a
 * serial console nobody types into, the shell then waits and the guest idles.
 */
const PROMPT = "built-in commands.\r\n\r\n/ # ";

/** Longest boot (spawn to exit, workloads included) of each VMM; the soft engine interprets every guest instruction. */
const TIMEOUT_MS = { ref: 5 * 60_000, ours: 30 * 60_000 } as const;
/** The smoke run only proves the harness works: a boot not done by then is reported as not reached. */
const QUICK_TIMEOUT_MS = 20_000;

/** Idle VMs at once: a soft-engine Linux boot takes about a CPU-minute, so a few, with a bound on the whole count. */
const IDLE = {
  full: { cap: 8, totalMs: { ref: 5 * 60_000, ours: 15 * 60_000 }, vmTimeoutMs: { ref: 2 * 60_000, ours: 10 * 60_000 }, cpuWindowMs: 3_000 },
  quick: { cap: 1, totalMs: { ref: QUICK_TIMEOUT_MS, ours: QUICK_TIMEOUT_MS }, vmTimeoutMs: { ref: QUICK_TIMEOUT_MS, ours: QUICK_TIMEOUT_MS }, cpuWindowMs: 500 },
};
/** Runs of the idle-VM count (the minimum: each boots up to `cap` guests). */
const IDLE_RUNS = 3;

interface Sizes {
  loop: number;
  /** Bytes read (sha256sum, dd read) and written (dd write). */
  disk: number;
  /** Most idle guests started in one count. */
  idleCap: number;
}

const FULL: Sizes = { loop: 200_000, disk: 64 * MiB, idleCap: IDLE.full.cap };
const QUICK: Sizes = { loop: 2_000, disk: 4 * MiB, idleCap: IDLE.quick.cap };

/** Environment knobs that shrink (or grow) the workloads, for a trial of the whole suite; see bench/README.md. */
export const SIZE_KNOBS = { loop: 'BENCH_LINUX_LOOP', diskMiB: 'BENCH_LINUX_DISK_MIB', idleCap: 'BENCH_LINUX_IDLE_CAP' } as const;

/** The sizes of this run: the mode's, with each knob that is set overriding its size. Throws a RangeError naming a bad knob. */
export function linuxSizes(quick: boolean, env: NodeJS.ProcessEnv = process.env): Sizes {
  const base = quick ? QUICK : FULL;
  const knob = (name: string, max: number): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > max) throw new RangeError(`${name}=${text} is not a whole number from 1 to ${max}`);
    return Number(text);
  };
  const loop = knob(SIZE_KNOBS.loop, 100_000_000);
  // The disk holds data and scratch of this size each, within the guest's RAM-backed page cache reach.
  const diskMiB = knob(SIZE_KNOBS.diskMiB, 1024);
  const cap = knob(SIZE_KNOBS.idleCap, 64);
  return { loop: loop ?? base.loop, disk: diskMiB !== undefined ? diskMiB * MiB : base.disk, idleCap: cap ?? base.idleCap };
}

/**
 * The workload script, run by /init through tv.cmd. The disk holds `disk`
 * bytes of data followed by `disk` bytes of scratch space the write test
 * overwrites. The page cache is dropped before each read so the device is
 * read, not memory. Stamps are /proc/uptime (10 ms resolution: the
 * workloads take seconds).
 */
function workload(s: Sizes): string {
  const mb = s.disk / MiB;
  return [
    'up() { cut -d" " -f1 /proc/uptime; }',
    `a=$(up); i=0; while [ $i -lt ${s.loop} ]; do i=$((i+1)); done; echo "bench: loop $a $(up)"`,
    'echo 3 > /proc/sys/vm/drop_caches',
    `a=$(up); h=$(head -c ${s.disk} /dev/vda | sha256sum | cut -d" " -f1); echo "bench: sha256 $a $(up) $h"`,
    'echo 3 > /proc/sys/vm/drop_caches',
    `a=$(up); dd if=/dev/vda of=/dev/null bs=1M count=${mb} 2>/dev/null; echo "bench: read $a $(up)"`,
    `a=$(up); dd if=/dev/zero of=/dev/vda bs=1M seek=${mb} count=${mb} conv=fsync 2>/dev/null; echo "bench: write $a $(up)"`,
  ].join('\n');
}

/** Deterministic data disk: `disk` bytes of a xorshift stream, then `disk` zero bytes of scratch. Returns its path and the data's SHA-256. */
function makeDisk(s: Sizes): { path: string; sha256: string } {
  const path = join(benchCache('linux'), `disk-${s.disk}.img`);
  const data = Buffer.alloc(s.disk);
  let x = 0x2545f491;
  for (let i = 0; i < data.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data.writeUInt32LE(x >>> 0, i);
  }
  const sha256 = createHash('sha256').update(data).digest('hex');
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, data);
    writeSync(fd, Buffer.alloc(s.disk));
  } finally {
    closeSync(fd);
  }
  return { path, sha256 };
}

/** A boot that did not finish within its bound: in the quick run, "not reached" rather than a failure. */
class TimedOut extends Error {
  override name = 'TimedOut';
}

interface Boot {
  /** Host ms from spawn to the kernel's "Run /init" line. */
  init: number;
  /** Guest uptime (s) printed on that line. */
  initUptime: number;
  /** Host ms from spawn to exit. */
  whole: number;
  /** The kernel's "Command line:" as it printed it. */
  cmdline: string;
  stamps: Map<string, { seconds: number; extra?: string }>;
}

async function boot(c: Command, timeoutMs: number): Promise<Boot> {
  const w = watch(c.cmd, c.args, [INIT_LINE]);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    w.kill();
  }, timeoutMs);
  try {
    let init: number;
    try {
      init = await w.mark(INIT_LINE, timeoutMs);
    } catch (e) {
      if (w.child.exitCode === null && w.child.signalCode === null) throw new TimedOut(`no "${INIT_LINE}" within ${timeoutMs / 1000} s`);
      if (timedOut) throw new TimedOut(`no "${INIT_LINE}" within ${timeoutMs / 1000} s`);
      throw e;
    }
    const o = await w.exited;
    if (timedOut) throw new TimedOut(`not powered off within ${timeoutMs / 1000} s: ${o.stdout.trim().split('\n').slice(-2).join(' | ')}`);
    const status = guestExitStatus(o.stdout);
    if (status !== 0) throw new Error(`guest script ended with status ${status ?? 'none'} (VMM status ${o.exitCode}): ${o.stdout.trim().split('\n').slice(-3).join(' | ')}${o.stderr.trim() ? ` (stderr: ${o.stderr.trim().split('\n').slice(-2).join(' | ')})` : ''}`);
    const up = /\[\s*([\d.]+)\] Run \/init as init process/.exec(o.stdout)?.[1];
    const stamps = new Map<string, { seconds: number; extra?: string }>();
    for (const m of o.stdout.matchAll(/^bench: (\w+) ([\d.]+) ([\d.]+)(?: (\S+))?\r?$/gm)) {
      stamps.set(m[1]!, { seconds: Number(m[3]) - Number(m[2]), ...(m[4] && { extra: m[4] }) });
    }
    const cmdline = /Command line: (.*?)\r?$/m.exec(o.stdout)?.[1] ?? '';
    return { init, initUptime: up ? Number(up) : NaN, whole: o.exitMs!, cmdline, stamps };
  } finally {
    clearTimeout(timer);
    w.kill();
  }
}

/** Host-native busybox running the same shell loop, for the notes. */
function nativeLoop(busybox: string | undefined, loop: number): string {
  if (!busybox) return '';
  const t0 = process.hrtime.bigint();
  const r = spawnSync(busybox, ['sh', '-c', `i=0; while [ $i -lt ${loop} ]; do i=$((i+1)); done`]);
  if (r.status !== 0) return '';
  return `host-native busybox sh: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)} s`;
}

type Who = 'ref' | 'ours';

function duration(ms: number): string {
  return ms >= 60_000 ? `${ms / 60_000} min` : `${ms / 1000} s`;
}

export const linuxTcg: Suite = async (ctx: SuiteContext) => {
  const runs = ctx.quick ? 1 : ctx.runs;
  const idle = ctx.quick ? IDLE.quick : IDLE.full;
  const idleRuns = ctx.quick ? 1 : IDLE_RUNS;
  let sizes: Sizes;
  let sizesBad: string | undefined;
  try {
    sizes = linuxSizes(ctx.quick);
  } catch (e) {
    sizes = ctx.quick ? QUICK : FULL;
    sizesBad = `not run: ${(e as Error).message}`;
  }
  const mb = sizes.disk / MiB;
  const inFlight = Math.min(os.cpus().length, sizes.idleCap);
  const specs = [
    { id: 'boot.init', benchmark: 'boot to /init', units: 's', better: 'lower', notes: `process start to the kernel's "${INIT_LINE}" line on the console` },
    { id: 'boot.whole', benchmark: 'whole run to poweroff', units: 's', better: 'lower', notes: '/init with an empty command (`true`), then poweroff; process start to process exit' },
    { id: 'loop', benchmark: `busybox shell loop, ${sizes.loop.toLocaleString('en-US')} iterations`, units: 's', better: 'lower', notes: '`while [ $i -lt N ]; do i=$((i+1)); done` in busybox sh, timed by guest /proc/uptime' },
    { id: 'sha256', benchmark: `sha256 of ${mb} MiB read from a virtio disk`, units: 's', better: 'lower', notes: '`head -c | sha256sum` on /dev/vda after dropping the page cache; the hash is checked against the host\'s' },
    { id: 'blk.read', benchmark: 'virtio-blk sequential read (dd)', units: 'MiB/s', better: 'higher', notes: `dd bs=1M count=${mb} from /dev/vda after dropping the page cache; the image file sits in the host page cache` },
    { id: 'blk.write', benchmark: 'virtio-blk sequential write (dd)', units: 'MiB/s', better: 'higher', notes: `dd bs=1M count=${mb} conv=fsync from /dev/zero to /dev/vda` },
    { id: 'vms.concurrent', benchmark: 'Linux guests idle at their shell prompt at once', units: 'VMs', better: 'higher',
      notes: `booted ${inFlight} at a time${inFlight === os.cpus().length ? ' (one per host core)' : ''} without tv.cmd, each counted once its console shows the shell prompt, ` +
        `up to ${sizes.idleCap} within ${duration(idle.totalMs.ref)} (QEMU) and ${duration(idle.totalMs.ours)} (typevisor) per count, ${idleRuns} count${idleRuns > 1 ? 's' : ''}: ` +
        'a soft-engine boot takes about a CPU-minute here, so the cap is small; idle guests then wait in hlt' },
    { id: 'vms.rate', benchmark: 'Linux guests booted to their shell prompt per minute', units: 'VMs/min', better: 'higher',
      notes: `the same counts: guests that reached their prompt ÷ time from the first start to the last prompt, ${inFlight} booting at a time` },
    { id: 'vms.rss', benchmark: 'resident memory per idle Linux guest', units: 'MiB', better: 'lower', notes: 'mean RSS of the VMM processes counted in the row above, guest RAM included' },
  ] as const;
  type Id = (typeof specs)[number]['id'];
  const rowsOf = (side: (who: Who, id: Id) => Side, extra: (id: Id) => string): Row[] =>
    specs.map((s) => ({
      id: `linux.${s.id}`,
      group: GROUP,
      benchmark: s.benchmark,
      units: s.units,
      better: s.better,
      oursLabel: 'typevisor soft engine',
      referenceLabel: 'QEMU microvm -accel tcg',
      notes: [s.notes, extra(s.id)].filter(Boolean).join('; '),
      ours: side('ours', s.id),
      reference: side('ref', s.id),
    }));

  let image: { kernel: string; initrd: string } | undefined;
  let imageMissing: string | undefined;
  try {
    image = await buildImage({ debCache: benchCache('debs'), log: (l) => ctx.log(`image: ${l}`) });
  } catch (e) {
    imageMissing = `no guest image: ${(e as Error).message}`;
  }
  const missing: Record<Who, string | undefined> = {
    ref: sizesBad ?? imageMissing ?? ('missing' in ctx.refs.qemuSystem ? ctx.refs.qemuSystem.missing : undefined),
    ours: sizesBad ?? imageMissing,
  };
  if (!image || sizesBad) return rowsOf((who) => absent(missing[who] ?? ''), () => '');

  const disk = makeDisk(sizes);
  const khz = hostTscKhz();
  /**
   * QEMU gets the host's TSC rate: Linux on microvm under TCG fails PIT
   * calibration without it (DESIGN.md). Ours gets none: the soft engine adds
   * its own guest TSC rate (Engine.kernelArgs), and a host value given here
   * would win over it and skew every guest clock.
   */
  const cmdline = (who: Who, script?: string) =>
    [DEFAULT_CMDLINE, who === 'ref' && khz ? `tsc_early_khz=${khz}` : '', script === undefined ? '' : guestCommandParam(script)].filter(Boolean).join(' ');
  const spec = (who: Who, script?: string, disks: string[] = []): GuestSpec => ({
    kernel: image!.kernel,
    initrd: image!.initrd,
    cmdline: cmdline(who, script),
    memory: MEMORY,
    disks,
  });
  const command = (who: Who, g: GuestSpec): Command =>
    who === 'ref' ? qemuMicrovm((ctx.refs.qemuSystem as { path: string }).path, 'tcg', g) : typevisor('soft', g);
  const timeout = (who: Who) => (ctx.quick ? QUICK_TIMEOUT_MS : TIMEOUT_MS[who]);
  const failure = (e: unknown): string =>
    e instanceof TimedOut && ctx.quick ? `not reached: ${e.message} (the --quick bound)` : `failed: ${(e as Error).message}`;

  const results: Record<Who, Boot[]> = { ref: [], ours: [] };
  const errors: Partial<Record<Who, string>> = {};
  for (let i = 0; i < runs; i++) {
    // Interleaved, so drift on the host hits both VMMs alike.
    for (const who of ['ref', 'ours'] as const) {
      if (missing[who] || errors[who]) continue;
      try {
        ctx.log(`${who} boot ${i + 1}/${runs}`);
        const empty = await boot(command(who, spec(who, 'true')), timeout(who));
        ctx.log(`${who} workloads ${i + 1}/${runs}`);
        const work = await boot(command(who, spec(who, workload(sizes), [disk.path])), timeout(who));
        const sha = work.stamps.get('sha256');
        if (sha && sha.extra !== disk.sha256) throw new Error(`guest sha256 ${sha.extra} differs from the host's ${disk.sha256}`);
        results[who].push({ ...empty, stamps: work.stamps });
      } catch (e) {
        errors[who] = failure(e);
        ctx.log(`${who}: ${(e as Error).message}`);
      }
    }
  }
  rmSync(disk.path, { force: true });

  const idleResults: Record<Who, IdleVms[]> = { ref: [], ours: [] };
  const idleErrors: Partial<Record<Who, string>> = {};
  // A quick run whose soft-engine boot did not reach /init in its bound would not reach a prompt in the same bound either.
  if (ctx.quick && errors.ours?.startsWith('not reached')) idleErrors.ours = `not reached: no boot to /init within the --quick bound of ${duration(QUICK_TIMEOUT_MS)}, so no idle guest was started`;
  for (let i = 0; i < idleRuns; i++) {
    for (const who of ['ref', 'ours'] as const) {
      if (missing[who] || idleErrors[who]) continue;
      ctx.log(`${who} idle guests at once ${i + 1}/${idleRuns} (cap ${sizes.idleCap})`);
      const r = await idleVms({
        start: () => {
          const c = command(who, spec(who));
          return watch(c.cmd, c.args, [PROMPT]);
        },
        marker: PROMPT,
        cap: sizes.idleCap,
        inFlight,
        vmTimeoutMs: idle.vmTimeoutMs[who],
        totalMs: idle.totalMs[who],
        guestBytes: MEMORY_BYTES,
        cpuWindowMs: idle.cpuWindowMs,
      });
      ctx.log(`${who}: ${r.alive} at once, stopped at: ${r.stopped}`);
      if (r.alive === 0) {
        idleErrors[who] = ctx.quick || /time bound|not up within/.test(r.stopped) ? `not reached: no shell prompt (${r.stopped})` : `failed: ${r.stopped}`;
        continue;
      }
      idleResults[who].push(r);
    }
  }

  const pick = (who: Who, id: Id): Side => {
    const why = missing[who] ?? (id.startsWith('vms.') ? idleErrors[who] : errors[who]);
    if (why) return absent(why);
    if (id === 'vms.concurrent') return measured(idleResults[who].map((r) => r.alive));
    if (id === 'vms.rss') return measured(idleResults[who].map((r) => r.rssPerVm / MiB));
    if (id === 'vms.rate') return measured(idleResults[who].map((r) => r.upMs.length / (Math.max(1, r.spanMs) / 60_000)));
    const values = results[who].map((b) => {
      switch (id) {
        case 'boot.init': return b.init / 1000;
        case 'boot.whole': return b.whole / 1000;
        case 'loop': return b.stamps.get('loop')?.seconds ?? NaN;
        case 'sha256': return b.stamps.get('sha256')?.seconds ?? NaN;
        // 10 ms stamps: a transfer that rounds to 0 counts as one tick.
        case 'blk.read': return sizes.disk / MiB / Math.max(0.01, b.stamps.get('read')?.seconds ?? NaN);
        case 'blk.write': return sizes.disk / MiB / Math.max(0.01, b.stamps.get('write')?.seconds ?? NaN);
      }
    });
    return values.some((v) => !Number.isFinite(v)) ? absent(`failed: the guest printed no ${id} stamp`) : measured(values);
  };
  const bb = hostBusybox(ctx);
  const busybox = 'path' in bb ? bb.path : undefined;
  const label: Record<Who, string> = { ref: 'QEMU', ours: 'typevisor' };
  const uptimes = (who: Who) =>
    results[who].length ? `${label[who]} guest uptime at /init ${results[who].map((b) => b.initUptime.toFixed(2)).join(', ')} s` : '';
  /** The TSC rate the kernel was told, as its "Command line:" shows it. */
  const tscSeen = (who: Who) => {
    const b = results[who][0];
    if (!b) return '';
    const seen = /(?:^| )tsc_early_khz=(\d+)/.exec(b.cmdline)?.[1];
    const from = who === 'ref' ? "the host's, given by the harness" : 'added by the soft engine for its guest TSC';
    return `${label[who]} kernel saw ${seen ? `tsc_early_khz=${seen} (${from})` : 'no tsc_early_khz'}`;
  };
  const idleNotes = (who: Who) => {
    const rs = idleResults[who];
    if (!rs.length) return '';
    const stops = [...new Set(rs.map((r) => r.stopped))].join(' / ');
    const ups = rs.flatMap((r) => r.upMs).map((ms) => (ms / 1000).toFixed(1));
    const cpu = rs.map((r) => r.cpuPerVm).filter(Number.isFinite);
    return `${label[who]}: stopped at ${stops}; spawn to prompt ${ups.join(', ')} s` +
      (cpu.length ? `; CPU per idle guest ${(Math.max(...cpu) * 100).toFixed(1)} % of a core at most` : '');
  };
  return rowsOf(pick, (id) => {
    if (id === 'boot.init') return [uptimes('ref'), uptimes('ours'), tscSeen('ref'), tscSeen('ours')].filter(Boolean).join('; ');
    if (id === 'loop') return nativeLoop(busybox, sizes.loop);
    if (id === 'vms.concurrent') return [idleNotes('ref'), idleNotes('ours')].filter(Boolean).join('; ');
    return '';
  });
};
