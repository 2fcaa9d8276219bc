export { KvmEngine, KvmVm, KVM_DEVICE, kvmOpenError, type KvmEngineOptions } from './kvm-engine.js';
export { vcpuCpuid, decodeCpuid, encodeCpuid, type CpuidEntry } from './cpuid.js';
export { SpareVcpuThread } from './vcpu-thread.js';
