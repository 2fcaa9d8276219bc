/**
 * Port 0x80, the POST diagnostic port. Firmware writes progress codes here;
 * Linux writes it as a ~1 µs I/O delay (outb_p, io_delay_type 0x80), often,
 * so a write only records the value. Reads return 0.
 */
import type { BusDevice } from '../../bus/index.js';
import { StateReader } from './common.js';

export const DEBUG_PORT = 0x80;
export const DEBUG_PORT_SPAN = 1;

export interface DebugPortState {
  lastCode: number;
  writes: number;
}

export class DebugPort implements BusDevice {
  /** The last byte written (the POST code a diagnostic card would show). */
  lastCode = 0;
  /** Byte writes seen since creation or restore. */
  writes = 0;

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset !== 0 || data.length === 0) return;
    this.lastCode = data[0]!;
    this.writes++;
  }

  saveState(): DebugPortState {
    return { lastCode: this.lastCode, writes: this.writes };
  }

  /** Restores a state from `saveState`; throws DeviceStateError (and changes nothing) if it is malformed. */
  restoreState(state: DebugPortState): void {
    const r = new StateReader('debug-port', state);
    const lastCode = r.int('lastCode', 0xff);
    const writes = r.int('writes', Number.MAX_SAFE_INTEGER);
    this.lastCode = lastCode;
    this.writes = writes;
  }
}
