/**
 * The scenario's last sections: `capture` (the points a run writes pcapng for), `expect` (what the report
 * is checked against at the end) and `live` (what a live lab leaves out, and why).
 */
import { DropReason } from '../wire/drop.js';
import { didYouMean, type Obj, type Reader, type V } from './reader.js';
import type { Refs, Topology } from './topology.js';
import {
  LIVE_FEATURES,
  type CaptureSpec,
  type Comparison,
  type ExpectSpec,
  type IcmpKind,
  type LiveFeature,
  type LiveSpec,
  type TrafficSpec,
} from './types.js';
import { isMap, isScalar } from './yaml.js';

const DROP_REASONS: readonly string[] = Object.keys(DropReason).filter((k) => Number.isNaN(Number(k)));
const ICMP_KINDS: readonly IcmpKind[] = ['frag-needed', 'packet-too-big', 'echo-reply', 'dest-unreachable', 'time-exceeded', 'none'];
const EXPECT_KEYS = ['flow', 'delivered', 'latencyP50', 'latencyP99', 'latencyMax', 'icmpSeen', 'drops', 'counters'] as const;
const LIVE_KEYS = ['without', 'note'] as const;

export function parseCapture(r: Reader, o: Obj, refs: Refs): CaptureSpec[] {
  const capture: CaptureSpec[] = [];
  const captured = new Set<string>();
  const capV = o.get('capture');
  for (const cv of capV === undefined ? [] : r.list(capV)) {
    const s = r.str(cv, 'node/pod or node/underlay');
    const slash = s.indexOf('/');
    if (slash < 0) r.fail(cv, 'node/pod or node/underlay');
    const node = refs.nodeRef(cv, s.slice(0, slash)).name;
    const port = s.slice(slash + 1);
    if (port === 'gw') r.fail(cv, 'node/pod or node/underlay (the gateway is inside the bridge and has no wire to capture)', JSON.stringify(s));
    if (port !== 'underlay') refs.endpoint(cv);
    if (captured.has(`${node}/${port}`)) r.fail(cv, 'each capture point once', JSON.stringify(s));
    captured.add(`${node}/${port}`);
    capture.push({ node, port });
  }
  return capture;
}

export function parseExpect(r: Reader, o: Obj, topo: Topology, traffic: TrafficSpec[]): ExpectSpec[] {
  const expect: ExpectSpec[] = [];
  const expV = o.get('expect');
  const flowNames = new Set(traffic.map((t) => t.name));
  for (const ev of expV === undefined ? [] : r.list(expV)) expect.push(parseExpectation(r, ev, topo, traffic, flowNames));
  return expect;
}

function parseExpectation(r: Reader, ev: V, topo: Topology, traffic: TrafficSpec[], flowNames: ReadonlySet<string>): ExpectSpec {
  const eo = r.map(ev, EXPECT_KEYS);
  const flowV = eo.get('flow');
  let flow: string | null = null;
  if (flowV !== undefined) {
    flow = r.str(flowV, 'a flow name');
    if (!flowNames.has(flow)) {
      const names = traffic.map((x) => x.name);
      const h = didYouMean(flow, names);
      r.fail(
        flowV,
        `a flow named in traffic (${names.length === 0 ? 'there is none' : names.join(', ')})`,
        JSON.stringify(flow),
        h === null ? null : `did you mean "${h}"?`,
      );
    }
  }
  const flowOnly = (k: string): V | undefined => {
    const v = eo.get(k);
    if (v !== undefined && flow === null) r.fail(v, `a flow for ${k} (add flow: <name>)`, 'no flow');
    return v;
  };
  const dV = flowOnly('delivered');
  const p50 = flowOnly('latencyP50');
  const p99 = flowOnly('latencyP99');
  const pmax = flowOnly('latencyMax');
  const icV = flowOnly('icmpSeen');
  const dropsV = eo.get('drops');
  const drops = dropsV === undefined ? {} : expectDrops(r, dropsV, topo);
  const ctV = eo.get('counters');
  const counters = ctV === undefined ? {} : expectCounters(r, ctV, topo);
  if (flow === null && dropsV === undefined && ctV === undefined) r.fail(ev, 'an expectation: flow with delivered/latency/icmpSeen, drops or counters', 'none');
  return {
    flow,
    delivered: dV === undefined ? null : r.cmp(dV, 'ratio'),
    latencyP50Ns: p50 === undefined ? null : r.cmp(p50, 'duration'),
    latencyP99Ns: p99 === undefined ? null : r.cmp(p99, 'duration'),
    latencyMaxNs: pmax === undefined ? null : r.cmp(pmax, 'duration'),
    icmpSeen: icV === undefined ? [] : r.oneOrList(icV).map((x) => r.oneOf(x, ICMP_KINDS)),
    drops,
    counters,
  };
}

/** `drops: { node: { DropReason: count } }`, in node order as the nodes are listed (not as the expectation lists them). */
function expectDrops(r: Reader, dropsV: V, topo: Topology): Record<string, Record<string, Comparison>> {
  const nodeNames: ReadonlySet<string> = new Set(topo.nodeIndex.keys());
  const nodePos = new Map(topo.nodes.map((n, i) => [n.name, i]));
  const drops: Record<string, Record<string, Comparison>> = {};
  const dm = r.map(dropsV, nodeNames, 'a mapping node → { DropReason: count }', () => `a node name (${[...nodeNames].join(', ')})`);
  for (const nn of [...dm.keys()].sort((x, y) => nodePos.get(x)! - nodePos.get(y)!)) {
    const rv = dm.get(nn);
    if (rv === undefined) continue;
    const rm = r.map(rv, DROP_REASONS, 'a mapping DropReason → count', 'a drop reason (a DropReason name, see wire/drop.ts)');
    const per: Record<string, Comparison> = {};
    for (const reason of DROP_REASONS) {
      const cv = rm.get(reason);
      if (cv !== undefined) per[reason] = r.cmp(cv, 'count');
    }
    drops[nn] = per;
  }
  return drops;
}

/** `counters: { node1.tunnel.icmpSent: ">= 1" }`: any counter name that starts with a node. */
function expectCounters(r: Reader, ctV: V, topo: Topology): Record<string, Comparison> {
  const counters: Record<string, Comparison> = {};
  if (!isMap(ctV.node)) r.fail(ctV, 'a mapping counter → count');
  for (const pair of ctV.node.items) {
    const k = r.resolve(pair.key);
    const kv: V = { node: k, path: ctV.path, at: ctV.at };
    if (!isScalar(k) || typeof k.value !== 'string') r.fail(kv, 'a counter name such as node1.tunnel.icmpSent');
    const cname = k.value;
    const nn = cname.split('.')[0]!;
    const path = `${ctV.path}.${cname}`;
    if (!topo.nodeIndex.has(nn))
      r.fail({ node: k, path, at: kv.at }, `a counter name that starts with a node (${[...topo.nodeIndex.keys()].join(', ')})`, JSON.stringify(cname));
    counters[cname] = r.cmp({ node: r.resolve(pair.value), path, at: k.range?.[0] ?? ctV.at }, 'count');
  }
  return counters;
}

export function parseLive(r: Reader, o: Obj): LiveSpec | null {
  const liveV = o.get('live');
  if (liveV === undefined) return null;
  const lo = r.map(liveV, LIVE_KEYS);
  const wV = lo.get('without');
  const without: LiveFeature[] = [];
  for (const fv of wV === undefined ? [] : r.oneOrList(wV)) {
    const f = r.oneOf(fv, LIVE_FEATURES);
    if (!without.includes(f)) without.push(f);
  }
  const note = r.text(lo.req('note', 'a note: why a part cannot go live'));
  if (note.trim() === '') r.fail(lo.req('note', 'a note'), 'a note saying why a part cannot go live', 'an empty note');
  return { without, note };
}
