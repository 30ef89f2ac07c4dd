import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DropReason } from '../../src/wire/drop.js';
import { IPPROTO_ESP } from '../../src/wire/ipproto.js';
import {
  emitEsp,
  emitEspTrailer,
  ESP_HEADER_LEN,
  ESP_TRAILER_LEN,
  ESP_UDP_PORT,
  espBufferLen,
  espPadLen,
  espTrailerBufferLen,
  EspView,
  parseEsp,
  parseEspTrailer,
  type EspRepr,
  type EspTrailerRepr,
} from '../../src/wire/esp.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy (NULL cipher, so the trailer is in clear; the ICV is scapy's, not checked here):
// sa = SecurityAssociation(ESP, spi=0x1000, crypt_algo='NULL', crypt_key=None,
//                          auth_algo='HMAC-SHA1-96', auth_key=b'k'*20)
// raw(sa.encrypt(IP(src='10.0.0.1', dst='10.0.0.2')/UDP(sport=1, dport=2)/b'hi!', seq_num=5))[20:]
const GOLDEN = fromHex('00001000' + '00000005' + '00010002000b6296686921' + '010203' + '03' + '11' + 'd13cf49504553c4ed4940849');
const ICV_LEN = 12;
const PAYLOAD_LEN = 11;
const REPR: EspRepr = { spi: 0x1000, seq: 5 };
const TRAILER: EspTrailerRepr = { padLen: 3, nextHeader: 17 };
// scapy: as above with auth_algo='NULL', auth_key=None and b'hi!hi' (no ICV, one byte of padding)
const NO_ICV = fromHex('00001000' + '00000005' + '00010002000df8fc6869216869' + '01' + '01' + '11');

test('esp: deconstruct', () => {
  assert.equal(IPPROTO_ESP, 50);
  assert.equal(ESP_UDP_PORT, 4500);
  const v = new EspView(GOLDEN, 0);
  const end = GOLDEN.length;
  assert.equal(v.check(GOLDEN.length), null);
  assert.equal(v.spi, 0x1000);
  assert.equal(v.seq, 5);
  assert.equal(v.payloadOffset, 8);
  assert.equal(v.checkTrailer(end, ICV_LEN, true), null);
  assert.equal(v.trailerOffset(end, ICV_LEN), 22);
  assert.equal(v.padLen(end, ICV_LEN), 3);
  assert.equal(v.nextHeader(end, ICV_LEN), 17);
  assert.equal(v.payloadEnd(end, ICV_LEN), 8 + PAYLOAD_LEN);
  assert.equal(v.icvOffset(end, ICV_LEN), 24);
  const w = new EspView(NO_ICV, 0);
  assert.equal(w.checkTrailer(NO_ICV.length, 0, true), null);
  assert.equal(w.padLen(NO_ICV.length, 0), 1);
  assert.equal(w.payloadEnd(NO_ICV.length, 0), 21);
});

test('esp: construct', () => {
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(8, 8 + PAYLOAD_LEN), 8);
  b.set(GOLDEN.subarray(GOLDEN.length - ICV_LEN), GOLDEN.length - ICV_LEN);
  const v = new EspView().at(b, 0);
  v.spi = 0x1000;
  v.seq = 5;
  v.setPadLen(b.length, ICV_LEN, 3);
  v.setNextHeader(b.length, ICV_LEN, 17);
  for (let i = 0; i < 3; i++) b[v.payloadEnd(b.length, ICV_LEN) + i] = i + 1;
  assert.deepEqual(b, GOLDEN);
});

test('esp: parse', () => {
  const v = new EspView(GOLDEN, 0);
  assert.deepEqual(parseEsp(v, GOLDEN.length), REPR);
  assert.deepEqual(parseEspTrailer(v, GOLDEN.length, ICV_LEN, true), TRAILER);
  assert.deepEqual(parseEspTrailer(new EspView(NO_ICV, 0), NO_ICV.length, 0), { padLen: 1, nextHeader: 17 });
});

test('esp: emit', () => {
  assert.equal(espBufferLen(REPR), ESP_HEADER_LEN);
  assert.equal(espPadLen(PAYLOAD_LEN, 1), 3);
  assert.equal(espTrailerBufferLen(TRAILER), 5);
  const b = dirty(GOLDEN.length);
  b.set(GOLDEN.subarray(8, 8 + PAYLOAD_LEN), 8);
  b.set(GOLDEN.subarray(GOLDEN.length - ICV_LEN), GOLDEN.length - ICV_LEN);
  emitEsp(REPR, b, 0);
  emitEspTrailer(b, 8 + PAYLOAD_LEN, espPadLen(PAYLOAD_LEN, 1), 17);
  assert.deepEqual(b, GOLDEN);
  const c = dirty(NO_ICV.length);
  c.set(NO_ICV.subarray(8, 21), 8);
  emitEsp(REPR, c, 0);
  emitEspTrailer(c, 21, espPadLen(13, 1), 17);
  assert.deepEqual(c, NO_ICV);
});

test('esp: padding lengths match scapy for NULL, 3DES and AES-CBC', () => {
  // scapy: CRYPT_ALGOS[name].pad(_ESPPlain(spi=1, seq=1, iv=b'', data=b'x'*n, nh=4)).padlen
  const lens = [0, 1, 2, 13, 14, 15, 16, 30, 31];
  assert.deepEqual(
    lens.map((n) => espPadLen(n, 1)),
    [2, 1, 0, 1, 0, 3, 2, 0, 3],
  );
  assert.deepEqual(
    lens.map((n) => espPadLen(n, 8)),
    [6, 5, 4, 1, 0, 7, 6, 0, 7],
  );
  assert.deepEqual(
    lens.map((n) => espPadLen(n, 16)),
    [14, 13, 12, 1, 0, 15, 14, 0, 15],
  );
});

test('esp: truncation, a pad length that does not fit and wrong padding are drop reasons', () => {
  const v = new EspView(GOLDEN, 0);
  assert.equal(v.check(7), DropReason.EspTruncated);
  // Header, trailer and ICV need 22 bytes; 21 do not hold them.
  assert.equal(new EspView(GOLDEN.subarray(0, 21), 0).checkTrailer(21, ICV_LEN), DropReason.EspTruncated);
  const big = GOLDEN.slice();
  big[22] = 15; // 14 bytes lie between header and pad length
  assert.equal(new EspView(big, 0).checkTrailer(big.length, ICV_LEN), DropReason.EspBadTrailer);
  big[22] = 14;
  assert.equal(new EspView(big, 0).checkTrailer(big.length, ICV_LEN), null);
  // Non-default padding passes unless the receiver chooses to check it (RFC 4303 §2.4 MAY).
  const pad = GOLDEN.slice();
  pad[20] = 9;
  assert.equal(new EspView(pad, 0).checkTrailer(pad.length, ICV_LEN), null);
  assert.equal(new EspView(pad, 0).checkTrailer(pad.length, ICV_LEN, true), DropReason.EspBadTrailer);
  assert.equal(parseEspTrailer(new EspView(pad, 0), pad.length, ICV_LEN, true), DropReason.EspBadTrailer);
});

interface Packet {
  spi: number;
  seq: number;
  payload: Uint8Array;
  blockSize: number;
  nextHeader: number;
  icvLen: number;
  off: number;
}

const arbPacket: fc.Arbitrary<Packet> = fc.record({
  spi: fc.integer({ min: 1, max: 0xffffffff }),
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  payload: fc.uint8Array({ maxLength: 40 }),
  blockSize: fc.constantFrom(0, 1, 4, 8, 16, 256),
  nextHeader: fc.integer({ min: 0, max: 255 }),
  icvLen: fc.constantFrom(0, 8, 12, 16),
  off: fc.nat(8),
});

/** Lays out a whole ESP packet (header, payload, trailer, zero ICV) at `off` of a dirty buffer. */
function build(p: Packet): { b: Uint8Array; end: number; padLen: number } {
  const padLen = espPadLen(p.payload.length, p.blockSize);
  const end = p.off + ESP_HEADER_LEN + p.payload.length + padLen + ESP_TRAILER_LEN + p.icvLen;
  const b = dirty(end);
  emitEsp({ spi: p.spi, seq: p.seq }, b, p.off);
  b.set(p.payload, p.off + ESP_HEADER_LEN);
  emitEspTrailer(b, p.off + ESP_HEADER_LEN + p.payload.length, padLen, p.nextHeader);
  b.fill(0, end - p.icvLen);
  return { b, end, padLen };
}

test('esp: emit then parse is the identity', () => {
  fc.assert(
    fc.property(arbPacket, (p) => {
      const { b, end, padLen } = build(p);
      assert.ok(padLen < Math.max(p.blockSize, 4));
      assert.equal((p.payload.length + padLen + ESP_TRAILER_LEN) % Math.max(p.blockSize, 4), 0);
      const v = new EspView(guarded(b), p.off);
      assert.deepEqual(parseEsp(v, end - p.off), { spi: p.spi, seq: p.seq });
      assert.deepEqual(parseEspTrailer(v, end, p.icvLen, true), { padLen, nextHeader: p.nextHeader });
      assert.equal(v.payloadEnd(end, p.icvLen), p.off + ESP_HEADER_LEN + p.payload.length);
    }),
  );
});

test('esp: arbitrary, truncated and mutated bytes never throw or read outside the frame', () => {
  const probe = (frame: Uint8Array, icvLen: number): void => {
    const v = new EspView(frame, 0);
    const h = parseEsp(v, frame.length);
    if (typeof h === 'number') {
      assert.equal(h, DropReason.EspTruncated);
      return;
    }
    for (const verify of [false, true]) {
      const t = parseEspTrailer(v, frame.length, icvLen, verify);
      if (typeof t === 'number') assert.ok(t === DropReason.EspTruncated || t === DropReason.EspBadTrailer);
      else assert.ok(v.payloadEnd(frame.length, icvLen) >= v.payloadOffset);
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 48 }), fc.constantFrom(0, 8, 12, 16), (bytes, icvLen) => {
      probe(guarded(bytes), icvLen);
    }),
  );
  fc.assert(
    fc.property(arbPacket, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat(80), (p, at, x, cut) => {
      const { b } = build({ ...p, off: 0 });
      b[at % b.length] = b[at % b.length]! ^ x;
      probe(guarded(b.subarray(0, Math.min(cut, b.length))), p.icvLen);
    }),
  );
});
