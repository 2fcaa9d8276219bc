import os from 'node:os';
import { VmmError } from './errors.js';
import { MIN_MEMORY, MiB } from '../arch/x86_64/layout.js';
import { formatSize } from './size.js';

export type EngineChoice = 'auto' | 'kvm' | 'soft';

/** The machine: CPUs, memory, engine (Firecracker's machine-config, plus our engine choice). */
export interface MachineConfig {
  vcpuCount: number;
  memBytes: number;
  engine: EngineChoice;
}

/** What to boot (Firecracker's boot-source). */
export interface BootSourceConfig {
  kernelPath: string;
  initrdPath?: string;
  /** Kernel command line; the default is DEFAULT_CMDLINE. */
  cmdline?: string;
}

/** The entropy device (Firecracker's /entropy): virtio-rng fed from the host's crypto randomness. */
export interface EntropyConfig {
  /** Bytes per second the guest may draw (token bucket); default 1 MiB/s. */
  rateBytesPerSec?: number;
}

/** A virtio-blk disk backed by a raw image file (Firecracker's /drives/{drive_id}). */
export interface DriveConfig {
  /** Unique among the VM's drives; the guest reads its first 20 bytes with GET_ID. */
  id: string;
  /** Raw image on the host; its size must be a whole number of 512-byte sectors. */
  pathOnHost: string;
  /** Attach read-only: the guest sees VIRTIO_BLK_F_RO and every write fails. */
  readOnly: boolean;
}

/** Devices beyond the fixed legacy set. */
export interface DevicesConfig {
  entropy?: EntropyConfig;
  /** Disks, in slot order. */
  drives?: DriveConfig[];
  nets?: NetConfig[];
  vsock?: VsockConfig;
}

/** A virtio-net NIC on an existing host TAP device (Firecracker's network-interfaces). */
export interface NetConfig {
  id: string;
  /** Name of a TAP device the host admin created (`ip tuntap add dev NAME mode tap`). */
  tap: string;
  /** Guest MAC, aa:bb:cc:dd:ee:ff; a random locally administered one when absent. */
  mac?: string;
}

/** virtio-vsock with Firecracker's host side: a Unix socket at `udsPath` (CONNECT <port>). */
export interface VsockConfig {
  /** Guest context id, 3 .. 2^32 - 2. */
  cid: number;
  udsPath: string;
}

const MAC_PATTERN = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;
const TAP_NAME_PATTERN = /^[^\s/]{1,15}$/;

export function validateNet(n: NetConfig): void {
  if (typeof n.id !== 'string' || !DRIVE_ID_PATTERN.test(n.id)) {
    throw new VmmError('invalid-config', `network interface id "${String(n.id)}" must be 1 to 64 letters, digits, '_' or '-'`);
  }
  if (typeof n.tap !== 'string' || !TAP_NAME_PATTERN.test(n.tap)) {
    throw new VmmError('invalid-config', `network interface ${n.id}: "${String(n.tap)}" is not a TAP device name (1 to 15 characters, no spaces or '/')`);
  }
  if (n.mac !== undefined) {
    if (!MAC_PATTERN.test(n.mac)) throw new VmmError('invalid-config', `network interface ${n.id}: MAC "${n.mac}" is not six hex bytes separated by ':'`);
    // Bit 0 of the first octet marks a multicast address (IEEE 802), which no NIC may own.
    if (parseInt(n.mac.slice(0, 2), 16) & 1) throw new VmmError('invalid-config', `network interface ${n.id}: MAC ${n.mac} is a multicast address`);
  }
}

export function validateVsock(v: VsockConfig): void {
  if (!Number.isInteger(v.cid) || v.cid < 3 || v.cid > 0xffff_fffe) {
    throw new VmmError('invalid-config', `vsock guest CID ${v.cid} is out of range (3 to 4294967294; 0-2 are reserved)`);
  }
  if (typeof v.udsPath !== 'string' || v.udsPath === '') throw new VmmError('invalid-config', 'vsock: a Unix socket path (uds) is required');
}

/** Drive ids: letters, digits, '_' and '-' (what Firecracker accepts, plus '-'), at most 64. */
export const DRIVE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Checks a drive's fields (not the file: see Vmm.configureDrive); throws a VmmError naming the bad value. */
export function validateDrive(d: DriveConfig): void {
  if (typeof d.id !== 'string' || !DRIVE_ID_PATTERN.test(d.id)) {
    throw new VmmError('invalid-config', `drive id "${String(d.id)}" must be 1 to 64 letters, digits, '_' or '-'`);
  }
  if (typeof d.pathOnHost !== 'string' || d.pathOnHost === '') throw new VmmError('invalid-config', `drive ${d.id}: a host path to a raw image is required`);
  if (typeof d.readOnly !== 'boolean') throw new VmmError('invalid-config', `drive ${d.id}: readOnly must be true or false`);
}

export interface VmConfig {
  machine: MachineConfig;
  boot?: BootSourceConfig;
  devices?: DevicesConfig;
}

export const DEFAULT_MACHINE: MachineConfig = { vcpuCount: 1, memBytes: 512 * MiB, engine: 'auto' };

/**
 * Serial console on COM1; reboot through the ACPI reset register (the VMM
 * sees it and exits); on panic, reboot after 1 s so a dead guest ends the VM.
 */
export const DEFAULT_CMDLINE = 'console=ttyS0 reboot=acpi panic=1';

/** The most vCPUs the machine model describes (MADT xAPIC entries carry 8-bit APIC IDs). */
export const MAX_VCPUS = 255;

/** Checks a machine configuration; throws a VmmError naming the bad value. */
export function validateMachine(m: MachineConfig, hostMemBytes = os.totalmem()): void {
  if (!Number.isInteger(m.vcpuCount) || m.vcpuCount < 1) {
    throw new VmmError('invalid-config', `vCPU count must be at least 1 (got ${m.vcpuCount})`);
  }
  if (m.vcpuCount > MAX_VCPUS) {
    throw new VmmError('invalid-config', `vCPU count ${m.vcpuCount} is above the machine's limit of ${MAX_VCPUS}`);
  }
  if (!Number.isSafeInteger(m.memBytes)) {
    throw new VmmError('invalid-config', `memory size ${m.memBytes} is not a whole number of bytes that can be represented exactly`);
  }
  if (m.memBytes < MIN_MEMORY) {
    throw new VmmError('invalid-config', `memory must be at least ${formatSize(MIN_MEMORY)} (got ${formatSize(Math.max(0, m.memBytes))})`);
  }
  if (m.memBytes % 4096 !== 0) {
    throw new VmmError('invalid-config', `memory must be a multiple of 4 KiB (got ${m.memBytes} bytes)`);
  }
  if (m.memBytes > hostMemBytes) {
    throw new VmmError('invalid-config', `memory ${formatSize(m.memBytes)} is more than this host has (${formatSize(hostMemBytes)})`);
  }
  if (!['auto', 'kvm', 'soft'].includes(m.engine)) {
    throw new VmmError('invalid-config', `unknown engine "${String(m.engine)}" (choose auto, kvm or soft)`);
  }
}
