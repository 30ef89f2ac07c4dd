/**
 * A simulated host (a pod, or a node's own stack): one Ethernet interface that is a `Device` — plug it into
 * a bridge port (`bridge.addPort(name, host)`) or join it to any other device with `connect` — holding a MAC,
 * an IPv4 address/prefix, an optional IPv6 address/prefix, default gateways and an MTU.
 *
 * What it does, like a small Linux stack:
 * - ARP (RFC 826) and Neighbor Discovery (RFC 4861 §7.2): answers for its own addresses, gleans the asker,
 *   resolves next hops itself (a few packets queued per unresolved neighbour, solicitations retried on a
 *   timer, queued packets dropped when resolution fails); static neighbours are allowed. Entries do not age.
 * - ICMP echo (v4 and v6): answers requests; `ping` sends them and keeps `PingStats`.
 * - Path MTU (RFC 1191, RFC 8201): frag-needed and Packet Too Big lower a per-destination PMTU; with DF
 *   (always for IPv6) a packet above it is not sent but counted "too big", as `ping -M do` does.
 * - UDP: `udpFlow` is a generator (one simulator task, no closure per packet) whose payload carries a flow
 *   id, a sequence number and the send time; `udpSink` on the receiver keeps per-flow loss, duplicates,
 *   reordering, one-way latency and goodput. With `replay` a flow takes its packet sizes and timing from a
 *   pcap/pcapng (`scenario/replay.ts`).
 * - TCP (`sim/tcp.ts`): `tcpSend` opens a bulk NewReno connection, `tcpListen` sinks what arrives; the host
 *   hands segments (v4 and v6) to their connection, answers segments of no connection with RST, and tells a
 *   connection when a too-big message about it lowered the PMTU.
 *
 * Sizes given to `ping` are ICMP data bytes (as `ping -s`); sizes of UDP flows are IP packet lengths (IP
 * header included, Ethernet not), so Simple IMIX is 7:4:1 of 64/576/1500-byte IP packets.
 *
 * Deterministic: time is the simulator's, every random choice comes from `sim.rng`. Frames leave in
 * batches of one; received frames are read in place with offsets (no `dissect`).
 */
import type { Device, Receiver } from '../datapath/device.js';
import { type Addr, mask4, parseAddr, parsePrefix } from '../wire/addr.js';
import { Ipv6Table } from '../packet/addrtable.js';
import { PacketBatch, PacketPool, type PacketBuf } from '../packet/buf.js';
import { fragmentIpv4 } from '../mtu/fragment.js';
import { DropReason } from '../wire/drop.js';
import { DONE as REASM_DONE, HELD as REASM_HELD, Reassembler } from '../mtu/reassembly.js';
import { eq16, ipv4FromString, ipv6FromString, ipv6ToString, ipv4ToString, MAC_BROADCAST, rd16, rd32, rdMac, wr16, wr32, wrMac } from '../wire/bytes.js';
import { checksum, finish, onesSum, pseudoSumV4, pseudoSumV6At, updateChecksum16 } from '../wire/checksum.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { ICMPV4_CODE_FRAG_NEEDED, ICMPV4_DEST_UNREACHABLE, ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST } from '../wire/icmpv4.js';
import { ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_PACKET_TOO_BIG } from '../wire/icmpv6.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { TCP_ACK, TCP_FIN, TCP_HEADER_LEN, TCP_OPT_MSS, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';
import { Rng, type SimTask, type Simulator } from './engine.js';
import { loadReplay, type ReplaySource } from '../scenario/replay.js';
import { sendReset, TcpFlow, TcpListener, type TcpEndpoint, type TcpSendOptions } from './tcp.js';

/** Packets held per unresolved neighbour (Linux's unres_qlen is larger; a few show the behaviour). */
const NEIGH_QUEUE = 3;
/** Solicitations sent before a neighbour is declared unreachable (Linux mcast_solicit). */
const NEIGH_TRIES = 3;
/** Time between solicitations (Linux retrans_time). */
const NEIGH_RETRANS_NS = 1e9;
/** Flow header in each UDP payload: flow id (4), sequence (4), send time in ns (8, a double). */
export const FLOW_HEADER_LEN = 16;
import { IMIX } from '../scenario/scenario.js';

/** Simple IMIX (the scenario format's `sizes: imix`). */
export { IMIX };

export interface HostConfig {
  name: string;
  mac: number;
  /** Address and prefix, e.g. "10.0.0.1/24". */
  ipv4: string;
  /** Address and prefix, e.g. "fd00::1/64". */
  ipv6?: string;
  /** Default gateway (IPv4), on-link. */
  gateway4?: string;
  /** Default gateway (IPv6), on-link. */
  gateway6?: string;
  /** L3 MTU of the interface. Default 1500. */
  mtu?: number;
  /**
   * Answer ARP requests and Neighbor Solicitations for its own addresses. Default true; false for a
   * node's own stack behind the bridge's gateway, which answers for the address they share.
   */
  answerNeighbors?: boolean;
}

/** What the host counted. */
export interface HostCounters {
  rxFrames: number;
  txFrames: number;
  /** Frames not for this host (another MAC or address), or of a protocol it does not speak. */
  rxIgnored: number;
  /** Frames that failed a length or checksum check. */
  rxBad: number;
  arpRequestsSent: number;
  arpRepliesSent: number;
  nsSent: number;
  naSent: number;
  echoRepliesSent: number;
  /** Packets dropped because their next hop never answered, or the neighbour queue was full. */
  neighDrops: number;
  /** Packets without a route (off-link and no gateway). */
  noRoute: number;
  /** Buffers the pool could not give. */
  poolEmpty: number;
  /** ICMP too-big messages that lowered a PMTU. */
  pmtuUpdates: number;
  /** UDP datagrams to a port without a sink. */
  udpNoPort: number;
  /** Packets larger than the MTU that could not be fragmented (DF set, e.g. an echo reply to a larger DF request). */
  unsendable: number;
  /** IPv4 packets sent in fragments (larger than the MTU, no DF), and the fragments that made. */
  fragmented: number;
  fragmentsSent: number;
  /** Datagrams reassembled from received fragments, and fragments dropped by reassembly (bad, overlapping, …). */
  reassembled: number;
  fragmentDrops: number;
  /** TCP segments of no connection (answered with RST unless they were one). */
  tcpNoConn: number;
  /** RSTs sent for them. */
  tcpRstSent: number;
}

/** Nearest-rank percentile of sorted values (0 when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k]!;
}

/**
 * How many latencies a flow keeps: p50 and p99 are exact for flows of up to this many packets (512 KiB of
 * samples at most per flow, where keeping every one of a billion packets' would take 8 GB).
 */
export const LATENCY_SAMPLES = 1 << 16;

/**
 * Latencies in bounded memory (issue 18): every value while there are at most `capacity`, so percentiles
 * are exact up to that many; beyond, a uniform sample of them all of that size (a reservoir, Vitter's
 * algorithm R), while the count, sum, minimum and maximum stay exact. The reservoir draws from a PRNG of
 * its own, seeded from the run's seed and the flow: one seed still gives one run, and the simulator's own
 * stream (jitter, loss, IMIX) is drawn exactly as before, so no other figure of a run changes.
 */
export class LatencySample {
  /** The samples: in arrival order while `count <= capacity`. */
  readonly values: number[] = [];
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  private rng: Rng | null = null;

  constructor(
    private readonly seed: number,
    readonly capacity = LATENCY_SAMPLES,
  ) {}

  add(x: number): void {
    this.count++;
    this.sum += x;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    if (this.values.length < this.capacity) {
      this.values.push(x);
      return;
    }
    const k = (this.rng ??= new Rng(this.seed)).int(this.count);
    if (k < this.capacity) this.values[k] = x;
  }

  /** Whether the percentiles are exact (every value is kept). */
  get exact(): boolean {
    return this.count <= this.capacity;
  }

  /** The samples in ascending order (a copy). */
  sorted(): number[] {
    return this.values.slice().sort((a, b) => a - b);
  }
}

/** A per-flow seed for a `LatencySample`: the run's seed mixed with the flow's number. */
export function sampleSeed(seed: number, flow: number): number {
  return (seed ^ Math.imul(flow + 1, 0x9e3779b1)) >>> 0;
}

/** Results of one `ping`, updated as replies come. */
export class PingStats {
  /** The ICMP echo identifier of this ping's requests (0 until it starts). */
  ident = 0;
  /** Requests put on the wire (or queued for resolution). */
  sent = 0;
  /** Distinct requests answered within the timeout. */
  received = 0;
  /** Replies to a request already answered. */
  duplicates = 0;
  /** Replies after the timeout (not counted as received). */
  late = 0;
  /** Requests not sent because they were larger than the path MTU with DF (`ping -M do`'s "message too long"). */
  tooBig = 0;
  /** ICMP errors received about the requests (frag-needed, Packet Too Big, unreachable). */
  errors = 0;
  /** Round-trip times in ns (bounded: `LatencySample`). */
  readonly latency: LatencySample;
  /** RTT by sequence number (NaN while unanswered). */
  readonly rttBySeq: number[] = [];

  constructor(seed = 0) {
    this.latency = new LatencySample(seed);
  }

  /** Round-trip times in ns, in arrival order (the first `LATENCY_SAMPLES`; then a uniform sample of them all). */
  get rtts(): readonly number[] {
    return this.latency.values;
  }
  get lost(): number {
    return this.sent - this.received;
  }
  get min(): number {
    return this.latency.count === 0 ? 0 : this.latency.min;
  }
  get max(): number {
    return this.latency.count === 0 ? 0 : this.latency.max;
  }
  get avg(): number {
    return this.latency.count === 0 ? 0 : this.latency.sum / this.latency.count;
  }
  /** Nearest-rank percentile of the RTTs (exact up to `LATENCY_SAMPLES` replies). */
  percentile(p: number): number {
    return percentile(this.latency.sorted(), p);
  }
  get p50(): number {
    return this.percentile(50);
  }
  get p99(): number {
    return this.percentile(99);
  }

  toJSON(): object {
    return {
      sent: this.sent,
      received: this.received,
      duplicates: this.duplicates,
      late: this.late,
      tooBig: this.tooBig,
      errors: this.errors,
      min: this.min,
      avg: this.avg,
      max: this.max,
      p50: this.p50,
      p99: this.p99,
      rtts: this.rtts,
    };
  }
}

export interface PingOptions {
  /** IPv4 or IPv6 address. */
  dst: string;
  /** Requests to send. Default 1. */
  count?: number;
  /** Time between requests. Default 1 s. */
  intervalNs?: number;
  /** ICMP data bytes (as `ping -s`). Default 56. */
  size?: number;
  /** Don't Fragment (IPv4; IPv6 never fragments in transit). Default false. */
  df?: boolean;
  /** A reply later than this after its request counts as late, not received. Default 10 s. */
  timeoutNs?: number;
}

/** A parsed destination (wire/addr.ts). @internal */
export type { Addr };

/** A neighbour entry; `queue` holds packets (IP at `start + 14`) waiting for the MAC. */
interface Neigh {
  /** Its index in the host's table (the argument of its retransmission timer). */
  index: number;
  family: 4 | 6;
  v4: number;
  v6: Uint8Array | null;
  mac: number;
  state: 'incomplete' | 'reachable' | 'static' | 'failed';
  tries: number;
  queue: PacketBuf[];
}

/** A sender of echo requests: one task, `run(0)` sends the next request. */
class Pinger implements SimTask {
  readonly stats: PingStats;
  private seq = 0;
  readonly sendTimes: number[] = [];
  readonly ipLen: number;

  constructor(
    private readonly host: SimHost,
    readonly dst: Addr,
    readonly ident: number,
    readonly count: number,
    readonly intervalNs: number,
    readonly size: number,
    readonly df: boolean,
    readonly timeoutNs: number,
  ) {
    this.ipLen = size + 8 + (dst.family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN);
    this.stats = new PingStats(sampleSeed(host.sim.seed, ident));
  }

  run(_arg: number): void {
    const seq = this.seq++;
    const now = this.host.sim.now;
    this.sendTimes[seq] = now;
    this.stats.rttBySeq[seq] = NaN;
    if (this.host.sendEcho(this, seq)) this.stats.sent++;
    if (this.seq < this.count) this.host.sim.schedule(now + this.intervalNs, this, 0);
  }

  reply(seq: number, now: number): void {
    const t = this.sendTimes[seq];
    if (t === undefined) return;
    const s = this.stats;
    if (!Number.isNaN(s.rttBySeq[seq]!)) {
      s.duplicates++;
      return;
    }
    const rtt = now - t;
    if (rtt > this.timeoutNs) {
      s.late++;
      return;
    }
    s.rttBySeq[seq] = rtt;
    s.latency.add(rtt);
    s.received++;
  }
}

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

  constructor(
    private readonly host: SimHost,
    readonly flowId: number,
    readonly dst: Addr,
    readonly opts: UdpFlowOptions,
  ) {
    const min = (dst.family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN) + UDP_HEADER_LEN + FLOW_HEADER_LEN;
    this.srcPort = opts.srcPort ?? (10000 + flowId) & 0xffff;
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

  run(_arg: number): void {
    const now = this.host.sim.now;
    if (now >= this.endNs || (this.opts.count !== undefined && this.seq >= this.opts.count)) return;
    const at = this.replayAt;
    const size = at === null ? this.pick() : this.replayLen![this.seq]!;
    const seq = this.seq++;
    if (this.host.sendUdp(this, seq, size)) {
      this.stats.sent++;
      this.stats.sentBytes += size;
      this.stats.sizes[size] = (this.stats.sizes[size] ?? 0) + 1;
    }
    if (at !== null) {
      if (this.seq < at.length && (this.opts.count === undefined || this.seq < this.opts.count)) {
        const next = this.startNs + at[this.seq]!;
        if (next < this.endNs) this.host.sim.schedule(next, this, 0);
      }
      return;
    }
    const gap = this.opts.ratePps !== undefined ? 1e9 / this.opts.ratePps : (size * 8 * 1e9) / this.opts.rateBps!;
    if (this.opts.count !== undefined && this.seq >= this.opts.count) return;
    if (now + gap < this.endNs) this.host.sim.schedule(now + gap, this, 0);
  }
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
  seen = new Uint8Array(64);
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
    if (seq >= f.seen.length * 8) {
      let n = f.seen.length;
      while (seq >= n * 8) n *= 2;
      const g = new Uint8Array(n);
      g.set(f.seen);
      f.seen = g;
    }
    const bit = 1 << (seq & 7);
    if ((f.seen[seq >> 3]! & bit) !== 0) {
      f.duplicates++;
      return;
    }
    f.seen[seq >> 3]! |= bit;
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

/** The simulated host; see the module comment. */
export class SimHost implements Device, SimTask {
  readonly name: string;
  readonly mac: number;
  readonly mtu: number;
  linkUp = true;
  readonly v4: number;
  readonly v4Len: number;
  readonly v6: Uint8Array | null = null;
  readonly v6Len: number = 0;
  readonly gw4: number | null = null;
  readonly gw6: Uint8Array | null = null;
  readonly counters: HostCounters = {
    rxFrames: 0,
    txFrames: 0,
    rxIgnored: 0,
    rxBad: 0,
    arpRequestsSent: 0,
    arpRepliesSent: 0,
    nsSent: 0,
    naSent: 0,
    echoRepliesSent: 0,
    neighDrops: 0,
    noRoute: 0,
    poolEmpty: 0,
    pmtuUpdates: 0,
    udpNoPort: 0,
    tcpNoConn: 0,
    tcpRstSent: 0,
    unsendable: 0,
    fragmented: 0,
    fragmentsSent: 0,
    reassembled: 0,
    fragmentDrops: 0,
  };
  private rx: Receiver | null = null;
  private listener: ((up: boolean) => void) | null = null;
  /** One batch per nesting level: a frame sent from inside a delivery must not reuse the outer batch. */
  private readonly batches: PacketBatch[] = [];
  private depth = 0;
  private readonly neighs: Neigh[] = [];
  private readonly neigh4 = new Map<number, number>();
  private readonly neigh6 = new Ipv6Table<number>();
  private readonly pmtu4 = new Map<number, number>();
  private readonly pmtu6 = new Ipv6Table<number>();
  private readonly pingers = new Map<number, Pinger>();
  private readonly sinks = new Map<number, UdpSink>();
  /** UDP flows started: the next one's id is this plus one. */
  private udpFlows = 0;
  private readonly tcpListeners = new Map<number, TcpListener>();
  /** TCP endpoints by local port × 65536 + remote port; the remote address tells apart the few that share one. */
  private readonly tcpEps = new Map<number, TcpEndpoint[]>();
  private nextEphemeral = 49152;
  private nextIdent = 1;
  private readonly answerNeighbors: boolean;
  private reasm: Reassembler | null = null;
  private fragmentsRefused = 0;
  private readonly fragOut: PacketBuf[] = [];
  private ipIdent = 0;
  /** Solicited-node multicast MAC of the IPv6 address (33:33:ff:xx:xx:xx). */
  private readonly snmMac: number = -1;
  /** Solicited-node multicast address of the IPv6 address. */
  private readonly snm: Uint8Array = SNM_PREFIX;

  constructor(
    readonly sim: Simulator,
    readonly pool: PacketPool,
    cfg: HostConfig,
  ) {
    this.name = cfg.name;
    this.answerNeighbors = cfg.answerNeighbors ?? true;
    this.mac = cfg.mac;
    this.mtu = cfg.mtu ?? 1500;
    if (!Number.isInteger(this.mtu) || this.mtu < 68 || this.mtu > 65535) throw new RangeError(`host ${this.name}: MTU ${this.mtu} is not 68-65535`);
    const p4 = parsePrefix(cfg.ipv4, `host ${this.name} ipv4`);
    if (p4.family !== 4) throw new RangeError(`host ${this.name} ipv4: "${cfg.ipv4}" is not IPv4`);
    this.v4 = p4.addr;
    this.v4Len = p4.len;
    if (cfg.ipv6 !== undefined) {
      const p6 = parsePrefix(cfg.ipv6, `host ${this.name} ipv6`);
      if (p6.family !== 6) throw new RangeError(`host ${this.name} ipv6: "${cfg.ipv6}" is not IPv6`);
      this.v6 = p6.addr;
      this.v6Len = p6.len;
      this.snmMac = 0x3333ff000000 + ((p6.addr[13]! << 16) | (p6.addr[14]! << 8) | p6.addr[15]!);
      this.snm = snmOf(p6.addr);
    }
    if (cfg.gateway4 !== undefined) {
      const g = ipv4FromString(cfg.gateway4);
      if (g === null || !this.onLink4(g)) throw new RangeError(`host ${this.name}: gateway4 "${cfg.gateway4}" is not an on-link IPv4 address`);
      this.gw4 = g;
    }
    if (cfg.gateway6 !== undefined) {
      const g = ipv6FromString(cfg.gateway6);
      if (g === null || this.v6 === null) throw new RangeError(`host ${this.name}: gateway6 "${cfg.gateway6}" needs an IPv6 address and one of its own`);
      this.gw6 = g;
    }
  }

  // ---- Device ----

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(fn: ((up: boolean) => void) | null): void {
    this.listener = fn;
  }

  /** Carrier up or down (what is plugged in hears it). */
  setLink(up: boolean): void {
    if (this.linkUp === up) return;
    this.linkUp = up;
    this.listener?.(up);
  }

  /** Frames delivered to the host (the device's "transmit" is the host's receive). */
  transmit(batch: PacketBatch): void {
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      this.counters.rxFrames++;
      if (!this.receive(p)) p.release();
    }
    batch.clear();
  }

  /** Joins the host to another device (a link end, a veth end): each receives what the other sends, and the host follows its carrier. */
  connect(dev: Device): void {
    dev.setReceiver((b) => this.transmit(b));
    dev.setLinkListener((up) => this.setLink(up));
    this.setReceiver((b) => dev.transmit(b));
    this.setLink(dev.linkUp);
  }

  // ---- Configuration ----

  /** A static neighbour (never solicited, never replaced by what is learned). */
  addNeighbor(ip: string, mac: number): void {
    const a = parseAddr(ip, `host ${this.name} neighbor`);
    const n = this.neighFor(a.family, a.v4, a.v6, 0, true);
    n.mac = mac;
    n.state = 'static';
    this.flush(n);
  }

  /** The neighbour table, for display and tests. */
  neighbors(): Array<{ ip: string; mac: number; state: string }> {
    return this.neighs.map((n) => ({ ip: n.family === 4 ? ipv4ToString(n.v4) : ipv6ToString(n.v6!), mac: n.mac, state: n.state }));
  }

  /** The path MTU to `dst` (the interface MTU until a too-big message says less). */
  pathMtu(dst: string): number {
    const a = parseAddr(dst, `host ${this.name} pathMtu`);
    return a.family === 4 ? (this.pmtu4.get(a.v4) ?? this.mtu) : (this.pmtu6.get(a.v6) ?? this.mtu);
  }

  // ---- Applications ----

  /** Starts a ping (the first request goes now, inside `sim.run`); the stats fill in as replies come. */
  ping(opts: PingOptions): PingStats {
    const dst = parseAddr(opts.dst, `host ${this.name} ping`);
    if (dst.family === 6 && this.v6 === null) throw new RangeError(`host ${this.name}: ping ${opts.dst} needs an IPv6 address`);
    const size = opts.size ?? 56;
    if (!Number.isInteger(size) || size < 0 || size > 65507) throw new RangeError(`host ${this.name}: ping size ${size} is not 0-65507`);
    const count = opts.count ?? 1;
    const ident = this.nextIdent++ & 0xffff;
    const p = new Pinger(this, dst, ident, count, opts.intervalNs ?? 1e9, size, opts.df ?? false, opts.timeoutNs ?? 10e9);
    this.pingers.set(ident, p);
    p.stats.ident = ident;
    if (count > 0) this.sim.schedule(this.sim.now, p, 0);
    return p.stats;
  }

  /** Starts a UDP flow from this host; flow ids are unique per sender, so give each sender's sink its own port. */
  udpFlow(opts: UdpFlowOptions): UdpFlow {
    const dst = parseAddr(opts.dst, `host ${this.name} udpFlow`);
    if (dst.family === 6 && this.v6 === null) throw new RangeError(`host ${this.name}: udpFlow to ${opts.dst} needs an IPv6 address`);
    return new UdpFlow(this, ++this.udpFlows, dst, opts);
  }

  /** A UDP sink on `port` (the same one when asked twice). */
  udpSink(port: number): UdpSink {
    let s = this.sinks.get(port);
    if (s === undefined) this.sinks.set(port, (s = new UdpSink(port, this.sim.seed)));
    return s;
  }

  /** A TCP listener on `port` (the same one when asked twice): accepts connections and counts what arrives. */
  tcpListen(port: number): TcpListener {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`host ${this.name}: TCP port ${port} is not 1-65535`);
    let l = this.tcpListeners.get(port);
    if (l === undefined) this.tcpListeners.set(port, (l = new TcpListener(this, port)));
    return l;
  }

  /** Opens a TCP connection that sends `bytes` of payload and closes (see `sim/tcp.ts`); the SYN goes at `startNs`. */
  tcpSend(opts: TcpSendOptions): TcpFlow {
    const dst = parseAddr(opts.dst, `host ${this.name} tcpSend`);
    if (dst.family === 6 && this.v6 === null) throw new RangeError(`host ${this.name}: tcpSend to ${opts.dst} needs an IPv6 address`);
    let port = opts.srcPort;
    if (port === undefined) {
      port = this.nextEphemeral;
      this.nextEphemeral = this.nextEphemeral === 65535 ? 49152 : this.nextEphemeral + 1;
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`host ${this.name}: TCP port ${port} is not 1-65535`);
    if (this.tcpFind(dst.family, dst.family === 4 ? dst.v4 : 0, dst.v6, 0, port, opts.dstPort) !== undefined) {
      throw new RangeError(`host ${this.name}: a TCP connection ${port} → ${opts.dst}:${opts.dstPort} exists already`);
    }
    const f = new TcpFlow(this, dst, port, opts);
    this.tcpAdd(f);
    return f;
  }

  // ---- Sending ----

  /** @internal the path MTU towards a parsed address. */
  pathMtuTo(dst: Addr): number {
    return (dst.family === 4 ? this.pmtu4.get(dst.v4) : this.pmtu6.get(dst.v6)) ?? this.mtu;
  }

  /**
   * @internal a packet for a TCP segment of `tcpLen` bytes to `dst`, its IP header written and `l4` set;
   * null when the pool is empty or it is larger than the interface MTU.
   */
  tcpPacket(dst: Addr, tcpLen: number, df: boolean): PacketBuf | null {
    const ipLen = tcpLen + (dst.family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN);
    if (ipLen > this.mtu) return null;
    const p = this.allocIp(ipLen);
    if (p === null) return null;
    p.l4 = this.ipHeader(p, dst, IPPROTO_TCP, ipLen, df);
    return p;
  }

  /** @internal fills the checksum of the segment `tcpPacket` gave and sends it. */
  tcpTransmit(p: PacketBuf, dst: Addr, tcpLen: number): void {
    this.fillL4Checksum(p, dst.family, p.l4, tcpLen, IPPROTO_TCP);
    this.route(p, dst.family, dst.v4, dst.v6, 0);
  }

  private tcpAdd(ep: TcpEndpoint): void {
    const k = ep.localPort * 65536 + ep.remotePort;
    const l = this.tcpEps.get(k)?.filter((e) => !e.done) ?? [];
    l.push(ep);
    this.tcpEps.set(k, l);
  }

  /** The endpoint of (remote address, local port, remote port); the IPv6 address is `b6[o6, o6 + 16)`. */
  private tcpFind(family: 4 | 6, v4: number, b6: Uint8Array | null, o6: number, localPort: number, remotePort: number): TcpEndpoint | undefined {
    const l = this.tcpEps.get(localPort * 65536 + remotePort);
    if (l === undefined) return undefined;
    for (const ep of l) {
      const r = ep.remote;
      if (!ep.done && r.family === family && (family === 4 ? r.v4 === v4 : eq16(b6!, o6, r.v6!))) return ep;
    }
    return undefined;
  }

  /** @internal builds and sends (or queues) echo request `seq` of `pg`; false when it was too big to send or no buffer was free. */
  sendEcho(pg: Pinger, seq: number): boolean {
    const dst = pg.dst;
    if (!this.fits(dst, pg.ipLen, pg.df || dst.family === 6)) {
      pg.stats.tooBig++;
      return false;
    }
    const p = this.allocIp(pg.ipLen);
    if (p === null) return false;
    const l4 = this.ipHeader(p, dst, dst.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, pg.ipLen, pg.df);
    const b = p.data;
    const len = 8 + pg.size;
    b[l4] = dst.family === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
    b[l4 + 1] = 0;
    wr16(b, l4 + 2, 0);
    wr16(b, l4 + 4, pg.ident);
    wr16(b, l4 + 6, seq & 0xffff);
    for (let i = 0; i < pg.size; i++) b[l4 + 8 + i] = i & 0xff;
    this.fillL4Checksum(p, dst.family, l4, len, dst.family === 4 ? -1 : IPPROTO_ICMPV6);
    this.route(p, dst.family, dst.v4, dst.v6, 0);
    return true;
  }

  /** @internal builds and sends (or queues) datagram `seq` of flow `f`, `size` bytes of IP; false when it was not sent (counted in the flow's stats). */
  sendUdp(f: UdpFlow, seq: number, size: number): boolean {
    const dst = f.dst;
    if (!this.fits(dst, size, (f.opts.df ?? false) || dst.family === 6)) {
      f.stats.tooBig++;
      return false;
    }
    const p = this.allocIp(size);
    if (p === null) {
      f.stats.noBuffer++;
      return false;
    }
    const l4 = this.ipHeader(p, dst, IPPROTO_UDP, size, f.opts.df ?? false);
    const b = p.data;
    const len = size - (l4 - p.start - ETH_HEADER_LEN);
    wr16(b, l4, f.srcPort);
    wr16(b, l4 + 2, f.opts.dstPort);
    wr16(b, l4 + 4, len);
    wr16(b, l4 + 6, 0);
    const pl = l4 + UDP_HEADER_LEN;
    wr32(b, pl, f.flowId);
    wr32(b, pl + 4, seq);
    p.view.setFloat64(pl + 8, this.sim.now);
    b.fill(0, pl + FLOW_HEADER_LEN, l4 + len);
    // Past the flow header the payload is zeros, which add nothing to the sum.
    this.fillL4Checksum(p, dst.family, l4, len, IPPROTO_UDP, UDP_HEADER_LEN + FLOW_HEADER_LEN);
    this.route(p, dst.family, dst.v4, dst.v6, 0);
    return true;
  }

  /** Whether an IP packet of `len` bytes may go to `dst`: within the interface MTU, and the PMTU when DF. */
  private fits(dst: Addr, len: number, df: boolean): boolean {
    // IPv4 without DF is fragmented on the way out (sendTo); IPv6 is not fragmented at the source here.
    if (len > this.mtu && (df || dst.family === 6)) return false;
    if (!df) return true;
    const pmtu = dst.family === 4 ? this.pmtu4.get(dst.v4) : this.pmtu6.get(dst.v6);
    return pmtu === undefined || len <= pmtu;
  }

  private allocIp(ipLen: number): PacketBuf | null {
    const p = this.pool.alloc();
    if (p === null) {
      this.counters.poolEmpty++;
      return null;
    }
    if (p.put(ETH_HEADER_LEN + ipLen) < 0) {
      p.release();
      this.counters.poolEmpty++;
      return null;
    }
    return p;
  }

  /** Writes the IP header of a `ipLen`-byte packet; returns the L4 offset. */
  private ipHeader(p: PacketBuf, dst: Addr, proto: number, ipLen: number, df: boolean): number {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    if (dst.family === 4) {
      b[ip] = 0x45;
      b[ip + 1] = 0;
      wr16(b, ip + 2, ipLen);
      this.ipIdent = (this.ipIdent + 1) & 0xffff;
      wr16(b, ip + 4, this.ipIdent);
      wr16(b, ip + 6, df ? 0x4000 : 0);
      b[ip + 8] = 64;
      b[ip + 9] = proto;
      wr16(b, ip + 10, 0);
      wr32(b, ip + 12, this.v4);
      wr32(b, ip + 16, dst.v4);
      wr16(b, ip + 10, checksum(b, ip, IPV4_HEADER_LEN));
      return ip + IPV4_HEADER_LEN;
    }
    wr32(b, ip, 0x60000000);
    wr16(b, ip + 4, ipLen - IPV6_HEADER_LEN);
    b[ip + 6] = proto;
    b[ip + 7] = 64;
    b.set(this.v6!, ip + 8);
    b.set(dst.v6, ip + 24);
    return ip + IPV6_HEADER_LEN;
  }

  /** ICMPv4 (`proto` -1: no pseudo-header), ICMPv6, UDP or TCP checksum over `len` bytes at `l4`. */
  /** Fills the checksum of the L4 segment at `l4` (`len` bytes); only its first `sumLen` bytes can be non-zero. */
  private fillL4Checksum(p: PacketBuf, family: 4 | 6, l4: number, len: number, proto: number, sumLen = len): void {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const ck = proto === IPPROTO_UDP ? l4 + 6 : proto === IPPROTO_TCP ? l4 + 16 : l4 + 2;
    wr16(b, ck, 0);
    let sum = 0;
    if (proto >= 0) sum = family === 4 ? pseudoSumV4(rd32(b, ip + 12), rd32(b, ip + 16), proto, len) : pseudoSumV6At(b, ip + 8, ip + 24, proto, len);
    let c = finish(onesSum(b, l4, Math.min(sumLen, len), sum));
    if (proto === IPPROTO_UDP && c === 0) c = 0xffff;
    wr16(b, ck, c);
  }

  /**
   * Picks the next hop of an IP packet (IP at start + 14) to `v4`, or to the IPv6 address at `b6[o6]`
   * (which may be inside the packet itself), and sends it, or queues it on its neighbour.
   */
  private route(p: PacketBuf, family: 4 | 6, v4: number, b6: Uint8Array | null, o6: number): void {
    let n: Neigh;
    if (family === 4) {
      const hop = this.onLink4(v4) ? v4 : this.gw4;
      if (hop === null) {
        this.counters.noRoute++;
        p.release();
        return;
      }
      n = this.neighFor(4, hop, null, 0, true);
    } else {
      const onLink = this.onLink6(b6!, o6);
      if (!onLink && this.gw6 === null) {
        this.counters.noRoute++;
        p.release();
        return;
      }
      n = onLink ? this.neighFor(6, 0, b6, o6, true) : this.neighFor(6, 0, this.gw6, 0, true);
    }
    if (n.state === 'reachable' || n.state === 'static') {
      this.sendTo(p, n.mac, family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6);
      return;
    }
    if (n.queue.length >= NEIGH_QUEUE) {
      // Linux drops the oldest queued packet.
      n.queue.shift()!.release();
      this.counters.neighDrops++;
    }
    n.queue.push(p);
    if (n.state !== 'incomplete') {
      n.state = 'incomplete';
      n.tries = 0;
      this.solicit(n);
    }
  }

  /** Neighbour retransmission timer: `arg` is the entry's index. */
  run(arg: number): void {
    const n = this.neighs[arg];
    if (n === undefined || n.state !== 'incomplete') return;
    if (n.tries >= NEIGH_TRIES) {
      n.state = 'failed';
      this.counters.neighDrops += n.queue.length;
      for (const q of n.queue) q.release();
      n.queue.length = 0;
      return;
    }
    this.solicit(n);
  }

  /**
   * Announces the host's IPv4 address with a gratuitous ARP (an ARP request for its own address, RFC 5227
   * §2.3), as CNI plugins do when a pod comes up: switches on the way learn where its MAC is.
   */
  announce(): void {
    this.arpRequest(this.v4);
  }

  /** Broadcasts an ARP request for `target` from this host's MAC and address. */
  private arpRequest(target: number): void {
    const p = this.pool.alloc();
    if (p === null) {
      this.counters.poolEmpty++;
      return;
    }
    const b = p.data;
    p.put(ETH_HEADER_LEN + 28);
    const a = p.start + ETH_HEADER_LEN;
    wr16(b, a, 1);
    wr16(b, a + 2, ETHERTYPE_IPV4);
    b[a + 4] = 6;
    b[a + 5] = 4;
    wr16(b, a + 6, 1);
    wrMac(b, a + 8, this.mac);
    wr32(b, a + 14, this.v4);
    wrMac(b, a + 18, 0);
    wr32(b, a + 24, target);
    this.counters.arpRequestsSent++;
    this.sendTo(p, MAC_BROADCAST, ETHERTYPE_ARP);
  }

  private solicit(n: Neigh): void {
    n.tries++;
    this.sim.after(NEIGH_RETRANS_NS, this, n.index);
    if (n.family === 4) {
      this.arpRequest(n.v4);
      return;
    }
    const p = this.pool.alloc();
    if (p === null) {
      this.counters.poolEmpty++;
      return;
    }
    const b = p.data;
    // NS to the solicited-node multicast address ff02::1:ffXX:XXXX (RFC 4291 §2.7.1) with our link-layer address.
    const t = n.v6!;
    p.put(ETH_HEADER_LEN + IPV6_HEADER_LEN + 32);
    const ip = p.start + ETH_HEADER_LEN;
    wr32(b, ip, 0x60000000);
    wr16(b, ip + 4, 32);
    b[ip + 6] = IPPROTO_ICMPV6;
    b[ip + 7] = 255;
    b.set(this.v6!, ip + 8);
    b.set(SNM_PREFIX, ip + 24);
    b[ip + 37] = t[13]!;
    b[ip + 38] = t[14]!;
    b[ip + 39] = t[15]!;
    const l4 = ip + IPV6_HEADER_LEN;
    b[l4] = ICMPV6_NEIGHBOR_SOLICIT;
    b[l4 + 1] = 0;
    wr16(b, l4 + 2, 0);
    wr32(b, l4 + 4, 0);
    b.set(t, l4 + 8);
    b[l4 + 24] = 1;
    b[l4 + 25] = 1;
    wrMac(b, l4 + 26, this.mac);
    this.fillL4Checksum(p, 6, l4, 32, IPPROTO_ICMPV6);
    this.counters.nsSent++;
    this.sendTo(p, 0x3333ff000000 + ((t[13]! << 16) | (t[14]! << 8) | t[15]!), ETHERTYPE_IPV6);
  }

  /** Writes the Ethernet header and hands the frame to whatever the host is plugged into. */
  private sendTo(p: PacketBuf, dstMac: number, etherType: number): void {
    const b = p.data;
    wrMac(b, p.start, dstMac);
    wrMac(b, p.start + 6, this.mac);
    wr16(b, p.start + 12, etherType);
    if (etherType === ETHERTYPE_IPV4 && p.end - p.start - ETH_HEADER_LEN > this.mtu) {
      // RFC 791 at the source, as Linux does for a datagram without DF above the MTU.
      const out = this.fragOut;
      out.length = 0;
      const k = fragmentIpv4(p, p.start + ETH_HEADER_LEN, this.mtu, this.pool, out);
      if (k < 0) {
        if (k === -DropReason.PoolExhausted) this.counters.poolEmpty++;
        else this.counters.unsendable++;
        p.release();
        return;
      }
      this.counters.fragmented++;
      this.counters.fragmentsSent += k;
      for (let i = 0; i < k; i++) this.emit(out[i]!);
      out.length = 0;
      return;
    }
    this.emit(p);
  }

  private emit(p: PacketBuf): void {
    if (this.rx === null || !this.linkUp) {
      p.release();
      return;
    }
    this.counters.txFrames++;
    const d = this.depth++;
    let batch = this.batches[d];
    if (batch === undefined) this.batches[d] = batch = new PacketBatch(1);
    batch.clear();
    batch.add(p);
    try {
      this.rx(batch);
    } finally {
      batch.clear();
      this.depth--;
    }
  }

  private neighFor(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, create: true): Neigh;
  private neighFor(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, create: boolean): Neigh | undefined;
  private neighFor(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, create: boolean): Neigh | undefined {
    const i = family === 4 ? this.neigh4.get(v4) : this.neigh6.get(b!, o);
    if (i !== undefined) return this.neighs[i]!;
    if (!create) return undefined;
    const index = this.neighs.length;
    const n: Neigh = { index, family, v4, v6: family === 6 ? b!.slice(o, o + 16) : null, mac: 0, state: 'failed', tries: 0, queue: [] };
    this.neighs.push(n);
    if (family === 4) this.neigh4.set(v4, index);
    else this.neigh6.set(n.v6!, index);
    return n;
  }

  /** A neighbour's MAC became known: remember it (static entries stay) and send what waited for it. */
  private learn(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, mac: number, create: boolean): void {
    const n = this.neighFor(family, v4, b, o, create);
    if (n === undefined || n.state === 'static') return;
    n.mac = mac;
    n.state = 'reachable';
    this.flush(n);
  }

  private flush(n: Neigh): void {
    const q = n.queue.splice(0);
    for (const p of q) this.sendTo(p, n.mac, n.family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6);
  }

  private onLink4(a: number): boolean {
    const m = mask4(this.v4Len);
    return (a & m) >>> 0 === (this.v4 & m) >>> 0;
  }

  private onLink6(b: Uint8Array, o: number): boolean {
    const g = this.v6;
    if (g === null) return false;
    for (let i = 0; i < 16; i++) {
      const bits = Math.max(0, Math.min(8, this.v6Len - 8 * i));
      const m = (0xff00 >>> bits) & 0xff;
      if (((b[o + i]! ^ g[i]!) & m) !== 0) return false;
    }
    return true;
  }

  // ---- Receiving ----

  /** Handles one received frame; true when the buffer was reused (sent on), false to release it. */
  private receive(p: PacketBuf): boolean {
    const b = p.data;
    const s = p.start;
    if (p.end - s < ETH_HEADER_LEN) {
      this.counters.rxBad++;
      return false;
    }
    const dmac = rdMac(b, s);
    if (dmac !== this.mac && dmac !== MAC_BROADCAST && dmac !== this.snmMac && dmac !== 0x333300000001) {
      this.counters.rxIgnored++;
      return false;
    }
    const type = rd16(b, s + 12);
    if (type === ETHERTYPE_ARP) return this.arp(p);
    if (type === ETHERTYPE_IPV4) return this.ipv4(p);
    if (type === ETHERTYPE_IPV6 && this.v6 !== null) return this.ipv6(p);
    this.counters.rxIgnored++;
    return false;
  }

  private arp(p: PacketBuf): boolean {
    const b = p.data;
    const a = p.start + ETH_HEADER_LEN;
    if (p.end - a < 28 || rd16(b, a) !== 1 || rd16(b, a + 2) !== ETHERTYPE_IPV4 || b[a + 4] !== 6 || b[a + 5] !== 4) {
      this.counters.rxBad++;
      return false;
    }
    const op = rd16(b, a + 6);
    const senderMac = rdMac(b, a + 8);
    const senderIp = rd32(b, a + 14);
    const targetIp = rd32(b, a + 24);
    const forUs = targetIp === this.v4;
    // RFC 826: update an existing entry; add one when the packet is for us.
    if (senderIp !== 0) this.learn(4, senderIp, null, 0, senderMac, forUs);
    if (op !== 1 || !forUs || !this.answerNeighbors) return false;
    wr16(b, a + 6, 2);
    wrMac(b, a + 18, senderMac);
    wr32(b, a + 24, senderIp);
    wrMac(b, a + 8, this.mac);
    wr32(b, a + 14, this.v4);
    p.end = a + 28;
    this.counters.arpRepliesSent++;
    this.sendTo(p, senderMac, ETHERTYPE_ARP);
    return true;
  }

  /** A fragment for this host: held until its datagram is complete, which is then received as one packet. */
  private reassemble(p: PacketBuf, ip: number): boolean {
    if (this.reasm === null) {
      // Reassembled datagrams need buffers for 65,535 bytes of IP: a small pool of its own, made on first use.
      this.reasm = new Reassembler({ pool: new PacketPool({ count: 16, frameCapacity: ETH_HEADER_LEN + 65535 }), memoryCap: 1 << 20 });
    }
    const r = this.reasm;
    const v = r.add(p, ip, this.sim.now);
    if (v !== REASM_HELD && v !== REASM_DONE) this.fragmentsRefused++;
    // Refused here, plus what the reassembler discarded itself (overlaps, timeouts, evictions): each once.
    let held = 0;
    for (let i = 0; i < r.drops.length; i++) held += r.drops[i]!;
    this.counters.fragmentDrops = this.fragmentsRefused + held;
    if (v === REASM_HELD) return true;
    if (v !== REASM_DONE) return false;
    this.counters.reassembled++;
    const q = r.take()!;
    if (!this.ipv4(q)) q.release();
    return true;
  }

  private ipv4(p: PacketBuf): boolean {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const avail = p.end - ip;
    if (avail < IPV4_HEADER_LEN || b[ip]! >> 4 !== 4) {
      this.counters.rxBad++;
      return false;
    }
    const hl = (b[ip]! & 0x0f) << 2;
    const total = rd16(b, ip + 2);
    if (hl < IPV4_HEADER_LEN || total < hl || total > avail || checksum(b, ip, hl) !== 0) {
      this.counters.rxBad++;
      return false;
    }
    if (rd32(b, ip + 16) !== this.v4) {
      this.counters.rxIgnored++;
      return false;
    }
    if ((rd16(b, ip + 6) & 0x3fff) !== 0) return this.reassemble(p, ip);
    p.end = ip + total;
    const l4 = ip + hl;
    const len = total - hl;
    const proto = b[ip + 9]!;
    if (proto === IPPROTO_ICMP) {
      if (len < 8 || checksum(b, l4, len) !== 0) {
        this.counters.rxBad++;
        return false;
      }
      const t = b[l4]!;
      if (t === ICMPV4_ECHO_REQUEST && b[l4 + 1] === 0) {
        // The request was to our address: swapping the addresses leaves both sums as they were; the TTL
        // and the type change are folded in (RFC 1624), the payload is not summed again.
        const src = rd32(b, ip + 12);
        wr32(b, ip + 12, this.v4);
        wr32(b, ip + 16, src);
        const oldTtl = rd16(b, ip + 8),
          newTtl = (64 << 8) | (oldTtl & 0xff);
        wr16(b, ip + 8, newTtl);
        wr16(b, ip + 10, updateChecksum16(rd16(b, ip + 10), oldTtl, newTtl));
        const oldType = rd16(b, l4),
          newType = (ICMPV4_ECHO_REPLY << 8) | (oldType & 0xff);
        wr16(b, l4, newType);
        wr16(b, l4 + 2, updateChecksum16(rd16(b, l4 + 2), oldType, newType));
        this.counters.echoRepliesSent++;
        // Routed like any packet of ours (ARP for the next hop if need be), as Linux does.
        this.route(p, 4, src, null, 0);
        return true;
      }
      if (t === ICMPV4_ECHO_REPLY) {
        this.pingers.get(rd16(b, l4 + 4))?.reply(rd16(b, l4 + 6), this.sim.now);
        return false;
      }
      if (t === ICMPV4_DEST_UNREACHABLE && len >= 8 + IPV4_HEADER_LEN + 8) {
        const q = l4 + 8;
        if (rd32(b, q + 12) !== this.v4) return false;
        const qdst = rd32(b, q + 16);
        if (b[l4 + 1] === ICMPV4_CODE_FRAG_NEEDED) {
          const mtu = rd16(b, l4 + 6);
          // RFC 1191 §3: never below 68; a zero from a pre-1191 router is not guessed at here.
          if (mtu >= 68 && mtu < (this.pmtu4.get(qdst) ?? this.mtu)) {
            this.pmtu4.set(qdst, mtu);
            this.counters.pmtuUpdates++;
          }
        }
        const qhl = (b[q]! & 0x0f) << 2;
        if (b[q + 9] === IPPROTO_TCP && len >= 8 + qhl + 4) this.tcpFind(4, qdst, null, 0, rd16(b, q + qhl), rd16(b, q + qhl + 2))?.pmtuChanged();
        if (b[q + 9] === IPPROTO_ICMP && len >= 8 + qhl + 8 && b[q + qhl] === ICMPV4_ECHO_REQUEST) {
          const pg = this.pingers.get(rd16(b, q + qhl + 4));
          if (pg !== undefined) pg.stats.errors++;
        }
        return false;
      }
      this.counters.rxIgnored++;
      return false;
    }
    if (proto === IPPROTO_UDP) return this.udp(p, l4, len, pseudoSumV4(rd32(b, ip + 12), rd32(b, ip + 16), IPPROTO_UDP, len), true);
    if (proto === IPPROTO_TCP) return this.tcp(p, 4, ip, l4, len, pseudoSumV4(rd32(b, ip + 12), rd32(b, ip + 16), IPPROTO_TCP, len));
    this.counters.rxIgnored++;
    return false;
  }

  private udp(p: PacketBuf, l4: number, len: number, pseudo: number, zeroOk: boolean): boolean {
    const b = p.data;
    const ulen = len >= UDP_HEADER_LEN ? rd16(b, l4 + 4) : 0;
    if (ulen < UDP_HEADER_LEN || ulen > len) {
      this.counters.rxBad++;
      return false;
    }
    const ck = rd16(b, l4 + 6);
    if (ck === 0 ? !zeroOk : finish(onesSum(b, l4, ulen, pseudo)) !== 0) {
      this.counters.rxBad++;
      return false;
    }
    const sink = this.sinks.get(rd16(b, l4 + 2));
    if (sink === undefined) {
      this.counters.udpNoPort++;
      return false;
    }
    sink.take(b, l4 + UDP_HEADER_LEN, ulen - UDP_HEADER_LEN, this.sim.now, p.view);
    return false;
  }

  /**
   * One TCP segment (`len` bytes at `l4`, the IP header at `ip`) to its endpoint: a connection, a listener
   * for a SYN, or else a RST back (RFC 9293 §3.10.7.1).
   */
  private tcp(p: PacketBuf, family: 4 | 6, ip: number, l4: number, len: number, pseudo: number): boolean {
    const b = p.data;
    const hl = len >= TCP_HEADER_LEN ? (b[l4 + 12]! >> 4) << 2 : 0;
    if (hl < TCP_HEADER_LEN || hl > len || finish(onesSum(b, l4, len, pseudo)) !== 0) {
      this.counters.rxBad++;
      return false;
    }
    const remotePort = rd16(b, l4);
    const localPort = rd16(b, l4 + 2);
    const flags = rd16(b, l4 + 12) & 0x3f;
    const seq = rd32(b, l4 + 4);
    const ack = rd32(b, l4 + 8);
    const v4 = family === 4 ? rd32(b, ip + 12) : 0;
    const dataLen = len - hl;
    let mss = -1;
    if ((flags & TCP_SYN) !== 0) {
      for (let o = l4 + TCP_HEADER_LEN; o < l4 + hl; ) {
        const kind = b[o]!;
        if (kind === 0) break;
        if (kind === 1) {
          o++;
          continue;
        }
        const ol = o + 1 < l4 + hl ? b[o + 1]! : 0;
        if (ol < 2 || o + ol > l4 + hl) break;
        if (kind === TCP_OPT_MSS && ol === 4) mss = rd16(b, o + 2);
        o += ol;
      }
    }
    let ep = this.tcpFind(family, v4, b, ip + 8, localPort, remotePort);
    if (ep === undefined) {
      const lst = this.tcpListeners.get(localPort);
      if (lst !== undefined && (flags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN) {
        const remote: Addr = family === 4 ? { family: 4, v4, v6: null } : { family: 6, v4: 0, v6: b.slice(ip + 8, ip + 24) };
        ep = lst.accept(remote, remotePort, seq);
        this.tcpAdd(ep);
      } else {
        this.counters.tcpNoConn++;
        if ((flags & TCP_RST) !== 0) return false;
        const remote: Addr = family === 4 ? { family: 4, v4, v6: null } : { family: 6, v4: 0, v6: b.slice(ip + 8, ip + 24) };
        const segLen = dataLen + ((flags & TCP_SYN) !== 0 ? 1 : 0) + ((flags & TCP_FIN) !== 0 ? 1 : 0);
        this.counters.tcpRstSent++;
        sendReset(this, remote, localPort, remotePort, flags & TCP_ACK, seq, ack, segLen);
        return false;
      }
    }
    ep.segment(flags, seq, ack, rd16(b, l4 + 14), mss, b, l4 + hl, dataLen);
    return false;
  }

  private ipv6(p: PacketBuf): boolean {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const avail = p.end - ip;
    if (avail < IPV6_HEADER_LEN || b[ip]! >> 4 !== 6) {
      this.counters.rxBad++;
      return false;
    }
    const len = rd16(b, ip + 4);
    if (IPV6_HEADER_LEN + len > avail) {
      this.counters.rxBad++;
      return false;
    }
    const me = this.v6!;
    const toMe = eq16(b, ip + 24, me);
    const toSnm = !toMe && b[ip + 24] === 0xff && eq16(b, ip + 24, this.snm);
    if (!toMe && !toSnm) {
      this.counters.rxIgnored++;
      return false;
    }
    p.end = ip + IPV6_HEADER_LEN + len;
    const nh = b[ip + 6]!;
    const l4 = ip + IPV6_HEADER_LEN;
    const pseudo = pseudoSumV6At(b, ip + 8, ip + 24, nh, len);
    // Extension headers are not walked: what this host sends and answers has none.
    if (nh === IPPROTO_UDP && toMe) return this.udp(p, l4, len, pseudo, false);
    if (nh === IPPROTO_TCP && toMe) return this.tcp(p, 6, ip, l4, len, pseudo);
    if (nh !== IPPROTO_ICMPV6 || len < 8) {
      this.counters.rxIgnored++;
      return false;
    }
    if (finish(onesSum(b, l4, len, pseudo)) !== 0) {
      this.counters.rxBad++;
      return false;
    }
    const t = b[l4]!;
    if (t === ICMPV6_NEIGHBOR_SOLICIT || t === ICMPV6_NEIGHBOR_ADVERT) return this.nd(p, ip, l4, len);
    if (!toMe) {
      this.counters.rxIgnored++;
      return false;
    }
    if (t === ICMPV6_ECHO_REQUEST && b[l4 + 1] === 0) {
      b.copyWithin(ip + 24, ip + 8, ip + 24);
      b.set(me, ip + 8);
      b[ip + 7] = 64;
      b[l4] = ICMPV6_ECHO_REPLY;
      this.fillL4Checksum(p, 6, l4, len, IPPROTO_ICMPV6);
      this.counters.echoRepliesSent++;
      this.route(p, 6, 0, b, ip + 24);
      return true;
    }
    if (t === ICMPV6_ECHO_REPLY) {
      this.pingers.get(rd16(b, l4 + 4))?.reply(rd16(b, l4 + 6), this.sim.now);
      return false;
    }
    if (t === ICMPV6_PACKET_TOO_BIG && len >= 8 + IPV6_HEADER_LEN) {
      const q = l4 + 8;
      if (!eq16(b, q + 8, me)) return false;
      const mtu = rd32(b, l4 + 4);
      // RFC 8201 §4: a PTB below the IPv6 minimum MTU is not believed.
      if (mtu >= 1280 && mtu < (this.pmtu6.get(b, q + 24) ?? this.mtu)) {
        this.pmtu6.set(b.subarray(q + 24, q + 40), mtu);
        this.counters.pmtuUpdates++;
      }
      if (b[q + 6] === IPPROTO_TCP && len >= 8 + IPV6_HEADER_LEN + 4)
        this.tcpFind(6, 0, b, q + 24, rd16(b, q + IPV6_HEADER_LEN), rd16(b, q + IPV6_HEADER_LEN + 2))?.pmtuChanged();
      if (b[q + 6] === IPPROTO_ICMPV6 && len >= 8 + IPV6_HEADER_LEN + 8 && b[q + IPV6_HEADER_LEN] === ICMPV6_ECHO_REQUEST) {
        const pg = this.pingers.get(rd16(b, q + IPV6_HEADER_LEN + 4));
        if (pg !== undefined) pg.stats.errors++;
      }
      return false;
    }
    this.counters.rxIgnored++;
    return false;
  }

  /** NS for our address → NA in place (RFC 4861 §7.2.4); NS/NA teach us the sender's or target's MAC. */
  private nd(p: PacketBuf, ip: number, l4: number, len: number): boolean {
    const b = p.data;
    if (len < 24 || b[ip + 7] !== 255 || b[l4 + 1] !== 0) {
      this.counters.rxBad++;
      return false;
    }
    const t = b[l4]!;
    let lla = -1;
    for (let o = l4 + 24; o + 8 <= l4 + len; ) {
      const ol = b[o + 1]! * 8;
      if (ol === 0 || o + ol > l4 + len) {
        this.counters.rxBad++;
        return false;
      }
      if (b[o] === (t === ICMPV6_NEIGHBOR_SOLICIT ? 1 : 2)) lla = rdMac(b, o + 2);
      o += ol;
    }
    const me = this.v6!;
    if (t === ICMPV6_NEIGHBOR_ADVERT) {
      if (lla >= 0) this.learn(6, 0, b, l4 + 8, lla, false);
      return false;
    }
    if (!eq16(b, l4 + 8, me)) return false;
    let unspecified = true;
    for (let i = 0; i < 16; i++) if (b[ip + 8 + i] !== 0) unspecified = false;
    // Learn the asker, as ARP does, whether or not this host answers.
    if (lla >= 0 && !unspecified) this.learn(6, 0, b, ip + 8, lla, true);
    if (!this.answerNeighbors) return false;
    const dstMac = unspecified ? 0x333300000001 : rdMac(b, p.start + 6);
    if (unspecified) b.set(ALL_NODES, ip + 24);
    else b.copyWithin(ip + 24, ip + 8, ip + 24);
    b.set(me, ip + 8);
    const naLen = 32;
    p.end = l4;
    if (p.put(naLen) < 0) return false;
    b[l4] = ICMPV6_NEIGHBOR_ADVERT;
    b[l4 + 1] = 0;
    wr16(b, l4 + 2, 0);
    wr32(b, l4 + 4, unspecified ? 0x20000000 : 0x60000000);
    b.set(me, l4 + 8);
    b[l4 + 24] = 2;
    b[l4 + 25] = 1;
    wrMac(b, l4 + 26, this.mac);
    wr16(b, ip + 4, naLen);
    b[ip + 6] = IPPROTO_ICMPV6;
    b[ip + 7] = 255;
    this.fillL4Checksum(p, 6, l4, naLen, IPPROTO_ICMPV6);
    this.counters.naSent++;
    this.sendTo(p, dstMac, ETHERTYPE_IPV6);
    return true;
  }
}

const SNM_PREFIX = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0]);
const ALL_NODES = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

function snmOf(a: Uint8Array): Uint8Array {
  const s = SNM_PREFIX.slice();
  s[13] = a[13]!;
  s[14] = a[14]!;
  s[15] = a[15]!;
  return s;
}
