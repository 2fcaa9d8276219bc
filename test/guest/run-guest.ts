/**
 * Runs a test guest through the typevisor CLI, as a user would, and collects
 * the TG report from its serial console.
 */
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import type { BuiltImage } from '../../src/image/build.js';
import { imageBuildMissing, testImage } from '../image/helpers.js';
import { GuestReport } from './protocol.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const CLI_BIN = `${REPO}bin/typevisor.js`;
const CLI_MAIN = `${REPO}dist/src/cli/main.js`;

export interface GuestRun {
  kernel: string;
  initrd?: string;
  cmdline: string;
  cpus: number;
  memory: string;
  engine?: 'kvm' | 'soft';
  /** Kill the VMM after this long: the guests finish in well under a second. */
  timeoutMs?: number;
}

export interface GuestResult {
  /** The CLI's exit status; null if it was killed. */
  status: number | null;
  stdout: string;
  stderr: string;
  report: GuestReport;
  /** The guest said it halted on purpose (TG halt) and the VMM was stopped for it. */
  halted: boolean;
  timedOut: boolean;
  wallMs: number;
}

/** Why guests cannot run on KVM here, or undefined. */
export function kvmMissing(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return undefined;
  } catch (e) {
    return `/dev/kvm is not usable here (${(e as Error).message})`;
  }
}

let cliProbe: string | undefined | null = null;

/** Why the CLI cannot run (not built, or `typevisor version` fails), or undefined. */
export function cliMissing(): string | undefined {
  if (cliProbe !== null) return cliProbe;
  if (!existsSync(CLI_MAIN)) {
    cliProbe = `${CLI_MAIN} is not built`;
  } else {
    const r = spawnSync(process.execPath, [CLI_BIN, 'version'], { encoding: 'utf8', timeout: 10_000 });
    const why = r.stderr.split('\n').find((l) => /Error|error:/.test(l)) ?? r.stderr.split('\n')[0];
    cliProbe = r.status === 0 ? undefined : `the typevisor CLI does not run yet: ${why?.trim() ?? `status ${r.status}`}`;
  }
  return cliProbe;
}

/** A halted guest never ends the VM by itself; stop the VMM once the whole line is in. */
const HALT_LINE = /^TG halt [^\n]*\n/m;

export function runGuest(run: GuestRun): Promise<GuestResult> {
  const args = [CLI_BIN, 'run', '--engine', run.engine ?? 'kvm', '--kernel', run.kernel,
    '--cmdline', run.cmdline, '--cpus', String(run.cpus), '--memory', run.memory];
  if (run.initrd !== undefined) args.push('--initrd', run.initrd);
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let halted = false;
  let timedOut = false;
  child.stdout.setEncoding('latin1');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (s: string) => {
    stdout += s;
    if (!halted && HALT_LINE.test(stdout)) {
      halted = true;
      child.kill('SIGKILL');
    }
  });
  child.stderr.on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, run.timeoutMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, report: new GuestReport(stdout), halted, timedOut, wallMs: performance.now() - started });
    });
  });
}

/** Everything about a run, for assertion messages. */
export function describe(r: GuestResult): string {
  return `status=${r.status} halted=${r.halted} timedOut=${r.timedOut} wall=${r.wallMs.toFixed(0)}ms\n` +
    `--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/**
 * The default Linux image for a test that boots it through the CLI, or
 * undefined after skipping `t` by name: `missing` (a tool the test itself
 * needs), no image tools, the CLI not built, or the image failing to build.
 */
export async function linuxImageOrSkip(t: TestContext, missing?: string): Promise<BuiltImage | undefined> {
  const why = missing ?? imageBuildMissing() ?? cliMissing();
  if (why) {
    t.skip(why);
    return undefined;
  }
  try {
    return await testImage();
  } catch (e) {
    t.skip(`the default image cannot be built here: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
}
