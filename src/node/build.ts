/**
 * The one builder of a node's datapath, for the simulator and a live agent alike: from a `NodeConfig`
 * and the devices it is handed (the underlay, one per pod, the node's own stack), a bridge wired as the
 * overlay model says —
 *
 * - routed mode: a gateway port holding the first address of each podCIDR, static neighbour entries for
 *   the pods (the CNI knows their MACs, as in Antrea: no ARP from the gateway towards its pods), and a
 *   route to every peer's podCIDRs through its VTEP;
 * - l2 mode: each VNI mapped to its segment, and each peer a VTEP of the VNIs it shares (head-end
 *   replication of floods to it);
 * - one tunnel port on the underlay device, with ESP between every pair of nodes when configured;
 * - pods on access ports of their segment; the node's own stack on a port of its own.
 *
 * The builder makes no device: what frames cross, and how (a simulated link, a TAP, a UDP socket), is
 * the caller's. Peers can be added and removed afterwards (`addPeer`, `removePeer`, `applyPeers`), so
 * a live agent applies a changed peer list without rebuilding: the other peers' traffic is untouched.
 */
import type { NativeAead } from '../esp/aead-batch.js';
import { Bridge, type Clock } from '../datapath/bridge.js';
import type { Device } from '../datapath/device.js';
import type { Port } from '../datapath/port.js';
import type { SeqJournal } from '../esp/journal.js';
import { type ClusterSecret, clusterSecretFromPassphrase, loadClusterSecret } from '../esp/keys.js';
import { EspSadb } from '../esp/sadb.js';
import type { Tunnel, VtepConfig } from '../overlay/tunnel.js';
import type { PacketPool } from '../packet/buf.js';
import { fromHex, macFromString } from '../wire/bytes.js';
import type { NodeConfig, NodePeerConfig, NodePodConfig, NodeSecretSource } from './config.js';

/** The bridge port names every node has (reports and counters name them). */
export const GATEWAY_PORT = 'gw';
export const TUNNEL_PORT = 'tunnel';
/** The bridge port of the node's own stack. */
export const HOST_PORT = 'host';

/** What the builder is handed: buffers, time, and the devices to plug in. */
export interface NodeEnv {
  pool: PacketPool;
  clock: Clock;
  /** Outer frames in and out of the tunnel port. */
  underlay: Device;
  /** The device behind each pod's port (asked once per pod, in the config's order). */
  pod: (pod: NodePodConfig) => Device;
  /** The node's own stack, when the config has one. */
  stack?: Device;
  /**
   * The one outer UDP source port the underlay sends from (a live node sends through a socket bound to
   * the tunnel's port, so the kernel puts that port on the wire whatever the template says). Default: a
   * port per inner flow (RFC 7348 §5, RFC 8926 §3.3), as the simulator sends.
   */
  udpSourcePort?: number;
  /**
   * Randomness for ESP (config `esp`): the tunnel's SA database draws its incarnation from it once, so
   * that every start of the node has new keys (esp/sadb.ts). A live agent passes crypto randomness
   * (`(n) => crypto.randomBytes(n)`); the simulator its seeded generator. Default: none — the
   * incarnation is then a fixed function of the node and its tunnel, which only a simulation or a test
   * may use (a restarted node would send under its old keys again; `NodeDatapath.espRestartSafe` says).
   */
  random?: (n: number) => Uint8Array;
  /**
   * A sequence journal for the tunnel's SA database (`SeqJournal.open(path, { node: name })`, one file per
   * node; the caller closes it when the node stops). Optional with derived keys, whose incarnations already
   * make every start fresh; it keeps epochs and sequence numbers across restarts as well.
   */
  espJournal?: SeqJournal;
  /**
   * ESP seals and opens a whole bridge batch per AEAD call (esp/sadb.ts `EspConfig.batchAead`): the live
   * agent passes the native addon. Default: one packet at a time, as the simulator runs.
   */
  batchAead?: { native: NativeAead | null };
}

/** A built node. Its peers change only through `addPeer`, `removePeer` and `applyPeers`. */
export interface NodeDatapath {
  readonly name: string;
  readonly mode: NodeConfig['mode'];
  readonly bridge: Bridge;
  /** The gateway port (routed mode), or null. */
  readonly gateway: Port | null;
  readonly tunnelPort: Port;
  readonly tunnel: Tunnel;
  /** Pod ports by pod name. */
  readonly pods: ReadonlyMap<string, Port>;
  /** The port of the node's own stack, or null. */
  readonly stack: Port | null;
  /**
   * The peers in force, in the order they were added: the objects given (not copies: don't change them,
   * give new ones). A list, not a map: a node of a 1,000-node cluster has 999 peers, and a map per node
   * would cost the simulator tens of megabytes for lookups only a reload makes.
   */
  readonly peers: readonly NodePeerConfig[];
  /** Whether tunnel traffic is ESP-protected (peers then get SAs). */
  readonly encrypted: boolean;
  /** With ESP: whether its incarnation came from `NodeEnv.random` (else a restart repeats keys). True without ESP. */
  readonly espRestartSafe: boolean;
}

/**
 * The cluster secret from its source: a passphrase's SHA-256 (of its NFC-normalised UTF-8; 32 bytes, the
 * minimum length), or a file or variable.
 */
export function clusterSecretFrom(src: NodeSecretSource): ClusterSecret {
  if ('passphrase' in src) return clusterSecretFromPassphrase(src.passphrase);
  return loadClusterSecret(src);
}

function mac(s: string, node: string, what: string): number {
  const m = macFromString(s);
  if (m === null) throw new RangeError(`node ${node}: ${what} "${s}" is not a MAC (aa:bb:cc:dd:ee:ff)`);
  return m;
}

/** Builds the node's bridge around the devices in `env` (see the module comment). */
export function buildNode(cfg: NodeConfig, env: NodeEnv): NodeDatapath {
  const name = cfg.name;
  if ((cfg.stack !== null) !== (env.stack !== undefined)) {
    throw new RangeError(
      `node ${name}: ${cfg.stack !== null ? "the config has a stack of the node's own: give its device (env.stack)" : 'a stack device without a stack in the config'}`,
    );
  }
  if ((cfg.gateway !== null) !== (cfg.mode === 'routed')) throw new RangeError(`node ${name}: a gateway belongs to routed mode, and routed mode needs one`);
  const bridge = new Bridge({ name, pool: env.pool, clock: env.clock });
  const g = cfg.gateway;
  const gateway =
    g === null
      ? null
      : bridge.addGateway({
          name: GATEWAY_PORT,
          mac: mac(g.mac, name, 'gateway mac'),
          mtu: g.mtu,
          ...(g.ipv4 !== null ? { ipv4: g.ipv4 } : {}),
          ...(g.ipv6 !== null ? { ipv6: g.ipv6 } : {}),
        });
  const t = cfg.tunnel;
  const e = cfg.esp;
  const tunnelPort = bridge.addTunnel(TUNNEL_PORT, env.underlay, {
    kind: t.kind,
    mode: cfg.mode,
    localIp: cfg.underlayIp,
    localMac: mac(cfg.underlayMac, name, 'underlayMac'),
    vni: t.vni,
    ...(env.udpSourcePort !== undefined ? { srcPortMin: env.udpSourcePort, srcPortMax: env.udpSourcePort } : {}),
    options: t.options.map((o) => ({ class: o.class, type: o.type, data: fromHex(o.data) })),
    knownOptions: t.knownOptions.map((o) => ({ class: o.class, type: o.type })),
    fragmentPolicy: t.fragmentPolicy,
    icmpTooBig: t.icmpTooBig,
    mssClamp: t.mssClamp,
    ...(t.udpPort !== null ? { dstPort: t.udpPort } : {}),
    ...(t.greKey !== undefined ? { greKey: t.greKey } : {}),
    ...(e !== null
      ? {
          esp: {
            cipher: e.cipher,
            secret: clusterSecretFrom(e.secret),
            node: name,
            udpEncap: e.udpEncap,
            ...(env.random !== undefined ? { random: env.random } : {}),
            ...(env.espJournal !== undefined ? { journal: env.espJournal } : {}),
            ...(env.batchAead !== undefined ? { batchAead: env.batchAead } : {}),
          },
        }
      : {}),
  });
  const tunnel = bridge.tunnel(tunnelPort);
  for (const m of cfg.vniSegments) tunnel.mapVni(m.vni, m.segment);
  const pods = new Map<string, Port>();
  for (const p of cfg.pods) {
    const port = bridge.addPort(p.name, env.pod(p), { ...(p.segment !== 0 ? { vlan: p.segment } : {}), mtu: p.mtu });
    pods.set(p.name, port);
    if (g !== null) {
      const m = mac(p.mac, name, `pod ${p.name} mac`);
      if (g.ipv4 !== null && p.ip4 !== null) bridge.addNeighbor(p.ip4, m);
      if (g.ipv6 !== null && p.ip6 !== null) bridge.addNeighbor(p.ip6, m);
    }
  }
  let stack: Port | null = null;
  if (cfg.stack !== null) {
    // As antrea-gw0 on the host side: the stack shares the gateway's addresses (the gateway answers ARP,
    // ND and echo for them and hands it the rest), so it is found by a static MAC entry, not by learning.
    if (gateway === null) throw new RangeError(`node ${name}: its own stack sits behind the gateway, which l2 mode has not`);
    const m = mac(cfg.stack.mac, name, 'stack mac');
    stack = bridge.addPort(HOST_PORT, env.stack!, { mtu: cfg.stack.mtu });
    bridge.addStaticMac(gateway.vlan, m, stack);
    bridge.gateway!.hostMac = m;
  }
  const nd: NodeDatapath = {
    name,
    mode: cfg.mode,
    bridge,
    gateway,
    tunnelPort,
    tunnel,
    pods,
    stack,
    peers: [],
    encrypted: e !== null,
    espRestartSafe: tunnel.sadb?.restartSafe ?? true,
  };
  const names = new Set<string>();
  for (const p of cfg.peers) {
    if (names.has(p.name)) throw new RangeError(`node ${name}: peer ${p.name} is listed twice`);
    names.add(p.name);
    attach(nd, p);
  }
  return nd;
}

function peerList(nd: NodeDatapath): NodePeerConfig[] {
  // Made by buildNode as an array; exposed read-only so that peers change only here.
  return nd.peers as NodePeerConfig[];
}

function peerIndex(nd: NodeDatapath, name: string): number {
  return nd.peers.findIndex((p) => p.name === name);
}

/**
 * Adds a peer: its VTEP (with ESP, SAs derived for the pair; a peer removed before takes up its SAs
 * again) and, routed, a route to each of its podCIDRs. A refused peer leaves nothing behind.
 */
export function addPeer(nd: NodeDatapath, peer: NodePeerConfig): void {
  if (peerIndex(nd, peer.name) >= 0) throw new RangeError(`node ${nd.name}: peer ${peer.name} is already there (remove it first, or use applyPeers)`);
  attach(nd, peer);
}

function attach(nd: NodeDatapath, peer: NodePeerConfig): void {
  if (peer.name === nd.name) throw new RangeError(`node ${nd.name}: a node is not its own peer`);
  const routed = nd.mode === 'routed';
  // Built field by field rather than with spreads: a 1,000-node simulated cluster adds a million VTEPs.
  const m = macFromString(peer.underlayMac);
  if (m === null) mac(peer.underlayMac, nd.name, `peer ${peer.name} underlayMac`); // throws, naming it
  const vtep: VtepConfig = { ip: peer.underlayIp, mac: m! };
  if (!routed) vtep.vnis = peer.vnis;
  if (nd.encrypted) vtep.esp = { node: peer.name };
  nd.bridge.addVtep(nd.tunnelPort, vtep);
  try {
    if (routed) for (const cidr of peer.podCIDRs) nd.bridge.addRoute(cidr, { tunnel: TUNNEL_PORT, vtep: peer.underlayIp });
  } catch (err) {
    nd.bridge.removeVtep(nd.tunnelPort, peer.underlayIp);
    throw err;
  }
  // Kept as given, not copied: configs share peer objects between nodes (see nodeConfigsFromScenario).
  peerList(nd).push(peer);
}

/**
 * Removes a peer: its VTEP, the routes and MAC entries through it, its SAs. What is sent to its pods is
 * then dropped (`NoRoute` at the gateway, routed), what it still sends is dropped at the tunnel port
 * (`UnknownVtep`, with ESP too).
 */
export function removePeer(nd: NodeDatapath, name: string): void {
  const i = peerIndex(nd, name);
  if (i < 0) throw new RangeError(`node ${nd.name}: no peer ${name}`);
  nd.bridge.removeVtep(nd.tunnelPort, nd.peers[i]!.underlayIp);
  peerList(nd).splice(i, 1);
}

function samePeer(a: NodePeerConfig, b: NodePeerConfig): boolean {
  const eq = <T>(x: readonly T[], y: readonly T[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);
  return (
    a.name === b.name &&
    a.underlayIp === b.underlayIp &&
    macFromString(a.underlayMac) === macFromString(b.underlayMac) &&
    eq(a.podCIDRs, b.podCIDRs) &&
    eq(a.vnis, b.vnis)
  );
}

/**
 * Makes the peers those of `peers` (a reloaded configuration): peers gone or changed are removed, then
 * new and changed ones added; unchanged peers are not touched. Returns the names removed and added (a
 * changed peer is in both).
 */
export function applyPeers(nd: NodeDatapath, peers: readonly NodePeerConfig[]): { removed: string[]; added: string[] } {
  const want = new Map(peers.map((p) => [p.name, p]));
  if (want.size !== peers.length) throw new RangeError(`node ${nd.name}: a peer is listed twice`);
  const removed: string[] = [];
  const added: string[] = [];
  for (const had of [...nd.peers]) {
    const w = want.get(had.name);
    if (w !== undefined && samePeer(had, w)) continue;
    removePeer(nd, had.name);
    removed.push(had.name);
  }
  const have = new Set(nd.peers.map((p) => p.name));
  for (const p of peers) {
    if (have.has(p.name)) continue;
    attach(nd, p);
    added.push(p.name);
  }
  return { removed, added };
}

/**
 * The control plane's introduction of two ESP nodes that are each other's peers: they exchange their
 * announcements (esp/hello.ts) directly rather than over the underlay, so both can send at once. The
 * simulator does this for every pair when it builds a cluster (its underlay then carries only what the
 * scenario sends); a live node without such a channel exchanges them over the tunnel instead. False when
 * they are not each other's peers or do not encrypt.
 */
export function introducePeers(a: NodeDatapath, b: NodeDatapath, now = 0): boolean {
  const sa = a.tunnel.sadb;
  const sb = b.tunnel.sadb;
  const pa = a.peers.find((p) => p.name === b.name);
  const pb = b.peers.find((p) => p.name === a.name);
  if (sa === null || sb === null || pa === undefined || pb === undefined) return false;
  const ai = a.tunnel.findVtep(pa.underlayIp);
  const bi = b.tunnel.findVtep(pb.underlayIp);
  if (ai < 0 || bi < 0) return false;
  EspSadb.introduce(sa, ai, sb, bi, now);
  return true;
}
