/**
 * `seine report FILE.json --html FILE`: the HTML page of a run saved with `seine run --json` (or a live
 * run's report, drawn without topology or series), with `seine trace --json` results added by `--trace`.
 *
 * A saved report is input like any other: it is checked key by key before anything is drawn, and a
 * mistake names the file and the key (`run.json: flows[2].deliveredRatio: expected a number, got "x"`).
 */
import { readFileSync } from 'node:fs';
import type { RunRecord } from '../sim/record.js';
import type { TraceResult } from '../sim/tracer.js';
import { FileWriteError, writeFileAtomic } from '../live/fs.js';
import { renderHtml } from './html.js';
import { type Args, CliError, type Command, helpHint } from './command.js';

export const REPORT: Command = {
  name: 'report',
  operands: '<run.json>',
  summary: 'The HTML page of a run saved with seine run --json, with seine trace --json results drawn in it.',
  about: `Writes the HTML page of a run saved with seine run --json: the topology, the per-flow table, the time
series, drops, expectations, and each trace given (seine trace --json output) as a sequence diagram.
The page is one file with everything inline (it fetches nothing).`,
  options: {
    html: { type: 'string', arg: 'FILE', required: true, help: 'where to write the page' },
    trace: { type: 'string', arg: 'FILE', multiple: true, help: 'a seine trace --json result to draw with the run (repeatable)' },
  },
  footer: 'exit status: 0 written, 2 a file is missing, damaged or not a report, or FILE cannot be written',
  run: (a) => reportCommand(a),
};

/** A value at `key` of `file` that is not what a report holds. */
class Bad extends Error {}

type Json = unknown;

/** Checks a parsed JSON value one key at a time; each check names the key it failed on. */
class Check {
  constructor(readonly file: string) {}
  fail(key: string, want: string, v: Json): never {
    const got = v === undefined ? 'nothing' : JSON.stringify(v).slice(0, 60);
    throw new Bad(`${this.file}: ${key === '' ? 'the top level' : key}: expected ${want}, got ${got}`);
  }
  obj(v: Json, key: string): Record<string, Json> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'an object', v);
    return v as Record<string, Json>;
  }
  arr(v: Json, key: string): Json[] {
    if (!Array.isArray(v)) this.fail(key, 'a list', v);
    return v;
  }
  num(v: Json, key: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number', v);
    return v;
  }
  numOrNull(v: Json, key: string): number | null {
    return v === null ? null : this.num(v, key);
  }
  str(v: Json, key: string): string {
    if (typeof v !== 'string') this.fail(key, 'a string', v);
    return v;
  }
  strOrNull(v: Json, key: string): string | null {
    return v === null ? null : this.str(v, key);
  }
  bool(v: Json, key: string): boolean {
    if (typeof v !== 'boolean') this.fail(key, 'true or false', v);
    return v;
  }
  oneOf<T extends string | number>(v: Json, key: string, allowed: readonly T[]): T {
    if (!allowed.includes(v as T)) this.fail(key, `one of ${allowed.join(', ')}`, v);
    return v as T;
  }
  /** A list of numbers (nulls allowed when `nulls`) of length `len`. */
  series(v: Json, key: string, len: number, nulls = false): void {
    const a = this.arr(v, key);
    if (a.length !== len) this.fail(key, `${len} values (one per sample time)`, `${a.length} values`);
    a.forEach((x, i) => (nulls && x === null ? null : this.num(x, `${key}[${i}]`)));
  }
  /** name → number, nested `depth` levels. */
  counts(v: Json, key: string, depth: number): void {
    for (const [k, x] of Object.entries(this.obj(v, key))) {
      if (depth > 1) this.counts(x, `${key}.${k}`, depth - 1);
      else this.num(x, `${key}.${k}`);
    }
  }
}

function checkTrace(c: Check, v: Json, key: string): void {
  const t = c.obj(v, key);
  for (const k of ['scenario', 'from', 'to', 'src', 'dst'] as const) c.str(t[k], `${key}.${k}`);
  c.oneOf(t.proto, `${key}.proto`, ['icmp', 'udp', 'tcp']);
  c.oneOf(t.family, `${key}.family`, [4, 6]);
  c.num(t.size, `${key}.size`);
  c.oneOf(t.outcome, `${key}.outcome`, ['delivered', 'dropped', 'lost', 'not-sent']);
  c.strOrNull(t.reason, `${key}.reason`);
  c.arr(t.steps, `${key}.steps`).forEach((s, i) => {
    const k = `${key}.steps[${i}]`;
    const o = c.obj(s, k);
    for (const f of ['node', 'stage', 'port', 'action'] as const) c.str(o[f], `${k}.${f}`);
    c.num(o.t, `${k}.t`);
    c.obj(o.detail, `${k}.detail`);
  });
}

function checkTopology(c: Check, v: Json): void {
  const t = c.obj(v, 'topology');
  c.str(t.description, 'topology.description');
  c.str(t.lesson, 'topology.lesson');
  const tun = c.obj(t.tunnel, 'topology.tunnel');
  c.str(tun.type, 'topology.tunnel.type');
  c.str(tun.mode, 'topology.tunnel.mode');
  c.num(tun.vni, 'topology.tunnel.vni');
  c.num(tun.optionBytes, 'topology.tunnel.optionBytes');
  if (t.encryption !== null) {
    const e = c.obj(t.encryption, 'topology.encryption');
    c.str(e.cipher, 'topology.encryption.cipher');
    c.bool(e.udpEncap, 'topology.encryption.udpEncap');
  }
  const u = c.obj(t.underlay, 'topology.underlay');
  c.oneOf(u.family, 'topology.underlay.family', [4, 6]);
  for (const k of ['mtu', 'latencyNs', 'jitterNs', 'loss'] as const) c.num(u[k], `topology.underlay.${k}`);
  c.numOrNull(u.bandwidthBps, 'topology.underlay.bandwidthBps');
  c.arr(t.nodes, 'topology.nodes').forEach((n, i) => {
    const k = `topology.nodes[${i}]`;
    const o = c.obj(n, k);
    c.str(o.name, `${k}.name`);
    c.str(o.underlayIp, `${k}.underlayIp`);
    c.strOrNull(o.podCIDR4, `${k}.podCIDR4`);
    c.strOrNull(o.podCIDR6, `${k}.podCIDR6`);
    c.arr(o.pods, `${k}.pods`).forEach((p, j) => {
      const pk = `${k}.pods[${j}]`;
      const po = c.obj(p, pk);
      c.str(po.name, `${pk}.name`);
      c.strOrNull(po.ip4, `${pk}.ip4`);
      c.strOrNull(po.ip6, `${pk}.ip6`);
      c.num(po.mtu, `${pk}.mtu`);
      c.numOrNull(po.vlan, `${pk}.vlan`);
    });
  });
  c.arr(t.links, 'topology.links').forEach((l, i) => {
    const k = `topology.links[${i}]`;
    const o = c.obj(l, k);
    c.str(o.a, `${k}.a`);
    c.str(o.b, `${k}.b`);
    for (const f of ['mtu', 'latencyNs', 'bandwidthBps', 'loss'] as const) c.numOrNull(o[f], `${k}.${f}`);
  });
  c.arr(t.faults, 'topology.faults').forEach((f, i) => {
    const k = `topology.faults[${i}]`;
    const o = c.obj(f, k);
    c.num(o.atNs, `${k}.atNs`);
    c.str(o.target, `${k}.target`);
    c.oneOf(o.action, `${k}.action`, ['down', 'up']);
    c.numOrNull(o.forNs, `${k}.forNs`);
  });
}

function checkSeries(c: Check, v: Json): void {
  const s = c.obj(v, 'series');
  c.num(s.intervalNs, 'series.intervalNs');
  const t = c.arr(s.t, 'series.t');
  const n = t.length;
  c.series(t, 'series.t', n);
  c.num(s.flowsOmitted, 'series.flowsOmitted');
  c.arr(s.flows, 'series.flows').forEach((f, i) => {
    const k = `series.flows[${i}]`;
    const o = c.obj(f, k);
    c.str(o.name, `${k}.name`);
    c.oneOf(o.type, `${k}.type`, ['ping', 'udp', 'tcp']);
    c.series(o.goodputBps, `${k}.goodputBps`, n);
    c.series(o.latencyNs, `${k}.latencyNs`, n, true);
    if (o.cwndBytes !== undefined) c.series(o.cwndBytes, `${k}.cwndBytes`, n);
  });
  const tot = c.obj(s.totals, 'series.totals');
  c.series(tot.podDeliveredBps, 'series.totals.podDeliveredBps', n);
  c.series(tot.underlayBps, 'series.totals.underlayBps', n);
  for (const [k, x] of Object.entries(c.obj(s.drops, 'series.drops'))) c.series(x, `series.drops.${k}`, n);
}

/** A saved run report, checked for every key the page reads; `file` names it in errors. */
export function parseRunRecord(text: string, file: string): RunRecord {
  const c = new Check(file);
  let v: Json;
  try {
    v = JSON.parse(text);
  } catch (e: unknown) {
    throw new Bad(`${file}: not JSON (${(e as Error).message}); expected the output of seine run --json`);
  }
  const r = c.obj(v, '');
  c.str(r.scenario, 'scenario');
  for (const k of ['seed', 'durationNs', 'events', 'podMtu', 'innerBytes', 'outerBytes'] as const) c.num(r[k], k);
  c.numOrNull(r.wireOverheadPct, 'wireOverheadPct');
  c.bool(r.ok, 'ok');
  c.arr(r.flows, 'flows').forEach((f, i) => {
    const k = `flows[${i}]`;
    const o = c.obj(f, k);
    for (const s of ['name', 'from', 'to'] as const) c.str(o[s], `${k}.${s}`);
    c.oneOf(o.type, `${k}.type`, ['ping', 'udp', 'tcp']);
    for (const s of ['planned', 'sent', 'delivered', 'lost', 'deliveredRatio', 'tooBig', 'throughputBps', 'goodputBps'] as const) c.num(o[s], `${k}.${s}`);
    for (const s of ['latencyP50Ns', 'latencyP99Ns'] as const) c.numOrNull(o[s], `${k}.${s}`);
    c.arr(o.icmpSeen, `${k}.icmpSeen`).forEach((x, j) => c.str(x, `${k}.icmpSeen[${j}]`));
    if (o.tcp !== undefined) {
      const t = c.obj(o.tcp, `${k}.tcp`);
      c.str(t.state, `${k}.tcp.state`);
      c.num(t.mss, `${k}.tcp.mss`);
    }
  });
  c.counts(r.drops, 'drops', 3);
  const u = c.obj(r.underlay, 'underlay');
  c.arr(u.paths, 'underlay.paths').forEach((p, i) => {
    const k = `underlay.paths[${i}]`;
    const o = c.obj(p, k);
    c.str(o.a, `${k}.a`);
    c.str(o.b, `${k}.b`);
    for (const s of ['sent', 'delivered'] as const) {
      const a = c.arr(o[s], `${k}.${s}`);
      if (a.length !== 2) c.fail(`${k}.${s}`, 'two counts (a → b, b → a)', a);
      a.forEach((x, j) => c.num(x, `${k}.${s}[${j}]`));
    }
    c.counts(o.dropped, `${k}.dropped`, 1);
  });
  c.arr(r.expectations, 'expectations').forEach((e, i) => {
    const k = `expectations[${i}]`;
    const o = c.obj(e, k);
    for (const s of ['what', 'expected', 'actual'] as const) c.str(o[s], `${k}.${s}`);
    c.bool(o.ok, `${k}.ok`);
  });
  if (r.live !== undefined) {
    const l = c.obj(r.live, 'live');
    c.str(l.lab, 'live.lab');
    c.num(l.wallMs, 'live.wallMs');
  }
  if (r.skipped !== undefined)
    c.arr(r.skipped, 'skipped').forEach((s, i) => {
      const o = c.obj(s, `skipped[${i}]`);
      c.str(o.part, `skipped[${i}].part`);
      c.str(o.reason, `skipped[${i}].reason`);
    });
  if (r.topology !== undefined) checkTopology(c, r.topology);
  if (r.series !== undefined) checkSeries(c, r.series);
  if (r.traces !== undefined) c.arr(r.traces, 'traces').forEach((t, i) => checkTrace(c, t, `traces[${i}]`));
  return r as unknown as RunRecord;
}

/** A `seine trace --json` result, checked. */
function parseTrace(text: string, file: string): TraceResult {
  let v: Json;
  try {
    v = JSON.parse(text);
  } catch (e: unknown) {
    throw new Bad(`${file}: not JSON (${(e as Error).message}); expected the output of seine trace --json`);
  }
  checkTrace(new Check(file), v, 'trace');
  return v as TraceResult;
}

function readInput(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e: unknown) {
    const err = e as NodeJS.ErrnoException;
    throw new CliError(`cannot read ${what} '${path}': ${err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message}`);
  }
}

/** Trace files given with `--trace`, checked; a mistake is a CliError naming the file and key. */
export function loadTraces(paths: readonly string[]): TraceResult[] {
  return paths.map((p) => {
    try {
      return parseTrace(readInput(p, 'trace'), p);
    } catch (e: unknown) {
      if (e instanceof Bad) throw new CliError(e.message);
      throw e;
    }
  });
}

/**
 * Writes the page whole or not at all: into a temporary file beside `path`, then renamed, so a failed
 * write never leaves a page that looks complete.
 */
export function writeHtml(path: string, r: RunRecord): void {
  const html = renderHtml(r);
  try {
    // No fsync: a page lost to a power cut is drawn again from its run's JSON.
    writeFileAtomic(path, html);
  } catch (e: unknown) {
    if (e instanceof FileWriteError) throw new CliError(`cannot write the HTML report '${path}': ${e.why}`);
    throw e;
  }
}

function reportCommand(a: Args): number {
  if (a.operands.length === 0) throw new CliError(`report: which report? usage: seine report <run.json> --html FILE (${helpHint('report')})`);
  if (a.operands.length > 1) throw new CliError(`report: one report at a time (got '${a.operands[0]}' and '${a.operands[1]}')`);
  const path = a.operands[0]!;
  const html = a.req('html');
  if (html === '') throw new CliError(`report: --html expects a FILE, got '' (${helpHint('report')})`);
  const traces = a.all('trace');
  let r: RunRecord;
  try {
    r = parseRunRecord(readInput(path, 'report'), path);
  } catch (e: unknown) {
    if (e instanceof Bad) throw new CliError(e.message);
    throw e;
  }
  const extra = loadTraces(traces);
  if (extra.length > 0) r = { ...r, traces: [...(r.traces ?? []), ...extra] };
  writeHtml(html, r);
  return 0;
}
