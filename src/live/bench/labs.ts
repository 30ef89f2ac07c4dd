/**
 * `seine bench live`, the labs: one topology, three datapaths. The topology is a scenario (two nodes on
 * a 1500-byte underlay, one pod each, routed podCIDRs with a gateway per node, VXLAN VNI 1) planned by
 * live/lab/plan.ts and built by `labUp` — the underlay namespace and bridge, a namespace per node with
 * eth0 on it, an empty namespace per pod — so all three share namespaces, addresses, MACs and MTUs.
 * What differs is the node hook that fills a node in:
 *
 * - seine: a `seine agent` per node (cli/lab.ts's `bringUp`, as `seine lab up` does), TAPs in the pods;
 * - the kernel (`kernelNode`): Flannel's layout — the pod's veth in a Linux bridge holding the gateway
 *   address, IP forwarding, a `vxlan0` device (no learning) with a route per peer podCIDR through the
 *   peer's gateway address onlink, a permanent neighbour and a static fdb entry for it;
 * - Open vSwitch userspace (`ovsNode`): an ovsdb-server and an ovs-vswitchd per node, started inside the
 *   node's namespace with their own run/db/log directories; `br-phy` (datapath_type=netdev) holds eth0
 *   and, on its internal port, the node's underlay address, so OVS tunnels natively (its own route and
 *   neighbour tables); `br-int` (netdev) holds the pod's veth and one VXLAN port per peer, with
 *   Antrea-style flows: the gateway's ARP answered in OVS, IP routed by podCIDR (MACs rewritten, TTL
 *   decremented). Offloads are off on the veths (`ethtool -K … tx off`), as Antrea's kind scripts did
 *   for the netdev datapath.
 *
 * Every process is started with `lab.spawn` and every device lives in a lab namespace, so `labDown`
 * removes all of it whatever happened.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { delimiter } from 'node:path';
import type { NodeConfig } from '../../node/config.js';
import { parseScenario, type Scenario } from '../../scenario/scenario.js';
import { addAddress, ip, listLinks, run, runInNetns } from '../lab/netns.js';
import { sleep } from '../sleep.js';
import type { LabHandle, LabNodePlan, LabPlan } from '../lab/index.js';
import type { EspSetup } from './results.js';

/** The pods the measurements run between: client on the first node, server on the second. */
export const CLIENT_POD = 'client';
export const SERVER_POD = 'server';
export const VNI = 1;

/** The bench's topology as a scenario; with ESP (AES-GCM-128 or ChaCha20-Poly1305, ESP over IP) when asked. */
export function benchScenario(esp: EspSetup): Scenario {
  const text = `
name: bench-live
description: seine bench live — two nodes, one pod each, routed over VXLAN on a 1500-byte underlay.
seed: 1
duration: 1s
underlay:
  mtu: 1500
tunnel:
  type: vxlan
  mode: routed
  vni: ${VNI}
${esp === 'none' ? '' : `encryption:\n  cipher: ${esp}\n  udpEncap: false\n  secret: bench-live-secret\n`}nodes:
  - name: node1
    podCIDR: 10.244.1.0/24
    pods: [{ name: ${CLIENT_POD} }]
  - name: node2
    podCIDR: 10.244.2.0/24
    pods: [{ name: ${SERVER_POD} }]
`;
  return parseScenario(text, '<seine bench live>');
}

/** Where a program is on PATH (or in the sbin directories), or null. */
export function which(name: string): string | null {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (d !== '' && existsSync(join(d, name))) return join(d, name);
  }
  return null;
}

/** Open vSwitch's schema as Debian installs it. */
const OVS_SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';
const OVS_PROGRAMS = ['ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl', 'ovs-ofctl'];

/** Why the OVS lab cannot run here, or null when it can. */
export function ovsMissing(): string | null {
  const missing = OVS_PROGRAMS.filter((p) => which(p) === null);
  if (missing.length > 0) return `openvswitch-switch is not installed (${missing.join(', ')} not found): apt-get install openvswitch-switch`;
  if (!existsSync(OVS_SCHEMA)) return `openvswitch-switch's schema ${OVS_SCHEMA} is missing (reinstall openvswitch-switch)`;
  return null;
}

const sysctl = (ns: string, kv: string): Promise<unknown> => runInNetns(ns, ['sysctl', '-qw', kv]);
const ifname = (pod: string): string => `p-${pod}`.slice(0, 15);

/** Offloads off on a device, as Antrea's kind scripts did for OVS's netdev datapath (no ethtool: left on, said in `notes`). */
async function offloadsOff(ns: string, dev: string, notes: string[]): Promise<void> {
  if (which('ethtool') === null) {
    if (!notes.includes('ethtool missing')) notes.push('ethtool missing');
    return;
  }
  await runInNetns(ns, ['ethtool', '-K', dev, 'tx', 'off']);
}

/**
 * The pod's veth: `eth0` in the pod's namespace with the pod's MAC, address, MTU and default route via
 * the gateway (as the agent sets a TAP up), its peer `p-<pod>` in the node's namespace.
 */
async function podVeth(node: LabNodePlan, cfg: NodeConfig, j: number): Promise<string> {
  const p = node.pods[j]!,
    pc = cfg.pods[j]!;
  const dev = ifname(p.name);
  await ip(
    ['link', 'add', dev, 'mtu', String(p.mtu), 'type', 'veth', 'peer', 'name', p.ifname, 'mtu', String(p.mtu), 'address', pc.mac, 'netns', p.ns],
    node.ns,
  );
  const len = cfg.gateway?.ipv4?.split('/')[1] ?? '24';
  if (p.ip4 !== null) await addAddress(p.ns, p.ifname, `${p.ip4}/${len}`);
  await ip(['link', 'set', p.ifname, 'up'], p.ns);
  if (cfg.gateway?.ipv4 != null) await ip(['route', 'replace', 'default', 'via', cfg.gateway.ipv4.split('/')[0]!, 'dev', p.ifname], p.ns);
  return dev;
}

/** A VTEP MAC for the kernel's vxlan0 of node `i` (locally administered). */
const vtepMac = (i: number): string => `0e:be:00:00:00:${(i + 1).toString(16).padStart(2, '0')}`;

/** Fills in node `node` of the kernel lab (see the module comment). */
export async function kernelNode(plan: LabPlan, configs: readonly NodeConfig[], node: LabNodePlan): Promise<void> {
  const cfg = configs[node.index]!;
  const ns = node.ns;
  const g = cfg.gateway;
  if (g === null || g.ipv4 === null) throw new Error('the bench topology is routed over IPv4: the node needs a gateway address');
  await sysctl(ns, 'net.ipv4.ip_forward=1');
  await ip(['link', 'add', 'cni0', 'address', g.mac, 'type', 'bridge'], ns);
  await addAddress(ns, 'cni0', g.ipv4);
  await ip(['link', 'set', 'cni0', 'up'], ns);
  for (let j = 0; j < node.pods.length; j++) {
    const dev = await podVeth(node, cfg, j);
    await ip(['link', 'set', dev, 'master', 'cni0'], ns);
    await ip(['link', 'set', dev, 'up'], ns);
  }
  const mtu = node.pods[0]?.mtu ?? plan.underlay.mtu - 50;
  await ip(
    [
      'link',
      'add',
      'vxlan0',
      'mtu',
      String(mtu),
      'address',
      vtepMac(node.index),
      'type',
      'vxlan',
      'id',
      String(VNI),
      'local',
      node.underlayIp,
      'dev',
      node.uplink.dev,
      'dstport',
      '4789',
      'nolearning',
    ],
    ns,
  );
  await ip(['link', 'set', 'vxlan0', 'up'], ns);
  for (const peer of plan.nodes) {
    if (peer === node || peer.podCIDR4 === null || peer.gateway4 === null) continue;
    const via = peer.gateway4.split('/')[0]!;
    await ip(['neigh', 'replace', via, 'lladdr', vtepMac(peer.index), 'dev', 'vxlan0', 'nud', 'permanent'], ns);
    await ip(['route', 'replace', peer.podCIDR4, 'via', via, 'dev', 'vxlan0', 'onlink'], ns);
    await runInNetns(ns, ['bridge', 'fdb', 'append', vtepMac(peer.index), 'dev', 'vxlan0', 'dst', peer.underlayIp]);
  }
}

/** An OVS instance of one node: its directories and how to talk to it. */
export interface OvsInstance {
  dir: string;
  run: string;
  db: string;
  log: string;
  etc: string;
  sock: string;
  env: NodeJS.ProcessEnv;
}

function ovsInstance(labDir: string, node: string): OvsInstance {
  const dir = join(labDir, `ovs-${node}`);
  const run = join(dir, 'run'),
    db = join(dir, 'db'),
    log = join(dir, 'log'),
    etc = join(dir, 'etc');
  return {
    dir,
    run,
    db,
    log,
    etc,
    sock: join(run, 'db.sock'),
    env: { ...process.env, OVS_RUNDIR: run, OVS_DBDIR: db, OVS_LOGDIR: log, OVS_SYSCONFDIR: etc },
  };
}

/** Retries `f` every 100 ms for up to `ms`; the last error names `what`. */
async function retry<T>(what: string, ms: number, f: () => Promise<T>): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (e) {
      if (Date.now() > until) throw new Error(`${what}: ${(e as Error).message}`);
      await sleep(100);
    }
  }
}

const hexMac = (mac: string): string => `0x${mac.replace(/:/g, '')}`;
const hexIp4 = (a: string): string =>
  `0x${a
    .split('.')
    .map((x) => Number(x).toString(16).padStart(2, '0'))
    .join('')}`;

/** br-int's flows on one node (Antrea-style routing in OVS; see the module comment). */
function ovsFlows(
  plan: LabPlan,
  configs: readonly NodeConfig[],
  node: LabNodePlan,
  podPorts: readonly number[],
  peerPorts: ReadonlyMap<string, number>,
): string[] {
  const cfg = configs[node.index]!;
  const g = cfg.gateway!;
  const gwIp = g.ipv4!.split('/')[0]!;
  const flows = [
    // The gateway's ARP, answered in OVS: the request turned into a reply, sent back where it came from.
    `priority=200,arp,arp_op=1,arp_tpa=${gwIp},actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:${g.mac},load:0x2->NXM_OF_ARP_OP[],` +
      `move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],load:${hexMac(g.mac)}->NXM_NX_ARP_SHA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],load:${hexIp4(gwIp)}->NXM_OF_ARP_SPA[],in_port`,
  ];
  node.pods.forEach((p, j) => {
    if (p.ip4 !== null) flows.push(`priority=100,ip,nw_dst=${p.ip4},actions=mod_dl_src:${g.mac},mod_dl_dst:${cfg.pods[j]!.mac},dec_ttl,output:${podPorts[j]}`);
  });
  for (const peer of plan.nodes) {
    const port = peerPorts.get(peer.name);
    if (peer === node || port === undefined || peer.podCIDR4 === null) continue;
    flows.push(`priority=100,ip,nw_dst=${peer.podCIDR4},actions=mod_dl_src:${g.mac},mod_dl_dst:${configs[peer.index]!.gateway!.mac},dec_ttl,output:${port}`);
  }
  flows.push('priority=0,actions=drop');
  return flows;
}

/** Fills in node `node` of the OVS lab (see the module comment); `notes` collects what could not be done as asked. */
export async function ovsNode(plan: LabPlan, configs: readonly NodeConfig[], node: LabNodePlan, lab: LabHandle, notes: string[]): Promise<void> {
  const cfg = configs[node.index]!;
  const ns = node.ns;
  const o = ovsInstance(lab.dir, node.name);
  for (const d of [o.run, o.db, o.log, o.etc]) mkdirSync(d, { recursive: true });
  const conf = join(o.db, 'conf.db');
  await run(['ovsdb-tool', 'create', conf, OVS_SCHEMA]);
  lab
    .spawn(
      ns,
      [
        'ovsdb-server',
        conf,
        `--remote=punix:${o.sock}`,
        `--unixctl=${join(o.run, 'ovsdb-server.ctl')}`,
        `--pidfile=${join(o.run, 'ovsdb-server.pid')}`,
        `--log-file=${join(o.log, 'ovsdb-server.log')}`,
      ],
      { role: 'ovsdb-server', node: node.name, env: o.env },
    )
    .child.unref();
  const vsctl = (args: string[]): Promise<unknown> => run(['ovs-vsctl', `--db=unix:${o.sock}`, '--timeout=20', ...args], { timeoutMs: 25_000 });
  await retry(`ovsdb-server of ${node.name} did not answer on ${o.sock}`, 10_000, () => vsctl(['--no-wait', 'init']));
  lab
    .spawn(
      ns,
      [
        'ovs-vswitchd',
        `unix:${o.sock}`,
        `--unixctl=${join(o.run, 'ovs-vswitchd.ctl')}`,
        `--pidfile=${join(o.run, 'ovs-vswitchd.pid')}`,
        `--log-file=${join(o.log, 'ovs-vswitchd.log')}`,
      ],
      { role: 'ovs-vswitchd', node: node.name, env: o.env },
    )
    .child.unref();

  // br-phy takes eth0 and the node's underlay address (on its internal port): native tunnelling.
  const eth0 = (await listLinks(ns)).find((l) => l.ifname === node.uplink.dev);
  const hw = eth0?.address ?? null;
  await vsctl(['add-br', 'br-phy', '--', 'set', 'bridge', 'br-phy', 'datapath_type=netdev', ...(hw !== null ? [`other_config:hwaddr=${hw}`] : [])]);
  await vsctl(['add-port', 'br-phy', node.uplink.dev]);
  await offloadsOff(ns, node.uplink.dev, notes);
  await ip(['addr', 'flush', 'dev', node.uplink.dev], ns);
  await addAddress(ns, 'br-phy', node.address);
  await ip(['link', 'set', 'br-phy', 'mtu', String(node.uplink.mtu), 'up'], ns);
  for (const r of node.routes) await ip(['route', 'replace', r.dst, 'dev', 'br-phy'], ns);

  // br-int: the pods and a VXLAN port per peer, in secure fail mode (only our flows).
  await vsctl(['add-br', 'br-int', '--', 'set', 'bridge', 'br-int', 'datapath_type=netdev', '--', 'set-fail-mode', 'br-int', 'secure']);
  const peerPorts = new Map<string, number>();
  for (const peer of plan.nodes) {
    if (peer === node) continue;
    const port = 10 + peer.index;
    await vsctl([
      'add-port',
      'br-int',
      `vx${peer.index}`,
      '--',
      'set',
      'interface',
      `vx${peer.index}`,
      'type=vxlan',
      `options:remote_ip=${peer.underlayIp}`,
      `options:key=${VNI}`,
      `ofport_request=${port}`,
    ]);
    peerPorts.set(peer.name, port);
  }
  const podPorts: number[] = [];
  for (let j = 0; j < node.pods.length; j++) {
    const dev = await podVeth(node, cfg, j);
    await offloadsOff(ns, dev, notes);
    await offloadsOff(node.pods[j]!.ns, node.pods[j]!.ifname, notes);
    await ip(['link', 'set', dev, 'up'], ns);
    const port = 100 + j;
    await vsctl(['add-port', 'br-int', dev, '--', 'set', 'interface', dev, `ofport_request=${port}`]);
    podPorts.push(port);
  }
  await run(['ovs-ofctl', 'del-flows', `unix:${join(o.run, 'br-int.mgmt')}`]);
  await run(['ovs-ofctl', 'add-flows', `unix:${join(o.run, 'br-int.mgmt')}`, '-'], {
    input: ovsFlows(plan, configs, node, podPorts, peerPorts).join('\n') + '\n',
  });
}

/** Once every node is up: each node pings the others' underlay addresses, so OVS's neighbour cache (which learns from ARP it sees) knows them. */
export async function warmUnderlay(plan: LabPlan): Promise<void> {
  for (const n of plan.nodes) {
    for (const m of plan.nodes) {
      if (m !== n)
        await retry(`underlay ${n.name} → ${m.name}`, 10_000, () => runInNetns(n.ns, ['ping', '-n', '-c', '1', '-W', '1', m.underlayIp], { timeoutMs: 5000 }));
    }
  }
}
