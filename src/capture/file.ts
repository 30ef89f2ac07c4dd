/**
 * Captures on disk. Writing goes through a small bounded buffer and `fs.writeSync`, so a capture of a long
 * simulation holds at most one buffer in memory. Reading streams the file through the incremental parser.
 */
import { closeSync, createReadStream, openSync, writeSync } from 'node:fs';
import type { CaptureFormat, CaptureRecord, CaptureSink, InterfaceInfo } from './common.js';
import type { SectionInfo } from './pcapng.js';
import { createParser, type CaptureParserOptions } from './reader.js';

/**
 * A file a writer emits into: `new PcapngWriter(file.write)`. Chunks are gathered up to `bufferBytes`
 * (default 64 KiB; 0 writes each chunk through at once) and written with `fs.writeSync`.
 */
export class FileSink {
  private fd: number | null;
  private readonly buf: Uint8Array;
  private used = 0;

  constructor(path: string, bufferBytes = 65536) {
    this.fd = openSync(path, 'w');
    this.buf = new Uint8Array(bufferBytes);
  }

  /** The sink to hand a writer (bound: it can be passed around on its own). */
  readonly write: CaptureSink = (chunk) => {
    if (this.fd === null) throw new Error('FileSink is closed');
    if (this.used + chunk.length > this.buf.length) this.flush();
    if (chunk.length >= this.buf.length) this.writeAll(chunk);
    else {
      this.buf.set(chunk, this.used);
      this.used += chunk.length;
    }
  };

  /** Writes out whatever is buffered. */
  flush(): void {
    if (this.used === 0) return;
    this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  /** Flushes and closes the file; further writes throw. Closing twice is harmless. */
  close(): void {
    if (this.fd === null) return;
    try {
      this.flush();
    } finally {
      closeSync(this.fd);
      this.fd = null;
    }
  }

  private writeAll(b: Uint8Array): void {
    for (let off = 0; off < b.length; ) off += writeSync(this.fd!, b, off, b.length - off);
  }
}

export interface ReadCaptureOptions extends CaptureParserOptions {
  /** Read size of the underlying stream; default 64 KiB. */
  chunkBytes?: number;
}

/**
 * Streams the records of a pcap or pcapng file (format from the magic number). Iterate it with
 * `for await`; `interfaces`, `format` and `section` describe the record last yielded. Bad content raises a
 * CaptureError after every record before it was yielded; I/O errors (a missing file) are Node's own.
 */
export function readCapture(path: string, opts: ReadCaptureOptions = {}): CaptureFile {
  return new CaptureFile(path, opts);
}

/** A capture file being read: iterate it once with `for await`. */
export class CaptureFile implements AsyncIterable<CaptureRecord> {
  private readonly parser: ReturnType<typeof createParser>;
  private started = false;

  constructor(
    readonly path: string,
    private readonly opts: ReadCaptureOptions,
  ) {
    this.parser = createParser(opts);
  }

  get format(): CaptureFormat | null {
    return this.parser.format;
  }
  get interfaces(): readonly InterfaceInfo[] {
    return this.parser.interfaces;
  }
  get section(): SectionInfo | null {
    return this.parser.section;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<CaptureRecord, void, undefined> {
    if (this.started) throw new Error(`${this.path} is already being read: call readCapture again`);
    this.started = true;
    const stream = createReadStream(this.path, { highWaterMark: this.opts.chunkBytes ?? 65536 });
    try {
      for await (const chunk of stream) {
        this.parser.push(chunk as Buffer);
        yield* this.parser.records();
      }
      this.parser.end();
      yield* this.parser.records();
    } finally {
      stream.destroy();
    }
  }
}
