/**
 * The epoch announcement ("hello"): how two SA databases with derived keys tell each other their
 * incarnations and epochs (esp/sadb.ts has the protocol; esp/keys.ts why keys depend on them).
 *
 * A hello travels in a UDP datagram to the tunnel's own port (the one socket every tunnel has, so a live
 * node sends and receives it with what it already opened), from the sender's underlay address to the
 * receiver's. It is authenticated, not encrypted: an incarnation is not a secret, and the keys that
 * depend on it also depend on the cluster secret. Its first byte can never start a VXLAN header (the I
 * flag, 0x08, is clear) nor a Geneve one (version 1), so a tunnel without ESP drops it as malformed.
 *
 * ```text
 *  0  'S' 'E' 'N' version (1)
 *  4  flags: 0x01 answer me, 0x02 rekey please, 0x04 taken; then 3 bytes zero
 *  8  the sender's incarnation (16 bytes)
 * 24  echo: the receiver's incarnation as the sender last saw it (16 zero bytes: none yet)
 * 40  u64be: the epoch the sender sends in (or will, once it takes `echo`) towards the receiver
 * 48  tag: the first 16 bytes of HMAC-SHA256(hello key of sender → receiver, bytes 0–47)
 * 64  (end)
 * ```
 * The hello key (keys.ts `deriveHelloKey`) is one per direction and tunnel: a hello reflected back to its
 * sender, or replayed onto another tunnel, does not verify.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { ESP_INCARNATION_LEN } from './keys.js';

export const HELLO_LEN = 64;
export const HELLO_VERSION = 1;
/** The receiver should answer with a hello of its own. */
export const HELLO_ANSWER = 0x01;
/** The receiver's inbound SA from the sender reached a limit: the sender should move to a new epoch. */
export const HELLO_REKEY = 0x02;
/**
 * The sender has taken the incarnation it echoes: it holds the inbound SAs for it, so the receiver may
 * send under them. Without it the receiver waits (esp/sadb.ts: an SA is used outbound only once the
 * peer has shown it knows it).
 */
export const HELLO_TAKEN = 0x04;
const HELLO_FLAGS = HELLO_ANSWER | HELLO_REKEY | HELLO_TAKEN;

const MAGIC0 = 0x53; // 'S'
const MAGIC1 = 0x45; // 'E'
const MAGIC2 = 0x4e; // 'N'
const TAG_AT = 48;
const TAG_LEN = 16;

/** What a hello says. */
export interface Hello {
  flags: number;
  incarnation: Uint8Array;
  /** All zero: the sender has seen no incarnation of the receiver yet. */
  echo: Uint8Array;
  epoch: number;
}

/** The all-zero echo of a sender that knows nothing of its receiver yet. */
export const NO_INCARNATION = new Uint8Array(ESP_INCARNATION_LEN);

/** True when `b[off, end)` is shaped as a hello (magic, version, length): worth verifying. */
export function looksLikeHello(b: Uint8Array, off: number, end: number): boolean {
  return end - off === HELLO_LEN && b[off] === MAGIC0 && b[off + 1] === MAGIC1 && b[off + 2] === MAGIC2 && b[off + 3] === HELLO_VERSION;
}

function mac(key: Uint8Array, b: Uint8Array, off: number): Buffer {
  return createHmac('sha256', key)
    .update(b.subarray(off, off + TAG_AT))
    .digest();
}

/** The hello's 64 bytes, tagged with `key` (the hello key of its sender → receiver). */
export function encodeHello(h: Hello, key: Uint8Array): Uint8Array {
  if (h.incarnation.length !== ESP_INCARNATION_LEN || h.echo.length !== ESP_INCARNATION_LEN) throw new RangeError('esp hello: incarnations are 16 bytes');
  if (!Number.isSafeInteger(h.epoch) || h.epoch < 0) throw new RangeError(`esp hello: epoch ${h.epoch} is not a non-negative integer`);
  const b = new Uint8Array(HELLO_LEN);
  b[0] = MAGIC0;
  b[1] = MAGIC1;
  b[2] = MAGIC2;
  b[3] = HELLO_VERSION;
  b[4] = h.flags & HELLO_FLAGS;
  b.set(h.incarnation, 8);
  b.set(h.echo, 24);
  new DataView(b.buffer).setBigUint64(40, BigInt(h.epoch));
  b.set(mac(key, b, 0).subarray(0, TAG_LEN), TAG_AT);
  return b;
}

/**
 * The hello at `b[off, off+64)` if its tag verifies under `key` (constant-time comparison) and its
 * fields are well formed; else null. Never throws on any bytes.
 */
export function decodeHello(b: Uint8Array, off: number, end: number, key: Uint8Array): Hello | null {
  if (!looksLikeHello(b, off, end)) return null;
  const want = mac(key, b, off).subarray(0, TAG_LEN);
  if (!timingSafeEqual(want, b.subarray(off + TAG_AT, off + TAG_AT + TAG_LEN))) return null;
  if ((b[off + 4]! & ~HELLO_FLAGS) !== 0 || b[off + 5] !== 0 || b[off + 6] !== 0 || b[off + 7] !== 0) return null;
  const epoch = new DataView(b.buffer, b.byteOffset + off + 40, 8).getBigUint64(0);
  if (epoch > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return {
    flags: b[off + 4]!,
    incarnation: b.slice(off + 8, off + 24),
    echo: b.slice(off + 24, off + 40),
    epoch: Number(epoch),
  };
}

/** Byte equality of two incarnations. */
export function sameIncarnation(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An incarnation as hex (for sets and messages). */
export function incarnationHex(a: Uint8Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}
