# Routes IOAPIC pin 4 to vector 0x40 on APIC 0, says 'R' and halts with
# interrupts on; the handler says 'I' and EOIs. IDT at 0x3000.
        .code64
        mov     $0xff, %al              # mask both 8259s: GSI 4 arrives via the IOAPIC only
        out     %al, $0x21
        out     %al, $0xa1
        lea     handler(%rip), %rax
        mov     $0x3000 + 0x40 * 16, %edi
        mov     %ax, (%rdi)             # offset 15:0
        movw    $0x08, 2(%rdi)          # code selector
        movw    $0x8e00, 4(%rdi)        # present, DPL 0, 64-bit interrupt gate
        shr     $16, %rax
        mov     %ax, 6(%rdi)            # offset 31:16
        shr     $16, %rax
        mov     %eax, 8(%rdi)           # offset 63:32
        movl    $0, 12(%rdi)
        lidt    idtr(%rip)
        mov     $0xfee00000, %ebx
        movl    $0x1ff, 0xf0(%rbx)      # LAPIC SVR: enabled
        mov     $0xfec00000, %ecx
        movl    $0x18, (%rcx)           # IOREGSEL: redirection entry 4, low
        movl    $0x40, 0x10(%rcx)       # vector 0x40, fixed, physical, edge, unmasked
        movl    $0x19, (%rcx)           # redirection entry 4, high
        movl    $0, 0x10(%rcx)          # destination APIC ID 0
        sti
        mov     $0x3f8, %dx
        mov     $'R', %al
        out     %al, (%dx)
1:      hlt
        jmp     1b
handler:
        mov     $'I', %al
        out     %al, (%dx)
        movl    $0, 0xb0(%rbx)          # LAPIC EOI
        iretq
idtr:   .word   0xfff
        .quad   0x3000
