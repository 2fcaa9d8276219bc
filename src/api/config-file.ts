/**
 * `--config-file`: Firecracker's whole-VM JSON (the shape of GET /vm/config)
 * applied through the same handlers as the REST calls, in Firecracker's
 * order, so a file and a sequence of requests are checked identically.
 */
import { readFile } from 'node:fs/promises';
import { HTTP } from './errors.js';
import type { ApiController } from './controller.js';

/** Sections Firecracker knows that typevisor does not serve; refused when they configure anything. */
const UNSUPPORTED = ['balloon', 'cpu-config', 'mmds-config', 'pmem', 'memory-hotplug'] as const;

/** Single-object sections and the request each becomes, in the order they apply. */
const SINGLE = [
  ['logger', '/logger'],
  ['metrics', '/metrics'],
  ['machine-config', '/machine-config'],
  ['boot-source', '/boot-source'],
] as const;
const LISTS = [
  ['drives', '/drives/', 'drive_id'],
  ['network-interfaces', '/network-interfaces/', 'iface_id'],
] as const;
const DEVICES = [
  ['vsock', '/vsock'],
  ['entropy', '/entropy'],
  ['serial', '/serial'],
] as const;

const KNOWN = new Set<string>([...SINGLE.map((s) => s[0]), ...LISTS.map((s) => s[0]), ...DEVICES.map((s) => s[0]), ...UNSUPPORTED]);

export class ConfigFileError extends Error {
  override name = 'ConfigFileError';
}

function isEmpty(v: unknown): boolean {
  return v === null || v === undefined || (Array.isArray(v) && v.length === 0);
}

/** Applies a parsed configuration; throws ConfigFileError naming the section and the problem. */
export async function applyVmConfig(controller: ApiController, config: unknown, source = 'config file'): Promise<void> {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ConfigFileError(`${source}: expected a JSON object`);
  const cfg = config as Record<string, unknown>;
  for (const key of Object.keys(cfg)) {
    if (!KNOWN.has(key)) throw new ConfigFileError(`${source}: unknown section "${key}" (known: ${[...KNOWN].join(', ')})`);
  }
  for (const key of UNSUPPORTED) {
    if (!isEmpty(cfg[key])) throw new ConfigFileError(`${source}: ${key} is not supported by typevisor`);
  }
  if (isEmpty(cfg['boot-source'])) throw new ConfigFileError(`${source}: boot-source is required`);

  const apply = async (section: string, method: 'PUT', path: string, body: unknown) => {
    const r = await controller.handle({ method, path, body: JSON.stringify(body) });
    if (r.status !== HTTP.NO_CONTENT) {
      const msg = (r.body as { fault_message?: string } | undefined)?.fault_message ?? `status ${r.status}`;
      throw new ConfigFileError(`${source}: ${section}: ${msg}`);
    }
  };
  for (const [key, path] of SINGLE) if (!isEmpty(cfg[key])) await apply(key, 'PUT', path, cfg[key]);
  for (const [key, prefix, idField] of LISTS) {
    const list = cfg[key];
    if (isEmpty(list)) continue;
    if (!Array.isArray(list)) throw new ConfigFileError(`${source}: ${key} must be an array`);
    for (const [i, item] of list.entries()) {
      const id = typeof item === 'object' && item !== null ? (item as Record<string, unknown>)[idField] : undefined;
      if (typeof id !== 'string' || id === '') throw new ConfigFileError(`${source}: ${key}[${i}]: missing ${idField}`);
      await apply(`${key}[${i}]`, 'PUT', prefix + encodeURIComponent(id), item);
    }
  }
  for (const [key, path] of DEVICES) if (!isEmpty(cfg[key])) await apply(key, 'PUT', path, cfg[key]);
}

/** Reads and applies a configuration file, then starts the VM (InstanceStart). */
export async function bootFromConfigFile(controller: ApiController, path: string): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigFileError(`config file ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be read: ${(e as Error).message}`}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigFileError(`config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
  await applyVmConfig(controller, json, `config file ${path}`);
  const r = await controller.handle({ method: 'PUT', path: '/actions', body: '{"action_type":"InstanceStart"}' });
  if (r.status !== HTTP.NO_CONTENT) {
    throw new ConfigFileError(`config file ${path}: InstanceStart: ${(r.body as { fault_message?: string } | undefined)?.fault_message ?? `status ${r.status}`}`);
  }
}
