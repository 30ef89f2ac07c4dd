/**
 * Tunnel ports on the bridge: routed pod-to-pod traffic between two nodes over VXLAN and Geneve (IPv4 and
 * IPv6 pods, IPv4 and IPv6 underlays), and flood-and-learn L2 overlays (head-end replication, learning
 * against remote VTEPs, split horizon, VNI isolation).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Bridge } from '../../src/datapath/bridge.js';
import { GLOBAL_VIRTUAL_MAC } from '../../src/datapath/gateway.js';
import type { VlanConfig } from '../../src/datapath/port.js';
import { PacketBatch } from '../../src/packet/buf.js';
import { ipv4FromString, ipv6FromString } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import type { GeneveOption } from '../../src/wire/geneve.js';
import { compose, dissect, type Dissected } from '../../src/wire/stack.js';
import { data, eth, ip4, ip6, udp } from '../peers/catalogue.js';
import {
  addHost,
  assertBooks,
  assertPoolFull,
  BROADCAST,
  carries,
  counts,
  drops,
  frame,
  hostMac,
  ingressSegment,
  newBridge,
  newNet,
  seen,
  tapPair,
  untaggedVlan,
  vlanConfigArb,
  type Host,
  type Net,
  type TapEnd,
} from './topology.js';

const v4 = (s: string): number => ipv4FromString(s)!;
const v6 = (s: string): Uint8Array => ipv6FromString(s)!;

function only<K extends Dissected['kind']>(l: Dissected | undefined, kind: K): Extract<Dissected, { kind: K }> {
  assert.ok(l !== undefined && l.kind === kind, `expected a ${kind} layer, got ${l?.kind}`);
  return l as Extract<Dissected, { kind: K }>;
}

function layers(f: Uint8Array): Dissected[] {
  const d = dissect(f);
  assert.equal(d.drop, null, `frame dissects without error (stopped with ${d.drop === null ? '' : DropReason[d.drop]})`);
  return d.layers;
}

/** Frames loaded into pool buffers, as a device would hand them over. */
function batchOf(net: Net, ...frames: Uint8Array[]): PacketBatch {
  const b = new PacketBatch();
  for (const f of frames) {
    const p = net.pool.alloc()!;
    p.load(f);
    b.add(p);
  }
  return b;
}

// ---- routed: two nodes, each with a gateway and a routed tunnel over one veth underlay ----

const GW = [0, 0x02aa00000001, 0x02aa00000002];
const POD = [0, hostMac(0x105), hostMac(0x205)];
const UNDER_MAC = [0, 0x0e0000000001, 0x0e0000000002];
const OPTS: GeneveOption[] = [{ class: 0x0104, type: 0x01, data: new Uint8Array([0, 0, 0, 0x2a]) }];

interface RoutedNode {
  br: Bridge;
  pod: Host;
  under: TapEnd;
}

interface Routed {
  net: Net;
  n1: RoutedNode;
  n2: RoutedNode;
  underIp: [string, string];
}

function routed(kind: 'vxlan' | 'geneve', underlay: 4 | 6, extra: { options?: GeneveOption[]; udpChecksum?: boolean } = {}): Routed {
  const net = newNet();
  const underIp: [string, string] = underlay === 4 ? ['192.168.0.1', '192.168.0.2'] : ['fd00:ff::1', 'fd00:ff::2'];
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!);
  const make = (i: 1 | 2, under: TapEnd): RoutedNode => {
    const j = 3 - i;
    const br = newBridge(net, `node${i}`);
    br.addGateway({ name: 'gw0', mac: GW[i]!, ipv4: `10.244.${i}.1/24`, ipv6: `fd00:${i}::1/64` });
    br.addTunnel('tun0', under, { kind, mode: 'routed', localIp: underIp[i - 1]!, ...extra });
    br.addVtep('tun0', { ip: underIp[j - 1]!, mac: UNDER_MAC[j]! });
    br.addRoute(`10.244.${j}.0/24`, { tunnel: 'tun0', vtep: underIp[j - 1]! });
    br.addRoute(`fd00:${j}::/64`, { tunnel: 'tun0', vtep: underIp[j - 1]! });
    const pod = addHost(br, net, `pod${i}`, POD[i]!);
    br.addNeighbor(`10.244.${i}.5`, POD[i]!);
    br.addNeighbor(`fd00:${i}::5`, POD[i]!);
    return { br, pod, under };
  };
  return { net, n1: make(1, u1), n2: make(2, u2), underIp };
}

function podPacket(inner: 4 | 6, ttl = 64): Uint8Array {
  return inner === 4
    ? compose([eth(0x0800, [], POD[1]!, GW[1]!), ip4('10.244.1.5', '10.244.2.5', 17, { ttl }), udp(33000, 8080), data('across the overlay')])
    : compose([eth(0x86dd, [], POD[1]!, GW[1]!), ip6('fd00:1::5', 'fd00:2::5', 17, { hopLimit: ttl }), udp(33000, 8080), data('across the overlay')]);
}

for (const kind of ['vxlan', 'geneve'] as const) {
  for (const underlay of [4, 6] as const) {
    for (const inner of [4, 6] as const) {
      test(`routed ${kind} over IPv${underlay}: an IPv${inner} pod on node1 reaches a pod on node2, TTL − 2, checksums valid`, () => {
        const { net, n1, n2, underIp } = routed(kind, underlay, kind === 'geneve' ? { options: OPTS } : {});
        const sent = podPacket(inner);
        n1.pod.ep.send([sent]);
        const got = n2.pod.ep.take();
        assert.equal(got.length, 1, 'delivered once');
        const [e, ip, u, d] = layers(got[0]!);
        assert.deepEqual(only(e, 'eth').repr, { dst: POD[2], src: GW[2], vlans: [], etherType: inner === 4 ? 0x0800 : 0x86dd });
        if (inner === 4) {
          const i = only(ip, 'ipv4');
          assert.equal(i.repr.ttl, 62);
          assert.equal(i.checksumOk, true, 'IPv4 header checksum');
          assert.deepEqual([i.repr.src, i.repr.dst], [v4('10.244.1.5'), v4('10.244.2.5')]);
        } else {
          const i = only(ip, 'ipv6').repr;
          assert.equal(i.hopLimit, 62);
          assert.deepEqual([i.src, i.dst], [v6('fd00:1::5'), v6('fd00:2::5')]);
        }
        assert.equal(only(u, 'udp').checksumOk, true, 'inner UDP checksum');
        assert.deepEqual(only(d, 'data').bytes, new TextEncoder().encode('across the overlay'));
        // The frame on the underlay: outer headers from node1's template, inner frame routed once.
        assert.equal(n1.under.sent.length, 1);
        const outer = layers(n1.under.sent[0]!);
        assert.deepEqual(only(outer[0], 'eth').repr, { dst: UNDER_MAC[2], src: UNDER_MAC[1], vlans: [], etherType: underlay === 4 ? 0x0800 : 0x86dd });
        if (underlay === 4) {
          const o = only(outer[1], 'ipv4');
          assert.equal(o.checksumOk, true);
          assert.deepEqual([o.repr.src, o.repr.dst, o.repr.protocol], [v4(underIp[0]), v4(underIp[1]), 17]);
        } else {
          const o = only(outer[1], 'ipv6').repr;
          assert.deepEqual([o.src, o.dst, o.nextHeader], [v6(underIp[0]), v6(underIp[1]), 17]);
        }
        const ou = only(outer[2], 'udp');
        assert.equal(ou.repr.dstPort, kind === 'vxlan' ? 4789 : 6081);
        assert.ok(ou.repr.srcPort >= 49152, 'source port from the flow hash range');
        if (underlay === 6) assert.equal(ou.checksumOk, true, 'outer UDP checksum over IPv6');
        else assert.equal(ou.zeroChecksum, true, 'zero outer UDP checksum over IPv4 by default');
        if (kind === 'vxlan') assert.equal(only(outer[3], 'vxlan').repr.vni, 1);
        else
          assert.deepEqual(only(outer[3], 'geneve').repr, { vni: 1, protocolType: 0x6558, oam: false, critical: false, options: OPTS.map((o) => ({ ...o })) });
        assert.deepEqual(only(outer[4], 'eth').repr, { dst: GLOBAL_VIRTUAL_MAC, src: GW[1], vlans: [], etherType: inner === 4 ? 0x0800 : 0x86dd });
        if (inner === 4) assert.equal(only(outer[5], 'ipv4').repr.ttl, 63);
        else assert.equal(only(outer[5], 'ipv6').repr.hopLimit, 63);
        assert.equal(n1.br.tunnel('tun0').vteps[0]!.txPackets, 1);
        assert.equal(n2.br.tunnel('tun0').vteps[0]!.rxPackets, 1);
        for (const n of [n1, n2]) assertBooks(n.br);
        assertPoolFull(net.pool);
      });
    }
  }
}

test("routed: ping to the other node's gateway comes back through the tunnel", () => {
  const { net, n1, n2 } = routed('vxlan', 4, { udpChecksum: true });
  n1.pod.ep.send([
    compose([
      eth(0x0800, [], POD[1]!, GW[1]!),
      ip4('10.244.1.5', '10.244.2.1', 1),
      { kind: 'icmpv4', repr: { kind: 'echoRequest', ident: 1, seq: 1, data: new Uint8Array(8) } },
    ]),
  ]);
  const got = n1.pod.ep.take();
  assert.equal(got.length, 1);
  const [e, ip, icmp] = layers(got[0]!);
  assert.deepEqual(only(e, 'eth').repr, { dst: POD[1], src: GW[1], vlans: [], etherType: 0x0800 });
  const i = only(ip, 'ipv4');
  assert.deepEqual([i.repr.src, i.repr.dst, i.repr.ttl, i.checksumOk], [v4('10.244.2.1'), v4('10.244.1.5'), 63, true]);
  assert.equal(only(icmp, 'icmpv4').repr.kind, 'echoReply');
  assert.equal(only(icmp, 'icmpv4').checksumOk, true);
  // With udpChecksum the outer IPv4 UDP checksum is computed, and valid.
  const ou = only(layers(n2.under.sent[0]!)[2], 'udp');
  assert.equal(ou.zeroChecksum, false);
  assert.equal(ou.checksumOk, true);
  assertBooks(n1.br);
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});

test('routed: unknown destination is NoRoute, TTL 1 is TtlExceeded on the first hop, TTL 2 dies on the second', () => {
  const { net, n1, n2 } = routed('geneve', 6);
  n1.pod.ep.send([compose([eth(0x0800, [], POD[1]!, GW[1]!), ip4('10.244.1.5', '10.250.0.1', 17), udp(1, 2), data('x')])]);
  assert.equal(n1.br.gateway!.counters.drops[DropReason.NoRoute], 1);
  n1.pod.ep.send([podPacket(4, 1), podPacket(6, 1)]);
  assert.equal(n1.br.gateway!.counters.drops[DropReason.TtlExceeded], 2);
  assert.equal(n1.under.sent.length, 0, 'nothing entered the tunnel');
  n1.pod.ep.send([podPacket(4, 2), podPacket(6, 2)]);
  assert.equal(n1.under.sent.length, 2);
  assert.equal(n2.br.gateway!.counters.drops[DropReason.TtlExceeded], 2, 'the second hop refuses TTL 1');
  assert.equal(n2.pod.ep.count, 0);
  assertBooks(n1.br);
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});

test('routed: a destination on node2 without a neighbour entry is NeighborUnresolved there, and node2 solicits on its segment', () => {
  const { net, n1, n2 } = routed('vxlan', 4);
  n1.pod.ep.send([compose([eth(0x0800, [], POD[1]!, GW[1]!), ip4('10.244.1.5', '10.244.2.77', 17), udp(1, 2), data('x')])]);
  assert.equal(n2.br.gateway!.counters.drops[DropReason.NeighborUnresolved], 1);
  const got = n2.pod.ep.take();
  assert.equal(got.length, 1);
  assert.deepEqual(only(layers(got[0]!)[1], 'arp').repr, {
    operation: 1,
    senderMac: GW[2],
    senderIp: v4('10.244.2.1'),
    targetMac: 0,
    targetIp: v4('10.244.2.77'),
  });
  assert.equal(n1.under.sent.length, 1, 'the solicitation stays on node2: routed tunnels carry no floods');
  assert.equal(n2.under.sent.length, 0);
  assertBooks(n1.br);
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});

test('routed: frames from a tunnel are not routed back into a tunnel (no transit)', () => {
  const { net, n1, n2 } = routed('vxlan', 4);
  // node2 receives a packet for a third node's podCIDR, which it also routes through tun0.
  n2.br.addRoute('10.244.3.0/24', { tunnel: 'tun0', vtep: '192.168.0.1' });
  n1.br.addRoute('10.244.3.0/24', { tunnel: 'tun0', vtep: '192.168.0.2' });
  n1.pod.ep.send([compose([eth(0x0800, [], POD[1]!, GW[1]!), ip4('10.244.1.5', '10.244.3.9', 17), udp(1, 2), data('x')])]);
  assert.equal(n1.under.sent.length, 1);
  assert.equal(n2.br.gateway!.counters.drops[DropReason.NoRoute], 1, 'node2 refuses to send it back out');
  assert.equal(n2.under.sent.length, 0);
  assertBooks(n1.br);
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});

test("routed: decapsulated frames go to the gateway only: an inner broadcast is not switched onto the pods' segment", () => {
  const { net, n1, n2 } = routed('vxlan', 4);
  const extra = addHost(n2.br, net, 'pod2b', hostMac(0x206));
  // node1 sends, through its tunnel port, a frame node1's gateway would never build: an inner broadcast.
  const inner = compose([
    eth(0x0806, [], GW[1]!, BROADCAST),
    { kind: 'arp', repr: { operation: 1, senderMac: GW[1]!, senderIp: v4('10.244.1.1'), targetMac: 0, targetIp: v4('10.244.2.5') } },
  ]);
  const outer = compose([
    eth(0x0800, [], UNDER_MAC[1]!, UNDER_MAC[2]!),
    ip4('192.168.0.1', '192.168.0.2', 17, { dontFrag: false }),
    udp(50000, 4789, true),
    { kind: 'vxlan', repr: { vni: 1 } },
    { kind: 'data', bytes: inner },
  ]);
  const rx = n2.br.port('tun0').counters.rxPackets;
  n1.under.transmit(batchOf(net, outer));
  assert.equal(n2.br.port('tun0').counters.rxPackets, rx + 1);
  assert.equal(n2.pod.ep.count + extra.ep.count, 0, 'no pod sees a broadcast from another node');
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});

// ---- l2: flood and learn ----

const L2_VNI = 5000;

interface L2Node {
  br: Bridge;
  host: Host;
  /** The tunnel port's underlay device. */
  under: TapEnd;
  ip: string;
}

/** `n` nodes, each with an l2 tunnel whose underlay is plugged into one underlay bridge. */
function fabric(n: number, kind: 'vxlan' | 'geneve' = 'vxlan'): { net: Net; nodes: L2Node[]; underlay: Bridge } {
  const net = newNet();
  const underlay = newBridge(net, 'underlay');
  const mk = (i: number): { ip: string; mac: number } => ({ ip: `192.168.1.${i + 1}`, mac: 0x0e0100000000 + i });
  const nodes = Array.from({ length: n }, (_, i): L2Node => {
    const br = newBridge(net, `n${i + 1}`);
    const [t, u] = tapPair(`vx${i + 1}`, `u${i + 1}`, mk(i).mac, 0x0e0200000000 + i);
    underlay.addPort(`u${i + 1}`, u);
    br.addTunnel('vx', t, { kind, mode: 'l2', localIp: mk(i).ip });
    const host = addHost(br, net, `h${i + 1}`, hostMac(0x1000 * (i + 1)));
    return { br, host, under: t, ip: mk(i).ip };
  });
  nodes.forEach((node, i) => {
    for (let j = 0; j < n; j++) if (j !== i) node.br.addVtep('vx', { ip: mk(j).ip, mac: mk(j).mac, vnis: [L2_VNI] });
    node.br.mapVni('vx', L2_VNI, 0);
  });
  return { net, nodes, underlay };
}

test('flood and learn: a broadcast reaches each remote host once (head-end replication), learning binds MACs to VTEPs, unicast then goes to one VTEP', () => {
  for (const kind of ['vxlan', 'geneve'] as const) {
    const { net, nodes, underlay } = fabric(3, kind);
    const [A, B, C] = nodes as [L2Node, L2Node, L2Node];
    const hosts = nodes.map((n) => n.host);
    A.host.ep.send([frame({ src: A.host.mac, dst: BROADCAST, id: 1 })]);
    assert.deepEqual(counts(hosts), [0, 1, 1], `${kind}: B and C once each, A never`);
    assert.equal(A.under.sent.length, 2, 'one copy per VTEP of the VNI');
    const outerDst = A.under.sent.map((f) => {
      const l = layers(f);
      return [only(l[0], 'eth').repr.dst, only(l[1], 'ipv4').repr.dst];
    });
    assert.deepEqual(outerDst.sort(), [
      [0x0e0100000001, v4('192.168.1.2')],
      [0x0e0100000002, v4('192.168.1.3')],
    ]);
    for (const f of A.under.sent) {
      const l = layers(f);
      const vni = kind === 'vxlan' ? only(l[3], 'vxlan').repr.vni : only(l[3], 'geneve').repr.vni;
      assert.equal(vni, L2_VNI);
    }
    assert.equal(B.under.sent.length + C.under.sent.length, 0, 'split horizon: nothing from a tunnel goes back into one');
    // B and C learned A's MAC against A's VTEP.
    for (const n of [B, C]) {
      const e = n.br.macs.entries().find((x) => x.mac === A.host.mac);
      assert.ok(e !== undefined, `${n.br.name} learned A`);
      assert.deepEqual({ segment: e.segment, port: e.port, aux: e.aux }, { segment: 0, port: n.br.port('vx').index, aux: n.br.tunnel('vx').findVtep(A.ip) });
    }
    // B answers A: one outer frame, to A's VTEP only; C sees nothing.
    const cRx = C.br.port('vx').counters.rxPackets;
    B.host.ep.send([frame({ src: B.host.mac, dst: A.host.mac, id: 2 })]);
    assert.deepEqual(counts(hosts), [1, 1, 1]);
    assert.equal(B.under.sent.length, 1);
    assert.equal(only(layers(B.under.sent[0]!)[1], 'ipv4').repr.dst, v4(A.ip));
    assert.equal(C.br.port('vx').counters.rxPackets, cRx, "the underlay knew A: C's tunnel got nothing");
    const e = A.br.macs.entries().find((x) => x.mac === B.host.mac);
    assert.equal(e?.aux, A.br.tunnel('vx').findVtep(B.ip), "A learned B against B's VTEP");
    // And A → B is unicast too.
    const floods = nodes.map((n) => n.br.floodCopies);
    A.host.ep.send([frame({ src: A.host.mac, dst: B.host.mac, id: 3 })]);
    assert.deepEqual(counts(hosts), [1, 2, 1]);
    assert.deepEqual(
      nodes.map((n) => n.br.floodCopies),
      floods,
    );
    assert.deepEqual(seen(B.host.ep.take().at(-1)!).id, 3);
    for (const n of nodes) assertBooks(n.br);
    assertBooks(underlay);
    for (const h of hosts) h.ep.take();
    assertPoolFull(net.pool);
  }
});

test('split horizon: with two tunnel ports on one bridge, a flood from one never reaches the other', () => {
  const net = newNet();
  const hub = newBridge(net, 'hub');
  const local = addHost(hub, net, 'local', hostMac(1));
  const spokes = [1, 2].map((i) => {
    const [a, b] = tapPair(`hub${i}`, `spoke${i}`, 0x0e0000000010 + i, 0x0e0000000020 + i);
    hub.addTunnel(`vx${i}`, a, { kind: 'vxlan', mode: 'l2', localIp: `192.168.${i}.1` });
    hub.addVtep(`vx${i}`, { ip: `192.168.${i}.2`, mac: b.mac, vnis: [L2_VNI] });
    hub.mapVni(`vx${i}`, L2_VNI, 0);
    const br = newBridge(net, `spoke${i}`);
    br.addTunnel('vx', b, { kind: 'vxlan', mode: 'l2', localIp: `192.168.${i}.2` });
    br.addVtep('vx', { ip: `192.168.${i}.1`, mac: a.mac, vnis: [L2_VNI] });
    br.mapVni('vx', L2_VNI, 0);
    const host = addHost(br, net, `s${i}`, hostMac(0x100 + i));
    return { br, host, hubEnd: a, end: b };
  });
  const [s1, s2] = spokes as [(typeof spokes)[0], (typeof spokes)[0]];
  s1.host.ep.send([frame({ src: s1.host.mac, dst: BROADCAST }), frame({ src: s1.host.mac, dst: hostMac(0x999) })]);
  assert.equal(local.ep.count, 2, "the hub's local host gets both floods");
  assert.equal(s2.host.ep.count, 0, 'the other spoke gets neither');
  assert.equal(hub.port('vx2').counters.txPackets, 0);
  assert.equal(s1.hubEnd.sent.length, 0);
  // A flood from the local host goes to both tunnels.
  local.ep.send([frame({ src: local.mac, dst: BROADCAST })]);
  assert.deepEqual([s1.host.ep.count, s2.host.ep.count], [1, 1]);
  assertBooks(hub);
  for (const s of spokes) assertBooks(s.br);
  for (const h of [local, s1.host, s2.host]) h.ep.take();
  assertPoolFull(net.pool);
});

test('l2 tunnel drops: unknown VNI, unknown VTEP, not for us, and a segment with no VNI never enters the tunnel', () => {
  const { net, nodes } = fabric(2);
  const [A, B] = nodes as [L2Node, L2Node];
  // A host on a segment the tunnel does not carry: its broadcast stays local.
  const other = addHost(A.br, net, 'v7', hostMac(0x77), { vlan: 7 });
  other.ep.send([frame({ src: other.mac, dst: BROADCAST })]);
  assert.equal(A.under.sent.length, 0);
  // Craft outer frames towards B by hand.
  const inner = frame({ src: hostMac(0x31), dst: BROADCAST });
  const outer = (src: string, dst: string, vni: number): Uint8Array =>
    compose([
      eth(0x0800, [], 0x0e0100000000, 0x0e0100000001),
      ip4(src, dst, 17, { dontFrag: false }),
      udp(50000, 4789, true),
      { kind: 'vxlan', repr: { vni } },
      { kind: 'data', bytes: inner },
    ]);
  const inject = (f: Uint8Array): void => {
    A.under.transmit(batchOf(net, f));
  };
  inject(outer(A.ip, B.ip, 4242));
  inject(outer('192.168.1.99', B.ip, L2_VNI));
  inject(outer(A.ip, '192.168.1.200', L2_VNI));
  const vx = B.br.port('vx');
  assert.equal(drops(vx, DropReason.UnknownVni), 1);
  assert.equal(drops(vx, DropReason.UnknownVtep), 1);
  assert.equal(drops(vx, DropReason.TunnelNotForUs), 1);
  assert.equal(B.host.ep.count, 0);
  inject(outer(A.ip, B.ip, L2_VNI));
  assert.equal(B.host.ep.count, 1, 'the well-formed one is delivered');
  assertBooks(A.br);
  assertBooks(B.br);
  B.host.ep.take();
  assertPoolFull(net.pool);
});

test('random bytes into a tunnel port are dropped with a reason and never throw', () => {
  fc.assert(
    fc.property(fc.constantFrom('l2', 'routed'), fc.array(fc.uint8Array({ maxLength: 120 }), { minLength: 1, maxLength: 20 }), (mode, frames) => {
      const net = newNet();
      const br = newBridge(net, 'n');
      br.addGateway({ name: 'gw0', mac: 0x02aa00000001, ipv4: '10.244.1.1/24' });
      const host = addHost(br, net, 'h', hostMac(1));
      const [t, u] = tapPair('t', 'u', 0x0e0000000001, 0x0e0000000002);
      br.addTunnel('vx', t, { kind: 'geneve', mode, localIp: '192.168.0.1' });
      br.addVtep('vx', { ip: '192.168.0.2', mac: u.mac, ...(mode === 'l2' ? { vnis: [1] } : {}) });
      if (mode === 'l2') br.mapVni('vx', 1, 0);
      u.transmit(batchOf(net, ...frames));
      const vx = br.port('vx');
      assert.equal(vx.counters.rxPackets, frames.length);
      assert.equal(vx.counters.dropped, frames.length, 'random bytes never decapsulate');
      assert.equal(host.ep.count, 0);
      assertBooks(br);
      assertPoolFull(net.pool);
    }),
    { numRuns: 200 },
  );
});

test('no frame is ever delivered to a port of another VNI: random VLAN configs on two bridges joined by an l2 tunnel', () => {
  // node1 maps VNI 100 → segment 1, 200 → 2, 300 → 3; node2 maps them to 2, 3, 1. Segments 0 and 10 stay local.
  const MAP: Array<Record<number, number>> = [
    { 1: 100, 2: 200, 3: 300 },
    { 2: 100, 3: 200, 1: 300 },
  ];
  const label = (node: number, segment: number): string => {
    const vni = MAP[node]![segment];
    return vni !== undefined ? `vni ${vni}` : `node${node + 1} segment ${segment}`;
  };
  fc.assert(
    fc.property(
      fc.array(vlanConfigArb, { minLength: 1, maxLength: 4 }),
      fc.array(vlanConfigArb, { minLength: 1, maxLength: 4 }),
      fc.array(
        fc.record(
          { from: fc.nat(), src: fc.nat({ max: 7 }), dst: fc.nat({ max: 9 }), tag: fc.option(fc.constantFrom(0, 1, 2, 3, 10), { nil: null }) },
          { noNullPrototype: true },
        ),
        { minLength: 1, maxLength: 40 },
      ),
      (cfg1, cfg2, sends) => {
        const net = newNet();
        const [t1, t2] = tapPair('t1', 't2', 0x0e0000000001, 0x0e0000000002);
        const bridges = [newBridge(net, 'node1'), newBridge(net, 'node2')];
        const unders = [t1, t2];
        bridges.forEach((br, i) => {
          br.addTunnel('vx', unders[i]!, { kind: 'vxlan', mode: 'l2', localIp: `192.168.0.${i + 1}` });
          br.addVtep('vx', { ip: `192.168.0.${2 - i}`, mac: unders[1 - i]!.mac, vnis: [100, 200, 300] });
          for (const [seg, vni] of Object.entries(MAP[i]!)) br.mapVni('vx', vni, Number(seg));
        });
        const hosts: Array<Host & { node: number }> = [];
        [cfg1, cfg2].forEach((cfgs, node) =>
          cfgs.forEach((cfg: VlanConfig, k) =>
            hosts.push({ ...addHost(bridges[node]!, net, `n${node + 1}h${k}`, hostMac(0x100 * (node + 1) + k), cfg), node }),
          ),
        );
        const srcs = Array.from({ length: 8 }, (_, i) => hostMac(0x5000 + i));
        const dsts = [...srcs, BROADCAST, 0x01005e000001];
        const labelOf = new Map<number, string | null>();
        sends.forEach((s, id) => {
          const h = hosts[s.from % hosts.length]!;
          const tags = s.tag === null ? [] : [{ vid: s.tag }];
          const seg = ingressSegment(h.cfg, tags);
          labelOf.set(id, seg === null ? null : label(h.node, seg));
          h.ep.send([frame({ src: srcs[s.src]!, dst: dsts[s.dst]!, tags, id })]);
        });
        for (const h of hosts) {
          for (const f of h.ep.take()) {
            const s = seen(f);
            const want = labelOf.get(s.id);
            assert.ok(want !== null && want !== undefined, `frame ${s.id} was refused at ingress, yet ${h.name} got it`);
            const seg = s.vlans.length === 0 ? untaggedVlan(h.cfg) : s.vlans[0]!.vid;
            assert.ok(carries(h.cfg, seg), `${h.name} got a frame of segment ${seg} it does not carry`);
            if (s.vlans.length > 0) assert.notEqual(seg, untaggedVlan(h.cfg), 'the untagged VLAN leaves untagged');
            assert.equal(label(h.node, seg), want, `frame ${s.id} of ${want} reached ${h.name} on ${label(h.node, seg)}`);
          }
        }
        for (const br of bridges) assertBooks(br);
        assertPoolFull(net.pool);
      },
    ),
    { numRuns: 150 },
  );
});

test('Geneve: a critical option the receiver does not know is dropped; listed in knownOptions it passes', () => {
  const critical: GeneveOption[] = [{ class: 0x0104, type: 0x81, data: new Uint8Array(4) }];
  for (const known of [false, true]) {
    const net = newNet();
    const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!);
    const [b1, b2] = [1, 2].map((i) => {
      const br = newBridge(net, `n${i}`);
      br.addTunnel('gv', i === 1 ? u1 : u2, {
        kind: 'geneve',
        mode: 'l2',
        localIp: `192.168.0.${i}`,
        ...(i === 1 ? { options: critical } : known ? { knownOptions: [{ class: 0x0104, type: 0x81 }] } : {}),
      });
      br.addVtep('gv', { ip: `192.168.0.${3 - i}`, mac: UNDER_MAC[3 - i]!, vnis: [9] });
      br.mapVni('gv', 9, 0);
      return br;
    }) as [Bridge, Bridge];
    const h1 = addHost(b1, net, 'h1', hostMac(1));
    const h2 = addHost(b2, net, 'h2', hostMac(2));
    h1.ep.send([frame({ src: h1.mac, dst: BROADCAST })]);
    assert.equal(only(layers(u1.sent[0]!)[3], 'geneve').repr.critical, true, 'the C bit is set');
    assert.equal(h2.ep.count, known ? 1 : 0);
    assert.equal(drops(b2.port('gv'), DropReason.GeneveUnknownCriticalOption), known ? 0 : 1);
    assertBooks(b1);
    assertBooks(b2);
    h2.ep.take();
    assertPoolFull(net.pool);
  }
});

test('outer checks on decapsulation: bad UDP checksum, zero UDP checksum over IPv6, fragments', () => {
  // A genuine outer frame over IPv6, captured from node1, then damaged in several ways.
  for (const acceptZero of [false, true]) {
    const net = newNet();
    const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!);
    const [b1, b2] = [1, 2].map((i) => {
      const br = newBridge(net, `n${i}`);
      br.addTunnel('vx', i === 1 ? u1 : u2, { kind: 'vxlan', mode: 'l2', localIp: `fd00:ff::${i}`, ...(acceptZero ? { acceptZeroChecksumV6: true } : {}) });
      br.addVtep('vx', { ip: `fd00:ff::${3 - i}`, mac: UNDER_MAC[3 - i]!, vnis: [9] });
      br.mapVni('vx', 9, 0);
      return br;
    }) as [Bridge, Bridge];
    const h1 = addHost(b1, net, 'h1', hostMac(1));
    const h2 = addHost(b2, net, 'h2', hostMac(2));
    h1.ep.send([frame({ src: h1.mac, dst: BROADCAST, id: 1 })]);
    assert.equal(h2.ep.take().length, 1);
    const good = u1.sent[0]!;
    const udpAt = 14 + 40;
    const badSum = good.slice();
    badSum[badSum.length - 1] = badSum[badSum.length - 1]! ^ 0x01; // last inner byte
    const zeroSum = good.slice();
    zeroSum[udpAt + 6] = 0;
    zeroSum[udpAt + 7] = 0;
    const vx = b2.port('vx');
    u1.transmit(batchOf(net, badSum, zeroSum));
    assert.equal(drops(vx, DropReason.UdpBadChecksum), 1);
    assert.equal(drops(vx, DropReason.UdpZeroChecksumV6), acceptZero ? 0 : 1);
    assert.equal(h2.ep.take().length, acceptZero ? 1 : 0, 'a zero checksum is accepted only when configured (RFC 6935)');
    assertBooks(b2);
    assertPoolFull(net.pool);
  }
  // Over IPv4: an outer fragment whose datagram never completes is held, then discarded at the timeout.
  const { net, nodes } = fabric(2);
  const [A, B] = nodes as [L2Node, L2Node];
  // 8 + 8 + 64 bytes of IP payload: a first fragment carries a multiple of 8.
  const inner = frame({ src: hostMac(0x31), dst: BROADCAST, pad: 46 });
  const frag = compose([
    eth(0x0800, [], 0x0e0100000000, 0x0e0100000001),
    ip4(A.ip, B.ip, 17, { dontFrag: false, moreFrags: true }),
    udp(50000, 4789, true),
    { kind: 'vxlan', repr: { vni: L2_VNI } },
    { kind: 'data', bytes: inner },
  ]);
  A.under.transmit(batchOf(net, frag));
  assert.equal(B.br.heldFragments, 1);
  assert.equal(B.host.ep.count, 0);
  assertBooks(B.br);
  net.clock.t += 30e9;
  B.br.tick();
  assert.equal(B.br.heldFragments, 0);
  assert.equal(drops(B.br.port('vx'), DropReason.FragTimeout), 1);
  assertBooks(B.br);
  assertPoolFull(net.pool);
});

test('tunnel MTU: 1450-byte inner packets fit a 1500 underlay whole; one byte more is fragmented outside (no DF) and reassembled', () => {
  const { net, n1, n2 } = routed('vxlan', 4);
  const big = (n: number): Uint8Array =>
    compose([
      eth(0x0800, [], POD[1]!, GW[1]!),
      ip4('10.244.1.5', '10.244.2.5', 17, { dontFrag: false }),
      udp(1, 2),
      { kind: 'data', bytes: new Uint8Array(n) },
    ]);
  // VXLAN over IPv4 adds 50 bytes with the inner Ethernet header: 1450-byte inner IP packets fit in 1500.
  n1.pod.ep.send([big(1450 - 28), big(1451 - 28)]);
  assert.equal(n2.pod.ep.count, 2);
  assert.equal(n1.under.sent.length, 3, 'one whole outer packet, then two fragments');
  assert.equal(only(layers(n1.under.sent[0]!)[1], 'ipv4').repr.payloadLen + 20, 1500);
  assert.equal(n2.br.tunnel('tun0').mtuStats.reassembled, 1);
  assertBooks(n1.br);
  assertBooks(n2.br);
  n2.pod.ep.take();
  assertPoolFull(net.pool);
});

test('routed, with the gateway on VLAN 7 and the destination pod behind a trunk: delivered tagged 7', () => {
  const net = newNet();
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!);
  const nodes = [1, 2].map((i) => {
    const br = newBridge(net, `node${i}`);
    br.addGateway({ name: 'gw0', mac: GW[i]!, ipv4: `10.244.${i}.1/24`, vlan: 7 });
    br.addTunnel('tun0', i === 1 ? u1 : u2, { kind: 'vxlan', mode: 'routed', localIp: `192.168.0.${i}` });
    br.addVtep('tun0', { ip: `192.168.0.${3 - i}`, mac: UNDER_MAC[3 - i]! });
    br.addRoute(`10.244.${3 - i}.0/24`, { tunnel: 'tun0', vtep: `192.168.0.${3 - i}` });
    br.addNeighbor(`10.244.${i}.5`, POD[i]!);
    return { br, pod: addHost(br, net, `pod${i}`, POD[i]!, i === 1 ? { vlan: 7 } : { trunk: [7] }) };
  });
  const [n1, n2] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
  n1.pod.ep.send([podPacket(4)]);
  const got = n2.pod.ep.take();
  assert.equal(got.length, 1);
  const [e, ip] = layers(got[0]!);
  assert.deepEqual(only(e, 'eth').repr.vlans, [{ tpid: 0x8100, pcp: 0, dei: false, vid: 7 }]);
  assert.equal(only(ip, 'ipv4').repr.ttl, 62);
  assertBooks(n1.br);
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});
