import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeviceStateError, Rtc, RTC_PORT_SPAN, type RtcState } from '../../src/devices/legacy/index.js';
import { ports } from './helpers.js';

// Register names as in Linux's include/linux/mc146818rtc.h.
const RTC_SECONDS = 0, RTC_MINUTES = 2, RTC_HOURS = 4, RTC_DAY_OF_WEEK = 6, RTC_DAY_OF_MONTH = 7, RTC_MONTH = 8, RTC_YEAR = 9;
const RTC_FREQ_SELECT = 0x0a, RTC_CONTROL = 0x0b, RTC_INTR_FLAGS = 0x0c, RTC_VALID = 0x0d, CENTURY = 0x32;
const RTC_UIP = 0x80, RTC_SET = 0x80, RTC_DM_BINARY = 0x04, RTC_24H = 0x02, RTC_UIE = 0x10;

function setup(startMs: number) {
  const clock = { ms: startMs };
  const rtc = new Rtc({ now: () => new Date(clock.ms) });
  const io = ports(rtc);
  const cmosRead = (reg: number): number => {
    io.outb(0, reg);
    return io.inb(1);
  };
  const cmosWrite = (reg: number, v: number): void => {
    io.outb(0, reg);
    io.outb(1, v);
  };
  /** mc146818_get_time: wait for UIP to clear, read the fields, convert from BCD unless DM is set. */
  const getTime = (withCentury = true): Date => {
    for (let i = 0; cmosRead(RTC_FREQ_SELECT) & RTC_UIP; i++) {
      assert.ok(i < 10, 'UIP clears');
      clock.ms += 1; // mdelay(1)
    }
    const raw = [RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, CENTURY].map((reg) => (reg === CENTURY && !withCentury ? 0 : cmosRead(reg)));
    const control = cmosRead(RTC_CONTROL);
    const [sec, min, hour, day, mon, year, century] = control & RTC_DM_BINARY ? raw : raw.map((v) => (v >> 4) * 10 + (v & 15));
    const fullYear = withCentury ? century! * 100 + year! : year! + (year! < 70 ? 2000 : 1900);
    return new Date(Date.UTC(fullYear, mon! - 1, day!, hour!, min!, sec!));
  };
  return { rtc, io, clock, cmosRead, cmosWrite, getTime };
}

const LEAP_EVE = Date.UTC(2024, 1, 29, 23, 59, 58, 500); // Thursday 2024-02-29 23:59:58.5 UTC

test('rtc: reads host time in BCD, 24-hour, as Linux does; the clock runs with the injected clock', () => {
  const r = setup(LEAP_EVE);
  assert.equal(r.cmosRead(RTC_CONTROL), RTC_24H, 'firmware default: BCD, 24-hour');
  assert.deepEqual(
    [RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_WEEK, RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, CENTURY].map(r.cmosRead),
    [0x58, 0x59, 0x23, 0x05, 0x29, 0x02, 0x24, 0x20],
  );
  assert.equal(r.getTime().toISOString(), '2024-02-29T23:59:58.000Z');
  assert.equal(r.getTime(false).toISOString(), '2024-02-29T23:59:58.000Z', 'without the century register (year < 70 → 20xx)');
  r.clock.ms += 1500;
  assert.equal(r.getTime().toISOString(), '2024-03-01T00:00:00.000Z', 'rolls over the leap day');
  assert.equal(r.cmosRead(RTC_DAY_OF_WEEK), 0x06, 'Friday');
});

test('rtc: binary mode and 12-hour mode per register B', () => {
  const r = setup(LEAP_EVE);
  r.cmosWrite(RTC_CONTROL, RTC_24H | RTC_DM_BINARY);
  assert.deepEqual([RTC_SECONDS, RTC_HOURS, RTC_DAY_OF_MONTH, RTC_YEAR, CENTURY].map(r.cmosRead), [58, 23, 29, 24, 20]);
  assert.equal(r.getTime().toISOString(), '2024-02-29T23:59:58.000Z');
  r.cmosWrite(RTC_CONTROL, 0); // BCD, 12-hour
  assert.equal(r.cmosRead(RTC_HOURS), 0x80 | 0x11, '11 PM');
  r.clock.ms += 1500;
  assert.equal(r.cmosRead(RTC_HOURS), 0x12, 'midnight is 12 AM');
  r.clock.ms += 12 * 3600_000;
  assert.equal(r.cmosRead(RTC_HOURS), 0x80 | 0x12, 'noon is 12 PM');
  r.cmosWrite(RTC_CONTROL, RTC_DM_BINARY);
  assert.equal(r.cmosRead(RTC_HOURS), 0x80 | 12);
});

test('rtc: UIP is set around each second boundary and never while SET stops the clock', () => {
  const base = Date.UTC(2030, 0, 1, 0, 0, 0);
  const r = setup(base);
  const uipAt = (ms: number): boolean => {
    r.clock.ms = base + ms;
    return (r.cmosRead(RTC_FREQ_SELECT) & RTC_UIP) !== 0;
  };
  assert.deepEqual([998, 999, 1000, 1001, 1002, 1500].map(uipAt), [false, true, true, true, false, false]);
  assert.equal(r.cmosRead(RTC_FREQ_SELECT) & 0x7f, 0x26, '32.768 kHz time base, 1024 Hz rate');
  r.cmosWrite(RTC_CONTROL, RTC_24H | RTC_SET);
  assert.equal(uipAt(1000), false);
  r.cmosWrite(RTC_CONTROL, RTC_24H);
  r.cmosWrite(RTC_FREQ_SELECT, 0x76); // divider held in reset: no updates
  assert.equal(uipAt(1000), false);
  r.cmosWrite(RTC_FREQ_SELECT, 0xa6);
  assert.equal(r.cmosRead(RTC_FREQ_SELECT) & 0x7f, 0x26, 'UIP is read-only');
});

test('rtc: setting the time as mc146818_set_time does; the clock then runs from it', () => {
  const r = setup(LEAP_EVE);
  const control = r.cmosRead(RTC_CONTROL);
  r.cmosWrite(RTC_CONTROL, control | RTC_SET | RTC_UIE);
  assert.equal(r.cmosRead(RTC_CONTROL) & RTC_UIE, 0, 'SET clears UIE');
  const bcd = [0x30, 0x15, 0x08, 0x31, 0x12, 0x99, 0x19]; // 1999-12-31 08:15:30
  for (const [reg, v] of [RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR, CENTURY].map((reg, i) => [reg, bcd[i]!] as const)) {
    r.cmosWrite(reg, v);
  }
  r.clock.ms += 5000;
  assert.equal(r.getTime().toISOString(), '1999-12-31T08:15:30.000Z', 'stopped while SET');
  r.cmosWrite(RTC_CONTROL, control);
  r.clock.ms += 3000;
  assert.equal(r.getTime().toISOString(), '1999-12-31T08:15:33.000Z', 'runs again from the set time');
  // Without SET a field write applies at once.
  r.cmosWrite(RTC_MINUTES, 0x45);
  assert.equal(r.getTime().toISOString(), '1999-12-31T08:45:33.000Z');
  // 12-hour write.
  r.cmosWrite(RTC_CONTROL, 0);
  r.cmosWrite(RTC_HOURS, 0x80 | 0x02);
  r.cmosWrite(RTC_CONTROL, RTC_24H);
  assert.equal(r.cmosRead(RTC_HOURS), 0x14);
});

test('rtc: while SET, fields are independent: 31 December is reachable from 29 February in any order', () => {
  for (const order of [
    [RTC_DAY_OF_MONTH, RTC_MONTH],
    [RTC_MONTH, RTC_DAY_OF_MONTH],
  ]) {
    const r = setup(LEAP_EVE);
    r.cmosWrite(RTC_CONTROL, RTC_24H | RTC_SET);
    for (const reg of order) r.cmosWrite(reg, reg === RTC_MONTH ? 0x12 : 0x31);
    assert.equal(r.cmosRead(RTC_DAY_OF_MONTH), 0x31);
    r.cmosWrite(RTC_CONTROL, RTC_24H);
    assert.equal(r.getTime().toISOString(), '2024-12-31T23:59:58.000Z');
  }
  const r = setup(LEAP_EVE);
  r.cmosWrite(RTC_CONTROL, RTC_24H | RTC_SET);
  r.cmosWrite(RTC_YEAR, 0x23); // 29 February 2023 does not exist: clamped when the clock starts
  r.cmosWrite(RTC_CONTROL, RTC_24H);
  assert.equal(r.getTime().toISOString(), '2023-02-28T23:59:58.000Z');
});

test('rtc: invalid time writes are ignored; day of week follows the date', () => {
  const r = setup(LEAP_EVE);
  const before = r.getTime().toISOString();
  r.cmosWrite(RTC_MONTH, 0x13); // month 13
  r.cmosWrite(RTC_MONTH, 0x00);
  r.cmosWrite(RTC_SECONDS, 0x5a); // not BCD
  r.cmosWrite(RTC_MINUTES, 0x60);
  r.cmosWrite(RTC_HOURS, 0x24);
  r.cmosWrite(RTC_DAY_OF_MONTH, 0x30); // 30 February
  r.cmosWrite(RTC_DAY_OF_WEEK, 0x01);
  r.cmosWrite(RTC_CONTROL, 0);
  r.cmosWrite(RTC_HOURS, 0x13); // 13 in 12-hour mode
  r.cmosWrite(RTC_HOURS, 0x00);
  r.cmosWrite(RTC_CONTROL, RTC_24H | RTC_DM_BINARY);
  r.cmosWrite(RTC_YEAR, 100);
  r.cmosWrite(CENTURY, 100);
  r.cmosWrite(RTC_CONTROL, RTC_24H);
  assert.equal(r.getTime().toISOString(), before);
  assert.equal(r.cmosRead(RTC_DAY_OF_WEEK), 0x05);
  // Month change clamps the day into the new month (31 → 30 April).
  r.cmosWrite(RTC_DAY_OF_MONTH, 0x29);
  r.cmosWrite(RTC_MONTH, 0x01);
  r.cmosWrite(RTC_DAY_OF_MONTH, 0x31);
  r.cmosWrite(RTC_MONTH, 0x04);
  assert.equal(r.getTime().toISOString().slice(0, 10), '2024-04-30');
});

test('rtc: status registers, NVRAM, NMI bit masked off the index, memory size fields', () => {
  const r = setup(LEAP_EVE);
  assert.equal(r.cmosRead(RTC_VALID), 0x80, 'VRT: battery good');
  assert.equal(r.cmosRead(RTC_INTR_FLAGS), 0, 'no interrupt flags');
  r.cmosWrite(RTC_VALID, 0);
  assert.equal(r.cmosRead(RTC_VALID), 0x80, 'register D is read-only');
  assert.equal(r.io.inb(0), 0xff, 'the index port is write-only');
  for (let reg = 0x0e; reg < 0x80; reg++) if (reg !== CENTURY) r.cmosWrite(reg, reg ^ 0xa5);
  for (let reg = 0x0e; reg < 0x80; reg++) if (reg !== CENTURY) assert.equal(r.cmosRead(reg), reg ^ 0xa5, `CMOS 0x${reg.toString(16)}`);
  r.io.outb(0, 0x80 | 0x40); // NMI disabled, register 0x40
  assert.equal(r.io.inb(1), 0x40 ^ 0xa5);
  assert.equal(r.cmosRead(RTC_SECONDS), 0x58, 'index 0x80 | 0 reads seconds');
  r.cmosWrite(0x01, 0x33); // alarm seconds: plain storage
  assert.equal(r.cmosRead(0x01), 0x33);
  const wide = new Uint8Array(2);
  r.rtc.write(0, Uint8Array.of(0x20, 0x77)); // outw 0x70: index then data
  assert.equal(r.cmosRead(0x20), 0x77);
  r.rtc.read(1, wide);
  assert.deepEqual([...wide], [0x77, 0xff]);

  const m = new Rtc({ now: () => new Date(0), memory: { below4g: 3 * 1024 ** 3, above4g: 2 * 1024 ** 3 } });
  const mio = ports(m);
  const rd = (reg: number): number => {
    mio.outb(0, reg);
    return mio.inb(1);
  };
  assert.equal(rd(0x15) | (rd(0x16) << 8), 640);
  assert.equal(rd(0x17) | (rd(0x18) << 8), 0xffff, 'extended memory capped');
  assert.equal(rd(0x34) | (rd(0x35) << 8), (3 * 1024 - 16) * 16, '64 KiB units above 16 MiB');
  assert.equal(rd(0x5b) | (rd(0x5c) << 8) | (rd(0x5d) << 16), 2 * 1024 * 16, '64 KiB units above 4 GiB');
});

test('rtc: state survives a JSON round trip, also onto a host whose clock moved on; bad state is refused', () => {
  const r = setup(LEAP_EVE);
  r.cmosWrite(RTC_YEAR, 0x30); // guest set its clock 6 years ahead
  r.cmosWrite(0x50, 0x12);
  r.io.outb(0, 0x50);
  const saved = JSON.parse(JSON.stringify(r.rtc.saveState())) as RtcState;
  const t = setup(LEAP_EVE + 60_000);
  t.rtc.restoreState(saved);
  assert.equal(t.io.inb(1), 0x12, 'index restored');
  assert.equal(t.getTime().toISOString(), '2030-03-01T00:00:58.000Z', 'guest offset kept, host time moved on');
  assert.deepEqual(t.rtc.saveState().cmos, saved.cmos);

  const bad: [string, unknown, RegExp][] = [
    ['string', 'x', /rtc: state must be an object/],
    ['index', { ...saved, index: 0x80 }, /rtc: index must be an integer in 0\.\.127/],
    ['regA UIP', { ...saved, regA: 0x80 }, /rtc: regA must be an integer in 0\.\.127/],
    ['offset', { ...saved, offsetMs: 'soon' }, /rtc: offsetMs must be a finite number/],
    ['frozen without SET', { ...saved, frozen: { second: 0, minute: 0, hour: 0, day: 1, month: 1, year: 2000 } }, /rtc: frozen must be set exactly when register B has SET/],
    ['SET without frozen', { ...saved, regB: 0x82 }, /rtc: frozen must be set exactly when register B has SET/],
    ['frozen day 0', { ...saved, regB: 0x82, frozen: { second: 0, minute: 0, hour: 0, day: 0, month: 1, year: 2000 } }, /rtc\.frozen: day must be at least 1/],
    ['frozen hour 24', { ...saved, regB: 0x82, frozen: { second: 0, minute: 0, hour: 24, day: 1, month: 1, year: 2000 } }, /rtc\.frozen: hour must be an integer in 0\.\.23/],
    ['cmos size', { ...saved, cmos: [1, 2, 3] }, /rtc: cmos must hold exactly 128 bytes/],
  ];
  for (const [why, state, message] of bad) {
    const u = setup(0);
    const before = u.rtc.saveState();
    assert.throws(() => u.rtc.restoreState(state as RtcState), (e: unknown) => e instanceof DeviceStateError && message.test(e.message), why);
    assert.deepEqual(u.rtc.saveState(), before, `${why}: nothing changed`);
  }
});

test('rtc: random traffic and clock jumps never throw; BCD mode always reads valid BCD time', () => {
  const op = fc.oneof(
    fc.record({ write: fc.boolean(), offset: fc.integer({ min: -1, max: RTC_PORT_SPAN + 1 }), size: fc.constantFrom(1, 2, 4), value: fc.integer({ min: 0, max: 0xffffffff }) }),
    fc.record({ advance: fc.integer({ min: 0, max: 400 * 86400_000 }) }),
  );
  const isBcd = (v: number): boolean => (v >> 4) <= 9 && (v & 15) <= 9;
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4102444800000 }), fc.array(op, { maxLength: 200 }), (start, ops) => {
      const r = setup(start);
      for (const o of ops) {
        if ('advance' in o) {
          r.clock.ms += o.advance;
        } else {
          const data = new Uint8Array(4);
          new DataView(data.buffer).setUint32(0, o.value >>> 0, true);
          if (o.write) r.rtc.write(o.offset, data.subarray(0, o.size));
          else r.rtc.read(o.offset, data.subarray(0, o.size));
        }
        const st = r.rtc.saveState();
        if (!(st.regB & RTC_DM_BINARY)) {
          for (const reg of [RTC_SECONDS, RTC_MINUTES, RTC_DAY_OF_MONTH, RTC_MONTH, RTC_YEAR]) {
            assert.ok(isBcd(r.cmosRead(reg)), `register ${reg} is BCD`);
          }
          assert.ok(isBcd(r.cmosRead(RTC_HOURS) & 0x7f));
        }
        r.io.outb(0, st.index);
        assert.deepEqual(r.rtc.saveState(), st, 'reads have no side effects');
      }
    }),
    { numRuns: 200 },
  );
});
