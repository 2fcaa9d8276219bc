/**
 * The harness pieces the Linux suite relies on: VMM command lines with disks,
 * the size knobs, and the idle-VM count (driven by stand-in processes that
 * print a marker and wait, as an idle guest does).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { idleVms } from '../../bench/lib/idle-vms.js';
import { watch } from '../../bench/lib/proc.js';
import { qemuMicrovm, typevisor } from '../../bench/lib/vmms.js';
import { linuxSizes, SIZE_KNOBS } from '../../bench/suites/linux-tcg.js';

const MiB = 2 ** 20;

test('disks become --disk for typevisor and virtio-blk drives for QEMU, in order', () => {
  const g = { kernel: '/k', memory: '512M', disks: ['/a.img', '/b,c.img'] };
  const ours = typevisor('soft', g).args;
  assert.deepEqual(ours.slice(ours.indexOf('--disk')), ['--disk', '/a.img', '--disk', '/b,c.img']);
  const ref = qemuMicrovm('/q', 'tcg', g).args.join(' ');
  assert.match(ref, /-drive id=disk0,file=\/a\.img,format=raw,if=none -device virtio-blk-device,drive=disk0 -drive id=disk1,file=\/b,,c\.img,format=raw,if=none -device virtio-blk-device,drive=disk1/);
  assert.ok(!qemuMicrovm('/q', 'tcg', { kernel: '/k', memory: '512M' }).args.includes('-drive'));
  assert.ok(!typevisor('soft', { kernel: '/k', memory: '512M' }).args.includes('--disk'));
});

test('the Linux suite sizes: the mode\'s, overridden by each knob set, bad knobs named', () => {
  assert.deepEqual(linuxSizes(false, {}), { loop: 200_000, disk: 64 * MiB, idleCap: 8 });
  assert.deepEqual(linuxSizes(true, {}), { loop: 2_000, disk: 4 * MiB, idleCap: 1 });
  assert.deepEqual(linuxSizes(false, { [SIZE_KNOBS.loop]: '500', [SIZE_KNOBS.diskMiB]: '2', [SIZE_KNOBS.idleCap]: '3' }), { loop: 500, disk: 2 * MiB, idleCap: 3 });
  assert.deepEqual(linuxSizes(false, { [SIZE_KNOBS.loop]: '' }), { loop: 200_000, disk: 64 * MiB, idleCap: 8 });
  for (const [k, v] of [[SIZE_KNOBS.loop, '0'], [SIZE_KNOBS.loop, '1e3'], [SIZE_KNOBS.diskMiB, '-1'], [SIZE_KNOBS.diskMiB, '1.5'], [SIZE_KNOBS.diskMiB, '4096'], [SIZE_KNOBS.idleCap, '65']] as const) {
    assert.throws(() => linuxSizes(false, { [k]: v }), new RegExp(`^RangeError: ${k}=${v.replace('.', '\\.')} is not a whole number`));
  }
});

/** A stand-in VM: prints `say` after `delayMs`, then idles until killed (or exits at once with `exit`). */
function fakeVm(say: string, delayMs = 0, exit = false) {
  const script = `setTimeout(() => { process.stdout.write(${JSON.stringify(say)}); ${exit ? 'process.exit(0);' : 'setInterval(() => {}, 1e6);'} }, ${delayMs});`;
  return () => watch(process.execPath, ['-e', script], ['READY']);
}

const base = { marker: 'READY', cap: 3, inFlight: 2, vmTimeoutMs: 10_000, totalMs: 20_000, guestBytes: 512 * MiB };

test('idle VMs: counts up to the cap, with their RSS and CPU use, and stops them all', async () => {
  const started: number[] = [];
  const r = await idleVms({
    ...base,
    cpuWindowMs: 300,
    start: () => {
      const w = fakeVm('READY\n')();
      started.push(w.child.pid!);
      return w;
    },
  });
  assert.equal(r.alive, 3);
  assert.equal(r.stopped, 'cap of 3');
  assert.equal(r.upMs.length, 3);
  // The span runs from the first start to the last marker: at least the slowest VM's own spawn-to-marker time.
  assert.ok(r.spanMs >= Math.max(...r.upMs), `span ${r.spanMs} ms covers every VM's ${r.upMs.join(', ')} ms`);
  assert.ok(r.rssPerVm > 10 * MiB && r.rssPerVm < 512 * MiB, `node's RSS, ${r.rssPerVm}`);
  assert.ok(r.cpuPerVm >= 0 && r.cpuPerVm < 0.5, `an idle process uses little CPU, got ${r.cpuPerVm}`);
  for (const pid of started) assert.throws(() => process.kill(pid, 0), /ESRCH/, `VM ${pid} is still running`);
});

test('idle VMs: a VM that never shows the marker stops the count and says which', async () => {
  let n = 0;
  // Seconds of margin: node itself starts slowly on a loaded host.
  const r = await idleVms({ ...base, inFlight: 1, vmTimeoutMs: 3_000, start: () => fakeVm(++n === 2 ? 'booting forever\n' : 'READY\n')() });
  assert.equal(r.alive, 1);
  assert.equal(r.stopped, 'VM 2 not up within 3 s');
});

test('idle VMs: one that exits before its marker is reported with its output', async () => {
  const r = await idleVms({ ...base, inFlight: 1, start: fakeVm('kernel panic\n', 0, true) });
  assert.equal(r.alive, 0);
  assert.match(r.stopped, /^VM 1 did not come up: .*exited.*kernel panic/);
});

test('idle VMs: the time bound ends the count and a VM still booting is not counted', async () => {
  let n = 0;
  const r = await idleVms({ ...base, inFlight: 1, totalMs: 3_000, start: () => fakeVm(++n === 2 ? 'booting forever\n' : 'READY\n')() });
  assert.equal(r.alive, 1);
  assert.equal(r.stopped, 'time bound of 3 s, VM 2 still booting');
  assert.ok(Number.isNaN(r.cpuPerVm), 'no CPU window asked');
});
