/**
 * The published ESP vectors (see vectors.test.ts for what each is), in one form: keying, SPI, sequence
 * number, IV, AAD, plaintext, ciphertext ‖ tag and the whole ESP packet. Shared by vectors.test.ts (per
 * packet) and aead-batch.test.ts (the batch call).
 */
import { readFileSync } from 'node:fs';
import type { AeadAlgorithm } from '../../src/esp/aead.js';
import type { EspKeying } from '../../src/esp/sa.js';
import { fromHex } from '../helpers.js';

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
export interface EspVector {
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

function vector(
  name: string,
  cipher: AeadAlgorithm,
  key: Uint8Array,
  spi: number,
  seq: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
  ctextTag: Uint8Array,
  packet: Uint8Array | null,
): EspVector {
  const esn = seq.length === 8;
  const seqHi = esn ? u32(seq, 0) : 0;
  const seqLo = u32(seq, esn ? 4 : 0);
  const ivHi = u32(nonce, 4);
  const ivLo = u32(nonce, 8);
  // The packet on the wire: SPI, the low sequence bits, IV, ciphertext and ICV.
  const pk =
    packet ??
    new Uint8Array([...fromHex(spi.toString(16).padStart(8, '0')), ...fromHex(seqLo.toString(16).padStart(8, '0')), ...nonce.subarray(4), ...ctextTag]);
  return { name, keying: { cipher, key, salt: nonce.slice(0, 4) }, spi, esn, seqHi, seqLo, ivHi, ivLo, aad, plaintext, ctextTag, packet: pk };
}

const GCM: Record<number, AeadAlgorithm> = { 16: 'aes-gcm-128', 24: 'aes-gcm-192', 32: 'aes-gcm-256' };

export const MCGREW: EspVector[] = FILE.cases
  .filter((c) => c.algorithm === 'AES-GCM-ESP')
  .map((c) => {
    const key = fromHex(c.key);
    return vector(
      `mcgrew case ${c.case}`,
      GCM[key.length]!,
      key,
      parseInt(c.spi, 16),
      fromHex(c.seq),
      fromHex(c.nonce),
      fromHex(c.aad),
      fromHex(c.plaintext),
      fromHex(c.ctext_tag),
      fromHex(c.packet),
    );
  });

/**
 * RFC 7634 Appendix A: KEYMAT 80..9f ‖ a0 a1 a2 a3, SPI 0x01020304, sequence number 5, IV 10..17; the
 * plaintext is an 84-byte ICMP echo from 198.51.100.5 to 192.0.2.5, padding 01 02, pad length 2, next
 * header 4 (IPv4, tunnel mode).
 */
export const RFC7634: EspVector = vector(
  'RFC 7634 Appendix A',
  'chacha20-poly1305',
  fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
  0x01020304,
  fromHex('00000005'),
  fromHex('a0a1a2a3 1011121314151617'),
  fromHex('0102030400000005'),
  fromHex(`45000054a6f200004001e778c6336405 c000020508005b7a3a080000553bec10 000736270809 0a0b0c0d0e0f10111213
           1415161718191a1b1c1d1e1f20212223 2425262728292a2b2c2d2e2f30313233 3435363701020204`),
  fromHex(`24039428b97f417e3c13753a4f05087b 67c352e6a7fab1b982d466ef407ae5c6 14ee8099d52844eb61aa95dfab4c02f7
           2aa71e7c4c4f64c9befe2facc638e8f3 cbec163fac469b502773f6fb94e664da 9165b82829f641e0
           76aaa8266b7fb0f7b11b369907e1ad43`),
  null,
);

/** RFC 8439 §2.8.2 as ESP with ESN: SPI 50515253, seqHi c0c1c2c3, seqLo c4c5c6c7, salt 07000000, IV 40..47. */
export const RFC8439: EspVector = vector(
  'RFC 8439 §2.8.2',
  'chacha20-poly1305',
  fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
  0x50515253,
  fromHex('c0c1c2c3c4c5c6c7'),
  fromHex('07000000 4041424344454647'),
  fromHex('50515253c0c1c2c3c4c5c6c7'),
  new TextEncoder().encode("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it."),
  fromHex(`d31a8d34648e60db7b86afbc53ef7ec2 a4aded51296e08fea9e2b5a736ee62d6 3dbea45e8ca9671282fafb69da92728b
           1a71de0a9e060b2905d6a5b67ecd3b36 92ddbd7f2d778b8c9803aee328091b58 fab324e4fad675945585808b4831d7bc
           3ff4def08e4b7a9de576d26586cec64b 6116 1ae10b594f09e26a7e902ecbd0600691`),
  null,
);
