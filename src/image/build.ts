/**
 * `typevisor image build`: the default guest — Debian's cloud kernel and a
 * busybox initramfs — built from Debian packages and kept in a cache
 * directory with a manifest.
 *
 * An image directory holds `vmlinuz`, `initrd.img` and `manifest.json`. It is
 * reused when its manifest names the same build format, packages and /init
 * (and, where apt is present, the versions apt would install now) and every
 * file still has the size and SHA-256 the manifest records. Otherwise it is
 * rebuilt in a staging directory beside it on the same file system, each file
 * fsync'ed, and renamed into place: an interrupted or failed build (disk full)
 * leaves the previous directory or none, never half of one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Apt, extractDeb, requireApt, which, type HostTools } from './debian.js';
import { ImageError, isNoSpace } from './errors.js';
import { buildInitramfs } from './initramfs.js';
import { resolveModules } from './modules.js';

/** Bumped whenever the same packages would give a different image (layout, /init contract, module set). */
export const IMAGE_FORMAT = 1;

export const DEFAULT_IMAGE_NAME = 'default';

/** Debian packages of the default image. */
export const DEFAULT_PACKAGES = {
  /** Metapackage that depends on the current cloud kernel package (linux-image-<release>). */
  kernel: 'linux-image-cloud-amd64',
  busybox: 'busybox-static',
} as const;

/**
 * Modules /init loads: virtio over MMIO (the machine's transport), its
 * block, net, console, entropy and vsock devices, and ext4. Their
 * dependencies are found by `resolveModules`.
 */
export const GUEST_MODULES = [
  'virtio_mmio',
  'virtio_blk',
  'virtio_net',
  'virtio_console',
  'virtio_rng',
  'vsock',
  'vmw_vsock_virtio_transport',
  'ext4',
] as const;

export const KERNEL_FILE = 'vmlinuz';
export const INITRD_FILE = 'initrd.img';
export const MANIFEST_FILE = 'manifest.json';

/** The /init script, shipped in the package's guest/ folder (dist/src/image → ../../../guest). */
export const INIT_SCRIPT = fileURLToPath(new URL('../../../guest/initramfs/init', import.meta.url));

export interface FileRecord {
  size: number;
  sha256: string;
}

export interface ImageManifest {
  format: number;
  name: string;
  /** Every Debian package the image came from, as apt resolved it. */
  packages: { name: string; version: string }[];
  /** Kernel release (`uname -r` in the guest). */
  kernelRelease: string;
  /** Modules in the initramfs, in the order /init loads them (paths under lib/modules/<release>). */
  modules: string[];
  /** Requested modules the kernel has built in. */
  builtinModules: string[];
  /** SHA-256 of the /init script. */
  init: string;
  /** Fingerprint of apt's package lists when the versions were last checked (see `aptListsStamp`). */
  aptLists?: string;
  files: { kernel: FileRecord; initrd: FileRecord };
}

export interface ImageBuildOptions {
  /** Image directory (default: `defaultImageDir()`). */
  out?: string;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Environment of apt and dpkg-deb; its PATH decides which are found (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Keep downloaded .debs here and reuse them (default: downloaded into the staging directory, then dropped). */
  debCache?: string;
  /** Other package names, for tests. */
  packages?: { kernel?: string; busybox?: string };
  /** Rebuild even when the image directory verifies. */
  force?: boolean;
  /** Replaces the file writer, for tests that inject write errors. */
  writeFile?: (path: string, data: Uint8Array) => void;
}

export interface BuiltImage {
  dir: string;
  kernel: string;
  initrd: string;
  manifest: ImageManifest;
  /** True when the existing directory verified and nothing was built. */
  reused: boolean;
}

/** `$XDG_CACHE_HOME/typevisor/images/<name>`, else `~/.cache/typevisor/images/<name>`. */
export function defaultImageDir(name = DEFAULT_IMAGE_NAME, env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return join(base, 'typevisor', 'images', name);
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function record(data: Uint8Array): FileRecord {
  return { size: data.length, sha256: sha256(data) };
}

/** Writes and fsyncs a file. */
function writeDurable(path: string, data: Uint8Array): void {
  const fd = openSync(path, 'w', 0o644);
  try {
    let at = 0;
    while (at < data.length) at += writeSync(fd, data, at, data.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export type Verification = { ok: true; manifest: ImageManifest } | { ok: false; reason: string };

/**
 * Checks an image directory: a readable manifest of this build format and,
 * for each file, the recorded size and SHA-256. `expect` adds the fields that
 * must match what is being asked for.
 */
export function verifyImage(dir: string, expect: { packages?: string[]; init?: string } = {}): Verification {
  let manifest: ImageManifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as ImageManifest;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? 'no manifest' : `unreadable manifest (${(e as Error).message})` };
  }
  if (manifest.format !== IMAGE_FORMAT) return { ok: false, reason: `build format ${String(manifest.format)}, this typevisor writes ${IMAGE_FORMAT}` };
  if (!Array.isArray(manifest.packages) || typeof manifest.files !== 'object' || manifest.files === null) return { ok: false, reason: 'malformed manifest' };
  if (expect.init !== undefined && manifest.init !== expect.init) return { ok: false, reason: '/init changed' };
  for (const p of expect.packages ?? []) {
    if (!manifest.packages.some((m) => m.name === p)) return { ok: false, reason: `package ${p} is not in the manifest` };
  }
  for (const [what, file] of [['kernel', KERNEL_FILE], ['initrd', INITRD_FILE]] as const) {
    const rec = manifest.files[what];
    let data: Buffer;
    try {
      data = readFileSync(join(dir, file));
    } catch {
      return { ok: false, reason: `${file} is missing` };
    }
    if (!rec || data.length !== rec.size) return { ok: false, reason: `${file} has ${data.length} bytes, the manifest says ${rec?.size}` };
    if (sha256(data) !== rec.sha256) return { ok: false, reason: `${file} does not match its SHA-256` };
  }
  return { ok: true, manifest };
}

function result(dir: string, manifest: ImageManifest, reused: boolean): BuiltImage {
  return { dir, kernel: join(dir, KERNEL_FILE), initrd: join(dir, INITRD_FILE), manifest, reused };
}

/** Builds the default guest image into `options.out`, or reuses it there when it verifies. */
export async function buildImage(options: ImageBuildOptions = {}): Promise<BuiltImage> {
  const log = options.log ?? (() => {});
  const tools: HostTools = { env: options.env ?? process.env, log };
  const out = resolve(options.out ?? defaultImageDir(DEFAULT_IMAGE_NAME, tools.env));
  const names = { ...DEFAULT_PACKAGES, ...options.packages };
  const init = readFileSync(INIT_SCRIPT);
  const initSha = sha256(init);

  if (!options.force) {
    const v = verifyImage(out, { packages: [names.kernel, names.busybox], init: initSha });
    if (v.ok) {
      // apt-cache reads every package list (~0.5 s): ask it only when the lists changed since the last check.
      const stamp = aptListsStamp();
      const stale = stamp !== undefined && stamp === v.manifest.aptLists ? undefined : newerPackages(tools, v.manifest, [names.kernel, names.busybox]);
      if (stale === undefined) {
        if (stamp !== undefined && stamp !== v.manifest.aptLists) rewriteManifest(out, { ...v.manifest, aptLists: stamp });
        log(`image ${out} is up to date`);
        return result(out, v.manifest, true);
      }
      log(`rebuilding ${out}: ${stale}`);
    } else if (existsSync(out)) log(`rebuilding ${out}: ${v.reason}`);
  }

  requireApt(tools);
  const apt = new Apt(tools);
  const [metaVersion, busyboxVersion] = apt.resolve([names.kernel, names.busybox]) as [string, string];
  const kernelPkg = apt.dependency(names.kernel, metaVersion, 'linux-image-');
  const [kernelVersion] = apt.resolve([kernelPkg]) as [string];
  const stamp = aptListsStamp();

  const parent = dirname(out);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (e) {
    if (isNoSpace(e)) throw new ImageError('disk-full', `no space left on device creating ${parent}`);
    throw e;
  }
  const staging = join(parent, `.${basename(out)}.build-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(staging);
    const debs = options.debCache ?? join(staging, 'debs');
    mkdirSync(debs, { recursive: true });
    const kernelDeb = apt.download(kernelPkg, kernelVersion, debs);
    const busyboxDeb = apt.download(names.busybox, busyboxVersion, debs);

    log('unpacking packages');
    const root = join(staging, 'root');
    extractDeb(tools, kernelDeb, root);
    extractDeb(tools, busyboxDeb, root);

    const vmlinuz = readdirSync(join(root, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new ImageError('bad-package', `${kernelPkg} holds no /boot/vmlinuz-*`);
    const release = vmlinuz.slice('vmlinuz-'.length);
    const busyboxPath = join(root, 'bin', 'busybox');
    if (!existsSync(busyboxPath)) throw new ImageError('bad-package', `${names.busybox} holds no /bin/busybox`);

    const modules = resolveModules(join(root, 'lib', 'modules', release), GUEST_MODULES);
    log(`modules: ${modules.load.map((m) => m.name).join(' ')}${modules.builtin.length ? ` (built in: ${modules.builtin.join(' ')})` : ''}`);

    log('writing the initramfs');
    const kernel = readFileSync(join(root, 'boot', vmlinuz));
    const initrd = buildInitramfs({ release, busybox: readFileSync(busyboxPath), init, modules: modules.load });
    rmSync(root, { recursive: true, force: true });

    const manifest: ImageManifest = {
      format: IMAGE_FORMAT,
      name: basename(out),
      packages: [
        { name: names.kernel, version: metaVersion },
        { name: kernelPkg, version: kernelVersion },
        { name: names.busybox, version: busyboxVersion },
      ],
      kernelRelease: release,
      modules: modules.load.map((m) => m.path),
      builtinModules: modules.builtin,
      init: initSha,
      files: { kernel: record(kernel), initrd: record(initrd) },
      ...(stamp !== undefined && { aptLists: stamp }),
    };
    const image = join(staging, 'image');
    mkdirSync(image);
    const write = options.writeFile ?? writeDurable;
    write(join(image, KERNEL_FILE), kernel);
    write(join(image, INITRD_FILE), initrd);
    write(join(image, MANIFEST_FILE), new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
    fsyncDir(image);
    commit(image, out);
    log(`image ${out}: ${release}, initramfs ${(initrd.length / 2 ** 20).toFixed(1)} MiB, ${modules.load.length} modules`);
    return result(out, manifest, false);
  } catch (e) {
    if (isNoSpace(e)) {
      throw new ImageError('disk-full', `no space left on device while building the image in ${parent}: free some space (the build needs about 150 MiB there) and run it again`);
    }
    if (e instanceof ImageError && e.kind === 'disk-full') {
      throw new ImageError('disk-full', `${e.message}: free some space (the build needs about 150 MiB there) and run it again`);
    }
    throw e;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Moves the finished directory to `out`, replacing an old one; the renames
 * stay within one file system. A build that finished first in parallel is
 * replaced too: both are the same image.
 */
function commit(image: string, out: string): void {
  const old = `${dirname(out)}/.${basename(out)}.old-${randomBytes(4).toString('hex')}`;
  for (let attempt = 0; ; attempt++) {
    const hadOld = existsSync(out);
    if (hadOld) renameSync(out, old);
    try {
      renameSync(image, out);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && attempt < 3) continue;
      throw e;
    } finally {
      if (hadOld) rmSync(old, { recursive: true, force: true });
    }
    fsyncDir(dirname(out));
    return;
  }
}

/** Where apt keeps its package lists on Debian (apt-config's Dir::State::lists). */
const APT_LISTS_DIR = '/var/lib/apt/lists';

/**
 * A fingerprint of apt's package lists (names, sizes, mtimes of the
 * *_Packages* files): it changes when `apt-get update` brings new lists.
 * Undefined without lists.
 */
export function aptListsStamp(dir = APT_LISTS_DIR): string | undefined {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.includes('_Packages')).sort();
  } catch {
    return undefined;
  }
  if (names.length === 0) return undefined;
  const h = createHash('sha256');
  for (const n of names) {
    const st = statSync(join(dir, n));
    h.update(`${n}\0${st.size}\0${st.mtimeMs}\n`);
  }
  return h.digest('hex');
}

/** Replaces the manifest atomically (it is not among the files it verifies). A failure only costs a later re-check. */
function rewriteManifest(dir: string, manifest: ImageManifest): void {
  const tmp = join(dir, `.${MANIFEST_FILE}.${randomBytes(4).toString('hex')}`);
  try {
    writeDurable(tmp, new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
    renameSync(tmp, join(dir, MANIFEST_FILE));
  } catch {
    rmSync(tmp, { force: true });
  }
}

/**
 * Why a verified image is out of date against what apt would install now, or
 * undefined when it is current. Without apt, or when apt knows no version
 * (no package lists), the image stays: it still boots.
 */
function newerPackages(tools: HostTools, manifest: ImageManifest, names: string[]): string | undefined {
  if (!which('apt-cache', tools.env)) return undefined;
  const now = new Apt(tools).candidates(names);
  for (const name of names) {
    const p = manifest.packages.find((m) => m.name === name);
    if (!p) return `package ${name} is not in the manifest`;
    const v = now.get(name);
    if (v !== undefined && v !== p.version) return `apt now has ${p.name} ${v} (image: ${p.version})`;
  }
  return undefined;
}

export interface DefaultImage {
  kernel: string;
  initrd: string;
  manifest: ImageManifest;
}

/** The default guest's kernel and initrd, building them on first use (what `typevisor run` boots without --kernel). */
export async function ensureDefaultImage(options: { log?: (line: string) => void } = {}): Promise<DefaultImage> {
  const built = await buildImage({ ...(options.log && { log: options.log }) });
  return { kernel: built.kernel, initrd: built.initrd, manifest: built.manifest };
}
