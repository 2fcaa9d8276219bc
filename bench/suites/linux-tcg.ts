/**
 * Linux on the soft engine against QEMU TCG: the default guest image (Debian's
 * cloud kernel + busybox initramfs, src/image), 512 MiB, 1 vCPU, the same
 * kernel, initramfs and command line on both.
 *
 * Two boots per run: an empty one (`true`) for boot and whole-run times, and
 * one that runs the workloads and prints guest-uptime stamps around each.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage } from '../../src/image/build.js';
import { guestCommandParam, guestExitStatus } from '../../src/image/guest-cmdline.js';
import { DEFAULT_CMDLINE } from '../../src/vmm/config.js';
import { selectEngine } from '../../src/vmm/engines.js';
import { benchCache } from '../lib/cache.js';
import { hostBusybox } from '../lib/busybox.js';
import { hostTscKhz } from '../lib/host.js';
import { watch } from '../lib/proc.js';
import { RUN_USAGE } from '../../src/cli/run.js';
import { absent, measured, type Row, type Side } from '../lib/results.js';
import type { Suite, SuiteContext } from '../lib/suite.js';
import { qemuMicrovm, typevisor, type Command, type GuestSpec } from '../lib/vmms.js';

const GROUP = 'soft engine vs QEMU TCG (Linux 6.1, 512 MiB, 1 vCPU)';
const MEMORY = '512M';
const MiB = 2 ** 20;
/** The kernel's line when it hands over to the initramfs (init/main.c, run_init_process). */
const INIT_LINE = 'Run /init as init process';
const BOOT_TIMEOUT_MS = 300_000;

interface Sizes {
  loop: number;
  /** Bytes read (sha256sum, dd read) and written (dd write). */
  disk: number;
}

const FULL: Sizes = { loop: 200_000, disk: 64 * MiB };
const QUICK: Sizes = { loop: 2_000, disk: 4 * MiB };

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

interface Boot {
  /** Host ms from spawn to the kernel's "Run /init" line. */
  init: number;
  /** Guest uptime (s) printed on that line. */
  initUptime: number;
  /** Host ms from spawn to exit. */
  whole: number;
  stamps: Map<string, { seconds: number; extra?: string }>;
}

async function boot(c: Command, timeoutMs: number): Promise<Boot> {
  const w = watch(c.cmd, c.args, [INIT_LINE]);
  const timer = setTimeout(() => w.kill(), timeoutMs);
  try {
    const init = await w.mark(INIT_LINE, timeoutMs);
    const o = await w.exited;
    const status = guestExitStatus(o.stdout);
    if (status !== 0) throw new Error(`guest script ended with status ${status ?? 'none'} (VMM status ${o.exitCode}): ${o.stdout.trim().split('\n').slice(-3).join(' | ')}`);
    const up = /\[\s*([\d.]+)\] Run \/init as init process/.exec(o.stdout)?.[1];
    const stamps = new Map<string, { seconds: number; extra?: string }>();
    for (const m of o.stdout.matchAll(/^bench: (\w+) ([\d.]+) ([\d.]+)(?: (\S+))?\r?$/gm)) {
      stamps.set(m[1]!, { seconds: Number(m[3]) - Number(m[2]), ...(m[4] && { extra: m[4] }) });
    }
    return { init, initUptime: up ? Number(up) : NaN, whole: o.exitMs!, stamps };
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
  return `; host-native busybox sh: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)} s`;
}

export const linuxTcg: Suite = async (ctx: SuiteContext) => {
  const sizes = ctx.quick ? QUICK : FULL;
  const runs = ctx.quick ? 1 : ctx.runs;
  // The smoke run only proves the harness works: a boot that is not at /init by then is reported, not waited for.
  const bootTimeout = ctx.quick ? 30_000 : BOOT_TIMEOUT_MS;
  const mb = sizes.disk / MiB;
  const specs = [
    { id: 'boot.init', benchmark: 'boot to /init', units: 's', better: 'lower', notes: `process start to the kernel's "${INIT_LINE}" line on the console` },
    { id: 'boot.whole', benchmark: 'whole run to poweroff', units: 's', better: 'lower', notes: '/init with an empty command (`true`), then poweroff; process start to process exit' },
    { id: 'loop', benchmark: `busybox shell loop, ${sizes.loop.toLocaleString('en-US')} iterations`, units: 's', better: 'lower', notes: '`while [ $i -lt N ]; do i=$((i+1)); done` in busybox sh, timed by guest /proc/uptime' },
    { id: 'sha256', benchmark: `sha256 of ${mb} MiB read from a virtio disk`, units: 's', better: 'lower', notes: '`head -c | sha256sum` on /dev/vda after dropping the page cache; the hash is checked against the host\'s' },
    { id: 'blk.read', benchmark: 'virtio-blk sequential read (dd)', units: 'MiB/s', better: 'higher', notes: `dd bs=1M count=${mb} from /dev/vda after dropping the page cache; the image file sits in the host page cache` },
    { id: 'blk.write', benchmark: 'virtio-blk sequential write (dd)', units: 'MiB/s', better: 'higher', notes: `dd bs=1M count=${mb} conv=fsync from /dev/zero to /dev/vda` },
  ] as const;
  type Id = (typeof specs)[number]['id'];
  const rowsOf = (ours: (id: Id) => Side, ref: (id: Id) => Side, extra: (id: Id) => string): Row[] =>
    specs.map((s) => ({
      id: `linux.${s.id}`,
      group: GROUP,
      benchmark: s.benchmark,
      units: s.units,
      better: s.better,
      oursLabel: 'typevisor soft engine',
      referenceLabel: 'QEMU microvm -accel tcg',
      notes: [s.notes, extra(s.id)].filter(Boolean).join('; '),
      ours: ours(s.id),
      reference: ref(s.id),
    }));

  // Ours: the soft engine, when it exists; disk rows also need a disk option on `typevisor run`.
  let oursMissing: string | undefined;
  try {
    const sel = await selectEngine('soft');
    sel.engine.close?.();
  } catch (e) {
    oursMissing = `not available yet: ${(e as Error).message}`;
  }
  const hasDisk = /^\s+--disk\b/m.test(RUN_USAGE);
  const oursDiskMissing = hasDisk ? undefined : 'not available yet: `typevisor run` has no virtio-blk disk option (--disk)';

  let image: { kernel: string; initrd: string } | undefined;
  let imageMissing: string | undefined;
  try {
    image = await buildImage({ debCache: benchCache('debs'), log: (l) => ctx.log(`image: ${l}`) });
  } catch (e) {
    imageMissing = `no guest image: ${(e as Error).message}`;
  }
  const refMissing = imageMissing ?? ('missing' in ctx.refs.qemuSystem ? ctx.refs.qemuSystem.missing : undefined);
  if (!image || (refMissing && (oursMissing || imageMissing))) {
    const why = imageMissing ?? oursMissing ?? '';
    return rowsOf((id) => absent(id.startsWith('sha') || id.startsWith('blk') ? oursDiskMissing ?? why : why), () => absent(refMissing ?? ''), () => '');
  }

  const disk = makeDisk(sizes);
  const khz = hostTscKhz();
  // Linux on microvm under TCG fails PIT calibration unless told the TSC rate (DESIGN.md).
  const cmdline = (script: string) => [DEFAULT_CMDLINE, khz ? `tsc_early_khz=${khz}` : '', guestCommandParam(script)].filter(Boolean).join(' ');
  const qemuDisk = ['-drive', `id=d0,file=${disk.path},format=raw,if=none`, '-device', 'virtio-blk-device,drive=d0', '-no-reboot'];
  const spec = (script: string, withDisk: boolean): GuestSpec => ({
    kernel: image!.kernel,
    initrd: image!.initrd,
    cmdline: cmdline(script),
    memory: MEMORY,
    ...(withDisk && { qemuDevices: qemuDisk }),
  });

  const results: { ours: Boot[]; ref: Boot[]; oursErr?: string; refErr?: string } = { ours: [], ref: [] };
  for (let i = 0; i < runs; i++) {
    for (const who of ['ref', 'ours'] as const) {
      if (who === 'ours' && oursMissing) continue;
      if (who === 'ref' && refMissing) continue;
      if (results[`${who}Err`]) continue;
      const make = (script: string, withDisk: boolean): Command =>
        who === 'ref' ? qemuMicrovm((ctx.refs.qemuSystem as { path: string }).path, 'tcg', spec(script, withDisk)) : typevisor('soft', spec(script, false));
      try {
        ctx.log(`${who} boot ${i + 1}/${runs}`);
        const empty = await boot(make('true', false), bootTimeout);
        ctx.log(`${who} workloads ${i + 1}/${runs}`);
        const work = await boot(make(workload(sizes), who === 'ref' || !oursDiskMissing), bootTimeout);
        const sha = work.stamps.get('sha256');
        if (sha && sha.extra !== disk.sha256) throw new Error(`guest sha256 ${sha.extra} differs from the host's ${disk.sha256}`);
        results[who].push({ ...empty, stamps: work.stamps });
      } catch (e) {
        results[`${who}Err`] = `failed: ${(e as Error).message}`;
        ctx.log(`${who}: ${(e as Error).message}`);
      }
    }
  }
  rmSync(disk.path, { force: true });

  const pick = (boots: Boot[], err: string | undefined, missing: string | undefined, id: Id): Side => {
    if (missing) return absent(missing);
    if (err) return absent(err);
    const values = boots.map((b) => {
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
  const uptimes = (boots: Boot[], who: string) =>
    boots.length ? `${who} guest uptime at /init ${boots.map((b) => b.initUptime.toFixed(2)).join(', ')} s` : '';
  return rowsOf(
    (id) => pick(results.ours, results.oursErr, id.startsWith('sha') || id.startsWith('blk') ? oursMissing ?? oursDiskMissing : oursMissing, id),
    (id) => pick(results.ref, results.refErr, refMissing, id),
    (id) => {
      if (id === 'boot.init') return [uptimes(results.ref, 'QEMU'), uptimes(results.ours, 'typevisor'), khz ? `tsc_early_khz=${khz}` : ''].filter(Boolean).join('; ');
      if (id === 'loop') return nativeLoop(busybox, sizes.loop).replace(/^; /, '');
      return '';
    },
  );
};

