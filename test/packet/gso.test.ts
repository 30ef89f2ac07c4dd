/**
 * Super-frame segmentation and coalescing (packet/gso.ts). Checksums are recomputed here with a plain
 * RFC 1071 sum of our own (not wire/checksum.ts), and header fields read at offsets the test knows from
 * how it built the frame; tshark checks the segments as a peer at the end.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { PacketBatch, PacketPool, type PacketBuf } from '../../src/packet/buf.js';
import { Coalescer, GSO_MAX_SEGMENTS, GsoStats, segment } from '../../src/packet/gso.js';
import { VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP, VNET_GSO_UDP_L4 } from '../../src/packet/vnet.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpOption } from '../../src/wire/tcp.js';
import { requireTool, rng, run } from '../helpers.js';
import { eth, ip4, ip6 } from '../peers/catalogue.js';
import { writePcap } from '../peers/tshark-json.js';

// --- an independent checksum -------------------------------------------------------------------

function sum16(b: Uint8Array, off: number, len: number, s = 0): number {
  for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
  return s;
}
function fold16(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 65536);
  return s;
}
function pseudo(b: Uint8Array, l3: number, v4: boolean, proto: number, len: number): number {
  return v4 ? sum16(b, l3 + 12, 8, proto + len) : sum16(b, l3 + 8, 32, proto + (len >>> 16) + (len & 0xffff));
}
const be16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const be32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

// --- super-frames as a TAP hands them over -------------------------------------------------------

interface Spec {
  v4: boolean;
  vlan: boolean;
  udp: boolean;
  len: number;
  seed: number;
  /** The super-frame's gsoSize. */
  mss: number;
  /** What the path allows (segment's maxPayload). */
  path: number;
  /** Flags besides ACK. */
  flags: number;
  ts: boolean;
  ident: number;
  dontFrag: boolean;
  tos: number;
  ttl: number;
  seq: number;
  ack: number;
  window: number;
}

/** Where the headers are in a frame built from `s` (offsets from the frame's start). */
function layout(s: Spec): { l3: number; l4: number; hdrs: number } {
  const l3 = s.vlan ? 18 : 14;
  const l4 = l3 + (s.v4 ? 20 : 40);
  return { l3, l4, hdrs: l4 + (s.udp ? 8 : s.ts ? 32 : 20) };
}

function payloadOf(s: Spec): Uint8Array {
  const r = rng(s.seed);
  const b = new Uint8Array(s.len);
  for (let i = 0; i < b.length; i++) b[i] = r() & 0xff;
  return b;
}

const TS: TcpOption[] = [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamps', tsval: 0x11223344, tsecr: 0x55667788 }];

function layers(s: Spec, payload: Uint8Array): Layer[] {
  const proto = s.udp ? 17 : 6;
  const ip = s.v4
    ? ip4('10.244.1.10', '10.244.2.20', proto, { ident: s.ident, dontFrag: s.dontFrag, dscp: s.tos >>> 2, ecn: s.tos & 3, ttl: s.ttl })
    : ip6('fd00:244:1::10', 'fd00:244:2::20', proto, { trafficClass: s.tos, flowLabel: 0x12345, hopLimit: s.ttl });
  const l4: Layer = s.udp
    ? { kind: 'udp', repr: { srcPort: 40000, dstPort: 5201 }, zeroChecksum: false }
    : {
        kind: 'tcp',
        repr: { srcPort: 40000, dstPort: 5201, seq: s.seq, ack: s.ack, flags: TCP_ACK | s.flags, window: s.window, urgent: 0, options: s.ts ? TS : [] },
      };
  return [eth(s.v4 ? 0x0800 : 0x86dd, s.vlan ? [{ tpid: 0x8100, pcp: 3, dei: false, vid: 42 }] : []), ip, l4, { kind: 'data', bytes: payload }];
}

/**
 * The super-frame of `s` as a TAP gives it: gsoType, gsoSize, exact hdrLen, and NEEDS_CSUM with the
 * pseudo-header sum in the checksum field (what tcp_v4_send_check leaves there).
 */
function superFrame(s: Spec, pool: PacketPool, payload = payloadOf(s)): PacketBuf {
  const p = pool.alloc()!;
  assert.ok(p.load(compose(layers(s, payload))));
  const { l3, l4, hdrs } = layout(s);
  const d = p.data;
  const at = p.start + l4 + (s.udp ? 6 : 16);
  const f = fold16(pseudo(d, p.start + l3, s.v4, s.udp ? 17 : 6, p.end - p.start - l4));
  d[at] = f >>> 8;
  d[at + 1] = f & 0xff;
  p.gsoType = s.udp ? VNET_GSO_UDP_L4 : (s.v4 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6) | ((s.flags & TCP_CWR) !== 0 ? VNET_GSO_ECN : 0);
  p.gsoSize = s.mss;
  p.hdrLen = hdrs;
  p.csumStart = p.start + l4;
  p.csumOffset = s.udp ? 6 : 16;
  p.inPort = 3;
  p.flowHash = 0xabcdef;
  p.traced = true;
  return p;
}

/** Segment payload size `segment` uses for `s`. */
const segSize = (s: Spec): number => (s.udp ? s.mss : Math.min(s.mss, s.path));

const specArb = (o: { udp?: boolean; maxSegments?: number } = {}): fc.Arbitrary<Spec> =>
  fc
    .record(
      {
        v4: fc.boolean(),
        vlan: fc.boolean(),
        udp: o.udp === undefined ? fc.boolean() : fc.constant(o.udp),
        len: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 3000, max: 20000 }), fc.integer({ min: 60000, max: 65000 })),
        seed: fc.integer({ min: 1, max: 0x7fffffff }),
        mss: fc.integer({ min: 1, max: 9000 }),
        path: fc.integer({ min: 1, max: 9000 }),
        flags: fc.subarray([TCP_PSH, TCP_FIN, TCP_CWR, TCP_ECE]).map((xs) => xs.reduce((a, x) => a | x, 0)),
        ts: fc.boolean(),
        ident: fc.integer({ min: 0, max: 0xffff }),
        dontFrag: fc.boolean(),
        tos: fc.integer({ min: 0, max: 255 }),
        ttl: fc.integer({ min: 1, max: 255 }),
        seq: fc.integer({ min: 0, max: 0xffffffff }),
        ack: fc.integer({ min: 0, max: 0xffffffff }),
        window: fc.integer({ min: 0, max: 0xffff }),
      },
      { noNullPrototype: true },
    )
    .map((s) => {
      // At most `maxSegments` segments: sizes grow with the payload.
      const least = Math.ceil(s.len / (o.maxSegments ?? 60));
      return { ...s, mss: Math.max(s.mss, least), path: Math.max(s.path, least) };
    });

// One pool of super-frame-sized buffers and one of jumbo-frame ones (segments may come from either).
const big = new PacketPool({ count: 80, frameCapacity: 65536 });
const small = new PacketPool({ count: 80, frameCapacity: 9216 });

/** A 4-segment IPv4 TCP super-frame with timestamps, PSH on its end. */
const base: Spec = {
  v4: true,
  vlan: false,
  udp: false,
  len: 4 * 1448,
  seed: 5,
  mss: 1448,
  path: 1448,
  flags: TCP_PSH,
  ts: true,
  ident: 100,
  dontFrag: true,
  tos: 0,
  ttl: 64,
  seq: 1000,
  ack: 77,
  window: 501,
};
const list = (b: PacketBatch): PacketBuf[] => b.pkts.slice(0, b.length);
const bytesOf = (p: PacketBuf): Buffer => Buffer.from(p.data.subarray(p.start, p.end));

function releaseAll(b: PacketBatch): void {
  for (let i = 0; i < b.length; i++) b.get(i).release();
  b.clear();
}

/** Every check on the segments of `s` (original bytes `orig`), independent of gso.ts. */
function checkSegments(s: Spec, orig: Uint8Array, out: PacketBatch, from: number): void {
  const { l3, l4, hdrs } = layout(s);
  const size = segSize(s);
  const payload = orig.subarray(hdrs);
  const n = out.length - from;
  assert.equal(n, Math.max(1, Math.ceil(payload.length / size)), 'segment count');
  let off = 0;
  for (let i = 0; i < n; i++) {
    const q = out.get(from + i);
    const b = q.data.subarray(q.start, q.end);
    const len = b.length - hdrs;
    const last = i === n - 1;
    assert.ok(len >= 0 && len <= size, `segment ${i}: ${len} payload bytes, at most ${size}`);
    if (!last) assert.equal(len, size, `segment ${i} is full`);
    // Offload fields cleared, metadata and layer offsets set.
    assert.deepEqual([q.gsoType, q.gsoSize, q.csumStart, q.inPort, q.flowHash, q.traced], [VNET_GSO_NONE, 0, -1, 3, 0xabcdef, true]);
    assert.deepEqual([q.l2, q.l3, q.l4], [q.start, q.start + l3, q.start + l4]);
    // The payload, in order.
    assert.ok(Buffer.from(b.subarray(hdrs)).equals(Buffer.from(payload.subarray(off, off + len))), `segment ${i} payload`);
    // IP: lengths, identification, header checksum; the rest of the header as it was.
    if (s.v4) {
      assert.equal(be16(b, l3 + 2), b.length - l3, 'IPv4 total length');
      assert.equal(be16(b, l3 + 4), (s.ident + i) & 0xffff, 'IPv4 identification');
      assert.equal(fold16(sum16(b, l3, 20)), 0xffff, `segment ${i}: IPv4 header checksum`);
      assert.deepEqual(
        [...b.subarray(l3 + 6, l3 + 10), ...b.subarray(l3 + 12, l3 + 20)],
        [...orig.subarray(l3 + 6, l3 + 10), ...orig.subarray(l3 + 12, l3 + 20)],
      );
    } else {
      assert.equal(be16(b, l3 + 4), b.length - l4, 'IPv6 payload length');
      assert.deepEqual([...b.subarray(l3 + 6, l3 + 40)], [...orig.subarray(l3 + 6, l3 + 40)]);
    }
    assert.deepEqual([...b.subarray(0, l3 + 2)], [...orig.subarray(0, l3 + 2)], 'Ethernet header and first IP bytes');
    // Transport: checksum over the pseudo-header and the segment.
    const proto = s.udp ? 17 : 6;
    assert.equal(fold16(sum16(b, l4, b.length - l4, pseudo(b, l3, s.v4, proto, b.length - l4))), 0xffff, `segment ${i}: ${s.udp ? 'UDP' : 'TCP'} checksum`);
    if (s.udp) {
      assert.equal(be16(b, l4 + 4), b.length - l4, 'UDP length');
      assert.notEqual(be16(b, l4 + 6), 0, 'UDP checksum present');
    } else {
      assert.equal(be32(b, l4 + 4), (s.seq + off) >>> 0, `segment ${i}: sequence number`);
      const f = b[l4 + 13]!;
      const want = (TCP_ACK | s.flags) & ~(last ? 0 : TCP_PSH | TCP_FIN) & ~(i === 0 ? 0 : TCP_CWR);
      assert.equal(f, want, `segment ${i} of ${n}: flags ${f.toString(16)} want ${want.toString(16)}`);
      // Ports, ack, offset, window, urgent, options unchanged.
      assert.deepEqual(
        [...b.subarray(l4, l4 + 4), ...b.subarray(l4 + 8, l4 + 13), ...b.subarray(l4 + 14, l4 + 16), ...b.subarray(l4 + 18, hdrs)],
        [...orig.subarray(l4, l4 + 4), ...orig.subarray(l4 + 8, l4 + 13), ...orig.subarray(l4 + 14, l4 + 16), ...orig.subarray(l4 + 18, hdrs)],
      );
    }
    off += len;
  }
  assert.equal(off, payload.length, 'every payload byte once');
}

test('gso: every segment is a complete frame — lengths, ids, sequence numbers, flags, payload, checksums verify (TCP/UDP, IPv4/IPv6, with/without a tag)', () => {
  const stats = new GsoStats();
  const out = new PacketBatch(128);
  fc.assert(
    fc.property(specArb(), fc.boolean(), (s, fromSmall) => {
      const pool = fromSmall ? small : big;
      const before = [big.available, small.available];
      const p = superFrame(s, big);
      const orig = p.data.slice(p.start, p.end);
      const r = segment(p, s.path, pool, out, stats);
      assert.ok(r > 0, `segment returned ${r} (${DropReason[-r]})`);
      checkSegments(s, orig, out, 0);
      // The super-frame itself is left as it was.
      assert.ok(Buffer.from(p.data.subarray(p.start, p.end)).equals(Buffer.from(orig)));
      p.release();
      releaseAll(out);
      assert.deepEqual([big.available, small.available], before);
    }),
    { numRuns: 150 },
  );
  assert.ok(stats.superFrames === 150 && stats.segments >= 150);
});

test("gso: with an MTU, every TCP segment's IP datagram fits it, whatever the headers; UDP datagrams keep the sender's size", () => {
  const stats = new GsoStats();
  const out = new PacketBatch(128);
  fc.assert(
    fc.property(specArb(), fc.integer({ min: 200, max: 9000 }), (s, mtu) => {
      const { l3, hdrs } = layout(s);
      // The MTU bound is the tighter one; the segment count stays within the pools.
      const size = Math.min(s.mss, s.path, mtu - (hdrs - l3));
      if (!s.udp && Math.ceil(s.len / size) > 60) return;
      const p = superFrame(s, big);
      const orig = p.data.slice(p.start, p.end);
      assert.ok(segment(p, s.path, big, out, stats, mtu) > 0);
      checkSegments({ ...s, path: s.udp ? s.path : size }, orig, out, 0);
      if (!s.udp) for (const q of list(out)) assert.ok(q.end - q.start - l3 <= mtu);
      p.release();
      releaseAll(out);
    }),
    { numRuns: 100 },
  );
  const p = superFrame({ ...base, len: 6 }, big);
  assert.equal(segment(p, 1448, big, out, stats, 52), -DropReason.GsoBadSize, 'no room for payload under a 52-byte MTU with 52 bytes of headers');
  assert.equal(segment(p, 1448, big, out, stats, 53), 6);
  releaseAll(out);
  p.release();
  assert.deepEqual([big.available, small.available], [big.size, small.size]);
});

test('gso: a frame that is not a super-frame is left alone (0 segments); a super-frame of one segment gives one with its checksum complete', () => {
  const stats = new GsoStats();
  const out = new PacketBatch(4);
  const s: Spec = {
    v4: true,
    vlan: false,
    udp: false,
    len: 100,
    seed: 1,
    mss: 1448,
    path: 1448,
    flags: TCP_PSH,
    ts: false,
    ident: 7,
    dontFrag: true,
    tos: 0,
    ttl: 64,
    seq: 1,
    ack: 2,
    window: 100,
  };
  const p = superFrame(s, big);
  const orig = p.data.slice(p.start, p.end);
  p.gsoType = VNET_GSO_NONE;
  assert.equal(segment(p, 1000, big, out, stats), 0);
  assert.equal(out.length, 0);
  p.gsoType = VNET_GSO_TCPV4;
  assert.equal(segment(p, 1000, big, out, stats), 1);
  checkSegments(s, orig, out, 0);
  releaseAll(out);
  p.release();
  assert.deepEqual([stats.superFrames, stats.segments], [1, 1]);
});

test('gso: segment then coalesce is the identity on the headers and the payload stream (TCP, IPv4/IPv6, tags, flags, options, ids)', () => {
  const stats = new GsoStats();
  const segs = new PacketBatch(128);
  const out = new PacketBatch(128);
  const co = new Coalescer(big, stats);
  fc.assert(
    fc.property(specArb({ udp: false }), fc.boolean(), (s, fromSmall) => {
      const before = [big.available, small.available];
      const p = superFrame(s, big);
      const orig = p.data.slice(p.start, p.end);
      const meta = [p.gsoType, p.gsoSize, p.hdrLen, p.csumStart - p.start, p.csumOffset];
      const n = segment(p, s.path, fromSmall ? small : big, segs, stats);
      p.release();
      assert.ok(n > 0);
      for (let i = 0; i < segs.length; i++) co.push(segs.get(i), out);
      segs.clear();
      co.flush(out);
      assert.equal(co.holding, 0);
      const { l4, hdrs } = layout(s);
      if (n === 1) {
        // One segment stays a plain frame: the original with its checksum completed, no offload.
        assert.equal(out.length, 1);
        const q = out.get(0);
        assert.deepEqual([q.gsoType, q.csumStart], [VNET_GSO_NONE, -1]);
        const b = q.data.slice(q.start, q.end);
        assert.ok(
          Buffer.from(b.subarray(0, l4 + 16)).equals(Buffer.from(orig.subarray(0, l4 + 16))) &&
            Buffer.from(b.subarray(l4 + 18)).equals(Buffer.from(orig.subarray(l4 + 18))),
        );
      } else {
        // At most 64 segments make one super-frame again: byte for byte, with the same offload fields.
        assert.equal(out.length, Math.ceil(n / GSO_MAX_SEGMENTS));
        const q = out.get(0);
        const b = q.data.subarray(q.start, q.end);
        if (n <= GSO_MAX_SEGMENTS) {
          assert.ok(Buffer.from(b).equals(Buffer.from(orig)), 'coalesced super-frame equals the original');
          assert.deepEqual([q.gsoType, q.gsoSize, q.hdrLen, q.csumStart - q.start, q.csumOffset], [meta[0], segSize(s), meta[2], meta[3], meta[4]]);
          assert.deepEqual([q.l2, q.l3, q.l4], [q.start, q.start + layout(s).l3, q.start + l4]);
        }
        let stream = 0;
        for (let i = 0; i < out.length; i++) {
          const o = out.get(i);
          stream += o.end - o.start - hdrs;
        }
        assert.equal(stream, s.len);
      }
      releaseAll(out);
      assert.deepEqual([big.available, small.available], before, 'no buffer leaked');
    }),
    { numRuns: 150 },
  );
  assert.ok(stats.coalesced > 0 && stats.coalescedSegments > stats.coalesced);
});

test('gso: more than 64 segments coalesce into several super-frames whose payloads concatenate to the original', () => {
  const stats = new GsoStats();
  const s: Spec = {
    v4: false,
    vlan: true,
    udp: false,
    len: 20000,
    seed: 9,
    mss: 100,
    path: 100,
    flags: TCP_PSH,
    ts: true,
    ident: 0,
    dontFrag: true,
    tos: 0,
    ttl: 64,
    seq: 0xffffff00,
    ack: 5,
    window: 512,
  };
  const pool = new PacketPool({ count: 260, frameCapacity: 65536 });
  const segs = new PacketBatch(256);
  const out = new PacketBatch(256);
  const p = superFrame(s, pool);
  const orig = p.data.slice(p.start, p.end);
  assert.equal(segment(p, 100, pool, segs, stats), 200);
  p.release();
  const co = new Coalescer(pool, stats);
  for (let i = 0; i < segs.length; i++) co.push(segs.get(i), out);
  co.flush(out);
  assert.equal(out.length, 4);
  const { hdrs, l4 } = layout(s);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < out.length; i++) {
    const q = out.get(i);
    assert.equal(q.gsoType, VNET_GSO_TCPV6);
    assert.equal(be32(q.data, q.start + l4 + 4), (s.seq + i * 6400) >>> 0, 'sequence numbers wrap');
    parts.push(q.data.slice(q.start + hdrs, q.end));
  }
  assert.ok(Buffer.concat(parts).equals(Buffer.from(orig.subarray(hdrs))));
  assert.equal(out.get(3).data[out.get(3).start + l4 + 13]! & TCP_PSH, TCP_PSH, 'PSH on the last super-frame');
  assert.equal(out.get(0).data[out.get(0).start + l4 + 13]! & TCP_PSH, 0);
  releaseAll(out);
  assert.equal(pool.available, pool.size);
});

// --- malformed super-frames ------------------------------------------------------------------

type Damage =
  | 'truncate'
  | 'gsoSize0'
  | 'hdrLenShort'
  | 'hdrLenLong'
  | 'csumStart'
  | 'ipv6ExtHeader'
  | 'tcpTypeOnUdp'
  | 'familyType'
  | 'ufo'
  | 'ipTotalLen'
  | 'udpLen'
  | 'tcpDataOffset'
  | 'notIp'
  | 'ipv4Fragment'
  | 'maxPayload0'
  | 'randomBytes';

test('gso: malformed super-frames are dropped with a reason, never throw, and leave the pools as they were', () => {
  const stats = new GsoStats();
  const out = new PacketBatch(128);
  const kinds: Damage[] = [
    'truncate',
    'gsoSize0',
    'hdrLenShort',
    'hdrLenLong',
    'csumStart',
    'ipv6ExtHeader',
    'tcpTypeOnUdp',
    'familyType',
    'ufo',
    'ipTotalLen',
    'udpLen',
    'tcpDataOffset',
    'notIp',
    'ipv4Fragment',
    'maxPayload0',
    'randomBytes',
  ];
  const seen = new Set<Damage>();
  fc.assert(
    fc.property(
      specArb({ maxSegments: 40 }),
      fc.constantFrom(...kinds),
      fc.integer({ min: 0, max: 0xffff }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      (s, kind, k, pokes) => {
        if (kind === 'udpLen' || kind === 'tcpTypeOnUdp') s = { ...s, udp: true };
        if (kind === 'ipv6ExtHeader' || kind === 'familyType') s = { ...s, v4: kind === 'familyType' ? s.v4 : false };
        if (kind === 'tcpDataOffset') s = { ...s, udp: false };
        if (kind === 'ipv4Fragment') s = { ...s, v4: true };
        const before = [big.available, small.available];
        const { l3, l4, hdrs } = layout(s);
        let p: PacketBuf;
        if (kind === 'ipv6ExtHeader') {
          // A Hop-by-Hop Options header (PadN) before the transport header.
          const ls = layers(s, payloadOf(s));
          (ls[1] as Extract<Layer, { kind: 'ipv6' }>).repr.nextHeader = 0;
          ls.splice(2, 0, { kind: 'ipv6ext', repr: { headerType: 0, nextHeader: s.udp ? 17 : 6, data: Uint8Array.of(1, 4, 0, 0, 0, 0) } });
          p = big.alloc()!;
          p.load(compose(ls));
          p.gsoType = s.udp ? VNET_GSO_UDP_L4 : VNET_GSO_TCPV6;
          p.gsoSize = s.mss;
        } else {
          p = superFrame(s, big);
        }
        const d = p.data;
        let maxPayload = s.path;
        let want: DropReason | null = null;
        switch (kind) {
          case 'truncate':
            p.end = p.start + (k % hdrs);
            break;
          case 'gsoSize0':
            p.gsoSize = 0;
            want = DropReason.GsoBadSize;
            break;
          case 'hdrLenShort':
            p.hdrLen = 1 + (k % (hdrs - 1));
            break; // a hint, as the kernel takes it: accepted
          case 'hdrLenLong':
            p.hdrLen = p.end - p.start + 1 + (k % 100);
            want = DropReason.GsoBadHeaderLen;
            break;
          case 'csumStart':
            p.csumStart += 1 + (k % 8);
            want = DropReason.GsoBadHeaderLen;
            break;
          case 'ipv6ExtHeader':
            want = DropReason.GsoUnsupportedHeaders;
            break;
          case 'tcpTypeOnUdp':
            p.gsoType = s.v4 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6;
            want = DropReason.GsoBadType;
            break;
          case 'familyType':
            p.gsoType = s.udp ? (s.v4 ? VNET_GSO_TCPV4 : VNET_GSO_TCPV6) : s.v4 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
            want = DropReason.GsoBadType;
            break;
          case 'ufo':
            p.gsoType = VNET_GSO_UDP;
            want = DropReason.GsoBadType;
            break;
          case 'ipTotalLen': {
            // A length past the frame's end.
            const at = p.start + l3 + (s.v4 ? 2 : 4);
            const v = p.end - p.start - l3 + 1 + (k % 50);
            d[at] = (v >>> 8) & 0xff;
            d[at + 1] = v & 0xff;
            want = s.v4 ? DropReason.Ipv4BadTotalLen : DropReason.Ipv6BadPayloadLen;
            break;
          }
          case 'udpLen': {
            const at = p.start + l4 + 4;
            const v = (be16(d, at) + 1 + (k % 300)) & 0xffff;
            d[at] = v >>> 8;
            d[at + 1] = v & 0xff;
            want = DropReason.UdpBadLength;
            break;
          }
          case 'tcpDataOffset':
            d[p.start + l4 + 12] = (k % 5) << 4;
            want = DropReason.TcpBadDataOffset;
            break;
          case 'notIp':
            d[p.start + l3 - 2] = 0x08;
            d[p.start + l3 - 1] = 0x06;
            want = DropReason.GsoBadType;
            break;
          case 'ipv4Fragment':
            d[p.start + l3 + 6]! |= 0x20;
            want = DropReason.GsoUnsupportedHeaders;
            break;
          case 'maxPayload0':
            maxPayload = 0;
            want = DropReason.GsoBadSize;
            break;
          case 'randomBytes':
            for (const [at, v] of pokes) d[p.start + (at % hdrs)] = v;
            break;
        }
        seen.add(kind);
        const r = segment(p, maxPayload, small, out, stats);
        if (want !== null) assert.equal(r, -want, `${kind}: ${r} (${DropReason[-r]}) want ${DropReason[want]}`);
        else if (kind === 'truncate') assert.ok(r < 0, `truncated to ${p.end - p.start} of ${hdrs} header bytes: ${r}`);
        else if (kind === 'hdrLenShort') assert.ok(r > 0, `hdrLen ${p.hdrLen} of ${hdrs}: ${r}`);
        if (r < 0) assert.equal(out.length, 0, 'nothing appended');
        releaseAll(out);
        p.release();
        assert.deepEqual([big.available, small.available], before);
      },
    ),
    { numRuns: 400 },
  );
  assert.equal(seen.size, kinds.length);
  assert.ok(stats.drops[DropReason.GsoBadType]! > 0 && stats.drops[DropReason.GsoBadSize]! > 0);
});

test('gso: pool exhaustion (before or in the middle) and a full batch return every buffer taken', () => {
  const stats = new GsoStats();
  const s: Spec = {
    v4: true,
    vlan: false,
    udp: false,
    len: 10000,
    seed: 3,
    mss: 1448,
    path: 1448,
    flags: 0,
    ts: true,
    ident: 1,
    dontFrag: true,
    tos: 0,
    ttl: 64,
    seq: 1,
    ack: 1,
    window: 1,
  };
  const pool = new PacketPool({ count: 10, frameCapacity: 2048 });
  const out = new PacketBatch(64);
  const p = superFrame(s, big);
  // Seven segments needed.
  for (let i = 0; i < 4; i++) out.add(pool.alloc()!);
  assert.equal(segment(p, 1448, pool, out, stats), -DropReason.PoolExhausted);
  assert.deepEqual([out.length, pool.available], [4, 6]);
  // A pool that runs dry in the middle (alloc fails on the fifth buffer although `available` said yes).
  releaseAll(out);
  let left = 4;
  const realAlloc = pool.alloc.bind(pool);
  pool.alloc = () => (left-- > 0 ? realAlloc() : null);
  out.add(big.alloc()!);
  assert.equal(segment(p, 1448, pool, out, stats), -DropReason.PoolExhausted);
  assert.deepEqual([out.length, pool.available], [1, 10]);
  pool.alloc = realAlloc;
  // A batch with room for six.
  const short = new PacketBatch(6);
  assert.equal(segment(p, 1448, pool, short, stats), -DropReason.QueueFull);
  assert.deepEqual([short.length, pool.available], [0, 10]);
  assert.equal(segment(p, 1448, pool, new PacketBatch(7), stats) > 0 ? 7 : 0, 7);
  assert.equal(stats.drops[DropReason.PoolExhausted], 2);
  assert.equal(stats.drops[DropReason.QueueFull], 1);
  releaseAll(out);
  p.release();
});

// --- the coalescer on its own ----------------------------------------------------------------

/** The segments of `s` (from `big`), as the other side's segmentation sends them. */
function segmentsOf(s: Spec, stats = new GsoStats()): PacketBatch {
  const p = superFrame(s, big);
  const b = new PacketBatch(128);
  assert.ok(segment(p, s.path, big, b, stats) > 0);
  p.release();
  return b;
}

function pushAll(co: Coalescer, frames: PacketBuf[], out: PacketBatch): void {
  for (const f of frames) co.push(f, out);
  co.flush(out);
}

test('gso coalescer: non-TCP frames pass through unchanged, interleaved flows coalesce separately and keep their order', () => {
  const stats = new GsoStats();
  const co = new Coalescer(big, stats);
  const a = list(segmentsOf(base));
  const b = list(segmentsOf({ ...base, v4: false, seed: 6, seq: 5 }));
  const udp = list(segmentsOf({ ...base, udp: true, mss: 500, len: 1000 }));
  const udpBytes = udp.map(bytesOf);
  const frames = [a[0]!, b[0]!, udp[0]!, a[1]!, b[1]!, a[2]!, udp[1]!, b[2]!, a[3]!, b[3]!];
  const out = new PacketBatch(16);
  pushAll(co, frames, out);
  // The UDP datagrams as they were, in their order; one super-frame per flow, ended by PSH.
  const o = list(out);
  assert.equal(o.length, 4);
  const udpOut = o.filter((q) => q.gsoType === VNET_GSO_NONE);
  assert.deepEqual(udpOut.map(bytesOf), udpBytes);
  assert.deepEqual(
    o
      .filter((q) => q.gsoType !== VNET_GSO_NONE)
      .map((q) => q.gsoType)
      .sort(),
    [VNET_GSO_TCPV4, VNET_GSO_TCPV6],
  );
  assert.deepEqual([stats.coalesced, stats.coalescedSegments], [2, 8]);
  releaseAll(out);
});

test('gso coalescer: segments that break a GRO rule are not merged, and a held flow leaves before them', () => {
  type Twist = { name: string; at: number; apply: (b: Uint8Array, l3: number, l4: number) => void; merged: number[] };
  const { l3, l4 } = layout(base);
  const fixIp = (b: Uint8Array, o: number): void => {
    b[o + 10] = b[o + 11] = 0;
    const c = ~fold16(sum16(b, o, 20)) & 0xffff;
    b[o + 10] = c >>> 8;
    b[o + 11] = c & 0xff;
  };
  const fixTcp = (b: Uint8Array, o3: number, o4: number): void => {
    b[o4 + 16] = b[o4 + 17] = 0;
    const c = ~fold16(sum16(b, o4, b.length - o4, pseudo(b, o3, true, 6, b.length - o4))) & 0xffff;
    b[o4 + 16] = c >>> 8;
    b[o4 + 17] = c & 0xff;
  };
  const twists: Twist[] = [
    {
      name: 'TTL differs',
      at: 2,
      apply: (b, o) => {
        b[o + 8] = 63;
        fixIp(b, o);
      },
      merged: [2, 1, 1],
    },
    {
      name: 'TOS differs',
      at: 1,
      apply: (b, o) => {
        b[o + 1] = 4;
        fixIp(b, o);
      },
      merged: [1, 1, 2],
    },
    {
      name: 'IPv4 id jumps',
      at: 2,
      apply: (b, o) => {
        b[o + 5]! += 5;
        fixIp(b, o);
      },
      merged: [2, 1, 1],
    },
    {
      name: 'ack differs',
      at: 3,
      apply: (b, o3, o4) => {
        b[o4 + 11]! ^= 1;
        fixTcp(b, o3, o4);
      },
      merged: [3, 1],
    },
    {
      name: 'window differs',
      at: 1,
      apply: (b, o3, o4) => {
        b[o4 + 15]! ^= 1;
        fixTcp(b, o3, o4);
      },
      merged: [1, 1, 2],
    },
    {
      name: 'timestamp differs',
      at: 2,
      apply: (b, o3, o4) => {
        b[o4 + 27]! ^= 1;
        fixTcp(b, o3, o4);
      },
      merged: [2, 1, 1],
    },
    {
      name: 'sequence gap',
      at: 2,
      apply: (b, o3, o4) => {
        b[o4 + 7]! += 1;
        fixTcp(b, o3, o4);
      },
      merged: [2, 1, 1],
    },
    {
      name: 'bad TCP checksum',
      at: 2,
      apply: (b, _o3, o4) => {
        b[o4 + 17]! ^= 0x40;
      },
      merged: [2, 1, 1],
    },
    {
      name: 'bad IPv4 header checksum',
      at: 1,
      apply: (b, o) => {
        b[o + 11]! ^= 0x40;
      },
      merged: [1, 1, 2],
    },
    {
      name: 'ECE appears',
      at: 2,
      apply: (b, o3, o4) => {
        b[o4 + 13]! |= TCP_ECE;
        fixTcp(b, o3, o4);
      },
      merged: [2, 1, 1],
    },
    {
      name: 'SYN',
      at: 3,
      apply: (b, o3, o4) => {
        b[o4 + 13]! |= TCP_SYN;
        fixTcp(b, o3, o4);
      },
      merged: [3, 1],
    },
    {
      name: 'RST',
      at: 1,
      apply: (b, o3, o4) => {
        b[o4 + 13]! |= TCP_RST;
        fixTcp(b, o3, o4);
      },
      merged: [1, 1, 2],
    },
    {
      name: 'CWR on a later one starts a new super-frame',
      at: 2,
      apply: (b, o3, o4) => {
        b[o4 + 13]! |= TCP_CWR;
        fixTcp(b, o3, o4);
      },
      merged: [2, 2],
    },
  ];
  for (const t of twists) {
    const stats = new GsoStats();
    const co = new Coalescer(big, stats);
    const segs = list(segmentsOf(base));
    const s = segs[t.at]!;
    t.apply(s.data.subarray(s.start, s.end), l3, l4);
    const sent = segs.map(bytesOf);
    const out = new PacketBatch(8);
    pushAll(co, segs, out);
    // Segment counts per output frame, from the sequence numbers, and the whole stream in order.
    const counts = list(out).map((q) => Math.max(1, Math.round((q.end - q.start - layout(base).hdrs) / 1448)));
    assert.deepEqual(counts, t.merged, t.name);
    const stream = Buffer.concat(list(out).map((q) => Buffer.from(q.data.subarray(q.start + layout(base).hdrs, q.end))));
    assert.ok(stream.equals(Buffer.concat(sent.map((x) => x.subarray(layout(base).hdrs)))), `${t.name}: stream in order`);
    // A frame that was not merged leaves as it came.
    for (const q of list(out))
      if (q.gsoType === VNET_GSO_NONE)
        assert.ok(
          sent.some((x) => x.equals(bytesOf(q))),
          `${t.name}: unchanged`,
        );
    releaseAll(out);
  }
});

test('gso coalescer: the same inner flow from another VNI or VTEP is another flow; a traced segment makes the super-frame traced', () => {
  const co = new Coalescer(big, new GsoStats());
  // The same four segments arriving in VNI 100 and in VNI 200, interleaved.
  const a = list(segmentsOf(base));
  const b = list(segmentsOf(base));
  a.forEach((q) => {
    q.tunVni = 100;
    q.tunVtep = 1;
    q.traced = false;
  });
  b.forEach((q, i) => {
    q.tunVni = 200;
    q.tunVtep = 1;
    q.traced = i === 2;
  });
  const out = new PacketBatch(8);
  pushAll(
    co,
    a.flatMap((q, i) => [q, b[i]!]),
    out,
  );
  assert.deepEqual(
    list(out).map((q) => [q.tunVni, (q.end - q.start - layout(base).hdrs) / 1448, q.traced]),
    [
      [100, 4, false],
      [200, 4, true],
    ],
  );
  releaseAll(out);
  const again = list(segmentsOf({ ...base, len: 2 * 1448, flags: 0 }));
  again[0]!.tunVtep = 1;
  again[1]!.tunVtep = 2;
  pushAll(co, again, out);
  assert.equal(out.length, 2);
  releaseAll(out);
});

test('gso coalescer: without verification (an authenticated tunnel) a segment with a bad TCP checksum is merged; with it, not', () => {
  for (const verify of [true, false]) {
    const co = new Coalescer(big, new GsoStats(), undefined, verify);
    const segs = list(segmentsOf(base));
    const s = segs[1]!;
    s.data[s.start + 34 + 17]! ^= 1;
    const out = new PacketBatch(8);
    pushAll(co, segs, out);
    assert.equal(out.length, verify ? 3 : 1, `verify ${verify}`);
    releaseAll(out);
  }
});

test('gso coalescer: IPv4 ids may stay the same with DF (as GRO allows), not without it', () => {
  for (const df of [true, false]) {
    const co = new Coalescer(big, new GsoStats());
    const segs = list(segmentsOf({ ...base, dontFrag: df }));
    for (const q of segs) {
      const b = q.data;
      const o = q.start + 14;
      b[o + 4] = 0;
      b[o + 5] = 9;
      b[o + 10] = b[o + 11] = 0;
      const c = ~fold16(sum16(b, o, 20)) & 0xffff;
      b[o + 10] = c >>> 8;
      b[o + 11] = c & 0xff;
    }
    const out = new PacketBatch(8);
    pushAll(co, segs, out);
    assert.equal(out.length, df ? 1 : 4, `DF ${df}`);
    releaseAll(out);
  }
});

test('gso coalescer: more flows than slots all come out, each in order; a full output batch is counted, not thrown', () => {
  const stats = new GsoStats();
  const co = new Coalescer(big, stats);
  const flows = Array.from({ length: 10 }, (_, i) => list(segmentsOf({ ...base, len: 2 * 1448, seed: 20 + i, ident: i * 1000, flags: 0 })));
  // Ports differ per flow.
  flows.forEach((f, i) =>
    f.forEach((q) => {
      const o = q.start + 34;
      q.data[o + 1] = i;
      q.data[o + 16] = q.data[o + 17] = 0;
      const c = ~fold16(sum16(q.data, o, q.end - o, pseudo(q.data, q.start + 14, true, 6, q.end - o))) & 0xffff;
      q.data[o + 16] = c >>> 8;
      q.data[o + 17] = c & 0xff;
    }),
  );
  const out = new PacketBatch(32);
  // First segments in flow order (the ninth and tenth evict the oldest), second ones in reverse.
  for (const f of flows) co.push(f[0]!, out);
  for (const f of [...flows].reverse()) co.push(f[1]!, out);
  co.flush(out);
  // Each flow's two segments leave together, or one after the other.
  let segsOut = 0;
  const firstSeen = new Map<number, number>();
  for (const q of list(out)) {
    segsOut += q.gsoType === VNET_GSO_NONE ? 1 : 2;
    const port = be16(q.data, q.start + 34);
    const seq = be32(q.data, q.start + 38);
    if (firstSeen.has(port)) assert.equal(seq, (firstSeen.get(port)! + 1448) >>> 0, `flow ${port} in order`);
    else assert.equal(seq, base.seq, `flow ${port} starts with its first segment`);
    firstSeen.set(port, seq);
  }
  assert.equal(segsOut, 20);
  assert.equal(stats.coalesced, 8);
  releaseAll(out);
  const tiny = new PacketBatch(1);
  const more = list(segmentsOf({ ...base, udp: true, mss: 100, len: 300 }));
  for (const q of more) co.push(q, tiny);
  assert.equal(stats.drops[DropReason.QueueFull], 2);
  releaseAll(tiny);
  assert.equal(big.available, big.size);
});

test('gso coalescer: a pool of smaller buffers bounds the super-frames (frameCapacity), and segments from another pool are moved into it', () => {
  const stats = new GsoStats();
  const co = new Coalescer(small, stats);
  const segs = list(segmentsOf({ ...base, len: 45 * 1448 }));
  const out = new PacketBatch(64);
  pushAll(co, segs, out);
  const { hdrs } = layout(base);
  // 9216 bytes hold the headers and six segments.
  assert.deepEqual(
    list(out).map((q) => (q.end - q.start - hdrs) / 1448),
    [6, 6, 6, 6, 6, 6, 6, 3],
  );
  for (const q of list(out)) assert.equal(q.pool, small);
  releaseAll(out);
  assert.deepEqual([big.available, small.available], [big.size, small.size]);
});

// --- a real peer -----------------------------------------------------------------------------

test("gso: tshark finds every segment's IP, TCP and UDP checksums good and reassembles the streams to the same bytes (also after coalescing and segmenting again)", () => {
  requireTool('tshark', 'tshark');
  const stats = new GsoStats();
  const cases: Spec[] = [
    { ...base, len: 30000, flags: TCP_PSH | TCP_CWR, seed: 11 },
    { ...base, v4: false, vlan: true, len: 20001, mss: 1428, path: 1300, seed: 12, seq: 0xfffff000 },
    { ...base, udp: true, len: 9000, mss: 1200, seed: 13 },
    { ...base, v4: false, udp: true, len: 5000, mss: 1000, seed: 14 },
  ];
  const frames: Uint8Array[] = [];
  const payloads: Buffer[] = [];
  for (const s of cases) {
    const p = superFrame(s, big);
    payloads.push(Buffer.from(p.data.subarray(p.start + layout(s).hdrs, p.end)));
    const segs = new PacketBatch(128);
    assert.ok(segment(p, s.path, big, segs, stats) > 1);
    p.release();
    for (const q of list(segs)) frames.push(q.data.slice(q.start, q.end));
    if (!s.udp) {
      // Coalesced back, then segmented again at another size: the stream must not change.
      const co = new Coalescer(big, stats);
      const out = new PacketBatch(128);
      pushAll(co, list(segs), out);
      segs.clear();
      assert.equal(out.length, 1);
      const again = new PacketBatch(128);
      assert.ok(segment(out.get(0), 1000, big, again, stats) > 1);
      releaseAll(out);
      for (const q of list(again)) {
        const b = q.data.slice(q.start, q.end);
        // Another stream for tshark: a different source port (checksum patched incrementally).
        const o = layout(s).l4;
        const old = be16(b, o);
        b[o] = 0x9c;
        b[o + 1] = 0x41;
        const c = ~fold16((~be16(b, o + 16) & 0xffff) + (~old & 0xffff) + 0x9c41) & 0xffff;
        b[o + 16] = c >>> 8;
        b[o + 17] = c & 0xff;
        frames.push(b);
      }
      releaseAll(again);
      payloads.push(payloads[payloads.length - 1]!);
    }
    releaseAll(segs);
  }
  const dir = mkdtempSync(join(tmpdir(), 'seine-gso-'));
  try {
    const file = join(dir, 'segments.pcap');
    writePcap(file, frames);
    const prefs = ['-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE'];
    const rows = run('tshark', [
      '-n',
      '-r',
      file,
      ...prefs,
      '-T',
      'fields',
      '-E',
      'separator=,',
      '-e',
      'ip.checksum.status',
      '-e',
      'tcp.checksum.status',
      '-e',
      'udp.checksum.status',
      '-e',
      '_ws.expert.severity',
      '-e',
      '_ws.malformed',
    ])
      .trim()
      .split('\n');
    assert.equal(rows.length, frames.length);
    rows.forEach((r, i) => {
      const [ip, tcp, udp, expert, malformed] = r.split(',');
      assert.ok(ip === '' || ip === '1', `frame ${i + 1}: ip checksum status ${ip}`);
      assert.ok((tcp === '1') !== (udp === '1'), `frame ${i + 1}: tcp ${tcp} udp ${udp}`);
      assert.ok(malformed === '' && !/\b(6291456|8388608)\b/.test(expert ?? ''), `frame ${i + 1}: expert ${expert} malformed ${malformed}`);
    });
    // TCP streams in order of appearance: each TCP case, then its coalesced-and-segmented-again copy.
    const tcpPayloads = payloads.slice(0, 4);
    [0, 1, 2, 3].forEach((stream, k) => {
      const text = run('tshark', ['-n', '-r', file, ...prefs, '-q', '-z', `follow,tcp,raw,${stream}`]);
      const hexes = text.split('\n').filter((l) => /^[0-9a-f]+$/.test(l.trim()));
      const got = Buffer.from(hexes.join(''), 'hex');
      assert.ok(got.equals(tcpPayloads[k]!), `tcp stream ${stream}: ${got.length} bytes, want ${tcpPayloads[k]!.length}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
