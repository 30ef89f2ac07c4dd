/**
 * `seine run --live`'s counters: every agent's `stats` at time 0 and at the end, what the run added
 * between the two, and from them the report's drops, underlay paths and the counters its expectations
 * name (under the simulator's names).
 */
import { controlRequest } from '../../live/control.js';
import type { LabHandle, LabPlan } from '../../live/lab/index.js';
import type { MetricsSnapshot } from '../../live/metrics.js';
import type { PathResult, Report } from '../../sim/report.js';
import type { Scenario } from '../../scenario/scenario.js';
import { controlPath } from '../lab.js';

export type Stats = Map<string, MetricsSnapshot | string>;

/** Every agent's counters (or why there are none). */
export async function agentStats(lab: LabHandle, plan: LabPlan): Promise<Stats> {
  const stats: Stats = new Map();
  await Promise.all(
    plan.nodes.map(async (n) => {
      try {
        const r = await controlRequest(controlPath(lab, n.name), { op: 'stats' }, 5000);
        stats.set(n.name, r['snapshot'] as MetricsSnapshot);
      } catch (e) {
        stats.set(n.name, `the agent of ${n.name} did not answer (${(e as Error).message})`);
      }
    }),
  );
  return stats;
}

/** What the counters of `now` added to those of `base` (per port, device, peer, tunnel event; drops by reason). */
export function since(now: Stats, base: Stats): Stats {
  const out: Stats = new Map();
  const sub = (a: Record<string, number>, b: Record<string, number> | undefined): Record<string, number> => {
    const r: Record<string, number> = {};
    for (const [k, v] of Object.entries(a)) {
      const d = v - (b?.[k] ?? 0);
      if (d !== 0) r[k] = d;
    }
    return r;
  };
  const all = (a: Record<string, number>, b: Record<string, number> | undefined): Record<string, number> =>
    Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b?.[k] ?? 0)]));
  for (const [node, n] of now) {
    const b = base.get(node);
    if (typeof n === 'string' || typeof b !== 'object') {
      out.set(node, typeof n === 'string' ? n : `the agent of ${node} did not answer at time 0 (${String(b)})`);
      continue;
    }
    const bp = new Map(b.ports.map((p) => [p.port, p]));
    const bd = new Map(b.devices.map((d) => [d.device, d]));
    const bpeer = new Map(b.peers.map((p) => [p.peer, p]));
    out.set(node, {
      ports: n.ports.map((p) => {
        const o = bp.get(p.port);
        return {
          port: p.port,
          kind: p.kind,
          rxPackets: p.rxPackets - (o?.rxPackets ?? 0),
          rxBytes: p.rxBytes - (o?.rxBytes ?? 0),
          txPackets: p.txPackets - (o?.txPackets ?? 0),
          txBytes: p.txBytes - (o?.txBytes ?? 0),
          drops: sub(p.drops, o?.drops),
        };
      }),
      devices: n.devices.map((d) => {
        const o = bd.get(d.device);
        return {
          device: d.device,
          rxPackets: d.rxPackets - (o?.rxPackets ?? 0),
          txPackets: d.txPackets - (o?.txPackets ?? 0),
          rxBatches: d.rxBatches - (o?.rxBatches ?? 0),
          drops: sub(d.drops, o?.drops),
          rxSuper: d.rxSuper - (o?.rxSuper ?? 0),
          rxSuperSegments: d.rxSuperSegments - (o?.rxSuperSegments ?? 0),
          txSuper: d.txSuper - (o?.txSuper ?? 0),
          txSuperSegments: d.txSuperSegments - (o?.txSuperSegments ?? 0),
        };
      }),
      peers: n.peers.map((p) => {
        const o = bpeer.get(p.peer);
        return {
          peer: p.peer,
          txPackets: p.txPackets - (o?.txPackets ?? 0),
          rxPackets: p.rxPackets - (o?.rxPackets ?? 0),
          txInnerBytes: p.txInnerBytes - (o?.txInnerBytes ?? 0),
          espOut: p.espOut - (o?.espOut ?? 0),
          espIn: p.espIn - (o?.espIn ?? 0),
        };
      }),
      tunnel: all(n.tunnel, b.tunnel),
      macs: all(n.macs, b.macs),
      bridge: all(n.bridge, b.bridge),
      gso: all(n.gso, b.gso),
      gsoDrops: sub(n.gsoDrops, b.gsoDrops),
      heap: { allocatedBytes: n.heap.allocatedBytes - b.heap.allocatedBytes, gcs: n.heap.gcs - b.heap.gcs, usedBytes: n.heap.usedBytes },
      macEntries: n.macEntries,
      poolFree: n.poolFree,
      poolSize: n.poolSize,
    });
  }
  return out;
}

export function liveCounter(s: Scenario, stats: Stats, name: string): number | string {
  const [node, group, field, ...rest] = name.split('.');
  const snap = stats.get(node ?? '');
  if (snap === undefined || group === undefined || field === undefined || rest.length > 0)
    return 'no such counter: expected <node>.<group>.<field>, e.g. node1.tunnel.icmpSent';
  if (typeof snap === 'string') return `not available live: ${snap}`;
  const pick = (o: Record<string, number>, what: string): number | string => {
    const v = o[field];
    return typeof v === 'number' ? v : `no such counter: ${what} has no counter "${field}" (it has ${Object.keys(o).join(', ')})`;
  };
  switch (group) {
    case 'macs':
    case 'bridge':
      return pick(snap[group], group);
    case 'tunnel':
      return pick(snap.tunnel, 'tunnel');
    case 'esp': {
      if (s.encryption === null) return `no such counter: ${node} does not encrypt`;
      let out = 0,
        inn = 0;
      for (const p of snap.peers) {
        out += p.espOut;
        inn += p.espIn;
      }
      return pick({ packetsOut: out, packetsIn: inn }, 'esp');
    }
    default: {
      const p = snap.ports.find((x) => x.port === group);
      if (p === undefined)
        return `no such counter: ${node} has no counter group or port "${group}" (groups: tunnel, esp, underlay, or a port: ${snap.ports.map((x) => x.port).join(', ')})`;
      const dropped = Object.values(p.drops).reduce((a, b) => a + b, 0);
      return pick({ rxPackets: p.rxPackets, txPackets: p.txPackets, rxBytes: p.rxBytes, txBytes: p.txBytes, dropped }, `${node}.${group}`);
    }
  }
}

/** node → port → reason → count: the bridge ports' drops and the live devices' (a device serves the port of its name). */
export function liveDrops(stats: Stats): Report['drops'] {
  const out: Report['drops'] = {};
  for (const [node, snap] of stats) {
    if (typeof snap === 'string') continue;
    const d: Record<string, Record<string, number>> = {};
    const add = (port: string, reasons: Record<string, number>): void => {
      for (const [k, v] of Object.entries(reasons)) {
        if (v <= 0) continue;
        const into = (d[port] ??= {});
        into[k] = (into[k] ?? 0) + v;
      }
    };
    for (const p of snap.ports) add(p.port, p.drops);
    for (const dev of snap.devices) add(dev.device, dev.drops);
    if (Object.keys(d).length > 0) out[node] = d;
  }
  return out;
}

export function livePaths(s: Scenario, stats: Stats): PathResult[] {
  const out: PathResult[] = [];
  const peer = (a: string, b: string): { txPackets: number; rxPackets: number } => {
    const snap = stats.get(a);
    const p = typeof snap === 'object' ? snap.peers.find((x) => x.peer === b) : undefined;
    return { txPackets: p?.txPackets ?? 0, rxPackets: p?.rxPackets ?? 0 };
  };
  for (let i = 0; i < s.nodes.length; i++) {
    for (let j = i + 1; j < s.nodes.length; j++) {
      const a = s.nodes[i]!.name,
        b = s.nodes[j]!.name;
      const ab = peer(a, b),
        ba = peer(b, a);
      const sent: [number, number] = [ab.txPackets, ba.txPackets];
      const delivered: [number, number] = [ba.rxPackets, ab.rxPackets];
      if (sent[0] + sent[1] === 0 && delivered[0] + delivered[1] === 0) continue;
      const lost = Math.max(0, sent[0] - delivered[0]) + Math.max(0, sent[1] - delivered[1]);
      out.push({ a, b, sent, delivered, dropped: lost > 0 ? { lost } : {} });
    }
  }
  return out;
}
