/**
 * typevisor as a library: build, start and control VMs from TypeScript.
 *
 *   import { Vmm } from 'typevisor';
 *   const vm = new Vmm();
 *   vm.configureMachine({ vcpuCount: 2, memBytes: 512 * 2 ** 20, engine: 'kvm' });
 *   vm.configureBootSource({ kernelPath: 'vmlinux', cmdline: 'console=ttyS0' });
 *   await vm.start();
 *   vm.runningMachine!.setSerialOutput((byte) => process.stdout.write(Uint8Array.of(byte)));
 *   const { status, message } = await vm.exited();
 */
export { Vmm, type VmmAction, type VmPhase, type VmExitReport, type VmDescription } from './vmm/vmm.js';
export { VmmError, type VmmErrorCode } from './vmm/errors.js';
export { DEFAULT_CMDLINE, DEFAULT_MACHINE, type MachineConfig, type BootSourceConfig, type VmConfig, type EngineChoice } from './vmm/config.js';
export { EXIT, describeStop } from './vmm/exit-status.js';
export { parseSize } from './vmm/size.js';
export type { VmStop } from './engine/engine.js';
export { VERSION } from './version.js';
