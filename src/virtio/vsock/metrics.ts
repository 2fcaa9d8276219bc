/**
 * Counters of the socket device, for the metrics endpoint and tests. They
 * only grow; they are not part of the snapshot state.
 */
export class VsockMetrics {
  /** Packets taken from the transmit queue (guest → device). */
  txPackets = 0;
  /** Packets written into receive buffers (device → guest). */
  rxPackets = 0;
  /** Payload bytes forwarded guest → host. */
  txBytes = 0;
  /** Payload bytes delivered host → guest. */
  rxBytes = 0;
  /** Connections that reached the established state (both directions). */
  connections = 0;
  /** Guest connection requests the host side refused (no listener, limit reached). */
  refused = 0;
  /** RST packets sent to the guest. */
  resets = 0;
  /** Guest packets refused by a header check (answered with RST when there is someone to answer). */
  badPackets = 0;
  /** Guest packets dropped without answer: shorter than a header, or a source CID that is not the guest's. */
  dropped = 0;
  /** Guest packets that broke flow control (more data than our credit, fwd_cnt beyond what we sent). */
  creditViolations = 0;
  /** Receive chains too small for a header (used with length 0). */
  rxBadChains = 0;
  /** Host-initiated connections the guest did not answer in time. */
  connectTimeouts = 0;

  snapshot(): Record<string, number> {
    return Object.fromEntries(Object.entries(this).filter((e): e is [string, number] => typeof e[1] === 'number'));
  }
}
