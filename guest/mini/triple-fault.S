# Loads an empty IDT and raises #UD: #UD -> #GP -> #DF -> shutdown.
        .code64
        lidt    idtr(%rip)
        ud2
        hlt
idtr:   .word   0
        .quad   0
