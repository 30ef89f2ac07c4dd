/**
 * A small TCP for simulated hosts (RFC 9293 segment format): a bulk sender (`TcpFlow`, from
 * `SimHost.tcpSend`) and a receiving sink (`TcpListener`, from `SimHost.tcpListen`). It exists to show
 * how a real transport reacts to what the simulated network does: loss, outages, and path MTU.
 *
 * Sender, one `TcpFlow` per connection:
 * - Active open with an MSS option from the interface MTU (RFC 9293 §3.7.1); the MSS used is the least of
 *   the peer's, our interface's and (with DF, always for IPv6) the path MTU's, each less 40 (IPv4) or 60
 *   (IPv6) bytes of headers. No other options: no window scaling, timestamps or SACK.
 * - Congestion control is NewReno (RFC 5681 + RFC 6582), counted in bytes: initial window 10 × MSS
 *   (RFC 6928), slow start by at most one MSS per ACK (RFC 3465 with L = 1), congestion avoidance by about
 *   MSS²/cwnd per ACK (in both, only while the window is what limits sending), fast retransmit on the third duplicate ACK and fast recovery that stays in recovery
 *   over partial ACKs until everything outstanding at entry is acknowledged.
 * - Retransmission timer per RFC 6298: SRTT/RTTVAR from one timed segment at a time (Karn: never a
 *   retransmitted one), RTO = max(200 ms, SRTT + max(1 ms, 4·RTTVAR)) — 200 ms is Linux's TCP_RTO_MIN —
 *   initial RTO 1 s, doubled on each expiry up to 120 s. On expiry the window collapses to one MSS and
 *   sending restarts from the first unacknowledged byte (go-back-N, as without SACK). After `maxRetries`
 *   expiries in a row (default 15, Linux's tcp_retries2; 6 for the SYN, tcp_syn_retries) the flow is
 *   aborted.
 * - PMTUD (RFC 1191 / RFC 8201): data goes with DF. A frag-needed or Packet Too Big that lowers the
 *   host's PMTU below the segment size lowers the MSS and resends what is outstanding at once at the new
 *   size, without touching the congestion window (Linux's tcp_simple_retransmit). With no ICMP (a black
 *   hole) nothing tells the flow, and it backs off on its timer until it gives up.
 * - After the last byte it sends FIN (on the last data segment). TIME-WAIT is not modelled: the flow is
 *   `closed` once its FIN is acknowledged and the peer's FIN has been acknowledged.
 *
 * Receiver, one connection per accepted SYN:
 * - Answers a SYN with SYN-ACK and its MSS (interface MTU less headers); a retransmitted SYN gets the same
 *   SYN-ACK again (it keeps no timer of its own). A SYN to a port without a listener, and any segment of
 *   no connection, is answered with RST (RFC 9293 §3.10.7.1).
 * - Every segment with data or FIN is acknowledged at once (no delayed ACK, like Linux's quick-ACK mode),
 *   so a hole yields one duplicate ACK per later segment. The window is a fixed 65535 bytes. Out-of-order
 *   segments inside the window are kept (as ranges: the payload is a known pattern, see
 *   `tcpPayloadByte`) and delivered when the hole fills; every payload byte is checked against the
 *   pattern and a mismatch counted as `corrupt`.
 * - On the sender's FIN it answers FIN+ACK at once (the application closes as soon as it reads EOF), and
 *   is `closed` on the ACK of that FIN.
 *
 * Allocation: segments come from the host's packet pool; each flow is one simulator task whose timer is a
 * deadline with a generation number (a stale event finds a different generation and does nothing).
 * Everything is deterministic: initial sequence numbers come from `sim.rng`.
 */
import type { PacketBuf } from '../packet/buf.js';
import { wr16, wr32 } from '../wire/bytes.js';
import { IPPROTO_TCP, IPV4_HEADER_LEN } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { TCP_ACK, TCP_FIN, TCP_HEADER_LEN, TCP_OPT_MSS, TCP_PSH, TCP_RST, TCP_SYN } from '../wire/tcp.js';
import type { SimTask } from './engine.js';
import type { Addr } from '../wire/addr.js';
import type { HostStack } from './stack.js';

/** The receive window every endpoint advertises (no window scaling). */
export const TCP_WINDOW = 65535;
/** RTO lower bound: Linux's TCP_RTO_MIN (RFC 6298 §2.4 says 1 s; Linux uses 200 ms). */
export const TCP_MIN_RTO_NS = 200e6;
/** RTO upper bound: Linux's TCP_RTO_MAX. */
export const TCP_MAX_RTO_NS = 120e9;
/** RTO before any RTT sample (RFC 6298 §2.1). */
export const TCP_INITIAL_RTO_NS = 1e9;
/** Clock granularity G of RFC 6298 §2. */
const CLOCK_G_NS = 1e6;
/** MSS assumed when the peer sends no MSS option (RFC 9293 §3.7.1): 536 for IPv4, 1220 for IPv6. */
const DEFAULT_MSS4 = 536;
const DEFAULT_MSS6 = 1220;
/** The simulator argument that starts a flow; timer events carry their generation (≥ 1). */
const ARG_START = -1;

/** Headers in front of the payload of a segment without options: IP + TCP. */
export function tcpHeaderBytes(family: 4 | 6): number {
  return (family === 4 ? 20 : 40) + TCP_HEADER_LEN;
}

/**
 * Byte `i` (from 0) of every flow's payload. Deterministic so that the receiver can check what it gets
 * without a copy of what was sent, and mixed enough that a segment delivered at the wrong offset shows.
 */
export function tcpPayloadByte(i: number): number {
  return (i ^ (i >>> 8) ^ (i >>> 16) ^ (i >>> 24) ^ 0x5a) & 0xff;
}

/** What the host hands a segment to. @internal */
export interface TcpEndpoint {
  readonly remote: Addr;
  readonly localPort: number;
  readonly remotePort: number;
  /** One valid (checksummed) segment: data is `b[data, data + dataLen)`; `mss` is the MSS option or -1. */
  segment(flags: number, seq: number, ack: number, wnd: number, mss: number, b: Uint8Array, data: number, dataLen: number): void;
  /** The host's path MTU towards `remote` went down. */
  pmtuChanged(): void;
  /** Closed, aborted or reset: the host gives it no more segments (TIME-WAIT is not modelled). */
  readonly done: boolean;
}

/** Writes a TCP header at `l4` (20 bytes, or 24 with an MSS option when `mss` ≥ 0); the checksum is left 0. */
function writeHeader(b: Uint8Array, l4: number, sport: number, dport: number, seq: number, ack: number, flags: number, mss: number): void {
  wr16(b, l4, sport);
  wr16(b, l4 + 2, dport);
  wr32(b, l4 + 4, seq >>> 0);
  wr32(b, l4 + 8, ack >>> 0);
  const hl = mss >= 0 ? TCP_HEADER_LEN + 4 : TCP_HEADER_LEN;
  wr16(b, l4 + 12, ((hl >> 2) << 12) | flags);
  wr16(b, l4 + 14, TCP_WINDOW);
  wr16(b, l4 + 16, 0);
  wr16(b, l4 + 18, 0);
  if (mss >= 0) {
    b[l4 + 20] = TCP_OPT_MSS;
    b[l4 + 21] = 4;
    wr16(b, l4 + 22, mss);
  }
}

/**
 * A packet for a TCP segment of `tcpLen` bytes to `dst`, its IP header written and `l4` set; null when the
 * pool is empty or it is larger than the interface MTU.
 */
function tcpPacket(host: HostStack, dst: Addr, tcpLen: number, df: boolean): PacketBuf | null {
  const ipLen = tcpLen + (dst.family === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN);
  if (ipLen > host.mtu) return null;
  const p = host.allocIp(ipLen);
  if (p === null) return null;
  p.l4 = host.ipHeader(p, dst, IPPROTO_TCP, ipLen, df);
  return p;
}

/** Fills the checksum of the segment `tcpPacket` gave and sends it. */
function tcpTransmit(host: HostStack, p: PacketBuf, dst: Addr, tcpLen: number): void {
  host.fillL4Checksum(p, dst.family, p.l4, tcpLen, IPPROTO_TCP);
  host.route(p, dst.family, dst.v4, dst.v6, 0);
}

/** Sends a segment without payload (SYN, ACK, FIN, RST); false when the pool was empty. */
function sendControl(host: HostStack, remote: Addr, sport: number, dport: number, seq: number, ack: number, flags: number, mss: number, df: boolean): boolean {
  const tcpLen = mss >= 0 ? TCP_HEADER_LEN + 4 : TCP_HEADER_LEN;
  const p = tcpPacket(host, remote, tcpLen, df);
  if (p === null) return false;
  writeHeader(p.data, p.l4, sport, dport, seq, ack, flags, mss);
  tcpTransmit(host, p, remote, tcpLen);
  return true;
}

/** @internal the RST answering a segment of no connection (RFC 9293 §3.10.7.1). */
export function sendReset(host: HostStack, remote: Addr, localPort: number, remotePort: number, flags: number, seq: number, ack: number, segLen: number): void {
  if ((flags & TCP_ACK) !== 0) sendControl(host, remote, localPort, remotePort, ack, 0, TCP_RST, -1, false);
  else sendControl(host, remote, localPort, remotePort, 0, seq + segLen, TCP_RST | TCP_ACK, -1, false);
}

export type TcpState = 'idle' | 'syn-sent' | 'established' | 'fin-wait-1' | 'fin-wait-2' | 'closed' | 'aborted';

export interface TcpSendOptions {
  /** Destination address (IPv4 or IPv6). */
  dst: string;
  dstPort: number;
  /** Default: an ephemeral port from 49152 up, one per flow of the host. */
  srcPort?: number;
  /** Payload bytes to send before FIN. */
  bytes: number;
  /** When to send the SYN. Default now. */
  startNs?: number;
  /** Don't Fragment on IPv4 segments, and path MTU discovery. Default true (IPv6: always). */
  df?: boolean;
  /** Timer expiries in a row before the connection is aborted. Default 15 (Linux tcp_retries2). */
  maxRetries?: number;
  /** SYN retransmissions before giving up. Default 6 (Linux tcp_syn_retries). */
  synRetries?: number;
  /** Initial window in segments. Default 10 (RFC 6928). */
  initialWindow?: number;
  /** Record (time ns, cwnd bytes) after every change in `stats.cwndTrace`. Default false. */
  traceCwnd?: boolean;
}

/** What a sender counted; updated as the flow runs. Times are simulator ns, NaN until they happen. */
export class TcpFlowStats {
  state: TcpState = 'idle';
  /** Why an aborted flow gave up. */
  abortReason: '' | 'timeout' | 'reset' = '';
  /** Payload bytes to send. */
  bytes = 0;
  /** Payload bytes cumulatively acknowledged. */
  bytesAcked = 0;
  /** Segments put on the wire (SYN, data, FIN; not pure ACKs), retransmissions included. */
  segmentsSent = 0;
  /** Of those, retransmissions (timer, fast retransmit, recovery, PMTU). */
  retransmits = 0;
  /** Retransmission timer expiries (the SYN's included). */
  timeouts = 0;
  /** Entries into fast retransmit / fast recovery. */
  fastRetransmits = 0;
  /** Times the MSS was lowered by a too-big message. */
  pmtuReductions = 0;
  /** MSS in use (payload bytes per full segment); 0 before the handshake. */
  mss = 0;
  /** Congestion window and slow-start threshold in bytes (ssthresh Infinity until the first loss). */
  cwnd = 0;
  ssthresh = Infinity;
  /** Smoothed RTT and current RTO in ms (srtt NaN before the first sample). */
  srttMs = NaN;
  rtoMs = TCP_INITIAL_RTO_NS / 1e6;
  /** RTT samples in ms, in order. */
  readonly rttSamplesMs: number[] = [];
  /** Pairs (ns, cwnd bytes), flat, when `traceCwnd`. */
  readonly cwndTrace: number[] = [];
  startNs = NaN;
  establishedNs = NaN;
  /** When the last payload byte was acknowledged. */
  doneNs = NaN;
  /** When the connection closed (both FINs acknowledged) or was aborted. */
  closedNs = NaN;

  /** All payload acknowledged. */
  get completed(): boolean {
    return !Number.isNaN(this.doneNs);
  }
  /** Payload bits per second from SYN to the last byte's ACK (0 until then). */
  get goodputBps(): number {
    return this.completed && this.doneNs > this.startNs ? (this.bytes * 8 * 1e9) / (this.doneNs - this.startNs) : 0;
  }
}

/**
 * A bulk TCP sender: opens a connection, sends `bytes` of patterned payload and a FIN. See the module
 * comment for the algorithms. Offsets below count sequence space from the ISS: the SYN is 0, payload byte
 * i is 1 + i, the FIN is 1 + bytes.
 */
export class TcpFlow implements SimTask, TcpEndpoint {
  readonly stats = new TcpFlowStats();
  readonly localPort: number;
  readonly remotePort: number;
  private readonly iss: number;
  private readonly finOff: number;
  private readonly hdr: number;
  private readonly df: boolean;
  private readonly maxRetries: number;
  private readonly synRetries: number;
  private readonly iw: number;
  private readonly trace: boolean;
  /** Oldest unacknowledged, next to send, and highest sent offsets. */
  private una = 0;
  private nxt = 0;
  private max = 0;
  /** The SYN went out once: a second one is a retransmission. */
  private synSent = false;
  private mss = 0;
  private cwnd = 0;
  private ssthresh = Infinity;
  private rwnd = TCP_WINDOW;
  private dupAcks = 0;
  private inRecovery = false;
  /** RFC 6582 `recover`: highest offset sent when recovery (or the last timeout) began. */
  private recover = 0;
  private srtt = -1;
  private rttvar = 0;
  private rto = TCP_INITIAL_RTO_NS;
  /** The timed segment: an ACK reaching `rttOff` gives a sample (-1: none timed). */
  private rttOff = -1;
  private rttStart = 0;
  private retries = 0;
  /** The peer's ISS + 1 (+ 1 more once its FIN is in): our ACK field. */
  private rcvAck = 0;
  private peerFin = false;
  /** Retransmission timer: a deadline, and the one pending simulator event (by generation). */
  private deadline = Infinity;
  private gen = 0;
  private timerPending = false;
  private timerAt = 0;
  /** The peer's MSS option (or the default when it sent none). */
  private peerMss = 0;
  /** Set while `pump` runs (see there). */
  private pumping = false;

  constructor(
    private readonly host: HostStack,
    readonly remote: Addr,
    localPort: number,
    opts: TcpSendOptions,
  ) {
    const bytes = opts.bytes;
    if (!Number.isInteger(bytes) || bytes < 0 || bytes > 0x7fffffff) throw new RangeError(`tcpSend: bytes ${bytes} is not an integer in [0, 2^31)`);
    if (!Number.isInteger(opts.dstPort) || opts.dstPort < 1 || opts.dstPort > 65535) throw new RangeError(`tcpSend: dstPort ${opts.dstPort} is not 1-65535`);
    this.localPort = localPort;
    this.remotePort = opts.dstPort;
    this.finOff = 1 + bytes;
    this.hdr = tcpHeaderBytes(remote.family);
    this.df = remote.family === 6 || (opts.df ?? true);
    this.maxRetries = opts.maxRetries ?? 15;
    this.synRetries = opts.synRetries ?? 6;
    this.iw = opts.initialWindow ?? 10;
    if (!(this.iw >= 1)) throw new RangeError(`tcpSend: initialWindow ${this.iw} is below 1`);
    this.trace = opts.traceCwnd ?? false;
    this.iss = host.sim.rng.u32();
    this.stats.bytes = bytes;
    host.sim.schedule(opts.startNs ?? host.sim.now, this, ARG_START);
  }

  get state(): TcpState {
    return this.stats.state;
  }

  /** The simulator calls this: the start, or the retransmission timer. */
  run(arg: number): void {
    if (arg === ARG_START) {
      this.open();
      return;
    }
    if (arg !== this.gen) return;
    this.timerPending = false;
    if (this.deadline === Infinity) return;
    const now = this.host.sim.now;
    if (now < this.deadline) {
      this.scheduleTimer(this.deadline);
      return;
    }
    this.deadline = Infinity;
    this.expire();
  }

  private open(): void {
    const s = this.stats;
    s.state = 'syn-sent';
    s.startNs = this.host.sim.now;
    // Set before the SYN leaves: on a zero-delay path the whole exchange runs inside `sendSyn`.
    this.nxt = this.max = 1;
    this.sendSyn();
    if (s.state === 'syn-sent') this.armTimer();
  }

  private sendSyn(): void {
    const s = this.stats;
    s.segmentsSent++;
    if (this.synSent) {
      s.retransmits++;
      this.rttOff = -1;
    } else {
      this.synSent = true;
      this.rttOff = 1;
      this.rttStart = this.host.sim.now;
    }
    sendControl(this.host, this.remote, this.localPort, this.remotePort, this.iss, 0, TCP_SYN, this.host.mtu - this.hdr, this.df);
  }

  /** The MSS the path allows now. */
  private currentMss(peer: number): number {
    const own = this.host.mtu - this.hdr;
    const path = this.df ? this.host.pathMtuTo(this.remote) - this.hdr : own;
    return Math.max(1, Math.min(peer, own, path));
  }

  segment(flags: number, seq: number, ack: number, wnd: number, mss: number, _b: Uint8Array, _data: number, dataLen: number): void {
    const s = this.stats;
    if (s.state === 'aborted' || s.state === 'idle') return;
    if ((flags & TCP_RST) !== 0) {
      // RFC 9293 §3.10.7.3: a RST in SYN-SENT counts only if it acknowledges the SYN.
      if (s.state === 'syn-sent' && ((flags & TCP_ACK) === 0 || (ack - this.iss) >>> 0 !== 1)) return;
      if (s.state !== 'closed') this.abort('reset');
      return;
    }
    const ackOff = (ack - this.iss) >>> 0;
    if (s.state === 'syn-sent') {
      if ((flags & (TCP_SYN | TCP_ACK)) !== (TCP_SYN | TCP_ACK) || ackOff !== 1) return;
      this.rcvAck = (seq + 1) >>> 0;
      this.peerMss = mss > 0 ? mss : this.remote.family === 4 ? DEFAULT_MSS4 : DEFAULT_MSS6;
      this.mss = s.mss = this.currentMss(this.peerMss);
      this.cwnd = this.iw * this.mss;
      this.rwnd = wnd;
      s.state = 'established';
      s.establishedNs = this.host.sim.now;
      this.sendAck();
      this.traceCwnd();
      this.newAck(1);
      return;
    }
    if ((flags & TCP_ACK) === 0) return;
    // A SYN-ACK again (our ACK of it was lost), or an ACK of what was never sent: answer with an ACK.
    if ((flags & TCP_SYN) !== 0 || ackOff > this.max) {
      this.sendAck();
      return;
    }
    if (ackOff > this.una) this.newAck(ackOff);
    else if (ackOff === this.una && dataLen === 0 && (flags & TCP_FIN) === 0 && this.max > this.una && wnd === this.rwnd) this.dupAck();
    this.rwnd = wnd;
    if ((flags & TCP_FIN) !== 0) {
      if (!this.peerFin && (seq + dataLen) >>> 0 === this.rcvAck) {
        this.peerFin = true;
        this.rcvAck = (this.rcvAck + 1) >>> 0;
      }
      this.sendAck();
      if (this.peerFin && this.una > this.finOff && s.state !== 'closed') {
        s.state = 'closed';
        s.closedNs = this.host.sim.now;
        this.stopTimer();
      }
    }
  }

  get done(): boolean {
    return this.stats.state === 'closed' || this.stats.state === 'aborted';
  }

  pmtuChanged(): void {
    const st = this.stats.state;
    if (st !== 'established' && st !== 'fin-wait-1') return;
    const m = this.currentMss(this.peerMss);
    if (m >= this.mss) return;
    this.mss = this.stats.mss = m;
    this.stats.pmtuReductions++;
    // What is outstanding was sent too big and is gone: send it again now, at the new size.
    this.rttOff = -1;
    this.nxt = this.una;
    this.pump();
  }

  private newAck(ackOff: number): void {
    const s = this.stats;
    const now = this.host.sim.now;
    const acked = ackOff - this.una;
    // RFC 7661's idea in its simplest form: grow the window only when it was what held the sender back
    // (not the receiver's window, nor the end of the data).
    const cwndLimited = this.max - this.una + this.mss > this.cwnd;
    if (this.rttOff > 0 && ackOff >= this.rttOff) {
      this.rttSample(now - this.rttStart);
      this.rttOff = -1;
    }
    this.retries = 0;
    this.una = ackOff;
    if (this.nxt < this.una) this.nxt = this.una;
    s.bytesAcked = Math.min(this.una - 1, s.bytes);
    if (ackOff > 1) {
      if (this.inRecovery) {
        if (ackOff >= this.recover) {
          // Full ACK (RFC 6582 §3.2 step 3): deflate the window to ssthresh and leave recovery.
          this.inRecovery = false;
          this.dupAcks = 0;
          this.cwnd = this.ssthresh;
        } else {
          // Partial ACK: the next hole was lost too; resend it and deflate by what was acknowledged.
          this.retransmitFirst();
          this.cwnd = Math.max(this.mss, this.cwnd - acked + (acked >= this.mss ? this.mss : 0));
        }
      } else {
        this.dupAcks = 0;
        if (!cwndLimited) {
          /* keep the window */
        } else if (this.cwnd < this.ssthresh) this.cwnd += Math.min(acked, this.mss);
        else this.cwnd += Math.max(1, Math.floor((this.mss * this.mss) / this.cwnd));
      }
      this.traceCwnd();
    }
    if (s.bytesAcked === s.bytes && this.una > s.bytes && Number.isNaN(s.doneNs)) s.doneNs = now;
    if (this.una > this.finOff && s.state === 'fin-wait-1') s.state = 'fin-wait-2';
    if (this.una >= this.max) this.stopTimer();
    else this.armTimer();
    this.pump();
  }

  private dupAck(): void {
    this.dupAcks++;
    if (!this.inRecovery && this.dupAcks === 3 && this.una > this.recover) {
      // RFC 5681 §3.2 steps 2-3 (with RFC 6582's guard against recovering twice for one loss).
      this.ssthresh = Math.max(Math.floor((this.max - this.una) / 2), 2 * this.mss);
      this.recover = this.max;
      this.inRecovery = true;
      this.stats.fastRetransmits++;
      this.retransmitFirst();
      this.cwnd = this.ssthresh + 3 * this.mss;
      this.stats.ssthresh = this.ssthresh;
      this.traceCwnd();
    } else if (this.inRecovery) {
      // Each further duplicate means a segment left the network: inflate, and maybe send new data.
      this.cwnd += this.mss;
      this.traceCwnd();
      this.pump();
    }
  }

  /** Resends the segment at `una` (not moving `nxt`). */
  private retransmitFirst(): void {
    const len = Math.min(this.mss, Math.max(0, this.finOff - this.una));
    if (this.una > this.finOff) return;
    this.sendData(this.una, len);
    this.armTimer();
  }

  /**
   * Sends new (or, after go-back-N, old) segments while the window allows. Re-entry is refused: on a
   * link without delay the ACK of a segment arrives while it is being sent, and the outer loop goes on
   * with whatever that ACK changed.
   */
  private pump(): void {
    const s = this.stats;
    if (this.pumping) return;
    this.pumping = true;
    while ((s.state === 'established' || s.state === 'fin-wait-1') && this.nxt <= this.finOff) {
      const off = this.nxt;
      const len = Math.min(this.mss, this.finOff - off);
      if (len > 0 && off + len - this.una > Math.min(this.cwnd, this.rwnd)) break;
      const fin = off + len === this.finOff;
      this.nxt = off + len + (fin ? 1 : 0);
      if (fin && s.state === 'established') s.state = 'fin-wait-1';
      this.sendData(off, len);
    }
    this.pumping = false;
    if (this.una < this.max && this.deadline === Infinity) this.armTimer();
  }

  /** Sends `len` payload bytes from offset `off`, with FIN when they end the stream; the books first, then the wire. */
  private sendData(off: number, len: number): void {
    const s = this.stats;
    const host = this.host;
    const fin = off + len === this.finOff;
    const end = off + len + (fin ? 1 : 0);
    s.segmentsSent++;
    if (off < this.max) {
      s.retransmits++;
      this.rttOff = -1;
    } else if (this.rttOff < 0) {
      this.rttOff = end;
      this.rttStart = host.sim.now;
    }
    if (end > this.max) this.max = end;
    const tcpLen = TCP_HEADER_LEN + len;
    const p = tcpPacket(host, this.remote, tcpLen, this.df);
    if (p === null) return;
    const b = p.data;
    const l4 = p.l4;
    let flags = TCP_ACK;
    if (fin) flags |= TCP_FIN | (len > 0 ? TCP_PSH : 0);
    writeHeader(b, l4, this.localPort, this.remotePort, this.iss + off, this.rcvAck, flags, -1);
    const pl = l4 + TCP_HEADER_LEN;
    const first = off - 1;
    for (let k = 0; k < len; k++) b[pl + k] = tcpPayloadByte(first + k);
    tcpTransmit(host, p, this.remote, tcpLen);
  }

  private sendAck(): void {
    sendControl(this.host, this.remote, this.localPort, this.remotePort, this.iss + this.nxt, this.rcvAck, TCP_ACK, -1, this.df);
  }

  /** The retransmission timer expired (RFC 6298 §5.4-5.7, RFC 5681 §3.1). */
  private expire(): void {
    const s = this.stats;
    if (s.state !== 'syn-sent' && this.una >= this.max) return;
    s.timeouts++;
    this.retries++;
    this.rto = Math.min(this.rto * 2, TCP_MAX_RTO_NS);
    s.rtoMs = this.rto / 1e6;
    if (s.state === 'syn-sent') {
      if (this.retries > this.synRetries) {
        this.abort('timeout');
        return;
      }
      this.sendSyn();
      this.armTimer();
      return;
    }
    if (this.retries > this.maxRetries) {
      this.abort('timeout');
      return;
    }
    this.ssthresh = Math.max(Math.floor((this.max - this.una) / 2), 2 * this.mss);
    s.ssthresh = this.ssthresh;
    this.cwnd = this.mss;
    this.inRecovery = false;
    this.dupAcks = 0;
    this.recover = this.max;
    this.rttOff = -1;
    this.nxt = this.una;
    this.traceCwnd();
    this.armTimer();
    this.pump();
  }

  private rttSample(r: number): void {
    if (this.srtt < 0) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.rto = Math.min(TCP_MAX_RTO_NS, Math.max(TCP_MIN_RTO_NS, this.srtt + Math.max(CLOCK_G_NS, 4 * this.rttvar)));
    const s = this.stats;
    s.srttMs = this.srtt / 1e6;
    s.rtoMs = this.rto / 1e6;
    s.rttSamplesMs.push(r / 1e6);
  }

  private traceCwnd(): void {
    this.stats.cwnd = this.cwnd;
    if (this.trace) this.stats.cwndTrace.push(this.host.sim.now, this.cwnd);
  }

  private abort(why: 'timeout' | 'reset'): void {
    const s = this.stats;
    s.state = 'aborted';
    s.abortReason = why;
    s.closedNs = this.host.sim.now;
    this.stopTimer();
  }

  private armTimer(): void {
    this.deadline = this.host.sim.now + this.rto;
    if (!this.timerPending || this.timerAt > this.deadline) this.scheduleTimer(this.deadline);
  }

  private stopTimer(): void {
    this.deadline = Infinity;
  }

  private scheduleTimer(at: number): void {
    this.gen++;
    this.timerPending = true;
    this.timerAt = at;
    this.host.sim.schedule(at, this, this.gen);
  }
}

/** What a listener counted over all its connections. */
export interface TcpListenerStats {
  /** Connections accepted (SYNs of new connections). */
  connections: number;
  /** Connections whose FIN arrived (every byte before it delivered). */
  finished: number;
  /** Connections reset by the peer. */
  resets: number;
  /** Payload bytes delivered in order (goodput), each once. */
  bytesReceived: number;
  /** Segments with payload. */
  segmentsReceived: number;
  /** Segments with payload beyond a hole (kept, acknowledged with a duplicate ACK). */
  outOfOrder: number;
  /** Segments whose payload was all delivered already. */
  duplicates: number;
  /** Payload bytes that did not match `tcpPayloadByte` at their offset. */
  corrupt: number;
}

/** One accepted connection of a listener. */
export class TcpConnection implements TcpEndpoint {
  state: 'syn-received' | 'established' | 'last-ack' | 'closed' | 'reset' = 'syn-received';
  /** Payload bytes delivered in order on this connection. */
  bytesReceived = 0;
  /** When the peer's FIN was taken (NaN before). */
  finNs = NaN;
  private readonly iss: number;
  private readonly mssOpt: number;
  /** Next offset expected from the peer's ISS (payload byte i is at 1 + i). */
  private rcvNxt = 1;
  /** Offset of the peer's FIN once seen (-1 before). */
  private finAt = -1;
  /** Out-of-order ranges held, sorted and disjoint: [starts[k], ends[k]). */
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  constructor(
    private readonly host: HostStack,
    private readonly listener: TcpListener,
    readonly remote: Addr,
    readonly localPort: number,
    readonly remotePort: number,
    private readonly irs: number,
  ) {
    this.iss = host.sim.rng.u32();
    this.mssOpt = host.mtu - tcpHeaderBytes(remote.family);
  }

  segment(flags: number, seq: number, ack: number, _wnd: number, _mss: number, b: Uint8Array, data: number, dataLen: number): void {
    const st = this.listener.stats;
    if ((flags & TCP_RST) !== 0) {
      if (this.state !== 'closed' && this.state !== 'reset') {
        this.state = 'reset';
        st.resets++;
      }
      return;
    }
    if (this.state === 'closed' || this.state === 'reset') return;
    if ((flags & TCP_SYN) !== 0) {
      // The SYN (first or again): SYN-ACK. A SYN on a synchronised connection gets an ACK (RFC 9293 §3.10.7.4).
      if (this.state === 'syn-received' && seq === this.irs) this.control(TCP_SYN | TCP_ACK, 0);
      else this.ack();
      return;
    }
    if ((flags & TCP_ACK) === 0) return;
    const ackOff = (ack - this.iss) >>> 0;
    if (this.state === 'syn-received') {
      if (ackOff !== 1) return;
      this.state = 'established';
    }
    if (this.state === 'last-ack' && ackOff === 2) {
      this.state = 'closed';
      return;
    }
    const o = (seq - this.irs) >>> 0;
    if (dataLen > 0) this.data(o, b, data, dataLen);
    if ((flags & TCP_FIN) !== 0 && this.finAt < 0 && o + dataLen - this.rcvNxt <= TCP_WINDOW) this.finAt = o + dataLen;
    let finNow = false;
    if (this.finAt >= 0 && this.rcvNxt === this.finAt) {
      // The FIN is in order (in this segment, or a retransmission filled the gap before it): take it and
      // close our side at once.
      this.rcvNxt++;
      this.state = 'last-ack';
      this.finNs = this.host.sim.now;
      st.finished++;
      finNow = true;
    }
    // Our FIN goes with the ACK of theirs, and again whenever they retransmit theirs.
    if (finNow || (this.state === 'last-ack' && (flags & TCP_FIN) !== 0)) this.control(TCP_FIN | TCP_ACK, 1);
    else if (dataLen > 0 || (flags & TCP_FIN) !== 0) this.ack();
  }

  get done(): boolean {
    return this.state === 'closed' || this.state === 'reset';
  }

  pmtuChanged(): void {
    // The receiver sends no data.
  }

  private data(o: number, b: Uint8Array, data: number, len: number): void {
    const st = this.listener.stats;
    st.segmentsReceived++;
    for (let k = 0, i = o - 1; k < len; k++, i++) {
      if (b[data + k] !== tcpPayloadByte(i)) st.corrupt++;
    }
    const end = o + len;
    if (end <= this.rcvNxt) {
      st.duplicates++;
      return;
    }
    if (o > this.rcvNxt) {
      if (end - this.rcvNxt > TCP_WINDOW) return;
      st.outOfOrder++;
      this.hold(o, end);
      return;
    }
    this.deliver(end);
    const s = this.starts;
    const e = this.ends;
    while (s.length > 0 && s[0]! <= this.rcvNxt) {
      if (e[0]! > this.rcvNxt) this.deliver(e[0]!);
      s.shift();
      e.shift();
    }
  }

  private deliver(to: number): void {
    const n = to - this.rcvNxt;
    this.rcvNxt = to;
    this.bytesReceived += n;
    this.listener.stats.bytesReceived += n;
  }

  /** Adds [o, end) to the out-of-order ranges, merging what it touches. */
  private hold(o: number, end: number): void {
    const s = this.starts;
    const e = this.ends;
    let i = 0;
    while (i < s.length && e[i]! < o) i++;
    let j = i;
    let lo = o;
    let hi = end;
    while (j < s.length && s[j]! <= hi) {
      lo = Math.min(lo, s[j]!);
      hi = Math.max(hi, e[j]!);
      j++;
    }
    s.splice(i, j - i, lo);
    e.splice(i, j - i, hi);
  }

  private ack(): void {
    this.control(TCP_ACK, this.state === 'last-ack' ? 2 : 1);
  }

  private control(flags: number, seqOff: number): void {
    sendControl(
      this.host,
      this.remote,
      this.localPort,
      this.remotePort,
      this.iss + seqOff,
      this.irs + this.rcvNxt,
      flags,
      (flags & TCP_SYN) !== 0 ? this.mssOpt : -1,
      false,
    );
  }
}

/** A listening port: accepts every connection and sinks what it receives. */
export class TcpListener {
  readonly stats: TcpListenerStats = {
    connections: 0,
    finished: 0,
    resets: 0,
    bytesReceived: 0,
    segmentsReceived: 0,
    outOfOrder: 0,
    duplicates: 0,
    corrupt: 0,
  };
  /** Accepted connections, in order. */
  readonly connections: TcpConnection[] = [];

  constructor(
    private readonly host: HostStack,
    readonly port: number,
  ) {}

  /** @internal a SYN for a new connection: the connection that will take it. */
  accept(remote: Addr, remotePort: number, irs: number): TcpConnection {
    const c = new TcpConnection(this.host, this, remote, this.port, remotePort, irs);
    this.connections.push(c);
    this.stats.connections++;
    return c;
  }
}
