/**
 * ICMP echo (v4 and v6) from a simulated host: `ping` sends requests (`Pinger`, one simulator task) and
 * keeps `PingStats` as replies come. Sizes are ICMP data bytes (as `ping -s`). With DF (always for IPv6)
 * a request above the path MTU is not sent but counted "too big", as `ping -M do` does.
 */
import { wr16 } from '../wire/bytes.js';
import { ICMPV4_ECHO_REQUEST } from '../wire/icmpv4.js';
import { ICMPV6_ECHO_REQUEST } from '../wire/icmpv6.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import type { Addr } from '../wire/addr.js';
import type { SimTask } from './engine.js';
import { LatencySample, percentile, sampleSeed } from './latency.js';
import type { HostStack } from './stack.js';

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
  /**
   * RTT by the request's sequence number on the wire (NaN while unanswered). The wire holds 16 bits, so
   * request k and request k + 65,536 share slot k: the slot is the later one's once it is sent, and the
   * books stay bounded however long the ping runs.
   */
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

/** A sender of echo requests: one task, `run(0)` sends the next request. */
export class Pinger implements SimTask {
  readonly stats: PingStats;
  private seq = 0;
  /** Send time by wire sequence number (`seq & 0xffff`, as `PingStats.rttBySeq`). */
  readonly sendTimes: number[] = [];
  readonly ipLen: number;

  constructor(
    private readonly host: HostStack,
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
    const w = seq & 0xffff;
    this.sendTimes[w] = now;
    this.stats.rttBySeq[w] = NaN;
    if (this.send(seq)) this.stats.sent++;
    if (this.seq < this.count) this.host.sim.schedule(now + this.intervalNs, this, 0);
  }

  /** Builds and sends (or queues) request `seq`; false when it was too big to send or no buffer was free. */
  private send(seq: number): boolean {
    const host = this.host;
    const dst = this.dst;
    if (!host.fits(dst, this.ipLen, this.df || dst.family === 6)) {
      this.stats.tooBig++;
      return false;
    }
    const p = host.allocIp(this.ipLen);
    if (p === null) return false;
    const l4 = host.ipHeader(p, dst, dst.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, this.ipLen, this.df);
    const b = p.data;
    const len = 8 + this.size;
    b[l4] = dst.family === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
    b[l4 + 1] = 0;
    wr16(b, l4 + 2, 0);
    wr16(b, l4 + 4, this.ident);
    wr16(b, l4 + 6, seq & 0xffff);
    for (let i = 0; i < this.size; i++) b[l4 + 8 + i] = i & 0xff;
    host.fillL4Checksum(p, dst.family, l4, len, dst.family === 4 ? -1 : IPPROTO_ICMPV6);
    host.route(p, dst.family, dst.v4, dst.v6, 0);
    return true;
  }

  /** An echo reply carrying sequence number `seq` (16 bits, as on the wire) arrived at `now`. */
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
