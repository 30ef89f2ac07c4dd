/**
 * Whole frames: properties of `dissect` / `compose` over random valid layer stacks (tunnels included),
 * and robustness of `dissect` and the decoder over arbitrary, truncated and mutated bytes.
 *
 * The stacks are consistent by construction: every EtherType, protocol and next-header field names the
 * layer that follows, and the IP length fields carry what `compose` computes, so a parsed stack must
 * deep-equal the generated one as it stands.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decodeFrame, decodeLayers, summarize } from '../../src/cli/decode.js';
import { DropReason } from '../../src/wire/drop.js';
import { ESP_UDP_PORT } from '../../src/wire/esp.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB } from '../../src/wire/ethernet.js';
import { GENEVE_UDP_PORT, type GeneveOption } from '../../src/wire/geneve.js';
import { IPPROTO_ESP, IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { IPV6_NH_DEST_OPTS, IPV6_NH_HOP_BY_HOP, IPV6_NH_ROUTING } from '../../src/wire/ipv6.js';
import { compose, composedLen, dissect, layersOf, MAX_LAYERS, type Dissection, type Layer } from '../../src/wire/stack.js';
import { tcpBufferLen, TCP_MAX_HEADER_LEN, type TcpOption, type TcpRepr } from '../../src/wire/tcp.js';
import { VXLAN_UDP_PORT } from '../../src/wire/vxlan.js';
import { dirty, hex, guarded } from '../helpers.js';
import { CATALOGUE, data, eth, ip4, udp } from '../peers/catalogue.js';
// Importing these registers their tests in this file's run as well (about half a second).
import { ethernetReprArb, ipv4ReprArb, ipv6ReprArb } from '../arbitraries.js';

const NNP = { noNullPrototype: true } as const;
const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u24 = fc.integer({ min: 0, max: 0xffffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

/** Ports `dissect` looks behind (VXLAN, Geneve, ESP-in-UDP): a plain UDP datagram must use neither. */
const TUNNEL_PORTS = new Set([VXLAN_UDP_PORT, GENEVE_UDP_PORT, ESP_UDP_PORT]);
const plainPort = u16.filter((p) => !TUNNEL_PORTS.has(p));

/** What follows an IP header: its protocol number and the layers. */
interface Upper {
  proto: number;
  layers: Layer[];
}
/** What follows an EtherType-typed header (Ethernet, Geneve, GRE). */
interface Typed {
  etherType: number;
  layers: Layer[];
}

/** Nothing, or 1-40 bytes of opaque payload (`dissect` reports no empty data layer). */
const payloadArb: fc.Arbitrary<Layer[]> = fc
  .option(fc.uint8Array({ minLength: 1, maxLength: 40 }), { nil: null })
  .map((b) => (b === null ? [] : [{ kind: 'data', bytes: b }]));

const tcpOptionArb: fc.Arbitrary<TcpOption> = fc.oneof(
  u16.map((value): TcpOption => ({ kind: 'mss', value })),
  u8.map((shift): TcpOption => ({ kind: 'wscale', shift })),
  fc.constant<TcpOption>({ kind: 'sackPermitted' }),
  fc.array(fc.tuple(u32, u32), { maxLength: 4 }).map((blocks): TcpOption => ({ kind: 'sack', blocks })),
  fc.tuple(u32, u32).map(([tsval, tsecr]): TcpOption => ({ kind: 'timestamps', tsval, tsecr })),
  fc.constant<TcpOption>({ kind: 'nop' }),
  // Kinds 0-5 and 8 have meanings (and 5 with 2+8n bytes parses as SACK), so unknown ones avoid them.
  fc
    .tuple(
      fc.integer({ min: 6, max: 255 }).filter((t) => t !== 8),
      fc.uint8Array({ maxLength: 10 }),
    )
    .map(([type, data]): TcpOption => ({ kind: 'unknown', type, data })),
);

const tcpReprArb: fc.Arbitrary<TcpRepr> = fc
  .record(
    {
      srcPort: u16,
      dstPort: u16,
      seq: u32,
      ack: u32,
      flags: fc.integer({ min: 0, max: 0xfff }),
      window: u16,
      urgent: u16,
      options: fc.array(tcpOptionArb, { maxLength: 6 }),
    },
    NNP,
  )
  .filter((r) => tcpBufferLen(r) <= TCP_MAX_HEADER_LEN);

function udpArb(v6: boolean, srcPort: fc.Arbitrary<number>, dstPort: fc.Arbitrary<number>): fc.Arbitrary<Layer> {
  // A zero UDP checksum means "none" over IPv4 only; over IPv6 compose always computes one.
  return fc
    .tuple(srcPort, dstPort, v6 ? fc.constant(false) : fc.boolean())
    .map(([s, d, zero]): Layer => ({ kind: 'udp', repr: { srcPort: s, dstPort: d }, zeroChecksum: zero }));
}

const geneveOptionArb: fc.Arbitrary<GeneveOption> = fc.record(
  {
    class: u16,
    type: u8,
    data: fc.integer({ min: 0, max: 20 }).chain((w) => fc.uint8Array({ minLength: 4 * w, maxLength: 4 * w })),
  },
  NNP,
);

/** `n` bytes, `n` a multiple of 8 plus 6: the data of an extension header that needs no padding. */
const extDataArb = (minWords: number, maxWords: number): fc.Arbitrary<Uint8Array> =>
  fc.integer({ min: minWords, max: maxWords }).chain((k) => fc.uint8Array({ minLength: 6 + 8 * k, maxLength: 6 + 8 * k }));

/**
 * Routing header data: type (0 and 2 take the last address as the pseudo-header destination, 4 the
 * first; others none), segments left, four more bytes, then 0-3 addresses.
 */
const routingDataArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(fc.constantFrom(0, 2, 4, 3, 253), fc.integer({ min: 0, max: 3 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 3 }))
  .chain(([type, left, rest, n]) => fc.uint8Array({ minLength: 16 * n, maxLength: 16 * n }).map((addrs) => Uint8Array.from([type, left, ...rest, ...addrs])));

/**
 * IPv6 extension headers: maybe Hop-by-Hop (first, RFC 8200 §4.1), then up to two Destination Options
 * or (when `routing`) Routing headers.
 */
function ipv6ExtChainArb(routing: boolean): fc.Arbitrary<{ type: number; data: Uint8Array }[]> {
  const later = extDataArb(0, 2).map((data) => ({ type: IPV6_NH_DEST_OPTS, data }));
  return fc
    .tuple(
      fc.option(extDataArb(0, 3), { nil: null, freq: 2 }),
      fc.array(
        routing
          ? fc.oneof(
              later,
              routingDataArb.map((data) => ({ type: IPV6_NH_ROUTING, data })),
            )
          : later,
        { maxLength: 2 },
      ),
    )
    .map(([hbh, rest]) => (hbh === null ? rest : [{ type: IPV6_NH_HOP_BY_HOP, data: hbh }, ...rest]));
}

/**
 * `routingInTunnels`: whether an IPv6 packet inside a tunnel may carry a Routing header (compose once
 * took an inner Routing header for the outer packet's; the regression test is at the end).
 */
interface Gen {
  routingInTunnels: boolean;
}

/** Transport (or tunnel) under an IP header; tunnels only while `depth` > 0. */
function upperArb(v6: boolean, depth: number, g: Gen): fc.Arbitrary<Upper> {
  const plainUdp = fc.tuple(udpArb(v6, plainPort, plainPort), payloadArb).map(([u, p]): Upper => ({ proto: IPPROTO_UDP, layers: [u, ...p] }));
  const tcp = fc.tuple(tcpReprArb, payloadArb).map(([r, p]): Upper => ({ proto: IPPROTO_TCP, layers: [{ kind: 'tcp', repr: r }, ...p] }));
  const echo = fc
    .tuple(fc.constantFrom('echoRequest' as const, 'echoReply' as const), u16, u16, fc.uint8Array({ maxLength: 40 }))
    .map(
      ([kind, ident, seq, data]): Upper =>
        v6
          ? { proto: IPPROTO_ICMPV6, layers: [{ kind: 'icmpv6', repr: { kind, ident, seq, data } }] }
          : { proto: IPPROTO_ICMP, layers: [{ kind: 'icmpv4', repr: { kind, ident, seq, data } }] },
    );
  const esp = fc.tuple(u32, u32, payloadArb).map(([spi, seq, p]): Upper => ({ proto: IPPROTO_ESP, layers: [{ kind: 'esp', repr: { spi, seq } }, ...p] }));
  // ESP-in-UDP (RFC 3948): a zero SPI would mark IKE, which dissect leaves as data.
  const espInUdp = fc
    .tuple(udpArb(v6, plainPort, fc.constant(ESP_UDP_PORT)), fc.integer({ min: 1, max: 0xffff_ffff }), u32, payloadArb)
    .map(([u, spi, seq, p]): Upper => ({ proto: IPPROTO_UDP, layers: [u, { kind: 'esp', repr: { spi, seq } }, ...p] }));
  const leaves = [
    { arbitrary: plainUdp, weight: 3 },
    { arbitrary: tcp, weight: 3 },
    { arbitrary: echo, weight: 1 },
    { arbitrary: esp, weight: 1 },
    { arbitrary: espInUdp, weight: 1 },
  ];
  if (depth === 0) return fc.oneof(...leaves);
  const inner = frameArb(depth - 1, g, false);
  const vxlan = fc
    .tuple(udpArb(v6, plainPort, fc.constant(VXLAN_UDP_PORT)), u24, inner)
    .map(([u, vni, f]): Upper => ({ proto: IPPROTO_UDP, layers: [u, { kind: 'vxlan', repr: { vni } }, ...f] }));
  const geneve = fc
    .tuple(
      udpArb(v6, plainPort, fc.constant(GENEVE_UDP_PORT)),
      fc.record({ vni: u24, oam: fc.boolean(), critical: fc.boolean(), options: fc.array(geneveOptionArb, { maxLength: 3 }) }, NNP),
      typedArb(depth - 1, g),
    )
    .map(([u, g, t]): Upper => ({ proto: IPPROTO_UDP, layers: [u, { kind: 'geneve', repr: { ...g, protocolType: t.etherType } }, ...t.layers] }));
  const gre = fc.tuple(fc.boolean(), fc.option(u32, { nil: null }), fc.option(u32, { nil: null }), typedArb(depth - 1, g)).map(
    ([checksum, key, sequence, t]): Upper => ({
      proto: IPPROTO_GRE,
      layers: [{ kind: 'gre', repr: { protocolType: t.etherType, checksum, key, sequence } }, ...t.layers],
    }),
  );
  return fc.oneof(...leaves, { arbitrary: vxlan, weight: 2 }, { arbitrary: geneve, weight: 2 }, { arbitrary: gre, weight: 2 });
}

/** IPv4, or IPv6 with extension headers, and what it carries. */
function netArb(depth: number, g: Gen, top: boolean): fc.Arbitrary<Typed> {
  const v4 = fc.tuple(ipv4ReprArb, upperArb(false, depth, g)).map(
    ([r, up]): Typed => ({
      etherType: ETHERTYPE_IPV4,
      layers: [{ kind: 'ipv4', repr: { ...r, protocol: up.proto, moreFrags: false, fragOffset: 0, payloadLen: 0 } }, ...up.layers],
    }),
  );
  const v6 = fc.tuple(ipv6ReprArb, ipv6ExtChainArb(top || g.routingInTunnels), upperArb(true, depth, g)).map(([r, exts, up]): Typed => {
    const chain: Layer[] = exts.map((e, i) => ({ kind: 'ipv6ext', repr: { headerType: e.type, nextHeader: exts[i + 1]?.type ?? up.proto, data: e.data } }));
    return {
      etherType: ETHERTYPE_IPV6,
      layers: [{ kind: 'ipv6', repr: { ...r, nextHeader: exts[0]?.type ?? up.proto, payloadLen: 0 } }, ...chain, ...up.layers],
    };
  });
  return fc.oneof(v4, v6);
}

/** An Ethernet frame with 0-2 tags. */
function frameArb(depth: number, g: Gen, top: boolean): fc.Arbitrary<Layer[]> {
  return fc.tuple(ethernetReprArb, netArb(depth, g, top)).map(([e, n]): Layer[] => [{ kind: 'eth', repr: { ...e, etherType: n.etherType } }, ...n.layers]);
}

/** The payload of a Geneve or GRE header: usually an Ethernet frame (0x6558), sometimes a bare IP packet. */
function typedArb(depth: number, g: Gen): fc.Arbitrary<Typed> {
  return fc.oneof(
    { arbitrary: frameArb(depth, g, false).map((layers): Typed => ({ etherType: ETHERTYPE_TEB, layers })), weight: 3 },
    { arbitrary: netArb(depth, g, false), weight: 1 },
  );
}

/** The IP length fields as compose writes them (every byte after the header, extension headers included). */
function withLengths(layers: Layer[]): Layer[] {
  const out = [...layers];
  let after = 0;
  for (let i = out.length - 1; i >= 0; i--) {
    const l = out[i]!;
    if (l.kind === 'ipv4') out[i] = { kind: 'ipv4', repr: { ...l.repr, payloadLen: after } };
    if (l.kind === 'ipv6') out[i] = { kind: 'ipv6', repr: { ...l.repr, payloadLen: after } };
    after += composedLen([l]);
  }
  return out;
}

/** Random valid stacks, up to two tunnels deep (Routing headers in the outermost IPv6 packet only). */
export const stackArb: fc.Arbitrary<Layer[]> = frameArb(2, { routingInTunnels: true }, true).map(withLengths);
/** The same with Routing headers at any depth. */
const stackWithInnerRoutingArb: fc.Arbitrary<Layer[]> = frameArb(2, { routingInTunnels: true }, true).map(withLengths);
const frameBytesArb = stackArb.map((l) => compose(l));

/** Index of the first tunnel header (VXLAN, Geneve, GRE), or -1. */
const tunnelAt = (layers: readonly Layer[]): number => layers.findIndex((l) => l.kind === 'vxlan' || l.kind === 'geneve' || l.kind === 'gre');

const kinds = (d: Dissection): string => d.layers.map((l) => l.kind).join('/');

/** Layers follow one another without gaps or overlap from `start`; returns where the last one ends. */
function tiledEnd(d: Dissection, start: number): number {
  let p = start;
  for (const l of d.layers) {
    assert.equal(l.off, p, `${l.kind} at ${l.off}, expected ${p} (${kinds(d)})`);
    p += l.len;
  }
  return p;
}

function isDropReason(r: unknown): boolean {
  return typeof r === 'number' && typeof DropReason[r] === 'string';
}

/** dissect and the decoder over `bytes` (guarded: an out-of-frame index throws), checking the shape of what comes back. */
function survives(bytes: Uint8Array): void {
  const g = guarded(bytes);
  const d = dissect(g);
  assert.ok(d.drop === null || isDropReason(d.drop), `drop ${String(d.drop)}`);
  assert.ok(d.dropOff >= 0 && d.dropOff <= bytes.length);
  const end = tiledEnd(d, 0);
  assert.ok(end <= bytes.length);
  decodeLayers(g, d);
  decodeLayers(g);
  for (const link of ['eth', 'raw'] as const) {
    const f = decodeFrame(1, 123n, 'if0', g, bytes.length, link);
    if (f.drop !== undefined) assert.match(f.drop.reason, /^[A-Z][A-Za-z0-9]+$/);
    JSON.stringify(f);
    summarize(f);
  }
}

test('stack: dissect(compose(L)) gives back L, every byte accounted for, every checksum good', () => {
  fc.assert(
    fc.property(stackArb, (layers) => {
      const bytes = compose(layers);
      assert.equal(bytes.length, composedLen(layers));
      const d = dissect(bytes);
      assert.equal(d.drop, null, `dropped ${d.drop === null ? '' : DropReason[d.drop]} at ${d.dropOff}: ${hex(bytes)}`);
      assert.deepStrictEqual(layersOf(d), layers);
      assert.equal(tiledEnd(d, 0), bytes.length);
      for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${l.kind} checksum bad: ${hex(bytes)}`);
      const f = decodeFrame(1, 0n, null, bytes, bytes.length);
      assert.equal(f.drop, undefined);
      assert.ok(!JSON.stringify(f).includes('"bad"'));
    }),
    { numRuns: 400 },
  );
});

test('stack: compose(layersOf(dissect(bytes))) reproduces the bytes; compose and dissect work at an offset in a dirty buffer', () => {
  fc.assert(
    fc.property(frameBytesArb, fc.nat(16), fc.nat(16), (bytes, before, after) => {
      assert.deepStrictEqual(compose(layersOf(dissect(bytes))), bytes);
      // Every field written (dirty buffer), nothing outside [off, off + len) touched, offsets shifted only.
      const buf = dirty(before + bytes.length + after);
      const layers = layersOf(dissect(bytes));
      assert.deepStrictEqual(compose(layers, buf, before), bytes);
      assert.ok(buf.subarray(0, before).every((x) => x === 0xa5) && buf.subarray(before + bytes.length).every((x) => x === 0xa5));
      const d = dissect(buf, before, before + bytes.length);
      assert.equal(d.drop, null);
      assert.equal(tiledEnd(d, before), before + bytes.length);
      assert.deepStrictEqual(layersOf(d), layers);
    }),
    { numRuns: 300 },
  );
});

test('stack: every catalogue frame dissects whole and composes back to its bytes', () => {
  for (const c of CATALOGUE) {
    const bytes = compose(c.layers);
    const d = dissect(bytes);
    assert.equal(d.drop, null, c.name);
    assert.equal(tiledEnd(d, 0), bytes.length, c.name);
    assert.deepStrictEqual(compose(layersOf(d)), bytes, c.name);
    for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${c.name}: ${l.kind}`);
  }
});

test('stack: arbitrary bytes never make dissect or the decoder throw or read outside the frame', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), survives), { numRuns: 500 });
  // Bytes that start like a frame get further than pure noise: Ethernet/IPv4 or IPv6 prefixes, random after.
  const lead = fc.constantFrom('ffffffffffff0200000000010800', 'ffffffffffff02000000000186dd', 'ffffffffffff020000000001810000640800');
  fc.assert(
    fc.property(lead, fc.uint8Array({ maxLength: 120 }), (h, rest) => {
      const b = new Uint8Array(h.length / 2 + rest.length);
      b.set(Uint8Array.from(h.match(/../g)!, (x) => parseInt(x, 16)));
      b.set(rest, h.length / 2);
      survives(b);
    }),
    { numRuns: 500 },
  );
});

test('stack: every truncation of a valid frame is survived', () => {
  fc.assert(
    fc.property(frameBytesArb, (bytes) => {
      for (let cut = 0; cut < bytes.length; cut++) survives(bytes.slice(0, cut));
    }),
    { numRuns: 60 },
  );
  for (const c of CATALOGUE) {
    const bytes = compose(c.layers);
    for (let cut = 0; cut < bytes.length; cut++) survives(bytes.slice(0, cut));
  }
});

test('stack: single- and multi-byte mutations of a valid frame are survived', () => {
  fc.assert(
    fc.property(frameBytesArb, fc.nat(), u8, (bytes, at, x) => {
      const b = bytes.slice();
      b[at % b.length] = x;
      survives(b);
    }),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(frameBytesArb, fc.array(fc.tuple(fc.nat(), u8), { minLength: 2, maxLength: 8 }), (bytes, edits) => {
      const b = bytes.slice();
      for (const [at, x] of edits) b[at % b.length] = x;
      survives(b);
    }),
    { numRuns: 400 },
  );
  // Inner frames mutated or replaced by noise behind valid outer headers (lengths and checksums recomputed).
  fc.assert(
    fc.property(
      stackArb.filter((l) => tunnelAt(l) >= 0),
      fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 4 }),
      fc.uint8Array({ maxLength: 100 }),
      fc.boolean(),
      (layers, edits, noise, useNoise) => {
        const t = tunnelAt(layers);
        const inner = useNoise ? noise : compose(layers.slice(t + 1));
        for (const [at, x] of useNoise ? [] : edits) inner[at % inner.length] = x;
        survives(compose([...layers.slice(0, t + 1), { kind: 'data', bytes: inner }]));
      },
    ),
    { numRuns: 400 },
  );
  // Mutations confined to the headers (the first 120 bytes), where the length fields live.
  fc.assert(
    fc.property(frameBytesArb, fc.array(fc.tuple(fc.nat(119), u8), { minLength: 1, maxLength: 4 }), (bytes, edits) => {
      const b = bytes.slice();
      for (const [at, x] of edits) b[at % b.length] = x;
      survives(b);
    }),
    { numRuns: 400 },
  );
});

/**
 * `d` dissects the first `cut` bytes of the frame `whole` dissects: it stops with a drop reason at or
 * before the cut, or its layers cover exactly the prefix; what it found is what the whole frame has
 * there (from layer `exactFrom` on field by field; a data or ICMP layer may be shorter); and a cut
 * strictly inside a header of the whole frame is always a drop.
 */
function assertCut(whole: Dissection, d: Dissection, cut: number, exactFrom: number, ctx: string): void {
  const end = tiledEnd(d, 0);
  ctx = `${ctx}: ${kinds(d)}`;
  if (d.drop === null) assert.equal(end, cut, `no drop, but the layers cover ${end} bytes: ${ctx}`);
  else assert.ok(d.dropOff <= cut, ctx);
  const want = layersOf(whole);
  const got = layersOf(d);
  d.layers.forEach((l, i) => {
    assert.equal(l.kind, whole.layers[i]?.kind, ctx);
    if (i >= exactFrom && l.kind !== 'data' && l.kind !== 'icmpv4' && l.kind !== 'icmpv6') assert.deepStrictEqual(got[i], want[i], ctx);
  });
  const inside = whole.layers.some((l) => l.kind !== 'data' && l.off < cut && cut < l.off + l.len);
  if (inside) assert.notEqual(d.drop, null, `cut inside a header, no drop: ${ctx}`);
}

test('stack: a frame cut inside a header is a drop, never a silent success', () => {
  fc.assert(
    fc.property(stackArb, (layers) => {
      const bytes = compose(layers);
      const whole = dissect(bytes);
      for (let cut = 0; cut < bytes.length; cut++) assertCut(whole, dissect(guarded(bytes.slice(0, cut))), cut, 0, `cut at ${cut} of ${hex(bytes)}`);
    }),
    { numRuns: 150 },
  );
});

test('stack: a tunnelled frame cut inside an inner header is a drop, behind intact outer headers', () => {
  // Outer lengths (and UDP/GRE checksums) are recomputed around the cut inner frame, so the walk gets past them.
  fc.assert(
    fc.property(
      stackArb.filter((l) => tunnelAt(l) >= 0),
      (layers) => {
        const t = tunnelAt(layers);
        const whole = dissect(compose(layers));
        const inner = compose(layers.slice(t + 1));
        for (let cut = 0; cut < inner.length; cut++) {
          const bytes = compose([...layers.slice(0, t + 1), { kind: 'data', bytes: inner.slice(0, cut) }]);
          const d = dissect(guarded(bytes));
          const ctx = `inner cut at ${cut} of ${hex(bytes)}`;
          assert.ok(d.layers.length > t, ctx);
          for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${l.kind}: ${ctx}`);
          assertCut(whole, d, bytes.length, t + 1, ctx);
        }
      },
    ),
    { numRuns: 150 },
  );
});

test('stack: MAX_LAYERS layers dissect whole; one more is TooManyLayers, with the first MAX_LAYERS kept', () => {
  const nest = (k: number): Layer[] => [
    eth(ETHERTYPE_IPV4),
    ...Array.from({ length: k }, () => [
      ip4('10.0.0.1', '10.0.0.2', IPPROTO_GRE),
      { kind: 'gre', repr: { protocolType: ETHERTYPE_IPV4, checksum: false, key: null, sequence: null } } as Layer,
    ]).flat(),
    ip4('10.0.0.3', '10.0.0.4', IPPROTO_UDP),
    udp(1, 2),
  ];
  const full = [...nest(10), data('x')];
  assert.equal(full.length, MAX_LAYERS);
  const ok = dissect(guarded(compose(full)));
  assert.equal(ok.drop, null);
  assert.equal(ok.layers.length, MAX_LAYERS);
  const deep = nest(11);
  assert.equal(deep.length, MAX_LAYERS + 1);
  const bytes = compose(deep);
  const d = dissect(guarded(bytes));
  assert.equal(d.drop, DropReason.TooManyLayers);
  assert.equal(d.layers.length, MAX_LAYERS);
  assert.equal(d.dropOff, tiledEnd(d, 0));
  survives(bytes);
});

// BUG (src/wire/stack.ts, pseudoFor): compose looks for a Routing header in every layer after the IP
// header, tunnelled packets included, so an outer UDP checksum over IPv6 is computed with the
// destination of a Routing header inside the tunnel; dissect (rightly) uses the outer destination.
test('stack: a Routing header inside a tunnel does not change the outer UDP checksum', () => {
  const a = (n: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? n : 0));
  const v6 = (src: number, dst: number, nextHeader: number): Layer => ({
    kind: 'ipv6',
    repr: { src: a(src), dst: a(dst), nextHeader, hopLimit: 64, trafficClass: 0, flowLabel: 0, payloadLen: 0 },
  });
  const layers: Layer[] = [
    { kind: 'eth', repr: { dst: 0, src: 0, vlans: [], etherType: ETHERTYPE_IPV6 } },
    v6(1, 2, IPPROTO_UDP),
    { kind: 'udp', repr: { srcPort: 1, dstPort: VXLAN_UDP_PORT }, zeroChecksum: false },
    { kind: 'vxlan', repr: { vni: 1 } },
    { kind: 'eth', repr: { dst: 0, src: 0, vlans: [], etherType: ETHERTYPE_IPV6 } },
    v6(3, 4, IPV6_NH_ROUTING),
    // Type 0, segments left 1, one address (::5); next header 59, no next header.
    { kind: 'ipv6ext', repr: { headerType: IPV6_NH_ROUTING, nextHeader: 59, data: Uint8Array.from([0, 1, 0, 0, 0, 0, ...a(5)]) } },
  ];
  const d = dissect(compose(layers));
  assert.equal(d.drop, null);
  assert.deepStrictEqual(
    d.layers.map((l) => l.checksumOk),
    [null, null, true, null, null, null, null],
  );
  fc.assert(
    fc.property(stackWithInnerRoutingArb, (l) => {
      for (const x of dissect(compose(l)).layers) assert.notEqual(x.checksumOk, false, x.kind);
    }),
    { numRuns: 300 },
  );
});

test('stack: firstFragments decodes the transport header of a first fragment (checksum unverifiable), and only there', () => {
  const dgram = compose([ip4('10.0.0.1', '10.0.0.2', IPPROTO_UDP), udp(7000, 7001), data('x'.repeat(600))]).subarray(20);
  const frag = (moreFrags: boolean, fragOffset: number, bytes: Uint8Array): Uint8Array =>
    compose([eth(ETHERTYPE_IPV4), ip4('10.0.0.1', '10.0.0.2', IPPROTO_UDP, { dontFrag: false, moreFrags, fragOffset }), { kind: 'data', bytes }]);
  const first = frag(true, 0, dgram.subarray(0, 304));
  const kinds = (d: Dissection): string[] => d.layers.map((l) => l.kind);
  // The default: the datapath's view, any fragment is data until reassembled.
  assert.deepEqual(kinds(dissect(first)), ['eth', 'ipv4', 'data']);
  const d = dissect(first, 0, first.length, 'eth', { firstFragments: true });
  assert.equal(d.drop, null);
  assert.deepEqual(kinds(d), ['eth', 'ipv4', 'udp', 'data']);
  const u = d.layers[2]!;
  assert.equal(u.checksumOk, null, 'the checksum covers bytes in the later fragment');
  assert.equal(u.partial, true);
  assert.equal(d.layers[3]!.len, 304 - 8, "the fragment's end bounds the payload, not the UDP length");
  // A later fragment stays data; a first fragment too short for the header is a drop with its reason.
  assert.deepEqual(kinds(dissect(frag(false, 304, dgram.subarray(304)), 0, undefined, 'eth', { firstFragments: true })), ['eth', 'ipv4', 'data']);
  const short = frag(true, 0, dgram.subarray(0, 5));
  assert.equal(dissect(short, 0, short.length, 'eth', { firstFragments: true }).drop, DropReason.UdpTruncated, 'a 5-byte UDP header');
});
