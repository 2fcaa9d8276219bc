/**
 * A mock virtio driver for tests of the queue, the transport and every
 * device: it lays a split virtqueue out in a GuestMemory the way a guest
 * driver does, adds chains (direct or through an indirect table), reads the
 * used ring back, and drives a virtio-mmio transport through its registers
 * in the order of §3.1.1 (as Linux's virtio_mmio does).
 *
 * It writes raw descriptors too, so tests can build malformed queues on
 * purpose; nothing here checks what it is asked to write.
 */
import type { BusDevice } from '../bus/index.js';
import type { GuestMemory } from '../memory/index.js';
import { STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK } from './device.js';
import {
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW,
  VIRTIO_MMIO_QUEUE_DRIVER_HIGH,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_STATUS,
} from './mmio.js';
import { DESC_SIZE, VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, queueAreaSizes } from './queue.js';

/** One raw struct virtq_desc. `address` may be a bigint to reach the full 64 bits. */
export interface RawDescriptor {
  address: number | bigint;
  length: number;
  flags: number;
  next: number;
}

/** A buffer of a chain the mock driver builds. */
export interface MockBuffer {
  address: number;
  length: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE). */
  writable?: boolean;
}

export interface UsedElement {
  id: number;
  len: number;
}

/** Where a queue's three parts live in guest memory. */
export interface QueueLayout {
  size: number;
  desc: number;
  avail: number;
  used: number;
}

/** Lays the parts of a `size`-entry queue out from `base` (16-byte aligned): table, avail ring, used ring. */
export function layoutQueue(base: number, size: number): QueueLayout {
  const a = queueAreaSizes(size);
  const avail = base + a.desc;
  const used = (avail + a.avail + 3) & ~3;
  return { size, desc: base, avail, used };
}

/** Writes one raw descriptor into a table at `table`. */
export function writeDescriptor(memory: GuestMemory, table: number, index: number, d: RawDescriptor): void {
  const at = table + DESC_SIZE * index;
  memory.writeU64(at, BigInt(d.address));
  memory.writeU32(at + 8, d.length);
  memory.writeU16(at + 12, d.flags);
  memory.writeU16(at + 14, d.next);
}

/** The driver's side of one split virtqueue. */
export class MockVirtqueue {
  readonly layout: QueueLayout;
  /** Next descriptor slot handed out by `addChain` (wraps; tests keep chains short). */
  private nextDesc = 0;
  /** The driver's copy of avail idx. */
  private availIdx = 0;
  /** How far `takeUsed` has read the used ring. */
  private lastUsed = 0;

  constructor(
    readonly memory: GuestMemory,
    layout: QueueLayout,
  ) {
    this.layout = layout;
    memory.fill(layout.desc, queueAreaSizes(layout.size).desc);
    memory.fill(layout.avail, queueAreaSizes(layout.size).avail);
    memory.fill(layout.used, queueAreaSizes(layout.size).used);
  }

  writeDescriptor(index: number, d: RawDescriptor): void {
    writeDescriptor(this.memory, this.layout.desc, index, d);
  }

  /**
   * Builds a chain of `buffers` in the descriptor table and publishes it;
   * returns its head. With `indirectTable`, the buffers go into an indirect
   * table at that address and one table descriptor refers to it.
   */
  addChain(buffers: readonly MockBuffer[], options: { indirectTable?: number } = {}): number {
    const size = this.layout.size;
    const flagsOf = (b: MockBuffer, last: boolean): number => (b.writable ? VIRTQ_DESC_F_WRITE : 0) | (last ? 0 : VIRTQ_DESC_F_NEXT);
    let head: number;
    if (options.indirectTable !== undefined) {
      const table = options.indirectTable;
      buffers.forEach((b, i) => writeDescriptor(this.memory, table, i, { address: b.address, length: b.length, flags: flagsOf(b, i === buffers.length - 1), next: i + 1 }));
      head = this.nextDesc;
      this.writeDescriptor(head, { address: table, length: DESC_SIZE * buffers.length, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      this.nextDesc = (this.nextDesc + 1) % size;
    } else {
      if (buffers.length === 0 || buffers.length > size) throw new RangeError(`mock driver: a chain needs 1..${size} buffers`);
      const slots = buffers.map((_, i) => (this.nextDesc + i) % size);
      buffers.forEach((b, i) => this.writeDescriptor(slots[i]!, { address: b.address, length: b.length, flags: flagsOf(b, i === buffers.length - 1), next: slots[i + 1] ?? 0 }));
      head = slots[0]!;
      this.nextDesc = (this.nextDesc + buffers.length) % size;
    }
    this.publish(head);
    return head;
  }

  /** Puts `head` in the next avail ring slot and bumps avail idx (ring entry first, §2.7.13.2–3). */
  publish(head: number): void {
    const { avail, size } = this.layout;
    this.memory.writeU16(avail + 4 + 2 * (this.availIdx % size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    this.memory.writeU16(avail + 2, this.availIdx);
  }

  /** Sets avail idx directly (to test wrap-around and corrupt indices); `publish` continues from it. */
  setAvailIdx(idx: number): void {
    this.availIdx = idx & 0xffff;
    this.memory.writeU16(this.layout.avail + 2, this.availIdx);
  }

  /** Moves the driver's and the ring's positions as if `idx` chains had already gone round (both rings). */
  startAt(idx: number): void {
    this.setAvailIdx(idx);
    this.memory.writeU16(this.layout.used + 2, idx & 0xffff);
    this.lastUsed = idx & 0xffff;
  }

  setAvailFlags(flags: number): void {
    this.memory.writeU16(this.layout.avail, flags);
  }

  /** used_event, at the end of the avail ring (§2.7.7). */
  setUsedEvent(idx: number): void {
    this.memory.writeU16(this.layout.avail + 4 + 2 * this.layout.size, idx & 0xffff);
  }

  /** avail_event, at the end of the used ring (§2.7.10). */
  availEvent(): number {
    return this.memory.readU16(this.layout.used + 4 + 8 * this.layout.size);
  }

  usedIdx(): number {
    return this.memory.readU16(this.layout.used + 2);
  }

  /** Used elements added since the last call, oldest first. */
  takeUsed(): UsedElement[] {
    const { used, size } = this.layout;
    const end = this.usedIdx();
    const out: UsedElement[] = [];
    while (this.lastUsed !== end) {
      const at = used + 4 + 8 * (this.lastUsed % size);
      out.push({ id: this.memory.readU32(at), len: this.memory.readU32(at + 4) });
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    return out;
  }
}

/** Drives a virtio-mmio transport through 32-bit register accesses, like a guest. */
export class MockMmioDriver {
  constructor(readonly transport: BusDevice) {}

  read32(offset: number): number {
    const b = new Uint8Array(4);
    this.transport.read(offset, b);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  write32(offset: number, value: number): void {
    this.transport.write(offset, Uint8Array.of(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff));
  }

  deviceFeatures(): bigint {
    this.write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    const low = this.read32(VIRTIO_MMIO_DEVICE_FEATURES);
    this.write32(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    const high = this.read32(VIRTIO_MMIO_DEVICE_FEATURES);
    return (BigInt(high) << 32n) | BigInt(low);
  }

  writeDriverFeatures(features: bigint): void {
    this.write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    this.write32(VIRTIO_MMIO_DRIVER_FEATURES, Number(features & 0xffff_ffffn));
    this.write32(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    this.write32(VIRTIO_MMIO_DRIVER_FEATURES, Number((features >> 32n) & 0xffff_ffffn));
  }

  status(): number {
    return this.read32(VIRTIO_MMIO_STATUS);
  }

  /** Adds status bits the way Linux's virtio_add_status does (read, or, write). */
  addStatus(bits: number): void {
    this.write32(VIRTIO_MMIO_STATUS, this.status() | bits);
  }

  /** Programs queue `index` (QueueSel, QueueNum, the three addresses, QueueReady = 1). */
  setupQueue(index: number, layout: QueueLayout): void {
    const split = (v: number): [number, number] => [v % 2 ** 32, Math.floor(v / 2 ** 32)];
    this.write32(VIRTIO_MMIO_QUEUE_SEL, index);
    this.write32(VIRTIO_MMIO_QUEUE_NUM, layout.size);
    const [dl, dh] = split(layout.desc);
    const [al, ah] = split(layout.avail);
    const [ul, uh] = split(layout.used);
    this.write32(VIRTIO_MMIO_QUEUE_DESC_LOW, dl);
    this.write32(VIRTIO_MMIO_QUEUE_DESC_HIGH, dh);
    this.write32(VIRTIO_MMIO_QUEUE_DRIVER_LOW, al);
    this.write32(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, ah);
    this.write32(VIRTIO_MMIO_QUEUE_DEVICE_LOW, ul);
    this.write32(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, uh);
    this.write32(VIRTIO_MMIO_QUEUE_READY, 1);
  }

  queueNumMax(index: number): number {
    this.write32(VIRTIO_MMIO_QUEUE_SEL, index);
    return this.read32(VIRTIO_MMIO_QUEUE_NUM_MAX);
  }

  /**
   * The initialisation sequence of §3.1.1: reset, ACKNOWLEDGE, DRIVER,
   * features (default: all offered), FEATURES_OK, queues, DRIVER_OK.
   * Returns the final status; the caller checks it.
   */
  init(queues: readonly QueueLayout[], features?: (offered: bigint) => bigint): number {
    this.write32(VIRTIO_MMIO_STATUS, 0);
    this.addStatus(STATUS_ACKNOWLEDGE);
    this.addStatus(STATUS_DRIVER);
    const offered = this.deviceFeatures();
    this.writeDriverFeatures(features ? features(offered) : offered);
    this.addStatus(STATUS_FEATURES_OK);
    if (!(this.status() & STATUS_FEATURES_OK)) return this.status();
    queues.forEach((q, i) => this.setupQueue(i, q));
    this.addStatus(STATUS_DRIVER_OK);
    return this.status();
  }

  notify(queue: number): void {
    this.write32(VIRTIO_MMIO_QUEUE_NOTIFY, queue);
  }

  /** What Linux's vm_interrupt does first: read InterruptStatus and acknowledge exactly those bits. */
  ackInterrupt(): number {
    const s = this.read32(VIRTIO_MMIO_INTERRUPT_STATUS);
    this.write32(VIRTIO_MMIO_INTERRUPT_ACK, s);
    return s;
  }
}
