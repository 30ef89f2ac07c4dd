/**
 * Helpers shared by fragmentation and reassembly (internal to `mtu/`): byte copies between packet buffers
 * and the length of an IPv6 extension header.
 *
 * JavaScript has no allocation-free memcpy between two arrays at arbitrary offsets: `dst.set(src.subarray(…))`
 * builds a short-lived view object, and a load/store loop is an order of magnitude slower (measured on
 * Node 20: 1480 bytes take ~45 ns with `set`, ~690 ns with 32-bit DataView loads and stores). But a pool's
 * buffers are windows into one slab, so between two buffers of the same pool (a packet and the fragments
 * cut from it, in the common case of one datapath pool) `copyWithin` over a view of the whole slab moves
 * the bytes with no allocation at all, in ~30 ns. The slab offsets come from the buffers' slots: reading
 * `byteOffset` or `buffer` off a typed array costs ~10 ns each in V8, as much as the copy saves.
 * Only copies between different pools pay for one view.
 */
import type { PacketBuf, PacketPool } from '../packet/buf.js';
import { isGenericExtHeader, IPV6_FRAG_HEADER_LEN, IPV6_NH_AH, IPV6_NH_FRAGMENT } from '../wire/ipv6.js';

/**
 * A view of each pool's whole slab, or null when the pool's buffers are not laid out as PacketPool lays them
 * out today (buffer `i` at `i × bufferSize` of one ArrayBuffer) — checked once, on the first copy. Weak, so a
 * discarded pool's slab is not kept alive.
 */
const slabs = new WeakMap<PacketPool, Uint8Array | null>();

function slabOf(pool: PacketPool, b: PacketBuf): Uint8Array | null {
  let s = slabs.get(pool);
  if (s === undefined) {
    const d = b.data;
    const len = pool.size * pool.bufferSize;
    s = b.slot >= 0 && d.byteOffset === b.slot * pool.bufferSize && d.buffer.byteLength >= len ? new Uint8Array(d.buffer, 0, len) : null;
    slabs.set(pool, s);
  }
  return s;
}

/** Below this many bytes a plain loop is cheaper than building a view (headers, not payloads). */
const SMALL_COPY = 32;

/**
 * Copies `n` bytes from `src.data[so, so+n)` to `dst.data[dof, dof+n)` (indexes into `data`, as layer
 * offsets are). The ranges must not overlap unless `src === dst`.
 */
export function copyBytes(src: PacketBuf, so: number, dst: PacketBuf, dof: number, n: number): void {
  const pool = src.pool;
  if (pool !== null && pool === dst.pool) {
    const slab = slabOf(pool, src);
    if (slab !== null) {
      const size = pool.bufferSize;
      const from = src.slot * size + so;
      slab.copyWithin(dst.slot * size + dof, from, from + n);
      return;
    }
  }
  const a = src.data;
  const b = dst.data;
  if (n <= SMALL_COPY) {
    for (let i = 0; i < n; i++) b[dof + i] = a[so + i]!;
  } else {
    b.set(a.subarray(so, so + n), dof);
  }
}

/**
 * Length in bytes of the IPv6 extension header of type `nh` at `b[o]`, or -1 when `nh` is not one
 * (the same rule as `walkIpv6`, for chains it has already checked).
 */
export function ipv6ExtLen(b: Uint8Array, o: number, nh: number): number {
  if (isGenericExtHeader(nh)) return (b[o + 1]! + 1) << 3;
  if (nh === IPV6_NH_AH) return (b[o + 1]! + 2) << 2; // RFC 4302 §2.2: 4-octet units, minus 2
  if (nh === IPV6_NH_FRAGMENT) return IPV6_FRAG_HEADER_LEN;
  return -1;
}
