/**
 * Command lines of the VMMs under comparison, booting the same guest image
 * with the same RAM and one vCPU.
 */
import { fileURLToPath } from 'node:url';

/** bin/typevisor.js of this checkout (this file runs from dist/bench/lib/). */
export const TYPEVISOR_BIN = fileURLToPath(new URL('../../../bin/typevisor.js', import.meta.url));

export interface Command {
  cmd: string;
  args: string[];
}

export interface GuestSpec {
  kernel: string;
  initrd?: string;
  cmdline?: string;
  memory: string;
  /** Extra QEMU arguments (drives); typevisor's equivalents come when it has the devices. */
  qemuDevices?: string[];
}

export function typevisor(engine: 'kvm' | 'soft', g: GuestSpec): Command {
  const args = [TYPEVISOR_BIN, 'run', '--engine', engine, '--kernel', g.kernel, '--memory', g.memory];
  if (g.initrd) args.push('--initrd', g.initrd);
  if (g.cmdline) args.push('--cmdline', g.cmdline);
  return { cmd: process.execPath, args };
}

/** Port and width of QEMU's isa-debug-exit, where bench-guest.S writes to end QEMU. */
export const QEMU_DEBUG_EXIT = 'isa-debug-exit,iobase=0xf4,iosize=1';
/** QEMU's exit status for the guest writing 0 to isa-debug-exit: (0 << 1) | 1. */
export const QEMU_DEBUG_EXIT_STATUS = 1;

/**
 * qemu-system-x86_64 -M microvm: QEMU's minimal machine (no PCI, no
 * firmware tables beyond ACPI), the closest to ours. `-cpu host` on KVM,
 * `-cpu max` on TCG (every feature TCG emulates).
 */
export function qemuMicrovm(qemu: string, accel: 'kvm' | 'tcg', g: GuestSpec): Command {
  const args = [
    '-M', 'microvm', '-accel', accel, '-cpu', accel === 'kvm' ? 'host' : 'max', '-smp', '1', '-m', g.memory,
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-monitor', 'none',
    '-device', QEMU_DEBUG_EXIT, '-kernel', g.kernel,
  ];
  if (g.initrd) args.push('-initrd', g.initrd);
  if (g.cmdline) args.push('-append', g.cmdline);
  args.push(...(g.qemuDevices ?? []));
  return { cmd: qemu, args };
}
