/**
 * virtio-mmio transport, version 2 (virtio 1.2 §4.2), as a BusDevice for the
 * MMIO bus. One instance per device slot (layout.ts: MMIO_START +
 * n * MMIO_SLOT_SIZE, found by Linux through ACPI "LNRO0005").
 *
 * The transport owns the registers, feature negotiation, the status state
 * machine and the queues' configuration; the device owns the requests.
 * Two paths are kept narrow so an engine can bypass the register file:
 * - driver → device: a QueueNotify write becomes `notifyQueue(index)`. Under
 *   KVM an ioeventfd on base + VIRTIO_MMIO_QUEUE_NOTIFY (datamatch = queue
 *   index) can call it without the write ever exiting to the VMM.
 * - device → driver: `VirtioInterrupt.trigger` sets the InterruptStatus bit and
 *   pulses the IrqLine, which under KVM can be an irqfd.
 *
 * Interrupts are edges (the ACPI node declares them edge/active-high): one
 * edge per trigger. Linux's vm_interrupt reads InterruptStatus, acks exactly
 * those bits, then scans the rings, so an edge raised while the status bit is
 * still set is harmless and a buffer used after the ack gets its own edge.
 */
import type { BusDevice, IrqLine } from '../bus/index.js';
import { pulse } from '../bus/index.js';
import { DeviceStateError, StateReader } from '../devices/legacy/common.js';
import type { GuestMemory } from '../memory/index.js';
import {
  STATUS_ACKNOWLEDGE,
  STATUS_DEVICE_NEEDS_RESET,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FAILED,
  STATUS_FEATURES_OK,
  VIRTIO_F_EVENT_IDX,
  VIRTIO_F_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  type VirtioActivation,
  type VirtioDevice,
  type VirtioInterrupt,
} from './device.js';
import { Virtqueue, type VirtqueueState } from './queue.js';

// Register offsets (§4.2.2, table "MMIO Device Register Layout"). R = read-only, W = write-only.
/** R: 0x74726976, "virt". */
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
/** R: 2 for the non-legacy transport. */
export const VIRTIO_MMIO_VERSION = 0x004;
/** R: device type (§5). */
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
/** R: subsystem vendor ID. */
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
/** R: 32 device feature bits, window chosen by DeviceFeaturesSel. */
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
/** W: device feature window (0 = bits 0–31, 1 = bits 32–63). */
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
/** W: 32 driver (accepted) feature bits, window chosen by DriverFeaturesSel. */
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
/** W: driver feature window. */
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
/** W: selects the queue the Queue* registers apply to. */
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
/** R: maximum size of the selected queue, 0 if it does not exist. */
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
/** W: size of the selected queue. */
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
/** RW: the selected queue is ready. */
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
/** W: available-buffer notification; the value is the queue index. */
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
/** R: pending interrupt reasons. */
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
/** W: acknowledges interrupt reasons. */
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
/** RW: device status (§2.1); writing 0 resets the device. */
export const VIRTIO_MMIO_STATUS = 0x070;
/** W: descriptor area address, low/high word. */
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
/** W: driver area (available ring) address, low/high word. */
export const VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094;
/** W: device area (used ring) address, low/high word. */
export const VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4;
/** W: shared memory region selector. */
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
/** R: selected shared memory region length and base, low/high words; all ones = no such region. */
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
/** RW: per-queue reset, only with VIRTIO_F_RING_RESET (not offered: reads 0). */
export const VIRTIO_MMIO_QUEUE_RESET = 0x0c0;
/** R: changes whenever the configuration space may have changed. */
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
/** Device-specific configuration space starts here. */
export const VIRTIO_MMIO_CONFIG = 0x100;

/** "virt" in little-endian ASCII (§4.2.2). */
export const VIRTIO_MMIO_MAGIC = 0x7472_6976;
/** The non-legacy register layout (§4.2.2; version 1 is the legacy one of §4.2.4). */
export const VIRTIO_MMIO_VERSION_2 = 2;
/** Our subsystem vendor ID: "tpvt" in little-endian ASCII; drivers ignore it. */
export const VIRTIO_MMIO_VENDOR = 0x7476_7074;

/** InterruptStatus bit 0: a used buffer was added to some queue. */
export const VIRTIO_MMIO_INT_VRING = 1;
/** InterruptStatus bit 1: the device configuration changed. */
export const VIRTIO_MMIO_INT_CONFIG = 2;
const INT_MASK = VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG;

/** Status bits the driver may set; DEVICE_NEEDS_RESET belongs to the device. */
const DRIVER_STATUS_BITS = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK | STATUS_FAILED;
const ALL_STATUS_BITS = DRIVER_STATUS_BITS | STATUS_DEVICE_NEEDS_RESET;

/** Feature windows: DeviceFeaturesSel/DriverFeaturesSel 0 and 1 cover the 64 defined bits. */
const FEATURE_WINDOWS = 2;

export interface VirtioMmioOptions {
  memory: GuestMemory;
  /** The slot's interrupt (a GSI), pulsed once per notification. */
  irq: IrqLine;
  /** Told why the device entered DEVICE_NEEDS_RESET (for logs and metrics). */
  onNeedsReset?: (reason: string) => void;
}

/** Plain-object state of the transport (and, in `device`, of the device behind it). */
export interface VirtioMmioState {
  status: number;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  driverFeaturesLow: number;
  driverFeaturesHigh: number;
  queueSel: number;
  interruptStatus: number;
  configGeneration: number;
  queues: VirtqueueState[];
  device?: unknown;
}

const u32 = (v: number): number => v >>> 0;
const low32 = (v: bigint): number => Number(v & 0xffff_ffffn);
const high32 = (v: bigint): number => Number((v >> 32n) & 0xffff_ffffn);
const join64 = (low: number, high: number): bigint => (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);

export class VirtioMmioTransport implements BusDevice {
  readonly queues: readonly Virtqueue[];
  /** Features offered: the device's plus VIRTIO_F_VERSION_1. */
  readonly deviceFeatures: bigint;

  private readonly memory: GuestMemory;
  private readonly irq: IrqLine;
  private readonly onNeedsReset: ((reason: string) => void) | undefined;
  private status = 0;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private driverFeatures = 0n;
  private queueSel = 0;
  private interruptStatus = 0;
  private configGeneration = 0;
  /** Bumped on every reset: notifications from a previous activation are dropped. */
  private epoch = 0;

  constructor(
    readonly device: VirtioDevice,
    options: VirtioMmioOptions,
  ) {
    this.memory = options.memory;
    this.irq = options.irq;
    this.onNeedsReset = options.onNeedsReset;
    this.deviceFeatures = BigInt.asUintN(64, device.features) | VIRTIO_F_VERSION_1;
    this.queues = device.queueMaxSizes.map((max) => {
      const q = new Virtqueue(max);
      q.onError = (e) => this.enterNeedsReset(e.message);
      return q;
    });
  }

  /** Current device status (§2.1). */
  get deviceStatus(): number {
    return this.status;
  }

  /** Features the driver accepted (meaningful once FEATURES_OK is set). */
  get negotiatedFeatures(): bigint {
    return this.driverFeatures;
  }

  /** True between DRIVER_OK and the next reset, unless the device needs a reset. */
  get activated(): boolean {
    return (this.status & (STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED)) === STATUS_DRIVER_OK;
  }

  read(offset: number, data: Uint8Array): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      data.fill(0);
      this.guard(() => this.device.readConfig(offset - VIRTIO_MMIO_CONFIG, data));
      return;
    }
    // §4.2.2.2: registers are accessed 32 bits wide and aligned; anything else reads as 0.
    const value = data.length === 4 && offset % 4 === 0 ? this.readRegister(offset) : 0;
    for (let i = 0; i < data.length; i++) data[i] = data.length === 4 ? (value >>> (8 * i)) & 0xff : 0;
  }

  write(offset: number, data: Uint8Array): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      this.guard(() => this.device.writeConfig(offset - VIRTIO_MMIO_CONFIG, data));
      return;
    }
    // §4.2.2.2: other widths or misaligned register writes are ignored.
    if (data.length !== 4 || offset % 4 !== 0) return;
    const value = u32(data[0]! | (data[1]! << 8) | (data[2]! << 16) | (data[3]! << 24));
    this.writeRegister(offset, value);
  }

  private selected(): Virtqueue | undefined {
    return this.queues[this.queueSel];
  }

  private readRegister(offset: number): number {
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return VIRTIO_MMIO_VERSION_2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.device.deviceType;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        if (this.deviceFeaturesSel === 0) return low32(this.deviceFeatures);
        if (this.deviceFeaturesSel === 1) return high32(this.deviceFeatures);
        return 0;
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return this.selected()?.maxSize ?? 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return this.selected()?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return this.status;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
      case VIRTIO_MMIO_SHM_BASE_LOW:
      case VIRTIO_MMIO_SHM_BASE_HIGH:
        // No shared memory regions: length and base read as all ones (§4.2.2).
        return 0xffff_ffff;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return this.configGeneration;
      default:
        // Write-only and reserved registers read as 0.
        return 0;
    }
  }

  /** Queue configuration is writable after FEATURES_OK and before DRIVER_OK (§3.1.1 step 7, §4.2.3.2). */
  private queueConfigurable(): boolean {
    const s = this.status;
    return (s & STATUS_FEATURES_OK) !== 0 && (s & (STATUS_DRIVER_OK | STATUS_FAILED | STATUS_DEVICE_NEEDS_RESET)) === 0;
  }

  private writeRegister(offset: number, value: number): void {
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = value;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = value;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        // Features are fixed once FEATURES_OK is set (§3.1.1 steps 5–6); windows past bit 63 do not exist.
        if (this.status & STATUS_FEATURES_OK || this.driverFeaturesSel >= FEATURE_WINDOWS) return;
        if (this.driverFeaturesSel === 0) this.driverFeatures = join64(value, high32(this.driverFeatures));
        else this.driverFeatures = join64(low32(this.driverFeatures), value);
        return;
      case VIRTIO_MMIO_QUEUE_SEL:
        this.queueSel = value;
        return;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        this.notifyQueue(value);
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~value & INT_MASK;
        return;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(value);
        return;
    }
    const q = this.selected();
    if (!q || !this.queueConfigurable()) return;
    if (offset === VIRTIO_MMIO_QUEUE_READY) {
      q.ready = (value & 1) === 1;
      return;
    }
    // §4.2.2.2: while QueueReady is set the driver must not change the queue; such writes are ignored.
    if (q.ready) return;
    switch (offset) {
      case VIRTIO_MMIO_QUEUE_NUM:
        q.size = value; // checked at DRIVER_OK, against QueueNumMax and the power-of-2 rule
        return;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
        q.descLow = value;
        return;
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        q.descHigh = value;
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
        q.availLow = value;
        return;
      case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
        q.availHigh = value;
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
        q.usedLow = value;
        return;
      case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
        q.usedHigh = value;
        return;
    }
  }

  /**
   * Status writes (§2.1, §3.1.1). 0 resets. Otherwise the driver may only add
   * bits, in order: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK (FAILED at
   * any time); a write that clears a bit or skips a step is ignored.
   * FEATURES_OK is refused (left clear for the driver to see, §3.1.1 step 6)
   * when the accepted features are not acceptable; DRIVER_OK activates.
   */
  private writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    const current = this.status & DRIVER_STATUS_BITS;
    // The driver writes back what it read, possibly with DEVICE_NEEDS_RESET; that bit is ours.
    const wanted = value & DRIVER_STATUS_BITS;
    if ((wanted & current) !== current) return; // §2.1.1: the driver must not clear a status bit
    const added = wanted & ~current;
    if (added === 0) return;
    const has = (bit: number): boolean => (wanted & bit) !== 0;
    if (has(STATUS_DRIVER) && !has(STATUS_ACKNOWLEDGE)) return;
    if (has(STATUS_FEATURES_OK) && !has(STATUS_DRIVER)) return;
    if (has(STATUS_DRIVER_OK) && !has(STATUS_FEATURES_OK)) return;
    let next = this.status | added;
    if (added & STATUS_FEATURES_OK && !this.featuresAcceptable()) {
      next &= ~(STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    }
    this.status = next;
    if (added & STATUS_DRIVER_OK && next & STATUS_DRIVER_OK && !(next & (STATUS_FAILED | STATUS_DEVICE_NEEDS_RESET))) {
      this.activate();
    }
  }

  /**
   * §2.2.1: the driver accepts only offered features. §6.1: a driver must
   * accept VIRTIO_F_VERSION_1 when offered, and the version-2 transport
   * offers it always (Linux's virtio_mmio refuses v2 devices without it).
   */
  private featuresAcceptable(): boolean {
    const f = this.driverFeatures;
    return (f & ~this.deviceFeatures) === 0n && (f & VIRTIO_F_VERSION_1) !== 0n;
  }

  private activate(): void {
    const features = { indirect: (this.driverFeatures & VIRTIO_F_INDIRECT_DESC) !== 0n, eventIdx: (this.driverFeatures & VIRTIO_F_EVENT_IDX) !== 0n };
    for (const q of this.queues) {
      if (!q.activate(this.memory, features)) return; // onError already set DEVICE_NEEDS_RESET
    }
    this.guard(() => this.device.activate(this.activation()));
  }

  /** The capabilities handed to the device, valid until the next reset. */
  private activation(): VirtioActivation {
    const epoch = this.epoch;
    const interrupt: VirtioInterrupt = {
      trigger: (kind) => {
        if (epoch === this.epoch) this.raise(kind === 'used' ? VIRTIO_MMIO_INT_VRING : VIRTIO_MMIO_INT_CONFIG);
      },
    };
    return {
      memory: this.memory,
      queues: this.queues,
      features: this.driverFeatures,
      interrupt,
      needsReset: (reason) => {
        if (epoch === this.epoch) this.enterNeedsReset(reason);
      },
    };
  }

  private raise(bit: number): void {
    if (!(this.status & STATUS_DRIVER_OK)) return;
    if (bit === VIRTIO_MMIO_INT_CONFIG) this.configGeneration = u32(this.configGeneration + 1);
    this.interruptStatus |= bit;
    pulse(this.irq);
  }

  /**
   * §2.1.2: the device sets DEVICE_NEEDS_RESET when it cannot go on, and if
   * DRIVER_OK is set it must then send a configuration change notification.
   * All queues stop handing out chains until the driver resets the device.
   */
  private enterNeedsReset(reason: string): void {
    if (this.status & STATUS_DEVICE_NEEDS_RESET) return;
    this.status |= STATUS_DEVICE_NEEDS_RESET;
    for (const q of this.queues) q.halt();
    this.onNeedsReset?.(reason);
    this.raise(VIRTIO_MMIO_INT_CONFIG);
  }

  /**
   * The driver notified queue `index` (a QueueNotify write, or its
   * ioeventfd). Ignored unless the device is activated and the queue ready
   * (§4.2.2.1: no queue access while QueueReady is 0).
   */
  notifyQueue(index: number): void {
    if (!this.activated) return;
    const q = this.queues[index];
    if (!q || !q.active) return;
    this.guard(() => this.device.processQueue(index));
  }

  /**
   * The writes an engine may catch without an exit (KVM ioeventfd): a
   * 4-byte write of `value` at `offset` in this device's window notifies
   * `queue`; deliver it with `notifyQueue(queue)`.
   */
  queueNotifiers(): readonly { offset: number; length: 4; value: number; queue: number }[] {
    return this.queues.map((_, i) => ({ offset: VIRTIO_MMIO_QUEUE_NOTIFY, length: 4, value: i, queue: i }));
  }

  /** Device reset (§2.4, §4.2.2.1): status, features, interrupt status and every queue back to their initial state. */
  reset(): void {
    this.epoch++;
    this.guard(() => this.device.reset());
    for (const q of this.queues) q.reset();
    this.status = 0;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    this.driverFeatures = 0n;
    this.interruptStatus = 0;
    this.irq.set(false);
  }

  /** Runs device code; a throw is a device fault, reported as DEVICE_NEEDS_RESET rather than reaching the bus. */
  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.enterNeedsReset(`device fault: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  saveState(): VirtioMmioState {
    const s: VirtioMmioState = {
      status: this.status,
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      driverFeaturesLow: low32(this.driverFeatures),
      driverFeaturesHigh: high32(this.driverFeatures),
      queueSel: this.queueSel,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      queues: this.queues.map((q) => q.saveState()),
    };
    if (this.device.saveState) s.device = this.device.saveState();
    return s;
  }

  /**
   * Restores `saveState` output into a transport built for the same device
   * type; re-activates the device if the saved one was running. Throws
   * DeviceStateError on a malformed state: before changing anything when the
   * transport part is bad, leaving the transport reset when the device part is.
   */
  restoreState(state: VirtioMmioState): void {
    const r = new StateReader('virtio-mmio', state);
    const U32 = 0xffff_ffff;
    const s: VirtioMmioState = {
      status: r.int('status', 0xff, ALL_STATUS_BITS),
      deviceFeaturesSel: r.int('deviceFeaturesSel', U32),
      driverFeaturesSel: r.int('driverFeaturesSel', U32),
      driverFeaturesLow: r.int('driverFeaturesLow', U32),
      driverFeaturesHigh: r.int('driverFeaturesHigh', U32),
      queueSel: r.int('queueSel', U32),
      interruptStatus: r.int('interruptStatus', INT_MASK, INT_MASK),
      configGeneration: r.int('configGeneration', U32),
      queues: [],
    };
    const rawQueues: unknown = (state as unknown as Record<string, unknown>).queues;
    if (!Array.isArray(rawQueues) || rawQueues.length !== this.queues.length) r.fail('queues', `must be an array of ${this.queues.length} queue states`);
    s.queues = (rawQueues as unknown[]).map((q, i) => {
      const qr = new StateReader(`virtio-mmio queue ${i}`, q);
      return {
        size: qr.int('size', U32),
        ready: qr.bool('ready'),
        descLow: qr.int('descLow', U32),
        descHigh: qr.int('descHigh', U32),
        availLow: qr.int('availLow', U32),
        availHigh: qr.int('availHigh', U32),
        usedLow: qr.int('usedLow', U32),
        usedHigh: qr.int('usedHigh', U32),
        nextAvail: qr.int('nextAvail', 0xffff),
        nextUsed: qr.int('nextUsed', 0xffff),
        signalledUsed: qr.int('signalledUsed', 0xffff),
      };
    });
    const features = join64(s.driverFeaturesLow, s.driverFeaturesHigh);
    if (s.status & STATUS_FEATURES_OK && ((features & ~this.deviceFeatures) !== 0n || (features & VIRTIO_F_VERSION_1) === 0n)) {
      r.fail('driverFeatures', 'were not acceptable but FEATURES_OK is set');
    }

    this.reset();
    this.status = s.status;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.driverFeatures = features;
    this.queueSel = s.queueSel;
    this.interruptStatus = s.interruptStatus;
    this.configGeneration = s.configGeneration;
    this.queues.forEach((q, i) => q.restoreState(s.queues[i]!));
    const deviceState: unknown = (state as unknown as Record<string, unknown>).device;
    if (deviceState !== undefined && this.device.restoreState) {
      try {
        this.device.restoreState(deviceState);
      } catch (e) {
        this.reset();
        if (e instanceof DeviceStateError) throw e;
        throw new DeviceStateError(`virtio-mmio: device state: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    if (this.status & STATUS_DEVICE_NEEDS_RESET) {
      for (const q of this.queues) q.halt();
    } else if (this.activated) {
      this.activate();
    }
  }
}
