/**
 * The "too big" messages a tunnel sends back to a pod whose packet does not fit the tunnel's path:
 * ICMP destination unreachable / fragmentation needed (RFC 792, RFC 1191 §4) for IPv4 with DF, and
 * ICMPv6 Packet Too Big (RFC 4443 §3.2) for IPv6. Without them path MTU discovery across an overlay
 * black-holes: the pod keeps sending full-size packets that the tunnel drops.
 *
 * Like Linux's `iptunnel_pmtud_build_icmp{,v6}` (what a bridged vxlan/geneve device does), the message
 * is a whole Ethernet frame addressed back to the sender's MAC, so the bridge can switch it to the pod's
 * port like any frame; its source address is the gateway's (or, with no address configured, the
 * original destination, as Linux does for bridged tunnels, so the pod sees it come from the path).
 *
 * The rules for when *not* to answer are RFC 1812 §4.3.2.7 and RFC 4443 §2.4(e): never about an ICMP
 * error, never to an address that is not one host. Sending is rate-limited by the caller with a
 * `TooBigLimiter`.
 *
 * This is not a per-packet path (the packets it answers are already being dropped, and the messages
 * are rate-limited), but it still allocates nothing: the frame is written into a buffer the caller
 * took from its pool.
 */
import { IPV4_MIN_MTU, IPV6_MIN_MTU } from './fragment.js';
import type { PacketBuf } from '../packet/buf.js';
import { rdMac, wr16, wr32, wrMac } from '../wire/bytes.js';
import { checksum, finish, onesSum, pseudoSumV6At } from '../wire/checksum.js';
import { DropReason } from '../wire/drop.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN } from '../wire/ethernet.js';
import {
  ICMPV4_CODE_FRAG_NEEDED,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_HEADER_LEN,
  ICMPV4_PARAM_PROBLEM,
  ICMPV4_REDIRECT,
  ICMPV4_TIME_EXCEEDED,
} from '../wire/icmpv4.js';
import { ICMPV6_HEADER_LEN, ICMPV6_PACKET_TOO_BIG, ICMPV6_REDIRECT } from '../wire/icmpv6.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HEADER_LEN, Ipv4View } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN, Ipv6View, Ipv6Walk, walkIpv6 } from '../wire/ipv6.js';

/**
 * An ICMPv4 error is at most this long, IP header included: RFC 1812 §4.3.2.3 lets a router quote
 * more than RFC 792's header + 8 bytes, "as much of the original datagram as possible without the
 * length of the ICMP datagram exceeding 576 bytes" (the datagram every host must accept, RFC 791).
 */
export const ICMPV4_ERROR_MAX_LEN = 576;
/** An ICMPv6 error is at most the IPv6 minimum MTU long, IPv6 header included (RFC 4443 §2.4(c)). */
export const ICMPV6_ERROR_MAX_LEN = 1280;
/**
 * TTL of the IPv4 message. RFC 1812 §4.2.2.9 wants a router's own datagrams to start with a TTL
 * large enough to reach any host; 64 is the default of RFC 1700 and of Linux.
 */
export const TOO_BIG_TTL = 64;
/**
 * Hop limit of the ICMPv6 message. RFC 4443 sets none for errors, so the node's default applies:
 * 64, as IANA's default hop limit and Linux's. Not 255: that value marks Neighbor Discovery messages
 * that must not have crossed a router (RFC 4861 §7.1), which a routed error has no reason to mimic.
 */
export const TOO_BIG_HOP_LIMIT = 64;
/**
 * TOS byte of the IPv4 message: precedence 6, internetwork control (DSCP CS6), ECN not-ECT.
 * RFC 1812 §4.3.2.5: ICMP errors other than source quench SHOULD carry precedence 6 or 7.
 */
export const TOO_BIG_TOS = 0xc0;

/** Bytes in front of the quote: Ethernet, IPv4 header without options, ICMP header. */
const V4_FRONT = ETH_HEADER_LEN + IPV4_HEADER_LEN + ICMPV4_HEADER_LEN;
/** Bytes in front of the quote: Ethernet, IPv6 header, ICMPv6 header. */
const V6_FRONT = ETH_HEADER_LEN + IPV6_HEADER_LEN + ICMPV6_HEADER_LEN;
/** Largest quote of each message. */
const V4_QUOTE_MAX = ICMPV4_ERROR_MAX_LEN - IPV4_HEADER_LEN - ICMPV4_HEADER_LEN;
const V6_QUOTE_MAX = ICMPV6_ERROR_MAX_LEN - IPV6_HEADER_LEN - ICMPV6_HEADER_LEN;
/** RFC 792: the quote holds the original header and at least the first 64 bits of its payload. */
const MIN_QUOTED_PAYLOAD = 8;

const ICMPV4_SOURCE_QUENCH = 4;

const ip4 = new Ipv4View();
const ip6 = new Ipv6View();
const walk = new Ipv6Walk();

/** Who the message comes from: the gateway's MAC and IPv4 address (0: the original destination). */
export interface TooBigSourceV4 {
  mac: number;
  ipv4: number;
}

/** Who the message comes from: the gateway's MAC and 16-byte IPv6 address (null: the original destination). */
export interface TooBigSourceV6 {
  mac: number;
  ipv6: Uint8Array | null;
}

/** True for a MAC whose I/G bit is set: a reply to it would not reach one host. */
function macGroupAt(b: Uint8Array, o: number): boolean {
  return (b[o]! & 1) === 1;
}

/**
 * Not a source an ICMP error may be sent to, nor one it may be sent from (RFC 1812 §4.3.2.7 and
 * §5.3.7): "this network" 0/8, loopback 127/8, multicast 224/4 and class E 240/4 (which includes the
 * limited broadcast). A directed broadcast cannot be told from a host address here (the subnet is not
 * known); the bridge never forwards one as a source anyway.
 */
function badSource4(a: number): boolean {
  const top = a >>> 24;
  return top === 0 || top === 127 || top >= 224;
}

/** Multicast 224/4 or the limited broadcast: a datagram to one of these is never answered with an error. */
function groupDest4(a: number): boolean {
  return a >>> 28 === 0xe || a === 0xffffffff;
}

/** ICMP error types (RFC 792, RFC 1812 §4.3.2.7); everything else is informational, as in Linux's `icmp_is_err`. */
function isIcmpv4Error(type: number): boolean {
  return (
    type === ICMPV4_DEST_UNREACHABLE ||
    type === ICMPV4_SOURCE_QUENCH ||
    type === ICMPV4_REDIRECT ||
    type === ICMPV4_TIME_EXCEEDED ||
    type === ICMPV4_PARAM_PROBLEM
  );
}

/**
 * `n` bytes from `src[so]` to `dst[dOff]`; correct when both are the same array and the ranges overlap
 * (`copyWithin`, and `set` copies as if through a temporary). The quote is up to 1280 bytes: a memmove,
 * not a byte loop.
 */
function moveBytes(src: Uint8Array, so: number, dst: Uint8Array, dOff: number, n: number): void {
  if (src === dst) dst.copyWithin(dOff, so, so + n);
  else dst.set(src.subarray(so, so + n), dOff);
}

/** Bytes `out` can hold from its reset start to the end of its backing array. */
function capacityAfterReset(out: PacketBuf): number {
  out.reset();
  return out.data.length - out.start;
}

/**
 * Builds the ICMP "fragmentation needed and DF set" (type 3 code 4) answering the IPv4 packet at `l3`
 * of `orig`, whose window is an untagged Ethernet frame; the caller calls it for a packet with DF set
 * that is larger than `mtu`, the next-hop MTU to report (RFC 1191 §4; raised to 68, capped at 65535).
 *
 * The frame goes into `out` from its reset window: Ethernet back to `orig`'s source MAC from
 * `from.mac`; IPv4 from `from.ipv4` (0: `orig`'s destination) to `orig`'s source, TTL 64, DF clear
 * (a 576-byte datagram fits every path, and if it is fragmented it still arrives), the original's
 * Identification (deterministic and distinct per original) and a fresh header checksum; the ICMP
 * message with the original datagram quoted up to 576 bytes in all (RFC 1812 §4.3.2.3), never past its
 * total length (Ethernet padding is not quoted). `out`'s `l2`, `l3` and `l4` are set.
 * `out` may be `orig` itself: the quote is moved before the headers are written.
 *
 * Returns the frame length, or a negative DropReason with no frame in `out`:
 * - the original does not parse (`-EthTruncated` when `l3` leaves no room for the Ethernet header,
 *   `-Ipv4Truncated`, `-Ipv4BadHeaderLen`, `-Ipv4BadTotalLen`, `-Ipv4BadChecksum`, …);
 * - `-FragNeededDf` when RFC 1812 §4.3.2.7 forbids an answer: the original is an ICMP error (or too
 *   short to tell), a fragment other than the first, sent to an IP or link-layer broadcast or
 *   multicast, or from a source that does not name one host (0/8, 127/8, 224/4, 240/4, a group MAC);
 *   or `from.ipv4` is 0 and the original destination is not a usable source;
 * - `-PoolExhausted` when `out` cannot hold even the header and 8 bytes of the original.
 * The original packet is dropped by the caller in every case (as `FragNeededDf`); only the answer is
 * in question.
 */
export function buildFragNeeded(orig: PacketBuf, l3: number, mtu: number, from: TooBigSourceV4, out: PacketBuf): number {
  const b = orig.data;
  const l2 = orig.start;
  const end = orig.end;
  if (!(l3 >= l2 + ETH_HEADER_LEN && l3 <= end)) return -DropReason.EthTruncated;
  const bad = ip4.at(b, l3).check(end - l3);
  if (bad !== null) return -bad;
  if (!ip4.verifyChecksum()) return -DropReason.Ipv4BadChecksum;
  const hl = ip4.headerLen;
  const total = ip4.totalLen;
  const origSrc = ip4.src;
  const origDst = ip4.dst;
  const replySrc = from.ipv4 === 0 ? origDst : from.ipv4 >>> 0;
  if (ip4.fragOffset !== 0 || badSource4(origSrc) || groupDest4(origDst) || badSource4(replySrc)) return -DropReason.FragNeededDf;
  // RFC 1812 §4.3.2.7: nor to a datagram sent as a link-layer broadcast or multicast; and a group
  // source MAC would make the answer a multicast.
  if (macGroupAt(b, l2) || macGroupAt(b, l2 + 6)) return -DropReason.FragNeededDf;
  if (ip4.protocol === IPPROTO_ICMP && (total - hl < 1 || isIcmpv4Error(b[l3 + hl]!))) return -DropReason.FragNeededDf;

  const dstMac = rdMac(b, l2 + 6);
  const ident = ip4.ident;
  const room = capacityAfterReset(out) - V4_FRONT;
  const quote = Math.min(total, V4_QUOTE_MAX, room);
  if (quote < Math.min(total, hl + MIN_QUOTED_PAYLOAD)) return -DropReason.PoolExhausted;

  const d = out.data;
  const o = out.start;
  const ip = o + ETH_HEADER_LEN;
  const icmp = ip + IPV4_HEADER_LEN;
  moveBytes(b, l3, d, icmp + ICMPV4_HEADER_LEN, quote);
  wrMac(d, o, dstMac);
  wrMac(d, o + 6, from.mac);
  wr16(d, o + 12, ETHERTYPE_IPV4);
  d[ip] = 0x45;
  d[ip + 1] = TOO_BIG_TOS;
  wr16(d, ip + 2, IPV4_HEADER_LEN + ICMPV4_HEADER_LEN + quote);
  wr16(d, ip + 4, ident);
  wr16(d, ip + 6, 0);
  d[ip + 8] = TOO_BIG_TTL;
  d[ip + 9] = IPPROTO_ICMP;
  wr16(d, ip + 10, 0);
  wr32(d, ip + 12, replySrc);
  wr32(d, ip + 16, origSrc);
  wr16(d, ip + 10, checksum(d, ip, IPV4_HEADER_LEN));
  d[icmp] = ICMPV4_DEST_UNREACHABLE;
  d[icmp + 1] = ICMPV4_CODE_FRAG_NEEDED;
  wr16(d, icmp + 2, 0);
  wr16(d, icmp + 4, 0); // unused (RFC 1191 §4)
  wr16(d, icmp + 6, clampInt(mtu, IPV4_MIN_MTU, 0xffff));
  wr16(d, icmp + 2, finish(onesSum(d, icmp, ICMPV4_HEADER_LEN + quote)));
  out.end = icmp + ICMPV4_HEADER_LEN + quote;
  out.l2 = o;
  out.l3 = ip;
  out.l4 = icmp;
  return out.end - o;
}

/** True for the 16 bytes at `o` all zero (the unspecified address ::). */
function isUnspecified6(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 16; i++) if (b[o + i] !== 0) return false;
  return true;
}

/** True for ::1. */
function isLoopback6(b: Uint8Array, o: number): boolean {
  for (let i = 0; i < 15; i++) if (b[o + i] !== 0) return false;
  return b[o + 15] === 1;
}

/** Not a source an ICMPv6 error may be sent to (RFC 4443 §2.4(e.6)) nor from (§2.2): ::, ::1, ff00::/8. */
function badSource6(b: Uint8Array, o: number): boolean {
  return b[o] === 0xff || isUnspecified6(b, o) || isLoopback6(b, o);
}

/**
 * Builds the ICMPv6 Packet Too Big (type 2, code 0) answering the IPv6 packet at `l3` of `orig`, whose
 * window is an untagged Ethernet frame. The MTU field is `mtu` but never below 1280 (RFC 8201 §4: a
 * node must not reduce its estimate below the IPv6 minimum, so a smaller value only confuses it).
 *
 * The frame goes into `out` from its reset window: Ethernet back to `orig`'s source MAC from
 * `from.mac`; IPv6 (traffic class and flow label 0, hop limit 64) from `from.ipv6` (null: `orig`'s
 * destination) to `orig`'s source; the message quoting as much of the original as keeps the IPv6
 * packet within 1280 bytes (RFC 4443 §2.4(c)), never past its payload length; the checksum over the
 * pseudo-header and the whole message. `out`'s `l2`, `l3` and `l4` are set. `out` may be `orig`
 * itself; `from.ipv6` must not lie inside `out`.
 *
 * RFC 4443 §2.4(e.3) allows a Packet Too Big in answer to a packet sent to a multicast address (the
 * source may be doing path MTU discovery for its multicast traffic), so a multicast destination and a
 * link-layer group destination are answered. Returns the frame length, or a negative DropReason
 * with no frame in `out`:
 * - the original does not parse (`-EthTruncated`, `-Ipv6Truncated`, `-Ipv6BadPayloadLen`,
 *   `-Ipv6ExtTruncated`, …);
 * - `-PacketTooBigV6` when no answer may be sent: the original is an ICMPv6 error message (type below
 *   128, §2.4(e.1)) or a Redirect (e.2), or too short to tell; its source is ::, ::1 or multicast
 *   (e.6), or its source MAC a group; it is a fragment other than the first (as Linux: the first
 *   fragment, at least as large, already gets the answer, and a later one cannot show whether it
 *   carries an ICMPv6 error); or `from.ipv6` is null and the original destination is not a unicast
 *   address the answer could come from (§2.2(b): a reply to a multicast packet comes from a unicast one);
 * - `-PoolExhausted` when `out` cannot hold the IPv6 header and 8 bytes of the original.
 */
export function buildPacketTooBig(orig: PacketBuf, l3: number, mtu: number, from: TooBigSourceV6, out: PacketBuf): number {
  const b = orig.data;
  const l2 = orig.start;
  const end = orig.end;
  if (!(l3 >= l2 + ETH_HEADER_LEN && l3 <= end)) return -DropReason.EthTruncated;
  const bad = ip6.at(b, l3).check(end - l3);
  if (bad !== null) return -bad;
  const total = IPV6_HEADER_LEN + ip6.payloadLen;
  const w = walkIpv6(b, l3, l3 + total, walk);
  if (w !== null) return -w;
  if (badSource6(b, l3 + 8) || macGroupAt(b, l2 + 6) || walk.nonFirst) return -DropReason.PacketTooBigV6;
  if (from.ipv6 === null && badSource6(b, l3 + 24)) return -DropReason.PacketTooBigV6;
  if (walk.upperProto === IPPROTO_ICMPV6) {
    const t = walk.upperOff < l3 + total ? b[walk.upperOff]! : -1;
    if (t < 128 || t === ICMPV6_REDIRECT) return -DropReason.PacketTooBigV6;
  }

  const dstMac = rdMac(b, l2 + 6);
  const room = capacityAfterReset(out) - V6_FRONT;
  const quote = Math.min(total, V6_QUOTE_MAX, room);
  if (quote < Math.min(total, IPV6_HEADER_LEN + MIN_QUOTED_PAYLOAD)) return -DropReason.PoolExhausted;

  const d = out.data;
  const o = out.start;
  const ip = o + ETH_HEADER_LEN;
  const icmp = ip + IPV6_HEADER_LEN;
  const q = icmp + ICMPV6_HEADER_LEN;
  // The quote starts with the original header: once it is in place, the addresses are read from it,
  // so building in place (`out` = `orig`) needs no scratch copy.
  moveBytes(b, l3, d, q, quote);
  wrMac(d, o, dstMac);
  wrMac(d, o + 6, from.mac);
  wr16(d, o + 12, ETHERTYPE_IPV6);
  wr32(d, ip, 0x60000000);
  wr16(d, ip + 4, ICMPV6_HEADER_LEN + quote);
  d[ip + 6] = IPPROTO_ICMPV6;
  d[ip + 7] = TOO_BIG_HOP_LIMIT;
  const src = from.ipv6;
  if (src === null) moveBytes(d, q + 24, d, ip + 8, 16);
  else for (let i = 0; i < 16; i++) d[ip + 8 + i] = src[i] ?? 0;
  moveBytes(d, q + 8, d, ip + 24, 16);
  d[icmp] = ICMPV6_PACKET_TOO_BIG;
  d[icmp + 1] = 0;
  wr16(d, icmp + 2, 0);
  wr32(d, icmp + 4, clampInt(mtu, IPV6_MIN_MTU, 0xffffffff));
  const len = ICMPV6_HEADER_LEN + quote;
  wr16(d, icmp + 2, finish(onesSum(d, icmp, len, pseudoSumV6At(d, ip + 8, ip + 24, IPPROTO_ICMPV6, len))));
  out.end = q + quote;
  out.l2 = o;
  out.l3 = ip;
  out.l4 = icmp;
  return out.end - o;
}

/** `v` as an integer within `[lo, hi]`; NaN gives `lo`. */
function clampInt(v: number, lo: number, hi: number): number {
  if (!(v > lo)) return lo;
  return v >= hi ? hi : Math.floor(v);
}

/** Options of a `TooBigLimiter`. */
export interface TooBigLimiterOptions {
  /** Messages per second in the long run; an integer, 1 to 10⁹. Default 1000. */
  ratePerSec?: number;
  /** Messages that may go at once after a quiet spell; an integer, 1 to 10⁶. Default 50. */
  burst?: number;
}

const NS_PER_SEC = 1e9;

/**
 * A token bucket for too-big messages (RFC 1812 §4.3.2.8 asks routers to rate-limit ICMP errors).
 * It starts full with `burst` tokens and gains `ratePerSec` tokens a second up to `burst`; each sent
 * message takes one.
 *
 * The defaults are Linux's global ICMP limit (`net.ipv4.icmp_msgs_per_sec` = 1000,
 * `icmp_msgs_burst` = 50). Linux exempts fragmentation needed and Packet Too Big from its per-destination
 * limit (`icmpv4_xrlim_allow`, `icmpv6_xrlim_allow`) because a suppressed one black-holes a connection
 * until its next retransmission; only the global limit, which protects the node, applies. One limiter
 * per node (or per tunnel port) plays that role here.
 *
 * Time is the caller's clock in nanoseconds, so the simulator stays deterministic. Arithmetic is exact:
 * the bucket is kept in units of 1/10⁹ token, so a token costs 10⁹ units and each nanosecond adds
 * `ratePerSec` units, all integers below 2⁵³. A clock that goes backwards adds nothing.
 */
export class TooBigLimiter {
  readonly ratePerSec: number;
  readonly burst: number;
  /** Messages refused so far. */
  denied = 0;
  private credit: number;
  private last = Number.NEGATIVE_INFINITY;
  private readonly cap: number;
  /** Nanoseconds to fill an empty bucket: elapsed time beyond it adds nothing (and could lose exactness). */
  private readonly fillNs: number;

  constructor(opts: TooBigLimiterOptions = {}) {
    const rate = opts.ratePerSec ?? 1000;
    const burst = opts.burst ?? 50;
    if (!Number.isInteger(rate) || rate < 1 || rate > 1e9) throw new RangeError(`TooBigLimiter: ratePerSec must be an integer 1-1e9, not ${rate}`);
    if (!Number.isInteger(burst) || burst < 1 || burst > 1e6) throw new RangeError(`TooBigLimiter: burst must be an integer 1-1e6, not ${burst}`);
    this.ratePerSec = rate;
    this.burst = burst;
    this.cap = burst * NS_PER_SEC;
    this.credit = this.cap;
    this.fillNs = Math.ceil(this.cap / rate);
  }

  /** Whether a message may go at `now` (nanoseconds); if so, it takes a token. */
  allow(now: number): boolean {
    if (now > this.last) {
      const dt = now - this.last;
      this.credit = dt >= this.fillNs ? this.cap : Math.min(this.cap, this.credit + Math.floor(dt) * this.ratePerSec);
      // Credit from a fractional nanosecond is not kept, so `last` moves by whole nanoseconds only.
      this.last = dt >= this.fillNs ? now : this.last + Math.floor(dt);
    }
    if (this.credit >= NS_PER_SEC) {
      this.credit -= NS_PER_SEC;
      return true;
    }
    this.denied++;
    return false;
  }
}
