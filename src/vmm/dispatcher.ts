import type { Bus } from '../bus/index.js';
import type { ExitDispatcher } from '../engine/engine.js';

/**
 * Routes guest port I/O and MMIO exits to the buses. Accesses no device
 * claims behave as on a PC with nothing at that address: port reads float
 * high (0xFF), MMIO reads return 0, writes vanish. Each unclaimed address is
 * reported once (through `onUnclaimed`) so a guest probing the whole I/O space
 * cannot flood the log.
 */
export class BusDispatcher implements ExitDispatcher {
  private readonly seen = new Set<string>();
  pioExits = 0;
  mmioExits = 0;

  constructor(
    private readonly pioBus: Bus,
    private readonly mmioBus: Bus,
    private readonly onUnclaimed: (what: string) => void = () => {},
  ) {}

  pio(_cpu: number, port: number, data: Uint8Array, isWrite: boolean): void {
    this.pioExits++;
    const ok = isWrite ? this.pioBus.write(port, data) : this.pioBus.read(port, data);
    if (!ok) {
      if (!isWrite) data.fill(0xff);
      this.unclaimed(`port 0x${port.toString(16)}`, isWrite, data.length);
    }
  }

  mmio(_cpu: number, address: number, data: Uint8Array, isWrite: boolean): void {
    this.mmioExits++;
    const ok = isWrite ? this.mmioBus.write(address, data) : this.mmioBus.read(address, data);
    if (!ok) {
      if (!isWrite) data.fill(0);
      this.unclaimed(`MMIO 0x${address.toString(16)}`, isWrite, data.length);
    }
  }

  private unclaimed(where: string, isWrite: boolean, size: number): void {
    const key = `${where}/${isWrite ? 'w' : 'r'}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.onUnclaimed(`unclaimed ${size}-byte ${isWrite ? 'write to' : 'read from'} ${where}`);
  }
}
