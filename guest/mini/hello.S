# "hi" by single OUTs, "yo!" by one string OUT (rep outsb), then the ACPI
# sleep-control write the machine treats as poweroff.
        .code64
        mov     $0x3f8, %dx
        mov     $'h', %al
        out     %al, (%dx)
        mov     $'i', %al
        out     %al, (%dx)
        lea     msg(%rip), %rsi
        mov     $3, %ecx
        rep outsb
        mov     $0x600, %dx             # SLP_TYP=5 | SLP_EN
        mov     $0x34, %al
        out     %al, (%dx)
        hlt
msg:    .ascii  "yo!"
