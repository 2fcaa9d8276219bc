/**
 * Real x86-64 code for the decoder cross-check: Debian's busybox-static
 * binary and the vmlinux inside Debian's cloud kernel, both fetched with the
 * host's apt into the test cache and reused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { decompressKernelPayload, detectCompression, parseSetupHeader } from '../../../src/boot/index.js';
import { debianCloudKernel, type Fixture, testCacheDir, which } from '../../fixtures/debian-kernel.js';

export const BUSYBOX_PACKAGE = 'busybox-static';

/** Path of Debian's static busybox, downloading the package on first use; or why it cannot be had. */
export function debianBusybox(): Fixture {
  const dir = join(testCacheDir(), 'busybox-static');
  const path = join(dir, 'bin', 'busybox');
  if (existsSync(path)) return { path };
  for (const tool of ['apt-get', 'dpkg-deb']) {
    if (!which(tool)) return { skip: `${tool} is not installed: cannot fetch Debian's ${BUSYBOX_PACKAGE}` };
  }
  const work = join(dir, 'download');
  try {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    execFileSync('apt-get', ['download', BUSYBOX_PACKAGE], { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) return { skip: `apt-get download ${BUSYBOX_PACKAGE} produced no .deb` };
    execFileSync('dpkg-deb', ['-x', join(work, deb), dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    return { skip: `could not fetch ${BUSYBOX_PACKAGE} with apt: ${(e as Error).message.split('\n')[0]}` };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return existsSync(path) ? { path } : { skip: `the ${BUSYBOX_PACKAGE} package holds no /bin/busybox` };
}

/** The vmlinux ELF inside Debian's cloud kernel, decompressed on the host once and cached. */
export function debianVmlinux(): Fixture {
  const kernel = debianCloudKernel();
  if ('skip' in kernel) return kernel;
  const path = join(testCacheDir(), 'debian-cloud-kernel', basename(kernel.path).replace(/^vmlinuz/, 'vmlinux'));
  if (existsSync(path)) return { path };
  const image = readFileSync(kernel.path);
  const header = parseSetupHeader(image);
  // The protected-mode kernel follows the setup sectors (Documentation/x86/boot.rst).
  const pmStart = (header.setupSects + 1) * 512;
  const payload = image.subarray(pmStart + header.payloadOffset, pmStart + header.payloadOffset + header.payloadLength);
  const format = detectCompression(payload);
  if (!format) return { skip: `${kernel.path}: unknown payload compression` };
  try {
    writeFileSync(path, decompressKernelPayload(payload, format));
  } catch (e) {
    return { skip: `${kernel.path}: cannot decompress its ${format} payload here: ${(e as Error).message}` };
  }
  return { path };
}
