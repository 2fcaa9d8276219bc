/*
 * The console guest: a tiny line-oriented shell on COM1, so front ends (the
 * web console) can be tested end to end by typing a command and reading the
 * answer. Interrupt driven: between keystrokes the CPU sleeps in HLT, so an
 * idle VM costs the host nothing (PVM emulates every guest kernel-mode
 * instruction, ~1.4 M/s, and each port access is a ~11 µs exit: a polling
 * loop would keep a host core busy per VM).
 *
 * Interrupt path: COM1 raises ISA IRQ 4; the in-kernel 8259 PIC, remapped to
 * vectors 32-47, delivers it. The local APIC is globally disabled
 * (IA32_APIC_BASE bit 11 clear) so the PIC's output goes straight to the
 * CPU's INTR pin, as on a pre-APIC PC: no MMIO, no IOAPIC programming.
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef unsigned long size_t;

#define COM1		0x3f8
#define UART_RBR	0	/* receiver buffer (read, DLAB = 0) */
#define UART_THR	0	/* transmit holding (write, DLAB = 0) */
#define UART_IER	1	/* interrupt enable */
#define UART_LCR	3	/* line control */
#define UART_MCR	4	/* modem control */
#define UART_LSR	5	/* line status */
#define IER_RDA		0x01	/* received data available interrupt */
#define LCR_8N1		0x03	/* 8 data bits, no parity, 1 stop bit, DLAB = 0 */
#define MCR_DTR		0x01
#define MCR_RTS		0x02
#define MCR_OUT2	0x08	/* gates the UART's IRQ onto the ISA bus on a PC */
#define LSR_DR		0x01	/* data ready */

#define PIC1_CMD	0x20
#define PIC1_DATA	0x21
#define PIC2_CMD	0xa0
#define PIC2_DATA	0xa1
#define ICW1_INIT_ICW4	0x11	/* ICW1: initialise, edge triggered, cascade, ICW4 follows */
#define ICW4_8086	0x01
#define PIC1_VECTOR	32	/* IRQ 0-7 -> vectors 32-39, clear of the exceptions */
#define PIC2_VECTOR	40
#define PIC_CASCADE_IRQ	2
#define COM1_IRQ	4

#define MSR_APIC_BASE	0x1b
#define APIC_BASE_EN	(1ul << 11)	/* xAPIC global enable (SDM Vol. 3A 11.4.3) */

#define ACPI_SLEEP_CONTROL	0x600	/* FADT SLEEP_CONTROL_REG of the machine */
#define ACPI_S5_POWER_OFF	0x34	/* SLP_EN | SLP_TYP(5) << 2 */
#define I8042_COMMAND		0x64
#define I8042_PULSE_RESET	0xfe

#define IDT_GATE_INTERRUPT	0x8e	/* present, DPL 0, 64-bit interrupt gate */
#define CS64			0x08

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v) { __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32))); }
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

extern void exception_stub(void);
extern void pic_irq_stub(void);
extern void ignore_stub(void);
extern void halt_forever(void) __attribute__((noreturn));

struct idt_gate {
	u16 offset_lo;
	u16 selector;
	u8 ist;
	u8 type;
	u16 offset_mid;
	u32 offset_hi;
	u32 reserved;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));

static void set_gate(int vector, void (*handler)(void))
{
	u64 a = (u64)handler;
	idt[vector] = (struct idt_gate){ (u16)a, CS64, 0, IDT_GATE_INTERRUPT, (u16)(a >> 16), (u32)(a >> 32), 0 };
}

static void load_idt(void)
{
	struct {
		u16 limit;
		u64 base;
	} __attribute__((packed)) ptr = { sizeof(idt) - 1, (u64)idt };
	for (int v = 0; v < 256; v++)
		set_gate(v, v < 32 ? exception_stub : v < PIC2_VECTOR + 8 ? pic_irq_stub : ignore_stub);
	__asm__ volatile("lidt %0" : : "m"(ptr));
}

/* ---- output ---- */

static void putc_raw(char c) { outb(COM1 + UART_THR, (u8)c); }

static void puts(const char *s)
{
	while (*s) {
		if (*s == '\n')
			putc_raw('\r');
		putc_raw(*s++);
	}
}

static void put_dec(u64 v)
{
	char buf[21];
	int i = sizeof(buf);
	buf[--i] = 0;
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts(&buf[i]);
}

/* ---- commands ---- */

static int starts_with(const char *s, const char *word)
{
	while (*word)
		if (*s++ != *word++)
			return 0;
	return *s == 0 || *s == ' ';
}

static const char *skip_spaces(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

static int parse_dec(const char *s, u64 *out)
{
	u64 v = 0;
	if (*s < '0' || *s > '9')
		return 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > 100000000ul)
			return 0;
		v = v * 10 + (u64)(*s - '0');
	}
	*out = v;
	return *s == 0;
}

static void run(const char *line)
{
	line = skip_spaces(line);
	if (*line == 0)
		return;
	if (starts_with(line, "echo")) {
		line = skip_spaces(line + 4);
		puts(line);
		puts("\n");
	} else if (starts_with(line, "uname")) {
		puts("typevisor-console-guest\n");
	} else if (starts_with(line, "help")) {
		puts("commands: echo TEXT, uname, tsc, exits N (N port writes, for the exit counters), poweroff, reboot, help\n");
	} else if (starts_with(line, "tsc")) {
		put_dec(rdtsc());
		puts("\n");
	} else if (starts_with(line, "exits")) {
		u64 n;
		if (!parse_dec(skip_spaces(line + 5), &n)) {
			puts("exits: give a count up to 100000000\n");
			return;
		}
		/* Port 0x80 (POST): every write is one VM exit, nothing else. */
		for (u64 i = 0; i < n; i++)
			outb(0x80, (u8)i);
		put_dec(n);
		puts(" exits\n");
	} else if (starts_with(line, "poweroff")) {
		puts("powering off\n");
		outb(ACPI_SLEEP_CONTROL, ACPI_S5_POWER_OFF);
		halt_forever();
	} else if (starts_with(line, "reboot")) {
		puts("rebooting\n");
		outb(I8042_COMMAND, I8042_PULSE_RESET);
		halt_forever();
	} else {
		puts("unknown command: ");
		puts(line);
		puts(" (try help)\n");
	}
}

void cg_exception(void)
{
	puts("\nconsole guest: unexpected CPU exception, halting\n");
}

static void setup_interrupts(void)
{
	wrmsr(MSR_APIC_BASE, rdmsr(MSR_APIC_BASE) & ~APIC_BASE_EN);
	load_idt();
	/* 8259A initialisation sequence: ICW1..ICW4 on each chip (8259A datasheet). */
	outb(PIC1_CMD, ICW1_INIT_ICW4);
	outb(PIC2_CMD, ICW1_INIT_ICW4);
	outb(PIC1_DATA, PIC1_VECTOR);
	outb(PIC2_DATA, PIC2_VECTOR);
	outb(PIC1_DATA, 1 << PIC_CASCADE_IRQ);	/* ICW3: slave on IRQ 2 */
	outb(PIC2_DATA, PIC_CASCADE_IRQ);	/* ICW3: slave identity */
	outb(PIC1_DATA, ICW4_8086);
	outb(PIC2_DATA, ICW4_8086);
	outb(PIC1_DATA, (u8)~(1 << COM1_IRQ));	/* OCW1: only COM1 */
	outb(PIC2_DATA, 0xff);

	outb(COM1 + UART_LCR, LCR_8N1);
	outb(COM1 + UART_MCR, MCR_DTR | MCR_RTS | MCR_OUT2);
	outb(COM1 + UART_IER, IER_RDA);
}

#define LINE_MAX 200

void cg_main(void)
{
	static char line[LINE_MAX + 1];
	size_t len = 0;
	int last_cr = 0;

	setup_interrupts();
	puts("typevisor console guest\n$ ");
	for (;;) {
		__asm__ volatile("cli");
		while (inb(COM1 + UART_LSR) & LSR_DR) {
			char c = (char)inb(COM1 + UART_RBR);
			if (c == '\n' && last_cr) {
				last_cr = 0;
				continue;
			}
			last_cr = c == '\r';
			if (c == '\r' || c == '\n') {
				puts("\n");
				line[len] = 0;
				run(line);
				len = 0;
				puts("$ ");
			} else if (c == 0x7f || c == '\b') {
				if (len > 0) {
					len--;
					puts("\b \b");
				}
			} else if (c == 0x03) {
				puts("^C\n$ ");
				len = 0;
			} else if (c >= 0x20 && c < 0x7f && len < LINE_MAX) {
				line[len++] = c;
				putc_raw(c);
			}
		}
		/* STI's one-instruction shadow makes STI; HLT atomic: an interrupt
		 * raised after the LSR check still wakes the HLT. */
		__asm__ volatile("sti; hlt" ::: "memory");
	}
}
