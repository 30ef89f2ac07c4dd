/**
 * ICMPv6 (RFC 4443) and the two Neighbor Discovery messages a switch answers or snoops: Neighbor
 * Solicitation and Advertisement (RFC 4861 §4.3, §4.4).
 *
 * ICMPv6 has no length field: the message is the whole upper-layer payload, so the checksum methods and
 * `parse` take that length. The checksum covers the IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1),
 * whose unfolded sum the caller passes in as `pseudoSum` (`pseudoSumV6At` in checksum.ts).
 *
 * The `Repr` is a union on `kind`. A message gets a specific kind only when that kind can hold what the
 * message carries; everything else is `'other'` and round-trips byte for byte:
 * - echo, Neighbor Solicitation and Advertisement with a non-zero code are `'other'` (RFC 4443 §4 defines
 *   only code 0 for echo; RFC 4861 §7.1 says an ND message with a non-zero code is not ND at all);
 * - Packet Too Big ignores its code (RFC 4443 §3.2: "ignored by the receiver") and emits zero;
 * - the unused bytes 4-7 of destination unreachable and time exceeded, and the reserved bits of NS/NA,
 *   are emitted as zero and not kept.
 * Router Solicitation/Advertisement and Redirect are `'other'`; their options are not walked.
 */
import { rd32, rdMac, wr32, wrMac } from './bytes.js';
import { finish, onesSum } from './checksum.js';
import { DropReason } from './drop.js';
import { emitIcmpHeader, ICMP_HEADER_LEN, IcmpView, setIcmpChecksum } from './icmp.js';

/** Type, code, checksum and the 4-byte message body every ICMPv6 message starts with. */
export const ICMPV6_HEADER_LEN = ICMP_HEADER_LEN;
/** Neighbor Solicitation/Advertisement without options: header plus the 16-byte target. */
export const ICMPV6_ND_NEIGHBOR_LEN = 24;
/** One ND link-layer address option for Ethernet: type, length 1 (× 8 bytes), 6-byte MAC. */
export const ICMPV6_ND_LINK_ADDR_OPT_LEN = 8;

/** Destination Unreachable (RFC 4443 §3.1). */
export const ICMPV6_DEST_UNREACHABLE = 1;
/** Packet Too Big (RFC 4443 §3.2). */
export const ICMPV6_PACKET_TOO_BIG = 2;
/** Time Exceeded (RFC 4443 §3.3). */
export const ICMPV6_TIME_EXCEEDED = 3;
/** Parameter Problem (RFC 4443 §3.4); parsed as `'other'`, `rest` is the pointer. */
export const ICMPV6_PARAM_PROBLEM = 4;
/** Echo Request (RFC 4443 §4.1). */
export const ICMPV6_ECHO_REQUEST = 128;
/** Echo Reply (RFC 4443 §4.2). */
export const ICMPV6_ECHO_REPLY = 129;
/** Router Solicitation (RFC 4861 §4.1); parsed as `'other'`. */
export const ICMPV6_ROUTER_SOLICIT = 133;
/** Router Advertisement (RFC 4861 §4.2); parsed as `'other'`. */
export const ICMPV6_ROUTER_ADVERT = 134;
/** Neighbor Solicitation (RFC 4861 §4.3). */
export const ICMPV6_NEIGHBOR_SOLICIT = 135;
/** Neighbor Advertisement (RFC 4861 §4.4). */
export const ICMPV6_NEIGHBOR_ADVERT = 136;
/** Redirect (RFC 4861 §4.5); parsed as `'other'`. */
export const ICMPV6_REDIRECT = 137;

/** Destination unreachable code: no route to destination (RFC 4443 §3.1). */
export const ICMPV6_CODE_NO_ROUTE = 0;
/** Communication administratively prohibited. */
export const ICMPV6_CODE_ADMIN_PROHIBITED = 1;
/** Beyond scope of source address. */
export const ICMPV6_CODE_BEYOND_SCOPE = 2;
/** Address unreachable. */
export const ICMPV6_CODE_ADDR_UNREACHABLE = 3;
/** Port unreachable. */
export const ICMPV6_CODE_PORT_UNREACHABLE = 4;
/** Source address failed ingress/egress policy. */
export const ICMPV6_CODE_SOURCE_POLICY = 5;
/** Reject route to destination. */
export const ICMPV6_CODE_REJECT_ROUTE = 6;
/** Time exceeded code: hop limit exceeded in transit (RFC 4443 §3.3). */
export const ICMPV6_CODE_HOP_LIMIT_EXCEEDED = 0;
/** Fragment reassembly time exceeded. */
export const ICMPV6_CODE_REASSEMBLY_EXCEEDED = 1;

/** ND option type Source Link-Layer Address (RFC 4861 §4.6.1). */
export const ICMPV6_ND_OPT_SOURCE_LINK_ADDR = 1;
/** Target Link-Layer Address. */
export const ICMPV6_ND_OPT_TARGET_LINK_ADDR = 2;
/** Prefix Information. */
export const ICMPV6_ND_OPT_PREFIX_INFO = 3;
/** Redirected Header. */
export const ICMPV6_ND_OPT_REDIRECTED_HEADER = 4;
/** MTU. */
export const ICMPV6_ND_OPT_MTU = 5;

/** Neighbor Advertisement flags in byte 4 (RFC 4861 §4.4). */
const NA_ROUTER = 0x80;
const NA_SOLICITED = 0x40;
const NA_OVERRIDE = 0x20;

const MTU = 4;
const NA_FLAGS = 4;
const TARGET = 8;

/** True for the two ND messages given their own kind (NS, NA with code 0). */
function isNeighborMsg(type: number, code: number): boolean {
  return code === 0 && (type === ICMPV6_NEIGHBOR_SOLICIT || type === ICMPV6_NEIGHBOR_ADVERT);
}

/**
 * Walks the ND options in `b[start, end)`. Returns -2 when an option has length 0 or runs past `end`
 * (RFC 4861 §4.6: "nodes MUST silently discard an ND packet that contains an option with length zero"),
 * otherwise the offset of the MAC in the first option of type `want` that is an Ethernet link-layer
 * address (length 1), or -1. With `want` = -1 it only validates. Never reads outside `[start, end)`.
 */
function walkNdOptions(b: Uint8Array, start: number, end: number, want: number): number {
  let found = -1;
  for (let i = start; i < end; ) {
    if (i + 2 > end) return -2;
    const len = b[i + 1]! * 8;
    if (len === 0 || i + len > end) return -2;
    if (found < 0 && b[i] === want && len === ICMPV6_ND_LINK_ADDR_OPT_LEN) found = i + 2;
    i += len;
  }
  return found;
}

/** A view of an ICMPv6 message at `bytes[off]`; allocates nothing except where a getter says so. */
export class Icmpv6View extends IcmpView {
  /**
   * `avail` is the number of bytes from `off` to the end of the IPv6 payload, i.e. the message length.
   * For NS and NA the target must be there and the options must be well formed (RFC 4861 §7.1.1, §7.1.2).
   */
  check(avail: number): DropReason | null {
    if (avail < ICMPV6_HEADER_LEN) return DropReason.Icmpv6Truncated;
    if (isNeighborMsg(this.type, this.code)) {
      if (avail < ICMPV6_ND_NEIGHBOR_LEN) return DropReason.Icmpv6Truncated;
      const end = this.off + avail;
      if (walkNdOptions(this.bytes, this.off + ICMPV6_ND_NEIGHBOR_LEN, end, -1) === -2) return DropReason.Icmpv6BadNdOption;
    }
    return null;
  }
  /** Packet Too Big MTU (bytes 4-7, RFC 4443 §3.2). */
  get mtu(): number {
    return rd32(this.bytes, this.off + MTU);
  }
  set mtu(v: number) {
    wr32(this.bytes, this.off + MTU, v);
  }

  /** NA byte 4; the low five bits are reserved (RFC 4861 §4.4). */
  get naFlags(): number {
    return this.bytes[this.off + NA_FLAGS]!;
  }
  set naFlags(v: number) {
    this.bytes[this.off + NA_FLAGS] = v;
  }
  get router(): boolean {
    return (this.naFlags & NA_ROUTER) !== 0;
  }
  set router(v: boolean) {
    this.naFlags = v ? this.naFlags | NA_ROUTER : this.naFlags & ~NA_ROUTER;
  }
  get solicited(): boolean {
    return (this.naFlags & NA_SOLICITED) !== 0;
  }
  set solicited(v: boolean) {
    this.naFlags = v ? this.naFlags | NA_SOLICITED : this.naFlags & ~NA_SOLICITED;
  }
  get override(): boolean {
    return (this.naFlags & NA_OVERRIDE) !== 0;
  }
  set override(v: boolean) {
    this.naFlags = v ? this.naFlags | NA_OVERRIDE : this.naFlags & ~NA_OVERRIDE;
  }

  /** Offset of the 16-byte NS/NA target address. */
  get targetOffset(): number {
    return this.off + TARGET;
  }
  /** The NS/NA target address; allocates a subarray (use `targetOffset` on hot paths). */
  get target(): Uint8Array {
    return this.bytes.subarray(this.off + TARGET, this.off + TARGET + 16);
  }
  set target(a: Uint8Array) {
    this.bytes.set(a.subarray(0, 16), this.off + TARGET);
  }

  /**
   * Offset of the MAC in the NS source (or NA target) link-layer address option of a checked `len`-byte
   * NS (NA), or -1 when there is none. Only the first such option of length 1 (Ethernet) counts.
   */
  ndLinkAddrOffset(len: number): number {
    const want = this.type === ICMPV6_NEIGHBOR_SOLICIT ? ICMPV6_ND_OPT_SOURCE_LINK_ADDR : ICMPV6_ND_OPT_TARGET_LINK_ADDR;
    const r = walkNdOptions(this.bytes, this.off + ICMPV6_ND_NEIGHBOR_LEN, this.off + len, want);
    return r < 0 ? -1 : r;
  }

  /** True when the checksum over the pseudo-header and the `len`-byte message is right. */
  verifyChecksum(pseudoSum: number, len: number): boolean {
    return finish(onesSum(this.bytes, this.off, len, pseudoSum)) === 0;
  }

  /** Computes and stores the checksum over the pseudo-header and the `len`-byte message. */
  fillChecksum(pseudoSum: number, len: number): void {
    this.checksum = 0;
    this.checksum = finish(onesSum(this.bytes, this.off, len, pseudoSum));
  }
}

/** Echo request or reply (RFC 4443 §4): `data` is echoed back unchanged. */
export interface Icmpv6EchoRepr {
  kind: 'echoRequest' | 'echoReply';
  ident: number;
  seq: number;
  data: Uint8Array;
}
/**
 * Packet Too Big (RFC 4443 §3.2). `data` is as much of the offending packet as fits in the minimum MTU,
 * starting with its IPv6 header.
 */
export interface Icmpv6PacketTooBigRepr {
  kind: 'packetTooBig';
  mtu: number;
  data: Uint8Array;
}
/** Destination unreachable (RFC 4443 §3.1); `data` is the quoted packet. */
export interface Icmpv6DestUnreachableRepr {
  kind: 'destUnreachable';
  code: number;
  data: Uint8Array;
}
/** Time exceeded (RFC 4443 §3.3); `data` is the quoted packet. */
export interface Icmpv6TimeExceededRepr {
  kind: 'timeExceeded';
  code: number;
  data: Uint8Array;
}
/**
 * Neighbor Solicitation (RFC 4861 §4.3). Options other than an Ethernet source link-layer address are
 * skipped on parse and not kept; emit writes the address option only when `sourceLinkAddr` is set
 * (it must be absent when the IPv6 source is unspecified, RFC 4861 §7.1.1).
 */
export interface Icmpv6NeighborSolicitRepr {
  kind: 'neighborSolicit';
  target: Uint8Array;
  sourceLinkAddr: number | null;
}
/**
 * Neighbor Advertisement (RFC 4861 §4.4). Options other than an Ethernet target link-layer address are
 * skipped on parse and not kept.
 */
export interface Icmpv6NeighborAdvertRepr {
  kind: 'neighborAdvert';
  router: boolean;
  solicited: boolean;
  override: boolean;
  target: Uint8Array;
  targetLinkAddr: number | null;
}
/** Any other message, kept whole: `rest` is bytes 4-7, `data` everything after. */
export interface Icmpv6OtherRepr {
  kind: 'other';
  type: number;
  code: number;
  rest: number;
  data: Uint8Array;
}
/** An ICMPv6 message, by `kind`; see the module comment for which messages are `'other'`. */
export type Icmpv6Repr =
  | Icmpv6EchoRepr
  | Icmpv6PacketTooBigRepr
  | Icmpv6DestUnreachableRepr
  | Icmpv6TimeExceededRepr
  | Icmpv6NeighborSolicitRepr
  | Icmpv6NeighborAdvertRepr
  | Icmpv6OtherRepr;

/**
 * Parses a checked-or-not view of an `avail`-byte message. `data` and `target` are subarrays of the
 * frame. The checksum is verified by the caller (`Icmpv6View.verifyChecksum`), as for UDP; so are the
 * ND rules that need the IP header (hop limit 255, RFC 4861 §7.1).
 */
export function parseIcmpv6(v: Icmpv6View, avail: number): Icmpv6Repr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  const type = v.type;
  const code = v.code;
  const data = v.bytes.subarray(v.payloadOffset, v.off + avail);
  switch (type) {
    case ICMPV6_ECHO_REQUEST:
    case ICMPV6_ECHO_REPLY:
      if (code !== 0) break;
      return { kind: type === ICMPV6_ECHO_REQUEST ? 'echoRequest' : 'echoReply', ident: v.ident, seq: v.seq, data };
    case ICMPV6_PACKET_TOO_BIG:
      return { kind: 'packetTooBig', mtu: v.mtu, data };
    case ICMPV6_DEST_UNREACHABLE:
      return { kind: 'destUnreachable', code, data };
    case ICMPV6_TIME_EXCEEDED:
      return { kind: 'timeExceeded', code, data };
    case ICMPV6_NEIGHBOR_SOLICIT: {
      if (code !== 0) break;
      const o = v.ndLinkAddrOffset(avail);
      return { kind: 'neighborSolicit', target: v.target, sourceLinkAddr: o < 0 ? null : rdMac(v.bytes, o) };
    }
    case ICMPV6_NEIGHBOR_ADVERT: {
      if (code !== 0) break;
      const o = v.ndLinkAddrOffset(avail);
      return {
        kind: 'neighborAdvert',
        router: v.router,
        solicited: v.solicited,
        override: v.override,
        target: v.target,
        targetLinkAddr: o < 0 ? null : rdMac(v.bytes, o),
      };
    }
    default:
      break;
  }
  return { kind: 'other', type, code, rest: v.rest, data };
}

/** The whole message: header and body, or for NS/NA target and the link-layer address option if any. */
export function icmpv6BufferLen(repr: Icmpv6Repr): number {
  switch (repr.kind) {
    case 'neighborSolicit':
      return ICMPV6_ND_NEIGHBOR_LEN + (repr.sourceLinkAddr === null ? 0 : ICMPV6_ND_LINK_ADDR_OPT_LEN);
    case 'neighborAdvert':
      return ICMPV6_ND_NEIGHBOR_LEN + (repr.targetLinkAddr === null ? 0 : ICMPV6_ND_LINK_ADDR_OPT_LEN);
    default:
      return ICMPV6_HEADER_LEN + repr.data.length;
  }
}

/** Writes an NS/NA target and its optional link-layer address option; returns the message length. */
function emitNeighbor(bytes: Uint8Array, off: number, target: Uint8Array, optType: number, mac: number | null): number {
  bytes.set(target.subarray(0, 16), off + TARGET);
  if (mac === null) return ICMPV6_ND_NEIGHBOR_LEN;
  const o = off + ICMPV6_ND_NEIGHBOR_LEN;
  bytes[o] = optType;
  bytes[o + 1] = ICMPV6_ND_LINK_ADDR_OPT_LEN / 8;
  wrMac(bytes, o + 2, mac);
  return ICMPV6_ND_NEIGHBOR_LEN + ICMPV6_ND_LINK_ADDR_OPT_LEN;
}

/**
 * Writes the whole message at `bytes[off]`: header, body (`data` is copied unless already in place;
 * overlapping is fine) and the checksum, which includes `pseudoSum` (built with
 * `icmpv6BufferLen(repr)` as the upper-layer length).
 */
export function emitIcmpv6(repr: Icmpv6Repr, bytes: Uint8Array, off: number, pseudoSum: number): void {
  let type: number;
  let code = 0;
  let rest = 0;
  let len: number;
  switch (repr.kind) {
    case 'echoRequest':
    case 'echoReply':
      type = repr.kind === 'echoRequest' ? ICMPV6_ECHO_REQUEST : ICMPV6_ECHO_REPLY;
      rest = (repr.ident & 0xffff) * 0x10000 + (repr.seq & 0xffff);
      break;
    case 'packetTooBig':
      type = ICMPV6_PACKET_TOO_BIG;
      rest = repr.mtu;
      break;
    case 'destUnreachable':
      type = ICMPV6_DEST_UNREACHABLE;
      code = repr.code;
      break;
    case 'timeExceeded':
      type = ICMPV6_TIME_EXCEEDED;
      code = repr.code;
      break;
    case 'neighborSolicit':
      type = ICMPV6_NEIGHBOR_SOLICIT;
      break;
    case 'neighborAdvert':
      type = ICMPV6_NEIGHBOR_ADVERT;
      rest = ((repr.router ? NA_ROUTER : 0) | (repr.solicited ? NA_SOLICITED : 0) | (repr.override ? NA_OVERRIDE : 0)) * 0x100_0000;
      break;
    case 'other':
      type = repr.type;
      code = repr.code;
      rest = repr.rest;
      break;
  }
  emitIcmpHeader(bytes, off, type, code, rest);
  if (repr.kind === 'neighborSolicit') {
    len = emitNeighbor(bytes, off, repr.target, ICMPV6_ND_OPT_SOURCE_LINK_ADDR, repr.sourceLinkAddr);
  } else if (repr.kind === 'neighborAdvert') {
    len = emitNeighbor(bytes, off, repr.target, ICMPV6_ND_OPT_TARGET_LINK_ADDR, repr.targetLinkAddr);
  } else {
    if (repr.data.length > 0) bytes.set(repr.data, off + ICMPV6_HEADER_LEN);
    len = ICMPV6_HEADER_LEN + repr.data.length;
  }
  setIcmpChecksum(bytes, off, finish(onesSum(bytes, off, len, pseudoSum)));
}
