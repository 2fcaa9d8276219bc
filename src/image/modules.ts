/**
 * Kernel modules for the initramfs: which files, in which load order.
 *
 * Debian's kernel package ships no modules.dep (its postinst runs depmod on
 * the installed system), so the order comes from where depmod's own answer
 * comes from: each module's `.modinfo` section, whose `depends=` list modpost
 * wrote at kernel build time from the symbols the module imports. Modules the
 * kernel has built in (`modules.builtin`) need no file and are skipped.
 *
 * Compressed modules (.ko.xz, .ko.zst, .ko.gz; Debian 12's kernels are built
 * with CONFIG_MODULE_COMPRESS_NONE, later ones compress) are decompressed
 * here, so insmod gets plain ELF whatever busybox was built with (busybox
 * 1.35 reads no zstd at all) and the kernel needs no in-kernel decompressor.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import { decompressXz } from '../boot/decompress/xz.js';
import { ImageError } from './errors.js';

/** ELF64 header fields (System V gABI, "ELF Header"). */
const EI_CLASS = 4;
const ELFCLASS64 = 2;
const E_SHOFF = 0x28;
const E_SHENTSIZE = 0x3a;
const E_SHNUM = 0x3c;
const E_SHSTRNDX = 0x3e;
const ELF64_EHDR_SIZE = 0x40;
/** Elf64_Shdr fields. */
const SH_NAME = 0x00;
const SH_OFFSET = 0x18;
const SH_SIZE = 0x20;
const ELF64_SHDR_SIZE = 0x40;

const MODULE_SUFFIXES = ['.ko', '.ko.xz', '.ko.zst', '.ko.gz'] as const;

/** Module names treat '-' and '_' alike (kmod's modname_normalize). */
export function normalizeModuleName(name: string): string {
  return name.replace(/-/g, '_');
}

function elfError(what: string, why: string): ImageError {
  return new ImageError('bad-package', `${what}: not a valid kernel module (${why})`);
}

/** The key=value strings of a module's `.modinfo` section, in file order. */
export function readModinfo(elf: Uint8Array, what = 'module'): { key: string; value: string }[] {
  if (elf.length < ELF64_EHDR_SIZE || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) throw elfError(what, 'no ELF magic');
  if (elf[EI_CLASS] !== ELFCLASS64) throw elfError(what, 'not ELF64');
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const shoff = Number(view.getBigUint64(E_SHOFF, true));
  const shentsize = view.getUint16(E_SHENTSIZE, true);
  const shnum = view.getUint16(E_SHNUM, true);
  const shstrndx = view.getUint16(E_SHSTRNDX, true);
  if (shentsize < ELF64_SHDR_SIZE || shstrndx >= shnum || shoff + shnum * shentsize > elf.length) throw elfError(what, 'section headers out of bounds');
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    const offset = Number(view.getBigUint64(at + SH_OFFSET, true));
    const size = Number(view.getBigUint64(at + SH_SIZE, true));
    if (offset + size > elf.length) throw elfError(what, `section ${i} out of bounds`);
    return { name: view.getUint32(at + SH_NAME, true), bytes: elf.subarray(offset, offset + size) };
  };
  const strtab = section(shstrndx).bytes;
  const nameAt = (off: number) => {
    const end = strtab.indexOf(0, off);
    return new TextDecoder().decode(strtab.subarray(off, end < 0 ? strtab.length : end));
  };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameAt(s.name) !== '.modinfo') continue;
    return new TextDecoder()
      .decode(s.bytes)
      .split('\0')
      .filter((kv) => kv.includes('='))
      .map((kv) => ({ key: kv.slice(0, kv.indexOf('=')), value: kv.slice(kv.indexOf('=') + 1) }));
  }
  throw elfError(what, 'no .modinfo section');
}

/** The plain ELF bytes of a module file, decompressing by suffix. */
export function decompressModule(file: string, bytes: Uint8Array): Uint8Array {
  try {
    if (file.endsWith('.ko.xz')) return decompressXz(bytes);
    if (file.endsWith('.ko.zst')) return zstdDecompress(bytes);
    if (file.endsWith('.ko.gz')) return gunzipSync(bytes);
  } catch (e) {
    throw new ImageError('bad-package', `${file}: cannot decompress (${(e as Error).message})`);
  }
  return bytes;
}

export interface ModuleFile {
  /** Normalised module name, e.g. "virtio_mmio". */
  name: string;
  /** Path in the initramfs under lib/modules/<release>/, always ending in .ko: "kernel/drivers/virtio/virtio_mmio.ko". */
  path: string;
  /** Uncompressed ELF. */
  data: Uint8Array;
}

export interface ModuleSet {
  /** Modules to insmod, each after everything it depends on. */
  load: ModuleFile[];
  /** Requested or needed modules the kernel has built in. */
  builtin: string[];
}

/** Every module file under `<modulesDir>/kernel`, by normalised name. */
function indexModules(modulesDir: string): Map<string, string> {
  const index = new Map<string, string>();
  const walk = (rel: string) => {
    for (const ent of readdirSync(join(modulesDir, rel), { withFileTypes: true })) {
      const path = `${rel}/${ent.name}`;
      if (ent.isDirectory()) walk(path);
      else {
        const suffix = MODULE_SUFFIXES.find((s) => ent.name.endsWith(s));
        if (suffix) index.set(normalizeModuleName(ent.name.slice(0, -suffix.length)), path);
      }
    }
  };
  walk('kernel');
  return index;
}

/** Names of the modules listed in modules.builtin ("kernel/fs/ext4/ext4.ko" lines). */
function builtinModules(modulesDir: string): Set<string> {
  const file = join(modulesDir, 'modules.builtin');
  if (!existsSync(file)) return new Set();
  return new Set(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l.endsWith('.ko'))
      .map((l) => normalizeModuleName(l.slice(l.lastIndexOf('/') + 1, -'.ko'.length))),
  );
}

/**
 * The modules `wanted` needs, in load order, from an unpacked
 * `lib/modules/<release>` directory. A wanted module that is neither a file
 * nor built in is an error; so is a dependency cycle.
 */
export function resolveModules(modulesDir: string, wanted: readonly string[]): ModuleSet {
  if (!existsSync(join(modulesDir, 'kernel'))) throw new ImageError('bad-package', `${modulesDir} has no kernel/ directory of modules`);
  const index = indexModules(modulesDir);
  const builtin = builtinModules(modulesDir);
  const load: ModuleFile[] = [];
  const builtinUsed: string[] = [];
  const done = new Set<string>();
  const visiting: string[] = [];
  const visit = (name: string, neededBy: string | undefined) => {
    if (done.has(name)) return;
    if (visiting.includes(name)) throw new ImageError('bad-package', `module dependency cycle: ${[...visiting, name].join(' -> ')}`);
    const file = index.get(name);
    if (file === undefined) {
      if (builtin.has(name)) {
        done.add(name);
        builtinUsed.push(name);
        return;
      }
      throw new ImageError('bad-package', `kernel module "${name}"${neededBy ? ` (needed by ${neededBy})` : ''} is neither in ${modulesDir} nor built in`);
    }
    visiting.push(name);
    const data = decompressModule(file, readFileSync(join(modulesDir, file)));
    const deps = readModinfo(data, file).find((kv) => kv.key === 'depends')?.value ?? '';
    for (const dep of deps.split(',').filter((d) => d !== '')) visit(normalizeModuleName(dep), name);
    visiting.pop();
    done.add(name);
    load.push({ name, path: file.replace(/\.ko\.(xz|zst|gz)$/, '.ko'), data });
  };
  for (const w of wanted) visit(normalizeModuleName(w), undefined);
  return { load, builtin: builtinUsed };
}
