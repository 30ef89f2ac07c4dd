/**
 * `seine run <scenario>`: simulate a scenario and print its report; the exit status says whether its
 * expectations held (0), failed (1), or the scenario could not be run (2, with the file, line, key and
 * what was expected).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, SimBuildError, formatReport } from '../sim/cluster.js';
import { ScenarioError, loadScenario, type Scenario } from '../sim/scenario.js';

export const RUN_USAGE = `usage: seine run <scenario.yaml> [--json] [--pcap DIR] [--seed N] [--no-progress]

Simulates the scenario (no root, no network) and prints, per flow, what was sent and delivered, latency
p50/p99, throughput and goodput; the wire overhead; drops by reason per node and port; and each
expectation of the scenario with the value found.

  --json          the report as one JSON object
  --pcap DIR      write one pcapng file per capture point of the scenario into DIR (made if missing)
  --seed N        run with this seed instead of the scenario's
  --no-progress   no progress bar (it is shown on a terminal for runs longer than a second)

exit status: 0 all expectations met, 1 one failed, 2 the scenario or the options are wrong
`;

export class CliError extends Error {
  constructor(message: string, readonly code = 2) { super(message); }
}

export interface RunIo {
  out(line: string): void;
  err(text: string): void;
  /** Whether to draw the progress bar (stderr is a terminal). */
  tty: boolean;
}

export interface RunArgs {
  path: string;
  json: boolean;
  pcap: string | null;
  seed: number | undefined;
  progress: boolean;
}

export function parseRunArgs(args: string[], cmd: string): RunArgs | 'help' {
  const r: RunArgs = { path: '', json: false, pcap: null, seed: undefined, progress: true };
  let path: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') r.json = true;
    else if (a === '--no-progress') r.progress = false;
    else if (a === '--pcap') {
      const d = args[++i];
      if (d === undefined || d === '') throw new CliError(`${cmd}: --pcap expects a directory`);
      r.pcap = d;
    } else if (a === '--seed') {
      const v = args[++i] ?? '';
      const n = Number(v);
      if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n > 0xffff_ffff) throw new CliError(`${cmd}: --seed expects an integer 0-4294967295, got '${v}'`);
      r.seed = n;
    } else if (a === '-h' || a === '--help') return 'help';
    else if (a.startsWith('-')) throw new CliError(`${cmd}: unknown option '${a}' (try seine ${cmd} --help)`);
    else if (path === null) path = a;
    else throw new CliError(`${cmd}: one scenario at a time (got '${path}' and '${a}')`);
  }
  if (path === null) throw new CliError(`${cmd}: which scenario? usage: seine ${cmd} <scenario.yaml> (the labs are in scenarios/)`);
  r.path = path;
  return r;
}

/** Loads a scenario; a mistake in it becomes a CliError (status 2) with the loader's message. */
export function load(path: string): Scenario {
  try {
    return loadScenario(path);
  } catch (e: unknown) {
    if (e instanceof ScenarioError) throw new CliError(e.message);
    throw e;
  }
}

/** Draws a progress bar on stderr once a run has taken more than a second. */
export function progressBar(io: RunIo, label: string): { tick: (f: number) => void; done: () => void } {
  const t0 = Date.now();
  let drawn = false;
  return {
    tick(f: number): void {
      if (!io.tty || Date.now() - t0 < 1000) return;
      drawn = true;
      const w = 30, k = Math.round(f * w);
      io.err(`\r${label} [${'#'.repeat(k)}${'.'.repeat(w - k)}] ${Math.round(f * 100)}%`);
    },
    done(): void { if (drawn) io.err('\r\x1b[K'); },
  };
}

export function runCommand(args: string[], io: RunIo): number {
  const a = parseRunArgs(args, 'run');
  if (a === 'help') { io.out(RUN_USAGE); return 0; }
  const scenario = load(a.path);
  let cluster: Cluster;
  try {
    cluster = new Cluster(scenario, { ...(a.seed !== undefined ? { seed: a.seed } : {}), capture: a.pcap !== null });
  } catch (e: unknown) {
    if (e instanceof SimBuildError || e instanceof RangeError) throw new CliError(`${a.path}: ${e.message}`);
    throw e;
  }
  const bar = progressBar({ ...io, tty: io.tty && a.progress }, `simulating ${scenario.name}`);
  cluster.run(bar.tick);
  bar.done();
  const report = cluster.report();
  if (a.pcap !== null) {
    try {
      mkdirSync(a.pcap, { recursive: true });
      for (const c of cluster.captures) writeFileSync(join(a.pcap, `${c.name.replace('/', '-')}.pcapng`), c.bytes());
    } catch (e: unknown) {
      const err = e as NodeJS.ErrnoException;
      throw new CliError(`run: cannot write captures into '${a.pcap}': ${err.code ?? err.message}`);
    }
  }
  if (a.json) io.out(JSON.stringify(report));
  else {
    io.out(formatReport(report));
    if (a.pcap !== null && cluster.captures.length > 0) io.out(`\nwrote ${cluster.captures.map((c) => join(a.pcap!, `${c.name.replace('/', '-')}.pcapng`)).join(', ')}`);
  }
  return report.ok ? 0 : 1;
}
