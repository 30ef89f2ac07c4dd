/**
 * Byte copies between packet buffers, shared by fragmentation and reassembly (internal to `mtu/`).
 *
 * JavaScript has no allocation-free memcpy between two arrays at arbitrary offsets: `dst.set(src.subarray(…))`
 * builds a short-lived view object, and a load/store loop is an order of magnitude slower (measured on
 * Node 20: 1480 bytes take ~45 ns with `set`, ~690 ns with 32-bit DataView loads and stores). But a pool's
 * buffers are windows into one slab (`PacketPool.slab`), so between two buffers of the same pool (a packet
 * and the fragments cut from it, in the common case of one datapath pool) `copyWithin` on the slab moves
 * the bytes with no allocation at all, in ~30 ns. The slab offsets come from the buffers' slots: reading
 * `byteOffset` or `buffer` off a typed array costs ~10 ns each in V8, as much as the copy saves.
 * Only copies between different pools pay for one view.
 */
import type { PacketBuf } from '../packet/buf.js';

/** Below this many bytes a plain loop is cheaper than building a view (headers, not payloads). */
const SMALL_COPY = 32;

/**
 * Copies `n` bytes from `src.data[so, so+n)` to `dst.data[dof, dof+n)` (indexes into `data`, as layer
 * offsets are). The ranges must not overlap unless `src === dst`.
 */
export function copyBytes(src: PacketBuf, so: number, dst: PacketBuf, dof: number, n: number): void {
  const pool = src.pool;
  if (pool !== null && pool === dst.pool) {
    const size = pool.bufferSize;
    const from = src.slot * size + so;
    pool.slab.copyWithin(dst.slot * size + dof, from, from + n);
    return;
  }
  const a = src.data;
  const b = dst.data;
  if (n <= SMALL_COPY) {
    for (let i = 0; i < n; i++) b[dof + i] = a[so + i]!;
  } else {
    b.set(a.subarray(so, so + n), dof);
  }
}
