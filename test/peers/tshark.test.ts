/**
 * Wireshark's dissectors as the independent decoder: every catalogue frame is composed by seine, written
 * to a capture, and decoded by tshark. tshark must (1) find every value the frame was built with,
 * (2) agree with `seine decode --json` on every field seine prints, and (3) report checksums good and
 * nothing malformed. With reassembly off (as `seine decode` works: one frame at a time) tshark and seine
 * agree on first fragments (the transport header decoded, its checksum unverified) and on what ICMP errors
 * quote (every field the quote holds), over the catalogue and a few frames made for that here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { decodeLayers, type DecodedLayer, type FieldValue } from '../../src/cli/decode.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { requireTool, run } from '../helpers.js';
import { CATALOGUE, eth, ip4, ip6, tcp, udp, zeros } from './catalogue.js';
import { writePcap } from './tshark-json.js';

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

/** A TCP segment's first bytes, quoted in ICMP errors: 8 (RFC 792) over IPv4, the whole header over IPv6 (RFC 4443). */
const tcpQuote4 = compose([ip4('10.0.1.5', '10.0.2.7', 6), tcp(40002, 443, 0x018), zeros(100)]).subarray(0, 28);
const tcpQuote6 = compose([ip6('fd00:1::5', 'fd00:2::7', 6), tcp(40003, 443, 0x018), zeros(100)]).subarray(0, 60);
/** A 1008-byte TCP segment and a 1008-byte ICMPv6 echo, whose first fragments carry their headers. */
const bigTcp4 = compose([ip4('10.0.0.1', '10.0.0.2', 6), tcp(5000, 5001, 0x018), zeros(988)]).subarray(20);
const bigEcho6 = compose([
  ip6('fd00::1', 'fd00::2', 58),
  { kind: 'icmpv6', repr: { kind: 'echoRequest', ident: 7, seq: 9, data: new Uint8Array(1000) } },
]).subarray(40);

/** Frames for the reassembly-off comparison besides the catalogue. */
const EXTRA: { name: string; layers: Layer[] }[] = [
  {
    name: 'icmp time exceeded quoting 8 bytes of tcp',
    layers: [eth(0x0800), ip4('10.0.1.1', '10.0.1.5', 1), { kind: 'icmpv4', repr: { kind: 'timeExceeded', code: 0, data: tcpQuote4 } }],
  },
  {
    name: 'icmpv6 destination unreachable quoting a whole tcp header',
    layers: [eth(0x86dd), ip6('fd00::fe', 'fd00:1::5', 58), { kind: 'icmpv6', repr: { kind: 'destUnreachable', code: 4, data: tcpQuote6 } }],
  },
  {
    name: 'ipv4 first fragment of tcp',
    layers: [
      eth(0x0800),
      ip4('10.0.0.1', '10.0.0.2', 6, { dontFrag: false, moreFrags: true, ident: 0xbee }),
      { kind: 'data', bytes: bigTcp4.subarray(0, 504) },
    ],
  },
  {
    name: 'ipv4 second fragment of tcp',
    layers: [
      eth(0x0800),
      ip4('10.0.0.1', '10.0.0.2', 6, { dontFrag: false, moreFrags: false, fragOffset: 504, ident: 0xbee }),
      { kind: 'data', bytes: bigTcp4.subarray(504) },
    ],
  },
  {
    name: 'ipv6 first fragment of an icmpv6 echo',
    layers: [
      eth(0x86dd),
      ip6('fd00::1', 'fd00::2', 44),
      { kind: 'ipv6frag', repr: { nextHeader: 58, fragOffset: 0, moreFrags: true, ident: 77 } },
      { kind: 'data', bytes: bigEcho6.subarray(0, 504) },
    ],
  },
  {
    name: 'ipv4 first fragment of udp, zero checksum',
    layers: [
      eth(0x0800),
      ip4('10.0.0.1', '10.0.0.2', 17, { dontFrag: false, moreFrags: true, ident: 0xbef }),
      { kind: 'data', bytes: compose([ip4('10.0.0.1', '10.0.0.2', 17), udp(6000, 6001, true), zeros(1000)]).subarray(20, 20 + 504) },
    ],
  },
];

let dir = '';
/** Catalogue and EXTRA frames, and tshark's decoding of them with reassembly off. */
let oneByOne: { name: string; bytes: Uint8Array }[] = [];
let tsharkNoReassembly: { _source: { layers: TsharkLayer } }[] = [];
let frames: { name: string; bytes: Uint8Array }[] = [];
let tshark: { _source: { layers: TsharkLayer } }[] = [];
let raw = '';

/** Checksum validation is off by default in Wireshark; turn it on for every protocol that has one. */
const CHECKSUMS = ['-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE'];

before(() => {
  requireTool('tshark', 'tshark');
  dir = mkdtempSync(join(tmpdir(), 'seine-tshark-'));
  frames = CATALOGUE.map((f) => ({ name: f.name, bytes: compose(f.layers) }));
  const path = join(dir, 'catalogue.pcap');
  writePcap(
    path,
    frames.map((f) => f.bytes),
  );
  // Reassembly stays on (the default): the fragments must reassemble into the datagram.
  raw = run('tshark', ['-r', path, '-T', 'json', '--no-duplicate-keys', ...CHECKSUMS]);
  tshark = JSON.parse(raw) as typeof tshark;
  oneByOne = [...frames, ...EXTRA.map((f) => ({ name: f.name, bytes: compose(f.layers) }))];
  const path2 = join(dir, 'one-by-one.pcap');
  writePcap(
    path2,
    oneByOne.map((f) => f.bytes),
  );
  tsharkNoReassembly = JSON.parse(
    run('tshark', ['-r', path2, '-T', 'json', '--no-duplicate-keys', ...CHECKSUMS, '-o', 'ip.defragment:FALSE', '-o', 'ipv6.defragment:FALSE']),
  ) as typeof tsharkNoReassembly;
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

test('tshark (reassembly off, as seine decode works) agrees with seine decode on every field seine prints, quoted headers included', () => {
  assert.equal(tsharkNoReassembly.length, oneByOne.length);
  oneByOne.forEach((f, i) => {
    const layers = tsharkNoReassembly[i]!._source.layers;
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

test('tshark and seine decode: a first fragment shows its transport header, a later one is data, in both', () => {
  const transports = ['udp', 'tcp', 'icmp', 'icmpv6'];
  const cases: [string, string | null][] = [
    ['ipv4 first fragment', 'udp'],
    ['ipv6 first fragment', 'udp'],
    ['ipv4 first fragment of tcp', 'tcp'],
    ['ipv6 first fragment of an icmpv6 echo', 'icmpv6'],
    ['ipv4 first fragment of udp, zero checksum', 'udp'],
    ['ipv4 last fragment', null],
    ['ipv6 last fragment', null],
    ['ipv4 second fragment of tcp', null],
  ];
  for (const [name, proto] of cases) {
    const i = oneByOne.findIndex((f) => f.name === name);
    assert.ok(i >= 0, name);
    const ours = decodeLayers(oneByOne[i]!.bytes);
    const theirs = Object.keys(tsharkNoReassembly[i]!._source.layers);
    assert.deepEqual(
      ours.map((l) => l.name).filter((n) => transports.includes(n)),
      proto === null ? [] : [proto],
      `${name}: seine`,
    );
    assert.deepEqual(
      theirs.filter((n) => transports.includes(n)),
      proto === null ? [] : [proto],
      `${name}: tshark`,
    );
    if (proto === null) assert.equal(ours.at(-1)!.name, 'data', `${name}: the fragment's bytes are data`);
    else {
      // The checksum covers the whole datagram: neither can verify it from one fragment.
      const status = ours.find((l) => l.name === proto)!.fields[`${proto}.checksum.status`];
      assert.ok(status === 'unverified' || status === 'not present', `${name}: ${String(status)}`);
    }
  }
});

test("tshark and seine decode: an ICMP error's quote gives every field it holds (UDP length and checksum, TCP sequence number and on)", () => {
  const quote = (name: string, proto: string): Record<string, FieldValue> => {
    const f = oneByOne.find((x) => x.name === name)!;
    const q = decodeLayers(f.bytes).find((l) => l.quoted !== undefined)!.quoted!;
    return q.find((l) => l.name === proto)!.fields;
  };
  assert.deepEqual(Object.keys(quote('icmp fragmentation needed with quoted header', 'udp')), ['udp.srcport', 'udp.dstport', 'udp.length', 'udp.checksum']);
  assert.deepEqual(Object.keys(quote('icmpv6 packet too big with quoted header', 'udp')), ['udp.srcport', 'udp.dstport', 'udp.length', 'udp.checksum']);
  assert.deepEqual(Object.keys(quote('icmp time exceeded quoting 8 bytes of tcp', 'tcp')), ['tcp.srcport', 'tcp.dstport', 'tcp.seq']);
  const whole = quote('icmpv6 destination unreachable quoting a whole tcp header', 'tcp');
  assert.equal(whole['tcp.seq'], 0x01020304);
  assert.equal(whole['tcp.ack'], 0x0a0b0c0d);
  assert.equal(whole['tcp.window_size_value'], 64240);
  assert.equal(whole['tcp.flags'], 0x018);
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
