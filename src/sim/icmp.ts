/**
 * ICMP and ICMPv6 received by a simulated host (not ND: neigh.ts): echo requests answered in place, echo
 * replies handed to their ping, and path MTU (RFC 1191, RFC 8201): frag-needed and Packet Too Big lower
 * a per-destination PMTU (`PathMtu`), tell a TCP connection the error quotes, and count against a ping.
 */
import { Ipv6Table } from '../packet/addrtable.js';
import type { PacketBuf } from '../packet/buf.js';
import { eq16, rd16, rd32, wr16, wr32 } from '../wire/bytes.js';
import { checksum, updateChecksum16 } from '../wire/checksum.js';
import { ICMPV4_CODE_FRAG_NEEDED, ICMPV4_DEST_UNREACHABLE, ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST } from '../wire/icmpv4.js';
import { ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_PACKET_TOO_BIG } from '../wire/icmpv6.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import type { Addr } from '../wire/addr.js';
import type { HostTcp } from './hosttcp.js';
import type { Pinger } from './ping.js';
import type { HostStack } from './stack.js';

/** Path MTUs a host learned from too-big messages, per destination; none until one lowers it below the interface MTU. */
export class PathMtu {
  private readonly v4 = new Map<number, number>();
  private readonly v6 = new Ipv6Table<number>();

  constructor(private readonly mtu: number) {}

  /** The path MTU towards `dst`. */
  to(dst: Addr): number {
    return (dst.family === 4 ? this.v4.get(dst.v4) : this.v6.get(dst.v6)) ?? this.mtu;
  }

  /** Whether a PMTU below the interface MTU is known towards `dst`, and it is under `len`. */
  below(dst: Addr, len: number): boolean {
    const pmtu = dst.family === 4 ? this.v4.get(dst.v4) : this.v6.get(dst.v6);
    return pmtu !== undefined && len > pmtu;
  }

  /** A frag-needed towards `dst` said `mtu`: true when it lowered the PMTU. RFC 1191 §3: never below 68; a zero from a pre-1191 router is not guessed at here. */
  lower4(dst: number, mtu: number): boolean {
    if (mtu < 68 || mtu >= (this.v4.get(dst) ?? this.mtu)) return false;
    this.v4.set(dst, mtu);
    return true;
  }

  /** A Packet Too Big towards the address at `b[o]` said `mtu`. RFC 8201 §4: a PTB below the IPv6 minimum MTU is not believed. */
  lower6(b: Uint8Array, o: number, mtu: number): boolean {
    if (mtu < 1280 || mtu >= (this.v6.get(b, o) ?? this.mtu)) return false;
    this.v6.set(b.subarray(o, o + 16), mtu);
    return true;
  }
}

/** What ICMP reaches in a host besides its stack. */
export interface IcmpHost extends HostStack {
  readonly pmtu: PathMtu;
  readonly pingers: ReadonlyMap<number, Pinger>;
  readonly tcp: HostTcp;
}

/** An ICMP message (`len` bytes at `l4`, checksum not yet checked) in an IPv4 packet to us; true when the buffer was reused (an echo reply). */
export function icmpv4In(h: IcmpHost, p: PacketBuf, ip: number, l4: number, len: number): boolean {
  const b = p.data;
  if (len < 8 || checksum(b, l4, len) !== 0) {
    h.counters.rxBad++;
    return false;
  }
  const t = b[l4]!;
  if (t === ICMPV4_ECHO_REQUEST && b[l4 + 1] === 0) {
    // The request was to our address: swapping the addresses leaves both sums as they were; the TTL
    // and the type change are folded in (RFC 1624), the payload is not summed again.
    const src = rd32(b, ip + 12);
    wr32(b, ip + 12, h.v4);
    wr32(b, ip + 16, src);
    const oldTtl = rd16(b, ip + 8),
      newTtl = (64 << 8) | (oldTtl & 0xff);
    wr16(b, ip + 8, newTtl);
    wr16(b, ip + 10, updateChecksum16(rd16(b, ip + 10), oldTtl, newTtl));
    const oldType = rd16(b, l4),
      newType = (ICMPV4_ECHO_REPLY << 8) | (oldType & 0xff);
    wr16(b, l4, newType);
    wr16(b, l4 + 2, updateChecksum16(rd16(b, l4 + 2), oldType, newType));
    h.counters.echoRepliesSent++;
    // Routed like any packet of ours (ARP for the next hop if need be), as Linux does.
    h.route(p, 4, src, null, 0);
    return true;
  }
  if (t === ICMPV4_ECHO_REPLY) {
    h.pingers.get(rd16(b, l4 + 4))?.reply(rd16(b, l4 + 6), h.sim.now);
    return false;
  }
  if (t === ICMPV4_DEST_UNREACHABLE && len >= 8 + IPV4_HEADER_LEN + 8) {
    const q = l4 + 8;
    if (rd32(b, q + 12) !== h.v4) return false;
    const qdst = rd32(b, q + 16);
    if (b[l4 + 1] === ICMPV4_CODE_FRAG_NEEDED && h.pmtu.lower4(qdst, rd16(b, l4 + 6))) h.counters.pmtuUpdates++;
    const qhl = (b[q]! & 0x0f) << 2;
    if (b[q + 9] === IPPROTO_TCP && len >= 8 + qhl + 4) h.tcp.find(4, qdst, null, 0, rd16(b, q + qhl), rd16(b, q + qhl + 2))?.pmtuChanged();
    if (b[q + 9] === IPPROTO_ICMP && len >= 8 + qhl + 8 && b[q + qhl] === ICMPV4_ECHO_REQUEST) pingError(h, b, q + qhl);
    return false;
  }
  h.counters.rxIgnored++;
  return false;
}

/** An ICMP error quoting one of our echo requests (its ICMP header at `echo`): one more error for its ping, by identifier. */
function pingError(h: IcmpHost, b: Uint8Array, echo: number): void {
  const pg = h.pingers.get(rd16(b, echo + 4));
  if (pg !== undefined) pg.stats.errors++;
}

/** An ICMPv6 message to our own address (checksum checked; not ND); true when the buffer was reused (an echo reply). */
export function icmpv6In(h: IcmpHost, p: PacketBuf, ip: number, l4: number, len: number): boolean {
  const b = p.data;
  const me = h.v6!;
  const t = b[l4]!;
  if (t === ICMPV6_ECHO_REQUEST && b[l4 + 1] === 0) {
    b.copyWithin(ip + 24, ip + 8, ip + 24);
    b.set(me, ip + 8);
    b[ip + 7] = 64;
    b[l4] = ICMPV6_ECHO_REPLY;
    h.fillL4Checksum(p, 6, l4, len, IPPROTO_ICMPV6);
    h.counters.echoRepliesSent++;
    h.route(p, 6, 0, b, ip + 24);
    return true;
  }
  if (t === ICMPV6_ECHO_REPLY) {
    h.pingers.get(rd16(b, l4 + 4))?.reply(rd16(b, l4 + 6), h.sim.now);
    return false;
  }
  if (t === ICMPV6_PACKET_TOO_BIG && len >= 8 + IPV6_HEADER_LEN) {
    const q = l4 + 8;
    if (!eq16(b, q + 8, me)) return false;
    if (h.pmtu.lower6(b, q + 24, rd32(b, l4 + 4))) h.counters.pmtuUpdates++;
    if (b[q + 6] === IPPROTO_TCP && len >= 8 + IPV6_HEADER_LEN + 4)
      h.tcp.find(6, 0, b, q + 24, rd16(b, q + IPV6_HEADER_LEN), rd16(b, q + IPV6_HEADER_LEN + 2))?.pmtuChanged();
    if (b[q + 6] === IPPROTO_ICMPV6 && len >= 8 + IPV6_HEADER_LEN + 8 && b[q + IPV6_HEADER_LEN] === ICMPV6_ECHO_REQUEST) pingError(h, b, q + IPV6_HEADER_LEN);
    return false;
  }
  h.counters.rxIgnored++;
  return false;
}
