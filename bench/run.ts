/**
 * `npm run bench [-- [--json] <name-prefix>...]`: runs the benchmarks, prints a table and writes
 * bench-results.json and bench-results.md at the top level (figure name → value, unit, spread, target,
 * and the machine: bench/results.ts). With `--json` the table is replaced by the same JSON on stdout.
 * The benchmarks are listed in bench/registry.ts.
 *
 * Each benchmark runs in a process of its own (as JMH forks one per benchmark): V8 compiles the datapath
 * from the type feedback it has seen, and in one shared process the shapes a previous benchmark fed
 * through the same functions (other devices, other tunnel kinds) made the next one's code slower than
 * it is on a node that only runs its datapath. Ratios to a reference figure are still between figures
 * of the same run.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isOnce, measureInterleaved, measureOnce, sinkValue, type Bench, type BenchEntry, type Figure } from './harness.js';
import { allBenches, entryFigures } from './registry.js';
import { benchMachine, markdownTable, type BenchResults, type FigureResult } from './results.js';

const all: BenchEntry[] = allBenches();

interface ChildResult {
  name: string;
  figure: Figure;
  what: string;
  reference?: string;
  minRatio?: number;
}

/**
 * Child mode: `run.js --child <name>[,<name>...]` measures those benchmarks in this process, their
 * rounds interleaved, and prints one JSON line per figure. A one-shot benchmark (harness.ts `OnceBench`)
 * comes alone and prints one line per figure it returns.
 */
function child(names: string[]): void {
  const made = names.map((name) => {
    const entry = all.find((e) => e.name === name);
    if (entry === undefined) throw new Error(`bench child: no benchmark ${name}`);
    const b = entry.make();
    if (b.name !== name) throw new Error(`bench child: ${name} built a benchmark named ${b.name}`);
    return b;
  });
  const once = made.find(isOnce);
  if (once !== undefined) {
    if (made.length !== 1) throw new Error(`bench child: one-shot benchmark ${once.name} must run alone`);
    const figures = measureOnce(once);
    // The declared figure list (registry.ts) is what the issues' figures are checked against: it must be what ran.
    const declared = entryFigures(all.find((e) => e.name === once.name)!);
    const got = figures.map((f) => f.name);
    // A benchmark that cannot run here (no root) says so loudly and returns nothing.
    if (got.length > 0 && got.join() !== declared.join())
      throw new Error(`bench child: ${once.name} returned ${got.join(', ')}; its entry declares ${declared.join(', ')}`);
    for (const { name, what, figure } of figures) process.stdout.write(JSON.stringify({ name, figure, what } satisfies ChildResult) + '\n');
    return;
  }
  const bs = made as Bench[];
  // A group's rounds interleave, so a ratio between its figures does not carry the machine's drift.
  const figures = measureInterleaved(bs);
  bs.forEach((b, i) => {
    const out: ChildResult = {
      name: b.name,
      figure: figures[i]!,
      what: b.what,
      ...(b.reference !== undefined ? { reference: b.reference } : {}),
      ...(b.minRatio !== undefined ? { minRatio: b.minRatio } : {}),
    };
    process.stdout.write(JSON.stringify({ ...out, sink: sinkValue() % 1 }) + '\n');
  });
}

function parent(args: string[]): void {
  const json = args.includes('--json');
  const filters = args.filter((a) => a !== '--json');
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write('usage: npm run bench -- [--json] [name-prefix ...]\n\nbenchmarks:\n' + all.map((e) => `  ${e.name}\n`).join(''));
    return;
  }
  // A figure chosen by name brings its group along: a ratio target needs its reference measured in the same process.
  const named = all.filter((e) => filters.length === 0 || filters.some((f) => e.name.startsWith(f)));
  const groups = new Set(named.map((e) => e.group).filter((g) => g !== undefined));
  const chosen = all.filter((e) => named.includes(e) || (e.group !== undefined && groups.has(e.group)));
  if (chosen.length === 0) {
    process.stderr.write(`bench: nothing matches ${filters.join(' ')}; names: ${all.map((e) => e.name).join(', ')}\n`);
    process.exit(2);
  }
  const results: Record<string, FigureResult> = {};
  const machine = benchMachine(new Date());
  const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  const say = (s: string): void => {
    if (!json) process.stdout.write(s);
  };
  say(`seine benchmarks — node ${machine.node}, ${machine.cpu} (${machine.cores} cores), one core, one process per figure\n\n`);
  say(`${'figure'.padEnd(32)} ${'median'.padStart(9)} ${'unit'.padEnd(7)} ${'ns/op'.padStart(8)} ${'min–max'.padStart(17)} ${'rsd'.padStart(6)}  target\n`);
  const self = fileURLToPath(import.meta.url);
  // One process per figure, except that a group's figures share one (see BenchEntry.group).
  const runs: BenchEntry[][] = [];
  for (const e of chosen) {
    const last = runs[runs.length - 1];
    // A one-shot benchmark (harness.ts OnceBench) has no group, so it gets a process of its own.
    if (e.group !== undefined && last !== undefined && last[0]!.group === e.group) last.push(e);
    else runs.push([e]);
  }
  let done = 0;
  for (const run of runs) {
    if (process.stderr.isTTY) process.stderr.write(`  [${done + 1}/${chosen.length}] running ${run.map((e) => e.name).join(', ')}…\r`);
    const r = spawnSync(process.execPath, [self, '--child', run.map((e) => e.name).join(',')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`bench ${run.map((e) => e.name).join(', ')}: child exited with ${r.status ?? r.signal}`);
    for (const line of r.stdout.split('\n').filter((l) => l !== '')) {
      const { name, figure: f, what, reference, minRatio } = JSON.parse(line) as ChildResult;
      if (reference !== undefined && results[reference] !== undefined) {
        f.ratioToReference = { reference, ratio: f.value / results[reference]!.value };
        if (minRatio !== undefined) {
          // Both must hold: an absolute target (when there is one) and the ratio.
          f.minRatio = minRatio;
          f.meetsTarget = (f.meetsTarget ?? true) && f.ratioToReference.ratio >= minRatio;
        }
      } else if (minRatio !== undefined) {
        // A ratio target whose reference was not measured is not met (never silently skipped).
        f.minRatio = minRatio;
        f.meetsTarget = false;
      }
      results[name] = { ...f, what };
      const ratio = f.ratioToReference;
      const vs =
        ratio === undefined
          ? ''
          : ratio.ratio >= 1
            ? `(${fmt(ratio.ratio)}× the rate of ${ratio.reference})`
            : `(${fmt(1 / ratio.ratio)}× slower than ${ratio.reference})`;
      const goal = [f.target !== undefined ? `${f.atMost === true ? '≤' : '≥'} ${f.target}` : '', f.minRatio !== undefined ? `${vs} ≥ ${fmt(f.minRatio)}×` : '']
        .filter((x) => x !== '')
        .join(', ');
      const target = goal === '' ? vs : `${goal} ${f.meetsTarget === true ? 'ok' : 'MISSED'}`;
      // One-shot figures (rounds 1) have no ns/op and no spread.
      const single = f.rounds === 1;
      say(
        `${name.padEnd(32)} ${fmt(f.value).padStart(9)} ${f.unit.padEnd(7)} ${(single ? '-' : f.nsPerOp.toFixed(1)).padStart(8)} ${(single ? 'one run' : `${fmt(f.min)}–${fmt(f.max)}`).padStart(17)} ${(single ? '-' : `${f.rsdPercent.toFixed(1)}%`).padStart(6)}  ${target}\n`,
      );
      say(`${''.padEnd(4)}${what}\n`);
    }
    done += run.length;
  }
  if (process.stderr.isTTY) process.stderr.write(' '.repeat(60) + '\r');
  const out: BenchResults = { meta: machine, figures: results };
  // The top level, or SEINE_BENCH_OUT (a test's own directory, so it never overwrites a real run's results).
  const dir = process.env.SEINE_BENCH_OUT ?? fileURLToPath(new URL('../..', import.meta.url));
  writeFileSync(join(dir, 'bench-results.json'), JSON.stringify(out, null, 2) + '\n');
  writeFileSync(join(dir, 'bench-results.md'), markdownTable(out));
  if (json) process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  say('\nwrote bench-results.json and bench-results.md\n');
  const missed = Object.entries(results).filter(([, f]) => f.meetsTarget === false);
  if (missed.length > 0) {
    say(`missed targets: ${missed.map(([n]) => n).join(', ')}\n`);
    process.exitCode = 1;
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') child((argv[1] ?? '').split(','));
else parent(argv);
