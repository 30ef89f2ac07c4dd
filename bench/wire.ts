/** Foundation figures: header parsing and outer-header emission from pooled buffers, one core. */
import { TunnelTemplate } from '../src/overlay/template.js';
import { PacketBatch, PacketPool } from '../src/packet/buf.js';
import { HeaderParser } from '../src/packet/parse.js';
import { ipv4FromString } from '../src/wire/bytes.js';
import { checksum } from '../src/wire/checksum.js';
import { compose, dissect } from '../src/wire/stack.js';
import type { Bench, BenchEntry } from './harness.js';
import { eth, ip4, tcp, udp, zeros } from '../test/peers/catalogue.js';

const BATCH = 64;

/** A 64-byte inner TCP frame inside VXLAN over IPv4: the frame every overlay packet looks like. */
function vxlanTcpFrame(): Uint8Array {
  return compose([
    eth(0x0800),
    ip4('192.168.1.1', '192.168.1.2', 17),
    udp(51000, 4789, true),
    { kind: 'vxlan', repr: { vni: 100 } },
    eth(0x0800),
    ip4('10.0.1.5', '10.0.2.7', 6),
    tcp(40000, 80, 0x010),
    zeros(10),
  ]);
}

function loadedBatch(pool: PacketPool, frame: Uint8Array): PacketBatch {
  const batch = new PacketBatch(BATCH);
  for (let i = 0; i < BATCH; i++) {
    const p = pool.alloc()!;
    p.load(frame);
    batch.add(p);
  }
  return batch;
}

function buildWireBenches(): Bench[] {
  const pool = new PacketPool({ count: 4 * BATCH, frameCapacity: 2048 });
  const frame = vxlanTcpFrame();
  const parseBatch = loadedBatch(pool, frame);
  const parser = new HeaderParser();

  const inner = compose([eth(0x0800), ip4('10.0.1.5', '10.0.2.7', 6), tcp(40000, 80, 0x010), zeros(10)]);
  const underlay = { family: 4, src: ipv4FromString('192.168.1.1')!, dst: ipv4FromString('192.168.1.2')! } as const;
  const macs = { srcMac: 0x0200000000aa, dstMac: 0x0200000000bb };
  const vxlanBatch = loadedBatch(pool, inner);
  const vxlan = new TunnelTemplate({ kind: 'vxlan', ...macs, underlay, vni: 100 });
  const geneveBatch = loadedBatch(pool, inner);
  // One critical 8-byte option, so the C bit is set too.
  const geneve = new TunnelTemplate({
    kind: 'geneve',
    ...macs,
    underlay,
    vni: 100,
    options: [{ class: 0x0102, type: 0x80, data: new Uint8Array([0, 0, 0, 1, 0, 0, 0, 2]) }],
  });
  const innerStart = vxlanBatch.get(0).start;

  /** Encapsulates the batch `n` times, varying the flow hash and VNI per packet as a real stream does. */
  const encapLoop =
    (t: TunnelTemplate, batch: PacketBatch) =>
    (n: number): { ops: number; sink: number } => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < BATCH; j++) {
          const p = batch.pkts[j]!;
          p.start = innerStart;
          t.encap(p, (i * 2654435761 + j) >>> 0, (i + j) & 0xffffff);
          s += p.start;
        }
      }
      return { ops: n * BATCH, sink: s };
    };

  return [
    {
      name: 'wire.parse.vxlan-tcp',
      what: 'parse Eth+IPv4+UDP+VXLAN+Eth+IPv4+TCP with length checks, batch of 64 pooled buffers',
      unit: 'Mpps',
      target: 20,
      run(n) {
        let s = 0;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < BATCH; j++) {
            const p = parseBatch.pkts[j]!;
            s += parser.parse(p) + p.innerL4;
          }
        }
        return { ops: n * BATCH, sink: s };
      },
    },
    {
      name: 'wire.dissect.vxlan-tcp',
      what: 'reference: the same frame through dissect() (allocates reprs; control path)',
      unit: 'Mpps',
      reference: 'wire.parse.vxlan-tcp',
      run(n) {
        let s = 0;
        const b = parseBatch.pkts[0]!;
        const bytes = b.data;
        for (let i = 0; i < n; i++) s += dissect(bytes, b.start, b.end).layers.length;
        return { ops: n, sink: s };
      },
    },
    {
      name: 'overlay.vxlan.template-emit',
      what: 'emit the full outer VXLAN/IPv4 header from a template (copy + patch lengths, id, checksum, source port, VNI)',
      unit: 'Mpps',
      target: 20,
      run: encapLoop(vxlan, vxlanBatch),
    },
    {
      name: 'overlay.geneve.template-emit',
      what: 'the same for Geneve/IPv4 with one 8-byte option (62-byte outer header)',
      unit: 'Mpps',
      target: 20,
      run: encapLoop(geneve, geneveBatch),
    },
    {
      name: 'wire.checksum.1500',
      what: 'Internet checksum over 1500 bytes',
      unit: 'Gbit/s',
      bytesPerOp: 1500,
      run(n) {
        const b = pool.alloc()!.data;
        let s = 0;
        for (let i = 0; i < n; i++) s += checksum(b, 0, 1500);
        return { ops: n, sink: s };
      },
    },
  ];
}

const WIRE_NAMES = ['wire.parse.vxlan-tcp', 'wire.dissect.vxlan-tcp', 'overlay.vxlan.template-emit', 'overlay.geneve.template-emit', 'wire.checksum.1500'];

/** The wire benchmarks (their shared set-up is small, so each is built with all of it). */
export function wireBenches(): BenchEntry[] {
  return WIRE_NAMES.map((name) => ({ name, make: () => buildWireBenches().find((b) => b.name === name)! }));
}
