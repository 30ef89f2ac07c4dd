/**
 * The bridge: the pipeline every frame of a node goes through, the same code in the simulator and on a
 * live node. A batch received on a port passes the stages in order, each filtering the batch in place:
 *
 *   ingress      count, port state, frame length (tunnel ports: decapsulate)
 *   classify     VLAN: access or trunk, 802.1Q pop; source MAC sanity
 *   learn        (segment, source MAC) → port (tunnel ports in l2 mode: → remote VTEP)
 *   lookup       (segment, destination MAC) → port, or flood; frames for the gateway are routed
 *   segment      super-frames (TSO/USO, live TAPs only) for a tunnel or a port without segmentation
 *                offload: split into segments that fit the path (packet/gso.ts), each then goes on alone
 *   encapsulate  for tunnel egress: outer headers from the VTEP's template
 *   output       VLAN push, MTU, counters; queued per port and handed to devices at the end of the batch
 *
 * Floods go to every other port that carries the segment, never back out of the ingress port; frames from
 * a tunnel never flood into a tunnel (split horizon); an l2 tunnel port replicates to each VTEP of the
 * segment's VNI. Copies come from the packet pool; the original goes to the last destination.
 *
 * Accounting, checked by the tests: for the bridge, over all ports,
 *   Σ rx + flood copies + generated + fragments made + segments made
 *     = Σ tx + Σ drops + fragments merged + fragments held + packets waiting for ESP
 * (the gateway port included: frames delivered to the gateway count as its tx, frames it emits as its rx;
 * `generated` are the ICMP too-big messages and ESP announcements the bridge builds; fragmenting a packet
 * into k makes k − 1, reassembling k fragments merges k − 1, fragments of incomplete datagrams are held,
 * packets for an ESP peer whose announcement has not come yet wait, `heldForEsp`; and segmenting a
 * super-frame into k makes k − 1, `segmentsMade`);
 * inside the gateway, its tx = its rx − generated + its own drops + consumed.
 *
 * When a packet carries the trace flag, each stage reports its decision to `trace`.
 */
import type { PacketBatch, PacketBuf } from '../packet/buf.js';
import { segment } from '../packet/gso.js';
import { VNET_GSO_ECN, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_GSO_UDP_L4 } from '../packet/vnet.js';
import { DropReason, dropReasonName } from '../wire/drop.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETH_HEADER_LEN, VLAN_TAG_LEN } from '../wire/ethernet.js';
import type { Tunnel } from '../overlay/tunnel.js';
import { ESP_WAIT } from '../esp/sadb.js';
import { fragmentIpv4, fragmentIpv6 } from '../mtu/fragment.js';
import { buildFragNeeded, buildPacketTooBig } from '../mtu/icmp.js';
import { clampMss } from '../mtu/mss.js';
import { DONE as REASM_DONE, HELD as REASM_HELD, Reassembler } from '../mtu/reassembly.js';
import { GatewayVerdict, GLOBAL_VIRTUAL_MAC } from './gateway.js';
import type { Port } from './port.js';
import type { Stage } from './trace.js';
import { BridgeBase, bump, FLOOD } from './bridge-base.js';

export { FLOOD, type BridgeOptions, type Clock, type GatewayPortOptions, type PortOptions } from './bridge-base.js';

/** What `sendTooBig` did when it returns no DropReason. */
const TOO_BIG_SENT = 0;
const TOO_BIG_SUPPRESSED = -1;
const TOO_BIG_LIMITED = -2;

export class Bridge extends BridgeBase {
  // ---- the pipeline -------------------------------------------------------------------------------------

  /**
   * Processes a batch received on `port`. The bridge owns the packets; the batch object is the caller's and
   * is left empty. Safe to call from inside a batch (a device delivering synchronously): the frames wait in
   * a bounded queue and are processed when the current batch is done.
   */
  override receive(port: Port, batch: PacketBatch): void {
    if (this.busy) {
      this.enqueue(port, batch);
      return;
    }
    this.busy = true;
    try {
      this.process(port, batch);
      this.drain();
    } finally {
      this.busy = false;
    }
  }

  private enqueue(port: Port, batch: PacketBatch): void {
    const cap = this.qPort.length;
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      if (this.qLen === cap) {
        port.counters.rxPackets++;
        port.counters.rxBytes += p.end - p.start;
        this.drop(p, port, DropReason.QueueFull, 'ingress');
        continue;
      }
      const at = (this.qHead + this.qLen++) % cap;
      this.qPort[at] = port.index;
      this.qPkt[at] = p;
    }
    batch.clear();
  }

  protected override drain(): void {
    const b = this.drainBatch;
    const cap = this.qPort.length;
    while (this.qLen > 0) {
      const idx = this.qPort[this.qHead]!;
      b.clear();
      while (this.qLen > 0 && this.qPort[this.qHead] === idx && b.length < b.capacity) {
        b.add(this.qPkt[this.qHead]!);
        this.qPkt[this.qHead] = null;
        this.qHead = (this.qHead + 1) % cap;
        this.qLen--;
      }
      const port = this.ports[idx];
      if (port === null || port === undefined) {
        for (let i = 0; i < b.length; i++) b.get(i).release();
        continue;
      }
      this.process(port, b);
    }
    b.clear();
  }

  private process(port: Port, batch: PacketBatch): void {
    this.setNow(this.clock.now());
    this.ingress(port, batch);
    if (batch.length > 0) this.learnLookup(port, batch);
    for (let i = 0; i < batch.length; i++) this.forward(batch.pkts[i]!);
    batch.clear();
    if (this.espPorts.length > 0) this.serviceEsp();
    this.flush();
  }

  // ---- ESP: announcements and packets waiting for them ----------------------------------------------------

  /**
   * For each ESP tunnel port: sends the announcements its SA database has queued (frames the bridge
   * generates, out of the tunnel port), lets the packets waiting for a peer that became ready go on
   * through the output stage, and drops those that waited longer than the database's `waitNs` (EspNoSa).
   */
  protected override serviceEsp(): void {
    for (const port of this.espPorts) {
      const tunnel = this.tunnels[port.index]!;
      const sadb = tunnel.sadb!;
      if (sadb.outbox.length > 0) {
        tunnel.emitHellos(
          () => this.pool.alloc(),
          (h) => {
            this.generated++;
            h.inPort = port.index;
            this.enqueue1(h, port);
          },
        );
      }
      if (sadb.readied.length > 0) {
        const ready = sadb.readied.splice(0);
        for (const h of this.releaseHeld(port.index, ready)) this.outputSlow(h.p, port.index, h.aux);
      }
    }
    if (this.espHeld.length > 0) this.dropHeld(null);
  }

  /** An encapsulation that failed with `r`: held for the peer's ESP announcement (ESP_WAIT), or dropped. */
  private encapFailed(p: PacketBuf, port: Port, aux: number, r: number): void {
    if (r === ESP_WAIT) this.holdForEsp(p, port, aux);
    else this.drop(p, port, r, 'encapsulate');
  }

  /**
   * Stages 1 and 2 in one pass over the batch (each packet is touched once): ingress — count, port state,
   * length; tunnel ports strip and check the outer headers — then classify.
   */
  private ingress(port: Port, batch: PacketBatch): void {
    const c = port.counters;
    const up = port.up;
    const tunnel = this.tunnels[port.index] ?? null;
    const routedSegment = this.gwPort?.vlan ?? -1;
    const pk = batch.pkts;
    const n = batch.length;
    let bytes = 0;
    let w = 0;
    // Batched AEAD: the batch's ESP packets are opened in one call first; decap then finishes each in order.
    if (tunnel !== null && up) tunnel.espOpenBatch(pk, n, this.now);
    for (let i = 0; i < n; i++) {
      let p = pk[i]!;
      const len = p.end - p.start;
      bytes += len;
      // Whatever the buffer carried before (it may have crossed another bridge) is forgotten, except the
      // trace flag its sender set.
      p.clearMetaKeepTrace();
      p.inPort = port.index;
      p.segment = port.vlan;
      let r = 0;
      if (!up) r = DropReason.PortDown;
      else if (tunnel !== null) {
        r = tunnel.decap(p);
        if (r === DropReason.TunnelFragment) {
          // An outer fragment: held until its datagram is whole, which then goes on in its place.
          const q = this.reassemble(p, port, tunnel);
          if (q === null) continue;
          p = q;
          r = tunnel.decap(p);
        }
        if (r === 0 && tunnel.mssClamp && maybeTcpSyn(p.view, p.start, p.end)) this.clampTcpMss(p, port, tunnel, 'decapsulate');
      } else if (p.end - p.start < ETH_HEADER_LEN) r = DropReason.EthTruncated;
      if (r !== 0) {
        this.drop(p, port, r, tunnel !== null && up ? 'decapsulate' : 'ingress');
        continue;
      }
      if (p.traced) this.traceIngress(p, port, tunnel, len);
      const rc = this.classify(p, port, tunnel, routedSegment);
      if (rc !== 0) {
        this.drop(p, port, rc, 'classify');
        continue;
      }
      pk[w++] = p;
    }
    if (tunnel !== null && up) tunnel.espBatchEnd();
    c.rxPackets += n;
    c.rxBytes += bytes;
    batch.length = w;
  }

  /** Stage 2: the frame's segment from its VLAN tag and the port's mode; tags are popped here. Returns 0 or a DropReason. */
  private classify(p: PacketBuf, port: Port, tunnel: Tunnel | null, routedSegment: number): number {
    const b = p.data;
    const s = p.start;
    let r = 0;
    const type = p.view.getUint16(s + 12);
    if (type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ) {
      if (p.end - s < ETH_HEADER_LEN + VLAN_TAG_LEN) r = DropReason.VlanTruncated;
      else {
        const vid = ((b[s + 14]! << 8) | b[s + 15]!) & 0x0fff;
        // A priority tag (VID 0) belongs to the port's untagged VLAN.
        const seg = vid === 0 ? port.vlan : vid;
        if (tunnel !== null || type === ETHERTYPE_QINQ || (vid !== 0 && !port.isTrunk) || !port.carries(seg)) r = DropReason.VlanNotAllowed;
        else {
          p.pcp = b[s + 14]! >>> 5;
          b.copyWithin(s + VLAN_TAG_LEN, s, s + 12);
          p.start = s + VLAN_TAG_LEN;
          p.segment = seg;
        }
      }
    } else if (tunnel !== null && tunnel.mode === 'routed') {
      // A routed tunnel carries routed traffic only: frames for the gateway (its MAC or the virtual MAC
      // remote gateways use), never broadcasts or frames switched straight onto the pods' segment.
      const dst = p.view.getUint16(s) * 4294967296 + p.view.getUint32(s + 2);
      if (routedSegment < 0) r = DropReason.NoRoute;
      else if (dst !== GLOBAL_VIRTUAL_MAC && dst !== this.gw!.mac) r = DropReason.RoutedNotForGateway;
      else p.segment = routedSegment;
    }
    if (r === 0 && (b[p.start + 6]! & 1) !== 0) r = DropReason.SrcMacGroup;
    if (r === 0 && p.traced) this.traceClassify(p, port, type === ETHERTYPE_VLAN);
    return r;
  }

  /**
   * Stages 3 and 4. Learn: where the source MAC lives (not through routed tunnels: their sources are
   * gateways). Lookup: where the destination MAC lives; unknown, broadcast and multicast flood. The keys
   * of the batch are gathered first and the MAC table works through them in one call per stage (as VPP's
   * l2-learn and l2-fwd nodes work on a frame of packets).
   */
  private learnLookup(port: Port, batch: PacketBatch): void {
    const n = batch.length;
    if (n > this.kSeg.length) this.growKeys(n);
    const tunnel = this.tunnels[port.index] ?? null;
    const macs = this.macs;
    const now = this.now;
    const idx = port.index;
    const pk = batch.pkts;
    const seg = this.kSeg;
    const src = this.kSrc;
    const dst = this.kDst;
    const aux = this.kAux;
    let traced = false;
    for (let i = 0; i < n; i++) {
      const p = pk[i]!;
      const v = p.view;
      const s = p.start;
      seg[i] = p.segment;
      dst[i] = v.getUint16(s) * 4294967296 + v.getUint32(s + 2);
      src[i] = v.getUint16(s + 6) * 4294967296 + v.getUint32(s + 8);
      aux[i] = Math.max(p.tunVtep, 0);
      if (p.traced) traced = true;
    }
    if (tunnel === null || tunnel.mode !== 'routed') {
      macs.learnBatch(seg, src, aux, n, idx, now, this.kLearned);
      if (traced) {
        for (let i = 0; i < n; i++) if (pk[i]!.traced) this.traceLearn(pk[i]!, port, tunnel, src[i]!, this.kLearned[i]!);
      }
    }
    const outPort = this.kPort;
    const outAux = this.kOutAux;
    macs.lookupBatch(seg, dst, n, now, outPort, outAux);
    let w = 0;
    for (let i = 0; i < n; i++) {
      const p = pk[i]!;
      // The I/G bit: broadcast and multicast flood.
      const o = (p.data[p.start]! & 1) !== 0 ? -1 : outPort[i]!;
      if (o < 0) {
        p.outPort = FLOOD;
      } else {
        p.outPort = o;
        p.outAux = outAux[i]!;
        if (o === idx) {
          this.drop(p, port, DropReason.SameAsIngress, 'lookup');
          continue;
        }
      }
      if (p.traced) this.traceLookup(p, port);
      pk[w++] = p;
    }
    batch.length = w;
  }

  private growKeys(n: number): void {
    this.kSeg = new Int32Array(n);
    this.kSrc = new Float64Array(n);
    this.kDst = new Float64Array(n);
    this.kAux = new Int32Array(n);
    this.kLearned = new Uint8Array(n);
    this.kPort = new Int32Array(n);
    this.kOutAux = new Int32Array(n);
  }

  /** Stages 5 and 6 for one packet: flood or output (encapsulating for tunnels, routing for the gateway). */
  private forward(p: PacketBuf): void {
    if (p.outPort === FLOOD) this.flood(p);
    else this.output(p, p.outPort, p.outAux);
  }

  /**
   * Floods `p`. The scratch destination list is shared, so a flood started from inside a flood (the
   * gateway answering a flooded request with a frame that floods itself) waits until the outer one is done.
   */
  private flood(p: PacketBuf): void {
    if (this.flooding) {
      this.deferred.push(p);
      return;
    }
    this.flooding = true;
    try {
      this.floodOne(p);
      for (let i = 0; i < this.deferred.length; i++) this.floodOne(this.deferred[i]!);
    } finally {
      this.deferred.length = 0;
      this.flooding = false;
    }
  }

  private floodOne(p: PacketBuf): void {
    const inPort = p.inPort;
    const ingress = this.ports[inPort] ?? null;
    const fromTunnel = ingress !== null && ingress.kind === 'tunnel';
    const seg = p.segment;
    let n = 0;
    for (let i = 0; i < this.ports.length; i++) {
      const q = this.ports[i];
      if (q === null || q === undefined || i === inPort || !q.up) continue;
      const t = this.tunnels[i];
      if (t !== null && t !== undefined) {
        // Split horizon; routed tunnels carry only routed traffic.
        if (fromTunnel || t.mode === 'routed') continue;
        const list = t.floodList(seg);
        for (let k = 0; k < list.length; k++) n = this.addFloodTarget(n, i, list[k]!);
      } else if (q.carries(seg)) {
        n = this.addFloodTarget(n, i, 0);
      }
    }
    const port = ingress ?? this.gwPort!;
    if (n === 0) {
      this.drop(p, port, DropReason.NoEgressPort, 'lookup');
      return;
    }
    if (p.traced) {
      const to: string[] = [];
      for (let k = 0; k < n; k++) to.push(this.destName(this.floodPorts[k]!, this.floodAux[k]!));
      this.record('lookup', port, `flood to ${n} destination${n === 1 ? '' : 's'}`, { segment: seg, to });
    }
    // Make every copy before any output changes the original (VLAN push, encapsulation).
    const copies = this.floodCopiesBuf;
    for (let k = 0; k < n - 1; k++) {
      const c = this.pool.alloc();
      if (c !== null) {
        c.start = c.end = p.start;
        if (c.put(p.end - p.start) < 0) {
          c.release();
          copies[k] = null;
          continue;
        }
        c.data.set(p.data.subarray(p.start, p.end), c.start);
        c.copyMeta(p);
        c.l2 = c.start;
        this.floodCopies++;
      }
      copies[k] = c;
    }
    for (let k = 0; k < n - 1; k++) {
      const c = copies[k]!;
      copies[k] = null;
      const dest = this.ports[this.floodPorts[k]!]!;
      if (c === null) {
        // Counted as a copy that the egress port had to drop.
        this.floodCopies++;
        bump(dest.counters.drops, DropReason.PoolExhausted);
        if (p.traced) this.record('drop', dest, `dropped: ${dropReasonName(DropReason.PoolExhausted)}`, { reason: dropReasonName(DropReason.PoolExhausted) });
        continue;
      }
      this.output(c, this.floodPorts[k]!, this.floodAux[k]!);
    }
    this.output(p, this.floodPorts[n - 1]!, this.floodAux[n - 1]!);
  }

  private addFloodTarget(n: number, port: number, aux: number): number {
    if (n === this.floodPorts.length) {
      const grow = (a: Int32Array): Int32Array => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.floodPorts = grow(this.floodPorts);
      this.floodAux = grow(this.floodAux);
      this.floodCopiesBuf = this.floodCopiesBuf.concat(new Array<PacketBuf | null>(this.floodCopiesBuf.length).fill(null));
    }
    this.floodPorts[n] = port;
    this.floodAux[n] = aux;
    return n + 1;
  }

  /**
   * Sends `p` out of port `idx` (to VTEP `aux` for a tunnel); the gateway routes instead. The common case —
   * an up, untagged port of the frame's own segment — stays small so V8 inlines it; the rest is out of line.
   */
  private output(p: PacketBuf, idx: number, aux: number): void {
    const port = this.ports[idx];
    if (
      port === null ||
      port === undefined ||
      !port.up ||
      port.special ||
      p.segment !== port.vlan ||
      p.end - p.start - ETH_HEADER_LEN > port.mtu ||
      p.gsoType !== VNET_GSO_NONE
    ) {
      this.outputSlow(p, idx, aux);
      return;
    }
    this.enqueue1(p, port);
  }

  private outputSlow(p: PacketBuf, idx: number, aux: number): void {
    const port = this.ports[idx];
    if (port === null || port === undefined) {
      this.drop(p, this.ports[p.inPort] ?? this.gwPort!, DropReason.PortDown, 'output');
      return;
    }
    if (!port.up) {
      this.drop(p, port, DropReason.PortDown, 'output');
      return;
    }
    if (port.kind === 'gateway') {
      if (p.segment !== port.vlan) {
        this.drop(p, port, DropReason.VlanNotAllowed, 'output');
        return;
      }
      const c = port.counters;
      c.txPackets++;
      c.txBytes += p.end - p.start;
      this.toGateway(p, port);
      return;
    }
    const tunnel = this.tunnels[idx] ?? null;
    if (tunnel !== null) {
      const vni = tunnel.vniFor(p.segment);
      if (vni < 0) {
        this.drop(p, port, DropReason.UnknownVni, 'encapsulate');
        return;
      }
      if (p.gsoType !== VNET_GSO_NONE) {
        // A super-frame for a peer that ESP must wait for waits whole: one buffer, not one per segment.
        if (tunnel.sadb?.mustWait(aux, this.now) === true) {
          this.holdForEsp(p, port, aux);
          return;
        }
        // Segments of the path's size rather than ICMP too-big, as the kernel's GSO does: the sender's
        // stack chose the super-frame, its segments are what must fit.
        this.segmentOut(p, port, tunnel.innerMtu(port.mtu), aux);
        return;
      }
      if (tunnel.mssClamp && maybeTcpSyn(p.view, p.start, p.end)) this.clampTcpMss(p, port, tunnel, 'encapsulate');
      if (p.end - p.start - ETH_HEADER_LEN > tunnel.innerMtu(port.mtu)) {
        this.tooBig(p, port, tunnel, aux, vni);
        return;
      }
      const r = tunnel.encap(p, aux, vni, this.now);
      if (r !== 0) {
        this.encapFailed(p, port, aux, r);
        return;
      }
      if (p.traced) this.traceEncap(p, port, tunnel, aux, vni);
    } else {
      if (!port.carries(p.segment)) {
        this.drop(p, port, DropReason.VlanNotAllowed, 'output');
        return;
      }
      let whole = false;
      if (p.gsoType !== VNET_GSO_NONE) {
        const o = port.device?.offloads;
        const type = p.gsoType & ~VNET_GSO_ECN;
        const hdrs = superFrameHeaders(p);
        // Whole to a device that segments itself (a TAP with TSO: its kernel takes the virtio-net
        // header), when its segments fit the port; otherwise segmented here.
        whole = o !== undefined && (type === VNET_GSO_UDP_L4 ? o.uso : o.tso) && hdrs > 0 && hdrs + p.gsoSize <= port.mtu;
        if (!whole) {
          this.segmentOut(p, port, port.mtu, aux);
          return;
        }
      }
      let l2len = ETH_HEADER_LEN;
      if (port.allowed !== null && p.segment !== port.vlan) {
        // 802.1Q push: move the MACs into the headroom and write the tag after them.
        const s = p.push(VLAN_TAG_LEN);
        if (s < 0) {
          this.drop(p, port, DropReason.HeadroomShort, 'output');
          return;
        }
        const b = p.data;
        b.copyWithin(s, s + VLAN_TAG_LEN, s + VLAN_TAG_LEN + 12);
        b[s + 12] = ETHERTYPE_VLAN >>> 8;
        b[s + 13] = ETHERTYPE_VLAN & 0xff;
        b[s + 14] = (p.pcp << 5) | ((p.segment >>> 8) & 0x0f);
        b[s + 15] = p.segment & 0xff;
        l2len += VLAN_TAG_LEN;
      }
      if (!whole && p.end - p.start - l2len > port.mtu) {
        this.drop(p, port, DropReason.MtuExceeded, 'output');
        return;
      }
    }
    this.enqueue1(p, port);
  }

  /**
   * Segments super-frame `p` into frames of at most `mtu` bytes of IP (and of no more payload than its
   * gso size), then sends each through the output stage to `port` (to VTEP `aux` for a tunnel), where it
   * is encapsulated, tagged and counted as any frame. The segments carry `p`'s datapath metadata (the
   * trace flag only the first, so a trace shows one of them); `p` itself is released.
   */
  private segmentOut(p: PacketBuf, port: Port, mtu: number, aux: number): void {
    const out = this.segOut;
    out.clear();
    // segment() sizes TCP segments to the gso size and to what fits `mtu` with their own headers.
    const k = segment(p, p.gsoSize, this.pool, out, this.gso, mtu);
    if (k <= 0) {
      // Nothing was appended (segment() gives every buffer back when it refuses).
      this.drop(p, port, k < 0 ? (-k as DropReason) : DropReason.GsoBadType, 'segment');
      return;
    }
    this.segmentsMade += k - 1;
    if (p.traced)
      this.record('segment', port, `super-frame of ${p.end - p.start} bytes (gso size ${p.gsoSize}) segmented into ${k} for MTU ${mtu}`, {
        bytes: p.end - p.start,
        gsoSize: p.gsoSize,
        segments: k,
        mtu,
      });
    for (let i = 0; i < k; i++) {
      const f = out.get(i);
      f.copyMeta(p);
      f.traced = p.traced && i === 0;
      this.outputSlow(f, port.index, aux);
    }
    out.clear();
    p.release();
  }

  // ---- MTU: too big for the tunnel, MSS clamping, reassembly ----------------------------------------------

  /**
   * `p` (an untagged inner frame) does not fit the tunnel's path. IPv4 with DF and IPv6 are dropped and
   * their sender told (ICMP fragmentation needed with the path MTU, RFC 1191; ICMPv6 Packet Too Big,
   * RFC 8201), unless the tunnel suppresses those messages or the rate limit holds one back. IPv4
   * without DF follows the tunnel's policy: fragment the outer packet, the inner one, or drop.
   */
  private tooBig(p: PacketBuf, port: Port, tunnel: Tunnel, aux: number, vni: number): void {
    const mtu = tunnel.innerMtu(port.mtu);
    const l3 = p.start + ETH_HEADER_LEN;
    const type = p.view.getUint16(p.start + 12);
    if (type === ETHERTYPE_IPV6) {
      const told = this.sendTooBig(p, port, tunnel, 6, Math.max(mtu, 1280));
      if (p.traced) this.traceTooBig(port, 6, mtu, Math.max(mtu, 1280), told);
      this.drop(p, port, DropReason.PacketTooBigV6, 'encapsulate');
      return;
    }
    if (type !== ETHERTYPE_IPV4 || p.end - l3 < 20) {
      this.drop(p, port, DropReason.TooBigNotIp, 'encapsulate');
      return;
    }
    if ((p.view.getUint16(l3 + 6) & 0x4000) !== 0) {
      const told = this.sendTooBig(p, port, tunnel, 4, mtu);
      if (p.traced) this.traceTooBig(port, 4, mtu, mtu, told);
      this.drop(p, port, DropReason.FragNeededDf, 'encapsulate');
      return;
    }
    const policy = tunnel.fragmentPolicy === 'outer' && tunnel.dontFrag ? 'inner' : tunnel.fragmentPolicy;
    if (policy === 'drop') {
      if (p.traced) this.record('encapsulate', port, `dropped: exceeds MTU ${mtu}, fragmentation policy is drop`, { mtu });
      this.drop(p, port, DropReason.TooBigPolicyDrop, 'encapsulate');
      return;
    }
    const out = this.fragOut;
    out.length = 0;
    // A path narrower than IPv4's minimum MTU (68), or an IPv6 underlay narrower than 1280, cannot carry
    // fragments either.
    if (policy === 'inner' ? mtu < 68 : tunnel.family === 6 && port.mtu < 1280) {
      this.drop(p, port, DropReason.MtuExceeded, 'encapsulate');
      return;
    }
    if (policy === 'inner') {
      // Split the inner packet, then each piece is encapsulated on its own.
      const k = fragmentIpv4(p, l3, mtu, this.pool, out);
      if (k < 0) {
        this.drop(p, port, -k, 'encapsulate');
        return;
      }
      this.countFragments(tunnel, k);
      if (p.traced) this.record('encapsulate', port, `inner packet fragmented into ${k} for MTU ${mtu}`, { mtu, fragments: k, policy });
      for (let i = 0; i < k; i++) {
        const f = out[i]!;
        out[i] = null!;
        const r = tunnel.encap(f, aux, vni, this.now);
        if (r !== 0) this.encapFailed(f, port, aux, r);
        else this.enqueue1(f, port);
      }
      out.length = 0;
      return;
    }
    // Outer fragmentation, as Linux vxlan does: encapsulate, then split the outer packet for the underlay.
    const r = tunnel.encap(p, aux, vni, this.now);
    if (r !== 0) {
      this.encapFailed(p, port, aux, r);
      return;
    }
    tunnel.sealPending(); // the fragments copy the sealed packet
    if (p.traced) this.traceEncap(p, port, tunnel, aux, vni);
    const outerL3 = p.start + ETH_HEADER_LEN;
    const k =
      tunnel.family === 4
        ? fragmentIpv4(p, outerL3, port.mtu, this.pool, out)
        : fragmentIpv6(p, outerL3, port.mtu, this.pool, out, (tunnel.fragIdent = (tunnel.fragIdent + 1) >>> 0));
    if (k < 0) {
      this.drop(p, port, -k, 'encapsulate');
      return;
    }
    this.countFragments(tunnel, k);
    if (p.traced) this.record('encapsulate', port, `outer packet fragmented into ${k} for underlay MTU ${port.mtu}`, { mtu: port.mtu, fragments: k, policy });
    for (let i = 0; i < k; i++) {
      const f = out[i]!;
      out[i] = null!;
      this.enqueue1(f, port);
    }
    out.length = 0;
  }

  private countFragments(tunnel: Tunnel, k: number): void {
    tunnel.mtuStats.fragmented++;
    tunnel.mtuStats.fragments += k;
    this.fragmentsMade += k - 1;
  }

  /**
   * Builds the ICMP too-big message for `p` and sends it back into the bridge. Returns TOO_BIG_SENT,
   * TOO_BIG_SUPPRESSED, TOO_BIG_LIMITED, or the DropReason that kept it from being built (no string per
   * packet: `traceTooBig` words it for traced packets). It comes from the gateway (its MAC and address)
   * when the node has one; otherwise from the address and MAC the packet was sent to, as Linux's bridged
   * tunnels do. Routed traffic (its source MAC is the gateway's, which routed it here) goes back through
   * the gateway, which routes the message to the pod; switched traffic goes straight to the sender's MAC.
   */
  private sendTooBig(p: PacketBuf, port: Port, tunnel: Tunnel, family: 4 | 6, mtu: number): number {
    if (!tunnel.icmpTooBig) {
      tunnel.mtuStats.icmpSuppressed++;
      return TOO_BIG_SUPPRESSED;
    }
    if (!this.limiters[port.index]!.allow(this.now)) {
      tunnel.mtuStats.icmpRateLimited++;
      return TOO_BIG_LIMITED;
    }
    const out = this.pool.alloc();
    if (out === null) return DropReason.PoolExhausted;
    const gw = this.gw;
    const origSrc = p.view.getUint16(p.start + 6) * 4294967296 + p.view.getUint32(p.start + 8);
    const mac = gw !== null ? gw.mac : p.view.getUint16(p.start) * 4294967296 + p.view.getUint32(p.start + 2);
    const l3 = p.start + ETH_HEADER_LEN;
    const n = family === 4 ? buildFragNeeded(p, l3, mtu, { mac, ipv4: gw?.v4 ?? 0 }, out) : buildPacketTooBig(p, l3, mtu, { mac, ipv6: gw?.v6 ?? null }, out);
    if (n < 0) {
      out.release();
      return -n;
    }
    tunnel.mtuStats.icmpSent++;
    this.generated++;
    out.clearMeta();
    out.traced = p.traced;
    out.segment = p.segment;
    out.inPort = port.index;
    if (gw !== null && origSrc === gw.mac) {
      // Routed here by the gateway: the gateway routes the message back to the pod.
      const gp = this.gwPort!;
      gp.counters.txPackets++;
      gp.counters.txBytes += out.end - out.start;
      this.toGateway(out, gp);
    } else {
      const h = this.macs.lookup(out.segment, origSrc, this.now);
      if (h < 0) this.flood(out);
      else this.output(out, this.macs.portOf(h), this.macs.auxOf(h));
    }
    return TOO_BIG_SENT;
  }

  private traceTooBig(port: Port, family: 4 | 6, mtu: number, announced: number, told: number): void {
    const what = family === 4 ? 'ICMP frag-needed' : 'ICMPv6 Packet Too Big';
    const icmp =
      told === TOO_BIG_SENT
        ? `${what} sent (MTU ${announced})`
        : told === TOO_BIG_SUPPRESSED
          ? `${what} suppressed (icmpTooBig off)`
          : told === TOO_BIG_LIMITED
            ? `${what} rate-limited`
            : `${what} not sent: ${dropReasonName(told as DropReason)}`;
    this.record('encapsulate', port, `dropped: exceeds MTU ${mtu}, ${icmp}`, { mtu, icmp });
  }

  /** Lowers the MSS of a TCP SYN or SYN-ACK crossing `tunnel` to what its path carries. */
  private clampTcpMss(p: PacketBuf, port: Port, tunnel: Tunnel, stage: Stage): void {
    const type = p.view.getUint16(p.start + 12);
    const mtu = tunnel.innerMtu(port.mtu);
    const mss = type === ETHERTYPE_IPV4 ? mtu - 40 : type === ETHERTYPE_IPV6 ? mtu - 60 : 0;
    if (mss <= 0) return;
    const old = clampMss(p, p.start + ETH_HEADER_LEN, mss);
    if (old > 0) {
      tunnel.mtuStats.mssClamped++;
      if (p.traced) this.record(stage, port, `TCP MSS ${old} clamped to ${mss}`, { mssWas: old, mss });
    }
  }

  /**
   * Gives an outer fragment to the port's reassembler. Returns the reassembled frame, ready for
   * decapsulation, once its datagram is whole; otherwise null: the fragment is held, or dropped and
   * counted. Fragments the reassembler discards later (timeout, overlap, memory) are counted on the port.
   */
  private reassemble(p: PacketBuf, port: Port, tunnel: Tunnel): PacketBuf | null {
    if (this.reasmLater[port.index] === true) {
      const made = new Reassembler({ pool: this.pool });
      this.reasm[port.index] = made;
      this.reasmDropsSeen[port.index] = new Float64Array(made.drops.length);
      this.reasmLater[port.index] = false;
    }
    const r = this.reasm[port.index]!;
    const traced = p.traced;
    const v = r.add(p, p.start + ETH_HEADER_LEN, this.now);
    this.syncReasmDrops(port);
    if (v === REASM_HELD) {
      if (traced) this.record('decapsulate', port, `outer fragment held for reassembly (${r.heldFragments} held)`, { held: r.heldFragments });
      return null;
    }
    if (v !== REASM_DONE) {
      // A DropReason; PASS (not a fragment after all) cannot follow decap's TunnelFragment.
      this.drop(p, port, v > 0 ? v : DropReason.TunnelFragment, 'decapsulate');
      return null;
    }
    const q = r.take()!;
    // The held fragments it was made of (not held before minus after: the same add may have timed out others).
    const merged = r.lastFragments;
    this.fragmentsMerged += merged - 1;
    tunnel.mtuStats.reassembled++;
    q.clearMeta();
    q.traced = traced;
    q.inPort = port.index;
    q.segment = port.vlan;
    if (traced)
      this.record('decapsulate', port, `reassembled a ${q.end - q.start}-byte outer packet from ${merged} fragments`, {
        bytes: q.end - q.start,
        fragments: merged,
      });
    return q;
  }

  /** Counts `p` out of `port` and queues it for the device; a full queue goes out at once. */
  private enqueue1(p: PacketBuf, port: Port): void {
    const c = port.counters;
    c.txPackets++;
    c.txBytes += p.end - p.start;
    if (p.traced) this.traceOutput(p, port);
    const out = port.out;
    const n = out.length;
    if (n === 0) {
      if (this.dirtyLen === this.dirty.length) this.dirty = this.dirty.concat(new Array<Port | null>(this.dirty.length).fill(null));
      this.dirty[this.dirtyLen++] = port;
    }
    out.pkts[n] = p;
    out.length = n + 1;
    if (n + 1 === out.capacity) this.flushPort(port);
  }

  /** The gateway routes (or answers, or uses up) a frame the bridge delivered to it. */
  private toGateway(p: PacketBuf, port: Port): void {
    const gw = this.gw!;
    const gc = gw.counters;
    const r = gw.handle(p);
    if (r < 0) {
      bump(gc.drops, -r);
      if (p.traced) this.record('route', port, `dropped: ${dropReasonName(-r as DropReason)}`, { reason: dropReasonName(-r as DropReason), ...gw.lastDetail });
      p.release();
      return;
    }
    if (r === GatewayVerdict.Consumed) {
      gw.consumed++;
      if (p.traced) this.record('route', port, 'consumed by the gateway', {});
      p.release();
      return;
    }
    this.fromGateway(p, port);
    if (r === GatewayVerdict.Switch) {
      // Through the batch lookup with one key, the MAC read by the buffer's DataView: a MAC as a number is
      // a double, and passing one to `lookup` (or returning one from `rdMac`) where V8 does not inline
      // boxes it — 16 bytes of heap per routed packet each, measured on a live node.
      const k = this.gwKey;
      k.segs[0] = p.segment;
      k.macs[0] = p.view.getUint16(p.start) * 0x1_0000_0000 + p.view.getUint32(p.start + 2);
      this.macs.lookupAtQueryTime(k.segs, k.macs, 1, k.ports, k.auxs);
      if (k.ports[0]! < 0) p.outPort = FLOOD;
      else {
        p.outPort = k.ports[0]!;
        p.outAux = k.auxs[0]!;
      }
    }
    if (p.traced)
      this.record('route', port, p.outPort === FLOOD ? 'routed, destination MAC unknown: flood' : `routed → ${this.destName(p.outPort, p.outAux)}`, {
        ...gw.lastDetail,
      });
    if (p.outPort === port.index) {
      this.drop(p, port, DropReason.SameAsIngress, 'route');
      return;
    }
    if (p.outPort === FLOOD) {
      this.flood(p);
      return;
    }
    this.output(p, p.outPort, p.outAux);
  }

  /** The gateway emits a frame back into the bridge: counted out of the gateway and in on its port. */
  private fromGateway(p: PacketBuf, port: Port): void {
    const len = p.end - p.start;
    const gc = this.gw!.counters;
    gc.rxPackets++;
    gc.rxBytes += len;
    port.counters.rxPackets++;
    port.counters.rxBytes += len;
    p.inPort = port.index;
  }

  /** A frame the gateway built (a solicitation): received on the gateway port and flooded on its segment. */
  protected override emitFromGateway(p: PacketBuf): void {
    const port = this.gwPort!;
    this.fromGateway(p, port);
    p.segment = port.vlan;
    p.outPort = FLOOD;
    this.flood(p);
  }

  protected override flush(): void {
    const d = this.dirty;
    // A device may hand frames back synchronously (a veth into a busy bridge queues them), so read the
    // count afresh each time.
    for (let i = 0; i < this.dirtyLen; i++) {
      const port = d[i]!;
      d[i] = null;
      this.flushPort(port);
    }
    this.dirtyLen = 0;
  }

  private flushPort(port: Port): void {
    const out = port.out;
    if (out.length === 0) return;
    // Batched AEAD: what the tunnel encapsulated is sealed now, in one call, before it goes out.
    this.tunnels[port.index]?.sealPending();
    if (this.ports[port.index] !== port || port.device === null) {
      for (let i = 0; i < out.length; i++) out.get(i).release();
    } else {
      port.device.transmit(out);
    }
    out.clear();
  }
}

/**
 * False when the Ethernet frame at [s, end) is certainly not a TCP SYN: the test every tunnel packet
 * pays before `clampMss` looks closer. IPv4 is checked down to the SYN flag; IPv6 with TCP right after
 * the fixed header too; IPv6 with an extension header next is left to `clampMss`, which walks them.
 */
function maybeTcpSyn(v: DataView, s: number, end: number): boolean {
  if (end - s < 54) return false;
  const type = v.getUint16(s + 12);
  if (type === ETHERTYPE_IPV4) {
    if (v.getUint8(s + 23) !== 6) return false;
    const flags = s + 14 + ((v.getUint8(s + 14) & 0x0f) << 2) + 13;
    return flags < end && (v.getUint8(flags) & 0x02) !== 0;
  }
  if (type !== ETHERTYPE_IPV6) return false;
  const nh = v.getUint8(s + 20);
  if (nh === 6) return end - s > 67 && (v.getUint8(s + 67) & 0x02) !== 0;
  // Hop-by-hop, routing, fragment, destination options, AH, mobility, HIP, shim6: clampMss walks them.
  return nh === 0 || nh === 43 || nh === 44 || nh === 60 || nh === 51 || nh === 135 || nh === 139 || nh === 140;
}

/**
 * Bytes of IP and transport headers in front of a super-frame's payload (IPv4 or IPv6, extension headers
 * included, then TCP with its options or UDP): what every segment repeats. -1 when the frame does not
 * look like the super-frame its gso type says. `csumStart`, set for every super-frame (NEEDS_CSUM),
 * gives where the transport header starts; it is rechecked against the IP header's own length.
 */
function superFrameHeaders(p: PacketBuf): number {
  const v = p.view;
  const s = p.start;
  const l3 = s + ETH_HEADER_LEN;
  if (p.end - l3 < 20) return -1;
  const type = v.getUint16(s + 12);
  const gso = p.gsoType & ~VNET_GSO_ECN;
  let l4 = p.csumStart;
  if (type === ETHERTYPE_IPV4) {
    if (gso === VNET_GSO_TCPV6) return -1;
    const ihl = (v.getUint8(l3) & 0x0f) << 2;
    if (l4 < 0) l4 = l3 + ihl;
    if (l4 !== l3 + ihl) return -1;
  } else if (type === ETHERTYPE_IPV6) {
    if (gso === VNET_GSO_TCPV4) return -1;
    if (l4 < 0) l4 = l3 + 40;
    if (l4 < l3 + 40) return -1;
  } else return -1;
  if (gso === VNET_GSO_UDP_L4) return l4 + 8 <= p.end ? l4 + 8 - l3 : -1;
  if (gso !== VNET_GSO_TCPV4 && gso !== VNET_GSO_TCPV6) return -1;
  if (l4 + 20 > p.end) return -1;
  const th = (v.getUint8(l4 + 12) >>> 4) << 2;
  return th >= 20 && l4 + th <= p.end ? l4 + th - l3 : -1;
}
