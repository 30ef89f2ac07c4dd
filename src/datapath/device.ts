/**
 * What a port talks to. Nothing in the datapath knows whether a device is a simulated link, a TAP or a
 * UDP socket: it hands batches to `transmit` and receives batches through the receiver it installed.
 *
 * Ownership: packets passed to `transmit` belong to the device from then on (it sends and releases
 * them); the batch object itself does not — a device must not keep it after `transmit` returns. The
 * same holds the other way for batches a device hands to its receiver.
 */
import { PacketBatch, type PacketBuf, type PacketPool } from '../packet/buf.js';

export type Receiver = (batch: PacketBatch) => void;

/**
 * What a device does for the frames it carries, as the virtio-net header says it (packet/vnet.ts): a
 * device that offloads checksums may hand over and take frames whose transport checksum is only the
 * pseudo-header sum; one that offloads segmentation may carry super-frames (GSO) up to 64 KiB.
 */
export interface DeviceOffloads {
  /** Frames may carry a partial checksum (`PacketBuf.csumStart`); the device or its peer completes it. */
  checksum: boolean;
  /** TCP super-frames (TSO4/TSO6) and UDP ones (USO) in `PacketBuf.gsoType`/`gsoSize`. */
  tso: boolean;
  uso: boolean;
}

/** A device that offloads nothing: every frame is complete and at most MTU-sized (simulated links, veths). */
export const NO_OFFLOADS: DeviceOffloads = Object.freeze({ checksum: false, tso: false, uso: false });

export interface Device {
  readonly name: string;
  /** The device's MAC (48-bit number). */
  readonly mac: number;
  /** L3 MTU in bytes (the largest IP packet the device carries; Ethernet header not included). */
  readonly mtu: number;
  /** Carrier: false while the link is down. */
  readonly linkUp: boolean;
  /** What the device offloads; absent means `NO_OFFLOADS`. */
  readonly offloads?: DeviceOffloads;
  /** Hands packets over; the device owns them afterwards. */
  transmit(batch: PacketBatch): void;
  /** Installs (or, with null, removes) the handler for received batches. */
  setReceiver(rx: Receiver | null): void;
  /** Installs (or removes) a handler told when carrier changes. */
  setLinkListener(fn: ((up: boolean) => void) | null): void;
}

export interface VethOptions {
  /** L3 MTU of both ends. Default 1500. */
  mtu?: number;
  macA?: number;
  macB?: number;
}

/**
 * One end of a veth-like pair: what is transmitted into one end is received, synchronously, from the
 * other. An end without a receiver (nothing plugged in) drops what reaches it, counted in `dropped`.
 */
export class VethEnd implements Device {
  peer!: VethEnd;
  linkUp = true;
  /** Packets that reached this end while nothing was plugged in. */
  dropped = 0;
  private rx: Receiver | null = null;
  private link: ((up: boolean) => void) | null = null;

  constructor(
    readonly name: string,
    readonly mac: number,
    readonly mtu: number,
  ) {}

  transmit(batch: PacketBatch): void {
    const to = this.peer;
    if (to.rx === null || !this.linkUp) {
      to.dropped += batch.length;
      for (let i = 0; i < batch.length; i++) batch.get(i).release();
      batch.clear();
      return;
    }
    to.rx(batch);
  }

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(fn: ((up: boolean) => void) | null): void {
    this.link = fn;
  }

  /** Takes the pair's carrier down or up (both ends see it, as with `ip link set ... down`). */
  setLink(up: boolean): void {
    for (const e of [this, this.peer]) {
      if (e.linkUp === up) continue;
      e.linkUp = up;
      e.link?.(up);
    }
  }
}

/** Two linked veth ends. */
export function vethPair(nameA: string, nameB: string, opts: VethOptions = {}): [VethEnd, VethEnd] {
  const mtu = opts.mtu ?? 1500;
  const a = new VethEnd(nameA, opts.macA ?? 0, mtu);
  const b = new VethEnd(nameB, opts.macB ?? 0, mtu);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * A minimal endpoint for tests, examples and benches: frames sent with `send` enter whatever the device is
 * plugged into; frames transmitted to it are copied into `received` (when `keep` is on) and released.
 */
export class Endpoint implements Device {
  linkUp = true;
  readonly received: Uint8Array[] = [];
  /** Frames transmitted to this endpoint, kept or not. */
  count = 0;
  /** Called with each frame transmitted to the endpoint, before release (the buffer is only valid during the call). */
  onFrame: ((p: PacketBuf) => void) | null = null;
  private rx: Receiver | null = null;
  private link: ((up: boolean) => void) | null = null;
  private readonly batch = new PacketBatch();

  constructor(
    readonly name: string,
    readonly pool: PacketPool,
    readonly mac = 0,
    readonly mtu = 1500,
    public keep = true,
  ) {}

  transmit(batch: PacketBatch): void {
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      this.count++;
      this.onFrame?.(p);
      if (this.keep) this.received.push(p.bytes().slice());
      p.release();
    }
    batch.clear();
  }

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(fn: ((up: boolean) => void) | null): void {
    this.link = fn;
  }

  setLink(up: boolean): void {
    if (this.linkUp === up) return;
    this.linkUp = up;
    this.link?.(up);
  }

  /**
   * Sends frames into the attached receiver as one batch (chunked by the batch capacity). Returns how many
   * were sent: fewer when the pool runs dry or nothing is attached. `traced` marks them for trace records.
   */
  send(frames: readonly Uint8Array[], traced = false): number {
    let sent = 0;
    if (this.rx === null) return 0;
    for (let i = 0; i < frames.length; ) {
      const b = this.batch;
      b.clear();
      for (; i < frames.length && b.length < b.capacity; i++) {
        const p = this.pool.alloc();
        if (p === null || !p.load(frames[i]!)) {
          p?.release();
          this.rx(b);
          return sent;
        }
        p.traced = traced;
        b.add(p);
        sent++;
      }
      this.rx(b);
    }
    return sent;
  }

  /** Takes the frames received so far. */
  take(): Uint8Array[] {
    return this.received.splice(0);
  }
}
