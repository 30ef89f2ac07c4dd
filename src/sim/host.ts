/**
 * A simulated host (a pod, or a node's own stack): one Ethernet interface that is a `Device` — plug it into
 * a bridge port (`bridge.addPort(name, host)`) or join it to any other device with `connect` — holding a MAC,
 * an IPv4 address/prefix, an optional IPv6 address/prefix, default gateways and an MTU.
 *
 * What it does, like a small Linux stack, one file per protocol:
 * - ARP and Neighbor Discovery (`neigh.ts`): next hops resolved by the host itself, static neighbours allowed.
 * - ICMP (`icmp.ts`): echo answered; path MTU from frag-needed and Packet Too Big, per destination.
 * - `ping` (`ping.ts`), with DF (always for IPv6) refusing what is above the path MTU, as `ping -M do` does.
 * - UDP generators and sinks (`udp.ts`).
 * - TCP (`sim/tcp.ts`, joined to the host by `hosttcp.ts`): `tcpSend` opens a bulk NewReno connection,
 *   `tcpListen` sinks what arrives; segments of no connection are answered with RST.
 * - Here: the interface, the IP sending path (header, checksum, next hop, IPv4 fragmentation at the
 *   source) and receiving (checks, reassembly, dispatch by protocol).
 * The protocol modules see the host through `HostStack` (stack.ts) and do not import this file.
 *
 * Sizes given to `ping` are ICMP data bytes (as `ping -s`); sizes of UDP flows are IP packet lengths (IP
 * header included, Ethernet not), so Simple IMIX is 7:4:1 of 64/576/1500-byte IP packets.
 *
 * Deterministic: time is the simulator's, every random choice comes from `sim.rng`. Frames leave in
 * batches of one; received frames are read in place with offsets (no `dissect`).
 */
import type { Device, Receiver } from '../datapath/device.js';
import { mask4, parsePrefix } from '../wire/addr.js';
import { PacketBatch, PacketPool, type PacketBuf } from '../packet/buf.js';
import { fragmentIpv4 } from '../mtu/fragment.js';
import { DropReason } from '../wire/drop.js';
import { DONE as REASM_DONE, HELD as REASM_HELD, Reassembler } from '../mtu/reassembly.js';
import { eq16, ipv4FromString, ipv6FromString, MAC_BROADCAST, rd16, rd32, rdMac, wr16, wr32, wrMac } from '../wire/bytes.js';
import { checksum, finish, onesSum, pseudoSumV4, pseudoSumV6At } from '../wire/checksum.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT } from '../wire/icmpv6.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { type Addr, parseAddr } from '../wire/addr.js';
import type { Simulator } from './engine.js';
import { HostTcp } from './hosttcp.js';
import { icmpv4In, icmpv6In, PathMtu } from './icmp.js';
import { Neighbours, SNM_PREFIX, snmOf } from './neigh.js';
import { Pinger, type PingOptions, type PingStats } from './ping.js';
import type { HostCounters, HostStack } from './stack.js';
import type { TcpFlow, TcpListener, TcpSendOptions } from './tcp.js';
import { UdpFlow, type UdpFlowOptions, udpIn, UdpSink } from './udp.js';

// The host's parts, one file per protocol; their public names are this module's too, as before the split.
export type { Addr } from '../wire/addr.js';
export { LATENCY_SAMPLES, LatencySample, percentile, sampleSeed } from './latency.js';
export { PingStats, type PingOptions } from './ping.js';
export type { HostCounters } from './stack.js';
export { FLOW_HEADER_LEN, UdpFlow, UdpSink, type FlowReport, type UdpFlowOptions, type UdpFlowStats } from './udp.js';

export interface HostConfig {
  name: string;
  mac: number;
  /** Address and prefix, e.g. "10.0.0.1/24". */
  ipv4: string;
  /** Address and prefix, e.g. "fd00::1/64". */
  ipv6?: string;
  /** Default gateway (IPv4), on-link. */
  gateway4?: string;
  /** Default gateway (IPv6), on-link. */
  gateway6?: string;
  /** L3 MTU of the interface. Default 1500. */
  mtu?: number;
  /**
   * Answer ARP requests and Neighbor Solicitations for its own addresses. Default true; false for a
   * node's own stack behind the bridge's gateway, which answers for the address they share.
   */
  answerNeighbors?: boolean;
}

/** The simulated host; see the module comment. */
export class SimHost implements Device, HostStack {
  readonly name: string;
  readonly mac: number;
  readonly mtu: number;
  linkUp = true;
  readonly v4: number;
  readonly v4Len: number;
  readonly v6: Uint8Array | null = null;
  readonly v6Len: number = 0;
  readonly gw4: number | null = null;
  readonly gw6: Uint8Array | null = null;
  readonly counters: HostCounters = {
    rxFrames: 0,
    txFrames: 0,
    rxIgnored: 0,
    rxBad: 0,
    arpRequestsSent: 0,
    arpRepliesSent: 0,
    nsSent: 0,
    naSent: 0,
    echoRepliesSent: 0,
    neighDrops: 0,
    noRoute: 0,
    poolEmpty: 0,
    pmtuUpdates: 0,
    udpNoPort: 0,
    tcpNoConn: 0,
    tcpRstSent: 0,
    unsendable: 0,
    fragmented: 0,
    fragmentsSent: 0,
    reassembled: 0,
    fragmentDrops: 0,
  };
  private rx: Receiver | null = null;
  private listener: ((up: boolean) => void) | null = null;
  /** One batch per nesting level: a frame sent from inside a delivery must not reuse the outer batch. */
  private readonly batches: PacketBatch[] = [];
  private depth = 0;
  private readonly neigh: Neighbours;
  /** @internal */
  readonly pmtu: PathMtu;
  /** @internal pings by ICMP echo identifier. */
  readonly pingers = new Map<number, Pinger>();
  private readonly sinks = new Map<number, UdpSink>();
  /** UDP flows started: the next one's id is this plus one. */
  private udpFlows = 0;
  /** @internal */
  readonly tcp: HostTcp;
  private nextIdent = 1;
  /** @internal */
  readonly answerNeighbors: boolean;
  private reasm: Reassembler | null = null;
  private fragmentsRefused = 0;
  private readonly fragOut: PacketBuf[] = [];
  private ipIdent = 0;
  /** Solicited-node multicast MAC of the IPv6 address (33:33:ff:xx:xx:xx). */
  private readonly snmMac: number = -1;
  /** Solicited-node multicast address of the IPv6 address. */
  private readonly snm: Uint8Array = SNM_PREFIX;

  constructor(
    readonly sim: Simulator,
    readonly pool: PacketPool,
    cfg: HostConfig,
  ) {
    this.name = cfg.name;
    this.answerNeighbors = cfg.answerNeighbors ?? true;
    this.mac = cfg.mac;
    this.mtu = cfg.mtu ?? 1500;
    if (!Number.isInteger(this.mtu) || this.mtu < 68 || this.mtu > 65535) throw new RangeError(`host ${this.name}: MTU ${this.mtu} is not 68-65535`);
    this.pmtu = new PathMtu(this.mtu);
    this.neigh = new Neighbours(this);
    this.tcp = new HostTcp(this);
    const p4 = parsePrefix(cfg.ipv4, `host ${this.name} ipv4`);
    if (p4.family !== 4) throw new RangeError(`host ${this.name} ipv4: "${cfg.ipv4}" is not IPv4`);
    this.v4 = p4.addr;
    this.v4Len = p4.len;
    if (cfg.ipv6 !== undefined) {
      const p6 = parsePrefix(cfg.ipv6, `host ${this.name} ipv6`);
      if (p6.family !== 6) throw new RangeError(`host ${this.name} ipv6: "${cfg.ipv6}" is not IPv6`);
      this.v6 = p6.addr;
      this.v6Len = p6.len;
      this.snmMac = 0x3333ff000000 + ((p6.addr[13]! << 16) | (p6.addr[14]! << 8) | p6.addr[15]!);
      this.snm = snmOf(p6.addr);
    }
    if (cfg.gateway4 !== undefined) {
      const g = ipv4FromString(cfg.gateway4);
      if (g === null || !this.onLink4(g)) throw new RangeError(`host ${this.name}: gateway4 "${cfg.gateway4}" is not an on-link IPv4 address`);
      this.gw4 = g;
    }
    if (cfg.gateway6 !== undefined) {
      const g = ipv6FromString(cfg.gateway6);
      if (g === null || this.v6 === null) throw new RangeError(`host ${this.name}: gateway6 "${cfg.gateway6}" needs an IPv6 address and one of its own`);
      this.gw6 = g;
    }
  }

  // ---- Device ----

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(fn: ((up: boolean) => void) | null): void {
    this.listener = fn;
  }

  /** Carrier up or down (what is plugged in hears it). */
  setLink(up: boolean): void {
    if (this.linkUp === up) return;
    this.linkUp = up;
    this.listener?.(up);
  }

  /** Frames delivered to the host (the device's "transmit" is the host's receive). */
  transmit(batch: PacketBatch): void {
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      this.counters.rxFrames++;
      if (!this.receive(p)) p.release();
    }
    batch.clear();
  }

  /** Joins the host to another device (a link end, a veth end): each receives what the other sends, and the host follows its carrier. */
  connect(dev: Device): void {
    dev.setReceiver((b) => this.transmit(b));
    dev.setLinkListener((up) => this.setLink(up));
    this.setReceiver((b) => dev.transmit(b));
    this.setLink(dev.linkUp);
  }

  // ---- Configuration ----

  /** A static neighbour (never solicited, never replaced by what is learned). */
  addNeighbor(ip: string, mac: number): void {
    const a = parseAddr(ip, `host ${this.name} neighbor`);
    this.neigh.addStatic(a.family, a.v4, a.v6, mac);
  }

  /** The neighbour table, for display and tests. */
  neighbors(): Array<{ ip: string; mac: number; state: string }> {
    return this.neigh.list();
  }

  /** The path MTU to `dst` (the interface MTU until a too-big message says less). */
  pathMtu(dst: string): number {
    return this.pmtu.to(parseAddr(dst, `host ${this.name} pathMtu`));
  }

  // ---- Applications ----

  /** Starts a ping (the first request goes now, inside `sim.run`); the stats fill in as replies come. */
  ping(opts: PingOptions): PingStats {
    const dst = parseAddr(opts.dst, `host ${this.name} ping`);
    if (dst.family === 6 && this.v6 === null) throw new RangeError(`host ${this.name}: ping ${opts.dst} needs an IPv6 address`);
    const size = opts.size ?? 56;
    if (!Number.isInteger(size) || size < 0 || size > 65507) throw new RangeError(`host ${this.name}: ping size ${size} is not 0-65507`);
    const count = opts.count ?? 1;
    const ident = this.nextIdent++ & 0xffff;
    const p = new Pinger(this, dst, ident, count, opts.intervalNs ?? 1e9, size, opts.df ?? false, opts.timeoutNs ?? 10e9);
    this.pingers.set(ident, p);
    p.stats.ident = ident;
    if (count > 0) this.sim.schedule(this.sim.now, p, 0);
    return p.stats;
  }

  /** Starts a UDP flow from this host; flow ids are unique per sender, so give each sender's sink its own port. */
  udpFlow(opts: UdpFlowOptions): UdpFlow {
    const dst = parseAddr(opts.dst, `host ${this.name} udpFlow`);
    if (dst.family === 6 && this.v6 === null) throw new RangeError(`host ${this.name}: udpFlow to ${opts.dst} needs an IPv6 address`);
    return new UdpFlow(this, ++this.udpFlows, dst, opts);
  }

  /** A UDP sink on `port` (the same one when asked twice). */
  udpSink(port: number): UdpSink {
    let s = this.sinks.get(port);
    if (s === undefined) this.sinks.set(port, (s = new UdpSink(port, this.sim.seed)));
    return s;
  }

  /** A TCP listener on `port` (the same one when asked twice): accepts connections and counts what arrives. */
  tcpListen(port: number): TcpListener {
    return this.tcp.listen(port);
  }

  /** Opens a TCP connection that sends `bytes` of payload and closes (see `sim/tcp.ts`); the SYN goes at `startNs`. */
  tcpSend(opts: TcpSendOptions): TcpFlow {
    return this.tcp.send(opts);
  }

  // ---- Sending (HostStack: what the protocol modules use) ----

  /** @internal the path MTU towards a parsed address. */
  pathMtuTo(dst: Addr): number {
    return this.pmtu.to(dst);
  }

  /** @internal whether an IP packet of `len` bytes may go to `dst`: within the interface MTU, and the PMTU when DF. */
  fits(dst: Addr, len: number, df: boolean): boolean {
    // IPv4 without DF is fragmented on the way out (sendTo); IPv6 is not fragmented at the source here.
    if (len > this.mtu && (df || dst.family === 6)) return false;
    return !df || !this.pmtu.below(dst, len);
  }

  /** @internal */
  allocIp(ipLen: number): PacketBuf | null {
    const p = this.pool.alloc();
    if (p === null) {
      this.counters.poolEmpty++;
      return null;
    }
    if (p.put(ETH_HEADER_LEN + ipLen) < 0) {
      p.release();
      this.counters.poolEmpty++;
      return null;
    }
    return p;
  }

  /** @internal writes the IP header of a `ipLen`-byte packet; returns the L4 offset. */
  ipHeader(p: PacketBuf, dst: Addr, proto: number, ipLen: number, df: boolean): number {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    if (dst.family === 4) {
      b[ip] = 0x45;
      b[ip + 1] = 0;
      wr16(b, ip + 2, ipLen);
      this.ipIdent = (this.ipIdent + 1) & 0xffff;
      wr16(b, ip + 4, this.ipIdent);
      wr16(b, ip + 6, df ? 0x4000 : 0);
      b[ip + 8] = 64;
      b[ip + 9] = proto;
      wr16(b, ip + 10, 0);
      wr32(b, ip + 12, this.v4);
      wr32(b, ip + 16, dst.v4);
      wr16(b, ip + 10, checksum(b, ip, IPV4_HEADER_LEN));
      return ip + IPV4_HEADER_LEN;
    }
    wr32(b, ip, 0x60000000);
    wr16(b, ip + 4, ipLen - IPV6_HEADER_LEN);
    b[ip + 6] = proto;
    b[ip + 7] = 64;
    b.set(this.v6!, ip + 8);
    b.set(dst.v6, ip + 24);
    return ip + IPV6_HEADER_LEN;
  }

  /** @internal fills the checksum of the L4 segment at `l4` (`len` bytes; ICMPv4 `proto` -1: no pseudo-header); only its first `sumLen` bytes can be non-zero. */
  fillL4Checksum(p: PacketBuf, family: 4 | 6, l4: number, len: number, proto: number, sumLen = len): void {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const ck = proto === IPPROTO_UDP ? l4 + 6 : proto === IPPROTO_TCP ? l4 + 16 : l4 + 2;
    wr16(b, ck, 0);
    let sum = 0;
    if (proto >= 0) sum = family === 4 ? pseudoSumV4(rd32(b, ip + 12), rd32(b, ip + 16), proto, len) : pseudoSumV6At(b, ip + 8, ip + 24, proto, len);
    let c = finish(onesSum(b, l4, Math.min(sumLen, len), sum));
    if (proto === IPPROTO_UDP && c === 0) c = 0xffff;
    wr16(b, ck, c);
  }

  /**
   * @internal picks the next hop of an IP packet (IP at start + 14) to `v4`, or to the IPv6 address at
   * `b6[o6]` (which may be inside the packet itself), and sends it, or queues it on its neighbour.
   */
  route(p: PacketBuf, family: 4 | 6, v4: number, b6: Uint8Array | null, o6: number): void {
    if (family === 4) {
      const hop = this.onLink4(v4) ? v4 : this.gw4;
      if (hop === null) {
        this.counters.noRoute++;
        p.release();
        return;
      }
      this.neigh.send(p, 4, hop, null, 0);
      return;
    }
    const onLink = this.onLink6(b6!, o6);
    if (!onLink && this.gw6 === null) {
      this.counters.noRoute++;
      p.release();
      return;
    }
    if (onLink) this.neigh.send(p, 6, 0, b6, o6);
    else this.neigh.send(p, 6, 0, this.gw6, 0);
  }

  /**
   * Announces the host's IPv4 address with a gratuitous ARP (an ARP request for its own address, RFC 5227
   * §2.3), as CNI plugins do when a pod comes up: switches on the way learn where its MAC is.
   */
  announce(): void {
    this.neigh.arpRequest(this.v4);
  }

  /** @internal writes the Ethernet header and hands the frame to whatever the host is plugged into. */
  sendTo(p: PacketBuf, dstMac: number, etherType: number): void {
    const b = p.data;
    wrMac(b, p.start, dstMac);
    wrMac(b, p.start + 6, this.mac);
    wr16(b, p.start + 12, etherType);
    if (etherType === ETHERTYPE_IPV4 && p.end - p.start - ETH_HEADER_LEN > this.mtu) {
      // RFC 791 at the source, as Linux does for a datagram without DF above the MTU.
      const out = this.fragOut;
      out.length = 0;
      const k = fragmentIpv4(p, p.start + ETH_HEADER_LEN, this.mtu, this.pool, out);
      if (k < 0) {
        if (k === -DropReason.PoolExhausted) this.counters.poolEmpty++;
        else this.counters.unsendable++;
        p.release();
        return;
      }
      this.counters.fragmented++;
      this.counters.fragmentsSent += k;
      for (let i = 0; i < k; i++) this.emit(out[i]!);
      out.length = 0;
      return;
    }
    this.emit(p);
  }

  private emit(p: PacketBuf): void {
    if (this.rx === null || !this.linkUp) {
      p.release();
      return;
    }
    this.counters.txFrames++;
    const d = this.depth++;
    let batch = this.batches[d];
    if (batch === undefined) this.batches[d] = batch = new PacketBatch(1);
    batch.clear();
    batch.add(p);
    try {
      this.rx(batch);
    } finally {
      batch.clear();
      this.depth--;
    }
  }

  private onLink4(a: number): boolean {
    const m = mask4(this.v4Len);
    return (a & m) >>> 0 === (this.v4 & m) >>> 0;
  }

  private onLink6(b: Uint8Array, o: number): boolean {
    const g = this.v6;
    if (g === null) return false;
    for (let i = 0; i < 16; i++) {
      const bits = Math.max(0, Math.min(8, this.v6Len - 8 * i));
      const m = (0xff00 >>> bits) & 0xff;
      if (((b[o + i]! ^ g[i]!) & m) !== 0) return false;
    }
    return true;
  }

  // ---- Receiving ----

  /** Handles one received frame; true when the buffer was reused (sent on), false to release it. */
  private receive(p: PacketBuf): boolean {
    const b = p.data;
    const s = p.start;
    if (p.end - s < ETH_HEADER_LEN) {
      this.counters.rxBad++;
      return false;
    }
    const dmac = rdMac(b, s);
    if (dmac !== this.mac && dmac !== MAC_BROADCAST && dmac !== this.snmMac && dmac !== 0x333300000001) {
      this.counters.rxIgnored++;
      return false;
    }
    const type = rd16(b, s + 12);
    if (type === ETHERTYPE_ARP) return this.neigh.arp(p);
    if (type === ETHERTYPE_IPV4) return this.ipv4(p);
    if (type === ETHERTYPE_IPV6 && this.v6 !== null) return this.ipv6(p);
    this.counters.rxIgnored++;
    return false;
  }

  /** A fragment for this host: held until its datagram is complete, which is then received as one packet. */
  private reassemble(p: PacketBuf, ip: number): boolean {
    if (this.reasm === null) {
      // Reassembled datagrams need buffers for 65,535 bytes of IP: a small pool of its own, made on first use.
      this.reasm = new Reassembler({ pool: new PacketPool({ count: 16, frameCapacity: ETH_HEADER_LEN + 65535 }), memoryCap: 1 << 20 });
    }
    const r = this.reasm;
    const v = r.add(p, ip, this.sim.now);
    if (v !== REASM_HELD && v !== REASM_DONE) this.fragmentsRefused++;
    // Refused here, plus what the reassembler discarded itself (overlaps, timeouts, evictions): each once.
    let held = 0;
    for (let i = 0; i < r.drops.length; i++) held += r.drops[i]!;
    this.counters.fragmentDrops = this.fragmentsRefused + held;
    if (v === REASM_HELD) return true;
    if (v !== REASM_DONE) return false;
    this.counters.reassembled++;
    const q = r.take()!;
    if (!this.ipv4(q)) q.release();
    return true;
  }

  private ipv4(p: PacketBuf): boolean {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const avail = p.end - ip;
    if (avail < IPV4_HEADER_LEN || b[ip]! >> 4 !== 4) {
      this.counters.rxBad++;
      return false;
    }
    const hl = (b[ip]! & 0x0f) << 2;
    const total = rd16(b, ip + 2);
    if (hl < IPV4_HEADER_LEN || total < hl || total > avail || checksum(b, ip, hl) !== 0) {
      this.counters.rxBad++;
      return false;
    }
    if (rd32(b, ip + 16) !== this.v4) {
      this.counters.rxIgnored++;
      return false;
    }
    if ((rd16(b, ip + 6) & 0x3fff) !== 0) return this.reassemble(p, ip);
    p.end = ip + total;
    const l4 = ip + hl;
    const len = total - hl;
    const proto = b[ip + 9]!;
    if (proto === IPPROTO_ICMP) return icmpv4In(this, p, ip, l4, len);
    if (proto === IPPROTO_UDP) return udpIn(this, this.sinks, p, l4, len, pseudoSumV4(rd32(b, ip + 12), rd32(b, ip + 16), IPPROTO_UDP, len), true);
    if (proto === IPPROTO_TCP) return this.tcp.segment(b, 4, ip, l4, len, pseudoSumV4(rd32(b, ip + 12), rd32(b, ip + 16), IPPROTO_TCP, len));
    this.counters.rxIgnored++;
    return false;
  }

  private ipv6(p: PacketBuf): boolean {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const avail = p.end - ip;
    if (avail < IPV6_HEADER_LEN || b[ip]! >> 4 !== 6) {
      this.counters.rxBad++;
      return false;
    }
    const len = rd16(b, ip + 4);
    if (IPV6_HEADER_LEN + len > avail) {
      this.counters.rxBad++;
      return false;
    }
    const me = this.v6!;
    const toMe = eq16(b, ip + 24, me);
    const toSnm = !toMe && b[ip + 24] === 0xff && eq16(b, ip + 24, this.snm);
    if (!toMe && !toSnm) {
      this.counters.rxIgnored++;
      return false;
    }
    p.end = ip + IPV6_HEADER_LEN + len;
    const nh = b[ip + 6]!;
    const l4 = ip + IPV6_HEADER_LEN;
    const pseudo = pseudoSumV6At(b, ip + 8, ip + 24, nh, len);
    // Extension headers are not walked: what this host sends and answers has none.
    if (nh === IPPROTO_UDP && toMe) return udpIn(this, this.sinks, p, l4, len, pseudo, false);
    if (nh === IPPROTO_TCP && toMe) return this.tcp.segment(b, 6, ip, l4, len, pseudo);
    if (nh !== IPPROTO_ICMPV6 || len < 8) {
      this.counters.rxIgnored++;
      return false;
    }
    if (finish(onesSum(b, l4, len, pseudo)) !== 0) {
      this.counters.rxBad++;
      return false;
    }
    const t = b[l4]!;
    if (t === ICMPV6_NEIGHBOR_SOLICIT || t === ICMPV6_NEIGHBOR_ADVERT) return this.neigh.nd(p, ip, l4, len);
    if (!toMe) {
      this.counters.rxIgnored++;
      return false;
    }
    return icmpv6In(this, p, ip, l4, len);
  }
}
