/**
 * What ICMPv4 (RFC 792) and ICMPv6 (RFC 4443 §2.1) messages share: type, code, checksum and four bytes
 * of "rest of header", which echo messages split into identifier and sequence number. The two views
 * (icmpv4.ts, icmpv6.ts) add their own checks, checksum rules (ICMPv6 covers a pseudo-header) and the
 * fields their types give the rest of the header.
 */
import { rd16, rd32, wr16, wr32 } from './bytes.js';
import { WireView } from './view.js';

/** Type, code, checksum and the 4-byte rest of header, in both versions. */
export const ICMP_HEADER_LEN = 8;

const TYPE = 0;
const CODE = 1;
const CHECKSUM = 2;
const REST = 4;
const IDENT = 4;
const SEQ = 6;

export class IcmpView extends WireView {
  get type(): number {
    return this.bytes[this.off + TYPE]!;
  }
  set type(v: number) {
    this.bytes[this.off + TYPE] = v;
  }
  get code(): number {
    return this.bytes[this.off + CODE]!;
  }
  set code(v: number) {
    this.bytes[this.off + CODE] = v;
  }
  get checksum(): number {
    return rd16(this.bytes, this.off + CHECKSUM);
  }
  set checksum(v: number) {
    wr16(this.bytes, this.off + CHECKSUM, v);
  }
  /** Bytes 4-7 as one unsigned 32-bit number, whatever the type makes of them. */
  get rest(): number {
    return rd32(this.bytes, this.off + REST);
  }
  set rest(v: number) {
    wr32(this.bytes, this.off + REST, v);
  }
  /** Echo identifier (bytes 4-5). */
  get ident(): number {
    return rd16(this.bytes, this.off + IDENT);
  }
  set ident(v: number) {
    wr16(this.bytes, this.off + IDENT, v);
  }
  /** Echo sequence number (bytes 6-7). */
  get seq(): number {
    return rd16(this.bytes, this.off + SEQ);
  }
  set seq(v: number) {
    wr16(this.bytes, this.off + SEQ, v);
  }
  /** Echo data, or the quoted datagram of an error message. */
  get payloadOffset(): number {
    return this.off + ICMP_HEADER_LEN;
  }
  payloadLen(len: number): number {
    return len - ICMP_HEADER_LEN;
  }
}

/** Writes the 8-byte header with a zero checksum (the caller sums the message once its body is there). */
export function emitIcmpHeader(bytes: Uint8Array, off: number, type: number, code: number, rest: number): void {
  bytes[off + TYPE] = type;
  bytes[off + CODE] = code;
  wr16(bytes, off + CHECKSUM, 0);
  wr32(bytes, off + REST, rest);
}

/** Stores the checksum whose field `emitIcmpHeader` left zero. */
export function setIcmpChecksum(bytes: Uint8Array, off: number, sum: number): void {
  wr16(bytes, off + CHECKSUM, sum);
}
