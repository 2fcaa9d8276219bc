/**
 * Device configurations the API accepts before the machine can attach the
 * devices: block drives, network interfaces, vsock, entropy, serial. Each is
 * checked here as Firecracker checks it when it is PUT (paths exist, one root
 * drive, unique MACs), kept as a plain object, and reported by GET /vm/config.
 * The Vmm takes them over once its virtio devices land (see README.md).
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ApiError } from './errors.js';
import type { Drive, EntropyDevice, NetworkInterface, PartialDrive, PartialNetworkInterface, SerialDevice, Vsock } from './models.js';

/** Checks that `path` is something a VMM can read (and write, if asked); throws a 400 naming `field`. */
export async function checkHostFile(path: string, field: string, opts: { write?: boolean; blockDevice?: boolean } = {}): Promise<void> {
  let st;
  try {
    st = await stat(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw ApiError.badRequest(`${field} ${path} does not exist`);
    throw ApiError.badRequest(`${field} ${path} cannot be read: ${(e as Error).message}`);
  }
  if (!st.isFile() && !(opts.blockDevice && st.isBlockDevice())) {
    throw ApiError.badRequest(`${field} ${path} is not a regular file${opts.blockDevice ? ' or block device' : ''}`);
  }
  try {
    await access(path, constants.R_OK | (opts.write ? constants.W_OK : 0));
  } catch {
    throw ApiError.badRequest(`${field} ${path} is not ${opts.write ? 'readable and writable' : 'readable'} (permission denied)`);
  }
}

/** Checks that a file the VMM will create at `path` can be: its directory exists and the path is no directory. */
export async function checkCreatablePath(path: string, field: string): Promise<void> {
  const dir = dirname(path);
  try {
    if (!(await stat(dir)).isDirectory()) throw ApiError.badRequest(`${field} ${path}: ${dir} is not a directory`);
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw ApiError.badRequest(`${field} ${path}: directory ${dir} does not exist`);
  }
  try {
    if ((await stat(path)).isDirectory()) throw ApiError.badRequest(`${field} ${path} is a directory`);
  } catch (e) {
    if (e instanceof ApiError) throw e;
  }
}

export interface DeviceConfigs {
  /** The root drive, if any, first (the order Firecracker attaches them in). */
  drives: Drive[];
  networkInterfaces: NetworkInterface[];
  vsock?: Vsock;
  entropy?: EntropyDevice;
  serial?: SerialDevice;
}

export class DeviceResources {
  private readonly drives: Drive[] = [];
  private readonly nets: NetworkInterface[] = [];
  private vsock: Vsock | undefined;
  private entropy: EntropyDevice | undefined;
  private serial: SerialDevice | undefined;

  /** PUT /drives/{id}: adds the drive or replaces the one with the same ID. */
  async putDrive(d: Drive): Promise<void> {
    if (d.socket !== undefined) {
      throw ApiError.badRequest(`drive ${d.drive_id}: vhost-user-block drives ("socket") are not supported by typevisor; give path_on_host`);
    }
    if (d.path_on_host === undefined) throw ApiError.badRequest(`drive ${d.drive_id}: path_on_host is required`);
    const root = this.drives.find((x) => x.is_root_device && x.drive_id !== d.drive_id);
    if (d.is_root_device && root) {
      throw ApiError.badRequest(`drive ${d.drive_id} cannot be the root device: drive ${root.drive_id} already is`);
    }
    await checkHostFile(d.path_on_host, `drive ${d.drive_id}: path_on_host`, { write: d.is_read_only !== true, blockDevice: true });
    const stored: Drive = { ...d, is_read_only: d.is_read_only ?? false, cache_type: d.cache_type ?? 'Unsafe', io_engine: d.io_engine ?? 'Sync' };
    const at = this.drives.findIndex((x) => x.drive_id === d.drive_id);
    if (at >= 0) this.drives.splice(at, 1);
    if (stored.is_root_device) this.drives.unshift(stored);
    else this.drives.push(stored);
  }

  /** PATCH /drives/{id} (after start): a new backing file or rate limiter for an existing drive. */
  async patchDrive(p: PartialDrive): Promise<Drive> {
    const d = this.drives.find((x) => x.drive_id === p.drive_id);
    if (!d) throw ApiError.badRequest(`no drive with ID ${p.drive_id} is configured`);
    if (p.path_on_host !== undefined) {
      await checkHostFile(p.path_on_host, `drive ${p.drive_id}: path_on_host`, { write: d.is_read_only !== true, blockDevice: true });
      d.path_on_host = p.path_on_host;
    }
    if (p.rate_limiter !== undefined) d.rate_limiter = p.rate_limiter;
    return { ...d };
  }

  /** PUT /network-interfaces/{id}: adds or replaces; guest MACs stay unique. */
  putNetworkInterface(n: NetworkInterface): void {
    if (n.guest_mac !== undefined) {
      const mac = n.guest_mac.toLowerCase();
      const other = this.nets.find((x) => x.iface_id !== n.iface_id && x.guest_mac?.toLowerCase() === mac);
      if (other) throw ApiError.badRequest(`guest_mac ${n.guest_mac} is already used by network interface ${other.iface_id}`);
      // Bit 0 of the first octet marks a multicast address (IEEE 802-2014 §8.2), which no NIC may own.
      if (parseInt(mac.slice(0, 2), 16) & 1) throw ApiError.badRequest(`guest_mac ${n.guest_mac} is a multicast address; a NIC needs a unicast one`);
    }
    const other = this.nets.find((x) => x.iface_id !== n.iface_id && x.host_dev_name === n.host_dev_name);
    if (other) throw ApiError.badRequest(`host_dev_name ${n.host_dev_name} is already used by network interface ${other.iface_id}`);
    const at = this.nets.findIndex((x) => x.iface_id === n.iface_id);
    if (at >= 0) this.nets[at] = { ...n };
    else this.nets.push({ ...n });
  }

  /** PATCH /network-interfaces/{id} (after start): new rate limiters. */
  patchNetworkInterface(p: PartialNetworkInterface): NetworkInterface {
    const n = this.nets.find((x) => x.iface_id === p.iface_id);
    if (!n) throw ApiError.badRequest(`no network interface with ID ${p.iface_id} is configured`);
    if (p.rx_rate_limiter !== undefined) n.rx_rate_limiter = p.rx_rate_limiter;
    if (p.tx_rate_limiter !== undefined) n.tx_rate_limiter = p.tx_rate_limiter;
    return { ...n };
  }

  async setVsock(v: Vsock): Promise<void> {
    await checkCreatablePath(v.uds_path, 'uds_path');
    const { vsock_id: _deprecated, ...rest } = v;
    this.vsock = rest;
  }

  setEntropy(e: EntropyDevice): void {
    this.entropy = { ...e };
  }

  async setSerial(s: SerialDevice): Promise<void> {
    if (s.serial_out_path !== undefined) await checkCreatablePath(s.serial_out_path, 'serial_out_path');
    this.serial = { ...s };
  }

  configs(): DeviceConfigs {
    const c: DeviceConfigs = {
      drives: this.drives.map((d) => ({ ...d })),
      networkInterfaces: this.nets.map((n) => ({ ...n })),
    };
    if (this.vsock) c.vsock = { ...this.vsock };
    if (this.entropy) c.entropy = { ...this.entropy };
    if (this.serial) c.serial = { ...this.serial };
    return c;
  }
}
