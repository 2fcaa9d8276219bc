/**
 * KVM engine against a raw C KVM program: port-I/O and MMIO exit round trips
 * per second from the same guest loop (bench/kvm/ does the measuring).
 */
import { measureExitRoundTrips } from '../kvm/exit-roundtrip.js';
import { absent, measured, type Row } from '../lib/results.js';
import type { Suite } from '../lib/suite.js';

const GROUP = 'KVM engine vs raw C KVM program';

export const kvmExits: Suite = async (ctx) => {
  const exits = ctx.quick ? 2_000 : 20_000;
  const base = (mode: 'pio' | 'mmio') => ({
    id: `kvm.exit.${mode}`,
    group: GROUP,
    benchmark: mode === 'pio' ? 'port-I/O exit round trips' : 'MMIO exit round trips',
    units: 'exits/s',
    better: 'higher' as const,
    oursLabel: 'typevisor KvmEngine',
    referenceLabel: 'raw C KVM program (bench/kvm/raw-exit.c)',
    notes:
      `guest loop at CPL0 in long mode (guest/mini/exit-loop.S), ${exits} ${mode === 'pio' ? '`out`s to port 0x3f8' : 'stores to unmapped 0xd0000000'} per run; ` +
      'the VMM handler does nothing; runs interleaved; same VM shape (in-kernel irqchip)',
  });
  if (ctx.kvm !== true) {
    const why = absent(`KVM unusable: ${ctx.kvm}`);
    return (['pio', 'mmio'] as const).map((m) => ({ ...base(m), ours: why, reference: why }));
  }
  const r = await measureExitRoundTrips({ exits, runs: ctx.runs });
  const rows: Row[] = [];
  for (const mode of ['pio', 'mmio'] as const) {
    if ('skip' in r) {
      rows.push({ ...base(mode), ours: absent(r.skip), reference: absent(r.skip) });
      continue;
    }
    const perSecond = (usPerExit: number[]) => usPerExit.map((us) => 1e6 / us);
    rows.push({ ...base(mode), ours: measured(perSecond(r[mode].ours)), reference: measured(perSecond(r[mode].raw)) });
  }
  return rows;
};
