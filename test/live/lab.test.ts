/**
 * Live labs' plumbing: plans (names, addresses, MTUs, the netem/tbf/htb commands, BPF drops), what is
 * refused and why, and — as root — labs built in network namespaces: nodes ping each other over the
 * underlay bridge, MTUs and qdiscs are what the plan says, a pair's smaller MTU and the faults drop what
 * they must, and `labDown` removes every namespace, link and process after a normal run, a killed agent,
 * a `labUp` killed with SIGKILL, a hook that throws or a command that fails half-way.
 *
 * Traffic stays inside namespaces the tests create (ping with -c and -W); every lab is taken down in
 * `after` whatever happened. Lab names carry a random tag so that parallel runs do not meet.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadScenario, parseScenario, type Scenario } from '../../src/scenario/scenario.js';
import { probeHost, type HostFacts } from '../../src/live/lab/host.js';
import { createNetns, deleteNetns, ipJson, listLinks, listNetns, listQdiscs, netnsInode, runInNetns } from '../../src/live/lab/netns.js';
import {
  checkLabFeasible,
  dropBytecode,
  egressShare,
  formatRefusals,
  labName,
  LabPlanError,
  LabRefusedError,
  planLab,
  slug,
  type LabFeature,
  type LabPlan,
} from '../../src/live/lab/plan.js';
import { LabStore, LabUpError, labDown, labStatus, labUp, processAlive, processStartTime } from '../../src/live/lab/state.js';
import { sleep } from '../../src/live/sleep.js';

/** This file runs as dist/test/live/lab.test.js: the project root is three levels up. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const scenario = (f: string): Scenario => loadScenario(join(ROOT, 'scenarios', f));

const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const LIVE = IS_ROOT && process.platform === 'linux';
const SKIP_LIVE: string | false = LIVE ? false : 'NOT ROOT (or not Linux): live lab tests need root to create namespaces — SKIPPED';
if (!LIVE) process.stderr.write(`\n*** test/live/lab.test.ts: ${SKIP_LIVE} ***\n\n`);

const TAG = Math.floor(Math.random() * 0x10000)
  .toString(16)
  .padStart(4, '0');
const DIR = mkdtempSync(join(tmpdir(), 'seine-labs-'));
const labsUsed = new Set<string>();
const strays: ChildProcess[] = [];
const strayNs: string[] = [];
const labId = (s: string): string => {
  const n = `lt${TAG}-${s}`;
  labsUsed.add(n);
  return n;
};

after(async () => {
  for (const c of strays) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (LIVE) {
    for (const l of labsUsed) await labDown(l, { dir: DIR, graceMs: 500 }).catch((e: unknown) => process.stderr.write(`cleanup of ${l}: ${String(e)}\n`));
    for (const n of strayNs) await deleteNetns(n).catch(() => undefined);
  }
  rmSync(DIR, { recursive: true, force: true });
});

/** The host, and what a lab here must leave out: netem's parts when this kernel has no netem. */
const HOST: HostFacts = probeHost();
const NO_NETEM: LabFeature[] = HOST.kernel.netem === false ? ['latency', 'jitter', 'loss'] : [];
if (LIVE && NO_NETEM.length > 0) {
  process.stderr.write(
    `\n*** test/live/lab.test.ts: this kernel has no netem (${HOST.kernelSource ?? 'unknown source'}): labs here leave out latency, jitter and loss; netem is checked in plans only ***\n\n`,
  );
}

const fakeHost = (over: Partial<HostFacts> = {}, kernel: Partial<HostFacts['kernel']> = {}): HostFacts => ({
  platform: 'linux',
  root: true,
  tools: { ip: '/usr/sbin/ip', tc: '/usr/sbin/tc', ping: '/usr/bin/ping', iperf3: '/usr/bin/iperf3' },
  kernel: { netns: true, veth: true, bridge: true, ipv6: true, netem: true, tbf: true, htb: true, u32: true, clsact: true, bpf: true, ...kernel },
  kernelSource: 'test',
  netemNormalDist: true,
  ...over,
});

// ---------------------------------------------------------------------------------------------------
// Plans (no root needed)

test('plan: two-nodes-vxlan — names, addresses, MTUs, netem + tbf on both egresses of every node', () => {
  const p = planLab(scenario('two-nodes-vxlan.yaml'));
  assert.equal(p.lab, 'two-nodes-vxlan');
  assert.equal(p.family, 4);
  assert.deepEqual(p.underlay, { ns: 'seine-two-nodes-vxlan-u', bridge: 'br0', mtu: 1500, subnet: '172.18.0.0/16', prefix: 16 });
  assert.deepEqual(
    p.nodes.map((n) => [n.name, n.ns, n.address, n.uplink.dev, n.uplink.peer, n.uplink.mtu, n.uplink.gsoMaxSegs]),
    [
      ['node1', 'seine-two-nodes-vxlan-node1', '172.18.0.2/16', 'eth0', 'n0-node1', 1500, null],
      ['node2', 'seine-two-nodes-vxlan-node2', '172.18.0.3/16', 'eth0', 'n1-node2', 1500, null],
    ],
  );
  assert.deepEqual(
    p.nodes.flatMap((n) => n.pods.map((x) => [x.ns, x.ip4, x.ip6, x.mtu])),
    [
      ['seine-two-nodes-vxlan-node1-a', '10.244.1.2', null, 1450],
      ['seine-two-nodes-vxlan-node1-b', '10.244.1.3', null, 1450],
      ['seine-two-nodes-vxlan-node2-c', '10.244.2.10', 'fd00:10:244:2::10', 1450],
    ],
  );
  assert.deepEqual(p.namespaces, [
    'seine-two-nodes-vxlan-u',
    'seine-two-nodes-vxlan-node1',
    'seine-two-nodes-vxlan-node2',
    'seine-two-nodes-vxlan-node1-a',
    'seine-two-nodes-vxlan-node1-b',
    'seine-two-nodes-vxlan-node2-c',
  ]);
  // 100us one way: 50us at each of the two egresses a frame crosses; 10 Gbit/s at each.
  const n1 = p.nodes[0]!;
  assert.deepEqual(n1.egress.shaping, { netem: { delayNs: 50_000, jitterNs: 0, loss: 0 }, rateBps: 10e9 });
  assert.deepEqual(
    n1.egress.tc.map((a) => a.join(' ')),
    [
      'tc -n seine-two-nodes-vxlan-node1 qdisc add dev eth0 root handle 1: netem limit 1000 delay 50us',
      'tc -n seine-two-nodes-vxlan-node1 qdisc add dev eth0 parent 1:1 handle 2: tbf rate 10000000000bit burst 1250000 limit 1514000',
    ],
  );
  assert.deepEqual(
    n1.ingress.tc.map((a) => a.join(' ')),
    [
      'tc -n seine-two-nodes-vxlan-u qdisc add dev n0-node1 root handle 1: netem limit 1000 delay 50us',
      'tc -n seine-two-nodes-vxlan-u qdisc add dev n0-node1 parent 1:1 handle 2: tbf rate 10000000000bit burst 1250000 limit 1514000',
    ],
  );
  assert.deepEqual(n1.filterTc, []);
  assert.equal(n1.clsact, false);
  assert.deepEqual(p.faults, []);
  assert.deepEqual(p.needs.map((n) => `${n.kernel}:${n.part}`).sort(), [
    'bridge:lab',
    'netem:underlay.latency',
    'netns:lab',
    'tbf:underlay.bandwidth',
    'veth:lab',
  ]);
  // Leaving latency out leaves a lone tbf, and says so.
  const q = planLab(scenario('two-nodes-vxlan.yaml'), { without: ['latency'], name: 'x' });
  assert.equal(q.nodes[0]!.egress.tc.length, 1);
  assert.match(q.nodes[0]!.egress.tc[0]!.join(' '), /root handle 1: tbf rate 10000000000bit/);
  assert.deepEqual(q.omitted, [{ feature: 'latency', part: 'underlay.latency', what: 'underlay.latency 100us left out' }]);
  assert.ok(!q.needs.some((n) => n.kernel === 'netem'));
});

test('plan: the netem model splits a path over its two egresses', () => {
  const s = egressShare({ latencyNs: 1_000_000, jitterNs: 200_000, loss: 0.19, bandwidthBps: 1e8 });
  assert.equal(s.netem!.delayNs, 500_000);
  assert.ok(Math.abs(s.netem!.jitterNs * Math.SQRT2 - 200_000) < 1e-6, 'two normal delays of σ/√2 add up to σ');
  assert.ok(Math.abs((1 - s.netem!.loss) ** 2 - 0.81) < 1e-12, 'a frame survives both egresses with probability 1 − p');
  assert.equal(s.rateBps, 1e8);
  assert.deepEqual(egressShare({ latencyNs: 0, jitterNs: 0, loss: 0, bandwidthBps: null }), { netem: null, rateBps: null });
  assert.equal(egressShare({ latencyNs: 0, jitterNs: 0, loss: 1, bandwidthBps: null }).netem!.loss, 1);
  assert.deepEqual(egressShare({ latencyNs: 10, jitterNs: 10, loss: 0.5, bandwidthBps: 8 }, new Set<LabFeature>(['latency', 'jitter', 'loss', 'bandwidth'])), {
    netem: null,
    rateBps: null,
  });
  const p = planLab(parseScenario('name: j\nunderlay: { latency: 1ms, jitter: 100us, loss: 2% }\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }]\n', 'j.yaml'));
  assert.equal(
    p.nodes[0]!.egress.tc[0]!.join(' '),
    'tc -n seine-j-a qdisc add dev eth0 root handle 1: netem limit 1000 delay 500us 71us distribution normal loss random 1.00505%',
  );
  const jo = planLab(parseScenario('name: jo\nunderlay: { jitter: 1us }\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }]\n', 'jo.yaml'));
  assert.equal(
    jo.nodes[0]!.egress.tc[0]!.slice(10).join(' '),
    'netem limit 1000 delay 1us 1us distribution normal',
    'tc wants a delay (and a jitter) of at least 1us with a distribution',
  );
});

test('plan: per-pair overrides become htb classes picked by u32 on the peer address; pair MTUs and faults are BPF drops', () => {
  const g = planLab(scenario('tcp-goodput.yaml'));
  const [n1, n2, n3] = g.nodes;
  // node1-node3 has 1 % loss: node1 and node3 get a class for each other; node2 keeps netem + tbf.
  assert.deepEqual(
    n1!.egress.perPeer.map((c) => [c.peer, c.match, c.peerIp]),
    [['node3', 'dst', '172.18.0.4']],
  );
  assert.deepEqual(
    n1!.ingress.perPeer.map((c) => [c.peer, c.match, c.peerIp]),
    [['node3', 'src', '172.18.0.4']],
  );
  assert.deepEqual(
    n1!.egress.tc.map((a) => a.slice(3).join(' ')),
    [
      'qdisc add dev eth0 root handle 1: htb default 1',
      'class add dev eth0 parent 1: classid 1:1 htb rate 100000000bit ceil 100000000bit burst 12500 cburst 12500 quantum 200000',
      'qdisc add dev eth0 parent 1:1 handle 101: netem limit 1000 delay 500us',
      'class add dev eth0 parent 1: classid 1:2 htb rate 100000000bit ceil 100000000bit burst 12500 cburst 12500 quantum 200000',
      'qdisc add dev eth0 parent 1:2 handle 102: netem limit 1000 delay 500us loss random 0.501256%',
      'filter add dev eth0 parent 1: protocol ip pref 1 u32 match ip dst 172.18.0.4/32 flowid 1:2',
    ],
  );
  assert.match(n1!.ingress.tc.at(-1)!.join(' '), /dev n0-node1 parent 1: protocol ip pref 1 u32 match ip src 172\.18\.0\.4\/32 flowid 1:2$/);
  assert.deepEqual(n2!.egress.perPeer, []);
  assert.equal(n2!.egress.tc[0]![7], 'root');
  assert.equal(n3!.egress.perPeer[0]!.peer, 'node1');
  for (const k of ['htb', 'u32', 'tbf', 'netem'] as const)
    assert.ok(
      g.needs.some((n) => n.kernel === k),
      k,
    );

  const b = planLab(scenario('pmtu-black-hole.yaml'));
  // node1-node3 at 1400: drops on each end's bridge port by destination and length; GSO segmented first.
  assert.deepEqual(
    b.nodes.map((n) => [n.uplink.gsoMaxSegs, n.mtuRules.map((r) => `${r.peer}<=${r.mtu}`), n.clsact]),
    [
      [1, ['node3<=1400'], true],
      [null, [], false],
      [1, ['node1<=1400'], true],
    ],
  );
  assert.deepEqual(
    b.nodes[0]!.filterTc.map((a) => a.join(' ')),
    [
      'tc -n seine-pmtu-black-hole-u qdisc add dev n0-node1 clsact',
      `tc -n seine-pmtu-black-hole-u filter add dev n0-node1 ingress pref 100 handle 1 protocol all bpf da bytecode ${dropBytecode('172.18.0.4', 1400)}`,
    ],
  );
  assert.deepEqual(b.nodes[0]!.egress.perPeer, [], 'an MTU-only override needs no class');

  const f = planLab(scenario('link-failure.yaml'));
  assert.deepEqual(
    f.faults.map((x) => [x.atNs, x.action, x.what, x.commands.length, x.benignError]),
    [
      [1_500_000_000, 'down', 'path node1-node2 down at 1500ms', 2, null],
      [2_500_000_000, 'up', 'path node1-node2 up at 2500ms', 2, 'Cannot find specified filter chain'],
    ],
  );
  assert.deepEqual(
    f.faults[0]!.commands[0]!.slice(0, 16).join(' '),
    'tc -n seine-link-failure-u filter replace dev n0-node1 ingress pref 1000 handle 1 protocol all bpf da',
  );
  assert.equal(f.faults[0]!.commands[0]![17], dropBytecode('172.18.0.3', null));
  assert.equal(f.faults[0]!.commands[1]![17], dropBytecode('172.18.0.2', null));
  assert.deepEqual(
    f.faults[1]!.commands.map((c) => c.join(' ')),
    ['tc -n seine-link-failure-u filter del dev n0-node1 ingress pref 1000', 'tc -n seine-link-failure-u filter del dev n1-node2 ingress pref 1000'],
  );
  assert.ok(f.nodes[0]!.clsact && f.nodes[1]!.clsact);
  const nf = planLab(
    parseScenario(
      'name: nf\nduration: 5s\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }, { name: b, podCIDR: 10.2.0.0/24 }]\nfaults: [{ at: 1s, link: b, action: down, for: 2s }]\n',
      'nf.yaml',
    ),
  );
  assert.deepEqual(
    nf.faults.map((x) => [x.atNs, x.commands.map((c) => c.join(' '))]),
    [
      [1e9, ['ip -n seine-nf-u link set n1-b down']],
      [3e9, ['ip -n seine-nf-u link set n1-b up']],
    ],
  );
  assert.deepEqual(planLab(scenario('link-failure.yaml'), { without: ['linkFaults'] }).faults, []);
});

/** A classic BPF interpreter for the opcodes `dropBytecode` uses, returning the verdict. */
function runBpf(bytecode: string, frame: Uint8Array): number {
  const [count, ...rest] = bytecode.split(',');
  const prog = rest.map((x) => x.split(' ').map(Number) as [number, number, number, number]);
  assert.equal(prog.length, Number(count));
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  let a = 0;
  for (let pc = 0; pc < prog.length; pc++) {
    const [code, jt, jf, k] = prog[pc]!;
    switch (code) {
      case 0x28:
        a = dv.getUint16(k);
        break;
      case 0x20:
        a = dv.getUint32(k);
        break;
      case 0x80:
        a = frame.length;
        break;
      case 0x15:
        pc += a === k ? jt : jf;
        break;
      case 0x25:
        pc += a > k ? jt : jf;
        break;
      case 0x06:
        return k;
      default:
        assert.fail(`opcode ${code}`);
    }
  }
  assert.fail('fell off the program');
}

function frame(ethertype: number, len: number, dst: number[], dstOff: number): Uint8Array {
  const f = new Uint8Array(len);
  f[12] = ethertype >> 8;
  f[13] = ethertype & 0xff;
  f.set(dst, dstOff);
  return f;
}

test('plan: the BPF drop programs drop frames to the peer (above the MTU) and leave the rest to the next filter', () => {
  const DROP = 2,
    NEXT = 0xffff_ffff;
  const v4 = dropBytecode('172.18.0.4', 1400);
  assert.equal(runBpf(v4, frame(0x0800, 14 + 1400, [172, 18, 0, 4], 30)), NEXT);
  assert.equal(runBpf(v4, frame(0x0800, 14 + 1401, [172, 18, 0, 4], 30)), DROP);
  assert.equal(runBpf(v4, frame(0x0800, 14 + 1500, [172, 18, 0, 3], 30)), NEXT);
  assert.equal(runBpf(v4, frame(0x0806, 14 + 1500, [172, 18, 0, 4], 30)), NEXT);
  const all = dropBytecode('172.18.0.4', null);
  assert.equal(runBpf(all, frame(0x0800, 60, [172, 18, 0, 4], 30)), DROP);
  assert.equal(runBpf(all, frame(0x0800, 60, [172, 18, 0, 5], 30)), NEXT);
  const d6 = [0xfd, 0, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3];
  const v6 = dropBytecode('fd00:18::3', 1280);
  assert.equal(runBpf(v6, frame(0x86dd, 14 + 1280, d6, 38)), NEXT);
  assert.equal(runBpf(v6, frame(0x86dd, 14 + 1281, d6, 38)), DROP);
  assert.equal(runBpf(v6, frame(0x86dd, 14 + 1500, [...d6.slice(0, 15), 4], 38)), NEXT);
  assert.equal(runBpf(v6, frame(0x0800, 14 + 1500, d6, 38)), NEXT);
});

test('plan: names — slugs, a hash when cut, collisions resolved, interface names within 15 characters', () => {
  assert.equal(slug('Two Nodes / VXLAN!', 24), 'two-nodes-vxlan');
  assert.equal(labName('two-nodes-vxlan'), 'two-nodes-vxlan');
  const long = labName('A very long scenario name that goes on and on');
  assert.ok(long.length <= 24 && /^a-very-long-scenari-[0-9a-f]{4}$/.test(long), long);
  assert.notEqual(labName('A very long scenario name that goes on and on'), labName('A very long scenario name that goes on and off'));
  const s = parseScenario(
    [
      'name: "Odd names"',
      'nodes:',
      '  - { name: u, podCIDR: 10.1.0.0/24, pods: [{ name: x }] }',
      '  - { name: "U", podCIDR: 10.2.0.0/24 }',
      '  - { name: a-very-long-node-name-indeed-yes, podCIDR: 10.3.0.0/24, pods: [{ name: "P_1" }, { name: "p.1" }] }',
      '  - { name: "u-x", podCIDR: 10.4.0.0/24 }',
    ].join('\n') + '\n',
    'odd.yaml',
  );
  const p = planLab(s);
  assert.equal(p.lab, 'odd-names');
  assert.deepEqual(p.namespaces, [
    'seine-odd-names-u',
    'seine-odd-names-u-2',
    'seine-odd-names-u-3',
    'seine-odd-names-a-very-long-node-name-in',
    'seine-odd-names-u-x',
    'seine-odd-names-u-2-x',
    'seine-odd-names-a-very-long-node-name-in-p-1',
    'seine-odd-names-a-very-long-node-name-in-p-1-2',
  ]);
  assert.equal(new Set(p.namespaces).size, p.namespaces.length);
  for (const n of p.nodes) assert.ok(n.uplink.peer.length <= 15 && /^n\d+-[a-z0-9-]*[a-z0-9]$/.test(n.uplink.peer), n.uplink.peer);
  assert.equal(new Set(p.nodes.map((n) => n.uplink.peer)).size, p.nodes.length);
  assert.throws(
    () => planLab(s, { name: 'Bad_Name' }),
    (e: unknown) => e instanceof LabPlanError && /lab name "Bad_Name"/.test(e.message),
  );
});

test('plan: IPv6 underlay, and addresses that share no subnet get host prefixes and on-link routes', () => {
  const v6 = planLab(
    parseScenario(
      'name: six\nunderlay: { family: 6, mtu: 1400 }\nlinks: [{ between: [a, b], bandwidth: 1Gbit }]\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }, { name: b, podCIDR: 10.2.0.0/24 }]\n',
      'six.yaml',
    ),
  );
  assert.equal(v6.family, 6);
  assert.deepEqual(v6.underlay, { ns: 'seine-six-u', bridge: 'br0', mtu: 1400, subnet: 'fd00:18::/64', prefix: 64 });
  assert.deepEqual(
    v6.nodes.map((n) => n.address),
    ['fd00:18::2/64', 'fd00:18::3/64'],
  );
  assert.match(v6.nodes[0]!.egress.tc.at(-1)!.join(' '), /protocol ipv6 pref 1 u32 match ip6 dst fd00:18::3\/128 flowid 1:2$/);
  assert.ok(v6.needs.some((n) => n.kernel === 'ipv6'));
  const apart = planLab(
    parseScenario(
      'name: apart\nnodes: [{ name: a, podCIDR: 10.1.0.0/24, underlayIp: 10.0.0.1 }, { name: b, podCIDR: 10.2.0.0/24, underlayIp: 192.168.7.9 }]\n',
      'a.yaml',
    ),
  );
  assert.equal(apart.underlay.subnet, null);
  assert.deepEqual(
    apart.nodes.map((n) => [n.address, n.routes]),
    [
      ['10.0.0.1/32', [{ dst: '192.168.7.9/32', dev: 'eth0' }]],
      ['192.168.7.9/32', [{ dst: '10.0.0.1/32', dev: 'eth0' }]],
    ],
  );
  const near = planLab(
    parseScenario(
      'name: near\nnodes: [{ name: a, podCIDR: 10.1.0.0/24, underlayIp: 10.0.5.1 }, { name: b, podCIDR: 10.2.0.0/24, underlayIp: 10.0.5.200 }]\n',
      'n.yaml',
    ),
  );
  assert.equal(near.underlay.subnet, '10.0.5.0/24');
});

test('feasibility: what cannot go live is refused with reasons, and what can be left out says so', () => {
  const s = scenario('two-nodes-vxlan.yaml');
  assert.deepEqual(checkLabFeasible(s, { host: fakeHost() }), []);
  const host = checkLabFeasible(s, { host: fakeHost({ platform: 'darwin', root: false, tools: { ip: null, tc: null, ping: '/bin/ping', iperf3: null } }) });
  assert.deepEqual(
    host.map((r) => r.reason),
    [
      'live labs need Linux (network namespaces, veth, tc); this is darwin',
      'live labs need root (creating namespaces, links and qdiscs)',
      'ip is not installed (apt-get install iproute2)',
      'tc is not installed (apt-get install iproute2)',
      'iperf3 is not installed (apt-get install iperf3)',
    ],
  );
  assert.ok(host.every((r) => r.part === 'host' && r.feature === null));
  const noNetem = checkLabFeasible(s, { host: fakeHost({}, { netem: false }) });
  assert.deepEqual(
    noNetem.map((r) => [r.part, r.feature]),
    [['underlay.latency', 'latency']],
  );
  assert.match(formatRefusals(noNetem), /underlay\.latency: needs the netem qdisc .*CONFIG_NET_SCH_NETEM.*\(leave it out: without latency\)/);
  assert.deepEqual(checkLabFeasible(s, { host: fakeHost({}, { netem: false }), without: ['latency'] }), []);
  assert.deepEqual(checkLabFeasible(s, { host: fakeHost({}, { netem: null }) }), [], 'unknown is tried, not refused');
  assert.deepEqual(
    checkLabFeasible(s, { host: fakeHost({}, { veth: false }) }).map((r) => [r.part, r.feature]),
    [['lab', null]],
  );
  const pm = checkLabFeasible(scenario('pmtu-black-hole.yaml'), { host: fakeHost({}, { bpf: false }) });
  assert.deepEqual(
    pm.map((r) => [r.part, r.feature]),
    [['links[0].mtu', 'linkMtu']],
  );
  const lf = checkLabFeasible(scenario('link-failure.yaml'), { host: fakeHost({}, { clsact: false }) });
  assert.deepEqual(
    lf.map((r) => [r.part, r.feature]),
    [['faults[0]', 'linkFaults']],
  );
  const tg = checkLabFeasible(scenario('tcp-goodput.yaml'), { host: fakeHost({}, { htb: false }) });
  assert.deepEqual(
    tg.map((r) => [r.part, r.feature]),
    [
      ['underlay.bandwidth', 'bandwidth'],
      ['links[0].loss', 'loss'],
    ],
  );
  const jit = parseScenario('name: j\nunderlay: { jitter: 1ms }\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }]\n', 'j.yaml');
  assert.deepEqual(
    checkLabFeasible(jit, { host: fakeHost({ netemNormalDist: false }) }).map((r) => [r.part, r.feature]),
    [['underlay.jitter', 'jitter']],
  );
  const six = parseScenario('name: six\nunderlay: { family: 6 }\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }]\n', 's.yaml');
  assert.deepEqual(
    checkLabFeasible(six, { host: fakeHost({}, { ipv6: false }) }).map((r) => [r.part, r.feature]),
    [['underlay.family', null]],
  );
  const slow = parseScenario('name: slow\nunderlay: { bandwidth: 4bit }\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }]\n', 's.yaml');
  assert.deepEqual(
    checkLabFeasible(slow, { host: fakeHost() }).map((r) => [r.part, r.feature]),
    [['underlay.bandwidth', 'bandwidth']],
  );
  assert.throws(() => planLab(slow), LabPlanError);
  // The scenario loader refuses more than 1,000 nodes (SCENARIO_LIMITS); the lab's own bound (a bridge's
  // 1,023 ports) still holds for a scenario built in code, so the test adds nodes past the loader.
  const many = parseScenario(
    `name: many\nnodes:\n${Array.from({ length: 1000 }, (_, i) => `  - { name: n${i}, podCIDR: 10.${i >> 8}.${i & 255}.0/24 }`).join('\n')}\n`,
    'm.yaml',
  );
  for (let i = 1000; i < 1024; i++) many.nodes.push({ ...many.nodes[0]!, name: `n${i}`, podCIDR4: `10.${i >> 8}.${i & 255}.0/24` });
  assert.deepEqual(
    checkLabFeasible(many, { host: fakeHost() }).map((r) => r.reason),
    ['1024 nodes: a Linux bridge takes at most 1023 ports'],
  );
});

// ---------------------------------------------------------------------------------------------------
// Live (root)

async function ping(ns: string, ip: string, opts: { size?: number; tries?: number } = {}): Promise<boolean> {
  const args = [
    'ping',
    ...(ip.includes(':') ? ['-6'] : []),
    '-c',
    '1',
    '-W',
    '1',
    '-M',
    'do',
    ...(opts.size !== undefined ? ['-s', String(opts.size)] : []),
    ip,
  ];
  for (let i = 0; i < (opts.tries ?? 1); i++) {
    try {
      await runInNetns(ns, args, { timeoutMs: 5000 });
      return true;
    } catch {
      /* try again */
    }
  }
  return false;
}

async function labNamespaces(lab: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(`seine-${lab}-`));
}

/** After `labDown`: no namespace of the lab, none of its links in the root namespace, none of its processes. */
async function assertGone(plan: LabPlan, pids: { pid: number; startTime: number }[], rootLinksBefore: Set<string>): Promise<void> {
  assert.deepEqual(await labNamespaces(plan.lab), []);
  const ours = new Set(plan.nodes.flatMap((n) => [n.uplink.peer]));
  const newInRoot = (await listLinks()).map((l) => l.ifname).filter((n) => !rootLinksBefore.has(n));
  assert.deepEqual(
    newInRoot.filter((n) => ours.has(n) || n === 'br0' || n === 'eth0'),
    [],
  );
  for (const p of pids) assert.equal(processAlive(p.pid, p.startTime), false, `process ${p.pid} is gone (/proc)`);
  assert.equal(new LabStore(plan.lab, DIR).exists(), false, 'the state is gone');
}

test('live: two-nodes-vxlan up — nodes ping over the bridge, MTU and qdiscs as planned, agents recorded; a killed agent and labDown leave nothing', {
  skip: SKIP_LIVE,
  timeout: 60_000,
}, async () => {
  const rootBefore = new Set((await listLinks()).map((l) => l.ifname));
  const plan = planLab(scenario('two-nodes-vxlan.yaml'), { name: labId('tnv'), without: NO_NETEM });
  const seen: string[] = [];
  const lab = await labUp(
    plan,
    {
      onNode(node, ns, h) {
        seen.push(`${node.name}@${ns}`);
        h.spawn(ns, ['sleep', '120'], { role: 'agent', node: node.name });
      },
    },
    { dir: DIR },
  );
  const [n1, n2] = plan.nodes;
  assert.deepEqual(seen, [`node1@${n1!.ns}`, `node2@${n2!.ns}`]);
  assert.deepEqual((await labNamespaces(plan.lab)).sort(), [...plan.namespaces].sort());

  assert.ok(await ping(n1!.ns, n2!.underlayIp, { tries: 3 }), 'node1 → node2 over the underlay');
  assert.ok(await ping(n2!.ns, n1!.underlayIp), 'node2 → node1');
  assert.ok(await ping(n1!.ns, n2!.underlayIp, { size: 1472 }), 'a full 1500-byte DF packet passes');
  assert.equal(await ping(n1!.ns, n2!.underlayIp, { size: 1473 }), false, 'a 1501-byte DF packet does not leave');

  const eth0 = (await listLinks(n1!.ns)).find((l) => l.ifname === 'eth0')!;
  assert.equal(eth0.mtu, 1500);
  assert.equal(eth0.operstate, 'UP');
  const uLinks = await listLinks(plan.underlay.ns);
  assert.deepEqual(
    uLinks
      .filter((l) => l.ifname !== 'lo')
      .map((l) => [l.ifname, l.mtu, l.master ?? null])
      .sort(),
    [
      ['br0', 1500, null],
      ['n0-node1', 1500, 'br0'],
      ['n1-node2', 1500, 'br0'],
    ],
  );
  const addrs = await ipJson<{ addr_info: { local: string; prefixlen: number; family: string }[] }>(['addr', 'show', 'dev', 'eth0'], n1!.ns);
  assert.ok(addrs[0]!.addr_info.some((a) => a.local === '172.18.0.2' && a.prefixlen === 16));

  for (const [ns, dev] of [
    [n1!.ns, 'eth0'],
    [plan.underlay.ns, 'n0-node1'],
  ] as const) {
    const q = await listQdiscs(ns, dev);
    const tbf = q.find((x) => x.kind === 'tbf');
    assert.ok(tbf !== undefined, `tbf on ${dev}: ${JSON.stringify(q)}`);
    assert.equal((tbf.options as { rate: number }).rate, 10e9 / 8);
    if (NO_NETEM.length === 0) {
      const netem = q.find((x) => x.kind === 'netem');
      assert.ok(netem !== undefined && netem.root === true, `netem at the root of ${dev}: ${JSON.stringify(q)}`);
      assert.equal(tbf.parent, '1:1');
    } else assert.equal(tbf.root, true);
  }

  const st = lab.state();
  assert.equal(st.phase, 'up');
  assert.equal(st.processes.length, 2);
  for (const p of st.processes) {
    assert.deepEqual(p.argv, ['sleep', '120']);
    assert.equal(p.startTime, processStartTime(p.pid), 'start time from /proc/PID/stat');
    assert.ok(processAlive(p.pid, p.startTime));
    assert.equal(readlinkSync(`/proc/${p.pid}/ns/net`), `net:[${netnsInode(p.ns!)}]`, "it runs inside its node's namespace");
  }
  const status = (await labStatus(plan.lab, { dir: DIR }))!;
  assert.deepEqual(
    status.nodes.map((n) => [n.name, n.addresses, n.uplink]),
    [
      ['node1', ['172.18.0.2/16'], 'UP'],
      ['node2', ['172.18.0.3/16'], 'UP'],
    ],
  );
  assert.ok(status.namespaces.every((n) => n.present));
  assert.ok(status.links.every((l) => l.present && l.mtu === 1500));
  assert.deepEqual(
    status.processes.map((p) => p.alive),
    [true, true],
  );
  assert.ok((await labStatus(undefined, { dir: DIR })).some((s) => s.lab === plan.lab));
  JSON.stringify(status);

  // An agent dies (kill -9): the status says so, and labDown does not mind.
  const [a1, a2] = st.processes;
  process.kill(a1!.pid, 'SIGKILL');
  for (let i = 0; i < 100 && processAlive(a1!.pid, a1!.startTime); i++) await sleep(20);
  assert.deepEqual(
    (await labStatus(plan.lab, { dir: DIR }))!.processes.map((p) => p.alive),
    [false, true],
  );

  const report = await labDown(plan.lab, { dir: DIR });
  assert.equal(report.stateFound, true);
  assert.deepEqual(
    report.processes.map((p) => [p.pid, p.how]),
    [[a2!.pid, 'recorded']],
  );
  assert.deepEqual([...report.namespaces].sort(), [...plan.namespaces].sort());
  assert.deepEqual(
    [...report.links].sort(),
    ['br0@' + plan.underlay.ns, `eth0@${n1!.ns}`, `eth0@${n2!.ns}`, `n0-node1@${plan.underlay.ns}`, `n1-node2@${plan.underlay.ns}`].sort(),
  );
  await assertGone(plan, st.processes, rootBefore);
  assert.deepEqual(await labDown(plan.lab, { dir: DIR }), { lab: plan.lab, stateFound: false, processes: [], links: [], namespaces: [] }, 'idempotent');
  assert.equal(await labStatus(plan.lab, { dir: DIR }), null);
});

test('live: labUp killed with SIGKILL while its agents run — labDown finds and removes everything', { skip: SKIP_LIVE, timeout: 60_000 }, async () => {
  const rootBefore = new Set((await listLinks()).map((l) => l.ifname));
  const plan = planLab(scenario('pmtu-black-hole.yaml'), { name: labId('crash'), without: NO_NETEM });
  const stateUrl = new URL('../../src/live/lab/state.js', import.meta.url).href;
  const code = `
    import { labUp } from ${JSON.stringify(stateUrl)};
    const plan = JSON.parse(process.env.SEINE_TEST_PLAN);
    await labUp(plan, { onNode(n, ns, lab) {
      lab.spawn(ns, ['sleep', '120'], { role: 'agent', node: n.name });
      // and one the lab does not know of, started by the agent's own means
      lab.spawn(ns, ['sh', '-c', 'sleep 121 & wait'], { role: 'shell', node: n.name });
    } }, { dir: process.env.SEINE_TEST_DIR });
    process.stdout.write('up\\n');
    setInterval(() => {}, 1000);
  `;
  const up = spawn(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, SEINE_TEST_PLAN: JSON.stringify(plan), SEINE_TEST_DIR: DIR },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  strays.push(up);
  let err = '';
  up.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`labUp in the child did not finish: ${err}`)), 30_000);
    up.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('up')) {
        clearTimeout(t);
        resolve();
      }
    });
    up.on('exit', (c) => {
      clearTimeout(t);
      reject(new Error(`labUp child exited ${String(c)}: ${err}`));
    });
  });
  up.removeAllListeners('exit');
  up.kill('SIGKILL');
  await new Promise((r) => up.once('exit', r));

  // Everything is still there: namespaces, agents, and the unrecorded grandchildren.
  assert.deepEqual((await labNamespaces(plan.lab)).sort(), [...plan.namespaces].sort());
  const st = new LabStore(plan.lab, DIR).read();
  assert.equal(st.processes.length, 6);
  assert.ok(st.processes.every((p) => processAlive(p.pid, p.startTime)));
  assert.ok(await ping(plan.nodes[0]!.ns, plan.nodes[1]!.underlayIp, { tries: 3 }));

  const report = await labDown(plan.lab, { dir: DIR, graceMs: 2000 });
  assert.equal(report.processes.filter((p) => p.how === 'recorded').length, 6);
  assert.equal(
    report.processes.filter((p) => p.how === 'in-namespace').length,
    3,
    `the three 'sleep 121' found in the namespaces: ${JSON.stringify(report.processes)}`,
  );
  assert.ok(report.processes.filter((p) => p.how === 'in-namespace').every((p) => p.argv.join(' ') === 'sleep 121'));
  await assertGone(plan, st.processes, rootBefore);
});

test('live: a smaller MTU between two nodes, a path fault and a node fault drop what they must', { skip: SKIP_LIVE, timeout: 90_000 }, async () => {
  const s = parseScenario(
    [
      'name: faults',
      'duration: 10s',
      'underlay: { mtu: 1500, bandwidth: 1Gbit }',
      'nodes: [{ name: node1, podCIDR: 10.1.0.0/24 }, { name: node2, podCIDR: 10.2.0.0/24 }, { name: node3, podCIDR: 10.3.0.0/24 }]',
      'links: [{ between: [node1, node3], mtu: 1400, bandwidth: 100Mbit }]',
      'faults:',
      '  - { at: 1s, link: node1-node2, action: down, for: 1s }',
      '  - { at: 3s, link: node3, action: down, for: 1s }',
    ].join('\n') + '\n',
    'faults.yaml',
  );
  const plan = planLab(s, { name: labId('flt'), without: NO_NETEM });
  const rootBefore = new Set((await listLinks()).map((l) => l.ifname));
  await labUp(plan, {}, { dir: DIR });
  try {
    const [n1, n2, n3] = plan.nodes;
    // Pair MTU 1400 between node1 and node3, both ways; node2 still gets 1500.
    assert.ok(await ping(n1!.ns, n3!.underlayIp, { size: 1372, tries: 3 }), '1400 bytes node1 → node3');
    assert.equal(await ping(n1!.ns, n3!.underlayIp, { size: 1373 }), false, '1401 bytes node1 → node3 vanish');
    assert.equal(await ping(n3!.ns, n1!.underlayIp, { size: 1373 }), false, '1401 bytes node3 → node1 vanish');
    assert.ok(await ping(n1!.ns, n2!.underlayIp, { size: 1472, tries: 3 }), '1500 bytes node1 → node2');
    const gso = await ipJson<{ gso_max_segs: number }>(['-d', 'link', 'show', 'eth0'], n1!.ns);
    assert.equal(gso[0]!.gso_max_segs, 1, 'node1 segments before the wire');
    // The pair's own bandwidth: htb with classes on node1's eth0, tbf on node2's.
    assert.deepEqual(
      (await listQdiscs(n1!.ns, 'eth0')).filter((q) => q.root === true).map((q) => q.kind),
      ['htb'],
    );
    assert.deepEqual(
      (await listQdiscs(n2!.ns, 'eth0')).filter((q) => q.root === true).map((q) => q.kind),
      ['tbf'],
      'no latency, jitter or loss here: no netem',
    );
    assert.ok((await listQdiscs(plan.underlay.ns, 'n0-node1')).some((q) => q.kind === 'clsact'));

    const exec = async (i: number): Promise<void> => {
      const f = plan.faults[i]!;
      for (const argv of f.commands) {
        const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
        assert.equal(r.status, 0, `${argv.join(' ')}: ${r.stderr}`);
      }
    };
    assert.deepEqual(
      plan.faults.map((f) => f.what),
      ['path node1-node2 down at 1s', 'path node1-node2 up at 2s', 'node node3 down at 3s', 'node node3 up at 4s'],
    );
    await exec(0);
    assert.equal(await ping(n1!.ns, n2!.underlayIp), false, 'path down: node1 → node2');
    assert.equal(await ping(n2!.ns, n1!.underlayIp), false, 'path down: node2 → node1');
    assert.ok(await ping(n1!.ns, n3!.underlayIp, { tries: 3 }), 'other paths stay up');
    await exec(1);
    assert.ok(await ping(n1!.ns, n2!.underlayIp, { tries: 3 }), 'path up again');
    await exec(2);
    assert.equal(await ping(n1!.ns, n3!.underlayIp), false, 'node3 down');
    const eth3 = (await listLinks(n3!.ns)).find((l) => l.ifname === 'eth0')!;
    assert.ok(eth3.flags.includes('NO-CARRIER') || eth3.operstate !== 'UP', `node3 loses carrier: ${JSON.stringify(eth3)}`);
    assert.ok(
      (await ipJson<{ addr_info: { local: string }[] }>(['addr', 'show', 'dev', 'eth0'], n3!.ns))[0]!.addr_info.some((a) => a.local === n3!.underlayIp),
      'and keeps its address',
    );
    await exec(3);
    assert.ok(await ping(n1!.ns, n3!.underlayIp, { tries: 5 }), 'node3 up again');
  } finally {
    await labDown(plan.lab, { dir: DIR });
  }
  await assertGone(plan, [], rootBefore);
});

test('live: an IPv6 underlay', { skip: SKIP_LIVE, timeout: 60_000 }, async () => {
  const s = parseScenario(
    'name: six\nunderlay: { family: 6, mtu: 1400 }\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }, { name: b, podCIDR: 10.2.0.0/24 }]\n',
    'six.yaml',
  );
  const plan = planLab(s, { name: labId('v6') });
  await labUp(plan, {}, { dir: DIR });
  try {
    assert.ok(await ping(plan.nodes[0]!.ns, plan.nodes[1]!.underlayIp, { tries: 5 }), 'a → b over IPv6');
    assert.ok(await ping(plan.nodes[0]!.ns, plan.nodes[1]!.underlayIp, { size: 1400 - 48 }), '1400 bytes');
    assert.equal((await listLinks(plan.nodes[0]!.ns)).find((l) => l.ifname === 'eth0')!.mtu, 1400);
  } finally {
    await labDown(plan.lab, { dir: DIR });
  }
  assert.deepEqual(await labNamespaces(plan.lab), []);
});

test('live: a failure half-way — a hook that throws, a tc command that fails — takes down everything built', { skip: SKIP_LIVE, timeout: 60_000 }, async () => {
  const rootBefore = new Set((await listLinks()).map((l) => l.ifname));
  // A hook throws at node2, after node1's agent started.
  const plan = planLab(scenario('two-nodes-vxlan.yaml'), { name: labId('hook'), without: NO_NETEM });
  const started: { pid: number; startTime: number }[] = [];
  await assert.rejects(
    labUp(
      plan,
      {
        onNode(node, ns, h) {
          if (node.name === 'node2') throw new Error('agent for node2 would not start');
          started.push(h.spawn(ns, ['sleep', '120'], { role: 'agent', node: node.name }).record);
        },
      },
      { dir: DIR },
    ),
    (e: unknown) => {
      assert.ok(e instanceof LabUpError, String(e));
      assert.match(e.message, /onNode hook for node node2 failed: agent for node2 would not start/);
      assert.match(e.message, /the lab was taken down \(1 process\(es\), 5 link\(s\), 6 namespace\(s\) removed\)/);
      return true;
    },
  );
  assert.equal(started.length, 1);
  await assertGone(plan, started, rootBefore);

  // A shaping command fails while node2 is being built.
  const bad = planLab(scenario('two-nodes-vxlan.yaml'), { name: labId('tc'), without: NO_NETEM });
  bad.nodes[1]!.egress.tc.push(['tc', '-n', bad.nodes[1]!.ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '9:', 'no-such-qdisc']);
  await assert.rejects(labUp(bad, {}, { dir: DIR }), (e: unknown) => {
    assert.ok(e instanceof LabUpError, String(e));
    assert.match(e.message, /shaping \(node node2\): tc -n \S+ qdisc add dev eth0 root handle 9: no-such-qdisc failed: tc -n .*no-such-qdisc: exit code \d+: /);
    assert.equal(e.teardown!.namespaces.length, 3, 'underlay, node1, node2 (the pods were not reached)');
    return true;
  });
  await assertGone(bad, [], rootBefore);
});

test('live: refusals create nothing — a namespace of the lab already there; a recycled pid is never signalled', {
  skip: SKIP_LIVE,
  timeout: 60_000,
}, async () => {
  const plan = planLab(scenario('two-nodes-vxlan.yaml'), { name: labId('clash'), without: NO_NETEM });
  const squatter = plan.nodes[1]!.ns;
  await createNetns(squatter);
  strayNs.push(squatter);
  await assert.rejects(
    labUp(plan, {}, { dir: DIR }),
    (e: unknown) => e instanceof LabRefusedError && e.message.includes(`namespace ${squatter} exists already`),
  );
  assert.deepEqual(await labNamespaces(plan.lab), [squatter], 'nothing created, the other namespace left alone');
  assert.equal(new LabStore(plan.lab, DIR).exists(), false);
  await deleteNetns(squatter);

  // A refused feature: no netem on a kernel that has none (a fake host elsewhere).
  const noNetem = planLab(scenario('two-nodes-vxlan.yaml'), { name: labId('nonetem') });
  await assert.rejects(
    labUp(noNetem, {}, { dir: DIR, host: { ...HOST, kernel: { ...HOST.kernel, netem: false } } }),
    (e: unknown) => e instanceof LabRefusedError && /underlay\.latency: needs the netem qdisc/.test(e.message),
  );
  assert.deepEqual(await labNamespaces(noNetem.lab), []);

  // The state names a pid that now belongs to another process (another start time): it is left alone.
  const p2 = planLab(scenario('two-nodes-vxlan.yaml'), { name: labId('pid'), without: NO_NETEM });
  const lab = await labUp(p2, {}, { dir: DIR });
  const outsider = spawn('sleep', ['60'], { stdio: 'ignore' });
  strays.push(outsider);
  const t = processStartTime(outsider.pid!)!;
  lab.store.update((s) => {
    s.processes.push({ pid: outsider.pid!, startTime: t - 1, ns: null, argv: ['old', 'agent'], role: 'agent', node: 'node1', log: null });
  });
  const report = await labDown(p2.lab, { dir: DIR });
  assert.deepEqual(report.processes, []);
  assert.ok(processAlive(outsider.pid!, t), 'the outsider lives');
  outsider.kill('SIGKILL');
});

test('live: every tc command the plans make is one tc takes (netem: parsed, where the kernel has none)', { skip: SKIP_LIVE, timeout: 60_000 }, async () => {
  const ns = `seine-${labId('scratch')}-x`;
  await createNetns(ns);
  strayNs.push(ns);
  try {
    await runInNetns(ns, ['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'p0']);
    const plans = [
      planLab(scenario('two-nodes-vxlan.yaml')),
      planLab(scenario('tcp-goodput.yaml')),
      planLab(
        parseScenario(
          'name: j\nunderlay: { jitter: 100us, loss: 0.1% }\nlinks: [{ between: [a, b], latency: 2ms }]\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }, { name: b, podCIDR: 10.2.0.0/24 }]\n',
          'j.yaml',
        ),
      ),
      planLab(
        parseScenario(
          'name: six\nunderlay: { family: 6, latency: 1ms }\nlinks: [{ between: [a, b], bandwidth: 1Gbit }]\nnodes: [{ name: a, podCIDR: 10.1.0.0/24 }, { name: b, podCIDR: 10.2.0.0/24 }]\n',
          'six.yaml',
        ),
      ),
    ];
    let netemSeen = 0;
    for (const p of plans) {
      for (const e of p.nodes.flatMap((n) => [n.egress, n.ingress])) {
        for (const argv of e.tc) {
          const a = [...argv];
          assert.deepEqual([a[0], a[1], a[5]], ['tc', '-n', 'dev']);
          a[2] = ns;
          a[6] = 'eth0';
          const r = spawnSync(a[0]!, a.slice(1), { encoding: 'utf8', timeout: 10_000 });
          if (r.status !== 0 && HOST.kernel.netem === false && a.includes('netem')) {
            // tc parsed the arguments and the kernel said it has no such qdisc: the syntax is right.
            assert.match(r.stderr, /Specified qdisc kind is unknown/, `${a.join(' ')}: ${r.stderr}`);
            netemSeen++;
            break; // what hangs below this netem cannot be added
          }
          assert.equal(r.status, 0, `${a.join(' ')}: ${r.stderr}`);
          if (a.includes('netem')) {
            netemSeen++;
            const q = (await listQdiscs(ns, 'eth0')).find((x) => x.kind === 'netem');
            assert.ok(q !== undefined, `${a.join(' ')} made a netem qdisc`);
          }
        }
        spawnSync('tc', ['-n', ns, 'qdisc', 'del', 'dev', 'eth0', 'root'], { stdio: 'ignore' });
      }
    }
    assert.ok(netemSeen >= 10, `netem commands tried: ${netemSeen}`);
  } finally {
    await deleteNetns(ns);
  }
});
