import type { Bus } from '../bus/index.js';
import type { EngineVm } from '../engine/engine.js';
import type { GuestMemory } from '../memory/index.js';
import { IRQ_COM1, IRQ_DEVICE_FIRST, IRQ_DEVICE_LAST, IRQ_KEYBOARD, IRQ_RTC, MMIO_SLOTS, MMIO_SLOT_SIZE, MMIO_START } from '../arch/x86_64/layout.js';
import { virtioMmioAml, type Aml } from '../acpi/index.js';
import { VirtioMmioTransport, type VirtioDevice } from '../virtio/index.js';
import { VmmError } from './errors.js';

interface Slot {
  index: number;
  base: number;
  gsi: number;
  name: string;
  device: VirtioDevice;
  transport?: VirtioMmioTransport;
}

/**
 * ISA IRQs the legacy devices declare in the DSDT. Their Linux drivers
 * request them exclusively (rtc_cmos asks for IRQ 8 without IRQF_SHARED), so
 * a virtio device on the same GSI fails to probe with -EBUSY.
 */
const LEGACY_IRQS: readonly number[] = [IRQ_KEYBOARD, IRQ_COM1, IRQ_RTC];

/** The GSIs virtio-mmio devices get, in slot order: the device range without the legacy devices' IRQs. */
export const VIRTIO_GSIS: readonly number[] = Array.from({ length: IRQ_DEVICE_LAST - IRQ_DEVICE_FIRST + 1 }, (_, i) => IRQ_DEVICE_FIRST + i)
  .filter((gsi) => !LEGACY_IRQS.includes(gsi));

/** How many virtio-mmio devices fit: one slot and one IOAPIC pin each. */
export const MAX_VIRTIO_DEVICES = Math.min(MMIO_SLOTS, VIRTIO_GSIS.length);

/**
 * The machine's virtio-mmio slots. Devices are planned before the VM exists
 * (their DSDT entries go into ACPI), then attached once the engine can hand
 * out interrupt lines: slot n sits at MMIO_START + n * 4 KiB with GSI
 * VIRTIO_GSIS[n].
 */
export class VirtioSlots {
  private readonly slots: Slot[] = [];

  add(name: string, device: VirtioDevice): void {
    const index = this.slots.length;
    if (index >= MAX_VIRTIO_DEVICES) throw new VmmError('invalid-config', `too many virtio devices: the machine has ${MAX_VIRTIO_DEVICES} slots`);
    this.slots.push({ index, base: MMIO_START + index * MMIO_SLOT_SIZE, gsi: VIRTIO_GSIS[index]!, name, device });
  }

  /** One LNRO0005 node per device, for the DSDT. */
  aml(): Aml[] {
    return this.slots.map((s) => virtioMmioAml({ uid: s.index, base: s.base, size: MMIO_SLOT_SIZE, gsi: s.gsi }));
  }

  attach(mmio: Bus, vm: EngineVm, memory: GuestMemory, log: (line: string) => void): void {
    for (const s of this.slots) {
      s.transport = new VirtioMmioTransport(s.device, {
        memory,
        irq: vm.irqLine(s.gsi),
        onNeedsReset: (reason) => log(`${s.name}: device needs reset: ${reason}`),
      });
      mmio.insert(s.transport, s.base, MMIO_SLOT_SIZE, s.name);
      // QueueNotify writes that the engine can take without a vCPU exit
      // (KVM: ioeventfd); any other write still arrives through `mmio`.
      if (vm.addMmioNotifier) {
        const transport = s.transport;
        for (const n of transport.queueNotifiers()) {
          vm.addMmioNotifier(s.base + n.offset, n.length, n.value, () => transport.notifyQueue(n.queue));
        }
      }
    }
  }

  list(): readonly { name: string; base: number; gsi: number }[] {
    return this.slots.map(({ name, base, gsi }) => ({ name, base, gsi }));
  }

  /** Resets every device (cancels timers, drops pending work) when the VM ends. */
  reset(): void {
    for (const s of this.slots) s.transport?.reset();
  }
}
