/**
 * GRE through the simulator: the flood-and-learn and ESP labs with `type: gre` in place of VXLAN (l2
 * mode with the key as each segment's VNI; ESP over the GRE packet), and the trace stages of both.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseScenario } from '../../src/scenario/scenario.js';
import type { Scenario } from '../../src/scenario/types.js';
import { Cluster } from '../../src/sim/cluster.js';
import { traceScenario } from '../../src/sim/tracer.js';

const lab = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../scenarios/${name}.yaml`, import.meta.url)), 'utf8');

/** Runs the scenario and checks that every expectation was met (the unmet ones in the message). */
function runMeetsExpectations(s: Scenario): void {
  const c = new Cluster(s);
  c.run();
  const r = c.report();
  assert.ok(
    r.ok,
    r.expectations
      .filter((e) => !e.ok)
      .map((e) => `${e.what} ${e.expected}: ${e.actual}`)
      .join('; '),
  );
}

test('gre l2: the flood-and-learn lab over GRE — every expectation met, floods replicated per VTEP, key = VNI 5001', () => {
  const s = parseScenario(lab('flood-and-learn').replace('type: vxlan', 'type: gre'), 'fl-gre.yaml');
  assert.equal(s.tunnel.type, 'gre');
  // 1500 - 42: GRE's overhead, not VXLAN's.
  assert.equal(s.nodes[0]!.pods[0]!.mtu, 1458);
  runMeetsExpectations(s);
  const t = traceScenario(s, { from: 'node1/a', to: 'node3/c', proto: 'udp' });
  assert.equal(t.outcome, 'delivered');
  const dec = t.steps.find((x) => x.node === 'node3' && x.stage === 'decapsulate')!;
  assert.equal(dec.detail['kind'], 'gre');
  assert.equal(dec.detail['vni'], 5001);
});

test('gre + ESP: the esp-encryption lab over GRE — pod MTU 1424, max-size pings fit, trace shows GRE with SPI and no UDP ports', () => {
  const text = lab('esp-encryption').replace('type: vxlan', 'type: gre').replace(/1416/g, '1424');
  const s = parseScenario(text, 'esp-gre.yaml');
  assert.equal(s.nodes[0]!.pods[0]!.mtu, 1424);
  runMeetsExpectations(s);
  const t = traceScenario(s, { from: 'node1/client', to: 'node2/server', proto: 'icmp' });
  assert.equal(t.outcome, 'delivered');
  const enc = t.steps.find((x) => x.stage === 'encapsulate')!;
  assert.equal(enc.detail['kind'], 'gre');
  assert.equal(enc.detail['espSeq'], 1);
  assert.equal(enc.detail['udpSrcPort'], undefined);
  assert.equal(enc.detail['udpDstPort'], undefined);
  assert.match(enc.action, /^gre VNI 1 to 172\.18\.0\.3, ESP SPI/);
  const dec = t.steps.find((x) => x.stage === 'decapsulate')!;
  assert.equal(dec.detail['espSpi'], enc.detail['espSpi']);
  assert.match(dec.action, /authenticated/);
});

test('gre: inner IPv4 without DF too big for the path — outer GRE fragments, reassembled by the receiving node (or the inner packet split)', () => {
  for (const policy of ['outer', 'inner'] as const) {
    const s = parseScenario(
      `name: gre-frag
underlay: { mtu: 1500 }
tunnel: { type: gre, vni: 7, fragmentPolicy: ${policy} }
nodes:
  - { name: node1, podCIDR: 10.244.1.0/24, pods: [{ name: big, mtu: 1500 }] }
  - { name: node2, podCIDR: 10.244.2.0/24, pods: [{ name: server, mtu: 1500 }] }
traffic:
  - { name: udp, type: udp, from: node1/big, to: node2/server, size: 1472, df: false, count: 20, interval: 1ms }
`,
      'gre-frag.yaml',
    );
    const c = new Cluster(s);
    c.run();
    const r = c.report();
    assert.equal(r.flows[0]!.delivered, 20, policy);
    const t1 = c.nodes.get('node1')!.tunnel;
    const t2 = c.nodes.get('node2')!.tunnel;
    assert.equal(t1.mtuStats.fragmented, 20, policy);
    assert.equal(t2.mtuStats.reassembled, policy === 'outer' ? 20 : 0, policy);
  }
});

test('gre + ESP in UDP (RFC 3948): 8 bytes more than ESP over IP — pod MTU 1416, every expectation of the ESP lab met', () => {
  const text = lab('esp-encryption').replace('type: vxlan', 'type: gre').replace('udpEncap: false', 'udpEncap: true');
  const s = parseScenario(text, 'esp-udp-gre.yaml');
  // 42 (GRE) + 34 (ESP with AES-GCM at this length) + 8 (UDP 4500): the same 84 as VXLAN with ESP over IP.
  assert.equal(s.nodes[0]!.pods[0]!.mtu, 1416);
  runMeetsExpectations(s);
});
