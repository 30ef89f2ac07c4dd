import assert from 'node:assert/strict';
import { createHash, hkdfSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { format, inspect } from 'node:util';
import fc from 'fast-check';
import {
  ClusterSecret,
  clusterSecretFromPassphrase,
  deriveHelloKey,
  deriveSaKeys,
  explicitSaKeys,
  hkdfSha256,
  keyId,
  loadClusterSecret,
  spiFor,
  SPI_MIN,
  type SaKeySpec,
} from '../../src/esp/keys.js';
import { ESP_CIPHERS, type EspCipher } from '../../src/mtu/overhead.js';
import { fromHex, hex } from '../helpers.js';

const CIPHERS = Object.keys(ESP_CIPHERS) as EspCipher[];
const dir = mkdtempSync(join(tmpdir(), 'seine-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
/** Writes a secret file with `mode` and returns its path. */
function secretFile(content: string | Uint8Array, mode = 0o600): string {
  const p = join(dir, `secret-${fileNo++}`);
  writeFileSync(p, content);
  chmodSync(p, mode);
  return p;
}

const SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);
const secret = new ClusterSecret(SECRET);

// ---- HKDF: RFC 5869 Appendix A, test cases 1-3 (SHA-256) --------------------------------------------------

const range = (from: number, to: number): Uint8Array => Uint8Array.from({ length: to - from }, (_, i) => from + i);

test('hkdfSha256: RFC 5869 A.1 basic test case', () => {
  const okm = hkdfSha256(new Uint8Array(22).fill(0x0b), range(0x00, 0x0d), range(0xf0, 0xfa), 42);
  assert.equal(hex(okm), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
});

test('hkdfSha256: RFC 5869 A.2 longer inputs and outputs', () => {
  const okm = hkdfSha256(range(0x00, 0x50), range(0x60, 0xb0), range(0xb0, 0x100), 82);
  assert.equal(
    hex(okm),
    'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
  );
});

test('hkdfSha256: RFC 5869 A.3 zero-length salt and info', () => {
  const okm = hkdfSha256(new Uint8Array(22).fill(0x0b), new Uint8Array(0), new Uint8Array(0), 42);
  assert.equal(hex(okm), '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8');
});

// ---- golden derivation ----------------------------------------------------------------------------------

/** Computed once by an independent HMAC-based HKDF (Python's hmac) from the layout in keys.ts, then frozen. */
/** The golden inputs: secret 00..1f, node-a → node-b on VXLAN 4789 between 192.0.2.1 and 2001:db8::2, incarnations 01..10 and 11..20, epoch 7. */
const TUNNEL = { kind: 'vxlan', port: 4789, srcAddr: '192.0.2.1', dstAddr: '2001:db8::2' };
const INC_A = range(1, 17);
const INC_B = range(17, 33);
const golden = (cipher: EspCipher): SaKeySpec => ({
  cipher,
  src: 'node-a',
  dst: 'node-b',
  tunnel: TUNNEL,
  srcIncarnation: INC_A,
  dstIncarnation: INC_B,
  epoch: 7,
});
/** Computed once from the layout (and checked against the recomputation by hand below): a change of the derivation shows here. */
const GOLDEN: Record<EspCipher, { key: string; salt: string; spi: number }> = {
  'aes-gcm-128': { key: '8a231cac8875e54922eb6fcbc6235b33', salt: '8fa998e1', spi: 0x227fb21c },
  'aes-gcm-256': { key: '7837a49ab2313e735fa38bb51ff404673a324c9af97ad4cb2a4bc5a32eb18241', salt: '75393019', spi: 0xdf072fb9 },
  'chacha20-poly1305': { key: '362fe1868748ab9febd2271ac0968535d52a4de996ec97d9beb29c24873f2502', salt: '269c4db0', spi: 0x71739f9c },
};

test('deriveSaKeys: golden key, salt and SPI for each cipher (secret 00..1f, node-a → node-b, epoch 7)', () => {
  for (const cipher of CIPHERS) {
    const k = deriveSaKeys(secret, golden(cipher));
    assert.equal(k.cipher, cipher);
    assert.equal(hex(k.key), GOLDEN[cipher].key, cipher);
    assert.equal(hex(k.salt), GOLDEN[cipher].salt, cipher);
    assert.equal(k.spi, GOLDEN[cipher].spi, cipher);
  }
  assert.equal(secret.fingerprint(), '701b27304d85e78e', 'the fingerprint names the secret, not a derivation version');
});

// The documented layout, rebuilt here by hand and fed to node:crypto's hkdfSync directly.
const lp = (x: Uint8Array): Buffer => Buffer.concat([Buffer.from([x.length >> 8, x.length & 0xff]), x]);
const u64 = (n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
/** An address as bytes, by hand: dotted quad, or IPv6 through node's own parser (net.SocketAddress is newer than Node 20.0). */
function addrByHand(a: string): Buffer {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(a)) return Buffer.from(a.split('.').map(Number));
  const [head, tail] = a.includes('::') ? (a.split('::') as [string, string]) : [a, ''];
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => u16(parseInt(g, 16))));
}
function byHand(ikm: Uint8Array, s: SaKeySpec): { key: string; salt: string; spi: number } {
  const c = ESP_CIPHERS[s.cipher];
  const t = s.tunnel;
  const fields = Buffer.concat([
    lp(Buffer.from(s.cipher)),
    lp(Buffer.from(t.kind, 'utf8')),
    lp(u16(t.port)),
    lp(Buffer.from(s.src, 'utf8')),
    lp(Buffer.from(s.dst, 'utf8')),
    lp(addrByHand(t.srcAddr)),
    lp(addrByHand(t.dstAddr)),
    lp(Buffer.from(s.srcIncarnation)),
    lp(Buffer.from(s.dstIncarnation)),
    lp(u64(s.epoch)),
  ]);
  const okm = Buffer.from(hkdfSync('sha256', ikm, 'seine esp v2', Buffer.concat([lp(Buffer.from('seine esp sa v2')), fields]), c.keyLen + c.saltLen));
  const v = Buffer.from(
    hkdfSync('sha256', ikm, 'seine esp v2', Buffer.concat([lp(Buffer.from('seine esp spi v2')), fields, lp(u32(s.spiTweak ?? 0))]), 4),
  ).readUInt32BE(0);
  return { key: okm.subarray(0, c.keyLen).toString('hex'), salt: okm.subarray(c.keyLen).toString('hex'), spi: 256 + (v % (2 ** 32 - 256)) };
}

const nameArb = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' });
const v4Arb = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((q) => q.join('.'));
const v6Arb = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
const incArb = fc.uint8Array({ minLength: 16, maxLength: 16 });
const tunnelArb = fc.record(
  { kind: fc.constantFrom('vxlan', 'geneve'), port: fc.nat(65535), srcAddr: fc.oneof(v4Arb, v6Arb), dstAddr: fc.oneof(v4Arb, v6Arb) },
  { noNullPrototype: true },
);
const specArb: fc.Arbitrary<SaKeySpec> = fc
  .record(
    {
      cipher: fc.constantFrom(...CIPHERS),
      src: nameArb,
      dst: nameArb,
      tunnel: tunnelArb,
      srcIncarnation: incArb,
      dstIncarnation: incArb,
      epoch: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.maxSafeNat()),
    },
    { noNullPrototype: true },
  )
  .filter((s) => s.src !== s.dst && Buffer.byteLength(s.src) <= 255 && Buffer.byteLength(s.dst) <= 255);
/** Secrets the constructor takes: 32+ bytes, not all the same. */
const ikmArb = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: 32, maxLength: max }).filter((b) => b.some((x) => x !== b[0]));

test('deriveSaKeys: equals the documented layout recomputed with hkdfSync (golden inputs and random ones)', () => {
  for (const cipher of CIPHERS) assert.deepEqual(byHand(SECRET, golden(cipher)), GOLDEN[cipher]);
  fc.assert(
    fc.property(ikmArb(64), specArb, fc.nat({ max: 0xffff_ffff }), (ikm, s, tweak) => {
      const k = deriveSaKeys(new ClusterSecret(ikm), { ...s, spiTweak: tweak });
      assert.deepEqual({ key: hex(k.key), salt: hex(k.salt), spi: k.spi }, byHand(ikm, { ...s, spiTweak: tweak }));
    }),
  );
});

test('deriveHelloKey: the documented layout, one key per direction and tunnel', () => {
  const t = TUNNEL;
  const fields = Buffer.concat([
    lp(Buffer.from('chacha20-poly1305')),
    lp(Buffer.from('vxlan')),
    lp(u16(4789)),
    lp(Buffer.from('node-a')),
    lp(Buffer.from('node-b')),
    lp(addrByHand(t.srcAddr)),
    lp(addrByHand(t.dstAddr)),
  ]);
  const want = Buffer.from(hkdfSync('sha256', SECRET, 'seine esp v2', Buffer.concat([lp(Buffer.from('seine esp hello v1')), fields]), 32)).toString('hex');
  const k = (src: string, dst: string, tunnel = t): string => hex(deriveHelloKey(secret, { cipher: 'chacha20-poly1305', src, dst, tunnel }));
  assert.equal(k('node-a', 'node-b'), want);
  assert.notEqual(k('node-b', 'node-a', { ...t, srcAddr: t.dstAddr, dstAddr: t.srcAddr }), want, 'the other direction');
  assert.notEqual(k('node-a', 'node-b', { ...t, kind: 'geneve' }), want, 'another tunnel kind');
  assert.notEqual(k('node-a', 'node-b', { ...t, port: 4790 }), want, 'another port');
  // Not an SA key of the same pair either (another label).
  assert.notEqual(hex(deriveSaKeys(secret, golden('chacha20-poly1305')).key), want);
});

// ---- distinct inputs, distinct keys --------------------------------------------------------------------

const canon = (s: SaKeySpec): string => JSON.stringify([s.cipher, s.src, s.dst, s.tunnel, hex(s.srcIncarnation), hex(s.dstIncarnation), s.epoch]);
/** A spec with the golden tunnel and incarnations. */
const plain = (cipher: EspCipher, src: string, dst: string, epoch: number): SaKeySpec => ({
  cipher,
  src,
  dst,
  epoch,
  tunnel: TUNNEL,
  srcIncarnation: INC_A,
  dstIncarnation: INC_B,
});

test('deriveSaKeys: splits that concatenate alike still give different keys', () => {
  const d = (src: string, dst: string, epoch = 1, cipher: EspCipher = 'aes-gcm-256'): string => hex(deriveSaKeys(secret, plain(cipher, src, dst, epoch)).key);
  assert.notEqual(d('ab', 'c'), d('a', 'bc'));
  assert.notEqual(d('a\u0000', 'b'), d('a', '\u0000b'));
  assert.notEqual(d('a', 'b'), d('b', 'a'), 'the two directions of a pair');
  assert.notEqual(d('a', 'b', 1), d('a', 'b', 2), 'epochs');
  assert.notEqual(d('a', 'b', 256), d('a', 'b', 1));
  // The 32-byte keys of aes-gcm-256 and chacha20-poly1305 with everything else equal.
  assert.notEqual(d('a', 'b', 1, 'aes-gcm-256'), d('a', 'b', 1, 'chacha20-poly1305'));
  // The 16-byte aes-gcm-128 key is not a prefix of the aes-gcm-256 key.
  assert.ok(!d('a', 'b', 1, 'aes-gcm-256').startsWith(d('a', 'b', 1, 'aes-gcm-128')));
  // An address spelled two ways is one address; two incarnations split differently are not.
  const k = (s: Partial<SaKeySpec>): string => hex(deriveSaKeys(secret, { ...plain('aes-gcm-128', 'a', 'b', 1), ...s }).key);
  assert.equal(k({ tunnel: { ...TUNNEL, dstAddr: '2001:DB8:0:0::2' } }), k({}));
  assert.notEqual(k({ srcIncarnation: INC_B, dstIncarnation: INC_A }), k({}));
});

test('deriveSaKeys: any field differing gives a different key and salt (small alphabets, so splits collide if unprefixed)', () => {
  const small = fc.string({ minLength: 1, maxLength: 3, unit: fc.constantFrom('a', 'b', '\u0000', 'é') });
  const smallInc = fc.constantFrom(INC_A, INC_B);
  const smallSpec = fc
    .record(
      {
        cipher: fc.constantFrom(...CIPHERS),
        src: small,
        dst: small,
        epoch: fc.oneof(fc.nat({ max: 2 }), fc.constant(256)),
        tunnel: fc.record(
          {
            kind: fc.constantFrom('vxlan', 'geneve'),
            port: fc.constantFrom(4789, 6081),
            srcAddr: fc.constantFrom('10.0.0.1', '10.0.0.2'),
            dstAddr: fc.constantFrom('10.0.0.1', '10.0.0.2'),
          },
          { noNullPrototype: true },
        ),
        srcIncarnation: smallInc,
        dstIncarnation: smallInc,
      },
      { noNullPrototype: true },
    )
    .filter((s) => s.src !== s.dst);
  fc.assert(
    fc.property(fc.uniqueArray(smallSpec, { minLength: 2, maxLength: 40, selector: canon }), (specs) => {
      const seen = new Map<string, string>();
      for (const s of specs) {
        const k = deriveSaKeys(secret, s);
        const km = hex(k.key) + hex(k.salt);
        assert.equal(seen.get(km), undefined, `${canon(s)} and ${seen.get(km)} share key and salt`);
        seen.set(km, canon(s));
        // Keys of different lengths cannot collide, so compare equal-length prefixes too.
        seen.set(`prefix:${hex(k.key.subarray(0, 16))}`, canon(s));
      }
      assert.equal(seen.size, 2 * specs.length);
    }),
    { numRuns: 300 },
  );
});

test('deriveSaKeys: the same bytes split differently between src and dst, or one field changed, give another key', () => {
  const unit = fc.constantFrom('a', 'b', '\u0000', 'é', '\u0002');
  const arb = fc
    .record(
      {
        cipher: fc.constantFrom(...CIPHERS),
        src: fc.string({ minLength: 1, maxLength: 6, unit }),
        dst: fc.string({ minLength: 1, maxLength: 6, unit }),
        epoch: fc.nat({ max: 1000 }),
        cut: fc.nat(),
        other: fc.constantFrom(...CIPHERS),
        tunnel: tunnelArb,
        si: incArb,
        di: incArb,
      },
      { noNullPrototype: true },
    )
    .filter((s) => s.src !== s.dst && s.src.length + s.dst.length >= 3 && hex(s.si) !== hex(s.di));
  fc.assert(
    fc.property(arb, ({ cipher, src, dst, epoch, cut, other, tunnel, si, di }) => {
      const key = (s: SaKeySpec): string => {
        const k = deriveSaKeys(secret, s);
        return hex(k.key) + hex(k.salt);
      };
      const spec = (c: EspCipher, a: string, b: string, e: number, t = tunnel, x: Uint8Array = si, y: Uint8Array = di): SaKeySpec => ({
        cipher: c,
        src: a,
        dst: b,
        epoch: e,
        tunnel: t,
        srcIncarnation: x,
        dstIncarnation: y,
      });
      const base = key(spec(cipher, src, dst, epoch));
      const all = src + dst;
      let k = 1 + (cut % (all.length - 1));
      if (k === src.length) k = k === 1 ? 2 : k - 1;
      const flip = (b: Uint8Array): Uint8Array => {
        const c = b.slice();
        c[0] = c[0]! ^ 1;
        return c;
      };
      const variants: SaKeySpec[] = [
        spec(cipher, all.slice(0, k), all.slice(k), epoch),
        spec(cipher, dst, src, epoch),
        spec(cipher, src, dst, epoch + 1),
        spec(cipher, `${src}a`, dst, epoch),
        spec(cipher, src, `a${dst}`, epoch),
        spec(cipher, src, dst, epoch, { ...tunnel, kind: tunnel.kind === 'vxlan' ? 'geneve' : 'vxlan' }),
        spec(cipher, src, dst, epoch, { ...tunnel, port: tunnel.port ^ 1 }),
        spec(cipher, src, dst, epoch, { ...tunnel, srcAddr: tunnel.dstAddr, dstAddr: tunnel.srcAddr }),
        spec(cipher, src, dst, epoch, tunnel, flip(si)),
        spec(cipher, src, dst, epoch, tunnel, si, flip(di)),
        spec(cipher, src, dst, epoch, tunnel, di, si),
      ];
      if (other !== cipher) variants.push(spec(other, src, dst, epoch));
      for (const v of variants) {
        if (v.src === v.dst || canon(v) === canon(spec(cipher, src, dst, epoch))) continue;
        assert.notEqual(key(v), base, `${canon(v)} shares the key of ${canon(spec(cipher, src, dst, epoch))}`);
        if (ESP_CIPHERS[v.cipher].keyLen === ESP_CIPHERS[cipher].keyLen) assert.notEqual(key(v).slice(0, 32), base.slice(0, 32));
      }
    }),
    { numRuns: 300 },
  );
});

test('deriveSaKeys: different secrets give different keys for the same SA', () => {
  fc.assert(
    fc.property(ikmArb(40), ikmArb(40), specArb, (a, b, s) => {
      fc.pre(hex(a) !== hex(b));
      assert.notEqual(hex(deriveSaKeys(new ClusterSecret(a), s).key), hex(deriveSaKeys(new ClusterSecret(b), s).key));
    }),
    { numRuns: 50 },
  );
});

test('SPI: in 256..2^32-1, spiFor agrees, and the tweak moves the SPI but not the key', () => {
  fc.assert(
    fc.property(specArb, fc.nat({ max: 0xffff_fffe }), (s, t) => {
      const a = deriveSaKeys(secret, s);
      const b = deriveSaKeys(secret, { ...s, spiTweak: t + 1 });
      for (const k of [a, b]) assert.ok(Number.isInteger(k.spi) && k.spi >= SPI_MIN && k.spi <= 0xffff_ffff, `spi ${k.spi}`);
      assert.equal(spiFor(secret, s), a.spi);
      assert.equal(spiFor(secret, { ...s, spiTweak: t + 1 }), b.spi);
      assert.equal(hex(a.key), hex(b.key));
      assert.equal(hex(a.salt), hex(b.salt));
      assert.notEqual(a.spi, b.spi); // 2^-32 to fail by chance
    }),
    { numRuns: 200 },
  );
});

test('deriveSaKeys: refuses what it cannot encode unambiguously, naming the field', () => {
  const ok: SaKeySpec = plain('aes-gcm-128', 'a', 'b', 0);
  const bad: [Partial<Record<keyof SaKeySpec, unknown>>, RegExp][] = [
    [{ cipher: 'aes-cbc' }, /cipher aes-cbc is not one of aes-gcm-128, aes-gcm-256, chacha20-poly1305/],
    [{ src: '' }, /src must be a non-empty/],
    [{ dst: 42 }, /dst must be a non-empty/],
    [{ src: 'b' }, /src and dst are both b/],
    [{ src: 'x\ud800' }, /src is not well-formed Unicode/],
    [{ dst: '\udc00' }, /dst is not well-formed Unicode/],
    [{ dst: 'x'.repeat(256) }, /dst is 256 bytes of UTF-8, at most 255/],
    [{ epoch: -1 }, /epoch -1 is not an integer/],
    [{ epoch: 1.5 }, /epoch 1.5 is not an integer/],
    [{ epoch: 2 ** 53 }, /epoch 9007199254740992 is not an integer/],
    [{ spiTweak: 2 ** 32 }, /spiTweak 4294967296 is not an integer/],
    [{ tunnel: { ...TUNNEL, port: 65536 } }, /tunnel port 65536 is not an integer in 0-65535/],
    [{ tunnel: { ...TUNNEL, kind: '' } }, /tunnel kind must be a non-empty/],
    [{ tunnel: { ...TUNNEL, srcAddr: 'node-a' } }, /tunnel srcAddr "node-a" is not an IPv4 or IPv6 address/],
    [{ tunnel: null }, /tunnel must be \{ kind, port, srcAddr, dstAddr \}/],
    [{ srcIncarnation: new Uint8Array(15) }, /srcIncarnation must be 16 bytes/],
    [{ dstIncarnation: 'x'.repeat(16) }, /dstIncarnation must be 16 bytes/],
  ];
  for (const [patch, re] of bad)
    assert.throws(
      () => deriveSaKeys(secret, { ...ok, ...patch } as SaKeySpec),
      (e: unknown) => e instanceof RangeError && re.test(e.message),
      JSON.stringify(patch),
    );
  assert.throws(() => deriveSaKeys(SECRET as unknown as ClusterSecret, ok), TypeError);
  // Two lone surrogates would both encode as U+FFFD: refused rather than sharing a key.
  assert.throws(() => deriveSaKeys(secret, { ...ok, src: '\ud800' }), RangeError);
  assert.doesNotThrow(() => deriveSaKeys(secret, { ...ok, src: '\ud83d\ude00', dst: 'x'.repeat(255) }));
});

// ---- the secret never shows ------------------------------------------------------------------------------

/** Every way the bytes (or a prefix of them) might be printed: hex, spaced hex, decimals, base64(url), latin1. */
function leaks(text: string, bytes: Uint8Array): string | null {
  const b = Buffer.from(bytes);
  const head = b.subarray(0, 8);
  const forms: [string, string][] = [
    ['hex', head.toString('hex')],
    ['decimals', [...head].join(',')],
    ['base64', b.toString('base64').slice(0, 10)],
    ['base64url', b.toString('base64url').slice(0, 10)],
    ['latin1', head.toString('latin1')],
  ];
  // util.inspect pads and wraps number arrays, Buffer's inspect spaces its hex: compare without whitespace too.
  const texts = [text, text.toLowerCase(), text.replace(/\s+/g, ''), text.replace(/\s+/g, '').toLowerCase()];
  for (const [name, f] of forms) {
    for (const t of texts) if (t.includes(f) || t.includes(f.replace(/\s+/g, '').toLowerCase())) return name;
  }
  return null;
}

/** Many bytes with distinct decimal and hex forms, so that a leak cannot hide in short common strings. */
const secretArb = fc.uint8Array({ minLength: 32, maxLength: 64 }).filter((b) => new Set(b.subarray(0, 8)).size >= 6 && b.subarray(0, 8).some((x) => x >= 100));

test('leaks(): the detector finds the bytes where they are printed plainly (so its silence means something)', () => {
  fc.assert(
    fc.property(secretArb, (b) => {
      for (const shown of [
        inspect(b),
        inspect(Buffer.from(b)),
        JSON.stringify(Array.from(b)),
        Buffer.from(b).toString('hex'),
        Buffer.from(b).toString('base64'),
        Buffer.from(b).toString('latin1'),
      ]) {
        assert.notEqual(leaks(shown, b), null, shown);
      }
    }),
    { numRuns: 50 },
  );
});

test('ClusterSecret: String, JSON, util.inspect and format print a redaction, nested or not', () => {
  fc.assert(
    fc.property(secretArb, (b) => {
      const s = new ClusterSecret(b);
      const k = deriveSaKeys(s, plain('chacha20-poly1305', 'a', 'b', 1));
      const shown = [
        String(s),
        `${s}`,
        s.toString(),
        JSON.stringify(s),
        JSON.stringify({ cfg: { secret: s } }),
        inspect(s),
        inspect({ secret: s }, { depth: 10, showHidden: true }),
        inspect([s], { showHidden: true, getters: true }),
        format('%s %o %O %j', s, s, s, s),
        s.fingerprint(),
      ];
      for (const t of shown) assert.equal(leaks(t, b), null, `secret shown in ${t}`);
      assert.equal(String(s), 'ClusterSecret(<redacted>)');
      assert.equal(inspect(s), 'ClusterSecret(<redacted>)');
      assert.equal(JSON.stringify({ s }), '{"s":"ClusterSecret(<redacted>)"}');
      // Derived keys are as secret: printing the SA object redacts them too, while the fields stay readable.
      for (const t of [String(k), JSON.stringify({ k }), inspect({ k }, { depth: 5, showHidden: true })]) {
        assert.equal(leaks(t, k.key), null, `key shown in ${t}`);
        assert.match(t, /SaKeys\(<redacted>\)/);
      }
      assert.equal(k.key.length, 32);
      assert.deepEqual(Object.keys(k), ['cipher', 'key', 'salt', 'spi']);
      assert.deepEqual(Object.keys(s), []);
    }),
    { numRuns: 50 },
  );
});

test('ClusterSecret: copies its input, refuses a short or long one, names its length only', () => {
  const b = Uint8Array.from(SECRET);
  const s = new ClusterSecret(b);
  b.fill(0);
  assert.equal(s.fingerprint(), '701b27304d85e78e');
  assert.equal(s.length, 32);
  assert.throws(() => new ClusterSecret(new Uint8Array(31).fill(0x41)), /cluster secret: 31 bytes is too short, at least 32 expected/);
  assert.throws(() => new ClusterSecret(new Uint8Array(1025)), /1025 bytes is too long, at most 1024/);
  assert.throws(() => new ClusterSecret('x'.repeat(40) as unknown as Uint8Array), TypeError);
});

// ---- loading ------------------------------------------------------------------------------------------------

test('loadClusterSecret: hex, base64 and base64url text, whitespace and newlines ignored', () => {
  const fp = secret.fingerprint();
  const h = Buffer.from(SECRET).toString('hex');
  const b64 = Buffer.from(SECRET).toString('base64');
  assert.equal(loadClusterSecret({ file: secretFile(`${h}\n`) }).fingerprint(), fp);
  assert.equal(loadClusterSecret({ file: secretFile(`${h.toUpperCase()}\r\n`) }).fingerprint(), fp);
  assert.equal(loadClusterSecret({ file: secretFile(`${h.slice(0, 30)}\n${h.slice(30)}\n`) }).fingerprint(), fp, 'xxd -p wraps lines');
  assert.equal(loadClusterSecret({ file: secretFile(`${b64}\n`) }).fingerprint(), fp);
  assert.equal(loadClusterSecret({ file: secretFile(b64.replace(/=+$/, '')) }).fingerprint(), fp, 'padding optional');
  assert.equal(loadClusterSecret({ env: 'S' }, { S: h }).fingerprint(), fp);
  assert.equal(loadClusterSecret({ env: 'S' }, { S: ` ${b64}\n` }).fingerprint(), fp);
  assert.equal(loadClusterSecret({ env: 'S' }, { S: Buffer.from(SECRET).toString('base64url') }).fingerprint(), fp);
  // openssl rand -base64 64: two lines of base64.
  const long = Buffer.from(range(0, 64));
  const wrapped = long.toString('base64').replace(/(.{64})/g, '$1\n');
  assert.ok(wrapped.includes('\n'));
  assert.equal(loadClusterSecret({ file: secretFile(`${wrapped}\n`) }).fingerprint(), new ClusterSecret(long).fingerprint());
});

test('loadClusterSecret: any random secret round-trips through hex, base64 and base64url text', () => {
  fc.assert(
    fc.property(ikmArb(200), fc.constantFrom('hex', 'base64', 'base64url' as const), (b, enc) => {
      const text = Buffer.from(b).toString(enc);
      assert.equal(loadClusterSecret({ env: 'S' }, { S: text }).fingerprint(), new ClusterSecret(b).fingerprint(), text);
    }),
    { numRuns: 300 },
  );
});

test('loadClusterSecret: raw bytes are used verbatim, a trailing 0x0a included', () => {
  const raw = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 200) & 0xff);
  raw[31] = 0x0a;
  const s = loadClusterSecret({ file: secretFile(raw) });
  assert.equal(s.length, 32);
  assert.equal(s.fingerprint(), new ClusterSecret(raw).fingerprint());
  assert.throws(() => loadClusterSecret({ file: secretFile(raw.subarray(0, 31)) }), /file .*secret-\d+: 31 bytes is too short, at least 32 expected/);
});

test('loadClusterSecret: refuses text that is not a key, too short, or too large, naming the file or variable', () => {
  const h = Buffer.from(SECRET).toString('hex');
  const cases: [() => unknown, RegExp][] = [
    [
      () => loadClusterSecret({ file: secretFile('correct horse battery staple, but longer than 32 chars\n') }),
      /file .*secret-\d+ is neither hex nor base64 .*a passphrase is not a key/,
    ],
    [() => loadClusterSecret({ file: secretFile(`${h}a\n`) }), /is neither hex nor base64/], // odd hex: damaged, not base64
    // A typo in hex ('g') leaves 64 characters of valid base64: refused, not read as another 48-byte secret.
    [() => loadClusterSecret({ file: secretFile(`${h.slice(0, 10)}g${h.slice(11)}\n`) }), /is neither hex nor base64/],
    [() => loadClusterSecret({ file: secretFile(`${h.slice(0, 62)}\n`) }), /file .*secret-\d+: 31 bytes is too short, at least 32 expected/],
    [() => loadClusterSecret({ file: secretFile('') }), /file .*secret-\d+ is empty/],
    [() => loadClusterSecret({ file: secretFile('\n') }), /file .*secret-\d+ is neither hex nor base64/],
    [() => loadClusterSecret({ file: secretFile('a'.repeat(8193)) }), /has 8193 bytes, more than a secret/],
    [() => loadClusterSecret({ file: secretFile('ab'.repeat(1025)) }), /1025 bytes is too long/],
    [() => loadClusterSecret({ file: join(dir, 'absent') }), /cluster secret: cannot open file .*absent \(ENOENT\)/],
    [() => loadClusterSecret({ env: 'S' }, {}), /cluster secret: environment variable S is not set/],
    [() => loadClusterSecret({ env: 'S' }, { S: '' }), /cluster secret: environment variable S is empty/],
    [() => loadClusterSecret({ env: 'S' }, { S: ' \n' }), /environment variable S is empty/],
    [() => loadClusterSecret({ env: 'S' }, { S: h.slice(0, 40) }), /environment variable S: 20 bytes is too short/],
    [() => loadClusterSecret({ env: 'S' }, { S: `${h}!` }), /environment variable S is neither hex nor base64/],
    [() => loadClusterSecret({ env: '' }), /env must name an environment variable/],
    [() => loadClusterSecret({ file: 'x', env: 'S' }, { S: h }), /a file or an environment variable, not both/],
    [() => loadClusterSecret({}), /give a file or an environment variable/],
  ];
  for (const [f, re] of cases) assert.throws(f, (e: unknown) => e instanceof RangeError && re.test(e.message), String(re));
  const sub = join(dir, 'a-directory');
  mkdirSync(sub);
  assert.throws(() => loadClusterSecret({ file: sub }), /is not a regular file/);
});

test('loadClusterSecret: refuses a file group or others may access; allowGroupRead lets the group read only', () => {
  const text = `${Buffer.from(SECRET).toString('hex')}\n`;
  for (const mode of [0o400, 0o600, 0o700]) assert.equal(loadClusterSecret({ file: secretFile(text, mode) }).length, 32, mode.toString(8));
  for (const mode of [0o644, 0o640, 0o604, 0o620, 0o610, 0o601, 0o666]) {
    assert.throws(
      () => loadClusterSecret({ file: secretFile(text, mode) }),
      (e: unknown) => e instanceof RangeError && e.message.includes(`has mode 0${mode.toString(8)}: group or others may access it; chmod 0400 or 0600`),
      mode.toString(8),
    );
  }
  assert.equal(loadClusterSecret({ file: secretFile(text, 0o440), allowGroupRead: true }).length, 32);
  assert.equal(loadClusterSecret({ file: secretFile(text, 0o640), allowGroupRead: true }).length, 32);
  for (const mode of [0o444, 0o644, 0o660, 0o604, 0o650]) {
    assert.throws(
      () => loadClusterSecret({ file: secretFile(text, mode), allowGroupRead: true }),
      /: others may access it or its group may do more than read it; chmod 0440 or stricter/,
      mode.toString(8),
    );
  }
});

test('loadClusterSecret: no error quotes the input it rejects', () => {
  // Bad variants of a real secret: too short, one character damaged, an odd digit, a stray symbol.
  const variants = (b: Uint8Array): string[] => {
    const h = Buffer.from(b).toString('hex');
    const b64 = Buffer.from(b).toString('base64');
    return [
      h.slice(0, 60),
      `${h.slice(0, 20)}g${h.slice(21)}`,
      `${h}a`,
      `${b64.slice(0, 30)}!${b64.slice(30)}`,
      Buffer.from(b).subarray(0, 20).toString('base64'),
      `${h}:${b64}`,
    ];
  };
  fc.assert(
    fc.property(secretArb, fc.boolean(), (b, viaFile) => {
      for (const text of variants(b)) {
        let msg = '';
        try {
          if (viaFile) loadClusterSecret({ file: secretFile(text) });
          else loadClusterSecret({ env: 'SEINE_SECRET' }, { SEINE_SECRET: text });
          assert.fail(`accepted ${text}`);
        } catch (e) {
          assert.ok(e instanceof RangeError, String(e));
          msg = e.message;
        }
        assert.match(msg, viaFile ? /file .*secret-\d+/ : /environment variable SEINE_SECRET/);
        assert.equal(leaks(msg, b), null, msg);
        for (let i = 0; i + 8 <= text.length; i++) assert.ok(!msg.includes(text.slice(i, i + 8)), `error quotes ${text.slice(i, i + 8)}: ${msg}`);
      }
    }),
    { numRuns: 30 },
  );
});

test('secrets: an all-zero (or any one-byte-repeated) secret is refused, from bytes, a file or a variable', () => {
  for (const fill of [0x00, 0xff, 0x41]) {
    assert.throws(() => new ClusterSecret(new Uint8Array(32).fill(fill)), /all 32 bytes are 0x[0-9a-f]{2}: an empty or wiped buffer, not a secret/);
  }
  assert.throws(() => loadClusterSecret({ file: secretFile(new Uint8Array(64)) }), /not a secret/);
  assert.throws(() => loadClusterSecret({ env: 'S' }, { S: '00'.repeat(32) }), /all 32 bytes are 0x00/);
  // One byte different is a (bad, but) real secret: the check is for unset buffers, not for entropy.
  const almost = new Uint8Array(32);
  almost[31] = 1;
  assert.equal(new ClusterSecret(almost).length, 32);
});

test('secrets: a passphrase with non-ASCII letters in a file is text (refused as a passphrase), not 32+ raw bytes', () => {
  for (const text of [
    'correct hörse battery stäple, and a few more words\n',
    'パスワードはパスワードではありません、鍵を使ってください',
    'café café café café café café café\n',
  ]) {
    assert.ok(Buffer.byteLength(text) >= 32);
    assert.throws(() => loadClusterSecret({ file: secretFile(text) }), /is neither hex nor base64 .*a passphrase is not a key/, text);
  }
  // Bytes that are not UTF-8 text stay raw bytes (what `head -c 32 /dev/urandom` writes).
  const raw = Uint8Array.from({ length: 32 }, (_, i) => (i * 73 + 129) & 0xff);
  assert.equal(loadClusterSecret({ file: secretFile(raw) }).fingerprint(), new ClusterSecret(raw).fingerprint());
});

test('secrets: a passphrase is NFC-normalised before hashing (one secret however "é" was typed); empty or lone surrogates refused', () => {
  const composed = 'lab-secr\u00e9t';
  const decomposed = 'lab-secre\u0301t';
  assert.notEqual(composed, decomposed);
  assert.equal(clusterSecretFromPassphrase(composed).fingerprint(), clusterSecretFromPassphrase(decomposed).fingerprint());
  assert.equal(
    clusterSecretFromPassphrase('lab-secret').fingerprint(),
    new ClusterSecret(Uint8Array.from(createHash('sha256').update('lab-secret').digest())).fingerprint(),
    'ASCII: the SHA-256 of its bytes, as before',
  );
  assert.equal(
    clusterSecretFromPassphrase(composed).fingerprint(),
    new ClusterSecret(Uint8Array.from(createHash('sha256').update(Buffer.from(composed, 'utf8')).digest())).fingerprint(),
  );
  assert.throws(() => clusterSecretFromPassphrase(''), /passphrase is empty/);
  assert.throws(() => clusterSecretFromPassphrase('abc\ud800'), /lone surrogate/);
});

// ---- SAs by hand ---------------------------------------------------------------------------------------------

test('explicitSaKeys: lengths from ESP_CIPHERS; errors name the field and never quote it', () => {
  for (const cipher of CIPHERS) {
    const c = ESP_CIPHERS[cipher];
    const key = 'ab'.repeat(c.keyLen);
    const k = explicitSaKeys({ cipher, key: `0x${key}`, salt: 'CAFEBABE', spi: 0x1234 });
    assert.deepEqual({ cipher: k.cipher, key: hex(k.key), salt: hex(k.salt), spi: k.spi }, { cipher, key, salt: 'cafebabe', spi: 0x1234 });
    assert.equal(String(k), 'SaKeys(<redacted>)');
  }
  const ok = { cipher: 'aes-gcm-128' as EspCipher, key: '00112233445566778899aabbccddeeff', salt: '01020304', spi: 256 };
  assert.equal(explicitSaKeys(ok).spi, 256);
  assert.equal(explicitSaKeys({ ...ok, spi: 0xffff_ffff }).spi, 0xffff_ffff);
  const cases: [object, RegExp][] = [
    [{ key: ok.key.slice(2) }, /esp sa: key has 30 hex digits, expected 32 hex digits \(16 bytes\) for aes-gcm-128/],
    [{ cipher: 'aes-gcm-256' }, /esp sa: key has 32 hex digits, expected 64 hex digits \(32 bytes\) for aes-gcm-256/],
    [{ key: `${ok.key.slice(0, 31)}z` }, /esp sa: key is not hex \(expected 32 hex digits/],
    [{ salt: '010203' }, /esp sa: salt has 6 hex digits, expected 8 hex digits \(4 bytes\)/],
    [{ salt: 1234 }, /esp sa: salt must be a hex string/],
    [{ spi: 255 }, /esp sa: spi 255 is not an integer in 256-4294967295 \(0-255 are reserved, RFC 4303 §2.1\)/],
    [{ spi: 2 ** 32 }, /spi 4294967296 is not/],
    [{ spi: 300.5 }, /spi 300.5 is not/],
    [{ cipher: 'des' }, /esp sa: cipher des is not one of/],
  ];
  for (const [patch, re] of cases) {
    assert.throws(
      () => explicitSaKeys({ ...ok, ...patch } as typeof ok),
      (e: unknown) => e instanceof RangeError && re.test(e.message),
      String(re),
    );
    try {
      explicitSaKeys({ ...ok, ...patch } as typeof ok);
    } catch (e) {
      assert.ok(!(e as Error).message.includes(ok.key.slice(2, 12)), (e as Error).message);
    }
  }
});

test('keyId: one name per (key, salt), not the key itself', () => {
  const a = explicitSaKeys({ cipher: 'aes-gcm-128', key: '00112233445566778899aabbccddeeff', salt: '01020304', spi: 300 });
  const b = explicitSaKeys({ cipher: 'aes-gcm-128', key: '00112233445566778899aabbccddeeff', salt: '01020304', spi: 301 });
  const c = explicitSaKeys({ cipher: 'aes-gcm-128', key: '00112233445566778899aabbccddeeff', salt: '01020305', spi: 300 });
  assert.match(keyId(a), /^key:[0-9a-f]{32}$/);
  assert.equal(keyId(a), keyId(b), 'the SPI does not matter: the same key must resume its sequence numbers');
  assert.notEqual(keyId(a), keyId(c));
  assert.equal(leaks(keyId(a), fromHex('00112233445566778899aabbccddeeff').subarray(3)), null);
  // key ‖ salt split differently is another SA.
  assert.notEqual(keyId({ key: fromHex('0011'), salt: fromHex('22') }), keyId({ key: fromHex('00'), salt: fromHex('1122') }));
});
