import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EFD_CLOEXEC, EFD_NONBLOCK, MAP_ANONYMOUS, MAP_PRIVATE, NativeError, O_RDONLY, POLLIN, PROT_READ, PROT_WRITE, close,
  errnoName, eventfd, getpid, gettid, ioctl, mmap, munmap, open, poll, read, sigismember, sigpoll, sigrtmin, sigset, view, write,
} from '../../src/native/index.js';
import { GuestMemory, mmapBacking } from '../../src/memory/index.js';

test('native: failures are NativeError with the call and the errno name', () => {
  assert.throws(() => open('/nonexistent/typevisor', O_RDONLY), (e: unknown) =>
    e instanceof NativeError && e.code === 'ENOENT' && e.call === 'open /nonexistent/typevisor' && /^open \/nonexistent\/typevisor: ENOENT \(No such file or directory\)$/.test(e.message));
  assert.throws(() => ioctl(1_000_000, 0xae00, 0, 'KVM_GET_API_VERSION'), (e: unknown) => e instanceof NativeError && e.code === 'EBADF' && /^KVM_GET_API_VERSION: EBADF/.test(e.message));
  assert.throws(() => close(1_000_000), (e: unknown) => e instanceof NativeError && e.code === 'EBADF');
  assert.throws(() => mmap(0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS), (e: unknown) => e instanceof NativeError && e.code === 'EINVAL');
  assert.equal(errnoName(13), 'EACCES');
  assert.equal(errnoName(99999), 'errno 99999');
});

test('native: an mmap view aliases the mapping', () => {
  const size = 8192;
  const address = mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  assert.equal(address % 4096n, 0n);
  const a = new Uint8Array(view(address, size));
  const b = new Uint8Array(view(address, size));
  assert.equal(a.length, size);
  assert.ok(a.every((x) => x === 0));
  a[4097] = 0x5a;
  assert.equal(b[4097], 0x5a);
  munmap(address, size);
});

test('native: eventfd counts writes and poll sees it readable', () => {
  const fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  try {
    assert.deepEqual(poll([{ fd, events: POLLIN }], 0), [0]);
    const one = new Uint8Array(new BigUint64Array([1n]).buffer);
    write(fd, one);
    write(fd, one);
    assert.deepEqual(poll([{ fd, events: POLLIN }], 0), [POLLIN]);
    const got = new Uint8Array(8);
    assert.equal(read(fd, got), 8);
    assert.equal(new DataView(got.buffer).getBigUint64(0, true), 2n);
    assert.throws(() => read(fd, got), (e: unknown) => e instanceof NativeError && e.code === 'EAGAIN');
  } finally {
    close(fd);
  }
});

test('native: signal sets and thread ids', () => {
  const rt = sigrtmin();
  assert.ok(rt >= 32 && rt < 64, `SIGRTMIN ${rt}`);
  const set = sigset(10, rt);
  assert.ok(sigismember(set, 10) && sigismember(set, rt) && !sigismember(set, 12));
  assert.throws(() => sigset(0), /bad signal number 0/);
  assert.throws(() => sigset(65), /bad signal number 65/);
  assert.equal(sigpoll(sigset(rt + 7)), 0, 'nothing pending');
  assert.equal(gettid(), getpid(), 'the main thread is the thread-group leader');
  assert.equal(getpid(), process.pid);
});

test('memory/mmap-backing: regions are page-aligned host mappings usable as guest memory', () => {
  const r = mmapBacking.allocate(0x10000, 0x3000);
  assert.equal(r.base, 0x10000);
  assert.equal(r.bytes.length, 0x3000);
  assert.ok(typeof r.hostAddress === 'bigint' && r.hostAddress % 4096n === 0n);
  const m = new GuestMemory([r]);
  m.writeU64(0x12ff8, 0x1122334455667788n);
  assert.equal(m.readU64(0x12ff8), 0x1122334455667788n);
  assert.equal(new Uint8Array(view(r.hostAddress!, 0x3000))[0x2ff8], 0x88, 'the host address maps the same bytes');
});
