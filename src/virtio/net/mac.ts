/** Ethernet MAC addresses: parsing the command line's `mac=…`, and random ones for guests without. */
import { randomFillSync } from 'node:crypto';

/** Bytes of an Ethernet address. */
export const MAC_LENGTH = 6;
/** First-octet bit of a group (multicast) address (IEEE 802, transmitted first). */
const MAC_GROUP = 0x01;
/** First-octet bit of a locally administered address: never collides with a vendor's. */
const MAC_LOCAL = 0x02;

/** Parses "aa:bb:cc:dd:ee:ff" (or with '-'); throws RangeError naming the problem. A NIC's own address must be unicast. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(/[:-]/);
  if (parts.length !== MAC_LENGTH || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`MAC address "${text}" is not six hexadecimal octets like 02:00:00:00:00:01`);
  }
  const mac = Uint8Array.from(parts, (p) => Number.parseInt(p, 16));
  if (mac[0]! & MAC_GROUP) throw new RangeError(`MAC address "${text}" is a multicast address (low bit of the first octet set)`);
  if (mac.every((b) => b === 0)) throw new RangeError(`MAC address "${text}" is all zeros`);
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** A random locally administered unicast address. */
export function randomMac(fill: (into: Uint8Array) => void = (into) => void randomFillSync(into)): Uint8Array {
  const mac = new Uint8Array(MAC_LENGTH);
  fill(mac);
  mac[0] = (mac[0]! & ~MAC_GROUP & 0xff) | MAC_LOCAL;
  return mac;
}
