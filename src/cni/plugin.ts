/**
 * The `seine` CNI plugin (type `seine`, CNI spec 1.1.0): parse, validate, ask the agent, print. The
 * container runtime runs it with `CNI_*` variables and the network configuration on stdin; it prints a
 * result (ADD), nothing (DEL, CHECK, GC, STATUS), the versions it speaks (VERSION), or an error object
 * `{cniVersion, code, msg, details}` with a non-zero exit.
 *
 * Everything about the pod is the agent's (live/cni-agent.ts); the plugin checks what the spec makes the
 * plugin's to check, so a runtime's mistake is told with the spec's code and names what is wrong:
 * 1 a cniVersion the plugin does not speak, 4 a missing or malformed `CNI_*` variable, 6 stdin that is not
 * JSON, 7 a configuration that is not seine's, 11 no agent to ask (the runtime tries again later), and
 * from STATUS 50 (no agent, or it cannot take pods) and 51 (it can, with limited connectivity).
 *
 * The network configuration's keys of seine's own: `agentSocket` (the agent's control socket; default
 * `/run/seine/agent.sock`) and `agentTimeoutMs`.
 */
import { askAgent, AgentUnreachable } from './client.js';
import { CNI_SPEC_VERSION, CNI_SUPPORTED_VERSIONS, CniCode, CniError, type CniReply, type CniRequest, type CniResult, resultFor } from '../live/cni-spec.js';

/** Where the agent listens when the configuration does not say. */
const DEFAULT_AGENT_SOCKET = '/run/seine/agent.sock';
/** How long the agent may take over one command (an ADD waits for IPAM, which waits on its lock). */
const DEFAULT_AGENT_TIMEOUT_MS = 60_000;

const COMMANDS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;
type Command = (typeof COMMANDS)[number];

/** The spec's rules for names (network names, container IDs). */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface PluginOutcome {
  stdout: string;
  code: number;
}

/** Asks the agent; the default talks to its socket. Tests may hand another. */
export type AgentAsk = (path: string, req: Record<string, unknown>, timeoutMs: number) => Promise<Record<string, unknown>>;

function ifnameProblem(v: string): string | null {
  if (v === '' || v.length > 15) return 'must be 1 to 15 characters';
  if (v === '.' || v === '..') return 'must not be . or ..';
  if (/[\s/:]/.test(v)) return 'must not hold a space, / or :';
  return null;
}

type Env = Record<string, string | undefined>;

interface Parsed {
  command: Command;
  config: Record<string, unknown>;
  version: string;
}

/** Parses and checks stdin's configuration (after VERSION, which takes any). */
function parseConfig(stdin: string, command: Command, onVersion: (v: string) => void): Parsed {
  let doc: unknown;
  try {
    doc = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(CniCode.DecodeFailure, `the network configuration on stdin is not JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new CniError(CniCode.DecodeFailure, 'the network configuration on stdin is not a JSON object');
  const config = doc as Record<string, unknown>;
  const v = config['cniVersion'];
  if (typeof v !== 'string') throw new CniError(CniCode.InvalidConfig, 'cniVersion: missing (a string such as "1.1.0")');
  if (!(CNI_SUPPORTED_VERSIONS as readonly string[]).includes(v))
    throw new CniError(CniCode.IncompatibleVersion, `cniVersion "${v}" is not supported (supported: ${CNI_SUPPORTED_VERSIONS.join(', ')})`);
  // From here on errors answer in the configuration's own version.
  onVersion(v);
  const bad = (key: string, what: string): never => {
    throw new CniError(CniCode.InvalidConfig, `${key}: ${what}`);
  };
  if (typeof config['name'] !== 'string' || !NAME_RE.test(config['name']))
    bad('name', 'must be a network name (letters, digits, _ . -, starting with a letter or digit)');
  if (config['type'] !== 'seine') bad('type', `must be "seine", got ${JSON.stringify(config['type'])}`);
  const ipam = config['ipam'];
  if (typeof ipam !== 'object' || ipam === null || Array.isArray(ipam) || typeof (ipam as { type?: unknown }).type !== 'string')
    bad('ipam', 'must be an object with the IPAM plugin\'s "type" (e.g. {"type": "host-local", "ranges": …})');
  const sock = config['agentSocket'];
  if (sock !== undefined && (typeof sock !== 'string' || !sock.startsWith('/'))) bad('agentSocket', 'must be an absolute path');
  const t = config['agentTimeoutMs'];
  if (t !== undefined && (typeof t !== 'number' || !Number.isInteger(t) || t < 100 || t > 600_000)) bad('agentTimeoutMs', 'must be an integer 100-600000');
  for (const k of ['runtimeConfig', 'prevResult', 'dns'])
    if (config[k] !== undefined && (typeof config[k] !== 'object' || config[k] === null || Array.isArray(config[k]))) bad(k, 'must be an object');
  if (command === 'GC') {
    for (const k of ['cni.dev/valid-attachments', 'cni.dev/attachments']) {
      const l = config[k];
      if (l === undefined) continue;
      if (!Array.isArray(l)) bad(k, 'must be a list of {containerID, ifname}');
      for (const [i, x] of (l as unknown[]).entries()) {
        const o = x as { containerID?: unknown; ifname?: unknown } | null;
        if (typeof o !== 'object' || o === null || typeof o.containerID !== 'string' || typeof o.ifname !== 'string')
          bad(`${k}[${i}]`, 'must be {"containerID": string, "ifname": string}');
      }
    }
  }
  return { command, config, version: v };
}

/** The `CNI_*` variables a command needs, checked (code 4 names the variable). */
function checkEnv(env: Env, command: Command): Pick<CniRequest, 'containerId' | 'netns' | 'ifname' | 'args' | 'path'> {
  const need = (k: string, required: boolean): string => {
    const v = env[k];
    if (v === undefined || v === '') {
      if (required) throw new CniError(CniCode.InvalidEnvironment, `${k} is missing: ${command} needs it`);
      return '';
    }
    return v;
  };
  const pod = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const containerId = need('CNI_CONTAINERID', pod);
  if (containerId !== '' && !NAME_RE.test(containerId))
    throw new CniError(CniCode.InvalidEnvironment, `CNI_CONTAINERID "${containerId}" is not a container ID (letters, digits, _ . -)`);
  const netns = need('CNI_NETNS', command === 'ADD' || command === 'CHECK');
  if (netns !== '' && !netns.startsWith('/')) throw new CniError(CniCode.InvalidEnvironment, `CNI_NETNS "${netns}" is not a path`);
  const ifname = need('CNI_IFNAME', pod);
  const p = ifname === '' ? null : ifnameProblem(ifname);
  if (p !== null) throw new CniError(CniCode.InvalidEnvironment, `CNI_IFNAME "${ifname}" ${p}`);
  const path = need('CNI_PATH', pod || command === 'GC');
  return { containerId, netns, ifname, args: env['CNI_ARGS'] ?? '', path };
}

/** Runs the plugin for one invocation: what to print on stdout and the exit status. */
export async function runPlugin(env: Env, stdin: string, ask: AgentAsk = askAgent): Promise<PluginOutcome> {
  let version = CNI_SPEC_VERSION;
  let command: Command | undefined;
  try {
    const c = env['CNI_COMMAND'];
    if (c === undefined || !(COMMANDS as readonly string[]).includes(c))
      throw new CniError(CniCode.InvalidEnvironment, `CNI_COMMAND ${c === undefined ? 'is missing' : `"${c}" is not a command`} (${COMMANDS.join(', ')})`);
    command = c as Command;
    if (command === 'VERSION') {
      // VERSION answers whatever it is given (an old runtime may send "0.1.0"): its own answer says what works.
      let asked: unknown;
      try {
        asked = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
      } catch {
        asked = undefined;
      }
      const cniVersion = typeof asked === 'string' && (CNI_SUPPORTED_VERSIONS as readonly string[]).includes(asked) ? asked : CNI_SPEC_VERSION;
      return { stdout: `${JSON.stringify({ cniVersion, supportedVersions: CNI_SUPPORTED_VERSIONS })}\n`, code: 0 };
    }
    const parsed = parseConfig(stdin, command, (v) => {
      version = v;
    });
    const req: CniRequest = { command, ...checkEnv(env, command), config: parsed.config };
    const sock = (parsed.config['agentSocket'] as string | undefined) ?? DEFAULT_AGENT_SOCKET;
    const timeoutMs = (parsed.config['agentTimeoutMs'] as number | undefined) ?? DEFAULT_AGENT_TIMEOUT_MS;
    let reply: Record<string, unknown>;
    try {
      reply = await ask(sock, { op: 'cni', ...req }, timeoutMs);
    } catch (e) {
      if (!(e instanceof AgentUnreachable)) throw e;
      // STATUS's own codes: the plugin cannot serve. Every other command: the runtime should try again.
      throw new CniError(command === 'STATUS' ? CniCode.NotAvailable : CniCode.TryAgainLater, e.message, `agentSocket ${sock}`);
    }
    if (reply['ok'] !== true) throw new CniError(CniCode.IoFailure, `the seine agent refused the request: ${String(reply['error'] ?? 'no reason given')}`);
    const r = reply as CniReply;
    if (r.cniError !== undefined) throw new CniError(r.cniError.code, r.cniError.msg, r.cniError.details ?? '');
    if (command !== 'ADD') return { stdout: '', code: 0 };
    if (r.result === undefined) throw new CniError(CniCode.IoFailure, 'the seine agent answered ADD without a result');
    return { stdout: `${JSON.stringify(resultFor(version, r.result as CniResult))}\n`, code: 0 };
  } catch (e) {
    const ce = e instanceof CniError ? e : new CniError(CniCode.IoFailure, e instanceof Error ? e.message : String(e));
    return { stdout: `${JSON.stringify(ce.toObject(version))}\n`, code: 1 };
  }
}
