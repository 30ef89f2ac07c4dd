/**
 * The datapath's tunnel frames against independent peers. Where the other peer tests prove the wire
 * modules (`compose`) right, these prove what the pipeline itself puts on the underlay and takes from it:
 *
 * 1. Pods on node A send flows (IPv4 and IPv6; UDP, TCP, ICMP) that the bridge routes or switches into
 *    VXLAN and Geneve tunnels over IPv4 and IPv6 underlays. Everything the tunnel port emits is written
 *    to a pcap and decoded by tshark, which must find every outer and inner address, the VNI, the UDP
 *    ports, the Geneve options, every checksum good, and nothing malformed.
 * 2. scapy builds tunnel frames (Geneve with options, VXLAN, good and bad outer checksums) that are fed
 *    into a tunnel port: what reaches the pod is byte for byte what scapy encapsulated, and what must be
 *    dropped is dropped for the right reason.
 * 3. scapy decodes the frames of (1) as a second, independent decoder.
 *
 * The frames of (1) are also fed to node B, the other end of the tunnel: seine must accept its own output.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint } from '../../src/datapath/device.js';
import { GLOBAL_VIRTUAL_MAC } from '../../src/datapath/gateway.js';
import { TraceLog, type TraceRecord } from '../../src/datapath/trace.js';
import type { TunnelMode } from '../../src/overlay/tunnel.js';
import type { TunnelKind } from '../../src/overlay/template.js';
import { PacketPool } from '../../src/packet/buf.js';
import { hex, ipv6FromString, ipv6ToString, macToString } from '../../src/wire/bytes.js';
import { DropReason, dropReasonName } from '../../src/wire/drop.js';
import type { GeneveOption } from '../../src/wire/geneve.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { requireScapy, requireTool, run, SYSTEM_PYTHON } from '../helpers.js';
import { data, eth, ip4, ip6, tcp, udp } from './catalogue.js';
import { allPairs, layersOf, one, values, writePcap, type TsharkLayers } from './tshark-json.js';

/**
 * The compiled test runs from dist/test/peers; the script stays in the source tree. Compiled elsewhere
 * (`tsc --outDir /tmp/…`), the tree is found from the working directory instead.
 */
const PEER =
  [fileURLToPath(new URL('../../../test/peers/tunnel_peer.py', import.meta.url)), join(process.cwd(), 'test/peers/tunnel_peer.py')].find((p) =>
    existsSync(p),
  ) ?? 'test/peers/tunnel_peer.py';

// ---- the network ----------------------------------------------------------------------------------------

type Family = 4 | 6;
type Site = 'a' | 'b' | 'c';

const UNDERLAY: Record<Family, Record<Site, string>> = {
  4: { a: '192.168.10.1', b: '192.168.10.2', c: '192.168.10.3' },
  6: { a: 'fd00:cafe::a', b: 'fd00:cafe::b', c: 'fd00:cafe::c' },
};
const UNDERLAY_MAC: Record<Site, number> = { a: 0x0a0000000001, b: 0x0a0000000002, c: 0x0a0000000003 };
const GW_MAC: Record<Site, number> = { a: 0x02000000aa01, b: 0x02000000bb01, c: 0x02000000cc01 };
/** Routed mode: each site's podCIDRs. */
const POD_NET: Record<Site, { v4: string; v6: string }> = {
  a: { v4: '10.244.1', v6: 'fd00:10:244:1' },
  b: { v4: '10.244.2', v6: 'fd00:10:244:2' },
  c: { v4: '10.244.3', v6: 'fd00:10:244:3' },
};
/** L2 mode: segment (VLAN) → VNI. Site C is a member of VNI 5010 only. */
const L2_VNIS: ReadonlyArray<{ segment: number; vni: number }> = [
  { segment: 10, vni: 5010 },
  { segment: 20, vni: 5020 },
];
const VTEP_VNIS: Record<Site, number[]> = { a: [5010, 5020], b: [5010, 5020], c: [5010] };

/** Pods: two on each node; in l2 mode pod 1 sits on segment 10, pod 2 on segment 20. */
const POD_MAC = (site: Site, n: 1 | 2): number => 0x020000000000 + (site.charCodeAt(0) << 8) + n;
const POD_IP = (site: Site, n: 1 | 2, family: Family): string =>
  family === 4 ? `${POD_NET[site].v4}.${10 * n + site.charCodeAt(0) - 96}` : `${POD_NET[site].v6}::${10 * n + site.charCodeAt(0) - 96}`;

interface Scenario {
  name: string;
  kind: TunnelKind;
  mode: TunnelMode;
  family: Family;
  udpChecksum?: boolean;
  options?: GeneveOption[];
  srcPorts?: [number, number];
  /** Routed mode's VNI (default 1). */
  vni?: number;
}

const opt = (cls: number, type: number, bytes: number[]): GeneveOption => ({ class: cls, type, data: new Uint8Array(bytes) });

const SCENARIOS: Scenario[] = [
  { name: 'vxlan routed, ipv4 underlay, udp checksum off (default)', kind: 'vxlan', mode: 'routed', family: 4 },
  { name: 'vxlan routed, ipv6 underlay, vni 100', kind: 'vxlan', mode: 'routed', family: 6, vni: 100 },
  {
    name: 'vxlan l2, ipv4 underlay, udp checksum on, source ports 20000-20999',
    kind: 'vxlan',
    mode: 'l2',
    family: 4,
    udpChecksum: true,
    srcPorts: [20000, 20999],
  },
  { name: 'vxlan l2, ipv6 underlay', kind: 'vxlan', mode: 'l2', family: 6 },
  {
    name: 'geneve routed, ipv4 underlay, one 8-byte option',
    kind: 'geneve',
    mode: 'routed',
    family: 4,
    vni: 7,
    options: [opt(0x0104, 0x01, [1, 2, 3, 4, 5, 6, 7, 8])],
  },
  {
    name: 'geneve routed, ipv6 underlay, several options (one critical, one empty)',
    kind: 'geneve',
    mode: 'routed',
    family: 6,
    vni: 0xabcdef,
    options: [
      opt(0x0102, 0x80, [0, 0, 0, 1, 0, 0, 0, 2]),
      opt(0xffff, 0x42, [0xde, 0xad, 0xbe, 0xef]),
      opt(0x0101, 0x05, []),
      opt(
        0xfffe,
        0x7f,
        Array.from({ length: 16 }, (_, i) => 0xf0 + i),
      ),
    ],
  },
  {
    name: 'geneve l2, ipv4 underlay, udp checksum on, several options, source ports 1024-4095',
    kind: 'geneve',
    mode: 'l2',
    family: 4,
    udpChecksum: true,
    srcPorts: [1024, 4095],
    options: [opt(0xffff, 0x01, [9, 8, 7, 6]), opt(0x0105, 0x90, [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6])],
  },
  {
    name: 'geneve l2, ipv6 underlay, one 8-byte option',
    kind: 'geneve',
    mode: 'l2',
    family: 6,
    options: [opt(0x0103, 0x22, [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])],
  },
];

let clockNs = 0;
const clock = { now: (): number => (clockNs += 1000) };
const pool = new PacketPool({ count: 1024, frameCapacity: 2048 });

interface Node {
  br: Bridge;
  under: Endpoint;
  pods: Record<1 | 2, Endpoint>;
  trace: TraceLog;
}

/** Node `site` of a scenario: two pods, a gateway (routed) and a tunnel port towards the other sites. */
function node(s: Scenario, site: Site, remotes: Site[]): Node {
  const br = new Bridge({ name: `node-${site}`, pool, clock });
  const trace = new TraceLog();
  br.trace = trace.sink;
  const under = new Endpoint(`underlay-${site}`, pool, UNDERLAY_MAC[site]);
  const pods = { 1: new Endpoint(`pod${site}1`, pool, POD_MAC(site, 1)), 2: new Endpoint(`pod${site}2`, pool, POD_MAC(site, 2)) };
  const l2 = s.mode === 'l2';
  br.addPort('pod1', pods[1], l2 ? { vlan: 10 } : {});
  br.addPort('pod2', pods[2], l2 ? { vlan: 20 } : {});
  br.addTunnel('tun0', under, {
    kind: s.kind,
    mode: s.mode,
    localIp: UNDERLAY[s.family][site],
    ...(s.vni !== undefined ? { vni: s.vni } : {}),
    ...(s.udpChecksum !== undefined ? { udpChecksum: s.udpChecksum } : {}),
    ...(s.srcPorts !== undefined ? { srcPortMin: s.srcPorts[0], srcPortMax: s.srcPorts[1] } : {}),
    ...(s.options !== undefined ? { options: s.options, knownOptions: s.options.map((o) => ({ class: o.class, type: o.type })) } : {}),
  });
  if (l2) {
    for (const { segment, vni } of L2_VNIS) br.mapVni('tun0', vni, segment);
    for (const r of remotes) br.addVtep('tun0', { ip: UNDERLAY[s.family][r], mac: UNDERLAY_MAC[r], vnis: VTEP_VNIS[r] });
  } else {
    const net = POD_NET[site];
    br.addGateway({ name: 'gw0', mac: GW_MAC[site], ipv4: `${net.v4}.1/24`, ipv6: `${net.v6}::1/64` });
    // What a CNI agent tells its node about its pods: their addresses and where their MACs are.
    for (const n of [1, 2] as const) {
      for (const f of [4, 6] as const) br.addNeighbor(POD_IP(site, n, f), POD_MAC(site, n));
      br.addStaticMac(0, POD_MAC(site, n), `pod${n}`);
    }
    for (const r of remotes) {
      br.addVtep('tun0', { ip: UNDERLAY[s.family][r], mac: UNDERLAY_MAC[r] });
      br.addRoute(`${POD_NET[r].v4}.0/24`, { tunnel: 'tun0', vtep: UNDERLAY[s.family][r] });
      br.addRoute(`${POD_NET[r].v6}::/64`, { tunnel: 'tun0', vtep: UNDERLAY[s.family][r] });
    }
  }
  return { br, under, pods, trace };
}

// ---- inner frames -------------------------------------------------------------------------------------

type Proto = 'udp' | 'tcp' | 'icmp';

interface Flow {
  name: string;
  family: Family;
  proto: Proto;
  from: 1 | 2;
  srcMac: number;
  dstMac: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  packets: number;
  /** The VTEPs (sites) each packet must be sent to. */
  to: Site[];
}

function innerLayers(f: Flow, srcMac: number, dstMac: number, ttl: number, k: number): Layer[] {
  const proto = f.proto === 'udp' ? 17 : f.proto === 'tcp' ? 6 : f.family === 4 ? 1 : 58;
  const l3 = f.family === 4 ? ip4(f.src, f.dst, proto, { ttl, ident: 0x100 + k }) : ip6(f.src, f.dst, proto, { hopLimit: ttl });
  const payload = new TextEncoder().encode(`${f.name} #${k}`);
  const l4: Layer[] =
    f.proto === 'udp'
      ? [udp(f.sport, f.dport), data(`${f.name} #${k}`)]
      : f.proto === 'tcp'
        ? [tcp(f.sport, f.dport, 0x018), data(`${f.name} #${k}`)]
        : f.family === 4
          ? [{ kind: 'icmpv4', repr: { kind: 'echoRequest', ident: f.sport, seq: k, data: payload } }]
          : [{ kind: 'icmpv6', repr: { kind: 'echoRequest', ident: f.sport, seq: k, data: payload } }];
  return [eth(f.family === 4 ? 0x0800 : 0x86dd, [], srcMac, dstMac), l3, ...l4];
}

/** The flows pod A1/A2 send, with where each packet must go. */
function flows(s: Scenario): Flow[] {
  const mk = (
    name: string,
    from: 1 | 2,
    family: Family,
    proto: Proto,
    dstMac: number,
    dst: string,
    sport: number,
    dport: number,
    packets: number,
    to: Site[],
  ): Flow => ({ name, family, proto, from, srcMac: POD_MAC('a', from), dstMac, src: POD_IP('a', from, family), dst, sport, dport, packets, to });
  if (s.mode === 'routed') {
    const gw = GW_MAC.a;
    return [
      mk('udp4 a1>b1 10001', 1, 4, 'udp', gw, POD_IP('b', 1, 4), 10001, 5000, 3, ['b']),
      mk('udp4 a1>b1 10002', 1, 4, 'udp', gw, POD_IP('b', 1, 4), 10002, 5000, 2, ['b']),
      mk('tcp4 a2>b2', 2, 4, 'tcp', gw, POD_IP('b', 2, 4), 40000, 80, 3, ['b']),
      mk('icmp4 a2>c1', 2, 4, 'icmp', gw, POD_IP('c', 1, 4), 0x77, 0, 2, ['c']),
      mk('udp6 a1>b1', 1, 6, 'udp', gw, POD_IP('b', 1, 6), 10003, 5000, 2, ['b']),
      mk('tcp6 a1>b1', 1, 6, 'tcp', gw, POD_IP('b', 1, 6), 40001, 443, 2, ['b']),
      mk('icmp6 a2>c2', 2, 6, 'icmp', gw, POD_IP('c', 2, 6), 0x78, 0, 2, ['c']),
    ];
  }
  // Addresses are not routed in l2 mode; the segment decides. B1 is known (learned), X and Y are not.
  const X = 0x02000000ee01;
  const Y = 0x02000000ee02;
  return [
    mk('udp4 a1>b1 (learned)', 1, 4, 'udp', POD_MAC('b', 1), '10.10.0.21', 10001, 5000, 3, ['b']),
    mk('udp4 a1>broadcast', 1, 4, 'udp', 0xffffffffffff, '10.10.0.255', 30001, 30002, 2, ['b', 'c']),
    mk('tcp6 a1>X (unknown)', 1, 6, 'tcp', X, 'fd00:10::99', 40000, 80, 2, ['b', 'c']),
    mk('icmp6 a1>b1 (learned)', 1, 6, 'icmp', POD_MAC('b', 1), 'fd00:10::21', 0x79, 0, 2, ['b']),
    mk('icmp4 a2>Y (unknown)', 2, 4, 'icmp', Y, '10.20.0.99', 0x7a, 0, 2, ['b']),
    mk('udp6 a2>Y (unknown)', 2, 6, 'udp', Y, 'fd00:20::99', 10002, 5001, 2, ['b']),
  ];
}

// ---- part 1: drive node A, capture its underlay ---------------------------------------------------------

interface Emitted {
  s: Scenario;
  flow: Flow;
  to: Site;
  /** The outer frame as emitted. */
  frame: Uint8Array;
  /** The inner frame it must carry. */
  inner: Uint8Array;
  vni: number;
  innerTtl: number;
  /** The encapsulate stage's trace record for this copy (every packet is sent traced). */
  encap: TraceRecord['detail'];
}

let emitted: Emitted[] = [];
/** Per scenario: what node B did with A's frames for it. */
const peerResults: { s: Scenario; fed: number[]; delivered: number[]; drops: Record<string, number> }[] = [];

function drive(s: Scenario): void {
  const a = node(s, 'a', ['b', 'c']);
  const b = node(s, 'b', ['a']);
  if (s.mode === 'l2') {
    // B1 speaks first, so that A learns where it is: B floods it to A, whose underlay receives it.
    b.pods[1].send([
      compose(
        innerLayers(
          {
            name: 'hello',
            family: 4,
            proto: 'udp',
            from: 1,
            srcMac: POD_MAC('b', 1),
            dstMac: POD_MAC('a', 1),
            src: '10.10.0.21',
            dst: '10.10.0.11',
            sport: 7,
            dport: 7,
            packets: 1,
            to: ['a'],
          },
          POD_MAC('b', 1),
          POD_MAC('a', 1),
          64,
          0,
        ),
      ),
    ]);
    const hello = b.under.take();
    assert.equal(hello.length, 1, `${s.name}: B floods its first frame to A only`);
    a.under.send(hello);
    assert.equal(a.pods[1].take().length, 1, `${s.name}: A delivers B's first frame to A1`);
    assert.equal(a.br.port('tun0').counters.dropped, 0);
  }
  const vni = (segment: number): number => (s.mode === 'routed' ? (s.vni ?? 1) : L2_VNIS.find((x) => x.segment === segment)!.vni);
  const toB: Uint8Array[] = [];
  /** Frames for B by the pod that must receive them: pod n of A talks to pod n of B (l2: the same segment). */
  const fedTo = [0, 0, 0];
  for (const f of flows(s)) {
    for (let k = 0; k < f.packets; k++) {
      a.trace.clear();
      a.pods[f.from].send([compose(innerLayers(f, f.srcMac, f.dstMac, 64, k))], true);
      const out = a.under.take();
      const enc = a.trace.records.filter((r) => r.stage === 'encapsulate');
      assert.equal(enc.length, out.length, `${s.name}: ${f.name} #${k}: one encapsulate record per frame`);
      const routed = s.mode === 'routed';
      // Routed: the gateway rewrote the MACs and decremented the TTL; l2: the frame is untouched.
      const inner = compose(innerLayers(f, routed ? GW_MAC.a : f.srcMac, routed ? GLOBAL_VIRTUAL_MAC : f.dstMac, routed ? 63 : 64, k));
      assert.equal(out.length, f.to.length, `${s.name}: ${f.name} #${k}: ${out.length} frames on the underlay, expected one per VTEP ${f.to.join(',')}`);
      f.to.forEach((site, i) => {
        emitted.push({ s, flow: f, to: site, frame: out[i]!, inner, vni: vni(f.from === 1 ? 10 : 20), innerTtl: routed ? 63 : 64, encap: enc[i]!.detail });
        if (site === 'b') {
          toB.push(out[i]!);
          fedTo[f.from]!++;
        }
      });
    }
  }
  assert.equal(a.br.port('tun0').counters.dropped, 0, `${s.name}: A drops ${JSON.stringify(a.br.port('tun0').counters.dropsByReason())}`);
  // B, the other end of the tunnel, must take every frame A sent it and deliver each to one pod.
  b.under.send(toB);
  peerResults.push({
    s,
    fed: fedTo.slice(1),
    delivered: [b.pods[1].take().length, b.pods[2].take().length],
    drops: b.br.port('tun0').counters.dropsByReason(),
  });
}

before(() => {
  emitted = [];
  for (const s of SCENARIOS) drive(s);
});

test('datapath: every scenario emits one frame per packet and VTEP, and node B accepts its own', () => {
  assert.ok(emitted.length >= 100, `only ${emitted.length} frames`);
  for (const r of peerResults) {
    assert.deepEqual(r.drops, {}, `${r.s.name}: node B drops`);
    assert.ok(r.fed[0]! > 0 && r.fed[1]! > 0);
    assert.deepEqual(r.delivered, r.fed, `${r.s.name}: node B's pods got ${r.delivered.join(' and ')} frames`);
  }
});

test('datapath: the inner frame of every emitted frame is the expected one, right after the outer headers', () => {
  for (const e of emitted) {
    const at = e.frame.length - e.inner.length;
    assert.equal(hex(e.frame.subarray(at)), hex(e.inner), `${e.s.name}: ${e.flow.name}`);
  }
});

// ---- tshark -------------------------------------------------------------------------------------------

const v6norm = (s: string): string => ipv6ToString(ipv6FromString(s)!);
const ipText = (s: string): string => (s.includes(':') ? v6norm(s) : s);

let tshark: { _source: { layers: TsharkLayers } }[] | null = null;
let tsharkRaw = '';
let dir = '';

function decodeWithTshark(): { _source: { layers: TsharkLayers } }[] {
  if (tshark !== null) return tshark;
  requireTool('tshark', 'tshark');
  dir = mkdtempSync(join(tmpdir(), 'seine-datapath-'));
  const path = join(dir, 'tunnels.pcap');
  writePcap(
    path,
    emitted.map((e) => e.frame),
  );
  // Checksum validation is off by default in Wireshark; turn it on wherever there is a preference.
  tsharkRaw = run('tshark', [
    '-r',
    path,
    '-T',
    'json',
    '--no-duplicate-keys',
    '-o',
    'ip.check_checksum:TRUE',
    '-o',
    'udp.check_checksum:TRUE',
    '-o',
    'tcp.check_checksum:TRUE',
  ]);
  tshark = JSON.parse(tsharkRaw) as { _source: { layers: TsharkLayers } }[];
  return tshark;
}

after(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

const STATUS_GOOD = '1';

test('tshark: decodes every emitted frame', () => {
  assert.equal(decodeWithTshark().length, emitted.length);
});

test('tshark: outer and inner MACs and addresses, VNI, outer UDP ports and TTLs', () => {
  const t = decodeWithTshark();
  emitted.forEach((e, i) => {
    const what = `${e.s.name}: ${e.flow.name} → ${e.to} (frame ${i + 1})`;
    const L = t[i]!._source.layers;
    const s = e.s;
    // Ethernet: outer, then inner.
    const eths = layersOf(L, 'eth');
    assert.equal(eths.length, 2, `${what}: eth layers`);
    assert.equal(one(eths[0], 'eth.src', what), macToString(UNDERLAY_MAC.a), what);
    assert.equal(one(eths[0], 'eth.dst', what), macToString(UNDERLAY_MAC[e.to]), what);
    const routed = s.mode === 'routed';
    assert.equal(one(eths[1], 'eth.src', what), macToString(routed ? GW_MAC.a : e.flow.srcMac), what);
    assert.equal(one(eths[1], 'eth.dst', what), macToString(routed ? GLOBAL_VIRTUAL_MAC : e.flow.dstMac), what);
    // IP: the outer header is the first of its family; the inner the next one of its own.
    const ips = layersOf(L, 'ip');
    const ip6s = layersOf(L, 'ipv6');
    const outerIp = s.family === 4 ? ips[0] : ip6s[0];
    const innerIp = e.flow.family === 4 ? ips[s.family === 4 ? 1 : 0] : ip6s[s.family === 6 ? 1 : 0];
    assert.equal(ips.length + ip6s.length, 2, `${what}: IP layers`);
    const pfx = s.family === 4 ? 'ip' : 'ipv6';
    assert.equal(ipText(one(outerIp, `${pfx}.src`, what)), ipText(UNDERLAY[s.family].a), what);
    assert.equal(ipText(one(outerIp, `${pfx}.dst`, what)), ipText(UNDERLAY[s.family][e.to]), what);
    if (s.family === 4) {
      assert.equal(one(outerIp, 'ip.ttl', what), '64', what);
      assert.equal(one(outerIp, 'ip.flags.df', what), '0', `${what}: outer DF`);
      assert.equal(one(outerIp, 'ip.proto', what), '17', what);
    } else {
      assert.equal(one(outerIp, 'ipv6.hlim', what), '64', what);
      assert.equal(one(outerIp, 'ipv6.nxt', what), '17', what);
    }
    const ipfx = e.flow.family === 4 ? 'ip' : 'ipv6';
    assert.equal(ipText(one(innerIp, `${ipfx}.src`, what)), ipText(e.flow.src), what);
    assert.equal(ipText(one(innerIp, `${ipfx}.dst`, what)), ipText(e.flow.dst), what);
    // Routed frames crossed the gateway: one hop less.
    assert.equal(one(innerIp, e.flow.family === 4 ? 'ip.ttl' : 'ipv6.hlim', what), String(e.innerTtl), `${what}: inner TTL`);
    // Outer UDP.
    const udps = layersOf(L, 'udp');
    assert.equal(udps.length, e.flow.proto === 'udp' ? 2 : 1, `${what}: udp layers`);
    assert.equal(one(udps[0], 'udp.dstport', what), s.kind === 'vxlan' ? '4789' : '6081', what);
    const sport = Number(one(udps[0], 'udp.srcport', what));
    const [lo, hi] = s.srcPorts ?? [49152, 65535];
    assert.ok(sport >= lo && sport <= hi, `${what}: source port ${sport} outside ${lo}-${hi}`);
    // VNI.
    if (s.kind === 'vxlan') {
      assert.equal(Number(one(L.vxlan, 'vxlan.vni', what)), e.vni, `${what}: VNI`);
      assert.equal(one(L.vxlan, 'vxlan.flags', what), '0x0800', `${what}: VXLAN flags (I only)`);
    } else {
      assert.equal(Number(one(L.geneve, 'geneve.vni', what)), e.vni, `${what}: VNI`);
      assert.equal(one(L.geneve, 'geneve.proto_type', what), '0x6558', what);
    }
    // The inner transport: ports or ICMP identifier as sent.
    if (e.flow.proto === 'udp') {
      assert.equal(one(udps[1], 'udp.srcport', what), String(e.flow.sport), what);
      assert.equal(one(udps[1], 'udp.dstport', what), String(e.flow.dport), what);
    } else if (e.flow.proto === 'tcp') {
      assert.equal(one(L.tcp, 'tcp.srcport', what), String(e.flow.sport), what);
      assert.equal(one(L.tcp, 'tcp.dstport', what), String(e.flow.dport), what);
    } else {
      const icmp = e.flow.family === 4 ? L.icmp : L.icmpv6;
      assert.equal(Number(one(icmp, e.flow.family === 4 ? 'icmp.ident' : 'icmpv6.echo.identifier', what)), e.flow.sport, what);
    }
  });
});

test('tshark: the encapsulate trace record of each frame names what is on the wire (VNI, outer addresses, UDP ports, length)', () => {
  const t = decodeWithTshark();
  emitted.forEach((e, i) => {
    const what = `${e.s.name}: ${e.flow.name} → ${e.to}`;
    const L = t[i]!._source.layers;
    const pfx = e.s.family === 4 ? 'ip' : 'ipv6';
    const outerIp = layersOf(L, pfx)[0];
    const outerUdp = layersOf(L, 'udp')[0];
    assert.deepEqual(
      e.encap,
      {
        kind: e.s.kind,
        vni: e.vni,
        outerSrc: ipText(one(outerIp, `${pfx}.src`, what)),
        outerDst: ipText(one(outerIp, `${pfx}.dst`, what)),
        udpSrcPort: Number(one(outerUdp, 'udp.srcport', what)),
        udpDstPort: Number(one(outerUdp, 'udp.dstport', what)),
        bytes: Number(one(L.frame, 'frame.len', what)),
      },
      what,
    );
  });
});

test('tshark: the outer UDP source port is one per inner flow and varies across flows', () => {
  const t = decodeWithTshark();
  for (const s of SCENARIOS) {
    const ports = new Map<string, Set<number>>();
    emitted.forEach((e, i) => {
      if (e.s !== s) return;
      const sport = Number(one(layersOf(t[i]!._source.layers, 'udp')[0], 'udp.srcport', s.name));
      ports.set(e.flow.name, (ports.get(e.flow.name) ?? new Set()).add(sport));
    });
    for (const [flow, set] of ports) assert.equal(set.size, 1, `${s.name}: flow ${flow} left with source ports ${[...set].join(', ')}`);
    const distinct = new Set([...ports.values()].map((x) => [...x][0]));
    // Hashes of 6-7 flows into ≥ 1000 ports: the ranges here are wide enough that every flow got its own.
    assert.equal(distinct.size, ports.size, `${s.name}: flows share source ports: ${JSON.stringify([...ports].map(([k, v]) => [k, [...v]]))}`);
  }
});

test('tshark: Geneve options (class, type, length, data) and the C bit as configured', () => {
  const t = decodeWithTshark();
  emitted.forEach((e, i) => {
    if (e.s.kind !== 'geneve') return;
    const what = `${e.s.name}: ${e.flow.name}`;
    const g = t[i]!._source.layers.geneve;
    const want = e.s.options ?? [];
    const tree = (g as Record<string, unknown>)['geneve.options_tree'];
    const opts = layersOf((tree ?? {}) as TsharkLayers, 'geneve.option_tree');
    assert.equal(opts.length, want.length, `${what}: options`);
    want.forEach((o, k) => {
      const got = opts[k];
      assert.equal(Number(one(got, 'geneve.option.class', what)), o.class, `${what}: option ${k} class`);
      assert.equal(Number(one(got, 'geneve.option.type', what)), o.type, `${what}: option ${k} type`);
      assert.equal(one(got, 'geneve.option.type.critical', what), (o.type & 0x80) !== 0 ? '1' : '0', `${what}: option ${k} critical`);
      // Wireshark's option length counts the option's own 4-byte header.
      assert.equal(Number(one(got, 'geneve.option.length', what)), 4 + o.data.length, `${what}: option ${k} length`);
      // An option without data shows an empty data field.
      const d = values(got, 'geneve.option.unknown.data');
      assert.ok(d.length <= 1, `${what}: option ${k} data fields ${JSON.stringify(d)}`);
      assert.equal((d[0] ?? '').replace(/:/g, ''), hex(o.data), `${what}: option ${k} data`);
    });
    assert.equal(one(g, 'geneve.flags.critical', what), want.some((o) => (o.type & 0x80) !== 0) ? '1' : '0', `${what}: C bit`);
    assert.equal(one(g, 'geneve.flags.oam', what), '0', what);
    assert.equal(one(g, 'geneve.version', what), '0', what);
  });
});

test('tshark: outer UDP checksum zero over IPv4 by default, present and good when configured and over IPv6', () => {
  const t = decodeWithTshark();
  emitted.forEach((e, i) => {
    const what = `${e.s.name}: ${e.flow.name}`;
    const outer = layersOf(t[i]!._source.layers, 'udp')[0];
    const sum = Number(one(outer, 'udp.checksum', what));
    if (e.s.family === 4 && e.s.udpChecksum !== true) {
      assert.equal(sum, 0, `${what}: outer UDP checksum over IPv4 must default to zero`);
    } else {
      assert.notEqual(sum, 0, `${what}: outer UDP checksum missing`);
      assert.equal(one(outer, 'udp.checksum.status', what), STATUS_GOOD, `${what}: outer UDP checksum`);
    }
  });
});

test('tshark: every checksum tshark checks is good (outer IPv4, inner IPv4/UDP/TCP/ICMP/ICMPv6), inner routed TTL decrement included', () => {
  const t = decodeWithTshark();
  emitted.forEach((e, i) => {
    const what = `${e.s.name}: ${e.flow.name}`;
    const L = t[i]!._source.layers;
    const ips = layersOf(L, 'ip');
    for (const ip of ips) assert.equal(one(ip, 'ip.checksum.status', what), STATUS_GOOD, `${what}: IPv4 header checksum`);
    assert.equal(ips.length, (e.s.family === 4 ? 1 : 0) + (e.flow.family === 4 ? 1 : 0), what);
    if (e.flow.proto === 'udp') assert.equal(one(layersOf(L, 'udp')[1], 'udp.checksum.status', what), STATUS_GOOD, `${what}: inner UDP checksum`);
    if (e.flow.proto === 'tcp') assert.equal(one(L.tcp, 'tcp.checksum.status', what), STATUS_GOOD, `${what}: inner TCP checksum`);
    if (e.flow.proto === 'icmp') {
      const k = e.flow.family === 4 ? 'icmp' : 'icmpv6';
      assert.equal(one(L[k], `${k}.checksum.status`, what), STATUS_GOOD, `${what}: inner ${k} checksum`);
    }
    for (const [k, v] of allPairs(L)) if (k.endsWith('checksum.status')) assert.notEqual(v, '0', `${what}: ${k} bad`);
  });
});

test('tshark: nothing malformed, no expert errors', () => {
  const t = decodeWithTshark();
  const malformed = t.flatMap((f, i) =>
    JSON.stringify(f).includes('_ws.malformed')
      ? [`${emitted[i]!.s.name}: ${emitted[i]!.flow.name}: ${JSON.stringify(f._source.layers['_ws.malformed'] ?? f._source.layers).slice(0, 400)}`]
      : [],
  );
  assert.deepEqual(malformed, [], 'tshark reports malformed frames');
  assert.ok(!tsharkRaw.includes('_ws.malformed'));
  t.forEach((f, i) => {
    for (const [k, v] of allPairs(f._source.layers)) {
      if (k === '_ws.expert.severity') {
        const messages = allPairs(f._source.layers)
          .filter(([key]) => key === '_ws.expert.message')
          .map(([, m]) => m);
        assert.ok(Number(v) < 0x00800000, `${emitted[i]!.s.name}: ${emitted[i]!.flow.name}: expert error among ${JSON.stringify(messages)}`);
      }
    }
  });
});

// ---- part 3: scapy decodes what the pipeline emitted ----------------------------------------------------

interface ScapyDecoded {
  name: string;
  error?: string;
  kind?: 'vxlan' | 'geneve';
  family?: Family;
  outerSrcMac?: string;
  outerDstMac?: string;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  udpChecksum?: number;
  udpChecksumComputed?: number;
  ipChecksum?: number;
  ipChecksumComputed?: number;
  vni?: number;
  flags?: number;
  version?: number;
  optionlen?: number;
  oam?: number;
  critical?: number;
  proto?: number;
  options?: Array<{ class: number; type: number; length: number; data: string }>;
  inner?: string;
}

let scapyDecoded: ScapyDecoded[] | null = null;

function decodeWithScapy(): ScapyDecoded[] {
  if (scapyDecoded !== null) return scapyDecoded;
  requireScapy();
  const input = JSON.stringify(emitted.map((e, i) => ({ name: `${i}`, hex: hex(e.frame) })));
  scapyDecoded = JSON.parse(run(SYSTEM_PYTHON, [PEER, 'decode'], input)) as ScapyDecoded[];
  return scapyDecoded;
}

test('scapy decodes the emitted frames: VNI, Geneve options and flags, addresses, inner frame', () => {
  const d = decodeWithScapy();
  assert.equal(d.length, emitted.length);
  emitted.forEach((e, i) => {
    const what = `${e.s.name}: ${e.flow.name}`;
    const r = d[i]!;
    assert.equal(r.error, undefined, `${what}: scapy: ${r.error}`);
    assert.equal(r.kind, e.s.kind, what);
    assert.equal(r.family, e.s.family, what);
    assert.equal(r.outerSrcMac, macToString(UNDERLAY_MAC.a), what);
    assert.equal(r.outerDstMac, macToString(UNDERLAY_MAC[e.to]), what);
    assert.equal(ipText(r.src!), ipText(UNDERLAY[e.s.family].a), what);
    assert.equal(ipText(r.dst!), ipText(UNDERLAY[e.s.family][e.to]), what);
    assert.equal(r.dport, e.s.kind === 'vxlan' ? 4789 : 6081, what);
    assert.equal(r.vni, e.vni, `${what}: VNI`);
    assert.equal(r.inner, hex(e.inner), `${what}: inner frame`);
    if (e.s.kind === 'vxlan') {
      assert.equal(r.flags, 0x08, `${what}: VXLAN flags`);
    } else {
      const want = e.s.options ?? [];
      assert.deepEqual(
        r.options,
        want.map((o) => ({ class: o.class, type: o.type, length: o.data.length / 4, data: hex(o.data) })),
        `${what}: options`,
      );
      assert.equal(
        r.optionlen,
        want.reduce((n, o) => n + 1 + o.data.length / 4, 0),
        `${what}: Opt Len`,
      );
      assert.equal(r.critical, want.some((o) => (o.type & 0x80) !== 0) ? 1 : 0, `${what}: C bit`);
      assert.equal(r.oam, 0, what);
      assert.equal(r.version, 0, what);
      assert.equal(r.proto, 0x6558, what);
    }
  });
});

test('scapy recomputes the outer checksums: IPv4 header always, UDP when present', () => {
  const d = decodeWithScapy();
  emitted.forEach((e, i) => {
    const what = `${e.s.name}: ${e.flow.name}`;
    const r = d[i]!;
    if (e.s.family === 4) assert.equal(r.ipChecksum, r.ipChecksumComputed, `${what}: outer IPv4 header checksum`);
    if (e.s.family === 4 && e.s.udpChecksum !== true) assert.equal(r.udpChecksum, 0, what);
    else assert.equal(r.udpChecksum, r.udpChecksumComputed, `${what}: outer UDP checksum`);
  });
});

// ---- part 2: scapy builds, seine decapsulates -------------------------------------------------------------

interface PeerInner {
  srcMac: string;
  dstMac: string;
  family: Family;
  src: string;
  dst: string;
  proto: Proto;
  sport: number;
  dport: number;
  payload: string;
  ttl?: number;
}
interface PeerFrame {
  name: string;
  kind: TunnelKind;
  family: Family;
  vni: number;
  options: Array<{ class: number; type: number; data: string }>;
  udpChecksum: 'auto' | 'zero' | 'bad';
  outer: { srcMac: string; dstMac: string; src: string; dst: string; sport: number };
  inner: PeerInner;
  /** What seine must do: deliver to the pod of this segment, or drop for this reason. */
  expect: { segment: number } | { drop: DropReason };
  /** Geneve C bit when it should not be what the options say (a sender that forgot it). */
  critical?: 0 | 1;
  /** A Router Alert option in the outer IPv4 header. */
  ipOptions?: boolean;
  /** A Destination Options header between the outer IPv6 header and UDP. */
  destOpt?: boolean;
  /** Bytes after the outer IP datagram (an Ethernet trailer). */
  trailer?: number;
}

/** The receiving nodes: one per tunnel kind and underlay family, l2 mode, segments 42 (VNI 4242) and 7 (VNI 77). */
const RX = {
  4: { local: '172.16.0.1', remote: '172.16.0.2' },
  6: { local: 'fd00:beef::1', remote: 'fd00:beef::2' },
} as const;
const RX_MAC = 0x0c0000000001;
const SCAPY_MAC = 0x0c0000000002;
const RX_SEGMENTS = [
  { segment: 42, vni: 4242 },
  { segment: 7, vni: 77 },
] as const;
/** The critical option the receivers know. */
const KNOWN_CRITICAL = { class: 0x0102, type: 0x80 };

function peerFrames(): PeerFrame[] {
  const podMac = (seg: number): string => macToString(0x020000000000 + seg);
  const inner = (n: number, seg: number, family: Family, proto: Proto): PeerInner => ({
    srcMac: macToString(0x02000000f000 + n),
    dstMac: podMac(seg),
    family,
    proto,
    src: family === 4 ? `10.9.0.${n}` : `fd00:9::${n}`,
    dst: family === 4 ? '10.9.0.200' : 'fd00:9::200',
    sport: 30000 + n,
    dport: proto === 'icmp' ? n : 8000 + n,
    payload: hex(new TextEncoder().encode(`scapy inner frame ${n}`)),
    ttl: 17,
  });
  const o = (cls: number, type: number, bytes: number): { class: number; type: number; data: string } => ({
    class: cls,
    type,
    data: hex(Uint8Array.from({ length: bytes }, (_, i) => (cls + type + i * 7) & 0xff)),
  });
  const outer = (family: Family, sport: number): PeerFrame['outer'] => ({
    srcMac: macToString(SCAPY_MAC),
    dstMac: macToString(RX_MAC),
    src: RX[family].remote,
    dst: RX[family].local,
    sport,
  });
  type Extra = Pick<PeerFrame, 'critical' | 'ipOptions' | 'destOpt' | 'trailer'> & { src?: string };
  const f = (
    name: string,
    kind: TunnelKind,
    family: Family,
    vni: number,
    options: PeerFrame['options'],
    udpChecksum: PeerFrame['udpChecksum'],
    n: number,
    proto: Proto,
    expect: PeerFrame['expect'],
    extra: Extra = {},
  ): PeerFrame => {
    const seg = RX_SEGMENTS.find((x) => x.vni === vni)?.segment ?? 42;
    const { src, ...rest } = extra;
    const out = outer(family, 50000 + n);
    return {
      name,
      kind,
      family,
      vni,
      options,
      udpChecksum,
      outer: src === undefined ? out : { ...out, src },
      inner: inner(n, seg, n % 2 === 0 ? 6 : 4, proto),
      expect,
      ...rest,
    };
  };
  /** 252 bytes of options, the most Opt Len can say: 128 + 124. */
  const maximal = [o(0xffff, 0x10, 124), o(KNOWN_CRITICAL.class, KNOWN_CRITICAL.type, 120)];
  const several = [o(0xffff, 0x42, 8), o(KNOWN_CRITICAL.class, KNOWN_CRITICAL.type, 4), o(0x0101, 0x07, 12), o(0x0103, 0x7f, 0)];
  return [
    f('geneve/ipv4: one 8-byte option', 'geneve', 4, 4242, [o(0x0104, 0x01, 8)], 'auto', 1, 'udp', { segment: 42 }),
    f('geneve/ipv4: several options, unknown non-critical and known critical', 'geneve', 4, 77, several, 'auto', 2, 'tcp', { segment: 7 }),
    f('geneve/ipv4: no options, zero UDP checksum', 'geneve', 4, 4242, [], 'zero', 3, 'icmp', { segment: 42 }),
    f('geneve/ipv4: the known critical option alone', 'geneve', 4, 4242, [o(KNOWN_CRITICAL.class, KNOWN_CRITICAL.type, 8)], 'zero', 4, 'udp', { segment: 42 }),
    f('geneve/ipv4: an unknown critical option', 'geneve', 4, 4242, [o(0xffff, 0x81, 4)], 'auto', 5, 'udp', { drop: DropReason.GeneveUnknownCriticalOption }),
    f(
      'geneve/ipv4: an unknown critical option after known ones',
      'geneve',
      4,
      77,
      [o(KNOWN_CRITICAL.class, KNOWN_CRITICAL.type, 4), o(0xffff, 0x42, 4), o(0x0103, 0xc0, 8)],
      'zero',
      6,
      'udp',
      { drop: DropReason.GeneveUnknownCriticalOption },
    ),
    f(
      'geneve/ipv4: the known class with the critical bit on another type',
      'geneve',
      4,
      77,
      [o(KNOWN_CRITICAL.class, KNOWN_CRITICAL.type | 1, 4)],
      'auto',
      7,
      'udp',
      { drop: DropReason.GeneveUnknownCriticalOption },
    ),
    f('geneve/ipv4: wrong outer UDP checksum', 'geneve', 4, 4242, [o(0x0104, 0x01, 8)], 'bad', 8, 'udp', { drop: DropReason.UdpBadChecksum }),
    f('geneve/ipv6: several options', 'geneve', 6, 77, several, 'auto', 9, 'udp', { segment: 7 }),
    f('geneve/ipv6: one 8-byte option', 'geneve', 6, 4242, [o(0x0104, 0x01, 8)], 'auto', 10, 'icmp', { segment: 42 }),
    f('geneve/ipv6: an unknown critical option', 'geneve', 6, 4242, [o(0x0105, 0xff, 4)], 'auto', 11, 'udp', { drop: DropReason.GeneveUnknownCriticalOption }),
    f('geneve/ipv6: wrong outer UDP checksum', 'geneve', 6, 77, several, 'bad', 12, 'tcp', { drop: DropReason.UdpBadChecksum }),
    f('vxlan/ipv4: scapy UDP checksum', 'vxlan', 4, 4242, [], 'auto', 13, 'udp', { segment: 42 }),
    f('vxlan/ipv4: zero UDP checksum', 'vxlan', 4, 77, [], 'zero', 14, 'tcp', { segment: 7 }),
    f('vxlan/ipv4: wrong outer UDP checksum', 'vxlan', 4, 77, [], 'bad', 15, 'udp', { drop: DropReason.UdpBadChecksum }),
    f('vxlan/ipv6: scapy UDP checksum', 'vxlan', 6, 4242, [], 'auto', 16, 'icmp', { segment: 42 }),
    f('vxlan/ipv6: second VNI', 'vxlan', 6, 77, [], 'auto', 17, 'udp', { segment: 7 }),
    f('vxlan/ipv6: wrong outer UDP checksum', 'vxlan', 6, 4242, [], 'bad', 18, 'udp', { drop: DropReason.UdpBadChecksum }),
    // The edges of the outer headers and the tunnel tables.
    f('geneve/ipv4: 252 bytes of options (Opt Len 63)', 'geneve', 4, 77, maximal, 'auto', 19, 'udp', { segment: 7 }),
    f('geneve/ipv6: 252 bytes of options (Opt Len 63)', 'geneve', 6, 4242, maximal, 'auto', 20, 'tcp', { segment: 42 }),
    f(
      'geneve/ipv4: an unknown critical option, C bit clear',
      'geneve',
      4,
      4242,
      [o(0xffff, 0x42, 4), o(0xffff, 0x83, 4)],
      'auto',
      21,
      'udp',
      { drop: DropReason.GeneveUnknownCriticalOption },
      { critical: 0 },
    ),
    f('geneve/ipv4: C bit set, no critical option', 'geneve', 4, 4242, [o(0xffff, 0x42, 4)], 'auto', 22, 'udp', { segment: 42 }, { critical: 1 }),
    f('vxlan/ipv4: outer IPv4 header with options', 'vxlan', 4, 4242, [], 'auto', 23, 'udp', { segment: 42 }, { ipOptions: true }),
    f(
      'geneve/ipv4: outer IPv4 header with options, zero checksum',
      'geneve',
      4,
      77,
      [o(0x0104, 0x01, 8)],
      'zero',
      24,
      'tcp',
      { segment: 7 },
      { ipOptions: true },
    ),
    f('vxlan/ipv6: destination options header before UDP', 'vxlan', 6, 77, [], 'auto', 25, 'udp', { segment: 7 }, { destOpt: true }),
    f('geneve/ipv6: destination options header before UDP', 'geneve', 6, 4242, [o(0x0104, 0x01, 8)], 'auto', 26, 'icmp', { segment: 42 }, { destOpt: true }),
    f('vxlan/ipv4: Ethernet trailer after the datagram', 'vxlan', 4, 77, [], 'auto', 27, 'udp', { segment: 7 }, { trailer: 6 }),
    f('geneve/ipv6: Ethernet trailer after the datagram', 'geneve', 6, 77, several, 'auto', 28, 'udp', { segment: 7 }, { trailer: 10 }),
    f('vxlan/ipv6: zero UDP checksum (not accepted by default)', 'vxlan', 6, 4242, [], 'zero', 29, 'udp', { drop: DropReason.UdpZeroChecksumV6 }),
    f('vxlan/ipv4: a VNI not mapped', 'vxlan', 4, 999, [], 'auto', 30, 'udp', { drop: DropReason.UnknownVni }),
    f('geneve/ipv6: a VNI not mapped', 'geneve', 6, 999, [], 'auto', 31, 'udp', { drop: DropReason.UnknownVni }),
    f('vxlan/ipv4: from an unknown VTEP', 'vxlan', 4, 4242, [], 'auto', 32, 'udp', { drop: DropReason.UnknownVtep }, { src: '172.16.0.99' }),
    f('geneve/ipv6: from an unknown VTEP', 'geneve', 6, 4242, [], 'auto', 33, 'udp', { drop: DropReason.UnknownVtep }, { src: 'fd00:beef::99' }),
  ];
}

interface Receiver {
  br: Bridge;
  under: Endpoint;
  pods: Map<number, Endpoint>;
  trace: TraceLog;
}

function receiver(kind: TunnelKind, family: Family): Receiver {
  const br = new Bridge({ name: `rx-${kind}${family}`, pool, clock });
  const trace = new TraceLog();
  br.trace = trace.sink;
  const under = new Endpoint('underlay', pool, RX_MAC);
  const pods = new Map<number, Endpoint>();
  for (const { segment } of RX_SEGMENTS) {
    const ep = new Endpoint(`pod${segment}`, pool, 0x020000000000 + segment);
    br.addPort(`pod${segment}`, ep, { vlan: segment });
    pods.set(segment, ep);
  }
  br.addTunnel('tun0', under, { kind, mode: 'l2', localIp: RX[family].local, ...(kind === 'geneve' ? { knownOptions: [KNOWN_CRITICAL] } : {}) });
  for (const { segment, vni } of RX_SEGMENTS) br.mapVni('tun0', vni, segment);
  br.addVtep('tun0', { ip: RX[family].remote, mac: SCAPY_MAC, vnis: RX_SEGMENTS.map((x) => x.vni) });
  return { br, under, pods, trace };
}

interface Fed {
  f: PeerFrame;
  built: { frame?: string; inner?: string; error?: string };
  delivered: Array<{ segment: number; bytes: string }>;
  drops: Record<string, number>;
  records: TraceRecord[];
}

let fed: Fed[] | null = null;

function feedScapyFrames(): Fed[] {
  if (fed !== null) return fed;
  requireScapy();
  const frames = peerFrames();
  const built = JSON.parse(run(SYSTEM_PYTHON, [PEER, 'build'], JSON.stringify(frames))) as Array<{
    name: string;
    frame?: string;
    inner?: string;
    error?: string;
  }>;
  assert.equal(built.length, frames.length);
  const rx = new Map<string, Receiver>();
  fed = frames.map((f, i) => {
    const b = built[i]!;
    assert.equal(b.name, f.name);
    if (b.frame === undefined) return { f, built: b, delivered: [], drops: {}, records: [] };
    const key = `${f.kind}${f.family}`;
    let r = rx.get(key);
    if (r === undefined) rx.set(key, (r = receiver(f.kind, f.family)));
    const c = r.br.port('tun0').counters;
    c.reset();
    r.trace.clear();
    r.under.send([Uint8Array.from(Buffer.from(b.frame, 'hex'))], true);
    const delivered: Fed['delivered'] = [];
    for (const [segment, ep] of r.pods) for (const x of ep.take()) delivered.push({ segment, bytes: hex(x) });
    return { f, built: b, delivered, drops: c.dropsByReason(), records: [...r.trace.records] };
  });
  return fed;
}

test('scapy builds every tunnel frame described', () => {
  for (const x of feedScapyFrames()) assert.equal(x.built.error, undefined, `${x.f.name}: scapy: ${x.built.error}`);
});

test('scapy-built frames are decapsulated: the pod gets exactly the inner frame scapy encapsulated', () => {
  for (const x of feedScapyFrames()) {
    if (!('segment' in x.f.expect)) continue;
    assert.deepEqual(x.drops, {}, `${x.f.name}: dropped`);
    assert.deepEqual(x.delivered, [{ segment: x.f.expect.segment, bytes: x.built.inner }], `${x.f.name}: delivery`);
  }
});

test('scapy-built frames: the decapsulate trace record shows the VNI, the remote, the inner MACs and length, and every option (class, type, data)', () => {
  for (const x of feedScapyFrames()) {
    if (!('segment' in x.f.expect)) continue;
    const d = x.records.filter((r) => r.stage === 'decapsulate');
    assert.equal(d.length, 1, `${x.f.name}: decapsulate records`);
    const detail = d[0]!.detail;
    assert.equal(detail.kind, x.f.kind, x.f.name);
    assert.equal(detail.vni, x.f.vni, x.f.name);
    assert.equal(detail.remote, RX[x.f.family].remote, x.f.name);
    assert.equal(detail.innerSrc, x.f.inner.srcMac, x.f.name);
    assert.equal(detail.innerDst, x.f.inner.dstMac, x.f.name);
    assert.equal(detail.bytes, x.built.inner!.length / 2, `${x.f.name}: inner length (a trailer is not part of it)`);
    if (x.f.kind === 'geneve') assert.deepEqual(detail.options, x.f.options, `${x.f.name}: options in the trace`);
    else assert.equal(detail.options, undefined, x.f.name);
  }
});

test('scapy-built frames that must be dropped are dropped for the right reason, and nothing is delivered', () => {
  for (const x of feedScapyFrames()) {
    if (!('drop' in x.f.expect)) continue;
    const name = dropReasonName(x.f.expect.drop);
    assert.deepEqual(x.delivered, [], `${x.f.name}: delivered`);
    assert.deepEqual(x.drops, { [name]: 1 }, `${x.f.name}: drops`);
    const drop = x.records.filter((r) => r.stage === 'drop');
    assert.equal(drop.length, 1, `${x.f.name}: drop records`);
    assert.equal(drop[0]!.detail.reason, name, x.f.name);
    assert.equal(drop[0]!.detail.stage, 'decapsulate', x.f.name);
  }
});

test('scapy-built frames: the set covers what the brief asks for', () => {
  const frames = feedScapyFrames().map((x) => x.f);
  const has = (p: (f: PeerFrame) => boolean): boolean => frames.some(p);
  assert.ok(has((f) => f.kind === 'geneve' && f.options.length === 1 && f.options[0]!.data.length === 16 && 'segment' in f.expect));
  assert.ok(has((f) => f.kind === 'geneve' && f.options.some((o) => o.type < 0x80) && f.options.some((o) => o.type >= 0x80) && 'segment' in f.expect));
  for (const fam of [4, 6] as const) {
    assert.ok(has((f) => f.kind === 'vxlan' && f.family === fam && f.udpChecksum === 'auto' && 'segment' in f.expect));
    assert.ok(has((f) => f.family === fam && 'drop' in f.expect && f.expect.drop === DropReason.UdpBadChecksum));
  }
});
