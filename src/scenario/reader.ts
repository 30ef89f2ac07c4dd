/**
 * Reading a scenario's YAML nodes with their positions, and the error every refusal becomes: a
 * `ScenarioError` naming the file, line, column and key, what was expected, what was found and a
 * did-you-mean. The loader's sections (scenario.ts and its neighbours) read the document only through
 * `Reader` and `Obj`, so every refusal has the same form.
 */
import { num, SCENARIO_LIMITS } from './limits.js';
import type { CmpOp, Comparison } from './types.js';
import { isAlias, isMap, isPair, isScalar, isSeq, type LineCounter, type YamlNode } from './yaml.js';

// ---------------------------------------------------------------------------------------------------
// Errors

/** A scenario that cannot be run, with where and why. */
export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly column: number,
    /** A path such as `nodes[1].pods[0].ip`; empty for the document as a whole. */
    readonly key: string,
    readonly expected: string,
    readonly got: string,
    readonly hint: string | null = null,
  ) {
    // A last guard: `describe` quotes values as excerpts already; names and paths may be long too.
    super(
      `${excerpt(file, 400)}:${line}:${column}: ${key === '' ? '' : excerpt(key, 400) + ': '}expected ${excerpt(expected, 400)}, got ${excerpt(got, 400)}${hint === null ? '' : ` (${excerpt(hint, 400)})`}`,
    );
    this.name = 'ScenarioError';
  }
}

/** The longest text an error quotes from the file (a key, a value): longer ones are cut, with their length said. */
export const EXCERPT_CHARS = 120;

/** `s`, or its first `EXCERPT_CHARS` characters and how long it was: an error line stays one line. */
export function excerpt(s: string, max = EXCERPT_CHARS): string {
  if (s.length <= max) return s;
  return `${s.slice(0, max)}… (${num(s.length)} characters)`;
}

/** Levenshtein distance (small strings only). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest candidate within distance 2 (case differences count 0.5), or null. */
export function didYouMean(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = Math.min(editDistance(word, c), editDistance(word.toLowerCase(), c.toLowerCase()) + 0.5);
    if (d <= 2 && d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

// ---------------------------------------------------------------------------------------------------
// Reading YAML nodes with their positions

export type N = YamlNode | null;

/** A value in the document and its key path. */
export interface V {
  node: N;
  path: string;
  /** Where to point when `node` is null (a key without a value): its key, or the enclosing map. */
  at: number;
}

export class Reader {
  /**
   * Each alias's anchored node, found in one walk of the document when the first alias is met (yaml's
   * `Alias.resolve(doc)` walks the whole document per call: quadratic in aliases); null until then, so a
   * file without aliases is not walked at all.
   */
  private targets: Map<unknown, YamlNode> | null = null;
  /** YAML nodes read so far (`SCENARIO_LIMITS.yamlNodes`). */
  private read = 0;

  constructor(
    readonly file: string,
    readonly lc: LineCounter,
    /** The document's root (YAML's `doc.contents`, or what json.ts parsed). */
    readonly contents: unknown,
  ) {}

  private findTargets(): Map<unknown, YamlNode> {
    // Document order, a collection before its contents, as YAML resolves an alias: to the last node
    // before it with that anchor. An explicit stack: a deeply nested file must not overflow ours.
    const targets = new Map<unknown, YamlNode>();
    const anchors = new Map<string, YamlNode>();
    const stack: unknown[] = [this.contents];
    while (stack.length > 0) {
      const n = stack.pop();
      if (n === null || n === undefined) continue;
      if (isAlias(n)) {
        const t = anchors.get(n.source);
        if (t !== undefined) targets.set(n, t);
        continue;
      }
      if (isPair(n)) {
        stack.push(n.value, n.key);
        continue;
      }
      const node = n as YamlNode;
      if (node.anchor !== undefined) anchors.set(node.anchor, node);
      if (isMap(node) || isSeq(node)) for (let i = node.items.length - 1; i >= 0; i--) stack.push(node.items[i]);
    }
    return targets;
  }

  /** Counts `n` more nodes read at `v`; past the limit, the file expands to too much (aliases, usually). */
  spend(v: V, n: number): void {
    this.read += n;
    if (this.read > SCENARIO_LIMITS.yamlNodes)
      this.fail(
        v,
        `a file that expands to at most ${num(SCENARIO_LIMITS.yamlNodes)} YAML nodes (an alias counts its anchor's nodes each time it is used)`,
        `more, by here`,
      );
  }

  pos(v: V): { line: number; col: number } {
    const off = v.node?.range?.[0] ?? v.at;
    return this.lc.linePos(off);
  }

  fail(v: V, expected: string, got: string = describe(v.node), hint: string | null = null): never {
    const p = this.pos(v);
    throw new ScenarioError(this.file, p.line, p.col, v.path, expected, got, hint);
  }

  resolve(n: unknown): N {
    if (n === null || n === undefined) return null;
    if (isAlias(n)) return (this.targets ??= this.findTargets()).get(n) ?? null;
    return n as YamlNode;
  }

  /** A mapping's entries by key, refusing keys not in `allowed`. */
  /** (`allowed` may be a set: a node's name among a thousand is looked up, not searched for.) */
  map(
    v: V,
    allowed: readonly string[] | ReadonlySet<string>,
    what = 'a mapping',
    keysWhat: string | (() => string) = () => `one of the keys ${[...allowed].join(', ')}`,
  ): Obj {
    if (!isMap(v.node)) this.fail(v, what);
    this.spend(v, 1 + 2 * v.node.items.length);
    const entries = new Map<string, V>();
    for (const pair of v.node.items) {
      const k = this.resolve(pair.key);
      const kv: V = { node: k, path: v.path, at: k?.range?.[0] ?? v.at };
      if (!isScalar(k) || typeof k.value !== 'string') this.fail(kv, 'a string key', describe(k));
      const name = k.value;
      const path = v.path === '' ? name : `${v.path}.${name}`;
      if (!('has' in allowed ? allowed.has(name) : allowed.includes(name))) {
        const s = didYouMean(name, [...allowed]);
        const shown = excerpt(name);
        this.fail(
          { node: k, path: v.path === '' ? shown : `${v.path}.${shown}`, at: kv.at },
          typeof keysWhat === 'string' ? keysWhat : keysWhat(),
          JSON.stringify(shown),
          s === null ? null : `did you mean "${s}"?`,
        );
      }
      entries.set(name, { node: this.resolve(pair.value), path, at: k.range?.[0] ?? v.at });
    }
    return new Obj(this, v, entries);
  }

  list(v: V, what = 'a list'): V[] {
    if (v.node === null) return [];
    if (!isSeq(v.node)) this.fail(v, what);
    this.spend(v, 1 + v.node.items.length);
    return v.node.items.map((n, i) => ({ node: this.resolve(n), path: `${v.path}[${i}]`, at: v.node?.range?.[0] ?? v.at }));
  }

  /** A scalar or a list of scalars, as a list. */
  oneOrList(v: V): V[] {
    return isSeq(v.node) ? this.list(v) : [v];
  }

  scalar(v: V): unknown {
    return isScalar(v.node) ? v.node.value : undefined;
  }

  str(v: V, what = 'a string'): string {
    const x = this.scalar(v);
    if (typeof x !== 'string' || x === '') this.fail(v, what);
    return x;
  }

  text(v: V): string {
    const x = this.scalar(v);
    if (typeof x !== 'string') this.fail(v, 'text');
    return x;
  }

  bool(v: V): boolean {
    const x = this.scalar(v);
    if (typeof x !== 'boolean') this.fail(v, 'true or false');
    return x;
  }

  int(v: V, min: number, max: number, what = `an integer in ${min}-${max}`): number {
    const x = this.scalar(v);
    if (typeof x !== 'number' || !Number.isInteger(x) || x < min || x > max) this.fail(v, what);
    return x;
  }

  oneOf<T extends string | number>(v: V, choices: readonly T[]): T {
    const x = this.scalar(v);
    if ((choices as readonly unknown[]).includes(x)) return x as T;
    const s = typeof x === 'string' ? didYouMean(x, choices.map(String)) : null;
    this.fail(v, `one of ${choices.join(', ')}`, describe(v.node), s === null ? null : `did you mean "${s}"?`);
  }

  duration(v: V): number {
    const ns = durationOf(this.scalar(v));
    if (ns === null) this.fail(v, 'a duration with a unit (ns, us, ms, s), e.g. 100ms');
    if (!Number.isSafeInteger(ns)) this.fail(v, 'a duration below 2^53 ns');
    return ns;
  }

  bandwidth(v: V): number {
    const x = this.scalar(v);
    const m = typeof x === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(bit|bps)(?:\/s)?\s*$/.exec(x) : null;
    if (m === null) this.fail(v, 'a bandwidth such as 10Gbit or 1Mbit');
    const bps = Math.round(Number(m[1]) * BANDWIDTH_UNITS[m[2]!.toLowerCase()]!);
    if (bps <= 0) this.fail(v, 'a bandwidth above 0');
    return bps;
  }

  /** A probability: 0-1, or a percentage string. */
  fraction(v: V, what = 'a fraction 0-1 or a percentage such as 1%'): number {
    const f = fractionOf(this.scalar(v));
    if (f === null) this.fail(v, what);
    return f;
  }

  /** A key of a mapping that may itself be absent, as a duration, a bandwidth or a fraction; null when not given. */
  optDuration(ob: Obj | null, k: string): number | null {
    const v = ob?.get(k);
    return v === undefined ? null : this.duration(v);
  }

  optBandwidth(ob: Obj | null, k: string): number | null {
    const v = ob?.get(k);
    return v === undefined ? null : this.bandwidth(v);
  }

  optFraction(ob: Obj | null, k: string): number | null {
    const v = ob?.get(k);
    return v === undefined ? null : this.fraction(v);
  }

  /** A comparison `>= 99%`, `< 2ms`, `>0` or a bare value (==). */
  cmp(v: V, kind: 'ratio' | 'duration' | 'count'): Comparison {
    const what =
      kind === 'ratio' ? 'a comparison such as ">= 99%"' : kind === 'duration' ? 'a comparison such as "< 2ms"' : 'a count or a comparison such as ">0"';
    const x = this.scalar(v);
    if (kind === 'ratio' && typeof x === 'number') {
      const f = fractionOf(x);
      if (f === null) this.fail(v, what);
      return { op: '==', value: f };
    }
    if (kind === 'count' && typeof x === 'number') {
      if (!Number.isInteger(x) || x < 0) this.fail(v, what);
      return { op: '==', value: x };
    }
    const m = typeof x === 'string' ? /^\s*(>=|<=|==|>|<|=)?\s*(.+?)\s*$/.exec(x) : null;
    if (m === null) this.fail(v, what);
    const op = (m[1] === undefined || m[1] === '=' ? '==' : m[1]) as CmpOp;
    const raw = m[2]!;
    const value = kind === 'ratio' ? fractionOf(raw) : kind === 'duration' ? durationOf(raw) : /^\d+$/.test(raw) ? Number(raw) : null;
    if (value === null) this.fail(v, what);
    return { op, value };
  }
}

/** A duration value (`0` or a number with a unit) in ns, or null. */
/** A duration such as `100ms` or `1.5s` (units ns, us, µs, ms, s) in ns, or null. */
export function durationOf(x: unknown): number | null {
  if (x === 0) return 0;
  const m = typeof x === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s)\s*$/.exec(x) : null;
  return m === null ? null : Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}

/** A fraction 0-1 (a number or a percentage string), or null. */
export function fractionOf(x: unknown): number | null {
  let f = NaN;
  if (typeof x === 'number') f = x;
  else if (typeof x === 'string') {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(x);
    if (m !== null) f = Number(m[1]) / 100;
  }
  return f >= 0 && f <= 1 ? f : null;
}

/** A duration in the largest unit that keeps it an integer: `1500000ns` → `1500us`. */
export function fmtDuration(ns: number): string {
  if (ns === 0) return '0s';
  if (ns % 1e9 === 0) return `${ns / 1e9}s`;
  if (ns % 1e6 === 0) return `${ns / 1e6}ms`;
  if (ns % 1e3 === 0) return `${ns / 1e3}us`;
  return `${ns}ns`;
}

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9 };
const BANDWIDTH_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };

export class Obj {
  constructor(
    private readonly r: Reader,
    readonly self: V,
    private readonly entries: Map<string, V>,
  ) {}
  has(k: string): boolean {
    return this.entries.has(k);
  }
  /** The keys given, in file order. */
  keys(): IterableIterator<string> {
    return this.entries.keys();
  }
  get(k: string): V | undefined {
    const v = this.entries.get(k);
    return v === undefined || v.node === null ? undefined : v;
  }
  /** A required key: missing, the error points at the mapping. */
  req(k: string, what: string): V {
    const v = this.get(k);
    if (v === undefined) {
      const e = this.entries.get(k);
      const path = this.self.path === '' ? k : `${this.self.path}.${k}`;
      this.r.fail({ node: e === undefined ? this.self.node : null, path, at: e?.at ?? this.self.at }, `${what} (required)`, 'nothing');
    }
    return v;
  }
}

export function describe(n: N): string {
  if (n === null) return 'nothing';
  if (isMap(n)) return 'a mapping';
  if (isSeq(n)) return 'a list';
  if (isScalar(n)) {
    const x = n.value;
    if (x === null) return 'nothing';
    if (typeof x === 'string') return quotedExcerpt(x);
    return String(x);
  }
  return 'something else';
}

/** `s` in JSON quotes, cut after its escapes so the quote stays at most `EXCERPT_CHARS` (control bytes escape to six). */
function quotedExcerpt(s: string): string {
  const q = JSON.stringify(s);
  if (q.length <= EXCERPT_CHARS) return q;
  let out = '';
  for (const ch of s) {
    const e = JSON.stringify(ch).slice(1, -1);
    if (out.length + e.length > EXCERPT_CHARS) break;
    out += e;
  }
  return `"${out}… (${num(s.length)} characters)"`;
}
