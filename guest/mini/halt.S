# Halts with interrupts off: only the host can get this vCPU out of KVM_RUN.
        .code64
1:      cli
        hlt
        jmp     1b
