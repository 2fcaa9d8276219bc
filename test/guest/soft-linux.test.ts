/**
 * Debian's stock cloud kernel (the default image) on the soft engine, for a
 * bounded number of instructions: its first console lines must appear.
 * Skips by name when the image cannot be built here (no apt tools, no
 * Debian package access).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDiskImage } from '../../src/image/disk.js';
import { guestCommandParam, guestExitStatus } from '../../src/image/guest-cmdline.js';
import { fileURLToPath } from 'node:url';
import { tscEarlyKhzArgument, TSC_HZ_DEFAULT } from '../../src/engine/soft/apic/index.js';
import { linuxImageOrSkip } from './run-guest.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
/** Enough for Linux 6.1 to print its banner, command line and e820 map (~10 M instructions from startup_64). */
const INSTRUCTION_LIMIT = 40_000_000;

interface Run { status: number | null; stdout: string; stderr: string; ms: number }

function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  const started = performance.now();
  const child = spawn(process.execPath, [`${REPO}bin/typevisor.js`, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('latin1').on('data', (s: string) => { stdout += s; });
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) => {
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr, ms: performance.now() - started });
    });
  });
}

test('Linux on soft: Debian\'s cloud kernel prints its first console lines within a bounded instruction count', async (t) => {
  const image = await linuxImageOrSkip(t);
  if (!image) return;
  // The soft CPU says AuthenticAMD, so Linux 6.1 does not read CPUID 0x15/0x16: give it the TSC rate.
  const cmdline = `console=ttyS0 earlyprintk=serial,ttyS0 ${tscEarlyKhzArgument(TSC_HZ_DEFAULT)} panic=-1`;
  const r = await runCli(
    ['run', '--engine', 'soft', '--kernel', image.kernel, '--initrd', image.initrd, '--memory', '512M', '--cmdline', cmdline],
    { TYPEVISOR_SOFT_INSTRUCTION_LIMIT: String(INSTRUCTION_LIMIT) },
    120_000,
  );
  const ctx = `status ${r.status} after ${(r.ms / 1000).toFixed(1)} s\n--- stdout (tail)\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-2000)}`;
  t.diagnostic(`${INSTRUCTION_LIMIT} instructions in ${(r.ms / 1000).toFixed(1)} s wall; last line: ${r.stdout.trimEnd().split('\n').pop() ?? ''}`);
  assert.match(r.stdout, /Linux version 6\.1\.\S+ .*Debian/, ctx);
  assert.ok(r.stdout.includes(`Command line: ${cmdline}`), ctx);
  assert.match(r.stdout, /BIOS-e820: \[mem 0x0000000000100000-/, ctx);
  assert.match(r.stdout, /ACPI: RSDP 0x00000000000E0000/, ctx);
  assert.match(r.stderr, /instruction limit \d+ reached/, `the run ended at the limit, not by a crash\n${ctx}`);
  assert.doesNotMatch(r.stderr, /engine error|internal error/, ctx);
});

// Issue criterion: the stock kernel + default initramfs boot on the soft engine to
// a shell, a command reads a file from a virtio disk and prints its sha256, the
// guest powers off and the VMM exits 0.
test('Linux on soft: boots to the shell, hashes a file on a virtio disk, powers off with status 0', async (t) => {
  const image = await linuxImageOrSkip(t);
  if (!image) return;
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-soft-linux-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const content = randomBytes(48 * 1024);
  mkdirSync(join(dir, 'tree'));
  writeFileSync(join(dir, 'tree', 'known.bin'), content);
  const disk = join(dir, 'disk.img');
  try {
    makeDiskImage({ size: 8 * 2 ** 20, out: disk, from: join(dir, 'tree') });
  } catch (e) {
    return t.skip(`an ext4 image cannot be made here: ${(e as Error).message.split('\n')[0]}`);
  }
  const want = createHash('sha256').update(content).digest('hex');
  // The clocksource lines check that guest time follows host time: the guest
  // keeps the TSC (not jiffies, which drift when a slow guest takes ticks
  // late) and cannot have been up longer than the VMM process ran.
  const script = [
    'mkdir -p /mnt && mount -t ext4 -o ro /dev/vda /mnt && sha256sum /mnt/known.bin && umount /mnt',
    'echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"',
    'sleep 1',
    'echo "uptime: $(cut -d" " -f1 /proc/uptime)"',
  ].join('\n');
  const r = await runCli(
    ['run', '--engine', 'soft', '--kernel', image.kernel, '--initrd', image.initrd, '--memory', '512M', '--disk', `${disk},ro`,
      '--cmdline', `console=ttyS0 reboot=acpi panic=-1 ${guestCommandParam(script)}`],
    {},
    900_000,
  );
  const ctx = `status ${r.status} after ${(r.ms / 1000).toFixed(1)} s\n--- stdout (tail)\n${r.stdout.slice(-3000)}\n--- stderr\n${r.stderr.slice(-2000)}`;
  t.diagnostic(`boot, hash and power-off in ${(r.ms / 1000).toFixed(1)} s wall`);
  assert.ok(r.stdout.includes(`${want}  /mnt/known.bin`), ctx);
  assert.equal(guestExitStatus(r.stdout), 0, ctx);
  assert.equal(r.status, 0, ctx);
  assert.match(r.stderr, /guest powered off/, ctx);
  assert.match(r.stdout, /^clocksource: tsc\r?$/m, ctx);
  const uptime = Number(/^uptime: ([\d.]+)\r?$/m.exec(r.stdout)?.[1]);
  assert.ok(uptime > 1 && uptime <= r.ms / 1000, `guest uptime ${uptime} s within the VMM's ${(r.ms / 1000).toFixed(1)} s\n${ctx}`);
});
