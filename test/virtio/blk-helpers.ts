/**
 * Test helpers for virtio-blk: an in-memory backend whose operations the
 * test can hold and complete in any order, and a driver-side request
 * builder on top of the mock driver.
 */
import assert from 'node:assert/strict';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { VirtioMmioTransport } from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue, type MockBuffer } from '../../src/virtio/mock-driver.js';
import { VirtioBlock, type BlockBackend, type VirtioBlockOptions } from '../../src/virtio/blk/index.js';
import { recordingMemory, type RecordingMemory } from './helpers.js';

interface PendingOp {
  op: string;
  run: () => void;
  fail: (e: Error) => void;
}

/** A disk in a Uint8Array. With `manual`, every operation waits until the test calls `complete(i)`. */
export class MemoryBackend implements BlockBackend {
  readonly data: Uint8Array;
  readonly canUnmap = true;
  /** Every operation started, in order: "read 512+1024", "write …", "flush", "discard …", "zeroes … unmap". */
  readonly ops: string[] = [];
  readonly pending: PendingOp[] = [];
  /** Operation names (first word of `ops`) that fail with EIO. */
  readonly failing = new Set<string>();
  closed = false;

  constructor(
    readonly sizeBytes: number,
    readonly readOnly = false,
    readonly manual = false,
  ) {
    this.data = new Uint8Array(sizeBytes);
  }

  private gate(op: string, effect: () => void): Promise<void> {
    this.ops.push(op);
    const name = op.split(' ')[0]!;
    return new Promise((resolve, reject) => {
      const run = (): void => {
        if (this.failing.has(name)) return reject(new Error(`EIO: ${op}`));
        effect();
        resolve();
      };
      if (this.manual) this.pending.push({ op, run, fail: reject });
      else run();
    });
  }

  /** Completes the held operation at `index` of `pending` (manual mode). */
  complete(index: number): void {
    const p = this.pending[index];
    assert.ok(p, `no pending operation ${index}`);
    this.pending.splice(index, 1);
    p.run();
  }

  read(into: Uint8Array, position: number): Promise<void> {
    return this.gate(`read ${position}+${into.length}`, () => into.set(this.data.subarray(position, position + into.length)));
  }
  write(data: Uint8Array, position: number): Promise<void> {
    const copy = data.slice();
    if (this.readOnly) throw new Error('write to a read-only backend');
    return this.gate(`write ${position}+${data.length}`, () => this.data.set(copy, position));
  }
  flush(): Promise<void> {
    return this.gate('flush', () => {});
  }
  discard(position: number, length: number): Promise<void> {
    if (this.readOnly) throw new Error('discard on a read-only backend');
    return this.gate(`discard ${position}+${length}`, () => this.data.fill(0xdd, position, position + length));
  }
  writeZeroes(position: number, length: number, unmap: boolean): Promise<void> {
    if (this.readOnly) throw new Error('write-zeroes on a read-only backend');
    return this.gate(`zeroes ${position}+${length}${unmap ? ' unmap' : ''}`, () => this.data.fill(0, position, position + length));
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

export const BLK_LAYOUT = layoutQueue(0x1000, 16);
/** Where request headers, status bytes and data buffers go in the test RAM. */
const HEADER_AREA = 0x2_0000;
const STATUS_AREA = 0x3_0000;
export const DATA_AREA = 0x10_0000;

/** Lets promise chains and threadpool callbacks run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface BlkSetup {
  memory: RecordingMemory;
  irq: RecordingIrqLine;
  blk: VirtioBlock;
  transport: VirtioMmioTransport;
  driver: MockMmioDriver;
  ring: MockVirtqueue;
  /** Adds a request chain and notifies: header (readable), `data`, then a 1-byte status (writable). Returns head and status address. */
  submit(type: number, sector: number | bigint, data?: readonly MockBuffer[], options?: { header?: MockBuffer[]; noStatus?: boolean; indirect?: boolean }): { head: number; status: number };
  statusOf(r: { status: number }): number;
  resets: string[];
}

let slot = 0;

export function setupBlk(backend: BlockBackend, options: Partial<VirtioBlockOptions> & { features?: (offered: bigint) => bigint } = {}): BlkSetup {
  const memory = recordingMemory([{ base: 0, size: 0x80_0000 }]);
  const irq = new RecordingIrqLine();
  const blk = new VirtioBlock({ backend, id: 'disk0', ...options });
  const resets: string[] = [];
  const transport = new VirtioMmioTransport(blk, { memory, irq, onNeedsReset: (r) => resets.push(r) });
  const driver = new MockMmioDriver(transport);
  assert.equal(driver.init([BLK_LAYOUT], options.features), 0x0f);
  const ring = new MockVirtqueue(memory, BLK_LAYOUT);
  const submit: BlkSetup['submit'] = (type, sector, data = [], o = {}) => {
    const n = slot++ % 256;
    const hdr = HEADER_AREA + n * 0x40;
    memory.writeU32(hdr, type);
    memory.writeU32(hdr + 4, 0);
    memory.writeU64(hdr + 8, BigInt(sector));
    const status = STATUS_AREA + n;
    memory.writeU8(status, 0xee);
    const bufs: MockBuffer[] = [...(o.header ?? [{ address: hdr, length: 16 }]), ...data];
    if (!o.noStatus) bufs.push({ address: status, length: 1, writable: true });
    const head = ring.addChain(bufs, o.indirect ? { indirectTable: 0x6_0000 + n * 0x100 } : {});
    driver.notify(0);
    return { head, status };
  };
  return { memory, irq, blk, transport, driver, ring, submit, statusOf: (r) => memory.readU8(r.status), resets };
}
