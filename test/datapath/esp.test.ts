/**
 * ESP on tunnel ports: two nodes whose tunnel traffic is encrypted with derived keys — delivery, the
 * wire (IP protocol 50 or UDP 4500, nothing of the inner frame in clear), forged, replayed and cleartext
 * packets dropped with their reasons, rekeying by lifetime without a lost packet, the exact ESP overhead
 * in the path MTU, and trace records with SPI and sequence number.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint } from '../../src/datapath/device.js';
import { TraceLog } from '../../src/datapath/trace.js';
import { ClusterSecret } from '../../src/esp/keys.js';
import type { EspConfig } from '../../src/esp/sadb.js';
import { podMtu } from '../../src/mtu/overhead.js';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose, dissect, type Layer } from '../../src/wire/stack.js';
import { eth, ip4, udp } from '../peers/catalogue.js';
import { assertBooks, assertPoolFull, drops, hostMac, introduceEsp, newBridge, tapPair, VirtualClock, type Net, type TapEnd } from './topology.js';

const UNDER_MAC = [0, 0x0e0000000001, 0x0e0000000002];
const POD = [0, hostMac(0x105), hostMac(0x205)];
const SECRET = new ClusterSecret(new Uint8Array(32).map((_, i) => i * 7 + 1));

interface Node {
  br: Bridge;
  pod: Endpoint;
  under: TapEnd;
}

function pair(kind: 'vxlan' | 'geneve', underlay: 4 | 6, esp: Omit<EspConfig, 'secret'>): { net: Net; n1: Node; n2: Node } {
  const net: Net = { pool: new PacketPool({ count: 512, frameCapacity: 9216 }), clock: new VirtualClock() };
  const ip: [string, string] = underlay === 4 ? ['192.168.0.1', '192.168.0.2'] : ['fd00:ff::1', 'fd00:ff::2'];
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, 1500);
  const make = (i: 1 | 2, under: TapEnd): Node => {
    const br = newBridge(net, `node${i}`);
    br.addTunnel('tun0', under, { kind, mode: 'l2', localIp: ip[i - 1]!, esp: { ...esp, secret: SECRET } });
    br.addVtep('tun0', { ip: ip[2 - i]!, mac: UNDER_MAC[3 - i]!, vnis: [5000] });
    br.mapVni('tun0', 5000, 0);
    const pod = new Endpoint(`pod${i}`, net.pool, POD[i]!, 9000);
    br.addPort(`pod${i}`, pod);
    return { br, pod, under };
  };
  const n1 = make(1, u1);
  const n2 = make(2, u2);
  // As the simulator's control plane does: the two learn each other's incarnation without the underlay
  // (lifecycle.test.ts has the exchange over the wire).
  introduceEsp(n1.br, n2.br);
  return { net, n1, n2 };
}

const bytes = (b: Uint8Array): Layer => ({ kind: 'data', bytes: b });
function pkt(len: number, k: number, df = true): Uint8Array {
  return compose([
    eth(0x0800, [], POD[1]!, POD[2]!),
    ip4('10.0.0.1', '10.0.0.2', 17, { dontFrag: df }),
    udp(5000, 6000),
    bytes(new Uint8Array(len - 28).fill(k & 0xff)),
  ]);
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

for (const cipher of ['aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'] as const) {
  for (const [kind, underlay, udpEncap] of [
    ['vxlan', 4, false],
    ['geneve', 6, false],
    ['vxlan', 4, true],
  ] as const) {
    test(`esp ${cipher} ${kind}/IPv${underlay}${udpEncap ? ' in UDP 4500' : ''}: delivered whole, encrypted on the wire`, () => {
      const { net, n1, n2 } = pair(kind, underlay, { cipher, udpEncap });
      const sent = [pkt(100, 1), pkt(1000, 2), pkt(60, 3)];
      n1.pod.send(sent);
      assert.deepEqual(n2.pod.take(), sent);
      assert.equal(n1.under.sent.length, 3);
      for (const [k, f] of n1.under.sent.entries()) {
        const d = dissect(f).layers;
        const ip = d[1]!;
        assert.ok(ip.kind === 'ipv4' || ip.kind === 'ipv6');
        const proto = ip.kind === 'ipv4' ? ip.repr.protocol : ip.repr.nextHeader;
        assert.equal(proto, udpEncap ? 17 : 50, 'ESP or ESP-in-UDP');
        if (udpEncap) assert.ok(d[2]!.kind === 'udp' && d[2]!.repr.dstPort === 4500);
        // Nothing of the inner frame shows: not its MACs, not its payload.
        assert.ok(!contains(f, sent[k]!.subarray(0, 12)) && !contains(f, sent[k]!.subarray(42, 58)), 'inner bytes are not in the clear');
      }
      const p1 = n1.br.tunnel('tun0').sadb!.peers[0]!;
      assert.equal(p1.out!.seqLo, 3, 'sequence numbers 1, 2, 3');
      assertBooks(n1.br);
      assertBooks(n2.br);
      assertPoolFull(net.pool);
    });
  }
}

test('esp: a forged, a replayed and a cleartext tunnel packet are dropped with their reasons; the node carries on', () => {
  const { net, n1, n2 } = pair('vxlan', 4, { cipher: 'chacha20-poly1305' });
  n1.pod.send([pkt(200, 1)]);
  assert.equal(n2.pod.take().length, 1);
  const good = n1.under.sent[0]!;
  // A sequence number not seen yet (so the replay check lets it by), then one flipped ciphertext bit.
  const forged = good.slice();
  forged[34 + 7] = 5;
  forged[forged.length - 30] = forged[forged.length - 30]! ^ 0x40;
  const cleartext = compose([
    eth(0x0800, [], UNDER_MAC[1]!, UNDER_MAC[2]!),
    ip4('192.168.0.1', '192.168.0.2', 17),
    udp(50000, 4789, true),
    { kind: 'vxlan', repr: { vni: 5000 } },
    bytes(pkt(100, 9)),
  ]);
  const b = new PacketBatch();
  for (const f of [forged, good, cleartext]) {
    const p = net.pool.alloc()!;
    p.load(f);
    b.add(p);
  }
  n1.under.transmit(b);
  const port = n2.br.port('tun0');
  assert.deepEqual([drops(port, DropReason.EspAuthFailed), drops(port, DropReason.EspReplay), drops(port, DropReason.EspRequired)], [1, 1, 1]);
  assert.equal(n2.pod.take().length, 0);
  n1.pod.send([pkt(200, 2)]);
  assert.equal(n2.pod.take().length, 1, 'later packets still pass');
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});

test('esp: lifetimes rekey to the next epoch without losing a packet; the old inbound SA retires after its grace', () => {
  const { net, n1, n2 } = pair('geneve', 4, { cipher: 'aes-gcm-128', lifetime: { packets: 3 }, graceNs: 1e9 });
  const sent = Array.from({ length: 10 }, (_, k) => pkt(80, k));
  for (const f of sent) n1.pod.send([f]);
  assert.deepEqual(n2.pod.take(), sent, 'every packet arrives across three rekeys');
  const out = n1.br.tunnel('tun0').sadb!.peers[0]!;
  const inb = n2.br.tunnel('tun0').sadb!.peers[0]!;
  assert.equal(out.rekeys, 3);
  assert.equal(inb.inEpoch, 3, 'the receiver followed');
  const spis = new Set(n1.under.sent.map((f) => ((f[34]! << 24) | (f[35]! << 16) | (f[36]! << 8) | f[37]!) >>> 0));
  assert.equal(spis.size, 4, 'one SPI per epoch');
  assert.notEqual(inb.inOld, null);
  net.clock.t += 2e9;
  n2.br.tick();
  assert.equal(inb.inOld, null, 'the old SA is gone after the grace period');
  assertPoolFull(net.pool);
});

test("esp: the path MTU takes ESP's exact overhead; a packet one byte larger with DF gets ICMP with it", () => {
  const { net, n1, n2 } = pair('vxlan', 4, { cipher: 'aes-gcm-128' });
  const mtu = podMtu(1500, { tunnel: 'vxlan', underlay: 4, esp: { cipher: 'aes-gcm-128' } });
  assert.equal(mtu, 1416);
  assert.equal(n1.br.tunnel('tun0').innerMtu(1500), mtu);
  n1.pod.send([pkt(mtu, 1), pkt(mtu + 1, 2)]);
  assert.equal(n2.pod.take().length, 1);
  assert.ok(n1.under.sent[0]!.length - 14 === 1500, 'the largest fits the underlay exactly');
  const back = dissect(n1.pod.take()[0]!).layers[2]!;
  assert.ok(back.kind === 'icmpv4' && back.repr.kind === 'destUnreachable' && back.repr.nextHopMtu === mtu);
  assertPoolFull(net.pool);
});

test('esp: without DF, a packet too big is ESP-protected, fragmented outside, reassembled and decrypted', () => {
  const { net, n1, n2 } = pair('vxlan', 4, { cipher: 'chacha20-poly1305' });
  const big = pkt(3000, 7, false);
  n1.pod.send([big]);
  assert.deepEqual(n2.pod.take(), [big]);
  assert.ok(n1.under.sent.length >= 3);
  assertBooks(n1.br);
  assertBooks(n2.br);
  assertPoolFull(net.pool);
});

test('esp: trace records show SPI, sequence number and the decision', () => {
  const { net, n1, n2 } = pair('vxlan', 4, { cipher: 'aes-gcm-256' });
  const log = new TraceLog();
  n1.br.trace = log.sink;
  n2.br.trace = log.sink;
  n1.pod.send([pkt(100, 1)], true);
  const spi = n1.br.tunnel('tun0').sadb!.peers[0]!.out!.spi.toString(16);
  const lines = log.records.map((r) => `${r.node} ${r.stage} ${r.action}`);
  assert.ok(lines.includes(`node1 encapsulate vxlan VNI 5000 to 192.168.0.2, ESP SPI 0x${spi} seq 1`), lines.join('\n'));
  assert.ok(lines.includes(`node2 decapsulate vxlan VNI 5000 from 192.168.0.1, ESP SPI 0x${spi} seq 1 authenticated`), lines.join('\n'));
  n2.pod.take();
  assertPoolFull(net.pool);
});

test('esp: explicitly keyed SAs (labs, interop) carry traffic; an SA out of sequence numbers reports EspSaExhausted', () => {
  const net: Net = { pool: new PacketPool({ count: 64, frameCapacity: 2048 }), clock: new VirtualClock() };
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, 1500);
  const a2b = { spi: 0x1001, key: '11'.repeat(16), salt: 'a1a2a3a4' };
  const b2a = { spi: 0x2002, key: '22'.repeat(16), salt: 'b1b2b3b4' };
  const make = (i: 1 | 2, under: TapEnd): Node => {
    const br = newBridge(net, `node${i}`);
    br.addTunnel('tun0', under, {
      kind: 'vxlan',
      mode: 'l2',
      localIp: `192.168.0.${i}`,
      esp: { cipher: 'aes-gcm-128', esn: false, lifetime: { packets: 2 }, freshExplicitKeys: true },
    });
    br.addVtep('tun0', { ip: `192.168.0.${3 - i}`, mac: UNDER_MAC[3 - i]!, vnis: [5000], esp: i === 1 ? { out: a2b, in: b2a } : { out: b2a, in: a2b } });
    br.mapVni('tun0', 5000, 0);
    const pod = new Endpoint(`pod${i}`, net.pool, POD[i]!, 9000);
    br.addPort(`pod${i}`, pod);
    return { br, pod, under };
  };
  const n1 = make(1, u1);
  const n2 = make(2, u2);
  n1.pod.send([pkt(100, 1), pkt(100, 2), pkt(100, 3)]);
  assert.equal(n2.pod.take().length, 2, 'two packets, then the explicit SA is used up (no rekeying for explicit keys)');
  assert.equal(drops(n1.br.port('tun0'), DropReason.EspSaExhausted), 1);
  assert.equal(((u1.sent[0]![34]! << 24) | (u1.sent[0]![35]! << 16) | (u1.sent[0]![36]! << 8) | u1.sent[0]![37]!) >>> 0, 0x1001);
  assertPoolFull(net.pool);
});

test('esp: the path MTU counts Geneve options and ESP together, for each underlay MTU asked', () => {
  const net: Net = { pool: new PacketPool({ count: 8, frameCapacity: 2048 }), clock: new VirtualClock() };
  const br = newBridge(net, 'n');
  const [u] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, 1500);
  br.addTunnel('tun0', u, {
    kind: 'geneve',
    mode: 'l2',
    localIp: 'fd00::1',
    options: [{ class: 1, type: 2, data: new Uint8Array(8) }],
    esp: { cipher: 'chacha20-poly1305', secret: SECRET, udpEncap: true },
  });
  const t = br.tunnel('tun0');
  for (const mtu of [1500, 9000, 1500, 1280]) {
    assert.equal(
      t.innerMtu(mtu),
      podMtu(mtu, { tunnel: 'geneve', underlay: 6, geneveOptionBytes: 12, esp: { cipher: 'chacha20-poly1305', udpEncap: true } }),
      `underlay ${mtu}`,
    );
  }
});

test('esp: the path MTU is not capped like a pod MTU, and an underlay too small for ESP drops instead of throwing', () => {
  const net: Net = { pool: new PacketPool({ count: 16, frameCapacity: 2048 }), clock: new VirtualClock() };
  const make = (mtu: number): { br: Bridge; pod: Endpoint } => {
    const br = newBridge(net, `n${mtu}`);
    const [u] = tapPair(`u${mtu}`, `v${mtu}`, UNDER_MAC[1]!, UNDER_MAC[2]!, mtu);
    // Explicit keys: no peer here to announce itself, and the test is about MTUs.
    br.addTunnel('tun0', u, { kind: 'vxlan', mode: 'l2', localIp: '192.168.0.1', esp: { cipher: 'aes-gcm-128', freshExplicitKeys: true } });
    br.addVtep('tun0', {
      ip: '192.168.0.2',
      mac: UNDER_MAC[2]!,
      vnis: [5000],
      esp: { out: { spi: 0x700, key: '44'.repeat(16), salt: '01020304' }, in: { spi: 0x701, key: '55'.repeat(16), salt: '01020304' } },
    });
    br.mapVni('tun0', 5000, 0);
    const pod = new Endpoint(`pod${mtu}`, net.pool, POD[1]!);
    br.addPort('pod', pod);
    return { br, pod };
  };
  // x + 50 (VXLAN) + 34 (ESP) + padding ≤ 65535 with x + padding a multiple of 4: x = 65448 (65449-65451
  // need 3, 2 or 1 byte of padding and overflow by one) — above the 65,000 pod-MTU cap.
  const big = make(65535);
  assert.equal(big.br.tunnel('tun0').innerMtu(65535), 65448);
  assert.ok(big.br.tunnel('tun0').innerMtu(65535) > 65000);
  // 80 bytes of underlay leave nothing for VXLAN + ESP (84 bytes before any inner byte): with DF the packet
  // is dropped (and told), without it the protected outer packet is fragmented for the underlay.
  const tiny = make(80);
  assert.equal(tiny.br.tunnel('tun0').innerMtu(80), 0);
  assert.doesNotThrow(() => tiny.pod.send([pkt(60, 1, false), pkt(60, 2, true)]));
  const port = tiny.br.port('tun0');
  assert.deepEqual(port.counters.dropsByReason(), { FragNeededDf: 1 });
  assert.equal(tiny.br.tunnel('tun0').mtuStats.fragmented, 1);
  tiny.pod.take();
  assert.equal(net.pool.available, net.pool.size);
});

test('esp: a tunnel refuses a second inbound SA with an SPI it already uses', () => {
  const net: Net = { pool: new PacketPool({ count: 4, frameCapacity: 2048 }), clock: new VirtualClock() };
  const br = newBridge(net, 'n');
  const [u] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, 1500);
  br.addTunnel('tun0', u, { kind: 'vxlan', mode: 'l2', localIp: '192.168.0.1', esp: { cipher: 'aes-gcm-128', freshExplicitKeys: true } });
  // One key per SA (a key shared between directions or peers is refused, lifecycle.test.ts).
  const sa = (spi: number) => ({ spi, key: spi.toString(16).padStart(4, '0').repeat(8), salt: '01020304' });
  br.addVtep('tun0', { ip: '192.168.0.2', mac: UNDER_MAC[2]!, esp: { out: sa(0x500), in: sa(0x600) } });
  assert.throws(
    () => br.addVtep('tun0', { ip: '192.168.0.3', mac: UNDER_MAC[2]!, esp: { out: sa(0x501), in: { ...sa(0x600), key: 'ab'.repeat(16) } } }),
    /inbound SPI 0x600 is already in use/,
  );
  // The refused VTEP left nothing behind: the next one takes its place.
  assert.equal(br.addVtep('tun0', { ip: '192.168.0.3', mac: UNDER_MAC[2]!, esp: { out: sa(0x501), in: sa(0x601) } }), 1);
  assert.equal(br.tunnel('tun0').sadb!.peers.length, 2);
});
