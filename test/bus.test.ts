import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bus, type BusDevice } from '../src/bus/index.js';

class Reg implements BusDevice {
  last = -1;
  read(offset: number, data: Uint8Array): void {
    data.fill(offset);
  }
  write(offset: number, _data: Uint8Array): void {
    this.last = offset;
  }
}

test('bus: dispatches by range with offsets, refuses partial and unclaimed accesses', () => {
  const bus = new Bus('pio');
  const a = new Reg();
  bus.insert(a, 0x3f8, 8, 'com1');
  const d = new Uint8Array(1);
  assert.equal(bus.read(0x3fa, d), true);
  assert.equal(d[0], 2);
  assert.equal(bus.write(0x3ff, d), true);
  assert.equal(a.last, 7);
  assert.equal(bus.read(0x3ff, new Uint8Array(2)), false, 'access straddling the end');
  assert.equal(bus.read(0x400, d), false);
  assert.throws(() => bus.insert(new Reg(), 0x3fc, 8, 'clash'), /overlaps com1/);
});
