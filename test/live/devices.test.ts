/**
 * The tunnel socket device's super-frame work, against a scripted addon (no root, no kernel): which
 * datagrams it gathers into one UDP_SEGMENT send, what it does when the kernel refuses one, and how it
 * splits a datagram the kernel coalesced with UDP_GRO — each piece with its outer headers rebuilt, in
 * order, its bytes intact. (test/live/superframe.test.ts does the same against the kernel, end to end.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PacketBatch } from '../../src/packet/buf.js';
import { HEADROOM, PacketBatch as Batch, PacketPool } from '../../src/packet/buf.js';
import { TunnelSocketDevice } from '../../src/live/devices.js';
import type { Native } from '../../src/live/native.js';
import { ipv4FromString } from '../../src/wire/bytes.js';
import { compose, dissect } from '../../src/wire/stack.js';
import { eth, ip4, udp } from '../peers/catalogue.js';

const LOCAL = '192.168.9.1';
const PEER_X = '192.168.9.2';
const PEER_Y = '192.168.9.3';

interface Sent {
  windows: number[][];
  iovs: number[];
  segs: number[];
  peers: string[];
}

/** An addon whose UDP calls are scripted: sends are recorded (and may fail), receives hand out `rx`. */
function scripted(o: { failFirst?: number; rx?: { payload: Uint8Array; seg: number; from: string; port: number } }) {
  const sent: Sent[] = [];
  let fail = o.failFirst;
  let rx = o.rx;
  let readable: (() => void) | null = null;
  const native = {
    udpOpen: () => ({ fd: 10, port: 4789, gro: true }),
    rawOpen: () => ({ fd: 11 }),
    pollStart: (_fd: number, _ev: number, cb: () => void) => {
      readable = cb;
      return 1;
    },
    pollStop: () => {},
    close: () => {},
    udpSendGather(
      _fd: number,
      slab: Uint8Array,
      off: Int32Array,
      lens: Int32Array,
      addrs: Uint8Array,
      _ports: Int32Array,
      segs: Int32Array,
      count: number,
      iovs: Int32Array,
      messages: number,
    ): number {
      if (fail !== undefined) {
        const f = fail;
        fail = undefined;
        return f;
      }
      const rec: Sent = { windows: [], iovs: [], segs: [], peers: [] };
      let w = 0;
      for (let m = 0; m < messages; m++) {
        rec.iovs.push(iovs[m]!);
        rec.segs.push(segs[m]!);
        rec.peers.push(Array.from(addrs.subarray(16 * m, 16 * m + 4)).join('.'));
        for (let j = 0; j < iovs[m]!; j++, w++) rec.windows.push(Array.from(slab.subarray(off[w]!, off[w]! + lens[w]!)));
      }
      assert.equal(w, count, 'the windows the messages take are the count');
      sent.push(rec);
      return messages;
    },
    udpRecvBatch(
      _fd: number,
      slab: Uint8Array,
      off: Int32Array,
      caps: Int32Array,
      lens: Int32Array,
      addrs: Uint8Array,
      ports: Int32Array,
      segs: Int32Array,
    ): number {
      if (rx === undefined) return 0;
      assert.ok(caps[0]! >= rx.payload.length, `the buffer holds a 64 KiB datagram: cap ${caps[0]}`);
      slab.set(rx.payload, off[0]!);
      lens[0] = rx.payload.length;
      addrs.fill(0, 0, 16);
      addrs.set(rx.from.split('.').map(Number), 0);
      ports[0] = rx.port;
      segs[0] = rx.seg;
      rx = undefined;
      return 1;
    },
  };
  return { native: native as unknown as Native, sent, read: () => readable!() };
}

function device(pool: PacketPool, native: Native): TunnelSocketDevice {
  const d = new TunnelSocketDevice(native, pool, {
    name: 'underlay',
    netns: null,
    localIp: LOCAL,
    udpPorts: [4789],
    rawProtocols: [],
    mac: 0x0a0000000001,
    mtu: 1500,
    gro: true,
    gso: true,
  });
  d.start();
  return d;
}

/** A VXLAN-port datagram to `peer` with `len` bytes of UDP payload, its bytes numbered by `tag`. */
function datagram(peer: string, len: number, tag: number): Uint8Array {
  const body = new Uint8Array(len).map((_, i) => (tag * 31 + i) & 0xff);
  return compose([eth(0x0800, [], 0x0a0000000001, 0x0a0000000002), ip4(LOCAL, peer, 17), udp(4789, 4789), { kind: 'data', bytes: body }]);
}

function send(pool: PacketPool, d: TunnelSocketDevice, frames: Uint8Array[]): void {
  const b = new Batch(64);
  for (const f of frames) {
    const p = pool.alloc()!;
    p.load(f);
    b.add(p);
  }
  d.transmit(b);
}

const payloadOf = (f: Uint8Array): number[] => Array.from(f.subarray(14 + 20 + 8));

test('tunnel socket: equal-sized datagrams to one peer go as one UDP_SEGMENT message; a shorter one ends it; another peer or size starts a new one', () => {
  const pool = new PacketPool({ count: 64, frameCapacity: 65536 + 128 });
  const s = scripted({});
  const d = device(pool, s.native);
  const frames = [
    datagram(PEER_X, 1000, 1),
    datagram(PEER_X, 1000, 2),
    datagram(PEER_X, 1000, 3),
    datagram(PEER_X, 400, 4),
    datagram(PEER_X, 1000, 5),
    datagram(PEER_Y, 1000, 6),
    datagram(PEER_Y, 1200, 7),
    datagram(PEER_Y, 1200, 8),
  ];
  send(pool, d, frames);
  assert.equal(s.sent.length, 1, 'one sendmmsg');
  const m = s.sent[0]!;
  assert.deepEqual(m.iovs, [4, 1, 1, 2]);
  assert.deepEqual(m.segs, [1000, 0, 0, 1200], 'UDP_SEGMENT only on messages of several datagrams');
  assert.deepEqual(m.peers, [PEER_X, PEER_X, PEER_Y, PEER_Y]);
  assert.deepEqual(m.windows, frames.map(payloadOf), "each window is a datagram's UDP payload, in order");
  assert.deepEqual([d.stats.txPackets, d.stats.txSuper, d.stats.txSuperSegments], [8, 2, 6]);
  assert.equal(pool.available, pool.size, 'every buffer released');
});

test('tunnel socket: a UDP_SEGMENT send the kernel refuses (EIO) goes again datagram by datagram, and GSO stays off', () => {
  const pool = new PacketPool({ count: 64, frameCapacity: 65536 + 128 });
  const s = scripted({ failFirst: -5 });
  const d = device(pool, s.native);
  const frames = [datagram(PEER_X, 1000, 1), datagram(PEER_X, 1000, 2), datagram(PEER_X, 500, 3)];
  send(pool, d, frames);
  assert.equal(d.gso, false);
  assert.deepEqual(
    s.sent.map((x) => [x.iovs, x.segs]),
    [
      [[1], [0]],
      [[1], [0]],
      [[1], [0]],
    ],
  );
  assert.deepEqual(
    s.sent.map((x) => x.windows[0]),
    frames.map(payloadOf),
  );
  send(pool, d, [datagram(PEER_X, 1000, 4), datagram(PEER_X, 1000, 5)]);
  assert.deepEqual(s.sent.at(-1)!.iovs, [1, 1], 'later sends are single datagrams');
  assert.deepEqual([d.stats.txPackets, d.stats.dropped], [5, 0]);
  assert.equal(pool.available, pool.size);
});

test("tunnel socket: a GRO'd datagram is split into its datagrams, each with outer headers as on the wire, in order", () => {
  // The read takes a buffer for each of the 64 datagrams it may get: the pieces need more.
  const pool = new PacketPool({ count: 128, frameCapacity: 65536 + 128 });
  const whole = new Uint8Array(3 * 1000 + 250).map((_, i) => (i * 7) & 0xff);
  const s = scripted({ rx: { payload: whole, seg: 1000, from: PEER_X, port: 4789 } });
  const d = device(pool, s.native);
  const got: Uint8Array[] = [];
  const starts: number[] = [];
  d.setReceiver((b: PacketBatch) => {
    for (let i = 0; i < b.length; i++) {
      const p = b.get(i);
      got.push(p.bytes().slice());
      starts.push(p.start);
      p.release();
    }
    b.clear();
  });
  s.read();
  assert.deepEqual(
    got.map((f) => f.length - 42),
    [1000, 1000, 1000, 250],
  );
  got.forEach((f, i) => {
    const l = dissect(f).layers;
    assert.ok(l[1]?.kind === 'ipv4' && l[2]?.kind === 'udp', `datagram ${i}: IPv4/UDP`);
    assert.equal(l[1].checksumOk, true, `datagram ${i}: IPv4 header checksum`);
    assert.deepEqual([l[1].repr.src, l[1].repr.dst], [ipv4FromString(PEER_X), ipv4FromString(LOCAL)]);
    assert.equal(l[2].repr.dstPort, 4789);
    assert.deepEqual(Array.from(f.subarray(42)), Array.from(whole.subarray(1000 * i, Math.min(1000 * (i + 1), whole.length))));
  });
  // The last datagram stays in the received buffer, its headers rebuilt over the bytes copied out.
  assert.equal(starts.at(-1), HEADROOM + 3000);
  assert.deepEqual([d.stats.rxPackets, d.stats.rxSuper, d.stats.rxSuperSegments, d.stats.dropped], [4, 1, 4, 0]);
  assert.equal(pool.available, pool.size);
});

// ---- the TAP's coalescing stage in a live trace ----------------------------------------------------------

test('tap with TSO: a traced TCP segment merged into a super-frame is reported as the coalesce stage, a lone frame as written as it came', async () => {
  const { TapDevice } = await import('../../src/live/devices.js');
  const { GsoStats, segment } = await import('../../src/packet/gso.js');
  const { VNET_GSO_TCPV4, VNET_HDR_LEN } = await import('../../src/packet/vnet.js');
  const pool = new PacketPool({ count: 64, frameCapacity: 65536 });
  const written: Array<{ len: number; gso: number; segs: number }> = [];
  const native = {
    pollStart: () => 1,
    pollStop: () => {},
    close: () => {},
    writeBatch(_fd: number, slab: Uint8Array, off: Int32Array, lens: Int32Array, count: number): number {
      for (let i = 0; i < count; i++) {
        const gso = slab[off[i]! + 1]!;
        const size = slab[off[i]! + 4]! | (slab[off[i]! + 5]! << 8);
        written.push({ len: lens[i]! - VNET_HDR_LEN, gso, segs: gso === 0 ? 1 : Math.ceil((lens[i]! - VNET_HDR_LEN - 54) / size) });
      }
      return count;
    },
  } as unknown as Native;
  const tap = new TapDevice(native, pool, { name: 'a', fd: 3, ifindex: 7, mac: 0x020000000001, mtu: 1450, vnetHdr: true, gso: true, gsoStats: new GsoStats() });
  const records: Array<{ stage: string; port: string; action: string; detail: Record<string, unknown> }> = [];
  tap.onTraced = (r) => records.push(r);
  // Four 1000-byte TCP segments of one flow (a 4000-byte super-frame cut by the segmenter), the second traced.
  const payload = new Uint8Array(4000).map((_, i) => (i * 7) & 0xff);
  const whole = pool.alloc()!;
  assert.ok(
    whole.load(
      compose([
        eth(0x0800),
        ip4('10.244.1.10', '10.244.2.20', 6, { ident: 9, dontFrag: true }),
        { kind: 'tcp', repr: { srcPort: 40000, dstPort: 5201, seq: 1, ack: 1, flags: 0x10, window: 500, urgent: 0, options: [] } },
        { kind: 'data', bytes: payload },
      ]),
    ),
  );
  whole.gsoType = VNET_GSO_TCPV4;
  whole.gsoSize = 1000;
  whole.hdrLen = 54;
  const segs = new Batch(8);
  assert.equal(segment(whole, 1000, pool, segs, new GsoStats()), 4);
  whole.release();
  segs.get(1).traced = true;
  tap.transmit(segs);
  assert.deepEqual(
    written.map((w) => [w.gso, w.segs]),
    [[VNET_GSO_TCPV4, 4]],
    'one super-frame of the four segments',
  );
  assert.equal(records.length, 1);
  assert.equal(records[0]!.stage, 'coalesce');
  assert.equal(records[0]!.port, 'a');
  assert.deepEqual(records[0]!.detail, { superFrame: true, segments: 4, gsoSize: 1000, bytes: 4054 });
  // A traced frame that is not TCP (a ping) goes as it came, and the stage says so.
  const icmp = pool.alloc()!;
  assert.ok(icmp.load(compose([eth(0x0800), ip4('10.244.1.10', '10.244.2.20', 1), { kind: 'data', bytes: new Uint8Array(64) }])));
  icmp.traced = true;
  const one = new Batch(1);
  one.add(icmp);
  tap.transmit(one);
  assert.equal(records.length, 2);
  assert.equal(records[1]!.detail['superFrame'], false);
  assert.match(records[1]!.action, /as it came/);
  // Untraced frames report nothing; the trace flag does not outlive the write.
  const plain = pool.alloc()!;
  assert.ok(plain.load(compose([eth(0x0800), ip4('10.244.1.10', '10.244.2.20', 1), { kind: 'data', bytes: new Uint8Array(64) }])));
  one.add(plain);
  tap.transmit(one);
  assert.equal(records.length, 2);
  assert.equal(pool.available, pool.size, 'every buffer back in the pool');
});
