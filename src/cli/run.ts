/**
 * `seine run <scenario>`: simulate a scenario and print its report; the exit status says whether its
 * expectations held (0), failed (1), or the scenario could not be run (2, with the file, line, key and
 * what was expected).
 */
import { join } from 'node:path';
import type { PcapngCapture } from '../datapath/observe.js';
import { type Args, CliError, parseCommandArgs, type Command, type RunIo } from './command.js';
import { makeDir, OutputFiles } from './files.js';
import { Cluster, SimBuildError, formatReport } from '../sim/cluster.js';
import { durationOf, ScenarioError, loadScenario, type Scenario } from '../scenario/scenario.js';
export { CliError, type RunIo } from './command.js';
import { runRecord, SeriesRecorder } from '../sim/record.js';
import { loadTraces, writeHtml } from './report.js';
import { formatTrace, traceScenario, type TraceProto, type TraceRequest, type TraceResult } from '../sim/tracer.js';

const RUN_ABOUT = `Simulates the scenario (no root, no network) and prints, per flow, what was sent and delivered, latency
p50/p99, throughput and goodput; the wire overhead; drops by reason per node and port; and each
expectation of the scenario with the value found.

With --live (Linux, root) the scenario runs on this machine instead: its lab is brought up (as seine lab
up does: namespaces, one agent per node), its traffic is sent with real tools at the scenario's times
(ping; iperf3 for UDP, counted on the receiver's port; a kernel TCP transfer measured with TCP_INFO for
TCP), its faults are applied, and the same report is printed from the tools' output and the agents'
counters and checked against the same expectations; the lab is then taken down, also on failure or
Ctrl-C. What cannot run live (replayed flows, features left out) is listed as skipped with the reason;
the report's "live measurements" say how each number was measured.`;

export const RUN: Command = {
  name: 'run',
  operands: '<scenario.yaml>',
  summary:
    "Simulate a scenario (a lab in scenarios/, no root, no network) and print per-flow delivery, latency, throughput and goodput, the wire overhead, drops by reason, and the scenario's expectations; exit status 1 when one fails. With --live (Linux, root), run it in a live lab on this machine instead.",
  about: RUN_ABOUT,
  variant: '--live <scenario.yaml> [--json] [--pcap DIR] [--without F,...] [--lab NAME]',
  options: {
    json: { type: 'boolean', help: 'the report as one JSON object' },
    pcap: {
      type: 'string',
      arg: 'DIR',
      help: 'write one pcapng file per capture point of the scenario into DIR (made if missing, before the run: a directory that cannot be written is refused first)',
    },
    seed: { type: 'string', arg: 'N', expects: 'an integer 0-4294967295', help: "run with this seed instead of the scenario's (simulated runs)" },
    'no-progress': { type: 'boolean', help: 'no progress bar (it is shown on a terminal for runs longer than a second)' },
    live: { type: 'boolean', help: 'run in a live lab on this machine (root) instead of the simulator' },
    without: {
      type: 'string',
      arg: 'F,...',
      help: "live: leave these lab features out (latency, jitter, loss, bandwidth, linkMtu, linkFaults, nodeFaults); default: the scenario's live.without; none: nothing",
    },
    lab: { type: 'string', arg: 'NAME', help: "live: the lab's name (default run-<scenario>)" },
    html: {
      type: 'string',
      arg: 'FILE',
      help: 'also write the run as one self-contained HTML page: topology, flows, time series (throughput, latency, TCP cwnd, drops), expectations (simulated runs)',
    },
    trace: { type: 'string', arg: 'T.json', multiple: true, help: 'a seine trace --json result to draw in the page and the JSON (repeatable)' },
  },
  footer: `exit status: 0 all expectations met, 1 one failed, 2 the scenario or the options are wrong (or, live,
the scenario cannot go live here: refused before anything is made)`,
  run: (a, io) => runParsed(a, io),
};

export interface RunArgs {
  path: string;
  json: boolean;
  pcap: string | null;
  seed: number | undefined;
  progress: boolean;
  /** Run in a live lab (`--live`), leaving out `without` (null: the scenario's `live.without`), in lab `lab`. */
  live: boolean;
  without: string | null;
  lab: string | null;
  /** `--html FILE`: the run as a page; `--trace T.json`: traces to draw in it and hold in the JSON. */
  html: string | null;
  traces: string[];
}

/** A `--seed` value: an integer that fits the simulator's 32-bit seed. */
function parseSeed(v: string | undefined, cmd: string): number {
  const s = v ?? '';
  if (!/^\d+$/.test(s) || Number(s) > 0xffff_ffff) throw new CliError(`${cmd}: --seed expects an integer 0-4294967295, got '${s}'`);
  return Number(s);
}

/** The file a capture point is written to under `--pcap DIR`. */
function captureFile(dir: string, c: PcapngCapture): string {
  return join(dir, `${c.name.replace('/', '-')}.pcapng`);
}

function parseRunArgs(a: Args): RunArgs {
  const cmd = 'run';
  if (a.operands.length === 0) throw new CliError(`${cmd}: which scenario? usage: seine ${cmd} <scenario.yaml> (the labs are in scenarios/)`);
  if (a.operands.length > 1) throw new CliError(`${cmd}: one scenario at a time (got '${a.operands[0]}' and '${a.operands[1]}')`);
  const pcap = a.str('pcap') ?? null;
  if (pcap === '') throw new CliError(`${cmd}: --pcap expects a directory`);
  const r: RunArgs = {
    path: a.operands[0]!,
    json: a.has('json'),
    pcap,
    seed: a.has('seed') ? parseSeed(a.str('seed'), cmd) : undefined,
    progress: !a.has('no-progress'),
    live: a.has('live'),
    without: a.str('without') ?? null,
    lab: a.str('lab') ?? null,
    html: a.str('html') ?? null,
    traces: a.all('trace'),
  };
  if (r.html === '') throw new CliError(`${cmd}: --html expects a file`);
  if (r.lab === '') throw new CliError(`${cmd}: --lab expects a lab name`);
  if (!r.live && (r.without !== null || r.lab !== null))
    throw new CliError(`${cmd}: ${r.without !== null ? '--without' : '--lab'} is for live runs (add --live)`);
  if (r.live && r.seed !== undefined) throw new CliError(`${cmd}: --seed is for simulated runs (a live run's randomness is the machine's)`);
  if (r.live && (r.html !== null || r.traces.length > 0))
    throw new CliError(`${cmd}: --html and --trace are for simulated runs (save a live run with --json and draw it with seine report)`);
  if (r.traces.length > 0 && r.html === null && !r.json) throw new CliError(`${cmd}: --trace goes with --html or --json`);
  return r;
}

/**
 * A RangeError the simulator throws for a value it cannot take — not a stack overflow, which is seine's
 * bug (an internal error, status 70), whatever the input.
 */
function userRangeError(e: unknown): e is RangeError {
  return e instanceof RangeError && !e.message.startsWith('Maximum call stack size exceeded');
}

/**
 * Loads a scenario; a mistake in it becomes a CliError (status 2) with the loader's message, which begins
 * with the file (main.ts puts the command's name in front).
 */
export function load(path: string): Scenario {
  try {
    return loadScenario(path);
  } catch (e: unknown) {
    if (e instanceof ScenarioError) throw new CliError(e.message);
    throw e;
  }
}

/** Draws a progress bar on stderr once a run has taken more than a second. */
export function progressBar(io: RunIo, label: string, clock: () => number = Date.now): { tick: (f: number) => void; done: () => void } {
  const t0 = clock();
  let drawn = false;
  return {
    tick(f: number): void {
      if (!io.tty || clock() - t0 < 1000) return;
      drawn = true;
      const w = 30,
        k = Math.round(f * w);
      io.err(`\r${label} [${'#'.repeat(k)}${'.'.repeat(w - k)}] ${Math.round(f * 100)}%`);
    },
    done(): void {
      if (drawn) io.err('\r\x1b[K');
    },
  };
}

/** `seine run` from its words (what the tests and main's table call). */
export function runCommand(args: string[], io: RunIo): number | Promise<number> {
  return runParsed(parseCommandArgs(RUN, args), io);
}

function runParsed(parsed: Args, io: RunIo): number | Promise<number> {
  const a = parseRunArgs(parsed);
  if (a.live) return import('./runlive.js').then((m) => m.runLive(a, io));
  const scenario = load(a.path);
  let cluster: Cluster;
  try {
    cluster = new Cluster(scenario, { ...(a.seed !== undefined ? { seed: a.seed } : {}), capture: a.pcap !== null });
  } catch (e: unknown) {
    if (e instanceof SimBuildError || userRangeError(e)) throw new CliError(`${a.path}: ${e.message}`);
    throw e;
  }
  // What the page needs (and the JSON holds): traces read before the run, so a bad file costs no run.
  const record = a.json || a.html !== null;
  const traces = loadTraces(a.traces);
  const series = record ? new SeriesRecorder(cluster) : null;
  // The capture files are made before the run: a directory that cannot take them costs no simulation.
  let files: OutputFiles | null = null;
  if (a.pcap !== null) {
    const why = makeDir(a.pcap);
    if (why !== null) throw new CliError(`run: cannot write captures into '${a.pcap}': ${why}`);
    try {
      files = new OutputFiles(cluster.captures.map((c) => captureFile(a.pcap!, c)));
    } catch (e: unknown) {
      throw new CliError(`run: cannot write captures into '${a.pcap}': ${(e as Error).message}`);
    }
  }
  const bar = progressBar({ ...io, tty: io.tty && a.progress }, `simulating ${scenario.name}`);
  cluster.run(bar.tick, series ?? undefined);
  bar.done();
  if (io.tty) io.err(`simulated ${scenario.durationNs / 1e9} s in ${(cluster.wallMs / 1000).toFixed(2)} s (${cluster.sim.events} events)\n`);
  const report = cluster.report();
  const full = record ? runRecord(report, scenario, series!.series, traces) : null;
  // The report first: a capture that fails to write (a full disk) does not lose it.
  if (a.json) io.out(JSON.stringify(full));
  else io.out(formatReport(report));
  if (files !== null) {
    const failed = files.write((i) => cluster.captures[i]!.bytes());
    if (failed !== null) {
      io.err(`seine run: ${failed}\n`);
      return 2;
    }
    if (!a.json && cluster.captures.length > 0) io.out(`\nwrote ${files.paths.join(', ')}`);
  }
  if (a.html !== null) {
    try {
      writeHtml(a.html, full!);
    } catch (e: unknown) {
      if (!(e instanceof CliError)) throw e;
      io.err(`seine run: ${e.message}\n`);
      return 2;
    }
  }
  return report.ok ? 0 : 1;
}

export const TRACE: Command = {
  name: 'trace',
  operands: '<scenario.yaml>',
  variant: '--live --from NODE[/POD] --to NODE[/POD] [--lab LAB] [--proto icmp|udp] [--size N] [--json]',
  summary:
    'Send one packet through the simulated cluster of a scenario and print every stage on every node it crosses (port in, MAC lookup, route, encapsulation, ESP, fragmentation, underlay, delivery or drop); with --live, one real packet through a running lab (seine lab up).',
  about: `Sends one packet through the simulated cluster of the scenario (its topology, links and faults; not its
traffic) and prints every decision on every node it crosses: port in, MAC lookup, route, encapsulation
(VNI, outer addresses, UDP source port), ESP (SPI, sequence), fragmentation, the underlay path,
decryption, decapsulation, delivery or the drop and its reason.

With --live (no scenario file) the packet is a real one, sent from a pod (or a node's own stack) of a
running lab (seine lab up), and every stage each node's agent took is printed the same way. IPv4.`,
  options: {
    from: { type: 'string', arg: 'NODE[/POD]', required: true, help: "the sending pod, or a node's own stack (routed mode)" },
    to: { type: 'string', arg: 'NODE[/POD]', required: true, help: "the receiving pod, or a node's own stack (its gateway's address)" },
    proto: { type: 'string', arg: 'P', help: 'icmp (echo request, default), udp, or tcp (a SYN; simulated only)' },
    size: { type: 'string', arg: 'N', help: 'IP packet bytes (default 84 for ICMP, 100 for UDP)' },
    family: { type: 'string', arg: '4|6', help: 'which addresses (default 4 when both ends have one; simulated only)' },
    at: { type: 'string', arg: 'TIME', help: 'when to send, e.g. 2s or 1500ms (default 0), to trace during a fault (simulated only)' },
    seed: { type: 'string', arg: 'N', help: "the simulator's seed instead of the scenario's (simulated only)" },
    json: { type: 'boolean', help: 'the trace as one JSON object' },
    live: { type: 'boolean', help: 'trace in a running live lab instead of the simulator (Linux, root)' },
    lab: { type: 'string', arg: 'LAB', help: 'live: the lab (default: the only one up)' },
  },
  footer: 'exit status: 0 delivered, 1 dropped or lost, 2 the scenario or the options are wrong',
  run: (a, io) => (a.has('live') ? import('./trace-live.js').then((m) => m.traceLive(a, io)) : traceCommand(a, io)),
};

/** NODE or NODE/POD, each a non-empty name: `node1/` and `a/b/c` are refused before the scenario is read. */
export function checkEndpoint(cmd: string, opt: string, v: string): void {
  if (!/^[^/]+(\/[^/]+)?$/.test(v)) throw new CliError(`${cmd}: ${opt} expects NODE or NODE/POD, got '${v}'`);
}

function traceCommand(a: Args, io: RunIo): number {
  const req: Partial<TraceRequest> & { proto: TraceProto } = { proto: 'icmp' };
  const json = a.has('json');
  for (const o of ['lab'] as const) if (a.has(o)) throw new CliError(`trace: --${o} is for live traces (add --live)`);
  const from = a.req('from'),
    to = a.req('to');
  const proto = a.str('proto');
  if (proto !== undefined) {
    if (proto !== 'icmp' && proto !== 'udp' && proto !== 'tcp') throw new CliError(`trace: --proto expects icmp, udp or tcp, got '${proto}'`);
    req.proto = proto;
  }
  const size = a.str('size');
  if (size !== undefined) {
    if (!/^\d+$/.test(size)) throw new CliError(`trace: --size expects a number of bytes, got '${size}'`);
    req.size = Number(size);
  }
  const family = a.str('family');
  if (family !== undefined) {
    if (family !== '4' && family !== '6') throw new CliError(`trace: --family expects 4 or 6, got '${family}'`);
    req.family = family === '4' ? 4 : 6;
  }
  const at = a.str('at');
  if (at !== undefined) {
    const t = durationOf(at);
    if (t === null) throw new CliError(`trace: --at expects a time such as 2s or 1500ms, got '${at}'`);
    req.atNs = t;
  }
  if (a.has('seed')) req.seed = parseSeed(a.str('seed'), 'trace');
  if (a.operands.length === 0) throw new CliError('trace: which scenario? usage: seine trace <scenario.yaml> --from node1/a --to node2/b');
  if (a.operands.length > 1) throw new CliError(`trace: one scenario at a time (got '${a.operands[0]}' and '${a.operands[1]}')`);
  const path = a.operands[0]!;
  checkEndpoint('trace', '--from', from);
  checkEndpoint('trace', '--to', to);
  // As the scenario loader refuses a flow to itself: such a packet would never reach a wire.
  if (from === to) throw new CliError(`trace: --from and --to are the same endpoint ('${from}'); trace between two`);
  req.from = from;
  req.to = to;
  const scenario = load(path);
  if (req.atNs !== undefined && req.atNs >= scenario.durationNs)
    throw new CliError(`trace: --at is past the scenario's duration (${scenario.durationNs / 1e9} s)`);
  let r: TraceResult;
  try {
    r = traceScenario(scenario, req as TraceRequest);
  } catch (e: unknown) {
    if (e instanceof SimBuildError || userRangeError(e)) throw new CliError(`trace: ${path}: ${e.message}`);
    throw e;
  }
  io.out(json ? JSON.stringify(r) : formatTrace(r));
  return r.outcome === 'delivered' ? 0 : 1;
}
