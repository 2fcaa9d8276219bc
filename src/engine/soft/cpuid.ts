/**
 * The CPU model the soft engine presents through CPUID.
 *
 * An AMD family 17h part (the hosts here are EPYC) with only what this
 * interpreter implements: the x86-64 baseline (FPU, TSC, CX8, CMOV, MMX,
 * FXSR, SSE, SSE2, SYSCALL, NX, LM) plus CX16, POPCNT, LAHF/SAHF. No XSAVE/AVX, no RDRAND, no BMI: glibc picks its code paths
 * from these bits, so each one is a promise (DESIGN.md). AMD's cache leaves
 * 8000_0005/6 are how glibc sizes its string-function thresholds on AMD.
 *
 * An interpreter does not speculate, so the model also says it is not
 * affected by the speculative-execution bugs that family 17h parts have and
 * that have per-vendor "not affected" bits (8000_0008 EBX, 8000_0021 EAX):
 * a kernel that reads them does not install return thunks, retpolines or
 * store-bypass controls. Those cost a real CPU little and this one a lot:
 * every kernel RET had become a jump, a call and a RET (Linux 6.1's SRSO
 * "safe RET"), and every indirect call a call into a retpoline.
 *
 * Leaf layouts: SDM Vol. 2A "CPUID"; AMD APM Vol. 3, Appendix E.
 */
import type { CpuFeature } from './decode/index.js';

/** Table features that execute as documented here (decode-time gate for cpu=X forms). */
export const ADVERTISED: ReadonlySet<CpuFeature> = new Set<CpuFeature>([
  'fpu', 'tsc', 'cx8', 'cmov', 'clflush', 'mmx', 'fxsr', 'sse', 'sse2', 'cx16',
  'popcnt', 'syscall', 'lahf_lm',
  // Privileged (#GP at CPL 3 before the gate matters); machine mode implements it.
  'msr',
]);

// Leaf 1 EDX (SDM Vol. 2A, Table 3-11) and ECX (Table 3-10).
const L1_EDX_FPU = 1 << 0;
const L1_EDX_TSC = 1 << 4;
const L1_EDX_CX8 = 1 << 8;
const L1_EDX_CMOV = 1 << 15;
const L1_EDX_CLFSH = 1 << 19;
const L1_EDX_MMX = 1 << 23;
const L1_EDX_FXSR = 1 << 24;
const L1_EDX_SSE = 1 << 25;
const L1_EDX_SSE2 = 1 << 26;
const L1_ECX_SSE3 = 1 << 0;
const L1_ECX_SSSE3 = 1 << 9;
const L1_ECX_CX16 = 1 << 13;
const L1_ECX_SSE41 = 1 << 19;
const L1_ECX_POPCNT = 1 << 23;
// Leaf 8000_0001 (AMD APM Vol. 3, E.4.2).
const E1_ECX_LAHF = 1 << 0;
const E1_EDX_SYSCALL = 1 << 11;
const E1_EDX_NX = 1 << 20;
const E1_EDX_LM = 1 << 29;
// Leaf 8000_0008 EBX (AMD APM Vol. 3, E.4.7): speculation controls and "not affected" bits.
const E8_EBX_SSB_NO = 1 << 26; // not affected by speculative store bypass
const E8_EBX_BTC_NO = 1 << 29; // not affected by branch type confusion (RETBleed)
// Leaf 8000_0021 EAX (AMD APM Vol. 3, E.4.17, "Extended Feature 2").
const E21_EAX_LFENCE_SERIALIZING = 1 << 2;
const E21_EAX_AUTOIBRS = 1 << 8; // EFER.AIBRSE: indirect branch restrictions without retpolines
const E21_EAX_SRSO_NO = 1 << 29; // not affected by speculative return stack overflow
/** EFER.AIBRSE (bit 21), which E21_EAX_AUTOIBRS makes writable: stored, with nothing to restrict. */
export const EFER_AIBRSE = 1 << 21;

export const LEAF1_EDX = L1_EDX_FPU | L1_EDX_TSC | L1_EDX_CX8 | L1_EDX_CMOV | L1_EDX_CLFSH | L1_EDX_MMX | L1_EDX_FXSR | L1_EDX_SSE | L1_EDX_SSE2;
export const LEAF1_ECX = L1_ECX_CX16 | L1_ECX_POPCNT;
/** Implemented in part only; advertised once complete and tested. */
export const LEAF1_ECX_LATER = L1_ECX_SSE3 | L1_ECX_SSSE3 | L1_ECX_SSE41;

/** "AuthenticAMD" in EBX, EDX, ECX order. */
const VENDOR = [0x68747541, 0x69746e65, 0x444d4163];
const BRAND = 'typevisor soft x86-64 CPU'.padEnd(48, '\0');
const MAX_BASIC = 0x7;
const MAX_EXT = 0x80000021;

function brandWord(k: number): number {
  let v = 0;
  for (let b = 3; b >= 0; b--) v = (v << 8) | BRAND.charCodeAt(k * 4 + b);
  return v;
}

/** CPUID(leaf, subleaf) into out[0..3] = EAX, EBX, ECX, EDX. Unknown leaves read as zero (AMD behaviour). */
export function cpuid(leaf: number, _subleaf: number, out: Int32Array): void {
  out.fill(0);
  leaf >>>= 0;
  switch (leaf) {
    case 0: out[0] = MAX_BASIC; out[1] = VENDOR[0] ?? 0; out[3] = VENDOR[1] ?? 0; out[2] = VENDOR[2] ?? 0; return;
    case 1:
      out[0] = 0x00830f10; // family 17h (0Fh + 08h), model 31h, stepping 0
      out[1] = (1 << 16) | (8 << 8); // one logical CPU, CLFLUSH line 8 x 8 bytes, APIC ID 0
      out[2] = LEAF1_ECX;
      out[3] = LEAF1_EDX;
      return;
    case 0x80000000: out[0] = MAX_EXT; out[1] = VENDOR[0] ?? 0; out[3] = VENDOR[1] ?? 0; out[2] = VENDOR[2] ?? 0; return;
    case 0x80000001: out[0] = 0x00830f10; out[2] = E1_ECX_LAHF; out[3] = E1_EDX_SYSCALL | E1_EDX_NX | E1_EDX_LM | (LEAF1_EDX & 0x0183f3ff); return;
    case 0x80000002: case 0x80000003: case 0x80000004: {
      const k = (leaf - 0x80000002) * 4;
      for (let r = 0; r < 4; r++) out[r] = brandWord(k + r);
      return;
    }
    // L1 D/I: 32 KiB, 8-way, 64-byte lines; L2 512 KiB 8-way; L3 16 MiB 16-way (APM Vol. 3, E.4.4/E.4.5).
    case 0x80000005: out[2] = (32 << 24) | (8 << 16) | (1 << 8) | 64; out[3] = (32 << 24) | (8 << 16) | (1 << 8) | 64; return;
    case 0x80000006: out[2] = (512 << 16) | (0x6 << 12) | (1 << 8) | 64; out[3] = (64 << 18) | (0x8 << 12) | (1 << 8) | 64; return;
    case 0x80000008: out[0] = 0x3030; out[1] = E8_EBX_SSB_NO | E8_EBX_BTC_NO; return; // 48-bit physical and linear addresses
    case 0x80000021: out[0] = E21_EAX_LFENCE_SERIALIZING | E21_EAX_AUTOIBRS | E21_EAX_SRSO_NO; return;
  }
}
