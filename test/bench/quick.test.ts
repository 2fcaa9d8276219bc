/**
 * `npm run bench -- --quick` as CI runs it: the harness must run every suite
 * and write its three outputs, with a figure or a stated reason in every slot.
 * Values are not checked (this host is shared and noisy); that they exist is.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBench, SUITES } from '../../bench/run.js';
import { isMeasured, measured, ratio, type BenchResults, type Row } from '../../bench/lib/results.js';
import { formatNumber, markdown, svgChart } from '../../bench/lib/report.js';

test('bench --quick runs every suite and writes JSON, Markdown and SVG', { timeout: 120_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'typevisor-bench-test-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const t0 = Date.now();
  const { results, files } = await runBench({ quick: true, out, log: () => {} });
  assert.ok(Date.now() - t0 < 120_000, 'the quick run must stay under 2 minutes');

  const json = JSON.parse(readFileSync(files.json, 'utf8')) as BenchResults;
  for (const r of json.rows) {
    for (const [who, side] of [['ours', r.ours], ['reference', r.reference]] as const) {
      if (!isMeasured(side)) t.diagnostic(`${r.id} ${who}: ${side.absent}`);
    }
  }
  assert.equal(json.mode, 'quick');
  assert.ok(json.machine.cpu && json.machine.kvm && json.machine.node && json.machine.qemu);
  const groups = new Set(json.rows.map((r) => r.group));
  assert.equal(groups.size, Object.keys(SUITES).length, `one group per suite, got ${[...groups].join(', ')}`);
  for (const id of ['linux.boot.init', 'linux.loop', 'linux.sha256', 'linux.blk.write', 'linux.vms.concurrent', 'linux.vms.rate', 'linux.vms.rss', 'process.gzip.native', 'kvm.exit.pio', 'kvm.exit.mmio', 'vmm.start.first', 'vmm.mem.overhead', 'vmm.vms.rate', 'vmm.vms.concurrent']) {
    assert.ok(json.rows.some((r) => r.id === id), `row ${id} is missing`);
  }
  for (const row of json.rows) {
    for (const side of [row.ours, row.reference]) {
      if (isMeasured(side)) {
        assert.ok(side.runs.length >= 1 && side.runs.every(Number.isFinite), `${row.id}: runs ${JSON.stringify(side.runs)}`);
        assert.ok(side.min <= side.median && side.median <= side.max, `${row.id}: median outside its spread`);
      } else {
        assert.match(side.absent, /\S/, `${row.id}: a missing figure must say why`);
      }
    }
  }
  // Where the reference exists here, it must have been measured, not silently dropped.
  if (existsSync('/usr/bin/qemu-x86_64')) {
    const row = json.rows.find((r) => r.id === 'process.sha256sum.qemu')!;
    assert.ok(isMeasured(row.reference) || /busybox/.test((row.reference as { absent: string }).absent), JSON.stringify(row.reference));
  }
  if (existsSync('/dev/kvm') && json.machine.kvm.startsWith('PVM')) {
    for (const id of ['kvm.exit.pio', 'vmm.start.first', 'vmm.mem.overhead']) {
      const row = json.rows.find((r) => r.id === id)!;
      assert.ok(isMeasured(row.ours), `${id}: KVM is usable here, ours must be measured: ${JSON.stringify(row.ours)}`);
    }
  }

  const md = readFileSync(files.markdown, 'utf8');
  assert.match(md, /\| benchmark \| ours \| reference \| ratio \| spread/);
  for (const row of json.rows) assert.ok(md.includes(row.benchmark.replace(/\|/g, '\\|')), `Markdown lacks ${row.benchmark}`);
  const svgs = readdirSync(join(out, 'charts')).filter((f) => f.endsWith('.svg'));
  assert.equal(svgs.length, groups.size);
  for (const f of svgs) {
    const svg = readFileSync(join(out, 'charts', f), 'utf8');
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
    assert.ok(svg.length < 20_000, `${f} is ${svg.length} bytes: charts stay small`);
  }
  assert.ok(results.rows.length === json.rows.length);
});

const row = (ours: Row['ours'], reference: Row['reference']): Row => ({
  id: 't', group: 'g', benchmark: 'b | c', units: 'ms', better: 'lower', oursLabel: 'o', referenceLabel: 'r', notes: 'n', ours, reference,
});

test('measured() keeps every run and refuses empty or non-finite input', () => {
  assert.deepEqual(measured([3, 1, 2]), { runs: [3, 1, 2], median: 2, min: 1, max: 3 });
  assert.equal(measured([1, 2, 3, 10]).median, 2.5);
  assert.throws(() => measured([]), /at least one run/);
  assert.throws(() => measured([1, NaN]), /produced NaN/);
  assert.throws(() => measured([Infinity]), /produced Infinity/);
});

test('ratio is ours ÷ reference only when both sides were measured', () => {
  assert.equal(ratio(row(measured([2]), measured([4]))), 0.5);
  assert.equal(ratio(row({ absent: 'not available yet: x' }, measured([4]))), undefined);
  assert.equal(ratio(row(measured([2]), measured([0]))), undefined);
});

test('the Markdown names a missing side and its reason instead of a number, and escapes pipes', () => {
  const res: BenchResults = {
    date: '2026-01-01T00:00:00.000Z', mode: 'quick', seconds: 1, rows: [row({ absent: 'not available yet: soft engine' }, measured([1.5, 2.5, 2]))],
    machine: { cpu: 'c', cores: 2, memoryGiB: 1, kernel: 'k', kvm: 'PVM', node: 'v20', qemu: 'q', qemuUser: 'qu', os: 'o' },
  };
  const md = markdown(res);
  assert.match(md, /\| b \\\| c \| \*not available yet\* \| 2 \| — \|/);
  assert.match(md, /ours: not available yet: soft engine/);
  assert.match(svgChart('g', res.rows), /not available yet/);
});

test('formatNumber gives three significant digits and thousands separators', () => {
  assert.equal(formatNumber(0.012345), '0.0123');
  assert.equal(formatNumber(12.345), '12.3');
  assert.equal(formatNumber(89123.4), '89,123');
  assert.equal(formatNumber(0), '0');
});
