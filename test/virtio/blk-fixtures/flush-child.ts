/**
 * Child process of the FLUSH durability test: writes a pattern through a
 * virtio-blk device on a real image file, then (per argv) flushes or relies
 * on write-through, and prints "durable" the moment the device completes
 * the request that makes the data stable. The parent SIGKILLs it on that
 * line; nothing after the completion may be needed for the data to be in
 * the file.
 *
 *   node flush-child.js IMAGE SECTOR HEX_PATTERN flush|write-through
 */
import { RecordingIrqLine } from '../../../src/bus/index.js';
import { GuestMemory, heapBacking } from '../../../src/memory/index.js';
import { VirtioMmioTransport } from '../../../src/virtio/index.js';
import { MockMmioDriver, MockVirtqueue, layoutQueue } from '../../../src/virtio/mock-driver.js';
import { FileBackend, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_OUT, VirtioBlock } from '../../../src/virtio/blk/index.js';

const [path, sectorText, hex, mode] = process.argv.slice(2);
if (!path || !sectorText || !hex || (mode !== 'flush' && mode !== 'write-through')) {
  process.stderr.write('usage: flush-child IMAGE SECTOR HEX flush|write-through\n');
  process.exit(2);
}
const pattern = Buffer.from(hex, 'hex');
const memory = new GuestMemory([heapBacking.allocate(0, 0x40_0000)]);
const blk = new VirtioBlock({ backend: FileBackend.open(path, { readOnly: false }), id: 'durable' });
const transport = new VirtioMmioTransport(blk, { memory, irq: new RecordingIrqLine() });
const driver = new MockMmioDriver(transport);
const layout = layoutQueue(0x1000, 16);
driver.init([layout], (offered) => (mode === 'flush' ? offered : offered & ~VIRTIO_BLK_F_FLUSH));
const ring = new MockVirtqueue(memory, layout);

const HDR = 0x1_0000;
const DATA = 0x2_0000;
const STATUS = 0x3_0000;
memory.writeU32(HDR, VIRTIO_BLK_T_OUT);
memory.writeU64(HDR + 8, BigInt(sectorText));
memory.write(DATA, pattern);
memory.writeU32(HDR + 0x100, VIRTIO_BLK_T_FLUSH);

const last = (): number => {
  const used = ring.takeUsed();
  return used.length;
};

let stage = 0;
const poll = setInterval(() => {
  if (last() === 0) return;
  if (mode === 'flush' && stage === 0) {
    stage = 1;
    ring.addChain([{ address: HDR + 0x100, length: 16 }, { address: STATUS + 1, length: 1, writable: true }]);
    driver.notify(0);
    return;
  }
  if (memory.readU8(mode === 'flush' ? STATUS + 1 : STATUS) !== 0) {
    process.stdout.write('failed\n');
    process.exit(1);
  }
  clearInterval(poll);
  process.stdout.write('durable\n');
  setInterval(() => {}, 1000); // stay alive until killed
}, 0);

ring.addChain([{ address: HDR, length: 16 }, { address: DATA, length: pattern.length }, { address: STATUS, length: 1, writable: true }]);
driver.notify(0);
