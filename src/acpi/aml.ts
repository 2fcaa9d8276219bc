/**
 * A small AML encoder: the subset of ACPI Machine Language a virtual machine's
 * DSDT needs (ACPI 6.4, chapter 20 "ACPI Machine Language (AML) Specification"),
 * plus the resource descriptors of §6.4 that go inside `_CRS` buffers.
 *
 * Every builder returns the encoded bytes. A term is just a Uint8Array, so
 * terms nest by concatenation; the builders that open a package (Scope,
 * Device, Method, Buffer, Package) measure their contents and prefix the
 * PkgLength. Bad input (a name that is not a NameSeg, an integer wider than
 * 64 bits, a package too long to encode) throws an AmlError instead of
 * emitting bytes a guest would misparse.
 */

/** Encoded AML: a term, a name, a data object or a resource descriptor. */
export type Aml = Uint8Array;

export class AmlError extends Error {
  constructor(message: string) {
    super(`aml: ${message}`);
    this.name = 'AmlError';
  }
}

// Opcodes (ACPI 6.4 §20.3 "AML Byte Stream Byte Values").
/** ZeroOp: the integer 0. */
export const ZERO_OP = 0x00;
/** OneOp: the integer 1. */
export const ONE_OP = 0x01;
/** NameOp: Name(NameString, DataRefObject). */
export const NAME_OP = 0x08;
/** BytePrefix: one-byte integer follows. */
export const BYTE_PREFIX = 0x0a;
/** WordPrefix: two-byte little-endian integer follows. */
export const WORD_PREFIX = 0x0b;
/** DWordPrefix: four-byte little-endian integer follows. */
export const DWORD_PREFIX = 0x0c;
/** StringPrefix: NUL-terminated ASCII follows. */
export const STRING_PREFIX = 0x0d;
/** QWordPrefix: eight-byte little-endian integer follows. */
export const QWORD_PREFIX = 0x0e;
/** ScopeOp PkgLength NameString TermList. */
export const SCOPE_OP = 0x10;
/** BufferOp PkgLength BufferSize ByteList. */
export const BUFFER_OP = 0x11;
/** PackageOp PkgLength NumElements PackageElementList. */
export const PACKAGE_OP = 0x12;
/** MethodOp PkgLength NameString MethodFlags TermList. */
export const METHOD_OP = 0x14;
/** DualNamePrefix: two NameSegs follow. */
export const DUAL_NAME_PREFIX = 0x2e;
/** MultiNamePrefix: SegCount (one byte) NameSegs follow. */
export const MULTI_NAME_PREFIX = 0x2f;
/** ExtOpPrefix: the next byte selects an extended opcode. */
export const EXT_OP_PREFIX = 0x5b;
/** DeviceOp (after ExtOpPrefix): Device(NameString) { TermList }. */
export const DEVICE_OP = 0x82;
/** RootChar '\': the name is absolute. */
export const ROOT_CHAR = 0x5c;
/** ParentPrefixChar '^': resolve one scope up. */
export const PARENT_PREFIX_CHAR = 0x5e;
/** ReturnOp ArgObject. */
export const RETURN_OP = 0xa4;
/** OnesOp: all bits set (64 bits in a revision-2 definition block). */
export const ONES_OP = 0xff;

/** A PkgLength holds at most 28 bits (§20.2.4: 4 bits + 3 following bytes). */
export const MAX_PKG_LENGTH = 0x0fff_ffff;

const U64_MAX = (1n << 64n) - 1n;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Concatenates terms into one TermList. */
export function termList(terms: readonly Aml[]): Aml {
  return concat(terms);
}

function checkUint(value: number, bits: 8 | 16 | 32, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** bits - 1) {
    throw new AmlError(`${what} ${value} does not fit in ${bits} unsigned bits`);
  }
}

function le(value: number, bytes: 1 | 2 | 4): Uint8Array {
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  return out;
}

/**
 * PkgLength for a package whose contents (everything after the PkgLength) are
 * `contentLength` bytes. The encoded value counts the PkgLength bytes too
 * (§20.2.4): one byte holds values up to 63; otherwise bits 7:6 of the lead
 * byte give the number of following bytes (1–3), bits 3:0 the low nibble, and
 * each following byte 8 more bits, so 2 bytes reach 0xFFF, 3 bytes 0xFFFFF and
 * 4 bytes 0xFFFFFFF.
 */
export function pkgLength(contentLength: number): Uint8Array {
  if (!Number.isSafeInteger(contentLength) || contentLength < 0) throw new AmlError(`bad package content length ${contentLength}`);
  if (contentLength + 1 <= 0x3f) return Uint8Array.of(contentLength + 1);
  for (let follow = 1; follow <= 3; follow++) {
    const total = contentLength + 1 + follow;
    if (total < 2 ** (4 + 8 * follow)) {
      const out = new Uint8Array(1 + follow);
      out[0] = (follow << 6) | (total & 0x0f);
      for (let i = 1; i <= follow; i++) out[i] = Math.floor(total / 2 ** (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new AmlError(`package of ${contentLength} bytes exceeds the PkgLength limit 0x${MAX_PKG_LENGTH.toString(16)}`);
}

/** Prefix + PkgLength + contents. */
function withPkgLength(prefix: readonly number[], contents: readonly Uint8Array[]): Aml {
  const body = concat(contents);
  return concat([Uint8Array.from(prefix), pkgLength(body.length), body]);
}

const LEAD_NAME_CHAR = /^[A-Z_]$/;
const NAME_CHAR = /^[A-Z0-9_]$/;

/**
 * One NameSeg (§20.2.2): a LeadNameChar ('A'–'Z', '_') then up to three
 * NameChars ('A'–'Z', '0'–'9', '_'), padded to four bytes with '_' as ASL does.
 */
export function nameSeg(seg: string): Uint8Array {
  if (seg.length < 1 || seg.length > 4) throw new AmlError(`name segment "${seg}" must be 1 to 4 characters`);
  const padded = seg.padEnd(4, '_');
  for (let i = 0; i < 4; i++) {
    const c = padded[i]!;
    if (!(i === 0 ? LEAD_NAME_CHAR : NAME_CHAR).test(c)) {
      throw new AmlError(`name segment "${seg}": character "${c}" is not allowed ${i === 0 ? 'first (A-Z or _)' : '(A-Z, 0-9 or _)'}`);
    }
  }
  return Uint8Array.from(padded, (c) => c.charCodeAt(0));
}

/**
 * A NameString (§20.2.2) from ASL notation: an optional root prefix `\` or
 * one or more parent prefixes `^`, then dot-separated segments
 * ("\\_SB_.COM1", "^PCI0", "_HID"). A prefix alone names the root or a parent
 * scope itself (NullName).
 */
export function nameString(path: string): Aml {
  let rest = path;
  const prefix: number[] = [];
  if (rest.startsWith('\\')) {
    prefix.push(ROOT_CHAR);
    rest = rest.slice(1);
  } else {
    while (rest.startsWith('^')) {
      prefix.push(PARENT_PREFIX_CHAR);
      rest = rest.slice(1);
    }
  }
  if (rest === '') {
    if (prefix.length === 0) throw new AmlError('empty name');
    return Uint8Array.from([...prefix, 0x00]);
  }
  const segs = rest.split('.').map(nameSeg);
  if (segs.length > 255) throw new AmlError(`name "${path}" has more than 255 segments`);
  const head = segs.length === 1 ? [] : segs.length === 2 ? [DUAL_NAME_PREFIX] : [MULTI_NAME_PREFIX, segs.length];
  return concat([Uint8Array.from([...prefix, ...head]), ...segs]);
}

/**
 * An Integer constant in its shortest encoding (§20.2.3): ZeroOp, OneOp,
 * OnesOp for 2^64-1, else Byte/Word/DWord/QWordConst by width. Accepts a
 * safe non-negative number or a bigint below 2^64.
 */
export function integer(value: number | bigint): Aml {
  let v: bigint;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new AmlError(`integer ${value} is not a non-negative safe integer (use a bigint for wider values)`);
    v = BigInt(value);
  } else {
    v = value;
  }
  if (v < 0n || v > U64_MAX) throw new AmlError(`integer ${v} does not fit in 64 unsigned bits`);
  if (v === 0n) return Uint8Array.of(ZERO_OP);
  if (v === 1n) return Uint8Array.of(ONE_OP);
  if (v === U64_MAX) return Uint8Array.of(ONES_OP);
  const [prefix, bytes] = v <= 0xffn ? [BYTE_PREFIX, 1] : v <= 0xffffn ? [WORD_PREFIX, 2] : v <= 0xffff_ffffn ? [DWORD_PREFIX, 4] : [QWORD_PREFIX, 8];
  const out = new Uint8Array(1 + bytes);
  out[0] = prefix;
  for (let i = 0; i < bytes; i++) out[1 + i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** ZeroOp, OneOp and OnesOp as terms. */
export const ZERO: Aml = Uint8Array.of(ZERO_OP);
export const ONE: Aml = Uint8Array.of(ONE_OP);
export const ONES: Aml = Uint8Array.of(ONES_OP);

/** A String constant (§20.2.3): StringPrefix, ASCII 0x01–0x7F, NUL. */
export function string(s: string): Aml {
  const out = new Uint8Array(s.length + 2);
  out[0] = STRING_PREFIX;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x01 || c > 0x7f) throw new AmlError(`string "${s}": character 0x${c.toString(16)} at ${i} is not ASCII 0x01-0x7F`);
    out[1 + i] = c;
  }
  return out;
}

/** Buffer(n) { bytes } (§20.2.5.4 DefBuffer); BufferSize is the byte count. */
export function buffer(bytes: Uint8Array): Aml {
  return withPkgLength([BUFFER_OP], [integer(bytes.length), bytes]);
}

/** Name(path, value) (§20.2.5.1 DefName). */
export function name(path: string, value: Aml): Aml {
  return concat([Uint8Array.of(NAME_OP), nameString(path), value]);
}

/** Scope(path) { terms } (§20.2.5.1 DefScope). */
export function scope(path: string, terms: readonly Aml[]): Aml {
  return withPkgLength([SCOPE_OP], [nameString(path), ...terms]);
}

/** Device(path) { terms } (§20.2.5.2 DefDevice). */
export function device(path: string, terms: readonly Aml[]): Aml {
  return withPkgLength([EXT_OP_PREFIX, DEVICE_OP], [nameString(path), ...terms]);
}

export interface MethodOptions {
  /** Number of arguments, 0–7 (MethodFlags bits 2:0). */
  args?: number;
  /** Serialized (bit 3): the OS runs one invocation at a time. */
  serialized?: boolean;
  /** SyncLevel, 0–15 (bits 7:4). */
  syncLevel?: number;
}

/** Method(path, args, Serialized|NotSerialized) { terms } (§20.2.5.2 DefMethod). */
export function method(path: string, options: MethodOptions, terms: readonly Aml[]): Aml {
  const args = options.args ?? 0;
  const sync = options.syncLevel ?? 0;
  if (!Number.isInteger(args) || args < 0 || args > 7) throw new AmlError(`method ${path}: argument count ${args} is not 0-7`);
  if (!Number.isInteger(sync) || sync < 0 || sync > 15) throw new AmlError(`method ${path}: sync level ${sync} is not 0-15`);
  const flags = args | (options.serialized ? 0x08 : 0) | (sync << 4);
  return withPkgLength([METHOD_OP], [nameString(path), Uint8Array.of(flags), ...terms]);
}

/** Return(value) (§20.2.5.3 DefReturn). */
export function returnValue(value: Aml): Aml {
  return concat([Uint8Array.of(RETURN_OP), value]);
}

/** Package() { elements } (§20.2.5.4 DefPackage): at most 255 elements. */
export function pkg(elements: readonly Aml[]): Aml {
  if (elements.length > 255) throw new AmlError(`package of ${elements.length} elements exceeds 255 (VarPackage is not supported)`);
  return withPkgLength([PACKAGE_OP], [Uint8Array.of(elements.length), ...elements]);
}

/**
 * EISAID("PNP0501") (ACPI 6.4 §6.1.5 _HID): three uppercase letters packed 5
 * bits each (letter - 0x40) and four hex digits, stored as a dword whose
 * bytes are in big-endian order: PNP0501 → 0x0105D041.
 */
export function eisaId(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new AmlError(`EISA id "${id}" must be three letters A-Z then four hex digits`);
  const v = (c: number): number => id.charCodeAt(c) - 0x40;
  const vendor = (v(0) << 10) | (v(1) << 5) | v(2);
  const product = parseInt(id.slice(3), 16);
  const be = ((vendor << 16) | product) >>> 0;
  return (((be & 0xff) << 24) | ((be & 0xff00) << 8) | ((be >>> 8) & 0xff00) | (be >>> 24)) >>> 0;
}

/** EISAID(id) as an Integer term (a DWordConst). */
export function eisaIdName(id: string): Aml {
  return integer(eisaId(id));
}

// Resource descriptors (ACPI 6.4 §6.4 "Resource Data Types for ACPI").

/** Small End Tag (§6.4.2.9): tag 0x79 (type 0x0F, length 1) then a checksum byte. */
export const END_TAG = 0x79;
/** Small I/O Port Descriptor (§6.4.2.5): tag 0x47 (type 0x08, length 7). */
export const IO_PORT_DESCRIPTOR = 0x47;
/** Large 32-Bit Fixed Memory Range Descriptor (§6.4.3.4). */
export const MEMORY32_FIXED_DESCRIPTOR = 0x86;
/** Large Extended Interrupt Descriptor (§6.4.3.6). */
export const EXTENDED_INTERRUPT_DESCRIPTOR = 0x89;

/**
 * IO(Decode16|Decode10, min, max, alignment, length): a small I/O port
 * descriptor. Byte 1 bit 0 says the device decodes all 16 address bits.
 */
export function io(min: number, max: number, alignment: number, length: number, decode16 = true): Uint8Array {
  checkUint(min, 16, 'I/O minimum base');
  checkUint(max, 16, 'I/O maximum base');
  checkUint(alignment, 8, 'I/O alignment');
  checkUint(length, 8, 'I/O length');
  if (max < min) throw new AmlError(`I/O range: maximum base 0x${max.toString(16)} is below minimum 0x${min.toString(16)}`);
  return concat([Uint8Array.of(IO_PORT_DESCRIPTOR, decode16 ? 1 : 0), le(min, 2), le(max, 2), Uint8Array.of(alignment, length)]);
}

/** Memory32Fixed(ReadWrite|ReadOnly, base, length): descriptor length 9; byte 3 bit 0 = writable. */
export function memory32Fixed(base: number, length: number, writable = true): Uint8Array {
  checkUint(base, 32, 'memory base');
  checkUint(length, 32, 'memory length');
  if (base + length > 2 ** 32) throw new AmlError(`memory range 0x${base.toString(16)}+0x${length.toString(16)} crosses 4 GiB`);
  return concat([Uint8Array.of(MEMORY32_FIXED_DESCRIPTOR), le(9, 2), Uint8Array.of(writable ? 1 : 0), le(base, 4), le(length, 4)]);
}

export interface InterruptOptions {
  /** ResourceConsumer (the device uses it) rather than ResourceProducer. Default true. */
  consumer?: boolean;
  /** Edge or Level triggered. */
  mode: 'edge' | 'level';
  /** ActiveHigh or ActiveLow. */
  polarity: 'high' | 'low';
  /** Exclusive or Shared. Default exclusive. */
  sharing?: 'exclusive' | 'shared';
  /** Wake capable (bit 4). Default false. */
  wake?: boolean;
}

/**
 * Interrupt(ResourceConsumer, Edge|Level, ActiveHigh|ActiveLow,
 * Exclusive|Shared) { gsi, ... }: an extended interrupt descriptor. Flags
 * byte: bit 0 consumer, bit 1 edge, bit 2 active-low, bit 3 shared, bit 4
 * wake capable. No ResourceSource: the numbers are GSIs.
 */
export function extendedInterrupt(options: InterruptOptions, gsis: readonly number[]): Uint8Array {
  if (gsis.length < 1 || gsis.length > 255) throw new AmlError(`interrupt descriptor needs 1 to 255 interrupts, got ${gsis.length}`);
  for (const g of gsis) checkUint(g, 32, 'interrupt number');
  const flags =
    ((options.consumer ?? true) ? 0x01 : 0) |
    (options.mode === 'edge' ? 0x02 : 0) |
    (options.polarity === 'low' ? 0x04 : 0) |
    ((options.sharing ?? 'exclusive') === 'shared' ? 0x08 : 0) |
    (options.wake ? 0x10 : 0);
  return concat([Uint8Array.of(EXTENDED_INTERRUPT_DESCRIPTOR), le(2 + 4 * gsis.length, 2), Uint8Array.of(flags, gsis.length), ...gsis.map((g) => le(g, 4))]);
}

/**
 * ResourceTemplate() { descriptors }: a Buffer holding the descriptors and an
 * End Tag whose checksum makes the descriptor bytes sum to zero (§6.4.2.9).
 */
export function resourceTemplate(descriptors: readonly Uint8Array[]): Aml {
  const body = concat([...descriptors, Uint8Array.of(END_TAG)]);
  let sum = 0;
  for (const b of body) sum = (sum + b) & 0xff;
  return buffer(concat([body, Uint8Array.of((0x100 - sum) & 0xff)]));
}
