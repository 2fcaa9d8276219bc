#!/usr/bin/env node
// `npm start`: boot a guest on this machine with no other step.
//
// Until typevisor ships its default Linux image and the soft engine, the
// guest is typevisor's own test guest (guest/), booted through the same Linux
// boot path on the KVM engine with 2 vCPUs: it reports what the machine gave
// it (boot parameters, ACPI tables, CPUs it started) and powers off.
import { spawnSync } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cache = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'typevisor', 'test-guest');
mkdirSync(cache, { recursive: true });

const build = spawnSync(join(root, 'guest', 'build.sh'), [cache], { stdio: ['ignore', 'ignore', 'inherit'] });
if (build.status !== 0 || !existsSync(join(cache, 'test-guest.elf'))) {
  console.error('npm start: building the test guest failed (it needs gcc and binutils: apt-get install gcc binutils)');
  process.exit(1);
}
console.error('npm start: booting typevisor\'s test guest on the KVM engine (2 vCPUs, 256 MiB)');
const run = spawnSync(
  process.execPath,
  [join(root, 'bin', 'typevisor.js'), 'run', '--engine', 'kvm', '--cpus', '2', '--memory', '256M',
    '--kernel', join(cache, 'test-guest.elf'), '--cmdline', 'console=ttyS0 tg.test=boot,acpi,smp tg.exit=poweroff'],
  { stdio: 'inherit' },
);
process.exit(run.status ?? 1);
