/**
 * Counters of the network device, for the metrics endpoint and tests. They
 * only grow; they are not part of the snapshot state.
 */
export class NetMetrics {
  /** Frames written into guest receive buffers. */
  rxFrames = 0;
  /** Frame bytes (without the virtio-net header) delivered to the guest. */
  rxBytes = 0;
  /** Frames dropped because the guest had no receive buffer posted (a NIC's "rx missed"). */
  rxNoBuffer = 0;
  /** Frames dropped because the next receive chain was too small to hold them. */
  rxTooBig = 0;
  /** Packets from the host dropped as unusable: shorter than a header, or offloads the guest did not accept. */
  rxBadPacket = 0;
  /** Frames sent from the guest to the host. */
  txFrames = 0;
  /** Frame bytes (without the header) sent to the host. */
  txBytes = 0;
  /** Transmit chains dropped as malformed: short, oversized, writable-only, or a header with features not negotiated. */
  txMalformed = 0;
  /** Frames the host refused (interface down, queue full). */
  txErrors = 0;

  snapshot(): Record<'rxFrames' | 'rxBytes' | 'rxNoBuffer' | 'rxTooBig' | 'rxBadPacket' | 'txFrames' | 'txBytes' | 'txMalformed' | 'txErrors', number> {
    const { rxFrames, rxBytes, rxNoBuffer, rxTooBig, rxBadPacket, txFrames, txBytes, txMalformed, txErrors } = this;
    return { rxFrames, rxBytes, rxNoBuffer, rxTooBig, rxBadPacket, txFrames, txBytes, txMalformed, txErrors };
  }
}
