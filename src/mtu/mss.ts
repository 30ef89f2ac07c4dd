/**
 * TCP MSS clamping: a SYN or SYN-ACK entering a tunnel has its Maximum Segment Size option (RFC 9293
 * §3.7.1) lowered to what fits the tunnel's path, so the two ends never send segments the tunnel would
 * have to drop — PMTU discovery without depending on ICMP getting through (the same job as Linux's
 * `iptables -j TCPMSS --clamp-mss-to-pmtu` and Open vSwitch's MSS clamping).
 *
 * `clampMss` runs on every tunnel packet, so it is built for the packet that is not a SYN: a handful of
 * byte loads to find the TCP flags, and out. It allocates nothing and never throws: a header that does
 * not hold together is simply left alone (the packet is somebody else's problem to drop).
 */
import type { PacketBuf } from '../packet/buf.js';
import { rd16, wr16 } from '../wire/bytes.js';
import { updateChecksum16 } from '../wire/checksum.js';
import { IPPROTO_TCP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN, Ipv6Walk, walkIpv6 } from '../wire/ipv6.js';
import { TCP_HEADER_LEN, TCP_OPT_EOL, TCP_OPT_MSS, TCP_OPT_NOP, TCP_SYN } from '../wire/tcp.js';

/** The MSS option's length: kind, length, 16-bit value. */
const MSS_OPT_LEN = 4;
/** Offset of the byte holding the low control bits (CWR … FIN) in the TCP header. */
const TCP_FLAGS_BYTE = 13;
const TCP_CHECKSUM = 16;

const walk = new Ipv6Walk();

/**
 * Clamps the MSS option of the TCP segment in the IPv4 or IPv6 packet at `l3` of `p` (an absolute
 * offset into `p.data`; the packet must end within `p`'s window) to `maxMss`, in place, with the TCP
 * checksum updated incrementally (RFC 1624 eqn. 3), when the segment has SYN set (a SYN or a SYN-ACK)
 * and an MSS option of length 4 whose value is above `maxMss`.
 *
 * IPv6 extension headers are walked (`walkIpv6`). A fragment is clamped only when it is a first
 * fragment that holds the whole TCP header: the checksum field lives in it, and the incremental update
 * needs none of the other fragments. Options are walked as the receiver would: End of Option List,
 * NOP, and an option with a length below 2 or past the header ends the walk. Every MSS option of length
 * 4 is clamped — Linux and FreeBSD keep the last one they see, so clamping only the first would let a
 * second one through. An MSS at an odd offset from the header start straddles two checksum words; its
 * bytes then weigh in swapped (RFC 1071 §2(B)), and the update uses the swapped values.
 *
 * Returns the old MSS (of the first option clamped) when something was clamped, else 0. `maxMss` must
 * be an integer 0–65535 (`mssFor` gives one); any other value clamps nothing.
 */
export function clampMss(p: PacketBuf, l3: number, maxMss: number): number {
  const b = p.data;
  const end = p.end;
  if (!(end - l3 >= IPV4_HEADER_LEN && l3 >= 0)) return 0;
  const vihl = b[l3]!;
  let l4: number;
  let segEnd: number;
  if (vihl >>> 4 === 4) {
    if (b[l3 + 9] !== IPPROTO_TCP) return 0;
    // A fragment with a non-zero offset (the low 13 bits of bytes 6-7) carries no TCP header.
    if (((b[l3 + 6]! & 0x1f) | b[l3 + 7]!) !== 0) return 0;
    const hl = (vihl & 0x0f) << 2;
    const tl = (b[l3 + 2]! << 8) | b[l3 + 3]!;
    if (hl < IPV4_HEADER_LEN || tl < hl || tl > end - l3) return 0;
    l4 = l3 + hl;
    segEnd = l3 + tl;
  } else if (vihl >>> 4 === 6) {
    if (end - l3 < IPV6_HEADER_LEN) return 0;
    segEnd = l3 + IPV6_HEADER_LEN + ((b[l3 + 4]! << 8) | b[l3 + 5]!);
    if (segEnd > end) return 0;
    if (b[l3 + 6] === IPPROTO_TCP) {
      l4 = l3 + IPV6_HEADER_LEN;
    } else {
      if (walkIpv6(b, l3, segEnd, walk) !== null || walk.nonFirst || walk.upperProto !== IPPROTO_TCP) return 0;
      l4 = walk.upperOff;
    }
  } else {
    return 0;
  }
  if (segEnd - l4 < TCP_HEADER_LEN || (b[l4 + TCP_FLAGS_BYTE]! & TCP_SYN) === 0) return 0;
  return clampOptions(b, l4, segEnd, maxMss);
}

/** The option walk of `clampMss`, for a SYN whose header starts at `l4` within a segment ending at `segEnd`. */
function clampOptions(b: Uint8Array, l4: number, segEnd: number, maxMss: number): number {
  if ((maxMss & 0xffff) !== maxMss) return 0;
  const hl = (b[l4 + 12]! >>> 4) << 2;
  const end = l4 + hl;
  if (hl < TCP_HEADER_LEN || end > segEnd) return 0;
  let first = 0;
  for (let i = l4 + TCP_HEADER_LEN; i < end; ) {
    const kind = b[i]!;
    if (kind === TCP_OPT_EOL) break;
    if (kind === TCP_OPT_NOP) {
      i++;
      continue;
    }
    if (i + 2 > end) break;
    const len = b[i + 1]!;
    if (len < 2 || i + len > end) break;
    if (kind === TCP_OPT_MSS && len === MSS_OPT_LEN) {
      const v = i + 2;
      const old = rd16(b, v);
      if (old > maxMss) {
        wr16(b, v, maxMss);
        // At an odd offset the value's high byte is the low byte of one checksum word and its low byte
        // the high byte of the next: it adds to the sum byte-swapped.
        const odd = ((v - l4) & 1) === 1;
        const m = odd ? swap16(old) : old;
        const m2 = odd ? swap16(maxMss) : maxMss;
        wr16(b, l4 + TCP_CHECKSUM, updateChecksum16(rd16(b, l4 + TCP_CHECKSUM), m, m2));
        if (first === 0) first = old;
      }
    }
    i += len;
  }
  return first;
}

function swap16(v: number): number {
  return ((v & 0xff) << 8) | (v >>> 8);
}

/**
 * The MSS that fills a `podMtu`-byte packet: the MTU less the IP header without options and the TCP
 * header without options (RFC 9293 §3.7.1; RFC 8200 §8.3 for IPv6): podMtu − 40 for IPv4, − 60 for
 * IPv6. Throws a RangeError for an MTU no link of that family can have (below 68 for IPv4, RFC 791;
 * below 1280 for IPv6, RFC 8200 §5; above 65535).
 */
export function mssFor(podMtu: number, family: 4 | 6): number {
  const min = family === 4 ? 68 : 1280;
  if (!Number.isInteger(podMtu) || podMtu < min || podMtu > 0xffff)
    throw new RangeError(`mssFor: an IPv${family} MTU must be an integer ${min}-65535, not ${podMtu}`);
  return podMtu - (family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN) - TCP_HEADER_LEN;
}
