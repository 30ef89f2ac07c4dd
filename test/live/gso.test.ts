/**
 * The kernel as the peer of packet/gso.ts: a TAP with a virtio-net header in a namespace this test
 * makes, a TCP listener behind it (Python's socket module), and this side playing the remote end of the
 * connection by hand. After a handshake, the data goes in as a super-frame built by the Coalescer
 * (NEEDS_CSUM, gso TCPV4) and then as plain segments from `segment`; the listener must receive every
 * byte, and the kernel must acknowledge all of them. The other way, the kernel (TSO enabled on the
 * TAP) sends super-frames of its own, which `segment` cuts: every segment's checksums verify and the
 * stream is the bytes the sender sent; and a UDP_SEGMENT send reaches the TAP (USO enabled) as one
 * super-frame that `segment` cuts into the sender's datagrams. Root only (skipped loudly otherwise).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, test } from 'node:test';
import { loadNative, TUN_F, type Native } from '../../src/live/native.js';
import { PacketBatch, PacketPool, type PacketBuf } from '../../src/packet/buf.js';
import { Coalescer, GsoStats, segment } from '../../src/packet/gso.js';
import { readVnetHeader, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_UDP_L4, VNET_HDR_LEN, writeVnetHeader } from '../../src/packet/vnet.js';
import { fold, ipv4HeaderValid, onesSum, pseudoSumV4At } from '../../src/wire/checksum.js';
import { rd16, rd32 } from '../../src/wire/bytes.js';
import { compose } from '../../src/wire/stack.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { SYSTEM_PYTHON } from '../helpers.js';
import { eth, ip4 } from '../peers/catalogue.js';
import { liveSkip, requireNative, Rig, sleep, type RigProcess } from './rig.js';

const skip = liveSkip('test/live/gso.test.ts');

const KERNEL_MAC = 0x020000990001;
const PEER_MAC = 0x020000990002;
const PORT = 5201;
const PEER_PORT = 40000;

/** Reads the listener's byte count and digest of everything it received before EOF or `n` bytes. */
const LISTENER = `
import hashlib, socket, sys
n = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.99.0.1', ${PORT}))
s.listen(1)
print('listening', flush=True)
c, _ = s.accept()
c.settimeout(10)
b = b''
while len(b) < n:
    d = c.recv(1 << 20)
    if not d:
        break
    b += d
print('got', len(b), hashlib.sha256(b).hexdigest(), flush=True)
`;

/** Sends `n` random bytes to the first client, prints their length and digest, and closes. */
const SENDER = `
import hashlib, os, socket, sys
n = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.99.0.1', ${PORT}))
s.listen(1)
print('listening', flush=True)
c, _ = s.accept()
b = os.urandom(n)
print('sending', len(b), hashlib.sha256(b).hexdigest(), flush=True)
c.sendall(b)
c.close()
`;

let rig: Rig | null = null;
let taps = 0;
after(async () => {
  await rig?.cleanup();
});

/** A TAP (virtio-net header) named tap0 in a new namespace, 10.99.0.1/24, the peer 10.99.0.2 a permanent neighbour. */
async function tapInNs(r: Rig, n: Native): Promise<{ ns: string; fd: number }> {
  const ns = await r.addNetns(`k${++taps}`);
  const tap = n.tapOpen('tap0', ns, true, false);
  n.linkSet(ns, 'tap0', 1500, Uint8Array.of(2, 0, 0, 0x99, 0, 1), true);
  await r.run(ns, ['ip', 'addr', 'add', '10.99.0.1/24', 'dev', 'tap0']);
  await r.run(ns, ['ip', 'neigh', 'replace', '10.99.0.2', 'lladdr', '02:00:00:99:00:02', 'dev', 'tap0', 'nud', 'permanent']);
  return { ns, fd: tap.fd };
}

test('gso: the kernel takes a coalesced super-frame (NEEDS_CSUM, TCPV4) and plain segments through a TAP, and its socket gets every byte', {
  skip,
}, async () => {
  requireNative();
  rig ??= new Rig('gso');
  const n: Native = loadNative();
  const { ns, fd } = await tapInNs(rig, n);
  const tap = { fd };

  const data = randomBytes(40000);
  const listener = rig.spawn(ns, 'listener', [SYSTEM_PYTHON, '-c', LISTENER, String(data.length)]);
  await listener.waitForOutput(/listening/, 10_000);

  const pool = new PacketPool({ count: 96, frameCapacity: 65536 });
  const offsets = new Int32Array(64);
  const caps = new Int32Array(64).fill(65536 + VNET_HDR_LEN);
  const lens = new Int32Array(64);
  const at = (p: PacketBuf): number => p.slot * pool.bufferSize + p.start;
  /** Writes frames to the TAP, each behind the virtio-net header its offload fields describe. */
  const write = (frames: PacketBuf[]): void => {
    frames.forEach((p, i) => {
      writeVnetHeader(p, p.start - VNET_HDR_LEN);
      offsets[i] = at(p) - VNET_HDR_LEN;
      lens[i] = p.end - p.start + VNET_HDR_LEN;
    });
    assert.equal(n.writeBatch(tap.fd, pool.slab, offsets, lens, frames.length), frames.length);
  };
  /** Reads frames until one from the listener's port passes `want` (bounded: 5 s). */
  const rx = pool.alloc()!;
  const expectTcp = async (what: string, want: (b: Uint8Array, l4: number) => boolean): Promise<Uint8Array> => {
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      offsets[0] = at(rx);
      const k = n.readBatch(tap.fd, pool.slab, offsets, caps, lens, 1);
      if (k === 0) {
        await sleep(10);
        continue;
      }
      const b = pool.slab.slice(offsets[0]! + VNET_HDR_LEN, offsets[0]! + lens[0]!);
      if (b.length < 54 || rd16(b, 12) !== 0x0800 || b[23] !== 6) continue;
      const l4 = 14 + ((b[14]! & 15) << 2);
      if (rd16(b, l4) === PORT && rd16(b, l4 + 2) === PEER_PORT && want(b, l4)) return b;
    }
    throw new Error(`no ${what} from the kernel within 5 s`);
  };
  const frame = (seq: number, ack: number, flags: number, payload: Uint8Array, options: { kind: 'mss'; value: number }[] = []): PacketBuf => {
    const p = pool.alloc()!;
    p.load(
      compose([
        eth(0x0800, [], PEER_MAC, KERNEL_MAC),
        ip4('10.99.0.2', '10.99.0.1', 6, { ident: seq & 0xffff }),
        { kind: 'tcp', repr: { srcPort: PEER_PORT, dstPort: PORT, seq, ack, flags, window: 65535, urgent: 0, options } },
        { kind: 'data', bytes: payload },
      ]),
    );
    return p;
  };

  // Handshake, by hand.
  const isn = 0x10000000;
  const syn = frame(isn, 0, TCP_SYN, new Uint8Array(0), [{ kind: 'mss', value: 1460 }]);
  write([syn]);
  syn.release();
  const synAck = await expectTcp('SYN-ACK', (b, l4) => (b[l4 + 13]! & (TCP_SYN | TCP_ACK)) === (TCP_SYN | TCP_ACK));
  const l4 = 34;
  assert.equal(rd32(synAck, l4 + 8), isn + 1);
  const serverNext = (rd32(synAck, l4 + 4) + 1) >>> 0;
  const ackFrame = frame(isn + 1, serverNext, TCP_ACK, new Uint8Array(0));
  write([ackFrame]);
  ackFrame.release();

  // The first 14 × 1448 bytes: a super-frame cut into segments (as the other node's segmentation does)
  // and coalesced again (as this node's decapsulation path does), then written whole.
  const stats = new GsoStats();
  const first = 14 * 1448;
  const sf = frame(isn + 1, serverNext, TCP_ACK, data.subarray(0, first));
  sf.gsoType = VNET_GSO_TCPV4;
  sf.gsoSize = 1448;
  const segs = new PacketBatch(64);
  assert.equal(segment(sf, 1448, pool, segs, stats), 14);
  sf.release();
  const co = new Coalescer(pool, stats);
  const out = new PacketBatch(64);
  for (let i = 0; i < segs.length; i++) co.push(segs.get(i), out);
  co.flush(out);
  assert.equal(out.length, 1);
  const sup = out.get(0);
  assert.deepEqual([sup.gsoType, sup.gsoSize, sup.csumStart - sup.start, sup.csumOffset], [VNET_GSO_TCPV4, 1448, 34, 16]);
  // The checksum field holds the pseudo-header sum, as NEEDS_CSUM wants.
  const d = sup.data;
  assert.equal(rd16(d, sup.l4 + 16), fold(pseudoSumV4At(d, sup.l3 + 12, sup.l3 + 16, 6, sup.end - sup.l4)));
  write([sup]);
  sup.release();

  // The rest as plain segments, PSH on the last.
  const rest = frame((isn + 1 + first) >>> 0, serverNext, TCP_ACK | TCP_PSH, data.subarray(first));
  rest.gsoType = VNET_GSO_TCPV4;
  rest.gsoSize = 1448;
  segs.clear();
  assert.equal(segment(rest, 1448, pool, segs, stats), Math.ceil((data.length - first) / 1448));
  rest.release();
  write(segs.pkts.slice(0, segs.length));
  for (let i = 0; i < segs.length; i++) segs.get(i).release();

  // The kernel acknowledges every byte, and the listener read them all.
  await expectTcp('ACK of all the data', (b, o) => rd32(b, o + 8) === (isn + 1 + data.length) >>> 0);
  await listener.waitForOutput(/got \d+/, 10_000);
  const m = /got (\d+) ([0-9a-f]+)/.exec(listener.output())!;
  assert.equal(Number(m[1]), data.length);
  assert.equal(m[2], createHash('sha256').update(data).digest('hex'));
  rx.release();
  n.close(tap.fd);
  assert.equal(pool.available, pool.size);
});

test("gso: super-frames the kernel sends through a TAP with TSO are cut by segment() into segments whose checksums verify, carrying the sender's bytes", {
  skip,
}, async (t) => {
  requireNative();
  rig ??= new Rig('gso');
  const n: Native = loadNative();
  const { ns, fd } = await tapInNs(rig, n);
  assert.equal(n.tapSetOffload(fd, TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6 | TUN_F.TSO_ECN), 0);
  const size = 300_000;
  const sender: RigProcess = rig.spawn(ns, 'sender', [SYSTEM_PYTHON, '-c', SENDER, String(size)]);
  await sender.waitForOutput(/listening/, 10_000);

  const pool = new PacketPool({ count: 96, frameCapacity: 65536 });
  const offsets = new Int32Array(1);
  const caps = new Int32Array(1).fill(65536 + VNET_HDR_LEN);
  const lens = new Int32Array(1);
  const at = (p: PacketBuf): number => p.slot * pool.bufferSize + p.start;
  const send = (seq: number, ack: number, flags: number, options: { kind: 'mss'; value: number }[] = []): void => {
    const p = pool.alloc()!;
    p.load(
      compose([
        eth(0x0800, [], PEER_MAC, KERNEL_MAC),
        ip4('10.99.0.2', '10.99.0.1', 6, { ident: seq & 0xffff }),
        { kind: 'tcp', repr: { srcPort: PEER_PORT, dstPort: PORT, seq, ack, flags, window: 65535, urgent: 0, options } },
      ]),
    );
    writeVnetHeader(p, p.start - VNET_HDR_LEN);
    offsets[0] = at(p) - VNET_HDR_LEN;
    lens[0] = p.end - p.start + VNET_HDR_LEN;
    assert.equal(n.writeBatch(fd, pool.slab, offsets, lens, 1), 1);
    p.release();
  };
  /** The next TCP frame from the listener's port (virtio-net header read into its offload fields), or null after 5 s. */
  const receive = async (): Promise<PacketBuf | null> => {
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      const p = pool.alloc()!;
      offsets[0] = at(p) - VNET_HDR_LEN;
      const k = n.readBatch(fd, pool.slab, offsets, caps, lens, 1);
      if (k === 0) {
        p.release();
        await sleep(5);
        continue;
      }
      p.end = p.start + lens[0]! - VNET_HDR_LEN;
      assert.equal(readVnetHeader(p, p.start - VNET_HDR_LEN), null);
      const b = p.data;
      const o = p.start;
      if (p.end - o >= 54 && rd16(b, o + 12) === 0x0800 && b[o + 23] === 6 && rd16(b, o + 34) === PORT) return p;
      p.release();
    }
    return null;
  };

  const isn = 0x20000000;
  send(isn, 0, TCP_SYN, [{ kind: 'mss', value: 1460 }]);
  let synAck: PacketBuf | null = null;
  while (synAck === null) {
    const p = await receive();
    assert.ok(p !== null, 'a SYN-ACK from the kernel');
    if ((p.data[p.start + 47]! & TCP_SYN) !== 0) synAck = p;
    else p.release();
  }
  let next = (rd32(synAck.data, synAck.start + 38) + 1) >>> 0;
  synAck.release();
  send(isn + 1, next, TCP_ACK);

  const stats = new GsoStats();
  const segs = new PacketBatch(64);
  const got: Buffer[] = [];
  let received = 0;
  let superFrames = 0;
  let largest = 0;
  while (received < size) {
    const p = await receive();
    assert.ok(p !== null, `the kernel stopped sending after ${received} of ${size} bytes`);
    const k = p.gsoType === VNET_GSO_NONE ? 0 : segment(p, p.gsoSize, pool, segs, stats);
    assert.ok(k >= 0, `segment: ${k}`);
    if (k > 0) {
      superFrames++;
      largest = Math.max(largest, p.end - p.start);
    }
    const frames = k > 0 ? segs.pkts.slice(0, k) : [p];
    for (const q of frames) {
      const b = q.data;
      const l3 = q.start + 14;
      const l4 = l3 + 20;
      const len = q.end - l4;
      const hl = (b[l4 + 12]! >>> 4) << 2;
      assert.ok(ipv4HeaderValid(q.view, l3, 20), 'IPv4 header checksum');
      if (k > 0) {
        assert.equal(fold(onesSum(b, l4, len, pseudoSumV4At(b, l3 + 12, l3 + 16, 6, len))), 0xffff, 'TCP checksum of a segment');
        assert.ok(len - hl <= p.gsoSize, 'segment within gso_size');
      }
      const seq = rd32(b, l4 + 4);
      // In order without loss on a TAP; a retransmission of what is here already is skipped.
      if (seq === next && len > hl) {
        got.push(Buffer.from(b.subarray(l4 + hl, q.end)));
        received += len - hl;
        next = (next + len - hl) >>> 0;
      }
    }
    for (let i = 0; i < k; i++) segs.get(i).release();
    segs.clear();
    p.release();
    send(isn + 1, next, TCP_ACK);
  }
  const m = /sending (\d+) ([0-9a-f]+)/.exec(sender.output())!;
  assert.equal(received, Number(m[1]));
  assert.equal(createHash('sha256').update(Buffer.concat(got)).digest('hex'), m[2]);
  t.diagnostic(`${superFrames} super-frames from the kernel (largest ${largest} bytes) cut into ${stats.segments} segments`);
  assert.ok(superFrames > 0, 'the kernel sent super-frames (TSO on the TAP)');
  assert.ok(largest > 1514, `a super-frame longer than a 1500-byte MTU frame: ${largest}`);
  n.close(fd);
  assert.equal(pool.available, pool.size);
});

/** One UDP_SEGMENT send of `n` random bytes in datagrams of 1000 to the peer, then their digest. */
const USO_SENDER = `
import hashlib, os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 103, 1000)
b = os.urandom(int(sys.argv[1]))
s.sendto(b, ('10.99.0.2', ${PEER_PORT}))
print('sent', len(b), hashlib.sha256(b).hexdigest(), flush=True)
`;

test("gso: a UDP_SEGMENT send reaches a TAP with USO as one super-frame, and segment() gives the sender's datagrams back", { skip }, async () => {
  requireNative();
  rig ??= new Rig('gso');
  const n: Native = loadNative();
  const { ns, fd } = await tapInNs(rig, n);
  assert.equal(n.tapSetOffload(fd, TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6 | TUN_F.USO4 | TUN_F.USO6), 0);
  const pool = new PacketPool({ count: 32, frameCapacity: 65536 });
  const offsets = new Int32Array(1);
  const caps = new Int32Array(1).fill(65536 + VNET_HDR_LEN);
  const lens = new Int32Array(1);
  const size = 9500;
  const sender = rig.spawn(ns, 'uso-sender', [SYSTEM_PYTHON, '-c', USO_SENDER, String(size)]);
  await sender.waitForOutput(/sent \d+/, 10_000);
  let p: PacketBuf | null = null;
  for (const until = Date.now() + 5000; p === null && Date.now() < until; ) {
    const q = pool.alloc()!;
    offsets[0] = q.slot * pool.bufferSize + q.start - VNET_HDR_LEN;
    if (n.readBatch(fd, pool.slab, offsets, caps, lens, 1) === 0) {
      q.release();
      await sleep(10);
      continue;
    }
    q.end = q.start + lens[0]! - VNET_HDR_LEN;
    assert.equal(readVnetHeader(q, q.start - VNET_HDR_LEN), null);
    const o = q.start;
    if (q.end - o >= 42 && rd16(q.data, o + 12) === 0x0800 && q.data[o + 23] === 17 && rd16(q.data, o + 36) === PEER_PORT) p = q;
    else q.release();
  }
  assert.ok(p !== null, 'the UDP send reached the TAP');
  assert.deepEqual([p.gsoType, p.gsoSize, p.end - p.start], [VNET_GSO_UDP_L4, 1000, 14 + 20 + 8 + size], 'one USO super-frame');
  const stats = new GsoStats();
  const segs = new PacketBatch(16);
  assert.equal(segment(p, 1000, pool, segs, stats), 10);
  const parts: Buffer[] = [];
  for (const q of segs.pkts.slice(0, segs.length)) {
    const b = q.data;
    const l3 = q.start + 14;
    const l4 = l3 + 20;
    const len = q.end - l4;
    assert.ok(ipv4HeaderValid(q.view, l3, 20));
    assert.equal(rd16(b, l4 + 4), len, 'UDP length');
    assert.equal(fold(onesSum(b, l4, len, pseudoSumV4At(b, l3 + 12, l3 + 16, 17, len))), 0xffff, 'UDP checksum');
    parts.push(Buffer.from(b.subarray(l4 + 8, q.end)));
    q.release();
  }
  assert.deepEqual(
    parts.map((x) => x.length),
    [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 500],
  );
  const m = /sent (\d+) ([0-9a-f]+)/.exec(sender.output())!;
  assert.equal(createHash('sha256').update(Buffer.concat(parts)).digest('hex'), m[2]);
  p.release();
  n.close(fd);
  assert.equal(pool.available, pool.size);
});
