/**
 * Trace records: a traced packet gets one record per stage it passes, with the facts behind each decision;
 * untraced packets get none.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GLOBAL_VIRTUAL_MAC } from '../../src/datapath/gateway.js';
import { formatTraceRecord, TraceLog, type TraceRecord } from '../../src/datapath/trace.js';
import { macToString } from '../../src/wire/bytes.js';
import { compose } from '../../src/wire/stack.js';
import { data, eth, ip4, udp } from '../peers/catalogue.js';
import { addHost, BROADCAST, frame, hostMac, newBridge, newNet, tapPair, type Host } from './topology.js';

const stages = (rs: readonly TraceRecord[]): string[] => rs.map((r) => `${r.node}:${r.stage}:${r.port}`);

function switchWithThreeHosts(): { log: TraceLog; hosts: [Host, Host, Host]; br: ReturnType<typeof newBridge> } {
  const net = newNet();
  const br = newBridge(net, 'br');
  const log = new TraceLog();
  br.trace = log.sink;
  const hosts = [1, 2, 3].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host, Host];
  return { log, hosts, br };
}

test('a traced unicast: ingress, classify, learn, lookup, output, with their facts', () => {
  const {
    log,
    hosts: [a, b],
  } = switchWithThreeHosts();
  b.ep.send([frame({ src: b.mac, dst: BROADCAST })]);
  assert.equal(log.records.length, 0, 'untraced packets leave no records');
  const f = frame({ src: a.mac, dst: b.mac, pad: 50 });
  a.ep.send([f], true);
  assert.deepEqual(stages(log.records), ['br:ingress:h1', 'br:classify:h1', 'br:learn:h1', 'br:lookup:h1', 'br:output:h2']);
  const [ing, cls, lrn, lkp, out] = log.records as [TraceRecord, TraceRecord, TraceRecord, TraceRecord, TraceRecord];
  assert.deepEqual(ing.detail, { bytes: f.length, src: macToString(a.mac), dst: macToString(b.mac) });
  assert.deepEqual(cls.detail, { segment: 0, vlan: 'untagged' });
  assert.deepEqual(lrn.detail, { mac: macToString(a.mac), segment: 0, result: 'Learned' });
  assert.deepEqual(lkp.detail, { mac: macToString(b.mac), segment: 0, port: 'h2' });
  assert.deepEqual(out.detail, { bytes: f.length });
  for (const r of log.records) assert.ok(formatTraceRecord(r).startsWith('br'), 'renders as text');
  assert.equal(log.text().split('\n').length, 5);
  // The same frame untraced: no records.
  log.clear();
  a.ep.send([f]);
  assert.equal(log.records.length, 0);
  assert.equal(b.ep.take().length, 2);
});

test('a traced flood names its destinations; a traced drop names its stage and reason', () => {
  const {
    log,
    hosts: [a, , c],
    br,
  } = switchWithThreeHosts();
  a.ep.send([frame({ src: a.mac, dst: BROADCAST, tags: [{ vid: 0 }] })], true);
  assert.deepEqual(stages(log.records), ['br:ingress:h1', 'br:classify:h1', 'br:learn:h1', 'br:lookup:h1', 'br:output:h2', 'br:output:h3']);
  assert.deepEqual(log.records[1]!.detail, { segment: 0, vlan: 'popped' });
  assert.deepEqual(log.records[3]!.detail, { segment: 0, to: ['h2', 'h3'] });
  assert.equal(log.records[3]!.action, 'flood to 2 destinations');
  log.clear();
  a.ep.send([frame({ src: a.mac, dst: c.mac, tags: [{ vid: 5 }] })], true);
  assert.deepEqual(stages(log.records), ['br:ingress:h1', 'br:drop:h1']);
  assert.deepEqual(log.records[1]!.detail, { stage: 'classify', reason: 'VlanNotAllowed' });
  log.clear();
  br.setAdmin('h1', false);
  a.ep.send([frame({ src: a.mac, dst: c.mac })], true);
  assert.deepEqual(
    log.records.map((r) => [r.stage, r.detail]),
    [['drop', { stage: 'ingress', reason: 'PortDown' }]],
  );
});

test('a traced packet routed across a tunnel: route and encapsulate on node1, decapsulate and route on node2', () => {
  const net = newNet();
  const log = new TraceLog();
  const [u1, u2] = tapPair('u1', 'u2', 0x0e0000000001, 0x0e0000000002);
  const GW = [0x02aa00000001, 0x02aa00000002];
  const pods: Host[] = [];
  const bridges = [1, 2].map((i) => {
    const br = newBridge(net, `node${i}`);
    br.trace = log.sink;
    br.addGateway({ name: 'gw0', mac: GW[i - 1]!, ipv4: `10.244.${i}.1/24` });
    br.addTunnel('tun0', i === 1 ? u1 : u2, {
      kind: 'geneve',
      mode: 'routed',
      localIp: `192.168.0.${i}`,
      options: [{ class: 0x0104, type: 0x01, data: new Uint8Array(4) }],
    });
    br.addVtep('tun0', { ip: `192.168.0.${3 - i}`, mac: i === 1 ? u2.mac : u1.mac });
    br.addRoute(`10.244.${3 - i}.0/24`, { tunnel: 'tun0', vtep: `192.168.0.${3 - i}` });
    pods.push(addHost(br, net, `pod${i}`, hostMac(0x100 * i + 5)));
    br.addNeighbor(`10.244.${i}.5`, hostMac(0x100 * i + 5));
    return br;
  });
  // pod2 has spoken: node2 knows its MAC, so the last hop is a lookup, not a flood.
  pods[1]!.ep.send([frame({ src: pods[1]!.mac, dst: BROADCAST })]);
  log.clear();
  const pkt = compose([eth(0x0800, [], pods[0]!.mac, GW[0]!), ip4('10.244.1.5', '10.244.2.5', 17), udp(1000, 2000), data('traced')]);
  pods[0]!.ep.send([pkt], true);
  assert.equal(pods[1]!.ep.take().length, 1);
  assert.deepEqual(stages(log.records), [
    'node1:ingress:pod1',
    'node1:classify:pod1',
    'node1:learn:pod1',
    'node1:lookup:pod1',
    'node1:route:gw0',
    'node1:encapsulate:tun0',
    'node1:output:tun0',
    'node2:ingress:tun0',
    'node2:decapsulate:tun0',
    'node2:classify:tun0',
    'node2:lookup:tun0',
    'node2:route:gw0',
    'node2:output:pod2',
  ]);
  const r = (node: string, stage: string): TraceRecord => log.records.find((x) => x.node === node && x.stage === stage)!;
  assert.deepEqual(r('node1', 'lookup').detail, { mac: macToString(GW[0]!), segment: 0, port: 'gw0' });
  assert.deepEqual(r('node1', 'route').detail, { route: 'tunnel', dst: '10.244.2.5', ttl: 63 });
  const enc = r('node1', 'encapsulate').detail;
  assert.deepEqual(
    { ...enc, udpSrcPort: 0 },
    { kind: 'geneve', vni: 1, outerSrc: '192.168.0.1', outerDst: '192.168.0.2', udpSrcPort: 0, udpDstPort: 6081, bytes: u1.sent[0]!.length },
  );
  assert.ok(typeof enc['udpSrcPort'] === 'number' && enc['udpSrcPort'] >= 49152);
  const dec = r('node2', 'decapsulate').detail;
  assert.deepEqual(dec, {
    kind: 'geneve',
    vni: 1,
    remote: '192.168.0.1',
    options: [{ class: 0x0104, type: 1, data: '00000000' }],
    innerSrc: macToString(GW[0]!),
    innerDst: macToString(GLOBAL_VIRTUAL_MAC),
    bytes: pkt.length,
  });
  assert.deepEqual(r('node2', 'lookup').detail, { mac: macToString(GLOBAL_VIRTUAL_MAC), segment: 0, port: 'gw0' });
  assert.deepEqual(r('node2', 'route').detail, { route: 'local', dst: '10.244.2.5', neighbor: macToString(pods[1]!.mac), ttl: 62 });
  // The same packet untraced leaves nothing in either node's log.
  log.clear();
  pods[0]!.ep.send([pkt]);
  assert.equal(pods[1]!.ep.take().length, 1);
  assert.equal(log.records.length, 0);
  void bridges;
});

test('a traced frame through an l2 tunnel: learn records the remote VTEP', () => {
  const net = newNet();
  const log = new TraceLog();
  const [u1, u2] = tapPair('u1', 'u2', 0x0e0000000001, 0x0e0000000002);
  const hosts = [1, 2].map((i) => {
    const br = newBridge(net, `n${i}`);
    br.trace = log.sink;
    br.addTunnel('vx', i === 1 ? u1 : u2, { kind: 'vxlan', mode: 'l2', localIp: `192.168.0.${i}` });
    br.addVtep('vx', { ip: `192.168.0.${3 - i}`, mac: i === 1 ? u2.mac : u1.mac, vnis: [42] });
    br.mapVni('vx', 42, 0);
    return addHost(br, net, `h${i}`, hostMac(i));
  });
  hosts[0]!.ep.send([frame({ src: hosts[0]!.mac, dst: BROADCAST })], true);
  assert.deepEqual(stages(log.records), [
    'n1:ingress:h1',
    'n1:classify:h1',
    'n1:learn:h1',
    'n1:lookup:h1',
    'n1:encapsulate:vx',
    'n1:output:vx',
    'n2:ingress:vx',
    'n2:decapsulate:vx',
    'n2:classify:vx',
    'n2:learn:vx',
    'n2:lookup:vx',
    'n2:output:h2',
  ]);
  const learn = log.records.find((r) => r.node === 'n2' && r.stage === 'learn')!;
  assert.equal(learn.action, `${macToString(hosts[0]!.mac)} on vx via VTEP 192.168.0.1`);
  assert.deepEqual(log.records.find((r) => r.node === 'n1' && r.stage === 'lookup')!.detail, { segment: 0, to: ['vx→192.168.0.2'] });
  assert.equal(log.records.find((r) => r.node === 'n1' && r.stage === 'encapsulate')!.detail['vni'], 42);
});
