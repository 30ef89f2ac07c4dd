/**
 * The node gateway on one bridge: ARP and Neighbor Discovery for its addresses, ICMP echo, local routing
 * with neighbour resolution (rate-limited solicitations), the drops with their reasons, and its books.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Bridge } from '../../src/datapath/bridge.js';
import { ipv4FromString, ipv6FromString } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose, dissect, type Dissected } from '../../src/wire/stack.js';
import { eth, ip4, ip6, udp, data } from '../peers/catalogue.js';
import { addHost, assertBooks, assertPoolFull, BROADCAST, hostMac, newBridge, newNet, type Host, type Net } from './topology.js';

export const GW_MAC = 0x02aa00000001;
const POD1 = hostMac(0x15);
const POD2 = hostMac(0x17);
const POD3 = hostMac(0x19);
const v4 = (s: string): number => ipv4FromString(s)!;
const v6 = (s: string): Uint8Array => ipv6FromString(s)!;

interface GwNode {
  net: Net;
  br: Bridge;
  pods: [Host, Host, Host];
}

/**
 * A bridge whose gateway holds 10.244.1.1/24 and fd00:1::1/64, and three pods. The gateway is added first
 * (port 0, as a CNI agent does) unless `gatewayLast`.
 */
function node(opts: { vlan?: number; podCfg?: { trunk: number[] }; gatewayLast?: boolean } = {}): GwNode {
  const net = newNet();
  const br = newBridge(net, 'node1');
  const addGw = (): void => {
    br.addGateway({ name: 'gw0', mac: GW_MAC, ipv4: '10.244.1.1/24', ipv6: 'fd00:1::1/64', ...(opts.vlan !== undefined ? { vlan: opts.vlan } : {}) });
  };
  if (opts.gatewayLast !== true) addGw();
  const cfg = opts.podCfg ?? (opts.vlan !== undefined ? { vlan: opts.vlan } : {});
  const pods = [POD1, POD2, POD3].map((m, i) => addHost(br, net, `pod${i + 1}`, m, cfg)) as [Host, Host, Host];
  if (opts.gatewayLast === true) addGw();
  return { net, br, pods };
}

function layers(f: Uint8Array): Dissected[] {
  const d = dissect(f);
  assert.equal(d.drop, null, `frame dissects without error (stopped with ${d.drop === null ? '' : DropReason[d.drop]})`);
  return d.layers;
}

function only<K extends Dissected['kind']>(l: Dissected | undefined, kind: K): Extract<Dissected, { kind: K }> {
  assert.ok(l !== undefined && l.kind === kind, `expected a ${kind} layer, got ${l?.kind}`);
  return l as Extract<Dissected, { kind: K }>;
}

function arpRequest(srcMac: number, senderIp: string, targetIp: string, senderMac = srcMac): Uint8Array {
  return compose([
    eth(0x0806, [], srcMac, BROADCAST),
    { kind: 'arp', repr: { operation: 1, senderMac, senderIp: v4(senderIp), targetMac: 0, targetIp: v4(targetIp) } },
  ]);
}

function echo4(srcMac: number, src: string, dst: string, opts: { dstMac?: number; ttl?: number } = {}): Uint8Array {
  return compose([
    eth(0x0800, [], srcMac, opts.dstMac ?? GW_MAC),
    ip4(src, dst, 1, { ttl: opts.ttl ?? 64 }),
    { kind: 'icmpv4', repr: { kind: 'echoRequest', ident: 0x4242, seq: 7, data: new Uint8Array(24).map((_, i) => i) } },
  ]);
}

function udp4(srcMac: number, src: string, dst: string, opts: { dstMac?: number; ttl?: number } = {}): Uint8Array {
  return compose([eth(0x0800, [], srcMac, opts.dstMac ?? GW_MAC), ip4(src, dst, 17, { ttl: opts.ttl ?? 64 }), udp(40000, 53), data('seine gateway test')]);
}

function udp6(srcMac: number, src: string, dst: string, opts: { dstMac?: number; hop?: number } = {}): Uint8Array {
  return compose([
    eth(0x86dd, [], srcMac, opts.dstMac ?? GW_MAC),
    ip6(src, dst, 17, { hopLimit: opts.hop ?? 64 }),
    udp(40000, 53),
    data('seine gateway test v6'),
  ]);
}

function echo6(srcMac: number, src: string, dst: string): Uint8Array {
  return compose([
    eth(0x86dd, [], srcMac, GW_MAC),
    ip6(src, dst, 58),
    { kind: 'icmpv6', repr: { kind: 'echoRequest', ident: 0x99, seq: 3, data: new Uint8Array(13).fill(0x5a) } },
  ]);
}

/** A Neighbor Solicitation; `src` '::' makes it a DAD probe (no source link-layer address option). */
function ns(srcMac: number, src: string, target: string): Uint8Array {
  const t = v6(target);
  const snm = `ff02::1:ff${t[13]!.toString(16).padStart(2, '0')}:${((t[14]! << 8) | t[15]!).toString(16)}`;
  const dstMac = 0x3333ff000000 + (t[13]! << 16) + (t[14]! << 8) + t[15]!;
  return compose([
    eth(0x86dd, [], srcMac, dstMac),
    ip6(src, snm, 58, { hopLimit: 255 }),
    { kind: 'icmpv6', repr: { kind: 'neighborSolicit', target: t, sourceLinkAddr: src === '::' ? null : srcMac } },
  ]);
}

function na(srcMac: number, src: string, dstMac: number, dst: string): Uint8Array {
  return compose([
    eth(0x86dd, [], srcMac, dstMac),
    ip6(src, dst, 58, { hopLimit: 255 }),
    { kind: 'icmpv6', repr: { kind: 'neighborAdvert', router: false, solicited: true, override: true, target: v6(src), targetLinkAddr: srcMac } },
  ]);
}

test('ARP request for the gateway address gets a correct reply, every field checked', () => {
  const {
    net,
    br,
    pods: [p1, p2],
  } = node();
  p1.ep.send([arpRequest(POD1, '10.244.1.5', '10.244.1.1')]);
  const got = p1.ep.take();
  assert.equal(got.length, 1);
  const [e, a] = layers(got[0]!);
  assert.deepEqual(only(e, 'eth').repr, { dst: POD1, src: GW_MAC, vlans: [], etherType: 0x0806 });
  assert.deepEqual(only(a, 'arp').repr, { operation: 2, senderMac: GW_MAC, senderIp: v4('10.244.1.1'), targetMac: POD1, targetIp: v4('10.244.1.5') });
  assert.equal(p2.ep.take().length, 1, 'the request itself is a broadcast: the other pods see it');
  // A request for another address is not answered (and not an error).
  p1.ep.send([arpRequest(POD1, '10.244.1.5', '10.244.1.9')]);
  assert.equal(p1.ep.take().length, 0);
  assert.equal(br.gateway!.consumed, 1);
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('ARP on a gateway VLAN reached through a trunk: the reply goes back tagged', () => {
  const {
    net,
    br,
    pods: [p1],
  } = node({ vlan: 7, podCfg: { trunk: [7] } });
  const req = compose([
    eth(0x0806, [{ tpid: 0x8100, pcp: 0, dei: false, vid: 7 }], POD1, BROADCAST),
    { kind: 'arp', repr: { operation: 1, senderMac: POD1, senderIp: v4('10.244.1.5'), targetMac: 0, targetIp: v4('10.244.1.1') } },
  ]);
  p1.ep.send([req]);
  const got = p1.ep.take();
  assert.equal(got.length, 1);
  const [e, a] = layers(got[0]!);
  assert.deepEqual(only(e, 'eth').repr, { dst: POD1, src: GW_MAC, vlans: [{ tpid: 0x8100, pcp: 0, dei: false, vid: 7 }], etherType: 0x0806 });
  assert.equal(only(a, 'arp').repr.operation, 2);
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('Neighbor Solicitation for the gateway IPv6 address gets a valid advertisement (S, O, target link-layer address)', () => {
  const {
    net,
    br,
    pods: [p1, p2],
  } = node();
  p1.ep.send([ns(POD1, 'fd00:1::5', 'fd00:1::1')]);
  const got = p1.ep.take();
  assert.equal(got.length, 1);
  const [e, ip, icmp] = layers(got[0]!);
  assert.deepEqual(only(e, 'eth').repr, { dst: POD1, src: GW_MAC, vlans: [], etherType: 0x86dd });
  const i6 = only(ip, 'ipv6').repr;
  assert.deepEqual([i6.src, i6.dst, i6.hopLimit, i6.nextHeader, i6.payloadLen], [v6('fd00:1::1'), v6('fd00:1::5'), 255, 58, 32]);
  const m = only(icmp, 'icmpv6');
  assert.equal(m.checksumOk, true, 'ICMPv6 checksum');
  assert.deepEqual(m.repr, { kind: 'neighborAdvert', router: false, solicited: true, override: true, target: v6('fd00:1::1'), targetLinkAddr: GW_MAC });
  assert.equal(p2.ep.take().length, 1, 'the solicitation went to the other pods too (multicast)');
  // The solicitor's address was learned from its source link-layer option: traffic to it routes at once.
  p2.ep.send([udp6(POD2, 'fd00:1::7', 'fd00:1::5')]);
  const routed = p1.ep.take();
  assert.equal(routed.length, 1);
  assert.equal(only(layers(routed[0]!)[1], 'ipv6').repr.hopLimit, 63);
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('ICMP echo to the gateway is answered, IPv4 and IPv6, with valid checksums', () => {
  const {
    net,
    br,
    pods: [p1],
  } = node();
  br.addNeighbor('10.244.1.5', POD1);
  br.addNeighbor('fd00:1::5', POD1);
  p1.ep.send([echo4(POD1, '10.244.1.5', '10.244.1.1'), echo6(POD1, 'fd00:1::5', 'fd00:1::1')]);
  const [r4, r6] = p1.ep.take();
  assert.ok(r4 !== undefined && r6 !== undefined);
  {
    const [e, ip, icmp] = layers(r4);
    assert.deepEqual(only(e, 'eth').repr, { dst: POD1, src: GW_MAC, vlans: [], etherType: 0x0800 });
    const i = only(ip, 'ipv4');
    assert.equal(i.checksumOk, true, 'IPv4 header checksum');
    assert.deepEqual([i.repr.src, i.repr.dst, i.repr.ttl, i.repr.protocol], [v4('10.244.1.1'), v4('10.244.1.5'), 64, 1]);
    const m = only(icmp, 'icmpv4');
    assert.equal(m.checksumOk, true, 'ICMP checksum');
    assert.deepEqual(m.repr, { kind: 'echoReply', ident: 0x4242, seq: 7, data: new Uint8Array(24).map((_, i) => i) });
  }
  {
    const [e, ip, icmp] = layers(r6);
    assert.deepEqual(only(e, 'eth').repr, { dst: POD1, src: GW_MAC, vlans: [], etherType: 0x86dd });
    const i = only(ip, 'ipv6').repr;
    assert.deepEqual([i.src, i.dst, i.hopLimit], [v6('fd00:1::1'), v6('fd00:1::5'), 64]);
    const m = only(icmp, 'icmpv6');
    assert.equal(m.checksumOk, true, 'ICMPv6 checksum');
    assert.deepEqual(m.repr, { kind: 'echoReply', ident: 0x99, seq: 3, data: new Uint8Array(13).fill(0x5a) });
  }
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('routing between pods through the gateway MAC: TTL − 1, MACs rewritten, checksums valid', () => {
  const {
    net,
    br,
    pods: [p1, p2, p3],
  } = node();
  br.addNeighbor('10.244.1.7', POD2);
  br.addNeighbor('fd00:1::7', POD2);
  for (const p of [p2, p3]) p.ep.send([compose([eth(0x88b5, [], p.mac, BROADCAST), data('hello, I am here: learn my address')])]);
  for (const p of [p1, p2, p3]) p.ep.take();
  p1.ep.send([udp4(POD1, '10.244.1.5', '10.244.1.7'), udp6(POD1, 'fd00:1::5', 'fd00:1::7')]);
  const [a, b] = p2.ep.take();
  assert.ok(a !== undefined && b !== undefined);
  const [e4, i4, u4, d4] = layers(a);
  assert.deepEqual(only(e4, 'eth').repr, { dst: POD2, src: GW_MAC, vlans: [], etherType: 0x0800 });
  assert.equal(only(i4, 'ipv4').repr.ttl, 63);
  assert.equal(only(i4, 'ipv4').checksumOk, true);
  assert.equal(only(u4, 'udp').checksumOk, true);
  assert.deepEqual(only(d4, 'data').bytes, new TextEncoder().encode('seine gateway test'));
  const [e6, i6, u6] = layers(b);
  assert.equal(only(e6, 'eth').repr.src, GW_MAC);
  assert.equal(only(i6, 'ipv6').repr.hopLimit, 63);
  assert.equal(only(u6, 'udp').checksumOk, true);
  assert.equal(p3.ep.take().length, 0, 'nobody else');
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('gateway drops: unknown destination → NoRoute, TTL 1 → TtlExceeded, other traffic to its address → GatewayNotHandled', () => {
  const {
    net,
    br,
    pods: [p1, p2],
  } = node();
  br.addNeighbor('10.244.1.7', POD2);
  const gw = br.gateway!;
  const d = (r: DropReason): number => gw.counters.drops[r]!;
  p1.ep.send([udp4(POD1, '10.244.1.5', '10.99.0.1'), udp6(POD1, 'fd00:1::5', 'fd00:99::1')]);
  assert.equal(d(DropReason.NoRoute), 2);
  p1.ep.send([
    udp4(POD1, '10.244.1.5', '10.244.1.7', { ttl: 1 }),
    udp4(POD1, '10.244.1.5', '10.244.1.7', { ttl: 0 }),
    udp6(POD1, 'fd00:1::5', 'fd00:1::7', { hop: 1 }),
  ]);
  assert.equal(d(DropReason.TtlExceeded), 3);
  p1.ep.send([udp4(POD1, '10.244.1.5', '10.244.1.1'), compose([eth(0x88b5, [], POD1, GW_MAC), data('not ip at all, padded to the minimum frame')])]);
  assert.equal(d(DropReason.GatewayNotHandled), 2);
  const bad = udp4(POD1, '10.244.1.5', '10.244.1.7');
  bad[14 + 10] = bad[14 + 10]! ^ 0xff; // IPv4 header checksum
  p1.ep.send([bad]);
  assert.equal(d(DropReason.Ipv4BadChecksum), 1);
  assert.equal(p2.ep.count, 0, 'nothing was routed');
  assert.equal(gw.counters.dropped, 8);
  assertBooks(br);
  assertPoolFull(net.pool);
});

test("gateway with the node's own stack behind it: traffic to its address other than echo is switched there, TTL kept; echo is still answered", () => {
  const {
    net,
    br,
    pods: [p1, p2, host],
  } = node();
  const gw = br.gateway!;
  gw.hostMac = POD3;
  br.addStaticMac(0, POD3, host.port); // the CNI agent knows where the stack is
  br.addNeighbor('10.244.1.5', POD1);
  p1.ep.send([udp4(POD1, '10.244.1.5', '10.244.1.1'), udp6(POD1, 'fd00:1::5', 'fd00:1::1')]);
  const got = host.ep.take();
  assert.equal(got.length, 2, 'both reached the stack');
  const l4 = layers(got[0]!),
    l6 = layers(got[1]!);
  assert.equal(only(l4[0], 'eth').repr.dst, POD3);
  assert.equal(only(l4[0], 'eth').repr.src, GW_MAC);
  assert.equal(only(l4[1], 'ipv4').repr.ttl, 64, 'delivered to the node, not routed');
  assert.equal(only(l6[1], 'ipv6').repr.hopLimit, 64);
  assert.equal(gw.counters.drops[DropReason.GatewayNotHandled], 0);
  const [hostBefore, p1Before] = [host.ep.count, p1.ep.count];
  p1.ep.send([echo4(POD1, '10.244.1.5', '10.244.1.1')]);
  assert.equal(host.ep.count, hostBefore, "echo requests are the gateway's");
  assert.equal(p1.ep.count, p1Before + 1, 'and answered');
  assert.equal(p2.ep.count, 0);
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('unresolved neighbour: NeighborUnresolved, one ARP request flooded per second at most, then routing once the pod answers', () => {
  const {
    net,
    br,
    pods: [p1, p2, p3],
  } = node();
  const gw = br.gateway!;
  const pkt = udp4(POD1, '10.244.1.5', '10.244.1.7');
  net.clock.t = 5e9;
  p1.ep.send([pkt]);
  assert.equal(gw.counters.drops[DropReason.NeighborUnresolved], 1);
  for (const p of [p1, p2, p3]) {
    const got = p.ep.take();
    assert.equal(got.length, 1, `${p.name} gets the ARP request`);
    const [e, a] = layers(got[0]!);
    assert.deepEqual(only(e, 'eth').repr, { dst: BROADCAST, src: GW_MAC, vlans: [], etherType: 0x0806 });
    assert.deepEqual(only(a, 'arp').repr, { operation: 1, senderMac: GW_MAC, senderIp: v4('10.244.1.1'), targetMac: 0, targetIp: v4('10.244.1.7') });
  }
  assert.equal(gw.generated, 1);
  // Within the second: dropped again, no new request.
  net.clock.t = 5e9 + 999_999_999;
  p1.ep.send([pkt, pkt]);
  assert.equal(gw.counters.drops[DropReason.NeighborUnresolved], 3);
  assert.equal(p2.ep.take().length, 0, 'rate-limited');
  assertBooks(br);
  // A second later: another request.
  net.clock.t = 6e9;
  p1.ep.send([pkt]);
  assert.equal(p2.ep.take().length, 1, 'solicited again after a second');
  assert.equal(gw.generated, 2);
  // pod2 answers; the next packet is routed to it.
  p2.ep.send([
    compose([
      eth(0x0806, [], POD2, GW_MAC),
      { kind: 'arp', repr: { operation: 2, senderMac: POD2, senderIp: v4('10.244.1.7'), targetMac: GW_MAC, targetIp: v4('10.244.1.1') } },
    ]),
  ]);
  p1.ep.send([pkt]);
  const routed = p2.ep.take();
  assert.equal(routed.length, 1);
  assert.equal(only(layers(routed[0]!)[1], 'ipv4').repr.ttl, 63);
  for (const p of [p1, p3]) p.ep.take();
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('unresolved IPv6 neighbour: a Neighbor Solicitation to the solicited-node address, rate-limited, then routing', () => {
  const {
    net,
    br,
    pods: [p1, p2],
  } = node();
  const gw = br.gateway!;
  const pkt = udp6(POD1, 'fd00:1::5', 'fd00:1::7');
  p1.ep.send([pkt, pkt]);
  assert.equal(gw.counters.drops[DropReason.NeighborUnresolved], 2);
  const got = p2.ep.take();
  assert.equal(got.length, 1, 'one solicitation for two packets');
  const [e, ip, icmp] = layers(got[0]!);
  assert.deepEqual(only(e, 'eth').repr, { dst: 0x3333ff000007, src: GW_MAC, vlans: [], etherType: 0x86dd });
  const i = only(ip, 'ipv6').repr;
  assert.deepEqual([i.src, i.dst, i.hopLimit], [v6('fd00:1::1'), v6('ff02::1:ff00:7'), 255]);
  const m = only(icmp, 'icmpv6');
  assert.equal(m.checksumOk, true);
  assert.deepEqual(m.repr, { kind: 'neighborSolicit', target: v6('fd00:1::7'), sourceLinkAddr: GW_MAC });
  p2.ep.send([na(POD2, 'fd00:1::7', GW_MAC, 'fd00:1::1')]);
  p1.ep.send([pkt]);
  const routed = p2.ep.take();
  assert.equal(routed.length, 1);
  assert.equal(only(layers(routed[0]!)[1], 'ipv6').repr.hopLimit, 63);
  p1.ep.take();
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('duplicate address detection for the gateway address: NA to all-nodes, O set, S clear; the flood that carried the probe is intact', () => {
  const {
    net,
    br,
    pods: [p1, p2, p3],
  } = node();
  p1.ep.send([ns(POD1, '::', 'fd00:1::1')]);
  const kinds = (p: Host): string[] =>
    p.ep.take().map((f) => {
      const m = layers(f)[2];
      return m?.kind === 'icmpv6' ? m.repr.kind : '?';
    });
  // p1 gets the NA; p2 and p3 get the probe and the NA, once each.
  assert.deepEqual(kinds(p1), ['neighborAdvert']);
  assert.deepEqual(kinds(p2).sort(), ['neighborAdvert', 'neighborSolicit']);
  assert.deepEqual(kinds(p3).sort(), ['neighborAdvert', 'neighborSolicit']);
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('DAD advertisement contents (single other pod, where the flood is not disturbed)', () => {
  const net = newNet();
  const br = newBridge(net, 'node1');
  br.addGateway({ name: 'gw0', mac: GW_MAC, ipv4: '10.244.1.1/24', ipv6: 'fd00:1::1/64' });
  const p1 = addHost(br, net, 'pod1', POD1);
  p1.ep.send([ns(POD1, '::', 'fd00:1::1')]);
  const got = p1.ep.take();
  assert.equal(got.length, 1);
  const [e, ip, icmp] = layers(got[0]!);
  assert.deepEqual(only(e, 'eth').repr, { dst: 0x333300000001, src: GW_MAC, vlans: [], etherType: 0x86dd });
  const i = only(ip, 'ipv6').repr;
  assert.deepEqual([i.src, i.dst, i.hopLimit, i.payloadLen], [v6('fd00:1::1'), v6('ff02::1'), 255, 32]);
  const m = only(icmp, 'icmpv6');
  assert.equal(m.checksumOk, true);
  assert.deepEqual(m.repr, { kind: 'neighborAdvert', router: false, solicited: false, override: true, target: v6('fd00:1::1'), targetLinkAddr: GW_MAC });
  assertBooks(br);
  assertPoolFull(net.pool);
});

test("an ARP request whose sender address differs from the Ethernet source: the reply floods without disturbing the request's flood", () => {
  const {
    net,
    br,
    pods: [p1, p2, p3],
  } = node();
  const proxied = hostMac(0x55);
  p1.ep.send([arpRequest(POD1, '10.244.1.5', '10.244.1.1', proxied)]);
  const arps = (p: Host): number[] => p.ep.take().map((f) => only(layers(f)[1], 'arp').repr.operation);
  // The reply is addressed to an unknown MAC, so it floods: every pod but none twice.
  assert.deepEqual(arps(p1), [2]);
  assert.deepEqual(arps(p2).sort(), [1, 2]);
  assert.deepEqual(arps(p3).sort(), [1, 2]);
  assert.equal(p3.port.counters.drops[DropReason.PoolExhausted], 0);
  assertBooks(br);
  assertPoolFull(net.pool);
});

// ---- the gateway's books under random traffic ----

function gatewayTrafficArb(): fc.Arbitrary<Uint8Array> {
  const pod = fc.constantFrom(
    { mac: POD1, ip: '10.244.1.5', ip6: 'fd00:1::5' },
    { mac: POD2, ip: '10.244.1.7', ip6: 'fd00:1::7' },
    { mac: POD3, ip: '10.244.1.9', ip6: 'fd00:1::9' },
  );
  const dst4 = fc.constantFrom('10.244.1.1', '10.244.1.5', '10.244.1.7', '10.244.1.9', '10.244.1.200', '10.99.0.1');
  const dst6 = fc.constantFrom('fd00:1::1', 'fd00:1::5', 'fd00:1::7', 'fd00:1::9', 'fd00:1::200', 'fd00:99::1');
  const valid = fc.oneof(
    fc.tuple(pod, dst4).map(([p, d]) => arpRequest(p.mac, p.ip, d)),
    fc.tuple(pod, dst4, fc.constantFrom(0, 1, 2, 64)).map(([p, d, ttl]) => udp4(p.mac, p.ip, d, { ttl })),
    fc.tuple(pod, dst4).map(([p, d]) => echo4(p.mac, p.ip, d)),
    fc.tuple(pod, dst6, fc.constantFrom(1, 64)).map(([p, d, hop]) => udp6(p.mac, p.ip6, d, { hop })),
    fc.tuple(pod, dst6).map(([p, d]) => echo6(p.mac, p.ip6, d)),
    fc.tuple(pod, dst6).map(([p, d]) => ns(p.mac, p.ip6, d)),
    pod.map((p) => na(p.mac, p.ip6, GW_MAC, 'fd00:1::1')),
    pod.map((p) =>
      compose([
        eth(0x0806, [], p.mac, GW_MAC),
        { kind: 'arp', repr: { operation: 2, senderMac: p.mac, senderIp: v4(p.ip), targetMac: GW_MAC, targetIp: v4('10.244.1.1') } },
      ]),
    ),
  );
  // Damaged copies: truncated at a random length, or with random bytes overwritten.
  const damaged = fc
    .tuple(valid, fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.boolean())
    .map(([f, cut, flips, truncate]) => {
      const g = truncate ? f.slice(0, 14 + (cut % Math.max(1, f.length - 14))) : f.slice();
      if (!truncate) for (const [at, v] of flips) g[14 + (at % Math.max(1, g.length - 14))] = v;
      return g;
    });
  return fc.oneof({ weight: 3, arbitrary: valid }, { weight: 2, arbitrary: damaged });
}

function gatewayBooksProperty(gatewayLast: boolean): void {
  fc.assert(
    fc.property(
      fc.array(
        fc.record(
          { from: fc.nat({ max: 2 }), frames: fc.array(gatewayTrafficArb(), { minLength: 1, maxLength: 12 }), dt: fc.constantFrom(0, 1e8, 1e9) },
          { noNullPrototype: true },
        ),
        { minLength: 1, maxLength: 10 },
      ),
      fc.boolean(),
      (batches, neighbors) => {
        const { net, br, pods } = node({ gatewayLast });
        if (neighbors) {
          br.addNeighbor('10.244.1.7', POD2);
          br.addNeighbor('fd00:1::9', POD3);
        }
        for (const b of batches) {
          net.clock.t += b.dt;
          const p = pods[b.from]!;
          const rx = p.port.counters.rxPackets;
          p.ep.send(b.frames);
          assert.equal(p.port.counters.rxPackets - rx, b.frames.length);
          assertBooks(br);
        }
        for (const p of pods) p.ep.take();
        assertPoolFull(net.pool);
      },
    ),
    { numRuns: 250 },
  );
}

test("the gateway's books balance under random and damaged traffic: its tx = rx − generated + drops + consumed", () => {
  // The gateway is the last port here, so a reply it floods never starts inside another flood (see the next test).
  gatewayBooksProperty(true);
});

test('the same books with the gateway as port 0', () => {
  gatewayBooksProperty(false);
});

test('gateway configuration is validated', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  assert.throws(() => br.addGateway({ name: 'gw', mac: GW_MAC }), RangeError, 'needs an address');
  assert.throws(() => br.addGateway({ name: 'gw', mac: GW_MAC, ipv4: 'fd00::1/64' }), RangeError);
  assert.throws(() => br.addGateway({ name: 'gw', mac: GW_MAC, ipv4: '10.0.0.1' }), RangeError, 'prefix length required');
  assert.throws(() => br.addNeighbor('10.0.0.2', POD1), RangeError, 'neighbours need a gateway');
  br.addGateway({ name: 'gw', mac: GW_MAC, ipv4: '10.0.0.1/24' });
  assert.throws(() => br.addGateway({ name: 'gw2', mac: GW_MAC + 1, ipv4: '10.0.1.1/24' }), RangeError, 'one gateway per bridge');
  assert.throws(() => br.addRoute('10.1.0.0/16', { tunnel: 'nope', vtep: '192.168.0.2' }), RangeError);
});

test('the gateway belongs to its VLAN only: pods of another VLAN neither reach it nor get its replies', () => {
  const {
    net,
    br,
    pods: [p1],
  } = node({ vlan: 7 });
  const stranger = addHost(br, net, 'stranger', hostMac(0x99), { vlan: 0 });
  const bystander = addHost(br, net, 'bystander', hostMac(0x98), { vlan: 0 });
  const gwPort = br.port('gw0');
  stranger.ep.send([arpRequest(stranger.mac, '10.244.1.50', '10.244.1.1'), udp4(stranger.mac, '10.244.1.50', '10.244.1.5')]);
  assert.equal(gwPort.counters.txPackets, 0, 'nothing of VLAN 0 reached the gateway');
  assert.equal(stranger.ep.count, 0);
  assert.equal(bystander.ep.take().length, 2, 'the frame to the gateway MAC flooded on VLAN 0 instead: the MAC is unknown there');
  p1.ep.send([arpRequest(POD1, '10.244.1.5', '10.244.1.1')]);
  assert.equal(p1.ep.take().length, 1, 'a pod of VLAN 7 gets its reply');
  assert.equal(stranger.ep.take().length + bystander.ep.take().length, 0, 'VLAN 0 saw nothing of it');
  assertBooks(br);
  assertPoolFull(net.pool);
});

test("the gateway's MAC entries are static: aging never removes them", () => {
  const {
    net,
    br,
    pods: [p1, p2],
  } = node();
  br.addNeighbor('10.244.1.7', POD2);
  p2.ep.send([compose([eth(0x88b5, [], POD2, BROADCAST), data('learn me, then forget me after five minutes')])]);
  net.clock.t = 3600e9;
  assert.equal(br.tick(), 1, "only pod2's learned entry ages out");
  assert.deepEqual(
    br.macs
      .entries()
      .filter((e) => e.isStatic)
      .map((e) => e.port),
    [0, 0],
  );
  p1.ep.send([udp4(POD1, '10.244.1.5', '10.244.1.7')]);
  assert.equal(p2.ep.take().filter((f) => f[12] === 0x08).length, 1, 'still routed an hour later');
  assertBooks(br);
});
