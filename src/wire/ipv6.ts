/**
 * IPv6 (RFC 8200): the fixed header, the Fragment header (§4.5), and a walker over extension headers
 * that finds the upper-layer header, the fragment header and the destination the upper-layer checksum
 * uses (§8.1: the final destination when a Routing header is present).
 */
import { rd16, rd32, wr16, wr32 } from './bytes.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

export const IPV6_HEADER_LEN = 40;
export const IPV6_FRAG_HEADER_LEN = 8;
/** More extension headers than this in one packet is treated as an attack, not a packet. */
export const IPV6_MAX_EXT_HEADERS = 8;

export const IPV6_NH_HOP_BY_HOP = 0;
export const IPV6_NH_ROUTING = 43;
export const IPV6_NH_FRAGMENT = 44;
export const IPV6_NH_AH = 51;
export const IPV6_NH_NONE = 59;
export const IPV6_NH_DEST_OPTS = 60;
export const IPV6_NH_MOBILITY = 135;
export const IPV6_NH_HIP = 139;
export const IPV6_NH_SHIM6 = 140;

const VTF = 0; // version, traffic class, flow label
const PAYLOAD_LEN = 4;
const NEXT_HEADER = 6;
const HOP_LIMIT = 7;
const SRC = 8;
const DST = 24;

export class Ipv6View extends WireView {
  /** `avail`: bytes from `off` to the end of the frame (link-layer padding may follow the packet). */
  check(avail: number): DropReason | null {
    if (avail < IPV6_HEADER_LEN) return DropReason.Ipv6Truncated;
    if (this.version !== 6) return DropReason.Ipv6BadVersion;
    if (IPV6_HEADER_LEN + this.payloadLen > avail) return DropReason.Ipv6BadPayloadLen;
    return null;
  }
  get version(): number {
    return this.bytes[this.off]! >>> 4;
  }
  get trafficClass(): number {
    return (rd16(this.bytes, this.off + VTF) >>> 4) & 0xff;
  }
  get flowLabel(): number {
    return rd32(this.bytes, this.off + VTF) & 0xfffff;
  }
  /** Writes version 6, traffic class and flow label together. */
  setVtf(trafficClass: number, flowLabel: number): void {
    wr32(this.bytes, this.off + VTF, ((6 << 28) | ((trafficClass & 0xff) << 20) | (flowLabel & 0xfffff)) >>> 0);
  }
  get payloadLen(): number {
    return rd16(this.bytes, this.off + PAYLOAD_LEN);
  }
  set payloadLen(v: number) {
    wr16(this.bytes, this.off + PAYLOAD_LEN, v);
  }
  get nextHeader(): number {
    return this.bytes[this.off + NEXT_HEADER]!;
  }
  set nextHeader(v: number) {
    this.bytes[this.off + NEXT_HEADER] = v;
  }
  get hopLimit(): number {
    return this.bytes[this.off + HOP_LIMIT]!;
  }
  set hopLimit(v: number) {
    this.bytes[this.off + HOP_LIMIT] = v;
  }
  get srcOffset(): number {
    return this.off + SRC;
  }
  get dstOffset(): number {
    return this.off + DST;
  }
  /** A window onto the source address (allocates a view object: not for the hot path). */
  get src(): Uint8Array {
    return this.bytes.subarray(this.off + SRC, this.off + SRC + 16);
  }
  set src(a: Uint8Array) {
    this.bytes.set(a.subarray(0, 16), this.off + SRC);
  }
  get dst(): Uint8Array {
    return this.bytes.subarray(this.off + DST, this.off + DST + 16);
  }
  set dst(a: Uint8Array) {
    this.bytes.set(a.subarray(0, 16), this.off + DST);
  }
  get payloadOffset(): number {
    return this.off + IPV6_HEADER_LEN;
  }
}

/** The Fragment header (RFC 8200 §4.5). */
export class Ipv6FragView extends WireView {
  check(avail: number): DropReason | null {
    return avail < IPV6_FRAG_HEADER_LEN ? DropReason.Ipv6FragTruncated : null;
  }
  get nextHeader(): number {
    return this.bytes[this.off]!;
  }
  set nextHeader(v: number) {
    this.bytes[this.off] = v;
  }
  /** Offset in bytes (a multiple of 8). */
  get fragOffset(): number {
    return rd16(this.bytes, this.off + 2) & 0xfff8;
  }
  get moreFrags(): boolean {
    return (this.bytes[this.off + 3]! & 1) !== 0;
  }
  /** Writes offset, the two reserved bits (zero) and M together. */
  setOffsetMore(offsetBytes: number, more: boolean): void {
    wr16(this.bytes, this.off + 2, (offsetBytes & 0xfff8) | (more ? 1 : 0));
  }
  get ident(): number {
    return rd32(this.bytes, this.off + 4);
  }
  set ident(v: number) {
    wr32(this.bytes, this.off + 4, v);
  }
}

/** Extension headers with the generic (next header, length in 8-octet units beyond the first) layout. */
export function isGenericExtHeader(nh: number): boolean {
  return (
    nh === IPV6_NH_HOP_BY_HOP || nh === IPV6_NH_ROUTING || nh === IPV6_NH_DEST_OPTS || nh === IPV6_NH_MOBILITY || nh === IPV6_NH_HIP || nh === IPV6_NH_SHIM6
  );
}

/** Length in bytes of the extension header of type `nh` at `o` (its length byte must be inside the packet: `walkIpv6` checks), or -1 when `nh` is not one. */
export function ipv6ExtLen(bytes: Uint8Array, o: number, nh: number): number {
  if (isGenericExtHeader(nh)) return (bytes[o + 1]! + 1) << 3;
  if (nh === IPV6_NH_AH) return (bytes[o + 1]! + 2) << 2; // RFC 4302 §2.2: in 4-octet units, minus 2
  if (nh === IPV6_NH_FRAGMENT) return IPV6_FRAG_HEADER_LEN;
  return -1;
}

/**
 * RFC 8200 §8.1: with a Routing header whose segments left is non-zero, the upper-layer pseudo-header
 * uses the final destination. `typeOff` is the offset of the routing-type octet (header start + 2),
 * `end` the end of the header. Returns the offset of the final destination, or -1 when this header
 * does not name one. Type 0 (deprecated) and 2 list addresses after the first 8 bytes with the final
 * one last; type 4 (SRH, RFC 8754 §4.1) lists segments in reverse, so the final one is first.
 */
export function routingFinalDst(bytes: Uint8Array, typeOff: number, end: number): number {
  const first = typeOff + 6;
  const addrs = (end - first) >> 4;
  if (addrs <= 0 || bytes[typeOff + 1]! === 0) return -1;
  const type = bytes[typeOff]!;
  if (type === 0 || type === 2) return first + 16 * (addrs - 1);
  if (type === 4) return first;
  return -1;
}

/** What `walkIpv6` found. Allocate one and reuse it: the walk itself allocates nothing. */
export class Ipv6Walk {
  /** Protocol of the first header that is not an extension header (59 when there is none). */
  upperProto = IPV6_NH_NONE;
  /** Offset of that header (the fragment data for a non-first fragment). */
  upperOff = 0;
  /** Offset of the Fragment header, or -1. */
  fragOff = -1;
  /** Offset of the address the upper-layer pseudo-header uses as destination. */
  pseudoDstOff = 0;
  /** Number of extension headers seen. */
  extCount = 0;
  /** True for a fragment with a non-zero offset: `upperOff` is fragment data, not a header. */
  nonFirst = false;
}

/**
 * Walks the extension-header chain of a checked IPv6 packet at `off` whose payload ends at `end`.
 * Unknown next-header values end the walk (they are the upper layer), so they round-trip.
 */
export function walkIpv6(bytes: Uint8Array, off: number, end: number, out: Ipv6Walk): DropReason | null {
  let nh = bytes[off + NEXT_HEADER]!;
  let p = off + IPV6_HEADER_LEN;
  out.fragOff = -1;
  out.nonFirst = false;
  out.extCount = 0;
  out.pseudoDstOff = off + DST;
  for (;;) {
    if (!isGenericExtHeader(nh) && nh !== IPV6_NH_AH && nh !== IPV6_NH_FRAGMENT) break;
    if (++out.extCount > IPV6_MAX_EXT_HEADERS) return DropReason.Ipv6TooManyExtHeaders;
    if (nh === IPV6_NH_FRAGMENT) {
      if (end - p < IPV6_FRAG_HEADER_LEN) return DropReason.Ipv6FragTruncated;
      out.fragOff = p;
      const fragNh = bytes[p]!;
      if ((rd16(bytes, p + 2) & 0xfff8) !== 0) {
        // Later fragments carry data only; the headers after the Fragment header are in the first one.
        out.nonFirst = true;
        out.upperProto = fragNh;
        out.upperOff = p + IPV6_FRAG_HEADER_LEN;
        return null;
      }
      nh = fragNh;
      p += IPV6_FRAG_HEADER_LEN;
      continue;
    }
    // The length byte is read only once it is inside the packet.
    if (end - p < 2) return DropReason.Ipv6ExtTruncated;
    const len = ipv6ExtLen(bytes, p, nh);
    if (end - p < len) return DropReason.Ipv6ExtTruncated;
    if (nh === IPV6_NH_ROUTING) {
      const d = routingFinalDst(bytes, p + 2, p + len);
      if (d >= 0) out.pseudoDstOff = d;
    }
    nh = bytes[p]!;
    p += len;
  }
  out.upperProto = nh;
  out.upperOff = p;
  return null;
}

export interface Ipv6Repr {
  src: Uint8Array;
  dst: Uint8Array;
  nextHeader: number;
  hopLimit: number;
  trafficClass: number;
  flowLabel: number;
  payloadLen: number;
}

export function parseIpv6(v: Ipv6View, avail: number): Ipv6Repr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  return {
    src: v.src,
    dst: v.dst,
    nextHeader: v.nextHeader,
    hopLimit: v.hopLimit,
    trafficClass: v.trafficClass,
    flowLabel: v.flowLabel,
    payloadLen: v.payloadLen,
  };
}

export function ipv6BufferLen(_repr: Ipv6Repr): number {
  return IPV6_HEADER_LEN;
}

export function emitIpv6(repr: Ipv6Repr, bytes: Uint8Array, off: number): void {
  const v = new Ipv6View(bytes, off);
  v.setVtf(repr.trafficClass, repr.flowLabel);
  v.payloadLen = repr.payloadLen;
  v.nextHeader = repr.nextHeader;
  v.hopLimit = repr.hopLimit;
  v.src = repr.src;
  v.dst = repr.dst;
}

export interface Ipv6FragRepr {
  nextHeader: number;
  /** In bytes, a multiple of 8. */
  fragOffset: number;
  moreFrags: boolean;
  ident: number;
}

export function parseIpv6Frag(v: Ipv6FragView, avail: number): Ipv6FragRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  return { nextHeader: v.nextHeader, fragOffset: v.fragOffset, moreFrags: v.moreFrags, ident: v.ident };
}

export function emitIpv6Frag(repr: Ipv6FragRepr, bytes: Uint8Array, off: number): void {
  bytes[off] = repr.nextHeader;
  bytes[off + 1] = 0;
  wr16(bytes, off + 2, (repr.fragOffset & 0xfff8) | (repr.moreFrags ? 1 : 0));
  wr32(bytes, off + 4, repr.ident);
}

/**
 * A generic extension header (Hop-by-Hop, Routing, Destination Options, …) kept as raw bytes: `data`
 * is everything after the next-header and length octets, so its length is 6 + a multiple of 8.
 */
export interface Ipv6ExtRepr {
  headerType: number;
  nextHeader: number;
  data: Uint8Array;
}

export function parseIpv6Ext(bytes: Uint8Array, off: number, avail: number, headerType: number): Ipv6ExtRepr | DropReason {
  if (!isGenericExtHeader(headerType)) return DropReason.Ipv6ExtTruncated;
  if (avail < 8) return DropReason.Ipv6ExtTruncated;
  const len = (bytes[off + 1]! + 1) << 3;
  if (len > avail) return DropReason.Ipv6ExtTruncated;
  return { headerType, nextHeader: bytes[off]!, data: bytes.subarray(off + 2, off + len) };
}

export function ipv6ExtBufferLen(repr: Ipv6ExtRepr): number {
  return (repr.data.length + 2 + 7) & ~7;
}

/** Writes the header; `data` shorter than the 8-byte boundary is padded with zeros (Pad bytes). */
export function emitIpv6Ext(repr: Ipv6ExtRepr, bytes: Uint8Array, off: number): void {
  const len = ipv6ExtBufferLen(repr);
  bytes[off] = repr.nextHeader;
  bytes[off + 1] = (len >>> 3) - 1;
  bytes.set(repr.data, off + 2);
  bytes.fill(0, off + 2 + repr.data.length, off + len);
}
