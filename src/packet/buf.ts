/**
 * The packet buffer: one window `[start, end)` into a fixed backing array, with headroom in front so that
 * encapsulation is a prepend (move `start` back) and tailroom behind for an ESP trailer and ICV. Layer
 * offsets are absolute indexes into `data`; -1 means "not parsed / not present".
 *
 * Buffers come from a `PacketPool`: steady-state processing allocates nothing.
 */
import { ETH_HEADER_LEN, VLAN_TAG_LEN } from '../wire/ethernet.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';

/** Largest Geneve header: 8 bytes plus 63 words of options (RFC 8926 §3.4). */
const GENEVE_MAX_HEADER_LEN = 8 + 252;
/** ESP header (8) plus the largest IV we use (8 for AES-GCM and ChaCha20-Poly1305). */
const ESP_FRONT_LEN = 8 + 8;

/**
 * Room in front of a received frame for the largest encapsulation seine emits: outer Ethernet with a
 * tag, IPv6, ESP header and IV, an ESP-in-UDP header, UDP and Geneve with the maximum options — 358
 * bytes — rounded up to a cache line multiple.
 */
export const HEADROOM = 384;
const HEADROOM_NEEDED = ETH_HEADER_LEN + VLAN_TAG_LEN + IPV6_HEADER_LEN + ESP_FRONT_LEN + UDP_HEADER_LEN + UDP_HEADER_LEN + GENEVE_MAX_HEADER_LEN;
if (HEADROOM_NEEDED > HEADROOM) throw new Error(`HEADROOM ${HEADROOM} < ${HEADROOM_NEEDED}`);

/** Room behind: ESP padding (≤ 15 for a 16-byte block), pad length, next header and a 16-byte ICV. */
export const TAILROOM = 64;

export class PacketBuf {
  /** Window start and end (absolute indexes into `data`). */
  start = HEADROOM;
  end = HEADROOM;
  /** Outer layer offsets. */
  l2 = -1;
  l3 = -1;
  l4 = -1;
  /** Inner layer offsets (inside a tunnel). */
  innerL2 = -1;
  innerL3 = -1;
  innerL4 = -1;
  /** Datapath metadata: ingress port, VLAN/segment, flow hash; set by stages. */
  inPort = -1;
  segment = 0;
  /** 802.1p priority of the tag popped on ingress, restored when a tag is pushed on egress. */
  pcp = 0;
  flowHash = 0;
  /** Chosen egress: a port index (-1 none, -2 flood) and its auxiliary (the remote VTEP for a tunnel). */
  outPort = -1;
  outAux = 0;
  /** Set by decapsulation: the VNI, the remote VTEP's index, and where the Geneve options were. */
  tunVni = -1;
  tunVtep = -1;
  tunOptOff = -1;
  tunOptLen = 0;
  /**
   * Offload metadata, as the virtio-net header carries it between a TAP and the datapath (see
   * packet/vnet.ts): GSO type and segment size, the length of the headers in front of the payload, and a
   * checksum to complete (`csumStart` absolute into `data`, -1 for none; `csumOffset` from there). It
   * describes the frame's contents, so `reset` clears it and the datapath's metadata resets keep it.
   */
  gsoType = 0;
  gsoSize = 0;
  hdrLen = 0;
  csumStart = -1;
  csumOffset = 0;
  /** When set, every stage records what it decided for this packet. */
  traced = false;
  /** Owned by a pool while free; guards against double free. */
  free = false;
  /** A DataView over `data` with the same indexes: multi-byte reads on hot paths are one load each. */
  readonly view: DataView;

  constructor(
    /** The whole backing array: headroom + capacity + tailroom. */
    readonly data: Uint8Array,
    /** Index of this buffer in its pool, or -1. */
    readonly slot = -1,
    /** The pool it came from, or null. */
    readonly pool: PacketPool | null = null,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  get length(): number {
    return this.end - this.start;
  }
  get headroom(): number {
    return this.start;
  }
  get tailroom(): number {
    return this.data.length - this.end;
  }

  /** Forgets contents and metadata; the window becomes empty at `HEADROOM`. */
  reset(): void {
    this.start = this.end = Math.min(HEADROOM, this.data.length);
    this.l2 = this.l3 = this.l4 = this.innerL2 = this.innerL3 = this.innerL4 = -1;
    this.gsoType = this.gsoSize = this.hdrLen = this.csumOffset = 0;
    this.csumStart = -1;
    this.clearMeta();
  }

  /** Forgets the datapath metadata (not the contents or the layer offsets). */
  clearMeta(): void {
    this.clearMetaKeepTrace();
    this.traced = false;
  }

  /** `clearMeta` except for the trace flag (a frame entering a bridge keeps the one its sender set). */
  clearMetaKeepTrace(): void {
    this.inPort = -1;
    this.segment = 0;
    this.pcp = 0;
    this.flowHash = 0;
    this.outPort = -1;
    this.outAux = 0;
    this.tunVni = -1;
    this.tunVtep = -1;
    this.tunOptOff = -1;
    this.tunOptLen = 0;
  }

  /** Copies the metadata of `o` (for a flooded copy). */
  copyMeta(o: PacketBuf): void {
    this.inPort = o.inPort;
    this.segment = o.segment;
    this.pcp = o.pcp;
    this.flowHash = o.flowHash;
    this.outPort = o.outPort;
    this.outAux = o.outAux;
    this.tunVni = o.tunVni;
    this.tunVtep = o.tunVtep;
    this.tunOptOff = -1;
    this.tunOptLen = 0;
    this.traced = o.traced;
  }

  /** Gives the buffer back to its pool (no-op for a buffer that has none). */
  release(): void {
    this.pool?.release(this);
  }

  /** Grows the window by `n` bytes in front; returns the new start, or -1 when headroom is short. */
  push(n: number): number {
    if (n > this.start) return -1;
    this.start -= n;
    return this.start;
  }
  /** Removes `n` bytes from the front; returns the new start, or -1 when the window is shorter. */
  pull(n: number): number {
    if (n > this.end - this.start) return -1;
    this.start += n;
    return this.start;
  }
  /** Grows the window by `n` bytes at the end; returns the old end (where to write), or -1. */
  put(n: number): number {
    if (n > this.data.length - this.end) return -1;
    const at = this.end;
    this.end += n;
    return at;
  }
  /** Shrinks the window by `n` bytes at the end; false when the window is shorter. */
  trim(n: number): boolean {
    if (n > this.end - this.start) return false;
    this.end -= n;
    return true;
  }

  /** Copies a frame in at `HEADROOM`; false when it does not fit. */
  load(frame: Uint8Array): boolean {
    this.reset();
    if (this.put(frame.length) < 0) return false;
    this.data.set(frame, this.start);
    return true;
  }

  /** A window onto the current contents (allocates a view object: for tests and control paths). */
  bytes(): Uint8Array {
    return this.data.subarray(this.start, this.end);
  }
}

export interface PacketPoolOptions {
  /** Number of buffers. */
  count: number;
  /** Largest frame a buffer holds (without headroom and tailroom). Default 9216, jumbo frames. */
  frameCapacity?: number;
}

/**
 * A fixed set of buffers carved from one slab. `alloc` returns null when the pool is exhausted — the
 * caller counts a drop; it never allocates more.
 */
export class PacketPool {
  readonly frameCapacity: number;
  readonly bufferSize: number;
  /**
   * The one array every buffer is a window of: buffer `slot` is `slab[slot × bufferSize, +bufferSize)`.
   * Copies between two buffers of a pool can then be a `copyWithin` on it, which allocates nothing.
   */
  readonly slab: Uint8Array;
  private readonly all: PacketBuf[] = [];
  private readonly freeList: PacketBuf[] = [];

  constructor(opts: PacketPoolOptions) {
    this.frameCapacity = opts.frameCapacity ?? 9216;
    // Keep each buffer 64-byte aligned within the slab.
    this.bufferSize = (HEADROOM + this.frameCapacity + TAILROOM + 63) & ~63;
    const slab = (this.slab = new Uint8Array(this.bufferSize * opts.count));
    for (let i = 0; i < opts.count; i++) {
      const b = new PacketBuf(slab.subarray(i * this.bufferSize, (i + 1) * this.bufferSize), i, this);
      b.free = true;
      this.all.push(b);
    }
    for (let i = opts.count - 1; i >= 0; i--) this.freeList.push(this.all[i]!);
  }

  get size(): number {
    return this.all.length;
  }
  get available(): number {
    return this.freeList.length;
  }

  /** A reset buffer, or null when none is free. */
  alloc(): PacketBuf | null {
    const b = this.freeList.pop();
    if (b === undefined) return null;
    b.free = false;
    b.reset();
    return b;
  }

  /** Returns a buffer; freeing one twice or one from another pool throws (a programming error). */
  release(b: PacketBuf): void {
    if (b.slot < 0 || this.all[b.slot] !== b) throw new Error('PacketPool.release: buffer is not from this pool');
    if (b.free) throw new Error('PacketPool.release: buffer freed twice');
    b.free = true;
    this.freeList.push(b);
  }
}

/** Default batch size: large enough to amortise per-batch work, small enough to stay in cache. */
export const BATCH_SIZE = 64;

/**
 * A batch of packets that stages filter in place: a stage keeps packets by compacting them to the
 * front and shortening `length`, so no array is allocated per batch.
 */
export class PacketBatch {
  readonly pkts: PacketBuf[];
  length = 0;

  constructor(readonly capacity = BATCH_SIZE) {
    this.pkts = new Array<PacketBuf>(capacity);
  }

  /** Appends; false when full. */
  add(p: PacketBuf): boolean {
    if (this.length === this.capacity) return false;
    this.pkts[this.length++] = p;
    return true;
  }

  get(i: number): PacketBuf {
    return this.pkts[i]!;
  }

  clear(): void {
    this.length = 0;
  }

  /**
   * Keeps the packets for which `keep` returns true, in order; each removed packet goes to `dropped`
   * (e.g. to count it and release it). Returns the number removed.
   */
  retain(keep: (p: PacketBuf) => boolean, dropped: (p: PacketBuf) => void): number {
    let w = 0;
    const n = this.length;
    for (let r = 0; r < n; r++) {
      const p = this.pkts[r]!;
      if (keep(p)) this.pkts[w++] = p;
      else dropped(p);
    }
    this.length = w;
    return n - w;
  }
}
