/**
 * struct boot_params, the "zero page" of the x86 boot protocol.
 *
 * Layout: arch/x86/include/uapi/asm/bootparam.h; the setup header part
 * (0x1f1..) follows Documentation/arch/x86/boot.rst. Everything not written
 * here is zero, which the kernel takes as "not provided" — notably the
 * `sentinel` byte, whose non-zero value would make it distrust the page.
 */
import type { GuestMemory } from '../memory/index.js';
import { type E820Entry, PAGE_SIZE } from '../arch/x86_64/layout.js';
import { BootError, hex } from './errors.js';
import {
  BOOT_FLAG_MAGIC,
  HDR_BOOT_FLAG,
  HDR_CMD_LINE_PTR,
  HDR_CMDLINE_SIZE,
  HDR_HEADER,
  HDR_KERNEL_ALIGNMENT,
  HDR_LOADFLAGS,
  HDR_RAMDISK_IMAGE,
  HDR_RAMDISK_SIZE,
  HDR_SETUP_SECTS,
  HDR_SPACE_END,
  HDR_TYPE_OF_LOADER,
  HDR_VERSION,
  HDRS_MAGIC,
  LOADFLAG_LOADED_HIGH,
} from './bzimage.js';

export const BOOT_PARAMS_SIZE = PAGE_SIZE;
// Fields outside the setup header (bootparam.h).
export const BP_ACPI_RSDP_ADDR = 0x070; // u64: physical address of the ACPI RSDP
export const BP_EXT_RAMDISK_IMAGE = 0x0c0; // u32: ramdisk_image bits 63:32
export const BP_EXT_RAMDISK_SIZE = 0x0c4; // u32: ramdisk_size bits 63:32
export const BP_EXT_CMD_LINE_PTR = 0x0c8; // u32: cmd_line_ptr bits 63:32
export const BP_E820_ENTRIES = 0x1e8; // u8: entries used in e820_table
export const BP_SENTINEL = 0x1ef; // u8: must stay 0 (boot.rst "sentinel")
export const BP_E820_TABLE = 0x2d0; // struct boot_e820_entry[128]: u64 addr, u64 size, u32 type (packed)
export const E820_ENTRY_SIZE = 20;
/** E820_MAX_ENTRIES_ZEROPAGE */
export const E820_MAX_ENTRIES = 128;
/** type_of_loader 0xff: "undefined" boot loader (boot.rst "type_of_loader"); there is no ID for us. */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** Physical alignment written into a vmlinux's minimal header: CONFIG_PHYSICAL_ALIGN's x86-64 default. */
export const DEFAULT_KERNEL_ALIGNMENT = 0x200000;

export interface BootParamsConfig {
  /** Setup header bytes from the bzImage (offset 0x1f1 onward); absent for a vmlinux. */
  setupHeader?: Uint8Array;
  /** Protocol version for the minimal header of a vmlinux. */
  protocolVersion: number;
  cmdlineAddr: number;
  /** Command line length in bytes, without the NUL. */
  cmdlineLength: number;
  initrd?: { addr: number; size: number };
  e820: readonly E820Entry[];
  /** ACPI RSDP address, 0 if none. */
  rsdpAddr: number;
}

function split64(v: number): [lo: number, hi: number] {
  return [v >>> 0, Math.floor(v / 2 ** 32) >>> 0];
}

/** Builds the 4 KiB boot_params page. */
export function buildBootParams(config: BootParamsConfig): Uint8Array {
  const page = new Uint8Array(BOOT_PARAMS_SIZE);
  const dv = new DataView(page.buffer);
  if (config.setupHeader) {
    if (HDR_SETUP_SECTS + config.setupHeader.length > HDR_SPACE_END) {
      throw new BootError('malformed', `setup header of ${config.setupHeader.length} bytes overruns boot_params at ${hex(HDR_SPACE_END)}`);
    }
    page.set(config.setupHeader, HDR_SETUP_SECTS);
  } else {
    dv.setUint16(HDR_BOOT_FLAG, BOOT_FLAG_MAGIC, true);
    dv.setUint32(HDR_HEADER, HDRS_MAGIC, true);
    dv.setUint16(HDR_VERSION, config.protocolVersion, true);
    dv.setUint32(HDR_KERNEL_ALIGNMENT, DEFAULT_KERNEL_ALIGNMENT, true);
    // A vmlinux has no header to state its limit; report the length we wrote.
    dv.setUint32(HDR_CMDLINE_SIZE, config.cmdlineLength, true);
  }
  page[HDR_TYPE_OF_LOADER] = LOADER_TYPE_UNDEFINED;
  page[HDR_LOADFLAGS] = page[HDR_LOADFLAGS]! | LOADFLAG_LOADED_HIGH;

  const [cmdLo, cmdHi] = split64(config.cmdlineAddr);
  dv.setUint32(HDR_CMD_LINE_PTR, cmdLo, true);
  dv.setUint32(BP_EXT_CMD_LINE_PTR, cmdHi, true);

  if (config.initrd) {
    const [imgLo, imgHi] = split64(config.initrd.addr);
    const [sizeLo, sizeHi] = split64(config.initrd.size);
    dv.setUint32(HDR_RAMDISK_IMAGE, imgLo, true);
    dv.setUint32(BP_EXT_RAMDISK_IMAGE, imgHi, true);
    dv.setUint32(HDR_RAMDISK_SIZE, sizeLo, true);
    dv.setUint32(BP_EXT_RAMDISK_SIZE, sizeHi, true);
  }

  if (config.e820.length > E820_MAX_ENTRIES) throw new BootError('malformed', `${config.e820.length} e820 entries exceed the zero page's ${E820_MAX_ENTRIES}`);
  config.e820.forEach((e, i) => {
    const at = BP_E820_TABLE + i * E820_ENTRY_SIZE;
    dv.setBigUint64(at, BigInt(e.addr), true);
    dv.setBigUint64(at + 8, BigInt(e.size), true);
    dv.setUint32(at + 16, e.type, true);
  });
  page[BP_E820_ENTRIES] = config.e820.length;
  dv.setBigUint64(BP_ACPI_RSDP_ADDR, BigInt(config.rsdpAddr), true);
  return page;
}

/** Writes boot_params at `zeroPage` in guest memory. */
export function writeBootParams(memory: GuestMemory, zeroPage: number, config: BootParamsConfig): void {
  memory.write(zeroPage, buildBootParams(config));
}
