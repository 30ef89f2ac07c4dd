/**
 * A scenario's report, whichever world ran it: the simulator (`Cluster.report()`, sim/cluster.ts) or a
 * live lab (`seine run --live`, cli/runlive.ts). Both fill the one `Report` shape, check the scenario's
 * expectations with `checkExpectations` and print with `formatReport`; what only one world has is
 * optional (`live`, `skipped`) or nullable, and the text of a simulated report is unchanged by them.
 */
import type { Comparison, ExpectSpec, IcmpKind } from '../scenario/scenario.js';

export interface FlowResult {
  name: string;
  type: 'ping' | 'udp' | 'tcp';
  from: string;
  to: string;
  family: 4 | 6;
  /**
   * Packets the flow meant to send, sent, delivered (ping: answered) and lost (sent, not delivered:
   * what was never sent is not lost). TCP: payload bytes to send, segments sent, bytes acknowledged,
   * retransmissions.
   */
  planned: number;
  sent: number;
  delivered: number;
  lost: number;
  /** delivered / planned. */
  deliveredRatio: number;
  /**
   * A flow the scenario accepted although it cannot finish inside `duration` (count × interval from its
   * start runs past the end): how many of its `planned` packets had their time. The report says so
   * under the table; its rates are over the time the flow actually ran.
   */
  cutShort?: { fit: number; endNs: number };
  /** Not sent: larger than the path MTU with DF (the host knew from ICMP). */
  tooBig: number;
  duplicates: number;
  /** Ping: round trip; UDP: one way. Nanoseconds; null when nothing arrived (or, live, when not measured: `latencyNote`). */
  latencyP50Ns: number | null;
  latencyP99Ns: number | null;
  latencyMaxNs: number | null;
  /** Live only: why the latencies are null although packets arrived (e.g. iperf3 measures jitter, not one-way delay). */
  latencyNote?: string;
  /** Live UDP only: iperf3's jitter (RFC 3550 interarrival jitter), nanoseconds. */
  jitterNs?: number | null;
  /** Offered IP bits per second over the flow's sending time, and the payload delivered over the same time. */
  throughputBps: number;
  goodputBps: number;
  icmpSeen: IcmpKind[];
  /**
   * TCP only: what the sender went through. Live, the kernel's TCP_INFO says less than the simulator's
   * sender: what it does not count is null.
   */
  tcp?: {
    state: string;
    mss: number;
    retransmits: number;
    timeouts: number | null;
    fastRetransmits: number | null;
    pmtuReductions: number | null;
    completedNs: number | null;
  };
}

export interface PathResult {
  a: string;
  b: string;
  /** Each direction: a → b, then b → a. */
  sent: [number, number];
  delivered: [number, number];
  dropped: Record<string, number>;
}

export interface ExpectResult {
  what: string;
  expected: string;
  actual: string;
  ok: boolean;
}

/** A part of the scenario that did not run (live: a replayed flow, a feature left out), and why. */
export interface SkippedPart {
  part: string;
  reason: string;
}

/** What a live run adds: where it ran, for how long, what it left out, and how its numbers differ. */
export interface LiveInfo {
  lab: string;
  /** Wall-clock milliseconds from the first flow's time 0 to the last tool's end. */
  wallMs: number;
  /** The lab features left out (`--without`, or the scenario's `live.without`). */
  without: string[];
  /** How a number was measured where it differs from the simulator's. */
  notes: string[];
}

export interface Report {
  scenario: string;
  seed: number;
  durationNs: number;
  /** Simulated events (0 live). */
  events: number;
  podMtu: number;
  flows: FlowResult[];
  /** node → port → drop reason → count (ports with drops only; `gw` includes routing decisions). */
  drops: Record<string, Record<string, Record<string, number>>>;
  /** Bytes on the underlay per inner byte carried, less one, in percent (null without tunnel traffic). */
  wireOverheadPct: number | null;
  innerBytes: number;
  outerBytes: number;
  underlay: { paths: PathResult[]; unknownDst: number; uplinkDown: number };
  captures: Array<{ name: string; packets: number }>;
  expectations: ExpectResult[];
  ok: boolean;
  /** Live runs only. */
  live?: LiveInfo;
  /** Parts of the scenario that did not run, with the reason (live runs). */
  skipped?: SkippedPart[];
}

// ---------------------------------------------------------------------------------------------------
// Expectations

export function cmpOk(c: Comparison, v: number): boolean {
  switch (c.op) {
    case '>=':
      return v >= c.value;
    case '>':
      return v > c.value;
    case '<=':
      return v <= c.value;
    case '<':
      return v < c.value;
    case '==':
      return Math.abs(v - c.value) < 1e-9;
  }
}

export function fmtNs(ns: number): string {
  if (ns >= 1e9) return `${+(ns / 1e9).toPrecision(4)}s`;
  if (ns >= 1e6) return `${+(ns / 1e6).toPrecision(4)}ms`;
  if (ns >= 1e3) return `${+(ns / 1e3).toPrecision(4)}us`;
  return `${Math.round(ns)}ns`;
}

export function fmtPct(r: number): string {
  return `${+(r * 100).toFixed(2)}%`;
}

/**
 * The value of a counter (`node1.tunnel.icmpSent`), or the text to show instead when there is none
 * (the whole `actual` of a failed expectation, e.g. "no such counter: …" or "not available live: …").
 */
export type CounterLookup = (name: string) => number | string;

/**
 * Checks a scenario's expectations against flows, drops (node → port → reason → count) and counters.
 * An expectation about a flow that is not in `flows` fails ("not run"); a live run leaves out the
 * expectations of flows it skipped and says so in the report's `skipped`.
 */
export function checkExpectations(
  expect: readonly ExpectSpec[],
  flows: ReadonlyMap<string, FlowResult>,
  drops: Report['drops'],
  counter: CounterLookup,
): ExpectResult[] {
  const out: ExpectResult[] = [];
  const fmtCmp = (x: Comparison, unit: 'pct' | 'ns' | 'count'): string =>
    `${x.op} ${unit === 'pct' ? fmtPct(x.value) : unit === 'ns' ? fmtNs(x.value) : x.value}`;
  for (const e of expect) {
    if (e.flow !== null) {
      const f = flows.get(e.flow);
      if (f === undefined) {
        const why = 'not run';
        if (e.delivered !== null) out.push({ what: `${e.flow} delivered`, expected: fmtCmp(e.delivered, 'pct'), actual: why, ok: false });
        for (const [k, x] of [
          ['latencyP50', e.latencyP50Ns],
          ['latencyP99', e.latencyP99Ns],
          ['latencyMax', e.latencyMaxNs],
        ] as const) {
          if (x !== null) out.push({ what: `${e.flow} ${k}`, expected: fmtCmp(x, 'ns'), actual: why, ok: false });
        }
        for (const k of e.icmpSeen) out.push({ what: `${e.flow} ICMP seen`, expected: k, actual: why, ok: false });
      } else {
        if (e.delivered !== null)
          out.push({
            what: `${f.name} delivered`,
            expected: fmtCmp(e.delivered, 'pct'),
            actual: `${fmtPct(f.deliveredRatio)} (${f.delivered}/${f.planned})`,
            ok: cmpOk(e.delivered, f.deliveredRatio),
          });
        const lat: Array<[string, Comparison | null, number | null]> = [
          ['latencyP50', e.latencyP50Ns, f.latencyP50Ns],
          ['latencyP99', e.latencyP99Ns, f.latencyP99Ns],
          ['latencyMax', e.latencyMaxNs, f.latencyMaxNs],
        ];
        for (const [k, x, v] of lat) {
          if (x === null) continue;
          out.push({
            what: `${f.name} ${k}`,
            expected: fmtCmp(x, 'ns'),
            actual: v === null ? (f.delivered > 0 && f.latencyNote !== undefined ? f.latencyNote : 'nothing arrived') : fmtNs(v),
            ok: v !== null && cmpOk(x, v),
          });
        }
        for (const k of e.icmpSeen) {
          const seen = f.icmpSeen;
          const ok = k === 'none' ? seen.length === 0 : seen.includes(k);
          out.push({ what: `${f.name} ICMP seen`, expected: k, actual: seen.length === 0 ? 'none' : seen.join(', '), ok });
        }
      }
    }
    for (const [node, reasons] of Object.entries(e.drops)) {
      const byPort = drops[node] ?? {};
      for (const [reason, x] of Object.entries(reasons)) {
        let v = 0;
        for (const d of Object.values(byPort)) v += d[reason] ?? 0;
        out.push({ what: `${node} drops ${reason}`, expected: fmtCmp(x, 'count'), actual: String(v), ok: cmpOk(x, v) });
      }
    }
    for (const [name, x] of Object.entries(e.counters)) {
      const v = counter(name);
      out.push({ what: name, expected: fmtCmp(x, 'count'), actual: typeof v === 'number' ? String(v) : v, ok: typeof v === 'number' && cmpOk(x, v) });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Text

export function fmtRate(bps: number): string {
  if (bps >= 1e9) return `${(bps / 1e9).toFixed(2)} Gbit/s`;
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(2)} kbit/s`;
  return `${bps.toFixed(0)} bit/s`;
}

/** Columns padded to their widest cell (loops, not spreads: a report may have 100,000 rows). */
function table(rows: string[][]): string[] {
  const w = rows[0]!.map(() => 0);
  for (const r of rows) for (let i = 0; i < w.length; i++) if (r[i]!.length > w[i]!) w[i] = r[i]!.length;
  return rows.map((r) =>
    r
      .map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

const orNa = (v: number | null): string => (v === null ? 'n/a' : String(v));

/** The report as text for a terminal. */
export function formatReport(r: Report): string {
  const out: string[] = [];
  const live = r.live;
  if (live === undefined) out.push(`scenario ${r.scenario}  seed ${r.seed}  simulated ${fmtNs(r.durationNs)}  (${r.events} events)`);
  else
    out.push(
      `scenario ${r.scenario}  live in lab ${live.lab}  ran ${fmtNs(live.wallMs * 1e6)} of wall-clock time (scenario duration ${fmtNs(r.durationNs)})${live.without.length > 0 ? `  without ${live.without.join(', ')}` : ''}`,
    );
  out.push(
    `pod MTU ${r.podMtu}  wire overhead ${r.wireOverheadPct === null ? 'n/a (no tunnel traffic)' : `${r.wireOverheadPct.toFixed(1)}% (${r.outerBytes} bytes on the underlay for ${r.innerBytes} inner)`}`,
  );
  out.push('');
  if (r.flows.length > 0) {
    const rows = [['flow', 'type', 'from → to', 'sent', 'delivered', 'lost', 'p50', 'p99', 'throughput', 'goodput', 'ICMP seen']];
    for (const f of r.flows) {
      const tcp = f.tcp !== undefined;
      rows.push([
        f.name,
        f.type,
        `${f.from} → ${f.to}`,
        tcp ? `${f.sent} segs` : `${f.sent}${f.tooBig > 0 ? ` (+${f.tooBig} too big)` : ''}`,
        `${f.delivered}${tcp ? ' B' : ''} (${fmtPct(f.deliveredRatio)})`,
        tcp ? `${f.lost} retx` : String(f.lost),
        f.latencyP50Ns === null ? '-' : fmtNs(f.latencyP50Ns),
        f.latencyP99Ns === null ? '-' : fmtNs(f.latencyP99Ns),
        fmtRate(f.throughputBps),
        fmtRate(f.goodputBps),
        f.icmpSeen.length === 0 ? '-' : f.icmpSeen.join(','),
      ]);
    }
    for (const line of table(rows)) out.push(line);
    for (const f of r.flows) {
      const t = f.tcp;
      if (t !== undefined) {
        const counts = t.timeouts === null && t.fastRetransmits === null ? '' : ` (${orNa(t.fastRetransmits)} fast, ${orNa(t.timeouts)} timeouts)`;
        const pmtu = t.pmtuReductions === null ? '' : `, ${t.pmtuReductions} PMTU reductions`;
        out.push(
          `  ${f.name}: TCP ${t.state}, MSS ${t.mss}, ${t.retransmits} retransmissions${counts}${pmtu}${t.completedNs !== null ? `, all bytes acknowledged at ${fmtNs(t.completedNs)}` : ', not finished'}`,
        );
      }
      if (f.cutShort !== undefined)
        out.push(
          `  ${f.name}: cut short: ${f.cutShort.fit} of ${f.planned} packets fit before the scenario's end at ${fmtNs(f.cutShort.endNs)} (count × interval runs past it); the figures are of those`,
        );
      if (f.latencyNote !== undefined && f.latencyP50Ns === null)
        out.push(`  ${f.name}: latency '-': ${f.latencyNote}${f.jitterNs !== undefined && f.jitterNs !== null ? `; jitter ${fmtNs(f.jitterNs)}` : ''}`);
    }
    out.push('');
  }
  const dropLines: string[] = [];
  for (const [node, ports] of Object.entries(r.drops))
    for (const [port, reasons] of Object.entries(ports))
      for (const [reason, n] of Object.entries(reasons)) dropLines.push(`  ${node}/${port}  ${reason}  ${n}`);
  for (const p of r.underlay.paths) for (const [k, n] of Object.entries(p.dropped)) dropLines.push(`  underlay ${p.a}-${p.b}  ${k}  ${n}`);
  out.push(dropLines.length === 0 ? 'drops: none' : 'drops (where, reason, count):');
  for (const line of dropLines) out.push(line);
  out.push('');
  if (r.captures.length > 0) out.push(`captures: ${r.captures.map((k) => `${k.name} (${k.packets} packets)`).join(', ')}`, '');
  if (r.skipped !== undefined && r.skipped.length > 0) {
    out.push('skipped (not run):');
    for (const s of r.skipped) out.push(`  ${s.part}: ${s.reason}`);
    out.push('');
  }
  if (live !== undefined && live.notes.length > 0) {
    out.push('live measurements:');
    for (const n of live.notes) out.push(`  ${n}`);
    out.push('');
  }
  if (r.expectations.length > 0) {
    out.push('expectations:');
    for (const e of r.expectations) out.push(`  ${e.ok ? 'ok  ' : 'FAIL'}  ${e.what} ${e.expected}: ${e.actual}`);
    out.push(
      r.ok ? `all ${r.expectations.length} expectations met` : `${r.expectations.filter((e) => !e.ok).length} of ${r.expectations.length} expectations FAILED`,
    );
  }
  return out.join('\n');
}
