/**
 * The contract between a virtio device (blk, net, rng, vsock, …) and the
 * transport that presents it to the guest (virtio-mmio here; virtio-pci could
 * be another). The device never sees registers; the transport never sees
 * requests.
 */
import type { GuestMemory } from '../memory/index.js';
import type { Virtqueue } from './queue.js';

// Device status bits (virtio 1.2 §2.1).
/** The guest OS has found the device. */
export const STATUS_ACKNOWLEDGE = 1;
/** The guest OS knows how to drive the device. */
export const STATUS_DRIVER = 2;
/** The driver is set up and ready to drive the device. */
export const STATUS_DRIVER_OK = 4;
/** The driver has acknowledged the features it understands; negotiation is complete. */
export const STATUS_FEATURES_OK = 8;
/** The device hit an error it cannot recover from without a reset (set by the device only). */
export const STATUS_DEVICE_NEEDS_RESET = 64;
/** The driver gave up on the device. */
export const STATUS_FAILED = 128;

// Reserved feature bits (virtio 1.2 §6), as bigints: the feature space is 64 bits wide.
/** Descriptors may point to indirect tables (§2.7.5.3). */
export const VIRTIO_F_INDIRECT_DESC = 1n << 28n;
/** used_event / avail_event notification suppression (§2.7.7, §2.7.10). */
export const VIRTIO_F_EVENT_IDX = 1n << 29n;
/** Compliance with virtio 1.0+; required by the version-2 MMIO transport. */
export const VIRTIO_F_VERSION_1 = 1n << 32n;
/** Ring features the queue implementation supports for every device. */
export const VIRTIO_RING_FEATURES = VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX;

// Device IDs (virtio 1.2 §5).
export const VIRTIO_ID_NET = 1;
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_CONSOLE = 3;
export const VIRTIO_ID_RNG = 4;
export const VIRTIO_ID_VSOCK = 19;

/**
 * How a device notifies the driver. The transport records the reason where
 * the driver reads it (MMIO InterruptStatus) and raises the interrupt; on
 * KVM the line behind it can be an irqfd, so no exit is involved.
 */
export interface VirtioInterrupt {
  trigger(kind: 'used' | 'config'): void;
}

/** What a device receives at DRIVER_OK. */
export interface VirtioActivation {
  readonly memory: GuestMemory;
  /** One per `queueMaxSizes` entry; queues the driver did not make ready stay inactive. */
  readonly queues: readonly Virtqueue[];
  /** Negotiated feature bits. */
  readonly features: bigint;
  readonly interrupt: VirtioInterrupt;
  /**
   * Declares the device broken until the driver resets it
   * (DEVICE_NEEDS_RESET, §2.1.2); the transport stops all queues and sends a
   * configuration change notification.
   */
  needsReset(reason: string): void;
}

/**
 * A virtio device as a state machine. All methods are called on the thread
 * that owns the device; none may throw for anything the guest controls (the
 * transport still catches and turns a throw into DEVICE_NEEDS_RESET).
 */
export interface VirtioDevice {
  /** Device ID (§5). */
  readonly deviceType: number;
  /** Maximum size of each queue (powers of 2); the length is the number of queues. */
  readonly queueMaxSizes: readonly number[];
  /** Feature bits offered: device-specific ones plus any of VIRTIO_RING_FEATURES (the transport adds VIRTIO_F_VERSION_1). */
  readonly features: bigint;
  /** Reads device configuration space (§2.5) at `offset`; bytes beyond it read as 0. */
  readConfig(offset: number, data: Uint8Array): void;
  /** Writes device configuration space; writes to read-only or absent fields are ignored. */
  writeConfig(offset: number, data: Uint8Array): void;
  /** The driver set DRIVER_OK: start serving the queues. */
  activate(activation: VirtioActivation): void;
  /** The driver notified queue `index` (only after activate, only for a ready queue). */
  processQueue(index: number): void;
  /** Device reset (§2.4): drop the activation, cancel timers, forget per-driver state. */
  reset(): void;
  /** Device-specific state for snapshots (a plain object). */
  saveState?(): unknown;
  /** Restores `saveState` output; called before `activate` when the restored device was running. Throws on a malformed state. */
  restoreState?(state: unknown): void;
}
