/**
 * bzImage: setup header parsing and loading.
 *
 * Field offsets and rules: Linux Documentation/arch/x86/boot.rst, "THE REAL-MODE
 * KERNEL HEADER" and "64-bit BOOT PROTOCOL". Offsets below are from the start
 * of the image, which is also their offset inside struct boot_params.
 *
 * Preferred path: decompress the payload on the host and load the vmlinux it
 * contains (the guest skips its own decompressor, ~4x fewer instructions to
 * /init). When that is impossible, load the protected-mode part as it is and
 * enter the in-guest decompressor's 64-bit entry point.
 */
import type { GuestMemory } from '../memory/index.js';
import { HIMEM_START } from '../arch/x86_64/layout.js';
import { BootError, hex, mib } from './errors.js';
import { isElf, loadElf } from './elf.js';
import { type Compression, decompressKernelPayload, detectCompression, UnsupportedCompressionError } from './decompress/index.js';
import type { KernelLoadResult } from './loader.js';

// Setup header fields (boot.rst, "THE REAL-MODE KERNEL HEADER"); protocol version in brackets.
export const HDR_SETUP_SECTS = 0x1f1; // u8: setup size in 512-byte sectors, minus one; 0 means 4
export const HDR_SYSSIZE = 0x1f4; // u32: protected-mode code size in 16-byte paragraphs [2.04]
export const HDR_BOOT_FLAG = 0x1fe; // u16: 0xAA55
export const HDR_JUMP = 0x200; // u16: short jump; its displacement byte (0x201) gives the header's end
export const HDR_HEADER = 0x202; // u32: "HdrS"
export const HDR_VERSION = 0x206; // u16: boot protocol version
export const HDR_TYPE_OF_LOADER = 0x210; // u8 (written by the loader)
export const HDR_LOADFLAGS = 0x211; // u8
export const HDR_CODE32_START = 0x214; // u32: protected-mode load address
export const HDR_RAMDISK_IMAGE = 0x218; // u32 (written by the loader)
export const HDR_RAMDISK_SIZE = 0x21c; // u32 (written by the loader)
export const HDR_CMD_LINE_PTR = 0x228; // u32 (written by the loader) [2.02]
export const HDR_INITRD_ADDR_MAX = 0x22c; // u32: highest address the initrd may occupy [2.03]
export const HDR_KERNEL_ALIGNMENT = 0x230; // u32 [2.05]
export const HDR_RELOCATABLE_KERNEL = 0x234; // u8 [2.05]
export const HDR_XLOADFLAGS = 0x236; // u16 [2.12]
export const HDR_CMDLINE_SIZE = 0x238; // u32: command line limit without the NUL [2.06]
export const HDR_PAYLOAD_OFFSET = 0x248; // u32: from the start of the protected-mode code [2.08]
export const HDR_PAYLOAD_LENGTH = 0x24c; // u32 [2.08]
export const HDR_PREF_ADDRESS = 0x258; // u64: preferred load address [2.10]
export const HDR_INIT_SIZE = 0x260; // u32: linear memory the kernel needs from its load address [2.10]
/** First byte after the fields of protocol 2.12 (handover_offset ends here). */
const HDR_END_2_12 = 0x268;
/** struct boot_params reserves up to here for the setup header (`_pad7` ends at edd_mbr_sig_buffer). */
export const HDR_SPACE_END = 0x290;

export const BOOT_FLAG_MAGIC = 0xaa55;
export const HDRS_MAGIC = 0x53726448; // "HdrS" read as a little-endian u32
/** Oldest protocol that has xloadflags, hence a declared 64-bit entry point. */
export const MIN_64BIT_PROTOCOL = 0x020c;
export const LOADFLAG_LOADED_HIGH = 0x01; // protected-mode code is loaded at 0x100000 (bzImage)
export const XLF_KERNEL_64 = 0x01; // has the legacy 64-bit entry point at +0x200
/** The 64-bit entry point's offset in the protected-mode code (boot.rst, "64-bit BOOT PROTOCOL"). */
export const STARTUP_64_OFFSET = 0x200;
const SECTOR = 512;

export interface SetupHeader {
  /** Setup sectors (0 in the image already replaced by 4). */
  setupSects: number;
  syssize: number;
  version: number;
  loadflags: number;
  xloadflags: number;
  code32Start: number;
  initrdAddrMax: number;
  kernelAlignment: number;
  relocatable: boolean;
  cmdlineSize: number;
  payloadOffset: number;
  payloadLength: number;
  prefAddress: number;
  initSize: number;
  /** Offset one past the header: 0x202 + the jump's displacement byte. */
  headerEnd: number;
}

export function isBzImage(image: Uint8Array): boolean {
  return image.length >= HDR_HEADER + 4 && new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(HDR_HEADER, true) === HDRS_MAGIC;
}

function versionString(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, '0')}`;
}

/** Reads and validates the setup header of a 64-bit-capable bzImage. */
export function parseSetupHeader(image: Uint8Array): SetupHeader {
  if (!isBzImage(image)) throw new BootError('not-a-kernel', 'not a bzImage: "HdrS" magic missing at offset 0x202');
  if (image.length < HDR_VERSION + 2) throw new BootError('truncated', `truncated bzImage: ${image.length} bytes, the setup header alone needs ${HDR_END_2_12}`);
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const version = dv.getUint16(HDR_VERSION, true);
  if (version < MIN_64BIT_PROTOCOL) {
    throw new BootError('unsupported', `bzImage boot protocol ${versionString(version)} is too old for the 64-bit boot protocol (2.12 or later is needed)`);
  }
  if (image.length < HDR_END_2_12) throw new BootError('truncated', `truncated bzImage: ${image.length} bytes, the setup header alone needs ${HDR_END_2_12}`);
  if (dv.getUint16(HDR_BOOT_FLAG, true) !== BOOT_FLAG_MAGIC) throw new BootError('malformed', `bzImage boot_flag is ${hex(dv.getUint16(HDR_BOOT_FLAG, true))}, not 0xaa55`);
  const headerEnd = HDR_HEADER + image[HDR_JUMP + 1]!;
  if (headerEnd < HDR_END_2_12 || headerEnd > HDR_SPACE_END) {
    throw new BootError('malformed', `bzImage setup header ends at ${hex(headerEnd)}, outside ${hex(HDR_END_2_12)}..${hex(HDR_SPACE_END)}`);
  }
  const hdr: SetupHeader = {
    setupSects: image[HDR_SETUP_SECTS] || 4,
    syssize: dv.getUint32(HDR_SYSSIZE, true),
    version,
    loadflags: image[HDR_LOADFLAGS]!,
    xloadflags: dv.getUint16(HDR_XLOADFLAGS, true),
    code32Start: dv.getUint32(HDR_CODE32_START, true),
    initrdAddrMax: dv.getUint32(HDR_INITRD_ADDR_MAX, true),
    kernelAlignment: dv.getUint32(HDR_KERNEL_ALIGNMENT, true),
    relocatable: image[HDR_RELOCATABLE_KERNEL] !== 0,
    cmdlineSize: dv.getUint32(HDR_CMDLINE_SIZE, true),
    payloadOffset: dv.getUint32(HDR_PAYLOAD_OFFSET, true),
    payloadLength: dv.getUint32(HDR_PAYLOAD_LENGTH, true),
    prefAddress: Number(dv.getBigUint64(HDR_PREF_ADDRESS, true) & 0xf_ffff_ffff_ffffn),
    initSize: dv.getUint32(HDR_INIT_SIZE, true),
    headerEnd,
  };
  if (!(hdr.xloadflags & XLF_KERNEL_64)) throw new BootError('unsupported', 'bzImage has no 64-bit entry point (XLF_KERNEL_64 not set in xloadflags)');
  if (!(hdr.loadflags & LOADFLAG_LOADED_HIGH)) throw new BootError('unsupported', 'zImage (LOADED_HIGH not set): only bzImage kernels are supported');
  const pmStart = (hdr.setupSects + 1) * SECTOR;
  const pmSize = hdr.syssize * 16;
  if (pmSize === 0) throw new BootError('malformed', 'bzImage syssize is 0: no protected-mode kernel');
  if (image.length < pmStart + pmSize) {
    throw new BootError('truncated', `truncated bzImage: the header declares ${pmStart + pmSize} bytes, the file has ${image.length}`);
  }
  if (hdr.payloadLength === 0 || hdr.payloadOffset + hdr.payloadLength > pmSize) {
    throw new BootError('malformed', `bzImage payload (${hex(hdr.payloadOffset)}+${hdr.payloadLength}) lies outside the ${pmSize}-byte protected-mode kernel`);
  }
  return hdr;
}

export interface BzImageOptions {
  /** Decompress on the host (default true); false always loads the compressed kernel. */
  decompress?: boolean;
}

/** Command line capacity including the NUL: the kernel's limit, capped by the machine's buffer. */
function cmdlineCapacity(hdr: SetupHeader, cap: number): number {
  return Math.min(hdr.cmdlineSize + 1, cap);
}

export function loadBzImage(memory: GuestMemory, image: Uint8Array, cmdlineCap: number, options: BzImageOptions = {}): KernelLoadResult {
  const hdr = parseSetupHeader(image);
  const pmStart = (hdr.setupSects + 1) * SECTOR;
  const pmSize = hdr.syssize * 16;
  const payload = image.subarray(pmStart + hdr.payloadOffset, pmStart + hdr.payloadOffset + hdr.payloadLength);
  const common = {
    setupHeader: image.slice(HDR_SETUP_SECTS, hdr.headerEnd),
    cmdlineMax: cmdlineCapacity(hdr, cmdlineCap),
    initrdAddrMax: hdr.initrdAddrMax,
    protocolVersion: hdr.version,
  };
  const compression: Compression | undefined = detectCompression(payload);

  let fallbackReason = 'host decompression disabled';
  if (options.decompress === false) {
    // In-guest decompression was asked for.
  } else if (compression === undefined) {
    const magic = [...payload.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    fallbackReason = `unknown compression (magic ${magic}), falling back to in-guest decompression`;
  } else {
    const t0 = performance.now();
    let vmlinux: Uint8Array | undefined;
    try {
      vmlinux = decompressKernelPayload(payload, compression);
    } catch (e) {
      if (!(e instanceof UnsupportedCompressionError)) {
        throw new BootError('corrupt-payload', `bzImage payload (${compression}) does not decompress: ${(e as Error).message}`);
      }
      fallbackReason = `${e.message}, falling back to in-guest decompression`;
    }
    if (vmlinux) {
      const decompressMs = performance.now() - t0;
      if (!isElf(vmlinux)) throw new BootError('corrupt-payload', `bzImage payload (${compression}) decompressed to something that is not an ELF file`);
      const elf = loadElf(memory, vmlinux);
      const result: KernelLoadResult = {
        format: 'bzimage-decompressed',
        entry: elf.entry,
        loadedRanges: elf.segments.map(({ addr, size }) => ({ addr, size })),
        kernelEnd: elf.kernelEnd,
        compression,
        decompressMs,
        ...common,
      };
      if (elf.pvhEntry !== undefined) result.pvhEntry = elf.pvhEntry;
      return result;
    }
  }

  // In-guest decompression: the protected-mode code at pref_address, entered at +0x200.
  // The decompressor works inside [load, load + init_size), so all of it must be RAM.
  const load = hdr.prefAddress >= HIMEM_START ? hdr.prefAddress : HIMEM_START;
  const span = Math.max(hdr.initSize, pmSize);
  if (!memory.isValid(load, span)) {
    throw new BootError('does-not-fit', `kernel needs ${mib(span)} at ${hex(load)} (init_size) but does not fit in ${mib(memory.size)} of RAM`);
  }
  memory.write(load, image.subarray(pmStart, pmStart + pmSize));
  const result: KernelLoadResult = {
    format: 'bzimage',
    entry: load + STARTUP_64_OFFSET,
    loadedRanges: [{ addr: load, size: pmSize }],
    kernelEnd: load + span,
    fallbackReason,
    ...common,
  };
  if (compression !== undefined) result.compression = compression;
  return result;
}
