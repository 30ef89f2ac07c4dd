/**
 * UDP on a simulated host: `UdpFlow` is a generator (one simulator task, no closure per packet) whose
 * payload carries a flow id, a sequence number and the send time; `UdpSink` on the receiver keeps per-flow
 * loss, duplicates, reordering, one-way latency and goodput. Sizes are IP packet lengths (IP header
 * included, Ethernet not), so Simple IMIX is 7:4:1 of 64/576/1500-byte IP packets. With `replay` a flow
 * takes its packet sizes and timing from a pcap/pcapng (`scenario/replay.ts`).
 */
import type { PacketBuf } from '../packet/buf.js';
import { loadReplay, type ReplaySource } from '../scenario/replay.js';
import { IMIX } from '../scenario/traffic.js';
import { rd16, rd32, wr16, wr32 } from '../wire/bytes.js';
import { finish, onesSum } from '../wire/checksum.js';
import { ETH_HEADER_LEN } from '../wire/ethernet.js';
import { IPPROTO_UDP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';
import type { Addr } from '../wire/addr.js';
import type { SimTask } from './engine.js';
import { LatencySample, percentile, sampleSeed } from './latency.js';
import type { HostStack } from './stack.js';

/** Flow header in each UDP payload: flow id (4), sequence (4), send time in ns (8, a double). */
export const FLOW_HEADER_LEN = 16;

export interface UdpFlowOptions {
  /** Destination address (IPv4 or IPv6). */
  dst: string;
  dstPort: number;
  /** Default 10000 + flow id. */
  srcPort?: number;
  /** Packets per second (constant rate). Give this or `rateBps`. */
  ratePps?: number;
  /** Bits of IP per second: each packet is followed by a gap of its own length × 8 / rate. */
  rateBps?: number;
  /** IP packet lengths: one size, Simple IMIX, sizes picked uniformly, or sizes with weights. Not with `replay`. */
  sizes?: number | 'imix' | readonly number[] | ReadonlyArray<{ size: number; weight: number }>;
  /**
   * Instead of sizes and a rate: one datagram per IP packet of a pcap/pcapng (see `scenario/replay.ts`), of
   * that packet's IP length (clamped to [IP + UDP + flow header, 65535]), at its time from the first
   * packet. `count` and `durationNs` still cut it short.
   */
  replay?: ReplaySource;
  /** Packets to send; or */
  count?: number;
  /** how long to send for. */
  durationNs?: number;
  /** Don't Fragment (IPv4). Default false. */
  df?: boolean;
  /** When to start. Default now. */
  startNs?: number;
}

/** What a flow's sender counted. */
export interface UdpFlowStats {
  flowId: number;
  sent: number;
  /** Bytes of IP sent. */
  sentBytes: number;
  /** Not sent: larger than the path MTU with DF, or than the interface MTU (IPv6). */
  tooBig: number;
  /** Not sent: no packet buffer was free (also in the host's `poolEmpty`). */
  noBuffer: number;
  /** Sizes of the packets sent, by size. */
  sizes: Record<number, number>;
  /** Replay: packets whose captured length was below the smallest datagram and were sent at that size. */
  clamped: number;
  /** Replay: records of the capture that were not IP packets. */
  skipped: number;
}

/** A UDP traffic generator: one task scheduled for each departure. */
export class UdpFlow implements SimTask {
  readonly stats: UdpFlowStats;
  private readonly dist: Array<{ size: number; weight: number }>;
  private readonly totalWeight: number;
  /** Replay: departure offsets from the start and IP lengths (already clamped); null otherwise. */
  private readonly replayAt: Float64Array | null = null;
  private readonly replayLen: Uint32Array | null = null;
  private readonly startNs: number;
  private readonly endNs: number;
  private seq = 0;
  readonly srcPort: number;
  /**
   * What each departure reads of `opts`, copied into the flow: one object fewer to touch per packet (a
   * 100,000-flow run's flows are cold in the cache). `count` is Infinity when the flow has none.
   */
  private readonly count: number;
  private readonly ratePps: number | undefined;
  private readonly rateBps: number | undefined;
  readonly df: boolean;
  readonly dstPort: number;

  constructor(
    private readonly host: HostStack,
    readonly flowId: number,
    readonly dst: Addr,
    readonly opts: UdpFlowOptions,
  ) {
    const min = (dst.family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN) + UDP_HEADER_LEN + FLOW_HEADER_LEN;
    this.srcPort = opts.srcPort ?? (10000 + flowId) & 0xffff;
    this.count = opts.count ?? Infinity;
    this.ratePps = opts.ratePps;
    this.rateBps = opts.rateBps;
    this.df = opts.df ?? false;
    this.dstPort = opts.dstPort;
    const start = (this.startNs = opts.startNs ?? host.sim.now);
    this.endNs = opts.durationNs === undefined ? Infinity : start + opts.durationNs;
    this.stats = { flowId, sent: 0, sentBytes: 0, tooBig: 0, noBuffer: 0, sizes: {}, clamped: 0, skipped: 0 };
    if (opts.replay !== undefined) {
      if (opts.sizes !== undefined || opts.ratePps !== undefined || opts.rateBps !== undefined)
        throw new RangeError('udpFlow: replay takes neither sizes nor a rate');
      const t = loadReplay(opts.replay);
      this.replayAt = t.offsetsNs;
      this.replayLen = t.ipLengths;
      this.stats.skipped = t.skipped;
      for (let i = 0; i < t.ipLengths.length; i++) {
        const n = t.ipLengths[i]!;
        if (n < min) {
          this.replayLen[i] = min;
          this.stats.clamped++;
        } else if (n > 65535) this.replayLen[i] = 65535;
      }
      this.dist = [];
      this.totalWeight = 0;
      if (t.ipLengths.length > 0) host.sim.schedule(start + t.offsetsNs[0]!, this, 0);
      return;
    }
    const s = opts.sizes;
    if (s === undefined) throw new RangeError('udpFlow: give sizes (or replay)');
    this.dist =
      s === 'imix'
        ? IMIX.map((x) => ({ ...x }))
        : typeof s === 'number'
          ? [{ size: s, weight: 1 }]
          : s.map((x) => (typeof x === 'number' ? { size: x, weight: 1 } : { ...x }));
    if (this.dist.length === 0) throw new RangeError('udpFlow: sizes is empty');
    for (const d of this.dist) {
      if (!Number.isInteger(d.size) || d.size < min || d.size > 65535) throw new RangeError(`udpFlow: size ${d.size} is not an IP length in [${min}, 65535]`);
      if (!(d.weight > 0)) throw new RangeError(`udpFlow: weight ${d.weight} is not positive`);
    }
    this.totalWeight = this.dist.reduce((a, d) => a + d.weight, 0);
    if ((opts.ratePps === undefined) === (opts.rateBps === undefined)) throw new RangeError('udpFlow: give one of ratePps and rateBps');
    if (!((opts.ratePps ?? opts.rateBps)! > 0)) throw new RangeError('udpFlow: rate must be positive');
    if (opts.count === undefined && opts.durationNs === undefined) throw new RangeError('udpFlow: give count or durationNs');
    host.sim.schedule(start, this, 0);
  }

  private pick(): number {
    if (this.dist.length === 1) return this.dist[0]!.size;
    let r = this.host.sim.rng.float() * this.totalWeight;
    for (const d of this.dist) {
      if (r < d.weight) return d.size;
      r -= d.weight;
    }
    return this.dist[this.dist.length - 1]!.size;
  }

  private send(seq: number, size: number): boolean {
    return sendDatagram(this.host, this, seq, size);
  }

  run(_arg: number): void {
    const now = this.host.sim.now;
    if (now >= this.endNs || this.seq >= this.count) return;
    const at = this.replayAt;
    const size = at === null ? this.pick() : this.replayLen![this.seq]!;
    const seq = this.seq++;
    if (this.send(seq, size)) {
      this.stats.sent++;
      this.stats.sentBytes += size;
      this.stats.sizes[size] = (this.stats.sizes[size] ?? 0) + 1;
    }
    if (at !== null) {
      if (this.seq < at.length && this.seq < this.count) {
        const next = this.startNs + at[this.seq]!;
        if (next < this.endNs) this.host.sim.schedule(next, this, 0);
      }
      return;
    }
    const gap = this.ratePps !== undefined ? 1e9 / this.ratePps : (size * 8 * 1e9) / this.rateBps!;
    if (this.seq >= this.count) return;
    if (now + gap < this.endNs) this.host.sim.schedule(now + gap, this, 0);
  }
}

/** Builds and sends (or queues) datagram `seq` of flow `f`, `size` bytes of IP; false when it was not sent (counted in the flow's stats). */
function sendDatagram(host: HostStack, f: UdpFlow, seq: number, size: number): boolean {
  const dst = f.dst;
  if (!host.fits(dst, size, f.df || dst.family === 6)) {
    f.stats.tooBig++;
    return false;
  }
  const p = host.allocIp(size);
  if (p === null) {
    f.stats.noBuffer++;
    return false;
  }
  const l4 = host.ipHeader(p, dst, IPPROTO_UDP, size, f.df);
  const b = p.data;
  const len = size - (l4 - p.start - ETH_HEADER_LEN);
  wr16(b, l4, f.srcPort);
  wr16(b, l4 + 2, f.dstPort);
  wr16(b, l4 + 4, len);
  wr16(b, l4 + 6, 0);
  const pl = l4 + UDP_HEADER_LEN;
  wr32(b, pl, f.flowId);
  wr32(b, pl + 4, seq);
  p.view.setFloat64(pl + 8, host.sim.now);
  b.fill(0, pl + FLOW_HEADER_LEN, l4 + len);
  // Past the flow header the payload is zeros, which add nothing to the sum.
  host.fillL4Checksum(p, dst.family, l4, len, IPPROTO_UDP, UDP_HEADER_LEN + FLOW_HEADER_LEN);
  host.route(p, dst.family, dst.v4, dst.v6, 0);
  return true;
}

/** What a sink knows of one flow. */
export interface FlowReport {
  flowId: number;
  received: number;
  /** Expected minus distinct received: expected is `sent` when given, else the highest sequence + 1. */
  lost: number;
  lossFraction: number;
  duplicates: number;
  /** Packets that arrived after one with a higher sequence number. */
  reordered: number;
  /** UDP payload bytes of distinct packets. */
  goodputBytes: number;
  latencyMin: number;
  latencyP50: number;
  latencyP99: number;
  latencyMax: number;
}

class FlowRecord {
  received = 0;
  duplicates = 0;
  reordered = 0;
  goodput = 0;
  maxSeq = -1;
  /**
   * Sequence numbers seen: 0–31 as bits of `low`, the rest in `seen` (made when a flow gets that far: a
   * big cluster's 100,000 short flows would otherwise each hold a typed array and its backing store).
   */
  low = 0;
  seen: Uint8Array | null = null;
  readonly latency: LatencySample;
  constructor(seed: number) {
    this.latency = new LatencySample(seed);
  }
}

/** Receives UDP on one port and keeps per-flow books. */
export class UdpSink {
  readonly flows = new Map<number, FlowRecord>();
  /** Datagrams too short to carry the flow header. */
  malformed = 0;

  /** `seed`: the run's, for the latency samples' reservoirs. */
  constructor(
    readonly port: number,
    private readonly seed = 0,
  ) {}

  /** @internal one datagram's payload at `b[off, off+len)`, arriving at `now`. */
  take(b: Uint8Array, off: number, len: number, now: number, view: DataView): void {
    if (len < FLOW_HEADER_LEN) {
      this.malformed++;
      return;
    }
    const id = rd32(b, off);
    const seq = rd32(b, off + 4);
    const sentAt = view.getFloat64(off + 8);
    let f = this.flows.get(id);
    if (f === undefined) this.flows.set(id, (f = new FlowRecord(sampleSeed(this.seed, id))));
    if (seq < 32) {
      const bit = 1 << seq;
      if ((f.low & bit) !== 0) {
        f.duplicates++;
        return;
      }
      f.low |= bit;
    } else {
      let seen = f.seen;
      if (seen === null || seq >= seen.length * 8) {
        let n = seen === null ? 64 : seen.length;
        while (seq >= n * 8) n *= 2;
        const g = new Uint8Array(n);
        if (seen !== null) g.set(seen);
        f.seen = seen = g;
      }
      const bit = 1 << (seq & 7);
      if ((seen[seq >> 3]! & bit) !== 0) {
        f.duplicates++;
        return;
      }
      seen[seq >> 3]! |= bit;
    }
    f.received++;
    f.goodput += len;
    if (seq < f.maxSeq) f.reordered++;
    else f.maxSeq = seq;
    f.latency.add(now - sentAt);
  }

  /** The books of flow `flowId`; `sent` (the sender's count) makes trailing losses count too. */
  report(flowId: number, sent?: number): FlowReport {
    const f = this.flows.get(flowId) ?? new FlowRecord(0);
    const expected = sent ?? f.maxSeq + 1;
    const lat = f.latency.sorted();
    const lost = Math.max(0, expected - f.received);
    return {
      flowId,
      received: f.received,
      lost,
      lossFraction: expected === 0 ? 0 : lost / expected,
      duplicates: f.duplicates,
      reordered: f.reordered,
      goodputBytes: f.goodput,
      latencyMin: f.latency.count === 0 ? 0 : f.latency.min,
      latencyP50: percentile(lat, 50),
      latencyP99: percentile(lat, 99),
      latencyMax: f.latency.count === 0 ? 0 : f.latency.max,
    };
  }
}

/**
 * A received UDP datagram (`len` bytes of IP payload at `l4`, `pseudo` the pseudo-header's sum) to its
 * port's sink; a zero checksum is accepted over IPv4 only (`zeroOk`). Always false: the buffer is released.
 */
export function udpIn(host: HostStack, sinks: ReadonlyMap<number, UdpSink>, p: PacketBuf, l4: number, len: number, pseudo: number, zeroOk: boolean): boolean {
  const b = p.data;
  const ulen = len >= UDP_HEADER_LEN ? rd16(b, l4 + 4) : 0;
  if (ulen < UDP_HEADER_LEN || ulen > len) {
    host.counters.rxBad++;
    return false;
  }
  const ck = rd16(b, l4 + 6);
  if (ck === 0 ? !zeroOk : finish(onesSum(b, l4, ulen, pseudo)) !== 0) {
    host.counters.rxBad++;
    return false;
  }
  const sink = sinks.get(rd16(b, l4 + 2));
  if (sink === undefined) {
    host.counters.udpNoPort++;
    return false;
  }
  sink.take(b, l4 + UDP_HEADER_LEN, ulen - UDP_HEADER_LEN, host.sim.now, p.view);
  return false;
}
