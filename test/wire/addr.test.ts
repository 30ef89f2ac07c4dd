import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { addrFromString, mask4, mask6, mask6Into, parseAddr, parsePrefix, prefixFromString } from '../../src/wire/addr.js';
import { ipv4FromString, ipv4ToString, ipv6ToString } from '../../src/wire/bytes.js';

test('addr: IPv4 and IPv6 text to numbers and bytes; anything else refused with what was asked', () => {
  assert.deepEqual(addrFromString('10.244.1.5'), { family: 4, v4: 0x0af40105, v6: null });
  const a = addrFromString('fd00::1');
  assert.equal(a?.family, 6);
  assert.equal(ipv6ToString(a!.v6!), 'fd00::1');
  for (const bad of ['', '10.244.1', '256.0.0.1', 'fd00:::1', '10.0.0.1/24', ' 10.0.0.1']) assert.equal(addrFromString(bad), null, bad);
  assert.throws(() => parseAddr('nope', 'VTEP ip'), /VTEP ip: "nope" is not an IPv4 or IPv6 address/);
});

test('addr: IPv4 text is read by hand exactly as the dotted-quad pattern with octets of at most 255 reads it', () => {
  // The pattern the hand-written reader replaced, as the reference.
  const byPattern = (s: string): number | null => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
    if (m === null || m.slice(1).some((o) => Number(o) > 255)) return null;
    return m.slice(1).reduce((v, o) => v * 256 + Number(o), 0);
  };
  for (const s of [
    '0.0.0.0',
    '255.255.255.255',
    '010.001.0.09',
    '1.2.3.4.',
    '.1.2.3',
    '1..2.3',
    '1.2.3',
    '1.2.3.4.5',
    '1.2.3.256',
    '1.2.3.1000',
    '1.2.3.-1',
    '',
    '٣.1.1.1',
  ])
    assert.equal(ipv4FromString(s), byPattern(s), s);
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...'0123456789.'.split(''), 'x', '/', ' '), { maxLength: 18 }), (cs) => {
      const s = cs.join('');
      assert.equal(ipv4FromString(s), byPattern(s), s);
    }),
    { numRuns: 2000 },
  );
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (a) => ipv4FromString(ipv4ToString(a)) === a));
});

test('addr: a prefix length is read by hand exactly as one to three decimal digits read by the pattern', () => {
  const byPattern = (t: string): number | null => (/^\d{1,3}$/.test(t) && Number(t) <= 32 ? Number(t) : null);
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...'0123456789/'.split(''), 'x', ' ', '.'), { maxLength: 5 }), (cs) => {
      const t = cs.join('');
      assert.equal(prefixFromString(`10.1.2.0/${t}`)?.len ?? null, byPattern(t), t);
    }),
    { numRuns: 2000 },
  );
});

test('addr: prefixes keep the address as written and take a decimal length within the family', () => {
  assert.deepEqual(parsePrefix('10.244.1.7/24', 'route'), { family: 4, addr: 0x0af40107, len: 24 });
  const p6 = parsePrefix('fd00:10::/64', 'route');
  assert.equal(p6.family, 6);
  assert.equal(p6.len, 64);
  assert.equal(prefixFromString('0.0.0.0/0')?.len, 0);
  assert.equal(prefixFromString('::/128')?.len, 128);
  // Number() would have taken each of these lengths.
  for (const bad of ['10.0.0.0/0x18', '10.0.0.0/ 24', '10.0.0.0/2.4e1', '10.0.0.0/', '10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'x/8'])
    assert.equal(prefixFromString(bad), null, bad);
  assert.throws(() => parsePrefix('10.0.0.0/33', 'podCIDR'), /podCIDR: "10.0.0.0\/33" needs a prefix length 0-32 after "\/"/);
  assert.throws(() => parsePrefix('fd00::', 'route'), /needs a prefix length 0-128/);
  assert.throws(() => parsePrefix('10.0.0/8', 'route'), /is not an IPv4 or IPv6 prefix/);
});

test('addr: masks clear exactly the host bits', () => {
  assert.equal(mask4(0), 0);
  assert.equal(mask4(24), 0xffffff00);
  assert.equal(mask4(32), 0xffffffff);
  assert.equal(ipv4ToString(0x0af40107 & mask4(20)), '10.244.0.0');
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 128 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), (len, a) => {
      const out = new Uint8Array(16);
      mask6Into(a, 0, len, out);
      const m = mask6(len);
      for (let bit = 0; bit < 128; bit++) {
        const on = ((m[bit >> 3]! >> (7 - (bit & 7))) & 1) === 1;
        assert.equal(on, bit < len);
        assert.equal((out[bit >> 3]! >> (7 - (bit & 7))) & 1, on ? (a[bit >> 3]! >> (7 - (bit & 7))) & 1 : 0);
      }
    }),
  );
});
