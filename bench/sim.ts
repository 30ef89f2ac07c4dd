/**
 * Simulator benchmarks (issue 6): events per second of the engine alone, of frames crossing simulated
 * links (each frame is one arrival event), of a small cluster's packets through the whole datapath, and
 * a 1,000-node cluster built and simulated end to end once (wall time, events/s, peak memory).
 *
 * Packet events: while UDP traffic runs, the simulator's events are of two kinds, and both are counted —
 * a departure (a pod's flow generator builds a datagram and sends it: pod → bridge → gateway (route) →
 * tunnel (VXLAN encap) → uplink → fabric link queue, all synchronous within the event), and an arrival
 * (the frame reaches the far end of the fabric link: uplink → bridge → tunnel (decap) → gateway (route)
 * → bridge → pod, whose sink books it). So one datagram delivered is two events.
 */
import { PacketBatch, PacketPool } from '../src/packet/buf.js';
import { Cluster } from '../src/sim/cluster.js';
import { Simulator, type SimTask } from '../src/sim/engine.js';
import { SimLink } from '../src/sim/link.js';
import { parseScenario } from '../src/scenario/scenario.js';
import { bigClusterJson, type BigClusterSpec } from './cluster-scenarios.js';
import type { Bench, BenchEntry, OnceBench, OnceFigure } from './harness.js';

/** A chain of self-rescheduling tasks with random delays: the heap holds 1,000 pending events. */
function engineBench(name: string): Bench {
  const sim = new Simulator(3);
  const rng = sim.rng;
  const task: SimTask = {
    run(a: number): void {
      sim.after(1 + rng.int(1000), task, a);
    },
  };
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
  for (const [rx, tx] of [
    [link.a, link.b],
    [link.b, link.a],
  ] as const) {
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

/**
 * Frames handed from one device to the next anywhere in the cluster: received by a bridge port from a
 * pod or from the underlay, put on an underlay path, or received by a pod. A datagram from a pod to a pod
 * on another node makes four (pod → bridge, bridge → path, path → bridge, bridge → pod), as a packet
 * crossing three links makes a receive event on each in ns-3 (plus its transmit-complete events).
 */
function packetEvents(c: Cluster): number {
  let n = c.fabric.stats.frames;
  for (const node of c.nodes.values()) {
    // Not the gateway port: a routed frame re-enters the bridge through it, inside the node.
    for (const p of node.bridge.ports) if (p !== null && p.kind !== 'gateway') n += p.counters.rxPackets;
    for (const pod of node.pods.values()) n += pod.host.counters.rxFrames;
  }
  return n;
}

/**
 * A small routed VXLAN cluster under steady UDP load: 4 nodes × 4 pods; every pod sends one flow to a pod
 * on the next node (16 flows, 100,000 datagrams/s each, sizes cycling 64/576/1,400 bytes of IP) over a
 * 10 Gbit/s, 50 µs underlay. A round advances simulated time (`sim.run`, as `Cluster.run` does in slices,
 * with the bridges' periodic `tick`); `Cluster.run` itself runs a scenario once to its end, which does not
 * fit rounds of a chosen size.
 */
function clusterBench(name: string, measure: 'heap' | 'packet'): Bench {
  const nodes = 4,
    pods = 4;
  const y: string[] = [
    'name: bench-small-cluster',
    'seed: 3',
    'duration: 10s',
    'underlay: { mtu: 1500, latency: 50us, bandwidth: 10Gbit }',
    'tunnel: { type: vxlan, mode: routed }',
    'nodes:',
  ];
  for (let i = 0; i < nodes; i++) {
    y.push(`  - name: n${i}`, `    podCIDR: 10.244.${i}.0/24`, '    pods:');
    for (let j = 0; j < pods; j++) y.push(`      - name: p${j}`);
  }
  y.push('traffic:');
  for (let i = 0; i < nodes; i++) {
    for (let j = 0; j < pods; j++)
      y.push(`  - { type: udp, from: n${i}/p${j}, to: n${(i + 1) % nodes}/p${(j + 1) % pods}, count: 1000000000, interval: 10us, sizes: [64, 576, 1400] }`);
  }
  const c = new Cluster(parseScenario(y.join('\n') + '\n', 'bench-small-cluster.yaml'), { capture: false });
  const sim = c.sim;
  const bridges = [...c.nodes.values()].map((n) => n.bridge);
  /** 10 µs of simulated time: 16 departures and about 16 arrivals. */
  const step = 10_000;
  return {
    name,
    what:
      measure === 'heap'
        ? `${nodes} nodes × ${pods} pods, 16 UDP flows pod → pod on the next node over VXLAN, full datapath; event = one the simulator's heap runs: a datagram's departure (pod → bridge → route → encap → path) or its arrival (path → decap → route → pod)`
        : 'the same run counted in packet events: frames handed from one device to the next (pod → bridge, bridge → underlay path, path → bridge, bridge → pod: four per datagram)',
    unit: 'events/s',
    ...(measure === 'packet' ? { target: 2_000_000 } : {}),
    run(n) {
      const before = measure === 'heap' ? sim.events : packetEvents(c);
      sim.run(sim.now + n * step);
      for (const b of bridges) b.tick();
      return { ops: (measure === 'heap' ? sim.events : packetEvents(c)) - before, sink: sim.now };
    },
  };
}

const MiB = 1024 * 1024;

/**
 * The scale goal, run once: 1,000 nodes × 10 pods (routed VXLAN: each node has 999 VTEPs and
 * routes), 100,000 UDP flows between random pods on different nodes, 8 datagrams each 1 ms apart, started
 * at random within the first second; 2 s simulated. Build = scenario generated (as JSON, the front door a
 * generated experiment takes: YAML's parser alone took most of the build) and loaded + `new Cluster`;
 * run = `Cluster.run` with progress (RSS sampled at each of its 100 slices); report = `Cluster.report`.
 */
function bigClusterBench(name: string, spec: BigClusterSpec): OnceBench {
  return {
    name,
    once: true,
    run(): OnceFigure[] {
      let peak = process.memoryUsage().rss;
      const say = (s: string): void => {
        process.stderr.write(`  ${name}: ${s}\n`);
      };
      const t0 = performance.now();
      const scenario = parseScenario(bigClusterJson(spec), `bench-${spec.nodes}x${spec.podsPerNode}.json`);
      const c = new Cluster(scenario, { capture: false });
      const t1 = performance.now();
      peak = Math.max(peak, process.memoryUsage().rss);
      say(`built in ${((t1 - t0) / 1000).toFixed(1)} s, RSS ${(peak / MiB).toFixed(0)} MiB`);
      c.run(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      });
      const t2 = performance.now();
      const events = c.sim.events;
      say(`ran ${events} events in ${((t2 - t1) / 1000).toFixed(1)} s`);
      const r = c.report();
      const t3 = performance.now();
      peak = Math.max(peak, process.memoryUsage().rss, process.resourceUsage().maxRSS * 1024);
      let planned = 0,
        delivered = 0;
      for (const f of r.flows) {
        planned += f.planned;
        delivered += f.delivered;
      }
      const what = `${spec.nodes} nodes × ${spec.podsPerNode} pods, ${spec.flows} UDP flows × ${spec.packets} datagrams, ${spec.durationMs} ms simulated`;
      return [
        {
          name: `${name}.build`,
          what: `build: scenario written as JSON (${spec.flows} flows) and loaded by parseScenario, cluster built (bridges, ${spec.nodes - 1} VTEPs and routes per node, pods, flows)`,
          value: (t1 - t0) / 1000,
          unit: 's',
        },
        { name: `${name}.run`, what: `run: ${what}`, value: (t2 - t1) / 1000, unit: 's' },
        { name: `${name}.report`, what: 'report: per-flow, per-node and per-path results', value: (t3 - t2) / 1000, unit: 's' },
        { name: `${name}.wall`, what: 'wall time end to end: build + run + report', value: (t3 - t0) / 1000, unit: 's', target: 30, atMost: true },
        {
          name: `${name}.events`,
          what: "simulator events in the run: a departure and an arrival per datagram, each pod's ARP retry timer (one per pod) and the start-up announcement",
          value: events,
          unit: 'events',
        },
        {
          name: `${name}.events-per-s`,
          what: 'events / run wall time (a cold, scattered working set: each path carries few packets)',
          value: events / ((t2 - t1) / 1000),
          unit: 'events/s',
        },
        {
          name: `${name}.peak-rss`,
          what: 'peak resident memory: max of RSS sampled during build and run and the process maxRSS',
          value: peak / MiB,
          unit: 'MiB',
          target: 2048,
          atMost: true,
        },
        {
          name: `${name}.delivered`,
          what: `datagrams delivered of ${planned} planned (no loss configured: a check that the run did what it should)`,
          value: (100 * delivered) / Math.max(1, planned),
          unit: '%',
          target: 99,
        },
      ];
    },
  };
}

export function simBenches(): BenchEntry[] {
  const big: BigClusterSpec = { nodes: 1000, podsPerNode: 10, flows: 100_000, packets: 8, intervalUs: 1000, startSpreadMs: 1000, durationMs: 2000, seed: 1 };
  return [
    { name: 'sim.engine.events', make: () => engineBench('sim.engine.events') },
    { name: 'sim.link.events', make: () => linkBench('sim.link.events') },
    { name: 'sim.cluster.events', make: () => clusterBench('sim.cluster.events', 'heap') },
    { name: 'sim.cluster.packet-events', make: () => clusterBench('sim.cluster.packet-events', 'packet') },
    {
      name: 'sim.cluster.1000x10',
      figures: ['build', 'run', 'report', 'wall', 'events', 'events-per-s', 'peak-rss', 'delivered'].map((x) => `sim.cluster.1000x10.${x}`),
      make: () => bigClusterBench('sim.cluster.1000x10', big),
    },
  ];
}
