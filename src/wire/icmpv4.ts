/**
 * ICMPv4 (RFC 792), with the next-hop MTU of "fragmentation needed" (RFC 1191 §4).
 *
 * ICMP has no length field: the message is the whole IP payload, so the checksum methods and `parse`
 * take that length (`avail`/`len`). The checksum covers the whole message and has no pseudo-header.
 *
 * The `Repr` is a union on `kind`. A message gets a specific kind only when that kind can hold every
 * field the message carries, so anything else is `'other'` and still round-trips byte for byte:
 * - echo request/reply with a non-zero code (RFC 792 defines only code 0) is `'other'`;
 * - destination unreachable keeps bytes 6-7 as `nextHopMtu`; bytes 4-5 are unused (RFC 1191 §4) and are
 *   emitted as zero, as are bytes 4-7 of time exceeded (RFC 792). RFC 4884's length byte in those unused
 *   bytes is therefore not kept.
 */
import { rd16, wr16 } from './bytes.js';
import { finish, onesSum } from './checksum.js';
import { DropReason } from './drop.js';
import { emitIcmpHeader, ICMP_HEADER_LEN, IcmpView, setIcmpChecksum } from './icmp.js';

/** Type, code, checksum and the 4-byte "rest of header". */
export const ICMPV4_HEADER_LEN = ICMP_HEADER_LEN;

/** Echo reply (RFC 792). */
export const ICMPV4_ECHO_REPLY = 0;
/** Destination unreachable (RFC 792). */
export const ICMPV4_DEST_UNREACHABLE = 3;
/** Redirect (RFC 792); parsed as `'other'`, `rest` is the gateway address. */
export const ICMPV4_REDIRECT = 5;
/** Echo request (RFC 792). */
export const ICMPV4_ECHO_REQUEST = 8;
/** Time exceeded (RFC 792). */
export const ICMPV4_TIME_EXCEEDED = 11;
/** Parameter problem (RFC 792); parsed as `'other'`, the pointer is the top byte of `rest`. */
export const ICMPV4_PARAM_PROBLEM = 12;

/** Destination unreachable code: net unreachable (RFC 792; codes up to 15 in RFC 1812 §5.2.7.1). */
export const ICMPV4_CODE_NET_UNREACHABLE = 0;
/** Host unreachable. */
export const ICMPV4_CODE_HOST_UNREACHABLE = 1;
/** Protocol unreachable. */
export const ICMPV4_CODE_PROTO_UNREACHABLE = 2;
/** Port unreachable. */
export const ICMPV4_CODE_PORT_UNREACHABLE = 3;
/** Fragmentation needed and DF set; `nextHopMtu` is meaningful (RFC 1191 §4). */
export const ICMPV4_CODE_FRAG_NEEDED = 4;
/** Communication administratively prohibited (RFC 1812 §5.2.7.1). */
export const ICMPV4_CODE_ADMIN_PROHIBITED = 13;
/** Time exceeded code: TTL exceeded in transit (RFC 792). */
export const ICMPV4_CODE_TTL_EXCEEDED = 0;
/** Fragment reassembly time exceeded. */
export const ICMPV4_CODE_REASSEMBLY_EXCEEDED = 1;

const NEXT_HOP_MTU = 6;

/** A view of an ICMPv4 message at `bytes[off]`; allocates nothing. */
export class Icmpv4View extends IcmpView {
  /** `avail` is the number of bytes from `off` to the end of the IP payload, i.e. the message length. */
  check(avail: number): DropReason | null {
    return avail < ICMPV4_HEADER_LEN ? DropReason.Icmpv4Truncated : null;
  }
  /** Next-hop MTU of "fragmentation needed" (bytes 6-7, RFC 1191 §4); zero from pre-1191 routers. */
  get nextHopMtu(): number {
    return rd16(this.bytes, this.off + NEXT_HOP_MTU);
  }
  set nextHopMtu(v: number) {
    wr16(this.bytes, this.off + NEXT_HOP_MTU, v);
  }

  /** True when the checksum over the `len`-byte message is right (RFC 792: the sum folds to zero). */
  verifyChecksum(len: number): boolean {
    return finish(onesSum(this.bytes, this.off, len)) === 0;
  }

  /** Computes and stores the checksum over the `len`-byte message. */
  fillChecksum(len: number): void {
    this.checksum = 0;
    this.checksum = finish(onesSum(this.bytes, this.off, len));
  }
}

/** Echo request or reply: `data` is echoed back unchanged. */
export interface Icmpv4EchoRepr {
  kind: 'echoRequest' | 'echoReply';
  ident: number;
  seq: number;
  data: Uint8Array;
}
/**
 * Destination unreachable. `data` is the quoted original datagram: its IP header and at least 8 bytes
 * of its payload (RFC 792; RFC 1812 §4.3.2.3 allows more). Its length is not enforced here: whoever
 * matches the quote to a flow checks that what it needs is there.
 */
export interface Icmpv4DestUnreachableRepr {
  kind: 'destUnreachable';
  code: number;
  /** Bytes 6-7; meaningful for `ICMPV4_CODE_FRAG_NEEDED` (RFC 1191 §4), otherwise normally zero. */
  nextHopMtu: number;
  data: Uint8Array;
}
/** Time exceeded; `data` is the quoted original datagram as for destination unreachable. */
export interface Icmpv4TimeExceededRepr {
  kind: 'timeExceeded';
  code: number;
  data: Uint8Array;
}
/** Any other message, kept whole: `rest` is bytes 4-7, `data` everything after. */
export interface Icmpv4OtherRepr {
  kind: 'other';
  type: number;
  code: number;
  rest: number;
  data: Uint8Array;
}
/** An ICMPv4 message, by `kind`; see the module comment for which messages are `'other'`. */
export type Icmpv4Repr = Icmpv4EchoRepr | Icmpv4DestUnreachableRepr | Icmpv4TimeExceededRepr | Icmpv4OtherRepr;

/**
 * Parses a checked-or-not view of an `avail`-byte message. `data` fields are subarrays of the frame.
 * The checksum is verified by the caller (`Icmpv4View.verifyChecksum`), as for UDP.
 */
export function parseIcmpv4(v: Icmpv4View, avail: number): Icmpv4Repr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  const data = v.bytes.subarray(v.payloadOffset, v.off + avail);
  const type = v.type;
  const code = v.code;
  switch (type) {
    case ICMPV4_ECHO_REQUEST:
    case ICMPV4_ECHO_REPLY:
      if (code !== 0) break;
      return { kind: type === ICMPV4_ECHO_REQUEST ? 'echoRequest' : 'echoReply', ident: v.ident, seq: v.seq, data };
    case ICMPV4_DEST_UNREACHABLE:
      return { kind: 'destUnreachable', code, nextHopMtu: v.nextHopMtu, data };
    case ICMPV4_TIME_EXCEEDED:
      return { kind: 'timeExceeded', code, data };
    default:
      break;
  }
  return { kind: 'other', type, code, rest: v.rest, data };
}

/** The whole message: 8-byte header plus `data`. */
export function icmpv4BufferLen(repr: Icmpv4Repr): number {
  return ICMPV4_HEADER_LEN + repr.data.length;
}

/**
 * Writes the whole message at `bytes[off]`: header, `repr.data` (copied unless it is already in place;
 * overlapping is fine) and the checksum over both.
 */
export function emitIcmpv4(repr: Icmpv4Repr, bytes: Uint8Array, off: number): void {
  let type: number;
  let code: number;
  let rest: number;
  switch (repr.kind) {
    case 'echoRequest':
    case 'echoReply':
      type = repr.kind === 'echoRequest' ? ICMPV4_ECHO_REQUEST : ICMPV4_ECHO_REPLY;
      code = 0;
      rest = (repr.ident & 0xffff) * 0x10000 + (repr.seq & 0xffff);
      break;
    case 'destUnreachable':
      type = ICMPV4_DEST_UNREACHABLE;
      code = repr.code;
      rest = repr.nextHopMtu & 0xffff;
      break;
    case 'timeExceeded':
      type = ICMPV4_TIME_EXCEEDED;
      code = repr.code;
      rest = 0;
      break;
    case 'other':
      type = repr.type;
      code = repr.code;
      rest = repr.rest;
      break;
  }
  const len = ICMPV4_HEADER_LEN + repr.data.length;
  emitIcmpHeader(bytes, off, type, code, rest);
  if (repr.data.length > 0) bytes.set(repr.data, off + ICMPV4_HEADER_LEN);
  setIcmpChecksum(bytes, off, finish(onesSum(bytes, off, len)));
}
