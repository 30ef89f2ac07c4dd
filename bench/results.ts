/**
 * What `npm run bench` writes besides its table on the terminal: bench-results.json (figure name →
 * value, unit, spread, target) and bench-results.md, the same figures as a Markdown table a README or
 * an issue can hold, both with the machine they were measured on.
 */
import { spawnSync } from 'node:child_process';
import { cpus, release, type } from 'node:os';
import type { Figure } from './harness.js';

export interface BenchMachine {
  /** The CPU model as the kernel names it, and how many logical cores the machine has (each figure uses one). */
  cpu: string;
  cores: number;
  node: string;
  os: string;
  /** The commit measured (with `+dirty` when the work tree had changes), when run from a git checkout. */
  commit: string | null;
  date: string;
}

/** A figure as written: the harness's `Figure` and what one operation is. */
export type FigureResult = Figure & { what: string };

export interface BenchResults {
  meta: BenchMachine;
  figures: Record<string, FigureResult>;
}

export function benchMachine(now: Date): BenchMachine {
  const git = (args: string[]): string | null => {
    const r = spawnSync('git', args, { encoding: 'utf8', cwd: new URL('../..', import.meta.url) });
    return r.status === 0 ? r.stdout.trim() : null;
  };
  const head = git(['rev-parse', '--short=12', 'HEAD']);
  const dirty = head !== null && git(['status', '--porcelain', '--untracked-files=no']) !== '';
  const cs = cpus();
  return {
    cpu: cs[0]?.model.trim() ?? 'unknown',
    cores: cs.length,
    node: process.version,
    os: `${type()} ${release()}`,
    commit: head === null ? null : `${head}${dirty ? '+dirty' : ''}`,
    date: now.toISOString(),
  };
}

/** Three significant figures, thousands grouped: 23.5, 5.64, 490,000. */
export function fmtValue(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  return String(+x.toPrecision(3));
}

/** The spread of a figure: min–max over its rounds and the relative standard deviation, or that it is one run. */
export function spreadText(f: Figure): string {
  return f.rounds <= 1 ? 'one run' : `${fmtValue(f.min)}–${fmtValue(f.max)} (rsd ${f.rsdPercent.toFixed(1)}%, ${f.rounds} rounds)`;
}

/** The target as stated: an absolute floor or ceiling and/or a ratio to a reference figure. */
export function targetText(f: Figure): string {
  const parts: string[] = [];
  if (f.target !== undefined) parts.push(`${f.atMost === true ? '≤' : '≥'} ${fmtValue(f.target)}`);
  if (f.minRatio !== undefined) parts.push(`≥ ${+f.minRatio.toFixed(3)}× ${f.ratioToReference?.reference ?? 'its reference (not measured)'}`);
  return parts.join(' and ');
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The results as Markdown: the machine, then one row per figure. */
export function markdownTable(r: BenchResults): string {
  const m = r.meta;
  const out = [
    '# seine benchmarks',
    '',
    `Machine: ${m.cpu}, ${m.cores} cores (each figure runs on one); Node ${m.node}; ${m.os}.`,
    `Measured ${m.date}${m.commit !== null ? ` at commit ${m.commit}` : ''} with \`npm run bench\`.`,
    '',
    '| figure | value | unit | spread (min–max over rounds) | target | met | what |',
    '|---|--:|---|---|---|---|---|',
  ];
  for (const [name, f] of Object.entries(r.figures)) {
    const ratio = f.ratioToReference !== undefined ? ` (${+f.ratioToReference.ratio.toFixed(3)}× ${f.ratioToReference.reference})` : '';
    const met = f.meetsTarget === undefined ? '' : f.meetsTarget ? 'yes' : '**MISSED**';
    out.push(
      `| \`${name}\` | ${fmtValue(f.value)} | ${cell(f.unit)} | ${cell(spreadText(f))} | ${cell(targetText(f))} | ${met} | ${cell(f.what)}${cell(ratio)} |`,
    );
  }
  return `${out.join('\n')}\n`;
}
