import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DropReason } from '../../src/wire/drop.js';
import {
  emitGeneve,
  GENEVE_HEADER_LEN,
  GENEVE_MAX_OPTIONS_LEN,
  GENEVE_UDP_PORT,
  geneveBufferLen,
  geneveCriticalFlag,
  geneveOptionKey,
  GeneveView,
  parseGeneve,
  type GeneveOption,
  type GeneveRepr,
} from '../../src/wire/geneve.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy (load_contrib('geneve')):
// raw(GENEVE(vni=0xabcdef, proto=0x6558, critical=1, options=[
//       GeneveOptions(classid=0x0102, type=0x80, data=b"\x01\x02\x03\x04"),
//       GeneveOptions(classid=0xffff, type=0x05, data=b"\xaa\xbb\xcc\xdd\xee\xff\x00\x11")]) / b"hi!")
const GOLDEN = fromHex('05406558' + 'abcdef00' + '01028001' + '01020304' + 'ffff0502' + 'aabbccddeeff0011' + '686921');
const HEADER_LEN = 28;
const REPR: GeneveRepr = {
  vni: 0xabcdef,
  protocolType: 0x6558,
  oam: false,
  critical: true,
  options: [
    { class: 0x0102, type: 0x80, data: fromHex('01020304') },
    { class: 0xffff, type: 0x05, data: fromHex('aabbccddeeff0011') },
  ],
};
// scapy: raw(GENEVE(vni=1, proto=0x0800, oam=1)/b"hi!")
const OAM = fromHex('00800800' + '00000100' + '686921');

function flip(b: Uint8Array, at: number, x: number): void {
  if (b.length > 0) b[at % b.length] = b[at % b.length]! ^ x;
}

test('geneve: deconstruct', () => {
  const v = new GeneveView(GOLDEN, 0);
  assert.equal(GENEVE_UDP_PORT, 6081);
  assert.equal(v.check(GOLDEN.length), null);
  assert.equal(v.version, 0);
  assert.equal(v.optLen, 5);
  assert.equal(v.headerLen, HEADER_LEN);
  assert.equal(v.oam, false);
  assert.equal(v.critical, true);
  assert.equal(v.reserved, 0);
  assert.equal(v.protocolType, 0x6558);
  assert.equal(v.vni, 0xabcdef);
  assert.equal(v.reserved2, 0);
  const o1 = v.firstOptionOffset;
  assert.equal(o1, 8);
  assert.equal(v.optionClass(o1), 0x0102);
  assert.equal(v.optionType(o1), 0x80);
  assert.equal(v.optionCritical(o1), true);
  assert.equal(v.optionReserved(o1), 0);
  assert.equal(v.optionDataLen(o1), 4);
  assert.equal(v.optionDataOffset(o1), 12);
  const o2 = v.nextOptionOffset(o1);
  assert.equal(o2, 16);
  assert.equal(v.optionClass(o2), 0xffff);
  assert.equal(v.optionType(o2), 0x05);
  assert.equal(v.optionCritical(o2), false);
  assert.equal(v.optionDataLen(o2), 8);
  assert.equal(v.nextOptionOffset(o2), v.optionsEnd);
  assert.equal(v.payloadOffset, HEADER_LEN);
});

test('geneve: construct', () => {
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(HEADER_LEN), HEADER_LEN);
  const v = new GeneveView().at(b, 0);
  v.version = 0;
  v.optLen = 5;
  v.oam = false;
  v.critical = true;
  v.reserved = 0;
  v.protocolType = 0x6558;
  v.vni = 0xabcdef;
  v.reserved2 = 0;
  const o1 = v.firstOptionOffset;
  v.setOptionHeader(o1, 0x0102, 0x80, 4);
  b.set(fromHex('01020304'), v.optionDataOffset(o1));
  const o2 = v.nextOptionOffset(o1);
  v.setOptionHeader(o2, 0xffff, 0x05, 8);
  b.set(fromHex('aabbccddeeff0011'), v.optionDataOffset(o2));
  assert.deepEqual(b, GOLDEN);
});

test('geneve: parse', () => {
  const r = parseGeneve(new GeneveView(GOLDEN, 0), GOLDEN.length);
  assert.deepEqual(r, REPR);
  // Option data are windows into the packet, not copies.
  assert.ok(typeof r !== 'number' && r.options[1]!.data.buffer === GOLDEN.buffer);
  assert.deepEqual(parseGeneve(new GeneveView(OAM, 0), OAM.length), { vni: 1, protocolType: 0x0800, oam: true, critical: false, options: [] });
});

test('geneve: emit', () => {
  assert.equal(geneveBufferLen(REPR), HEADER_LEN);
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(HEADER_LEN), HEADER_LEN);
  emitGeneve(REPR, b, 0);
  assert.deepEqual(b, GOLDEN);
  const c = dirty(OAM.length);
  c.set(OAM.subarray(GENEVE_HEADER_LEN), GENEVE_HEADER_LEN);
  emitGeneve({ vni: 1, protocolType: 0x0800, oam: true, critical: false, options: [] }, c, 0);
  assert.deepEqual(c, OAM);
});

test('geneve: the C bit helper and unknown critical options', () => {
  assert.equal(geneveCriticalFlag(REPR.options), true);
  assert.equal(geneveCriticalFlag(REPR.options.slice(1)), false);
  assert.equal(geneveCriticalFlag([]), false);
  const v = new GeneveView(GOLDEN, 0);
  assert.equal(v.hasUnknownCritical(new Set()), true);
  assert.equal(v.firstUnknownCritical(new Set()), 8);
  assert.equal(v.hasUnknownCritical(new Set([geneveOptionKey(0x0102, 0x80)])), false);
  // Known under another type, or with the critical bit cleared, is not the same option.
  assert.equal(v.hasUnknownCritical(new Set([geneveOptionKey(0x0102, 0x00), geneveOptionKey(0x0103, 0x80)])), true);
  // A sender that forgot the C bit does not hide a critical option.
  const b = GOLDEN.slice();
  b[1] = 0;
  assert.equal(new GeneveView(b, 0).hasUnknownCritical(new Set()), true);
  assert.equal(new GeneveView(OAM, 0).hasUnknownCritical(new Set()), false);
});

test('geneve: bad version, truncation and bad option lengths are drop reasons', () => {
  const ver = GOLDEN.slice();
  ver[0] = ver[0]! | 0x40;
  assert.equal(new GeneveView(ver, 0).check(ver.length), DropReason.GeneveBadVersion);
  assert.equal(new GeneveView(GOLDEN, 0).check(7), DropReason.GeneveTruncated);
  assert.equal(new GeneveView(GOLDEN, 0).check(HEADER_LEN - 1), DropReason.GeneveTruncated);
  assert.equal(new GeneveView(GOLDEN, 0).check(HEADER_LEN), null);
  const long = GOLDEN.slice();
  long[8 + 3] = 5; // the first option claims 20 bytes of data; only 16 remain in the area
  assert.equal(new GeneveView(long, 0).check(long.length), DropReason.GeneveBadOptionLen);
  const short = GOLDEN.slice();
  short[0] = 4; // Opt Len one word short: the second option now overruns the area
  assert.equal(new GeneveView(short, 0).check(short.length), DropReason.GeneveBadOptionLen);
  // Reserved bits are ignored on receipt.
  const rsv = GOLDEN.slice();
  rsv[1] = rsv[1]! | 0x3f;
  rsv[7] = 0xff;
  rsv[8 + 3] = rsv[8 + 3]! | 0xe0;
  const v = new GeneveView(rsv, 0);
  assert.equal(v.check(rsv.length), null);
  assert.equal(v.reserved, 0x3f);
  assert.equal(v.reserved2, 0xff);
  assert.equal(v.optionReserved(8), 7);
  assert.equal(v.optionDataLen(8), 4);
});

test('geneve: emit refuses options it cannot encode', () => {
  const base = { vni: 1, protocolType: 0x6558, oam: false, critical: false };
  assert.throws(() => geneveBufferLen({ ...base, options: [{ class: 1, type: 1, data: new Uint8Array(3) }] }), RangeError);
  assert.throws(() => geneveBufferLen({ ...base, options: [{ class: 1, type: 1, data: new Uint8Array(128) }] }), RangeError);
  const many = Array.from({ length: 3 }, () => ({ class: 1, type: 1, data: new Uint8Array(84) }));
  assert.throws(() => emitGeneve({ ...base, options: many }, new Uint8Array(300), 0), RangeError);
  assert.equal(geneveBufferLen({ ...base, options: many.slice(0, 2).concat([{ class: 1, type: 1, data: new Uint8Array(72) }]) }), 8 + GENEVE_MAX_OPTIONS_LEN);
});

const arbOption: fc.Arbitrary<GeneveOption> = fc.record(
  {
    class: fc.integer({ min: 0, max: 0xffff }),
    type: fc.integer({ min: 0, max: 0xff }),
    data: fc.uint8Array({ maxLength: 124 }).map((d) => d.slice(0, d.length & ~3)),
  },
  { noNullPrototype: true },
);
/** Options that fit the 252-byte area: the list is cut where the next option would not fit. */
const arbOptions: fc.Arbitrary<GeneveOption[]> = fc.array(arbOption, { maxLength: 12 }).map((opts) => {
  const out: GeneveOption[] = [];
  let len = 0;
  for (const o of opts) {
    if (len + 4 + o.data.length > GENEVE_MAX_OPTIONS_LEN) break;
    len += 4 + o.data.length;
    out.push(o);
  }
  return out;
});
const arbRepr: fc.Arbitrary<GeneveRepr> = fc.record(
  {
    vni: fc.integer({ min: 0, max: 0xffffff }),
    protocolType: fc.integer({ min: 0, max: 0xffff }),
    oam: fc.boolean(),
    critical: fc.boolean(),
    options: arbOptions,
  },
  { noNullPrototype: true },
);

test('geneve: emit then parse is the identity, and iteration visits exactly the emitted options', () => {
  fc.assert(
    fc.property(arbRepr, fc.uint8Array({ maxLength: 16 }), fc.nat(8), (repr, payload, off) => {
      const len = geneveBufferLen(repr);
      const b = dirty(off + len + payload.length);
      b.set(payload, off + len);
      emitGeneve(repr, b, off);
      const frame = guarded(b);
      const v = new GeneveView(frame, off);
      assert.equal(v.check(len + payload.length), null);
      assert.equal(v.headerLen, len);
      assert.deepEqual(parseGeneve(v, len + payload.length), repr);
      const seen: [number, number, number, number][] = [];
      for (let o = v.firstOptionOffset; o < v.optionsEnd; o = v.nextOptionOffset(o)) {
        seen.push([v.optionClass(o), v.optionType(o), v.optionDataLen(o), v.optionCritical(o) ? 1 : 0]);
      }
      assert.deepEqual(
        seen,
        repr.options.map((o) => [o.class, o.type, o.data.length, o.type >= 0x80 ? 1 : 0]),
      );
      assert.equal(v.hasUnknownCritical(new Set()), geneveCriticalFlag(repr.options));
      const known = new Set(repr.options.map((o) => geneveOptionKey(o.class, o.type)));
      assert.equal(v.hasUnknownCritical(known), false);
    }),
  );
});

test('geneve: arbitrary, truncated and mutated bytes never throw or read outside the frame', () => {
  const walk = (frame: Uint8Array, avail: number): void => {
    const v = new GeneveView(frame, 0);
    const r = parseGeneve(v, avail);
    if (typeof r === 'number') {
      assert.ok(DropReason[r] !== undefined);
      return;
    }
    assert.ok(v.payloadOffset <= avail);
    let n = 0;
    for (let o = v.firstOptionOffset; o < v.optionsEnd; o = v.nextOptionOffset(o)) {
      n++;
      assert.ok(v.optionDataOffset(o) + v.optionDataLen(o) <= v.optionsEnd);
    }
    assert.equal(n, r.options.length);
    v.hasUnknownCritical(new Set());
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 80 }), fc.nat(80), (bytes, cut) => {
      // Version 0 half the time so the option walk is reached.
      const b = bytes.slice(0, Math.min(cut, bytes.length));
      if (b.length > 0 && (cut & 1) === 0) b[0] = b[0]! & 0x3f;
      walk(guarded(b), b.length);
    }),
  );
  fc.assert(
    fc.property(arbRepr, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(300), (repr, at, x, cut) => {
      const b = new Uint8Array(geneveBufferLen(repr) + 4);
      emitGeneve(repr, b, 0);
      flip(b, at, x);
      const t = b.subarray(0, Math.min(cut, b.length));
      walk(guarded(t), t.length);
    }),
  );
});
