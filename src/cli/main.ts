import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VmmError } from '../vmm/errors.js';
import { EXIT } from '../vmm/exit-status.js';
import { VERSION } from '../version.js';

const USAGE = `typevisor ${VERSION}: a hypervisor in TypeScript

usage: typevisor <command> [options]

commands:
  run        boot a Linux kernel (or any 64-bit boot-protocol image) in a new VM
  api        start a VMM driven by a Firecracker-compatible REST API on a Unix socket
  exec       run a static x86-64 Linux program on the soft engine (process mode)
  image      build the default guest image (Debian kernel + busybox initramfs) or ext4 disks
  serve      a web console managing many VMs on this host (one VMM process each)
  version    print the version

Run 'typevisor <command> --help' for a command's options.
`;

/** A malformed command line: printed with a hint, exit status 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (e) {
    // node's messages are good ("Unknown option '--foo'"); drop its trailing advice about '--'.
    const msg = e instanceof Error ? e.message.replace(/\. To specify a positional argument.*$/s, '') : String(e);
    throw new UsageError(msg);
  }
}

/** Entry point of the `typevisor` command; returns the process exit status. */
export async function main(argv: string[], stderr: NodeJS.WritableStream = process.stderr): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? EXIT.USAGE : EXIT.OK;
      case 'version':
      case '--version':
        process.stdout.write(`typevisor ${VERSION}\n`);
        return EXIT.OK;
      // Each command's module (and what it pulls in: engines, web server, image
      // builder) is loaded only when that command runs, so start-up stays short.
      case 'run': {
        const { runCommand, RUN_OPTIONS, RUN_USAGE } = await import('./run.js');
        if (rest.includes('--help') || rest.includes('-h')) {
          process.stdout.write(RUN_USAGE);
          return EXIT.OK;
        }
        const { values } = parse(rest, RUN_OPTIONS);
        return await runCommand(values, stderr);
      }
      case 'api': {
        const { apiCommand, API_OPTIONS, API_USAGE } = await import('./api.js');
        if (rest.includes('--help') || rest.includes('-h')) {
          process.stdout.write(API_USAGE);
          return EXIT.OK;
        }
        const { values } = parse(rest, API_OPTIONS);
        return await apiCommand(values, stderr);
      }
      case 'exec': {
        const { execCommand } = await import('./exec.js');
        return await execCommand(rest, stderr);
      }
      case 'image': {
        const { imageCommand } = await import('./image.js');
        return await imageCommand(rest, { stdout: process.stdout, stderr });
      }
      case 'serve': {
        const { serveCommand, SERVE_OPTIONS, SERVE_USAGE } = await import('./serve.js');
        if (rest.includes('--help') || rest.includes('-h')) {
          process.stdout.write(SERVE_USAGE);
          return EXIT.OK;
        }
        const { values } = parse(rest, SERVE_OPTIONS);
        return await serveCommand(values, stderr);
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      stderr.write(`typevisor: ${e.message}\nRun 'typevisor --help' for usage.\n`);
      return EXIT.USAGE;
    }
    if (e instanceof VmmError) {
      stderr.write(`typevisor: ${e.message}\n`);
      return EXIT.VMM_ERROR;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    stderr.write(`typevisor: internal error: ${err.message}\n`);
    if (process.env.TYPEVISOR_DEBUG) stderr.write(`${err.stack ?? ''}\n`);
    return EXIT.VMM_ERROR;
  }
}
