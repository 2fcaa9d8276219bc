/**
 * Shared by the image tests: host tools installed on demand (as root, with
 * apt), the test image built once into the test cache with its .debs kept
 * there, so re-runs are fast.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { buildImage, type BuiltImage } from '../../src/image/build.js';
import { testCacheDir, which } from '../fixtures/debian-kernel.js';

export { testCacheDir, which };

export const isRoot = process.getuid?.() === 0;

/**
 * Makes `cmd` available, installing Debian package `pkg` with apt-get as root
 * when it is missing; returns undefined when present, or why it is not.
 */
export function needTool(cmd: string, pkg: string): string | undefined {
  const onPath = () => which(cmd) ?? ['/usr/sbin', '/sbin'].map((d) => join(d, cmd)).find((p) => spawnSync('test', ['-x', p]).status === 0);
  if (onPath()) return undefined;
  if (!isRoot || !which('apt-get')) return `${cmd} is missing and cannot be installed here (run: sudo apt-get install ${pkg})`;
  const apt = (...args: string[]) =>
    spawnSync('apt-get', args, { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  if (!apt('install', '-y', '-qq', '--no-install-recommends', pkg)) {
    apt('update', '-qq');
    apt('install', '-y', '-qq', '--no-install-recommends', pkg);
  }
  return onPath() ? undefined : `${cmd} is missing and apt-get install ${pkg} did not install it`;
}

/** .debs downloaded by the image tests, kept between runs. */
export function debCache(): string {
  const dir = join(testCacheDir(), 'debs');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Why the default image cannot be built here, or undefined. */
export function imageBuildMissing(): string | undefined {
  for (const tool of ['apt-get', 'apt-cache', 'dpkg-deb']) {
    if (!which(tool)) return `${tool} is not installed: the default image is built from Debian packages with apt`;
  }
  return undefined;
}

/**
 * The default image built into `<test cache>/<name>` with the shared .deb
 * cache; reused while it verifies, like a user's.
 */
export async function testImage(name = 'image-default', log: (line: string) => void = () => {}): Promise<BuiltImage> {
  return buildImage({ out: join(testCacheDir(), name), debCache: debCache(), log });
}
