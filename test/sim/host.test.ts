import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Bridge } from '../../src/datapath/bridge.js';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';
import { compose } from '../../src/wire/stack.js';
import { data, eth, ip4 } from '../peers/catalogue.js';
import { Simulator } from '../../src/sim/engine.js';
import { SimHost } from '../../src/sim/host.js';
import { SimLink, type LinkConfig } from '../../src/sim/link.js';
import { assertPoolFull, direct, hosts, MAC_A, MAC_B, type Rig } from './rig.js';
import { dissect } from '../../src/wire/stack.js';

/** Two hosts on one bridge, each plugged straight into a port (or through a SimLink when `link` is given). */
function onBridge(seed = 1, link?: LinkConfig): Rig & { links: SimLink[] } {
  const sim = new Simulator(seed);
  const pool = new PacketPool({ count: 512, frameCapacity: 2048 });
  const br = new Bridge({ name: 'br', pool, clock: sim.clock });
  const [a, b] = hosts(sim, pool);
  const links: SimLink[] = [];
  for (const h of [a, b]) {
    if (link === undefined) br.addPort(h.name, h);
    else {
      const l = new SimLink(sim, pool, link, [`${h.name}-eth0`, `${h.name}-port`]);
      h.connect(l.a);
      br.addPort(h.name, l.b);
      links.push(l);
    }
  }
  return { sim, pool, a, b, links };
}

test('host: ARP resolves the neighbour on a bridge, then ping is answered; both sides learned', () => {
  const r = onBridge();
  const st = r.a.ping({ dst: '10.0.0.2', count: 3, intervalNs: 1e6 });
  r.sim.run();
  assert.deepEqual([st.sent, st.received, st.duplicates, st.lost], [3, 3, 0, 0]);
  // A bridge without links is instantaneous.
  assert.deepEqual(st.rtts, [0, 0, 0]);
  assert.equal(r.a.counters.arpRequestsSent, 1);
  assert.equal(r.b.counters.arpRepliesSent, 1);
  assert.equal(r.b.counters.echoRepliesSent, 3);
  assert.deepEqual(r.a.neighbors(), [{ ip: '10.0.0.2', mac: MAC_B, state: 'reachable' }]);
  // b gleaned a from the request that was for it (RFC 826) and needed no ARP of its own.
  assert.deepEqual(r.b.neighbors(), [{ ip: '10.0.0.1', mac: MAC_A, state: 'reachable' }]);
  assert.equal(r.b.counters.arpRequestsSent, 0);
  assertPoolFull(r.pool);
});

test('host: RTT over links is exactly latency plus serialisation per hop; the first ping pays for ARP', () => {
  const L = 10_000;
  const r = onBridge(1, { latencyNs: L, bandwidthBps: 1e9 });
  const st = r.a.ping({ dst: '10.0.0.2', count: 3, intervalNs: 1e6 });
  r.sim.run();
  // Echo frame: 14 + 20 + 8 + 56 = 98 bytes → 784 ns at 1 Gbit/s; four link crossings per round trip.
  const echo = 4 * (L + 98 * 8);
  // ARP request and reply: 42-byte frames, 336 ns each crossing.
  const arp = 4 * (L + 42 * 8);
  assert.deepEqual(st.rtts, [arp + echo, echo, echo]);
  assert.deepEqual([st.min, st.max, st.p50], [echo, arp + echo, echo]);
  assert.equal(st.avg, (arp + 3 * echo) / 3);
  assertPoolFull(r.pool);
});

test('host: IPv6 ping resolves the neighbour with NS/NA', () => {
  const r = onBridge();
  const st = r.a.ping({ dst: 'fd00::2', count: 2, intervalNs: 1e6, size: 100 });
  r.sim.run();
  assert.deepEqual([st.sent, st.received], [2, 2]);
  assert.equal(r.a.counters.nsSent, 1);
  assert.equal(r.b.counters.naSent, 1);
  assert.equal(r.a.counters.arpRequestsSent, 0);
  assert.deepEqual(r.a.neighbors(), [{ ip: 'fd00::2', mac: MAC_B, state: 'reachable' }]);
  assert.deepEqual(r.b.neighbors(), [{ ip: 'fd00::1', mac: MAC_A, state: 'reachable' }]);
  assertPoolFull(r.pool);
});

test('host: an absent neighbour is solicited three times, then its queued packets are dropped', () => {
  const r = onBridge();
  const st = r.a.ping({ dst: '10.0.0.9', count: 5, intervalNs: 100e6 });
  r.sim.run(0.5e9);
  // Five requests while the first solicitation waits, a queue of three: the two oldest are pushed out.
  assert.equal(r.a.counters.neighDrops, 2);
  r.sim.run();
  assert.equal(st.sent, 5);
  assert.equal(st.received, 0);
  assert.equal(r.a.counters.arpRequestsSent, 3);
  // Then the three queued are dropped when resolution fails.
  assert.equal(r.a.counters.neighDrops, 5);
  assert.equal(r.a.neighbors()[0]!.state, 'failed');
  // Off-link without a gateway: no route.
  r.a.ping({ dst: '10.1.0.1' });
  r.sim.run();
  assert.equal(r.a.counters.noRoute, 1);
  assertPoolFull(r.pool);
});

/** Two bridges, one host each, a VXLAN l2 tunnel over a SimLink with a 1500-byte underlay. */
function tunnelled(): Rig {
  const sim = new Simulator(3);
  const pool = new PacketPool({ count: 512, frameCapacity: 9216 });
  const link = new SimLink(sim, pool, { latencyNs: 100_000, bandwidthBps: 1e9 }, undefined, [0x0e0000000001, 0x0e0000000002]);
  const [a, b] = hosts(sim, pool);
  [a, b].forEach((h, k) => {
    const i = k + 1;
    const br = new Bridge({ name: `node${i}`, pool, clock: sim.clock });
    br.addTunnel('tun0', i === 1 ? link.a : link.b, { kind: 'vxlan', mode: 'l2', localIp: `192.168.0.${i}` });
    br.addVtep('tun0', { ip: `192.168.0.${3 - i}`, mac: 0x0e0000000000 + 3 - i, vnis: [1] });
    br.mapVni('tun0', 1, 0);
    br.addPort('pod', h);
  });
  return { sim, pool, a, b };
}

test('host: ping with DF through a tunnel too small gets frag-needed, lowers the PMTU and then reports "too big"', () => {
  const r = tunnelled();
  // 1440 bytes of data: a 1468-byte IP packet, above the tunnel's inner MTU of 1450.
  const st = r.a.ping({ dst: '10.0.0.2', count: 4, intervalNs: 10e6, size: 1440, df: true });
  r.sim.run();
  assert.deepEqual([st.sent, st.received, st.errors, st.tooBig], [1, 0, 1, 3]);
  assert.equal(r.a.pathMtu('10.0.0.2'), 1450);
  assert.equal(r.a.counters.pmtuUpdates, 1);
  // At the PMTU it passes; a non-DF ping is not held to the PMTU (the tunnel fragments its outer packet).
  const ok = r.a.ping({ dst: '10.0.0.2', count: 2, intervalNs: 10e6, size: 1422, df: true });
  r.sim.run();
  assert.deepEqual([ok.sent, ok.received, ok.tooBig], [2, 2, 0]);
  // Over the tunnel: 2 × (100 µs + serialisation of the 1450 + 14 + 50-byte outer frame).
  assert.equal(ok.rtts[1], 2 * (100_000 + (1450 + 14 + 50) * 8));
  const nodf = r.a.ping({ dst: '10.0.0.2', size: 1440 });
  r.sim.run();
  assert.deepEqual([nodf.sent, nodf.tooBig, nodf.received], [1, 0, 1]);
  assertPoolFull(r.pool);
});

test('host: IPv6 ping through the tunnel gets Packet Too Big and then reports "too big"', () => {
  const r = tunnelled();
  const st = r.a.ping({ dst: 'fd00::2', count: 3, intervalNs: 10e6, size: 1420 });
  r.sim.run();
  // 1420 + 8 + 40 = 1468 > 1450.
  assert.deepEqual([st.sent, st.received, st.errors, st.tooBig], [1, 0, 1, 2]);
  assert.equal(r.a.pathMtu('fd00::2'), 1450);
  assertPoolFull(r.pool);
});

test('host: a constant-rate UDP flow on a clean link arrives whole, each packet latency + serialisation late', () => {
  const L = 50_000;
  const r = direct({ latencyNs: L, bandwidthBps: 1e9 });
  const sink = r.b.udpSink(5001);
  const f = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 5001, ratePps: 10_000, sizes: 200, count: 1000 });
  r.sim.run();
  assert.equal(f.stats.sent, 1000);
  const rep = sink.report(f.flowId, f.stats.sent);
  assert.deepEqual([rep.received, rep.lost, rep.duplicates, rep.reordered], [1000, 0, 0, 0]);
  const oneWay = L + (200 + 14) * 8;
  assert.deepEqual([rep.latencyMin, rep.latencyP50, rep.latencyP99, rep.latencyMax], [oneWay, oneWay, oneWay, oneWay]);
  assert.equal(rep.goodputBytes, 1000 * (200 - 28));
  // 1000 packets at 10 kpps: the last leaves at 99.9 ms.
  assert.equal(r.sim.now, 999 * 100_000 + oneWay);
  assertPoolFull(r.pool);
});

test('host: UDP over IPv6 with ND, and a flow limited by duration at a bit rate', () => {
  const r = onBridge();
  const sink = r.b.udpSink(7000);
  // 1000-byte packets at 8 Mbit/s: one per ms; 10 ms → 10 packets.
  const f = r.a.udpFlow({ dst: 'fd00::2', dstPort: 7000, rateBps: 8e6, sizes: 1000, durationNs: 10e6 });
  r.sim.run();
  assert.equal(f.stats.sent, 10);
  const rep = sink.report(f.flowId, f.stats.sent);
  assert.deepEqual([rep.received, rep.lost, rep.goodputBytes], [10, 0, 10 * (1000 - 48)]);
  assert.equal(r.b.counters.rxBad, 0);
  assertPoolFull(r.pool);
});

test('host: UDP loss on a lossy link is near its rate; lost counted by sequence against the sender', () => {
  const r = direct({ latencyNs: 1000, loss: 0.1 }, 21);
  const sink = r.b.udpSink(5001);
  const n = 5000;
  const f = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 5001, ratePps: 1e6, sizes: 100, count: n });
  r.sim.run();
  const rep = sink.report(f.flowId, f.stats.sent);
  assert.equal(rep.lost, r.link.a.stats.droppedLoss);
  // Binomial(5000, 0.1): sd ≈ 21; 5 sd.
  assert.ok(Math.abs(rep.lost - 500) < 106, `lost ${rep.lost}`);
  assert.equal(rep.received + rep.lost, n);
  assertPoolFull(r.pool);
});

test('host: duplicated and reordered datagrams are counted as such', () => {
  const r = direct({ latencyNs: 10_000, duplicate: 0.05, reorder: { probability: 0.05, delayNs: 30_000 } }, 8);
  const sink = r.b.udpSink(5001);
  const f = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 5001, ratePps: 1e5, sizes: 100, count: 2000 });
  r.sim.run();
  const rep = sink.report(f.flowId, f.stats.sent);
  assert.equal(rep.duplicates, r.link.a.stats.duplicated);
  assert.ok(rep.duplicates > 50);
  assert.equal(rep.received, 2000);
  assert.equal(rep.lost, 0);
  assert.ok(rep.reordered > 50 && rep.reordered <= r.link.a.stats.reordered, `reordered ${rep.reordered} of ${r.link.a.stats.reordered} held back`);
  assertPoolFull(r.pool);
});

test('host: IMIX sizes come 7:4:1 of 64/576/1500 within bounds, and the sink gets them all', () => {
  const r = onBridge(4);
  const sink = r.b.udpSink(9);
  const n = 12_000;
  const f = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 9, ratePps: 1e6, sizes: 'imix', count: n });
  r.sim.run();
  const s = f.stats.sizes;
  assert.deepEqual(
    Object.keys(s)
      .map(Number)
      .sort((x, y) => x - y),
    [64, 576, 1500],
  );
  const near = (k: number, p: number): void => {
    const sd = Math.sqrt(n * p * (1 - p));
    assert.ok(Math.abs(s[k]! - n * p) < 5 * sd, `size ${k}: ${s[k]} vs ${n * p}`);
  };
  near(64, 7 / 12);
  near(576, 4 / 12);
  near(1500, 1 / 12);
  const rep = sink.report(f.flowId, f.stats.sent);
  assert.equal(rep.received, n);
  assert.equal(rep.goodputBytes, f.stats.sentBytes - 28 * n);
  // Weighted sizes: only the listed ones, in proportion.
  const g = r.a.udpFlow({
    dst: '10.0.0.2',
    dstPort: 9,
    ratePps: 1e6,
    sizes: [
      { size: 100, weight: 1 },
      { size: 200, weight: 3 },
    ],
    count: 4000,
  });
  r.sim.run();
  assert.ok(Math.abs(g.stats.sizes[200]! - 3000) < 5 * Math.sqrt(4000 * 0.75 * 0.25), JSON.stringify(g.stats.sizes));
  assert.throws(() => r.a.udpFlow({ dst: '10.0.0.2', dstPort: 9, ratePps: 1, sizes: 40, count: 1 }), /size 40/);
  assertPoolFull(r.pool);
});

test('host: the same seed gives the same stats; another seed other stats', () => {
  const run = (seed: number): string => {
    const r = onBridge(seed, {
      latencyNs: 20_000,
      jitterNs: 5_000,
      bandwidthBps: 1e8,
      loss: 0.05,
      reorder: { probability: 0.05, delayNs: 50_000 },
      duplicate: 0.02,
    });
    const sink = r.b.udpSink(5001);
    const st = r.a.ping({ dst: '10.0.0.2', count: 50, intervalNs: 1e6 });
    const f = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 5001, ratePps: 20_000, sizes: 'imix', count: 500 });
    r.sim.run();
    return JSON.stringify({ ping: st, flow: f.stats, sink: sink.report(f.flowId, f.stats.sent) });
  };
  assert.equal(run(42), run(42));
  assert.notEqual(run(42), run(43));
});

test('host: every frame on the wire dissects cleanly with good checksums; NA carries S, O and the target MAC', () => {
  const r = direct({ latencyNs: 1000 }, 1, { resolve: true });
  const frames: Uint8Array[] = [];
  for (const [h, end] of [
    [r.a, r.link.a],
    [r.b, r.link.b],
  ] as const) {
    h.setReceiver((batch) => {
      for (let i = 0; i < batch.length; i++) frames.push(batch.get(i).bytes().slice());
      end.transmit(batch);
    });
  }
  r.b.udpSink(53);
  r.a.ping({ dst: '10.0.0.2' });
  r.a.ping({ dst: 'fd00::2', size: 10 });
  r.a.udpFlow({ dst: '10.0.0.2', dstPort: 53, ratePps: 1000, sizes: 64, count: 1 });
  r.a.udpFlow({ dst: 'fd00::2', dstPort: 53, ratePps: 1000, sizes: 80, count: 1 });
  r.sim.run();
  const kinds = frames.map((f) => {
    const d = dissect(f);
    assert.equal(d.drop, null);
    for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${l.kind} checksum`);
    const last = d.layers.filter((l) => l.kind !== 'data').at(-1)!;
    if (last.kind === 'icmpv6' && last.repr.kind === 'neighborAdvert') {
      assert.deepEqual([last.repr.solicited, last.repr.override, last.repr.router, last.repr.targetLinkAddr], [true, true, false, MAC_B]);
    }
    if (last.kind === 'icmpv6' && last.repr.kind === 'neighborSolicit') assert.equal(last.repr.sourceLinkAddr, MAC_A);
    if (last.kind === 'ipv4' || last.kind === 'ipv6') return last.kind;
    return last.kind === 'icmpv4' || last.kind === 'icmpv6' ? `${last.kind}:${last.repr.kind}` : last.kind === 'arp' ? `arp:${last.repr.operation}` : last.kind;
  });
  assert.deepEqual(kinds.sort(), [
    'arp:1',
    'arp:2',
    'icmpv4:echoReply',
    'icmpv4:echoRequest',
    'icmpv6:echoReply',
    'icmpv6:echoRequest',
    'icmpv6:neighborAdvert',
    'icmpv6:neighborSolicit',
    'udp',
    'udp',
  ]);
  assertPoolFull(r.pool);
});

test('host: pods on two nodes routed through their gateways over a VXLAN underlay link; DF too big learns the PMTU from the gateway', () => {
  const sim = new Simulator(6);
  const pool = new PacketPool({ count: 512, frameCapacity: 9216 });
  const L = 100_000;
  const link = new SimLink(sim, pool, { latencyNs: L, bandwidthBps: 1e9 }, undefined, [0x0e0000000001, 0x0e0000000002]);
  const pods = ([1, 2] as const).map((i) => {
    const j = 3 - i;
    const br = new Bridge({ name: `node${i}`, pool, clock: sim.clock });
    br.addGateway({ name: 'gw0', mac: 0x02aa00000000 + i, ipv4: `10.244.${i}.1/24` });
    br.addTunnel('tun0', i === 1 ? link.a : link.b, { kind: 'vxlan', mode: 'routed', localIp: `192.168.0.${i}` });
    br.addVtep('tun0', { ip: `192.168.0.${j}`, mac: 0x0e0000000000 + j });
    br.addRoute(`10.244.${j}.0/24`, { tunnel: 'tun0', vtep: `192.168.0.${j}` });
    const h = new SimHost(sim, pool, { name: `pod${i}`, mac: 0x020000000000 + i, ipv4: `10.244.${i}.5/24`, gateway4: `10.244.${i}.1` });
    br.addPort('eth0', h);
    br.addNeighbor(`10.244.${i}.5`, h.mac);
    return h;
  });
  const [a, b] = [pods[0]!, pods[1]!];
  const st = a.ping({ dst: '10.244.2.5', count: 3, intervalNs: 1e6 });
  sim.run();
  assert.deepEqual([st.sent, st.received], [3, 3]);
  // Off-link: the only neighbour a host needs is its gateway.
  assert.deepEqual(
    a.neighbors().map((n) => n.ip),
    ['10.244.1.1'],
  );
  assert.deepEqual(
    b.neighbors().map((n) => n.ip),
    ['10.244.2.1'],
  );
  // 98-byte echo frames + 50 bytes of VXLAN over IPv4, once each way over the link.
  assert.equal(st.rtts[2], 2 * (L + (98 + 50) * 8));
  const big = a.ping({ dst: '10.244.2.5', count: 3, intervalNs: 1e6, size: 1430, df: true });
  sim.run();
  assert.deepEqual([big.sent, big.received, big.errors, big.tooBig], [1, 0, 1, 2]);
  assert.equal(a.pathMtu('10.244.2.5'), 1450);
  assert.equal(a.pathMtu('10.244.1.1'), 1500);
  assert.equal(pool.available, pool.size);
});

test('host: property — on a clean link every datagram arrives once, in order, latency + its own serialisation late', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1e6 }),
      fc.integer({ min: 1, max: 60 }),
      fc.uniqueArray(fc.integer({ min: 44, max: 1500 }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 0, max: 200_000 }),
      (seed, count, sizes, L) => {
        // 1 Gbit/s and 1000 pps: a 1514-byte frame takes 12 µs, far less than the 1 ms gap, so nothing queues.
        const r = direct({ latencyNs: L, bandwidthBps: 1e9 }, seed);
        const sink = r.b.udpSink(4000);
        const f = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 4000, ratePps: 1000, sizes, count });
        r.sim.run();
        const rep = sink.report(f.flowId, f.stats.sent);
        const lo = L + (Math.min(...sizes) + 14) * 8;
        const hi = L + (Math.max(...sizes) + 14) * 8;
        return (
          f.stats.sent === count &&
          rep.received === count &&
          rep.lost === 0 &&
          rep.reordered === 0 &&
          rep.duplicates === 0 &&
          rep.latencyMin >= lo &&
          rep.latencyMax <= hi &&
          rep.goodputBytes === f.stats.sentBytes - 28 * count &&
          r.pool.available === r.pool.size
        );
      },
    ),
    { numRuns: 40 },
  );
});

test('host: a ping of more than 65,536 requests answers each one once (the wire holds 16 bits of sequence), and its books stay bounded', () => {
  const r = direct({ latencyNs: 1000 });
  const count = 70_000;
  const st = r.a.ping({ dst: '10.0.0.2', count, intervalNs: 10_000 });
  r.sim.run();
  assert.deepEqual([st.sent, st.received, st.duplicates, st.late], [count, count, 0, 0]);
  assert.equal(st.rttBySeq.length, 65_536, 'one slot per wire sequence number');
  assertPoolFull(r.pool);
});

test('host: while the carrier is down nothing is sent; pings in that time are lost, later ones answered', () => {
  const r = direct({ latencyNs: 1000 });
  r.link.fault(1.5e6, 3.5e6);
  const st = r.a.ping({ dst: '10.0.0.2', count: 5, intervalNs: 1e6 });
  r.sim.run();
  // Requests at 0, 1, 2, 3, 4 ms: those at 2 and 3 ms meet a dead carrier.
  assert.deepEqual([st.sent, st.received], [5, 3]);
  assert.deepEqual(
    st.rttBySeq.map((x) => !Number.isNaN(x)),
    [true, true, false, false, true],
  );
  assert.equal(r.link.a.stats.sent, 3, 'the host sent nothing into the dead link');
  assertPoolFull(r.pool);
});

/** Hands frames to the host as if they came off its wire. */
function deliver(h: SimHost, pool: PacketPool, frames: readonly Uint8Array[]): void {
  const batch = new PacketBatch(frames.length);
  for (const f of frames) {
    const p = pool.alloc()!;
    p.load(f);
    batch.add(p);
  }
  h.transmit(batch);
}

const udpFragment = (moreFrags: boolean, fragOffset: number, bytes: number): Uint8Array =>
  compose([eth(0x0800, [], MAC_A, MAC_B), ip4('10.0.0.1', '10.0.0.2', 17, { ident: 77, dontFrag: false, moreFrags, fragOffset }), data('x'.repeat(bytes))]);

test('host: fragment drops are counted once each — the refused fragment and the held ones an overlap discards', () => {
  const r = direct({});
  deliver(r.b, r.pool, [udpFragment(true, 0, 800)]);
  assert.equal(r.b.counters.fragmentDrops, 0, 'held');
  // Overlaps the first: RFC 5722 discards the whole datagram, the held fragment with it.
  deliver(r.b, r.pool, [udpFragment(true, 400, 800)]);
  assert.equal(r.b.counters.fragmentDrops, 2);
  assert.equal(r.b.counters.reassembled, 0);
  assertPoolFull(r.pool);
});

test('host: a reply too big for its MTU with DF is counted as unsendable, not as a buffer shortage', () => {
  const r = direct({}, 1, { b: { mtu: 1500 } });
  // A 2000-byte DF echo request (the sender's link is bigger): the reply keeps DF and cannot leave.
  const req = compose([
    eth(0x0800, [], MAC_A, MAC_B),
    ip4('10.0.0.1', '10.0.0.2', 1, { dontFrag: true }),
    { kind: 'icmpv4', repr: { kind: 'echoRequest', ident: 1, seq: 1, data: new Uint8Array(2000 - 28) } },
  ]);
  deliver(r.b, r.pool, [req]);
  assert.equal(r.b.counters.unsendable, 1);
  assert.equal(r.b.counters.poolEmpty, 0);
  assertPoolFull(r.pool);
});

test('host: with no buffer free a datagram is not counted as sent, but as noBuffer (and poolEmpty)', () => {
  const r = direct({ latencyNs: 1000 });
  const sink = r.b.udpSink(9);
  const held = [];
  for (let p = r.pool.alloc(); p !== null; p = r.pool.alloc()) held.push(p);
  const f = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 9, ratePps: 1000, sizes: 100, count: 5 });
  r.sim.run(10e6);
  assert.deepEqual([f.stats.sent, f.stats.noBuffer, f.stats.tooBig], [0, 5, 0]);
  assert.equal(r.a.counters.poolEmpty, 5);
  for (const p of held) p.release();
  const g = r.a.udpFlow({ dst: '10.0.0.2', dstPort: 9, ratePps: 1000, sizes: 100, count: 5 });
  r.sim.run(20e6);
  assert.equal(g.stats.sent, 5);
  assert.equal(sink.report(g.flowId, 5).received, 5);
});

test('host: answerNeighbors false — asked by ARP or ND for its address it stays silent, but learns the asker either way', () => {
  for (const dst of ['10.0.0.2', 'fd00::2']) {
    const r = direct({ latencyNs: 1000 }, 1, { resolve: true, b: { answerNeighbors: false } });
    const st = r.a.ping({ dst, count: 1 });
    r.sim.run(5e9);
    assert.equal(st.received, 0, `${dst}: nobody answered for it`);
    assert.equal(r.b.counters.arpRepliesSent + r.b.counters.naSent, 0);
    const asker = dst.includes(':') ? 'fd00::1' : '10.0.0.1';
    assert.ok(
      r.b.neighbors().some((n) => n.ip === asker && n.mac === MAC_A),
      `${dst}: b learned ${asker}`,
    );
  }
});
