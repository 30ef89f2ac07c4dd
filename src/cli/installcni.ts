/**
 * `seine install-cni`: puts the CNI plugin where a container runtime looks for it — an executable `seine`
 * in the bin dir (a launcher that execs this Node on the built plugin, dist/src/cni/main.cjs: cni/bundle.ts) and
 * `10-seine.conflist` in the conf dir: seine with host-local IPAM over the node's podCIDR (the gateway's
 * first address kept out of the pool), then portmap for published ports. Both files are written through
 * a temporary file and a rename, so a runtime never reads half of one.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PLUGIN_BUNDLE } from '../cni/bundle.js';
import { FileWriteError, writeFileAtomic } from '../live/fs.js';
import { mask4, parsePrefix } from '../wire/addr.js';
import { ipv4ToString } from '../wire/bytes.js';
import { type Args, CliError, type Command, helpHint } from './command.js';

export const INSTALL_CNI: Command = {
  name: 'install-cni',
  operands: '',
  live: true,
  summary: 'Install the CNI plugin `seine` and 10-seine.conflist (host-local IPAM over the podCIDR, portmap chained).',
  about: `Writes the CNI plugin \`seine\` into the bin dir and 10-seine.conflist (seine with host-local IPAM over
the node's podCIDR, then portmap) into the conf dir. Give --config FILE (the node agent's configuration)
or --pod-cidr CIDR.`,
  options: {
    config: { type: 'string', arg: 'FILE', help: "the node agent's configuration: its gateway's podCIDR and control socket" },
    'pod-cidr': { type: 'string', arg: 'CIDR', help: "the node's IPv4 podCIDR (instead of --config), e.g. 10.244.1.0/24" },
    'agent-socket': { type: 'string', arg: 'PATH', help: "the agent's control socket (default: the config's, else /run/seine/agent.sock)" },
    'bin-dir': { type: 'string', arg: 'DIR', help: 'where the plugin goes (default /opt/cni/bin)' },
    'conf-dir': { type: 'string', arg: 'DIR', help: 'where the conflist goes (default /etc/cni/net.d)' },
    name: { type: 'string', arg: 'NAME', help: "the network's name (default seine)" },
    'cni-version': { type: 'string', arg: 'V', help: "the conflist's cniVersion (default 1.0.0: what the reference plugins speak)" },
    'ipam-data-dir': { type: 'string', arg: 'DIR', help: "host-local's dataDir (default its own, /var/lib/cni/networks)" },
  },
  run: (a) => installCniCommand(a),
};

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * `file` replaced whole with `mode` (exactly: the launcher must be executable whatever the umask). No
 * fsync: install-cni runs at every agent start (the DaemonSet's init container) and writes them again.
 */
function writeAtomic(file: string, text: string, mode: number): void {
  try {
    writeFileAtomic(file, text, { mode });
  } catch (e) {
    if (e instanceof FileWriteError) throw new CliError(`install-cni: ${e.message}`);
    throw e;
  }
}

export interface ConflistOptions {
  name: string;
  cniVersion: string;
  podCIDR: string;
  agentSocket: string;
  ipamDataDir?: string;
}

/** The conflist `install-cni` writes (also what the tests and the bench run podman and the plugin with). */
function seineConflist(o: ConflistOptions): Record<string, unknown> {
  const p = parsePrefix(o.podCIDR, 'podCIDR');
  if (p.family !== 4) throw new CliError(`install-cni: --pod-cidr ${o.podCIDR}: an IPv4 podCIDR is needed`);
  const net = (p.addr & mask4(p.len)) >>> 0;
  return {
    cniVersion: o.cniVersion,
    name: o.name,
    plugins: [
      {
        type: 'seine',
        agentSocket: o.agentSocket,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: `${ipv4ToString(net)}/${p.len}`, gateway: ipv4ToString(net + 1) }]],
          ...(o.ipamDataDir !== undefined ? { dataDir: o.ipamDataDir } : {}),
        },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/** The launcher: a shell script that execs this Node on the plugin entry (the runtime execs it by name). */
function launcherScript(node = process.execPath, entry = PLUGIN_BUNDLE): string {
  return `#!/bin/sh\n# The seine CNI plugin, written by \`seine install-cni\`.\nexec ${shellQuote(node)} ${shellQuote(entry)} "$@"\n`;
}

async function installCniCommand(a: Args): Promise<number> {
  if (a.operands.length > 0) throw new CliError(`install-cni: no operands (got '${a.operands[0]}'; ${helpHint('install-cni')})`);
  const str = (k: string): string | undefined => a.str(k);
  let podCIDR = str('pod-cidr');
  let agentSocket = str('agent-socket');
  const cfgFile = str('config');
  if (cfgFile !== undefined) {
    // The agent's configuration loader brings YAML along: only this command pays for it, not the plugin.
    const { loadAgentConfig } = await import('../live/config.js');
    let cfg: Awaited<ReturnType<typeof loadAgentConfig>>;
    try {
      cfg = loadAgentConfig(resolve(cfgFile));
    } catch (e) {
      throw new CliError(`install-cni: ${(e as Error).message}`);
    }
    const g = cfg.node.gateway?.ipv4 ?? null;
    if (g === null) throw new CliError(`install-cni: ${cfgFile}: node.gateway.ipv4 is needed (a routed node's IPv4 podCIDR)`);
    podCIDR ??= g;
    agentSocket ??= cfg.control;
  }
  if (podCIDR === undefined) throw new CliError('install-cni: give --config FILE or --pod-cidr CIDR (see seine install-cni --help)');
  const cniVersion = str('cni-version') ?? '1.0.0';
  if (!['0.4.0', '1.0.0', '1.1.0'].includes(cniVersion)) throw new CliError(`install-cni: --cni-version: 0.4.0, 1.0.0 or 1.1.0, got "${cniVersion}"`);
  let conflist: Record<string, unknown>;
  try {
    const dataDir = str('ipam-data-dir');
    conflist = seineConflist({
      name: str('name') ?? 'seine',
      cniVersion,
      podCIDR,
      agentSocket: resolve(agentSocket ?? '/run/seine/agent.sock'),
      ...(dataDir !== undefined ? { ipamDataDir: resolve(dataDir) } : {}),
    });
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`install-cni: --pod-cidr: ${(e as Error).message}`);
  }
  // A launcher pointing at nothing would fail every pod start: a tree built without the bundle step is refused now.
  if (!existsSync(PLUGIN_BUNDLE)) throw new CliError(`install-cni: ${PLUGIN_BUNDLE} is missing (npm run build writes it)`);
  const binDir = resolve(str('bin-dir') ?? '/opt/cni/bin');
  const confDir = resolve(str('conf-dir') ?? '/etc/cni/net.d');
  mkdirSync(binDir, { recursive: true, mode: 0o755 });
  mkdirSync(confDir, { recursive: true, mode: 0o755 });
  const plugin = join(binDir, 'seine');
  const list = join(confDir, '10-seine.conflist');
  writeAtomic(plugin, launcherScript(), 0o755);
  writeAtomic(list, `${JSON.stringify(conflist, null, 2)}\n`, 0o644);
  process.stdout.write(`wrote ${plugin}\nwrote ${list}\n`);
  return 0;
}
