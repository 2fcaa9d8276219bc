/**
 * A device on an address bus (port I/O or MMIO). `offset` is relative to the
 * base the device was inserted at; `data.length` is the access size. Reads fill
 * `data`; writes consume it. A device must never throw on any offset/size the
 * guest can produce: unknown registers read as zero and ignore writes.
 */
export interface BusDevice {
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

interface Range {
  readonly base: number;
  readonly length: number;
  readonly name: string;
  readonly device: BusDevice;
}

export class BusError extends Error {
  override name = 'BusError';
}

/**
 * Maps address ranges to devices. Ranges never overlap; lookups are a binary
 * search over the sorted ranges. An access must fall entirely inside one range
 * to reach its device.
 */
export class Bus {
  private ranges: Range[] = [];

  constructor(readonly kind: 'pio' | 'mmio') {}

  insert(device: BusDevice, base: number, length: number, name: string): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length <= 0) {
      throw new BusError(`${this.kind} bus: bad range for ${name}`);
    }
    for (const r of this.ranges) {
      if (base < r.base + r.length && r.base < base + length) {
        throw new BusError(`${this.kind} bus: ${name} at 0x${base.toString(16)} overlaps ${r.name} at 0x${r.base.toString(16)}`);
      }
    }
    this.ranges.push({ base, length, name, device });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  remove(base: number): boolean {
    const i = this.ranges.findIndex((r) => r.base === base);
    if (i < 0) return false;
    this.ranges.splice(i, 1);
    return true;
  }

  private find(address: number, size: number): Range | undefined {
    const rs = this.ranges;
    let lo = 0;
    let hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = rs[mid]!;
      if (address < r.base) hi = mid - 1;
      else if (address >= r.base + r.length) lo = mid + 1;
      else return address + size <= r.base + r.length ? r : undefined;
    }
    return undefined;
  }

  /** Name of the device at `address`, for diagnostics. */
  nameAt(address: number): string | undefined {
    return this.find(address, 1)?.name;
  }

  /** Dispatches a read; returns false (data untouched) when no device claims the whole access. */
  read(address: number, data: Uint8Array): boolean {
    const r = this.find(address, data.length);
    if (!r) return false;
    r.device.read(address - r.base, data);
    return true;
  }

  /** Dispatches a write; returns false when no device claims the whole access. */
  write(address: number, data: Uint8Array): boolean {
    const r = this.find(address, data.length);
    if (!r) return false;
    r.device.write(address - r.base, data);
    return true;
  }

  list(): readonly { base: number; length: number; name: string }[] {
    return this.ranges.map(({ base, length, name }) => ({ base, length, name }));
  }
}
