/**
 * `seine run --live` as root: a scenario's lab brought up, its traffic run with real tools, the same
 * report as the simulator's, the same expectations and exit status, and the lab always taken down —
 * after a run whose expectations hold, after one whose expectation fails, on Ctrl-C — and a scenario
 * that cannot go live refused (status 2) before any namespace is made.
 *
 * Each run uses its own lab name (a random tag) and a temporary labs directory, so that labs of other
 * programs on the machine are neither touched nor counted. Skipped, loudly, when not root.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readCapture } from '../../src/capture/index.js';
import { labDown } from '../../src/live/lab/state.js';
import type { Report } from '../../src/sim/report.js';
import { runSeineCli, type SeineRan } from './rig.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const LIVE = process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0;
const SKIP: string | false = LIVE ? false : 'NOT ROOT (or not Linux): seine run --live needs root to build labs — SKIPPED';
if (!LIVE) process.stderr.write(`\n*** test/live/run.test.ts: ${SKIP} ***\n\n`);

const TAG = Math.floor(Math.random() * 0x10000)
  .toString(16)
  .padStart(4, '0');
const DIR = mkdtempSync(join(tmpdir(), 'seine-run-live-'));
const LABS = join(DIR, 'labs');
const labs: string[] = [];
const lab = (what: string): string => {
  const n = `rt${TAG}-${what}`;
  labs.push(n);
  return n;
};

/** The namespaces of this file's labs that exist now. */
function ourNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`seine-rt${TAG}-`));
}

afterEach(() => {
  if (!LIVE) return;
  assert.deepEqual(ourNamespaces(), [], 'a run leaves no namespace of its lab behind');
});

after(async () => {
  if (LIVE) for (const l of labs) await labDown(l, { dir: LABS, graceMs: 500 }).catch((e: unknown) => process.stderr.write(`cleanup of ${l}: ${String(e)}\n`));
  rmSync(DIR, { recursive: true, force: true });
});

/** Runs `seine args…` with the test's labs directory; `onStart` may signal the child. */
function seine(args: string[], onStart?: (pid: number) => void, timeoutMs = 120_000): Promise<SeineRan> {
  return runSeineCli(args, { labsDir: LABS, timeoutMs, killSignal: 'SIGKILL', ...(onStart !== undefined ? { onStart } : {}) });
}

const flowOf = (r: Report, name: string): Report['flows'][number] => {
  const f = r.flows.find((x) => x.name === name);
  assert.ok(f !== undefined, `flow ${name} in the report`);
  return f;
};

test("run --live two-nodes-vxlan --json: the simulator's report shape; ping delivered 100 %, UDP at least 90 %", { skip: SKIP }, async () => {
  const t0 = Date.now();
  const r = await seine(['run', '--live', join(ROOT, 'scenarios', 'two-nodes-vxlan.yaml'), '--json', '--lab', lab('two')]);
  assert.ok(r.code === 0 || r.code === 1, `exit status 0 or 1 (expectations), got ${r.code}: ${r.stderr}`);
  const rep = JSON.parse(r.stdout) as Report;
  assert.equal(rep.scenario, 'two-nodes-vxlan');
  assert.equal(rep.live?.lab, `rt${TAG}-two`);
  assert.deepEqual(rep.live?.without, ['latency'], "--without defaults to the scenario's live.without");
  assert.ok(
    rep.skipped?.some((s) => s.part === 'underlay.latency'),
    'the latency left out is listed as skipped',
  );
  const ping = flowOf(rep, 'ping-ac');
  assert.equal(ping.planned, 10);
  assert.equal(ping.delivered, 10, 'every ping answered');
  assert.equal(ping.deliveredRatio, 1);
  assert.ok(ping.latencyP50Ns !== null && ping.latencyP50Ns > 0, 'round trips measured');
  assert.ok(ping.icmpSeen.includes('echo-reply'));
  const udp = flowOf(rep, 'udp-bc');
  assert.equal(udp.sent, 1000);
  assert.ok(udp.deliveredRatio >= 0.9, `UDP delivered ${udp.deliveredRatio}`);
  assert.equal(udp.lost, 1000 - udp.delivered);
  // The same expectations as the simulator, checked the same way.
  assert.deepEqual(
    rep.expectations.map((e) => e.what),
    ['ping-ac delivered', 'ping-ac latencyP99', 'ping-ac ICMP seen', 'udp-bc delivered', 'node1 drops MtuExceeded'],
  );
  assert.equal(
    rep.ok,
    rep.expectations.every((e) => e.ok),
  );
  assert.equal(r.code, rep.ok ? 0 : 1);
  assert.ok(rep.wireOverheadPct !== null && rep.wireOverheadPct > 0, 'the tunnel carried the traffic');
  assert.ok(rep.underlay.paths.some((p) => p.a === 'node1' && p.b === 'node2' && p.sent[0] > 1000));
  process.stderr.write(
    `  (two-nodes-vxlan live: ${((Date.now() - t0) / 1000).toFixed(1)} s, ping p99 ${(ping.latencyP99Ns! / 1e6).toFixed(2)} ms, UDP ${udp.delivered}/1000)\n`,
  );
});

test("run --live: a failed expectation exits 1; TCP, a node's own stack, a link fault, captures and a skipped replay on the way", { skip: SKIP }, async () => {
  const pcap = join(DIR, 'pcap');
  const file = join(DIR, 'mixed.yaml');
  writeFileSync(
    file,
    `name: rt mixed
duration: 2s
tunnel: { type: vxlan, mode: routed }
nodes:
  - { name: node1, podCIDR: 10.244.1.0/24, pods: [{ name: a }] }
  - { name: node2, podCIDR: 10.244.2.0/24, pods: [{ name: b }] }
traffic:
  - { name: tcp-ab, type: tcp, from: node1/a, to: node2/b, bytes: 300000 }
  - { name: from-node, type: ping, from: node1, to: node2/b, count: 3, interval: 50ms, start: 300ms }
  - { name: during, type: ping, from: node1/a, to: node2/b, count: 4, interval: 100ms, start: 1100ms }
  - { name: replayed, type: udp, from: node1/a, to: node2/b, replay: ${join(ROOT, 'scenarios', 'captures', 'catalogue.pcapng')}, count: 5 }
faults:
  - { at: 1s, link: node1-node2, action: down, for: 700ms }
capture: [node1/a]
expect:
  - { flow: tcp-ab, delivered: ">= 100%" }
  - { flow: from-node, delivered: ">= 100%", icmpSeen: echo-reply }
  - { flow: during, delivered: "== 0%" }
  - { flow: replayed, delivered: ">= 100%" }
  - counters: { node1.macs.learned: ">= 1", node1.a.rxPackets: "> 10", node1.tunnel.nosuch: ">= 1" }
`,
  );
  const r = await seine(['run', '--live', file, '--json', '--pcap', pcap, '--lab', lab('mixed')]);
  assert.equal(r.code, 1, `one expectation fails: exit status 1 (stderr: ${r.stderr})`);
  const rep = JSON.parse(r.stdout) as Report;
  const tcp = flowOf(rep, 'tcp-ab');
  assert.equal(tcp.delivered, 300000, 'every byte, counted by the receiver');
  assert.ok(tcp.tcp !== undefined && tcp.tcp.state === 'closed' && tcp.tcp.mss > 1000 && tcp.tcp.mss <= 1410, JSON.stringify(tcp.tcp));
  assert.ok(tcp.sent >= 300000 / 1410, 'segments from TCP_INFO');
  assert.equal(flowOf(rep, 'from-node').delivered, 3, "the node's own stack (seine-gw0) reaches a pod");
  assert.equal(flowOf(rep, 'during').delivered, 0, 'the fault took the path down');
  assert.ok(
    rep.live!.notes.some((n) => n.startsWith('faults applied: path node1-node2 down')),
    rep.live!.notes.join('\n'),
  );
  assert.equal(
    rep.flows.some((f) => f.name === 'replayed'),
    false,
  );
  assert.ok(rep.skipped?.some((s) => s.part === 'traffic replayed' && /replay/.test(s.reason)));
  assert.ok(
    rep.skipped?.some((s) => s.part === 'expect[3]'),
    'the expectation about the skipped flow is skipped too',
  );
  const failed = rep.expectations.filter((e) => !e.ok);
  assert.deepEqual(
    failed.map((e) => e.what),
    ['node1.tunnel.nosuch'],
  );
  assert.match(failed[0]!.actual, /^no such counter: tunnel has no counter "nosuch"/);
  // Frames as the port received them: with TSO on the pod's TAP, 300 kB of TCP are a few super-frames.
  assert.ok(
    rep.expectations.some((e) => e.what === 'node1.a.rxPackets' && e.ok),
    `a counter the agents keep: ${JSON.stringify(rep.expectations.find((e) => e.what === 'node1.a.rxPackets'))}`,
  );
  assert.ok(
    rep.expectations.some((e) => e.what === 'node1.macs.learned' && e.ok),
    "the MAC table's counters, as the simulator names them",
  );
  // The capture point, recorded live.
  assert.deepEqual(
    rep.captures.map((c) => c.name),
    ['node1/a'],
  );
  assert.ok(rep.captures[0]!.packets > 10);
  assert.ok(existsSync(join(pcap, 'node1-a.pcapng')));
  let frames = 0;
  for await (const rec of readCapture(join(pcap, 'node1-a.pcapng'))) {
    void rec;
    frames++;
  }
  assert.equal(frames, rep.captures[0]!.packets);
  // The text report says the same.
  const text = await seine(['run', '--live', file, '--lab', lab('mixed-text')]);
  assert.equal(text.code, 1);
  assert.match(text.stdout, /^scenario rt mixed {2}live in lab rt\w+-mixed-text/);
  assert.match(text.stdout, /skipped \(not run\):\n {2}traffic replayed: /);
  assert.match(text.stdout, /FAIL {2}node1\.tunnel\.nosuch >= 1: no such counter/);
});

test('run --live: a scenario that cannot go live is refused (exit 2) before any namespace is made', { skip: SKIP }, async () => {
  const file = join(DIR, 'refused.yaml');
  writeFileSync(
    file,
    'name: rt refused\nunderlay: { bandwidth: 4bit }\nnodes:\n  - { name: n1, podCIDR: 10.0.1.0/24, pods: [{ name: a }, { name: b }] }\ntraffic:\n  - { type: ping, from: n1/a, to: n1/b }\n',
  );
  const name = lab('refused');
  const before = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  const r = await seine(['run', '--live', file, '--lab', name]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /cannot go live here:\n {2}underlay\.bandwidth: 4 bit\/s/);
  assert.equal(r.stdout, '');
  assert.equal(
    spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l.includes(name)).length,
    0,
  );
  assert.ok(!before.includes(name));
  assert.equal(existsSync(join(LABS, name)), false, 'no lab state either');
  // Bad input is status 2 as well, and --without is checked.
  assert.equal((await seine(['run', '--live', join(DIR, 'nope.yaml')])).code, 2);
  const bad = await seine(['run', '--live', file, '--without', 'latncy']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown feature "latncy"/);
  // A capture directory that cannot be made is refused before a lab is built, too.
  const ok = join(DIR, 'ok.yaml');
  writeFileSync(
    ok,
    'name: rt pcap\nnodes:\n  - { name: n1, podCIDR: 10.0.1.0/24, pods: [{ name: a }, { name: b }] }\ntraffic:\n  - { type: ping, from: n1/a, to: n1/b }\n',
  );
  const pname = lab('pcap');
  // (A file as a parent: ENOTDIR. Not /proc/…, where node's recursive mkdir loops: issue 16's first defect.)
  const under = join(ok, 'caps');
  const p = await seine(['run', '--live', ok, '--lab', pname, '--pcap', under]);
  assert.equal(p.code, 2, p.stderr);
  assert.match(p.stderr, /cannot write captures into '.*ok\.yaml\/caps': a part of the path is a file/);
  assert.equal(existsSync(join(LABS, pname)), false, 'no lab was built');
});

test('run --live: Ctrl-C stops the tools and takes the lab down (exit 130)', { skip: SKIP }, async () => {
  const file = join(DIR, 'long.yaml');
  writeFileSync(
    file,
    'name: rt long\nduration: 20s\nnodes:\n  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }] }\n  - { name: n2, podCIDR: 10.244.2.0/24, pods: [{ name: b }] }\ntraffic:\n  - { name: p, type: ping, from: n1/a, to: n2/b, count: 150, interval: 100ms }\n',
  );
  const name = lab('int');
  const r = await seine(['run', '--live', file, '--lab', name], (pid) => {
    // Once the lab is up and the ping runs: SIGINT, as a terminal's Ctrl-C would send.
    const poll = setInterval(() => {
      const st = join(LABS, name, 'state.json');
      if (!existsSync(st)) return;
      const s = JSON.parse(readFileSync(st, 'utf8')) as { phase: string; processes: { role: string }[] };
      if (s.phase === 'up' && s.processes.some((p) => p.role.startsWith('ping'))) {
        clearInterval(poll);
        setTimeout(() => process.kill(pid, 'SIGINT'), 500);
      }
    }, 100);
  });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted \(SIGINT\); lab rt\w+-int taken down/);
  assert.equal(r.stdout, '', 'no report for an interrupted run');
  assert.deepEqual(
    readdirSync(LABS).filter((l) => l === name),
    [],
    'its state is gone',
  );
});
