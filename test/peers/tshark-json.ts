/**
 * Reading `tshark -T json` output in the peer tests: one frame's `_source.layers` object, where a
 * protocol layer is an object of display-filter fields, subtrees hang under keys with a dot or ending in
 * `_tree`, and repeated keys merge into arrays.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { PcapWriter } from '../../src/capture/index.js';

export type TsharkLayers = Record<string, unknown>;

/** Writes `frames` to a pcap file at `path` for tshark to read, one every millisecond from 0. */
export function writePcap(path: string, frames: readonly Uint8Array[]): void {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c.slice()));
  frames.forEach((f, i) => w.writePacket(0, BigInt(i) * 1_000_000n, f));
  writeFileSync(path, Buffer.concat(chunks));
}

/** Every value of `key` within one layer object, descending into field subtrees only. */
export function values(layer: unknown, key: string, out: string[] = []): string[] {
  if (Array.isArray(layer)) {
    for (const x of layer) values(x, key, out);
    return out;
  }
  if (layer === null || typeof layer !== 'object') return out;
  for (const [k, v] of Object.entries(layer as Record<string, unknown>)) {
    if (k === key) {
      if (typeof v === 'string') out.push(v);
      else if (Array.isArray(v)) for (const x of v) if (typeof x === 'string') out.push(x);
    }
    if (k.includes('.') || k.endsWith('_tree')) values(v, key, out);
  }
  return out;
}

/** The value of `key` in one layer, which must occur exactly once. */
export function one(layer: unknown, key: string, what: string): string {
  const v = values(layer, key);
  assert.equal(v.length, 1, `${what}: ${key} = ${JSON.stringify(v)}`);
  return v[0]!;
}

/** The instances of protocol layer `name` in frame order. */
export function layersOf(layers: TsharkLayers, name: string): unknown[] {
  const v = layers[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Every key/value pair of the frame, nested protocol layers included. */
export function allPairs(o: unknown, out: Array<[string, string]> = []): Array<[string, string]> {
  if (Array.isArray(o)) {
    for (const x of o) allPairs(x, out);
    return out;
  }
  if (o === null || typeof o !== 'object') return out;
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
    if (typeof v === 'string') out.push([k, v]);
    else allPairs(v, out);
  }
  return out;
}
