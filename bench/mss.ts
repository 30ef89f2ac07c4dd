/**
 * MSS clamping benchmarks. `clampMss` runs on every packet a tunnel sends, and almost none of them is a
 * SYN, so the figure that matters is what it costs a packet it leaves alone: `mtu.mss.check` runs it
 * over a batch of 64 pre-built 64-byte IPv4 TCP frames without SYN (ACK, PSH-ACK, FIN-ACK, 16 flows), the
 * same buffers every round.
 */
import { clampMss } from '../src/mtu/mss.js';
import { PacketPool, type PacketBuf } from '../src/packet/buf.js';
import { compose } from '../src/wire/stack.js';
import { TCP_ACK, TCP_FIN, TCP_PSH } from '../src/wire/tcp.js';
import type { Bench, BenchEntry } from './harness.js';
import { eth, ip4, tcp, zeros } from '../test/peers/catalogue.js';

const BATCH = 64;
const FLAGS = [TCP_ACK, TCP_PSH | TCP_ACK, TCP_ACK, TCP_FIN | TCP_ACK];

/** A 64-byte frame (60 + FCS on the wire): Ethernet + IPv4 + TCP + 6 bytes. */
function frame64(k: number): Uint8Array {
  const f = compose([eth(0x0800), ip4('10.244.1.10', `10.244.2.${20 + (k & 15)}`, 6), tcp(40000 + k, 443, FLAGS[k & 3]!), zeros(6)]);
  if (f.length !== 60) throw new Error(`bench frame is ${f.length} bytes`);
  return f;
}

function checkBench(): Bench {
  const pool = new PacketPool({ count: BATCH, frameCapacity: 2048 });
  const pkts: PacketBuf[] = [];
  for (let k = 0; k < BATCH; k++) {
    const p = pool.alloc()!;
    p.load(frame64(k));
    p.l3 = p.start + 14;
    pkts.push(p);
  }
  const maxMss = 1410;
  return {
    name: 'mtu.mss.check',
    what: 'clampMss on non-SYN traffic: batches of 64 IPv4 TCP 64-byte frames left untouched (the per-packet cost on every tunnel packet)',
    unit: 'Mpps',
    bytesPerOp: 64,
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < BATCH; j++) {
          const p = pkts[j]!;
          s += clampMss(p, p.l3, maxMss);
        }
      }
      if (s !== 0) throw new Error('mss bench: a non-SYN frame was clamped');
      return { ops: n * BATCH, sink: s + n };
    },
  };
}

export function mssBenches(): BenchEntry[] {
  return [{ name: 'mtu.mss.check', make: checkBench }];
}
