/**
 * IPAM by delegation, as the CNI spec's "Delegated plugins" section says: the agent execs the plugin
 * named by the configuration's `ipam.type`, found in CNI_PATH, with the same `CNI_*` variables and the
 * network configuration on stdin; a success prints a result (ADD) or nothing, a failure an error object
 * and a non-zero exit. host-local (the reference plugins) is what seine's conflist uses.
 *
 * The configuration's cniVersion is passed down unless the plugin does not speak it: Debian's
 * host-local stops at 1.0.0, so a 1.1.0 network asks it in 1.0.0 (the IPAM result is the same there).
 * The versions a plugin speaks come from its VERSION answer, asked once per binary.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError, compareVersions, type CniDns, type CniIp, type CniRequest, type CniRoute } from './cni-spec.js';
import { CommandError, run } from './lab/netns.js';
import { nativeUnavailable } from './native.js';
import { runFast } from './spawn.js';

/** An IPAM call: the plugin's request (its `CNI_*` variables and configuration) with IPAM's command. */
export type IpamCall = Omit<CniRequest, 'command'> & { command: 'ADD' | 'DEL' | 'CHECK' };

export interface IpamResult {
  ips: CniIp[];
  routes: CniRoute[];
  dns: CniDns;
}

/** Time an IPAM plugin may take (host-local takes milliseconds; it waits on its lock file under concurrency). */
const IPAM_TIMEOUT_MS = 20_000;

/** The plugin binary `type` in CNI_PATH (a list separated by ':'), or a CniError naming where it looked. */
export function findPlugin(type: string, cniPath: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(type) || type === '.' || type === '..') throw new CniError(CniCode.InvalidConfig, `ipam.type "${type}" is not a plugin name`);
  const dirs = cniPath.split(':').filter((d) => d !== '');
  for (const d of dirs) {
    const f = join(d, type);
    try {
      accessSync(f, constants.X_OK);
      if (statSync(f).isFile()) return f;
    } catch {
      /* not here */
    }
  }
  throw new CniError(CniCode.InvalidConfig, `IPAM plugin "${type}" not found in CNI_PATH (${dirs.join(', ') || 'empty'})`);
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the plugin through spawn.ts's `runFast` (no fork: the agent's large pool makes each fork dearer,
 * as bench/spawn.ts measures), or lab/netns.ts's `run` without the native addon; a non-zero
 * exit is an answer here (the plugin's error object), not a throw.
 */
async function exec(file: string, env: NodeJS.ProcessEnv, stdin: string): Promise<Ran> {
  const start = nativeUnavailable() === null ? runFast : run;
  try {
    return { code: 0, ...(await start([file], { env, input: stdin, timeoutMs: IPAM_TIMEOUT_MS })) };
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    const code = typeof e.code === 'number' ? e.code : e.signal !== null ? 128 : 127;
    return { code, stdout: e.stdout, stderr: e.timedOut ? `killed after ${IPAM_TIMEOUT_MS} ms` : typeof e.code === 'string' ? e.message : e.stderr };
  }
}

const versionsOf = new Map<string, { mtimeMs: number; versions: string[] }>();

/** The versions a plugin binary speaks (its VERSION answer), cached per file and modification time. */
async function pluginVersions(file: string): Promise<string[]> {
  const mtimeMs = statSync(file).mtimeMs;
  const had = versionsOf.get(file);
  if (had !== undefined && had.mtimeMs === mtimeMs) return had.versions;
  const r = await exec(file, { CNI_COMMAND: 'VERSION', PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin' }, '{"cniVersion":"0.4.0"}');
  let versions: string[] = [];
  try {
    const v = JSON.parse(r.stdout) as { supportedVersions?: unknown };
    if (Array.isArray(v.supportedVersions)) versions = v.supportedVersions.filter((x): x is string => typeof x === 'string');
  } catch {
    /* an old plugin: asked in the config's own version below */
  }
  versionsOf.set(file, { mtimeMs, versions });
  return versions;
}

/** The version to ask the plugin in: the configuration's, or the highest below it that the plugin speaks. */
function versionFor(want: string, speaks: readonly string[]): string {
  if (speaks.length === 0 || speaks.includes(want)) return want;
  const below = speaks.filter((v) => compareVersions(v, want) <= 0).sort(compareVersions);
  return below.at(-1) ?? want;
}

/**
 * Runs the IPAM plugin for `call`. ADD resolves with its addresses, routes and DNS; DEL and CHECK with
 * null. A failure rejects with a CniError carrying the plugin's own code and message.
 */
export async function runIpam(call: IpamCall): Promise<IpamResult | null> {
  const ipam = call.config['ipam'] as { type: string };
  const file = findPlugin(ipam.type, call.path);
  const want = String(call.config['cniVersion']);
  const version = versionFor(want, await pluginVersions(file));
  const env: NodeJS.ProcessEnv = {
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: call.ifname,
    CNI_ARGS: call.args,
    CNI_PATH: call.path,
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin',
  };
  const r = await exec(file, env, JSON.stringify({ ...call.config, cniVersion: version }));
  const what = `IPAM ${ipam.type} ${call.command}`;
  if (r.code !== 0) {
    let code: number = CniCode.IoFailure;
    let msg = r.stderr.trim() || `exit status ${r.code}`;
    try {
      const e = JSON.parse(r.stdout) as { code?: unknown; msg?: unknown; details?: unknown };
      if (typeof e.code === 'number') code = e.code;
      if (typeof e.msg === 'string') msg = e.msg + (typeof e.details === 'string' && e.details !== '' ? ` (${e.details})` : '');
    } catch {
      /* not an error object: stderr says what happened */
    }
    throw new CniError(code, `${what}: ${msg}`);
  }
  if (call.command !== 'ADD') return null;
  let out: { ips?: unknown; routes?: unknown; dns?: unknown };
  try {
    out = JSON.parse(r.stdout) as typeof out;
  } catch {
    throw new CniError(CniCode.DecodeFailure, `${what}: its result is not JSON: ${r.stdout.slice(0, 200)}`);
  }
  if (!Array.isArray(out.ips) || out.ips.length === 0) throw new CniError(CniCode.IoFailure, `${what}: its result has no ips`);
  const ips: CniIp[] = [];
  for (const x of out.ips as Array<Record<string, unknown>>) {
    if (typeof x['address'] !== 'string') throw new CniError(CniCode.DecodeFailure, `${what}: an ip without an address`);
    ips.push({ address: x['address'], ...(typeof x['gateway'] === 'string' ? { gateway: x['gateway'] } : {}) });
  }
  const routes = Array.isArray(out.routes) ? (out.routes as CniRoute[]).filter((x) => typeof x?.dst === 'string') : [];
  const dns = typeof out.dns === 'object' && out.dns !== null ? (out.dns as CniDns) : {};
  return { ips, routes, dns };
}
