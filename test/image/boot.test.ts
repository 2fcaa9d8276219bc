/**
 * The default image boots and /init keeps its contract — checked under QEMU
 * (TCG, microvm with ACPI: virtio-mmio devices found through the DSDT, as on
 * typevisor's machine), the reference DESIGN.md measures against, until
 * typevisor's own engines boot Linux here.
 *
 * QEMU is installed with apt as root when missing; otherwise the tests skip.
 * microvm has no PIT calibration source under TCG here, so the host's TSC
 * frequency is passed as tsc_early_khz (DESIGN.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeDiskImage } from '../../src/image/disk.js';
import { guestCommandParam, guestExitStatus } from '../../src/image/guest-cmdline.js';
import { imageBuildMissing, needTool, testCacheDir, testImage } from './helpers.js';

const QEMU = 'qemu-system-x86_64';

function tscKhz(): number {
  const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  return Math.round(Number(mhz ?? '2000') * 1000);
}

interface Boot {
  code: number | null;
  output: string;
}

/** Boots the image; `onOutput` may answer on the console. Killed after 120 s. */
function boot(kernel: string, initrd: string, append: string, extra: string[], onOutput?: (text: string, write: (s: string) => void) => void): Promise<Boot> {
  return new Promise((resolve, reject) => {
    const q = spawn(QEMU, [
      '-M', 'microvm,acpi=on,rtc=on', '-accel', 'tcg', '-m', '256', '-smp', '2', '-nographic', '-no-reboot',
      '-kernel', kernel, '-initrd', initrd, '-append', `console=ttyS0 tsc_early_khz=${tscKhz()} ${append}`, ...extra,
    ], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => q.kill('SIGKILL'), 120_000);
    const add = (chunk: Buffer) => {
      output += chunk.toString('latin1');
      onOutput?.(output, (s) => q.stdin.write(s));
    };
    q.stdout.on('data', add);
    q.stderr.on('data', add);
    q.on('error', reject);
    q.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function setup(t: { skip: (why: string) => void }) {
  const missing = imageBuildMissing() ?? needTool(QEMU, 'qemu-system-x86');
  if (missing) {
    t.skip(missing);
    return undefined;
  }
  return testImage();
}

test('tv.cmd runs the script: modules loaded, virtio-blk ext4 mounted, eth0 up, exit status reported, powered off', async (t) => {
  const img = await setup(t);
  if (!img) return;
  const missing = needTool('mke2fs', 'e2fsprogs');
  if (missing) return t.skip(missing);
  const dir = mkdtempSync(join(testCacheDir(), 'boot-'));
  try {
    mkdirSync(join(dir, 'tree'));
    writeFileSync(join(dir, 'tree', 'msg'), 'read from the virtio disk\n');
    makeDiskImage({ size: 8 * 1024 * 1024, from: join(dir, 'tree'), out: join(dir, 'disk.img') });
    // Quotes, a pipe, a newline and a non-zero status: the encoding must carry them all.
    const script = [
      `echo "modules: $(cut -d' ' -f1 /proc/modules | sort | tr '\\n' ' ')"`,
      'mkdir /mnt && mount -t ext4 /dev/vda /mnt && cat /mnt/msg',
      // operstate turns "up" only after the carrier is seen, asynchronously; IFF_UP (0x1) in flags is what /init set.
      'echo "eth0 flags: $(cat /sys/class/net/eth0/flags)"',
      "echo 'single \"quoted\"'",
      'exit 7',
    ].join('\n');
    const r = await boot(img.kernel, img.initrd, `quiet ${guestCommandParam(script)}`, [
      '-drive', `id=d,file=${join(dir, 'disk.img')},format=raw,if=none`, '-device', 'virtio-blk-device,drive=d',
      '-netdev', 'user,id=n', '-device', 'virtio-net-device,netdev=n',
    ]);
    assert.equal(r.code, 0, `QEMU exits when the guest powers off:\n${r.output}`);
    assert.match(r.output, new RegExp(`typevisor guest: Linux ${img.manifest.kernelRelease.replace(/\./g, '\\.')}, 2 CPU\\(s\\), \\d+ MiB RAM`));
    const loaded = /modules: (.*)/.exec(r.output)?.[1]?.trim().split(' ') ?? [];
    for (const m of ['virtio', 'virtio_ring', 'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_console', 'virtio_rng', 'vsock', 'vmw_vsock_virtio_transport']) {
      assert.ok(loaded.includes(m), `${m} loaded (${loaded.join(' ')})`);
    }
    assert.match(r.output, /read from the virtio disk/);
    const flags = /eth0 flags: (0x[0-9a-f]+)/.exec(r.output)?.[1];
    assert.ok(flags !== undefined && (Number(flags) & 0x1) === 1, `eth0 is up (flags ${flags})`);
    assert.match(r.output, /single "quoted"/);
    assert.equal(guestExitStatus(r.output), 7);
    assert.match(r.output, /reboot: Power down/);
    assert.doesNotMatch(r.output, /insmod .* failed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without tv.cmd: a shell on the console with it as controlling terminal; poweroff -f ends the VM', async (t) => {
  const img = await setup(t);
  if (!img) return;
  let sent = false;
  const r = await boot(img.kernel, img.initrd, 'quiet', [], (text, write) => {
    // ash's prompt, possibly followed by its cursor-position query (ESC [6n).
    if (!sent && /typevisor guest: [^\n]*\n[\s\S]*\/ # (\x1b\[6n)?$/.test(text)) {
      sent = true;
      write('tty; echo "answer $((6 * 7))"; poweroff -f\n');
    }
  });
  assert.ok(sent, `a shell prompt appeared:\n${r.output}`);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /^\/dev\/ttyS0\r?$/m, 'cttyhack gave the shell the serial console');
  assert.match(r.output, /^answer 42\r?$/m);
  assert.equal(guestExitStatus(r.output), undefined);
});

test('guestCommandParam: base64 of the script; empty scripts refused', () => {
  assert.equal(guestCommandParam('echo hi'), `tv.cmd=${Buffer.from('echo hi').toString('base64')}`);
  assert.doesNotMatch(guestCommandParam('a "b" \'c\'\n d\te'), /[\s"']/);
  assert.throws(() => guestCommandParam('  \n'), /empty/);
  assert.equal(guestExitStatus('x\ntv: exit status 130\r\ny'), 130);
});
