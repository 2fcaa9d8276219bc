/**
 * Every endpoint before boot, and every class of bad input: each refused
 * with 400 and a message naming the problem, and the server still answers
 * the next request.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { faultOf, startHarness, type Harness } from './client.js';

async function withHarness(fn: (h: Harness) => Promise<void>, maxPayloadBytes?: number): Promise<void> {
  const h = await startHarness({}, maxPayloadBytes);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

/** Sends a bad request, checks the 400 and its message, then checks the server still serves. */
async function refused(h: Harness, method: string, path: string, body: string | Uint8Array | object | undefined, message: RegExp): Promise<void> {
  const r = await h.call(method, path, body);
  assert.equal(r.status, 400, `${method} ${path} ${JSON.stringify(body)} → ${r.status} ${r.text}`);
  assert.match(faultOf(r), message, `${method} ${path} ${JSON.stringify(body)}`);
  assert.equal(r.headers['content-type'], 'application/json');
  const after = await h.call('GET', '/');
  assert.equal(after.status, 200, 'the server answers after a refusal');
}

function files(h: Harness) {
  const kernel = join(h.dir, 'vmlinux');
  writeFileSync(kernel, 'kernel bytes');
  const initrd = join(h.dir, 'initrd');
  writeFileSync(initrd, 'initrd bytes');
  const disk = join(h.dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(4096));
  return { kernel, initrd, disk };
}

test('api: GET /, /version and /machine-config answer with Firecracker\'s defaults before configuration', () =>
  withHarness(async (h) => {
    const info = await h.call('GET', '/');
    assert.equal(info.status, 200);
    assert.deepEqual(info.body, { id: 'anonymous-instance', state: 'Not started', vmm_version: info.body && (info.body as { vmm_version: string }).vmm_version, app_name: 'typevisor' });
    const v = await h.call('GET', '/version');
    assert.match((v.body as { firecracker_version: string }).firecracker_version, /^\d+\.\d+\.\d+/);
    const m = await h.call('GET', '/machine-config');
    assert.deepEqual(m.body, { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: 'None', engine: 'auto' });
    // A query string is ignored, as Firecracker ignores it.
    assert.equal((await h.call('GET', '/machine-config?x=1')).status, 200);
  }));

test('api: PUT and PATCH /machine-config: PUT resets what it leaves out, PATCH changes only what it names', () =>
  withHarness(async (h) => {
    assert.equal((await h.call('PUT', '/machine-config', { vcpu_count: 4, mem_size_mib: 512, track_dirty_pages: true, engine: 'kvm' })).status, 204);
    assert.deepEqual((await h.call('GET', '/machine-config')).body, { vcpu_count: 4, mem_size_mib: 512, smt: false, track_dirty_pages: true, huge_pages: 'None', engine: 'kvm' });
    assert.equal((await h.call('PATCH', '/machine-config', { vcpu_count: 2 })).status, 204);
    assert.deepEqual((await h.call('GET', '/machine-config')).body, { vcpu_count: 2, mem_size_mib: 512, smt: false, track_dirty_pages: true, huge_pages: 'None', engine: 'kvm' });
    assert.equal((await h.call('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 256 })).status, 204);
    assert.deepEqual((await h.call('GET', '/machine-config')).body, { vcpu_count: 1, mem_size_mib: 256, smt: false, track_dirty_pages: false, huge_pages: 'None', engine: 'auto' });
    assert.equal((await h.call('PATCH', '/machine-config', { huge_pages: 'Transparent', cpu_template: 'None', smt: false })).status, 204);
  }));

test('api: --engine sets the engine a machine-config without one gets', async () => {
  const h = await startHarness({ defaultEngine: 'kvm' });
  try {
    assert.equal((await h.call('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 64 })).status, 204);
    assert.equal((await h.call('GET', '/machine-config')).body && ((await h.call('GET', '/machine-config')).body as { engine: string }).engine, 'kvm');
  } finally {
    await h.close();
  }
});

test('api: machine-config values out of range or unsupported are refused by name, and nothing changes', () =>
  withHarness(async (h) => {
    const cases: [string, object, RegExp][] = [
      ['PUT', { vcpu_count: 0, mem_size_mib: 128 }, /vcpu_count: must be at least 1, got 0/],
      ['PUT', { vcpu_count: 256, mem_size_mib: 128 }, /vcpu_count: must be at most 255, got 256/],
      ['PUT', { vcpu_count: 1.5, mem_size_mib: 128 }, /vcpu_count: expected an integer, got number 1.5/],
      ['PUT', { vcpu_count: 1, mem_size_mib: 8 }, /mem_size_mib: must be at least 16, got 8/],
      ['PUT', { vcpu_count: 1, mem_size_mib: 1e9 }, /memory .* is more than this host has/],
      ['PUT', { vcpu_count: 1, mem_size_mib: 1e12 }, /mem_size_mib: must be at most 8589934591, got 1000000000000/],
      ['PUT', { vcpu_count: 1, mem_size_mib: 2 ** 60 }, /mem_size_mib: must be at most 8589934591/],
      ['PUT', { vcpu_count: 1 }, /missing required field "mem_size_mib"/],
      ['PUT', { vcpu_count: 2, mem_size_mib: 128, smt: true }, /smt: simultaneous multithreading is not supported/],
      ['PUT', { vcpu_count: 2, mem_size_mib: 128, huge_pages: '2M' }, /huge_pages: hugetlbfs/],
      ['PUT', { vcpu_count: 2, mem_size_mib: 127, huge_pages: 'Transparent' }, /multiple of 2 with transparent huge pages/],
      ['PUT', { vcpu_count: 2, mem_size_mib: 128, huge_pages: '1G' }, /huge_pages: expected one of None, Transparent, 2M, got string "1G"/],
      ['PUT', { vcpu_count: 2, mem_size_mib: 128, cpu_template: 'T2' }, /cpu_template: CPU templates \(T2\) are not supported/],
      ['PUT', { vcpu_count: 2, mem_size_mib: 128, engine: 'qemu' }, /engine: expected one of auto, kvm, soft/],
      ['PUT', { vcpu_count: true, mem_size_mib: 128 }, /vcpu_count: expected an integer, got boolean true/],
      ['PUT', { vcpu_count: null, mem_size_mib: 128 }, /vcpu_count: is required and cannot be null/],
      ['PATCH', {}, /PATCH \/machine-config with no fields changes nothing/],
      ['PATCH', { smt: 'no' }, /smt: expected true or false, got string "no"/],
      ['PATCH', { vcpus: 2 }, /unknown field "vcpus" \(PartialMachineConfiguration has vcpu_count, mem_size_mib/],
    ];
    for (const [method, body, msg] of cases) await refused(h, method, '/machine-config', body, msg);
    assert.deepEqual((await h.call('GET', '/machine-config')).body, { vcpu_count: 1, mem_size_mib: 128, smt: false, track_dirty_pages: false, huge_pages: 'None', engine: 'auto' });
  }));

test('api: malformed bodies: not JSON, not an object, empty, not UTF-8, a body on a GET', () =>
  withHarness(async (h) => {
    await refused(h, 'PUT', '/machine-config', '{"vcpu_count": 2', /malformed JSON in the request body/);
    await refused(h, 'PUT', '/machine-config', 'vcpu_count=2', /malformed JSON in the request body/);
    await refused(h, 'PUT', '/machine-config', '[1, 2]', /expected a JSON object \(MachineConfiguration\), got an array/);
    await refused(h, 'PUT', '/machine-config', '"text"', /expected a JSON object \(MachineConfiguration\), got string "text"/);
    await refused(h, 'PUT', '/machine-config', 'null', /expected a JSON object \(MachineConfiguration\), got null/);
    await refused(h, 'PUT', '/boot-source', undefined, /PUT \/boot-source needs a JSON body \(BootSource\)/);
    await refused(h, 'PATCH', '/vm', '   ', /PATCH \/vm needs a JSON body \(Vm\)/);
    await refused(h, 'GET', '/machine-config', '{}', /GET \/machine-config takes no request body/);
    await refused(h, 'PUT', '/logger', Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d), /the request body is not valid UTF-8/);
  }));

test('api: unknown paths and methods are 400 naming the method and path, as in Firecracker', () =>
  withHarness(async (h) => {
    await refused(h, 'GET', '/nowhere', undefined, /invalid request method and\/or path: GET \/nowhere/);
    await refused(h, 'GET', '/machine-config/extra', undefined, /invalid request method and\/or path/);
    await refused(h, 'DELETE', '/drives/root', undefined, /DELETE \/drives\/root \(this path takes PUT, PATCH\)/);
    await refused(h, 'POST', '/actions', { action_type: 'InstanceStart' }, /POST \/actions \(this path takes PUT\)/);
    await refused(h, 'GET', '/actions', undefined, /GET \/actions \(this path takes PUT\)/);
    await refused(h, 'PUT', '/', {}, /PUT \/ \(this path takes GET\)/);
    await refused(h, 'PUT', '/drives', {}, /the drive_id is missing from the path/);
    await refused(h, 'PUT', '/network-interfaces/', {}, /the iface_id is missing from the path/);
    await refused(h, 'PUT', '/drives/bad%2Fid', { drive_id: 'bad/id', is_root_device: false }, /drive_id "bad\/id" in the path is not valid/);
    await refused(h, 'PUT', '/drives/%E0%A4%A', {}, /not validly percent-encoded/);
  }));

test('api: bodies over the limit are refused with 400, the connection closed, and the server serves the next one', () =>
  withHarness(async (h) => {
    const big = JSON.stringify({ log_path: 'x'.repeat(60_000) });
    const r = await h.call('PUT', '/logger', big);
    assert.equal(r.status, 400);
    assert.match(faultOf(r), /request body of 60015 bytes is larger than the limit of 51200 bytes/);
    assert.equal(r.headers.connection, 'close');
    // Chunked, with no Content-Length up front.
    const chunked = await h.call('PUT', '/logger', big, { 'Transfer-Encoding': 'chunked' });
    assert.equal(chunked.status, 400);
    assert.match(faultOf(chunked), /larger than the limit of 51200 bytes/);
    // Just under the limit is parsed (and refused for its content, not its size).
    const under = JSON.stringify({ module: 'm'.repeat(51_200 - 13) });
    assert.equal(Buffer.byteLength(under), 51_200);
    assert.equal((await h.call('PUT', '/logger', under)).status, 204);
    assert.equal((await h.call('GET', '/')).status, 200);
  }));

test('api: the body limit is settable (--http-api-max-payload-size)', () =>
  withHarness(async (h) => {
    const r = await h.call('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 128, track_dirty_pages: false, smt: false });
    assert.equal(r.status, 400);
    assert.match(faultOf(r), /larger than the limit of 40 bytes/);
    assert.equal((await h.call('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 64 })).status, 204);
  }, 40));

test('api: malformed HTTP gets a 400 with a fault message', () =>
  withHarness(async (h) => {
    const reply = await new Promise<string>((resolve, reject) => {
      const s = net.connect(h.socket);
      let got = '';
      s.on('data', (c) => (got += c.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
      s.write('THIS IS NOT HTTP\r\n\r\n');
    });
    assert.match(reply, /^HTTP\/1\.1 400 Bad Request/);
    assert.match(reply, /"fault_message":"malformed HTTP request/);
    assert.equal((await h.call('GET', '/')).status, 200);
  }));

test('api: PUT /boot-source checks the files when it is made', () =>
  withHarness(async (h) => {
    const f = files(h);
    await refused(h, 'PUT', '/boot-source', { kernel_image_path: join(h.dir, 'nope') }, /kernel_image_path .*nope does not exist/);
    await refused(h, 'PUT', '/boot-source', { kernel_image_path: h.dir }, /kernel_image_path .* is not a regular file/);
    await refused(h, 'PUT', '/boot-source', { kernel_image_path: f.kernel, initrd_path: join(h.dir, 'gone') }, /initrd_path .*gone does not exist/);
    await refused(h, 'PUT', '/boot-source', { kernel_image_path: '' }, /kernel_image_path: must not be empty/);
    await refused(h, 'PUT', '/boot-source', { kernel_image_path: 42 }, /kernel_image_path: expected a string, got integer 42/);
    await refused(h, 'PUT', '/boot-source', { kernel_image_path: f.kernel, bootargs: 'x' }, /unknown field "bootargs" \(BootSource has kernel_image_path, initrd_path, boot_args\)/);
    assert.equal((await h.call('PUT', '/boot-source', { kernel_image_path: f.kernel, initrd_path: f.initrd, boot_args: 'console=ttyS0' })).status, 204);
    assert.deepEqual((await h.call('GET', '/vm/config')).body && ((await h.call('GET', '/vm/config')).body as Record<string, unknown>)['boot-source'], { kernel_image_path: f.kernel, initrd_path: f.initrd, boot_args: 'console=ttyS0' });
  }));

test('api: drives: added, replaced, root first, one root, checked paths, vhost-user refused', () =>
  withHarness(async (h) => {
    const f = files(h);
    const disk2 = join(h.dir, 'disk2.img');
    writeFileSync(disk2, Buffer.alloc(512));
    assert.equal((await h.call('PUT', '/drives/data', { drive_id: 'data', path_on_host: disk2, is_root_device: false, is_read_only: true })).status, 204);
    assert.equal((await h.call('PUT', '/drives/root', { drive_id: 'root', path_on_host: f.disk, is_root_device: true, partuuid: '0eaa91a0-01', cache_type: 'Writeback', rate_limiter: { bandwidth: { size: 1000, refill_time: 100, one_time_burst: 5 } } })).status, 204);
    const cfg = (await h.call('GET', '/vm/config')).body as { drives: { drive_id: string; is_read_only: boolean; io_engine: string }[] };
    assert.deepEqual(cfg.drives.map((d) => d.drive_id), ['root', 'data'], 'the root drive comes first');
    assert.equal(cfg.drives[0]!.is_read_only, false);
    assert.equal(cfg.drives[0]!.io_engine, 'Sync');
    await refused(h, 'PUT', '/drives/other', { drive_id: 'other', path_on_host: f.disk, is_root_device: true }, /drive other cannot be the root device: drive root already is/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'y', path_on_host: f.disk, is_root_device: false }, /the drive_id in the path \(x\) does not match the one in the body \(y\)/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: join(h.dir, 'none.img'), is_root_device: false }, /drive x: path_on_host .*none.img does not exist/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'x', is_root_device: false }, /drive x: path_on_host is required/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'x', socket: '/run/vhost.sock', is_root_device: false }, /vhost-user-block drives \("socket"\) are not supported/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: f.disk }, /missing required field "is_root_device"/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: f.disk, is_root_device: false, cache_type: 'None' }, /cache_type: expected one of Unsafe, Writeback/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: f.disk, is_root_device: false, rate_limiter: { bandwidth: { size: 1 } } }, /rate_limiter.bandwidth: missing required field "refill_time"/);
    await refused(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: f.disk, is_root_device: false, rate_limiter: { bandwidth: { size: 1, refill_time: 1, rate: 3 } } }, /rate_limiter.bandwidth: unknown field "rate"/);
    if (process.getuid?.() !== 0) {
      chmodSync(f.disk, 0o444);
      await refused(h, 'PUT', '/drives/x', { drive_id: 'x', path_on_host: f.disk, is_root_device: false }, /not readable and writable/);
    }
    // Replacing the root drive with a non-root one frees the root slot.
    assert.equal((await h.call('PUT', '/drives/root', { drive_id: 'root', path_on_host: f.disk, is_root_device: false, is_read_only: true })).status, 204);
    assert.equal((await h.call('PUT', '/drives/other', { drive_id: 'other', path_on_host: disk2, is_root_device: true, is_read_only: true })).status, 204);
    await refused(h, 'PATCH', '/drives/root', { drive_id: 'root', path_on_host: f.disk }, /PATCH \/drives is not supported before starting the microVM/);
  }));

test('api: network interfaces: unique unicast MACs and host devices, names within IFNAMSIZ', () =>
  withHarness(async (h) => {
    assert.equal((await h.call('PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:AC:10:00:02', mtu: 1500 })).status, 204);
    assert.equal((await h.call('PUT', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:AC:10:00:02' })).status, 204, 'replacing keeps its own MAC');
    await refused(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap1', guest_mac: '06:00:ac:10:00:02' }, /guest_mac 06:00:ac:10:00:02 is already used by network interface eth0/);
    await refused(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap0' }, /host_dev_name tap0 is already used by network interface eth0/);
    await refused(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap1', guest_mac: '07:00:00:00:00:01' }, /multicast/);
    await refused(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap1', guest_mac: '06:00:00:00:01' }, /guest_mac: string "06:00:00:00:01" is not a MAC address/);
    await refused(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'a-very-long-tap-name' }, /host_dev_name: must be at most 15 characters long, got 20/);
    await refused(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap1', mtu: 67 }, /mtu: must be at least 68, got 67/);
    await refused(h, 'PUT', '/network-interfaces/eth1', { iface_id: 'eth2', host_dev_name: 'tap1' }, /the iface_id in the path \(eth1\) does not match the one in the body \(eth2\)/);
    await refused(h, 'PATCH', '/network-interfaces/eth0', { iface_id: 'eth0' }, /PATCH \/network-interfaces is not supported before starting/);
    const cfg = (await h.call('GET', '/vm/config')).body as { 'network-interfaces': unknown[] };
    assert.deepEqual(cfg['network-interfaces'], [{ iface_id: 'eth0', host_dev_name: 'tap0', guest_mac: '06:00:AC:10:00:02' }]);
  }));

test('api: vsock, entropy and serial are checked and kept', () =>
  withHarness(async (h) => {
    assert.equal((await h.call('PUT', '/vsock', { guest_cid: 3, uds_path: join(h.dir, 'v.sock'), vsock_id: 'old' })).status, 204);
    await refused(h, 'PUT', '/vsock', { guest_cid: 2, uds_path: join(h.dir, 'v.sock') }, /guest_cid: must be at least 3, got 2/);
    await refused(h, 'PUT', '/vsock', { guest_cid: 2 ** 32, uds_path: join(h.dir, 'v.sock') }, /guest_cid: must be at most 4294967295/);
    await refused(h, 'PUT', '/vsock', { guest_cid: 3, uds_path: join(h.dir, 'missing', 'v.sock') }, /uds_path .*: directory .*missing does not exist/);
    assert.equal((await h.call('PUT', '/entropy', { rate_limiter: { ops: { size: 10, refill_time: 1000 } } })).status, 204);
    await refused(h, 'PUT', '/entropy', { rate_limiter: { ops: { size: -1, refill_time: 1 } } }, /rate_limiter.ops.size: must be at least 0, got -1/);
    assert.equal((await h.call('PUT', '/serial', { serial_out_path: join(h.dir, 'serial.log') })).status, 204);
    await refused(h, 'PUT', '/serial', { serial_out_path: h.dir }, /serial_out_path .* is a directory/);
    await refused(h, 'PUT', '/serial', { serial_out_path: join(h.dir, 'no', 'x.log') }, /directory .*no does not exist/);
    const cfg = (await h.call('GET', '/vm/config')).body as Record<string, unknown>;
    assert.deepEqual(cfg.vsock, { guest_cid: 3, uds_path: join(h.dir, 'v.sock') }, 'the deprecated vsock_id is dropped');
    assert.deepEqual(cfg.entropy, { rate_limiter: { ops: { size: 10, refill_time: 1000 } } });
  }));

test('api: the logger writes Firecracker-style lines to its file, with level and origin when asked', () =>
  withHarness(async (h) => {
    const logPath = join(h.dir, 'vmm.log');
    await refused(h, 'PUT', '/logger', { log_path: join(h.dir, 'no', 'vmm.log') }, /log_path .* cannot be opened for writing: its directory does not exist/);
    await refused(h, 'PUT', '/logger', { level: 'Loud' }, /level: expected one of Error, Warning, Warn, Info, Debug, Trace, Off, got string "Loud"/);
    assert.equal((await h.call('PUT', '/logger', { log_path: logPath, level: 'info', show_level: true, show_log_origin: true })).status, 204);
    await h.call('GET', '/nowhere');
    const log = readFileSync(logPath, 'utf8');
    assert.match(log, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} \[anonymous-instance:main:INFO:api\] GET \/nowhere$/m);
    assert.match(log, /\[anonymous-instance:main:ERROR:api\] GET \/nowhere: 400: invalid request method and\/or path/);
    assert.equal((await h.call('PUT', '/logger', { level: 'Off' })).status, 204);
    const before = readFileSync(logPath, 'utf8');
    await h.call('GET', '/nowhere');
    assert.equal(readFileSync(logPath, 'utf8'), before, 'level Off writes nothing');
    assert.deepEqual(((await h.call('GET', '/vm/config')).body as { logger: unknown }).logger, { log_path: logPath, level: 'Off', show_level: true, show_log_origin: true });
    // Lines before PUT /logger went to the fallback (stderr in the CLI).
    assert.match(h.log(), /PUT \/logger with body/);
  }));

test('api: metrics are configured once; FlushMetrics is a post-boot action', () =>
  withHarness(async (h) => {
    const path = join(h.dir, 'metrics.json');
    assert.equal((await h.call('PUT', '/metrics', { metrics_path: path, emit_id: true, properties: { team: 'vmm' } })).status, 204);
    await refused(h, 'PUT', '/metrics', { metrics_path: path }, /metrics are already being written to .*metrics.json; they can be configured once/);
    await refused(h, 'PUT', '/metrics', { metrics_path: path, properties: { n: 1 } }, /properties.n: expected a string, got integer 1/);
    await refused(h, 'PUT', '/actions', { action_type: 'FlushMetrics' }, /FlushMetrics is not supported before starting the microVM/);
    assert.ok(h.controller.metrics.flush());
    const line = JSON.parse(readFileSync(path, 'utf8').trim().split('\n').at(-1)!) as Record<string, Record<string, number>>;
    assert.equal(typeof line.utc_timestamp_ms, 'number');
    assert.equal(line.id as unknown, 'anonymous-instance');
    assert.deepEqual(line.properties, { team: 'vmm' });
    assert.ok(line.put_api_requests!.metrics_count! >= 1 && line.put_api_requests!.actions_fails === 1, JSON.stringify(line));
    assert.ok(line.get_api_requests!.instance_info_count! >= 1);
    // Counters restart after each line, as Firecracker's do.
    h.controller.metrics.flush();
    const next = JSON.parse(readFileSync(path, 'utf8').trim().split('\n').at(-1)!) as Record<string, unknown>;
    assert.equal(next.put_api_requests, undefined);
  }));

test('api: actions and runtime operations in the wrong phase are refused before boot', () =>
  withHarness(async (h) => {
    await refused(h, 'PUT', '/actions', { action_type: 'InstanceStart' }, /cannot start the microVM without a boot source: PUT \/boot-source first/);
    await refused(h, 'PUT', '/actions', { action_type: 'SendCtrlAltDel' }, /SendCtrlAltDel is not supported before starting the microVM/);
    await refused(h, 'PUT', '/actions', { action_type: 'Reboot' }, /action_type: expected one of FlushMetrics, InstanceStart, SendCtrlAltDel, got string "Reboot"/);
    await refused(h, 'PUT', '/actions', {}, /missing required field "action_type"/);
    await refused(h, 'PATCH', '/vm', { state: 'Paused' }, /PATCH \/vm Paused is not supported before starting the microVM/);
    await refused(h, 'PATCH', '/vm', { state: 'Stopped' }, /state: expected one of Paused, Resumed/);
    assert.equal(((await h.call('GET', '/')).body as { state: string }).state, 'Not started');
  }));

test('api: a kernel that is not a kernel fails InstanceStart with 400, and the VM can still be configured', () =>
  withHarness(async (h) => {
    const f = files(h);
    assert.equal((await h.call('PUT', '/boot-source', { kernel_image_path: f.kernel })).status, 204);
    assert.equal((await h.call('PUT', '/machine-config', { vcpu_count: 1, mem_size_mib: 64, engine: 'kvm' })).status, 204);
    const r = await h.call('PUT', '/actions', { action_type: 'InstanceStart' });
    assert.equal(r.status, 400, r.text);
    assert.notEqual(faultOf(r), '');
    assert.equal(((await h.call('GET', '/')).body as { state: string }).state, 'Not started');
    assert.equal((await h.call('PATCH', '/machine-config', { mem_size_mib: 128 })).status, 204);
  }));

test('api: requests are handled one at a time, in order', () =>
  withHarness(async (h) => {
    const sizes = Array.from({ length: 20 }, (_, i) => 64 + i);
    const replies = await Promise.all(sizes.map((m) => h.call('PATCH', '/machine-config', { mem_size_mib: m })));
    assert.ok(replies.every((r) => r.status === 204));
    assert.equal(((await h.call('GET', '/machine-config')).body as { mem_size_mib: number }).mem_size_mib, 83);
  }));

test('api: a config directory made unreadable does not take the server down', () =>
  withHarness(async (h) => {
    const sub = join(h.dir, 'sub');
    mkdirSync(sub);
    writeFileSync(join(sub, 'k'), 'x');
    await refused(h, 'PUT', '/boot-source', { kernel_image_path: join(sub, 'k', 'deeper') }, /does not exist/);
  }));
