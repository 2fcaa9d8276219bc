import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ACPI_POWER_PORT_SPAN, AcpiPower, DeviceStateError, type AcpiPowerState } from '../../src/devices/legacy/index.js';
import { ACPI_RESET_VALUE, PORT_ACPI_RESET, PORT_ACPI_SLEEP_CONTROL, PORT_ACPI_SLEEP_STATUS } from '../../src/arch/x86_64/layout.js';
import { ports } from './helpers.js';

const CONTROL = PORT_ACPI_SLEEP_CONTROL - PORT_ACPI_SLEEP_CONTROL;
const STATUS = PORT_ACPI_SLEEP_STATUS - PORT_ACPI_SLEEP_CONTROL;
const RESET = PORT_ACPI_RESET - PORT_ACPI_SLEEP_CONTROL;
const SLP_EN = 0x20;
const WAK_STS = 0x80;
const slpTyp = (t: number): number => (t << 2) & 0x1c;

function setup(s5SleepType?: number) {
  const events: string[] = [];
  const dev = new AcpiPower({ onPowerOff: () => events.push('off'), onReset: () => events.push('reset'), ...(s5SleepType !== undefined && { s5SleepType }) });
  return { dev, events, ...ports(dev) };
}

test('acpi-power: S5 entry as acpi_hw_extended_sleep writes it powers off', () => {
  const p = setup();
  p.outb(STATUS, WAK_STS); // clear wake status first
  p.outb(CONTROL, slpTyp(5)); // SLP_TYP alone does nothing
  assert.deepEqual(p.events, []);
  assert.equal(p.inb(CONTROL), slpTyp(5), 'SLP_TYP reads back');
  p.outb(CONTROL, slpTyp(5) | SLP_EN);
  assert.deepEqual(p.events, ['off']);
  assert.equal(p.inb(CONTROL) & SLP_EN, 0, 'SLP_EN is write-only');
  assert.equal(p.inb(STATUS), 0, 'never woken: WAK_STS clear');
});

test('acpi-power: other sleep types are ignored; the S5 type comes from the ACPI builder', () => {
  const p = setup();
  for (const t of [0, 1, 2, 3, 4, 6, 7]) p.outb(CONTROL, slpTyp(t) | SLP_EN);
  assert.deepEqual(p.events, []);
  const q = setup(0);
  q.outb(CONTROL, slpTyp(5) | SLP_EN);
  assert.deepEqual(q.events, []);
  q.outb(CONTROL, slpTyp(0) | SLP_EN);
  assert.deepEqual(q.events, ['off']);
  assert.throws(() => setup(8), /acpi-power: S5 sleep type 8 is not in 0\.\.7/);
  assert.throws(() => setup(1.5), RangeError);
});

test('acpi-power: the reset register resets on RESET_VALUE only; wide writes split into bytes', () => {
  const p = setup();
  p.outb(RESET, ACPI_RESET_VALUE ^ 0xff);
  p.outb(RESET, 0);
  assert.deepEqual(p.events, []);
  p.outb(RESET, ACPI_RESET_VALUE);
  assert.deepEqual(p.events, ['reset']);
  assert.equal(p.inb(RESET), 0);
  p.dev.write(STATUS, Uint8Array.of(WAK_STS, ACPI_RESET_VALUE)); // outw at the status register
  assert.deepEqual(p.events, ['reset', 'reset']);
  const d = new Uint8Array(4);
  p.dev.read(CONTROL, d);
  assert.deepEqual([...d], [0, 0, 0, 0xff], 'beyond the three registers the bus floats');
});

test('acpi-power: state round trip and refusal of bad state', () => {
  const p = setup();
  p.outb(CONTROL, slpTyp(3));
  const saved = JSON.parse(JSON.stringify(p.dev.saveState())) as AcpiPowerState;
  const q = setup();
  q.dev.restoreState(saved);
  assert.equal(q.inb(CONTROL), slpTyp(3));
  assert.throws(() => q.dev.restoreState({ sleepType: 8, wakeStatus: false }), (e: unknown) => e instanceof DeviceStateError && /acpi-power: sleepType must be an integer in 0\.\.7/.test(e.message));
  assert.throws(() => q.dev.restoreState({ sleepType: 1 } as AcpiPowerState), /acpi-power: wakeStatus must be a boolean/);
  assert.equal(q.inb(CONTROL), slpTyp(3), 'unchanged after refusals');
});

test('acpi-power: random traffic never throws; power-off and reset happen exactly on their writes', () => {
  const op = fc.record({ write: fc.boolean(), offset: fc.integer({ min: -1, max: ACPI_POWER_PORT_SPAN + 1 }), size: fc.constantFrom(1, 2, 4), value: fc.integer({ min: 0, max: 0xffffffff }) });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 100 }), (ops) => {
      const p = setup();
      let offs = 0;
      let resets = 0;
      for (const o of ops) {
        const data = new Uint8Array(4);
        new DataView(data.buffer).setUint32(0, o.value >>> 0, true);
        const bytes = data.subarray(0, o.size);
        if (!o.write) {
          p.dev.read(o.offset, bytes);
          continue;
        }
        bytes.forEach((b, i) => {
          if (o.offset + i === CONTROL && b & SLP_EN && ((b >> 2) & 7) === 5) offs++;
          if (o.offset + i === RESET && b === ACPI_RESET_VALUE) resets++;
        });
        p.dev.write(o.offset, bytes);
      }
      assert.equal(p.events.filter((e) => e === 'off').length, offs);
      assert.equal(p.events.filter((e) => e === 'reset').length, resets);
    }),
    { numRuns: 300 },
  );
});
