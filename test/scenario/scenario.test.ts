/**
 * The scenario loader: the example files parse into their normalised form, every kind of bad input is
 * refused with the exact file, line, column, key and expectation, unknown keys get a did-you-mean, units
 * convert, and any valid scenario survives YAML stringify → parse → normalise → stringify → parse.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  didYouMean,
  editDistance,
  fmtDuration,
  loadScenario,
  parseScenario,
  ScenarioError,
  scenarioToObject,
  type Scenario,
} from '../../src/scenario/scenario.js';
import { stringify } from '../../src/scenario/yaml.js';
import { scenarioError } from './refused.js';

/** This file runs as dist/test/scenario/scenario.test.js: the project root is three levels up. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function err(text: string, file = 'bad.yaml'): ScenarioError {
  return scenarioError(text, file);
}

test('scenario: two-nodes-vxlan.yaml parses into its normalised form', () => {
  const s = loadScenario(join(ROOT, 'scenarios', 'two-nodes-vxlan.yaml'));
  assert.equal(s.name, 'two-nodes-vxlan');
  assert.equal(s.seed, 7);
  assert.equal(s.durationNs, 5_000_000_000);
  assert.deepEqual(s.underlay, { mtu: 1500, latencyNs: 100_000, jitterNs: 0, bandwidthBps: 10_000_000_000, loss: 0, family: 4 });
  assert.deepEqual(s.tunnel, { type: 'vxlan', mode: 'routed', vni: 1, options: [], fragmentPolicy: 'outer', icmpTooBig: true, mssClamp: true });
  assert.equal(s.encryption, null);
  assert.equal(s.podMtu, 1450);
  assert.deepEqual(
    s.nodes.map((n) => [n.name, n.podCIDR4, n.podCIDR6, n.gateway4, n.gateway6, n.underlayIp]),
    [
      ['node1', '10.244.1.0/24', null, '10.244.1.1', null, '172.18.0.2'],
      ['node2', '10.244.2.0/24', 'fd00:10:244:2::/64', '10.244.2.1', 'fd00:10:244:2::1', '172.18.0.3'],
    ],
  );
  // Addresses assigned from the podCIDR after the gateway, in file order; explicit ones kept.
  assert.deepEqual(
    s.nodes.flatMap((n) => n.pods.map((p) => [p.node, p.name, p.ip4, p.ip6, p.mtu])),
    [
      ['node1', 'a', '10.244.1.2', null, 1450],
      ['node1', 'b', '10.244.1.3', null, 1450],
      ['node2', 'c', '10.244.2.10', 'fd00:10:244:2::10', 1450],
    ],
  );
  const [ping, udp] = s.traffic;
  assert.deepEqual(ping, {
    name: 'ping-ac',
    type: 'ping',
    from: { node: 'node1', pod: 'a' },
    to: { node: 'node2', pod: 'c' },
    family: 4,
    startNs: 1e9,
    count: 10,
    intervalNs: 100e6,
    sizes: [84],
    bytes: 0,
    df: true,
    replay: null,
  });
  assert.equal(udp!.df, false);
  assert.deepEqual(udp!.sizes, [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1500]);
  // Simple IMIX (7 × 64, 4 × 576, 1 × 1500) averages 4252 / 12 bytes: at 100 Mbit/s one packet every 28347 ns.
  assert.equal(udp!.intervalNs, 28347);
  assert.deepEqual(s.capture, [
    { node: 'node1', port: 'a' },
    { node: 'node1', port: 'underlay' },
    { node: 'node2', port: 'c' },
  ]);
  assert.deepEqual(s.expect[0]!.delivered, { op: '>=', value: 1 });
  assert.deepEqual(s.expect[0]!.latencyP99Ns, { op: '<', value: 1_000_000 });
  assert.deepEqual(s.expect[0]!.icmpSeen, ['echo-reply']);
  assert.deepEqual(s.expect[1]!.delivered, { op: '>=', value: 0.99 });
  assert.deepEqual(s.expect[2]!.drops, { node1: { MtuExceeded: { op: '==', value: 0 } } });
});

test('scenario: pmtu-black-hole.yaml parses into its normalised form', () => {
  const s = loadScenario(join(ROOT, 'scenarios', 'pmtu-black-hole.yaml'));
  assert.equal(s.name, 'pmtu-black-hole');
  assert.equal(s.durationNs, 3e9);
  assert.equal(s.tunnel.fragmentPolicy, 'drop');
  assert.equal(s.podMtu, 1450);
  assert.deepEqual(
    s.nodes.map((n) => n.pods.map((p) => [p.name, p.ip4, p.mtu])),
    [[['client', '10.244.1.2', 1500]], [['server', '10.244.2.2', 1500]], [['server', '10.244.3.2', 1500]]],
  );
  assert.deepEqual(s.links, [{ a: 'node1', b: 'node3', mtu: 1400, latencyNs: null, jitterNs: null, bandwidthBps: null, loss: null }]);
  assert.deepEqual(
    s.traffic.map((t) => [t.name, t.to.node, t.sizes[0], t.df, t.startNs]),
    [
      ['big-ok', 'node2', 1472, true, 0],
      ['big-hole', 'node3', 1400, true, 1e9],
      ['small', 'node3', 84, true, 2e9],
    ],
  );
  assert.deepEqual(s.faults, []);
  assert.deepEqual(
    s.expect.map((e) => e.icmpSeen),
    [['frag-needed'], ['none'], [], []],
  );
  assert.deepEqual(s.expect[1]!.delivered, { op: '==', value: 0 });
  assert.deepEqual(s.expect[3]!.drops, { node1: { FragNeededDf: { op: '>', value: 0 } } });
  assert.deepEqual(s.expect[3]!.counters, { 'node1.tunnel.icmpSent': { op: '>=', value: 1 } });
});

const BASE = `name: t
nodes:
  - name: n1
    podCIDR: 10.0.1.0/24
    pods:
      - name: a
  - name: n2
    podCIDR: 10.0.2.0/24
    pods:
      - name: b
`;

test('scenario: the base of the bad-input table is itself valid', () => {
  const s = parseScenario(BASE, 'base.yaml');
  assert.equal(s.nodes.length, 2);
});

/** [what, text, line, column, key, expected (whole, or a prefix ending in …)] */
const BAD: Array<[string, string, number, number, string, string]> = [
  ['malformed flow map', 'name: t\nnodes: [ {name: a\n', 3, 1, '', 'well-formed YAML'],
  ['tab indentation', 'name: t\n\tnodes: []\n', 2, 1, '', 'well-formed YAML'],
  ['duplicate key', 'name: t\nname: u\n', 2, 1, '', 'well-formed YAML'],
  ['not a mapping', '- a\n- b\n', 1, 1, '', 'a scenario mapping'],
  ['missing name', 'nodes: []\n', 1, 1, 'name', 'a scenario name (required)'],
  [
    'unknown live feature',
    BASE + 'live: { without: [latncy], note: x }\n',
    11,
    19,
    'live.without[0]',
    'one of latency, jitter, loss, bandwidth, linkMtu, linkFaults, nodeFaults',
  ],
  ['live without a note', BASE + 'live: { without: [latency] }\n', 11, 7, 'live.note', 'a note: why a part cannot go live (required)'],
  [
    'unknown root key',
    BASE + 'durration: 1s\n',
    11,
    1,
    'durration',
    'one of the keys name, description, lesson, seed, duration, underlay, tunnel, encryption, nodes, links, traffic, faults, capture, expect, live',
  ],
  [
    'unknown node key',
    'name: t\nnodes:\n  - name: n1\n    podCidr: 10.0.0.0/24\n',
    4,
    5,
    'nodes[0].podCidr',
    'one of the keys name, podCIDR, underlayIp, pods',
  ],
  ['missing podCIDR in routed mode', 'name: t\nnodes:\n  - name: n1\n', 3, 5, 'nodes[0].podCIDR', 'a podCIDR (routed mode) (required)'],
  ['empty nodes', 'name: t\nnodes: []\n', 2, 8, 'nodes', 'at least one node'],
  ['duplicate node', BASE + '  - name: n1\n    podCIDR: 10.0.3.0/24\n', 11, 11, 'nodes[2].name', 'a unique node name'],
  [
    'overlapping podCIDR',
    BASE + '  - name: n3\n    podCIDR: 10.0.0.0/16\n',
    12,
    14,
    'nodes[2].podCIDR',
    'a podCIDR that overlaps no other (nodes[0].podCIDR is 10.0.1.0/24)',
  ],
  [
    'host bits in podCIDR',
    'name: t\nnodes:\n  - name: n1\n    podCIDR: 10.0.1.5/24\n',
    4,
    14,
    'nodes[0].podCIDR',
    'a network address with the host bits zero (10.0.1.0/24)',
  ],
  [
    'pod ip outside podCIDR',
    'name: t\nnodes:\n  - name: n1\n    podCIDR: 10.0.1.0/24\n    pods:\n      - { name: a, ip: 10.0.2.5 }\n',
    6,
    24,
    'nodes[0].pods[0].ip',
    "an address inside n1's podCIDR 10.0.1.0/24",
  ],
  [
    'duplicate pod address',
    'name: t\nnodes:\n  - name: n1\n    podCIDR: 10.0.1.0/24\n    pods:\n      - { name: a, ip: 10.0.1.5 }\n      - { name: b, ip: 10.0.1.5 }\n',
    7,
    24,
    'nodes[0].pods[1].ip',
    'a unique address (nodes[0].pods[0].ip has it)',
  ],
  [
    "a pod named like the node's own stack",
    'name: t\nnodes:\n  - name: n1\n    podCIDR: 10.0.1.0/24\n    pods:\n      - name: host\n',
    6,
    15,
    'nodes[0].pods[0].name',
    'a pod name of letters, digits, ".", "_" and "-" (not "underlay", "gw", "host")',
  ],
  [
    'interval for a tcp flow',
    BASE + 'traffic:\n  - { type: tcp, from: n1/a, to: n2/b, interval: 5ms }\n',
    12,
    50,
    'traffic[0].interval',
    'no interval for tcp (segments follow the MSS and the window; give bytes)',
  ],
  [
    'a node as an endpoint in l2 mode',
    'name: t\ntunnel: { mode: l2 }\nnodes:\n  - { name: n1, podCIDR: 10.0.1.0/24, pods: [{ name: a }] }\ntraffic:\n  - { type: ping, from: n1, to: n1/a }\n',
    6,
    25,
    'traffic[0].from',
    "a pod (node/pod): a node's own stack sits behind its gateway, which l2 mode has not",
  ],
  [
    'duplicate pod name',
    'name: t\nnodes:\n  - name: n1\n    podCIDR: 10.0.1.0/24\n    pods:\n      - name: a\n      - name: a\n',
    7,
    15,
    'nodes[0].pods[1].name',
    'a pod name unique on node n1',
  ],
  [
    'duplicate underlay ip',
    'name: t\nnodes:\n  - { name: n1, podCIDR: 10.0.1.0/24, underlayIp: 192.168.0.1 }\n  - { name: n2, podCIDR: 10.0.2.0/24, underlayIp: 192.168.0.1 }\n',
    4,
    51,
    'nodes[1].underlayIp',
    'a unique underlay address',
  ],
  [
    'pod mtu below 576',
    'name: t\nnodes:\n  - name: n1\n    podCIDR: 10.0.1.0/24\n    pods:\n      - { name: a, mtu: 500 }\n',
    6,
    25,
    'nodes[0].pods[0].mtu',
    'an MTU in 576-65535',
  ],
  [
    'IPv6 pod mtu below 1280',
    'name: t\nnodes:\n  - name: n1\n    podCIDR: ["10.0.1.0/24", "fd00::/64"]\n    pods:\n      - { name: a, mtu: 1000 }\n',
    6,
    25,
    'nodes[0].pods[0].mtu',
    'an MTU in 1280-65535 (the pod has an IPv6 address)',
  ],
  [
    'underlay mtu below 1280 over IPv6',
    'name: t\nunderlay: { family: 6, mtu: 1200 }\nnodes: []\n',
    2,
    29,
    'underlay.mtu',
    'an MTU in 1280-65535 (IPv6 underlay)',
  ],
  [
    'underlay mtu leaves pods < 576',
    'name: t\nunderlay:\n  mtu: 600\nnodes: []\n',
    3,
    8,
    'underlay.mtu',
    'an underlay MTU that leaves pods at least 576 bytes after the overlay',
  ],
  [
    'underlay mtu leaves IPv6 pods < 1280',
    'name: t\nunderlay: { mtu: 1300 }\nnodes:\n  - name: n1\n    podCIDR: "fd00::/64"\n    pods: [{ name: a }]\n',
    2,
    18,
    'underlay.mtu',
    'an underlay MTU that leaves IPv6 pods at least 1280 bytes after the overlay (nodes[0].pods[0] has an IPv6 address)',
  ],
  ['unknown tunnel type', 'name: t\ntunnel:\n  type: vxlam\nnodes: []\n', 3, 9, 'tunnel.type', 'one of vxlan, geneve, gre'],
  ['unknown cipher', 'name: t\nencryption: { cipher: aes-cbc }\nnodes: []\n', 2, 23, 'encryption.cipher', 'one of aes-gcm-128, aes-gcm-256, chacha20-poly1305'],
  [
    'geneve options on vxlan',
    'name: t\ntunnel:\n  type: vxlan\n  options: [{ class: 1, type: 1 }]\nnodes: []\n',
    4,
    12,
    'tunnel.options',
    "no options (they are Geneve's; tunnel.type is vxlan)",
  ],
  [
    'geneve options on gre',
    'name: t\ntunnel:\n  type: gre\n  options: [{ class: 1, type: 1 }]\nnodes: []\n',
    4,
    12,
    'tunnel.options',
    "no options (they are Geneve's; tunnel.type is gre)",
  ],
  [
    'geneve option data not 4n bytes',
    'name: t\ntunnel:\n  type: geneve\n  options: [{ class: 1, type: 1, data: "abcd" }]\nnodes: []\n',
    4,
    40,
    'tunnel.options[0].data',
    'hex data in quotes, a multiple of 4 bytes, at most 124',
  ],
  ['duration without unit', 'name: t\nduration: 10\nnodes: []\n', 2, 11, 'duration', 'a duration with a unit (ns, us, ms, s), e.g. 100ms'],
  ['bad bandwidth', 'name: t\nunderlay: { bandwidth: 10GB }\nnodes: []\n', 2, 24, 'underlay.bandwidth', 'a bandwidth such as 10Gbit or 1Mbit'],
  ['loss above 100%', 'name: t\nunderlay: { loss: 150% }\nnodes: []\n', 2, 19, 'underlay.loss', 'a fraction 0-1 or a percentage such as 1%'],
  [
    'traffic from a missing node',
    BASE + 'traffic:\n  - { type: ping, from: n9/a, to: n2/b }\n',
    12,
    25,
    'traffic[0].from',
    'node/pod or node naming an existing node (n1, n2)',
  ],
  ['traffic to a missing pod', BASE + 'traffic:\n  - { type: ping, from: n1/a, to: n2/c }\n', 12, 35, 'traffic[0].to', 'a pod of node n2 (b)'],
  ['traffic to itself', BASE + 'traffic:\n  - { type: udp, from: n1/a, to: n1/a }\n', 12, 34, 'traffic[0].to', 'a receiver other than the sender'],
  ['missing traffic type', BASE + 'traffic:\n  - { from: n1/a, to: n2/b }\n', 12, 5, 'traffic[0].type', 'a traffic type (required)'],
  [
    'fault beyond duration',
    BASE + 'duration: 2s\nfaults:\n  - { at: 3s, link: n1-n2, action: down }\n',
    13,
    11,
    'faults[0].at',
    "a time within the scenario's duration (2s)",
  ],
  [
    'fault "for" beyond duration',
    BASE + 'duration: 2s\nfaults:\n  - { at: 1s, link: n1, action: down, for: 2s }\n',
    13,
    44,
    'faults[0].for',
    "a fault that ends within the scenario's duration (2s)",
  ],
  [
    'fault on a missing link',
    BASE + 'faults:\n  - { at: 1s, link: n1-n3, action: down }\n',
    12,
    21,
    'faults[0].link',
    'a node or a link a-b between existing nodes (n1, n2)',
  ],
  ['capture on a missing pod', BASE + 'capture: [n1/a, n2/zz]\n', 11, 17, 'capture[1]', 'a pod of node n2 (b)'],
  [
    'expect an unknown flow',
    BASE + 'traffic:\n  - { name: p, type: ping, from: n1/a, to: n2/b }\nexpect:\n  - { flow: q, delivered: ">= 99%" }\n',
    14,
    13,
    'expect[0].flow',
    'a flow named in traffic (p)',
  ],
  [
    'expect an unknown drop reason',
    BASE + 'expect:\n  - drops: { n1: { MtuExceded: 1 } }\n',
    12,
    20,
    'expect[0].drops.n1.MtuExceded',
    'a drop reason (a DropReason name, see wire/drop.ts)',
  ],
  ['expect drops on a missing node', BASE + 'expect:\n  - drops: { n3: { MtuExceeded: 1 } }\n', 12, 14, 'expect[0].drops.n3', 'a node name (n1, n2)'],
  [
    'a comparison that is not one',
    BASE + 'traffic:\n  - { name: p, type: ping, from: n1/a, to: n2/b }\nexpect:\n  - { flow: p, latencyP99: "< fast" }\n',
    14,
    28,
    'expect[0].latencyP99',
    'a comparison such as "< 2ms"',
  ],
  [
    'vlan out of range',
    'name: t\nnodes:\n  - name: n1\n    podCIDR: 10.0.1.0/24\n    pods:\n      - { name: a, vlan: 4095 }\n',
    6,
    26,
    'nodes[0].pods[0].vlan',
    'a VLAN in 1-4094',
  ],
];

for (const [what, text, line, column, key, expected] of BAD) {
  test(`scenario: bad input: ${what}`, () => {
    const e = err(text);
    assert.deepEqual({ file: e.file, line: e.line, column: e.column, key: e.key, expected: e.expected }, { file: 'bad.yaml', line, column, key, expected });
    assert.ok(e.message.startsWith(`bad.yaml:${line}:${column}: ${key === '' ? '' : key + ': '}expected ${expected}, got `), e.message);
    assert.doesNotMatch(e.message, /\n/);
  });
}

test('scenario: the bad-input table has at least 20 distinct positions and keys', () => {
  assert.ok(BAD.length >= 20);
  assert.ok(new Set(BAD.map(([, , l, c, k]) => `${l}:${c}:${k}`)).size >= 20);
});

test('scenario: unknown keys and values get a did-you-mean within distance 2, and none beyond', () => {
  assert.match(err('name: t\nnodes:\n  - name: n1\n    podCidr: 10.0.0.0/24\n').message, / \(did you mean "podCIDR"\?\)$/);
  assert.match(err(BASE + 'durration: 1s\n').message, /\(did you mean "duration"\?\)$/);
  assert.match(err('name: t\ntunnel: { type: genve }\nnodes: []\n').message, /\(did you mean "geneve"\?\)$/);
  assert.match(err('name: t\ntunnel: { fragmentpolicy: drop }\nnodes: []\n').message, /\(did you mean "fragmentPolicy"\?\)$/);
  assert.match(err(BASE + 'expect:\n  - drops: { n1: { MtuExceded: 1 } }\n').message, /\(did you mean "MtuExceeded"\?\)$/);
  assert.match(err(BASE + 'traffic:\n  - { type: ping, from: n1/a, to: n2/c }\n').message, /\(did you mean "n2\/b"\?\)$/);
  const far = err('name: t\nzzzzzz: 1\nnodes: []\n');
  assert.doesNotMatch(far.message, /did you mean/);
  assert.equal(far.hint, null);
  assert.equal(editDistance('podCidr', 'podCIDR'), 3);
  assert.equal(didYouMean('podCidr', ['name', 'podCIDR', 'pods']), 'podCIDR');
  assert.equal(didYouMean('nodez', ['nodes', 'name']), 'nodes');
  assert.equal(didYouMean('xyzzy', ['nodes', 'name']), null);
});

test('scenario: live says what a live lab leaves out by default, and why', () => {
  const s = parseScenario(BASE + 'live:\n  without: [latency, loss, latency]\n  note: >\n    no netem\n    here\n', 'l.yaml');
  assert.deepEqual(s.live, { without: ['latency', 'loss'], note: 'no netem here\n' });
  assert.equal(parseScenario(BASE + 'live: { without: linkMtu, note: x }\n', 'l.yaml').live?.without.join(), 'linkMtu');
  assert.equal(parseScenario(BASE, 'l.yaml').live, null);
  assert.match(err(BASE + 'live: { without: [latncy], note: x }\n').message, /\(did you mean "latency"\?\)$/);
  for (const f of readdirSync(join(ROOT, 'scenarios')).filter((x) => x.endsWith('.yaml'))) {
    const l = loadScenario(join(ROOT, 'scenarios', f)).live;
    assert.ok(l !== null && l.note.trim() !== '', `${f}: every lab says how it goes live (live: { without, note })`);
  }
});

test('scenario: units convert to ns, bit/s and fractions', () => {
  const s = parseScenario(
    'name: t\nduration: 1.5s\nunderlay: { latency: 250us, jitter: 40ns, bandwidth: 1Mbit, loss: 2.5% }\nnodes:\n  - { name: n1, podCIDR: 10.0.1.0/24, pods: [{ name: a }, { name: b }] }\ntraffic:\n  - { type: udp, from: n1/a, to: n1/b, interval: 2ms, size: 1250 }\n  - { type: udp, from: n1/a, to: n1/b, rate: 10Mbit, size: 1250 }\n  - { type: tcp, from: n1/a, to: n1/b, bytes: 5000 }\nexpect:\n  - { flow: flow-1, latencyMax: "<= 3.5ms", delivered: 0.5 }\n',
    'u.yaml',
  );
  assert.equal(s.durationNs, 1_500_000_000);
  assert.deepEqual(s.underlay, { mtu: 1500, latencyNs: 250_000, jitterNs: 40, bandwidthBps: 1_000_000, loss: 0.025, family: 4 });
  assert.equal(s.traffic[0]!.intervalNs, 2_000_000);
  assert.equal(s.traffic[1]!.intervalNs, 1_000_000); // 1250 B × 8 at 10 Mbit/s
  assert.deepEqual([s.traffic[2]!.bytes, s.traffic[2]!.count, s.traffic[2]!.df], [5000, 0, true]);
  assert.deepEqual(s.expect[0]!.latencyMaxNs, { op: '<=', value: 3_500_000 });
  assert.deepEqual(s.expect[0]!.delivered, { op: '==', value: 0.5 });
  assert.equal(fmtDuration(1_500_000_000), '1500ms');
  assert.equal(fmtDuration(40), '40ns');
  assert.equal(fmtDuration(0), '0s');
});

test('scenario: labs: geneve options, ESP, l2 tenants on separate VNIs reusing addresses, faults on links and nodes', () => {
  const s = parseScenario(
    `name: lab
tunnel: { type: geneve, mode: l2, vni: 100, options: [{ class: 0x0102, type: 0x80, data: "0000000A" }] }
encryption: { cipher: chacha20-poly1305, udpEncap: true }
nodes:
  - name: n1
    pods:
      - { name: red, ip: 192.168.1.10, vni: 100 }
      - { name: blue, ip: 192.168.1.10, vni: 200, vlan: 20 }
  - name: n2
    pods:
      - { name: red, ip: 192.168.1.11 }
  - name: n3
faults:
  - { at: 1s, link: [n1, n2], action: down, for: 500ms }
  - { at: 2s, link: n3, action: down }
  - { at: 3s, link: n1-n3, action: up }
`,
    'lab.yaml',
  );
  assert.deepEqual(s.tunnel.options, [{ class: 0x0102, type: 0x80, data: '0000000a' }]);
  assert.deepEqual(s.encryption, { cipher: 'chacha20-poly1305', udpEncap: true, secret: 'seine' });
  // 1500 − 50 (Geneve) − 8 (option) − ESP-in-UDP: 8 UDP + 8 header + 8 IV + 2 trailer + 16 ICV + padding.
  assert.ok(s.podMtu < 1442 && s.podMtu > 1390, String(s.podMtu));
  assert.deepEqual(
    s.nodes[0]!.pods.map((p) => [p.vni, p.vlan]),
    [
      [100, null],
      [200, 20],
    ],
  );
  assert.equal(s.nodes[1]!.pods[0]!.vni, 100);
  assert.deepEqual(
    s.faults.map((f) => f.target),
    [
      { kind: 'link', a: 'n1', b: 'n2' },
      { kind: 'node', node: 'n3' },
      { kind: 'link', a: 'n1', b: 'n3' },
    ],
  );
  // The same address twice on one segment is refused.
  const e = err(
    'name: lab\ntunnel: { mode: l2 }\nnodes:\n  - name: n1\n    pods:\n      - { name: a, ip: 192.168.1.10 }\n  - name: n2\n    pods:\n      - { name: a, ip: 192.168.1.10 }\n',
  );
  assert.deepEqual([e.line, e.column, e.key], [9, 24, 'nodes[1].pods[0].ip']);
});

test('scenario: loadScenario names a missing file', () => {
  const e = (() => {
    try {
      loadScenario('/nonexistent/x.yaml');
    } catch (x: unknown) {
      return x;
    }
    return null;
  })();
  assert.ok(e instanceof ScenarioError);
  assert.equal(e.message, '/nonexistent/x.yaml:1:1: expected a readable scenario file, got no such file');
});

// ---------------------------------------------------------------------------------------------------
// Round trip: generated valid scenarios → YAML → parse → scenarioToObject → YAML → parse is stable.

const durationArb = fc.oneof(
  fc.integer({ min: 1, max: 999 }).map((n) => `${n}ns`),
  fc.integer({ min: 1, max: 999 }).map((n) => `${n}us`),
  fc.integer({ min: 1, max: 999 }).map((n) => `${n}ms`),
);

const rawScenarioArb = fc.record({
  seed: fc.integer({ min: 0, max: 0xffffffff }),
  durationS: fc.integer({ min: 2, max: 60 }),
  mtu: fc.integer({ min: 1500, max: 9000 }),
  family: fc.constantFrom(4, 6),
  latency: durationArb,
  bandwidth: fc.option(fc.constantFrom('10Gbit', '1Mbit', '100Mbit', '2500bit'), { nil: undefined }),
  loss: fc.constantFrom(0, 0.01, '5%', 0.25),
  tunnelType: fc.constantFrom('vxlan', 'geneve'),
  optionLens: fc.array(fc.constantFrom(0, 4, 8), { maxLength: 2 }),
  cipher: fc.option(fc.constantFrom('aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'), { nil: undefined }),
  nodes: fc.array(
    fc.record({
      v6: fc.boolean(),
      pods: fc.array(
        fc.record({
          explicit: fc.boolean(),
          vlan: fc.option(fc.integer({ min: 1, max: 4094 }), { nil: undefined }),
          mtu: fc.option(fc.integer({ min: 1280, max: 9000 }), { nil: undefined }),
        }),
        { maxLength: 3 },
      ),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  traffic: fc.array(
    fc.record({
      type: fc.constantFrom('ping', 'udp', 'tcp'),
      a: fc.nat(),
      b: fc.nat(),
      start: fc.integer({ min: 0, max: 1 }),
      df: fc.option(fc.boolean(), { nil: undefined }),
    }),
    { maxLength: 3 },
  ),
  faults: fc.array(
    fc.record({ a: fc.nat(), b: fc.nat(), at: fc.integer({ min: 0, max: 1000 }), for: fc.option(fc.integer({ min: 1, max: 900 }), { nil: undefined }) }),
    { maxLength: 3 },
  ),
});

type Raw = typeof rawScenarioArb extends fc.Arbitrary<infer T> ? T : never;

function rawToObject(r: Raw): Record<string, unknown> {
  const nodes = r.nodes.map((n, i) => ({
    name: `node-${i}`,
    podCIDR: n.v6 ? [`10.${i}.0.0/16`, `fd00:${i}::/64`] : `10.${i}.0.0/16`,
    pods: n.pods.map((p, j) => {
      const o: Record<string, unknown> = { name: `pod-${j}` };
      if (p.explicit) o.ip = n.v6 ? [`10.${i}.1.${j + 10}`, `fd00:${i}::${j + 10}`] : `10.${i}.1.${j + 10}`;
      if (p.vlan !== undefined) o.vlan = p.vlan;
      if (p.mtu !== undefined) o.mtu = p.mtu;
      return o;
    }),
  }));
  const eps = nodes.flatMap((n) => [n.name, ...n.pods.map((p) => `${n.name}/${String(p.name)}`)]);
  // A flow needs two different endpoints: with one only (a lone node without pods) there is no traffic.
  const traffic = (eps.length < 2 ? [] : r.traffic).map((t, i) => {
    const from = t.a % eps.length;
    const to = (from + 1 + (t.b % (eps.length - 1))) % eps.length;
    const o: Record<string, unknown> = { name: `f${i}`, type: t.type, from: eps[from], to: eps[to], start: `${t.start}s` };
    if (t.df !== undefined) o.df = t.df;
    return o;
  });
  const faults = r.faults.map((f) => {
    const a = `node-${f.a % nodes.length}`;
    const b = `node-${f.b % nodes.length}`;
    const o: Record<string, unknown> = { at: `${f.at}ms`, link: a === b ? a : `${a}-${b}`, action: 'down' };
    if (f.for !== undefined) o.for = `${f.for}ms`;
    return o;
  });
  const out: Record<string, unknown> = {
    name: 'generated',
    seed: r.seed,
    duration: `${r.durationS}s`,
    underlay: { mtu: r.mtu, family: r.family, latency: r.latency, loss: r.loss, ...(r.bandwidth === undefined ? {} : { bandwidth: r.bandwidth }) },
    tunnel: {
      type: r.tunnelType,
      ...(r.tunnelType === 'geneve' && r.optionLens.length > 0
        ? { options: r.optionLens.map((l, k) => ({ class: k, type: 0x80 | k, data: 'ab'.repeat(l) })) }
        : {}),
    },
    nodes,
    traffic,
    faults,
    capture: eps.slice(0, 2).filter((e) => e.includes('/')),
    expect: traffic.map((t) => ({ flow: t.name, delivered: '>= 99.5%', latencyP99: '< 2ms' })),
  };
  if (r.cipher !== undefined) out.encryption = { cipher: r.cipher };
  return out;
}

test('scenario: property: a valid scenario round-trips through YAML to the same normalised object', () => {
  fc.assert(
    fc.property(rawScenarioArb, (raw) => {
      const obj = rawToObject(raw);
      const s1: Scenario = parseScenario(stringify(obj), 'gen.yaml');
      assert.equal(s1.nodes.length, raw.nodes.length);
      assert.equal(s1.seed, raw.seed);
      const s2 = parseScenario(stringify(scenarioToObject(s1)), 'gen2.yaml');
      assert.deepEqual(s2, s1);
      // Every pod address is unique and inside its node's podCIDR's /16.
      const ips = s1.nodes.flatMap((n) => n.pods.map((p) => p.ip4!));
      assert.equal(new Set(ips).size, ips.length);
      for (const n of s1.nodes) for (const p of n.pods) assert.ok(p.ip4!.startsWith(n.podCIDR4!.split('.').slice(0, 2).join('.') + '.'));
    }),
    { numRuns: 200 },
  );
});

test('scenario: the CLI convention: a ScenarioError message is one line and carries no stack', () => {
  // What src/cli/main.ts prints for a user's mistake: the message alone, then exit 2.
  const script = `import('${join(ROOT, 'dist/src/scenario/scenario.js').replace(/\\/g, '/')}').then((m) => { try { m.parseScenario('name: t\\nnodes: [', 'x.yaml'); } catch (e) { if (e instanceof m.ScenarioError) { process.stderr.write('seine: ' + e.message + '\\n'); process.exit(2); } throw e; } });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^seine: x\.yaml:\d+:\d+: expected well-formed YAML, got a syntax error: .+\n$/);
  assert.doesNotMatch(r.stderr, / {4}at /);
});

test('scenario: default underlay addresses go on past 172.18.0.255 (node 255 is 172.18.1.0)', () => {
  const nodes = Array.from({ length: 300 }, (_, i) => `  - { name: n${i}, podCIDR: 10.${i >> 8}.${i & 255}.0/24 }`).join('\n');
  const s = parseScenario(`name: many\nnodes:\n${nodes}\n`, 'many.yaml');
  assert.equal(s.nodes[253]!.underlayIp, '172.18.0.255');
  assert.equal(s.nodes[254]!.underlayIp, '172.18.1.0');
  assert.equal(s.nodes[299]!.underlayIp, '172.18.1.45');
  assert.equal(new Set(s.nodes.map((n) => n.underlayIp)).size, 300);
});
