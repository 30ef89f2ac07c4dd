/**
 * The agent's side of the CNI (the antrea-agent half of antrea-cni → antrea-agent): the plugin sends each
 * command over the control socket (op `cni`, a `CniRequest`), and this service carries it out.
 *
 * - ADD: IPAM first (the configured plugin, exec'd as the spec says: cni-ipam.ts), then the pod's port —
 *   a persistent TAP named CNI_IFNAME inside CNI_NETNS, with a MAC of its own and the pod MTU the overlay
 *   leaves (underlay − tunnel − ESP, mtu/overhead.ts) — attached to the bridge with its addresses as the
 *   gateway's neighbours (node/build.ts `attachPod`), then the address and the default route through the
 *   node's gateway inside the namespace. A step that fails undoes the ones before, the address included
 *   (an IPAM DEL). ADD twice for one container and interface is refused (the spec forbids it).
 * - DEL: the port, the TAP (when its namespace is still there) and the address go; DEL of what is not
 *   attached, or whose namespace is gone, still releases the address and succeeds (DEL is idempotent).
 * - CHECK: the interface, its MAC, MTU and state, the address, the default route, the bridge port, the
 *   IPAM plugin's own CHECK and the runtime's prevResult; the error names every difference.
 * - GC: attachments of the network that are not in `cni.dev/valid-attachments` (or the older
 *   `cni.dev/attachments`) are removed as by DEL.
 * - STATUS: ADDs can be taken when the IPAM plugin is there; with the tunnel's underlay down, pods would
 *   reach only their own node (code 51).
 *
 * Attachments are kept on disk (cni-state.ts): a restarted agent plugs the pods in again (their TAPs
 * outlive it) and CHECK passes.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync } from 'node:fs';
import { mask4, parsePrefix } from '../wire/addr.js';
import { podMtu } from '../mtu/overhead.js';
import type { NodeConfig, NodePodConfig } from '../node/config.js';
import { macToString } from '../wire/bytes.js';
import type { PodPlacement } from './config.js';
import { findPlugin, runIpam } from './cni-ipam.js';
import { CniCode, CniError, type CniReply, type CniRequest, type CniResult } from './cni-spec.js';
import { attachmentsFile, type CniAttachment, loadAttachments, saveAttachments } from './cni-state.js';
import { ipJson } from './lab/netns.js';
import type { Logger } from './log.js';
import { RtnlBatch } from './rtnl.js';

/** What the service needs of the agent. */
export interface CniHost {
  readonly node: NodeConfig;
  readonly underlayMtu: number;
  /** Opens (or takes over) the pod's TAP and attaches it to the bridge; the node's stack learns its MAC. Resolves with the TAP's ifindex. */
  plugPod(pod: NodePodConfig, at: PodPlacement): Promise<number>;
  /** Detaches the pod; `removeTap` also deletes its TAP (false when its namespace is gone). */
  unplugPod(pod: NodePodConfig, removeTap: boolean): Promise<void>;
  podAttached(name: string): boolean;
  /** Sends rtnetlink requests inside `netns` (a path or a name; null: the agent's); throws naming the first refused. */
  rtnl(batch: RtnlBatch, netns: string | null): void;
  /** Whether the tunnel's underlay device has its link. */
  underlayUp(): boolean;
}

const keyOf = (containerId: string, ifname: string): string => `${containerId}/${ifname}`;

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class CniService {
  private readonly byKey = new Map<string, CniAttachment>();
  /** Keys with an ADD, DEL or GC under way (a second command for one of them is told to try again). */
  private readonly busy = new Set<string>();
  /** The pod MTU: what the overlay leaves of the underlay's (and no more than the gateway carries). */
  readonly mtu: number;

  constructor(
    private readonly host: CniHost,
    readonly stateDir: string,
    private readonly log: Logger,
  ) {
    const n = host.node;
    const t = n.tunnel;
    const fam = n.underlayIp.includes(':') ? 6 : 4;
    const overlay = podMtu(host.underlayMtu, {
      tunnel: t.kind,
      underlay: fam,
      geneveOptionBytes: t.options.reduce((s, o) => s + 4 + o.data.length / 2, 0),
      esp: n.esp === null ? null : { cipher: n.esp.cipher, udpEncap: n.esp.udpEncap },
    });
    this.mtu = Math.min(overlay, n.gateway?.mtu ?? overlay);
  }

  /** Plugs in the pods kept on disk (after a restart); a pod whose namespace is gone waits for its DEL or GC. */
  async restore(): Promise<void> {
    let kept: CniAttachment[];
    try {
      kept = loadAttachments(this.stateDir);
    } catch (e) {
      // A file that cannot be read must not keep the node's datapath down: it is set aside (its pods then
      // wait for their runtime's DEL or GC, which release their addresses) and said loudly.
      const aside = `${attachmentsFile(this.stateDir)}.unreadable-${Date.now()}`;
      renameSync(attachmentsFile(this.stateDir), aside);
      this.log.error('cni: the attachments file is unreadable; set aside, starting with none', { file: aside, error: message(e) });
      kept = [];
    }
    for (const a of kept) {
      this.byKey.set(keyOf(a.containerId, a.ifname), a);
      if (!existsSync(a.netns)) {
        this.log.warn('cni: a kept pod has no namespace any more; waiting for its DEL', { container: a.containerId, netns: a.netns });
        continue;
      }
      try {
        await this.host.plugPod(this.podOf(a), { netns: a.netns, ifname: a.ifname });
      } catch (e) {
        this.log.error('cni: a kept pod could not be plugged in again', { container: a.containerId, error: message(e) });
      }
    }
    if (this.byKey.size > 0) this.log.info('cni: attachments restored', { pods: this.byKey.size });
  }

  get attachments(): CniAttachment[] {
    return [...this.byKey.values()];
  }

  /** Control op `cni`: the command carried out, or the CNI error to print. */
  async handle(req: CniRequest): Promise<CniReply> {
    try {
      switch (req.command) {
        case 'ADD':
          return { result: await this.add(req) };
        case 'DEL':
          await this.del(req);
          return {};
        case 'CHECK':
          await this.check(req);
          return {};
        case 'GC':
          await this.gc(req);
          return {};
        case 'STATUS':
          this.status(req);
          return {};
        default:
          throw new CniError(CniCode.InvalidEnvironment, `CNI_COMMAND "${String(req.command)}" is not one the agent carries out`);
      }
    } catch (e) {
      const ce = e instanceof CniError ? e : new CniError(CniCode.IoFailure, message(e));
      this.log.warn('cni: command failed', { command: req.command, container: req.containerId, ifname: req.ifname, code: ce.code, error: ce.message });
      return { cniError: { code: ce.code, msg: ce.message, ...(ce.details !== '' ? { details: ce.details } : {}) } };
    }
  }

  private podOf(a: CniAttachment): NodePodConfig {
    return { name: a.port, mac: a.mac, mtu: a.mtu, ip4: a.ip4, ip6: a.ip6, segment: 0, vni: null };
  }

  private save(): void {
    saveAttachments(this.stateDir, [...this.byKey.values()]);
  }

  private claim(key: string): void {
    if (this.busy.has(key)) throw new CniError(CniCode.TryAgainLater, `another command for ${key} is under way`);
    this.busy.add(key);
  }

  private portName(containerId: string, ifname: string): string {
    const short = `cni-${containerId.slice(0, 12)}-${ifname}`;
    return this.host.podAttached(short) ? `cni-${containerId}-${ifname}` : short;
  }

  // ---- ADD ----------------------------------------------------------------------------------------------

  private async add(req: CniRequest): Promise<CniResult> {
    const key = keyOf(req.containerId, req.ifname);
    if (this.byKey.has(key))
      throw new CniError(CniCode.AlreadyAttached, `container ${req.containerId} already has interface ${req.ifname} on this node (ADD twice without a DEL)`);
    this.claim(key);
    try {
      if (!existsSync(req.netns)) throw new CniError(CniCode.InvalidEnvironment, `CNI_NETNS ${req.netns}: no such network namespace`);
      const g = this.host.node.gateway;
      if (g === null) throw new CniError(CniCode.InvalidConfig, `node ${this.host.node.name} is in l2 mode: pods need a routed node's gateway`);
      const t0 = performance.now();
      const ipam = (await runIpam({ ...req, command: 'ADD' }))!;
      const t1 = performance.now();
      let a: CniAttachment;
      try {
        a = await this.plug(req, ipam, g);
      } catch (e) {
        await runIpam({ ...req, command: 'DEL' }).catch((d: unknown) => this.log.error('cni: IPAM DEL after a failed ADD failed', { error: message(d) }));
        throw e instanceof CniError ? e : new CniError(CniCode.AttachFailed, message(e));
      }
      this.byKey.set(key, a);
      const t2 = performance.now();
      this.save();
      // Where an ADD's time goes (IPAM's exec; the TAP, the bridge and the kernel's side; the attachments
      // file), for the bench's figures: a tenth of a millisecond is kept, the steps without an exec are short.
      const tenth = (x: number): number => Math.round(x * 10) / 10;
      const ms = { ipam: tenth(t1 - t0), plug: tenth(t2 - t1), save: tenth(performance.now() - t2) };
      this.log.info('cni: pod attached', { container: req.containerId, ifname: req.ifname, port: a.port, ip4: a.ip4, ip6: a.ip6, ms });
      return a.result;
    } finally {
      this.busy.delete(key);
    }
  }

  private async plug(req: CniRequest, ipam: NonNullable<Awaited<ReturnType<typeof runIpam>>>, g: NonNullable<NodeConfig['gateway']>): Promise<CniAttachment> {
    const gw4 = g.ipv4?.split('/')[0] ?? null;
    const gw6 = g.ipv6?.split('/')[0] ?? null;
    let ip4: string | null = null;
    let ip6: string | null = null;
    const ips: CniResult['ips'] = [];
    for (const x of ipam.ips) {
      const six = x.address.includes(':');
      const local = six ? g.ipv6 : g.ipv4;
      if (local === null) throw new CniError(CniCode.InvalidConfig, `IPAM gave ${x.address}, but the node's gateway has no IPv${six ? 6 : 4} podCIDR`);
      const [addr, len] = x.address.split('/');
      if (!inPrefix(addr!, local)) throw new CniError(CniCode.InvalidConfig, `IPAM gave ${x.address}, outside the node's podCIDR ${local}`);
      if (six) ip6 ??= addr!;
      else ip4 ??= addr!;
      ips.push({ address: `${addr}/${len ?? (six ? '128' : '32')}`, gateway: (six ? gw6 : gw4)!, interface: 0 });
    }
    const mb = randomBytes(6);
    // Locally administered, unicast.
    mb[0] = (mb[0]! & 0xfc) | 0x02;
    const mac = macToString(mb.readUIntBE(0, 6));
    const port = this.portName(req.containerId, req.ifname);
    const pod: NodePodConfig = { name: port, mac, mtu: this.mtu, ip4, ip6, segment: 0, vni: null };
    const routes: CniResult['routes'] = [];
    if (ip4 !== null) routes.push({ dst: '0.0.0.0/0', gw: gw4! });
    if (ip6 !== null) routes.push({ dst: '::/0', gw: gw6! });
    // plugPod left nothing behind when it throws (its TAP, and with it the addresses, is gone).
    const ifindex = await this.host.plugPod(pod, { netns: req.netns, ifname: req.ifname });
    try {
      // The namespace's side in one rtnetlink write (what `ip link set lo up`, `ip addr replace` and
      // `ip route replace` would each do): no exec on the ADD's path.
      const b = new RtnlBatch().linkUp('lo');
      for (const x of ips) b.addrReplace(x.address, ifindex);
      for (const r of routes) b.routeReplace(r.dst, r.gw!, ifindex);
      this.host.rtnl(b, req.netns);
    } catch (e) {
      await this.host.unplugPod(pod, true);
      throw new CniError(CniCode.AttachFailed, `addresses and routes in ${req.netns}: ${message(e)}`);
    }
    const cfgDns = req.config['dns'];
    const dns = Object.keys(ipam.dns).length > 0 ? ipam.dns : typeof cfgDns === 'object' && cfgDns !== null ? (cfgDns as CniResult['dns']) : {};
    const result: CniResult = {
      cniVersion: String(req.config['cniVersion']),
      interfaces: [{ name: req.ifname, mac, mtu: this.mtu, sandbox: req.netns }],
      ips,
      routes,
      dns,
    };
    return {
      containerId: req.containerId,
      ifname: req.ifname,
      netns: req.netns,
      network: String(req.config['name']),
      port,
      mac,
      mtu: this.mtu,
      ip4,
      ip6,
      config: ipamConfigOf(req.config),
      path: req.path,
      args: req.args,
      result,
    };
  }

  // ---- DEL and GC ----------------------------------------------------------------------------------------

  private async del(req: CniRequest): Promise<void> {
    const key = keyOf(req.containerId, req.ifname);
    this.claim(key);
    try {
      const a = this.byKey.get(key);
      if (a !== undefined) await this.remove(a);
      // The address is released even without an attachment (an ADD that died half-way): host-local's DEL
      // of an address it does not hold succeeds.
      await runIpam({
        command: 'DEL',
        containerId: req.containerId,
        ifname: req.ifname,
        netns: req.netns,
        args: req.args,
        path: req.path !== '' ? req.path : (a?.path ?? ''),
        config: a !== undefined && req.config['ipam'] === undefined ? a.config : req.config,
      });
      if (a !== undefined) this.log.info('cni: pod detached', { container: req.containerId, ifname: req.ifname, port: a.port });
    } finally {
      this.busy.delete(key);
    }
  }

  /** Unplugs an attachment and forgets it (its address is the caller's to release). */
  private async remove(a: CniAttachment): Promise<void> {
    const key = keyOf(a.containerId, a.ifname);
    if (this.host.podAttached(a.port)) await this.host.unplugPod(this.podOf(a), existsSync(a.netns));
    this.byKey.delete(key);
    this.save();
  }

  private async gc(req: CniRequest): Promise<void> {
    const list = req.config['cni.dev/valid-attachments'] ?? req.config['cni.dev/attachments'] ?? [];
    const valid = new Set<string>();
    for (const v of list as Array<{ containerID: string; ifname: string }>) valid.add(keyOf(v.containerID, v.ifname));
    const network = String(req.config['name']);
    const failed: string[] = [];
    for (const a of [...this.byKey.values()]) {
      const key = keyOf(a.containerId, a.ifname);
      if (a.network !== network || valid.has(key) || this.busy.has(key)) continue;
      this.busy.add(key);
      try {
        await this.remove(a);
        await runIpam({ command: 'DEL', containerId: a.containerId, ifname: a.ifname, netns: a.netns, args: a.args, path: a.path, config: a.config });
        this.log.info('cni: GC removed a stale attachment', { container: a.containerId, ifname: a.ifname, port: a.port });
      } catch (e) {
        failed.push(`${key}: ${message(e)}`);
      } finally {
        this.busy.delete(key);
      }
    }
    if (failed.length > 0) throw new CniError(CniCode.IoFailure, `GC: ${failed.length} attachment(s) could not be removed: ${failed.join('; ')}`);
  }

  // ---- CHECK and STATUS ---------------------------------------------------------------------------------

  private async check(req: CniRequest): Promise<void> {
    const key = keyOf(req.containerId, req.ifname);
    const a = this.byKey.get(key);
    if (a === undefined) throw new CniError(CniCode.UnknownContainer, `no attachment of container ${req.containerId} interface ${req.ifname} on this node`);
    const diffs: string[] = [];
    if (req.netns !== a.netns) diffs.push(`CNI_NETNS is ${req.netns}, the attachment's is ${a.netns}`);
    if (!this.host.podAttached(a.port)) diffs.push(`the pod's bridge port ${a.port} is not attached`);
    if (!existsSync(a.netns)) diffs.push(`network namespace ${a.netns} is gone`);
    else diffs.push(...(await this.kernelDiffs(a)));
    const prev = req.config['prevResult'] as { ips?: Array<{ address?: unknown }> } | undefined;
    if (prev !== undefined && Array.isArray(prev.ips)) {
      const want = a.result.ips.map((x) => x.address).sort();
      const got = prev.ips.map((x) => String(x.address)).sort();
      if (want.join() !== got.join()) diffs.push(`prevResult's ips ${got.join(', ')} are not the attachment's ${want.join(', ')}`);
    }
    try {
      await runIpam({
        command: 'CHECK',
        containerId: a.containerId,
        ifname: a.ifname,
        netns: a.netns,
        args: req.args,
        path: req.path || a.path,
        config: a.config,
      });
    } catch (e) {
      diffs.push(message(e));
    }
    if (diffs.length > 0) throw new CniError(CniCode.CheckFailed, `CHECK ${req.containerId}/${req.ifname}: ${diffs.join('; ')}`);
  }

  private async kernelDiffs(a: CniAttachment): Promise<string[]> {
    const diffs: string[] = [];
    type Link = { ifname: string; mtu: number; address: string; flags: string[]; addr_info?: Array<{ local: string; prefixlen: number }> };
    let links: Link[];
    try {
      links = await ipJson<Link>(['addr', 'show', 'dev', a.ifname], a.netns);
    } catch {
      links = [];
    }
    const l = links[0];
    if (l === undefined) return [`interface ${a.ifname} is missing in ${a.netns}`];
    if (l.mtu !== a.mtu) diffs.push(`${a.ifname} MTU is ${l.mtu}, expected ${a.mtu}`);
    if (l.address.toLowerCase() !== a.mac) diffs.push(`${a.ifname} MAC is ${l.address}, expected ${a.mac}`);
    if (!l.flags.includes('UP')) diffs.push(`${a.ifname} is down`);
    const have = new Set((l.addr_info ?? []).map((x) => `${x.local}/${x.prefixlen}`));
    for (const x of a.result.ips) if (!have.has(x.address)) diffs.push(`address ${x.address} is missing on ${a.ifname}`);
    for (const r of a.result.routes) {
      const six = r.dst.includes(':');
      type Route = { dst: string; gateway?: string; dev?: string };
      const routes = await ipJson<Route>([...(six ? ['-6'] : []), 'route', 'show', 'default'], a.netns).catch(() => [] as Route[]);
      if (!routes.some((x) => x.gateway === r.gw && x.dev === a.ifname)) diffs.push(`the default route via ${r.gw} dev ${a.ifname} is missing`);
    }
    return diffs;
  }

  private status(req: CniRequest): void {
    const ipam = req.config['ipam'] as { type?: unknown } | undefined;
    if (ipam !== undefined && typeof ipam.type === 'string') {
      try {
        findPlugin(ipam.type, req.path);
      } catch (e) {
        throw new CniError(CniCode.NotAvailable, `cannot take ADDs: ${message(e)}`);
      }
    }
    if (this.host.node.gateway === null) throw new CniError(CniCode.NotAvailable, `node ${this.host.node.name} is in l2 mode: it cannot take pods`);
    if (!this.host.underlayUp()) throw new CniError(CniCode.LimitedConnectivity, "the tunnel's underlay is down: pods would reach their own node only");
  }
}

/** The network configuration as IPAM needs it again at DEL (runtime-specific keys dropped). */
function ipamConfigOf(config: Record<string, unknown>): Record<string, unknown> {
  const { prevResult: _p, runtimeConfig: _r, ...rest } = config;
  return rest;
}

function inPrefix(addr: string, cidr: string): boolean {
  const p = parsePrefix(cidr, 'podCIDR');
  try {
    const a = parsePrefix(`${addr}/${p.len}`, 'address');
    if (a.family !== p.family) return false;
    if (a.family === 4 && p.family === 4) return (a.addr & mask4(p.len)) >>> 0 === (p.addr & mask4(p.len)) >>> 0;
    const x = a.addr as Uint8Array;
    const y = p.addr as Uint8Array;
    for (let i = 0; i < p.len; i++) if (((x[i >> 3]! >> (7 - (i & 7))) & 1) !== ((y[i >> 3]! >> (7 - (i & 7))) & 1)) return false;
    return true;
  } catch {
    return false;
  }
}
