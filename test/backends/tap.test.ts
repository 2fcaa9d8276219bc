/**
 * The TAP backend against the real kernel: ioctl values against
 * <linux/if_tun.h>, every refusal with its message, and frames through a
 * virtio-net device to a tap this test creates (root only) and back:
 * an ARP request and an ICMP echo to the tap's own address, answered by the
 * host kernel.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RecordingIrqLine } from '../../src/bus/index.js';
import { TapBackend } from '../../src/backends/tap.js';
import { IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, IFREQ_FLAGS, IFREQ_SIZE, TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ, TapError, VNET_HDR_V1_SIZE, openTap } from '../../src/native/tap.js';
import { close } from '../../src/native/libc.js';
import { GuestMemory, heapBacking } from '../../src/memory/index.js';
import { VirtioMmioTransport } from '../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue } from '../../src/virtio/mock-driver.js';
import { NET_HDR_SIZE, VirtioNet } from '../../src/virtio/net/index.js';

const isRoot = process.getuid?.() === 0;
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** A tap made for one test and removed after it; undefined (with the reason) when this host cannot. */
function makeTap(mode: 'tap' | 'tun' = 'tap'): { name: string; remove(): void } | string {
  if (!isRoot) return 'needs root to create a tap (ip tuntap add)';
  if (!have('ip')) return 'needs iproute2 (ip)';
  const name = `tvt${process.pid % 100000}${mode === 'tun' ? 'u' : ''}`;
  spawnSync('ip', ['link', 'del', name]);
  const r = spawnSync('ip', ['tuntap', 'add', 'dev', name, 'mode', mode]);
  if (r.status !== 0) return `ip tuntap add failed: ${r.stderr.toString().trim()}`;
  return { name, remove: () => void spawnSync('ip', ['tuntap', 'del', 'dev', name, 'mode', mode]) };
}

test('tap: ioctl numbers and struct ifreq layout match <linux/if_tun.h>', (t) => {
  if (!have('gcc')) return t.skip('needs gcc to compile against the kernel headers');
  const dir = mkdtempSync(join(tmpdir(), 'tv-tun-'));
  try {
    writeFileSync(
      join(dir, 'h.c'),
      `#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
int main(void) { printf("%lu %lu %lu %d %d %d %zu %zu %zu\\n", (unsigned long)TUNSETIFF, (unsigned long)TUNSETOFFLOAD, (unsigned long)TUNSETVNETHDRSZ,
  IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, sizeof(struct ifreq), offsetof(struct ifreq, ifr_flags), sizeof(struct virtio_net_hdr_v1)); return 0; }`,
    );
    execFileSync('gcc', ['-o', join(dir, 'h'), join(dir, 'h.c')]);
    const got = execFileSync(join(dir, 'h')).toString().trim().split(' ').map(Number);
    assert.deepEqual(got, [TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ, IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFREQ_SIZE, IFREQ_FLAGS, VNET_HDR_V1_SIZE]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tap: a missing interface is refused with the command that creates it', () => {
  assert.throws(() => openTap('tvnosuch0'), (e: unknown) => {
    assert.ok(e instanceof TapError);
    assert.equal(e.reason, 'missing');
    assert.match(e.message, /^tap tvnosuch0: no such interface; create it with: ip tuntap add dev tvnosuch0 mode tap$/);
    return true;
  });
});

test('tap: bad names are refused before any system call', () => {
  for (const name of ['', 'a'.repeat(16), '../x', 'a b', 'a:1', '.', '..']) {
    assert.throws(() => openTap(name), (e: unknown) => e instanceof TapError && e.reason === 'name' && e.message.includes('not a valid interface name'), JSON.stringify(name));
  }
});

test('tap: an interface that is not a tap is refused by name', (t) => {
  assert.throws(() => openTap('lo'), (e: unknown) => e instanceof TapError && e.reason === 'not-tap' && /^tap lo: is a network interface but not a tun\/tap device$/.test(e.message));
  const tun = makeTap('tun');
  if (typeof tun === 'string') return t.skip(tun);
  try {
    assert.throws(() => openTap(tun.name), (e: unknown) => e instanceof TapError && e.reason === 'not-tap' && e.message.includes('is a tun (layer 3) device, not a tap'));
  } finally {
    tun.remove();
  }
});

test('tap: a tap already attached elsewhere is busy', (t) => {
  const tap = makeTap();
  if (typeof tap === 'string') return t.skip(tap);
  const fd = openTap(tap.name);
  try {
    assert.throws(() => openTap(tap.name), (e: unknown) => e instanceof TapError && e.reason === 'busy' && e.message.startsWith(`tap ${tap.name}: attach: already attached`));
  } finally {
    close(fd);
    tap.remove();
  }
});

test('tap: without permission the message says how to grant it', (t) => {
  const tap = makeTap();
  if (typeof tap === 'string') return t.skip(tap);
  try {
    // The same call from an unprivileged process (uid nobody): /dev/net/tun is root-only here, or the tap belongs to root.
    const script = `import('${new URL('../../src/native/tap.js', import.meta.url).href}').then((m) => { try { m.openTap('${tap.name}'); console.log('opened'); } catch (e) { console.log(e.reason + '|' + e.message); } })`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    if (r.status !== 0 && /EACCES|permission denied|Cannot find/i.test(r.stderr)) return t.skip(`uid nobody cannot read the build: ${r.stderr.split('\n')[0]}`);
    assert.match(r.stdout.trim(), new RegExp(`^permission\\|tap ${tap.name}: .*permission denied; run as root, or give the tap to this user: ip tuntap add dev ${tap.name} mode tap user`));
  } finally {
    tap.remove();
  }
});

// ---- frames through virtio-net to the host kernel and back ----

const GUEST_MAC = Uint8Array.of(0x02, 0x54, 0x56, 0x00, 0x00, 0x02);
const BROADCAST = new Uint8Array(6).fill(0xff);

function ipv4(text: string): Uint8Array {
  return Uint8Array.from(text.split('.').map(Number));
}

function onesComplement(bytes: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ethernet(dst: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(dst, 0);
  f.set(GUEST_MAC, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  f.set(payload, 14);
  return f;
}

function arpRequest(senderIp: Uint8Array, targetIp: Uint8Array): Uint8Array {
  const a = new Uint8Array(28);
  a.set([0, 1, 8, 0, 6, 4, 0, 1], 0); // Ethernet, IPv4, 6-byte MAC, 4-byte IP, op 1 = request
  a.set(GUEST_MAC, 8);
  a.set(senderIp, 14);
  a.set(targetIp, 24);
  return ethernet(BROADCAST, 0x0806, a);
}

function icmpEcho(dstMac: Uint8Array, src: Uint8Array, dst: Uint8Array, id: number, data: Uint8Array): Uint8Array {
  const icmp = new Uint8Array(8 + data.length);
  icmp.set([8, 0, 0, 0, id >> 8, id & 0xff, 0, 1]);
  icmp.set(data, 8);
  const c = onesComplement(icmp);
  icmp[2] = c >> 8;
  icmp[3] = c & 0xff;
  const ip = new Uint8Array(20 + icmp.length);
  ip.set([0x45, 0, (ip.length >> 8) & 0xff, ip.length & 0xff, 0, 1, 0x40, 0, 64, 1, 0, 0]);
  ip.set(src, 12);
  ip.set(dst, 16);
  const hc = onesComplement(ip.subarray(0, 20));
  ip[10] = hc >> 8;
  ip[11] = hc & 0xff;
  ip.set(icmp, 20);
  return ethernet(dstMac, 0x0800, ip);
}

test('tap: an ARP request and an ICMP echo from the guest are answered by the host kernel through the device', async (t) => {
  const tap = makeTap();
  if (typeof tap === 'string') return t.skip(tap);
  const n = 20 + (process.pid % 200);
  const hostIp = `10.213.${n}.1`;
  const guestIp = `10.213.${n}.2`;
  execFileSync('ip', ['addr', 'add', `${hostIp}/24`, 'dev', tap.name]);
  execFileSync('ip', ['link', 'set', tap.name, 'up']);
  const backend = TapBackend.open(tap.name);
  try {
    const memory = new GuestMemory([heapBacking.allocate(0, 0x40_0000)]);
    const irq = new RecordingIrqLine();
    const net = new VirtioNet({ backend, mac: GUEST_MAC });
    const transport = new VirtioMmioTransport(net, { memory, irq });
    const driver = new MockMmioDriver(transport);
    const rxLayout = layoutQueue(0x1000, 16);
    const txLayout = layoutQueue(0x4000, 16);
    assert.equal(driver.init([rxLayout, txLayout]), 0x0f);
    const rx = new MockVirtqueue(memory, rxLayout);
    const tx = new MockVirtqueue(memory, txLayout);
    // Which buffer each posted chain (by head descriptor) points at: heads are reused in the order the mock hands them out.
    const bufferOf = new Map<number, number>();
    const post = (address: number): void => void bufferOf.set(rx.addChain([{ address, length: 0x800, writable: true }]), address);
    for (let i = 0; i < 16; i++) post(0x10_0000 + i * 0x1000);
    driver.notify(0);

    /** Sends one frame from the "guest" and waits for the first received frame accepted by `want`. */
    const exchange = async (frame: Uint8Array, want: (f: Uint8Array) => boolean): Promise<{ frame: Uint8Array; ms: number }> => {
      memory.write(0x20_0000, new Uint8Array(NET_HDR_SIZE));
      memory.write(0x20_0000 + NET_HDR_SIZE, frame);
      const t0 = performance.now();
      tx.addChain([{ address: 0x20_0000, length: NET_HDR_SIZE + frame.length }]);
      driver.notify(1);
      for (;;) {
        for (const u of rx.takeUsed()) {
          const address = bufferOf.get(u.id)!;
          const got = memory.read(address + NET_HDR_SIZE, u.len - NET_HDR_SIZE);
          post(address);
          driver.notify(0);
          if (want(got)) return { frame: got, ms: performance.now() - t0 };
        }
        if (performance.now() - t0 > 5000) throw new Error(`no answer; device ${JSON.stringify(net.metrics.snapshot())}; backend ${JSON.stringify(backend.metrics)} ${backend.failure ?? ''}`);
        await new Promise((r) => setTimeout(r, 1));
      }
    };

    const arp = await exchange(arpRequest(ipv4(guestIp), ipv4(hostIp)), (f) => f[12] === 0x08 && f[13] === 0x06 && f[21] === 2);
    assert.deepEqual([...arp.frame.subarray(0, 6)], [...GUEST_MAC], 'reply addressed to the guest');
    assert.deepEqual([...arp.frame.subarray(28, 32)], [...ipv4(hostIp)], 'sender is the tap address');
    const hostMac = arp.frame.subarray(22, 28).slice();
    const sysMac = execFileSync('cat', [`/sys/class/net/${tap.name}/address`]).toString().trim();
    assert.equal([...hostMac].map((b) => b.toString(16).padStart(2, '0')).join(':'), sysMac);

    const rtts: number[] = [];
    for (let i = 0; i < 50; i++) {
      const payload = new TextEncoder().encode(`typevisor ping ${i}`);
      const echo = await exchange(icmpEcho(hostMac, ipv4(guestIp), ipv4(hostIp), 0x7476, payload), (f) => f[12] === 0x08 && f[13] === 0 && f[34] === 0);
      assert.deepEqual([...echo.frame.subarray(26, 30)], [...ipv4(hostIp)]);
      // The IP total length bounds the packet: Ethernet may pad a short frame.
      const ipEnd = 14 + ((echo.frame[16]! << 8) | echo.frame[17]!);
      assert.deepEqual([...echo.frame.subarray(42, ipEnd)], [...payload], 'echo data comes back');
      rtts.push(echo.ms);
    }
    rtts.sort((a, b) => a - b);
    // The test polls the used ring every millisecond, so only the minimum says something about the path.
    t.diagnostic(`ARP (reader thread start included) ${arp.ms.toFixed(1)} ms; ICMP echo round trip, best of 50: ${(rtts[0]! * 1000).toFixed(0)} µs`);
    assert.ok(irq.edges > 0);
    assert.equal(net.metrics.txFrames, 51);
    assert.ok(net.metrics.rxFrames >= 51);
  } finally {
    await backend.close();
    tap.remove();
  }
});

test('tap: an open backend lets the process end, naturally or by process.exit (the reader thread is woken)', (t) => {
  const tap = makeTap();
  if (typeof tap === 'string') return t.skip(tap);
  try {
    const mod = new URL('../../src/backends/tap.js', import.meta.url).href;
    const cases: [string, number][] = [
      ['setTimeout(() => {}, 50)', 0],
      ['setTimeout(() => process.exit(3), 50)', 3],
    ];
    for (const [how, code] of cases) {
      const script: string = `import('${mod}').then((m) => { m.TapBackend.open('${tap.name}'); ${how}; })`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000, encoding: 'utf8' });
      assert.equal(r.signal, null, `${how}: still running after 10 s`);
      assert.equal(r.status, code, r.stderr);
    }
  } finally {
    tap.remove();
  }
});
