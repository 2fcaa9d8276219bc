import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUESTS, type GuestName } from './mini-guest.js';

const sources = fileURLToPath(new URL('../../../guest/mini/', import.meta.url));

test('kvm/mini-guest: the embedded guest bytes are what guest/mini/*.S assemble to', (t) => {
  if (spawnSync('as', ['--version']).status !== 0 || spawnSync('objcopy', ['--version']).status !== 0) return t.skip('binutils (as, objcopy) is not installed');
  const dir = mkdtempSync(join(tmpdir(), 'mini-guest-'));
  try {
    for (const name of Object.keys(GUESTS) as GuestName[]) {
      const obj = join(dir, `${name}.o`);
      const bin = join(dir, `${name}.bin`);
      execFileSync('as', ['--64', '-o', obj, join(sources, `${name}.S`)]);
      execFileSync('objcopy', ['-O', 'binary', '-j', '.text', obj, bin]);
      assert.equal(readFileSync(bin).toString('hex'), GUESTS[name], `${name}.S`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
