/**
 * The simulator's output, reduced to SHA-256 digests: for every lab in scenarios/ and two seeds (its
 * own and 7), the `--json` report, the text report and every capture file; a few scenarios the labs do
 * not cover (IPv6 underlay with ESP in UDP, nodes' own stacks); and traces of representative labs.
 * `golden.json` holds the digests the code gave before the node model moved out of sim/cluster.ts
 * (`node dist/test/sim/golden-gen.js` writes it); `golden.test.ts` recomputes and compares, so any change
 * of a byte in any of these outputs shows, and a deliberate one means regenerating the file.
 */
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, formatReport } from '../../src/sim/cluster.js';
import { loadScenario, parseScenario, type Scenario } from '../../src/scenario/scenario.js';
import { traceScenario, type TraceRequest } from '../../src/sim/tracer.js';
import { bigClusterJson } from '../../bench/cluster-scenarios.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LABS = join(ROOT, 'scenarios');
/** Where the generator writes and the test reads the digests (the source tree, not dist/). */
export const GOLDEN_FILE = join(ROOT, 'test', 'sim', 'golden.json');

export type Golden = Record<string, string>;

function sha(x: string | Uint8Array): string {
  return createHash('sha256').update(x).digest('hex');
}

/** Scenarios beyond the labs, for what no lab builds: an IPv6 underlay, Geneve with ESP in UDP, IPv6 pods, nodes' own stacks. */
const EXTRA: Record<string, string> = {
  'extra-v6': `
name: v6
duration: 1s
underlay: { mtu: 1500, latency: 10us, family: 6 }
tunnel: { type: geneve }
encryption: { cipher: chacha20-poly1305, udpEncap: true }
nodes:
  - { name: n1, podCIDR: [10.244.1.0/24, "fd00:1::/64"], pods: [{ name: a }] }
  - { name: n2, podCIDR: [10.244.2.0/24, "fd00:2::/64"], pods: [{ name: b }] }
traffic:
  - { name: p4, type: ping, from: n1/a, to: n2/b, count: 3, interval: 10ms }
  - { name: p6, type: ping, from: n1/a, to: n2/b, family: 6, count: 3, interval: 10ms }
  - { name: u6, type: udp, from: n1/a, to: n2/b, family: 6, count: 50, sizes: [100, 1300] }
  - { name: t6, type: tcp, from: n1/a, to: n2/b, family: 6, bytes: 100000 }
  - { name: big4, type: udp, from: n1/a, to: n2/b, count: 5, size: 4000 }
capture: [n1/a, n1/underlay, n2/underlay]
`,
  'extra-stacks': `
name: ns
duration: 1s
underlay: { latency: 50us }
nodes:
  - { name: n1, podCIDR: [10.244.1.0/24, "fd00:1::/64"], pods: [{ name: a }] }
  - { name: n2, podCIDR: [10.244.2.0/24, "fd00:2::/64"], pods: [{ name: b }] }
  - { name: n3, podCIDR: 10.244.3.0/24, pods: [{ name: c }, { name: d, mtu: 1500 }] }
traffic:
  - { name: node-to-remote-pod, type: ping, from: n1, to: n2/b, count: 3, interval: 10ms }
  - { name: node-to-local-pod, type: ping, from: n1, to: n1/a, count: 3, interval: 10ms }
  - { name: node-to-node, type: ping, from: n1, to: n2, count: 3, interval: 10ms }
  - { name: node6, type: ping, from: n1, to: n2/b, family: 6, count: 3, interval: 10ms }
  - { name: udp-pod-to-node, type: udp, from: n2/b, to: n1, count: 100 }
  - { name: tcp-node-to-pod, type: tcp, from: n1, to: n2/b, bytes: 100000 }
  - { name: tcp-pod-to-node, type: tcp, from: n3/d, to: n1, bytes: 100000, start: 300ms }
  - { name: udp-node-to-node, type: udp, from: n2, to: n1, count: 50, start: 500ms }
capture: [n1/underlay, n1/a, n3/d]
`,
};

/** bench/sim.ts's big cluster, scaled down: 40 nodes × 4 pods, 2,000 UDP flows of 8 datagrams over 1 s. */
const BENCH_CLUSTER = { nodes: 40, podsPerNode: 4, flows: 2000, packets: 8, intervalUs: 1000, startSpreadMs: 500, durationMs: 1000, seed: 1 };

/** Traces of representative labs (and of the extra scenarios): routed, ESP, drops, l2 flooding, node stacks. */
const TRACES: Array<[string, TraceRequest]> = [
  ['esp-encryption', { from: 'node1/client', to: 'node2/server', proto: 'icmp' }],
  ['pmtu-black-hole', { from: 'node1/client', to: 'node3/server', proto: 'icmp', size: 1400 }],
  ['pmtu-black-hole', { from: 'node1/client', to: 'node2/server', proto: 'udp', size: 4000 }],
  ['link-failure', { from: 'node1/client', to: 'node2/server', proto: 'icmp', atNs: 2e9 }],
  ['vlan-isolation', { from: 'node1/red1', to: 'node1/blue1', proto: 'icmp' }],
  ['flood-and-learn', { from: 'node1/a', to: 'node3/c', proto: 'udp' }],
  ['tenants-vni', { from: 'node1/b1', to: 'node2/b2', proto: 'tcp' }],
  ['geneve-options', { from: 'node1/big', to: 'node2/server', proto: 'icmp', size: 1431 }],
  ['extra-stacks', { from: 'n1', to: 'n2/b', proto: 'tcp' }],
  ['extra-stacks', { from: 'n2/b', to: 'n1', proto: 'udp', family: 6 }],
  ['extra-v6', { from: 'n1/a', to: 'n2/b', proto: 'icmp', family: 6, seed: 7 }],
];

function scenarios(): Map<string, () => Scenario> {
  const out = new Map<string, () => Scenario>();
  for (const f of readdirSync(LABS)
    .filter((x) => x.endsWith('.yaml'))
    .sort())
    out.set(f.slice(0, -'.yaml'.length), () => loadScenario(join(LABS, f)));
  for (const [k, text] of Object.entries(EXTRA)) out.set(k, () => parseScenario(text, `${k}.yaml`));
  // The 1,000-node benchmark's cluster (bench/sim.ts) at a size a test can run: the simulator's speed-ups
  // for that run (lazy paths, shared in-flight tables) must leave its report as it was.
  const bench = bigClusterJson(BENCH_CLUSTER);
  out.set('bench-cluster', () => parseScenario(bench, 'bench-cluster.json'));
  return out;
}

/** Every digest, keyed by what it is of. */
export function computeGolden(): Golden {
  const g: Golden = {};
  const all = scenarios();
  for (const [name, load] of all) {
    const s = load();
    for (const seed of [...new Set([s.seed, 7])]) {
      const c = new Cluster(load(), { seed });
      c.run();
      const r = c.report();
      g[`${name}@${seed}/json`] = sha(JSON.stringify(r));
      g[`${name}@${seed}/text`] = sha(formatReport(r));
      for (const k of c.captures) g[`${name}@${seed}/capture/${k.name}`] = sha(k.bytes());
    }
    // What `seine run --json` prints (no --pcap: nothing is captured, and the report says so).
    const c = new Cluster(load(), { capture: false });
    c.run();
    g[`${name}@${s.seed}/json-nocapture`] = sha(JSON.stringify(c.report()));
  }
  TRACES.forEach(([name, req], i) => {
    g[`trace${i}/${name}/${req.from}->${req.to}/${req.proto}`] = sha(JSON.stringify(traceScenario(all.get(name)!(), req)));
  });
  return g;
}
