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
 * Times are nanoseconds passed in by the caller and must never decrease from one call to the next: each
 * port's LRU list is kept in learning order, so aging and eviction look at list heads only.
 *
 * Layout, for a hot path that allocates nothing: entries live in parallel typed arrays indexed by a
 * stable entry number (the handle `lookup` returns); an open-addressing hash of `2^k ≥ 2 × capacity`
 * slots maps to entry numbers, with linear probing and backward-shift deletion (no tombstones, so probe
 * sequences never degrade). Dynamic and static entries sit on per-port doubly linked lists, and a
 * tournament tree over ports names the port with the most dynamic entries in O(1).
 */

/** What `MacTable.learn` did. */
export enum LearnResult {
  /** Known on the same port and aux: its learning time was updated. */
  Refreshed = 0,
  /** A new entry (or one that had expired and was learned again). */
  Learned,
  /** Station move: a known address seen on another port or aux; the entry now points there. */
  Moved,
  /** A static entry exists for the address: learning never overrides it. Nothing changed. */
  Static,
  /** The table is full of static entries: nothing could be evicted, the address was not learned. */
  Full,
}

/** Options of a `MacTable`. */
export interface MacTableOptions {
  /** Maximum number of entries (dynamic + static). Default 8192. */
  capacity?: number;
  /** Dynamic entries expire this long after they were last learned. Default 300 s = 300e9 ns. */
  agingNs?: number;
}

/** Counters of a `MacTable`, since construction. */
export interface MacTableStats {
  /** New entries learned (including expired entries learned again). */
  learned: number;
  /** Station moves. */
  moved: number;
  /** Dynamic entries evicted to make room. */
  evicted: number;
  /** Dynamic entries removed by `age`. */
  aged: number;
  /** Entries removed by `flushPort`. */
  flushed: number;
}

/** One entry as `MacTable.entries` reports it. */
export interface MacEntry {
  /** VLAN id or internal segment number, in [0, 2^24). */
  segment: number;
  /** The 48-bit MAC as a number (see `rdMac`). */
  mac: number;
  /** Bridge port index. */
  port: number;
  /** Caller's extra value, e.g. the remote VTEP index; 0 when unused. */
  aux: number;
  /** True for a configured (static) entry. */
  isStatic: boolean;
  /** Time it was last learned; 0 for a static entry. */
  lastSeen: number;
}

/** Largest capacity accepted: keeps the typed arrays to a few hundred MB at most. */
export const MAC_TABLE_MAX_CAPACITY = 1 << 24;
/** Ports are bridge port indexes below this. */
export const MAC_TABLE_PORT_LIMIT = 1 << 16;
const SEGMENT_LIMIT = 1 << 24;
const MAC_LIMIT = 2 ** 48;
const TWO_32 = 0x1_0000_0000;

const FREE = 0;
const DYNAMIC = 1;
const STATIC = 2;
const NIL = -1;

/**
 * murmur3_32 over three words: the low 32 bits of the MAC, its high 16 bits with the low 16 bits of the
 * segment, and the segment's high 8 bits. Every key bit reaches every hash bit, so keys that differ only
 * in segment or only in the high MAC bits spread like any others.
 */
function macHash(segment: number, mac: number): number {
  const lo = mac >>> 0; // ToUint32 is exact modulo 2^32 for integers up to 2^53
  const hi = (mac / TWO_32) | 0;
  let h = 0x5e1e_0001;
  h = mixWord(h, lo);
  h = mixWord(h, hi | (segment << 16));
  h = mixWord(h, segment >>> 16);
  h ^= 12;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85eb_ca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2_ae35);
  h ^= h >>> 16;
  return h;
}
function mixWord(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e_2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b87_3593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe654_6b64) | 0;
}

function checkKey(segment: number, mac: number): void {
  if (!Number.isInteger(segment) || segment < 0 || segment >= SEGMENT_LIMIT) throw new RangeError(`MAC table: segment ${segment} is not an integer in [0, 2^24)`);
  if (!Number.isInteger(mac) || mac < 0 || mac >= MAC_LIMIT) throw new RangeError(`MAC table: MAC ${mac} is not an integer in [0, 2^48)`);
}
function checkAux(aux: number): void {
  if (!Number.isInteger(aux) || aux < 0 || aux > 0x7fff_ffff) throw new RangeError(`MAC table: aux ${aux} is not an integer in [0, 2^31)`);
}
function checkAging(agingNs: number): void {
  if (!(agingNs > 0)) throw new RangeError(`MAC table: agingNs must be > 0, got ${agingNs}`);
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

  // Hash slots: entry number, or NIL when empty.
  private readonly slots: Int32Array;
  private readonly mask: number;

  // Entries, indexed by entry number (the handle).
  private readonly keyMac: Float64Array;
  private readonly keySeg: Int32Array;
  private readonly ports: Int32Array;
  private readonly auxes: Int32Array;
  private readonly seen: Float64Array;
  private readonly kind: Uint8Array;
  private readonly hashes: Int32Array;
  private readonly slotOf: Int32Array;
  // Links of the per-port list the entry is on; `next` also chains the free entries.
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private freeHead: number;

  // Per port, grown on demand: dynamic and static lists, dynamic counts, and a tournament tree whose
  // node i holds the port with the most dynamic entries below it (leaves at portCap + port).
  private portCap = 0;
  /** One more than the highest port that ever held a dynamic entry: where `age` stops looking. */
  private portsUsed = 0;
  private dynHead: Int32Array = new Int32Array(0);
  private dynTail: Int32Array = new Int32Array(0);
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
    this.slots = new Int32Array(nslots).fill(NIL);
    this.mask = nslots - 1;

    this.keyMac = new Float64Array(capacity);
    this.keySeg = new Int32Array(capacity);
    this.ports = new Int32Array(capacity);
    this.auxes = new Int32Array(capacity);
    this.seen = new Float64Array(capacity);
    this.kind = new Uint8Array(capacity);
    this.hashes = new Int32Array(capacity);
    this.slotOf = new Int32Array(capacity).fill(NIL);
    this.prev = new Int32Array(capacity).fill(NIL);
    this.next = new Int32Array(capacity);
    for (let e = 0; e < capacity; e++) this.next[e] = e + 1 < capacity ? e + 1 : NIL;
    this.freeHead = 0;
    this.growPorts(16);
  }

  /** Dynamic entries expire this long (ns) after they were last learned; must be > 0. */
  get agingNs(): number { return this.aging; }
  set agingNs(v: number) {
    checkAging(v);
    this.aging = v;
  }

  /** Number of entries held (dynamic + static, expired ones not yet aged included). */
  get size(): number { return this.count; }

  /**
   * Learns that `mac` in `segment` was seen on `port` (with `aux`, 0 when unused) at `now`. O(1)
   * amortised, allocates nothing once `port` has been seen. Throws RangeError for a port that is not an
   * integer in [0, 65536); the key and `aux` (an integer in [0, 2^31)) are not validated here, the parser
   * only produces valid ones.
   */
  learn(segment: number, mac: number, port: number, aux: number, now: number): LearnResult {
    if ((port >>> 0) !== port || port >= this.portCap) this.ensurePort(port);
    const slots = this.slots;
    const mask = this.mask;
    const h = macHash(segment, mac);
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const e = slots[i]!;
      if (e === NIL) break;
      if (this.keyMac[e] === mac && this.keySeg[e] === segment) return this.relearn(e, port, aux, now);
    }
    if (this.count === this.capacity && !this.evictOne()) return LearnResult.Full;
    const e = this.insert(segment, mac, h);
    this.kind[e] = DYNAMIC;
    this.ports[e] = port;
    this.auxes[e] = aux;
    this.seen[e] = now;
    this.linkDynamic(e, port);
    this.stats.learned++;
    return LearnResult.Learned;
  }

  /**
   * The handle (≥ 0) of the live entry for (`segment`, `mac`), or -1. A dynamic entry whose
   * `lastSeen + agingNs <= now` has expired and is not found. Read-only; allocates nothing.
   */
  lookup(segment: number, mac: number, now: number): number {
    const e = this.find(segment, mac);
    if (e === NIL) return NIL;
    if (this.kind[e] === DYNAMIC && this.seen[e]! + this.aging <= now) return NIL;
    return e;
  }

  /** The port of the entry `h` (a handle from `lookup`). */
  portOf(h: number): number { return this.ports[h]!; }
  /** The aux value of the entry `h`. */
  auxOf(h: number): number { return this.auxes[h]!; }
  /** True when the entry `h` is static. */
  isStatic(h: number): boolean { return this.kind[h] === STATIC; }

  /**
   * Adds or updates a static entry: never aged, never evicted, never moved by learning. It replaces a
   * dynamic entry for the same key. When the table is full a dynamic entry is evicted by the fair rule;
   * throws RangeError when the table is full of static entries, or for an invalid key, port or aux.
   */
  addStatic(segment: number, mac: number, port: number, aux = 0): void {
    checkKey(segment, mac);
    checkAux(aux);
    this.ensurePort(port);
    let e = this.find(segment, mac);
    if (e !== NIL) {
      if (this.kind[e] === DYNAMIC) this.unlinkDynamic(e);
      else this.unlinkStatic(e);
    } else {
      if (this.count === this.capacity && !this.evictOne()) {
        throw new RangeError(`MAC table: full of static entries (capacity ${this.capacity})`);
      }
      e = this.insert(segment, mac, macHash(segment, mac));
    }
    this.kind[e] = STATIC;
    this.ports[e] = port;
    this.auxes[e] = aux;
    this.seen[e] = 0;
    this.linkStatic(e, port);
  }

  /** Removes the entry (dynamic or static, expired or not) for the key; false when there is none. */
  remove(segment: number, mac: number): boolean {
    const e = this.find(segment, mac);
    if (e === NIL) return false;
    this.removeEntry(e);
    return true;
  }

  /**
   * Removes the port's dynamic entries (its link went down), and its static entries too when
   * `includeStatic` (the port is being removed). Returns how many were removed.
   */
  flushPort(port: number, includeStatic: boolean): number {
    if ((port >>> 0) !== port || port >= this.portCap) return 0;
    let n = 0;
    for (let e = this.dynHead[port]!; e !== NIL; e = this.dynHead[port]!) { this.removeEntry(e); n++; }
    if (includeStatic) {
      for (let e = this.statHead[port]!; e !== NIL; e = this.statHead[port]!) { this.removeEntry(e); n++; }
    }
    this.stats.flushed += n;
    return n;
  }

  /**
   * Removes every dynamic entry expired at `now`. Each port's list is in learning order, so this looks
   * at list heads only: cost proportional to the number removed plus the number of ports.
   */
  age(now: number): number {
    let n = 0;
    for (let p = 0; p < this.portsUsed; p++) {
      for (let e = this.dynHead[p]!; e !== NIL && this.seen[e]! + this.aging <= now; e = this.dynHead[p]!) {
        this.removeEntry(e);
        n++;
      }
    }
    this.stats.aged += n;
    return n;
  }

  /** How many dynamic entries `port` holds (expired ones not yet aged included). */
  countOf(port: number): number {
    if ((port >>> 0) !== port || port >= this.portCap) return 0;
    return this.dynCount[port]!;
  }

  /** A snapshot of every entry, sorted by segment then MAC (allocates: for display and tests). */
  entries(): MacEntry[] {
    const out: MacEntry[] = [];
    for (let e = 0; e < this.capacity; e++) {
      const k = this.kind[e]!;
      if (k === FREE) continue;
      out.push({
        segment: this.keySeg[e]!, mac: this.keyMac[e]!, port: this.ports[e]!, aux: this.auxes[e]!,
        isStatic: k === STATIC, lastSeen: this.seen[e]!,
      });
    }
    out.sort((a, b) => a.segment - b.segment || a.mac - b.mac);
    return out;
  }

  // ---- internals ----

  private find(segment: number, mac: number): number {
    const slots = this.slots;
    const mask = this.mask;
    for (let i = macHash(segment, mac) & mask; ; i = (i + 1) & mask) {
      const e = slots[i]!;
      if (e === NIL || (this.keyMac[e] === mac && this.keySeg[e] === segment)) return e;
    }
  }

  /** An existing entry seen again by learning. */
  private relearn(e: number, port: number, aux: number, now: number): LearnResult {
    if (this.kind[e] === STATIC) return LearnResult.Static;
    const oldPort = this.ports[e]!;
    const expired = this.seen[e]! + this.aging <= now;
    let result: LearnResult;
    if (expired) {
      result = LearnResult.Learned;
      this.stats.learned++;
    } else if (oldPort === port && this.auxes[e] === aux) {
      result = LearnResult.Refreshed;
    } else {
      result = LearnResult.Moved;
      this.stats.moved++;
    }
    this.seen[e] = now;
    this.auxes[e] = aux;
    if (oldPort !== port) {
      this.unlinkDynamic(e);
      this.ports[e] = port;
      this.linkDynamic(e, port);
    } else if (this.dynTail[port] !== e) {
      // Move to the tail without touching the count (and so the tree).
      this.listUnlink(e, this.dynHead, this.dynTail, port);
      this.listAppend(e, this.dynHead, this.dynTail, port);
    }
    return result;
  }

  /** Evicts one dynamic entry by the fair rule; false when there is none. */
  private evictOne(): boolean {
    const p = this.tree[1]!;
    if (this.dynCount[p] === 0) return false;
    this.removeEntry(this.dynHead[p]!);
    this.stats.evicted++;
    return true;
  }

  /** Takes a free entry and puts it in the first empty slot of the probe sequence of `h`. */
  private insert(segment: number, mac: number, h: number): number {
    const e = this.freeHead;
    this.freeHead = this.next[e]!;
    const mask = this.mask;
    let i = h & mask;
    while (this.slots[i] !== NIL) i = (i + 1) & mask;
    this.slots[i] = e;
    this.slotOf[e] = i;
    this.keyMac[e] = mac;
    this.keySeg[e] = segment;
    this.hashes[e] = h;
    this.count++;
    return e;
  }

  private removeEntry(e: number): void {
    if (this.kind[e] === DYNAMIC) this.unlinkDynamic(e);
    else this.unlinkStatic(e);
    // Backward shift: walk the cluster after the hole and pull back every entry whose home is not
    // strictly between the hole and its own slot, so no probe sequence crosses an empty slot.
    const slots = this.slots;
    const mask = this.mask;
    let hole = this.slotOf[e]!;
    for (let j = (hole + 1) & mask; ; j = (j + 1) & mask) {
      const f = slots[j]!;
      if (f === NIL) break;
      const home = this.hashes[f]! & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        slots[hole] = f;
        this.slotOf[f] = hole;
        hole = j;
      }
    }
    slots[hole] = NIL;
    this.slotOf[e] = NIL;
    this.kind[e] = FREE;
    this.next[e] = this.freeHead;
    this.freeHead = e;
    this.count--;
  }

  private linkDynamic(e: number, port: number): void {
    this.listAppend(e, this.dynHead, this.dynTail, port);
    this.dynCount[port]!++;
    if (port >= this.portsUsed) this.portsUsed = port + 1;
    this.replay(port);
  }
  private unlinkDynamic(e: number): void {
    const port = this.ports[e]!;
    this.listUnlink(e, this.dynHead, this.dynTail, port);
    this.dynCount[port]!--;
    this.replay(port);
  }
  private linkStatic(e: number, port: number): void {
    this.listAppend(e, this.statHead, this.statTail, port);
  }
  private unlinkStatic(e: number): void {
    this.listUnlink(e, this.statHead, this.statTail, this.ports[e]!);
  }

  private listAppend(e: number, head: Int32Array, tail: Int32Array, port: number): void {
    const t = tail[port]!;
    this.prev[e] = t;
    this.next[e] = NIL;
    if (t === NIL) head[port] = e;
    else this.next[t] = e;
    tail[port] = e;
  }
  private listUnlink(e: number, head: Int32Array, tail: Int32Array, port: number): void {
    const p = this.prev[e]!;
    const n = this.next[e]!;
    if (p === NIL) head[port] = n;
    else this.next[p] = n;
    if (n === NIL) tail[port] = p;
    else this.prev[n] = p;
  }

  /** Replays the tournament from `port`'s leaf to the root after its count changed. */
  private replay(port: number): void {
    const tree = this.tree;
    const cnt = this.dynCount;
    for (let i = (this.portCap + port) >> 1; i >= 1; i >>= 1) {
      // The left subtree holds the lower port numbers, so it wins ties.
      const l = tree[2 * i]!;
      const r = tree[2 * i + 1]!;
      tree[i] = cnt[r]! > cnt[l]! ? r : l;
    }
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
    this.dynHead = grow(this.dynHead, NIL);
    this.dynTail = grow(this.dynTail, NIL);
    this.statHead = grow(this.statHead, NIL);
    this.statTail = grow(this.statTail, NIL);
    this.dynCount = grow(this.dynCount, 0);
    this.portCap = cap;
    const tree = new Int32Array(2 * cap);
    for (let p = 0; p < cap; p++) tree[cap + p] = p;
    for (let i = cap - 1; i >= 1; i--) {
      const l = tree[2 * i]!;
      const r = tree[2 * i + 1]!;
      tree[i] = this.dynCount[r]! > this.dynCount[l]! ? r : l;
    }
    this.tree = tree;
  }
}
