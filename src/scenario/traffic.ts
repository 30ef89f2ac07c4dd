/**
 * The scenario's `traffic` section (ping, UDP and TCP flows between endpoints) and what running it is
 * estimated to cost (`estimateCost`), refused before anything is built when it is more than a run may take.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import type { TunnelMode } from '../overlay/tunnel.js';
import { excerpt, fmtDuration, type Obj, type Reader, type V } from './reader.js';
import { num, SCENARIO_LIMITS } from './limits.js';
import { loadReplay } from './replay.js';
import type { Refs, Topology } from './topology.js';
import type { Endpoint, Scenario, TrafficSpec, TrafficType } from './types.js';
import { isScalar } from './yaml.js';

/** Simple IMIX: 7 × 64, 4 × 576, 1 × 1500 bytes of IP. */
export const IMIX: ReadonlyArray<{ size: number; weight: number }> = [
  { size: 64, weight: 7 },
  { size: 576, weight: 4 },
  { size: 1500, weight: 1 },
];
const IMIX_SIZES: readonly number[] = IMIX.flatMap((x) => new Array<number>(x.weight).fill(x.size));

const TRAFFIC_KEYS = ['name', 'type', 'from', 'to', 'family', 'start', 'count', 'interval', 'rate', 'size', 'sizes', 'replay', 'bytes', 'df'] as const;

/** What a flow is checked against: the scenario's file (replays are relative to it), end and topology. */
export interface TrafficContext {
  r: Reader;
  file: string;
  durationNs: number;
  mode: TunnelMode;
  topo: Topology;
  refs: Refs;
}

/** The traffic section; `at` holds each flow's place in the file (the cost check points there). */
export function parseTraffic(cx: TrafficContext, o: Obj): { traffic: TrafficSpec[]; at: V[] } {
  const r: Reader = cx.r;
  const traffic: TrafficSpec[] = [];
  const names = new Set<string>();
  const trafficV = o.get('traffic');
  const trafficVs = trafficV === undefined ? [] : r.list(trafficV);
  if (trafficVs.length > SCENARIO_LIMITS.flows) r.fail(trafficV!, `at most ${num(SCENARIO_LIMITS.flows)} flows`, `${num(trafficVs.length)} flows`);
  for (const [i, tv] of trafficVs.entries()) traffic.push(parseFlow(cx, tv, i, names));
  return { traffic, at: trafficVs };
}

/** Whether an endpoint has an address of family `f` (a node's own stack: its gateway's). */
function hasFamily(topo: Topology, e: Endpoint, f: 4 | 6): boolean {
  if (e.pod === null) {
    const n = topo.nodeIndex.get(e.node)!;
    return (f === 4 ? n.gateway4 : n.gateway6) !== null;
  }
  const p = topo.podIndex.get(`${e.node}/${e.pod}`)!;
  return (f === 4 ? p.ip4 : p.ip6) !== null;
}

function parseFlow(cx: TrafficContext, tv: V, i: number, names: Set<string>): TrafficSpec {
  const r: Reader = cx.r;
  const { mode, durationNs } = cx;
  const to = r.map(tv, TRAFFIC_KEYS);
  const nV = to.get('name');
  const tname = nV === undefined ? `flow-${i + 1}` : r.str(nV, 'a flow name');
  if (names.has(tname)) r.fail(nV ?? tv, 'a unique flow name', `${JSON.stringify(tname)} (a second time)`);
  names.add(tname);
  const type = r.oneOf(to.req('type', 'a traffic type'), ['ping', 'udp', 'tcp'] as const);
  const fromV = to.req('from', 'the sender, node/pod or node');
  const toV = to.req('to', 'the receiver, node/pod or node');
  const from = cx.refs.endpoint(fromV);
  const dst = cx.refs.endpoint(toV);
  if (from.node === dst.node && from.pod === dst.pod) r.fail(toV, 'a receiver other than the sender', JSON.stringify(r.scalar(toV)));
  for (const [e, v] of [
    [from, fromV],
    [dst, toV],
  ] as const) {
    if (e.pod === null && mode !== 'routed')
      r.fail(v, "a pod (node/pod): a node's own stack sits behind its gateway, which l2 mode has not", JSON.stringify(r.scalar(v)));
  }
  const fV = to.get('family');
  const fam: 4 | 6 = fV !== undefined ? r.oneOf(fV, [4, 6] as const) : hasFamily(cx.topo, from, 4) && hasFamily(cx.topo, dst, 4) ? 4 : 6;
  if (!hasFamily(cx.topo, from, fam)) r.fail(fV ?? fromV, `a sender with an IPv${fam} address`, JSON.stringify(r.scalar(fromV)));
  if (!hasFamily(cx.topo, dst, fam)) r.fail(fV ?? toV, `a receiver with an IPv${fam} address`, JSON.stringify(r.scalar(toV)));
  const startV = to.get('start');
  const startNs = startV === undefined ? 0 : r.duration(startV);
  if (startV !== undefined && startNs >= durationNs) r.fail(startV, `a start before the end of the scenario (${fmtDuration(durationNs)})`);
  const sizes = flowSizes(r, to, type, fam);
  const countV = to.get('count');
  const bytesV = to.get('bytes');
  refuseMixedKeys(r, to, type);
  const count = type === 'tcp' ? 0 : countV === undefined ? (type === 'ping' ? 5 : 100) : r.int(countV, 1, 1e9, 'a packet count in 1-1000000000');
  const intervalNs = flowInterval(r, to, type, sizes);
  const dfV = to.get('df');
  const replay = flowReplay(cx, to, type);
  return {
    name: tname,
    type,
    from,
    to: dst,
    family: fam,
    startNs,
    count: replay !== null ? Math.min(countV === undefined ? Infinity : count, replay.count) : count,
    intervalNs,
    sizes,
    replay: replay?.path ?? null,
    bytes:
      type === 'tcp'
        ? bytesV === undefined
          ? 1_000_000
          : r.int(bytesV, 1, SCENARIO_LIMITS.tcpBytes, `a byte count in 1-${SCENARIO_LIMITS.tcpBytes} (the simulated sender's limit)`)
        : 0,
    df: dfV === undefined ? type !== 'udp' : r.bool(dfV),
  };
}

/** A flow's IP packet sizes: `size`, `sizes` (a list or imix) or the type's default. */
function flowSizes(r: Reader, to: Obj, type: TrafficType, fam: 4 | 6): number[] {
  const minSize = fam === 4 ? 28 : 48;
  const sizeV = to.get('size');
  const sizesV = to.get('sizes');
  if (sizeV !== undefined && sizesV !== undefined) r.fail(sizesV, 'size or sizes, not both');
  if (sizesV === undefined)
    return [sizeV === undefined ? (type === 'ping' ? (fam === 4 ? 84 : 104) : 1000) : r.int(sizeV, minSize, 65535, `an IP packet size in ${minSize}-65535`)];
  let sizes: number[];
  if (isScalar(sizesV.node)) {
    r.oneOf(sizesV, ['imix'] as const);
    sizes = [...IMIX_SIZES];
  } else sizes = r.list(sizesV, 'imix or a list of sizes').map((sv) => r.int(sv, minSize, 65535, `an IP packet size in ${minSize}-65535`));
  if (sizes.length === 0) r.fail(sizesV, 'at least one size', 'an empty list');
  return sizes;
}

/** Keys that do not go together or not with this type of flow. */
function refuseMixedKeys(r: Reader, to: Obj, type: TrafficType): void {
  const countV = to.get('count');
  const intervalV = to.get('interval');
  const rateV = to.get('rate');
  if (type === 'tcp' && countV !== undefined) r.fail(countV, 'no count for tcp (give bytes)');
  for (const k of ['interval', 'size', 'sizes'] as const) {
    const v = to.get(k);
    if (type === 'tcp' && v !== undefined) r.fail(v, `no ${k} for tcp (segments follow the MSS and the window; give bytes)`);
  }
  const bytesV = to.get('bytes');
  if (type !== 'tcp' && bytesV !== undefined) r.fail(bytesV, 'no bytes for ping or udp (give count)');
  if (rateV !== undefined && type !== 'udp') r.fail(rateV, 'no rate (udp only)');
  if (rateV !== undefined && intervalV !== undefined) r.fail(rateV, 'interval or rate, not both');
}

/** The gap between a flow's packets: from `rate` and the mean size, `interval`, or the type's default. */
function flowInterval(r: Reader, to: Obj, type: TrafficType, sizes: number[]): number {
  const intervalV = to.get('interval');
  const rateV = to.get('rate');
  if (rateV !== undefined) {
    const bps = r.bandwidth(rateV);
    const mean = sizes.reduce((s, x) => s + x, 0) / sizes.length;
    return Math.max(1, Math.round((mean * 8 * 1e9) / bps));
  }
  if (intervalV !== undefined) {
    const ns = r.duration(intervalV);
    if (ns <= 0) r.fail(intervalV, 'an interval above 0');
    return ns;
  }
  return type === 'ping' ? 1e9 : type === 'udp' ? 1e6 : 0;
}

/** A UDP flow's `replay:` capture (resolved from the scenario's folder) and its IP packets; null without. */
function flowReplay(cx: TrafficContext, to: Obj, type: TrafficType): { path: string; count: number } | null {
  const r: Reader = cx.r;
  const replayV = to.get('replay');
  if (replayV === undefined) return null;
  if (type !== 'udp') r.fail(replayV, 'no replay (udp only)');
  for (const k of ['size', 'sizes', 'rate', 'interval'] as const) {
    const v = to.get(k);
    if (v !== undefined) r.fail(v, `no ${k} with replay (the capture gives sizes and timing)`);
  }
  const path = resolvePath(dirname(cx.file), r.str(replayV, 'a pcap or pcapng file'));
  let count = 0;
  try {
    count = loadReplay({ path }).ipLengths.length;
  } catch (e: unknown) {
    const err = e as NodeJS.ErrnoException;
    r.fail(replayV, 'a readable pcap or pcapng file', `${JSON.stringify(r.scalar(replayV))} (${err.code === 'ENOENT' ? 'no such file' : err.message})`);
  }
  if (count === 0) r.fail(replayV, 'a capture with at least one IP packet', JSON.stringify(r.scalar(replayV)));
  return { path, count };
}

/** Refuses traffic that costs more packets or events than a run may take, pointing at the largest flow. */
export function checkCost(r: Reader, s: Pick<Scenario, 'durationNs' | 'podMtu' | 'traffic'>, at: V[]): void {
  const cost = estimateCost(s);
  for (const k of ['packets', 'events'] as const) {
    if (cost[k] <= SCENARIO_LIMITS[k]) continue;
    const big = cost.largest;
    const t = s.traffic[big]!;
    r.fail(
      at[big]!,
      `traffic of at most ${num(SCENARIO_LIMITS[k])} ${k} in all (the run's estimate, before it starts)`,
      `${num(cost[k])} ${k}, the most from this flow, "${excerpt(t.name)}" (${num(cost.perFlow[big]!)} packets)`,
    );
  }
}

/** A run's cost as `estimateCost` sees it. */
export interface CostEstimate {
  /** Packets the traffic puts on the wire: ping requests and replies, UDP datagrams, TCP segments and ACKs. */
  packets: number;
  /** Simulator events: a departure and an arrival per packet, a ping's reply leaving within its request's arrival, TCP's segments within the arrivals that clock them. */
  events: number;
  /** Packets per flow, and the flow with the most. */
  perFlow: number[];
  largest: number;
}

/**
 * What running the traffic costs, from the normalised flows alone (before anything is built): a ping or UDP
 * flow sends its count, or what fits before the end of the scenario at its interval; TCP sends its bytes in
 * segments of the pod MTU's MSS (at least 536) and an ACK for each.
 */
export function estimateCost(s: Pick<Scenario, 'durationNs' | 'podMtu' | 'traffic'>): CostEstimate {
  let packets = 0,
    events = 0,
    largest = 0;
  const perFlow: number[] = [];
  for (let i = 0; i < s.traffic.length; i++) {
    const t = s.traffic[i]!;
    let n: number;
    let ev: number;
    if (t.type === 'tcp') {
      const mss = Math.max(536, s.podMtu - (t.family === 4 ? 40 : 60));
      n = 2 * Math.ceil(t.bytes / mss);
      ev = n;
    } else {
      // A replay's packets keep the capture's timing; others leave every interval until the end.
      const fit = t.replay !== null || t.intervalNs <= 0 ? t.count : Math.floor((s.durationNs - t.startNs) / t.intervalNs) + 1;
      const c = Math.min(t.count, fit);
      n = t.type === 'ping' ? 2 * c : c;
      ev = t.type === 'ping' ? 3 * c : 2 * c;
    }
    perFlow.push(n);
    packets += n;
    events += ev;
    if (n > perFlow[largest]!) largest = i;
  }
  return { packets, events, perFlow, largest };
}
