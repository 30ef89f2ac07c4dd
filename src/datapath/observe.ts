/**
 * Watching the frames that cross a device, in either world: `ObservedDevice` wraps any device (a
 * simulated link, a pod, a TAP, a UDP socket) and shows each frame to hooks on its way in and out;
 * `PcapngCapture` is one capture point, a pcapng section whose one interface is named after the point,
 * kept in memory or streamed to a sink (a `FileSink`, say). Time comes from a `Clock`, so the simulator
 * stamps virtual nanoseconds and a live node real ones, through the same code.
 */
import { PcapngWriter } from '../capture/pcapng.js';
import type { CaptureSink } from '../capture/common.js';
import type { PacketBatch, PacketBuf } from '../packet/buf.js';
import type { Clock } from './bridge.js';
import { NO_OFFLOADS, type Device, type DeviceOffloads, type Receiver } from './device.js';

/** Sees one frame at `now` (ns). It must not keep or change the packet. */
export type FrameHook = (p: PacketBuf, now: number) => void;

/**
 * Wraps a device: `onTx` sees each frame handed to it (towards the device), `onRx` each frame it
 * delivers (from the device). The hooks may be set or cleared at any time; null costs one test per batch.
 */
export class ObservedDevice implements Device {
  constructor(
    readonly inner: Device,
    private readonly clock: Clock,
    public onTx: FrameHook | null = null,
    public onRx: FrameHook | null = null,
  ) {}

  get name(): string {
    return this.inner.name;
  }
  get mac(): number {
    return this.inner.mac;
  }
  get mtu(): number {
    return this.inner.mtu;
  }
  get linkUp(): boolean {
    return this.inner.linkUp;
  }
  /** The wrapped device's: a TAP behind a capture still takes super-frames whole. */
  get offloads(): DeviceOffloads {
    return this.inner.offloads ?? NO_OFFLOADS;
  }

  transmit(batch: PacketBatch): void {
    const h = this.onTx;
    if (h !== null) {
      const now = this.clock.now();
      for (let i = 0; i < batch.length; i++) h(batch.get(i), now);
    }
    this.inner.transmit(batch);
  }

  setReceiver(rx: Receiver | null): void {
    if (rx === null) {
      this.inner.setReceiver(null);
      return;
    }
    this.inner.setReceiver((batch) => {
      const h = this.onRx;
      if (h !== null) {
        const now = this.clock.now();
        for (let i = 0; i < batch.length; i++) h(batch.get(i), now);
      }
      rx(batch);
    });
  }

  setLinkListener(fn: ((up: boolean) => void) | null): void {
    this.inner.setLinkListener(fn);
  }
}

/**
 * One capture point: every frame given to `hook` becomes an enhanced packet block, timestamped in
 * nanoseconds, on the one interface, named `name` (e.g. `node1/underlay`). Without a sink the file is
 * kept in memory (`bytes()`); with one, each block goes to the sink as it is written.
 */
export class PcapngCapture {
  /** Frames recorded so far. */
  packets = 0;
  private readonly chunks: Uint8Array[] | null;
  private readonly writer: PcapngWriter;
  private readonly iface: number;

  constructor(
    readonly name: string,
    sink?: CaptureSink,
  ) {
    const kept: Uint8Array[] | null = sink === undefined ? [] : null;
    this.chunks = kept;
    this.writer = new PcapngWriter(kept !== null ? (c) => kept.push(c) : sink!);
    this.iface = this.writer.addInterface(name);
  }

  /** Records a frame (a `FrameHook`: give it as onTx and/or onRx). */
  readonly hook: FrameHook = (p, now) => {
    this.packets++;
    this.writer.writePacket(this.iface, BigInt(Math.round(now)), p.data.subarray(p.start, p.end));
  };

  /** Wraps `dev` so that frames both ways are recorded. */
  observe(dev: Device, clock: Clock): ObservedDevice {
    return new ObservedDevice(dev, clock, this.hook, this.hook);
  }

  /** The whole file so far (a capture kept in memory only). */
  bytes(): Uint8Array {
    if (this.chunks === null) throw new Error(`capture ${this.name} streams to a sink: its bytes are there`);
    return Buffer.concat(this.chunks);
  }
}
