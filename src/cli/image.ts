import { parseArgs, type ParseArgsConfig } from 'node:util';
import { buildImage } from '../image/build.js';
import { makeDiskImage } from '../image/disk.js';
import { ImageError } from '../image/errors.js';
import { parseSize } from '../vmm/size.js';
import { VmmError } from '../vmm/errors.js';

export const IMAGE_USAGE = `usage: typevisor image <build|disk> [options]

  typevisor image build [--out DIR] [--force]
      Build the default guest from Debian packages fetched with this host's apt:
      Debian's cloud kernel (linux-image-cloud-amd64) and a busybox initramfs
      with the virtio, vsock and ext4 modules. Kept in DIR (default
      $XDG_CACHE_HOME/typevisor/images/default or ~/.cache/typevisor/images/default)
      and reused while it verifies; --force rebuilds. Prints the kernel and
      initrd paths.

  typevisor image disk --size SIZE [--from DIR] OUT.img
      Make an ext4 disk image of SIZE (e.g. 64M, 1G; a bare number is MiB)
      holding the contents of DIR (default: empty), with e2fsprogs' mke2fs.

The guest's /init runs the base64-encoded shell script given as tv.cmd=... on the
kernel command line and powers off; without one it starts a shell on the console.
`;

export interface ImageCommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Environment for apt, dpkg-deb and mke2fs (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Exit statuses, as for `typevisor run`: 1 the command failed, 2 bad command line. */
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

class ImageUsageError extends Error {}

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, positionals: boolean) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: positionals });
  } catch (e) {
    throw new ImageUsageError((e as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
}

/** `typevisor image …`; returns the process exit status. */
export async function imageCommand(args: string[], io: ImageCommandIo): Promise<number> {
  const log = (line: string) => io.stderr.write(`typevisor: ${line}\n`);
  const env = io.env ?? process.env;
  const [sub, ...rest] = args;
  try {
    if (sub === undefined || sub === '--help' || sub === '-h' || rest.includes('--help') || rest.includes('-h')) {
      io.stdout.write(IMAGE_USAGE);
      return sub === undefined ? EXIT_USAGE : 0;
    }
    switch (sub) {
      case 'build': {
        const { values } = parse(rest, { out: { type: 'string' }, force: { type: 'boolean' } }, false);
        const built = await buildImage({
          log,
          env,
          ...(typeof values.out === 'string' && { out: values.out }),
          ...(values.force === true && { force: true }),
        });
        io.stdout.write(`kernel: ${built.kernel}\ninitrd: ${built.initrd}\n`);
        return 0;
      }
      case 'disk': {
        const { values, positionals } = parse(rest, { size: { type: 'string' }, from: { type: 'string' } }, true);
        if (typeof values.size !== 'string') throw new ImageUsageError('--size is required (e.g. --size 64M)');
        if (positionals.length !== 1) throw new ImageUsageError('give exactly one output file (OUT.img)');
        let size: number;
        try {
          size = parseSize(values.size, '--size');
        } catch (e) {
          throw new ImageUsageError(e instanceof VmmError ? e.message : String(e));
        }
        makeDiskImage({ size, out: positionals[0]!, log, env, ...(typeof values.from === 'string' && { from: values.from }) });
        io.stdout.write(`${positionals[0]}\n`);
        return 0;
      }
      default:
        throw new ImageUsageError(`unknown image command "${sub}" (build or disk)`);
    }
  } catch (e) {
    if (e instanceof ImageUsageError) {
      io.stderr.write(`typevisor: ${e.message}\nRun 'typevisor image --help' for usage.\n`);
      return EXIT_USAGE;
    }
    if (e instanceof ImageError) {
      io.stderr.write(`typevisor: ${e.message}\n`);
      return EXIT_FAILED;
    }
    throw e;
  }
}
