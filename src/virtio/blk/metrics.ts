/**
 * Counters of a block device, for the metrics endpoint and tests. They only
 * grow; they are not part of the snapshot state.
 */
export class BlockMetrics {
  /** Completed IN requests and the bytes they read. */
  reads = 0;
  readBytes = 0;
  /** Completed OUT requests and the bytes they wrote. */
  writes = 0;
  writeBytes = 0;
  /** Completed FLUSH requests (and write-through syncs). */
  flushes = 0;
  getIds = 0;
  discards = 0;
  writeZeroes = 0;
  /** Requests answered VIRTIO_BLK_S_IOERR because the request itself was bad (past the end, wrong direction, read-only…). */
  badRequests = 0;
  /** Requests answered VIRTIO_BLK_S_UNSUPP. */
  unsupported = 0;
  /** Requests answered VIRTIO_BLK_S_IOERR because the host I/O failed. */
  ioErrors = 0;
  /** Times the in-flight bound left chains waiting in the ring. */
  throttled = 0;

  snapshot(): Record<string, number> {
    return Object.fromEntries(Object.entries(this).filter((e): e is [string, number] => typeof e[1] === 'number'));
  }
}
