/**
 * Simulator benchmarks (issue 6, in progress): events per second of the engine alone, and of frames
 * crossing simulated links (each frame is one arrival event).
 */
import { PacketBatch, PacketPool } from '../src/packet/buf.js';
import { Simulator, type SimTask } from '../src/sim/engine.js';
import { SimLink } from '../src/sim/link.js';
import type { Bench, BenchEntry } from './harness.js';

/** A chain of self-rescheduling tasks with random delays: the heap holds 1,000 pending events. */
function engineBench(name: string): Bench {
  const sim = new Simulator(3);
  const rng = sim.rng;
  const task: SimTask = { run(a: number): void { sim.after(1 + rng.int(1000), task, a); } };
  for (let i = 0; i < 1000; i++) sim.schedule(rng.int(1000), task, i);
  return {
    name,
    what: 'engine alone: pop an event, schedule the next (random delay), 1,000 events pending',
    unit: 'events/s',
    run(n) {
      const before = sim.events;
      for (let i = 0; i < n; i++) sim.run(sim.now + 1000);
      return { ops: sim.events - before, sink: sim.now };
    },
  };
}

/** 64-byte frames ping-ponged over a link with latency and bandwidth: each arrival is one event. */
function linkBench(name: string): Bench {
  const sim = new Simulator(4);
  const pool = new PacketPool({ count: 512, frameCapacity: 2048 });
  const link = new SimLink(sim, pool, { latencyNs: 10_000, bandwidthBps: 1e10 });
  const batch = new PacketBatch(1);
  // Each end sends straight back what it receives: 256 frames keep bouncing.
  for (const [rx, tx] of [[link.a, link.b], [link.b, link.a]] as const) {
    rx.setReceiver((b) => {
      const p = b.get(0);
      b.clear();
      batch.clear();
      batch.add(p);
      tx.transmit(batch);
    });
  }
  for (let i = 0; i < 256; i++) {
    const p = pool.alloc()!;
    p.load(new Uint8Array(64));
    batch.clear();
    batch.add(p);
    link.a.transmit(batch);
  }
  return {
    name,
    what: 'simulated link: 256 frames bouncing between two ends (latency + serialisation), one event per arrival',
    unit: 'events/s',
    run(n) {
      const before = sim.events;
      for (let i = 0; i < n; i++) sim.run(sim.now + 10_000);
      return { ops: sim.events - before, sink: sim.now };
    },
  };
}

export function simBenches(): BenchEntry[] {
  return [
    { name: 'sim.engine.events', make: () => engineBench('sim.engine.events') },
    { name: 'sim.link.events', make: () => linkBench('sim.link.events') },
  ];
}
