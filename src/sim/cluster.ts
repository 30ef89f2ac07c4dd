/**
 * A scenario brought to life: a simulated cluster built from a `Scenario` (scenario/scenario.ts), run for its
 * duration, and its report — per flow, per node and port, per underlay path — with the scenario's
 * expectations checked.
 *
 * Each node is the node model's (src/node/): `nodeConfigsFromScenario` describes it, `buildNode` wires its
 * bridge — gateway, tunnel port and VTEP mesh, routes, pods' neighbour entries, l2 segments, ESP — exactly
 * as a live agent does. What the simulator adds are the devices it is built around:
 * - pods: `SimHost`s plugged into bridge ports (a veth is a zero-delay wire: frames cross synchronously);
 *   in routed mode their default gateway is the node's gateway;
 * - an uplink into the `Fabric` (sim/fabric.ts): one point-to-point path per pair of nodes with the
 *   underlay's (or the pair's own) latency, jitter, bandwidth, loss and MTU;
 * - observers on those devices: capture points, the ICMP a sender sees, and the tracer's hooks.
 *
 * At time 0 every pod sends a gratuitous ARP, as a CNI plugin does for a new pod (Antrea does), so the
 * bridges know where each pod's MAC is before traffic starts; a pod never heard from would have every
 * frame towards it flooded (a learning bridge's unknown unicast).
 *
 * Addresses and MACs are assigned from the node and pod positions (deterministic), so one scenario and
 * seed give byte-identical captures and reports.
 */
import type { NativeAead } from '../esp/aead-batch.js';
import { createHash } from 'node:crypto';
import type { Bridge } from '../datapath/bridge.js';
import { GLOBAL_VIRTUAL_MAC } from '../datapath/gateway.js';
import type { Device } from '../datapath/device.js';
import { ObservedDevice, PcapngCapture } from '../datapath/observe.js';
import type { Port } from '../datapath/port.js';
import { buildNode, HOST_PORT, introducePeers, type NodeDatapath } from '../node/build.js';
import { NodeBuildError, nodeConfigsFromScenario, prefixLen, type NodeConfig, type NodeStackConfig } from '../node/config.js';
import type { Tunnel } from '../overlay/tunnel.js';
import { PacketPool } from '../packet/buf.js';
import { ipv4FromString, ipv6FromString, macFromString } from '../wire/bytes.js';
import { Simulator, type SimTask } from './engine.js';
import { Fabric, type Uplink } from './fabric.js';
import { IcmpObserver, type IcmpWatch } from './icmpwatch.js';
import { percentile, SimHost, type PingStats, type UdpFlow, type UdpFlowOptions, type UdpSink } from './host.js';
import { loadReplay } from '../scenario/replay.js';
import type { TcpFlow } from './tcp.js';
import { addPathDrops, PATH_DROPS, type LinkConfig } from './link.js';
import { checkExpectations, type FlowResult, type PathResult, type Report } from './report.js';
import {
  endpointText,
  type Endpoint,
  type FaultSpec,
  type IcmpKind,
  type NodeSpec,
  type PodSpec,
  type Scenario,
  type TrafficSpec,
} from '../scenario/scenario.js';

/** The report's shape, expectations and text (shared with live runs), where they always were. */
export { formatReport, type ExpectResult, type FlowResult, type PathResult, type Report } from './report.js';

/** The bridge port of a node's own stack (the node model names it; re-exported where it always was). */
export { HOST_PORT };
/** The first UDP port sinks listen on: a receiver has one port per sender (flows are told apart by their flow id). */
export const SINK_PORT = 5001;

/** The port TCP flows connect to (iperf3's), and the source port of flow `id`. */
export const TCP_PORT = 5201;
function tcpSrcPort(id: number): number {
  return 20000 + (id % 40000);
}

/**
 * An error in a scenario that only shows when building it (the loader accepted its shape). The node
 * model's `NodeBuildError` under the simulator's name: both worlds throw the one class.
 */
export const SimBuildError = NodeBuildError;
export type SimBuildError = NodeBuildError;

export interface ClusterOptions {
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Packet buffers (default: enough for the scenario's traffic, at least 8192). */
  buffers?: number;
  /** Record the scenario's capture points (default true). */
  capture?: boolean;
  /** Start the scenario's traffic (default true; the tracer sends its own packet). */
  traffic?: boolean;
  /** Give every pod an `ObservedDevice` (`PodRt.observer`) whose hooks a tracer sets. Default false. */
  tracing?: boolean;
  /** The largest IP packet something outside the scenario's traffic will build (the tracer's). */
  largestPacket?: number;
  /** Give every node its own stack (`NodeRt.stack`), not only the nodes traffic starts or ends at. Default false. */
  nodeStacks?: boolean;
  /**
   * ESP's AEAD a batch per call as the live agent runs it (node/build.ts `NodeEnv.batchAead`), for tests
   * that hold it to the same bytes as the default, one packet at a time.
   */
  batchAead?: { native: NativeAead | null };
  /**
   * GRE tunnels: send the key (default, as the scenario's pod MTU assumes: 42 bytes over IPv4) or not (a
   * 4-byte GRE header; the pods keep the scenario's MTU). For measuring GRE's variants (NodeTunnelConfig.greKey).
   */
  greKey?: boolean;
}

// ---------------------------------------------------------------------------------------------------
// The cluster

export interface PodRt {
  spec: PodSpec;
  host: SimHost;
  port: Port;
  icmp: IcmpObserver | null;
  /** With `tracing`: the observer between the pod and its bridge port, whose hooks the tracer sets. */
  observer: ObservedDevice | null;
}

export interface NodeRt {
  spec: NodeSpec;
  index: number;
  /** The node as the node model describes it, and what `buildNode` made of it. */
  config: NodeConfig;
  datapath: NodeDatapath;
  bridge: Bridge;
  uplink: Uplink;
  tunnelPort: Port;
  tunnel: Tunnel;
  pods: Map<string, PodRt>;
  /** The node's own stack (routed mode, when traffic starts or ends at the node), or null. */
  stack: PodRt | null;
}

/** A host and the device (with its observers) its bridge port gets. */
interface Plugged {
  spec: PodSpec;
  host: SimHost;
  dev: Device;
  icmp: IcmpObserver | null;
  observer: ObservedDevice | null;
}

interface FlowRt {
  spec: TrafficSpec;
  id: number;
  src: PodRt;
  dst: PodRt | null;
  dstAddr: string;
  ping: PingStats | null;
  udp: UdpFlow | null;
  sink: UdpSink | null;
  tcp: TcpFlow | null;
  icmp: Set<IcmpKind>;
  /** How long the flow sends (ns), for throughput and goodput. */
  spanNs: number;
}

/** A task that starts a ping flow at its start time. */
class PingStart implements SimTask {
  constructor(
    private readonly f: FlowRt,
    private readonly watch: IcmpWatch,
  ) {}
  run(): void {
    const t = this.f.spec;
    const hdr = t.family === 4 ? 28 : 48;
    this.f.ping = this.f.src.host.ping({
      dst: this.f.dstAddr,
      count: t.count,
      intervalNs: t.intervalNs,
      size: Math.max(0, t.sizes[0]! - hdr),
      df: t.df,
      timeoutNs: 2e9,
    });
    this.watch.id = this.f.ping.ident;
  }
}

/** At time 0 every pod announces itself (gratuitous ARP), as the CNI does when a pod starts. */
class Announce implements SimTask {
  constructor(private readonly hosts: SimHost[]) {}
  run(): void {
    for (const h of this.hosts) h.announce();
  }
}

/** Applies the faults: `arg` indexes the action list. */
class FaultRunner implements SimTask {
  readonly actions: Array<{ fault: FaultSpec; up: boolean }> = [];
  constructor(private readonly fabric: Fabric) {}
  run(arg: number): void {
    const a = this.actions[arg]!;
    const t = a.fault.target;
    if (t.kind === 'node') this.fabric.setNodeUp(t.node, a.up);
    else this.fabric.setPathUp(t.a, t.b, a.up);
  }
}

export class Cluster {
  readonly sim: Simulator;
  readonly pool: PacketPool;
  readonly fabric: Fabric;
  readonly nodes = new Map<string, NodeRt>();
  readonly flows: FlowRt[] = [];
  readonly captures: PcapngCapture[] = [];
  readonly seed: number;
  private readonly faults: FaultRunner;
  /** Per receiving host, its senders and the sink port each sends to (the next port is `SINK_PORT` + how many). */
  private readonly sinkPorts = new Map<SimHost, Map<SimHost, number>>();
  private ran = false;
  private readonly tracing: boolean;
  private readonly wantStacks: boolean;
  wallMs = 0;
  private readonly batchAead: { native: NativeAead | null } | undefined;

  constructor(
    readonly scenario: Scenario,
    opts: ClusterOptions = {},
  ) {
    const s = scenario;
    this.seed = opts.seed ?? s.seed;
    this.sim = new Simulator(this.seed);
    // Buffers hold the largest frame anything builds: an MTU-sized frame, or a datagram a pod builds
    // whole before fragmenting it (replayed captures may hold any IP length). Slabs are committed as used.
    // Loops, not spreads: a scenario may have 100,000 flows, and a flow 200,000 sizes (a spread that
    // long overflows the stack).
    let biggest = Math.max(s.underlay.mtu, 1500, opts.largestPacket ?? 0);
    for (const n of s.nodes) for (const p of n.pods) biggest = Math.max(biggest, p.mtu);
    for (const t of s.traffic) {
      if (t.replay !== null) biggest = Math.max(biggest, 65535);
      else for (const x of t.sizes) biggest = Math.max(biggest, x);
    }
    const frameCapacity = Math.max(2048, biggest + 128);
    this.pool = new PacketPool({ count: opts.buffers ?? Math.max(1024, Math.min(8192, Math.floor((256 << 20) / frameCapacity))), frameCapacity });
    const u = s.underlay;
    const defaults: LinkConfig = {
      latencyNs: u.latencyNs,
      jitterNs: u.jitterNs,
      loss: u.loss,
      mtu: u.mtu,
      ...(u.bandwidthBps !== null ? { bandwidthBps: u.bandwidthBps } : {}),
    };
    this.fabric = new Fabric(this.sim, this.pool, defaults, u.mtu);
    this.faults = new FaultRunner(this.fabric);
    const wantCapture = opts.capture ?? true;
    const capAt = new Map<string, PcapngCapture>();
    if (wantCapture) {
      for (const c of s.capture) {
        const key = `${c.node}/${c.port}`;
        if (!capAt.has(key)) {
          const cap = new PcapngCapture(key);
          capAt.set(key, cap);
          this.captures.push(cap);
        }
      }
    }
    this.tracing = opts.tracing ?? false;
    this.wantStacks = opts.nodeStacks ?? false;
    this.batchAead = opts.batchAead;
    this.buildNodes(capAt, opts.greKey);
    this.sim.schedule(0, new Announce([...this.nodes.values()].flatMap((n) => [...n.pods.values()].map((p) => p.host))), 0);
    if (opts.traffic ?? true) this.buildTraffic();
    this.buildFaults();
  }

  private buildNodes(capAt: Map<string, PcapngCapture>, greKey: boolean | undefined): void {
    const s = this.scenario;
    const routed = s.tunnel.mode === 'routed';
    const senders = new Set(s.traffic.map((t) => `${t.from.node}/${t.from.pod ?? ''}`));
    // Nodes' own stacks where traffic starts or ends at a node (or every node's, when asked).
    const used = new Set(
      s.traffic
        .flatMap((t) => [t.from, t.to])
        .filter((e) => e.pod === null)
        .map((e) => e.node),
    );
    const configs = nodeConfigsFromScenario(s, { stacks: this.wantStacks ? 'all' : s.nodes.map((n) => n.name).filter((n) => used.has(n)) });
    if (greKey !== undefined) {
      if (s.tunnel.type !== 'gre') throw new SimBuildError(`greKey is for a gre tunnel; this scenario's is ${s.tunnel.type}`);
      for (const c of configs) c.tunnel.greKey = greKey;
    }
    // What the simulated hosts cannot be yet (the node model has no such limits).
    for (const n of s.nodes) {
      for (const p of n.pods)
        if (p.ip4 === null) throw new SimBuildError(`pod ${n.name}/${p.name}: IPv6-only pods are not simulated yet; give it an IPv4 address too`);
    }
    s.nodes.forEach((n, i) => {
      if (configs[i]!.stack !== null && n.gateway4 === null) throw new SimBuildError(`node ${n.name}: its own stack needs an IPv4 podCIDR`);
    });
    const clock = this.sim.clock;
    s.nodes.forEach((n, i) => {
      const cfg = configs[i]!;
      const uplink = this.fabric.addNode(n.name, macFromString(cfg.underlayMac)!);
      const cap = capAt.get(`${n.name}/underlay`);
      const underlay: Device = cap !== undefined ? cap.observe(uplink, clock) : uplink;
      const len4 = prefixLen(n.podCIDR4) ?? 0;
      const len6 = prefixLen(n.podCIDR6) ?? 0;
      const hosts = new Map<string, Plugged>();
      n.pods.forEach((p, j) => {
        const host = new SimHost(this.sim, this.pool, {
          name: `${n.name}/${p.name}`,
          mac: macFromString(cfg.pods[j]!.mac)!,
          mtu: p.mtu,
          ipv4: `${p.ip4}/${len4}`,
          ...(p.ip6 !== null ? { ipv6: `${p.ip6}/${len6 === 0 ? 64 : len6}` } : {}),
          ...(routed && n.gateway4 !== null ? { gateway4: n.gateway4 } : {}),
          ...(routed && n.gateway6 !== null ? { gateway6: n.gateway6 } : {}),
        });
        hosts.set(p.name, this.observe(p, host, senders.has(`${n.name}/${p.name}`), capAt.get(`${n.name}/${p.name}`) ?? null));
      });
      const stack = cfg.stack !== null ? this.stackHost(n, cfg.stack, senders.has(`${n.name}/`)) : null;
      const dp = buildNode(cfg, {
        pool: this.pool,
        clock,
        underlay,
        pod: (p) => hosts.get(p.name)!.dev,
        ...(stack !== null ? { stack: stack.dev } : {}),
        ...(cfg.esp !== null ? { random: seededRandom(this.seed, n.name) } : {}),
        ...(this.batchAead !== undefined ? { batchAead: this.batchAead } : {}),
      });
      const pods = new Map<string, PodRt>();
      for (const [name, h] of hosts) pods.set(name, { spec: h.spec, host: h.host, port: dp.pods.get(name)!, icmp: h.icmp, observer: h.observer });
      this.nodes.set(n.name, {
        spec: n,
        index: i,
        config: cfg,
        datapath: dp,
        bridge: dp.bridge,
        uplink,
        tunnelPort: dp.tunnelPort,
        tunnel: dp.tunnel,
        pods,
        stack: stack === null ? null : { spec: stack.spec, host: stack.host, port: dp.stack!, icmp: stack.icmp, observer: stack.observer },
      });
    });
    // The control plane introduces ESP peers to each other (their announcements never cross the underlay).
    if (s.encryption !== null) {
      const built = [...this.nodes.values()];
      for (let i = 0; i < built.length; i++) for (let j = i + 1; j < built.length; j++) introducePeers(built[i]!.datapath, built[j]!.datapath, clock.now());
    }
    for (const l of s.links) {
      const cfg: LinkConfig = {};
      if (l.mtu !== null) cfg.mtu = l.mtu;
      if (l.latencyNs !== null) cfg.latencyNs = l.latencyNs;
      if (l.jitterNs !== null) cfg.jitterNs = l.jitterNs;
      if (l.bandwidthBps !== null) cfg.bandwidthBps = l.bandwidthBps;
      if (l.loss !== null) cfg.loss = l.loss;
      this.fabric.override(l.a, l.b, cfg);
    }
  }

  /**
   * A node's own stack, as Antrea's antrea-gw0 is on the host side: it shares the gateway's addresses
   * (the gateway answers ARP, ND and echo for them and hands it everything else sent to them) and sends
   * everything through the gateway, whose virtual MAC it has as its only neighbour. Its port and static
   * MAC entry are the node model's.
   */
  private stackHost(n: NodeSpec, cfg: NodeStackConfig, observe: boolean): Plugged {
    const spec: PodSpec = { name: HOST_PORT, node: n.name, ip4: n.gateway4, ip6: n.gateway6, vlan: null, vni: null, mtu: cfg.mtu };
    const host = new SimHost(this.sim, this.pool, {
      name: `${n.name}/${HOST_PORT}`,
      mac: macFromString(cfg.mac)!,
      mtu: spec.mtu,
      answerNeighbors: false,
      ipv4: `${n.gateway4}/32`,
      gateway4: n.gateway4!,
      ...(n.gateway6 !== null ? { ipv6: `${n.gateway6}/128`, gateway6: n.gateway6 } : {}),
    });
    host.addNeighbor(n.gateway4!, GLOBAL_VIRTUAL_MAC);
    if (n.gateway6 !== null) host.addNeighbor(n.gateway6, GLOBAL_VIRTUAL_MAC);
    return this.observe(spec, host, observe, null);
  }

  /**
   * The device a host is plugged in through, with the observers it needs: an ICMP observer when it
   * sends traffic, a capture point, and (tracing) an observer whose hooks the tracer sets.
   */
  private observe(spec: PodSpec, host: SimHost, observe: boolean, cap: PcapngCapture | null): Plugged {
    const clock = this.sim.clock;
    const icmp = observe ? new IcmpObserver() : null;
    let dev: Device = host;
    if (icmp !== null) dev = new ObservedDevice(dev, clock, icmp.hook, null);
    if (cap !== null) dev = cap.observe(dev, clock);
    const observer = this.tracing ? new ObservedDevice(dev, clock) : null;
    if (observer !== null) dev = observer;
    return { spec, host, dev, icmp, observer };
  }

  private pod(e: Endpoint, what: string): PodRt | null {
    const n = this.nodes.get(e.node)!;
    if (e.pod === null) return n.stack;
    const p = n.pods.get(e.pod);
    if (p === undefined) throw new SimBuildError(`${what}: no pod ${e.node}/${e.pod}`);
    return p;
  }

  private buildTraffic(): void {
    this.scenario.traffic.forEach((t, k) => {
      const src = this.pod(t.from, `traffic ${t.name}`)!;
      const dst = this.pod(t.to, `traffic ${t.name}`);
      let dstAddr: string | null;
      if (dst !== null) dstAddr = t.family === 4 ? dst.spec.ip4 : dst.spec.ip6;
      else {
        const n = this.nodes.get(t.to.node)!.spec;
        dstAddr = t.family === 4 ? n.gateway4 : n.gateway6;
      }
      if (dstAddr === null) throw new SimBuildError(`traffic ${t.name}: ${t.to.node}${t.to.pod !== null ? '/' + t.to.pod : ''} has no IPv${t.family} address`);
      // How long the flow sends: a replay takes its capture's time; TCP may go on to the end.
      let spanNs = t.count * t.intervalNs;
      if (t.replay !== null) {
        const offs = loadReplay({ path: t.replay }).offsetsNs;
        spanNs = offs[Math.min(offs.length, t.count) - 1]! + 1;
      }
      const f: FlowRt = { spec: t, id: k + 1, src, dst, dstAddr, ping: null, udp: null, sink: null, tcp: null, icmp: new Set(), spanNs };
      this.flows.push(f);
      const proto = t.type === 'ping' ? (t.family === 4 ? 1 : 58) : t.type === 'udp' ? 17 : 6;
      const watch: IcmpWatch = {
        seen: f.icmp,
        family: t.family,
        proto,
        id: t.type === 'udp' ? 10000 + f.id : t.type === 'tcp' ? tcpSrcPort(f.id) : -1,
        fromNs: t.startNs,
        untilNs: t.startNs + (t.type === 'tcp' ? this.scenario.durationNs : spanNs) + 2e9,
        dst4: t.family === 4 ? ipv4FromString(dstAddr)! : 0,
        dst6: t.family === 6 ? ipv6FromString(dstAddr) : null,
      };
      src.icmp?.watches.push(watch);
      if (t.type === 'ping') this.sim.schedule(t.startNs, new PingStart(f, watch), 0);
      else if (t.type === 'udp') {
        if (dst === null) throw new SimBuildError(`traffic ${t.name}: a UDP flow needs a pod to receive it`);
        // Flow ids are unique per sender: each sender gets its own port on each receiver.
        // Keyed by the hosts themselves, not by a string made of their names: 100,000 flows build here.
        let senders = this.sinkPorts.get(dst.host);
        if (senders === undefined) this.sinkPorts.set(dst.host, (senders = new Map()));
        let port = senders.get(src.host);
        if (port === undefined) {
          port = SINK_PORT + senders.size;
          if (port > 65535) throw new SimBuildError(`traffic ${t.name}: ${dst.host.name} receives UDP from more than ${65536 - SINK_PORT} senders`);
          senders.set(src.host, port);
        }
        f.sink = dst.host.udpSink(port);
        // Options set one by one, not spread in: a spread costs each of 100,000 flows a clone built property by property.
        const o: UdpFlowOptions = { dst: dstAddr, dstPort: port, srcPort: 10000 + f.id, count: t.count, df: t.df, startNs: t.startNs };
        if (t.replay !== null) o.replay = { path: t.replay };
        else {
          o.ratePps = 1e9 / t.intervalNs;
          o.sizes = t.sizes;
        }
        f.udp = src.host.udpFlow(o);
      } else {
        if (dst === null) throw new SimBuildError(`traffic ${t.name}: a TCP flow needs a pod to receive it`);
        dst.host.tcpListen(TCP_PORT);
        f.tcp = src.host.tcpSend({ dst: dstAddr, dstPort: TCP_PORT, srcPort: tcpSrcPort(f.id), bytes: t.bytes, startNs: t.startNs, df: t.df });
      }
    });
  }

  private buildFaults(): void {
    for (const f of this.scenario.faults) {
      const i = this.faults.actions.push({ fault: f, up: f.action === 'up' }) - 1;
      this.sim.schedule(f.atNs, this.faults, i);
      if (f.action === 'down' && f.forNs !== null) {
        const j = this.faults.actions.push({ fault: f, up: true }) - 1;
        this.sim.schedule(f.atNs + f.forNs, this.faults, j);
      }
    }
  }

  /**
   * Runs the scenario to its end; `progress` is told the fraction of simulated time done, now and then.
   * `sampler` (sim/record.ts) reads counters every `everyNs` of simulated time: the clock stops there
   * between events, so the run is the same with or without it.
   */
  run(progress?: (fraction: number) => void, sampler?: { everyNs: number; take(nowNs: number): void }): void {
    if (this.ran) throw new Error('cluster: already run');
    this.ran = true;
    const t0 = performance.now();
    const end = this.scenario.durationNs;
    const slices = progress === undefined ? 1 : 100;
    let sample = 1;
    for (let k = 1; k <= slices; k++) {
      const until = Math.round((end * k) / slices);
      if (sampler !== undefined)
        for (let at = sample * sampler.everyNs; at <= until; at = ++sample * sampler.everyNs) {
          this.sim.run(at);
          sampler.take(at);
        }
      this.sim.run(until);
      for (const n of this.nodes.values()) n.bridge.tick();
      progress?.(k / slices);
    }
    this.wallMs = performance.now() - t0;
  }

  /** The report, with each expectation checked. It holds nothing but simulated facts (no wall-clock time), so one scenario and seed give the same report byte for byte. */
  report(): Report {
    return buildReport(this);
  }
}

// ---------------------------------------------------------------------------------------------------
// The report (its shape, expectations and text are sim/report.ts, shared with live runs)

/**
 * How many of a ping or UDP flow's packets have their time inside the scenario, and the time it sends
 * over: the scenario's `duration` may end before count × interval does (the loader accepts it; the
 * report says so). Events at the end itself still run.
 */
function flowSpan(c: Cluster, f: FlowRt): { fit: number; spanNs: number } {
  const t = f.spec;
  const left = c.scenario.durationNs - t.startNs;
  const fit = t.replay !== null ? t.count : Math.min(t.count, Math.floor(left / t.intervalNs) + 1);
  return { fit, spanNs: Math.max(1, Math.min(f.spanNs, left)) };
}

/** What a flow measured: the report's fields after `icmpSeen` (and `cutShort`), in their order. */
type Measured = Pick<
  FlowResult,
  'sent' | 'delivered' | 'lost' | 'deliveredRatio' | 'tooBig' | 'duplicates' | 'latencyP50Ns' | 'latencyP99Ns' | 'latencyMaxNs' | 'throughputBps' | 'goodputBps'
>;

/**
 * A flow's result as one object literal, its fields in the report's order. Not spreads of a common
 * part: for 100,000 flows they cost 6 KB of garbage each (every property added one at a time to a
 * clone), most of the report's time. `fit` below the flow's count inserts `cutShort` (rare: rebuilt).
 */
function result(c: Cluster, f: FlowRt, planned: number, fit: number, m: Measured): FlowResult {
  const t = f.spec;
  const r: FlowResult = {
    name: t.name,
    type: t.type,
    from: endpointText(t.from),
    to: endpointText(t.to),
    family: t.family,
    planned,
    icmpSeen: [...f.icmp].sort(),
    sent: m.sent,
    delivered: m.delivered,
    lost: m.lost,
    deliveredRatio: m.deliveredRatio,
    tooBig: m.tooBig,
    duplicates: m.duplicates,
    latencyP50Ns: m.latencyP50Ns,
    latencyP99Ns: m.latencyP99Ns,
    latencyMaxNs: m.latencyMaxNs,
    throughputBps: m.throughputBps,
    goodputBps: m.goodputBps,
  };
  if (fit >= t.count) return r;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    if (k === 'sent') out['cutShort'] = { fit, endNs: c.scenario.durationNs };
    out[k] = v;
  }
  return out as unknown as FlowResult;
}

function flowResult(c: Cluster, f: FlowRt): FlowResult {
  const t = f.spec;
  if (t.type === 'ping') {
    const st = f.ping;
    const sent = st?.sent ?? 0,
      got = st?.received ?? 0;
    const rtts = st === null ? [] : st.latency.sorted();
    const { fit, spanNs: span } = flowSpan(c, f);
    const ipLen = t.sizes[0]!;
    return result(c, f, t.count, fit, {
      sent,
      delivered: got,
      lost: Math.max(0, sent - got),
      deliveredRatio: t.count === 0 ? 0 : got / t.count,
      tooBig: st?.tooBig ?? 0,
      duplicates: st?.duplicates ?? 0,
      latencyP50Ns: rtts.length > 0 ? percentile(rtts, 50) : null,
      latencyP99Ns: rtts.length > 0 ? percentile(rtts, 99) : null,
      latencyMaxNs: rtts.length > 0 ? st!.max : null,
      throughputBps: (sent * ipLen * 8 * 1e9) / span,
      goodputBps: (got * (ipLen - (t.family === 4 ? 28 : 48)) * 8 * 1e9) / span,
    });
  }
  if (t.type === 'tcp') {
    const st = f.tcp!.stats;
    const rtts = st.rttSamplesMs.map((x) => x * 1e6).sort((a, b) => a - b);
    const end = st.completed ? st.doneNs : c.sim.now;
    const span = Math.max(1, end - t.startNs);
    const r = result(c, f, t.bytes, t.count, {
      sent: st.segmentsSent,
      delivered: st.bytesAcked,
      lost: st.retransmits,
      deliveredRatio: t.bytes === 0 ? 0 : st.bytesAcked / t.bytes,
      tooBig: 0,
      duplicates: 0,
      latencyP50Ns: rtts.length > 0 ? percentile(rtts, 50) : null,
      latencyP99Ns: rtts.length > 0 ? percentile(rtts, 99) : null,
      latencyMaxNs: rtts.length > 0 ? rtts[rtts.length - 1]! : null,
      throughputBps: (st.segmentsSent * (st.mss + (t.family === 4 ? 40 : 60)) * 8 * 1e9) / span,
      goodputBps: (st.bytesAcked * 8 * 1e9) / span,
    });
    r.tcp = {
      state: st.state,
      mss: st.mss,
      retransmits: st.retransmits,
      timeouts: st.timeouts,
      fastRetransmits: st.fastRetransmits,
      pmtuReductions: st.pmtuReductions,
      completedNs: st.completed ? st.doneNs : null,
    };
    return r;
  }
  const st = f.udp!.stats;
  const r = f.sink!.report(f.udp!.flowId, st.sent);
  const { fit, spanNs: span } = flowSpan(c, f);
  return result(c, f, t.count, fit, {
    sent: st.sent,
    delivered: r.received,
    lost: Math.max(0, st.sent - r.received),
    deliveredRatio: t.count === 0 ? 0 : r.received / t.count,
    tooBig: st.tooBig,
    duplicates: r.duplicates,
    latencyP50Ns: r.received > 0 ? r.latencyP50 : null,
    latencyP99Ns: r.received > 0 ? r.latencyP99 : null,
    latencyMaxNs: r.received > 0 ? r.latencyMax : null,
    throughputBps: (st.sentBytes * 8 * 1e9) / span,
    goodputBps: (r.goodputBytes * 8 * 1e9) / span,
  });
}

/** The value of a counter named `<node>.<group>.<field>`, or an explanation of why there is none. */
export function counterValue(c: Cluster, name: string): number | string {
  const [node, group, field, ...rest] = name.split('.');
  const n = c.nodes.get(node ?? '');
  if (n === undefined || group === undefined || field === undefined || rest.length > 0) return `expected <node>.<group>.<field>, e.g. node1.tunnel.icmpSent`;
  const pick = (o: object, what: string): number | string => {
    const v = (o as Record<string, unknown>)[field];
    return typeof v === 'number'
      ? v
      : `${what} has no counter "${field}" (it has ${Object.keys(o)
          .filter((k) => typeof (o as Record<string, unknown>)[k] === 'number')
          .join(', ')})`;
  };
  switch (group) {
    case 'macs':
      return pick(n.bridge.macs.stats, 'macs');
    case 'bridge':
      return pick(
        { floodCopies: n.bridge.floodCopies, generated: n.bridge.generated, fragmentsMade: n.bridge.fragmentsMade, fragmentsMerged: n.bridge.fragmentsMerged },
        'bridge',
      );
    case 'tunnel':
      return pick(n.tunnel.mtuStats, 'tunnel');
    case 'esp': {
      if (n.tunnel.sadb === null) return `${node} does not encrypt`;
      let out = 0,
        inn = 0;
      for (const v of n.tunnel.vteps) {
        out += v.txPackets;
        inn += v.rxPackets;
      }
      return pick({ packetsOut: out, packetsIn: inn }, 'esp');
    }
    default: {
      const port = group === 'underlay' ? n.tunnelPort : n.bridge.ports.find((p) => p !== null && p.name === group);
      if (port === undefined || port === null)
        return `${node} has no counter group or port "${group}" (groups: macs, bridge, tunnel, esp, underlay, gw, or a pod name)`;
      return pick(
        {
          rxPackets: port.counters.rxPackets,
          txPackets: port.counters.txPackets,
          rxBytes: port.counters.rxBytes,
          txBytes: port.counters.txBytes,
          dropped: port.counters.dropped,
        },
        `${node}.${group}`,
      );
    }
  }
}

function nodeDrops(n: NodeRt): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const p of n.bridge.ports) {
    if (p === null) continue;
    const d = p.counters.dropsByReason();
    const name = p.kind === 'tunnel' ? 'underlay' : p.name;
    if (Object.keys(d).length > 0) out[name] = d;
  }
  const gw = n.bridge.gateway;
  if (gw !== null) {
    const d = gw.counters.dropsByReason();
    if (Object.keys(d).length > 0) {
      const into = (out['gw'] ??= {});
      for (const [k, v] of Object.entries(d)) into[k] = (into[k] ?? 0) + v;
    }
  }
  return out;
}

function buildReport(c: Cluster): Report {
  const flows = c.flows.map((f) => flowResult(c, f));
  const byName = new Map(flows.map((f) => [f.name, f]));
  const drops: Report['drops'] = {};
  let inner = 0,
    outer = 0;
  for (const n of c.nodes.values()) {
    const d = nodeDrops(n);
    if (Object.keys(d).length > 0) drops[n.spec.name] = d;
    for (const v of n.tunnel.vteps) inner += v.txInnerBytes;
    outer += n.tunnelPort.counters.txBytes;
  }
  const paths: PathResult[] = [];
  const pd = new Float64Array(PATH_DROPS.length);
  c.fabric.forEachPath((a, b, link) => {
    const s0 = link.a.stats,
      s1 = link.b.stats;
    pd.fill(0);
    addPathDrops(pd, s0);
    addPathDrops(pd, s1);
    const dropped: Record<string, number> = {};
    for (let j = 0; j < PATH_DROPS.length; j++) if (pd[j]! > 0) dropped[PATH_DROPS[j]!] = pd[j]!;
    paths.push({ a, b, sent: [s0.sent, s1.sent], delivered: [s0.delivered, s1.delivered], dropped });
  });
  const expectations = checkExpectations(c.scenario.expect, byName, drops, (name) => {
    const v = counterValue(c, name);
    return typeof v === 'number' ? v : `no such counter: ${v}`;
  });
  return {
    scenario: c.scenario.name,
    seed: c.seed,
    durationNs: c.scenario.durationNs,
    events: c.sim.events,
    podMtu: c.scenario.podMtu,
    flows,
    drops,
    wireOverheadPct: inner > 0 ? ((outer - inner) / inner) * 100 : null,
    innerBytes: inner,
    outerBytes: outer,
    underlay: { paths, unknownDst: c.fabric.stats.unknownDst, uplinkDown: c.fabric.stats.uplinkDown },
    captures: c.captures.map((k) => ({ name: k.name, packets: k.packets })),
    expectations,
    ok: expectations.every((x) => x.ok),
  };
}

/**
 * Node `node`'s randomness for ESP incarnations (`NodeEnv.random`): SHA-256 in counter mode over the
 * seed and the node's name. A stream of its own: the simulator's PRNG is not drawn from, so nothing else
 * in a run changes, and one seed gives one run.
 */
function seededRandom(seed: number, node: string): (n: number) => Uint8Array {
  let block = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32) {
      const h = createHash('sha256').update(`seine sim esp random\0${seed}\0${node}\0${block++}`).digest();
      out.set(h.subarray(0, Math.min(32, n - o)), o);
    }
    return out;
  };
}
