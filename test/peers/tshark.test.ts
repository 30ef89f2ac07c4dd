/**
 * Wireshark's dissectors as the independent decoder: every catalogue frame is composed by seine, written
 * to a capture, and decoded by tshark. tshark must (1) find every value the frame was built with,
 * (2) agree with `seine decode --json` on every field seine prints, and (3) report checksums good and
 * nothing malformed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PcapWriter } from '../../src/capture/index.js';
import { decodeLayers, type DecodedLayer, type FieldValue } from '../../src/cli/decode.js';
import { compose } from '../../src/wire/stack.js';
import { requireTool, run } from '../helpers.js';
import { CATALOGUE } from './catalogue.js';

type TsharkLayer = Record<string, unknown>;

/** Every value of every key in a tshark layer object, in document order, descending into `*_tree`s and arrays. */
function flatten(obj: unknown, out: Map<string, string[]>, top = true): Map<string, string[]> {
  if (Array.isArray(obj)) {
    for (const x of obj) flatten(x, out, false);
    return out;
  }
  if (obj === null || typeof obj !== 'object') return out;
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    if (typeof v === 'string') out.set(k, [...(out.get(k) ?? []), v]);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out.set(k, [...(out.get(k) ?? []), ...(v as string[])]);
    // Nested protocol layers (the datagram quoted inside ICMP) have keys without a dot; they are
    // compared separately, so only field subtrees are descended into here.
    else if (k.includes('.') || k.endsWith('_tree') || !top) {
      if (k.includes('.') || k.endsWith('_tree')) flatten(v, out, false);
    }
  }
  return out;
}

const STATUS: Record<string, string> = { '0': 'bad', '1': 'good', '2': 'unverified', '3': 'not present' };

function same(ours: string | number | boolean, theirs: string, key: string): boolean {
  if (key.endsWith('.checksum.status')) return STATUS[theirs] === ours;
  if (typeof ours === 'boolean') return (theirs === '1' || theirs === 'True') === ours;
  if (typeof ours === 'number') return Number(theirs) === ours;
  return theirs.toLowerCase() === ours.toLowerCase();
}

function layerList(layers: TsharkLayer, name: string): unknown[] {
  const v = layers[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function compareLayer(frame: string, ours: DecodedLayer, theirs: unknown): void {
  const t = flatten(theirs, new Map());
  for (const [key, value] of Object.entries(ours.fields)) {
    if (key === 'data.data' || key === 'data.len') continue; // tshark may dissect further what seine leaves as data
    const tv = t.get(key);
    assert.ok(tv !== undefined, `${frame}: tshark shows no ${key} in ${ours.name} (has ${[...t.keys()].join(', ')})`);
    const ov: FieldValue = value;
    if (Array.isArray(ov)) {
      // Repeated fields: compare with tshark's last occurrences (Wireshark also names the Geneve
      // header's total options length geneve.option.length, ahead of the per-option ones).
      const tail = tv.slice(tv.length - ov.length);
      assert.equal(tail.length, ov.length, `${frame}: ${key} count`);
      ov.forEach((x, i) => assert.ok(same(x, tail[i]!, key), `${frame}: ${key}[${i}] seine=${String(x)} tshark=${tail[i]}`));
    } else {
      assert.ok(same(ov, tv[0]!, key), `${frame}: ${key} seine=${String(ov)} tshark=${tv[0]}`);
    }
  }
}

let dir = '';
let frames: { name: string; bytes: Uint8Array }[] = [];
let tshark: { _source: { layers: TsharkLayer } }[] = [];
let raw = '';

before(() => {
  requireTool('tshark', 'tshark');
  dir = mkdtempSync(join(tmpdir(), 'seine-tshark-'));
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => chunks.push(c.slice()));
  frames = CATALOGUE.map((f) => ({ name: f.name, bytes: compose(f.layers) }));
  frames.forEach((f, i) => w.writePacket(0, BigInt(i) * 1_000_000n, f.bytes));
  const path = join(dir, 'catalogue.pcap');
  writeFileSync(path, Buffer.concat(chunks));
  // Checksum validation is off by default in Wireshark; turn it on for every protocol that has one.
  raw = run('tshark', [
    '-r',
    path,
    '-T',
    'json',
    '--no-duplicate-keys',
    '-o',
    'ip.check_checksum:TRUE',
    '-o',
    'udp.check_checksum:TRUE',
    '-o',
    'tcp.check_checksum:TRUE',
    // Reassembly stays on (the default): the fragments must reassemble into the datagram.
  ]);
  tshark = JSON.parse(raw) as typeof tshark;
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

test('tshark: decodes every catalogue frame', () => {
  assert.equal(tshark.length, CATALOGUE.length);
});

test('tshark: finds every value each frame was built with', () => {
  CATALOGUE.forEach((f, i) => {
    const all = flatten(tshark[i]!._source.layers, new Map(), false);
    // flatten(top=false) walks nested protocol layers too: the quoted datagram's ip.src counts.
    const walk = (o: unknown): void => {
      if (o === null || typeof o !== 'object') return;
      for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
        if (!k.includes('.') && !k.endsWith('_tree') && typeof v === 'object') {
          flatten(v, all, false);
          walk(v);
        }
      }
    };
    walk(tshark[i]!._source.layers);
    for (const [key, values] of Object.entries(f.expect)) {
      const got = all.get(key) ?? [];
      for (const v of values)
        assert.ok(
          got.some((g) => same(v, g, key)),
          `${f.name}: tshark ${key}=${JSON.stringify(got)}, expected ${String(v)}`,
        );
    }
  });
});

test('tshark: agrees with seine decode on every field seine prints, quoted headers included', () => {
  frames.forEach((f, i) => {
    const layers = tshark[i]!._source.layers;
    const seen = new Map<string, number>();
    for (const l of decodeLayers(f.bytes)) {
      const k = seen.get(l.name) ?? 0;
      seen.set(l.name, k + 1);
      if (l.name === 'data') continue;
      const theirs = layerList(layers, l.name)[k];
      assert.ok(theirs !== undefined, `${f.name}: tshark has no ${l.name} #${k + 1} (layers: ${Object.keys(layers).join(', ')})`);
      compareLayer(f.name, l, theirs);
      for (const q of l.quoted ?? []) {
        const nested = layerList(theirs as TsharkLayer, q.name)[0];
        assert.ok(nested !== undefined, `${f.name}: tshark shows no quoted ${q.name}`);
        compareLayer(`${f.name} (quoted)`, q, nested);
      }
    }
  });
});

test('tshark: every checksum good, nothing malformed, no expert errors', () => {
  assert.ok(!raw.includes('_ws.malformed'), 'tshark reports a malformed frame');
  tshark.forEach((t, i) => {
    const all = flatten(t._source.layers, new Map(), false);
    for (const [k, vs] of all) {
      if (k.endsWith('checksum.status')) for (const v of vs) assert.notEqual(v, '0', `${CATALOGUE[i]!.name}: ${k} bad`);
      if (k === '_ws.expert.severity')
        for (const v of vs) assert.ok(Number(v) < 0x00800000, `${CATALOGUE[i]!.name}: expert error ${JSON.stringify(t._source.layers).slice(0, 300)}`);
    }
  });
});
