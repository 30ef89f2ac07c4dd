/**
 * Simulated links: a pair of devices (`Device`, the interface bridge ports talk to) joined by a wire with
 * latency and jitter, a bandwidth with its serialisation delay and a drop-tail queue, random and bursty
 * (Gilbert–Elliott) loss, reordering, duplication, an MTU, and a carrier that scheduled faults take down
 * and up. Time is the simulator's; every random choice comes from its seeded PRNG.
 *
 * A frame handed to `transmit` waits in the sender's queue while the wire is busy (dropped when the queue
 * is full), is serialised at the link's bandwidth, and arrives at the other end `latency` (+ jitter) after
 * its last bit left. Without the `reorder` option frames arrive in the order they were sent, jitter or not
 * (as on a real wire); a frame picked for reordering is held back `delayNs` more and may overtake.
 */
import type { Device, Receiver } from '../datapath/device.js';
import { PacketBatch, type PacketBuf, type PacketPool } from '../packet/buf.js';
import type { SimTask, Simulator } from './engine.js';

export interface LinkConfig {
  /** One-way propagation delay. Default 0. */
  latencyNs?: number;
  /** Standard deviation of a normal delay added to each frame (never below zero). Default 0. */
  jitterNs?: number;
  /** Bits per second; frames take len × 8 / bandwidth to serialise. Default: infinite. */
  bandwidthBps?: number;
  /** Frames that may wait for the wire (drop-tail); counts the one being serialised. Default 1000. */
  queuePackets?: number;
  /** Probability that a frame is lost. Default 0. */
  loss?: number;
  /** Bursty loss, Gilbert–Elliott: per frame, good → bad and bad → good transition probabilities and the loss in each state. */
  burst?: { enterBad: number; leaveBad: number; lossBad: number; lossGood?: number };
  /** A frame picked with this probability arrives `delayNs` late and may be overtaken. */
  reorder?: { probability: number; delayNs: number };
  /** Probability that a frame arrives twice (the copy right after the original). Default 0. */
  duplicate?: number;
  /** L3 MTU of both ends: a longer frame is dropped at the sender. Default 1500. */
  mtu?: number;
}

/** What happened to the frames one end sent. */
export interface LinkStats {
  sent: number;
  /** Frames that reached the peer, duplicates included. */
  delivered: number;
  duplicated: number;
  reordered: number;
  droppedQueue: number;
  droppedLoss: number;
  droppedMtu: number;
  /** Sent while the link was down, or on the wire when it went down (even if it came back before they arrived). */
  droppedDown: number;
  /** Arrived at an end with nothing plugged in. */
  droppedNoRx: number;
}

/** A path's loss reasons as reports and samples name them, in the order `addPathDrops` adds them. */
export const PATH_DROPS = ['queue', 'loss', 'mtu', 'down', 'norx'] as const;

/** Adds one end's losses to `into` in `PATH_DROPS` order (named loads: a keyed load by a string variable was 20× slower here). */
export function addPathDrops(into: Float64Array, s: LinkStats): void {
  into[0] = into[0]! + s.droppedQueue;
  into[1] = into[1]! + s.droppedLoss;
  into[2] = into[2]! + s.droppedMtu;
  into[3] = into[3]! + s.droppedDown;
  into[4] = into[4]! + s.droppedNoRx;
}

function check(name: string, v: number | undefined, min: number, max = Infinity): void {
  if (v !== undefined && !(typeof v === 'number' && v >= min && v <= max))
    throw new RangeError(`link ${name} ${String(v)} is not a number in [${min}, ${max}]`);
}

/** One end of a simulated link. */
export class SimLinkEnd implements Device {
  peer!: SimLinkEnd;
  readonly stats: LinkStats = {
    sent: 0,
    delivered: 0,
    duplicated: 0,
    reordered: 0,
    droppedQueue: 0,
    droppedLoss: 0,
    droppedMtu: 0,
    droppedDown: 0,
    droppedNoRx: 0,
  };
  private rx: Receiver | null = null;
  private listener: ((up: boolean) => void) | null = null;
  /**
   * When the wire from this end is free again, and the serialisation end times of queued frames: a ring
   * that starts empty and doubles up to `qCap` (a 1,000-node fabric has ~10⁵ paths that each queue a
   * frame or two; a plain array, since a typed array costs each path a backing store of its own).
   */
  private busyUntil = 0;
  private queue: number[] = EMPTY_QUEUE;
  private readonly qCap: number;
  private qHead = 0;
  private qLen = 0;
  /** Latest arrival scheduled so far (FIFO unless reordered). */
  private lastArrival = 0;
  private bad = false;

  constructor(
    readonly name: string,
    readonly mac: number,
    private readonly link: SimLink,
  ) {
    this.qCap = link.cfg.queuePackets ?? 1000;
  }

  /** Doubles the queue ring (from 2, up to `qCap`), unrolled so that the head is at 0. */
  private growQueue(): void {
    const q = this.queue;
    const n = Math.min(this.qCap, Math.max(2, q.length * 2));
    const g: number[] = [];
    for (let k = 0; k < n; k++) g.push(k < this.qLen ? q[(this.qHead + k) % q.length]! : 0);
    this.queue = g;
    this.qHead = 0;
  }

  get mtu(): number {
    return this.link.cfg.mtu ?? 1500;
  }
  get linkUp(): boolean {
    return this.link.up;
  }

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(fn: ((up: boolean) => void) | null): void {
    this.listener = fn;
  }

  /** @internal carrier change, told to what is plugged in. */
  notify(up: boolean): void {
    this.listener?.(up);
  }

  transmit(batch: PacketBatch): void {
    const sim = this.link.sim;
    const cfg = this.link.cfg;
    const rng = sim.rng;
    const now = sim.now;
    for (let i = 0; i < batch.length; i++) {
      const p = batch.pkts[i]!;
      const len = p.end - p.start;
      this.stats.sent++;
      if (!this.link.up) {
        this.stats.droppedDown++;
        p.release();
        continue;
      }
      if (len - 14 > this.mtu) {
        this.stats.droppedMtu++;
        p.release();
        continue;
      }
      // The drop-tail queue: frames whose serialisation has not ended yet.
      while (this.qLen > 0 && this.queue[this.qHead]! <= now) {
        this.qHead = (this.qHead + 1) % this.queue.length;
        this.qLen--;
      }
      if (this.qLen === this.queue.length) {
        if (this.qLen === this.qCap) {
          this.stats.droppedQueue++;
          p.release();
          continue;
        }
        this.growQueue();
      }
      const start = Math.max(now, this.busyUntil);
      const done = cfg.bandwidthBps === undefined ? start : start + (len * 8 * 1e9) / cfg.bandwidthBps;
      this.busyUntil = done;
      this.queue[(this.qHead + this.qLen++) % this.queue.length] = done;
      if (this.lost(rng)) {
        this.stats.droppedLoss++;
        p.release();
        continue;
      }
      let at = done + (cfg.latencyNs ?? 0);
      if (cfg.jitterNs !== undefined && cfg.jitterNs > 0) at += Math.max(0, rng.normal() * cfg.jitterNs);
      if (cfg.reorder !== undefined && rng.chance(cfg.reorder.probability)) {
        at += cfg.reorder.delayNs;
        this.stats.reordered++;
      } else {
        at = Math.max(at, this.lastArrival);
        this.lastArrival = at;
      }
      this.launch(p, at);
      if (cfg.duplicate !== undefined && rng.chance(cfg.duplicate)) {
        const c = this.link.pool.alloc();
        if (c !== null) {
          c.start = c.end = p.start;
          if (c.put(len) >= 0) {
            c.data.set(p.data.subarray(p.start, p.end), c.start);
            this.stats.duplicated++;
            this.launch(c, at);
          } else c.release();
        }
      }
    }
    batch.clear();
  }

  private lost(rng: Simulator['rng']): boolean {
    const cfg = this.link.cfg;
    if (cfg.burst !== undefined) {
      const b = cfg.burst;
      this.bad = this.bad ? !rng.chance(b.leaveBad) : rng.chance(b.enterBad);
      if (rng.chance(this.bad ? b.lossBad : (b.lossGood ?? 0))) return true;
    }
    return cfg.loss !== undefined && rng.chance(cfg.loss);
  }

  private launch(p: PacketBuf, at: number): void {
    const w = this.link.wire;
    w.sim.schedule(at, w, w.put(p, this, this.link.outages));
  }

  /** @internal arrival at the peer of frame `p`, launched when the link's outage count was `outage`. */
  arrive(p: PacketBuf, outage: number, b: PacketBatch): void {
    const to = this.peer;
    // Down now, or went down (and maybe up again) while the frame was on the wire.
    if (!this.link.up || outage !== this.link.outages) {
      this.stats.droppedDown++;
      p.release();
      return;
    }
    if (to.rx === null) {
      this.stats.droppedNoRx++;
      p.release();
      return;
    }
    this.stats.delivered++;
    b.clear();
    b.add(p);
    to.rx(b);
    b.clear();
  }
}

const EMPTY_QUEUE: number[] = [];

/**
 * The frames on the wire of every link of one simulator, by slot: the arrival event's argument. One table
 * for all links rather than one per link end, so that a fabric of ~10⁵ paths that each carry a frame or
 * two does not hold ~10⁵ sets of slot arrays; frames are delivered one at a time (events do not nest),
 * so one batch serves every arrival.
 */
class Wire implements SimTask {
  private pkts: Array<PacketBuf | null> = [];
  private ends: Array<SimLinkEnd | null> = [];
  /** The link's outage count when each slot's frame was launched. */
  private outage: number[] = [];
  private free: number[] = [];
  private readonly batch = new PacketBatch(1);

  constructor(readonly sim: Simulator) {}

  /** Holds `p`, sent from `end`, until its arrival; returns its slot. */
  put(p: PacketBuf, end: SimLinkEnd, outage: number): number {
    let slot: number;
    if (this.free.length > 0) slot = this.free.pop()!;
    else {
      slot = this.pkts.length;
      this.pkts.push(null);
      this.ends.push(null);
      this.outage.push(0);
    }
    this.pkts[slot] = p;
    this.ends[slot] = end;
    this.outage[slot] = outage;
    return slot;
  }

  /** Arrival of the frame in `slot`. */
  run(slot: number): void {
    const p = this.pkts[slot]!;
    const end = this.ends[slot]!;
    this.pkts[slot] = null;
    this.ends[slot] = null;
    this.free.push(slot);
    end.arrive(p, this.outage[slot]!, this.batch);
  }
}

/** Each simulator's wire (made with its first link). */
const wires = new WeakMap<Simulator, Wire>();

/** A point-to-point link: `a` and `b` are the devices to plug into bridge ports or hosts. */
export class SimLink implements SimTask {
  readonly a: SimLinkEnd;
  readonly b: SimLinkEnd;
  up = true;
  /** Times the carrier went down: a frame launched before an outage is lost, even if the link is up again when it arrives. */
  outages = 0;
  /** @internal the simulator's frames in flight. */
  readonly wire: Wire;

  /**
   * `macs` are the ends' MACs, apart from `cfg` so that a fabric's paths share one configuration object.
   * Each path of its own, made by spreading, gets a hidden class of its own too, and the property reads
   * `transmit` makes per frame go megamorphic (a 1,000-node run has ~10⁵ paths).
   */
  constructor(
    readonly sim: Simulator,
    readonly pool: PacketPool,
    readonly cfg: LinkConfig = {},
    names: [string, string] = ['a', 'b'],
    macs: readonly [number, number] = [0, 0],
  ) {
    check('latencyNs', cfg.latencyNs, 0);
    check('jitterNs', cfg.jitterNs, 0);
    check('bandwidthBps', cfg.bandwidthBps, 1);
    check('queuePackets', cfg.queuePackets, 1);
    check('loss', cfg.loss, 0, 1);
    check('duplicate', cfg.duplicate, 0, 1);
    check('mtu', cfg.mtu, 68, 65535);
    if (cfg.reorder !== undefined) {
      check('reorder.probability', cfg.reorder.probability, 0, 1);
      check('reorder.delayNs', cfg.reorder.delayNs, 0);
    }
    if (cfg.burst !== undefined) {
      check('burst.enterBad', cfg.burst.enterBad, 0, 1);
      check('burst.leaveBad', cfg.burst.leaveBad, 0, 1);
      check('burst.lossBad', cfg.burst.lossBad, 0, 1);
      check('burst.lossGood', cfg.burst.lossGood, 0, 1);
    }
    let w = wires.get(sim);
    if (w === undefined) wires.set(sim, (w = new Wire(sim)));
    this.wire = w;
    this.a = new SimLinkEnd(names[0], macs[0], this);
    this.b = new SimLinkEnd(names[1], macs[1], this);
    this.a.peer = this.b;
    this.b.peer = this.a;
  }

  /** Carrier up or down now (both ends see it; frames on the wire when it goes down are lost). */
  setUp(up: boolean): void {
    if (this.up === up) return;
    this.up = up;
    if (!up) this.outages++;
    this.a.notify(up);
    this.b.notify(up);
  }

  /** Schedules the carrier to go down at `downAt` and up again at `upAt` (ns). */
  fault(downAt: number, upAt: number): void {
    this.sim.schedule(downAt, this, 0);
    this.sim.schedule(upAt, this, 1);
  }

  run(arg: number): void {
    this.setUp(arg === 1);
  }
}
