import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocket } from 'ws';
import { WebServer, WebServerError } from '../../src/web/server.js';
import { generateToken, hostOfHeader, isLoopbackAddress, isLoopbackHost, TokenError, validateToken, TOKEN_COOKIE } from '../../src/web/auth.js';
import { call, startServer, TOKEN } from './helpers.js';

/** The status of a WebSocket handshake (101 when accepted). */
function handshake(server: WebServer, path: string, headers: Record<string, string>): Promise<number> {
  const url = new URL(path, server.url);
  url.protocol = 'ws:';
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('error', (e) => {
      if (!/Unexpected server response/.test(e.message)) reject(e);
    });
  });
}

/** A raw request with a chosen Host header (fetch does not let one set it). */
function rawGet(server: WebServer, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('generated tokens are 32 random bytes in hex, different each time', () => {
  const a = generateToken();
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.notEqual(a, generateToken());
});

test('admin tokens: too short, spaces or cookie separators are refused by name', () => {
  assert.throws(() => validateToken('short'), (e: Error) => e instanceof TokenError && /at least 16 characters/.test(e.message));
  assert.throws(() => validateToken('has a space in it!!'), (e: Error) => e instanceof TokenError && /without spaces/.test(e.message));
  assert.throws(() => validateToken('abcdefghijklmnop;q'), (e: Error) => e instanceof TokenError && /must not contain/.test(e.message));
  assert.equal(validateToken(TOKEN), TOKEN);
});

test('loopback recognition: addresses, names and Host headers', () => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopbackAddress(a), a);
  for (const a of ['10.0.0.1', '::', '0.0.0.0', '::ffff:10.0.0.1', undefined]) assert.ok(!isLoopbackAddress(a), String(a));
  for (const h of ['localhost', 'LOCALHOST', 'app.localhost', '[::1]', '127.0.0.1']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['0.0.0.0', 'example.com', 'localhost.example.com', '192.168.1.2']) assert.ok(!isLoopbackHost(h), h);
  assert.equal(hostOfHeader('127.0.0.1:8080'), '127.0.0.1');
  assert.equal(hostOfHeader('[::1]:80'), '[::1]');
  assert.equal(hostOfHeader('evil.example:80'), 'evil.example');
  assert.equal(hostOfHeader('a:b:c'), undefined);
});

test('a non-loopback address is refused unless named explicitly', async () => {
  await assert.rejects(WebServer.start({ host: '0.0.0.0', port: 0, token: TOKEN }), (e: Error) => e instanceof WebServerError && /refusing to listen on 0\.0\.0\.0.*loopback-only/.test(e.message));
  const s = await WebServer.start({ host: '0.0.0.0', hostExplicit: true, port: 0, token: TOKEN });
  try {
    assert.ok(s.port > 0);
  } finally {
    await s.close();
  }
});

test('a bad admin token stops the server from starting', async () => {
  await assert.rejects(WebServer.start({ port: 0, token: 'tooshort' }), TokenError);
});

test('requests without the token, or with a wrong one, are refused', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  for (const path of ['/api/vms', '/api/images', '/api/vms/vm1', '/static/app.js', '/static/style.css', '/vendor/xterm.mjs', '/vendor/xterm.css']) {
    const none = await call(server, path, { token: null });
    assert.equal(none.status, 401, `${path} without a token`);
    assert.doesNotMatch(none.text, /xterm|Terminal|"vms"/, `${path} leaks nothing`);
    const wrong = await call(server, path, { token: 'f'.repeat(32) });
    assert.equal(wrong.status, 401, `${path} with a wrong token`);
  }
  const create = await call(server, '/api/vms', { token: null, body: { image: 'console-guest' } });
  assert.equal(create.status, 401);
  assert.match((create.json() as { error: string }).error, /valid token is required/);
  const action = await call(server, '/api/vms/vm1/start', { token: null, method: 'POST' });
  assert.equal(action.status, 401);
  const malformed = await call(server, '/api/vms', { token: null, headers: { Authorization: 'Basic Zm9vOmJhcg==' } });
  assert.equal(malformed.status, 401, 'a non-Bearer Authorization header');
  assert.equal((await call(server, '/api/vms')).status, 200, 'the right token is accepted');
  assert.equal(server.manager.list().length, 0, 'no refused request created anything');
});

test('a browser without the token gets the login page, not the console', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const page = await call(server, '/', { token: null, headers: { Accept: 'text/html' } });
  assert.equal(page.status, 401);
  assert.match(page.text, /<form method="post" action="\/login">/);
  assert.doesNotMatch(page.text, /app\.js/);
  const console = await call(server, '/', { headers: { Accept: 'text/html' } });
  assert.equal(console.status, 200);
  assert.match(console.text, /\/static\/app\.js/);
  assert.match(console.headers.get('content-security-policy') ?? '', /script-src 'self'/);
});

test('login: a wrong token is refused; the right one sets an HttpOnly SameSite=Strict cookie that works', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const form = { 'Content-Type': 'application/x-www-form-urlencoded' };
  const wrong = await call(server, '/login', { token: null, body: 'token=nope', headers: form });
  assert.equal(wrong.status, 401);
  assert.match(wrong.text, /not the one this server printed/);
  assert.equal(wrong.headers.get('set-cookie'), null);
  const empty = await call(server, '/login', { token: null, body: '', headers: form });
  assert.equal(empty.status, 401);

  const right = await call(server, '/login', { token: null, body: `token=${TOKEN}`, headers: form });
  assert.equal(right.status, 303);
  assert.equal(right.headers.get('location'), '/');
  const cookie = right.headers.get('set-cookie') ?? '';
  assert.match(cookie, new RegExp(`^${TOKEN_COOKIE}=${TOKEN};`));
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const withCookie = await call(server, '/api/vms', { token: null, headers: { Cookie: `${TOKEN_COOKIE}=${TOKEN}` } });
  assert.equal(withCookie.status, 200);
  const badCookie = await call(server, '/api/vms', { token: null, headers: { Cookie: `${TOKEN_COOKIE}=${'0'.repeat(32)}` } });
  assert.equal(badCookie.status, 401);

  const logout = await call(server, '/logout', { token: null, method: 'POST', headers: { Cookie: `${TOKEN_COOKIE}=${TOKEN}` } });
  assert.equal(logout.status, 303);
  assert.match(logout.headers.get('set-cookie') ?? '', /Max-Age=0/);
});

test('WebSocket consoles need the token and this origin', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const origin = server.url.replace(/\/$/, '');
  assert.equal(await handshake(server, '/api/vms/vm1/console', {}), 401, 'no token');
  assert.equal(await handshake(server, '/api/vms/vm1/console', { Authorization: `Bearer ${'e'.repeat(32)}` }), 401, 'wrong token');
  assert.equal(await handshake(server, '/api/vms/vm1/console', { Cookie: `${TOKEN_COOKIE}=${TOKEN}`, Origin: 'http://evil.example' }), 403, 'cookie from another origin');
  assert.equal(await handshake(server, '/api/vms/vm1/console', { Cookie: `${TOKEN_COOKIE}=${TOKEN}`, Origin: origin }), 404, 'authorized, but no such VM');
  assert.equal(await handshake(server, '/nowhere', { Authorization: `Bearer ${TOKEN}` }), 404);
});

test('cross-origin and non-JSON state changes are refused even with the cookie', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const cookie = { Cookie: `${TOKEN_COOKIE}=${TOKEN}` };
  const cross = await call(server, '/api/vms', { token: null, body: { image: 'console-guest' }, headers: { ...cookie, Origin: 'http://evil.example' } });
  assert.equal(cross.status, 403);
  assert.match(cross.text, /cross-origin/);
  const form = await call(server, '/api/vms', { token: null, body: 'image=console-guest', headers: { ...cookie, 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.equal(form.status, 415);
  assert.equal(server.manager.list().length, 0);
});

test('a loopback server refuses Host headers that are not loopback (DNS rebinding)', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  assert.equal(await rawGet(server, '/api/vms', { Host: 'rebind.example:80', Authorization: `Bearer ${TOKEN}` }), 403);
  assert.equal(await rawGet(server, '/api/vms', { Host: `localhost:${server.port}`, Authorization: `Bearer ${TOKEN}` }), 200);
  assert.equal(await rawGet(server, '/api/vms', { Host: `127.0.0.1:${server.port}`, Authorization: `Bearer ${TOKEN}` }), 200);
});

test('bad create requests are refused with the field named', async (t) => {
  const server = await startServer({ images: () => [] });
  t.after(() => server.close());
  const cases: [unknown, number, RegExp][] = [
    ['{not json', 400, /not valid JSON/],
    [[], 400, /must be a JSON object/],
    [{ image: 'windows' }, 400, /image must be one of console-guest, linux-default, custom/],
    [{ image: 'custom' }, 400, /kernelPath is required for a custom image/],
    [{ image: 'console-guest', kernelPath: '/boot/vmlinuz' }, 400, /only for a custom image/],
    [{ image: 'console-guest', cpus: 0 }, 400, /cpus must be between 1 and 255 \(got 0\)/],
    [{ image: 'console-guest', cpus: 1.5 }, 400, /cpus must be a whole number/],
    [{ image: 'console-guest', memMib: 8 }, 400, /memMib must be between 16 and/],
    [{ image: 'console-guest', memMib: 1e9 }, 400, /memMib must be between 16 and/],
    [{ image: 'console-guest', engine: 'qemu' }, 400, /engine must be one of auto, kvm, soft/],
    [{ image: 'console-guest', disks: '/tmp/a' }, 400, /disks must be a list/],
    [{ image: 'console-guest', disks: [''] }, 400, /disks\[0\] must not be empty/],
    [{ image: 'console-guest', disks: Array(9).fill('/tmp/a') }, 400, /at most 8 disks/],
    [{ image: 'console-guest', name: 'a\nb' }, 400, /name must not contain control characters/],
    [{ image: 'console-guest', start: 'yes' }, 400, /start must be true or false/],
    [{ image: 'console-guest', root: true }, 400, /unknown field "root"/],
    [{ image: 'console-guest' }, 400, /image console-guest is not available/],
  ];
  for (const [body, status, message] of cases) {
    const r = await call(server, '/api/vms', { body });
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match((r.json() as { error: string }).error, message, JSON.stringify(body));
  }
  const big = await call(server, '/api/vms', { body: JSON.stringify({ image: 'custom', kernelPath: 'x'.repeat(70_000) }) });
  assert.equal(big.status, 413);
  assert.equal(server.manager.list().length, 0);
});

test('unknown VMs, actions and methods are named', async (t) => {
  const server = await startServer();
  t.after(() => server.close());
  const r1 = await call(server, '/api/vms/vm9');
  assert.equal(r1.status, 404);
  assert.match(r1.text, /no VM \\"vm9\\"/);
  assert.equal((await call(server, '/api/vms/vm9/start', { method: 'POST' })).status, 404);
  assert.equal((await call(server, '/api/vms', { method: 'PUT', body: {} })).status, 405);
  assert.equal((await call(server, '/api/nothing')).status, 404);
  assert.equal((await call(server, '/static/../../package.json')).status, 404);
  assert.equal((await call(server, '/static/%2e%2e/%2e%2e/package.json')).status, 404);
});
