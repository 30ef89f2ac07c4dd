/**
 * The agent's heap meter (live/heap.ts): it must see allocations that collections already freed (what
 * "allocates nothing per packet" is judged by), and little when nothing is allocated.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeapMeter } from '../../src/live/heap.js';

test('heap meter: counts bytes allocated across collections, and next to nothing when idle', () => {
  const m = new HeapMeter();
  const a = m.read();
  // 4,000 arrays of 10,000 doubles (~320 MB in all) kept only briefly: many scavenges free them.
  let keep = 0;
  for (let i = 0; i < 4000; i++) {
    const x = new Array<number>(10_000).fill(i);
    keep += x[i % 10_000]!;
  }
  const b = m.read();
  assert.ok(keep > 0);
  const grew = b.allocatedBytes - a.allocatedBytes;
  assert.ok(grew >= 200e6, `allocated ${grew} bytes, expected at least 200 MB of the ~320 MB made`);
  assert.ok(b.gcs > a.gcs, 'collections ran and were counted');
  // Reading again at once: the readings themselves cost a little, far from a megabyte.
  let idle = 0;
  for (let i = 0; i < 20; i++) {
    const c = m.read();
    const d = m.read();
    idle = Math.max(idle, d.allocatedBytes - c.allocatedBytes);
  }
  assert.ok(idle < 1e6, `an idle read pair allocated ${idle} bytes`);
  m.stop();
});
