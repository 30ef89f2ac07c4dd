import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Rng, Simulator, type SimTask } from '../../src/sim/engine.js';

test('sim engine: events run in time order, ties in the order they were scheduled, also when scheduled while running (model)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 300 }), (spec) => {
      const sim = new Simulator(1);
      const ran: Array<[number, number]> = [];
      // Each event may schedule a follow-up `spawn` ns later: the model keeps (time, order of scheduling).
      const model: Array<{ t: number; seq: number; id: number }> = [];
      let seq = 0;
      const task: SimTask = {
        run(id: number): void {
          ran.push([sim.now, id]);
          const [, spawn] = spec[id % spec.length]!;
          if (id < spec.length && spawn > 0) {
            const child = id + spec.length;
            sim.after(spawn, task, child);
            model.push({ t: sim.now + spawn, seq: seq++, id: child });
          }
        },
      };
      spec.forEach(([t], id) => {
        sim.schedule(t, task, id);
        model.push({ t, seq: seq++, id });
      });
      sim.run();
      // Replay the model: repeatedly take the smallest (t, seq) among scheduled events.
      const want = [...model].sort((x, y) => x.t - y.t || x.seq - y.seq).map((e) => [e.t, e.id]);
      assert.deepEqual(ran, want);
      assert.equal(sim.pending, 0);
    }),
    { numRuns: 300 },
  );
});

test('sim engine: run(until) stops the clock there; the past cannot be scheduled', () => {
  const sim = new Simulator();
  const seen: number[] = [];
  const t: SimTask = {
    run: (a) => {
      seen.push(a);
    },
  };
  sim.schedule(10, t, 1);
  sim.schedule(30, t, 2);
  assert.equal(sim.run(20), 1);
  assert.equal(sim.now, 20);
  assert.deepEqual(seen, [1]);
  assert.throws(() => sim.schedule(5, t), /before now/);
  assert.equal(sim.run(), 1);
  assert.equal(sim.now, 30);
  assert.equal(sim.events, 2);
});

test('sim rng: one seed, one stream; seeds differ; uniform and normal within statistical bounds', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const xs = Array.from({ length: 1000 }, () => a.u32());
  assert.deepEqual(
    xs,
    Array.from({ length: 1000 }, () => b.u32()),
  );
  assert.notDeepEqual(
    xs,
    Array.from({ length: 1000 }, () => c.u32()),
  );
  const r = new Rng(7);
  const bins = new Array<number>(16).fill(0);
  for (let i = 0; i < 64000; i++) {
    const f = r.float();
    assert.ok(f >= 0 && f < 1);
    bins[r.int(16)]!++;
  }
  // Chi-square with 15 degrees of freedom: far below 50 for a uniform generator (p < 1e-5 otherwise).
  const chi = bins.reduce((s, x) => s + (x - 4000) ** 2 / 4000, 0);
  assert.ok(chi < 50, `chi-square ${chi}`);
  let sum = 0;
  let sq = 0;
  const n = 40000;
  for (let i = 0; i < n; i++) {
    const z = r.normal();
    sum += z;
    sq += z * z;
  }
  assert.ok(Math.abs(sum / n) < 0.03, `mean ${sum / n}`);
  assert.ok(Math.abs(sq / n - 1) < 0.04, `variance ${sq / n}`);
  assert.throws(() => new Rng(1.5), /not an integer/);
});
