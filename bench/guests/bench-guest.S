/*
 * The benchmark guest: one ELF64 that typevisor and QEMU both boot, so start-up
 * and memory figures compare the VMMs on the same guest bytes.
 *
 *   typevisor: 64-bit boot protocol, entered at e_entry (startup_64) in long
 *              mode with paging on and the low 4 GiB identity mapped.
 *   QEMU:      PVH (Xen's PHYS32_ENTRY note), entered at pvh_start in 32-bit
 *              protected mode with paging off (xen/include/public/arch-x86/
 *              hvm/start_info.h, "PVH boot ABI").
 *
 * Both paths do the same work, in the mode they arrive in: the first
 * instruction writes MARK_FIRST to COM1 (the harness timestamps its arrival),
 * then, by build-time MODE:
 *   MODE_EXIT   power off at once;
 *   MODE_TOUCH  write one dword per 4 KiB page of TOUCH_BYTES from TOUCH_BASE,
 *               write MARK_TOUCHED, then idle;
 *   MODE_IDLE   idle.
 * Idle is `cli; hlt`: with the in-kernel local APIC a halted vCPU sleeps in
 * KVM and costs the host nothing, so many idle VMs can be counted at once.
 */

#define PORT_COM1		0x3f8
/* typevisor: FADT SLEEP_CONTROL_REG; 0x34 = SLP_EN | SLP_TYP 5 (\_S5). */
#define PORT_SLEEP_CONTROL	0x600
#define S5_SLEEP_CONTROL	0x34
/* QEMU: -device isa-debug-exit,iobase=0xf4,iosize=1; exit status (v << 1) | 1. */
#define PORT_DEBUG_EXIT		0xf4
#define DEBUG_EXIT_VALUE	0

#define MARK_FIRST		'!'
#define MARK_TOUCHED		'T'

/* Above the image at 16 MiB and below a 512 MiB guest's top, where QEMU puts its tables. */
#define TOUCH_BASE		0x4000000
#define TOUCH_BYTES		0x4000000
#define PAGE			0x1000

#if !defined(MODE_EXIT) && !defined(MODE_TOUCH) && !defined(MODE_IDLE)
#error "build with -DMODE_EXIT, -DMODE_TOUCH or -DMODE_IDLE"
#endif

	.section .note.pvh, "a"
	.balign 4
	.long 4			/* namesz: "Xen\0" */
	.long 8			/* descsz: pointer-sized, as Linux writes it */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.quad pvh_start

	.section .text.entry, "ax"
	.code64
	.globl startup_64
startup_64:
	movw $PORT_COM1, %dx
	movb $MARK_FIRST, %al
	outb %al, %dx
#ifdef MODE_TOUCH
	movl $TOUCH_BASE, %edi
	movl $(TOUCH_BYTES / PAGE), %ecx
1:	movl %ecx, (%rdi)
	addq $PAGE, %rdi
	decl %ecx
	jnz 1b
	movw $PORT_COM1, %dx
	movb $MARK_TOUCHED, %al
	outb %al, %dx
#endif
	jmp finish64

finish64:
#ifdef MODE_EXIT
	movw $PORT_SLEEP_CONTROL, %dx
	movb $S5_SLEEP_CONTROL, %al
	outb %al, %dx
	movw $PORT_DEBUG_EXIT, %dx
	movb $DEBUG_EXIT_VALUE, %al
	outb %al, %dx
#endif
2:	cli
	hlt
	jmp 2b

	.code32
	.globl pvh_start
pvh_start:
	movw $PORT_COM1, %dx
	movb $MARK_FIRST, %al
	outb %al, %dx
#ifdef MODE_TOUCH
	movl $TOUCH_BASE, %edi
	movl $(TOUCH_BYTES / PAGE), %ecx
1:	movl %ecx, (%edi)
	addl $PAGE, %edi
	decl %ecx
	jnz 1b
	movw $PORT_COM1, %dx
	movb $MARK_TOUCHED, %al
	outb %al, %dx
#endif
#ifdef MODE_EXIT
	movw $PORT_SLEEP_CONTROL, %dx
	movb $S5_SLEEP_CONTROL, %al
	outb %al, %dx
	movw $PORT_DEBUG_EXIT, %dx
	movb $DEBUG_EXIT_VALUE, %al
	outb %al, %dx
#endif
3:	cli
	hlt
	jmp 3b
