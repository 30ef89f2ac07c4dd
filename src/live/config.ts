/**
 * The node agent's configuration file (YAML; JSON is YAML too). `seine lab up` writes one per node; a
 * real node's is written by hand or by a deployment. Every mistake is refused with the file, the key and
 * what was expected:
 *
 * ```yaml
 * node:                            # * the node, as node/config.ts's NodeConfig (what `seine lab up` writes)
 *   name: node1
 *   mode: routed                   # routed | l2
 *   underlayIp: 172.18.0.2
 *   underlayMac: 02:02:00:00:00:01
 *   tunnel: { kind: vxlan, vni: 1, options: [], knownOptions: [], fragmentPolicy: outer, icmpTooBig: true, mssClamp: true, udpPort: null }
 *                                  # kind: vxlan | geneve | gre; gre also takes greKey: false (no key, 4-byte header)
 *   esp: null                      # or { cipher: aes-gcm-128, udpEncap: false, secret: { file: /etc/seine/secret } }
 *   gateway: { mac: 02:01:00:00:00:01, mtu: 1500, ipv4: 10.244.1.1/24, ipv6: null }
 *   pods: [{ name: a, mac: 02:00:00:01:00:01, mtu: 1450, ip4: 10.244.1.2, ip6: null, segment: 0, vni: null }]
 *   stack: { mac: 02:03:00:00:00:01, mtu: 1450 }      # the node's own stack, behind the gateway (routed)
 *   peers: [{ name: node2, underlayIp: 172.18.0.3, underlayMac: 02:02:00:00:00:02, podCIDRs: [10.244.2.0/24], vnis: [] }]
 *   vniSegments: []
 * netns: seine-lab-node1           # the node's network namespace (name or /proc/PID/ns/net); default: the agent's own
 * hostTap: seine-gw0               # the TAP of the node's own stack (default seine-gw0; routed mode)
 * defaultToHost: false            # what pods send beyond the overlay goes to the node's stack, which routes it
 *                                  # on (as antrea-gw0: the world, portmap's answers): a CNI node's setting; needs
 *                                  # node.stack. Default false: NoRoute, as in the simulator (datapath/gateway.ts)
 * pods:                            # where each pod's TAP lives: * one entry per pod of `node.pods`
 *   a: { netns: seine-lab-node1-a, ifname: eth0 }
 * peers: peers.yaml                # a file with the peer list (as node.peers), reread on SIGHUP; relative to this file
 * control: /run/seine/node1.sock   # * the control socket
 * metrics: 127.0.0.1:9464          # the Prometheus endpoint (host:port; port 0 picks one); default none
 * espJournal: /var/lib/seine/node1.journal   # ESP: keeps epochs and sequence numbers across restarts (optional:
 *                                  # each start has new keys anyway); relative to this file; one owner at a time
 * underlayMtu: 1500               # the underlay's MTU (what the tunnel's packets may be; default 1500)
 * offloads: true                  # super-frames: TSO/USO on the TAPs, UDP GSO/GRO on the tunnel sockets (default true)
 * buffers: 1024                    # packet buffers (default 1024 with offloads, of 64 KiB each; 4096 without)
 * cniState: /var/lib/seine/cni/node1   # where the CNI's attachments are kept (default /var/lib/seine/cni/NODE);
 *                                  # relative to this file
 * kubernetes:                      # peers from the Kubernetes API's Nodes too (live/k8s.ts; routed mode); default none
 *   kubeconfig: /etc/seine/kubeconfig   # relative to this file; default: in-cluster (the pod's service account)
 *   nodeName: node1                # this node's Node (never a peer); default node.name
 *   resyncSeconds: 300             # the peers handed over again from the informer's cache (default 300)
 *   retrySeconds: 5                # a failed list or watch is started again after this (default 5)
 * ```
 *
 * With `kubernetes` and `peers` (or `node.peers`) both, the agent's peers are both lists; a name in both
 * is taken from the file (it is the operator's word).
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { NodeConfig, NodePeerConfig } from '../node/config.js';
import { TUNNEL_KINDS } from '../overlay/template.js';
import { ipv4FromString, ipv6FromString, macFromString } from '../wire/bytes.js';
import { fsErrorText } from './fs.js';

export interface PodPlacement {
  netns: string;
  ifname: string;
}

export interface AgentConfig {
  /** The file it was read from (relative paths are relative to it). */
  file: string;
  node: NodeConfig;
  netns: string | null;
  hostTap: string;
  /** The gateway sends what is neither a pod's nor a peer's to the node's stack (Gateway.defaultToHost). */
  defaultToHost: boolean;
  pods: Record<string, PodPlacement>;
  /** The peer file (absolute), or null when the peers are `node.peers`. */
  peersFile: string | null;
  control: string;
  metrics: string | null;
  /** The ESP sequence journal's file (absolute), or null. */
  espJournal: string | null;
  underlayMtu: number;
  /** Super-frames end to end: TSO/USO on the TAPs (64 KiB buffers), UDP_SEGMENT/UDP_GRO on the tunnel's sockets. */
  offloads: boolean;
  buffers: number;
  /** The directory of the CNI's attachments (live/cni-state.ts), absolute. */
  cniState: string;
  /** Peers from the Kubernetes API (live/k8s.ts), or null. */
  kubernetes: KubeSourceConfig | null;
}

export interface KubeSourceConfig {
  /** A kubeconfig file (absolute), or null for in-cluster service-account credentials. */
  kubeconfig: string | null;
  /** This node's Node name. */
  nodeName: string;
  resyncSeconds: number;
  retrySeconds: number;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Files larger than this are not configuration files. */
const MAX_CONFIG_BYTES = 4 << 20;

type Obj = Record<string, unknown>;

class Checker {
  constructor(readonly file: string) {}
  fail(key: string, expected: string, got: unknown): never {
    const shown = got === undefined ? 'nothing' : (JSON.stringify(got)?.slice(0, 60) ?? String(got));
    throw new ConfigError(`${this.file}: ${key}: expected ${expected}, got ${shown}`);
  }
  obj(v: unknown, key: string, keys: readonly string[], required: readonly string[] = []): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(key, 'a mapping', v);
    for (const k of Object.keys(v))
      if (!keys.includes(k)) throw new ConfigError(`${this.file}: ${key ? `${key}.` : ''}${k}: unknown key (known: ${keys.join(', ')})`);
    for (const k of required) if (!(k in v)) throw new ConfigError(`${this.file}: ${key ? `${key}.` : ''}${k}: missing (required)`);
    return v as Obj;
  }
  str(v: unknown, key: string, what = 'a string'): string {
    if (typeof v !== 'string' || v === '') this.fail(key, what, v);
    return v;
  }
  int(v: unknown, key: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(key, `an integer ${min}-${max}`, v);
    return v;
  }
  bool(v: unknown, key: string): boolean {
    if (typeof v !== 'boolean') this.fail(key, 'true or false', v);
    return v;
  }
  arr(v: unknown, key: string): unknown[] {
    if (!Array.isArray(v)) this.fail(key, 'a list', v);
    return v;
  }
  oneOf<T extends string>(v: unknown, key: string, options: readonly T[]): T {
    if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) this.fail(key, `one of ${options.join(', ')}`, v);
    return v as T;
  }
  mac(v: unknown, key: string): string {
    if (typeof v !== 'string' || macFromString(v) === null) this.fail(key, 'a MAC like 02:00:00:00:00:01', v);
    return v;
  }
  ip(v: unknown, key: string, nullable = false): string | null {
    if (v === null && nullable) return null;
    if (typeof v !== 'string' || (ipv4FromString(v) === null && ipv6FromString(v) === null))
      this.fail(key, `an IPv4 or IPv6 address${nullable ? ' or null' : ''}`, v);
    return v;
  }
  prefix(v: unknown, key: string, nullable = false): string | null {
    if (v === null && nullable) return null;
    const s = typeof v === 'string' ? v.split('/') : [];
    if (s.length !== 2 || this.okIp(s[0]!) === false || !/^\d{1,3}$/.test(s[1]!))
      this.fail(key, `an address with a prefix length like 10.244.1.0/24${nullable ? ' or null' : ''}`, v);
    return v as string;
  }
  private okIp(s: string): boolean {
    return ipv4FromString(s) !== null || ipv6FromString(s) !== null;
  }
}

function readText(path: string, what: string): string {
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(path);
  } catch (e) {
    throw new ConfigError(`${path}: cannot read the ${what}: ${fsErrorText(e)}`);
  }
  if (!st.isFile()) throw new ConfigError(`${path}: the ${what} is not a regular file`);
  if (st.size > MAX_CONFIG_BYTES) throw new ConfigError(`${path}: the ${what} is ${st.size} bytes; a configuration file is at most ${MAX_CONFIG_BYTES}`);
  return readFileSync(path, 'utf8');
}

function parseDoc(text: string, file: string): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 100 }) as unknown;
  } catch (e) {
    throw new ConfigError(`${file}: not valid YAML: ${(e as Error).message.split('\n')[0]!.slice(0, 200)}`);
  }
}

function checkPeer(c: Checker, v: unknown, key: string): NodePeerConfig {
  const o = c.obj(v, key, ['name', 'underlayIp', 'underlayMac', 'podCIDRs', 'vnis'], ['name', 'underlayIp', 'underlayMac']);
  return {
    name: c.str(o['name'], `${key}.name`),
    underlayIp: c.ip(o['underlayIp'], `${key}.underlayIp`)!,
    underlayMac: c.mac(o['underlayMac'], `${key}.underlayMac`),
    podCIDRs: c.arr(o['podCIDRs'] ?? [], `${key}.podCIDRs`).map((x, i) => c.prefix(x, `${key}.podCIDRs[${i}]`)!),
    vnis: c.arr(o['vnis'] ?? [], `${key}.vnis`).map((x, i) => c.int(x, `${key}.vnis[${i}]`, 0, 0xff_ffff)),
  };
}

function checkPeers(c: Checker, v: unknown, key: string): NodePeerConfig[] {
  const peers = c.arr(v, key).map((p, i) => checkPeer(c, p, `${key}[${i}]`));
  const seen = new Set<string>();
  for (const [i, p] of peers.entries()) {
    if (seen.has(p.name)) throw new ConfigError(`${c.file}: ${key}[${i}].name: peer "${p.name}" is listed twice`);
    seen.add(p.name);
  }
  return peers;
}

function checkNode(c: Checker, v: unknown): NodeConfig {
  const o = c.obj(
    v,
    'node',
    ['name', 'mode', 'underlayIp', 'underlayMac', 'tunnel', 'esp', 'gateway', 'pods', 'stack', 'peers', 'vniSegments'],
    ['name', 'mode', 'underlayIp', 'underlayMac', 'tunnel', 'pods'],
  );
  const t = c.obj(
    o['tunnel'],
    'node.tunnel',
    ['kind', 'vni', 'options', 'knownOptions', 'fragmentPolicy', 'icmpTooBig', 'mssClamp', 'udpPort', 'greKey'],
    ['kind'],
  );
  const mode = c.oneOf(o['mode'], 'node.mode', ['routed', 'l2'] as const);
  let esp: NodeConfig['esp'] = null;
  if (o['esp'] !== undefined && o['esp'] !== null) {
    const e = c.obj(o['esp'], 'node.esp', ['cipher', 'udpEncap', 'secret'], ['cipher', 'secret']);
    const s = c.obj(e['secret'], 'node.esp.secret', ['passphrase', 'file', 'allowGroupRead', 'env']);
    let secret: NonNullable<NodeConfig['esp']>['secret'];
    if (typeof s['passphrase'] === 'string') secret = { passphrase: s['passphrase'] };
    else if (typeof s['file'] === 'string')
      secret = { file: resolve(dirname(c.file), s['file']), ...(s['allowGroupRead'] === true ? { allowGroupRead: true } : {}) };
    else if (typeof s['env'] === 'string') secret = { env: s['env'] };
    else c.fail('node.esp.secret', 'one of { passphrase: TEXT }, { file: PATH }, { env: NAME }', s);
    esp = {
      cipher: c.oneOf(e['cipher'], 'node.esp.cipher', ['aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'] as const),
      udpEncap: e['udpEncap'] === undefined ? false : c.bool(e['udpEncap'], 'node.esp.udpEncap'),
      secret,
    };
  }
  let gateway: NodeConfig['gateway'] = null;
  if (o['gateway'] !== undefined && o['gateway'] !== null) {
    const g = c.obj(o['gateway'], 'node.gateway', ['mac', 'mtu', 'ipv4', 'ipv6'], ['mac']);
    gateway = {
      mac: c.mac(g['mac'], 'node.gateway.mac'),
      mtu: g['mtu'] === undefined ? 1500 : c.int(g['mtu'], 'node.gateway.mtu', 576, 65535),
      ipv4: c.prefix(g['ipv4'] ?? null, 'node.gateway.ipv4', true),
      ipv6: c.prefix(g['ipv6'] ?? null, 'node.gateway.ipv6', true),
    };
  }
  if ((gateway !== null) !== (mode === 'routed'))
    throw new ConfigError(`${c.file}: node.gateway: ${mode === 'routed' ? 'routed mode needs a gateway' : 'l2 mode has no gateway'}`);
  const pods = c.arr(o['pods'], 'node.pods').map((pv, i) => {
    const k = `node.pods[${i}]`;
    const p = c.obj(pv, k, ['name', 'mac', 'mtu', 'ip4', 'ip6', 'segment', 'vni'], ['name', 'mac', 'mtu']);
    return {
      name: c.str(p['name'], `${k}.name`),
      mac: c.mac(p['mac'], `${k}.mac`),
      mtu: c.int(p['mtu'], `${k}.mtu`, 576, 65535),
      ip4: c.ip(p['ip4'] ?? null, `${k}.ip4`, true),
      ip6: c.ip(p['ip6'] ?? null, `${k}.ip6`, true),
      segment: p['segment'] === undefined ? 0 : c.int(p['segment'], `${k}.segment`, 0, 4094),
      vni: p['vni'] === undefined || p['vni'] === null ? null : c.int(p['vni'], `${k}.vni`, 0, 0xff_ffff),
    };
  });
  let stack: NodeConfig['stack'] = null;
  if (o['stack'] !== undefined && o['stack'] !== null) {
    const s = c.obj(o['stack'], 'node.stack', ['mac', 'mtu'], ['mac', 'mtu']);
    stack = { mac: c.mac(s['mac'], 'node.stack.mac'), mtu: c.int(s['mtu'], 'node.stack.mtu', 576, 65535) };
  }
  const opts = c.arr(t['options'] ?? [], 'node.tunnel.options').map((x, i) => {
    const q = c.obj(x, `node.tunnel.options[${i}]`, ['class', 'type', 'data'], ['class', 'type', 'data']);
    const data = c.str(q['data'], `node.tunnel.options[${i}].data`, 'hex, a multiple of 4 bytes');
    if (!/^([0-9a-fA-F]{8})*$/.test(data)) c.fail(`node.tunnel.options[${i}].data`, 'hex, a multiple of 4 bytes', data);
    return { class: c.int(q['class'], `node.tunnel.options[${i}].class`, 0, 0xffff), type: c.int(q['type'], `node.tunnel.options[${i}].type`, 0, 0xff), data };
  });
  return {
    name: c.str(o['name'], 'node.name'),
    mode,
    underlayIp: c.ip(o['underlayIp'], 'node.underlayIp')!,
    underlayMac: c.mac(o['underlayMac'], 'node.underlayMac'),
    tunnel: {
      kind: c.oneOf(t['kind'], 'node.tunnel.kind', TUNNEL_KINDS),
      vni: t['vni'] === undefined ? 1 : c.int(t['vni'], 'node.tunnel.vni', 0, 0xff_ffff),
      options: opts,
      knownOptions: c.arr(t['knownOptions'] ?? opts.map((x) => ({ class: x.class, type: x.type })), 'node.tunnel.knownOptions').map((x, i) => {
        const q = c.obj(x, `node.tunnel.knownOptions[${i}]`, ['class', 'type'], ['class', 'type']);
        return {
          class: c.int(q['class'], `node.tunnel.knownOptions[${i}].class`, 0, 0xffff),
          type: c.int(q['type'], `node.tunnel.knownOptions[${i}].type`, 0, 0xff),
        };
      }),
      fragmentPolicy:
        t['fragmentPolicy'] === undefined ? 'outer' : c.oneOf(t['fragmentPolicy'], 'node.tunnel.fragmentPolicy', ['outer', 'inner', 'drop'] as const),
      icmpTooBig: t['icmpTooBig'] === undefined ? true : c.bool(t['icmpTooBig'], 'node.tunnel.icmpTooBig'),
      mssClamp: t['mssClamp'] === undefined ? true : c.bool(t['mssClamp'], 'node.tunnel.mssClamp'),
      udpPort: t['udpPort'] === undefined || t['udpPort'] === null ? null : c.int(t['udpPort'], 'node.tunnel.udpPort', 1, 65535),
      ...(t['greKey'] === undefined ? {} : { greKey: c.bool(t['greKey'], 'node.tunnel.greKey') }),
    },
    esp,
    gateway,
    pods,
    stack,
    peers: checkPeers(c, o['peers'] ?? [], 'node.peers'),
    vniSegments: c.arr(o['vniSegments'] ?? [], 'node.vniSegments').map((x, i) => {
      const q = c.obj(x, `node.vniSegments[${i}]`, ['vni', 'segment'], ['vni', 'segment']);
      return { vni: c.int(q['vni'], `node.vniSegments[${i}].vni`, 0, 0xff_ffff), segment: c.int(q['segment'], `node.vniSegments[${i}].segment`, 0, 4094) };
    }),
  };
}

function checkKube(c: Checker, v: unknown, node: NodeConfig): KubeSourceConfig {
  const k = c.obj(v, 'kubernetes', ['kubeconfig', 'nodeName', 'resyncSeconds', 'retrySeconds']);
  // A Node gives a podCIDR to route and an address to tunnel to: nothing an l2 segment's flooding uses.
  if (node.mode !== 'routed') throw new ConfigError(`${c.file}: kubernetes: peers from Nodes need node.mode routed (l2 peers share VNIs, not podCIDRs)`);
  let kubeconfig: string | null = null;
  if (k['kubeconfig'] !== undefined && k['kubeconfig'] !== null) {
    kubeconfig = resolve(dirname(c.file), c.str(k['kubeconfig'], 'kubernetes.kubeconfig', 'a file name'));
    let isFile = false;
    try {
      isFile = statSync(kubeconfig).isFile();
    } catch {}
    if (!isFile) throw new ConfigError(`${c.file}: kubernetes.kubeconfig: ${kubeconfig} is not a readable file`);
  }
  return {
    kubeconfig,
    nodeName: k['nodeName'] === undefined ? node.name : c.str(k['nodeName'], 'kubernetes.nodeName'),
    resyncSeconds: k['resyncSeconds'] === undefined ? 300 : c.int(k['resyncSeconds'], 'kubernetes.resyncSeconds', 1, 86400),
    retrySeconds: k['retrySeconds'] === undefined ? 5 : c.int(k['retrySeconds'], 'kubernetes.retrySeconds', 1, 3600),
  };
}

/** Parses an agent configuration (`file` names it in errors and anchors relative paths). */
export function parseAgentConfig(text: string, file: string): AgentConfig {
  const c = new Checker(file);
  const o = c.obj(
    parseDoc(text, file),
    '',
    [
      'node',
      'netns',
      'hostTap',
      'defaultToHost',
      'pods',
      'peers',
      'control',
      'metrics',
      'espJournal',
      'underlayMtu',
      'offloads',
      'buffers',
      'cniState',
      'kubernetes',
    ],
    ['node', 'control'],
  );
  const offloads = o['offloads'] === undefined ? true : c.bool(o['offloads'], 'offloads');
  const node = checkNode(c, o['node']);
  const podsIn =
    o['pods'] === undefined
      ? {}
      : c.obj(
          o['pods'],
          'pods',
          node.pods.map((p) => p.name),
        );
  const pods: Record<string, PodPlacement> = {};
  for (const p of node.pods) {
    const v = podsIn[p.name];
    if (v === undefined) throw new ConfigError(`${file}: pods.${p.name}: missing: every pod of node.pods needs { netns, ifname }`);
    const q = c.obj(v, `pods.${p.name}`, ['netns', 'ifname'], ['netns']);
    const ifname = q['ifname'] === undefined ? 'eth0' : c.str(q['ifname'], `pods.${p.name}.ifname`);
    if (ifname.length > 15 || /[\s/]/.test(ifname)) c.fail(`pods.${p.name}.ifname`, 'an interface name (at most 15 characters, no space or /)', ifname);
    pods[p.name] = { netns: c.str(q['netns'], `pods.${p.name}.netns`), ifname };
  }
  const hostTap = o['hostTap'] === undefined ? 'seine-gw0' : c.str(o['hostTap'], 'hostTap');
  if (hostTap.length > 15) c.fail('hostTap', 'an interface name of at most 15 characters', hostTap);
  const defaultToHost = o['defaultToHost'] === undefined ? false : c.bool(o['defaultToHost'], 'defaultToHost');
  // The stack is where such packets go: without one there is nothing to hand them to.
  if (defaultToHost && node.stack === null)
    throw new ConfigError(`${file}: defaultToHost: needs node.stack (the node's own stack routes what the overlay does not carry)`);
  const peersFile = o['peers'] === undefined ? null : resolve(dirname(file), c.str(o['peers'], 'peers', 'a file name'));
  const cfg: AgentConfig = {
    file,
    node,
    netns: o['netns'] === undefined || o['netns'] === null ? null : c.str(o['netns'], 'netns'),
    hostTap,
    defaultToHost,
    pods,
    peersFile,
    control: resolve(dirname(file), c.str(o['control'], 'control', 'a socket path')),
    metrics: o['metrics'] === undefined || o['metrics'] === null ? null : c.str(o['metrics'], 'metrics', 'host:port'),
    espJournal: o['espJournal'] === undefined || o['espJournal'] === null ? null : resolve(dirname(file), c.str(o['espJournal'], 'espJournal', 'a file name')),
    underlayMtu: o['underlayMtu'] === undefined ? 1500 : c.int(o['underlayMtu'], 'underlayMtu', 576, 65535),
    offloads,
    // With offloads a buffer holds a 64 KiB super-frame: fewer of them (1024 × 64 KiB is 66 MiB).
    buffers: o['buffers'] === undefined ? (offloads ? 1024 : 4096) : c.int(o['buffers'], 'buffers', 256, 1 << 20),
    cniState: o['cniState'] === undefined ? `/var/lib/seine/cni/${node.name}` : resolve(dirname(file), c.str(o['cniState'], 'cniState', 'a directory name')),
    kubernetes: o['kubernetes'] === undefined || o['kubernetes'] === null ? null : checkKube(c, o['kubernetes'], node),
  };
  if (peersFile !== null) cfg.node = { ...node, peers: loadPeers(peersFile, node.name) };
  return cfg;
}

export function loadAgentConfig(path: string): AgentConfig {
  return parseAgentConfig(readText(path, 'agent configuration'), path);
}

/** Reads a peer file: a list of peers (as `node.peers`); an entry for `self` is skipped (one file may serve every node). */
export function loadPeers(path: string, self: string): NodePeerConfig[] {
  const c = new Checker(path);
  const doc = parseDoc(readText(path, 'peer file'), path);
  const list = doc !== null && typeof doc === 'object' && !Array.isArray(doc) && 'peers' in doc ? (doc as Obj)['peers'] : doc;
  return checkPeers(c, list, 'peers').filter((p) => p.name !== self);
}
