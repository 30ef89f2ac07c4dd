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
  const layers: Dissected[] = [];
  // Inside the first fragment of a datagram (opts.firstFragments): checksums cannot be verified.
  let partial = false;
  const out: Dissection = { layers, drop: null, dropOff: off };
  let next = first === 'eth' ? NEXT_ETH : first === 'ipv4' ? NEXT_IPV4 : NEXT_IPV6;
  let p = off;
  let ip: IpContext | null = null;
  const fail = (r: DropReason): Dissection => {
    out.drop = r;
    out.dropOff = p;
    return out;
  };
  const data = (): Dissection => {
    if (p < end) layers.push({ kind: 'data', bytes: bytes.subarray(p, end), off: p, len: end - p, checksumOk: null });
    return out;
  };
  // Upper-layer protocol dispatch shared by IPv4 and IPv6; returns the next step or -1 for "data".
  const NEXT_UDP = 10,
    NEXT_TCP = 11,
    NEXT_ICMPV4 = 12,
    NEXT_ICMPV6 = 13,
    NEXT_GRE = 14,
    NEXT_ESP = 15;
  const forProto = (proto: number): number =>
    proto === IPPROTO_UDP
      ? NEXT_UDP
      : proto === IPPROTO_TCP
        ? NEXT_TCP
        : proto === IPPROTO_ICMP
          ? NEXT_ICMPV4
          : proto === IPPROTO_ICMPV6
            ? NEXT_ICMPV6
            : proto === IPPROTO_GRE
              ? NEXT_GRE
              : proto === IPPROTO_ESP
                ? NEXT_ESP
                : -1;
  const pseudo = (proto: number, len: number): number =>
    ip === null
      ? 0
      : ip.v6
        ? pseudoSumV6At(ip.bytes, ip.srcOff, ip.dstOff, proto, len)
        : onesSum(ip.bytes, ip.srcOff, 4, onesSum(ip.bytes, ip.dstOff, 4, proto + len));

  // Every step but "data" parses a header, so an expected header with no bytes left is a drop.
  for (;;) {
    if (layers.length >= MAX_LAYERS) return fail(DropReason.TooManyLayers);
    const avail = end - p;
    switch (next) {
      case NEXT_ETH: {
        const v = new EthernetView(bytes, p);
        const r = parseEthernet(v, avail);
        if (typeof r === 'number') return fail(r);
        const len = ethernetBufferLen(r);
        layers.push({ kind: 'eth', repr: r, off: p, len, checksumOk: null });
        p += len;
        next = nextForEtherType(r.etherType);
        break;
      }
      case NEXT_ARP: {
        const r = parseArp(new ArpView(bytes, p), avail);
        if (typeof r === 'number') return fail(r);
        layers.push({ kind: 'arp', repr: r, off: p, len: arpBufferLen(r), checksumOk: null });
        p += arpBufferLen(r);
        return out; // what follows is link-layer padding
      }
      case NEXT_IPV4: {
        const v = new Ipv4View(bytes, p);
        const r = parseIpv4(v, avail, false);
        if (typeof r === 'number') return fail(r);
        layers.push({ kind: 'ipv4', repr: r, off: p, len: v.headerLen, checksumOk: v.verifyChecksum() });
        end = p + v.totalLen; // link-layer padding is not payload
        ip = { v6: false, bytes, srcOff: v.srcOffset, dstOff: v.dstOffset };
        p += v.headerLen;
        // Any fragment is data until reassembled (a first fragment's upper layer is incomplete), unless
        // the caller asks for the first fragment's transport header.
        if (r.moreFrags && r.fragOffset === 0 && opts.firstFragments === true) {
          partial = true;
          next = forProto(r.protocol);
        } else next = r.moreFrags || r.fragOffset !== 0 ? -1 : forProto(r.protocol);
        break;
      }
      case NEXT_IPV6: {
        const v = new Ipv6View(bytes, p);
        const r = parseIpv6(v, avail);
        if (typeof r === 'number') return fail(r);
        layers.push({ kind: 'ipv6', repr: r, off: p, len: IPV6_HEADER_LEN, checksumOk: null });
        end = p + IPV6_HEADER_LEN + r.payloadLen;
        ip = { v6: true, bytes, srcOff: v.srcOffset, dstOff: v.dstOffset };
        p += IPV6_HEADER_LEN;
        let nh = r.nextHeader;
        let fragment = false;
        for (let n = 0; ; n++) {
          if (n > IPV6_MAX_EXT_HEADERS) return fail(DropReason.Ipv6TooManyExtHeaders);
          if (nh === IPV6_NH_FRAGMENT) {
            const f = parseIpv6Frag(new Ipv6FragView(bytes, p), end - p);
            if (typeof f === 'number') return fail(f);
            layers.push({ kind: 'ipv6frag', repr: f, off: p, len: IPV6_FRAG_HEADER_LEN, checksumOk: null });
            p += IPV6_FRAG_HEADER_LEN;
            nh = f.nextHeader;
            if (f.moreFrags && f.fragOffset === 0 && opts.firstFragments === true) {
              partial = true;
              continue; // the first fragment: its headers follow
            }
            fragment = true;
            break; // what follows a Fragment header is fragment data until reassembled
          }
          if (!isGenericExtHeader(nh)) break;
          const e = parseIpv6Ext(bytes, p, end - p, nh);
          if (typeof e === 'number') return fail(e);
          const len = ipv6ExtBufferLen(e);
          layers.push({ kind: 'ipv6ext', repr: e, off: p, len, checksumOk: null });
          if (nh === IPV6_NH_ROUTING) {
            const d = routingFinalDst(bytes, p + 2, p + len);
            if (d >= 0) ip.dstOff = d;
          }
          p += len;
          nh = e.nextHeader;
        }
        next = fragment ? -1 : forProto(nh);
        break;
      }
      case NEXT_UDP: {
        const v = new UdpView(bytes, p);
        // In a first fragment the length counts the whole datagram: only the header must be here.
        const r = partial
          ? avail < UDP_HEADER_LEN
            ? DropReason.UdpTruncated
            : v.length < UDP_HEADER_LEN
              ? DropReason.UdpBadLength
              : { srcPort: v.srcPort, dstPort: v.dstPort }
          : parseUdp(v, avail);
        if (typeof r === 'number') return fail(r);
        const zero = v.checksum === 0;
        const ok = ip === null || partial ? null : zero && !ip.v6 ? null : v.verifyChecksum(pseudo(IPPROTO_UDP, v.length), false);
        layers.push({ kind: 'udp', repr: r, zeroChecksum: zero, off: p, len: UDP_HEADER_LEN, checksumOk: ok, ...(partial ? { partial } : {}) });
        end = Math.min(end, p + v.length);
        p += UDP_HEADER_LEN;
        const port = (x: number): boolean => r.dstPort === x || r.srcPort === x;
        if (port(VXLAN_UDP_PORT)) next = 20;
        else if (port(GENEVE_UDP_PORT)) next = 21;
        // ESP-in-UDP (RFC 3948 §2.2): a zero first word marks IKE, not ESP.
        else if (port(ESP_UDP_PORT) && end - p >= ESP_HEADER_LEN && (bytes[p]! | bytes[p + 1]! | bytes[p + 2]! | bytes[p + 3]!) !== 0) next = NEXT_ESP;
        else next = -1;
        break;
      }
      case 20: {
        const r = parseVxlan(new VxlanView(bytes, p), avail);
        if (typeof r === 'number') return fail(r);
        layers.push({ kind: 'vxlan', repr: r, off: p, len: vxlanBufferLen(r), checksumOk: null });
        p += vxlanBufferLen(r);
        ip = null;
        partial = false; // the inner packet is its own: its checksums are whole if it is
        next = NEXT_ETH;
        break;
      }
      case 21: {
        const r = parseGeneve(new GeneveView(bytes, p), avail);
        if (typeof r === 'number') return fail(r);
        const len = geneveBufferLen(r);
        layers.push({ kind: 'geneve', repr: r, off: p, len, checksumOk: null });
        p += len;
        ip = null;
        partial = false; // the inner packet is its own: its checksums are whole if it is
        next = nextForEtherType(r.protocolType);
        break;
      }
      case NEXT_GRE: {
        const v = new GreView(bytes, p);
        const r = parseGre(v, avail);
        if (typeof r === 'number') return fail(r);
        const len = greBufferLen(r);
        layers.push({ kind: 'gre', repr: r, off: p, len, checksumOk: r.checksum ? v.verifyChecksum(avail) : null });
        p += len;
        ip = null;
        partial = false; // the inner packet is its own: its checksums are whole if it is
        next = nextForEtherType(r.protocolType);
        break;
      }
      case NEXT_TCP: {
        const v = new TcpView(bytes, p);
        const r = parseTcp(v, avail);
        if (typeof r === 'number') return fail(r);
        layers.push({
          kind: 'tcp',
          repr: r,
          off: p,
          len: v.headerLen,
          checksumOk: ip === null || partial ? null : v.verifyChecksum(pseudo(IPPROTO_TCP, avail), avail),
          ...(partial ? { partial } : {}),
        });
        p += v.headerLen;
        next = -1;
        break;
      }
      case NEXT_ICMPV4: {
        const v = new Icmpv4View(bytes, p);
        const r = parseIcmpv4(v, avail);
        if (typeof r === 'number') return fail(r);
        layers.push({ kind: 'icmpv4', repr: r, off: p, len: avail, checksumOk: partial ? null : v.verifyChecksum(avail), ...(partial ? { partial } : {}) });
        return out; // quoted datagrams are part of the ICMP message
      }
      case NEXT_ICMPV6: {
        const v = new Icmpv6View(bytes, p);
        const r = parseIcmpv6(v, avail);
        if (typeof r === 'number') return fail(r);
        layers.push({
          kind: 'icmpv6',
          repr: r,
          off: p,
          len: avail,
          checksumOk: partial ? null : v.verifyChecksum(pseudo(IPPROTO_ICMPV6, avail), avail),
          ...(partial ? { partial } : {}),
        });
        return out;
      }
      case NEXT_ESP: {
        const r = parseEsp(new EspView(bytes, p), avail);
        if (typeof r === 'number') return fail(r);
        layers.push({ kind: 'esp', repr: r, off: p, len: ESP_HEADER_LEN, checksumOk: null });
        p += ESP_HEADER_LEN;
        next = -1;
        break;
      }
      default:
        return data();
    }
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
