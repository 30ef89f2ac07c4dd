/**
 * IPv4 (RFC 791): header with options, the header checksum (RFC 1071), DF/MF and the fragment offset.
 * The fragment offset is exposed in bytes (the wire carries 8-byte units), as Wireshark shows it.
 */
import { rd16, rd32, wr16, wr32 } from './bytes.js';
import { checksum, finish, onesSum } from './checksum.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

export const IPV4_HEADER_LEN = 20;
export const IPV4_MAX_HEADER_LEN = 60;

// The protocol numbers live in ipproto.ts; most of their users read them with this header.
export { IPPROTO_ESP, IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP } from './ipproto.js';

const VER_IHL = 0;
const TOS = 1;
const TOTAL_LEN = 2;
const IDENT = 4;
const FLAGS_FRAG = 6;
const TTL = 8;
const PROTO = 9;
const CHECKSUM = 10;
const SRC = 12;
const DST = 16;

const FLAG_RB = 0x8000;
const FLAG_DF = 0x4000;
const FLAG_MF = 0x2000;
/** MF and the fragment offset: non-zero in the flags/offset word of any fragment. */
export const IPV4_FRAG_MASK = 0x3fff;

/**
 * The header length (IHL × 4) of the IPv4 header at `b[off]`: the one place the nibble is decoded. Not
 * checked against anything: `Ipv4View.check` says whether it is sound.
 */
export function ipv4HeaderLen(b: Uint8Array, off: number): number {
  return (b[off + VER_IHL]! & 0x0f) << 2;
}

export class Ipv4View extends WireView {
  /** `avail`: bytes from `off` to the end of the frame (link-layer padding may follow the datagram). */
  check(avail: number): DropReason | null {
    if (avail < IPV4_HEADER_LEN) return DropReason.Ipv4Truncated;
    const b = this.bytes;
    const o = this.off;
    const vihl = b[o]!;
    if (vihl >>> 4 !== 4) return DropReason.Ipv4BadVersion;
    const hl = ipv4HeaderLen(b, o);
    if (hl < IPV4_HEADER_LEN || hl > avail) return DropReason.Ipv4BadHeaderLen;
    const tl = (b[o + TOTAL_LEN]! << 8) | b[o + TOTAL_LEN + 1]!;
    if (tl < hl || tl > avail) return DropReason.Ipv4BadTotalLen;
    return null;
  }
  get version(): number {
    return this.bytes[this.off + VER_IHL]! >>> 4;
  }
  /** Header length in bytes (IHL × 4). */
  get headerLen(): number {
    return ipv4HeaderLen(this.bytes, this.off);
  }
  set headerLen(v: number) {
    this.bytes[this.off + VER_IHL] = 0x40 | ((v >>> 2) & 0x0f);
  }
  get dscp(): number {
    return this.bytes[this.off + TOS]! >>> 2;
  }
  get ecn(): number {
    return this.bytes[this.off + TOS]! & 3;
  }
  get tos(): number {
    return this.bytes[this.off + TOS]!;
  }
  set tos(v: number) {
    this.bytes[this.off + TOS] = v;
  }
  get totalLen(): number {
    return rd16(this.bytes, this.off + TOTAL_LEN);
  }
  set totalLen(v: number) {
    wr16(this.bytes, this.off + TOTAL_LEN, v);
  }
  get ident(): number {
    return rd16(this.bytes, this.off + IDENT);
  }
  set ident(v: number) {
    wr16(this.bytes, this.off + IDENT, v);
  }
  /** The 16-bit flags + fragment offset word as on the wire. */
  get flagsFrag(): number {
    return rd16(this.bytes, this.off + FLAGS_FRAG);
  }
  set flagsFrag(v: number) {
    wr16(this.bytes, this.off + FLAGS_FRAG, v);
  }
  get reservedFlag(): boolean {
    return (this.flagsFrag & FLAG_RB) !== 0;
  }
  get dontFrag(): boolean {
    return (this.flagsFrag & FLAG_DF) !== 0;
  }
  set dontFrag(v: boolean) {
    this.flagsFrag = v ? this.flagsFrag | FLAG_DF : this.flagsFrag & ~FLAG_DF;
  }
  get moreFrags(): boolean {
    return (this.flagsFrag & FLAG_MF) !== 0;
  }
  set moreFrags(v: boolean) {
    this.flagsFrag = v ? this.flagsFrag | FLAG_MF : this.flagsFrag & ~FLAG_MF;
  }
  /** Fragment offset in bytes (a multiple of 8). */
  get fragOffset(): number {
    return (this.flagsFrag & 0x1fff) << 3;
  }
  set fragOffset(v: number) {
    this.flagsFrag = (this.flagsFrag & 0xe000) | ((v >>> 3) & 0x1fff);
  }
  /** True for any fragment: MF set or a non-zero offset. */
  get isFragment(): boolean {
    return (this.flagsFrag & IPV4_FRAG_MASK) !== 0;
  }
  get ttl(): number {
    return this.bytes[this.off + TTL]!;
  }
  set ttl(v: number) {
    this.bytes[this.off + TTL] = v;
  }
  get protocol(): number {
    return this.bytes[this.off + PROTO]!;
  }
  set protocol(v: number) {
    this.bytes[this.off + PROTO] = v;
  }
  get checksum(): number {
    return rd16(this.bytes, this.off + CHECKSUM);
  }
  set checksum(v: number) {
    wr16(this.bytes, this.off + CHECKSUM, v);
  }
  get src(): number {
    return rd32(this.bytes, this.off + SRC);
  }
  set src(v: number) {
    wr32(this.bytes, this.off + SRC, v);
  }
  get dst(): number {
    return rd32(this.bytes, this.off + DST);
  }
  set dst(v: number) {
    wr32(this.bytes, this.off + DST, v);
  }
  get srcOffset(): number {
    return this.off + SRC;
  }
  get dstOffset(): number {
    return this.off + DST;
  }
  get optionsLen(): number {
    return this.headerLen - IPV4_HEADER_LEN;
  }
  get payloadOffset(): number {
    return this.off + this.headerLen;
  }
  get payloadLen(): number {
    return this.totalLen - this.headerLen;
  }

  verifyChecksum(): boolean {
    return finish(onesSum(this.bytes, this.off, this.headerLen)) === 0;
  }
  fillChecksum(): void {
    this.checksum = 0;
    this.checksum = checksum(this.bytes, this.off, this.headerLen);
  }
}

export interface Ipv4Repr {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  dscp: number;
  ecn: number;
  ident: number;
  dontFrag: boolean;
  moreFrags: boolean;
  /** In bytes, a multiple of 8. */
  fragOffset: number;
  /** Raw option bytes, a multiple of 4 long (at most 40); kept, not interpreted. */
  options: Uint8Array;
  payloadLen: number;
}

/** Parses the header; with `verifyChecksum` a wrong header checksum is a drop. */
export function parseIpv4(v: Ipv4View, avail: number, verifyChecksum = true): Ipv4Repr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  if (verifyChecksum && !v.verifyChecksum()) return DropReason.Ipv4BadChecksum;
  return {
    src: v.src,
    dst: v.dst,
    protocol: v.protocol,
    ttl: v.ttl,
    dscp: v.dscp,
    ecn: v.ecn,
    ident: v.ident,
    dontFrag: v.dontFrag,
    moreFrags: v.moreFrags,
    fragOffset: v.fragOffset,
    options: v.bytes.subarray(v.off + IPV4_HEADER_LEN, v.off + v.headerLen),
    payloadLen: v.payloadLen,
  };
}

export function ipv4BufferLen(repr: Ipv4Repr): number {
  return IPV4_HEADER_LEN + ((repr.options.length + 3) & ~3);
}

/** Writes the header (reserved flag zero, options zero-padded to 4 bytes) and its checksum. */
export function emitIpv4(repr: Ipv4Repr, bytes: Uint8Array, off: number): void {
  const hl = ipv4BufferLen(repr);
  bytes[off + VER_IHL] = 0x40 | (hl >>> 2);
  bytes[off + TOS] = ((repr.dscp & 0x3f) << 2) | (repr.ecn & 3);
  wr16(bytes, off + TOTAL_LEN, hl + repr.payloadLen);
  wr16(bytes, off + IDENT, repr.ident);
  wr16(bytes, off + FLAGS_FRAG, (repr.dontFrag ? FLAG_DF : 0) | (repr.moreFrags ? FLAG_MF : 0) | ((repr.fragOffset >>> 3) & 0x1fff));
  bytes[off + TTL] = repr.ttl;
  bytes[off + PROTO] = repr.protocol;
  wr16(bytes, off + CHECKSUM, 0);
  wr32(bytes, off + SRC, repr.src);
  wr32(bytes, off + DST, repr.dst);
  bytes.set(repr.options, off + IPV4_HEADER_LEN);
  bytes.fill(0, off + IPV4_HEADER_LEN + repr.options.length, off + hl);
  wr16(bytes, off + CHECKSUM, checksum(bytes, off, hl));
}
