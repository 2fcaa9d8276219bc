/**
 * Debian packages through the host's own apt: `apt-cache` to resolve names
 * and versions, `apt-get download` to fetch a .deb into a directory (no root
 * needed), `dpkg-deb` to unpack it. Nothing is fetched from anywhere else.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError, saysNoSpace } from './errors.js';

export interface HostTools {
  /** Environment of the child processes; its PATH is where tools are looked for. */
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

/** Full path of `cmd` on the PATH of `env`, or undefined. */
export function which(cmd: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env['PATH'] ?? '').split(':')) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runTool(tools: HostTools, cmd: string, args: string[], cwd?: string): Run {
  const path = which(cmd, tools.env);
  if (!path) throw new ImageError('tool-missing', `${cmd} is not on PATH`);
  const r = spawnSync(path, args, {
    cwd,
    env: { ...tools.env, DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) throw new ImageError('tool-failed', `${cmd}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** apt's error lines ("E: …"), or its last line, for a message. */
function aptReason(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const errors = lines.filter((l) => l.startsWith('E: ')).map((l) => l.slice(3));
  return (errors.length > 0 ? errors : lines.slice(-1)).join('; ') || 'no message';
}

export const APT_MISSING_MESSAGE =
  'apt-get is not on this host (it is not Debian or a Debian derivative), and the default guest image is built ' +
  'from Debian packages with apt. Boot a kernel and initramfs of your own instead: ' +
  'typevisor run --kernel BZIMAGE --initrd INITRD';

/** Checks that apt and dpkg-deb are there; the error says what to do instead. */
export function requireApt(tools: HostTools): void {
  if (!which('apt-get', tools.env) || !which('apt-cache', tools.env)) throw new ImageError('apt-missing', APT_MISSING_MESSAGE);
  if (!which('dpkg-deb', tools.env)) throw new ImageError('tool-missing', 'dpkg-deb is not on PATH: install Debian\'s dpkg package (apt-get install dpkg)');
}

export class Apt {
  private updated = false;

  constructor(private readonly tools: HostTools) {}

  /** The version apt would install of `pkg`, or undefined when apt knows none. */
  candidate(pkg: string): string | undefined {
    return this.candidates([pkg]).get(pkg);
  }

  /** Candidate versions of several packages in one apt-cache run (each run reads all package lists: ~0.5 s). */
  candidates(pkgs: readonly string[]): Map<string, string> {
    const r = runTool(this.tools, 'apt-cache', ['policy', ...pkgs]);
    const out = new Map<string, string>();
    // apt-cache policy prints "<name>:" at column 0, then indented fields.
    let current: string | undefined;
    for (const line of r.stdout.split('\n')) {
      const head = /^(\S+):$/.exec(line);
      if (head) current = head[1];
      const v = /^\s+Candidate:\s*(\S+)/.exec(line)?.[1];
      if (current !== undefined && v !== undefined && v !== '(none)') out.set(current, v);
    }
    return out;
  }

  /**
   * Candidate versions of `pkgs` (one apt-cache run). Unknown packages first
   * get an `apt-get update` (as root; the package lists may be missing or
   * stale); one still unknown is an error naming it.
   */
  resolve(pkgs: readonly string[]): string[] {
    let found = this.candidates(pkgs);
    if (pkgs.some((p) => !found.has(p)) && !this.updated && isRoot()) {
      this.tools.log(`apt knows no ${pkgs.filter((p) => !found.has(p)).join(', ')}: running apt-get update`);
      const r = runTool(this.tools, 'apt-get', ['update', '-qq']);
      this.updated = true;
      if (r.status !== 0) throw new ImageError('package-unavailable', `apt-get update failed: ${aptReason(r.stderr)}`);
      found = this.candidates(pkgs);
    }
    return pkgs.map((pkg) => {
      const v = found.get(pkg);
      if (v !== undefined) return v;
      const hint = isRoot() ? '' : ' (if the package lists are missing or stale, run: sudo apt-get update)';
      throw new ImageError('package-unavailable', `cannot download Debian package "${pkg}": apt knows no such package${hint}`);
    });
  }

  /** The first `prefix…` package that `pkg=version` depends on (a metapackage's real package). */
  dependency(pkg: string, version: string, prefix: string): string {
    const r = runTool(this.tools, 'apt-cache', ['show', `${pkg}=${version}`]);
    const depends = /^Depends:\s*(.*)$/m.exec(r.stdout)?.[1] ?? '';
    const dep = depends
      .split(',')
      .map((d) => d.trim().split(/[\s|(]/)[0] ?? '')
      .find((d) => d.startsWith(prefix));
    if (!dep) throw new ImageError('bad-package', `${pkg} ${version} depends on no ${prefix}* package (Depends: ${depends || 'none'})`);
    return dep;
  }

  /** Download size in bytes of `pkg=version`, when apt knows it. */
  size(pkg: string, version: string): number | undefined {
    const r = runTool(this.tools, 'apt-cache', ['show', `${pkg}=${version}`]);
    const s = /^Size:\s*(\d+)/m.exec(r.stdout)?.[1];
    return s === undefined ? undefined : Number(s);
  }

  /**
   * The .deb of `pkg=version` in `dir`: one already there (apt names files
   * `<name>_<version with ':' as %3a>_<arch>.deb`) or a fresh download.
   */
  download(pkg: string, version: string, dir: string): string {
    const prefix = `${pkg}_${version.replace(/:/g, '%3a')}_`;
    const cached = readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
    if (cached) {
      this.tools.log(`using ${pkg} ${version} from ${dir}`);
      return join(dir, cached);
    }
    const size = this.size(pkg, version);
    this.tools.log(`downloading ${pkg} ${version}${size ? ` (${(size / 2 ** 20).toFixed(1)} MiB)` : ''}`);
    // Into a private directory first, then renamed: another build sharing `dir` never sees half a file.
    const tmp = mkdtempSync(join(dir, '.download-'));
    try {
      const r = runTool(this.tools, 'apt-get', ['download', '-q', `${pkg}=${version}`], tmp);
      if (r.status !== 0) {
        if (saysNoSpace(r.stderr)) throw new ImageError('disk-full', `no space left on device downloading ${pkg} into ${dir}`);
        throw new ImageError('package-unavailable', `cannot download Debian package "${pkg}" ${version}: ${aptReason(r.stderr)}`);
      }
      const got = readdirSync(tmp).find((f) => f.startsWith(prefix) && f.endsWith('.deb'));
      if (!got) throw new ImageError('package-unavailable', `apt-get download ${pkg}=${version} wrote no ${prefix}*.deb`);
      renameSync(join(tmp, got), join(dir, got));
      return join(dir, got);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

/** Unpacks the files of a .deb into `dir`. */
export function extractDeb(tools: HostTools, deb: string, dir: string): void {
  const r = runTool(tools, 'dpkg-deb', ['-x', deb, dir]);
  if (r.status !== 0) {
    if (saysNoSpace(r.stderr)) throw new ImageError('disk-full', `no space left on device unpacking ${deb} into ${dir}`);
    throw new ImageError('bad-package', `dpkg-deb -x ${deb} failed: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}`);
  }
}
