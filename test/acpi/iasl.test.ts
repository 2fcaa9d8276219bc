// The tables checked by ACPICA itself (Debian's acpica-tools): iasl
// disassembles each table, and acpiexec, the ACPICA interpreter Linux also
// runs, loads FADT + MADT + DSDT and performs the S5 transition.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allocateGuestMemory, heapBacking } from '../../src/memory/index.js';
import { MiB, PORT_ACPI_SLEEP_CONTROL, ramRanges } from '../../src/arch/x86_64/layout.js';
import { buildAcpi, cmosRtcAml, com1Aml, i8042Aml, S5_SLEEP_CONTROL_VALUE, virtioMmioAml, type AcpiResult } from '../../src/acpi/index.js';

let toolsChecked: string | undefined | null = null;

/** undefined when iasl and acpiexec run; otherwise why not. Installs acpica-tools once if missing. */
function missingTools(): string | undefined {
  if (toolsChecked !== null) return toolsChecked;
  const present = (): boolean => spawnSync('iasl', ['-v']).status === 0 && spawnSync('acpiexec', ['-v']).status === 0;
  if (!present()) {
    if (process.getuid?.() === 0) {
      const apt = (...args: string[]) => spawnSync('apt-get', args, { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
      if (!apt('install', '-y', 'acpica-tools') && apt('update')) apt('install', '-y', 'acpica-tools');
    }
  }
  toolsChecked = present() ? undefined : 'acpica-tools (iasl, acpiexec) is not installed and `apt-get install -y acpica-tools` did not install it';
  return toolsChecked;
}

const CPUS = 4;

function tablesOnDisk(): { dir: string; r: AcpiResult; bytes: Map<string, Uint8Array> } {
  const m = allocateGuestMemory(ramRanges(2 * MiB), heapBacking);
  const r = buildAcpi(m, {
    cpus: CPUS,
    devices: [
      com1Aml(),
      i8042Aml(),
      cmosRtcAml(),
      virtioMmioAml({ uid: 0, base: 0xd000_0000, size: 0x1000, gsi: 5 }),
      virtioMmioAml({ uid: 1, base: 0xd000_1000, size: 0x1000, gsi: 6 }),
    ],
  });
  const dir = mkdtempSync(join(tmpdir(), 'typevisor-acpi-'));
  const bytes = new Map<string, Uint8Array>();
  for (const t of r.tables) {
    const b = m.read(t.addr, t.length);
    bytes.set(t.signature, b);
    if (t.signature !== 'RSD PTR ') writeFileSync(join(dir, `${t.signature}.dat`), b);
  }
  return { dir, r, bytes };
}

/** Runs `iasl -d` on one table file; returns the .dsl text after checking ACPICA reported nothing. */
function disassemble(dir: string, file: string): string {
  const run = spawnSync('iasl', ['-d', file], { cwd: dir, encoding: 'utf8' });
  const out = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, out);
  assert.doesNotMatch(out, /warning|error/i, `iasl complained about ${file}:\n${out}`);
  const dsl = readFileSync(join(dir, file.replace(/\.dat$/, '.dsl')), 'utf8');
  assert.doesNotMatch(dsl, /\*\*\*\*/, `iasl flagged ${file}:\n${dsl}`);
  return dsl;
}

test('acpi iasl: the DSDT disassembles cleanly and holds COM1, the i8042, the RTC, the virtio-mmio slots and \\_S5_', (t) => {
  const why = missingTools();
  if (why) return t.skip(why);
  const { dir } = tablesOnDisk();
  try {
    const dsl = disassemble(dir, 'DSDT.dat');
    assert.match(dsl, /DefinitionBlock \("", "DSDT", 2, "TYPEVR", "TVDSDT  ", 0x00000001\)/);
    assert.match(dsl, /Name \(\\_S5, Package \(0x02\)[^{]*\{\s*0x05,\s*Zero\s*\}/);
    assert.match(dsl, /Scope \(\\_SB\)/);
    assert.match(dsl, /Device \(COM1\)\s*\{\s*Name \(_HID, EisaId \("PNP0501"\)[\s\S]*?IO \(Decode16,\s*0x03F8,[^\n]*\n\s*0x03F8,[^\n]*\n\s*0x01,[^\n]*\n\s*0x08,[\s\S]*?Interrupt \(ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, \)\s*\{\s*0x00000004,/);
    assert.match(dsl, /Device \(PS2K\)\s*\{\s*Name \(_HID, EisaId \("PNP0303"\)[\s\S]*?0x0060,[\s\S]*?0x0064,[\s\S]*?\{\s*0x00000001,/);
    assert.match(dsl, /Device \(RTC\)\s*\{\s*Name \(_HID, EisaId \("PNP0B00"\)[\s\S]*?0x0070,[\s\S]*?\{\s*0x00000008,/);
    for (const [slot, base, gsi] of [[0, 'D0000000', 5], [1, 'D0001000', 6]] as const) {
      const re = new RegExp(
        `Device \\(VR0${slot}\\)\\s*\\{\\s*Name \\(_HID, "LNRO0005"\\)[^\\n]*\\n\\s*Name \\(_UID, ${slot === 0 ? 'Zero' : 'One'}\\)[\\s\\S]*?` +
          `Memory32Fixed \\(ReadWrite,\\s*0x${base},[^\\n]*\\n\\s*0x00001000,[\\s\\S]*?` +
          `Interrupt \\(ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, \\)\\s*\\{\\s*0x0000000${gsi},`,
      );
      assert.match(dsl, re, `virtio-mmio slot ${slot}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acpi iasl: recompiling the disassembly reproduces our AML byte for byte, End Tag checksums aside', (t) => {
  const why = missingTools();
  if (why) return t.skip(why);
  const { dir, bytes } = tablesOnDisk();
  try {
    disassemble(dir, 'DSDT.dat');
    // -oa: no optimizations, so iasl keeps our absolute \_S5_ and \_SB_ paths.
    const run = spawnSync('iasl', ['-oa', '-p', 'recompiled', 'DSDT.dsl'], { cwd: dir, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.stdout + run.stderr, /0 Errors, 0 Warnings/);
    const ours = bytes.get('DSDT')!.subarray(36);
    const theirs = new Uint8Array(readFileSync(join(dir, 'recompiled.aml'))).subarray(36);
    assert.equal(theirs.length, ours.length);
    // iasl writes 0 into an End Tag's checksum ("treated as valid", ACPI 6.4 §6.4.2.9); we compute it.
    const differ: number[] = [];
    for (let i = 0; i < ours.length; i++) if (ours[i] !== theirs[i]) differ.push(i);
    assert.equal(differ.length, 5, 'one End Tag per _CRS');
    for (const i of differ) {
      assert.equal(ours[i - 1], 0x79, `difference at ${i} is an End Tag checksum`);
      assert.equal(theirs[i], 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acpi iasl: FADT, MADT and XSDT disassemble without complaint and decode as built', (t) => {
  const why = missingTools();
  if (why) return t.skip(why);
  const { dir, r } = tablesOnDisk();
  try {
    const fadt = disassemble(dir, 'FACP.dat');
    assert.match(fadt, /Hardware Reduced \(V5\) : 1/);
    assert.match(fadt, /Reset Register Supported \(V2\) : 1/);
    assert.match(fadt, /8042 Present on ports 60\/64 \(V2\) : 1/);
    assert.match(fadt, /FADT Minor Revision : 04/);
    assert.match(fadt, /Sleep Control Register : \[Generic Address Structure\][\s\S]*?Space ID : 01 \[SystemIO\][\s\S]*?Address : 0000000000000600/);
    assert.match(fadt, /Sleep Status Register : \[Generic Address Structure\][\s\S]*?Space ID : 01 \[SystemIO\][\s\S]*?Address : 0000000000000601/);
    assert.match(fadt, /Reset Register : \[Generic Address Structure\][\s\S]*?Address : 0000000000000602[\s\S]*?Value to cause reset : 01/);
    const dsdtAddr = r.tables.find((x) => x.signature === 'DSDT')!.addr;
    assert.match(fadt, new RegExp(`DSDT Address : ${dsdtAddr.toString(16).toUpperCase().padStart(16, '0')}`));

    const madt = disassemble(dir, 'APIC.dat');
    assert.match(madt, /Local Apic Address : FEE00000/);
    assert.equal(madt.match(/Processor Enabled : 1/g)?.length, CPUS);
    assert.match(madt, /Subtable Type : 01 \[I\/O APIC\][\s\S]*?Address : FEC00000[\s\S]*?Interrupt : 00000000/);

    const xsdt = disassemble(dir, 'XSDT.dat');
    assert.equal(xsdt.match(/ACPI Table Address +\d+ :/g)?.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acpi iasl: the same checks do flag a corrupted table', (t) => {
  const why = missingTools();
  if (why) return t.skip(why);
  const { dir, bytes } = tablesOnDisk();
  try {
    const bad = new Uint8Array(bytes.get('DSDT')!);
    // A lower-case letter inside a NameSeg: ACPICA repairs and warns.
    const at = Buffer.from(bad).indexOf('COM1');
    bad[at + 1] = 0x6f;
    writeFileSync(join(dir, 'BAD.dat'), bad);
    assert.throws(() => disassemble(dir, 'BAD.dat'), /iasl complained/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('acpi iasl: ACPICA loads FADT, MADT and DSDT and powers off by writing the S5 value to the sleep control port', (t) => {
  const why = missingTools();
  if (why) return t.skip(why);
  const { dir } = tablesOnDisk();
  try {
    const acpiexec = (args: string[]): string => {
      const run = spawnSync('acpiexec', [...args, 'FACP.dat', 'APIC.dat', 'DSDT.dat'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
      const out = run.stdout + run.stderr;
      assert.equal(run.status, 0, out);
      assert.doesNotMatch(out, /warning|error|exception/i, out);
      return out;
    };
    const out = acpiexec(['-b', 'sleep 5; evaluate \\_SB.VR01._CRS']);
    assert.match(out, /FACP .* \(v06 TYPEVR TVFACP/);
    assert.match(out, /Objects with +5 Devices/);
    assert.match(out, /HwExtendedSleep\s*: Entering sleep state \[S5\]/, 'hardware-reduced sleep path');
    assert.match(out, /\[Buffer\] Length 17 =\s*\n\s*0000: 86 09 00 01 00 10 00 D0 00 10 00 00 89 06 00 03/);
    // -x 0x4000000: ACPI_LV_IO, log every hardware register access.
    const io = acpiexec(['-x', '0x4000000', '-b', 'sleep 5']);
    const port = PORT_ACPI_SLEEP_CONTROL.toString(16).toUpperCase().padStart(16, '0');
    const value = S5_SLEEP_CONTROL_VALUE.toString(16).toUpperCase().padStart(16, '0');
    assert.match(io, new RegExp(`Wrote: ${value} width  8 +to ${port} \\(SystemIO\\)`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
