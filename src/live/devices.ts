/**
 * Live devices: the `Device` contract (datapath/device.ts) over the native addon, so a bridge built by
 * node/ forwards real frames exactly as it forwards simulated ones.
 *
 * - `TapDevice`: a TAP with a virtio-net header, read and written in batches straight into and out of
 *   the packet pool's slab (no copy in JavaScript). Frames the kernel hands over with a partial checksum
 *   (NEEDS_CSUM, with checksum offload on) are completed here, so every stage behind sees a finished
 *   frame — except super-frames (TSO/USO, when enabled; refused otherwise): they keep their offload
 *   fields, and the bridge forwards them whole to a TAP that takes them or segments them
 *   (packet/gso.ts), each segment's checksum completed there. Frames written to a TAP with TSO pass a
 *   `Coalescer` first, so consecutive TCP segments of a flow (decapsulated from a tunnel) reach the pod
 *   as one super-frame.
 * - `TunnelSocketDevice`: the underlay of a tunnel port. The tunnel emits whole outer frames (Ethernet,
 *   IP, UDP, VXLAN/Geneve, ESP) from its templates; this device sends plain UDP datagrams to a tunnel
 *   port through the addon's UDP sockets (sendmmsg) and everything else — ESP over IP, outer
 *   fragments — through a raw IP socket, whole. Received datagrams get their outer Ethernet, IP and UDP
 *   headers rebuilt in the headroom from the socket's facts (peer address and port, our address and
 *   port), so decapsulation checks them as in the simulator. With `gro`, the sockets take UDP_GRO: a
 *   datagram the kernel coalesced is split back into its datagrams here (each into its own buffer, in
 *   order). With `gso`, consecutive datagrams to one peer of one size (the encapsulated segments of a
 *   super-frame) leave as one UDP_SEGMENT send gathered from their buffers (`udpSendGather`).
 *
 * Readiness comes from libuv (`pollStart`); each readiness event reads one batch, and libuv calls again
 * while more is queued, so a busy device cannot starve the others.
 */
import { NO_OFFLOADS, type Device, type DeviceOffloads, type Receiver } from '../datapath/device.js';
import { HEADROOM, PacketBatch, type PacketBuf, type PacketPool } from '../packet/buf.js';
import { Coalescer, GsoStats } from '../packet/gso.js';
import { completeChecksum, readVnetHeader, VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_UDP_L4, VNET_HDR_LEN, writeVnetHeader } from '../packet/vnet.js';
import { copy16, ipv4FromString, ipv6FromString, rd16, rd32, wr16, wr32, wrMac } from '../wire/bytes.js';
import { finish, onesSum, pseudoSumV6At } from '../wire/checksum.js';
import { PortCounters } from '../datapath/port.js';
import { DropReason } from '../wire/drop.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { IPPROTO_RAW, IPPROTO_UDP } from '../wire/ipproto.js';
import type { Native } from './native.js';

/**
 * Counters a live device keeps of its own (before a frame reaches a bridge port, or after it left one):
 * a port's counters, and the reads that brought frames.
 */
export class DeviceStats extends PortCounters {
  /** Readiness events that found frames (frames per batch = rxPackets / rxBatches). */
  rxBatches = 0;
  /** Super-frames read (a TAP with TSO/USO) or GRO-coalesced datagrams received (a tunnel socket). */
  rxSuper = 0;
  /** The datagrams those coalesced datagrams held (split back into single datagrams here). */
  rxSuperSegments = 0;
  /** Super-frames written (a TAP), or UDP_SEGMENT sends (a tunnel socket). */
  txSuper = 0;
  /** The datagrams those sends held (tunnel sockets; a TAP's coalescing is counted by its GsoStats). */
  txSuperSegments = 0;

  drop(r: DropReason, n = 1): void {
    this.drops[r] = this.drops[r]! + n;
  }

  override reset(): void {
    super.reset();
    this.rxBatches = this.rxSuper = this.rxSuperSegments = this.txSuper = this.txSuperSegments = 0;
  }
}

/** A live device the agent can start, stop and report on. */
export interface LiveDevice extends Device {
  readonly stats: DeviceStats;
  start(): void;
  /** Stops reading and closes its file descriptors (a persistent TAP stays in the kernel). */
  close(): void;
}

/** Per-batch scratch arrays for the addon's batched calls. */
class IoScratch {
  readonly offsets: Int32Array;
  readonly caps: Int32Array;
  readonly lens: Int32Array;
  readonly addrs: Uint8Array;
  readonly ports: Int32Array;
  readonly segs: Int32Array;
  /** Windows per message of a gathered send (indexed by message). */
  readonly iovs: Int32Array;
  readonly bufs: Array<PacketBuf | null>;
  constructor(readonly max: number) {
    this.offsets = new Int32Array(max);
    this.caps = new Int32Array(max);
    this.lens = new Int32Array(max);
    this.addrs = new Uint8Array(16 * max);
    this.ports = new Int32Array(max);
    this.segs = new Int32Array(max);
    this.iovs = new Int32Array(max);
    this.bufs = new Array<PacketBuf | null>(max).fill(null);
  }
}

/** Where a frame goes that no buffer can take (a TAP frame with its header, or a datagram). */
const DISCARD = new Uint8Array(65536 + VNET_HDR_LEN);

/** Allocates up to `want` buffers into `s.bufs`; returns how many it got. */
function allocBuffers(pool: PacketPool, s: IoScratch, want: number): number {
  let k = 0;
  for (; k < want; k++) {
    const p = pool.alloc();
    if (p === null) break;
    s.bufs[k] = p;
  }
  return k;
}

function releaseFrom(s: IoScratch, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    s.bufs[i]!.release();
    s.bufs[i] = null;
  }
}

/** Hands a received batch to the receiver (or releases it when nothing is plugged in). */
function handOver(stats: DeviceStats, rx: Receiver | null, b: PacketBatch): void {
  if (b.length === 0) return;
  stats.rxBatches++;
  if (rx === null) {
    for (let i = 0; i < b.length; i++) b.get(i).release();
    b.clear();
    return;
  }
  rx(b);
}

export interface TapDeviceOptions {
  name: string;
  /** The TAP's file descriptor, opened with IFF_VNET_HDR when `vnetHdr`. */
  fd: number;
  ifindex: number;
  mac: number;
  mtu: number;
  vnetHdr: boolean;
  /** Whether TSO (TCP super-frames) was enabled on the TAP: without it a TCP GSO frame is malformed input. */
  gso?: boolean;
  /** Whether USO (UDP_L4 super-frames) was enabled too. */
  uso?: boolean;
  /** Where the coalescing of frames written to a TSO TAP is counted (default: the device's own). */
  gsoStats?: GsoStats;
  batch?: number;
}

export class TapDevice implements LiveDevice {
  readonly name: string;
  /** Checksums: frames with a partial checksum are completed on receipt, so the bridge never sees one. */
  readonly offloads: DeviceOffloads;
  readonly fd: number;
  readonly ifindex: number;
  readonly mac: number;
  readonly mtu: number;
  linkUp = true;
  readonly stats = new DeviceStats();
  private rx: Receiver | null = null;
  private pollId = -1;
  private closed = false;
  private readonly vnet: boolean;
  private readonly gso: boolean;
  private readonly uso: boolean;
  private readonly rxBatch: PacketBatch;
  private readonly rs: IoScratch;
  private readonly ws: IoScratch;
  /** TSO only: what coalesces frames written to the pod, and the batch its super-frames go out in. */
  private readonly coalescer: Coalescer | null;
  private readonly coalesced: PacketBatch;
  /**
   * Told of each traced frame this TAP writes (the live trace, `seine trace --live`): the coalescing
   * stage's decision — a super-frame of how many segments, or the frame as it came. Null when no trace is
   * armed: untraced frames never reach it.
   */
  onTraced: ((r: { stage: 'coalesce'; port: string; action: string; detail: Record<string, number | boolean> }) => void) | null = null;

  constructor(
    private readonly native: Native,
    private readonly pool: PacketPool,
    o: TapDeviceOptions,
  ) {
    this.name = o.name;
    this.fd = o.fd;
    this.ifindex = o.ifindex;
    this.mac = o.mac;
    this.mtu = o.mtu;
    this.vnet = o.vnetHdr;
    this.gso = this.vnet && (o.gso ?? false);
    this.uso = this.gso && (o.uso ?? false);
    this.offloads = Object.freeze({ checksum: this.vnet, tso: this.gso, uso: this.uso });
    const n = o.batch ?? 64;
    this.rxBatch = new PacketBatch(n);
    this.rs = new IoScratch(n);
    this.ws = new IoScratch(n);
    this.coalescer = this.gso ? new Coalescer(pool, o.gsoStats ?? new GsoStats()) : null;
    // Room for what one push may emit (a held super-frame and the frame itself) past the write threshold.
    this.coalesced = new PacketBatch(n + 8);
  }

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(): void {}

  start(): void {
    if (this.pollId >= 0 || this.closed) return;
    this.pollId = this.native.pollStart(this.fd, 1, () => this.readable());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pollId >= 0) this.native.pollStop(this.pollId);
    this.pollId = -1;
    this.native.close(this.fd);
  }

  /** Reads one batch (called by libuv while the TAP has frames queued). */
  readable(): void {
    const s = this.rs;
    const k = allocBuffers(this.pool, s, s.max);
    const hdr = this.vnet ? VNET_HDR_LEN : 0;
    if (k === 0) {
      // No buffer: take one frame off the queue and count it, so a full pool cannot spin the loop.
      s.offsets[0] = 0;
      s.caps[0] = DISCARD.length;
      try {
        this.native.readBatch(this.fd, DISCARD, s.offsets, s.caps, s.lens, 1);
      } catch {
        /* counted below */
      }
      this.stats.drop(DropReason.PoolExhausted);
      return;
    }
    const capacity = this.pool.frameCapacity + hdr;
    const bsize = this.pool.bufferSize;
    for (let i = 0; i < k; i++) {
      s.offsets[i] = s.bufs[i]!.slot * bsize + HEADROOM - hdr;
      s.caps[i] = capacity;
    }
    let n: number;
    try {
      n = this.native.readBatch(this.fd, this.pool.slab, s.offsets, s.caps, s.lens, k);
    } catch {
      n = 0;
      this.stats.drop(DropReason.DeviceSendError);
    }
    const b = this.rxBatch;
    b.clear();
    for (let i = 0; i < n; i++) {
      const p = s.bufs[i]!;
      s.bufs[i] = null;
      const len = s.lens[i]! - hdr;
      this.stats.rxPackets++;
      this.stats.rxBytes += len;
      if (len < ETH_HEADER_LEN) {
        this.stats.drop(len < 0 ? DropReason.VnetHdrBad : DropReason.EthTruncated);
        p.release();
        continue;
      }
      p.start = HEADROOM;
      p.end = HEADROOM + len;
      if (hdr > 0) {
        const bad = readVnetHeader(p, HEADROOM - hdr);
        const gso = p.gsoType & ~VNET_GSO_ECN;
        const r = bad ?? (gso !== VNET_GSO_NONE && !(gso === VNET_GSO_UDP_L4 ? this.uso : this.gso) ? DropReason.GsoUnsupported : null);
        if (r !== null) {
          this.stats.drop(r);
          p.release();
          continue;
        }
        // Behind the TAP every frame is complete (stages may rewrite headers with incremental updates),
        // but a super-frame: its segments' checksums are completed where it is segmented, if it is.
        if (gso === VNET_GSO_NONE) completeChecksum(p);
        else this.stats.rxSuper++;
      }
      b.add(p);
    }
    releaseFrom(s, n, k);
    handOver(this.stats, this.rx, b);
  }

  transmit(batch: PacketBatch): void {
    const c = this.coalescer;
    if (c === null) {
      this.write(batch);
      return;
    }
    // Consecutive segments of a flow become one super-frame; nothing is held past this call.
    const out = this.coalesced;
    const threshold = out.capacity - 8;
    for (let i = 0; i < batch.length; i++) {
      c.push(batch.get(i), out);
      if (out.length >= threshold) this.write(out);
    }
    c.flush(out);
    if (out.length > 0) this.write(out);
    batch.clear();
  }

  private write(batch: PacketBatch): void {
    const s = this.ws;
    const hdr = this.vnet ? VNET_HDR_LEN : 0;
    const bsize = this.pool.bufferSize;
    let w = 0;
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      if (p.start < hdr || p.pool !== this.pool) {
        this.stats.drop(DropReason.HeadroomShort);
        p.release();
        continue;
      }
      if (hdr > 0) writeVnetHeader(p, p.start - hdr);
      if (p.traced) this.traceWrite(p);
      s.bufs[w] = p;
      s.offsets[w] = p.slot * bsize + p.start - hdr;
      s.lens[w] = p.end - p.start + hdr;
      w++;
      if (w === s.max) w = this.flush(w, hdr);
    }
    if (w > 0) this.flush(w, hdr);
    batch.clear();
  }

  /** The coalescing stage's record for a traced frame about to be written (only traced frames come here). */
  private traceWrite(p: PacketBuf): void {
    p.traced = false;
    const t = this.onTraced;
    if (t === null || this.coalescer === null) return;
    const gso = p.gsoType & ~VNET_GSO_ECN;
    if (gso === VNET_GSO_NONE) {
      t({ stage: 'coalesce', port: this.name, action: 'written to the TAP as it came (no segment of its flow to merge with)', detail: { superFrame: false } });
      return;
    }
    const payload = p.end - p.start - p.hdrLen;
    const segments = Math.ceil(payload / p.gsoSize);
    t({
      stage: 'coalesce',
      port: this.name,
      action: `merged with its flow's neighbours: written to the TAP as one super-frame of ${segments} segments (gso_size ${p.gsoSize}, virtio-net header)`,
      detail: { superFrame: true, segments, gsoSize: p.gsoSize, bytes: p.end - p.start },
    });
  }

  private flush(count: number, hdr: number): number {
    const s = this.ws;
    let sent = 0;
    if (!this.closed) {
      try {
        sent = this.native.writeBatch(this.fd, this.pool.slab, s.offsets, s.lens, count);
      } catch {
        sent = 0;
      }
    }
    for (let i = 0; i < count; i++) {
      const p = s.bufs[i]!;
      if (i < sent) {
        this.stats.txPackets++;
        this.stats.txBytes += s.lens[i]! - hdr;
        if (p.gsoType !== VNET_GSO_NONE) this.stats.txSuper++;
      } else this.stats.drop(DropReason.DeviceBusy);
      p.release();
      s.bufs[i] = null;
    }
    return 0;
  }
}

export interface TunnelSocketOptions {
  name: string;
  /** The namespace the sockets live in (null: the agent's own). */
  netns: string | null;
  /** This node's underlay address (the tunnel's `localIp`), IPv4 or IPv6. */
  localIp: string;
  /** UDP ports to listen on and send from: the tunnel's (4789, 6081) and ESP-in-UDP's 4500 when used. */
  udpPorts: readonly number[];
  /** IP protocols to receive raw (50 for ESP over IP). */
  rawProtocols: readonly number[];
  mac: number;
  mtu: number;
  /** UDP_GRO on the sockets (the pool's buffers must hold 65,535-byte datagrams). */
  gro?: boolean;
  /** UDP_SEGMENT sends of equal-sized datagrams to one peer (falls back to single sends when refused). */
  gso?: boolean;
  batch?: number;
}

interface UdpSock {
  fd: number;
  port: number;
  poll: number;
  gro: boolean;
}

/**
 * A UDP GSO send: at most 64 datagrams (the kernel's UDP_MAX_SEGMENTS is 64 before Linux 6.9, 128
 * after) and a payload an IP datagram can hold (65,535 less the IPv4 and UDP headers).
 */
const GSO_MAX_SEGMENTS = 64;
const GSO_MAX_BYTES = 65535 - 20 - 8;

/** The open message of a socket's gathered send: its datagram size, bytes so far, and whether a shorter datagram closed it. */
class GatherState {
  windows = 0;
  messages = 0;
  size = 0;
  bytes = 0;
  closed = true;
}
interface RawSock {
  fd: number;
  protocol: number;
  poll: number;
}

export class TunnelSocketDevice implements LiveDevice {
  readonly name: string;
  /** The bridge sees single datagrams both ways: GRO is undone on receipt, GSO done by the device. */
  readonly offloads = NO_OFFLOADS;
  readonly mac: number;
  readonly mtu: number;
  linkUp = true;
  readonly stats = new DeviceStats();
  readonly family: 4 | 6;
  private rx: Receiver | null = null;
  private readonly udp: UdpSock[] = [];
  private readonly raw: RawSock[] = [];
  private rawSend = -1;
  private readonly local4: number;
  private readonly local6: Uint8Array | null;
  private readonly rxBatch: PacketBatch;
  private readonly rs: IoScratch;
  /** One send scratch per UDP socket (windows, and messages gathered from them), and one for the raw socket. */
  private readonly us: IoScratch[] = [];
  private readonly rws: IoScratch;
  private readonly ug: GatherState[] = [];
  private rw = 0;
  private closed = false;
  /** UDP_SEGMENT sends: asked for, and not refused by the kernel yet. */
  private gsoOn: boolean;

  constructor(
    private readonly native: Native,
    private readonly pool: PacketPool,
    private readonly o: TunnelSocketOptions,
  ) {
    this.name = o.name;
    this.mac = o.mac;
    this.mtu = o.mtu;
    const v4 = ipv4FromString(o.localIp);
    const v6 = v4 === null ? ipv6FromString(o.localIp) : null;
    if (v4 === null && v6 === null) throw new RangeError(`${o.name}: local address "${o.localIp}" is not IPv4 or IPv6`);
    this.family = v4 !== null ? 4 : 6;
    // A raw IPv6 socket hands over no IP header (and takes none): outer headers could not be checked.
    if (this.family === 6 && o.rawProtocols.length > 0)
      throw new RangeError(`${o.name}: raw IP over an IPv6 underlay is not supported live (GRE; for ESP, use ESP in UDP: udpEncap)`);
    this.local4 = v4 ?? 0;
    this.local6 = v6;
    const n = o.batch ?? 64;
    // Received datagrams split from GRO'd ones come in more than `n` per read: handed over in batches.
    this.rxBatch = new PacketBatch(o.gro === true ? 4 * n : n);
    this.rs = new IoScratch(n);
    this.rws = new IoScratch(n);
    this.gsoOn = o.gso ?? false;
  }

  /** Whether UDP_SEGMENT sends are in use (asked for and not refused by the kernel). */
  get gso(): boolean {
    return this.gsoOn;
  }
  /** Whether every UDP socket took UDP_GRO. */
  get gro(): boolean {
    return this.udp.length > 0 && this.udp.every((u) => u.gro);
  }

  /** Opens the sockets (inside the namespace) and starts reading. Throws, naming the socket, when one cannot be opened; what was opened is closed again. */
  start(): void {
    if (this.udp.length > 0 || this.closed) return;
    const any = this.family === 4 ? '0.0.0.0' : '::';
    try {
      for (const port of this.o.udpPorts) {
        const u = this.native.udpOpen(this.o.netns, this.family, any, port, this.o.gro === true);
        const sock: UdpSock = { fd: u.fd, port: u.port, poll: -1, gro: u.gro };
        this.udp.push(sock);
        // A gathered send holds up to 64 windows per message: room for several such messages per flush.
        this.us.push(new IoScratch(4 * this.rs.max));
        this.ug.push(new GatherState());
        sock.poll = this.native.pollStart(u.fd, 1, () => this.readUdp(sock));
      }
      for (const protocol of this.o.rawProtocols) {
        const r = this.native.rawOpen(this.o.netns, this.family, protocol);
        const sock: RawSock = { fd: r.fd, protocol, poll: -1 };
        this.raw.push(sock);
        sock.poll = this.native.pollStart(r.fd, 1, () => this.readRaw(sock));
      }
      this.rawSend = this.native.rawOpen(this.o.netns, this.family, IPPROTO_RAW).fd;
    } catch (e) {
      this.close();
      throw e;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.udp, ...this.raw]) {
      if (s.poll >= 0) this.native.pollStop(s.poll);
      this.native.close(s.fd);
    }
    if (this.rawSend >= 0) this.native.close(this.rawSend);
    this.rawSend = -1;
  }

  /** The UDP ports actually bound (a port 0 in the options gets an ephemeral one). */
  get boundPorts(): number[] {
    return this.udp.map((u) => u.port);
  }

  setReceiver(rx: Receiver | null): void {
    this.rx = rx;
  }
  setLinkListener(): void {}

  // ---- receive --------------------------------------------------------------------------------------

  private ipHeaderLen(): number {
    return this.family === 4 ? 20 : 40;
  }

  private readUdp(sock: UdpSock): void {
    this.readSocket(sock.fd, sock.port);
  }
  private readRaw(sock: RawSock): void {
    this.readSocket(sock.fd, -1);
  }

  /**
   * Reads one batch from a UDP socket (`udpPort` ≥ 0: payloads, whose outer headers are rebuilt in
   * front) or a raw one (-1: whole IP packets, which get an Ethernet header in front).
   */
  private readSocket(fd: number, udpPort: number): void {
    const raw = udpPort < 0;
    const s = this.rs;
    const k = allocBuffers(this.pool, s, s.max);
    if (k === 0) {
      // No buffer: take one datagram off the socket and count it, so a full pool cannot spin the loop.
      s.offsets[0] = 0;
      s.caps[0] = DISCARD.length;
      try {
        if (raw) this.native.rawRecvBatch(fd, DISCARD, s.offsets, s.caps, s.lens, s.addrs, 1);
        else this.native.udpRecvBatch(fd, DISCARD, s.offsets, s.caps, s.lens, s.addrs, s.ports, s.segs, 1);
      } catch {
        /* counted below */
      }
      this.stats.drop(DropReason.PoolExhausted);
      return;
    }
    const front = raw ? ETH_HEADER_LEN : ETH_HEADER_LEN + this.ipHeaderLen() + 8;
    const cap = this.pool.frameCapacity - front;
    const bsize = this.pool.bufferSize;
    for (let i = 0; i < k; i++) {
      s.offsets[i] = s.bufs[i]!.slot * bsize + HEADROOM + front;
      s.caps[i] = cap;
    }
    let n = 0;
    try {
      n = raw
        ? this.native.rawRecvBatch(fd, this.pool.slab, s.offsets, s.caps, s.lens, s.addrs, k)
        : this.native.udpRecvBatch(fd, this.pool.slab, s.offsets, s.caps, s.lens, s.addrs, s.ports, s.segs, k);
    } catch {
      n = 0;
    }
    const b = this.rxBatch;
    b.clear();
    for (let i = 0; i < n; i++) {
      const p = s.bufs[i]!;
      s.bufs[i] = null;
      let len = s.lens[i]!;
      // The addon reports a datagram's whole length: one longer than the buffer was cut.
      if (len > cap) {
        this.stats.rxPackets++;
        this.stats.rxBytes += len;
        this.stats.drop(DropReason.FrameTooLong);
        p.release();
        continue;
      }
      const seg = raw ? 0 : s.segs[i]!;
      // GRO: datagrams of `seg` bytes back to back (the last may be shorter); all but the last are copied
      // out, and the last stays in this buffer, its outer headers rebuilt over the bytes just copied.
      const at = seg > 0 && len > seg ? this.splitGro(p, len, seg, front, s.addrs, 16 * i, s.ports[i]!, udpPort, b) : 0;
      len -= at;
      this.stats.rxPackets++;
      this.stats.rxBytes += len;
      p.start = HEADROOM + at;
      p.end = HEADROOM + at + front + len;
      if (raw) {
        wrMac(p.data, p.start, this.mac);
        wrMac(p.data, p.start + 6, 0);
        wr16(p.data, p.start + 12, ETHERTYPE_IPV4);
      } else this.rebuildUdp(p, s.addrs, 16 * i, s.ports[i]!, udpPort, len);
      if (b.length === b.capacity) {
        handOver(this.stats, this.rx, b);
        b.clear();
      }
      b.add(p);
    }
    releaseFrom(s, n, k);
    handOver(this.stats, this.rx, b);
  }

  /**
   * The datagrams but the last of a GRO'd one (`whole` bytes of payload in `p`'s buffer, `seg` each), each
   * copied into a buffer of its own with its outer headers rebuilt and appended to `b` in order (a full
   * batch is handed over first: `p` is not in it yet, so its bytes stay put). Returns the offset of the
   * last datagram, which the caller leaves in `p`.
   */
  private splitGro(
    p: PacketBuf,
    whole: number,
    seg: number,
    front: number,
    addrs: Uint8Array,
    ao: number,
    srcPort: number,
    dstPort: number,
    b: PacketBatch,
  ): number {
    const slab = this.pool.slab;
    const bsize = this.pool.bufferSize;
    const from = p.slot * bsize + HEADROOM + front;
    const last = Math.floor((whole - 1) / seg) * seg;
    this.stats.rxSuper++;
    this.stats.rxSuperSegments += last / seg + 1;
    for (let off = 0; off < last; off += seg) {
      const len = seg;
      this.stats.rxPackets++;
      this.stats.rxBytes += len;
      const q = this.pool.alloc();
      if (q === null) {
        this.stats.drop(DropReason.PoolExhausted);
        continue;
      }
      slab.copyWithin(q.slot * bsize + HEADROOM + front, from + off, from + off + len);
      q.start = HEADROOM;
      q.end = HEADROOM + front + len;
      this.rebuildUdp(q, addrs, ao, srcPort, dstPort, len);
      if (b.length === b.capacity) {
        handOver(this.stats, this.rx, b);
        b.clear();
      }
      b.add(q);
    }
    return last;
  }

  /** Outer Ethernet + IP + UDP in front of a received datagram's payload, as it was on the wire. */
  private rebuildUdp(p: PacketBuf, addrs: Uint8Array, ao: number, srcPort: number, dstPort: number, payload: number): void {
    const d = p.data;
    const e = p.start;
    wrMac(d, e, this.mac);
    wrMac(d, e + 6, 0);
    const ip = e + ETH_HEADER_LEN;
    if (this.family === 4) {
      wr16(d, e + 12, ETHERTYPE_IPV4);
      d[ip] = 0x45;
      d[ip + 1] = 0;
      wr16(d, ip + 2, 20 + 8 + payload);
      wr32(d, ip + 4, 0x0000_4000); // id 0, DF
      d[ip + 8] = 64;
      d[ip + 9] = IPPROTO_UDP;
      wr16(d, ip + 10, 0);
      wr32(d, ip + 12, rd32(addrs, ao));
      wr32(d, ip + 16, this.local4);
      wr16(d, ip + 10, finish(onesSum(d, ip, 20)));
      const u = ip + 20;
      wr16(d, u, srcPort);
      wr16(d, u + 2, dstPort);
      wr16(d, u + 4, 8 + payload);
      wr16(d, u + 6, 0); // the kernel checked it; zero means "none" over IPv4 (RFC 768)
    } else {
      wr16(d, e + 12, ETHERTYPE_IPV6);
      wr32(d, ip, 0x6000_0000);
      wr16(d, ip + 4, 8 + payload);
      d[ip + 6] = IPPROTO_UDP;
      d[ip + 7] = 64;
      copy16(d, ip + 8, addrs, ao);
      copy16(d, ip + 24, this.local6!);
      const u = ip + 40;
      wr16(d, u, srcPort);
      wr16(d, u + 2, dstPort);
      wr16(d, u + 4, 8 + payload);
      wr16(d, u + 6, 0);
      // IPv6 requires the UDP checksum (RFC 8200 §8.1): recompute it, the kernel already verified it.
      let c = finish(onesSum(d, u, 8 + payload, pseudoSumV6At(d, ip + 8, ip + 24, IPPROTO_UDP, 8 + payload)));
      if (c === 0) c = 0xffff;
      wr16(d, u + 6, c);
    }
  }

  // ---- transmit -------------------------------------------------------------------------------------

  transmit(batch: PacketBatch): void {
    const bsize = this.pool.bufferSize;
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      const d = p.data;
      let e = p.start + 12;
      if (p.end - p.start < ETH_HEADER_LEN || p.pool !== this.pool) {
        this.stats.drop(DropReason.DeviceNotSendable);
        p.release();
        continue;
      }
      let et = rd16(d, e);
      if (et === 0x8100 && e + 6 <= p.end) {
        e += 4;
        et = rd16(d, e);
      }
      const ip = e + 2;
      let udpAt = -1;
      let dport = 0;
      if (et === ETHERTYPE_IPV4 && this.family === 4 && ip + 20 <= p.end) {
        const ihl = (d[ip]! & 0x0f) * 4;
        const fragment = (rd16(d, ip + 6) & 0x3fff) !== 0;
        if (d[ip + 9] === IPPROTO_UDP && !fragment && ip + ihl + 8 <= p.end) {
          udpAt = ip + ihl;
          dport = rd16(d, udpAt + 2);
        }
      } else if (et === ETHERTYPE_IPV6 && this.family === 6 && ip + 40 <= p.end) {
        if (d[ip + 6] === IPPROTO_UDP && ip + 48 <= p.end) {
          udpAt = ip + 40;
          dport = rd16(d, udpAt + 2);
        }
      } else {
        this.stats.drop(DropReason.DeviceNotSendable);
        p.release();
        continue;
      }
      const addrAt = this.family === 4 ? ip + 16 : ip + 24;
      let k = -1;
      if (udpAt >= 0)
        for (let j = 0; j < this.udp.length; j++)
          if (this.udp[j]!.port === dport) {
            k = j;
            break;
          }
      if (k >= 0) {
        const s = this.us[k]!;
        const g = this.ug[k]!;
        const w = g.windows;
        const len = p.end - (udpAt + 8);
        s.bufs[w] = p;
        s.offsets[w] = p.slot * bsize + udpAt + 8;
        s.lens[w] = len;
        g.windows = w + 1;
        // Joins the open message when it goes to the same peer, is no longer than its datagrams (a
        // shorter one is the last: the kernel cuts every datagram but the last at exactly the size), and
        // the message stays within what one UDP_SEGMENT send may carry.
        const m = g.messages - 1;
        if (
          this.gsoOn &&
          !g.closed &&
          len <= g.size &&
          s.iovs[m]! < GSO_MAX_SEGMENTS &&
          g.bytes + len <= GSO_MAX_BYTES &&
          s.ports[m] === dport &&
          this.sameAddr(s.addrs, 16 * m, d, addrAt)
        ) {
          s.iovs[m] = s.iovs[m]! + 1;
          g.bytes += len;
          if (len < g.size) g.closed = true;
        } else {
          this.copyAddr(s.addrs, 16 * (m + 1), d, addrAt);
          s.ports[m + 1] = dport;
          s.iovs[m + 1] = 1;
          s.segs[m + 1] = len;
          g.messages = m + 2;
          g.size = len;
          g.bytes = len;
          g.closed = false;
        }
        if (w + 1 === s.max) this.flushUdp(k);
      } else if (this.family === 4) {
        // ESP over IP, GRE, outer fragments, UDP to a port we do not own: the whole IP packet, raw.
        const s = this.rws;
        const w = this.rw;
        s.bufs[w] = p;
        s.offsets[w] = p.slot * bsize + ip;
        s.lens[w] = p.end - ip;
        this.copyAddr(s.addrs, 16 * w, d, addrAt);
        this.rw = w + 1;
        if (w + 1 === s.max) this.flushRaw();
      } else {
        this.stats.drop(DropReason.DeviceNotSendable);
        p.release();
      }
    }
    for (let k = 0; k < this.udp.length; k++) if (this.ug[k]!.windows > 0) this.flushUdp(k);
    if (this.rw > 0) this.flushRaw();
    batch.clear();
  }

  /** The destination address into the send scratch (4 or 16 bytes; no view object per packet). */
  private copyAddr(to: Uint8Array, at: number, from: Uint8Array, addrAt: number): void {
    if (this.family === 4) wr32(to, at, rd32(from, addrAt));
    else copy16(to, at, from, addrAt);
  }

  /** Whether the 4 or 16 address bytes at `at` equal those at `addrAt` of a frame. */
  private sameAddr(a: Uint8Array, at: number, from: Uint8Array, addrAt: number): boolean {
    if (this.family === 4) return rd32(a, at) === rd32(from, addrAt);
    for (let i = 0; i < 16; i += 4) if (rd32(a, at + i) !== rd32(from, addrAt + i)) return false;
    return true;
  }

  /**
   * Sends a UDP socket's windows as their messages (one sendmmsg, a UDP_SEGMENT cmsg on each message of
   * several datagrams). A message the kernel cannot segment (-EIO: no checksum offload on the route's
   * device in older kernels; -EINVAL) turns UDP_SEGMENT off for good and goes again datagram by
   * datagram, as does one larger than the socket's path MTU (-EMSGSIZE, without turning it off);
   * another failing message is dropped as a send error and the rest retried; would-block drops the
   * rest. Every buffer is released.
   */
  private flushUdp(k: number): void {
    const s = this.us[k]!;
    const g = this.ug[k]!;
    const fd = this.udp[k]!.fd;
    const windows = g.windows;
    const messages = g.messages;
    g.windows = g.messages = 0;
    g.closed = true;
    for (let m = 0; m < messages; m++) if (s.iovs[m] === 1) s.segs[m] = 0;
    let m = 0;
    let w = 0;
    while (m < messages && !this.closed) {
      let r: number;
      try {
        r = this.sendGather(s, fd, w, windows, m, messages);
      } catch {
        r = -5;
      }
      if (r > 0) {
        for (let j = m; j < m + r; j++) w = this.sent(s, j, w);
        m += r;
        continue;
      }
      if (r === 0 || r === -11) break;
      const iovs = s.iovs[m]!;
      if (iovs > 1 && (r === -5 || r === -22 || r === -90)) {
        // No UDP GSO here (EIO, EINVAL): this message's datagrams one by one, and every later send too.
        // EMSGSIZE: the socket's path MTU is below the datagram size (an ICMP frag-needed came): these
        // go one by one (the kernel fragments them, as it would any datagram), later sends try again.
        if (r !== -90) this.gsoOn = false;
        for (let j = 0; j < iovs; j++) {
          s.iovs[m] = 1;
          s.segs[m] = 0;
          let r1: number;
          try {
            r1 = this.sendGather(s, fd, w + j, w + j + 1, m, m + 1);
          } catch {
            r1 = -5;
          }
          if (r1 === 1) {
            this.stats.txPackets++;
            this.stats.txBytes += s.lens[w + j]!;
          } else this.stats.drop(r1 === 0 || r1 === -11 ? DropReason.DeviceBusy : DropReason.DeviceSendError);
        }
        s.iovs[m] = iovs;
        w += iovs;
        m++;
        continue;
      }
      this.stats.drop(DropReason.DeviceSendError, iovs);
      w += iovs;
      m++;
    }
    if (w < windows) this.stats.drop(DropReason.DeviceBusy, windows - w);
    for (let i = 0; i < windows; i++) {
      s.bufs[i]!.release();
      s.bufs[i] = null;
    }
  }

  /** Counts message `m` (its windows from `w`) as sent; returns the window after it. */
  private sent(s: IoScratch, m: number, w: number): number {
    const iovs = s.iovs[m]!;
    for (let i = w; i < w + iovs; i++) {
      this.stats.txPackets++;
      this.stats.txBytes += s.lens[i]!;
    }
    if (iovs > 1) {
      this.stats.txSuper++;
      this.stats.txSuperSegments += iovs;
    }
    return w + iovs;
  }

  /** One udpSendGather of messages [m, messages) over windows [w, windows): how many went, or -errno. */
  private sendGather(s: IoScratch, fd: number, w: number, windows: number, m: number, messages: number): number {
    // Views past the start only when a send was cut short (rare): none per batch otherwise.
    const off = w === 0 ? s.offsets : s.offsets.subarray(w);
    const len = w === 0 ? s.lens : s.lens.subarray(w);
    const sub = m !== 0;
    return this.native.udpSendGather(
      fd,
      this.pool.slab,
      off,
      len,
      sub ? s.addrs.subarray(16 * m) : s.addrs,
      sub ? s.ports.subarray(m) : s.ports,
      sub ? s.segs.subarray(m) : s.segs,
      windows - w,
      sub ? s.iovs.subarray(m) : s.iovs,
      messages - m,
    );
  }

  private flushRaw(): void {
    const count = this.rw;
    this.rw = 0;
    this.sendAll(this.rws, count, this.rawSend);
  }

  /** One sendmmsg of raw messages [from, count): how many went, or -errno when the first failed. */
  private sendFrom(s: IoScratch, from: number, count: number, fd: number): number {
    // Views past the first message only when a batch was cut short (rare): none per batch otherwise.
    const off = from === 0 ? s.offsets : s.offsets.subarray(from);
    const len = from === 0 ? s.lens : s.lens.subarray(from);
    const addrs = from === 0 ? s.addrs : s.addrs.subarray(16 * from);
    return this.native.rawSendBatch(fd, this.pool.slab, off, len, addrs, count - from);
  }

  /**
   * Sends raw messages [0, count): a failing message is dropped as a send error and the rest retried;
   * would-block drops the rest. Every buffer is released.
   */
  private sendAll(s: IoScratch, count: number, fd: number): void {
    let from = 0;
    while (from < count && !this.closed) {
      let r: number;
      try {
        r = this.sendFrom(s, from, count, fd);
      } catch {
        r = -5;
      }
      if (r > 0) {
        for (let i = from; i < from + r; i++) {
          this.stats.txPackets++;
          this.stats.txBytes += s.lens[i]!;
        }
        from += r;
        continue;
      }
      if (r === 0 || r === -11) {
        this.stats.drop(DropReason.DeviceBusy, count - from);
        from = count;
        break;
      }
      this.stats.drop(DropReason.DeviceSendError);
      from++;
    }
    if (from < count) this.stats.drop(DropReason.DeviceBusy, count - from);
    for (let i = 0; i < count; i++) {
      s.bufs[i]!.release();
      s.bufs[i] = null;
    }
  }
}
