/**
 * The node's gateway: the internal L3 port that holds the first address of the node's podCIDR (like
 * antrea-gw0 or flannel's cni0). It answers ARP and Neighbor Solicitation for its addresses and ICMP echo
 * to them, and routes: a destination in the local podCIDR is delivered on the bridge to the neighbour's
 * MAC; a destination in another node's podCIDR goes to that node's VTEP through a routed tunnel.
 *
 * Routed frames leave with the gateway's MAC as source and, towards a tunnel, a fixed virtual MAC as
 * destination (Antrea uses aa:bb:cc:dd:ee:ff the same way): the receiving node's bridge sends frames for
 * that MAC to its own gateway, which routes them to the pod. Every routing hop decrements the TTL.
 *
 * Everything on the per-packet path works in place on the packet buffer and allocates nothing; only
 * solicitations for unresolved neighbours (rate-limited) build new frames.
 */
import { Ipv6Table, U32Map } from '../packet/addrtable.js';
import { mask4, mask6, mask6Into, parseAddr, parsePrefix } from '../wire/addr.js';
import type { PacketBuf } from '../packet/buf.js';
import { eq16, ipv4ToString, ipv6ToString, macToString, rd16, rd32, rdMac, wr16, wr32, wrMac } from '../wire/bytes.js';
import { checksum, finish, ipv4HeaderValid, onesSum, pseudoSumV6At, updateChecksum16 } from '../wire/checksum.js';
import { DropReason } from '../wire/drop.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST } from '../wire/icmpv4.js';
import { ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT } from '../wire/icmpv6.js';
import { Ipv4View } from '../wire/ipv4.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from '../wire/ipproto.js';
import { Ipv6View, IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { compose } from '../wire/stack.js';
import { PortCounters } from './port.js';
import type { TraceValue } from './trace.js';

/** Destination MAC of routed frames sent into a tunnel. */
export const GLOBAL_VIRTUAL_MAC = 0xaabbccddeeff;
/** Its bytes, copied into every frame routed into a tunnel (see `Gateway.macBytes` for why not the number). */
const GLOBAL_VIRTUAL_MAC_BYTES = Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff);

/** One solicitation per unresolved address per second at most. */
const SOLICIT_INTERVAL_NS = 1e9;

/** Where a route sends packets: a tunnel port and the VTEP behind it. */
export interface RouteTarget {
  port: number;
  vtep: number;
}

/** Longest-prefix match over one map per distinct prefix length (there are few), longest first. */
class RouteTable4 {
  private lens: number[] = [];
  private readonly byLen = new Map<number, U32Map>();
  private readonly targets: RouteTarget[] = [];
  add(addr: number, len: number, t: RouteTarget): void {
    let m = this.byLen.get(len);
    if (m === undefined) {
      this.byLen.set(len, (m = new U32Map()));
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    m.set(addr & mask4(len), this.targets.push(t) - 1);
  }
  /** Removes the route for exactly this prefix; false when there is none. (Its target slot stays unused.) */
  remove(addr: number, len: number): boolean {
    const m = this.byLen.get(len);
    if (m === undefined || !m.delete(addr & mask4(len))) return false;
    if (m.size === 0) {
      this.byLen.delete(len);
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    return true;
  }
  /** Every route: masked address (uint32), length, target. */
  list(): Array<{ addr: number; len: number; target: RouteTarget }> {
    const out: Array<{ addr: number; len: number; target: RouteTarget }> = [];
    for (const [len, m] of this.byLen) m.forEach((k, t) => out.push({ addr: k >>> 0, len, target: this.targets[t]! }));
    return out;
  }
  lookup(addr: number): RouteTarget | undefined {
    const lens = this.lens;
    for (let i = 0; i < lens.length; i++) {
      const len = lens[i]!;
      const t = this.byLen.get(len)!.get(addr & mask4(len));
      if (t >= 0) return this.targets[t];
    }
    return undefined;
  }
}

class RouteTable6 {
  private lens: number[] = [];
  private readonly byLen = new Map<number, Ipv6Table<RouteTarget>>();
  private readonly scratch = new Uint8Array(16);
  add(addr: Uint8Array, len: number, t: RouteTarget): void {
    let m = this.byLen.get(len);
    if (m === undefined) {
      this.byLen.set(len, (m = new Ipv6Table()));
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    const k = new Uint8Array(16);
    mask6Into(addr, 0, len, k);
    m.set(k, t);
  }
  remove(addr: Uint8Array, len: number): boolean {
    const m = this.byLen.get(len);
    if (m === undefined) return false;
    mask6Into(addr, 0, len, this.scratch);
    if (!m.delete(this.scratch)) return false;
    if (m.size === 0) {
      this.byLen.delete(len);
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    return true;
  }
  list(): Array<{ addr: Uint8Array; len: number; target: RouteTarget }> {
    const out: Array<{ addr: Uint8Array; len: number; target: RouteTarget }> = [];
    for (const [len, m] of this.byLen) for (const [addr, target] of m.entries()) out.push({ addr, len, target });
    return out;
  }
  lookup(b: Uint8Array, o: number): RouteTarget | undefined {
    for (const len of this.lens) {
      mask6Into(b, o, len, this.scratch);
      const t = this.byLen.get(len)!.get(this.scratch, 0);
      if (t !== undefined) return t;
    }
    return undefined;
  }
}

export interface GatewayConfig {
  /** The gateway's address and the node's podCIDR, e.g. "10.244.1.1/24". */
  ipv4?: string;
  /** The same for IPv6, e.g. "fd00:10:244:1::1/64". */
  ipv6?: string;
}

/** What the bridge does with a packet after `Gateway.handle`. */
export enum GatewayVerdict {
  /** Send to `p.outPort` / `p.outAux` (a tunnel and VTEP, or a port). */
  Out = 0,
  /** Switch on `p.segment` by the (rewritten) destination MAC. */
  Switch = 1,
  /** The gateway used the packet up (an ARP reply it learned from, a broadcast not for it): release it. */
  Consumed = 2,
}

/** Called by the gateway to have the bridge flood a frame it built (a solicitation) on its segment. */
export type GatewayEmit = (p: PacketBuf) => void;

export class Gateway {
  /** Traffic and drops inside the gateway (routing decisions), apart from the bridge's port counters. */
  readonly counters = new PortCounters();
  /** Packets the gateway used up, and frames it built itself. */
  consumed = 0;
  generated = 0;
  readonly v4: number | null = null;
  readonly v4Len: number = 0;
  readonly v6: Uint8Array | null = null;
  readonly v6Len: number = 0;
  private readonly v4Net: number = 0;
  /** IPv4 neighbours: address → index into `neighMacs`. */
  private readonly neigh4 = new U32Map();
  private readonly neighMacs: number[] = [];
  /** The same MACs as bytes, six per neighbour: what routing copies into a frame (see `macBytes`). */
  private neighMacBytes = new Uint8Array(6 * 16);
  private readonly neigh4Ips: number[] = [];
  private readonly neigh6 = new Ipv6Table<number>();
  private readonly routes4 = new RouteTable4();
  private readonly routes6 = new RouteTable6();
  private readonly solicited = new Map<string, number>();
  private readonly ip4 = new Ipv4View();
  private readonly ip6 = new Ipv6View();
  /** Detail of the last routing decision, for trace records of traced packets. */
  lastDetail: { [k: string]: TraceValue } = {};
  /**
   * The MAC, on the gateway's segment, of the node's own stack behind the gateway (Antrea's antrea-gw0
   * seen from the host), or null. With one, IP packets for the gateway's address that the gateway does not
   * answer itself (all but echo requests) are switched to it instead of dropped as `GatewayNotHandled`.
   */
  hostMac: number | null = null;
  /**
   * With a host stack: what a pod sends to an address that is neither a pod's nor routed through a tunnel
   * goes to the node's stack, which routes it on (the node's underlay, the world, a port published with
   * DNAT answering its client), as antrea-gw0 is the pods' way out. Off, such packets are `NoRoute` (the
   * simulator's overlay has nothing beyond it). Packets from a tunnel never take it: no transit.
   */
  defaultToHost = false;
  /**
   * The time (ns) of the batch being routed, set by the bridge before it hands frames over (only
   * neighbour solicitations use it). A field, not an argument of `handle`: a time in ns is a double, and
   * handing one to a call V8 did not inline boxes it — 16 bytes of heap per packet per call.
   */
  now = 0;
  /**
   * `mac` as its six bytes, which routing writes as the source of every frame it forwards. A MAC as a
   * number is a double (48 bits, past the small integers V8 keeps unboxed), and handing one to a call
   * V8 did not inline boxes it: measured on a live node, that was 16 bytes of heap per routed packet
   * per write. A byte copy allocates nothing.
   */
  private readonly macBytes: Uint8Array;

  constructor(
    readonly mac: number,
    readonly segment: number,
    cfg: GatewayConfig,
    private readonly alloc: () => PacketBuf | null,
    private readonly emit: GatewayEmit,
  ) {
    this.macBytes = new Uint8Array(6);
    wrMac(this.macBytes, 0, mac);
    if (cfg.ipv4 === undefined && cfg.ipv6 === undefined) throw new RangeError('gateway: give ipv4 and/or ipv6 (address/prefix length of the podCIDR)');
    if (cfg.ipv4 !== undefined) {
      const p = parsePrefix(cfg.ipv4, 'gateway ipv4');
      if (p.family !== 4) throw new RangeError(`gateway ipv4: "${cfg.ipv4}" is not IPv4`);
      this.v4 = p.addr;
      this.v4Len = p.len;
      this.v4Net = (p.addr & mask4(p.len)) >>> 0;
    }
    if (cfg.ipv6 !== undefined) {
      const p = parsePrefix(cfg.ipv6, 'gateway ipv6');
      if (p.family !== 6) throw new RangeError(`gateway ipv6: "${cfg.ipv6}" is not IPv6`);
      this.v6 = p.addr;
      this.v6Len = p.len;
    }
  }

  /** Whether `a` is in the local IPv4 podCIDR. */
  isLocal4(a: number): boolean {
    return this.v4 !== null && (a & mask4(this.v4Len)) >>> 0 === this.v4Net;
  }

  isLocal6(b: Uint8Array, o: number): boolean {
    const g = this.v6;
    if (g === null) return false;
    const m = mask6(this.v6Len);
    for (let i = 0; i < 16; i++) if (((b[o + i]! ^ g[i]!) & m[i]!) !== 0) return false;
    return true;
  }

  /** A static neighbour (what a CNI agent knows of its pods). */
  addNeighbor(ip: string, mac: number): void {
    const a = parseAddr(ip, 'neighbor');
    if (a.family === 4) this.setNeighbor4(a.v4, mac);
    else this.neigh6.set(a.v6, mac);
  }

  private setNeighbor4(ip: number, mac: number): void {
    const i = this.neigh4.get(ip);
    const at = i >= 0 ? i : this.neighMacs.length;
    if (6 * at + 6 > this.neighMacBytes.length) {
      const grown = new Uint8Array(2 * this.neighMacBytes.length);
      grown.set(this.neighMacBytes);
      this.neighMacBytes = grown;
    }
    wrMac(this.neighMacBytes, 6 * at, mac);
    if (i >= 0) {
      this.neighMacs[i] = mac;
      return;
    }
    this.neigh4.set(ip, this.neighMacs.push(mac) - 1);
    this.neigh4Ips.push(ip);
  }

  /**
   * Removes a static neighbour (a pod that left); false when there was none. The last IPv4 entry moves
   * into the freed slot, so the tables stay dense: routing reads a neighbour's MAC bytes by index.
   */
  removeNeighbor(ip: string): boolean {
    const a = parseAddr(ip, 'neighbor');
    if (a.family === 6) return this.neigh6.delete(a.v6);
    const v4 = a.v4;
    const i = this.neigh4.get(v4);
    if (i < 0) return false;
    const last = this.neighMacs.length - 1;
    if (i !== last) {
      const movedIp = this.neigh4Ips[last]!;
      this.neighMacs[i] = this.neighMacs[last]!;
      this.neigh4Ips[i] = movedIp;
      this.neighMacBytes.copyWithin(6 * i, 6 * last, 6 * last + 6);
      this.neigh4.set(movedIp, i);
    }
    this.neighMacs.pop();
    this.neigh4Ips.pop();
    this.neigh4.delete(v4);
    return true;
  }

  /** Routes `prefix` (another node's podCIDR) to a tunnel port and VTEP. */
  addRoute(prefix: string, target: RouteTarget): void {
    const p = parsePrefix(prefix, 'route');
    if (p.family === 4) this.routes4.add(p.addr, p.len, target);
    else this.routes6.add(p.addr, p.len, target);
  }

  /** Removes the route for `prefix` (compared after masking, as lookups do); false when there is none. */
  removeRoute(prefix: string): boolean {
    const p = parsePrefix(prefix, 'route');
    return p.family === 4 ? this.routes4.remove(p.addr, p.len) : this.routes6.remove(p.addr, p.len);
  }

  /**
   * Removes every route through tunnel port `port` to VTEP `vtep` (the VTEP is going away); returns how
   * many. Walks every route: a reconfiguration, not a per-packet call.
   */
  removeRoutesVia(port: number, vtep: number): number {
    let n = 0;
    for (const r of this.routes4.list()) if (r.target.port === port && r.target.vtep === vtep && this.routes4.remove(r.addr, r.len)) n++;
    for (const r of this.routes6.list()) if (r.target.port === port && r.target.vtep === vtep && this.routes6.remove(r.addr, r.len)) n++;
    return n;
  }

  /** The routes, IPv4 then IPv6, each by address then prefix length (allocates: for display and tests). */
  routes(): Array<{ prefix: string; port: number; vtep: number }> {
    const v4 = this.routes4.list().sort((a, b) => a.addr - b.addr || a.len - b.len);
    const v6 = this.routes6.list().sort((a, b) => Buffer.compare(a.addr, b.addr) || a.len - b.len);
    return [
      ...v4.map((r) => ({ prefix: `${ipv4ToString(r.addr)}/${r.len}`, port: r.target.port, vtep: r.target.vtep })),
      ...v6.map((r) => ({ prefix: `${ipv6ToString(r.addr, 0)}/${r.len}`, port: r.target.port, vtep: r.target.vtep })),
    ];
  }

  /** Neighbour table for display (allocates). */
  neighbors(): Array<{ ip: string; mac: string }> {
    const out: Array<{ ip: string; mac: string }> = [];
    this.neigh4Ips.forEach((a, i) => out.push({ ip: ipv4ToString(a), mac: macToString(this.neighMacs[i]!) }));
    for (const [a, m] of this.neigh6.entries()) out.push({ ip: ipv6ToString(a), mac: macToString(m) });
    return out;
  }

  /**
   * Handles a frame the bridge delivered to the gateway port (untagged; `p.segment` is the gateway's).
   * Returns a `GatewayVerdict`, or a negative DropReason. `traced` asks for `lastDetail`.
   */
  handle(p: PacketBuf): number {
    const b = p.data;
    const s = p.start;
    if (p.end - s < ETH_HEADER_LEN) return -DropReason.EthTruncated;
    const type = rd16(b, s + 12);
    const toUs = rdMac(b, s) === this.mac || rdMac(b, s) === GLOBAL_VIRTUAL_MAC;
    if (type === ETHERTYPE_ARP) return this.arp(p);
    if (type === ETHERTYPE_IPV4) return toUs ? this.route4(p) : GatewayVerdict.Consumed;
    if (type === ETHERTYPE_IPV6) return this.ipv6(p, toUs);
    return toUs ? -DropReason.GatewayNotHandled : GatewayVerdict.Consumed;
  }

  private arp(p: PacketBuf): number {
    const b = p.data;
    const a = p.start + ETH_HEADER_LEN;
    if (p.end - a < 28) return -DropReason.ArpTruncated;
    if (rd16(b, a) !== 1 || rd16(b, a + 2) !== ETHERTYPE_IPV4 || b[a + 4] !== 6 || b[a + 5] !== 4) return -DropReason.ArpUnsupportedHardware;
    const op = rd16(b, a + 6);
    const senderMac = rdMac(b, a + 8);
    const senderIp = rd32(b, a + 14);
    const targetIp = rd32(b, a + 24);
    // Glean: a pod that speaks ARP tells us where it is.
    if (this.isLocal4(senderIp) && senderIp !== this.v4) this.setNeighbor4(senderIp, senderMac);
    if (op !== 1 || this.v4 === null || targetIp !== this.v4) return GatewayVerdict.Consumed;
    // Turn the request into the reply in place (RFC 826).
    wr16(b, a + 6, 2);
    wrMac(b, a + 18, senderMac);
    wr32(b, a + 24, senderIp);
    wrMac(b, a + 8, this.mac);
    wr32(b, a + 14, this.v4);
    wrMac(b, p.start, senderMac);
    b.set(this.macBytes, p.start + 6);
    p.segment = this.segment;
    if (p.traced) this.lastDetail = { arp: 'reply', ip: ipv4ToString(this.v4), mac: macToString(this.mac), to: macToString(senderMac) };
    return GatewayVerdict.Switch;
  }

  private route4(p: PacketBuf): number {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const v = this.ip4.at(b, ip);
    const r = v.check(p.end - ip);
    if (r !== null) return -r;
    const hl = (b[ip]! & 0x0f) << 2;
    if (!ipv4HeaderValid(p.view, ip, hl)) return -DropReason.Ipv4BadChecksum;
    // Ethernet padding beyond the datagram is not forwarded.
    p.end = ip + rd16(b, ip + 2);
    const dst = rd32(b, ip + 16);
    if (this.v4 !== null && dst === this.v4) return this.local4(p, ip, hl);
    const ttl = b[ip + 8]!;
    if (ttl <= 1) return -DropReason.TtlExceeded;
    const fromTunnel = p.tunVtep >= 0;
    if (this.isLocal4(dst)) {
      const ni = this.neigh4.get(dst);
      if (ni < 0) {
        this.solicit4(dst, this.now);
        this.lastDetail = { route: 'local', dst: ipv4ToString(dst), neighbor: 'unresolved' };
        return -DropReason.NeighborUnresolved;
      }
      decTtl4(b, ip);
      const nb = this.neighMacBytes;
      for (let j = 0, o = 6 * ni; j < 6; j++) b[p.start + j] = nb[o + j]!;
      b.set(this.macBytes, p.start + 6);
      p.segment = this.segment;
      if (p.traced) this.lastDetail = { route: 'local', dst: ipv4ToString(dst), neighbor: macToString(this.neighMacs[ni]!), ttl: ttl - 1 };
      return GatewayVerdict.Switch;
    }
    const t = fromTunnel ? undefined : this.routes4.lookup(dst);
    if (t === undefined && this.defaultToHost && !fromTunnel && this.hostMac !== null) return this.toHost(p);
    if (t === undefined) {
      if (p.traced) this.lastDetail = { dst: ipv4ToString(dst), route: fromTunnel ? 'none (no transit between tunnels)' : 'none' };
      return -DropReason.NoRoute;
    }
    decTtl4(b, ip);
    b.set(GLOBAL_VIRTUAL_MAC_BYTES, p.start);
    b.set(this.macBytes, p.start + 6);
    p.outPort = t.port;
    p.outAux = t.vtep;
    if (p.traced) this.lastDetail = { route: 'tunnel', dst: ipv4ToString(dst), ttl: ttl - 1 };
    return GatewayVerdict.Out;
  }

  /** A packet for the gateway's own IPv4 address: echo is answered, the rest is not for a switch. */
  private local4(p: PacketBuf, ip: number, hl: number): number {
    const b = p.data;
    const icmp = ip + hl;
    const end = p.end;
    if (b[ip + 9] !== IPPROTO_ICMP || (rd16(b, ip + 6) & 0x3fff) !== 0 || end - icmp < 8 || b[icmp] !== ICMPV4_ECHO_REQUEST) return this.toHost(p);
    if (checksum(b, icmp, end - icmp) !== 0) return -DropReason.Icmpv4BadChecksum;
    // Swap the addresses (the header sum does not change), reset the TTL, answer.
    const src = rd32(b, ip + 12);
    wr32(b, ip + 12, rd32(b, ip + 16));
    wr32(b, ip + 16, src);
    // TTL 65: the routing step below takes one off, so the reply leaves with 64 (local6 does the same).
    const oldTtlProto = rd16(b, ip + 8);
    const newTtlProto = (65 << 8) | (oldTtlProto & 0xff);
    wr16(b, ip + 8, newTtlProto);
    wr16(b, ip + 10, updateChecksum16(rd16(b, ip + 10), oldTtlProto, newTtlProto));
    const oldType = rd16(b, icmp);
    const newType = (ICMPV4_ECHO_REPLY << 8) | (oldType & 0xff);
    wr16(b, icmp, newType);
    wr16(b, icmp + 2, updateChecksum16(rd16(b, icmp + 2), oldType, newType));
    if (p.traced) this.lastDetail = { local: 'echo reply', to: ipv4ToString(src) };
    const detail = this.lastDetail;
    // The reply is routed like any packet from the gateway (to a local pod or back through a tunnel).
    const tunVtep = p.tunVtep;
    p.tunVtep = -1;
    const r = this.route4(p);
    p.tunVtep = tunVtep;
    if (p.traced) this.lastDetail = { ...detail, ...this.lastDetail };
    return r;
  }

  private ipv6(p: PacketBuf, toUs: boolean): number {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const v = this.ip6.at(b, ip);
    const r = v.check(p.end - ip);
    if (r !== null) return -r;
    p.end = ip + IPV6_HEADER_LEN + v.payloadLen;
    const nh = b[ip + 6]!;
    const l4 = ip + IPV6_HEADER_LEN;
    if (nh === IPPROTO_ICMPV6 && p.end - l4 >= 8) {
      const t = b[l4]!;
      if (t === ICMPV6_NEIGHBOR_SOLICIT || t === ICMPV6_NEIGHBOR_ADVERT) return this.nd(p, l4);
    }
    if (!toUs) return GatewayVerdict.Consumed;
    const g = this.v6;
    if (g !== null && eq16(b, ip + 24, g, 0)) return this.local6(p, ip, l4, nh);
    return this.route6(p, ip);
  }

  private route6(p: PacketBuf, ip: number): number {
    const b = p.data;
    const hop = b[ip + 7]!;
    if (hop <= 1) return -DropReason.TtlExceeded;
    if (this.isLocal6(b, ip + 24)) {
      const mac = this.neigh6.get(b, ip + 24);
      if (mac === undefined) {
        this.solicit6(b, ip + 24, this.now);
        this.lastDetail = { route: 'local', dst: ipv6ToString(b, ip + 24), neighbor: 'unresolved' };
        return -DropReason.NeighborUnresolved;
      }
      b[ip + 7] = hop - 1;
      wrMac(b, p.start, mac);
      b.set(this.macBytes, p.start + 6);
      p.segment = this.segment;
      if (p.traced) this.lastDetail = { route: 'local', dst: ipv6ToString(b, ip + 24), neighbor: macToString(mac), hopLimit: hop - 1 };
      return GatewayVerdict.Switch;
    }
    const t = p.tunVtep >= 0 ? undefined : this.routes6.lookup(b, ip + 24);
    if (t === undefined && this.defaultToHost && p.tunVtep < 0 && this.hostMac !== null) return this.toHost(p);
    if (t === undefined) {
      if (p.traced) this.lastDetail = { dst: ipv6ToString(b, ip + 24), route: 'none' };
      return -DropReason.NoRoute;
    }
    b[ip + 7] = hop - 1;
    b.set(GLOBAL_VIRTUAL_MAC_BYTES, p.start);
    b.set(this.macBytes, p.start + 6);
    p.outPort = t.port;
    p.outAux = t.vtep;
    if (p.traced) this.lastDetail = { route: 'tunnel', dst: ipv6ToString(b, ip + 24), hopLimit: hop - 1 };
    return GatewayVerdict.Out;
  }

  private local6(p: PacketBuf, ip: number, l4: number, nh: number): number {
    const b = p.data;
    const end = p.end;
    if (nh !== IPPROTO_ICMPV6 || end - l4 < 8 || b[l4] !== ICMPV6_ECHO_REQUEST) return this.toHost(p);
    if (finish(onesSum(b, l4, end - l4, pseudoSumV6At(b, ip + 8, ip + 24, IPPROTO_ICMPV6, end - l4))) !== 0) return -DropReason.Icmpv6BadChecksum;
    // Swap the addresses (the pseudo-header sum does not change), answer, route back.
    for (let i = 0; i < 16; i++) {
      const t = b[ip + 8 + i]!;
      b[ip + 8 + i] = b[ip + 24 + i]!;
      b[ip + 24 + i] = t;
    }
    const oldType = rd16(b, l4);
    const newType = (ICMPV6_ECHO_REPLY << 8) | (oldType & 0xff);
    wr16(b, l4, newType);
    wr16(b, l4 + 2, updateChecksum16(rd16(b, l4 + 2), oldType, newType));
    b[ip + 7] = 65;
    if (p.traced) this.lastDetail = { local: 'echo reply', to: ipv6ToString(b, ip + 24) };
    const detail = this.lastDetail;
    const tunVtep = p.tunVtep;
    p.tunVtep = -1;
    const r = this.route6(p, ip);
    p.tunVtep = tunVtep;
    if (p.traced) this.lastDetail = { ...detail, ...this.lastDetail };
    return r;
  }

  /** A packet for the gateway's address that the node's own stack takes, if there is one (not routed: TTL kept). */
  private toHost(p: PacketBuf): number {
    const mac = this.hostMac;
    if (mac === null) return -DropReason.GatewayNotHandled;
    wrMac(p.data, p.start, mac);
    p.data.set(this.macBytes, p.start + 6);
    p.segment = this.segment;
    if (p.traced) this.lastDetail = { local: "to the node's own stack", neighbor: macToString(mac) };
    return GatewayVerdict.Switch;
  }

  /** Neighbor Solicitation for the gateway's address → Neighbor Advertisement in place; NS/NA glean. */
  private nd(p: PacketBuf, l4: number): number {
    const b = p.data;
    const ip = l4 - IPV6_HEADER_LEN;
    const end = p.end;
    if (end - l4 < 24 || b[ip + 7] !== 255) return -DropReason.Icmpv6BadNdOption;
    if (finish(onesSum(b, l4, end - l4, pseudoSumV6At(b, ip + 8, ip + 24, IPPROTO_ICMPV6, end - l4))) !== 0) return -DropReason.Icmpv6BadChecksum;
    const type = b[l4]!;
    // Link-layer address option: source (1) in an NS, target (2) in an NA.
    let lla = -1;
    for (let o = l4 + 24; o + 8 <= end; ) {
      const len = b[o + 1]! * 8;
      if (len === 0 || o + len > end) return -DropReason.Icmpv6BadNdOption;
      if (b[o] === (type === ICMPV6_NEIGHBOR_SOLICIT ? 1 : 2) && len >= 8) lla = rdMac(b, o + 2);
      o += len;
    }
    const unspecified = isZero16(b, ip + 8);
    if (type === ICMPV6_NEIGHBOR_ADVERT) {
      if (lla >= 0 && this.isLocal6(b, l4 + 8)) this.neigh6.set(b.slice(l4 + 8, l4 + 24), lla);
      return GatewayVerdict.Consumed;
    }
    if (lla >= 0 && !unspecified && this.isLocal6(b, ip + 8)) this.neigh6.set(b.slice(ip + 8, ip + 24), lla);
    const g = this.v6;
    if (g === null || !eq16(b, l4 + 8, g, 0)) return GatewayVerdict.Consumed;
    // NA (RFC 4861 §7.2.4): to the solicitor, or all-nodes when it had no address yet; S unless so; O set.
    const srcMac = rdMac(b, p.start + 6);
    if (unspecified) {
      b.set(ALL_NODES, ip + 24);
      wrMac(b, p.start, 0x333300000001);
    } else {
      b.copyWithin(ip + 24, ip + 8, ip + 24);
      wrMac(b, p.start, srcMac);
    }
    b.set(g, ip + 8);
    b.set(this.macBytes, p.start + 6);
    // NA body: type, code, checksum, flags (R=0 S O), reserved, target (unchanged), then the TLLA option.
    const naEnd = l4 + 32;
    if (naEnd > end && p.put(naEnd - end) < 0) return -DropReason.HeadroomShort;
    p.end = naEnd;
    b[l4] = ICMPV6_NEIGHBOR_ADVERT;
    b[l4 + 1] = 0;
    wr16(b, l4 + 2, 0);
    wr32(b, l4 + 4, unspecified ? 0x20000000 : 0x60000000);
    b[l4 + 24] = 2;
    b[l4 + 25] = 1;
    wrMac(b, l4 + 26, this.mac);
    wr16(b, ip + 4, naEnd - l4);
    b[ip + 7] = 255;
    wr16(b, l4 + 2, finish(onesSum(b, l4, naEnd - l4, pseudoSumV6At(b, ip + 8, ip + 24, IPPROTO_ICMPV6, naEnd - l4))));
    p.segment = this.segment;
    if (p.traced) this.lastDetail = { nd: 'advertisement', ip: ipv6ToString(g), mac: macToString(this.mac) };
    return GatewayVerdict.Switch;
  }

  private solicit4(dst: number, now: number): void {
    if (this.v4 === null || !this.due(`4/${dst}`, now)) return;
    const p = this.alloc();
    if (p === null) return;
    p.load(
      compose([
        { kind: 'eth', repr: { dst: 0xffffffffffff, src: this.mac, vlans: [], etherType: ETHERTYPE_ARP } },
        { kind: 'arp', repr: { operation: 1, senderMac: this.mac, senderIp: this.v4, targetMac: 0, targetIp: dst } },
      ]),
    );
    this.generated++;
    this.emit(p);
  }

  private solicit6(b: Uint8Array, o: number, now: number): void {
    const g = this.v6;
    if (g === null || !this.due(`6/${ipv6ToString(b, o)}`, now)) return;
    const q = this.alloc();
    if (q === null) return;
    // Solicited-node multicast address ff02::1:ffXX:XXXX and its MAC 33:33:ff:XX:XX:XX (RFC 4291, RFC 2464).
    const snm = new Uint8Array(16);
    snm.set([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, b[o + 13]!, b[o + 14]!, b[o + 15]!]);
    const target = b.slice(o, o + 16);
    const frame = compose([
      {
        kind: 'eth',
        repr: { dst: 0x3333ff000000 + ((b[o + 13]! << 16) | (b[o + 14]! << 8) | b[o + 15]!), src: this.mac, vlans: [], etherType: ETHERTYPE_IPV6 },
      },
      { kind: 'ipv6', repr: { src: g, dst: snm, nextHeader: IPPROTO_ICMPV6, hopLimit: 255, trafficClass: 0, flowLabel: 0, payloadLen: 32 } },
      { kind: 'icmpv6', repr: { kind: 'neighborSolicit', target, sourceLinkAddr: this.mac } },
    ]);
    q.load(frame);
    this.generated++;
    this.emit(q);
  }

  private due(key: string, now: number): boolean {
    const last = this.solicited.get(key);
    if (last !== undefined && now - last < SOLICIT_INTERVAL_NS) return false;
    if (this.solicited.size > 4096) this.solicited.clear();
    this.solicited.set(key, now);
    return true;
  }
}

const ALL_NODES = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

function decTtl4(b: Uint8Array, ip: number): void {
  const old = rd16(b, ip + 8);
  const nw = old - 0x100;
  wr16(b, ip + 8, nw);
  wr16(b, ip + 10, updateChecksum16(rd16(b, ip + 10), old, nw));
}

function isZero16(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 16; i++) if (b[o + i] !== 0) return false;
  return true;
}
