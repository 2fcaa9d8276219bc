/**
 * Debian's busybox-static for the host-side references (native and
 * qemu-x86_64 runs), fetched with the host's apt (`apt-get download`) into
 * the bench cache once.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Apt, extractDeb, requireApt, type HostTools } from '../../src/image/debian.js';
import { benchCache } from './cache.js';
import type { Tool } from './host.js';
import type { SuiteContext } from './suite.js';

export const BUSYBOX_PACKAGE = 'busybox-static';

let cached: Tool | undefined;

export function hostBusybox(ctx: Pick<SuiteContext, 'log'>): Tool {
  if (cached) return cached;
  const dir = benchCache('busybox');
  const path = join(dir, 'bin', 'busybox');
  if (existsSync(path)) return (cached = { path });
  try {
    const tools: HostTools = { env: process.env, log: (l) => ctx.log(`busybox: ${l}`) };
    requireApt(tools);
    const apt = new Apt(tools);
    const [version] = apt.resolve([BUSYBOX_PACKAGE]);
    const deb = apt.download(BUSYBOX_PACKAGE, version!, benchCache('debs'));
    extractDeb(tools, deb, dir);
    cached = existsSync(path) ? { path } : { missing: `${BUSYBOX_PACKAGE} has no bin/busybox` };
  } catch (e) {
    cached = { missing: `${BUSYBOX_PACKAGE}: ${(e as Error).message}` };
  }
  return cached;
}
