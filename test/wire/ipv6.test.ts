import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ipv6FromString } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import {
  emitIpv6,
  emitIpv6Ext,
  emitIpv6Frag,
  Ipv6FragView,
  Ipv6View,
  Ipv6Walk,
  ipv6ExtBufferLen,
  parseIpv6,
  parseIpv6Ext,
  parseIpv6Frag,
  walkIpv6,
  IPV6_MAX_EXT_HEADERS,
  type Ipv6Repr,
} from '../../src/wire/ipv6.js';
import { ipv6ReprArb } from '../arbitraries.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy: raw(IPv6(src="fe80::1", dst="2001:db8::2", tc=0x2e, fl=0x12345, hlim=255, nh=59)/Raw(b"xy"))
const PLAIN = fromHex('62e1234500023bfffe80000000000000000000000000000120010db80000000000000000000000027879');
const PLAIN_REPR: Ipv6Repr = {
  src: ipv6FromString('fe80::1')!,
  dst: ipv6FromString('2001:db8::2')!,
  nextHeader: 59,
  hopLimit: 255,
  trafficClass: 0x2e,
  flowLabel: 0x12345,
  payloadLen: 2,
};
// scapy: raw(IPv6(src="2001:db8::1", dst="2001:db8::2")/IPv6ExtHdrHopByHop()/IPv6ExtHdrFragment(id=0xdeadbeef, offset=185, m=1)/Raw(b"12345678"))
const FRAG = fromHex(
  '600000000018004020010db800000000000000000000000120010db8000000000000000000000002' + '2c00010400000000' + '3b0005c9deadbeef' + '3132333435363738',
);

test('ipv6: deconstruct', () => {
  const v = new Ipv6View(PLAIN, 0);
  assert.equal(v.check(PLAIN.length), null);
  assert.deepEqual([v.version, v.trafficClass, v.flowLabel, v.payloadLen, v.nextHeader, v.hopLimit], [6, 0x2e, 0x12345, 2, 59, 255]);
  assert.deepEqual(v.src, PLAIN_REPR.src);
  const f = new Ipv6FragView(FRAG, 48);
  assert.deepEqual([f.nextHeader, f.fragOffset, f.moreFrags, f.ident], [59, 1480, true, 0xdeadbeef]);
});

test('ipv6: construct', () => {
  const b = dirty(PLAIN.length);
  b.set(PLAIN.subarray(40), 40);
  const v = new Ipv6View(b, 0);
  v.setVtf(0x2e, 0x12345);
  v.payloadLen = 2;
  v.nextHeader = 59;
  v.hopLimit = 255;
  v.src = PLAIN_REPR.src;
  v.dst = PLAIN_REPR.dst;
  assert.deepEqual(b, PLAIN);
  const f = new Ipv6FragView(dirty(8), 0);
  f.nextHeader = 59;
  f.bytes[1] = 0;
  f.setOffsetMore(1480, true);
  f.ident = 0xdeadbeef;
  assert.deepEqual(f.bytes, FRAG.subarray(48, 56));
});

test('ipv6: parse and walk extension headers', () => {
  assert.deepEqual(parseIpv6(new Ipv6View(PLAIN, 0), PLAIN.length), PLAIN_REPR);
  assert.deepEqual(parseIpv6Ext(FRAG, 40, 8, 0), { headerType: 0, nextHeader: 44, data: fromHex('010400000000') });
  assert.deepEqual(parseIpv6Frag(new Ipv6FragView(FRAG, 48), 8), { nextHeader: 59, fragOffset: 1480, moreFrags: true, ident: 0xdeadbeef });
  const w = new Ipv6Walk();
  assert.equal(walkIpv6(FRAG, 0, FRAG.length, w), null);
  assert.deepEqual([w.fragOff, w.nonFirst, w.upperProto, w.upperOff, w.extCount], [48, true, 59, 56, 2]);
});

test('ipv6: emit', () => {
  const b = dirty(PLAIN.length);
  b.set(PLAIN.subarray(40), 40);
  emitIpv6(PLAIN_REPR, b, 0);
  assert.deepEqual(b, PLAIN);
  const f = dirty(FRAG.length);
  f.set(FRAG.subarray(56), 56);
  emitIpv6({ ...PLAIN_REPR, src: ipv6FromString('2001:db8::1')!, nextHeader: 0, hopLimit: 64, trafficClass: 0, flowLabel: 0, payloadLen: 24 }, f, 0);
  emitIpv6Ext({ headerType: 0, nextHeader: 44, data: fromHex('010400000000') }, f, 40);
  emitIpv6Frag({ nextHeader: 59, fragOffset: 1480, moreFrags: true, ident: 0xdeadbeef }, f, 48);
  assert.deepEqual(f, FRAG);
});

test('ipv6: routing header gives the pseudo-header destination (RFC 8200 §8.1)', () => {
  // From shared/vectors/checksums.json (scapy inet6.uts line 77): segments left 1, final 2022::deca.
  const p = fromHex(
    '60000000003c2b402048000000000000000000000000deca2047000000000000000000000000cafe06040001000000002001000000000000000000000000deca2022000000000000000000000000deca00140050000000000000000050022000917f0000',
  );
  const w = new Ipv6Walk();
  assert.equal(walkIpv6(p, 0, p.length, w), null);
  assert.equal(w.upperProto, 6);
  assert.deepEqual(p.subarray(w.pseudoDstOff, w.pseudoDstOff + 16), ipv6FromString('2022::deca'));
});

test('ipv6: malformed packets are drop reasons', () => {
  assert.equal(parseIpv6(new Ipv6View(PLAIN, 0), 39), DropReason.Ipv6Truncated);
  const v4 = PLAIN.slice();
  v4[0] = 0x42;
  assert.equal(parseIpv6(new Ipv6View(v4, 0), v4.length), DropReason.Ipv6BadVersion);
  assert.equal(parseIpv6(new Ipv6View(PLAIN, 0), 41), DropReason.Ipv6BadPayloadLen);
  const w = new Ipv6Walk();
  assert.equal(walkIpv6(FRAG, 0, 50, w), DropReason.Ipv6FragTruncated);
  assert.equal(walkIpv6(FRAG, 0, 45, w), DropReason.Ipv6ExtTruncated);
  // A chain of Destination Options headers longer than the cap.
  const n = IPV6_MAX_EXT_HEADERS + 1;
  const chain = new Uint8Array(40 + 8 * n);
  chain[0] = 0x60;
  chain[6] = 60;
  for (let i = 0; i < n; i++) chain[40 + 8 * i] = i === n - 1 ? 59 : 60;
  assert.equal(walkIpv6(chain, 0, chain.length, w), DropReason.Ipv6TooManyExtHeaders);
});

test('ipv6: emit then parse is the identity (header, fragment, extension)', () => {
  fc.assert(
    fc.property(ipv6ReprArb, (repr) => {
      const b = dirty(40 + repr.payloadLen);
      emitIpv6(repr, b, 0);
      assert.deepEqual(parseIpv6(new Ipv6View(b, 0), b.length), repr);
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 8191 }), fc.boolean(), fc.integer({ min: 0, max: 0xffffffff }), (nh, o, m, id) => {
      const repr = { nextHeader: nh, fragOffset: o * 8, moreFrags: m, ident: id };
      const b = dirty(8);
      emitIpv6Frag(repr, b, 0);
      assert.deepEqual(parseIpv6Frag(new Ipv6FragView(b, 0), 8), repr);
    }),
  );
  fc.assert(
    fc.property(fc.constantFrom(0, 43, 60), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 4 }), (t, nh, units) => {
      const repr = { headerType: t, nextHeader: nh, data: new Uint8Array(6 + 8 * units).fill(7) };
      const b = dirty(ipv6ExtBufferLen(repr));
      emitIpv6Ext(repr, b, 0);
      assert.deepEqual(parseIpv6Ext(b, 0, b.length, t), repr);
    }),
  );
});

test('ipv6: arbitrary, truncated and mutated packets never throw or read outside the frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(200), fc.nat(255), (bytes, at, x) => {
      const m = FRAG.slice();
      m[at % m.length] = m[at % m.length]! ^ x;
      const w = new Ipv6Walk();
      for (const b of [bytes, m, FRAG.subarray(0, at % FRAG.length)]) {
        const g = guarded(b);
        const r = parseIpv6(new Ipv6View(g, 0), g.length);
        if (typeof r !== 'number') {
          const end = 40 + r.payloadLen;
          if (walkIpv6(g, 0, end, w) === null) assert.ok(w.upperOff <= end);
        }
      }
    }),
  );
});
