/**
 * ESP packet layout (RFC 4303 §2), without cryptography:
 *
 * ```text
 * |               Security Parameters Index (SPI)                 |
 * |                      Sequence Number                          |
 * |                    Payload Data* (variable)                   |   (an IV, if any, starts it)
 * |               |     Padding (0-255 bytes)                     |
 * |                               |  Pad Length   | Next Header   |
 * |         Integrity Check Value-ICV   (variable)                |
 * ```
 *
 * The header is read through `EspView` at the start; the trailer is found from the end of the packet and
 * the ICV length, which depends on the algorithm. Everything after the header is ciphertext on the wire:
 * the trailer accessors are for a buffer that has been decrypted in place.
 *
 * An SPI of zero is reserved and never sent (RFC 4303 §2.1); on UDP port 4500 four zero bytes in its place
 * are the non-ESP marker of an IKE message (RFC 3948 §2.2), which the caller separates before parsing.
 */
import { rd32, wr32 } from './bytes.js';
import { DropReason } from './drop.js';
import { WireView } from './view.js';

/** SPI and sequence number. */
export const ESP_HEADER_LEN = 8;
/** Pad length and next header. */
export const ESP_TRAILER_LEN = 2;
/** UDP port of ESP-in-UDP NAT traversal (RFC 3948 §2). */
export const ESP_UDP_PORT = 4500;
/** Next header 59 marks a dummy (traffic-flow confidentiality) packet the receiver discards (RFC 4303 §2.6). */
export const ESP_NEXT_HEADER_DUMMY = 59;

const SPI = 0;
const SEQ = 4;

/** A zero-allocation view of an ESP packet whose header is at `bytes[off]`. */
export class EspView extends WireView {
  /** `avail` is the number of bytes from `off` to the end of the enclosing IP (or UDP) payload. */
  check(avail: number): DropReason | null {
    return avail < ESP_HEADER_LEN ? DropReason.EspTruncated : null;
  }

  /** Security Parameters Index. */
  get spi(): number {
    return rd32(this.bytes, this.off + SPI);
  }
  set spi(v: number) {
    wr32(this.bytes, this.off + SPI, v);
  }
  /** Sequence number (the low 32 bits when extended sequence numbers are in use, RFC 4303 §2.2.1). */
  get seq(): number {
    return rd32(this.bytes, this.off + SEQ);
  }
  set seq(v: number) {
    wr32(this.bytes, this.off + SEQ, v);
  }

  /** Offset of the payload data (an IV first, for algorithms that carry one). */
  get payloadOffset(): number {
    return this.off + ESP_HEADER_LEN;
  }

  /** Offset of the pad length byte of a packet ending at `end` (absolute, exclusive) with an ICV of `icvLen`. */
  trailerOffset(end: number, icvLen: number): number {
    return end - icvLen - ESP_TRAILER_LEN;
  }

  /**
   * Checks the trailer of a packet ending at `end` (absolute, exclusive; within `bytes`) with an ICV of
   * `icvLen` bytes: the packet holds header, trailer and ICV (else EspTruncated), and the padding fits
   * between the header and the pad length byte (else EspBadTrailer). With `verifyPadding` the padding must
   * also be 1, 2, 3, … — RFC 4303 §2.4's default, which a receiver MAY check.
   */
  checkTrailer(end: number, icvLen: number, verifyPadding = false): DropReason | null {
    const t = this.trailerOffset(end, icvLen);
    if (t < this.off + ESP_HEADER_LEN) return DropReason.EspTruncated;
    const padLen = this.bytes[t]!;
    const padStart = t - padLen;
    if (padStart < this.off + ESP_HEADER_LEN) return DropReason.EspBadTrailer;
    if (verifyPadding) {
      for (let i = 0; i < padLen; i++) if (this.bytes[padStart + i] !== i + 1) return DropReason.EspBadTrailer;
    }
    return null;
  }

  /** Pad length of a packet ending at `end`; call after `checkTrailer`. */
  padLen(end: number, icvLen: number): number {
    return this.bytes[this.trailerOffset(end, icvLen)]!;
  }
  /** Next header (the protocol of the payload) of a packet ending at `end`; call after `checkTrailer`. */
  nextHeader(end: number, icvLen: number): number {
    return this.bytes[this.trailerOffset(end, icvLen) + 1]!;
  }
  /** Writes the pad length byte of a packet ending at `end`; the padding itself is the caller's. */
  setPadLen(end: number, icvLen: number, v: number): void {
    this.bytes[this.trailerOffset(end, icvLen)] = v & 0xff;
  }
  /** Writes the next header byte of a packet ending at `end`. */
  setNextHeader(end: number, icvLen: number, v: number): void {
    this.bytes[this.trailerOffset(end, icvLen) + 1] = v & 0xff;
  }
  /** Offset just past the payload data (where padding starts); call after `checkTrailer`. */
  payloadEnd(end: number, icvLen: number): number {
    const t = this.trailerOffset(end, icvLen);
    return t - this.bytes[t]!;
  }
  /** Offset of the ICV. */
  icvOffset(end: number, icvLen: number): number {
    return end - icvLen;
  }
}

/** The ESP header. */
export interface EspRepr {
  spi: number;
  seq: number;
}

/** The ESP trailer (after decryption). */
export interface EspTrailerRepr {
  padLen: number;
  nextHeader: number;
}

/** Parses the header of a checked-or-not view; `avail` as in `EspView.check`. */
export function parseEsp(v: EspView, avail: number): EspRepr | DropReason {
  const r = v.check(avail);
  if (r !== null) return r;
  return { spi: v.spi, seq: v.seq };
}

/** Parses the trailer; arguments as in `EspView.checkTrailer`. */
export function parseEspTrailer(v: EspView, end: number, icvLen: number, verifyPadding = false): EspTrailerRepr | DropReason {
  const r = v.checkTrailer(end, icvLen, verifyPadding);
  if (r !== null) return r;
  return { padLen: v.padLen(end, icvLen), nextHeader: v.nextHeader(end, icvLen) };
}

export function espBufferLen(_repr: EspRepr): number {
  return ESP_HEADER_LEN;
}

/** Writes the 8-byte header. */
export function emitEsp(repr: EspRepr, bytes: Uint8Array, off: number): void {
  wr32(bytes, off + SPI, repr.spi);
  wr32(bytes, off + SEQ, repr.seq);
}

/**
 * The padding for `payloadLen` bytes of plaintext (IV excluded) so that payload, padding and the two
 * trailer bytes fill whole cipher blocks and end on a 4-byte boundary: a multiple of max(blockSize, 4)
 * (RFC 4303 §2.4). `blockSize` is a power of two of at most 256 (1 or 0 for a stream cipher or NULL).
 */
export function espPadLen(payloadLen: number, blockSize: number): number {
  const align = Math.max(blockSize, 4);
  return (align - ((payloadLen + ESP_TRAILER_LEN) % align)) % align;
}

export function espTrailerBufferLen(repr: EspTrailerRepr): number {
  return repr.padLen + ESP_TRAILER_LEN;
}

/** Writes the padding 1, 2, 3, … (RFC 4303 §2.4), the pad length and the next header from `off`. */
export function emitEspTrailer(bytes: Uint8Array, off: number, padLen: number, nextHeader: number): void {
  for (let i = 0; i < padLen; i++) bytes[off + i] = i + 1;
  bytes[off + padLen] = padLen;
  bytes[off + padLen + 1] = nextHeader;
}
