/**
 * The underlay fabric: frames go to the node whose uplink MAC they name, over that pair's own path
 * (its MTU, latency, state); unknown and self-addressed frames are counted, not delivered; a node's
 * uplink going down stops both directions and tells what is plugged in.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';
import { Simulator } from '../../src/sim/engine.js';
import { Fabric } from '../../src/sim/fabric.js';
import { wrMac } from '../../src/wire/bytes.js';

function setup(): { sim: Simulator; pool: PacketPool; f: Fabric; got: Map<string, number[]> } {
  const sim = new Simulator(1);
  const pool = new PacketPool({ count: 64, frameCapacity: 2048 });
  const f = new Fabric(sim, pool, { latencyNs: 1000, mtu: 1500 }, 1500);
  const got = new Map<string, number[]>();
  for (const [i, n] of ['a', 'b', 'c'].entries()) {
    const u = f.addNode(n, 0x020000000010 + i);
    got.set(n, []);
    u.setReceiver((batch) => {
      for (let k = 0; k < batch.length; k++) {
        const p = batch.get(k);
        got.get(n)!.push(p.length);
        p.release();
      }
      batch.clear();
    });
  }
  return { sim, pool, f, got };
}

function send(f: Fabric, pool: PacketPool, from: number, dstMac: number, len: number): void {
  const p = pool.alloc()!;
  p.load(new Uint8Array(len));
  wrMac(p.data, p.start, dstMac);
  const b = new PacketBatch(1);
  b.add(p);
  f.uplinks[from]!.transmit(b);
}

test('fabric: each frame reaches the node its MAC names, after the path latency; unknown and self-addressed are counted', () => {
  const { sim, pool, f, got } = setup();
  send(f, pool, 0, 0x020000000011, 100);
  send(f, pool, 0, 0x020000000012, 200);
  send(f, pool, 1, 0x020000000010, 300);
  send(f, pool, 0, 0xffffffffffff, 60);
  send(f, pool, 2, 0x020000000012, 60);
  sim.run(999);
  assert.deepEqual(
    [...got.values()].map((x) => x.length),
    [0, 0, 0],
    'nothing before the latency',
  );
  sim.run(2000);
  assert.deepEqual(Object.fromEntries(got), { a: [300], b: [100], c: [200] });
  assert.equal(f.stats.unknownDst, 1);
  assert.equal(f.stats.toSelf, 1);
  assert.equal(f.allPaths().length, 2, 'paths are made on first use (a-b, a-c)');
  assert.equal(pool.available, pool.size);
});

test('fabric: a pair override has its own MTU; a path or a node taken down drops, and comes back', () => {
  const { sim, pool, f, got } = setup();
  f.override('a', 'c', { mtu: 1000 });
  f.setPathUp('a', 'b', false);
  let carrier: boolean[] = [];
  f.uplinks[2]!.setLinkListener((up) => carrier.push(up));
  send(f, pool, 0, 0x020000000012, 1014);
  send(f, pool, 0, 0x020000000012, 1015);
  send(f, pool, 0, 0x020000000011, 100);
  sim.run(10_000);
  assert.deepEqual(got.get('c'), [1014], 'the 1001-byte IP packet exceeds the a-c MTU');
  assert.deepEqual(got.get('b'), []);
  assert.equal(f.pathStats('a', 'c')![0].droppedMtu, 1);
  assert.equal(f.pathStats('a', 'b')![0].droppedDown, 1, 'a path taken down before it was made is made down');
  assert.throws(() => f.override('a', 'c', { mtu: 900 }), /already in use/);
  f.setPathUp('a', 'b', true);
  f.setNodeUp('c', false);
  send(f, pool, 0, 0x020000000011, 100);
  send(f, pool, 0, 0x020000000012, 100);
  send(f, pool, 2, 0x020000000010, 100);
  sim.run(20_000);
  assert.deepEqual(got.get('b'), [100]);
  assert.deepEqual(got.get('c'), [1014], 'nothing reaches a node whose uplink is down');
  assert.deepEqual(got.get('a'), [], 'nor leaves it');
  assert.equal(f.stats.uplinkDown, 2);
  f.setNodeUp('c', true);
  assert.deepEqual(carrier, [false, true]);
  carrier = [];
  assert.equal(pool.available, pool.size);
});

test("fabric: paths share the defaults' configuration object; each end carries its node's uplink MAC; an override is its own", () => {
  const { sim, pool, f } = setup();
  f.override('b', 'c', { mtu: 1400 });
  send(f, pool, 0, 0x020000000011, 100);
  send(f, pool, 0, 0x020000000012, 100);
  send(f, pool, 1, 0x020000000012, 100);
  sim.run(10_000);
  const paths = f.allPaths();
  const ab = paths.find((p) => p.a === 'a' && p.b === 'b')!.link;
  const ac = paths.find((p) => p.a === 'a' && p.b === 'c')!.link;
  const bc = paths.find((p) => p.a === 'b' && p.b === 'c')!.link;
  // One object: a copy per path gave each its own hidden class, and per-frame reads of it went megamorphic.
  assert.equal(ab.cfg, f.defaults);
  assert.equal(ac.cfg, f.defaults);
  assert.notEqual(bc.cfg, f.defaults);
  assert.equal(bc.cfg.mtu, 1400);
  assert.equal(bc.cfg.latencyNs, 1000, 'an override keeps the defaults it does not name');
  assert.deepEqual(
    [ab, ac, bc].map((l) => [l.a.mac, l.b.mac]),
    [
      [0x020000000010, 0x020000000011],
      [0x020000000010, 0x020000000012],
      [0x020000000011, 0x020000000012],
    ],
  );
  assert.equal(pool.available, pool.size);
});
