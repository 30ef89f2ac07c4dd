/**
 * The AEAD primitives: libsodium's ChaCha20-Poly1305 agrees with OpenSSL's (node:crypto) on random
 * inputs; both algorithms seal and open in place at any offset of a buffer that is itself a window into a
 * larger ArrayBuffer; a bad tag, AAD, nonce or key is refused without a throw and leaves no plaintext;
 * arguments outside the buffer are refused before anything is touched.
 * (Published vectors: vectors.test.ts.)
 */
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { AEAD_KEY_LEN, createAead, type AeadAlgorithm } from '../../src/esp/aead.js';
import { hex } from '../helpers.js';

const ALGS = Object.keys(AEAD_KEY_LEN) as AeadAlgorithm[];

test('ChaCha20-Poly1305: libsodium (in place) and OpenSSL (node:crypto) agree', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 2000 }),
      fc.integer({ min: 0, max: 40 }),
      (key, nonce, aad, msg, off) => {
        const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
        c.setAAD(aad, { plaintextLength: msg.length });
        const want = hex(new Uint8Array([...c.update(msg), ...c.final(), ...c.getAuthTag()]));
        const buf = new Uint8Array(off + msg.length + 16 + 3);
        buf.set(msg, off);
        const a = createAead('chacha20-poly1305', key);
        assert.equal(a.seal(buf, off, msg.length, off + msg.length, nonce, aad), true);
        assert.equal(hex(buf, off, msg.length + 16), want);
        assert.equal(a.open(buf, off, msg.length, off + msg.length, nonce, aad), true);
        assert.equal(hex(buf, off, msg.length), hex(msg));
      },
    ),
    { numRuns: 200 },
  );
});

test('every algorithm seals and opens in place inside a window of a larger ArrayBuffer; any change is refused', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...ALGS),
      fc.integer({ min: 0, max: 0xffff }),
      fc.uint8Array({ maxLength: 1600 }),
      fc.integer({ min: 1, max: 64 }),
      fc.constantFrom('tag', 'aad', 'nonce', 'ciphertext', 'key'),
      fc.nat(),
      (alg, seed, msg, off, what, at) => {
        const key = new Uint8Array(AEAD_KEY_LEN[alg]).map((_, i) => (i * 13 + seed) & 0xff);
        const nonce = new Uint8Array(12).map((_, i) => (i + seed) & 0xff);
        const aad = new Uint8Array(12).map((_, i) => (i * 3 + seed) & 0xff);
        // `data` starts 7 bytes into its ArrayBuffer, like a Buffer from Node's pool.
        const ab = new ArrayBuffer(7 + off + msg.length + 16 + 5);
        const data = new Uint8Array(ab, 7, off + msg.length + 16 + 5);
        new Uint8Array(ab).fill(0xa5);
        data.set(msg, off);
        const a = createAead(alg, key);
        assert.equal(a.seal(data, off, msg.length, off + msg.length, nonce, aad), true);
        const all = new Uint8Array(ab);
        assert.ok(all.subarray(0, 7 + off).every((x) => x === 0xa5) && all.subarray(7 + off + msg.length + 16).every((x) => x === 0xa5), 'outside untouched');
        const sealed = data.slice();
        // Tampered: refused, and no plaintext left in the buffer.
        if (what !== 'ciphertext' || msg.length > 0) {
          let k = key,
            n = nonce,
            d = aad;
          if (what === 'tag') data[off + msg.length + (at % 16)]! ^= 1;
          else if (what === 'ciphertext') data[off + (at % msg.length)]! ^= 1;
          else if (what === 'aad') {
            d = aad.slice();
            d[at % 12]! ^= 1;
          } else if (what === 'nonce') {
            n = nonce.slice();
            n[at % 12]! ^= 1;
          } else {
            k = key.slice();
            k[at % k.length]! ^= 1;
          }
          const tampered = data.slice();
          assert.equal(createAead(alg, k).open(data, off, msg.length, off + msg.length, n, d), false);
          if (alg === 'chacha20-poly1305')
            assert.ok(
              data.subarray(off, off + msg.length).every((x) => x === 0),
              'zero-filled',
            );
          else assert.equal(hex(data), hex(tampered), 'untouched');
          data.set(sealed);
        }
        assert.equal(a.open(data, off, msg.length, off + msg.length, nonce, aad), true);
        assert.equal(hex(data, off, msg.length), hex(msg));
      },
    ),
    { numRuns: 300 },
  );
});

test('ranges outside the buffer, an overlapping tag or a nonce of another length: false, nothing touched', () => {
  for (const alg of ALGS) {
    const a = createAead(alg, new Uint8Array(AEAD_KEY_LEN[alg]));
    const n12 = new Uint8Array(12);
    const aad = new Uint8Array(8);
    const buf = new Uint8Array(64).fill(0x5a);
    const bad: [number, number, number, Uint8Array][] = [
      [-1, 10, 20, n12],
      [0, 60, 60, n12],
      [0, 10, 50, n12],
      [0, 10, 49 + 16, n12],
      [10, 20, 25, n12],
      [10, 20, 0, n12],
      [0, 10, 10, new Uint8Array(8)],
      [0, 10, 10, new Uint8Array(16)],
      [0, -1, 10, n12],
    ];
    for (const [off, len, tag, n] of bad) {
      assert.equal(a.seal(buf, off, len, tag, n, aad), false, `${alg} seal ${off}/${len}/${tag}/${n.length}`);
      assert.equal(a.open(buf, off, len, tag, n, aad), false, `${alg} open ${off}/${len}/${tag}/${n.length}`);
      assert.ok(buf.every((x) => x === 0x5a));
    }
    // A tag in front of the message is fine.
    assert.equal(a.seal(buf, 16, 20, 0, n12, aad), true);
    assert.equal(a.open(buf, 16, 20, 0, n12, aad), true);
    assert.ok(buf.subarray(16, 36).every((x) => x === 0x5a));
  }
});

test('createAead refuses unknown algorithms and keys of the wrong length', () => {
  assert.throws(() => createAead('aes-cbc' as AeadAlgorithm, new Uint8Array(16)), /aes-cbc/);
  for (const alg of ALGS) {
    assert.throws(
      () => createAead(alg, new Uint8Array(AEAD_KEY_LEN[alg] + 1)),
      (e: unknown) => e instanceof RangeError,
    );
    assert.equal(createAead(alg, new Uint8Array(AEAD_KEY_LEN[alg])).algorithm, alg);
  }
  // The key is copied: changing the caller's array afterwards changes nothing.
  const key = new Uint8Array(32).fill(1);
  const a = createAead('chacha20-poly1305', key);
  const buf = new Uint8Array(40);
  a.seal(buf, 0, 24, 24, new Uint8Array(12), new Uint8Array(0));
  key.fill(2);
  assert.equal(a.open(buf, 0, 24, 24, new Uint8Array(12), new Uint8Array(0)), true);
});
