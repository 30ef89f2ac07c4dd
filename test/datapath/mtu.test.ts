/**
 * MTU handling on the datapath: packets too big for a tunnel's path (ICMP frag-needed and Packet Too Big
 * back to the sender, or fragmentation by policy, or a silent black hole), outer fragments reassembled
 * before decapsulation, TCP MSS clamping in and out of tunnels — with the books balanced and every buffer
 * back in the pool.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Bridge } from '../../src/datapath/bridge.js';
import type { TunnelConfig } from '../../src/overlay/tunnel.js';
import { tunnelOverhead } from '../../src/mtu/overhead.js';
import { PacketPool } from '../../src/packet/buf.js';
import { ipv4FromString } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import type { GeneveOption } from '../../src/wire/geneve.js';
import { compose, dissect, type Dissected, type Layer } from '../../src/wire/stack.js';
import { TraceLog } from '../../src/datapath/trace.js';
import { Endpoint } from '../../src/datapath/device.js';
import { data, eth, ip4, ip6, tcp, udp } from '../peers/catalogue.js';
import { addHost, assertBooks, assertPoolFull, drops, hostMac, newBridge, tapPair, VirtualClock, type Host, type Net, type TapEnd } from './topology.js';

const UNDER_MAC = [0, 0x0e0000000001, 0x0e0000000002];
const POD = [0, hostMac(0x105), hostMac(0x205)];
const GW = [0, 0x02aa00000001, 0x02aa00000002];

interface Node {
  br: Bridge;
  pod: Host;
  under: TapEnd;
}
interface Pair {
  net: Net;
  n1: Node;
  n2: Node;
}

type TunnelExtra = Partial<Pick<TunnelConfig, 'icmpTooBig' | 'icmpRate' | 'fragmentPolicy' | 'mssClamp' | 'dontFrag' | 'options' | 'knownOptions'>>;

/** Two nodes, one pod each, an l2 tunnel (VNI 5000 = segment 0) over an underlay of `mtu` bytes. */
function l2Pair(kind: 'vxlan' | 'geneve', underlay: 4 | 6, mtu: number, extra: TunnelExtra = {}, gateway = false): Pair {
  const net: Net = { pool: new PacketPool({ count: 512, frameCapacity: 9216 }), clock: new VirtualClock() };
  const ip: [string, string] = underlay === 4 ? ['192.168.0.1', '192.168.0.2'] : ['fd00:ff::1', 'fd00:ff::2'];
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, mtu);
  const make = (i: 1 | 2, under: TapEnd): Node => {
    const br = newBridge(net, `node${i}`);
    if (gateway) br.addGateway({ name: 'gw0', mac: GW[i]!, ipv4: `10.0.0.${250 + i}/24`, ipv6: `fd00::${250 + i}/64` });
    br.addTunnel('tun0', under, { kind, mode: 'l2', localIp: ip[i - 1]!, ...extra });
    br.addVtep('tun0', { ip: ip[2 - i]!, mac: UNDER_MAC[3 - i]!, vnis: [5000] });
    br.mapVni('tun0', 5000, 0);
    // Pods with jumbo interfaces, so what reaches node 2 is delivered whatever its size.
    const ep = new Endpoint(`pod${i}`, net.pool, POD[i]!, 9000);
    const pod: Host = { name: `pod${i}`, mac: POD[i]!, ep, port: br.addPort(`pod${i}`, ep), bridge: br, cfg: {} };
    return { br, pod, under };
  };
  const n1 = make(1, u1);
  const n2 = make(2, u2);
  // Each bridge learns where the other's pod lives (a frame each way, small enough to pass).
  n1.pod.ep.send([udp4(100, false)]);
  n2.pod.ep.send([compose([eth(0x0800, [], POD[2]!, POD[1]!), ip4('10.0.0.2', '10.0.0.1', 17), udp(9, 9), data('hi')])]);
  n1.pod.ep.take();
  n2.pod.ep.take();
  return { net, n1, n2 };
}

/** An IPv4 UDP packet from pod 1 to pod 2, `ipLen` bytes of IP, DF as given. */
const bytes = (b: Uint8Array): Layer => ({ kind: 'data', bytes: b });

function udp4(ipLen: number, df: boolean, ident = 7): Uint8Array {
  return compose([
    eth(0x0800, [], POD[1]!, POD[2]!),
    ip4('10.0.0.1', '10.0.0.2', 17, { dontFrag: df, ident }),
    udp(5000, 6000),
    bytes(new Uint8Array(ipLen - 28).fill(0x5a)),
  ]);
}

function udp6(ipLen: number): Uint8Array {
  return compose([eth(0x86dd, [], POD[1]!, POD[2]!), ip6('fd00::1', 'fd00::2', 17), udp(5000, 6000), bytes(new Uint8Array(ipLen - 48).fill(0x6b))]);
}

function only<K extends Dissected['kind']>(l: Dissected | undefined, kind: K): Extract<Dissected, { kind: K }> {
  assert.ok(l !== undefined && l.kind === kind, `expected a ${kind} layer, got ${l?.kind}`);
  return l as Extract<Dissected, { kind: K }>;
}

function finish(p: Pair): void {
  for (const n of [p.n1, p.n2]) {
    n.pod.ep.take();
    assertBooks(n.br);
  }
  assertPoolFull(p.net.pool);
}

for (const kind of ['vxlan', 'geneve'] as const) {
  for (const underlay of [4, 6] as const) {
    const overhead = tunnelOverhead({ tunnel: kind, underlay });
    const pmtu = 1500 - overhead;

    test(`mtu ${kind}/IPv${underlay}: the tunnel's path MTU is the overhead function's pod MTU (${pmtu})`, () => {
      const p = l2Pair(kind, underlay, 1500);
      assert.equal(p.n1.br.tunnel('tun0').innerMtu(1500), pmtu);
      // Exactly the path MTU passes, whole.
      p.n1.pod.ep.send([udp4(pmtu, true)]);
      const got = p.n2.pod.ep.take();
      assert.equal(got.length, 1);
      assert.deepEqual(got[0], udp4(pmtu, true));
      finish(p);
    });

    test(`mtu ${kind}/IPv${underlay}: IPv4 with DF one byte too big is dropped and its sender gets ICMP frag-needed with MTU ${pmtu}`, () => {
      const p = l2Pair(kind, underlay, 1500);
      const log = new TraceLog();
      p.n1.br.trace = log.sink;
      const big = udp4(pmtu + 1, true);
      p.n1.pod.ep.send([big], true);
      assert.equal(p.n2.pod.ep.take().length, 0, 'nothing crosses');
      const back = p.n1.pod.ep.take();
      assert.equal(back.length, 1, 'one ICMP message back');
      const [e, ip, icmp] = dissect(back[0]!).layers;
      // No gateway: it comes from the address and MAC the packet was sent to.
      assert.deepEqual([only(e, 'eth').repr.dst, only(e, 'eth').repr.src], [POD[1], POD[2]]);
      const i = only(ip, 'ipv4');
      assert.deepEqual([i.repr.src, i.repr.dst], [ipv4FromString('10.0.0.2'), ipv4FromString('10.0.0.1')]);
      const m = only(icmp, 'icmpv4');
      assert.equal(m.checksumOk, true);
      const r = m.repr;
      assert.ok(r.kind === 'destUnreachable', r.kind);
      assert.deepEqual([r.code, r.nextHopMtu], [4, pmtu]);
      // The quote starts with the original IP header.
      assert.deepEqual([...r.data.subarray(0, 28)], [...big.subarray(14, 42)]);
      assert.equal(drops(p.n1.br.port('tun0'), DropReason.FragNeededDf), 1);
      assert.equal(p.n1.br.tunnel('tun0').mtuStats.icmpSent, 1);
      assert.ok(
        log.records.some((r) => r.stage === 'encapsulate' && r.action === `dropped: exceeds MTU ${pmtu}, ICMP frag-needed sent (MTU ${pmtu})`),
        log.records.map((r) => r.action).join('\n'),
      );
      finish(p);
    });

    test(`mtu ${kind}/IPv${underlay}: IPv6 too big gets ICMPv6 Packet Too Big (${pmtu}), never below 1280`, () => {
      const p = l2Pair(kind, underlay, 1500);
      p.n1.pod.ep.send([udp6(pmtu + 1)]);
      const back = p.n1.pod.ep.take();
      assert.equal(back.length, 1);
      const m = only(dissect(back[0]!).layers[2], 'icmpv6');
      assert.equal(m.checksumOk, true);
      assert.ok(m.repr.kind === 'packetTooBig' && m.repr.mtu === pmtu);
      assert.equal(drops(p.n1.br.port('tun0'), DropReason.PacketTooBigV6), 1);
      finish(p);
      // A path narrower than IPv6's minimum still announces 1280 (RFC 8201).
      const q = l2Pair(kind, underlay, 1300);
      q.n1.pod.ep.send([udp6(1290)]);
      const m2 = only(dissect(q.n1.pod.ep.take()[0]!).layers[2], 'icmpv6');
      assert.ok(m2.repr.kind === 'packetTooBig' && m2.repr.mtu === 1280);
      finish(q);
    });

    test(`mtu ${kind}/IPv${underlay}: IPv4 without DF is fragmented — outer (default), inner, or dropped by policy`, () => {
      for (const policy of ['outer', 'inner', 'drop'] as const) {
        const p = l2Pair(kind, underlay, 1500, { fragmentPolicy: policy });
        const big = udp4(4000, false, 0x1234);
        p.n1.pod.ep.send([big]);
        const got = p.n2.pod.ep.take();
        const st1 = p.n1.br.tunnel('tun0').mtuStats;
        const st2 = p.n2.br.tunnel('tun0').mtuStats;
        if (policy === 'outer') {
          assert.equal(got.length, 1, 'reassembled on node 2 and delivered whole');
          assert.deepEqual(got[0], big);
          assert.ok(p.n1.under.sent.length >= 3 && p.n1.under.sent.every((f) => f.length - 14 <= 1500), 'outer fragments fit the underlay');
          assert.deepEqual([st1.fragmented, st2.reassembled], [1, 1]);
        } else if (policy === 'inner') {
          assert.ok(got.length >= 3, `${got.length} inner fragments`);
          let bytes = 0;
          for (const f of got) {
            const i = only(dissect(f).layers[1], 'ipv4');
            assert.equal(i.checksumOk, true);
            assert.equal(i.repr.ident, 0x1234);
            assert.ok(f.length - 14 <= pmtu);
            bytes += f.length - 14 - 20;
          }
          assert.equal(bytes, 4000 - 20, 'the pieces carry the whole payload');
          assert.equal(st2.reassembled, 0, 'the outer packets were whole');
        } else {
          assert.equal(got.length, 0);
          assert.equal(drops(p.n1.br.port('tun0'), DropReason.TooBigPolicyDrop), 1);
        }
        assert.equal(p.n1.pod.ep.take().length, 0, 'no ICMP for a packet without DF');
        finish(p);
      }
    });
  }
}

test('mtu: with ICMP suppressed a too-big DF packet vanishes — the PMTU black hole', () => {
  const p = l2Pair('vxlan', 4, 1500, { icmpTooBig: false });
  p.n1.pod.ep.send([udp4(1451, true), udp4(1451, true)]);
  assert.equal(p.n1.pod.ep.take().length, 0);
  assert.equal(p.n2.pod.ep.take().length, 0);
  const t = p.n1.br.tunnel('tun0');
  assert.deepEqual([t.mtuStats.icmpSent, t.mtuStats.icmpSuppressed], [0, 2]);
  assert.equal(drops(p.n1.br.port('tun0'), DropReason.FragNeededDf), 2);
  finish(p);
});

test('mtu: by default 50 ICMP too-big messages may go at once, then 100 a second', () => {
  const p = l2Pair('vxlan', 4, 1500);
  assert.deepEqual(p.n1.br.tunnel('tun0').icmpRate, { perSecond: 100, burst: 50 });
  p.n1.pod.ep.send(Array.from({ length: 60 }, () => udp4(1451, true)));
  assert.equal(p.n1.pod.ep.take().length, 50);
  p.net.clock.t += 100e6; // 0.1 s: 10 tokens
  p.n1.pod.ep.send(Array.from({ length: 20 }, () => udp4(1451, true)));
  assert.equal(p.n1.pod.ep.take().length, 10);
  finish(p);
});

test('mtu: ICMP too-big messages are rate-limited per tunnel port (burst, then the refill rate)', () => {
  const p = l2Pair('vxlan', 4, 1500, { icmpRate: { perSecond: 10, burst: 5 } });
  const t = p.n1.br.tunnel('tun0');
  const burst = Array.from({ length: 20 }, () => udp4(1451, true));
  p.n1.pod.ep.send(burst);
  assert.equal(p.n1.pod.ep.take().length, 5);
  assert.deepEqual([t.mtuStats.icmpSent, t.mtuStats.icmpRateLimited], [5, 15]);
  p.net.clock.t += 500e6; // half a second: 5 tokens
  p.n1.pod.ep.send(burst.slice(0, 10));
  assert.equal(p.n1.pod.ep.take().length, 5);
  finish(p);
});

test('mtu: with a gateway, ICMP comes from the gateway; routed traffic gets it routed back to the pod', () => {
  const p = l2Pair('geneve', 4, 1500, {}, true);
  p.n1.pod.ep.send([udp4(1451, true)]);
  const [e, ip] = dissect(p.n1.pod.ep.take()[0]!).layers;
  assert.equal(only(e, 'eth').repr.src, GW[1]);
  assert.equal(only(ip, 'ipv4').repr.src, ipv4FromString('10.0.0.251'));
  finish(p);
});

test('mtu: routed pods — a too-big DF packet routed to a remote node comes back as ICMP from the gateway, routed to the pod', () => {
  const net: Net = { pool: new PacketPool({ count: 256, frameCapacity: 9216 }), clock: new VirtualClock() };
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, 1500);
  const nodes = ([1, 2] as const).map((i) => {
    const j = 3 - i;
    const br = newBridge(net, `node${i}`);
    br.addGateway({ name: 'gw0', mac: GW[i]!, ipv4: `10.244.${i}.1/24` });
    br.addTunnel('tun0', i === 1 ? u1 : u2, { kind: 'vxlan', mode: 'routed', localIp: `192.168.0.${i}` });
    br.addVtep('tun0', { ip: `192.168.0.${j}`, mac: UNDER_MAC[j]! });
    br.addRoute(`10.244.${j}.0/24`, { tunnel: 'tun0', vtep: `192.168.0.${j}` });
    const pod = addHost(br, net, `pod${i}`, POD[i]!);
    br.addNeighbor(`10.244.${i}.5`, POD[i]!);
    return { br, pod };
  });
  const [a, b] = [nodes[0]!, nodes[1]!];
  const big = compose([eth(0x0800, [], POD[1]!, GW[1]!), ip4('10.244.1.5', '10.244.2.5', 17, { dontFrag: true }), udp(1, 2), bytes(new Uint8Array(1451 - 28))]);
  a.pod.ep.send([big]);
  assert.equal(b.pod.ep.take().length, 0);
  const back = a.pod.ep.take();
  assert.equal(back.length, 1);
  const [e, ip, icmp] = dissect(back[0]!).layers;
  assert.deepEqual([only(e, 'eth').repr.dst, only(e, 'eth').repr.src], [POD[1], GW[1]]);
  const i = only(ip, 'ipv4');
  assert.deepEqual([i.repr.src, i.repr.dst], [ipv4FromString('10.244.1.1'), ipv4FromString('10.244.1.5')]);
  const m = only(icmp, 'icmpv4');
  assert.ok(m.repr.kind === 'destUnreachable' && m.repr.code === 4 && m.repr.nextHopMtu === 1450);
  for (const n of nodes) assertBooks(n.br);
  assertPoolFull(net.pool);
});

function syn(mss: number, family: 4 | 6, flags = 0x02, more: Layer[] = []): Uint8Array {
  const t = tcp(40000, 80, flags, [{ kind: 'nop' }, { kind: 'mss', value: mss }, { kind: 'wscale', shift: 7 }]);
  return family === 4
    ? compose([eth(0x0800, [], POD[1]!, POD[2]!), ip4('10.0.0.1', '10.0.0.2', 6), t, ...more])
    : compose([eth(0x86dd, [], POD[1]!, POD[2]!), ip6('fd00::1', 'fd00::2', 6), t, ...more]);
}

function mssOf(f: Uint8Array): { mss: number; ok: boolean | null } {
  const l = dissect(f).layers;
  const t = l.find((x): x is Extract<Dissected, { kind: 'tcp' }> => x.kind === 'tcp')!;
  const o = t.repr.options.find((x) => x.kind === 'mss');
  return { mss: o !== undefined && o.kind === 'mss' ? o.value : -1, ok: t.checksumOk };
}

test('mtu: TCP MSS is clamped on SYN and SYN-ACK leaving and entering a tunnel, checksums valid; off when configured', () => {
  for (const [kind, underlay] of [
    ['vxlan', 4],
    ['geneve', 6],
  ] as const) {
    const pmtu = 1500 - tunnelOverhead({ tunnel: kind, underlay });
    for (const family of [4, 6] as const) {
      const p = l2Pair(kind, underlay, 1500);
      p.n1.pod.ep.send([syn(1460, family), syn(1460, family, 0x12), syn(500, family), syn(1460, family, 0x10)]);
      const got = p.n2.pod.ep.take().map(mssOf);
      const clamp = pmtu - (family === 4 ? 40 : 60);
      assert.deepEqual(
        got,
        [
          { mss: clamp, ok: true },
          { mss: clamp, ok: true },
          { mss: 500, ok: true },
          { mss: 1460, ok: true },
        ],
        `${kind}/${underlay} inner IPv${family}`,
      );
      assert.equal(p.n1.br.tunnel('tun0').mtuStats.mssClamped, 2);
      finish(p);
    }
  }
  const off = l2Pair('vxlan', 4, 1500, { mssClamp: false });
  off.n1.pod.ep.send([syn(1460, 4)]);
  assert.equal(mssOf(off.n2.pod.ep.take()[0]!).mss, 1460);
  finish(off);
});

test('mtu: random sizes, DF bits, families and policies keep the books and the pool (property)', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('vxlan', 'geneve'),
      fc.constantFrom<4 | 6>(4, 6),
      fc.constantFrom('outer', 'inner', 'drop'),
      fc.integer({ min: 1280, max: 3000 }),
      fc.array(fc.tuple(fc.constantFrom<4 | 6>(4, 6), fc.integer({ min: 60, max: 8000 }), fc.boolean()), { minLength: 1, maxLength: 12 }),
      (kind, underlay, policy, mtu, pkts) => {
        const p = l2Pair(kind, underlay, mtu, { fragmentPolicy: policy });
        const pmtu = p.n1.br.tunnel('tun0').innerMtu(mtu);
        const frames = pkts.map(([f, len, df]) => (f === 4 ? udp4(len, df) : udp6(Math.max(len, 60))));
        p.n1.pod.ep.send(frames);
        const got = p.n2.pod.ep.take();
        // Everything that fits arrives whole, in order; IPv4 without DF arrives too unless dropped by policy.
        const expectWhole = frames.filter((f, k) => f.length - 14 <= pmtu || (pkts[k]![0] === 4 && !pkts[k]![2] && policy === 'outer'));
        if (policy !== 'inner') assert.deepEqual(got, expectWhole);
        finish(p);
      },
    ),
    { numRuns: 60 },
  );
});

test('mtu: Geneve options count in the path MTU', () => {
  const options: GeneveOption[] = [{ class: 0x0102, type: 0x01, data: new Uint8Array(8) }];
  const p = l2Pair('geneve', 4, 1500, { options, knownOptions: [{ class: 0x0102, type: 0x01 }] });
  const pmtu = 1500 - tunnelOverhead({ tunnel: 'geneve', underlay: 4, geneveOptionBytes: 12 });
  assert.equal(p.n1.br.tunnel('tun0').innerMtu(1500), pmtu);
  p.n1.pod.ep.send([udp4(pmtu + 1, true)]);
  const m = only(dissect(p.n1.pod.ep.take()[0]!).layers[2], 'icmpv4');
  assert.ok(m.repr.kind === 'destUnreachable' && m.repr.nextHopMtu === pmtu);
  finish(p);
});

test('mtu: every decision shows in the trace — fragmenting, holding, reassembling, clamping, suppressing, rate-limiting', () => {
  const actions = (p: Pair, send: () => void): string[] => {
    const log = new TraceLog();
    p.n1.br.trace = log.sink;
    p.n2.br.trace = log.sink;
    send();
    return log.records.map((r) => `${r.node} ${r.stage} ${r.action}`);
  };
  const outer = l2Pair('vxlan', 4, 1500);
  const a = actions(outer, () => outer.n1.pod.ep.send([udp4(2000, false)], true));
  assert.ok(a.includes('node1 encapsulate outer packet fragmented into 2 for underlay MTU 1500'), a.join('\n'));
  assert.ok(a.includes('node2 decapsulate outer fragment held for reassembly (1 held)'), a.join('\n'));
  assert.ok(
    a.some((x) => /^node2 decapsulate reassembled a 2064-byte outer packet from 2 fragments$/.test(x)),
    a.join('\n'),
  );
  finish(outer);
  const inner = l2Pair('vxlan', 4, 1500, { fragmentPolicy: 'inner' });
  const b = actions(inner, () => inner.n1.pod.ep.send([udp4(2000, false)], true));
  assert.ok(b.includes('node1 encapsulate inner packet fragmented into 2 for MTU 1450'), b.join('\n'));
  finish(inner);
  const mss = l2Pair('geneve', 6, 1500);
  const c = actions(mss, () => mss.n1.pod.ep.send([syn(1460, 4)], true));
  assert.ok(c.includes('node1 encapsulate TCP MSS 1460 clamped to 1390'), c.join('\n'));
  finish(mss);
  const hole = l2Pair('vxlan', 4, 1500, { icmpTooBig: false, icmpRate: { perSecond: 1, burst: 1 } });
  const d = actions(hole, () => hole.n1.pod.ep.send([udp4(1451, true)], true));
  assert.ok(d.includes('node1 encapsulate dropped: exceeds MTU 1450, ICMP frag-needed suppressed (icmpTooBig off)'), d.join('\n'));
  assert.ok(d.includes('node1 drop dropped at encapsulate: FragNeededDf'), d.join('\n'));
  finish(hole);
  const limited = l2Pair('vxlan', 4, 1500, { icmpRate: { perSecond: 1, burst: 1 } });
  const e = actions(limited, () => limited.n1.pod.ep.send([udp6(1451), udp6(1451)], true));
  assert.ok(e.includes('node1 encapsulate dropped: exceeds MTU 1450, ICMPv6 Packet Too Big sent (MTU 1450)'), e.join('\n'));
  assert.ok(e.includes('node1 encapsulate dropped: exceeds MTU 1450, ICMPv6 Packet Too Big rate-limited'), e.join('\n'));
  finish(limited);
});
