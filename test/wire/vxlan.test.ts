import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DropReason } from '../../src/wire/drop.js';
import { emitVxlan, parseVxlan, VXLAN_HEADER_LEN, VXLAN_UDP_PORT, VxlanView, type VxlanRepr } from '../../src/wire/vxlan.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy: raw(VXLAN(vni=0x123456)/b"hi!")
const GOLDEN = fromHex('08000000' + '12345600' + '686921');
const REPR: VxlanRepr = { vni: 0x123456 };
// scapy: raw(VXLAN(flags=0x88, gpid=112, vni=99)) — a VXLAN-GBP header: G bit and group policy ID sit in
// bits RFC 7348 reserves, which a plain VXLAN receiver ignores.
const GBP = fromHex('88000070' + '00006300');
// scapy: raw(VXLAN(flags=0x00, vni=99))
const NO_I = fromHex('00000000' + '00006300');

test('vxlan: deconstruct', () => {
  const v = new VxlanView(GOLDEN, 0);
  assert.equal(VXLAN_UDP_PORT, 4789);
  assert.equal(v.check(GOLDEN.length), null);
  assert.equal(v.flags, 0x08);
  assert.ok(v.instanceFlag);
  assert.equal(v.reserved1, 0);
  assert.equal(v.vni, 0x123456);
  assert.equal(v.reserved2, 0);
  assert.equal(v.payloadOffset, 8);
});

test('vxlan: construct', () => {
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(VXLAN_HEADER_LEN), VXLAN_HEADER_LEN);
  const v = new VxlanView().at(b, 0);
  v.flags = 0;
  v.instanceFlag = true;
  v.reserved1 = 0;
  v.vni = 0x123456;
  v.reserved2 = 0;
  assert.deepEqual(b, GOLDEN);
});

test('vxlan: parse', () => {
  assert.deepEqual(parseVxlan(new VxlanView(GOLDEN, 0), GOLDEN.length), REPR);
});

test('vxlan: emit', () => {
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(VXLAN_HEADER_LEN), VXLAN_HEADER_LEN);
  emitVxlan(REPR, b, 0);
  assert.deepEqual(b, GOLDEN);
});

test('vxlan: reserved bits are ignored on receipt but visible', () => {
  const v = new VxlanView(GBP, 0);
  assert.deepEqual(parseVxlan(v, GBP.length), { vni: 99 });
  assert.equal(v.flags, 0x88);
  assert.equal(v.reserved1, 0x70);
});

test('vxlan: I bit clear and truncation are drop reasons', () => {
  assert.equal(parseVxlan(new VxlanView(NO_I, 0), NO_I.length), DropReason.VxlanBadFlags);
  assert.equal(parseVxlan(new VxlanView(GOLDEN, 0), 7), DropReason.VxlanTruncated);
});

test('vxlan: emit at an offset then parse is the identity', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffff }), fc.nat(16), (vni, off) => {
      const b = dirty(off + VXLAN_HEADER_LEN);
      emitVxlan({ vni }, b, off);
      assert.deepEqual(parseVxlan(new VxlanView(b, off), VXLAN_HEADER_LEN), { vni });
    }),
  );
});

test('vxlan: arbitrary, truncated and mutated bytes never throw or read outside the frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 24 }), fc.nat(24), fc.nat(), fc.integer({ min: 0, max: 255 }), (bytes, cut, at, x) => {
      const b = bytes.slice(0, Math.min(cut, bytes.length));
      if (b.length > 0) b[at % b.length] = b[at % b.length]! ^ x;
      const frame = guarded(b);
      const v = new VxlanView(frame, 0);
      const r = parseVxlan(v, frame.length);
      if (typeof r === 'number') assert.ok(DropReason[r] !== undefined);
      else assert.ok(r.vni >= 0 && r.vni <= 0xffffff && v.flags + v.reserved1 + v.reserved2 >= 0);
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffff }), fc.nat(7), fc.nat(), fc.integer({ min: 0, max: 255 }), (vni, extra, at, x) => {
      // Mutations of a valid header, truncated anywhere.
      const b = new Uint8Array(VXLAN_HEADER_LEN + extra);
      emitVxlan({ vni }, b, 0);
      b[at % b.length] = b[at % b.length]! ^ x;
      for (let cut = 0; cut <= b.length; cut++) {
        const frame = guarded(b.subarray(0, cut));
        const r = parseVxlan(new VxlanView(frame, 0), cut);
        assert.ok(typeof r === 'number' ? DropReason[r] !== undefined : cut >= VXLAN_HEADER_LEN);
      }
    }),
  );
});
