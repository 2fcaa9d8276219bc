# Endless OUTs of an incrementing byte to port 0x3f8.
        .code64
        mov     $0x3f8, %dx
1:      out     %al, (%dx)
        inc     %al
        jmp     1b
