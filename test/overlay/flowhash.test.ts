import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { innerFlowHash, packetFlowHash } from '../../src/overlay/flowhash.js';
import { PacketPool } from '../../src/packet/buf.js';
import { TunnelTemplate } from '../../src/overlay/template.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { rng } from '../helpers.js';
import { eth, ip4, ip6, tcp, udp } from '../peers/catalogue.js';

const viewOf = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);
const hashOf = (b: Uint8Array): number => innerFlowHash(viewOf(b), 0, b.length);

/** What identifies a flow. */
interface Flow {
  srcMac: number;
  dstMac: number;
  vids: number[];
  v6: boolean;
  proto: number;
  src4: number;
  dst4: number;
  src6: Uint8Array;
  dst6: Uint8Array;
  sport: number;
  dport: number;
}
/** What may differ between packets of one flow. */
interface Pkt {
  ttl: number;
  ident: number;
  dscp: number;
  ecn: number;
  pcp: number;
  tcpFlags: number;
  payload: Uint8Array;
}

const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const mac = fc.integer({ min: 0, max: 0xffff_ffff_ffff });
const addr6 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const flowArb: fc.Arbitrary<Flow> = fc.record(
  {
    srcMac: mac,
    dstMac: mac,
    vids: fc.array(fc.integer({ min: 0, max: 4095 }), { maxLength: 2 }),
    v6: fc.boolean(),
    proto: fc.constantFrom(6, 17, 132, 1, 47, 58, 255),
    src4: u32,
    dst4: u32,
    src6: addr6,
    dst6: addr6,
    sport: u16,
    dport: u16,
  },
  { noNullPrototype: true },
);
const pktArb: fc.Arbitrary<Pkt> = fc.record(
  {
    ttl: fc.integer({ min: 0, max: 255 }),
    ident: u16,
    dscp: fc.integer({ min: 0, max: 63 }),
    ecn: fc.integer({ min: 0, max: 3 }),
    pcp: fc.integer({ min: 0, max: 7 }),
    tcpFlags: fc.integer({ min: 0, max: 0xff }),
    payload: fc.uint8Array({ maxLength: 64 }),
  },
  { noNullPrototype: true },
);

/** A frame of `flow` with the per-packet fields of `pkt`, lengths and checksums filled in by compose. */
function frame(flow: Flow, pkt: Pkt): Uint8Array {
  const tags = flow.vids.map((vid, i) => ({ tpid: i === 0 && flow.vids.length === 2 ? 0x88a8 : 0x8100, pcp: pkt.pcp, dei: false, vid }));
  const l4: Layer[] = [];
  if (flow.proto === 6) l4.push(tcp(flow.sport, flow.dport, pkt.tcpFlags));
  else if (flow.proto === 17) l4.push(udp(flow.sport, flow.dport));
  else if (flow.proto === 132)
    l4.push({ kind: 'data', bytes: new Uint8Array([flow.sport >>> 8, flow.sport & 0xff, flow.dport >>> 8, flow.dport & 0xff, 0, 0, 0, 1, 0, 0, 0, 0]) });
  const ip: Layer = flow.v6
    ? ip6('::', '::', flow.proto, { src: flow.src6, dst: flow.dst6, hopLimit: pkt.ttl, trafficClass: (pkt.dscp << 2) | pkt.ecn })
    : ip4('0.0.0.0', '0.0.0.0', flow.proto, { src: flow.src4, dst: flow.dst4, ttl: pkt.ttl, ident: pkt.ident, dscp: pkt.dscp, ecn: pkt.ecn });
  return compose([eth(flow.v6 ? 0x86dd : 0x0800, tags, flow.srcMac, flow.dstMac), ip, ...l4, { kind: 'data', bytes: pkt.payload }]);
}

const SIZES: Record<string, number> = {
  getUint8: 1,
  getInt8: 1,
  getUint16: 2,
  getInt16: 2,
  getUint32: 4,
  getInt32: 4,
  getFloat32: 4,
  getFloat64: 8,
  getBigUint64: 8,
  getBigInt64: 8,
};

/**
 * A DataView over `bytes` whose reads throw outside `[off, end)` — tighter than the DataView's own bounds,
 * so a read past the frame but inside the buffer is caught too.
 */
function fenced(bytes: Uint8Array, off: number, end: number): DataView {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return new Proxy(dv, {
    get(t, p) {
      if (p === 'byteLength') return t.byteLength;
      const size = typeof p === 'string' ? SIZES[p] : undefined;
      if (size === undefined) {
        if (typeof p === 'string' && p.startsWith('set')) throw new RangeError(`write through ${p}`);
        const v: unknown = Reflect.get(t, p, t);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      }
      return (o: number) => {
        if (!(o >= off && o + size <= end)) throw new RangeError(`${String(p)}(${o}) outside [${off}, ${end})`);
        return (t as unknown as Record<string, (o: number) => number>)[p as string]!.call(t, o);
      };
    },
  });
}

const guarded = (b: Uint8Array): DataView => fenced(b, 0, b.length);

test('flow hash: deterministic, a 32-bit integer (signed, so V8 never boxes it), and independent of where the frame sits', () => {
  fc.assert(
    fc.property(flowArb, pktArb, fc.integer({ min: 0, max: 64 }), (flow, pkt, at) => {
      const f = frame(flow, pkt);
      const h = hashOf(f);
      assert.ok(Number.isInteger(h) && h >= -0x8000_0000 && h <= 0x7fff_ffff);
      assert.equal(hashOf(f.slice()), h);
      const big = new Uint8Array(at + f.length + 16).fill(0x5a);
      big.set(f, at);
      assert.equal(innerFlowHash(viewOf(big), at, at + f.length), h);
    }),
    { numRuns: 300 },
  );
});

test('flow hash: packets of one flow share it whatever their payload, TTL, IP id, DSCP/ECN, PCP, TCP flags and checksums', () => {
  fc.assert(
    fc.property(flowArb, pktArb, pktArb, (flow, a, b) => {
      assert.equal(hashOf(frame(flow, a)), hashOf(frame(flow, b)));
    }),
    { numRuns: 500 },
  );
});

type Field = 'src' | 'dst' | 'sport' | 'dport' | 'proto' | 'vid';

/** `flow` with one field changed to a value derived from `x`; null when the change would be no change. */
function changed(flow: Flow, field: Field, x: number, a6: Uint8Array): Flow | null {
  const g = { ...flow, vids: [...flow.vids] };
  switch (field) {
    case 'src':
      if (flow.v6) g.src6 = a6;
      else g.src4 = x >>> 0;
      break;
    case 'dst':
      if (flow.v6) g.dst6 = a6;
      else g.dst4 = x >>> 0;
      break;
    case 'sport':
      if (![6, 17, 132].includes(flow.proto)) return null;
      g.sport = x & 0xffff;
      break;
    case 'dport':
      if (![6, 17, 132].includes(flow.proto)) return null;
      g.dport = x & 0xffff;
      break;
    case 'proto':
      g.proto = [6, 17, 132, 1, 47, 58, 255][x % 7]!;
      break;
    case 'vid':
      if (g.vids.length === 0) return null;
      g.vids[x % g.vids.length] = x & 0x0fff;
      break;
  }
  return JSON.stringify(g, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v)) ===
    JSON.stringify(flow, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v))
    ? null
    : g;
}

test("flow hash: changing any one of the addresses, ports, protocol or VLAN ID changes it; an IP packet's MACs do not", () => {
  fc.assert(
    fc.property(flowArb, pktArb, mac, mac, (flow, pkt, s, d) => {
      assert.equal(hashOf(frame({ ...flow, srcMac: s, dstMac: d }, pkt)), hashOf(frame(flow, pkt)));
    }),
    { numRuns: 300 },
  );
  const fields: Field[] = ['src', 'dst', 'sport', 'dport', 'proto', 'vid'];
  fc.assert(
    fc.property(flowArb, pktArb, fc.constantFrom(...fields), fc.integer({ min: 0, max: 2 ** 48 - 1 }), addr6, (flow, pkt, field, x, a6) => {
      const g = changed(flow, field, x, a6);
      fc.pre(g !== null);
      assert.notEqual(hashOf(frame(g!, pkt)), hashOf(frame(flow, pkt)), field);
    }),
    { numRuns: 2000 },
  );
});

test('flow hash: an IPv4 fragment is hashed without ports, so every fragment of a datagram gets one hash', () => {
  fc.assert(
    fc.property(flowArb, pktArb, u32, fc.boolean(), fc.integer({ min: 0, max: 0x1fff }), (flow, pkt, junk, mf, offset) => {
      fc.pre(mf || offset !== 0);
      const f = frame({ ...flow, v6: false, vids: [], proto: 17 }, pkt);
      const first = f.slice();
      first[14 + 6] = (mf ? 0x20 : 0) | (offset >>> 8);
      first[14 + 7] = offset & 0xff;
      const later = first.slice();
      // A later fragment has payload where the ports were.
      later.set([junk >>> 24, (junk >>> 16) & 0xff, (junk >>> 8) & 0xff, junk & 0xff], 14 + 20);
      assert.equal(hashOf(later), hashOf(first));
      // Not fragmented (DF alone does not count): the ports matter.
      const unfrag = (x: Uint8Array): Uint8Array => {
        const y = x.slice();
        y[14 + 6] = 0x40;
        y[14 + 7] = 0;
        return y;
      };
      const samePorts = first[34] === later[34] && first[35] === later[35] && first[36] === later[36] && first[37] === later[37];
      if (!samePorts) assert.notEqual(hashOf(unfrag(later)), hashOf(unfrag(first)));
    }),
    { numRuns: 300 },
  );
});

test('flow hash: IPv6 extension headers are not walked; non-IP frames hash the MACs and EtherType', () => {
  const pkt: Pkt = { ttl: 64, ident: 0, dscp: 0, ecn: 0, pcp: 0, tcpFlags: 0, payload: new Uint8Array(8) };
  const flow: Flow = {
    srcMac: 1,
    dstMac: 2,
    vids: [],
    v6: true,
    proto: 0,
    src4: 0,
    dst4: 0,
    src6: new Uint8Array(16).fill(1),
    dst6: new Uint8Array(16).fill(2),
    sport: 1,
    dport: 2,
  };
  const a = frame(flow, pkt);
  const b = frame(flow, { ...pkt, payload: new Uint8Array(8).fill(9) });
  assert.equal(hashOf(a), hashOf(b), 'bytes behind a hop-by-hop next header are payload');
  const arp = compose([eth(0x0806, [], 1, 2), { kind: 'data', bytes: new Uint8Array(28).fill(3) }]);
  const arp2 = compose([eth(0x0806, [], 1, 2), { kind: 'data', bytes: new Uint8Array(28).fill(4) }]);
  const other = compose([eth(0x88cc, [], 1, 2), { kind: 'data', bytes: new Uint8Array(28).fill(3) }]);
  assert.equal(hashOf(arp), hashOf(arp2));
  assert.notEqual(hashOf(arp), hashOf(other));
  // Without IP addresses the MACs are what tells flows apart.
  fc.assert(
    fc.property(mac, mac, mac, (s, d, x) => {
      fc.pre(x !== s);
      assert.notEqual(
        hashOf(compose([eth(0x0806, [], s, d), { kind: 'data', bytes: new Uint8Array(28) }])),
        hashOf(compose([eth(0x0806, [], x, d), { kind: 'data', bytes: new Uint8Array(28) }])),
      );
    }),
    { numRuns: 300 },
  );
});

/** Frames that look like Ethernet + IP as far as the version nibble, then arbitrary: reaches every branch. */
const plausibleArb = fc
  .tuple(
    fc.uint8Array({ minLength: 12, maxLength: 12 }),
    fc.array(fc.tuple(fc.constantFrom(0x8100, 0x88a8), u16), { maxLength: 3 }),
    fc.constantFrom(0x0800, 0x86dd, 0x0806, 0x8100),
    fc.integer({ min: 0, max: 255 }),
    fc.uint8Array({ maxLength: 80 }),
  )
  .map(([macs, tags, et, first, rest]) => {
    const out = [...macs];
    for (const [tpid, tci] of tags) out.push(tpid >>> 8, tpid & 0xff, tci >>> 8, tci & 0xff);
    out.push(et >>> 8, et & 0xff, first, ...rest);
    return new Uint8Array(out);
  });
const anyFrameArb = fc.oneof(
  plausibleArb,
  fc.uint8Array({ maxLength: 100 }),
  flowArb.chain((f) => pktArb.map((p) => frame(f, p))),
);

test('flow hash: truncated and random frames never throw and never read outside [off, end)', () => {
  fc.assert(
    fc.property(anyFrameArb, fc.nat(), fc.nat(), (bytes, i, j) => {
      // Every prefix, through guarded(): a read at or past the cut throws.
      for (let cut = 0; cut <= bytes.length; cut++) {
        const h = innerFlowHash(guarded(bytes.subarray(0, cut)), 0, cut);
        assert.ok(Number.isInteger(h) && h >= -0x8000_0000 && h <= 0x7fff_ffff);
      }
      // A window inside a larger array, fenced on both sides.
      const off = bytes.length === 0 ? 0 : i % bytes.length;
      const end = off + (bytes.length === off ? 0 : j % (bytes.length - off + 1));
      const h = innerFlowHash(fenced(bytes, off, end), off, end);
      assert.equal(h, hashOf(bytes.slice(off, end)));
    }),
    { numRuns: 400 },
  );
  // Nonsense bounds are clamped, not trusted.
  const b = new Uint8Array(40).fill(0x45);
  for (const [off, end] of [
    [-5, 10],
    [30, 10],
    [0, 1000],
    [NaN, NaN],
    [50, 60],
  ] as const) {
    assert.doesNotThrow(() => innerFlowHash(guarded(b), off, end));
  }
  assert.equal(innerFlowHash(guarded(b), 0, 1000), hashOf(b));
});

/**
 * The hash as the module comment describes it, written plainly from bytes: lanes (xorshift, multiply by the
 * lane's constant) summed from the seed and finished with fmix32. The implementation has a straight-line
 * path for untagged IPv4 and a general walk; both must give this.
 */
function referenceHash(f: Uint8Array): number {
  const byte = (o: number): number => (o < f.length ? f[o]! : 0);
  const word = (o: number): number => (byte(o) << 24) | (byte(o + 1) << 16) | (byte(o + 2) << 8) | byte(o + 3);
  const lane = (w: number, k: number): number => Math.imul(w ^ (w >>> 15), k);
  let h = 0x5e1e_f10b;
  let p = 12;
  for (let tags = 0; tags < 2 && (word(p) >>> 16 === 0x8100 || word(p) >>> 16 === 0x88a8); tags++, p += 4) {
    h = (h + lane(word(p) & 0xffff_0fff, tags === 0 ? 0x5bd1_e995 : 0x27d4_eb2f)) | 0;
  }
  const et = word(p) >>> 16;
  const l3 = p + 2;
  const version = l3 < f.length ? f[l3]! >>> 4 : 0;
  let proto = 0;
  let addr = 0;
  let addrEnd = 12;
  let l4 = -1;
  if (et === 0x0800 && version === 4) {
    proto = byte(l3 + 9);
    [addr, addrEnd] = [l3 + 12, l3 + 20];
    const ihl = (f[l3]! & 0x0f) * 4;
    if (ihl >= 20 && ((byte(l3 + 6) << 8) | byte(l3 + 7)) % 0x4000 === 0) l4 = l3 + ihl;
  } else if (et === 0x86dd && version === 6) {
    proto = byte(l3 + 6);
    [addr, addrEnd, l4] = [l3 + 8, l3 + 40, l3 + 40];
  }
  h = (h + lane((et << 16) | proto, 0x1656_67b1)) | 0;
  for (let o = addr, k = 0x85eb_ca6b; o < addrEnd; o += 4, k = (k + 0x3c6e_f372) | 0) h = (h + lane(word(o), k)) | 0;
  if (l4 >= 0 && [6, 17, 132].includes(proto)) h = (h + lane(word(l4), 0xc2b2_ae35 | 0)) | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  return h ^ (h >>> 16);
}

test('flow hash: equals the documented formula on any frame, through a DataView and through a packet buffer', () => {
  const pool = new PacketPool({ count: 1, frameCapacity: 256 });
  const ipv4Options = flowArb.chain((f) =>
    pktArb.map((p) => {
      // The same flow with 4 bytes of IPv4 options: off the straight-line path.
      const x = frame({ ...f, v6: false, vids: [] }, p);
      const y = new Uint8Array(x.length + 4);
      y.set(x.subarray(0, 34));
      y.set([1, 1, 1, 0], 34);
      y.set(x.subarray(34), 38);
      y[14] = 0x46;
      return y;
    }),
  );
  fc.assert(
    fc.property(fc.oneof(anyFrameArb, ipv4Options), (bytes) => {
      const want = referenceHash(bytes);
      assert.equal(hashOf(bytes), want);
      const p = pool.alloc()!;
      p.load(bytes);
      assert.equal(packetFlowHash(p), want);
      p.release();
    }),
    { numRuns: 1000 },
  );
});

/**
 * Fills 16,384 source ports from 65,536 flows (4 a port on average); the counts must look like balls in
 * bins. For a uniform hash the chi-square statistic is about 16,383 ± 181 and the fullest port holds
 * about 13 (P(any port ≥ 20) < 1e-5); a hash whose high bits are weak fails both by far.
 */
function assertSpread(name: string, fill: (f: Uint8Array, k: number) => void, f: Uint8Array): void {
  const t = new TunnelTemplate({ kind: 'vxlan', srcMac: 1, dstMac: 2, underlay: { family: 4, src: 1, dst: 2 }, vni: 1 });
  const ports = 16384;
  const flows = 65536;
  const count = new Uint32Array(ports);
  for (let k = 0; k < flows; k++) {
    fill(f, k);
    count[t.srcPort(hashOf(f)) - 49152]!++;
  }
  const mean = flows / ports;
  let chi2 = 0;
  let max = 0;
  let empty = 0;
  for (const c of count) {
    chi2 += (c - mean) ** 2 / mean;
    max = Math.max(max, c);
    if (c === 0) empty++;
  }
  assert.ok(chi2 < ports - 1 + 5 * Math.sqrt(2 * (ports - 1)), `${name}: chi-square ${chi2.toFixed(0)}`);
  assert.ok(max < 20, `${name}: a port holds ${max} flows`);
  // Poisson(4) leaves e^-4 ≈ 1.8% of ports empty: 300 ± 17.
  assert.ok(empty > 200 && empty < 400, `${name}: ${empty} ports unused`);
}

test('flow hash: 65,536 flows spread near-uniformly over 16,384 source ports', () => {
  const base = (v6: boolean, proto: number): Uint8Array =>
    frame(
      {
        srcMac: 0x0a0000000001,
        dstMac: 0x0a0000000002,
        vids: [],
        v6,
        proto,
        src4: 0x0af40105,
        dst4: 0x0af40207,
        src6: new Uint8Array(16).fill(0xfd),
        dst6: new Uint8Array(16).fill(0xfe),
        sport: 40000,
        dport: 443,
      },
      { ttl: 64, ident: 0, dscp: 0, ecn: 0, pcp: 0, tcpFlags: 0x10, payload: new Uint8Array(10) },
    );
  const wr = (f: Uint8Array, o: number, v: number, n: number): void => {
    for (let i = n - 1; i >= 0; i--, v = Math.floor(v / 256)) f[o + i] = v & 0xff;
  };
  const rnd = rng(0x5eed);
  // Random IPv4 5-tuples.
  assertSpread(
    'random ipv4 5-tuples',
    (f, _k) => {
      wr(f, 26, rnd(), 4);
      wr(f, 30, rnd(), 4);
      f[23] = [6, 17, 132][rnd() % 3]!;
      wr(f, 34, rnd(), 4);
    },
    base(false, 6),
  );
  // Random IPv6 5-tuples.
  assertSpread(
    'random ipv6 5-tuples',
    (f, _k) => {
      for (let o = 22; o < 54; o += 4) wr(f, o, rnd(), 4);
      wr(f, 54, rnd(), 4);
    },
    base(true, 17),
  );
  // The realistic worst case: one client, one server, connections differing only in source port.
  assertSpread('sequential source ports', (f, k) => wr(f, 34, k, 2), base(false, 6));
  // Many clients of one service, addresses from one /16.
  assertSpread('sequential addresses', (f, k) => wr(f, 28, k, 2), base(false, 17));
});
