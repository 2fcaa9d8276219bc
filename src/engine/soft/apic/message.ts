/**
 * Interrupt messages between the IOAPIC and the local APICs, and between
 * local APICs (IPIs): the fields an xAPIC system-bus message carries.
 * Delivery-mode numbers are the 3-bit field shared by the ICR (SDM Vol. 3,
 * "Interrupt Command Register"), the LVT entries and the IOAPIC redirection
 * entries (82093AA datasheet, 3.2.4).
 */

/** Delivery mode 000: the vector to the destination's IRR. */
export const DM_FIXED = 0;
/** Delivery mode 001: the vector to the lowest-priority APIC among the destinations. */
export const DM_LOWEST = 1;
/** Delivery mode 010: system management interrupt (no SMM here: dropped). */
export const DM_SMI = 2;
/** Delivery mode 100: non-maskable interrupt; vector ignored. */
export const DM_NMI = 4;
/** Delivery mode 101: INIT (vCPU to wait-for-SIPI, local APIC to its reset state). */
export const DM_INIT = 5;
/** Delivery mode 110: start-up IPI; vector = start page (ICR only). */
export const DM_STARTUP = 6;
/** Delivery mode 111: external interrupt, vector from an 8259 (there is none here: dropped). */
export const DM_EXTINT = 7;

/** Physical destination 0xFF: every local APIC (xAPIC broadcast). */
export const DEST_BROADCAST = 0xff;

/** Who an interrupt message is for. */
export type Shorthand =
  /** The destination field decides (physical ID or logical mask). */
  | 'none'
  /** Every local APIC, the sender included (ICR shorthand 10b). */
  | 'all'
  /** Every local APIC but the sender (ICR shorthand 11b). */
  | 'others';

export interface ApicMessage {
  /** Vector 0..255 (fixed, lowest-priority; start page for SIPI). */
  vector: number;
  /** One of the DM_* delivery modes. */
  mode: number;
  /** Destination mode: logical (LDR/DFR match) when true, physical (APIC ID) otherwise. */
  logical: boolean;
  /** 8-bit xAPIC destination: an APIC ID, or a logical mask. */
  destination: number;
  /** Level-triggered: the receiver sets its TMR bit and broadcasts its EOI. */
  levelTriggered: boolean;
  shorthand: Shorthand;
  /** Index of the sending local APIC (IPIs); undefined for IOAPIC messages. */
  source?: number;
}
