# Reads MMIO values the host supplies and writes them back 8 bytes further,
# at 32 and 64 bits, then powers off.
        .code64
        mov     $0xd0000000, %ebx
        mov     (%rbx), %eax
        mov     %eax, 8(%rbx)
        mov     16(%rbx), %rax
        mov     %rax, 24(%rbx)
        mov     $0x600, %dx
        mov     $0x34, %al
        out     %al, (%dx)
        hlt
