/**
 * Writes a run's results three ways: results.json (every run's value), a
 * Markdown table (README material) and one small SVG bar chart per group,
 * drawn by hand (a handful of rects and text: no chart library needed).
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMeasured, ratio, type BenchResults, type Row, type Side } from './results.js';

/** Three significant digits, without exponent notation; thousands get separators. */
export function formatNumber(n: number): string {
  if (n === 0) return '0';
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toLocaleString('en-US');
  return Number(n.toPrecision(3)).toString();
}

function cell(s: Side): string {
  if (isMeasured(s)) return formatNumber(s.median);
  // The reason's head ("not available yet", "failed", …) in the cell; the whole reason goes to the notes.
  return `*${s.absent.split(':')[0]}*`;
}

function spread(s: Side): string {
  return isMeasured(s) ? `${formatNumber(s.min)}–${formatNumber(s.max)} (n=${s.runs.length})` : '—';
}

function ratioCell(row: Row): string {
  const r = ratio(row);
  if (r === undefined) return '—';
  const text = `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}×`;
  if (Math.abs(r - 1) < 0.005) return `${text} (equal)`;
  const better = row.better === 'higher' ? r > 1 : r < 1;
  return `${text} ${better ? '(ours better)' : '(ref better)'}`;
}

function escape(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function markdown(res: BenchResults): string {
  const m = res.machine;
  const out: string[] = [];
  out.push(`Measured ${res.date.slice(0, 10)} (${res.mode} run, ${Math.round(res.seconds)} s) on: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ` +
    `${m.os}, ${m.kernel}; KVM: ${m.kvm}; Node ${m.node}; ${m.qemu}; ${m.qemuUser}.`);
  const dates = Object.entries(res.suiteDates ?? {}).filter(([, d]) => d.slice(0, 16) !== res.date.slice(0, 16));
  if (dates.length) out.push(`Kept from earlier runs: ${dates.map(([s, d]) => `${s} (${d.slice(0, 16).replace('T', ' ')} UTC)`).join(', ')}.`);
  out.push('');
  out.push('Each figure is the median of n runs; spread is min–max of ours, then of the reference. Ratio = ours ÷ reference.');
  out.push('');
  out.push('| benchmark | ours | reference | ratio | spread (ours; reference) | units | notes |');
  out.push('|---|---:|---:|---|---|---|---|');
  let group = '';
  for (const row of res.rows) {
    if (row.group !== group) {
      group = row.group;
      out.push(`| **${escape(group)}** | | | | | | |`);
    }
    const absentNotes = [row.ours, row.reference].flatMap((s, i) => (isMeasured(s) ? [] : [`${i === 0 ? 'ours' : 'reference'}: ${s.absent}`]));
    const notes = [`ours = ${row.oursLabel}, reference = ${row.referenceLabel}`, row.notes, ...absentNotes].filter(Boolean).join('; ');
    out.push(`| ${escape(row.benchmark)} | ${cell(row.ours)} | ${cell(row.reference)} | ${ratioCell(row)} | ${spread(row.ours)}; ${spread(row.reference)} | ${row.units} | ${escape(notes)} |`);
  }
  out.push('');
  return out.join('\n');
}

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

/**
 * One group as horizontal bars: for each benchmark, ours and the reference
 * scaled to the larger of the two (units differ between rows), with a
 * min–max whisker and the median printed.
 */
export function svgChart(group: string, rows: Row[]): string {
  const W = 760;
  const LABEL = 300;
  const BAR = 360;
  const ROW_H = 54;
  const H = 40 + rows.length * ROW_H;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="8" y="20" font-size="14" font-weight="bold">${xml(group)}</text>`);
  parts.push(`<rect x="${W - 250}" y="9" width="12" height="12" fill="#2b6cb0"/><text x="${W - 234}" y="20">ours</text>`);
  parts.push(`<rect x="${W - 180}" y="9" width="12" height="12" fill="#a0aec0"/><text x="${W - 164}" y="20">reference</text>`);
  rows.forEach((row, i) => {
    const y = 36 + i * ROW_H;
    const sides = [row.ours, row.reference];
    const top = Math.max(...sides.map((s) => (isMeasured(s) ? s.max : 0)));
    parts.push(`<text x="8" y="${y + 16}">${xml(row.benchmark.length > 40 ? `${row.benchmark.slice(0, 39)}…` : row.benchmark)}</text>`);
    parts.push(`<text x="8" y="${y + 32}" fill="#555">${xml(`${row.units}, ${row.better} is better`)}</text>`);
    sides.forEach((s, k) => {
      const by = y + 4 + k * 20;
      const color = k === 0 ? '#2b6cb0' : '#a0aec0';
      if (!isMeasured(s) || top <= 0) {
        parts.push(`<text x="${LABEL}" y="${by + 12}" fill="#999" font-style="italic">${xml(isMeasured(s) ? formatNumber(s.median) : s.absent.split(':')[0] ?? '')}</text>`);
        return;
      }
      const scale = (v: number) => LABEL + (v / top) * BAR;
      parts.push(`<rect x="${LABEL}" y="${by}" width="${(scale(s.median) - LABEL).toFixed(1)}" height="14" fill="${color}"/>`);
      parts.push(`<line x1="${scale(s.min).toFixed(1)}" x2="${scale(s.max).toFixed(1)}" y1="${by + 7}" y2="${by + 7}" stroke="#222"/>`);
      parts.push(`<text x="${(scale(s.max) + 6).toFixed(1)}" y="${by + 12}">${xml(formatNumber(s.median))}</text>`);
    });
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

export interface Written {
  json: string;
  markdown: string;
  charts: string[];
}

/** Writes results.json, results.md and charts/<group>.svg into `dir` (old charts are removed first). */
export function writeResults(dir: string, res: BenchResults): Written {
  const charts = join(dir, 'charts');
  mkdirSync(charts, { recursive: true });
  for (const f of readdirSync(charts)) if (f.endsWith('.svg')) rmSync(join(charts, f));
  const json = join(dir, 'results.json');
  writeFileSync(json, `${JSON.stringify(res, null, 2)}\n`);
  const md = join(dir, 'results.md');
  const groups = [...new Set(res.rows.map((r) => r.group))];
  const svgs = groups.map((g) => {
    const path = join(charts, `${slug(g)}.svg`);
    writeFileSync(path, svgChart(g, res.rows.filter((r) => r.group === g)));
    return path;
  });
  const images = groups.map((g) => `![${g}](charts/${slug(g)}.svg)`).join('\n');
  writeFileSync(md, `# typevisor benchmarks\n\n${markdown(res)}\n${images}\n`);
  return { json, markdown: md, charts: svgs };
}
