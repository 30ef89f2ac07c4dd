/**
 * Captures: pcap and pcapng, written and read as streams, so any port of the simulator or of a live node
 * can be opened in Wireshark. Timestamps are bigint nanoseconds passed in by the caller.
 */
export {
  CaptureError,
  DEFAULT_SNAPLEN,
  LINKTYPE_ETHERNET,
  LINKTYPE_RAW,
  MAX_BLOCK_LEN,
  type CaptureErrorCode,
  type CaptureFormat,
  type CaptureParser,
  type CaptureRecord,
  type CaptureSink,
  type CaptureWriter,
  type InterfaceInfo,
} from './common.js';
export { PCAP_MAGIC_NS, PCAP_MAGIC_US, PcapParser, PcapWriter, type PcapParserOptions, type PcapWriterOptions } from './pcap.js';
export { PcapngParser, PcapngWriter, type PcapngParserOptions, type PcapngWriterOptions, type SectionInfo } from './pcapng.js';
export { createParser, detectFormat, type CaptureParserOptions } from './reader.js';
export { CaptureFile, FileSink, readCapture, type ReadCaptureOptions } from './file.js';
