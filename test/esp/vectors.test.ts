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
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createAead } from '../../src/esp/aead.js';
import { espUnprotect, EspRxInfo } from '../../src/esp/esp.js';
import { EspCrypto, InboundSa, type EspKeying } from '../../src/esp/sa.js';
import type { AeadAlgorithm } from '../../src/esp/aead.js';
import { PacketPool } from '../../src/packet/buf.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose } from '../../src/wire/stack.js';
import { eth, ip4 } from '../peers/catalogue.js';
import { fromHex, hex } from '../helpers.js';

interface McGrewCase {
  case: number;
  algorithm: string;
  key: string;
  spi: string;
  seq: string;
  nonce: string;
  plaintext: string;
  aad: string;
  ctext_tag: string;
  packet: string;
}

const FILE = JSON.parse(readFileSync(new URL('../../../test/vectors/esp-aes-gcm-mcgrew.json', import.meta.url), 'utf8')) as { cases: McGrewCase[] };

/** A vector in the form the tests below use. */
interface EspVector {
  name: string;
  keying: EspKeying;
  spi: number;
  esn: boolean;
  seqHi: number;
  seqLo: number;
  ivHi: number;
  ivLo: number;
  aad: Uint8Array;
  plaintext: Uint8Array;
  ctextTag: Uint8Array;
  packet: Uint8Array;
}

const u32 = (b: Uint8Array, o: number): number => new DataView(b.buffer, b.byteOffset).getUint32(o);

function vector(name: string, cipher: AeadAlgorithm, key: Uint8Array, spi: number, seq: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, ctextTag: Uint8Array, packet: Uint8Array | null): EspVector {
  const esn = seq.length === 8;
  const seqHi = esn ? u32(seq, 0) : 0;
  const seqLo = u32(seq, esn ? 4 : 0);
  const ivHi = u32(nonce, 4);
  const ivLo = u32(nonce, 8);
  // The packet on the wire: SPI, the low sequence bits, IV, ciphertext and ICV.
  const pk = packet ?? new Uint8Array([...fromHex(spi.toString(16).padStart(8, '0')), ...fromHex(seqLo.toString(16).padStart(8, '0')), ...nonce.subarray(4), ...ctextTag]);
  return { name, keying: { cipher, key, salt: nonce.slice(0, 4) }, spi, esn, seqHi, seqLo, ivHi, ivLo, aad, plaintext, ctextTag, packet: pk };
}

const GCM: Record<number, AeadAlgorithm> = { 16: 'aes-gcm-128', 24: 'aes-gcm-192', 32: 'aes-gcm-256' };

const MCGREW: EspVector[] = FILE.cases.filter((c) => c.algorithm === 'AES-GCM-ESP').map((c) => {
  const key = fromHex(c.key);
  return vector(`mcgrew case ${c.case}`, GCM[key.length]!, key, parseInt(c.spi, 16), fromHex(c.seq), fromHex(c.nonce), fromHex(c.aad), fromHex(c.plaintext), fromHex(c.ctext_tag), fromHex(c.packet));
});

/**
 * RFC 7634 Appendix A: KEYMAT 80..9f ‖ a0 a1 a2 a3, SPI 0x01020304, sequence number 5, IV 10..17; the
 * plaintext is an 84-byte ICMP echo from 198.51.100.5 to 192.0.2.5, padding 01 02, pad length 2, next
 * header 4 (IPv4, tunnel mode).
 */
const RFC7634: EspVector = vector(
  'RFC 7634 Appendix A', 'chacha20-poly1305',
  fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'), 0x01020304, fromHex('00000005'),
  fromHex('a0a1a2a3 1011121314151617'), fromHex('0102030400000005'),
  fromHex(`45000054a6f200004001e778c6336405 c000020508005b7a3a080000553bec10 000736270809 0a0b0c0d0e0f10111213
           1415161718191a1b1c1d1e1f20212223 2425262728292a2b2c2d2e2f30313233 3435363701020204`),
  fromHex(`24039428b97f417e3c13753a4f05087b 67c352e6a7fab1b982d466ef407ae5c6 14ee8099d52844eb61aa95dfab4c02f7
           2aa71e7c4c4f64c9befe2facc638e8f3 cbec163fac469b502773f6fb94e664da 9165b82829f641e0
           76aaa8266b7fb0f7b11b369907e1ad43`),
  null,
);

/** RFC 8439 §2.8.2 as ESP with ESN: SPI 50515253, seqHi c0c1c2c3, seqLo c4c5c6c7, salt 07000000, IV 40..47. */
const RFC8439: EspVector = vector(
  'RFC 8439 §2.8.2', 'chacha20-poly1305',
  fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'), 0x50515253, fromHex('c0c1c2c3c4c5c6c7'),
  fromHex('07000000 4041424344454647'), fromHex('50515253c0c1c2c3c4c5c6c7'),
  new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."),
  fromHex(`d31a8d34648e60db7b86afbc53ef7ec2 a4aded51296e08fea9e2b5a736ee62d6 3dbea45e8ca9671282fafb69da92728b
           1a71de0a9e060b2905d6a5b67ecd3b36 92ddbd7f2d778b8c9803aee328091b58 fab324e4fad675945585808b4831d7bc
           3ff4def08e4b7a9de576d26586cec64b 6116 1ae10b594f09e26a7e902ecbd0600691`),
  null,
);

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
    assert.equal(espUnprotect(p, p.start + 14, (spi) => (spi === v.spi ? sa : null), 0, info), 0);
    const padLen = v.plaintext[v.plaintext.length - 2]!;
    const payload = v.plaintext.subarray(0, v.plaintext.length - 2 - padLen);
    const want = compose([eth(0x0800), ip4('192.0.2.1', '192.0.2.2', v.plaintext[v.plaintext.length - 1]!, { ident: 7 }), { kind: 'data', bytes: payload }]);
    assert.equal(hex(p.bytes()), hex(want));
    assert.deepEqual([info.spi, info.seqHi, info.seqLo, info.nextHeader, info.sa === sa], [v.spi, v.seqHi, v.seqLo, v.plaintext[v.plaintext.length - 1], true]);
    assert.deepEqual([sa.topHi, sa.topLo, sa.packets, sa.bytes], [v.seqHi, v.seqLo, 1, payload.length]);
    // The same packet again is a replay.
    p.load(frame);
    assert.equal(espUnprotect(p, p.start + 14, () => sa, 0), DropReason.EspReplay);
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
