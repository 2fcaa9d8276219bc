import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cmdline, CmdlineError } from '../../src/boot/cmdline.js';

function kindOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CmdlineError, `expected CmdlineError, got ${String(e)}`);
    return e.kind;
  }
  assert.fail('expected a CmdlineError');
}

test('builds key=value pairs, bare flags and fragments separated by single spaces', () => {
  const c = new Cmdline(100).insert('console', 'ttyS0').insert('quiet').insertStr('  panic=-1 reboot=t ');
  assert.equal(c.toString(), 'console=ttyS0 quiet panic=-1 reboot=t');
});

test('quotes values that contain spaces', () => {
  assert.equal(new Cmdline(100).insert('dyndbg', 'file a.c +p').toString(), 'dyndbg="file a.c +p"');
});

test('toBytes is ASCII with a terminating NUL', () => {
  const b = new Cmdline(16).insert('a', 'b').toBytes();
  assert.deepEqual([...b], [0x61, 0x3d, 0x62, 0]);
  assert.deepEqual([...new Cmdline(1).toBytes()], [0]);
});

test('blank fragments add nothing', () => {
  assert.equal(new Cmdline(10).insertStr('   ').insertStr('').toString(), '');
});

test('capacity counts the NUL: exactly full fits, one more byte does not', () => {
  const c = new Cmdline(6).insertStr('abcde');
  assert.equal(c.toBytes().length, 6);
  assert.equal(kindOf(() => new Cmdline(5).insertStr('abcde')), 'too-long');
  assert.throws(() => new Cmdline(8).insert('key', 'value'), /10 bytes \(with the terminating NUL\) exceed the kernel's limit of 8/);
});

test('a failed insert leaves the line unchanged', () => {
  const c = new Cmdline(10).insert('a', 'b');
  assert.throws(() => c.insertStr('0123456789'));
  assert.equal(c.toString(), 'a=b');
});

test('rejects NUL, newline, tab and non-ASCII, naming the character', () => {
  assert.throws(() => new Cmdline(100).insertStr('a\0b'), /contains NUL at index 1/);
  assert.throws(() => new Cmdline(100).insert('k', 'x\ny'), /contains newline/);
  assert.throws(() => new Cmdline(100).insertStr('a\tb'), /contains tab/);
  assert.throws(() => new Cmdline(100).insert('k', 'café'), /U\+00e9/);
  assert.equal(kindOf(() => new Cmdline(100).insert('k\r', 'v')), 'bad-char');
});

test('rejects bad keys', () => {
  assert.equal(kindOf(() => new Cmdline(100).insert('', 'v')), 'empty-key');
  assert.equal(kindOf(() => new Cmdline(100).insert('a=b', 'v')), 'bad-key');
  assert.equal(kindOf(() => new Cmdline(100).insert('a b', 'v')), 'bad-key');
  assert.equal(kindOf(() => new Cmdline(100).insert('a"', 'v')), 'bad-key');
});

test('rejects values with quotes and fragments with unbalanced quotes', () => {
  assert.equal(kindOf(() => new Cmdline(100).insert('k', 'say "hi"')), 'bad-value');
  assert.equal(kindOf(() => new Cmdline(100).insertStr('k="a b')), 'unbalanced-quote');
  assert.equal(new Cmdline(100).insertStr('k="a b"').toString(), 'k="a b"');
});

test('rejects a capacity that is not a positive integer', () => {
  for (const cap of [0, -1, 1.5, Number.NaN]) assert.equal(kindOf(() => new Cmdline(cap)), 'bad-capacity');
});
