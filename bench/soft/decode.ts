/**
 * Decode rate on real code: a linear sweep of .text of Debian's busybox-static
 * (and of the cloud kernel's vmlinux when cached), one reused Instruction
 * record, repeated until ~2 s have passed. Run: node dist/bench/soft/decode.js
 */
import { readFileSync } from 'node:fs';
import { decode, Instruction, MODE_64, STATUS_OK } from '../../src/engine/soft/decode/index.js';
import { sectionInfo } from '../../test/soft/decode/objdump.js';
import { debianBusybox, debianVmlinux } from '../../test/soft/decode/fixtures.js';

function sweep(code: Uint8Array, start: number, end: number, insn: Instruction): number {
  let n = 0;
  for (let p = start; p < end; n++) {
    p += decode(insn, code, p, end, MODE_64) === STATUS_OK ? insn.length : 1;
  }
  return n;
}

function bench(name: string, file: string): void {
  const { fileOffset, size } = sectionInfo(file, '.text');
  const image = readFileSync(file);
  const code = new Uint8Array(image.buffer, image.byteOffset, image.byteLength);
  const insn = new Instruction();
  // Warm up until TurboFan has seen every path (rare forms deoptimize once each).
  for (const w0 = performance.now(); performance.now() - w0 < 3000;) sweep(code, fileOffset, fileOffset + size, insn);
  let decoded = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < 2000) {
    decoded += sweep(code, fileOffset, fileOffset + size, insn);
    elapsed = performance.now() - t0;
  }
  const rate = decoded / (elapsed / 1000);
  console.log(`${name}: ${(size / 1024).toFixed(0)} KiB of .text, ${decoded} decodes in ${(elapsed / 1000).toFixed(2)} s: ${(rate / 1e6).toFixed(1)} M decodes/s (${((elapsed * 1e6) / decoded).toFixed(0)} ns each)`);
}

for (const [name, fixture] of [['busybox-static', debianBusybox()], ['vmlinux', debianVmlinux()]] as const) {
  if ('skip' in fixture) console.log(`${name}: skipped: ${fixture.skip}`);
  else bench(name, fixture.path);
}
