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

test('kvm: a process that exits, or ends its spares, while they still load exits cleanly (no native crash)', (t) => {
  const probe = kvmOrSkip(t);
  if (!probe) return;
  probe.close();
  const threadModule = fileURLToPath(new URL('../../src/engine/kvm/vcpu-thread.js', import.meta.url));
  // Spares may still be loading koffi when the child's main module ends or ends half of them (after 0, 8, ..., 56 ms:
  // across the load): a thread stopped inside a native module's initialisation aborts the process ("FATAL ERROR:
  // Error::ThrowAsJavaScriptException napi_throw"), which `typevisor run` rejecting a bad kernel did once in CI.
  for (let run = 0; run < 8; run++) {
    const script = `const { SpareVcpuThread } = await import(${JSON.stringify(threadModule)});
      for (let k = 0; k < 4; k++) { const s = new SpareVcpuThread(); if (k % 2) setTimeout(() => s.end(), ${8 * run}); }
      setTimeout(() => undefined, ${8 * run});`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.error, undefined, `the child did not exit: ${r.error?.message}`);
    assert.doesNotMatch(r.stderr, /FATAL|napi/, `run ${run}`);
    assert.equal(r.status, 0, `run ${run}: ${r.stderr}`);
  }
});
