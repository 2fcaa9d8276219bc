/**
 * Observing a VMM as a process: when its guest's bytes reach the console pipe,
 * when it exits, and where its memory goes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface Observed {
  /** ms from spawn() to the first console byte equal to each watched marker. */
  marks: Map<string, number>;
  /** ms from spawn() to process exit; undefined when it was still running when we stopped watching. */
  exitMs?: number;
  exitCode: number | null;
  stdout: string;
  stderr: string;
}

export interface Watch {
  child: ChildProcess;
  /** Resolves with the ms since spawn at which `marker` (one of those watched) appeared; rejects on exit or timeout first. */
  mark(marker: string, timeoutMs: number): Promise<number>;
  /** Resolves at exit. */
  exited: Promise<Observed>;
  kill(): void;
}

/**
 * Spawns `cmd args` with stdout piped and timestamps, with hrtime, the first
 * arrival of each of `markers` in its output. The clock starts just before
 * spawn(), so figures include fork/exec and the VMM's whole start-up.
 */
export function watch(cmd: string, args: string[], markers: readonly string[], env?: NodeJS.ProcessEnv): Watch {
  const t0 = process.hrtime.bigint();
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const marks = new Map<string, number>();
  const waiters = new Set<{ marker: string; resolve: (v: number) => void; timer: NodeJS.Timeout }>();
  let stdout = '';
  let stderr = '';
  let done: Observed | undefined;
  child.stdout!.setEncoding('latin1');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const now = ms();
    const from = Math.max(0, stdout.length - 64);
    stdout += chunk;
    for (const m of markers) if (!marks.has(m) && stdout.indexOf(m, from) >= 0) marks.set(m, now);
    for (const w of waiters) {
      const at = marks.get(w.marker);
      if (at === undefined) continue;
      clearTimeout(w.timer);
      waiters.delete(w);
      w.resolve(at);
    }
  });
  child.stderr!.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const failures = new Set<(e: Error) => void>();
  const exited = new Promise<Observed>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      done = { marks, exitMs: ms(), exitCode: code, stdout, stderr };
      for (const f of failures) f(new Error(`${cmd} exited (status ${code}) early: ${tail(stderr || stdout)}`));
      resolve(done);
    });
  });
  return {
    child,
    exited,
    kill: () => {
      if (!done) child.kill('SIGKILL');
    },
    mark(marker, timeoutMs) {
      if (!markers.includes(marker)) return Promise.reject(new Error(`${JSON.stringify(marker)} is not a watched marker`));
      const at = marks.get(marker);
      if (at !== undefined) return Promise.resolve(at);
      if (done) return Promise.reject(new Error(`${cmd} exited before printing ${JSON.stringify(marker)}: ${tail(stderr || stdout)}`));
      return new Promise((resolve, reject) => {
        const fail = (e: Error) => {
          clearTimeout(w.timer);
          waiters.delete(w);
          failures.delete(fail);
          reject(e);
        };
        const w = {
          marker,
          resolve: (v: number) => {
            failures.delete(fail);
            resolve(v);
          },
          timer: setTimeout(() => fail(new Error(`${cmd}: no ${JSON.stringify(marker)} within ${timeoutMs} ms: ${tail(stderr || stdout)}`)), timeoutMs),
        };
        waiters.add(w);
        failures.add(fail);
      });
    },
  };
}

/** The last lines of a process's output, led by its first error line (Node prints a stack after it). */
export function tail(text: string, lines = 3): string {
  const all = text.trim().split('\n');
  const error = all.find((l) => /\b\w*Error\b|error:/.test(l));
  const last = all.slice(-lines);
  return [...(error && !last.includes(error) ? [error] : []), ...last].join(' | ') || '(no output)';
}

/** How much larger than the guest's RAM its mapping may be (see memoryUse). */
export const GUEST_MAPPING_SLACK = 64 * 2 ** 20;

export interface MemoryUse {
  /** Resident bytes of the whole process. */
  rss: number;
  /** Resident bytes of the mappings that hold guest RAM. */
  guestRss: number;
  /** rss − guestRss: what the VMM itself keeps resident. */
  overhead: number;
}

/**
 * Splits a process's resident memory into guest RAM and the rest, from
 * /proc/PID/smaps (proc(5)). Guest RAM is the largest anonymous or memfd
 * mapping at least as large as the guest's RAM: QEMU and typevisor each map it
 * in one piece, nothing else a VMM maps is that big. The slack allowed above
 * the RAM size covers alignment pages and small anonymous neighbours the
 * kernel merges into the same mapping (whose pages then count as guest RAM,
 * understating the overhead by at most their size).
 */
export function memoryUse(pid: number, guestBytes: number): MemoryUse {
  const text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  let rss = 0;
  let guest = { size: 0, rss: 0 };
  let candidate: { size: number; rss: number } | undefined;
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      const size = parseInt(head[2]!, 16) - parseInt(head[1]!, 16);
      const path = head[3] ?? '';
      const anonymous = path === '' || path.startsWith('/memfd:') || path.startsWith('[anon');
      candidate = anonymous && size >= guestBytes && size <= guestBytes + GUEST_MAPPING_SLACK ? { size, rss: 0 } : undefined;
      continue;
    }
    const r = /^Rss:\s+(\d+) kB$/.exec(line);
    if (r) {
      const bytes = Number(r[1]) * 1024;
      rss += bytes;
      if (candidate) {
        candidate.rss = bytes;
        if (candidate.size > guest.size) guest = candidate;
      }
    }
  }
  return { rss, guestRss: guest.rss, overhead: rss - guest.rss };
}
