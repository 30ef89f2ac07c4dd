/**
 * This node's own part of the agent configuration, from its Node object: a DaemonSet has one ConfigMap
 * for every node, but each agent needs its node's name, underlay address and podCIDR (the gateway holds
 * its first address). `seine k8s-config` reads the Node named by the pod's NODE_NAME (the downward API's
 * spec.nodeName), fills the ConfigMap's template with it and writes the agent's configuration, which
 * `seine install-cni --config` and `seine agent --config` then read (deploy/daemonset.yaml).
 *
 * The template is an agent configuration (live/config.ts) whose `node` lacks what the Node gives:
 * `name`, `underlayIp`, the gateway's addresses (and MACs, when the template leaves them out). What
 * the template does give is kept; the result must pass the agent's own loader before it is written.
 */
import type { V1Node } from '@kubernetes/client-node';
import { mask4, parsePrefix } from '../wire/addr.js';
import { ipv4FromString, ipv4ToString, ipv6FromString, ipv6ToString, macToString } from '../wire/bytes.js';
import { ConfigError } from './config.js';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first address of a prefix with its length ("10.244.1.0/24" → "10.244.1.1/24"): the gateway's. */
export function gatewayOf(cidr: string): string {
  const p = parsePrefix(cidr, 'podCIDR');
  if (p.family === 4) return `${ipv4ToString(((p.addr & mask4(p.len)) >>> 0) + 1)}/${p.len}`;
  const a = new Uint8Array(ipv6FromString(cidr.split('/')[0]!)!);
  // Clear the host bits, then add one.
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, p.len - 8 * i));
    a[i] = a[i]! & ((0xff00 >> keep) & 0xff);
  }
  a[15] = a[15]! | 1;
  return `${ipv6ToString(a)}/${p.len}`;
}

/**
 * A locally administered MAC for a role on this node, from the node's IPv4 underlay address (or its
 * IPv6's last four bytes): unique per node without any state, stable across restarts.
 */
function roleMac(role: number, ip: string): string {
  const v4 = ipv4FromString(ip);
  const v6 = v4 === null ? ipv6FromString(ip)! : null;
  const low = v4 ?? ((v6![12]! << 24) | (v6![13]! << 16) | (v6![14]! << 8) | v6![15]!) >>> 0;
  return macToString(0x02_00_00_00_00_00 + role * 2 ** 32 + low);
}
// Roles as node/config.ts numbers them for labs: gateway 01, underlay uplink 02, the node's stack 03.
const GW = 0x01;
const UPLINK = 0x02;
const HOST = 0x03;

/**
 * A node's underlay MAC, as its own configuration gets it here and its peers (live/k8s.ts) write it. A
 * live agent's tunnel sockets hand datagrams to the kernel, which finds the next hop itself, so it never
 * reaches the wire; it keeps the VTEP table and the agent's captures telling nodes apart.
 */
export function underlayMacFor(ip: string): string {
  return roleMac(UPLINK, ip);
}

/**
 * The agent configuration for `node`, from `template` (a parsed agent configuration without the node's
 * own part; `file` names it in errors). Throws `ConfigError` when the Node cannot give what is missing
 * (no podCIDR yet, no InternalIP): the caller may wait and try again.
 */
export function nodeConfigFromTemplate(template: unknown, node: V1Node, file: string): Obj {
  if (!isObj(template)) throw new ConfigError(`${file}: expected a mapping (an agent configuration without the node's own part)`);
  const t = structuredClone(template);
  const n: Obj = isObj(t['node']) ? t['node'] : {};
  const name = node.metadata?.name;
  if (name === undefined || name === '') throw new ConfigError(`${file}: the Node has no metadata.name`);
  const internal = (node.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
  // An IPv4 underlay when the Node has one (the tunnel runs over one family), else its IPv6.
  const ip = internal.find((a) => ipv4FromString(a) !== null) ?? internal.find((a) => ipv6FromString(a) !== null);
  if (ip === undefined) throw new ConfigError(`${file}: Node ${name} has no InternalIP in status.addresses yet`);
  const spec = node.spec ?? {};
  const cidrs =
    spec.podCIDRs !== undefined && spec.podCIDRs.length > 0 ? spec.podCIDRs : spec.podCIDR !== undefined && spec.podCIDR !== '' ? [spec.podCIDR] : [];
  if (cidrs.length === 0)
    throw new ConfigError(`${file}: Node ${name} has no spec.podCIDR yet (the controller manager allocates them with --allocate-node-cidrs; kind does)`);
  const v4 = cidrs.find((c) => ipv4FromString(c.split('/')[0]!) !== null) ?? null;
  const v6 = cidrs.find((c) => ipv6FromString(c.split('/')[0]!) !== null) ?? null;
  n['name'] = name;
  n['mode'] ??= 'routed';
  n['underlayIp'] = ip;
  n['underlayMac'] ??= underlayMacFor(ip);
  const g: Obj = isObj(n['gateway']) ? n['gateway'] : {};
  g['mac'] ??= roleMac(GW, ip);
  g['ipv4'] = v4 === null ? null : gatewayOf(v4);
  g['ipv6'] = v6 === null ? null : gatewayOf(v6);
  n['gateway'] = g;
  if (isObj(n['stack'])) n['stack']['mac'] ??= roleMac(HOST, ip);
  n['pods'] ??= [];
  t['node'] = n;
  if (isObj(t['kubernetes'])) t['kubernetes']['nodeName'] = name;
  return t;
}
