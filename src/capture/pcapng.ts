/**
 * pcapng (draft-ietf-opsawg-pcapng): a file is one or more sections, each a Section Header Block (SHB)
 * followed by Interface Description Blocks (IDB) and packet blocks. Every block is
 * `type(4) total_length(4) body total_length(4)`, total_length a multiple of 4 and repeated at the end;
 * the SHB's byte-order magic fixes the byte order of its whole section.
 *
 * The writer emits one section: an SHB, an IDB per `addInterface` (if_name, and if_tsresol = 9 so timestamps
 * are nanoseconds), an Enhanced Packet Block (EPB) per packet. The reader also takes Simple Packet Blocks,
 * the obsolete Packet Block, any number of sections in either byte order, and skips block types it does not
 * know, as the format requires.
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

export const BLOCK_SHB = 0x0a0d0d0a;
const BLOCK_IDB = 0x00000001;
/** The obsolete Packet Block (read only). */
const BLOCK_PB = 0x00000002;
const BLOCK_SPB = 0x00000003;
const BLOCK_EPB = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;

// Option codes (draft-ietf-opsawg-pcapng §3.5, §4.1, §4.2).
const OPT_ENDOFOPT = 0;
const SHB_HARDWARE = 2;
const SHB_OS = 3;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_TSRESOL = 9;
const IF_TSOFFSET = 14;

/** Smallest total length of each block type: 12 bytes of framing plus its fixed fields. */
const MIN_LEN = { any: 12, shb: 28, idb: 20, spb: 16, epb: 32, pb: 32 } as const;

const utf8 = new TextEncoder();
// ignoreBOM: a name that starts with U+FEFF keeps it (the default decoder would strip it).
const utf8d = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

function pad4(n: number): number {
  return n + ((4 - (n % 4)) % 4);
}

export interface PcapngWriterOptions {
  /** Byte order of the section; default little-endian, as Wireshark writes on common hosts. */
  littleEndian?: boolean;
  /** shb_userappl, the application that wrote the file; default 'seine'. '' omits it. */
  userAppl?: string;
}

/** Writes a pcapng section to a sink: the SHB from the constructor, then one chunk per interface or packet. */
export class PcapngWriter implements CaptureWriter {
  private readonly le: boolean;
  private readonly ifaces: InterfaceInfo[] = [];

  constructor(
    private readonly sink: CaptureSink,
    opts: PcapngWriterOptions = {},
  ) {
    this.le = opts.littleEndian ?? true;
    const options: Option[] = [];
    const appl = opts.userAppl ?? 'seine';
    if (appl !== '') options.push([SHB_USERAPPL, utf8.encode(appl)]);
    const fixed = new Uint8Array(16);
    st32(fixed, 0, BYTE_ORDER_MAGIC, this.le);
    st16(fixed, 4, 1, this.le); // major
    st16(fixed, 6, 0, this.le); // minor
    st32(fixed, 8, 0xffff_ffff, this.le); // section length -1: not given
    st32(fixed, 12, 0xffff_ffff, this.le);
    this.sink(this.block(BLOCK_SHB, fixed, null, options));
  }

  /** The interfaces declared so far, in index order. */
  get interfaces(): readonly InterfaceInfo[] {
    return this.ifaces;
  }

  /** Emits an IDB with if_name (UTF-8, unless empty) and if_tsresol = 9; returns the interface's index. */
  addInterface(name: string, linkType = LINKTYPE_ETHERNET, snaplen = DEFAULT_SNAPLEN): number {
    checkInterfaceArgs(linkType, snaplen);
    const options: Option[] = [];
    // Readers drop trailing NULs (some writers count a terminator in the length), so a NUL cannot round trip.
    if (name.includes('\0')) throw new RangeError('interface name contains NUL');
    const nameBytes = utf8.encode(name);
    if (nameBytes.length > 0xffff) throw new RangeError('interface name longer than 65535 bytes');
    if (nameBytes.length > 0) options.push([IF_NAME, nameBytes]);
    options.push([IF_TSRESOL, Uint8Array.of(9)]);
    const fixed = new Uint8Array(8);
    st16(fixed, 0, linkType, this.le);
    st16(fixed, 2, 0, this.le);
    st32(fixed, 4, snaplen, this.le);
    this.sink(this.block(BLOCK_IDB, fixed, null, options));
    this.ifaces.push({ name, linkType, snaplen });
    return this.ifaces.length - 1;
  }

  /** Emits an EPB with a nanosecond timestamp. */
  writePacket(ifIndex: number, timestampNs: bigint, data: Uint8Array, origLen = data.length): void {
    const iface = this.ifaces[ifIndex];
    if (iface === undefined) throw new RangeError(`interface ${ifIndex} was not added`);
    const capLen = checkPacketArgs(timestampNs, data, origLen, iface.snaplen);
    if (timestampNs > 0xffff_ffff_ffff_ffffn) throw new RangeError(`timestamp ${timestampNs} ns does not fit in 64 bits`);
    const fixed = new Uint8Array(20);
    st32(fixed, 0, ifIndex, this.le);
    st32(fixed, 4, Number(timestampNs >> 32n), this.le);
    st32(fixed, 8, Number(timestampNs & 0xffff_ffffn), this.le);
    st32(fixed, 12, capLen, this.le);
    st32(fixed, 16, origLen, this.le);
    this.sink(this.block(BLOCK_EPB, fixed, data.subarray(0, capLen), []));
  }

  /** One whole block: fixed fields, padded data, options ending in opt_endofopt, both lengths. */
  private block(type: number, fixed: Uint8Array, data: Uint8Array | null, options: Option[]): Uint8Array {
    const dataLen = data === null ? 0 : pad4(data.length);
    let optLen = 0;
    for (const [code, v] of options) {
      if (v.length > 0xffff) throw new RangeError(`option ${code} longer than 65535 bytes`);
      optLen += 4 + pad4(v.length);
    }
    if (options.length > 0) optLen += 4;
    const len = 12 + fixed.length + dataLen + optLen;
    const b = new Uint8Array(len); // zero-filled: padding is zero
    st32(b, 0, type, this.le);
    st32(b, 4, len, this.le);
    b.set(fixed, 8);
    let p = 8 + fixed.length;
    if (data !== null) b.set(data, p);
    p += dataLen;
    for (const [code, v] of options) {
      st16(b, p, code, this.le);
      st16(b, p + 2, v.length, this.le);
      b.set(v, p + 4);
      p += 4 + pad4(v.length);
    }
    if (options.length > 0) {
      st16(b, p, OPT_ENDOFOPT, this.le);
      st16(b, p + 2, 0, this.le);
    }
    st32(b, len - 4, len, this.le);
    return b;
  }
}

type Option = [code: number, value: Uint8Array];

/** What the current section's header said. */
export interface SectionInfo {
  /** 0 for the first section of the stream, then 1, 2, … */
  index: number;
  littleEndian: boolean;
  major: number;
  minor: number;
  /** shb_hardware, shb_os, shb_userappl when present. */
  hardware?: string;
  os?: string;
  userAppl?: string;
}

/** How an interface's timestamps turn into nanoseconds (if_tsresol and if_tsoffset). */
interface TsScale {
  mul: bigint;
  div: bigint;
  offsetNs: bigint;
}

export interface PcapngParserOptions {
  /** Largest block total length accepted; default 256 MiB. */
  maxBlockLen?: number;
}

/**
 * Incremental pcapng reader: push chunks, pull records. `interfaces` and `section` describe the section the
 * last returned record belongs to (each SHB starts a new interface list).
 */
export class PcapngParser extends ParserBase {
  readonly format = 'pcapng' as const;
  private readonly maxBlockLen: number;
  private sec: SectionInfo | null = null;
  private ifaces: InterfaceInfo[] = [];
  private scales: TsScale[] = [];
  private le = false;

  constructor(opts: PcapngParserOptions = {}) {
    super();
    this.maxBlockLen = opts.maxBlockLen ?? MAX_BLOCK_LEN;
  }

  get interfaces(): readonly InterfaceInfo[] {
    return this.ifaces;
  }

  /** The current section's header, null before the first SHB. */
  get section(): SectionInfo | null {
    return this.sec;
  }

  protected step(): CaptureRecord | null | typeof CONTINUE {
    const start = this.q.offset;
    if (this.sec === null && this.ended && this.q.length === 0) throw new CaptureError('Truncated', start, 'empty input');
    if (!this.need(8, 'block header')) return null;
    const head = this.q.peek(8);
    const type = ld32(head, 0, this.le);
    if (type === BLOCK_SHB) return this.readShb(start);
    if (this.sec === null) {
      throw new CaptureError('BadMagic', start, `0x${type.toString(16).padStart(8, '0')} is not a pcapng Section Header Block`);
    }
    const len = this.checkLen(ld32(head, 4, this.le), MIN_LEN.any, start);
    if (!this.need(len, 'block')) return null;
    const b = this.q.peek(len);
    if (ld32(b, len - 4, this.le) !== len) {
      throw new CaptureError('BadBlockLength', start + len - 4, `trailing length ${ld32(b, len - 4, this.le)} differs from leading ${len}`);
    }
    let r: CaptureRecord | typeof CONTINUE = CONTINUE;
    switch (type) {
      case BLOCK_IDB:
        this.readIdb(b, len, start);
        break;
      case BLOCK_EPB:
        r = this.readEpb(b, len, start, false);
        break;
      case BLOCK_PB:
        r = this.readEpb(b, len, start, true);
        break;
      case BLOCK_SPB:
        r = this.readSpb(b, len, start);
        break;
      default:
        break; // unknown or uninteresting (NRB, ISB, DSB, custom): skipped whole
    }
    this.q.skip(len);
    return r;
  }

  /** Validates a block total length before anything is allocated or waited for. */
  private checkLen(len: number, min: number, start: number): number {
    if (len < min || len % 4 !== 0 || len > this.maxBlockLen) {
      throw new CaptureError('BadBlockLength', start + 4, `block total length ${len} (minimum ${min}, multiple of 4, at most ${this.maxBlockLen})`);
    }
    return len;
  }

  private readShb(start: number): typeof CONTINUE | null {
    if (!this.need(12, 'section header')) return null;
    const head = this.q.peek(12);
    const bom = ld32(head, 8, false);
    let le: boolean;
    if (bom === BYTE_ORDER_MAGIC) le = false;
    else if (bom === 0x4d3c2b1a) le = true;
    else throw new CaptureError('BadMagic', start + 8, `byte-order magic 0x${bom.toString(16).padStart(8, '0')}`);
    const len = this.checkLen(ld32(head, 4, le), MIN_LEN.shb, start);
    if (!this.need(len, 'section header block')) return null;
    const b = this.q.peek(len);
    if (ld32(b, len - 4, le) !== len) throw new CaptureError('BadBlockLength', start + len - 4, `trailing length differs from leading ${len}`);
    const major = ld16(b, 12, le);
    const minor = ld16(b, 14, le);
    if (major !== 1) throw new CaptureError('BadVersion', start + 12, `pcapng version ${major}.${minor} is not 1.x`);
    const sec: SectionInfo = { index: this.sec === null ? 0 : this.sec.index + 1, littleEndian: le, major, minor };
    forEachOption(b, 24, len - 4, le, start, (code, o, n) => {
      const s = (): string => decodeString(b, o, n);
      if (code === SHB_HARDWARE) sec.hardware = s();
      else if (code === SHB_OS) sec.os = s();
      else if (code === SHB_USERAPPL) sec.userAppl = s();
    });
    this.le = le;
    this.sec = sec;
    this.ifaces = [];
    this.scales = [];
    this.q.skip(len);
    return CONTINUE;
  }

  private readIdb(b: Uint8Array, len: number, start: number): void {
    if (len < MIN_LEN.idb) throw new CaptureError('BadBlockLength', start + 4, `interface description block of ${len} bytes`);
    const le = this.le;
    const iface: InterfaceInfo = { name: '', linkType: ld16(b, 8, le), snaplen: ld32(b, 12, le) };
    const scale: TsScale = { mul: 1000n, div: 1n, offsetNs: 0n }; // default if_tsresol 6: microseconds
    forEachOption(b, 16, len - 4, le, start, (code, o, n) => {
      if (code === IF_NAME) iface.name = decodeString(b, o, n);
      else if (code === IF_TSRESOL) {
        if (n !== 1) throw new CaptureError('BadOption', start + o - 4, `if_tsresol of length ${n}`);
        const v = b[o]!;
        // MSB clear: 10^-v seconds; set: 2^-(v & 0x7f) seconds.
        const units = v & 0x80 ? 1n << BigInt(v & 0x7f) : 10n ** BigInt(v);
        // Exact when the unit divides a nanosecond count (10^0..10^9, 2^0..2^9); otherwise rounded down.
        if (1_000_000_000n % units === 0n) [scale.mul, scale.div] = [1_000_000_000n / units, 1n];
        else [scale.mul, scale.div] = [1_000_000_000n, units];
      } else if (code === IF_TSOFFSET) {
        if (n !== 8) throw new CaptureError('BadOption', start + o - 4, `if_tsoffset of length ${n}`);
        const hi = ld32(b, le ? o + 4 : o, le);
        const lo = ld32(b, le ? o : o + 4, le);
        scale.offsetNs = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo)) * 1_000_000_000n;
      }
    });
    this.ifaces.push(iface);
    this.scales.push(scale);
  }

  /** Enhanced Packet Block, or the obsolete Packet Block (`old`: 16-bit interface id then a drop count). */
  private readEpb(b: Uint8Array, len: number, start: number, old: boolean): CaptureRecord {
    if (len < MIN_LEN.epb) throw new CaptureError('BadBlockLength', start + 4, `packet block of ${len} bytes`);
    const le = this.le;
    const ifIndex = old ? ld16(b, 8, le) : ld32(b, 8, le);
    const iface = this.ifaces[ifIndex];
    const scale = this.scales[ifIndex];
    if (iface === undefined || scale === undefined) {
      throw new CaptureError('UnknownInterface', start + 8, `interface ${ifIndex} of ${this.ifaces.length} in this section`);
    }
    const ts = (BigInt(ld32(b, 12, le)) << 32n) | BigInt(ld32(b, 16, le));
    const capLen = ld32(b, 20, le);
    const origLen = ld32(b, 24, le);
    const body = len - 4 - 28;
    if (capLen > body) throw new CaptureError('BadRecordLength', start + 20, `captured length ${capLen} exceeds the ${body} bytes of its block`);
    forEachOption(b, 28 + pad4(capLen), len - 4, le, start, () => {});
    return { ifIndex, linkType: iface.linkType, timestampNs: toNs(ts, scale), data: b.slice(28, 28 + capLen), origLen };
  }

  /** Simple Packet Block: interface 0, no timestamp (reported as 0), captured length implied. */
  private readSpb(b: Uint8Array, len: number, start: number): CaptureRecord {
    if (len < MIN_LEN.spb) throw new CaptureError('BadBlockLength', start + 4, `simple packet block of ${len} bytes`);
    const iface = this.ifaces[0];
    if (iface === undefined) throw new CaptureError('UnknownInterface', start, 'simple packet block before any interface');
    const origLen = ld32(b, 8, this.le);
    let capLen = Math.min(origLen, len - 16);
    if (iface.snaplen !== 0) capLen = Math.min(capLen, iface.snaplen);
    return { ifIndex: 0, linkType: iface.linkType, timestampNs: 0n, data: b.slice(12, 12 + capLen), origLen };
  }
}

function toNs(ts: bigint, s: TsScale): bigint {
  return (ts * s.mul) / s.div + s.offsetNs;
}

/**
 * Walks the options in `b[from, to)`, calling `fn(code, valueOffset, valueLength)` for each until
 * opt_endofopt or the end. An option whose value would run past `to` is a 'BadOption' error.
 */
function forEachOption(b: Uint8Array, from: number, to: number, le: boolean, start: number, fn: (code: number, o: number, n: number) => void): void {
  let p = from;
  while (p + 4 <= to) {
    const code = ld16(b, p, le);
    const n = ld16(b, p + 2, le);
    if (code === OPT_ENDOFOPT) return;
    if (p + 4 + n > to) throw new CaptureError('BadOption', start + p, `option ${code} of ${n} bytes runs past its block`);
    fn(code, p + 4, n);
    p += 4 + pad4(n);
  }
  if (p < to) throw new CaptureError('BadOption', start + p, `${to - p} stray bytes after the options`);
}

/** A UTF-8 option string; some writers add a terminating NUL, which is not part of the value. */
function decodeString(b: Uint8Array, o: number, n: number): string {
  let end = o + n;
  while (end > o && b[end - 1] === 0) end--;
  return utf8d.decode(b.subarray(o, end));
}
