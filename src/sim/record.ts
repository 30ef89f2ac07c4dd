/**
 * What a run report needs beyond the report's numbers to be drawn (`seine run --html`, `seine report`,
 * cli/html.ts): the topology as the scenario describes it, and time series over the run sampled at a
 * fixed simulated interval.
 *
 * The series are read between the simulator's events, never by an event of their own: `Cluster.run`
 * stops the clock at each sample time and `SeriesRecorder.take` only reads counters, so a run with
 * series is the same run as one without (same events, same report, byte for byte; a test holds it).
 */
import type { Report } from './report.js';
import type { Cluster } from './cluster.js';
import type { Scenario } from '../scenario/scenario.js';
import type { TraceResult } from './tracer.js';
import { addPathDrops, PATH_DROPS } from './link.js';
import { DROP_REASON_COUNT, dropReasonName, type DropReason } from '../wire/drop.js';

/** The scenario's shape, for the drawing: no secrets (the ESP secret stays out). */
export interface Topology {
  /** The scenario's own words: what it is, and what to look at. */
  description: string;
  lesson: string;
  tunnel: { type: string; mode: string; vni: number; optionBytes: number };
  encryption: { cipher: string; udpEncap: boolean } | null;
  underlay: { family: 4 | 6; mtu: number; latencyNs: number; jitterNs: number; bandwidthBps: number | null; loss: number };
  nodes: Array<{
    name: string;
    underlayIp: string;
    podCIDR4: string | null;
    podCIDR6: string | null;
    pods: Array<{ name: string; ip4: string | null; ip6: string | null; mtu: number; vlan: number | null }>;
  }>;
  /** Paths whose link differs from the underlay's defaults (null: the default). */
  links: Array<{ a: string; b: string; mtu: number | null; latencyNs: number | null; bandwidthBps: number | null; loss: number | null }>;
  /** `target` is a node name or `a-b` for a path. */
  faults: Array<{ atNs: number; target: string; action: 'down' | 'up'; forNs: number | null }>;
}

/** One flow over time; each array has one value per sample (null: nothing to say in that interval). */
export interface FlowSeries {
  name: string;
  type: 'ping' | 'udp' | 'tcp';
  /** Payload delivered in the interval, bits per second (ping: echo payload answered; TCP: bytes acknowledged). */
  goodputBps: number[];
  /** Mean latency of what arrived in the interval, ns: ping round trip, UDP one way, TCP RTT samples. */
  latencyNs: Array<number | null>;
  /** TCP only: the congestion window at the sample time, bytes. */
  cwndBytes?: number[];
}

export interface RunSeries {
  /** The sampling interval, ns; sample i covers ((i)·interval, (i+1)·interval]. */
  intervalNs: number;
  /** Sample times (the end of each interval), ns. */
  t: number[];
  /** The first `SERIES_FLOWS` flows; the rest are in the totals only (`flowsOmitted`). */
  flows: FlowSeries[];
  flowsOmitted: number;
  /** Every flow's traffic together: Ethernet bytes the bridges handed to pods, and bytes their tunnel ports put on the underlay, bits per second. */
  totals: { podDeliveredBps: number[]; underlayBps: number[] };
  /** Drops in each interval by reason, over every node (ports and gateway) and the underlay paths (`underlay:loss`, …). */
  drops: Record<string, number[]>;
}

/** A report with what it takes to draw it: the JSON `seine run --json` prints and `seine report` reads. */
export interface RunRecord extends Report {
  /** Absent in a live run's report. */
  topology?: Topology;
  series?: RunSeries;
  /** `seine trace --json` results shown with the run (`--trace FILE`). */
  traces?: TraceResult[];
}

/** Flows with series of their own (a run may have 100,000: the rest are counted in the totals). */
export const SERIES_FLOWS = 24;
/** At most this many samples over a run. */
export const SERIES_SAMPLES = 200;
/**
 * Counters one run's sampling may read in all: each sample reads every bridge port's drops and every
 * underlay path's, which in a 200-node cluster took 38 ms a sample (scattered over a 700 MB heap). A
 * big cluster gets fewer samples (at least 20), so the series never cost more than a few seconds.
 */
export const SERIES_BUDGET = 4_000_000;

/** How many samples a cluster of `nodes` nodes and `ports` bridge ports gets: `SERIES_SAMPLES`, fewer for a big one. */
export function seriesSamples(nodes: number, ports: number): number {
  const perSample = ports + nodes * (nodes - 1);
  return Math.max(20, Math.min(SERIES_SAMPLES, Math.floor(SERIES_BUDGET / Math.max(1, perSample))));
}

/** The sampling interval for a run of `durationNs`: 1, 2 or 5 × 10^k ns, the smallest giving at most `samples` samples. */
export function seriesInterval(durationNs: number, samples = SERIES_SAMPLES): number {
  for (let p = 1e3; ; p *= 10) for (const m of [1, 2, 5]) if (durationNs / (m * p) <= samples) return m * p;
}

export function topologyOf(s: Scenario): Topology {
  const optionBytes = s.tunnel.options.reduce((a, o) => a + 4 + o.data.length / 2, 0);
  return {
    description: s.description,
    lesson: s.lesson,
    tunnel: { type: s.tunnel.type, mode: s.tunnel.mode, vni: s.tunnel.vni, optionBytes },
    encryption: s.encryption === null ? null : { cipher: s.encryption.cipher, udpEncap: s.encryption.udpEncap },
    underlay: {
      family: s.underlay.family,
      mtu: s.underlay.mtu,
      latencyNs: s.underlay.latencyNs,
      jitterNs: s.underlay.jitterNs,
      bandwidthBps: s.underlay.bandwidthBps,
      loss: s.underlay.loss,
    },
    nodes: s.nodes.map((n) => ({
      name: n.name,
      underlayIp: n.underlayIp,
      podCIDR4: n.podCIDR4,
      podCIDR6: n.podCIDR6,
      pods: n.pods.map((p) => ({ name: p.name, ip4: p.ip4, ip6: p.ip6, mtu: p.mtu, vlan: p.vlan })),
    })),
    links: s.links.map((l) => ({ a: l.a, b: l.b, mtu: l.mtu, latencyNs: l.latencyNs, bandwidthBps: l.bandwidthBps, loss: l.loss })),
    faults: s.faults.map((f) => ({
      atNs: f.atNs,
      target: f.target.kind === 'node' ? f.target.node : `${f.target.a}-${f.target.b}`,
      action: f.action,
      forNs: f.forNs,
    })),
  };
}

/** `into[r] += from[r]` for every reason: a function of its own, so V8 compiles one tight loop for all ports. */
function addDrops(into: Float64Array, from: Float64Array): void {
  for (let r = 1; r < from.length; r++) into[r] = into[r]! + from[r]!;
}

/** What a flow had counted at the previous sample. */
interface FlowMark {
  bytes: number;
  latCount: number;
  latSum: number;
}

/**
 * Samples a cluster's counters every `everyNs` of simulated time (`Cluster.run`'s `sampler`). It reads
 * counters and allocates a little per sample, never per packet.
 */
export class SeriesRecorder {
  readonly everyNs: number;
  readonly series: RunSeries;
  private readonly marks: FlowMark[];
  private readonly dropsNow = new Float64Array(DROP_REASON_COUNT);
  private readonly dropsBefore = new Float64Array(DROP_REASON_COUNT);
  private readonly pathNow = new Float64Array(PATH_DROPS.length);
  private readonly pathBefore = new Float64Array(PATH_DROPS.length);
  private podBytes = 0;
  private underlayBytes = 0;

  constructor(private readonly c: Cluster) {
    let ports = 0;
    for (const n of c.nodes.values()) ports += n.bridge.ports.length;
    this.everyNs = seriesInterval(c.scenario.durationNs, seriesSamples(c.nodes.size, ports));
    const shown = c.scenario.traffic.slice(0, SERIES_FLOWS);
    this.series = {
      intervalNs: this.everyNs,
      t: [],
      flows: shown.map((t) => ({ name: t.name, type: t.type, goodputBps: [], latencyNs: [], ...(t.type === 'tcp' ? { cwndBytes: [] } : {}) })),
      flowsOmitted: c.scenario.traffic.length - shown.length,
      totals: { podDeliveredBps: [], underlayBps: [] },
      drops: {},
    };
    this.marks = shown.map(() => ({ bytes: 0, latCount: 0, latSum: 0 }));
  }

  /** Records the interval ending at `nowNs`. */
  take(nowNs: number): void {
    const s = this.series;
    const k = s.t.length;
    s.t.push(nowNs);
    const perSec = 8e9 / this.everyNs;
    for (let i = 0; i < s.flows.length; i++) {
      const f = this.c.flows[i]!;
      const out = s.flows[i]!;
      const m = this.marks[i]!;
      let bytes = 0,
        latCount = 0,
        latSum = 0;
      if (f.ping !== null) {
        bytes = f.ping.received * Math.max(0, f.spec.sizes[0]! - (f.spec.family === 4 ? 28 : 48));
        latCount = f.ping.latency.count;
        latSum = f.ping.latency.sum;
      } else if (f.udp !== null && f.sink !== null) {
        const r = f.sink.flows.get(f.udp.flowId);
        if (r !== undefined) {
          bytes = r.goodput;
          latCount = r.latency.count;
          latSum = r.latency.sum;
        }
      } else if (f.tcp !== null) {
        const st = f.tcp.stats;
        bytes = st.bytesAcked;
        latCount = st.rttSamplesMs.length;
        latSum = m.latSum;
        for (let j = m.latCount; j < latCount; j++) latSum += st.rttSamplesMs[j]! * 1e6;
        out.cwndBytes!.push(st.cwnd);
      } else if (out.cwndBytes !== undefined) out.cwndBytes.push(0);
      out.goodputBps.push((bytes - m.bytes) * perSec);
      out.latencyNs.push(latCount > m.latCount ? (latSum - m.latSum) / (latCount - m.latCount) : null);
      m.bytes = bytes;
      m.latCount = latCount;
      m.latSum = latSum;
    }
    // Every node's drops by reason and traffic, summed without building objects per port.
    const d = this.dropsNow;
    d.fill(0);
    let pod = 0,
      under = 0;
    for (const n of this.c.nodes.values()) {
      for (const p of n.bridge.ports) {
        if (p === null) continue;
        addDrops(d, p.counters.drops);
        if (p.kind === 'tunnel') under += p.counters.txBytes;
        else if (p.kind === 'veth' || p.kind === 'device') pod += p.counters.txBytes;
      }
      const gw = n.bridge.gateway;
      if (gw !== null) addDrops(d, gw.counters.drops);
    }
    s.totals.podDeliveredBps.push((pod - this.podBytes) * perSec);
    s.totals.underlayBps.push((under - this.underlayBytes) * perSec);
    this.podBytes = pod;
    this.underlayBytes = under;
    for (let r = 1; r < d.length; r++) {
      const delta = d[r]! - this.dropsBefore[r]!;
      if (delta > 0) this.dropSeries(dropReasonName(r as DropReason), k)[k] = delta;
    }
    this.dropsBefore.set(d);
    const pn = this.pathNow;
    pn.fill(0);
    this.c.fabric.forEachPath((_a, _b, link) => {
      addPathDrops(pn, link.a.stats);
      addPathDrops(pn, link.b.stats);
    });
    for (let j = 0; j < PATH_DROPS.length; j++) {
      const delta = pn[j]! - this.pathBefore[j]!;
      if (delta > 0) this.dropSeries(`underlay:${PATH_DROPS[j]!}`, k)[k] = delta;
    }
    this.pathBefore.set(pn);
    // A reason seen before this sample but not in it gets a zero.
    for (const arr of Object.values(s.drops)) if (arr.length === k) arr.push(0);
  }

  /** The series of a drop reason, zeros before its first drop. */
  private dropSeries(name: string, k: number): number[] {
    let a = this.series.drops[name];
    if (a === undefined) this.series.drops[name] = a = new Array<number>(k).fill(0);
    a.length = k + 1;
    return a;
  }
}

/** A run's record: the report, the scenario's topology, the series and any traces. */
export function runRecord(report: Report, s: Scenario, series: RunSeries | null, traces: TraceResult[]): RunRecord {
  return { ...report, topology: topologyOf(s), ...(series !== null ? { series } : {}), ...(traces.length > 0 ? { traces } : {}) };
}
