/**
 * Loads an x86-64 Linux executable (ET_EXEC, or ET_DYN: PIE and static-PIE)
 * into an AddressSpace and builds the initial process stack, as Linux's
 * fs/binfmt_elf.c does. A dynamically linked program names its interpreter
 * (PT_INTERP); the caller loads that too (kernel.ts).
 *
 * Every header is checked before anything is mapped. Field offsets: System V
 * ABI (ELF-64 Object File Format 1.5); stack layout: System V AMD64 psABI,
 * 3.4.1 "Initial Stack and Register State".
 */
import { PAGE_SIZE } from '../engine/soft/mmu.js';
import { AddressSpace, pageAlignUp, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP } from './address-space.js';

export class ElfError extends Error {
  override name = 'ElfError';
}

const ELF_MAGIC = 0x464c457f; // "\x7fELF" as a little-endian u32
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const EM_X86_64 = 62;
const PT_LOAD = 1;
const PT_INTERP = 3;
const PT_PHDR = 6;
const PF_X = 1;
const PF_W = 2;
const PF_R = 4;
const EHDR_SIZE = 64;
const PHDR_SIZE = 56;

/** Where Linux puts an ET_DYN executable without randomisation (ELF_ET_DYN_BASE on x86-64: 2/3 of TASK_SIZE, page-aligned). */
export const ET_DYN_BASE = 0x555555554000;
/** Top of the initial stack (TASK_SIZE without randomisation) and its reserved size (RLIMIT_STACK default). */
export const STACK_TOP = USER_TOP;
export const STACK_SIZE = 8 * 1024 * 1024;

/** Auxiliary vector types (include/uapi/linux/auxvec.h). */
export const AT_NULL = 0;
export const AT_PHDR = 3;
export const AT_PHENT = 4;
export const AT_PHNUM = 5;
export const AT_PAGESZ = 6;
export const AT_BASE = 7;
export const AT_FLAGS = 8;
export const AT_ENTRY = 9;
export const AT_UID = 11;
export const AT_EUID = 12;
export const AT_GID = 13;
export const AT_EGID = 14;
export const AT_PLATFORM = 15;
export const AT_HWCAP = 16;
export const AT_CLKTCK = 17;
export const AT_SECURE = 23;
export const AT_RANDOM = 25;
export const AT_HWCAP2 = 26;
export const AT_EXECFN = 31;

export interface ElfImage {
  entry: number;
  /** PT_INTERP: the program interpreter (dynamic loader) path, if any. */
  interp?: string;
  /** Address of the program headers in memory (AT_PHDR). */
  phdr: number;
  phnum: number;
  /** First byte after the highest segment: where brk starts. */
  brk: number;
  /** Load bias (0 for ET_EXEC). */
  bias: number;
}

interface Segment {
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
  flags: number;
}

function u64(v: DataView, off: number): number {
  const n = v.getUint32(off + 4, true) * 4294967296 + v.getUint32(off, true);
  if (n > Number.MAX_SAFE_INTEGER) throw new ElfError(`field at 0x${off.toString(16)} is out of range`);
  return n;
}

/**
 * Validates the headers of `file` and maps its PT_LOAD segments into `as`.
 * An ET_DYN file goes at `dynBase` (default: where Linux puts a PIE).
 */
export function loadElf(file: Uint8Array, as: AddressSpace, dynBase = ET_DYN_BASE): ElfImage {
  if (file.length < EHDR_SIZE) throw new ElfError(`file too short for an ELF header (${file.length} bytes)`);
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (v.getUint32(0, true) !== ELF_MAGIC) throw new ElfError('not an ELF file (bad magic)');
  if (file[4] !== ELFCLASS64) throw new ElfError('not a 64-bit ELF file');
  if (file[5] !== ELFDATA2LSB) throw new ElfError('not a little-endian ELF file');
  const type = v.getUint16(0x10, true);
  if (v.getUint16(0x12, true) !== EM_X86_64) throw new ElfError(`not an x86-64 ELF file (e_machine ${v.getUint16(0x12, true)})`);
  if (type !== ET_EXEC && type !== ET_DYN) throw new ElfError(`not an executable (e_type ${type})`);
  const entry = u64(v, 0x18);
  const phoff = u64(v, 0x20);
  const phentsize = v.getUint16(0x36, true);
  const phnum = v.getUint16(0x38, true);
  if (phentsize !== PHDR_SIZE) throw new ElfError(`unexpected program header size ${phentsize}`);
  if (phnum === 0 || phnum > 128) throw new ElfError(`bad program header count ${phnum}`);
  if (phoff + phnum * PHDR_SIZE > file.length) throw new ElfError('program headers run past the end of the file');

  const loads: Segment[] = [];
  let phdrVaddr = -1;
  let interp: string | undefined;
  for (let k = 0; k < phnum; k++) {
    const o = phoff + k * PHDR_SIZE;
    const ptype = v.getUint32(o, true);
    const seg: Segment = {
      flags: v.getUint32(o + 4, true), offset: u64(v, o + 8), vaddr: u64(v, o + 16), filesz: u64(v, o + 32), memsz: u64(v, o + 40),
    };
    if (ptype === PT_PHDR) phdrVaddr = seg.vaddr;
    if (ptype === PT_INTERP) {
      if (seg.offset + seg.filesz > file.length || seg.filesz < 2 || seg.filesz > 4096) throw new ElfError('bad PT_INTERP');
      interp = new TextDecoder().decode(file.subarray(seg.offset, seg.offset + seg.filesz - 1));
    }
    if (ptype !== PT_LOAD) continue;
    if (seg.filesz > seg.memsz) throw new ElfError(`segment ${k}: p_filesz > p_memsz`);
    if (seg.offset + seg.filesz > file.length) throw new ElfError(`segment ${k} runs past the end of the file`);
    if ((seg.offset % PAGE_SIZE) !== (seg.vaddr % PAGE_SIZE)) throw new ElfError(`segment ${k}: p_offset and p_vaddr disagree modulo the page size`);
    loads.push(seg);
  }
  if (loads.length === 0) throw new ElfError('no PT_LOAD segment');
  loads.sort((a, b) => a.vaddr - b.vaddr);
  const bias = type === ET_DYN ? dynBase - Math.floor((loads[0] as Segment).vaddr / PAGE_SIZE) * PAGE_SIZE : 0;
  let brk = 0;
  for (const s of loads) {
    const start = Math.floor((s.vaddr + bias) / PAGE_SIZE) * PAGE_SIZE;
    const end = pageAlignUp(s.vaddr + bias + s.memsz);
    if (start < 0x10000 || end > STACK_TOP - STACK_SIZE) throw new ElfError(`segment at 0x${s.vaddr.toString(16)} outside user space`);
    brk = Math.max(brk, s.vaddr + bias + s.memsz);
  }
  for (let k = 1; k < loads.length; k++) {
    const a = loads[k - 1] as Segment, b = loads[k] as Segment;
    if (pageAlignUp(a.vaddr + a.memsz) > Math.floor(b.vaddr / PAGE_SIZE) * PAGE_SIZE && a.vaddr + a.memsz > b.vaddr) {
      throw new ElfError('PT_LOAD segments overlap');
    }
  }

  for (const s of loads) {
    const start = Math.floor((s.vaddr + bias) / PAGE_SIZE) * PAGE_SIZE;
    const end = pageAlignUp(s.vaddr + bias + s.memsz);
    const prot = (s.flags & PF_R ? PROT_READ : 0) | (s.flags & PF_W ? PROT_WRITE : 0) | (s.flags & PF_X ? PROT_EXEC : 0);
    // Segments may share a boundary page; keep the union of permissions there.
    const prev = as.regionAt(start);
    if (prev) {
      as.protect(start, PAGE_SIZE, prev.prot | prot);
      if (end > start + PAGE_SIZE) as.map(start + PAGE_SIZE, end - start - PAGE_SIZE, prot, 'elf');
    } else {
      as.map(start, end - start, prot, 'elf');
    }
    as.writeUnchecked(s.vaddr + bias, file.subarray(s.offset, s.offset + s.filesz));
  }
  // AT_PHDR: PT_PHDR if present, else the headers inside the first segment that covers them.
  let phdr = phdrVaddr >= 0 ? phdrVaddr + bias : -1;
  if (phdr < 0) {
    const s = loads.find((g) => g.offset <= phoff && phoff + phnum * PHDR_SIZE <= g.offset + g.filesz);
    phdr = s ? s.vaddr + (phoff - s.offset) + bias : 0;
  }
  const img: ElfImage = { entry: entry + bias, phdr, phnum, brk, bias };
  if (interp !== undefined) img.interp = interp;
  return img;
}

/** Bytes of address space the PT_LOAD segments of `file` span (to place an interpreter). */
export function loadSpan(file: Uint8Array): number {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  if (file.length < EHDR_SIZE || v.getUint32(0, true) !== ELF_MAGIC) throw new ElfError('interpreter is not an ELF file');
  const phoff = u64(v, 0x20);
  const phnum = v.getUint16(0x38, true);
  let lo = Infinity, hi = 0;
  for (let k = 0; k < phnum; k++) {
    const o = phoff + k * PHDR_SIZE;
    if (o + PHDR_SIZE > file.length) throw new ElfError('interpreter program headers run past the end of the file');
    if (v.getUint32(o, true) !== PT_LOAD) continue;
    const va = u64(v, o + 16), mem = u64(v, o + 40);
    lo = Math.min(lo, Math.floor(va / PAGE_SIZE) * PAGE_SIZE);
    hi = Math.max(hi, va + mem);
  }
  if (hi === 0) throw new ElfError('interpreter has no PT_LOAD segment');
  return pageAlignUp(hi - lo);
}

export interface StackSpec {
  /** AT_BASE: where the interpreter was loaded (0 without one). */
  base?: number;
  /** AT_ENTRY when an interpreter runs first: the program's own entry point. */
  programEntry?: number;
  argv: readonly string[];
  envp: readonly string[];
  execfn: string;
  hwcap: number;
  random: Uint8Array;
}

/**
 * Maps the stack and writes argc, argv, envp and auxv (psABI Figure 3.9).
 * Returns the initial RSP (16-byte aligned, pointing at argc).
 */
export function buildStack(as: AddressSpace, img: ElfImage, spec: StackSpec): number {
  as.map(STACK_TOP - STACK_SIZE, STACK_SIZE, PROT_READ | PROT_WRITE, 'stack');
  const enc = new TextEncoder();
  let sp = STACK_TOP - 8; // a zero word at the very top, as Linux leaves one
  const put = (bytes: Uint8Array): number => {
    sp -= bytes.length;
    as.writeBytes(sp, bytes);
    return sp;
  };
  const cstr = (s: string): number => {
    const b = enc.encode(s);
    const z = new Uint8Array(b.length + 1);
    z.set(b);
    return put(z);
  };
  const execfn = cstr(spec.execfn);
  const envAddrs = spec.envp.map(cstr);
  const argAddrs = spec.argv.map(cstr);
  const platform = cstr('x86_64');
  sp = Math.floor(sp / 16) * 16;
  const random = put(spec.random.subarray(0, 16));
  const aux: [number, number][] = [
    [AT_HWCAP, spec.hwcap], [AT_PAGESZ, PAGE_SIZE], [AT_CLKTCK, 100], [AT_PHDR, img.phdr], [AT_PHENT, PHDR_SIZE],
    [AT_PHNUM, img.phnum], [AT_BASE, spec.base ?? 0], [AT_FLAGS, 0], [AT_ENTRY, spec.programEntry ?? img.entry], [AT_UID, uid()], [AT_EUID, uid()],
    [AT_GID, gid()], [AT_EGID, gid()], [AT_SECURE, 0], [AT_RANDOM, random], [AT_HWCAP2, 0], [AT_EXECFN, execfn],
    [AT_PLATFORM, platform], [AT_NULL, 0],
  ];
  const words: number[] = [spec.argv.length, ...argAddrs, 0, ...envAddrs, 0];
  for (const [k, val] of aux) words.push(k, val);
  sp -= words.length * 8;
  sp = Math.floor(sp / 16) * 16;
  const buf = new Uint8Array(words.length * 8);
  const dv = new DataView(buf.buffer);
  words.forEach((w, k) => {
    dv.setUint32(k * 8, w % 4294967296, true);
    dv.setUint32(k * 8 + 4, Math.floor(w / 4294967296), true);
  });
  as.writeBytes(sp, buf);
  return sp;
}

function uid(): number {
  return process.getuid?.() ?? 0;
}

function gid(): number {
  return process.getgid?.() ?? 0;
}
