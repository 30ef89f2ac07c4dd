import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Simulator } from '../../src/sim/engine.js';
import { SimLink, type LinkConfig } from '../../src/sim/link.js';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';

/** A link whose b end records (arrival time, first payload byte); frames go in at a. */
function rig(
  cfg: LinkConfig,
  seed = 1,
): { sim: Simulator; link: SimLink; pool: PacketPool; got: Array<[number, number]>; send: (len: number, id: number) => void } {
  const sim = new Simulator(seed);
  const pool = new PacketPool({ count: 4096, frameCapacity: 2048 });
  const link = new SimLink(sim, pool, cfg);
  const got: Array<[number, number]> = [];
  link.b.setReceiver((b) => {
    for (let i = 0; i < b.length; i++) {
      const p = b.get(i);
      got.push([sim.now, p.data[p.start + 14]!]);
      p.release();
    }
    b.clear();
  });
  const batch = new PacketBatch(1);
  const send = (len: number, id: number): void => {
    const p = pool.alloc()!;
    const f = new Uint8Array(len);
    f[14] = id & 0xff;
    p.load(f);
    batch.clear();
    batch.add(p);
    link.a.transmit(batch);
  };
  return { sim, link, pool, got, send };
}

test('sim link: latency plus serialisation at the bandwidth; back-to-back frames queue behind each other', () => {
  const r = rig({ latencyNs: 50_000, bandwidthBps: 1e9 });
  for (let i = 0; i < 3; i++) r.send(1000, i);
  r.sim.run();
  // 1000 bytes at 1 Gbit/s: 8 µs each on the wire.
  assert.deepEqual(r.got, [
    [58_000, 0],
    [66_000, 1],
    [74_000, 2],
  ]);
  assert.equal(r.pool.available, r.pool.size);
});

test('sim link: a drop-tail queue of N frames keeps N (the one on the wire included) and drops the rest', () => {
  const r = rig({ bandwidthBps: 1e6, queuePackets: 3 });
  for (let i = 0; i < 10; i++) r.send(100, i);
  r.sim.run();
  assert.deepEqual(
    r.got.map(([, id]) => id),
    [0, 1, 2],
  );
  assert.equal(r.link.a.stats.droppedQueue, 7);
  // Once the queue drains, frames pass again.
  r.send(100, 42);
  r.sim.run();
  assert.equal(r.got.at(-1)![1], 42);
  assert.equal(r.pool.available, r.pool.size);
});

test('sim link: random loss at its rate; Gilbert–Elliott loss comes in bursts of about 1/leaveBad', () => {
  const n = 20000;
  const r = rig({ loss: 0.2 }, 3);
  for (let i = 0; i < n; i++) {
    r.send(64, i);
    r.sim.run();
  }
  const lost = r.link.a.stats.droppedLoss;
  // Binomial(20000, 0.2): sd ≈ 57; 5 sd.
  assert.ok(Math.abs(lost - 4000) < 285, `lost ${lost}`);
  const g = rig({ burst: { enterBad: 0.01, leaveBad: 0.25, lossBad: 1 } }, 5);
  const sent: number[] = [];
  for (let i = 0; i < n; i++) {
    g.send(64, i);
    sent.push(i & 0xff);
    g.sim.run();
  }
  // Runs of losses: compare the delivered ids' sequence against the sent one.
  let runs = 0;
  let lostTotal = 0;
  let inRun = false;
  let j = 0;
  for (let i = 0; i < n; i++) {
    const ok = j < g.got.length && g.got[j]![1] === (i & 0xff);
    if (ok) {
      j++;
      inRun = false;
    } else {
      lostTotal++;
      if (!inRun) runs++;
      inRun = true;
    }
  }
  const mean = lostTotal / runs;
  assert.ok(mean > 3 && mean < 5.5, `mean burst ${mean} (1/leaveBad = 4)`);
  assert.equal(lostTotal, g.link.a.stats.droppedLoss);
});

test('sim link: jitter alone keeps order; reordering lets frames overtake; duplication delivers copies', () => {
  const j = rig({ latencyNs: 10_000, jitterNs: 5_000 }, 9);
  for (let i = 0; i < 200; i++) {
    j.send(64, i);
    j.sim.run(j.sim.now + 1000);
  }
  j.sim.run();
  assert.deepEqual(
    j.got.map(([, id]) => id),
    Array.from({ length: 200 }, (_, i) => i & 0xff),
  );
  assert.ok(new Set(j.got.map(([t], k) => t - k * 1000)).size > 50, 'the delays vary');
  const o = rig({ latencyNs: 10_000, reorder: { probability: 0.2, delayNs: 30_000 } }, 11);
  for (let i = 0; i < 200; i++) {
    o.send(64, i);
    o.sim.run(o.sim.now + 1000);
  }
  o.sim.run();
  const ids = o.got.map(([, id]) => id);
  assert.equal(ids.length, 200);
  assert.notDeepEqual(
    ids,
    [...ids].sort((x, y) => x - y),
    'some frames overtook others',
  );
  assert.ok(o.link.a.stats.reordered > 20 && o.link.a.stats.reordered < 60);
  const d = rig({ duplicate: 0.1 }, 13);
  for (let i = 0; i < 2000; i++) d.send(64, i);
  d.sim.run();
  assert.equal(d.got.length, 2000 + d.link.a.stats.duplicated);
  assert.ok(d.link.a.stats.duplicated > 140 && d.link.a.stats.duplicated < 260);
  assert.equal(d.pool.available, d.pool.size);
});

test('sim link: MTU, and a scheduled fault — frames during the outage are lost, listeners hear down and up', () => {
  const r = rig({ mtu: 1000, latencyNs: 1000 });
  r.send(1014, 1);
  r.send(1015, 2);
  r.sim.run();
  assert.deepEqual(
    r.got.map(([, id]) => id),
    [1],
  );
  assert.equal(r.link.a.stats.droppedMtu, 1);
  const heard: boolean[] = [];
  r.link.b.setLinkListener((up) => heard.push(up));
  r.link.fault(10_000, 20_000);
  r.sim.run(9_500);
  r.send(100, 3); // in flight when the carrier drops
  r.sim.run(15_000);
  r.send(100, 4); // during the outage
  r.sim.run(25_000);
  r.send(100, 5);
  r.sim.run();
  assert.deepEqual(
    r.got.map(([, id]) => id),
    [1, 5],
  );
  assert.deepEqual(heard, [false, true]);
  assert.equal(r.link.a.stats.droppedDown, 2);
  assert.equal(r.pool.available, r.pool.size);
});

test('sim link: the same seed gives the same run; another seed another', () => {
  const trace = (seed: number): string => {
    const r = rig({ latencyNs: 20_000, jitterNs: 3_000, loss: 0.1, reorder: { probability: 0.1, delayNs: 10_000 }, duplicate: 0.05, bandwidthBps: 1e8 }, seed);
    for (let i = 0; i < 300; i++) {
      r.send(64 + (i % 50), i);
      r.sim.run(r.sim.now + 2000);
    }
    r.sim.run();
    return JSON.stringify(r.got);
  };
  assert.equal(trace(77), trace(77));
  assert.notEqual(trace(77), trace(78));
});

test('sim link: bad configurations are refused with the key', () => {
  const sim = new Simulator();
  const pool = new PacketPool({ count: 1 });
  assert.throws(() => new SimLink(sim, pool, { loss: 1.5 }), /link loss 1.5/);
  assert.throws(() => new SimLink(sim, pool, { mtu: 10 }), /link mtu 10/);
  assert.throws(() => new SimLink(sim, pool, { reorder: { probability: 0.1, delayNs: -1 } }), /reorder.delayNs/);
});

test("sim link: two bridges over a simulated underlay — VXLAN pod traffic arrives after the link's latency, books balanced", async () => {
  const { Bridge } = await import('../../src/datapath/bridge.js');
  const { Endpoint } = await import('../../src/datapath/device.js');
  const { compose } = await import('../../src/wire/stack.js');
  const { eth, ip4, udp, zeros } = await import('../peers/catalogue.js');
  const sim = new Simulator(5);
  const pool = new PacketPool({ count: 256, frameCapacity: 2048 });
  const link = new SimLink(sim, pool, { latencyNs: 100_000, bandwidthBps: 1e9 }, undefined, [0x0e0000000001, 0x0e0000000002]);
  const pods = [1, 2].map((i) => {
    const br = new Bridge({ name: `node${i}`, pool, clock: sim.clock });
    br.addTunnel('tun0', i === 1 ? link.a : link.b, { kind: 'vxlan', mode: 'l2', localIp: `192.168.0.${i}` });
    br.addVtep('tun0', { ip: `192.168.0.${3 - i}`, mac: 0x0e0000000000 + 3 - i, vnis: [1] });
    br.mapVni('tun0', 1, 0);
    const pod = new Endpoint(`pod${i}`, pool, 0x020000000000 + i);
    br.addPort('pod', pod);
    return pod;
  });
  const got: number[] = [];
  pods[1]!.onFrame = () => {
    got.push(sim.now);
  };
  pods[0]!.send([compose([eth(0x0800, [], 0x020000000001, 0x020000000002), ip4('10.0.0.1', '10.0.0.2', 17), udp(1, 2), zeros(100)])]);
  assert.equal(got.length, 0, 'nothing before the link delivers');
  sim.run();
  // 142 + 50 bytes of outer frame at 1 Gbit/s, then 100 µs.
  assert.deepEqual(got, [100_000 + (142 + 50) * 8]);
  pods[1]!.take();
  assert.equal(pool.available, pool.size);
});

test('sim link: a frame on the wire when the link goes down is lost even if the link is back before it would arrive; an end with nothing plugged in counts its own drops', () => {
  const r = rig({ latencyNs: 1_000_000 });
  r.send(100, 1);
  r.link.fault(100_000, 200_000); // a 100 µs outage while the frame is in flight
  r.sim.run(300_000);
  r.send(100, 2); // after the outage: delivered
  r.sim.run(5_000_000);
  assert.deepEqual(
    r.got.map(([, id]) => id),
    [2],
  );
  assert.equal(r.link.a.stats.droppedDown, 1);
  assert.equal(r.link.a.stats.delivered, 1);
  r.link.a.setReceiver(null);
  const c = r.pool.alloc()!;
  c.load(new Uint8Array(60));
  const b = new PacketBatch(1);
  b.add(c);
  r.link.b.transmit(b);
  r.sim.run(10_000_000);
  assert.equal(r.link.b.stats.droppedNoRx, 1);
  assert.equal(r.link.b.stats.droppedDown, 0);
  assert.equal(r.pool.available, r.pool.size);
});

test('sim rng: int(n) refuses n outside 1-2^32 instead of looping for ever', () => {
  const sim = new Simulator(1);
  for (const n of [0, -1, 1.5, 2 ** 32 + 1, NaN]) assert.throws(() => sim.rng.int(n), RangeError, String(n));
  assert.equal(sim.rng.int(1), 0);
});
