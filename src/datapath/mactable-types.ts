/**
 * The MAC table's public types and the pieces of it that are not on the per-packet path: argument
 * checks, and the tournament tree over ports that names the port with the most dynamic entries (the
 * one eviction takes from; see mactable.ts for the policy). Use them through mactable.ts.
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

/** Largest capacity accepted: the typed arrays take 64 bytes per hash slot, so at most 2 GiB. */
export const MAC_TABLE_MAX_CAPACITY = 1 << 24;
/** Ports are bridge port indexes below this. */
export const MAC_TABLE_PORT_LIMIT = 1 << 16;
const SEGMENT_LIMIT = 1 << 24;
const MAC_LIMIT = 2 ** 48;

export function checkKey(segment: number, mac: number): void {
  if (!Number.isInteger(segment) || segment < 0 || segment >= SEGMENT_LIMIT)
    throw new RangeError(`MAC table: segment ${segment} is not an integer in [0, 2^24)`);
  if (!Number.isInteger(mac) || mac < 0 || mac >= MAC_LIMIT) throw new RangeError(`MAC table: MAC ${mac} is not an integer in [0, 2^48)`);
}
export function checkAux(aux: number): void {
  if (!Number.isInteger(aux) || aux < 0 || aux > 0x7fff_ffff) throw new RangeError(`MAC table: aux ${aux} is not an integer in [0, 2^31)`);
}
export function checkAging(agingNs: number): void {
  if (!(agingNs > 0)) throw new RangeError(`MAC table: agingNs must be > 0, got ${agingNs}`);
}

/**
 * A tournament over `cap` ports (a power of two): node i holds the port with the most entries in `cnt`
 * below it, leaves at `cap + port`, the root at 1. The left subtree holds the lower port numbers, so it
 * wins ties.
 */
export function buildTournament(cnt: Int32Array, cap: number): Int32Array {
  const tree = new Int32Array(2 * cap);
  for (let p = 0; p < cap; p++) tree[cap + p] = p;
  for (let i = cap - 1; i >= 1; i--) {
    const l = tree[2 * i]!;
    const r = tree[2 * i + 1]!;
    tree[i] = cnt[r]! > cnt[l]! ? r : l;
  }
  return tree;
}

/** Replays the tournament from `port`'s leaf to the root after its count in `cnt` changed. */
export function replayTournament(tree: Int32Array, cnt: Int32Array, cap: number, port: number): void {
  for (let i = (cap + port) >> 1; i >= 1; i >>= 1) {
    const l = tree[2 * i]!;
    const r = tree[2 * i + 1]!;
    tree[i] = cnt[r]! > cnt[l]! ? r : l;
  }
}
