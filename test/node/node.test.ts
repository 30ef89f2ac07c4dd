/**
 * The node model: configs are plain data computed from a topology; the simulator's nodes and nodes built
 * from those configs (JSON and back) around other devices are the same bridge, port for port, route for
 * route; such nodes carry traffic between them, ESP included; and peers change in place.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint, vethPair, type Device } from '../../src/datapath/device.js';
import { ObservedDevice } from '../../src/datapath/observe.js';
import { addPeer, applyPeers, buildNode, HOST_PORT, removePeer, TUNNEL_PORT, type NodeDatapath } from '../../src/node/build.js';
import { NodeBuildError, nodeConfigsFromScenario, type NodeConfig } from '../../src/node/config.js';
import { PacketPool, type PacketBuf } from '../../src/packet/buf.js';
import { Cluster, SimBuildError } from '../../src/sim/cluster.js';
import { loadScenario, parseScenario } from '../../src/scenario/scenario.js';
import { macFromString, macToString } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose, dissect } from '../../src/wire/stack.js';
import { data, eth, ip4, udp } from '../peers/catalogue.js';
import { assertBooks, assertPoolFull, VirtualClock } from '../datapath/topology.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LABS = join(ROOT, 'scenarios');
const labs = readdirSync(LABS)
  .filter((f) => f.endsWith('.yaml'))
  .sort();
const lab = (name: string): string => join(LABS, `${name}.yaml`);

/** Only strings, numbers, booleans, null, arrays and plain objects, all the way down. */
function assertPlain(v: unknown, at: string): void {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return;
  assert.ok(typeof v === 'object', `${at}: ${typeof v}`);
  if (Array.isArray(v)) {
    v.forEach((x, i) => assertPlain(x, `${at}[${i}]`));
    return;
  }
  assert.equal(Object.getPrototypeOf(v), Object.prototype, `${at}: not a plain object`);
  for (const [k, x] of Object.entries(v)) assertPlain(x, `${at}.${k}`);
}

/** Everything `buildNode` decides about a bridge, in plain terms. */
function describe(br: Bridge): unknown {
  const tun = br.tunnel(TUNNEL_PORT);
  const gw = br.gateway;
  return {
    ports: br.ports.map((p) => (p === null ? null : { name: p.name, kind: p.kind, mac: p.mac, mtu: p.mtu, vlan: p.vlan, trunk: p.isTrunk })),
    gateway:
      gw === null
        ? null
        : {
            mac: gw.mac,
            v4: gw.v4,
            v4Len: gw.v4Len,
            v6: gw.v6 === null ? null : [...gw.v6],
            v6Len: gw.v6Len,
            hostMac: gw.hostMac,
            routes: gw.routes(),
            neighbours: gw.neighbors(),
          },
    tunnel: {
      kind: tun.kind,
      mode: tun.mode,
      vni: tun.vni,
      dstPort: tun.dstPort,
      family: tun.family,
      icmpTooBig: tun.icmpTooBig,
      fragmentPolicy: tun.fragmentPolicy,
      mssClamp: tun.mssClamp,
      options: tun.options.map((o) => ({ ...o, data: [...o.data] })),
      esp: tun.sadb === null ? null : { cipher: tun.sadb.cipher, udpEncap: tun.sadb.udpEncap, peers: tun.sadb.peers.map((p) => [p.name, p.addr]) },
      vteps: tun.vteps.map((v) => ({ ip: v.ip, mac: v.mac, vnis: [...v.vnis] })),
      segments: Array.from({ length: 4095 }, (_, s) => tun.vniFor(s))
        .map((vni, s) => [s, vni])
        .filter(([, vni]) => tun.mode === 'l2' && vni! >= 0),
    },
    staticMacs: br.macs
      .entries()
      .filter((e) => e.isStatic)
      .map((e) => [e.segment, e.mac, e.port, e.aux]),
  };
}

interface Built {
  nd: NodeDatapath;
  pool: PacketPool;
  /** The underlay endpoint made when none was given. */
  underlay: Endpoint;
  pods: Map<string, Endpoint>;
}

/** A node built from its config around plain endpoints (no simulator), as a live agent builds it around TAPs. */
function buildWithEndpoints(cfg: NodeConfig, pool = new PacketPool({ count: 256, frameCapacity: 2048 }), underlay?: Device): Built {
  const pods = new Map<string, Endpoint>();
  const under = underlay ?? new Endpoint('eth0', pool, macFromString(cfg.underlayMac)!, 1500);
  const nd = buildNode(cfg, {
    pool,
    clock: new VirtualClock(),
    underlay: under,
    pod: (p) => {
      const e = new Endpoint(p.name, pool, macFromString(p.mac)!, p.mtu);
      pods.set(p.name, e);
      return e;
    },
    ...(cfg.stack !== null ? { stack: new Endpoint(HOST_PORT, pool, macFromString(cfg.stack.mac)!, cfg.stack.mtu) } : {}),
  });
  return { nd, pool, underlay: under as Endpoint, pods };
}

test('configs: plain data (JSON round-trips to the same value), addresses and MACs by position, peers and routes', () => {
  for (const f of labs) {
    const s = loadScenario(join(LABS, f));
    for (const c of nodeConfigsFromScenario(s, { stacks: 'all' })) {
      assertPlain(c, `${f} ${c.name}`);
      assert.deepEqual(JSON.parse(JSON.stringify(c)), c);
    }
  }
  const [n1, n2] = nodeConfigsFromScenario(loadScenario(lab('esp-encryption')), { stacks: ['node2'] }) as [NodeConfig, NodeConfig];
  assert.deepEqual(
    { ...n1, pods: undefined },
    {
      name: 'node1',
      mode: 'routed',
      underlayIp: '172.18.0.2',
      underlayMac: '02:02:00:00:00:01',
      tunnel: { kind: 'vxlan', vni: 1, options: [], knownOptions: [], fragmentPolicy: 'outer', icmpTooBig: true, mssClamp: true, udpPort: null },
      esp: { cipher: 'aes-gcm-128', udpEncap: false, secret: { passphrase: 'lab-secret' } },
      gateway: { mac: '02:01:00:00:00:01', mtu: 1500, ipv4: '10.244.1.1/24', ipv6: null },
      pods: undefined,
      stack: null,
      peers: [{ name: 'node2', underlayIp: '172.18.0.3', underlayMac: '02:02:00:00:00:02', podCIDRs: ['10.244.2.0/24'], vnis: [] }],
      vniSegments: [],
    },
  );
  assert.deepEqual(n1.pods, [{ name: 'client', mac: '02:00:00:01:00:01', mtu: 1416, ip4: '10.244.1.2', ip6: null, segment: 0, vni: null }]);
  assert.deepEqual(n2.stack, { mac: '02:03:00:00:00:02', mtu: 1416 });
  // l2: a segment per VNI on each node, peers are the nodes sharing a VNI, with the VNIs they share.
  const t = nodeConfigsFromScenario(loadScenario(lab('tenants-vni')));
  assert.deepEqual(
    t.map((c) => c.vniSegments),
    [
      [
        { vni: 100, segment: 1 },
        { vni: 200, segment: 2 },
      ],
      [
        { vni: 100, segment: 1 },
        { vni: 200, segment: 2 },
      ],
    ],
  );
  assert.deepEqual(
    t.map((c) => c.peers.map((p) => [p.name, p.vnis])),
    [[['node2', [100, 200]]], [['node1', [100, 200]]]],
  );
  assert.deepEqual(
    t.map((c) => [c.gateway, c.stack]),
    [
      [null, null],
      [null, null],
    ],
  );
  const lonely = parseScenario(
    'name: l\ntunnel: { mode: l2 }\nnodes:\n  - { name: a, pods: [{ name: p, ip: 10.0.0.1, vni: 7 }] }\n  - { name: b, pods: [{ name: q, ip: 10.0.0.2, vni: 8 }] }\n',
    'l.yaml',
  );
  assert.deepEqual(
    nodeConfigsFromScenario(lonely).map((c) => c.peers),
    [[], []],
    'nodes sharing no VNI are no peers',
  );
});

test("configs: one VNI on two VLANs between nodes is a NodeBuildError, which is the simulator's SimBuildError", () => {
  const text =
    'name: v\ntunnel: { mode: l2 }\nnodes:\n  - { name: a, pods: [{ name: p, ip: 10.0.0.1, vni: 7, vlan: 10 }, { name: p2, ip: 10.0.0.3, vni: 7, vlan: 20 }] }\n  - { name: b, pods: [{ name: q, ip: 10.0.0.2, vni: 7 }] }\n';
  const s = parseScenario(text, 'v.yaml');
  assert.throws(
    () => nodeConfigsFromScenario(s),
    (e: unknown) => e instanceof NodeBuildError && e instanceof SimBuildError && /pod a\/p2: VNI 7 is already carried by VLAN 10/.test(e.message),
  );
  assert.throws(
    () => new Cluster(s),
    (e: unknown) => e instanceof SimBuildError && /VNI 7 is already carried by VLAN 10/.test(e.message),
  );
});

test("both worlds: every lab's simulated nodes are the bridges buildNode makes from the same configs, through JSON, around other devices", () => {
  for (const f of labs) {
    const s = loadScenario(join(LABS, f));
    const c = new Cluster(s, { traffic: false, capture: false, nodeStacks: true });
    const configs = nodeConfigsFromScenario(s, { stacks: 'all' }).map((x) => JSON.parse(JSON.stringify(x)) as NodeConfig);
    configs.forEach((cfg, i) => {
      const sim = c.nodes.get(cfg.name)!;
      assert.deepEqual(sim.config, nodeConfigsFromScenario(s, { stacks: 'all' })[i]);
      const { nd } = buildWithEndpoints(cfg);
      assert.deepEqual(describe(nd.bridge), describe(sim.bridge), `${f}: ${cfg.name}`);
      assert.deepEqual([...nd.pods.keys()], [...sim.pods.keys()]);
      assert.deepEqual(
        nd.peers.map((p) => p.name),
        cfg.peers.map((p) => p.name),
      );
    });
  }
});

/** Two nodes from a lab's configs, their underlays joined by a veth pair, pods as endpoints; `onWire` sees what node b receives. */
function pairOf(path: string, onWire: (p: PacketBuf) => void): { a: Built; b: Built; pool: PacketPool } {
  const cfgs = nodeConfigsFromScenario(loadScenario(path)).map((x) => JSON.parse(JSON.stringify(x)) as NodeConfig);
  const pool = new PacketPool({ count: 256, frameCapacity: 2048 });
  const [u1, u2] = vethPair('eth0', 'eth0', { macA: macFromString(cfgs[0]!.underlayMac)!, macB: macFromString(cfgs[1]!.underlayMac)! });
  const a = buildWithEndpoints(cfgs[0]!, pool, u1);
  const b = buildWithEndpoints(cfgs[1]!, pool, new ObservedDevice(u2, new VirtualClock(), null, onWire));
  return { a, b, pool };
}

test('built from configs alone: pods on two nodes reach each other across the overlay, with ESP (protocol 50 on the wire)', () => {
  for (const name of ['two-nodes-vxlan', 'esp-encryption']) {
    const seen: number[] = [];
    const { a, b, pool } = pairOf(lab(name), (p) => seen.push(p.data[p.start + 14 + 9]!));
    const from = [...a.pods.keys()][0]!;
    const target = nodeConfigsFromScenario(loadScenario(lab(name)))[1]!.pods[0]!;
    const pkt = compose([
      eth(0x0800, [], a.pods.get(from)!.mac, a.nd.gateway!.mac),
      ip4('10.244.1.2', target.ip4!, 17),
      udp(4000, 5000),
      data(`to ${target.name}`),
    ]);
    a.pods.get(from)!.send([pkt]);
    const got = b.pods.get(target.name)!.take();
    assert.equal(got.length, 1, name);
    const d = dissect(got[0]!).layers;
    assert.ok(d[3]!.kind === 'data' && new TextDecoder().decode(d[3]!.bytes) === `to ${target.name}`);
    // With ESP the two first exchange their announcements over the underlay (nothing introduced them):
    // a's hello, b's answer (UDP to the tunnel's port), then a's hello with the packet, which waited.
    assert.deepEqual(seen, name === 'esp-encryption' ? [17, 17, 50] : [17]);
    assertBooks(a.nd.bridge);
    assertBooks(b.nd.bridge);
    assertPoolFull(pool);
  }
});

test('peers in place: applyPeers replaces a changed peer and drops a gone one; the unchanged keeps its VTEP and counters', () => {
  const cfgs = nodeConfigsFromScenario(loadScenario(lab('tcp-goodput')));
  const n1 = cfgs[0]!;
  const { nd, underlay, pods, pool } = buildWithEndpoints(n1);
  underlay.keep = true;
  const client = pods.get('client')!;
  const gw = nd.gateway!.mac;
  const to = (ip: string): Uint8Array => compose([eth(0x0800, [], client.mac, gw), ip4('10.244.1.2', ip, 17), udp(4000, 5000), data('x')]);
  const outerDst = (f: Uint8Array): string => {
    const l = dissect(f).layers[1]!;
    assert.equal(l.kind, 'ipv4');
    return l.kind === 'ipv4' ? [24, 16, 8, 0].map((k) => (l.repr.dst >>> k) & 0xff).join('.') : '';
  };
  client.send([to('10.244.2.5'), to('10.244.3.5')]);
  assert.deepEqual(underlay.take().map(outerDst), ['172.18.0.3', '172.18.0.4']);
  const v3 = nd.tunnel.findVtep('172.18.0.4');
  const [p2, p3] = n1.peers as [NodeConfig['peers'][number], NodeConfig['peers'][number]];
  // node2 moved to another underlay address.
  const moved = { ...p2, underlayIp: '172.18.0.99' };
  assert.deepEqual(applyPeers(nd, [moved, p3]), { removed: ['node2'], added: ['node2'] });
  assert.deepEqual(
    applyPeers(nd, [{ ...moved, underlayMac: moved.underlayMac.toUpperCase() }, p3]),
    { removed: [], added: [] },
    'the same peer, MAC written otherwise',
  );
  assert.equal(nd.tunnel.findVtep('172.18.0.4'), v3, 'node3 untouched');
  assert.equal(nd.tunnel.vteps[v3]!.txPackets, 1);
  client.send([to('10.244.2.5'), to('10.244.3.5')]);
  assert.deepEqual(underlay.take().map(outerDst), ['172.18.0.99', '172.18.0.4']);
  // node3 leaves.
  assert.deepEqual(applyPeers(nd, [moved]), { removed: ['node3'], added: [] });
  client.send([to('10.244.3.5')]);
  assert.equal(underlay.take().length, 0);
  assert.equal(nd.bridge.gateway!.counters.drops[DropReason.NoRoute], 1);
  assert.deepEqual(
    nd.peers.map((p) => p.name),
    ['node2'],
  );
  addPeer(nd, p3);
  client.send([to('10.244.3.5')]);
  assert.deepEqual(underlay.take().map(outerDst), ['172.18.0.4']);
  assert.throws(() => addPeer(nd, p3), /peer node3 is already there/);
  assert.throws(() => addPeer(nd, { ...p3, name: 'node1' }), /not its own peer/);
  assert.throws(() => removePeer(nd, 'node9'), /no peer node9/);
  assert.throws(() => applyPeers(nd, [p3, p3]), /listed twice/);
  // A peer refused half-way (a bad podCIDR) leaves nothing behind.
  assert.throws(
    () => addPeer(nd, { name: 'node4', underlayIp: '172.18.0.5', underlayMac: macToString(5), podCIDRs: ['10.244.4.0/24', 'nonsense'], vnis: [] }),
    /nonsense/,
  );
  assert.equal(nd.tunnel.findVtep('172.18.0.5'), -1);
  assert.deepEqual(
    nd.bridge.gateway!.routes().map((r) => r.prefix),
    ['10.244.2.0/24', '10.244.3.0/24'],
  );
  assertBooks(nd.bridge);
  assertPoolFull(pool);
});

test('buildNode: refuses a stack device without a stack in the config, and the reverse; MACs are checked', () => {
  const [cfg] = nodeConfigsFromScenario(loadScenario(lab('two-nodes-vxlan')));
  const pool = new PacketPool({ count: 8, frameCapacity: 2048 });
  const env = { pool, clock: new VirtualClock(), underlay: new Endpoint('u', pool), pod: () => new Endpoint('p', pool) };
  assert.throws(() => buildNode(cfg!, { ...env, stack: new Endpoint('h', pool) }), /a stack device without a stack/);
  assert.throws(() => buildNode({ ...cfg!, stack: { mac: '02:03:00:00:00:01', mtu: 1450 } }, env), /give its device \(env\.stack\)/);
  assert.throws(() => buildNode({ ...cfg!, underlayMac: 'nope' }, env), /underlayMac "nope" is not a MAC/);
});
