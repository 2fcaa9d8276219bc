/**
 * Shared pieces of the web console tests: a server on a free loopback port
 * with a known token, requests with or without it, and waiting for a VM state.
 */
import { accessSync, constants, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { WebServer, type WebServerOptions } from '../../src/web/server.js';
import { consoleGuestToolchainMissing } from '../../src/web/images.js';
import type { VmInfo, VmState } from '../../src/web/vm-process.js';

export const TOKEN = '0123456789abcdef0123456789abcdef';

export function startServer(opts: WebServerOptions = {}): Promise<WebServer> {
  return WebServer.start({ port: 0, token: TOKEN, stateDir: mkdtempSync(join(tmpdir(), 'tv-web-test-')), sampleMs: 250, ...opts });
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: () => unknown;
}

export async function call(server: WebServer, path: string, init: { method?: string; token?: string | null; body?: unknown; headers?: Record<string, string> } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  const token = init.token === undefined ? TOKEN : init.token;
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (init.body !== undefined) {
    body = typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    headers['Content-Type'] ??= 'application/json';
  }
  const res = await fetch(new URL(path, server.url), { method: init.method ?? (body !== undefined ? 'POST' : 'GET'), headers, ...(body !== undefined && { body }), redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** Why VMs cannot run in this test, or undefined. */
export function vmMissing(): string | undefined {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (e) {
    return `/dev/kvm is not usable here (${(e as Error).message})`;
  }
  return consoleGuestToolchainMissing();
}

export async function waitForState(server: WebServer, id: string, states: VmState[], timeoutMs = 20_000): Promise<VmInfo> {
  const deadline = Date.now() + timeoutMs;
  let last: VmInfo | undefined;
  while (Date.now() < deadline) {
    const r = await call(server, `/api/vms/${id}`);
    last = r.json() as VmInfo;
    if (states.includes(last.state)) return last;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`VM ${id} did not reach ${states.join('/')} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** A console WebSocket with everything received gathered as text. */
export class ConsoleClient {
  text = '';
  private waiters: { needle: string; resolve: () => void }[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.text += data.toString('latin1');
      this.waiters = this.waiters.filter((w) => {
        if (!this.text.includes(w.needle)) return true;
        w.resolve();
        return false;
      });
    });
  }

  static open(server: WebServer, id: string): Promise<ConsoleClient> {
    const url = new URL(`/api/vms/${id}/console`, server.url);
    url.protocol = 'ws:';
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${TOKEN}` } });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new ConsoleClient(ws)));
      ws.once('error', reject);
    });
  }

  send(text: string): void {
    this.ws.send(Buffer.from(text, 'latin1'));
  }

  waitFor(needle: string, timeoutMs = 15_000): Promise<void> {
    if (this.text.includes(needle)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`console did not show ${JSON.stringify(needle)} within ${timeoutMs} ms; got ${JSON.stringify(this.text)}`)), timeoutMs);
      this.waiters.push({ needle, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }

  close(): void {
    this.ws.close();
  }
}
