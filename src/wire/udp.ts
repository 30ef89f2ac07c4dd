/**
 * UDP (RFC 768). The pattern every wire module follows: field offsets, `*_HEADER_LEN`, a view with a
 * length check that returns a drop reason, getters and setters, payload accessors, then a plain `Repr`
 * with parse / bufferLen / emit. After `check` passes, no accessor can read outside the frame.
 */
import { rd16, wr16 } from './bytes.js';
import { finish, onesSum } from './checksum.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

export const UDP_HEADER_LEN = 8;
const SRC_PORT = 0;
const DST_PORT = 2;
const LENGTH = 4;
const CHECKSUM = 6;

export class UdpView extends WireView {
  /** `avail` is the number of bytes from `off` to the end of the enclosing IP payload. */
  check(avail: number): DropReason | null {
    if (avail < UDP_HEADER_LEN) return DropReason.UdpTruncated;
    const len = this.length;
    if (len < UDP_HEADER_LEN || len > avail) return DropReason.UdpBadLength;
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
  get length(): number {
    return rd16(this.bytes, this.off + LENGTH);
  }
  set length(v: number) {
    wr16(this.bytes, this.off + LENGTH, v);
  }
  get checksum(): number {
    return rd16(this.bytes, this.off + CHECKSUM);
  }
  set checksum(v: number) {
    wr16(this.bytes, this.off + CHECKSUM, v);
  }

  get payloadOffset(): number {
    return this.off + UDP_HEADER_LEN;
  }
  get payloadLen(): number {
    return this.length - UDP_HEADER_LEN;
  }

  /**
   * True when the checksum is right for the given pseudo-header sum; over IPv4 a zero checksum means
   * "not computed" and is accepted (RFC 768), over IPv6 it is not (RFC 8200 §8.1), so pass `zeroOk`.
   */
  verifyChecksum(pseudoSum: number, zeroOk: boolean): boolean {
    if (this.checksum === 0) return zeroOk;
    return finish(onesSum(this.bytes, this.off, this.length, pseudoSum)) === 0;
  }

  /** Computes and stores the checksum; a result of zero is sent as 0xffff (RFC 768). */
  fillChecksum(pseudoSum: number): void {
    this.checksum = 0;
    const c = finish(onesSum(this.bytes, this.off, this.length, pseudoSum));
    this.checksum = c === 0 ? 0xffff : c;
  }
}

export interface UdpRepr {
  srcPort: number;
  dstPort: number;
}

/** Parses a checked-or-not view; `avail` as in `UdpView.check`. Checksums are verified by the caller. */
export function parseUdp(v: UdpView, avail: number): UdpRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  return { srcPort: v.srcPort, dstPort: v.dstPort };
}

export function udpBufferLen(_repr: UdpRepr): number {
  return UDP_HEADER_LEN;
}

/**
 * Writes the header in front of `payloadLen` bytes already in place at `off + 8`. With a pseudo-header
 * sum the checksum is computed, with `null` it is zero (allowed over IPv4 only).
 */
export function emitUdp(repr: UdpRepr, bytes: Uint8Array, off: number, payloadLen: number, pseudoSum: number | null): void {
  wr16(bytes, off + SRC_PORT, repr.srcPort);
  wr16(bytes, off + DST_PORT, repr.dstPort);
  wr16(bytes, off + LENGTH, UDP_HEADER_LEN + payloadLen);
  wr16(bytes, off + CHECKSUM, 0);
  if (pseudoSum !== null) {
    const c = finish(onesSum(bytes, off, UDP_HEADER_LEN + payloadLen, pseudoSum));
    wr16(bytes, off + CHECKSUM, c === 0 ? 0xffff : c);
  }
}
