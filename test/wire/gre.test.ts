import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DropReason } from '../../src/wire/drop.js';
import { emitGre, GRE_PROTO_TEB, greBufferLen, greHeaderLen, GreView, parseGre, type GreRepr } from '../../src/wire/gre.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy: raw(GRE(key_present=1, key=0xdeadbeef, proto=0x6558)/b"hi!")
const KEYED = fromHex('20006558' + 'deadbeef' + '686921');
const KEYED_REPR: GreRepr = { protocolType: GRE_PROTO_TEB, checksum: false, key: 0xdeadbeef, sequence: null };
// scapy: raw(GRE(chksum_present=1, key_present=1, seqnum_present=1, key=0x01020304, sequence_number=7,
//                proto=0x6558)/b"hi!")
const FULL = fromHex('b0006558' + '5d300000' + '01020304' + '00000007' + '686921');
const FULL_REPR: GreRepr = { protocolType: GRE_PROTO_TEB, checksum: true, key: 0x01020304, sequence: 7 };
// scapy: raw(GRE(chksum_present=1, proto=0x0800)/b"\x12") — an odd-length payload under the checksum
const ODD = fromHex('80000800' + '65ff0000' + '12');

/** Fills a dirty buffer with the golden payload after a header of `hlen` bytes. */
function withPayload(golden: Uint8Array, hlen: number): Uint8Array {
  const b = dirty(golden.length);
  b.set(golden.subarray(hlen), hlen);
  return b;
}

test('gre: deconstruct', () => {
  const k = new GreView(KEYED, 0);
  assert.equal(k.check(KEYED.length), null);
  assert.equal(k.checksumPresent, false);
  assert.equal(k.keyPresent, true);
  assert.equal(k.sequencePresent, false);
  assert.equal(k.reserved0, 0);
  assert.equal(k.version, 0);
  assert.equal(k.protocolType, 0x6558);
  assert.equal(k.checksum, null);
  assert.equal(k.reserved1, null);
  assert.equal(k.key, 0xdeadbeef);
  assert.equal(k.sequence, null);
  assert.equal(k.headerLen, 8);
  assert.equal(k.payloadOffset, 8);
  assert.ok(k.verifyChecksum(KEYED.length));

  const f = new GreView(FULL, 0);
  assert.equal(f.check(FULL.length), null);
  assert.equal(f.flagsVersion, 0xb000);
  assert.ok(f.checksumPresent && f.keyPresent && f.sequencePresent);
  assert.equal(f.checksum, 0x5d30);
  assert.equal(f.reserved1, 0);
  assert.equal(f.key, 0x01020304);
  assert.equal(f.sequence, 7);
  assert.equal(f.headerLen, 16);
  assert.equal(f.payloadOffset, 16);
  assert.ok(f.verifyChecksum(FULL.length));
  assert.ok(new GreView(ODD, 0).verifyChecksum(ODD.length));
});

test('gre: construct', () => {
  const k = withPayload(KEYED, 8);
  const kv = new GreView().at(k, 0);
  kv.flagsVersion = 0;
  kv.keyPresent = true;
  kv.protocolType = GRE_PROTO_TEB;
  kv.key = 0xdeadbeef;
  assert.deepEqual(k, KEYED);

  const f = withPayload(FULL, 16);
  const fv = new GreView(f, 0);
  fv.checksumPresent = true;
  fv.keyPresent = true;
  fv.sequencePresent = true;
  fv.reserved0 = 0;
  fv.version = 0;
  fv.protocolType = GRE_PROTO_TEB;
  fv.reserved1 = 0;
  fv.key = 0x01020304;
  fv.sequence = 7;
  fv.fillChecksum(FULL.length);
  assert.deepEqual(f, FULL);
});

test('gre: parse', () => {
  assert.deepEqual(parseGre(new GreView(KEYED, 0), KEYED.length), KEYED_REPR);
  assert.deepEqual(parseGre(new GreView(FULL, 0), FULL.length), FULL_REPR);
  assert.deepEqual(parseGre(new GreView(ODD, 0), ODD.length), { protocolType: 0x0800, checksum: true, key: null, sequence: null });
});

test('gre: emit', () => {
  assert.equal(greBufferLen(KEYED_REPR), 8);
  const k = withPayload(KEYED, 8);
  emitGre(KEYED_REPR, k, 0, 3);
  assert.deepEqual(k, KEYED);
  assert.equal(greBufferLen(FULL_REPR), 16);
  const f = withPayload(FULL, 16);
  emitGre(FULL_REPR, f, 0, 3);
  assert.deepEqual(f, FULL);
  const o = withPayload(ODD, 8);
  emitGre({ protocolType: 0x0800, checksum: true, key: null, sequence: null }, o, 0, 1);
  assert.deepEqual(o, ODD);
});

test('gre: version and the flags RFC 2784 §2.3 says to discard are drop reasons; bits 6-12 are ignored', () => {
  const check = (hex: string): DropReason | null => {
    const b = fromHex(hex);
    return new GreView(b, 0).check(b.length);
  };
  assert.equal(check('0001880b'), DropReason.GreBadVersion); // scapy: GRE(version=1, proto=0x880b)
  assert.equal(check('4000655800000000'), DropReason.GreUnsupportedFlags); // scapy: GRE(routing_present=1, proto=0x6558)
  assert.equal(check('08006558'), DropReason.GreUnsupportedFlags); // scapy: GRE(strict_route_source=1, proto=0x6558)
  assert.equal(check('04006558'), DropReason.GreUnsupportedFlags); // scapy: GRE(recursion_control=4, proto=0x6558)
  assert.equal(check('03f86558'), null); // scapy: GRE(recursion_control=3, flags=0x1f, proto=0x6558)
  const v = new GreView(fromHex('03f86558'), 0);
  assert.equal(v.reserved0, 0x03f8);
  assert.equal(check('00006558'), null); // scapy: GRE(proto=0x6558)
  assert.equal(check('000065'), DropReason.GreTruncated);
  assert.equal(new GreView(FULL, 0).check(15), DropReason.GreTruncated);
  assert.equal(new GreView(FULL, 0).check(16), null);
});

test('gre: a corrupted payload fails the checksum', () => {
  const b = FULL.slice();
  b[17] = b[17]! ^ 1;
  assert.equal(new GreView(b, 0).verifyChecksum(b.length), false);
});

test('gre: writing an absent optional field is refused', () => {
  const v = new GreView(KEYED.slice(), 0);
  assert.throws(() => {
    v.sequence = 1;
  }, RangeError);
  assert.throws(() => {
    v.checksum = 1;
  }, RangeError);
});

const arbRepr: fc.Arbitrary<GreRepr> = fc.record(
  {
    protocolType: fc.integer({ min: 0, max: 0xffff }),
    checksum: fc.boolean(),
    key: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: null }),
    sequence: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: null }),
  },
  { noNullPrototype: true },
);

test('gre: emit then parse is the identity', () => {
  fc.assert(
    fc.property(arbRepr, fc.uint8Array({ maxLength: 33 }), fc.nat(8), (repr, payload, off) => {
      const len = greBufferLen(repr);
      const b = dirty(off + len + payload.length);
      b.set(payload, off + len);
      emitGre(repr, b, off, payload.length);
      const v = new GreView(guarded(b), off);
      assert.equal(v.headerLen, len);
      assert.equal(greHeaderLen(v.flagsVersion), len);
      assert.deepEqual(parseGre(v, len + payload.length), repr);
      assert.ok(v.verifyChecksum(len + payload.length));
    }),
  );
});

test('gre: arbitrary, truncated and mutated bytes never throw or read outside the frame', () => {
  const probe = (frame: Uint8Array): void => {
    const v = new GreView(frame, 0);
    const r = parseGre(v, frame.length);
    if (typeof r === 'number') assert.ok(DropReason[r] !== undefined);
    else {
      assert.ok(v.payloadOffset <= frame.length);
      assert.ok(v.reserved0 >= 0 && (v.checksum ?? 0) >= 0 && (v.reserved1 ?? 0) >= 0);
      v.verifyChecksum(frame.length);
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 24 }), fc.nat(24), (bytes, cut) => {
      const b = bytes.slice(0, Math.min(cut, bytes.length));
      // Clear version and discard bits half the time so the optional fields are reached.
      if (b.length > 1 && (cut & 1) === 0) {
        b[0] = b[0]! & 0xb3;
        b[1] = b[1]! & 0xf8;
      }
      probe(guarded(b));
    }),
  );
  fc.assert(
    fc.property(arbRepr, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(24), (repr, at, x, cut) => {
      const b = new Uint8Array(greBufferLen(repr) + 4);
      emitGre(repr, b, 0, 4);
      b[at % b.length] = b[at % b.length]! ^ x;
      probe(guarded(b.subarray(0, Math.min(cut, b.length))));
    }),
  );
});
