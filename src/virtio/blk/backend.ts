/**
 * The host side of a virtio-blk device: where sectors live. `FileBackend`
 * is a raw image file; every operation runs on the libuv threadpool
 * (callback fs API, fdatasync, fallocate through koffi's async calls), so a
 * slow disk never stalls the event loop or the vCPUs waiting on it.
 */
import fs from 'node:fs';
import { SECTOR_SIZE } from './request.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, fallocateAsync } from './fallocate.js';

/** Storage behind a block device. Positions and lengths are bytes; requests never run past `sizeBytes`. */
export interface BlockBackend {
  /** Capacity in bytes, a multiple of 512. */
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Whether `writeZeroes(…, unmap = true)` may deallocate (config write_zeroes_may_unmap). */
  readonly canUnmap: boolean;
  /** Fills `into` from `position` (bytes past the end of the storage read as zero). */
  read(into: Uint8Array, position: number): Promise<void>;
  write(data: Uint8Array, position: number): Promise<void>;
  /** Makes every completed write stable (fdatasync). */
  flush(): Promise<void>;
  /** May deallocate the range (virtio 1.2 §5.2.6.2: "MAY"); afterwards its contents are unspecified. */
  discard(position: number, length: number): Promise<void>;
  /** The range reads as zeros afterwards; with `unmap` it may also be deallocated. */
  writeZeroes(position: number, length: number, unmap: boolean): Promise<void>;
  close(): Promise<void>;
}

/** Why an image could not be opened; `message` names the file and what to do. */
export class BlockBackendError extends Error {
  override name = 'BlockBackendError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** Zeros written per call when hole punching is not available. */
const ZERO_CHUNK = 1024 * 1024;
let zeros: Uint8Array | undefined;

function callback<T>(run: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value))));
}

/** Opens an image the way `FileBackend.open` will and explains a failure; does not keep it open. */
function openImage(path: string, readOnly: boolean): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(path, readOnly ? 'r' : 'r+');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new BlockBackendError(path, `disk image ${path} does not exist`);
    if (code === 'EISDIR') throw new BlockBackendError(path, `disk image ${path} is a directory, not a raw image file`);
    if (code === 'EACCES' || code === 'EPERM') {
      throw new BlockBackendError(path, `disk image ${path} is not ${readOnly ? 'readable' : 'readable and writable'} (permission denied)${readOnly ? '' : '; add ,ro to attach it read-only'}`);
    }
    if (code === 'EROFS') throw new BlockBackendError(path, `disk image ${path} is on a read-only file system; add ,ro to attach it read-only`);
    throw new BlockBackendError(path, `cannot open disk image ${path}: ${(e as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new BlockBackendError(path, `disk image ${path} is a directory, not a raw image file`);
    if (!st.isFile()) throw new BlockBackendError(path, `disk image ${path} is not a regular file (raw image files only)`);
    // Root opens a mode-0444 file for writing anyway; honour what the file's mode says.
    if (!readOnly && (st.mode & 0o222) === 0) {
      throw new BlockBackendError(path, `disk image ${path} is marked read-only (mode ${(st.mode & 0o777).toString(8)}); add ,ro to attach it read-only`);
    }
    if (st.size % SECTOR_SIZE !== 0) {
      // Refused rather than rounded down: the tail would be silently unreachable from the guest.
      throw new BlockBackendError(
        path,
        `disk image ${path} is ${st.size} bytes, not a whole number of ${SECTOR_SIZE}-byte sectors (the last ${st.size % SECTOR_SIZE} bytes would be unreachable); pad it with: truncate -s %${SECTOR_SIZE} ${path}`,
      );
    }
    if (!Number.isSafeInteger(st.size)) throw new BlockBackendError(path, `disk image ${path} is too large`);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

export class FileBackend implements BlockBackend {
  readonly canUnmap = true;
  private punch = true;
  private zeroRange = true;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly sizeBytes: number,
    readonly readOnly: boolean,
  ) {}

  /**
   * Opens a raw image (O_RDWR, or O_RDONLY when `readOnly`). Throws
   * BlockBackendError: missing, a directory or other non-regular file, no
   * permission, a read-only file or file system without `readOnly`, a size
   * that is not a whole number of 512-byte sectors.
   */
  static open(path: string, options: { readOnly: boolean }): FileBackend {
    const { fd, size } = openImage(path, options.readOnly);
    return new FileBackend(path, fd, size, options.readOnly);
  }

  /** Checks that `open` would succeed, without keeping the file open. */
  static check(path: string, options: { readOnly: boolean }): void {
    fs.closeSync(openImage(path, options.readOnly).fd);
  }

  async read(into: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < into.length) {
      const n = await callback<number>((cb) => fs.read(this.fd, into, done, into.length - done, position + done, cb));
      if (n === 0) {
        into.fill(0, done); // the file shrank under us: past its end reads as zeros
        return;
      }
      done += n;
    }
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    this.checkWritable();
    let done = 0;
    while (done < data.length) {
      done += await callback<number>((cb) => fs.write(this.fd, data, done, data.length - done, position + done, cb));
    }
  }

  flush(): Promise<void> {
    return callback<void>((cb) => fs.fdatasync(this.fd, (err) => cb(err, undefined)));
  }

  async discard(position: number, length: number): Promise<void> {
    this.checkWritable();
    if (length === 0 || !this.punch) return;
    // Unsupported here (e.g. a file system without hole punching): discard stays a no-op, which §5.2.6.2 allows.
    if (!(await fallocateAsync(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, position, length))) this.punch = false;
  }

  async writeZeroes(position: number, length: number, unmap: boolean): Promise<void> {
    this.checkWritable();
    if (length === 0) return;
    if (unmap && this.punch) {
      if (await fallocateAsync(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, position, length)) return;
      this.punch = false;
    }
    if (this.zeroRange) {
      if (await fallocateAsync(this.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, position, length)) return;
      this.zeroRange = false;
    }
    zeros ??= new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < length; done += ZERO_CHUNK) {
      await this.write(zeros.subarray(0, Math.min(ZERO_CHUNK, length - done)), position + done);
    }
  }

  private checkWritable(): void {
    // The device refuses writes to a read-only disk before they get here; this is the second lock.
    if (this.readOnly) throw new Error(`disk image ${this.path} is attached read-only`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await callback<void>((cb) => fs.close(this.fd, (err) => cb(err, undefined)));
  }
}
