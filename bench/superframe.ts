/**
 * Super-frames on the datapath (issue 13): node A's pod hands over 64 KiB TCP super-frames (as a TAP with
 * TSO does, 8 per read), the bridge segments each for a VXLAN tunnel to node B's path (1450-byte MTU)
 * and encapsulates the segments; node B decapsulates them, switches them to its pod, whose device
 * coalesces them back into super-frames (as the agent's TAP with TSO does). One core, in process, no
 * system calls: what the TypeScript costs per byte. The rate is Gbit/s of TCP payload.
 *
 * `datapath.superframe.alloc` runs the same path once, after a warm-up, under V8's GC profiler, and
 * reports the bytes the heap grew by per segment (what every garbage collection freed plus what was
 * left): the live path is meant to allocate nothing per packet.
 */
import { GCProfiler } from 'node:v8';
import { Bridge } from '../src/datapath/bridge.js';
import type { Device, DeviceOffloads, Receiver } from '../src/datapath/device.js';
import { vethPair } from '../src/datapath/device.js';
import { Coalescer, GsoStats } from '../src/packet/gso.js';
import { PacketBatch, PacketPool } from '../src/packet/buf.js';
import { VNET_GSO_TCPV4 } from '../src/packet/vnet.js';
import { compose } from '../src/wire/stack.js';
import type { Bench, BenchEntry, OnceBench, OnceFigure } from './harness.js';
import { eth, ip4, tcp, zeros } from '../test/peers/catalogue.js';

const POD_A = 0x020000000001;
const POD_B = 0x020000000002;
const UNDER_A = { ip: '192.168.1.1', mac: 0x0a0000000001 };
const UNDER_B = { ip: '192.168.1.2', mac: 0x0a0000000002 };
/** Payload of one super-frame: 45 segments of the 1410-byte MSS VXLAN leaves over a 1500-byte underlay. */
const PAYLOAD = 45 * 1410;
const PER_READ = 8;
const TSO: DeviceOffloads = Object.freeze({ checksum: true, tso: true, uso: false });

/** Node A's pod: sends nothing by itself (the bench feeds its port). */
class Quiet implements Device {
  readonly linkUp = true;
  readonly offloads = TSO;
  constructor(
    readonly name: string,
    readonly mac: number,
    readonly mtu = 1450,
  ) {}
  transmit(batch: PacketBatch): void {
    for (let i = 0; i < batch.length; i++) batch.get(i).release();
    batch.clear();
  }
  setReceiver(_rx: Receiver | null): void {}
  setLinkListener(): void {}
}

/** Node B's pod: a TAP with TSO as the agent drives it — segments coalesced into super-frames, then released. */
class CoalescingPod implements Device {
  readonly linkUp = true;
  readonly offloads = TSO;
  readonly stats = new GsoStats();
  segments = 0;
  /** TCP payload bytes delivered (super-frames split by a batch boundary count their headers once each). */
  payload = 0;
  private readonly c: Coalescer;
  private readonly out = new PacketBatch(64 + 8);
  constructor(
    pool: PacketPool,
    readonly name = 'podB',
    readonly mac = POD_B,
    readonly mtu = 1450,
  ) {
    this.c = new Coalescer(pool, this.stats);
  }
  transmit(batch: PacketBatch): void {
    this.segments += batch.length;
    for (let i = 0; i < batch.length; i++) {
      this.c.push(batch.get(i), this.out);
      if (this.out.length >= 64) this.release();
    }
    this.c.flush(this.out);
    this.release();
    batch.clear();
  }
  private release(): void {
    for (let i = 0; i < this.out.length; i++) {
      const p = this.out.get(i);
      this.payload += p.end - p.start - 54; // TCP payload: Ethernet, IPv4 and TCP headers off
      p.release();
    }
    this.out.clear();
  }
  setReceiver(_rx: Receiver | null): void {}
  setLinkListener(): void {}
}

interface Rig {
  a: Bridge;
  podB: CoalescingPod;
  feed(): number;
}

function rig(): Rig {
  let t = 0;
  const clock = { now: () => (t += 1000) };
  const pool = new PacketPool({ count: 1024, frameCapacity: 65536 + 128 });
  const [ua, ub] = vethPair('underlay-a', 'underlay-b', { macA: UNDER_A.mac, macB: UNDER_B.mac, mtu: 1500 });
  const node = (name: string, self: typeof UNDER_A, peer: typeof UNDER_A, under: Device, pod: Device, remotePod: number): Bridge => {
    const br = new Bridge({ name, pool, clock });
    br.addPort('pod', pod);
    br.addTunnel('tun0', under, { kind: 'vxlan', mode: 'l2', localIp: self.ip });
    br.addVtep('tun0', { ip: peer.ip, mac: peer.mac, vnis: [5000] });
    br.mapVni('tun0', 5000, 0);
    br.addStaticMac(0, remotePod, 'tun0', peer.ip);
    br.addStaticMac(0, name === 'a' ? POD_A : POD_B, 'pod');
    return br;
  };
  const podB = new CoalescingPod(pool);
  const a = node('a', UNDER_A, UNDER_B, ua, new Quiet('podA', POD_A), POD_B);
  node('b', UNDER_B, UNDER_A, ub, podB, POD_A);
  // The super-frame as the pod's kernel hands it over: IP and TCP headers for the whole, gso size = MSS.
  const frame = compose([eth(0x0800, [], POD_A, POD_B), ip4('10.0.0.1', '10.0.0.2', 6), tcp(40000, 5201, 0x10), zeros(PAYLOAD)]);
  const template = pool.alloc()!;
  template.load(frame);
  const batch = new PacketBatch(PER_READ);
  const port = a.port('pod');
  const bsize = pool.bufferSize;
  return {
    a,
    podB,
    /** One TAP read's worth: PER_READ super-frames copied in (as the read would) and handed to the bridge. */
    feed(): number {
      batch.clear();
      for (let i = 0; i < PER_READ; i++) {
        const p = pool.alloc()!;
        pool.slab.copyWithin(p.slot * bsize + template.start, template.slot * bsize + template.start, template.slot * bsize + template.end);
        p.end = p.start + frame.length;
        p.gsoType = VNET_GSO_TCPV4;
        p.gsoSize = 1410;
        p.csumStart = p.start + 34;
        p.csumOffset = 16;
        p.hdrLen = 54;
        batch.add(p);
      }
      a.receive(port, batch);
      return PER_READ;
    },
  };
}

function throughput(name: string): Bench {
  const r = rig();
  return {
    name,
    unit: 'Gbit/s',
    bytesPerOp: PAYLOAD,
    what: `64 KiB TCP super-frames (${PAYLOAD} payload bytes, ${PER_READ} per read): segmented + VXLAN-encapsulated on node A, decapsulated + coalesced for the pod on node B`,
    run(n) {
      let ops = 0;
      const before = r.podB.payload;
      for (let i = 0; i < n; i++) ops += r.feed();
      const want = ops * PAYLOAD;
      if (r.podB.payload - before !== want) throw new Error(`${name}: ${want - (r.podB.payload - before)} bytes lost`);
      return { ops, sink: r.podB.segments };
    },
  };
}

function allocation(name: string): OnceBench {
  return {
    name,
    once: true,
    run(): OnceFigure[] {
      const r = rig();
      for (let i = 0; i < 2000; i++) r.feed();
      const segBefore = r.podB.segments;
      const prof = new GCProfiler();
      prof.start();
      const start = process.memoryUsage().heapUsed;
      for (let i = 0; i < 5000; i++) r.feed();
      const end = process.memoryUsage().heapUsed;
      const stats = prof.stop();
      // Heap growth: what each collection found in use before it ran, less what the previous one left.
      let grown = 0;
      let last = start;
      let gcs = 0;
      for (const s of stats.statistics) {
        const before = s.beforeGC.heapStatistics.usedHeapSize;
        const after = s.afterGC.heapStatistics.usedHeapSize;
        grown += Math.max(0, before - last);
        last = after;
        gcs++;
      }
      grown += Math.max(0, end - last);
      const segments = r.podB.segments - segBefore;
      return [
        {
          name: `${name}.bytes-per-segment`,
          what: `heap growth per segment over ${segments} segments (${gcs} GCs): the live path allocates nothing per packet`,
          value: Math.round((grown / segments) * 100) / 100,
          unit: 'B',
          target: 1,
          atMost: true,
        },
      ];
    },
  };
}

export function superframeBenches(): BenchEntry[] {
  return [
    { name: 'datapath.superframe.vxlan', make: () => throughput('datapath.superframe.vxlan') },
    {
      name: 'datapath.superframe.alloc',
      figures: ['datapath.superframe.alloc.bytes-per-segment'],
      make: () => allocation('datapath.superframe.alloc'),
    },
  ];
}
