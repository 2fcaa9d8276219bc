#!/usr/bin/env node
/**
 * Symbolizes a soft-engine guest profile (TYPEVISOR_SOFT_PROFILE=<file>,
 * src/engine/soft/README.md) with the guest kernel's /proc/kallsyms and
 * prints the functions that took the most samples.
 *
 *   node scripts/guest-profile.mjs <profile.json> <kallsyms> [options]
 *
 *   --top N         functions to list (default 30)
 *   --by time       rank by host time instead of instruction samples
 *   --user          list user-space addresses (CPL 3) too, instead of one line
 *   --detail NAME   also list the sampled addresses inside function NAME
 *   --stack         with a profile taken with TYPEVISOR_SOFT_PROFILE_STACK,
 *                   also rank the functions whose text addresses were found
 *                   on the kernel stack (callers, and stale words too)
 *
 * The kallsyms file may hold other console lines: only "address type name
 * [module]" lines are read, and only text symbols (t, T, w, W) are used.
 */
import { readFileSync } from 'node:fs';

function usage(message) {
  if (message) process.stderr.write(`guest-profile: ${message}\n`);
  process.stderr.write('usage: node scripts/guest-profile.mjs <profile.json> <kallsyms> [--top N] [--by samples|time] [--user] [--detail NAME]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const files = [];
let top = 30;
let byTime = false;
let user = false;
let stack = false;
const detail = new Set();
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--top') top = Number(args[++i]);
  else if (a === '--by') {
    const v = args[++i];
    if (v !== 'samples' && v !== 'time') usage(`--by ${v}: samples or time`);
    byTime = v === 'time';
  } else if (a === '--user') user = true;
  else if (a === '--stack') stack = true;
  else if (a === '--detail') detail.add(args[++i]);
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else files.push(a);
}
if (files.length !== 2 || !(top > 0)) usage();

const profile = JSON.parse(readFileSync(files[0], 'utf8'));

// Text symbols, sorted by address.
const symbols = [];
const marks = new Map();
for (const line of readFileSync(files[1], 'utf8').split('\n')) {
  const m = /^([0-9a-f]{8,16}) ([tTwW]) (\S+)(?:\s+\[(\S+)\])?\s*$/.exec(line);
  if (!m) continue;
  const address = BigInt(`0x${m[1]}`);
  if (address === 0n) continue;
  if (!m[4]) marks.set(m[3], address);
  symbols.push({ address, name: m[4] ? `${m[3]} [${m[4]}]` : m[3] });
}
symbols.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
if (symbols.length === 0) usage(`${files[1]}: no text symbols (was kptr_restrict 0 when it was read?)`);

/** The symbol at or below `address`, or undefined below the first one. */
function symbolOf(address) {
  let lo = 0;
  let hi = symbols.length - 1;
  if (address < symbols[0].address) return undefined;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (symbols[mid].address <= address) lo = mid;
    else hi = mid - 1;
  }
  return symbols[lo];
}

/** Whether `address` lies in kernel or module text (bounds from the _stext/_etext and init text markers). */
function inText(address) {
  if (address >= 0xffffffffc0000000n) return true;
  const within = (a, b) => marks.has(a) && marks.has(b) && address >= marks.get(a) && address < marks.get(b);
  return within('_stext', '_etext') || within('_sinittext', '_einittext');
}

const functions = new Map();
let totalSamples = 0;
let totalMs = 0;
let userSamples = 0;
let userMs = 0;
const details = [];
for (const [key, [n, ms]] of Object.entries(profile.samples)) {
  const colon = key.indexOf(':');
  const cpl = Number(key.slice(0, colon));
  const address = BigInt(`0x${key.slice(colon + 1)}`);
  totalSamples += n;
  totalMs += ms;
  let name;
  if (cpl === 3) {
    userSamples += n;
    userMs += ms;
    name = user ? `[user] ${address.toString(16)}` : '[user space]';
  } else {
    const s = symbolOf(address);
    // Past the last symbol, or far from any (freed init text, other regions): by 64 KiB.
    if (s === undefined || address - s.address > 0x100000n) name = `[unknown] ${(address & ~0xffffn).toString(16)}`;
    else {
      name = s.name;
      if (detail.has(s.name)) details.push({ name, offset: address - s.address, n, ms });
    }
  }
  const f = functions.get(name);
  if (f === undefined) functions.set(name, { name, n, ms });
  else { f.n += n; f.ms += ms; }
}

const pct = (x, total) => (total > 0 ? (100 * x / total).toFixed(2).padStart(6) : '   n/a');
const ranked = [...functions.values()].sort((a, b) => (byTime ? b.ms - a.ms : b.n - a.n));
process.stdout.write(
  `${totalSamples} samples every ~${profile.interval} instructions (${profile.instructions} retired, ${profile.runMs} ms running); ` +
  `user space ${pct(userSamples, totalSamples).trim()} % of samples, ${pct(userMs, totalMs).trim()} % of host time\n\n`,
);
process.stdout.write(`  rank  samples %  cum %   time %  function\n`);
let cum = 0;
ranked.slice(0, top).forEach((f, i) => {
  cum += byTime ? f.ms : f.n;
  process.stdout.write(
    `  ${String(i + 1).padStart(4)}  ${pct(f.n, totalSamples)}   ${pct(cum, byTime ? totalMs : totalSamples)}  ${pct(f.ms, totalMs)}  ${f.name}\n`,
  );
});
for (const name of detail) {
  const rows = details.filter((d) => d.name === name).sort((a, b) => b.n - a.n);
  process.stdout.write(`\n${name}: ${rows.length} sampled addresses\n`);
  for (const d of rows.slice(0, 40)) {
    process.stdout.write(`  +0x${d.offset.toString(16).padEnd(6)} ${pct(d.n, totalSamples)} % samples ${pct(d.ms, totalMs)} % time\n`);
  }
}
if (stack) {
  if (profile.stack === undefined) usage(`${files[0]}: no stack words (profile with TYPEVISOR_SOFT_PROFILE_STACK=<words>)`);
  const kernelSamples = totalSamples - userSamples;
  const onStack = new Map();
  for (const [hexAddress, n] of Object.entries(profile.stack)) {
    const address = BigInt(`0x${hexAddress}`);
    if (!inText(address)) continue;
    const s = symbolOf(address);
    if (s === undefined) continue;
    onStack.set(s.name, (onStack.get(s.name) ?? 0) + n);
  }
  process.stdout.write(`\nOn the kernel stack (% of kernel samples; an upper bound: stale words count too)\n`);
  [...onStack].sort((a, b) => b[1] - a[1]).slice(0, top).forEach(([name, n], i) => {
    process.stdout.write(`  ${String(i + 1).padStart(4)}  ${pct(Math.min(n, kernelSamples), kernelSamples)}  ${name}\n`);
  });
}
