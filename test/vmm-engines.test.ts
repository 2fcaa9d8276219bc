import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KvmEngine } from '../src/engine/kvm/index.js';
import { defaultProbeCachePath, kvmHostKey, prepareEngine, probeKvmCached, selectEngine, type KvmHostKey, type KvmProbe } from '../src/vmm/engines.js';
import { VmmError } from '../src/vmm/errors.js';

const KEY: KvmHostKey = {
  release: '6.1.0-test', version: '#1 SMP', bootId: 'b0b0', modules: ['kvm', 'kvm_pvm'], device: '/dev/kvm',
  dev: { rdev: 2792, ino: 7, ctimeMs: 1 },
};
/** The probe never touches the engine in these tests. */
const NO_ENGINE = {} as KvmEngine;

/** A directory of its own for one test's cache file, removed after it. */
function scratch(t: TestContext): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-probe-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, path: join(dir, 'sub', 'kvm-probe.json') };
}

/** A probe that reports `ips` and counts its runs. */
function fakeProbe(ips: number): { runs: number; probe: (e: KvmEngine) => Promise<KvmProbe> } {
  const f = {
    runs: 0,
    probe: async () => {
      f.runs++;
      return { ips, native: ips >= 100e6 };
    },
  };
  return f;
}

test('engines: the KVM probe is measured once, then read from the cache while the host key holds', async (t) => {
  const s = scratch(t);
  const p = fakeProbe(1.4e6);
  const first = await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: p.probe });
  assert.deepEqual(first, { ips: 1.4e6, native: false });
  assert.ok(existsSync(s.path), 'the cache file (and its directory) is written');
  const second = await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: p.probe });
  assert.deepEqual(second, { ips: 1.4e6, native: false, cached: true });
  assert.equal(p.runs, 1);

  const native = fakeProbe(3e9);
  await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: { ...KEY, bootId: 'other' }, probe: native.probe });
  const again = await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: { ...KEY, bootId: 'other' }, probe: native.probe });
  assert.deepEqual(again, { ips: 3e9, native: true, cached: true });
  assert.equal(native.runs, 1);
});

test('engines: any change of the host key measures again', async (t) => {
  const s = scratch(t);
  const changes: Partial<KvmHostKey>[] = [
    { release: '6.2.0' },
    { version: '#2 SMP' },
    { bootId: 'rebooted' },
    { modules: ['kvm', 'kvm_amd'] },
    { device: '/dev/kvm2' },
    { dev: { rdev: 2792, ino: 8, ctimeMs: 1 } },
    { dev: { rdev: 2792, ino: 7, ctimeMs: 2 } },
  ];
  for (const change of changes) {
    await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: fakeProbe(1e6).probe });
    const p = fakeProbe(2e6);
    const r = await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: { ...KEY, ...change }, probe: p.probe });
    assert.equal(p.runs, 1, `changed ${Object.keys(change).join()}: probed again`);
    assert.equal(r.ips, 2e6);
    assert.equal(r.cached, undefined);
  }
});

test('engines: a corrupt, foreign or unclear cache file is ignored and rewritten', async (t) => {
  const s = scratch(t);
  await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: fakeProbe(1e6).probe });
  const good = readFileSync(s.path, 'utf8');
  const bad = [
    '',
    '{"version":1,',
    'null',
    '[]',
    good.replace('"version":1', '"version":2'),
    good.replace('"ips":1000000', '"ips":-5'),
    good.replace('"ips":1000000', '"ips":"fast"'),
    // Between the two thresholds: never written by a probe, so not trusted.
    good.replace('"ips":1000000', '"ips":50000000'),
  ];
  for (const text of bad) {
    writeFileSync(s.path, text);
    const p = fakeProbe(1e6);
    const r = await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: p.probe });
    assert.equal(p.runs, 1, `file ${JSON.stringify(text.slice(0, 40))}: probed again`);
    assert.deepEqual(r, { ips: 1e6, native: false });
    assert.equal(readFileSync(s.path, 'utf8'), good, 'and the file is rewritten');
  }
});

test('engines: an unclear probe result, or a host without a key, is not cached', async (t) => {
  const s = scratch(t);
  // 50 M instructions/s: emulated by the threshold, but near enough to native that a busy host may have slowed a native probe.
  const unclear = fakeProbe(50e6);
  await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: unclear.probe });
  await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: unclear.probe });
  assert.equal(unclear.runs, 2);
  assert.equal(existsSync(s.path), false);

  const keyless = fakeProbe(1e6);
  await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: undefined, probe: keyless.probe });
  await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: undefined, probe: keyless.probe });
  assert.equal(keyless.runs, 2);
  assert.equal(existsSync(s.path), false);
});

test('engines: an unwritable cache costs a probe, not an error', async (t) => {
  const s = scratch(t);
  writeFileSync(join(s.dir, 'sub'), 'a file where the cache directory should be');
  const p = fakeProbe(1e6);
  assert.deepEqual(await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: p.probe }), { ips: 1e6, native: false });
  assert.deepEqual(await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: s.path, key: KEY, probe: p.probe }), { ips: 1e6, native: false });
  assert.equal(p.runs, 2);
});

test('engines: the host key names this boot, the KVM modules and the device node; no device, no key', (t) => {
  assert.equal(kvmHostKey('/nonexistent/kvm'), undefined);
  if (!existsSync('/dev/kvm')) {
    t.skip('/dev/kvm is not present');
    return;
  }
  const key = kvmHostKey('/dev/kvm');
  assert.ok(key);
  assert.match(key.bootId, /^[0-9a-f-]{36}$/);
  assert.equal(key.device, '/dev/kvm');
  assert.ok(key.modules.every((m) => m.startsWith('kvm')));
  assert.ok(key.dev.ino > 0);
  assert.deepEqual(kvmHostKey('/dev/kvm'), key, 'stable while nothing changes');
});

test('engines: the cache lives under $XDG_CACHE_HOME, else ~/.cache', () => {
  assert.equal(defaultProbeCachePath({ XDG_CACHE_HOME: '/x/cache' }), '/x/cache/typevisor/kvm-probe.json');
  assert.match(defaultProbeCachePath({}), /\/\.cache\/typevisor\/kvm-probe\.json$/);
});

test('engines: an engine prepared early reports its failure to the selectEngine that takes it', async (t) => {
  const saved = process.env.TYPEVISOR_KVM_DEVICE;
  process.env.TYPEVISOR_KVM_DEVICE = '/nonexistent/kvm';
  t.after(() => {
    if (saved === undefined) delete process.env.TYPEVISOR_KVM_DEVICE;
    else process.env.TYPEVISOR_KVM_DEVICE = saved;
  });
  prepareEngine('kvm');
  await assert.rejects(selectEngine('kvm'), (e: unknown) => e instanceof VmmError && e.code === 'engine-unavailable' && /\/nonexistent\/kvm is not present/.test(e.message));
  // Taken once: the next selection opens the device again (and fails again the same way).
  await assert.rejects(selectEngine('kvm'), /\/nonexistent\/kvm is not present/);
  prepareEngine('auto');
  const auto = await selectEngine('auto');
  assert.equal(auto.engine.name, 'soft');
  assert.match(auto.note ?? '', /^engine: soft \(kvm engine: \/nonexistent\/kvm is not present/);
  // Nothing is prepared for the soft engine, and a soft selection leaves a prepared KVM alone.
  prepareEngine('soft');
  assert.equal((await selectEngine('soft')).engine.name, 'soft');
});

test('engines: a KVM engine prepared early has the boot CPU thread started', async (t) => {
  if (!existsSync('/dev/kvm')) {
    t.skip('/dev/kvm is not present');
    return;
  }
  prepareEngine('kvm');
  const { engine } = await selectEngine('kvm');
  assert.equal(engine.name, 'kvm');
  assert.equal((engine as KvmEngine).spareVcpus(), 1);
  engine.close?.();
});

test('engines: auto with a cached "emulated" verdict picks the soft engine and says the figure is from earlier', async (t) => {
  const key = kvmHostKey('/dev/kvm');
  if (!key) {
    t.skip('/dev/kvm is not present');
    return;
  }
  const s = scratch(t);
  const saved = { xdg: process.env.XDG_CACHE_HOME, device: process.env.TYPEVISOR_KVM_DEVICE };
  process.env.XDG_CACHE_HOME = s.dir;
  delete process.env.TYPEVISOR_KVM_DEVICE;
  t.after(() => {
    for (const [name, value] of [['XDG_CACHE_HOME', saved.xdg], ['TYPEVISOR_KVM_DEVICE', saved.device]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  await probeKvmCached(NO_ENGINE, '/dev/kvm', { path: defaultProbeCachePath(), key, probe: fakeProbe(1.4e6).probe });
  prepareEngine('auto');
  const auto = await selectEngine('auto');
  assert.equal(auto.engine.name, 'soft');
  assert.equal(auto.note, 'engine: soft (KVM here emulates guest kernel code: 1.4 M instructions/s, measured earlier this boot; use --engine kvm to run on it anyway)');
});
