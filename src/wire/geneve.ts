/**
 * Geneve (RFC 8926 §3): an 8-byte base header, up to 252 bytes of TLV options, then the payload named by
 * the protocol type (0x6558 for an Ethernet frame). Carried in UDP.
 *
 * ```text
 * |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
 * |        Virtual Network Identifier (VNI)       |    Reserved   |
 * ~                    Variable-Length Options                    ~
 * ```
 * and each option (RFC 8926 §3.5):
 * ```text
 * |          Option Class         |      Type     |R|R|R| Length  |
 * ~                  Variable-Length Option Data                  ~
 * ```
 *
 * Options are walked by offset so the hot path allocates nothing:
 * ```ts
 * for (let o = v.firstOptionOffset; o < v.optionsEnd; o = v.nextOptionOffset(o)) v.optionClass(o);
 * ```
 * Option offsets are absolute indices into `bytes`, like `off`.
 */
import { rd16, rd24, wr16, wr24 } from './bytes.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

/** The IANA-assigned UDP destination port (RFC 8926 §3.3). */
export const GENEVE_UDP_PORT = 6081;
/** The fixed part of the header; options follow it. */
export const GENEVE_HEADER_LEN = 8;
/** Opt Len is 6 bits of 4-byte words: 63 × 4. */
export const GENEVE_MAX_OPTIONS_LEN = 252;
/** An option's own header: class, type, length. */
export const GENEVE_OPTION_HEADER_LEN = 4;
/** An option's Length is 5 bits of 4-byte words: 31 × 4. */
export const GENEVE_MAX_OPTION_DATA_LEN = 124;
/** The high bit of an option's type: the receiver MUST drop the packet if it does not know the option (RFC 8926 §3.5). */
export const GENEVE_OPTION_CRITICAL = 0x80;

const VER_OPTLEN = 0;
const FLAGS = 1;
const PROTOCOL_TYPE = 2;
const VNI = 4;
const RESERVED2 = 7;
const FLAG_O = 0x80;
const FLAG_C = 0x40;
const RESERVED_MASK = 0x3f;

const OPT_CLASS = 0;
const OPT_TYPE = 2;
const OPT_LEN = 3;
const OPT_LEN_MASK = 0x1f;

/**
 * The key of a known (class, type) pair in the set given to `GeneveView.hasUnknownCritical`. The type is
 * the whole byte, critical bit included: RFC 8926 §3.5 makes that bit part of the type number.
 */
export function geneveOptionKey(optionClass: number, type: number): number {
  return (optionClass & 0xffff) * 0x100 + (type & 0xff);
}

/** What `GeneveView.firstUnknownCritical` asks of the known options: a `Set` of keys will do. */
export interface OptionKeySet {
  has(key: number): boolean;
}

/**
 * The option keys a tunnel knows, searched linearly: for the handful a tunnel knows, cheaper per packet
 * than a `Set`'s hashed lookup (a builtin call V8 does not inline).
 */
export class OptionKeys implements OptionKeySet {
  private readonly keys: Int32Array;
  constructor(keys: Iterable<number>) {
    this.keys = Int32Array.from(new Set(keys));
  }
  has(key: number): boolean {
    const k = this.keys;
    for (let i = 0; i < k.length; i++) if (k[i] === key) return true;
    return false;
  }
}

/** A zero-allocation view of a Geneve header and its options at `bytes[off]`. */
export class GeneveView extends WireView {
  /**
   * `avail` is the number of bytes from `off` to the end of the enclosing UDP payload. Checks the base
   * header, that the options area fits in `avail`, and that the options tile the area exactly.
   */
  check(avail: number): DropReason | null {
    if (avail < GENEVE_HEADER_LEN) return DropReason.GeneveTruncated;
    // RFC 8926 §3.4: a packet with an unknown version MUST be dropped.
    if (this.version !== 0) return DropReason.GeneveBadVersion;
    if (this.headerLen > avail) return DropReason.GeneveTruncated;
    const end = this.optionsEnd;
    for (let o = this.firstOptionOffset; o < end; ) {
      // Unreachable while the area is a whole number of words (it always is); kept so the walk below
      // never depends on that arithmetic to stay inside the frame.
      if (o + GENEVE_OPTION_HEADER_LEN > end) return DropReason.GeneveOptionTruncated;
      const next = this.nextOptionOffset(o);
      if (next > end) return DropReason.GeneveBadOptionLen;
      o = next;
    }
    return null;
  }

  /** 2 bits; only 0 is defined. */
  get version(): number {
    return this.bytes[this.off + VER_OPTLEN]! >>> 6;
  }
  set version(v: number) {
    const b = this.bytes[this.off + VER_OPTLEN]!;
    this.bytes[this.off + VER_OPTLEN] = ((v & 3) << 6) | (b & 0x3f);
  }
  /** Opt Len: the length of the options in 4-byte words (6 bits). */
  get optLen(): number {
    return this.bytes[this.off + VER_OPTLEN]! & 0x3f;
  }
  set optLen(v: number) {
    const b = this.bytes[this.off + VER_OPTLEN]!;
    this.bytes[this.off + VER_OPTLEN] = (b & 0xc0) | (v & 0x3f);
  }
  /** O: an OAM (control) packet, not data (RFC 8926 §3.4). */
  get oam(): boolean {
    return (this.bytes[this.off + FLAGS]! & FLAG_O) !== 0;
  }
  set oam(v: boolean) {
    this.setFlag(FLAG_O, v);
  }
  /** C: the sender says some option has its critical bit set (RFC 8926 §3.4). */
  get critical(): boolean {
    return (this.bytes[this.off + FLAGS]! & FLAG_C) !== 0;
  }
  set critical(v: boolean) {
    this.setFlag(FLAG_C, v);
  }
  /** The 6 reserved bits after O and C: sent as zero, ignored on receipt. */
  get reserved(): number {
    return this.bytes[this.off + FLAGS]! & RESERVED_MASK;
  }
  set reserved(v: number) {
    const b = this.bytes[this.off + FLAGS]!;
    this.bytes[this.off + FLAGS] = (b & ~RESERVED_MASK) | (v & RESERVED_MASK);
  }
  /** EtherType of the payload; 0x6558 for an Ethernet frame. */
  get protocolType(): number {
    return rd16(this.bytes, this.off + PROTOCOL_TYPE);
  }
  set protocolType(v: number) {
    wr16(this.bytes, this.off + PROTOCOL_TYPE, v);
  }
  /** The 24-bit Virtual Network Identifier. */
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

  /** Base header plus options, in bytes. */
  get headerLen(): number {
    return GENEVE_HEADER_LEN + 4 * this.optLen;
  }
  /** Offset of the first option (equal to `optionsEnd` when there are none). */
  get firstOptionOffset(): number {
    return this.off + GENEVE_HEADER_LEN;
  }
  /** Offset just past the options area. */
  get optionsEnd(): number {
    return this.off + this.headerLen;
  }
  /** Offset of the option after the one at `o`; `optionsEnd` after the last one once checked. */
  nextOptionOffset(o: number): number {
    return o + GENEVE_OPTION_HEADER_LEN + this.optionDataLen(o);
  }
  /** The option's 16-bit class (namespace). */
  optionClass(o: number): number {
    return rd16(this.bytes, o + OPT_CLASS);
  }
  /** The option's whole type byte, critical bit included. */
  optionType(o: number): number {
    return this.bytes[o + OPT_TYPE]!;
  }
  /** The option's critical bit (the high bit of its type). */
  optionCritical(o: number): boolean {
    return (this.bytes[o + OPT_TYPE]! & GENEVE_OPTION_CRITICAL) !== 0;
  }
  /** The 3 reserved bits before the option's length, for a decoder. */
  optionReserved(o: number): number {
    return this.bytes[o + OPT_LEN]! >>> 5;
  }
  /** The option's data length in bytes (its Length field × 4, excluding the option header). */
  optionDataLen(o: number): number {
    return 4 * (this.bytes[o + OPT_LEN]! & OPT_LEN_MASK);
  }
  /** Offset of the option's data. */
  optionDataOffset(o: number): number {
    return o + GENEVE_OPTION_HEADER_LEN;
  }
  /**
   * Writes the 4-byte header of an option at `o` (reserved bits zero); the caller puts the data after it.
   * `dataLen` is in bytes and must be a multiple of 4, at most 124.
   */
  setOptionHeader(o: number, optionClass: number, type: number, dataLen: number): void {
    wr16(this.bytes, o + OPT_CLASS, optionClass);
    this.bytes[o + OPT_TYPE] = type & 0xff;
    this.bytes[o + OPT_LEN] = (dataLen >>> 2) & OPT_LEN_MASK;
  }

  /**
   * Offset of the first option that has its critical bit set and whose `geneveOptionKey(class, type)` is
   * not in `known`, or -1. Every option is walked whatever the C bit says: a receiver that trusts a clear C
   * bit may skip them (RFC 8926 §3.4), but walking costs little and catches a sender that forgot to set it.
   * Call on a checked view.
   */
  firstUnknownCritical(known: OptionKeySet): number {
    const end = this.optionsEnd;
    for (let o = this.firstOptionOffset; o < end; o = this.nextOptionOffset(o)) {
      if (this.optionCritical(o) && !known.has(geneveOptionKey(this.optionClass(o), this.optionType(o)))) return o;
    }
    return -1;
  }

  /** True when some critical option is unknown: RFC 8926 §3.5 says the packet MUST then be dropped. */
  hasUnknownCritical(known: OptionKeySet): boolean {
    return this.firstUnknownCritical(known) >= 0;
  }

  /** Offset of the payload (after the options). */
  get payloadOffset(): number {
    return this.optionsEnd;
  }

  private setFlag(mask: number, v: boolean): void {
    const b = this.bytes[this.off + FLAGS]!;
    this.bytes[this.off + FLAGS] = v ? b | mask : b & ~mask;
  }
}

/** One TLV option. */
export interface GeneveOption {
  /** 16-bit option class. */
  class: number;
  /** The whole type byte; its high bit is the option's critical bit. */
  type: number;
  /** Option data: a multiple of 4 bytes, at most 124. A `subarray` of the packet when parsed. */
  data: Uint8Array;
}

export interface GeneveRepr {
  vni: number;
  /** EtherType of the payload; 0x6558 for an Ethernet frame. */
  protocolType: number;
  /** The O bit. */
  oam: boolean;
  /**
   * The C bit, emitted as given. RFC 8926 §3.4 requires it set if and only if some option is critical:
   * use `geneveCriticalFlag(options)` to compute it (a repr that lies is useful to test receivers).
   */
  critical: boolean;
  options: GeneveOption[];
}

/** The C bit RFC 8926 §3.4 requires for these options: true iff one of them has its critical bit set. */
export function geneveCriticalFlag(options: readonly GeneveOption[]): boolean {
  for (const opt of options) if ((opt.type & GENEVE_OPTION_CRITICAL) !== 0) return true;
  return false;
}

/** Parses a checked-or-not view; `avail` as in `GeneveView.check`. Option data are subarrays, not copies. */
export function parseGeneve(v: GeneveView, avail: number): GeneveRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  const options: GeneveOption[] = [];
  const end = v.optionsEnd;
  for (let o = v.firstOptionOffset; o < end; o = v.nextOptionOffset(o)) {
    const d = v.optionDataOffset(o);
    options.push({ class: v.optionClass(o), type: v.optionType(o), data: v.bytes.subarray(d, d + v.optionDataLen(o)) });
  }
  return { vni: v.vni, protocolType: v.protocolType, oam: v.oam, critical: v.critical, options };
}

/** Header plus options, in bytes. Throws a RangeError for options that cannot be encoded. */
export function geneveBufferLen(repr: GeneveRepr): number {
  let len = 0;
  for (const opt of repr.options) {
    const n = opt.data.length;
    if (n % 4 !== 0 || n > GENEVE_MAX_OPTION_DATA_LEN)
      throw new RangeError(`geneve option data of ${n} bytes: must be a multiple of 4, at most ${GENEVE_MAX_OPTION_DATA_LEN}`);
    len += GENEVE_OPTION_HEADER_LEN + n;
  }
  if (len > GENEVE_MAX_OPTIONS_LEN) throw new RangeError(`geneve options of ${len} bytes: at most ${GENEVE_MAX_OPTIONS_LEN}`);
  return GENEVE_HEADER_LEN + len;
}

/**
 * Writes the header and options (`geneveBufferLen(repr)` bytes) at `off`, every reserved bit zero.
 * Throws a RangeError, before writing anything, for options that cannot be encoded.
 */
export function emitGeneve(repr: GeneveRepr, bytes: Uint8Array, off: number): void {
  const len = geneveBufferLen(repr);
  bytes[off + VER_OPTLEN] = (len - GENEVE_HEADER_LEN) >>> 2; // version 0
  bytes[off + FLAGS] = (repr.oam ? FLAG_O : 0) | (repr.critical ? FLAG_C : 0);
  wr16(bytes, off + PROTOCOL_TYPE, repr.protocolType);
  wr24(bytes, off + VNI, repr.vni);
  bytes[off + RESERVED2] = 0;
  let o = off + GENEVE_HEADER_LEN;
  for (const opt of repr.options) {
    wr16(bytes, o + OPT_CLASS, opt.class);
    bytes[o + OPT_TYPE] = opt.type & 0xff;
    bytes[o + OPT_LEN] = opt.data.length >>> 2;
    bytes.set(opt.data, o + GENEVE_OPTION_HEADER_LEN);
    o += GENEVE_OPTION_HEADER_LEN + opt.data.length;
  }
}
