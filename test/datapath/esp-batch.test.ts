/**
 * The bridge with batched ESP (`EspConfig.batchAead`, the live agent's mode) against the bridge one packet
 * at a time, on identical node pairs: random bursts from a pod leave on the underlay as the same bytes
 * (sealed when the tunnel port's queue goes out), and random batches of what arrives — the peer's ESP
 * frames duplicated, reordered, with bits flipped, truncated, mixed with garbage — give the same
 * deliveries, the same drop counters by reason and the same SA state, with the pool whole afterwards.
 * Natively where the addon is built, and with the per-packet backends inside the batches everywhere.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint } from '../../src/datapath/device.js';
import type { NativeAead } from '../../src/esp/aead-batch.js';
import { ClusterSecret } from '../../src/esp/keys.js';
import type { EspConfig } from '../../src/esp/sadb.js';
import { loadNative, nativeUnavailable } from '../../src/live/native.js';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { eth, ip4, udp } from '../peers/catalogue.js';
import { hex } from '../helpers.js';
import { assertPoolFull, hostMac, introduceEsp, newBridge, tapPair, VirtualClock, type Net, type TapEnd } from './topology.js';

const why = nativeUnavailable();
if (why !== null) console.log(`# SKIPPING the native runs: ${why}`);
const native: NativeAead | null = why === null ? loadNative() : null;

const UNDER_MAC = [0, 0x0e0000000001, 0x0e0000000002];
const POD = [0, hostMac(0x105), hostMac(0x205)];
const SECRET = new ClusterSecret(new Uint8Array(32).map((_, i) => i * 7 + 1));

interface Node {
  br: Bridge;
  pod: Endpoint;
  under: TapEnd;
}

function pair(net: Net, kind: 'vxlan' | 'geneve', underlay: 4 | 6, esp: Omit<EspConfig, 'secret'>): { n1: Node; n2: Node } {
  const ip: [string, string] = underlay === 4 ? ['192.168.0.1', '192.168.0.2'] : ['fd00:ff::1', 'fd00:ff::2'];
  const [u1, u2] = tapPair('u1', 'u2', UNDER_MAC[1]!, UNDER_MAC[2]!, 1500);
  const make = (i: 1 | 2, under: TapEnd): Node => {
    const br = newBridge(net, `node${i}`);
    br.addTunnel('tun0', under, { kind, mode: 'l2', localIp: ip[i - 1]!, esp: { ...esp, secret: SECRET } });
    br.addVtep('tun0', { ip: ip[2 - i]!, mac: UNDER_MAC[3 - i]!, vnis: [5000] });
    br.mapVni('tun0', 5000, 0);
    const pod = new Endpoint(`pod${i}`, net.pool, POD[i]!, 9000);
    br.addPort(`pod${i}`, pod);
    return { br, pod, under };
  };
  const n1 = make(1, u1);
  const n2 = make(2, u2);
  introduceEsp(n1.br, n2.br);
  return { n1, n2 };
}

function pkt(len: number, k: number): Uint8Array {
  const data: Layer = { kind: 'data', bytes: new Uint8Array(len - 28).map((_, i) => (i * 7 + k) & 0xff) };
  return compose([eth(0x0800, [], POD[1]!, POD[2]!), ip4('10.0.0.1', '10.0.0.2', 17, { dontFrag: true }), udp(5000, 6000), data]);
}

/** What a mutation does to a frame of the arriving batch. */
type Mut = { op: 'keep' | 'dup' | 'flip' | 'cut' | 'junk' | 'swap'; at: number };

function mutate(frames: Uint8Array[], muts: Mut[]): Uint8Array[] {
  const out = frames.map((f) => f.slice());
  for (const m of muts) {
    if (out.length === 0) break;
    const i = m.at % out.length;
    const f = out[i]!;
    if (m.op === 'dup') out.splice(i, 0, f.slice());
    else if (m.op === 'flip') f[m.at % f.length]! ^= 1 << (m.at % 8);
    else if (m.op === 'cut') out[i] = f.slice(0, m.at % f.length);
    else if (m.op === 'junk')
      out.splice(
        i,
        0,
        new Uint8Array(20 + (m.at % 200)).map((_, k) => (k * 13 + m.at) & 0xff),
      );
    else if (m.op === 'swap') {
      const j = (m.at >>> 3) % out.length;
      out[i] = out[j]!;
      out[j] = f;
    }
  }
  return out;
}

/** Hands `frames` to `n`'s tunnel port as one batch (as the underlay device does). */
function arrive(net: Net, from: TapEnd, frames: Uint8Array[]): void {
  const b = new PacketBatch(256);
  for (const f of frames) {
    const p = net.pool.alloc()!;
    if (!p.load(f)) {
      p.release();
      continue;
    }
    b.add(p);
  }
  from.transmit(b);
}

function world(
  batchAead: { native: NativeAead | null } | undefined,
  cipher: EspConfig['cipher'],
  kind: 'vxlan' | 'geneve',
  underlay: 4 | 6,
  udpEncap: boolean,
) {
  const net: Net = { pool: new PacketPool({ count: 1024, frameCapacity: 2048 }), clock: new VirtualClock() };
  const { n1, n2 } = pair(net, kind, underlay, { cipher, udpEncap, ...(batchAead !== undefined ? { batchAead } : {}) });
  return { net, n1, n2 };
}

for (const [name, nat] of [
  ['native', native],
  ['fallback', null],
] as const) {
  test(
    `${name}: the bridge with batched ESP sends the same bytes and takes the same verdicts as one packet at a time`,
    name === 'native' && why !== null ? { skip: why } : {},
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom<EspConfig['cipher']>('aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'),
          fc.constantFrom<'vxlan' | 'geneve'>('vxlan', 'geneve'),
          fc.constantFrom<4 | 6>(4, 6),
          fc.boolean(),
          fc.array(fc.array(fc.integer({ min: 28, max: 1300 }), { minLength: 1, maxLength: 80 }), { minLength: 2, maxLength: 3 }),
          fc.array(fc.record({ op: fc.constantFrom<Mut['op']>('keep', 'dup', 'flip', 'cut', 'junk', 'swap'), at: fc.nat() }), { maxLength: 12 }),
          (cipher, kind, underlay, udpEncap, bursts, muts) => {
            const a = world(undefined, cipher, kind, underlay, udpEncap);
            const b = world({ native: nat }, cipher, kind, underlay, udpEncap);
            // The first burst crosses to node2 as it is sent; the others are held back (node2's underlay
            // receives nothing meanwhile) and arrive later in one mutated batch, first sight of them.
            let k = 0;
            const rx = (u: TapEnd): { rx: unknown } => u as unknown as { rx: unknown };
            const hold = [rx(a.n2.under).rx, rx(b.n2.under).rx];
            bursts.forEach((burst, j) => {
              if (j === 1) rx(a.n2.under).rx = rx(b.n2.under).rx = null;
              const frames = burst.map((len) => pkt(len, k++));
              a.n1.pod.send(frames);
              b.n1.pod.send(frames);
            });
            rx(a.n2.under).rx = hold[0];
            rx(b.n2.under).rx = hold[1];
            assert.equal(b.n1.under.sent.length, a.n1.under.sent.length);
            a.n1.under.sent.forEach((f, i) => assert.equal(hex(b.n1.under.sent[i]!), hex(f), `outer frame ${i}`));
            // What arrived at node2 in order; then a mutated batch of the same frames again.
            const wire = a.n1.under.sent.splice(0);
            b.n1.under.sent.length = 0;
            const again = mutate(wire, muts);
            arrive(a.net, a.n1.under, again);
            arrive(b.net, b.n1.under, again);
            const got = a.n2.pod.take().map((f) => hex(f));
            assert.ok(got.length >= bursts[0]!.length, `the first burst arrived (${got.length} of ${bursts[0]!.length})`);
            assert.deepEqual(
              b.n2.pod.take().map((f) => hex(f)),
              got,
              'delivered',
            );
            const pa = a.n2.br.port('tun0');
            const pb = b.n2.br.port('tun0');
            assert.deepEqual([...pb.counters.drops], [...pa.counters.drops], 'drops by reason');
            const sa = a.n2.br.tunnel('tun0').sadb!.peers[0]!.inCur!;
            const sb = b.n2.br.tunnel('tun0').sadb!.peers[0]!.inCur!;
            assert.deepEqual([sb.topHi, sb.topLo, sb.packets, sb.bytes, [...sb.drops]], [sa.topHi, sa.topLo, sa.packets, sa.bytes, [...sa.drops]], 'SA state');
            assertPoolFull(a.net.pool);
            assertPoolFull(b.net.pool);
          },
        ),
        { numRuns: 40 },
      );
    },
  );
}
