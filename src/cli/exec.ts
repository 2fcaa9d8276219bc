/**
 * `typevisor exec <static x86-64 Linux ELF> [args...]`: runs a Linux program
 * on the soft CPU in process mode (src/process), passing stdin/stdout/stderr,
 * the environment and the exit status through.
 */
import { ExecError, exitCodeOf, Kernel } from '../process/kernel.js';

export const EXEC_USAGE = `usage: typevisor exec [--stats] <program> [args...]

Runs a static x86-64 Linux executable on typevisor's own x86-64 CPU (the soft
engine) with a Linux system-call layer, like qemu-user. stdin, stdout, stderr,
the environment and the exit status pass through.

  --stats   print instructions executed, time and speed on stderr at exit
`;

/** Runs the exec command; returns the process exit status (128 + signal when killed). */
export async function execCommand(args: string[], stderr: NodeJS.WritableStream = process.stderr): Promise<number> {
  let stats = false;
  let k = 0;
  while (k < args.length && args[k]?.startsWith('--')) {
    const a = args[k++];
    if (a === '--stats') stats = true;
    else if (a === '--') break;
    else if (a === '--help') { process.stdout.write(EXEC_USAGE); return 0; }
    else { stderr.write(`typevisor exec: unknown option ${a}\n${EXEC_USAGE}`); return 2; }
  }
  const file = args[k];
  if (file === undefined) {
    stderr.write(EXEC_USAGE);
    return 2;
  }
  const argv = args.slice(k);
  const envp = Object.entries(process.env).map(([n, v]) => `${n}=${v ?? ''}`);
  const kernel = new Kernel({ log: (m) => stderr.write(`typevisor: ${m}\n`) });
  let first;
  try {
    first = kernel.spawn(file, argv, envp);
  } catch (e) {
    if (e instanceof ExecError) {
      stderr.write(`typevisor exec: ${e.message}\n`);
      return 126;
    }
    throw e;
  }
  const t0 = process.hrtime.bigint();
  const status = await kernel.run(first);
  if (stats) {
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    stderr.write(`typevisor: ${kernel.instructions} instructions in ${s.toFixed(3)} s: ${(kernel.instructions / s / 1e6).toFixed(1)} M instructions/s\n`);
  }
  return exitCodeOf(status);
}
