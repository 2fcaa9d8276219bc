/**
 * Snapshot state of a block device. Requests in flight are not state: a
 * snapshot is taken with the device drained (`VirtioBlock.drain()`), so the
 * queue positions in the transport's state say everything about the rings.
 * What is saved is what the guest was told about the disk, so a restore onto
 * a different disk is refused instead of silently changing under the guest.
 */
import { StateReader } from '../../devices/legacy/common.js';

export interface BlockState {
  /** Capacity in 512-byte sectors, as the guest read it from configuration space. */
  capacity: number;
  readOnly: boolean;
}

/** Checks a restored object against the disk attached now; throws DeviceStateError naming the bad field. */
export function readBlockState(state: unknown, current: BlockState): BlockState {
  const r = new StateReader('virtio-blk', state);
  const capacity = r.int('capacity', Number.MAX_SAFE_INTEGER);
  const readOnly = r.bool('readOnly');
  if (capacity !== current.capacity) r.fail('capacity', `is ${capacity} sectors but the attached disk has ${current.capacity}`);
  if (readOnly !== current.readOnly) r.fail('readOnly', `is ${readOnly} but the disk is attached ${current.readOnly ? 'read-only' : 'read-write'}`);
  return { capacity, readOnly };
}
