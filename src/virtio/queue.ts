/**
 * Split virtqueue, device side (virtio 1.2 §2.7).
 *
 * Everything in the three rings is written by the guest and read here as
 * hostile input. The rules:
 * - the ring areas are checked once, when the queue is activated; after that
 *   every ring access is in bounds by construction;
 * - every descriptor is read exactly once into local variables, and the
 *   values that were validated are the values that are used (no double fetch:
 *   the guest may rewrite a descriptor between two reads);
 * - every buffer a chain hands to a device is checked, address and length,
 *   against guest RAM before the chain is returned;
 * - a malformed queue is recorded in `error`, reported through `onError`
 *   (the transport turns it into DEVICE_NEEDS_RESET) and the queue stops:
 *   no exception leaves this class for guest-controlled input.
 *
 * Ordering. The driver fills descriptors, then the avail ring entry, then
 * (after a write barrier, §2.7.13.3.1) bumps avail idx. So the device reads
 * avail idx first and ring entries and descriptors after it; reading in the
 * other order could see an entry the driver has not finished. JS gives no
 * fence instruction, but the vCPU writes through the host CPU's coherent
 * memory and x86 keeps loads in program order (TSO), so program order here is
 * the order that matters. Symmetrically the device writes a used element
 * before it publishes used idx (§2.7.8.2).
 */
import type { GuestMemory } from '../memory/index.js';

/** Largest split queue size: the highest power of 2 that fits in 16 bits (§2.7.13). */
export const MAX_QUEUE_SIZE = 32768;

/** struct virtq_desc flag: the buffer continues via `next` (§2.7.5). */
export const VIRTQ_DESC_F_NEXT = 1;
/** struct virtq_desc flag: the buffer is device-writable, otherwise device-readable (§2.7.5). */
export const VIRTQ_DESC_F_WRITE = 2;
/** struct virtq_desc flag: the buffer holds a table of indirect descriptors (§2.7.5.3). */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** virtq_avail.flags: the driver asks for no used-buffer notifications (§2.7.7). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** virtq_used.flags: the device asks for no available-buffer notifications (§2.7.10). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

/** Bytes of one struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next (§2.7.5). */
export const DESC_SIZE = 16;
/** Bytes of one struct virtq_used_elem: le32 id, le32 len (§2.7.8). */
const USED_ELEM_SIZE = 8;
/** flags + idx at the start of the avail and used rings. */
const RING_HEADER = 4;

/** Alignment of each queue part (§2.7, table "Virtqueue Part" / §2.7.1). */
const DESC_ALIGN = 16;
const AVAIL_ALIGN = 2;
const USED_ALIGN = 4;

/** Chains may carry at most 2^32 bytes in total (§2.7.5.2). */
const MAX_CHAIN_BYTES = 2 ** 32;

/** Addresses at or above 2^52 are not RAM (MAX_GUEST_ADDRESS): a high word ≥ 2^20. */
const MAX_ADDRESS_HIGH = 2 ** 20;

/** Bytes of the descriptor table, avail ring and used ring for `size` entries (§2.7). */
export function queueAreaSizes(size: number): { desc: number; avail: number; used: number } {
  // avail: flags, idx, ring[size], used_event; used: flags, idx, ring[size], avail_event.
  return { desc: DESC_SIZE * size, avail: 6 + 2 * size, used: 6 + USED_ELEM_SIZE * size };
}

/** One guest buffer of a chain, already checked to lie in guest RAM. */
export interface GuestBuffer {
  readonly address: number;
  readonly length: number;
}

/**
 * A validated descriptor chain. Zero-length descriptors are dropped: they
 * carry nothing, and a device must not depend on how a message is split into
 * descriptors anyway (§2.7.4.1).
 */
export interface DescriptorChain {
  /** Head descriptor index: the id to hand back in `addUsed`. */
  readonly head: number;
  /** Device-readable buffers, in order. */
  readonly readable: readonly GuestBuffer[];
  /** Device-writable buffers, in order (they all follow the readable ones, §2.7.4.2). */
  readonly writable: readonly GuestBuffer[];
  readonly readableBytes: number;
  readonly writableBytes: number;
}

/** Why a queue was declared malformed. Each kind names the rule of the spec it breaks. */
export type VirtqueueErrorKind =
  /** Size not a power of 2 in 1..max, a part misaligned, or a part outside RAM (§2.7, §2.7.1). */
  | 'layout'
  /** avail idx moved more than queue size past the device's position (§2.7.13). */
  | 'avail-index'
  /** An avail ring entry or a `next` field names a descriptor outside its table (§2.7.5). */
  | 'descriptor-index'
  /** More descriptors than the queue size: too long, or a loop (§2.7.5.2, §2.7.5.3.1). */
  | 'chain-too-long'
  /** Total buffer length over 2^32 bytes (§2.7.5.2). */
  | 'chain-too-large'
  /** A device-readable descriptor after a device-writable one (§2.7.4.2). */
  | 'readable-after-writable'
  /** A buffer (or indirect table) not entirely in guest RAM. */
  | 'buffer-address'
  /** INDIRECT without VIRTIO_F_INDIRECT_DESC, nested, combined with NEXT, or a bad table length (§2.7.5.3.1). */
  | 'indirect';

export class VirtqueueError extends Error {
  override name = 'VirtqueueError';
  constructor(
    readonly kind: VirtqueueErrorKind,
    message: string,
  ) {
    super(`virtqueue: ${kind}: ${message}`);
  }
}

/** Plain-object state of a queue (driver configuration plus the device's ring positions). */
export interface VirtqueueState {
  size: number;
  ready: boolean;
  descLow: number;
  descHigh: number;
  availLow: number;
  availHigh: number;
  usedLow: number;
  usedHigh: number;
  nextAvail: number;
  nextUsed: number;
  signalledUsed: number;
}

/** Ring features the queue implements; negotiated per device. */
export interface QueueFeatures {
  /** VIRTIO_F_INDIRECT_DESC (28) was negotiated. */
  readonly indirect: boolean;
  /** VIRTIO_F_EVENT_IDX (29) was negotiated. */
  readonly eventIdx: boolean;
}

const u16 = (v: number): number => v & 0xffff;

/** Combines a register pair into an address, or -1 when it cannot be RAM. */
function joinAddress(low: number, high: number): number {
  return high >= MAX_ADDRESS_HIGH ? -1 : high * 2 ** 32 + low;
}

export class Virtqueue {
  // Driver-written configuration (MMIO QueueNum, QueueReady, Queue{Desc,Driver,Device}{Low,High}).
  size: number;
  ready = false;
  descLow = 0;
  descHigh = 0;
  availLow = 0;
  availHigh = 0;
  usedLow = 0;
  usedHigh = 0;

  /** Set once the queue is malformed; the queue does nothing more until reset. */
  error: VirtqueueError | undefined;
  /** Called once, when the queue becomes malformed. */
  onError: ((error: VirtqueueError) => void) | undefined;

  private memory: GuestMemory | undefined;
  private features: QueueFeatures = { indirect: false, eventIdx: false };
  private desc = 0;
  private avail = 0;
  private used = 0;
  /** Stops popping without marking the queue malformed (the device as a whole needs a reset). */
  private halted = false;
  /** Next avail ring position the device will read (free-running 16-bit, §2.7.6). */
  private nextAvail = 0;
  /** Next used ring position the device will write (free-running 16-bit, §2.7.8). */
  private nextUsed = 0;
  /** used idx when the driver was last considered notified (for §2.7.7.2). */
  private signalledUsed = 0;
  private readonly scratch = new Uint8Array(DESC_SIZE);
  private readonly scratchView = new DataView(this.scratch.buffer);

  constructor(readonly maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > MAX_QUEUE_SIZE || (maxSize & (maxSize - 1)) !== 0) {
      throw new RangeError(`virtqueue: maximum size ${maxSize} is not a power of 2 in 1..${MAX_QUEUE_SIZE}`);
    }
    this.size = maxSize;
  }

  /** Back to the state after device reset (§2.4): not ready, no addresses, positions 0. */
  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.descLow = this.descHigh = this.availLow = this.availHigh = this.usedLow = this.usedHigh = 0;
    this.error = undefined;
    this.memory = undefined;
    this.halted = false;
    this.nextAvail = this.nextUsed = this.signalledUsed = 0;
  }

  /** True once activated on a valid layout and not malformed or halted. */
  get active(): boolean {
    return this.memory !== undefined && this.error === undefined && !this.halted;
  }

  /**
   * Starts using the queue (at DRIVER_OK). Checks the layout the driver
   * wrote; on failure the queue is malformed and this returns false. A queue
   * the driver did not make ready is left inactive and returns true.
   */
  activate(memory: GuestMemory, features: QueueFeatures): boolean {
    this.features = features;
    if (!this.ready) return true;
    const size = this.size;
    // §2.7: "Queue Size value is always a power of 2"; §4.2.2.2: at most QueueSizeMax.
    if (!Number.isInteger(size) || size < 1 || size > this.maxSize || (size & (size - 1)) !== 0) {
      return this.fail('layout', `queue size ${size} is not a power of 2 in 1..${this.maxSize}`);
    }
    const areas = queueAreaSizes(size);
    const parts: [string, number, number, number][] = [
      ['descriptor table', joinAddress(this.descLow, this.descHigh), areas.desc, DESC_ALIGN],
      ['available ring', joinAddress(this.availLow, this.availHigh), areas.avail, AVAIL_ALIGN],
      ['used ring', joinAddress(this.usedLow, this.usedHigh), areas.used, USED_ALIGN],
    ];
    for (const [name, address, length, align] of parts) {
      // §2.7.1: each part starts at a multiple of its alignment.
      if (address < 0 || address % align !== 0) return this.fail('layout', `${name} at 0x${address.toString(16)} is not ${align}-byte aligned RAM`);
      if (!memory.isValid(address, length)) return this.fail('layout', `${name} 0x${address.toString(16)}+${length} is not in guest RAM`);
    }
    this.desc = parts[0]![1];
    this.avail = parts[1]![1];
    this.used = parts[2]![1];
    this.memory = memory;
    return true;
  }

  /** Stops handing out chains (the device entered DEVICE_NEEDS_RESET for another reason). */
  halt(): void {
    this.halted = true;
  }

  private fail(kind: VirtqueueErrorKind, message: string): false {
    if (this.error === undefined) {
      this.error = new VirtqueueError(kind, message);
      this.onError?.(this.error);
    }
    return false;
  }

  /** avail idx minus the device's position: how many chains wait, or -1 if the ring is malformed. */
  private pending(memory: GuestMemory): number {
    const availIdx = memory.readU16(this.avail + 2);
    const n = u16(availIdx - this.nextAvail);
    // §2.7.13: the ring holds at most Queue Size heads; a larger distance means a corrupt idx.
    if (n > this.size) {
      this.fail('avail-index', `avail idx ${availIdx} is ${n} entries past ${this.nextAvail}, more than queue size ${this.size}`);
      return -1;
    }
    return n;
  }

  /** Number of chains the driver has made available and the device not yet popped (0 when inactive). */
  availableCount(): number {
    const memory = this.memory;
    if (!memory || !this.active) return 0;
    return Math.max(0, this.pending(memory));
  }

  /**
   * The next available chain, validated, or undefined when there is none or
   * the queue is (or just became) malformed. With VIRTIO_F_EVENT_IDX, an
   * empty ring also publishes avail_event = our position and looks once more,
   * so a chain the driver added meanwhile is not left without a notification
   * (§2.7.10).
   */
  popChain(): DescriptorChain | undefined {
    const memory = this.memory;
    if (!memory || !this.active) return undefined;
    let n = this.pending(memory);
    if (n === 0 && this.features.eventIdx) {
      memory.writeU16(this.used + RING_HEADER + USED_ELEM_SIZE * this.size, this.nextAvail);
      n = this.pending(memory);
    }
    if (n <= 0) return undefined;
    const head = memory.readU16(this.avail + RING_HEADER + 2 * (this.nextAvail % this.size));
    const chain = this.walk(memory, head);
    if (!chain) return undefined;
    this.nextAvail = u16(this.nextAvail + 1);
    return chain;
  }

  /** Gives back the chain just popped: it will be popped again (e.g. the device is out of budget). */
  undoPop(): void {
    this.nextAvail = u16(this.nextAvail - 1);
  }

  private walk(memory: GuestMemory, head: number): DescriptorChain | undefined {
    // §2.7.5: the avail ring names a descriptor of the table, which has Queue Size entries.
    if (head >= this.size) {
      this.fail('descriptor-index', `chain head ${head} is outside the ${this.size}-entry table`);
      return undefined;
    }
    const readable: GuestBuffer[] = [];
    const writable: GuestBuffer[] = [];
    let readableBytes = 0;
    let writableBytes = 0;
    let table = this.desc;
    let tableSize = this.size;
    let indirect = false;
    let index = head;
    let count = 0;
    let seenWritable = false;
    const sv = this.scratchView;
    for (;;) {
      // §2.7.5.3.1: no chain is longer than Queue Size, indirect part included.
      // This bound is also what ends a loop of `next` links (§2.7.5.2).
      if (++count > this.size) {
        this.fail('chain-too-long', `chain at head ${head} has more than ${this.size} descriptors`);
        return undefined;
      }
      // One read of the whole descriptor: the fields checked are the fields used.
      memory.readInto(table + DESC_SIZE * index, this.scratch);
      const addrLow = sv.getUint32(0, true);
      const addrHigh = sv.getUint32(4, true);
      const len = sv.getUint32(8, true);
      const flags = sv.getUint16(12, true);
      const next = sv.getUint16(14, true);
      const address = joinAddress(addrLow, addrHigh);

      if (flags & VIRTQ_DESC_F_INDIRECT) {
        // §2.7.5.3.1 rules, in order: negotiated, one table per descriptor, not with NEXT.
        if (!this.features.indirect) return this.bad(head, 'indirect', 'INDIRECT without VIRTIO_F_INDIRECT_DESC');
        if (indirect) return this.bad(head, 'indirect', 'INDIRECT inside an indirect table');
        if (flags & VIRTQ_DESC_F_NEXT) return this.bad(head, 'indirect', 'INDIRECT together with NEXT');
        // §2.7.5.3: the table is desc[len / 16]; a table longer than the queue could only hold a chain §2.7.5.3.1 forbids.
        if (len === 0 || len % DESC_SIZE !== 0 || len / DESC_SIZE > this.size) {
          return this.bad(head, 'indirect', `indirect table of ${len} bytes is not 16..${DESC_SIZE * this.size} bytes in 16-byte entries`);
        }
        if (address < 0 || !memory.isValid(address, len)) {
          return this.bad(head, 'buffer-address', `indirect table 0x${addrHigh.toString(16)}${addrLow.toString(16).padStart(8, '0')}+${len} is not in guest RAM`);
        }
        // §2.7.5.3.2: the WRITE flag of the descriptor naming the table is ignored.
        table = address;
        tableSize = len / DESC_SIZE;
        indirect = true;
        index = 0;
        count--; // the descriptor naming the table carries no buffer
        continue;
      }

      if (flags & VIRTQ_DESC_F_WRITE) {
        seenWritable = true;
        if (len > 0) {
          if (address < 0 || !memory.isValid(address, len)) return this.badBuffer(head, addrLow, addrHigh, len);
          writable.push({ address, length: len });
          writableBytes += len;
        }
      } else {
        // §2.7.4.2: device-writable descriptors come after all device-readable ones.
        if (seenWritable) return this.bad(head, 'readable-after-writable', 'device-readable descriptor after a device-writable one');
        if (len > 0) {
          if (address < 0 || !memory.isValid(address, len)) return this.badBuffer(head, addrLow, addrHigh, len);
          readable.push({ address, length: len });
          readableBytes += len;
        }
      }
      // §2.7.5.2: at most 2^32 bytes per chain.
      if (readableBytes + writableBytes > MAX_CHAIN_BYTES) return this.bad(head, 'chain-too-large', 'more than 2^32 bytes in total');

      if (!(flags & VIRTQ_DESC_F_NEXT)) break;
      // §2.7.5 / §2.7.5.3: `next` indexes the table the descriptor sits in.
      if (next >= tableSize) return this.bad(head, 'descriptor-index', `next ${next} is outside the ${tableSize}-entry ${indirect ? 'indirect ' : ''}table`);
      index = next;
    }
    return { head, readable, writable, readableBytes, writableBytes };
  }

  private bad(head: number, kind: VirtqueueErrorKind, message: string): undefined {
    this.fail(kind, `chain at head ${head}: ${message}`);
    return undefined;
  }

  private badBuffer(head: number, low: number, high: number, len: number): undefined {
    const addr = high.toString(16) + low.toString(16).padStart(8, '0');
    return this.bad(head, 'buffer-address', `buffer 0x${addr.replace(/^0+(?=.)/, '')}+${len} is not in guest RAM`);
  }

  /**
   * Returns chain `head` to the driver with `len` bytes written into its
   * device-writable buffers. The element is written before used idx
   * (§2.7.8.2). Does nothing on an inactive queue (after reset or on a
   * malformed queue the driver no longer owns a consistent ring).
   */
  addUsed(head: number, len: number): void {
    const memory = this.memory;
    if (!memory || this.error) return;
    if (!Number.isInteger(head) || head < 0 || head >= this.size) throw new RangeError(`virtqueue: used head ${head} out of range`);
    if (!Number.isInteger(len) || len < 0 || len > 0xffff_ffff) throw new RangeError(`virtqueue: used length ${len} out of range`);
    const elem = this.used + RING_HEADER + USED_ELEM_SIZE * (this.nextUsed % this.size);
    memory.writeU32(elem, head);
    memory.writeU32(elem + 4, len);
    this.nextUsed = u16(this.nextUsed + 1);
    memory.writeU16(this.used + 2, this.nextUsed);
  }

  /**
   * Whether the used buffers added since the last call need a used-buffer
   * notification (§2.7.7.2). Call after a batch of `addUsed`; a true answer
   * is consumed (the next call only considers newer entries).
   */
  needsInterrupt(): boolean {
    const memory = this.memory;
    if (!memory || this.error) return false;
    const old = this.signalledUsed;
    const now = this.nextUsed;
    if (old === now) return false;
    this.signalledUsed = now;
    if (this.features.eventIdx) {
      // Notify when used idx stepped over used_event: the element at index
      // used_event is among those added since `old` (§2.7.7.2, vring_need_event).
      const usedEvent = memory.readU16(this.avail + RING_HEADER + 2 * this.size);
      return u16(now - usedEvent - 1) < u16(now - old);
    }
    return (memory.readU16(this.avail) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
  }

  saveState(): VirtqueueState {
    return {
      size: this.size,
      ready: this.ready,
      descLow: this.descLow,
      descHigh: this.descHigh,
      availLow: this.availLow,
      availHigh: this.availHigh,
      usedLow: this.usedLow,
      usedHigh: this.usedHigh,
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
      signalledUsed: this.signalledUsed,
    };
  }

  /** Restores driver configuration and ring positions; the queue is inactive until `activate`. */
  restoreState(s: VirtqueueState): void {
    this.reset();
    this.size = s.size;
    this.ready = s.ready;
    this.descLow = s.descLow;
    this.descHigh = s.descHigh;
    this.availLow = s.availLow;
    this.availHigh = s.availHigh;
    this.usedLow = s.usedLow;
    this.usedHigh = s.usedHigh;
    this.nextAvail = s.nextAvail;
    this.nextUsed = s.nextUsed;
    this.signalledUsed = s.signalledUsed;
  }
}
