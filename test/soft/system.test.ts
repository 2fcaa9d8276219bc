/**
 * The soft CPU's system architecture, driven by small assembled programs on
 * a machine with our own page tables, GDT, TSS and IDT (machine-harness.ts):
 * paging (walk, A/D bits, NX, WP, TLB invalidation), exceptions through the
 * IDT (vectors, error codes, CR2, IST, stack switch), SYSCALL/SYSRET, IRETQ,
 * MSR #GP, double and triple faults.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import {
  assemble, assemblerMissing, BOOT_STACK_TOP, CODE, DATA, IDT, IST1_TOP, KERNEL_CS, machine, RAISE_PORT, RSP0_TOP, TEST_PORT, USER_CS, USER_DS,
  type Machine, type MachineOptions,
} from './machine-harness.js';
import type { VmStop } from '../../src/engine/engine.js';
import { MSR_LSTAR, MSR_SFMASK, MSR_STAR, readMsr } from '../../src/engine/soft/ops/system.js';

const PTE_A = 0x20n;
const PTE_D = 0x40n;
const NX = 1n << 63n;

async function runAsm(t: TestContext, source: string, options: MachineOptions = {}): Promise<(Machine & { stop: VmStop }) | undefined> {
  const why = assemblerMissing();
  if (why) {
    t.skip(why);
    return undefined;
  }
  const m = await machine(assemble(source), options);
  const stop = await m.run();
  assert.notEqual(stop.reason, 'host-stop', `the program did not reach the test port in 5 s: ${JSON.stringify(stop, (_k, v: unknown) => typeof v === 'bigint' ? `0x${v.toString(16)}` : v)}`);
  return { ...m, stop };
}

/** The exception frame the CPU pushed on `stackTop` (with an error code): [error, rip, cs, rflags, rsp, ss]. */
function frame(m: Machine, stackTop: number, withError: boolean): { error?: bigint; rip: bigint; cs: bigint; rflags: bigint; rsp: bigint; ss: bigint } {
  const n = withError ? 6 : 5;
  const at = stackTop - n * 8;
  const w = (k: number): bigint => m.u64(at + k * 8);
  const o = withError ? 1 : 0;
  return { ...(withError && { error: w(0) }), rip: w(o), cs: w(o + 1), rflags: w(o + 2), rsp: w(o + 3), ss: w(o + 4) };
}

const exit = (mark: number): string => `mov $${mark}, %al; out %al, $${TEST_PORT}; 1: hlt; jmp 1b`;

test('paging: a 4-level walk through the high alias reads and writes RAM and sets A, then D', async (t) => {
  const m = await runAsm(t, `
    movabs $0xffff800000000000 + ${DATA}, %rbx
    mov (%rbx), %rax          # read: sets A along the path
    mov %rax, ${DATA + 0x1000}  # copy out through the identity map, to the next page
    ${exit(0x55)}`, { setup: (mem) => mem.write(DATA, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)) });
  if (!m) return;
  assert.deepEqual(m.marks, [0x55]);
  assert.equal(m.u64(DATA + 0x1000), 0x0807060504030201n);
  assert.ok((m.u64(0x1000 + 256 * 8) & PTE_A) !== 0n, 'PML4E[256] accessed');
  assert.ok((m.u64(m.pte(DATA)) & PTE_A) !== 0n, 'PTE accessed');
  assert.equal(m.u64(m.pte(DATA)) & PTE_D, 0n, 'a read leaves D clear');
  assert.ok((m.u64(m.pte(DATA + 0x1000)) & PTE_D) !== 0n, 'the write set D');
});

test('paging: a read of a not-present page is #PF with error 0 and the exact CR2', async (t) => {
  const m = await runAsm(t, `
    mov ${0x40003}, %rax      # PT entry 0x40 is cleared below
    ${exit(1)}`, { setup: (mem) => mem.write(0x4000 + 0x40 * 8, new Uint8Array(8)) });
  if (!m) return;
  assert.deepEqual(m.marks, [14]);
  const cpu = m.vm.vcpus[0]!.cpu;
  assert.equal(cpu.cr2, 0x40003);
  const f = frame(m, BOOT_STACK_TOP, true);
  assert.equal(f.error, 0n);
  assert.equal(f.rip, BigInt(CODE));
  assert.equal(f.cs, BigInt(KERNEL_CS));
});

test('paging: NX pages fault on fetch with I/D set; CR0.WP decides supervisor writes to read-only pages', async (t) => {
  const nxPage = 0x50000;
  const roPage = 0x51000;
  const m = await runAsm(t, `
    movb $1, ${roPage}                  # CR0.WP = 1 (boot state): #PF, error P|W
    ${exit(0x77)}`, {
    setup: (mem) => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt(roPage) | 0x5n, true); // present, user, read-only
      mem.write(0x4000 + (roPage >>> 12) * 8, b);
    },
  });
  if (!m) return;
  assert.deepEqual(m.marks, [14]);
  assert.equal(frame(m, BOOT_STACK_TOP, true).error, 0x3n);
  assert.equal(m.vm.vcpus[0]!.cpu.cr2, roPage);

  const m2 = await runAsm(t, `
    mov %cr0, %rax
    and $~(1 << 16), %eax                # WP off: the supervisor may write
    mov %rax, %cr0
    movb $7, ${roPage}
    mov $${nxPage}, %rax
    jmp *%rax                            # fetch from an NX page
    `, {
    setup: (mem) => {
      const b = new Uint8Array(8);
      const v = new DataView(b.buffer);
      v.setBigUint64(0, BigInt(roPage) | 0x5n, true);
      mem.write(0x4000 + (roPage >>> 12) * 8, b);
      v.setBigUint64(0, BigInt(nxPage) | 0x7n | NX, true);
      mem.write(0x4000 + (nxPage >>> 12) * 8, b);
      mem.write(nxPage, Uint8Array.of(0xb0, 0x99, 0xe6, TEST_PORT)); // would report 0x99 if it ran
    },
  });
  if (!m2) return;
  assert.deepEqual(m2.marks, [14]);
  assert.equal(m2.memory.read(roPage, 1)[0], 7, 'written with WP clear');
  assert.equal(frame(m2, BOOT_STACK_TOP, true).error, 0x11n, 'P | I/D');
  assert.equal(m2.vm.vcpus[0]!.cpu.cr2, nxPage);
});

test('paging: INVLPG and CR3 writes make a changed PTE take effect', async (t) => {
  const page = 0x60000;
  const pte = 0x4000 + (page >>> 12) * 8;
  const m = await runAsm(t, `
    mov ${page}, %eax                    # cache the translation
    movq $${0x61000 | 3}, ${pte}         # point it at the next page
    invlpg ${page}
    mov ${page}, %ebx                    # sees the new page
    movq $${0x62000 | 3}, ${pte}
    mov %cr3, %rcx
    mov %rcx, %cr3
    mov ${page}, %ecx                    # and again after a CR3 write
    mov %eax, ${DATA}
    mov %ebx, ${DATA + 4}
    mov %ecx, ${DATA + 8}
    ${exit(0x42)}`, {
    setup: (mem) => {
      mem.write(page, Uint8Array.of(0xa0, 0, 0, 0));
      mem.write(0x61000, Uint8Array.of(0xa1, 0, 0, 0));
      mem.write(0x62000, Uint8Array.of(0xa2, 0, 0, 0));
    },
  });
  if (!m) return;
  assert.deepEqual(m.marks, [0x42]);
  assert.deepEqual(Array.from(m.memory.read(DATA, 12)), [0xa0, 0, 0, 0, 0xa1, 0, 0, 0, 0xa2, 0, 0, 0]);
});

test('exceptions: #GP from an unknown MSR, with error code 0 and RIP at the instruction', async (t) => {
  const m = await runAsm(t, `
    nop
    mov $0x12345, %ecx
    rdmsr
    ${exit(1)}`);
  if (!m) return;
  assert.deepEqual(m.marks, [13]);
  const f = frame(m, BOOT_STACK_TOP, true);
  assert.equal(f.error, 0n);
  assert.equal(f.rip, BigInt(CODE + 1 + 5), 'RIP of rdmsr');
  assert.equal(f.rsp, BigInt(BOOT_STACK_TOP));
  assert.equal(f.ss, 0x10n);
});

test('MSRs: EFER, STAR/LSTAR/SFMASK, PAT and MTRRs read back; reserved EFER bits #GP', async (t) => {
  const m = await runAsm(t, `
    mov $0xc0000081, %ecx; mov $0x12345678, %eax; mov $0x00230010, %edx; wrmsr
    mov $0xc0000082, %ecx; mov $0x11223344, %eax; mov $0xffffffff, %edx; wrmsr
    mov $0x277, %ecx; rdmsr; mov %eax, ${DATA}; mov %edx, ${DATA + 4}
    mov $0x2ff, %ecx; mov $0xc06, %eax; xor %edx, %edx; wrmsr
    mov $0xc001001f, %ecx; mov $0x400000, %edx; xor %eax, %eax; wrmsr   # AMD NB_CFG
    mov $0xc0010015, %ecx; rdmsr; mov %eax, ${DATA + 8}                 # AMD HWCR
    mov $0xc0000080, %ecx; rdmsr; or $0x10000, %eax; wrmsr   # reserved bit 16
    ${exit(1)}`);
  if (!m) return;
  assert.deepEqual(m.marks, [13]);
  const cpu = m.vm.vcpus[0]!.cpu;
  assert.equal(readMsr(cpu, MSR_STAR), 0x0023001012345678n);
  assert.equal(readMsr(cpu, MSR_LSTAR), 0xffffffff11223344n);
  assert.equal(readMsr(cpu, MSR_SFMASK), 0n);
  assert.equal(readMsr(cpu, 0x2ff), 0xc06n);
  assert.equal(m.u64(DATA), 0x0007040600070406n, 'PAT reset value');
  assert.equal(readMsr(cpu, 0xc0000080), 0xd01n, 'EFER unchanged by the refused write');
  assert.equal(readMsr(cpu, 0xc001001f), 0x40000000000000n, 'NB_CFG reads back');
  assert.equal(m.u64(DATA + 8) & 0xffffffffn, 1n << 24n, 'HWCR: the TSC counts at the P0 frequency');
});

test('CPUID says the CPU is not affected by the speculation bugs it has "not affected" bits for; EFER.AIBRSE is writable', async (t) => {
  const m = await runAsm(t, `
    mov $0x80000000, %eax; cpuid; mov %eax, ${DATA}
    mov $0x80000008, %eax; cpuid; mov %ebx, ${DATA + 4}
    mov $0x80000021, %eax; cpuid; mov %eax, ${DATA + 8}
    mov $0xc0000080, %ecx; rdmsr; or $0x200000, %eax; wrmsr
    ${exit(1)}`);
  if (!m) return;
  assert.deepEqual(m.marks, [1], 'the EFER.AIBRSE write did not fault');
  const max = Number(m.u64(DATA) & 0xffffffffn);
  const e8 = Number((m.u64(DATA) >> 32n) & 0xffffffffn);
  const e21 = Number(m.u64(DATA + 8) & 0xffffffffn);
  assert.ok(max >= 0x80000021, `extended leaves up to 0x${max.toString(16)}`);
  assert.equal(e8 & (1 << 26), 1 << 26, 'SSB_NO');
  assert.equal(e8 & (1 << 29), 1 << 29, 'BTC_NO');
  assert.equal(e21 & (1 << 29), 1 << 29, 'SRSO_NO');
  assert.equal(e21 & (1 << 8), 1 << 8, 'AutoIBRS');
  assert.equal((readMsr(m.vm.vcpus[0]!.cpu, 0xc0000080) ?? 0n) & 0x200000n, 0x200000n, 'EFER.AIBRSE reads back');
});

test('exceptions: an IST gate switches to the IST stack; an absent IDT entry turns #PF into #DF', async (t) => {
  const m = await runAsm(t, `ud2`, {
    setup: (mem) => {
      const gate = mem.read(IDT + 6 * 16, 16);
      gate[4] = 1; // IST 1
      mem.write(IDT + 6 * 16, gate);
    },
  });
  if (!m) return;
  assert.deepEqual(m.marks, [6]);
  const f = frame(m, IST1_TOP, false);
  assert.equal(f.rip, BigInt(CODE));
  assert.equal(f.rsp, BigInt(BOOT_STACK_TOP), 'old RSP saved on the IST stack');

  const m2 = await runAsm(t, `mov 0x0, %eax`, {
    setup: (mem) => {
      const gate = mem.read(IDT + 14 * 16, 16);
      gate[5] = (gate[5] ?? 0) & 0x7f; // #PF gate not present: #NP while delivering #PF
      mem.write(IDT + 14 * 16, gate);
    },
  });
  if (!m2) return;
  assert.deepEqual(m2.marks, [8]);
  assert.equal(frame(m2, BOOT_STACK_TOP, true).error, 0n, '#DF pushes error 0');
});

test('exceptions: a fault with no deliverable #DF shuts the CPU down (triple fault)', async (t) => {
  const m = await runAsm(t, `
    lidt null_idt(%rip)
    ud2
    null_idt: .word 0; .quad 0`);
  if (!m) return;
  assert.deepEqual(m.marks, []);
  assert.equal(m.stop.reason, 'triple-fault');
  assert.ok(m.stop.reason === 'triple-fault' && m.stop.regs !== undefined && m.stop.regs.rip > BigInt(CODE), 'registers in the report');
});

test('SYSRET to CPL 3, INT from user mode switches to RSP0; SYSCALL returns to LSTAR at CPL 0 with FMASK applied', async (t) => {
  const m = await runAsm(t, `
    mov $0xc0000081, %ecx; xor %eax, %eax; mov $((0x10 << 16) | 0x08), %edx; wrmsr
    mov $0xc0000082, %ecx; lea kernel_entry(%rip), %rax; xor %edx, %edx; wrmsr
    mov $0xc0000084, %ecx; mov $0x200, %eax; xor %edx, %edx; wrmsr
    mov $0x28, %ax; ltr %ax
    lea user(%rip), %rcx
    mov $0x202, %r11                    # IF on in user mode
    mov $0x20000, %rsp
    sysretq
  user:
    mov %cs, %ax; mov %ax, ${DATA}      # 0x23
    mov %ss, %ax; mov %ax, ${DATA + 2}  # 0x1b
    syscall
  kernel_entry:
    mov %rcx, ${DATA + 8}
    mov %r11, ${DATA + 16}
    pushfq; popq ${DATA + 24}
    mov %cs, %ax; mov %ax, ${DATA + 4}
    lea user2(%rip), %rcx
    mov $0x202, %r11
    sysretq
  user2:
    int $0x10                           # DPL-3 gate: stack switch to RSP0
    `, { marks: 1 });
  if (!m) return;
  assert.deepEqual(m.marks, [0x10]);
  const w16 = (a: number): number => (m.memory.read(a, 2)[0] ?? 0) | ((m.memory.read(a, 2)[1] ?? 0) << 8);
  assert.equal(w16(DATA), USER_CS | 3);
  assert.equal(w16(DATA + 2), USER_DS | 3);
  assert.equal(w16(DATA + 4), KERNEL_CS);
  const sysretAddr = m.u64(DATA + 8);
  assert.ok(sysretAddr > BigInt(CODE) && sysretAddr < BigInt(CODE + 0x200), 'RCX = the instruction after SYSCALL');
  assert.equal(m.u64(DATA + 16) & 0x200n, 0x200n, 'R11 = user RFLAGS (IF set)');
  assert.equal(m.u64(DATA + 24) & 0x200n, 0n, 'SFMASK cleared IF in the kernel');
  const f = frame(m, RSP0_TOP, false);
  assert.equal(f.cs, BigInt(USER_CS | 3));
  assert.equal(f.ss, BigInt(USER_DS | 3));
  assert.equal(f.rsp, 0x20000n);
  assert.equal(f.rflags & 0x200n, 0x200n);
  assert.equal(m.vm.vcpus[0]!.cpu.cpl, 0);
});

test('registers and TLBs live in the machine\'s WebAssembly.Memory, each TLB entry with its frame\'s offset there, across privilege changes', async (t) => {
  const m = await runAsm(t, `
    mov $0xc0000081, %ecx; xor %eax, %eax; mov $((0x10 << 16) | 0x08), %edx; wrmsr
    mov $0xc0000082, %ecx; lea kernel_entry(%rip), %rax; xor %edx, %edx; wrmsr
    mov $0x28, %ax; ltr %ax
    movq $0x1122334455667788, %rbx
    mov %rbx, ${DATA}
    mov ${DATA + 0x1000}, %rdx
    lea user(%rip), %rcx
    mov $0x2, %r11
    mov $0x20000, %rsp
    sysretq
  user:
    mov ${DATA}, %rsi
    mov %rsi, ${DATA + 0x2000}
    syscall
  kernel_entry:
    mov ${DATA + 0x3000}, %rdi
    int $0x10
    `, { marks: 1 });
  if (!m) return;
  assert.deepEqual(m.marks, [0x10]);
  const cpu = m.vm.vcpus[0]!.cpu;
  const wasm = m.memory.regions[0]?.wasm?.memory;
  assert.ok(wasm !== undefined, 'the soft engine\'s RAM is in a WebAssembly.Memory');
  const raw = new DataView(wasm.buffer);
  // The register file is the memory's bytes: RBX as an i64 at 8 * 3.
  assert.equal(raw.getBigUint64(cpu.gpr.byteOffset + 8 * 3, true), 0x1122334455667788n);
  assert.equal(raw.getBigUint64(cpu.gpr.byteOffset + 8 * 6, true), 0x1122334455667788n, 'RSI, loaded in user mode');
  raw.setBigUint64(cpu.gpr.byteOffset + 8 * 12, 0xfeedn, true);
  assert.equal(cpu.reg64(12), 0xfeedn);
  // Every read and write entry in use (both privilege levels') knows where its frame lies in the memory.
  const levels = [cpu, (cpu as unknown as { other: { rTag: Float64Array; wTag: Float64Array; rOff: Int32Array; wOff: Int32Array; rBytes: Uint8Array[]; wBytes: Uint8Array[] } }).other];
  let checked = 0;
  for (const l of levels) {
    assert.ok(l.rTag.buffer instanceof SharedArrayBuffer && l.rOff.byteOffset >= m.memory.size, 'TLB arrays after the RAM');
    for (let k = 0; k < l.rTag.length; k++) {
      if (!Number.isNaN(l.rTag[k])) { assert.equal(l.rOff[k], l.rBytes[k]?.byteOffset, `read entry ${k}`); checked++; }
      if (!Number.isNaN(l.wTag[k])) { assert.equal(l.wOff[k], l.wBytes[k]?.byteOffset, `write entry ${k}`); checked++; }
    }
  }
  assert.ok(checked >= 6, `${checked} entries`);
  // Each level keeps its own offsets (a privilege change swaps them with the tags).
  const [cur, oth] = levels as [typeof levels[1], typeof levels[1]];
  assert.notEqual(cur.rOff.byteOffset, oth.rOff.byteOffset);
  assert.notEqual(cur.wOff.byteOffset, oth.wOff.byteOffset);
  assert.notEqual(cur.rTag.byteOffset, oth.rTag.byteOffset);
});

test('TLBs across privilege changes: a supervisor-only page cached by the kernel faults in user mode; an INVLPG in the kernel reaches the user translation', async (t) => {
  const sup = 0x60000, upage = 0x50000;
  const pte = (page: number): number => 0x4000 + (page >>> 12) * 8;
  const m = await runAsm(t, `
    mov $0xc0000081, %ecx; xor %eax, %eax; mov $((0x10 << 16) | 0x08), %edx; wrmsr
    mov $0xc0000082, %ecx; lea kernel_entry(%rip), %rax; xor %edx, %edx; wrmsr
    mov $0xc0000084, %ecx; mov $0x200, %eax; xor %edx, %edx; wrmsr
    mov $0x28, %ax; ltr %ax
    movq $${sup | 3}, ${pte(sup)}        # supervisor-only
    movq $${0x61000 | 7}, ${pte(upage)}  # user page backed by 0x61000
    invlpg ${sup}
    invlpg ${upage}
    mov ${sup}, %eax                     # cached for the supervisor
    lea user(%rip), %rcx
    mov $0x2, %r11
    mov $0x20000, %rsp
    sysretq
  user:
    mov ${upage}, %eax                   # cached for the user
    mov %eax, ${DATA}
    syscall
  kernel_entry:
    movq $${0x62000 | 7}, ${pte(upage)}  # the kernel repoints the user page
    invlpg ${upage}
    lea user2(%rip), %rcx
    mov $0x2, %r11
    sysretq
  user2:
    mov ${upage}, %eax                   # the new page
    mov %eax, ${DATA + 4}
    mov ${sup}, %ebx                     # #PF: supervisor-only
    `, {
    setup: (mem) => {
      mem.write(0x61000, Uint8Array.of(0xa1, 0, 0, 0));
      mem.write(0x62000, Uint8Array.of(0xa2, 0, 0, 0));
    },
  });
  if (!m) return;
  assert.deepEqual(m.marks, [14]);
  assert.equal(m.u64(DATA) & 0xffffffffn, 0xa1n);
  assert.equal((m.u64(DATA) >> 32n) & 0xffffffffn, 0xa2n, 'the user saw the PTE change made by the kernel');
  const f = frame(m, RSP0_TOP, true);
  assert.equal(f.error, 0x5n, '#PF error: present, read, user');
  assert.equal(f.cs, BigInt(USER_CS | 3));
  assert.equal(m.vm.vcpus[0]!.cpu.cr2, sup);
});

test('guest profiler: TYPEVISOR_SOFT_PROFILE writes a histogram of sampled RIPs at the VM stop, all inside the running code', async (t) => {
  const why = assemblerMissing();
  if (why) {
    t.skip(why);
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tv-profile-'));
  const file = path.join(dir, 'profile.json');
  const saved = process.env.TYPEVISOR_SOFT_PROFILE, savedInterval = process.env.TYPEVISOR_SOFT_PROFILE_INTERVAL;
  process.env.TYPEVISOR_SOFT_PROFILE = file;
  process.env.TYPEVISOR_SOFT_PROFILE_INTERVAL = '1000';
  let m: Machine;
  try {
    m = await machine(assemble(`
      mov $200000, %ecx
    1: dec %ecx
      jnz 1b
      ${exit(1)}`));
  } finally {
    if (saved === undefined) delete process.env.TYPEVISOR_SOFT_PROFILE; else process.env.TYPEVISOR_SOFT_PROFILE = saved;
    if (savedInterval === undefined) delete process.env.TYPEVISOR_SOFT_PROFILE_INTERVAL; else process.env.TYPEVISOR_SOFT_PROFILE_INTERVAL = savedInterval;
  }
  await m.run();
  await m.vm.close();
  const p = JSON.parse(readFileSync(file, 'utf8')) as { interval: number; instructions: number; sampleCount: number; samples: Record<string, [number, number]> };
  rmSync(dir, { recursive: true, force: true });
  assert.equal(p.interval, 1000);
  assert.ok(p.instructions >= 400000, `${p.instructions} instructions counted`);
  // ~400,000 instructions at a mean interval of 1,000: a few hundred samples.
  assert.ok(p.sampleCount >= 100 && p.sampleCount <= 1000, `${p.sampleCount} samples`);
  let total = 0;
  for (const [key, [n]] of Object.entries(p.samples)) {
    const [cpl, rip] = key.split(':');
    assert.equal(cpl, '0');
    const a = Number.parseInt(rip ?? '', 16);
    assert.ok(a >= CODE && a < CODE + 0x40, `sample at 0x${a.toString(16)} outside the program`);
    total += n;
  }
  assert.equal(total, p.sampleCount);
});

test('IRETQ returns to CPL 3 with the pushed RSP and RFLAGS; a privileged instruction there is #GP', async (t) => {
  const m = await runAsm(t, `
    mov $0x28, %ax; ltr %ax
    pushq $${USER_DS | 3}
    pushq $0x21000
    pushq $0x202
    pushq $${USER_CS | 3}
    lea user(%rip), %rax
    pushq %rax
    iretq
  user:
    mov %rsp, ${DATA}
    cli                                 # IOPL 0: #GP
    `);
  if (!m) return;
  assert.deepEqual(m.marks, [13]);
  assert.equal(m.u64(DATA), 0x21000n);
  const f = frame(m, RSP0_TOP, true);
  assert.equal(f.cs, BigInt(USER_CS | 3));
  assert.equal(f.rsp, 0x21000n);
});

test('port I/O reaches the dispatcher; HLT with IF = 0 and nothing pending sleeps instead of spinning', async (t) => {
  const m = await runAsm(t, `
    mov $0x3f8, %dx
    mov $0x41, %al
    out %al, %dx
    in %dx, %al
    ${exit(3)}`);
  if (!m) return;
  assert.deepEqual(m.marks, [3]);
  assert.deepEqual(m.pio, [[0x3f8, true], [0x3f8, false]]);
  const s = m.vm.stats();
  assert.ok((s.instructions ?? 0) >= 5 && (s.instructions ?? 0) < 20, `instructions ${s.instructions}`);
});

test('control registers: CR0 and CR4 read back unsigned and write back unchanged; CR4 reserved bits #GP', async (t) => {
  const m = await runAsm(t, `
    mov %cr0, %rax; mov %rax, ${DATA}; mov %rax, %cr0
    mov %cr4, %rax; mov %rax, ${DATA + 8}; mov %rax, %cr4
    or $(1 << 20), %rax                 # SMEP: not offered
    mov %rax, %cr4
    ${exit(1)}`);
  if (!m) return;
  assert.deepEqual(m.marks, [13]);
  assert.equal(m.u64(DATA), 0x80050033n);
  assert.equal(m.u64(DATA + 8), 0x6a0n);
});

test('EMMS empties the x87 tag word (Linux runs it before FXRSTOR on AMD)', async (t) => {
  const m = await runAsm(t, `
    fninit
    fld1
    fnstenv ${DATA}
    emms
    fnstenv ${DATA + 32}
    ${exit(2)}`);
  if (!m) return;
  assert.deepEqual(m.marks, [2]);
  const tag = (a: number): number => (m.memory.read(a + 8, 2)[0] ?? 0) | ((m.memory.read(a + 8, 2)[1] ?? 0) << 8);
  assert.notEqual(tag(DATA), 0xffff, 'one register in use after fld1');
  assert.equal(tag(DATA + 32), 0xffff);
});

test('engine: a guest spinning forever leaves the event loop live; pause holds it, resume continues, requestStop ends run()', async (t) => {
  const why = assemblerMissing();
  if (why) {
    t.skip(why);
    return;
  }
  const m = await machine(assemble('1: jmp 1b'));
  const done = m.vm.run();
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const t0 = performance.now();
  await sleep(50);
  assert.ok(performance.now() - t0 < 500, 'a 50 ms timer fired on time while the vCPU spins');
  const icount = (): number => m.vm.vcpus[0]!.cpu.icount;
  assert.ok(icount() > 10_000, `ran ${icount()} instructions`);
  await m.vm.pause();
  const held = icount();
  await sleep(30);
  assert.equal(icount(), held, 'no instruction retires while paused');
  m.vm.resume();
  await sleep(30);
  assert.ok(icount() > held, 'running again after resume');
  m.vm.requestStop({ reason: 'host-stop' });
  assert.deepEqual(await done, { reason: 'host-stop' });
  const s = m.vm.stats();
  assert.equal(s.instructions, icount());
  assert.ok((s.instructionsPerSecond ?? 0) > 100_000, `instructions/s ${s.instructionsPerSecond}`);
});

test('engine: createVm refuses a vCPU count it cannot run', async () => {
  const { SoftEngine } = await import('../../src/engine/soft/engine.js');
  const e = new SoftEngine();
  await assert.rejects(e.createVm({ cpus: 0 } as never), /0 vCPUs requested, 1\.\.64 supported/);
  await assert.rejects(e.createVm({ cpus: 65 } as never), /65 vCPUs requested/);
});

test('interrupts: a device line raised while the vCPU sleeps in HLT wakes it through the IOAPIC and LAPIC into the IDT', async (t) => {
  const started = performance.now();
  const m = await runAsm(t, `
    mov $0xfee00000, %ebx
    mov $0xfec00000, %esi
    movl $0x1ff, 0xf0(%rbx)            # LAPIC SVR: software enable, spurious vector 0xff
    movl $0x18, (%rsi)                 # IOREGSEL: redirection entry 4, low dword
    movl $0x30, 0x10(%rsi)             # IOWIN: vector 0x30, fixed, edge, active high, unmasked
    movl $0x19, (%rsi)
    movl $0, 0x10(%rsi)                # destination APIC 0
    mov $1, %al
    out %al, $${RAISE_PORT}            # the host raises pin 4 in ~50 ms
    sti
  1: hlt
    jmp 1b`);
  if (!m) return;
  assert.deepEqual(m.marks, [0x30]);
  const s = m.vm.stats();
  assert.ok(performance.now() - started >= 45, 'the interrupt came from the host timer, not at once');
  assert.ok((s.instructions ?? 0) < 100, `the halted vCPU did not spin: ${s.instructions} instructions`);
  assert.ok((s.hlt ?? 0) >= 1 && (s.interrupts ?? 0) === 1, JSON.stringify(s));
  const f = frame(m, BOOT_STACK_TOP, false);
  assert.equal(f.rflags & 0x200n, 0x200n, 'IF was set in the interrupted context');
});

test('interrupts: the LAPIC TSC-deadline timer wakes a halted vCPU; with IF = 0 the interrupt waits', async (t) => {
  const started = performance.now();
  const m = await runAsm(t, `
    mov $0xfee00000, %ebx
    movl $0x1ff, 0xf0(%rbx)            # LAPIC SVR: enable
    movl $(0x31 | (2 << 17)), 0x320(%rbx)  # LVT timer: vector 0x31, TSC-deadline mode
    rdtsc
    shl $32, %rdx
    or %rdx, %rax
    add $20000000, %rax                # 20 ms at the guest's 1 GHz TSC
    mov %rax, %rdx
    shr $32, %rdx
    mov $0x6e0, %ecx
    wrmsr
    mov $3000000, %ecx                 # spin with IF = 0 past the deadline (~0.1 s here)
  2: dec %ecx
    jnz 2b
    mov $0x6e0, %ecx
    rdmsr                              # the deadline fired: the MSR reads 0
    mov %eax, ${DATA}
    sti
  1: hlt
    jmp 1b`);
  if (!m) return;
  assert.deepEqual(m.marks, [0x31]);
  assert.ok(performance.now() - started >= 18, 'not before the deadline');
  assert.equal(m.u64(DATA) & 0xffffffffn, 0n, 'IA32_TSC_DEADLINE reads 0 once fired');
  const f = frame(m, BOOT_STACK_TOP, false);
  assert.ok(f.rip > BigInt(CODE), 'delivered after STI, at the HLT loop');
});

test('engine errors: fetching instructions from MMIO ends the VM with engine-error, the vCPU, RIP and the reason', async (t) => {
  const m = await runAsm(t, `
    mov $0xfee00000, %eax
    jmp *%rax`);
  if (!m) return;
  assert.equal(m.stop.reason, 'engine-error');
  if (m.stop.reason !== 'engine-error') return;
  assert.equal(m.stop.cpu, 0);
  assert.match(m.stop.message, /vCPU 0 at 0xfee00000: .*instruction fetch from MMIO \(physical 0xfee00000\)/);
  assert.equal(m.stop.regs?.rip, 0xfee00000n);
});

test('CR3 writes keep global translations (CR4.PGE), drop the others; a CR4.PGE toggle and INVLPG drop global ones too; the loop reading them compiled', async (t) => {
  const g = 0x50000, n = 0x51000;
  const pte = (page: number): number => 0x4000 + (page >>> 12) * 8;
  // One subroutine reads g and n RCX times and stores what its last pass saw at RDI. A first long call compiles its
  // loop to wasm (and waits out the batching window), so that the later calls run it compiled from the first access.
  const readBoth = (at: number): string => `mov $${at}, %edi; mov $1000, %ecx; call read_both`;
  const m = await runAsm(t, `
    jmp start
  read_both:
    mov $${g}, %esi
    mov $${n}, %ebx
  1:
    mov (%rsi), %eax
    mov (%rbx), %edx
    dec %ecx
    jnz 1b
    mov %eax, (%rdi)
    mov %edx, 4(%rdi)
    ret
  start:
    mov %cr4, %rax
    or $0x80, %rax
    mov %rax, %cr4                        # CR4.PGE
    movq $${0x61000 | 0x103}, ${pte(g)}   # g: global, frame 0x61000
    movq $${0x62000 | 3}, ${pte(n)}       # n: not global, frame 0x62000
    invlpg ${g}
    invlpg ${n}
    mov $${DATA + 32}, %edi
    mov $5000000, %ecx
    call read_both
    ${readBoth(DATA)}
    movq $${0x63000 | 0x103}, ${pte(g)}   # both repointed, no INVLPG
    movq $${0x64000 | 3}, ${pte(n)}
    mov %cr3, %rax
    mov %rax, %cr3
    ${readBoth(DATA + 8)}
    mov %cr4, %rax
    and $~0x80, %rax
    mov %rax, %cr4
    or $0x80, %rax
    mov %rax, %cr4
    ${readBoth(DATA + 16)}
    movq $${0x61000 | 0x103}, ${pte(g)}
    invlpg ${g}
    ${readBoth(DATA + 24)}
    ${exit(0x47)}`, {
    setup: (mem) => {
      for (const [at, v] of [[0x61000, 0xa1], [0x62000, 0xb1], [0x63000, 0xa2], [0x64000, 0xb2]] as const) mem.write(at, Uint8Array.of(v, 0, 0, 0));
    },
  });
  if (!m) return;
  assert.deepEqual(m.marks, [0x47]);
  assert.ok((m.vm.vcpus[0]?.cpu.wasm?.entries ?? 0) > 0, 'the loops ran compiled');
  const seen = (at: number): [bigint, bigint] => [m.u64(at) & 0xffn, (m.u64(at) >> 32n) & 0xffn];
  assert.deepEqual(seen(DATA), [0xa1n, 0xb1n], 'both frames as mapped');
  assert.deepEqual(seen(DATA + 8), [0xa1n, 0xb2n], 'after a CR3 write: the global translation kept, the other walked again');
  assert.deepEqual(seen(DATA + 16), [0xa2n, 0xb2n], 'after CR4.PGE off and on: the global one walked again too');
  assert.deepEqual(seen(DATA + 24), [0xa1n, 0xb2n], 'INVLPG of a global page');
});
