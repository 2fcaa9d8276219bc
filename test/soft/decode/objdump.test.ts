/**
 * Decoder cross-check on real code: every instruction of objdump's linear
 * sweep of .text in Debian's busybox-static and in the cloud kernel's
 * vmlinux. Length, mnemonic and operand text must match wherever the table
 * claims the instruction; what it does not claim (VEX, ...) is counted.
 *
 * vmlinux has ~6.7 M instructions (objdump alone needs ~7 s for them): by
 * default a deterministic 1/8 of .text is compared, the first 1/8 of each of
 * 64 equal slices; TYPEVISOR_DECODE_FULL=1 compares all of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { which } from '../../fixtures/debian-kernel.js';
import { compareWithObjdump, formatSummary, sectionInfo, type CompareSummary } from './objdump.js';
import { debianBusybox, debianVmlinux } from './fixtures.js';

const SLICES = 64;
const SAMPLE_FRACTION = 8;

function assertClean(s: CompareSummary): void {
  console.log(formatSummary(s));
  assert.ok(s.compared > 0, 'objdump produced no instructions');
  assert.equal(s.lengthMismatches, 0, 'length mismatches on claimed forms');
  assert.equal(s.mnemonicMismatches, 0, 'mnemonic mismatches on claimed forms');
  assert.equal(s.operandMismatches, 0, 'operand-text mismatches on claimed forms');
  assert.equal(s.badButDecoded, 0, 'instructions objdump rejects but the decoder accepts');
}

test('busybox-static .text: every instruction objdump finds decodes the same', async (t) => {
  if (!which('objdump')) return t.skip('objdump (binutils) is not installed');
  const bb = debianBusybox();
  if ('skip' in bb) return t.skip(bb.skip);
  const s = await compareWithObjdump(bb.path);
  assertClean(s);
  assert.ok(s.compared > 300_000, `only ${s.compared} instructions in busybox's .text`);
});

test('vmlinux .text (Debian cloud kernel): objdump and the decoder agree', async (t) => {
  if (!which('objdump')) return t.skip('objdump (binutils) is not installed');
  const vmlinux = debianVmlinux();
  if ('skip' in vmlinux) return t.skip(vmlinux.skip);
  const full = process.env['TYPEVISOR_DECODE_FULL'] === '1';
  let ranges: [bigint, bigint][] | undefined;
  if (!full) {
    const { vma, size } = sectionInfo(vmlinux.path, '.text');
    const slice = BigInt(Math.floor(size / SLICES));
    ranges = [];
    for (let i = 0n; i < BigInt(SLICES); i++) {
      const start = vma + i * slice;
      ranges.push([start, start + slice / BigInt(SAMPLE_FRACTION)]);
    }
  }
  const s = await compareWithObjdump(vmlinux.path, ranges ? { ranges } : {});
  console.log(`vmlinux: ${full ? 'all of .text' : `1/${SAMPLE_FRACTION} of .text in ${SLICES} slices (TYPEVISOR_DECODE_FULL=1 for all)`}`);
  assertClean(s);
});
