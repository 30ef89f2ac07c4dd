/**
 * ESP keys: the cluster secret, the per-SA keys derived from it, and SAs configured by hand.
 *
 * An AEAD nonce is salt ‖ 64-bit sequence number (RFC 4106 §4, RFC 7634 §2), so a (key, nonce) pair is
 * unique when every SA has its own (key, salt) and its sequence numbers never repeat. This module gives
 * each SA its own key and salt: HKDF-SHA256 (RFC 5869) over the cluster secret, with every field that
 * tells SAs apart in `info`, each length-prefixed so that no two tuples encode alike (("ab","c") and
 * ("a","bc") differ):
 * - the cipher;
 * - the tunnel: its kind, its UDP port and both ends' underlay addresses (as 4 or 16 bytes, so that two
 *   spellings of one address agree) — two tunnel ports of one node towards one peer (VXLAN and Geneve,
 *   say) get different keys;
 * - the sending and the receiving node's names;
 * - the *incarnations* of both ends: 16 random bytes each SA database draws once when it starts (from
 *   randomness it is given, never its own), exchanged in the epoch announcements (esp/hello.ts). A
 *   restart of either end therefore means new keys, with or without a journal: the sender cannot reuse
 *   a nonce of its previous life, and the receiver cannot be fed packets captured before its restart;
 * - the epoch: the sender's rekey counter within the pair of incarnations (it only grows, see sadb.ts).
 * src→dst and dst→src are two SAs with two keys.
 *
 * Derivation, version 2 (what the known-answer test recomputes by hand):
 * ```
 * lp(x)    = u16be(len(x)) ‖ x
 * fields   = lp(cipher) ‖ lp(utf8(kind)) ‖ lp(u16be(port)) ‖ lp(utf8(src)) ‖ lp(utf8(dst))
 *            ‖ lp(addr(srcAddr)) ‖ lp(addr(dstAddr)) ‖ lp(srcIncarnation) ‖ lp(dstIncarnation) ‖ lp(u64be(epoch))
 * key‖salt = HKDF-SHA256(IKM = secret, salt = "seine esp v2", info = lp("seine esp sa v2") ‖ fields,
 *                        L = keyLen + saltLen of the cipher (ESP_CIPHERS))
 * v        = u32be(HKDF-SHA256(IKM = secret, salt = "seine esp v2", info = lp("seine esp spi v2") ‖ fields ‖ lp(u32be(tweak)), L = 4))
 * spi      = 256 + v mod (2^32 − 256)          (0–255 are reserved, RFC 4303 §2.1)
 * hello    = HKDF-SHA256(IKM = secret, salt = "seine esp v2", info = lp("seine esp hello v1") ‖ lp(cipher)
 *            ‖ lp(utf8(kind)) ‖ lp(u16be(port)) ‖ lp(utf8(src)) ‖ lp(utf8(dst)) ‖ lp(addr(srcAddr)) ‖ lp(addr(dstAddr)), L = 32)
 * ```
 * `hello` keys the HMAC of the announcements src sends to dst (one key per direction and tunnel).
 *
 * The SPI is a candidate: two SAs may derive one SPI. The SA database does not rely on SPIs being
 * unique: it finds an inbound SA by (SPI, peer) — RFC 4301 §4.1 lets a receiver use the source address
 * as well — and a sender skips an epoch whose SPI equals one its peer may still hold (sadb.ts).
 *
 * The secret never leaves `ClusterSecret` in text form: `String`, `JSON.stringify` and `util.inspect` of
 * it (and of derived `SaKeys`) print a redaction, and no error message quotes the input it rejects.
 * Accepted forms, chosen so that what `openssl rand` or `head -c` produce just works:
 * - a file of raw bytes (anything that is not printable text), used verbatim, 32–1024 bytes;
 * - a file or environment variable of hex or base64 text (standard or URL-safe alphabet, padding
 *   optional), whitespace anywhere ignored (so a trailing newline, or base64 wrapped at 64 columns),
 *   decoding to 32–1024 bytes. Hex is tried first. Text that is neither is refused: a passphrase is not
 *   a key (generate one with `openssl rand -hex 32`). So is base64 with under 1/4 of its characters
 *   outside the hex digits (random base64 has 2/3): that is hex with a typo, not a different secret.
 * A secret file must be a regular file that neither group nor others may access (mode & 0o077 = 0, as
 * OpenSSH demands of private keys), or with `allowGroupRead` readable by its group and nothing more —
 * Kubernetes makes Secret volume files 0440 whenever the pod sets fsGroup (kubernetes/kubernetes#57923).
 */
import { createHash, createHmac, createSecretKey, hkdfSync, type KeyObject } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inspect } from 'node:util';
import { ESP_CIPHERS, type EspCipher } from '../mtu/overhead.js';
import { addrFromString } from '../wire/addr.js';

/** The shortest cluster secret accepted, in bytes (HKDF-SHA256's full strength). */
export const CLUSTER_SECRET_MIN_LEN = 32;
/** The longest: more is almost surely the wrong file. */
export const CLUSTER_SECRET_MAX_LEN = 1024;
/** The smallest SPI seine derives or accepts: 1–255 are reserved by IANA, 0 means none (RFC 4303 §2.1). */
export const SPI_MIN = 256;
/** How seine prints anything that holds key material. */
export const REDACTED = '<redacted>';

/** The length of an SA database's incarnation (its per-start random value), in bytes. */
export const ESP_INCARNATION_LEN = 16;

const FILE_MAX_LEN = 8192;
const HKDF_SALT = new TextEncoder().encode('seine esp v2');
/** The fingerprint keeps the version-1 salt: it names the secret, not a derivation, and operators compare it. */
const HKDF_SALT_V1 = new TextEncoder().encode('seine esp v1');
const LABEL_SA = 'seine esp sa v2';
const LABEL_SPI = 'seine esp spi v2';
const LABEL_HELLO = 'seine esp hello v1';
const LABEL_FINGERPRINT = 'seine cluster secret fingerprint v1';
const NAME_MAX_LEN = 255;

let secretPrk: (s: ClusterSecret) => KeyObject;

/**
 * The cluster secret. Its bytes are private to this module: nothing prints them, and only key
 * derivation reads them.
 */
export class ClusterSecret {
  readonly #bytes: Uint8Array;

  /** HKDF-Extract(salt "seine esp v2", secret), made on first use: every derivation expands from it. */
  #prk: KeyObject | null = null;

  static {
    secretPrk = (s) => (s.#prk ??= createSecretKey(createHmac('sha256', HKDF_SALT).update(s.#bytes).digest()));
  }

  /**
   * Copies `bytes` (32–1024 of them); the caller may wipe its own copy afterwards. Refuses bytes that
   * are all the same (all zero, say): an unset or wiped buffer, not a secret.
   */
  constructor(bytes: Uint8Array) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('cluster secret: expected a Uint8Array');
    checkSecretLength(bytes.length, 'cluster secret');
    if (bytes.every((b) => b === bytes[0]))
      throw new RangeError(
        `cluster secret: all ${bytes.length} bytes are 0x${bytes[0]!.toString(16).padStart(2, '0')}: an empty or wiped buffer, not a secret`,
      );
    this.#bytes = Uint8Array.from(bytes);
    Object.freeze(this);
  }

  /** The secret's length in bytes. */
  get length(): number {
    return this.#bytes.length;
  }

  /**
   * 16 hex digits that name the secret without revealing it (an HKDF output of its own), so that
   * operators can check two nodes hold the same secret.
   */
  fingerprint(): string {
    return hexOf(hkdfSha256(this.#bytes, HKDF_SALT_V1, lp(utf8(LABEL_FINGERPRINT)), 8));
  }

  toString(): string {
    return `ClusterSecret(${REDACTED})`;
  }

  toJSON(): string {
    return `ClusterSecret(${REDACTED})`;
  }

  [inspect.custom](): string {
    return `ClusterSecret(${REDACTED})`;
  }
}

/** Where the cluster secret comes from: exactly one of a file path or an environment variable's name. */
export interface ClusterSecretSource {
  file?: string;
  env?: string;
  /** Accept a file its group may read (mode 0440/0640); others never. Default false. */
  allowGroupRead?: boolean;
}

/**
 * Reads the cluster secret (formats and file-mode policy in the module comment). Errors are
 * RangeErrors naming the file or variable and what was expected; none quotes the content.
 */
export function loadClusterSecret(source: ClusterSecretSource, envObj: Readonly<Record<string, string | undefined>> = process.env): ClusterSecret {
  const { file, env } = source;
  if (file !== undefined && env !== undefined) throw new RangeError('cluster secret: give a file or an environment variable, not both');
  if (env !== undefined) {
    if (typeof env !== 'string' || env === '') throw new RangeError('cluster secret: env must name an environment variable');
    const what = `environment variable ${env}`;
    const text = envObj[env];
    if (text === undefined) throw new RangeError(`cluster secret: ${what} is not set`);
    if (text.trim() === '') throw new RangeError(`cluster secret: ${what} is empty (expected ${EXPECTED_TEXT})`);
    return secretFromText(text, what);
  }
  if (file !== undefined) {
    if (typeof file !== 'string' || file === '') throw new RangeError('cluster secret: file must be a path');
    const raw = readSecretFile(file, source.allowGroupRead === true);
    try {
      return secretFromFileBytes(raw, `file ${file}`);
    } finally {
      raw.fill(0);
    }
  }
  throw new RangeError('cluster secret: give a file or an environment variable');
}

const EXPECTED_TEXT = `${CLUSTER_SECRET_MIN_LEN}-${CLUSTER_SECRET_MAX_LEN} bytes as hex or base64, e.g. from \`openssl rand -hex 32\``;

function checkSecretLength(n: number, what: string): void {
  if (n < CLUSTER_SECRET_MIN_LEN) throw new RangeError(`${what}: ${n} bytes is too short, at least ${CLUSTER_SECRET_MIN_LEN} expected`);
  if (n > CLUSTER_SECRET_MAX_LEN) throw new RangeError(`${what}: ${n} bytes is too long, at most ${CLUSTER_SECRET_MAX_LEN} expected`);
}

function readSecretFile(file: string, allowGroupRead: boolean): Uint8Array {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new RangeError(`cluster secret: cannot open file ${file} (${errCode(e)})`);
  }
  try {
    // fstat on the open descriptor: the mode checked is the mode of the file read.
    const st = fstatSync(fd);
    if (!st.isFile()) throw new RangeError(`cluster secret: ${file} is not a regular file`);
    const mode = st.mode & 0o777;
    const forbidden = allowGroupRead ? 0o037 : 0o077;
    if (process.platform !== 'win32' && (mode & forbidden) !== 0) {
      const fix = allowGroupRead
        ? 'chmod 0440 or stricter'
        : 'chmod 0400 or 0600 (a Kubernetes Secret volume: defaultMode: 0400, or allowGroupRead with fsGroup)';
      const who = allowGroupRead ? 'others may access it or its group may do more than read it' : 'group or others may access it';
      throw new RangeError(`cluster secret: file ${file} has mode 0${mode.toString(8)}: ${who}; ${fix}`);
    }
    if (st.size > FILE_MAX_LEN) throw new RangeError(`cluster secret: file ${file} has ${st.size} bytes, more than a secret (at most ${FILE_MAX_LEN})`);
    const buf = new Uint8Array(FILE_MAX_LEN + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > FILE_MAX_LEN) {
        buf.fill(0);
        throw new RangeError(`cluster secret: file ${file} has more than ${FILE_MAX_LEN} bytes, more than a secret`);
      }
    }
    const out = buf.slice(0, n);
    buf.fill(0);
    return out;
  } finally {
    closeSync(fd);
  }
}

function errCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'error';
}

/** Printable characters and the usual whitespace: text that is not one, but control codes, unassigned or private code points, or U+FFFD. */
const PRINTABLE_RE = /^(?:[\t\n\r]|[^\p{Cc}\p{Cn}\p{Cs}\p{Co}\uFFFD])*$/u;

/**
 * The file as text, when it is text: UTF-8 (ASCII included) of printable characters and whitespace. A
 * passphrase with an accented letter is text — refused below as a passphrase, not taken as 32 raw bytes
 * because one of its bytes is not ASCII. Random bytes are almost never valid UTF-8 of printable
 * characters (32 of them: well under 10^-12).
 */
function asText(b: Uint8Array): string | null {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(b);
  } catch {
    return null;
  }
  return PRINTABLE_RE.test(text) ? text : null;
}

function secretFromFileBytes(raw: Uint8Array, what: string): ClusterSecret {
  if (raw.length === 0) throw new RangeError(`cluster secret: ${what} is empty (expected ${EXPECTED_TEXT}, or ${CLUSTER_SECRET_MIN_LEN}+ raw bytes)`);
  const text = asText(raw);
  if (text === null) {
    checkSecretLength(raw.length, `cluster secret: ${what}`);
    return new ClusterSecret(raw);
  }
  return secretFromText(text, what);
}

/**
 * The cluster secret of a passphrase (labs, where the text sits in the scenario): SHA-256 of its UTF-8
 * after Unicode normalisation to NFC, so that "é" typed as one code point or as "e" and a combining
 * accent is one secret. Refuses an empty passphrase and one with a lone surrogate (which UTF-8 cannot
 * encode: two such passphrases would share a secret).
 */
export function clusterSecretFromPassphrase(passphrase: string): ClusterSecret {
  if (typeof passphrase !== 'string' || passphrase === '') throw new RangeError('cluster secret: the passphrase is empty');
  const nfc = passphrase.normalize('NFC');
  const b = utf8(nfc);
  if (new TextDecoder().decode(b) !== nfc) throw new RangeError('cluster secret: the passphrase is not well-formed Unicode (a lone surrogate)');
  try {
    return new ClusterSecret(createHash('sha256').update(b).digest());
  } finally {
    b.fill(0);
  }
}

function secretFromText(text: string, what: string): ClusterSecret {
  const bytes = decodeSecretText(text);
  if (bytes === null) throw new RangeError(`cluster secret: ${what} is neither hex nor base64 (expected ${EXPECTED_TEXT}; a passphrase is not a key)`);
  try {
    checkSecretLength(bytes.length, `cluster secret: ${what}`);
    return new ClusterSecret(bytes);
  } finally {
    bytes.fill(0);
  }
}

const HEX_RE = /^(?:[0-9a-fA-F]{2})+$/;
const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const B64URL_RE = /^[A-Za-z0-9_-]+={0,2}$/;

/** Hex, else base64 (strict: canonical, right padding), with whitespace removed; null if neither. */
function decodeSecretText(text: string): Uint8Array | null {
  const s = text.replace(/[ \t\r\n]/g, '');
  if (s === '') return null;
  if (HEX_RE.test(s)) return Uint8Array.from(Buffer.from(s, 'hex'));
  // Hex digits only but an odd count is a damaged hex secret, not base64 that happens to look like hex.
  if (/^[0-9a-fA-F]+$/.test(s)) return null;
  // Random base64 has about 2/3 of its characters outside the hex digits; text with under 1/4 is a hex
  // secret with a typo (a stray g), which strict base64 would otherwise accept as a different secret.
  if (s.replace(/[0-9a-fA-F=]/g, '').length * 4 < s.length) return null;
  const url = !B64_RE.test(s);
  if (url && !B64URL_RE.test(s)) return null;
  const bare = s.replace(/=+$/, '');
  if (bare.length % 4 === 1) return null;
  if (s.length !== bare.length && s.length % 4 !== 0) return null;
  const buf = Buffer.from(bare, url ? 'base64url' : 'base64');
  // Re-encoding must give the text back: refuses non-zero trailing bits, i.e. text that is not base64.
  const again = buf.toString(url ? 'base64url' : 'base64').replace(/=+$/, '');
  const ok = again === bare;
  const out = ok ? Uint8Array.from(buf) : null;
  buf.fill(0);
  return ok ? out : null;
}

// ---- HKDF and the info layout ---------------------------------------------------------------------------

/**
 * HKDF-Expand (RFC 5869 §2.3) with SHA-256 from the cluster secret's pseudorandom key over the parts of
 * `info` in order: the same bytes as `hkdfSha256(secret, "seine esp v2", concat(info), length)` (the tests check it), without extracting again each
 * time — a rekey derives several keys, and the extract step is a third of each.
 */
function expand(secret: ClusterSecret, info: readonly Uint8Array[], length: number): Uint8Array {
  const prk = secretPrk(secret);
  const out = new Uint8Array(length);
  let t: Uint8Array = new Uint8Array(0);
  for (let i = 1, o = 0; o < length; i++) {
    const h = createHmac('sha256', prk).update(t);
    for (const part of info) h.update(part);
    t = h.update(COUNTER[i]!).digest();
    out.set(t.subarray(0, Math.min(t.length, length - o)), o);
    o += t.length;
  }
  return out;
}

/** HKDF-Expand's block counter bytes (RFC 5869 §2.3: a single octet, 1 to 255). */
const COUNTER = Array.from({ length: 256 }, (_, i) => new Uint8Array([i]));

/** HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes (at most 8160). */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

/** A length-prefixed field: u16be(len) ‖ bytes. */
function lp(x: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + x.length);
  out[0] = x.length >>> 8;
  out[1] = x.length & 0xff;
  out.set(x, 2);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function u64be(v: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(v));
  return out;
}

function u32be(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v);
  return out;
}

function hexOf(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** A node's name or address as bytes; refuses what would encode ambiguously (lone surrogates). */
function nameBytes(s: unknown, field: string): Uint8Array {
  if (typeof s !== 'string' || s === '') throw new RangeError(`esp keys: ${field} must be a non-empty node name or address`);
  const b = utf8(s);
  // TextEncoder maps every lone surrogate to U+FFFD: two different names would share a key.
  if (new TextDecoder().decode(b) !== s) throw new RangeError(`esp keys: ${field} is not well-formed Unicode (a lone surrogate)`);
  if (b.length > NAME_MAX_LEN) throw new RangeError(`esp keys: ${field} is ${b.length} bytes of UTF-8, at most ${NAME_MAX_LEN} expected`);
  return b;
}

function checkCipher(cipher: unknown, what: string): EspCipher {
  if (typeof cipher !== 'string' || !Object.hasOwn(ESP_CIPHERS, cipher))
    throw new RangeError(`${what}: cipher ${String(cipher)} is not one of ${Object.keys(ESP_CIPHERS).join(', ')}`);
  return cipher as EspCipher;
}

// ---- SA keys ----------------------------------------------------------------------------------------------

/** The keying material of one SA: what the ESP core needs besides its sequence numbers. */
export interface SaKeys {
  readonly cipher: EspCipher;
  /** The AEAD key, `ESP_CIPHERS[cipher].keyLen` bytes. */
  readonly key: Uint8Array;
  /** The nonce's fixed prefix, `ESP_CIPHERS[cipher].saltLen` bytes. */
  readonly salt: Uint8Array;
  /** The SPI in 256–2^32−1. */
  readonly spi: number;
}

/**
 * The tunnel an SA belongs to, as both ends see it: its kind, its UDP port, and the underlay addresses of
 * the SA's sender and receiver (IPv4 or IPv6 text; compared as address bytes).
 */
export interface SaTunnel {
  /** `vxlan` or `geneve` (any non-empty name is accepted: it is a label). */
  kind: string;
  /** The tunnel's UDP destination port, 0–65535. */
  port: number;
  srcAddr: string;
  dstAddr: string;
}

/** What identifies a derived SA (module comment): the sender's rekey epoch counts per pair of incarnations. */
export interface SaKeySpec {
  cipher: EspCipher;
  /** The sending node's name or address, exactly as both ends spell it (compared as UTF-8 bytes). */
  src: string;
  /** The receiving node's. */
  dst: string;
  tunnel: SaTunnel;
  /** The sender's and the receiver's incarnation, `ESP_INCARNATION_LEN` bytes each. */
  srcIncarnation: Uint8Array;
  dstIncarnation: Uint8Array;
  /** A safe integer ≥ 0. */
  epoch: number;
  /** Moves the SPI (and only the SPI) away from a collision; 0–2^32−1, default 0. */
  spiTweak?: number;
}

/** The fields of a hello key (module comment): an SA's without incarnations and epoch. */
export type HelloKeySpec = Pick<SaKeySpec, 'cipher' | 'src' | 'dst' | 'tunnel'>;

function addrBytes(s: unknown, field: string): Uint8Array {
  const a = typeof s === 'string' ? addrFromString(s) : null;
  if (a !== null) return a.family === 4 ? u32be(a.v4) : a.v6;
  throw new RangeError(`esp keys: tunnel ${field} ${JSON.stringify(s)} is not an IPv4 or IPv6 address`);
}

function incarnation(b: unknown, field: string): Uint8Array {
  if (!(b instanceof Uint8Array) || b.length !== ESP_INCARNATION_LEN) throw new RangeError(`esp keys: ${field} must be ${ESP_INCARNATION_LEN} bytes`);
  return b;
}

/** lp(cipher) ‖ lp(kind) ‖ lp(port) ‖ lp(src) ‖ lp(dst) ‖ lp(srcAddr) ‖ lp(dstAddr): what SA and hello keys share. */
function pairFields(spec: HelloKeySpec, what: string): { cipher: EspCipher; fields: Uint8Array[] } {
  if (spec === null || typeof spec !== 'object') throw new RangeError(`esp keys: expected ${what}`);
  const cipher = checkCipher(spec.cipher, 'esp keys');
  const src = nameBytes(spec.src, 'src');
  const dst = nameBytes(spec.dst, 'dst');
  if (spec.src === spec.dst) throw new RangeError(`esp keys: src and dst are both ${spec.src}`);
  const t = spec.tunnel;
  if (t === null || typeof t !== 'object') throw new RangeError('esp keys: tunnel must be { kind, port, srcAddr, dstAddr }');
  const kind = nameBytes(t.kind, 'tunnel kind');
  if (!Number.isInteger(t.port) || t.port < 0 || t.port > 0xffff) throw new RangeError(`esp keys: tunnel port ${String(t.port)} is not an integer in 0-65535`);
  const port = new Uint8Array([t.port >>> 8, t.port & 0xff]);
  const sa = addrBytes(t.srcAddr, 'srcAddr');
  const da = addrBytes(t.dstAddr, 'dstAddr');
  return { cipher, fields: [lp(utf8(cipher)), lp(kind), lp(port), lp(src), lp(dst), lp(sa), lp(da)] };
}

function checkEpoch(epoch: unknown): number {
  if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0)
    throw new RangeError(`esp keys: epoch ${String(epoch)} is not an integer in 0-${Number.MAX_SAFE_INTEGER}`);
  return epoch;
}

/** The HMAC key of the announcements `src` sends to `dst` on this tunnel (module comment), 32 bytes. */
export function deriveHelloKey(secret: ClusterSecret, spec: HelloKeySpec): Uint8Array {
  checkSecret(secret);
  const { fields } = pairFields(spec, '{ cipher, src, dst, tunnel }');
  return expand(secret, [concat([lp(utf8(LABEL_HELLO)), ...fields])], 32);
}

function checkTweak(t: number | undefined): number {
  const v = t ?? 0;
  if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`esp keys: spiTweak ${String(t)} is not an integer in 0-4294967295`);
  return v;
}

function checkSecret(secret: unknown): ClusterSecret {
  if (!(secret instanceof ClusterSecret)) throw new TypeError('esp keys: expected a ClusterSecret');
  return secret;
}

/** The SA fields other than the epoch: what a deriver keeps. */
export type SaPairSpec = Omit<SaKeySpec, 'epoch' | 'spiTweak'>;

/**
 * The derivations of one direction between two incarnations on one tunnel — key, salt and SPI per epoch
 * (layout in the module comment) — with the fixed fields encoded once: a rekey then costs the HMACs of
 * HKDF-Expand and no more. Checks everything when made; `keys` and `spi` check the epoch and tweak.
 */
export class SaDeriver {
  readonly cipher: EspCipher;
  readonly #secret: ClusterSecret;
  /** lp(label) ‖ fields up to the epoch, for the SA key and for the SPI. */
  readonly #saInfo: Uint8Array;
  readonly #spiInfo: Uint8Array;

  constructor(secret: ClusterSecret, spec: SaPairSpec) {
    this.#secret = checkSecret(secret);
    const { cipher, fields } = pairFields(spec, '{ cipher, src, dst, tunnel, srcIncarnation, dstIncarnation, epoch }');
    const si = incarnation(spec.srcIncarnation, 'srcIncarnation');
    const di = incarnation(spec.dstIncarnation, 'dstIncarnation');
    const f = concat([...fields, lp(si), lp(di)]);
    this.cipher = cipher;
    this.#saInfo = concat([lp(utf8(LABEL_SA)), f]);
    this.#spiInfo = concat([lp(utf8(LABEL_SPI)), f]);
  }

  /** The key, salt and candidate SPI in `epoch`. */
  keys(epoch: number, spiTweak?: number): SaKeys {
    const e = lp(u64be(checkEpoch(epoch)));
    const c = ESP_CIPHERS[this.cipher];
    const okm = expand(this.#secret, [this.#saInfo, e], c.keyLen + c.saltLen);
    return saKeys(this.cipher, okm.slice(0, c.keyLen), okm.slice(c.keyLen), this.#spi(e, checkTweak(spiTweak)));
  }

  /** The candidate SPI alone in `epoch` (the same as `keys(epoch).spi`). */
  spi(epoch: number, spiTweak?: number): number {
    return this.#spi(lp(u64be(checkEpoch(epoch))), checkTweak(spiTweak));
  }

  #spi(epochField: Uint8Array, tweak: number): number {
    const okm = expand(this.#secret, [this.#spiInfo, epochField, lp(u32be(tweak))], 4);
    const v = ((okm[0]! << 24) | (okm[1]! << 16) | (okm[2]! << 8) | okm[3]!) >>> 0;
    return SPI_MIN + (v % (0x1_0000_0000 - SPI_MIN));
  }

  toJSON(): string {
    return `SaDeriver(${this.cipher}, ${REDACTED})`;
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

/**
 * The key, salt and candidate SPI of the SA from `src` to `dst` on `tunnel` between the incarnations
 * given, in `epoch` (layout in the module comment). Any field differing gives an independent key and
 * salt; `spiTweak` changes only the SPI.
 */
export function deriveSaKeys(secret: ClusterSecret, spec: SaKeySpec): SaKeys {
  checkEpoch(spec?.epoch);
  return new SaDeriver(secret, spec).keys(spec.epoch, spec.spiTweak);
}

/** The candidate SPI alone (the same as `deriveSaKeys(...).spi`), to try tweaks without deriving keys. */
export function spiFor(secret: ClusterSecret, spec: SaKeySpec): number {
  checkEpoch(spec?.epoch);
  return new SaDeriver(secret, spec).spi(spec.epoch, spec.spiTweak);
}

/** An SA configured by hand (labs, interop): hex key and salt, as `ip xfrm` shows them (its AEAD key is key ‖ salt). */
export interface ExplicitSaSpec {
  cipher: EspCipher;
  /** `keyLen` bytes as hex, `0x` prefix allowed. */
  key: string;
  /** `saltLen` bytes as hex, `0x` prefix allowed. */
  salt: string;
  spi: number;
}

function hexField(s: unknown, field: string, len: number, cipher: EspCipher): Uint8Array {
  const want = `${2 * len} hex digits (${len} bytes) for ${cipher}`;
  if (typeof s !== 'string') throw new RangeError(`esp sa: ${field} must be a hex string of ${want}`);
  const h = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
  if (!/^[0-9a-fA-F]*$/.test(h)) throw new RangeError(`esp sa: ${field} is not hex (expected ${want})`);
  if (h.length !== 2 * len) throw new RangeError(`esp sa: ${field} has ${h.length} hex digits, expected ${want}`);
  return Uint8Array.from(Buffer.from(h, 'hex'));
}

/** Validates a hand-configured SA against `ESP_CIPHERS`; errors name the field and never quote it. */
export function explicitSaKeys(spec: ExplicitSaSpec): SaKeys {
  if (spec === null || typeof spec !== 'object') throw new RangeError('esp sa: expected { cipher, key, salt, spi }');
  const cipher = checkCipher(spec.cipher, 'esp sa');
  const c = ESP_CIPHERS[cipher];
  const key = hexField(spec.key, 'key', c.keyLen, cipher);
  const salt = hexField(spec.salt, 'salt', c.saltLen, cipher);
  const spi = spec.spi;
  if (!Number.isInteger(spi) || spi < SPI_MIN || spi > 0xffff_ffff)
    throw new RangeError(`esp sa: spi ${String(spi)} is not an integer in ${SPI_MIN}-4294967295 (0-255 are reserved, RFC 4303 §2.1)`);
  return saKeys(cipher, key, salt, spi);
}

/**
 * A one-way name of an SA's (key, salt): `key:` and 32 hex digits of SHA-256 over a label, the key and
 * the salt. The journal files hand-configured SAs under it, so the same key resumes its sequence numbers
 * whatever SPI it is given. (It reveals nothing of a random key; a guessable lab key was never secret.)
 */
export function keyId(keys: Pick<SaKeys, 'key' | 'salt'>): string {
  const h = createHash('sha256')
    .update(lp(utf8('seine esp key id v1')))
    .update(lp(keys.key))
    .update(lp(keys.salt))
    .digest();
  return `key:${h.subarray(0, 16).toString('hex')}`;
}

const redact = { value: () => `SaKeys(${REDACTED})`, enumerable: false };

/** Plain data whose printing (String, JSON, util.inspect) is redacted; the fields read as usual. */
function saKeys(cipher: EspCipher, key: Uint8Array, salt: Uint8Array, spi: number): SaKeys {
  const k = { cipher, key, salt, spi };
  Object.defineProperties(k, { toString: redact, toJSON: redact, [inspect.custom]: redact });
  return Object.freeze(k);
}
