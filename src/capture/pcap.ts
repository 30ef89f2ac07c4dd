/**
 * Classic pcap (libpcap format, draft-ietf-opsawg-pcap): a 24-byte file header, then records of a 16-byte
 * header and the captured bytes. One implicit interface per file. The magic number says both the byte order
 * (as it reads) and the timestamp resolution: 0xa1b2c3d4 microseconds, 0xa1b23c4d nanoseconds.
 */
import {
  CaptureError,
  CONTINUE,
  checkInterfaceArgs,
  checkPacketArgs,
  DEFAULT_SNAPLEN,
  LINKTYPE_ETHERNET,
  ld16,
  ld32,
  MAX_BLOCK_LEN,
  ParserBase,
  st16,
  st32,
  type CaptureRecord,
  type CaptureSink,
  type CaptureWriter,
  type InterfaceInfo,
} from './common.js';

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAP_HEADER_LEN = 24;
const PCAP_RECORD_HEADER_LEN = 16;

// File header field offsets.
const H_MAGIC = 0;
const H_VERSION_MAJOR = 4;
const H_VERSION_MINOR = 6;
const H_THISZONE = 8;
const H_SIGFIGS = 12;
const H_SNAPLEN = 16;
const H_LINKTYPE = 20;
// Record header field offsets.
const R_TS_SEC = 0;
const R_TS_FRAC = 4;
const R_INCL_LEN = 8;
const R_ORIG_LEN = 12;

export interface PcapWriterOptions {
  /** LINKTYPE_* of the single interface; default Ethernet (1). */
  linkType?: number;
  /** Snapshot length written in the header and applied to packets; default 262144. */
  snaplen?: number;
  /** Timestamp resolution: 'ns' (magic 0xa1b23c4d, the default: the simulator counts nanoseconds) or 'us'. */
  resolution?: 'ns' | 'us';
  /** Byte order of the file; default little-endian, as libpcap writes on common hosts. */
  littleEndian?: boolean;
}

/**
 * Writes a classic pcap to a sink. The file header is emitted by the constructor, each packet as one chunk.
 * Output is a function of the inputs only, so the same packets give byte-identical files.
 */
export class PcapWriter implements CaptureWriter {
  readonly linkType: number;
  readonly snaplen: number;
  readonly resolution: 'ns' | 'us';
  private readonly le: boolean;
  private declared = false;

  constructor(
    private readonly sink: CaptureSink,
    opts: PcapWriterOptions = {},
  ) {
    this.linkType = opts.linkType ?? LINKTYPE_ETHERNET;
    this.snaplen = opts.snaplen ?? DEFAULT_SNAPLEN;
    this.resolution = opts.resolution ?? 'ns';
    this.le = opts.littleEndian ?? true;
    checkInterfaceArgs(this.linkType, this.snaplen);
    if (this.snaplen === 0) throw new RangeError('a pcap snaplen must be at least 1');
    const h = new Uint8Array(PCAP_HEADER_LEN);
    st32(h, H_MAGIC, this.resolution === 'ns' ? PCAP_MAGIC_NS : PCAP_MAGIC_US, this.le);
    st16(h, H_VERSION_MAJOR, 2, this.le);
    st16(h, H_VERSION_MINOR, 4, this.le);
    st32(h, H_THISZONE, 0, this.le);
    st32(h, H_SIGFIGS, 0, this.le);
    st32(h, H_SNAPLEN, this.snaplen, this.le);
    st32(h, H_LINKTYPE, this.linkType, this.le);
    this.sink(h);
  }

  /**
   * A pcap holds exactly one interface, fixed by the constructor's options. This returns its index (0) once,
   * so code written for pcapng works unchanged; a second call or a different link type or snaplen throws.
   */
  addInterface(name: string, linkType = this.linkType, snaplen = this.snaplen): number {
    void name; // classic pcap has nowhere to store it
    if (this.declared) throw new RangeError('classic pcap holds a single interface: use pcapng for more');
    if (linkType !== this.linkType || snaplen !== this.snaplen) {
      throw new RangeError(`this pcap was opened with link type ${this.linkType}, snaplen ${this.snaplen}: pass them to the constructor`);
    }
    this.declared = true;
    return 0;
  }

  writePacket(ifIndex: number, timestampNs: bigint, data: Uint8Array, origLen = data.length): void {
    if (ifIndex !== 0) throw new RangeError(`classic pcap has only interface 0, not ${ifIndex}`);
    const capLen = checkPacketArgs(timestampNs, data, origLen, this.snaplen);
    const sec = timestampNs / 1_000_000_000n;
    if (sec > 0xffff_ffffn) throw new RangeError(`timestamp ${timestampNs} ns is past what pcap's 32-bit seconds hold`);
    const ns = Number(timestampNs % 1_000_000_000n);
    const out = new Uint8Array(PCAP_RECORD_HEADER_LEN + capLen);
    st32(out, R_TS_SEC, Number(sec), this.le);
    st32(out, R_TS_FRAC, this.resolution === 'ns' ? ns : Math.floor(ns / 1000), this.le);
    st32(out, R_INCL_LEN, capLen, this.le);
    st32(out, R_ORIG_LEN, origLen, this.le);
    out.set(data.subarray(0, capLen), PCAP_RECORD_HEADER_LEN);
    this.sink(out);
  }
}

export interface PcapParserOptions {
  /** Largest captured length accepted per record; default 256 MiB. */
  maxRecordLen?: number;
}

/**
 * Incremental classic pcap reader: push chunks, pull records. Accepts both byte orders and both
 * resolutions; the link type is the low 16 bits of the header field (the upper bits carry FCS information,
 * draft-ietf-opsawg-pcap §4). thiszone is ignored, as every modern writer sets it to 0.
 */
export class PcapParser extends ParserBase {
  readonly format = 'pcap' as const;
  private iface: InterfaceInfo | null = null;
  private le = false;
  private nanos = false;
  private readonly maxRecordLen: number;

  constructor(opts: PcapParserOptions = {}) {
    super();
    this.maxRecordLen = opts.maxRecordLen ?? MAX_BLOCK_LEN;
  }

  get interfaces(): readonly InterfaceInfo[] {
    return this.iface === null ? [] : [this.iface];
  }

  /** True once the header said nanoseconds (magic 0xa1b23c4d). */
  get nanosecond(): boolean {
    return this.nanos;
  }

  protected step(): CaptureRecord | null | typeof CONTINUE {
    if (this.iface === null) return this.readHeader();
    if (!this.need(PCAP_RECORD_HEADER_LEN, 'pcap record header')) return null;
    const start = this.q.offset;
    const h = this.q.peek(PCAP_RECORD_HEADER_LEN);
    const inclLen = ld32(h, R_INCL_LEN, this.le);
    if (inclLen > this.maxRecordLen) {
      throw new CaptureError('BadRecordLength', start + R_INCL_LEN, `captured length ${inclLen} exceeds the limit of ${this.maxRecordLen}`);
    }
    const sec = ld32(h, R_TS_SEC, this.le);
    const frac = ld32(h, R_TS_FRAC, this.le);
    const origLen = ld32(h, R_ORIG_LEN, this.le);
    if (!this.need(PCAP_RECORD_HEADER_LEN + inclLen, 'pcap record')) return null;
    const rec = this.q.peek(PCAP_RECORD_HEADER_LEN + inclLen);
    const data = rec.slice(PCAP_RECORD_HEADER_LEN);
    this.q.skip(PCAP_RECORD_HEADER_LEN + inclLen);
    const timestampNs = BigInt(sec) * 1_000_000_000n + BigInt(this.nanos ? frac : frac * 1000);
    return { ifIndex: 0, linkType: this.iface.linkType, timestampNs, data, origLen };
  }

  private readHeader(): typeof CONTINUE | null {
    if (!this.need(PCAP_HEADER_LEN, 'pcap file header')) {
      if (this.ended) throw new CaptureError('Truncated', 0, 'empty input');
      return null;
    }
    const h = this.q.peek(PCAP_HEADER_LEN);
    const magic = ld32(h, H_MAGIC, false);
    switch (magic) {
      case PCAP_MAGIC_US:
        [this.le, this.nanos] = [false, false];
        break;
      case PCAP_MAGIC_NS:
        [this.le, this.nanos] = [false, true];
        break;
      case swap32(PCAP_MAGIC_US):
        [this.le, this.nanos] = [true, false];
        break;
      case swap32(PCAP_MAGIC_NS):
        [this.le, this.nanos] = [true, true];
        break;
      default:
        throw new CaptureError('BadMagic', this.q.offset + H_MAGIC, `0x${magic.toString(16).padStart(8, '0')} is not a pcap magic number`);
    }
    const major = ld16(h, H_VERSION_MAJOR, this.le);
    if (major !== 2) throw new CaptureError('BadVersion', this.q.offset + H_VERSION_MAJOR, `pcap version ${major} is not 2`);
    this.iface = { name: '', linkType: ld32(h, H_LINKTYPE, this.le) & 0xffff, snaplen: ld32(h, H_SNAPLEN, this.le) };
    this.q.skip(PCAP_HEADER_LEN);
    return CONTINUE;
  }
}

function swap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}
