/**
 * The datapath's header walk: fills a packet's layer offsets (outer and, through VXLAN or Geneve, inner
 * L2/L3/L4) with a length check at every header, allocating nothing. Checksums are not verified here
 * (stages that need them do it); this is the per-packet cost every frame pays.
 */
import { ethPayload, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB } from '../wire/ethernet.js';
import { GeneveView, GENEVE_UDP_PORT } from '../wire/geneve.js';
import { Ipv4View, IPPROTO_UDP } from '../wire/ipv4.js';
import { Ipv6View, Ipv6Walk, walkIpv6, IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { TcpView } from '../wire/tcp.js';
import { UdpView, UDP_HEADER_LEN } from '../wire/udp.js';
import { VxlanView, VXLAN_HEADER_LEN, VXLAN_UDP_PORT } from '../wire/vxlan.js';
import { IPPROTO_TCP } from '../wire/ipv4.js';
import type { PacketBuf } from './buf.js';

/** Reusable views; one parser per thread of processing. */
export class HeaderParser {
  private readonly type = new Uint16Array(1);
  private readonly v4 = new Ipv4View();
  private readonly v6 = new Ipv6View();
  private readonly walk = new Ipv6Walk();
  private readonly udp = new UdpView();
  private readonly tcp = new TcpView();
  private readonly vxlan = new VxlanView();
  private readonly geneve = new GeneveView();
  /** L4 protocol found by the last `l3` call, and the end of its L3 payload. */
  private proto = 0;
  private l3End = 0;

  /** Parses an IPv4/IPv6 header at `off`; returns the L4 offset, or a negative DropReason. */
  private l3(b: Uint8Array, off: number, end: number, etherType: number): number {
    if (etherType === ETHERTYPE_IPV4) {
      const r = this.v4.at(b, off).check(end - off);
      if (r !== null) return -r;
      // After the check, read each field once (the getters would re-read the same bytes).
      const fragWord = ((b[off + 6]! & 0x3f) << 8) | b[off + 7]!;
      this.proto = fragWord !== 0 ? -1 : b[off + 9]!;
      this.l3End = off + ((b[off + 2]! << 8) | b[off + 3]!);
      return off + ((b[off]! & 0x0f) << 2);
    }
    if (etherType === ETHERTYPE_IPV6) {
      const v = this.v6.at(b, off);
      const r = v.check(end - off);
      if (r !== null) return -r;
      this.l3End = off + IPV6_HEADER_LEN + v.payloadLen;
      const w = this.walk;
      const wr = walkIpv6(b, off, this.l3End, w);
      if (wr !== null) return -wr;
      // Any fragment is opaque until reassembled: a first fragment's L4 header is incomplete too.
      this.proto = w.fragOff >= 0 ? -1 : w.upperProto;
      return w.upperOff;
    }
    this.proto = -1;
    this.l3End = end;
    return -1;
  }

  /** Checks the L4 header at `off`; returns 0 or a DropReason. */
  private l4(b: Uint8Array, off: number): number {
    if (this.proto === IPPROTO_UDP) return this.udp.at(b, off).check(this.l3End - off) ?? 0;
    if (this.proto === IPPROTO_TCP) return this.tcp.at(b, off).check(this.l3End - off) ?? 0;
    return 0;
  }

  /**
   * Fills `p.l2/l3/l4` and, for VXLAN (UDP 4789) and Geneve (UDP 6081) carrying Ethernet,
   * `p.innerL2/innerL3/innerL4`. Returns 0, or the DropReason of the first header that fails.
   * Offsets of layers that are absent stay -1.
   */
  parse(p: PacketBuf): number {
    const b = p.data;
    const end = p.end;
    p.l2 = p.start;
    p.l3 = p.l4 = p.innerL2 = p.innerL3 = p.innerL4 = -1;
    let o = ethPayload(b, p.start, end, this.type);
    if (o < 0) return -o;
    p.l3 = o;
    o = this.l3(b, o, end, this.type[0]!);
    if (o < -1) {
      p.l3 = -1;
      return -o;
    }
    if (o < 0) {
      p.l3 = -1;
      return 0;
    }
    p.l4 = o;
    let r = this.l4(b, o);
    if (r !== 0) return r;
    if (this.proto !== IPPROTO_UDP) return 0;
    const dport = (b[o + 2]! << 8) | b[o + 3]!;
    let inner: number;
    const tunEnd = o + ((b[o + 4]! << 8) | b[o + 5]!);
    if (dport === VXLAN_UDP_PORT) {
      const x = this.vxlan.at(b, o + UDP_HEADER_LEN);
      r = x.check(tunEnd - x.off) ?? 0;
      if (r !== 0) return r;
      inner = x.off + VXLAN_HEADER_LEN;
    } else if (dport === GENEVE_UDP_PORT) {
      const g = this.geneve.at(b, o + UDP_HEADER_LEN);
      r = g.check(tunEnd - g.off) ?? 0;
      if (r !== 0) return r;
      if (g.protocolType !== ETHERTYPE_TEB) return 0;
      inner = g.off + g.headerLen;
    } else {
      return 0;
    }
    p.innerL2 = inner;
    o = ethPayload(b, inner, tunEnd, this.type);
    if (o < 0) return -o;
    p.innerL3 = o;
    o = this.l3(b, o, tunEnd, this.type[0]!);
    if (o < -1) {
      p.innerL3 = -1;
      return -o;
    }
    if (o < 0) {
      p.innerL3 = -1;
      return 0;
    }
    p.innerL4 = o;
    return this.l4(b, o);
  }
}
