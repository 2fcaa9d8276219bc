/**
 * Per-call costs of the native layer and of the two ways to raise a guest IRQ:
 *
 *   node dist/bench/kvm/call-costs.js
 *
 * - ioctl(KVM_GET_API_VERSION) through src/native (koffi), median of 5 × 200k calls;
 * - KVM_IRQ_LINE assert + deassert (what KvmVm.irqLine().set does) vs one
 *   8-byte write to an eventfd registered with KVM_IRQFD (edge only).
 */
import {
  EFD_CLOEXEC, KVM, O_CLOEXEC, O_RDWR, close, eventfd, ioctl, ioctlBuf, kvm_irq_level, kvm_irqfd, open, write,
} from '../../src/native/index.js';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

function perCall(n: number, f: () => void): number {
  const out: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) f();
    out.push(Number(process.hrtime.bigint() - t0) / n / 1000);
  }
  return median(out);
}

let kvm: number;
try {
  kvm = open('/dev/kvm', O_RDWR | O_CLOEXEC);
} catch (e) {
  console.log(`skipped: ${(e as Error).message}`);
  process.exit(0);
}
console.log(`ioctl(KVM_GET_API_VERSION) via src/native: ${perCall(200_000, () => ioctl(kvm, KVM.GET_API_VERSION)).toFixed(3)} µs/call`);

const vm = ioctl(kvm, KVM.CREATE_VM);
ioctl(vm, KVM.CREATE_IRQCHIP);
const level = new Uint8Array(kvm_irq_level.size);
const dv = new DataView(level.buffer);
dv.setUint32(kvm_irq_level.fields.irq!.offset, 5, true);
const line = perCall(50_000, () => {
  dv.setUint32(kvm_irq_level.fields.level!.offset, 1, true);
  ioctlBuf(vm, KVM.IRQ_LINE, level);
  dv.setUint32(kvm_irq_level.fields.level!.offset, 0, true);
  ioctlBuf(vm, KVM.IRQ_LINE, level);
});
console.log(`KVM_IRQ_LINE assert + deassert (GSI 5): ${line.toFixed(3)} µs per edge`);

const efd = eventfd(0, EFD_CLOEXEC);
const irqfd = new Uint8Array(kvm_irqfd.size);
const idv = new DataView(irqfd.buffer);
idv.setUint32(kvm_irqfd.fields.fd!.offset, efd, true);
idv.setUint32(kvm_irqfd.fields.gsi!.offset, 6, true);
ioctlBuf(vm, KVM.IRQFD, irqfd);
const one = new Uint8Array(new BigUint64Array([1n]).buffer);
console.log(`irqfd: eventfd write (GSI 6): ${perCall(50_000, () => write(efd, one)).toFixed(3)} µs per edge`);
close(efd);
close(vm);
close(kvm);
