/**
 * ESP security associations (RFC 4303): the keyed transform both directions share (`EspCrypto`), the
 * sender's side (`OutboundSa`: sequence numbers that never repeat, lifetimes) and the receiver's side
 * (`InboundSa`: the anti-replay window of §3.4.3 and Appendix A, with extended sequence numbers).
 *
 * Sequence numbers are 64-bit with ESN and 32-bit without; they are kept as two uint32 numbers (`hi`,
 * `lo`) so that the per-packet path stays in small-integer arithmetic. Without ESN `hi` is always 0.
 */
import { inspect } from 'node:util';
import { DROP_REASON_COUNT, DropReason } from '../wire/drop.js';
import { AEAD_KEY_LEN, AEAD_NONCE_LEN, AEAD_TAG_LEN, isAeadAlgorithm, type Aead, type AeadAlgorithm } from './aead.js';
import { AeadKey, type AeadBatch } from './aead-batch.js';

/** The IV each ESP packet carries (RFC 4106 §3.1, RFC 7634 §2): 8 bytes. seine sends the sequence number there. */
export const ESP_IV_LEN = 8;
/** The ICV: the AEAD tag, 16 bytes. */
export const ESP_ICV_LEN = AEAD_TAG_LEN;
/** The salt: the last 4 bytes of the keying material, the nonce's first 4 bytes (RFC 4106 §8.1, RFC 7634 §4). */
export const ESP_SALT_LEN = 4;
/** Default anti-replay window in packets (RFC 4303 §3.4.3: 32 minimum, 64 the default). */
export const ESP_REPLAY_WINDOW_DEFAULT = 64;
/** Largest anti-replay window offered. */
export const ESP_REPLAY_WINDOW_MAX = 4096;

const TWO32 = 0x1_0000_0000;
const REDACTED_TEXT = '<redacted>';

/** An SA's keys: the AEAD, its key, and the 4-byte salt (RFC 4106's keying material is `key ‖ salt`). */
export interface EspKeying {
  cipher: AeadAlgorithm;
  key: Uint8Array;
  salt: Uint8Array;
}

/** Hard lifetimes: once one is reached the SA is `expired` (RFC 4301 §4.4.2.1). Absent: no limit. */
export interface EspLifetime {
  /** Packets protected (outbound) or accepted (inbound). */
  packets?: number;
  /** Bytes of payload protected or accepted (the IP payload ESP carries, without ESP's own bytes). */
  bytes?: number;
  /** Nanoseconds since the SA was created (`createdAt`). */
  ns?: number;
  /**
   * Inbound only: packets whose ICV failed to verify on this SA after which it is no longer used (the
   * AEAD's integrity limit, see esp/sadb.ts `ESP_AEAD_LIMITS`). Checked by the SA database, not per packet.
   */
  authFailures?: number;
}

/**
 * The keyed ESP transform of one SA and direction: AEAD, nonce (`salt ‖ IV`) and additional data. The AAD
 * is taken from the packet's own header — SPI and the 32 sequence bits on the wire — with the high 32 bits
 * of an extended sequence number inserted between them (RFC 4106 §5, RFC 7634 §2.1):
 * `SPI ‖ seq` (8 bytes) or `SPI ‖ seqHi ‖ seqLo` (12 bytes).
 *
 * An ESP packet here is `data[esp, end)`: header (SPI, sequence number), IV, the ciphertext of payload,
 * padding, pad length and next header, and the ICV in the last 16 bytes.
 */
export class EspCrypto {
  readonly cipher: AeadAlgorithm;
  readonly esn: boolean;
  /** The key, per packet (`aead`) and for batches (esp/aead-batch.ts). */
  readonly key: AeadKey;
  private readonly aead: Aead;
  /** salt ‖ IV: private, as the salt is key material (printing an SA must not show it). */
  readonly #nonce = new Uint8Array(AEAD_NONCE_LEN);
  private readonly aad: Uint8Array;

  /** Throws a RangeError for an unknown cipher or a key or salt of the wrong length. */
  constructor(keying: EspKeying, esn: boolean) {
    if (!isAeadAlgorithm(keying.cipher)) throw new RangeError(`ESP cipher ${String(keying.cipher)} is not one of ${Object.keys(AEAD_KEY_LEN).join(', ')}`);
    if (!(keying.salt instanceof Uint8Array) || keying.salt.length !== ESP_SALT_LEN)
      throw new RangeError(`ESP ${keying.cipher}: salt of ${keying.salt?.length} bytes, want ${ESP_SALT_LEN}`);
    this.cipher = keying.cipher;
    this.esn = esn;
    this.key = new AeadKey(keying.cipher, keying.key);
    this.aead = this.key.aead;
    this.#nonce.set(keying.salt, 0);
    this.aad = new Uint8Array(esn ? 12 : 8);
  }

  toJSON(): string {
    return `EspCrypto(${this.cipher}, key and salt ${REDACTED_TEXT})`;
  }

  [inspect.custom](): string {
    return this.toJSON();
  }

  /** AAD from the header at `esp` and the high sequence bits. */
  private setAad(d: Uint8Array, esp: number, seqHi: number): void {
    const a = this.aad;
    a[0] = d[esp]!;
    a[1] = d[esp + 1]!;
    a[2] = d[esp + 2]!;
    a[3] = d[esp + 3]!;
    let o = 4;
    if (this.esn) {
      a[4] = seqHi >>> 24;
      a[5] = (seqHi >>> 16) & 0xff;
      a[6] = (seqHi >>> 8) & 0xff;
      a[7] = seqHi & 0xff;
      o = 8;
    }
    a[o] = d[esp + 4]!;
    a[o + 1] = d[esp + 5]!;
    a[o + 2] = d[esp + 6]!;
    a[o + 3] = d[esp + 7]!;
  }

  /**
   * Seals the ESP packet `data[esp, end)` whose header (SPI, low sequence bits) is written and whose
   * plaintext (payload, padding, pad length, next header) is `data[esp+16, end-16)`: writes the IV
   * `ivHi ‖ ivLo` at `esp+8`, encrypts in place and writes the ICV into the last 16 bytes. `seqHi` is the
   * high half of the sequence number (ignored without ESN). False only for ranges outside `data`.
   */
  seal(data: Uint8Array, esp: number, end: number, seqHi: number, ivHi: number, ivLo: number): boolean {
    const n = this.writeIv(data, esp, seqHi, ivHi, ivLo);
    const off = esp + 16;
    const tag = end - ESP_ICV_LEN;
    return this.aead.seal(data, off, tag - off, tag, n, this.aad);
  }

  /** Writes the 8-byte IV behind the ESP header and into the nonce, and the AAD; returns the nonce. */
  private writeIv(data: Uint8Array, esp: number, seqHi: number, ivHi: number, ivLo: number): Uint8Array {
    const iv = esp + 8;
    const n = this.#nonce;
    data[iv] = n[4] = ivHi >>> 24;
    data[iv + 1] = n[5] = (ivHi >>> 16) & 0xff;
    data[iv + 2] = n[6] = (ivHi >>> 8) & 0xff;
    data[iv + 3] = n[7] = ivHi & 0xff;
    data[iv + 4] = n[8] = ivLo >>> 24;
    data[iv + 5] = n[9] = (ivLo >>> 16) & 0xff;
    data[iv + 6] = n[10] = (ivLo >>> 8) & 0xff;
    data[iv + 7] = n[11] = ivLo & 0xff;
    this.setAad(data, esp, seqHi);
    return n;
  }

  /**
   * `seal`'s batch form: writes the IV, then queues the encryption and ICV in `batch` (a sealing batch)
   * instead of doing them. Returns the job's index, or -1 when the batch is full or a range is outside
   * `data` (nothing written then).
   */
  queueSeal(batch: AeadBatch, data: Uint8Array, esp: number, end: number, seqHi: number, ivHi: number, ivLo: number): number {
    const off = esp + 16;
    const tag = end - ESP_ICV_LEN;
    if (batch.length === batch.capacity || esp < 0 || tag < off || end > data.length) return -1;
    const n = this.writeIv(data, esp, seqHi, ivHi, ivLo);
    return batch.add(this.key, data, off, tag - off, tag, n, this.aad, this.aad.length);
  }

  /**
   * `open`'s batch form: queues the verification and decryption of `data[esp, end)` with `seqHi` in `batch`
   * (an opening batch). Returns the job's index, or -1 when the batch is full or the packet is shorter
   * than header, IV and ICV.
   */
  queueOpen(batch: AeadBatch, data: Uint8Array, esp: number, end: number, seqHi: number): number {
    const off = esp + 16;
    const tag = end - ESP_ICV_LEN;
    if (esp < 0 || tag < off || end > data.length) return -1;
    this.#openNonceAad(data, esp, seqHi);
    return batch.add(this.key, data, off, tag - off, tag, this.#nonce, this.aad, this.aad.length);
  }

  /**
   * Verifies and decrypts the ESP packet `data[esp, end)` in place, with `seqHi` as the high sequence
   * bits. False when the ICV does not verify (or the packet is shorter than header, IV and ICV); the
   * ciphertext then holds no plaintext (`Aead.open`).
   */
  open(data: Uint8Array, esp: number, end: number, seqHi: number): boolean {
    const off = esp + 16;
    const tag = end - ESP_ICV_LEN;
    if (esp < 0 || tag < off || end > data.length) return false;
    this.#openNonceAad(data, esp, seqHi);
    return this.aead.open(data, off, tag - off, tag, this.#nonce, this.aad);
  }

  /** The nonce's last 8 bytes from the packet's IV (RFC 4106 §4; the salt is in place) and the AAD, for opening. */
  #openNonceAad(data: Uint8Array, esp: number, seqHi: number): void {
    const n = this.#nonce;
    const iv = esp + 8;
    n[4] = data[iv]!;
    n[5] = data[iv + 1]!;
    n[6] = data[iv + 2]!;
    n[7] = data[iv + 3]!;
    n[8] = data[iv + 4]!;
    n[9] = data[iv + 5]!;
    n[10] = data[iv + 6]!;
    n[11] = data[iv + 7]!;
    this.setAad(data, esp, seqHi);
  }
}

function checkSpi(spi: number): void {
  // RFC 4303 §2.1: zero is reserved and never sent; 1-255 are reserved by IANA for future use, which
  // nothing here depends on.
  if (!(Number.isInteger(spi) && spi >= 1 && spi <= 0xffff_ffff)) throw new RangeError(`ESP SPI ${spi} is not an integer in 1-4294967295`);
}

function checkLimit(name: string, v: number | undefined): number {
  if (v === undefined) return Infinity;
  if (!(typeof v === 'number' && v > 0)) throw new RangeError(`ESP lifetime ${name} ${String(v)} is not a positive number`);
  return v;
}

function checkSeq(name: string, v: bigint | undefined, esn: boolean): bigint {
  if (v === undefined) return 0n;
  const max = esn ? 0xffff_ffff_ffff_ffffn : 0xffff_ffffn;
  if (typeof v !== 'bigint' || v < 0n || v > max) throw new RangeError(`ESP ${name} ${String(v)} is not a ${esn ? 64 : 32}-bit sequence number`);
  return v;
}

/** What both directions share: SPI, transform, counters and lifetimes. */
export interface EspSaConfig {
  /** Security Parameters Index, 1-4294967295. */
  spi: number;
  keying: EspKeying;
  /** Extended (64-bit) sequence numbers, RFC 4303 §2.2.1. Default false. */
  esn?: boolean;
  lifetime?: EspLifetime;
  /**
   * Soft lifetimes (RFC 4301 §4.4.2.1): once one is reached the SA is `due` for a rekey, before its hard
   * lifetime. Default: the hard lifetimes.
   */
  rekeyAt?: EspLifetime;
  /** Creation time in ns, on the clock `now` comes from (the lifetime in ns counts from here). Default 0. */
  createdAt?: number;
}

abstract class EspSa {
  readonly spi: number;
  readonly esn: boolean;
  readonly crypto: EspCrypto;
  /** Packets protected (outbound) or accepted (inbound). */
  packets = 0;
  /** Payload bytes protected or accepted. */
  bytes = 0;
  /** Drops counted against this SA, indexed by `DropReason`. */
  readonly drops = new Float64Array(DROP_REASON_COUNT);
  readonly createdAt: number;
  private readonly maxPackets: number;
  private readonly maxBytes: number;
  private readonly maxNs: number;
  private readonly softPackets: number;
  private readonly softBytes: number;
  private readonly softNs: number;
  /** ICV failures after which the SA database stops using the SA (inbound; Infinity: none). */
  readonly maxAuthFailures: number;

  constructor(cfg: EspSaConfig) {
    checkSpi(cfg.spi);
    this.spi = cfg.spi;
    this.esn = cfg.esn ?? false;
    this.crypto = new EspCrypto(cfg.keying, this.esn);
    const created = cfg.createdAt ?? 0;
    if (!Number.isFinite(created)) throw new RangeError(`ESP createdAt ${String(created)} is not a time in ns`);
    this.createdAt = created;
    this.maxPackets = checkLimit('packets', cfg.lifetime?.packets);
    this.maxBytes = checkLimit('bytes', cfg.lifetime?.bytes);
    this.maxNs = checkLimit('ns', cfg.lifetime?.ns);
    this.maxAuthFailures = checkLimit('authFailures', cfg.lifetime?.authFailures);
    const soft = cfg.rekeyAt ?? cfg.lifetime;
    this.softPackets = Math.min(this.maxPackets, checkLimit('rekeyAt packets', soft?.packets));
    this.softBytes = Math.min(this.maxBytes, checkLimit('rekeyAt bytes', soft?.bytes));
    this.softNs = Math.min(this.maxNs, checkLimit('rekeyAt ns', soft?.ns));
  }

  get cipher(): AeadAlgorithm {
    return this.crypto.cipher;
  }

  /** A hard lifetime is used up at `now` (ns). */
  expired(now: number): boolean {
    return this.packets >= this.maxPackets || this.bytes >= this.maxBytes || now - this.createdAt >= this.maxNs;
  }

  /** A soft lifetime is reached at `now`: time for a new SA (at most `expired`). */
  due(now: number): boolean {
    return this.packets >= this.softPackets || this.bytes >= this.softBytes || now - this.createdAt >= this.softNs;
  }

  /** What printing shows: SPI, cipher and counters; never the key or the salt. */
  toJSON(): Record<string, unknown> {
    return {
      spi: `0x${this.spi.toString(16)}`,
      cipher: this.cipher,
      esn: this.esn,
      packets: this.packets,
      bytes: this.bytes,
      createdAt: this.createdAt,
      keying: REDACTED_TEXT,
    };
  }

  [inspect.custom](): string {
    return `${this.constructor.name} ${JSON.stringify(this.toJSON())}`;
  }
}

export interface OutboundSaConfig extends EspSaConfig {
  /**
   * The highest sequence number already used on this SA (a persisted high-water mark after a restart):
   * the next packet carries this + 1. Default 0 (the first packet carries 1, RFC 4303 §3.3.3).
   */
  resumeAfter?: bigint;
}

/**
 * The sender's SA. `next()` moves to the next sequence number — never wrapping: the last one an SA sends
 * is 2^32−1 without ESN and 2^64−1 with it (RFC 4303 §3.3.3: a new SA must be in place by then). The IV
 * of each packet is its 64-bit sequence number (`seqHi ‖ seqLo`, `seqHi` 0 without ESN): unique per key,
 * which is all RFC 4106 §3.1 and RFC 7634 §2 ask of it.
 */
export class OutboundSa extends EspSa {
  /** The sequence number of the last packet protected (after `espProtect`: that packet's). */
  seqHi = 0;
  seqLo = 0;
  private done = false;

  /** Throws a RangeError for a configuration that cannot be used (see the fields). */
  constructor(cfg: OutboundSaConfig) {
    super(cfg);
    const s = checkSeq('resumeAfter', cfg.resumeAfter, this.esn);
    this.seqHi = Number(s >> 32n);
    this.seqLo = Number(s & 0xffff_ffffn);
    this.done = this.atLimit();
  }

  private atLimit(): boolean {
    return this.seqLo === 0xffff_ffff && (!this.esn || this.seqHi === 0xffff_ffff);
  }

  /** The sequence numbers are used up: the SA can protect nothing more. */
  get exhausted(): boolean {
    return this.done;
  }

  /** The last sequence number used, as one number (allocates: for control paths and tests). */
  get seq(): bigint {
    return (BigInt(this.seqHi) << 32n) | BigInt(this.seqLo);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), seq: this.seq.toString() };
  }

  /** Advances to the next sequence number; false (and nothing changes) when the SA is exhausted. */
  next(): boolean {
    if (this.done) return false;
    if (this.seqLo === 0xffff_ffff) {
      this.seqLo = 0;
      this.seqHi++;
    } else {
      this.seqLo++;
    }
    this.done = this.atLimit();
    return true;
  }
}

export interface InboundSaConfig extends EspSaConfig {
  /** Anti-replay window in packets: a power of two, 32-4096. Default 64. */
  window?: number;
  /**
   * The highest sequence number already received (a persisted high-water mark after a restart): it and
   * everything below it is treated as received. Default 0 (nothing received yet).
   */
  resumeAfter?: bigint;
}

/**
 * The receiver's SA with its anti-replay window (RFC 4303 §3.4.3, Appendix A). The window holds the
 * `window` sequence numbers up to the highest one authenticated so far (`topHi`, `topLo`), one bit each in
 * a ring indexed by the low bits of the sequence number (the window divides 2^32, so the ring index of a
 * 64-bit number is that of its low half).
 *
 * Receiving is in two steps: `check(seqLo)` before decryption rejects replays and packets older than the
 * window cheaply, and with ESN infers the high 32 bits (Appendix A2), leaving them in `checkedHi`;
 * `accept(seqHi, seqLo)` after the ICV verified moves the window. Only authenticated packets move it.
 * `accept` repeats the check, so a pipeline that checks a whole batch before decrypting it still takes
 * each sequence number once.
 */
export class InboundSa extends EspSa {
  /** Window size in packets. */
  readonly window: number;
  /** The highest sequence number authenticated so far (0 before the first). */
  topHi = 0;
  topLo = 0;
  /** The high 32 bits `check` inferred for the last sequence number it passed (0 without ESN). */
  checkedHi = 0;
  private readonly mask: number;
  private readonly bits: Uint32Array;

  /** Throws a RangeError for a configuration that cannot be used (see the fields). */
  constructor(cfg: InboundSaConfig) {
    super(cfg);
    const w = cfg.window ?? ESP_REPLAY_WINDOW_DEFAULT;
    if (!(Number.isInteger(w) && w >= 32 && w <= ESP_REPLAY_WINDOW_MAX && (w & (w - 1)) === 0)) {
      throw new RangeError(`ESP replay window ${w} is not a power of two in 32-${ESP_REPLAY_WINDOW_MAX}`);
    }
    this.window = w;
    this.mask = w - 1;
    this.bits = new Uint32Array(w >>> 5);
    this.resetWindow(checkSeq('resumeAfter', cfg.resumeAfter, this.esn));
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), window: this.window, top: ((BigInt(this.topHi) << 32n) | BigInt(this.topLo)).toString() };
  }

  /**
   * Sets the window's top to `top` with it and everything below it received (0: nothing received). For a
   * restart from a persisted high-water mark and for tests; a datapath never calls it.
   */
  resetWindow(top = 0n): void {
    const t = checkSeq('window top', top, this.esn);
    this.topHi = Number(t >> 32n);
    this.topLo = Number(t & 0xffff_ffffn);
    this.bits.fill(t === 0n ? 0 : 0xffff_ffff);
  }

  /**
   * The pre-decryption check of a packet whose 32 low sequence bits are `seqLo`: 0 when it may be new
   * (with `checkedHi` set to the inferred high bits), else `EspReplay` or `EspOutsideWindow`. Sequence
   * number 0 is never sent (the first is 1) and is outside the window.
   *
   * With ESN the high bits come from where `seqLo` falls relative to the window (RFC 4303 Appendix A2): a
   * value below the window's bottom within the same 2^32 block is taken as having wrapped into the next
   * block; when the window straddles a block boundary, a value above its bottom is in the previous block.
   */
  check(seqLo: number): number {
    let hi = 0;
    if (this.esn) {
      const w = this.window;
      const tl = this.topLo;
      const th = this.topHi;
      if (tl >= w - 1) {
        // Case A: the window lies within one block.
        if (seqLo >= tl - w + 1) hi = th;
        else if (th === 0xffff_ffff)
          return DropReason.EspOutsideWindow; // past 2^64: nothing can be there
        else hi = th + 1;
      } else if (seqLo >= tl - w + 1 + TWO32) {
        // Case B: the window straddles a block boundary and seqLo is in its lower part.
        if (th === 0) return DropReason.EspOutsideWindow; // before sequence number 0
        hi = th - 1;
      } else {
        hi = th;
      }
    }
    this.checkedHi = hi;
    return this.test(hi, seqLo);
  }

  private test(hi: number, lo: number): number {
    if (hi === 0 && lo === 0) return DropReason.EspOutsideWindow;
    const th = this.topHi;
    const tl = this.topLo;
    if (hi > th || (hi === th && lo > tl)) return 0;
    // Below or at the top: exact in a double, as the high halves differ by at most one here.
    if ((th - hi) * TWO32 + (tl - lo) >= this.window) return DropReason.EspOutsideWindow;
    const i = lo & this.mask;
    return ((this.bits[i >>> 5]! >>> (i & 31)) & 1) !== 0 ? DropReason.EspReplay : 0;
  }

  /**
   * Marks the authenticated sequence number `seqHi ‖ seqLo` received, moving the window when it is the new
   * top. Returns 0, or `EspReplay` / `EspOutsideWindow` when it may not be taken (already taken since it
   * was checked, or the window moved past it) — the caller then drops the packet.
   */
  accept(seqHi: number, seqLo: number): number {
    const r = this.test(seqHi, seqLo);
    if (r !== 0) return r;
    const th = this.topHi;
    const tl = this.topLo;
    const bits = this.bits;
    const mask = this.mask;
    if (seqHi > th || (seqHi === th && seqLo > tl)) {
      const d = (seqHi - th) * TWO32 + (seqLo - tl);
      if (d >= this.window) {
        bits.fill(0);
      } else {
        // Clear the bits of the numbers the window slides over (they are new, not received).
        for (let k = 1; k <= d; k++) {
          const i = (tl + k) & mask;
          bits[i >>> 5] = bits[i >>> 5]! & ~(1 << (i & 31));
        }
      }
      this.topHi = seqHi;
      this.topLo = seqLo;
    }
    const i = seqLo & mask;
    bits[i >>> 5] = bits[i >>> 5]! | (1 << (i & 31));
    return 0;
  }
}
