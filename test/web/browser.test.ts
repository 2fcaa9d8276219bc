/**
 * The web console in a real browser: Debian's chromium, headless, driven by
 * playwright-core. Logs in, creates and starts a VM, types into its serial
 * console, pauses and resumes it, and saves a screenshot to
 * test-artifacts/web-console.png.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { startServer, TOKEN, vmMissing } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
/** test-artifacts/ of the checkout (this file runs from dist/test/web/). */
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));

/** Installs Debian's chromium when absent and we are root; returns why it is unavailable, or undefined. */
function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  if (process.getuid?.() !== 0) return `${CHROMIUM} is absent and installing it needs root (apt-get install chromium)`;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const r = spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'chromium'], { env, encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(CHROMIUM)) return `apt-get install chromium failed: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  return undefined;
}

async function terminalText(page: Page): Promise<string> {
  return (await page.locator('#terminal .xterm-rows').innerText()).replace(/\u00a0/g, ' ');
}

async function waitForTerminal(page: Page, needle: string | RegExp, timeout = 15_000): Promise<void> {
  const deadline = Date.now() + timeout;
  let text = '';
  while (Date.now() < deadline) {
    text = await terminalText(page);
    if (typeof needle === 'string' ? text.includes(needle) : needle.test(text)) return;
    await page.waitForTimeout(100);
  }
  assert.fail(`the terminal did not show ${String(needle)} within ${timeout} ms; it shows:\n${text}`);
}

test('browser: log in, create and start a VM, type into its console, pause and resume', async (t) => {
  const missing = vmMissing() ?? chromiumMissing();
  if (missing) return t.skip(`browser test: ${missing}`);
  const server = await startServer();
  t.after(() => server.close());
  const profile = mkdtempSync(join(tmpdir(), 'tv-chromium-'));
  // A fresh profile each run (playwright passes it as --user-data-dir).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1360, height: 860 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // One hook, in this order: the browser must be gone before its profile is
  // removed (it writes its cache until it exits), and a failed removal must not
  // leave the browser running.
  t.after(async () => {
    await context.close().catch(() => {});
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch {
      // A leftover temporary profile is harmless.
    }
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));

  // Without the token: the login page. A wrong token is refused, the right one lets us in.
  const first = await page.goto(server.url);
  assert.equal(first?.status(), 401);
  await page.fill('#token', 'not-the-token-at-all');
  await page.click('button[type=submit]');
  await page.waitForSelector('.error');
  assert.match(await page.locator('.error').innerText(), /not the one this server printed/);
  await page.fill('#token', TOKEN);
  await page.click('button[type=submit]');
  await page.waitForSelector('#create-form');
  await page.waitForSelector('#image option[value="console-guest"]', { state: 'attached' });

  // The default Linux image is offered, and says whether it can run here.
  await page.selectOption('#image', 'linux-default');
  assert.match(await page.locator('#image-note').innerText(), /soft engine/);
  await page.selectOption('#image', 'console-guest');
  assert.equal(await page.inputValue('#engine'), 'kvm');

  await page.fill('#name', 'web-shell');
  await page.fill('#memory', '32');
  await page.click('#create');
  const row = page.locator('tr[data-vm="vm1"]');
  await row.locator('.state', { hasText: 'created' }).waitFor();
  await row.locator('button[data-action="start"]').click();
  await row.locator('.state', { hasText: 'running' }).waitFor();

  await waitForTerminal(page, 'typevisor console guest');
  await page.click('#terminal');
  await page.keyboard.type('echo hello from the browser');
  await page.keyboard.press('Enter');
  await waitForTerminal(page, /echo hello from the browser\s*\n\s*hello from the browser/);
  await page.keyboard.type('uname');
  await page.keyboard.press('Enter');
  await waitForTerminal(page, 'typevisor-console-guest');

  await page.click('#detail-actions button[data-action="pause"]');
  await row.locator('.state', { hasText: 'paused' }).waitFor();
  await page.click('#detail-actions button[data-action="resume"]');
  await row.locator('.state', { hasText: 'running' }).waitFor();
  await page.click('#terminal');
  await page.keyboard.type('exits 2000');
  await page.keyboard.press('Enter');
  await waitForTerminal(page, '2000 exits');
  // Let the chart gather a few samples (the test server samples every 250 ms).
  await page.waitForTimeout(2500);
  const figures = await page.locator('#figures').innerText();
  assert.match(figures, /VMM RSS\s+[\d.]+ MiB/);

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'web-console.png'), fullPage: true });
  assert.deepEqual(pageErrors, [], 'no script errors on the page');
});
