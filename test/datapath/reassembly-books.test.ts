/**
 * The bridge's books with outer reassembly (issue 18): fragments that time out inside the same `add` that
 * completes another datagram are counted once (as `FragTimeout`), not also as merged; and `assertBooks`
 * holds over random fragment streams with timeouts, duplicates and losses interleaved — a property on
 * the bridge, not only on the reassembler.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint } from '../../src/datapath/device.js';
import { REASSEMBLY_DEFAULT_TIMEOUT_NS } from '../../src/mtu/reassembly.js';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { TraceLog } from '../../src/datapath/trace.js';
import { eth, ip4, udp } from '../peers/catalogue.js';
import { assertBooks, assertPoolFull, drops, hostMac, newBridge, tapPair, VirtualClock, type Net, type TapEnd } from './topology.js';

const UNDER_MAC = [0x0e0000000001, 0x0e0000000002];
const POD = [hostMac(0x105), hostMac(0x205)];

interface Rig {
  net: Net;
  br1: Bridge;
  br2: Bridge;
  pod1: Endpoint;
  pod2: Endpoint;
  u1: TapEnd;
}

/** Two nodes, a pod each, an l2 VXLAN tunnel over a 1500-byte IPv4 underlay (outer fragmentation). */
function rig(): Rig {
  const net: Net = { pool: new PacketPool({ count: 512, frameCapacity: 9216 }), clock: new VirtualClock() };
  const ip = ['192.168.0.1', '192.168.0.2'];
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[0]!, UNDER_MAC[1]!, 1500);
  const pods: Endpoint[] = [];
  const brs = [u1, u2].map((under, i) => {
    const br = newBridge(net, `node${i + 1}`);
    br.addTunnel('tun0', under, { kind: 'vxlan', mode: 'l2', localIp: ip[i]! });
    br.addVtep('tun0', { ip: ip[1 - i]!, mac: UNDER_MAC[1 - i]!, vnis: [5000] });
    br.mapVni('tun0', 5000, 0);
    const ep = new Endpoint(`pod${i + 1}`, net.pool, POD[i]!, 9000);
    br.addPort(`pod${i + 1}`, ep);
    pods.push(ep);
    return br;
  });
  // Each bridge learns where the other's pod is.
  pods[0]!.send([udp4(100, 1)]);
  pods[1]!.send([compose([eth(0x0800, [], POD[1]!, POD[0]!), ip4('10.0.0.2', '10.0.0.1', 17), udp(9, 9), { kind: 'data', bytes: new Uint8Array(4) }])]);
  pods[0]!.take();
  pods[1]!.take();
  return { net, br1: brs[0]!, br2: brs[1]!, pod1: pods[0]!, pod2: pods[1]!, u1 };
}

function udp4(ipLen: number, ident: number): Uint8Array {
  const body: Layer = { kind: 'data', bytes: new Uint8Array(ipLen - 28).fill(ident & 0xff) };
  return compose([eth(0x0800, [], POD[0]!, POD[1]!), ip4('10.0.0.1', '10.0.0.2', 17, { dontFrag: false, ident }), udp(5000, 6000), body]);
}

/** The outer frames node 1 sends for a pod packet of `ipLen` bytes, kept from node 2 (the underlay is cut while it sends). */
function outerFragments(r: Rig, ipLen: number, ident: number): Uint8Array[] {
  const from = r.u1.sent.length;
  r.u1.linkUp = false; // the frame is recorded by the tap, then dropped: node 2 sees nothing
  r.pod1.send([udp4(ipLen, ident)]);
  r.u1.linkUp = true;
  return r.u1.sent.slice(from);
}

/** Hands an outer frame to node 2 as if it came over the underlay. */
function deliver(r: Rig, frame: Uint8Array, traced = false): void {
  const p = r.net.pool.alloc()!;
  p.load(frame);
  p.traced = traced;
  const b = new PacketBatch(1);
  b.add(p);
  r.u1.transmit(b);
}

test('defect 1: a timeout inside the add that completes another datagram is counted once (books balance, the trace says 2 fragments)', () => {
  const r = rig();
  const a = outerFragments(r, 2000, 0xa);
  const b = outerFragments(r, 2000, 0xb);
  assert.equal(a.length, 2);
  assert.equal(b.length, 2);
  const log = new TraceLog();
  r.br2.trace = log.sink;
  r.net.clock.t = 0;
  deliver(r, a[0]!);
  r.net.clock.t = 1e9;
  deliver(r, b[0]!);
  r.net.clock.t = REASSEMBLY_DEFAULT_TIMEOUT_NS + 0.5e9; // A is now past its timeout, B completes
  deliver(r, b[1]!, true);
  const got = r.pod2.take();
  assert.equal(got.length, 1, 'B delivered');
  const tun = r.br2.port('tun0');
  assert.equal(drops(tun, DropReason.FragTimeout), 1, "A's fragment timed out");
  assert.equal(r.br2.fragmentsMerged, 1, "B's held fragment merged, and only it");
  assert.equal(r.br2.heldFragments, 0);
  assertBooks(r.br2);
  assertBooks(r.br1);
  const said = log.records.map((x) => x.action);
  assert.ok(
    said.some((x) => /^reassembled a \d+-byte outer packet from 2 fragments$/.test(x)),
    said.join('\n'),
  );
  assertPoolFull(r.net.pool);
});

test('assertBooks holds on the bridge over random outer fragment streams with timeouts, ticks, duplicates and losses interleaved', () => {
  const step = fc.record({
    frag: fc.nat(),
    /** Time before this fragment: mostly short, sometimes past the reassembly timeout. */
    gapNs: fc.oneof(fc.integer({ min: 0, max: 2e9 }), fc.integer({ min: 25e9, max: 40e9 })),
    tick: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1500, max: 5000 }), { minLength: 1, maxLength: 5 }),
      fc.array(step, { minLength: 1, maxLength: 30 }),
      (sizes, steps) => {
        const r = rig();
        const frags = sizes.flatMap((n, i) => outerFragments(r, n, 0x100 + i));
        let t = 0;
        for (const s of steps) {
          t += s.gapNs;
          r.net.clock.t = t;
          if (s.tick) r.br2.tick();
          deliver(r, frags[s.frag % frags.length]!);
          r.pod2.take();
          assertBooks(r.br2);
        }
        r.net.clock.t = t + REASSEMBLY_DEFAULT_TIMEOUT_NS;
        r.br2.tick();
        assertBooks(r.br2);
        assert.equal(r.br2.heldFragments, 0, 'everything held has timed out');
        assertPoolFull(r.net.pool);
      },
    ),
    { numRuns: 150 },
  );
});
