/**
 * A CNI lab for live tests and the bench: node namespaces joined by an underlay bridge, one seine agent
 * per node (routed VXLAN, a stack of the node's own, no pods: the CNI brings them), each node's plugin and
 * conflist written by `seine install-cni` into the rig's directory, host-local's addresses kept there
 * too — and the plugin driven exactly as a runtime drives it (CNI_* variables and stdin).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { controlRequest } from '../../src/live/control.js';
import type { NodeConfig, NodePeerConfig } from '../../src/node/config.js';
import { agentConfigDoc, MAIN_JS, type Rig, type RigProcess, requireNative, tail, waitFor } from '../live/rig.js';

export const CNI_BIN = '/usr/lib/cni';

export interface CniNode {
  name: string;
  ns: string;
  /** 10.244.<i>.0/24, gateway .1 */
  podCIDR: string;
  gateway: string;
  underlayIp: string;
  control: string;
  config: string;
  cniState: string;
  /** host-local's dataDir for this node. */
  ipamDir: string;
  /** The directories `install-cni` wrote to. */
  binDir: string;
  confDir: string;
  agent: RigProcess | null;
}

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, or null. */
  json: Record<string, unknown> | null;
}

/** Runs `argv` with `stdin` and `env` (added to PATH only), inside `ns` when given. */
export function execWith(
  argv: readonly string[],
  env: Record<string, string>,
  stdin: string,
  ns: string | null = null,
  timeoutMs = 60_000,
): Promise<PluginRun> {
  const full = ns === null ? [...argv] : ['ip', 'netns', 'exec', ns, ...argv];
  return new Promise((res) => {
    const child = spawn(full[0]!, full.slice(1), {
      env: { PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.stdin.on('error', () => {});
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: Record<string, unknown> | null = null;
      try {
        json = JSON.parse(stdout) as Record<string, unknown>;
      } catch {
        /* none */
      }
      res({ code: code ?? 128, stdout, stderr, json });
    });
    child.stdin.end(stdin);
  });
}

/** A routed VXLAN node for the CNI: gateway 10.244.<i>.1/24, a stack of its own, no pods. */
export function cniNodeConfig(i: number, peers: NodePeerConfig[]): NodeConfig {
  return {
    name: `node${i}`,
    mode: 'routed',
    underlayIp: `172.31.0.${i}`,
    underlayMac: `02:02:00:00:00:0${i}`,
    tunnel: { kind: 'vxlan', vni: 1, options: [], knownOptions: [], fragmentPolicy: 'outer', icmpTooBig: true, mssClamp: true, udpPort: null },
    esp: null,
    gateway: { mac: `02:01:00:00:00:0${i}`, mtu: 1500, ipv4: `10.244.${i}.1/24`, ipv6: null },
    pods: [],
    stack: { mac: `02:03:00:00:00:0${i}`, mtu: 1450 },
    peers,
    vniSegments: [],
  };
}

/**
 * Brings up `count` CNI nodes (namespaces `node<i>` joined by a bridge in namespace `under`), their agents
 * and their installed plugins.
 */
export async function cniLab(rig: Rig, count: number): Promise<CniNode[]> {
  requireNative();
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: npm run build`);
  const under = await rig.addNetns('under');
  await rig.run(under, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  await rig.run(under, ['ip', 'link', 'set', 'br0', 'up']);
  const nodes: CniNode[] = [];
  for (let i = 1; i <= count; i++) {
    const ns = await rig.addNetns(`node${i}`);
    await rig.veth({ ns, name: 'eth0' }, { ns: under, name: `n${i}` }, 1500);
    await rig.run(under, ['ip', 'link', 'set', `n${i}`, 'master', 'br0']);
    await rig.run(ns, ['ip', 'addr', 'add', `172.31.0.${i}/24`, 'dev', 'eth0']);
    // A node routes for its pods (a Kubernetes node does: kubelet and kube-proxy need it too).
    await rig.run(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    const dir = join(rig.dir, `node${i}`);
    nodes.push({
      name: `node${i}`,
      ns,
      podCIDR: `10.244.${i}.0/24`,
      gateway: `10.244.${i}.1`,
      underlayIp: `172.31.0.${i}`,
      control: join(dir, 'agent.sock'),
      config: join(dir, 'agent.yaml'),
      cniState: join(dir, 'cni-state'),
      ipamDir: join(dir, 'ipam'),
      binDir: join(dir, 'bin'),
      confDir: join(dir, 'net.d'),
      agent: null,
    });
  }
  for (const [k, n] of nodes.entries()) {
    const peers = nodes
      .filter((m) => m !== n)
      .map((m) => ({ name: m.name, underlayIp: m.underlayIp, underlayMac: `02:02:00:00:00:0${nodes.indexOf(m) + 1}`, podCIDRs: [m.podCIDR], vnis: [] }));
    const doc = { ...agentConfigDoc({ ns: n.ns, node: cniNodeConfig(k + 1, peers), pods: {} }, n.control), cniState: n.cniState, defaultToHost: true };
    await rig.run(null, ['mkdir', '-p', join(rig.dir, n.name)]);
    writeFileSync(n.config, `# written by test/cni/rig.ts\n${stringify(doc)}`);
    const r = await execWith(
      [
        process.execPath,
        MAIN_JS,
        'install-cni',
        '--config',
        n.config,
        '--bin-dir',
        n.binDir,
        '--conf-dir',
        n.confDir,
        '--ipam-data-dir',
        n.ipamDir,
        '--name',
        `seine-${rig.tag}`,
      ],
      {},
      '',
    );
    if (r.code !== 0) throw new Error(`install-cni: ${r.stderr}`);
    await startCniAgent(rig, n);
  }
  return nodes;
}

/** Starts (or restarts) a node's agent and waits for its control socket. */
export async function startCniAgent(rig: Rig, n: CniNode): Promise<void> {
  const proc = rig.spawn(n.ns, `agent-${n.name}`, [process.execPath, MAIN_JS, 'agent', '--config', n.config]);
  n.agent = proc;
  try {
    await waitFor(
      `the agent of ${n.name}`,
      async () => {
        if (!proc.alive) throw new Error(`the agent of ${n.name} exited`);
        if (!existsSync(n.control)) return undefined;
        return controlRequest(n.control, { op: 'status' }, 1000);
      },
      20_000,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- ${proc.log} ---\n${tail(proc.log)}`);
  }
}

/** The network configuration of the node's installed conflist, as a runtime hands one plugin: the list's version and name, seine's entry. */
export function seineNetConf(n: CniNode, over: Record<string, unknown> = {}): Record<string, unknown> {
  const list = JSON.parse(readFileSync(join(n.confDir, '10-seine.conflist'), 'utf8')) as {
    cniVersion: string;
    name: string;
    plugins: Array<Record<string, unknown>>;
  };
  return { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0]!, ...over };
}

export interface CniCall {
  command: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
}

/** Runs the node's installed plugin (the launcher install-cni wrote) as a runtime does. */
export function cni(n: CniNode, call: CniCall, conf: Record<string, unknown> | string): Promise<PluginRun> {
  const env: Record<string, string> = { CNI_COMMAND: call.command };
  if (call.containerId !== undefined) env['CNI_CONTAINERID'] = call.containerId;
  if (call.netns !== undefined) env['CNI_NETNS'] = call.netns;
  if (call.ifname !== undefined) env['CNI_IFNAME'] = call.ifname;
  if (call.args !== undefined) env['CNI_ARGS'] = call.args;
  env['CNI_PATH'] = call.path ?? `${n.binDir}:${CNI_BIN}`;
  return execWith([join(n.binDir, 'seine')], env, typeof conf === 'string' ? conf : JSON.stringify(conf));
}

/** The addresses host-local holds for the node's network (its files named by address). */
export function allocated(n: CniNode, network: string): string[] {
  const d = join(n.ipamDir, network);
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f))
    .sort();
}
