/**
 * `seine lab up|down|status|exec` and `seine capture`: a scenario built live on this machine — network
 * namespaces for the underlay, the nodes and the pods (live/lab/), one `seine agent` per node running
 * inside its node's namespace with the node's config from node/ — and what inspects and removes it.
 */
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { controlRequest, controlStream } from '../live/control.js';
import { nativeUnavailable } from '../live/native.js';
import { sleep } from '../live/sleep.js';
import {
  checkLabFeasible,
  formatRefusals,
  labDown,
  labStatus,
  labUp,
  LabRefusedError,
  LabUpError,
  LAB_FEATURES,
  planLab,
  spawnInNetns,
  summarize,
  type LabFeature,
  type LabHandle,
  type LabNodePlan,
  type LabPlan,
  type LabStatus,
} from '../live/lab/index.js';
import { nodeConfigsFromScenario, type NodeConfig } from '../node/config.js';
import { loadScenario, ScenarioError, type Scenario } from '../scenario/scenario.js';
import { type Args, CliError, type Command, type RunIo } from './command.js';

export const LAB_UP: Command = {
  name: 'lab up',
  operands: '<scenario.yaml>',
  live: true,
  summary: 'Build a scenario on this machine in network namespaces (one agent per node); seine lab status, exec and down inspect, use and remove it.',
  about: `Builds the scenario on this machine (Linux, root): a namespace for the underlay (a bridge), one per
node (eth0 on the underlay; a seine agent; seine-gw0, the node's own stack) and one per pod (a TAP
eth0 owned by its node's agent, with the pod's address, MTU and default route). The underlay's
latency, jitter, loss and bandwidth become tc qdiscs where the kernel has them; --without leaves
features out. A scenario that cannot go live is refused before anything is made, with the reason; a
half-built lab is always removed. The lab's name is printed (a slug of the scenario's name); state is
kept under /run/seine/labs (SEINE_LABS_DIR overrides).`,
  options: {
    without: {
      type: 'string',
      arg: 'F,...',
      help: `leave these features out (${LAB_FEATURES.join(', ')}); default: the scenario's live.without; none: nothing`,
    },
    json: { type: 'boolean', help: "the lab's status as one JSON object" },
  },
  run: (a, io) => upCommand(a, io),
};

export const LAB_DOWN: Command = {
  name: 'lab down',
  operands: '[LAB]',
  live: true,
  summary: 'Remove every namespace, link and process a lab made (also after a crash or kill -9); LAB may be left out when only one lab is up.',
  options: { json: { type: 'boolean', help: 'what was removed, as one JSON object' } },
  run: (a, io) => downCommand(a, io),
};

export const LAB_STATUS: Command = {
  name: 'lab status',
  operands: '[LAB]',
  live: true,
  summary: 'The labs on this machine (or LAB): namespaces, links, processes, node addresses.',
  options: { json: { type: 'boolean', help: 'as JSON' } },
  run: (a, io) => statusCommand(a, io),
};

export const LAB_EXEC: Command = {
  name: 'lab exec',
  operands: 'NODE[/POD]',
  live: true,
  passthrough: true,
  summary: "Run a command inside a node's or a pod's namespace of a running lab (exit status: the command's).",
  options: { lab: { type: 'string', arg: 'LAB', help: 'the lab (default: the only one up)' } },
  run: (a, io) => execCommand(a, io),
};

export const CAPTURE: Command = {
  name: 'capture',
  operands: 'NODE PORT',
  live: true,
  summary: "Write a live pcapng of one port of a running agent (a pod's name, host or underlay).",
  about: `Writes a live pcapng of one bridge port of a running agent (both directions; the interface is named
NODE/PORT): a pod's name, host (the node's own stack) or underlay (the tunnel's outer packets). Stops
after N packets, after the duration, or on Ctrl-C.`,
  options: {
    write: { type: 'string', short: 'w', arg: 'FILE', required: true, help: 'the pcapng file to write; - writes to stdout' },
    lab: { type: 'string', arg: 'LAB', help: 'the lab (default: the only one up)' },
    count: { type: 'string', arg: 'N', help: 'stop after N packets' },
    duration: { type: 'string', arg: 'SECONDS', help: 'stop after this many seconds' },
  },
  run: (a, io) => captureCommand(a, io),
};

const MAIN_JS = fileURLToPath(new URL('./main.js', import.meta.url));
const AGENT_READY_MS = 15_000;

/** Refuses (status 2) a machine where no lab can run: not Linux, not root, no native addon. */
export function requireLive(cmd: string): void {
  if (process.platform !== 'linux')
    throw new CliError(
      `${cmd}: live labs need Linux (network namespaces, TAP devices); this is ${process.platform}. The simulator (seine run) works everywhere.`,
    );
  if (process.getuid?.() !== 0) throw new CliError(`${cmd}: live labs need root (namespaces, TAP devices, raw sockets)`);
  const why = nativeUnavailable();
  if (why !== null) throw new CliError(`${cmd}: ${why}`);
}

/** The lab named, or the only one up. */
export async function pickLab(name: string | undefined, cmd: string): Promise<LabStatus> {
  if (name !== undefined) {
    const s = await labStatus(name);
    if (s === null) throw new CliError(`${cmd}: no lab "${name}" (seine lab status lists them)`);
    return s;
  }
  const all = await labStatus();
  if (all.length === 0) throw new CliError(`${cmd}: no lab is up (seine lab up <scenario.yaml>)`);
  if (all.length > 1) throw new CliError(`${cmd}: ${all.length} labs are up (${all.map((l) => l.lab).join(', ')}): name one with --lab`);
  return all[0]!;
}

/** The agent's configuration file for one node of a lab. */
function agentConfigFor(plan: LabPlan, node: LabNodePlan, cfg: NodeConfig, dir: string): Record<string, unknown> {
  const pods: Record<string, { netns: string; ifname: string }> = {};
  cfg.pods.forEach((p, j) => {
    const pp = node.pods[j]!;
    pods[p.name] = { netns: pp.ns, ifname: pp.ifname };
  });
  return {
    node: cfg,
    netns: null,
    hostTap: 'seine-gw0',
    pods,
    control: join(dir, `${node.name}.sock`),
    metrics: '127.0.0.1:9464',
    underlayMtu: plan.underlay.mtu,
    ...(cfg.esp !== null ? { espJournal: join(dir, `${node.name}.journal`) } : {}),
  };
}

export function controlPath(lab: LabStatus | LabHandle, node: string): string {
  return join(lab.dir, `${node}.sock`);
}

/** Starts a node's agent inside its namespace and waits until its control socket answers. */
async function startAgent(plan: LabPlan, node: LabNodePlan, cfg: NodeConfig, lab: LabHandle): Promise<void> {
  const file = join(lab.dir, `${node.name}.yaml`);
  writeFileSync(file, `# written by seine lab up for lab ${plan.lab}\n${stringify(agentConfigFor(plan, node, cfg, lab.dir))}`);
  const { child, record } = lab.spawn(node.ns, [process.execPath, MAIN_JS, 'agent', '--config', file], { role: 'agent', node: node.name });
  child.unref();
  let exited: number | null = null;
  child.once('exit', (code) => {
    exited = code ?? -1;
  });
  const sock = join(lab.dir, `${node.name}.sock`);
  const until = Date.now() + AGENT_READY_MS;
  for (;;) {
    if (exited !== null) throw new Error(`the agent of ${node.name} exited with status ${exited} (log: ${record.log ?? 'none'})`);
    try {
      await controlRequest(sock, { op: 'status' }, 1000);
      return;
    } catch {
      if (Date.now() > until)
        throw new Error(`the agent of ${node.name} did not answer on ${sock} within ${AGENT_READY_MS / 1000} s (log: ${record.log ?? 'none'})`);
      await sleep(100);
    }
  }
}

/**
 * Brings a scenario up; returns the lab's handle and plan (used by `run --live` too). `name` overrides
 * the lab's name (default: a slug of the scenario's name).
 */
export async function bringUp(
  s: Scenario,
  without: readonly LabFeature[],
  cmd: string,
  opts: { name?: string } = {},
): Promise<{ lab: LabHandle; plan: LabPlan; configs: NodeConfig[] }> {
  const named = opts.name !== undefined ? { name: opts.name } : {};
  const refusals = checkLabFeasible(s, { without, ...named });
  if (refusals.length > 0) throw new CliError(`${cmd}: ${s.name} cannot go live here:\n${formatRefusals(refusals)}`);
  const plan = planLab(s, { without, ...named });
  const configs = nodeConfigsFromScenario(s, { stacks: s.tunnel.mode === 'routed' ? 'all' : [] });
  let lab: LabHandle;
  try {
    lab = await labUp(plan, { onNode: (node, _ns, handle) => startAgent(plan, node, configs[node.index]!, handle) });
  } catch (e) {
    // Refused (a lab of that name is up), or failed and taken down again: the user's to act on, not a crash.
    if (e instanceof LabRefusedError || e instanceof LabUpError) throw new CliError(`${cmd}: ${e.message}`);
    if (e instanceof Error && /is already up/.test(e.message)) throw new CliError(`${cmd}: ${e.message}`);
    throw e;
  }
  return { lab, plan, configs };
}

function loadForLab(path: string, cmd: string): Scenario {
  try {
    return loadScenario(path);
  } catch (e) {
    if (e instanceof ScenarioError) throw new CliError(`${cmd}: ${e.message}`);
    throw e;
  }
}

/** A `--without` list (`latency,loss`); `''` or `none` leave nothing out. */
export function parseWithout(v: unknown, cmd: string): LabFeature[] {
  if (v === undefined || v === 'none') return [];
  const out: LabFeature[] = [];
  for (const f of String(v)
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')) {
    if (!(LAB_FEATURES as readonly string[]).includes(f)) throw new CliError(`${cmd}: --without: unknown feature "${f}" (known: ${LAB_FEATURES.join(', ')})`);
    out.push(f as LabFeature);
  }
  return out;
}

function oneLab(a: Args): string | undefined {
  if (a.operands.length > 1) throw new CliError(`${a.cmd}: one lab at a time (got '${a.operands[0]}' and '${a.operands[1]}')`);
  return a.operands[0];
}

async function upCommand(a: Args, io: RunIo): Promise<number> {
  if (a.operands.length !== 1) throw new CliError('lab up: which scenario? usage: seine lab up <scenario.yaml>');
  requireLive('lab up');
  const s = loadForLab(a.operands[0]!, 'lab up');
  // --without defaults to what the scenario says (`live.without`).
  const without = a.has('without') ? parseWithout(a.str('without'), 'lab up') : [...(s.live?.without ?? [])];
  const { lab, plan } = await bringUp(s, without, 'lab up');
  const st = await labStatus(lab.lab);
  if (a.has('json')) io.out(JSON.stringify(st));
  else {
    io.out(`lab ${plan.lab} is up (${plan.nodes.length} nodes, ${plan.nodes.reduce((k, n) => k + n.pods.length, 0)} pods)`);
    for (const n of plan.nodes) {
      io.out(`  ${n.name}  netns ${n.ns}  underlay ${n.address}${n.gateway4 !== null ? `  gateway ${n.gateway4}` : ''}`);
      for (const p of n.pods) io.out(`    ${n.name}/${p.name}  netns ${p.ns}  ${[p.ip4, p.ip6].filter((x) => x !== null).join(' ')}  mtu ${p.mtu}`);
    }
    for (const o of plan.omitted) io.out(`  left out: ${o.part} (${o.what})`);
    io.out(
      `try: seine lab exec ${plan.nodes[0]!.name}/${plan.nodes[0]!.pods[0]?.name ?? ''} -- ping -c 3 ${plan.nodes.at(-1)!.pods.at(-1)?.ip4 ?? plan.nodes.at(-1)!.underlayIp}`,
    );
    io.out(`then: seine lab down ${plan.lab}`);
  }
  return 0;
}

async function downCommand(a: Args, io: RunIo): Promise<number> {
  const name = oneLab(a) ?? (await pickLab(undefined, 'lab down')).lab;
  const r = await labDown(name);
  io.out(a.has('json') ? JSON.stringify(r) : `lab ${name}: ${summarize(r)}`);
  return 0;
}

async function statusCommand(a: Args, io: RunIo): Promise<number> {
  const one = oneLab(a);
  const all = one !== undefined ? [await pickLab(one, 'lab status')] : await labStatus();
  if (a.has('json')) {
    io.out(JSON.stringify(one !== undefined ? all[0] : all));
    return 0;
  }
  if (all.length === 0) io.out('no lab is up');
  for (const l of all) {
    const alive = l.processes.filter((p) => p.alive).length;
    io.out(
      `lab ${l.lab} (${l.scenario})  ${l.phase}  since ${l.createdAt}  ${l.namespaces.filter((n) => n.present).length}/${l.namespaces.length} namespaces, ${alive}/${l.processes.length} processes alive`,
    );
    for (const n of l.nodes) io.out(`  ${n.name}  ${n.ns}  ${n.addresses.join(' ')}`);
  }
  return 0;
}

async function execCommand(a: Args, _io: RunIo): Promise<number> {
  if (a.operands.length !== 1 || a.rest.length === 0) throw new CliError('lab exec: usage: seine lab exec NODE[/POD] [--lab LAB] -- CMD [ARG...]');
  const l = await pickLab(a.str('lab'), 'lab exec');
  const ns = namespaceOf(l, a.operands[0]!);
  const child = spawnInNetns(ns, a.rest, { stdio: 'inherit' });
  return await new Promise<number>((res) => {
    child.once('error', () => res(127));
    child.once('exit', (code, sig) => res(code ?? (sig !== null ? 128 : 1)));
  });
}

/** The namespace of NODE or NODE/POD in a lab. */
export function namespaceOf(l: LabStatus, where: string): string {
  const [node, pod, ...more] = where.split('/');
  const n = l.nodes.find((x) => x.name === node);
  if (n === undefined || more.length > 0 || pod === '')
    throw new CliError(`lab ${l.lab}: no node "${where}" (nodes: ${l.nodes.map((x) => x.name).join(', ')}; a pod is NODE/POD)`);
  if (pod === undefined) return n.ns;
  const ns = `${n.ns}-${pod}`;
  if (!l.namespaces.some((x) => x.name === ns)) throw new CliError(`lab ${l.lab}: no pod "${where}"`);
  return ns;
}

async function captureCommand(a: Args, io: RunIo): Promise<number> {
  const v: Record<string, string | undefined> = { count: a.str('count'), duration: a.str('duration'), lab: a.str('lab') };
  const positionals = a.operands;
  const file = a.req('write');
  if (positionals.length !== 2) throw new CliError('capture: usage: seine capture NODE PORT -w FILE [--lab LAB] [--count N] [--duration SECONDS]');
  const count = v['count'] === undefined ? Infinity : Number(v['count']);
  if (!(count > 0) || (count !== Infinity && !Number.isInteger(count)))
    throw new CliError(`capture: --count expects a positive integer, got "${String(v['count'])}"`);
  const duration = v['duration'] === undefined ? Infinity : Number(v['duration']);
  if (!(duration > 0)) throw new CliError(`capture: --duration expects seconds > 0, got "${String(v['duration'])}"`);
  const l = await pickLab(v['lab'] as string | undefined, 'capture');
  const [node, port] = positionals as [string, string];
  if (!l.nodes.some((n) => n.name === node)) throw new CliError(`capture: lab ${l.lab} has no node "${node}"`);
  const out = file === '-' ? process.stdout : createWriteStream(file);
  const tap = await tapCapture(controlPath(l, node), port, { out, count }).catch((e: Error) => {
    throw new CliError(`capture: ${e.message}`);
  });
  const onInt = (): void => {
    void tap.stop();
  };
  process.once('SIGINT', onInt);
  if (duration !== Infinity) setTimeout(onInt, duration * 1000).unref();
  await tap.done;
  process.off('SIGINT', onInt);
  io.err(`capture: ${tap.packets} packets written to ${file === '-' ? 'stdout' : file}\n`);
  return 0;
}

/** A live capture of one agent port (`seine capture`, `seine run --live --pcap`). */
export interface CaptureTap {
  /** Packets (Enhanced Packet Blocks) seen so far. */
  readonly packets: number;
  /** Ends the capture (the agent's stream is closed); resolves once `out` has taken every block. */
  stop(): Promise<void>;
  /** Resolves when the capture ended: `stop()`, `count` reached, or the agent closed the stream. */
  readonly done: Promise<void>;
}

/**
 * Opens a capture of `port` on the agent at `sock` (the control socket's `capture` op) and passes its
 * pcapng on whole block by whole block: written to `out` (not ended when it is stdout) and given to
 * `onBlock`. Stops after `count` packets, on `stop()`, or when the agent closes the stream.
 */
export async function tapCapture(
  sock: string,
  port: string,
  opts: { out?: NodeJS.WritableStream; onBlock?: (block: Buffer) => void; count?: number } = {},
): Promise<CaptureTap> {
  const { socket, rest } = await controlStream(sock, { op: 'capture', port });
  const out = opts.out;
  const count = opts.count ?? Infinity;
  let packets = 0;
  let pending: Buffer = Buffer.alloc(0);
  let stopped = false;
  let finish: () => void = () => {};
  const done = new Promise<void>((res) => {
    finish = res;
  });
  const stop = (): Promise<void> => {
    if (!stopped) {
      stopped = true;
      socket.destroy();
      if (out === undefined || out === process.stdout) finish();
      else out.end(finish);
    }
    return done;
  };
  // Counts Enhanced Packet Blocks (type 6) as whole blocks go by; passes whole blocks only.
  const feed = (d: Buffer): void => {
    pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
    let at = 0;
    while (pending.length - at >= 8 && !stopped) {
      const len = pending.readUInt32LE(at + 4);
      if (len < 12 || pending.length - at < len) break;
      const block = pending.subarray(at, at + len);
      out?.write(block);
      opts.onBlock?.(block);
      at += len;
      if (block.readUInt32LE(0) === 6 && ++packets >= count) {
        void stop();
        break;
      }
    }
    pending = pending.subarray(at);
  };
  if (rest.length > 0) feed(rest);
  socket.on('data', feed);
  socket.once('close', () => {
    void stop();
  });
  socket.on('error', () => {});
  socket.resume();
  return {
    get packets() {
      return packets;
    },
    stop,
    done,
  };
}
