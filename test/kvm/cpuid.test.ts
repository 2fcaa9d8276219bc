import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCpuid, encodeCpuid, vcpuCpuid, type CpuidEntry } from '../../src/engine/kvm/index.js';

const entry = (fn: number, index: number, regs: Partial<CpuidEntry> = {}): CpuidEntry => ({ function: fn, index, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0, ...regs });

const host: CpuidEntry[] = [
  entry(0, 0, { eax: 0xb }),
  entry(1, 0, { ebx: 0xff00_0800, ecx: 0x0, edx: 0x1 }),
  entry(4, 0, { eax: 0x121 }), // L1 data cache
  entry(4, 3, { eax: 0x163 }), // L3 unified
  entry(0xb, 0, { flags: 1 }),
  entry(0xb, 1, { flags: 1 }),
  entry(0xb, 2, { flags: 1 }),
  entry(0x8000_0008, 0, { ecx: 0xffff }),
];

test('kvm/cpuid: APIC IDs, package size and the hypervisor bit in leaf 1', () => {
  const e = vcpuCpuid(host, 3, 4).find((x) => x.function === 1)!;
  assert.equal(e.ebx >>> 24, 3, 'initial APIC ID');
  assert.equal((e.ebx >>> 16) & 0xff, 4, 'logical processors per package');
  assert.equal(e.ebx & 0xffff, 0x0800, 'CLFLUSH size and brand index kept');
  assert.ok(e.ecx & (1 << 31), 'hypervisor bit');
  assert.ok(e.edx & (1 << 28), 'HTT: the package count is valid');
  assert.equal(vcpuCpuid(host, 0, 1).find((x) => x.function === 1)!.edx & (1 << 28), 0, 'one CPU: no HTT');
});

test('kvm/cpuid: leaf 0xB describes 1 thread per core and N cores, x2APIC ID in EDX', () => {
  const b = vcpuCpuid(host, 5, 6).filter((x) => x.function === 0xb);
  assert.deepEqual(b.map((x) => [x.eax, x.ebx, x.ecx, x.edx]), [
    [0, 1, 0x100, 5], // SMT: shift 0, 1 thread
    [3, 6, 0x201, 5], // core: shift 3 (6 cores need 3 bits), 6 logical processors
    [0, 0, 2, 5], // invalid level
  ]);
  assert.equal(vcpuCpuid(host, 0, 1).find((x) => x.function === 0xb && x.index === 1)!.eax, 0);
});

test('kvm/cpuid: cache sharing and the AMD core count follow the CPU count', () => {
  const out = vcpuCpuid(host, 0, 4);
  const l1 = out.find((x) => x.function === 4 && x.index === 0)!;
  const l3 = out.find((x) => x.function === 4 && x.index === 3)!;
  assert.equal((l1.eax >>> 14) & 0xfff, 0);
  assert.equal((l3.eax >>> 14) & 0xfff, 3);
  assert.equal(l1.eax >>> 26, 3);
  const amd = out.find((x) => x.function === 0x8000_0008)!;
  assert.equal(amd.ecx & 0xff, 3);
  assert.equal((amd.ecx >>> 12) & 0xf, 2);
});

test('kvm/cpuid: the KVM signature leaf is present even when the host table lacks it', () => {
  const sig = vcpuCpuid(host, 0, 1).find((x) => x.function === 0x4000_0000)!;
  const text = Buffer.from(new Uint32Array([sig.ebx, sig.ecx, sig.edx]).buffer).toString('latin1');
  assert.equal(text, 'KVMKVMKVM\0\0\0');
  assert.ok(sig.eax >= 0x4000_0001);
});

test('kvm/cpuid: kvm_cpuid2 encoding round-trips and a lying entry count is refused', () => {
  const buf = encodeCpuid(host);
  assert.deepEqual(decodeCpuid(buf), host);
  new DataView(buf.buffer).setUint32(0, host.length + 1, true);
  assert.throws(() => decodeCpuid(buf), /claims 9 entries beyond its buffer/);
});
