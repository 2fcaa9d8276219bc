/*
 * Raw KVM exit round trip: the baseline the TypeScript KVM engine is
 * measured against. Same machine shape as the engine (in-kernel irqchip,
 * 64-bit long mode set up as the boot path does), same guest bytes
 * (guest/mini/exit-loop.S). Prints one JSON line.
 *
 *   raw-exit pio  N   N x `out` to port 0x3f8, then a write to port 0x600
 *   raw-exit mmio N   N x 32-bit store to unmapped 0xd0000000, then port 0x600
 *   raw-exit real     probe: can this host run real-mode guest code?
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE     (4u << 20)
#define GDT_ADDR     0x500
#define PML4_ADDR    0x9000
#define CODE_ADDR    0x100000
#define REAL_ADDR    0x7000
#define PORT_OUT     0x3f8
#define PORT_STOP    0x600

static const uint8_t exit_loop[] = {
	/* pio_loop */
	0x66, 0xba, 0xf8, 0x03, 0xee, 0x48, 0xff, 0xc9, 0x75, 0xfa,
	0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee, 0xf4,
	/* mmio_loop (offset 0x12) */
	0xbb, 0x00, 0x00, 0x00, 0xd0, 0x89, 0x03, 0x48, 0xff, 0xc9, 0x75, 0xf9,
	0x66, 0xba, 0x00, 0x06, 0xb0, 0x34, 0xee, 0xf4,
};
#define MMIO_LOOP_OFFSET 0x12

/* Real mode: mov dx,0x3f8; mov al,'R'; out dx,al; mov dx,0x600; out dx,al; hlt */
static const uint8_t real_probe[] = {
	0xba, 0xf8, 0x03, 0xb0, 0x52, 0xee, 0xba, 0x00, 0x06, 0xee, 0xf4,
};

static void die(const char *what)
{
	fprintf(stderr, "raw-exit: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void xioctl(int fd, unsigned long req, void *arg, const char *what)
{
	if (ioctl(fd, req, arg) < 0)
		die(what);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void long_mode(uint8_t *mem, struct kvm_sregs *s)
{
	uint64_t *gdt = (uint64_t *)(mem + GDT_ADDR);
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull; /* code64: P, DPL0, S, type 0xb, L, G */
	gdt[2] = 0x00cf93000000ffffull; /* data: P, DPL0, S, type 0x3, D/B, G */
	uint64_t *pml4 = (uint64_t *)(mem + PML4_ADDR);
	uint64_t *pdpt = (uint64_t *)(mem + PML4_ADDR + 0x1000);
	uint64_t *pd = (uint64_t *)(mem + PML4_ADDR + 0x2000);
	/* Identity map of the first 4 GiB with 2 MiB pages (4 page directories). */
	pml4[0] = (PML4_ADDR + 0x1000) | 3;
	for (int i = 0; i < 4; i++)
		pdpt[i] = (PML4_ADDR + 0x2000 + i * 0x1000) | 3;
	for (int i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x83; /* P, RW, PS (2 MiB) */

	struct kvm_segment code = { .base = 0, .limit = 0xfffff, .selector = 8, .type = 0xb,
		.present = 1, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .base = 0, .limit = 0xfffff, .selector = 16, .type = 3,
		.present = 1, .s = 1, .db = 1, .g = 1 };
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->gdt.base = GDT_ADDR;
	s->gdt.limit = 3 * 8 - 1;
	s->cr3 = PML4_ADDR;
	s->cr4 |= 1u << 5;                     /* PAE */
	s->cr0 |= 1u | (1u << 31);             /* PE, PG */
	s->efer |= (1u << 8) | (1u << 10);     /* LME, LMA */
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: raw-exit pio|mmio N | real\n");
		return 2;
	}
	const char *mode = argv[1];
	long n = argc > 2 ? atol(argv[2]) : 1;
	int real = strcmp(mode, "real") == 0;
	int mmio = strcmp(mode, "mmio") == 0;

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open /dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0)
		die("KVM_SET_TSS_ADDR");
	uint64_t idmap = 0xfffbc000;
	xioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");

	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap");
	struct kvm_userspace_memory_region region = { .slot = 0, .guest_phys_addr = 0,
		.memory_size = MEM_SIZE, .userspace_addr = (uintptr_t)mem };
	xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");

	struct kvm_sregs sregs;
	struct kvm_regs regs;
	xioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	memset(&regs, 0, sizeof regs);
	regs.rflags = 2;
	if (real) {
		memcpy(mem + REAL_ADDR, real_probe, sizeof real_probe);
		sregs.cs.selector = REAL_ADDR >> 4;
		sregs.cs.base = REAL_ADDR;
		regs.rip = 0;
	} else {
		memcpy(mem + CODE_ADDR, exit_loop, sizeof exit_loop);
		long_mode(mem, &sregs);
		regs.rip = CODE_ADDR + (mmio ? MMIO_LOOP_OFFSET : 0);
		regs.rcx = n;
		regs.rsp = 0x8ff0;
	}
	xioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
	xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

	long exits = 0;
	int seen_r = 0;
	double t0 = now();
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			die("KVM_RUN");
		}
		if (run->exit_reason == KVM_EXIT_IO) {
			if (run->io.port == PORT_STOP)
				break;
			if (run->io.port == PORT_OUT && ((uint8_t *)run)[run->io.data_offset] == 'R')
				seen_r = 1;
			exits++;
		} else if (run->exit_reason == KVM_EXIT_MMIO) {
			exits++;
		} else {
			fprintf(stderr, "raw-exit: unexpected exit %u (suberror %u)\n",
				run->exit_reason, run->internal.suberror);
			return 1;
		}
	}
	double dt = now() - t0;
	if (real)
		printf("{\"mode\":\"real\",\"ok\":%s}\n", seen_r ? "true" : "false");
	else
		printf("{\"mode\":\"%s\",\"exits\":%ld,\"seconds\":%.6f,\"exitsPerSecond\":%.0f}\n",
		       mode, exits, dt, exits / dt);
	return 0;
}
