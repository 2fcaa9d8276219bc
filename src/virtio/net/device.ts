/**
 * virtio-net, the network card (virtio 1.2 §5.1): one receive and one
 * transmit queue, a MAC address and a link status in configuration space,
 * and no offloads.
 *
 * Event handling: a transmit notification sends every pending chain to the
 * backend; the backend's `onReadable` moves every waiting packet into
 * receive buffers. A frame that finds no receive buffer is dropped and
 * counted, as a NIC with an exhausted descriptor ring does; Linux keeps the
 * ring full and refills it from NAPI, so drops mean the guest fell a whole
 * ring behind. Waiting packets would only grow stale (and TCP recovers from
 * a drop faster than from a queue).
 *
 * Why no offloads (CSUM, GUEST_CSUM, TSO, MRG_RXBUF): every frame is then at
 * most one MTU, fully checksummed and unsegmented both ways, so the device
 * never parses IP or TCP and a receive chain is one small Linux buffer. The
 * costs are the guest's checksum work and per-MTU packets; offloads can be
 * added later behind the same header, which already travels to and from the
 * tap unchanged.
 */
import { readFromBuffers, writeToBuffers } from '../chain.js';
import { VIRTIO_ID_NET, VIRTIO_RING_FEATURES, type VirtioActivation, type VirtioDevice } from '../device.js';
import type { NetBackend } from './backend.js';
import { MAC_LENGTH, formatMac, parseMac, randomMac } from './mac.js';
import { NetMetrics } from './metrics.js';

// Feature bits (§5.1.3).
/** Configuration space holds the device's MAC address. */
export const VIRTIO_NET_F_MAC = 1n << 5n;
/** Configuration space holds the link status. */
export const VIRTIO_NET_F_STATUS = 1n << 16n;

/** Queue 0: receiveq1 (§5.1.2). */
export const NET_RX_QUEUE = 0;
/** Queue 1: transmitq1 (§5.1.2). */
export const NET_TX_QUEUE = 1;
/** Default size of each queue: Linux fills the whole receive ring with 1.5 KiB buffers. */
export const NET_QUEUE_SIZE = 256;

/** sizeof(struct virtio_net_hdr_v1) (§5.1.6): 12 bytes whenever VIRTIO_F_VERSION_1 is negotiated. */
export const NET_HDR_SIZE = 12;
// struct virtio_net_hdr_v1 fields (§5.1.6).
/** u8 flags: NEEDS_CSUM 1, DATA_VALID 2, RSC_INFO 4. */
const HDR_FLAGS = 0;
/** u8 gso_type: NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5, ECN bit 0x80. */
const HDR_GSO_TYPE = 1;
/** le16 csum_start: where checksumming starts, from the start of the frame. */
const HDR_CSUM_START = 6;
/** le16 csum_offset: where the checksum goes, from csum_start. */
const HDR_CSUM_OFFSET = 8;
/** le16 num_buffers: buffers used for this frame; 1 without VIRTIO_NET_F_MRG_RXBUF (§5.1.6.4). */
const HDR_NUM_BUFFERS = 10;
/** flags bit: the checksum from csum_start on is still to be computed. */
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;

/** Configuration status field: link is up (§5.1.4). */
export const VIRTIO_NET_S_LINK_UP = 1;
/** Configuration space: mac[6] at 0, le16 status at 6 (§5.1.4); later fields need features not offered. */
const CONFIG_SIZE = 8;
const CONFIG_STATUS = 6;

/** Ethernet header (destination, source, type): the shortest frame a tap accepts. */
export const ETH_HLEN = 14;
/** Longest frame either way: a 65535-byte MTU plus Ethernet and VLAN headers (the tap's own ceiling). */
export const NET_MAX_FRAME = 65535 + 18;

export interface VirtioNetOptions {
  backend: NetBackend;
  /** "aa:bb:cc:dd:ee:ff" or 6 bytes; default a random locally administered address. */
  mac?: string | Uint8Array;
  /** Size of each queue (a power of 2). Default NET_QUEUE_SIZE. */
  queueSize?: number;
}

export class VirtioNet implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  readonly queueMaxSizes: readonly number[];
  readonly features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_RING_FEATURES;
  readonly metrics = new NetMetrics();
  readonly mac: Uint8Array;

  private readonly backend: NetBackend;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private act: VirtioActivation | undefined;
  /** One transmit packet gathered from a chain (header + frame). */
  private readonly txBuffer = new Uint8Array(NET_HDR_SIZE + NET_MAX_FRAME);
  private readonly rxHeader = new Uint8Array(NET_HDR_SIZE);

  constructor(options: VirtioNetOptions) {
    this.backend = options.backend;
    const mac = options.mac === undefined ? randomMac() : typeof options.mac === 'string' ? parseMac(options.mac) : parseMac(formatMac(options.mac));
    if (mac.length !== MAC_LENGTH) throw new RangeError(`MAC address has ${mac.length} bytes, not ${MAC_LENGTH}`);
    this.mac = mac;
    this.queueMaxSizes = [options.queueSize ?? NET_QUEUE_SIZE, options.queueSize ?? NET_QUEUE_SIZE];
    this.config.set(mac, 0);
    new DataView(this.config.buffer).setUint16(CONFIG_STATUS, VIRTIO_NET_S_LINK_UP, true);
    // §5.1.6.4: without VIRTIO_NET_F_MRG_RXBUF a frame uses exactly one buffer (chain).
    new DataView(this.rxHeader.buffer).setUint16(HDR_NUM_BUFFERS, 1, true);
    this.backend.onReadable = () => this.receiveFromBackend();
  }

  readConfig(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = this.config[offset + i] ?? 0;
  }

  /** §5.1.4: the MAC is read-only once VIRTIO_F_VERSION_1 is negotiated; the rest is read-only always. */
  writeConfig(): void {}

  activate(activation: VirtioActivation): void {
    this.act = activation;
    // Transmit chains queued before DRIVER_OK (or restored from a snapshot) go out now.
    this.processQueue(NET_TX_QUEUE);
  }

  reset(): void {
    this.act = undefined;
  }

  processQueue(index: number): void {
    if (index === NET_TX_QUEUE) this.transmit();
    // A receive notification only says buffers were added; frames never wait for them.
  }

  private transmit(): void {
    const act = this.act;
    if (!act) return;
    const q = act.queues[NET_TX_QUEUE]!;
    const packet = this.txBuffer;
    let used = false;
    for (let c = q.popChain(); c; c = q.popChain()) {
      used = true;
      // §5.1.6.2: transmit buffers are device-readable; the device writes nothing back (used length 0).
      q.addUsed(c.head, 0);
      const frameLength = c.readableBytes - NET_HDR_SIZE;
      if (c.writable.length > 0 || frameLength < ETH_HLEN || frameLength > NET_MAX_FRAME) {
        this.metrics.txMalformed++;
        continue;
      }
      readFromBuffers(act.memory, c.readable, 0, packet.subarray(0, c.readableBytes));
      // §5.1.6.2.1: without VIRTIO_NET_F_CSUM or any HOST_* GSO feature the driver must
      // leave flags and gso_type zero. A frame asking for either would make the host
      // kernel checksum or segment on the guest's word: refuse it.
      if (packet[HDR_FLAGS] !== 0 || packet[HDR_GSO_TYPE] !== 0) {
        this.metrics.txMalformed++;
        continue;
      }
      // The remaining fields mean nothing without those features: the host sees zeros.
      packet.fill(0, 0, NET_HDR_SIZE);
      if (this.backend.send(packet.subarray(0, c.readableBytes))) {
        this.metrics.txFrames++;
        this.metrics.txBytes += frameLength;
      } else {
        this.metrics.txErrors++;
      }
    }
    if (used && q.needsInterrupt()) act.interrupt.trigger('used');
  }

  /** Moves every waiting packet into receive buffers (or drops it); called by the backend. */
  private receiveFromBackend(): void {
    const act = this.act;
    try {
      let used = false;
      for (let p = this.backend.receive(); p; p = this.backend.receive()) {
        if (this.receiveOne(p)) used = true;
      }
      const q = act?.queues[NET_RX_QUEUE];
      if (used && act && q!.needsInterrupt()) act.interrupt.trigger('used');
    } catch (e) {
      // Outside the transport's call path: a fault must still end as DEVICE_NEEDS_RESET.
      act?.needsReset(`virtio-net: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** One host packet into one receive chain; true when a chain was used. */
  private receiveOne(packet: Uint8Array): boolean {
    const frameLength = packet.length - NET_HDR_SIZE;
    if (frameLength < ETH_HLEN || frameLength > NET_MAX_FRAME || packet[HDR_GSO_TYPE] !== 0) {
      // No GUEST_TSO*/UFO was offered, so a segmented packet cannot be given to the guest.
      this.metrics.rxBadPacket++;
      return false;
    }
    let frame = packet.subarray(NET_HDR_SIZE);
    if (packet[HDR_FLAGS]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      // §5.1.6.4: without VIRTIO_NET_F_GUEST_CSUM the device supplies a fully checksummed frame.
      const dv = new DataView(packet.buffer, packet.byteOffset, packet.length);
      const finished = finishChecksum(frame, dv.getUint16(HDR_CSUM_START, true), dv.getUint16(HDR_CSUM_OFFSET, true));
      if (!finished) {
        this.metrics.rxBadPacket++;
        return false;
      }
      frame = finished;
    }
    const act = this.act;
    const q = act?.queues[NET_RX_QUEUE];
    const chain = q?.popChain();
    if (!act || !q || !chain) {
      this.metrics.rxNoBuffer++;
      return false;
    }
    if (chain.writableBytes < NET_HDR_SIZE + frameLength) {
      // The chain stays for a frame that fits; this one is lost.
      q.undoPop();
      this.metrics.rxTooBig++;
      return false;
    }
    writeToBuffers(act.memory, chain.writable, 0, this.rxHeader);
    writeToBuffers(act.memory, chain.writable, NET_HDR_SIZE, frame);
    q.addUsed(chain.head, NET_HDR_SIZE + frameLength);
    this.metrics.rxFrames++;
    this.metrics.rxBytes += frameLength;
    return true;
  }
}

/**
 * Completes a partial checksum (§5.1.6.2: "the device computes the checksum
 * from csum_start to the end and stores it at csum_start + csum_offset", the
 * field already holding the pseudo-header sum). Returns a checksummed copy,
 * or undefined when the offsets fall outside the frame.
 */
export function finishChecksum(frame: Uint8Array, start: number, offset: number): Uint8Array | undefined {
  const at = start + offset;
  if (at + 2 > frame.length || offset % 2 !== 0) return undefined;
  const out = frame.slice();
  let sum = 0;
  for (let i = start; i + 1 < out.length; i += 2) sum += (out[i]! << 8) | out[i + 1]!;
  if ((out.length - start) % 2 === 1) sum += out[out.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  // RFC 768: a computed UDP checksum of 0 is sent as 0xffff; for TCP the two are the same number.
  const csum = ~sum & 0xffff || 0xffff;
  out[at] = csum >> 8;
  out[at + 1] = csum & 0xff;
  return out;
}
