/**
 * The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the pseudo-header sums that
 * UDP, TCP and ICMPv6 cover (RFC 768, RFC 9293, RFC 8200 §8.1).
 *
 * Sums are carried unfolded as plain numbers: 16-bit words added into a double stay exact far beyond any
 * frame size, and one fold at the end is cheaper than a carry per word.
 */

/** True on little-endian hosts, where `onesSum` reads aligned 32-bit words (see `wordSum`). */
const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
/** Below this length the byte loop is as fast as setting up the word loop. */
const WORD_MIN = 48;
/** The 32-bit view of the last buffer summed by words: pooled packets share one slab, so it rarely changes. */
let wordBuf: ArrayBufferLike | null = null;
let words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/**
 * Adds the 16-bit big-endian words of `b[off, off+len)` to `sum`; an odd last byte is padded with zero.
 * The result is the exact sum, or (for long ranges on little-endian hosts) a sum equal to it modulo
 * 0xffff and zero only when it is zero — the same after `fold`, which is all a checksum needs.
 */
export function onesSum(b: Uint8Array, off: number, len: number, sum = 0): number {
  if (len >= WORD_MIN && LITTLE_ENDIAN && ((b.byteOffset + off) & 1) === 0) return wordSum(b, off, len, sum);
  return byteSum(b, off, len, sum);
}

/**
 * RFC 1071 §2(B), byte-order independence: summed as little-endian words, the data gives the byte-swapped
 * ones' complement sum of the big-endian words. And a 32-bit word w0 + 2^16·w1 is w0 + w1 modulo 0xffff
 * (2^16 ≡ 1), so aligned 32-bit words can be added as they are: a quarter of the loads of the byte loop.
 */
function wordSum(b: Uint8Array, off: number, len: number, sum: number): number {
  let i = off;
  const end = off + len;
  // Up to 4-byte alignment in big-endian words (the start is even, so at most one).
  if (((b.byteOffset + i) & 3) !== 0) {
    sum += (b[i]! << 8) | b[i + 1]!;
    i += 2;
  }
  const buf = b.buffer;
  if (buf !== wordBuf) {
    wordBuf = buf;
    words = new Uint32Array(buf, 0, buf.byteLength >>> 2);
  }
  const w = words;
  const k0 = (b.byteOffset + i) >>> 2;
  const kEnd = k0 + ((end - i) >>> 2);
  let k = k0;
  let le = 0;
  for (; k + 1 < kEnd; k += 2) le += w[k]! + w[k + 1]!;
  if (k < kEnd) le += w[k]!;
  i += (kEnd - k0) << 2;
  if (le !== 0) {
    // Folded to 16 bits (never 0 for a non-zero sum: the end-around carry keeps 0xffff), then swapped.
    while (le > 0xffff) le = (le & 0xffff) + Math.floor(le / 0x10000);
    sum += ((le & 0xff) << 8) | (le >>> 8);
  }
  return byteSum(b, i, end - i, sum);
}

function byteSum(b: Uint8Array, off: number, len: number, sum: number): number {
  const end = off + len;
  let i = off;
  // Two words per step; the sum cannot overflow 2^53 for any buffer that fits in memory.
  for (; i + 3 < end; i += 4) sum += ((b[i]! << 8) | b[i + 1]!) + ((b[i + 2]! << 8) | b[i + 3]!);
  if (i + 1 < end) {
    sum += (b[i]! << 8) | b[i + 1]!;
    i += 2;
  }
  if (i < end) sum += b[i]! << 8;
  return sum;
}

/** Folds carries back into 16 bits (end-around carry). */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The checksum field value: one's complement of the folded sum. */
export function finish(sum: number): number {
  return ~fold(sum) & 0xffff;
}

/** Checksum of a byte range (with a field inside it zeroed or not, as the caller arranged). */
export function checksum(b: Uint8Array, off: number, len: number, initial = 0): number {
  return finish(onesSum(b, off, len, initial));
}

/**
 * RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changes from `oldWord` to
 * `newWord`: HC' = ~(~HC + ~m + m').
 */
export function updateChecksum16(oldChecksum: number, oldWord: number, newWord: number): number {
  return ~fold((~oldChecksum & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff;
}

/** As `updateChecksum16` for a 32-bit field (e.g. an IPv4 address or a TCP sequence number). */
export function updateChecksum32(oldChecksum: number, oldValue: number, newValue: number): number {
  const c = updateChecksum16(oldChecksum, oldValue >>> 16, newValue >>> 16);
  return updateChecksum16(c, oldValue & 0xffff, newValue & 0xffff);
}

/** Unfolded sum of the IPv4 pseudo-header: source, destination, protocol, upper-layer length. */
export function pseudoSumV4(src: number, dst: number, proto: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + length;
}

/** As `pseudoSumV4` with the addresses read from bytes (`srcOff`, `dstOff` in `b`). */
export function pseudoSumV4At(b: Uint8Array, srcOff: number, dstOff: number, proto: number, length: number): number {
  return onesSum(b, srcOff, 4, onesSum(b, dstOff, 4, proto + length));
}

/** Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1); the length is 32-bit there. */
export function pseudoSumV6At(b: Uint8Array, srcOff: number, dstOff: number, nextHeader: number, length: number): number {
  return onesSum(b, srcOff, 16, onesSum(b, dstOff, 16, nextHeader + (length >>> 16) + (length & 0xffff)));
}

/**
 * Whether the IPv4 header of `hl` bytes at `off` of `v` has a valid checksum. The common 20-byte header is
 * summed as five 32-bit loads (the check every received tunnel packet pays).
 */
export function ipv4HeaderValid(v: DataView, off: number, hl: number): boolean {
  if (hl !== 20) {
    // A header with options: 16-bit words, still without building a byte view.
    let t = 0;
    for (let k = 0; k < hl; k += 2) t += v.getUint16(off + k);
    return fold(t) === 0xffff;
  }
  const a = v.getUint32(off);
  const b = v.getUint32(off + 4);
  const c = v.getUint32(off + 8);
  const d = v.getUint32(off + 12);
  const e = v.getUint32(off + 16);
  let s = (a >>> 16) + (a & 0xffff) + (b >>> 16) + (b & 0xffff) + (c >>> 16) + (c & 0xffff) + (d >>> 16) + (d & 0xffff) + (e >>> 16) + (e & 0xffff);
  s = (s & 0xffff) + (s >>> 16);
  s = (s & 0xffff) + (s >>> 16);
  return s === 0xffff;
}
