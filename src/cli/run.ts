import { VmmError } from '../vmm/errors.js';
import { parseSize } from '../vmm/size.js';
import { prepareEngine } from '../vmm/engines.js';
import { DEFAULT_CMDLINE, DEFAULT_MACHINE, DRIVE_ID_PATTERN, type DriveConfig, type EngineChoice, type NetConfig, type VsockConfig } from '../vmm/config.js';
import { attachConsole, exitAsHangUp } from '../backends/terminal.js';

export const RUN_OPTIONS = {
  kernel: { type: 'string' },
  initrd: { type: 'string' },
  cmdline: { type: 'string' },
  cpus: { type: 'string' },
  memory: { type: 'string' },
  engine: { type: 'string' },
  rng: { type: 'boolean' },
  net: { type: 'string', multiple: true },
  vsock: { type: 'string' },
  disk: { type: 'string', multiple: true },
} as const;

export const RUN_USAGE = `usage: typevisor run [--kernel <bzImage|vmlinux>] [options]

options:
  --kernel PATH     kernel image: a bzImage (compressed payloads are decompressed on the host)
                    or a vmlinux ELF64; without it, the default image (Debian's cloud kernel and
                    a busybox initramfs, built and cached by 'typevisor image build')
  --initrd PATH     initial ramdisk
  --cmdline TEXT    kernel command line (default: "${DEFAULT_CMDLINE}")
  --cpus N          virtual CPUs (default 1)
  --memory SIZE     guest RAM, e.g. 512M, 2G; a bare number is MiB (default 512M)
  --net tap=NAME[,mac=MAC]
                    a virtio-net NIC on an existing TAP device (repeatable); create it first:
                    ip tuntap add dev tap0 mode tap && ip addr add 172.16.0.1/24 dev tap0 &&
                    ip link set tap0 up
  --vsock cid=N,uds=PATH
                    virtio-vsock with guest CID N; the host connects to the Unix socket PATH
                    and writes "CONNECT <port>\\n" to reach a guest listener; guest connections
                    to host port P go to a listener at PATH_P
  --rng             add a virtio-rng entropy device (host crypto randomness, 1 MiB/s)
  --disk PATH[,ro][,id=NAME]
                    add a virtio-blk disk backed by the raw image PATH (its size a multiple
                    of 512 bytes); ro attaches it read-only; NAME (letters, digits, _ and -)
                    is what the guest reads as the device ID (default disk0, disk1, ... in
                    order). Repeat for more disks; Linux names them vda, vdb, ... in order.
  --engine NAME     auto | kvm | soft (default auto: KVM where guest kernel code runs
                    natively, the soft engine otherwise)

On a terminal the guest's serial console is interactive: Ctrl-A X quits, Ctrl-A C sends
Ctrl-Alt-Del, Ctrl-A H lists the keys. Exit status: 0 when the guest powers off or resets,
1 when the VMM fails, 2 for a bad command line, 3 when the guest crashes its CPU (triple
fault), 4 when the engine fails. If the terminal hangs up, the VM is stopped and typevisor
ends by SIGHUP.
`;

export interface RunValues {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  cpus?: string;
  memory?: string;
  engine?: string;
  rng?: boolean;
  net?: string[];
  vsock?: string;
  disk?: string[];
}

function parseCpus(text: string): number {
  if (!/^\d+$/.test(text.trim())) throw new VmmError('invalid-config', `--cpus "${text}" is not a whole number`);
  return Number(text);
}

function isEngineChoice(text: string): text is EngineChoice {
  return text === 'auto' || text === 'kvm' || text === 'soft';
}

function parseEngine(text: string): EngineChoice {
  if (isEngineChoice(text)) return text;
  throw new VmmError('invalid-config', `--engine "${text}" is not one of auto, kvm, soft`);
}

/** Parses the --disk options in order: `PATH[,ro][,id=NAME]`; ids default to disk<N>, duplicates are refused. */
export function parseDisks(specs: readonly string[]): DriveConfig[] {
  const drives: DriveConfig[] = [];
  specs.forEach((spec, n) => {
    const [path, ...opts] = spec.split(',');
    if (!path) throw new VmmError('invalid-config', `--disk "${spec}": a path to a raw image comes first`);
    let readOnly = false;
    let id = `disk${n}`;
    for (const o of opts) {
      if (o === 'ro') readOnly = true;
      else if (o.startsWith('id=')) id = o.slice(3);
      else throw new VmmError('invalid-config', `--disk "${spec}": unknown option "${o}" (expected ro or id=NAME)`);
    }
    if (!DRIVE_ID_PATTERN.test(id)) throw new VmmError('invalid-config', `--disk "${spec}": id "${id}" must be 1 to 64 letters, digits, '_' or '-'`);
    if (drives.some((d) => d.id === id)) throw new VmmError('invalid-config', `--disk "${spec}": id "${id}" is already used by another disk`);
    drives.push({ id, pathOnHost: path, readOnly });
  });
  return drives;
}

/** Splits `key=value,key=value` options; every key must be known. */
function keyValues(flag: string, spec: string, keys: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of spec.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (eq < 0 || !keys.includes(key)) throw new VmmError('invalid-config', `${flag} "${spec}": "${part}" is not one of ${keys.map((k) => `${k}=…`).join(', ')}`);
    if (out.has(key)) throw new VmmError('invalid-config', `${flag} "${spec}": ${key} is given twice`);
    out.set(key, part.slice(eq + 1));
  }
  return out;
}

/** `--net tap=NAME[,mac=MAC]`, repeatable; ids are net0, net1… */
export function parseNets(specs: readonly string[]): NetConfig[] {
  return specs.map((spec, n) => {
    const kv = keyValues('--net', spec, ['tap', 'mac']);
    const tap = kv.get('tap');
    if (!tap) throw new VmmError('invalid-config', `--net "${spec}": tap=NAME is required`);
    const mac = kv.get('mac');
    return { id: `net${n}`, tap, ...(mac !== undefined && { mac }) };
  });
}

/** `--vsock cid=N,uds=PATH`. */
export function parseVsock(spec: string): VsockConfig {
  const kv = keyValues('--vsock', spec, ['cid', 'uds']);
  const cid = kv.get('cid');
  const uds = kv.get('uds');
  if (cid === undefined || !/^\d+$/.test(cid)) throw new VmmError('invalid-config', `--vsock "${spec}": cid=N (a whole number, 3 or more) is required`);
  if (!uds) throw new VmmError('invalid-config', `--vsock "${spec}": uds=PATH is required`);
  return { cid: Number(cid), udsPath: uds };
}

/** The kernel and initrd to boot: the ones given, or the default image (built on first use). */
async function bootFiles(values: RunValues, stderr: NodeJS.WritableStream): Promise<{ kernel: string; initrd?: string }> {
  if (values.kernel) return { kernel: values.kernel, ...(values.initrd !== undefined && { initrd: values.initrd }) };
  if (values.initrd !== undefined) throw new VmmError('invalid-config', '--initrd needs --kernel (without --kernel the default image brings its own initrd)');
  // The image builder (and its decompressors) loads only when the default image is wanted.
  const { ensureDefaultImage } = await import('../image/index.js');
  const image = await ensureDefaultImage({ log: (line) => stderr.write(`typevisor: ${line}\n`) });
  return { kernel: image.kernel, initrd: image.initrd };
}

export async function runCommand(values: RunValues, stderr: NodeJS.WritableStream): Promise<number> {
  // The engine opens (KVM: the boot CPU's thread starts) while the machine's
  // modules and the boot files load; a bad --engine is reported below, in order.
  const choice = values.engine ?? DEFAULT_MACHINE.engine;
  if (isEngineChoice(choice)) prepareEngine(choice);
  const [{ Vmm }, files] = await Promise.all([import('../vmm/vmm.js'), bootFiles(values, stderr)]);
  const vmm = new Vmm({ log: (line) => stderr.write(`typevisor: ${line}\n`), debug: Boolean(process.env.TYPEVISOR_DEBUG) });
  vmm.configureMachine({
    ...(values.cpus !== undefined && { vcpuCount: parseCpus(values.cpus) }),
    ...(values.memory !== undefined && { memBytes: parseSize(values.memory, '--memory') }),
    ...(values.engine !== undefined && { engine: parseEngine(values.engine) }),
  });
  vmm.configureBootSource({
    kernelPath: files.kernel,
    ...(files.initrd !== undefined && { initrdPath: files.initrd }),
    ...(values.cmdline !== undefined && { cmdline: values.cmdline }),
  });
  if (values.rng) vmm.configureEntropy({});
  for (const drive of parseDisks(values.disk ?? [])) vmm.configureDrive(drive);
  for (const net of parseNets(values.net ?? [])) vmm.configureNet(net);
  if (values.vsock !== undefined) vmm.configureVsock(parseVsock(values.vsock));
  await vmm.start();
  const machine = vmm.runningMachine!;
  // A hang-up (SIGHUP while on a terminal, or the console finding the
  // terminal gone) stops the VM like any stop from the host; the process then
  // ends by SIGHUP, as programs on a closed terminal do.
  let hungUp = false;
  const onTerminal = process.stdin.isTTY === true || process.stdout.isTTY === true;
  const console = attachConsole({
    input: process.stdin,
    output: process.stdout,
    serial: machine.serial,
    onQuit: () => void vmm.stop(),
    onCtrlAltDel: () => vmm.sendCtrlAltDel(),
    onHangUp: () => {
      hungUp = true;
      if (vmm.phase !== 'stopped') void vmm.stop();
    },
  });
  machine.setSerialOutput((byte) => console.writeByte(byte));
  // SIGINT reaches us only when the console is not in raw mode (in raw mode
  // Ctrl-C is a byte for the guest); SIGTERM/SIGHUP come from supervisors.
  const onSignal = (signal: NodeJS.Signals) => {
    if (signal === 'SIGHUP' && onTerminal) hungUp = true;
    if (!hungUp) stderr.write(`typevisor: ${signal}: stopping the VM\n`);
    if (vmm.phase !== 'stopped') void vmm.stop();
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const report = await vmm.exited();
  for (const s of signals) process.off(s, onSignal);
  if (hungUp) {
    console.detach();
    exitAsHangUp();
  }
  await console.close();
  stderr.write(`typevisor: ${report.message}\n`);
  return report.status;
}
