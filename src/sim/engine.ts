/**
 * The discrete-event engine of the simulator: a virtual clock in nanoseconds, an event heap and a seeded
 * PRNG. Deterministic: events at the same instant run in the order they were scheduled, and nothing here
 * reads the wall clock or `Math.random()`, so one seed gives one run.
 *
 * An event is (time, task, arg): `task.run(arg)` is called at `time`. Tasks are long-lived objects (a link
 * end, a traffic generator) and `arg` a small integer (a slot in the task's own table), so scheduling
 * allocates nothing once the heap has grown to the run's size.
 */

/** Something that runs at a scheduled instant; `arg` is what was given to `schedule`. */
export interface SimTask {
  run(arg: number): void;
}

/**
 * A seeded PRNG: xoshiro128** (Blackman and Vigna), seeded through splitmix32 so that nearby seeds give
 * unrelated streams. Not for cryptography.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = NaN;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`seed ${seed} is not an integer`);
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n), n ≤ 2^32, without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 4294967296) throw new RangeError(`rng.int: ${n} is not an integer in 1-2^32`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  /** Standard normal (Box–Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = NaN;
      return s;
    }
    let u = this.float();
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The simulator: clock, event heap, PRNG. */
export class Simulator {
  /** Virtual time in ns: the time of the event being run (or of the last one). */
  now = 0;
  readonly rng: Rng;
  /** Events run so far. */
  events = 0;
  private times: Float64Array = new Float64Array(1024);
  private seqs: Float64Array = new Float64Array(1024);
  private args: Float64Array = new Float64Array(1024);
  private tasks: Array<SimTask | null> = new Array<SimTask | null>(1024).fill(null);
  private size = 0;
  private seq = 0;
  /** A clock over this simulator's time, for the datapath (`Bridge({ clock })`). */
  readonly clock = { now: (): number => this.now };

  constructor(readonly seed = 1) {
    this.rng = new Rng(seed);
  }

  /** Events waiting. */
  get pending(): number {
    return this.size;
  }

  /** Runs `task.run(arg)` at time `at` (not before now). */
  schedule(at: number, task: SimTask, arg = 0): void {
    if (!(at >= this.now)) throw new RangeError(`simulator: event at ${at} ns is before now (${this.now} ns)`);
    if (this.size === this.times.length) this.grow();
    // Sift up.
    let i = this.size++;
    const s = this.seq++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.times[parent]! < at || (this.times[parent] === at && this.seqs[parent]! < s)) break;
      this.times[i] = this.times[parent]!;
      this.seqs[i] = this.seqs[parent]!;
      this.args[i] = this.args[parent]!;
      this.tasks[i] = this.tasks[parent]!;
      i = parent;
    }
    this.times[i] = at;
    this.seqs[i] = s;
    this.args[i] = arg;
    this.tasks[i] = task;
  }

  /** `schedule(now + delay, …)`. */
  after(delay: number, task: SimTask, arg = 0): void {
    this.schedule(this.now + delay, task, arg);
  }

  /** Runs events until none is left or the next is after `until` (then the clock stops at `until`). Returns events run. */
  run(until = Infinity): number {
    let n = 0;
    while (this.size > 0 && this.times[0]! <= until) {
      const t = this.times[0]!;
      const task = this.tasks[0]!;
      const arg = this.args[0]!;
      this.pop();
      this.now = t;
      n++;
      task.run(arg);
    }
    if (until !== Infinity && this.now < until) this.now = until;
    this.events += n;
    return n;
  }

  private pop(): void {
    const last = --this.size;
    const t = this.times[last]!;
    const s = this.seqs[last]!;
    const a = this.args[last]!;
    const k = this.tasks[last]!;
    this.tasks[last] = null;
    if (last === 0) return;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      const r = c + 1;
      if (r < last && (this.times[r]! < this.times[c]! || (this.times[r] === this.times[c] && this.seqs[r]! < this.seqs[c]!))) c = r;
      if (t < this.times[c]! || (t === this.times[c] && s < this.seqs[c]!)) break;
      this.times[i] = this.times[c]!;
      this.seqs[i] = this.seqs[c]!;
      this.args[i] = this.args[c]!;
      this.tasks[i] = this.tasks[c]!;
      i = c;
    }
    this.times[i] = t;
    this.seqs[i] = s;
    this.args[i] = a;
    this.tasks[i] = k;
  }

  private grow(): void {
    const n = this.times.length * 2;
    const g = (a: Float64Array): Float64Array => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.times = g(this.times);
    this.seqs = g(this.seqs);
    this.args = g(this.args);
    this.tasks = this.tasks.concat(new Array<SimTask | null>(n - this.tasks.length).fill(null));
  }
}
