/**
 * Format detection: a parser that looks at the first four bytes and hands the stream to the pcap or the
 * pcapng parser. No I/O here; `file.ts` feeds it from a file.
 */
import { ByteQueue, CaptureError, type CaptureFormat, type CaptureParser, type CaptureRecord, type InterfaceInfo } from './common.js';
import { PCAP_MAGIC_NS, PCAP_MAGIC_US, PcapParser } from './pcap.js';
import { BLOCK_SHB, PcapngParser, type SectionInfo } from './pcapng.js';

export interface CaptureParserOptions {
  /** Largest pcapng block or pcap record accepted; default 256 MiB (MAX_BLOCK_LEN). */
  maxBlockLen?: number;
}

/** Which format the first four bytes of a file announce, or null for neither. */
export function detectFormat(magic: Uint8Array): CaptureFormat | null {
  if (magic.length < 4) return null;
  const be = ((magic[0]! << 24) | (magic[1]! << 16) | (magic[2]! << 8) | magic[3]!) >>> 0;
  const le = ((magic[3]! << 24) | (magic[2]! << 16) | (magic[1]! << 8) | magic[0]!) >>> 0;
  if (be === BLOCK_SHB) return 'pcapng';
  for (const m of [PCAP_MAGIC_US, PCAP_MAGIC_NS]) if (be === m || le === m) return 'pcap';
  return null;
}

/** An incremental parser for either format, chosen from the magic number. */
export function createParser(opts: CaptureParserOptions = {}): CaptureParser & { readonly section: SectionInfo | null } {
  return new AutoParser(opts);
}

class AutoParser implements CaptureParser {
  private inner: PcapParser | PcapngParser | null = null;
  private readonly pending = new ByteQueue();
  private ended = false;
  private failed: CaptureError | null = null;

  constructor(private readonly opts: CaptureParserOptions) {}

  get format(): CaptureFormat | null {
    return this.inner?.format ?? null;
  }
  get interfaces(): readonly InterfaceInfo[] {
    return this.inner?.interfaces ?? [];
  }
  /** The current pcapng section; null for pcap or before the header. */
  get section(): SectionInfo | null {
    return this.inner instanceof PcapngParser ? this.inner.section : null;
  }

  push(chunk: Uint8Array): void {
    if (this.ended) throw new Error('push() after end()');
    if (this.inner !== null) this.inner.push(chunk);
    else this.pending.push(chunk);
  }

  end(): void {
    this.ended = true;
    this.inner?.end();
  }

  next(): CaptureRecord | null {
    if (this.failed !== null) throw this.failed;
    if (this.inner === null) {
      try {
        if (!this.choose()) return null;
      } catch (e) {
        if (e instanceof CaptureError) this.failed = e;
        throw e;
      }
    }
    return this.inner!.next();
  }

  *records(): Generator<CaptureRecord, void, undefined> {
    for (let r = this.next(); r !== null; r = this.next()) yield r;
  }

  private choose(): boolean {
    if (this.pending.length < 4) {
      if (this.ended) throw new CaptureError('Truncated', 0, `input of ${this.pending.length} bytes has no magic number`);
      return false;
    }
    const head = this.pending.peek(4);
    const format = detectFormat(head);
    if (format === null) {
      throw new CaptureError('BadMagic', 0, `0x${Array.from(head, (x) => x.toString(16).padStart(2, '0')).join('')} is neither pcap nor pcapng`);
    }
    const max = this.opts.maxBlockLen;
    this.inner =
      format === 'pcap' ? new PcapParser(max === undefined ? {} : { maxRecordLen: max }) : new PcapngParser(max === undefined ? {} : { maxBlockLen: max });
    const all = this.pending.peek(this.pending.length);
    this.pending.skip(all.length);
    this.inner.push(all);
    if (this.ended) this.inner.end();
    return true;
  }
}
