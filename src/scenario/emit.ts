/**
 * A normalised scenario back in file syntax (`scenarioToObject`), every default written out:
 * `parseScenario` of its YAML gives the same `Scenario` again (the tests check this on generated scenarios).
 */
import { fmtDuration } from './reader.js';
import type { Comparison, Endpoint, LinkSpec, Scenario } from './types.js';

function fmtBandwidth(bps: number): string {
  if (bps % 1e9 === 0) return `${bps / 1e9}Gbit`;
  if (bps % 1e6 === 0) return `${bps / 1e6}Mbit`;
  if (bps % 1e3 === 0) return `${bps / 1e3}Kbit`;
  return `${bps}bit`;
}

function fmtCmp(c: Comparison, kind: 'ratio' | 'duration' | 'count'): string | number {
  if (kind === 'count' && c.op === '==') return c.value;
  const v = kind === 'ratio' ? `${+(c.value * 100).toPrecision(12)}%` : kind === 'duration' ? fmtDuration(c.value) : String(c.value);
  return `${c.op} ${v}`;
}

/** An endpoint as written in a scenario: `node/pod`, or `node` for the node's own stack. */
export function endpointText(e: Endpoint): string {
  return e.pod === null ? e.node : `${e.node}/${e.pod}`;
}

/** The scenario as plain data in file syntax (YAML or JSON text of it loads again as the same scenario). */
export function scenarioToObject(s: Scenario): Record<string, unknown> {
  const ep = endpointText;
  const link = (l: LinkSpec): Record<string, unknown> => {
    const o: Record<string, unknown> = { between: [l.a, l.b] };
    if (l.mtu !== null) o.mtu = l.mtu;
    if (l.latencyNs !== null) o.latency = fmtDuration(l.latencyNs);
    if (l.jitterNs !== null) o.jitter = fmtDuration(l.jitterNs);
    if (l.bandwidthBps !== null) o.bandwidth = fmtBandwidth(l.bandwidthBps);
    if (l.loss !== null) o.loss = l.loss;
    return o;
  };
  const under: Record<string, unknown> = {
    mtu: s.underlay.mtu,
    latency: fmtDuration(s.underlay.latencyNs),
    jitter: fmtDuration(s.underlay.jitterNs),
    loss: s.underlay.loss,
    family: s.underlay.family,
  };
  if (s.underlay.bandwidthBps !== null) under.bandwidth = fmtBandwidth(s.underlay.bandwidthBps);
  const tunnel: Record<string, unknown> = {
    type: s.tunnel.type,
    mode: s.tunnel.mode,
    vni: s.tunnel.vni,
    fragmentPolicy: s.tunnel.fragmentPolicy,
    icmpTooBig: s.tunnel.icmpTooBig,
    mssClamp: s.tunnel.mssClamp,
  };
  if (s.tunnel.options.length > 0) tunnel.options = s.tunnel.options.map((o) => (o.data === '' ? { class: o.class, type: o.type } : { ...o }));
  const out: Record<string, unknown> = {
    name: s.name,
    description: s.description,
    lesson: s.lesson,
    seed: s.seed,
    duration: fmtDuration(s.durationNs),
    underlay: under,
    tunnel,
  };
  if (s.encryption !== null) out.encryption = { ...s.encryption };
  out.nodes = s.nodes.map((n) => {
    const o: Record<string, unknown> = { name: n.name };
    const cidrs = [n.podCIDR4, n.podCIDR6].filter((x): x is string => x !== null);
    if (cidrs.length > 0) o.podCIDR = cidrs.length === 1 ? cidrs[0] : cidrs;
    o.underlayIp = n.underlayIp;
    o.pods = n.pods.map((p) => {
      const po: Record<string, unknown> = { name: p.name, ip: [p.ip4, p.ip6].filter((x) => x !== null) };
      if (p.vlan !== null) po.vlan = p.vlan;
      if (p.vni !== null) po.vni = p.vni;
      po.mtu = p.mtu;
      return po;
    });
    return o;
  });
  out.links = s.links.map(link);
  out.traffic = s.traffic.map((t) => {
    const o: Record<string, unknown> = { name: t.name, type: t.type, from: ep(t.from), to: ep(t.to), family: t.family, start: fmtDuration(t.startNs) };
    if (t.replay !== null) {
      o.count = t.count;
      o.replay = t.replay;
    } else if (t.type === 'tcp') o.bytes = t.bytes;
    else {
      o.count = t.count;
      o.interval = fmtDuration(t.intervalNs);
      o.sizes = [...t.sizes];
    }
    o.df = t.df;
    return o;
  });
  out.faults = s.faults.map((f) => {
    const o: Record<string, unknown> = { at: fmtDuration(f.atNs), link: f.target.kind === 'node' ? f.target.node : [f.target.a, f.target.b], action: f.action };
    if (f.forNs !== null) o.for = fmtDuration(f.forNs);
    return o;
  });
  out.capture = s.capture.map((c) => `${c.node}/${c.port}`);
  out.expect = s.expect.map((e) => {
    const o: Record<string, unknown> = {};
    if (e.flow !== null) o.flow = e.flow;
    if (e.delivered !== null) o.delivered = fmtCmp(e.delivered, 'ratio');
    if (e.latencyP50Ns !== null) o.latencyP50 = fmtCmp(e.latencyP50Ns, 'duration');
    if (e.latencyP99Ns !== null) o.latencyP99 = fmtCmp(e.latencyP99Ns, 'duration');
    if (e.latencyMaxNs !== null) o.latencyMax = fmtCmp(e.latencyMaxNs, 'duration');
    if (e.icmpSeen.length > 0) o.icmpSeen = [...e.icmpSeen];
    if (Object.keys(e.drops).length > 0)
      o.drops = Object.fromEntries(
        Object.entries(e.drops).map(([n, m]) => [n, Object.fromEntries(Object.entries(m).map(([k, c]) => [k, fmtCmp(c, 'count')]))]),
      );
    if (Object.keys(e.counters).length > 0) o.counters = Object.fromEntries(Object.entries(e.counters).map(([k, c]) => [k, fmtCmp(c, 'count')]));
    return o;
  });
  if (s.live !== null) out.live = { without: [...s.live.without], note: s.live.note };
  return out;
}
