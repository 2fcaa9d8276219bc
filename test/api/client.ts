/**
 * A minimal HTTP client over a Unix socket, as an orchestrator talks to the
 * API, plus a harness that runs an API server in this process.
 */
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ApiController, ApiServer, type ControllerOptions } from '../../src/api/index.js';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The parsed JSON body, or undefined when there is none. */
  body: unknown;
}

/** `body`: a string or bytes as they are, anything else as JSON. */
export function request(socketPath: string, method: string, path: string, body?: string | Uint8Array | object, headers: http.OutgoingHttpHeaders = {}): Promise<Reply> {
  const text = body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const length = text !== undefined && headers['Transfer-Encoding'] === undefined ? { 'Content-Length': text.length } : {};
    const req = http.request({ socketPath, method, path, headers: { ...(text !== undefined && { 'Content-Type': 'application/json' }), ...length, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const t = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: t, body: t === '' ? undefined : JSON.parse(t) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(text);
  });
}

export function faultOf(r: Reply): string {
  return (r.body as { fault_message?: string } | undefined)?.fault_message ?? '';
}

export interface Harness {
  dir: string;
  socket: string;
  controller: ApiController;
  server: ApiServer;
  /** Guest serial output when no serial file is configured. */
  serial: () => string;
  /** Log lines written before PUT /logger. */
  log: () => string;
  call(method: string, path: string, body?: string | Uint8Array | object, headers?: http.OutgoingHttpHeaders): Promise<Reply>;
  close(): Promise<void>;
}

/** An API server on a fresh socket in a fresh directory. */
export async function startHarness(opts: ControllerOptions = {}, maxPayloadBytes?: number): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-api-'));
  const socket = join(dir, 'api.sock');
  const out = new PassThrough();
  let serial = '';
  out.on('data', (c: Buffer) => (serial += c.toString('latin1')));
  let log = '';
  const controller = new ApiController({ serialOutput: out, logFallback: (l) => (log += l), ...opts });
  const server = await ApiServer.listen({ socketPath: socket, handler: (r) => controller.handle(r), ...(maxPayloadBytes !== undefined && { maxPayloadBytes }) });
  return {
    dir,
    socket,
    controller,
    server,
    serial: () => serial,
    log: () => log,
    call: (method, path, body, headers) => request(socket, method, path, body, headers),
    async close() {
      await server.close();
      await controller.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
