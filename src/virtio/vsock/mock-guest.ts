/**
 * A guest's virtio-vsock driver for tests: brings the device up through the
 * MMIO transport, keeps the receive queue full of buffers (as Linux's
 * virtio_transport does, 4 KiB each), sends raw packets on the transmit
 * queue and decodes what comes back. It checks nothing it is asked to send,
 * so tests can be hostile on purpose.
 */
import type { GuestMemory } from '../../memory/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue, type MockBuffer } from '../mock-driver.js';
import { VSOCK_HDR_SIZE, VSOCK_HOST_CID, VSOCK_OP_RW, VSOCK_TYPE_STREAM, decodeHeader, encodeHeader, type VsockHeader } from './packet.js';

export interface ReceivedPacket {
  header: VsockHeader;
  payload: Uint8Array;
  /** The used length the device reported. */
  usedLen: number;
}

export interface MockVsockGuestOptions {
  /** Receive buffers kept posted (≤ queue size). Default 16. */
  rxBuffers?: number;
  /** Payload bytes of each receive buffer (Linux: 4096). */
  rxBufferSize?: number;
  queueSize?: number;
  /** Guest RAM offset of the area this driver uses (rings at base, buffers above). */
  base?: number;
}

export class MockVsockGuest {
  readonly rx: MockVirtqueue;
  readonly tx: MockVirtqueue;
  readonly event: MockVirtqueue;
  private readonly rxArea: number;
  /** Where `send` writes each packet (header, then payload). */
  readonly txArea: number;
  private readonly rxSlot: number;
  /** Packets received but not yet taken by `take`. */
  readonly inbox: ReceivedPacket[] = [];

  constructor(
    readonly memory: GuestMemory,
    readonly driver: MockMmioDriver,
    readonly cid: number,
    private readonly options: MockVsockGuestOptions = {},
  ) {
    const base = options.base ?? 0x1000;
    const size = options.queueSize ?? 64;
    const rxLayout = layoutQueue(base, size);
    const txLayout = layoutQueue(base + 0x4000, size);
    const evLayout = layoutQueue(base + 0x8000, size);
    this.rxSlot = VSOCK_HDR_SIZE + (options.rxBufferSize ?? 4096);
    this.rxArea = base + 0x1_0000;
    this.txArea = this.rxArea + 0x10_0000;
    const status = driver.init([rxLayout, txLayout, evLayout]);
    if (status !== 0x0f) throw new Error(`mock vsock guest: device status 0x${status.toString(16)} after init`);
    this.rx = new MockVirtqueue(memory, rxLayout);
    this.tx = new MockVirtqueue(memory, txLayout);
    this.event = new MockVirtqueue(memory, evLayout);
    for (let i = 0; i < (options.rxBuffers ?? 16); i++) {
      const bufs = [{ address: this.rxArea + i * this.rxSlot, length: this.rxSlot, writable: true }];
      this.rxChains.set(this.rx.addChain(bufs), { buffers: bufs, repost: true });
    }
    driver.notify(0);
  }

  /** Receive chains this driver posted, by head: where to read the answer, and whether to post it again. */
  private readonly rxChains = new Map<number, { buffers: MockBuffer[]; repost: boolean }>();

  /** Posts one more receive chain, used once (it may be hostile: tiny, or at the end of RAM). */
  postRx(buffers: MockBuffer[]): void {
    this.rxChains.set(this.rx.addChain(buffers), { buffers, repost: false });
    this.driver.notify(0);
  }

  /** A header from the guest to the host with the usual fields filled in. */
  header(h: Partial<VsockHeader>): VsockHeader {
    return { srcCid: this.cid, dstCid: VSOCK_HOST_CID, srcPort: 0, dstPort: 0, len: 0, type: VSOCK_TYPE_STREAM, op: VSOCK_OP_RW, flags: 0, bufAlloc: 256 * 1024, fwdCnt: 0, ...h };
  }

  /**
   * Sends one packet: the header (len defaults to the payload's length) and
   * the payload, as two descriptors like Linux, or as `split` pieces.
   */
  send(h: Partial<VsockHeader>, payload: Uint8Array = new Uint8Array(0), options: { buffers?: MockBuffer[] } = {}): void {
    const header = this.header({ len: payload.length, ...h });
    const bytes = new Uint8Array(VSOCK_HDR_SIZE);
    encodeHeader(header, bytes);
    this.memory.write(this.txArea, bytes);
    this.memory.write(this.txArea + VSOCK_HDR_SIZE, payload);
    const buffers = options.buffers ?? (payload.length > 0 ? [{ address: this.txArea, length: VSOCK_HDR_SIZE }, { address: this.txArea + VSOCK_HDR_SIZE, length: payload.length }] : [{ address: this.txArea, length: VSOCK_HDR_SIZE }]);
    this.tx.addChain(buffers);
    this.driver.notify(1);
    this.tx.takeUsed();
  }

  /** Collects what the device put in the receive queue (reposting each buffer), then returns and clears the inbox. */
  take(): ReceivedPacket[] {
    this.poll();
    return this.inbox.splice(0);
  }

  /** Moves used receive buffers into the inbox and gives them back to the device. */
  poll(): void {
    const used = this.rx.takeUsed();
    let repost = false;
    for (const u of used) {
      const chain = this.rxChains.get(u.id);
      const raw = new Uint8Array(u.len);
      let done = 0;
      for (const b of chain?.buffers ?? []) {
        const n = Math.min(b.length, raw.length - done);
        if (n <= 0) break;
        raw.set(this.memory.read(b.address, n), done);
        done += n;
      }
      const header = decodeHeader(raw.length >= VSOCK_HDR_SIZE ? raw : new Uint8Array(VSOCK_HDR_SIZE));
      this.inbox.push({ header, payload: raw.slice(VSOCK_HDR_SIZE, VSOCK_HDR_SIZE + Math.min(header.len, Math.max(0, raw.length - VSOCK_HDR_SIZE))), usedLen: u.len });
      if (chain?.repost) {
        this.rx.publish(u.id);
        repost = true;
      } else {
        this.rxChains.delete(u.id);
      }
    }
    if (repost) this.driver.notify(0);
  }
}
