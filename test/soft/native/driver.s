# Differential-test driver: runs instruction templates over a stream of case
# records read from stdin and writes each record back, updated, to stdout.
# The same static executable runs natively and on the soft CPU
# (native-emulate.ts), so both sides execute the same bytes.
#
# Record layout (REC bytes, little-endian; native-harness.ts mirrors it):
#     0 u32  in: template index       out: fault (signal | si_code << 8), 0 if none
#     4 u32  MXCSR
#     8 u64  RFLAGS
#    16 u64  rax rbx rcx rdx rsi rdi rbp r8 r9 r10 r11 r12 r13 r14
#   128 16B  xmm0 xmm1 xmm2 xmm3
#   192 128B memory window: templates address it as [r15 + 192 + k]
#   320 u64  out: RIP of the faulting instruction
#   328 u64  out: RSP at the end (or at the fault) minus RSP at the start
#   336 u16  in: x87 control word
#   338 u16  out: x87 status word
#
# r15 points at the current record and rsp at the driver's stack: templates
# leave both as they found them. A fault (divide error, #UD, ...) enters
# on_signal, which records it and returns into case_fault with every
# register as it was at the faulting instruction (the kernel restores them
# from the signal frame), so the fault's state is stored like any other.

.intel_syntax noprefix
.set REC, 352
.set CHUNK, 1024
.set SYS_READ, 0
.set SYS_WRITE, 1
.set SYS_RT_SIGACTION, 13
.set SYS_RT_SIGRETURN, 15
.set SYS_EXIT_GROUP, 231
# sa_flags: SA_SIGINFO | SA_RESTORER | SA_NODEFER (asm-generic/signal-defs.h, x86 signal.h)
.set SA_FLAGS, 0x4 | 0x04000000 | 0x40000000
# uc_mcontext.gregs[REG_RIP]: ucontext_t = uc_flags, uc_link, stack_t (24), then gregs[23]; REG_RIP = 16
.set UC_RIP, 40 + 16 * 8

.globl _start
.globl case_done
.globl case_fault
.globl fault_status
.globl fault_rip
.text
_start:
  mov edi, 4                      # SIGILL
  call install
  mov edi, 7                      # SIGBUS
  call install
  mov edi, 8                      # SIGFPE
  call install
  mov edi, 11                     # SIGSEGV
  call install

next_chunk:
  xor r12d, r12d                  # bytes of this chunk read so far
1:
  mov eax, SYS_READ
  xor edi, edi
  lea rsi, [rip + records]
  add rsi, r12
  mov edx, CHUNK * REC
  sub rdx, r12
  jz 2f
  syscall
  test rax, rax
  jl fail
  jz 2f
  add r12, rax
  jmp 1b
2:
  test r12, r12
  jz finish
  lea r15, [rip + records]
  lea rax, [r15 + r12]
  mov [rip + chunk_end], rax

case_loop:
  mov dword ptr [rip + fault_status], 0
  mov qword ptr [rip + fault_rip], 0
  mov eax, [r15]
  cmp eax, [rip + template_count]
  jae fail
  lea rbx, [rip + template_table]
  mov rax, [rbx + rax * 8]
  mov [rip + target], rax
  ldmxcsr [r15 + 4]
  fninit
  fldcw [r15 + 336]
  movdqu xmm0, [r15 + 128]
  movdqu xmm1, [r15 + 144]
  movdqu xmm2, [r15 + 160]
  movdqu xmm3, [r15 + 176]
  mov [rip + case_rsp], rsp
  push qword ptr [r15 + 8]
  popfq
  mov rax, [r15 + 16]
  mov rbx, [r15 + 24]
  mov rcx, [r15 + 32]
  mov rdx, [r15 + 40]
  mov rsi, [r15 + 48]
  mov rdi, [r15 + 56]
  mov rbp, [r15 + 64]
  mov r8, [r15 + 72]
  mov r9, [r15 + 80]
  mov r10, [r15 + 88]
  mov r11, [r15 + 96]
  mov r12, [r15 + 104]
  mov r13, [r15 + 112]
  mov r14, [r15 + 120]
  jmp qword ptr [rip + target]

case_done:
case_fault:
  pushfq
  pop qword ptr [r15 + 8]
  cld
  mov [r15 + 16], rax
  mov [r15 + 24], rbx
  mov [r15 + 32], rcx
  mov [r15 + 40], rdx
  mov [r15 + 48], rsi
  mov [r15 + 56], rdi
  mov [r15 + 64], rbp
  mov [r15 + 72], r8
  mov [r15 + 80], r9
  mov [r15 + 88], r10
  mov [r15 + 96], r11
  mov [r15 + 104], r12
  mov [r15 + 112], r13
  mov [r15 + 120], r14
  mov rax, rsp
  sub rax, [rip + case_rsp]
  mov [r15 + 328], rax
  movdqu [r15 + 128], xmm0
  movdqu [r15 + 144], xmm1
  movdqu [r15 + 160], xmm2
  movdqu [r15 + 176], xmm3
  stmxcsr [r15 + 4]
  fnstsw [r15 + 338]
  mov eax, [rip + fault_status]
  mov [r15], eax
  mov rax, [rip + fault_rip]
  mov [r15 + 320], rax
  add r15, REC
  cmp r15, [rip + chunk_end]
  jb case_loop

  # The chunk is done: write it out whole.
  lea r13, [rip + records]
  mov r12, [rip + chunk_end]
  sub r12, r13
3:
  mov eax, SYS_WRITE
  mov edi, 1
  mov rsi, r13
  mov rdx, r12
  syscall
  test rax, rax
  jle fail
  add r13, rax
  sub r12, rax
  jnz 3b
  jmp next_chunk

finish:
  mov eax, SYS_EXIT_GROUP
  xor edi, edi
  syscall
fail:
  mov eax, SYS_EXIT_GROUP
  mov edi, 2
  syscall

# install(edi = signal): rt_sigaction(signal, &sigact, NULL, 8)
install:
  mov eax, SYS_RT_SIGACTION
  lea rsi, [rip + sigact]
  xor edx, edx
  mov r10d, 8
  syscall
  test rax, rax
  jnz fail
  ret

# on_signal(rdi = signal, rsi = siginfo, rdx = ucontext)
on_signal:
  mov eax, [rsi + 8]              # si_code
  shl eax, 8
  or eax, edi
  mov [rip + fault_status], eax
  mov rax, [rdx + UC_RIP]
  mov [rip + fault_rip], rax
  lea rax, [rip + case_fault]
  mov [rdx + UC_RIP], rax
  ret

restorer:
  mov eax, SYS_RT_SIGRETURN
  syscall

.data
.balign 8
sigact:
  .quad on_signal
  .quad SA_FLAGS
  .quad restorer
  .quad 0                         # sa_mask
fault_status: .quad 0
fault_rip: .quad 0
target: .quad 0
chunk_end: .quad 0
case_rsp: .quad 0

.bss
.balign 64
records: .zero CHUNK * REC
