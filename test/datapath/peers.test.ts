/**
 * Peers coming and going without rebuilding a node (what a live agent does on a configuration reload):
 * `Bridge.removeVtep` and `Bridge.removeRoute` on routed and l2 tunnels and with ESP. A removed peer's
 * traffic is dropped with a reason in both directions, traffic to the other peers goes on untouched, and
 * adding the peer back works — with ESP, on the same SAs, sequence numbers going on.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint } from '../../src/datapath/device.js';
import { ClusterSecret } from '../../src/esp/keys.js';
import { PacketPool } from '../../src/packet/buf.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose } from '../../src/wire/stack.js';
import { data, eth, ip4, udp } from '../peers/catalogue.js';
import {
  addHost,
  assertBooks,
  assertPoolFull,
  BROADCAST,
  drops,
  frame,
  hostMac,
  introduceEsp,
  seen,
  newBridge,
  newNet,
  VirtualClock,
  type Host,
  type Net,
} from './topology.js';

const GW = (i: number): number => 0x02aa00000000 + i;
const UNDER_MAC = (i: number): number => 0x0e0100000000 + i;
const UNDER_IP = (i: number): string => `192.168.1.${i}`;
const POD_MAC = (i: number): number => hostMac(0x100 * i + 5);

interface Node {
  i: number;
  br: Bridge;
  pod: Host;
}

/**
 * `n` nodes on one underlay bridge, node i with podCIDR 10.244.i.0/24, a pod at .5, and (routed) a VTEP
 * and a route for every other node, or (l2) a VTEP for every other node on VNI 5000.
 */
function cluster(n: number, mode: 'routed' | 'l2', esp = false): { net: Net; nodes: Node[]; underlay: Bridge } {
  const net: Net = { pool: new PacketPool({ count: 512, frameCapacity: 2048 }), clock: new VirtualClock() };
  const underlay = newBridge(net, 'underlay');
  const secret = new ClusterSecret(new Uint8Array(32).map((_, i) => 9 + i));
  const nodes = Array.from({ length: n }, (_, k): Node => {
    const i = k + 1;
    const br = newBridge(net, `n${i}`);
    const up = new Endpoint(`up${i}`, net.pool, UNDER_MAC(i));
    const u = new Endpoint(`u${i}`, net.pool, 0);
    // Two endpoints wired back to back: what one is sent, the other delivers.
    up.onFrame = (p): void => {
      u.send([p.bytes().slice()]);
    };
    u.onFrame = (p): void => {
      up.send([p.bytes().slice()]);
    };
    up.keep = u.keep = false;
    underlay.addPort(`u${i}`, u);
    if (mode === 'routed') br.addGateway({ name: 'gw', mac: GW(i), ipv4: `10.244.${i}.1/24` });
    br.addTunnel('tun', up, { kind: 'vxlan', mode, localIp: UNDER_IP(i), ...(esp ? { esp: { cipher: 'aes-gcm-128', secret, node: `n${i}` } } : {}) });
    if (mode === 'l2') br.mapVni('tun', 5000, 0);
    const pod = addHost(br, net, 'pod', POD_MAC(i));
    if (mode === 'routed') br.addNeighbor(`10.244.${i}.5`, POD_MAC(i));
    return { i, br, pod };
  });
  for (const a of nodes) for (const b of nodes) if (a !== b) addPeer(a, b, mode, esp);
  if (esp) for (const a of nodes) for (const b of nodes) if (a.i < b.i) introduceEsp(a.br, b.br, 'tun');
  return { net, nodes, underlay };
}

function addPeer(a: Node, b: Node, mode: 'routed' | 'l2', esp: boolean): void {
  a.br.addVtep('tun', { ip: UNDER_IP(b.i), mac: UNDER_MAC(b.i), ...(mode === 'l2' ? { vnis: [5000] } : {}), ...(esp ? { esp: { node: `n${b.i}` } } : {}) });
  if (mode === 'routed') a.br.addRoute(`10.244.${b.i}.0/24`, { tunnel: 'tun', vtep: UNDER_IP(b.i) });
}

/** A routed UDP packet from node a's pod to node b's pod. */
function routedPacket(a: number, b: number, text = 'hello'): Uint8Array {
  return compose([eth(0x0800, [], POD_MAC(a), GW(a)), ip4(`10.244.${a}.5`, `10.244.${b}.5`, 17), udp(4000, 5000), data(text)]);
}

function delivered(n: Node): number {
  const k = n.pod.ep.take().length;
  return k;
}

test('routed: a removed VTEP takes its routes along — its pods are NoRoute, what it sends is UnknownVtep; the others carry on; adding it back works', () => {
  const { net, nodes, underlay } = cluster(3, 'routed');
  const [n1, n2, n3] = nodes as [Node, Node, Node];
  n1.pod.ep.send([routedPacket(1, 2), routedPacket(1, 3)]);
  assert.deepEqual([delivered(n2), delivered(n3)], [1, 1]);

  n1.br.removeVtep('tun', UNDER_IP(2));
  assert.deepEqual(
    n1.br.gateway!.routes().map((r) => r.prefix),
    ['10.244.3.0/24'],
    'the route through the removed VTEP went with it',
  );
  assert.equal(n1.br.tunnel('tun').findVtep(UNDER_IP(2)), -1);
  n1.pod.ep.send([routedPacket(1, 2), routedPacket(1, 3)]);
  assert.deepEqual([delivered(n2), delivered(n3)], [0, 1], 'to n3 as before; to n2 nothing');
  assert.equal(n1.br.gateway!.counters.drops[DropReason.NoRoute], 1);
  n2.pod.ep.send([routedPacket(2, 1)]);
  assert.equal(delivered(n1), 0);
  assert.equal(drops(n1.br.port('tun'), DropReason.UnknownVtep), 1, 'n1 no longer accepts what n2 sends');
  n3.pod.ep.send([routedPacket(3, 1)]);
  assert.equal(delivered(n1), 1, 'n3 still reaches n1');

  // Back again: a new VTEP (a new index, so nothing stale can name it) with its route.
  addPeer(n1, n2, 'routed', false);
  assert.equal(n1.br.tunnel('tun').findVtep(UNDER_IP(2)), 2);
  n1.pod.ep.send([routedPacket(1, 2)]);
  n2.pod.ep.send([routedPacket(2, 1)]);
  assert.deepEqual([delivered(n1), delivered(n2)], [1, 1]);
  // A route alone can go too, and only that route.
  assert.equal(n1.br.removeRoute('10.244.3.7/24'), true, 'the prefix is compared masked');
  assert.equal(n1.br.removeRoute('10.244.3.0/24'), false);
  n1.pod.ep.send([routedPacket(1, 3), routedPacket(1, 2)]);
  assert.deepEqual([delivered(n2), delivered(n3)], [1, 0]);
  assert.equal(n1.br.gateway!.counters.drops[DropReason.NoRoute], 2);
  for (const n of nodes) assertBooks(n.br);
  assertBooks(underlay);
  assertPoolFull(net.pool);
});

test('l2: a removed VTEP leaves the flood lists and takes the MACs learned behind it; re-added, it is flooded to and learned again', () => {
  const { net, nodes, underlay } = cluster(3, 'l2');
  const [n1, n2, n3] = nodes as [Node, Node, Node];
  const hosts = nodes.map((n) => n.pod);
  n2.pod.ep.send([frame({ src: n2.pod.mac, dst: BROADCAST, id: 1 })]);
  n3.pod.ep.send([frame({ src: n3.pod.mac, dst: BROADCAST, id: 2 })]);
  for (const h of hosts) h.ep.take();
  const behind = (mac: number): number | undefined => n1.br.macs.entries().find((e) => e.mac === mac)?.aux;
  const v2 = n1.br.tunnel('tun').findVtep(UNDER_IP(2));
  assert.equal(behind(n2.pod.mac), v2);

  n1.br.removeVtep('tun', UNDER_IP(2));
  assert.equal(behind(n2.pod.mac), undefined, "n2's pod is forgotten");
  assert.equal(behind(n3.pod.mac), n1.br.tunnel('tun').findVtep(UNDER_IP(3)), "n3's is not");
  const rx3 = n3.br.port('tun').counters.rxPackets;
  n1.pod.ep.send([
    frame({ src: n1.pod.mac, dst: BROADCAST, id: 3 }),
    frame({ src: n1.pod.mac, dst: n2.pod.mac, id: 4 }),
    frame({ src: n1.pod.mac, dst: n3.pod.mac, id: 5 }),
  ]);
  assert.equal(n3.br.port('tun').counters.rxPackets - rx3, 3, 'the broadcast and the now unknown unicast flood to n3 only, and n3 gets its own frame');
  // n3 knows n2's pod behind a tunnel and sends nothing from a tunnel back into one (split horizon).
  assert.deepEqual(
    hosts.map((h) => h.ep.take().map((f) => seen(f).id)),
    [[], [], [3, 5]],
  );
  n2.pod.ep.send([frame({ src: n2.pod.mac, dst: n1.pod.mac, id: 6 })]);
  assert.equal(n1.pod.ep.take().length, 0);
  assert.equal(drops(n1.br.port('tun'), DropReason.UnknownVtep), 1);

  addPeer(n1, n2, 'l2', false);
  n1.pod.ep.send([frame({ src: n1.pod.mac, dst: BROADCAST, id: 7 })]);
  assert.deepEqual(
    hosts.map((h) => h.ep.take().length),
    [0, 1, 1],
  );
  n2.pod.ep.send([frame({ src: n2.pod.mac, dst: n1.pod.mac, id: 8 })]);
  assert.equal(n1.pod.ep.take().length, 1);
  assert.equal(behind(n2.pod.mac), n1.br.tunnel('tun').findVtep(UNDER_IP(2)));
  for (const n of nodes) assertBooks(n.br);
  assertBooks(underlay);
  assertPoolFull(net.pool);
});

test("esp: a removed peer's packets are UnknownVtep (refused before any decryption); added back, its SAs go on where they were (no replay drops, sequence numbers continue)", () => {
  const { net, nodes, underlay } = cluster(3, 'routed', true);
  const [n1, n2, n3] = nodes as [Node, Node, Node];
  n1.pod.ep.send([routedPacket(1, 2), routedPacket(1, 2), routedPacket(1, 3)]);
  n2.pod.ep.send([routedPacket(2, 1)]);
  assert.deepEqual([delivered(n1), delivered(n2), delivered(n3)], [1, 2, 1]);
  const sadb = n1.br.tunnel('tun').sadb!;
  assert.equal(sadb.peers[0]!.out!.seqLo, 2);

  n1.br.removeVtep('tun', UNDER_IP(2));
  n2.pod.ep.send([routedPacket(2, 1)]);
  assert.equal(delivered(n1), 0);
  assert.equal(drops(n1.br.port('tun'), DropReason.UnknownVtep), 1);
  n1.pod.ep.send([routedPacket(1, 3)]);
  n3.pod.ep.send([routedPacket(3, 1)]);
  assert.deepEqual([delivered(n1), delivered(n3)], [1, 1], 'n1 and n3 carry on');

  addPeer(n1, n2, 'routed', true);
  const back = sadb.peers[2]!;
  assert.equal(back.name, 'n2');
  assert.equal(back.out, sadb.peers[0]!.out, 'the same outbound SA');
  n1.pod.ep.send([routedPacket(1, 2)]);
  assert.equal(back.out!.seqLo, 3, 'sequence number 3, not 1 again');
  n2.pod.ep.send([routedPacket(2, 1)]);
  assert.deepEqual([delivered(n1), delivered(n2)], [1, 1]);
  for (const n of nodes) {
    const p = n.br.port('tun');
    assert.equal(drops(p, DropReason.EspReplay) + drops(p, DropReason.EspOutsideWindow) + drops(p, DropReason.EspAuthFailed), 0, n.br.name);
    assertBooks(n.br);
  }
  assertBooks(underlay);
  assertPoolFull(net.pool);
});

test('removeVtep and removeRoute refuse what is not there', () => {
  const net = newNet();
  const br = newBridge(net, 'x');
  br.addTunnel('tun', new Endpoint('u', net.pool, 1), { kind: 'vxlan', mode: 'routed', localIp: '192.168.0.1' });
  assert.throws(() => br.removeVtep('tun', '192.168.0.2'), /VTEP 192\.168\.0\.2 is not in the table/);
  assert.throws(() => br.removeRoute('10.0.0.0/8'), /routes need a gateway/);
  br.addVtep('tun', { ip: '192.168.0.2', mac: 2 });
  br.removeVtep('tun', '192.168.0.2');
  assert.throws(() => br.removeVtep('tun', '192.168.0.2'), /not in the table/);
});

test('gateway: removing a route uncovers a shorter one; IPv6 routes too', () => {
  const net = newNet();
  const br = newBridge(net, 'x');
  br.addGateway({ name: 'gw', mac: GW(1), ipv4: '10.244.1.1/24', ipv6: 'fd00:1::1/64' });
  br.addTunnel('tun', new Endpoint('u', net.pool, 1), { kind: 'vxlan', mode: 'routed', localIp: '192.168.0.1' });
  br.addVtep('tun', { ip: '192.168.0.2', mac: 2 });
  br.addVtep('tun', { ip: '192.168.0.3', mac: 3 });
  br.addRoute('10.0.0.0/8', { tunnel: 'tun', vtep: '192.168.0.2' });
  br.addRoute('10.245.0.0/16', { tunnel: 'tun', vtep: '192.168.0.3' });
  br.addRoute('fd00:2::/64', { tunnel: 'tun', vtep: '192.168.0.3' });
  const gw = br.gateway!;
  assert.deepEqual(
    gw.routes().map((r) => `${r.prefix}>${r.vtep}`),
    ['10.0.0.0/8>0', '10.245.0.0/16>1', 'fd00:2::/64>1'],
  );
  assert.equal(br.removeRoute('10.245.0.0/16'), true);
  assert.equal(br.removeRoute('fd00:2::1/64'), true);
  assert.equal(br.removeRoute('fd00:2::/64'), false);
  assert.deepEqual(
    gw.routes().map((r) => r.prefix),
    ['10.0.0.0/8'],
  );
  // What is left still routes: a packet to 10.245.0.9 now takes the /8, to VTEP 0.
  const pod = addHost(br, net, 'pod', POD_MAC(1));
  br.addNeighbor('10.244.1.5', POD_MAC(1));
  pod.ep.send([compose([eth(0x0800, [], POD_MAC(1), GW(1)), ip4('10.244.1.5', '10.245.0.9', 17), udp(1, 2), data('x')])]);
  assert.equal(br.tunnel('tun').vteps[0]!.txPackets, 1);
  assert.equal(br.tunnel('tun').vteps[1]!.txPackets, 0);
  // Removing VTEP 0 takes the /8 along; VTEP 1 has no routes left to lose.
  br.removeVtep('tun', '192.168.0.2');
  assert.deepEqual(gw.routes(), []);
  assertPoolFull(net.pool);
});
