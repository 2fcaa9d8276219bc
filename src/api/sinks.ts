/**
 * Host files the API writes: the log (PUT /logger), the metrics (PUT
 * /metrics) and the guest's serial output (PUT /serial).
 *
 * Opened as Firecracker opens them: read-write, created if missing, never
 * truncated, non-blocking. Read-write matters for named pipes: opening a FIFO
 * write-only and non-blocking fails while nobody reads it, read-write does
 * not. A write that would block is dropped and counted, never waited for: a
 * stalled log reader must not stall the VMM.
 */
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { ApiError } from './errors.js';

const OPEN_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NONBLOCK;
const FILE_MODE = 0o640;

export class HostFile {
  private fd: number | undefined;
  /** Writes dropped because the file or pipe would block, or failed. */
  dropped = 0;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Opens `path`; throws an ApiError naming the field and the OS's reason. */
  static open(path: string, field: string): HostFile {
    try {
      return new HostFile(path, openSync(path, OPEN_FLAGS, FILE_MODE));
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? 'its directory does not exist' : err.code === 'EISDIR' ? 'it is a directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
      throw ApiError.badRequest(`${field} ${path} cannot be opened for writing: ${why}`);
    }
  }

  /** Writes all of `bytes` or counts a drop. */
  write(bytes: Uint8Array | string): boolean {
    if (this.fd === undefined) return false;
    const data = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
    try {
      let done = 0;
      while (done < data.length) done += writeSync(this.fd, data, done, data.length - done);
      return true;
    } catch {
      this.dropped++;
      return false;
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Gathers guest serial bytes (the UART hands them over one at a time) and
 * passes them on once per event-loop turn, in order.
 */
export class ByteBatcher {
  private buf = new Uint8Array(4096);
  private len = 0;
  private scheduled = false;
  /** Bytes handed to the output. */
  written = 0;

  constructor(private readonly out: (chunk: Uint8Array) => void) {}

  readonly writeByte = (byte: number): void => {
    if (this.len === this.buf.length) {
      const bigger = new Uint8Array(this.buf.length * 2);
      bigger.set(this.buf);
      this.buf = bigger;
    }
    this.buf[this.len++] = byte;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  };

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.len === 0) return;
    const chunk = this.buf.slice(0, this.len);
    this.len = 0;
    this.written += chunk.length;
    this.out(chunk);
  };
}
