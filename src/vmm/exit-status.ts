import type { VmStop } from '../engine/engine.js';

/**
 * Exit statuses of the `typevisor` process, one per way a VM can end.
 * Documented in the README; scripts and CI rely on them.
 */
export const EXIT = {
  /** The guest powered off or reset, or the user quit from the console. */
  OK: 0,
  /** The VMM could not build or run the VM (bad configuration, missing file, engine unavailable). */
  VMM_ERROR: 1,
  /** The command line was malformed (unknown option, missing value). */
  USAGE: 2,
  /** The guest crashed the virtual CPU (triple fault). */
  GUEST_CRASH: 3,
  /** The engine failed while running the guest (emulation failure, KVM internal error). */
  ENGINE_ERROR: 4,
} as const;

function regsLine(regs: { rip: bigint; rsp: bigint; rflags: bigint } | undefined): string {
  if (!regs) return '';
  const h = (v: bigint) => '0x' + v.toString(16);
  return ` (rip=${h(regs.rip)} rsp=${h(regs.rsp)} rflags=${h(regs.rflags)})`;
}

/** The process exit status and a one-line report for a stopped VM. */
export function describeStop(stop: VmStop): { status: number; message: string } {
  switch (stop.reason) {
    case 'poweroff':
      return { status: EXIT.OK, message: 'guest powered off' };
    case 'reset':
      return { status: EXIT.OK, message: 'guest reset' };
    case 'host-stop':
      return { status: EXIT.OK, message: 'stopped from the host' };
    case 'triple-fault':
      return { status: EXIT.GUEST_CRASH, message: `guest triple fault on vCPU ${stop.cpu}${regsLine(stop.regs)}` };
    case 'engine-error':
      return { status: EXIT.ENGINE_ERROR, message: `engine error on vCPU ${stop.cpu}: ${stop.message}${regsLine(stop.regs)}` };
  }
}
