# Exit-loop guests for the KVM engine benchmark and tests (64-bit, entered
# with RCX = iteration count). Assembled with `as --64`; the bytes are
# embedded in bench/kvm/raw-exit.c and test/kvm/mini-guest.ts.
        .code64
pio_loop:                       # RCX times: out al -> port 0x3f8
        mov     $0x3f8, %dx
1:      out     %al, (%dx)
        dec     %rcx
        jnz     1b
        mov     $0x600, %dx     # ACPI sleep control: SLP_TYP=5 | SLP_EN
        mov     $0x34, %al
        out     %al, (%dx)
        hlt
mmio_loop:                      # RCX times: 32-bit store to unmapped 0xd0000000
        mov     $0xd0000000, %ebx
1:      mov     %eax, (%rbx)
        dec     %rcx
        jnz     1b
        mov     $0x600, %dx
        mov     $0x34, %al
        out     %al, (%dx)
        hlt
