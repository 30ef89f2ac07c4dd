/**
 * Super-frames (TSO/USO) on the bridge: a TCP super-frame from a device that offloads segmentation goes
 * whole to a port whose device takes super-frames, and is segmented (packet/gso.ts) for a port without
 * that offload or for a tunnel — to the size the port's MTU or the tunnel's path allows, never more than
 * the sender's gso size — each segment a complete frame; through a tunnel the segments' payloads add up
 * to the super-frame's, in order, every checksum good. The books balance with `segmentsMade`, every
 * buffer returns to the pool, and a traced super-frame says where it was segmented.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint, type DeviceOffloads, type Receiver } from '../../src/datapath/device.js';
import { TraceLog } from '../../src/datapath/trace.js';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';
import { VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6 } from '../../src/packet/vnet.js';
import { compose, dissect, type Layer } from '../../src/wire/stack.js';
import { eth, ip4, ip6, tcp } from '../peers/catalogue.js';
import { assertBooks, assertPoolFull, hostMac, newBridge, tapPair, VirtualClock, type Net } from './topology.js';

const POD = [0, hostMac(0x105), hostMac(0x205), hostMac(0x106)];
const UNDER_MAC = [0, 0x0e0000000001, 0x0e0000000002];
const TSO: DeviceOffloads = Object.freeze({ checksum: true, tso: true, uso: true });

/** An endpoint whose device offloads segmentation (as a TAP with TSO): it sends and takes super-frames. */
class TsoEndpoint extends Endpoint {
  readonly offloads: DeviceOffloads;
  private receiver: Receiver | null = null;
  /** gso type and size of each frame transmitted to it. */
  readonly gso: Array<[number, number]> = [];
  constructor(name: string, pool: PacketPool, mac: number, mtu: number, offloads: DeviceOffloads) {
    super(name, pool, mac, mtu);
    this.offloads = offloads;
    this.onFrame = (p): void => {
      this.gso.push([p.gsoType, p.gsoSize]);
    };
  }
  override setReceiver(rx: Receiver | null): void {
    super.setReceiver(rx);
    this.receiver = rx;
  }
  /** Sends `frame` as a TCP super-frame of segments of `gsoSize` payload bytes (checksum partial, as a TAP hands it over). */
  sendSuper(frame: Uint8Array, gsoSize: number, traced = false): void {
    const p = this.pool.alloc()!;
    assert.ok(p.load(frame));
    const v6 = frame[12] === 0x86;
    p.gsoType = v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
    p.gsoSize = gsoSize;
    p.csumStart = p.start + 14 + (v6 ? 40 : 20);
    p.csumOffset = 16;
    p.hdrLen = (v6 ? 40 : 20) + 14 + 20;
    p.traced = traced;
    const b = new PacketBatch(1);
    b.add(p);
    this.receiver!(b);
  }
}

function net(): Net {
  return { pool: new PacketPool({ count: 300, frameCapacity: 65536 + 128 }), clock: new VirtualClock() };
}

/** A TCP super-frame from pod 1 to `dst`: `payload` bytes of a counting pattern, ACK|PSH. */
function superFrame(v6: boolean, payload: number, dst = POD[2]!): Uint8Array {
  const body = new Uint8Array(payload);
  for (let i = 0; i < payload; i++) body[i] = (i * 7 + (i >>> 8)) & 0xff;
  const l3: Layer = v6 ? ip6('fd00::1', 'fd00::2', 6) : ip4('10.0.0.1', '10.0.0.2', 6);
  return compose([eth(v6 ? 0x86dd : 0x0800, [], POD[1]!, dst), l3, tcp(40000, 5201, 0x18), { kind: 'data', bytes: body }]);
}

interface Seg {
  seq: number;
  flags: number;
  payload: Uint8Array;
  ipLen: number;
}

/** The TCP segments a pod received: every checksum good, IP lengths as the frame says. */
function segments(frames: readonly Uint8Array[]): Seg[] {
  return frames.map((f) => {
    const d = dissect(f);
    const ip = d.layers[1]!;
    const t = d.layers[2]!;
    assert.ok(t.kind === 'tcp', `a TCP segment, got ${t.kind}`);
    assert.equal(t.checksumOk, true, 'TCP checksum good');
    if (ip.kind === 'ipv4') assert.equal(ip.checksumOk, true, 'IPv4 header checksum good');
    const payload = d.layers[3]?.kind === 'data' ? d.layers[3].bytes : new Uint8Array(0);
    return { seq: t.repr.seq, flags: t.repr.flags, payload, ipLen: f.length - 14 };
  });
}

function assertSame(segs: readonly Seg[], v6: boolean, payload: number, maxPayload: number, mtu: number): void {
  const want = superFrame(v6, payload).subarray(14 + (v6 ? 40 : 20) + 20);
  let seq = 0x01020304;
  const got = new Uint8Array(payload);
  let at = 0;
  for (const [i, s] of segs.entries()) {
    assert.equal(s.seq, seq, `segment ${i}: sequence number`);
    assert.ok(s.payload.length <= maxPayload, `segment ${i}: ${s.payload.length} payload bytes > ${maxPayload}`);
    assert.ok(s.ipLen <= mtu, `segment ${i}: ${s.ipLen} bytes of IP > MTU ${mtu}`);
    // PSH only on the last segment (tcp_gso_segment's rule).
    assert.equal((s.flags & 0x08) !== 0, i === segs.length - 1, `segment ${i}: PSH`);
    got.set(s.payload, at);
    at += s.payload.length;
    seq = (seq + s.payload.length) >>> 0;
  }
  assert.equal(at, payload, 'every payload byte arrived');
  assert.deepEqual(got, want);
}

interface TunnelPair {
  net: Net;
  br1: Bridge;
  br2: Bridge;
  pod1: TsoEndpoint;
  pod2: Endpoint;
}

/** Two nodes over an l2 tunnel (VNI 5000) on an underlay of `mtu`; pod 1 sends super-frames, pod 2 has no offloads. */
function tunnelPair(kind: 'vxlan' | 'geneve', mtu: number): TunnelPair {
  const n = net();
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, mtu);
  const ips = ['192.168.0.1', '192.168.0.2'];
  const brs = [1, 2].map((i) => {
    const br = newBridge(n, `node${i}`);
    br.addTunnel('tun0', i === 1 ? u1 : u2, { kind, mode: 'l2', localIp: ips[i - 1]! });
    br.addVtep('tun0', { ip: ips[2 - i]!, mac: UNDER_MAC[3 - i]!, vnis: [5000] });
    br.mapVni('tun0', 5000, 0);
    br.addStaticMac(0, POD[3 - i]!, 'tun0', ips[2 - i]!);
    return br;
  });
  const pod1 = new TsoEndpoint('pod1', n.pool, POD[1]!, 9000, TSO);
  brs[0]!.addPort('pod1', pod1);
  const pod2 = new Endpoint('pod2', n.pool, POD[2]!, 9000);
  brs[1]!.addPort('pod2', pod2);
  return { net: n, br1: brs[0]!, br2: brs[1]!, pod1, pod2 };
}

test('super-frame into a tunnel: segmented to the path (or the gso size), every byte delivered in order, checksums good, books balanced', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('vxlan' as const, 'geneve' as const),
      fc.boolean(),
      fc.integer({ min: 1, max: 60_000 }),
      fc.integer({ min: 256, max: 9000 }),
      fc.integer({ min: 1280, max: 9000 }),
      (kind, v6, payload, gsoSize, mtu) => {
        const t = tunnelPair(kind, mtu);
        const inner = t.br1.tunnel('tun0').innerMtu(mtu);
        const hdrs = (v6 ? 40 : 20) + 20;
        const maxPayload = Math.min(gsoSize, inner - hdrs);
        t.pod1.sendSuper(superFrame(v6, payload), gsoSize);
        const segs = segments(t.pod2.take());
        assert.equal(segs.length, Math.ceil(payload / maxPayload));
        assertSame(segs, v6, payload, maxPayload, inner);
        assert.deepEqual([t.br1.gso.superFrames, t.br1.gso.segments, t.br1.segmentsMade], [1, segs.length, segs.length - 1]);
        for (const br of [t.br1, t.br2]) assertBooks(br);
        assertPoolFull(t.net.pool);
      },
    ),
    { numRuns: 60 },
  );
});

test('super-frame on one node: whole to a port that takes super-frames, segmented to the MTU of one that does not', () => {
  for (const v6 of [false, true]) {
    const n = net();
    const br = newBridge(n, 'node1');
    const pod1 = new TsoEndpoint('pod1', n.pool, POD[1]!, 1500, TSO);
    const tso = new TsoEndpoint('pod2', n.pool, POD[2]!, 1500, TSO);
    const plain = new Endpoint('pod3', n.pool, POD[3]!, 1400);
    br.addPort('pod1', pod1);
    br.addPort('pod2', tso);
    br.addPort('pod3', plain);
    br.addStaticMac(0, POD[2]!, 'pod2');
    br.addStaticMac(0, POD[3]!, 'pod3');
    const frame = superFrame(v6, 30_000);
    const hdrs = (v6 ? 40 : 20) + 20;
    // Segments of exactly the TSO port's MTU.
    const mss = 1500 - hdrs;
    pod1.sendSuper(frame, mss);
    const whole = tso.take();
    assert.equal(whole.length, 1, 'one frame: the super-frame, whole');
    assert.deepEqual(whole[0], frame);
    assert.deepEqual(tso.gso, [[v6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4, mss]], 'with its gso type and size');
    // The same super-frame to a port of MTU 1400 without offloads: segments of 1400 − headers.
    const log = new TraceLog();
    br.trace = log.sink;
    pod1.sendSuper(superFrame(v6, 30_000, POD[3]), mss, true);
    const segs = segments(plain.take());
    assert.equal(segs.length, Math.ceil(30_000 / (1400 - hdrs)));
    assertSame(segs, v6, 30_000, 1400 - hdrs, 1400);
    const seg = log.records.find((r) => r.stage === 'segment');
    assert.ok(seg !== undefined, `a 'segment' trace record: ${log.records.map((r) => r.stage).join(', ')}`);
    assert.equal(seg.detail['segments'], segs.length);
    // A super-frame whose segments would not fit the TSO port is segmented for it too.
    pod1.sendSuper(frame, mss + 1);
    assert.equal(tso.take().length, Math.ceil(30_000 / mss));
    assert.equal(
      tso.gso.slice(1).every(([t]) => t === VNET_GSO_NONE),
      true,
      'plain segments',
    );
    assertBooks(br);
    assertPoolFull(n.pool);
  }
});
