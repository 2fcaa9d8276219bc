/**
 * virtio-blk, the block device (virtio 1.2 §5.2): one request queue; each
 * chain is a request (IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES) served
 * from a `BlockBackend`.
 *
 * Event handling: a queue notification calls `processQueue(0)`, which parses
 * every available chain at once (`parseRequest`), answers bad ones on the
 * spot and starts the rest as asynchronous backend operations. Each
 * completes on its own, so requests finish out of order, each with its own
 * used element. At most `maxInFlight` run at once; past that the chains stay
 * in the ring and the next completion resumes popping. Data moves through a
 * host bounce buffer of at most IO_CHUNK bytes per request, copied from and
 * to guest RAM by checked GuestMemory accesses: the backend never holds a
 * view of guest memory, and a completion that arrives after a device reset
 * touches neither the ring nor the buffers.
 */
import type { GuestMemory } from '../../memory/index.js';
import { readFromBuffers, writeToBuffers } from '../chain.js';
import { VIRTIO_ID_BLOCK, VIRTIO_RING_FEATURES, type VirtioActivation, type VirtioDevice } from '../device.js';
import type { GuestBuffer } from '../queue.js';
import type { BlockBackend } from './backend.js';
import { BlockMetrics } from './metrics.js';
import {
  SECTOR_SIZE,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  parseRequest,
  splitStatus,
  type BlockRange,
  type ParsedRequest,
  type RequestLimits,
} from './request.js';
import { readBlockState, type BlockState } from './state.js';

// Feature bits (§5.2.3).
/** size_max holds the largest segment (not offered: any segment size is fine). */
export const VIRTIO_BLK_F_SIZE_MAX = 1n << 1n;
/** seg_max holds the most data segments per request. */
export const VIRTIO_BLK_F_SEG_MAX = 1n << 2n;
/** The device is read-only. */
export const VIRTIO_BLK_F_RO = 1n << 5n;
/** blk_size holds the logical block size. */
export const VIRTIO_BLK_F_BLK_SIZE = 1n << 6n;
/** FLUSH requests; without it negotiated every write is stable on completion (§5.2.6.2). */
export const VIRTIO_BLK_F_FLUSH = 1n << 9n;
/** Multiple queues (not offered). */
export const VIRTIO_BLK_F_MQ = 1n << 12n;
/** DISCARD requests and their limits in configuration space. */
export const VIRTIO_BLK_F_DISCARD = 1n << 13n;
/** WRITE_ZEROES requests and their limits in configuration space. */
export const VIRTIO_BLK_F_WRITE_ZEROES = 1n << 14n;

// struct virtio_blk_config offsets (§5.2.4).
/** le64 capacity, in 512-byte sectors. */
export const BLK_CONFIG_CAPACITY = 0;
/** le32 seg_max. */
export const BLK_CONFIG_SEG_MAX = 12;
/** le32 blk_size. */
export const BLK_CONFIG_BLK_SIZE = 20;
/** le32 max_discard_sectors, max_discard_seg, discard_sector_alignment. */
export const BLK_CONFIG_MAX_DISCARD_SECTORS = 36;
export const BLK_CONFIG_MAX_DISCARD_SEG = 40;
export const BLK_CONFIG_DISCARD_SECTOR_ALIGNMENT = 44;
/** le32 max_write_zeroes_sectors, max_write_zeroes_seg; u8 write_zeroes_may_unmap. */
export const BLK_CONFIG_MAX_WRITE_ZEROES_SECTORS = 48;
export const BLK_CONFIG_MAX_WRITE_ZEROES_SEG = 52;
export const BLK_CONFIG_WRITE_ZEROES_MAY_UNMAP = 56;
/** Size of the configuration space up to and including the secure-erase fields. */
export const BLK_CONFIG_SIZE = 72;

/** Queue 0: requestq (§5.2.2). */
const REQUEST_QUEUE = 0;
/** Default request queue size, as Firecracker and Cloud Hypervisor use. */
export const BLK_QUEUE_SIZE = 256;
/** Default bound on requests running on the backend at once. */
export const BLK_MAX_IN_FLIGHT = 64;
/** Largest host bounce buffer per request: bigger requests move in pieces of this size. */
export const IO_CHUNK = 256 * 1024;
/** Sectors one DISCARD/WRITE_ZEROES range may cover (2 GiB, a 32-bit byte count). */
export const MAX_DISCARD_SECTORS = 0x40_0000;
/** Ranges per DISCARD/WRITE_ZEROES request. */
export const MAX_DISCARD_SEGMENTS = 32;
/** Discard granularity reported to the guest: 8 sectors, one 4 KiB file-system block. */
export const DISCARD_SECTOR_ALIGNMENT = 8;

export interface VirtioBlockOptions {
  backend: BlockBackend;
  /** The drive's ID; GET_ID answers its first 20 bytes, NUL-padded. */
  id: string;
  /** Request queue size (a power of 2, ≥ 4). Default BLK_QUEUE_SIZE. */
  queueSize?: number;
  /** Requests in flight at most. Default BLK_MAX_IN_FLIGHT. */
  maxInFlight?: number;
}

/** The backend a request runs on: a replaced backend is closed once its last request ends. */
interface Attached {
  backend: BlockBackend;
  users: number;
  retired: boolean;
}

/** Thrown inside a request when the device was reset under it: nothing more may touch guest memory. */
class Stale extends Error {}
/** A failed backend operation: the request ends with VIRTIO_BLK_S_IOERR. */
class HostIoError extends Error {}

export class VirtioBlock implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly queueMaxSizes: readonly number[];
  readonly features: bigint;
  readonly metrics = new BlockMetrics();
  readonly id: string;

  private attached: Attached;
  private readonly idBytes = new Uint8Array(VIRTIO_BLK_ID_BYTES);
  private readonly maxInFlight: number;
  private readonly segMax: number;
  private act: VirtioActivation | undefined;
  /** Bumped on reset: requests of an older generation end without touching the guest. */
  private generation = 0;
  private inFlightCount = 0;
  private stalled = false;
  private writeThrough = false;
  private limits: RequestLimits;
  private drainWaiters: (() => void)[] = [];

  constructor(options: VirtioBlockOptions) {
    const queueSize = options.queueSize ?? BLK_QUEUE_SIZE;
    if (!Number.isInteger(queueSize) || queueSize < 4 || (queueSize & (queueSize - 1)) !== 0) throw new RangeError(`virtio-blk: queue size ${queueSize} is not a power of 2 ≥ 4`);
    const maxInFlight = options.maxInFlight ?? BLK_MAX_IN_FLIGHT;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) throw new RangeError(`virtio-blk: maxInFlight ${maxInFlight} must be a positive integer`);
    const backend = options.backend;
    if (!Number.isSafeInteger(backend.sizeBytes) || backend.sizeBytes < 0 || backend.sizeBytes % SECTOR_SIZE !== 0) {
      throw new RangeError(`virtio-blk: backend size ${backend.sizeBytes} is not a whole number of ${SECTOR_SIZE}-byte sectors`);
    }
    this.queueMaxSizes = [queueSize];
    this.maxInFlight = maxInFlight;
    // Two descriptors of a chain carry the header and the status byte.
    this.segMax = queueSize - 2;
    this.id = options.id;
    new TextEncoder().encodeInto(options.id, this.idBytes);
    this.attached = { backend, users: 0, retired: false };
    const writable = backend.readOnly ? VIRTIO_BLK_F_RO : VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;
    this.features = VIRTIO_RING_FEATURES | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | writable;
    this.limits = this.makeLimits(0n);
  }

  get backend(): BlockBackend {
    return this.attached.backend;
  }

  /** Disk size in 512-byte sectors. */
  get capacity(): number {
    return this.attached.backend.sizeBytes / SECTOR_SIZE;
  }

  get readOnly(): boolean {
    return this.attached.backend.readOnly;
  }

  /** Requests running on the backend now. */
  get inFlight(): number {
    return this.inFlightCount;
  }

  private makeLimits(features: bigint): RequestLimits {
    return {
      capacity: this.capacity,
      readOnly: this.readOnly,
      discard: (features & VIRTIO_BLK_F_DISCARD) !== 0n,
      writeZeroes: (features & VIRTIO_BLK_F_WRITE_ZEROES) !== 0n,
      maxDiscardSectors: MAX_DISCARD_SECTORS,
      maxDiscardSegments: MAX_DISCARD_SEGMENTS,
      maxWriteZeroesSectors: MAX_DISCARD_SECTORS,
      maxWriteZeroesSegments: MAX_DISCARD_SEGMENTS,
    };
  }

  /** struct virtio_blk_config (§5.2.4); fields of features not offered read 0. */
  private configSpace(): Uint8Array {
    const c = new Uint8Array(BLK_CONFIG_SIZE);
    const v = new DataView(c.buffer);
    v.setBigUint64(BLK_CONFIG_CAPACITY, BigInt(this.capacity), true);
    v.setUint32(BLK_CONFIG_SEG_MAX, this.segMax, true);
    v.setUint32(BLK_CONFIG_BLK_SIZE, SECTOR_SIZE, true);
    if (this.features & VIRTIO_BLK_F_DISCARD) {
      v.setUint32(BLK_CONFIG_MAX_DISCARD_SECTORS, MAX_DISCARD_SECTORS, true);
      v.setUint32(BLK_CONFIG_MAX_DISCARD_SEG, MAX_DISCARD_SEGMENTS, true);
      v.setUint32(BLK_CONFIG_DISCARD_SECTOR_ALIGNMENT, DISCARD_SECTOR_ALIGNMENT, true);
    }
    if (this.features & VIRTIO_BLK_F_WRITE_ZEROES) {
      v.setUint32(BLK_CONFIG_MAX_WRITE_ZEROES_SECTORS, MAX_DISCARD_SECTORS, true);
      v.setUint32(BLK_CONFIG_MAX_WRITE_ZEROES_SEG, MAX_DISCARD_SEGMENTS, true);
      c[BLK_CONFIG_WRITE_ZEROES_MAY_UNMAP] = this.attached.backend.canUnmap ? 1 : 0;
    }
    return c;
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (offset < 0 || offset >= BLK_CONFIG_SIZE) return;
    const c = this.configSpace();
    data.set(c.subarray(offset, Math.min(BLK_CONFIG_SIZE, offset + data.length)));
  }

  /** Every field is read-only without VIRTIO_BLK_F_CONFIG_WCE (not offered): writes are ignored. */
  writeConfig(): void {}

  activate(activation: VirtioActivation): void {
    this.act = activation;
    // §5.2.6.2 / §5.2.6 "stable writes": FLUSH offered but not negotiated means write-through.
    this.writeThrough = (activation.features & VIRTIO_BLK_F_FLUSH) === 0n;
    this.limits = this.makeLimits(activation.features);
    this.processQueue(REQUEST_QUEUE);
  }

  reset(): void {
    this.act = undefined;
    this.generation++;
    this.stalled = false;
    this.limits = this.makeLimits(0n);
  }

  processQueue(index: number): void {
    const act = this.act;
    if (!act || index !== REQUEST_QUEUE) return;
    const q = act.queues[REQUEST_QUEUE]!;
    let used = false;
    for (;;) {
      if (this.inFlightCount >= this.maxInFlight) {
        // Leave the rest in the ring; the next completion comes back for them.
        if (q.availableCount() > 0) {
          this.metrics.throttled++;
          this.stalled = true;
        }
        break;
      }
      const chain = q.popChain();
      if (!chain) break;
      const parts = splitStatus(chain);
      const req = parseRequest(act.memory, chain, this.limits, parts);
      if (req.kind === 'needs-reset' || !parts) {
        act.needsReset(`virtio-blk: ${req.kind === 'needs-reset' ? req.reason : 'no status byte'}`);
        return;
      }
      if (req.kind === 'answer') {
        if (req.status === VIRTIO_BLK_S_UNSUPP) this.metrics.unsupported++;
        else this.metrics.badRequests++;
        act.memory.writeU8(parts.status.address, req.status);
        q.addUsed(chain.head, 1);
        used = true;
        continue;
      }
      if (req.kind === 'get-id') {
        writeToBuffers(act.memory, req.data, 0, this.idBytes.subarray(0, req.bytes));
        act.memory.writeU8(parts.status.address, VIRTIO_BLK_S_OK);
        q.addUsed(chain.head, req.bytes + 1);
        this.metrics.getIds++;
        used = true;
        continue;
      }
      this.start(act, chain.head, parts.status, req);
    }
    if (used && q.needsInterrupt()) act.interrupt.trigger('used');
  }

  private start(act: VirtioActivation, head: number, status: GuestBuffer, req: Exclude<ParsedRequest, { kind: 'needs-reset' | 'answer' | 'get-id' }>): void {
    const gen = this.generation;
    const attached = this.attached;
    attached.users++;
    this.inFlightCount++;
    this.run(act.memory, gen, attached.backend, req).then(
      (dataBytes) => this.finish(gen, head, status, VIRTIO_BLK_S_OK, dataBytes),
      (e: unknown) => {
        if (e instanceof Stale) return;
        if (e instanceof HostIoError) {
          this.metrics.ioErrors++;
          this.finish(gen, head, status, VIRTIO_BLK_S_IOERR, 0);
          return;
        }
        // Anything else is a device fault (e.g. guest memory refused a validated buffer): stop the device.
        if (gen === this.generation) this.act?.needsReset(`virtio-blk: ${e instanceof Error ? e.message : String(e)}`);
      },
    ).finally(() => {
      this.inFlightCount--;
      if (--attached.users === 0 && attached.retired) void attached.backend.close().catch(() => {});
      if (this.inFlightCount === 0) for (const w of this.drainWaiters.splice(0)) w();
      if (this.stalled && this.inFlightCount < this.maxInFlight && gen === this.generation && this.act) {
        this.stalled = false;
        this.guarded(() => this.processQueue(REQUEST_QUEUE));
      }
    });
  }

  /** Carries out one request; resolves with the data bytes written into the guest's buffers. */
  private async run(memory: GuestMemory, gen: number, backend: BlockBackend, req: Exclude<ParsedRequest, { kind: 'needs-reset' | 'answer' | 'get-id' }>): Promise<number> {
    const live = (): void => {
      if (gen !== this.generation) throw new Stale();
    };
    const io = async (op: Promise<void>): Promise<void> => {
      try {
        await op;
      } catch (e) {
        throw new HostIoError(e instanceof Error ? e.message : String(e));
      }
      live();
    };
    switch (req.kind) {
      case 'read': {
        const bounce = new Uint8Array(Math.min(req.bytes, IO_CHUNK));
        for (let off = 0; off < req.bytes; off += bounce.length) {
          const view = bounce.subarray(0, Math.min(bounce.length, req.bytes - off));
          await io(backend.read(view, req.sector * SECTOR_SIZE + off));
          writeToBuffers(memory, req.data, off, view);
        }
        this.metrics.reads++;
        this.metrics.readBytes += req.bytes;
        return req.bytes;
      }
      case 'write': {
        const bounce = new Uint8Array(Math.min(req.bytes, IO_CHUNK));
        for (let off = 0; off < req.bytes; off += bounce.length) {
          live();
          const view = bounce.subarray(0, Math.min(bounce.length, req.bytes - off));
          readFromBuffers(memory, req.data, off, view);
          await io(backend.write(view, req.sector * SECTOR_SIZE + off));
        }
        if (this.writeThrough) {
          await io(backend.flush());
          this.metrics.flushes++;
        }
        this.metrics.writes++;
        this.metrics.writeBytes += req.bytes;
        return 0;
      }
      case 'flush':
        await io(backend.flush());
        this.metrics.flushes++;
        return 0;
      case 'discard':
      case 'write-zeroes': {
        const zero = req.kind === 'write-zeroes';
        for (const r of req.ranges as BlockRange[]) {
          const pos = r.sector * SECTOR_SIZE;
          const len = r.sectors * SECTOR_SIZE;
          await io(zero ? backend.writeZeroes(pos, len, r.unmap) : backend.discard(pos, len));
        }
        if (zero && this.writeThrough) await io(backend.flush());
        if (zero) this.metrics.writeZeroes++;
        else this.metrics.discards++;
        return 0;
      }
    }
  }

  /** Publishes a finished request: status byte, used element (data + status), interrupt if due. */
  private finish(gen: number, head: number, status: GuestBuffer, code: number, dataBytes: number): void {
    const act = this.act;
    if (gen !== this.generation || !act) return;
    this.guarded(() => {
      act.memory.writeU8(status.address, code);
      const q = act.queues[REQUEST_QUEUE]!;
      q.addUsed(head, dataBytes + 1);
      if (q.needsInterrupt()) act.interrupt.trigger('used');
    });
  }

  /** Completions run outside the transport's call path: a fault here must still end as DEVICE_NEEDS_RESET. */
  private guarded(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.act?.needsReset(`virtio-blk: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Resolves once no request is running on the backend (before a snapshot, or to close). */
  drain(): Promise<void> {
    if (this.inFlightCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Swaps the storage under a running device (a new path for the same
   * drive): requests already running finish on the old backend, which is
   * then closed; the guest gets a configuration change notification so it
   * rereads the capacity (Linux's virtblk_config_changed). The read-only
   * property is part of the negotiated features and cannot change.
   */
  replaceBackend(backend: BlockBackend): void {
    if (backend.readOnly !== this.readOnly) throw new Error(`virtio-blk ${this.id}: the new disk must be ${this.readOnly ? 'read-only' : 'read-write'} like the one it replaces`);
    if (!Number.isSafeInteger(backend.sizeBytes) || backend.sizeBytes % SECTOR_SIZE !== 0) throw new RangeError(`virtio-blk ${this.id}: backend size ${backend.sizeBytes} is not a whole number of sectors`);
    const old = this.attached;
    this.attached = { backend, users: 0, retired: false };
    old.retired = true;
    if (old.users === 0) void old.backend.close().catch(() => {});
    const act = this.act;
    if (act) {
      this.limits = this.makeLimits(act.features);
      act.interrupt.trigger('config');
    } else {
      this.limits = this.makeLimits(0n);
    }
  }

  /** Waits for running requests, then closes the backend. The device must not be used afterwards. */
  async close(): Promise<void> {
    this.reset();
    await this.drain();
    this.attached.retired = true;
    await this.attached.backend.close();
  }

  /** Snapshot state; the device must be drained first (`drain()`), as requests in flight cannot be saved. */
  saveState(): BlockState {
    if (this.inFlightCount > 0) throw new Error(`virtio-blk ${this.id}: ${this.inFlightCount} requests in flight; drain before saving`);
    return { capacity: this.capacity, readOnly: this.readOnly };
  }

  restoreState(state: unknown): void {
    readBlockState(state, { capacity: this.capacity, readOnly: this.readOnly });
  }
}
