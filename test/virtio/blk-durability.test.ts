/**
 * virtio 1.2 §5.2.6.2 "stable writes": data a completed FLUSH covers (or,
 * with FLUSH not negotiated, data of any completed write) must be in the
 * image even if the VMM dies right after. A child process runs the device on
 * a real file and is SIGKILLed the moment the completion is visible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./blk-fixtures/flush-child.js', import.meta.url));

for (const mode of ['flush', 'write-through'] as const) {
  test(`blk: data made stable by ${mode === 'flush' ? 'a completed FLUSH' : 'a completed write without FLUSH negotiated'} survives SIGKILL of the VMM`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'typevisor-blk-durable-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'disk.img');
    writeFileSync(path, Buffer.alloc(1024 * 1024));
    const pattern = randomBytes(16 * 1024);
    const sector = 100;
    const child = spawn(process.execPath, [CHILD, path, String(sector), pattern.toString('hex'), mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('durable\n')) child.kill('SIGKILL');
      });
      child.on('close', (_code, sig) => resolve(sig));
    });
    assert.equal(out, 'durable\n', `child output\n${out}\n${err}`);
    assert.equal(signal, 'SIGKILL');
    const file = readFileSync(path);
    assert.ok(file.subarray(sector * 512, sector * 512 + pattern.length).equals(pattern), 'the pattern is in the image');
  });
}
