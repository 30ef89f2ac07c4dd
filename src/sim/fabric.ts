/**
 * The underlay of a simulated cluster: every node has one uplink (a `Device` its tunnel port sends outer
 * frames into), and between each pair of nodes there is a point-to-point path, a `SimLink` with the
 * underlay's latency, jitter, bandwidth, loss and MTU — or the pair's own, when a scenario overrides them.
 *
 * An uplink hands each frame to the path towards the node whose uplink MAC is the frame's destination
 * (the VTEP's next-hop MAC), so the fabric behaves as a switched L2 underlay in which each pair of nodes
 * has its own wire: a per-pair MTU (a PMTU black hole between two nodes), a per-pair outage, a per-pair
 * delay. Frames to a MAC that is no node's (broadcast, unknown) are dropped and counted. Paths are made
 * on first use, so a 1,000-node cluster pays only for the pairs that talk.
 *
 * Faults: `setPathUp(a, b, up)` takes one path down or up; `setNodeUp(n, up)` takes a node's uplink
 * down (its carrier drops: the bridge sees the port go down, and nothing reaches or leaves the node).
 */
import type { Device, Receiver } from '../datapath/device.js';
import type { TraceSink } from '../datapath/trace.js';
import { PacketBatch, type PacketPool } from '../packet/buf.js';
import { rdMac } from '../wire/bytes.js';
import type { Simulator } from './engine.js';
import { SimLink, type LinkConfig, type LinkStats, type SimLinkEnd } from './link.js';

/** What the fabric itself dropped (paths count their own drops in `LinkStats`). */
export interface FabricStats {
  /** Frames to a MAC that is no node's uplink (broadcast, unknown). */
  unknownDst: number;
  /** Frames a node sent to itself. */
  toSelf: number;
  /** Frames sent or due while a node's uplink was down. */
  uplinkDown: number;
  /** Frames handed to paths (before their loss, queue and MTU). */
  frames: number;
}

/** A node's uplink: the device its tunnel port uses as the underlay. */
export class Uplink implements Device {
  linkUp = true;
  private rx: Receiver | null = null;
  private listener: ((up: boolean) => void) | null = null;
  readonly name: string;
  /** `deliver` as a receiver, made once: the paths towards this node (up to one per other node) share it. */
  readonly receiver: Receiver = (batch) => this.deliver(batch);

  constructor(
    readonly fabric: Fabric,
    readonly index: number,
    readonly node: string,
    readonly mac: number,
    readonly mtu: number,
  ) {
    this.name = `${node}/underlay`;
  }

  transmit(batch: PacketBatch): void {
    this.fabric.send(this, batch);
  }

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(fn: ((up: boolean) => void) | null): void {
    this.listener = fn;
  }

  /** @internal frames from a path. */
  deliver(batch: PacketBatch): void {
    if (!this.linkUp || this.rx === null) {
      this.fabric.stats.uplinkDown += batch.length;
      for (let i = 0; i < batch.length; i++) batch.get(i).release();
      batch.clear();
      return;
    }
    const trace = this.fabric.trace;
    if (trace !== null) {
      for (let i = 0; i < batch.length; i++) {
        const p = batch.get(i);
        if (p.traced)
          trace({ node: this.node, stage: 'underlay', port: 'underlay', action: `arrived on the uplink (${p.length} bytes)`, detail: { bytes: p.length } });
      }
    }
    this.rx(batch);
  }

  /** @internal carrier change. */
  setCarrier(up: boolean): void {
    if (this.linkUp === up) return;
    this.linkUp = up;
    this.listener?.(up);
  }
}

/** One path between two nodes; `lo` is the lower node index (its uplink uses end `a`). */
interface Path {
  link: SimLink;
  lo: number;
  hi: number;
}

export class Fabric {
  readonly uplinks: Uplink[] = [];
  readonly stats: FabricStats = { unknownDst: 0, toSelf: 0, uplinkDown: 0, frames: 0 };
  private readonly byMac = new Map<number, number>();
  private readonly byName = new Map<string, number>();
  private readonly paths = new Map<number, Path>();
  private readonly overrides = new Map<number, LinkConfig>();
  /** Paths taken down before they were made (made down). */
  private readonly downPaths = new Set<number>();
  private readonly one = new PacketBatch();
  /** Where records of traced frames crossing the fabric go. */
  trace: TraceSink | null = null;

  /** `defaults`: every path's configuration unless overridden; `mtu` is what each uplink reports. */
  constructor(
    readonly sim: Simulator,
    readonly pool: PacketPool,
    readonly defaults: LinkConfig,
    readonly mtu: number,
  ) {}

  addNode(name: string, mac: number): Uplink {
    if (this.byName.has(name)) throw new RangeError(`fabric: node ${name} already has an uplink`);
    if (this.byMac.has(mac)) throw new RangeError(`fabric: MAC ${mac.toString(16)} already belongs to an uplink`);
    const u = new Uplink(this, this.uplinks.length, name, mac, this.mtu);
    this.uplinks.push(u);
    this.byMac.set(mac, u.index);
    this.byName.set(name, u.index);
    return u;
  }

  private node(name: string): number {
    const i = this.byName.get(name);
    if (i === undefined) throw new RangeError(`fabric: no node ${name}`);
    return i;
  }

  private key(i: number, j: number): number {
    return i < j ? i * 1048576 + j : j * 1048576 + i;
  }

  /** The path between two nodes gets its own configuration (over the defaults). Call before traffic. */
  override(a: string, b: string, cfg: LinkConfig): void {
    const k = this.key(this.node(a), this.node(b));
    if (this.paths.has(k)) throw new RangeError(`fabric: path ${a}-${b} is already in use`);
    this.overrides.set(k, { ...this.defaults, ...cfg });
  }

  /** Stats of what each direction of a path carried, if it exists: [a → b, b → a]. */
  pathStats(a: string, b: string): [LinkStats, LinkStats] | null {
    const i = this.node(a),
      j = this.node(b);
    const p = this.paths.get(this.key(i, j));
    if (p === undefined) return null;
    return i === p.lo ? [p.link.a.stats, p.link.b.stats] : [p.link.b.stats, p.link.a.stats];
  }

  /** Every path made so far, with its node names. */
  allPaths(): Array<{ a: string; b: string; link: SimLink }> {
    const out: Array<{ a: string; b: string; link: SimLink }> = [];
    this.forEachPath((a, b, link) => out.push({ a, b, link }));
    return out;
  }

  /**
   * `fn` with every path made so far (in the order made, as `allPaths`), without an array or an object per
   * path: the report and each sample of a recorded run walk the 95,000 paths of a 1,000-node run.
   */
  forEachPath(fn: (a: string, b: string, link: SimLink) => void): void {
    for (const p of this.paths.values()) fn(this.nodeName(p.lo), this.nodeName(p.hi), p.link);
  }

  private nodeName(i: number): string {
    return this.uplinks[i]!.node;
  }

  setPathUp(a: string, b: string, up: boolean): void {
    const i = this.node(a),
      j = this.node(b);
    const k = this.key(i, j);
    const p = this.paths.get(k);
    if (p !== undefined) p.link.setUp(up);
    else if (up) this.downPaths.delete(k);
    else this.downPaths.add(k);
  }

  setNodeUp(name: string, up: boolean): void {
    this.uplinks[this.node(name)]!.setCarrier(up);
  }

  private pathAt(i: number, j: number): Path {
    const k = this.key(i, j);
    let p = this.paths.get(k);
    if (p !== undefined) return p;
    const lo = Math.min(i, j),
      hi = Math.max(i, j);
    const cfg = this.overrides.get(k) ?? this.defaults;
    // The configuration object is shared (see `SimLink`'s `macs`): one hidden class, and hot in the cache.
    const link = new SimLink(
      this.sim,
      this.pool,
      cfg,
      [`${this.nodeName(lo)}->${this.nodeName(hi)}`, `${this.nodeName(hi)}->${this.nodeName(lo)}`],
      [this.uplinks[lo]!.mac, this.uplinks[hi]!.mac],
    );
    // What end a sends arrives at end b, which belongs to the higher node.
    link.b.setReceiver(this.uplinks[hi]!.receiver);
    link.a.setReceiver(this.uplinks[lo]!.receiver);
    p = { link, lo, hi };
    this.paths.set(k, p);
    if (this.downPaths.delete(k)) link.setUp(false);
    return p;
  }

  /** Sends the traced frame in `this.one` and says what the path did with it. */
  private traceSend(end: SimLinkEnd, len: number, from: number, to: number, cfg: LinkConfig): void {
    const before = { ...end.stats };
    end.transmit(this.one);
    const a = this.nodeName(from),
      b = this.nodeName(to);
    const s = end.stats;
    const why =
      s.droppedDown > before.droppedDown
        ? 'the path is down'
        : s.droppedMtu > before.droppedMtu
          ? `${len - 14} bytes exceed the path MTU ${end.mtu}, no ICMP (a black hole)`
          : s.droppedQueue > before.droppedQueue
            ? 'the queue is full'
            : s.droppedLoss > before.droppedLoss
              ? 'lost (random loss)'
              : null;
    const detail = { path: `${a}-${b}`, mtu: end.mtu, latencyNs: cfg.latencyNs ?? 0, bytes: len };
    this.trace!({
      node: a,
      stage: why === null ? 'underlay' : 'drop',
      port: 'underlay',
      action:
        why === null
          ? `underlay path ${a} → ${b} (${len} bytes, latency ${cfg.latencyNs ?? 0} ns, MTU ${end.mtu})`
          : `dropped on the underlay path ${a} → ${b}: ${why}`,
      detail,
    });
  }

  /** @internal frames from node `from`'s uplink. */
  send(from: Uplink, batch: PacketBatch): void {
    const one = this.one;
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      if (!from.linkUp) {
        this.stats.uplinkDown++;
        p.release();
        continue;
      }
      const to = this.byMac.get(rdMac(p.data, p.start));
      if (to === undefined) {
        this.stats.unknownDst++;
        p.release();
        continue;
      }
      if (to === from.index) {
        this.stats.toSelf++;
        p.release();
        continue;
      }
      this.stats.frames++;
      const path = this.pathAt(from.index, to);
      one.add(p);
      const end = from.index === path.lo ? path.link.a : path.link.b;
      if (p.traced && this.trace !== null) this.traceSend(end, p.length, from.index, to, path.link.cfg);
      else end.transmit(one);
      one.clear();
    }
    batch.clear();
  }
}
