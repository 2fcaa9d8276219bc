#!/usr/bin/env node
// `npm start`: build what is needed and boot the default guest (Debian's cloud
// kernel + a busybox initramfs) on the best engine this machine has.
//
// On a terminal the guest's shell is interactive (Ctrl-A X quits). Without one
// (CI, pipes) the guest runs a short demo — what it runs on, the CPUs and
// memory it sees, a file written to and read back from a virtio disk — and
// powers off; the exit status is the VMM's (0 when the guest powered off).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'bin', 'typevisor.js');
const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'typevisor');
const typevisor = (args) => spawnSync(process.execPath, [cli, ...args], { stdio: 'inherit' });

const built = typevisor(['image', 'build']);
if (built.status !== 0) process.exit(built.status ?? 1);

mkdirSync(cache, { recursive: true });
const disk = join(cache, 'demo-disk.img');
if (!existsSync(disk)) {
  const made = typevisor(['image', 'disk', '--size', '16M', disk]);
  if (made.status !== 0) process.exit(made.status ?? 1);
}

const run = ['run', '--engine', 'auto', '--disk', `${disk},id=demo`, '--cpus', '2', '--memory', '512M'];
if (process.stdin.isTTY) {
  console.error('npm start: booting the default guest; Ctrl-A X quits, `poweroff -f` in the guest ends the VM');
  process.exit(typevisor(run).status ?? 1);
}

const demo = [
  'echo "== uname -a"; uname -a',
  'echo "== CPUs and memory the guest sees"; echo "$(grep -c ^processor /proc/cpuinfo) CPUs, $(grep MemTotal /proc/meminfo)"',
  'echo "== a file written to and read back from the virtio disk /dev/vda"',
  'mkdir -p /mnt && mount -t ext4 /dev/vda /mnt && echo "written by $(uname -n) at $(date -u)" > /mnt/hello.txt && sync && umount /mnt',
  'mount -t ext4 /dev/vda /mnt && cat /mnt/hello.txt && umount /mnt',
].join('\n');
const { guestCommandParam } = await import(join(root, 'dist', 'src', 'image', 'guest-cmdline.js'));
console.error('npm start: booting the default guest and running a short demo in it (no terminal attached)');
process.exit(typevisor([...run, '--cmdline', `console=ttyS0 reboot=acpi panic=1 ${guestCommandParam(demo)}`]).status ?? 1);
