/**
 * Parser for the test guest's TG line protocol (guest/README.md):
 *
 *   TG <record> <key>=<value> <key>=<value> ...
 *
 * Values never contain spaces; strings escape bytes outside 0x21..0x7e and
 * the backslash as \xNN. Lines not starting with "TG " are ignored (banner,
 * VMM messages); a line starting with "TG " that breaks the grammar is an error.
 */

export interface TgRecord {
  record: string;
  fields: Record<string, string>;
  /** 1-based line number in the captured output. */
  line: number;
}

export class TgProtocolError extends Error {
  override name = 'TgProtocolError';
}

const RECORD = /^[a-z0-9][a-z0-9-]*$/;
const KEY = /^[a-z0-9_]+$/;

export function parseTgLines(text: string): TgRecord[] {
  const out: TgRecord[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (!line.startsWith('TG ')) return;
    const [record, ...pairs] = line.slice(3).split(' ');
    if (record === undefined || !RECORD.test(record)) throw new TgProtocolError(`line ${i + 1}: bad record name in "${line}"`);
    const fields: Record<string, string> = {};
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      if (eq < 0 || !KEY.test(key)) throw new TgProtocolError(`line ${i + 1}: "${pair}" is not key=value in "${line}"`);
      if (key in fields) throw new TgProtocolError(`line ${i + 1}: key "${key}" repeated in "${line}"`);
      fields[key] = pair.slice(eq + 1);
    }
    out.push({ record, fields, line: i + 1 });
  });
  return out;
}

/** Decodes a TG string value (\xNN escapes) to its bytes. */
export function unescapeTg(value: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x5c) {
      const hex = value.slice(i + 1, i + 4);
      if (!/^x[0-9a-f]{2}$/.test(hex)) throw new TgProtocolError(`bad escape "\\${hex}" in "${value}"`);
      bytes.push(parseInt(hex.slice(1), 16));
      i += 3;
    } else if (c > 0x20 && c < 0x7f) {
      bytes.push(c);
    } else {
      throw new TgProtocolError(`unescaped byte 0x${c.toString(16)} in "${value}"`);
    }
  }
  return Buffer.from(bytes);
}

/** Parses a TG number: 0x-prefixed hex or decimal, as a bigint (addresses reach 64 bits). */
export function tgNumber(value: string | undefined): bigint {
  if (value === undefined || !/^(0x[0-9a-f]+|[0-9]+)$/.test(value)) throw new TgProtocolError(`"${value}" is not a TG number`);
  return BigInt(value);
}

/** The records of one guest run, with lookups that fail with the whole output. */
export class GuestReport {
  readonly records: TgRecord[];
  constructor(readonly output: string) {
    this.records = parseTgLines(output);
  }

  all(record: string): TgRecord[] {
    return this.records.filter((r) => r.record === record);
  }

  /** The single record of this name; throws if absent or repeated. */
  one(record: string): Record<string, string> {
    const found = this.all(record);
    if (found.length !== 1) {
      throw new TgProtocolError(`expected one "TG ${record}" line, found ${found.length}; guest output:\n${this.output}`);
    }
    return found[0]!.fields;
  }

  has(record: string): boolean {
    return this.records.some((r) => r.record === record);
  }
}
