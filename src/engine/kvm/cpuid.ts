import { kvm_cpuid2, kvm_cpuid_entry2 } from '../../native/index.js';

/**
 * Per-vCPU CPUID from what KVM supports here (KVM_GET_SUPPORTED_CPUID): the
 * vCPU's APIC ID and a topology of `cpus` cores with one thread each, the
 * hypervisor bit, and KVM's signature leaves. Pure functions over entry lists
 * so they are tested without /dev/kvm.
 */
export interface CpuidEntry {
  function: number;
  index: number;
  flags: number;
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** kvm_cpuid_entry2.flags: the entry depends on ECX (sub-leaf). */
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

const E = kvm_cpuid_entry2.fields;
const REGS = ['function', 'index', 'flags', 'eax', 'ebx', 'ecx', 'edx'] as const;

export function decodeCpuid(buf: Uint8Array): CpuidEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(kvm_cpuid2.fields.nent!.offset, true);
  if (kvm_cpuid2.size + n * kvm_cpuid_entry2.size > buf.byteLength) throw new RangeError(`kvm_cpuid2 claims ${n} entries beyond its buffer`);
  const out: CpuidEntry[] = [];
  for (let i = 0; i < n; i++) {
    const at = kvm_cpuid2.size + i * kvm_cpuid_entry2.size;
    const e = {} as CpuidEntry;
    for (const r of REGS) e[r] = dv.getUint32(at + E[r]!.offset, true);
    out.push(e);
  }
  return out;
}

export function encodeCpuid(entries: readonly CpuidEntry[]): Uint8Array {
  const buf = new Uint8Array(kvm_cpuid2.size + entries.length * kvm_cpuid_entry2.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(kvm_cpuid2.fields.nent!.offset, entries.length, true);
  entries.forEach((e, i) => {
    const at = kvm_cpuid2.size + i * kvm_cpuid_entry2.size;
    for (const r of REGS) dv.setUint32(at + E[r]!.offset, e[r] >>> 0, true);
  });
  return buf;
}

/** "KVMKVMKVM\0\0\0" in EBX, ECX, EDX of leaf 0x4000_0000: Linux enables kvmclock and keeps x2APIC on seeing it. */
const KVM_SIGNATURE = [0x4b4d564b, 0x564b4d56, 0x0000004d] as const;
const LEAF_HYPERVISOR = 0x4000_0000;
/** KVM's feature leaf; the highest hypervisor leaf we expose. */
const LEAF_KVM_FEATURES = 0x4000_0001;

/** Leaf 1 ECX bit 31: running under a hypervisor. */
const CPUID1_ECX_HYPERVISOR = 1 << 31;
/** Leaf 1 EDX bit 28: EBX[23:16] (logical processors per package) is valid. */
const CPUID1_EDX_HTT = 1 << 28;
/** Leaf 0xB/0x1F ECX[15:8] level types (Intel SDM vol. 2A, CPUID leaf 0BH). */
const TOPO_LEVEL_SMT = 1;
const TOPO_LEVEL_CORE = 2;

/** Bits needed to number `n` items (x2APIC ID shift widths). */
function bitsFor(n: number): number {
  return n <= 1 ? 0 : 32 - Math.clz32(n - 1);
}

/**
 * CPUID for vCPU `cpu` of `cpus`: APIC ID = cpu, one package of `cpus` cores
 * with one thread each. Leaves absent from `supported` stay absent, except
 * the hypervisor signature leaf.
 */
export function vcpuCpuid(supported: readonly CpuidEntry[], cpu: number, cpus: number): CpuidEntry[] {
  const apicId = cpu;
  const coreBits = bitsFor(cpus);
  const out: CpuidEntry[] = [];
  for (const src of supported) {
    const e = { ...src };
    switch (e.function) {
      case 0x1:
        // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
        e.ebx = ((e.ebx & 0x0000_ffff) | (Math.min(cpus, 255) << 16) | ((apicId & 0xff) << 24)) >>> 0;
        e.ecx = (e.ecx | CPUID1_ECX_HYPERVISOR) >>> 0;
        e.edx = cpus > 1 ? (e.edx | CPUID1_EDX_HTT) >>> 0 : (e.edx & ~CPUID1_EDX_HTT) >>> 0;
        break;
      case 0x4: {
        // Deterministic cache parameters: EAX[31:26] cores per package - 1;
        // EAX[25:14] threads sharing this cache - 1 (L1/L2 per core, L3 per package).
        const level = (e.eax >>> 5) & 0x7;
        if ((e.eax & 0x1f) === 0) break;
        const sharing = level >= 3 ? cpus - 1 : 0;
        e.eax = ((e.eax & 0x3fff) | (Math.min(sharing, 0xfff) << 14) | (Math.min(cpus - 1, 63) << 26)) >>> 0;
        break;
      }
      case 0xb:
      case 0x1f:
        // Extended topology: sub-leaf 0 = SMT level (1 thread), 1 = core level
        // (`cpus` cores), then invalid levels. EDX = x2APIC ID on every sub-leaf.
        if (e.index === 0) {
          e.eax = 0;
          e.ebx = 1;
          e.ecx = (TOPO_LEVEL_SMT << 8) | 0;
        } else if (e.index === 1) {
          e.eax = coreBits;
          e.ebx = cpus;
          e.ecx = (TOPO_LEVEL_CORE << 8) | 1;
        } else {
          e.eax = 0;
          e.ebx = 0;
          e.ecx = e.index & 0xff;
        }
        e.edx = apicId;
        break;
      case LEAF_HYPERVISOR:
        e.eax = Math.max(e.eax, LEAF_KVM_FEATURES);
        [e.ebx, e.ecx, e.edx] = KVM_SIGNATURE;
        break;
      case 0x8000_0008:
        // AMD: ECX[7:0] cores per package - 1, ECX[15:12] APIC ID bits for the core number.
        e.ecx = ((e.ecx & ~0xf0ff) | (Math.min(cpus - 1, 255)) | (coreBits << 12)) >>> 0;
        break;
      case 0x8000_001e:
        // AMD extended APIC ID: EAX = APIC ID, EBX[7:0] core ID, [15:8] threads per core - 1; one node.
        e.eax = apicId;
        e.ebx = (e.ebx & ~0xffff) | (cpu & 0xff);
        e.ecx = e.ecx & ~0x7ff;
        break;
    }
    out.push(e);
  }
  if (!out.some((e) => e.function === LEAF_HYPERVISOR)) {
    out.push({ function: LEAF_HYPERVISOR, index: 0, flags: 0, eax: LEAF_KVM_FEATURES, ebx: KVM_SIGNATURE[0], ecx: KVM_SIGNATURE[1], edx: KVM_SIGNATURE[2] });
  }
  return out;
}
