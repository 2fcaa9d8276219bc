/**
 * Debian's busybox-static for process-mode tests: fetched once with the
 * host's apt (`apt-get download busybox-static`, `dpkg-deb -x`) into the
 * test cache directory, reused afterwards; tests skip by name without apt.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type Fixture, testCacheDir, which } from '../fixtures/debian-kernel.js';

let cached: Fixture | undefined;

export function debianBusybox(): Fixture {
  if (cached) return cached;
  cached = fetch();
  return cached;
}

function fetch(): Fixture {
  const dir = join(testCacheDir(), 'busybox-static');
  const bin = join(dir, 'root', 'bin', 'busybox');
  if (existsSync(bin)) return { path: bin };
  for (const tool of ['apt-get', 'dpkg-deb']) {
    if (!which(tool)) return { skip: `${tool} is not installed: cannot fetch Debian's busybox-static` };
  }
  try {
    mkdirSync(dir, { recursive: true });
    const work = join(dir, 'download');
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const download = (): void => { execFileSync('apt-get', ['download', 'busybox-static'], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] }); };
    try { download(); } catch { execFileSync('apt-get', ['update'], { stdio: 'ignore' }); download(); }
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) return { skip: 'apt-get download busybox-static produced no .deb' };
    execFileSync('dpkg-deb', ['-x', join(work, deb), join(dir, 'root')], { stdio: ['ignore', 'ignore', 'pipe'] });
    rmSync(work, { recursive: true, force: true });
  } catch (e) {
    return { skip: `could not fetch busybox-static with apt: ${(e as Error).message.split('\n')[0]}` };
  }
  return existsSync(bin) ? { path: bin } : { skip: 'the busybox-static package holds no /bin/busybox' };
}
