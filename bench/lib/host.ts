/**
 * The host under measurement: what it is (for the results header) and the
 * reference programs on it. QEMU comes from Debian's packages, installed with
 * apt-get when absent and we are root; otherwise its rows say it is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { KvmEngine } from '../../src/engine/kvm/index.js';
import { probeKvm } from '../../src/vmm/engines.js';
import type { MachineInfo } from './results.js';

/** Debian packages of the references and the command each provides. */
export const QEMU_PACKAGES = { system: ['qemu-system-x86', 'qemu-system-x86_64'], user: ['qemu-user', 'qemu-x86_64'] } as const;

export type Tool = { path: string } | { missing: string };

export interface References {
  qemuSystem: Tool;
  qemuUser: Tool;
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '').split(':')) {
    if (dir && existsSync(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return undefined;
}

/** Finds qemu-system-x86_64 and qemu-x86_64, installing their Debian packages when absent (as root). */
export function ensureQemu(log: (line: string) => void): References {
  const wanted = [QEMU_PACKAGES.system, QEMU_PACKAGES.user].filter(([, cmd]) => !which(cmd));
  let failure = '';
  if (wanted.length > 0) {
    const pkgs = wanted.map(([pkg]) => pkg);
    if (process.getuid?.() !== 0) {
      failure = `not installed, and installing ${pkgs.join(' ')} needs root`;
    } else {
      log(`installing ${pkgs.join(', ')} from Debian`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      let r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env, encoding: 'utf8' });
      if (r.status !== 0) {
        // Missing or stale package lists are the usual cause on a fresh machine.
        spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
        r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], { env, encoding: 'utf8' });
      }
      if (r.status !== 0) failure = `apt-get install ${pkgs.join(' ')} failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop() ?? ''}`;
    }
  }
  const tool = (cmd: string, pkg: string): Tool => {
    const path = which(cmd);
    return path ? { path } : { missing: `${cmd} (Debian ${pkg}) ${failure || 'not found'}` };
  };
  return { qemuSystem: tool(QEMU_PACKAGES.system[1], QEMU_PACKAGES.system[0]), qemuUser: tool(QEMU_PACKAGES.user[1], QEMU_PACKAGES.user[0]) };
}

function firstLine(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
}

function osName(): string {
  try {
    const rel = readFileSync('/etc/os-release', 'utf8');
    return /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(rel)?.[1] ?? os.type();
  } catch {
    return os.type();
  }
}

/**
 * How KVM runs guest kernel code here. PVM (module kvm_pvm) is software
 * nested virtualization: guest CPL0 code is emulated instruction by
 * instruction, so the probe's rate is part of the answer.
 */
async function kvmKind(): Promise<string> {
  if (!existsSync('/dev/kvm')) return 'absent: no /dev/kvm';
  const pvm = existsSync('/sys/module/kvm_pvm');
  let engine: KvmEngine;
  try {
    engine = new KvmEngine();
  } catch (e) {
    return `unusable: ${(e as Error).message}`;
  }
  try {
    const probe = await probeKvm(engine);
    const rate = `guest CPL0 code at ${(probe.ips / 1e6).toFixed(probe.ips < 1e7 ? 1 : 0)} M instructions/s`;
    if (pvm) return `PVM (kvm_pvm, software nested virtualization): ${rate}`;
    return probe.native ? `hardware-assisted: ${rate}` : `emulated guest kernel code (not PVM): ${rate}`;
  } finally {
    engine.close();
  }
}

/** The TSC frequency in kHz, which Linux under QEMU TCG on microvm needs as tsc_early_khz=. */
export function hostTscKhz(): number | undefined {
  try {
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
    return mhz ? Math.round(Number(mhz) * 1000) : undefined;
  } catch {
    return undefined;
  }
}

export async function machineInfo(refs: References): Promise<MachineInfo> {
  const version = (t: Tool) => ('path' in t ? firstLine(t.path, ['--version']) ?? 'unknown version' : t.missing);
  return {
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    kvm: await kvmKind(),
    node: process.version,
    qemu: version(refs.qemuSystem),
    qemuUser: version(refs.qemuUser),
    os: osName(),
  };
}
