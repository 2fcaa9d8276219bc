/*
 * Entry points of the test guest.
 *
 * startup_64: the Linux 64-bit boot protocol entry (Documentation/arch/x86/boot.rst,
 * "64-bit BOOT PROTOCOL"): long mode, paging on with an identity map, a flat
 * GDT, interrupts off, RSI = boot_params. Only that is assumed: the guest records
 * the state it was handed, then installs its own GDT, page tables, IDT and stack.
 *
 * trampoline: the application processors' path from the real-mode reset state a
 * SIPI leaves them in (Intel SDM Vol. 3A, 9.4 "Multiple-Processor (MP)
 * Initialization") through protected mode into long mode (SDM 9.8.5
 * "Initializing IA-32e Mode"). It is copied to TG_TRAMPOLINE_ADDR at run time.
 */
#include "tg.h"

#define MSR_EFER	0xc0000080
#define EFER_LME	(1 << 8)	/* long mode enable */
#define CR0_PE		(1 << 0)
#define CR0_PG		(1 << 31)
#define CR4_PAE		(1 << 5)
#define PTE_P		0x001
#define PTE_RW		0x002
#define PTE_PWT		0x008
#define PTE_PCD		0x010
#define PTE_PS		0x080		/* 2 MiB page in a page-directory entry */
#define BOOT_STACK_SIZE	16384

	.section .text.entry, "ax"
	.code64
	.globl startup_64
startup_64:
	cli
	/* Record the handed-over state before touching anything. */
	movq	%rsi, entry_state + 8 * ES_RSI(%rip)
	movq	%rsp, entry_state + 8 * ES_RSP(%rip)
	leaq	boot_stack_top(%rip), %rsp
	pushfq
	popq	entry_state + 8 * ES_RFLAGS(%rip)
	movw	%cs, %ax
	movzwq	%ax, %rax
	movq	%rax, entry_state + 8 * ES_CS(%rip)
	movw	%ds, %ax
	movzwq	%ax, %rax
	movq	%rax, entry_state + 8 * ES_DS(%rip)
	movw	%ss, %ax
	movzwq	%ax, %rax
	movq	%rax, entry_state + 8 * ES_SS(%rip)
	movq	%cr0, %rax
	movq	%rax, entry_state + 8 * ES_CR0(%rip)
	movq	%cr3, %rax
	movq	%rax, entry_state + 8 * ES_CR3(%rip)
	movq	%cr4, %rax
	movq	%rax, entry_state + 8 * ES_CR4(%rip)
	movl	$MSR_EFER, %ecx
	rdmsr
	shlq	$32, %rdx
	orq	%rdx, %rax
	movq	%rax, entry_state + 8 * ES_EFER(%rip)
	sgdt	saved_gdtr(%rip)
	movzwq	saved_gdtr(%rip), %rax
	movq	%rax, entry_state + 8 * ES_GDT_LIMIT(%rip)
	movq	saved_gdtr + 2(%rip), %rax
	movq	%rax, entry_state + 8 * ES_GDT_BASE(%rip)

	cld
	call	load_gdt_and_segments
	movq	$pml4, %rax
	movq	%rax, %cr3

	/* .bss is not part of the file image: zero it rather than trust the
	 * loader. Stacks live in .stack, outside this range, and stay as is. */
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq

	movq	entry_state + 8 * ES_RSI(%rip), %rdi
	call	tg_main
	jmp	halt_forever

/* Loads our GDT, reloads CS with a far return and the data segments. */
load_gdt_and_segments:
	lgdt	gdt_ptr(%rip)
	popq	%rdx			/* return address */
	pushq	$TG_CS64
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:	movl	$TG_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	jmp	*%rdx

	.globl halt_forever
halt_forever:
	cli
1:	hlt
	jmp	1b

	.globl load_idt
load_idt:
	lidt	idt_ptr(%rip)
	ret

	/* An IDT with limit 0: the next exception cannot be delivered, nor the #DF
	 * that follows, and the CPU shuts down (SDM 6.15, "Interrupt 8"). */
	.globl load_null_idt
load_null_idt:
	lidt	null_idt_ptr(%rip)
	ret

/* ---- exceptions: vector and error code onto the stack, then C ---- */
	.altmacro
	.macro	EXC vec
	.balign	16
exc_\vec:
	.if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
	/* the CPU pushed an error code */
	.else
	pushq	$0
	.endif
	pushq	$\vec
	jmp	exc_common
	.endm

	.set	v, 0
	.rept	32
	EXC	%v
	.set	v, v + 1
	.endr

exc_common:
	/* frame: vector, error, rip, cs, rflags, rsp, ss */
	movq	%rsp, %rdi
	andq	$-16, %rsp
	call	exception_handler
	jmp	halt_forever

/* ---- application processors, once in long mode (jumped to from the trampoline) ---- */
ap_start64:
	movl	$TG_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	lgdt	gdt_ptr(%rip)
	lidt	idt_ptr(%rip)
	/* A ticket picks this AP's stack; APs start in any order. */
	movl	$1, %eax
	lock xaddl %eax, ap_ticket(%rip)
	cmpl	$TG_MAX_CPUS - 1, %eax
	jae	halt_forever
	movl	%eax, %edi
	incl	%eax
	shll	$12, %eax		/* TG_AP_STACK_SIZE */
	leaq	ap_stacks(%rip), %rsp
	addq	%rax, %rsp
	call	ap_main
	jmp	halt_forever

	.section .rodata
	.balign	8
	.globl	exc_stub_table
exc_stub_table:
	.macro	EXC_PTR vec
	.quad	exc_\vec
	.endm
	.set	v, 0
	.rept	32
	EXC_PTR	%v
	.set	v, v + 1
	.endr

/*
 * The AP trampoline. Position dependent: assembled here, run at
 * TG_TRAMPOLINE_ADDR, so every address inside it is written as
 * TG_TRAMPOLINE_ADDR + (label - trampoline_start).
 */
#define T(label) (TG_TRAMPOLINE_ADDR + (label - trampoline_start))
	.balign	16
	.globl	trampoline_start
trampoline_start:
	.code16
	/* SIPI vector V starts the AP at CS = V << 8, IP = 0 (SDM 10.6.1). */
	cli
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	(tramp_gdt_ptr - trampoline_start)
	movl	%cr0, %eax
	orl	$CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$TG_CS32, $T(tramp32)

	.code32
tramp32:
	movl	$TG_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	/* SDM 9.8.5: PAE, CR3, EFER.LME, then paging. */
	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$CR0_PG, %eax
	movl	%eax, %cr0
	ljmpl	$TG_CS64, $T(tramp64)

	.code64
tramp64:
	movabsq	$ap_start64, %rax
	jmpq	*%rax

	.balign	8
tramp_gdt_ptr:
	.word	gdt_end - gdt - 1
	.long	gdt
	.globl	trampoline_end
trampoline_end:

	.data
	.balign	16
gdt:
	.quad	0
	.quad	0x00af9a000000ffff	/* 0x08: 64-bit code, DPL0 */
	.quad	0x00cf92000000ffff	/* 0x10: data, 4 GiB, DPL0 */
	.quad	0x00cf9a000000ffff	/* 0x18: 32-bit code, 4 GiB, DPL0 (AP trampoline) */
gdt_end:

	.balign	8
	.word	0
gdt_ptr:
	.word	gdt_end - gdt - 1
	.quad	gdt
	.balign	8
	.word	0
idt_ptr:
	.word	256 * 16 - 1
	.quad	idt_table
	.balign	8
	.word	0
null_idt_ptr:
	.word	0
	.quad	0
	.balign	8
	.word	0
saved_gdtr:
	.word	0
	.quad	0

	.balign	8
	.globl	entry_state
entry_state:
	.fill	ES_COUNT, 8, 0

	.globl	ap_ticket
ap_ticket:
	.long	0

/*
 * Our own page tables: the first 4 GiB identity mapped with 2 MiB pages,
 * the top GiB (MMIO hole: LAPIC, IOAPIC, virtio) uncached.
 * Below 4 GiB so the 32-bit trampoline can load CR3.
 */
	.balign	4096
pml4:
	.quad	pdpt + PTE_P + PTE_RW
	.fill	511, 8, 0
pdpt:
	.quad	pd + 0x0000 + PTE_P + PTE_RW
	.quad	pd + 0x1000 + PTE_P + PTE_RW
	.quad	pd + 0x2000 + PTE_P + PTE_RW
	.quad	pd + 0x3000 + PTE_P + PTE_RW
	.fill	508, 8, 0
pd:
	.set	i, 0
	.rept	2048
	.if	i >= 1536
	.quad	(i << 21) + PTE_P + PTE_RW + PTE_PS + PTE_PCD + PTE_PWT
	.else
	.quad	(i << 21) + PTE_P + PTE_RW + PTE_PS
	.endif
	.set	i, i + 1
	.endr

	.bss
	.balign	4096
	.globl	idt_table
idt_table:
	.fill	256 * 16, 1, 0

	.section .stack, "aw", @nobits
	.balign	4096
boot_stack:
	.fill	BOOT_STACK_SIZE, 1, 0
boot_stack_top:
	.balign	16
	.globl	ap_stacks
ap_stacks:
	.fill	TG_MAX_CPUS * TG_AP_STACK_SIZE, 1, 0
