// AML encodings checked against byte sequences derived by hand from ACPI 6.4
// chapter 20 and §6.4 (resource descriptors).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AmlError,
  buffer,
  device,
  eisaId,
  eisaIdName,
  extendedInterrupt,
  integer,
  io,
  memory32Fixed,
  method,
  name,
  nameSeg,
  nameString,
  ONES,
  ONE,
  pkg,
  pkgLength,
  resourceTemplate,
  returnValue,
  scope,
  string,
  ZERO,
} from '../../src/acpi/aml.js';

const bytes = (...b: number[]): Uint8Array => Uint8Array.from(b);
const ascii = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0));
const isAmlError = (pattern: RegExp) => (e: unknown) => e instanceof AmlError && pattern.test(e.message);

test('aml: PkgLength uses one byte up to 63, then 2, 3 and 4 bytes at the 0xFFF / 0xFFFFF / 0xFFFFFFF limits', () => {
  assert.deepEqual(pkgLength(0), bytes(0x01));
  // 62 bytes of content + 1 length byte = 63, the largest one-byte PkgLength.
  assert.deepEqual(pkgLength(62), bytes(0x3f));
  // 63 + 2 = 65 = 0x41: lead byte 0b01 << 6 | low nibble 1, then 0x41 >> 4.
  assert.deepEqual(pkgLength(63), bytes(0x41, 0x04));
  // 4093 + 2 = 4095 = 0xFFF: the largest two-byte value.
  assert.deepEqual(pkgLength(4093), bytes(0x4f, 0xff));
  // 4094 + 2 = 4096 does not fit: three bytes, 4094 + 3 = 0x1001.
  assert.deepEqual(pkgLength(4094), bytes(0x81, 0x00, 0x01));
  // 0xFFFFF - 3: the largest three-byte value.
  assert.deepEqual(pkgLength(0xfffff - 3), bytes(0x8f, 0xff, 0xff));
  assert.deepEqual(pkgLength(0xfffff - 2), bytes(0xc1, 0x00, 0x00, 0x01));
  assert.deepEqual(pkgLength(0xfffffff - 4), bytes(0xcf, 0xff, 0xff, 0xff));
  assert.throws(() => pkgLength(0xfffffff - 3), isAmlError(/PkgLength limit/));
  assert.throws(() => pkgLength(-1), isAmlError(/bad package content length/));
  assert.throws(() => pkgLength(1.5), isAmlError(/bad package content length/));
});

test('aml: the encoded PkgLength value always counts its own bytes', () => {
  for (let n = 0; n < 5000; n++) {
    const p = pkgLength(n);
    let value = p.length === 1 ? p[0]! : p[0]! & 0x0f;
    for (let i = 1; i < p.length; i++) value += p[i]! * 2 ** (4 + 8 * (i - 1));
    assert.equal(value, n + p.length, `content ${n}`);
    assert.equal(p[0]! >> 6, p.length - 1);
  }
});

test('aml: integers take the shortest encoding at each width boundary', () => {
  assert.deepEqual(integer(0), bytes(0x00));
  assert.deepEqual(integer(1), bytes(0x01));
  assert.deepEqual(integer(2), bytes(0x0a, 0x02));
  assert.deepEqual(integer(0xff), bytes(0x0a, 0xff));
  assert.deepEqual(integer(0x100), bytes(0x0b, 0x00, 0x01));
  assert.deepEqual(integer(0xffff), bytes(0x0b, 0xff, 0xff));
  assert.deepEqual(integer(0x10000), bytes(0x0c, 0x00, 0x00, 0x01, 0x00));
  assert.deepEqual(integer(0xffff_ffff), bytes(0x0c, 0xff, 0xff, 0xff, 0xff));
  assert.deepEqual(integer(0x1_0000_0000), bytes(0x0e, 0, 0, 0, 0, 1, 0, 0, 0));
  assert.deepEqual(integer(0x1122_3344_5566_7788n), bytes(0x0e, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11));
  assert.deepEqual(integer((1n << 64n) - 2n), bytes(0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
  assert.deepEqual(integer((1n << 64n) - 1n), bytes(0xff));
  assert.deepEqual(ZERO, bytes(0x00));
  assert.deepEqual(ONE, bytes(0x01));
  assert.deepEqual(ONES, bytes(0xff));
});

test('aml: integers outside 0..2^64-1 or unsafe numbers are refused', () => {
  assert.throws(() => integer(-1), isAmlError(/non-negative safe integer/));
  assert.throws(() => integer(1.5), isAmlError(/non-negative safe integer/));
  assert.throws(() => integer(2 ** 53), isAmlError(/use a bigint/));
  assert.throws(() => integer(1n << 64n), isAmlError(/64 unsigned bits/));
  assert.throws(() => integer(-1n), isAmlError(/64 unsigned bits/));
});

test('aml: name segments are validated and padded with underscores', () => {
  assert.deepEqual(nameSeg('_HID'), bytes(...ascii('_HID')));
  assert.deepEqual(nameSeg('COM'), bytes(...ascii('COM_')));
  assert.deepEqual(nameSeg('_S5'), bytes(...ascii('_S5_')));
  assert.throws(() => nameSeg(''), isAmlError(/1 to 4 characters/));
  assert.throws(() => nameSeg('COM12'), isAmlError(/1 to 4 characters/));
  assert.throws(() => nameSeg('1COM'), isAmlError(/"1" is not allowed first/));
  assert.throws(() => nameSeg('com1'), isAmlError(/"c" is not allowed first/));
  assert.throws(() => nameSeg('CO-1'), isAmlError(/"-" is not allowed/));
});

test('aml: name strings encode root, parent, dual and multi-segment paths', () => {
  assert.deepEqual(nameString('_UID'), bytes(...ascii('_UID')));
  assert.deepEqual(nameString('\\_SB_'), bytes(0x5c, ...ascii('_SB_')));
  assert.deepEqual(nameString('\\_SB.COM1'), bytes(0x5c, 0x2e, ...ascii('_SB_COM1')));
  assert.deepEqual(nameString('_SB.PCI0.ISA'), bytes(0x2f, 0x03, ...ascii('_SB_PCI0ISA_')));
  assert.deepEqual(nameString('^^DEV'), bytes(0x5e, 0x5e, ...ascii('DEV_')));
  assert.deepEqual(nameString('\\'), bytes(0x5c, 0x00));
  assert.throws(() => nameString(''), isAmlError(/empty name/));
  assert.throws(() => nameString('A..B'), isAmlError(/1 to 4 characters/));
  assert.throws(() => nameString('\\^A'), isAmlError(/"\^" is not allowed first/));
  assert.throws(() => nameString(Array(256).fill('A').join('.')), isAmlError(/more than 255 segments/));
});

test('aml: strings are ASCII with a NUL terminator', () => {
  assert.deepEqual(string('LNRO0005'), bytes(0x0d, ...ascii('LNRO0005'), 0x00));
  assert.deepEqual(string(''), bytes(0x0d, 0x00));
  assert.throws(() => string('caf\u00e9'), isAmlError(/not ASCII/));
  assert.throws(() => string('a\0b'), isAmlError(/not ASCII/));
});

test('aml: Buffer, Name, Scope, Device, Method, Return and Package', () => {
  // BufferOp PkgLength(5 bytes of content) BufferSize(ByteConst 3) bytes.
  assert.deepEqual(buffer(bytes(1, 2, 3)), bytes(0x11, 0x06, 0x0a, 0x03, 1, 2, 3));
  assert.deepEqual(name('_UID', ZERO), bytes(0x08, ...ascii('_UID'), 0x00));
  assert.deepEqual(scope('\\_SB_', []), bytes(0x10, 0x06, 0x5c, ...ascii('_SB_')));
  assert.deepEqual(device('COM1', [name('_UID', ONE)]), bytes(0x5b, 0x82, 0x0b, ...ascii('COM1'), 0x08, ...ascii('_UID'), 0x01));
  // Method(_STA, 0, NotSerialized) { Return (0x0F) }
  assert.deepEqual(method('_STA', {}, [returnValue(integer(0x0f))]), bytes(0x14, 0x09, ...ascii('_STA'), 0x00, 0xa4, 0x0a, 0x0f));
  // MethodFlags: ArgCount 2, Serialized (bit 3), SyncLevel 3 (bits 7:4).
  assert.deepEqual(method('FOO', { args: 2, serialized: true, syncLevel: 3 }, []), bytes(0x14, 0x06, ...ascii('FOO_'), 0x3a));
  assert.throws(() => method('FOO', { args: 8 }, []), isAmlError(/argument count 8/));
  assert.throws(() => method('FOO', { syncLevel: 16 }, []), isAmlError(/sync level 16/));
  assert.deepEqual(pkg([integer(5), ZERO]), bytes(0x12, 0x05, 0x02, 0x0a, 0x05, 0x00));
  assert.equal(pkg(Array(255).fill(ZERO))[3], 255);
  assert.throws(() => pkg(Array(256).fill(ZERO)), isAmlError(/exceeds 255/));
});

test('aml: a package body of 63 bytes switches to a two-byte PkgLength', () => {
  const small = buffer(new Uint8Array(60)); // content: ByteConst(60) = 2 + 60 = 62 bytes
  assert.deepEqual(small.subarray(0, 2), bytes(0x11, 0x3f));
  assert.equal(small.length, 1 + 1 + 62);
  const big = buffer(new Uint8Array(61)); // content 63 bytes
  assert.deepEqual(big.subarray(0, 3), bytes(0x11, 0x41, 0x04));
  assert.equal(big.length, 1 + 2 + 63);
});

test('aml: EISAID packs three letters and four hex digits', () => {
  assert.equal(eisaId('PNP0501'), 0x0105d041);
  assert.equal(eisaId('PNP0303'), 0x0303d041);
  assert.equal(eisaId('PNP0B00'), 0x000bd041);
  assert.equal(eisaId('PNP0A03'), 0x030ad041);
  assert.deepEqual(eisaIdName('PNP0501'), bytes(0x0c, 0x41, 0xd0, 0x05, 0x01));
  assert.throws(() => eisaId('pnp0501'), isAmlError(/three letters/));
  assert.throws(() => eisaId('PNP050'), isAmlError(/three letters/));
  assert.throws(() => eisaId('PNP050G'), isAmlError(/four hex digits/));
});

test('aml: IO, Memory32Fixed and extended Interrupt descriptors', () => {
  assert.deepEqual(io(0x3f8, 0x3f8, 1, 8), bytes(0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08));
  assert.deepEqual(io(0x60, 0x60, 1, 1, false), bytes(0x47, 0x00, 0x60, 0x00, 0x60, 0x00, 0x01, 0x01));
  assert.deepEqual(memory32Fixed(0xd000_0000, 0x1000), bytes(0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00));
  assert.deepEqual(memory32Fixed(0xfec0_0000, 0x1000, false)[3], 0x00);
  assert.deepEqual(extendedInterrupt({ mode: 'edge', polarity: 'high' }, [5]), bytes(0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00));
  // Level (bit 1 clear), active low (bit 2), shared (bit 3), wake (bit 4), consumer (bit 0).
  assert.deepEqual(extendedInterrupt({ mode: 'level', polarity: 'low', sharing: 'shared', wake: true }, [16, 17]), bytes(0x89, 0x0a, 0x00, 0x1d, 0x02, 16, 0, 0, 0, 17, 0, 0, 0));
  assert.equal(extendedInterrupt({ consumer: false, mode: 'edge', polarity: 'high' }, [1])[3], 0x02);
});

test('aml: resource descriptors refuse values their fields cannot hold', () => {
  assert.throws(() => io(0x10000, 0x10000, 1, 1), isAmlError(/I\/O minimum base 65536/));
  assert.throws(() => io(0x64, 0x60, 1, 1), isAmlError(/maximum base 0x60 is below minimum 0x64/));
  assert.throws(() => io(0x60, 0x60, 1, 256), isAmlError(/I\/O length 256/));
  assert.throws(() => memory32Fixed(0xffff_f000, 0x2000), isAmlError(/crosses 4 GiB/));
  assert.throws(() => memory32Fixed(-1, 0x1000), isAmlError(/memory base -1/));
  assert.throws(() => extendedInterrupt({ mode: 'edge', polarity: 'high' }, []), isAmlError(/1 to 255 interrupts/));
  assert.throws(() => extendedInterrupt({ mode: 'edge', polarity: 'high' }, [2 ** 32]), isAmlError(/interrupt number/));
});

test('aml: a ResourceTemplate ends with an End Tag whose checksum zeroes the descriptor bytes', () => {
  const rt = resourceTemplate([io(0x3f8, 0x3f8, 1, 8), extendedInterrupt({ mode: 'edge', polarity: 'high' }, [4])]);
  // Buffer, PkgLength, ByteConst size, 8 + 9 descriptor bytes, End Tag (2).
  assert.deepEqual(rt.subarray(0, 4), bytes(0x11, 0x16, 0x0a, 0x13));
  const descriptors = rt.subarray(4);
  assert.equal(descriptors.length, 0x13);
  assert.equal(descriptors[descriptors.length - 2], 0x79);
  assert.equal(descriptors.reduce((s, b) => (s + b) & 0xff, 0), 0);
  assert.deepEqual(resourceTemplate([]), bytes(0x11, 0x05, 0x0a, 0x02, 0x79, 0x87));
});
