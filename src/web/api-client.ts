/**
 * A client of one VMM process's Firecracker-compatible API (docs/api/openapi.yaml):
 * HTTP/1.1 over its Unix socket. It only moves requests; a refusal comes back
 * as an ApiCallError carrying the VMM's own `fault_message`.
 */
import http from 'node:http';

/** How long one API call may take: InstanceStart builds the whole machine first. */
const CALL_TIMEOUT_MS = 30_000;

export class ApiCallError extends Error {
  override name = 'ApiCallError';
  constructor(
    message: string,
    /** The HTTP status, or 0 when the socket could not be reached or the call timed out. */
    readonly status: number,
  ) {
    super(message);
  }
}

export interface ApiReply {
  status: number;
  body: unknown;
}

export class VmmApiClient {
  constructor(readonly socketPath: string) {}

  /** One request; resolves with any HTTP answer, rejects only when there is none. */
  request(method: string, path: string, body?: unknown): Promise<ApiReply> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          method,
          path,
          timeout: CALL_TIMEOUT_MS,
          headers: text === undefined ? { Accept: 'application/json' } : { Accept: 'application/json', 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const raw = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = undefined;
            if (raw !== '') {
              try {
                parsed = JSON.parse(raw);
              } catch {
                parsed = raw;
              }
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', (e) => reject(new ApiCallError(`${method} ${path}: ${e.message}`, 0)));
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${CALL_TIMEOUT_MS / 1000} s`)));
      req.on('error', (e) => reject(new ApiCallError(`${method} ${path}: ${e.message}`, 0)));
      req.end(text);
    });
  }

  /** A request that must succeed (2xx); otherwise throws with the VMM's fault message. */
  async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const r = await this.request(method, path, body);
    if (r.status >= 200 && r.status < 300) return r.body;
    const fault = typeof r.body === 'object' && r.body !== null && 'fault_message' in r.body ? String((r.body as { fault_message: unknown }).fault_message) : JSON.stringify(r.body);
    throw new ApiCallError(fault, r.status);
  }
}
