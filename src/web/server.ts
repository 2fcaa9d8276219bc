/**
 * The web console's HTTP and WebSocket server. It only parses and checks
 * requests and moves bytes: VMs live in their own VMM processes (VmManager),
 * each driven through its Firecracker-compatible API.
 *
 * HTTP (all need the token, except the login page itself):
 *   GET  /                          the console page
 *   GET  /login, POST /login        the login form; sets the session cookie
 *   POST /logout
 *   GET  /static/…, /vendor/…       the page's script and style, xterm.js
 *   GET  /api/images                what the create form offers
 *   GET  /api/vms                   every VM, with its live figures
 *   POST /api/vms                   create (and optionally start) a VM
 *   GET  /api/vms/{id}
 *   POST /api/vms/{id}/{start|pause|resume|stop}
 *   DELETE /api/vms/{id}            stop and forget
 * WebSocket:
 *   /api/vms/{id}/console           binary frames: guest serial output out
 *                                   (recent history first), keystrokes in
 */
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CLEAR_COOKIE, generateToken, hostOfHeader, isLoopbackAddress, isLoopbackHost, requestToken, sessionCookie, tokenMatches, validateToken } from './auth.js';
import { listImages, type ImageChoice } from './images.js';
import { parseCreateRequest, RequestError, VmManager } from './manager.js';
import { VmStateError, type VmProcess } from './vm-process.js';
import { ApiCallError } from './api-client.js';
import { loginPage } from './login-page.js';
import { VERSION } from '../version.js';

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;
/** The largest JSON request body taken (a create request is well under 1 KiB). */
const MAX_BODY_BYTES = 64 * 1024;
/** Bytes of an oversized body read and dropped before the connection is cut. */
const DISCARD_LIMIT = 16 * MAX_BODY_BYTES;
/** The largest keystroke frame taken from a console (a paste). */
const MAX_INPUT_FRAME = 64 * 1024;

/** src/web/static of this installation (this file runs from dist/src/web/). */
export const STATIC_DIR = fileURLToPath(new URL('../../../src/web/static/', import.meta.url));
const XTERM_DIR = dirname(createRequire(import.meta.url).resolve('@xterm/xterm/package.json'));

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Files served outside /static: xterm.js from its npm package, no CDN. */
const VENDOR: Record<string, string> = {
  '/vendor/xterm.mjs': join(XTERM_DIR, 'lib', 'xterm.mjs'),
  '/vendor/xterm.css': join(XTERM_DIR, 'css', 'xterm.css'),
};

const SECURITY_HEADERS: http.OutgoingHttpHeaders = {
  // xterm.js sets element styles at run time, hence 'unsafe-inline' for styles only.
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  // Not no-referrer: with it, browsers send "Origin: null" on form posts and the origin check fails.
  'Referrer-Policy': 'same-origin',
  'Cache-Control': 'no-store',
};

export interface WebServerOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /** The access token (default: 32 random bytes, hex). */
  token?: string;
  /**
   * The admin asked for this host explicitly (`--host`): a non-loopback
   * address is then allowed, and Host headers are not checked.
   */
  hostExplicit?: boolean;
  /** The VMM program run per VM (default: this node with vm-child.js). */
  vmmCommand?: readonly string[];
  /** Where per-VM directories go (default: the system temp directory). */
  stateDir?: string;
  /** The images the form offers (default: listImages()). */
  images?: () => ImageChoice[];
  sampleMs?: number;
  log?: (line: string) => void;
}

/** The server cannot start as asked (a non-loopback address without --host, a bad token, a busy port). */
export class WebServerError extends Error {
  override name = 'WebServerError';
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function defaultVmmCommand(): string[] {
  return [process.execPath, fileURLToPath(new URL('./vm-child.js', import.meta.url))];
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...SECURITY_HEADERS, ...headers, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendHtml(res: http.ServerResponse, status: number, html: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, 'X-Frame-Options': 'DENY', ...headers, 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(html) });
  res.end(html);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        // Answered at once; the rest is read and dropped so the client sees
        // the answer rather than a reset, up to a point.
        chunks.length = 0;
        reject(new HttpError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`));
        if (size > DISCARD_LIMIT) req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function wantsHtml(req: http.IncomingMessage): boolean {
  return req.method === 'GET' && (req.headers.accept ?? '').includes('text/html');
}

export class WebServer {
  readonly manager: VmManager;
  readonly token: string;
  private readonly server: http.Server;
  private readonly wss: WebSocketServer;
  private readonly loopbackOnly: boolean;
  private readonly images: () => ImageChoice[];
  private readonly log: (line: string) => void;
  private address: AddressInfo | undefined;

  private constructor(private readonly options: WebServerOptions) {
    this.token = options.token !== undefined ? validateToken(options.token) : generateToken();
    const host = options.host ?? DEFAULT_HOST;
    this.loopbackOnly = isLoopbackHost(host);
    this.images = options.images ?? listImages;
    this.log = options.log ?? (() => {});
    this.manager = new VmManager({
      command: options.vmmCommand ?? defaultVmmCommand(),
      images: this.images,
      ...(options.stateDir !== undefined && { stateDir: options.stateDir }),
      ...(options.sampleMs !== undefined && { sampleMs: options.sampleMs }),
    });
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        const err = e instanceof HttpError ? e : new HttpError(500, e instanceof Error ? e.message : String(e));
        if (err.status >= 500) this.log(`${req.method} ${req.url}: ${err.message}`);
        if (!res.headersSent) sendJson(res, err.status, { error: err.message });
        else res.destroy();
      });
    });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_INPUT_FRAME });
    this.server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
  }

  /** Listens; refuses a non-loopback address unless it was asked for explicitly. */
  static async start(options: WebServerOptions = {}): Promise<WebServer> {
    const host = options.host ?? DEFAULT_HOST;
    if (!isLoopbackHost(host) && !options.hostExplicit) {
      throw new WebServerError(`refusing to listen on ${host}: the console is loopback-only unless --host names the address explicitly`);
    }
    const s = new WebServer(options);
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', (e: NodeJS.ErrnoException) => reject(new WebServerError(`cannot listen on ${host}:${options.port ?? DEFAULT_PORT}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`)));
      s.server.listen(options.port ?? DEFAULT_PORT, host, () => resolve());
    });
    s.address = s.server.address() as AddressInfo;
    return s;
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  /** The console's URL (without the token). */
  get url(): string {
    const a = this.address;
    if (!a) return '';
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}/`;
  }

  /** Stops every VM, closes every console and stops listening. */
  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await this.manager.closeAll();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** Host-header and peer checks for a loopback-only server (DNS rebinding, odd routing). */
  private originRefusal(req: http.IncomingMessage): string | undefined {
    if (!this.loopbackOnly || this.options.hostExplicit) return undefined;
    if (!isLoopbackAddress(req.socket.remoteAddress)) return `connections from ${req.socket.remoteAddress ?? 'an unknown address'} are refused: the console is loopback-only`;
    const host = hostOfHeader(req.headers.host);
    if (host === undefined || !isLoopbackHost(host)) return `Host "${req.headers.host ?? ''}" is not this loopback server`;
    return undefined;
  }

  /** Same-origin check for requests a browser could send cross-site. */
  private sameOrigin(req: http.IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }

  private authorized(req: http.IncomingMessage): boolean {
    return tokenMatches(this.token, requestToken(req));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const refusal = this.originRefusal(req);
    if (refusal) throw new HttpError(403, refusal);
    const url = new URL(req.url ?? '/', 'http://console');
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (path === '/login') return this.login(req, res, method);
    if (!this.authorized(req)) {
      if (wantsHtml(req)) return sendHtml(res, 401, loginPage({ version: VERSION }));
      throw new HttpError(401, 'a valid token is required (Authorization: Bearer <token>, or log in)');
    }
    if (method !== 'GET' && method !== 'HEAD') {
      if (!this.sameOrigin(req)) throw new HttpError(403, 'cross-origin requests are refused');
    }

    if (path === '/logout' && method === 'POST') {
      res.writeHead(303, { ...SECURITY_HEADERS, 'Set-Cookie': CLEAR_COOKIE, Location: '/login' }).end();
      return;
    }
    if (method === 'GET' && (path === '/' || path === '/index.html')) return this.serveFile(res, join(STATIC_DIR, 'index.html'));
    if (method === 'GET' && path.startsWith('/static/')) return this.serveStatic(res, path.slice('/static/'.length));
    if (method === 'GET' && VENDOR[path] !== undefined) return this.serveFile(res, VENDOR[path]);
    if (path.startsWith('/api/')) return this.api(req, res, method, path.slice('/api/'.length).split('/'));
    throw new HttpError(404, `no such page: ${path}`);
  }

  private async login(req: http.IncomingMessage, res: http.ServerResponse, method: string): Promise<void> {
    if (method === 'GET') return sendHtml(res, 200, loginPage({ version: VERSION }));
    if (method !== 'POST') throw new HttpError(405, 'use GET or POST for /login');
    if (!this.sameOrigin(req)) throw new HttpError(403, 'cross-origin requests are refused');
    const form = new URLSearchParams(await readBody(req));
    const given = form.get('token')?.trim();
    if (!tokenMatches(this.token, given)) {
      this.log(`refused a login from ${req.socket.remoteAddress ?? '?'}: wrong token`);
      return sendHtml(res, 401, loginPage({ version: VERSION, error: 'That token is not the one this server printed at start.' }));
    }
    res.writeHead(303, { ...SECURITY_HEADERS, 'Set-Cookie': sessionCookie(this.token), Location: '/' }).end();
  }

  private async serveStatic(res: http.ServerResponse, rel: string): Promise<void> {
    const full = normalize(join(STATIC_DIR, rel));
    if (!full.startsWith(STATIC_DIR.endsWith(sep) ? STATIC_DIR : STATIC_DIR + sep)) throw new HttpError(404, 'no such file');
    return this.serveFile(res, full);
  }

  private async serveFile(res: http.ServerResponse, file: string): Promise<void> {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch {
      throw new HttpError(404, 'no such file');
    }
    const ext = /\.[a-z]+$/.exec(file)?.[0] ?? '';
    res.writeHead(200, { ...SECURITY_HEADERS, 'X-Frame-Options': 'DENY', 'Content-Type': STATIC_TYPES[ext] ?? 'application/octet-stream', 'Content-Length': data.length });
    res.end(data);
  }

  private vmOr404(id: string | undefined): VmProcess {
    const vm = id !== undefined ? this.manager.get(id) : undefined;
    if (!vm) throw new HttpError(404, `no VM "${id ?? ''}"`);
    return vm;
  }

  private async jsonBody(req: http.IncomingMessage): Promise<unknown> {
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'the request body must be JSON (Content-Type: application/json)');
    const text = await readBody(req);
    try {
      return JSON.parse(text);
    } catch {
      throw new HttpError(400, 'the request body is not valid JSON');
    }
  }

  private async api(req: http.IncomingMessage, res: http.ServerResponse, method: string, parts: string[]): Promise<void> {
    const [resource, id, action, ...rest] = parts;
    if (rest.length > 0) throw new HttpError(404, 'no such API path');
    if (resource === 'images' && id === undefined && method === 'GET') return sendJson(res, 200, this.images());
    if (resource !== 'vms') throw new HttpError(404, 'no such API path');
    if (id === undefined || id === '') {
      if (method === 'GET') return sendJson(res, 200, { vms: this.manager.list(), now: new Date().toISOString() });
      if (method === 'POST') {
        let request;
        try {
          request = parseCreateRequest(await this.jsonBody(req));
          const vm = await this.manager.create(request);
          return sendJson(res, 201, vm.info());
        } catch (e) {
          if (e instanceof RequestError) throw new HttpError(400, e.message);
          throw e;
        }
      }
      throw new HttpError(405, `${method} /api/vms is not served (GET or POST)`);
    }
    const vm = this.vmOr404(id);
    if (action === undefined) {
      if (method === 'GET') return sendJson(res, 200, { ...vm.info(), stderr: vm.stderrTail() });
      if (method === 'DELETE') {
        await this.manager.remove(vm.id);
        res.writeHead(204, SECURITY_HEADERS).end();
        return;
      }
      throw new HttpError(405, `${method} /api/vms/${id} is not served (GET or DELETE)`);
    }
    if (method !== 'POST') throw new HttpError(405, `use POST for /api/vms/${id}/${action}`);
    try {
      switch (action) {
        case 'start':
          await vm.start();
          break;
        case 'pause':
          await vm.pause();
          break;
        case 'resume':
          await vm.resume();
          break;
        case 'stop':
          await vm.stop();
          break;
        default:
          throw new HttpError(404, `no action "${action}" (start, pause, resume, stop)`);
      }
    } catch (e) {
      if (e instanceof VmStateError) throw new HttpError(409, e.message);
      if (e instanceof ApiCallError) throw new HttpError(e.status === 400 ? 409 : 502, `the VMM refused: ${e.message}`);
      throw e;
    }
    return sendJson(res, 200, vm.info());
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, why: string): void => {
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(why)}\r\nConnection: close\r\n\r\n${why}`);
    };
    const refusal = this.originRefusal(req);
    if (refusal) return refuse(403, refusal);
    if (!this.authorized(req)) return refuse(401, 'a valid token is required');
    if (!this.sameOrigin(req)) return refuse(403, 'cross-origin WebSocket connections are refused');
    const m = /^\/api\/vms\/([^/]+)\/console$/.exec(new URL(req.url ?? '/', 'http://console').pathname);
    const vm = m ? this.manager.get(decodeURIComponent(m[1]!)) : undefined;
    if (!vm) return refuse(404, 'no such console');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attachConsole(ws, vm));
  }

  private attachConsole(ws: WebSocket, vm: VmProcess): void {
    const history = vm.history();
    if (history.length > 0) ws.send(history);
    const onOutput = (chunk: Uint8Array): void => {
      if (ws.readyState === ws.OPEN) ws.send(chunk);
    };
    vm.on('output', onOutput);
    ws.on('message', (data, isBinary) => {
      const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      vm.input(isBinary ? bytes : Buffer.from(bytes.toString('utf8')));
    });
    ws.on('close', () => vm.off('output', onOutput));
    ws.on('error', () => vm.off('output', onOutput));
  }
}
