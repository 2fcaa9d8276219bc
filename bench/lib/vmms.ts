/**
 * Command lines of the VMMs under comparison, booting the same guest image
 * with the same RAM and one vCPU.
 */
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this file was built from (it runs from dist/bench/lib/). */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** bin/typevisor.js the benchmarks run: the checkout's, or a snapshot of it (see snapshotTypevisor). */
export let TYPEVISOR_BIN = join(ROOT, 'bin', 'typevisor.js');

/**
 * Copies bin/, dist/src/ and package.json to a private directory and runs
 * typevisor from there, so a rebuild of the checkout during a long run (other
 * work in the same tree) cannot hand half-written modules to VMs the
 * benchmark starts. Returns a function that removes the copy.
 */
export function snapshotTypevisor(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-bench-snapshot-'));
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'dist', 'src'), join(dir, 'dist', 'src'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  TYPEVISOR_BIN = join(dir, 'bin', 'typevisor.js');
  return () => {
    TYPEVISOR_BIN = join(ROOT, 'bin', 'typevisor.js');
    rmSync(dir, { recursive: true, force: true });
  };
}

export interface Command {
  cmd: string;
  args: string[];
}

export interface GuestSpec {
  kernel: string;
  initrd?: string;
  cmdline?: string;
  memory: string;
  /** Raw disk images, attached read-write as virtio-blk in order (Linux: vda, vdb, …). */
  disks?: string[];
}

export function typevisor(engine: 'kvm' | 'soft', g: GuestSpec): Command {
  const args = [TYPEVISOR_BIN, 'run', '--engine', engine, '--kernel', g.kernel, '--memory', g.memory];
  if (g.initrd) args.push('--initrd', g.initrd);
  if (g.cmdline) args.push('--cmdline', g.cmdline);
  for (const disk of g.disks ?? []) args.push('--disk', disk);
  return { cmd: process.execPath, args };
}

/** Port and width of QEMU's isa-debug-exit, where bench-guest.S writes to end QEMU. */
export const QEMU_DEBUG_EXIT = 'isa-debug-exit,iobase=0xf4,iosize=1';
/** QEMU's exit status for the guest writing 0 to isa-debug-exit: (0 << 1) | 1. */
export const QEMU_DEBUG_EXIT_STATUS = 1;

/**
 * qemu-system-x86_64 -M microvm: QEMU's minimal machine (no PCI, no
 * firmware tables beyond ACPI), the closest to ours. `-cpu host` on KVM,
 * `-cpu max` on TCG (every feature TCG emulates). Disks are virtio-blk on
 * virtio-mmio, as ours. `-no-reboot` makes a guest reset end the process, as
 * it ends typevisor (a panicking guest stops instead of booting again).
 */
export function qemuMicrovm(qemu: string, accel: 'kvm' | 'tcg', g: GuestSpec): Command {
  const args = [
    '-M', 'microvm', '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : 'max', '-smp', '1', '-m', g.memory,
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-monitor', 'none',
    '-device', QEMU_DEBUG_EXIT, '-no-reboot', '-kernel', g.kernel,
  ];
  if (g.initrd) args.push('-initrd', g.initrd);
  if (g.cmdline) args.push('-append', g.cmdline);
  (g.disks ?? []).forEach((disk, n) => {
    // A comma in the path would split QEMU's option string: `,,` is its escape.
    args.push('-drive', `id=disk${n},file=${disk.replace(/,/g, ',,')},format=raw,if=none`, '-device', `virtio-blk-device,drive=disk${n}`);
  });
  return { cmd: qemu, args };
}
