/**
 * The bridge's state and how a node is built on it: ports, the gateway, tunnels with their VTEPs, VNIs,
 * routes and static MACs; the housekeeping `tick`; the books a drop goes into and the trace records of
 * traced packets. The pipeline itself (bridge.ts, `Bridge`) extends this: one class in two files, so
 * that each stays readable. @internal — use `Bridge`.
 */
import type { MacTableOptions } from './mactable.js';
import { LearnResult, MacTable } from './mactable.js';
import { BATCH_SIZE, PacketBatch, type PacketBuf, type PacketPool } from '../packet/buf.js';
import { GsoStats } from '../packet/gso.js';
import { hex, ipv4ToString, ipv6ToString, macToString, rd32, rdMac } from '../wire/bytes.js';
import { GeneveView, GENEVE_HEADER_LEN } from '../wire/geneve.js';
import { DropReason, dropReasonName } from '../wire/drop.js';
import { ETH_HEADER_LEN } from '../wire/ethernet.js';
import { Tunnel, type TunnelConfig, type VtepConfig } from '../overlay/tunnel.js';
import { TooBigLimiter } from '../mtu/icmp.js';
import { Reassembler, type ReassemblerOptions } from '../mtu/reassembly.js';
import type { Device } from './device.js';
import { Gateway, GLOBAL_VIRTUAL_MAC, type GatewayConfig } from './gateway.js';
import { Port, type PortKind, type VlanConfig } from './port.js';
import type { Stage, TraceSink, TraceValue } from './trace.js';

/** The clock a bridge reads once per batch: nanoseconds, virtual in the simulator. */
export interface Clock {
  now(): number;
}

export interface BridgeOptions {
  /** The node's name, used in trace records. */
  name: string;
  /** Buffers for flood copies and frames the gateway builds. */
  pool: PacketPool;
  clock: Clock;
  macTable?: MacTableOptions;
  /** Frames that may wait while the bridge is busy (a device delivering from inside a batch). Default 4096. */
  queueCapacity?: number;
}

export interface PortOptions extends VlanConfig {
  /** Default: the device's MTU. */
  mtu?: number;
  /** Default: the device's MAC. */
  mac?: number;
}

export interface GatewayPortOptions extends GatewayConfig {
  name: string;
  mac: number;
  /** The segment (VLAN) the pods and the gateway share. Default 0. */
  vlan?: number;
  mtu?: number;
}

/** `outPort` value meaning "flood on the segment". */
export const FLOOD = -2;

/** A packet waiting for an ESP peer's announcement: the tunnel port, the VTEP (`aux`), since when. */
export interface HeldForEsp {
  p: PacketBuf;
  port: number;
  aux: number;
  at: number;
}

/**
 * Packets per VTEP that may wait for ESP announcements (more are dropped as EspNoSa): a start's burst —
 * a TCP window, a pod's start-up chatter, several pods at once — fits; WireGuard stages as many per peer
 * (MAX_STAGED_PACKETS). In all, at most a quarter of the pool waits, so the rest keeps flowing.
 */
const HELD_PER_PEER = 128;

/** The key of a (tunnel port, VTEP) pair in `espHeldPerPeer`: one number, so a lookup allocates nothing. */
function heldKey(port: number, aux: number): number {
  return port * 2 ** 32 + aux;
}

export abstract class BridgeBase {
  readonly name: string;
  readonly macs: MacTable;
  /** Ports by index; a removed port leaves a hole (indexes stay stable for MAC entries and routes). */
  readonly ports: Array<Port | null> = [];
  /** Where trace records of traced packets go. */
  trace: TraceSink | null = null;
  /** Extra copies made by floods (a flood to k ports makes k − 1). */
  floodCopies = 0;
  protected readonly pool: PacketPool;
  protected readonly clock: Clock;
  protected readonly byName = new Map<string, Port>();
  protected readonly tunnels: Array<Tunnel | null> = [];
  protected gw: Gateway | null = null;
  /** One key for the MAC lookup after routing (`toGateway`), in the batch lookup's arrays. */
  protected readonly gwKey = { segs: new Int32Array(1), macs: new Float64Array(1), ports: new Int32Array(1), auxs: new Int32Array(1) };
  protected gwPort: Port | null = null;
  protected busy = false;
  protected now = 0;
  /**
   * Ports with frames waiting in `out`: the first `dirtyLen` entries. A count rather than `length = 0`,
   * which makes V8 free the array's storage and allocate it again on the next batch.
   */
  protected dirty: Array<Port | null> = new Array<Port | null>(16).fill(null);
  protected dirtyLen = 0;
  /** Frames that arrived while busy: their port indexes and buffers, a ring. */
  protected readonly qPort: Int32Array;
  protected readonly qPkt: Array<PacketBuf | null>;
  protected qHead = 0;
  protected qLen = 0;
  protected readonly drainBatch = new PacketBatch();
  /** Flood destinations of the packet being flooded: (port, aux) pairs. */
  protected floodPorts: Int32Array = new Int32Array(256);
  protected floodAux: Int32Array = new Int32Array(256);
  protected floodCopiesBuf: Array<PacketBuf | null> = new Array<PacketBuf | null>(256).fill(null);
  protected flooding = false;
  /** Per-batch keys and answers of the learn and lookup stages (grown for a larger batch). */
  protected kSeg = new Int32Array(BATCH_SIZE);
  protected kSrc = new Float64Array(BATCH_SIZE);
  protected kDst = new Float64Array(BATCH_SIZE);
  protected kAux = new Int32Array(BATCH_SIZE);
  protected kLearned = new Uint8Array(BATCH_SIZE);
  protected kPort = new Int32Array(BATCH_SIZE);
  protected kOutAux = new Int32Array(BATCH_SIZE);
  /** Per tunnel port: the limiter of its ICMP too-big messages and the reassembler of its outer fragments. */
  protected readonly limiters: Array<TooBigLimiter | null> = [];
  protected readonly reasm: Array<Reassembler | null> = [];
  /**
   * Tunnel ports whose reassembler (some 380 KB of tables) is made when the first outer fragment comes:
   * until then the port holds and has discarded nothing, which is what an empty one would say. Only
   * default options wait (they cannot be invalid); given options are checked when the port is added.
   */
  protected readonly reasmLater: boolean[] = [];
  /** Reassembly discards already copied into the port's drop counters, per tunnel port. */
  protected readonly reasmDropsSeen: Array<Float64Array | null> = [];
  /** Scratch list of the fragments of one packet. */
  protected readonly fragOut: PacketBuf[] = [];
  /** Frames the bridge built itself: ICMP too-big messages back to senders, ESP announcements to peers. */
  generated = 0;
  /** Extra frames made by fragmentation (a packet split in k makes k − 1). */
  fragmentsMade = 0;
  /** Fragments merged away by reassembly (k fragments become one frame: k − 1). */
  fragmentsMerged = 0;
  /** Extra frames made by segmenting super-frames (one split in k makes k − 1). */
  segmentsMade = 0;
  /** Super-frames segmented and the segments made (packet/gso.ts keeps them). */
  readonly gso = new GsoStats();
  /** The segments of one super-frame (up to 64 KiB in segments as small as the path allows). */
  protected readonly segOut = new PacketBatch(4096);
  /** Floods that arrived while one was in progress (see `flood`). */
  protected readonly deferred: PacketBuf[] = [];
  /** Tunnel ports with ESP (their SA databases need service after each batch and on `tick`). */
  protected readonly espPorts: Port[] = [];
  /** Packets waiting for an ESP peer's announcement. */
  protected readonly espHeld: HeldForEsp[] = [];
  /**
   * How many of `espHeld` wait for each peer, by `heldKey(port, aux)`: the per-peer cap is checked per
   * packet held, and a start-up burst holds up to a quarter of the pool, so counting by a scan would cost
   * O(n²). Kept where entries are held, released and dropped; a peer with none has no key.
   */
  protected readonly espHeldPerPeer = new Map<number, number>();

  /** `p`, for the tunnel port `port` and VTEP `aux`, waits for the peer's announcement (see `serviceEsp`). */
  protected holdForEsp(p: PacketBuf, port: Port, aux: number): void {
    const k = heldKey(port.index, aux);
    const mine = this.espHeldPerPeer.get(k) ?? 0;
    if (mine >= HELD_PER_PEER || this.espHeld.length >= this.pool.size >> 2) {
      this.drop(p, port, DropReason.EspNoSa, 'encapsulate');
      return;
    }
    if (p.traced) this.record('encapsulate', port, "held: waiting for the peer's ESP announcement", { waiting: mine + 1 });
    this.espHeld.push({ p, port: port.index, aux, at: this.now });
    this.espHeldPerPeer.set(k, mine + 1);
  }

  /**
   * Takes out, in the order they were held, the packets for the tunnel port at `port` whose VTEP is in
   * `ready` (its peer can be sent to now). The rest are compacted in one pass, not a splice each: a
   * start-up burst holds up to a quarter of the pool.
   */
  protected releaseHeld(port: number, ready: readonly number[]): HeldForEsp[] {
    const go: HeldForEsp[] = [];
    let kept = 0;
    for (const h of this.espHeld) {
      if (h.port === port && ready.includes(h.aux)) {
        go.push(h);
        this.unhold(h);
      } else this.espHeld[kept++] = h;
    }
    this.espHeld.length = kept;
    return go;
  }

  /** `h` waits no more (released or dropped): one fewer for its peer. */
  private unhold(h: HeldForEsp): void {
    const k = heldKey(h.port, h.aux);
    const n = (this.espHeldPerPeer.get(k) ?? 0) - 1;
    if (n > 0) this.espHeldPerPeer.set(k, n);
    else this.espHeldPerPeer.delete(k);
  }

  /**
   * Drops the waiting packets `which` selects (EspNoSa), on their tunnel port; null selects those that
   * waited longer than their database's `waitNs` (checked once a batch while any wait, without a closure).
   * The rest are compacted in one pass, as in `releaseHeld`.
   */
  protected dropHeld(which: ((h: HeldForEsp) => boolean) | null): void {
    let kept = 0;
    for (const h of this.espHeld) {
      if (which === null ? this.now - h.at <= this.tunnels[h.port]!.sadb!.waitNs : !which(h)) {
        this.espHeld[kept++] = h;
        continue;
      }
      this.unhold(h);
      const port = this.ports[h.port];
      if (port === null || port === undefined) h.p.release();
      else this.drop(h.p, port, DropReason.EspNoSa, 'encapsulate');
    }
    this.espHeld.length = kept;
  }

  constructor(opts: BridgeOptions) {
    this.name = opts.name;
    this.pool = opts.pool;
    this.clock = opts.clock;
    this.macs = new MacTable(opts.macTable);
    const q = opts.queueCapacity ?? 4096;
    this.qPort = new Int32Array(q);
    this.qPkt = new Array<PacketBuf | null>(q).fill(null);
  }

  // ---- building a node ----------------------------------------------------------------------------------

  protected newPort(name: string, kind: PortKind, mac: number, mtu: number, device: Device | null): Port {
    if (name === '' || this.byName.has(name)) throw new RangeError(`bridge ${this.name}: port name "${name}" is ${name === '' ? 'empty' : 'already used'}`);
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new RangeError(`bridge ${this.name}: port ${name}: MTU ${mtu} is not 68-65535`);
    // A removed port's slot is taken again (the CNI adds and removes pods for the node's whole life: the
    // index space, and the MAC table's per-port state sized by it, stay as large as the most ports at once).
    // Nothing keeps a removed port's index: removePort flushed its MAC entries and held packets.
    const free = this.ports.indexOf(null);
    const index = free >= 0 ? free : this.ports.length;
    const port = new Port(index, name, kind, mac, mtu, device);
    this.ports[index] = port;
    this.tunnels[index] = null;
    this.limiters[index] = null;
    this.reasm[index] = null;
    this.reasmLater[index] = false;
    this.reasmDropsSeen[index] = null;
    this.byName.set(name, port);
    return port;
  }

  protected plug(port: Port, device: Device): void {
    port.linkUp = device.linkUp;
    device.setReceiver((batch) => this.receive(port, batch));
    device.setLinkListener((up) => this.setLink(port, up));
  }

  /** Plugs a device (a veth end, a TAP, a simulated link) into a new port. */
  addPort(name: string, device: Device, opts: PortOptions = {}, kind: 'veth' | 'device' = 'device'): Port {
    const port = this.newPort(name, kind, opts.mac ?? device.mac, opts.mtu ?? device.mtu, device);
    try {
      port.setVlans(opts, `bridge ${this.name}: port ${name}`);
    } catch (e) {
      this.removePort(port);
      throw e;
    }
    this.plug(port, device);
    return port;
  }

  /** The node's gateway port (one per bridge): its MAC is a static entry on its segment. */
  addGateway(opts: GatewayPortOptions): Port {
    if (this.gw !== null) throw new RangeError(`bridge ${this.name}: already has gateway ${this.gwPort!.name}`);
    const port = this.newPort(opts.name, 'gateway', opts.mac, opts.mtu ?? 1500, null);
    try {
      port.setVlans(opts.vlan === undefined ? {} : { vlan: opts.vlan }, `bridge ${this.name}: gateway ${opts.name}`);
      this.gw = new Gateway(
        opts.mac,
        port.vlan,
        opts,
        () => this.pool.alloc(),
        (p) => this.emitFromGateway(p),
      );
    } catch (e) {
      this.removePort(port);
      throw e;
    }
    this.gwPort = port;
    this.macs.addStatic(port.vlan, opts.mac, port.index);
    this.macs.addStatic(port.vlan, GLOBAL_VIRTUAL_MAC, port.index);
    return port;
  }

  get gateway(): Gateway | null {
    return this.gw;
  }

  /** A tunnel port whose underlay (outer frames in and out) is `underlay`. */
  addTunnel(name: string, underlay: Device, cfg: Omit<TunnelConfig, 'localMac'> & { localMac?: number; reassembly?: Omit<ReassemblerOptions, 'pool'> }): Port {
    const { reassembly, ...tcfg } = cfg;
    const tunnel = new Tunnel({ ...tcfg, localMac: cfg.localMac ?? underlay.mac });
    const reasm = reassembly === undefined ? null : new Reassembler({ ...reassembly, pool: this.pool });
    const port = this.newPort(name, 'tunnel', underlay.mac, underlay.mtu, underlay);
    this.tunnels[port.index] = tunnel;
    this.limiters[port.index] = new TooBigLimiter({ ratePerSec: tunnel.icmpRate.perSecond, burst: tunnel.icmpRate.burst });
    if (reasm !== null) {
      this.reasm[port.index] = reasm;
      this.reasmDropsSeen[port.index] = new Float64Array(reasm.drops.length);
    } else this.reasmLater[port.index] = true;
    if (tunnel.sadb !== null) this.espPorts.push(port);
    this.plug(port, underlay);
    return port;
  }

  /** The tunnel behind a tunnel port. */
  tunnel(port: Port | string): Tunnel {
    const p = this.port(port);
    const t = this.tunnels[p.index];
    if (t === null || t === undefined) throw new RangeError(`bridge ${this.name}: port ${p.name} is not a tunnel port`);
    return t;
  }

  addVtep(port: Port | string, vtep: VtepConfig): number {
    return this.tunnel(port).addVtep(vtep, this.clock.now());
  }

  /**
   * Removes the remote VTEP at `ip` from a tunnel port (a peer left the cluster): the MAC entries behind it
   * (learned and static) and the routes through it go too, so its pods' traffic is dropped where the
   * lookup fails — `NoRoute` at the gateway (routed), a flood that no longer reaches it (l2) — and what was
   * already on its way to it as `UnknownVtep`. Other VTEPs, their entries and routes are untouched.
   */
  removeVtep(port: Port | string, ip: string): void {
    const tp = this.port(port);
    const v = this.tunnel(tp).removeVtep(ip);
    this.macs.flushAux(tp.index, v);
    this.gw?.removeRoutesVia(tp.index, v);
    this.dropHeld((h) => h.port === tp.index && h.aux === v);
  }

  /** L2 tunnels: carries segment (VLAN) `segment` as VNI `vni`. */
  mapVni(port: Port | string, vni: number, segment: number): void {
    this.tunnel(port).mapVni(vni, segment);
  }

  /** Routes another node's podCIDR through a routed tunnel port to the VTEP at `vtepIp`. */
  addRoute(prefix: string, via: { tunnel: string; vtep: string }): void {
    if (this.gw === null) throw new RangeError(`bridge ${this.name}: routes need a gateway (addGateway first)`);
    const tp = this.port(via.tunnel);
    const t = this.tunnel(tp);
    if (t.mode !== 'routed') throw new RangeError(`bridge ${this.name}: route ${prefix}: tunnel ${tp.name} is not in routed mode`);
    const v = t.findVtep(via.vtep);
    if (v < 0) throw new RangeError(`bridge ${this.name}: route ${prefix}: no VTEP ${via.vtep} on ${tp.name} (addVtep first)`);
    this.gw.addRoute(prefix, { port: tp.index, vtep: v });
  }

  /** Removes the route for `prefix` (another node's podCIDR); false when there was none. */
  removeRoute(prefix: string): boolean {
    if (this.gw === null) throw new RangeError(`bridge ${this.name}: routes need a gateway (addGateway first)`);
    return this.gw.removeRoute(prefix);
  }

  addNeighbor(ip: string, mac: number): void {
    if (this.gw === null) throw new RangeError(`bridge ${this.name}: neighbours need a gateway (addGateway first)`);
    this.gw.addNeighbor(ip, mac);
  }

  /** Removes a static neighbour of the gateway (a pod detached at run time); false when there was none. */
  removeNeighbor(ip: string): boolean {
    if (this.gw === null) throw new RangeError(`bridge ${this.name}: neighbours need a gateway (addGateway first)`);
    return this.gw.removeNeighbor(ip);
  }

  /** A static MAC entry; the port must carry the segment (a tunnel: map it to a VNI; give the VTEP as `vtep`). */
  addStaticMac(segment: number, mac: number, port: Port | string, vtep?: string): void {
    const p = this.port(port);
    const t = this.tunnels[p.index];
    let aux = 0;
    if (t !== null && t !== undefined) {
      if (t.vniFor(segment) < 0 || t.mode !== 'l2')
        throw new RangeError(`bridge ${this.name}: static MAC on ${p.name}: segment ${segment} has no VNI on this tunnel`);
      if (vtep === undefined || (aux = t.findVtep(vtep)) < 0)
        throw new RangeError(`bridge ${this.name}: static MAC on ${p.name}: give the remote VTEP it lives behind (addVtep first)`);
    } else if (!p.carries(segment)) {
      throw new RangeError(`bridge ${this.name}: static MAC on ${p.name}: the port does not carry segment ${segment}`);
    }
    this.macs.addStatic(segment, mac, p.index, aux);
  }

  /** A port by name (or the port itself, checked to belong here). */
  port(p: Port | string): Port {
    const port = typeof p === 'string' ? this.byName.get(p) : p;
    if (port === undefined || this.ports[port.index] !== port) throw new RangeError(`bridge ${this.name}: no port ${typeof p === 'string' ? p : p.name}`);
    return port;
  }

  /** Removes a port: its MAC entries (static too) are flushed and its device unplugged. */
  removePort(p: Port | string): void {
    const port = this.port(p);
    port.device?.setReceiver(null);
    port.device?.setLinkListener(null);
    for (let i = 0; i < port.out.length; i++) port.out.get(i).release();
    port.out.clear();
    this.macs.flushPort(port.index, true);
    this.ports[port.index] = null;
    this.tunnels[port.index] = null;
    this.reasm[port.index]?.clear();
    this.reasm[port.index] = null;
    this.reasmLater[port.index] = false;
    const e = this.espPorts.indexOf(port);
    if (e >= 0) this.espPorts.splice(e, 1);
    this.dropHeld((h) => h.port === port.index);
    this.byName.delete(port.name);
    if (port === this.gwPort) {
      this.gw = null;
      this.gwPort = null;
    }
  }

  /** Administrative state (`ip link set … up/down`); down flushes the port's learned MACs. */
  setAdmin(p: Port | string, up: boolean): void {
    const port = this.port(p);
    port.adminUp = up;
    this.flushIfDown(port);
  }

  /** Carrier change reported by the device; down flushes the port's learned MACs. */
  setLink(p: Port | string, up: boolean): void {
    const port = this.port(p);
    port.linkUp = up;
    this.flushIfDown(port);
  }

  protected flushIfDown(port: Port): void {
    if (!port.up) this.macs.flushPort(port.index, false);
  }

  /** Periodic housekeeping: ages the MAC table. Returns the number of entries aged out. */
  tick(): number {
    const now = this.clock.now();
    for (let i = 0; i < this.reasm.length; i++) {
      const r = this.reasm[i];
      if (r !== null && r !== undefined && r.expire(now) > 0) this.syncReasmDrops(this.ports[i]!);
      this.tunnels[i]?.sadb?.expire(now);
    }
    if (this.espPorts.length > 0 && !this.busy) {
      // Announcements due and packets waited too long: sent and dropped as in a batch.
      this.busy = true;
      try {
        this.setNow(now);
        this.serviceEsp();
        this.flush();
        this.drain();
      } finally {
        this.busy = false;
      }
    }
    return this.macs.age(now);
  }

  /** Incomplete datagrams' fragments held by the tunnel ports' reassemblers (for the books). */
  get heldFragments(): number {
    let n = 0;
    for (const r of this.reasm) if (r !== null && r !== undefined) n += r.heldFragments;
    return n;
  }

  /** Packets waiting for an ESP peer's announcement (for the books). */
  get heldForEsp(): number {
    return this.espHeld.length;
  }

  /**
   * The batch's time, for the bridge and what it hands packets to per packet (the gateway, the tunnels):
   * they read it from a field, as a double passed per packet to a call V8 did not inline is boxed.
   */
  protected setNow(now: number): void {
    this.now = now;
    if (this.gw !== null) this.gw.now = now;
    this.macs.queryTime = now;
    for (let i = 0; i < this.tunnels.length; i++) {
      const t = this.tunnels[i];
      if (t !== null && t !== undefined) t.now = now;
    }
  }

  /** Copies the reassembler's discards since the last look into the port's drop counters. */
  protected syncReasmDrops(port: Port): void {
    const r = this.reasm[port.index];
    const seen = this.reasmDropsSeen[port.index];
    if (r === null || r === undefined || seen === null || seen === undefined) return;
    const d = r.drops;
    for (let i = 0; i < d.length; i++) {
      if (d[i] !== seen[i]) {
        port.counters.drops[i] = port.counters.drops[i]! + (d[i]! - seen[i]!);
        seen[i] = d[i]!;
      }
    }
  }

  protected drop(p: PacketBuf, port: Port, reason: DropReason, stage: Stage): void {
    bump(port.counters.drops, reason);
    if (p.traced) this.record('drop', port, `dropped at ${stage}: ${dropReasonName(reason)}`, { stage, reason: dropReasonName(reason) });
    p.release();
  }

  // ---- trace records (traced packets only) ----------------------------------------------------------------

  protected record(stage: Stage, port: Port, action: string, detail: { [k: string]: TraceValue }): void {
    this.trace?.({ node: this.name, stage, port: port.name, action, detail });
  }

  protected traceOutput(p: PacketBuf, port: Port): void {
    this.record('output', port, `out ${port.name}`, { bytes: p.end - p.start });
  }

  protected destName(idx: number, aux: number): string {
    const port = this.ports[idx];
    if (port === null || port === undefined) return `#${idx}`;
    const t = this.tunnels[idx];
    return t !== null && t !== undefined ? `${port.name}→${t.vteps[aux]?.ip ?? `#${aux}`}` : port.name;
  }

  protected traceIngress(p: PacketBuf, port: Port, tunnel: Tunnel | null, len: number): void {
    const b = p.data;
    this.record('ingress', port, `in ${port.name}`, {
      bytes: len,
      ...(tunnel === null ? { src: macToString(rdMac(b, p.start + 6)), dst: macToString(rdMac(b, p.start)) } : {}),
    });
    if (tunnel !== null) {
      const v = tunnel.vteps[p.tunVtep]!;
      const opts: TraceValue[] = [];
      if (p.tunOptOff >= 0) {
        // The options were checked at decapsulation; the Geneve header sits just before them.
        const g = new GeneveView().at(b, p.tunOptOff - GENEVE_HEADER_LEN);
        for (let o = g.firstOptionOffset; o < g.optionsEnd; o = g.nextOptionOffset(o)) {
          opts.push({ class: g.optionClass(o), type: g.optionType(o), data: hex(b, g.optionDataOffset(o), g.optionDataLen(o)) });
        }
      }
      const esp = tunnel.sadb === null ? null : tunnel.espRx;
      this.record(
        'decapsulate',
        port,
        `${tunnel.kind} VNI ${p.tunVni} from ${v.ip}${esp === null ? '' : `, ESP SPI 0x${esp.spi.toString(16)} seq ${esp.seqHi * 0x1_0000_0000 + esp.seqLo} authenticated`}`,
        {
          kind: tunnel.kind,
          vni: p.tunVni,
          remote: v.ip,
          ...(tunnel.kind === 'geneve' ? { options: opts } : {}),
          ...(esp === null ? {} : { espSpi: esp.spi, espSeq: esp.seqHi * 0x1_0000_0000 + esp.seqLo }),
          innerSrc: macToString(rdMac(b, p.start + 6)),
          innerDst: macToString(rdMac(b, p.start)),
          bytes: p.end - p.start,
        },
      );
    }
  }

  protected traceClassify(p: PacketBuf, port: Port, popped: boolean): void {
    this.record('classify', port, `segment ${p.segment}`, { segment: p.segment, vlan: popped ? 'popped' : 'untagged' });
  }

  protected traceLearn(p: PacketBuf, port: Port, tunnel: Tunnel | null, src: number, r: LearnResult): void {
    this.record('learn', port, `${macToString(src)} on ${port.name}${p.tunVtep >= 0 ? ` via VTEP ${tunnel!.vteps[p.tunVtep]!.ip}` : ''}`, {
      mac: macToString(src),
      segment: p.segment,
      result: LearnResult[r],
    });
  }

  protected traceLookup(p: PacketBuf, port: Port): void {
    if (p.outPort === FLOOD) return; // the flood records its destinations
    const dst = macToString(rdMac(p.data, p.start));
    this.record('lookup', port, `${dst} → ${this.destName(p.outPort, p.outAux)}`, { mac: dst, segment: p.segment, port: this.destName(p.outPort, p.outAux) });
  }

  protected traceEncap(p: PacketBuf, port: Port, tunnel: Tunnel, aux: number, vni: number): void {
    const b = p.data;
    const v = tunnel.vteps[aux]!;
    // From the flow hash and the frame's start: with ESP the UDP header is ciphertext and the IP header moved.
    const sport = v.template.srcPort(p.flowHash);
    const ip = p.start + ETH_HEADER_LEN;
    const v4 = tunnel.family === 4;
    const sa = tunnel.sadb?.peers[aux]?.out ?? null;
    this.record(
      'encapsulate',
      port,
      `${tunnel.kind} VNI ${vni} to ${v.ip}${sa === null ? '' : `, ESP SPI 0x${sa.spi.toString(16)} seq ${sa.seqHi * 0x1_0000_0000 + sa.seqLo}`}`,
      {
        ...(sa === null ? {} : { espSpi: sa.spi, espSeq: sa.seqHi * 0x1_0000_0000 + sa.seqLo }),
        kind: tunnel.kind,
        vni,
        outerSrc: v4 ? ipv4ToString(rd32(b, ip + 12)) : ipv6ToString(b, ip + 8),
        outerDst: v.ip,
        // GRE has no UDP header: its key is the VNI above.
        ...(tunnel.kind === 'gre' ? {} : { udpSrcPort: sport, udpDstPort: tunnel.dstPort }),
        bytes: p.end - p.start,
      },
    );
  }

  /** Processes a batch received on `port` (the pipeline: bridge.ts). */
  abstract receive(port: Port, batch: PacketBatch): void;
  protected abstract serviceEsp(): void;
  protected abstract flush(): void;
  protected abstract drain(): void;
  protected abstract emitFromGateway(p: PacketBuf): void;
}

export function bump(a: Float64Array, i: number): void {
  a[i] = a[i]! + 1;
}
