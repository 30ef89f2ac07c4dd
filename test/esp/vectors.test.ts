/**
 * Published ESP vectors, both directions:
 *
 * - every AES-GCM-ESP case of draft-mcgrew-gcm-test-01 §4 (AES-128/192/256, 32- and 64-bit sequence
 *   numbers; test/vectors/esp-aes-gcm-mcgrew.json, the same file as shared/vectors): sealing the plaintext
 *   with the case's SPI, sequence number and IV gives the case's `packet`; the `packet` opens to the
 *   plaintext, and through the whole receive path (`espUnprotect` behind an IPv4 header, the window
 *   inferring the high sequence bits) comes out as the IP packet the plaintext carries;
 * - the ESP example of RFC 7634 Appendix A (ChaCha20-Poly1305, tunnel mode: an ICMP echo inside);
 * - RFC 8439 §2.8.2's AEAD vector for the ChaCha20-Poly1305 primitive, which also reads as ESP with an
 *   extended sequence number (its 12-byte AAD is SPI ‖ seqHi ‖ seqLo, its nonce salt ‖ IV).
 *
 * The vectors use arbitrary IVs; seine sends the sequence number as IV, so sealing goes through
 * `EspCrypto.seal` with the case's IV (espProtect's IV = sequence number is tested in esp.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAead } from '../../src/esp/aead.js';
import { espUnprotect, EspRxInfo } from '../../src/esp/esp.js';
import { EspCrypto, InboundSa } from '../../src/esp/sa.js';
import { PacketPool } from '../../src/packet/buf.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose } from '../../src/wire/stack.js';
import { eth, ip4 } from '../peers/catalogue.js';
import { fromHex, hex } from '../helpers.js';
import { MCGREW, RFC7634, RFC8439 } from './vectors.js';

test('the McGrew file holds the 16 AES-GCM-ESP cases, ESN ones among them', () => {
  assert.equal(MCGREW.length, 16);
  assert.ok(MCGREW.filter((v) => v.esn).length >= 5);
  assert.ok(MCGREW.some((v) => v.keying.cipher === 'aes-gcm-192'));
  // The AAD each case lists is SPI ‖ (seqHi) ‖ seqLo — what EspCrypto builds from the header.
  for (const v of MCGREW) {
    const want = new Uint8Array(v.esn ? 12 : 8);
    const dv = new DataView(want.buffer);
    dv.setUint32(0, v.spi);
    if (v.esn) dv.setUint32(4, v.seqHi);
    dv.setUint32(v.esn ? 8 : 4, v.seqLo);
    assert.equal(hex(v.aad), hex(want), v.name);
  }
});

for (const v of [...MCGREW, RFC7634, RFC8439]) {
  test(`${v.name}: sealing gives the packet`, () => {
    // Inside a larger dirty buffer, so offsets and a forgotten byte both show.
    const off = 5;
    const buf = new Uint8Array(off + v.packet.length + 7).fill(0xa5);
    const dv = new DataView(buf.buffer);
    dv.setUint32(off, v.spi);
    dv.setUint32(off + 4, v.seqLo);
    buf.set(v.plaintext, off + 16);
    const c = new EspCrypto(v.keying, v.esn);
    assert.equal(c.seal(buf, off, off + v.packet.length, v.seqHi, v.ivHi, v.ivLo), true);
    assert.equal(hex(buf, off, v.packet.length), hex(v.packet));
    assert.equal(hex(buf, off + 16, v.packet.length - 16), hex(v.ctextTag));
    assert.equal(buf[off - 1], 0xa5);
    assert.equal(buf[off + v.packet.length], 0xa5);
  });

  test(`${v.name}: the packet opens to the plaintext; a wrong high sequence half or a flipped bit does not`, () => {
    const c = new EspCrypto(v.keying, v.esn);
    const buf = v.packet.slice();
    assert.equal(c.open(buf, 0, buf.length, v.seqHi), true);
    assert.equal(hex(buf, 16, v.plaintext.length), hex(v.plaintext));
    if (v.esn) assert.equal(c.open(v.packet.slice(), 0, buf.length, (v.seqHi + 1) >>> 0), false, 'seqHi is authenticated');
    for (const at of [0, 4, 8, 16, v.packet.length - 1]) {
      const bad = v.packet.slice();
      bad[at]! ^= 0x01;
      assert.equal(c.open(bad, 0, bad.length, v.seqHi), false, `bit flipped at ${at}`);
    }
  });
}

for (const v of [...MCGREW, RFC7634].filter((x) => x.spi !== 0)) {
  test(`${v.name}: espUnprotect restores the IP packet the plaintext carries`, () => {
    const frame = compose([eth(0x0800), ip4('192.0.2.1', '192.0.2.2', 50, { ident: 7 }), { kind: 'data', bytes: v.packet }]);
    const pool = new PacketPool({ count: 1, frameCapacity: 2048 });
    const p = pool.alloc()!;
    p.load(frame);
    // The receiver has seen everything up to the packet's predecessor: the window must infer seqHi.
    const pred = ((BigInt(v.seqHi) << 32n) | BigInt(v.seqLo)) - 1n;
    const sa = new InboundSa({ spi: v.spi, keying: v.keying, esn: v.esn, resumeAfter: pred });
    const info = new EspRxInfo();
    assert.equal(
      espUnprotect(p, p.start + 14, (spi) => (spi === v.spi ? sa : null), 0, info),
      0,
    );
    const padLen = v.plaintext[v.plaintext.length - 2]!;
    const payload = v.plaintext.subarray(0, v.plaintext.length - 2 - padLen);
    const want = compose([eth(0x0800), ip4('192.0.2.1', '192.0.2.2', v.plaintext[v.plaintext.length - 1]!, { ident: 7 }), { kind: 'data', bytes: payload }]);
    assert.equal(hex(p.bytes()), hex(want));
    assert.deepEqual([info.spi, info.seqHi, info.seqLo, info.nextHeader, info.sa === sa], [v.spi, v.seqHi, v.seqLo, v.plaintext[v.plaintext.length - 1], true]);
    assert.deepEqual([sa.topHi, sa.topLo, sa.packets, sa.bytes], [v.seqHi, v.seqLo, 1, payload.length]);
    // The same packet again is a replay.
    p.load(frame);
    assert.equal(
      espUnprotect(p, p.start + 14, () => sa, 0),
      DropReason.EspReplay,
    );
    assert.equal(sa.drops[DropReason.EspReplay], 1);
  });
}

test('RFC 8439 §2.8.2 through the Aead primitive alone, in place in a larger buffer', () => {
  const v = RFC8439;
  const a = createAead('chacha20-poly1305', v.keying.key);
  const nonce = fromHex('070000004041424344454647');
  const buf = new Uint8Array(200).fill(0x5a);
  buf.set(v.plaintext, 10);
  const n = v.plaintext.length;
  assert.equal(a.seal(buf, 10, n, 10 + n, nonce, v.aad), true);
  assert.equal(hex(buf, 10, n + 16), hex(v.ctextTag));
  assert.equal(a.open(buf, 10, n, 10 + n, nonce, v.aad), true);
  assert.equal(hex(buf, 10, n), hex(v.plaintext));
});
