import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { VxlanTemplate, type VxlanTunnelConfig } from '../../src/overlay/template.js';
import { PacketPool } from '../../src/packet/buf.js';
import { HeaderParser } from '../../src/packet/parse.js';
import { ipv4FromString, ipv6FromString } from '../../src/wire/bytes.js';
import { compose, dissect, type Layer } from '../../src/wire/stack.js';
import { CATALOGUE, eth, ip4, ip6, udp } from '../peers/catalogue.js';

const V4: VxlanTunnelConfig = { srcMac: 0x0200000000aa, dstMac: 0x0200000000bb, underlay: { family: 4, src: ipv4FromString('192.168.1.1')!, dst: ipv4FromString('192.168.1.2')! }, vni: 5001 };
const V6: VxlanTunnelConfig = { srcMac: 0x0200000000aa, dstMac: 0x0200000000bb, underlay: { family: 6, src: ipv6FromString('fd00::1')!, dst: ipv6FromString('fd00::2')! }, vni: 0xabcdef, ttl: 32 };

/** The same outer headers built the slow, tshark-checked way. */
function expected(cfg: VxlanTunnelConfig, t: VxlanTemplate, ident: number, hash: number, inner: Layer[]): Uint8Array {
  const u = cfg.underlay;
  const outer: Layer[] = [
    eth(u.family === 4 ? 0x0800 : 0x86dd, [], cfg.srcMac, cfg.dstMac),
    u.family === 4
      ? ip4('0.0.0.0', '0.0.0.0', 17, { src: u.src, dst: u.dst, ident, dontFrag: cfg.dontFrag ?? false, ttl: cfg.ttl ?? 64 })
      : ip6('::', '::', 17, { src: u.src, dst: u.dst, hopLimit: cfg.ttl ?? 64 }),
    udp(t.srcPort(hash), 4789, u.family === 4 && cfg.udpChecksum !== true),
    { kind: 'vxlan', repr: { vni: cfg.vni } },
  ];
  return compose([...outer, ...inner]);
}

const innerFrames = CATALOGUE.filter((f) => f.layers[0]!.kind === 'eth' && !f.layers.some((l) => l.kind === 'vxlan' || l.kind === 'geneve'));

test('vxlan template: encapsulation equals composing the outer headers, IPv4 and IPv6, with and without UDP checksum', () => {
  const pool = new PacketPool({ count: 1 });
  for (const cfg of [V4, { ...V4, udpChecksum: true, dontFrag: true }, V6]) {
    const t = new VxlanTemplate(cfg);
    fc.assert(fc.property(fc.constantFrom(...innerFrames), fc.integer({ min: 0, max: 0xffffffff }), (f, hash) => {
      const p = pool.alloc()!;
      const inner = compose(f.layers);
      p.load(inner);
      const start = p.start;
      assert.ok(t.encap(p, hash));
      const ident = cfg.underlay.family === 4 ? (p.data[p.l3 + 4]! << 8) | p.data[p.l3 + 5]! : 0;
      assert.deepEqual(p.bytes(), expected(cfg, t, ident, hash, f.layers));
      assert.equal(p.innerL2, start);
      const d = dissect(p.bytes());
      assert.equal(d.drop, null);
      for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${f.name}: ${l.kind} checksum`);
      pool.release(p);
    }), { numRuns: 60 });
  }
});

test('vxlan template: source ports stay in the configured range and spread over it', () => {
  const t = new VxlanTemplate({ ...V4, srcPortMin: 50000, srcPortMax: 50009 });
  const seen = new Set<number>();
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (h) => {
    const port = t.srcPort(h);
    assert.ok(port >= 50000 && port <= 50009);
    seen.add(port);
  }), { numRuns: 500 });
  assert.equal(seen.size, 10);
  assert.equal(t.srcPort(0), 50000);
  assert.equal(t.srcPort(0xffffffff), 50009);
  assert.throws(() => new VxlanTemplate({ ...V4, srcPortMin: 9, srcPortMax: 8 }), /port range/);
  assert.throws(() => new VxlanTemplate({ ...V4, vni: 1 << 24 }), /VNI/);
});

test('vxlan template: refuses to encapsulate without headroom', () => {
  const pool = new PacketPool({ count: 1 });
  const p = pool.alloc()!;
  p.load(new Uint8Array(64));
  p.pull(0);
  p.start = 10;
  assert.equal(new VxlanTemplate(V4).encap(p, 1), false);
});

test('header parser: offsets agree with the full dissection for every catalogue frame, plain and encapsulated', () => {
  const pool = new PacketPool({ count: 1 });
  const parser = new HeaderParser();
  const t = new VxlanTemplate(V6);
  for (const f of CATALOGUE) {
    for (const tunnel of [false, true]) {
      const p = pool.alloc()!;
      p.load(compose(f.layers));
      if (tunnel) t.encap(p, 7);
      assert.equal(parser.parse(p), 0, f.name);
      const d = dissect(p.bytes());
      const offs = d.layers.map((l) => ({ kind: l.kind, off: l.off + p.start }));
      const firstIp = offs.findIndex((l) => l.kind === 'ipv4' || l.kind === 'ipv6');
      assert.equal(p.l2, p.start);
      if (firstIp >= 0) assert.equal(p.l3, offs[firstIp]!.off, `${f.name}: l3`);
      const tun = offs.findIndex((l) => l.kind === 'vxlan' || l.kind === 'geneve');
      if (tun >= 0 && offs[tun + 1]?.kind === 'eth') {
        assert.equal(p.innerL2, offs[tun + 1]!.off, `${f.name}: innerL2`);
        const innerIp = offs.slice(tun + 1).find((l) => l.kind === 'ipv4' || l.kind === 'ipv6');
        if (innerIp !== undefined) assert.equal(p.innerL3, innerIp.off, `${f.name}: innerL3`);
      } else {
        assert.equal(p.innerL2, -1, `${f.name}: no inner frame`);
      }
      pool.release(p);
    }
  }
});

test('header parser: truncated frames return drop reasons and never read outside the window', () => {
  const pool = new PacketPool({ count: 1 });
  const parser = new HeaderParser();
  const t = new VxlanTemplate(V4);
  const tcpFrame = CATALOGUE.find((f) => f.name.startsWith('vxlan over ipv4'))!;
  const p = pool.alloc()!;
  p.load(compose(tcpFrame.layers.slice(4)));
  t.encap(p, 1);
  const full = p.bytes().slice();
  let drops = 0;
  for (let cut = 0; cut < full.length; cut++) {
    // Poison the bytes beyond the window: a read past `end` would see them and could pass a check.
    p.load(full.subarray(0, cut));
    p.data.fill(0xff, p.end);
    const r = parser.parse(p);
    if (r !== 0) drops++;
  }
  // Every cut inside a header is a drop; only cuts inside the final payload can pass.
  assert.ok(drops >= 14 + 20 + 8 + 8 + 14 + 20 + 20 - 1, `only ${drops} drops`);
});
