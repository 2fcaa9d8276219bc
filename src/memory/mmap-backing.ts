import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, view } from '../native/index.js';
import type { MemoryBacking } from './alloc.js';
import type { MemoryRegion } from './guest-memory.js';

/** KVM memory slots must start and end on host page boundaries. */
const HOST_PAGE = 4096;

/**
 * Guest RAM in anonymous host mappings, for engines that hand RAM to the
 * kernel (KVM memory slots). `bytes` aliases the mapping, so devices on the
 * main thread and the guest on the CPU see the same bytes; `hostAddress` is
 * what KVM_SET_USER_MEMORY_REGION takes.
 *
 * MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE: pages cost nothing until the
 * guest touches them, and the kernel may back them with transparent huge
 * pages. Not MAP_SHARED: a snapshot reads RAM through `bytes` (plus KVM's dirty
 * log for diffs) and a restore maps the snapshot file MAP_PRIVATE, copy on
 * write, as Firecracker does; neither needs sharing. Sharing RAM with another
 * process (vhost-user) needs an fd, i.e. a memfd mapped MAP_SHARED — a
 * different backing, added when such a device exists.
 *
 * Mappings live until the process exits: the ArrayBuffer views cannot be
 * revoked, so unmapping while a view exists would turn a stray device access
 * into a host segfault.
 */
export const mmapBacking: MemoryBacking = {
  allocate(base: number, size: number): MemoryRegion {
    if (!Number.isSafeInteger(base) || base < 0 || base % HOST_PAGE !== 0) {
      throw new RangeError(`mmap backing: region base 0x${base.toString(16)} is not page aligned`);
    }
    if (!Number.isSafeInteger(size) || size <= 0 || size % HOST_PAGE !== 0) {
      throw new RangeError(`mmap backing: region size ${size} is not a positive multiple of ${HOST_PAGE}`);
    }
    const hostAddress = mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    return { base, size, bytes: new Uint8Array(view(hostAddress, size)), hostAddress };
  },
};
