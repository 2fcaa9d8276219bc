/**
 * The VMs of one console server: creates them from the form's request (each
 * its own VMM process), finds, lists and removes them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { VmProcess, type EngineName, type VmInfo, type VmSpec } from './vm-process.js';
import type { ImageChoice, ImageId } from './images.js';

/** A create request the console refuses; the message names the field. */
export class RequestError extends Error {
  override name = 'RequestError';
}

/** What POST /api/vms takes. */
export interface CreateRequest {
  name?: string;
  image: ImageId;
  /** For image "custom". */
  kernelPath?: string;
  initrdPath?: string;
  cmdline?: string;
  cpus?: number;
  memMib?: number;
  engine?: EngineName;
  disks?: string[];
  /** Boot as soon as it is configured. */
  start?: boolean;
}

export const MAX_VCPUS = 255;
export const MIN_MEM_MIB = 16;
export const MAX_DISKS = 8;
const MAX_NAME = 64;
const MAX_PATH = 4096;
const DEFAULT_CPUS = 1;
const DEFAULT_MEM_MIB = 128;
const FIELDS = new Set(['name', 'image', 'kernelPath', 'initrdPath', 'cmdline', 'cpus', 'memMib', 'engine', 'disks', 'start']);
const ENGINES: readonly EngineName[] = ['auto', 'kvm', 'soft'];
const IMAGES: readonly ImageId[] = ['console-guest', 'linux-default', 'custom'];

function str(v: unknown, field: string, max: number): string {
  if (typeof v !== 'string') throw new RequestError(`${field} must be a string`);
  if (v.trim() === '') throw new RequestError(`${field} must not be empty`);
  if (v.length > max) throw new RequestError(`${field} is longer than ${max} characters`);
  if (/[\0-\x1f\x7f]/.test(v)) throw new RequestError(`${field} must not contain control characters`);
  return v;
}

function int(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new RequestError(`${field} must be a whole number`);
  if (v < min || v > max) throw new RequestError(`${field} must be between ${min} and ${max} (got ${v})`);
  return v;
}

/** Checks the JSON of a create request; throws a RequestError naming the first bad field. */
export function parseCreateRequest(body: unknown, hostMemMib = Math.floor(os.totalmem() / 2 ** 20)): CreateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError('the request body must be a JSON object');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) throw new RequestError(`unknown field "${k}"`);
  if (!IMAGES.includes(o.image as ImageId)) throw new RequestError(`image must be one of ${IMAGES.join(', ')}`);
  const r: CreateRequest = { image: o.image as ImageId };
  if (o.name !== undefined) r.name = str(o.name, 'name', MAX_NAME);
  if (o.kernelPath !== undefined && o.kernelPath !== '') r.kernelPath = str(o.kernelPath, 'kernelPath', MAX_PATH);
  if (o.initrdPath !== undefined && o.initrdPath !== '') r.initrdPath = str(o.initrdPath, 'initrdPath', MAX_PATH);
  if (o.cmdline !== undefined && o.cmdline !== '') r.cmdline = str(o.cmdline, 'cmdline', MAX_PATH);
  if (o.cpus !== undefined) r.cpus = int(o.cpus, 'cpus', 1, MAX_VCPUS);
  if (o.memMib !== undefined) r.memMib = int(o.memMib, 'memMib', MIN_MEM_MIB, hostMemMib);
  if (o.engine !== undefined) {
    if (!ENGINES.includes(o.engine as EngineName)) throw new RequestError(`engine must be one of ${ENGINES.join(', ')}`);
    r.engine = o.engine as EngineName;
  }
  if (o.disks !== undefined) {
    if (!Array.isArray(o.disks)) throw new RequestError('disks must be a list of host file paths');
    if (o.disks.length > MAX_DISKS) throw new RequestError(`at most ${MAX_DISKS} disks`);
    r.disks = o.disks.map((d, i) => str(d, `disks[${i}]`, MAX_PATH));
  }
  if (o.start !== undefined) {
    if (typeof o.start !== 'boolean') throw new RequestError('start must be true or false');
    r.start = o.start;
  }
  if (r.image === 'custom' && r.kernelPath === undefined) throw new RequestError('kernelPath is required for a custom image');
  if (r.image !== 'custom' && (r.kernelPath !== undefined || r.initrdPath !== undefined)) {
    throw new RequestError(`kernelPath and initrdPath are only for a custom image (${r.image} brings its own)`);
  }
  return r;
}

export interface VmManagerOptions {
  /** The VMM program and its leading arguments (see VmProcessOptions.command). */
  command: readonly string[];
  /** The images offered; read at each create. */
  images: () => ImageChoice[];
  /** Where per-VM directories go (default: the system temp directory). */
  stateDir?: string;
  sampleMs?: number;
}

export class VmManager {
  private readonly vms = new Map<string, VmProcess>();
  private next = 1;
  private readonly stateDir: string;

  constructor(private readonly options: VmManagerOptions) {
    this.stateDir = options.stateDir ?? os.tmpdir();
  }

  /** Launches and configures a VM (and boots it if asked); a refusal by the VMM leaves it listed as failed. */
  async create(req: CreateRequest): Promise<VmProcess> {
    const spec = this.specFor(req);
    const id = `vm${this.next++}`;
    const dir = mkdtempSync(join(this.stateDir, `tv-${id}-`));
    const vm = await VmProcess.launch({ id, spec, dir, command: this.options.command, ...(this.options.sampleMs !== undefined && { sampleMs: this.options.sampleMs }) });
    this.vms.set(id, vm);
    if (req.start && vm.state === 'created') await vm.start().catch(() => {});
    return vm;
  }

  private specFor(req: CreateRequest): VmSpec {
    let kernelPath = req.kernelPath;
    let initrdPath = req.initrdPath;
    let engine = req.engine;
    let label = 'custom';
    if (req.image !== 'custom') {
      const image = this.options.images().find((i) => i.id === req.image);
      if (!image || !image.available || image.kernelPath === undefined) throw new RequestError(`image ${req.image} is not available: ${image?.note ?? 'unknown image'}`);
      kernelPath = image.kernelPath;
      initrdPath = image.initrdPath;
      engine ??= image.engine;
      label = image.label;
    }
    const spec: VmSpec = {
      name: req.name ?? `vm${this.next}`,
      image: label,
      kernelPath: kernelPath!,
      cpus: req.cpus ?? DEFAULT_CPUS,
      memMib: req.memMib ?? DEFAULT_MEM_MIB,
      engine: engine ?? 'auto',
      disks: req.disks ?? [],
    };
    if (initrdPath !== undefined) spec.initrdPath = initrdPath;
    if (req.cmdline !== undefined) spec.cmdline = req.cmdline;
    return spec;
  }

  get(id: string): VmProcess | undefined {
    return this.vms.get(id);
  }

  list(): VmInfo[] {
    return [...this.vms.values()].map((vm) => vm.info());
  }

  /** Stops the VM if it still runs, forgets it and deletes its directory. */
  async remove(id: string): Promise<boolean> {
    const vm = this.vms.get(id);
    if (!vm) return false;
    await vm.stop();
    this.vms.delete(id);
    rmSync(vm.dir, { recursive: true, force: true });
    return true;
  }

  /** Stops every VM (the server is going away). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.vms.keys()].map((id) => this.remove(id)));
  }
}
