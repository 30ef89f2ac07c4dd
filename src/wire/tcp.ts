/**
 * TCP (RFC 9293 §3.1): the header, its flags and its options.
 *
 * TCP has no length field: the segment is the whole IP payload, so the checksum methods take that length.
 * The checksum covers the pseudo-header (RFC 9293 §3.1), whose unfolded sum the caller passes in.
 *
 * Options are walked on the view without allocating (`findOption`, `mssOptionOffset`), so a forwarding
 * stage can patch e.g. the MSS in place and fix the checksum incrementally (RFC 1624). `check` rejects an
 * option whose length is below 2 or runs past the header (`TcpBadOption`). A known option with the wrong
 * length (e.g. an MSS option of length 6) is not rejected: like Linux, it is treated as not that option,
 * and `parseTcp` keeps it as `'unknown'` so it still round-trips.
 */
import { rd16, rd32, wr16, wr32 } from './bytes.js';
import { finish, onesSum } from './checksum.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

/** The header without options. */
export const TCP_HEADER_LEN = 20;
/** The largest header: data offset 15 (RFC 9293 §3.1). */
export const TCP_MAX_HEADER_LEN = 60;

/** Control bit FIN: no more data from sender. Control bits are the low 12 bits of bytes 12-13 (RFC 9293 §3.1). */
export const TCP_FIN = 0x001;
/** Synchronize sequence numbers. */
export const TCP_SYN = 0x002;
/** Reset the connection. */
export const TCP_RST = 0x004;
/** Push function. */
export const TCP_PSH = 0x008;
/** Acknowledgment field is significant. */
export const TCP_ACK = 0x010;
/** Urgent pointer field is significant. */
export const TCP_URG = 0x020;
/** ECN-Echo (RFC 3168 §6.1). */
export const TCP_ECE = 0x040;
/** Congestion Window Reduced (RFC 3168 §6.1). */
export const TCP_CWR = 0x080;
/** Mask of the bits `flags` covers: the eight control bits plus the four bits RFC 9293 reserves. */
export const TCP_FLAGS_MASK = 0xfff;

/** Option kind End of Option List (RFC 9293 §3.2); also the padding after the last option. */
export const TCP_OPT_EOL = 0;
/** No-Operation. */
export const TCP_OPT_NOP = 1;
/** Maximum Segment Size (RFC 9293 §3.2). */
export const TCP_OPT_MSS = 2;
/** Window Scale (RFC 7323 §2). */
export const TCP_OPT_WSCALE = 3;
/** SACK-Permitted (RFC 2018 §2). */
export const TCP_OPT_SACK_PERMITTED = 4;
/** SACK (RFC 2018 §3). */
export const TCP_OPT_SACK = 5;
/** Timestamps (RFC 7323 §3). */
export const TCP_OPT_TIMESTAMPS = 8;

const SRC_PORT = 0;
const DST_PORT = 2;
const SEQ = 4;
const ACK = 8;
const DOFF_FLAGS = 12;
const WINDOW = 14;
const CHECKSUM = 16;
const URGENT = 18;

/**
 * Walks the options in `b[start, end)`, stopping at End of Option List. Returns -2 for an option whose
 * length is below 2 or runs past `end`, otherwise the offset of the kind byte of the first option of kind
 * `want`, or -1. Never reads outside `[start, end)`.
 */
function walkOptions(b: Uint8Array, start: number, end: number, want: number): number {
  for (let i = start; i < end; ) {
    const kind = b[i]!;
    if (kind === TCP_OPT_EOL) return -1;
    if (kind === TCP_OPT_NOP) {
      if (want === TCP_OPT_NOP) return i;
      i++;
      continue;
    }
    if (i + 2 > end) return -2;
    const len = b[i + 1]!;
    if (len < 2 || i + len > end) return -2;
    if (kind === want) return i;
    i += len;
  }
  return -1;
}

/** A view of a TCP segment at `bytes[off]`; allocates nothing. */
export class TcpView extends WireView {
  /** `avail` is the number of bytes from `off` to the end of the IP payload, i.e. the segment length. */
  check(avail: number): DropReason | null {
    if (avail < TCP_HEADER_LEN) return DropReason.TcpTruncated;
    const hl = this.headerLen;
    if (hl < TCP_HEADER_LEN || hl > avail) return DropReason.TcpBadDataOffset;
    if (walkOptions(this.bytes, this.off + TCP_HEADER_LEN, this.off + hl, -1) === -2) return DropReason.TcpBadOption;
    return null;
  }

  get srcPort(): number {
    return rd16(this.bytes, this.off + SRC_PORT);
  }
  set srcPort(v: number) {
    wr16(this.bytes, this.off + SRC_PORT, v);
  }
  get dstPort(): number {
    return rd16(this.bytes, this.off + DST_PORT);
  }
  set dstPort(v: number) {
    wr16(this.bytes, this.off + DST_PORT, v);
  }
  /** Sequence number, unsigned. */
  get seqNumber(): number {
    return rd32(this.bytes, this.off + SEQ);
  }
  set seqNumber(v: number) {
    wr32(this.bytes, this.off + SEQ, v);
  }
  /** Acknowledgment number, unsigned (meaningful when `TCP_ACK` is set). */
  get ackNumber(): number {
    return rd32(this.bytes, this.off + ACK);
  }
  set ackNumber(v: number) {
    wr32(this.bytes, this.off + ACK, v);
  }
  /** Data offset in 32-bit words (the top 4 bits of byte 12). */
  get dataOffset(): number {
    return this.bytes[this.off + DOFF_FLAGS]! >>> 4;
  }
  set dataOffset(v: number) {
    this.bytes[this.off + DOFF_FLAGS] = ((v & 0x0f) << 4) | (this.bytes[this.off + DOFF_FLAGS]! & 0x0f);
  }
  /** Header length in bytes (data offset × 4). */
  get headerLen(): number {
    return this.dataOffset << 2;
  }
  set headerLen(v: number) {
    this.dataOffset = v >>> 2;
  }
  /** The low 12 bits of bytes 12-13: control bits (`TCP_FIN` …) and the reserved bits. */
  get flags(): number {
    return rd16(this.bytes, this.off + DOFF_FLAGS) & TCP_FLAGS_MASK;
  }
  set flags(v: number) {
    wr16(this.bytes, this.off + DOFF_FLAGS, (this.dataOffset << 12) | (v & TCP_FLAGS_MASK));
  }
  /** Receive window as on the wire (not scaled). */
  get window(): number {
    return rd16(this.bytes, this.off + WINDOW);
  }
  set window(v: number) {
    wr16(this.bytes, this.off + WINDOW, v);
  }
  get checksum(): number {
    return rd16(this.bytes, this.off + CHECKSUM);
  }
  set checksum(v: number) {
    wr16(this.bytes, this.off + CHECKSUM, v);
  }
  get urgent(): number {
    return rd16(this.bytes, this.off + URGENT);
  }
  set urgent(v: number) {
    wr16(this.bytes, this.off + URGENT, v);
  }

  get optionsOffset(): number {
    return this.off + TCP_HEADER_LEN;
  }
  get optionsLen(): number {
    return this.headerLen - TCP_HEADER_LEN;
  }

  /** Offset of the kind byte of the first option of `kind` before End of Option List, or -1. */
  findOption(kind: number): number {
    const r = walkOptions(this.bytes, this.off + TCP_HEADER_LEN, this.off + this.headerLen, kind);
    return r < 0 ? -1 : r;
  }

  /**
   * Offset of the 16-bit value of the MSS option (RFC 9293 §3.7.1), or -1 when there is none or it does
   * not have length 4. A clamping stage overwrites it in place and updates the checksum with
   * `updateChecksum16`.
   */
  mssOptionOffset(): number {
    const o = this.findOption(TCP_OPT_MSS);
    return o >= 0 && this.bytes[o + 1] === 4 ? o + 2 : -1;
  }

  get payloadOffset(): number {
    return this.off + this.headerLen;
  }
  payloadLen(len: number): number {
    return len - this.headerLen;
  }

  /** True when the checksum over the pseudo-header and the `len`-byte segment is right. */
  verifyChecksum(pseudoSum: number, len: number): boolean {
    return finish(onesSum(this.bytes, this.off, len, pseudoSum)) === 0;
  }

  /** Computes and stores the checksum over the pseudo-header and the `len`-byte segment. */
  fillChecksum(pseudoSum: number, len: number): void {
    this.checksum = 0;
    this.checksum = finish(onesSum(this.bytes, this.off, len, pseudoSum));
  }
}

/**
 * One TCP option. `'unknown'` holds any other kind, and a known kind whose length is wrong for it;
 * `data` is the bytes after kind and length. End of Option List is not an option here: parse stops at
 * it and emit pads with it.
 */
export type TcpOption =
  | { kind: 'mss'; value: number }
  | { kind: 'wscale'; shift: number }
  | { kind: 'sackPermitted' }
  | { kind: 'sack'; blocks: [number, number][] }
  | { kind: 'timestamps'; tsval: number; tsecr: number }
  | { kind: 'nop' }
  | { kind: 'unknown'; type: number; data: Uint8Array };

/** A TCP header; the payload is not part of it (it is already in place when `emitTcp` runs). */
export interface TcpRepr {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  /** Control and reserved bits, as `TcpView.flags`. */
  flags: number;
  window: number;
  urgent: number;
  options: TcpOption[];
}

function parseOption(b: Uint8Array, i: number, kind: number, len: number): TcpOption {
  switch (kind) {
    case TCP_OPT_MSS:
      if (len === 4) return { kind: 'mss', value: rd16(b, i + 2) };
      break;
    case TCP_OPT_WSCALE:
      if (len === 3) return { kind: 'wscale', shift: b[i + 2]! };
      break;
    case TCP_OPT_SACK_PERMITTED:
      if (len === 2) return { kind: 'sackPermitted' };
      break;
    case TCP_OPT_SACK:
      if ((len - 2) % 8 === 0) {
        const blocks: [number, number][] = [];
        for (let j = i + 2; j < i + len; j += 8) blocks.push([rd32(b, j), rd32(b, j + 4)]);
        return { kind: 'sack', blocks };
      }
      break;
    case TCP_OPT_TIMESTAMPS:
      if (len === 10) return { kind: 'timestamps', tsval: rd32(b, i + 2), tsecr: rd32(b, i + 6) };
      break;
    default:
      break;
  }
  return { kind: 'unknown', type: kind, data: b.subarray(i + 2, i + len) };
}

/**
 * Parses a checked-or-not view of an `avail`-byte segment; the payload is at `v.payloadOffset`.
 * Checksums are verified by the caller, as for UDP.
 */
export function parseTcp(v: TcpView, avail: number): TcpRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  const b = v.bytes;
  const options: TcpOption[] = [];
  // check() has validated every option up to End of Option List.
  for (let i = v.optionsOffset, end = v.off + v.headerLen; i < end; ) {
    const kind = b[i]!;
    if (kind === TCP_OPT_EOL) break;
    if (kind === TCP_OPT_NOP) {
      options.push({ kind: 'nop' });
      i++;
      continue;
    }
    const len = b[i + 1]!;
    options.push(parseOption(b, i, kind, len));
    i += len;
  }
  return {
    srcPort: v.srcPort,
    dstPort: v.dstPort,
    seq: v.seqNumber,
    ack: v.ackNumber,
    flags: v.flags,
    window: v.window,
    urgent: v.urgent,
    options,
  };
}

function optionLen(o: TcpOption): number {
  switch (o.kind) {
    case 'mss':
      return 4;
    case 'wscale':
      return 3;
    case 'sackPermitted':
      return 2;
    case 'sack':
      return 2 + 8 * o.blocks.length;
    case 'timestamps':
      return 10;
    case 'nop':
      return 1;
    case 'unknown':
      return 2 + o.data.length;
  }
}

/** Header length: 20 plus the options padded to a multiple of 4. */
export function tcpBufferLen(repr: TcpRepr): number {
  let n = 0;
  for (const o of repr.options) n += optionLen(o);
  return TCP_HEADER_LEN + ((n + 3) & ~3);
}

/**
 * Writes the header in front of `payloadLen` bytes already in place at `off + tcpBufferLen(repr)`: the
 * options in order, zero padding (End of Option List) to a 4-byte boundary, and the checksum over header
 * and payload with `pseudoSum` (built with the whole segment length). Throws a RangeError when the
 * options do not fit in 40 bytes: that repr cannot be put on the wire.
 */
export function emitTcp(repr: TcpRepr, bytes: Uint8Array, off: number, payloadLen: number, pseudoSum: number): void {
  const hl = tcpBufferLen(repr);
  if (hl > TCP_MAX_HEADER_LEN) throw new RangeError(`TCP options need ${hl - TCP_HEADER_LEN} bytes, at most 40 fit`);
  wr16(bytes, off + SRC_PORT, repr.srcPort);
  wr16(bytes, off + DST_PORT, repr.dstPort);
  wr32(bytes, off + SEQ, repr.seq);
  wr32(bytes, off + ACK, repr.ack);
  wr16(bytes, off + DOFF_FLAGS, ((hl >>> 2) << 12) | (repr.flags & TCP_FLAGS_MASK));
  wr16(bytes, off + WINDOW, repr.window);
  wr16(bytes, off + CHECKSUM, 0);
  wr16(bytes, off + URGENT, repr.urgent);
  let i = off + TCP_HEADER_LEN;
  for (const o of repr.options) {
    switch (o.kind) {
      case 'nop':
        bytes[i] = TCP_OPT_NOP;
        break;
      case 'mss':
        bytes[i] = TCP_OPT_MSS;
        wr16(bytes, i + 2, o.value);
        break;
      case 'wscale':
        bytes[i] = TCP_OPT_WSCALE;
        bytes[i + 2] = o.shift;
        break;
      case 'sackPermitted':
        bytes[i] = TCP_OPT_SACK_PERMITTED;
        break;
      case 'sack':
        bytes[i] = TCP_OPT_SACK;
        for (let j = 0; j < o.blocks.length; j++) {
          const [left, right] = o.blocks[j]!;
          wr32(bytes, i + 2 + 8 * j, left);
          wr32(bytes, i + 6 + 8 * j, right);
        }
        break;
      case 'timestamps':
        bytes[i] = TCP_OPT_TIMESTAMPS;
        wr32(bytes, i + 2, o.tsval);
        wr32(bytes, i + 6, o.tsecr);
        break;
      case 'unknown':
        bytes[i] = o.type;
        bytes.set(o.data, i + 2);
        break;
    }
    const len = optionLen(o);
    if (o.kind !== 'nop') bytes[i + 1] = len;
    i += len;
  }
  bytes.fill(TCP_OPT_EOL, i, off + hl);
  wr16(bytes, off + CHECKSUM, finish(onesSum(bytes, off, hl + payloadLen, pseudoSum)));
}
