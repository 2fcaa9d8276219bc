import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { serveCommand, TOKEN_ENV } from '../../src/cli/serve.js';
import type { WebServer } from '../../src/web/server.js';
import { VmmError } from '../../src/vmm/errors.js';

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c: Buffer) => (text += c.toString()));
  return { stream, text: () => text };
}

test('serve prints its URL and a generated token, which the server then requires', async () => {
  const out = capture();
  const err = capture();
  let stop: (why: string) => void = () => {};
  let server: WebServer | undefined;
  let failure: unknown;
  const status = serveCommand({ port: '0' }, err.stream, {
    stdout: out.stream,
    env: {},
    stopRequested: new Promise((r) => (stop = r)),
    onListening: (s) => {
      server = s;
      void (async () => {
        assert.equal((await fetch(new URL('/api/vms', s.url))).status, 401);
        assert.equal((await fetch(new URL('/api/vms', s.url), { headers: { Authorization: `Bearer ${s.token}` } })).status, 200);
      })()
        .catch((e: unknown) => (failure = e))
        .finally(() => stop('test'));
    },
  });
  assert.equal(await status, 0);
  if (failure) throw failure;
  assert.match(out.text(), /^typevisor web console on http:\/\/127\.0\.0\.1:\d+\/\ntoken: [0-9a-f]{64}\n$/);
  assert.ok(server && out.text().includes(server.token));
  assert.match(err.text(), /test: stopping every VM/);
});

test('serve takes the token from the environment and does not print it', async () => {
  const out = capture();
  const token = 'env-token-0123456789';
  const status = serveCommand({ port: '0' }, capture().stream, { stdout: out.stream, env: { [TOKEN_ENV]: token }, stopRequested: Promise.resolve('test') });
  assert.equal(await status, 0);
  assert.doesNotMatch(out.text(), new RegExp(token));
  assert.match(out.text(), new RegExp(`token: as given in \\$${TOKEN_ENV}`));
});

test('serve refuses a bad port, a short token and a busy port by name', async () => {
  await assert.rejects(serveCommand({ port: '70000' }, capture().stream, { stopRequested: Promise.resolve('x') }), (e: Error) => e instanceof VmmError && /--port "70000" is not a TCP port/.test(e.message));
  await assert.rejects(serveCommand({ port: 'http' }, capture().stream, { stopRequested: Promise.resolve('x') }), VmmError);
  const err = capture();
  assert.equal(await serveCommand({ port: '0', token: 'short' }, err.stream, { stdout: capture().stream, stopRequested: Promise.resolve('x') }), 1);
  assert.match(err.text(), /token must be at least 16 characters/);

  let stop: (why: string) => void = () => {};
  let busyPort = 0;
  const listening = new Promise<void>((resolve) => {
    void serveCommand({ port: '0', token: 'a'.repeat(20) }, capture().stream, {
      stdout: capture().stream,
      stopRequested: new Promise((r) => (stop = r)),
      onListening: (s) => {
        busyPort = s.port;
        resolve();
      },
    });
  });
  await listening;
  const busy = capture();
  assert.equal(await serveCommand({ port: String(busyPort), token: 'a'.repeat(20) }, busy.stream, { stdout: capture().stream, stopRequested: Promise.resolve('x') }), 1);
  assert.match(busy.text(), /the port is in use/);
  stop('done');
});
