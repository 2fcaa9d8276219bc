import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestReport, parseTgLines, tgNumber, TgProtocolError, unescapeTg } from './protocol.js';

test('TG protocol: parses records and fields, ignores other lines', () => {
  const recs = parseTgLines('typevisor test guest 1\nTG e820-entry index=0 addr=0x0 size=0x9fc00 type=1\r\nnoise\nTG done\n');
  assert.equal(recs.length, 2);
  assert.deepEqual(recs[0], { record: 'e820-entry', fields: { index: '0', addr: '0x0', size: '0x9fc00', type: '1' }, line: 2 });
  assert.deepEqual(recs[1], { record: 'done', fields: {}, line: 4 });
});

test('TG protocol: empty values and values containing "=" survive', () => {
  const [r] = parseTgLines('TG cmdline text=tg.exit=reset\\x20a=b empty=');
  assert.deepEqual(r!.fields, { text: 'tg.exit=reset\\x20a=b', empty: '' });
  assert.equal(unescapeTg(r!.fields.text!).toString('latin1'), 'tg.exit=reset a=b');
});

test('TG protocol: malformed lines are errors naming the line', () => {
  assert.throws(() => parseTgLines('TG Bad x=1'), /line 1: bad record name/);
  assert.throws(() => parseTgLines('ok\nTG rec novalue'), /line 2: "novalue" is not key=value/);
  assert.throws(() => parseTgLines('TG rec a=1 a=2'), /key "a" repeated/);
  assert.throws(() => parseTgLines('TG rec  a=1'), TgProtocolError, 'double space yields an empty pair');
});

test('TG protocol: escapes decode exactly and bad ones are refused', () => {
  assert.deepEqual([...unescapeTg('a\\x5cb\\x00\\xff')], [0x61, 0x5c, 0x62, 0x00, 0xff]);
  assert.throws(() => unescapeTg('\\x4'), /bad escape/);
  assert.throws(() => unescapeTg('\\u0041'), /bad escape/);
  assert.throws(() => unescapeTg('a\tb'), /unescaped byte 0x9/);
});

test('TG protocol: numbers are hex or decimal bigints, nothing else', () => {
  assert.equal(tgNumber('0xfee00000'), 0xfee00000n);
  assert.equal(tgNumber('42'), 42n);
  assert.equal(tgNumber('0xffffffffffffffff'), 2n ** 64n - 1n);
  for (const bad of ['', '-1', '0x', '1e3', 'none', undefined]) assert.throws(() => tgNumber(bad), TgProtocolError);
});

test('TG protocol: GuestReport.one insists on exactly one record', () => {
  const r = new GuestReport('TG a x=1\nTG b\nTG b\n');
  assert.deepEqual(r.one('a'), { x: '1' });
  assert.throws(() => r.one('b'), /expected one "TG b" line, found 2/);
  assert.throws(() => r.one('c'), /found 0/);
  assert.equal(r.has('b'), true);
});
