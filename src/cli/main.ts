#!/usr/bin/env node
/**
 * The `seine` command. Subcommands live in their own modules; this file parses arguments, maps errors
 * to exit statuses (0 ok, 1 the input was damaged or an expectation failed, 2 usage or input error)
 * and never lets a stack trace reach the user for a mistake of theirs.
 */
import { readFileSync } from 'node:fs';
import { CaptureError, LINKTYPE_ETHERNET, LINKTYPE_RAW, readCapture } from '../capture/index.js';
import { decodeFrame, summarize, type DecodedFrame } from './decode.js';
import { formatMtuTable, mtuTable } from './mtu.js';
import { CliError, runCommand, traceCommand } from './run.js';

const USAGE = `usage: seine <command> [options]

commands:
  run <scenario.yaml> [--json] [--pcap DIR] [--seed N] [--html FILE [--trace T.json]...]
      Simulate a scenario (a lab in scenarios/, no root, no network) and print per-flow delivery,
      latency, throughput and goodput, the wire overhead, drops by reason, and the scenario's
      expectations; exit status 1 when one fails. --pcap DIR writes one pcapng per capture point;
      --html FILE the run as one self-contained page (topology, flows, time series, traces).
  report <run.json> --html FILE [--trace T.json]...
      The HTML page of a run saved with seine run --json, with seine trace --json results drawn in it.
  trace <scenario.yaml> --from NODE[/POD] --to NODE[/POD] [--proto icmp|udp|tcp] [--size N] [--json]
      Send one packet through the simulated cluster and print every stage on every node it crosses
      (port in, MAC lookup, route, encapsulation, ESP, fragmentation, underlay, delivery or drop).
  decode <capture> [--json] [--limit N]
      Decode every frame of a pcap or pcapng file with seine's own wire modules, through tunnels
      (VXLAN, Geneve, GRE), one summary line per frame; with --json one JSON object per line whose
      fields carry Wireshark's display-filter names (ip.src, vxlan.vni, geneve.option.class, ...).
  mtu [--underlay N]... [--json]
      The overhead of VXLAN, Geneve, GRE and ESP over IPv4 and IPv6 underlays and the pod MTU each
      leaves (the largest inner IP packet that fits, at most 65000), for 1500- and 9000-byte underlays
      or the ones given.
  bench overhead [--json] [--out DIR] [--sizes LIST] [--pcap FILE] [--encap LIST] [--esp LIST]
      The encapsulation-overhead study: sizes × encapsulation × ESP × underlay, each cell computed and
      measured on the simulated datapath (they must agree), TCP goodput against MTU and loss; a table,
      JSON, and with --out DIR overhead.csv, overhead.json and SVG plots.

live (Linux, root; see the README's "Live" section):
  agent --config FILE
      Run a node agent: the node's bridge on TAPs and UDP tunnel sockets, a control socket, metrics.
  install-cni [--bin-dir DIR] [--conf-dir DIR] (--config FILE | --pod-cidr CIDR)
      Install the CNI plugin \`seine\` and 10-seine.conflist (host-local IPAM, portmap chained).
  k8s-config --template FILE --out FILE [--node-name NAME]
      Write this node's agent configuration from a DaemonSet's template and its Node (podCIDR, InternalIP).
  lab up <scenario.yaml> | lab down [LAB] | lab status [LAB] [--json] | lab exec NODE[/POD] -- CMD...
      Build a scenario on this machine in network namespaces (one agent per node), inspect it, run
      commands in a node or pod, and remove every namespace, link and process it made.
  trace --live --from NODE[/POD] --to NODE[/POD] [--lab LAB] [--proto icmp|udp] [--size N] [--json]
      One real packet through a running lab, every stage on every node (as seine trace simulates).
  capture NODE PORT -w FILE [--lab LAB] [--count N]
      Write a live pcapng of one port of a running agent (a pod's name, host or underlay).
  run --live <scenario.yaml> [--json] [--pcap DIR] [--without FEATURE,...] [--lab NAME]
      Run a scenario live instead of simulated: bring its lab up, send its traffic with real tools
      (ping, iperf3, kernel TCP) at the scenario's times, apply its faults, print the same report from
      the tools and the agents' counters, check the same expectations, take the lab down (always).
      Parts that cannot run live are listed as skipped with the reason; exit status as run.
  bench live [--json] [--out DIR] [--duration S] [--only seine,kernel,ovs] [--esp LIST|none]
      seine, the kernel (bridge + vxlan) and Open vSwitch userspace (netdev) in the same two-node lab,
      one after the other: iperf3 TCP and UDP, ping RTT, CPU per GB; a table with ratios, JSON, SVG.

options:
  -h, --help       this help
  -V, --version    print the version
`;

class UsageError extends Error {}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Writes to stdout; a closed pipe (`seine decode x | head`) ends the program quietly. */
function out(line: string): void {
  process.stdout.write(line + '\n');
}
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

async function decode(args: string[]): Promise<number> {
  let json = false;
  let limit = Infinity;
  let path: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '--limit') {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 1) throw new UsageError(`--limit expects a positive integer, got '${args[i] ?? ''}'`);
      limit = n;
    } else if (a === '-h' || a === '--help') {
      out(USAGE);
      return 0;
    } else if (a.startsWith('-')) throw new UsageError(`decode: unknown option '${a}'`);
    else if (path === null) path = a;
    else throw new UsageError(`decode: one capture file at a time (got '${path}' and '${a}')`);
  }
  if (path === null) throw new UsageError('decode: which capture? usage: seine decode <capture> [--json]');
  const file = readCapture(path);
  let n = 0;
  try {
    for await (const rec of file) {
      n++;
      const iface = file.interfaces[rec.ifIndex]?.name ?? null;
      let f: DecodedFrame;
      if (rec.linkType === LINKTYPE_ETHERNET || rec.linkType === LINKTYPE_RAW) {
        f = decodeFrame(n, rec.timestampNs, iface === '' ? null : iface, rec.data, rec.origLen, rec.linkType === LINKTYPE_RAW ? 'raw' : 'eth');
      } else {
        f = {
          frame: n,
          timestampNs: rec.timestampNs.toString(),
          interface: iface,
          len: rec.data.length,
          origLen: rec.origLen,
          layers: [],
          drop: { reason: `UnsupportedLinkType(${rec.linkType})`, offset: 0 },
        };
      }
      out(json ? JSON.stringify(f) : summarize(f));
      if (n >= limit) break;
    }
  } catch (e: unknown) {
    if (e instanceof CaptureError) {
      process.stderr.write(`seine decode: ${path}: damaged capture after ${n} frame(s): ${e.message}\n`);
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string' && typeof err.syscall === 'string') {
      process.stderr.write(
        `seine decode: cannot read '${path}': ${err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message}\n`,
      );
      return 2;
    }
    throw e;
  }
  return 0;
}

function mtu(args: string[]): number {
  let json = false;
  const underlays: number[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json') json = true;
    else if (a === '--underlay') {
      const n = Number(args[++i]);
      if (!Number.isInteger(n) || n < 576 || n > 65535) throw new UsageError(`mtu: --underlay expects an MTU in 576-65535, got '${args[i] ?? ''}'`);
      underlays.push(n);
    } else if (a === '-h' || a === '--help') {
      out(USAGE);
      return 0;
    } else throw new UsageError(`mtu: unknown argument '${a}'`);
  }
  if (underlays.length === 0) underlays.push(1500, 9000);
  if (json) out(JSON.stringify({ underlays, rows: mtuTable(underlays) }));
  else out(formatMtuTable(underlays));
  return 0;
}

const io = {
  out,
  err: (text: string): void => {
    process.stderr.write(text);
  },
  tty: process.stderr.isTTY === true,
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      out(USAGE);
      return cmd === undefined ? 2 : 0;
    case '-V':
    case '--version':
      out(version());
      return 0;
    case 'decode':
      return decode(rest);
    case 'mtu':
      return mtu(rest);
    case 'run':
      return runCommand(rest, io);
    case 'report':
      return (await import('./report.js')).reportCommand(rest, io);
    case 'trace':
      if (rest.includes('--live')) return (await import('./trace-live.js')).traceLiveCommand(rest, io);
      return traceCommand(rest, io);
    case 'agent':
      return (await import('./agent.js')).agentCommand(rest);
    case 'install-cni':
      return (await import('./installcni.js')).installCniCommand(rest);
    case 'k8s-config':
      return (await import('./k8sconfig.js')).k8sConfigCommand(rest);
    case 'lab':
      return (await import('./lab.js')).labCommand(rest, io);
    case 'capture':
      return (await import('./lab.js')).captureCommand(rest, io);
    case 'bench':
      if (rest[0] === 'overhead') return (await import('./overhead.js')).overheadCommand(rest.slice(1), io);
      return (await import('./benchlive.js')).benchCommand(rest, io);
    default:
      throw new UsageError(`unknown command '${cmd}' (try seine --help)`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError || e instanceof CliError) {
      process.stderr.write(`seine: ${e.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`seine: internal error (please report): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exitCode = 70;
    }
  },
);
