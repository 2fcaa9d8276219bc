/**
 * VMM costs on KVM, typevisor against QEMU booting the same test guest
 * (bench/guests/bench-guest.S): start-up to the guest's first instruction,
 * the whole life of a VM, memory the VMM keeps besides guest RAM, VMs started
 * per second and VMs alive at once.
 */
import os from 'node:os';
import { BENCH_GUEST_MODES, MARK_FIRST, MARK_TOUCHED, TOUCH_BYTES, benchGuestToolchainMissing, buildBenchGuests, type BenchGuests } from '../guests/build.js';
import { idleVms } from '../lib/idle-vms.js';
import { memoryUse, watch, type Watch } from '../lib/proc.js';
import { absent, measured, type Row, type Side } from '../lib/results.js';
import type { Suite, SuiteContext } from '../lib/suite.js';
import { QEMU_DEBUG_EXIT_STATUS, qemuMicrovm, typevisor, type Command } from '../lib/vmms.js';

const GROUP = 'VMM costs (KVM, test guest)';
const MEMORY = '512M';
const MEMORY_BYTES = 512 * 2 ** 20;
const VM_TIMEOUT_MS = 30_000;
/** Bound on one count of idle VMs; at ~0.3 s per start, the cap comes long before it. */
const CONCURRENT_TOTAL_MS = 5 * 60_000;

interface Vmm {
  label: string;
  command(kernel: string): Command;
  /** Exit status when the guest powers itself off. */
  okStatus: number;
}

function ours(): Vmm {
  return { label: 'typevisor (kvm engine)', command: (kernel) => typevisor('kvm', { kernel, memory: MEMORY }), okStatus: 0 };
}

function qemu(path: string): Vmm {
  return { label: 'QEMU microvm -accel kvm', command: (kernel) => qemuMicrovm(path, 'kvm', { kernel, memory: MEMORY }), okStatus: QEMU_DEBUG_EXIT_STATUS };
}

function start(c: Command, markers: string[]): Watch {
  return watch(c.cmd, c.args, markers);
}

/** One VM whose guest powers off at once: ms to its first byte and to process exit. */
async function lifeOnce(vmm: Vmm, guests: BenchGuests): Promise<{ first: number; exit: number }> {
  const w = start(vmm.command(guests.exit), [MARK_FIRST]);
  const timer = setTimeout(() => w.kill(), VM_TIMEOUT_MS);
  try {
    const first = await w.mark(MARK_FIRST, VM_TIMEOUT_MS);
    const o = await w.exited;
    if (o.exitCode !== vmm.okStatus) throw new Error(`${vmm.label}: exit status ${o.exitCode}, expected ${vmm.okStatus}: ${o.stderr.trim()}`);
    return { first, exit: o.exitMs! };
  } finally {
    clearTimeout(timer);
    w.kill();
  }
}

/** RSS split of a VM whose guest has written TOUCH_BYTES and idles. */
async function memoryOnce(vmm: Vmm, guests: BenchGuests): Promise<{ overhead: number; guest: number; rss: number }> {
  const w = start(vmm.command(guests.touch), [MARK_FIRST, MARK_TOUCHED]);
  try {
    await w.mark(MARK_TOUCHED, VM_TIMEOUT_MS);
    // Let start-up garbage settle the way it would in a long-lived VM.
    await new Promise((r) => setTimeout(r, 500));
    const m = memoryUse(w.child.pid!, MEMORY_BYTES);
    if (m.guestRss < TOUCH_BYTES) {
      throw new Error(`${vmm.label}: found ${(m.guestRss / 2 ** 20).toFixed(1)} MiB of guest RAM resident after the guest wrote ${TOUCH_BYTES / 2 ** 20} MiB: guest RAM mapping not recognised in smaps`);
    }
    return { overhead: m.overhead, guest: m.guestRss, rss: m.rss };
  } finally {
    w.kill();
    await w.exited.catch(() => undefined);
  }
}

/** `n` power-off VMs, `parallel` in flight at a time: VMs completed per second. */
async function startRate(vmm: Vmm, guests: BenchGuests, n: number, parallel: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  let next = 0;
  const lane = async () => {
    while (next < n) {
      next++;
      await lifeOnce(vmm, guests);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function sides<T>(ctx: SuiteContext, vmms: (Vmm | string)[], once: (vmm: Vmm) => Promise<T>, runs = ctx.runs): Promise<(T[] | string)[]> {
  const out: (T[] | string)[] = vmms.map((v) => (typeof v === 'string' ? v : []));
  // Interleaved, so drift on the host hits both VMMs alike.
  for (let i = 0; i < runs; i++) {
    for (const [k, v] of vmms.entries()) {
      const acc = out[k]!;
      if (typeof v === 'string' || typeof acc === 'string') continue;
      try {
        acc.push(await once(v));
      } catch (e) {
        out[k] = `failed: ${(e as Error).message}`;
        ctx.log(`${v.label}: ${(e as Error).message}`);
      }
    }
  }
  return out;
}

function side<T>(r: T[] | string, f: (t: T) => number): Side {
  return typeof r === 'string' ? absent(r) : measured(r.map(f));
}

export const vmmCosts: Suite = async (ctx) => {
  const rows: Row[] = [];
  const ids = ['start.first', 'start.life', 'mem.overhead', 'vms.rate', 'vms.concurrent', 'vms.rss'] as const;
  const meta: Record<(typeof ids)[number], Omit<Row, 'ours' | 'reference' | 'oursLabel' | 'referenceLabel' | 'group' | 'id'>> = {
    'start.first': {
      benchmark: 'process start to first guest instruction',
      units: 'ms',
      better: 'lower',
      notes:
        "spawn() to the arrival on the VMM's stdout pipe of the byte the guest's first instruction writes to COM1; same ELF, " +
        `${MEMORY} RAM, 1 vCPU. typevisor enters it at startup_64 (64-bit boot protocol); QEMU through its PVH note, via the microvm firmware (qboot)`,
    },
    'start.life': {
      benchmark: 'whole VM life: start, guest powers off, process exit',
      units: 'ms',
      better: 'lower',
      notes: 'spawn() to exit of the VMM process; the guest powers off right after its first byte (ACPI sleep register for typevisor, isa-debug-exit for QEMU)',
    },
    'mem.overhead': {
      benchmark: 'VMM memory overhead (RSS minus resident guest RAM)',
      units: 'MiB',
      better: 'lower',
      notes: `after the guest wrote one word per page of ${TOUCH_BYTES / 2 ** 20} MiB and idles (hlt); from /proc/PID/smaps: total Rss minus the Rss of the ${MEMORY} guest RAM mapping`,
    },
    'vms.rate': {
      benchmark: 'VMs started per second',
      units: 'VMs/s',
      better: 'higher',
      notes: `${ctx.quick ? 4 : 40} VMs, ${os.cpus().length} at a time (one per host core), each from spawn() to its guest powering off and the process exiting`,
    },
    'vms.concurrent': {
      benchmark: 'VMs running at once (idle test guests)',
      units: 'VMs',
      better: 'higher',
      notes: '',
    },
    'vms.rss': {
      benchmark: 'resident memory per idle VM',
      units: 'MiB',
      better: 'lower',
      notes: 'mean RSS of the VMM processes counted in the row above, guest RAM included (the idle guest touches only its first pages)',
    },
  };
  const row = (id: (typeof ids)[number], oursSide: Side, refSide: Side, extraNotes = ''): Row => ({
    id: `vmm.${id}`,
    group: GROUP,
    ...meta[id],
    notes: [meta[id].notes, extraNotes].filter(Boolean).join('; '),
    oursLabel: 'typevisor (kvm engine)',
    referenceLabel: 'QEMU microvm -accel kvm',
    ours: oursSide,
    reference: refSide,
  });

  const why = ctx.kvm !== true ? `KVM unusable: ${ctx.kvm}` : benchGuestToolchainMissing();
  if (why) return ids.map((id) => row(id, absent(why), absent(why)));
  const guests = buildBenchGuests();
  ctx.log(`bench guests: ${BENCH_GUEST_MODES.map((m) => guests[m]).join(', ')}`);
  const vmms: (Vmm | string)[] = [ours(), 'path' in ctx.refs.qemuSystem ? qemu(ctx.refs.qemuSystem.path) : ctx.refs.qemuSystem.missing];

  ctx.log('start-up and VM life');
  const life = await sides(ctx, vmms, (v) => lifeOnce(v, guests), ctx.runs + 2);
  // The first run of each pays for cold caches (node's code cache, QEMU's shared libraries); report warm runs.
  const warm = life.map((r) => (typeof r === 'string' ? r : r.slice(2)));
  rows.push(row('start.first', side(warm[0]!, (x) => x.first), side(warm[1]!, (x) => x.first), 'two warm-up runs each not counted'));
  rows.push(row('start.life', side(warm[0]!, (x) => x.exit), side(warm[1]!, (x) => x.exit)));

  ctx.log('memory overhead');
  const mem = await sides(ctx, vmms, (v) => memoryOnce(v, guests));
  const guestNote = (r: (typeof mem)[number], who: string) =>
    typeof r === 'string' ? '' : `${who} guest RAM resident ${(r[0]!.guest / 2 ** 20).toFixed(1)} MiB, total RSS ${(r[0]!.rss / 2 ** 20).toFixed(1)} MiB`;
  rows.push(row('mem.overhead', side(mem[0]!, (x) => x.overhead / 2 ** 20), side(mem[1]!, (x) => x.overhead / 2 ** 20), [guestNote(mem[0]!, 'typevisor'), guestNote(mem[1]!, 'QEMU')].filter(Boolean).join(', ')));

  ctx.log('VMs started per second');
  const rate = await sides(ctx, vmms, (v) => startRate(v, guests, ctx.quick ? 4 : 40, os.cpus().length));
  rows.push(row('vms.rate', side(rate[0]!, (x) => x), side(rate[1]!, (x) => x)));

  const cap = ctx.quick ? 3 : 64;
  ctx.log(`VMs at once (cap ${cap})`);
  // Three runs (the minimum) here: each starts up to `cap` VMs.
  const conc = await sides(ctx, vmms, (v) => idleVms({
    start: () => start(v.command(guests.idle), [MARK_FIRST]),
    marker: MARK_FIRST,
    cap,
    inFlight: 1,
    vmTimeoutMs: VM_TIMEOUT_MS,
    totalMs: CONCURRENT_TOTAL_MS,
    guestBytes: MEMORY_BYTES,
  }), 3);
  const stopNote = (r: (typeof conc)[number], who: string) => (typeof r === 'string' ? '' : `${who} stopped at: ${[...new Set(r.map((x) => x.stopped))].join(' / ')}`);
  const memoryBound = (r: (typeof conc)[number], who: string) => {
    if (typeof r === 'string' || r.length === 0 || r[0]!.rssPerVm === 0) return '';
    const per = Math.min(...r.map((x) => x.rssPerVm));
    return `${who} memory bound ≈ ${Math.floor(os.totalmem() / per)} (host RAM ÷ RSS per VM)`;
  };
  rows.push(row('vms.concurrent', side(conc[0]!, (x) => x.alive), side(conc[1]!, (x) => x.alive),
    [`started one after another, each counted once its guest ran its first instruction; ${MEMORY} RAM each, idle in hlt`,
      stopNote(conc[0]!, 'typevisor'), stopNote(conc[1]!, 'QEMU'), memoryBound(conc[0]!, 'typevisor'), memoryBound(conc[1]!, 'QEMU')].filter(Boolean).join('; ')));
  rows.push(row('vms.rss', side(conc[0]!, (x) => x.rssPerVm / 2 ** 20), side(conc[1]!, (x) => x.rssPerVm / 2 ** 20)));
  return rows;
};
