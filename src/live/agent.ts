/**
 * The node agent: one bridge built by node/ around live devices, and what runs it.
 *
 * - Pod ports are TAPs inside the pods' namespaces (persistent: an agent restarted after a crash
 *   attaches to the same interfaces, same ifindex, and the pods never notice more than a pause).
 * - The node's own stack is a TAP in the node's namespace (`seine-gw0`, as Antrea's antrea-gw0) holding
 *   the gateway's addresses. The kernel must not answer ARP for them (`arp_ignore=8`): the bridge's
 *   gateway does. Its routes to the other nodes' podCIDRs go through each remote gateway address onlink,
 *   whose neighbour entry is the gateway's virtual MAC (Antrea's scheme), and its local pods are static
 *   neighbours (the agent knows their MACs), so the kernel never ARPs a pod with the gateway's address
 *   and no pod learns the wrong MAC for its gateway.
 * - The tunnel port's underlay is a `TunnelSocketDevice`: UDP sockets on the tunnel's port (and 4500 for
 *   ESP-in-UDP), a raw socket for ESP over IP.
 * - Super-frames (config `offloads`, on by default): the TAPs take TSO (and USO where the kernel has it,
 *   Linux 6.2+), so a pod's TCP hands over up to 64 KiB per frame; the bridge forwards them whole to
 *   TAPs and segments them for the tunnel; the tunnel's sockets send a super-frame's segments with one
 *   UDP_SEGMENT send and take UDP_GRO; TCP segments decapsulated for a pod are coalesced again. Every
 *   buffer then holds 64 KiB, so there are fewer (1024 by default): the status says the pool's memory.
 * - A control socket (status, peers reload, capture), a Prometheus endpoint, JSON logs, SIGHUP reloads
 *   the peers (unchanged peers are not touched, so their flows go on), SIGTERM stops cleanly.
 * - Peers come from the configuration (its peer file) and, with `kubernetes`, from the API's Nodes
 *   (live/k8s.ts, imported only then); both go through the same `applyPeers`.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Device } from '../datapath/device.js';
import type { Clock } from '../datapath/bridge.js';
import { ObservedDevice, PcapngCapture } from '../datapath/observe.js';
import { applyPeers, attachPod, buildNode, detachPod, type NodeDatapath } from '../node/build.js';
import type { NodePeerConfig, NodePodConfig } from '../node/config.js';
import { PacketPool } from '../packet/buf.js';
import { GsoStats } from '../packet/gso.js';
import { SeqJournal } from '../esp/journal.js';
import { GLOBAL_VIRTUAL_MAC } from '../datapath/gateway.js';
import { mask4, parsePrefix } from '../wire/addr.js';
import { ipv4FromString, ipv4ToString, macFromString, macToString, rd16, rd32, wrMac } from '../wire/bytes.js';
import { IPPROTO_ESP, IPPROTO_GRE } from '../wire/ipproto.js';
import { loadAgentConfig, type AgentConfig, type PodPlacement } from './config.js';
import { type CniHost, CniService } from './cni-agent.js';
import type { CniRequest } from './cni-spec.js';
import { ControlServer, type ControlConn, type ControlRequest } from './control.js';
import { type DeviceStats, TapDevice, TunnelSocketDevice, type LiveDevice } from './devices.js';
import { ip, run } from './lab/netns.js';
import type { Logger } from './log.js';
import { agentRegistry, serveMetrics, type MetricsSnapshot } from './metrics.js';
import { dropReasonName } from '../wire/drop.js';
import { greHeaderLen } from '../wire/gre.js';
import { GRE_HELLO_PORT } from '../overlay/tunnel.js';
import { HeapMeter } from './heap.js';
import { loadNative, TUN_F, type Native } from './native.js';
import { applyRtnl, RtnlBatch } from './rtnl.js';
import { epochNs } from './sleep.js';
import type { KubePeerSource, KubeSourceStatus } from './k8s.js';

/** Monotonic nanoseconds for the bridge (aging, reassembly timeouts, rate limits). */
const LIVE_CLOCK: Clock = { now: () => Number(process.hrtime.bigint()) };
/** Nanoseconds since the epoch for capture timestamps (a double: about 0.25 µs resolution today). */
const CAPTURE_CLOCK: Clock = { now: epochNs };

const VXLAN_PORT = 4789;
const GENEVE_PORT = 6081;
const NAT_T_PORT = 4500;

/** The tunnel's UDP port: VXLAN's or Geneve's, or for GRE the one ESP's announcements use (overlay/tunnel.ts). */
function tunnelUdpPort(t: AgentConfig['node']['tunnel']): number {
  return t.udpPort ?? (t.kind === 'geneve' ? GENEVE_PORT : t.kind === 'gre' ? GRE_HELLO_PORT : VXLAN_PORT);
}

function macBytes(mac: string): Uint8Array {
  const b = new Uint8Array(6);
  wrMac(b, 0, macFromString(mac)!);
  return b;
}

/** The first address of an IPv4 prefix ("10.244.2.0/24" → "10.244.2.1"): a node's gateway; null for IPv6. */
function firstAddress4(cidr: string): string | null {
  const p = parsePrefix(cidr, 'podCIDR');
  return p.family === 4 ? ipv4ToString(((p.addr & mask4(p.len)) >>> 0) + 1) : null;
}

export interface AgentStatus {
  node: string;
  mode: string;
  pid: number;
  startedAt: string;
  ports: Array<{ name: string; kind: string; up: boolean; ifindex: number | null; rxPackets: number; txPackets: number; drops: number }>;
  /** What is offloaded: per TAP (by port: a pod's name, `host`) what TUNSETOFFLOAD took, the tunnel sockets' GSO and GRO. */
  offloads: { enabled: boolean; taps: Record<string, { tso: boolean; uso: boolean }>; udpGso: boolean; udpGro: boolean };
  /** The packet pool: buffers, bytes per buffer, and their product — the memory the datapath holds. */
  pool: { buffers: number; bufferBytes: number; memoryBytes: number };
  peers: NodePeerConfig[];
  /** Where the peers came from: the configuration (its peer file, or null for `node.peers`) and the Kubernetes API. */
  peerSources: { file: string | null; config: number; kubernetes: KubeSourceStatus | null };
  metrics: string | null;
  control: string;
}

export class Agent {
  readonly nd: NodeDatapath;
  readonly pool: PacketPool;
  /** Live devices by bridge port name. */
  readonly devices = new Map<string, LiveDevice>();
  /** The observation wrapper in front of each device (captures hook in here). */
  readonly observed = new Map<string, ObservedDevice>();
  private readonly ticker: NodeJS.Timeout;
  private readonly control: ControlServer;
  private metricsServer: import('node:http').Server | null = null;
  metricsAddress: string | null = null;
  private readonly startedAt = new Date();
  private journal: SeqJournal | null = null;
  private stopped = false;
  /** Coalescing on the TAPs (the bridge's `gso` counts segmentation). */
  readonly tapGso = new GsoStats();
  /** Bytes the JavaScript heap took since the start (live/heap.ts): `stats` reports it per request. */
  private readonly heap = new HeapMeter();
  private readonly tapOffloads: Record<string, { tso: boolean; uso: boolean }> = {};
  private readonly under: TunnelSocketDevice;
  /** The CNI's pods (live/cni-agent.ts), attached and detached at run time. */
  readonly cni: CniService;
  /** The peers the configuration gives (node.peers or its peer file) and the Kubernetes source, if any. */
  private configPeers: NodePeerConfig[];
  private kube: KubePeerSource | null = null;
  private kubePeers: NodePeerConfig[] = [];
  /** Peer changes one at a time (the kernel routes of one are set before the next is applied). */
  private peerChain: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly cfg: AgentConfig,
    private readonly native: Native,
    private readonly log: Logger,
  ) {
    const n = cfg.node;
    this.configPeers = n.peers;
    // Offloads: a TAP's super-frame is up to 64 KiB of IP behind its Ethernet header, and a GRO'd
    // datagram up to 65,535 bytes behind the outer headers the device rebuilds: 64 KiB + 128 hold both.
    const small = Math.max(2048, cfg.underlayMtu + 128, ...n.pods.map((p) => p.mtu + 128));
    this.pool = new PacketPool({ count: cfg.buffers, frameCapacity: cfg.offloads ? Math.max(small, 65536 + 128) : small });
    const wrap = (port: string, d: LiveDevice): Device => this.wrapDevice(port, d);
    // The devices first (any failure closes what was opened), then the bridge around them.
    const opened: LiveDevice[] = [];
    try {
      const udpPorts = [tunnelUdpPort(n.tunnel)];
      if (n.esp?.udpEncap === true) udpPorts.push(NAT_T_PORT);
      const under = new TunnelSocketDevice(native, this.pool, {
        name: 'underlay',
        netns: cfg.netns,
        localIp: n.underlayIp,
        udpPorts,
        // GRE is IP protocol 47, with no port to bind: the raw socket takes it (ESP over IP likewise).
        rawProtocols: [...(n.tunnel.kind === 'gre' ? [IPPROTO_GRE] : []), ...(n.esp !== null && !n.esp.udpEncap ? [IPPROTO_ESP] : [])],
        mac: macFromString(n.underlayMac)!,
        mtu: cfg.underlayMtu,
        gro: cfg.offloads,
        gso: cfg.offloads,
      });
      this.under = under;
      opened.push(under);
      const pods = new Map<string, Device>();
      for (const p of n.pods) {
        const at = cfg.pods[p.name]!;
        const d = this.openTap(p.name, at.ifname, at.netns, p.mac, p.mtu);
        opened.push(d);
        pods.set(p.name, wrap(p.name, d));
      }
      let stack: Device | undefined;
      if (n.stack !== null) {
        const d = this.openTap('host', cfg.hostTap, cfg.netns, n.stack.mac, n.stack.mtu);
        opened.push(d);
        stack = wrap('host', d);
      }
      const underlay = wrap('underlay', under);
      // The tunnel's socket is bound to its port, which the kernel puts on the wire as the outer source:
      // the templates say the same, so a capture shows what the wire carries.
      // ESP: every start draws a new incarnation (new keys, announced to the peers), and the journal, when
      // the config names one, keeps epochs and sequence numbers across restarts too.
      if (n.esp !== null && cfg.espJournal !== null) this.journal = SeqJournal.open(cfg.espJournal, { node: n.name });
      this.nd = buildNode(n, {
        pool: this.pool,
        clock: LIVE_CLOCK,
        underlay,
        pod: (p) => pods.get(p.name)!,
        udpSourcePort: udpPorts[0]!,
        random: (k) => randomBytes(k),
        ...(this.journal !== null ? { espJournal: this.journal } : {}),
        ...(stack !== undefined ? { stack } : {}),
        // ESP's AEAD a bridge batch per native call (Node's own OpenSSL, one context per SA).
        batchAead: { native: this.native },
      });
      // A CNI node's pods expect it to route what the overlay does not carry (see Gateway.defaultToHost);
      // a lab's pods keep the simulator's NoRoute. The config refuses it without a stack.
      if (cfg.defaultToHost) this.nd.bridge.gateway!.defaultToHost = true;
      under.start();
    } catch (e) {
      for (const d of opened) d.close();
      this.journal?.close();
      throw e;
    }
    for (const d of this.devices.values()) d.start();
    // ESP: the announcements each peer was given leave now, not with the first packet or tick (up to a
    // second later) — a peer starting at the same moment then meets them at once.
    this.nd.bridge.tick();
    this.ticker = setInterval(() => this.nd.bridge.tick(), 1000);
    this.control = new ControlServer(cfg.control, {
      status: () => this.status(),
      reload: () => this.reload(),
      capture: (req, conn) => this.capture(req, conn),
      trace: (req, conn) => this.trace(req, conn),
      stats: () => ({ snapshot: this.snapshot() }),
      cni: (req) => this.cni.handle(req as unknown as CniRequest),
    });
    this.cni = new CniService(this.cniHost(), cfg.cniState, log);
  }

  /** Registers a live device under its port name, behind the observation wrapper captures hook into. */
  private wrapDevice(port: string, d: LiveDevice): Device {
    this.devices.set(port, d);
    const o = new ObservedDevice(d, CAPTURE_CLOCK, null, null);
    this.observed.set(port, o);
    return o;
  }

  private openTap(port: string, ifname: string, netns: string | null, mac: string, mtu: number): TapDevice {
    const info = this.native.tapOpen(ifname, netns, true, true);
    let tso = false;
    let uso = false;
    try {
      // Checksum offload always (frames may come with a partial checksum, completed by the device);
      // with offloads TSO too, and USO where the kernel takes it (6.2+: an older one refuses the flags
      // with EINVAL, and then TSO alone is asked). A TAP that keeps its old flags after a refusal would
      // hand over super-frames the device then refuses: the last ask, CSUM alone, resets them.
      const TSO = TUN_F.CSUM | TUN_F.TSO4 | TUN_F.TSO6 | TUN_F.TSO_ECN;
      const asks = this.cfg.offloads ? [TSO | TUN_F.USO4 | TUN_F.USO6, TSO, TUN_F.CSUM] : [TUN_F.CSUM];
      for (const flags of asks) {
        const r = this.native.tapSetOffload(info.fd, flags);
        if (r === 0) {
          tso = (flags & TUN_F.TSO4) !== 0;
          uso = (flags & TUN_F.USO4) !== 0;
          break;
        }
        this.log.warn('TUNSETOFFLOAD refused', { ifname, netns, flags, errno: -r });
      }
      this.native.linkSet(netns, ifname, mtu, macBytes(mac), true);
    } catch (e) {
      this.native.close(info.fd);
      throw e;
    }
    this.tapOffloads[port] = { tso, uso };
    return new TapDevice(this.native, this.pool, {
      name: ifname,
      fd: info.fd,
      ifindex: info.ifindex,
      mac: macFromString(mac)!,
      mtu,
      vnetHdr: true,
      gso: tso,
      uso,
      gsoStats: this.tapGso,
    });
  }

  /** Builds the node's datapath and configures the kernel side; resolves once the control socket listens. */
  static async start(cfg: AgentConfig, log: Logger): Promise<Agent> {
    const native = loadNative();
    const a = new Agent(cfg, native, log);
    try {
      await a.configureKernel();
      await a.cni.restore();
      await a.control.listen();
      if (cfg.kubernetes !== null) {
        const { KubePeerSource } = await import('./k8s.js');
        const family = ipv4FromString(cfg.node.underlayIp) !== null ? 4 : 6;
        const kube = new KubePeerSource(cfg.kubernetes, {
          family,
          log,
          onPeers: async (peers) => {
            a.kubePeers = peers;
            await a.applyPeerSources();
          },
        });
        a.kube = kube;
        // Not awaited: a node whose API server is not there yet runs with the configuration's peers
        // meanwhile (failures are retried by the source), and the Nodes' peers follow.
        void kube.start();
      }
      if (cfg.metrics !== null) {
        const reg = agentRegistry(cfg.node.name, () => a.snapshot());
        a.kube?.register(reg);
        const m = await serveMetrics(reg, cfg.metrics);
        a.metricsServer = m.server;
        a.metricsAddress = m.address;
      }
    } catch (e) {
      await a.stop();
      throw e;
    }
    log.info('agent started', {
      node: cfg.node.name,
      pods: cfg.node.pods.length,
      peers: cfg.node.peers.length,
      control: cfg.control,
      metrics: a.metricsAddress,
    });
    return a;
  }

  // ---- the kernel side ----------------------------------------------------------------------------------

  private async sysctl(netns: string | null, key: string, value: string): Promise<void> {
    const path = `/proc/sys/${key.replaceAll('.', '/')}`;
    if (netns === null) writeFileSync(path, value);
    else await run([...(netns.startsWith('/') ? ['nsenter', `--net=${netns}`] : ['ip', 'netns', 'exec', netns]), 'sh', '-c', `echo ${value} > ${path}`]);
  }

  private async configureKernel(): Promise<void> {
    const n = this.cfg.node;
    const g = n.gateway;
    for (const p of n.pods) {
      const at = this.cfg.pods[p.name]!;
      await ip(['link', 'set', 'lo', 'up'], at.netns);
      const len4 = g?.ipv4 !== null && g?.ipv4 !== undefined ? g.ipv4.split('/')[1] : '24';
      if (p.ip4 !== null) await ip(['addr', 'replace', `${p.ip4}/${len4}`, 'dev', at.ifname], at.netns);
      if (p.ip6 !== null) {
        const len6 = g?.ipv6 != null ? g.ipv6.split('/')[1] : '64';
        await ip(['addr', 'replace', `${p.ip6}/${len6}`, 'dev', at.ifname, 'nodad'], at.netns);
      }
      if (g !== null && g.ipv4 !== null) await ip(['route', 'replace', 'default', 'via', g.ipv4.split('/')[0]!, 'dev', at.ifname], at.netns);
      if (g !== null && g.ipv6 !== null && p.ip6 !== null)
        await ip(['-6', 'route', 'replace', 'default', 'via', g.ipv6.split('/')[0]!, 'dev', at.ifname], at.netns);
    }
    if (n.stack === null || g === null) return;
    const ns = this.cfg.netns;
    const tap = this.cfg.hostTap;
    // The bridge's gateway answers ARP for the gateway address; the kernel holding the same address must not.
    await this.sysctl(ns, `net.ipv4.conf.${tap}.arp_ignore`, '8');
    if (g.ipv4 !== null) await ip(['addr', 'replace', g.ipv4, 'dev', tap], ns);
    for (const p of n.pods) if (p.ip4 !== null) await ip(['neigh', 'replace', p.ip4, 'lladdr', p.mac, 'dev', tap, 'nud', 'permanent'], ns);
    for (const peer of n.peers) await this.routePeer(peer, true);
  }

  /** Routes (or unroutes) a peer's IPv4 podCIDRs in the node's namespace through its gateway address, onlink. */
  private async routePeer(peer: NodePeerConfig, add: boolean): Promise<void> {
    if (this.cfg.node.stack === null) return;
    const ns = this.cfg.netns;
    const tap = this.cfg.hostTap;
    for (const cidr of peer.podCIDRs) {
      const via = firstAddress4(cidr);
      if (via === null) continue;
      if (add) {
        await ip(['neigh', 'replace', via, 'lladdr', macToString(GLOBAL_VIRTUAL_MAC), 'dev', tap, 'nud', 'permanent'], ns);
        await ip(['route', 'replace', cidr, 'via', via, 'dev', tap, 'onlink'], ns);
      } else {
        await ip(['route', 'del', cidr], ns).catch(() => undefined);
        await ip(['neigh', 'del', via, 'dev', tap], ns).catch(() => undefined);
      }
    }
  }

  // ---- pods at run time (the CNI: live/cni-agent.ts) ---------------------------------------------------

  private cniHost(): CniHost {
    return {
      node: this.cfg.node,
      underlayMtu: this.cfg.underlayMtu,
      plugPod: (pod, at) => this.plugPod(pod, at),
      unplugPod: (pod, removeTap) => this.unplugPod(pod, removeTap),
      rtnl: (batch, netns) => applyRtnl(batch, netns, this.nlSend),
      podAttached: (name) => this.nd.pods.has(name),
      underlayUp: () => this.under.linkUp,
    };
  }

  /**
   * Plugs a pod in at run time: its TAP (persistent; an existing one is taken over), its bridge port with
   * its addresses as the gateway's neighbours, and, with a stack of the node's own, a static neighbour
   * there too (as `configureKernel` gives the config's pods). A failure leaves nothing behind. Resolves
   * with the TAP's ifindex in its namespace. Nothing here execs: the TAP and its link through the addon,
   * the neighbour through rtnetlink (live/rtnl.ts), so a pod's ADD waits for no `ip`.
   */
  private async plugPod(pod: NodePodConfig, at: PodPlacement): Promise<number> {
    const d = this.openTap(pod.name, at.ifname, at.netns, pod.mac, pod.mtu);
    try {
      attachPod(this.nd, pod, this.wrapDevice(pod.name, d), this.cfg.node.gateway);
      d.start();
      const host = this.hostTapIndex();
      if (host !== null && pod.ip4 !== null) applyRtnl(new RtnlBatch().neighReplace(pod.ip4, macBytes(pod.mac), host), this.cfg.netns, this.nlSend);
    } catch (e) {
      detachPod(this.nd, pod);
      this.forgetDevice(pod.name);
      this.native.tapSetPersist(d.fd, false);
      d.close();
      throw e;
    }
    return d.ifindex;
  }

  private readonly nlSend = (ns: string | null, m: Uint8Array): number[] => this.native.netlinkRoute(ns, m);

  /** The node stack's TAP's ifindex (in the agent's namespace), null without a stack. */
  private hostTapIndex(): number | null {
    const d = this.devices.get('host');
    return this.cfg.node.stack !== null && d instanceof TapDevice ? d.ifindex : null;
  }

  /** Unplugs a pod: its port, neighbours and MAC entries; its TAP too when `removeTap` (not persistent any more, closed). */
  private async unplugPod(pod: NodePodConfig, removeTap: boolean): Promise<void> {
    detachPod(this.nd, pod);
    const d = this.devices.get(pod.name);
    this.forgetDevice(pod.name);
    if (d instanceof TapDevice) {
      if (removeTap) {
        try {
          this.native.tapSetPersist(d.fd, false);
        } catch (e) {
          this.log.warn('TUNSETPERSIST off refused; the TAP stays', { port: pod.name, error: e instanceof Error ? e.message : String(e) });
        }
      }
      d.close();
    }
    const host = this.hostTapIndex();
    if (host !== null && pod.ip4 !== null) {
      try {
        applyRtnl(new RtnlBatch().neighDel(pod.ip4, host), this.cfg.netns, this.nlSend);
      } catch {
        /* already gone */
      }
    }
  }

  private forgetDevice(port: string): void {
    this.devices.delete(port);
    this.observed.delete(port);
    delete this.tapOffloads[port];
  }

  // ---- operations ---------------------------------------------------------------------------------------

  /** Rereads the configuration's peers (the peer file, or the config's own list) and applies the difference. */
  async reload(): Promise<{ added: string[]; removed: string[] }> {
    this.configPeers = loadAgentConfig(this.cfg.file).node.peers;
    return this.applyPeerSources('reloaded');
  }

  /** Applies the configuration's peers and the Kubernetes source's, one change at a time (a name in both: the configuration's). */
  private applyPeerSources(why = 'from kubernetes'): Promise<{ added: string[]; removed: string[] }> {
    const next = this.peerChain.then(async () => {
      const names = new Set(this.configPeers.map((p) => p.name));
      const peers = [...this.configPeers, ...this.kubePeers.filter((p) => !names.has(p.name) && p.name !== this.nd.name)];
      const before = new Map(this.nd.peers.map((p) => [p.name, p]));
      const r = applyPeers(this.nd, peers);
      // ESP: new peers' announcements leave at once (as at start).
      if (r.added.length > 0) this.nd.bridge.tick();
      const now = new Map(this.nd.peers.map((p) => [p.name, p]));
      for (const name of r.removed) await this.routePeer(before.get(name)!, false);
      for (const name of r.added) await this.routePeer(now.get(name)!, true);
      if (r.added.length + r.removed.length > 0 || why === 'reloaded')
        this.log.info(`peers ${why}`, { added: r.added, removed: r.removed, peers: this.nd.peers.length });
      return r;
    });
    this.peerChain = next.catch(() => undefined);
    return next;
  }

  status(): AgentStatus {
    const ports: AgentStatus['ports'] = [];
    for (const p of this.nd.bridge.ports) {
      if (p === null) continue;
      const d = this.devices.get(p.kind === 'tunnel' ? 'underlay' : p.name);
      ports.push({
        name: p.name,
        kind: p.kind,
        up: p.up,
        ifindex: d instanceof TapDevice ? d.ifindex : null,
        rxPackets: p.counters.rxPackets,
        txPackets: p.counters.txPackets,
        drops: p.counters.dropped,
      });
    }
    const offloads = { enabled: this.cfg.offloads, taps: { ...this.tapOffloads }, udpGso: this.under.gso, udpGro: this.under.gro };
    const pool = { buffers: this.pool.size, bufferBytes: this.pool.bufferSize, memoryBytes: this.pool.size * this.pool.bufferSize };
    return {
      node: this.nd.name,
      mode: this.nd.mode,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      ports,
      offloads,
      pool,
      peers: [...this.nd.peers],
      peerSources: { file: this.cfg.peersFile, config: this.configPeers.length, kubernetes: this.kube?.status() ?? null },
      metrics: this.metricsAddress,
      control: this.cfg.control,
    };
  }

  snapshot(): MetricsSnapshot {
    const ports: MetricsSnapshot['ports'] = [];
    for (const p of this.nd.bridge.ports) {
      if (p === null) continue;
      const c = p.counters;
      const drops = c.dropsByReason();
      // The gateway keeps its routing decisions' drops apart from its port's: a port's drops are both.
      if (p.kind === 'gateway' && this.nd.bridge.gateway !== null) {
        for (const [k, v] of Object.entries(this.nd.bridge.gateway.counters.dropsByReason())) drops[k] = (drops[k] ?? 0) + v;
      }
      ports.push({
        port: p.kind === 'tunnel' ? 'underlay' : p.name,
        kind: p.kind,
        rxPackets: c.rxPackets,
        rxBytes: c.rxBytes,
        txPackets: c.txPackets,
        txBytes: c.txBytes,
        drops,
      });
    }
    const devices: MetricsSnapshot['devices'] = [];
    for (const [name, d] of this.devices) {
      const s: DeviceStats = d.stats;
      devices.push({
        device: name,
        rxPackets: s.rxPackets,
        txPackets: s.txPackets,
        rxBatches: s.rxBatches,
        drops: s.dropsByReason(),
        rxSuper: s.rxSuper,
        rxSuperSegments: s.rxSuperSegments,
        txSuper: s.txSuper,
        txSuperSegments: s.txSuperSegments,
      });
    }
    const peers: MetricsSnapshot['peers'] = [];
    const byIp = new Map(this.nd.peers.map((p) => [p.underlayIp, p.name]));
    for (const v of this.nd.tunnel.vteps) {
      const name = byIp.get(v.ip);
      if (name === undefined) continue;
      peers.push({
        peer: name,
        txPackets: v.txPackets,
        rxPackets: v.rxPackets,
        txInnerBytes: v.txInnerBytes,
        espOut: this.nd.encrypted ? v.txPackets : 0,
        espIn: this.nd.encrypted ? v.rxPackets : 0,
      });
    }
    const tunnel: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.nd.tunnel.mtuStats)) if (typeof v === 'number') tunnel[k] = v;
    const sa = this.nd.tunnel.sadb;
    if (sa !== null) {
      // ESP's lifecycle: failed integrity checks, announcements (hellos) and resynchronisations.
      Object.assign(tunnel, {
        icvFailures: sa.icvFailures,
        hellosSent: sa.hellosSent,
        hellosReceived: sa.hellosReceived,
        hellosRefused: sa.hellosRefused,
        resyncs: sa.resyncs,
      });
    }
    const b = this.nd.bridge;
    const macs: Record<string, number> = { ...b.macs.stats };
    const bridge = {
      floodCopies: b.floodCopies,
      generated: b.generated,
      fragmentsMade: b.fragmentsMade,
      fragmentsMerged: b.fragmentsMerged,
      segmentsMade: b.segmentsMade,
      heldForEsp: b.heldForEsp,
    };
    // Super-frames: segmented by the bridge (for tunnels and ports without TSO), coalesced by the TAPs.
    const t = this.tapGso;
    const gso = {
      superFrames: b.gso.superFrames,
      segments: b.gso.segments,
      coalesced: t.coalesced,
      coalescedSegments: t.coalescedSegments,
      flushes: t.flushes,
    };
    // Super-frames `segment` refused (the bridge) and frames a TAP's coalescer could not give out, by reason.
    const gsoDrops: Record<string, number> = {};
    for (const st of [b.gso, t]) {
      for (let r = 0; r < st.drops.length; r++) if (st.drops[r]! > 0) gsoDrops[dropReasonName(r)] = (gsoDrops[dropReasonName(r)] ?? 0) + st.drops[r]!;
    }
    return {
      ports,
      devices,
      peers,
      tunnel,
      macs,
      bridge,
      gso,
      gsoDrops,
      heap: this.heap.read(),
      macEntries: this.nd.bridge.macs.size,
      poolFree: this.pool.available,
      poolSize: this.pool.size,
    };
  }

  /**
   * Arms a live trace (`seine trace --live`): the first frame a pod or the node's stack sends from `src`
   * to `dst` with IP protocol `proto` gets the trace flag, and so does the first tunnel packet from a
   * peer that carries it (matched on the inner header; an encrypted tunnel's inner header is not visible
   * before decryption, so there the first ESP packet after arming is taken, and the record says so).
   * Every bridge stage then streams its record as a JSON line, with `t` in ns since the epoch, until the
   * client closes or `timeoutMs` passes.
   */
  private trace(req: ControlRequest, conn: ControlConn): undefined {
    const ip4 = (k: string): number => {
      const v = typeof req[k] === 'string' ? ipv4FromString(req[k]) : null;
      if (v === null) throw new Error(`trace: ${k} must be an IPv4 address`);
      return v;
    };
    const src = ip4('src'),
      dst = ip4('dst');
    const proto = Number(req['proto']);
    if (![1, 6, 17].includes(proto)) throw new Error('trace: proto must be 1 (ICMP), 6 (TCP) or 17 (UDP)');
    const timeoutMs = Math.min(30_000, Math.max(100, Number(req['timeoutMs'] ?? 5000) || 5000));
    for (const o of this.observed.values()) if (o.onRx !== null || o.onTx !== null) throw new Error('a capture or another trace is running on this node');
    const node = this.nd.name;
    const send = (r: Record<string, unknown>): void => {
      conn.socket.write(`${JSON.stringify({ t: CAPTURE_CLOCK.now(), ...r })}\n`);
    };
    const matches = (d: Uint8Array, ip: number, end: number): boolean =>
      ip + 20 <= end && d[ip]! >> 4 === 4 && d[ip + 9] === proto && rd32(d, ip + 12) === src && rd32(d, ip + 16) === dst;
    let sent = false;
    let arrived = false;
    const tunnelPort = tunnelUdpPort(this.cfg.node.tunnel);
    const disarm = (): void => {
      clearTimeout(timer);
      this.nd.bridge.trace = null;
      for (const o of this.observed.values()) {
        o.onRx = null;
        o.onTx = null;
      }
      for (const d of this.devices.values()) if (d instanceof TapDevice) d.onTraced = null;
    };
    const timer = setTimeout(() => {
      disarm();
      conn.socket.end();
    }, timeoutMs);
    conn.stream({ node, timeoutMs }, disarm);
    this.nd.bridge.trace = (r) => send({ ...r });
    // A pod's TAP with TSO says what its coalescing did with the traced frame (it clears the flag).
    for (const [port, d] of this.devices) if (d instanceof TapDevice) d.onTraced = (r) => send({ node, ...r, port });
    for (const [port, o] of this.observed) {
      if (port === 'underlay') {
        o.onRx = (p): void => {
          if (arrived) return;
          const d = p.data,
            e = p.start;
          if (p.end - e < 34 || rd16(d, e + 12) !== 0x0800) return;
          const ip = e + 14;
          const outerProto = d[ip + 9];
          const l4 = ip + (d[ip]! & 0x0f) * 4;
          let encrypted = outerProto === 50;
          let inner = -1;
          if (outerProto === IPPROTO_GRE && this.cfg.node.tunnel.kind === 'gre' && l4 + 4 <= p.end) inner = l4 + greHeaderLen(rd16(d, l4)) + 14;
          else if (outerProto === 17 && l4 + 8 <= p.end) {
            const dport = rd16(d, l4 + 2);
            if (dport === NAT_T_PORT) encrypted = true;
            else if (dport === tunnelPort) {
              const hdr = this.cfg.node.tunnel.kind === 'geneve' ? 8 + (d[l4 + 8]! & 0x3f) * 4 : 8;
              inner = l4 + 8 + hdr + 14;
            }
          }
          // The node that sent the probe takes no ESP packet: what comes back to it is the answer.
          if (!((encrypted && !sent) || (inner > 0 && matches(d, inner, p.end)))) return;
          arrived = true;
          p.traced = true;
          send({
            node,
            stage: 'underlay',
            port: 'underlay',
            action: encrypted
              ? 'arrived from the underlay: the first ESP packet since the trace was armed (its inner header is only visible after decryption)'
              : 'arrived from the underlay',
            detail: { from: ipv4ToString(rd32(d, ip + 12)), ...(encrypted ? { encrypted: true } : {}) },
          });
        };
        continue;
      }
      o.onRx = (p): void => {
        if (sent || p.end - p.start < 34 || rd16(p.data, p.start + 12) !== 0x0800 || !matches(p.data, p.start + 14, p.end)) return;
        sent = true;
        p.traced = true;
        send({
          node,
          stage: 'send',
          port,
          action: `${proto === 1 ? 'ICMP' : proto === 6 ? 'TCP' : 'UDP'} ${ipv4ToString(src)} → ${ipv4ToString(dst)}, ${p.end - p.start - 14} bytes of IP`,
          detail: { src: ipv4ToString(src), dst: ipv4ToString(dst), bytes: p.end - p.start - 14 },
        });
      };
      o.onTx = (p): void => {
        if (!p.traced) return;
        const ok = p.end - p.start >= 34 && rd16(p.data, p.start + 12) === 0x0800 && rd32(p.data, p.start + 30) === dst;
        send({
          node,
          stage: 'deliver',
          port,
          action: ok
            ? `delivered to ${port === 'host' ? "the node's own stack" : `pod ${port}`} (${p.end - p.start - 14} bytes of IP)`
            : `a frame built from the traced one reached ${port}`,
          detail: { pod: `${node}/${port}`, destination: ok },
        });
      };
    }
    this.log.info('trace armed', { src: ipv4ToString(src), dst: ipv4ToString(dst), proto });
    return undefined;
  }

  /** Streams a pcapng of one port's frames (both directions) to the client until it disconnects. */
  private capture(req: ControlRequest, conn: ControlConn): undefined {
    const port = typeof req['port'] === 'string' ? req['port'] : '';
    const o = this.observed.get(port);
    if (o === undefined) throw new Error(`no port "${port}" to capture (ports: ${[...this.observed.keys()].join(', ')})`);
    if (o.onTx !== null || o.onRx !== null) throw new Error(`port ${port} is already being captured`);
    // The reply line first: the capture writes its section header as soon as it is made.
    conn.stream({ port, linktype: 'ethernet' }, () => {
      o.onTx = null;
      o.onRx = null;
    });
    // The socket may hold a chunk until it drains: give it a copy, never the writer's buffer.
    const rec = new PcapngCapture(`${this.nd.name}/${port}`, (chunk) => {
      conn.socket.write(Buffer.from(chunk));
    });
    o.onTx = rec.hook;
    o.onRx = rec.hook;
    this.log.info('capture started', { port });
    return undefined;
  }

  /** Stops everything the agent runs; pod interfaces stay (persistent TAPs), so a new agent takes them over. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.ticker);
    this.heap.stop();
    await this.kube?.stop();
    this.control.close();
    await new Promise<void>((res) => (this.metricsServer === null ? res() : this.metricsServer.close(() => res())));
    for (const d of this.devices.values()) d.close();
    this.journal?.close();
    this.log.info('agent stopped', { node: this.cfg.node.name });
  }
}
