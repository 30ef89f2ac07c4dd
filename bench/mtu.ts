/**
 * MTU benchmarks: fragmentation and reassembly of outer tunnel packets. A pod with a jumbo MTU sends a
 * 9000-byte packet; its VXLAN/IPv4 outer packet (9050 bytes) crosses a 1500-byte underlay in seven
 * fragments and is put back together at the other VTEP. One operation is the whole trip for one datagram:
 * load the frame (a 9 KB copy, standing in for the encapsulation that produced it), fragment, feed every
 * fragment to the reassembler, take the datagram and release it. Reference point: Linux reassembles
 * some 250,000-400,000 such datagrams per second per core.
 */
import { fragmentIpv4 } from '../src/mtu/fragment.js';
import { DONE, Reassembler } from '../src/mtu/reassembly.js';
import { PacketPool, type PacketBuf } from '../src/packet/buf.js';
import { ETHERTYPE_IPV4 } from '../src/wire/ethernet.js';
import { IPPROTO_UDP } from '../src/wire/ipv4.js';
import { compose } from '../src/wire/stack.js';
import { eth, ip4, udp, zeros } from '../test/peers/catalogue.js';
import type { Bench, BenchEntry } from './harness.js';

const ETH = 14;

function fragReasm(): Bench {
  const inner = [
    eth(ETHERTYPE_IPV4, [], 0x0a0000000001, 0x0a0000000002),
    ip4('10.244.1.5', '10.244.2.7', IPPROTO_UDP, { dontFrag: false }),
    udp(40000, 5201),
    zeros(9000 - 28),
  ];
  const frame = compose([
    eth(ETHERTYPE_IPV4),
    ip4('192.168.1.1', '192.168.1.2', IPPROTO_UDP, { dontFrag: false }),
    udp(51000, 4789, true),
    { kind: 'vxlan', repr: { vni: 5000 } },
    ...inner,
  ]);
  const pool = new PacketPool({ count: 64, frameCapacity: 9216 });
  const big = new PacketPool({ count: 4, frameCapacity: 65535 + ETH });
  const reasm = new Reassembler({ pool: big });
  const out: PacketBuf[] = [];
  let now = 0;
  return {
    name: 'mtu.frag-reasm.9000',
    what: `fragment a ${frame.length - ETH}-byte VXLAN/IPv4 packet (9000-byte inner packet) for a 1500 underlay and reassemble it`,
    unit: 'datagrams/s',
    target: 250_000,
    bytesPerOp: 9000,
    run(n) {
      let sink = 0;
      for (let i = 0; i < n; i++) {
        const p = pool.alloc()!;
        p.load(frame);
        const count = fragmentIpv4(p, p.start + ETH, 1500, pool, out);
        let r = 0;
        now += 1000;
        for (let k = 0; k < count; k++) {
          const f = out[k]!;
          r = reasm.add(f, f.start + ETH, now);
        }
        if (r !== DONE) throw new Error(`mtu bench: last fragment gave ${r}`);
        const q = reasm.take()!;
        sink += q.length;
        q.release();
        out.length = 0;
      }
      if (sink !== n * frame.length) throw new Error('mtu bench: a datagram came back the wrong size');
      return { ops: n, sink };
    },
  };
}

export function mtuBenches(): BenchEntry[] {
  return [{ name: 'mtu.frag-reasm.9000', make: fragReasm }];
}
