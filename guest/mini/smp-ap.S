# Application processor, real mode at 0x0800:0000: says 'A', halts.
        .code16
        mov     $0x3f8, %dx
        mov     $'A', %al
        out     %al, (%dx)
1:      cli
        hlt
        jmp     1b
