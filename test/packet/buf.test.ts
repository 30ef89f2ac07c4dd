import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HEADROOM, PacketBatch, PacketPool, TAILROOM } from '../../src/packet/buf.js';

test('packet: push/pull/put/trim move the window and refuse to leave the buffer', () => {
  const pool = new PacketPool({ count: 1, frameCapacity: 1600 });
  const p = pool.alloc()!;
  assert.equal(p.length, 0);
  assert.equal(p.headroom, HEADROOM);
  assert.ok(p.tailroom >= 1600 + TAILROOM);
  assert.equal(p.put(100), HEADROOM);
  assert.equal(p.push(50), HEADROOM - 50);
  assert.equal(p.length, 150);
  assert.equal(p.push(HEADROOM), -1);
  assert.equal(p.pull(151), -1);
  assert.equal(p.pull(50), HEADROOM);
  assert.ok(p.trim(100));
  assert.ok(!p.trim(1));
  assert.equal(p.put(p.tailroom + 1), -1);
});

test('packet: headroom holds the largest encapsulation without copying', () => {
  const pool = new PacketPool({ count: 1, frameCapacity: 1518 });
  const p = pool.alloc()!;
  assert.ok(p.load(new Uint8Array(1518).fill(1)));
  // Outer Ethernet+tag, IPv6, ESP header+IV, UDP (ESP-in-UDP), UDP, Geneve with 252 option bytes.
  assert.ok(p.push(14 + 4 + 40 + 16 + 8 + 8 + 8 + 252) >= 0);
  // ESP trailer: up to 15 padding, pad length, next header, 16-byte ICV.
  assert.ok(p.put(15 + 2 + 16) >= 0);
});

test('packet: the pool allocates nothing after construction and catches double frees', () => {
  const pool = new PacketPool({ count: 4, frameCapacity: 256 });
  const seen = new Set<unknown>();
  for (let round = 0; round < 3; round++) {
    const bufs = [pool.alloc()!, pool.alloc()!, pool.alloc()!, pool.alloc()!];
    assert.equal(pool.alloc(), null);
    for (const b of bufs) {
      seen.add(b);
      pool.release(b);
    }
  }
  assert.equal(seen.size, 4);
  const b = pool.alloc()!;
  pool.release(b);
  assert.throws(() => pool.release(b), /twice/);
  const other = new PacketPool({ count: 1, frameCapacity: 64 }).alloc()!;
  assert.throws(() => pool.release(other), /not from this pool/);
});

test('packet: buffers of one pool never overlap', () => {
  const pool = new PacketPool({ count: 3, frameCapacity: 100 });
  const [a, b, c] = [pool.alloc()!, pool.alloc()!, pool.alloc()!];
  a.data.fill(1);
  b.data.fill(2);
  c.data.fill(3);
  assert.ok(a.data.every((x) => x === 1) && b.data.every((x) => x === 2) && c.data.every((x) => x === 3));
});

test('packet: batch retain keeps order and hands every removed packet to the drop callback', () => {
  fc.assert(
    fc.property(fc.array(fc.boolean(), { maxLength: 64 }), (keeps) => {
      const pool = new PacketPool({ count: 64, frameCapacity: 64 });
      const batch = new PacketBatch(64);
      keeps.forEach(() => batch.add(pool.alloc()!));
      const before = batch.pkts.slice(0, batch.length);
      const dropped: unknown[] = [];
      const removed = batch.retain(
        (p) => keeps[before.indexOf(p)]!,
        (p) => dropped.push(p),
      );
      assert.equal(removed, keeps.filter((k) => !k).length);
      assert.deepEqual(
        batch.pkts.slice(0, batch.length),
        before.filter((_, i) => keeps[i]),
      );
      assert.deepEqual(
        dropped,
        before.filter((_, i) => !keeps[i]),
      );
    }),
  );
  const full = new PacketBatch(2);
  const pool = new PacketPool({ count: 3, frameCapacity: 64 });
  assert.ok(full.add(pool.alloc()!) && full.add(pool.alloc()!));
  assert.ok(!full.add(pool.alloc()!));
});
