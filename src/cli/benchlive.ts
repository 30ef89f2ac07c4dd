/**
 * `seine bench live`: seine, the Linux kernel (bridge + vxlan) and Open vSwitch's userspace datapath
 * measured side by side on this machine, each in the same two-node lab (live/bench/labs.ts), one lab
 * after the other, with the same tools (live/bench/measure.ts); the table, the JSON and the SVG charts
 * come from live/bench/results.ts.
 *
 * Labs are named `b<tag>-<setup>` with a random tag, so a run never meets another run's or a user's
 * labs; each is taken down after its measurements, when it fails, and on Ctrl-C or SIGTERM.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchScenario, CLIENT_POD, kernelNode, ovsMissing, ovsNode, SERVER_POD, warmUnderlay, which } from '../live/bench/labs.js';
import { measure, startIperfServer, verifyPing, type BenchTarget } from '../live/bench/measure.js';
import {
  checkTargets,
  DATAPATHS,
  ESP_SETUPS,
  formatBenchTable,
  METRICS,
  ratiosOf,
  setupName,
  svgChart,
  type BenchReport,
  type BenchResult,
  type Datapath,
  type EspSetup,
  type Skipped,
} from '../live/bench/results.js';
import { labUp, LabUpError, netnsInode, planLab, processesInNetns, type LabHandle, type LabPlan } from '../live/lab/index.js';
import { nativeUnavailable } from '../live/native.js';
import { nodeConfigsFromScenario, type NodeConfig } from '../node/config.js';
import { bringUp, controlPath } from './lab.js';
import { makeDir } from './files.js';
import { type Args, CliError, type Command, helpHint, type RunIo } from './command.js';

export const BENCH_LIVE: Command = {
  name: 'bench live',
  operands: '',
  live: true,
  summary:
    'seine, the kernel (bridge + vxlan) and Open vSwitch userspace (netdev) in the same two-node lab, one after the other: iperf3 TCP and UDP, ping RTT, CPU per GB; a table with ratios, JSON, SVG.',
  about: `Measures seine, the Linux kernel (bridge + vxlan, Flannel's layout) and Open vSwitch's userspace
datapath (two ovs-vswitchd with datapath_type=netdev, native tunnelling on br-phy) on this machine
(Linux, root), each in the same lab: two node namespaces on a 1500-byte veth underlay, one pod per
node, routed podCIDRs over VXLAN (pod MTU 1450); seine also with ESP (AES-GCM-128 and
ChaCha20-Poly1305). The labs are built one after the other, each checked with a ping first, and
always taken down. Measured per lab, each --runs times: iperf3 TCP pod to pod with 1 and 4 streams
(Gbit/s), UDP with 64- and 1400-byte payloads at full offered rate from seine's sendmmsg generator
(packets per second delivered, counted by its recvmmsg sink), ping RTT (--pings echoes 50 ms apart), and CPU seconds
per GB moved during the 1-stream TCP runs (seine: the agents' utime+stime; OVS: ovs-vswitchd's;
kernel: the machine's system+irq+softirq time; plus the whole machine's busy time for all three).
Prints a table of medians with min-max and the ratios to OVS-netdev and to the kernel (--json:
one JSON object instead), and writes results.json and one SVG bar chart per figure into --out
(default ./bench-live). OVS runs only where openvswitch-switch is installed; otherwise it is
listed as skipped. Progress goes to stderr.`,
  options: {
    json: { type: 'boolean', help: 'the results as one JSON object instead of the table' },
    out: { type: 'string', arg: 'DIR', help: 'where results.json and the SVG charts go (default ./bench-live; made before the labs)' },
    duration: { type: 'string', arg: 'S', help: 'seconds per TCP or UDP measurement (default 10)' },
    runs: { type: 'string', arg: 'N', help: 'runs of each measurement (default 3; 2 when --duration is under 5)' },
    pings: { type: 'string', arg: 'N', help: 'echoes for the RTT (default 20)' },
    only: { type: 'string', arg: 'LIST', help: 'datapaths to measure (default seine,kernel,ovs)' },
    esp: { type: 'string', arg: 'LIST', help: "seine's ESP setups besides plaintext (default aes-gcm-128,chacha20-poly1305; none: none)" },
    tag: { type: 'string', arg: 'TAG', help: 'name the labs b<TAG>-seine, b<TAG>-kernel, ... (1-8 lowercase letters or digits; default random)' },
    'check-targets': {
      type: 'boolean',
      help: "exit 1 when a target of seine's measured in the run is missed: TCP 1 stream >= 2x OVS-netdev, with AES-GCM >= 1x OVS-netdev's plaintext, ping RTT <= OVS-netdev's, UDP 64-byte delivered >= 2x OVS-netdev (the stretch goal, TCP >= 0.3x the kernel, never fails a run; all are printed either way)",
    },
    'no-progress': { type: 'boolean', help: 'no progress lines on stderr' },
  },
  footer: `exit status: 0 every lab measured, 1 a lab failed (the others are still measured and reported) or,
with --check-targets, a target was missed; 2 a usage error or not root; 130 interrupted.`,
  run: (a, io) => benchCommand(a, io),
};

/** The project's root: this file runs as dist/src/cli/benchlive.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

interface Setup {
  datapath: Datapath;
  esp: EspSetup;
}

const SHORT: Record<string, string> = { seine: 'seine', kernel: 'kernel', 'ovs-netdev': 'ovs', none: '', 'aes-gcm-128': 'aes', 'chacha20-poly1305': 'chacha' };

function labNameOf(tag: string, s: Setup): string {
  return `b${tag}-${SHORT[s.datapath]}${s.esp === 'none' ? '' : `-${SHORT[s.esp]}`}`;
}

function parseList<T extends string>(v: string, known: readonly T[], alias: Record<string, T>, opt: string): T[] {
  const out: T[] = [];
  for (const x of v
    .split(',')
    .map((y) => y.trim())
    .filter((y) => y !== '')) {
    const k = (alias[x] ?? x) as T;
    if (!known.includes(k))
      throw new CliError(`bench live: ${opt}: unknown "${x}" (known: ${[...Object.keys(alias), ...known].filter((y, i, a) => a.indexOf(y) === i).join(', ')})`);
    if (!out.includes(k)) out.push(k);
  }
  return out;
}

function positive(v: unknown, opt: string, integer: boolean): number | null {
  if (v === undefined) return null;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)))
    throw new CliError(`bench live: ${opt} expects a positive ${integer ? 'integer' : 'number'}, got '${String(v)}'`);
  return n;
}

function gitCommit(): string | null {
  const r = spawnSync('git', ['-C', ROOT, 'describe', '--always', '--dirty', '--abbrev=10'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function clkTck(): number {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout);
  return r.status === 0 && n > 0 ? n : 100;
}

/** Builds one setup's lab and says which pods and processes the measurements use. */
async function buildLab(s: Setup, name: string, notes: string[]): Promise<{ lab: LabHandle; target: BenchTarget }> {
  const scenario = benchScenario(s.esp);
  let lab: LabHandle, plan: LabPlan;
  if (s.datapath === 'seine') {
    ({ lab, plan } = await bringUp(scenario, [], 'bench live', { name }));
  } else {
    plan = planLab(scenario, { name });
    // The same node model seine's agents get: MACs and gateway addresses are the same in every lab.
    const configs: NodeConfig[] = nodeConfigsFromScenario(scenario, { stacks: 'all' });
    lab =
      s.datapath === 'kernel'
        ? await labUp(plan, { onNode: (n) => kernelNode(plan, configs, n) })
        : await labUp(plan, { onNode: (n, _ns, h) => ovsNode(plan, configs, n, h, notes) });
    if (s.datapath === 'ovs-netdev') {
      try {
        await warmUnderlay(plan);
      } catch (e) {
        await lab.down({ graceMs: 1000 }).catch(() => undefined);
        throw e;
      }
    }
  }
  const client = plan.nodes[0]!.pods.find((p) => p.name === CLIENT_POD)!;
  const server = plan.nodes[1]!.pods.find((p) => p.name === SERVER_POD)!;
  return {
    lab,
    target: {
      lab,
      datapath: s.datapath,
      esp: s.esp,
      client: { ns: client.ns },
      server: { ns: server.ns, ip: server.ip4!, node: server.node },
      podMtu: client.mtu,
      cpu: s.datapath === 'seine' ? { roles: ['agent'] } : s.datapath === 'ovs-netdev' ? { roles: ['ovs-vswitchd'] } : 'kernel',
      ...(s.datapath === 'seine' ? { controls: plan.nodes.map((n) => controlPath(lab, n.name)) } : {}),
    },
  };
}

/** `bench live`'s options, checked. */
interface BenchSettings {
  durationS: number;
  runs: number;
  pings: number;
  only: Datapath[];
  esps: EspSetup[];
  outDir: string;
  progress: boolean;
  tag: string;
  json: boolean;
  checkTargets: boolean;
}

function benchSettings(a: Args): BenchSettings {
  if (a.operands.length > 0) throw new CliError(`bench live: no operands (got '${a.operands[0]}'; ${helpHint('bench live')})`);
  const v: Record<string, unknown> = {};
  for (const k of Object.keys(BENCH_LIVE.options)) if (a.has(k)) v[k] = BENCH_LIVE.options[k]!.type === 'boolean' ? true : a.str(k);
  const durationS = positive(v['duration'], '--duration', false) ?? 10;
  const runs = positive(v['runs'], '--runs', true) ?? (durationS < 5 ? 2 : 3);
  const pings = positive(v['pings'], '--pings', true) ?? 20;
  const only = v['only'] === undefined ? [...DATAPATHS] : parseList(String(v['only']), DATAPATHS, { ovs: 'ovs-netdev' }, '--only');
  const ciphers = ESP_SETUPS.filter((e) => e !== 'none');
  const esps =
    v['esp'] === undefined
      ? ciphers
      : v['esp'] === 'none'
        ? []
        : parseList(String(v['esp']), ciphers, { aes: 'aes-gcm-128', chacha: 'chacha20-poly1305' }, '--esp');
  const outDir = resolve(typeof v['out'] === 'string' ? v['out'] : 'bench-live');
  const tag = typeof v['tag'] === 'string' ? v['tag'] : randomBytes(3).toString('hex');
  if (!/^[a-z0-9]{1,8}$/.test(tag)) throw new CliError(`bench live: --tag expects 1-8 lowercase letters or digits, got '${tag}'`);
  return {
    durationS,
    runs,
    pings,
    only,
    esps,
    outDir,
    progress: v['no-progress'] !== true,
    tag,
    json: v['json'] === true,
    checkTargets: v['check-targets'] === true,
  };
}

/** Refuses (status 2) a machine the labs cannot be built on, or an output directory that cannot be written. */
function checkMachine(o: BenchSettings): void {
  if (process.platform !== 'linux') throw new CliError(`bench live: needs Linux (network namespaces); this is ${process.platform}`);
  if (process.getuid?.() !== 0)
    throw new CliError('bench live: needs root (it builds network namespaces, TAPs and veths, and starts agents and Open vSwitch in them)');
  for (const tool of ['ip', 'iperf3', 'ping', 'ss'])
    if (which(tool) === null)
      throw new CliError(
        `bench live: ${tool} is not installed (apt-get install ${tool === 'ping' ? 'iputils-ping' : tool === 'iperf3' ? 'iperf3' : 'iproute2'})`,
      );
  if (o.only.includes('seine')) {
    const why = nativeUnavailable();
    if (why !== null) throw new CliError(`bench live: seine's agents need the native addon: ${why}`);
  }
  const why = makeDir(o.outDir);
  if (why !== null) throw new CliError(`bench live: cannot write into '${o.outDir}': ${why}`);
}

/** The labs to build, one after the other: each datapath plain, seine with each cipher too; ovs-netdev skipped when missing. */
function setupsOf(o: BenchSettings, skipped: Skipped[], say: (line: string) => void): Setup[] {
  const setups: Setup[] = [];
  for (const d of o.only) {
    if (d === 'ovs-netdev') {
      const why = ovsMissing();
      if (why !== null) {
        skipped.push({ datapath: d, why });
        say(`ovs-netdev skipped: ${why}`);
        continue;
      }
    }
    setups.push({ datapath: d, esp: 'none' });
    if (d === 'seine') for (const e of o.esps) setups.push({ datapath: d, esp: e });
  }
  return setups;
}

async function benchCommand(a: Args, io: RunIo): Promise<number> {
  const o = benchSettings(a);
  const { durationS, runs, pings, outDir, tag } = o;
  const say = (line: string): void => {
    if (o.progress) io.err(`${line}\n`);
  };
  checkMachine(o);
  const skipped: Skipped[] = [];
  const setups = setupsOf(o, skipped, say);

  const tck = clkTck();
  say(`seine bench live: ${setups.length} lab(s) one after the other (tag ${tag}), ${durationS} s per measurement, ${runs} run(s); output in ${outDir}`);

  // Ctrl-C or SIGTERM: stop what runs in the current lab's namespaces (the tools fail, the loop ends), take it down.
  let interrupted: NodeJS.Signals | null = null;
  let current: LabHandle | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted === null) io.err(`\nbench live: ${sig}: stopping and taking the lab down...\n`);
    interrupted = sig;
    const lab = current;
    if (lab === null) return;
    let names: string[] = [];
    try {
      names = lab.state().namespaces.map((n) => n.name);
    } catch {
      /* gone */
    }
    const inodes = new Set(names.map(netnsInode).filter((x): x is number => x !== null));
    for (const p of processesInNetns(inodes)) {
      try {
        process.kill(p.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);

  const results: BenchResult[] = [];
  const failed: Skipped[] = [];
  const notes: string[] = [];
  try {
    for (const [i, s] of setups.entries()) {
      if (interrupted !== null) break;
      const name = labNameOf(tag, s);
      say(`[${i + 1}/${setups.length}] ${setupName(s)}: building lab ${name}`);
      let lab: LabHandle | null = null;
      try {
        const built = await buildLab(s, name, notes);
        lab = current = built.lab;
        if (interrupted !== null) break; // signalled while the lab was being built
        await startIperfServer(built.target);
        await verifyPing(built.target, `${name} (${setupName(s)})`);
        results.push(await measure(built.target, { durationS, runs, pings, say, clkTck: tck }));
      } catch (e) {
        if (interrupted !== null) break;
        const why = e instanceof LabUpError || e instanceof CliError ? e.message : (e as Error).message;
        failed.push({ datapath: s.datapath, esp: s.esp, why });
        io.err(`bench live: lab ${name} (${setupName(s)}) failed: ${why}\n`);
      } finally {
        if (lab !== null) {
          say(`  taking lab ${name} down`);
          try {
            await lab.down({ graceMs: 1000 });
          } catch (e) {
            failed.push({ datapath: s.datapath, esp: s.esp, why: `not taken down entirely: ${(e as Error).message} (try: seine lab down ${name})` });
            io.err(`bench live: lab ${name} was not taken down entirely: ${(e as Error).message}\n`);
          }
        }
        current = null;
      }
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
  if (interrupted !== null) {
    io.err(`bench live: interrupted (${interrupted}); every lab taken down\n`);
    return 130;
  }

  const report: BenchReport & { failed: Skipped[]; notes: string[]; lab_tag: string } = {
    results,
    ratios: ratiosOf(results),
    targets: checkTargets(results),
    machine: { cores: cpus().length, kernel: release(), node: process.version, cpu: cpus()[0]?.model.trim() ?? 'unknown' },
    settings: { duration_s: durationS, runs, pings, commit: gitCommit() },
    skipped,
    failed,
    notes,
    lab_tag: tag,
  };
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(report, null, 1) + '\n');
  if (results.length > 0) for (const m of METRICS) writeFileSync(join(outDir, `${m}.svg`), svgChart(m, results));
  say(`wrote ${join(outDir, 'results.json')}${results.length > 0 ? ` and ${METRICS.length} charts (${METRICS.map((m) => `${m}.svg`).join(', ')})` : ''}`);
  if (o.json) io.out(JSON.stringify(report));
  else {
    io.out(formatBenchTable(report));
    for (const f of failed) io.out(`\nfailed: ${f.esp !== undefined && f.esp !== 'none' ? `${f.datapath}+${f.esp}` : f.datapath}: ${f.why}`);
  }
  const missed = report.targets.filter((t) => t.ok === false && !t.stretch);
  if (o.checkTargets && missed.length > 0) {
    io.err(`bench live: ${missed.length} target(s) missed: ${missed.map((t) => t.what).join('; ')}\n`);
    return 1;
  }
  return failed.length > 0 ? 1 : 0;
}
