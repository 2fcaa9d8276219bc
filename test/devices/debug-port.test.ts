import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DebugPort, DeviceStateError, type DebugPortState } from '../../src/devices/legacy/index.js';

test('debug-port: records POST codes, reads 0, ignores what is not a write to its one port', () => {
  const p = new DebugPort();
  p.write(0, Uint8Array.of(0x55));
  p.write(0, Uint8Array.of(0xaa, 0x11)); // outw: the low byte reaches port 0x80
  p.write(1, Uint8Array.of(0x99));
  assert.equal(p.lastCode, 0xaa);
  assert.equal(p.writes, 2);
  const d = Uint8Array.of(7, 7, 7, 7);
  p.read(0, d);
  assert.deepEqual([...d], [0, 0, 0, 0]);
});

test('debug-port: state round trip and refusal of bad state', () => {
  const p = new DebugPort();
  p.write(0, Uint8Array.of(0x42));
  const q = new DebugPort();
  q.restoreState(JSON.parse(JSON.stringify(p.saveState())) as DebugPortState);
  assert.deepEqual(q.saveState(), { lastCode: 0x42, writes: 1 });
  assert.throws(() => q.restoreState({ lastCode: 256, writes: 0 }), (e: unknown) => e instanceof DeviceStateError && /debug-port: lastCode must be an integer in 0\.\.255/.test(e.message));
  assert.throws(() => q.restoreState({ lastCode: 1, writes: -1 }), /debug-port: writes must be an integer/);
  assert.deepEqual(q.saveState(), { lastCode: 0x42, writes: 1 });
});

test('debug-port: random traffic never throws', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: -2, max: 3 }), fc.uint8Array({ maxLength: 4 }))), (ops) => {
      const p = new DebugPort();
      for (const [write, offset, data] of ops) {
        if (write) p.write(offset, data);
        else p.read(offset, data);
        if (!write) assert.ok(data.every((b) => b === 0));
      }
    }),
  );
});
