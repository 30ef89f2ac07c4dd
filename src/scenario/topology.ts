/**
 * The scenario's topology sections: `underlay`, `tunnel`, `encryption`, the pod MTU they leave, `nodes`
 * with their pods (names, podCIDRs, underlay addresses, pod addresses given or assigned) and `links`.
 * Each section is one function over the document's root mapping; `Topology` is what the later sections
 * (traffic, faults, capture, expectations) look names up in.
 */
import { ESP_CIPHERS, podMtu, type EspCipher, type OverheadSpec } from '../mtu/overhead.js';
import type { TunnelMode } from '../overlay/tunnel.js';
import { TUNNEL_KINDS } from '../overlay/template.js';
import { ipv4ToString } from '../wire/bytes.js';
import { addrKey, bits, type Cidr, cidrsOverlap, claim, inCidr, ipBig, ipText, parseCidr } from './addr.js';
import { num, SCENARIO_LIMITS } from './limits.js';
import { describe, didYouMean, type Obj, type Reader, type V } from './reader.js';
import type { EncryptionSpec, Endpoint, GeneveOptionSpec, LinkSpec, NodeSpec, PodSpec, TunnelSpec, UnderlaySpec } from './types.js';

const UNDERLAY_KEYS = ['mtu', 'latency', 'jitter', 'bandwidth', 'loss', 'family'] as const;
const TUNNEL_KEYS = ['type', 'mode', 'vni', 'options', 'fragmentPolicy', 'icmpTooBig', 'mssClamp'] as const;
const OPTION_KEYS = ['class', 'type', 'data'] as const;
const ENCRYPTION_KEYS = ['cipher', 'udpEncap', 'secret'] as const;
const NODE_KEYS = ['name', 'podCIDR', 'underlayIp', 'pods'] as const;
const POD_KEYS = ['name', 'ip', 'vlan', 'vni', 'mtu'] as const;
const LINK_KEYS = ['between', 'mtu', 'latency', 'jitter', 'bandwidth', 'loss'] as const;
/** Port names a node keeps for itself: its uplink, its gateway, and its own stack (sim/cluster.ts). */
const RESERVED_PORTS: readonly string[] = ['underlay', 'gw', 'host'];

/** The underlay section, and where its MTU was given (errors about the pod MTU point there). */
export interface UnderlayParsed {
  underlay: UnderlaySpec;
  /** The smallest MTU the underlay's family allows (576 or 1280), for per-link MTUs too. */
  minMtu: number;
  mtuAt: V;
}

export function parseUnderlay(r: Reader, o: Obj): UnderlayParsed {
  const uV = o.get('underlay');
  const u = uV === undefined ? null : r.map(uV, UNDERLAY_KEYS);
  const familyV = u?.get('family');
  const family = familyV === undefined ? 4 : r.oneOf(familyV, [4, 6] as const);
  const umtuV = u?.get('mtu');
  const minMtu = family === 4 ? 576 : 1280;
  const mtu = umtuV === undefined ? 1500 : r.int(umtuV, minMtu, 65535, `an MTU in ${minMtu}-65535 (IPv${family} underlay)`);
  const underlay: UnderlaySpec = {
    mtu,
    latencyNs: r.optDuration(u, 'latency') ?? 0,
    jitterNs: r.optDuration(u, 'jitter') ?? 0,
    bandwidthBps: r.optBandwidth(u, 'bandwidth'),
    loss: r.optFraction(u, 'loss') ?? 0,
    family,
  };
  return { underlay, minMtu, mtuAt: { ...(umtuV ?? uV ?? { node: null, at: 0 }), path: 'underlay.mtu' } };
}

/** The tunnel section, and the bytes its Geneve options take (part of the overhead). */
export function parseTunnel(r: Reader, o: Obj): { tunnel: TunnelSpec; optBytes: number } {
  const tV = o.get('tunnel');
  const t = tV === undefined ? null : r.map(tV, TUNNEL_KEYS);
  const typeV = t?.get('type');
  const tunnelType = typeV === undefined ? 'vxlan' : r.oneOf(typeV, TUNNEL_KINDS);
  const modeV = t?.get('mode');
  const mode = modeV === undefined ? 'routed' : r.oneOf(modeV, ['routed', 'l2'] as const);
  const vniV = t?.get('vni');
  const vni = vniV === undefined ? 1 : r.int(vniV, 0, 0xffffff, 'a VNI in 0-16777215');
  const options: GeneveOptionSpec[] = [];
  const optsV = t?.get('options');
  if (optsV !== undefined) {
    if (tunnelType !== 'geneve') r.fail(optsV, `no options (they are Geneve's; tunnel.type is ${tunnelType})`, describe(optsV.node));
    for (const ov of r.list(optsV)) options.push(parseGeneveOption(r, ov));
  }
  const optBytes = options.reduce((s, x) => s + 4 + x.data.length / 2, 0);
  if (optsV !== undefined && optBytes > 252) r.fail(optsV, 'Geneve options of at most 252 bytes in all', `${optBytes} bytes`);
  const fpV = t?.get('fragmentPolicy');
  const tbV = t?.get('icmpTooBig');
  const mcV = t?.get('mssClamp');
  const tunnel: TunnelSpec = {
    type: tunnelType,
    mode,
    vni,
    options,
    fragmentPolicy: fpV === undefined ? 'outer' : r.oneOf(fpV, ['outer', 'inner', 'drop'] as const),
    icmpTooBig: tbV === undefined ? true : r.bool(tbV),
    mssClamp: mcV === undefined ? true : r.bool(mcV),
  };
  return { tunnel, optBytes };
}

function parseGeneveOption(r: Reader, ov: V): GeneveOptionSpec {
  const oo = r.map(ov, OPTION_KEYS);
  const cls = r.int(oo.req('class', 'an option class'), 0, 0xffff, 'a 16-bit option class');
  const type = r.int(oo.req('type', 'an option type'), 0, 0xff, 'an 8-bit option type');
  const dV = oo.get('data');
  const raw = dV === undefined ? '' : r.scalar(dV);
  if (typeof raw !== 'string') r.fail(dV!, 'hex data in quotes, a multiple of 4 bytes, at most 124');
  const data = raw.toLowerCase();
  if (dV !== undefined && (!/^[0-9a-f]*$/.test(data) || data.length % 8 !== 0 || data.length > 248))
    r.fail(dV, 'hex data in quotes, a multiple of 4 bytes, at most 124');
  return { class: cls, type, data };
}

export function parseEncryption(r: Reader, o: Obj): EncryptionSpec | null {
  const eV = o.get('encryption');
  if (eV === undefined) return null;
  const e = r.map(eV, ENCRYPTION_KEYS);
  const ueV = e.get('udpEncap');
  const sV = e.get('secret');
  return {
    cipher: r.oneOf(e.req('cipher', 'an ESP cipher'), Object.keys(ESP_CIPHERS) as EspCipher[]),
    udpEncap: ueV === undefined ? false : r.bool(ueV),
    secret: sV === undefined ? 'seine' : r.str(sV),
  };
}

/** The pod MTU the underlay leaves after the overlay's (and ESP's) overhead: at least 576, or refused. */
export function defaultPodMtu(r: Reader, u: UnderlayParsed, tunnel: TunnelSpec, optBytes: number, encryption: EncryptionSpec | null): number {
  const spec: OverheadSpec = {
    tunnel: tunnel.type,
    underlay: u.underlay.family,
    geneveOptionBytes: optBytes,
    esp: encryption === null ? null : { cipher: encryption.cipher, udpEncap: encryption.udpEncap },
  };
  const what = 'an underlay MTU that leaves pods at least 576 bytes after the overlay';
  let mtu: number;
  try {
    mtu = podMtu(u.underlay.mtu, spec);
  } catch {
    r.fail(u.mtuAt, what, String(u.underlay.mtu));
  }
  if (mtu < 576) r.fail(u.mtuAt, what, `${u.underlay.mtu} (pod MTU ${mtu})`);
  return mtu;
}

/** What the sections after the topology need: the nodes, and names to look up. */
export interface Topology {
  nodes: NodeSpec[];
  nodeIndex: Map<string, NodeSpec>;
  /** `node/pod` → pod. */
  podIndex: Map<string, PodSpec>;
}

/** A pod as read, before its address (when not given) and MTU are filled in. */
interface PendingPod {
  pod: PodSpec;
  pv: V;
  ipV: V | undefined;
  c4: Cidr | null;
  c6: Cidr | null;
  mtuV: V | undefined;
}

/** The nodes section: state shared by its nodes while they are read (names and addresses taken). */
class NodesReader {
  readonly nodes: NodeSpec[] = [];
  readonly nodeIndex = new Map<string, NodeSpec>();
  readonly pending: PendingPod[] = [];
  private podCount = 0;
  private readonly cidrs: Array<{ c: Cidr; path: string }> = [];
  /** Pod addresses taken (`addrKey`) → the key that took it. */
  readonly addrs = new Map<string, string>();
  private readonly underlayIps = new Map<string, string>();

  constructor(
    private readonly r: Reader,
    private readonly mode: TunnelMode,
    private readonly family: 4 | 6,
    /** tunnel.vni: the segment of l2 pods that name none. */
    private readonly vni: number,
  ) {}

  node(nv: V, i: number): void {
    const r: Reader = this.r;
    const no = r.map(nv, NODE_KEYS);
    const nameV = no.req('name', 'a node name');
    const nname = r.str(nameV, 'a node name');
    if (!/^[A-Za-z0-9_.-]+$/.test(nname) || nname === 'underlay' || nname === 'gw')
      r.fail(nameV, 'a node name of letters, digits, ".", "_" and "-" (not "underlay" or "gw")');
    if (this.nodeIndex.has(nname)) r.fail(nameV, 'a unique node name', `${JSON.stringify(nname)} (a second time)`);
    const pcV = this.mode === 'routed' ? no.req('podCIDR', 'a podCIDR (routed mode)') : no.get('podCIDR');
    const [c4, c6] = pcV === undefined ? [null, null] : this.podCidrs(pcV);
    const uip = this.underlayIp(no.get('underlayIp'), nv, nameV, i);
    const node: NodeSpec = {
      name: nname,
      podCIDR4: c4?.text ?? null,
      podCIDR6: c6?.text ?? null,
      gateway4: c4 === null ? null : ipText(4, c4.net + 1n),
      gateway6: c6 === null ? null : ipText(6, c6.net + 1n),
      underlayIp: uip,
      pods: [],
    };
    this.nodes.push(node);
    this.nodeIndex.set(nname, node);
    const podsV = no.get('pods');
    const podVs = podsV === undefined ? [] : r.list(podsV, 'a list of pods');
    this.podCount += podVs.length;
    if (this.podCount > SCENARIO_LIMITS.pods) r.fail(podsV!, `at most ${num(SCENARIO_LIMITS.pods)} pods in all`, `${num(this.podCount)} by node ${nname}`);
    const podNames = new Set<string>();
    for (const pv of podVs) this.pod(pv, node, c4, c6, podNames);
  }

  /** A node's podCIDRs: at most one per family, none overlapping another node's in routed mode. */
  private podCidrs(pcV: V): [Cidr | null, Cidr | null] {
    const r: Reader = this.r;
    let c4: Cidr | null = null;
    let c6: Cidr | null = null;
    for (const cv of r.oneOrList(pcV)) {
      const c = parseCidr(r, cv);
      if ((c.family === 4 ? c4 : c6) !== null) r.fail(cv, 'at most one IPv4 and one IPv6 podCIDR');
      if (c.prefix > bits(c.family) - 2)
        r.fail(cv, `a podCIDR with room for a gateway and pods (prefix at most /${bits(c.family) - 2})`, JSON.stringify(c.text));
      if (this.mode === 'routed') {
        for (const o2 of this.cidrs)
          if (cidrsOverlap(o2.c, c)) r.fail(cv, `a podCIDR that overlaps no other (${o2.path} is ${o2.c.text})`, JSON.stringify(c.text));
        this.cidrs.push({ c, path: cv.path });
      }
      if (c.family === 4) c4 = c;
      else c6 = c;
    }
    return [c4, c6];
  }

  /** The node's underlay address, given or the default for its position; unique. */
  private underlayIp(uipV: V | undefined, nv: V, nameV: V, i: number): string {
    const r: Reader = this.r;
    const family = this.family;
    let uip: string;
    if (uipV !== undefined) {
      const a = ipBig(r.str(uipV, 'an IP address'));
      if (a === null) r.fail(uipV, 'an IP address');
      if (a.family !== family) r.fail(uipV, `an IPv${family} address (underlay.family is ${family})`);
      uip = ipText(a.family, a.n);
    } else {
      if (family === 4 && i + 2 > 0xfffe) r.fail(nameV, 'at most 65,533 nodes with default underlay addresses (172.18.0.2-172.18.255.254); give underlayIp');
      uip = family === 4 ? ipv4ToString((0xac12_0000 + i + 2) >>> 0) : `fd00:18::${(i + 2).toString(16)}`;
    }
    const prevU = this.underlayIps.get(uip);
    if (prevU !== undefined) r.fail(uipV ?? nv, 'a unique underlay address', `${uip} (also ${prevU})`);
    this.underlayIps.set(uip, `${nv.path}.underlayIp`);
    return uip;
  }

  private pod(pv: V, node: NodeSpec, c4: Cidr | null, c6: Cidr | null, podNames: Set<string>): void {
    const r: Reader = this.r;
    const mode = this.mode;
    const nname = node.name;
    const po = r.map(pv, POD_KEYS);
    const pnV = po.req('name', 'a pod name');
    const pname = r.str(pnV, 'a pod name');
    if (!/^[A-Za-z0-9_.-]+$/.test(pname) || RESERVED_PORTS.includes(pname))
      r.fail(pnV, `a pod name of letters, digits, ".", "_" and "-" (not ${RESERVED_PORTS.map((x) => `"${x}"`).join(', ')})`);
    if (podNames.has(pname)) r.fail(pnV, `a pod name unique on node ${nname}`, `${JSON.stringify(pname)} (a second time)`);
    podNames.add(pname);
    const vlanV = po.get('vlan');
    const pvniV = po.get('vni');
    if (pvniV !== undefined && mode !== 'l2') r.fail(pvniV, 'no vni (pods choose a segment in l2 mode only)');
    const pod: PodSpec = {
      name: pname,
      node: nname,
      ip4: null,
      ip6: null,
      vlan: vlanV === undefined ? null : r.int(vlanV, 1, 4094, 'a VLAN in 1-4094'),
      vni: mode === 'l2' ? (pvniV === undefined ? this.vni : r.int(pvniV, 0, 0xffffff, 'a VNI in 0-16777215')) : null,
      mtu: 0,
    };
    const ipV = po.get('ip');
    if (ipV !== undefined) for (const av of r.oneOrList(ipV)) this.podAddress(av, pod, c4, c6);
    node.pods.push(pod);
    this.pending.push({ pod, pv, ipV, c4, c6, mtuV: po.get('mtu') });
  }

  /** An address the file gives a pod: inside its node's podCIDR, not the network, gateway or broadcast. */
  private podAddress(av: V, pod: PodSpec, c4: Cidr | null, c6: Cidr | null): void {
    const r: Reader = this.r;
    const nname = pod.node;
    const a = ipBig(r.str(av, 'an IP address'));
    if (a === null) r.fail(av, 'an IP address');
    if ((a.family === 4 ? pod.ip4 : pod.ip6) !== null) r.fail(av, 'at most one IPv4 and one IPv6 address');
    const c = a.family === 4 ? c4 : c6;
    if (c !== null && !inCidr(c, a.family, a.n)) r.fail(av, `an address inside ${nname}'s podCIDR ${c.text}`, ipText(a.family, a.n));
    if (c === null && this.mode === 'routed') r.fail(av, `an address in a podCIDR of ${nname} (it has no IPv${a.family} podCIDR)`, ipText(a.family, a.n));
    if (c !== null && (a.n === c.net || a.n === c.net + 1n))
      r.fail(av, `a pod address (${ipText(a.family, c.net)} is the network, ${ipText(a.family, c.net + 1n)} the gateway)`, ipText(a.family, a.n));
    if (a.family === 4 && c !== null && a.n === c.net + (1n << BigInt(32 - c.prefix)) - 1n)
      r.fail(av, 'a pod address, not the broadcast address', ipText(4, a.n));
    const txt = ipText(a.family, a.n);
    if (a.family === 4) pod.ip4 = txt;
    else pod.ip6 = txt;
    claim(r, this.addrs, this.mode, pod, txt, av);
  }

  /** Assigns addresses not given, in file order, skipping those taken (explicit ones count first). */
  assignAddresses(): void {
    const r: Reader = this.r;
    const next = new Map<string, bigint>();
    for (const pp of this.pending) {
      if (pp.ipV !== undefined) continue;
      const node = this.nodeIndex.get(pp.pod.node)!;
      if (pp.c4 === null && pp.c6 === null)
        r.fail({ node: pp.pv.node, path: `${pp.pv.path}.ip`, at: pp.pv.at }, `an ip (node ${node.name} has no podCIDR to assign one from)`, 'nothing');
      for (const c of [pp.c4, pp.c6]) {
        if (c === null) continue;
        const key = `${node.name}/${c.family}`;
        let n = next.get(key) ?? c.net + 2n;
        const last = c.net + (1n << BigInt(bits(c.family) - c.prefix)) - (c.family === 4 ? 2n : 1n);
        while (n <= last && this.addrs.has(addrKey(this.mode, pp.pod, ipText(c.family, n)))) n++;
        if (n > last) r.fail({ node: pp.pv.node, path: `${pp.pv.path}.ip`, at: pp.pv.at }, `a free address in ${c.text}`, 'a full podCIDR');
        next.set(key, n + 1n);
        const txt = ipText(c.family, n);
        if (c.family === 4) pp.pod.ip4 = txt;
        else pp.pod.ip6 = txt;
        this.addrs.set(addrKey(this.mode, pp.pod, txt), `${pp.pv.path}.ip`);
      }
    }
  }

  /** Each pod's MTU, given or the default the overlay leaves (which an IPv6 pod needs to be 1280 or more). */
  podMtus(u: UnderlayParsed, podMtu: number): Map<string, PodSpec> {
    const r: Reader = this.r;
    const podIndex = new Map<string, PodSpec>();
    for (const pp of this.pending) {
      const min = pp.pod.ip6 !== null ? 1280 : 576;
      if (pp.mtuV !== undefined) pp.pod.mtu = r.int(pp.mtuV, min, 65535, `an MTU in ${min}-65535${min === 1280 ? ' (the pod has an IPv6 address)' : ''}`);
      else {
        if (podMtu < min)
          r.fail(
            u.mtuAt,
            `an underlay MTU that leaves IPv6 pods at least 1280 bytes after the overlay (${pp.pv.path} has an IPv6 address)`,
            `${u.underlay.mtu} (pod MTU ${podMtu})`,
          );
        pp.pod.mtu = podMtu;
      }
      podIndex.set(`${pp.pod.node}/${pp.pod.name}`, pp.pod);
    }
    return podIndex;
  }
}

/** The nodes section with their pods, addresses and MTUs. */
export function parseNodes(r: Reader, o: Obj, u: UnderlayParsed, tunnel: TunnelSpec, podMtu: number): Topology {
  const nodesV = o.req('nodes', 'a list of nodes');
  const nodeVs = r.list(nodesV, 'a list of nodes');
  if (nodeVs.length === 0) r.fail(nodesV, 'at least one node', 'an empty list');
  if (nodeVs.length > SCENARIO_LIMITS.nodes)
    r.fail(
      nodesV,
      `at most ${num(SCENARIO_LIMITS.nodes)} nodes (each has a VTEP for every other: the mesh grows with the square of the nodes)`,
      `${num(nodeVs.length)} nodes`,
    );
  const nr = new NodesReader(r, tunnel.mode, u.underlay.family, tunnel.vni);
  nodeVs.forEach((nv, i) => nr.node(nv, i));
  nr.assignAddresses();
  const podIndex = nr.podMtus(u, podMtu);
  return { nodes: nr.nodes, nodeIndex: nr.nodeIndex, podIndex };
}

/** A reference to a node (`nodeRef`) or an endpoint `node/pod` or `node` (`endpoint`), refused with a did-you-mean. */
export class Refs {
  constructor(
    private readonly r: Reader,
    private readonly t: Topology,
  ) {}

  nodeRef(v: V, s: string = this.r.str(v, 'a node name')): NodeSpec {
    const n = this.t.nodeIndex.get(s);
    if (n === undefined) {
      const names = [...this.t.nodeIndex.keys()];
      const h = didYouMean(s, names);
      this.r.fail(v, `a node (one of ${names.join(', ')})`, JSON.stringify(s), h === null ? null : `did you mean "${h}"?`);
    }
    return n;
  }

  endpoint(v: V): Endpoint {
    const r: Reader = this.r;
    const { nodeIndex, podIndex } = this.t;
    const s = r.str(v, 'node/pod or node');
    const slash = s.indexOf('/');
    const nn = slash < 0 ? s : s.slice(0, slash);
    if (!nodeIndex.has(nn)) {
      const h = didYouMean(nn, [...nodeIndex.keys()]);
      r.fail(
        v,
        `node/pod or node naming an existing node (${[...nodeIndex.keys()].join(', ')})`,
        JSON.stringify(s),
        h === null ? null : `did you mean "${h}"?`,
      );
    }
    if (slash < 0) return { node: nn, pod: null };
    const pn = s.slice(slash + 1);
    if (!podIndex.has(`${nn}/${pn}`)) {
      const names = nodeIndex.get(nn)!.pods.map((p) => p.name);
      const h = didYouMean(pn, names);
      r.fail(
        v,
        `a pod of node ${nn} (${names.length === 0 ? 'it has none' : names.join(', ')})`,
        JSON.stringify(s),
        h === null ? null : `did you mean "${nn}/${h}"?`,
      );
    }
    return { node: nn, pod: pn };
  }
}

/** The links section: per node pair overrides of the underlay. */
export function parseLinks(r: Reader, o: Obj, refs: Refs, u: UnderlayParsed): LinkSpec[] {
  const { minMtu } = u;
  const family = u.underlay.family;
  const links: LinkSpec[] = [];
  const linkPairs = new Set<string>();
  const linksV = o.get('links');
  for (const lv of linksV === undefined ? [] : r.list(linksV)) {
    const lo = r.map(lv, LINK_KEYS);
    const bV = lo.req('between', 'the two nodes the link joins, [a, b]');
    const ends = r.list(bV, 'the two nodes the link joins, [a, b]');
    if (ends.length !== 2) r.fail(bV, 'two nodes, [a, b]', `${ends.length} item(s)`);
    const a = refs.nodeRef(ends[0]!).name;
    const b = refs.nodeRef(ends[1]!).name;
    if (a === b) r.fail(ends[1]!, 'a node other than the first', JSON.stringify(b));
    const pair = a < b ? `${a}\0${b}` : `${b}\0${a}`;
    if (linkPairs.has(pair)) r.fail(bV, 'one override per node pair', `${a}-${b} a second time`);
    linkPairs.add(pair);
    const mV = lo.get('mtu');
    links.push({
      a,
      b,
      mtu: mV === undefined ? null : r.int(mV, minMtu, 65535, `an MTU in ${minMtu}-65535 (IPv${family} underlay)`),
      latencyNs: r.optDuration(lo, 'latency'),
      jitterNs: r.optDuration(lo, 'jitter'),
      bandwidthBps: r.optBandwidth(lo, 'bandwidth'),
      loss: r.optFraction(lo, 'loss'),
    });
  }
  return links;
}
