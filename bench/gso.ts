/**
 * Super-frame benchmarks (packet/gso.ts), IPv4: what the live path pays per TSO super-frame from a pod
 * before encapsulation, and per batch of decapsulated segments before the TAP.
 *
 * `gso.segment`: one 64 KiB TCP super-frame (65,160 payload bytes, timestamps option, 65,226-byte
 * frame) cut into 45 segments of 1,448 bytes, each with its headers patched and its TCP checksum
 * computed; the segments are released again. The same super-frame every round.
 *
 * `gso.coalesce`: the reverse — those 45 segments (checksums complete) pushed into a `Coalescer` and
 * flushed as one super-frame, each segment's checksums verified and its payload appended. The
 * segments are re-taken from their pool (all 45 buffers it has) and the first one's 66 header bytes
 * restored before each round, which the figure includes.
 *
 * Each comes as Gbit/s of TCP payload and as Mpps of segments (the same loop, two figures);
 * `gso.coalesce.trusted` is the coalescer without its checksum check (`verify` false: behind ESP).
 */
import { PacketBatch, PacketPool, type PacketBuf } from '../src/packet/buf.js';
import { Coalescer, GsoStats, segment } from '../src/packet/gso.js';
import { VNET_GSO_TCPV4 } from '../src/packet/vnet.js';
import { compose } from '../src/wire/stack.js';
import { TCP_ACK, TCP_PSH } from '../src/wire/tcp.js';
import type { Bench, BenchEntry } from './harness.js';
import { eth, ip4 } from '../test/peers/catalogue.js';

const MSS = 1448;
const SEGMENTS = 45;
const PAYLOAD = MSS * SEGMENTS;
const HDRS = 14 + 20 + 32;

function superFrameBytes(): Uint8Array {
  const payload = new Uint8Array(PAYLOAD);
  for (let i = 0; i < PAYLOAD; i++) payload[i] = (i * 7 + 3) & 0xff;
  return compose([
    eth(0x0800),
    ip4('10.244.1.10', '10.244.2.20', 6),
    {
      kind: 'tcp',
      repr: {
        srcPort: 40000,
        dstPort: 5201,
        seq: 1,
        ack: 1,
        flags: TCP_ACK | TCP_PSH,
        window: 502,
        urgent: 0,
        options: [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'timestamps', tsval: 1, tsecr: 2 }],
      },
    },
    { kind: 'data', bytes: payload },
  ]);
}

function segmentBench(name: string, unit: 'Gbit/s' | 'Mpps'): Bench {
  const pool = new PacketPool({ count: SEGMENTS + 2, frameCapacity: 65536 });
  const stats = new GsoStats();
  const out = new PacketBatch(64);
  const p = pool.alloc()!;
  p.load(superFrameBytes());
  if (p.length - HDRS !== PAYLOAD) throw new Error('gso bench: unexpected super-frame layout');
  p.gsoType = VNET_GSO_TCPV4;
  p.gsoSize = MSS;
  p.hdrLen = HDRS;
  return {
    name,
    what: `segment(): a 64 KiB IPv4 TCP super-frame into ${SEGMENTS} segments of ${MSS} bytes, checksums computed`,
    unit,
    ...(unit === 'Gbit/s' ? { bytesPerOp: PAYLOAD } : {}),
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const k = segment(p, MSS, pool, out, stats);
        if (k !== SEGMENTS) throw new Error(`gso bench: ${k} segments`);
        for (let j = 0; j < k; j++) s += out.pkts[j]!.end;
        for (let j = 0; j < k; j++) out.pkts[j]!.release();
        out.clear();
      }
      return { ops: unit === 'Gbit/s' ? n : n * SEGMENTS, sink: s };
    },
  };
}

function coalesceBench(name: string, unit: 'Gbit/s' | 'Mpps', verify = true): Bench {
  // A pool of exactly the 45 segments: after a round every buffer is free again and `alloc` gives
  // all of them back; `window` (by slot) says where each one's segment is.
  const src = new PacketPool({ count: 1, frameCapacity: 65536 });
  const pool = new PacketPool({ count: SEGMENTS, frameCapacity: 65536 });
  const stats = new GsoStats();
  const sp = src.alloc()!;
  sp.load(superFrameBytes());
  sp.gsoType = VNET_GSO_TCPV4;
  sp.gsoSize = MSS;
  const segs = new PacketBatch(64);
  if (segment(sp, MSS, pool, segs, stats) !== SEGMENTS) throw new Error('gso bench: segmentation failed');
  const starts = new Int32Array(SEGMENTS);
  const ends = new Int32Array(SEGMENTS);
  const order: PacketBuf[] = [];
  for (let j = 0; j < SEGMENTS; j++) {
    const q = segs.pkts[j]!;
    starts[q.slot] = q.start;
    ends[q.slot] = q.end;
    order.push(q);
  }
  const firstSlot = order[0]!.slot;
  const firstHeader = order[0]!.data.slice(order[0]!.start, order[0]!.start + HDRS);
  for (const q of order) q.release();
  const co = new Coalescer(pool, stats, undefined, verify);
  const out = new PacketBatch(64);
  const bySlot: PacketBuf[] = new Array<PacketBuf>(SEGMENTS);
  return {
    name,
    what: `Coalescer: ${SEGMENTS} IPv4 TCP segments of ${MSS} bytes (${verify ? 'checksums verified' : 'checksums trusted: an ESP tunnel'}) into one 64 KiB super-frame`,
    unit,
    ...(unit === 'Gbit/s' ? { bytesPerOp: PAYLOAD } : {}),
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < SEGMENTS; j++) {
          const q = pool.alloc()!;
          q.start = starts[q.slot]!;
          q.end = ends[q.slot]!;
          bySlot[q.slot] = q;
        }
        const f = bySlot[firstSlot]!;
        f.data.set(firstHeader, f.start);
        for (let j = 0; j < SEGMENTS; j++) co.push(bySlot[order[j]!.slot]!, out);
        co.flush(out);
        if (out.length !== 1) throw new Error(`gso bench: ${out.length} frames out of the coalescer`);
        const sf = out.pkts[0]!;
        s += sf.end - sf.start;
        sf.release();
        out.clear();
      }
      if (s !== n * (PAYLOAD + HDRS)) throw new Error('gso bench: the super-frame is not whole');
      return { ops: unit === 'Gbit/s' ? n : n * SEGMENTS, sink: s };
    },
  };
}

export function gsoBenches(): BenchEntry[] {
  return [
    // Each pair in one process, rounds interleaved, so its two figures describe the same runs.
    { name: 'gso.segment', group: 'gso.segment', make: () => segmentBench('gso.segment', 'Gbit/s') },
    { name: 'gso.segment.pps', group: 'gso.segment', make: () => segmentBench('gso.segment.pps', 'Mpps') },
    { name: 'gso.coalesce', group: 'gso.coalesce', make: () => coalesceBench('gso.coalesce', 'Gbit/s') },
    { name: 'gso.coalesce.pps', group: 'gso.coalesce', make: () => coalesceBench('gso.coalesce.pps', 'Mpps') },
    { name: 'gso.coalesce.trusted', group: 'gso.coalesce', make: () => coalesceBench('gso.coalesce.trusted', 'Gbit/s', false) },
  ];
}
