/**
 * `seine run --live`'s flows: which of the scenario's flows can run live and between which namespaces,
 * their servers (iperf3, the TCP probe's receiver), and one runner per flow type that sends with the real
 * tool and turns what it printed into the simulator's `FlowResult`. Faults are applied here too: they are
 * timed like the flows.
 */
import { fileURLToPath } from 'node:url';
import { run as runCommandLine, runInNetns, type LabFaultAction, type LabHandle, type LabPlan } from '../../live/lab/index.js';
import {
  iperfServerArgv,
  iperfUdpClientArgv,
  l4Overhead,
  lastProbeLine,
  parseIperfUdp,
  parsePing,
  parseSsTcpInfo,
  pingArgv,
  sendable,
  udpStreams,
  type UdpStream,
} from '../../live/lab/traffic.js';
import { HOST_PORT } from '../../node/build.js';
import { percentile } from '../../sim/host.js';
import type { IcmpWatch } from '../../sim/icmpwatch.js';
import { fmtNs, type FlowResult } from '../../sim/report.js';
import { endpointText, type Endpoint, type IcmpKind, type Scenario, type TrafficSpec } from '../../scenario/scenario.js';
import { ipv4FromString, ipv6FromString } from '../../wire/bytes.js';
import { CliError } from '../run.js';
import { epochNs, sleep } from '../../live/sleep.js';
import { toolProblem, type Started, type ToolResult, type Tools } from './tools.js';

/** How long past its planned end a tool, and the whole run past the scenario's duration, may take. */
export const MARGIN_MS = 5000;
/** How long a reply may take (ping `-W`), as the simulator's pings wait. */
const PING_WAIT_S = 2;
/** How long a server may take to listen. */
const SERVER_READY_MS = 5000;
/** After the last flow: time for the last frames to reach the agents' counters and the captures. */
export const SETTLE_MS = 300;
const PROBE_JS = fileURLToPath(new URL('../../live/lab/probe.js', import.meta.url));

/** What the destination's port saw of one iperf3 stream (the agent's capture, read by `iperfDatagramOf`). */
export interface UdpSink {
  seqs: Set<number>;
  duplicates: number;
  /** One way: iperf3's send time in the datagram to the agent handing it to the destination's TAP. */
  latNs: number[];
}

export interface Server {
  port: number;
  started: Started;
  stream: UdpStream | null;
  /** The client's source port (UDP: iperf3's --cport; its datagrams are told apart by it). */
  cport: number;
  sink: UdpSink | null;
}

export interface LiveFlow {
  t: TrafficSpec;
  k: number;
  srcNode: string;
  /** The agent port the sender is plugged into (a pod's name, or host for a node's own stack). */
  srcPort: string;
  srcNs: string;
  dstNs: string;
  /** The agent port of the receiver. */
  dstPort: string;
  srcAddr: string;
  dstAddr: string;
  /** The sender's interface MTU. */
  srcMtu: number;
  icmp: Set<IcmpKind>;
  watches: IcmpWatch[];
  servers: Server[];
  result: FlowResult | null;
}

/** The namespace and address of an endpoint (a pod, or a node's own stack: its gateway address). */
export function endpointOf(plan: LabPlan, s: Scenario, e: Endpoint, family: 4 | 6): { ns: string; addr: string | null; port: string; mtu: number } {
  const n = plan.nodes.find((x) => x.name === e.node)!;
  if (e.pod === null) {
    const spec = s.nodes.find((x) => x.name === e.node)!;
    // seine-gw0 has the pods' default MTU (node/config.ts).
    return { ns: n.ns, addr: family === 4 ? spec.gateway4 : null, port: HOST_PORT, mtu: s.podMtu };
  }
  const p = n.pods.find((x) => x.name === e.pod)!;
  return { ns: p.ns, addr: family === 4 ? p.ip4 : p.ip6, port: p.name, mtu: p.mtu };
}

/** Why a flow cannot run live (it is skipped), or null. */
export function cannotRun(t: TrafficSpec): string | null {
  if (t.replay !== null) return `a replayed flow (${t.replay}): its sizes and timing come from a capture, which iperf3 cannot replay`;
  if (t.family === 6 && (t.from.pod === null || t.to.pod === null)) return "IPv6 to or from a node's own stack: the agent gives seine-gw0 IPv4 only";
  return null;
}

/** What a flow cannot be at all (as the simulator refuses it): a CliError, status 2, before the lab is made. */
export function checkFlow(s: Scenario, t: TrafficSpec): void {
  if (t.type !== 'ping' && t.to.pod === null) throw new CliError(`run --live: traffic ${t.name}: a ${t.type.toUpperCase()} flow needs a pod to receive it`);
  for (const e of [t.from, t.to]) {
    const n = s.nodes.find((x) => x.name === e.node)!;
    const addr =
      e.pod === null
        ? t.family === 4
          ? n.gateway4
          : n.gateway6
        : (() => {
            const p = n.pods.find((x) => x.name === e.pod)!;
            return t.family === 4 ? p.ip4 : p.ip6;
          })();
    if (addr === null) throw new CliError(`run --live: traffic ${t.name}: ${endpointText(e)} has no IPv${t.family} address`);
  }
}

function watch(f: LiveFlow, proto: number, id: number): IcmpWatch {
  const t = f.t;
  const w: IcmpWatch = {
    seen: f.icmp,
    family: t.family,
    proto,
    id,
    fromNs: epochNs() - 50e6,
    untilNs: Infinity,
    dst4: t.family === 4 ? (ipv4FromString(f.dstAddr) ?? 0) : 0,
    dst6: t.family === 6 ? ipv6FromString(f.dstAddr) : null,
  };
  f.watches.push(w);
  return w;
}

/** The fields of a flow's result that its plan gives: `planned` is a TCP flow's bytes, else its packets. */
export function base(f: LiveFlow): Pick<FlowResult, 'name' | 'type' | 'from' | 'to' | 'family' | 'planned'> {
  const t = f.t;
  return { name: t.name, type: t.type, from: endpointText(t.from), to: endpointText(t.to), family: t.family, planned: t.type === 'tcp' ? t.bytes : t.count };
}

// ---------------------------------------------------------------------------------------------------
// The run

export interface Ctx {
  s: Scenario;
  plan: LabPlan;
  lab: LabHandle;
  tools: Tools;
  /** performance.now() and epoch ns at time 0 of the scenario. */
  t0Ms: number;
  t0Ns: number;
  deadlineMs: number;
  notes: string[];
}

const remaining = (c: Ctx): number => c.deadlineMs - performance.now();

export async function runPing(c: Ctx, f: LiveFlow): Promise<FlowResult> {
  const t = f.t;
  const ident = (0x5e00 + f.k) & 0xffff;
  const ipLen = t.sizes[0]!;
  const count = sendable(t, c.s.durationNs);
  const planned = (count * t.intervalNs) / 1e6;
  const r = await c.tools.run(
    f.srcNs,
    pingArgv({ dst: f.dstAddr, family: t.family, count, intervalNs: t.intervalNs, ipSize: ipLen, df: t.df, ident, waitS: PING_WAIT_S }),
    { role: `ping-${f.k}`, node: f.srcNode, timeoutMs: Math.min(planned + PING_WAIT_S * 1000 + MARGIN_MS, remaining(c)), soft: 'SIGINT' },
  );
  const p = parsePing(r.stdout, r.stderr, f.srcAddr);
  if (r.spawnError !== null || r.timedOut || (r.code !== 0 && r.code !== 1)) c.notes.push(`${t.name}: ${toolProblem('ping', r)}`);
  for (const k of p.icmp) f.icmp.add(k);
  const rtts = [...p.rttsNs].sort((a, b) => a - b);
  const sent = Math.max(0, p.transmitted - p.localTooBig);
  const span = Math.max(1, t.count * t.intervalNs);
  return {
    ...base(f),
    sent,
    delivered: p.received,
    // Lost: sent and not answered (as the simulator's books; what was never sent is not lost).
    lost: Math.max(0, sent - p.received),
    deliveredRatio: t.count === 0 ? 0 : p.received / t.count,
    tooBig: p.localTooBig,
    duplicates: p.duplicates,
    latencyP50Ns: rtts.length > 0 ? percentile(rtts, 50) : null,
    latencyP99Ns: rtts.length > 0 ? percentile(rtts, 99) : null,
    latencyMaxNs: rtts.length > 0 ? rtts[rtts.length - 1]! : null,
    throughputBps: (sent * ipLen * 8 * 1e9) / span,
    goodputBps: (p.received * (ipLen - l4Overhead(t.family)) * 8 * 1e9) / span,
    icmpSeen: [],
  };
}

export async function runUdp(c: Ctx, f: LiveFlow): Promise<FlowResult> {
  const t = f.t;
  const planned = (t.count * t.intervalNs) / 1e6;
  const outcomes = await Promise.all(
    f.servers.map(async (sv, j) => {
      watch(f, 17, sv.cport);
      const r = await c.tools.run(
        f.srcNs,
        iperfUdpClientArgv({ dst: f.dstAddr, port: sv.port, family: t.family, stream: sv.stream!, cport: sv.cport, df: t.df, connectTimeoutMs: 3000 }),
        { role: `iperf3-${f.k}-${j}`, node: f.srcNode, timeoutMs: Math.min(planned + MARGIN_MS, remaining(c)) },
      );
      try {
        const o = parseIperfUdp(r.stdout);
        if (o.error !== null) c.notes.push(`${t.name}: iperf3 (${sv.stream!.ipSize}-byte stream): ${o.error}`);
        else if (r.code !== 0) c.notes.push(`${t.name}: ${toolProblem('iperf3', r)}`);
        return { sv, o };
      } catch {
        c.notes.push(`${t.name}: ${toolProblem(`iperf3 (${sv.stream!.ipSize}-byte stream)`, r)}`);
        return { sv, o: null };
      }
    }),
  );
  for (const w of f.watches) w.untilNs = epochNs() + 2e9;
  // The last datagrams may still be on their way to the destination's port.
  await sleep(SETTLE_MS);
  let sent = 0,
    got = 0,
    iperfGot = 0,
    dups = 0,
    sentIp = 0,
    goodBytes = 0,
    seconds = 0;
  let jitter: number | null = null;
  const lat: number[] = [];
  const seen = f.servers.every((sv) => sv.sink !== null);
  for (const { sv, o } of outcomes) {
    if (o === null) continue;
    const st = sv.stream!;
    const recv = sv.sink !== null ? sv.sink.seqs.size : o.received;
    sent += o.sent;
    got += recv;
    iperfGot += o.received;
    dups += sv.sink?.duplicates ?? 0;
    if (sv.sink !== null) for (const x of sv.sink.latNs) lat.push(x);
    sentIp += o.sent * st.ipSize;
    goodBytes += recv * st.payload;
    seconds = Math.max(seconds, o.seconds);
    if (o.jitterNs !== null) jitter = Math.max(jitter ?? 0, o.jitterNs);
  }
  if (seen && iperfGot !== got)
    c.notes.push(
      `${t.name}: iperf3's server read ${iperfGot} of the ${got} datagrams its pod was given (it stops reading at the client's end-of-test message; the rest were still queued in its socket)`,
    );
  lat.sort((x, y) => x - y);
  const span = seconds > 0 ? seconds * 1e9 : Math.max(1, t.count * t.intervalNs);
  return {
    ...base(f),
    sent,
    delivered: got,
    lost: Math.max(0, sent - got),
    deliveredRatio: t.count === 0 ? 0 : got / t.count,
    tooBig: 0,
    duplicates: dups,
    latencyP50Ns: lat.length > 0 ? percentile(lat, 50) : null,
    latencyP99Ns: lat.length > 0 ? percentile(lat, 99) : null,
    latencyMaxNs: lat.length > 0 ? lat[lat.length - 1]! : null,
    ...(seen ? {} : { latencyNote: "not measured live: the destination's port could not be captured, and iperf3 measures jitter, not one-way delay" }),
    jitterNs: jitter,
    throughputBps: (sentIp * 8 * 1e9) / span,
    goodputBps: (goodBytes * 8 * 1e9) / span,
    icmpSeen: [],
  };
}

export async function runTcp(c: Ctx, f: LiveFlow): Promise<FlowResult> {
  const t = f.t;
  const cport = f.servers[0]!.cport;
  const startMs = performance.now();
  const limitS = Math.max(1, Math.floor((remaining(c) - 1500) / 1000));
  const r = await c.tools.run(
    f.srcNs,
    [
      process.execPath,
      PROBE_JS,
      'tcp-send',
      '--to',
      f.dstAddr,
      '--port',
      String(f.servers[0]!.port),
      '--bytes',
      String(t.bytes),
      '--cport',
      String(cport),
      '--timeout',
      String(limitS),
    ],
    { role: `tcp-${f.k}`, node: f.srcNode, timeoutMs: limitS * 1000 + 3000 },
  );
  const p = lastProbeLine(r.stdout);
  if (p === null || p.event === 'error')
    c.notes.push(`${t.name}: ${p?.message !== undefined ? `the TCP probe: ${p.message}` : toolProblem('the TCP probe', r)}`);
  else if (p.event === 'timeout') c.notes.push(`${t.name}: not finished within the scenario's duration plus ${MARGIN_MS / 1000} s`);
  const info = parseSsTcpInfo(p?.ss ?? '');
  // The sender's port is not captured (a capture costs its agent about a third of a TCP transfer's
  // throughput): a path MTU below the sender's MTU in TCP_INFO says a too-big ICMP arrived.
  if (info.pmtu !== null && info.pmtu < f.srcMtu) f.icmp.add(t.family === 4 ? 'frag-needed' : 'packet-too-big');
  const done = p?.event === 'done' && p.delivered !== undefined && p.delivered >= 0;
  // TCP_INFO's bytes_acked counts the SYN too.
  const delivered = done ? p.delivered! : info.bytesAcked !== null ? Math.max(0, info.bytesAcked - 1) : 0;
  const segs = info.dataSegsOut ?? 0;
  const mss = info.mss ?? 0;
  const hdr = t.family === 4 ? 40 : 60;
  const opts = info.pmtu !== null && mss > 0 ? Math.max(0, info.pmtu - hdr - mss) : 0;
  const span = p?.elapsedNs !== undefined && p.elapsedNs > 0 ? p.elapsedNs : Math.max(1, (performance.now() - startMs) * 1e6);
  const sentIp = (info.bytesSent ?? 0) + segs * (hdr + opts);
  const completedNs = done && p.doneEpochNs !== undefined ? Math.max(0, Math.round(p.doneEpochNs - c.t0Ns)) : null;
  if (completedNs !== null && completedNs > c.s.durationNs)
    c.notes.push(
      `${t.name}: finished at ${fmtNs(completedNs)}, after the scenario's end (${fmtNs(c.s.durationNs)}): live, TCP flows get ${MARGIN_MS / 1000} s more`,
    );
  return {
    ...base(f),
    sent: segs,
    delivered,
    lost: info.retransmits,
    deliveredRatio: t.bytes === 0 ? 0 : delivered / t.bytes,
    tooBig: 0,
    duplicates: 0,
    latencyP50Ns: null,
    latencyP99Ns: null,
    latencyMaxNs: null,
    latencyNote: `not sampled per segment live (the kernel's smoothed RTT at the end: ${info.rttNs === null ? 'n/a' : `${+(info.rttNs / 1e6).toPrecision(3)}ms`}, minimum ${info.minRttNs === null ? 'n/a' : `${+(info.minRttNs / 1e6).toPrecision(3)}ms`})`,
    throughputBps: (sentIp * 8 * 1e9) / span,
    goodputBps: (delivered * 8 * 1e9) / span,
    icmpSeen: [],
    tcp: {
      state: done && delivered >= t.bytes ? 'closed' : p?.event === 'error' || p === null ? 'aborted' : (info.state ?? 'unknown'),
      mss,
      retransmits: info.retransmits,
      timeouts: null,
      fastRetransmits: null,
      pmtuReductions: null,
      completedNs,
    },
  };
}

/** Starts the servers of the flows that need one and waits until they listen. */
export async function startServers(c: Ctx, flows: LiveFlow[]): Promise<void> {
  let port = 5201;
  let cport = 10000;
  const waits: Promise<void>[] = [];
  for (const f of flows) {
    const t = f.t;
    const dstNode = t.to.node;
    if (t.type === 'udp') {
      for (const st of udpStreams({ ...t, count: sendable(t, c.s.durationNs) })) {
        const p = port++;
        const started = c.tools.start(f.dstNs, iperfServerArgv(p), { role: `iperf3-server-${f.k}`, node: dstNode, timeoutMs: remaining(c) });
        f.servers.push({ port: p, started, stream: st, cport: ++cport, sink: null });
        waits.push(
          listening(f.dstNs, p, started).catch((e: Error) => {
            c.notes.push(`${t.name}: iperf3 server on port ${p}: ${e.message}`);
          }),
        );
      }
    } else if (t.type === 'tcp') {
      const p = port++;
      let ready: () => void = () => {};
      const heard = new Promise<void>((r) => {
        ready = r;
      });
      const started = c.tools.start(
        f.dstNs,
        [
          process.execPath,
          PROBE_JS,
          'tcp-recv',
          '--port',
          String(p),
          '--bytes',
          String(t.bytes),
          '--family',
          String(t.family),
          '--timeout',
          String(Math.ceil(remaining(c) / 1000)),
        ],
        {
          role: `tcp-server-${f.k}`,
          node: dstNode,
          timeoutMs: remaining(c),
          onStdout: (d) => {
            if (d.includes('"listening"')) ready();
          },
        },
      );
      f.servers.push({ port: p, started, stream: null, cport: 20000 + ((f.k + 1) % 40000), sink: null });
      waits.push(
        Promise.race([
          heard,
          started.result.then((r) => {
            throw new Error(toolProblem('the TCP probe receiver', r));
          }),
          sleep(SERVER_READY_MS, { unref: true }).then(() => {
            throw new Error(`not listening after ${SERVER_READY_MS} ms`);
          }),
        ]).catch((e: Error) => {
          c.notes.push(`${t.name}: ${e.message}`);
        }),
      );
    }
  }
  await Promise.all(waits);
}

/** Resolves once something listens on TCP `port` in `ns` (iperf3's control port). */
async function listening(ns: string, port: number, started: Started): Promise<void> {
  let exited: ToolResult | null = null;
  void started.result.then((r) => {
    exited = r;
  });
  const until = performance.now() + SERVER_READY_MS;
  for (;;) {
    if (exited !== null) throw new Error(toolProblem('iperf3 -s', exited));
    const r = await runInNetns(ns, ['ss', '-Hltn', `( sport = :${port} )`]).catch(() => ({ stdout: '' }));
    if (r.stdout.trim() !== '') return;
    if (performance.now() > until) throw new Error(`not listening after ${SERVER_READY_MS} ms`);
    await sleep(30);
  }
}

export async function applyFault(a: LabFaultAction): Promise<string | null> {
  for (const argv of a.commands) {
    try {
      await runCommandLine(argv);
    } catch (e) {
      const msg = (e as Error).message;
      if (a.benignError !== null && msg.includes(a.benignError)) continue;
      return `fault ${a.what}: ${msg}`;
    }
  }
  return null;
}
