import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { checksum, finish, fold, onesSum, pseudoSumV6At, updateChecksum16, updateChecksum32 } from '../../src/wire/checksum.js';
import { Ipv6View, Ipv6Walk, walkIpv6 } from '../../src/wire/ipv6.js';
import { fromHex } from '../helpers.js';

interface Vectors {
  checksum_examples: { bytes: string; checksum: string; source: string }[];
  packets_with_valid_checksums: { what: string; bytes: string }[];
}
// Published vectors (RFC 1071 examples and scapy's inet6.uts packets), copied from shared/vectors.
const V = JSON.parse(readFileSync(new URL('../../../test/vectors/checksums.json', import.meta.url), 'utf8')) as Vectors;

test('checksum: every RFC 1071 example', () => {
  assert.ok(V.checksum_examples.length >= 5);
  for (const e of V.checksum_examples) {
    const b = fromHex(e.bytes);
    assert.equal(checksum(b, 0, b.length).toString(16).padStart(4, '0'), e.checksum, e.source);
  }
});

test('checksum: every packet with a valid upper-layer checksum verifies, pseudo-header included', () => {
  assert.ok(V.packets_with_valid_checksums.length >= 12);
  const w = new Ipv6Walk();
  for (const p of V.packets_with_valid_checksums) {
    const b = fromHex(p.bytes);
    const v = new Ipv6View(b, 0);
    assert.equal(v.check(b.length), null, p.what);
    assert.equal(walkIpv6(b, 0, 40 + v.payloadLen, w), null, p.what);
    const upperLen = 40 + v.payloadLen - w.upperOff;
    const sum = onesSum(b, w.upperOff, upperLen, pseudoSumV6At(b, v.srcOffset, w.pseudoDstOff, w.upperProto, upperLen));
    assert.equal(finish(sum), 0, p.what);
    // And a single flipped bit in the covered data breaks it.
    b[b.length - 1] = b[b.length - 1]! ^ 0x01;
    assert.notEqual(finish(onesSum(b, w.upperOff, upperLen, pseudoSumV6At(b, v.srcOffset, w.pseudoDstOff, w.upperProto, upperLen))), 0, p.what);
  }
});

test('checksum: summing in pieces at even offsets equals summing at once', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(100), (b, cut) => {
      const c = Math.min(cut * 2, b.length - (b.length % 2));
      assert.equal(fold(onesSum(b, c, b.length - c, onesSum(b, 0, c))), fold(onesSum(b, 0, b.length)));
    }),
  );
});

// RFC 1624: the incremental update must equal a full recomputation, for 16- and 32-bit fields.
test('checksum: incremental update equals full recomputation', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 8, maxLength: 120 }), fc.nat(), fc.integer({ min: 0, max: 0xffff }), (raw, at, word) => {
      const b = raw.subarray(0, raw.length & ~1);
      const i = (at % (b.length / 2)) * 2;
      const before = checksum(b, 0, b.length);
      const old = (b[i]! << 8) | b[i + 1]!;
      b[i] = word >>> 8;
      b[i + 1] = word & 0xff;
      const full = checksum(b, 0, b.length);
      const inc = updateChecksum16(before, old, word);
      // 0x0000 and 0xffff are the same number in one's complement; RFC 1624 §3 explains why eqn. 3
      // may yield either where recomputation yields one of them.
      assert.equal(inc === 0xffff ? 0 : inc, full === 0xffff ? 0 : full);
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 8, maxLength: 120 }), fc.integer({ min: 0, max: 0xffffffff }), (raw, value) => {
      const b = raw.subarray(0, raw.length & ~3);
      const before = checksum(b, 0, b.length);
      const old = ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
      b[0] = value >>> 24;
      b[1] = (value >>> 16) & 0xff;
      b[2] = (value >>> 8) & 0xff;
      b[3] = value & 0xff;
      const full = checksum(b, 0, b.length);
      const inc = updateChecksum32(before, old, value);
      assert.equal(inc === 0xffff ? 0 : inc, full === 0xffff ? 0 : full);
    }),
  );
});

/** The RFC 1071 sum written out byte by byte: what `onesSum` must agree with after folding. */
function referenceSum(b: Uint8Array, off: number, len: number, sum: number): number {
  for (let i = 0; i < len; i += 2) sum += (b[off + i]! << 8) | (i + 1 < len ? b[off + i + 1]! : 0);
  return sum;
}

test('checksum: onesSum folds like the byte-by-byte sum for any buffer, offset (aligned or not), length and initial sum', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.nat(7),
      fc.nat(),
      fc.nat(),
      fc.nat(0xfffff),
      fc.boolean(),
      (bytes, shift, a, l, init, zeros) => {
        // A view that starts at any byte of a larger buffer, as packet windows do.
        const backing = new Uint8Array(bytes.length + 8);
        backing.set(zeros ? new Uint8Array(bytes.length) : bytes, shift);
        const b = backing.subarray(shift, shift + bytes.length);
        const off = bytes.length === 0 ? 0 : a % bytes.length;
        const len = l % (bytes.length - off + 1);
        const got = onesSum(b, off, len, init);
        const want = referenceSum(b, off, len, init);
        assert.equal(fold(got), fold(want));
        assert.equal(got === 0, want === 0, 'zero only for a zero sum');
      },
    ),
    { numRuns: 2000 },
  );
});
