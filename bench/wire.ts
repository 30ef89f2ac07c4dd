/** Foundation figures: header parsing and outer-header emission from pooled buffers, one core. */
import { VxlanTemplate } from '../src/overlay/template.js';
import { PacketBatch, PacketPool } from '../src/packet/buf.js';
import { HeaderParser } from '../src/packet/parse.js';
import { ipv4FromString } from '../src/wire/bytes.js';
import { checksum } from '../src/wire/checksum.js';
import { compose, dissect } from '../src/wire/stack.js';
import type { Bench } from './harness.js';
import { eth, ip4, tcp, udp, zeros } from '../test/peers/catalogue.js';

const BATCH = 64;

/** A 64-byte inner TCP frame inside VXLAN over IPv4: the frame every overlay packet looks like. */
function vxlanTcpFrame(): Uint8Array {
  return compose([
    eth(0x0800), ip4('192.168.1.1', '192.168.1.2', 17), udp(51000, 4789, true), { kind: 'vxlan', repr: { vni: 100 } },
    eth(0x0800), ip4('10.0.1.5', '10.0.2.7', 6), tcp(40000, 80, 0x010), zeros(10),
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

export function wireBenches(): Bench[] {
  const pool = new PacketPool({ count: 4 * BATCH, frameCapacity: 2048 });
  const frame = vxlanTcpFrame();
  const parseBatch = loadedBatch(pool, frame);
  const parser = new HeaderParser();

  const inner = compose([eth(0x0800), ip4('10.0.1.5', '10.0.2.7', 6), tcp(40000, 80, 0x010), zeros(10)]);
  const encapBatch = loadedBatch(pool, inner);
  const tmpl = new VxlanTemplate({ srcMac: 0x0200000000aa, dstMac: 0x0200000000bb, underlay: { family: 4, src: ipv4FromString('192.168.1.1')!, dst: ipv4FromString('192.168.1.2')! }, vni: 100 });
  const innerStart = encapBatch.get(0).start;

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
      what: 'emit the full outer VXLAN/IPv4 header from a template (copy + patch lengths, id, checksum, source port)',
      unit: 'Mpps',
      target: 20,
      run(n) {
        let s = 0;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < BATCH; j++) {
            const p = encapBatch.pkts[j]!;
            p.start = innerStart;
            tmpl.encap(p, (i * 2654435761 + j) >>> 0);
            s += p.start;
          }
        }
        return { ops: n * BATCH, sink: s };
      },
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
