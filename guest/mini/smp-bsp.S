# Boot CPU: enables its LAPIC, sends INIT then SIPI (vector 0x08: APs start
# in real mode at 0x8000) to all other CPUs, says 'B', halts.
        .code64
        mov     $0xfee00000, %ebx
        movl    $0x1ff, 0xf0(%rbx)      # SVR: APIC enabled, spurious vector 0xff
        movl    $0, 0x310(%rbx)         # ICR high: destination unused with a shorthand
        movl    $0x000c4500, 0x300(%rbx) # ICR: all excluding self, level assert, INIT
        movl    $0x000c4608, 0x300(%rbx) # ICR: all excluding self, start-up, vector 0x08
        mov     $0x3f8, %dx
        mov     $'B', %al
        out     %al, (%dx)
1:      cli
        hlt
        jmp     1b
