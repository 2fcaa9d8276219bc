/**
 * The JSON models of the REST API, with Firecracker's field names, and their
 * specs. Each spec's `name` is its schema in docs/api/openapi.yaml; the
 * contract test holds the two equal.
 */
import { MAX_VCPUS } from '../vmm/config.js';
import { MIN_MEMORY, MiB } from '../arch/x86_64/layout.js';
import type { AnyObjectSpec, ObjectSpec, StringSpec } from './schema.js';

/** Firecracker's token bucket: `size` tokens, refilled over `refill_time` ms, plus a one-off burst. */
export interface TokenBucket {
  size: number;
  one_time_burst?: number;
  refill_time: number;
}

export interface RateLimiter {
  bandwidth?: TokenBucket;
  ops?: TokenBucket;
}

export type EngineName = 'auto' | 'kvm' | 'soft';
export type HugePages = 'None' | 'Transparent' | '2M';
export type CpuTemplate = 'C3' | 'T2' | 'T2S' | 'T2CL' | 'T2A' | 'V1N1' | 'None';

export interface MachineConfiguration {
  vcpu_count: number;
  mem_size_mib: number;
  smt?: boolean;
  track_dirty_pages?: boolean;
  huge_pages?: HugePages;
  cpu_template?: CpuTemplate;
  /** typevisor extension: which engine runs the vCPUs. */
  engine?: EngineName;
}

export type PartialMachineConfiguration = Partial<MachineConfiguration>;

export interface BootSource {
  kernel_image_path: string;
  initrd_path?: string;
  boot_args?: string;
}

export interface Drive {
  drive_id: string;
  is_root_device: boolean;
  partuuid?: string;
  cache_type?: 'Unsafe' | 'Writeback';
  is_read_only?: boolean;
  path_on_host?: string;
  rate_limiter?: RateLimiter;
  io_engine?: 'Sync' | 'Async';
  /** vhost-user-block: not supported here, refused with a message. */
  socket?: string;
}

export interface PartialDrive {
  drive_id: string;
  path_on_host?: string;
  rate_limiter?: RateLimiter;
}

export interface NetworkInterface {
  iface_id: string;
  host_dev_name: string;
  guest_mac?: string;
  mtu?: number;
  rx_rate_limiter?: RateLimiter;
  tx_rate_limiter?: RateLimiter;
}

export interface PartialNetworkInterface {
  iface_id: string;
  rx_rate_limiter?: RateLimiter;
  tx_rate_limiter?: RateLimiter;
}

export interface Vsock {
  guest_cid: number;
  uds_path: string;
  /** Deprecated in Firecracker; accepted and dropped. */
  vsock_id?: string;
}

export interface EntropyDevice {
  rate_limiter?: RateLimiter;
}

export interface SerialDevice {
  serial_out_path?: string;
  rate_limiter?: TokenBucket;
}

export type LogLevel = 'Error' | 'Warning' | 'Info' | 'Debug' | 'Trace' | 'Off';

export interface Logger {
  log_path?: string;
  level?: LogLevel | 'Warn';
  show_level?: boolean;
  show_log_origin?: boolean;
  module?: string;
}

export interface Metrics {
  metrics_path: string;
  emit_id?: boolean;
  properties?: Record<string, string>;
}

export interface InstanceActionInfo {
  action_type: 'FlushMetrics' | 'InstanceStart' | 'SendCtrlAltDel';
}

export interface VmState {
  state: 'Paused' | 'Resumed';
}

/** The largest vCPU count the machine describes (MADT xAPIC entries). */
export const MAX_VCPU_COUNT = MAX_VCPUS;
/** The smallest guest RAM the machine boots with, in MiB. */
export const MIN_MEM_SIZE_MIB = MIN_MEMORY / MiB;
/** The most MiB whose size in bytes a JSON number (and the Vmm's byte count) still holds exactly. */
export const MAX_MEM_SIZE_MIB = Math.floor(Number.MAX_SAFE_INTEGER / MiB);
/** Linux's IFNAMSIZ (16) less the terminating NUL: the longest tap device name. */
export const MAX_IFNAME_LENGTH = 15;
/** Vsock CIDs 0-2 are reserved: hypervisor, local, host (virtio v1.2 §5.10.4). */
export const MIN_GUEST_CID = 3;
/** The guest CID field is 64-bit in virtio but Firecracker's API takes a u32. */
export const MAX_GUEST_CID = 0xffff_ffff;
/** MTU bounds Firecracker advertises through VIRTIO_NET_F_MTU: IPv4's minimum (RFC 791) to 16-bit. */
export const MIN_MTU = 68;
export const MAX_MTU = 65535;

/** Firecracker's resource IDs: letters, digits and underscores. */
export const RESOURCE_ID_PATTERN = '^[\\p{L}\\p{N}_]+$';

const id: StringSpec = { type: 'string', minLength: 1, pattern: RESOURCE_ID_PATTERN, patternText: 'an ID made of letters, digits and underscores' };
const path: StringSpec = { type: 'string', minLength: 1 };
const count = { type: 'integer', minimum: 0 } as const;

export const TOKEN_BUCKET: ObjectSpec<TokenBucket> = {
  type: 'object',
  name: 'TokenBucket',
  properties: { size: count, one_time_burst: count, refill_time: count },
  required: ['size', 'refill_time'],
};

export const RATE_LIMITER: ObjectSpec<RateLimiter> = {
  type: 'object',
  name: 'RateLimiter',
  properties: { bandwidth: TOKEN_BUCKET, ops: TOKEN_BUCKET },
  required: [],
};

const machineProperties: ObjectSpec<MachineConfiguration>['properties'] = {
  vcpu_count: { type: 'integer', minimum: 1, maximum: MAX_VCPU_COUNT },
  mem_size_mib: { type: 'integer', minimum: MIN_MEM_SIZE_MIB, maximum: MAX_MEM_SIZE_MIB },
  smt: { type: 'boolean' },
  track_dirty_pages: { type: 'boolean' },
  huge_pages: { type: 'string', enum: ['None', 'Transparent', '2M'] },
  cpu_template: { type: 'string', enum: ['C3', 'T2', 'T2S', 'T2CL', 'T2A', 'V1N1', 'None'] },
  engine: { type: 'string', enum: ['auto', 'kvm', 'soft'] },
};

export const MACHINE_CONFIGURATION: ObjectSpec<MachineConfiguration> = {
  type: 'object',
  name: 'MachineConfiguration',
  properties: machineProperties,
  required: ['vcpu_count', 'mem_size_mib'],
};

export const PARTIAL_MACHINE_CONFIGURATION: ObjectSpec<PartialMachineConfiguration> = {
  type: 'object',
  name: 'PartialMachineConfiguration',
  properties: machineProperties,
  required: [],
};

export const BOOT_SOURCE: ObjectSpec<BootSource> = {
  type: 'object',
  name: 'BootSource',
  properties: { kernel_image_path: path, initrd_path: path, boot_args: { type: 'string' } },
  required: ['kernel_image_path'],
};

export const DRIVE: ObjectSpec<Drive> = {
  type: 'object',
  name: 'Drive',
  properties: {
    drive_id: id,
    is_root_device: { type: 'boolean' },
    partuuid: { type: 'string', minLength: 1 },
    cache_type: { type: 'string', enum: ['Unsafe', 'Writeback'] },
    is_read_only: { type: 'boolean' },
    path_on_host: path,
    rate_limiter: RATE_LIMITER,
    io_engine: { type: 'string', enum: ['Sync', 'Async'] },
    socket: path,
  },
  required: ['drive_id', 'is_root_device'],
};

export const PARTIAL_DRIVE: ObjectSpec<PartialDrive> = {
  type: 'object',
  name: 'PartialDrive',
  properties: { drive_id: id, path_on_host: path, rate_limiter: RATE_LIMITER },
  required: ['drive_id'],
};

export const NETWORK_INTERFACE: ObjectSpec<NetworkInterface> = {
  type: 'object',
  name: 'NetworkInterface',
  properties: {
    iface_id: id,
    host_dev_name: { type: 'string', minLength: 1, maxLength: MAX_IFNAME_LENGTH },
    guest_mac: { type: 'string', pattern: '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$', patternText: 'a MAC address like 06:00:AC:10:00:02' },
    mtu: { type: 'integer', minimum: MIN_MTU, maximum: MAX_MTU },
    rx_rate_limiter: RATE_LIMITER,
    tx_rate_limiter: RATE_LIMITER,
  },
  required: ['iface_id', 'host_dev_name'],
};

export const PARTIAL_NETWORK_INTERFACE: ObjectSpec<PartialNetworkInterface> = {
  type: 'object',
  name: 'PartialNetworkInterface',
  properties: { iface_id: id, rx_rate_limiter: RATE_LIMITER, tx_rate_limiter: RATE_LIMITER },
  required: ['iface_id'],
};

export const VSOCK: ObjectSpec<Vsock> = {
  type: 'object',
  name: 'Vsock',
  properties: {
    guest_cid: { type: 'integer', minimum: MIN_GUEST_CID, maximum: MAX_GUEST_CID },
    uds_path: path,
    vsock_id: { type: 'string' },
  },
  required: ['guest_cid', 'uds_path'],
};

export const ENTROPY_DEVICE: ObjectSpec<EntropyDevice> = {
  type: 'object',
  name: 'EntropyDevice',
  properties: { rate_limiter: RATE_LIMITER },
  required: [],
};

export const SERIAL_DEVICE: ObjectSpec<SerialDevice> = {
  type: 'object',
  name: 'SerialDevice',
  properties: { serial_out_path: path, rate_limiter: TOKEN_BUCKET },
  required: [],
};

export const LOGGER: ObjectSpec<Logger> = {
  type: 'object',
  name: 'Logger',
  properties: {
    log_path: path,
    level: { type: 'string', enum: ['Error', 'Warning', 'Warn', 'Info', 'Debug', 'Trace', 'Off'], caseInsensitive: true },
    show_level: { type: 'boolean' },
    show_log_origin: { type: 'boolean' },
    module: { type: 'string' },
  },
  required: [],
};

export const METRICS: ObjectSpec<Metrics> = {
  type: 'object',
  name: 'Metrics',
  properties: { metrics_path: path, emit_id: { type: 'boolean' }, properties: { type: 'map', values: { type: 'string' } } },
  required: ['metrics_path'],
};

export const INSTANCE_ACTION_INFO: ObjectSpec<InstanceActionInfo> = {
  type: 'object',
  name: 'InstanceActionInfo',
  properties: { action_type: { type: 'string', enum: ['FlushMetrics', 'InstanceStart', 'SendCtrlAltDel'] } },
  required: ['action_type'],
};

export const VM_STATE: ObjectSpec<VmState> = {
  type: 'object',
  name: 'Vm',
  properties: { state: { type: 'string', enum: ['Paused', 'Resumed'] } },
  required: ['state'],
};

/** Every request model, for the contract test. */
export const REQUEST_MODELS: readonly AnyObjectSpec[] = [
  TOKEN_BUCKET, RATE_LIMITER, MACHINE_CONFIGURATION, PARTIAL_MACHINE_CONFIGURATION, BOOT_SOURCE, DRIVE, PARTIAL_DRIVE,
  NETWORK_INTERFACE, PARTIAL_NETWORK_INTERFACE, VSOCK, ENTROPY_DEVICE, SERIAL_DEVICE, LOGGER, METRICS,
  INSTANCE_ACTION_INFO, VM_STATE,
];

/** GET / */
export interface InstanceInfo {
  id: string;
  /** Firecracker's three states, plus "Stopped" (typevisor extension) after the guest ended. */
  state: 'Not started' | 'Running' | 'Paused' | 'Stopped';
  vmm_version: string;
  app_name: string;
}

/** GET /vm/config, and the --config-file format. */
export interface FullVmConfiguration {
  'boot-source': BootSource | null;
  'machine-config': MachineConfiguration;
  drives: Drive[];
  'network-interfaces': NetworkInterface[];
  vsock: Vsock | null;
  entropy: EntropyDevice | null;
  logger: Logger | null;
  metrics: Metrics | null;
}
