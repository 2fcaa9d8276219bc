/**
 * Kernel image → guest memory, whatever the format: the loaders' common result.
 */
import type { GuestMemory } from '../memory/index.js';
import { CMDLINE_MAX } from '../arch/x86_64/layout.js';
import { BootError } from './errors.js';
import { isElf, loadElf } from './elf.js';
import { type BzImageOptions, isBzImage, loadBzImage } from './bzimage.js';
import type { Compression } from './decompress/index.js';

/**
 * x86 COMMAND_LINE_SIZE (arch/x86/include/asm/setup.h): the limit for a
 * vmlinux, which has no setup header to state its own.
 */
export const X86_COMMAND_LINE_SIZE = 2048;
/** initrd_addr_max that boot.rst tells loaders to assume when the kernel does not say. */
export const DEFAULT_INITRD_ADDR_MAX = 0x37ffffff;
/** Protocol version written into the minimal header of a vmlinux boot (2.15: current as of Linux 6.x). */
export const ELF_PROTOCOL_VERSION = 0x020f;

export interface KernelLoadResult {
  /** How the kernel went in: vmlinux from a bzImage decompressed here, a bzImage left compressed, or an ELF vmlinux. */
  format: 'bzimage-decompressed' | 'bzimage' | 'elf';
  /** Guest-physical 64-bit entry point. */
  entry: number;
  /** Guest-physical ranges the kernel image occupies. */
  loadedRanges: { addr: number; size: number }[];
  /** First byte above everything the kernel occupies or needs (init_size for a compressed bzImage). */
  kernelEnd: number;
  /** Bytes 0x1f1.. of a bzImage, to copy into boot_params at the same offset. */
  setupHeader?: Uint8Array;
  /** Boot protocol version of the header (the bzImage's, or the one we write for a vmlinux). */
  protocolVersion: number;
  /** Payload compression of a bzImage. */
  compression?: Compression;
  /** Why a bzImage was not decompressed on the host. */
  fallbackReason?: string;
  /** Host decompression time in milliseconds. */
  decompressMs?: number;
  /** Command line capacity in bytes, including the terminating NUL. */
  cmdlineMax: number;
  /** Highest address the initrd may occupy (inclusive, as in the setup header). */
  initrdAddrMax: number;
  /** 32-bit PVH entry point from the ELF notes (not used by the 64-bit boot path). */
  pvhEntry?: number;
}

export type LoadKernelOptions = BzImageOptions;

/** Loads a bzImage or an ELF64 vmlinux into guest memory. */
export function loadKernel(memory: GuestMemory, image: Uint8Array, options: LoadKernelOptions = {}): KernelLoadResult {
  if (image.length === 0) throw new BootError('not-a-kernel', 'not a Linux kernel: the file is empty');
  if (isBzImage(image)) return loadBzImage(memory, image, CMDLINE_MAX, options);
  if (isElf(image)) {
    const elf = loadElf(memory, image);
    const result: KernelLoadResult = {
      format: 'elf',
      entry: elf.entry,
      loadedRanges: elf.segments.map(({ addr, size }) => ({ addr, size })),
      kernelEnd: elf.kernelEnd,
      protocolVersion: ELF_PROTOCOL_VERSION,
      cmdlineMax: Math.min(X86_COMMAND_LINE_SIZE, CMDLINE_MAX),
      initrdAddrMax: DEFAULT_INITRD_ADDR_MAX,
    };
    if (elf.pvhEntry !== undefined) result.pvhEntry = elf.pvhEntry;
    return result;
  }
  throw new BootError('not-a-kernel', 'not a Linux kernel: neither a bzImage nor an ELF64 file');
}
