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
 *
 * This file is the command and the run's order of events; its parts are in runlive/: the tools and clocks
 * (tools.ts), the flows' runners (flows.ts), the agents' counters (stats.ts) and the captures (taps.ts).
 */
import { join } from 'node:path';
import { labName, type LabHandle, type LabPlan } from '../live/lab/index.js';
import { sendable } from '../live/lab/traffic.js';
import { checkExpectations, fmtNs, formatReport, type FlowResult, type Report, type SkippedPart } from '../sim/report.js';
import type { ExpectSpec, Scenario } from '../scenario/scenario.js';
import { bringUp, parseWithout, requireLive } from './lab.js';
import { makeDir } from './files.js';
import { CliError, load, progressBar, type RunArgs, type RunIo } from './run.js';
import {
  applyFault,
  base,
  cannotRun,
  checkFlow,
  endpointOf,
  MARGIN_MS,
  runPing,
  runTcp,
  runUdp,
  SETTLE_MS,
  startServers,
  type Ctx,
  type LiveFlow,
} from './runlive/flows.js';
import { agentStats, liveCounter, liveDrops, livePaths, since, type Stats } from './runlive/stats.js';
import { openTaps, type Tap } from './runlive/taps.js';
import { epochNs, sleep } from '../live/sleep.js';
import { Tools } from './runlive/tools.js';

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

/**
 * The run once its lab is up: which flows run, their servers and captures, time 0, the flows and faults at
 * their times, the counters at the end and the report. Null when interrupted.
 */
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
  const { flows, skippedFlows } = liveFlows(s, plan, skipped, notes);
  const expect = liveExpectations(s, skippedFlows, skipped);

  const c: Ctx = { s, plan, lab, tools, t0Ms: 0, t0Ns: 0, deadlineMs: performance.now() + s.durationNs / 1e6 + MARGIN_MS + 30_000, notes };
  await startServers(c, flows);
  const taps = await openTaps(c, flows, a.pcap);
  const stopTaps = async (): Promise<void> => {
    for (const t of taps.values()) await t.tap?.stop();
  };
  if (isInterrupted()) {
    await stopTaps();
    return null;
  }

  // Time 0: the counters so far (the lab's start-up) are left out of the report.
  const baseline = await agentStats(lab, plan);
  c.t0Ms = performance.now();
  c.t0Ns = epochNs();
  c.deadlineMs = c.t0Ms + s.durationNs / 1e6 + MARGIN_MS;
  const applied = await playTimeline(c, flows, taps, { ...io, tty: io.tty && a.progress }, interruption, isInterrupted);
  if (applied === null) {
    await stopTaps();
    return null;
  }
  const wallMs = performance.now() - c.t0Ms;

  // Counters, after the last frames have arrived. Drops, paths and the wire overhead are what the run
  // added (the lab's start-up left out); the counters of expectations count from the agents' start,
  // as the simulator's from its time 0 (the pods' first frames included).
  await sleep(SETTLE_MS);
  const totals = await agentStats(lab, plan);
  const stats = since(totals, baseline);
  await stopTaps();

  if (applied.length > 0) notes.push(`faults applied: ${applied.join(', ')}`);
  notes.push(...measurementNotes(s, flows, taps));
  return liveReport({ s, lab, flows, expect, stats, totals, taps, pcap: a.pcap, without, notes, skipped, wallMs });
}

/** The flows that run live, each with its namespaces and addresses; those that cannot are added to `skipped`. */
function liveFlows(s: Scenario, plan: LabPlan, skipped: SkippedPart[], notes: string[]): { flows: LiveFlow[]; skippedFlows: Set<string> } {
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
  return { flows, skippedFlows };
}

/**
 * The expectations checked live: one about a flow that did not run is skipped, but what it says of drops
 * and counters is still checked.
 */
function liveExpectations(s: Scenario, skippedFlows: ReadonlySet<string>, skipped: SkippedPart[]): ExpectSpec[] {
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
  return expect;
}

/**
 * From time 0 (`c.t0Ms`): each flow and each fault at its time, with a progress bar, until all are done,
 * the run is interrupted, or the deadline cuts it (the tools are killed; what they said so far counts).
 * The faults applied, or null when interrupted.
 */
async function playTimeline(
  c: Ctx,
  flows: LiveFlow[],
  taps: ReadonlyMap<string, Tap>,
  io: RunIo,
  interruption: Promise<void>,
  isInterrupted: () => boolean,
): Promise<string[] | null> {
  const s = c.s;
  const bar = progressBar(io, `running ${s.name} live`);
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
  const faults = c.plan.faults.map((fa) =>
    at(fa.atNs, async () => {
      const atMs = performance.now() - c.t0Ms;
      const problem = await applyFault(fa);
      if (problem !== null) c.notes.push(problem);
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
    c.notes.push(`the run was cut at the scenario's duration plus ${(MARGIN_MS + 5000) / 1000} s`);
    c.tools.killAll();
    // What the killed tools had said so far.
    await Promise.race([all.catch(() => undefined), sleep(3000, { unref: true })]);
  }
  return ended === 'interrupted' || isInterrupted() ? null : applied;
}

/** What the report is made of, once the run is over. */
interface LiveOutcome {
  s: Scenario;
  lab: LabHandle;
  flows: LiveFlow[];
  expect: ExpectSpec[];
  /** What the run added to the agents' counters (from time 0). */
  stats: Stats;
  /** The agents' counters since they started (what expectations name). */
  totals: Stats;
  taps: ReadonlyMap<string, Tap>;
  pcap: string | null;
  without: string[];
  notes: string[];
  skipped: SkippedPart[];
  wallMs: number;
}

/** The simulator's `Report` made of a live run's results and counters, its expectations checked. */
function liveReport(o: LiveOutcome): Report {
  const s = o.s;
  const results = o.flows.map(flowResult);
  const byName = new Map(results.map((f) => [f.name, f]));
  const drops = liveDrops(o.stats);
  const expectations = checkExpectations(o.expect, byName, drops, (n) => liveCounter(s, o.totals, n));
  let inner = 0,
    outer = 0;
  for (const snap of o.stats.values()) {
    if (typeof snap === 'string') continue;
    for (const p of snap.peers) inner += p.txInnerBytes;
    outer += snap.ports.find((p) => p.port === 'underlay')?.txBytes ?? 0;
  }
  const captures =
    o.pcap === null ? [] : s.capture.map((cp) => ({ name: `${cp.node}/${cp.port}`, packets: o.taps.get(`${cp.node}/${cp.port}`)?.tap?.packets ?? 0 }));
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
    underlay: { paths: livePaths(s, o.stats), unknownDst: 0, uplinkDown: 0 },
    captures,
    expectations,
    ok: expectations.every((x) => x.ok),
    live: { lab: o.lab.lab, wallMs: Math.round(o.wallMs), without: o.without, notes: o.notes },
    skipped: o.skipped,
  };
}

/** A flow's result with the ICMP it saw; a flow that never got to run sent nothing (its packets count as lost). */
function flowResult(f: LiveFlow): FlowResult {
  const r = f.result ?? {
    ...base(f),
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
  return r;
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
