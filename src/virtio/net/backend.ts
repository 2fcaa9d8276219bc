/**
 * The host side of a virtio-net device. Every packet, both ways, is a 12-byte
 * struct virtio_net_hdr_v1 (virtio 1.2 §5.1.6) followed by one Ethernet frame
 * — the format a tap opened with IFF_VNET_HDR and TUNSETVNETHDRSZ = 12 reads
 * and writes, so packets pass between guest and tap without reformatting.
 */
export interface NetBackend {
  /**
   * Hands one packet to the host network. False when the host refused it
   * (interface down, queue full, malformed for the kernel): the frame is
   * lost, as on a wire.
   */
  send(packet: Uint8Array): boolean;
  /**
   * The next packet received from the host, or undefined when none waits.
   * The view is valid only until the next call (it may alias the backend's
   * ring buffer).
   */
  receive(): Uint8Array | undefined;
  /**
   * Set by the device: called when packets wait. The device then calls
   * `receive` until it returns undefined.
   */
  onReadable: (() => void) | undefined;
}
