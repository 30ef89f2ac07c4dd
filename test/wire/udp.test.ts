import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pseudoSumV4 } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop.js';
import { emitUdp, parseUdp, UDP_HEADER_LEN, UdpView, type UdpRepr } from '../../src/wire/udp.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2")/UDP(sport=49152, dport=4789)/b"hi!")[20:]
const GOLDEN = fromHex('c00012b5000b' + '8fb6' + '686921');
const REPR: UdpRepr = { srcPort: 49152, dstPort: 4789 };
const PSEUDO = pseudoSumV4(0x0a000001, 0x0a000002, 17, GOLDEN.length);

test('udp: deconstruct', () => {
  const v = new UdpView(GOLDEN, 0);
  assert.equal(v.check(GOLDEN.length), null);
  assert.equal(v.srcPort, 49152);
  assert.equal(v.dstPort, 4789);
  assert.equal(v.length, 11);
  assert.equal(v.checksum, 0x8fb6);
  assert.equal(v.payloadLen, 3);
  assert.ok(v.verifyChecksum(PSEUDO, true));
});

test('udp: construct', () => {
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(UDP_HEADER_LEN), UDP_HEADER_LEN);
  const v = new UdpView(b, 0);
  v.srcPort = 49152;
  v.dstPort = 4789;
  v.length = 11;
  v.fillChecksum(PSEUDO);
  assert.deepEqual(b, GOLDEN);
});

test('udp: parse', () => {
  assert.deepEqual(parseUdp(new UdpView(GOLDEN, 0), GOLDEN.length), REPR);
});

test('udp: emit', () => {
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(UDP_HEADER_LEN), UDP_HEADER_LEN);
  emitUdp(REPR, b, 0, 3, PSEUDO);
  assert.deepEqual(b, GOLDEN);
});

test('udp: truncated and bad lengths are drop reasons', () => {
  assert.equal(new UdpView(GOLDEN, 0).check(7), DropReason.UdpTruncated);
  assert.equal(new UdpView(GOLDEN, 0).check(10), DropReason.UdpBadLength);
  const b = GOLDEN.slice();
  b[5] = 4;
  assert.equal(new UdpView(b, 0).check(b.length), DropReason.UdpBadLength);
});

test('udp: a checksum computing to zero is sent as 0xffff', () => {
  // Find a payload word that makes the sum come out to zero, then check the emitted field.
  const b = new Uint8Array(10);
  emitUdp({ srcPort: 1, dstPort: 2 }, b, 0, 2, 0);
  const c = new UdpView(b, 0).checksum;
  b[8] = c >>> 8;
  b[9] = c & 0xff;
  emitUdp({ srcPort: 1, dstPort: 2 }, b, 0, 2, 0);
  assert.equal(new UdpView(b, 0).checksum, 0xffff);
  assert.ok(new UdpView(b, 0).verifyChecksum(0, false));
});

test('udp: emit then parse is the identity', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 64 }), (srcPort, dstPort, payload) => {
      const b = dirty(UDP_HEADER_LEN + payload.length);
      b.set(payload, UDP_HEADER_LEN);
      emitUdp({ srcPort, dstPort }, b, 0, payload.length, 1234);
      const v = new UdpView(b, 0);
      assert.deepEqual(parseUdp(v, b.length), { srcPort, dstPort });
      assert.ok(v.verifyChecksum(1234, false));
    }),
  );
});

test('udp: arbitrary and truncated bytes never throw and never read outside the frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(40), (bytes, cut) => {
      const frame = guarded(bytes.subarray(0, Math.min(cut, bytes.length)));
      const r = parseUdp(new UdpView(frame, 0), frame.length);
      if (typeof r === 'number') assert.ok(DropReason[r] !== undefined);
      else assert.ok(new UdpView(frame, 0).payloadOffset + new UdpView(frame, 0).payloadLen <= frame.length);
    }),
  );
});
