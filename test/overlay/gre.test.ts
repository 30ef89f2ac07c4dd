import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pathMtu, tunnelOverhead } from '../../src/mtu/overhead.js';
import { TunnelTemplate, type TunnelTemplateConfig } from '../../src/overlay/template.js';
import { GRE_HELLO_PORT, Tunnel, type TunnelConfig } from '../../src/overlay/tunnel.js';
import { PacketPool } from '../../src/packet/buf.js';
import { ipv4FromString, ipv6FromString } from '../../src/wire/bytes.js';
import { DropReason, dropReasonName } from '../../src/wire/drop.js';
import { GreView } from '../../src/wire/gre.js';
import { compose, dissect, type Layer } from '../../src/wire/stack.js';
import { CATALOGUE, eth, ip4, ip6, zeros } from '../peers/catalogue.js';
import { hex } from '../helpers.js';

const MACS = { srcMac: 0x0200000000aa, dstMac: 0x0200000000bb };
const UNDER4 = { family: 4, src: ipv4FromString('192.168.1.1')!, dst: ipv4FromString('192.168.1.2')! } as const;
const UNDER6 = { family: 6, src: ipv6FromString('fd00::1')!, dst: ipv6FromString('fd00::2')! } as const;
const T4: TunnelTemplateConfig = { kind: 'gre', ...MACS, underlay: UNDER4, vni: 5001 };
const T6: TunnelTemplateConfig = { kind: 'gre', ...MACS, underlay: UNDER6, vni: 0xabcdef, ttl: 32 };

const innerFrames = CATALOGUE.filter(
  (f) => f.layers[0]!.kind === 'eth' && !f.layers.some((l) => l.kind === 'vxlan' || l.kind === 'geneve' || l.kind === 'gre'),
);

/** The outer headers built the slow, dissector-checked way: Ethernet, IP protocol 47, GRE (key = VNI). */
function expected(cfg: TunnelTemplateConfig, ident: number, vni: number, inner: Layer[]): Uint8Array {
  const u = cfg.underlay;
  return compose([
    eth(u.family === 4 ? 0x0800 : 0x86dd, [], cfg.srcMac, cfg.dstMac),
    u.family === 4
      ? ip4('0.0.0.0', '0.0.0.0', 47, { src: u.src, dst: u.dst, ident, dontFrag: cfg.dontFrag ?? false, ttl: cfg.ttl ?? 64 })
      : ip6('::', '::', 47, { src: u.src, dst: u.dst, hopLimit: cfg.ttl ?? 64 }),
    { kind: 'gre', repr: { protocolType: 0x6558, checksum: false, key: cfg.greKey === false ? null : vni, sequence: null } },
    ...inner,
  ]);
}

test('gre template: encapsulation equals composing the outer headers, IPv4 and IPv6, with and without the key', () => {
  const pool = new PacketPool({ count: 1 });
  for (const cfg of [T4, { ...T4, dontFrag: true }, { ...T4, greKey: false }, T6, { ...T6, greKey: false }]) {
    const t = new TunnelTemplate(cfg);
    const ipLen = cfg.underlay.family === 4 ? 20 : 40;
    const greLen = cfg.greKey === false ? 4 : 8;
    assert.equal(t.headerLen, 14 + ipLen + greLen);
    assert.equal(t.tunnelHeaderLen, greLen);
    fc.assert(
      fc.property(fc.constantFrom(...innerFrames), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffff }), (f, hash, vni) => {
        const p = pool.alloc()!;
        try {
          p.load(compose(f.layers));
          p.data.fill(0xa5, 0, p.start); // dirty headroom: a field left unwritten shows
          const start = p.start;
          assert.ok(t.encap(p, hash, vni));
          const ident = cfg.underlay.family === 4 ? (p.data[p.l3 + 4]! << 8) | p.data[p.l3 + 5]! : 0;
          assert.deepEqual(p.bytes(), expected(cfg, ident, vni, f.layers));
          assert.equal(p.innerL2, start);
          assert.equal(p.l4 - p.l2, 14 + ipLen);
          const d = dissect(p.bytes());
          assert.equal(d.drop, null);
          for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${f.name}: ${l.kind} checksum`);
          const g = d.layers[2]!;
          assert.equal(g.kind, 'gre');
          if (g.kind === 'gre') {
            assert.equal(g.repr.protocolType, 0x6558);
            assert.equal(g.repr.key, cfg.greKey === false ? null : vni);
            assert.equal(g.repr.checksum, false);
            assert.equal(g.repr.sequence, null);
          }
          assert.equal(d.layers[3]!.kind, 'eth');
        } finally {
          pool.release(p);
        }
      }),
      { numRuns: 40 },
    );
  }
});

test('gre template: golden outer header over IPv4 with the key', () => {
  const t = new TunnelTemplate({ ...T4, vni: 0x123456 });
  // IPv4 with protocol 47 (per-packet fields zero), then GRE: K set, version 0, 0x6558, key 0x00123456.
  assert.equal(hex(t.header.subarray(14)), '450000000000000040' + '2f' + '0000' + 'c0a80101c0a80102' + '20006558' + '00123456');
});

test('gre template: refuses what GRE cannot carry', () => {
  assert.throws(() => new TunnelTemplate({ ...T4, dstPort: 4789 }), /no destination port/);
  assert.throws(() => new TunnelTemplate({ ...T4, udpChecksum: true }), /no UDP checksum/);
  assert.throws(() => new TunnelTemplate({ ...T4, kind: 'vxlan', greKey: true }), /greKey is for gre only/);
  assert.throws(() => new TunnelTemplate({ ...T4, kind: 'ipip' as 'gre' }), /vxlan, geneve, gre/);
});

test('gre overhead: 42 bytes with the key over IPv4 (Antrea), 38 without, 62 and 58 over IPv6', () => {
  assert.equal(tunnelOverhead({ tunnel: 'gre', underlay: 4 }), 42);
  assert.equal(tunnelOverhead({ tunnel: 'gre', underlay: 4, greKey: false }), 38);
  assert.equal(tunnelOverhead({ tunnel: 'gre', underlay: 6 }), 62);
  assert.equal(tunnelOverhead({ tunnel: 'gre', underlay: 6, greKey: false }), 58);
  for (const [greKey, family, mtu] of [
    [true, 4, 1458],
    [false, 4, 1462],
    [true, 6, 1438],
    [false, 6, 1442],
  ] as const) {
    const t = new Tunnel({ kind: 'gre', mode: 'routed', localIp: family === 4 ? '10.0.0.1' : 'fd00::1', localMac: 1, greKey });
    assert.equal(t.innerMtu(1500), mtu, `greKey ${greKey} IPv${family}`);
    // What the template prepends (outer Ethernet, IP, GRE) is the overhead (IP, GRE, inner Ethernet).
    t.addVtep({ ip: family === 4 ? '10.0.0.2' : 'fd00::2', mac: 2 });
    assert.equal(t.vteps[0]!.template.headerLen, 1500 - mtu);
  }
  // ESP over GRE: the exact ESP overhead on top (AES-GCM: 8 header + 8 IV + 2 trailer + 16 ICV, padding
  // to 4): 1424 + 8 GRE + 14 Ethernet = 1446 bytes of ESP payload, + 2 trailer = 1448 needs no padding,
  // 20 + 8 + 8 + 1446 + 2 + 16 = 1500. Antrea's fixed allowance (42 + 38) would say 1420.
  assert.equal(pathMtu(1500, { tunnel: 'gre', underlay: 4, esp: { cipher: 'aes-gcm-128' } }), 1424);
  assert.equal(pathMtu(1500, { tunnel: 'gre', underlay: 4, espAllowance: 38 }), 1420);
});

const A = { ip: '192.168.1.1', mac: 0x0a0000000001 };
const B = { ip: '192.168.1.2', mac: 0x0a0000000002 };

function pair(extra: Partial<TunnelConfig> = {}): { a: Tunnel; b: Tunnel } {
  const a = new Tunnel({ kind: 'gre', mode: 'routed', localIp: A.ip, localMac: A.mac, vni: 7, ...extra });
  const b = new Tunnel({ kind: 'gre', mode: 'routed', localIp: B.ip, localMac: B.mac, vni: 7, ...extra });
  a.addVtep(B);
  b.addVtep(A);
  return { a, b };
}

test('gre tunnel: routed round trip with and without the key; the hello port stands in for the UDP port', () => {
  const pool = new PacketPool({ count: 2 });
  const inner = compose([eth(0x0800), ip4('10.244.1.2', '10.244.2.2', 17), zeros(100)]);
  for (const greKey of [true, false]) {
    const { a, b } = pair({ greKey });
    assert.equal(a.dstPort, GRE_HELLO_PORT);
    const p = pool.alloc()!;
    p.load(inner);
    assert.equal(a.encap(p, 0, 7), 0);
    assert.equal(p.data[p.l3 + 9], 47);
    assert.equal(new GreView(p.data, p.l4).keyPresent, greKey);
    assert.equal(b.decap(p), 0);
    assert.deepEqual(p.bytes(), inner);
    assert.equal(p.tunVni, 7);
    assert.equal(p.tunVtep, 0);
    assert.equal(b.vteps[0]!.rxPackets, 1);
    pool.release(p);
  }
});

test('gre tunnel: l2 mode maps the key to a segment; an unmapped key is UnknownVni', () => {
  const pool = new PacketPool({ count: 1 });
  const a = new Tunnel({ kind: 'gre', mode: 'l2', localIp: A.ip, localMac: A.mac });
  const b = new Tunnel({ kind: 'gre', mode: 'l2', localIp: B.ip, localMac: B.mac });
  a.addVtep({ ...B, vnis: [100, 200] });
  b.addVtep({ ...A, vnis: [100] });
  b.mapVni(100, 3);
  const inner = compose([eth(0x0806), zeros(28)]);
  const p = pool.alloc()!;
  p.load(inner);
  assert.equal(a.encap(p, 0, 100), 0);
  assert.equal(b.decap(p), 0);
  assert.equal(p.segment, 3);
  assert.equal(p.tunVni, 100);
  p.load(inner);
  assert.equal(a.encap(p, 0, 200), 0);
  assert.equal(b.decap(p), DropReason.UnknownVni);
  pool.release(p);
});

test('gre tunnel: refuses UDP options and greKey on other kinds', () => {
  assert.throws(() => new Tunnel({ kind: 'gre', mode: 'routed', localIp: A.ip, localMac: 1, udpChecksum: true }), /no UDP header/);
  assert.throws(() => new Tunnel({ kind: 'vxlan', mode: 'routed', localIp: A.ip, localMac: 1, greKey: false }), /greKey is for gre only/);
});

/**
 * Decapsulation against the wire view: random bytes written over a valid GRE header (and the outer IP
 * protocol) must be refused exactly as GreView and RFC 2784/2890 say, in decap's order of checks.
 */
test('gre tunnel: decapsulation drops exactly what the GRE header says, with the reason', () => {
  const { b } = pair();
  const pool = new PacketPool({ count: 1, frameCapacity: 1024 });
  const seen = new Set<number>();
  const GRE_AT = 14 + 20;
  fc.assert(
    fc.property(
      fc.record({ checksum: fc.boolean(), key: fc.option(fc.constantFrom(7, 8), { nil: null }), sequence: fc.option(fc.nat(), { nil: null }) }),
      fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 30 })),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 2 }),
      (g, innerLen, pokes) => {
        const inner = innerLen === 0 ? [] : [eth(0x0800), zeros(Math.max(0, innerLen - 14))];
        const frame = compose([eth(0x0800, [], A.mac, B.mac), ip4(A.ip, B.ip, 47), { kind: 'gre', repr: { protocolType: 0x6558, ...g } }, ...inner]);
        const hl = 4 + (g.checksum ? 4 : 0) + (g.key !== null ? 4 : 0) + (g.sequence !== null ? 4 : 0);
        for (const [at, v] of pokes) frame[GRE_AT + (at % hl)] = v;
        const v = new GreView(frame, GRE_AT);
        const avail = frame.length - GRE_AT;
        let want: number = v.check(avail) ?? 0;
        if (want === 0 && v.protocolType !== 0x6558) want = DropReason.GreNotEthernet;
        if (want === 0 && !v.verifyChecksum(avail)) want = DropReason.GreBadChecksum;
        if (want === 0 && !v.keyPresent) want = DropReason.GreKeyMismatch;
        if (want === 0 && v.key !== 7) want = DropReason.UnknownVni;
        if (want === 0 && avail - v.headerLen < 14) want = DropReason.EthTruncated;
        const p = pool.alloc()!;
        p.load(frame);
        const start = p.start;
        const got = b.decap(p);
        seen.add(want);
        assert.equal(got === 0 ? 'ok' : dropReasonName(got as DropReason), want === 0 ? 'ok' : dropReasonName(want as DropReason));
        if (got === 0) assert.equal(p.start - start, GRE_AT + v.headerLen);
        else assert.equal(p.start, start);
        p.release();
      },
    ),
    { numRuns: 3000 },
  );
  for (const r of [
    0,
    DropReason.GreTruncated,
    DropReason.GreBadVersion,
    DropReason.GreUnsupportedFlags,
    DropReason.GreNotEthernet,
    DropReason.GreBadChecksum,
    DropReason.GreKeyMismatch,
    DropReason.UnknownVni,
    DropReason.EthTruncated,
  ])
    assert.ok(seen.has(r), `never saw ${r === 0 ? 'success' : dropReasonName(r)}`);
});

test('gre tunnel: not protocol 47, not for us, a fragment, from an unknown VTEP', () => {
  const { b } = pair();
  const pool = new PacketPool({ count: 1 });
  const gre: Layer = { kind: 'gre', repr: { protocolType: 0x6558, checksum: false, key: 7, sequence: null } };
  const inner = [eth(0x0800), zeros(40)];
  const cases: Array<[string, Uint8Array, DropReason]> = [
    ['udp', compose([eth(0x0800), ip4(A.ip, B.ip, 17), gre, ...inner]), DropReason.TunnelNotForUs],
    ['other dst', compose([eth(0x0800), ip4(A.ip, '192.168.1.9', 47), gre, ...inner]), DropReason.TunnelNotForUs],
    ['fragment', compose([eth(0x0800), ip4(A.ip, B.ip, 47, { moreFrags: true }), gre, ...inner]), DropReason.TunnelFragment],
    ['unknown vtep', compose([eth(0x0800), ip4('192.168.1.77', B.ip, 47), gre, ...inner]), DropReason.UnknownVtep],
  ];
  for (const [name, frame, want] of cases) {
    const p = pool.alloc()!;
    p.load(frame);
    assert.equal(dropReasonName(b.decap(p) as DropReason), dropReasonName(want), name);
    pool.release(p);
  }
  // Over IPv6 the next header is walked as for UDP.
  const b6 = new Tunnel({ kind: 'gre', mode: 'routed', localIp: 'fd00::2', localMac: B.mac, vni: 7 });
  b6.addVtep({ ip: 'fd00::1', mac: A.mac });
  const p = pool.alloc()!;
  p.load(compose([eth(0x86dd), ip6('fd00::1', 'fd00::2', 47), gre, ...inner]));
  assert.equal(b6.decap(p), 0);
  assert.equal(p.end - p.start, 54);
  pool.release(p);
});
