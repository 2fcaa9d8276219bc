/**
 * Linux x86-64 direct boot: kernel loaders, command line, initrd, boot_params
 * and the boot CPU state. `prepareLinuxBoot` is the one call the machine makes.
 */
import type { GuestMemory } from '../memory/index.js';
import type { BootCpuState } from '../engine/engine.js';
import { CMDLINE_ADDR, e820Map, ZERO_PAGE_ADDR } from '../arch/x86_64/layout.js';
import { Cmdline } from './cmdline.js';
import { bootCpuState } from './cpu.js';
import { writeBootParams } from './bootparams.js';
import { type InitrdPlacement, loadInitrd } from './initrd.js';
import { type KernelLoadResult, type LoadKernelOptions, loadKernel } from './loader.js';

export { Cmdline, CmdlineError, type CmdlineErrorKind } from './cmdline.js';
export { BootError, type BootErrorKind } from './errors.js';
export { loadElf, isElf, type ElfLoadResult, type LoadedSegment } from './elf.js';
export { loadBzImage, parseSetupHeader, isBzImage, type SetupHeader, type BzImageOptions } from './bzimage.js';
export { loadKernel, type KernelLoadResult, type LoadKernelOptions } from './loader.js';
export { placeInitrd, loadInitrd, type InitrdPlacement, type InitrdLimits } from './initrd.js';
export { buildBootParams, writeBootParams, type BootParamsConfig } from './bootparams.js';
export { bootCpuState, writeIdentityPageTables, BOOT_CS, BOOT_DS } from './cpu.js';
export { detectCompression, decompressKernelPayload, type Compression } from './decompress/index.js';

export interface LinuxBootConfig {
  kernel: Uint8Array;
  initrd?: Uint8Array;
  cmdline: string;
  /** Guest-physical address of the ACPI RSDP (0: none). */
  rsdpAddr: number;
  /** Guest RAM size, for the e820 map. */
  memBytes: number;
  /** Loader options (host decompression on/off). */
  loader?: LoadKernelOptions;
}

export interface LinuxBoot {
  cpu: BootCpuState;
  kernel: KernelLoadResult;
  initrd?: InitrdPlacement;
  /** The command line as written to guest memory. */
  cmdline: string;
}

/**
 * Loads kernel and initrd, writes the command line, boot_params, GDT and page
 * tables, and returns the boot CPU's state. Throws BootError or CmdlineError
 * with a message a user can act on.
 */
export function prepareLinuxBoot(memory: GuestMemory, config: LinuxBootConfig): LinuxBoot {
  const kernel = loadKernel(memory, config.kernel, config.loader);
  const cmdline = new Cmdline(kernel.cmdlineMax).insertStr(config.cmdline);
  const cmdlineBytes = cmdline.toBytes();
  memory.write(CMDLINE_ADDR, cmdlineBytes);

  const initrd = config.initrd ? loadInitrd(memory, config.initrd, kernel) : undefined;

  const params: Parameters<typeof writeBootParams>[2] = {
    protocolVersion: kernel.protocolVersion,
    cmdlineAddr: CMDLINE_ADDR,
    cmdlineLength: cmdlineBytes.length - 1,
    e820: e820Map(config.memBytes),
    rsdpAddr: config.rsdpAddr,
  };
  if (kernel.setupHeader) params.setupHeader = kernel.setupHeader;
  if (initrd) params.initrd = initrd;
  writeBootParams(memory, ZERO_PAGE_ADDR, params);

  const result: LinuxBoot = { cpu: bootCpuState(memory, kernel.entry, ZERO_PAGE_ADDR), kernel, cmdline: cmdline.toString() };
  if (initrd) result.initrd = initrd;
  return result;
}
