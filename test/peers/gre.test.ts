/**
 * GRE as the peers see it: what the simulated datapath puts on the underlay (the gre-routed lab, with
 * and without key, over IPv4 and IPv6, with ESP) read by tshark's dissectors and by scapy, and frames
 * scapy builds — its own GRE encoder, checksum included — taken apart by our tunnel. The Linux kernel
 * would be the third peer; where it has gretap, test/live/gre.test.ts sends to it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Tunnel } from '../../src/overlay/tunnel.js';
import { PacketPool } from '../../src/packet/buf.js';
import { DropReason } from '../../src/wire/drop.js';
import { loadScenario, parseScenario } from '../../src/scenario/scenario.js';
import { Cluster, type ClusterOptions } from '../../src/sim/cluster.js';
import type { Scenario } from '../../src/scenario/scenario.js';
import { fromHex, hex, requireScapy, requireTool, run, SYSTEM_PYTHON } from '../helpers.js';

const LAB = fileURLToPath(new URL('../../../scenarios/gre-routed.yaml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'seine-gre-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs a scenario and writes node1's underlay capture; returns its path. */
function underlay(s: Scenario, name: string, opts: ClusterOptions = {}): string {
  const c = new Cluster(s, opts);
  c.run();
  const r = c.report();
  assert.ok(r.ok, `${name}: ${r.expectations.filter((e) => !e.ok).map((e) => `${e.what} ${e.expected}: ${e.actual}`)}`);
  const f = join(dir, `${name}.pcapng`);
  writeFileSync(f, c.captures.find((k) => k.name === 'node1/underlay')!.bytes());
  return f;
}

/** The lab over an IPv6 underlay: the pods keep IPv4 (IPv6-only pods are not simulated), GRE follows IPv6. */
const V6 = `name: gre6
underlay: { mtu: 1500, family: 6 }
tunnel: { type: gre, vni: 7 }
nodes:
  - { name: node1, podCIDR: 10.244.1.0/24, pods: [{ name: client }] }
  - { name: node2, podCIDR: 10.244.2.0/24, pods: [{ name: server }] }
traffic:
  - { name: small, type: ping, from: node1/client, to: node2/server, count: 3, interval: 10ms }
  - { name: fit-exact, type: ping, from: node1/client, to: node2/server, size: 1438, df: true, count: 3, interval: 10ms, start: 100ms }
capture: [node1/underlay]
expect:
  - { flow: small, delivered: ">= 100%" }
  - { flow: fit-exact, delivered: ">= 100%" }
`;

const FIELDS = ['ip.proto', 'ipv6.nxt', 'gre.flags_and_version', 'gre.proto', 'gre.key', 'eth.type', 'icmp.checksum.status', 'ip.checksum.status'];

function tshark(file: string): string[][] {
  const out = run('tshark', ['-r', file, '-o', 'ip.check_checksum:TRUE', '-T', 'fields', '-E', 'occurrence=a', ...FIELDS.flatMap((f) => ['-e', f])]);
  return out
    .trim()
    .split('\n')
    .map((l) => l.split('\t'));
}

test('tshark: the gre-routed lab on the wire — IPv4 protocol 47, GRE K flag, 0x6558, key 7, good inner and outer checksums', () => {
  requireTool('tshark', 'tshark');
  const rows = tshark(underlay(loadScenario(LAB), 'v4'));
  assert.ok(rows.length >= 300 + 20, `${rows.length} frames`);
  for (const [proto, , flags, greProto, key, ethTypes, icmpOk, ipOk] of rows) {
    assert.equal(proto!.split(',')[0], '47');
    assert.equal(flags, '0x2000');
    assert.equal(greProto, '0x6558');
    assert.equal(key, '0x00000007');
    assert.deepEqual(ethTypes!.split(','), ['0x0800', '0x0800'], 'outer and inner Ethernet carry IPv4');
    if (icmpOk !== '') assert.equal(icmpOk, '1');
    assert.deepEqual(ipOk!.split(','), ['1', '1'], 'outer and inner IPv4 header checksums');
  }
});

/** The pods told 1500: the tunnel alone decides what fits. Without key GRE leaves 1462, with key 1458. */
const NO_KEY = `name: gre-nokey
underlay: { mtu: 1500 }
tunnel: { type: gre, vni: 7 }
nodes:
  - { name: node1, podCIDR: 10.244.1.0/24, pods: [{ name: big, mtu: 1500 }] }
  - { name: node2, podCIDR: 10.244.2.0/24, pods: [{ name: server, mtu: 1500 }] }
traffic:
  - { name: small, type: ping, from: node1/big, to: node2/server, count: 3, interval: 10ms }
  - { name: fit, type: ping, from: node1/big, to: node2/server, size: 1462, df: true, count: 3, interval: 10ms, start: 100ms }
  - { name: over, type: ping, from: node1/big, to: node2/server, size: 1463, df: true, count: 3, interval: 10ms, start: 200ms }
capture: [node1/underlay]
expect:
  - { flow: small, delivered: ">= 100%" }
  - { flow: fit, delivered: ">= 100%" }
  - { flow: over, delivered: "== 0%", icmpSeen: frag-needed }
`;

test('tshark: without the key the GRE header is 4 bytes (flags 0): 1462-byte DF pings fit, 4 bytes more than with the key', () => {
  requireTool('tshark', 'tshark');
  const f = underlay(parseScenario(NO_KEY, 'nokey.yaml'), 'nokey', { greKey: false });
  const rows = tshark(f);
  assert.ok(rows.length >= 12, `${rows.length} frames`);
  for (const [proto, , flags, greProto, key] of rows) {
    assert.equal(proto!.split(',')[0], '47');
    assert.equal(flags, '0x0000');
    assert.equal(greProto, '0x6558');
    assert.equal(key, '');
  }
  // With the key the first 1462-byte ping is refused at node1's tunnel port (frag-needed, MTU 1458); the
  // pod learns the path MTU from it and refuses the rest itself.
  const c = new Cluster(parseScenario(NO_KEY, 'nokey.yaml'));
  c.run();
  const fit = c.report().flows.find((x) => x.name === 'fit')!;
  assert.equal(fit.delivered, 0);
  assert.deepEqual(c.report().drops['node1']?.['underlay'], { FragNeededDf: 1 });
  // The small pings' frames: 4 bytes shorter without the key.
  const small = (file: string): number[] =>
    run('tshark', ['-r', file, '-Y', 'frame.len < 200', '-T', 'fields', '-e', 'frame.len']).trim().split('\n').map(Number);
  const keyed = join(dir, 'nokey-keyed.pcapng');
  writeFileSync(keyed, c.captures.find((k) => k.name === 'node1/underlay')!.bytes());
  assert.deepEqual(
    small(f),
    small(keyed).map((n) => n - 4),
  );
  assert.throws(() => new Cluster(parseScenario(V6.replace('type: gre', 'type: vxlan'), 'x.yaml'), { greKey: false }), /greKey is for a gre tunnel/);
});

test('tshark: over IPv6 GRE follows the fixed header (next header 47); the pods get 1500 - 62 = 1438', () => {
  requireTool('tshark', 'tshark');
  const s = parseScenario(V6, 'gre6.yaml');
  assert.equal(s.nodes[0]!.pods[0]!.mtu, 1438);
  for (const [, nxt, flags, greProto, key] of tshark(underlay(s, 'v6'))) {
    assert.equal(nxt, '47');
    assert.equal(flags, '0x2000');
    assert.equal(greProto, '0x6558');
    assert.equal(key, '0x00000007');
  }
});

test('tshark: ESP over GRE — outer protocol 50 only, pod MTU 1424 (42 + 34 bytes at that length)', () => {
  requireTool('tshark', 'tshark');
  const text = readFileSync(LAB, 'utf8')
    .replace('tunnel:\n', 'encryption: { cipher: aes-gcm-128, secret: lab-secret }\ntunnel:\n')
    .replace(/1458/g, '1424')
    .replace(/1459/g, '1425');
  const s = parseScenario(text, 'gre-esp.yaml');
  assert.equal(s.nodes[0]!.pods[0]!.mtu, 1424);
  const rows = tshark(underlay(s, 'esp'));
  assert.deepEqual([...new Set(rows.map((r) => r[0]))], ['50']);
});

/**
 * scapy reads the capture with its own GRE layer; then it rebuilds each frame with every length and
 * checksum deleted, so it computes them itself: the rebuilt bytes must equal ours.
 */
const SCAPY_READ = `
import sys
from scapy.all import rdpcap, Ether, IP, IPv6, GRE, ICMP, UDP
n = 0
for p in rdpcap(sys.argv[1]):
    raw = bytes(p)
    assert GRE in p, p.summary()
    g = p[GRE]
    assert g.proto == 0x6558 and g.chksum_present == 0 and g.seqnum_present == 0, g.show(dump=True)
    want_key = sys.argv[2] == 'key'
    assert g.key_present == (1 if want_key else 0)
    if want_key: assert g.key == 7, g.key
    inner = g.payload
    assert isinstance(inner, Ether) and IP in inner, inner.summary()
    outer = p[IP] if p.type == 0x0800 else p[IPv6]
    if p.type == 0x0800:
        assert outer.proto == 47
        del outer.len, outer.chksum
    else:
        assert outer.nh == 47
        del outer.plen
    i = inner[IP]
    del i.len, i.chksum
    if ICMP in i: del i[ICMP].chksum
    if UDP in i: del i[UDP].len, i[UDP].chksum
    assert bytes(p.__class__(bytes(p))) == raw or bytes(p) == raw, (n, bytes(p).hex(), raw.hex())
    n += 1
print(n)
`;

test('scapy: reads every GRE frame of the lab (key 7, Ethernet inside) and recomputes the same lengths and checksums', () => {
  requireScapy();
  for (const [file, key] of [
    [underlay(loadScenario(LAB), 's4'), 'key'],
    [underlay(parseScenario(NO_KEY, 'nokey.yaml'), 's4n', { greKey: false }), 'nokey'],
    [underlay(parseScenario(V6, 'gre6.yaml'), 's6'), 'key'],
  ] as const) {
    const n = Number(run(SYSTEM_PYTHON, ['-c', SCAPY_READ, file, key]).trim());
    assert.ok(n >= 10, `${file}: ${n} frames`);
  }
});

/** scapy as the sender: its GRE with key (and with its own checksum, and a sequence number) into our decap. */
const SCAPY_SEND = `
from scapy.all import Ether, IP, IPv6, GRE, ICMP, raw
inner = Ether(src='02:00:00:00:00:01', dst='02:00:00:00:00:02')/IP(src='10.244.1.2', dst='10.244.2.2')/ICMP(id=1, seq=2)/(b'x' * 40)
outer = Ether(src='0a:00:00:00:00:01', dst='0a:00:00:00:00:02')/IP(src='192.168.1.1', dst='192.168.1.2')
print(raw(inner).hex())
print(raw(outer/GRE(key_present=1, key=7, proto=0x6558)/inner).hex())
print(raw(outer/GRE(chksum_present=1, key_present=1, key=7, seqnum_present=1, sequence_number=99, proto=0x6558)/inner).hex())
print(raw(outer/GRE(chksum_present=1, chksum=0x1234, key_present=1, key=7, proto=0x6558)/inner).hex())
print(raw(outer/GRE(key_present=1, key=8, proto=0x6558)/inner).hex())
print(raw(outer/GRE(proto=0x6558)/inner).hex())
`;

test('scapy: its GRE frames decapsulate — with key, with its checksum and a sequence number; a wrong checksum, key or no key is refused', () => {
  requireScapy();
  const [inner, plain, csum, badCsum, otherKey, noKey] = run(SYSTEM_PYTHON, ['-c', SCAPY_SEND]).trim().split('\n');
  const t = new Tunnel({ kind: 'gre', mode: 'routed', localIp: '192.168.1.2', localMac: 0x0a0000000002, vni: 7 });
  t.addVtep({ ip: '192.168.1.1', mac: 0x0a0000000001 });
  const pool = new PacketPool({ count: 1 });
  const decap = (h: string): number | string => {
    const p = pool.alloc()!;
    try {
      p.load(fromHex(h));
      const r = t.decap(p);
      return r === 0 ? hex(p.bytes()) : r;
    } finally {
      pool.release(p);
    }
  };
  assert.equal(decap(plain!), inner);
  assert.equal(decap(csum!), inner);
  assert.equal(decap(badCsum!), DropReason.GreBadChecksum);
  assert.equal(decap(otherKey!), DropReason.UnknownVni);
  assert.equal(decap(noKey!), DropReason.GreKeyMismatch);
});
