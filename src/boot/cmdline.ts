/**
 * A validating builder for the kernel command line.
 *
 * Linux splits the command line on whitespace and `key=value` pairs on the
 * first `=`; a value may be double-quoted to hold spaces, and there is no
 * escape for a quote inside (kernel/params.c next_arg()). We accept printable
 * ASCII only: a NUL would truncate the line in the guest and a newline or tab
 * is whitespace the user did not mean to type.
 */

export type CmdlineErrorKind =
  | 'bad-capacity'
  | 'bad-char'
  | 'empty-key'
  | 'bad-key'
  | 'bad-value'
  | 'unbalanced-quote'
  | 'too-long';

export class CmdlineError extends Error {
  override name = 'CmdlineError';
  constructor(
    readonly kind: CmdlineErrorKind,
    message: string,
  ) {
    super(`kernel command line: ${message}`);
  }
}

/** Printable ASCII: space (0x20) to tilde (0x7e). */
function checkPrintable(s: string, what: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e) continue;
    const name = c === 0 ? 'NUL' : c === 0x0a ? 'newline' : c === 0x0d ? 'carriage return' : c === 0x09 ? 'tab' : `U+${c.toString(16).padStart(4, '0')}`;
    throw new CmdlineError('bad-char', `${what} ${JSON.stringify(s)} contains ${name} at index ${i}; only printable ASCII is allowed`);
  }
}

export class Cmdline {
  private line = '';

  /**
   * @param capacity bytes available for the command line including its
   *   terminating NUL (setup header `cmdline_size` + 1, capped by the machine).
   */
  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) {
      throw new CmdlineError('bad-capacity', `capacity must be a positive integer, got ${capacity}`);
    }
  }

  /** Appends `key=value` (quoted when the value has spaces), or a bare `key` when no value is given. */
  insert(key: string, value?: string): this {
    checkPrintable(key, 'key');
    if (key.length === 0) throw new CmdlineError('empty-key', 'empty key');
    if (/[= "]/.test(key)) throw new CmdlineError('bad-key', `key ${JSON.stringify(key)} must not contain '=', spaces or quotes`);
    if (value === undefined) return this.append(key);
    checkPrintable(value, 'value');
    if (value.includes('"')) throw new CmdlineError('bad-value', `value ${JSON.stringify(value)} of ${key} contains a double quote, which Linux cannot escape`);
    return this.append(value.includes(' ') ? `${key}="${value}"` : `${key}=${value}`);
  }

  /** Appends a preformatted fragment such as `console=ttyS0 quiet`. Blank fragments are ignored. */
  insertStr(fragment: string): this {
    checkPrintable(fragment, 'fragment');
    const s = fragment.trim();
    if (s.length === 0) return this;
    let quotes = 0;
    for (const ch of s) if (ch === '"') quotes++;
    if (quotes % 2 !== 0) throw new CmdlineError('unbalanced-quote', `fragment ${JSON.stringify(s)} has an unbalanced double quote`);
    return this.append(s);
  }

  private append(s: string): this {
    const next = this.line.length === 0 ? s : `${this.line} ${s}`;
    if (next.length + 1 > this.capacity) {
      throw new CmdlineError('too-long', `${next.length + 1} bytes (with the terminating NUL) exceed the kernel's limit of ${this.capacity}`);
    }
    this.line = next;
    return this;
  }

  toString(): string {
    return this.line;
  }

  /** ASCII bytes with the terminating NUL the boot protocol expects. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.line.length + 1);
    for (let i = 0; i < this.line.length; i++) out[i] = this.line.charCodeAt(i);
    return out;
  }
}
