/**
 * Soft-engine speed on a real program: Debian's static busybox computing
 * sha256sum of N MiB of random data in process mode, against the same
 * binary natively. Needs busybox-static in the test cache (the process
 * tests fetch it with apt).
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/soft/exec-sha256.js [MiB]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Kernel } from '../../src/process/kernel.js';
import { debianBusybox } from '../../test/process/busybox-fixture.js';

const mib = Number(process.argv[2] ?? 4);
const bb = debianBusybox();
if ('skip' in bb) {
  console.log(`skipped: ${bb.skip}`);
  process.exit(0);
}
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tv-bench-'));
const file = path.join(dir, 'data.bin');
fs.writeFileSync(file, randomBytes(mib * 1024 * 1024));
const out = fs.openSync(path.join(dir, 'out'), 'w');

const t0 = process.hrtime.bigint();
const want = execFileSync(bb.path, ['sha256sum', file]).toString();
const nativeS = Number(process.hrtime.bigint() - t0) / 1e9;

const k = new Kernel({ stdio: [0, out, 2] });
const p = k.spawn(bb.path, ['busybox', 'sha256sum', file], ['LC_ALL=C']);
const t1 = process.hrtime.bigint();
await k.run(p);
const softS = Number(process.hrtime.bigint() - t1) / 1e9;
const got = fs.readFileSync(path.join(dir, 'out')).toString();
if (got !== want) throw new Error(`checksums differ: soft ${got} native ${want}`);
const [load1] = os.loadavg();
console.log(`busybox sha256sum ${mib} MiB: ${k.instructions} instructions in ${softS.toFixed(2)} s = ${(k.instructions / softS / 1e6).toFixed(1)} M instructions/s (native ${nativeS.toFixed(3)} s; host load average ${load1?.toFixed(1)})`);
