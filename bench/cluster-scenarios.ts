/**
 * Scenarios generated for the simulator benchmarks (bench/sim.ts), from a seed so one call gives one
 * scenario: YAML or JSON text in the format of src/scenario/scenario.ts, loaded with `parseScenario` like
 * any scenario file (addresses, MTUs and every check included). Both forms of one spec load as the same
 * scenario (test/scenario/json.test.ts).
 */
import { Rng } from '../src/sim/engine.js';

export interface BigClusterSpec {
  nodes: number;
  podsPerNode: number;
  flows: number;
  /** Packets per flow. */
  packets: number;
  /** Gap between a flow's packets. */
  intervalUs: number;
  /** Flows start uniformly in [0, startSpreadMs). */
  startSpreadMs: number;
  durationMs: number;
  seed: number;
}

/** Node i's podCIDR (10.a.b.0/24) and underlay address (172.18.x.y): unique for up to 65,000 nodes. */
function nodeAddrs(i: number): { cidr: string; underlay: string } {
  const u = i + 2;
  return { cidr: `10.${(i >> 8) & 255}.${i & 255}.0/24`, underlay: `172.${18 + (u >> 16)}.${(u >> 8) & 255}.${u & 255}` };
}

const SIZES = [64, 576, 1400];

interface FlowPlan {
  from: [number, number];
  to: [number, number];
  startUs: number;
}

/** The flows: random pod pairs on different nodes, random start times (all from `s.seed`). */
function planFlows(s: BigClusterSpec): FlowPlan[] {
  const rng = new Rng(s.seed);
  const out: FlowPlan[] = [];
  for (let k = 0; k < s.flows; k++) {
    const from = rng.int(s.nodes);
    let to = rng.int(s.nodes - 1);
    if (to >= from) to++;
    const startUs = rng.int(s.startSpreadMs * 1000);
    out.push({ from: [from, rng.int(s.podsPerNode)], to: [to, rng.int(s.podsPerNode)], startUs });
  }
  return out;
}

function topologyYaml(s: BigClusterSpec): string[] {
  const out: string[] = [];
  out.push(`name: bench-${s.nodes}x${s.podsPerNode}-${s.flows}-flows`, `seed: ${s.seed}`, `duration: ${s.durationMs}ms`);
  out.push('underlay: { mtu: 1500, latency: 50us, bandwidth: 10Gbit }', 'tunnel: { type: vxlan, mode: routed }', 'nodes:');
  for (let i = 0; i < s.nodes; i++) {
    const a = nodeAddrs(i);
    out.push(`  - name: n${i}`, `    podCIDR: ${a.cidr}`, `    underlayIp: ${a.underlay}`, '    pods:');
    for (let j = 0; j < s.podsPerNode; j++) out.push(`      - name: p${j}`);
  }
  return out;
}

/**
 * A routed VXLAN cluster: `nodes` nodes of `podsPerNode` pods, and `flows` UDP flows between random pods on
 * different nodes (seeded), each `packets` packets of 64, 576 or 1,400 bytes (cycled), started at random in
 * the first `startSpreadMs`.
 */
export function bigClusterYaml(s: BigClusterSpec): string {
  const out = topologyYaml(s);
  out.push('traffic:');
  planFlows(s).forEach((f, k) => {
    out.push(
      `  - { name: f${k}, type: udp, from: n${f.from[0]}/p${f.from[1]}, to: n${f.to[0]}/p${f.to[1]}, count: ${s.packets}, interval: ${s.intervalUs}us, sizes: [${SIZES.join(', ')}], start: ${f.startUs}us }`,
    );
  });
  return out.join('\n') + '\n';
}

/** The same scenario as `bigClusterYaml`, as JSON: what a generated experiment hands `seine run` (a `.json` file). */
export function bigClusterJson(s: BigClusterSpec): string {
  const nodes = [];
  for (let i = 0; i < s.nodes; i++) {
    const a = nodeAddrs(i);
    const pods = [];
    for (let j = 0; j < s.podsPerNode; j++) pods.push({ name: `p${j}` });
    nodes.push({ name: `n${i}`, podCIDR: a.cidr, underlayIp: a.underlay, pods });
  }
  // Each flow's line written as JSON.stringify writes it, without the object: 100,000 of them are part of
  // the build the bench times. Names, endpoints and durations need no escapes.
  const sizes = JSON.stringify(SIZES);
  const traffic = planFlows(s).map(
    (f, k) =>
      `{"name":"f${k}","type":"udp","from":"n${f.from[0]}/p${f.from[1]}","to":"n${f.to[0]}/p${f.to[1]}","count":${s.packets},"interval":"${s.intervalUs}us","sizes":${sizes},"start":"${f.startUs}us"}`,
  );
  const doc = {
    name: `bench-${s.nodes}x${s.podsPerNode}-${s.flows}-flows`,
    seed: s.seed,
    duration: `${s.durationMs}ms`,
    underlay: { mtu: 1500, latency: '50us', bandwidth: '10Gbit' },
    tunnel: { type: 'vxlan', mode: 'routed' },
    nodes,
  };
  // A flow per line: an error's line number then points at its flow, as in the YAML.
  return `${JSON.stringify(doc).slice(0, -1)},"traffic":[\n${traffic.join(',\n')}\n]}\n`;
}
