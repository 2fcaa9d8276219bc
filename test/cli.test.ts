import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, accessSync, chmodSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildElf, buildBzImage } from './fixtures/kernel-images.js';
import { kvmMissing } from './guest/run-guest.js';
import { buildGuests, guestToolchainMissing } from './guest/build-guests.js';

const CLI = fileURLToPath(new URL('../../bin/typevisor.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'typevisor-cli-'));
// Readable by the unprivileged user of the permission test.
chmodSync(dir, 0o755);

function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}, user?: string): Run {
  const cmd = user ? 'runuser' : process.execPath;
  const argv = user ? ['-u', user, '--', process.execPath, CLI, ...args] : [CLI, ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000, input: '' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: non-zero status, exactly one line naming the problem, no stack trace. */
function assertOneLineError(r: Run, pattern: RegExp, status = 1): void {
  assert.equal(r.status, status, `exit status (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n').filter((l) => !l.startsWith("Run 'typevisor --help'"));
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

const code = Uint8Array.of(0xf4, 0xeb, 0xfd);
const goodElf = () => buildElf({ segments: [{ paddr: 0x1000000, data: code }] });

test('cli: usage errors exit 2 with one line', () => {
  assertOneLineError(cli(['run', '--bogus']), /Unknown option '--bogus'/, 2);
  assertOneLineError(cli(['frobnicate']), /unknown command "frobnicate"/, 2);
  assertOneLineError(cli(['run', '--kernel']), /--kernel/, 2);
  assert.equal(cli([]).status, 2);
  assert.equal(cli(['--help']).status, 0);
  assert.match(cli(['run', '--help']).stdout, /--engine NAME/);
});

test('cli: configuration values out of range', () => {
  const k = file('ok.elf', goodElf());
  assertOneLineError(cli(['run', '--initrd', k]), /--initrd needs --kernel/);
  assertOneLineError(cli(['run', '--kernel', k, '--cpus', '0']), /vCPU count must be at least 1/);
  assertOneLineError(cli(['run', '--kernel', k, '--cpus', 'two']), /--cpus "two" is not a whole number/);
  assertOneLineError(cli(['run', '--kernel', k, '--cpus', '4096']), /above the machine's limit of 255/);
  assertOneLineError(cli(['run', '--kernel', k, '--memory', '0']), /memory must be at least 16 MiB/);
  assertOneLineError(cli(['run', '--kernel', k, '--memory', '64T']), /more than this host has/);
  assertOneLineError(cli(['run', '--kernel', k, '--memory', 'lots']), /"lots" is not a size/);
  assertOneLineError(cli(['run', '--kernel', k, '--engine', 'qemu']), /--engine "qemu" is not one of auto, kvm, soft/);
});

test('cli: missing files are named', () => {
  const k = file('ok2.elf', goodElf());
  assertOneLineError(cli(['run', '--kernel', join(dir, 'nope')]), /kernel .*nope does not exist/);
  assertOneLineError(cli(['run', '--kernel', dir]), /is not a regular file/);
  assertOneLineError(cli(['run', '--kernel', k, '--initrd', join(dir, 'no-initrd')]), /initrd .*no-initrd does not exist/);
});

test('cli: the KVM device absent or not permitted', (t) => {
  const k = file('ok3.elf', goodElf());
  assertOneLineError(cli(['run', '--engine', 'kvm', '--kernel', k], { TYPEVISOR_KVM_DEVICE: join(dir, 'no-kvm') }), /kvm engine: .*no-kvm is not present/);
  // auto without KVM falls back to the soft engine and says why (the ELF32 kernel then stops the run).
  const elf32 = file('auto.elf32', buildElf({ segments: [{ paddr: 0x1000000, data: code }], elfClass: 1 }));
  const auto = cli(['run', '--engine', 'auto', '--kernel', elf32], { TYPEVISOR_KVM_DEVICE: join(dir, 'no-kvm') });
  assert.equal(auto.status, 1, auto.stderr);
  assert.match(auto.stderr, /engine: soft .*no-kvm is not present/);
  assert.match(auto.stderr, /ELF32/);
  const missing = kvmMissing();
  if (missing) return t.skip(`permission case needs /dev/kvm: ${missing}`);
  if (process.getuid?.() !== 0 || spawnSync('runuser', ['-u', 'nobody', '--', 'true']).status !== 0) {
    return t.skip('permission case needs root and runuser to act as an unprivileged user');
  }
  try {
    accessSync(CLI, constants.R_OK);
  } catch {
    return t.skip('permission case: the checkout is not readable by nobody');
  }
  const r = cli(['run', '--engine', 'kvm', '--kernel', k], {}, 'nobody');
  if (/EACCES.*\.js|Cannot find module|permission denied, open .*node_modules/.test(r.stderr)) {
    return t.skip('permission case: the checkout is not readable by nobody');
  }
  assertOneLineError(r, /no permission to open \/dev\/kvm/);
});

test('cli: bad kernel images are refused with the reason', (t) => {
  const missing = kvmMissing();
  if (missing) return t.skip(`loading a kernel needs an engine's memory: ${missing}`);
  const run = (name: string, bytes: Uint8Array, extra: string[] = []) => cli(['run', '--engine', 'kvm', '--kernel', file(name, bytes), ...extra]);
  assertOneLineError(run('empty', new Uint8Array(0)), /not a Linux kernel/);
  assertOneLineError(run('garbage', Uint8Array.from({ length: 4096 }, (_, i) => (i * 131) & 0xff)), /not a Linux kernel/);
  assertOneLineError(run('elf32', buildElf({ segments: [{ paddr: 0x1000000, data: code }], elfClass: 1 })), /ELF32/);
  assertOneLineError(run('arm64', buildElf({ segments: [{ paddr: 0x1000000, data: code }], machine: 183 })), /machine|AArch64|aarch64/i);
  assertOneLineError(run('truncated-elf', goodElf().subarray(0, 80)), /truncated|beyond|past the end|short/i);
  const bz = buildBzImage({ payload: new Uint8Array(64) });
  assertOneLineError(run('old-bz', buildBzImage({ payload: new Uint8Array(64), version: 0x0206 })), /too old|2\.06|64-bit boot protocol/i);
  assertOneLineError(run('truncated-bz', bz.subarray(0, 0x300)), /truncated|short|past the end/i);
  assertOneLineError(run('huge-initrd', goodElf(), ['--memory', '16M', '--initrd', file('big-initrd', new Uint8Array(17 * 2 ** 20))]), /initrd .* larger than guest memory/);
  assertOneLineError(run('tight-initrd', goodElf(), ['--memory', '32M', '--initrd', file('tight', new Uint8Array(20 * 2 ** 20))]), /initrd of .* does not fit/);
});

test('cli: the test guest boots, reports and resets with status 0', (t) => {
  const missing = kvmMissing() ?? guestToolchainMissing();
  if (missing) return t.skip(missing);
  const { testGuest } = buildGuests();
  const r = cli(['run', '--engine', 'kvm', '--kernel', testGuest, '--cmdline', 'console=ttyS0 tg.test=boot tg.exit=reset', '--memory', '64M']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^typevisor test guest 1$/m);
  assert.match(r.stderr, /guest reset/);
});

test('cli: RAM beyond the 32-bit hole is mapped above 4 GiB and announced in e820', (t) => {
  const missing = kvmMissing() ?? guestToolchainMissing();
  if (missing) return t.skip(missing);
  const { testGuest } = buildGuests();
  const r = cli(['run', '--engine', 'kvm', '--kernel', testGuest, '--cmdline', 'console=ttyS0 tg.test=boot tg.exit=poweroff', '--memory', '5G']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /TG e820 entries=4/);
  assert.match(r.stdout, /TG e820-entry index=2 addr=0x100000 size=0xbff00000 type=1/);
  assert.match(r.stdout, /TG e820-entry index=3 addr=0x100000000 size=0x80000000 type=1/);
});

test('cli: --rng adds a virtio-mmio device the guest finds in the DSDT', (t) => {
  const missing = kvmMissing() ?? guestToolchainMissing();
  if (missing) return t.skip(missing);
  const { testGuest } = buildGuests();
  const args = ['run', '--engine', 'kvm', '--kernel', testGuest, '--cmdline', 'console=ttyS0 tg.test=acpi tg.exit=poweroff', '--memory', '64M'];
  const without = cli(args);
  const withRng = cli([...args, '--rng']);
  assert.equal(withRng.status, 0, withRng.stderr);
  assert.match(without.stdout, /TG acpi-dsdt .*lnro0005=0/);
  assert.match(withRng.stdout, /TG acpi-dsdt .*lnro0005=1/);
});

test('cli: --net and --vsock values are checked before anything starts', () => {
  const k = file('ok4.elf', goodElf());
  const run = (...extra: string[]) => cli(['run', '--kernel', k, ...extra]);
  assertOneLineError(run('--net', 'foo=bar'), /--net "foo=bar": "foo=bar" is not one of tap=…, mac=…/);
  assertOneLineError(run('--net', 'mac=02:00:00:00:00:01'), /tap=NAME is required/);
  assertOneLineError(run('--net', 'tap=a b'), /not a TAP device name/);
  assertOneLineError(run('--net', 'tap=t0,mac=01:00:00:00:00:01'), /multicast/);
  assertOneLineError(run('--net', 'tap=t0,mac=zz'), /not six hex bytes/);
  assertOneLineError(run('--net', 'tap=t0', '--net', 'tap=t0'), /TAP t0 or its MAC is already used by net0/);
  assertOneLineError(run('--vsock', 'cid=2,uds=/tmp/x'), /CID 2 is out of range/);
  assertOneLineError(run('--vsock', 'uds=/tmp/x'), /cid=N .* is required/);
  assertOneLineError(run('--vsock', 'cid=3'), /uds=PATH is required/);
  assertOneLineError(run('--vsock', 'cid=3,cid=4,uds=/x'), /cid is given twice/);
});

test('cli: NIC, vsock and rng each take a virtio-mmio slot; a missing TAP is named', (t) => {
  const missing = kvmMissing() ?? guestToolchainMissing();
  if (missing) return t.skip(missing);
  const { testGuest } = buildGuests();
  const k = ['run', '--engine', 'kvm', '--kernel', testGuest, '--memory', '64M'];
  assertOneLineError(cli([...k, '--net', 'tap=tvnosuch0']), /network interface net0: tap tvnosuch0: no such interface; create it with: ip tuntap add dev tvnosuch0 mode tap/);
  if (process.getuid?.() !== 0 || spawnSync('ip', ['tuntap', 'add', 'dev', 'tvcli0', 'mode', 'tap']).status !== 0) {
    return t.skip('creating a TAP device needs root and iproute2');
  }
  try {
    const uds = join(dir, 'vsock.sock');
    const r = cli([...k, '--cmdline', 'console=ttyS0 tg.test=acpi tg.exit=poweroff', '--net', 'tap=tvcli0', '--vsock', `cid=3,uds=${uds}`, '--rng']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /TG acpi-dsdt .*lnro0005=3/);
    assert.throws(() => accessSync(uds), 'the vsock socket is removed when the VM ends');
  } finally {
    spawnSync('ip', ['link', 'del', 'tvcli0']);
  }
});
