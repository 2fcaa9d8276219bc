#!/usr/bin/env node
// Installs the Debian tools the test suite uses when they are missing, so that
// `npm test` works on a fresh Debian machine with no other step. Needs root (or
// passwordless sudo); otherwise it names what is missing and the tests that
// need it report themselves skipped.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const tools = [
  // [command, Debian package, what for]
  ['iasl', 'acpica-tools', 'disassembling our ACPI tables'],
  ['lz4', 'lz4', 'making legacy-LZ4 kernel payloads'],
  ['zstd', 'zstd', 'making zstd kernel payloads'],
  ['xz', 'xz-utils', 'making xz kernel payloads'],
  ['gcc', 'gcc', 'building the test guests and native harnesses'],
  ['objdump', 'binutils', 'checking guest images'],
  ['dpkg-deb', 'dpkg', "unpacking Debian's kernel package"],
];

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
const missing = tools.filter(([cmd]) => !has(cmd));
if (missing.length === 0) process.exit(0);

const pkgs = [...new Set(missing.map(([, pkg]) => pkg))];
const isRoot = process.getuid?.() === 0;
const sudo = !isRoot && has('sudo') ? ['sudo', '-n'] : [];
if (!isRoot && sudo.length === 0) {
  console.warn(`test tools missing (${pkgs.join(', ')}); install them with apt-get to run every test`);
  process.exit(0);
}
const run = (args) => execFileSync(args[0], args.slice(1), { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
try {
  if (!existsSync('/var/lib/apt/lists') || spawnSync('sh', ['-c', 'ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1']).status !== 0) {
    run([...sudo, 'apt-get', 'update', '-qq']);
  }
  console.log(`installing test tools: ${pkgs.join(', ')}`);
  run([...sudo, 'apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...pkgs]);
} catch {
  console.warn(`could not install ${pkgs.join(', ')}; the tests that need them will report themselves skipped`);
}
