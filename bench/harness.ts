/**
 * A small benchmark harness: each benchmark is calibrated to run about `roundMs` per round, warmed up,
 * then measured over several rounds; the figure is the median rate, with min/max and relative standard
 * deviation as the spread (this machine is shared and noisy — the spread says how much to trust it).
 *
 * Why not benchmark.js: its per-call function dispatch costs more than a 20-50 ns operation being
 * measured, and it is unmaintained; here the measured loop is the benchmark's own.
 */
export interface Bench {
  /** Figure name in bench-results.json, e.g. `wire.parse.vxlan-tcp`. */
  name: string;
  /** What one operation is, for the table. */
  what: string;
  /** Unit of the reported rate. */
  unit: 'Mpps' | 'M/s' | 'Gbit/s' | 'datagrams/s' | 'events/s' | 'MB/s';
  /** Runs `n` iterations; returns the number of operations done (e.g. packets) and a value to keep alive. */
  run(n: number): { ops: number; sink: number };
  /** Bytes per operation, to also report Gbit/s (optional). */
  bytesPerOp?: number;
  /** Target: the median rate must be at least this (in `unit`). */
  target?: number;
  /** Name of a benchmark in the same run this one is compared with (ratio reported). */
  reference?: string;
  /** Target on the ratio to `reference` instead of an absolute one: this rate / reference rate ≥ minRatio. */
  minRatio?: number;
}

/**
 * One figure of a one-shot benchmark. Targets are floors by default; `atMost` makes one a ceiling (wall
 * time, memory). A figure without a target is reported for information.
 */
export interface OnceFigure {
  /** Figure name in bench-results.json; by convention the one-shot benchmark's name and a suffix. */
  name: string;
  what: string;
  value: number;
  /** Free text, e.g. `s`, `MiB`, `events`, `events/s`, `%`. */
  unit: string;
  target?: number;
  atMost?: boolean;
}

/**
 * A benchmark too big to repeat (a whole cluster built and simulated end to end, where build time and peak
 * memory are figures too): `run` is called exactly once, in a fresh process of its own (never grouped, so
 * peak memory is its own), and returns its figures. No calibration, warm-up or rounds: each figure is
 * reported with rounds 1 and no spread, which says that it is one measurement of a noisy machine.
 */
export interface OnceBench {
  name: string;
  once: true;
  run(): OnceFigure[];
}

/** A benchmark by name, built only in the process that runs it (see bench/run.ts). */
export interface BenchEntry {
  name: string;
  /** Entries of one group run one after the other in the same process (for a ratio that must not carry between-process noise). Not for one-shot benchmarks. */
  group?: string;
  /**
   * One-shot benchmarks: the names of the figures `run` returns (checked when it runs), so the figure
   * list is known without measuring (bench/registry.ts). A `Bench` writes one figure, its own name.
   */
  figures?: readonly string[];
  make(): Bench | OnceBench;
}

export function isOnce(b: Bench | OnceBench): b is OnceBench {
  return 'once' in b && b.once === true;
}

/** Runs a one-shot benchmark; each of its figures as a `Figure` (rounds 1, min = max = value, no ns/op). */
export function measureOnce(b: OnceBench): Array<{ name: string; what: string; figure: Figure }> {
  return b.run().map((f) => {
    const figure: Figure = { value: f.value, unit: f.unit, min: f.value, max: f.value, rsdPercent: 0, rounds: 1, nsPerOp: 0 };
    if (f.target !== undefined) {
      figure.target = f.target;
      if (f.atMost === true) figure.atMost = true;
      figure.meetsTarget = f.atMost === true ? f.value <= f.target : f.value >= f.target;
    }
    return { name: f.name, what: f.what, figure };
  });
}

export interface Figure {
  value: number;
  unit: string;
  min: number;
  max: number;
  rsdPercent: number;
  rounds: number;
  nsPerOp: number;
  target?: number;
  /** The target is a ceiling (one-shot figures such as wall time or peak memory). */
  atMost?: boolean;
  meetsTarget?: boolean;
  ratioToReference?: { reference: string; ratio: number };
  /** The floor on `ratioToReference.ratio`, when the target is relative. */
  minRatio?: number;
}

const scale: Record<Bench['unit'], number> = { Mpps: 1e-6, 'M/s': 1e-6, 'Gbit/s': 1e-9, 'datagrams/s': 1, 'events/s': 1, 'MB/s': 1e-6 };

let keepAlive = 0;

/** Grows n until one call takes about roundMs / 4, then sizes a round of about roundMs from it. */
function calibrate(b: Bench, roundMs: number): number {
  let n = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    keepAlive += b.run(n).sink;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms > roundMs / 4 || n > 1 << 30) return Math.max(1, Math.round((n * roundMs) / Math.max(ms, 0.001)));
    n *= 4;
  }
}

/**
 * Measures several benchmarks with their rounds interleaved (round 1 of each, then round 2 of each, …),
 * so that a noisy stretch of a shared machine falls on all of them alike: for figures compared by ratio.
 */
export function measureInterleaved(bs: readonly Bench[], rounds = 7, roundMs = 250): Figure[] {
  const ns = bs.map((b) => calibrate(b, roundMs));
  bs.forEach((b, i) => {
    keepAlive += b.run(ns[i]!).sink;
  }); // warm-up round at full size
  const rates: number[][] = bs.map(() => []);
  const nsPerOpSum = bs.map(() => 0);
  for (let r = 0; r < rounds; r++) {
    bs.forEach((b, i) => {
      const t0 = process.hrtime.bigint();
      const { ops, sink } = b.run(ns[i]!);
      const t = Number(process.hrtime.bigint() - t0);
      keepAlive += sink;
      const perSec = (ops / t) * 1e9;
      rates[i]!.push(
        b.unit === 'Gbit/s'
          ? perSec * (b.bytesPerOp ?? 0) * 8 * scale['Gbit/s']
          : b.unit === 'MB/s'
            ? perSec * (b.bytesPerOp ?? 0) * 1e-6
            : perSec * scale[b.unit],
      );
      nsPerOpSum[i] = nsPerOpSum[i]! + t / ops;
    });
  }
  return bs.map((b, i) => {
    const rs = rates[i]!.sort((a, c) => a - c);
    const mean = rs.reduce((a, x) => a + x, 0) / rs.length;
    const sd = Math.sqrt(rs.reduce((a, x) => a + (x - mean) ** 2, 0) / rs.length);
    const fig: Figure = {
      value: rs[rs.length >> 1]!,
      unit: b.unit,
      min: rs[0]!,
      max: rs[rs.length - 1]!,
      rsdPercent: (100 * sd) / mean,
      rounds,
      nsPerOp: nsPerOpSum[i]! / rounds,
    };
    if (b.target !== undefined) {
      fig.target = b.target;
      fig.meetsTarget = fig.value >= b.target;
    }
    return fig;
  });
}

/** Keeps benchmark results observable so the JIT cannot drop the measured work. */
export function sinkValue(): number {
  return keepAlive;
}
