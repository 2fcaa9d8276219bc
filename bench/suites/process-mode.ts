/**
 * Process mode (static Linux x86-64 programs on the soft CPU with a system
 * call layer, like qemu-user) against qemu-x86_64 and the host itself:
 * Debian's busybox-static hashing and compressing the same file.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { hostBusybox } from '../lib/busybox.js';
import { benchCache } from '../lib/cache.js';
import { absent, measured, type Row, type Side } from '../lib/results.js';
import type { Suite } from '../lib/suite.js';
import { TYPEVISOR_BIN } from '../lib/vmms.js';

const GROUP = 'process mode vs qemu-x86_64 and native (busybox-static)';
const MiB = 2 ** 20;
/** The CLI command that will run a Linux program in process mode. */
export const PROCESS_COMMAND = 'exec';

/**
 * Text-like input (words from a small vocabulary, by xorshift), so gzip does
 * real work instead of storing random bytes.
 */
function input(bytes: number): string {
  const path = join(benchCache('process'), `input-${bytes}.txt`);
  if (existsSync(path)) return path;
  const words = ['virtual', 'machine', 'guest', 'host', 'page', 'table', 'exit', 'interrupt', 'queue', 'kernel', 'memory', 'device', 'the', 'a', 'of', 'to'];
  const buf = Buffer.alloc(bytes);
  let x = 0x9e3779b9;
  let at = 0;
  while (at < bytes) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const w = `${words[(x >>> 0) % words.length]!}${(x >>> 28) === 0 ? '\n' : ' '}`;
    at += buf.write(w, at, 'latin1');
  }
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, buf);
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Seconds of one run of `cmd args`, its output discarded; throws on failure. */
function time(cmd: string, args: string[], onStderr?: (text: string) => void): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 20 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.error || r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? `status ${r.status}: ${r.stderr.trim()}`}`);
  onStderr?.(r.stderr);
  return s;
}

/** `typevisor exec --stats` ends with "… M instructions/s"; the guest's instruction rate, or undefined. */
function instructionRate(stderr: string): number | undefined {
  const m = /(\d+) instructions in ([\d.]+) s: ([\d.]+) M instructions\/s/.exec(stderr);
  return m ? Number(m[3]) : undefined;
}

function processModeMissing(): string | undefined {
  const r = spawnSync(process.execPath, [TYPEVISOR_BIN, '--help'], { encoding: 'utf8' });
  if (new RegExp(`^\\s+${PROCESS_COMMAND}\\b`, 'm').test(r.stdout)) return undefined;
  return `not available yet: typevisor has no process-mode command (\`typevisor ${PROCESS_COMMAND}\`)`;
}

export const processMode: Suite = async (ctx) => {
  const bytes = ctx.quick ? 256 * 1024 : 16 * MiB;
  const mb = bytes / MiB;
  const bb = hostBusybox(ctx);
  const file = input(bytes);
  const work = [
    { id: 'sha256sum', benchmark: `busybox sha256sum of ${mb} MiB`, args: ['sha256sum', file] },
    { id: 'gzip', benchmark: `busybox gzip of ${mb} MiB`, args: ['gzip', '-c', file] },
  ] as const;
  const oursMissing = processModeMissing();
  const qemuUser = 'path' in ctx.refs.qemuUser ? ctx.refs.qemuUser.path : undefined;
  const rows: Row[] = [];
  for (const w of work) {
    const runs: Record<'ours' | 'qemu' | 'native', number[] | string> = {
      ours: oursMissing ?? [],
      qemu: qemuUser ? [] : ('missing' in ctx.refs.qemuUser ? ctx.refs.qemuUser.missing : ''),
      native: [],
    };
    if ('missing' in bb) for (const k of ['ours', 'qemu', 'native'] as const) runs[k] = bb.missing;
    const busybox = 'path' in bb ? bb.path : '';
    const commands: Record<'ours' | 'qemu' | 'native', [string, string[]]> = {
      ours: [process.execPath, [TYPEVISOR_BIN, PROCESS_COMMAND, '--stats', busybox, ...w.args]],
      qemu: [qemuUser ?? '', [busybox, ...w.args]],
      native: [busybox, [...w.args]],
    };
    const rates: number[] = [];
    ctx.log(`process: ${w.id}`);
    // Interleaved, so drift on the host hits all three alike.
    for (let i = 0; i < (ctx.quick ? 1 : ctx.runs); i++) {
      for (const k of ['native', 'qemu', 'ours'] as const) {
        const acc = runs[k];
        if (typeof acc === 'string') continue;
        try {
          acc.push(time(...commands[k], k === 'ours' ? (err) => {
            const rate = instructionRate(err);
            if (rate !== undefined) rates.push(rate);
          } : undefined));
        } catch (e) {
          runs[k] = `failed: ${(e as Error).message}`;
        }
      }
    }
    const side = (r: number[] | string): Side => (typeof r === 'string' ? absent(r) : measured(r));
    const base = {
      group: GROUP,
      units: 's',
      better: 'lower' as const,
      oursLabel: 'typevisor process mode',
      notes: `wall time of the whole process (start-up included), output to /dev/null; input: ${mb} MiB of text in the host page cache` +
        (rates.length ? `; soft engine: ${rates.sort((a, b) => a - b)[rates.length >> 1]!.toFixed(1)} M guest instructions/s (median, from \`typevisor exec --stats\`)` : ''),
    };
    rows.push({ ...base, id: `process.${w.id}.qemu`, benchmark: w.benchmark, referenceLabel: 'qemu-x86_64 (QEMU user mode, TCG)', ours: side(runs.ours), reference: side(runs.qemu) });
    rows.push({ ...base, id: `process.${w.id}.native`, benchmark: `${w.benchmark}, against native`, referenceLabel: 'the same busybox run natively on the host', ours: side(runs.ours), reference: side(runs.native) });
  }
  return rows;
};
