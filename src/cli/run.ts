/**
 * `seine run <scenario>`: simulate a scenario and print its report; the exit status says whether its
 * expectations held (0), failed (1), or the scenario could not be run (2, with the file, line, key and
 * what was expected).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PcapngCapture } from '../datapath/observe.js';
import { Cluster, SimBuildError, formatReport } from '../sim/cluster.js';
import { durationOf, ScenarioError, loadScenario, type Scenario } from '../scenario/scenario.js';
import { runRecord, SeriesRecorder } from '../sim/record.js';
import { loadTraces, writeHtml } from './report.js';
import { formatTrace, traceScenario, type TraceProto, type TraceRequest, type TraceResult } from '../sim/tracer.js';

export const RUN_USAGE = `usage: seine run <scenario.yaml> [--json] [--pcap DIR] [--seed N] [--no-progress] [--html FILE [--trace T.json]...]
       seine run --live <scenario.yaml> [--json] [--pcap DIR] [--without FEATURE,...] [--lab NAME]

Simulates the scenario (no root, no network) and prints, per flow, what was sent and delivered, latency
p50/p99, throughput and goodput; the wire overhead; drops by reason per node and port; and each
expectation of the scenario with the value found.

With --live (Linux, root) the scenario runs on this machine instead: its lab is brought up (as seine lab
up does: namespaces, one agent per node), its traffic is sent with real tools at the scenario's times
(ping; iperf3 for UDP, counted on the receiver's port; a kernel TCP transfer measured with TCP_INFO for
TCP), its faults are applied, and the same report is printed from the tools' output and the agents'
counters and checked against the same expectations; the lab is then taken down, also on failure or
Ctrl-C. What cannot run live (replayed flows, features left out) is listed as skipped with the reason;
the report's "live measurements" say how each number was measured.

  --json          the report as one JSON object
  --pcap DIR      write one pcapng file per capture point of the scenario into DIR (made if missing)
  --seed N        run with this seed instead of the scenario's (simulated runs)
  --no-progress   no progress bar (it is shown on a terminal for runs longer than a second)
  --html FILE     also write the run as one self-contained HTML page: topology, flows, time series
                  (throughput, latency, TCP cwnd, drops), expectations (simulated runs)
  --trace T.json  a seine trace --json result to draw in the page and the JSON (repeatable)
  --live          run in a live lab on this machine (root) instead of the simulator
  --without F,... live: leave these lab features out (latency, jitter, loss, bandwidth, linkMtu,
                  linkFaults, nodeFaults); default: the scenario's live.without; none: nothing
  --lab NAME      live: the lab's name (default run-<scenario>)

exit status: 0 all expectations met, 1 one failed, 2 the scenario or the options are wrong (or, live,
the scenario cannot go live here: refused before anything is made)
`;

export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 2,
  ) {
    super(message);
  }
}

export interface RunIo {
  out(line: string): void;
  err(text: string): void;
  /** Whether to draw the progress bar (stderr is a terminal). */
  tty: boolean;
}

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
  /** `--html FILE`: the page to write; `--trace` files to draw in it (and hold in the JSON). */
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

export function parseRunArgs(args: string[]): RunArgs | 'help' {
  const cmd = 'run';
  const r: RunArgs = { path: '', json: false, pcap: null, seed: undefined, progress: true, live: false, without: null, lab: null, html: null, traces: [] };
  let path: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') r.json = true;
    else if (a === '--no-progress') r.progress = false;
    else if (a === '--pcap') {
      const d = args[++i];
      if (d === undefined || d === '') throw new CliError(`${cmd}: --pcap expects a directory`);
      r.pcap = d;
    } else if (a === '--seed') {
      r.seed = parseSeed(args[++i], cmd);
    } else if (a === '--live') r.live = true;
    else if (a === '--without') {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new CliError(`${cmd}: --without expects features such as latency,loss (or none)`);
      r.without = v;
    } else if (a === '--lab') {
      const v = args[++i];
      if (v === undefined || v === '' || v.startsWith('--')) throw new CliError(`${cmd}: --lab expects a lab name`);
      r.lab = v;
    } else if (a === '--html' || a === '--trace') {
      const v = args[++i];
      if (v === undefined || v === '' || v.startsWith('--')) throw new CliError(`${cmd}: ${a} expects a file`);
      if (a === '--html') r.html = v;
      else r.traces.push(v);
    } else if (a === '-h' || a === '--help') return 'help';
    else if (a.startsWith('-')) throw new CliError(`${cmd}: unknown option '${a}' (try seine ${cmd} --help)`);
    else if (path === null) path = a;
    else throw new CliError(`${cmd}: one scenario at a time (got '${path}' and '${a}')`);
  }
  if (path === null) throw new CliError(`${cmd}: which scenario? usage: seine ${cmd} <scenario.yaml> (the labs are in scenarios/)`);
  if (!r.live && (r.without !== null || r.lab !== null))
    throw new CliError(`${cmd}: ${r.without !== null ? '--without' : '--lab'} is for live runs (add --live)`);
  if (r.live && r.seed !== undefined) throw new CliError(`${cmd}: --seed is for simulated runs (a live run's randomness is the machine's)`);
  if (r.live && (r.html !== null || r.traces.length > 0))
    throw new CliError(`${cmd}: --html and --trace are for simulated runs (save a live run with --json and draw it with seine report)`);
  if (r.traces.length > 0 && r.html === null && !r.json) throw new CliError(`${cmd}: --trace goes with --html or --json`);
  r.path = path;
  return r;
}

/**
 * A RangeError the simulator throws for a value it cannot take — not a stack overflow, which is seine's
 * bug (an internal error, status 70), whatever the input.
 */
function userRangeError(e: unknown): e is RangeError {
  return e instanceof RangeError && !e.message.startsWith('Maximum call stack size exceeded');
}

/** Loads a scenario; a mistake in it becomes a CliError (status 2) with the loader's message. */
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

export function runCommand(args: string[], io: RunIo): number | Promise<number> {
  const a = parseRunArgs(args);
  if (a === 'help') {
    io.out(RUN_USAGE);
    return 0;
  }
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
  const bar = progressBar({ ...io, tty: io.tty && a.progress }, `simulating ${scenario.name}`);
  cluster.run(bar.tick, series ?? undefined);
  bar.done();
  if (io.tty) io.err(`simulated ${scenario.durationNs / 1e9} s in ${(cluster.wallMs / 1000).toFixed(2)} s (${cluster.sim.events} events)\n`);
  const report = cluster.report();
  const full = record ? runRecord(report, scenario, series!.series, traces) : null;
  if (a.pcap !== null) {
    try {
      mkdirSync(a.pcap, { recursive: true });
      for (const c of cluster.captures) writeFileSync(captureFile(a.pcap, c), c.bytes());
    } catch (e: unknown) {
      const err = e as NodeJS.ErrnoException;
      throw new CliError(`run: cannot write captures into '${a.pcap}': ${err.code ?? err.message}`);
    }
  }
  if (a.html !== null) writeHtml(a.html, full!);
  if (a.json) io.out(JSON.stringify(full));
  else {
    io.out(formatReport(report));
    if (a.pcap !== null && cluster.captures.length > 0) io.out(`\nwrote ${cluster.captures.map((c) => captureFile(a.pcap!, c)).join(', ')}`);
  }
  return report.ok ? 0 : 1;
}

export const TRACE_USAGE = `usage: seine trace <scenario.yaml> --from NODE[/POD] --to NODE[/POD] [--proto icmp|udp|tcp] [--size N]
                   [--family 4|6] [--at TIME] [--seed N] [--json]

Sends one packet through the simulated cluster of the scenario (its topology, links and faults; not its
traffic) and prints every decision on every node it crosses: port in, MAC lookup, route, encapsulation
(VNI, outer addresses, UDP source port), ESP (SPI, sequence), fragmentation, the underlay path,
decryption, decapsulation, delivery or the drop and its reason.

  --from NODE[/POD] the sending pod, or a node's own stack (routed mode)
  --to NODE[/POD]   the receiving pod, or a node's own stack (its gateway's address)
  --proto P         icmp (echo request, default), udp, or tcp (a SYN)
  --size N          IP packet bytes (default 84 for ICMP, 100 for UDP)
  --family 4|6      which addresses (default 4 when both ends have one)
  --at TIME         when to send, e.g. 2s or 1500ms (default 0), to trace during a fault
  --json            the trace as one JSON object

exit status: 0 delivered, 1 dropped or lost, 2 the scenario or the options are wrong
`;

export function traceCommand(args: string[], io: RunIo): number {
  let path: string | null = null;
  const req: Partial<TraceRequest> & { proto: TraceProto } = { proto: 'icmp' };
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const val = (): string => {
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw new CliError(`trace: ${a} expects a value`);
      return v;
    };
    if (a === '--json') json = true;
    else if (a === '--from') req.from = val();
    else if (a === '--to') req.to = val();
    else if (a === '--proto') {
      const v = val();
      if (v !== 'icmp' && v !== 'udp' && v !== 'tcp') throw new CliError(`trace: --proto expects icmp, udp or tcp, got '${v}'`);
      req.proto = v;
    } else if (a === '--size') {
      const v = val();
      if (!/^\d+$/.test(v)) throw new CliError(`trace: --size expects a number of bytes, got '${v}'`);
      req.size = Number(v);
    } else if (a === '--family') {
      const v = val();
      if (v !== '4' && v !== '6') throw new CliError(`trace: --family expects 4 or 6, got '${v}'`);
      req.family = v === '4' ? 4 : 6;
    } else if (a === '--at') {
      const v = val();
      const t = durationOf(v);
      if (t === null) throw new CliError(`trace: --at expects a time such as 2s or 1500ms, got '${v}'`);
      req.atNs = t;
    } else if (a === '--seed') {
      req.seed = parseSeed(val(), 'trace');
    } else if (a === '-h' || a === '--help') {
      io.out(TRACE_USAGE);
      return 0;
    } else if (a.startsWith('-')) throw new CliError(`trace: unknown option '${a}' (try seine trace --help)`);
    else if (path === null) path = a;
    else throw new CliError(`trace: one scenario at a time (got '${path}' and '${a}')`);
  }
  if (path === null) throw new CliError('trace: which scenario? usage: seine trace <scenario.yaml> --from node1/a --to node2/b');
  if (req.from === undefined || req.to === undefined) throw new CliError('trace: give --from NODE[/POD] and --to NODE[/POD]');
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
