/**
 * A scenario's traffic as real tools run it in a live lab (`seine run --live`): the command lines, and
 * what their output means in the simulator's terms. Pure: no processes here (cli/runlive.ts runs them).
 *
 * - ping flows: iputils `ping` in the source's namespace: count, interval, size (`-s` = IP size less
 *   28 or 48), DF (`-M do|dont`), family, and a fixed echo identifier (`-e`) so that the ICMP seen on
 *   the pod's port can be credited to the flow. Parsed: transmitted, received, duplicates, each reply's
 *   RTT, the ICMP errors ping reports (`Frag needed and DF set (mtu = N)` → frag-needed, …) and the
 *   sends the kernel refused as larger than the path MTU it knows (`local error: message too long`),
 *   which the simulator counts as `tooBig`.
 * - udp flows: iperf3 UDP (`-u -b rate -l payload -k count`), one stream per distinct size of the
 *   flow (iperf3 sends a single datagram size), each at its share of the flow's packet rate, from a
 *   fixed client port. Parsed from `-J`: datagrams sent (client), received (the server's highest
 *   sequence number less the gaps), jitter. iperf3 measures jitter, not one-way delay.
 * - tcp flows: the TCP probe (live/lab/probe.ts; why not iperf3 is said there), parsed with the
 *   sender's TCP_INFO as `ss -ti` prints it.
 */
import { rd16, rd32 } from '../../wire/bytes.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN } from '../../wire/ethernet.js';
import type { IcmpKind, TrafficSpec } from '../../scenario/scenario.js';

/** IPv4 + ICMP/UDP header bytes (28), IPv6's (48): what `ping -s` and iperf3's `-l` do not count. */
export function l4Overhead(family: 4 | 6): number {
  return family === 4 ? 28 : 48;
}

/** Seconds as a command-line number (no exponent). */
function secs(ns: number): string {
  return String(+(ns / 1e9).toFixed(6));
}

/**
 * How many of a ping or UDP flow's packets start before the scenario ends (`durationNs`): the
 * simulator sends no more, so neither does a live run.
 */
export function sendable(t: TrafficSpec, durationNs: number): number {
  if (t.startNs > durationNs) return 0;
  return Math.min(t.count, Math.floor((durationNs - t.startNs) / t.intervalNs) + 1);
}

// ---------------------------------------------------------------------------------------------------
// ping

export interface PingCommand {
  dst: string;
  family: 4 | 6;
  count: number;
  intervalNs: number;
  /** IP packet bytes. */
  ipSize: number;
  df: boolean;
  /** The echo identifier. */
  ident: number;
  /** Seconds to wait for a reply when none came (`-W`). */
  waitS: number;
}

export function pingArgv(c: PingCommand): string[] {
  return [
    'ping',
    '-n',
    `-${c.family}`,
    '-c',
    String(c.count),
    '-i',
    secs(c.intervalNs),
    '-s',
    String(Math.max(0, c.ipSize - l4Overhead(c.family))),
    '-M',
    c.df ? 'do' : 'dont',
    '-e',
    String(c.ident),
    '-W',
    String(c.waitS),
    c.dst,
  ];
}

export interface PingOutcome {
  /** Echo requests ping tried to send (`packets transmitted`), including the ones the kernel refused. */
  transmitted: number;
  received: number;
  duplicates: number;
  /** Sends refused by the kernel as larger than the path MTU it knows (`local error: message too long`). */
  localTooBig: number;
  /** Round-trip times of the replies (not duplicates), nanoseconds, in arrival order. */
  rttsNs: number[];
  /** ICMP the pings brought back: errors from elsewhere (not the sender's own address) and echo replies. */
  icmp: IcmpKind[];
  /** The path MTU an ICMP error or a local error told, or null. */
  mtu: number | null;
}

/**
 * Reads ping's output (stdout and stderr). `self` is the sender's own address: errors ping reports
 * "From" it (an ARP that got no answer: "Destination Host Unreachable") are the sender's kernel
 * speaking, not ICMP that arrived, as the simulator's observer would not see them either.
 */
export function parsePing(stdout: string, stderr: string, self: string | null = null): PingOutcome {
  const o: PingOutcome = { transmitted: 0, received: 0, duplicates: 0, localTooBig: 0, rttsNs: [], icmp: [], mtu: null };
  const kinds = new Set<IcmpKind>();
  let summary = false;
  for (const line of `${stdout}\n${stderr}`.split('\n')) {
    let m = /^\d+ bytes from .*\btime[=<]([\d.]+) ms(.*)$/.exec(line);
    if (m !== null) {
      if (/\(DUP!\)/.test(m[2]!)) o.duplicates++;
      else o.rttsNs.push(Math.round(Number(m[1]) * 1e6));
      kinds.add('echo-reply');
      continue;
    }
    m = /local error: message too long, mtu[=:]\s*(\d+)/.exec(line);
    if (m !== null) {
      o.localTooBig++;
      o.mtu = Number(m[1]);
      continue;
    }
    m = /^From (\S+?)(?: \([^)]*\))?:? icmp_seq=\d+ (.*)$/.exec(line);
    if (m !== null) {
      if (self !== null && m[1] === self) continue;
      const what = m[2]!;
      const mtu = /mtu\s*[=:]\s*(\d+)/i.exec(what);
      if (/Frag needed/i.test(what)) {
        kinds.add('frag-needed');
        if (mtu !== null) o.mtu = Number(mtu[1]);
      } else if (/Packet too big/i.test(what)) {
        kinds.add('packet-too-big');
        if (mtu !== null) o.mtu = Number(mtu[1]);
      } else if (/Time to live exceeded|Time exceeded/i.test(what)) kinds.add('time-exceeded');
      else if (/unreachable|Packet filtered/i.test(what)) kinds.add('dest-unreachable');
      continue;
    }
    m = /^(\d+) packets transmitted, (\d+) (?:packets )?received(?:, \+(\d+) duplicates)?/.exec(line);
    if (m !== null) {
      summary = true;
      o.transmitted = Number(m[1]);
      o.received = Number(m[2]);
      if (m[3] !== undefined) o.duplicates = Number(m[3]);
    }
  }
  if (!summary) {
    // Killed before its summary: what it printed is all there is.
    o.received = o.rttsNs.length;
    o.transmitted = Math.max(o.received, o.localTooBig);
  }
  o.icmp = [...kinds].sort();
  return o;
}

// ---------------------------------------------------------------------------------------------------
// UDP: iperf3

/** The smallest UDP payload iperf3 sends (its sequence number and timestamp). */
const IPERF_MIN_PAYLOAD = 16;

export interface UdpStream {
  /** IP packet bytes of this stream's datagrams. */
  ipSize: number;
  /** UDP payload bytes (`-l`). */
  payload: number;
  count: number;
  /** Payload bits per second (`-b`): the stream's share of the flow's packet rate times its payload. */
  bitrate: number;
}

/**
 * A UDP flow as iperf3 streams: one per distinct size (in the order sizes first appear), with as many
 * datagrams as the flow sends of that size (sizes are cycled through, as the simulator does) and its
 * share of the flow's packet rate.
 */
export function udpStreams(t: TrafficSpec): UdpStream[] {
  const counts = new Map<number, number>();
  for (let i = 0; i < t.count; i++) {
    const s = t.sizes[i % t.sizes.length]!;
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  const pps = 1e9 / t.intervalNs;
  const out: UdpStream[] = [];
  for (const [ipSize, count] of counts) {
    const payload = Math.max(IPERF_MIN_PAYLOAD, ipSize - l4Overhead(t.family));
    out.push({ ipSize, payload, count, bitrate: Math.max(1, Math.round(((pps * count) / t.count) * payload * 8)) });
  }
  return out;
}

export function iperfUdpClientArgv(o: {
  dst: string;
  port: number;
  family: 4 | 6;
  stream: UdpStream;
  cport: number;
  df: boolean;
  connectTimeoutMs: number;
}): string[] {
  return [
    'iperf3',
    '-c',
    o.dst,
    '-p',
    String(o.port),
    `-${o.family}`,
    '-u',
    '-b',
    String(o.stream.bitrate),
    '-l',
    String(o.stream.payload),
    '-k',
    String(o.stream.count),
    '--cport',
    String(o.cport),
    '--connect-timeout',
    String(o.connectTimeoutMs),
    '-J',
    ...(o.df && o.family === 4 ? ['--dont-fragment'] : []),
  ];
}

export function iperfServerArgv(port: number): string[] {
  return ['iperf3', '-s', '-1', '-p', String(port)];
}

export interface IperfUdpOutcome {
  /** Datagrams the client sent. */
  sent: number;
  sentBytes: number;
  /** Datagrams the server received (its highest sequence number less the gaps it saw). */
  received: number;
  receivedBytes: number;
  lost: number;
  jitterNs: number | null;
  /** The client's sending time. */
  seconds: number;
  /** iperf3's own error (`"error"` in its JSON), or null. */
  error: string | null;
}

interface IperfSum {
  packets?: number;
  lost_packets?: number;
  bytes?: number;
  seconds?: number;
  jitter_ms?: number;
}

/** Reads `iperf3 -c … -u -J` output; throws when it is not iperf3's JSON. */
export function parseIperfUdp(json: string): IperfUdpOutcome {
  const d = JSON.parse(json) as { error?: string; end?: { sum?: IperfSum; sum_sent?: IperfSum; sum_received?: IperfSum } };
  const end = d.end ?? {};
  const sent = end.sum_sent ?? end.sum ?? {};
  const recv = end.sum_received ?? null;
  const sentN = sent.packets ?? 0;
  // iperf3 < 3.11 has one sum: the client's count and the server's losses.
  const recvN = recv !== null ? Math.max(0, (recv.packets ?? 0) - (recv.lost_packets ?? 0)) : Math.max(0, sentN - (sent.lost_packets ?? sentN));
  const jitter = recv?.jitter_ms ?? sent.jitter_ms;
  return {
    sent: sentN,
    sentBytes: sent.bytes ?? 0,
    received: recvN,
    receivedBytes: recv?.bytes ?? 0,
    lost: recv?.lost_packets ?? sent.lost_packets ?? 0,
    jitterNs: jitter === undefined ? null : jitter * 1e6,
    seconds: sent.seconds ?? 0,
    error: d.error ?? null,
  };
}

// ---------------------------------------------------------------------------------------------------
// TCP: the probe and TCP_INFO

/** What `ss -ti` says of one connection (null: not shown). */
export interface TcpInfo {
  state: string | null;
  mss: number | null;
  pmtu: number | null;
  /** Total retransmitted segments (the second number of `retrans:a/b`). */
  retransmits: number;
  bytesSent: number | null;
  bytesAcked: number | null;
  bytesRetrans: number;
  dataSegsOut: number | null;
  segsOut: number | null;
  /** Smoothed and minimum RTT, nanoseconds. */
  rttNs: number | null;
  minRttNs: number | null;
}

export function parseSsTcpInfo(text: string): TcpInfo {
  const num = (re: RegExp): number | null => {
    const m = re.exec(text);
    return m === null ? null : Number(m[1]);
  };
  const state = /^\s*([A-Z][A-Z0-9-]+)\s/m.exec(text)?.[1] ?? null;
  const retrans = /\bretrans:\d+\/(\d+)/.exec(text);
  const rtt = num(/\brtt:([\d.]+)\//);
  const minrtt = num(/\bminrtt:([\d.]+)/);
  return {
    // ss's names, lowercase as the simulator's (ESTAB is "established" there).
    state: state === null ? null : state === 'ESTAB' ? 'established' : state.toLowerCase(),
    mss: num(/\bmss:(\d+)/),
    pmtu: num(/\bpmtu:(\d+)/),
    retransmits: retrans === null ? 0 : Number(retrans[1]),
    bytesSent: num(/\bbytes_sent:(\d+)/),
    bytesAcked: num(/\bbytes_acked:(\d+)/),
    bytesRetrans: num(/\bbytes_retrans:(\d+)/) ?? 0,
    dataSegsOut: num(/\bdata_segs_out:(\d+)/),
    segsOut: num(/\bsegs_out:(\d+)/),
    rttNs: rtt === null ? null : Math.round(rtt * 1e6),
    minRttNs: minrtt === null ? null : Math.round(minrtt * 1e6),
  };
}

/** The probe's last JSON line (`done`, `timeout` or `error`), or null when it printed none. */
export interface ProbeResult {
  event: 'done' | 'timeout' | 'error' | 'listening';
  bytes?: number;
  written?: number;
  delivered?: number;
  connectNs?: number;
  elapsedNs?: number;
  /** When the receiver's count arrived, nanoseconds since the epoch. */
  doneEpochNs?: number;
  ss?: string;
  message?: string;
}

export function lastProbeLine(stdout: string): ProbeResult | null {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const o = JSON.parse(lines[i]!) as ProbeResult;
      if (typeof o.event === 'string') return o;
    } catch {
      /* not a probe line */
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------
// iperf3's datagrams on the wire

/** An iperf3 UDP datagram (or its first fragment) in an Ethernet frame: ports, sequence number, send time. */
export interface IperfDatagram {
  sport: number;
  dport: number;
  /** iperf3's sequence number (32-bit counters, its default). */
  seq: number;
  /** When iperf3 sent it: the timestamp it writes into each datagram (gettimeofday), ns since the epoch. */
  sentNs: number;
}

/**
 * Reads an iperf3 UDP datagram out of an Ethernet frame (IPv4 or IPv6, unfragmented or the first
 * fragment, which holds the UDP header and iperf3's: seconds, microseconds, sequence number); null for
 * anything else.
 */
export function iperfDatagramOf(b: Uint8Array): IperfDatagram | null {
  if (b.length < 14) return null;
  let et = rd16(b, 12);
  let ip = 14;
  if (et === ETHERTYPE_VLAN && b.length >= 18) {
    et = rd16(b, 16);
    ip = 18;
  }
  let udp: number;
  if (et === ETHERTYPE_IPV4) {
    if (b.length < ip + 20 || b[ip + 9] !== 17 || (rd16(b, ip + 6) & 0x1fff) !== 0) return null;
    udp = ip + (b[ip]! & 0x0f) * 4;
  } else if (et === ETHERTYPE_IPV6) {
    if (b.length < ip + 40) return null;
    let nh = b[ip + 6]!;
    udp = ip + 40;
    if (nh === 44) {
      if (b.length < udp + 8 || rd16(b, udp + 2) >> 3 !== 0) return null;
      nh = b[udp]!;
      udp += 8;
    }
    if (nh !== 17) return null;
  } else return null;
  const pl = udp + 8;
  if (b.length < pl + 12) return null;
  return { sport: rd16(b, udp), dport: rd16(b, udp + 2), seq: rd32(b, pl + 8), sentNs: rd32(b, pl) * 1e9 + rd32(b, pl + 4) * 1e3 };
}
