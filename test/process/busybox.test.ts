/**
 * The process-mode acceptance test: Debian's static busybox gives
 * byte-identical stdout, stderr and exit status under `typevisor exec` and
 * natively, for shell scripts (pipelines fork and exec), checksums,
 * compression round trips, sort, sed, awk with floating point, expr, od, seq, wc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { debianBusybox } from './busybox-fixture.js';

const EXEC = fileURLToPath(new URL('../../src/cli/exec.js', import.meta.url));
const RUNNER = `import(${JSON.stringify(EXEC)}).then(async (m) => { process.exitCode = await m.execCommand(process.argv.slice(1)); });`;
const ENV = { PATH: '/usr/bin:/bin', LC_ALL: 'C', HOME: '/tmp' };

const work = mkdtempSync(join(tmpdir(), 'tv-busybox-'));
const text = join(work, 'words.txt');
writeFileSync(text, ['pear 3 1.5', 'apple 10 2.25', 'fig 7 0.125', 'banana 3 10', 'apple 2 -1e3', 'cherry 12 3.5e-2', ''].join('\n'));
const blob = join(work, 'blob.bin');
writeFileSync(blob, randomBytes(192 * 1024));

interface Run { stdout: string; stderr: string; status: number | null }

function native(bb: string, args: string[], input?: string): Run {
  const r = spawnSync(bb, args, { env: ENV, input, cwd: work, encoding: 'latin1' });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

function soft(bb: string, args: string[], input?: string): Run {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', RUNNER, bb, ...args], { env: ENV, input, cwd: work, encoding: 'latin1', timeout: 300_000 });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const CASES: [string, string[], string?][] = [
  ['sh pipeline', ['sh', '-c', 'cat words.txt | sort | uniq -c | sort -rn | head -3']],
  ['sh loop and arithmetic', ['sh', '-c', 'i=0; s=0; while [ $i -lt 50 ]; do s=$((s + i * i)); i=$((i + 1)); done; echo "sum $s"; for w in a b c; do printf "%s-" $w; done; echo']],
  ['sh subshell, redirects, functions, case', ['sh', '-c', 'f() { case "$1" in a*) echo "A:$1";; *) echo "other:$1" >&2;; esac; }; f apple; f pear; (cd / && pwd); x=$(echo hi | tr a-z A-Z); echo "$x"; echo out > o.txt; cat < o.txt; exit 4']],
  ['sh here-document and read', ['sh', '-c', 'while read a b c; do [ -n "$a" ] && echo "$b $a"; done <<EOF\nx 1\ny 2\nEOF']],
  ['sh stdin', ['sh', '-c', 'wc -l; echo done'], 'one\ntwo\nthree\n'],
  ['sh exit status of a killed pipeline stage', ['sh', '-c', 'seq 1 100000 | head -n 2; echo "status $?"']],
  ['sha256sum', ['sha256sum', 'blob.bin', 'words.txt']],
  ['md5sum', ['md5sum', 'blob.bin']],
  ['gzip round trip', ['sh', '-c', 'gzip -c blob.bin > b.gz && gunzip -c b.gz | md5sum && gzip -9 -c words.txt | gunzip | wc -c']],
  ['sort', ['sort', '-k2,2n', '-k1,1', 'words.txt']],
  ['sort -r -u', ['sort', '-r', '-u', 'words.txt']],
  ['sed', ['sed', '-e', 's/\\([a-z]*\\) \\([0-9]*\\)/\\2:\\1/', '-e', '/fig/d', '-n', '-e', 'p', 'words.txt']],
  ['awk floating point', ['awk', '{ s += $3; p = p * 1.5 + $2 / 7 } END { printf "%.6f %.3e %g %d\\n", s, p, s / 3, int(p); print s * 1e10, -s, 0.1 + 0.2, 1 / 3 }', 'words.txt']],
  ['awk fields and arrays', ['awk', '{ n[$1] += $2 } END { for (k in n) print k, n[k] | "sort"; close("sort"); print length($0), NR }', 'words.txt']],
  ['expr', ['expr', '(', '7', '*', '6', ')', '+', '100', '/', '7', '%', '5']],
  ['expr failure', ['expr', 'abc', ':', 'x']],
  ['od', ['od', '-A', 'x', '-t', 'x1z', '-N', '64', 'blob.bin']],
  ['seq', ['seq', '-w', '-s', ',', '1', '3', '40']],
  ['seq floating', ['seq', '0.5', '0.25', '3']],
  ['wc', ['wc', 'words.txt', 'blob.bin']],
  ['missing file', ['cat', 'no-such-file']],
];

for (const [name, args, input] of CASES) {
  test(`busybox ${name}: identical under typevisor exec and natively`, (t) => {
    const bb = debianBusybox();
    if ('skip' in bb) { t.skip(bb.skip); return; }
    const want = native(bb.path, args, input);
    const got = soft(bb.path, args, input);
    assert.equal(got.stderr, want.stderr, 'stderr');
    assert.equal(got.stdout, want.stdout, 'stdout');
    assert.equal(got.status, want.status, 'exit status');
  });
}
