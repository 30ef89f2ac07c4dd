/**
 * Whole frames as a stack of layers, outer to inner: `dissect` walks a frame through every header seine
 * knows, tunnels included, and `compose` builds one, innermost layer first, filling in lengths and
 * checksums. Neither is a hot path (the datapath works on views and layer offsets); they serve the
 * decoder, the tests, the simulator's traffic generators and anything that needs a frame by value.
 *
 * `dissect` never throws: a header that does not parse ends the walk with its drop reason, and what
 * parsed before it is kept.
 */
import { ArpView, emitArp, parseArp, arpBufferLen, type ArpRepr } from './arp.js';
import { onesSum, pseudoSumV4, pseudoSumV6At } from './checksum.js';
import { DropReason } from './drop.js';
import { ESP_HEADER_LEN, ESP_UDP_PORT, EspView, emitEsp, parseEsp, type EspRepr } from './esp.js';
import {
  emitEthernet,
  ethernetBufferLen,
  EthernetView,
  parseEthernet,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_TEB,
  type EthernetRepr,
} from './ethernet.js';
import { emitGeneve, geneveBufferLen, GeneveView, parseGeneve, GENEVE_UDP_PORT, type GeneveRepr } from './geneve.js';
import { emitGre, greBufferLen, GreView, parseGre, type GreRepr } from './gre.js';
import { emitIcmpv4, icmpv4BufferLen, Icmpv4View, parseIcmpv4, type Icmpv4Repr } from './icmpv4.js';
import { emitIcmpv6, icmpv6BufferLen, Icmpv6View, parseIcmpv6, type Icmpv6Repr } from './icmpv6.js';
import {
  emitIpv4,
  ipv4BufferLen,
  Ipv4View,
  parseIpv4,
  IPPROTO_ESP,
  IPPROTO_GRE,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type Ipv4Repr,
} from './ipv4.js';
import {
  emitIpv6,
  emitIpv6Ext,
  emitIpv6Frag,
  isGenericExtHeader,
  ipv6ExtBufferLen,
  Ipv6FragView,
  Ipv6View,
  parseIpv6,
  parseIpv6Ext,
  parseIpv6Frag,
  routingFinalDst,
  IPV6_FRAG_HEADER_LEN,
  IPV6_HEADER_LEN,
  IPV6_MAX_EXT_HEADERS,
  IPV6_NH_FRAGMENT,
  IPV6_NH_ROUTING,
  type Ipv6ExtRepr,
  type Ipv6FragRepr,
  type Ipv6Repr,
} from './ipv6.js';
import { emitTcp, parseTcp, tcpBufferLen, TcpView, type TcpRepr } from './tcp.js';
import { emitUdp, parseUdp, UDP_HEADER_LEN, UdpView, type UdpRepr } from './udp.js';
import { emitVxlan, parseVxlan, vxlanBufferLen, VxlanView, VXLAN_UDP_PORT, type VxlanRepr } from './vxlan.js';

/** One header of a frame. `data` is whatever seine does not (or cannot) look into. */
export type Layer =
  | { kind: 'eth'; repr: EthernetRepr }
  | { kind: 'arp'; repr: ArpRepr }
  | { kind: 'ipv4'; repr: Ipv4Repr }
  | { kind: 'ipv6'; repr: Ipv6Repr }
  | { kind: 'ipv6ext'; repr: Ipv6ExtRepr }
  | { kind: 'ipv6frag'; repr: Ipv6FragRepr }
  | { kind: 'icmpv4'; repr: Icmpv4Repr }
  | { kind: 'icmpv6'; repr: Icmpv6Repr }
  /** `zeroChecksum`: the checksum field is 0 ("not computed", IPv4 only). */
  | { kind: 'udp'; repr: UdpRepr; zeroChecksum: boolean }
  | { kind: 'tcp'; repr: TcpRepr }
  | { kind: 'vxlan'; repr: VxlanRepr }
  | { kind: 'geneve'; repr: GeneveRepr }
  | { kind: 'gre'; repr: GreRepr }
  /** ESP header; the encrypted rest follows as `data`. */
  | { kind: 'esp'; repr: EspRepr }
  | { kind: 'data'; bytes: Uint8Array };

export type LayerKind = Layer['kind'];

/**
 * A layer found in a frame, with where it sits and whether its checksum verified (null: none, or not
 * verifiable). `partial`: a transport header in the first fragment of a datagram (`firstFragments`),
 * whose checksum and length cover bytes in later fragments.
 */
export type Dissected = Layer & { off: number; len: number; checksumOk: boolean | null; partial?: boolean };

export interface DissectOptions {
  /**
   * Decode the transport header (and what follows it) in the first fragment of an IPv4 or IPv6 datagram,
   * as Wireshark does with reassembly off; later fragments stay data. Off by default: the datapath's
   * view is that any fragment is data until reassembled, and compose(dissect(x)) must give x back.
   */
  firstFragments?: boolean;
}

export interface Dissection {
  layers: Dissected[];
  /** Why the walk stopped early, or null when every byte was accounted for. */
  drop: DropReason | null;
  /** Offset of the header that failed to parse. */
  dropOff: number;
}

/** Frames nest at most this deep (a tunnel in a tunnel in a tunnel is already unusual). */
export const MAX_LAYERS = 24;

/** Where an upper-layer checksum gets its pseudo-header from. */
interface IpContext {
  v6: boolean;
  bytes: Uint8Array;
  srcOff: number;
  dstOff: number;
}

const NEXT_ETH = 0;
const NEXT_IPV4 = 1;
const NEXT_IPV6 = 2;
const NEXT_ARP = 3;

function nextForEtherType(t: number): number {
  if (t === ETHERTYPE_IPV4) return NEXT_IPV4;
  if (t === ETHERTYPE_IPV6) return NEXT_IPV6;
  if (t === ETHERTYPE_ARP) return NEXT_ARP;
  if (t === ETHERTYPE_TEB) return NEXT_ETH;
  return -1;
}

/** Walks `bytes[off, end)` starting with an Ethernet header (or IPv4/IPv6 when `first` says so). */
export function dissect(bytes: Uint8Array, off = 0, end = bytes.length, first: 'eth' | 'ipv4' | 'ipv6' = 'eth', opts: DissectOptions = {}): Dissection {
  const w = new Walk(bytes, off, end, opts);
  let next = first === 'eth' ? NEXT_ETH : first === 'ipv4' ? NEXT_IPV4 : NEXT_IPV6;
  while (next !== DONE) next = w.layers.length >= MAX_LAYERS ? w.fail(DropReason.TooManyLayers) : w.step(next);
  return w.out;
}

// The steps after the network layer (the link and network ones are above, shared with nextForEtherType).
const NEXT_UDP = 10;
const NEXT_TCP = 11;
const NEXT_ICMPV4 = 12;
const NEXT_ICMPV6 = 13;
const NEXT_GRE = 14;
const NEXT_ESP = 15;
const NEXT_VXLAN = 20;
const NEXT_GENEVE = 21;
/** What follows is data seine does not look into. */
const NEXT_DATA = -1;
/** The walk is over: its `out` holds what was found, and the drop that ended it if one did. */
const DONE = -2;

/** Upper-layer protocol dispatch shared by IPv4 and IPv6. */
function nextForProto(proto: number): number {
  if (proto === IPPROTO_UDP) return NEXT_UDP;
  if (proto === IPPROTO_TCP) return NEXT_TCP;
  if (proto === IPPROTO_ICMP) return NEXT_ICMPV4;
  if (proto === IPPROTO_ICMPV6) return NEXT_ICMPV6;
  if (proto === IPPROTO_GRE) return NEXT_GRE;
  if (proto === IPPROTO_ESP) return NEXT_ESP;
  return NEXT_DATA;
}

/**
 * One walk through a frame: where it is (`p`), where the current packet ends (link-layer padding and
 * bytes past a UDP length are not payload), the IP header whose pseudo-header the next checksum needs,
 * and whether it is inside a first fragment. Each step parses one header, records it and returns the
 * next step; every step but data parses a header, so an expected header with no bytes left is a drop.
 */
class Walk {
  readonly layers: Dissected[] = [];
  readonly out: Dissection;
  p: number;
  ip: IpContext | null = null;
  /** Inside the first fragment of a datagram (opts.firstFragments): checksums cannot be verified. */
  partial = false;

  constructor(
    readonly bytes: Uint8Array,
    off: number,
    public end: number,
    readonly opts: DissectOptions,
  ) {
    this.p = off;
    this.out = { layers: this.layers, drop: null, dropOff: off };
  }

  fail(r: DropReason): number {
    this.out.drop = r;
    this.out.dropOff = this.p;
    return DONE;
  }

  step(next: number): number {
    switch (next) {
      case NEXT_ETH:
        return this.eth();
      case NEXT_ARP:
        return this.arp();
      case NEXT_IPV4:
        return this.ipv4();
      case NEXT_IPV6:
        return this.ipv6();
      case NEXT_UDP:
        return this.udp();
      case NEXT_VXLAN:
        return this.vxlan();
      case NEXT_GENEVE:
        return this.geneve();
      case NEXT_GRE:
        return this.gre();
      case NEXT_TCP:
        return this.tcp();
      case NEXT_ICMPV4:
        return this.icmpv4();
      case NEXT_ICMPV6:
        return this.icmpv6();
      case NEXT_ESP:
        return this.esp();
      default:
        return this.data();
    }
  }

  private get avail(): number {
    return this.end - this.p;
  }

  private pseudo(proto: number, len: number): number {
    const ip = this.ip;
    if (ip === null) return 0;
    return ip.v6 ? pseudoSumV6At(ip.bytes, ip.srcOff, ip.dstOff, proto, len) : onesSum(ip.bytes, ip.srcOff, 4, onesSum(ip.bytes, ip.dstOff, 4, proto + len));
  }

  /** Past a tunnel header: the inner packet is its own, its checksums whole if it is. */
  private inner(len: number, next: number): number {
    this.p += len;
    this.ip = null;
    this.partial = false;
    return next;
  }

  private data(): number {
    const { p, end } = this;
    if (p < end) this.layers.push({ kind: 'data', bytes: this.bytes.subarray(p, end), off: p, len: end - p, checksumOk: null });
    return DONE;
  }

  private eth(): number {
    const r = parseEthernet(new EthernetView(this.bytes, this.p), this.avail);
    if (typeof r === 'number') return this.fail(r);
    const len = ethernetBufferLen(r);
    this.layers.push({ kind: 'eth', repr: r, off: this.p, len, checksumOk: null });
    this.p += len;
    return nextForEtherType(r.etherType);
  }

  private arp(): number {
    const r = parseArp(new ArpView(this.bytes, this.p), this.avail);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({ kind: 'arp', repr: r, off: this.p, len: arpBufferLen(r), checksumOk: null });
    this.p += arpBufferLen(r);
    return DONE; // what follows is link-layer padding
  }

  private ipv4(): number {
    const p = this.p;
    const v = new Ipv4View(this.bytes, p);
    const r = parseIpv4(v, this.avail, false);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({ kind: 'ipv4', repr: r, off: p, len: v.headerLen, checksumOk: v.verifyChecksum() });
    this.end = p + v.totalLen; // link-layer padding is not payload
    this.ip = { v6: false, bytes: this.bytes, srcOff: v.srcOffset, dstOff: v.dstOffset };
    this.p += v.headerLen;
    // Any fragment is data until reassembled (a first fragment's upper layer is incomplete), unless
    // the caller asks for the first fragment's transport header.
    if (r.moreFrags && r.fragOffset === 0 && this.opts.firstFragments === true) {
      this.partial = true;
      return nextForProto(r.protocol);
    }
    return r.moreFrags || r.fragOffset !== 0 ? NEXT_DATA : nextForProto(r.protocol);
  }

  private ipv6(): number {
    const bytes = this.bytes;
    const v = new Ipv6View(bytes, this.p);
    const r = parseIpv6(v, this.avail);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({ kind: 'ipv6', repr: r, off: this.p, len: IPV6_HEADER_LEN, checksumOk: null });
    this.end = this.p + IPV6_HEADER_LEN + r.payloadLen;
    const ip: IpContext = { v6: true, bytes, srcOff: v.srcOffset, dstOff: v.dstOffset };
    this.ip = ip;
    this.p += IPV6_HEADER_LEN;
    let nh = r.nextHeader;
    for (let n = 0; ; n++) {
      if (n > IPV6_MAX_EXT_HEADERS) return this.fail(DropReason.Ipv6TooManyExtHeaders);
      const p = this.p;
      if (nh === IPV6_NH_FRAGMENT) {
        const f = parseIpv6Frag(new Ipv6FragView(bytes, p), this.avail);
        if (typeof f === 'number') return this.fail(f);
        this.layers.push({ kind: 'ipv6frag', repr: f, off: p, len: IPV6_FRAG_HEADER_LEN, checksumOk: null });
        this.p += IPV6_FRAG_HEADER_LEN;
        nh = f.nextHeader;
        if (f.moreFrags && f.fragOffset === 0 && this.opts.firstFragments === true) {
          this.partial = true;
          continue; // the first fragment: its headers follow
        }
        return NEXT_DATA; // what follows a Fragment header is fragment data until reassembled
      }
      if (!isGenericExtHeader(nh)) return nextForProto(nh);
      const e = parseIpv6Ext(bytes, p, this.avail, nh);
      if (typeof e === 'number') return this.fail(e);
      const len = ipv6ExtBufferLen(e);
      this.layers.push({ kind: 'ipv6ext', repr: e, off: p, len, checksumOk: null });
      if (nh === IPV6_NH_ROUTING) {
        const d = routingFinalDst(bytes, p + 2, p + len);
        if (d >= 0) ip.dstOff = d;
      }
      this.p += len;
      nh = e.nextHeader;
    }
  }

  private udp(): number {
    const { bytes, p, avail, partial, ip } = this;
    const v = new UdpView(bytes, p);
    // In a first fragment the length counts the whole datagram: only the header must be here.
    const r = partial
      ? avail < UDP_HEADER_LEN
        ? DropReason.UdpTruncated
        : v.length < UDP_HEADER_LEN
          ? DropReason.UdpBadLength
          : { srcPort: v.srcPort, dstPort: v.dstPort }
      : parseUdp(v, avail);
    if (typeof r === 'number') return this.fail(r);
    const zero = v.checksum === 0;
    const ok = ip === null || partial ? null : zero && !ip.v6 ? null : v.verifyChecksum(this.pseudo(IPPROTO_UDP, v.length), false);
    this.layers.push({ kind: 'udp', repr: r, zeroChecksum: zero, off: p, len: UDP_HEADER_LEN, checksumOk: ok, ...(partial ? { partial } : {}) });
    this.end = Math.min(this.end, p + v.length);
    const q = (this.p += UDP_HEADER_LEN);
    const port = (x: number): boolean => r.dstPort === x || r.srcPort === x;
    if (port(VXLAN_UDP_PORT)) return NEXT_VXLAN;
    if (port(GENEVE_UDP_PORT)) return NEXT_GENEVE;
    // ESP-in-UDP (RFC 3948 §2.2): a zero first word marks IKE, not ESP.
    if (port(ESP_UDP_PORT) && this.end - q >= ESP_HEADER_LEN && (bytes[q]! | bytes[q + 1]! | bytes[q + 2]! | bytes[q + 3]!) !== 0) return NEXT_ESP;
    return NEXT_DATA;
  }

  private vxlan(): number {
    const r = parseVxlan(new VxlanView(this.bytes, this.p), this.avail);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({ kind: 'vxlan', repr: r, off: this.p, len: vxlanBufferLen(r), checksumOk: null });
    return this.inner(vxlanBufferLen(r), NEXT_ETH);
  }

  private geneve(): number {
    const r = parseGeneve(new GeneveView(this.bytes, this.p), this.avail);
    if (typeof r === 'number') return this.fail(r);
    const len = geneveBufferLen(r);
    this.layers.push({ kind: 'geneve', repr: r, off: this.p, len, checksumOk: null });
    return this.inner(len, nextForEtherType(r.protocolType));
  }

  private gre(): number {
    const v = new GreView(this.bytes, this.p);
    const r = parseGre(v, this.avail);
    if (typeof r === 'number') return this.fail(r);
    const len = greBufferLen(r);
    this.layers.push({ kind: 'gre', repr: r, off: this.p, len, checksumOk: r.checksum ? v.verifyChecksum(this.avail) : null });
    return this.inner(len, nextForEtherType(r.protocolType));
  }

  private tcp(): number {
    const { p, avail, partial } = this;
    const v = new TcpView(this.bytes, p);
    const r = parseTcp(v, avail);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({
      kind: 'tcp',
      repr: r,
      off: p,
      len: v.headerLen,
      checksumOk: this.ip === null || partial ? null : v.verifyChecksum(this.pseudo(IPPROTO_TCP, avail), avail),
      ...(partial ? { partial } : {}),
    });
    this.p += v.headerLen;
    return NEXT_DATA;
  }

  private icmpv4(): number {
    const { p, avail, partial } = this;
    const v = new Icmpv4View(this.bytes, p);
    const r = parseIcmpv4(v, avail);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({ kind: 'icmpv4', repr: r, off: p, len: avail, checksumOk: partial ? null : v.verifyChecksum(avail), ...(partial ? { partial } : {}) });
    return DONE; // quoted datagrams are part of the ICMP message
  }

  private icmpv6(): number {
    const { p, avail, partial } = this;
    const v = new Icmpv6View(this.bytes, p);
    const r = parseIcmpv6(v, avail);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({
      kind: 'icmpv6',
      repr: r,
      off: p,
      len: avail,
      checksumOk: partial ? null : v.verifyChecksum(this.pseudo(IPPROTO_ICMPV6, avail), avail),
      ...(partial ? { partial } : {}),
    });
    return DONE;
  }

  private esp(): number {
    const r = parseEsp(new EspView(this.bytes, this.p), this.avail);
    if (typeof r === 'number') return this.fail(r);
    this.layers.push({ kind: 'esp', repr: r, off: this.p, len: ESP_HEADER_LEN, checksumOk: null });
    this.p += ESP_HEADER_LEN;
    return NEXT_DATA;
  }
}

/** The pseudo-header sum for an upper layer under `ipLayer`, from its repr (the header is written later). */
function pseudoFor(layers: readonly Layer[], ipIndex: number, proto: number, len: number): number {
  const l = layers[ipIndex]!;
  if (l.kind === 'ipv4') return pseudoSumV4(l.repr.src, l.repr.dst, proto, len);
  if (l.kind !== 'ipv6') return 0;
  let dst = l.repr.dst;
  // Only this packet's own extension headers count: stop at the first layer that is not one.
  for (let i = ipIndex + 1; i < layers.length; i++) {
    const e = layers[i]!;
    if (e.kind !== 'ipv6ext') break;
    if (e.repr.headerType !== IPV6_NH_ROUTING) continue;
    // The repr's data starts at the routing-type octet.
    const at = routingFinalDst(e.repr.data, 0, e.repr.data.length);
    if (at >= 0) dst = e.repr.data.subarray(at, at + 16);
  }
  const tmp = new Uint8Array(32);
  tmp.set(l.repr.src, 0);
  tmp.set(dst, 16);
  return pseudoSumV6At(tmp, 0, 16, proto, len);
}

function layerLen(l: Layer): number {
  switch (l.kind) {
    case 'eth':
      return ethernetBufferLen(l.repr);
    case 'arp':
      return arpBufferLen(l.repr);
    case 'ipv4':
      return ipv4BufferLen(l.repr);
    case 'ipv6':
      return IPV6_HEADER_LEN;
    case 'ipv6ext':
      return ipv6ExtBufferLen(l.repr);
    case 'ipv6frag':
      return IPV6_FRAG_HEADER_LEN;
    case 'icmpv4':
      return icmpv4BufferLen(l.repr);
    case 'icmpv6':
      return icmpv6BufferLen(l.repr);
    case 'udp':
      return UDP_HEADER_LEN;
    case 'tcp':
      return tcpBufferLen(l.repr);
    case 'vxlan':
      return vxlanBufferLen(l.repr);
    case 'geneve':
      return geneveBufferLen(l.repr);
    case 'gre':
      return greBufferLen(l.repr);
    case 'esp':
      return ESP_HEADER_LEN;
    case 'data':
      return l.bytes.length;
  }
}

/** Total length `compose` writes for these layers. */
export function composedLen(layers: readonly Layer[]): number {
  let n = 0;
  for (const l of layers) n += layerLen(l);
  return n;
}

/**
 * Writes the layers into `out` at `off` (or a new array), innermost first, so that each header's
 * length fields and checksums cover what is already in place. Lengths (IP total/payload length, UDP
 * length) are computed; every other field, protocol numbers included, is written as the repr says.
 * Returns the bytes written.
 */
export function compose(layers: readonly Layer[], out?: Uint8Array, off = 0): Uint8Array {
  const total = composedLen(layers);
  const buf = out ?? new Uint8Array(off + total);
  if (buf.length - off < total) throw new RangeError(`compose: need ${total} bytes, have ${buf.length - off}`);
  // IP layer enclosing each layer (for pseudo-headers), found outer to inner.
  const enclosingIp: number[] = [];
  let lastIp = -1;
  for (let i = 0; i < layers.length; i++) {
    enclosingIp.push(lastIp);
    const k = layers[i]!.kind;
    if (k === 'ipv4' || k === 'ipv6') lastIp = i;
    if (k === 'vxlan' || k === 'geneve' || k === 'gre') lastIp = -1;
  }
  let end = off + total;
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    const len = layerLen(l);
    const at = end - len;
    const payloadLen = off + total - end;
    const ipIdx = enclosingIp[i]!;
    switch (l.kind) {
      case 'eth':
        emitEthernet(l.repr, buf, at);
        break;
      case 'arp':
        emitArp(l.repr, buf, at);
        break;
      case 'ipv4':
        emitIpv4({ ...l.repr, payloadLen }, buf, at);
        break;
      case 'ipv6': {
        // Extension headers between this header and `at + 40` are part of the payload length.
        emitIpv6({ ...l.repr, payloadLen }, buf, at);
        break;
      }
      case 'ipv6ext':
        emitIpv6Ext(l.repr, buf, at);
        break;
      case 'ipv6frag':
        emitIpv6Frag(l.repr, buf, at);
        break;
      case 'icmpv4':
        emitIcmpv4(l.repr, buf, at);
        break;
      case 'icmpv6':
        emitIcmpv6(l.repr, buf, at, ipIdx < 0 ? 0 : pseudoFor(layers, ipIdx, IPPROTO_ICMPV6, len + payloadLen));
        break;
      case 'udp': {
        const ipl = ipIdx < 0 ? null : layers[ipIdx]!;
        const sum = l.zeroChecksum && ipl?.kind !== 'ipv6' ? null : ipIdx < 0 ? 0 : pseudoFor(layers, ipIdx, IPPROTO_UDP, len + payloadLen);
        emitUdp(l.repr, buf, at, payloadLen, sum);
        break;
      }
      case 'tcp':
        emitTcp(l.repr, buf, at, payloadLen, ipIdx < 0 ? 0 : pseudoFor(layers, ipIdx, IPPROTO_TCP, len + payloadLen));
        break;
      case 'vxlan':
        emitVxlan(l.repr, buf, at);
        break;
      case 'geneve':
        emitGeneve(l.repr, buf, at);
        break;
      case 'gre':
        emitGre(l.repr, buf, at, payloadLen);
        break;
      case 'esp':
        emitEsp(l.repr, buf, at);
        break;
      case 'data':
        buf.set(l.bytes, at);
        break;
    }
    end = at;
  }
  return out === undefined ? buf : buf.subarray(off, off + total);
}

/** Strips the dissection bookkeeping, leaving the layers `compose` takes. */
export function layersOf(d: Dissection): Layer[] {
  return d.layers.map(({ off: _o, len: _l, checksumOk: _c, ...l }) => l as Layer);
}
