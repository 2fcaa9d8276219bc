/**
 * The virtio-vsock packet header (virtio 1.2 §5.10.6, struct
 * virtio_vsock_hdr, 44 bytes, little-endian, packed) and its constants.
 */

/** sizeof(struct virtio_vsock_hdr). */
export const VSOCK_HDR_SIZE = 44;
// Field offsets of struct virtio_vsock_hdr (§5.10.6).
/** le64 src_cid. */
const SRC_CID = 0;
/** le64 dst_cid. */
const DST_CID = 8;
/** le32 src_port. */
const SRC_PORT = 16;
/** le32 dst_port. */
const DST_PORT = 20;
/** le32 len: payload bytes after the header. */
const LEN = 24;
/** le16 type: STREAM 1, SEQPACKET 2. */
const TYPE = 28;
/** le16 op. */
const OP = 30;
/** le32 flags: SHUTDOWN_* for OP_SHUTDOWN; EOM/EOR for seqpacket. */
const FLAGS = 32;
/** le32 buf_alloc: the sender's receive buffer for this connection. */
const BUF_ALLOC = 36;
/** le32 fwd_cnt: bytes the sender has consumed from that buffer, free-running. */
const FWD_CNT = 40;

/** The host's CID (§5.10.4: 2 is the host; 0 and 1 are reserved). */
export const VSOCK_HOST_CID = 2;
/** VMADDR_CID_ANY (-1U) is never a guest's CID. */
export const VSOCK_CID_ANY = 0xffff_ffff;

/** type: connection-oriented byte stream, the only type offered (no VIRTIO_VSOCK_F_SEQPACKET). */
export const VSOCK_TYPE_STREAM = 1;

// op values (§5.10.6).
export const VSOCK_OP_INVALID = 0;
/** Connect request. */
export const VSOCK_OP_REQUEST = 1;
/** Connect accepted. */
export const VSOCK_OP_RESPONSE = 2;
/** Connection reset (refused, aborted, or the end of a clean close). */
export const VSOCK_OP_RST = 3;
/** No more data in the directions named by flags. */
export const VSOCK_OP_SHUTDOWN = 4;
/** Payload. */
export const VSOCK_OP_RW = 5;
/** Unsolicited buf_alloc/fwd_cnt update. */
export const VSOCK_OP_CREDIT_UPDATE = 6;
/** Asks the peer for a CREDIT_UPDATE. */
export const VSOCK_OP_CREDIT_REQUEST = 7;

/** SHUTDOWN flag: the sender will receive no more data. */
export const VSOCK_SHUTDOWN_RCV = 1;
/** SHUTDOWN flag: the sender will send no more data. */
export const VSOCK_SHUTDOWN_SEND = 2;
export const VSOCK_SHUTDOWN_BOTH = VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND;

/** event id of struct virtio_vsock_event: all connections are gone (after migration or restore, §5.10.6.7). */
export const VSOCK_EVENT_TRANSPORT_RESET = 0;

/**
 * Largest payload of one packet either way: Linux's
 * VIRTIO_VSOCK_MAX_PKT_BUF_SIZE (64 KiB); a guest packet claiming more is
 * refused before anything is copied.
 */
export const VSOCK_MAX_PAYLOAD = 64 * 1024;

/**
 * A header as numbers. CIDs are 64-bit on the wire; only values below 2^32
 * are meaningful (§5.10.4: "the upper 32 bits of the CID are reserved and
 * zeroed"), so they travel as numbers and a set high word reads as -1.
 */
export interface VsockHeader {
  srcCid: number;
  dstCid: number;
  srcPort: number;
  dstPort: number;
  len: number;
  type: number;
  op: number;
  flags: number;
  bufAlloc: number;
  fwdCnt: number;
}

function cid(dv: DataView, at: number): number {
  return dv.getUint32(at + 4, true) === 0 ? dv.getUint32(at, true) : -1;
}

export function decodeHeader(bytes: Uint8Array): VsockHeader {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, VSOCK_HDR_SIZE);
  return {
    srcCid: cid(dv, SRC_CID),
    dstCid: cid(dv, DST_CID),
    srcPort: dv.getUint32(SRC_PORT, true),
    dstPort: dv.getUint32(DST_PORT, true),
    len: dv.getUint32(LEN, true),
    type: dv.getUint16(TYPE, true),
    op: dv.getUint16(OP, true),
    flags: dv.getUint32(FLAGS, true),
    bufAlloc: dv.getUint32(BUF_ALLOC, true),
    fwdCnt: dv.getUint32(FWD_CNT, true),
  };
}

/** Writes `h` into the first 44 bytes of `into` (CIDs are non-negative integers below 2^53). */
export function encodeHeader(h: VsockHeader, into: Uint8Array): void {
  const dv = new DataView(into.buffer, into.byteOffset, VSOCK_HDR_SIZE);
  dv.setBigUint64(SRC_CID, BigInt(h.srcCid), true);
  dv.setBigUint64(DST_CID, BigInt(h.dstCid), true);
  dv.setUint32(SRC_PORT, h.srcPort >>> 0, true);
  dv.setUint32(DST_PORT, h.dstPort >>> 0, true);
  dv.setUint32(LEN, h.len >>> 0, true);
  dv.setUint16(TYPE, h.type, true);
  dv.setUint16(OP, h.op, true);
  dv.setUint32(FLAGS, h.flags >>> 0, true);
  dv.setUint32(BUF_ALLOC, h.bufAlloc >>> 0, true);
  dv.setUint32(FWD_CNT, h.fwdCnt >>> 0, true);
}

export const OP_NAMES: Readonly<Record<number, string>> = {
  [VSOCK_OP_INVALID]: 'INVALID',
  [VSOCK_OP_REQUEST]: 'REQUEST',
  [VSOCK_OP_RESPONSE]: 'RESPONSE',
  [VSOCK_OP_RST]: 'RST',
  [VSOCK_OP_SHUTDOWN]: 'SHUTDOWN',
  [VSOCK_OP_RW]: 'RW',
  [VSOCK_OP_CREDIT_UPDATE]: 'CREDIT_UPDATE',
  [VSOCK_OP_CREDIT_REQUEST]: 'CREDIT_REQUEST',
};
