/**
 * How many idle VMs run at once: start VMs until a cap, a time bound, a VM
 * that does not come up, or host memory running low; count those alive at the
 * end and measure what each one holds while idle.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { memoryUse, type Watch } from './proc.js';

/** Stop starting VMs when the host has less than this free, so other work here keeps running. */
export const KEEP_FREE_BYTES = 4 * 2 ** 30;

/** Clock ticks per second of /proc/PID/stat's times: USER_HZ, fixed at 100 on x86 (proc(5), time(7)). */
const USER_HZ = 100;

export interface IdleVmOptions {
  /** Starts one VM; its watch must include `marker`. */
  start(): Watch;
  /** Console text that shows the VM is up; from then on its guest idles. */
  marker: string;
  cap: number;
  /** VMs booting at the same time: one per host core where booting is CPU-bound. */
  inFlight: number;
  /** Longest wait for one VM's marker. */
  vmTimeoutMs: number;
  /** Longest time for the whole count; a VM still booting then is not counted. */
  totalMs: number;
  /** Each VM's guest RAM, to find its mapping in smaps. */
  guestBytes: number;
  /** Window over which the idle VMs' CPU use is sampled; 0 skips it. */
  cpuWindowMs?: number;
}

export interface IdleVms {
  /** VMs that came up and were still running at the end. */
  alive: number;
  /** Mean RSS of those VMs, bytes (guest RAM included). */
  rssPerVm: number;
  /** Mean CPU use of each idle VM over the window, in host cores (1 = one core busy); NaN when not sampled. */
  cpuPerVm: number;
  /** ms from spawn to the marker, for each VM that came up, in start order. */
  upMs: number[];
  /** ms from the first spawn to the last marker: `upMs.length` VMs came up in this time. */
  spanMs: number;
  /** Why no more VMs were started. */
  stopped: string;
}

/** utime + stime of a process, in seconds; undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces, ends at the last ')': state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / USER_HZ;
  } catch {
    return undefined;
  }
}

function running(w: Watch): boolean {
  return w.child.exitCode === null && w.child.signalCode === null;
}

export async function idleVms(o: IdleVmOptions): Promise<IdleVms> {
  const t0 = Date.now();
  const vms: Watch[] = [];
  const up = new Set<Watch>();
  const upMs: number[] = [];
  let spanMs = 0;
  let stopped = '';
  const lane = async () => {
    while (!stopped && vms.length < o.cap) {
      const left = o.totalMs - (Date.now() - t0);
      if (left <= 0) {
        stopped = `time bound of ${o.totalMs / 1000} s`;
        return;
      }
      if (os.freemem() < KEEP_FREE_BYTES) {
        stopped = `host free memory below ${KEEP_FREE_BYTES / 2 ** 30} GiB`;
        return;
      }
      const w = o.start();
      vms.push(w);
      const n = vms.length;
      const wait = Math.min(o.vmTimeoutMs, left);
      try {
        upMs[n - 1] = await w.mark(o.marker, wait);
        up.add(w);
        spanMs = Date.now() - t0;
      } catch (e) {
        const booting = running(w);
        w.kill();
        if (booting && wait < o.vmTimeoutMs) stopped ||= `time bound of ${o.totalMs / 1000} s, VM ${n} still booting`;
        else if (booting) stopped ||= `VM ${n} not up within ${o.vmTimeoutMs / 1000} s`;
        else stopped ||= `VM ${n} did not come up: ${(e as Error).message}`;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, o.inFlight) }, lane));
    stopped ||= `cap of ${o.cap}`;
    const alive = vms.filter((w) => up.has(w) && running(w));
    let rss = 0;
    let counted = 0;
    for (const w of alive) {
      try {
        rss += memoryUse(w.child.pid!, o.guestBytes).rss;
        counted++;
      } catch {
        // Exited between the check and the read: not alive after all.
      }
    }
    let cpuPerVm = NaN;
    if (o.cpuWindowMs && alive.length) {
      const before = alive.map((w) => cpuSeconds(w.child.pid!));
      const start = process.hrtime.bigint();
      await new Promise((r) => setTimeout(r, o.cpuWindowMs));
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const used = alive.flatMap((w, i) => {
        const a = before[i];
        const b = cpuSeconds(w.child.pid!);
        return a === undefined || b === undefined ? [] : [(b - a) / seconds];
      });
      if (used.length) cpuPerVm = used.reduce((s, x) => s + x, 0) / used.length;
    }
    return { alive: counted, rssPerVm: counted ? rss / counted : 0, cpuPerVm, upMs: upMs.filter((x) => x !== undefined), spanMs, stopped };
  } finally {
    for (const w of vms) w.kill();
    await Promise.all(vms.map((w) => w.exited.catch(() => undefined)));
  }
}
