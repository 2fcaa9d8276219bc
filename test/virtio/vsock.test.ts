import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { UnixVsockBackend, parseConnect } from '../../src/backends/unix-vsock.js';
import { STATUS_DEVICE_NEEDS_RESET, VIRTIO_ID_VSOCK, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VirtioMmioTransport } from '../../src/virtio/index.js';
import { MockMmioDriver } from '../../src/virtio/mock-driver.js';
import {
  VSOCK_FIRST_LOCAL_PORT,
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
  VSOCK_RST_QUEUE_LIMIT,
  VSOCK_SHUTDOWN_BOTH,
  VSOCK_SHUTDOWN_RCV,
  VSOCK_SHUTDOWN_SEND,
  VirtioVsock,
  type VirtioVsockOptions,
  type VsockBackend,
  type VsockHost,
  type VsockHostInitiated,
  type VsockHostStream,
  type VsockStreamEvents,
} from '../../src/virtio/vsock/index.js';
import { MockVsockGuest, type ReceivedPacket } from '../../src/virtio/vsock/mock-guest.js';
import { FakeClock, recordingMemory } from './helpers.js';

const CID = 3;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);
const ops = (ps: ReceivedPacket[]): number[] => ps.map((p) => p.header.op);

/** A host side under the test's control: streams record what the device does to them. */
class FakeStream implements VsockHostInitiated {
  written: Uint8Array[] = [];
  pending: (() => void)[] = [];
  ended = false;
  closed = false;
  destroyed = false;
  paused = false;
  acceptedPort: number | undefined;
  /** Completes writes at once unless told to hold them. */
  constructor(public hold = false) {}
  write(data: Uint8Array, done: () => void): void {
    this.written.push(data);
    if (this.hold) this.pending.push(done);
    else done();
  }
  release(): void {
    for (const d of this.pending.splice(0)) d();
  }
  end(): void {
    this.ended = true;
  }
  close(): void {
    this.closed = true;
  }
  destroy(): void {
    this.destroyed = true;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  accepted(localPort: number): void {
    this.acceptedPort = localPort;
  }
  get text(): string {
    return this.written.map(str).join('');
  }
}

class FakeBackend implements VsockBackend {
  host: VsockHost | undefined;
  connects: { port: number; events: VsockStreamEvents; stream: FakeStream }[] = [];
  hold = false;
  start(host: VsockHost): void {
    this.host = host;
  }
  connect(port: number, events: VsockStreamEvents): VsockHostStream {
    const stream = new FakeStream(this.hold);
    this.connects.push({ port, events, stream });
    return stream;
  }
}

function setup(options: Partial<VirtioVsockOptions> = {}, guestOptions = {}) {
  const memory = recordingMemory([{ base: 0, size: 0x80_0000 }]);
  const irq = new RecordingIrqLine();
  const clock = new FakeClock();
  const backend = (options.backend as FakeBackend | undefined) ?? new FakeBackend();
  const vsock = new VirtioVsock({ cid: CID, clock, ...options, backend });
  const resets: string[] = [];
  const transport = new VirtioMmioTransport(vsock, { memory, irq, onNeedsReset: (r) => resets.push(r) });
  const driver = new MockMmioDriver(transport);
  const guest = new MockVsockGuest(memory, driver, CID, guestOptions);
  return { memory, irq, clock, backend, vsock, transport, driver, guest, resets };
}

/** A guest-initiated connection through the fake backend, established. */
function established(s: ReturnType<typeof setup>, port = 5000, guestPort = 1234) {
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: guestPort, dstPort: port });
  const c = s.backend.connects.at(-1)!;
  assert.equal(c.port, port);
  c.events.connected();
  const [resp] = s.guest.take();
  assert.equal(resp?.header.op, VSOCK_OP_RESPONSE);
  return c;
}

test('vsock: device ID 19, three queues, guest_cid in configuration space; reserved CIDs refused', () => {
  const s = setup({ cid: 0x1234_5678 });
  assert.equal(s.driver.read32(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
  assert.deepEqual([0, 1, 2, 3].map((i) => s.driver.queueNumMax(i)), [256, 256, 256, 0]);
  const cfg = new Uint8Array(12).fill(0xaa);
  s.transport.read(VIRTIO_MMIO_CONFIG, cfg);
  assert.deepEqual([...cfg], [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0, 0, 0]);
  s.transport.write(VIRTIO_MMIO_CONFIG, new Uint8Array(8));
  s.transport.read(VIRTIO_MMIO_CONFIG, cfg);
  assert.equal(cfg[0], 0x78, 'guest_cid is read-only');
  for (const cid of [0, 1, 2, 0xffff_ffff, 2 ** 32, -1, 3.5, NaN]) {
    assert.throws(() => new VirtioVsock({ cid, backend: new FakeBackend() }), /guest CID .* is not in 3\.\.4294967294/, String(cid));
  }
});

test('vsock: guest connects, data both ways, guest closes: RESPONSE, RW, SHUTDOWN answered with RST', () => {
  const s = setup();
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1234, dstPort: 5000, bufAlloc: 8192 });
  assert.deepEqual(s.guest.take(), [], 'no answer before the host service accepts');
  const c = s.backend.connects[0]!;
  c.events.connected();
  const [resp] = s.guest.take();
  assert.deepEqual({ ...resp!.header }, { srcCid: 2, dstCid: CID, srcPort: 5000, dstPort: 1234, len: 0, type: 1, op: VSOCK_OP_RESPONSE, flags: 0, bufAlloc: 256 * 1024, fwdCnt: 0 });
  s.guest.send({ srcPort: 1234, dstPort: 5000 }, text('hello, host'));
  assert.equal(c.stream.text, 'hello, host');
  c.events.data(text('hello, guest'));
  const [rw] = s.guest.take();
  assert.equal(rw!.header.op, VSOCK_OP_RW);
  assert.equal(str(rw!.payload), 'hello, guest');
  assert.equal(rw!.usedLen, VSOCK_HDR_SIZE + 12);
  assert.equal(rw!.header.fwdCnt, 11, 'every packet carries our fwd_cnt');
  s.guest.send({ op: VSOCK_OP_SHUTDOWN, srcPort: 1234, dstPort: 5000, flags: VSOCK_SHUTDOWN_BOTH });
  assert.equal(c.stream.ended, true);
  assert.equal(c.stream.closed, true, 'flushed, then closed');
  assert.equal(c.stream.destroyed, false, 'not aborted: written data still reaches the host');
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  assert.equal(s.vsock.connectionCount, 0);
  assert.equal(s.vsock.metrics.connections, 1);
  assert.deepEqual(s.memory.violations, []);
  assert.ok(s.irq.edges > 0);
});

test('vsock: host connects to a guest port: REQUEST, RESPONSE, OK with the local port; host close is SHUTDOWN then RST', () => {
  const s = setup();
  const stream = new FakeStream();
  const events = s.vsock.connectToGuest(52, stream)!;
  assert.ok(events);
  events.data(text('early'));
  const [req] = s.guest.take();
  assert.equal(req!.header.op, VSOCK_OP_REQUEST);
  assert.equal(req!.header.dstPort, 52);
  assert.equal(req!.header.srcPort, VSOCK_FIRST_LOCAL_PORT);
  assert.equal(stream.acceptedPort, undefined);
  s.guest.send({ op: VSOCK_OP_RESPONSE, srcPort: 52, dstPort: VSOCK_FIRST_LOCAL_PORT });
  assert.equal(stream.acceptedPort, VSOCK_FIRST_LOCAL_PORT);
  const [rw] = s.guest.take();
  assert.equal(str(rw!.payload), 'early', 'data sent behind CONNECT waits for the guest to accept');
  events.end();
  const [shutSend] = s.guest.take();
  assert.equal(shutSend!.header.op, VSOCK_OP_SHUTDOWN);
  assert.equal(shutSend!.header.flags, VSOCK_SHUTDOWN_SEND);
  s.guest.send({ srcPort: 52, dstPort: VSOCK_FIRST_LOCAL_PORT }, text('still flowing'));
  assert.equal(stream.text, 'still flowing', 'half close: the other direction stays open');
  events.close();
  const [shutBoth] = s.guest.take();
  assert.equal(shutBoth!.header.flags, VSOCK_SHUTDOWN_BOTH);
  s.guest.send({ op: VSOCK_OP_RST, srcPort: 52, dstPort: VSOCK_FIRST_LOCAL_PORT });
  assert.equal(s.vsock.connectionCount, 0);
  assert.deepEqual(s.guest.take(), [], 'an RST is never answered');
  // The next host connection gets the next local port.
  s.vsock.connectToGuest(52, new FakeStream());
  assert.equal(s.guest.take()[0]!.header.srcPort, VSOCK_FIRST_LOCAL_PORT + 1);
});

test('vsock: a guest that never answers our SHUTDOWN gets an RST after the close timeout', () => {
  const s = setup({ closeTimeoutMs: 500 });
  const c = established(s);
  c.events.close();
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_SHUTDOWN]);
  s.clock.advance(499);
  assert.deepEqual(s.guest.take(), []);
  s.clock.advance(1);
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  assert.equal(s.vsock.connectionCount, 0);
});

test('vsock: host connection to a guest that does not answer times out; one the guest refuses is closed', () => {
  const s = setup({ connectTimeoutMs: 2000 });
  const silent = new FakeStream();
  s.vsock.connectToGuest(80, silent);
  s.guest.take();
  s.clock.advance(2000);
  assert.equal(silent.destroyed, true);
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST], 'the guest is told too, in case the REQUEST reached it');
  assert.equal(s.vsock.metrics.connectTimeouts, 1);
  const refused = new FakeStream();
  s.vsock.connectToGuest(81, refused);
  const [req] = s.guest.take();
  s.guest.send({ op: VSOCK_OP_RST, srcPort: 81, dstPort: req!.header.srcPort });
  assert.equal(refused.destroyed, true);
  assert.equal(refused.acceptedPort, undefined);
  assert.equal(s.vsock.connectionCount, 0);
});

test('vsock: a guest connection the host refuses is reset; so is one past the connection limit', () => {
  const s = setup({ maxConnections: 1 });
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1, dstPort: 7 });
  s.backend.connects[0]!.events.close(new Error('ENOENT'));
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  established(s, 7, 2);
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 3, dstPort: 7 });
  const [rst] = s.guest.take();
  assert.equal(rst!.header.op, VSOCK_OP_RST);
  assert.equal(rst!.header.dstPort, 3);
  assert.equal(s.vsock.metrics.refused, 2);
  assert.equal(s.backend.connects.length, 2, 'no backend connect past the limit');
});

test('vsock: guest → host credit: fwd_cnt advances as the host takes data; a guest exceeding buf_alloc is reset', () => {
  const s = setup({ bufAlloc: 4096 });
  s.backend.hold = true;
  const c = established(s);
  s.guest.send({ srcPort: 1234, dstPort: 5000 }, new Uint8Array(3000));
  s.guest.send({ srcPort: 1234, dstPort: 5000 }, new Uint8Array(1096));
  assert.equal(s.vsock.bufferedBytes, 4096, 'exactly our credit is held');
  assert.deepEqual(s.guest.take(), []);
  c.stream.release();
  const updates = s.guest.take();
  // The guest had no credit left: the first completed write is reported at once; the second leaves it enough (≥ bufAlloc/2).
  assert.deepEqual(updates.map((p) => [p.header.op, p.header.fwdCnt]), [[VSOCK_OP_CREDIT_UPDATE, 3000]]);
  assert.equal(s.vsock.bufferedBytes, 0);
  s.guest.send({ srcPort: 1234, dstPort: 5000, fwdCnt: 0 }, new Uint8Array(4096));
  s.guest.send({ srcPort: 1234, dstPort: 5000, fwdCnt: 0 }, new Uint8Array(1));
  assert.equal(s.vsock.metrics.creditViolations, 1);
  assert.equal(c.stream.destroyed, true);
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  assert.equal(s.vsock.bufferedBytes, 0);
});

test('vsock: host → guest credit: never more than the guest buf_alloc; CREDIT_REQUEST when stalled; CREDIT_UPDATE resumes', () => {
  const s = setup();
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1234, dstPort: 5000, bufAlloc: 100 });
  const c = s.backend.connects[0]!;
  c.events.connected();
  s.guest.take();
  c.events.data(new Uint8Array(250).fill(7));
  const first = s.guest.take();
  assert.deepEqual(ops(first), [VSOCK_OP_RW, VSOCK_OP_CREDIT_REQUEST]);
  assert.equal(first[0]!.header.len, 100);
  s.guest.send({ op: VSOCK_OP_CREDIT_UPDATE, srcPort: 1234, dstPort: 5000, bufAlloc: 100, fwdCnt: 60 });
  const second = s.guest.take();
  assert.equal(second[0]!.header.len, 60, 'exactly the freed space');
  s.guest.send({ op: VSOCK_OP_CREDIT_UPDATE, srcPort: 1234, dstPort: 5000, bufAlloc: 1000, fwdCnt: 160 });
  const third = s.guest.take();
  assert.deepEqual(third.map((p) => p.header.len), [90]);
  // A CREDIT_REQUEST from the guest is answered with our counts.
  s.guest.send({ op: VSOCK_OP_CREDIT_REQUEST, srcPort: 1234, dstPort: 5000, bufAlloc: 1000, fwdCnt: 250 });
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_CREDIT_UPDATE]);
  // fwd_cnt beyond what we ever sent is a lie: reset.
  s.guest.send({ op: VSOCK_OP_CREDIT_UPDATE, srcPort: 1234, dstPort: 5000, bufAlloc: 1000, fwdCnt: 251 });
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  assert.equal(s.vsock.metrics.creditViolations, 1);
});

test('vsock: host data past the queue limit pauses the host stream; draining resumes it; a stream ignoring pause is reset', () => {
  const s = setup({ hostQueueLimit: 8192 });
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1234, dstPort: 5000, bufAlloc: 0 });
  const c = s.backend.connects[0]!;
  c.events.connected();
  s.guest.take();
  for (let i = 0; i < 3; i++) c.events.data(new Uint8Array(4096));
  assert.equal(c.stream.paused, true);
  assert.equal(s.vsock.bufferedBytes, 12288);
  s.guest.send({ op: VSOCK_OP_CREDIT_UPDATE, srcPort: 1234, dstPort: 5000, bufAlloc: 65536 });
  assert.equal(c.stream.paused, false);
  const got = s.guest.take();
  assert.equal(got.filter((p) => p.header.op === VSOCK_OP_RW).reduce((n, p) => n + p.payload.length, 0), 12288);
  s.guest.send({ op: VSOCK_OP_CREDIT_UPDATE, srcPort: 1234, dstPort: 5000, bufAlloc: 0, fwdCnt: 12288 });
  for (let i = 0; i < 40 && s.vsock.connectionCount; i++) c.events.data(new Uint8Array(8192));
  assert.equal(s.vsock.connectionCount, 0);
  assert.equal(c.stream.destroyed, true);
});

test('vsock: bad packets are answered with RST and reset the connection they name; spoofed and short ones are dropped', () => {
  const s = setup();
  const bad: [string, Parameters<MockVsockGuest['send']>[0], Uint8Array?][] = [
    ['destination not the host', { op: VSOCK_OP_REQUEST, dstCid: 7 }],
    ['destination with a high word', { op: VSOCK_OP_REQUEST, dstCid: 2 + 2 ** 32 }],
    ['seqpacket type', { op: VSOCK_OP_REQUEST, type: 2 }],
    ['op INVALID', { op: 0 }],
    ['op 8', { op: 8 }],
    ['payload on a REQUEST', { op: VSOCK_OP_REQUEST }, text('x')],
    ['flags on RW', { op: VSOCK_OP_RW, flags: 1 }],
    ['unknown SHUTDOWN flag', { op: VSOCK_OP_SHUTDOWN, flags: 4 }],
    ['RW for no connection', { op: VSOCK_OP_RW }, text('x')],
    ['SHUTDOWN for no connection', { op: VSOCK_OP_SHUTDOWN, flags: 3 }],
    ['RESPONSE for no connection', { op: VSOCK_OP_RESPONSE }],
    ['CREDIT_UPDATE for no connection', { op: VSOCK_OP_CREDIT_UPDATE }],
  ];
  for (const [why, h, payload] of bad) {
    s.guest.send({ srcPort: 99, dstPort: 100, ...h }, payload);
    const got = s.guest.take();
    assert.deepEqual(ops(got), [VSOCK_OP_RST], why);
    assert.equal(got[0]!.header.dstPort, 99, why);
    assert.equal(got[0]!.header.srcPort, 100, why);
  }
  // len larger than the chain, and larger than any packet may be.
  s.guest.send({ op: VSOCK_OP_RW, srcPort: 99, dstPort: 100, len: 10 }, new Uint8Array(0), { buffers: [{ address: s.guest.txArea, length: VSOCK_HDR_SIZE + 9 }] });
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  s.guest.send({ op: VSOCK_OP_RW, srcPort: 99, dstPort: 100 }, new Uint8Array(VSOCK_MAX_PAYLOAD + 1));
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  assert.equal(s.vsock.metrics.badPackets, 10, 'the unknown-connection ones are not header faults');
  // Not answered: a source that is not the guest, a chain shorter than a header, an RST.
  s.guest.send({ op: VSOCK_OP_REQUEST, srcCid: 4, dstPort: 5 });
  s.guest.send({ op: VSOCK_OP_REQUEST, srcCid: CID + 2 ** 32, dstPort: 5 });
  s.guest.send({ op: VSOCK_OP_REQUEST }, new Uint8Array(0), { buffers: [{ address: s.guest.txArea, length: VSOCK_HDR_SIZE - 1 }] });
  s.guest.send({ op: VSOCK_OP_RST, srcPort: 1, dstPort: 2 });
  assert.deepEqual(s.guest.take(), []);
  assert.equal(s.vsock.metrics.dropped, 3);
  assert.equal(s.backend.connects.length, 0);
  // Protocol errors on a live connection reset it.
  const c = established(s);
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1234, dstPort: 5000 });
  assert.equal(c.stream.destroyed, true, 'a second REQUEST for a live connection');
  assert.deepEqual(ops(s.guest.take()), [VSOCK_OP_RST]);
  s.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1, dstPort: 6 });
  s.guest.send({ srcPort: 1, dstPort: 6 }, text('too soon'));
  assert.equal(s.backend.connects.at(-1)!.stream.destroyed, true, 'RW before our RESPONSE');
  assert.equal(s.backend.connects.at(-1)!.stream.written.length, 0);
  assert.deepEqual(s.resets, [], 'never a device fault');
  assert.equal(s.driver.status() & STATUS_DEVICE_NEEDS_RESET, 0);
});

test('vsock: receive buffers too small for a header are returned empty; payload never exceeds a buffer', () => {
  const s = setup({}, { rxBuffers: 4, rxBufferSize: 10 });
  const c = established(s);
  c.events.data(new Uint8Array(25).fill(1));
  const got = s.guest.take();
  assert.deepEqual(got.map((p) => p.header.len), [10, 10, 5]);
  assert.ok(got.every((p) => p.usedLen === VSOCK_HDR_SIZE + p.header.len));
});

test('vsock: RSTs wait for receive buffers, bounded: the transmit queue is not read while too many wait', () => {
  const s = setup({ queueSize: 512 }, { rxBuffers: 0, queueSize: 512 });
  for (let i = 0; i < VSOCK_RST_QUEUE_LIMIT + 10; i++) s.guest.send({ op: VSOCK_OP_RW, srcPort: i, dstPort: 1 }, text('x'));
  assert.equal(s.vsock.metrics.txPackets, VSOCK_RST_QUEUE_LIMIT);
  // Buffers arrive: RSTs flow, and the transmit queue is read again.
  for (let i = 0; i < 300; i++) s.guest.postRx([{ address: 0x40_0000 + i * 64, length: 64, writable: true }]);
  assert.equal(s.vsock.metrics.txPackets, VSOCK_RST_QUEUE_LIMIT + 10);
  assert.equal(s.vsock.metrics.resets, VSOCK_RST_QUEUE_LIMIT + 10);
});

test('vsock: device reset aborts every host stream; a restored device owes the driver a TRANSPORT_RESET event', () => {
  const s = setup();
  const c = established(s);
  s.driver.write32(0x70, 0);
  assert.equal(c.stream.destroyed, true);
  assert.equal(s.vsock.connectionCount, 0);
  s.vsock.restoreState(s.vsock.saveState());
  const g = new MockVsockGuest(s.memory, s.driver, CID);
  assert.deepEqual(g.event.takeUsed(), [], 'no event buffer yet');
  s.memory.writeU32(0x70_0000, 0xffff_ffff);
  g.event.addChain([{ address: 0x70_0000, length: 8, writable: true }]);
  s.driver.notify(2);
  assert.deepEqual(g.event.takeUsed(), [{ id: 0, len: 4 }]);
  assert.equal(s.memory.readU32(0x70_0000), 0, 'VIRTIO_VSOCK_EVENT_TRANSPORT_RESET');
  g.event.addChain([{ address: 0x70_0000, length: 8, writable: true }]);
  s.driver.notify(2);
  assert.deepEqual(g.event.takeUsed(), [], 'sent once');
  assert.throws(() => s.vsock.restoreState(null), /state must be an object/);
});

// ---- over real Unix sockets ----

function until(cond: () => boolean, what: string, poll: () => void = () => {}, ms = 3000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      poll();
      if (cond()) return resolve();
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 1);
    };
    tick();
  });
}

function listen(path: string): Promise<{ server: Server; sockets: Socket[]; received: () => string }> {
  const sockets: Socket[] = [];
  const chunks: Buffer[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.push(s);
    s.on('data', (b) => chunks.push(b));
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ server, sockets, received: () => Buffer.concat(chunks).toString() })));
}

async function udsSetup() {
  const dir = mkdtempSync(join(tmpdir(), 'tv-vsock-'));
  const path = join(dir, 'v.sock');
  const backend = await UnixVsockBackend.listen(path);
  const s = setup({ backend: backend as unknown as FakeBackend, clock: undefined });
  return {
    ...s,
    dir,
    path,
    uds: backend,
    async cleanup() {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('vsock over Unix sockets: guest connects to PATH_5000, data both ways, half close, full close', async () => {
  const u = await udsSetup();
  const app = await listen(`${u.path}_5000`);
  try {
    u.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1234, dstPort: 5000 });
    await until(() => u.guest.inbox.some((p) => p.header.op === VSOCK_OP_RESPONSE), 'RESPONSE', () => u.guest.poll());
    u.guest.take();
    u.guest.send({ srcPort: 1234, dstPort: 5000 }, text('ping from guest'));
    await until(() => app.received() === 'ping from guest', 'host to receive');
    const big = new Uint8Array(200_000).map((_, i) => i & 0xff);
    app.sockets[0]!.write(big);
    const got: Uint8Array[] = [];
    let fwd = 0;
    await until(
      () => got.reduce((n, b) => n + b.length, 0) === big.length,
      '200 kB to reach the guest',
      () => {
        for (const p of u.guest.take()) {
          if (p.header.op !== VSOCK_OP_RW) continue;
          assert.ok(p.payload.length <= 4096);
          got.push(p.payload);
          fwd += p.payload.length;
        }
        // The guest consumes and says so, as Linux does when its free space runs low.
        u.guest.send({ op: VSOCK_OP_CREDIT_UPDATE, srcPort: 1234, dstPort: 5000, fwdCnt: fwd });
      },
    );
    assert.deepEqual(Buffer.concat(got), Buffer.from(big));
    app.sockets[0]!.end();
    await until(() => u.guest.inbox.some((p) => p.header.op === VSOCK_OP_SHUTDOWN && p.header.flags === VSOCK_SHUTDOWN_SEND), 'SHUTDOWN SEND', () => u.guest.poll());
    u.guest.take();
    u.guest.send({ srcPort: 1234, dstPort: 5000, fwdCnt: fwd }, text(' after half close'));
    await until(() => app.received().endsWith(' after half close'), 'data after half close');
    u.guest.send({ op: VSOCK_OP_SHUTDOWN, srcPort: 1234, dstPort: 5000, flags: VSOCK_SHUTDOWN_BOTH, fwdCnt: fwd });
    assert.deepEqual(ops(u.guest.take()), [VSOCK_OP_RST]);
    await until(() => app.sockets[0]!.closed, 'host socket closed');
    assert.equal(u.vsock.connectionCount, 0);
  } finally {
    app.server.close();
    await u.cleanup();
  }
});

test('vsock over Unix sockets: host CONNECT <port> reaches the guest listener and reads OK <port>', async () => {
  const u = await udsSetup();
  try {
    const sock = createConnection(u.path);
    const fromGuest: Buffer[] = [];
    sock.on('data', (b) => fromGuest.push(b));
    sock.write('CONNECT 52\nhello');
    await until(() => u.guest.inbox.some((p) => p.header.op === VSOCK_OP_REQUEST), 'REQUEST', () => u.guest.poll());
    const req = u.guest.take()[0]!;
    assert.equal(req.header.dstPort, 52);
    u.guest.send({ op: VSOCK_OP_RESPONSE, srcPort: 52, dstPort: req.header.srcPort });
    await until(() => Buffer.concat(fromGuest).toString() === `OK ${req.header.srcPort}\n`, 'OK line');
    await until(() => u.guest.inbox.some((p) => p.header.op === VSOCK_OP_RW), 'pipelined data', () => u.guest.poll());
    assert.equal(str(u.guest.take()[0]!.payload), 'hello');
    u.guest.send({ srcPort: 52, dstPort: req.header.srcPort }, text('world'));
    await until(() => Buffer.concat(fromGuest).toString().endsWith('world'), 'data to the host');
    // A Unix socket's EOF cannot tell close() from shutdown(SHUT_WR): the guest hears "no more data".
    sock.destroy();
    await until(() => u.guest.inbox.some((p) => p.header.op === VSOCK_OP_SHUTDOWN && p.header.flags === VSOCK_SHUTDOWN_SEND), 'SHUTDOWN', () => u.guest.poll());
    u.guest.take();
    u.guest.send({ op: VSOCK_OP_SHUTDOWN, srcPort: 52, dstPort: req.header.srcPort, flags: VSOCK_SHUTDOWN_BOTH });
    assert.deepEqual(ops(u.guest.take()), [VSOCK_OP_RST]);
    assert.equal(u.vsock.connectionCount, 0);
  } finally {
    await u.cleanup();
  }
});

test('vsock over Unix sockets: refusals close the host socket or reset the guest', async () => {
  const u = await udsSetup();
  try {
    const closed = (line: string): Promise<string> =>
      new Promise((resolve) => {
        const s = createConnection(u.path);
        let got = '';
        s.on('data', (b) => (got += b.toString()));
        s.on('close', () => resolve(got));
        s.on('error', () => {});
        s.write(line);
      });
    assert.equal(await closed('HELLO 52\n'), '', 'not a CONNECT line');
    assert.equal(await closed('CONNECT 4294967296\n'), '', 'port beyond 32 bits');
    assert.equal(await closed('CONNECT ' + '1'.repeat(40)), '', 'a first line that never ends');
    // The guest refuses with RST.
    const refused = closed('CONNECT 53\n');
    await until(() => u.guest.inbox.some((p) => p.header.op === VSOCK_OP_REQUEST), 'REQUEST', () => u.guest.poll());
    const req = u.guest.take()[0]!;
    u.guest.send({ op: VSOCK_OP_RST, srcPort: 53, dstPort: req.header.srcPort });
    assert.equal(await refused, '');
    // Guest connects where no one listens.
    u.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 9, dstPort: 6000 });
    await until(() => u.guest.inbox.some((p) => p.header.op === VSOCK_OP_RST), 'RST', () => u.guest.poll());
    assert.equal(u.vsock.metrics.refused, 1);
    assert.equal(u.vsock.connectionCount, 0);
  } finally {
    await u.cleanup();
  }
});

test('vsock over Unix sockets: an existing path is refused by name; parseConnect accepts only CONNECT <u32>', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tv-vsock-'));
  try {
    const a = await UnixVsockBackend.listen(join(dir, 's'));
    await assert.rejects(UnixVsockBackend.listen(join(dir, 's')), new RegExp(`vsock: ${join(dir, 's')} already exists`));
    await a.close();
    await assert.rejects(UnixVsockBackend.listen(join(dir, 'no', 'such', 'dir')), /vsock: cannot listen on .*no\/such\/dir/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(parseConnect('CONNECT 52'), 52);
  assert.equal(parseConnect('CONNECT 52\r'), 52);
  assert.equal(parseConnect('CONNECT 4294967295'), 0xffff_ffff);
  for (const bad of ['CONNECT', 'CONNECT ', 'connect 52', 'CONNECT -1', 'CONNECT 1e3', 'CONNECT 52 ', ' CONNECT 52', 'CONNECT 4294967296', 'CONNECT 0x10']) {
    assert.equal(parseConnect(bad), undefined, bad);
  }
});

test('vsock: flood from the host to a guest that reads nothing stays within the per-connection bound', async () => {
  const u = await udsSetup();
  const app = await listen(`${u.path}_7000`);
  try {
    u.guest.send({ op: VSOCK_OP_REQUEST, srcPort: 1, dstPort: 7000, bufAlloc: 4096 });
    await until(() => app.sockets.length === 1 && u.guest.inbox.length > 0, 'connection', () => u.guest.poll());
    const chunk = new Uint8Array(64 * 1024);
    let writes = 0;
    const flood = (): void => {
      while (writes < 200 && app.sockets[0]!.write(chunk)) writes++;
    };
    flood();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(u.vsock.bufferedBytes <= 64 * 1024 + 128 * 1024, `${u.vsock.bufferedBytes} bytes held`);
    assert.ok(app.sockets[0]!.writableLength > 0, 'backpressure reaches the host application');
    assert.equal(u.vsock.connectionCount, 1, 'a well-behaved socket is paused, not reset');
    assert.equal(u.vsock.metrics.rxBytes, 4096, 'the guest got exactly its credit');
  } finally {
    app.server.close();
    await u.cleanup();
  }
});

test('vsock: the guest shuts down receiving: host data is discarded, sending continues', () => {
  const s = setup();
  const c = established(s);
  s.guest.send({ op: VSOCK_OP_SHUTDOWN, srcPort: 1234, dstPort: 5000, flags: VSOCK_SHUTDOWN_RCV });
  c.events.data(text('ignored'));
  assert.deepEqual(s.guest.take(), []);
  s.guest.send({ srcPort: 1234, dstPort: 5000 }, text('still sending'));
  assert.equal(c.stream.text, 'still sending');
  assert.equal(s.vsock.bufferedBytes, 0);
  void VSOCK_HOST_CID;
});
