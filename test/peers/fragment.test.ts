/**
 * seine's fragments against an independent reassembler: Wireshark's. Datagrams — VXLAN over IPv4 and
 * IPv6 carrying a 9000-byte inner packet, IPv4 with options, IPv6 with an unfragmentable part of
 * Hop-by-Hop, Destination Options and Routing headers — are cut by `fragmentIpv4`/`fragmentIpv6`, written
 * to a pcap (one datagram's fragments out of order), and tshark, with IPv4 and IPv6 defragmentation on,
 * must rebuild each datagram's payload byte for byte, check every header checksum good, decode the VXLAN
 * header inside the reassembled data, and find nothing malformed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fragmentIpv4, fragmentIpv6 } from '../../src/mtu/fragment.js';
import { PacketPool, type PacketBuf } from '../../src/packet/buf.js';
import { fromHex, hex } from '../../src/wire/bytes.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/wire/ethernet.js';
import { IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { IPV6_NH_DEST_OPTS, IPV6_NH_HOP_BY_HOP, IPV6_NH_ROUTING } from '../../src/wire/ipv6.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { requireTool, rng, run } from '../helpers.js';
import { eth, ip4, ip6, udp } from './catalogue.js';
import { allPairs, writePcap } from './tshark-json.js';

const ETH = 14;

function payload(n: number, seed: number): Layer {
  const r = rng(seed);
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = r() & 0xff;
  return { kind: 'data', bytes };
}

interface Datagram {
  name: string;
  family: 4 | 6;
  frame: Uint8Array;
  mtu: number;
  /** Bytes in front of what tshark reassembles (link header + IPv4 header / IPv6 unfragmentable part). */
  head: number;
  vni?: number;
  shuffle?: boolean;
}

const ext = (headerType: number, nextHeader: number, data: string): Layer => ({ kind: 'ipv6ext', repr: { headerType, nextHeader, data: fromHex(data) } });

/** A 9000-byte inner IPv4 (or IPv6) packet in VXLAN: the outer packet of a jumbo-MTU pod on a 1500 underlay. */
function vxlan(family: 4 | 6, vni: number): Uint8Array {
  const inner: Layer[] =
    family === 4
      ? [
          eth(ETHERTYPE_IPV4, [], 0x0a0000000001, 0x0a0000000002),
          ip4('10.244.1.5', '10.244.2.7', IPPROTO_UDP, { dontFrag: false }),
          udp(40000, 5201),
          payload(9000 - 28, vni),
        ]
      : [
          eth(ETHERTYPE_IPV6, [], 0x0a0000000001, 0x0a0000000002),
          ip6('fd00:244:1::5', 'fd00:244:2::7', IPPROTO_UDP),
          udp(40000, 5201),
          payload(9000 - 48, vni),
        ];
  const outer: Layer[] =
    family === 4
      ? [eth(ETHERTYPE_IPV4), ip4('192.168.10.1', '192.168.10.2', IPPROTO_UDP, { dontFrag: false, ident: 0x3141 }), udp(51000, 4789, true)]
      : [eth(ETHERTYPE_IPV6), ip6('fd00:10::1', 'fd00:10::2', IPPROTO_UDP), udp(51000, 4789)];
  return compose([...outer, { kind: 'vxlan', repr: { vni } }, ...inner]);
}

const DATAGRAMS: Datagram[] = [
  { name: 'VXLAN over IPv4, 9000-byte inner packet, MTU 1500', family: 4, frame: vxlan(4, 5001), mtu: 1500, head: ETH + 20, vni: 5001 },
  {
    // NOP, Record Route (not copied), Stream ID (copied). A source route would move the UDP pseudo-header's destination.
    name: 'IPv4 with a copied and a not-copied option, MTU 576, out of order',
    family: 4,
    mtu: 576,
    head: ETH + 32,
    shuffle: true,
    frame: compose([
      eth(ETHERTYPE_IPV4),
      ip4('192.168.10.1', '192.168.10.2', IPPROTO_UDP, { dontFrag: false, ident: 0x2718, options: fromHex('01' + '070704c0a80001' + '88040001') }),
      udp(7000, 7001),
      payload(3000, 2),
    ]),
  },
  { name: 'VXLAN over IPv6, 9000-byte inner packet, MTU 1500', family: 6, frame: vxlan(6, 5002), mtu: 1500, head: ETH + 40, vni: 5002 },
  {
    name: 'IPv6 with Hop-by-Hop, Destination Options and Routing headers, MTU 1280',
    family: 6,
    mtu: 1280,
    head: ETH + 40 + 8 + 8 + 24,
    frame: compose([
      eth(ETHERTYPE_IPV6),
      ip6('fd00:cafe::a', 'fd00:cafe::b', IPV6_NH_HOP_BY_HOP),
      ext(IPV6_NH_HOP_BY_HOP, IPV6_NH_DEST_OPTS, '010400000000'),
      ext(IPV6_NH_DEST_OPTS, IPV6_NH_ROUTING, '010400000000'),
      // Type 0 with segments left 0: processed by nobody on the way, so Wireshark does not redirect the checksum.
      ext(IPV6_NH_ROUTING, IPPROTO_UDP, '0000' + '00000000' + '20010db8000000000000000000000001'),
      udp(7000, 7001),
      payload(5000, 4),
    ]),
  },
];

interface Cut {
  d: Datagram;
  frames: Uint8Array[];
}
const cuts: Cut[] = [];
let tsharkText = '';
let tsharkJson: Array<{ _source: { layers: Record<string, unknown> } }> = [];
let dir = '';

before(() => {
  requireTool('tshark', 'tshark');
  const src = new PacketPool({ count: 1, frameCapacity: 65535 + 14 });
  const pool = new PacketPool({ count: 64, frameCapacity: 1600 });
  const out: PacketBuf[] = [];
  DATAGRAMS.forEach((d, i) => {
    const p = src.alloc()!;
    p.load(d.frame);
    const n = d.family === 4 ? fragmentIpv4(p, p.start + ETH, d.mtu, pool, out) : fragmentIpv6(p, p.start + ETH, d.mtu, pool, out, 0x5eed0000 + i);
    assert.ok(n > 1, `${d.name}: ${n}`);
    const frames = out.map((q) => q.bytes().slice());
    for (const q of out) q.release();
    out.length = 0;
    // Out of order: last fragment first, then the rest reversed.
    cuts.push({ d, frames: d.shuffle === true ? frames.reverse() : frames });
  });
  assert.equal(pool.available, 64);
  dir = mkdtempSync(join(tmpdir(), 'seine-fragment-'));
  const path = join(dir, 'fragments.pcap');
  writePcap(
    path,
    cuts.flatMap((c) => c.frames),
  );
  const prefs = ['-o', 'ip.defragment:TRUE', '-o', 'ipv6.defragment:TRUE', '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];
  tsharkText = run('tshark', ['-r', path, '-x', ...prefs]);
  tsharkJson = JSON.parse(run('tshark', ['-r', path, '-T', 'json', '--no-duplicate-keys', ...prefs])) as typeof tsharkJson;
});

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

/** The hex dumps of tshark's "Reassembled IPv4/IPv6 (n bytes):" data sources, in frame order. */
function reassembledDumps(text: string): Array<{ family: 4 | 6; bytes: Uint8Array }> {
  const out: Array<{ family: 4 | 6; bytes: Uint8Array }> = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^Reassembled IPv(4|6) \((\d+) bytes\):$/.exec(lines[i]!);
    if (m === null) continue;
    let h = '';
    for (i++; i < lines.length && /^[0-9a-f]{4,} {2}/.test(lines[i]!); i++) {
      // Offset, two spaces, up to 16 hex pairs separated by spaces, then the ASCII column after 3 spaces.
      h += lines[i]!.replace(/^[0-9a-f]{4,} {2}/, '')
        .slice(0, 16 * 3)
        .trim()
        .replace(/ /g, '');
    }
    const bytes = fromHex(h);
    assert.equal(bytes.length, Number(m[2]), 'hex dump length');
    out.push({ family: m[1] === '4' ? 4 : 6, bytes });
  }
  return out;
}

test("tshark: reassembles every datagram from seine's fragments to the original payload, byte for byte", () => {
  const dumps = reassembledDumps(tsharkText);
  assert.equal(dumps.length, cuts.length, 'one reassembled datagram each');
  cuts.forEach((c, i) => {
    assert.equal(dumps[i]!.family, c.d.family, c.d.name);
    assert.equal(hex(dumps[i]!.bytes), hex(c.d.frame.subarray(c.d.head)), c.d.name);
  });
});

test('tshark: decodes VXLAN and the inner packet inside the reassembled data; every fragment of a datagram is listed', () => {
  const all = tsharkJson.map((f) => allPairs(f._source.layers));
  const vnis = all.flatMap((ps) => ps.filter(([k]) => k === 'vxlan.vni').map(([, v]) => Number(v)));
  assert.deepEqual(vnis, [5001, 5002]);
  const innerSrc = all.flatMap((ps) => ps.filter(([k]) => k === 'ip.src' || k === 'ipv6.src').map(([, v]) => v));
  assert.ok(innerSrc.includes('10.244.1.5') && innerSrc.includes('fd00:244:1::5'), JSON.stringify(innerSrc));
  // The frame that completes each datagram lists its fragments: as many as seine emitted.
  let frame = 0;
  for (const c of cuts) {
    frame += c.frames.length;
    const ps = all[frame - 1]!;
    const count = ps.find(([k]) => k === 'ip.fragment.count' || k === 'ipv6.fragment.count');
    assert.equal(Number(count?.[1]), c.frames.length, c.d.name);
  }
});

test('tshark: every checksum good, nothing malformed, no expert errors', () => {
  tsharkJson.forEach((f, i) => {
    const ps = allPairs(f._source.layers);
    for (const [k, v] of ps) {
      if (k.endsWith('checksum.status')) assert.notEqual(v, '0', `frame ${i + 1}: ${k} bad`);
      if (k === '_ws.expert.severity')
        assert.ok(Number(v) < 0x00800000, `frame ${i + 1}: expert error ${JSON.stringify(ps.filter(([x]) => x === '_ws.expert.message'))}`);
    }
    assert.ok(!JSON.stringify(f).includes('_ws.malformed'), `frame ${i + 1} malformed`);
    const ipStatus = ps.filter(([k]) => k === 'ip.checksum.status').map(([, v]) => v);
    for (const s of ipStatus) assert.equal(s, '1', `frame ${i + 1}: IPv4 header checksum verified good`);
  });
  assert.ok(tsharkJson.some((f) => allPairs(f._source.layers).some(([k, v]) => k === 'ip.checksum.status' && v === '1')));
});
