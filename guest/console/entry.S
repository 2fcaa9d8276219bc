/*
 * startup_64 of the console guest: the Linux 64-bit boot protocol entry
 * (Documentation/arch/x86/boot.rst, "64-bit BOOT PROTOCOL": long mode, paging
 * on with an identity map covering the image, interrupts off). The guest
 * installs its own GDT (iretq reloads SS, so the selectors it uses must be in
 * a GDT it owns), zeroes .bss, takes its own stack and calls cg_main.
 *
 * Interrupt stubs: vectors 0-31 are exceptions (report and halt), 32-47 the
 * remapped 8259 PIC lines (EOI, return), anything else just returns.
 */
#define CS64		0x08
#define DS		0x10
#define PIC1_CMD	0x20
#define PIC_EOI		0x20	/* OCW2: non-specific end of interrupt */
#define STACK_SIZE	16384

	.section .text.entry, "ax"
	.code64
	.globl startup_64
startup_64:
	cli
	cld
	leaq	stack_top(%rip), %rsp
	lgdt	gdt_ptr(%rip)
	pushq	$CS64
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:	movl	$DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq
	call	cg_main
	.globl halt_forever
halt_forever:
	cli
2:	hlt
	jmp	2b

	.globl exception_stub
exception_stub:
	andq	$-16, %rsp
	call	cg_exception
	jmp	halt_forever

	.globl pic_irq_stub
pic_irq_stub:
	pushq	%rax
	movb	$PIC_EOI, %al
	outb	%al, $PIC1_CMD
	popq	%rax
	iretq

	.globl ignore_stub
ignore_stub:
	iretq

	.section .rodata
	.balign	8
gdt:
	.quad	0
	.quad	0x00af9b000000ffff	/* 0x08: 64-bit code, DPL 0 */
	.quad	0x00cf93000000ffff	/* 0x10: data, DPL 0 */
gdt_end:
gdt_ptr:
	.word	gdt_end - gdt - 1
	.quad	gdt

	.section .stack, "aw", @nobits
	.balign	16
	.space	STACK_SIZE
stack_top:
