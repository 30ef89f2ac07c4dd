/**
 * One node of the overlay, described completely and as plain data: `NodeConfig` holds strings and numbers
 * only (MACs as "02:01:00:00:00:01", addresses as text), so it can be written to a file, sent to a node
 * agent, compared after a reload, or printed for a lab. `buildNode` (node/build.ts) turns it into a
 * datapath around the devices it is handed; the simulator and a live agent build the same node from it.
 *
 * `nodeConfigsFromScenario` computes every node's config from a cluster's topology: addresses and MACs
 * from node and pod positions (deterministic: one topology, one set of configs), l2 segments for VNIs,
 * and each node's peers (every other node in routed mode; in l2 mode the nodes that share a VNI).
 */
import type { PodSpec, Scenario } from '../scenario/scenario.js';
import { parsePrefix } from '../wire/addr.js';
import type { EspCipher } from '../mtu/overhead.js';
import type { TunnelKind } from '../overlay/template.js';
import type { FragmentPolicy, TunnelMode } from '../overlay/tunnel.js';
import { macToString } from '../wire/bytes.js';

/** A topology that cannot be built (its shape was fine, its contents contradict each other). */
export class NodeBuildError extends Error {
  override readonly name: string = 'NodeBuildError';
}

/** A Geneve option sent on every tunnel packet; `data` in hex, a multiple of 4 bytes. */
export interface NodeGeneveOption {
  class: number;
  type: number;
  data: string;
}

export interface NodeTunnelConfig {
  kind: TunnelKind;
  /** Routed mode: the VNI every packet carries. L2 mode: each segment's VNI comes from `vniSegments`. */
  vni: number;
  options: NodeGeneveOption[];
  /** Geneve options this node understands: a critical one not listed is dropped (RFC 8926 §3.5). */
  knownOptions: Array<{ class: number; type: number }>;
  fragmentPolicy: FragmentPolicy;
  icmpTooBig: boolean;
  mssClamp: boolean;
  /**
   * The UDP port tunnel packets go to; null for the kind's own (VXLAN 4789, Geneve 6081). GRE has no
   * UDP: its port carries only ESP's announcements (`GRE_HELLO_PORT`, 4754, by default).
   */
  udpPort: number | null;
  /**
   * GRE only: send and expect the key field with the VNI (RFC 2890), as Antrea's GRE does — 42 bytes of
   * overhead over IPv4; false for the 4-byte header without key, 38 bytes. Absent: true.
   */
  greKey?: boolean;
}

/**
 * Where the cluster secret comes from: a passphrase, whose SHA-256 is the secret (labs: the text sits in
 * the scenario), or a file or environment variable as `loadClusterSecret` reads them (esp/keys.ts).
 */
export type NodeSecretSource = { passphrase: string } | { file: string; allowGroupRead?: boolean } | { env: string };

export interface NodeEspConfig {
  cipher: EspCipher;
  /** ESP in UDP port 4500 (RFC 3948), for paths through NAT. */
  udpEncap: boolean;
  secret: NodeSecretSource;
}

/** The gateway port: the first address of each podCIDR, with its prefix length ("10.244.1.1/24"). */
export interface NodeGatewayConfig {
  mac: string;
  mtu: number;
  ipv4: string | null;
  ipv6: string | null;
}

export interface NodePodConfig {
  name: string;
  mac: string;
  mtu: number;
  /** Addresses without a prefix length: the gateway knows each pod's MAC from them (no ARP needed). */
  ip4: string | null;
  ip6: string | null;
  /** The pod port's access VLAN on the bridge, 0 for untagged. */
  segment: number;
  /** L2 mode: the VNI of the pod's segment between nodes; null in routed mode. */
  vni: number | null;
}

/** The node's own stack behind its gateway (it shares the gateway's addresses; see node/build.ts). */
export interface NodeStackConfig {
  mac: string;
  mtu: number;
}

export interface NodePeerConfig {
  /** The peer's node name (ESP derives the keys of the pair from both names). */
  name: string;
  underlayIp: string;
  /** The MAC of the next hop towards the peer on the underlay. */
  underlayMac: string;
  /** Routed mode: the peer's podCIDRs, routed to it. */
  podCIDRs: string[];
  /** L2 mode: the VNIs whose floods the peer receives. */
  vnis: number[];
}

export interface NodeVniSegment {
  vni: number;
  segment: number;
}

export interface NodeConfig {
  name: string;
  mode: TunnelMode;
  underlayIp: string;
  underlayMac: string;
  tunnel: NodeTunnelConfig;
  esp: NodeEspConfig | null;
  /** Routed mode's gateway; null in l2 mode. */
  gateway: NodeGatewayConfig | null;
  pods: NodePodConfig[];
  stack: NodeStackConfig | null;
  peers: NodePeerConfig[];
  /** L2 mode: which bridge segment each VNI of this node's pods is carried on. */
  vniSegments: NodeVniSegment[];
}

/**
 * The part of a cluster's description a node is computed from: a scenario's topology (scenario files are
 * read by both worlds, src/scenario/). Traffic, faults and expectations play no part.
 */
export type ClusterTopology = Pick<Scenario, 'tunnel' | 'encryption' | 'podMtu' | 'nodes'>;

export interface NodeConfigOptions {
  /** Which nodes get their own stack (routed mode only): all of them, or those named. Default none. */
  stacks?: 'all' | readonly string[];
}

// MACs by position: locally administered, one block per role, node i's at +i+1 (pods: +(i+1)·65536+j+1).
const POD_MAC = 0x02_00_00_00_00_00;
const GW_MAC = 0x02_01_00_00_00_00;
const UPLINK_MAC = 0x02_02_00_00_00_00;
const HOST_MAC = 0x02_03_00_00_00_00;

/** A prefix's length ("10.244.1.0/24" → 24), or null for none. */
export function prefixLen(cidr: string | null): number | null {
  return cidr === null ? null : parsePrefix(cidr, 'podCIDR').len;
}

type TopoPod = PodSpec;

/**
 * L2 mode: each pod's segment on its node. A pod's VLAN is its segment; a VNI without a VLAN gets the
 * first segment no pod uses as a VLAN; between nodes one VNI carries one segment, so two VLANs for one VNI
 * are refused (one node alone may have them: nothing crosses a tunnel). Routed mode: the VLAN or 0.
 */
function segments(t: ClusterTopology): { podSeg: Map<TopoPod, number>; vniSeg: Map<number, number> } {
  const routed = t.tunnel.mode === 'routed';
  const vniSeg = new Map<number, number>();
  const usedVlans = new Set<number>();
  for (const n of t.nodes) for (const p of n.pods) if (p.vlan !== null) usedVlans.add(p.vlan);
  let nextSeg = 1;
  const segmentOf = (p: TopoPod): number => {
    if (routed) return p.vlan ?? 0;
    const vni = p.vni!;
    if (p.vlan !== null) {
      const had = vniSeg.get(vni);
      if (had === undefined) vniSeg.set(vni, p.vlan);
      else if (had !== p.vlan && t.nodes.length > 1)
        throw new NodeBuildError(
          `pod ${p.node}/${p.name}: VNI ${vni} is already carried by VLAN ${had}; between nodes one VNI carries one segment (give the pods on VLAN ${p.vlan} another vni)`,
        );
      return p.vlan;
    }
    let seg = vniSeg.get(vni);
    if (seg === undefined) {
      while (usedVlans.has(nextSeg)) nextSeg++;
      seg = nextSeg++;
      usedVlans.add(seg);
      vniSeg.set(vni, seg);
    }
    return seg;
  };
  const podSeg = new Map<TopoPod, number>();
  for (const n of t.nodes) for (const p of n.pods) podSeg.set(p, segmentOf(p));
  return { podSeg, vniSeg };
}

/** Every node's config, in the topology's node order. Throws `NodeBuildError` for contradictions. */
export function nodeConfigsFromScenario(t: ClusterTopology, opts: NodeConfigOptions = {}): NodeConfig[] {
  const routed = t.tunnel.mode === 'routed';
  const { podSeg, vniSeg } = segments(t);
  const stacks = opts.stacks ?? [];
  const tunnel: NodeTunnelConfig = {
    kind: t.tunnel.type,
    vni: t.tunnel.vni,
    options: t.tunnel.options.map((o) => ({ class: o.class, type: o.type, data: o.data })),
    knownOptions: t.tunnel.options.map((o) => ({ class: o.class, type: o.type })),
    fragmentPolicy: t.tunnel.fragmentPolicy,
    icmpTooBig: t.tunnel.icmpTooBig,
    mssClamp: t.tunnel.mssClamp,
    udpPort: null,
  };
  const e = t.encryption;
  const esp: NodeEspConfig | null = e === null ? null : { cipher: e.cipher, udpEncap: e.udpEncap, secret: { passphrase: e.secret } };
  const uplinkMac = (i: number): string => macToString(UPLINK_MAC + i + 1);
  // Routed, every node is the same peer to all the others: one object each, shared by the n − 1 lists
  // (a 1,000-node cluster would otherwise hold a million alike objects).
  const asPeer = routed
    ? t.nodes.map(
        (b, k): NodePeerConfig => ({
          name: b.name,
          underlayIp: b.underlayIp,
          underlayMac: uplinkMac(k),
          podCIDRs: [b.podCIDR4, b.podCIDR6].filter((c): c is string => c !== null),
          vnis: [],
        }),
      )
    : [];
  return t.nodes.map((n, i): NodeConfig => {
    const l4 = prefixLen(n.podCIDR4),
      l6 = prefixLen(n.podCIDR6);
    const gateway: NodeGatewayConfig | null = !routed
      ? null
      : {
          mac: macToString(GW_MAC + i + 1),
          // The gateway carries what the largest pod sends (a pod may be told a larger MTU than the overlay's).
          mtu: n.pods.reduce((m, p) => Math.max(m, p.mtu), 1500),
          ipv4: n.gateway4 !== null ? `${n.gateway4}/${l4}` : null,
          ipv6: n.gateway6 !== null ? `${n.gateway6}/${l6}` : null,
        };
    const pods = n.pods.map(
      (p, j): NodePodConfig => ({
        name: p.name,
        mac: macToString(POD_MAC + (i + 1) * 65536 + j + 1),
        mtu: p.mtu,
        ip4: p.ip4,
        ip6: p.ip6,
        segment: podSeg.get(p)!,
        vni: routed ? null : p.vni,
      }),
    );
    const wantStack = routed && (stacks === 'all' || stacks.includes(n.name));
    const peers: NodePeerConfig[] = [];
    t.nodes.forEach((b, k) => {
      if (k === i) return;
      if (routed) {
        peers.push(asPeer[k]!);
        return;
      }
      // L2: the VNIs both nodes have pods on, in the peer's pod order; a peer sharing none is no peer.
      const vnis = [...new Set(b.pods.map((p) => p.vni!))].filter((v) => n.pods.some((p) => p.vni === v));
      if (vnis.length > 0) peers.push({ name: b.name, underlayIp: b.underlayIp, underlayMac: uplinkMac(k), podCIDRs: [], vnis });
    });
    return {
      name: n.name,
      mode: t.tunnel.mode,
      underlayIp: n.underlayIp,
      underlayMac: uplinkMac(i),
      tunnel: structuredClone(tunnel),
      esp: esp === null ? null : structuredClone(esp),
      gateway,
      pods,
      stack: wantStack ? { mac: macToString(HOST_MAC + i + 1), mtu: t.podMtu } : null,
      peers,
      vniSegments: routed ? [] : [...new Set(n.pods.map((p) => p.vni!))].map((vni) => ({ vni, segment: vniSeg.get(vni)! })),
    };
  });
}
