/**
 * The address tables under the VTEP, route and SA lookups: with deletion (peers leave on a reload), they
 * answer exactly as a plain Map does, whatever the order of sets and deletes and however keys collide.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Ipv6Table, U32Map } from '../../src/packet/addrtable.js';

type Op = { kind: 'set'; key: number; value: number } | { kind: 'delete'; key: number };

test('U32Map (property): any sequence of set and delete agrees with a Map, sizes included', () => {
  // Few distinct keys, so sets and deletes hit the same keys and probe chains wrap around.
  const key = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(0xffffffff, 0x80000000, 0x0af40100, 0x0af40200));
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), key, value: fc.nat(1000) }),
    fc.record({ kind: fc.constant('delete' as const), key }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const m = new U32Map(2);
      const ref = new Map<number, number>();
      for (const o of ops) {
        const k = o.key | 0;
        if (o.kind === 'set') {
          m.set(o.key, o.value);
          ref.set(k, o.value);
        } else assert.equal(m.delete(o.key), ref.delete(k));
        assert.equal(m.size, ref.size);
      }
      for (let k = -1; k <= 41; k++) assert.equal(m.get(k), ref.get(k | 0) ?? -1);
      for (const k of [0xffffffff, 0x80000000, 0x0af40100, 0x0af40200]) assert.equal(m.get(k), ref.get(k | 0) ?? -1);
    }),
    { numRuns: 300 },
  );
});

test('Ipv6Table: delete unlinks one entry of a chain and leaves the others found', () => {
  const t = new Ipv6Table<number>();
  const addr = (n: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, i) => (i === 15 ? n : i === 0 ? 0xfd : 0));
  for (let n = 0; n < 50; n++) t.set(addr(n), n);
  for (let n = 0; n < 50; n += 3) assert.equal(t.delete(addr(n)), true);
  assert.equal(t.delete(addr(0)), false);
  for (let n = 0; n < 50; n++) assert.equal(t.get(addr(n)), n % 3 === 0 ? undefined : n);
  assert.equal(t.size, 50 - 17);
  assert.equal([...t.entries()].length, t.size);
  t.set(addr(3), 33);
  assert.equal(t.get(addr(3)), 33);
});
