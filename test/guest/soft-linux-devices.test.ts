/**
 * Debian's stock cloud kernel on the soft engine with every virtio device at
 * once, in one boot (Linux costs about a minute of CPU here): the drivers
 * from the image's initramfs bind to the disk, NIC, rng and vsock devices; a
 * pattern written with dd and synced is in the host's image file afterwards
 * and a read-only disk refuses writes; the rng serves /dev/hwrng; a vsock
 * stream works host→guest and guest→host through the Unix-socket backend;
 * the guest pings the host over a tap.
 *
 * The guest's script, the pattern and a small static vsock program
 * (test/fixtures/vsock) travel in a second newc archive appended to the
 * default initrd: Linux unpacks concatenated archives in order.
 *
 * Skips by name when the image cannot be built; the vsock and NIC parts skip
 * by name (the rest still runs) without a static C toolchain or without the
 * right to create a tap.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeNewc } from '../../src/image/cpio.js';
import { guestCommandParam, guestExitStatus } from '../../src/image/guest-cmdline.js';
import { linuxImageOrSkip } from './run-guest.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const VSOCK_TOOL_SOURCE = join(REPO, 'test/fixtures/vsock/vsock-tool.c');

/** Boot, script and power-off take ~70 s of CPU; a loaded 2-core CI runner may take several times that. */
const RUN_TIMEOUT_MS = 900_000;

/** 512-byte sectors: where the guest writes the pattern on the writable disk (odd, past the first MiB). */
const PATTERN_SECTOR = 2053;
/** 17 sectors: not a power of two, so a request split or a short write shows. */
const PATTERN = randomBytes(17 * 512);
const RW_DISK_SIZE = 4 * 2 ** 20;
const RO_DISK_SIZE = 2 ** 20;
/** Drive IDs: the guest finds each disk by its serial (/sys/block/vdX/serial), not by probe order. */
const RW_ID = 'tvrw';
const RO_ID = 'tvro';

const GUEST_CID = 7;
/** Guest port of the host → guest stream. */
const GUEST_LISTEN_PORT = 5000;
/** Host port the guest connects to: the host listens on `<uds>_<port>`. */
const HOST_LISTEN_PORT = 6000;
const HOST_MESSAGE = 'hello guest, this is the host';
const GUEST_MESSAGE = 'hello host, this is the guest';
const HOST_REPLY_PREFIX = 'host heard: ';

/** Locally administered, unicast. */
const GUEST_MAC = '52:54:00:7e:5a:01';

/** Virtio device IDs (virtio 1.2 §5) and the Linux driver that binds each. */
const VIRTIO_DRIVERS: Record<string, string> = {
  '0x0001': 'virtio_net',
  '0x0002': 'virtio_blk',
  '0x0004': 'virtio_rng',
  '0x0013': 'vmw_vsock_virtio_transport',
};

const isRoot = process.getuid?.() === 0;
const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Builds the vsock tool statically into `dir`; its path, or why it cannot be built. */
function buildVsockTool(dir: string): { path: string } | { skip: string } {
  if (!have('gcc')) return { skip: 'gcc is not installed (scripts/ensure-test-deps.mjs installs gcc and libc6-dev)' };
  const out = join(dir, 'vsock-tool');
  const r = spawnSync('gcc', ['-static', '-Os', '-s', '-Wall', '-Werror', '-o', out, VSOCK_TOOL_SOURCE], { encoding: 'utf8' });
  if (r.status !== 0) return { skip: `gcc -static cannot build ${VSOCK_TOOL_SOURCE}: ${(r.stderr || r.error?.message || '').trim().split('\n')[0]}` };
  return { path: out };
}

interface Tap { name: string; hostIp: string; guestIp: string; remove(): void }

/** A tap with a host address, or why one cannot be made here. */
function makeTap(): Tap | string {
  if (!isRoot) return 'needs root to create a tap (ip tuntap add)';
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun is absent';
  if (!have('ip')) return 'needs iproute2 (ip)';
  const n = process.pid % 250;
  const name = `tvd${process.pid % 100000}`;
  const hostIp = `10.214.${n}.1`;
  spawnSync('ip', ['link', 'del', name]);
  const steps = [
    ['tuntap', 'add', 'dev', name, 'mode', 'tap'],
    ['addr', 'add', `${hostIp}/24`, 'dev', name],
    ['link', 'set', name, 'up'],
  ];
  const remove = () => void spawnSync('ip', ['tuntap', 'del', 'dev', name, 'mode', 'tap']);
  for (const args of steps) {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) {
      remove();
      return `ip ${args.join(' ')} failed: ${r.stderr.trim()}`;
    }
  }
  return { name, hostIp, guestIp: `10.214.${n}.2`, remove };
}

/**
 * The guest's script. Each check prints "tv-step NAME ok|fail UPTIME"; the exit
 * status counts the failures. Lines the host parses start with "tv-".
 */
function guestScript(o: { vsock: boolean; tap: Tap | undefined }): string {
  const lines = [
    'fails=0',
    // Guest uptime on each step, for the timing diagnostic.
    'step() { echo "tv-step $1 $2 $(cut -d" " -f1 /proc/uptime)"; [ "$2" = ok ] || fails=$((fails + 1)); }',
    'echo "tv-start $(cut -d" " -f1 /proc/uptime)"',
    'for d in /sys/bus/virtio/devices/*; do',
    '  drv=none; [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")',
    '  echo "tv-virtio $(basename "$d") $(cat "$d/device") $drv"',
    'done',
    // Disks, found by the serial the host gave them.
    'rw=; ro=',
    'for b in /sys/block/vd*; do',
    '  case "$(cat "$b/serial")" in',
    `  ${RW_ID}) rw=\${b##*/} ;;`,
    `  ${RO_ID}) ro=\${b##*/} ;;`,
    '  esac',
    'done',
    'echo "tv-disks rw=$rw ro=$ro ro-flag=$(cat /sys/block/$ro/ro 2>/dev/null)"',
    `if dd if=/tvtest/pattern.bin of=/dev/$rw bs=512 seek=${PATTERN_SECTOR} conv=notrunc,fsync && sync; then step disk-write ok; else step disk-write fail; fi`,
    // Read back from the device, not the page cache.
    'echo 3 > /proc/sys/vm/drop_caches',
    `if dd if=/dev/$rw bs=512 skip=${PATTERN_SECTOR} count=${PATTERN.length / 512} 2>/dev/null | cmp - /tvtest/pattern.bin; then step disk-readback ok; else step disk-readback fail; fi`,
    'if dd if=/tvtest/pattern.bin of=/dev/$ro bs=512 count=1 conv=notrunc,fsync 2>/tmp/ro.err; then step ro-write-refused fail; else step ro-write-refused ok; fi',
    'echo "tv-ro-error $(tr \'\\n\' \' \' < /tmp/ro.err)"',
    // Entropy.
    'echo "tv-rng-current $(cat /sys/class/misc/hw_random/rng_current)"',
    'echo "tv-rng-bytes $(head -c 64 /dev/hwrng | od -An -tx1 | tr -s \' \\n\' \'  \')"',
  ];
  if (o.tap) {
    lines.push(
      'echo "tv-mac $(cat /sys/class/net/eth0/address)"',
      `if ip link set eth0 up && ip addr add ${o.tap.guestIp}/24 dev eth0 && ping -c 3 -W 5 ${o.tap.hostIp}; then step ping ok; else step ping fail; fi`,
    );
  }
  if (o.vsock) {
    lines.push(
      // The host connects once it sees the listener's "listening" line.
      `/tvtest/vsock-tool listen ${GUEST_LISTEN_PORT} &`,
      'if wait $!; then step vsock-host-to-guest ok; else step vsock-host-to-guest fail; fi',
      `if /tvtest/vsock-tool connect 2 ${HOST_LISTEN_PORT} '${GUEST_MESSAGE}'; then step vsock-guest-to-host ok; else step vsock-guest-to-host fail; fi`,
    );
  }
  lines.push('sync', 'exit $fails', '');
  return lines.join('\n');
}

/** The second initrd archive: /tvtest with the script, the pattern and the vsock tool. */
function extraArchive(script: string, vsockTool: string | undefined): Uint8Array {
  return writeNewc([
    { path: 'tvtest', type: 'dir', mode: 0o755 },
    { path: 'tvtest/run.sh', type: 'file', mode: 0o755, data: new TextEncoder().encode(script) },
    { path: 'tvtest/pattern.bin', type: 'file', mode: 0o644, data: PATTERN },
    ...(vsockTool ? [{ path: 'tvtest/vsock-tool', type: 'file' as const, mode: 0o755, data: readFileSync(vsockTool) }] : []),
  ]);
}

/**
 * The default initrd with `extra` behind it. Linux's unpacker skips zero
 * padding between archives but reads an uncompressed header only at a
 * 4-byte-aligned offset (init/initramfs.c, unpack_to_rootfs): pad to 512.
 */
function concatInitrd(base: Uint8Array, extra: Uint8Array): Uint8Array {
  const padded = Math.ceil(base.length / 512) * 512;
  const out = new Uint8Array(padded + extra.length);
  out.set(base, 0);
  out.set(extra, padded);
  return out;
}

/** One line from a socket, or the error/close that came first. */
function readLine(socket: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => finish(new Error(`no line within ${timeoutMs} ms (got ${JSON.stringify(buf)})`)), timeoutMs);
    const onData = (s: string) => {
      buf += s;
      const nl = buf.indexOf('\n');
      if (nl >= 0) finish(undefined, buf.slice(0, nl));
    };
    const onClose = () => finish(new Error(`closed before a full line (got ${JSON.stringify(buf)})`));
    const onError = (e: Error) => finish(e);
    function finish(err: Error | undefined, line?: string) {
      clearTimeout(timer);
      socket.off('data', onData).off('close', onClose).off('error', onError);
      if (err) reject(err);
      else resolve(line!);
    }
    socket.setEncoding('latin1');
    socket.on('data', onData).on('close', onClose).on('error', onError);
  });
}

interface HostToGuest { okLine?: string; reply?: string; attempts: number; error?: string }

/**
 * Host → guest, Firecracker's way: connect to the uds, `CONNECT <port>`,
 * `OK <port>`, then the stream. A refused CONNECT closes the socket: retry,
 * since the guest's listener may not be accepting yet.
 */
async function hostConnect(uds: string, result: HostToGuest): Promise<void> {
  for (;;) {
    result.attempts++;
    const socket = createConnection({ path: uds });
    try {
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.write(`CONNECT ${GUEST_LISTEN_PORT}\n`);
      result.okLine = await readLine(socket, 60_000);
      socket.write(`${HOST_MESSAGE}\n`);
      result.reply = await readLine(socket, 60_000);
      delete result.error;
      return;
    } catch (e) {
      result.error = (e as Error).message;
      if (result.attempts >= 10) return;
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      socket.destroy();
    }
  }
}

interface GuestToHost { received?: string; server: Server }

/** The listener a guest connecting to CID 2 port P reaches: `<uds>_P`. It answers one line per connection. */
function hostListen(path: string): Promise<GuestToHost> {
  const result: GuestToHost = { server: createServer((socket) => {
    readLine(socket, 60_000).then((line) => {
      result.received = line;
      socket.end(`${HOST_REPLY_PREFIX}${line}\n`);
    }, () => socket.destroy());
  }) };
  return new Promise((resolve, reject) => {
    result.server.once('error', reject);
    result.server.listen(path, () => resolve(result));
  });
}

interface Run { status: number | null; stdout: string; stderr: string; ms: number }

/** Runs the CLI; `onLine` sees each console line as it arrives. */
function runCli(args: string[], timeoutMs: number, onLine: (line: string) => void): Promise<Run> {
  const started = performance.now();
  const child = spawn(process.execPath, [`${REPO}bin/typevisor.js`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout.setEncoding('latin1').on('data', (s: string) => {
    stdout += s;
    partial += s;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) onLine(l.replace(/\r$/, ''));
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: performance.now() - started });
    });
  });
}

/** The rest of the console line that starts with `prefix`, or undefined. */
function consoleValue(stdout: string, prefix: string): string | undefined {
  for (const line of stdout.split('\n')) {
    const l = line.replace(/\r$/, '');
    if (l.startsWith(prefix)) return l.slice(prefix.length);
  }
  return undefined;
}

/** The kernel's timestamp (seconds of guest uptime) on the first console line containing `text`. */
function kernelTime(stdout: string, text: string): string {
  for (const line of stdout.split('\n')) {
    const m = /^\[\s*(\d+\.\d+)\]/.exec(line);
    if (m && line.includes(text)) return `${Number(m[1]).toFixed(1)} s`;
  }
  return '?';
}

function stepResult(stdout: string, name: string): string | undefined {
  return new RegExp(`^tv-step ${name} (ok|fail) [\\d.]+\\r?$`, 'm').exec(stdout)?.[1];
}

test('Linux on soft: disk, NIC, rng and vsock under Debian\'s kernel in one boot', async (t) => {
  const image = await linuxImageOrSkip(t);
  if (!image) return;

  const dir = mkdtempSync(join(tmpdir(), 'tv-devs-'));
  const cleanups: (() => void)[] = [() => rmSync(dir, { recursive: true, force: true })];
  t.after(() => { for (const c of cleanups.reverse()) c(); });

  const tool = buildVsockTool(dir);
  const vsockSkip = 'skip' in tool ? tool.skip : undefined;
  const tapOrWhy = makeTap();
  const tap = typeof tapOrWhy === 'string' ? undefined : tapOrWhy;
  if (tap) cleanups.push(tap.remove);
  const netSkip = typeof tapOrWhy === 'string' ? tapOrWhy : undefined;

  const rwDisk = join(dir, 'rw.img');
  const roDisk = join(dir, 'ro.img');
  const rwBefore = randomBytes(RW_DISK_SIZE);
  const roBefore = randomBytes(RO_DISK_SIZE);
  writeFileSync(rwDisk, rwBefore);
  writeFileSync(roDisk, roBefore);

  const script = guestScript({ vsock: vsockSkip === undefined, tap });
  const initrd = join(dir, 'initrd.img');
  writeFileSync(initrd, concatInitrd(readFileSync(image.initrd), extraArchive(script, 'path' in tool ? tool.path : undefined)));

  // Short: sun_path holds 108 bytes, and the backend adds "_<port>".
  const uds = join(dir, 'v.sock');
  const toHost = await hostListen(`${uds}_${HOST_LISTEN_PORT}`);
  cleanups.push(() => toHost.server.close());
  const toGuest: HostToGuest = { attempts: 0 };
  let toGuestDone: Promise<void> | undefined;

  const args = [
    'run', '--engine', 'soft', '--cpus', '1', '--memory', '512M',
    '--kernel', image.kernel, '--initrd', initrd,
    '--disk', `${rwDisk},id=${RW_ID}`, '--disk', `${roDisk},ro,id=${RO_ID}`,
    '--rng',
    '--vsock', `cid=${GUEST_CID},uds=${uds}`,
    ...(tap ? ['--net', `tap=${tap.name},mac=${GUEST_MAC}`] : []),
    '--cmdline', `console=ttyS0 reboot=acpi panic=-1 ${guestCommandParam('sh /tvtest/run.sh')}`,
  ];
  const r = await runCli(args, RUN_TIMEOUT_MS, (line) => {
    if (line.includes(`vsock-tool: listening on ${GUEST_LISTEN_PORT}`)) toGuestDone ??= hostConnect(uds, toGuest);
  });
  await toGuestDone;

  const ctx = `status ${r.status} after ${(r.ms / 1000).toFixed(1)} s\n--- console (tail)\n${r.stdout.slice(-4000)}\n--- stderr (tail)\n${r.stderr.slice(-2000)}`;
  const steps = [...r.stdout.matchAll(/^tv-(start|step (\S+) \S+) ([\d.]+)\r?$/gm)].map((m) => `${m[2] ?? 'script start'} ${Number(m[3]).toFixed(1)}`);
  t.diagnostic(`guest uptime (s) at each step: ${steps.join(', ')}`);
  t.diagnostic(`boot, device checks and power-off in ${(r.ms / 1000).toFixed(1)} s wall; guest uptime at /init ${kernelTime(r.stdout, 'Run /init')}, at power-off ${kernelTime(r.stdout, 'reboot: Power down')}`);

  await t.test('every device is bound to its driver from the image', () => {
    const bound = new Map<string, string>();
    for (const m of r.stdout.matchAll(/^tv-virtio (\S+) (0x[0-9a-f]{4}) (\S+)\r?$/gm)) bound.set(m[1]!, `${m[2]} ${m[3]}`);
    const want = ['0x0002', '0x0002', '0x0004', '0x0013', ...(tap ? ['0x0001'] : [])].map((id) => `${id} ${VIRTIO_DRIVERS[id]}`).sort();
    assert.deepEqual([...bound.values()].sort(), want, ctx);
    assert.doesNotMatch(r.stdout, /probe of virtio\d+ failed|genirq: Flags mismatch/, ctx);
  });

  await t.test('disk: a pattern written with dd and synced is in the host file, nothing else changed', () => {
    assert.match(r.stdout, new RegExp(`^tv-disks rw=vd[a-z] ro=vd[a-z] ro-flag=1\\r?$`, 'm'), ctx);
    assert.equal(stepResult(r.stdout, 'disk-write'), 'ok', ctx);
    assert.equal(stepResult(r.stdout, 'disk-readback'), 'ok', ctx);
    const after = readFileSync(rwDisk);
    assert.equal(after.length, RW_DISK_SIZE, 'the image keeps its size');
    const at = PATTERN_SECTOR * 512;
    assert.ok(after.subarray(at, at + PATTERN.length).equals(PATTERN), `the pattern is at byte ${at} of the host file\n${ctx}`);
    assert.ok(after.subarray(0, at).equals(rwBefore.subarray(0, at)), 'bytes before the pattern are unchanged');
    assert.ok(after.subarray(at + PATTERN.length).equals(rwBefore.subarray(at + PATTERN.length)), 'bytes after the pattern are unchanged');
  });

  await t.test('disk: a read-only disk refuses the guest\'s write and stays byte-identical', () => {
    assert.equal(stepResult(r.stdout, 'ro-write-refused'), 'ok', `dd to the read-only disk must fail\n${ctx}`);
    assert.match(consoleValue(r.stdout, 'tv-ro-error ') ?? '', /dd: .*(Operation not permitted|Read-only file system)/, ctx);
    assert.ok(readFileSync(roDisk).equals(roBefore), 'the read-only image is unchanged');
  });

  await t.test('rng: virtio_rng is the current hw_random source and /dev/hwrng yields 64 varied bytes', () => {
    assert.match(consoleValue(r.stdout, 'tv-rng-current ') ?? '', /^virtio_rng\.\d+$/, ctx);
    const bytes = (consoleValue(r.stdout, 'tv-rng-bytes ') ?? '').trim().split(/\s+/).filter((s) => s !== '');
    assert.equal(bytes.length, 64, `64 bytes from /dev/hwrng\n${ctx}`);
    assert.ok(bytes.every((b) => /^[0-9a-f]{2}$/.test(b)), ctx);
    assert.ok(new Set(bytes).size > 1, `the bytes are not all equal: ${bytes.join(' ')}`);
  });

  await t.test('vsock: host → guest through CONNECT on the uds', (st: TestContext) => {
    if (vsockSkip) return st.skip(vsockSkip);
    const diag = `${JSON.stringify(toGuest)}\n${ctx}`;
    assert.match(toGuest.okLine ?? '', /^OK \d+$/, diag);
    assert.equal(toGuest.reply, `${HOST_MESSAGE.toUpperCase()} [GUEST]`, diag);
    assert.ok(r.stdout.includes(`vsock-tool: served "${HOST_MESSAGE.toUpperCase()}"`), diag);
    assert.equal(stepResult(r.stdout, 'vsock-host-to-guest'), 'ok', diag);
  });

  await t.test('vsock: guest → host CID 2 reaches the listener at <uds>_<port>', (st: TestContext) => {
    if (vsockSkip) return st.skip(vsockSkip);
    assert.equal(toHost.received, GUEST_MESSAGE, ctx);
    assert.ok(r.stdout.includes(`vsock-tool: reply: ${HOST_REPLY_PREFIX}${GUEST_MESSAGE}`), ctx);
    assert.equal(stepResult(r.stdout, 'vsock-guest-to-host'), 'ok', ctx);
  });

  await t.test('net: eth0 has the configured MAC and the guest pings the host over the tap', (st: TestContext) => {
    if (netSkip) return st.skip(netSkip);
    assert.equal(consoleValue(r.stdout, 'tv-mac '), GUEST_MAC, ctx);
    assert.match(r.stdout, /3 packets transmitted, 3 packets received/, ctx);
    assert.equal(stepResult(r.stdout, 'ping'), 'ok', ctx);
  });

  await t.test('the script exits 0, the guest powers off and the VMM exits 0', () => {
    assert.equal(guestExitStatus(r.stdout), 0, ctx);
    assert.match(r.stderr, /guest powered off/, ctx);
    assert.doesNotMatch(r.stderr, /needs reset|engine error|internal error/, ctx);
    assert.equal(r.status, 0, ctx);
  });
});
