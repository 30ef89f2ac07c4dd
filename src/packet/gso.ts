/**
 * Super-frames in software (DESIGN.md, "Live mode: how it gets fast"): a TAP with TSO/USO hands the
 * datapath frames of up to 64 KiB with a virtio-net header; `segment` cuts one into wire-sized frames
 * right before encapsulation, and `Coalescer` joins consecutive TCP segments of a flow back into one
 * right after decapsulation, for the TAP to take whole. This is the one place that does either.
 *
 * `segment` does what the kernel's `tcp_gso_segment` and `__udp_gso_segment` do (net/ipv4/tcp_offload.c,
 * net/ipv4/udp_offload.c): every segment carries a copy of the headers with its own IPv4 total length and
 * identification (+1 per segment) and header checksum, or IPv6 payload length; TCP sequence numbers
 * advance, FIN and PSH stay on the last segment only and CWR on the first only; UDP segments are
 * datagrams of their own. Each segment's TCP/UDP checksum is computed over its own bytes, so whatever
 * the super-frame's checksum field held (the pseudo-header sum of NEEDS_CSUM, a complete checksum of
 * the whole, garbage) does not matter.
 *
 * `Coalescer` merges what the kernel's GRO merges (`inet_gro_receive`, `ipv6_gro_receive`,
 * `tcp_gro_receive`): same Ethernet header, addresses and ports (and port, segment, VNI and VTEP of
 * arrival); IPv4 without options or fragmentation, TOS, TTL and DF equal, identification +1 per segment
 * or (with DF) the same on all; IPv6 traffic class, flow label and hop limit equal, no extension
 * headers; TCP acknowledgment, window, urgent
 * pointer, data offset and options identical, flags identical except that the last segment may add PSH
 * or FIN, no SYN, RST or URG, CWR only on the first; sequence numbers contiguous; no segment larger than
 * the first, and a smaller one ends the super-frame. Only segments whose IPv4 header checksum and TCP
 * checksum verify are merged: the super-frame leaves with a partial checksum that the kernel trusts.
 *
 * Copies between buffers of one pool are a `copyWithin` on the pool's slab, so neither direction
 * allocates per packet when segments and super-frames share a pool. Across two pools (two slabs) the
 * copy goes through a `subarray` view: one small allocation per copy.
 */
import { rd16, rd32, wr16, wr32 } from '../wire/bytes.js';
import { checksum, finish, fold, ipv4HeaderValid, onesSum, pseudoSumV4At, pseudoSumV6At } from '../wire/checksum.js';
import { DROP_REASON_COUNT, DropReason } from '../wire/drop.js';
import { ethPayload, ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../wire/ethernet.js';
import { IPPROTO_TCP, IPPROTO_UDP, IPV4_HEADER_LEN, Ipv4View } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN, IPV6_NH_AH, IPV6_NH_FRAGMENT, Ipv6View, isGenericExtHeader } from '../wire/ipv6.js';
import { TCP_CWR, TCP_FIN, TCP_HEADER_LEN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, TcpView } from '../wire/tcp.js';
import { UDP_HEADER_LEN, UdpView } from '../wire/udp.js';
import { TAILROOM, type PacketBatch, type PacketBuf, type PacketPool } from './buf.js';
import { VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4 } from './vnet.js';

/** Most segments one coalesced super-frame holds. */
export const GSO_MAX_SEGMENTS = 64;
/** Default bound on a coalesced super-frame (Ethernet header included). */
export const GSO_MAX_BYTES = 65535;
/** Largest IPv4 total length or IPv6 payload length. */
const IP_MAX_LEN = 65535;

/** Offsets of the TCP fields segmentation and coalescing touch. */
const TCP_SEQ = 4;
const TCP_ACK_NO = 8;
const TCP_DOFF = 12;
const TCP_FLAGS = 13;
const TCP_WINDOW = 14;
const TCP_CHECKSUM = 16;
const TCP_URGENT = 18;
const UDP_LENGTH = 4;
const UDP_CHECKSUM = 6;
/** IPv4 fields: total length, identification, flags/fragment offset, TTL, protocol, checksum, addresses. */
const IP4_TOTAL_LEN = 2;
const IP4_IDENT = 4;
const IP4_FLAGS_FRAG = 6;
const IP4_TTL = 8;
const IP4_PROTO = 9;
const IP4_CHECKSUM = 10;
const IP4_SRC = 12;
const IP4_DF = 0x4000;
/** IPv6 fields: payload length, next header, hop limit, addresses. */
const IP6_PAYLOAD_LEN = 4;
const IP6_NEXT_HEADER = 6;
const IP6_HOP_LIMIT = 7;
const IP6_SRC = 8;

/** Counters the super-frame stages keep. */
export class GsoStats {
  /** Super-frames segmented. */
  superFrames = 0;
  /** Segments they gave. */
  segments = 0;
  /** Super-frames built by coalescing (two segments or more). */
  coalesced = 0;
  /** Segments merged into them. */
  coalescedSegments = 0;
  /** Frames a coalescer held and then gave out: a super-frame, or a segment that found no partner. */
  flushes = 0;
  /** Super-frames refused by `segment`, and frames a coalescer could not give out, by `DropReason`. */
  readonly drops = new Float64Array(DROP_REASON_COUNT);

  reset(): void {
    this.superFrames = this.segments = this.coalesced = this.coalescedSegments = this.flushes = 0;
    this.drops.fill(0);
  }
}

/** Whole-slab views for `copy`, for the last two backing buffers seen (a pool's slab each). */
let slabA: ArrayBufferLike | null = null;
let wholeA: Uint8Array = new Uint8Array(0);
let slabB: ArrayBufferLike | null = null;
let wholeB: Uint8Array = new Uint8Array(0);

/**
 * Copies `src.data[from, to)` to `dst.data[at…]` (two buffers). Within one pool it is a `copyWithin` on
 * the pool's slab, where buffer `slot` starts at `slot × bufferSize` (buf.ts).
 */
function copy(src: PacketBuf, from: number, to: number, dst: PacketBuf, at: number): void {
  const pool = src.pool;
  if (pool !== null && pool === dst.pool) {
    const bs = pool.bufferSize;
    pool.slab.copyWithin(dst.slot * bs + at, src.slot * bs + from, src.slot * bs + to);
    return;
  }
  copyBytes(src.data, from, to, dst.data, at);
}

/** Copies `src[from, to)` to `dst[at…]` (non-overlapping ranges): buffers of two pools, or of none. */
function copyBytes(src: Uint8Array, from: number, to: number, dst: Uint8Array, at: number): void {
  const buf = src.buffer;
  if (buf !== dst.buffer) {
    dst.set(src.subarray(from, to), at);
    return;
  }
  let w: Uint8Array;
  if (buf === slabA) w = wholeA;
  else if (buf === slabB) w = wholeB;
  else {
    slabB = slabA;
    wholeB = wholeA;
    slabA = buf;
    w = wholeA = new Uint8Array(buf);
  }
  w.copyWithin(dst.byteOffset + at, src.byteOffset + from, src.byteOffset + to);
}

/** Whether `a[ao, ao+len)` equals `b[bo, bo+len)`. */
function sameBytes(a: Uint8Array, ao: number, b: Uint8Array, bo: number, len: number): boolean {
  let i = 0;
  for (; i + 3 < len; i += 4) if (rd32(a, ao + i) !== rd32(b, bo + i)) return false;
  for (; i < len; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

const ethType = new Uint16Array(1);
const ip4 = new Ipv4View();
const ip6 = new Ipv6View();
const tcpView = new TcpView();
const udpView = new UdpView();

/**
 * Splits the super-frame `p` — Ethernet (with up to four VLAN tags) at `p.start`, IPv4 or IPv6 without
 * extension headers, TCP (gsoType TCPV4/TCPV6, with or without the ECN bit) or UDP (UDP_L4, USO) — into
 * segments taken from `pool` and appended to `out`. TCP segments carry at most min(`maxPayload`,
 * `p.gsoSize`) payload bytes (the sender's MSS bounds them too) and, when `mtu` > 0, no more than fits
 * in an IP datagram of `mtu` bytes with this frame's IP and TCP headers (options included: the caller
 * need not parse them to pass the path's inner MTU); UDP segments are the sender's datagrams,
 * `p.gsoSize` bytes each (the last one shorter) whatever `maxPayload` and `mtu` say, since cutting a
 * datagram would change what the receiver reads: one larger than the path allows meets the MTU stage
 * like any other datagram. Each segment is a complete frame (see the module comment), with its
 * offload fields cleared, layer offsets `l2`/`l3`/`l4` set, and the metadata of `p` (`copyMeta`). The
 * last segment ends where the IP datagram ends (link-layer padding is not copied). `p` is left as it
 * was; the caller releases it.
 *
 * Returns the number of segments appended; 0 when `p` is not a super-frame (gsoType NONE: nothing to
 * do, `p` goes on as it is); or, when `p` cannot be segmented, `-reason` with `reason` a `DropReason`
 * (counted in `stats.drops`), and then nothing is appended and every buffer taken is back in the pool.
 * A super-frame whose payload fits in one segment gives one segment (a copy with its checksum complete).
 */
export function segment(p: PacketBuf, maxPayload: number, pool: PacketPool, out: PacketBatch, stats: GsoStats, mtu = 0): number {
  if ((p.gsoType & ~VNET_GSO_ECN) === VNET_GSO_NONE) return 0;
  const r = split(p, maxPayload, mtu, pool, out);
  if (r < 0) {
    stats.drops[-r]!++;
  } else {
    stats.superFrames++;
    stats.segments += r;
  }
  return r;
}

function split(p: PacketBuf, maxPayload: number, mtu: number, pool: PacketPool, out: PacketBatch): number {
  const d = p.data;
  const start = p.start;
  const end = p.end;
  const gso = p.gsoType & ~VNET_GSO_ECN;
  const l3 = ethPayload(d, start, end, ethType);
  if (l3 < 0) return l3;
  const type = ethType[0]!;
  let l4: number;
  let l3End: number;
  let proto: number;
  let v4: boolean;
  if (type === ETHERTYPE_IPV4) {
    const r = ip4.at(d, l3).check(end - l3);
    if (r !== null) return -r;
    if ((rd16(d, l3 + IP4_FLAGS_FRAG) & 0x3fff) !== 0) return -DropReason.GsoUnsupportedHeaders;
    proto = d[l3 + IP4_PROTO]!;
    l4 = l3 + ((d[l3]! & 0x0f) << 2);
    l3End = l3 + rd16(d, l3 + IP4_TOTAL_LEN);
    v4 = true;
  } else if (type === ETHERTYPE_IPV6) {
    const r = ip6.at(d, l3).check(end - l3);
    if (r !== null) return -r;
    proto = d[l3 + IP6_NEXT_HEADER]!;
    if (isGenericExtHeader(proto) || proto === IPV6_NH_FRAGMENT || proto === IPV6_NH_AH) return -DropReason.GsoUnsupportedHeaders;
    l4 = l3 + IPV6_HEADER_LEN;
    l3End = l4 + rd16(d, l3 + IP6_PAYLOAD_LEN);
    v4 = false;
  } else {
    return -DropReason.GsoBadType;
  }
  const tcp = proto === IPPROTO_TCP;
  if (tcp ? gso !== (v4 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6) : proto !== IPPROTO_UDP || gso !== VNET_GSO_UDP_L4) return -DropReason.GsoBadType;
  let l4Len: number;
  if (tcp) {
    const r = tcpView.at(d, l4).check(l3End - l4);
    if (r !== null) return -r;
    l4Len = (d[l4 + TCP_DOFF]! >>> 4) << 2;
  } else {
    const r = udpView.at(d, l4).check(l3End - l4);
    if (r !== null) return -r;
    if (rd16(d, l4 + UDP_LENGTH) !== l3End - l4) return -DropReason.UdpBadLength;
    l4Len = UDP_HEADER_LEN;
  }
  const payloadAt = l4 + l4Len;
  const hdrs = payloadAt - start;
  // hdr_len is a hint: the kernel writes the length of the skb's linear part, which may hold some payload
  // or (a tag inserted on the way out) less than the headers, and refuses only one past the frame's end.
  if (p.hdrLen > end - start) return -DropReason.GsoBadHeaderLen;
  if (p.csumStart >= 0 && (p.csumStart !== l4 || p.csumOffset !== (tcp ? TCP_CHECKSUM : UDP_CHECKSUM))) return -DropReason.GsoBadHeaderLen;
  const size = tcp ? Math.min(maxPayload, p.gsoSize, mtu > 0 ? mtu - (payloadAt - l3) : maxPayload) : p.gsoSize;
  if (p.gsoSize === 0 || maxPayload < 1 || size < 1) return -DropReason.GsoBadSize;
  if (hdrs + size > pool.frameCapacity) return -DropReason.GsoBadSize;
  const payload = l3End - payloadAt;
  const n = payload <= size ? 1 : Math.ceil(payload / size);
  if (out.capacity - out.length < n) return -DropReason.QueueFull;
  if (pool.available < n) return -DropReason.PoolExhausted;

  // What every segment shares, summed once: the IPv4 header without its length, identification and
  // checksum; the pseudo-header without its length.
  const ihl = l4 - l3;
  let ipBase = 0;
  if (v4) for (let k = 0; k < ihl; k += 2) if (k !== IP4_TOTAL_LEN && k !== IP4_IDENT && k !== IP4_CHECKSUM) ipBase += rd16(d, l3 + k);
  const id0 = v4 ? rd16(d, l3 + IP4_IDENT) : 0;
  const pseudo = v4 ? pseudoSumV4At(d, l3 + IP4_SRC, l3 + IP4_SRC + 4, proto, 0) : pseudoSumV6At(d, l3 + IP6_SRC, l3 + IP6_SRC + 16, proto, 0);
  const seq0 = tcp ? rd32(d, l4 + TCP_SEQ) : 0;
  const flags0 = d[l4 + TCP_FLAGS]!;
  const base = out.length;
  for (let i = 0; i < n; i++) {
    const q = pool.alloc();
    if (q === null) {
      for (let k = out.length - 1; k >= base; k--) out.get(k).release();
      out.length = base;
      return -DropReason.PoolExhausted;
    }
    const qd = q.data;
    const s = q.start;
    const from = payloadAt + i * size;
    const len = i === n - 1 ? payload - i * size : size;
    copy(p, start, payloadAt, q, s);
    copy(p, from, from + len, q, s + hdrs);
    q.end = s + hdrs + len;
    const ql3 = s + (l3 - start);
    const ql4 = s + (l4 - start);
    const segLen = l4Len + len;
    if (v4) {
      const tl = ihl + segLen;
      const id = (id0 + i) & 0xffff;
      wr16(qd, ql3 + IP4_TOTAL_LEN, tl);
      wr16(qd, ql3 + IP4_IDENT, id);
      wr16(qd, ql3 + IP4_CHECKSUM, finish(ipBase + tl + id));
    } else {
      wr16(qd, ql3 + IP6_PAYLOAD_LEN, segLen);
    }
    if (tcp) {
      wr32(qd, ql4 + TCP_SEQ, (seq0 + i * size) >>> 0);
      let f = flags0;
      if (i > 0) f &= ~TCP_CWR;
      if (i < n - 1) f &= ~(TCP_FIN | TCP_PSH);
      qd[ql4 + TCP_FLAGS] = f;
      wr16(qd, ql4 + TCP_CHECKSUM, 0);
      wr16(qd, ql4 + TCP_CHECKSUM, finish(onesSum(qd, ql4, segLen, pseudo + segLen)));
    } else {
      wr16(qd, ql4 + UDP_LENGTH, segLen);
      wr16(qd, ql4 + UDP_CHECKSUM, 0);
      const c = finish(onesSum(qd, ql4, segLen, pseudo + segLen));
      wr16(qd, ql4 + UDP_CHECKSUM, c === 0 ? 0xffff : c);
    }
    q.copyMeta(p);
    q.l2 = s;
    q.l3 = ql3;
    q.l4 = ql4;
    out.add(q);
  }
  return n;
}

/** One flow's super-frame being built. Offsets are absolute into `p.data`. */
class Held {
  p: PacketBuf | null = null;
  l3 = 0;
  l4 = 0;
  /** TCP header length. */
  thl = 0;
  v4 = false;
  /** Segments merged so far. */
  count = 0;
  /** The first segment's payload length: the super-frame's gsoSize. */
  mss = 0;
  /** The sequence number the next segment must carry. */
  nextSeq = 0;
  firstId = 0;
  /** IPv4 identification the same on every segment (allowed with DF), decided by the second segment. */
  fixedId = false;
  /** The first segment's checksums were verified (done when a second one arrives, not before). */
  verified = false;
  /** When the flow started being held, for eviction and flush order. */
  age = 0;
}

/** Flows a coalescer holds at once; one more evicts (flushes) the oldest. */
const SLOTS = 8;

/**
 * Coalesces consecutive TCP segments of one flow (the rules are in the module comment) into super-frames
 * of at most `maxBytes` bytes (Ethernet header included; the IP length limit holds too) and
 * `GSO_MAX_SEGMENTS` segments, holding up to 8 flows at a time. A super-frame leaves as a TAP with a
 * virtio-net header takes it (and as the kernel's GRO leaves it): gsoType TCPV4 or TCPV6 (with the ECN
 * bit when its first segment has CWR), gsoSize the first segment's payload length, hdrLen the headers'
 * length, IPv4 total length and header checksum or IPv6 payload length rewritten, the flags of the last
 * segment's PSH/FIN added, and a partial checksum: `csumStart` at TCP, `csumOffset` 16, the field
 * holding the folded pseudo-header sum (the TAP writes NEEDS_CSUM; `vnet.completeChecksum` completes it).
 *
 * The payload of each merged segment is appended to the first segment's buffer, and the merged buffer
 * released. When that buffer is not from `pool` (the pool whose buffers can hold a super-frame, e.g.
 * the TAP's), the first segment is copied into one of `pool`'s when the second arrives; the pool's
 * `frameCapacity` (and the room behind the frame) bounds the super-frame too. Frames that are not TCP,
 * or do not qualify, leave unchanged; a frame of a held flow that cannot be merged first makes the held
 * one leave, so a flow's order is kept (frames of different flows may pass one another, as with GRO).
 *
 * `out` needs room for as many frames as were pushed since the last `flush` (each frame leaves once,
 * merged or not); a frame that finds it full is released and counted (`QueueFull`).
 *
 * `verify` false skips the TCP checksum check (a pass over every payload byte) for segments whose
 * integrity something else vouches for — ESP's ICV between nodes, as wireguard-go relies on its AEAD —
 * at the price that a segment the sender got wrong is delivered as right. Without ESP (VXLAN over IPv4
 * often carries no outer UDP checksum) keep it on.
 */
export class Coalescer {
  private readonly slots: Held[] = [];
  private clock = 0;

  constructor(
    private readonly pool: PacketPool,
    private readonly stats: GsoStats,
    private readonly maxBytes = GSO_MAX_BYTES,
    private readonly verify = true,
  ) {
    for (let i = 0; i < SLOTS; i++) this.slots.push(new Held());
  }

  /** Flows held now (for tests and metrics). */
  get holding(): number {
    let n = 0;
    for (const h of this.slots) if (h.p !== null) n++;
    return n;
  }

  /** Offers frame `p` (Ethernet at `p.start`, checksums complete); frames leave to `out` in order. */
  push(p: PacketBuf, out: PacketBatch): void {
    const d = p.data;
    const start = p.start;
    const end = p.end;
    const l3 = ethPayload(d, start, end, ethType);
    if (l3 < 0) {
      this.emit(p, out);
      return;
    }
    const type = ethType[0]!;
    let l4: number;
    let ok: boolean;
    let v4: boolean;
    if (type === ETHERTYPE_IPV4) {
      if (end - l3 < IPV4_HEADER_LEN || d[l3]! >>> 4 !== 4 || d[l3 + IP4_PROTO] !== IPPROTO_TCP) {
        this.emit(p, out);
        return;
      }
      const ihl = (d[l3]! & 0x0f) << 2;
      l4 = l3 + ihl;
      v4 = true;
      ok =
        ihl === IPV4_HEADER_LEN &&
        (rd16(d, l3 + IP4_FLAGS_FRAG) & 0x3fff) === 0 &&
        rd16(d, l3 + IP4_TOTAL_LEN) === end - l3 &&
        ipv4HeaderValid(p.view, l3, IPV4_HEADER_LEN);
    } else if (type === ETHERTYPE_IPV6) {
      if (end - l3 < IPV6_HEADER_LEN || d[l3]! >>> 4 !== 6 || d[l3 + IP6_NEXT_HEADER] !== IPPROTO_TCP) {
        this.emit(p, out);
        return;
      }
      l4 = l3 + IPV6_HEADER_LEN;
      v4 = false;
      ok = rd16(d, l3 + IP6_PAYLOAD_LEN) === end - l4;
    } else {
      this.emit(p, out);
      return;
    }
    if (end - l4 < TCP_HEADER_LEN) {
      this.emit(p, out);
      return;
    }
    const thl = (d[l4 + TCP_DOFF]! >>> 4) << 2;
    const flags = d[l4 + TCP_FLAGS]!;
    const payloadLen = end - l4 - thl;
    ok = ok && thl >= TCP_HEADER_LEN && payloadLen > 0 && (flags & (TCP_SYN | TCP_RST | TCP_URG)) === 0 && p.gsoType === VNET_GSO_NONE && p.csumStart < 0;
    const h = this.find(p, l3, l4, v4);
    if (h === null) {
      // A segment with PSH or FIN ends a super-frame; alone it has nothing to wait for.
      if (!ok || (flags & (TCP_PSH | TCP_FIN)) !== 0) {
        this.emit(p, out);
        return;
      }
      this.start(this.freeSlot(out), p, l3, l4, thl, v4);
      return;
    }
    if (!ok || (this.verify && !tcpChecksumValid(d, l3, l4, end, v4))) {
      this.flushSlot(h, out);
      this.emit(p, out);
      return;
    }
    if (this.merge(h, p, l3, l4, thl, payloadLen, flags, out)) return;
    this.flushSlot(h, out);
    if ((flags & (TCP_PSH | TCP_FIN)) !== 0) {
      this.emit(p, out);
      return;
    }
    this.start(h, p, l3, l4, thl, v4);
    h.verified = true;
  }

  /** Gives out every held frame, oldest flow first (call once at the end of each batch). */
  flush(out: PacketBatch): void {
    for (;;) {
      let oldest: Held | null = null;
      for (const h of this.slots) if (h.p !== null && (oldest === null || h.age < oldest.age)) oldest = h;
      if (oldest === null) return;
      this.flushSlot(oldest, out);
    }
  }

  /**
   * The held flow `p` belongs to: the same Ethernet header, addresses and ports, and the same way in
   * (port, segment, and the VNI and VTEP it was decapsulated from: overlays may reuse addresses, and
   * GRO compares the outer headers too).
   */
  private find(p: PacketBuf, l3: number, l4: number, v4: boolean): Held | null {
    const d = p.data;
    const start = p.start;
    const l2Len = l3 - start;
    const ports = rd32(d, l4);
    for (const h of this.slots) {
      const q = h.p;
      if (q === null || h.v4 !== v4) continue;
      if (q.inPort !== p.inPort || q.segment !== p.segment || q.tunVni !== p.tunVni || q.tunVtep !== p.tunVtep) continue;
      const qd = q.data;
      if (rd32(qd, h.l4) !== ports || h.l3 - q.start !== l2Len) continue;
      const same = v4 ? sameBytes(qd, h.l3 + IP4_SRC, d, l3 + IP4_SRC, 8) : sameBytes(qd, h.l3 + IP6_SRC, d, l3 + IP6_SRC, 32);
      if (same && sameBytes(qd, q.start, d, start, l2Len)) return h;
    }
    return null;
  }

  /** A free slot, or the oldest one made free. */
  private freeSlot(out: PacketBatch): Held {
    let oldest = this.slots[0]!;
    for (const h of this.slots) {
      if (h.p === null) return h;
      if (h.age < oldest.age) oldest = h;
    }
    this.flushSlot(oldest, out);
    return oldest;
  }

  private start(h: Held, p: PacketBuf, l3: number, l4: number, thl: number, v4: boolean): void {
    const d = p.data;
    h.p = p;
    h.l3 = l3;
    h.l4 = l4;
    h.thl = thl;
    h.v4 = v4;
    h.count = 1;
    h.mss = p.end - l4 - thl;
    h.nextSeq = (rd32(d, l4 + TCP_SEQ) + h.mss) >>> 0;
    h.firstId = v4 ? rd16(d, l3 + IP4_IDENT) : 0;
    h.fixedId = false;
    h.verified = false;
    h.age = ++this.clock;
  }

  /** Appends `p` (checksums verified) to the held super-frame `h` when the rules allow; false when not. */
  private merge(h: Held, p: PacketBuf, l3: number, l4: number, thl: number, payloadLen: number, flags: number, out: PacketBatch): boolean {
    let q = h.p!;
    let qd = q.data;
    const d = p.data;
    const hl4 = h.l4;
    const hl3 = h.l3;
    if (thl !== h.thl || payloadLen > h.mss || h.count === GSO_MAX_SEGMENTS || rd32(d, l4 + TCP_SEQ) !== h.nextSeq) return false;
    // TCP: acknowledgment, data offset and reserved bits, window, urgent pointer, options; flags but PSH/FIN
    // (the last may add them) and CWR (the first's only: a later one starts a super-frame of its own).
    if (
      rd32(d, l4 + TCP_ACK_NO) !== rd32(qd, hl4 + TCP_ACK_NO) ||
      d[l4 + TCP_DOFF] !== qd[hl4 + TCP_DOFF] ||
      rd16(d, l4 + TCP_WINDOW) !== rd16(qd, hl4 + TCP_WINDOW) ||
      rd16(d, l4 + TCP_URGENT) !== rd16(qd, hl4 + TCP_URGENT) ||
      ((flags ^ qd[hl4 + TCP_FLAGS]!) & ~(TCP_PSH | TCP_FIN | TCP_CWR)) !== 0 ||
      (flags & TCP_CWR) !== 0 ||
      !sameBytes(d, l4 + TCP_HEADER_LEN, qd, hl4 + TCP_HEADER_LEN, thl - TCP_HEADER_LEN)
    )
      return false;
    let fixedId = h.fixedId;
    if (h.v4) {
      // TOS, flags (DF), TTL equal; identification +1 per segment, or the same on all with DF (decided by the second).
      const frag = rd16(d, l3 + IP4_FLAGS_FRAG);
      if (d[l3 + 1] !== qd[hl3 + 1] || frag !== rd16(qd, hl3 + IP4_FLAGS_FRAG) || d[l3 + IP4_TTL] !== qd[hl3 + IP4_TTL]) return false;
      const id = rd16(d, l3 + IP4_IDENT);
      if (h.count === 1 && (frag & IP4_DF) !== 0 && id === h.firstId) fixedId = true;
      if (id !== (fixedId ? h.firstId : (h.firstId + h.count) & 0xffff)) return false;
    } else {
      // Version, traffic class and flow label; hop limit.
      if (rd32(d, l3) !== rd32(qd, hl3) || d[l3 + IP6_HOP_LIMIT] !== qd[hl3 + IP6_HOP_LIMIT]) return false;
    }
    const ipLen = q.end - (h.v4 ? hl3 : hl4) + payloadLen;
    if (q.end - q.start + payloadLen > this.maxBytes || ipLen > IP_MAX_LEN) return false;
    if (!h.verified && this.verify) {
      if (!tcpChecksumValid(qd, hl3, hl4, q.end, h.v4)) return false;
      h.verified = true;
    }
    if (q.pool !== this.pool) {
      if (!this.rehome(h)) return false;
      q = h.p!;
      qd = q.data;
    }
    if (q.end + payloadLen > qd.length - TAILROOM || q.end - q.start + payloadLen > (q.pool?.frameCapacity ?? qd.length)) return false;
    copy(p, l4 + thl, p.end, q, q.end);
    q.end += payloadLen;
    qd[h.l4 + TCP_FLAGS] = qd[h.l4 + TCP_FLAGS]! | (flags & (TCP_PSH | TCP_FIN));
    h.count++;
    h.nextSeq = (h.nextSeq + payloadLen) >>> 0;
    h.fixedId = fixedId;
    // A traced segment keeps the trace going in the super-frame it joined.
    if (p.traced) q.traced = true;
    p.release();
    // A short segment, PSH or FIN end the super-frame (tcp_gro_receive's flush); so does the 64th. One
    // that is only near its size limit is held: a short last segment may still fit.
    if ((flags & (TCP_PSH | TCP_FIN)) !== 0 || payloadLen < h.mss || h.count === GSO_MAX_SEGMENTS) {
      this.flushSlot(h, out);
    }
    return true;
  }

  /** Moves the held first segment into a buffer of `pool`; false when the pool has none free. */
  private rehome(h: Held): boolean {
    const q = h.p!;
    const b = this.pool.alloc();
    if (b === null) return false;
    const s = b.start;
    copy(q, q.start, q.end, b, s);
    b.end = s + (q.end - q.start);
    b.copyMeta(q);
    h.l3 += s - q.start;
    h.l4 += s - q.start;
    h.p = b;
    q.release();
    return true;
  }

  /** Gives out the held frame of `h`: as it came when alone, else as a super-frame. */
  private flushSlot(h: Held, out: PacketBatch): void {
    const q = h.p!;
    h.p = null;
    this.stats.flushes++;
    if (h.count > 1) {
      const d = q.data;
      const l3 = h.l3;
      const l4 = h.l4;
      const tcpLen = q.end - l4;
      let pseudo: number;
      if (h.v4) {
        wr16(d, l3 + IP4_TOTAL_LEN, q.end - l3);
        wr16(d, l3 + IP4_CHECKSUM, 0);
        wr16(d, l3 + IP4_CHECKSUM, checksum(d, l3, IPV4_HEADER_LEN));
        pseudo = pseudoSumV4At(d, l3 + IP4_SRC, l3 + IP4_SRC + 4, IPPROTO_TCP, tcpLen);
      } else {
        wr16(d, l3 + IP6_PAYLOAD_LEN, tcpLen);
        pseudo = pseudoSumV6At(d, l3 + IP6_SRC, l3 + IP6_SRC + 16, IPPROTO_TCP, tcpLen);
      }
      // NEEDS_CSUM: the field holds the pseudo-header sum, not complemented (as the kernel's tcp_v4_send_check).
      wr16(d, l4 + TCP_CHECKSUM, fold(pseudo));
      q.gsoType = (h.v4 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6) | ((d[l4 + TCP_FLAGS]! & TCP_CWR) !== 0 ? VNET_GSO_ECN : 0);
      q.gsoSize = h.mss;
      q.hdrLen = l4 + h.thl - q.start;
      q.csumStart = l4;
      q.csumOffset = TCP_CHECKSUM;
      q.l2 = q.start;
      q.l3 = l3;
      q.l4 = l4;
      this.stats.coalesced++;
      this.stats.coalescedSegments += h.count;
    }
    this.emit(q, out);
  }

  private emit(p: PacketBuf, out: PacketBatch): void {
    if (out.add(p)) return;
    this.stats.drops[DropReason.QueueFull]!++;
    p.release();
  }
}

/** Whether the TCP segment `[l4, end)` has a valid checksum. */
function tcpChecksumValid(d: Uint8Array, l3: number, l4: number, end: number, v4: boolean): boolean {
  const len = end - l4;
  const pseudo = v4 ? pseudoSumV4At(d, l3 + IP4_SRC, l3 + IP4_SRC + 4, IPPROTO_TCP, len) : pseudoSumV6At(d, l3 + IP6_SRC, l3 + IP6_SRC + 16, IPPROTO_TCP, len);
  return finish(onesSum(d, l4, len, pseudo)) === 0;
}
