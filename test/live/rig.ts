/**
 * A rig for live tests that build their own topology (no scenario, no `seine lab`): named network
 * namespaces, veth pairs, programs started inside namespaces with their output in log files, seine
 * agents started from a `NodeConfig`, packet captures and tshark's verdict on them — and one `cleanup`
 * that removes all of it, after a pass or a failure alike.
 *
 * Everything a rig makes carries its random tag (`seine-<prefix><tag>-…`), so parallel runs do not
 * meet. Every command runs with a timeout; every long-running program is stopped by its pid in
 * `cleanup` (SIGTERM, then SIGKILL after a grace period), and so is anything still running inside one
 * of the rig's namespaces. `cleanup` never throws: what it could not remove goes to stderr.
 *
 * ```ts
 * const rig = new Rig('ix');
 * after(() => rig.cleanup());
 * const a = await rig.addNetns('a'), b = await rig.addNetns('b');
 * await rig.veth({ ns: a, name: 'eth0' }, { ns: b, name: 'eth0' });
 * const agent = await startAgent(rig, { ns: a, node, pods: { p: { netns: pod, ifname: 'eth0' } } });
 * ```
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { PodPlacement } from '../../src/live/config.js';
import { controlRequest } from '../../src/live/control.js';
import { createNetns, deleteNetns, ip, run, type RunResult } from '../../src/live/lab/netns.js';
import type { MetricsSnapshot } from '../../src/live/metrics.js';
import { nativeUnavailable } from '../../src/live/native.js';
import { sleep } from '../../src/live/sleep.js';
import type { NodeConfig } from '../../src/node/config.js';

/** This file runs as dist/test/live/rig.js: the project root is three levels up. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The CLI, built (`seine agent --config FILE`). */
export const MAIN_JS = join(ROOT, 'dist', 'src', 'cli', 'main.js');

export const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

/**
 * Whether a live test file can run: false when it can, else the reason, starting `SKIPPED — NOT ROOT:`
 * (printed to stderr at once, so a skipped run is never mistaken for a pass). Only the lack of root (or
 * of Linux) skips: a missing tool or addon fails the tests that need it.
 */
export function liveSkip(file: string): string | false {
  if (IS_ROOT && process.platform === 'linux') return false;
  const why = `SKIPPED — NOT ROOT: ${file} needs root on Linux (network namespaces, TAPs, raw sockets); uid ${process.getuid?.() ?? 'none'} on ${process.platform}`;
  process.stderr.write(`\n*** ${why} ***\n\n`);
  return why;
}

/** Throws unless `cmd` is on PATH (the CI installs every peer: a missing one is a failure, not a skip). */
export function requireCommand(cmd: string, aptPackage: string): void {
  if (spawnSync('sh', ['-c', `command -v "$1"`, 'sh', cmd], { stdio: 'ignore' }).status !== 0) {
    throw new Error(`${cmd} is required for this test: apt-get install ${aptPackage} (see .ci/run)`);
  }
}

/** Throws when the native addon cannot be loaded (the agent needs it). */
export function requireNative(): void {
  const why = nativeUnavailable();
  if (why !== null) throw new Error(`the native addon is needed for live agents: ${why} (build it: node native/build.mjs)`);
}

/** The live world's one sleep (src/live/sleep.ts), for the tests that take it from the rig. */
export { sleep };

/** Calls `probe` until it returns a value other than undefined, every `everyMs`; throws after `timeoutMs` naming `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last !== null ? ` (last error: ${last instanceof Error ? last.message : String(last)})` : ''}`,
      );
    await sleep(everyMs);
  }
}

/** The last `lines` lines of a file (for error messages), or a note that it is missing. */
export function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .slice(-lines - 1)
      .join('\n');
  } catch {
    return `(no ${file})`;
  }
}

/** How a `seine` CLI run ended and what it printed. */
export interface SeineRan {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface SeineCliOptions {
  /** SEINE_LABS_DIR for the child. */
  labsDir: string;
  timeoutMs: number;
  /** Sent when the time is up. */
  killSignal: NodeJS.Signals;
  /** Called once the child has a pid (it may signal it). */
  onStart?: (pid: number) => void;
  /** Sees all of stderr so far, each time more comes. */
  onStderr?: (text: string, pid: number) => void;
}

/** Runs `node dist/src/cli/main.js args…` with a labs directory; resolves (never rejects) with how it ended. */
export function runSeineCli(args: readonly string[], o: SeineCliOptions): Promise<SeineRan> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [MAIN_JS, ...args], { env: { ...process.env, SEINE_LABS_DIR: o.labsDir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '',
      stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      o.onStderr?.(stderr, child.pid!);
    });
    const timer = setTimeout(() => child.kill(o.killSignal), o.timeoutMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
    if (o.onStart !== undefined && child.pid !== undefined) o.onStart(child.pid);
  });
}

/** A program the rig started: its output goes to `log`; `stop` ends it by its pid. */
export class RigProcess {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private done = false;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly log: string,
    readonly argv: readonly string[],
  ) {
    this.exited = new Promise((res) => {
      child.once('exit', (code, signal) => {
        this.done = true;
        res({ code, signal });
      });
      child.once('error', () => {
        this.done = true;
        res({ code: null, signal: null });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
  get alive(): boolean {
    return !this.done && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What it wrote so far (stdout and stderr, interleaved). */
  output(): string {
    try {
      return readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }

  /** Waits until its output matches `re` (throws, with the output, if it exits first or `timeoutMs` passes). */
  async waitForOutput(re: RegExp, timeoutMs: number): Promise<void> {
    await waitFor(
      `${this.name} to print ${String(re)}`,
      async () => {
        if (re.test(this.output())) return true;
        if (!this.alive) throw new Error(`${this.name} exited: ${tail(this.log, 10)}`);
        return undefined;
      },
      timeoutMs,
      50,
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- ${this.log} ---\n${tail(this.log)}`);
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 2000): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => {
      if (this.alive) this.child.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(t);
  }
}

export interface VethEnd {
  ns: string;
  name: string;
}

export interface RigSpawnOptions {
  env?: NodeJS.ProcessEnv;
}

export class Rig {
  /** Four hex digits, in every name the rig makes. */
  readonly tag = Math.floor(Math.random() * 0x10000)
    .toString(16)
    .padStart(4, '0');
  /** A private directory for configs, sockets, logs and captures (removed by `cleanup`). */
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly procs: RigProcess[] = [];
  private cleaned = false;
  private readonly onExit = (): void => this.emergencyCleanup();

  constructor(readonly prefix: string) {
    this.dir = mkdtempSync(join(tmpdir(), `seine-${prefix}-`));
    // A test process that exits without running `after` (an uncaught error) still removes what it made.
    process.once('exit', this.onExit);
  }

  /** The full name of a namespace of this rig. */
  nsName(short: string): string {
    return `seine-${this.prefix}${this.tag}-${short}`;
  }

  /** Creates the namespace `seine-<prefix><tag>-<short>` with its loopback up; returns its name. */
  async addNetns(short: string): Promise<string> {
    const name = this.nsName(short);
    this.namespaces.push(name);
    await createNetns(name);
    return name;
  }

  /** A veth pair between two namespaces, both ends up. */
  async veth(a: VethEnd, b: VethEnd, mtu = 1500): Promise<void> {
    await ip(['link', 'add', a.name, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', b.name, 'mtu', String(mtu), 'netns', b.ns], a.ns);
    await ip(['link', 'set', a.name, 'up'], a.ns);
    await ip(['link', 'set', b.name, 'up'], b.ns);
  }

  /** Runs `argv` to completion inside `ns` (or here, for null) within `timeoutMs`; rejects with a `CommandError`. */
  run(ns: string | null, argv: readonly string[], timeoutMs = 10_000, env?: NodeJS.ProcessEnv): Promise<RunResult> {
    const full = ns === null ? argv : ['ip', 'netns', 'exec', ns, ...argv];
    // `env` is added to this process's environment, as for a spawned program.
    return run(full, { timeoutMs, ...(env !== undefined ? { env: { ...process.env, ...env } } : {}) });
  }

  /**
   * Starts a long-running program inside `ns` (`ip netns exec` execs it: the child's pid is the
   * program's); stdout and stderr go to `<dir>/<name>.log`. `cleanup` stops it if nothing else did.
   */
  spawn(ns: string | null, name: string, argv: readonly string[], opts: RigSpawnOptions = {}): RigProcess {
    const log = join(this.dir, `${name}.log`);
    const fd = openSync(log, 'a');
    const full = ns === null ? [...argv] : ['ip', 'netns', 'exec', ns, ...argv];
    let child: ChildProcess;
    try {
      child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', fd, fd], env: opts.env ?? process.env });
    } finally {
      closeSync(fd);
    }
    const p = new RigProcess(name, child, log, full);
    this.procs.push(p);
    return p;
  }

  /**
   * Starts tcpdump on `dev` inside `ns`, writing `<dir>/<name>.pcap` (packet-buffered, so it is whole
   * up to the last packet when stopped), and resolves once it listens. At most `maxPackets` are kept.
   */
  async capture(ns: string, dev: string, name: string, filter: readonly string[] = [], maxPackets = 200_000): Promise<{ proc: RigProcess; file: string }> {
    const file = join(this.dir, `${name}.pcap`);
    const proc = this.spawn(ns, `tcpdump-${name}`, ['tcpdump', '-i', dev, '-n', '-U', '-s', '0', '-c', String(maxPackets), '-w', file, ...filter]);
    await proc.waitForOutput(/listening on/, 10_000);
    return { proc, file };
  }

  /** Removes everything: processes (by pid), anything left in the namespaces, the namespaces, the directory. Never throws. */
  async cleanup(opts: { keepDir?: boolean } = {}): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    process.off('exit', this.onExit);
    const warn = (what: string, e: unknown): void => {
      process.stderr.write(`rig ${this.prefix}${this.tag}: cleanup: ${what}: ${e instanceof Error ? e.message : String(e)}\n`);
    };
    await Promise.all(this.procs.map((p) => p.stop(2000).catch((e: unknown) => warn(`stop ${p.name}`, e))));
    for (const ns of [...this.namespaces].reverse()) {
      // Whatever still runs in the namespace was started there by this rig (an iperf3 a timeout left behind).
      try {
        const pids = (await run(['ip', 'netns', 'pids', ns], { timeoutMs: 5000 })).stdout.split(/\s+/).filter((x) => /^\d+$/.test(x));
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      } catch {
        /* the namespace may be gone already */
      }
      try {
        await deleteNetns(ns);
      } catch (e) {
        if (existsSync(`/run/netns/${ns}`)) warn(`ip netns del ${ns}`, e);
      }
    }
    if (opts.keepDir !== true && process.env['SEINE_KEEP_RIG'] === undefined) rmSync(this.dir, { recursive: true, force: true });
    else process.stderr.write(`rig ${this.prefix}${this.tag}: kept ${this.dir}\n`);
  }

  /** At process exit, synchronously: kill what is still running, delete the namespaces. */
  private emergencyCleanup(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const p of this.procs)
      if (p.alive) {
        try {
          p.child.kill('SIGKILL');
        } catch {
          /* gone */
        }
      }
    for (const ns of this.namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------------
// seine agents

export interface AgentOptions {
  /**
   * The node's namespace: the agent runs there (its config says `netns: null`, as `seine lab up` writes
   * it). Null: the agent runs here, and `config` names the node's namespace (`netns`).
   */
  ns: string | null;
  node: NodeConfig;
  /** Where each pod's TAP goes (the namespaces must exist). */
  pods: Record<string, PodPlacement>;
  underlayMtu?: number;
  /** Listen for Prometheus (host:port); default none. */
  metrics?: string | null;
  /** Time allowed until the control socket answers (default 15 s). */
  readyMs?: number;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** More configuration keys (e.g. `netns`, `kubernetes`), over the ones written from the fields above. */
  config?: Record<string, unknown>;
}

export interface RigAgent {
  proc: RigProcess;
  /** The configuration file written for it. */
  config: string;
  control: string;
  /** A control request (`status`, `stats`, `reload`…); rejects with the agent's error. */
  request(op: string, fields?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Its counters: the `stats` request's snapshot. */
  stats(): Promise<MetricsSnapshot>;
  stop(): Promise<void>;
}

/** The agent configuration (as `parseAgentConfig` reads it) for a node run inside its own namespace. */
export function agentConfigDoc(o: AgentOptions, control: string): Record<string, unknown> {
  return {
    node: o.node,
    netns: null,
    pods: o.pods,
    control,
    ...(o.metrics !== undefined && o.metrics !== null ? { metrics: o.metrics } : {}),
    underlayMtu: o.underlayMtu ?? 1500,
    ...o.config,
  };
}

/**
 * Writes the node's agent config to the rig's directory, starts `seine agent --config FILE` inside the
 * node's namespace, and resolves once its control socket answers `status`. Throws, with the agent's
 * log, if it exits or does not answer in time.
 */
export async function startAgent(rig: Rig, o: AgentOptions): Promise<RigAgent> {
  requireNative();
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: npm run build`);
  const name = `agent-${o.node.name}`;
  const control = join(rig.dir, `${name}.sock`);
  const config = join(rig.dir, `${name}.yaml`);
  writeFileSync(config, `# written by test/live/rig.ts\n${stringify(agentConfigDoc(o, control))}`);
  const proc = rig.spawn(o.ns, name, [process.execPath, MAIN_JS, 'agent', '--config', config, '--log-level', o.logLevel ?? 'info']);
  const readyMs = o.readyMs ?? 15_000;
  try {
    await waitFor(
      `the agent of ${o.node.name} to answer on ${control}`,
      async () => {
        if (!proc.alive) {
          const { code, signal } = await proc.exited;
          throw new Error(`the agent of ${o.node.name} exited (${signal ?? `status ${code}`})`);
        }
        if (!existsSync(control)) return undefined;
        const r = await controlRequest(control, { op: 'status' }, 1000);
        return r;
      },
      readyMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- ${proc.log} ---\n${tail(proc.log)}`);
  }
  return {
    proc,
    config,
    control,
    request: (op, fields = {}) => controlRequest(control, { ...fields, op }, 5000),
    stats: async () => (await controlRequest(control, { op: 'stats' }, 5000))['snapshot'] as MetricsSnapshot,
    stop: () => proc.stop(3000),
  };
}

// ---------------------------------------------------------------------------------------------------
// tshark

export interface TsharkOptions {
  /** `-d` decode-as rules, e.g. `tcp.port==5201,data` (iperf3's payload is not Thrift, whatever the heuristics say). */
  decodeAs?: readonly string[];
  /** Also verify TCP checksums (IP and UDP always are; ICMP's always is by tshark). */
  tcpChecksums?: boolean;
  timeoutMs?: number;
}

function tsharkArgs(file: string, o: TsharkOptions): string[] {
  return [
    'tshark',
    '-n',
    '-r',
    file,
    '-o',
    'ip.check_checksum:TRUE',
    '-o',
    'udp.check_checksum:TRUE',
    ...(o.tcpChecksums === true ? ['-o', 'tcp.check_checksum:TRUE'] : []),
    ...(o.decodeAs ?? []).flatMap((d) => ['-d', d]),
  ];
}

/** `tshark -T fields` of the frames matching `filter`: one array of field values per frame (a repeated field's values joined by commas). */
export async function tsharkFields(file: string, filter: string, fields: readonly string[], o: TsharkOptions = {}): Promise<string[][]> {
  const argv = [...tsharkArgs(file, o), '-Y', filter, '-T', 'fields', '-E', 'separator=/t', ...fields.flatMap((f) => ['-e', f])];
  const { stdout } = await run(argv, { timeoutMs: o.timeoutMs ?? 60_000 });
  return stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

/**
 * The frames tshark finds fault with: a bad IP, UDP, ICMP (or, asked, TCP) checksum — checksum status 0
 * is "bad" — or a malformed frame, at any layer (inner headers included). Empty is clean. tshark's
 * exit status is checked, so a filter it cannot parse is an error, never an empty answer.
 */
export async function tsharkFaults(file: string, o: TsharkOptions = {}): Promise<string[]> {
  const statuses = ['ip', 'udp', 'icmp', ...(o.tcpChecksums === true ? ['tcp'] : [])].map((p) => `${p}.checksum.status == 0`);
  const filter = [...statuses, '_ws.malformed'].join(' || ');
  const argv = [...tsharkArgs(file, o), '-Y', filter];
  const { stdout } = await run(argv, { timeoutMs: o.timeoutMs ?? 60_000 });
  return stdout.split('\n').filter((l) => l.trim() !== '');
}

/** Frames in a capture file (0 for a file tcpdump never wrote to). */
export async function frameCount(file: string): Promise<number> {
  if (!existsSync(file) || statSync(file).size === 0) return 0;
  const { stdout } = await run(['tshark', '-n', '-r', file, '-T', 'fields', '-e', 'frame.number'], { timeoutMs: 60_000 });
  return stdout.split('\n').filter((l) => l !== '').length;
}
