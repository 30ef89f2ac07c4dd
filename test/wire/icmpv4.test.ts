import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checksum } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop.js';
import {
  emitIcmpv4,
  ICMPV4_CODE_FRAG_NEEDED,
  ICMPV4_CODE_TTL_EXCEEDED,
  ICMPV4_DEST_UNREACHABLE,
  ICMPV4_ECHO_REPLY,
  ICMPV4_ECHO_REQUEST,
  ICMPV4_HEADER_LEN,
  ICMPV4_REDIRECT,
  ICMPV4_TIME_EXCEEDED,
  icmpv4BufferLen,
  Icmpv4View,
  parseIcmpv4,
  type Icmpv4Repr,
} from '../../src/wire/icmpv4.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// The datagram the error messages quote.
// scapy: raw(IP(src="10.0.0.1", dst="192.0.2.7", id=1, flags="DF")/UDP(sport=40000, dport=53)/b"abcdefgh")
const QUOTED = fromHex('450000240001400040116ec00a000001c0000207' + '9c400035001005bb' + '6162636465666768');
// scapy: raw(IP(src="10.0.0.1", dst="192.0.2.7", ttl=1, id=2)/UDP(sport=40000, dport=33434))
const QUOTED_TTL = fromHex('4500001c000200000111edc70a000001c0000207' + '9c40829a000814fb');
const PING = fromHex('70696e67');

interface Golden {
  name: string;
  bytes: Uint8Array;
  repr: Icmpv4Repr;
  type: number;
  code: number;
  checksum: number;
  rest: number;
}

const GOLDENS: Golden[] = [
  {
    // scapy: raw(ICMP(type=8, id=0x1234, seq=1)/b"ping")
    name: 'echo request',
    bytes: fromHex('080006fa12340001' + '70696e67'),
    repr: { kind: 'echoRequest', ident: 0x1234, seq: 1, data: PING },
    type: ICMPV4_ECHO_REQUEST,
    code: 0,
    checksum: 0x06fa,
    rest: 0x12340001,
  },
  {
    // scapy: raw(ICMP(type=0, id=0x1234, seq=1)/b"ping")
    name: 'echo reply',
    bytes: fromHex('00000efa12340001' + '70696e67'),
    repr: { kind: 'echoReply', ident: 0x1234, seq: 1, data: PING },
    type: ICMPV4_ECHO_REPLY,
    code: 0,
    checksum: 0x0efa,
    rest: 0x12340001,
  },
  {
    // scapy: raw(ICMP(type=3, code=4, nexthopmtu=1400)/IP(src="10.0.0.1", dst="192.0.2.7", id=1, flags="DF")/UDP(sport=40000, dport=53)/b"abcdefgh")
    name: 'fragmentation needed',
    bytes: fromHex('0304c3ad00000578' + '450000240001400040116ec00a000001c00002079c400035001005bb6162636465666768'),
    repr: { kind: 'destUnreachable', code: ICMPV4_CODE_FRAG_NEEDED, nextHopMtu: 1400, data: QUOTED },
    type: ICMPV4_DEST_UNREACHABLE,
    code: 4,
    checksum: 0xc3ad,
    rest: 1400,
  },
  {
    // scapy: raw(ICMP(type=11, code=0)/IP(src="10.0.0.1", dst="192.0.2.7", ttl=1, id=2)/UDP(sport=40000, dport=33434))
    name: 'time exceeded',
    bytes: fromHex('0b00c12100000000' + '4500001c000200000111edc70a000001c00002079c40829a000814fb'),
    repr: { kind: 'timeExceeded', code: ICMPV4_CODE_TTL_EXCEEDED, data: QUOTED_TTL },
    type: ICMPV4_TIME_EXCEEDED,
    code: 0,
    checksum: 0xc121,
    rest: 0,
  },
  {
    // scapy: raw(ICMP(type=5, code=1, gw="10.0.0.254")/IP(src="10.0.0.1", dst="192.0.2.7", id=1, flags="DF")/UDP(sport=40000, dport=53)/b"abcdefgh")
    name: 'other (redirect)',
    bytes: fromHex('0501bc2a0a0000fe' + '450000240001400040116ec00a000001c00002079c400035001005bb6162636465666768'),
    repr: { kind: 'other', type: ICMPV4_REDIRECT, code: 1, rest: 0x0a0000fe, data: QUOTED },
    type: ICMPV4_REDIRECT,
    code: 1,
    checksum: 0xbc2a,
    rest: 0x0a0000fe,
  },
  {
    // scapy: raw(ICMP(type=13, code=0, id=7, seq=9, ts_ori=1, ts_rx=2, ts_tx=3))
    name: 'other (timestamp)',
    bytes: fromHex('0d00f2e900070009' + '000000010000000200000003'),
    repr: { kind: 'other', type: 13, code: 0, rest: 0x00070009, data: fromHex('000000010000000200000003') },
    type: 13,
    code: 0,
    checksum: 0xf2e9,
    rest: 0x00070009,
  },
  {
    // An echo request with a code RFC 792 does not define is kept whole as 'other'.
    // scapy: raw(ICMP(type=8, code=9, id=1, seq=2)/b"x")
    name: 'other (echo with code 9)',
    bytes: fromHex('08097ff300010002' + '78'),
    repr: { kind: 'other', type: ICMPV4_ECHO_REQUEST, code: 9, rest: 0x00010002, data: fromHex('78') },
    type: ICMPV4_ECHO_REQUEST,
    code: 9,
    checksum: 0x7ff3,
    rest: 0x00010002,
  },
];

for (const g of GOLDENS) {
  test(`icmpv4 ${g.name}: deconstruct`, () => {
    const v = new Icmpv4View(g.bytes, 0);
    assert.equal(v.check(g.bytes.length), null);
    assert.equal(v.type, g.type);
    assert.equal(v.code, g.code);
    assert.equal(v.checksum, g.checksum);
    assert.equal(v.rest, g.rest);
    assert.equal(v.ident, g.rest >>> 16);
    assert.equal(v.seq, g.rest & 0xffff);
    assert.equal(v.nextHopMtu, g.rest & 0xffff);
    assert.equal(v.payloadOffset, ICMPV4_HEADER_LEN);
    assert.equal(v.payloadLen(g.bytes.length), g.repr.data.length);
    assert.deepEqual(g.bytes.subarray(v.payloadOffset), g.repr.data);
    assert.ok(v.verifyChecksum(g.bytes.length));
  });

  test(`icmpv4 ${g.name}: construct`, () => {
    const b = dirty(g.bytes.length);
    const v = new Icmpv4View(b, 0);
    v.type = g.type;
    v.code = g.code;
    if (g.repr.kind === 'echoRequest' || g.repr.kind === 'echoReply') {
      v.ident = g.repr.ident;
      v.seq = g.repr.seq;
    } else if (g.repr.kind === 'destUnreachable') {
      v.rest = 0;
      v.nextHopMtu = g.repr.nextHopMtu;
    } else {
      v.rest = g.rest;
    }
    b.set(g.repr.data, v.payloadOffset);
    v.fillChecksum(b.length);
    assert.deepEqual(b, g.bytes);
  });

  test(`icmpv4 ${g.name}: parse`, () => {
    assert.deepEqual(parseIcmpv4(new Icmpv4View(g.bytes, 0), g.bytes.length), g.repr);
  });

  test(`icmpv4 ${g.name}: emit`, () => {
    assert.equal(icmpv4BufferLen(g.repr), g.bytes.length);
    const b = dirty(g.bytes.length + 6);
    emitIcmpv4(g.repr, b, 3);
    assert.deepEqual(b.subarray(3, 3 + g.bytes.length), g.bytes);
    assert.deepEqual(b.subarray(0, 3), dirty(3));
    assert.deepEqual(b.subarray(3 + g.bytes.length), dirty(3));
  });
}

test('icmpv4: the quoted IPv4 header and ports survive parse and emit', () => {
  const g = GOLDENS[2]!;
  const r = parseIcmpv4(new Icmpv4View(g.bytes, 0), g.bytes.length);
  assert.ok(typeof r !== 'number' && r.kind === 'destUnreachable');
  const q = r.data;
  assert.equal(q[0]! >>> 4, 4);
  assert.equal(checksum(q, 0, 20), 0, 'quoted IPv4 header checksum still verifies');
  assert.deepEqual(q.subarray(12, 20), fromHex('0a000001c0000207'));
  assert.deepEqual(q.subarray(20, 24), fromHex('9c400035'));
  // Re-emitting in place over its own frame (data overlaps the destination) keeps the quote intact.
  const b = g.bytes.slice();
  const again = parseIcmpv4(new Icmpv4View(b, 0), b.length);
  assert.ok(typeof again !== 'number');
  emitIcmpv4(again, b, 0);
  assert.deepEqual(b, g.bytes);
});

test('icmpv4: emit writes bytes 4-5 of destination unreachable and 4-7 of time exceeded as zero', () => {
  const b = GOLDENS[2]!.bytes.slice();
  b[4] = 0xff;
  b[5] = 0x11;
  const r = parseIcmpv4(new Icmpv4View(b, 0), b.length);
  assert.ok(typeof r !== 'number' && r.kind === 'destUnreachable' && r.nextHopMtu === 1400);
  const out = dirty(b.length);
  emitIcmpv4(r, out, 0);
  assert.deepEqual(out, GOLDENS[2]!.bytes);
});

test('icmpv4: shorter than 8 bytes is Icmpv4Truncated; a bad checksum is found', () => {
  const g = GOLDENS[0]!.bytes;
  for (const n of [0, 1, 7]) assert.equal(parseIcmpv4(new Icmpv4View(g, 0), n), DropReason.Icmpv4Truncated);
  assert.deepEqual(parseIcmpv4(new Icmpv4View(g, 0), 8), { kind: 'echoRequest', ident: 0x1234, seq: 1, data: new Uint8Array(0) });
  const b = g.slice();
  b[9] = b[9]! ^ 1;
  assert.equal(new Icmpv4View(b, 0).verifyChecksum(b.length), false);
});

const u16 = fc.integer({ min: 0, max: 0xffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const data = fc.uint8Array({ maxLength: 64 });
const opts = { noNullPrototype: true } as const;
const icmpv4Repr: fc.Arbitrary<Icmpv4Repr> = fc.oneof(
  fc.record({ kind: fc.constantFrom('echoRequest' as const, 'echoReply' as const), ident: u16, seq: u16, data }, opts),
  fc.record({ kind: fc.constant('destUnreachable' as const), code: u8, nextHopMtu: u16, data }, opts),
  fc.record({ kind: fc.constant('timeExceeded' as const), code: u8, data }, opts),
  fc
    .record({ kind: fc.constant('other' as const), type: u8, code: u8, rest: fc.nat({ max: 0xffff_ffff }), data }, opts)
    .filter(
      (r) =>
        r.type !== ICMPV4_DEST_UNREACHABLE &&
        r.type !== ICMPV4_TIME_EXCEEDED &&
        !((r.type === ICMPV4_ECHO_REQUEST || r.type === ICMPV4_ECHO_REPLY) && r.code === 0),
    ),
);

test('icmpv4: emit then parse is the identity', () => {
  fc.assert(
    fc.property(icmpv4Repr, fc.nat(8), (repr, off) => {
      const len = icmpv4BufferLen(repr);
      const b = dirty(off + len + 4);
      emitIcmpv4(repr, b, off);
      const v = new Icmpv4View(b, off);
      assert.ok(v.verifyChecksum(len));
      assert.deepEqual(parseIcmpv4(v, len), repr);
    }),
  );
});

function checkNeverThrows(frame: Uint8Array): void {
  const v = new Icmpv4View(frame, 0);
  const r = parseIcmpv4(v, frame.length);
  if (typeof r === 'number') {
    assert.equal(r, DropReason.Icmpv4Truncated);
    return;
  }
  assert.ok(v.payloadOffset + r.data.length === frame.length);
  v.verifyChecksum(frame.length);
  void v.rest;
}

test('icmpv4: arbitrary and truncated bytes never throw and never read outside the frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(80), (bytes, cut) => {
      checkNeverThrows(guarded(bytes.subarray(0, Math.min(cut, bytes.length))));
    }),
  );
});

test('icmpv4: mutated golden bytes never throw and never read outside the frame', () => {
  fc.assert(
    fc.property(fc.constantFrom(...GOLDENS.map((g) => g.bytes)), fc.array(fc.tuple(fc.nat(63), u8), { maxLength: 4 }), fc.nat(64), (golden, muts, cut) => {
      const b = golden.slice(0, cut);
      for (const [i, x] of muts) if (i < b.length) b[i] = x;
      checkNeverThrows(guarded(b));
    }),
  );
});
