/**
 * Initrd placement: as high as the kernel allows in low RAM, so the kernel's
 * early allocations below it stay free (what boot loaders do, boot.rst
 * "initrd_addr_max").
 */
import type { GuestMemory } from '../memory/index.js';
import { MMIO_HOLE_START, PAGE_SIZE } from '../arch/x86_64/layout.js';
import { BootError, mib } from './errors.js';

export interface InitrdPlacement {
  addr: number;
  size: number;
}

export interface InitrdLimits {
  /** First byte above the kernel (KernelLoadResult.kernelEnd). */
  kernelEnd: number;
  /** Highest address the initrd may occupy, inclusive (setup header initrd_addr_max). */
  initrdAddrMax: number;
}

/** Where an initrd of `size` bytes goes; throws BootError('does-not-fit') when nowhere. */
export function placeInitrd(memory: GuestMemory, size: number, limits: InitrdLimits): InitrdPlacement {
  if (!Number.isSafeInteger(size) || size <= 0) throw new BootError('malformed', `initrd size ${size} is not a positive byte count`);
  const lowTop = Math.min(memory.end, MMIO_HOLE_START, limits.initrdAddrMax + 1);
  const floor = Math.ceil(limits.kernelEnd / PAGE_SIZE) * PAGE_SIZE;
  const addr = Math.floor((lowTop - size) / PAGE_SIZE) * PAGE_SIZE;
  if (addr < floor || !memory.isValid(addr, size)) {
    throw new BootError('does-not-fit', `initrd of ${mib(size)} does not fit in ${mib(memory.size)} of RAM above the kernel (room: ${mib(Math.max(0, lowTop - floor))})`);
  }
  return { addr, size };
}

/** Places the initrd and copies it into guest memory. */
export function loadInitrd(memory: GuestMemory, initrd: Uint8Array, limits: InitrdLimits): InitrdPlacement {
  const placement = placeInitrd(memory, initrd.length, limits);
  memory.write(placement.addr, initrd);
  return placement;
}
