/**
 * Property test of virtio-vsock against a hostile guest and a busy host:
 * random protocol traffic (every op, ports that hit live connections,
 * mutated CIDs, types, lengths, flags and credit fields), malformed chains
 * (short, split anywhere, writable, pointing at and past the ends of RAM),
 * random receive buffers, and host events (connects accepted and refused,
 * data floods, half and full closes, host-initiated connections) in random
 * order. ≥ 25,000 transmit chains per run (VIRTIO_FUZZ_SCALE scales it).
 *
 * Properties: no exception escapes the device; no access outside guest RAM;
 * every packet the guest receives is a well-formed header that fits its
 * buffer; connections and buffered bytes stay within their bounds; and a
 * guest that advertises credit honestly never receives more than it allowed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { STATUS_DEVICE_NEEDS_RESET, VirtioMmioTransport } from '../../src/virtio/index.js';
import { MockMmioDriver, type MockBuffer } from '../../src/virtio/mock-driver.js';
import {
  VSOCK_HDR_SIZE,
  VSOCK_HOST_CID,
  VSOCK_MAX_PAYLOAD,
  VSOCK_OP_REQUEST,
  VSOCK_OP_RESPONSE,
  VSOCK_OP_RST,
  VSOCK_OP_RW,
  VirtioVsock,
  encodeHeader,
  type VsockBackend,
  type VsockHeader,
  type VsockHost,
  type VsockHostInitiated,
  type VsockHostStream,
  type VsockStreamEvents,
} from '../../src/virtio/vsock/index.js';
import { MockVsockGuest } from '../../src/virtio/vsock/mock-guest.js';
import { recordingMemory } from './helpers.js';
import { prng, type Rand, below, pick } from './helpers.js';

const SCALE = Number(process.env.VIRTIO_FUZZ_SCALE ?? '1');
const CID = 3;
const BUF_ALLOC = 16 * 1024;
const HOST_QUEUE = 8 * 1024;
const MAX_CONNECTIONS = 6;
/** RAM: 4 MiB, a hole, 64 KiB. */
const RAM = [
  { base: 0, size: 0x40_0000 },
  { base: 0x50_0000, size: 0x1_0000 },
];


class Stream implements VsockHostInitiated {
  pending: (() => void)[] = [];
  gone = false;
  constructor(
    readonly r: Rand,
    public events?: VsockStreamEvents,
  ) {}
  write(_d: Uint8Array, done: () => void): void {
    if (below(this.r, 2)) done();
    else this.pending.push(done);
  }
  end(): void {}
  close(): void {
    this.gone = true;
  }
  destroy(): void {
    this.gone = true;
  }
  pause(): void {}
  resume(): void {}
  accepted(): void {}
}

class Backend implements VsockBackend {
  host: VsockHost | undefined;
  streams: Stream[] = [];
  constructor(readonly r: Rand) {}
  start(host: VsockHost): void {
    this.host = host;
  }
  connect(_port: number, events: VsockStreamEvents): VsockHostStream {
    const s = new Stream(this.r, events);
    this.streams.push(s);
    return s;
  }
}

const caseArb = fc.record({
  seed: fc.integer(),
  steps: fc.integer({ min: 5, max: 40 }),
  hostility: fc.constantFrom(2, 8, 32, 1000),
  honest: fc.boolean(),
  guestBufAlloc: fc.constantFrom(0, 100, 4096, 65536, 0xffff_ffff),
});

test('vsock fuzz: random traffic, malformed chains and host events: no escape, no stray access, bounded, credit honoured', (t) => {
  let chains = 0;
  let needsReset = 0;
  const seen = new Map<string, number>();
  const note = (k: string, n = 1): void => void seen.set(k, (seen.get(k) ?? 0) + n);
  fc.assert(
    fc.property(caseArb, (c) => {
      const r = prng(c.seed);
      const memory = recordingMemory(RAM);
      const backend = new Backend(r);
      const vsock = new VirtioVsock({ cid: CID, backend, bufAlloc: BUF_ALLOC, hostQueueLimit: HOST_QUEUE, maxConnections: MAX_CONNECTIONS, queueSize: 64, clock: { now: () => 0, setTimer: () => ({ cancel() {} }) } });
      const reasons: string[] = [];
      const transport = new VirtioMmioTransport(vsock, { memory, irq: new RecordingIrqLine(), onNeedsReset: (why) => reasons.push(why) });
      const guest = new MockVsockGuest(memory, new MockMmioDriver(transport), CID, { rxBuffers: 8, rxBufferSize: 4096 });
      const hostStreams: Stream[] = [];
      const hostPorts: number[] = [];
      /** Per connection (local:peer): bytes the guest received, and its last advertised fwd_cnt. */
      const credit = new Map<string, { received: number; advertised: number }>();
      const key = (local: number, peer: number): string => `${local}:${peer}`;

      const header = (): Partial<VsockHeader> => {
        const h: Partial<VsockHeader> = {
          op: pick(r, [VSOCK_OP_REQUEST, VSOCK_OP_REQUEST, VSOCK_OP_RESPONSE, VSOCK_OP_RST, 4, VSOCK_OP_RW, VSOCK_OP_RW, VSOCK_OP_RW, 6, 7]),
          srcPort: below(r, 3) + 1,
          dstPort: 5000 + below(r, 2),
          bufAlloc: c.guestBufAlloc,
          flags: 0,
        };
        if (h.op === VSOCK_OP_RESPONSE || (hostPorts.length > 0 && below(r, 3) === 0)) {
          h.dstPort = pick(r, hostPorts.length ? hostPorts : [1 << 30]);
          h.srcPort = 52;
        }
        if (h.op === 4) h.flags = below(r, 4);
        const k = key(h.dstPort!, h.srcPort!);
        h.fwdCnt = c.honest ? (credit.get(k)?.received ?? 0) : below(r, 2) ? 0 : r();
        if (below(r, c.hostility) === 0) {
          // An honest guest's credit fields stay honest (fields 6 and 7), so the credit property can be checked.
          const field = c.honest ? pick(r, [0, 1, 2, 3, 4, 5, 8]) : below(r, 9);
          if (field === 0) h.srcCid = pick(r, [0, 2, 4, CID + 2 ** 32]);
          if (field === 1) h.dstCid = pick(r, [0, 1, 3, 2 + 2 ** 32]);
          if (field === 2) h.type = pick(r, [0, 2, 0xffff]);
          if (field === 3) h.op = pick(r, [0, 8, 0xffff]);
          if (field === 4) h.flags = r();
          if (field === 5) h.len = pick(r, [1, 44, VSOCK_MAX_PAYLOAD + 1, 0xffff_ffff]);
          if (field === 6) h.bufAlloc = r();
          if (field === 7) h.fwdCnt = r();
          if (field === 8) h.srcPort = r();
        }
        return h;
      };

      for (let step = 0; step < c.steps; step++) {
        const action = below(r, 10);
        if (action < 6) {
          // A guest packet.
          const h = header();
          const len = h.op === VSOCK_OP_RW ? (below(r, 8) === 0 ? below(r, 70_000) : below(r, 5000)) : 0;
          const payload = new Uint8Array(len);
          const full = guest.header({ len, ...h });
          if (c.honest && (full.op === VSOCK_OP_REQUEST || full.op === VSOCK_OP_RESPONSE) && full.srcCid === CID) credit.set(key(full.dstPort, full.srcPort), { received: 0, advertised: 0 });
          const cr = credit.get(key(full.dstPort, full.srcPort));
          if (cr && full.srcCid === CID) cr.advertised = full.fwdCnt;
          chains++;
          if (below(r, c.hostility) === 0) {
            // A malformed chain: the header bytes somewhere odd, or split at random, or with a writable part, or off the end of RAM.
            const bytes = new Uint8Array(VSOCK_HDR_SIZE);
            encodeHeader(full, bytes);
            memory.write(guest.txArea, bytes);
            const at = guest.txArea;
            const shapes: MockBuffer[][] = [
              [{ address: at, length: below(r, VSOCK_HDR_SIZE) }],
              [{ address: at, length: 20 }, { address: at + 20, length: 24 + len }],
              [{ address: at, length: VSOCK_HDR_SIZE }, { address: at + VSOCK_HDR_SIZE, length: 64, writable: true }],
              [{ address: 0x40_0000 - 20, length: VSOCK_HDR_SIZE }],
              [{ address: 0x50_0000 + 0x1_0000 - VSOCK_HDR_SIZE, length: VSOCK_HDR_SIZE + below(r, 2) }],
              [{ address: 0xffff_ffff, length: 1 }],
            ];
            guest.tx.addChain(pick(r, shapes));
            guest.driver.notify(1);
            guest.tx.takeUsed();
          } else {
            guest.send(h, payload);
          }
        } else if (action === 6) {
          // Host: a pending connect is accepted or refused.
          const s = backend.streams.find((x) => !x.gone && below(r, 2) === 0);
          if (s) {
            if (below(r, 3)) s.events?.connected();
            else {
              s.gone = true;
              s.events?.close(new Error('refused'));
            }
          }
        } else if (action === 7) {
          // Host: data, end, close or completed writes on some stream.
          const all = [...backend.streams, ...hostStreams].filter((x) => !x.gone);
          const s = all.length ? pick(r, all) : undefined;
          if (s?.events) {
            const what = below(r, 6);
            if (what <= 2) s.events.data(new Uint8Array(below(r, 3) === 0 ? 40_000 : 1 + below(r, 3000)));
            else if (what === 3) s.events.end();
            else if (what === 4) {
              s.gone = true;
              s.events.close(below(r, 2) ? new Error('EPIPE') : undefined);
            } else for (const d of s.pending.splice(0)) d();
          }
        } else if (action === 8) {
          // Host: a connection to a guest port.
          const s = new Stream(r);
          const ev = vsock.connectToGuest(below(r, 4) === 0 ? r() : 52, s);
          if (ev) {
            s.events = ev;
            hostStreams.push(s);
          }
        } else {
          // Guest: extra receive buffers, some too small, some at the edges of RAM.
          // Each at its own address: the guest reads every answer after the fact.
          const at = 0x30_0000 + 0x1000 * step;
          const shapes: MockBuffer[] = [
            { address: at, length: 1 + below(r, 200), writable: true },
            { address: at, length: VSOCK_HDR_SIZE - 1, writable: true },
            { address: 0x50_0000 + 0x1_0000 - 100 - 100 * step, length: 100, writable: true },
          ];
          guest.postRx([pick(r, shapes)]);
        }

        // What the guest received: well formed, within its buffer, and within its credit.
        guest.poll();
        for (const p of guest.inbox.splice(0)) {
          if (p.usedLen < VSOCK_HDR_SIZE) {
            assert.equal(p.usedLen, 0);
            continue;
          }
          const h = p.header;
          note(`rx op ${h.op}`);
          // An RST echoes the CID the guest addressed (so a connect to another CID fails at once); all else comes from the host.
          if (h.op !== VSOCK_OP_RST) assert.equal(h.srcCid, VSOCK_HOST_CID);
          assert.equal(h.dstCid, CID);
          assert.equal(h.type, 1);
          assert.ok(h.op >= 1 && h.op <= 7, `op ${h.op}`);
          assert.equal(p.usedLen, VSOCK_HDR_SIZE + h.len);
          assert.ok(h.len <= 4096);
          assert.equal(h.bufAlloc, BUF_ALLOC);
          if (h.op !== VSOCK_OP_RW) assert.equal(h.len, 0);
          else assert.ok(h.len > 0);
          if (h.op === VSOCK_OP_REQUEST) {
            hostPorts.push(h.srcPort);
            if (c.honest) credit.set(key(h.srcPort, h.dstPort), { received: 0, advertised: 0 });
          }
          if (h.op === VSOCK_OP_RST) credit.delete(key(h.srcPort, h.dstPort));
          const cr = credit.get(key(h.srcPort, h.dstPort));
          if (cr && h.op === VSOCK_OP_RW) {
            cr.received += h.len;
            if (c.honest && c.guestBufAlloc !== 0xffff_ffff) assert.ok(cr.received - cr.advertised <= c.guestBufAlloc, `credit: ${cr.received} received, ${cr.advertised} consumed, ${c.guestBufAlloc} allowed`);
          }
        }
        assert.ok(vsock.connectionCount <= MAX_CONNECTIONS);
        assert.ok(vsock.bufferedBytes <= vsock.connectionCount * (BUF_ALLOC + HOST_QUEUE + 128 * 1024));
      }
      assert.deepEqual(memory.violations, []);
      for (const why of reasons) assert.match(why, /^virtqueue: /);
      if (guest.driver.status() & STATUS_DEVICE_NEEDS_RESET) needsReset++;
      for (const [k, v] of Object.entries(vsock.metrics.snapshot())) note(k, v);
    }),
    { numRuns: Math.max(1, Math.round(2_500 * SCALE)) },
  );
  t.diagnostic(`${chains} transmit chains; ${needsReset} cases in DEVICE_NEEDS_RESET; ${[...seen].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(chains >= 25_000 * Math.min(1, SCALE), `${chains} chains`);
});
