/**
 * The `typevisor api` command: its socket handling, its options, and
 * `--config-file` (with and without the API), run as a separate process.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiController, applyVmConfig, claimSocketPath, ConfigFileError, SocketError } from '../../src/api/index.js';
import { apiCommand } from '../../src/cli/api.js';
import { buildGuests, guestToolchainMissing } from '../guest/build-guests.js';
import { kvmMissing } from '../guest/run-guest.js';
import { request } from './client.js';

const MAIN = fileURLToPath(new URL('./api-main.js', import.meta.url));

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'typevisor-api-cli-'));
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { untilStderr?: RegExp; then?: (child: ReturnType<typeof spawn>) => Promise<void>; timeoutMs?: number } = {}): Promise<Run> {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let fired = false;
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString('latin1')));
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (!fired && opts.untilStderr?.test(stderr) && opts.then) {
      fired = true;
      opts.then(child).catch((e: unknown) => {
        stderr += `\n[test] ${String(e)}`;
        child.kill('SIGKILL');
      });
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  return new Promise((resolve) => {
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

test('api cli: a stale socket file is replaced; a live one, or a file that is not a socket, is refused', async () => {
  const dir = tmp();
  try {
    const path = join(dir, 'api.sock');
    // A process that listened and was killed leaves its socket file behind.
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    await assert.rejects(claimSocketPath(path), (e: unknown) => e instanceof SocketError && /is in use: another process serves on it/.test(e.message));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('close', r));
    assert.ok(existsSync(path), 'the stale socket file is still there');
    await claimSocketPath(path);
    assert.ok(!existsSync(path), 'stale socket removed');

    const file = join(dir, 'plain');
    writeFileSync(file, 'data');
    await assert.rejects(claimSocketPath(file), /exists and is not a socket; refusing to replace it/);
    assert.ok(existsSync(file), 'a regular file is never removed');
    await assert.rejects(claimSocketPath(join(dir, 'x'.repeat(120))), /Unix socket paths hold at most 107/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('api cli: bad options are refused with a message naming them', async () => {
  const err: string[] = [];
  const stderr = { write: (s: string) => err.push(s) } as unknown as NodeJS.WritableStream;
  await assert.rejects(apiCommand({ 'no-api': true }, stderr), /--no-api needs --config-file/);
  await assert.rejects(apiCommand({ id: 'has space' }, stderr), /--id "has space" must be 1 to 64 letters, digits or '-'/);
  await assert.rejects(apiCommand({ id: 'x'.repeat(65) }, stderr), /must be 1 to 64/);
  await assert.rejects(apiCommand({ engine: 'qemu' }, stderr), /--engine "qemu" is not one of auto, kvm, soft/);
  await assert.rejects(apiCommand({ 'http-api-max-payload-size': '12k' }, stderr), /--http-api-max-payload-size "12k" is not a positive whole number/);
  const dir = tmp();
  try {
    const status = await apiCommand({ 'api-sock': join(dir, 'missing', 'api.sock') }, stderr, { stopRequested: new Promise(() => {}) });
    assert.equal(status, 1);
    assert.match(err.join(''), /cannot listen on API socket .*: directory .*missing does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('api cli: config file problems name the file, the section and the field', async () => {
  const dir = tmp();
  try {
    const kernel = join(dir, 'vmlinux');
    writeFileSync(kernel, 'k');
    const bad: [unknown, RegExp][] = [
      [[], /expected a JSON object/],
      [{ 'boot-source': { kernel_image_path: kernel }, balloon: { amount_mib: 1, deflate_on_oom: true } }, /balloon is not supported by typevisor/],
      [{ 'boot-source': { kernel_image_path: kernel }, 'machine-cfg': {} }, /unknown section "machine-cfg"/],
      [{ 'machine-config': { vcpu_count: 1, mem_size_mib: 64 } }, /boot-source is required/],
      [{ 'boot-source': { kernel_image_path: kernel }, 'machine-config': { vcpu_count: 'one', mem_size_mib: 64 } }, /machine-config: vcpu_count: expected an integer, got string "one"/],
      [{ 'boot-source': { kernel_image_path: join(dir, 'nope') } }, /boot-source: kernel_image_path .*nope does not exist/],
      [{ 'boot-source': { kernel_image_path: kernel }, drives: { drive_id: 'a' } }, /drives must be an array/],
      [{ 'boot-source': { kernel_image_path: kernel }, drives: [{ is_root_device: true }] }, /drives\[0\]: missing drive_id/],
      [{ 'boot-source': { kernel_image_path: kernel }, drives: [{ drive_id: 'a', path_on_host: join(dir, 'gone'), is_root_device: true }] }, /drives\[0\]: drive a: path_on_host .*gone does not exist/],
    ];
    for (const [cfg, msg] of bad) {
      const c = new ApiController({ logFallback: () => {} });
      await assert.rejects(applyVmConfig(c, cfg, 'vm.json'), (e: unknown) => e instanceof ConfigFileError && msg.test(e.message) && e.message.startsWith('vm.json'), JSON.stringify(cfg));
      await c.close();
    }
    writeFileSync(join(dir, 'broken.json'), '{"boot-source": ');
    let r = await run(['--no-api', '--config-file', join(dir, 'broken.json')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /config file .*broken.json is not valid JSON/);
    r = await run(['--no-api', '--config-file', join(dir, 'absent.json')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /config file .*absent.json does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('api cli: --config-file --no-api boots the test guest; its console is on stdout; power-off ends the process with 0', async (t) => {
  const why = guestToolchainMissing() ?? kvmMissing();
  if (why) return t.skip(why);
  const dir = tmp();
  try {
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(4096));
    const cfg = join(dir, 'vm.json');
    writeFileSync(cfg, JSON.stringify({
      'boot-source': { kernel_image_path: buildGuests().testGuest, boot_args: 'console=ttyS0 tg.test=boot tg.exit=poweroff' },
      'machine-config': { vcpu_count: 1, mem_size_mib: 64, engine: 'kvm' },
      drives: [{ drive_id: 'rootfs', path_on_host: disk, is_root_device: true, is_read_only: true }],
      'network-interfaces': [],
      logger: { log_path: join(dir, 'vmm.log'), level: 'Info' },
    }));
    const started = performance.now();
    const r = await run(['--no-api', '--config-file', cfg, '--id', 'vm-1']);
    t.diagnostic(`config file to guest power-off: ${(performance.now() - started).toFixed(0)} ms wall`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /typevisor test guest 1/);
    assert.match(r.stdout, /TG exit how=poweroff/);
    assert.match(r.stderr, /guest powered off/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('api cli: the API process serves until SIGTERM, then removes its socket and exits 0', async () => {
  const dir = tmp();
  try {
    const sock = join(dir, 'api.sock');
    let info: unknown;
    const r = await run(['--api-sock', sock, '--id', 'api-test'], {
      untilStderr: /API server listening/,
      then: async (child) => {
        info = (await request(sock, 'GET', '/')).body;
        child.kill('SIGTERM');
      },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(info && { ...(info as object), vmm_version: 'x' }, { id: 'api-test', state: 'Not started', vmm_version: 'x', app_name: 'typevisor' });
    assert.match(r.stderr, /\[api-test:main\] SIGTERM: stopping/);
    assert.ok(!existsSync(sock), 'socket removed on exit');
    // A second process on a live socket is refused.
    const first = spawn(process.execPath, [MAIN, '--api-sock', sock], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise<void>((resolve) => first.stderr.on('data', (c: Buffer) => /listening/.test(c.toString()) && resolve()));
    const second = await run(['--api-sock', sock]);
    first.kill('SIGTERM');
    assert.equal(second.status, 1);
    assert.match(second.stderr, /API socket .* is in use: another process serves on it/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
