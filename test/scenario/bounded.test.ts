/**
 * Bounded work for any scenario (issue 18): each defect the issue lists, with a loose time and memory bound
 * (finished or refused in seconds, not minutes), and a property over generated scenarios of adversarial
 * sizes run through `seine run`'s entry function in process: every one runs within the limits it was
 * checked against or is refused with exit status 2 and a message naming the file and the key.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { CliError, runCommand, type RunIo } from '../../src/cli/run.js';
import { Cluster, formatReport, type Report } from '../../src/sim/cluster.js';
import { LATENCY_SAMPLES, LatencySample, percentile } from '../../src/sim/host.js';
import { estimateCost, loadScenario, parseScenario, SCENARIO_LIMITS, ScenarioError, type Scenario } from '../../src/scenario/scenario.js';
import { scenarioError } from './refused.js';

const MiB = 1024 * 1024;

/**
 * How far past its quiet-machine bound a load may run. The bounds catch what the issue found — walks that
 * ran for minutes or never ended (quadratic in aliases, pods or flows) — not speed, which is the bench's;
 * on two cores shared with other work, linear loads took up to 3× their quiet time (200k aliases: 17 s).
 */
const SLACK = 6;

/** Runs `fn`, asserting it took at most `seconds` × SLACK and grew the resident set by at most `mib` MiB. */
function bounded<T>(what: string, seconds: number, mib: number, fn: () => T): T {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const out = fn();
  const s = (performance.now() - t0) / 1000;
  const grew = (process.memoryUsage().rss - rss0) / MiB;
  assert.ok(s < seconds * SLACK, `${what}: took ${s.toFixed(1)} s (bound ${seconds} s × ${SLACK} for a busy machine)`);
  assert.ok(grew < mib, `${what}: RSS grew ${grew.toFixed(0)} MiB (bound ${mib} MiB)`);
  return out;
}

function refused(text: string, file = 'big.yaml'): ScenarioError {
  return scenarioError(text, file);
}

const HEAD = ['name: t', 'underlay: { latency: 50us }', 'tunnel: { type: vxlan, mode: routed }'];
const TWO_NODES = ['nodes:', '  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }] }', '  - { name: n2, podCIDR: 10.244.2.0/24, pods: [{ name: b }] }'];

function yaml(lines: string[]): string {
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------
// The defects

test('defect 2: aliases are resolved once — 20,000 aliases to one flow load in seconds, 200,000 are refused (too many flows), an alias bomb is refused by what it expands to', () => {
  const flat = (n: number): string =>
    yaml([...HEAD, ...TWO_NODES, 'traffic:', '  - &t { type: udp, from: n1/a, to: n2/b, count: 1 }', ...Array.from({ length: n - 1 }, () => '  - *t')]);
  const s = bounded('20k aliases', 10, 1024, () => parseScenario(flat(20_000), 'aliases.yaml'));
  assert.equal(s.traffic.length, 20_000);
  assert.equal(s.traffic[19_999]!.name, 'flow-20000');
  const e = bounded('200k aliases', 10, 1024, () => refused(flat(200_000), 'aliases.yaml'));
  assert.match(e.message, /^aliases\.yaml:\d+:\d+: traffic: expected at most 100,000 flows, got 200,000 flows$/);
  // One flow with 50,000 sizes, used 200 times: 10 million nodes to read.
  const sizes = Array.from({ length: 50_000 }, () => '64').join(', ');
  const bomb = yaml([
    ...HEAD,
    ...TWO_NODES,
    'traffic:',
    `  - &t { type: udp, from: n1/a, to: n2/b, count: 1, sizes: [${sizes}] }`,
    ...Array.from({ length: 199 }, () => '  - *t'),
  ]);
  const b = bounded('alias bomb', 30, 1024, () => refused(bomb, 'bomb.yaml'));
  assert.match(b.message, /^bomb\.yaml:\d+:\d+: traffic\[\d+\]\.sizes: expected a file that expands to at most 4,000,000 YAML nodes/);
});

test('defect 3: pod names are checked in a set — 20,000 pods on a node load in seconds; 30,000 are refused by the pod limit at once', () => {
  const pods = (n: number): string =>
    yaml([...HEAD, 'nodes:', '  - name: n1', '    podCIDR: 10.244.0.0/16', '    pods:', ...Array.from({ length: n }, (_, i) => `      - { name: p${i} }`)]);
  const s = bounded('20k pods', 10, 1024, () => parseScenario(pods(20_000), 'pods.yaml'));
  assert.equal(s.nodes[0]!.pods.length, 20_000);
  const e = bounded('30k pods', 5, 1024, () => refused(pods(30_000), 'pods.yaml'));
  assert.match(e.message, /^pods\.yaml:8:7: nodes\[0\]\.pods: expected at most 20,000 pods in all, got 30,000 by node n1$/);
  // The duplicate is still found (the set says what some() said).
  const dup = refused(yaml([...HEAD, 'nodes:', '  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }, { name: b }, { name: a }] }']));
  assert.match(dup.message, /nodes\[0\]\.pods\[2\]\.name: expected a pod name unique on node n1, got "a" \(a second time\)/);
});

test('defect 4: no spreads over user-sized arrays — a flow of 200,000 sizes builds and runs, a report of 150,000 flows formats', () => {
  const sizes = Array.from({ length: 200_000 }, (_, i) => String(64 + (i % 1000))).join(', ');
  const s = parseScenario(
    yaml([...HEAD, 'duration: 1s', ...TWO_NODES, 'traffic:', `  - { type: udp, from: n1/a, to: n2/b, count: 3, sizes: [${sizes}] }`]),
    'sizes.yaml',
  );
  const r = bounded('200k sizes', 20, 1024, () => {
    const c = new Cluster(s, { capture: false });
    c.run();
    return c.report();
  });
  assert.equal(r.flows[0]!.delivered, 3);
  const flow = r.flows[0]!;
  const big: Report = { ...r, flows: Array.from({ length: 150_000 }, (_, i) => ({ ...flow, name: `f${i}` })) };
  const text = bounded('150k-flow report', 20, 1024, () => formatReport(big));
  assert.ok(text.includes('f149999'));
});

test('defect 5: runs nothing can finish are refused before they start, with the numbers; TCP bytes agree with the sender', () => {
  const flow = (f: string, dur = '10s'): string => yaml([...HEAD, `duration: ${dur}`, ...TWO_NODES, 'traffic:', `  - ${f}`]);
  const a = refused(flow('{ name: flood, type: udp, from: n1/a, to: n2/b, count: 1000000000, interval: 1ns }'), 'flood.yaml');
  assert.equal(
    a.message,
    'flood.yaml:9:5: traffic[0]: expected traffic of at most 20,000,000 packets in all (the run\'s estimate, before it starts), got 1,000,000,000 packets, the most from this flow, "flood" (1,000,000,000 packets)',
  );
  const b = refused(flow('{ name: p, type: ping, from: n1/a, to: n2/b, count: 1000000000, interval: 1ms }', '8640000s'), 'days.yaml');
  assert.match(b.message, /^days\.yaml:9:5: traffic\[0\]: expected traffic of at most 20,000,000 packets in all .*, got 2,000,000,000 packets/);
  // The same ping for as long as the scenario lasts is what fits: 10 s at 1 ms.
  assert.equal(estimateCost(parseScenario(flow('{ type: ping, from: n1/a, to: n2/b, count: 1000000000, interval: 1ms }'), 'x.yaml')).packets, 2 * 10_001);
  const c = refused(flow('{ type: tcp, from: n1/a, to: n2/b, bytes: 1000000000000 }'), 'tcp.yaml');
  assert.equal(c.message, "tcp.yaml:9:47: traffic[0].bytes: expected a byte count in 1-2147483647 (the simulated sender's limit), got 1000000000000");
  // The largest the schema takes, the sender takes too.
  const s = parseScenario(flow(`{ type: tcp, from: n1/a, to: n2/b, bytes: ${SCENARIO_LIMITS.tcpBytes} }`, '1ms'), 'tcp.yaml');
  const cl = new Cluster(s, { capture: false });
  cl.run();
  assert.equal(cl.report().flows[0]!.planned, SCENARIO_LIMITS.tcpBytes);
});

test('defect 5: latencies are kept in bounded memory — exact percentiles up to LATENCY_SAMPLES, then a seeded uniform sample', () => {
  const exact = new LatencySample(1);
  const values: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const x = (i * 7919) % 100_003;
    exact.add(x);
    values.push(x);
  }
  values.sort((x, y) => x - y);
  assert.equal(exact.exact, true);
  assert.equal(percentile(exact.sorted(), 50), percentile(values, 50));
  assert.equal(percentile(exact.sorted(), 99), percentile(values, 99));
  const big = (seed: number): LatencySample => {
    const s = new LatencySample(seed);
    for (let i = 0; i < 2_000_000; i++) s.add(i % 1000);
    return s;
  };
  const s1 = bounded('2M latencies', 10, 256, () => big(1));
  assert.equal(s1.values.length, LATENCY_SAMPLES, 'memory stays at the sample size');
  assert.equal(s1.count, 2_000_000);
  assert.deepEqual([s1.min, s1.max, s1.exact], [0, 999, false]);
  const p50 = percentile(s1.sorted(), 50);
  const p99 = percentile(s1.sorted(), 99);
  assert.ok(Math.abs(p50 - 500) <= 20 && Math.abs(p99 - 990) <= 5, `uniform sample: p50 ${p50}, p99 ${p99}`);
  assert.deepEqual(big(1).values, s1.values, 'one seed, one sample');
});

test('defect 6: clusters above the node limit are refused before anything is built (the VTEP mesh is quadratic)', () => {
  const nodes = Array.from(
    { length: 5000 },
    (_, i) =>
      `  - { name: n${i}, podCIDR: 10.${i >> 8}.${i & 255}.0/24, underlayIp: 172.${18 + ((i + 2) >> 16)}.${((i + 2) >> 8) & 255}.${(i + 2) & 255}, pods: [{ name: p }] }`,
  );
  const e = bounded('5000 nodes', 10, 1024, () => refused(yaml([...HEAD, 'nodes:', ...nodes]), 'nodes.yaml'));
  assert.match(
    e.message,
    /^nodes\.yaml:5:3: nodes: expected at most 1,000 nodes \(each has a VTEP for every other: the mesh grows with the square of the nodes\), got 5,000 nodes$/,
  );
});

test('defect 7: a FIFO, a device or a directory as the scenario or as replay: is refused before it is read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-bounded-'));
  try {
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    for (const [path, what] of [
      [fifo, 'a FIFO (named pipe)'],
      ['/dev/zero', 'a character device'],
      [dir, 'a directory'],
    ] as const) {
      const e = bounded(`scenario ${path}`, 5, 256, () => {
        try {
          loadScenario(path);
        } catch (x: unknown) {
          return x;
        }
        return null;
      });
      assert.ok(e instanceof ScenarioError);
      assert.equal(e.message, `${path}:1:1: expected a readable scenario file, got ${what}`);
      const sc = join(dir, 'replay.yaml');
      writeFileSync(sc, yaml([...HEAD, ...TWO_NODES, 'traffic:', `  - { type: udp, from: n1/a, to: n2/b, replay: ${JSON.stringify(path)} }`]));
      const r = bounded(`replay ${path}`, 5, 256, () => {
        try {
          loadScenario(sc);
        } catch (x: unknown) {
          return x;
        }
        return null;
      });
      assert.ok(r instanceof ScenarioError);
      assert.equal(r.message, `${sc}:8:48: traffic[0].replay: expected a readable pcap or pcapng file, got ${JSON.stringify(path)} (${what})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('defect 8: a 10 MB value is quoted as a bounded excerpt', () => {
  const e = refused(yaml([`name: ${'x'.repeat(10 * MiB)}`, 'seed: oops', 'nodes: [{ name: n1, podCIDR: 10.244.1.0/24 }]']), 'long.yaml');
  assert.ok(e.message.length < 400, `${e.message.length} characters`);
  const k = refused(yaml(['name: t', `? ${'k'.repeat(10 * MiB)}`, ': 1']), 'key.yaml');
  assert.ok(k.message.length < 1000, `${k.message.length} characters`);
  assert.match(k.message, /^key\.yaml:2:3: k{120}… \(10,485,760 characters\): expected one of the keys/);
  const v = refused(yaml(['name: t', `seed: "${'9'.repeat(10 * MiB)}"`, 'nodes: [{ name: n1, podCIDR: 10.244.1.0/24 }]']), 'value.yaml');
  assert.match(v.message, /^value\.yaml:2:7: seed: expected an integer in 0-4294967295, got "9{120}… \(10,485,760 characters\)"$/);
});

// ---------------------------------------------------------------------------------------------------
// The property

/** A generated scenario: sizes from what labs use up to what breaks laptops. */
interface Gen {
  nodes: number;
  podsPerNode: number;
  flows: number;
  aliases: boolean;
  type: 'ping' | 'udp' | 'tcp';
  count: number;
  interval: string;
  duration: string;
  bytes: number;
  sizes: number;
}

const genArb: fc.Arbitrary<Gen> = fc.record({
  nodes: fc.constantFrom(1, 2, 3, 1001, 5000),
  podsPerNode: fc.constantFrom(1, 2, 25_000),
  flows: fc.constantFrom(0, 1, 3, 100_001),
  aliases: fc.boolean(),
  type: fc.constantFrom('ping', 'udp', 'tcp'),
  count: fc.constantFrom(1, 5, 1_000_000_000),
  interval: fc.constantFrom('1ns', '1ms', '1s'),
  duration: fc.constantFrom('100ms', '1s', '8640000s'),
  bytes: fc.constantFrom(1000, 1e12),
  sizes: fc.constantFrom(1, 200_000),
});

function genYaml(g: Gen): string {
  // Kept to a file of tens of MB: one adversarial dimension at a time is large in text (aliases make the rest large).
  if (g.nodes > 3 && g.podsPerNode > 2) g = { ...g, podsPerNode: 1 };
  if (g.flows > 3) g = { ...g, aliases: true };
  const y = [...HEAD, `duration: ${g.duration}`, 'nodes:'];
  const wide = g.podsPerNode > 200;
  for (let i = 0; i < g.nodes; i++) {
    const cidr = wide ? `${10 + (i >> 8)}.${i & 255}.0.0/16` : `10.${i >> 8}.${i & 255}.0/24`;
    y.push(`  - name: n${i}`, `    podCIDR: ${cidr}`, `    underlayIp: 172.${18 + ((i + 2) >> 16)}.${((i + 2) >> 8) & 255}.${(i + 2) & 255}`, '    pods:');
    for (let j = 0; j < g.podsPerNode; j++) y.push(`      - { name: p${j} }`);
  }
  if (g.flows > 0) {
    y.push('traffic:');
    const to = g.nodes > 1 ? 'n1/p0' : g.podsPerNode > 1 ? 'n0/p1' : 'n0';
    const what =
      g.type === 'tcp'
        ? `bytes: ${g.bytes}`
        : `count: ${g.count}, interval: ${g.interval}${g.type === 'udp' && g.sizes > 1 ? `, sizes: [${Array.from({ length: g.sizes }, () => '100').join(', ')}]` : ''}`;
    const f = `{ type: ${g.type}, from: n0/p0, to: ${to}, ${what} }`;
    for (let k = 0; k < g.flows; k++) y.push(g.aliases ? (k === 0 ? `  - &f ${f}` : '  - *f') : `  - ${f}`);
  }
  return yaml(y);
}

test('property: every generated scenario runs within its limits or is refused with status 2, naming the file and the key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-bounded-'));
  try {
    fc.assert(
      fc.property(genArb, (g) => {
        const file = join(dir, 'gen.yaml');
        writeFileSync(file, genYaml(g));
        const out: string[] = [];
        const io: RunIo = {
          out: (l) => {
            out.push(l);
          },
          err: () => {},
          tty: false,
        };
        const t0 = performance.now();
        let status: number;
        let s: Scenario | null = null;
        try {
          s = loadScenario(file);
        } catch (e: unknown) {
          if (!(e instanceof ScenarioError)) throw e;
        }
        const cost = s === null ? null : estimateCost(s);
        // What the limits let through but would take minutes here is checked against them, not run.
        const runnable = s === null || (cost!.packets <= 50_000 && s.nodes.length <= 3);
        if (!runnable) {
          assert.ok(cost!.packets <= SCENARIO_LIMITS.packets && cost!.events <= SCENARIO_LIMITS.events);
          return;
        }
        try {
          status = runCommand([file, '--json', '--no-progress'], io) as number;
        } catch (e: unknown) {
          assert.ok(e instanceof CliError, `not a user error: ${String(e)}`);
          assert.equal(e.code, 2);
          assert.ok(e.message.startsWith(`${file}:`), e.message);
          assert.match(e.message, /^[^:]+:\d+:\d+: [A-Za-z]+[^ ]*: expected /, 'the key is named');
          assert.ok(e.message.length < 1000, 'a bounded message');
          status = 2;
        }
        const seconds = (performance.now() - t0) / 1000;
        assert.ok(seconds < 60, `${seconds.toFixed(1)} s`);
        if (status !== 2) {
          const r = JSON.parse(out[0]!) as Report;
          const pods = s!.nodes.reduce((n, x) => n + x.pods.length, 0);
          // The estimate bounds the run: its events, plus each pod's announcement and neighbour resolution.
          assert.ok(r.events <= cost!.events + 8 * pods + 16, `${r.events} events, estimated ${cost!.events}`);
        }
      }),
      { numRuns: 12, seed: 18 },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
