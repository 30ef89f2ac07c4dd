/**
 * What several live tests build the same way: a two-node l2 topology in memory (one pod a node, one VNI),
 * turned into the agents' configs by the real `nodeConfigsFromScenario`; and a TCP transfer whose two ends
 * hash what they send and receive, so a test can compare exact bytes.
 */
import { nodeConfigsFromScenario, type ClusterTopology, type NodeConfig } from '../../src/node/config.js';

type TopoPod = ClusterTopology['nodes'][number]['pods'][number];
type TopoNode = ClusterTopology['nodes'][number];

/** One node of a two-node lab: its name, its underlay address, and its one pod's name and address. */
export interface LabNode {
  name: string;
  underlayIp: string;
  pod: string;
  podIp4: string;
}

export interface TwoNodes {
  tunnel: ClusterTopology['tunnel']['type'];
  vni: number;
  podMtu: number;
  encryption: ClusterTopology['encryption'];
  nodes: readonly [LabNode, LabNode];
}

export function twoNodeTopology(s: TwoNodes): ClusterTopology {
  const node = (n: LabNode): TopoNode => {
    const pod: TopoPod = { name: n.pod, node: n.name, ip4: n.podIp4, ip6: null, vlan: null, vni: s.vni, mtu: s.podMtu };
    return { name: n.name, podCIDR4: null, podCIDR6: null, gateway4: null, gateway6: null, underlayIp: n.underlayIp, pods: [pod] };
  };
  return {
    tunnel: { type: s.tunnel, mode: 'l2', vni: s.vni, options: [], fragmentPolicy: 'outer', icmpTooBig: true, mssClamp: true },
    encryption: s.encryption,
    podMtu: s.podMtu,
    nodes: [node(s.nodes[0]), node(s.nodes[1])],
  };
}

/** Both nodes' configs for `twoNodeTopology(s)`. */
export function twoNodeConfigs(s: TwoNodes): [NodeConfig, NodeConfig] {
  const [a, b] = nodeConfigsFromScenario(twoNodeTopology(s));
  return [a!, b!];
}

/** The receiver (`node -e`, argument: the address to listen on): hashes what one connection brings, prints {bytes, sha256} when it ends. */
export function hashServer(port: number): string {
  return `
const net = require('node:net'), { createHash } = require('node:crypto');
const srv = net.createServer((s) => {
  const h = createHash('sha256'); let n = 0;
  s.on('data', (d) => { h.update(d); n += d.length; });
  s.on('end', () => { console.log(JSON.stringify({ bytes: n, sha256: h.digest('hex') })); s.end(); srv.close(); });
});
srv.listen(${port}, process.argv[1], () => console.log('listening'));
`;
}

/**
 * The sender (`node -e`, arguments: the address and a byte count): that many bytes of an xorshift stream
 * started at `seed`, in 64 KiB writes with backpressure; prints {bytes, sha256}.
 */
export function hashClient(port: number, seed: number): string {
  return `
const net = require('node:net'), { createHash } = require('node:crypto');
const total = Number(process.argv[2]); const h = createHash('sha256');
let x = ${seed >>> 0} >>> 0, sent = 0;
const s = net.connect(${port}, process.argv[1], () => pump());
function chunk() {
  const n = Math.min(65536, total - sent), b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b.writeUInt32LE(x, i); }
  sent += n; h.update(b); return b;
}
function pump() {
  while (sent < total) { if (!s.write(chunk())) { s.once('drain', pump); return; } }
  s.end(() => console.log(JSON.stringify({ bytes: sent, sha256: h.digest('hex') })));
}
s.on('error', (e) => { console.error(String(e)); process.exit(1); });
`;
}
