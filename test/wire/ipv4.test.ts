import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DropReason } from '../../src/wire/drop.js';
import { emitIpv4, ipv4BufferLen, Ipv4View, parseIpv4, type Ipv4Repr } from '../../src/wire/ipv4.js';
import { ipv4ReprArb } from '../arbitraries.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy: raw(IP(src="192.168.0.1", dst="192.168.0.199", id=0x1c46, flags="DF", ttl=64, proto=17, tos=0xb8)/Raw(b"\0"*4))
const PLAIN = fromHex('45b800181c46400040119bbec0a80001c0a800c7' + '00000000');
const PLAIN_REPR: Ipv4Repr = {
  src: 0xc0a80001,
  dst: 0xc0a800c7,
  protocol: 17,
  ttl: 64,
  dscp: 46,
  ecn: 0,
  ident: 0x1c46,
  dontFrag: true,
  moreFrags: false,
  fragOffset: 0,
  options: new Uint8Array(0),
  payloadLen: 4,
};
// scapy: raw(IP(src="10.1.2.3", dst="10.4.5.6", id=7, flags="MF", frag=185, ttl=63, proto=6, options=[IPOption_RR(routers=["1.2.3.4"])])/Raw(b"abcd"))
const OPTS = fromHex('47000020000720b93f062d000a0102030a040506' + '0707040102030400' + '61626364');
const OPTS_REPR: Ipv4Repr = {
  src: 0x0a010203,
  dst: 0x0a040506,
  protocol: 6,
  ttl: 63,
  dscp: 0,
  ecn: 0,
  ident: 7,
  dontFrag: false,
  moreFrags: true,
  fragOffset: 185 * 8,
  options: fromHex('0707040102030400'),
  payloadLen: 4,
};

test('ipv4: deconstruct', () => {
  const v = new Ipv4View(OPTS, 0);
  assert.equal(v.check(OPTS.length), null);
  assert.equal(v.version, 4);
  assert.equal(v.headerLen, 28);
  assert.equal(v.optionsLen, 8);
  assert.equal(v.totalLen, 32);
  assert.equal(v.ident, 7);
  assert.equal(v.dontFrag, false);
  assert.equal(v.moreFrags, true);
  assert.equal(v.fragOffset, 1480);
  assert.equal(v.isFragment, true);
  assert.equal(v.ttl, 63);
  assert.equal(v.protocol, 6);
  assert.equal(v.checksum, 0x2d00);
  assert.equal(v.src, 0x0a010203);
  assert.equal(v.dst, 0x0a040506);
  assert.equal(v.payloadLen, 4);
  assert.ok(v.verifyChecksum());
});

test('ipv4: construct', () => {
  const b = dirty(PLAIN.length);
  b.set(PLAIN.subarray(20), 20);
  const v = new Ipv4View(b, 0);
  v.headerLen = 20;
  v.tos = 0xb8;
  v.totalLen = 24;
  v.ident = 0x1c46;
  v.flagsFrag = 0;
  v.dontFrag = true;
  v.ttl = 64;
  v.protocol = 17;
  v.src = 0xc0a80001;
  v.dst = 0xc0a800c7;
  v.fillChecksum();
  assert.deepEqual(b, PLAIN);
});

test('ipv4: parse', () => {
  assert.deepEqual(parseIpv4(new Ipv4View(PLAIN, 0), PLAIN.length), PLAIN_REPR);
  assert.deepEqual(parseIpv4(new Ipv4View(OPTS, 0), OPTS.length), OPTS_REPR);
});

test('ipv4: emit', () => {
  for (const [repr, golden] of [
    [PLAIN_REPR, PLAIN],
    [OPTS_REPR, OPTS],
  ] as const) {
    const b = dirty(golden.length);
    b.set(golden.subarray(ipv4BufferLen(repr)), ipv4BufferLen(repr));
    emitIpv4(repr, b, 0);
    assert.deepEqual(b, golden);
  }
});

test('ipv4: malformed headers are drop reasons', () => {
  const v = (b: Uint8Array): Ipv4Repr | DropReason => parseIpv4(new Ipv4View(b, 0), b.length);
  assert.equal(v(PLAIN.subarray(0, 19)), DropReason.Ipv4Truncated);
  const bad = PLAIN.slice();
  bad[0] = 0x65;
  assert.equal(v(bad), DropReason.Ipv4BadVersion);
  const ihl = PLAIN.slice();
  ihl[0] = 0x44;
  assert.equal(v(ihl), DropReason.Ipv4BadHeaderLen);
  const tl = PLAIN.slice();
  tl[3] = 0x19;
  assert.equal(v(tl), DropReason.Ipv4BadTotalLen);
  const ck = PLAIN.slice();
  ck[11] = ck[11]! ^ 1;
  assert.equal(v(ck), DropReason.Ipv4BadChecksum);
  assert.notEqual(typeof parseIpv4(new Ipv4View(ck, 0), ck.length, false), 'number');
  // Ethernet padding after the datagram is allowed.
  const padded = new Uint8Array(46);
  padded.set(PLAIN);
  assert.deepEqual(parseIpv4(new Ipv4View(padded, 0), padded.length), PLAIN_REPR);
});

test('ipv4: emit then parse is the identity', () => {
  fc.assert(
    fc.property(ipv4ReprArb, (repr) => {
      const b = dirty(ipv4BufferLen(repr) + repr.payloadLen);
      emitIpv4(repr, b, 0);
      assert.deepEqual(parseIpv4(new Ipv4View(b, 0), b.length), repr);
    }),
  );
});

test('ipv4: arbitrary, truncated and mutated bytes never throw or read outside the frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(80), fc.nat(255), (bytes, at, x) => {
      const m = OPTS.slice();
      m[at % m.length] = m[at % m.length]! ^ x;
      for (const b of [bytes, m, OPTS.subarray(0, at % OPTS.length)]) {
        const g = guarded(b);
        const r = parseIpv4(new Ipv4View(g, 0), g.length);
        if (typeof r !== 'number') assert.ok(ipv4BufferLen(r) + r.payloadLen <= g.length);
      }
    }),
  );
});
