/**
 * Pods attached and detached at run time (what a CNI ADD and DEL do to a node's datapath), in process:
 * a pod attached to a running node is the same bridge as one built from the config; it takes traffic
 * across the overlay; detached, its neighbour entry, port and MAC entries are gone and traffic to it stops
 * at the gateway; the other pods' neighbours survive the removal (the gateway's tables are kept dense).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Endpoint, vethPair, type Device } from '../../src/datapath/device.js';
import { attachPod, buildNode, detachPod, type NodeDatapath } from '../../src/node/build.js';
import { nodeConfigsFromScenario, type NodeConfig, type NodePodConfig } from '../../src/node/config.js';
import { PacketPool } from '../../src/packet/buf.js';
import { loadScenario } from '../../src/scenario/scenario.js';
import { macFromString } from '../../src/wire/bytes.js';
import { compose, dissect } from '../../src/wire/stack.js';
import { data, eth, ip4, udp } from '../peers/catalogue.js';
import { assertBooks, assertPoolFull, VirtualClock } from '../datapath/topology.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const cfgs = (): NodeConfig[] =>
  nodeConfigsFromScenario(loadScenario(join(ROOT, 'scenarios', 'two-nodes-vxlan.yaml'))).map((x) => JSON.parse(JSON.stringify(x)) as NodeConfig);

function build(cfg: NodeConfig, pool: PacketPool, underlay: Device, pods: Map<string, Endpoint>): NodeDatapath {
  return buildNode(cfg, {
    pool,
    clock: new VirtualClock(),
    underlay,
    pod: (p) => endpoint(p, pool, pods),
  });
}

function endpoint(p: NodePodConfig, pool: PacketPool, pods: Map<string, Endpoint>): Endpoint {
  const e = new Endpoint(p.name, pool, macFromString(p.mac)!, p.mtu);
  pods.set(p.name, e);
  return e;
}

/** Everything about a bridge that attaching decides: ports, neighbours, static MACs. */
function shape(nd: NodeDatapath): unknown {
  const b = nd.bridge;
  return {
    ports: b.ports.filter((p) => p !== null).map((p) => ({ name: p.name, kind: p.kind, mac: p.mac, mtu: p.mtu, vlan: p.vlan })),
    neighbours: [...b.gateway!.neighbors()].sort((x, y) => x.ip.localeCompare(y.ip)),
    routes: b.gateway!.routes(),
    staticMacs: b.macs
      .entries()
      .filter((e) => e.isStatic)
      .map((e) => [e.segment, e.mac]),
  };
}

test('attachPod: a pod attached to a running node is the bridge buildNode makes with the pod in the config', () => {
  const pool = new PacketPool({ count: 64, frameCapacity: 2048 });
  const full = cfgs()[0]!;
  const late = full.pods[1]!;
  const a = build(full, pool, new Endpoint('u', pool, macFromString(full.underlayMac)!), new Map());
  const pods = new Map<string, Endpoint>();
  const b = build({ ...full, pods: [full.pods[0]!] }, pool, new Endpoint('u', pool, macFromString(full.underlayMac)!), pods);
  assert.notDeepEqual(shape(b), shape(a));
  attachPod(b, late, endpoint(late, pool, pods), full.gateway);
  assert.deepEqual(shape(b), shape(a));
  assert.throws(() => attachPod(b, late, new Endpoint('x', pool), full.gateway), /pod b is already attached/);
  // A refused pod (a bad MAC) leaves nothing behind.
  const before = shape(b);
  assert.throws(() => attachPod(b, { ...late, name: 'bad', mac: 'nope' }, new Endpoint('x', pool), full.gateway), /not a MAC/);
  assert.deepEqual(shape(b), before);
});

test('attach, traffic, detach, reattach: across the overlay; a detached pod gets nothing and its entries are gone', () => {
  const [c1, c2] = cfgs();
  const pool = new PacketPool({ count: 256, frameCapacity: 2048 });
  const [u1, u2] = vethPair('eth0', 'eth0', { macA: macFromString(c1!.underlayMac)!, macB: macFromString(c2!.underlayMac)! });
  const pods1 = new Map<string, Endpoint>();
  const pods2 = new Map<string, Endpoint>();
  const n1 = build(c1!, pool, u1, pods1);
  // node2 starts with no pods at all, as a CNI node does.
  const n2 = build({ ...c2!, pods: [] }, pool, u2, pods2);
  const gw2 = n2.bridge.gateway!;
  const pod = (name: string, ip: string, mac: string): NodePodConfig => ({ name, mac, mtu: 1450, ip4: ip, ip6: null, segment: 0, vni: null });
  const x = pod('x', '10.244.2.7', '02:aa:00:00:00:07');
  const y = pod('y', '10.244.2.8', '02:aa:00:00:00:08');
  const z = pod('z', '10.244.2.9', '02:aa:00:00:00:09');
  for (const p of [x, y, z]) attachPod(n2, p, endpoint(p, pool, pods2), c2!.gateway);
  const from = pods1.get('a')!;
  const send = (dst: string, text: string): void => {
    from.send([compose([eth(0x0800, [], from.mac, n1.gateway!.mac), ip4('10.244.1.2', dst, 17), udp(4000, 5000), data(text)])]);
  };
  send(x.ip4!, 'to x');
  const got = pods2.get('x')!.take();
  assert.equal(got.length, 1);
  const d = dissect(got[0]!).layers;
  assert.ok(d[3]!.kind === 'data' && new TextDecoder().decode(d[3]!.bytes) === 'to x');
  // Detach x (the first IPv4 neighbour: the last moves into its slot) — y and z still get their frames.
  const xPort = n2.pods.get('x')!;
  // The bridge learned x's MAC from nothing yet (x never sent): give it a learned entry to flush.
  pods2.get('x')!.send([compose([eth(0x0800, [], macFromString(x.mac)!, gw2.mac), ip4(x.ip4!, '10.244.1.2', 17), udp(5000, 4000), data('from x')])]);
  pods1.get('a')!.take();
  assert.ok(n2.bridge.macs.entries().some((e) => e.port === xPort.index && !e.isStatic));
  assert.equal(detachPod(n2, x), true);
  assert.equal(detachPod(n2, x), false);
  assert.equal(n2.pods.has('x'), false);
  assert.equal(n2.bridge.ports[xPort.index], null);
  assert.deepEqual(
    gw2
      .neighbors()
      .map((n) => n.ip)
      .sort(),
    ['10.244.2.8', '10.244.2.9'],
  );
  assert.equal(n2.bridge.macs.entries().filter((e) => e.port === xPort.index).length, 0);
  const unresolvedBefore = gw2.counters.dropsByReason()['NeighborUnresolved'] ?? 0;
  send(x.ip4!, 'to x again');
  assert.equal(pods2.get('x')!.take().length, 0);
  assert.equal((gw2.counters.dropsByReason()['NeighborUnresolved'] ?? 0) - unresolvedBefore, 1);
  for (const p of [y, z]) {
    // The gateway's ARP solicitation for x was flooded to them: only IPv4 counts here.
    pods2.get(p.name)!.take();
    send(p.ip4!, `to ${p.name}`);
    const f = pods2
      .get(p.name)!
      .take()
      .filter((b) => b[12] === 0x08 && b[13] === 0x00);
    assert.equal(f.length, 1, p.name);
    // Routed to the right MAC: the moved neighbour kept its own.
    assert.deepEqual(
      [...f[0]!.subarray(0, 6)],
      p.mac.split(':').map((h) => Number.parseInt(h, 16)),
    );
  }
  // The address comes back with another MAC (a new pod reusing it): the gateway routes to the new one.
  const x2 = { ...x, name: 'x2', mac: '02:aa:00:00:00:17' };
  attachPod(n2, x2, endpoint(x2, pool, pods2), c2!.gateway);
  send(x.ip4!, 'to x2');
  const f = pods2.get('x2')!.take();
  assert.equal(f.length, 1);
  assert.equal(f[0]![5], 0x17);
  // x2 took x's slot; pods coming and going for a node's whole life do not grow the bridge.
  assert.equal(n2.pods.get('x2')!.index, xPort.index);
  const width = n2.bridge.ports.length;
  for (let i = 0; i < 50; i++) {
    const q = pod(`q${i}`, `10.244.2.${100 + (i % 3)}`, `02:bb:00:00:00:${(16 + i).toString(16)}`);
    attachPod(n2, q, endpoint(q, pool, pods2), c2!.gateway);
    assert.equal(detachPod(n2, q), true);
  }
  // One slot more than before: the most ports there were at once.
  assert.equal(n2.bridge.ports.length, width + 1);
  // (Frames routed to pods that never sent were flooded as unknown unicast: y kept copies.)
  pods2.get('y')!.take();
  send(y.ip4!, 'to y, after the churn');
  assert.equal(
    pods2
      .get('y')!
      .take()
      .filter((b) => b[12] === 0x08 && b[13] === 0x00).length,
    1,
  );
  assertBooks(n1.bridge);
  assertBooks(n2.bridge);
  assertPoolFull(pool);
});
