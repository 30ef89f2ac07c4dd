import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LINKTYPE_RAW } from '../../src/capture/common.js';
import { PcapWriter } from '../../src/capture/pcap.js';
import { PcapngWriter } from '../../src/capture/pcapng.js';
import { PacketPool } from '../../src/packet/buf.js';
import { Simulator } from '../../src/sim/engine.js';
import { SimHost } from '../../src/sim/host.js';
import { loadReplay } from '../../src/scenario/replay.js';
import { SimLink } from '../../src/sim/link.js';
import { rd16 } from '../../src/wire/bytes.js';

const MAC_A = 0x020000000001;
const MAC_B = 0x020000000002;
/** Some instant in 2026, in ns since the epoch: captures carry wall-clock times. */
const T0 = 1_780_000_000_000_000_000n;

/** An Ethernet frame holding an IP packet of `ipLen` bytes (only what the loader reads is filled in). */
function ethIp(ipLen: number, version: 4 | 6, vlan = false): Uint8Array {
  const l2 = vlan ? 18 : 14;
  const f = new Uint8Array(l2 + ipLen);
  if (vlan) {
    f[12] = 0x81;
    f[13] = 0x00;
    f[14] = 0;
    f[15] = 7;
  }
  const t = vlan ? 16 : 12;
  if (version === 4) {
    f[t] = 0x08;
    f[t + 1] = 0x00;
    f[l2] = 0x45;
    f[l2 + 2] = ipLen >> 8;
    f[l2 + 3] = ipLen & 0xff;
  } else {
    f[t] = 0x86;
    f[t + 1] = 0xdd;
    f[l2] = 0x60;
    f[l2 + 4] = (ipLen - 40) >> 8;
    f[l2 + 5] = (ipLen - 40) & 0xff;
  }
  return f;
}

function arp(): Uint8Array {
  const f = new Uint8Array(42);
  f[12] = 0x08;
  f[13] = 0x06;
  return f;
}

/** (time from T0 in ns, frame) of the test trace: sizes, a VLAN tag, an ARP to skip, a tiny packet, a long one cut by the snaplen. */
const TRACE: Array<[number, Uint8Array]> = [
  [0, ethIp(100, 4)],
  [1_000, arp()],
  [250_000, ethIp(1500, 4)],
  [250_000, ethIp(576, 4, true)],
  [1_000_000, ethIp(28, 4)],
  [3_500_000, ethIp(1300, 6)],
];
const EXPECT_OFFSETS = [0, 250_000, 250_000, 1_000_000, 3_500_000];
const EXPECT_LENGTHS = [100, 1500, 576, 28, 1300];

function pcapBytes(snaplen = 262144): Uint8Array {
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter(
    (c) => {
      chunks.push(c.slice());
    },
    { snaplen },
  );
  w.addInterface('eth0');
  for (const [t, f] of TRACE) w.writePacket(0, T0 + BigInt(t), f);
  return Buffer.concat(chunks);
}

test('replay: loadReplay reads IP lengths and offsets from a pcap, skipping what is not IP; the snaplen does not matter', () => {
  for (const snaplen of [262144, 64]) {
    const t = loadReplay({ bytes: pcapBytes(snaplen) });
    assert.deepEqual([...t.offsetsNs], EXPECT_OFFSETS);
    assert.deepEqual([...t.ipLengths], EXPECT_LENGTHS);
    assert.equal(t.skipped, 1);
  }
});

test('replay: a pcapng file of raw IP (LINKTYPE_RAW), read from a path', () => {
  const chunks: Uint8Array[] = [];
  const w = new PcapngWriter((c) => {
    chunks.push(c.slice());
  });
  const raw = w.addInterface('tun0', LINKTYPE_RAW);
  const eth = w.addInterface('eth0');
  w.writePacket(raw, T0 + 5_000n, ethIp(200, 4).subarray(14));
  w.writePacket(eth, T0 + 7_000n, ethIp(300, 6));
  w.writePacket(raw, T0 + 9_000n, ethIp(1280, 6).subarray(14));
  const dir = mkdtempSync(join(tmpdir(), 'seine-replay-'));
  try {
    const path = join(dir, 'trace.pcapng');
    writeFileSync(path, Buffer.concat(chunks));
    const t = loadReplay({ path });
    assert.deepEqual([...t.offsetsNs], [0, 2_000, 4_000]);
    assert.deepEqual([...t.ipLengths], [200, 300, 1280]);
    assert.equal(t.skipped, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replay: udpFlow sends one datagram per IP packet, at its offset from the start, of its length (clamped up to the minimum)', () => {
  const sim = new Simulator(1);
  const pool = new PacketPool({ count: 256, frameCapacity: 2048 });
  const a = new SimHost(sim, pool, { name: 'a', mac: MAC_A, ipv4: '10.0.0.1/24' });
  const b = new SimHost(sim, pool, { name: 'b', mac: MAC_B, ipv4: '10.0.0.2/24' });
  const link = new SimLink(sim, pool, { latencyNs: 10_000 });
  // Tap what a sends: its departure time and IP length.
  const sent: Array<[number, number]> = [];
  a.setReceiver((batch) => {
    for (let i = 0; i < batch.length; i++) {
      const p = batch.get(i);
      sent.push([sim.now, rd16(p.data, p.start + 16)]);
    }
    link.a.transmit(batch);
  });
  link.a.setReceiver((batch) => a.transmit(batch));
  b.connect(link.b);
  a.addNeighbor('10.0.0.2', MAC_B);
  const sink = b.udpSink(5000);
  const start = 2_000_000;
  const f = a.udpFlow({ dst: '10.0.0.2', dstPort: 5000, replay: { bytes: pcapBytes() }, startNs: start });
  sim.run();
  // 28 bytes of IP cannot carry UDP and the flow header: sent as 44, the smallest IPv4 datagram of a flow.
  const lengths = EXPECT_LENGTHS.map((n) => Math.max(n, 44));
  assert.deepEqual(
    sent,
    EXPECT_OFFSETS.map((o, i) => [start + o, lengths[i]]),
  );
  assert.equal(f.stats.sent, 5);
  assert.equal(f.stats.clamped, 1);
  assert.equal(f.stats.skipped, 1);
  assert.equal(
    f.stats.sentBytes,
    lengths.reduce((x, y) => x + y, 0),
  );
  const rep = sink.report(f.flowId, f.stats.sent);
  assert.equal(rep.received, 5);
  assert.equal(rep.lost, 0);
  assert.equal(pool.available, pool.size);

  // count cuts the replay short; sizes or a rate alongside replay is refused.
  const g = a.udpFlow({ dst: '10.0.0.2', dstPort: 5000, replay: { bytes: pcapBytes() }, count: 2 });
  sim.run();
  assert.equal(g.stats.sent, 2);
  assert.throws(() => a.udpFlow({ dst: '10.0.0.2', dstPort: 5000, replay: { bytes: pcapBytes() }, ratePps: 10 }), /replay/);
  assert.throws(() => a.udpFlow({ dst: '10.0.0.2', dstPort: 5000, ratePps: 10, count: 1 }), /sizes/);
});
