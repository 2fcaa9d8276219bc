/**
 * A Firecracker-style boot over the socket: machine-config, boot-source,
 * drives, InstanceStart; the test guest reports on its serial console; then
 * pause, resume, the runtime rules, and stop. Every response is also checked
 * against docs/api/openapi.yaml.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { buildGuests, guestToolchainMissing } from '../guest/build-guests.js';
import { kvmMissing } from '../guest/run-guest.js';
import { faultOf, startHarness, type Harness, type Reply } from './client.js';
import { Contract } from './contract.js';

const contract = new Contract();

function unavailable(): string | undefined {
  return guestToolchainMissing() ?? kvmMissing();
}

async function until(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A call whose response must match the contract (`template` names the documented path). */
async function call(h: Harness, method: string, template: string, path: string, body?: object): Promise<Reply> {
  const r = await h.call(method, path, body);
  assert.deepEqual(contract.checkResponse(method, template, r.status, r.body), [], `${method} ${path} → ${r.status} ${r.text}`);
  return r;
}

async function expectStatus(h: Harness, method: string, template: string, path: string, body: object | undefined, status: number, msg?: RegExp): Promise<void> {
  const r = await call(h, method, template, path, body);
  assert.equal(r.status, status, `${method} ${path}: ${r.text}`);
  if (msg) assert.match(faultOf(r), msg);
}

/** A TAP for the NIC when root can make one (deleted after the test), else undefined. */
function makeTap(t: TestContext, name: string): string | undefined {
  if (process.getuid?.() !== 0 || spawnSync('ip', ['tuntap', 'add', 'dev', name, 'mode', 'tap']).status !== 0) {
    t.diagnostic('no TAP device (needs root and iproute2): the NIC part of this test is left out');
    return undefined;
  }
  t.after(() => void spawnSync('ip', ['link', 'del', name]));
  return name;
}

async function bootGuest(t: TestContext, h: Harness, cmdline: string, tap?: string): Promise<boolean> {
  const why = unavailable();
  if (why) {
    t.skip(why);
    return false;
  }
  if (tap) await expectStatus(h, 'PUT', '/network-interfaces/{iface_id}', '/network-interfaces/eth0', { iface_id: 'eth0', host_dev_name: tap }, 204);
  const guest = buildGuests().testGuest;
  const disk = join(h.dir, 'rootfs.img');
  writeFileSync(disk, Buffer.alloc(64 * 1024));
  await expectStatus(h, 'PUT', '/machine-config', '/machine-config', { vcpu_count: 2, mem_size_mib: 128, smt: false, engine: 'kvm' }, 204);
  await expectStatus(h, 'PUT', '/boot-source', '/boot-source', { kernel_image_path: guest, boot_args: cmdline }, 204);
  await expectStatus(h, 'PUT', '/drives/{drive_id}', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: disk, is_root_device: true, is_read_only: false }, 204);
  const started = performance.now();
  await expectStatus(h, 'PUT', '/actions', '/actions', { action_type: 'InstanceStart' }, 204);
  t.diagnostic(`InstanceStart answered in ${(performance.now() - started).toFixed(0)} ms`);
  return true;
}

test('api boot on kvm: configure over the socket, start, read the serial console, pause, resume, runtime rules, stop', async (t) => {
  const h = await startHarness({ metricsPeriodMs: 50 });
  try {
    const metricsPath = join(h.dir, 'metrics.json');
    await expectStatus(h, 'PUT', '/metrics', '/metrics', { metrics_path: metricsPath }, 204);
    const tap = makeTap(t, 'tvapi0');
    if (!(await bootGuest(t, h, 'console=ttyS0 tg.test=boot tg.exit=halt', tap))) return;
    await until('the guest to halt', () => /^TG halt [^\n]*\n/m.test(h.serial()));
    assert.match(h.serial(), /typevisor test guest 1/);
    assert.match(h.serial(), /TG halt reason=requested/);
    // The root drive is attached (virtio-blk, /dev/vda) and named on the command line, as Firecracker does.
    assert.match(h.serial(), /TG cmdline .*text=console=ttyS0\\x20tg\.test=boot\\x20tg\.exit=halt\\x20root=\/dev\/vda\\x20rw/);

    const info = (await call(h, 'GET', '/', '/')).body as { state: string };
    assert.equal(info.state, 'Running');

    await expectStatus(h, 'PATCH', '/vm', '/vm', { state: 'Paused' }, 204);
    assert.equal(((await call(h, 'GET', '/', '/')).body as { state: string }).state, 'Paused');
    await expectStatus(h, 'PATCH', '/vm', '/vm', { state: 'Paused' }, 204);
    await expectStatus(h, 'PATCH', '/vm', '/vm', { state: 'Resumed' }, 204);
    assert.equal(((await call(h, 'GET', '/', '/')).body as { state: string }).state, 'Running');

    // What may not change after InstanceStart.
    await expectStatus(h, 'PUT', '/actions', '/actions', { action_type: 'InstanceStart' }, 400, /InstanceStart is not supported after starting the microVM/);
    await expectStatus(h, 'PUT', '/boot-source', '/boot-source', { kernel_image_path: buildGuests().testGuest }, 400, /PUT \/boot-source is not supported after starting/);
    await expectStatus(h, 'PUT', '/machine-config', '/machine-config', { vcpu_count: 1, mem_size_mib: 128 }, 400, /not supported after starting/);
    await expectStatus(h, 'PATCH', '/machine-config', '/machine-config', { vcpu_count: 1 }, 400, /not supported after starting/);
    await expectStatus(h, 'PUT', '/drives/{drive_id}', '/drives/data', { drive_id: 'data', path_on_host: join(h.dir, 'rootfs.img'), is_root_device: false }, 400, /PUT \/drives .* not supported after starting/);
    await expectStatus(h, 'PUT', '/network-interfaces/{iface_id}', '/network-interfaces/eth1', { iface_id: 'eth1', host_dev_name: 'tap1' }, 400, /not supported after starting/);
    for (const [path, body] of [['/vsock', { guest_cid: 3, uds_path: join(h.dir, 'v.sock') }], ['/entropy', {}], ['/serial', {}], ['/logger', {}], ['/metrics', { metrics_path: metricsPath }]] as const) {
      await expectStatus(h, 'PUT', path, path, body, 400, /not supported after starting the microVM/);
    }
    // What may.
    const disk2 = join(h.dir, 'rootfs2.img');
    writeFileSync(disk2, Buffer.alloc(4096));
    await expectStatus(h, 'PATCH', '/drives/{drive_id}', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: disk2 }, 204);
    await expectStatus(h, 'PATCH', '/drives/{drive_id}', '/drives/rootfs', { drive_id: 'rootfs', path_on_host: join(h.dir, 'gone.img') }, 400, /does not exist/);
    await expectStatus(h, 'PATCH', '/drives/{drive_id}', '/drives/nosuch', { drive_id: 'nosuch' }, 400, /no drive with ID nosuch/);
    if (tap) await expectStatus(h, 'PATCH', '/network-interfaces/{iface_id}', '/network-interfaces/eth0', { iface_id: 'eth0', tx_rate_limiter: { ops: { size: 100, refill_time: 1000 } } }, 204);
    await expectStatus(h, 'PATCH', '/network-interfaces/{iface_id}', '/network-interfaces/eth9', { iface_id: 'eth9' }, 400, /no network interface with ID eth9/);
    await expectStatus(h, 'PUT', '/actions', '/actions', { action_type: 'FlushMetrics' }, 204);
    await expectStatus(h, 'PUT', '/actions', '/actions', { action_type: 'SendCtrlAltDel' }, 204);
    const cfg = (await call(h, 'GET', '/vm/config', '/vm/config')).body as { drives: { path_on_host: string }[]; 'network-interfaces': { tx_rate_limiter?: unknown }[] };
    assert.equal(cfg.drives[0]!.path_on_host, disk2);
    if (tap) assert.deepEqual(cfg['network-interfaces'][0]!.tx_rate_limiter, { ops: { size: 100, refill_time: 1000 } });

    const lines = readFileSync(metricsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, Record<string, number>>);
    const withVm = lines.filter((l) => l.vm);
    assert.ok(withVm.length >= 1, 'metrics lines carry the machine\'s figures once it runs');
    assert.ok(withVm.at(-1)!.vm!.pioExits! > 0, JSON.stringify(withVm.at(-1)));
    assert.ok(withVm.at(-1)!.uart!.write_count! > 100, 'serial bytes counted');
    t.diagnostic(`metrics: ${lines.length} lines; last vm group ${JSON.stringify(withVm.at(-1)!.vm)}`);

    const report = await h.controller.close();
    assert.equal(report?.stop.reason, 'host-stop');
    assert.equal(((await call(h, 'GET', '/', '/')).body as { state: string }).state, 'Stopped');
    await expectStatus(h, 'PATCH', '/vm', '/vm', { state: 'Resumed' }, 400, /the microVM has stopped/);
  } finally {
    await h.close();
  }
});

test('api boot on kvm: PUT /serial sends the console to a file; a guest power-off ends the VM', async (t) => {
  const h = await startHarness();
  try {
    const serialPath = join(h.dir, 'serial.log');
    await expectStatus(h, 'PUT', '/serial', '/serial', { serial_out_path: serialPath }, 204);
    const exited = new Promise<string>((resolve) => h.controller.vmm.once('exit', (r) => resolve(r.message)));
    if (!(await bootGuest(t, h, 'console=ttyS0 tg.test=boot tg.exit=poweroff'))) return;
    assert.equal(await exited, 'guest powered off');
    await until('the serial file', () => /TG exit how=poweroff/.test(readFileSync(serialPath, 'latin1')));
    assert.match(readFileSync(serialPath, 'latin1'), /typevisor test guest 1/);
    assert.equal(h.serial(), '', 'nothing on stdout when a serial file is set');
    assert.equal(((await call(h, 'GET', '/', '/')).body as { state: string }).state, 'Stopped');
    await expectStatus(h, 'PUT', '/actions', '/actions', { action_type: 'SendCtrlAltDel' }, 400, /the microVM has stopped \(guest powered off\)/);
  } finally {
    await h.close();
  }
});

test('api boot on kvm: PUT /entropy attaches a virtio-rng device the guest finds in its DSDT', async (t) => {
  const h = await startHarness();
  try {
    await expectStatus(h, 'PUT', '/entropy', '/entropy', { rate_limiter: { bandwidth: { size: 65536, refill_time: 100 } } }, 204);
    const exited = new Promise<string>((resolve) => h.controller.vmm.once('exit', (r) => resolve(r.message)));
    if (!(await bootGuest(t, h, 'console=ttyS0 tg.test=acpi tg.exit=poweroff'))) return;
    assert.equal(await exited, 'guest powered off');
    assert.match(h.serial(), /TG acpi-dsdt .*lnro0005=2/, 'the root drive and the entropy device');
    assert.deepEqual(h.controller.vmm.config().devices?.entropy, { rateBytesPerSec: 655360 });
  } finally {
    await h.close();
  }
});
