/**
 * Tables keyed by addresses read straight out of a packet, without building a key object: IPv4 addresses
 * are numbers and use a Map; IPv6 addresses (16 bytes at an offset) hash to 32 bits and chain on collision.
 */
import { rd32 } from '../wire/bytes.js';

/** A 32-bit hash of the 16 bytes at `b[o]` (all four words contribute). */
export function hashIpv6(b: Uint8Array, o: number): number {
  let h = Math.imul(rd32(b, o) ^ 0x9e3779b9, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 15) ^ rd32(b, o + 4), 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 13) ^ rd32(b, o + 8), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 16) ^ rd32(b, o + 12), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * IPv6 address → value, grown by configuration and learning. Lookups by (bytes, offset) allocate nothing.
 * `delete` unlinks an entry from its chain and leaves its slot unused: deletions come from
 * reconfiguration (a peer leaves), rare enough that the slots are not worth recycling.
 */
export class Ipv6Table<T> {
  private readonly heads = new Map<number, number>();
  private readonly keys: Uint8Array[] = [];
  private readonly values: T[] = [];
  private readonly next: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  private find(b: Uint8Array, o: number, h: number): number {
    let i = this.heads.get(h) ?? -1;
    while (i >= 0) {
      const k = this.keys[i]!;
      let same = true;
      for (let j = 0; j < 16; j++)
        if (k[j] !== b[o + j]) {
          same = false;
          break;
        }
      if (same) return i;
      i = this.next[i]!;
    }
    return -1;
  }

  /** The value for the address at `b[o]`, or undefined. */
  get(b: Uint8Array, o = 0): T | undefined {
    const i = this.find(b, o, hashIpv6(b, o));
    return i < 0 ? undefined : this.values[i];
  }

  set(addr: Uint8Array, value: T): void {
    const h = hashIpv6(addr, 0);
    const i = this.find(addr, 0, h);
    if (i >= 0) {
      this.values[i] = value;
      return;
    }
    const slot = this.keys.length;
    this.keys[slot] = addr.slice(0, 16);
    this.values[slot] = value;
    this.next[slot] = this.heads.get(h) ?? -1;
    this.heads.set(h, slot);
    this.count++;
  }

  /** Removes the address's entry; false when there is none. */
  delete(addr: Uint8Array): boolean {
    const h = hashIpv6(addr, 0);
    const i = this.find(addr, 0, h);
    if (i < 0) return false;
    const head = this.heads.get(h)!;
    if (head === i) {
      if (this.next[i]! < 0) this.heads.delete(h);
      else this.heads.set(h, this.next[i]!);
    } else {
      let j = head;
      while (this.next[j] !== i) j = this.next[j]!;
      this.next[j] = this.next[i]!;
    }
    this.count--;
    return true;
  }

  *entries(): IterableIterator<[Uint8Array, T]> {
    for (const i of this.heads.values()) {
      for (let j = i; j >= 0; j = this.next[j]!) yield [this.keys[j]!, this.values[j]!];
    }
  }
}

/**
 * The home slot hash of a U32Map key. A multiplicative hash's low bits depend only on the key's low bits,
 * and the slot is taken from the low bits: without the shift, keys alike in their low byte (routes to
 * 10.a.b.0/24, one per node) all land on a few slots and probe through hundreds of others. The xor-shift
 * brings the product's high bits, which every key bit reaches, down into the slot.
 */
function slotOf(k: number): number {
  const h = Math.imul(k, 0x9e3779b1);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * uint32 → int32 map (IPv4 addresses → small indexes) in typed arrays. A JS Map keyed by addresses above
 * 2^31 boxes each key on lookup; this does not. Open addressing, linear probing; deletion shifts the
 * entries after the hole back (no tombstones, so lookups never slow down after peers come and go).
 */
export class U32Map {
  private keys: Int32Array;
  private vals: Int32Array;
  private used: Uint8Array;
  private mask: number;
  private count = 0;

  constructor(initial = 16) {
    let n = 8;
    while (n < initial * 2) n *= 2;
    this.keys = new Int32Array(n);
    this.vals = new Int32Array(n);
    this.used = new Uint8Array(n);
    this.mask = n - 1;
  }

  get size(): number {
    return this.count;
  }

  /** The value for `key` (any uint32 or int32), or -1. */
  get(key: number): number {
    const k = key | 0;
    const m = this.mask;
    for (let i = slotOf(k) & m; ; i = (i + 1) & m) {
      if (this.used[i] === 0) return -1;
      if (this.keys[i] === k) return this.vals[i]!;
    }
  }

  /** Sets `key` → `value` (a non-negative int32). */
  set(key: number, value: number): void {
    if ((this.count + 1) * 2 > this.keys.length) this.grow();
    const k = key | 0;
    const m = this.mask;
    for (let i = slotOf(k) & m; ; i = (i + 1) & m) {
      if (this.used[i] === 0) {
        this.used[i] = 1;
        this.keys[i] = k;
        this.vals[i] = value;
        this.count++;
        return;
      }
      if (this.keys[i] === k) {
        this.vals[i] = value;
        return;
      }
    }
  }

  /** Calls `fn` with every (key as int32, value), in slot order (not insertion order). Don't change the map meanwhile. */
  forEach(fn: (key: number, value: number) => void): void {
    for (let i = 0; i < this.used.length; i++) if (this.used[i] === 1) fn(this.keys[i]!, this.vals[i]!);
  }

  /** Removes `key`; false when it was not there. */
  delete(key: number): boolean {
    const k = key | 0;
    const m = this.mask;
    const keys = this.keys,
      vals = this.vals,
      used = this.used;
    let i = slotOf(k) & m;
    for (; ; i = (i + 1) & m) {
      if (used[i] === 0) return false;
      if (keys[i] === k) break;
    }
    // Backward shift (Knuth 6.4, algorithm R): an entry after the hole whose home slot is not cyclically
    // in (hole, its slot] would no longer be found past the hole, so it moves into the hole.
    for (let j = i; ; ) {
      j = (j + 1) & m;
      if (used[j] === 0) break;
      const h = slotOf(keys[j]!) & m;
      if (i <= j ? i < h && h <= j : i < h || h <= j) continue;
      keys[i] = keys[j]!;
      vals[i] = vals[j]!;
      i = j;
    }
    used[i] = 0;
    this.count--;
    return true;
  }

  private grow(): void {
    const { keys, vals, used } = this;
    const n = keys.length * 2;
    this.keys = new Int32Array(n);
    this.vals = new Int32Array(n);
    this.used = new Uint8Array(n);
    this.mask = n - 1;
    this.count = 0;
    for (let i = 0; i < used.length; i++) if (used[i] === 1) this.set(keys[i]!, vals[i]!);
  }
}
