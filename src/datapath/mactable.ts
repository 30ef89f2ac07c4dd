/**
 * The MAC learning table: (segment, MAC) → (port, aux), with the policy of Open vSwitch's
 * `lib/mac-learning.h`.
 *
 * - Learning: every frame's source address is learned on its ingress port. A known address seen again on
 *   the same port and aux is refreshed; seen on another port or aux it is a station move and the entry
 *   follows it (counted in `stats.moved`).
 * - Aging: a dynamic entry expires `agingNs` after it was last learned. An expired entry is absent to
 *   `lookup` and `learn` (learning it again counts as new), but it keeps its slot, and still counts in
 *   `size` and `countOf`, until `age(now)` removes it or eviction picks it.
 * - Static entries are configured, not learned: never aged, never evicted, never moved by learning, and
 *   adding one replaces a dynamic entry for the same key.
 * - Capacity and fairness: the table holds at most `capacity` entries. When a new address arrives at a full
 *   table, the least recently learned dynamic entry of the port holding the most dynamic entries (the
 *   lower port number on a tie) makes room. A port flooding random source addresses therefore only
 *   evicts its own entries once it holds the most, and a port holding fewer than another never loses
 *   one to it. A table full of static entries learns nothing (`LearnResult.Full`).
 *
 * Times are nanoseconds passed in by the caller and must never decrease from one call to the next.
 *
 * Layout, for a per-packet path that allocates nothing and reads one record: an open-addressing hash of
 * `2^k ≥ 2 × capacity` slots (allocated as entries come: 64 at first, doubled whenever more than half
 * would be used), linear probing, backward-shift deletion (no tombstones, so probe sequences
 * never degrade). Each slot is itself the entry: a 32-byte record (key, lastSeen, port, aux, learning
 * tick) read through a Float64Array and an Int32Array over one buffer, so `lookup`, and `learn`
 * refreshing a known entry, touch one record (at most two adjacent cache lines) after hashing. The slot
 * number is the handle `lookup` returns; a removal shifts records back, which is why handles are only
 * good until the next mutating call.
 *
 * Learning order, kept exact without reordering on every refresh. Learns are ordered by (lastSeen, tick),
 * the tick counting the learns made at the same `now`. Each port keeps its dynamic entries, apart from
 * the records, in a FIFO in placing order (an entry placed at the tail is the latest learned) and a
 * pairing heap ordered by the key each entry had when pushed. While nothing is being evicted, a refresh
 * writes its key into the record and flags it REFRESHED, and touches nothing else: a flagged entry sits
 * earlier than its key says, never later. So aging and eviction look at the FIFO head and the heap root
 * only: a flagged head moves to the heap with its current key, a flagged root is pushed again with its
 * current key, until both are unflagged; the smaller key of the two is then the port's least recently
 * learned entry, and when neither has expired by the key it sits with, no entry of the port has. Each
 * flag costs at most one such move, and a flood of addresses never seen again is evicted straight from
 * the FIFO. Under eviction pressure, though, refreshed entries keep coming up flagged; so from an
 * eviction until 32 × capacity refreshes have passed without one, a refresh moves its entry to the
 * FIFO tail at once (out of the heap, if it was there), as Open vSwitch does, and leaves no flag.
 * Static entries sit on a per-port list, and a tournament tree over ports names the port with the most
 * dynamic entries in O(1).
 */

export { LearnResult, MAC_TABLE_MAX_CAPACITY, MAC_TABLE_PORT_LIMIT, type MacEntry, type MacTableOptions, type MacTableStats } from './mactable-types.js';
import { buildTournament, checkAging, checkAux, checkKey, replayTournament } from './mactable-types.js';
import { LearnResult, MAC_TABLE_MAX_CAPACITY, MAC_TABLE_PORT_LIMIT, type MacEntry, type MacTableOptions, type MacTableStats } from './mactable-types.js';

/** 2^-32: multiplying by a power of two is exact, and cheaper than dividing. */
const INV_TWO_32 = 1 / 0x1_0000_0000;

const NIL = -1;
/** Hash slots a table starts with (fewer when its capacity needs fewer); they double up to what the capacity needs. */
const INITIAL_SLOTS = 64;

// The entry record: 32 bytes per slot, 4 doubles (F) from index `slot << 2` or 8 int32 words (W) from
// `slot << 3`. An empty slot has NaN as its MAC (equal to no key) and 0 as its tag (no used tag is 0).
/** F: the 48-bit MAC. */
const F_MAC = 0;
/** F: lastSeen (0 for a static entry). */
const F_SEEN = 1;
/** W: the tag, `segment | kind`. */
const W_TAG = 4;
/** W: the port. */
const W_PORT = 5;
/** W: the aux value. */
const W_AUX = 6;
/**
 * W: the tick of the last learn (lastSeen and tick together order the learns; 0 for a static entry), with
 * REFRESHED set when the entry was learned again since it was placed in its FIFO or pushed on its heap.
 */
const W_TICK = 7;
const TICK_MASK = 0x7fff_ffff;
const REFRESHED = 1 << 31;
const SEGMENT_MASK = 0xff_ffff;
const DYNAMIC = 1 << 24;
const STATIC = 2 << 24;

// The node: 16 bytes per slot, 4 words (NW) from `slot << 2`: the entry's place in its port's structures.
// A dynamic entry is in its port's FIFO or its port's heap; a static entry is in its port's static list.
/** NW: previous in the list; in the heap, the parent of a first child or the left sibling, NIL at the root. */
const N_PREV = 0;
/** NW: next in the list; in the heap, the right sibling. */
const N_NEXT = 1;
/** NW: in the heap, the first child. */
const N_CHILD = 2;
/** NW: 1 when the entry is in the heap. */
const N_IN_HEAP = 3;
// The heap key: 16 bytes per slot, the (lastSeen, tick) a heap entry was pushed with, as doubles (KF)
// from `slot << 1` or words (KW) from `slot << 2`.
/** KF: the lastSeen of the heap key. */
const K_SEEN = 0;
/** KW: the tick of the heap key. */
const K_TICK = 2;

/** Ticks count up to this within one `now`, then are renumbered (see `renumberTicks`). */
const TICK_LIMIT = TICK_MASK;
/** After an eviction, refreshes reorder eagerly for this many refreshes per entry of capacity. */
const EAGER_REFRESHES_PER_ENTRY = 32;

/**
 * The key's hash: the low 32 bits of the MAC, its high 16 bits with the low 16 bits of the segment, and
 * the segment's high 8 bits, each word multiplied by its own odd constant, then a multiply-xorshift
 * finalizer so the slot index (the low bits) depends on every key bit. Keys that differ only in segment
 * or only in the high MAC bits spread like any others.
 */
function macHash(segment: number, mac: number): number {
  const lo = mac >>> 0; // ToUint32 is exact modulo 2^32 for integers up to 2^53
  const hi = (mac * INV_TWO_32) | 0; // < 2^16
  let h = lo ^ Math.imul(hi | (segment << 16), 0x85eb_ca6b) ^ Math.imul(segment >>> 16, 0x27d4_eb2f);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b_3c6d);
  return h ^ (h >>> 16);
}

/**
 * A MAC learning table of fixed capacity (see the module comment for the policy). `learn` and `lookup`
 * are the per-packet calls: O(1) amortised, no allocation. Handles returned by `lookup` stay valid
 * until the next mutating call.
 */
export class MacTable {
  /** Maximum number of entries (dynamic + static). */
  readonly capacity: number;
  /** Counters since construction. */
  readonly stats: MacTableStats = { learned: 0, moved: 0, evicted: 0, aged: 0, flushed: 0 };

  private aging: number;
  private count = 0;
  /** The `now` of the latest learn, and the tick it was given. */
  private tickNow = NaN;
  private tick = 0;
  /** True while refreshes reorder eagerly (see the module comment); `calm` refreshes are left. */
  private eager = false;
  private calm = 0;

  private mask: number;
  /** The slot count the capacity calls for (the smallest power of two ≥ 2 × capacity): `mask + 1` grows up to it. */
  private readonly maxSlots: number;
  // Entry records (see F_* and W_*), nodes (see N_*) and heap keys (see K_*).
  private f: Float64Array;
  private w: Int32Array;
  private nw: Int32Array;
  private kf: Float64Array;
  private kw: Int32Array;

  // Per port, grown on demand: FIFO, heap root, static list, dynamic counts, and a tournament tree whose
  // node i holds the port with the most dynamic entries below it (leaves at portCap + port).
  private portCap = 0;
  /** One more than the highest port that ever held a dynamic entry: where `age` stops looking. */
  private portsUsed = 0;
  private fifoHead: Int32Array = new Int32Array(0);
  private fifoTail: Int32Array = new Int32Array(0);
  private heapRoot: Int32Array = new Int32Array(0);
  private statHead: Int32Array = new Int32Array(0);
  private statTail: Int32Array = new Int32Array(0);
  private dynCount: Int32Array = new Int32Array(0);
  private tree: Int32Array = new Int32Array(0);

  constructor(opts: MacTableOptions = {}) {
    const capacity = opts.capacity ?? 8192;
    const agingNs = opts.agingNs ?? 300e9;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAC_TABLE_MAX_CAPACITY) {
      throw new RangeError(`MAC table: capacity must be an integer in [1, ${MAC_TABLE_MAX_CAPACITY}], got ${capacity}`);
    }
    checkAging(agingNs);
    this.capacity = capacity;
    this.aging = agingNs;

    let nslots = 2;
    while (nslots < 2 * capacity) nslots *= 2;
    this.maxSlots = nslots;
    // The slots start few and double as entries come (see `grow`): a bridge of a 1,000-node cluster holds
    // a dozen entries, and 64 bytes per slot of the default capacity up front would be 1 MiB per bridge.
    nslots = Math.min(nslots, INITIAL_SLOTS);
    this.mask = nslots - 1;
    const records = new ArrayBuffer(nslots * 32);
    this.f = new Float64Array(records);
    this.w = new Int32Array(records);
    this.nw = new Int32Array(nslots * 4);
    const keys = new ArrayBuffer(nslots * 16);
    this.kf = new Float64Array(keys);
    this.kw = new Int32Array(keys);
    for (let s = 0; s < nslots; s++) this.f[(s << 2) | F_MAC] = NaN;
    this.growPorts(16);
  }

  /** True when one more entry would load the slots above one half and they may still double. */
  private needsGrow(): boolean {
    return (this.count + 1) * 2 > this.mask + 1 && this.mask + 1 < this.maxSlots;
  }

  /**
   * Doubles the slots: every entry is placed again by its hash, its record, node and heap key copied
   * as words, then every link (list and heap neighbours, per-port heads, tails and roots) is mapped to
   * the entries' new slots. Learning order, static lists and heaps are unchanged: only slot numbers
   * (handles, which a mutating call invalidates anyway) change.
   */
  private grow(): void {
    const oldSlots = this.mask + 1;
    const nslots = oldSlots * 2;
    const mask = nslots - 1;
    const ow = this.w,
      onw = this.nw,
      okw = this.kw,
      of = this.f;
    const records = new ArrayBuffer(nslots * 32);
    const f = new Float64Array(records);
    const w = new Int32Array(records);
    const nw = new Int32Array(nslots * 4);
    const keys = new ArrayBuffer(nslots * 16);
    const kf = new Float64Array(keys);
    const kw = new Int32Array(keys);
    for (let s = 0; s < nslots; s++) f[(s << 2) | F_MAC] = NaN;
    const to = new Int32Array(oldSlots).fill(NIL);
    for (let s = 0; s < oldSlots; s++) {
      const t = ow[(s << 3) | W_TAG]!;
      if (t === 0) continue;
      let d = macHash(t & SEGMENT_MASK, of[(s << 2) | F_MAC]!) & mask;
      while (w[(d << 3) | W_TAG] !== 0) d = (d + 1) & mask;
      // Copied as words, as in `moveSlot`.
      for (let i = 0; i < 8; i++) w[(d << 3) | i] = ow[(s << 3) | i]!;
      for (let i = 0; i < 4; i++) {
        nw[(d << 2) | i] = onw[(s << 2) | i]!;
        kw[(d << 2) | i] = okw[(s << 2) | i]!;
      }
      to[s] = d;
    }
    const map = (x: number): number => (x === NIL ? NIL : to[x]!);
    for (let d = 0; d < nslots; d++) {
      if (w[(d << 3) | W_TAG] === 0) continue;
      nw[(d << 2) | N_PREV] = map(nw[(d << 2) | N_PREV]!);
      nw[(d << 2) | N_NEXT] = map(nw[(d << 2) | N_NEXT]!);
      nw[(d << 2) | N_CHILD] = map(nw[(d << 2) | N_CHILD]!);
    }
    for (const a of [this.fifoHead, this.fifoTail, this.heapRoot, this.statHead, this.statTail]) {
      for (let p = 0; p < a.length; p++) a[p] = map(a[p]!);
    }
    this.mask = mask;
    this.f = f;
    this.w = w;
    this.nw = nw;
    this.kf = kf;
    this.kw = kw;
  }

  /** Dynamic entries expire this long (ns) after they were last learned; must be > 0. */
  get agingNs(): number {
    return this.aging;
  }
  set agingNs(v: number) {
    checkAging(v);
    this.aging = v;
  }

  /** Number of entries held (dynamic + static, expired ones not yet aged included). */
  get size(): number {
    return this.count;
  }

  /**
   * Learns that `mac` in `segment` was seen on `port` (with `aux`, 0 when unused) at `now`. O(1)
   * amortised, allocates nothing once `port` has been seen. Throws RangeError for a port that is not an
   * integer in [0, 65536); the key and `aux` (an integer in [0, 2^31)) are not validated here, the parser
   * only produces valid ones.
   */
  learn(segment: number, mac: number, port: number, aux: number, now: number): LearnResult {
    // The fast path is the refresh of a live dynamic entry on the same port and aux (whose stored port
    // was validated when it was learned): it rewrites the record's key and nothing else. Everything else,
    // an invalid port included, takes the slow path.
    const f = this.f;
    const w = this.w;
    const mask = this.mask;
    const h = macHash(segment, mac);
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const t = w[(s << 3) | W_TAG]!;
      if (f[(s << 2) | F_MAC] === mac && (t & SEGMENT_MASK) === segment) {
        if (t !== (segment | DYNAMIC) || w[(s << 3) | W_PORT] !== port || w[(s << 3) | W_AUX] !== aux || f[(s << 2) | F_SEEN]! + this.aging <= now) {
          return this.relearn(s, port, aux, now);
        }
        f[(s << 2) | F_SEEN] = now;
        if (this.eager) return this.refreshEagerly(s, port, now);
        w[(s << 3) | W_TICK] = this.nextTick(now) | REFRESHED;
        return LearnResult.Refreshed;
      }
      if (t === 0) return this.learnNew(segment, mac, port, aux, now, h, s);
    }
  }

  /**
   * The handle (≥ 0) of the live entry for (`segment`, `mac`), or -1. A dynamic entry whose
   * `lastSeen + agingNs <= now` has expired and is not found. Read-only; allocates nothing.
   */
  lookup(segment: number, mac: number, now: number): number {
    const f = this.f;
    const w = this.w;
    const mask = this.mask;
    for (let s = macHash(segment, mac) & mask; ; s = (s + 1) & mask) {
      const t = w[(s << 3) | W_TAG]!;
      if (f[(s << 2) | F_MAC] === mac && (t & SEGMENT_MASK) === segment) {
        return t >= STATIC || f[(s << 2) | F_SEEN]! + this.aging > now ? s : NIL;
      }
      if (t === 0) return NIL;
    }
  }

  /**
   * `learn` for the first `n` keys of a batch, all on `port`: (`segs[i]`, `macs[i]`) with `auxs[i]`, at
   * `now`; `results[i]` gets the LearnResult. A key equal to the one before it is not learned again (at
   * the same `now` that changes nothing) and gets the result learning it again would give: Refreshed
   * after Learned or Moved, otherwise the same result.
   *
   * The common case, the refresh of a live entry, is written out in the loop rather than left to a call
   * of `learn`: whether V8 inlines `learn` into a per-packet loop depends on the loop's whole inlining
   * budget and on when the compiler ran, and a bridge lost a fifth of its VXLAN round-trip speed in the
   * processes where it did not. Everything else goes to `learn`.
   */
  learnBatch(segs: Int32Array, macs: Float64Array, auxs: Int32Array, n: number, port: number, now: number, results: Uint8Array): void {
    const f = this.f;
    const w = this.w;
    const mask = this.mask;
    const aging = this.aging;
    let lastSeg = -1;
    let lastMac = -1;
    let lastAux = -1;
    let last: LearnResult = LearnResult.Refreshed;
    for (let i = 0; i < n; i++) {
      const seg = segs[i]!;
      const mac = macs[i]!;
      const aux = auxs[i]!;
      if (mac === lastMac && seg === lastSeg && aux === lastAux) {
        results[i] = last === LearnResult.Learned || last === LearnResult.Moved ? LearnResult.Refreshed : last;
        continue;
      }
      lastSeg = seg;
      lastMac = mac;
      lastAux = aux;
      let done = false;
      for (let s = macHash(seg, mac) & mask; ; s = (s + 1) & mask) {
        const r = s << 3;
        const t = w[r | W_TAG]!;
        if (f[(s << 2) | F_MAC] === mac && (t & SEGMENT_MASK) === seg) {
          if (t === (seg | DYNAMIC) && w[r | W_PORT] === port && w[r | W_AUX] === aux && f[(s << 2) | F_SEEN]! + aging > now && !this.eager) {
            f[(s << 2) | F_SEEN] = now;
            const k = this.tick;
            w[r | W_TICK] = (now === this.tickNow && k !== TICK_LIMIT ? (this.tick = k + 1) : this.nextTick(now)) | REFRESHED;
            done = true;
          }
          break;
        }
        if (t === 0) break;
      }
      results[i] = last = done ? LearnResult.Refreshed : this.learn(seg, mac, port, aux, now);
    }
  }

  /**
   * `lookup` for the first `n` keys of a batch: `ports[i]` and `auxOut[i]` get the entry's port and aux,
   * or -1 and 0 when there is no live entry. A key equal to the one before it has the same answer (the
   * table does not change during the call). The probe is written out here for the same reason as in
   * `learnBatch`.
   */
  lookupBatch(segs: Int32Array, macs: Float64Array, n: number, now: number, ports: Int32Array, auxOut: Int32Array): void {
    this.queryTime = now;
    this.lookupAtQueryTime(segs, macs, n, ports, auxOut);
  }

  /**
   * The time `lookupAtQueryTime` judges expiry at: the last `lookupBatch`'s, or what its owner set (the
   * bridge, per batch).
   */
  queryTime = 0;

  /**
   * `lookupBatch` at `queryTime`: for a caller per packet, which would otherwise pass the time — a double
   * (ns) — to a call V8 may not inline, and box it each time.
   */
  lookupAtQueryTime(segs: Int32Array, macs: Float64Array, n: number, ports: Int32Array, auxOut: Int32Array): void {
    const now = this.queryTime;
    const f = this.f;
    const w = this.w;
    const mask = this.mask;
    const aging = this.aging;
    let lastSeg = -1;
    let lastMac = -1;
    let lastPort = -1;
    let lastAux = 0;
    for (let i = 0; i < n; i++) {
      const seg = segs[i]!;
      const mac = macs[i]!;
      if (mac !== lastMac || seg !== lastSeg) {
        lastSeg = seg;
        lastMac = mac;
        lastPort = -1;
        lastAux = 0;
        for (let s = macHash(seg, mac) & mask; ; s = (s + 1) & mask) {
          const r = s << 3;
          const t = w[r | W_TAG]!;
          if (f[(s << 2) | F_MAC] === mac && (t & SEGMENT_MASK) === seg) {
            if (t >= STATIC || f[(s << 2) | F_SEEN]! + aging > now) {
              lastPort = w[r | W_PORT]!;
              lastAux = w[r | W_AUX]!;
            }
            break;
          }
          if (t === 0) break;
        }
      }
      ports[i] = lastPort;
      auxOut[i] = lastAux;
    }
  }

  /** The port of the entry `h` (a handle from `lookup`). */
  portOf(h: number): number {
    return this.w[(h << 3) | W_PORT]!;
  }
  /** The aux value of the entry `h`. */
  auxOf(h: number): number {
    return this.w[(h << 3) | W_AUX]!;
  }
  /** True when the entry `h` is static. */
  isStatic(h: number): boolean {
    return this.w[(h << 3) | W_TAG]! >= STATIC;
  }

  /**
   * Adds or updates a static entry: never aged, never evicted, never moved by learning. It replaces a
   * dynamic entry for the same key. When the table is full a dynamic entry is evicted by the fair rule;
   * throws RangeError when the table is full of static entries, or for an invalid key, port or aux.
   */
  addStatic(segment: number, mac: number, port: number, aux = 0): void {
    checkKey(segment, mac);
    checkAux(aux);
    this.ensurePort(port);
    const h = macHash(segment, mac);
    let s = this.find(segment, mac, h);
    if (s !== NIL) {
      this.unlink(s);
    } else {
      if (this.count === this.capacity && !this.evictOne()) {
        throw new RangeError(`MAC table: full of static entries (capacity ${this.capacity})`);
      }
      s = this.insert(mac, h);
    }
    this.w[(s << 3) | W_TAG] = segment | STATIC;
    this.w[(s << 3) | W_PORT] = port;
    this.w[(s << 3) | W_AUX] = aux;
    this.w[(s << 3) | W_TICK] = 0;
    this.f[(s << 2) | F_SEEN] = 0;
    this.listAppend(s, this.statHead, this.statTail, port);
  }

  /** Removes the entry (dynamic or static, expired or not) for the key; false when there is none. */
  remove(segment: number, mac: number): boolean {
    const s = this.find(segment, mac, macHash(segment, mac));
    if (s === NIL) return false;
    this.removeAt(s);
    return true;
  }

  /**
   * Removes the port's dynamic entries (its link went down), and its static entries too when
   * `includeStatic` (the port is being removed). Returns how many were removed.
   */
  flushPort(port: number, includeStatic: boolean): number {
    if (port >>> 0 !== port || port >= this.portCap) return 0;
    let n = 0;
    for (let s = this.fifoHead[port]!; s !== NIL; s = this.fifoHead[port]!) {
      this.removeAt(s);
      n++;
    }
    for (let s = this.heapRoot[port]!; s !== NIL; s = this.heapRoot[port]!) {
      this.removeAt(s);
      n++;
    }
    if (includeStatic) {
      for (let s = this.statHead[port]!; s !== NIL; s = this.statHead[port]!) {
        this.removeAt(s);
        n++;
      }
    }
    this.stats.flushed += n;
    return n;
  }

  /**
   * Removes the port's entries, dynamic and static, whose aux is `aux`: on a tunnel port, the MACs behind
   * one remote VTEP, when that VTEP is removed. Walks the whole table (a reconfiguration, not a per-packet
   * call). Returns how many were removed; they count as flushed.
   */
  flushAux(port: number, aux: number): number {
    let n = 0;
    for (const e of this.entries()) {
      if (e.port === port && e.aux === aux && this.remove(e.segment, e.mac)) n++;
    }
    this.stats.flushed += n;
    return n;
  }

  /**
   * Removes every dynamic entry expired at `now`. Looks at each port's FIFO head and heap root only:
   * cost proportional to the number of ports plus the number removed, plus one move to the heap per
   * refresh flag found on the way (see the module comment).
   */
  age(now: number): number {
    const f = this.f;
    const kf = this.kf;
    let n = 0;
    for (let p = 0; p < this.portsUsed; p++) {
      for (;;) {
        // FIFO entries were placed in key order, and every entry's key is at least the key it was placed
        // or pushed with: when neither a placed FIFO head nor the heap root has expired by that key, no
        // entry of the port has.
        const head = this.fifoHead[p]!;
        if (head !== NIL) {
          if (!this.isPlaced(head)) {
            this.fifoToHeap(head, p);
            continue;
          }
          if (f[(head << 2) | F_SEEN]! + this.aging <= now) {
            this.removeAt(head);
            n++;
            continue;
          }
        }
        const root = this.heapRoot[p]!;
        if (root !== NIL && kf[(root << 1) | K_SEEN]! + this.aging <= now) {
          if (this.isPlaced(root)) {
            this.removeAt(root);
            n++;
          } else {
            this.heapRepush(root, p);
          }
          continue;
        }
        break;
      }
    }
    this.stats.aged += n;
    return n;
  }

  /** How many dynamic entries `port` holds (expired ones not yet aged included). */
  countOf(port: number): number {
    if (port >>> 0 !== port || port >= this.portCap) return 0;
    return this.dynCount[port]!;
  }

  /** A snapshot of every entry, sorted by segment then MAC (allocates: for display and tests). */
  entries(): MacEntry[] {
    const out: MacEntry[] = [];
    const f = this.f;
    const w = this.w;
    for (let s = 0; s <= this.mask; s++) {
      const t = w[(s << 3) | W_TAG]!;
      if (t === 0) continue;
      out.push({
        segment: t & SEGMENT_MASK,
        mac: f[(s << 2) | F_MAC]!,
        port: w[(s << 3) | W_PORT]!,
        aux: w[(s << 3) | W_AUX]!,
        isStatic: t >= STATIC,
        lastSeen: f[(s << 2) | F_SEEN]!,
      });
    }
    out.sort((a, b) => a.segment - b.segment || a.mac - b.mac);
    return out;
  }

  // ---- internals: hashing ----

  /** The slot of the key (any kind, expired or not), or NIL. */
  private find(segment: number, mac: number, h: number): number {
    const f = this.f;
    const w = this.w;
    const mask = this.mask;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const t = w[(s << 3) | W_TAG]!;
      if (f[(s << 2) | F_MAC] === mac && (t & SEGMENT_MASK) === segment) return s;
      if (t === 0) return NIL;
    }
  }

  /**
   * Puts the key in the first empty slot of the probe sequence of `h` and returns the slot; the caller
   * writes the tag (which marks the slot used), port, aux, lastSeen and tick, then links it.
   */
  private insert(mac: number, h: number): number {
    if (this.needsGrow()) this.grow();
    const w = this.w;
    const mask = this.mask;
    let s = h & mask;
    while (w[(s << 3) | W_TAG] !== 0) s = (s + 1) & mask;
    this.f[(s << 2) | F_MAC] = mac;
    this.count++;
    return s;
  }

  /** Unlinks the entry in slot `s` and empties the slot, shifting its cluster back. */
  private removeAt(s: number): void {
    this.unlink(s);
    // Backward shift: walk the cluster after the hole and pull back every entry whose home is not
    // strictly between the hole and its own slot, so no probe sequence crosses an empty slot.
    const f = this.f;
    const w = this.w;
    const mask = this.mask;
    let hole = s;
    for (let j = (hole + 1) & mask; ; j = (j + 1) & mask) {
      const t = w[(j << 3) | W_TAG]!;
      if (t === 0) break;
      const home = macHash(t & SEGMENT_MASK, f[(j << 2) | F_MAC]!) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        this.moveSlot(j, hole);
        hole = j;
      }
    }
    w[(hole << 3) | W_TAG] = 0;
    f[(hole << 2) | F_MAC] = NaN;
    this.nw[(hole << 2) | N_IN_HEAP] = 0; // the hole may hold the node of an entry shifted out of it
    this.count--;
  }

  /** Moves the linked entry in slot `from` to the empty slot `to`, repointing whatever pointed at it. */
  private moveSlot(from: number, to: number): void {
    // Copied as words: a word pair read as a double could be a NaN, which need not survive a copy.
    const w = this.w;
    const nw = this.nw;
    const kw = this.kw;
    for (let i = 0; i < 8; i++) w[(to << 3) | i] = w[(from << 3) | i]!;
    for (let i = 0; i < 4; i++) {
      nw[(to << 2) | i] = nw[(from << 2) | i]!;
      kw[(to << 2) | i] = kw[(from << 2) | i]!;
    }
    const port = w[(to << 3) | W_PORT]!;
    const dynamic = w[(to << 3) | W_TAG]! < STATIC;
    const p = nw[(to << 2) | N_PREV]!;
    const n = nw[(to << 2) | N_NEXT]!;
    if (dynamic && nw[(to << 2) | N_IN_HEAP] === 1) {
      if (p === NIL) this.heapRoot[port] = to;
      else if (nw[(p << 2) | N_CHILD] === from) nw[(p << 2) | N_CHILD] = to;
      else nw[(p << 2) | N_NEXT] = to;
      if (n !== NIL) nw[(n << 2) | N_PREV] = to;
      const c = nw[(to << 2) | N_CHILD]!;
      if (c !== NIL) nw[(c << 2) | N_PREV] = to;
    } else {
      if (p === NIL) (dynamic ? this.fifoHead : this.statHead)[port] = to;
      else nw[(p << 2) | N_NEXT] = to;
      if (n === NIL) (dynamic ? this.fifoTail : this.statTail)[port] = to;
      else nw[(n << 2) | N_PREV] = to;
    }
  }

  // ---- internals: learning ----

  /** The tick of a learn at `now`. */
  private nextTick(now: number): number {
    let k = this.tick;
    if (now !== this.tickNow) {
      this.tickNow = now;
      k = 0;
    } else if (k === TICK_LIMIT) {
      k = this.renumberTicks();
    }
    this.tick = ++k;
    return k;
  }

  /**
   * Renumbers the ticks of the current `now` densely, in order, in records and heap keys alike, so that
   * the order of keys is unchanged; returns the highest. Runs once per 2^31 learns at one `now`, if ever.
   */
  private renumberTicks(): number {
    const now = this.tickNow;
    const ticks: number[] = [];
    for (let s = 0; s <= this.mask; s++) {
      const t = this.w[(s << 3) | W_TAG]!;
      if (t === 0 || t >= STATIC) continue;
      if (this.f[(s << 2) | F_SEEN] === now) ticks.push(this.w[(s << 3) | W_TICK]! & TICK_MASK);
      if (this.nw[(s << 2) | N_IN_HEAP] === 1 && this.kf[(s << 1) | K_SEEN] === now) ticks.push(this.kw[(s << 2) | K_TICK]!);
    }
    const sorted = Int32Array.from(ticks).sort();
    let k = 0;
    for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[k++] = sorted[i]!;
    const rank = (tick: number): number => {
      let lo = 0;
      let hi = k - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sorted[mid]! < tick) lo = mid + 1;
        else hi = mid;
      }
      return lo + 1;
    };
    for (let s = 0; s <= this.mask; s++) {
      const t = this.w[(s << 3) | W_TAG]!;
      if (t === 0 || t >= STATIC) continue;
      if (this.f[(s << 2) | F_SEEN] === now) {
        const wt = this.w[(s << 3) | W_TICK]!;
        this.w[(s << 3) | W_TICK] = rank(wt & TICK_MASK) | (wt & REFRESHED);
      }
      if (this.nw[(s << 2) | N_IN_HEAP] === 1 && this.kf[(s << 1) | K_SEEN] === now) this.kw[(s << 2) | K_TICK] = rank(this.kw[(s << 2) | K_TICK]!);
    }
    return k;
  }

  /** Learns a key that is not in the table, whose probe sequence ends at the empty slot `empty`. */
  private learnNew(segment: number, mac: number, port: number, aux: number, now: number, h: number, empty: number): LearnResult {
    if (port >>> 0 !== port || port >= this.portCap) this.ensurePort(port);
    let s = empty;
    if (this.count === this.capacity) {
      if (!this.evictOne()) return LearnResult.Full;
      s = this.insert(mac, h); // the eviction may have shifted the probe sequence
    } else if (this.needsGrow()) {
      s = this.insert(mac, h); // the slots doubled: `empty` is no longer where the probe ends
    } else {
      this.f[(s << 2) | F_MAC] = mac;
      this.count++;
    }
    this.w[(s << 3) | W_TAG] = segment | DYNAMIC;
    this.w[(s << 3) | W_PORT] = port;
    this.w[(s << 3) | W_AUX] = aux;
    this.f[(s << 2) | F_SEEN] = now;
    this.w[(s << 3) | W_TICK] = this.nextTick(now);
    this.linkDynamic(s, port);
    this.stats.learned++;
    return LearnResult.Learned;
  }

  /** The entry in slot `s` seen again by learning, other than a refresh of a live entry (the fast path). */
  private relearn(s: number, port: number, aux: number, now: number): LearnResult {
    if (port >>> 0 !== port || port >= this.portCap) this.ensurePort(port);
    const w = this.w;
    if (w[(s << 3) | W_TAG]! >= STATIC) return LearnResult.Static;
    const oldPort = w[(s << 3) | W_PORT]!;
    const expired = this.f[(s << 2) | F_SEEN]! + this.aging <= now;
    let result: LearnResult;
    if (expired) {
      result = LearnResult.Learned;
      this.stats.learned++;
    } else if (oldPort === port && w[(s << 3) | W_AUX] === aux) {
      result = LearnResult.Refreshed;
    } else {
      result = LearnResult.Moved;
      this.stats.moved++;
    }
    this.f[(s << 2) | F_SEEN] = now;
    w[(s << 3) | W_AUX] = aux;
    if (oldPort !== port) {
      w[(s << 3) | W_TICK] = this.nextTick(now);
      this.unlink(s);
      w[(s << 3) | W_PORT] = port;
      this.linkDynamic(s, port);
    } else if (this.eager) {
      w[(s << 3) | W_TICK] = this.nextTick(now);
      this.requeue(s, port);
    } else {
      w[(s << 3) | W_TICK] = this.nextTick(now) | REFRESHED;
    }
    return result;
  }

  /** The fast path's refresh while evicting (its record's lastSeen already written). */
  private refreshEagerly(s: number, port: number, now: number): LearnResult {
    this.w[(s << 3) | W_TICK] = this.nextTick(now);
    this.requeue(s, port);
    if (--this.calm === 0) this.eager = false;
    return LearnResult.Refreshed;
  }

  // ---- internals: learning order ----

  /** True when the entry in slot `s` was not learned again since it was placed or pushed. */
  private isPlaced(s: number): boolean {
    return this.w[(s << 3) | W_TICK]! >= 0;
  }
  /** True when the heap key of `a` is smaller than that of `b`. */
  private less(a: number, b: number): boolean {
    const sa = this.kf[(a << 1) | K_SEEN]!;
    const sb = this.kf[(b << 1) | K_SEEN]!;
    return sa < sb || (sa === sb && this.kw[(a << 2) | K_TICK]! < this.kw[(b << 2) | K_TICK]!);
  }

  /** The port's least recently learned dynamic entry, or NIL; brings its FIFO head and heap root up to date. */
  private oldest(port: number): number {
    for (;;) {
      const head = this.fifoHead[port]!;
      if (head !== NIL && !this.isPlaced(head)) {
        this.fifoToHeap(head, port);
        continue;
      }
      const root = this.heapRoot[port]!;
      if (root !== NIL && !this.isPlaced(root)) {
        this.heapRepush(root, port);
        continue;
      }
      if (head === NIL) return root;
      if (root === NIL) return head;
      // Both were placed with their current keys.
      const sr = this.f[(root << 2) | F_SEEN]!;
      const sh = this.f[(head << 2) | F_SEEN]!;
      return sr < sh || (sr === sh && this.w[(root << 3) | W_TICK]! < this.w[(head << 3) | W_TICK]!) ? root : head;
    }
  }

  /** Evicts one dynamic entry by the fair rule; false when there is none. */
  private evictOne(): boolean {
    const p = this.tree[1]!;
    if (this.dynCount[p] === 0) return false;
    this.eager = true;
    this.calm = EAGER_REFRESHES_PER_ENTRY * this.capacity;
    this.removeAt(this.oldest(p));
    this.stats.evicted++;
    return true;
  }

  /** Places the dynamic entry in slot `s`, learned just now, at the tail of `port`'s FIFO. */
  private linkDynamic(s: number, port: number): void {
    this.w[(s << 3) | W_TICK]! &= TICK_MASK;
    this.nw[(s << 2) | N_IN_HEAP] = 0;
    this.listAppend(s, this.fifoHead, this.fifoTail, port);
    this.dynCount[port]!++;
    if (port >= this.portsUsed) this.portsUsed = port + 1;
    this.replay(port);
  }

  /** Takes the entry in slot `s` off its port's FIFO, heap or static list. */
  private unlink(s: number): void {
    const port = this.w[(s << 3) | W_PORT]!;
    if (this.w[(s << 3) | W_TAG]! >= STATIC) {
      this.listUnlink(s, this.statHead, this.statTail, port);
      return;
    }
    if (this.nw[(s << 2) | N_IN_HEAP] === 1) this.heapRemove(s, port);
    else this.listUnlink(s, this.fifoHead, this.fifoTail, port);
    this.dynCount[port]!--;
    this.replay(port);
  }

  /** Moves the dynamic entry in slot `s`, learned just now on `port` (unflagged), to the tail of its FIFO. */
  private requeue(s: number, port: number): void {
    if (this.nw[(s << 2) | N_IN_HEAP] === 1) this.heapRemove(s, port);
    else if (this.fifoTail[port] === s) return;
    else this.listUnlink(s, this.fifoHead, this.fifoTail, port);
    this.listAppend(s, this.fifoHead, this.fifoTail, port);
  }

  private fifoToHeap(s: number, port: number): void {
    this.listUnlink(s, this.fifoHead, this.fifoTail, port);
    this.heapPush(s, port);
  }
  private heapRepush(s: number, port: number): void {
    this.heapRemove(s, port);
    this.heapPush(s, port);
  }

  private listAppend(s: number, head: Int32Array, tail: Int32Array, port: number): void {
    const nw = this.nw;
    const t = tail[port]!;
    nw[(s << 2) | N_PREV] = t;
    nw[(s << 2) | N_NEXT] = NIL;
    if (t === NIL) head[port] = s;
    else nw[(t << 2) | N_NEXT] = s;
    tail[port] = s;
  }
  private listUnlink(s: number, head: Int32Array, tail: Int32Array, port: number): void {
    const nw = this.nw;
    const p = nw[(s << 2) | N_PREV]!;
    const n = nw[(s << 2) | N_NEXT]!;
    if (p === NIL) head[port] = n;
    else nw[(p << 2) | N_NEXT] = n;
    if (n === NIL) tail[port] = p;
    else nw[(n << 2) | N_PREV] = p;
  }

  // A pairing heap per port, ordered by the heap keys.

  /** Pushes the dynamic entry in slot `s` on `port`'s heap with its current key. */
  private heapPush(s: number, port: number): void {
    const nw = this.nw;
    const tick = this.w[(s << 3) | W_TICK]! & TICK_MASK;
    this.w[(s << 3) | W_TICK] = tick;
    this.kf[(s << 1) | K_SEEN] = this.f[(s << 2) | F_SEEN]!;
    this.kw[(s << 2) | K_TICK] = tick;
    nw[(s << 2) | N_IN_HEAP] = 1;
    nw[(s << 2) | N_PREV] = NIL;
    nw[(s << 2) | N_NEXT] = NIL;
    nw[(s << 2) | N_CHILD] = NIL;
    const r = this.heapRoot[port]!;
    this.heapRoot[port] = r === NIL ? s : this.meld(r, s);
  }

  /** Takes the node `s` out of `port`'s heap. */
  private heapRemove(s: number, port: number): void {
    const nw = this.nw;
    const p = nw[(s << 2) | N_PREV]!;
    const n = nw[(s << 2) | N_NEXT]!;
    const c = nw[(s << 2) | N_CHILD]!;
    const sub = c === NIL ? NIL : this.mergePairs(c);
    if (p === NIL) {
      this.heapRoot[port] = sub;
    } else {
      if (nw[(p << 2) | N_CHILD] === s) nw[(p << 2) | N_CHILD] = n;
      else nw[(p << 2) | N_NEXT] = n;
      if (n !== NIL) nw[(n << 2) | N_PREV] = p;
      if (sub !== NIL) this.heapRoot[port] = this.meld(this.heapRoot[port]!, sub);
    }
    nw[(s << 2) | N_IN_HEAP] = 0;
  }

  /** Melds two heap roots (no parent, no siblings); returns the new root. */
  private meld(a: number, b: number): number {
    if (this.less(b, a)) {
      const t = a;
      a = b;
      b = t;
    }
    const nw = this.nw;
    const c = nw[(a << 2) | N_CHILD]!;
    nw[(b << 2) | N_NEXT] = c;
    if (c !== NIL) nw[(c << 2) | N_PREV] = b;
    nw[(b << 2) | N_PREV] = a;
    nw[(a << 2) | N_CHILD] = b;
    return a;
  }

  /** Melds the sibling list starting at `first` into one root (two passes); returns it. */
  private mergePairs(first: number): number {
    const nw = this.nw;
    // Left to right, meld pairs, stacking each result through its `next`.
    let stack = NIL;
    for (let a = first; a !== NIL; ) {
      const b = nw[(a << 2) | N_NEXT]!;
      nw[(a << 2) | N_PREV] = NIL;
      nw[(a << 2) | N_NEXT] = NIL;
      let m = a;
      let rest = NIL;
      if (b !== NIL) {
        rest = nw[(b << 2) | N_NEXT]!;
        nw[(b << 2) | N_PREV] = NIL;
        nw[(b << 2) | N_NEXT] = NIL;
        m = this.meld(a, b);
      }
      nw[(m << 2) | N_NEXT] = stack;
      stack = m;
      a = rest;
    }
    // Right to left, meld each into the result.
    let root = stack;
    stack = nw[(root << 2) | N_NEXT]!;
    nw[(root << 2) | N_NEXT] = NIL;
    while (stack !== NIL) {
      const m = stack;
      stack = nw[(m << 2) | N_NEXT]!;
      nw[(m << 2) | N_NEXT] = NIL;
      root = this.meld(root, m);
    }
    return root;
  }

  // ---- internals: ports ----

  /** Replays the tournament from `port`'s leaf to the root after its count changed. */
  private replay(port: number): void {
    replayTournament(this.tree, this.dynCount, this.portCap, port);
  }

  /** Validates a port and grows the per-port arrays to hold it (rare: allocates). */
  private ensurePort(port: number): void {
    if (!Number.isInteger(port) || port < 0 || port >= MAC_TABLE_PORT_LIMIT) {
      throw new RangeError(`MAC table: port ${port} is not an integer in [0, ${MAC_TABLE_PORT_LIMIT})`);
    }
    if (port >= this.portCap) {
      let cap = this.portCap;
      while (cap <= port) cap *= 2;
      this.growPorts(cap);
    }
  }

  private growPorts(cap: number): void {
    const grow = (old: Int32Array, fill: number): Int32Array => {
      const a = new Int32Array(cap).fill(fill);
      a.set(old);
      return a;
    };
    this.fifoHead = grow(this.fifoHead, NIL);
    this.fifoTail = grow(this.fifoTail, NIL);
    this.heapRoot = grow(this.heapRoot, NIL);
    this.statHead = grow(this.statHead, NIL);
    this.statTail = grow(this.statTail, NIL);
    this.dynCount = grow(this.dynCount, 0);
    this.portCap = cap;
    this.tree = buildTournament(this.dynCount, cap);
  }
}
