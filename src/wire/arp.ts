/**
 * ARP (RFC 826) for Ethernet and IPv4 only: hardware type 1, protocol type 0x0800, address lengths 6
 * and 4. Any other combination is `DropReason.ArpUnsupportedHardware`; this switch never resolves
 * anything else. Operation numbers other than request and reply (RARP, InARP, …) are kept as numbers so
 * they survive a round trip.
 */
import { rd16, rd32, rdMac, wr16, wr32, wrMac } from './bytes.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

/** Length of an Ethernet/IPv4 ARP packet; longer frames carry link-layer padding after it. */
export const ARP_HEADER_LEN = 28;
/** ARP operation: request (RFC 826). */
export const ARP_OP_REQUEST = 1;
/** ARP operation: reply (RFC 826). */
export const ARP_OP_REPLY = 2;
/** Hardware type Ethernet (IANA ARP parameters). */
export const ARP_HTYPE_ETHERNET = 1;
/** Protocol type IPv4 (the EtherType). */
export const ARP_PTYPE_IPV4 = 0x0800;

const HTYPE = 0;
const PTYPE = 2;
const HLEN = 4;
const PLEN = 5;
const OPER = 6;
const SHA = 8;
const SPA = 14;
const THA = 18;
const TPA = 24;
/** The fixed part that says which hardware and protocol the packet is for. */
const FIXED_LEN = 8;

/** A view of an ARP packet at `bytes[off]`; allocates nothing. */
export class ArpView extends WireView {
  /**
   * `avail` is the number of bytes from `off` to the end of the frame. Unsupported hardware is reported
   * as soon as the 8-byte fixed part is there, before the address fields (whose length depends on it).
   */
  check(avail: number): DropReason | null {
    if (avail < FIXED_LEN) return DropReason.ArpTruncated;
    if (this.htype !== ARP_HTYPE_ETHERNET || this.ptype !== ARP_PTYPE_IPV4 || this.hlen !== 6 || this.plen !== 4) {
      return DropReason.ArpUnsupportedHardware;
    }
    if (avail < ARP_HEADER_LEN) return DropReason.ArpTruncated;
    return null;
  }

  get htype(): number {
    return rd16(this.bytes, this.off + HTYPE);
  }
  set htype(v: number) {
    wr16(this.bytes, this.off + HTYPE, v);
  }
  get ptype(): number {
    return rd16(this.bytes, this.off + PTYPE);
  }
  set ptype(v: number) {
    wr16(this.bytes, this.off + PTYPE, v);
  }
  /** Hardware address length in bytes. */
  get hlen(): number {
    return this.bytes[this.off + HLEN]!;
  }
  set hlen(v: number) {
    this.bytes[this.off + HLEN] = v;
  }
  /** Protocol address length in bytes. */
  get plen(): number {
    return this.bytes[this.off + PLEN]!;
  }
  set plen(v: number) {
    this.bytes[this.off + PLEN] = v;
  }
  get operation(): number {
    return rd16(this.bytes, this.off + OPER);
  }
  set operation(v: number) {
    wr16(this.bytes, this.off + OPER, v);
  }
  get senderMac(): number {
    return rdMac(this.bytes, this.off + SHA);
  }
  set senderMac(v: number) {
    wrMac(this.bytes, this.off + SHA, v);
  }
  get senderIp(): number {
    return rd32(this.bytes, this.off + SPA);
  }
  set senderIp(v: number) {
    wr32(this.bytes, this.off + SPA, v);
  }
  get targetMac(): number {
    return rdMac(this.bytes, this.off + THA);
  }
  set targetMac(v: number) {
    wrMac(this.bytes, this.off + THA, v);
  }
  get targetIp(): number {
    return rd32(this.bytes, this.off + TPA);
  }
  set targetIp(v: number) {
    wr32(this.bytes, this.off + TPA, v);
  }
}

/** An Ethernet/IPv4 ARP packet; `operation` is any 16-bit number (see `ARP_OP_*`). */
export interface ArpRepr {
  operation: number;
  senderMac: number;
  senderIp: number;
  targetMac: number;
  targetIp: number;
}

/** Parses a checked-or-not view; `avail` as in `ArpView.check`. */
export function parseArp(v: ArpView, avail: number): ArpRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  return { operation: v.operation, senderMac: v.senderMac, senderIp: v.senderIp, targetMac: v.targetMac, targetIp: v.targetIp };
}

/** Always `ARP_HEADER_LEN`. */
export function arpBufferLen(_repr: ArpRepr): number {
  return ARP_HEADER_LEN;
}

/** Writes all 28 bytes of the packet at `bytes[off]`. */
export function emitArp(repr: ArpRepr, bytes: Uint8Array, off: number): void {
  wr16(bytes, off + HTYPE, ARP_HTYPE_ETHERNET);
  wr16(bytes, off + PTYPE, ARP_PTYPE_IPV4);
  bytes[off + HLEN] = 6;
  bytes[off + PLEN] = 4;
  wr16(bytes, off + OPER, repr.operation);
  wrMac(bytes, off + SHA, repr.senderMac);
  wr32(bytes, off + SPA, repr.senderIp);
  wrMac(bytes, off + THA, repr.targetMac);
  wr32(bytes, off + TPA, repr.targetIp);
}
