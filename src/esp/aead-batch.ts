/**
 * AEAD over a batch of packets: the jobs of up to `capacity` packets (seal, or open) are collected, then
 * run in one call — one crossing into the native addon (native/seine.c, its AEAD section: Node's own
 * OpenSSL, one EVP context per SA and direction, keyed once) — or, where the addon is not built, one job
 * after another through the per-packet backends of esp/aead.ts. Both give the same bytes: the batch only
 * changes how many times the cipher is entered, never what it computes.
 *
 * Why: node:crypto has no one-shot AEAD, and a cipher object per packet costs ~5 µs (AES-GCM at ~2 Gbit/s)
 * where the AES-NI work is ~0.2 µs; a native context reused per SA, with a batch per call, leaves the
 * cipher itself as the cost.
 *
 * The addon lives in live/ (it also does TAP and socket I/O), which esp/ may not import: the caller
 * hands the binding in (`NativeAead`, a part of live/native.ts's `Native`), and null means the
 * per-packet backends.
 *
 * A job's message, tag and data are addressed in one ArrayBuffer (a `PacketPool.slab`, or any buffer):
 * the batch runs what it holds whenever a job in another ArrayBuffer arrives, so the caller may mix
 * buffers and still read every status after `run()`. A batch holds `capacity` jobs between `clear`s. Nothing is allocated per job on the
 * native path; the fallback allocates what its backend does (esp/aead.ts).
 *
 * After a failed open the message holds no plaintext: the native path leaves the ciphertext as it arrived
 * (it runs the keystream over it again, native/seine.c), node:crypto's AES-GCM never writes it, libsodium
 * zero-fills it.
 */
import { inspect } from 'node:util';
import { AEAD_NONCE_LEN, AEAD_TAG_LEN, createAead, currentAeadObserver, keyFingerprint, type Aead, type AeadAlgorithm, type AeadObserver } from './aead.js';

/** The addon's AEAD calls (native/seine.c); live/native.ts's `Native` has them. */
export interface NativeAead {
  /** A context keyed for `cipher` (`AEAD_CIPHER_ID`), sealing or opening. */
  aeadCreate(cipher: number, key: Uint8Array, encrypt: boolean): object;
  /** Frees a context now (its finalizer would later); using it afterwards throws. */
  aeadFree(ctx: object): void;
  /**
   * Seals (opens) packets i < count in place in `slab`: desc[6i..6i+6) = context index in `ctxs`, message
   * offset and length, AAD offset and length in `aad`, tag offset; nonce at nonces[12i]. status[i] = 1 or 0;
   * returns how many are 1. Throws (TypeError / RangeError) before touching anything when an argument is bad.
   */
  aeadSealBatch(ctxs: object[], slab: Uint8Array, desc: Int32Array, nonces: Uint8Array, aad: Uint8Array, status: Uint8Array, count: number): number;
  aeadOpenBatch(ctxs: object[], slab: Uint8Array, desc: Int32Array, nonces: Uint8Array, aad: Uint8Array, status: Uint8Array, count: number): number;
}

/** The addon's cipher numbers (native/seine.c, `AEAD_AES_128_GCM` …). */
export const AEAD_CIPHER_ID: Readonly<Record<AeadAlgorithm, number>> = {
  'aes-gcm-128': 0,
  'aes-gcm-192': 1,
  'aes-gcm-256': 2,
  'chacha20-poly1305': 3,
};

/** Words per packet in a batch's descriptor array (native/seine.c `AEAD_DESC`). */
const AEAD_DESC_LEN = 6;
/** Room for one packet's additional data (ESP's is 8 or 12 bytes). */
const AAD_SLOT = 16;

/**
 * One key of one algorithm, usable both ways: per packet (`aead`, the esp/aead.ts backend) and in a batch
 * (a native context per direction, made on first use and cached per binding). The key is copied and
 * private; printing shows the algorithm only.
 */
export class AeadKey {
  readonly algorithm: AeadAlgorithm;
  /** The per-packet backend (the simulator's, and the batch's without the addon). */
  readonly aead: Aead;
  readonly #key: Uint8Array;
  #native: NativeAead | null = null;
  #seal: object | null = null;
  #open: object | null = null;
  /** The test hook (esp/aead.ts `setAeadObserver`) as it was when the key was made, and the key's fingerprint. */
  readonly observer: AeadObserver | null;
  readonly fingerprint: string;

  /** Throws a RangeError for an unknown algorithm or a key of the wrong length (as `createAead`). */
  constructor(algorithm: AeadAlgorithm, key: Uint8Array) {
    this.aead = createAead(algorithm, key);
    this.algorithm = algorithm;
    this.#key = Uint8Array.from(key);
    this.observer = currentAeadObserver();
    this.fingerprint = this.observer === null ? '' : keyFingerprint(algorithm, key);
  }

  /** The native context for sealing (`seal`) or opening through `native`, made once. */
  context(native: NativeAead, seal: boolean): object {
    if (native !== this.#native) {
      this.free();
      this.#native = native;
    }
    if (seal) return (this.#seal ??= native.aeadCreate(AEAD_CIPHER_ID[this.algorithm], this.#key, true));
    return (this.#open ??= native.aeadCreate(AEAD_CIPHER_ID[this.algorithm], this.#key, false));
  }

  /** Frees the native contexts now (an SA retired); they are made again if the key is used. */
  free(): void {
    if (this.#native !== null) {
      if (this.#seal !== null) this.#native.aeadFree(this.#seal);
      if (this.#open !== null) this.#native.aeadFree(this.#open);
    }
    this.#seal = this.#open = null;
  }

  toJSON(): string {
    return `AeadKey(${this.algorithm}, key <redacted>)`;
  }

  [inspect.custom](): string {
    return this.toJSON();
  }
}

/**
 * A batch of AEAD jobs, all seals or all opens. `add` takes one job and returns its index; `run` does
 * every job not yet done; `ok(i)` is job i's outcome; `clear` starts the next batch (indexes restart at 0).
 * A full batch, or a job in another ArrayBuffer, runs what is held first, so statuses are always there
 * after `run`.
 */
export class AeadBatch {
  /** Jobs added since `clear`. */
  length = 0;
  /** Jobs run so far (those below are done). */
  private done = 0;
  private readonly desc: Int32Array;
  private readonly nonces: Uint8Array;
  private readonly aad: Uint8Array;
  private readonly status: Uint8Array;
  private readonly keys: Array<AeadKey | null>;
  /** The distinct keys of the current call, and their contexts (the `ctxs` argument). */
  private readonly callKeys: AeadKey[] = [];
  private readonly ctxs: object[] = [];
  private buffer: ArrayBufferLike | null = null;
  private slab: Uint8Array = new Uint8Array(0);
  // Per-job views for the per-packet fallback (made once, on first use).
  private nonceViews: Uint8Array[] | null = null;
  private aadViews: Array<Uint8Array | undefined> | null = null;

  /**
   * `seal`: the direction of every job. `native`: the addon, or null for the per-packet backends.
   * `capacity`: jobs per call (a bridge batch: 32–256).
   */
  constructor(
    readonly seal: boolean,
    readonly native: NativeAead | null,
    readonly capacity = 256,
  ) {
    if (!(Number.isInteger(capacity) && capacity >= 1 && capacity <= 65536))
      throw new RangeError(`AeadBatch capacity ${capacity} is not an integer in 1-65536`);
    this.desc = new Int32Array(capacity * AEAD_DESC_LEN);
    this.nonces = new Uint8Array(capacity * AEAD_NONCE_LEN);
    this.aad = new Uint8Array(capacity * AAD_SLOT);
    this.status = new Uint8Array(capacity);
    this.keys = new Array<AeadKey | null>(capacity).fill(null);
  }

  /**
   * Adds a job: the message `data[off, off+len)`, the tag at `data[tagOff, +16)`, under `key`; the nonce
   * (the first 12 bytes of `nonce`) and the AAD (the first `aadLen` ≤ 16 bytes of `aad`) are copied.
   * Returns the job's index, or -1 when the batch is full (`capacity` jobs since `clear`), a range lies
   * outside `data` or the tag overlaps the message — nothing is queued then.
   */
  add(key: AeadKey, data: Uint8Array, off: number, len: number, tagOff: number, nonce: Uint8Array, aad: Uint8Array, aadLen: number): number {
    const n = data.length;
    if (
      !(
        off >= 0 &&
        len >= 0 &&
        off + len <= n &&
        tagOff >= 0 &&
        tagOff + AEAD_TAG_LEN <= n &&
        (tagOff >= off + len || tagOff + AEAD_TAG_LEN <= off) &&
        nonce.length >= AEAD_NONCE_LEN &&
        aadLen >= 0 &&
        aadLen <= AAD_SLOT &&
        aadLen <= aad.length
      )
    )
      return -1;
    if (this.length === this.capacity) return -1;
    if (data.buffer !== this.buffer) {
      // The call takes one slab: what is held runs now (its statuses stay), the rest goes in the next call.
      if (this.done < this.length) this.run();
      this.buffer = data.buffer;
      this.slab = new Uint8Array(data.buffer);
    }
    const i = this.length++;
    const base = data.byteOffset;
    const d = this.desc;
    const o = i * AEAD_DESC_LEN;
    this.keys[i] = key;
    d[o + 1] = base + off;
    d[o + 2] = len;
    d[o + 3] = i * AAD_SLOT;
    d[o + 4] = aadLen;
    d[o + 5] = base + tagOff;
    const nn = this.nonces;
    const no = i * AEAD_NONCE_LEN;
    for (let k = 0; k < AEAD_NONCE_LEN; k++) nn[no + k] = nonce[k]!;
    const a = this.aad;
    const ao = i * AAD_SLOT;
    for (let k = 0; k < aadLen; k++) a[ao + k] = aad[k]!;
    if (key.observer !== null) key.observer(this.seal ? 'seal' : 'open', key.fingerprint, nn.subarray(no, no + AEAD_NONCE_LEN));
    return i;
  }

  /** Runs every job not yet run: one native call, or each job through its per-packet backend. */
  run(): void {
    const from = this.done;
    const to = this.length;
    if (from === to) return;
    this.done = to;
    const native = this.native;
    if (native === null) {
      this.runEach(from, to);
      return;
    }
    // The distinct keys of jobs [from, to) become the call's contexts; each job gets its key's index.
    const ks = this.callKeys;
    const cs = this.ctxs;
    ks.length = cs.length = 0;
    const d = this.desc;
    for (let i = from; i < to; i++) {
      const key = this.keys[i]!;
      let k = ks.indexOf(key);
      if (k < 0) {
        k = ks.length;
        ks.push(key);
        cs.push(key.context(native, this.seal));
      }
      d[i * AEAD_DESC_LEN] = k;
    }
    // The call reads jobs from index 0 of its arrays: views from `from` (cached for `from` 0, the usual case).
    if (from === 0) {
      if (this.seal) native.aeadSealBatch(cs, this.slab, d, this.nonces, this.aad, this.status, to);
      else native.aeadOpenBatch(cs, this.slab, d, this.nonces, this.aad, this.status, to);
    } else {
      const dv = d.subarray(from * AEAD_DESC_LEN);
      const nv = this.nonces.subarray(from * AEAD_NONCE_LEN);
      const sv = this.status.subarray(from);
      // AAD offsets are absolute in `aad`, so the whole array goes.
      if (this.seal) native.aeadSealBatch(cs, this.slab, dv, nv, this.aad, sv, to - from);
      else native.aeadOpenBatch(cs, this.slab, dv, nv, this.aad, sv, to - from);
    }
  }

  private runEach(from: number, to: number): void {
    const nv = (this.nonceViews ??= Array.from({ length: this.capacity }, (_, i) => this.nonces.subarray(i * AEAD_NONCE_LEN, (i + 1) * AEAD_NONCE_LEN)));
    const av = (this.aadViews ??= new Array<Uint8Array | undefined>(this.capacity * (AAD_SLOT + 1)));
    const d = this.desc;
    const slab = this.slab;
    for (let i = from; i < to; i++) {
      const o = i * AEAD_DESC_LEN;
      const aadLen = d[o + 4]!;
      const ai = i * (AAD_SLOT + 1) + aadLen;
      const aad = (av[ai] ??= this.aad.subarray(i * AAD_SLOT, i * AAD_SLOT + aadLen));
      const a = this.keys[i]!.aead;
      const ok = this.seal ? a.seal(slab, d[o + 1]!, d[o + 2]!, d[o + 5]!, nv[i]!, aad) : a.open(slab, d[o + 1]!, d[o + 2]!, d[o + 5]!, nv[i]!, aad);
      this.status[i] = ok ? 1 : 0;
    }
  }

  /** Job i's outcome (after `run`): sealed, or authenticated and decrypted. */
  ok(i: number): boolean {
    return i < this.done && this.status[i] === 1;
  }

  /** Forgets every job (run or not); the keys held are let go. */
  clear(): void {
    for (let i = 0; i < this.length; i++) this.keys[i] = null;
    this.length = this.done = 0;
  }
}
