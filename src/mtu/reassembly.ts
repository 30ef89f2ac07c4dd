/**
 * Reassembly of outer IPv4 and IPv6 fragments at a tunnel endpoint, before decapsulation (RFC 791 §3.2,
 * RFC 8200 §4.5), with the defences the last thirty years taught: overlapping fragments discard the whole
 * datagram (RFC 5722; done for IPv4 too, as Linux does since 2018), tiny first fragments are refused
 * (RFC 1858, RFC 7112), and memory is capped in total and per source, oldest incomplete datagram evicted
 * first (Linux's ipfrag_high_thresh, 4 MiB, is the default).
 *
 * Ownership of the fragment `p` passed to `add`:
 * - `HELD`: the reassembler keeps `p` until the datagram completes, times out or is evicted; it then
 *   releases `p` to its pool itself.
 * - `DONE`: `p` completed a datagram and has been released with the others; `take()` returns one buffer
 *   from the big-buffer pool holding the first fragment's link header and the reassembled IP packet.
 * - `PASS`: `p` is not a fragment; nothing happened and the caller carries on with it.
 * - a positive DropReason: the caller still owns `p` and drops it, counting that reason itself.
 * `drops` counts only the fragments the reassembler releases itself (held fragments discarded with a
 * datagram by an overlap, a timeout, an eviction, …), so that each fragment is counted once.
 *
 * State lives in typed arrays sized at construction: a hash of datagram keys (IPv4: source, destination,
 * protocol, identification; IPv6: source, destination, identification) to slots; per datagram a list of
 * held fragments sorted by offset, threaded through a fragment table; a per-source byte table; and a list
 * of datagrams by age, oldest first, for timeouts and eviction. Nothing is allocated per fragment held;
 * assembling a datagram copies each fragment into the big buffer, which costs one short-lived view per
 * fragment when (as usual) the big-buffer pool is not the fragments' pool (see common.ts).
 */
import { hashIpv6 } from '../packet/addrtable.js';
import { PacketPool, type PacketBuf } from '../packet/buf.js';
import { checksum, ipv4HeaderValid } from '../wire/checksum.js';
import { DropReason, DROP_REASON_COUNT } from '../wire/drop.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { ipv6ExtLen, Ipv6Walk, walkIpv6, IPV6_FRAG_HEADER_LEN, IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { copyBytes } from './common.js';
import { IP_MAX_LEN } from './fragment.js';

/** `add`: the fragment is held. */
export const HELD = 0;
/** `add`: the datagram is complete; `take()` it. */
export const DONE = -1;
/** `add`: not a fragment; the caller keeps `p` and processes it as it is. */
export const PASS = -2;

export interface ReassemblerOptions {
  /** Where reassembled datagrams go: buffers large enough for a link header and 65,535 bytes of IP. */
  pool: PacketPool;
  /** A datagram not complete this long after its first fragment arrived is discarded. Default 30 s (RFC 8200 §4.5: 60 s at most). */
  timeoutNs?: number;
  /** Bytes of held fragments, each counted by the size of its whole buffer. Default 4 MiB. */
  memoryCap?: number;
  /** Bytes one source address may hold. Default memoryCap / 4. */
  perSourceCap?: number;
  /** Incomplete datagrams held at once. Default 1024. */
  maxDatagrams?: number;
  /** Fragments held at once (the table's size). Default memoryCap / 512, the smallest pool buffer. */
  maxFragments?: number;
}

export const REASSEMBLY_DEFAULT_TIMEOUT_NS = 30e9;
export const REASSEMBLY_DEFAULT_MEMORY_CAP = 4 << 20;
export const REASSEMBLY_DEFAULT_MAX_DATAGRAMS = 1024;
/** The smallest buffer a PacketPool makes (headroom + tailroom, 64-byte aligned): no fragment costs less. */
const MIN_ACCOUNTED = 512;

const FLAG_MF = 0x2000;
const FLAGS_KEPT = 0xc000;
const NONE = -1;
/** Per datagram: 16 bytes of source then 16 of destination (IPv4 uses the first 4 of each). */
const ADDR_STRIDE = 32;

function option(name: string, v: number | undefined, def: number, min: number, max: number, integer: boolean): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new RangeError(`Reassembler: ${name} ${String(v)} is not ${integer ? 'an integer' : 'a number'} in [${min}, ${max}]`);
  }
  return v;
}

/**
 * RFC 1858 and RFC 7112: the bytes of the upper-layer header a first fragment must hold, so that a filter
 * looking at the first fragment sees ports and flags (0 for protocols without a fixed header here).
 */
function upperHeaderMin(proto: number): number {
  if (proto === IPPROTO_TCP) return 20;
  if (proto === IPPROTO_UDP || proto === IPPROTO_ICMP || proto === IPPROTO_ICMPV6) return 8;
  return 0;
}

function pow2AtLeast(n: number): number {
  let m = 16;
  while (m < n) m *= 2;
  return m;
}

function sameBytes(a: Uint8Array, ao: number, b: Uint8Array, bo: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[ao + i] !== b[bo + i]) return false;
  return true;
}

export class Reassembler {
  readonly timeoutNs: number;
  readonly memoryCap: number;
  readonly perSourceCap: number;
  readonly maxDatagrams: number;
  readonly maxFragments: number;
  /** Fragments discarded by the reassembler itself, per DropReason. */
  readonly drops = new Float64Array(DROP_REASON_COUNT);
  /** Datagrams completed. */
  reassembled = 0;
  /** Fragments offered to `add` (anything but `PASS`). */
  fragmentsIn = 0;
  /** Fragments held now, and the bytes they are accounted for (their buffers' sizes). */
  heldFragments = 0;
  heldBytes = 0;
  /** Incomplete datagrams held now. */
  datagrams = 0;
  /**
   * Fragments the datagram completed by the last `DONE` was made of, the completing one included. Not
   * `heldFragments` before minus after: the same `add` may also time out or evict other datagrams, whose
   * fragments are counted in `drops` (a caller taking the difference would count them twice).
   */
  lastFragments = 0;

  private readonly pool: PacketPool;
  private result: PacketBuf | null = null;
  private readonly walk = new Ipv6Walk();

  // Datagram slots.
  private readonly dFamily: Uint8Array;
  private readonly dProto: Uint8Array;
  private readonly dIdent: Uint32Array;
  private readonly dAddr: Uint8Array;
  private readonly dHash: Int32Array;
  /** Hash chain; doubles as the free list. */
  private readonly dChain: Int32Array;
  private readonly dOlder: Int32Array;
  private readonly dNewer: Int32Array;
  private readonly dCreated: Float64Array;
  private readonly dFirst: Int32Array;
  private readonly dTail: Int32Array;
  private readonly dBytes: Float64Array;
  /** Data bytes held: with no overlaps allowed, complete when it equals the end. */
  private readonly dData: Int32Array;
  /** Where the datagram ends (from a fragment without MF), or -1. */
  private readonly dEnd: Int32Array;
  /** Largest end of any held fragment, and of any held fragment with MF set (-1 none). */
  private readonly dMaxEnd: Int32Array;
  private readonly dMaxMoreEnd: Int32Array;
  private readonly dSource: Int32Array;
  private readonly dHeads: Int32Array;
  private dFree = NONE;
  private oldest = NONE;
  private newest = NONE;

  // Fragment slots (a datagram's list is threaded through fNext, sorted by offset; free slots too).
  private readonly fBuf: (PacketBuf | null)[];
  private readonly fStart: Int32Array;
  private readonly fEnd: Int32Array;
  /** Where the fragment's data starts in its buffer's `data`. */
  private readonly fData: Int32Array;
  /** Where the fragment's IP header starts in its buffer's `data`. */
  private readonly fL3: Int32Array;
  private readonly fNext: Int32Array;
  private fFree = NONE;

  // Sources: one slot per source address with held bytes (at most one per datagram).
  private readonly sFamily: Uint8Array;
  private readonly sAddr: Uint8Array;
  private readonly sHash: Int32Array;
  private readonly sChain: Int32Array;
  private readonly sBytes: Float64Array;
  private readonly sRefs: Int32Array;
  private readonly sHeads: Int32Array;
  private sFree = NONE;

  // The fragment `add` is looking at (fields, not an object, so that nothing is allocated).
  private cFamily = 0;
  private cProto = 0;
  private cIdent = 0;
  private cSrc = 0;
  private cDst = 0;
  private cHash = 0;
  private cSrcHash = 0;
  private cStart = 0;
  private cEnd = 0;
  private cMore = false;
  private cData = 0;
  private cL3 = 0;

  constructor(opts: ReassemblerOptions) {
    if (!(opts.pool instanceof PacketPool)) throw new RangeError('Reassembler: pool must be a PacketPool');
    this.pool = opts.pool;
    this.timeoutNs = option('timeoutNs', opts.timeoutNs, REASSEMBLY_DEFAULT_TIMEOUT_NS, 1, 3600e9, false);
    this.memoryCap = option('memoryCap', opts.memoryCap, REASSEMBLY_DEFAULT_MEMORY_CAP, 1, 2 ** 40, true);
    this.perSourceCap = option('perSourceCap', opts.perSourceCap, Math.floor(this.memoryCap / 4), 1, this.memoryCap, true);
    this.maxDatagrams = option('maxDatagrams', opts.maxDatagrams, REASSEMBLY_DEFAULT_MAX_DATAGRAMS, 1, 1 << 20, true);
    this.maxFragments = option('maxFragments', opts.maxFragments, Math.max(1, Math.ceil(this.memoryCap / MIN_ACCOUNTED)), 1, 1 << 22, true);
    const D = this.maxDatagrams;
    const F = this.maxFragments;
    this.dFamily = new Uint8Array(D);
    this.dProto = new Uint8Array(D);
    this.dIdent = new Uint32Array(D);
    this.dAddr = new Uint8Array(D * ADDR_STRIDE);
    this.dHash = new Int32Array(D);
    this.dChain = new Int32Array(D);
    this.dOlder = new Int32Array(D);
    this.dNewer = new Int32Array(D);
    this.dCreated = new Float64Array(D);
    this.dFirst = new Int32Array(D);
    this.dTail = new Int32Array(D);
    this.dBytes = new Float64Array(D);
    this.dData = new Int32Array(D);
    this.dEnd = new Int32Array(D);
    this.dMaxEnd = new Int32Array(D);
    this.dMaxMoreEnd = new Int32Array(D);
    this.dSource = new Int32Array(D);
    this.dHeads = new Int32Array(pow2AtLeast(2 * D)).fill(NONE);
    for (let i = D - 1; i >= 0; i--) {
      this.dChain[i] = this.dFree;
      this.dFree = i;
    }
    this.fBuf = new Array<PacketBuf | null>(F).fill(null);
    this.fStart = new Int32Array(F);
    this.fEnd = new Int32Array(F);
    this.fData = new Int32Array(F);
    this.fL3 = new Int32Array(F);
    this.fNext = new Int32Array(F);
    for (let i = F - 1; i >= 0; i--) {
      this.fNext[i] = this.fFree;
      this.fFree = i;
    }
    this.sFamily = new Uint8Array(D);
    this.sAddr = new Uint8Array(D * 16);
    this.sHash = new Int32Array(D);
    this.sChain = new Int32Array(D);
    this.sBytes = new Float64Array(D);
    this.sRefs = new Int32Array(D);
    this.sHeads = new Int32Array(pow2AtLeast(2 * D)).fill(NONE);
    for (let i = D - 1; i >= 0; i--) {
      this.sChain[i] = this.sFree;
      this.sFree = i;
    }
  }

  /**
   * Offers the frame in `p` (link header in `[p.start, l3)`, IP packet at `l3`) at time `now` (ns; must not
   * decrease between calls). Returns `HELD`, `DONE`, `PASS` or a DropReason — see the module comment for
   * who owns `p` after each. Never throws for any packet content.
   */
  add(p: PacketBuf, l3: number, now: number): number {
    if (this.result !== null) throw new Error('Reassembler.add: take() the previous reassembled datagram first');
    const old = this.oldest;
    if (old !== NONE && now - this.dCreated[old]! >= this.timeoutNs) this.expire(now);
    const avail = p.end - l3;
    const r = l3 >= p.start && avail >= 1 && p.data[l3]! >>> 4 === 6 ? this.parseV6(p, l3, avail) : this.parseV4(p, l3, avail);
    if (r === PASS) return PASS;
    this.fragmentsIn++;
    return r === HELD ? this.place(p, now) : r;
  }

  /** The datagram completed by the last `add` that returned `DONE` (the caller owns it), or null. */
  take(): PacketBuf | null {
    const q = this.result;
    this.result = null;
    return q;
  }

  /**
   * Discards every datagram whose first fragment arrived `timeoutNs` or more before `now` (counted as
   * `FragTimeout`). Returns the number of fragments released.
   */
  expire(now: number): number {
    let n = 0;
    for (let d = this.oldest; d !== NONE && now - this.dCreated[d]! >= this.timeoutNs; d = this.oldest) n += this.discard(d, DropReason.FragTimeout);
    return n;
  }

  /** Releases everything held (and an untaken datagram) without counting drops: for shutdown. */
  clear(): void {
    while (this.oldest !== NONE) this.releaseAll(this.oldest);
    if (this.result !== null) {
      this.result.release();
      this.result = null;
    }
  }

  // ---- parsing: fills the c* fields; HELD means "a fragment, carry on" --------------------------------

  private parseV4(p: PacketBuf, l3: number, avail: number): number {
    const b = p.data;
    const dv = p.view;
    if (l3 < p.start || avail < IPV4_HEADER_LEN) return DropReason.Ipv4Truncated;
    const vihl = b[l3]!;
    if (vihl >>> 4 !== 4) return DropReason.Ipv4BadVersion;
    const hl = (vihl & 0x0f) << 2;
    if (hl < IPV4_HEADER_LEN || hl > avail) return DropReason.Ipv4BadHeaderLen;
    const tl = dv.getUint16(l3 + 2);
    if (tl < hl || tl > avail) return DropReason.Ipv4BadTotalLen;
    if (!ipv4HeaderValid(dv, l3, hl)) return DropReason.Ipv4BadChecksum;
    const ff = dv.getUint16(l3 + 6);
    if ((ff & 0x3fff) === 0) return PASS;
    const start = (ff & 0x1fff) << 3;
    const more = (ff & FLAG_MF) !== 0;
    const n = tl - hl;
    const proto = b[l3 + 9]!;
    // RFC 1858 §4: offset 1 with TCP can only serve to overwrite the flags of the first fragment.
    if (start === 8 && proto === IPPROTO_TCP) return DropReason.FragTinyFirst;
    if (n === 0 || (more && (n & 7) !== 0) || hl + start + n > IP_MAX_LEN) return DropReason.FragBadLength;
    if (start === 0 && n < upperHeaderMin(proto)) return DropReason.FragTinyFirst;
    const src = dv.getUint32(l3 + 12);
    const dst = dv.getUint32(l3 + 16);
    const ident = dv.getUint16(l3 + 4);
    this.cFamily = 4;
    this.cProto = proto;
    this.cIdent = ident;
    this.cSrc = l3 + 12;
    this.cDst = l3 + 16;
    let h = Math.imul(src ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 15) ^ dst, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 13) ^ ((proto << 16) | ident), 0x85ebca6b);
    this.cHash = (h ^ (h >>> 16)) | 0;
    const s = Math.imul(src ^ 0x27d4eb2f, 0x85ebca6b);
    this.cSrcHash = (s ^ (s >>> 15)) | 0;
    this.cStart = start;
    this.cEnd = start + n;
    this.cMore = more;
    this.cData = l3 + hl;
    this.cL3 = l3;
    return HELD;
  }

  private parseV6(p: PacketBuf, l3: number, avail: number): number {
    const b = p.data;
    const dv = p.view;
    if (avail < IPV6_HEADER_LEN) return DropReason.Ipv6Truncated;
    const payloadLen = dv.getUint16(l3 + 4);
    if (IPV6_HEADER_LEN + payloadLen > avail) return DropReason.Ipv6BadPayloadLen;
    const ipEnd = l3 + IPV6_HEADER_LEN + payloadLen;
    const w = this.walk;
    const r = walkIpv6(b, l3, ipEnd, w);
    // RFC 7112: headers after the Fragment header cut off by the end of a first fragment.
    if (r !== null) return r === DropReason.Ipv6ExtTruncated && w.fragOff >= 0 ? DropReason.FragTinyFirst : r;
    const fh = w.fragOff;
    if (fh < 0) return PASS;
    const start = dv.getUint16(fh + 2) & 0xfff8;
    const more = (b[fh + 3]! & 1) !== 0;
    const ident = dv.getUint32(fh + 4);
    const dataOff = fh + IPV6_FRAG_HEADER_LEN;
    const n = ipEnd - dataOff;
    this.cFamily = 6;
    this.cProto = 0;
    this.cIdent = ident;
    this.cSrc = l3 + 8;
    this.cDst = l3 + 24;
    this.cStart = start;
    this.cEnd = start + n;
    this.cMore = more;
    this.cData = dataOff;
    this.cL3 = l3;
    // RFC 6946: an atomic fragment (offset 0, M clear) is a whole packet; it never joins a queue.
    if (start === 0 && !more) return this.assemble(NONE, p);
    // §4.5: the reassembled payload (extension headers in front of the Fragment header + data) ≤ 65,535.
    if (n === 0 || (more && (n & 7) !== 0) || fh - l3 - IPV6_HEADER_LEN + start + n > IP_MAX_LEN) return DropReason.FragBadLength;
    if (start === 0 && w.upperOff + upperHeaderMin(w.upperProto) > ipEnd) return DropReason.FragTinyFirst;
    const hs = hashIpv6(b, l3 + 8);
    let h = Math.imul(hs ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 15) ^ hashIpv6(b, l3 + 24), 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 13) ^ ident, 0x85ebca6b);
    this.cHash = (h ^ (h >>> 16)) | 0;
    this.cSrcHash = hs | 0;
    return HELD;
  }

  // ---- the datagram table ------------------------------------------------------------------------------

  private find(b: Uint8Array): number {
    const h = this.cHash;
    const fam = this.cFamily;
    const alen = fam === 4 ? 4 : 16;
    for (let d = this.dHeads[h & (this.dHeads.length - 1)]!; d !== NONE; d = this.dChain[d]!) {
      if (this.dHash[d] !== h || this.dFamily[d] !== fam || this.dIdent[d] !== this.cIdent || this.dProto[d] !== this.cProto) continue;
      const a = d * ADDR_STRIDE;
      if (sameBytes(this.dAddr, a, b, this.cSrc, alen) && sameBytes(this.dAddr, a + 16, b, this.cDst, alen)) return d;
    }
    return NONE;
  }

  private findSource(b: Uint8Array): number {
    const h = this.cSrcHash;
    const fam = this.cFamily;
    for (let s = this.sHeads[h & (this.sHeads.length - 1)]!; s !== NONE; s = this.sChain[s]!) {
      if (this.sHash[s] === h && this.sFamily[s] === fam && sameBytes(this.sAddr, s * 16, b, this.cSrc, fam === 4 ? 4 : 16)) return s;
    }
    return NONE;
  }

  /** Checks the fragment in the c* fields against its datagram, then holds it or completes the datagram. */
  private place(p: PacketBuf, now: number): number {
    const b = p.data;
    const start = this.cStart;
    const end = this.cEnd;
    const more = this.cMore;
    let d = this.find(b);
    let prev = NONE;
    let next = NONE;
    if (d !== NONE) {
      const known = this.dEnd[d]!;
      // Fragments that disagree on where the datagram ends cannot be put together.
      if (more ? known >= 0 && end >= known : (known >= 0 && known !== end) || end < this.dMaxEnd[d]! || end <= this.dMaxMoreEnd[d]!) {
        return this.reject(d, DropReason.FragInconsistent);
      }
      const tail = this.dTail[d]!;
      if (tail !== NONE && start >= this.fEnd[tail]!)
        prev = tail; // in order: the common case
      else {
        next = this.dFirst[d]!;
        while (next !== NONE && this.fStart[next]! < start) {
          prev = next;
          next = this.fNext[next]!;
        }
        if (next !== NONE && this.fStart[next] === start && this.fEnd[next] === end) return DropReason.FragDuplicate;
        if ((prev !== NONE && this.fEnd[prev]! > start) || (next !== NONE && this.fStart[next]! < end)) return this.reject(d, DropReason.FragOverlap);
      }
      const last = more ? known : end;
      if (last >= 0 && this.dData[d]! + (end - start) === last) return this.assemble(d, p);
    }
    const size = b.length;
    let s = d !== NONE ? this.dSource[d]! : this.findSource(b);
    if ((s !== NONE ? this.sBytes[s]! : 0) + size > this.perSourceCap) return DropReason.FragPerSourceCap;
    // Make room: oldest incomplete datagrams first, never the one this fragment belongs to unless it alone is too big.
    while (this.heldBytes + size > this.memoryCap || this.fFree === NONE || (d === NONE && this.dFree === NONE)) {
      const victim = d !== NONE && this.oldest === d ? this.dNewer[d]! : this.oldest;
      if (victim === NONE) return d === NONE ? DropReason.FragMemoryCap : this.reject(d, DropReason.FragMemoryCap);
      this.discard(victim, DropReason.FragMemoryCap);
    }
    if (d === NONE) {
      if (s === NONE || this.sRefs[s] === 0) s = this.findSource(b); // an eviction may have freed it
      d = this.newDatagram(b, now, s);
    }
    this.hold(d, p, prev, next, size);
    return HELD;
  }

  private newDatagram(b: Uint8Array, now: number, source: number): number {
    const d = this.dFree;
    this.dFree = this.dChain[d]!;
    const fam = this.cFamily;
    this.dFamily[d] = fam;
    this.dProto[d] = this.cProto;
    this.dIdent[d] = this.cIdent;
    this.dHash[d] = this.cHash;
    const alen = fam === 4 ? 4 : 16;
    const a = d * ADDR_STRIDE;
    for (let i = 0; i < alen; i++) {
      this.dAddr[a + i] = b[this.cSrc + i]!;
      this.dAddr[a + 16 + i] = b[this.cDst + i]!;
    }
    const hb = this.cHash & (this.dHeads.length - 1);
    this.dChain[d] = this.dHeads[hb]!;
    this.dHeads[hb] = d;
    this.dOlder[d] = this.newest;
    this.dNewer[d] = NONE;
    if (this.newest !== NONE) this.dNewer[this.newest] = d;
    else this.oldest = d;
    this.newest = d;
    this.dCreated[d] = now;
    this.dFirst[d] = this.dTail[d] = NONE;
    this.dBytes[d] = 0;
    this.dData[d] = 0;
    this.dEnd[d] = -1;
    this.dMaxEnd[d] = 0;
    this.dMaxMoreEnd[d] = -1;
    let s = source;
    if (s === NONE) {
      s = this.sFree;
      this.sFree = this.sChain[s]!;
      this.sFamily[s] = fam;
      for (let i = 0; i < alen; i++) this.sAddr[s * 16 + i] = b[this.cSrc + i]!;
      this.sHash[s] = this.cSrcHash;
      const sb = this.cSrcHash & (this.sHeads.length - 1);
      this.sChain[s] = this.sHeads[sb]!;
      this.sHeads[sb] = s;
      this.sBytes[s] = 0;
      this.sRefs[s] = 0;
    }
    this.sRefs[s]!++;
    this.dSource[d] = s;
    this.datagrams++;
    return d;
  }

  private hold(d: number, p: PacketBuf, prev: number, next: number, size: number): void {
    const f = this.fFree;
    this.fFree = this.fNext[f]!;
    this.fBuf[f] = p;
    this.fStart[f] = this.cStart;
    this.fEnd[f] = this.cEnd;
    this.fData[f] = this.cData;
    this.fL3[f] = this.cL3;
    this.fNext[f] = next;
    if (prev === NONE) this.dFirst[d] = f;
    else this.fNext[prev] = f;
    if (next === NONE) this.dTail[d] = f;
    const end = this.cEnd;
    this.dData[d]! += end - this.cStart;
    if (!this.cMore) this.dEnd[d] = end;
    else if (end > this.dMaxMoreEnd[d]!) this.dMaxMoreEnd[d] = end;
    if (end > this.dMaxEnd[d]!) this.dMaxEnd[d] = end;
    this.dBytes[d]! += size;
    this.sBytes[this.dSource[d]!]! += size;
    this.heldBytes += size;
    this.heldFragments++;
  }

  /** Discards datagram `d` for `reason` because of the fragment being added (which the caller drops). */
  private reject(d: number, reason: DropReason): number {
    this.discard(d, reason);
    return reason;
  }

  /** Releases every fragment of `d`, counting each under `reason`, and frees the slot. Returns the count. */
  private discard(d: number, reason: DropReason): number {
    let n = 0;
    for (let f = this.dFirst[d]!; f !== NONE; f = this.fNext[f]!) {
      this.fBuf[f]!.release();
      n++;
    }
    this.drops[reason]! += n;
    this.freeDatagram(d);
    return n;
  }

  /** Releases every fragment of `d` without counting a drop (assembled, or cleared), and frees the slot. */
  private releaseAll(d: number): void {
    for (let f = this.dFirst[d]!; f !== NONE; f = this.fNext[f]!) this.fBuf[f]!.release();
    this.freeDatagram(d);
  }

  /** Returns `d`'s fragment slots (their buffers already released or handed on) and its own slot. */
  private freeDatagram(d: number): void {
    let f = this.dFirst[d]!;
    while (f !== NONE) {
      const nx = this.fNext[f]!;
      this.fBuf[f] = null;
      this.fNext[f] = this.fFree;
      this.fFree = f;
      this.heldFragments--;
      f = nx;
    }
    const bytes = this.dBytes[d]!;
    this.heldBytes -= bytes;
    const s = this.dSource[d]!;
    this.sBytes[s]! -= bytes;
    if (--this.sRefs[s]! === 0) {
      const sb = this.sHash[s]! & (this.sHeads.length - 1);
      if (this.sHeads[sb] === s) this.sHeads[sb] = this.sChain[s]!;
      else {
        let x = this.sHeads[sb]!;
        while (this.sChain[x] !== s) x = this.sChain[x]!;
        this.sChain[x] = this.sChain[s]!;
      }
      this.sChain[s] = this.sFree;
      this.sFree = s;
    }
    const hb = this.dHash[d]! & (this.dHeads.length - 1);
    if (this.dHeads[hb] === d) this.dHeads[hb] = this.dChain[d]!;
    else {
      let x = this.dHeads[hb]!;
      while (this.dChain[x] !== d) x = this.dChain[x]!;
      this.dChain[x] = this.dChain[d]!;
    }
    const older = this.dOlder[d]!;
    const newer = this.dNewer[d]!;
    if (older !== NONE) this.dNewer[older] = newer;
    else this.oldest = newer;
    if (newer !== NONE) this.dOlder[newer] = older;
    else this.newest = older;
    this.dFamily[d] = 0;
    this.dFirst[d] = this.dTail[d] = NONE;
    this.dChain[d] = this.dFree;
    this.dFree = d;
    this.datagrams--;
  }

  // ---- assembly ------------------------------------------------------------------------------------------

  /**
   * Builds the datagram from `d`'s held fragments and `p` (the one completing it; or, with `d` = NONE, an
   * IPv6 atomic fragment alone) into a buffer from the big pool, then releases them all.
   */
  private assemble(d: number, p: PacketBuf): number {
    // The first fragment (offset 0) is `p` or the head of the list (complete means offset 0 is there).
    let fb = p;
    let fData = this.cData;
    let fl3 = this.cL3;
    if (this.cStart !== 0) {
      const f0 = this.dFirst[d]!;
      fb = this.fBuf[f0]!;
      fData = this.fData[f0]!;
      fl3 = this.fL3[f0]!;
    }
    const end = this.cMore ? this.dEnd[d]! : this.cEnd;
    const v6 = this.cFamily === 6;
    // The headers kept: IPv4's whole first header; IPv6's unfragmentable part (the Fragment header goes).
    const headEnd = v6 ? fData - IPV6_FRAG_HEADER_LEN : fData;
    const ipHead = headEnd - fl3;
    const linkLen = fl3 - fb.start;
    if (v6 ? ipHead - IPV6_HEADER_LEN + end > IP_MAX_LEN : ipHead + end > IP_MAX_LEN) return this.fail(d, DropReason.FragBadLength);
    const frameLen = linkLen + ipHead + end;
    if (frameLen > this.pool.frameCapacity) return this.fail(d, DropReason.FragNoBuffer);
    const q = this.pool.alloc();
    if (q === null) return this.fail(d, DropReason.FragNoBuffer);
    const qb = q.data;
    const qs = q.start;
    const at = qs + linkLen + ipHead;
    copyBytes(fb, fb.start, q, qs, linkLen + ipHead);
    copyBytes(p, this.cData, q, at + this.cStart, this.cEnd - this.cStart);
    let fragments = 1;
    if (d !== NONE) {
      for (let f = this.dFirst[d]!; f !== NONE; f = this.fNext[f]!) {
        const start = this.fStart[f]!;
        copyBytes(this.fBuf[f]!, this.fData[f]!, q, at + start, this.fEnd[f]! - start);
        fragments++;
      }
    }
    q.end = qs + frameLen;
    const ip = qs + linkLen;
    const qv = q.view;
    if (v6) {
      // The next-header octet that named the Fragment header now names what the Fragment header named.
      let nhOff = ip + 6;
      for (let pos = ip + IPV6_HEADER_LEN; pos < at; ) {
        const len = ipv6ExtLen(qb, pos, qb[nhOff]!);
        if (len <= 0) break; // cannot happen: walkIpv6 reached the Fragment header through these
        nhOff = pos;
        pos += len;
      }
      qb[nhOff] = fb.data[headEnd]!;
      qv.setUint16(ip + 4, ipHead - IPV6_HEADER_LEN + end);
    } else {
      qv.setUint16(ip + 2, ipHead + end);
      qv.setUint16(ip + 6, qv.getUint16(ip + 6) & FLAGS_KEPT);
      qv.setUint16(ip + 10, 0);
      qv.setUint16(ip + 10, checksum(qb, ip, ipHead));
    }
    q.copyMeta(fb);
    q.l2 = fb.l2 < 0 ? -1 : qs + (fb.l2 - fb.start);
    q.l3 = ip;
    p.release();
    if (d !== NONE) this.releaseAll(d);
    this.reassembled++;
    this.lastFragments = fragments;
    this.result = q;
    return DONE;
  }

  /** A failed assembly: the held fragments are counted under `reason`, `p` goes back to the caller. */
  private fail(d: number, reason: DropReason): number {
    if (d !== NONE) this.discard(d, reason);
    return reason;
  }
}
