/**
 * virtio-blk requests (virtio 1.2 §5.2.6): the wire format, and the parser
 * that turns a validated chain into either a request to carry out or an
 * immediate answer. Pure: reads the guest's header bytes and nothing else.
 *
 *   struct virtio_blk_req {
 *     le32 type; le32 reserved; le64 sector;   // device-readable, 16 bytes
 *     u8 data[];                               // readable (OUT, DISCARD…) or writable (IN, GET_ID)
 *     u8 status;                               // device-writable, the chain's last byte
 *   };
 */
import type { GuestMemory } from '../../memory/index.js';
import { readFromBuffers } from '../chain.js';
import type { DescriptorChain, GuestBuffer } from '../queue.js';

// Request types (§5.2.6).
/** Read `data` from the disk at `sector`. */
export const VIRTIO_BLK_T_IN = 0;
/** Write `data` to the disk at `sector`. */
export const VIRTIO_BLK_T_OUT = 1;
/** Make every completed write stable. */
export const VIRTIO_BLK_T_FLUSH = 4;
/** Return the device ID string: up to 20 bytes, NUL-padded. */
export const VIRTIO_BLK_T_GET_ID = 8;
/** Report flash lifetime (VIRTIO_BLK_F_LIFETIME: not offered). */
export const VIRTIO_BLK_T_GET_LIFETIME = 10;
/** Deallocate ranges (data = virtio_blk_discard_write_zeroes[]). */
export const VIRTIO_BLK_T_DISCARD = 11;
/** Zero ranges (data = virtio_blk_discard_write_zeroes[]). */
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
/** Securely erase ranges (VIRTIO_BLK_F_SECURE_ERASE: not offered). */
export const VIRTIO_BLK_T_SECURE_ERASE = 14;

// Status values, the last byte of every request (§5.2.6).
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;

/** Sectors are always 512 bytes in requests, whatever blk_size says (§5.2.6). */
export const SECTOR_SIZE = 512;
/** struct virtio_blk_req header: type, reserved, sector. */
export const REQUEST_HEADER_SIZE = 16;
/** Length of the GET_ID answer (§5.2.6: VIRTIO_BLK_ID_BYTES). */
export const VIRTIO_BLK_ID_BYTES = 20;
/** struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags. */
export const DISCARD_SEGMENT_SIZE = 16;
/** virtio_blk_discard_write_zeroes.flags bit 0: unmap (§5.2.6). */
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** One range of a DISCARD or WRITE_ZEROES request. */
export interface BlockRange {
  /** First 512-byte sector. */
  sector: number;
  sectors: number;
  unmap: boolean;
}

/** What the device may do and how big the disk is, for the parser. */
export interface RequestLimits {
  /** Disk size in 512-byte sectors. */
  capacity: number;
  readOnly: boolean;
  /** Negotiated VIRTIO_BLK_F_DISCARD / VIRTIO_BLK_F_WRITE_ZEROES. */
  discard: boolean;
  writeZeroes: boolean;
  maxDiscardSectors: number;
  maxDiscardSegments: number;
  maxWriteZeroesSectors: number;
  maxWriteZeroesSegments: number;
}

/** The outcome of parsing one chain. */
export type ParsedRequest =
  /** The queue or chain cannot be answered at all: the device needs a reset (§2.1.2). */
  | { kind: 'needs-reset'; reason: string }
  /** Answered at once with `status` (bad or unsupported request); nothing else is written. */
  | { kind: 'answer'; status: number; reason: string }
  | { kind: 'read'; sector: number; data: GuestBuffer[]; bytes: number }
  | { kind: 'write'; sector: number; data: GuestBuffer[]; bytes: number }
  | { kind: 'flush' }
  | { kind: 'get-id'; data: GuestBuffer[]; bytes: number }
  | { kind: 'discard' | 'write-zeroes'; ranges: BlockRange[] };

/** Where the status byte goes, and the buffers around it. */
export interface ChainParts {
  status: GuestBuffer;
  /** Device-writable bytes before the status byte. */
  writableData: GuestBuffer[];
  writableDataBytes: number;
}

/** Splits the writable buffers into data and the status byte (the last writable byte, §5.2.6). */
export function splitStatus(chain: DescriptorChain): ChainParts | undefined {
  const w = chain.writable;
  const last = w[w.length - 1];
  if (!last) return undefined;
  const writableData = w.slice(0, -1);
  if (last.length > 1) writableData.push({ address: last.address, length: last.length - 1 });
  return { status: { address: last.address + last.length - 1, length: 1 }, writableData, writableDataBytes: chain.writableBytes - 1 };
}

/** The buffers covering bytes [offset, end) of `buffers`. */
export function subBuffers(buffers: readonly GuestBuffer[], offset: number): GuestBuffer[] {
  const out: GuestBuffer[] = [];
  let skip = offset;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push({ address: b.address + skip, length: b.length - skip });
    skip = 0;
  }
  return out;
}

const answer = (status: number, reason: string): ParsedRequest => ({ kind: 'answer', status, reason });

/** True when [sector, sector + count) lies inside a disk of `capacity` sectors (all values exact below 2^53). */
export function inCapacity(sector: number, count: number, capacity: number): boolean {
  return sector <= capacity && count <= capacity - sector;
}

/**
 * Parses one chain. Rules and where they come from:
 * - no device-writable byte: there is nowhere to put a status, so the
 *   request cannot be answered; the device declares DEVICE_NEEDS_RESET
 *   (§2.1.2) rather than guess;
 * - header not 16 device-readable bytes, data in the wrong direction, IN/OUT
 *   length not a multiple of 512 (§5.2.6.1 driver requirements), ranges past
 *   the capacity: VIRTIO_BLK_S_IOERR;
 * - writes, discards and write-zeroes on a read-only device: IOERR, and
 *   nothing is written (§5.2.6.2);
 * - unknown types, features not negotiated, DISCARD with the unmap flag or
 *   any unknown flag: VIRTIO_BLK_S_UNSUPP (§5.2.6.2).
 */
export function parseRequest(memory: GuestMemory, chain: DescriptorChain, limits: RequestLimits, status: ChainParts | undefined = splitStatus(chain)): ParsedRequest {
  if (!status) return { kind: 'needs-reset', reason: `request at head ${chain.head} has no device-writable status byte` };
  if (chain.readableBytes < REQUEST_HEADER_SIZE) return answer(VIRTIO_BLK_S_IOERR, `header is ${chain.readableBytes} readable bytes, not ${REQUEST_HEADER_SIZE}`);
  const header = new Uint8Array(REQUEST_HEADER_SIZE);
  readFromBuffers(memory, chain.readable, 0, header);
  const view = new DataView(header.buffer);
  const type = view.getUint32(0, true);
  // Values ≥ 2^53 lose precision, but anything ≥ 2^32 * 2^21 is far past any capacity, which is all that is compared.
  const sector = view.getUint32(12, true) * 2 ** 32 + view.getUint32(8, true);
  const readableData = chain.readableBytes - REQUEST_HEADER_SIZE;

  switch (type) {
    case VIRTIO_BLK_T_IN: {
      if (readableData !== 0) return answer(VIRTIO_BLK_S_IOERR, 'IN with device-readable data');
      const bytes = status.writableDataBytes;
      if (bytes % SECTOR_SIZE !== 0) return answer(VIRTIO_BLK_S_IOERR, `IN of ${bytes} bytes, not a multiple of ${SECTOR_SIZE}`);
      if (!inCapacity(sector, bytes / SECTOR_SIZE, limits.capacity)) return answer(VIRTIO_BLK_S_IOERR, `IN at sector ${sector} + ${bytes / SECTOR_SIZE} is past the capacity ${limits.capacity}`);
      return { kind: 'read', sector, data: status.writableData, bytes };
    }
    case VIRTIO_BLK_T_OUT: {
      if (limits.readOnly) return answer(VIRTIO_BLK_S_IOERR, 'OUT on a read-only device');
      if (status.writableDataBytes !== 0) return answer(VIRTIO_BLK_S_IOERR, 'OUT with device-writable data');
      if (readableData % SECTOR_SIZE !== 0) return answer(VIRTIO_BLK_S_IOERR, `OUT of ${readableData} bytes, not a multiple of ${SECTOR_SIZE}`);
      if (!inCapacity(sector, readableData / SECTOR_SIZE, limits.capacity)) return answer(VIRTIO_BLK_S_IOERR, `OUT at sector ${sector} + ${readableData / SECTOR_SIZE} is past the capacity ${limits.capacity}`);
      return { kind: 'write', sector, data: subBuffers(chain.readable, REQUEST_HEADER_SIZE), bytes: readableData };
    }
    case VIRTIO_BLK_T_FLUSH:
      // Carried out whether or not VIRTIO_BLK_F_FLUSH was negotiated: making writes stable is always allowed.
      if (readableData !== 0 || status.writableDataBytes !== 0) return answer(VIRTIO_BLK_S_IOERR, 'FLUSH with data');
      return { kind: 'flush' };
    case VIRTIO_BLK_T_GET_ID:
      if (readableData !== 0) return answer(VIRTIO_BLK_S_IOERR, 'GET_ID with device-readable data');
      return { kind: 'get-id', data: status.writableData, bytes: Math.min(status.writableDataBytes, VIRTIO_BLK_ID_BYTES) };
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      const discard = type === VIRTIO_BLK_T_DISCARD;
      const name = discard ? 'DISCARD' : 'WRITE_ZEROES';
      if (limits.readOnly) return answer(VIRTIO_BLK_S_IOERR, `${name} on a read-only device`);
      if (!(discard ? limits.discard : limits.writeZeroes)) return answer(VIRTIO_BLK_S_UNSUPP, `${name} without its feature negotiated`);
      if (status.writableDataBytes !== 0) return answer(VIRTIO_BLK_S_IOERR, `${name} with device-writable data`);
      if (readableData === 0 || readableData % DISCARD_SEGMENT_SIZE !== 0) return answer(VIRTIO_BLK_S_IOERR, `${name} data of ${readableData} bytes is not a whole number of 16-byte ranges`);
      const count = readableData / DISCARD_SEGMENT_SIZE;
      const maxSegments = discard ? limits.maxDiscardSegments : limits.maxWriteZeroesSegments;
      const maxSectors = discard ? limits.maxDiscardSectors : limits.maxWriteZeroesSectors;
      if (count > maxSegments) return answer(VIRTIO_BLK_S_IOERR, `${name} with ${count} ranges, more than ${maxSegments}`);
      const raw = new Uint8Array(readableData);
      readFromBuffers(memory, chain.readable, REQUEST_HEADER_SIZE, raw);
      const rv = new DataView(raw.buffer);
      const ranges: BlockRange[] = [];
      for (let i = 0; i < count; i++) {
        const at = i * DISCARD_SEGMENT_SIZE;
        const s = rv.getUint32(at + 4, true) * 2 ** 32 + rv.getUint32(at, true);
        const n = rv.getUint32(at + 8, true);
        const flags = rv.getUint32(at + 12, true);
        // §5.2.6.2: UNSUPP for any unknown flag, and for DISCARD with unmap set.
        if (flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP || (discard && flags !== 0)) return answer(VIRTIO_BLK_S_UNSUPP, `${name} range ${i} has flags 0x${flags.toString(16)}`);
        if (n > maxSectors) return answer(VIRTIO_BLK_S_IOERR, `${name} range ${i} of ${n} sectors, more than ${maxSectors}`);
        if (!inCapacity(s, n, limits.capacity)) return answer(VIRTIO_BLK_S_IOERR, `${name} range ${i} at sector ${s} + ${n} is past the capacity ${limits.capacity}`);
        ranges.push({ sector: s, sectors: n, unmap: (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0 });
      }
      return { kind: discard ? 'discard' : 'write-zeroes', ranges };
    }
    default:
      return answer(VIRTIO_BLK_S_UNSUPP, `request type ${type}`);
  }
}
