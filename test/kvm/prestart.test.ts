import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { kvmOrSkip, runSmpGuest } from './mini-guest.js';

test('kvm: vCPU threads started ahead serve the next VM; the rest start with it', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  engine.prestartVcpus(2);
  assert.equal(engine.spareVcpus(), 2);
  engine.prestartVcpus(1);
  assert.equal(engine.spareVcpus(), 2, 'prestartVcpus(n) tops the pool up to n, it does not add n');
  // Two spares and two new threads: the BSP and the APs must still be the right vCPUs.
  await runSmpGuest(engine, () => assert.equal(engine.spareVcpus(), 0));
  engine.close();
});

test('kvm: close() ends unused spare vCPU threads; prestartVcpus checks its count and the engine', async (t) => {
  const engine = kvmOrSkip(t);
  if (!engine) return;
  assert.throws(() => engine.prestartVcpus(-1), /prestartVcpus count must be a whole number, not -1/);
  assert.throws(() => engine.prestartVcpus(1.5), /prestartVcpus count must be a whole number, not 1.5/);
  engine.prestartVcpus(1);
  assert.equal(engine.spareVcpus(), 1);
  engine.close();
  assert.equal(engine.spareVcpus(), 0);
  assert.throws(() => engine.prestartVcpus(1), /kvm: engine is closed/);
});

test('kvm: a spare vCPU thread never keeps the process alive', (t) => {
  const probe = kvmOrSkip(t);
  if (!probe) return;
  probe.close();
  const engineModule = fileURLToPath(new URL('../../src/engine/kvm/index.js', import.meta.url));
  // The child starts a spare thread and neither uses nor closes the engine: it must still exit by itself.
  const script = `const { KvmEngine } = await import(${JSON.stringify(engineModule)}); new KvmEngine().prestartVcpus(1); console.log('started');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.error, undefined, `the child did not exit: ${r.error?.message}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'started');
});
