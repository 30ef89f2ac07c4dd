/**
 * Live labs, the lifecycle: `labUp` builds a plan's topology, `labDown` removes everything a lab made,
 * `labStatus` says what is there.
 *
 * Every namespace, link and process is written down in `<dir>/<lab>/state.json` (dir: `/run/seine/labs`,
 * or `$SEINE_LABS_DIR`, or the `dir` option) before it is created — or, for a process, as it is
 * started: its pid and its start time (field 22 of /proc/PID/stat), so that a pid the kernel has since
 * given to another program is never signalled. The file is replaced atomically (write, then rename),
 * so it is whole whenever the process that writes it dies.
 *
 * `labDown` therefore works after anything: a `seine lab up` killed with SIGKILL half-way, agents that
 * crashed or were killed, a second `labDown`. It stops the recorded processes that are still the same
 * processes and every process that runs inside one of the lab's namespaces (however it was started),
 * SIGTERM first and SIGKILL after a grace period; deletes the recorded links, then the namespaces; and
 * removes the lab's directory. It reports what it removed; run again, it removes nothing.
 *
 * One process changes a lab's state file at a time (the one running `labUp`, or one holding
 * `openLab`); the file is re-read before each change.
 */
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { probeHost, type HostFacts } from './host.js';
import { writeFileAtomic } from '../fs.js';
import { sleep } from '../sleep.js';
import {
  addAddress,
  addBridge,
  addRoute,
  addVeth,
  createNetns,
  deleteLink,
  deleteNetns,
  listAddresses,
  listLinks,
  listNetns,
  netnsInode,
  run,
  setLinkUp,
  setMaster,
  spawnInNetns,
  type LinkInfo,
} from './netns.js';
import { LabRefusedError, checkPlanFeasible, isLabName, type LabNodePlan, type LabPlan } from './plan.js';

/** Where labs keep their state unless told otherwise. */
const DEFAULT_LABS_DIR = '/run/seine/labs';

/** The directory that holds every lab's directory: `dir`, else `$SEINE_LABS_DIR`, else /run/seine/labs. */
export function labsDir(dir?: string): string {
  return dir ?? process.env.SEINE_LABS_DIR ?? DEFAULT_LABS_DIR;
}

export interface RecordedNamespace {
  name: string;
  role: 'underlay' | 'node' | 'pod';
  node: string | null;
  pod: string | null;
}

export interface RecordedLink {
  kind: 'bridge' | 'veth';
  ns: string;
  name: string;
  /** A veth's other end. */
  peerNs: string | null;
  peer: string | null;
}

export interface RecordedProcess {
  pid: number;
  /** Clock ticks after boot (/proc/PID/stat field 22): with the pid, names the process for good. */
  startTime: number;
  /** The namespace it was started in, or null. */
  ns: string | null;
  argv: string[];
  role: string;
  node: string | null;
  log: string | null;
}

export type LabPhase = 'building' | 'hooks' | 'up';

export interface LabState {
  version: 1;
  lab: string;
  scenario: string;
  createdAt: string;
  phase: LabPhase;
  /** The process that ran `labUp`. */
  upPid: number;
  plan: LabPlan;
  namespaces: RecordedNamespace[];
  links: RecordedLink[];
  processes: RecordedProcess[];
}

// ---------------------------------------------------------------------------------------------------
// Processes, through /proc

interface ProcStat {
  state: string;
  startTime: number;
}

function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // comm (field 2) is in parentheses and may hold spaces and parentheses: fields resume after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', startTime: Number(rest[19]) };
}

/** A process's start time (clock ticks after boot), or null when there is no such process. */
export function processStartTime(pid: number): number | null {
  return procStat(pid)?.startTime ?? null;
}

/** Whether `pid` is still the process that started at `startTime` and has not exited (a zombie has). */
export function processAlive(pid: number, startTime: number): boolean {
  const st = procStat(pid);
  return st !== null && st.startTime === startTime && st.state !== 'Z' && st.state !== 'X';
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      .split('\0')
      .filter((x) => x !== '');
  } catch {
    return [];
  }
}

/** Processes whose network namespace is one of `inodes` (read from /proc/PID/ns/net). */
export function processesInNetns(inodes: ReadonlySet<number>): { pid: number; startTime: number; inode: number }[] {
  const out: { pid: number; startTime: number; inode: number }[] = [];
  if (inodes.size === 0) return out;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      continue;
    }
    const m = /^net:\[(\d+)\]$/.exec(link);
    if (m === null || !inodes.has(Number(m[1]))) continue;
    const st = procStat(pid);
    if (st !== null && st.state !== 'Z' && st.state !== 'X') out.push({ pid, startTime: st.startTime, inode: Number(m[1]) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The state file

/** A lab's state file: read, changed and replaced atomically. */
export class LabStore {
  /** The directory of all labs. */
  readonly root: string;
  /** This lab's directory. */
  readonly dir: string;
  readonly file: string;

  constructor(
    readonly lab: string,
    labsDirectory?: string,
  ) {
    if (!isLabName(lab)) throw new Error(`not a lab name: ${JSON.stringify(lab)}`);
    this.root = labsDir(labsDirectory);
    this.dir = join(this.root, lab);
    this.file = join(this.dir, 'state.json');
  }

  exists(): boolean {
    return existsSync(this.file);
  }

  read(): LabState {
    return JSON.parse(readFileSync(this.file, 'utf8')) as LabState;
  }

  /** The state, or null when there is none (or it cannot be read). */
  tryRead(): LabState | null {
    try {
      return this.read();
    } catch {
      return null;
    }
  }

  write(s: LabState): void {
    // No fsync: what the file describes (namespaces, links, processes) does not outlive a power cut either.
    writeFileAtomic(this.file, JSON.stringify(s, null, 1) + '\n');
  }

  /** Re-reads the state, applies `fn` and writes it back before returning. */
  update(fn: (s: LabState) => void): LabState {
    const s = this.read();
    fn(s);
    this.write(s);
    return s;
  }

  /**
   * Claims the lab's directory (mkdir is atomic: a second `labUp` of the same lab fails here) and
   * writes the first state.
   */
  create(plan: LabPlan): LabState {
    mkdirSync(this.root, { recursive: true });
    try {
      mkdirSync(this.dir);
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new Error(
          `lab ${this.lab} is already up or was not taken down (state in ${this.dir}): take it down first (labDown / seine lab down ${this.lab})`,
        );
      throw e;
    }
    const s: LabState = {
      version: 1,
      lab: this.lab,
      scenario: plan.scenario,
      createdAt: new Date().toISOString(),
      phase: 'building',
      upPid: process.pid,
      plan,
      namespaces: [],
      links: [],
      processes: [],
    };
    this.write(s);
    return s;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// Processes of a lab

export interface LabSpawnOptions {
  /** What the process is (`agent`, `iperf3-server`…); default the program's name. */
  role?: string;
  node?: string | null;
  /**
   * stdout and stderr: a log file in the lab's directory (`<node>-<role>.log`, the default), or any
   * stdio setting of child_process.spawn.
   */
  stdio?: 'log' | StdioOptions;
  /** Its own process group, so that a signal to the caller's group (Ctrl-C) does not reach it. Default true. */
  detached?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * A process started in a lab, already written down. `child` keeps the caller's event loop alive until
 * the process exits: `child.unref()` lets a `seine lab up` return while its agents run on.
 */
export interface LabChild {
  child: ChildProcess;
  record: RecordedProcess;
}

/** A lab that is up (or being built): starts and records its processes, takes it down. */
export class LabHandle {
  constructor(readonly store: LabStore) {}

  get lab(): string {
    return this.store.lab;
  }
  get dir(): string {
    return this.store.dir;
  }
  state(): LabState {
    return this.store.read();
  }
  get plan(): LabPlan {
    return this.store.read().plan;
  }

  /** Starts `argv` inside namespace `ns` and records it before returning. */
  spawn(ns: string, argv: readonly string[], opts: LabSpawnOptions = {}): LabChild {
    const role = opts.role ?? basename(argv[0] ?? 'process');
    const node = opts.node ?? null;
    let log: string | null = null;
    let fd: number | null = null;
    let stdio: StdioOptions;
    if (opts.stdio === undefined || opts.stdio === 'log') {
      log = join(this.store.dir, `${node ?? 'lab'}-${role}.log`.replace(/[^\w.-]/g, '_'));
      fd = openSync(log, 'a');
      stdio = ['ignore', fd, fd];
    } else stdio = opts.stdio;
    let child: ChildProcess;
    try {
      child = spawnInNetns(ns, argv, { stdio, detached: opts.detached ?? true, ...(opts.env !== undefined ? { env: opts.env } : {}) });
    } finally {
      if (fd !== null) closeSync(fd);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${argv.join(' ')} in ${ns} (ip netns exec did not start)`);
    const record = this.adopt(pid, { ns, argv: [...argv], role, node, log });
    return { child, record };
  }

  /** Records a process started some other way (it must be running). */
  adopt(pid: number, info: { ns?: string | null; argv?: string[]; role?: string; node?: string | null; log?: string | null } = {}): RecordedProcess {
    const startTime = processStartTime(pid);
    if (startTime === null) throw new Error(`process ${pid} is not running`);
    const record: RecordedProcess = {
      pid,
      startTime,
      ns: info.ns ?? null,
      argv: info.argv ?? cmdline(pid),
      role: info.role ?? 'process',
      node: info.node ?? null,
      log: info.log ?? null,
    };
    this.store.update((s) => {
      s.processes.push(record);
    });
    return record;
  }

  /** Takes the lab down (see `labDown`). */
  down(opts: Omit<LabDownOptions, 'dir'> = {}): Promise<LabDownReport> {
    return labDown(this.lab, { ...opts, dir: this.store.root });
  }
}

/** A lab that is up, to start and record more processes in it. */
export function openLab(lab: string, opts: { dir?: string } = {}): LabHandle {
  const store = new LabStore(lab, opts.dir);
  if (!store.exists()) throw new Error(`no lab ${lab} (no state in ${store.dir})`);
  return new LabHandle(store);
}

// ---------------------------------------------------------------------------------------------------
// Up

export interface LabHooks {
  /**
   * Called for each node, in order, once the whole topology is up (namespaces, links, addresses,
   * qdiscs and filters for every node and pod). Start the node's agent here with `lab.spawn`, so that
   * `labDown` stops it. A hook that throws fails `labUp`, which then takes the lab down.
   */
  onNode?(node: LabNodePlan, nsName: string, lab: LabHandle): void | Promise<void>;
}

export interface LabUpOptions {
  /** The directory that holds labs' state (default `labsDir()`). */
  dir?: string;
  /** What the machine offers (default `probeHost()`). */
  host?: HostFacts;
}

/** `labUp` failed; the lab was taken down (see `teardown`, or `teardownError` when that failed too). */
export class LabUpError extends Error {
  constructor(
    readonly lab: string,
    readonly step: string,
    override readonly cause: unknown,
    readonly teardown: LabDownReport | null,
    readonly teardownError: unknown,
  ) {
    const why = cause instanceof Error ? cause.message : String(cause);
    const after =
      teardownError === null
        ? `the lab was taken down (${teardown === null ? 'nothing to remove' : summarize(teardown)})`
        : `taking the lab down failed too: ${teardownError instanceof Error ? teardownError.message : String(teardownError)}`;
    super(`lab ${lab}: ${step} failed: ${why}\n${after}`);
    this.name = 'LabUpError';
  }
}

/**
 * Builds a plan's lab: the underlay namespace and bridge, then per node a namespace, its veth to the
 * bridge, address, routes, qdiscs and filters, then every pod's (empty) namespace, then `hooks.onNode`
 * per node. Refuses (`LabRefusedError`, nothing created) what the machine cannot do and a lab whose
 * namespaces exist already; on any later failure takes down what it built and throws a `LabUpError`.
 */
export async function labUp(plan: LabPlan, hooks: LabHooks = {}, opts: LabUpOptions = {}): Promise<LabHandle> {
  const refusals = checkPlanFeasible(plan, opts.host ?? probeHost());
  if (refusals.length > 0) throw new LabRefusedError(plan.lab, refusals);
  const present = new Set(await listNetns());
  const clash = plan.namespaces.filter((n) => present.has(n));
  if (clash.length > 0) {
    throw new LabRefusedError(
      plan.lab,
      clash.map((n) => ({ part: 'lab', feature: null, reason: `namespace ${n} exists already (another lab, or one not taken down: labDown ${plan.lab})` })),
    );
  }
  const store = new LabStore(plan.lab, opts.dir);
  store.create(plan);
  const handle = new LabHandle(store);
  let step = 'starting';
  try {
    const u = plan.underlay;
    step = `creating namespace ${u.ns}`;
    await createNamespace(store, { name: u.ns, role: 'underlay', node: null, pod: null });
    step = `creating bridge ${u.bridge} in ${u.ns}`;
    store.update((s) => {
      s.links.push({ kind: 'bridge', ns: u.ns, name: u.bridge, peerNs: null, peer: null });
    });
    await addBridge(u.ns, u.bridge, u.mtu);
    await setLinkUp(u.ns, u.bridge);

    for (const n of plan.nodes) {
      step = `creating namespace ${n.ns} (node ${n.name})`;
      await createNamespace(store, { name: n.ns, role: 'node', node: n.name, pod: null });
      step = `creating veth ${n.uplink.dev}@${n.ns} – ${n.uplink.peer}@${u.ns} (node ${n.name})`;
      store.update((s) => {
        s.links.push({ kind: 'veth', ns: n.ns, name: n.uplink.dev, peerNs: u.ns, peer: n.uplink.peer });
      });
      await addVeth({ name: n.uplink.dev, ns: n.ns, peer: n.uplink.peer, peerNs: u.ns, mtu: n.uplink.mtu, gsoMaxSegs: n.uplink.gsoMaxSegs });
      step = `plugging ${n.uplink.peer} into ${u.bridge} (node ${n.name})`;
      await setMaster(u.ns, n.uplink.peer, u.bridge);
      await setLinkUp(u.ns, n.uplink.peer);
      step = `addressing ${n.uplink.dev} in ${n.ns} (node ${n.name})`;
      await addAddress(n.ns, n.uplink.dev, n.address);
      await setLinkUp(n.ns, n.uplink.dev);
      for (const r of n.routes) await addRoute(n.ns, r.dst, { dev: r.dev });
      for (const argv of [...n.egress.tc, ...n.ingress.tc, ...n.filterTc]) {
        step = `shaping (node ${n.name}): ${argv.join(' ')}`;
        await run(argv);
      }
    }
    for (const n of plan.nodes) {
      for (const p of n.pods) {
        step = `creating namespace ${p.ns} (pod ${n.name}/${p.name})`;
        await createNamespace(store, { name: p.ns, role: 'pod', node: n.name, pod: p.name });
      }
    }

    store.update((s) => {
      s.phase = 'hooks';
    });
    for (const n of plan.nodes) {
      step = `onNode hook for node ${n.name}`;
      await hooks.onNode?.(n, n.ns, handle);
    }
    store.update((s) => {
      s.phase = 'up';
    });
    return handle;
  } catch (e: unknown) {
    let report: LabDownReport | null = null;
    let downErr: unknown = null;
    try {
      report = await labDown(plan.lab, { dir: store.root });
    } catch (d: unknown) {
      downErr = d;
    }
    throw new LabUpError(plan.lab, step, e, report, downErr);
  }
}

async function createNamespace(store: LabStore, ns: RecordedNamespace): Promise<void> {
  store.update((s) => {
    s.namespaces.push(ns);
  });
  try {
    await createNetns(ns.name);
  } catch (e: unknown) {
    // Someone else's namespace of the same name appeared since we looked: it is not ours to delete.
    if (e instanceof Error && /File exists/.test(e.message))
      store.update((s) => {
        s.namespaces = s.namespaces.filter((x) => x.name !== ns.name);
      });
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------------
// Down

export interface LabDownOptions {
  dir?: string;
  /** How long processes get after SIGTERM before SIGKILL (default 3000 ms). */
  graceMs?: number;
}

export interface LabDownReport {
  lab: string;
  /** Whether there was a state to act on (false: nothing to do, or already down). */
  stateFound: boolean;
  processes: { pid: number; argv: string[]; signal: 'SIGTERM' | 'SIGKILL'; how: 'recorded' | 'in-namespace' }[];
  links: string[];
  namespaces: string[];
}

/** One line: what a report removed. */
export function summarize(r: LabDownReport): string {
  if (!r.stateFound) return 'nothing to remove';
  return `${r.processes.length} process(es), ${r.links.length} link(s), ${r.namespaces.length} namespace(s) removed`;
}

/** `labDown` removed only part of the lab; its state is kept for another try. */
class LabDownError extends Error {
  constructor(
    readonly report: LabDownReport,
    readonly errors: string[],
  ) {
    super(`lab ${report.lab} was not taken down entirely (${summarize(report)}):\n  ${errors.join('\n  ')}`);
    this.name = 'LabDownError';
  }
}

/**
 * Removes everything lab `lab` made: its processes (recorded ones that are still the same process, and
 * any process inside its namespaces), its links, its namespaces and its state. Idempotent.
 */
export async function labDown(lab: string, opts: LabDownOptions = {}): Promise<LabDownReport> {
  const store = new LabStore(lab, opts.dir);
  const report: LabDownReport = { lab, stateFound: false, processes: [], links: [], namespaces: [] };
  if (!existsSync(store.dir)) return report;
  const state = store.tryRead();
  if (state === null) {
    // The directory was claimed but no state written yet (a crash right after mkdir): nothing was created.
    store.remove();
    return report;
  }
  report.stateFound = true;
  const errors: string[] = [];

  // 1. Processes.
  const nsNames = state.namespaces.map((n) => n.name);
  const inodes = new Set(nsNames.map(netnsInode).filter((x): x is number => x !== null));
  const targets = new Map<number, { startTime: number; argv: string[]; how: 'recorded' | 'in-namespace' }>();
  for (const p of state.processes) if (processAlive(p.pid, p.startTime)) targets.set(p.pid, { startTime: p.startTime, argv: p.argv, how: 'recorded' });
  for (const p of processesInNetns(inodes)) if (!targets.has(p.pid)) targets.set(p.pid, { startTime: p.startTime, argv: cmdline(p.pid), how: 'in-namespace' });
  const signalled = new Map<number, 'SIGTERM' | 'SIGKILL'>();
  const signal = (sig: 'SIGTERM' | 'SIGKILL'): void => {
    for (const [pid, t] of targets) {
      if (!processAlive(pid, t.startTime)) continue; // gone, or the pid is another process now
      try {
        process.kill(pid, sig);
        signalled.set(pid, sig);
      } catch (e: unknown) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') errors.push(`kill -${sig} ${pid}: ${(e as Error).message}`);
      }
    }
  };
  const waitGone = async (ms: number): Promise<boolean> => {
    const end = Date.now() + ms;
    for (;;) {
      if ([...targets].every(([pid, t]) => !processAlive(pid, t.startTime))) return true;
      if (Date.now() >= end) return false;
      await sleep(25);
    }
  };
  if (targets.size > 0) {
    signal('SIGTERM');
    if (!(await waitGone(opts.graceMs ?? 3000))) {
      signal('SIGKILL');
      if (!(await waitGone(5000))) {
        for (const [pid, t] of targets) if (processAlive(pid, t.startTime)) errors.push(`process ${pid} (${t.argv.join(' ')}) survived SIGKILL`);
      }
    }
  }
  for (const [pid, sig] of signalled) {
    const t = targets.get(pid)!;
    report.processes.push({ pid, argv: t.argv, signal: sig, how: t.how });
  }

  // 2. Links: those that exist now, in reverse order of creation (a veth goes with its peer).
  const present = new Set(await listNetns().catch(() => nsNames.filter((n) => netnsInode(n) !== null)));
  const linksIn = new Map<string, Set<string>>();
  const linksOf = async (ns: string): Promise<Set<string>> => {
    let l = linksIn.get(ns);
    if (l === undefined) {
      l = new Set(present.has(ns) ? (await listLinks(ns).catch((): LinkInfo[] => [])).map((x) => x.ifname) : []);
      linksIn.set(ns, l);
    }
    return l;
  };
  for (const l of [...state.links].reverse()) {
    const here = await linksOf(l.ns);
    const there = l.peerNs !== null && l.peer !== null ? await linksOf(l.peerNs) : new Set<string>();
    const ends: [string, string][] = [];
    if (here.has(l.name)) ends.push([l.ns, l.name]);
    if (l.peerNs !== null && l.peer !== null && there.has(l.peer)) ends.push([l.peerNs, l.peer]);
    if (ends.length === 0) continue;
    try {
      await deleteLink(ends[0]![0], ends[0]![1]);
      for (const [ns, name] of ends) {
        report.links.push(`${name}@${ns}`);
        linksIn.get(ns)?.delete(name);
      }
    } catch (e: unknown) {
      errors.push((e as Error).message);
    }
  }

  // 3. Namespaces, pods first.
  for (const n of [...nsNames].reverse()) {
    if (!present.has(n)) continue;
    try {
      await deleteNetns(n);
      report.namespaces.push(n);
    } catch (e: unknown) {
      errors.push((e as Error).message);
    }
  }

  if (errors.length > 0) throw new LabDownError(report, errors);
  store.remove();
  return report;
}

// ---------------------------------------------------------------------------------------------------
// Status

export interface LabStatus {
  lab: string;
  scenario: string;
  phase: LabPhase;
  createdAt: string;
  dir: string;
  namespaces: { name: string; role: RecordedNamespace['role']; present: boolean }[];
  links: { link: string; present: boolean; mtu: number | null; operstate: string | null }[];
  processes: { pid: number; role: string; node: string | null; argv: string[]; alive: boolean; log: string | null }[];
  nodes: { name: string; ns: string; underlayIp: string; addresses: string[]; uplink: string | null }[];
}

/** A lab's status (null when there is no such lab), or every lab's when no name is given. JSON-able. */
export async function labStatus(lab: string, opts?: { dir?: string }): Promise<LabStatus | null>;
export async function labStatus(lab?: undefined, opts?: { dir?: string }): Promise<LabStatus[]>;
export async function labStatus(lab?: string, opts: { dir?: string } = {}): Promise<LabStatus | null | LabStatus[]> {
  if (lab === undefined) {
    let names: string[] = [];
    try {
      names = readdirSync(labsDir(opts.dir)).filter(isLabName);
    } catch {
      /* no labs */
    }
    const all = await Promise.all(names.map((n) => labStatus(n, opts)));
    return all.filter((s): s is LabStatus => s !== null);
  }
  const store = new LabStore(lab, opts.dir);
  const s = store.tryRead();
  if (s === null) return null;
  const present = new Set(await listNetns());
  const links = new Map<string, LinkInfo[]>();
  for (const ns of new Set(s.links.flatMap((l) => [l.ns, ...(l.peerNs !== null ? [l.peerNs] : [])]))) {
    links.set(ns, present.has(ns) ? await listLinks(ns).catch((): LinkInfo[] => []) : []);
  }
  const linkStatus = (ns: string, name: string): LabStatus['links'][number] => {
    const l = links.get(ns)?.find((x) => x.ifname === name);
    return { link: `${name}@${ns}`, present: l !== undefined, mtu: l?.mtu ?? null, operstate: l?.operstate ?? null };
  };
  const nodes: LabStatus['nodes'] = [];
  for (const n of s.plan.nodes) {
    let addresses: string[] = [];
    if (present.has(n.ns)) {
      const a = await listAddresses(n.ns, n.uplink.dev).catch(() => []);
      addresses = a.flatMap((x) => x.addr_info.filter((i) => i.scope !== 'link').map((i) => `${i.local}/${i.prefixlen}`));
    }
    nodes.push({ name: n.name, ns: n.ns, underlayIp: n.underlayIp, addresses, uplink: linkStatus(n.ns, n.uplink.dev).operstate });
  }
  return {
    lab: s.lab,
    scenario: s.scenario,
    phase: s.phase,
    createdAt: s.createdAt,
    dir: store.dir,
    namespaces: s.namespaces.map((n) => ({ name: n.name, role: n.role, present: present.has(n.name) })),
    links: s.links.flatMap((l) => [linkStatus(l.ns, l.name), ...(l.peerNs !== null && l.peer !== null ? [linkStatus(l.peerNs, l.peer)] : [])]),
    processes: s.processes.map((p) => ({ pid: p.pid, role: p.role, node: p.node, argv: p.argv, alive: processAlive(p.pid, p.startTime), log: p.log })),
    nodes,
  };
}
