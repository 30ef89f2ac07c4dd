/**
 * What pcap and pcapng share: the record and interface types every reader returns, the one error type bad
 * input raises, and (internal) the byte queue and endian loads the incremental parsers are built on.
 *
 * Timestamps are bigint nanoseconds since the Unix epoch: the simulator's clock is in nanoseconds and a
 * 64-bit count of them does not fit in a double. Nothing here reads a clock; callers pass timestamps in.
 */

/** LINKTYPE_ETHERNET: the default link type of every writer. */
export const LINKTYPE_ETHERNET = 1;
/** LINKTYPE_RAW: raw IPv4 or IPv6, no link-layer header (what a TUN device or a tunnel inner packet is). */
export const LINKTYPE_RAW = 101;
/** Default snapshot length, Wireshark's maximum for ordinary link types. */
export const DEFAULT_SNAPLEN = 262144;
/**
 * Largest pcapng block or pcap record a reader accepts (256 MiB). A length field above it is damage, not
 * a packet, and is rejected before anything is allocated or waited for.
 */
export const MAX_BLOCK_LEN = 256 * 1024 * 1024;

/** One captured packet, whatever the file format. */
export interface CaptureRecord {
  /** Index of the interface in the current section (classic pcap: always 0). */
  ifIndex: number;
  /** LINKTYPE_* of that interface. */
  linkType: number;
  /** Nanoseconds since the Unix epoch. */
  timestampNs: bigint;
  /** The captured bytes (a copy owned by the record). Shorter than `origLen` when the snaplen cut it. */
  data: Uint8Array;
  /** Length of the packet on the wire. */
  origLen: number;
}

/** One capture interface: a pcapng Interface Description Block, or the single implicit one of a pcap. */
export interface InterfaceInfo {
  /** if_name (pcapng option 2); '' when the file gives none (always for classic pcap). */
  name: string;
  linkType: number;
  /** Snapshot length; 0 in pcapng means "no limit". */
  snaplen: number;
}

export type CaptureFormat = 'pcap' | 'pcapng';

/** Why a capture could not be read. One name per failure, so callers and tests can tell them apart. */
export type CaptureErrorCode =
  /** Not a capture file, or a pcapng section whose byte-order magic is wrong. */
  | 'BadMagic'
  /** A pcap major version other than 2, or a pcapng major version other than 1. */
  | 'BadVersion'
  /** Input ended inside a header, record or block. */
  | 'Truncated'
  /** pcapng block length below the block's minimum, not a multiple of 4, absurd, or not repeated at the end. */
  | 'BadBlockLength'
  /** A packet's captured length is absurd or does not fit in its block. */
  | 'BadRecordLength'
  /** A pcapng option runs past the end of its block, or has the wrong length for its code. */
  | 'BadOption'
  /** A packet names an interface that no Interface Description Block in its section declared. */
  | 'UnknownInterface';

/** The only error a reader raises for bad input. `offset` is the byte position in the stream where it was seen. */
export class CaptureError extends Error {
  override readonly name = 'CaptureError';
  constructor(
    readonly code: CaptureErrorCode,
    readonly offset: number,
    message: string,
  ) {
    super(`${code} at byte ${offset}: ${message}`);
  }
}

/** The incremental reader interface both formats (and the auto-detecting reader) implement. */
export interface CaptureParser {
  /** The format, once the header has been seen. */
  readonly format: CaptureFormat | null;
  /** Interfaces of the current section, as of the last record returned by `next()`. */
  readonly interfaces: readonly InterfaceInfo[];
  /**
   * Appends input. Chunks may split headers, records and blocks anywhere. The parser keeps a reference to
   * the chunk until it has consumed it: don't modify it after pushing.
   */
  push(chunk: Uint8Array): void;
  /** Declares the end of input: leftover bytes that do not make a whole record become a 'Truncated' error. */
  end(): void;
  /**
   * The next complete record, or null when more input is needed (or, after `end()`, when input is exhausted).
   * Throws a CaptureError at the first damage, after every record before it was returned; then keeps throwing it.
   */
  next(): CaptureRecord | null;
  /** Every record available now: `next()` until it returns null. */
  records(): Generator<CaptureRecord, void, undefined>;
}

/** Receives a writer's output, one chunk per header, interface or packet. The chunk is not reused. */
export type CaptureSink = (chunk: Uint8Array) => void;

/** The writer interface both formats implement. */
export interface CaptureWriter {
  /** Declares an interface and returns its index for `writePacket`. */
  addInterface(name: string, linkType?: number, snaplen?: number): number;
  /** Writes one packet; `data` beyond the interface's snaplen is cut, `origLen` defaults to `data.length`. */
  writePacket(ifIndex: number, timestampNs: bigint, data: Uint8Array, origLen?: number): void;
}

// ---------------------------------------------------------------------------------------------------------
// Internal: byte queue and loads. Not exported from the package entry point.

/** @internal A FIFO of pushed chunks that hands out contiguous views, copying only across chunk borders. */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  /** Offset of the first unconsumed byte inside chunks[0]. */
  private head = 0;
  /** Unconsumed bytes. */
  length = 0;
  /** Stream offset of the first unconsumed byte. */
  offset = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** A contiguous view of the first `n` bytes; the caller has checked `n <= length`. */
  peek(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first === undefined) return new Uint8Array(0);
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    // The bytes span chunks: copy them once into one array that replaces those chunks.
    const out = new Uint8Array(n);
    let filled = 0;
    let i = 0;
    let pos = this.head;
    while (filled < n) {
      const c = this.chunks[i]!;
      const take = Math.min(c.length - pos, n - filled);
      out.set(c.subarray(pos, pos + take), filled);
      filled += take;
      pos += take;
      if (pos === c.length) {
        i++;
        pos = 0;
      }
    }
    const rest = this.chunks[i];
    const tail = rest === undefined ? [] : [pos === 0 ? rest : rest.subarray(pos)];
    this.chunks = [out, ...tail, ...this.chunks.slice(i + 1)];
    this.head = 0;
    return out;
  }

  /** Drops the first `n` bytes; the caller has checked `n <= length`. */
  skip(n: number): void {
    this.length -= n;
    this.offset += n;
    let left = n;
    let drop = 0;
    while (left > 0) {
      const avail = this.chunks[drop]!.length - this.head;
      if (left < avail) {
        this.head += left;
        break;
      }
      left -= avail;
      this.head = 0;
      drop++;
    }
    if (drop > 0) this.chunks.splice(0, drop);
  }
}

/** @internal Unsigned 16-bit load in the given byte order; bounds checked by the caller. */
export function ld16(b: Uint8Array, o: number, le: boolean): number {
  return le ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!;
}
/** @internal Unsigned 32-bit load in the given byte order; bounds checked by the caller. */
export function ld32(b: Uint8Array, o: number, le: boolean): number {
  return le
    ? (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0
    : ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
/** @internal 16-bit store in the given byte order. */
export function st16(b: Uint8Array, o: number, v: number, le: boolean): void {
  if (le) {
    b[o] = v & 0xff;
    b[o + 1] = (v >>> 8) & 0xff;
  } else {
    b[o] = (v >>> 8) & 0xff;
    b[o + 1] = v & 0xff;
  }
}
/** @internal 32-bit store in the given byte order. */
export function st32(b: Uint8Array, o: number, v: number, le: boolean): void {
  if (le) {
    b[o] = v & 0xff;
    b[o + 1] = (v >>> 8) & 0xff;
    b[o + 2] = (v >>> 16) & 0xff;
    b[o + 3] = (v >>> 24) & 0xff;
  } else {
    b[o] = (v >>> 24) & 0xff;
    b[o + 1] = (v >>> 16) & 0xff;
    b[o + 2] = (v >>> 8) & 0xff;
    b[o + 3] = v & 0xff;
  }
}

/** @internal Checks the arguments every writer's `writePacket` shares; returns the captured length. */
export function checkPacketArgs(timestampNs: bigint, data: Uint8Array, origLen: number, snaplen: number): number {
  if (timestampNs < 0n) throw new RangeError(`timestamp ${timestampNs} ns is before the epoch`);
  if (!Number.isInteger(origLen) || origLen < data.length || origLen > 0xffff_ffff) {
    throw new RangeError(`origLen ${origLen} must be an integer from data.length (${data.length}) to 2^32-1`);
  }
  const capLen = snaplen === 0 ? data.length : Math.min(data.length, snaplen);
  if (capLen > MAX_BLOCK_LEN - 64) throw new RangeError(`packet of ${capLen} bytes is too large to capture`);
  return capLen;
}

/** @internal Checks a link type and snaplen given to a writer. */
export function checkInterfaceArgs(linkType: number, snaplen: number): void {
  if (!Number.isInteger(linkType) || linkType < 0 || linkType > 0xffff) throw new RangeError(`link type ${linkType} is not 0..65535`);
  if (!Number.isInteger(snaplen) || snaplen < 0 || snaplen > 0xffff_ffff) throw new RangeError(`snaplen ${snaplen} is not 0..2^32-1`);
}

/**
 * @internal What every incremental parser shares: the input queue, end-of-input, and a sticky error so that
 * a reader which failed keeps failing the same way. Subclasses implement `step()`, which returns a record,
 * null when it needs more input, or `CONTINUE` after consuming a block that is not a packet.
 */
export abstract class ParserBase implements CaptureParser {
  abstract readonly format: CaptureFormat | null;
  abstract readonly interfaces: readonly InterfaceInfo[];
  protected readonly q = new ByteQueue();
  protected ended = false;
  private failed: CaptureError | null = null;

  push(chunk: Uint8Array): void {
    if (this.ended) throw new Error('push() after end()');
    this.q.push(chunk);
  }

  end(): void {
    this.ended = true;
  }

  next(): CaptureRecord | null {
    if (this.failed !== null) throw this.failed;
    try {
      for (;;) {
        const r = this.step();
        if (r !== CONTINUE) return r;
      }
    } catch (e) {
      if (e instanceof CaptureError) this.failed = e;
      throw e;
    }
  }

  *records(): Generator<CaptureRecord, void, undefined> {
    for (let r = this.next(); r !== null; r = this.next()) yield r;
  }

  /**
   * True when `n` bytes are queued. False when more input may come; a 'Truncated' error when input has
   * ended with some (but too few) bytes. At a clean end (nothing queued) it returns false.
   */
  protected need(n: number, what: string): boolean {
    if (this.q.length >= n) return true;
    if (this.ended && this.q.length > 0) {
      throw new CaptureError('Truncated', this.q.offset, `${what} needs ${n} bytes, input ends after ${this.q.length}`);
    }
    return false;
  }

  protected abstract step(): CaptureRecord | null | typeof CONTINUE;
}

/** @internal Returned by `step()` after a block that carries no packet. */
export const CONTINUE: unique symbol = Symbol('continue');
