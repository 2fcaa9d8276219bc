/**
 * The host side of virtio-vsock over Unix sockets, with Firecracker's
 * conventions (docs/vsock.md there), so tools written for Firecracker work
 * unchanged:
 *
 * - Host → guest: a host application connects to the Unix socket `PATH` and
 *   sends `CONNECT <port>\n`; once the guest's listener on `port` accepts,
 *   it reads `OK <host-port>\n` and the socket carries the stream. If the
 *   guest refuses (or does not answer in time) the socket is closed.
 * - Guest → host: a guest connecting to CID 2 port P reaches the Unix socket
 *   `PATH_P`, on which the host application listens; no refused or missing
 *   listener, the guest's connect fails with ECONNRESET.
 *
 * Sockets are half-open capable: either side may shut down its sending side
 * and keep receiving.
 */
import { existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { VsockBackend, VsockHost, VsockHostInitiated, VsockHostStream, VsockStreamEvents } from '../virtio/vsock/backend.js';

/** Longest acceptable first line: "CONNECT 4294967295\n" is 19 bytes. */
const MAX_CONNECT_LINE = 32;
/** How long a new host connection may take to send its CONNECT line. */
export const CONNECT_LINE_TIMEOUT_MS = 10_000;

export class VsockUdsError extends Error {
  override name = 'VsockUdsError';
}

/** A net.Socket as the device's stream. */
function streamOf(socket: Socket): VsockHostStream {
  return {
    write: (data, done) => void socket.write(data, () => done()),
    end: () => void socket.end(),
    close: () => void socket.end(() => socket.destroy()),
    destroy: () => void socket.destroy(),
    pause: () => void socket.pause(),
    resume: () => void socket.resume(),
  };
}

/** Delivers a socket's events to the device. */
function wire(socket: Socket, events: VsockStreamEvents): void {
  let error: Error | undefined;
  socket.on('data', (b: Buffer) => events.data(b));
  socket.on('end', () => events.end());
  socket.on('error', (e) => {
    error = e;
  });
  socket.on('close', () => events.close(error));
}

export class UnixVsockBackend implements VsockBackend {
  private host: VsockHost | undefined;
  private readonly sockets = new Set<Socket>();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {
    server.on('connection', (s) => this.accept(s));
  }

  /** Listens on `path` for host applications; refuses an existing path (a stale socket must be removed by whoever owns it). */
  static listen(path: string): Promise<UnixVsockBackend> {
    if (existsSync(path)) return Promise.reject(new VsockUdsError(`vsock: ${path} already exists; remove it if no VM is using it`));
    return new Promise((resolve, reject) => {
      const server = createServer({ allowHalfOpen: true });
      server.once('error', (e) => reject(new VsockUdsError(`vsock: cannot listen on ${path}: ${e.message}`, { cause: e })));
      server.listen(path, () => {
        server.removeAllListeners('error');
        // A listening socket must not keep the process alive once the VM is done.
        server.unref();
        resolve(new UnixVsockBackend(path, server));
      });
    });
  }

  start(host: VsockHost): void {
    this.host = host;
  }

  connect(port: number, events: VsockStreamEvents): VsockHostStream {
    const socket = createConnection({ path: `${this.path}_${port}`, allowHalfOpen: true });
    this.track(socket);
    socket.once('connect', () => events.connected());
    wire(socket, events);
    return streamOf(socket);
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** A host application connected to PATH: read its CONNECT line, then hand it to the device. */
  private accept(socket: Socket): void {
    this.track(socket);
    let line = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), CONNECT_LINE_TIMEOUT_MS);
    timer.unref();
    const onData = (chunk: Buffer): void => {
      line = Buffer.concat([line, chunk]);
      const nl = line.indexOf(0x0a);
      if (nl < 0) {
        if (line.length > MAX_CONNECT_LINE) socket.destroy();
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const port = parseConnect(line.subarray(0, nl).toString('latin1'));
      const rest = line.subarray(nl + 1);
      const events = port === undefined || !this.host ? undefined : this.host.connectToGuest(port, this.hostInitiated(socket));
      if (!events) {
        socket.destroy();
        return;
      }
      // Bytes sent right behind the CONNECT line belong to the stream; the device holds them until the guest accepts.
      if (rest.length > 0) events.data(rest);
      wire(socket, events);
      socket.resume();
    };
    socket.on('data', onData);
    socket.on('error', () => {});
    socket.once('close', () => clearTimeout(timer));
  }

  private hostInitiated(socket: Socket): VsockHostInitiated {
    return { ...streamOf(socket), accepted: (localPort) => void socket.write(`OK ${localPort}\n`) };
  }

  /** Stops listening, removes PATH, and closes every stream. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const s of this.sockets) s.destroy();
      this.server.close(() => resolve());
      try {
        unlinkSync(this.path);
      } catch {
        // Already gone: nothing to clean.
      }
    });
    return this.closing;
  }
}

/** "CONNECT <port>" → port, or undefined for anything else (ports are u32, decimal, no sign or spaces). */
export function parseConnect(line: string): number | undefined {
  const m = /^CONNECT ([0-9]{1,10})\r?$/.exec(line);
  if (!m) return undefined;
  const port = Number(m[1]);
  return port <= 0xffff_ffff ? port : undefined;
}
