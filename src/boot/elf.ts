/**
 * ELF64 loader for an x86-64 vmlinux.
 *
 * Every PT_LOAD goes to its physical address (p_paddr): vmlinux links the
 * kernel at a high virtual address and records where it expects to sit in
 * RAM in p_paddr. All headers are validated before the first byte is written,
 * so a bad file leaves guest memory untouched.
 *
 * Field offsets: System V ABI, "ELF Header" and "Program Header" (ELF-64 Object File Format 1.5).
 */
import type { GuestMemory } from '../memory/index.js';
import { MAX_GUEST_ADDRESS } from '../memory/index.js';
import { BootError, hex, mib } from './errors.js';

const ELF_MAGIC = 0x464c457f; // "\x7fELF" read as a little-endian u32
const EI_CLASS = 4;
const EI_DATA = 5;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;

const E_TYPE = 0x10;
const E_MACHINE = 0x12;
const E_ENTRY = 0x18;
const E_PHOFF = 0x20;
const E_PHENTSIZE = 0x36;
const E_PHNUM = 0x38;
const ELF64_EHDR_SIZE = 0x40;
const ELF64_PHDR_SIZE = 0x38;
/** e_phnum value meaning "the real count is in section header 0" (gABI "Extended Program Header Numbering"). */
const PN_XNUM = 0xffff;

const ET_EXEC = 2;
const EM_X86_64 = 62;

const PT_LOAD = 1;
const PT_NOTE = 4;

/** Xen's ELF note "PHYS32_ENTRY": the 32-bit PVH entry point (xen/include/public/elfnote.h). */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

const ELF_TYPES: Record<number, string> = { 0: 'ET_NONE', 1: 'relocatable object (ET_REL)', 3: 'shared object (ET_DYN)', 4: 'core dump (ET_CORE)' };
const MACHINES: Record<number, string> = {
  2: 'SPARC', 3: 'i386', 8: 'MIPS', 20: 'PowerPC', 21: 'PowerPC64', 22: 'S/390', 40: 'ARM', 43: 'SPARC64',
  50: 'IA-64', 183: 'AArch64', 243: 'RISC-V', 258: 'LoongArch',
};

export interface LoadedSegment {
  /** Guest-physical load address. */
  addr: number;
  /** Bytes in memory (p_memsz). */
  size: number;
  /** Bytes copied from the file (p_filesz); the rest is zeroed. */
  fileSize: number;
  /** Virtual address the kernel is linked at. */
  vaddr: bigint;
}

export interface ElfLoadResult {
  /** Guest-physical entry point. */
  entry: number;
  segments: LoadedSegment[];
  /** One past the highest byte any PT_LOAD occupies. */
  kernelEnd: number;
  /** 32-bit PVH entry point from the Xen PHYS32_ENTRY note, when present. */
  pvhEntry?: number;
}

export function isElf(image: Uint8Array): boolean {
  return image.length >= 4 && new DataView(image.buffer, image.byteOffset, 4).getUint32(0, true) === ELF_MAGIC;
}

interface Phdr {
  type: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

function readPhdrs(image: Uint8Array, dv: DataView): Phdr[] {
  const phoff = dv.getBigUint64(E_PHOFF, true);
  const phentsize = dv.getUint16(E_PHENTSIZE, true);
  const phnum = dv.getUint16(E_PHNUM, true);
  if (phnum === 0) throw new BootError('malformed', 'ELF file has no program headers: nothing to load');
  if (phnum === PN_XNUM) throw new BootError('unsupported', 'ELF file uses extended program header numbering (e_phnum = 0xffff)');
  if (phentsize !== ELF64_PHDR_SIZE) throw new BootError('malformed', `ELF program header size is ${phentsize}, ELF64 needs ${ELF64_PHDR_SIZE}`);
  const tableEnd = phoff + BigInt(phnum * phentsize);
  if (phoff < ELF64_EHDR_SIZE) throw new BootError('malformed', `ELF program header table at ${hex(phoff)} overlaps the ELF header`);
  if (tableEnd > BigInt(image.length)) {
    throw new BootError('truncated', `ELF program header table at ${hex(phoff)} (${phnum} entries) lies beyond the ${image.length}-byte file`);
  }
  const out: Phdr[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = Number(phoff) + i * phentsize;
    const offset = dv.getBigUint64(at + 0x08, true);
    const filesz = dv.getBigUint64(at + 0x20, true);
    const type = dv.getUint32(at, true);
    if ((type === PT_LOAD || type === PT_NOTE) && offset + filesz > BigInt(image.length)) {
      throw new BootError('truncated', `ELF segment ${i} (file offset ${hex(offset)}, ${filesz} bytes) lies beyond the ${image.length}-byte file`);
    }
    out.push({
      type,
      offset: Number(offset),
      vaddr: dv.getBigUint64(at + 0x10, true),
      paddr: dv.getBigUint64(at + 0x18, true),
      filesz,
      memsz: dv.getBigUint64(at + 0x28, true),
      align: dv.getBigUint64(at + 0x30, true),
    });
  }
  return out;
}

/** Finds the PVH entry in the PT_NOTE segments (each note: namesz, descsz, type, name, desc; 4-byte padded). */
function findPvhEntry(image: Uint8Array, dv: DataView, phdrs: Phdr[]): number | undefined {
  for (const ph of phdrs) {
    if (ph.type !== PT_NOTE) continue;
    const pad = ph.align === 8n ? 8 : 4;
    const up = (n: number) => Math.ceil(n / pad) * pad;
    let at = ph.offset;
    const end = ph.offset + Number(ph.filesz);
    while (at + 12 <= end) {
      const namesz = dv.getUint32(at, true);
      const descsz = dv.getUint32(at + 4, true);
      const type = dv.getUint32(at + 8, true);
      const nameAt = at + 12;
      const descAt = nameAt + up(namesz);
      const next = descAt + up(descsz);
      if (next > end) break;
      const isXen = namesz === 4 && String.fromCharCode(...image.subarray(nameAt, nameAt + 4)) === 'Xen\0';
      if (isXen && type === XEN_ELFNOTE_PHYS32_ENTRY && (descsz === 4 || descsz === 8)) {
        // Linux emits the value as a pointer-sized word; only the low 32 bits are meaningful.
        return dv.getUint32(descAt, true);
      }
      at = next;
    }
  }
  return undefined;
}

/** Validates the ELF header only; throws a BootError naming the first problem. */
function checkHeader(image: Uint8Array, dv: DataView): void {
  if (!isElf(image)) throw new BootError('not-a-kernel', 'not an ELF file (bad magic)');
  if (image.length < ELF64_EHDR_SIZE) throw new BootError('truncated', `ELF file of ${image.length} bytes is shorter than an ELF64 header`);
  const cls = image[EI_CLASS];
  if (cls === ELFCLASS32) throw new BootError('unsupported', 'ELF32 kernel: a 64-bit x86-64 kernel is needed');
  if (cls !== ELFCLASS64) throw new BootError('malformed', `ELF class ${cls} is neither ELF32 nor ELF64`);
  if (image[EI_DATA] !== ELFDATA2LSB) throw new BootError('unsupported', 'big-endian ELF: an x86-64 kernel is little-endian');
  const machine = dv.getUint16(E_MACHINE, true);
  if (machine !== EM_X86_64) {
    throw new BootError('unsupported', `ELF kernel is for ${MACHINES[machine] ?? `machine ${machine}`}, not x86-64`);
  }
  const type = dv.getUint16(E_TYPE, true);
  if (type !== ET_EXEC) throw new BootError('unsupported', `ELF file is a ${ELF_TYPES[type] ?? `type ${type} file`}, not an executable kernel (ET_EXEC)`);
}

/** Parses and loads a vmlinux into guest memory. */
export function loadElf(memory: GuestMemory, image: Uint8Array): ElfLoadResult {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  checkHeader(image, dv);
  const phdrs = readPhdrs(image, dv);

  const loads = phdrs.filter((p) => p.type === PT_LOAD && p.memsz > 0n);
  if (loads.length === 0) throw new BootError('malformed', 'ELF file has no loadable segment (PT_LOAD)');
  for (const p of loads) {
    if (p.filesz > p.memsz) throw new BootError('malformed', `ELF segment at ${hex(p.paddr)}: file size ${p.filesz} exceeds memory size ${p.memsz}`);
    if (p.paddr + p.memsz > BigInt(MAX_GUEST_ADDRESS)) {
      throw new BootError('malformed', `ELF segment at ${hex(p.paddr)} (+${hex(p.memsz)}) overflows the guest-physical address space`);
    }
  }
  const sorted = [...loads].sort((a, b) => (a.paddr < b.paddr ? -1 : a.paddr > b.paddr ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!;
    const b = sorted[i]!;
    if (a.paddr + a.memsz > b.paddr) {
      throw new BootError('malformed', `ELF segments overlap: ${hex(a.paddr)}+${hex(a.memsz)} and ${hex(b.paddr)}+${hex(b.memsz)}`);
    }
  }
  for (const p of sorted) {
    if (!memory.isValid(Number(p.paddr), Number(p.memsz))) {
      throw new BootError('does-not-fit', `ELF segment at ${hex(p.paddr)} (${mib(Number(p.memsz))}) does not fit in ${mib(memory.size)} of RAM`);
    }
  }

  const entry = physicalEntry(dv.getBigUint64(E_ENTRY, true), loads);
  const pvhEntry = findPvhEntry(image, dv, phdrs);

  for (const p of sorted) {
    const addr = Number(p.paddr);
    const filesz = Number(p.filesz);
    memory.write(addr, image.subarray(p.offset, p.offset + filesz));
    memory.fill(addr + filesz, Number(p.memsz) - filesz, 0);
  }
  const segments = sorted.map((p) => ({ addr: Number(p.paddr), size: Number(p.memsz), fileSize: Number(p.filesz), vaddr: p.vaddr }));
  const last = sorted[sorted.length - 1]!;
  const result: ElfLoadResult = { entry, segments, kernelEnd: Number(last.paddr + last.memsz) };
  if (pvhEntry !== undefined) result.pvhEntry = pvhEntry;
  return result;
}

/**
 * vmlinux's e_entry is normally already physical (x86's linker script sets
 * ENTRY(phys_startup_64)); a kernel linked with a virtual entry is mapped
 * through the PT_LOAD whose virtual range contains it.
 */
function physicalEntry(entry: bigint, loads: Phdr[]): number {
  for (const p of loads) if (entry >= p.paddr && entry < p.paddr + p.memsz) return Number(entry);
  for (const p of loads) if (entry >= p.vaddr && entry < p.vaddr + p.memsz) return Number(p.paddr + (entry - p.vaddr));
  throw new BootError('malformed', `ELF entry point ${hex(entry)} lies in no loadable segment`);
}
