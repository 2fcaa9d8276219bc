/**
 * The KVM userspace ABI for x86-64, written from <linux/kvm.h> (and
 * <asm/kvm.h>): ioctl numbers, exit reasons and struct layouts as byte
 * offsets. Callers fill a Uint8Array through a DataView at these offsets.
 * test/native/kvm-abi.test.ts compiles a C program against the system header
 * and checks every size, offset and ioctl number below.
 */

// <asm-generic/ioctl.h>: dir(2) | size(14) | type(8) | nr(8).
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
/** The ioctl type byte of KVM (`KVMIO`). */
const KVMIO = 0xae;

function ioc(dir: number, nr: number, size: number): number {
  return ((dir << 30) | (size << 16) | (KVMIO << 8) | nr) >>> 0;
}
const io = (nr: number) => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number) => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number) => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number) => ioc(IOC_READ | IOC_WRITE, nr, size);

export interface Field {
  readonly offset: number;
  readonly size: number;
}
export interface StructLayout {
  /** C name, for the header check (`struct <name>`). */
  readonly name: string;
  readonly size: number;
  /** Field paths as C member designators (`io.port`, `gdt.limit`). */
  readonly fields: Readonly<Record<string, Field>>;
}

function layout(name: string, size: number, fields: Record<string, [offset: number, size: number]>): StructLayout {
  return { name, size, fields: Object.fromEntries(Object.entries(fields).map(([k, [offset, sz]]) => [k, { offset, size: sz }])) };
}

export const kvm_regs = layout('kvm_regs', 144, {
  rax: [0, 8], rbx: [8, 8], rcx: [16, 8], rdx: [24, 8], rsi: [32, 8], rdi: [40, 8], rsp: [48, 8], rbp: [56, 8],
  r8: [64, 8], r9: [72, 8], r10: [80, 8], r11: [88, 8], r12: [96, 8], r13: [104, 8], r14: [112, 8], r15: [120, 8],
  rip: [128, 8], rflags: [136, 8],
});

export const kvm_segment = layout('kvm_segment', 24, {
  base: [0, 8], limit: [8, 4], selector: [12, 2], type: [14, 1], present: [15, 1], dpl: [16, 1], db: [17, 1],
  s: [18, 1], l: [19, 1], g: [20, 1], avl: [21, 1], unusable: [22, 1], padding: [23, 1],
});

export const kvm_dtable = layout('kvm_dtable', 16, { base: [0, 8], limit: [8, 2], padding: [10, 6] });

/** Segment registers in kvm_sregs order. */
export const SREGS_SEGMENTS = ['cs', 'ds', 'es', 'fs', 'gs', 'ss', 'tr', 'ldt'] as const;

export const kvm_sregs = layout('kvm_sregs', 312, {
  cs: [0, 24], ds: [24, 24], es: [48, 24], fs: [72, 24], gs: [96, 24], ss: [120, 24], tr: [144, 24], ldt: [168, 24],
  gdt: [192, 16], idt: [208, 16],
  cr0: [224, 8], cr2: [232, 8], cr3: [240, 8], cr4: [248, 8], cr8: [256, 8], efer: [264, 8], apic_base: [272, 8],
  interrupt_bitmap: [280, 32],
});

export const kvm_fpu = layout('kvm_fpu', 416, {
  fpr: [0, 128], fcw: [128, 2], fsw: [130, 2], ftwx: [132, 1], last_opcode: [134, 2], last_ip: [136, 8],
  last_dp: [144, 8], xmm: [152, 256], mxcsr: [408, 4],
});

export const kvm_run = layout('kvm_run', 2352, {
  request_interrupt_window: [0, 1], immediate_exit: [1, 1], exit_reason: [8, 4],
  ready_for_interrupt_injection: [12, 1], if_flag: [13, 1], flags: [14, 2], cr8: [16, 8], apic_base: [24, 8],
  'hw.hardware_exit_reason': [32, 8],
  'fail_entry.hardware_entry_failure_reason': [32, 8], 'fail_entry.cpu': [40, 4],
  'ex.exception': [32, 4], 'ex.error_code': [36, 4],
  'io.direction': [32, 1], 'io.size': [33, 1], 'io.port': [34, 2], 'io.count': [36, 4], 'io.data_offset': [40, 8],
  'mmio.phys_addr': [32, 8], 'mmio.data': [40, 8], 'mmio.len': [48, 4], 'mmio.is_write': [52, 1],
  'internal.suberror': [32, 4], 'internal.ndata': [36, 4], 'internal.data': [40, 128],
  'system_event.type': [32, 4], 'system_event.ndata': [36, 4], 'system_event.data': [40, 128],
});

export const kvm_cpuid2 = layout('kvm_cpuid2', 8, { nent: [0, 4], padding: [4, 4] });
export const kvm_cpuid_entry2 = layout('kvm_cpuid_entry2', 40, {
  function: [0, 4], index: [4, 4], flags: [8, 4], eax: [12, 4], ebx: [16, 4], ecx: [20, 4], edx: [24, 4], padding: [28, 12],
});

export const kvm_msrs = layout('kvm_msrs', 8, { nmsrs: [0, 4], pad: [4, 4] });
export const kvm_msr_entry = layout('kvm_msr_entry', 16, { index: [0, 4], reserved: [4, 4], data: [8, 8] });

export const kvm_userspace_memory_region = layout('kvm_userspace_memory_region', 32, {
  slot: [0, 4], flags: [4, 4], guest_phys_addr: [8, 8], memory_size: [16, 8], userspace_addr: [24, 8],
});

export const kvm_pit_config = layout('kvm_pit_config', 64, { flags: [0, 4], pad: [4, 60] });
export const kvm_irq_level = layout('kvm_irq_level', 8, { irq: [0, 4], level: [4, 4] });
export const kvm_irqfd = layout('kvm_irqfd', 32, { fd: [0, 4], gsi: [4, 4], flags: [8, 4], resamplefd: [12, 4], pad: [16, 16] });
export const kvm_ioeventfd = layout('kvm_ioeventfd', 64, {
  datamatch: [0, 8], addr: [8, 8], len: [16, 4], fd: [20, 4], flags: [24, 4], pad: [28, 36],
});
export const kvm_lapic_state = layout('kvm_lapic_state', 1024, { regs: [0, 1024] });
export const kvm_mp_state = layout('kvm_mp_state', 4, { mp_state: [0, 4] });
export const kvm_signal_mask = layout('kvm_signal_mask', 4, { len: [0, 4] });

export const LAYOUTS: readonly StructLayout[] = [
  kvm_regs, kvm_segment, kvm_dtable, kvm_sregs, kvm_fpu, kvm_run, kvm_cpuid2, kvm_cpuid_entry2, kvm_msrs,
  kvm_msr_entry, kvm_userspace_memory_region, kvm_pit_config, kvm_irq_level, kvm_irqfd, kvm_ioeventfd,
  kvm_lapic_state, kvm_mp_state, kvm_signal_mask,
];

/** ioctl request numbers, by their <linux/kvm.h> names. */
export const KVM = {
  GET_API_VERSION: io(0x00),
  CREATE_VM: io(0x01),
  CHECK_EXTENSION: io(0x03),
  GET_VCPU_MMAP_SIZE: io(0x04),
  GET_SUPPORTED_CPUID: iowr(0x05, kvm_cpuid2.size),
  CREATE_VCPU: io(0x41),
  SET_USER_MEMORY_REGION: iow(0x46, kvm_userspace_memory_region.size),
  SET_TSS_ADDR: io(0x47),
  SET_IDENTITY_MAP_ADDR: iow(0x48, 8),
  CREATE_IRQCHIP: io(0x60),
  IRQ_LINE: iow(0x61, kvm_irq_level.size),
  IRQFD: iow(0x76, kvm_irqfd.size),
  CREATE_PIT2: iow(0x77, kvm_pit_config.size),
  IOEVENTFD: iow(0x79, kvm_ioeventfd.size),
  RUN: io(0x80),
  GET_REGS: ior(0x81, kvm_regs.size),
  SET_REGS: iow(0x82, kvm_regs.size),
  GET_SREGS: ior(0x83, kvm_sregs.size),
  SET_SREGS: iow(0x84, kvm_sregs.size),
  GET_MSRS: iowr(0x88, kvm_msrs.size),
  SET_MSRS: iow(0x89, kvm_msrs.size),
  SET_SIGNAL_MASK: iow(0x8b, kvm_signal_mask.size),
  GET_FPU: ior(0x8c, kvm_fpu.size),
  SET_FPU: iow(0x8d, kvm_fpu.size),
  GET_LAPIC: ior(0x8e, kvm_lapic_state.size),
  SET_LAPIC: iow(0x8f, kvm_lapic_state.size),
  SET_CPUID2: iow(0x90, kvm_cpuid2.size),
  GET_CPUID2: iowr(0x91, kvm_cpuid2.size),
  GET_MP_STATE: ior(0x98, kvm_mp_state.size),
  SET_MP_STATE: iow(0x99, kvm_mp_state.size),
} as const;

/** The only KVM API version there has ever been (KVM_GET_API_VERSION). */
export const KVM_API_VERSION = 12;

/** KVM_CHECK_EXTENSION capabilities we query. */
export const KVM_CAP = {
  IRQCHIP: 0,
  NR_VCPUS: 9,
  PIT2: 33,
  IRQFD: 32,
  IOEVENTFD: 36,
  MAX_VCPUS: 66,
} as const;

/** kvm_run.exit_reason values (KVM_EXIT_*). */
export const KVM_EXIT = {
  UNKNOWN: 0, EXCEPTION: 1, IO: 2, HYPERCALL: 3, DEBUG: 4, HLT: 5, MMIO: 6, IRQ_WINDOW_OPEN: 7, SHUTDOWN: 8,
  FAIL_ENTRY: 9, INTR: 10, SET_TPR: 11, TPR_ACCESS: 12, NMI: 16, INTERNAL_ERROR: 17, SYSTEM_EVENT: 24,
  IOAPIC_EOI: 26, X86_RDMSR: 29, X86_WRMSR: 30, DIRTY_RING_FULL: 31, X86_BUS_LOCK: 33, NOTIFY: 37,
} as const;

const exitNames = new Map<number, string>(Object.entries(KVM_EXIT).map(([k, v]) => [v, `KVM_EXIT_${k}`]));
export function exitReasonName(reason: number): string {
  return exitNames.get(reason) ?? `KVM exit reason ${reason}`;
}

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

/** kvm_run.internal.suberror (KVM_INTERNAL_ERROR_*). */
export const KVM_INTERNAL_ERROR: Readonly<Record<number, string>> = {
  1: 'emulation failure',
  2: 'exception while delivering an exception (simultaneous exceptions)',
  3: 'failed to deliver an event',
  4: 'unexpected exit reason',
};

/** kvm_run.system_event.type (KVM_SYSTEM_EVENT_*). */
export const KVM_SYSTEM_EVENT = { SHUTDOWN: 1, RESET: 2, CRASH: 3, WAKEUP: 4, SUSPEND: 5 } as const;

/** kvm_mp_state.mp_state (KVM_MP_STATE_*). */
export const KVM_MP_STATE = { RUNNABLE: 0, UNINITIALIZED: 1, INIT_RECEIVED: 2, HALTED: 3, SIPI_RECEIVED: 4 } as const;

/** kvm_pit_config.flags: a dummy port 0x61 speaker so the PIT channel 2 gate works. */
export const KVM_PIT_SPEAKER_DUMMY = 1;
