/**
 * The too-big messages and MSS clamping against Wireshark's dissectors: frames built by `src/mtu` are
 * written to a pcap and decoded by tshark, which must find the ICMP/ICMPv6 type, code and MTU, every
 * checksum good (the outer IP header, the ICMP message, the quoted IP header), the quoted original
 * decoded (addresses, ports, a VXLAN header inside it), and in clamped SYNs the new MSS with a good TCP
 * checksum. Nothing may be malformed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { buildFragNeeded, buildPacketTooBig } from '../../src/mtu/icmp.js';
import { clampMss } from '../../src/mtu/mss.js';
import { HEADROOM, PacketBuf, TAILROOM } from '../../src/packet/buf.js';
import { ipv4FromString, ipv6FromString, ipv6ToString } from '../../src/wire/bytes.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { requireTool, run } from '../helpers.js';
import { data, eth, ip4, ip6, tcp, udp, zeros } from './catalogue.js';
import { one, writePcap } from './tshark-json.js';

const POD_MAC = 0x02000000000a;
const GW_MAC = 0x0200000000aa;
const GW4 = '10.244.1.1';
const GW6 = 'fd00:10:244:1::1';

type Kind = 'frag' | 'ptb' | 'syn';

interface Case {
  name: string;
  kind: Kind;
  frame: Uint8Array;
  /** Values tshark must show, per field, in the top-level layers (outer first, then quoted). */
  top: Record<string, string>;
  /** Values tshark must show inside the ICMP layer (the quoted original). */
  quoted: Record<string, string>;
  /**
   * Values in the layers tshark lists after the ICMP layer: what the quoted datagram carries beyond its
   * transport header (a VXLAN header and the frame inside it) comes out at the top level, and an IP
   * layer there is the last one of the frame.
   */
  beyond?: Record<string, string>;
}

function buf(frame: Uint8Array): PacketBuf {
  const p = new PacketBuf(new Uint8Array(HEADROOM + 4096 + TAILROOM));
  assert.ok(p.load(frame));
  return p;
}

function fragNeeded(layers: Layer[], mtu: number, fromIp: string | null): Uint8Array {
  const orig = buf(compose(layers));
  const out = new PacketBuf(new Uint8Array(HEADROOM + 2048 + TAILROOM));
  const n = buildFragNeeded(orig, orig.start + 14, mtu, { mac: GW_MAC, ipv4: fromIp === null ? 0 : ipv4FromString(fromIp)! }, out);
  assert.ok(n > 0, `buildFragNeeded: ${n}`);
  return out.bytes().slice();
}

function packetTooBig(layers: Layer[], mtu: number, fromIp: string | null): Uint8Array {
  const orig = buf(compose(layers));
  const out = new PacketBuf(new Uint8Array(HEADROOM + 2048 + TAILROOM));
  const n = buildPacketTooBig(orig, orig.start + 14, mtu, { mac: GW_MAC, ipv6: fromIp === null ? null : ipv6FromString(fromIp)! }, out);
  assert.ok(n > 0, `buildPacketTooBig: ${n}`);
  return out.bytes().slice();
}

function clamped(layers: Layer[], maxMss: number, old: number): Uint8Array {
  const p = buf(compose(layers));
  assert.equal(clampMss(p, p.start + 14, maxMss), old);
  return p.bytes().slice();
}

const podEth = (type: number): Layer => eth(type, [], POD_MAC, GW_MAC);
const hbh = (next: number): Layer => ({ kind: 'ipv6ext', repr: { headerType: 0, nextHeader: next, data: Uint8Array.from([1, 4, 0, 0, 0, 0]) } });
const dstOpts = (next: number): Layer => ({ kind: 'ipv6ext', repr: { headerType: 60, nextHeader: next, data: Uint8Array.from([1, 4, 0, 0, 0, 0]) } });

const CASES: Case[] = [
  {
    name: 'frag needed: a 1428-byte UDP datagram, quote cut at 576',
    kind: 'frag',
    frame: fragNeeded([podEth(0x0800), ip4('10.244.1.10', '10.244.2.20', 17, { ident: 0x4242 }), udp(40000, 33434), zeros(1400)], 1450, GW4),
    top: {
      'icmp.type': '3',
      'icmp.code': '4',
      'icmp.mtu': '1450',
      'ip.len': '576',
      'ip.ttl': '64',
      'ip.flags.df': '0',
      'ip.dsfield.dscp': '48',
      'eth.dst': '02:00:00:00:00:0a',
      'eth.src': '02:00:00:00:00:aa',
    },
    quoted: { 'ip.src': '10.244.1.10', 'ip.dst': '10.244.2.20', 'ip.id': '0x4242', 'ip.len': '1428', 'udp.srcport': '40000', 'udp.dstport': '33434' },
  },
  {
    name: 'frag needed: a small TCP segment quoted whole, from the original destination (no gateway address)',
    kind: 'frag',
    frame: fragNeeded([podEth(0x0800), ip4('10.244.1.10', '10.244.3.30', 6), tcp(45000, 443, 0x018), data('GET / HTTP/1.1\r\n')], 1400, null),
    top: { 'icmp.type': '3', 'icmp.code': '4', 'icmp.mtu': '1400', 'ip.len': `${20 + 8 + 20 + 20 + 16}` },
    quoted: { 'ip.src': '10.244.1.10', 'ip.dst': '10.244.3.30', 'tcp.srcport': '45000', 'tcp.dstport': '443' },
  },
  {
    name: 'frag needed: a VXLAN packet a pod sends (its own overlay), with IP options',
    kind: 'frag',
    frame: fragNeeded(
      [
        podEth(0x0800),
        ip4('10.244.1.10', '192.0.2.7', 17, { options: Uint8Array.from([1, 1, 1, 0]) }),
        udp(51000, 4789, true),
        { kind: 'vxlan', repr: { vni: 5001 } },
        eth(0x0800, [], 0x0a0000000001, 0x0a0000000002),
        ip4('172.16.0.1', '172.16.0.2', 6),
        tcp(1234, 80, 0x010),
        zeros(1300),
      ],
      1400,
      GW4,
    ),
    top: { 'icmp.type': '3', 'icmp.code': '4', 'icmp.mtu': '1400', 'ip.len': '576' },
    quoted: { 'ip.src': '10.244.1.10', 'ip.dst': '192.0.2.7', 'ip.hdr_len': '24', 'udp.dstport': '4789' },
    beyond: { 'vxlan.vni': '5001', 'ip.src': '172.16.0.1', 'ip.dst': '172.16.0.2', 'tcp.dstport': '80' },
  },
  {
    name: 'packet too big: UDP behind a destination options header',
    kind: 'ptb',
    frame: packetTooBig([podEth(0x86dd), ip6('fd00:10:244:1::a', 'fd00:10:244:2::14', 60), dstOpts(17), udp(40000, 33434), zeros(1400)], 1400, GW6),
    top: {
      'icmpv6.type': '2',
      'icmpv6.code': '0',
      'icmpv6.mtu': '1400',
      'ipv6.plen': '1240',
      'ipv6.hlim': '64',
      'ipv6.src': GW6,
      'ipv6.dst': 'fd00:10:244:1::a',
    },
    quoted: { 'ipv6.src': 'fd00:10:244:1::a', 'ipv6.dst': 'fd00:10:244:2::14', 'ipv6.plen': '1416', 'ipv6.dstopts.nxt': '17', 'udp.srcport': '40000' },
  },
  {
    name: 'packet too big: first fragment of TCP behind hop-by-hop, MTU raised to 1280, from the original destination',
    kind: 'ptb',
    frame: packetTooBig(
      [
        podEth(0x86dd),
        ip6('fd00:10:244:1::a', 'fd00:10:244:2::15', 0),
        hbh(44),
        { kind: 'ipv6frag', repr: { nextHeader: 6, fragOffset: 0, moreFrags: true, ident: 0xabcdef } },
        tcp(45001, 8443, 0x018),
        zeros(1300),
      ],
      1000,
      null,
    ),
    top: { 'icmpv6.type': '2', 'icmpv6.mtu': '1280', 'ipv6.plen': '1240', 'ipv6.src': 'fd00:10:244:2::15' },
    quoted: { 'ipv6.src': 'fd00:10:244:1::a', 'ipv6.dst': 'fd00:10:244:2::15', 'ipv6.fraghdr.ident': '0x00abcdef' },
  },
  {
    name: 'clamped SYN over IPv4: MSS at an odd offset, 1460 → 1410',
    kind: 'syn',
    frame: clamped(
      [
        podEth(0x0800),
        ip4('10.244.1.10', '10.244.2.20', 6),
        tcp(45002, 80, 0x002, [
          { kind: 'nop' },
          { kind: 'mss', value: 1460 },
          { kind: 'wscale', shift: 7 },
          { kind: 'sackPermitted' },
          { kind: 'timestamps', tsval: 1, tsecr: 0 },
        ]),
      ],
      1410,
      1460,
    ),
    top: { 'tcp.options.mss_val': '1410', 'tcp.flags.syn': '1' },
    quoted: {},
  },
  {
    name: 'clamped SYN-ACK over IPv6 behind a destination options header: 1440 → 1390',
    kind: 'syn',
    frame: clamped(
      [
        podEth(0x86dd),
        ip6('fd00:10:244:2::14', 'fd00:10:244:1::a', 60),
        dstOpts(6),
        tcp(443, 45003, 0x012, [{ kind: 'mss', value: 1440 }, { kind: 'sackPermitted' }, { kind: 'nop' }, { kind: 'wscale', shift: 9 }]),
      ],
      1390,
      1440,
    ),
    top: { 'tcp.options.mss_val': '1390', 'tcp.flags.ack': '1' },
    quoted: {},
  },
];

// ---- tshark -------------------------------------------------------------------------------------------

type Layers = Record<string, unknown>;

/** The value of `key` in whichever top-level layer (not descending into nested protocol layers) holds it. */
function topValue(layers: Layers, key: string, what: string): string {
  const proto = key.slice(0, key.indexOf('.'));
  const layer = layers[proto];
  assert.ok(layer !== undefined, `${what}: no ${proto} layer for ${key}`);
  return one(Array.isArray(layer) ? layer[0] : layer, key, what);
}

/** A protocol layer nested inside `parent` (the quoted datagram inside ICMP), which tshark keys by protocol name. */
function nested(parent: unknown, proto: string): unknown {
  const p = parent as Record<string, unknown>;
  return p[proto];
}

function keysDeep(o: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(o)) {
    for (const x of o) keysDeep(x, out);
    return out;
  }
  if (o === null || typeof o !== 'object') return out;
  for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
    out.add(k);
    keysDeep(v, out);
  }
  return out;
}

const v6norm = (s: string): string => (s.includes(':') ? ipv6ToString(ipv6FromString(s)!) : s);

let decoded: { _source: { layers: Layers } }[] | null = null;
let dir = '';

function decode(): { _source: { layers: Layers } }[] {
  if (decoded !== null) return decoded;
  requireTool('tshark', 'tshark');
  dir = mkdtempSync(join(tmpdir(), 'seine-icmp-'));
  const path = join(dir, 'toobig.pcap');
  writePcap(
    path,
    CASES.map((c) => c.frame),
  );
  // ICMP and ICMPv6 checksums are always verified; IP and TCP only when asked. UDP is left off: a quoted
  // datagram is cut short, so its UDP checksum cannot verify (the quoted TCP's neither: only the SYN
  // frames' TCP status is asserted).
  decoded = JSON.parse(run('tshark', ['-r', path, '-T', 'json', '--no-duplicate-keys', '-o', 'ip.check_checksum:TRUE', '-o', 'tcp.check_checksum:TRUE'])) as {
    _source: { layers: Layers };
  }[];
  return decoded;
}

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

const GOOD = '1';

test('tshark decodes every frame, none malformed', () => {
  const t = decode();
  assert.equal(t.length, CASES.length);
  t.forEach((f, i) => {
    const keys = keysDeep(f._source.layers);
    assert.ok(!keys.has('_ws.malformed'), `${CASES[i]!.name}: malformed`);
  });
});

test('tshark: ICMP type, code, next-hop MTU, outer fields; ICMP and both IP header checksums good', () => {
  const t = decode();
  CASES.forEach((c, i) => {
    if (c.kind !== 'frag') return;
    const L = t[i]!._source.layers;
    for (const [k, v] of Object.entries(c.top)) assert.equal(topValue(L, k, c.name), v, `${c.name}: ${k}`);
    const icmp = L.icmp;
    assert.equal(one(icmp, 'icmp.checksum.status', c.name), GOOD, `${c.name}: ICMP checksum`);
    assert.equal(topValue(L, 'ip.checksum.status', c.name), GOOD, `${c.name}: outer IP checksum`);
    const inner = nested(icmp, 'ip');
    assert.ok(inner !== undefined, `${c.name}: quoted IP header decoded`);
    assert.equal(one(inner, 'ip.checksum.status', c.name), GOOD, `${c.name}: quoted IP header checksum (the quote is intact)`);
    assert.equal(topValue(L, 'ip.dst', c.name), one(inner, 'ip.src', c.name), `${c.name}: sent back to the original source`);
  });
});

test('tshark: ICMPv6 type, code, MTU, outer fields; checksum good', () => {
  const t = decode();
  CASES.forEach((c, i) => {
    if (c.kind !== 'ptb') return;
    const L = t[i]!._source.layers;
    for (const [k, v] of Object.entries(c.top)) assert.equal(v6norm(topValue(L, k, c.name)), v6norm(v), `${c.name}: ${k}`);
    const icmp = L.icmpv6;
    assert.equal(one(icmp, 'icmpv6.checksum.status', c.name), GOOD, `${c.name}: ICMPv6 checksum`);
    assert.ok(Number(topValue(L, 'ipv6.plen', c.name)) + 40 <= 1280);
    assert.equal(v6norm(topValue(L, 'ipv6.dst', c.name)), v6norm(one(nested(icmp, 'ipv6'), 'ipv6.src', c.name)));
  });
});

test('tshark: the quoted original decodes (addresses, ports, extension headers, the VXLAN header inside it)', () => {
  const t = decode();
  CASES.forEach((c, i) => {
    if (c.kind === 'syn') return;
    const icmp = t[i]!._source.layers[c.kind === 'frag' ? 'icmp' : 'icmpv6'];
    for (const [k, v] of Object.entries(c.quoted)) {
      const proto = k.startsWith('ipv6') ? 'ipv6' : k.slice(0, k.indexOf('.'));
      const layer = nested(icmp, proto);
      assert.ok(layer !== undefined, `${c.name}: no quoted ${proto} layer`);
      assert.equal(v6norm(one(layer, k, c.name)), v6norm(v), `${c.name}: quoted ${k}`);
    }
    const L = t[i]!._source.layers;
    for (const [k, v] of Object.entries(c.beyond ?? {})) {
      const all = L[k.slice(0, k.indexOf('.'))];
      const last = Array.isArray(all) ? all[all.length - 1] : all;
      assert.ok(last !== undefined, `${c.name}: no ${k} layer`);
      assert.equal(one(last, k, c.name), v, `${c.name}: inside the quote, ${k}`);
    }
  });
});

test('tshark: a clamped SYN shows the new MSS and a good TCP checksum', () => {
  const t = decode();
  CASES.forEach((c, i) => {
    if (c.kind !== 'syn') return;
    const L = t[i]!._source.layers;
    for (const [k, v] of Object.entries(c.top)) assert.equal(topValue(L, k, c.name), v, `${c.name}: ${k}`);
    assert.equal(topValue(L, 'tcp.checksum.status', c.name), GOOD, `${c.name}: TCP checksum`);
  });
});
