import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { rdMac } from '../../src/wire/bytes.js';
import { pseudoSumV6At } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop.js';
import {
  emitIcmpv6,
  ICMPV6_CODE_PORT_UNREACHABLE,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ICMPV6_HEADER_LEN,
  ICMPV6_NEIGHBOR_ADVERT,
  ICMPV6_NEIGHBOR_SOLICIT,
  ICMPV6_PACKET_TOO_BIG,
  ICMPV6_PARAM_PROBLEM,
  ICMPV6_ROUTER_SOLICIT,
  ICMPV6_TIME_EXCEEDED,
  icmpv6BufferLen,
  Icmpv6View,
  parseIcmpv6,
  type Icmpv6Repr,
} from '../../src/wire/icmpv6.js';
import { dirty, fromHex, guarded } from '../helpers.js';

const IP6 = 40;
const ICMP6 = 58;
const pseudo = (frame: Uint8Array): number => pseudoSumV6At(frame, 8, 24, ICMP6, frame.length - IP6);

// The packet the error messages quote.
// scapy: raw(IPv6(src="2001:db8::2", dst="2001:db8::99", hlim=64)/UDP(sport=40000, dport=53)/b"abcdefgh")
const QUOTED_HEX = '6000000000101140' + '20010db8000000000000000000000002' + '20010db8000000000000000000000099' + '9c400035001075b6' + '6162636465666768';
const QUOTED = fromHex(QUOTED_HEX);
const A1_A2 = '20010db8000000000000000000000001' + '20010db8000000000000000000000002';
const FE80_2 = fromHex('fe800000000000000000000000000002');

interface Golden {
  name: string;
  /** The whole IPv6 packet; the ICMPv6 message starts at byte 40. */
  frame: Uint8Array;
  repr: Icmpv6Repr;
  type: number;
  code: number;
  checksum: number;
  rest: number;
  /** What emit writes when parse does not keep everything (skipped ND options); `frame` otherwise. */
  emitted?: Uint8Array;
}

const GOLDENS: Golden[] = [
  {
    // scapy: raw(IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6EchoRequest(id=0x1234, seq=1, data=b"ping"))
    name: 'echo request',
    frame: fromHex('60000000000c3a40' + A1_A2 + '8000333e12340001' + '70696e67'),
    repr: { kind: 'echoRequest', ident: 0x1234, seq: 1, data: fromHex('70696e67') },
    type: ICMPV6_ECHO_REQUEST,
    code: 0,
    checksum: 0x333e,
    rest: 0x12340001,
  },
  {
    // scapy: raw(IPv6(src="2001:db8::2", dst="2001:db8::1")/ICMPv6EchoReply(id=0x1234, seq=1, data=b"ping"))
    name: 'echo reply',
    frame: fromHex('60000000000c3a40' + '20010db8000000000000000000000002' + '20010db8000000000000000000000001' + '8100323e12340001' + '70696e67'),
    repr: { kind: 'echoReply', ident: 0x1234, seq: 1, data: fromHex('70696e67') },
    type: ICMPV6_ECHO_REPLY,
    code: 0,
    checksum: 0x323e,
    rest: 0x12340001,
  },
  {
    // scapy: raw(IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6PacketTooBig(mtu=1280)/<QUOTED>)
    name: 'packet too big',
    frame: fromHex('6000000000403a40' + A1_A2 + '02002be100000500' + QUOTED_HEX),
    repr: { kind: 'packetTooBig', mtu: 1280, data: QUOTED },
    type: ICMPV6_PACKET_TOO_BIG,
    code: 0,
    checksum: 0x2be1,
    rest: 1280,
  },
  {
    // scapy: raw(IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6DestUnreach(code=4)/<QUOTED>)
    name: 'destination unreachable',
    frame: fromHex('6000000000403a40' + A1_A2 + '010431dd00000000' + QUOTED_HEX),
    repr: { kind: 'destUnreachable', code: ICMPV6_CODE_PORT_UNREACHABLE, data: QUOTED },
    type: ICMPV6_DEST_UNREACHABLE,
    code: 4,
    checksum: 0x31dd,
    rest: 0,
  },
  {
    // scapy: raw(IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6TimeExceeded(code=0)/<QUOTED>)
    name: 'time exceeded',
    frame: fromHex('6000000000403a40' + A1_A2 + '03002fe100000000' + QUOTED_HEX),
    repr: { kind: 'timeExceeded', code: 0, data: QUOTED },
    type: ICMPV6_TIME_EXCEEDED,
    code: 0,
    checksum: 0x2fe1,
    rest: 0,
  },
  {
    // scapy: raw(IPv6(src="2001:db8::1", dst="2001:db8::2")/ICMPv6ParamProblem(code=1, ptr=40)/<QUOTED>)
    name: 'other (parameter problem)',
    frame: fromHex('6000000000403a40' + A1_A2 + '04012eb800000028' + QUOTED_HEX),
    repr: { kind: 'other', type: ICMPV6_PARAM_PROBLEM, code: 1, rest: 40, data: QUOTED },
    type: ICMPV6_PARAM_PROBLEM,
    code: 1,
    checksum: 0x2eb8,
    rest: 40,
  },
  {
    // scapy: raw(IPv6(src="fe80::1", dst="ff02::2", hlim=255)/ICMPv6ND_RS()/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"))
    name: 'other (router solicitation)',
    frame: fromHex('6000000000103aff' + 'fe800000000000000000000000000001' + 'ff020000000000000000000000000002' + '85007a2c00000000' + '0101020000000001'),
    repr: { kind: 'other', type: ICMPV6_ROUTER_SOLICIT, code: 0, rest: 0, data: fromHex('0101020000000001') },
    type: ICMPV6_ROUTER_SOLICIT,
    code: 0,
    checksum: 0x7a2c,
    rest: 0,
  },
  {
    // scapy: raw(IPv6(src="fe80::1", dst="ff02::1:ff00:2", hlim=255)/ICMPv6ND_NS(tgt="fe80::2")/ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"))
    name: 'neighbor solicitation',
    frame: fromHex(
      '6000000000203aff' +
        'fe800000000000000000000000000001' +
        'ff0200000000000000000001ff000002' +
        '87007a9700000000' +
        'fe800000000000000000000000000002' +
        '0101020000000001',
    ),
    repr: { kind: 'neighborSolicit', target: FE80_2, sourceLinkAddr: 0x020000000001 },
    type: ICMPV6_NEIGHBOR_SOLICIT,
    code: 0,
    checksum: 0x7a97,
    rest: 0,
  },
  {
    // Duplicate address detection: unspecified source, no source link-layer address option.
    // scapy: raw(IPv6(src="::", dst="ff02::1:ff00:2", hlim=255)/ICMPv6ND_NS(tgt="fe80::2"))
    name: 'neighbor solicitation (DAD)',
    frame: fromHex(
      '6000000000183aff' + '00000000000000000000000000000000' + 'ff0200000000000000000001ff000002' + '87007c2300000000' + 'fe800000000000000000000000000002',
    ),
    repr: { kind: 'neighborSolicit', target: FE80_2, sourceLinkAddr: null },
    type: ICMPV6_NEIGHBOR_SOLICIT,
    code: 0,
    checksum: 0x7c23,
    rest: 0,
  },
  {
    // An MTU option in front of the target link-layer address is skipped.
    // scapy: raw(IPv6(src="fe80::2", dst="fe80::1", hlim=255)/ICMPv6ND_NA(R=1, S=1, O=0, tgt="fe80::2")/ICMPv6NDOptMTU(mtu=1500)/ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02"))
    name: 'neighbor advertisement',
    frame: fromHex(
      '6000000000283aff' +
        'fe800000000000000000000000000002' +
        'fe800000000000000000000000000001' +
        '8800ad34c0000000' +
        'fe800000000000000000000000000002' +
        '05010000000005dc' +
        '0201020000000002',
    ),
    repr: { kind: 'neighborAdvert', router: true, solicited: true, override: false, target: FE80_2, targetLinkAddr: 0x020000000002 },
    type: ICMPV6_NEIGHBOR_ADVERT,
    code: 0,
    checksum: 0xad34,
    rest: 0xc0000000,
    // Without the skipped option.
    // scapy: raw(IPv6(src="fe80::2", dst="fe80::1", hlim=255)/ICMPv6ND_NA(R=1, S=1, O=0, tgt="fe80::2")/ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02"))
    emitted: fromHex(
      '6000000000203aff' +
        'fe800000000000000000000000000002' +
        'fe800000000000000000000000000001' +
        '8800b819c0000000' +
        'fe800000000000000000000000000002' +
        '0201020000000002',
    ),
  },
  {
    // scapy: raw(IPv6(src="fe80::2", dst="ff02::1", hlim=255)/ICMPv6ND_NA(R=0, S=0, O=1, tgt="fe80::2"))
    name: 'neighbor advertisement (unsolicited, no option)',
    frame: fromHex(
      '6000000000183aff' + 'fe800000000000000000000000000002' + 'ff020000000000000000000000000001' + '88005ba320000000' + 'fe800000000000000000000000000002',
    ),
    repr: { kind: 'neighborAdvert', router: false, solicited: false, override: true, target: FE80_2, targetLinkAddr: null },
    type: ICMPV6_NEIGHBOR_ADVERT,
    code: 0,
    checksum: 0x5ba3,
    rest: 0x20000000,
  },
];

/** Bytes after the fixed part that the construct test copies in as they are (data, ND options). */
function tail(g: Golden): Uint8Array {
  const body = g.repr.kind === 'neighborSolicit' || g.repr.kind === 'neighborAdvert' ? 24 : ICMPV6_HEADER_LEN;
  return g.frame.subarray(IP6 + body);
}

for (const g of GOLDENS) {
  const msgLen = g.frame.length - IP6;

  test(`icmpv6 ${g.name}: deconstruct`, () => {
    assert.equal(g.frame[6], ICMP6);
    const v = new Icmpv6View(g.frame, IP6);
    assert.equal(v.check(msgLen), null);
    assert.equal(v.type, g.type);
    assert.equal(v.code, g.code);
    assert.equal(v.checksum, g.checksum);
    assert.equal(v.rest, g.rest);
    assert.ok(v.verifyChecksum(pseudo(g.frame), msgLen));
    const r = g.repr;
    switch (r.kind) {
      case 'echoRequest':
      case 'echoReply':
        assert.equal(v.ident, r.ident);
        assert.equal(v.seq, r.seq);
        break;
      case 'packetTooBig':
        assert.equal(v.mtu, r.mtu);
        break;
      case 'neighborSolicit':
      case 'neighborAdvert': {
        assert.deepEqual(v.target, r.target);
        assert.equal(v.targetOffset, IP6 + 8);
        const mac = r.kind === 'neighborSolicit' ? r.sourceLinkAddr : r.targetLinkAddr;
        const o = v.ndLinkAddrOffset(msgLen);
        assert.equal(o < 0 ? null : rdMac(g.frame, o), mac);
        if (r.kind === 'neighborAdvert') {
          assert.equal(v.router, r.router);
          assert.equal(v.solicited, r.solicited);
          assert.equal(v.override, r.override);
        }
        break;
      }
      default:
        break;
    }
    if ('data' in r) {
      assert.equal(v.payloadOffset, IP6 + ICMPV6_HEADER_LEN);
      assert.equal(v.payloadLen(msgLen), r.data.length);
      assert.deepEqual(g.frame.subarray(v.payloadOffset), r.data);
    }
  });

  test(`icmpv6 ${g.name}: construct`, () => {
    const b = dirty(g.frame.length);
    b.set(g.frame.subarray(0, IP6));
    const v = new Icmpv6View(b, IP6);
    v.type = g.type;
    v.code = g.code;
    const r = g.repr;
    switch (r.kind) {
      case 'echoRequest':
      case 'echoReply':
        v.ident = r.ident;
        v.seq = r.seq;
        break;
      case 'packetTooBig':
        v.mtu = r.mtu;
        break;
      case 'neighborAdvert':
        v.rest = 0;
        v.router = r.router;
        v.solicited = r.solicited;
        v.override = r.override;
        v.target = r.target;
        break;
      case 'neighborSolicit':
        v.rest = 0;
        v.target = r.target;
        break;
      default:
        v.rest = g.rest;
        break;
    }
    b.set(tail(g), g.frame.length - tail(g).length);
    v.fillChecksum(pseudo(b), msgLen);
    assert.deepEqual(b, g.frame);
  });

  test(`icmpv6 ${g.name}: parse`, () => {
    assert.deepEqual(parseIcmpv6(new Icmpv6View(g.frame, IP6), msgLen), g.repr);
  });

  test(`icmpv6 ${g.name}: emit`, () => {
    const want = g.emitted ?? g.frame;
    assert.equal(icmpv6BufferLen(g.repr), want.length - IP6);
    const b = dirty(want.length + 3);
    b.set(want.subarray(0, IP6));
    emitIcmpv6(g.repr, b, IP6, pseudo(want));
    assert.deepEqual(b.subarray(0, want.length), want);
    assert.deepEqual(b.subarray(want.length), dirty(3));
  });
}

test('icmpv6: the quoted IPv6 header survives parse and emit', () => {
  for (const g of GOLDENS.filter((x) => 'data' in x.repr && x.repr.data.length === QUOTED.length)) {
    const r = parseIcmpv6(new Icmpv6View(g.frame, IP6), g.frame.length - IP6);
    assert.ok(typeof r !== 'number' && 'data' in r);
    assert.equal(r.data[0]! >>> 4, 6);
    assert.equal(r.data[6], 17);
    assert.deepEqual(r.data.subarray(8, 40), QUOTED.subarray(8, 40));
    assert.deepEqual(r.data.subarray(40, 44), fromHex('9c400035'));
    // Re-emitting over its own frame (the data overlaps the destination) keeps the quote intact.
    const b = g.frame.slice();
    const again = parseIcmpv6(new Icmpv6View(b, IP6), b.length - IP6);
    assert.ok(typeof again !== 'number');
    emitIcmpv6(again, b, IP6, pseudo(b));
    assert.deepEqual(b, g.frame);
  }
});

test('icmpv6: packet too big ignores its code; NS with a non-zero code is not ND', () => {
  const ptb = GOLDENS[2]!.frame.slice();
  ptb[IP6 + 1] = 7;
  const r = parseIcmpv6(new Icmpv6View(ptb, IP6), ptb.length - IP6);
  assert.ok(typeof r !== 'number' && r.kind === 'packetTooBig' && r.mtu === 1280);
  const ns = GOLDENS[7]!.frame.slice();
  ns[IP6 + 1] = 1;
  const o = parseIcmpv6(new Icmpv6View(ns, IP6), ns.length - IP6);
  assert.ok(typeof o !== 'number' && o.kind === 'other' && o.type === ICMPV6_NEIGHBOR_SOLICIT && o.data.length === 24);
});

test('icmpv6: truncated messages and malformed ND options are drop reasons', () => {
  const ns = GOLDENS[7]!.frame;
  const nsLen = ns.length - IP6;
  const at = (b: Uint8Array, len: number): Icmpv6Repr | DropReason => parseIcmpv6(new Icmpv6View(b, IP6), len);
  assert.equal(at(ns, 7), DropReason.Icmpv6Truncated);
  assert.equal(at(ns, 23), DropReason.Icmpv6Truncated);
  // Cut inside the option: it runs past the end.
  assert.equal(at(ns, 25), DropReason.Icmpv6BadNdOption);
  assert.equal(at(ns, 31), DropReason.Icmpv6BadNdOption);
  // Length zero (RFC 4861 §4.6).
  const zero = ns.slice();
  zero[IP6 + 25] = 0;
  assert.equal(at(zero, nsLen), DropReason.Icmpv6BadNdOption);
  // Length 2 where only 8 bytes are left.
  const long = ns.slice();
  long[IP6 + 25] = 2;
  assert.equal(at(long, nsLen), DropReason.Icmpv6BadNdOption);
  // A link-layer address option longer than Ethernet's is skipped, not an error.
  const wide = new Uint8Array(ns.length + 8);
  wide.set(ns);
  wide[IP6 + 25] = 2;
  const r = at(wide, nsLen + 8);
  assert.ok(typeof r !== 'number' && r.kind === 'neighborSolicit' && r.sourceLinkAddr === null);
  // Error messages need only the 8-byte header.
  assert.deepEqual(at(GOLDENS[3]!.frame, 8), { kind: 'destUnreachable', code: 4, data: new Uint8Array(0) });
});

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.nat({ max: 0xffff_ffff });
const mac = fc.integer({ min: 0, max: 0xffff_ffff_ffff });
const data = fc.uint8Array({ maxLength: 64 });
const addr = fc.uint8Array({ minLength: 16, maxLength: 16 });
const opts = { noNullPrototype: true } as const;
const icmpv6Repr: fc.Arbitrary<Icmpv6Repr> = fc.oneof(
  fc.record({ kind: fc.constantFrom('echoRequest' as const, 'echoReply' as const), ident: u16, seq: u16, data }, opts),
  fc.record({ kind: fc.constant('packetTooBig' as const), mtu: u32, data }, opts),
  fc.record({ kind: fc.constantFrom('destUnreachable' as const, 'timeExceeded' as const), code: u8, data }, opts),
  fc.record({ kind: fc.constant('neighborSolicit' as const), target: addr, sourceLinkAddr: fc.option(mac, { nil: null }) }, opts),
  fc.record(
    {
      kind: fc.constant('neighborAdvert' as const),
      router: fc.boolean(),
      solicited: fc.boolean(),
      override: fc.boolean(),
      target: addr,
      targetLinkAddr: fc.option(mac, { nil: null }),
    },
    opts,
  ),
  fc
    .record({ kind: fc.constant('other' as const), type: u8, code: u8, rest: u32, data }, opts)
    .filter(
      (r) =>
        ![ICMPV6_DEST_UNREACHABLE, ICMPV6_PACKET_TOO_BIG, ICMPV6_TIME_EXCEEDED].includes(r.type) &&
        !([ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY, ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_NEIGHBOR_ADVERT].includes(r.type) && r.code === 0),
    ),
);

test('icmpv6: emit then parse is the identity', () => {
  fc.assert(
    fc.property(icmpv6Repr, fc.nat(8), u32, (repr, off, pseudoSum) => {
      const len = icmpv6BufferLen(repr);
      const b = dirty(off + len + 4);
      emitIcmpv6(repr, b, off, pseudoSum);
      const v = new Icmpv6View(b, off);
      assert.ok(v.verifyChecksum(pseudoSum, len));
      assert.deepEqual(parseIcmpv6(v, len), repr);
    }),
  );
});

function checkNeverThrows(frame: Uint8Array): void {
  const v = new Icmpv6View(frame, 0);
  const r = parseIcmpv6(v, frame.length);
  if (typeof r === 'number') {
    assert.ok(r === DropReason.Icmpv6Truncated || r === DropReason.Icmpv6BadNdOption);
    return;
  }
  v.verifyChecksum(0, frame.length);
  void v.rest;
  if (r.kind === 'neighborSolicit' || r.kind === 'neighborAdvert') {
    assert.equal(r.target.length, 16);
    v.ndLinkAddrOffset(frame.length);
  } else {
    assert.equal(v.payloadOffset + r.data.length, frame.length);
  }
}

test('icmpv6: arbitrary and truncated bytes never throw and never read outside the frame', () => {
  const withNdType = fc.tuple(fc.uint8Array({ maxLength: 80 }), fc.constantFrom(135, 136, 128, 2, 1), fc.boolean()).map(([b, t, force]) => {
    if (force && b.length >= 2) {
      b[0] = t;
      b[1] = 0;
    }
    return b;
  });
  fc.assert(
    fc.property(withNdType, fc.nat(80), (bytes, cut) => {
      checkNeverThrows(guarded(bytes.subarray(0, Math.min(cut, bytes.length))));
    }),
  );
});

test('icmpv6: mutated golden bytes never throw and never read outside the frame', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...GOLDENS.map((g) => g.frame.subarray(IP6))),
      fc.array(fc.tuple(fc.nat(63), u8), { maxLength: 4 }),
      fc.nat(64),
      (golden, muts, cut) => {
        const b = golden.slice(0, cut);
        for (const [i, x] of muts) if (i < b.length) b[i] = x;
        checkNeverThrows(guarded(b));
      },
    ),
  );
});
