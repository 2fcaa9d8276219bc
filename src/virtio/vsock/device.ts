/**
 * virtio-vsock, the socket device (virtio 1.2 §5.10): stream connections
 * between guest applications and host applications, multiplexed over one
 * receive, one transmit and one event queue. The host end of each
 * connection is a byte stream supplied by a `VsockBackend`
 * (Firecracker's Unix-socket convention in src/backends/unix-vsock.ts).
 *
 * A connection is keyed by (local port = the host side's port, peer port =
 * the guest's). Its life:
 *   guest REQUEST → backend.connect → RESPONSE ... RW / CREDIT_* ... SHUTDOWN → RST
 *   host connect  → REQUEST → guest RESPONSE ... (same)
 *
 * Flow control is credit-based both ways (§5.10.6.3): each side tells the
 * other its receive buffer (buf_alloc) and how much of it it has consumed
 * (fwd_cnt); a sender keeps `tx_cnt - peer_fwd_cnt ≤ peer_buf_alloc`. We
 * advertise `bufAlloc` per connection and count a byte consumed once the
 * host stream has taken it, so what we hold for one connection never
 * exceeds bufAlloc (guest → host) plus hostQueueLimit (host → guest, the
 * host stream is paused beyond it).
 *
 * The guest is hostile: every header field is checked; a bad packet is
 * answered with RST (and resets the connection it names), never a throw;
 * packets whose source CID is not the guest's cannot be answered and are
 * dropped. Replies wait for receive buffers in per-connection flags (at most
 * one of each kind) and one bounded queue of RSTs; when that queue is full,
 * the transmit queue is not read until the guest takes some.
 */
import { readFromBuffers, writeToBuffers } from '../chain.js';
import { VIRTIO_ID_VSOCK, VIRTIO_RING_FEATURES, type VirtioActivation, type VirtioDevice } from '../device.js';
import { hostClock, type DeviceClock } from '../rate-limiter.js';
import type { VsockBackend, VsockHost, VsockHostInitiated, VsockHostStream, VsockStreamEvents } from './backend.js';
import { VsockMetrics } from './metrics.js';
import {
  VSOCK_CID_ANY,
  VSOCK_EVENT_TRANSPORT_RESET,
  VSOCK_HDR_SIZE,
  VSOCK_HOST_CID,
  VSOCK_MAX_PAYLOAD,
  VSOCK_OP_CREDIT_REQUEST,
  VSOCK_OP_CREDIT_UPDATE,
  VSOCK_OP_REQUEST,
  VSOCK_OP_RESPONSE,
  VSOCK_OP_RST,
  VSOCK_OP_RW,
  VSOCK_OP_SHUTDOWN,
  VSOCK_SHUTDOWN_BOTH,
  VSOCK_SHUTDOWN_RCV,
  VSOCK_SHUTDOWN_SEND,
  VSOCK_TYPE_STREAM,
  decodeHeader,
  encodeHeader,
  type VsockHeader,
} from './packet.js';

/** Queue 0: rx, device → driver (§5.10.2). */
export const VSOCK_RX_QUEUE = 0;
/** Queue 1: tx, driver → device. */
export const VSOCK_TX_QUEUE = 1;
/** Queue 2: event, device → driver. */
export const VSOCK_EVENT_QUEUE = 2;
/** Default queue size (Linux posts 128 receive buffers of 4 KiB). */
export const VSOCK_QUEUE_SIZE = 256;
/** Bytes of configuration space: le64 guest_cid (§5.10.4). */
const CONFIG_SIZE = 8;
/** Bytes of struct virtio_vsock_event: le32 id. */
const EVENT_SIZE = 4;

/** Default receive buffer advertised per connection (Firecracker's and Linux's 256 KiB). */
export const VSOCK_DEFAULT_BUF_ALLOC = 256 * 1024;
/** Default host → guest bytes held per connection before the host stream is paused. */
export const VSOCK_DEFAULT_HOST_QUEUE = 64 * 1024;
/** Default limit on simultaneous connections (bounds memory to ~maxConnections × (bufAlloc + hostQueue)). */
export const VSOCK_DEFAULT_MAX_CONNECTIONS = 256;
/** How long a host-initiated REQUEST waits for the guest (Linux's own connect timeout is 2 s). */
export const VSOCK_CONNECT_TIMEOUT_MS = 2000;
/** How long after our SHUTDOWN we wait for the guest's RST before sending one (§5.10.6.6). */
export const VSOCK_CLOSE_TIMEOUT_MS = 2000;
/** RSTs waiting for receive buffers before the transmit queue stops being read. */
export const VSOCK_RST_QUEUE_LIMIT = 256;
/** Host data a stream may deliver after pause() (one read already in flight) before the connection is reset. */
const HOST_QUEUE_SLACK = 128 * 1024;
/** First local port handed to host-initiated connections (Firecracker's choice: above the usual service ports). */
export const VSOCK_FIRST_LOCAL_PORT = 1 << 30;

export interface VirtioVsockOptions {
  /** Guest CID: 3..2^32-2 (0–2 are reserved, -1U is VMADDR_CID_ANY). */
  cid: number;
  backend: VsockBackend;
  clock?: DeviceClock;
  queueSize?: number;
  /** Receive buffer advertised to the guest per connection. */
  bufAlloc?: number;
  /** Host → guest bytes held per connection before pausing the host stream. */
  hostQueueLimit?: number;
  maxConnections?: number;
  connectTimeoutMs?: number;
  closeTimeoutMs?: number;
}

type ConnectionState =
  /** Host-initiated: REQUEST queued or sent, waiting for RESPONSE. */
  | 'host-connecting'
  /** Guest-initiated: backend connecting to the host service. */
  | 'guest-connecting'
  | 'established';

class Connection {
  state: ConnectionState;
  stream: VsockHostStream | undefined;
  /** Set once the connection left the table: late events and write completions are ignored. */
  gone = false;
  timer: { cancel(): void } | undefined;

  // guest → host accounting (our receive buffer).
  /** Payload bytes received from the guest (free-running u32). */
  rxCnt = 0;
  /** Of those, bytes the host stream has taken. */
  fwdCnt = 0;
  /** fwd_cnt in the last packet we sent. */
  sentFwdCnt = 0;

  // host → guest accounting (the guest's receive buffer).
  /** Payload bytes sent to the guest (free-running u32, based at the guest's first fwd_cnt). */
  txCnt = 0;
  peerBufAlloc = 0;
  peerFwdCnt = 0;
  hostQueue: Uint8Array[] = [];
  hostQueued = 0;
  paused = false;

  /** SHUTDOWN flags received from the guest. */
  guestShutdown = 0;
  /** The host stream ended its sending side / went away. */
  hostEnded = false;
  hostClosed = false;
  /** SHUTDOWN flags already sent to the guest. */
  sentShutdown = 0;

  // Replies waiting for a receive buffer.
  sendRequest = false;
  requestSent = false;
  sendResponse = false;
  sendCreditUpdate = false;
  /** A CREDIT_REQUEST went out and the guest's credit has not grown since. */
  creditRequested = false;

  constructor(
    readonly localPort: number,
    readonly peerPort: number,
    state: ConnectionState,
  ) {
    this.state = state;
  }

  get key(): string {
    return connKey(this.localPort, this.peerPort);
  }

  /** Guest buffer space we may still fill. */
  peerFree(): number {
    return Math.max(0, this.peerBufAlloc - ((this.txCnt - this.peerFwdCnt) >>> 0));
  }

  /** Bytes received from the guest that the host stream has not taken yet. */
  held(): number {
    return (this.rxCnt - this.fwdCnt) >>> 0;
  }
}

const connKey = (local: number, peer: number): string => `${local}:${peer}`;

/** A reply to a guest packet that matches no connection (or one just torn down). */
interface PendingRst {
  localPort: number;
  peerPort: number;
  /** The CID the guest addressed, echoed as our source so its lookup matches. */
  srcCid: number;
}

export class VirtioVsock implements VirtioDevice, VsockHost {
  readonly deviceType = VIRTIO_ID_VSOCK;
  readonly queueMaxSizes: readonly number[];
  /** No VIRTIO_VSOCK_F_SEQPACKET: stream sockets only (§5.10.3). */
  readonly features = VIRTIO_RING_FEATURES;
  readonly metrics = new VsockMetrics();
  readonly cid: number;

  private readonly backend: VsockBackend;
  private readonly clock: DeviceClock;
  private readonly bufAlloc: number;
  private readonly hostQueueLimit: number;
  private readonly maxConnections: number;
  private readonly connectTimeoutMs: number;
  private readonly closeTimeoutMs: number;
  private readonly config = new Uint8Array(CONFIG_SIZE);
  private readonly connections = new Map<string, Connection>();
  /** Connections with something to send; iteration order is the round-robin order. */
  private readonly ready = new Set<Connection>();
  private readonly rsts: PendingRst[] = [];
  private readonly usedLocalPorts = new Set<number>();
  private nextLocalPort = VSOCK_FIRST_LOCAL_PORT;
  private act: VirtioActivation | undefined;
  /** The transmit queue waits for room in the RST queue. */
  private txStalled = false;
  /** A TRANSPORT_RESET event is owed to the driver (after a restore). */
  private owesTransportReset = false;
  private readonly header = new Uint8Array(VSOCK_HDR_SIZE);

  constructor(options: VirtioVsockOptions) {
    const cid = options.cid;
    if (!Number.isInteger(cid) || cid < 3 || cid >= VSOCK_CID_ANY) throw new RangeError(`vsock: guest CID ${cid} is not in 3..${VSOCK_CID_ANY - 1} (0-2 are reserved, ${VSOCK_CID_ANY} is VMADDR_CID_ANY)`);
    this.cid = cid;
    this.backend = options.backend;
    this.clock = options.clock ?? hostClock;
    this.bufAlloc = options.bufAlloc ?? VSOCK_DEFAULT_BUF_ALLOC;
    this.hostQueueLimit = options.hostQueueLimit ?? VSOCK_DEFAULT_HOST_QUEUE;
    this.maxConnections = options.maxConnections ?? VSOCK_DEFAULT_MAX_CONNECTIONS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? VSOCK_CONNECT_TIMEOUT_MS;
    this.closeTimeoutMs = options.closeTimeoutMs ?? VSOCK_CLOSE_TIMEOUT_MS;
    const q = options.queueSize ?? VSOCK_QUEUE_SIZE;
    this.queueMaxSizes = [q, q, q];
    new DataView(this.config.buffer).setUint32(0, cid, true);
    this.backend.start(this);
  }

  /** Live connections (for metrics and tests). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Bytes held for all connections, both directions (for tests of the memory bound). */
  get bufferedBytes(): number {
    let n = 0;
    for (const c of this.connections.values()) n += c.held() + c.hostQueued;
    return n;
  }

  readConfig(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = this.config[offset + i] ?? 0;
  }

  /** guest_cid is read-only for the driver. */
  writeConfig(): void {}

  activate(activation: VirtioActivation): void {
    this.act = activation;
    if (this.owesTransportReset) this.deliverTransportReset();
    this.processTx();
  }

  reset(): void {
    this.act = undefined;
    this.dropAll();
  }

  processQueue(index: number): void {
    if (index === VSOCK_TX_QUEUE) this.processTx();
    else if (index === VSOCK_RX_QUEUE) this.processRx();
    // Event buffers wait in their queue until an event happens (Linux posts them right after DRIVER_OK).
    else if (index === VSOCK_EVENT_QUEUE && this.owesTransportReset) this.deliverTransportReset();
  }

  /**
   * Tells the driver every connection is gone (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
   * §5.10.6.7) and forgets them here too: the step after restoring a snapshot,
   * whose host streams did not survive.
   */
  sendTransportReset(): void {
    this.dropAll();
    this.owesTransportReset = true;
    this.deliverTransportReset();
  }

  /** Puts an owed TRANSPORT_RESET into an event buffer, if the driver has posted one. */
  private deliverTransportReset(): void {
    const act = this.act;
    const q = act?.queues[VSOCK_EVENT_QUEUE];
    const chain = q?.popChain();
    if (!act || !q || !chain) return;
    this.owesTransportReset = false;
    const event = new Uint8Array(EVENT_SIZE);
    new DataView(event.buffer).setUint32(0, VSOCK_EVENT_TRANSPORT_RESET, true);
    q.addUsed(chain.head, writeToBuffers(act.memory, chain.writable, 0, event));
    if (q.needsInterrupt()) act.interrupt.trigger('used');
  }

  /** Connections do not survive a snapshot: nothing to save. */
  saveState(): Record<string, never> {
    return {};
  }

  /** The restored guest still believes in its connections: owe it a TRANSPORT_RESET at activation. */
  restoreState(state: unknown): void {
    if (typeof state !== 'object' || state === null || Array.isArray(state)) throw new TypeError('vsock: state must be an object');
    this.owesTransportReset = true;
  }

  // ---- host side ----

  connectToGuest(port: number, stream: VsockHostInitiated): VsockStreamEvents | undefined {
    if (!this.act || this.connections.size >= this.maxConnections || !Number.isInteger(port) || port < 0 || port > 0xffff_ffff) return undefined;
    const local = this.allocateLocalPort();
    const conn = new Connection(local, port, 'host-connecting');
    conn.stream = stream;
    conn.sendRequest = true;
    this.usedLocalPorts.add(local);
    this.connections.set(conn.key, conn);
    conn.timer = this.clock.setTimer(this.connectTimeoutMs, () =>
      this.guard(() => {
        conn.timer = undefined;
        if (conn.gone || conn.state !== 'host-connecting') return;
        this.metrics.connectTimeouts++;
        this.abort(conn, true);
        this.processRx();
      }),
    );
    this.kick(conn);
    this.processRx();
    return this.events(conn, stream);
  }

  private allocateLocalPort(): number {
    for (;;) {
      const p = this.nextLocalPort;
      this.nextLocalPort = p >= 0xffff_fffe ? VSOCK_FIRST_LOCAL_PORT : p + 1;
      if (!this.usedLocalPorts.has(p)) return p;
    }
  }

  /** The event sink for `conn`'s host stream; events of a connection already gone are ignored. */
  private events(conn: Connection, stream: VsockHostStream): VsockStreamEvents {
    const live = (): boolean => !conn.gone && conn.stream === stream;
    return {
      connected: () =>
        this.guard(() => {
          if (!live() || conn.state !== 'guest-connecting') return;
          conn.state = 'established';
          conn.sendResponse = true;
          this.metrics.connections++;
          this.flush(conn);
        }),
      data: (chunk) =>
        this.guard(() => {
          if (!live() || conn.hostClosed) return;
          // The guest said it will receive no more: nothing to hold on to.
          if (conn.guestShutdown & VSOCK_SHUTDOWN_RCV) return;
          conn.hostQueue.push(chunk);
          conn.hostQueued += chunk.length;
          if (conn.hostQueued > this.hostQueueLimit + HOST_QUEUE_SLACK) {
            // A stream that ignores pause() would make this queue unbounded.
            this.abort(conn, true);
            this.processRx();
            return;
          }
          if (conn.hostQueued >= this.hostQueueLimit && !conn.paused) {
            conn.paused = true;
            stream.pause();
          }
          this.flush(conn);
        }),
      end: () =>
        this.guard(() => {
          if (!live()) return;
          conn.hostEnded = true;
          this.flush(conn);
        }),
      close: (error) =>
        this.guard(() => {
          if (!live()) return;
          conn.hostClosed = true;
          conn.stream = undefined;
          if (error || conn.state !== 'established') {
            // Refused, failed, or gone before the guest could see it open: reset.
            if (conn.state === 'guest-connecting') this.metrics.refused++;
            this.abort(conn, true);
            this.processRx();
            return;
          }
          // Clean close: data already queued still goes to the guest, then SHUTDOWN.
          this.flush(conn);
        }),
    };
  }

  // ---- guest → device ----

  private processTx(): void {
    const act = this.act;
    if (!act) return;
    const q = act.queues[VSOCK_TX_QUEUE]!;
    let used = false;
    for (;;) {
      if (this.rsts.length >= VSOCK_RST_QUEUE_LIMIT) {
        this.txStalled = true;
        break;
      }
      const chain = q.popChain();
      if (!chain) break;
      used = true;
      this.metrics.txPackets++;
      // §5.10.6.1: tx buffers are device-readable; nothing is written back.
      q.addUsed(chain.head, 0);
      if (chain.readableBytes < VSOCK_HDR_SIZE) {
        this.metrics.dropped++;
        continue;
      }
      readFromBuffers(act.memory, chain.readable, 0, this.header);
      const h = decodeHeader(this.header);
      this.handleGuestPacket(h, chain.readableBytes - VSOCK_HDR_SIZE, (into) => readFromBuffers(act.memory, chain.readable, VSOCK_HDR_SIZE, into));
    }
    if (used && q.needsInterrupt()) act.interrupt.trigger('used');
    this.processRx();
  }

  /**
   * One guest packet: `available` payload bytes follow the header in the
   * chain, `readPayload` copies them.
   */
  private handleGuestPacket(h: VsockHeader, available: number, readPayload: (into: Uint8Array) => void): void {
    // A packet not from the guest's own CID cannot be answered: there is no one to reply to.
    if (h.srcCid !== this.cid) {
      this.metrics.dropped++;
      return;
    }
    const conn = this.connections.get(connKey(h.dstPort, h.srcPort));
    // §5.10.6.4 (and to avoid RST storms): an RST is never answered.
    if (h.op === VSOCK_OP_RST) {
      if (conn) this.abort(conn, false);
      return;
    }
    const bad = this.headerProblem(h, available);
    if (bad) {
      this.metrics.badPackets++;
      if (conn) this.abort(conn, true);
      else this.queueRst(h);
      return;
    }
    if (h.op === VSOCK_OP_REQUEST) {
      if (conn) {
        // A second REQUEST for a live connection: both ends are confused, reset it.
        this.metrics.badPackets++;
        this.abort(conn, true);
        return;
      }
      this.acceptFromGuest(h);
      return;
    }
    if (!conn) {
      // §5.10.6.4: anything but REQUEST or RST for an unknown connection is answered with RST.
      this.queueRst(h);
      return;
    }
    if (!this.takeCredit(conn, h)) return;
    switch (h.op) {
      case VSOCK_OP_RESPONSE:
        if (conn.state !== 'host-connecting' || !conn.requestSent) return this.protocolError(conn);
        conn.state = 'established';
        conn.timer?.cancel();
        conn.timer = undefined;
        this.metrics.connections++;
        (conn.stream as VsockHostInitiated | undefined)?.accepted(conn.localPort);
        break;
      case VSOCK_OP_RW:
        if (conn.state !== 'established' || conn.guestShutdown & VSOCK_SHUTDOWN_SEND) return this.protocolError(conn);
        if (h.len > this.bufAlloc - conn.held()) {
          // More than the credit we gave: a guest that ignores flow control gets no more buffering.
          this.metrics.creditViolations++;
          return this.abort(conn, true);
        }
        this.forward(conn, h.len, readPayload);
        break;
      case VSOCK_OP_SHUTDOWN:
        if (conn.state !== 'established') return this.protocolError(conn);
        this.guestShutdown(conn, h.flags);
        break;
      case VSOCK_OP_CREDIT_UPDATE:
        break;
      case VSOCK_OP_CREDIT_REQUEST:
        conn.sendCreditUpdate = true;
        break;
    }
    if (!conn.gone) this.kick(conn);
  }

  /** Why a header is unacceptable (every field but the source CID, checked above), or undefined. */
  private headerProblem(h: VsockHeader, available: number): string | undefined {
    if (h.dstCid !== VSOCK_HOST_CID) return 'destination is not the host';
    if (h.type !== VSOCK_TYPE_STREAM) return 'type is not STREAM';
    if (h.op < VSOCK_OP_REQUEST || h.op > VSOCK_OP_CREDIT_REQUEST) return 'unknown op';
    // len covers the payload that follows in this chain, and no more than a packet may carry.
    if (h.len > available || h.len > VSOCK_MAX_PAYLOAD) return 'len beyond the buffer';
    if (h.op !== VSOCK_OP_RW && h.len !== 0) return 'payload on a control packet';
    if (h.op === VSOCK_OP_SHUTDOWN ? (h.flags & ~VSOCK_SHUTDOWN_BOTH) !== 0 : h.flags !== 0) return 'flags';
    return undefined;
  }

  /**
   * Takes the guest's buf_alloc and fwd_cnt. fwd_cnt may only move forward,
   * and never past what we sent; otherwise the connection is reset.
   */
  private takeCredit(conn: Connection, h: VsockHeader): boolean {
    if (conn.state === 'host-connecting' && h.op === VSOCK_OP_RESPONSE) {
      // Our sending starts here: base tx_cnt at the guest's count.
      conn.txCnt = conn.peerFwdCnt = h.fwdCnt;
    }
    const inFlight = (conn.txCnt - h.fwdCnt) >>> 0;
    if (inFlight > ((conn.txCnt - conn.peerFwdCnt) >>> 0)) {
      this.metrics.creditViolations++;
      this.abort(conn, true);
      return false;
    }
    const before = conn.peerFree();
    conn.peerBufAlloc = h.bufAlloc;
    conn.peerFwdCnt = h.fwdCnt;
    if (conn.peerFree() > before) conn.creditRequested = false;
    return true;
  }

  private acceptFromGuest(h: VsockHeader): void {
    if (this.connections.size >= this.maxConnections) {
      this.metrics.refused++;
      this.queueRst(h);
      return;
    }
    const conn = new Connection(h.dstPort, h.srcPort, 'guest-connecting');
    conn.txCnt = conn.peerFwdCnt = h.fwdCnt;
    conn.peerBufAlloc = h.bufAlloc;
    this.connections.set(conn.key, conn);
    // The sink needs the stream, and the stream is made with the sink: events go through a holder.
    const holder: { sink?: VsockStreamEvents } = {};
    const events: VsockStreamEvents = {
      connected: () => holder.sink?.connected(),
      data: (c) => holder.sink?.data(c),
      end: () => holder.sink?.end(),
      close: (e) => holder.sink?.close(e),
    };
    let stream: VsockHostStream;
    try {
      stream = this.backend.connect(h.dstPort, events);
    } catch {
      this.metrics.refused++;
      this.abort(conn, true);
      return;
    }
    conn.stream = stream;
    holder.sink = this.events(conn, stream);
  }

  private forward(conn: Connection, len: number, readPayload: (into: Uint8Array) => void): void {
    if (len === 0) return;
    conn.rxCnt = (conn.rxCnt + len) >>> 0;
    this.metrics.txBytes += len;
    const stream = conn.stream;
    if (!stream || conn.hostClosed) {
      // The host side is gone; the guest hears so by SHUTDOWN. Consume, so its credit keeps moving.
      this.consumed(conn, len);
      return;
    }
    const payload = new Uint8Array(len);
    readPayload(payload);
    stream.write(payload, () => this.guard(() => this.consumed(conn, len)));
  }

  /** `len` bytes left our buffer: advance fwd_cnt, and tell the guest when it is running short of credit. */
  private consumed(conn: Connection, len: number): void {
    if (conn.gone) return;
    conn.fwdCnt = (conn.fwdCnt + len) >>> 0;
    // The guest's view of our free space, from the last fwd_cnt it heard.
    const guestView = this.bufAlloc - ((conn.rxCnt - conn.sentFwdCnt) >>> 0);
    if (guestView < Math.min(VSOCK_MAX_PAYLOAD, this.bufAlloc / 2) && conn.fwdCnt !== conn.sentFwdCnt) {
      conn.sendCreditUpdate = true;
      this.flush(conn);
    }
  }

  private guestShutdown(conn: Connection, flags: number): void {
    const before = conn.guestShutdown;
    conn.guestShutdown |= flags;
    if (conn.guestShutdown & VSOCK_SHUTDOWN_RCV && !(before & VSOCK_SHUTDOWN_RCV)) {
      conn.hostQueue = [];
      conn.hostQueued = 0;
      if (conn.paused) {
        conn.paused = false;
        conn.stream?.resume();
      }
    }
    if (conn.guestShutdown & VSOCK_SHUTDOWN_SEND && !(before & VSOCK_SHUTDOWN_SEND)) conn.stream?.end();
    if (conn.guestShutdown === VSOCK_SHUTDOWN_BOTH) {
      // §5.10.6.6: the peer of a full shutdown answers RST. Data already
      // written still reaches the host: close() flushes first.
      const stream = conn.stream;
      this.forget(conn);
      stream?.close();
      this.queueRst({ dstPort: conn.localPort, srcPort: conn.peerPort, dstCid: VSOCK_HOST_CID });
    }
  }

  private protocolError(conn: Connection): void {
    this.metrics.badPackets++;
    this.abort(conn, true);
  }

  // ---- teardown ----

  /** Removes `conn`: destroys its host stream, and queues an RST for the guest if `rst`. */
  private abort(conn: Connection, rst: boolean): void {
    const stream = conn.stream;
    this.forget(conn);
    stream?.destroy();
    if (rst) this.queueRst({ dstPort: conn.localPort, srcPort: conn.peerPort, dstCid: VSOCK_HOST_CID });
  }

  /** Takes `conn` out of every table; its stream is left to the caller. */
  private forget(conn: Connection): void {
    if (conn.gone) return;
    conn.gone = true;
    conn.timer?.cancel();
    conn.timer = undefined;
    conn.hostQueue = [];
    conn.hostQueued = 0;
    this.connections.delete(conn.key);
    this.ready.delete(conn);
    if (conn.localPort >= VSOCK_FIRST_LOCAL_PORT) this.usedLocalPorts.delete(conn.localPort);
  }

  private dropAll(): void {
    for (const conn of [...this.connections.values()]) {
      const stream = conn.stream;
      this.forget(conn);
      stream?.destroy();
    }
    this.rsts.length = 0;
    this.txStalled = false;
  }

  /** An RST answering the guest's packet `h` (ports swapped back). */
  private queueRst(h: Pick<VsockHeader, 'dstPort' | 'srcPort' | 'dstCid'>): void {
    // Bounded by the TX stall (RST_QUEUE_LIMIT) plus at most one per connection from host events.
    this.rsts.push({ localPort: h.dstPort, peerPort: h.srcPort, srcCid: h.dstCid >= 0 ? h.dstCid : VSOCK_HOST_CID });
  }

  // ---- device → guest ----

  private kick(conn: Connection): void {
    if (!conn.gone) this.ready.add(conn);
  }

  /** From host events: queue `conn`'s work and send what the receive buffers allow. */
  private flush(conn: Connection): void {
    this.kick(conn);
    this.processRx();
  }

  private processRx(): void {
    const act = this.act;
    if (!act) return;
    const q = act.queues[VSOCK_RX_QUEUE]!;
    let used = false;
    while (this.rsts.length > 0 || this.ready.size > 0) {
      const chain = q.popChain();
      if (!chain) break;
      if (chain.writableBytes < VSOCK_HDR_SIZE) {
        q.addUsed(chain.head, 0);
        this.metrics.rxBadChains++;
        used = true;
        continue;
      }
      const room = Math.min(chain.writableBytes - VSOCK_HDR_SIZE, VSOCK_MAX_PAYLOAD);
      const packet = this.nextPacket(room);
      if (!packet) {
        q.undoPop();
        break;
      }
      encodeHeader(packet.header, this.header);
      writeToBuffers(act.memory, chain.writable, 0, this.header);
      if (packet.payload) writeToBuffers(act.memory, chain.writable, VSOCK_HDR_SIZE, packet.payload);
      q.addUsed(chain.head, VSOCK_HDR_SIZE + packet.header.len);
      this.metrics.rxPackets++;
      used = true;
    }
    if (used && q.needsInterrupt()) act.interrupt.trigger('used');
    if (this.txStalled && this.rsts.length < VSOCK_RST_QUEUE_LIMIT) {
      this.txStalled = false;
      this.processTx();
    }
  }

  /** The next packet for the guest, at most `room` payload bytes: RSTs first, then connections in turn. */
  private nextPacket(room: number): { header: VsockHeader; payload?: Uint8Array } | undefined {
    const rst = this.rsts.shift();
    if (rst) {
      this.metrics.resets++;
      return { header: this.headerFor(rst.localPort, rst.peerPort, VSOCK_OP_RST, 0, 0, rst.srcCid) };
    }
    for (const conn of this.ready) {
      this.ready.delete(conn);
      const p = this.connectionPacket(conn, room);
      if (!p) continue;
      // Any packet carries our fwd_cnt: it is also the credit update.
      conn.sentFwdCnt = conn.fwdCnt;
      conn.sendCreditUpdate = false;
      p.header.fwdCnt = conn.fwdCnt;
      if (!conn.gone && this.hasWork(conn)) this.ready.add(conn);
      return p;
    }
    return undefined;
  }

  private headerFor(local: number, peer: number, op: number, len: number, flags: number, srcCid = VSOCK_HOST_CID, fwdCnt = 0): VsockHeader {
    return { srcCid, dstCid: this.cid, srcPort: local, dstPort: peer, len, type: VSOCK_TYPE_STREAM, op, flags, bufAlloc: this.bufAlloc, fwdCnt };
  }

  private hasWork(conn: Connection): boolean {
    if (conn.sendRequest || conn.sendResponse || conn.sendCreditUpdate) return true;
    if (conn.state !== 'established') return false;
    if (conn.hostQueued > 0) return conn.peerFree() > 0 || !conn.creditRequested;
    return this.shutdownToSend(conn) !== 0;
  }

  /** SHUTDOWN flags owed to the guest once the host's data is out: SEND after the host's end, both after its close. */
  private shutdownToSend(conn: Connection): number {
    if (conn.hostQueued > 0) return 0;
    const want = conn.hostClosed ? VSOCK_SHUTDOWN_BOTH : conn.hostEnded ? VSOCK_SHUTDOWN_SEND : 0;
    return want & ~conn.sentShutdown ? want : 0;
  }

  private connectionPacket(conn: Connection, room: number): { header: VsockHeader; payload?: Uint8Array } | undefined {
    if (conn.sendRequest) {
      conn.sendRequest = false;
      conn.requestSent = true;
      return { header: this.headerFor(conn.localPort, conn.peerPort, VSOCK_OP_REQUEST, 0, 0) };
    }
    if (conn.sendResponse) {
      conn.sendResponse = false;
      return { header: this.headerFor(conn.localPort, conn.peerPort, VSOCK_OP_RESPONSE, 0, 0) };
    }
    if (conn.state === 'established' && conn.hostQueued > 0) {
      const n = Math.min(room, conn.hostQueued, conn.peerFree());
      if (n > 0) {
        const payload = this.takeHostData(conn, n);
        conn.txCnt = (conn.txCnt + n) >>> 0;
        this.metrics.rxBytes += n;
        return { header: this.headerFor(conn.localPort, conn.peerPort, VSOCK_OP_RW, n, 0), payload };
      }
      if (conn.peerFree() === 0 && !conn.creditRequested) {
        // The guest's buffer is full as far as we know: ask for its count (§5.10.6.3).
        conn.creditRequested = true;
        return { header: this.headerFor(conn.localPort, conn.peerPort, VSOCK_OP_CREDIT_REQUEST, 0, 0) };
      }
    }
    const flags = conn.state === 'established' ? this.shutdownToSend(conn) : 0;
    if (flags) {
      conn.sentShutdown |= flags;
      if (flags === VSOCK_SHUTDOWN_BOTH) {
        // Wait for the guest's RST (§5.10.6.6), but not forever.
        conn.timer?.cancel();
        conn.timer = this.clock.setTimer(this.closeTimeoutMs, () =>
          this.guard(() => {
            conn.timer = undefined;
            if (conn.gone) return;
            this.abort(conn, true);
            this.processRx();
          }),
        );
      }
      return { header: this.headerFor(conn.localPort, conn.peerPort, VSOCK_OP_SHUTDOWN, 0, flags) };
    }
    if (conn.sendCreditUpdate) return { header: this.headerFor(conn.localPort, conn.peerPort, VSOCK_OP_CREDIT_UPDATE, 0, 0) };
    return undefined;
  }

  private takeHostData(conn: Connection, n: number): Uint8Array {
    const out = new Uint8Array(n);
    let done = 0;
    while (done < n) {
      const chunk = conn.hostQueue[0]!;
      const take = Math.min(chunk.length, n - done);
      out.set(chunk.subarray(0, take), done);
      done += take;
      if (take === chunk.length) conn.hostQueue.shift();
      else conn.hostQueue[0] = chunk.subarray(take);
    }
    conn.hostQueued -= n;
    if (conn.paused && conn.hostQueued <= this.hostQueueLimit / 2) {
      conn.paused = false;
      conn.stream?.resume();
    }
    return out;
  }

  /** Runs host-side work (events, timers) outside the transport's call path: a fault ends as DEVICE_NEEDS_RESET. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      const act = this.act;
      if (act) act.needsReset(`virtio-vsock: ${e instanceof Error ? e.message : String(e)}`);
      else throw e;
    }
  }
}
