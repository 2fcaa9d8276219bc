/**
 * The notify guest shared by test/kvm/ioeventfd.test.ts and bench/kvm/notify.ts:
 * x86-64 code that writes a "queue notify" value to an MMIO address and waits
 * for the host's answer in RAM. The source lives here with its bytes (the
 * test re-assembles NOTIFY_GUEST_SOURCE with `as --64` and compares).
 */
import type { BootCpuState } from '../../src/engine/engine.js';
import type { GuestMemory, MemoryBacking } from '../../src/memory/index.js';
import { longModeGuest } from '../../test/kvm/mini-guest.js';

export const NOTIFY_GUEST_SOURCE = `# Notify guests for the MMIO notifier tests and benchmark (64-bit, CPL0).
# In: RBX = notify address, EAX = value to write there, EDX = a value the host
# does not catch, RSI = address of the host's 32-bit reply word (RAM), RCX = n >= 1.
        .code64
round_trip:                     # n times: write EAX, wait until the reply word = round
        xor     %edi, %edi
1:      inc     %edi
        mov     %eax, (%rbx)
2:      cmp     %edi, (%rsi)
        jne     2b
        dec     %rcx
        jnz     1b
        jmp     done
fire:                           # n writes back to back, then wait until the reply word = n
        mov     %ecx, %edi
1:      mov     %eax, (%rbx)
        dec     %rcx
        jnz     1b
2:      cmp     %edi, (%rsi)
        jne     2b
done:   mov     %edx, (%rbx)    # one write of another value: the exit path
off:    mov     $0x600, %dx     # ACPI sleep control: SLP_TYP=5 | SLP_EN
        mov     $0x34, %al
        out     %al, (%dx)
        hlt
busy:                           # one write of EAX, then n port writes (n exits) to 0x3f8
        mov     %eax, (%rbx)
        mov     $0x3f8, %dx
1:      out     %al, (%dx)
        dec     %rcx
        jnz     1b
        jmp     off
`;

export const NOTIFY_GUEST_HEX = '31ffffc78903393e75fc48ffc975f3eb0d89cf890348ffc975f9393e75fc891366ba0006b034eef4890366baf803ee48ffc975faebea';
/** Entry offsets of the three programs. */
export const NOTIFY_ROUND_TRIP = 0x00;
export const NOTIFY_FIRE = 0x11;
export const NOTIFY_BUSY = 0x28;

/** Where the guest writes: slot 0's QueueNotify register of the machine's virtio-mmio window shape (unmapped here). */
export const NOTIFY_ADDRESS = 0xd000_0050;
/** The host's reply word, in RAM. */
export const REPLY_ADDRESS = 0x20_0000;

const ENTRIES = { 'round-trip': NOTIFY_ROUND_TRIP, fire: NOTIFY_FIRE, busy: NOTIFY_BUSY } as const;

export interface NotifyGuestOptions {
  /** round-trip: n × (write, wait for the reply); fire: n writes, then wait; busy: one write, then n port-I/O exits. */
  mode: 'round-trip' | 'fire' | 'busy';
  /** Writes (round trips) of `value`, at least 1. */
  count: number;
  /** The value written n times (a notifier's datamatch). */
  value: number;
  /** The value written once at the end. */
  other: number;
}

export function notifyGuest(backing: MemoryBacking, o: NotifyGuestOptions): { memory: GuestMemory; boot: BootCpuState } {
  if (!Number.isInteger(o.count) || o.count < 1) throw new RangeError(`notify guest: count must be at least 1, not ${o.count}`);
  const code = Uint8Array.from(Buffer.from(NOTIFY_GUEST_HEX, 'hex'));
  const g = longModeGuest(backing, code, { entry: ENTRIES[o.mode], rcx: BigInt(o.count) });
  g.boot.regs.rbx = BigInt(NOTIFY_ADDRESS);
  g.boot.regs.rax = BigInt(o.value);
  g.boot.regs.rdx = BigInt(o.other);
  g.boot.regs.rsi = BigInt(REPLY_ADDRESS);
  return g;
}
