/**
 * Thin helpers over iproute2's `ip` and `tc` for live labs: network namespaces, veth pairs, bridges,
 * addresses, routes, qdiscs and filters, listings in JSON (`ip -j`, `tc -j`), and commands run inside a
 * namespace (`ip netns exec NS cmd…`).
 *
 * Every helper runs one program through `execFile` — never a shell, so names and addresses are passed
 * as they are — with a timeout. A failure throws a `CommandError` that names the command line, how it
 * ended and its stderr:
 *
 *     ip -n seine-lab-node1 link set eth9 up: exit code 1: Cannot find device "eth9"
 *
 * Commands that act inside a namespace use `ip -n NS …` / `tc -n NS …`, so nothing is ever created in
 * the caller's own namespace.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { statSync } from 'node:fs';

/** Where `ip netns` keeps the names of namespaces (iproute2's NETNS_RUN_DIR). */
const NETNS_RUN_DIR = '/run/netns';

/** Default time a single `ip`/`tc` command may take. */
export const COMMAND_TIMEOUT_MS = 10_000;

/** A command that failed: its argv, how it ended and what it said. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    /** The exit code, a spawn error code such as `ENOENT`, or null when a signal ended it. */
    readonly code: number | string | null,
    readonly signal: string | null,
    readonly stdout: string,
    readonly stderr: string,
    readonly timedOut = false,
  ) {
    const how = timedOut
      ? 'timed out'
      : signal !== null
        ? `killed by ${signal}`
        : typeof code === 'number'
          ? `exit code ${code}`
          : `could not run (${String(code)})`;
    const said = stderr.trim() !== '' ? stderr.trim() : stdout.trim() !== '' ? stdout.trim() : '(no output)';
    super(`${commandText(argv)}: ${how}: ${said}`);
    this.name = 'CommandError';
  }
}

/** An argv as one line a reader could paste into a shell. */
function commandText(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export interface RunOptions {
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string;
  /** The command's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs `argv[0]` with the rest as arguments (no shell); resolves with its output, rejects with a `CommandError`. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('run: empty command'));
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        encoding: 'utf8',
        timeout: opts.timeoutMs ?? COMMAND_TIMEOUT_MS,
        killSignal: 'SIGKILL',
        maxBuffer: 64 << 20,
        ...(opts.env !== undefined ? { env: opts.env } : {}),
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: number | string; signal?: string | null; killed?: boolean };
        const timedOut = e.killed === true && e.signal === 'SIGKILL';
        reject(new CommandError(argv, e.code ?? null, e.signal ?? null, stdout, stderr, timedOut));
      },
    );
    // A command may exit without reading its stdin (host-local VERSION does): the pipe's EPIPE is then
    // not an error of ours — the exit status and output say how the command went.
    child.stdin?.on('error', () => {});
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/**
 * `cmd [-n ns] args…`: a namespace is a name under /run/netns (`-n`), or a path such as
 * /proc/PID/ns/net or a CNI runtime's netns file, entered with nsenter.
 */
function inNs(cmd: 'ip' | 'tc', ns: string | null | undefined, args: readonly string[], json = false): string[] {
  const j = json ? ['-j'] : [];
  if (ns === null || ns === undefined) return [cmd, ...j, ...args];
  if (ns.startsWith('/')) return ['nsenter', `--net=${ns}`, cmd, ...j, ...args];
  return [cmd, ...j, '-n', ns, ...args];
}

/** `ip [-n ns] args…`, resolving with stdout. */
export async function ip(args: readonly string[], ns?: string | null): Promise<string> {
  return (await run(inNs('ip', ns, args))).stdout;
}

/** `tc [-n ns] args…`, resolving with stdout. */
export async function tc(args: readonly string[], ns?: string | null): Promise<string> {
  return (await run(inNs('tc', ns, args))).stdout;
}

function parseJsonList<T>(argv: readonly string[], text: string): T[] {
  if (text.trim() === '') return [];
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? (v as T[]) : [];
  } catch (e: unknown) {
    throw new Error(`${commandText(argv)}: output is not JSON (${(e as Error).message}): ${text.slice(0, 200)}`);
  }
}

/** `ip -j [-n ns] args…` parsed (an empty output is an empty list). */
export async function ipJson<T>(args: readonly string[], ns?: string | null): Promise<T[]> {
  const argv = inNs('ip', ns, args, true);
  return parseJsonList<T>(argv, (await run(argv)).stdout);
}

/** `tc -j [-n ns] args…` parsed. */
async function tcJson<T>(args: readonly string[], ns?: string | null): Promise<T[]> {
  const argv = inNs('tc', ns, args, true);
  return parseJsonList<T>(argv, (await run(argv)).stdout);
}

// ---------------------------------------------------------------------------------------------------
// Namespaces

/** The names `ip netns` knows. */
export async function listNetns(): Promise<string[]> {
  return (await ipJson<{ name: string }>(['netns', 'list'])).map((n) => n.name);
}

/** The nsfs inode of a named namespace (what `/proc/PID/ns/net` shows as `net:[INODE]`), or null when it has no name. */
export function netnsInode(name: string): number | null {
  try {
    return statSync(`${NETNS_RUN_DIR}/${name}`).ino;
  } catch {
    return null;
  }
}

/** `ip netns add` then brings its loopback up. */
export async function createNetns(name: string): Promise<void> {
  await ip(['netns', 'add', name]);
  await ip(['link', 'set', 'lo', 'up'], name);
}

/** `ip netns del`: removes the name; the namespace itself goes when no process or mount holds it. */
export async function deleteNetns(name: string): Promise<void> {
  await ip(['netns', 'del', name]);
}

// ---------------------------------------------------------------------------------------------------
// Links

export interface VethSpec {
  /** This end's name and namespace. */
  name: string;
  ns: string;
  /** The other end's name and namespace. */
  peer: string;
  peerNs: string;
  mtu: number;
  /** Caps GSO super-frames at this many segments on this end (1: the stack segments before the wire). */
  gsoMaxSegs?: number | null;
}

/** A veth pair made directly in its two namespaces (`ip -n NS link add … peer … netns PEERNS`). */
export async function addVeth(v: VethSpec): Promise<void> {
  const gso = v.gsoMaxSegs === null || v.gsoMaxSegs === undefined ? [] : ['gso_max_segs', String(v.gsoMaxSegs)];
  await ip(['link', 'add', v.name, 'mtu', String(v.mtu), ...gso, 'type', 'veth', 'peer', 'name', v.peer, 'mtu', String(v.mtu), 'netns', v.peerNs], v.ns);
}

/** A Linux bridge (STP off, the kernel's default). */
export async function addBridge(ns: string, name: string, mtu: number): Promise<void> {
  await ip(['link', 'add', name, 'mtu', String(mtu), 'type', 'bridge'], ns);
}

export async function setMaster(ns: string, dev: string, master: string): Promise<void> {
  await ip(['link', 'set', dev, 'master', master], ns);
}

export async function setLinkUp(ns: string, dev: string, up = true): Promise<void> {
  await ip(['link', 'set', dev, up ? 'up' : 'down'], ns);
}

export async function deleteLink(ns: string, dev: string): Promise<void> {
  await ip(['link', 'del', dev], ns);
}

/** An address (`10.0.0.1/24`, `fd00::1/64`); IPv6 ones skip duplicate address detection so they work at once. */
export async function addAddress(ns: string, dev: string, cidr: string): Promise<void> {
  await ip(['addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])], ns);
}

export interface RouteSpec {
  dev?: string;
  via?: string;
  mtu?: number;
}

export async function addRoute(ns: string, dst: string, r: RouteSpec): Promise<void> {
  await ip(
    [
      ...(dst.includes(':') ? ['-6'] : []),
      'route',
      'add',
      dst,
      ...(r.via !== undefined ? ['via', r.via] : []),
      ...(r.dev !== undefined ? ['dev', r.dev] : []),
      ...(r.mtu !== undefined ? ['mtu', String(r.mtu)] : []),
    ],
    ns,
  );
}

/** What `ip -j link` says of a link (the fields labs use). */
export interface LinkInfo {
  ifindex: number;
  ifname: string;
  mtu: number;
  operstate: string;
  flags: string[];
  master?: string;
  link?: string;
  address?: string;
}

/** `ip -j [-n ns] link show` (in the caller's namespace when ns is null). */
export function listLinks(ns: string | null = null): Promise<LinkInfo[]> {
  return ipJson<LinkInfo>(['link', 'show'], ns);
}

export interface AddrInfo {
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope?: string }[];
}

/** `ip -j -n ns addr show [dev]`. */
export function listAddresses(ns: string, dev?: string): Promise<AddrInfo[]> {
  return ipJson<AddrInfo>(['addr', 'show', ...(dev !== undefined ? ['dev', dev] : [])], ns);
}

/** What `tc -j qdisc` says of a qdisc. */
export interface QdiscInfo {
  kind: string;
  handle: string;
  root?: boolean;
  parent?: string;
  options?: Record<string, unknown>;
}

/** `tc -j -n ns qdisc show [dev]`. */
export function listQdiscs(ns: string, dev?: string): Promise<QdiscInfo[]> {
  return tcJson<QdiscInfo>(['qdisc', 'show', ...(dev !== undefined ? ['dev', dev] : [])], ns);
}

// ---------------------------------------------------------------------------------------------------
// Programs inside a namespace

/** The argv that runs `argv` inside `ns`. */
function inNetns(ns: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', ns, ...argv];
}

/**
 * Starts `argv` inside `ns` (`ip netns exec` enters the namespace and execs the program, so the child's
 * pid is the program's).
 */
export function spawnInNetns(ns: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
  const [file, ...args] = inNetns(ns, argv);
  return spawn(file!, args, opts);
}

/** Runs `argv` inside `ns` to completion; rejects with a `CommandError` on a non-zero exit. */
export function runInNetns(ns: string, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(inNetns(ns, argv), opts);
}
