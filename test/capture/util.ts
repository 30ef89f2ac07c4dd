/** Helpers shared by the capture tests (not a test file itself). */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaptureError, createParser, type CaptureParser, type CaptureRecord } from '../../src/capture/index.js';

/** Runs `fn` with a fresh temporary directory, removed afterwards whatever happens. */
export async function withTempDir<T>(fn: (dir: string) => T | Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'seine-capture-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A sink that remembers every chunk; `bytes()` is the whole file, `sizes` the length of each chunk. */
export function memorySink(): { sink: (c: Uint8Array) => void; chunks: Uint8Array[]; bytes: () => Uint8Array } {
  const chunks: Uint8Array[] = [];
  return { sink: (c) => chunks.push(c), chunks, bytes: () => concat(chunks) };
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** `bytes` cut at the given (unsorted, possibly repeated) points. */
export function splitAt(bytes: Uint8Array, points: readonly number[]): Uint8Array[] {
  const cuts = [...new Set(points.map((p) => Math.min(Math.max(p, 0), bytes.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(bytes.slice(prev, c));
    prev = c;
  }
  return out;
}

export interface Outcome {
  records: CaptureRecord[];
  error: CaptureError | null;
}

/**
 * Feeds `chunks` to a parser (pulling records after every chunk, as a stream reader does), then ends it.
 * A CaptureError is returned with the records delivered before it; any other exception propagates, which
 * fails the test that expected only CaptureErrors.
 */
export function feed(chunks: readonly Uint8Array[], parser: CaptureParser = createParser()): Outcome {
  const records: CaptureRecord[] = [];
  try {
    for (const c of chunks) {
      parser.push(c);
      for (const r of parser.records()) records.push(r);
    }
    parser.end();
    for (const r of parser.records()) records.push(r);
    return { records, error: null };
  } catch (e) {
    if (e instanceof CaptureError) return { records, error: e };
    throw e;
  }
}

/** Hand-built pcapng blocks, independent of the writer under test. */
export function block(type: number, body: Uint8Array, le = true): Uint8Array {
  const len = 12 + body.length + ((4 - (body.length % 4)) % 4);
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, type, le);
  dv.setUint32(4, len, le);
  b.set(body, 8);
  dv.setUint32(len - 4, len, le);
  return b;
}

/** Little helper to build bodies field by field: u8/u16/u32/u64/bytes, padded where asked. */
export class Body {
  private parts: number[] = [];
  constructor(private readonly le = true) {}
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, this.le);
    return this.bytes(b);
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, this.le);
    return this.bytes(b);
  }
  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), this.le);
    return this.bytes(b);
  }
  bytes(b: Uint8Array): this {
    for (const x of b) this.parts.push(x);
    return this;
  }
  pad(): this {
    while (this.parts.length % 4 !== 0) this.parts.push(0);
    return this;
  }
  /** An option: code, length, value, padding. */
  opt(code: number, value: Uint8Array): this {
    return this.u16(code).u16(value.length).bytes(value).pad();
  }
  done(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
