/**
 * The batched AEAD through the whole datapath: the simulator runs ESP scenarios once as it always does
 * (one packet at a time) and once as the live agent does (`batchAead`: the tunnel seals what it
 * encapsulated when the port's queue goes out, and opens a received batch in one call before decap
 * finishes each packet in order) — natively, and with the per-packet fallback inside the batches. Reports
 * and every capture must be byte-identical: batching changes how often the cipher is entered, never a
 * sequence number, an SA rotation, a counter or a byte. The scenarios cover AES-GCM and ChaCha20-Poly1305,
 * IPv4 and IPv6 underlays, ESP in UDP (the IPv6 UDP checksum after sealing), outer fragmentation of
 * sealed packets (a pod whose MTU is the underlay's), TCP, and the hellos that set SAs up.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { NativeAead } from '../../src/esp/aead-batch.js';
import { loadNative, nativeUnavailable } from '../../src/live/native.js';
import { loadScenario, parseScenario, type Scenario } from '../../src/scenario/scenario.js';
import { Cluster } from '../../src/sim/cluster.js';

const LABS = fileURLToPath(new URL('../../../scenarios/', import.meta.url));
const why = nativeUnavailable();
if (why !== null) console.log(`# SKIPPING the native runs: ${why}`);

const V6 = `
name: v6-esp-udp
duration: 1s
underlay: { mtu: 1500, latency: 10us, family: 6 }
tunnel: { type: geneve }
encryption: { cipher: chacha20-poly1305, udpEncap: true }
nodes:
  - { name: n1, podCIDR: [10.244.1.0/24, "fd00:1::/64"], pods: [{ name: a }, { name: c, mtu: 1500 }] }
  - { name: n2, podCIDR: [10.244.2.0/24, "fd00:2::/64"], pods: [{ name: b }] }
traffic:
  - { name: frag, type: udp, from: n1/c, to: n2/b, count: 20, rate: 1Gbit, size: 1480 }
  - { name: p6, type: ping, from: n1/a, to: n2/b, family: 6, count: 3, interval: 10ms }
  - { name: u6, type: udp, from: n1/a, to: n2/b, family: 6, count: 200, rate: 1Gbit, sizes: [100, 1300] }
  - { name: t6, type: tcp, from: n1/a, to: n2/b, family: 6, bytes: 200000 }
  - { name: big4, type: udp, from: n1/a, to: n2/b, count: 5, size: 4000 }
capture: [n1/a, n1/underlay, n2/underlay, n2/b]
expect:
  - { flow: frag, delivered: ">= 100%" }
`;

/** Name, scenario, and whether its traffic comes in bursts (the lab's paced flows reach the bridge a frame at a time). */
const SCENARIOS: Array<[string, () => Scenario, boolean]> = [
  ['esp-encryption', () => loadScenario(join(LABS, 'esp-encryption.yaml')), false],
  ['v6-esp-udp', () => parseScenario(V6, 'v6-esp-udp.yaml'), true],
];

const sha = (x: string | Uint8Array): string => createHash('sha256').update(x).digest('hex');

function outputs(s: Scenario, seed: number, batchAead?: { native: NativeAead | null }): Record<string, string> {
  const c = new Cluster(s, { seed, ...(batchAead !== undefined ? { batchAead } : {}) });
  c.run();
  const out: Record<string, string> = { report: JSON.stringify(c.report()) };
  for (const k of c.captures) out[k.name] = sha(k.bytes());
  return out;
}

/** The addon, counting the packets of each AEAD call. */
function counting(n: NativeAead, sizes: number[]): NativeAead {
  return {
    aeadCreate: (c, k, e) => n.aeadCreate(c, k, e),
    aeadFree: (x) => n.aeadFree(x),
    aeadSealBatch: (...a) => {
      sizes.push(a[6]);
      return n.aeadSealBatch(...a);
    },
    aeadOpenBatch: (...a) => {
      sizes.push(a[6]);
      return n.aeadOpenBatch(...a);
    },
  };
}

for (const [name, load, bursts] of SCENARIOS) {
  for (const seed of [load().seed, 7]) {
    test(`${name}@${seed}: batched AEAD (native, and the fallback) gives the per-packet run's report and captures`, () => {
      const want = outputs(load(), seed);
      assert.ok(Object.keys(want).length > 1, 'captures were made');
      const fallback = outputs(load(), seed, { native: null });
      assert.deepEqual(fallback, want, 'fallback batches');
      if (why !== null) return;
      const sizes: number[] = [];
      const nat = outputs(load(), seed, { native: counting(loadNative(), sizes) });
      assert.deepEqual(nat, want, 'native batches');
      assert.ok(sizes.length > 0, 'the addon was called');
      if (bursts)
        assert.ok(
          sizes.some((n) => n > 1),
          `some call carried several packets (largest ${Math.max(...sizes)})`,
        );
    });
  }
}
