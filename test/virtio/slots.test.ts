/**
 * The machine's virtio-mmio slots (src/vmm/virtio-devices.ts): GSIs never
 * shared with a legacy device's IRQ. Linux's rtc_cmos takes IRQ 8
 * exclusively; a fourth virtio device there failed to probe (-EBUSY), which
 * Debian's kernel showed as "genirq: Flags mismatch irq 8".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, type IrqLine } from '../../src/bus/index.js';
import type { EngineVm, VmStop } from '../../src/engine/engine.js';
import { allocateGuestMemory, heapBacking } from '../../src/memory/index.js';
import { IOAPIC_PINS, IRQ_COM1, IRQ_KEYBOARD, IRQ_RTC, MMIO_SLOT_SIZE, MMIO_START } from '../../src/arch/x86_64/layout.js';
import { VirtioRng } from '../../src/virtio/index.js';
import { MAX_VIRTIO_DEVICES, VIRTIO_GSIS, VirtioSlots } from '../../src/vmm/virtio-devices.js';
import { VmmError } from '../../src/vmm/errors.js';

/** An EngineVm that records which GSIs were asked for. */
function recordingVm(): { vm: EngineVm; gsis: number[] } {
  const gsis: number[] = [];
  const line: IrqLine = { set: () => {} };
  const vm: EngineVm = {
    irqLine: (gsi) => {
      gsis.push(gsi);
      return line;
    },
    run: () => new Promise<VmStop>(() => {}),
    requestStop: () => {},
    pause: async () => {},
    resume: () => {},
    stats: () => ({}),
    close: async () => {},
  };
  return { vm, gsis };
}

function fullSlots(): VirtioSlots {
  const slots = new VirtioSlots();
  for (let i = 0; i < MAX_VIRTIO_DEVICES; i++) slots.add(`rng${i}`, new VirtioRng());
  return slots;
}

test('vmm/virtio slots: no device shares a GSI with the keyboard, COM1 or the RTC', () => {
  const listed = fullSlots().list();
  assert.equal(listed.length, MAX_VIRTIO_DEVICES);
  for (const s of listed) {
    assert.ok(![IRQ_KEYBOARD, IRQ_COM1, IRQ_RTC].includes(s.gsi), `${s.name} is on GSI ${s.gsi}, a legacy device's IRQ`);
    assert.ok(s.gsi >= 0 && s.gsi < IOAPIC_PINS, `${s.name}: GSI ${s.gsi} is an IOAPIC pin`);
  }
  assert.equal(new Set(listed.map((s) => s.gsi)).size, listed.length, 'each device has its own GSI');
});

test('vmm/virtio slots: the fourth device (the first past GSI 7) skips IRQ 8', () => {
  const gsis = fullSlots().list().map((s) => s.gsi);
  assert.deepEqual(gsis.slice(0, 5), [5, 6, 7, 9, 10]);
  assert.deepEqual(gsis, [...VIRTIO_GSIS].slice(0, MAX_VIRTIO_DEVICES));
});

test('vmm/virtio slots: slot n sits at MMIO_START + n × 4 KiB, and attach wires each device to its own GSI', () => {
  const slots = fullSlots();
  const listed = slots.list();
  listed.forEach((s, n) => assert.equal(s.base, MMIO_START + n * MMIO_SLOT_SIZE, s.name));
  const { vm, gsis } = recordingVm();
  slots.attach(new Bus('mmio'), vm, allocateGuestMemory([{ base: 0, size: 0x10_0000 }], heapBacking), () => {});
  assert.deepEqual(gsis, listed.map((s) => s.gsi));
});

test('vmm/virtio slots: one device past the last free GSI is refused by name', () => {
  const slots = fullSlots();
  assert.throws(() => slots.add('one-too-many', new VirtioRng()), (e: unknown) => {
    assert.ok(e instanceof VmmError);
    assert.equal(e.message, `too many virtio devices: the machine has ${MAX_VIRTIO_DEVICES} slots`);
    return true;
  });
});
