/**
 * Latencies and round-trip times of simulated flows in bounded memory, and the percentiles reports quote.
 */
import { Rng } from './engine.js';

/** Nearest-rank percentile of sorted values (0 when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k]!;
}

/** The median of `xs` (the mean of the middle two for an even count; NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * How many latencies a flow keeps: p50 and p99 are exact for flows of up to this many packets (512 KiB of
 * samples at most per flow, where keeping every one of a billion packets' would take 8 GB).
 */
export const LATENCY_SAMPLES = 1 << 16;

/**
 * Latencies in bounded memory (issue 18): every value while there are at most `capacity`, so percentiles
 * are exact up to that many; beyond, a uniform sample of them all of that size (a reservoir, Vitter's
 * algorithm R), while the count, sum, minimum and maximum stay exact. The reservoir draws from a PRNG of
 * its own, seeded from the run's seed and the flow: one seed still gives one run, and the simulator's own
 * stream (jitter, loss, IMIX) is drawn exactly as before, so no other figure of a run changes.
 */
export class LatencySample {
  /** The samples: in arrival order while `count <= capacity`. */
  readonly values: number[] = [];
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  private rng: Rng | null = null;

  constructor(
    private readonly seed: number,
    readonly capacity = LATENCY_SAMPLES,
  ) {}

  add(x: number): void {
    this.count++;
    this.sum += x;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    if (this.values.length < this.capacity) {
      this.values.push(x);
      return;
    }
    const k = (this.rng ??= new Rng(this.seed)).int(this.count);
    if (k < this.capacity) this.values[k] = x;
  }

  /** Whether the percentiles are exact (every value is kept). */
  get exact(): boolean {
    return this.count <= this.capacity;
  }

  /** The samples in ascending order (a copy). */
  sorted(): number[] {
    return this.values.slice().sort((a, b) => a - b);
  }
}

/** A per-flow seed for a `LatencySample`: the run's seed mixed with the flow's number. */
export function sampleSeed(seed: number, flow: number): number {
  return (seed ^ Math.imul(flow + 1, 0x9e3779b1)) >>> 0;
}
