/**
 * `npm run bench [-- <name-prefix>...]`: runs the benchmarks, prints a table and writes
 * bench-results.json at the top level (figure name → value, unit, spread, target). Later issues add
 * their own bench modules to the list below.
 */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { measure, sinkValue, type Bench, type Figure } from './harness.js';
import { wireBenches } from './wire.js';
import { datapathBenches } from './datapath.js';

const filters = process.argv.slice(2);
const all: Bench[] = [...wireBenches(), ...datapathBenches()];
const chosen = filters.length === 0 ? all : all.filter((b) => filters.some((f) => b.name.startsWith(f)));
if (chosen.length === 0) {
  process.stderr.write(`bench: nothing matches ${filters.join(' ')}; names: ${all.map((b) => b.name).join(', ')}\n`);
  process.exit(2);
}

const results: Record<string, Figure> = {};
const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
process.stdout.write(`seine benchmarks — node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'}, one core\n\n`);
process.stdout.write(`${'figure'.padEnd(32)} ${'median'.padStart(9)} ${'unit'.padEnd(7)} ${'ns/op'.padStart(8)} ${'min–max'.padStart(17)} ${'rsd'.padStart(6)}  target\n`);
for (const b of chosen) {
  if (process.stderr.isTTY) process.stderr.write(`  running ${b.name}…\r`);
  const f = measure(b);
  if (b.reference !== undefined && results[b.reference] !== undefined) {
    f.ratioToReference = { reference: b.reference, ratio: f.value / results[b.reference]!.value };
  }
  results[b.name] = f;
  const ratio = f.ratioToReference;
  const vs = ratio === undefined ? '' : ratio.ratio >= 1 ? `(${fmt(ratio.ratio)}× the rate of ${ratio.reference})` : `(${fmt(1 / ratio.ratio)}× slower than ${ratio.reference})`;
  const target = f.target === undefined ? vs
    : `≥ ${f.target} ${f.meetsTarget === true ? 'ok' : 'MISSED'}`;
  process.stdout.write(`${b.name.padEnd(32)} ${fmt(f.value).padStart(9)} ${f.unit.padEnd(7)} ${f.nsPerOp.toFixed(1).padStart(8)} ${`${fmt(f.min)}–${fmt(f.max)}`.padStart(17)} ${`${f.rsdPercent.toFixed(1)}%`.padStart(6)}  ${target}\n`);
  process.stdout.write(`${''.padEnd(4)}${b.what}\n`);
}
const out = { meta: { node: process.version, cpu: cpus()[0]?.model ?? 'unknown', date: new Date().toISOString(), sink: sinkValue() % 1 }, figures: results };
writeFileSync(new URL('../../bench-results.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
process.stdout.write('\nwrote bench-results.json\n');
const missed = Object.entries(results).filter(([, f]) => f.meetsTarget === false);
if (missed.length > 0) {
  process.stdout.write(`missed targets: ${missed.map(([n]) => n).join(', ')}\n`);
  process.exitCode = 1;
}
