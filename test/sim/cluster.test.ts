/**
 * Scenarios run end to end: every lab in scenarios/ meets its expectations; runs are deterministic
 * (report and captures byte for byte) and the seed matters; failing expectations are reported as such;
 * faults and per-pair underlay paths act as configured; the tracer follows one packet through every
 * stage; captures open in tshark with the headers the lessons talk about.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { Cluster, counterValue, formatReport, type Report } from '../../src/sim/cluster.js';
import { loadScenario, parseScenario, ScenarioError } from '../../src/scenario/scenario.js';
import { formatTrace, traceScenario } from '../../src/sim/tracer.js';
import { requireTool, run } from '../helpers.js';
import * as books from '../datapath/topology.js';
import { LINKTYPE_RAW, PcapngWriter } from '../../src/capture/index.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LABS = join(ROOT, 'scenarios');
const lab = (name: string): string => join(LABS, `${name}.yaml`);

function runLab(path: string, seed?: number): { c: Cluster; r: Report } {
  const c = new Cluster(loadScenario(path), seed !== undefined ? { seed } : {});
  c.run();
  return { c, r: c.report() };
}

test('labs: at least nine, each with a description and a lesson that asks a question, every expectation met', () => {
  const files = readdirSync(LABS)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  assert.ok(files.length >= 9, `only ${files.length} labs`);
  const failed: string[] = [];
  for (const f of files) {
    const s = loadScenario(join(LABS, f));
    assert.ok(s.description.length > 40, `${f}: description`);
    assert.ok(s.lesson.length > 80 && s.lesson.includes('?'), `${f}: the lesson should say what to look at and ask a question`);
    assert.ok(s.expect.length > 0, `${f}: no expectations`);
    const c = new Cluster(s);
    c.run();
    const r = c.report();
    assert.ok(r.expectations.length > 0, `${f}: no expectation was checked`);
    if (!r.ok) failed.push(`${f}:\n${formatReport(r)}`);
  }
  assert.deepEqual(failed, []);
});

test('labs: the nine topics the issue lists are there', () => {
  const have = readdirSync(LABS)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => loadScenario(join(LABS, f)));
  const some = (what: string, p: (s: (typeof have)[number]) => boolean): void => assert.ok(have.some(p), `no lab for ${what}`);
  some('MAC learning on one node', (s) => s.nodes.length === 1 && s.expect.some((e) => Object.keys(e.counters).some((k) => k.includes('macs.learned'))));
  some('VLAN isolation', (s) => s.nodes.some((n) => new Set(n.pods.map((p) => p.vlan).filter((v) => v !== null)).size >= 2));
  some('routed pods over VXLAN', (s) => s.nodes.length >= 2 && s.tunnel.mode === 'routed' && s.tunnel.type === 'vxlan' && s.encryption === null);
  some('Geneve with options', (s) => s.tunnel.type === 'geneve' && s.tunnel.options.length > 0);
  some('three-VTEP flood-and-learn', (s) => s.nodes.length >= 3 && s.tunnel.mode === 'l2');
  some('PMTU black hole next to working PMTUD', (s) => s.links.some((l) => l.mtu !== null) && s.tunnel.icmpTooBig);
  some('ESP', (s) => s.encryption !== null);
  some('tenants on separate VNIs', (s) => s.tunnel.mode === 'l2' && new Set(s.nodes.flatMap((n) => n.pods.map((p) => p.vni))).size >= 2);
  some('an underlay link failure and recovery', (s) => s.faults.some((f) => f.action === 'down' && f.forNs !== null));
});

test('determinism: the same scenario and seed give the same report and byte-identical captures; another seed does not', () => {
  const a = runLab(lab('two-nodes-vxlan'));
  const b = runLab(lab('two-nodes-vxlan'));
  assert.equal(JSON.stringify(a.r), JSON.stringify(b.r));
  assert.equal(formatReport(a.r), formatReport(b.r));
  assert.ok(a.c.captures.length === 3 && a.c.captures.every((k) => k.packets > 0));
  for (let i = 0; i < a.c.captures.length; i++) assert.deepEqual(a.c.captures[i]!.bytes(), b.c.captures[i]!.bytes(), a.c.captures[i]!.name);
  // The UDP flow's IMIX sizes are drawn from the seeded PRNG: another seed, other frames.
  const c = runLab(lab('two-nodes-vxlan'), 8);
  assert.equal(c.r.seed, 8);
  assert.notDeepEqual(c.c.captures[1]!.bytes(), a.c.captures[1]!.bytes());
});

test('report: per-flow figures follow from the topology (latency = 2 × underlay latency + serialisation, overhead of VXLAN)', () => {
  const { r } = runLab(lab('two-nodes-vxlan'));
  const ping = r.flows.find((f) => f.name === 'ping-ac')!;
  assert.equal(ping.delivered, 10);
  // 100 us each way plus 148-byte frames serialised at 10 Gbit/s (118.4 ns each way).
  assert.ok(Math.abs(ping.latencyP50Ns! - (200_000 + 2 * 118.4)) < 1, `rtt ${ping.latencyP50Ns}`);
  assert.deepEqual(ping.icmpSeen, ['echo-reply']);
  // Each inner frame gains outer Ethernet, IPv4, UDP and VXLAN: 50 bytes.
  const frames = r.flows.reduce((n, f) => n + (f.type === 'ping' ? 2 * f.delivered : f.delivered), 0);
  assert.ok(r.innerBytes > 0 && r.outerBytes - r.innerBytes >= 50 * frames);
  assert.ok(r.wireOverheadPct! > 0);
});

test('faults: a path down for 1 s loses exactly the pings sent meanwhile, then traffic resumes', () => {
  const { r } = runLab(lab('link-failure'));
  const steady = r.flows.find((f) => f.name === 'steady')!;
  assert.equal(steady.planned, 40);
  assert.equal(steady.delivered, 30, 'pings at 1.55 … 2.45 s fall in the outage 1.5–2.5 s');
  assert.equal(r.underlay.paths[0]!.dropped['down'], 10);
  assert.equal(r.flows.find((f) => f.name === 'after')!.delivered, 10);
});

test('underlay: a per-pair MTU drops silently (black hole) while the default path answers with frag-needed', () => {
  const { r } = runLab(lab('pmtu-black-hole'));
  const hole = r.underlay.paths.find((p) => p.b === 'node3' || p.a === 'node3')!;
  assert.equal(hole.dropped['mtu'], 5);
  const flows = Object.fromEntries(r.flows.map((f) => [f.name, f]));
  assert.deepEqual(flows['big-ok']!.icmpSeen, ['frag-needed']);
  assert.equal(flows['big-ok']!.tooBig, 4, 'after the first frag-needed the sender knows the path MTU (ping -M do)');
  assert.deepEqual(flows['big-hole']!.icmpSeen, []);
  assert.equal(flows['small']!.delivered, 5);
});

test('expectations: a wrong one fails and says what was found; an unknown counter is a failure, not a pass', () => {
  const text = `
name: t
duration: 1s
nodes:
  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }, { name: b }] }
traffic:
  - { name: p, type: ping, from: n1/a, to: n1/b, count: 3, interval: 100ms }
expect:
  - { flow: p, delivered: ">= 100%", latencyP99: "> 1s", icmpSeen: frag-needed }
  - counters: { n1.macs.learned: ">= 2", n1.macs.nonsense: ">= 0", n1.a.txPackets: ">= 3" }
`;
  const c = new Cluster(parseScenario(text, 't.yaml'));
  c.run();
  const r = c.report();
  assert.equal(r.ok, false);
  const by = Object.fromEntries(r.expectations.map((e) => [`${e.what} ${e.expected}`, e]));
  assert.equal(by['p delivered >= 100%']!.ok, true);
  assert.equal(by['p latencyP99 > 1s']!.ok, false, 'a same-node ping takes no simulated time');
  assert.equal(by['p ICMP seen frag-needed']!.ok, false);
  assert.equal(by['p ICMP seen frag-needed']!.actual, 'echo-reply');
  assert.equal(by['n1.macs.learned >= 2']!.ok, true);
  assert.equal(by['n1.macs.nonsense >= 0']!.ok, false);
  assert.match(by['n1.macs.nonsense >= 0']!.actual, /no such counter: macs has no counter "nonsense"/);
  assert.equal(by['n1.a.txPackets >= 3']!.ok, true);
  assert.equal(typeof counterValue(c, 'n1.bridge.floodCopies'), 'number');
  assert.match(String(counterValue(c, 'n9.bridge.x')), /expected <node>\.<group>\.<field>/);
  assert.match(formatReport(r), /FAIL {2}p latencyP99 > 1s/);
});

test("build errors: a capture of the gateway (refused by the loader), a node's own stack in l2 mode: errors naming the thing", () => {
  const base = (extra: string): string => `name: t\nnodes:\n  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }, { name: b }] }\n${extra}`;
  assert.throws(
    () => parseScenario(base('capture: [n1/gw]\n'), 't.yaml'),
    (e: unknown) => e instanceof ScenarioError && /t\.yaml:4:11: capture\[0\]: .*gateway is inside the bridge/.test(e.message),
  );
  const l2 =
    'name: t\ntunnel: { mode: l2 }\nnodes:\n  - { name: n1, pods: [{ name: a, ip: 10.0.0.1 }] }\ntraffic:\n  - { name: x, type: ping, from: n1, to: n1/a }\n';
  // In l2 mode a node has no gateway, hence no stack of its own: the loader refuses it as an endpoint.
  assert.throws(
    () => parseScenario(l2, 't.yaml'),
    (e: unknown) =>
      e instanceof ScenarioError &&
      /t\.yaml:6:\d+: traffic\[0\]\.from: expected a pod \(node\/pod\): a node's own stack sits behind its gateway/.test(e.message),
  );
});

test('trace: ESP over VXLAN — every stage on both nodes, with VNI, outer addresses, SPI and sequence, then delivery', () => {
  const t = traceScenario(loadScenario(lab('esp-encryption')), { from: 'node1/client', to: 'node2/server', proto: 'icmp' });
  assert.equal(t.outcome, 'delivered');
  const stages = t.steps.map((s) => `${s.node}:${s.stage}`);
  for (const want of [
    'node1:send',
    'node1:ingress',
    'node1:lookup',
    'node1:route',
    'node1:encapsulate',
    'node1:underlay',
    'node2:underlay',
    'node2:decapsulate',
    'node2:route',
    'node2:deliver',
  ]) {
    assert.ok(stages.includes(want), `missing ${want} in ${stages.join(' ')}`);
  }
  assert.ok(stages.indexOf('node1:encapsulate') < stages.indexOf('node2:decapsulate'));
  const enc = t.steps.find((s) => s.stage === 'encapsulate')!;
  assert.equal(enc.detail['vni'], 1);
  assert.equal(enc.detail['outerDst'], '172.18.0.3');
  assert.equal(enc.detail['espSeq'], 1);
  const dec = t.steps.find((s) => s.stage === 'decapsulate')!;
  assert.equal(dec.detail['espSpi'], enc.detail['espSpi']);
  assert.match(dec.action, /authenticated/);
  // Time moves by the underlay latency between the nodes.
  assert.ok(t.steps.find((s) => s.node === 'node2')!.t >= 100_000);
  assert.match(formatTrace(t), /outcome: delivered/);
});

test('trace: drops say where and why — black hole, frag-needed, link down, VLAN isolation', () => {
  const hole = traceScenario(loadScenario(lab('pmtu-black-hole')), { from: 'node1/client', to: 'node3/server', proto: 'icmp', size: 1400 });
  assert.equal(hole.outcome, 'dropped');
  assert.match(hole.reason!, /exceed the path MTU 1400/);
  const big = traceScenario(loadScenario(lab('pmtu-black-hole')), { from: 'node1/client', to: 'node2/server', proto: 'icmp', size: 1472 });
  assert.equal(big.outcome, 'dropped');
  assert.match(big.reason!, /FragNeededDf/);
  const down = traceScenario(loadScenario(lab('link-failure')), { from: 'node1/client', to: 'node2/server', proto: 'icmp', atNs: 2e9 });
  assert.equal(down.outcome, 'dropped');
  assert.match(down.reason!, /path is down/);
  const up = traceScenario(loadScenario(lab('link-failure')), { from: 'node1/client', to: 'node2/server', proto: 'icmp', atNs: 3e9 });
  assert.equal(up.outcome, 'delivered');
  const vlan = traceScenario(loadScenario(lab('vlan-isolation')), { from: 'node1/red1', to: 'node1/blue1', proto: 'icmp' });
  assert.equal(vlan.outcome, 'not-sent');
  assert.match(vlan.reason!, /ARP/);
  const l2 = traceScenario(loadScenario(lab('flood-and-learn')), { from: 'node1/a', to: 'node3/c', proto: 'udp' });
  assert.equal(l2.outcome, 'delivered');
  assert.ok(l2.steps.some((s) => s.node === 'node3' && s.stage === 'decapsulate'));
  assert.throws(() => traceScenario(loadScenario(lab('flood-and-learn')), { from: 'node1/zz', to: 'node3/c', proto: 'udp' }), /node node1 has no pod zz/);
});

test("captures open in tshark: VXLAN with VNI 1 around the pods' ICMP, ESP (protocol 50) when encrypted", () => {
  requireTool('tshark', 'tshark');
  const dir = mkdtempSync(join(tmpdir(), 'seine-cap-'));
  try {
    const { c } = runLab(lab('two-nodes-vxlan'));
    const under = c.captures.find((k) => k.name === 'node1/underlay')!;
    const f = join(dir, 'u.pcapng');
    writeFileSync(f, under.bytes());
    const rows = run('tshark', [
      '-r',
      f,
      '-o',
      'ip.check_checksum:TRUE',
      '-Y',
      'icmp',
      '-T',
      'fields',
      '-e',
      'vxlan.vni',
      '-e',
      'icmp.type',
      '-e',
      'udp.dstport',
      '-e',
      'icmp.checksum.status',
      '-e',
      'ip.checksum.status',
    ])
      .trim()
      .split('\n');
    assert.equal(rows.length, 20, 'ten echo requests and ten replies');
    for (const r of rows) {
      const [vni, type, port, icmpOk, ipOk] = r.split('\t');
      assert.equal(vni, '1');
      assert.ok(type === '8' || type === '0');
      assert.equal(port, '4789');
      assert.equal(icmpOk, '1', `ICMP checksum of ${r}`);
      assert.deepEqual(ipOk!.split(','), ['1', '1'], `outer and inner IPv4 header checksums of ${r}`);
    }
    const e = runLab(lab('esp-encryption')).c.captures.find((k) => k.name === 'node1/underlay')!;
    const g = join(dir, 'e.pcapng');
    writeFileSync(g, e.bytes());
    const protos = new Set(run('tshark', ['-r', g, '-T', 'fields', '-e', 'ip.proto']).trim().split('\n'));
    assert.deepEqual([...protos], ['50']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('traffic: a UDP flow replays a capture — one datagram per IP packet, at its time, of its length; bad files are named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seine-replay-'));
  try {
    const chunks: Uint8Array[] = [];
    const w = new PcapngWriter((c) => chunks.push(c));
    const i = w.addInterface('x', LINKTYPE_RAW);
    const sizes = [200, 1000, 60, 1400];
    sizes.forEach((n, k) => {
      const ip = new Uint8Array(n);
      ip[0] = 0x45;
      ip[2] = n >> 8;
      ip[3] = n & 0xff;
      w.writePacket(i, BigInt(1_000_000_000 + k * 50_000_000), ip);
    });
    writeFileSync(join(dir, 'trace.pcapng'), Buffer.concat(chunks));
    const text = (replay: string): string =>
      `name: r\nduration: 2s\nunderlay: { latency: 1ms }\nnodes:\n  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }] }\n  - { name: n2, podCIDR: 10.244.2.0/24, pods: [{ name: b }] }\ntraffic:\n  - { name: u, type: udp, from: n1/a, to: n2/b, replay: ${replay}, start: 100ms }\nexpect:\n  - { flow: u, delivered: ">= 100%" }\n`;
    const s = parseScenario(text('trace.pcapng'), join(dir, 'r.yaml'));
    assert.equal(s.traffic[0]!.count, 4);
    const c = new Cluster(s);
    c.run();
    const r = c.report();
    assert.ok(r.ok, formatReport(r));
    const f = r.flows[0]!;
    assert.equal(f.delivered, 4);
    assert.deepEqual(c.flows[0]!.udp!.stats.sizes, { 60: 1, 200: 1, 1000: 1, 1400: 1 });
    // Sent over 150 ms (the capture's span): the offered rate follows from it.
    assert.ok(Math.abs(f.throughputBps - (2660 * 8 * 1e9) / 150_000_001) < 1, String(f.throughputBps));
    assert.throws(
      () => parseScenario(text('nope.pcap'), join(dir, 'r.yaml')),
      (e: unknown) =>
        e instanceof ScenarioError &&
        /r\.yaml:8:\d+: traffic\[0\]\.replay: expected a readable pcap or pcapng file, got "nope\.pcap" \(no such file\)/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cluster: IPv6 underlay, Geneve, ChaCha20-Poly1305 in UDP; ping v4 and v6, UDP, TCP, and a 4000-byte datagram the pod fragments', () => {
  const text = `
name: v6
duration: 2s
underlay: { mtu: 1500, latency: 10us, family: 6 }
tunnel: { type: geneve }
encryption: { cipher: chacha20-poly1305, udpEncap: true }
nodes:
  - { name: n1, podCIDR: [10.244.1.0/24, "fd00:1::/64"], pods: [{ name: a }] }
  - { name: n2, podCIDR: [10.244.2.0/24, "fd00:2::/64"], pods: [{ name: b }] }
traffic:
  - { name: p4, type: ping, from: n1/a, to: n2/b, count: 3, interval: 10ms }
  - { name: p6, type: ping, from: n1/a, to: n2/b, family: 6, count: 3, interval: 10ms }
  - { name: u6, type: udp, from: n1/a, to: n2/b, family: 6, count: 50, sizes: [100, 1300] }
  - { name: t6, type: tcp, from: n1/a, to: n2/b, family: 6, bytes: 100000 }
  - { name: big4, type: udp, from: n1/a, to: n2/b, count: 5, size: 4000 }
expect:
  - { flow: p4, delivered: ">= 100%" }
  - { flow: p6, delivered: ">= 100%", icmpSeen: echo-reply }
  - { flow: u6, delivered: ">= 100%" }
  - { flow: t6, delivered: ">= 100%" }
  - { flow: big4, delivered: ">= 100%" }
  - counters: { n1.esp.packetsOut: "> 0", n2.esp.packetsIn: "> 0" }
`;
  const s = parseScenario(text, 'v6.yaml');
  // 1500 − 40 (IPv6) − 8 (UDP) − 8 (Geneve) − 14 (inner Ethernet) − ESP-in-UDP with ChaCha20-Poly1305.
  assert.equal(s.podMtu, 1388);
  const c = new Cluster(s);
  c.run();
  const r = c.report();
  assert.ok(r.ok, formatReport(r));
  const a = c.nodes.get('n1')!.pods.get('a')!.host.counters;
  const b = c.nodes.get('n2')!.pods.get('b')!.host.counters;
  assert.equal(a.fragmented, 5);
  assert.equal(a.fragmentsSent, 15, '4000 bytes of IP in pieces of at most 1388: three each');
  assert.equal(b.reassembled, 5);
  assert.equal(r.flows.find((f) => f.name === 't6')!.tcp!.mss, 1328, '1388 − 60');
});

test('trace: fragmentation on the way — the pod fragments a big datagram, the tunnel fragments the outer packet, the far node reassembles', () => {
  const s = parseScenario(
    'name: f\nduration: 1s\nnodes:\n  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a, mtu: 1500 }] }\n  - { name: n2, podCIDR: 10.244.2.0/24, pods: [{ name: b, mtu: 1500 }] }\n',
    'f.yaml',
  );
  const t = traceScenario(s, { from: 'n1/a', to: 'n2/b', proto: 'udp', size: 4000 });
  assert.equal(t.outcome, 'delivered');
  const send = t.steps[0]!;
  assert.equal(send.stage, 'send');
  assert.equal(send.detail['datagram'], 4000);
  assert.equal(send.detail['bytes'], 1500);
  assert.ok(t.steps.some((x) => x.node === 'n1' && x.stage === 'encapsulate' && /outer packet fragmented into 2/.test(x.action)));
  assert.ok(t.steps.some((x) => x.node === 'n2' && x.stage === 'decapsulate' && /reassembled a \d+-byte outer packet from 2 fragments/.test(x.action)));
  assert.equal(t.steps.filter((x) => x.stage === 'underlay' && x.node === 'n1').length, 2, 'both outer fragments cross the underlay');
});

test('cluster (property): in any lossless cluster every ping between any two pods is answered, every bridge balances its books, every buffer comes back', async () => {
  const { assertBooks } = await import('../datapath/topology.js');
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 4, maxLength: 4 }),
      fc.constantFrom('vxlan', 'geneve'),
      fc.constantFrom('none', 'aes-gcm-128', 'chacha20-poly1305'),
      fc.constantFrom(4, 6),
      fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.nat(), fc.integer({ min: 84, max: 1400 })), { minLength: 1, maxLength: 6 }),
      fc.nat(1000),
      (n, pods, kind, cipher, family, pairs, seed) => {
        const lines = [`name: p`, `seed: ${seed}`, 'duration: 1s', `underlay: { latency: 20us, family: ${family} }`, `tunnel: { type: ${kind} }`];
        if (cipher !== 'none') lines.push(`encryption: { cipher: ${cipher} }`);
        lines.push('nodes:');
        for (let i = 0; i < n; i++)
          lines.push(`  - { name: n${i}, podCIDR: 10.244.${i}.0/24, pods: [${Array.from({ length: pods[i]! }, (_, j) => `{ name: p${j} }`).join(', ')}] }`);
        lines.push('traffic:');
        const ends = (a: number, b: number): string => `n${a % n}/p${b % pods[a % n]!}`;
        pairs.forEach(([a, b, c, d, size], k) => {
          if (ends(a, b) === ends(c, d)) return;
          lines.push(`  - { name: f${k}, type: ping, from: ${ends(a, b)}, to: ${ends(c, d)}, count: 2, interval: 50ms, size: ${size}, start: ${k * 10}ms }`);
        });
        if (!lines.at(-1)!.includes('type: ping')) return;
        const c = new Cluster(parseScenario(lines.join('\n') + '\n', 'p.yaml'), { capture: false });
        c.run();
        const r = c.report();
        for (const f of r.flows) {
          const small = f.planned === 2;
          assert.ok(small);
          // A ping larger than the pod MTU is refused by the sender (DF); everything else is answered.
          assert.equal(f.delivered + f.tooBig, f.tooBig > 0 ? f.tooBig : 2, `${f.name}: ${JSON.stringify(f)}`);
        }
        for (const node of c.nodes.values()) assertBooks(node.bridge);
        assert.equal(c.pool.available, c.pool.size, 'every buffer back in the pool');
      },
    ),
    { numRuns: 30 },
  );
});

test('node stacks: a node sends and receives through its gateway (ping, UDP, TCP, IPv4 and IPv6), to local and remote pods and other nodes', () => {
  const text = `
name: ns
duration: 2s
underlay: { latency: 50us }
nodes:
  - { name: n1, podCIDR: [10.244.1.0/24, "fd00:1::/64"], pods: [{ name: a }] }
  - { name: n2, podCIDR: [10.244.2.0/24, "fd00:2::/64"], pods: [{ name: b }] }
traffic:
  - { name: node-to-remote-pod, type: ping, from: n1, to: n2/b, count: 3, interval: 10ms }
  - { name: node-to-local-pod, type: ping, from: n1, to: n1/a, count: 3, interval: 10ms }
  - { name: node-to-node, type: ping, from: n1, to: n2, count: 3, interval: 10ms }
  - { name: node6, type: ping, from: n1, to: n2/b, family: 6, count: 3, interval: 10ms }
  - { name: udp-pod-to-node, type: udp, from: n2/b, to: n1, count: 100 }
  - { name: tcp-node-to-pod, type: tcp, from: n1, to: n2/b, bytes: 200000 }
  - { name: tcp-pod-to-node, type: tcp, from: n2/b, to: n1, bytes: 200000, start: 500ms }
  - { name: udp-node-to-node, type: udp, from: n2, to: n1, count: 50, start: 1s }
expect:
  - { flow: node-to-remote-pod, delivered: ">= 100%", icmpSeen: echo-reply }
  - { flow: node-to-local-pod, delivered: ">= 100%" }
  - { flow: node-to-node, delivered: ">= 100%" }
  - { flow: node6, delivered: ">= 100%" }
  - { flow: udp-pod-to-node, delivered: ">= 100%" }
  - { flow: tcp-node-to-pod, delivered: ">= 100%" }
  - { flow: tcp-pod-to-node, delivered: ">= 100%" }
  - { flow: udp-node-to-node, delivered: ">= 100%" }
  - counters: { n1.host.rxPackets: "> 0", n1.gw.dropped: "== 0" }
`;
  const c = new Cluster(parseScenario(text, 'ns.yaml'));
  c.run();
  const r = c.report();
  assert.ok(r.ok, formatReport(r));
  const n1 = c.nodes.get('n1')!;
  assert.ok(n1.stack !== null && n1.stack.host.v4 === n1.bridge.gateway!.v4, "the stack has the gateway's address");
  assert.equal(n1.stack.host.counters.arpRepliesSent, 0, 'the gateway answers ARP for the address, not the stack');
  assert.equal(r.flows.find((f) => f.name === 'udp-pod-to-node')!.from, 'n2/b');
  for (const n of c.nodes.values()) {
    const { assertBooks } = books;
    assertBooks(n.bridge);
  }
  assert.equal(c.pool.available, c.pool.size);
  const t = traceScenario(parseScenario(text, 'ns.yaml'), { from: 'n1', to: 'n2/b', proto: 'tcp' });
  assert.equal(t.outcome, 'delivered');
  assert.equal(t.steps[0]!.port, 'host');
  const back = traceScenario(parseScenario(text, 'ns.yaml'), { from: 'n2/b', to: 'n1', proto: 'udp' });
  assert.equal(back.outcome, 'delivered');
  assert.match(back.steps.at(-1)!.action, /delivered to the node's own stack/);
});

test('cluster: a flow cut short by the duration is said so, lost counts only what was sent, rates are over the time run (issue 16)', () => {
  const s = parseScenario(
    `name: cut
duration: 5s
nodes:
  - { name: n1, podCIDR: 10.244.1.0/24, pods: [{ name: a }] }
  - { name: n2, podCIDR: 10.244.2.0/24, pods: [{ name: b }] }
traffic:
  - { name: p, type: ping, from: n1/a, to: n2/b, count: 100, interval: 100ms, start: 1s }
  - { name: u, type: udp, from: n1/a, to: n2/b, rate: 100Mbit, size: 1000, count: 100000000, start: 4s }
`,
    'cut.yaml',
  );
  const c = new Cluster(s, { capture: false });
  c.run();
  const r = c.report();
  const p = r.flows.find((f) => f.name === 'p')!;
  // 1 s + k × 100 ms ≤ 5 s: k = 0..40.
  assert.equal(p.sent, 41);
  assert.deepEqual(p.cutShort, { fit: 41, endNs: 5e9 });
  assert.ok(p.delivered >= 40 && p.delivered <= 41, `delivered ${p.delivered}`);
  assert.equal(p.lost, p.sent - p.delivered, 'lost: sent and not answered');
  const u = r.flows.find((f) => f.name === 'u')!;
  assert.ok(u.cutShort !== undefined && u.cutShort.fit < 100_000_000);
  // 100 Mbit/s offered for the second it ran, not spread over the 8,000 s the count would take.
  assert.ok(Math.abs(u.throughputBps - 100e6) < 5e6, `throughput ${u.throughputBps}`);
  assert.ok(u.lost <= u.sent);
  const text = formatReport(r);
  assert.match(text, /p: cut short: 41 of 100 packets fit before the scenario's end at 5(\.0+)? ?s/);
  assert.match(text, /u: cut short: /);
});

test("cluster: pmtu-black-hole's big-ok loses no more than it sent (the too-big ones were never sent)", () => {
  const { r } = runLab(lab('pmtu-black-hole'));
  const f = r.flows.find((x) => x.name === 'big-ok')!;
  assert.equal(f.planned, 5);
  assert.equal(f.sent + f.tooBig, 5);
  assert.ok(f.tooBig > 0);
  assert.equal(f.lost, f.sent - f.delivered);
  assert.ok(f.lost <= f.sent);
  assert.equal(f.cutShort, undefined);
});
