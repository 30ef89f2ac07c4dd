/**
 * `seine run --live <scenario>`: the scenario on this machine instead of in the simulator. Its lab is
 * brought up (`bringUp`, as `seine lab up` does), its traffic is sent with real tools at the scenario's
 * times, its faults are applied at theirs, and the report — the simulator's `Report`, printed by the
 * same `formatReport` and checked by the same `checkExpectations` (sim/report.ts) — is made from the
 * tools' output and the agents' counters. The lab is always taken down: after the report, after a
 * failure, on Ctrl-C (SIGINT) or SIGTERM.
 *
 * Where the numbers come from (the differences from a simulated report are listed in its
 * `live.notes`):
 * - ping flows: iputils ping in the source's namespace (live/lab/traffic.ts): sent, answered, RTTs,
 *   duplicates, ICMP errors, sends refused as too big;
 * - udp flows: iperf3, one stream per distinct size; a server per stream in the destination's
 *   namespace (started through the lab, so that `lab down` stops any left over). iperf3's server stops
 *   reading at the client's end-of-test message, so its count misses what is still queued: delivery
 *   is counted on the receiver's port instead (the agent's capture: iperf3's sequence numbers), and
 *   the one-way latency with it (iperf3's send stamp in each datagram to the agent handing it to the
 *   receiver's TAP); when that port cannot be captured, iperf3's count and no latency;
 * - tcp flows: the TCP probe (live/lab/probe.ts): exact bytes delivered, segments, retransmissions and
 *   MSS from the sender's TCP_INFO;
 * - ICMP seen by a sender: what ping prints; for UDP flows, the agent's capture of the sender's port
 *   read by the simulator's ICMP observer (sim/icmpwatch.ts) with the flow's source port; for TCP
 *   flows, TCP_INFO's path MTU (below the sender's MTU: a too-big ICMP arrived). Ping and TCP senders
 *   are not captured: a capture slows its agent down (about a third of a TCP transfer's throughput);
 * - drops: the agents' `stats` (per bridge port and live device, by reason); counters: the agents'
 *   counters, under the simulator's names (`<node>.macs.*`, `<node>.bridge.*`, `<node>.tunnel.*`,
 *   `<node>.esp.*`, `<node>.<port>.*`);
 * - underlay paths: per pair of nodes, what one agent encapsulated towards the other and what the other
 *   decapsulated from it (the difference is `lost`: the wire's reason is not known live);
 * - `--pcap DIR`: the scenario's capture points, recorded by the agents' capture op, one pcapng each.
 *
 * Every process is bounded: each tool by its own time limit (the flow's sending time plus a margin,
 * and never past the scenario's duration plus the margin), the whole run by the scenario's duration
 * plus the margin.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapngParser } from '../capture/index.js';
import { controlRequest } from '../live/control.js';
import { labName, run as runCommandLine, runInNetns, type LabFaultAction, type LabHandle, type LabPlan } from '../live/lab/index.js';
import {
  iperfDatagramOf,
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
} from '../live/lab/traffic.js';
import type { MetricsSnapshot } from '../live/metrics.js';
import { HOST_PORT } from '../node/build.js';
import { percentile } from '../sim/host.js';
import { IcmpObserver, type IcmpWatch } from '../sim/icmpwatch.js';
import { checkExpectations, fmtNs, formatReport, type FlowResult, type PathResult, type Report, type SkippedPart } from '../sim/report.js';
import { endpointText, type Endpoint, type ExpectSpec, type IcmpKind, type Scenario, type TrafficSpec } from '../scenario/scenario.js';
import { bringUp, controlPath, parseWithout, requireLive, tapCapture, type CaptureTap } from './lab.js';
import { ipv4FromString, ipv6FromString } from '../wire/bytes.js';
import { makeDir } from './files.js';
import { CliError, load, progressBar, type RunArgs, type RunIo } from './run.js';

/** How long past its planned end a tool, and the whole run past the scenario's duration, may take. */
const MARGIN_MS = 5000;
/** How long a reply may take (ping `-W`), as the simulator's pings wait. */
const PING_WAIT_S = 2;
/** How long a server may take to listen. */
const SERVER_READY_MS = 5000;
/** After the last flow: time for the last frames to reach the agents' counters and the captures. */
const SETTLE_MS = 300;
const PROBE_JS = fileURLToPath(new URL('../live/lab/probe.js', import.meta.url));

const epochNs = (): number => (performance.timeOrigin + performance.now()) * 1e6;
/**
 * This machine's wall clock less its monotonic clock (ns): turns a CLOCK_MONOTONIC time (iperf3's
 * datagram stamps) into one comparable with the agents' capture times (the wall clock, as Node's
 * performance.timeOrigin + now(), like ours). Both clocks are shared by every namespace.
 */
const MONO_TO_EPOCH_NS = epochNs() - Number(process.hrtime.bigint());
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
/** A sleep that does not keep the process alive (a time limit raced against something else). */
const limit = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)).unref());

// ---------------------------------------------------------------------------------------------------
// Processes in the lab

interface ToolResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Could not be started at all. */
  spawnError: string | null;
}

interface Started {
  child: ChildProcess | null;
  result: Promise<ToolResult>;
}

/** Starts tools inside the lab's namespaces (recorded by the lab, so `lab down` stops leftovers), each with a time limit. */
class Tools {
  private readonly running = new Set<ChildProcess>();
  aborted = false;

  constructor(private readonly lab: LabHandle) {}

  start(
    ns: string,
    argv: string[],
    o: { role: string; node: string | null; timeoutMs: number; soft?: NodeJS.Signals; onStdout?: (chunk: string) => void },
  ): Started {
    if (this.aborted)
      return {
        child: null,
        result: Promise.resolve({ code: null, signal: null, stdout: '', stderr: '', timedOut: false, spawnError: 'the run was interrupted' }),
      };
    let child: ChildProcess;
    try {
      const stdio: StdioOptions = ['ignore', 'pipe', 'pipe'];
      child = this.lab.spawn(ns, argv, { role: o.role, node: o.node, stdio }).child;
    } catch (e) {
      return { child: null, result: Promise.resolve({ code: null, signal: null, stdout: '', stderr: '', timedOut: false, spawnError: (e as Error).message }) };
    }
    this.running.add(child);
    let stdout = '',
      stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      o.onStdout?.(d);
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    let timedOut = false;
    const kill = (sig: NodeJS.Signals): void => {
      try {
        child.kill(sig);
      } catch {
        /* gone */
      }
    };
    const timer = setTimeout(
      () => {
        timedOut = true;
        if (o.soft !== undefined) {
          kill(o.soft);
          setTimeout(() => kill('SIGKILL'), 1000).unref();
        } else kill('SIGKILL');
      },
      Math.max(1, o.timeoutMs),
    );
    const result = new Promise<ToolResult>((res) => {
      child.once('error', (e) => {
        clearTimeout(timer);
        this.running.delete(child);
        res({ code: null, signal: null, stdout, stderr, timedOut, spawnError: e.message });
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        this.running.delete(child);
        res({ code, signal, stdout, stderr, timedOut, spawnError: null });
      });
    });
    return { child, result };
  }

  run(ns: string, argv: string[], o: { role: string; node: string | null; timeoutMs: number; soft?: NodeJS.Signals }): Promise<ToolResult> {
    return this.start(ns, argv, o).result;
  }

  /** Stops every tool still running (an interrupted run). */
  killAll(): void {
    this.aborted = true;
    for (const c of this.running) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

function toolProblem(what: string, r: ToolResult): string {
  if (r.spawnError !== null) return `${what} could not run: ${r.spawnError}`;
  const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-2).join(' / ').slice(0, 300);
  return `${what} ${r.timedOut ? 'reached its time limit' : r.signal !== null ? `was killed by ${r.signal}` : `exited with status ${r.code}`}${said !== '' ? `: ${said}` : ''}`;
}

// ---------------------------------------------------------------------------------------------------
// Flows

/** What the destination's port saw of one iperf3 stream (the agent's capture, read by `iperfDatagramOf`). */
interface UdpSink {
  seqs: Set<number>;
  duplicates: number;
  /** One way: iperf3's send time in the datagram to the agent handing it to the destination's TAP. */
  latNs: number[];
}

interface Server {
  port: number;
  started: Started;
  stream: UdpStream | null;
  /** The client's source port (UDP: iperf3's --cport; its datagrams are told apart by it). */
  cport: number;
  sink: UdpSink | null;
}

interface LiveFlow {
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
function endpointOf(plan: LabPlan, s: Scenario, e: Endpoint, family: 4 | 6): { ns: string; addr: string | null; port: string; mtu: number } {
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
function cannotRun(t: TrafficSpec): string | null {
  if (t.replay !== null) return `a replayed flow (${t.replay}): its sizes and timing come from a capture, which iperf3 cannot replay`;
  if (t.family === 6 && (t.from.pod === null || t.to.pod === null)) return "IPv6 to or from a node's own stack: the agent gives seine-gw0 IPv4 only";
  return null;
}

/** What a flow cannot be at all (as the simulator refuses it): a CliError, status 2, before the lab is made. */
function checkFlow(s: Scenario, t: TrafficSpec): void {
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

function base(f: LiveFlow): Pick<FlowResult, 'name' | 'type' | 'from' | 'to' | 'family' | 'planned'> {
  const t = f.t;
  return { name: t.name, type: t.type, from: endpointText(t.from), to: endpointText(t.to), family: t.family, planned: t.count };
}

// ---------------------------------------------------------------------------------------------------
// The run

interface Ctx {
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

async function runPing(c: Ctx, f: LiveFlow): Promise<FlowResult> {
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

async function runUdp(c: Ctx, f: LiveFlow): Promise<FlowResult> {
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

async function runTcp(c: Ctx, f: LiveFlow): Promise<FlowResult> {
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
    planned: t.bytes,
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
async function startServers(c: Ctx, flows: LiveFlow[]): Promise<void> {
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
          limit(SERVER_READY_MS).then(() => {
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

async function applyFault(a: LabFaultAction): Promise<string | null> {
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

// ---------------------------------------------------------------------------------------------------
// Counters, drops, paths

type Stats = Map<string, MetricsSnapshot | string>;

/** Every agent's counters (or why there are none). */
async function agentStats(lab: LabHandle, plan: LabPlan): Promise<Stats> {
  const stats: Stats = new Map();
  await Promise.all(
    plan.nodes.map(async (n) => {
      try {
        const r = await controlRequest(controlPath(lab, n.name), { op: 'stats' }, 5000);
        stats.set(n.name, r['snapshot'] as MetricsSnapshot);
      } catch (e) {
        stats.set(n.name, `the agent of ${n.name} did not answer (${(e as Error).message})`);
      }
    }),
  );
  return stats;
}

/** What the counters of `now` added to those of `base` (per port, device, peer, tunnel event; drops by reason). */
function since(now: Stats, base: Stats): Stats {
  const out: Stats = new Map();
  const sub = (a: Record<string, number>, b: Record<string, number> | undefined): Record<string, number> => {
    const r: Record<string, number> = {};
    for (const [k, v] of Object.entries(a)) {
      const d = v - (b?.[k] ?? 0);
      if (d !== 0) r[k] = d;
    }
    return r;
  };
  const all = (a: Record<string, number>, b: Record<string, number> | undefined): Record<string, number> =>
    Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b?.[k] ?? 0)]));
  for (const [node, n] of now) {
    const b = base.get(node);
    if (typeof n === 'string' || typeof b !== 'object') {
      out.set(node, typeof n === 'string' ? n : `the agent of ${node} did not answer at time 0 (${String(b)})`);
      continue;
    }
    const bp = new Map(b.ports.map((p) => [p.port, p]));
    const bd = new Map(b.devices.map((d) => [d.device, d]));
    const bpeer = new Map(b.peers.map((p) => [p.peer, p]));
    out.set(node, {
      ports: n.ports.map((p) => {
        const o = bp.get(p.port);
        return {
          port: p.port,
          kind: p.kind,
          rxPackets: p.rxPackets - (o?.rxPackets ?? 0),
          rxBytes: p.rxBytes - (o?.rxBytes ?? 0),
          txPackets: p.txPackets - (o?.txPackets ?? 0),
          txBytes: p.txBytes - (o?.txBytes ?? 0),
          drops: sub(p.drops, o?.drops),
        };
      }),
      devices: n.devices.map((d) => {
        const o = bd.get(d.device);
        return {
          device: d.device,
          rxPackets: d.rxPackets - (o?.rxPackets ?? 0),
          txPackets: d.txPackets - (o?.txPackets ?? 0),
          rxBatches: d.rxBatches - (o?.rxBatches ?? 0),
          drops: sub(d.drops, o?.drops),
          rxSuper: d.rxSuper - (o?.rxSuper ?? 0),
          rxSuperSegments: d.rxSuperSegments - (o?.rxSuperSegments ?? 0),
          txSuper: d.txSuper - (o?.txSuper ?? 0),
          txSuperSegments: d.txSuperSegments - (o?.txSuperSegments ?? 0),
        };
      }),
      peers: n.peers.map((p) => {
        const o = bpeer.get(p.peer);
        return {
          peer: p.peer,
          txPackets: p.txPackets - (o?.txPackets ?? 0),
          rxPackets: p.rxPackets - (o?.rxPackets ?? 0),
          txInnerBytes: p.txInnerBytes - (o?.txInnerBytes ?? 0),
          espOut: p.espOut - (o?.espOut ?? 0),
          espIn: p.espIn - (o?.espIn ?? 0),
        };
      }),
      tunnel: all(n.tunnel, b.tunnel),
      macs: all(n.macs, b.macs),
      bridge: all(n.bridge, b.bridge),
      gso: all(n.gso, b.gso),
      gsoDrops: sub(n.gsoDrops, b.gsoDrops),
      heap: { allocatedBytes: n.heap.allocatedBytes - b.heap.allocatedBytes, gcs: n.heap.gcs - b.heap.gcs, usedBytes: n.heap.usedBytes },
      macEntries: n.macEntries,
      poolFree: n.poolFree,
      poolSize: n.poolSize,
    });
  }
  return out;
}

function liveCounter(s: Scenario, stats: Stats, name: string): number | string {
  const [node, group, field, ...rest] = name.split('.');
  const snap = stats.get(node ?? '');
  if (snap === undefined || group === undefined || field === undefined || rest.length > 0)
    return 'no such counter: expected <node>.<group>.<field>, e.g. node1.tunnel.icmpSent';
  if (typeof snap === 'string') return `not available live: ${snap}`;
  const pick = (o: Record<string, number>, what: string): number | string => {
    const v = o[field];
    return typeof v === 'number' ? v : `no such counter: ${what} has no counter "${field}" (it has ${Object.keys(o).join(', ')})`;
  };
  switch (group) {
    case 'macs':
    case 'bridge':
      return pick(snap[group], group);
    case 'tunnel':
      return pick(snap.tunnel, 'tunnel');
    case 'esp': {
      if (s.encryption === null) return `no such counter: ${node} does not encrypt`;
      let out = 0,
        inn = 0;
      for (const p of snap.peers) {
        out += p.espOut;
        inn += p.espIn;
      }
      return pick({ packetsOut: out, packetsIn: inn }, 'esp');
    }
    default: {
      const p = snap.ports.find((x) => x.port === group);
      if (p === undefined)
        return `no such counter: ${node} has no counter group or port "${group}" (groups: tunnel, esp, underlay, or a port: ${snap.ports.map((x) => x.port).join(', ')})`;
      const dropped = Object.values(p.drops).reduce((a, b) => a + b, 0);
      return pick({ rxPackets: p.rxPackets, txPackets: p.txPackets, rxBytes: p.rxBytes, txBytes: p.txBytes, dropped }, `${node}.${group}`);
    }
  }
}

/** node → port → reason → count: the bridge ports' drops and the live devices' (a device serves the port of its name). */
function liveDrops(stats: Stats): Report['drops'] {
  const out: Report['drops'] = {};
  for (const [node, snap] of stats) {
    if (typeof snap === 'string') continue;
    const d: Record<string, Record<string, number>> = {};
    const add = (port: string, reasons: Record<string, number>): void => {
      for (const [k, v] of Object.entries(reasons)) {
        if (v <= 0) continue;
        const into = (d[port] ??= {});
        into[k] = (into[k] ?? 0) + v;
      }
    };
    for (const p of snap.ports) add(p.port, p.drops);
    for (const dev of snap.devices) add(dev.device, dev.drops);
    if (Object.keys(d).length > 0) out[node] = d;
  }
  return out;
}

function livePaths(s: Scenario, stats: Stats): PathResult[] {
  const out: PathResult[] = [];
  const peer = (a: string, b: string): { txPackets: number; rxPackets: number } => {
    const snap = stats.get(a);
    const p = typeof snap === 'object' ? snap.peers.find((x) => x.peer === b) : undefined;
    return { txPackets: p?.txPackets ?? 0, rxPackets: p?.rxPackets ?? 0 };
  };
  for (let i = 0; i < s.nodes.length; i++) {
    for (let j = i + 1; j < s.nodes.length; j++) {
      const a = s.nodes[i]!.name,
        b = s.nodes[j]!.name;
      const ab = peer(a, b),
        ba = peer(b, a);
      const sent: [number, number] = [ab.txPackets, ba.txPackets];
      const delivered: [number, number] = [ba.rxPackets, ab.rxPackets];
      if (sent[0] + sent[1] === 0 && delivered[0] + delivered[1] === 0) continue;
      const lost = Math.max(0, sent[0] - delivered[0]) + Math.max(0, sent[1] - delivered[1]);
      out.push({ a, b, sent, delivered, dropped: lost > 0 ? { lost } : {} });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Captures

interface Tap {
  key: string;
  tap: CaptureTap | null;
  observer: IcmpObserver | null;
  file: string | null;
  /** UDP streams received on this port: `<dport>/<sport>` → what arrived. */
  udp: Map<string, UdpSink> | null;
}

/**
 * Opens the captures a run needs: the scenario's capture points (`--pcap`), and for UDP flows the
 * sender's port (the ICMP it is sent) and the receiver's (which of iperf3's datagrams it was given,
 * and when they were sent). One capture per port, shared. Ping and TCP need none: ping prints the ICMP
 * it gets, TCP_INFO says what TCP learnt, and a capture slows its agent down.
 */
async function openTaps(c: Ctx, flows: LiveFlow[], pcapDir: string | null): Promise<Map<string, Tap>> {
  const taps = new Map<string, Tap>();
  interface Want {
    node: string;
    port: string;
    file: string | null;
    observe: boolean;
    udp: boolean;
  }
  const want = new Map<string, Want>();
  const need = (node: string, port: string): Want => {
    const key = `${node}/${port}`;
    let w = want.get(key);
    if (w === undefined) {
      w = { node, port, file: null, observe: false, udp: false };
      want.set(key, w);
    }
    return w;
  };
  if (pcapDir !== null) for (const cp of c.s.capture) need(cp.node, cp.port).file = join(pcapDir, `${cp.node}-${cp.port}.pcapng`);
  for (const f of flows) {
    if (f.t.type !== 'udp') continue;
    need(f.srcNode, f.srcPort).observe = true;
    need(f.t.to.node, f.dstPort).udp = true;
  }
  for (const [key, w] of want) {
    const observer = w.observe ? new IcmpObserver() : null;
    const udp = w.udp ? new Map<string, UdpSink>() : null;
    const parser = observer !== null || udp !== null ? new PcapngParser() : null;
    let broken = false;
    const onBlock =
      parser === null
        ? undefined
        : (block: Buffer): void => {
            if (broken) return;
            try {
              parser.push(new Uint8Array(block));
              for (const rec of parser.records()) {
                const ts = Number(rec.timestampNs);
                observer?.see(rec.data, 0, rec.data.length, ts);
                if (udp !== null) {
                  const d = iperfDatagramOf(rec.data);
                  const sink = d === null ? undefined : udp.get(`${d.dport}/${d.sport}`);
                  if (d !== null && sink !== undefined) {
                    if (sink.seqs.has(d.seq)) sink.duplicates++;
                    else {
                      sink.seqs.add(d.seq);
                      // iperf3 stamps its datagrams with CLOCK_MONOTONIC (older versions: the wall clock); the agent's capture with the wall clock.
                      const sent = d.sentNs > 1e18 ? d.sentNs : d.sentNs + MONO_TO_EPOCH_NS;
                      const l = ts - sent;
                      if (l >= 0 && l < 60e9) sink.latNs.push(l);
                    }
                  }
                }
              }
            } catch (e) {
              broken = true;
              c.notes.push(`capture of ${key} could not be read (${(e as Error).message}): its ICMP and UDP counts are incomplete`);
            }
          };
    const out = w.file !== null ? createWriteStream(w.file) : undefined;
    try {
      const tap = await tapCapture(controlPath(c.lab, w.node), w.port, {
        ...(out !== undefined ? { out } : {}),
        ...(onBlock !== undefined ? { onBlock } : {}),
      });
      taps.set(key, { key, tap, observer, file: w.file, udp });
    } catch (e) {
      out?.end();
      const lost = [
        w.file !== null ? 'no pcapng for it' : '',
        w.observe ? 'no ICMP seen for the UDP flows sent from it' : '',
        w.udp ? "UDP delivery there is iperf3's own count" : '',
      ].filter((x) => x !== '');
      c.notes.push(`capture of ${key} could not start (${(e as Error).message}): ${lost.join('; ')}`);
      taps.set(key, { key, tap: null, observer: null, file: null, udp: null });
    }
  }
  // Each UDP stream's sink, on its receiver's port.
  for (const f of flows) {
    if (f.t.type !== 'udp') continue;
    const udp = taps.get(`${f.t.to.node}/${f.dstPort}`)?.udp ?? null;
    if (udp === null) continue;
    for (const sv of f.servers) {
      sv.sink = { seqs: new Set(), duplicates: 0, latNs: [] };
      udp.set(`${sv.port}/${sv.cport}`, sv.sink);
    }
  }
  return taps;
}

// ---------------------------------------------------------------------------------------------------
// The command

export async function runLive(a: RunArgs, io: RunIo): Promise<number> {
  const s = load(a.path);
  const without = a.without === null ? [...(s.live?.without ?? [])] : parseWithout(a.without, 'run --live');
  for (const t of s.traffic) checkFlow(s, t);
  const name = a.lab ?? `run-${labName(s.name)}`;
  requireLive('run --live');
  // The capture directory before anything is made: a bad one is refused (exit 2) with no lab built.
  if (a.pcap !== null) {
    const why = makeDir(a.pcap);
    if (why !== null) throw new CliError(`run --live: cannot write captures into '${a.pcap}': ${why}`);
  }
  const say = (line: string): void => {
    if (io.tty) io.err(`${line}\n`);
  };

  // Ctrl-C or SIGTERM: stop the tools, take the lab down, exit 130.
  let interrupted: NodeJS.Signals | null = null;
  let wake: () => void = () => {};
  const interruption = new Promise<void>((r) => {
    wake = r;
  });
  let tools: Tools | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted === null) io.err(`\nrun --live: ${sig}: stopping the tools and taking the lab down...\n`);
    interrupted = sig;
    tools?.killAll();
    wake();
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  let lab: LabHandle | null = null;
  let report: Report | null = null;
  let downError: string | null = null;
  try {
    say(`bringing up lab ${name} for ${s.name}${without.length > 0 ? ` without ${without.join(', ')}` : ''}...`);
    const up = await bringUp(s, without, 'run --live', { name });
    lab = up.lab;
    if (interrupted === null)
      report = await runScenario(
        s,
        up.plan,
        up.lab,
        without,
        a,
        io,
        (t) => {
          tools = t;
        },
        interruption,
        () => interrupted !== null,
      );
  } finally {
    // Still listening for signals: a Ctrl-C now must not leave a half-removed lab.
    if (lab !== null) {
      say(`taking lab ${name} down...`);
      try {
        await lab.down({ graceMs: 1000 });
      } catch (e) {
        downError = (e as Error).message;
      }
    }
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  if (downError !== null) io.err(`run --live: the lab was not taken down entirely: ${downError}\n(try: seine lab down ${name})\n`);
  if (interrupted !== null) {
    io.err(`run --live: interrupted (${interrupted}); lab ${name} taken down\n`);
    return 130;
  }
  const r = report!;
  if (a.json) io.out(JSON.stringify(r));
  else {
    io.out(formatReport(r));
    if (a.pcap !== null && r.captures.length > 0) io.out(`\nwrote ${r.captures.map((k) => join(a.pcap!, `${k.name.replace('/', '-')}.pcapng`)).join(', ')}`);
  }
  return r.ok && downError === null ? 0 : 1;
}

async function runScenario(
  s: Scenario,
  plan: LabPlan,
  lab: LabHandle,
  without: string[],
  a: RunArgs,
  io: RunIo,
  onTools: (t: Tools) => void,
  interruption: Promise<void>,
  isInterrupted: () => boolean,
): Promise<Report | null> {
  const tools = new Tools(lab);
  onTools(tools);
  const notes: string[] = [];
  const skipped: SkippedPart[] = [];
  if (s.live !== null) notes.push(`scenario: ${s.live.note.trim().replace(/\s+/g, ' ')}`);
  for (const o of plan.omitted)
    skipped.push({ part: o.part, reason: `${o.what} (${a.without === null ? "the scenario's live.without:" : '--without'} ${o.feature})` });

  // The flows that run, and the ones that cannot.
  const flows: LiveFlow[] = [];
  const skippedFlows = new Set<string>();
  s.traffic.forEach((t, k) => {
    const why = cannotRun(t);
    if (why !== null) {
      skipped.push({ part: `traffic ${t.name}`, reason: why });
      skippedFlows.add(t.name);
      return;
    }
    const src = endpointOf(plan, s, t.from, t.family);
    const dst = endpointOf(plan, s, t.to, t.family);
    if (t.type !== 'tcp' && sendable(t, s.durationNs) < t.count)
      notes.push(
        `${t.name}: ${sendable(t, s.durationNs)} of its ${t.count} packets start before the scenario's end (${fmtNs(s.durationNs)}): only those are sent, as in the simulator`,
      );
    flows.push({
      t,
      k,
      srcNode: t.from.node,
      srcPort: src.port,
      srcNs: src.ns,
      dstNs: dst.ns,
      dstPort: dst.port,
      srcAddr: src.addr!,
      dstAddr: dst.addr!,
      srcMtu: src.mtu,
      icmp: new Set(),
      watches: [],
      servers: [],
      result: null,
    });
  });
  const expect: ExpectSpec[] = [];
  s.expect.forEach((e, i) => {
    if (e.flow === null || !skippedFlows.has(e.flow)) {
      expect.push(e);
      return;
    }
    skipped.push({ part: `expect[${i}]`, reason: `about flow ${e.flow}, which did not run live` });
    if (Object.keys(e.drops).length > 0 || Object.keys(e.counters).length > 0)
      expect.push({ ...e, flow: null, delivered: null, latencyP50Ns: null, latencyP99Ns: null, latencyMaxNs: null, icmpSeen: [] });
  });

  const c: Ctx = { s, plan, lab, tools, t0Ms: 0, t0Ns: 0, deadlineMs: performance.now() + s.durationNs / 1e6 + MARGIN_MS + 30_000, notes };
  await startServers(c, flows);
  const taps = await openTaps(c, flows, a.pcap);
  if (isInterrupted()) {
    for (const t of taps.values()) await t.tap?.stop();
    return null;
  }

  // Time 0: the counters so far (the lab's start-up) are left out of the report.
  const baseline = await agentStats(lab, plan);
  c.t0Ms = performance.now();
  c.t0Ns = epochNs();
  c.deadlineMs = c.t0Ms + s.durationNs / 1e6 + MARGIN_MS;
  const bar = progressBar({ ...io, tty: io.tty && a.progress }, `running ${s.name} live`);
  const ticker = setInterval(() => bar.tick(Math.min(1, (performance.now() - c.t0Ms) / (s.durationNs / 1e6))), 250);
  const timers: NodeJS.Timeout[] = [];
  const at = <T>(ns: number, fn: () => Promise<T>): Promise<T | null> =>
    new Promise((res, rej) => {
      timers.push(
        setTimeout(
          () => {
            if (isInterrupted()) res(null);
            else fn().then(res, rej);
          },
          Math.max(0, c.t0Ms + ns / 1e6 - performance.now()),
        ),
      );
    });
  const runs = flows.map((f) =>
    at(f.t.startNs, async () => {
      // The runners add their ICMP watches (echo identifier, source ports) before their first await:
      // the observer of the sender's port learns of them before the tools start.
      const p = f.t.type === 'ping' ? runPing(c, f) : f.t.type === 'udp' ? runUdp(c, f) : runTcp(c, f);
      taps.get(`${f.srcNode}/${f.srcPort}`)?.observer?.watches.push(...f.watches);
      f.result = await p;
    }),
  );
  const applied: string[] = [];
  const faults = plan.faults.map((fa) =>
    at(fa.atNs, async () => {
      const atMs = performance.now() - c.t0Ms;
      const problem = await applyFault(fa);
      if (problem !== null) notes.push(problem);
      else applied.push(`${fa.what} (applied at ${(atMs / 1000).toFixed(4)}s)`);
    }),
  );
  const all = Promise.all([...runs, ...faults]);
  let deadlineTimer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((r) => {
    deadlineTimer = setTimeout(r, Math.max(0, c.deadlineMs + 5000 - performance.now()));
  });
  const ended = await Promise.race([
    all.then(() => 'done' as const),
    interruption.then(() => 'interrupted' as const),
    deadline.then(() => 'deadline' as const),
  ]);
  clearInterval(ticker);
  clearTimeout(deadlineTimer);
  for (const t of timers) clearTimeout(t);
  bar.done();
  if (ended === 'deadline') {
    notes.push(`the run was cut at the scenario's duration plus ${(MARGIN_MS + 5000) / 1000} s`);
    tools.killAll();
    // What the killed tools had said so far.
    await Promise.race([all.catch(() => undefined), limit(3000)]);
  }
  if (ended === 'interrupted' || isInterrupted()) {
    for (const t of taps.values()) await t.tap?.stop();
    return null;
  }
  const wallMs = performance.now() - c.t0Ms;

  // Counters, after the last frames have arrived. Drops, paths and the wire overhead are what the run
  // added (the lab's start-up left out); the counters of expectations count from the agents' start,
  // as the simulator's from its time 0 (the pods' first frames included).
  await sleep(SETTLE_MS);
  const totals = await agentStats(lab, plan);
  const stats = since(totals, baseline);
  for (const t of taps.values()) await t.tap?.stop();

  // The report.
  const results: FlowResult[] = [];
  for (const f of flows) {
    const r = f.result ?? {
      ...base(f),
      planned: f.t.type === 'tcp' ? f.t.bytes : f.t.count,
      sent: 0,
      delivered: 0,
      lost: f.t.type === 'tcp' ? 0 : f.t.count,
      deliveredRatio: 0,
      tooBig: 0,
      duplicates: 0,
      latencyP50Ns: null,
      latencyP99Ns: null,
      latencyMaxNs: null,
      throughputBps: 0,
      goodputBps: 0,
      icmpSeen: [],
    };
    r.icmpSeen = [...f.icmp].sort();
    results.push(r);
  }
  const byName = new Map(results.map((f) => [f.name, f]));
  const drops = liveDrops(stats);
  const expectations = checkExpectations(expect, byName, drops, (n) => liveCounter(s, totals, n));
  let inner = 0,
    outer = 0;
  for (const snap of stats.values()) {
    if (typeof snap === 'string') continue;
    for (const p of snap.peers) inner += p.txInnerBytes;
    outer += snap.ports.find((p) => p.port === 'underlay')?.txBytes ?? 0;
  }
  if (applied.length > 0) notes.push(`faults applied: ${applied.join(', ')}`);
  notes.push(...measurementNotes(s, flows, taps));
  const captures =
    a.pcap === null ? [] : s.capture.map((cp) => ({ name: `${cp.node}/${cp.port}`, packets: taps.get(`${cp.node}/${cp.port}`)?.tap?.packets ?? 0 }));
  return {
    scenario: s.name,
    seed: s.seed,
    durationNs: s.durationNs,
    events: 0,
    podMtu: s.podMtu,
    flows: results,
    drops,
    wireOverheadPct: inner > 0 ? ((outer - inner) / inner) * 100 : null,
    innerBytes: inner,
    outerBytes: outer,
    underlay: { paths: livePaths(s, stats), unknownDst: 0, uplinkDown: 0 },
    captures,
    expectations,
    ok: expectations.every((x) => x.ok),
    live: { lab: lab.lab, wallMs: Math.round(wallMs), without, notes },
    skipped,
  };
}

/** How this run's numbers were measured, where that differs from the simulator (only for what the scenario has). */
function measurementNotes(s: Scenario, flows: LiveFlow[], taps: ReadonlyMap<string, Tap>): string[] {
  const out: string[] = [];
  const types = new Set(flows.map((f) => f.t.type));
  if (types.has('ping'))
    out.push('ping: iputils ping; p50/p99 are round trips of the replies; "too big" are sends the kernel refused (local error: message too long)');
  if (types.has('udp')) {
    out.push(
      "udp: iperf3 sends; delivered = the distinct datagrams (by iperf3's sequence number) the agent gave the receiver's pod, from its capture of that port; latency = one way, from iperf3's send timestamp in each datagram to that moment (the pod's own stack not included); jitter is iperf3's",
    );
    for (const f of flows) {
      if (f.t.type !== 'udp' || f.servers.length < 2) continue;
      out.push(
        `udp ${f.t.name}: its sizes go as ${f.servers.length} parallel iperf3 streams, one per size (${f.servers.map((x) => `${x.stream!.count}×${x.stream!.ipSize}`).join(', ')}), each at its share of the packet rate, not interleaved`,
      );
    }
  }
  if (types.has('tcp'))
    out.push(
      "tcp: the kernel's TCP (the probe); delivered = bytes the receiver read, segments and retransmissions from the sender's TCP_INFO; MSS is TCP_INFO's (less the timestamp option's 12 bytes when in use); fast retransmits, timeouts and PMTU reductions are not counted",
    );
  const icmpFrom = [
    types.has('ping') ? 'ping: what ping printed' : '',
    types.has('udp') ? "udp: the agent's capture of the sender's port, read by the simulator's ICMP observer" : '',
    types.has('tcp') ? "tcp: TCP_INFO's path MTU below the sender's MTU (a frag-needed or packet-too-big arrived); nothing else is seen" : '',
  ].filter((x) => x !== '');
  if (icmpFrom.length > 0) out.push(`ICMP seen: ${icmpFrom.join('; ')}`);
  const captured = [...taps.values()].filter((t) => t.tap !== null).map((t) => t.key);
  if (captured.length > 0) out.push(`captured ports (${captured.join(', ')}): a capture adds work to its agent, which slows what crosses that port`);
  if (s.nodes.length > 1)
    out.push(
      "underlay: per node pair, frames one agent encapsulated and the other decapsulated; 'lost' is the difference (the wire's reason is not known live)",
    );
  out.push(
    "drops, underlay and wire overhead: the agents' counters (bridge ports, live devices, tunnel peers) from time 0 of the run (the lab's start-up left out); counters: the agents' since they started",
  );
  return out;
}
