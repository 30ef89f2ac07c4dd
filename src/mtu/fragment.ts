/**
 * Fragmentation of a packet too big for the next link: IPv4 (RFC 791 §2.3 and §3.2, "An Example
 * Fragmentation Procedure") and IPv6 (RFC 8200 §4.5). seine fragments the outer packets of its own tunnels
 * when the underlay MTU is smaller than a tunnelled frame (an inner IPv4 packet without DF, or a VXLAN
 * frame from a pod whose MTU was set too high); inner packets are the MTU stage's business (DF, ICMP).
 *
 * Both functions share one contract:
 * - `p`'s window holds a frame: a link header in `[p.start, l3)` (copied to every fragment as is, e.g.
 *   Ethernet with any tags) and the IP packet at `l3`. Link padding after the IP packet is not copied.
 * - The first fragment is `p` itself, trimmed in place; the others come from `pool`. They are pushed in
 *   order onto `out` (the caller's array, reused across calls) and the count is returned. A packet that
 *   already fits is pushed unchanged and 1 is returned, so a caller needs one code path.
 * - A failure returns a negative DropReason with `p` untouched, `out` as it was and every buffer taken
 *   from `pool` given back: `-PoolExhausted` when the pool runs dry, `-FrameTooLong` when its buffers
 *   cannot hold a fragment, or the reason the IP header is malformed.
 * - `mtu` is configuration: below the family's minimum link MTU (68 for IPv4, RFC 791; 1280 for IPv6,
 *   RFC 8200 §5) it is a bug in the caller — path MTU code must clamp what ICMP says — and throws a
 *   RangeError rather than dropping every packet of a link as if it were bad traffic.
 *
 * Per packet nothing is allocated but the pool buffers: headers are written in place and bytes move with
 * `copyBytes`, allocation-free when `p` comes from `pool` (the usual case); from another pool, each
 * fragment's payload copy costs one short-lived view (see common.ts).
 */
import type { PacketBuf, PacketPool } from '../packet/buf.js';
import { checksum } from '../wire/checksum.js';
import { DropReason } from '../wire/drop.js';
import { IPV4_HEADER_LEN } from '../wire/ipv4.js';
import {
  Ipv6Walk,
  walkIpv6,
  IPV6_FRAG_HEADER_LEN,
  IPV6_HEADER_LEN,
  IPV6_NH_DEST_OPTS,
  IPV6_NH_FRAGMENT,
  IPV6_NH_HOP_BY_HOP,
  IPV6_NH_ROUTING,
  ipv6ExtLen,
} from '../wire/ipv6.js';
import { copyBytes } from './common.js';

/** RFC 791: every IPv4 module forwards a 68-byte datagram unfragmented (60-byte header + 8 bytes of data). */
export const IPV4_MIN_MTU = 68;
/** RFC 8200 §5: every link that carries IPv6 has an MTU of at least 1280. */
export const IPV6_MIN_MTU = 1280;
/** Largest IP packet (IPv4 total length, IPv6 payload length), and the end a fragment may reach. */
export const IP_MAX_LEN = 65535;

const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
/** Reserved bit and DF: kept from the original in every fragment. */
const FLAGS_KEPT = 0xc000;
const OFFSET_MASK = 0x1fff;
const IPOPT_END = 0;
const IPOPT_NOP = 1;
/** RFC 791 §3.1: the copied flag, bit 0 of the option type. */
const IPOPT_COPIED = 0x80;

function checkMtu(what: string, mtu: number, min: number): void {
  if (!Number.isInteger(mtu) || mtu < min) throw new RangeError(`${what}: mtu ${mtu} is below the minimum link MTU of ${min}`);
}

/** Pops what `fragment*` pushed after `first` (the first fragment excluded) and gives it back. */
function unwind(out: PacketBuf[], first: number): void {
  while (out.length > first + 1) out.pop()!.release();
  out.pop();
}

/** Takes `n` buffers from `pool` onto `out`; false (with everything given back) when it runs dry. */
function allocInto(pool: PacketPool, n: number, out: PacketBuf[], first: number): boolean {
  for (let k = 0; k < n; k++) {
    const q = pool.alloc();
    if (q === null) {
      unwind(out, first);
      return false;
    }
    out.push(q);
  }
  return true;
}

/** Gives a new fragment `q` the metadata of `p` and its layer offsets (`l4` only where a header is). */
function inherit(q: PacketBuf, p: PacketBuf, linkLen: number): void {
  q.copyMeta(p);
  q.l2 = p.l2 < 0 ? -1 : q.start + (p.l2 - p.start);
  q.l3 = q.start + linkLen;
}

/**
 * The header of the second and later fragments, from the original at `src[l3…]`: the fixed header and only
 * the options whose copied flag is set (RFC 791 §3.2), padded with End-of-Options to a 4-byte multiple.
 * Options after a malformed length are not copied. Written to `dst[at…]` unless `dst` is null (a dry run to
 * learn the size). Returns the header length.
 */
function laterHeader(src: Uint8Array, l3: number, hl: number, dst: Uint8Array | null, at: number): number {
  if (dst !== null) for (let k = 0; k < IPV4_HEADER_LEN; k++) dst[at + k] = src[l3 + k]!;
  let w = IPV4_HEADER_LEN;
  const end = l3 + hl;
  for (let i = l3 + IPV4_HEADER_LEN; i < end; ) {
    const type = src[i]!;
    if (type === IPOPT_END) break;
    if (type === IPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) break;
    const len = src[i + 1]!;
    if (len < 2 || i + len > end) break;
    if ((type & IPOPT_COPIED) !== 0) {
      if (dst !== null) for (let k = 0; k < len; k++) dst[at + w + k] = src[i + k]!;
      w += len;
    }
    i += len;
  }
  if (dst === null) return (w + 3) & ~3;
  while ((w & 3) !== 0) dst[at + w++] = IPOPT_END;
  dst[at] = 0x40 | (w >>> 2);
  return w;
}

/**
 * Splits the IPv4 packet at `l3` so that each fragment's IP packet is at most `mtu` bytes (see the module
 * comment for ownership and return values). Fragment data is a multiple of 8 bytes except in the last; a
 * packet that is itself a fragment keeps its offset and the last piece keeps its MF flag; later fragments
 * carry only the options with the copied flag; total length and header checksum are set in every fragment.
 * A packet with DF set is not fragmented: `-FragNeededDf`. An offset past 65,535 bytes: `-FragBadLength`.
 */
export function fragmentIpv4(p: PacketBuf, l3: number, mtu: number, pool: PacketPool, out: PacketBuf[]): number {
  checkMtu('fragmentIpv4', mtu, IPV4_MIN_MTU);
  const b = p.data;
  const dv = p.view;
  const avail = p.end - l3;
  if (l3 < p.start || avail < IPV4_HEADER_LEN) return -DropReason.Ipv4Truncated;
  const vihl = b[l3]!;
  if (vihl >>> 4 !== 4) return -DropReason.Ipv4BadVersion;
  const hl = (vihl & 0x0f) << 2;
  if (hl < IPV4_HEADER_LEN || hl > avail) return -DropReason.Ipv4BadHeaderLen;
  const tl = dv.getUint16(l3 + 2);
  if (tl < hl || tl > avail) return -DropReason.Ipv4BadTotalLen;
  if (tl <= mtu) {
    out.push(p);
    return 1;
  }
  const ff = dv.getUint16(l3 + 6);
  if ((ff & FLAG_DF) !== 0) return -DropReason.FragNeededDf;
  const base = (ff & OFFSET_MASK) << 3;
  const dataLen = tl - hl;
  if (base + tl > IP_MAX_LEN) return -DropReason.FragBadLength;
  const lastMore = (ff & FLAG_MF) !== 0;
  const linkLen = l3 - p.start;
  // The first fragment keeps the whole header; mtu ≥ 68 leaves it at least 8 bytes of data.
  const firstData = (mtu - hl) & ~7;
  const hl2 = laterHeader(b, l3, hl, null, 0);
  const laterData = (mtu - hl2) & ~7;
  const count = 1 + Math.ceil((dataLen - firstData) / laterData);
  const headLen = linkLen + hl2;
  if (headLen + Math.min(laterData, dataLen - firstData) > pool.frameCapacity) return -DropReason.FrameTooLong;
  const first = out.length;
  out.push(p);
  if (!allocInto(pool, count - 1, out, first)) return -DropReason.PoolExhausted;
  // The later header is built once, in the second fragment, and copied from there.
  const q1 = out[first + 1]!;
  copyBytes(p, p.start, q1, q1.start, linkLen);
  laterHeader(b, l3, hl, q1.data, q1.start + linkLen);
  let off = firstData;
  for (let k = 1; k < count; k++) {
    const q = out[first + k]!;
    const qs = q.start;
    const qb = q.data;
    const len = Math.min(laterData, dataLen - off);
    if (k > 1) copyBytes(q1, q1.start, q, qs, headLen);
    const ip = qs + linkLen;
    copyBytes(p, l3 + hl + off, q, ip + hl2, len);
    q.end = ip + hl2 + len;
    const qv = q.view;
    qv.setUint16(ip + 2, hl2 + len);
    const more = k < count - 1 || lastMore;
    qv.setUint16(ip + 6, (ff & FLAGS_KEPT) | (more ? FLAG_MF : 0) | ((base + off) >>> 3));
    qv.setUint16(ip + 10, 0);
    qv.setUint16(ip + 10, checksum(qb, ip, hl2));
    inherit(q, p, linkLen);
    off += len;
  }
  // Last, the first fragment: only now is `p` changed, so every failure above left it as it was.
  dv.setUint16(l3 + 2, hl + firstData);
  dv.setUint16(l3 + 6, ff | FLAG_MF);
  dv.setUint16(l3 + 10, 0);
  dv.setUint16(l3 + 10, checksum(b, l3, hl));
  p.end = l3 + hl + firstData;
  return count;
}

const walk = new Ipv6Walk();

/**
 * Splits the IPv6 packet at `l3` into fragments of at most `mtu` bytes (RFC 8200 §4.5; see the module
 * comment for ownership and return values). The unfragmentable part — the IPv6 header and the extension
 * headers up to the last Routing header, else up to a Hop-by-Hop header (Destination Options in front of a
 * Routing header included) — is copied into every fragment, followed by a Fragment header with identification
 * `ident` and the next header that followed the unfragmentable part, then data in 8-byte multiples.
 *
 * The first fragment is `p` with its link header and unfragmentable part moved 8 bytes into the headroom to
 * make room for the Fragment header: `p.start` (and `p.l2`/`p.l3` when set) move back by 8 and the IP
 * header is then at `l3 - 8` (`-HeadroomShort` when there is no room).
 *
 * A packet that already has a Fragment header is refragmented as IPv4 is: its identification (not `ident`),
 * offset and, in the last piece, M flag are kept. `-MtuExceeded` when the unfragmentable part leaves fewer
 * than 8 bytes of data per fragment.
 */
export function fragmentIpv6(p: PacketBuf, l3: number, mtu: number, pool: PacketPool, out: PacketBuf[], ident: number): number {
  checkMtu('fragmentIpv6', mtu, IPV6_MIN_MTU);
  const b = p.data;
  const dv = p.view;
  const avail = p.end - l3;
  if (l3 < p.start || avail < IPV6_HEADER_LEN) return -DropReason.Ipv6Truncated;
  if (b[l3]! >>> 4 !== 6) return -DropReason.Ipv6BadVersion;
  const payloadLen = dv.getUint16(l3 + 4);
  if (IPV6_HEADER_LEN + payloadLen > avail) return -DropReason.Ipv6BadPayloadLen;
  if (IPV6_HEADER_LEN + payloadLen <= mtu) {
    out.push(p);
    return 1;
  }
  const ipEnd = l3 + IPV6_HEADER_LEN + payloadLen;
  const r = walkIpv6(b, l3, ipEnd, walk);
  if (r !== null) return -r;
  const fragOff = walk.fragOff;
  // Find where the unfragmentable part ends and the next-header octet that names what follows it.
  let nhOff = l3 + 6;
  let pos = l3 + IPV6_HEADER_LEN;
  let unfragEnd = pos;
  let unfragNhOff = nhOff;
  if (fragOff >= 0) {
    while (pos < fragOff) {
      const len = ipv6ExtLen(b, pos, b[nhOff]!);
      nhOff = pos;
      pos += len;
    }
    unfragEnd = fragOff;
    unfragNhOff = nhOff;
  } else {
    for (;;) {
      const nh = b[nhOff]!;
      if (nh !== IPV6_NH_HOP_BY_HOP && nh !== IPV6_NH_ROUTING && nh !== IPV6_NH_DEST_OPTS) break;
      nhOff = pos;
      pos += (b[pos + 1]! + 1) << 3;
      if (nh !== IPV6_NH_DEST_OPTS) {
        unfragEnd = pos;
        unfragNhOff = nhOff;
      }
    }
  }
  const refrag = fragOff >= 0;
  const dataStart = refrag ? fragOff + IPV6_FRAG_HEADER_LEN : unfragEnd;
  const dataLen = ipEnd - dataStart;
  const base = refrag ? dv.getUint16(fragOff + 2) & 0xfff8 : 0;
  const lastMore = refrag && (b[fragOff + 3]! & 1) !== 0;
  const id = refrag ? dv.getUint32(fragOff + 4) : ident >>> 0;
  const innerNh = refrag ? b[fragOff]! : b[unfragNhOff]!;
  if (base + dataLen > IP_MAX_LEN) return -DropReason.FragBadLength;
  const unfragLen = unfragEnd - l3;
  const perFrag = (mtu - unfragLen - IPV6_FRAG_HEADER_LEN) & ~7;
  if (perFrag < 8) return -DropReason.MtuExceeded;
  if (!refrag && p.start < IPV6_FRAG_HEADER_LEN) return -DropReason.HeadroomShort;
  const linkLen = l3 - p.start;
  const headLen = linkLen + unfragLen + IPV6_FRAG_HEADER_LEN;
  if (headLen + Math.min(perFrag, dataLen - perFrag) > pool.frameCapacity) return -DropReason.FrameTooLong;
  const count = Math.ceil(dataLen / perFrag);
  const first = out.length;
  out.push(p);
  if (!allocInto(pool, count - 1, out, first)) return -DropReason.PoolExhausted;
  // The per-fragment headers are built once, in the second fragment, and copied from there.
  const q1 = out[first + 1]!;
  const fh1 = q1.start + linkLen + unfragLen;
  copyBytes(p, p.start, q1, q1.start, linkLen + unfragLen);
  q1.data[q1.start + (unfragNhOff - p.start)] = IPV6_NH_FRAGMENT;
  q1.data[fh1] = innerNh;
  q1.data[fh1 + 1] = 0;
  q1.view.setUint32(fh1 + 4, id);
  let off = perFrag;
  for (let k = 1; k < count; k++) {
    const q = out[first + k]!;
    const qs = q.start;
    const len = Math.min(perFrag, dataLen - off);
    if (k > 1) copyBytes(q1, q1.start, q, qs, headLen);
    copyBytes(p, dataStart + off, q, qs + headLen, len);
    q.end = qs + headLen + len;
    const qv = q.view;
    qv.setUint16(qs + linkLen + 4, unfragLen - IPV6_HEADER_LEN + IPV6_FRAG_HEADER_LEN + len);
    const more = k < count - 1 || lastMore;
    qv.setUint16(qs + headLen - IPV6_FRAG_HEADER_LEN + 2, (base + off) | (more ? 1 : 0));
    inherit(q, p, linkLen);
    off += len;
  }
  // Last, the first fragment (nothing above changed `p`).
  let ip = l3;
  let fh = fragOff;
  if (!refrag) {
    // Move the link header and the unfragmentable part 8 bytes back to open a gap for the Fragment header.
    const s = p.start;
    b.copyWithin(s - IPV6_FRAG_HEADER_LEN, s, unfragEnd);
    p.start = s - IPV6_FRAG_HEADER_LEN;
    if (p.l2 >= s && p.l2 < unfragEnd) p.l2 -= IPV6_FRAG_HEADER_LEN;
    if (p.l3 >= s && p.l3 < unfragEnd) p.l3 -= IPV6_FRAG_HEADER_LEN;
    ip = l3 - IPV6_FRAG_HEADER_LEN;
    fh = unfragEnd - IPV6_FRAG_HEADER_LEN;
    b[unfragNhOff - IPV6_FRAG_HEADER_LEN] = IPV6_NH_FRAGMENT;
    b[fh] = innerNh;
    b[fh + 1] = 0;
    dv.setUint32(fh + 4, id);
  }
  dv.setUint16(fh + 2, base | 1);
  dv.setUint16(ip + 4, unfragLen - IPV6_HEADER_LEN + IPV6_FRAG_HEADER_LEN + perFrag);
  p.end = dataStart + perFrag;
  return count;
}
