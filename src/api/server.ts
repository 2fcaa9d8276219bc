/**
 * HTTP/1.1 on a Unix socket, the transport of Firecracker's API. Only moves
 * bytes: every request goes to the handler as (method, path, body text).
 */
import http from 'node:http';
import net from 'node:net';
import { lstat, stat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ApiError, HTTP } from './errors.js';
import type { ApiRequest, ApiResponse } from './controller.js';

/** Firecracker's default request body limit (its HTTP_MAX_PAYLOAD_SIZE), in bytes. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 51_200;
/** sun_path holds 108 bytes on Linux (unix(7)), one of them the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
/** Bytes of an oversized body read and thrown away before the connection is cut. */
const DISCARD_LIMIT = 16 * 1024 * 1024;

export interface ApiServerOptions {
  socketPath: string;
  handler: (req: ApiRequest) => Promise<ApiResponse>;
  maxPayloadBytes?: number;
  /** One line per transport-level problem (oversized body, malformed HTTP). */
  log?: (line: string) => void;
}

/** The socket cannot be served: in use, not a socket, unreachable directory, too long a path. */
export class SocketError extends Error {
  override name = 'SocketError';
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Makes `path` free for listening: a socket nobody serves any more is
 * removed; a live one, or anything that is not a socket, is refused.
 */
export async function claimSocketPath(path: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new SocketError(`API socket path ${path} is ${Buffer.byteLength(path)} bytes long; Unix socket paths hold at most ${MAX_SOCKET_PATH_BYTES}`);
  }
  // listen(2) on a missing directory reports EACCES here, which misleads: look first.
  const dir = dirname(path);
  const dirOk = await stat(dir).then((d) => d.isDirectory(), () => false);
  if (!dirOk) throw new SocketError(`cannot listen on API socket ${path}: directory ${dir} does not exist`);
  let st;
  try {
    st = await lstat(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new SocketError(`${path} exists and is not a socket; refusing to replace it`);
  if (await isLive(path)) throw new SocketError(`API socket ${path} is in use: another process serves on it`);
  await unlink(path);
}

function send(res: http.ServerResponse, r: ApiResponse, close = false): void {
  const headers: http.OutgoingHttpHeaders = { Server: 'typevisor API' };
  if (close) headers.Connection = 'close';
  if (r.body === undefined) {
    res.writeHead(r.status, headers).end();
    return;
  }
  const text = JSON.stringify(r.body);
  headers['Content-Type'] = 'application/json';
  headers['Content-Length'] = Buffer.byteLength(text);
  res.writeHead(r.status, headers).end(text);
}

export class ApiServer {
  private constructor(
    private readonly server: http.Server,
    readonly socketPath: string,
  ) {}

  static async listen(opts: ApiServerOptions): Promise<ApiServer> {
    await claimSocketPath(opts.socketPath);
    const limit = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    const log = opts.log ?? (() => {});
    const tooLarge = (res: http.ServerResponse, req: http.IncomingMessage, size: number | undefined) => {
      const msg = `the request body${size !== undefined ? ` of ${size} bytes` : ''} is larger than the limit of ${limit} bytes`;
      log(`${req.method} ${req.url}: ${msg}`);
      send(res, { status: HTTP.BAD_REQUEST, body: { fault_message: msg } }, true);
      // Read the rest and drop it, so a client still sending sees the answer
      // rather than a reset; past DISCARD_LIMIT it is cut off.
      let discarded = 0;
      req.removeAllListeners('data');
      req.on('data', (c: Buffer) => {
        discarded += c.length;
        if (discarded > DISCARD_LIMIT) req.socket.destroy();
      });
      req.resume();
    };

    const server = http.createServer((req, res) => {
      const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
      if (declared !== undefined && declared > limit) return tooLarge(res, req, declared);
      const chunks: Buffer[] = [];
      let size = 0;
      let refused = false;
      req.on('data', (c: Buffer) => {
        if (refused) return;
        size += c.length;
        if (size > limit) {
          refused = true;
          tooLarge(res, req, undefined);
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        if (refused) return;
        const body = Buffer.concat(chunks);
        let text: string;
        try {
          text = new TextDecoder('utf-8', { fatal: true }).decode(body);
        } catch {
          send(res, { status: HTTP.BAD_REQUEST, body: { fault_message: 'the request body is not valid UTF-8' } });
          return;
        }
        opts.handler({ method: req.method ?? '', path: req.url ?? '/', body: text }).then(
          (r) => send(res, r),
          (e: unknown) => send(res, { status: HTTP.INTERNAL_SERVER_ERROR, body: { fault_message: ApiError.from(e).message } }),
        );
      });
    });
    // Orchestrators keep one connection for a VM's whole life.
    server.keepAliveTimeout = 0;
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      log(`malformed HTTP request: ${err.message}`);
      if (!socket.writable) return socket.destroy();
      const body = JSON.stringify({ fault_message: `malformed HTTP request: ${err.code ?? err.message}` });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => {
        reject(new SocketError(`cannot listen on API socket ${opts.socketPath}: ${e.code === 'ENOENT' ? 'its directory does not exist' : e.message}`));
      });
      server.listen(opts.socketPath, () => resolve());
    });
    return new ApiServer(server, opts.socketPath);
  }

  /** Stops accepting, ends idle connections, removes the socket file. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
    });
    await unlink(this.socketPath).catch(() => {});
  }

  /** Ends every connection at once, busy or not. */
  closeAllConnections(): void {
    this.server.closeAllConnections();
  }
}
