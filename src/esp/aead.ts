/**
 * The AEAD primitives ESP uses, behind one small interface: seal and open a range of a buffer in place,
 * with a detached 16-byte tag, a 12-byte nonce and additional data the caller keeps in reused arrays.
 * These are the per-packet backends: the simulator's, and the fallback where the native addon is not
 * built. The live datapath seals and opens whole batches natively (esp/aead-batch.ts).
 *
 * Backends, measured on this project's machine (Node 20, 1400-byte messages, one core):
 *
 * - ChaCha20-Poly1305 (RFC 8439, used by RFC 7634): libsodium through sodium-native's public API, in
 *   place — ~2.0–2.2 µs per seal (~5.3 Gbit/s). One call does the whole AEAD; of that, ~0.85 µs is fixed
 *   per call (the N-API crossing of six typed arrays and Poly1305's key block), the rest ~0.75 ns/byte.
 *   The public `decrypt_detached` throws on a tag that does not verify; `open` catches it and returns
 *   false. That exception costs ~6 µs more per forged packet (~7.7 µs instead of ~1.2 µs), which only a
 *   flood of forgeries on a node without the addon pays; the live path opens natively without it. Node's
 *   own `chacha20-poly1305` cipher object costs ~6 µs per packet and is not used.
 *   Per-packet allocation: one `subarray` view of the message (the binding takes typed arrays, not
 *   offsets); the tag goes through a fixed 16-byte scratch array.
 * - AES-GCM (RFC 4106 with 128-, 192- or 256-bit keys): node:crypto, the only AES-GCM at hand
 *   (sodium-native binds no AES). node:crypto has no one-shot AEAD: every message needs a new cipher
 *   object, ~1.4 µs to create, plus ~1 µs of fixed cost in each of `update`/`final`/`getAuthTag` —
 *   ~5.2 µs per 1400-byte seal (~2.1 Gbit/s) although the AES-NI work itself is ~0.2 µs. The key is a
 *   `KeyObject` made once per SA (a raw key is re-imported per call and costs ~0.3 µs more).
 *   Per-packet allocation, all forced by node:crypto: the cipher object, the output Buffer of `update`
 *   and `final`, the tag Buffer, and two `subarray` views. The output is copied back in place.
 *
 * Neither backend throws on any input bytes: `open` returns false for a tag that does not verify (both
 * libraries throw there; the exception is caught inside `open`). After a failed open the message range
 * holds no plaintext: AES-GCM leaves it as it was (the output is copied in only after the tag verified);
 * libsodium zero-fills it (it verifies before it decrypts and wipes its output on failure).
 */
import { createCipheriv, createDecipheriv, createHash, createSecretKey, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import sodium from 'sodium-native';

/** The AEADs ESP can use. `aes-gcm-192` exists for the published test vectors; seine's SAs use 128 or 256. */
export type AeadAlgorithm = 'aes-gcm-128' | 'aes-gcm-192' | 'aes-gcm-256' | 'chacha20-poly1305';

/** Key length in bytes of each algorithm (without the ESP salt). */
export const AEAD_KEY_LEN: Readonly<Record<AeadAlgorithm, number>> = {
  'aes-gcm-128': 16,
  'aes-gcm-192': 24,
  'aes-gcm-256': 32,
  'chacha20-poly1305': 32,
};
/** Nonce length of every algorithm here: the 4-byte salt and the 8-byte ESP IV (RFC 4106 §4, RFC 7634 §2). */
export const AEAD_NONCE_LEN = 12;
/** Tag (ICV) length: the full 16 bytes (RFC 4106's 8- and 12-byte ICVs are not offered). */
export const AEAD_TAG_LEN = 16;

/**
 * An AEAD keyed once (per SA and direction). `data[off, off+len)` is the message, encrypted or decrypted
 * in place; the tag is at `data[tagOff, tagOff+16)`, outside the message. `nonce` is 12 bytes, `aad` the
 * whole additional data. Ranges outside `data`, an overlapping tag or a nonce of another length make both
 * methods return false without touching anything.
 */
export interface Aead {
  readonly algorithm: AeadAlgorithm;
  /** Encrypts the message and writes the tag. */
  seal(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean;
  /**
   * Verifies the tag over `aad` and the ciphertext, then decrypts in place. False when it does not
   * verify: the message range then holds no plaintext (see the module comment for what it holds).
   */
  open(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean;
}

function rangesOk(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array): boolean {
  const n = data.length;
  return (
    off >= 0 &&
    len >= 0 &&
    off + len <= n &&
    tagOff >= 0 &&
    tagOff + AEAD_TAG_LEN <= n &&
    (tagOff >= off + len || tagOff + AEAD_TAG_LEN <= off) &&
    nonce.length === AEAD_NONCE_LEN
  );
}

/** What printing an AEAD shows: its algorithm, never its key. */
function redacted(algorithm: AeadAlgorithm): string {
  return `Aead(${algorithm}, key <redacted>)`;
}

class ChaChaPoly implements Aead {
  readonly algorithm = 'chacha20-poly1305' as const;
  /** A private field: neither `util.inspect` nor `JSON.stringify` can reach it. */
  readonly #key: Uint8Array;
  /** The tag passes through here: libsodium wants a 16-byte array, and this saves a view per packet. */
  private readonly mac = new Uint8Array(AEAD_TAG_LEN);

  constructor(key: Uint8Array) {
    this.#key = Uint8Array.from(key);
  }

  toJSON(): string {
    return redacted(this.algorithm);
  }

  [inspect.custom](): string {
    return redacted(this.algorithm);
  }

  seal(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean {
    if (!rangesOk(data, off, len, tagOff, nonce)) return false;
    const m = data.subarray(off, off + len);
    const mac = this.mac;
    sodium.crypto_aead_chacha20poly1305_ietf_encrypt_detached(m, mac, m, aad, null, nonce, this.#key);
    for (let i = 0; i < AEAD_TAG_LEN; i++) data[tagOff + i] = mac[i]!;
    return true;
  }

  open(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean {
    if (!rangesOk(data, off, len, tagOff, nonce)) return false;
    const mac = this.mac;
    for (let i = 0; i < AEAD_TAG_LEN; i++) mac[i] = data[tagOff + i]!;
    const c = data.subarray(off, off + len);
    try {
      sodium.crypto_aead_chacha20poly1305_ietf_decrypt_detached(c, null, c, mac, aad, nonce, this.#key);
    } catch {
      return false; // the tag did not verify: libsodium zero-filled the message and decrypted nothing
    }
    return true;
  }
}

const GCM_NAME = { 16: 'aes-128-gcm', 24: 'aes-192-gcm', 32: 'aes-256-gcm' } as const;

class AesGcm implements Aead {
  readonly #keyObject: KeyObject;
  private readonly name: 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm';

  constructor(
    readonly algorithm: 'aes-gcm-128' | 'aes-gcm-192' | 'aes-gcm-256',
    key: Uint8Array,
  ) {
    this.#keyObject = createSecretKey(Uint8Array.from(key));
    this.name = GCM_NAME[key.length as 16 | 24 | 32];
  }

  toJSON(): string {
    return redacted(this.algorithm);
  }

  [inspect.custom](): string {
    return redacted(this.algorithm);
  }

  seal(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean {
    if (!rangesOk(data, off, len, tagOff, nonce)) return false;
    const c = createCipheriv(this.name, this.#keyObject, nonce);
    c.setAAD(aad);
    const out = c.update(data.subarray(off, off + len));
    c.final(); // GCM is a stream mode: `update` returned every byte, `final` only computes the tag
    data.set(out, off);
    data.set(c.getAuthTag(), tagOff);
    return true;
  }

  open(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean {
    if (!rangesOk(data, off, len, tagOff, nonce)) return false;
    const d = createDecipheriv(this.name, this.#keyObject, nonce);
    d.setAuthTag(data.subarray(tagOff, tagOff + AEAD_TAG_LEN));
    d.setAAD(aad);
    const out = d.update(data.subarray(off, off + len));
    try {
      d.final();
    } catch {
      return false; // the tag did not verify: `out` is discarded, the buffer is untouched
    }
    data.set(out, off);
    return true;
  }
}

/** True for the names `createAead` accepts. */
export function isAeadAlgorithm(a: unknown): a is AeadAlgorithm {
  return typeof a === 'string' && Object.hasOwn(AEAD_KEY_LEN, a);
}

/**
 * An AEAD for `algorithm` keyed with `key` (copied). Throws a RangeError for an unknown algorithm or a key
 * of the wrong length — a configuration error, never a packet's.
 */
export function createAead(algorithm: AeadAlgorithm, key: Uint8Array): Aead {
  if (!isAeadAlgorithm(algorithm)) throw new RangeError(`AEAD ${String(algorithm)} is not one of ${Object.keys(AEAD_KEY_LEN).join(', ')}`);
  const want = AEAD_KEY_LEN[algorithm];
  if (!(key instanceof Uint8Array) || key.length !== want) throw new RangeError(`AEAD ${algorithm}: key of ${key?.length} bytes, want ${want}`);
  let aead: Aead;
  if (algorithm === 'chacha20-poly1305') {
    if (
      sodium.crypto_aead_chacha20poly1305_ietf_KEYBYTES !== 32 ||
      sodium.crypto_aead_chacha20poly1305_ietf_NPUBBYTES !== AEAD_NONCE_LEN ||
      sodium.crypto_aead_chacha20poly1305_ietf_ABYTES !== AEAD_TAG_LEN
    )
      throw new Error('sodium-native: unexpected ChaCha20-Poly1305 sizes');
    aead = new ChaChaPoly(key);
  } else {
    aead = new AesGcm(algorithm, key);
  }
  return observer === null ? aead : new ObservedAead(aead, observer, keyFingerprint(algorithm, key));
}

// ---- the test hook: every (key, nonce) an AEAD seals under ----------------------------------------------

/**
 * Told of every seal and open of an AEAD created while it is installed: the operation, a fingerprint of
 * the key (`keyFingerprint`: a hash, never the key) and the 12-byte nonce (a view: copy it to keep it).
 * Called before the operation.
 */
export type AeadObserver = (op: 'seal' | 'open', key: string, nonce: Uint8Array) => void;

let observer: AeadObserver | null = null;

/**
 * INTERNAL, for tests: installs (or with null removes) the observer that AEADs created from now on
 * report to. AEADs created while none is installed are the plain backends: the hook costs the datapath
 * nothing unless a test asked for it. Returns the observer it replaced.
 */
export function setAeadObserver(o: AeadObserver | null): AeadObserver | null {
  const was = observer;
  observer = o;
  return was;
}

/** INTERNAL: the observer installed now (esp/aead-batch.ts reports its jobs to it as `createAead`'s AEADs do). */
export function currentAeadObserver(): AeadObserver | null {
  return observer;
}

/** SHA-256 over a label, the algorithm and the key, in hex: names a key without revealing it. */
export function keyFingerprint(algorithm: AeadAlgorithm, key: Uint8Array): string {
  return createHash('sha256').update('seine aead key fingerprint v1\0').update(algorithm).update('\0').update(key).digest('hex');
}

class ObservedAead implements Aead {
  readonly algorithm: AeadAlgorithm;
  constructor(
    private readonly inner: Aead,
    private readonly obs: AeadObserver,
    private readonly fp: string,
  ) {
    this.algorithm = inner.algorithm;
  }

  seal(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean {
    this.obs('seal', this.fp, nonce);
    return this.inner.seal(data, off, len, tagOff, nonce, aad);
  }

  open(data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array): boolean {
    this.obs('open', this.fp, nonce);
    return this.inner.open(data, off, len, tagOff, nonce, aad);
  }

  toJSON(): string {
    return redacted(this.algorithm);
  }

  [inspect.custom](): string {
    return redacted(this.algorithm);
  }
}
