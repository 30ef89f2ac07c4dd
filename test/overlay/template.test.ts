import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { TunnelTemplate, type TunnelTemplateConfig } from '../../src/overlay/template.js';
import { PacketPool } from '../../src/packet/buf.js';
import { HeaderParser } from '../../src/packet/parse.js';
import { ipv4FromString, ipv6FromString } from '../../src/wire/bytes.js';
import { geneveCriticalFlag, type GeneveOption } from '../../src/wire/geneve.js';
import { compose, dissect, type Layer } from '../../src/wire/stack.js';
import { CATALOGUE, eth, ip4, ip6, udp } from '../peers/catalogue.js';
import { fromHex, hex } from '../helpers.js';

const MACS = { srcMac: 0x0200000000aa, dstMac: 0x0200000000bb };
const UNDER4 = { family: 4, src: ipv4FromString('192.168.1.1')!, dst: ipv4FromString('192.168.1.2')! } as const;
const UNDER6 = { family: 6, src: ipv6FromString('fd00::1')!, dst: ipv6FromString('fd00::2')! } as const;
const V4: TunnelTemplateConfig = { kind: 'vxlan', ...MACS, underlay: UNDER4, vni: 5001 };
const V6: TunnelTemplateConfig = { kind: 'vxlan', ...MACS, underlay: UNDER6, vni: 0xabcdef, ttl: 32 };

const OPT8: GeneveOption = { class: 0x0102, type: 0x80, data: fromHex('0011223344556677') };
const SEVERAL: GeneveOption[] = [
  { class: 0x0104, type: 0x01, data: fromHex('0000000a') },
  { class: 0xffff, type: 0x03, data: new Uint8Array(0) },
  { class: 0x0000, type: 0x7f, data: new Uint8Array(24).map((_, i) => i) },
  { class: 0x0101, type: 0x02, data: new Uint8Array(124).fill(0xee) },
];
const G4: TunnelTemplateConfig = { kind: 'geneve', ...MACS, underlay: UNDER4, vni: 7 };
const G6: TunnelTemplateConfig = { kind: 'geneve', ...MACS, underlay: UNDER6, vni: 0x123456, ttl: 9 };

/** The same outer headers built the slow, tshark-checked way. */
function expected(cfg: TunnelTemplateConfig, t: TunnelTemplate, ident: number, hash: number, vni: number, inner: Layer[]): Uint8Array {
  const u = cfg.underlay;
  const geneve = cfg.kind === 'geneve';
  const options = [...(cfg.options ?? [])];
  const outer: Layer[] = [
    eth(u.family === 4 ? 0x0800 : 0x86dd, [], cfg.srcMac, cfg.dstMac),
    u.family === 4
      ? ip4('0.0.0.0', '0.0.0.0', 17, { src: u.src, dst: u.dst, ident, dontFrag: cfg.dontFrag ?? false, ttl: cfg.ttl ?? 64 })
      : ip6('::', '::', 17, { src: u.src, dst: u.dst, hopLimit: cfg.ttl ?? 64 }),
    udp(t.srcPort(hash), cfg.dstPort ?? (geneve ? 6081 : 4789), u.family === 4 && cfg.udpChecksum !== true),
    geneve
      ? { kind: 'geneve', repr: { vni, protocolType: 0x6558, oam: false, critical: geneveCriticalFlag(options), options } }
      : { kind: 'vxlan', repr: { vni } },
  ];
  return compose([...outer, ...inner]);
}

const innerFrames = CATALOGUE.filter((f) => f.layers[0]!.kind === 'eth' && !f.layers.some((l) => l.kind === 'vxlan' || l.kind === 'geneve'));

/**
 * Encapsulates catalogue frames with random flow hashes and VNIs into dirty headroom; the result must
 * equal `compose` of the outer layers byte for byte, and dissect with every checksum good.
 */
function checkAgainstCompose(cfg: TunnelTemplateConfig, numRuns = 60): void {
  const pool = new PacketPool({ count: 1 });
  const t = new TunnelTemplate(cfg);
  fc.assert(
    fc.property(fc.constantFrom(...innerFrames), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffff }), (f, hash, vni) => {
      const p = pool.alloc()!;
      try {
        p.load(compose(f.layers));
        p.data.fill(0xa5, 0, p.start);
        const start = p.start;
        assert.ok(t.encap(p, hash, vni));
        const ident = cfg.underlay.family === 4 ? (p.data[p.l3 + 4]! << 8) | p.data[p.l3 + 5]! : 0;
        assert.deepEqual(p.bytes(), expected(cfg, t, ident, hash, vni, f.layers));
        assert.equal(p.innerL2, start);
        assert.equal(p.l2, p.start);
        assert.equal(p.innerL2 - p.l2, t.headerLen);
        const d = dissect(p.bytes());
        assert.equal(d.drop, null);
        for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${f.name}: ${l.kind} checksum`);
        const outerUdp = d.layers[2]!;
        assert.equal(outerUdp.kind, 'udp');
        assert.equal(outerUdp.checksumOk, cfg.underlay.family === 6 || cfg.udpChecksum === true ? true : null);
        const tun = d.layers[3]!;
        // dissect() knows a tunnel by its IANA port; behind another port the bytes compared above must do.
        if (cfg.dstPort !== undefined) return;
        assert.equal(tun.kind, cfg.kind);
        assert.equal(tun.len, t.tunnelHeaderLen);
        if (tun.kind === 'geneve') {
          assert.equal(tun.repr.vni, vni);
          assert.equal(tun.repr.critical, geneveCriticalFlag(cfg.options ?? []));
          assert.equal(tun.repr.oam, false);
          assert.equal(tun.repr.protocolType, 0x6558);
          assert.deepEqual(
            tun.repr.options.map((o) => ({ ...o, data: o.data.slice() })),
            [...(cfg.options ?? [])],
          );
        } else if (tun.kind === 'vxlan') {
          assert.equal(tun.repr.vni, vni);
        }
      } finally {
        pool.release(p);
      }
    }),
    { numRuns },
  );
}

test('vxlan template: encapsulation equals composing the outer headers, IPv4 and IPv6, with and without UDP checksum', () => {
  for (const cfg of [V4, { ...V4, udpChecksum: true, dontFrag: true }, V6, { ...V4, dstPort: 8472 }]) checkAgainstCompose(cfg);
});

test('geneve template: encapsulation equals composing the outer headers, with 0, 1 and several options, IPv4 and IPv6, with and without UDP checksum', () => {
  for (const options of [[], [OPT8], SEVERAL]) {
    for (const cfg of [G4, { ...G4, udpChecksum: true, dontFrag: true }, G6, { ...G6, dstPort: 6082 }]) checkAgainstCompose({ ...cfg, options }, 30);
  }
});

const optionArb = fc.record(
  {
    class: fc.integer({ min: 0, max: 0xffff }),
    type: fc.integer({ min: 0, max: 0xff }),
    data: fc.integer({ min: 0, max: 31 }).chain((w) => fc.uint8Array({ minLength: 4 * w, maxLength: 4 * w })),
  },
  { noNullPrototype: true },
);
const optionsArb = fc.array(optionArb, { maxLength: 8 }).filter((os) => os.reduce((n, o) => n + 4 + o.data.length, 0) <= 252);

test('geneve template: random option sets survive into every packet', () => {
  fc.assert(
    fc.property(optionsArb, fc.boolean(), fc.boolean(), (options, v6, udpChecksum) => {
      checkAgainstCompose({ ...(v6 ? G6 : G4), options, udpChecksum }, 3);
    }),
    { numRuns: 40 },
  );
});

test('geneve template: golden tunnel header and the C flag', () => {
  const t = new TunnelTemplate({ ...G4, options: [OPT8] });
  assert.equal(t.kind, 'geneve');
  assert.equal(t.tunnelHeaderLen, 8 + 4 + 8);
  assert.equal(t.headerLen, 14 + 20 + 8 + 20);
  const pool = new PacketPool({ count: 1 });
  const p = pool.alloc()!;
  p.load(fromHex('ffffffffffff0200000000010806'));
  assert.ok(t.encap(p, 0, 0xabcdef));
  // Ver 0, Opt Len 3 words, C set, protocol 0x6558, VNI, then class 0x0102, type 0x80 (critical), 2 words.
  assert.equal(hex(p.data.subarray(p.l4 + 8, p.innerL2)), '03406558' + 'abcdef00' + '01028002' + '0011223344556677');
  assert.equal((p.data[p.l4 + 2]! << 8) | p.data[p.l4 + 3]!, 6081);

  const flags = (cfg: TunnelTemplateConfig): number => new TunnelTemplate(cfg).header[14 + 20 + 8 + 1]!;
  assert.equal(flags(G4), 0, 'no options: C clear');
  assert.equal(flags({ ...G4, options: SEVERAL }), 0, 'no critical option: C clear');
  assert.equal(flags({ ...G4, options: [...SEVERAL, OPT8] }), 0x40, 'a critical option: C set');
  assert.equal(flags({ ...G4, options: [{ class: 1, type: 0xff, data: new Uint8Array(0) }] }), 0x40);
});

test('tunnel template: the configured options are copied, and the header keeps the default VNI', () => {
  const data = fromHex('01020304');
  const t = new TunnelTemplate({ ...G6, options: [{ class: 9, type: 1, data }] });
  data.fill(0);
  const g = 14 + 40 + 8;
  assert.equal(hex(t.header.subarray(g, g + 16)), '02006558' + '12345600' + '00090101' + '01020304');
  assert.equal(t.vni, 0x123456);
  const x = new TunnelTemplate(V4);
  assert.equal(x.kind, 'vxlan');
  assert.equal(x.tunnelHeaderLen, 8);
  assert.equal(hex(x.header.subarray(14 + 20 + 8)), '08000000' + '00138900');
});

test('tunnel template: source ports stay in the configured range and spread over it', () => {
  for (const kind of ['vxlan', 'geneve'] as const) {
    const t = new TunnelTemplate({ ...V4, kind, srcPortMin: 50000, srcPortMax: 50009 });
    const seen = new Set<number>();
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (h) => {
        const port = t.srcPort(h);
        assert.ok(port >= 50000 && port <= 50009);
        seen.add(port);
      }),
      { numRuns: 500 },
    );
    assert.equal(seen.size, 10);
    assert.equal(t.srcPort(0), 50000);
    assert.equal(t.srcPort(0xffffffff), 50009);
  }
});

test('tunnel template: the constructor rejects what cannot be encoded', () => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ srcPortMin: 9, srcPortMax: 8 }, /port range/],
    [{ srcPortMin: 0 }, /port range/],
    [{ srcPortMax: 65536 }, /port range/],
    [{ vni: 1 << 24 }, /VNI/],
    [{ vni: -1 }, /VNI/],
    [{ vni: 1.5 }, /VNI/],
    [{ dstPort: 0 }, /destination port/],
    [{ dstPort: 65536 }, /destination port/],
    [{ ttl: 0 }, /TTL/],
    [{ ttl: 256 }, /TTL/],
    [{ kind: 'ipip' }, /kind/],
    [{ options: [OPT8] }, /geneve only/],
    [{ kind: 'geneve', options: [{ class: 1, type: 1, data: new Uint8Array(6) }] }, /option 0: data of 6 bytes/],
    [{ kind: 'geneve', options: [OPT8, { class: 1, type: 1, data: new Uint8Array(128) }] }, /option 1: data of 128 bytes/],
    [{ kind: 'geneve', options: [{ class: 0x10000, type: 1, data: new Uint8Array(0) }] }, /class/],
    [{ kind: 'geneve', options: [{ class: 1, type: 256, data: new Uint8Array(0) }] }, /type/],
    // Two 124-byte options take 2 × 128 = 256 bytes with their headers.
    [{ kind: 'geneve', options: [SEVERAL[3]!, SEVERAL[3]!] }, /256 bytes: at most 252/],
  ];
  for (const [patch, re] of bad)
    assert.throws(
      () => new TunnelTemplate({ ...V4, ...patch } as unknown as TunnelTemplateConfig),
      (e: unknown) => e instanceof RangeError && re.test(e.message),
      JSON.stringify(patch),
    );
  // The limits themselves are accepted: 252 bytes of options, an empty option list for VXLAN.
  const max: GeneveOption[] = [SEVERAL[3]!, { class: 1, type: 1, data: new Uint8Array(120) }];
  assert.equal(new TunnelTemplate({ ...G4, options: max }).tunnelHeaderLen, 8 + 252);
  assert.equal(new TunnelTemplate({ ...V4, options: [] }).tunnelHeaderLen, 8);
});

test('tunnel template: refuses to encapsulate without headroom, leaving the packet alone', () => {
  const pool = new PacketPool({ count: 1 });
  for (const cfg of [V4, { ...G6, options: SEVERAL }]) {
    const p = pool.alloc()!;
    p.load(new Uint8Array(64));
    p.start = 10;
    const t = new TunnelTemplate(cfg);
    assert.equal(t.encap(p, 1, 1), false);
    assert.equal(p.start, 10);
    assert.equal(p.l2, -1);
    assert.equal(p.innerL2, -1);
    pool.release(p);
  }
});

test('header parser: offsets agree with the full dissection for every catalogue frame, plain and encapsulated', () => {
  const pool = new PacketPool({ count: 1 });
  const parser = new HeaderParser();
  for (const t of [new TunnelTemplate(V6), new TunnelTemplate({ ...G4, options: SEVERAL })]) {
    for (const f of CATALOGUE) {
      for (const tunnel of [false, true]) {
        const p = pool.alloc()!;
        p.load(compose(f.layers));
        if (tunnel) t.encap(p, 7, t.vni);
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
  }
});

test('header parser: truncated frames return drop reasons and never read outside the window', () => {
  const pool = new PacketPool({ count: 1 });
  const parser = new HeaderParser();
  const t = new TunnelTemplate(V4);
  const tcpFrame = CATALOGUE.find((f) => f.name.startsWith('vxlan over ipv4'))!;
  const p = pool.alloc()!;
  p.load(compose(tcpFrame.layers.slice(4)));
  t.encap(p, 1, t.vni);
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
