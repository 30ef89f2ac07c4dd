/**
 * GRE (RFC 2784) with the key and sequence number extensions (RFC 2890).
 *
 * ```text
 *  0                   1                   2                   3
 * |C| |K|S| Reserved0       | Ver |         Protocol Type         |
 * |      Checksum (optional)      |       Reserved1 (Optional)    |
 * |                         Key (optional)                        |
 * |                 Sequence Number (Optional)                    |
 * ```
 *
 * Reserved0 is bits 1 and 4-12 of the first word (bits 2 and 3 became K and S in RFC 2890 §2). RFC 2784
 * §2.3 splits it: a receiver MUST discard a packet with any of bits 1-5 set (RFC 1701's routing, strict
 * source route and the top recursion bit), while bits 6-12 MUST be ignored on receipt. `check` follows
 * that; `reserved0` shows all of them to a decoder, and `emitGre` writes them as zero.
 */
import { rd16, rd32, wr16, wr32 } from './bytes.js';
import { finish, onesSum } from './checksum.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

/** Protocol type of transparent Ethernet bridging: the payload is an Ethernet frame. */
export const GRE_PROTO_TEB = 0x6558;
/** The mandatory part: flags, version and protocol type. */
export const GRE_HEADER_LEN = 4;
/** The longest header: checksum, key and sequence number all present. */
export const GRE_MAX_HEADER_LEN = 16;

const FLAGS_VERSION = 0;
const PROTOCOL_TYPE = 2;
const OPTIONAL = 4;

const FLAG_C = 0x8000;
const FLAG_K = 0x2000;
const FLAG_S = 0x1000;
/** Bits 1 and 4-12. */
const RESERVED0_MASK = 0x4ff8;
/** Bits 1, 4 and 5: RFC 2784 §2.3 says discard. */
const DISCARD_MASK = 0x4c00;
const VERSION_MASK = 0x0007;

/** Length of the header the first 16 bits (flags and version) describe. */
export function greHeaderLen(flagsVersion: number): number {
  return GRE_HEADER_LEN + ((flagsVersion & FLAG_C) !== 0 ? 4 : 0) + ((flagsVersion & FLAG_K) !== 0 ? 4 : 0) + ((flagsVersion & FLAG_S) !== 0 ? 4 : 0);
}

/**
 * RFC 2784 §2.3's receive checks on a header's first 16 bits (flags and version), `avail` bytes (at least
 * `GRE_HEADER_LEN`) from the header to the end of the IP payload: `GreView.check` past the length, and
 * the tunnel's decapsulation, which has the word read already.
 */
export function greCheck(flagsVersion: number, avail: number): DropReason | null {
  // RFC 2784 §2.3.1: the version MUST be zero (1 is PPTP's enhanced GRE, RFC 2637).
  if ((flagsVersion & VERSION_MASK) !== 0) return DropReason.GreBadVersion;
  if ((flagsVersion & DISCARD_MASK) !== 0) return DropReason.GreUnsupportedFlags;
  if (greHeaderLen(flagsVersion) > avail) return DropReason.GreTruncated;
  return null;
}

/** A zero-allocation view of a GRE header at `bytes[off]`. */
export class GreView extends WireView {
  /** `avail` is the number of bytes from `off` to the end of the enclosing IP payload. */
  check(avail: number): DropReason | null {
    return avail < GRE_HEADER_LEN ? DropReason.GreTruncated : greCheck(this.flagsVersion, avail);
  }

  /** The whole first 16 bits: flags, reserved0 and version. */
  get flagsVersion(): number {
    return rd16(this.bytes, this.off + FLAGS_VERSION);
  }
  set flagsVersion(v: number) {
    wr16(this.bytes, this.off + FLAGS_VERSION, v);
  }
  /** C: the checksum and reserved1 fields are present. */
  get checksumPresent(): boolean {
    return (this.flagsVersion & FLAG_C) !== 0;
  }
  set checksumPresent(v: boolean) {
    this.setFlag(FLAG_C, v);
  }
  /** K: the key field is present (RFC 2890 §2). */
  get keyPresent(): boolean {
    return (this.flagsVersion & FLAG_K) !== 0;
  }
  set keyPresent(v: boolean) {
    this.setFlag(FLAG_K, v);
  }
  /** S: the sequence number field is present (RFC 2890 §2). */
  get sequencePresent(): boolean {
    return (this.flagsVersion & FLAG_S) !== 0;
  }
  set sequencePresent(v: boolean) {
    this.setFlag(FLAG_S, v);
  }
  /** Reserved0 bits (1 and 4-12) in place within the first 16 bits. */
  get reserved0(): number {
    return this.flagsVersion & RESERVED0_MASK;
  }
  set reserved0(v: number) {
    this.flagsVersion = (this.flagsVersion & ~RESERVED0_MASK) | (v & RESERVED0_MASK);
  }
  /** 3 bits; only 0 is GRE. */
  get version(): number {
    return this.flagsVersion & VERSION_MASK;
  }
  set version(v: number) {
    this.flagsVersion = (this.flagsVersion & ~VERSION_MASK) | (v & VERSION_MASK);
  }
  /** EtherType of the payload; `GRE_PROTO_TEB` for an Ethernet frame. */
  get protocolType(): number {
    return rd16(this.bytes, this.off + PROTOCOL_TYPE);
  }
  set protocolType(v: number) {
    wr16(this.bytes, this.off + PROTOCOL_TYPE, v);
  }

  /** Header length as the flags say: 4 plus 4 per optional field present. */
  get headerLen(): number {
    return greHeaderLen(this.flagsVersion);
  }

  /** The checksum, or null when absent. */
  get checksum(): number | null {
    return this.checksumPresent ? rd16(this.bytes, this.off + OPTIONAL) : null;
  }
  /** Set the C flag first: the field only exists with it. */
  set checksum(v: number) {
    wr16(this.bytes, this.present(FLAG_C, 'checksum'), v);
  }
  /** Reserved1 (sent as zero), or null when absent. */
  get reserved1(): number | null {
    return this.checksumPresent ? rd16(this.bytes, this.off + OPTIONAL + 2) : null;
  }
  /** Set the C flag first: the field only exists with it. */
  set reserved1(v: number) {
    wr16(this.bytes, this.present(FLAG_C, 'reserved1') + 2, v);
  }
  /** The 32-bit key, or null when absent. */
  get key(): number | null {
    return this.keyPresent ? rd32(this.bytes, this.keyOffset) : null;
  }
  /** Set the K flag (and C, if wanted) first: the field's place depends on them. */
  set key(v: number) {
    wr32(this.bytes, this.present(FLAG_K, 'key'), v);
  }
  /** The 32-bit sequence number, or null when absent. */
  get sequence(): number | null {
    return this.sequencePresent ? rd32(this.bytes, this.sequenceOffset) : null;
  }
  /** Set the S flag (and C, K, if wanted) first: the field's place depends on them. */
  set sequence(v: number) {
    wr32(this.bytes, this.present(FLAG_S, 'sequence'), v);
  }

  /** Offset of the payload. */
  get payloadOffset(): number {
    return this.off + this.headerLen;
  }

  /**
   * True when no checksum is present or it is right over the `len` bytes of header and payload from `off`
   * (RFC 2784 §2.5; pass `avail` when GRE runs to the end of the IP payload).
   */
  verifyChecksum(len: number): boolean {
    if (!this.checksumPresent) return true;
    return finish(onesSum(this.bytes, this.off, len)) === 0;
  }

  /** Computes and stores the checksum over the `len` bytes from `off`; the C flag must be set. */
  fillChecksum(len: number): void {
    this.checksum = 0;
    this.checksum = finish(onesSum(this.bytes, this.off, len));
  }

  private get keyOffset(): number {
    return this.off + OPTIONAL + (this.checksumPresent ? 4 : 0);
  }
  private get sequenceOffset(): number {
    return this.keyOffset + (this.keyPresent ? 4 : 0);
  }
  /** The field's offset, or a RangeError: writing an absent field would overwrite the payload. */
  private present(flag: number, name: string): number {
    if ((this.flagsVersion & flag) === 0) throw new RangeError(`gre ${name} is not present: set its flag first`);
    return flag === FLAG_C ? this.off + OPTIONAL : flag === FLAG_K ? this.keyOffset : this.sequenceOffset;
  }
  private setFlag(mask: number, v: boolean): void {
    this.flagsVersion = v ? this.flagsVersion | mask : this.flagsVersion & ~mask;
  }
}

export interface GreRepr {
  /** EtherType of the payload. */
  protocolType: number;
  /** Whether the checksum is present; `emitGre` computes it. */
  checksum: boolean;
  /** The key, or null for none. */
  key: number | null;
  /** The sequence number, or null for none. */
  sequence: number | null;
}

/** Parses a checked-or-not view; `avail` as in `GreView.check`. The checksum is verified by the caller. */
export function parseGre(v: GreView, avail: number): GreRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  return { protocolType: v.protocolType, checksum: v.checksumPresent, key: v.key, sequence: v.sequence };
}

export function greBufferLen(repr: GreRepr): number {
  return GRE_HEADER_LEN + (repr.checksum ? 4 : 0) + (repr.key !== null ? 4 : 0) + (repr.sequence !== null ? 4 : 0);
}

/**
 * Writes the header in front of `payloadLen` bytes already in place after it (serialisation goes
 * innermost first), reserved fields and version zero. With `repr.checksum` the checksum covers header and
 * payload (RFC 2784 §2.5).
 */
export function emitGre(repr: GreRepr, bytes: Uint8Array, off: number, payloadLen: number): void {
  const flags = (repr.checksum ? FLAG_C : 0) | (repr.key !== null ? FLAG_K : 0) | (repr.sequence !== null ? FLAG_S : 0);
  wr16(bytes, off + FLAGS_VERSION, flags);
  wr16(bytes, off + PROTOCOL_TYPE, repr.protocolType);
  let o = off + OPTIONAL;
  if (repr.checksum) {
    wr32(bytes, o, 0); // checksum and reserved1
    o += 4;
  }
  if (repr.key !== null) {
    wr32(bytes, o, repr.key);
    o += 4;
  }
  if (repr.sequence !== null) {
    wr32(bytes, o, repr.sequence);
    o += 4;
  }
  if (repr.checksum) wr16(bytes, off + OPTIONAL, finish(onesSum(bytes, off, o - off + payloadLen)));
}
