/**
 * GRE through the simulator: the flood-and-learn and ESP labs with `type: gre` in place of VXLAN (l2
 * mode with the key as each segment's VNI; ESP over the GRE packet), and the trace stages of both.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseScenario } from '../../src/scenario/scenario.js';
import { Cluster } from '../../src/sim/cluster.js';
import { traceScenario } from '../../src/sim/tracer.js';

const lab = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../scenarios/${name}.yaml`, import.meta.url)), 'utf8');

test('gre l2: the flood-and-learn lab over GRE — every expectation met, floods replicated per VTEP, key = VNI 5001', () => {
  const s = parseScenario(lab('flood-and-learn').replace('type: vxlan', 'type: gre'), 'fl-gre.yaml');
  assert.equal(s.tunnel.type, 'gre');
  // 1500 - 42: GRE's overhead, not VXLAN's.
  assert.equal(s.nodes[0]!.pods[0]!.mtu, 1458);
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
