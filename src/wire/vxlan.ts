/**
 * VXLAN (RFC 7348 §5): an 8-byte header in front of an Ethernet frame, carried in UDP.
 *
 * ```text
 *  0                   1                   2                   3
 * |R|R|R|R|I|R|R|R|            Reserved                           |
 * |                VXLAN Network Identifier (VNI) |   Reserved    |
 * ```
 *
 * Only the I bit has a meaning. Reserved bits are sent as zero and ignored on receipt (RFC 7348 §5), so a
 * set reserved bit is not a drop; `flags`, `reserved1` and `reserved2` expose them for a decoder.
 */
import { rd24, wr24 } from './bytes.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

/** The IANA-assigned UDP destination port (RFC 7348 §5). */
export const VXLAN_UDP_PORT = 4789;
export const VXLAN_HEADER_LEN = 8;
/** The I flag: "the VNI is valid"; it MUST be set (RFC 7348 §5). */
export const VXLAN_FLAG_I = 0x08;

const FLAGS = 0;
const RESERVED1 = 1;
const VNI = 4;
const RESERVED2 = 7;

/** A zero-allocation view of a VXLAN header at `bytes[off]`. */
export class VxlanView extends WireView {
  /** `avail` is the number of bytes from `off` to the end of the enclosing UDP payload. */
  check(avail: number): DropReason | null {
    if (avail < VXLAN_HEADER_LEN) return DropReason.VxlanTruncated;
    if ((this.flags & VXLAN_FLAG_I) === 0) return DropReason.VxlanBadFlags;
    return null;
  }

  /** The whole flags byte, reserved bits included. */
  get flags(): number {
    return this.bytes[this.off + FLAGS]!;
  }
  set flags(v: number) {
    this.bytes[this.off + FLAGS] = v & 0xff;
  }
  /** The I bit. */
  get instanceFlag(): boolean {
    return (this.flags & VXLAN_FLAG_I) !== 0;
  }
  set instanceFlag(v: boolean) {
    this.flags = v ? this.flags | VXLAN_FLAG_I : this.flags & ~VXLAN_FLAG_I;
  }
  /** The 24 reserved bits after the flags byte. */
  get reserved1(): number {
    return rd24(this.bytes, this.off + RESERVED1);
  }
  set reserved1(v: number) {
    wr24(this.bytes, this.off + RESERVED1, v);
  }
  /** The 24-bit VXLAN Network Identifier. */
  get vni(): number {
    return rd24(this.bytes, this.off + VNI);
  }
  set vni(v: number) {
    wr24(this.bytes, this.off + VNI, v);
  }
  /** The reserved byte after the VNI. */
  get reserved2(): number {
    return this.bytes[this.off + RESERVED2]!;
  }
  set reserved2(v: number) {
    this.bytes[this.off + RESERVED2] = v & 0xff;
  }

  /** Offset of the inner Ethernet frame. */
  get payloadOffset(): number {
    return this.off + VXLAN_HEADER_LEN;
  }
}

export interface VxlanRepr {
  /** 24-bit VXLAN Network Identifier. */
  vni: number;
}

/** Parses a checked-or-not view; `avail` as in `VxlanView.check`. */
export function parseVxlan(v: VxlanView, avail: number): VxlanRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  return { vni: v.vni };
}

export function vxlanBufferLen(_repr: VxlanRepr): number {
  return VXLAN_HEADER_LEN;
}

/** Writes all 8 header bytes: the I flag, zero reserved fields and the VNI. */
export function emitVxlan(repr: VxlanRepr, bytes: Uint8Array, off: number): void {
  bytes[off + FLAGS] = VXLAN_FLAG_I;
  wr24(bytes, off + RESERVED1, 0);
  wr24(bytes, off + VNI, repr.vni);
  bytes[off + RESERVED2] = 0;
}
