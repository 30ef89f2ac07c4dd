import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { PcapWriter } from '../../src/capture/pcap.js';
import { buildFragNeeded, buildPacketTooBig } from '../../src/mtu/icmp.js';
import { Bridge } from '../../src/datapath/bridge.js';
import type { Device } from '../../src/datapath/device.js';
import { PacketBatch, PacketPool, type PacketBuf } from '../../src/packet/buf.js';
import { Simulator } from '../../src/sim/engine.js';
import { SimHost } from '../../src/sim/host.js';
import { SimLink, type LinkConfig, type SimLinkEnd } from '../../src/sim/link.js';
import { assertPoolFull, direct, hosts, MAC_A, MAC_B, type Rig } from './rig.js';
import { tcpPayloadByte, type TcpFlowStats, type TcpListenerStats } from '../../src/sim/tcp.js';
import { rd16 } from '../../src/wire/bytes.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/wire/ethernet.js';
import { dissect } from '../../src/wire/stack.js';
import { TCP_ACK, TCP_FIN, TCP_SYN } from '../../src/wire/tcp.js';

const MAC_BOX = 0x020000000099;
const MBIT = 1e6;
const MS = 1e6;

/** The receiver got exactly the bytes, each once, in order, unaltered. */
function assertDelivered(l: TcpListenerStats, bytes: number): void {
  assert.equal(l.bytesReceived, bytes);
  assert.equal(l.corrupt, 0);
  assert.equal(l.finished, 1);
}

test('tcp: payload pattern differs between neighbouring offsets', () => {
  for (let i = 0; i < 5000; i++) assert.notEqual(tcpPayloadByte(i), tcpPayloadByte(i + 1));
});

test('tcp: 1 MB over a clean 100 Mbit/s link: handshake, MSS 1460, all bytes in order, FIN, goodput ≥ 80 % of the link', () => {
  const r = direct({ latencyNs: 1 * MS, bandwidthBps: 100 * MBIT });
  const lst = r.b.tcpListen(80);
  const bytes = 1_000_000;
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes });
  r.sim.run(5e9);
  const s = f.stats;
  assert.equal(s.mss, 1460);
  assert.ok(s.completed);
  assert.equal(s.bytesAcked, bytes);
  assert.equal(s.state, 'closed');
  assert.equal(s.retransmits, 0);
  assert.equal(s.timeouts, 0);
  assertDelivered(lst.stats, bytes);
  assert.equal(lst.stats.outOfOrder, 0);
  assert.equal(lst.connections[0]!.state, 'closed');
  // The handshake takes one RTT: two crossings of 1 ms plus the serialisation of two small frames.
  assert.ok(s.establishedNs - s.startNs >= 2 * MS && s.establishedNs - s.startNs < 2.1 * MS, `handshake ${s.establishedNs - s.startNs} ns`);
  assert.ok(s.goodputBps >= 0.8 * 100 * MBIT, `goodput ${s.goodputBps}`);
  assert.ok(s.goodputBps < 100 * MBIT);
  assert.ok(s.rttSamplesMs.length > 0 && s.rttSamplesMs.every((x) => x >= 2));
  // 1460-byte segments: ceil(1e6 / 1460) = 685 data segments, FIN on the last, plus the SYN.
  assert.equal(s.segmentsSent, 686);
  assertPoolFull(r.pool);
});

test('tcp: slow start doubles the window every round trip from 10 segments (RFC 6928)', () => {
  const r = direct({ latencyNs: 10 * MS, bandwidthBps: 1e9 });
  r.b.tcpListen(80);
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 200_000, traceCwnd: true });
  r.sim.run(1e9);
  const tr = f.stats.cwndTrace;
  assert.equal(tr[1], 10 * 1460);
  // No loss: cwnd grows by one MSS per ACK while it limits sending, then (the data running out) stays.
  const steps: number[] = [];
  for (let i = 3; i < tr.length; i += 2) steps.push(tr[i]! - tr[i - 2]!);
  const growing = steps.indexOf(0);
  assert.ok(growing > 20, `grew for ${growing} ACKs`);
  assert.ok(steps.slice(0, growing).every((d) => d === 1460));
  assert.ok(steps.slice(growing).every((d) => d === 0));
  // One ACK per segment: 137 data segments after the SYN-ACK.
  assert.equal(steps.length, 137);
  // Doubling per round trip: by the ACKs of the first 10 segments (one RTT, 20 ms) cwnd is 20 segments.
  const at = (t: number): number => {
    let c = 0;
    for (let i = 0; i < tr.length; i += 2) if (tr[i]! <= t) c = tr[i + 1]!;
    return c;
  };
  const est = f.stats.establishedNs;
  assert.equal(at(est + 21 * MS), 20 * 1460);
  assert.equal(at(est + 42 * MS), 40 * 1460);
  assert.ok(f.stats.completed);
  assert.equal(f.stats.ssthresh, Infinity);
});

test('tcp: MSS is the smaller of the two ends (peer MTU 1400 → 1360), and 1440 over IPv6', () => {
  const r = direct({ latencyNs: 100_000, bandwidthBps: 1e9 }, 1, { b: { mtu: 1400 } });
  const lst = r.b.tcpListen(80);
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 100_000 });
  // The other direction: b's own MTU bounds its MSS though a advertises 1460.
  r.a.tcpListen(81);
  const g = r.b.tcpSend({ dst: '10.0.0.1', dstPort: 81, bytes: 50_000 });
  const h = r.a.tcpSend({ dst: 'fd00::2', dstPort: 80, bytes: 100_000 });
  r.sim.run(2e9);
  assert.equal(f.stats.mss, 1360);
  assert.equal(g.stats.mss, 1360);
  assert.equal(h.stats.mss, 1340);
  for (const x of [f, g, h]) {
    assert.ok(x.stats.completed);
    assert.equal(x.stats.state, 'closed');
  }
  assert.equal(lst.stats.bytesReceived, 200_000);
  assert.equal(lst.stats.connections, 2);
  assert.equal(lst.stats.corrupt, 0);

  const r6 = direct({ latencyNs: 100_000, bandwidthBps: 1e9 });
  const l6 = r6.b.tcpListen(80);
  const v6 = r6.a.tcpSend({ dst: 'fd00::2', dstPort: 80, bytes: 100_000 });
  r6.sim.run(2e9);
  assert.equal(v6.stats.mss, 1440);
  assertDelivered(l6.stats, 100_000);
  assertPoolFull(r6.pool);
});

test('tcp: a SYN to a closed port is answered with RST and the flow aborts', () => {
  const r = direct({ latencyNs: 1 * MS });
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 9999, bytes: 1000 });
  r.sim.run(1e9);
  assert.equal(f.stats.state, 'aborted');
  assert.equal(f.stats.abortReason, 'reset');
  assert.equal(r.b.counters.tcpRstSent, 1);
  assert.equal(r.a.counters.tcpRstSent, 0);
  assert.equal(f.stats.timeouts, 0);
  assertPoolFull(r.pool);
});

function lossRun(loss: number, seed: number): { s: TcpFlowStats; l: TcpListenerStats } {
  const r = direct({ latencyNs: 5 * MS, bandwidthBps: 100 * MBIT, loss }, seed);
  const lst = r.b.tcpListen(80);
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 2_000_000 });
  r.sim.run(60e9);
  assertPoolFull(r.pool);
  return { s: f.stats, l: lst.stats };
}

test('tcp: 1 % random loss: completes with fast retransmits; goodput below the lossless run', () => {
  const clean = lossRun(0, 7);
  const lossy = lossRun(0.01, 7);
  assert.ok(clean.s.completed && lossy.s.completed);
  assertDelivered(lossy.l, 2_000_000);
  assert.ok(lossy.s.retransmits > 0);
  assert.ok(lossy.s.fastRetransmits > 0);
  assert.ok(lossy.l.outOfOrder > 0);
  assert.ok(lossy.s.ssthresh < Infinity);
  assert.equal(clean.s.retransmits, 0);
  assert.ok(lossy.s.goodputBps < clean.s.goodputBps, `${lossy.s.goodputBps} < ${clean.s.goodputBps}`);
});

test('tcp: a 2 s outage mid-transfer: RTO backoff, then completion after the link returns', () => {
  const r = direct({ latencyNs: 1 * MS, bandwidthBps: 10 * MBIT });
  const lst = r.b.tcpListen(80);
  // 2 MB at 10 Mbit/s takes about 1.7 s: the outage from 0.5 s to 2.5 s cuts it in the middle.
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 2_000_000 });
  r.link.fault(0.5e9, 2.5e9);
  r.sim.run(30e9);
  const s = f.stats;
  assert.ok(s.timeouts >= 3, `timeouts ${s.timeouts}`);
  assert.ok(s.completed);
  assert.ok(s.doneNs > 2.5e9);
  // Backoff doubled the RTO on each expiry; the samples after recovery bring it back to the floor.
  assert.ok(s.rtoMs >= 200);
  assertDelivered(lst.stats, 2_000_000);
  assertPoolFull(r.pool);
});

test('tcp: a lost SYN is retransmitted after the initial RTO of 1 s', () => {
  const r = direct({ latencyNs: 1 * MS });
  r.b.tcpListen(80);
  r.link.fault(0, 0.5e9);
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 10_000 });
  r.sim.run(10e9);
  assert.equal(f.stats.timeouts, 1);
  assert.ok(f.stats.establishedNs >= 1e9 && f.stats.establishedNs < 1.01e9);
  assert.ok(f.stats.completed);
});

/**
 * Host a — link — box — link — host b, where the box forwards frames between its two links but lets no
 * IP packet over `mtu` bytes with DF (or any IPv6 one) through: it answers with frag-needed / Packet Too
 * Big, or, as a black hole, says nothing.
 */
function throughBox(mtu: number, blackHole: boolean, seed = 1): Rig & { link: SimLink; dropped: () => number } {
  const sim = new Simulator(seed);
  const pool = new PacketPool({ count: 4096, frameCapacity: 2048 });
  const a = new SimHost(sim, pool, { name: 'a', mac: MAC_A, ipv4: '10.0.0.1/24', ipv6: 'fd00::1/64' });
  const b = new SimHost(sim, pool, { name: 'b', mac: MAC_B, ipv4: '10.0.0.2/24', ipv6: 'fd00::2/64' });
  const cfg: LinkConfig = { latencyNs: 1 * MS, bandwidthBps: 100 * MBIT };
  const la = new SimLink(sim, pool, cfg);
  const lb = new SimLink(sim, pool, cfg);
  a.connect(la.a);
  b.connect(lb.b);
  a.addNeighbor('10.0.0.2', MAC_B);
  b.addNeighbor('10.0.0.1', MAC_A);
  a.addNeighbor('fd00::2', MAC_B);
  b.addNeighbor('fd00::1', MAC_A);
  let dropped = 0;
  const boxV6 = new Uint8Array(16);
  boxV6[0] = 0xfd;
  boxV6[15] = 0x99;
  const forward =
    (from: SimLinkEnd, to: SimLinkEnd) =>
    (batch: PacketBatch): void => {
      for (let i = 0; i < batch.length; i++) {
        const p: PacketBuf = batch.get(i);
        const l3 = p.start + 14;
        const type = rd16(p.data, p.start + 12);
        const ipLen = type === ETHERTYPE_IPV4 ? rd16(p.data, l3 + 2) : type === ETHERTYPE_IPV6 ? 40 + rd16(p.data, l3 + 4) : 0;
        const df = type === ETHERTYPE_IPV6 || (type === ETHERTYPE_IPV4 && (p.data[l3 + 6]! & 0x40) !== 0);
        const out = new PacketBatch(1);
        if (ipLen > mtu && df) {
          dropped++;
          if (!blackHole) {
            const e = pool.alloc()!;
            const n =
              type === ETHERTYPE_IPV4
                ? buildFragNeeded(p, l3, mtu, { mac: MAC_BOX, ipv4: 0x0a0000fe }, e)
                : buildPacketTooBig(p, l3, mtu, { mac: MAC_BOX, ipv6: boxV6 }, e);
            assert.ok(n > 0);
            out.add(e);
            from.transmit(out);
          }
          p.release();
          continue;
        }
        out.add(p);
        to.transmit(out);
      }
      batch.clear();
    };
  la.b.setReceiver(forward(la.b, lb.a));
  lb.a.setReceiver(forward(lb.a, la.b));
  return { sim, pool, a, b, link: la, dropped: () => dropped };
}

test('tcp: PMTUD: frag-needed for 1400 lowers the MSS to 1360 and the transfer completes', () => {
  const r = throughBox(1400, false);
  const lst = r.b.tcpListen(80);
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 500_000 });
  r.sim.run(10e9);
  const s = f.stats;
  assert.equal(s.mss, 1360);
  assert.equal(s.pmtuReductions, 1);
  assert.equal(r.a.pathMtu('10.0.0.2'), 1400);
  assert.ok(r.dropped() > 0);
  assert.ok(s.completed);
  // Resent at once on the ICMP, not after a timer.
  assert.equal(s.timeouts, 0);
  assert.ok(s.retransmits > 0);
  assert.ok(s.doneNs < 0.5e9);
  assertDelivered(lst.stats, 500_000);
  assertPoolFull(r.pool);
});

test('tcp: PMTUD over IPv6: Packet Too Big for 1400 lowers the MSS to 1340', () => {
  const r = throughBox(1400, false);
  const lst = r.b.tcpListen(80);
  const f = r.a.tcpSend({ dst: 'fd00::2', dstPort: 80, bytes: 300_000 });
  r.sim.run(10e9);
  assert.equal(f.stats.mss, 1340);
  assert.ok(f.stats.completed);
  assert.equal(f.stats.timeouts, 0);
  assertDelivered(lst.stats, 300_000);
});

test('tcp: a PMTU black hole (drop without ICMP): handshake works, data stalls in RTO backoff, then the flow gives up', () => {
  const r = throughBox(1400, true);
  const lst = r.b.tcpListen(80);
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 500_000, maxRetries: 5 });
  r.sim.run(5e9);
  const s = f.stats;
  assert.equal(s.state, 'established');
  assert.ok(!Number.isNaN(s.establishedNs));
  assert.ok(!s.completed);
  assert.equal(s.mss, 1460);
  const t5 = s.timeouts;
  assert.ok(t5 >= 4, `timeouts ${t5}`);
  assert.equal(lst.stats.bytesReceived, 0);
  r.sim.run(120e9);
  assert.ok(s.timeouts > t5);
  assert.equal(s.state, 'aborted');
  assert.equal(s.abortReason, 'timeout');
  assert.equal(s.timeouts, 6);
  assert.ok(!s.completed);
});

test('tcp: same seed, same run: identical stats', () => {
  const run = (): object => {
    const r = direct({ latencyNs: 2 * MS, bandwidthBps: 50 * MBIT, loss: 0.02, jitterNs: 100_000 }, 42);
    const lst = r.b.tcpListen(80);
    const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes: 300_000, traceCwnd: true });
    r.sim.run(60e9);
    return { flow: { ...f.stats, goodput: f.stats.goodputBps }, lst: { ...lst.stats }, events: r.sim.events };
  };
  const x = run();
  assert.deepEqual(run(), x);
  assert.ok((x as { flow: TcpFlowStats }).flow.retransmits > 0);
});

test('tcp: property: with 0-5 % loss every byte arrives exactly once, in order, and the books agree', () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 0.05, noNaN: true }),
      fc.integer({ min: 0, max: 200_000 }),
      fc.integer({ min: 0, max: 20 * MS }),
      fc.integer({ min: 1, max: 1000 }),
      fc.boolean(),
      (loss, bytes, latencyNs, seed, v6) => {
        const r = direct({ latencyNs, bandwidthBps: 50 * MBIT, loss }, seed);
        const lst = r.b.tcpListen(80);
        const f = r.a.tcpSend({ dst: v6 ? 'fd00::2' : '10.0.0.2', dstPort: 80, bytes });
        r.sim.run(300e9);
        const s = f.stats;
        if (!s.completed) {
          // Only an abort after many expiries in a row may stop it; nothing wrong was delivered meanwhile.
          assert.equal(s.state, 'aborted');
          assert.ok(lst.stats.bytesReceived <= bytes);
        } else {
          assert.equal(lst.stats.bytesReceived, bytes);
          assert.equal(s.bytesAcked, bytes);
        }
        assert.equal(lst.stats.corrupt, 0);
        assert.ok(s.retransmits >= s.fastRetransmits);
        if (loss === 0) assert.equal(s.retransmits, 0);
        assertPoolFull(r.pool);
      },
    ),
    { numRuns: 20, seed: 0x7c9 },
  );
});

/** Frames of a small clean transfer as seen on the wire (both directions), with their times. */
function captureTransfer(bytes: number, dst: string): { frames: Uint8Array[]; times: number[]; flow: TcpFlowStats } {
  const r = direct({ latencyNs: 1 * MS, bandwidthBps: 100 * MBIT });
  const frames: Uint8Array[] = [];
  const times: number[] = [];
  for (const [h, end] of [
    [r.a, r.link.a],
    [r.b, r.link.b],
  ] as const) {
    h.setReceiver((batch) => {
      for (let i = 0; i < batch.length; i++) {
        frames.push(batch.get(i).bytes().slice());
        times.push(r.sim.now);
      }
      end.transmit(batch);
    });
  }
  r.b.tcpListen(8080);
  const f = r.a.tcpSend({ dst, dstPort: 8080, srcPort: 40000, bytes });
  r.sim.run(5e9);
  assert.ok(f.stats.completed);
  return { frames, times, flow: f.stats };
}

test('tcp: every segment dissects with good checksums; MSS options, SYN/FIN flags and sequence numbers line up', () => {
  for (const dst of ['10.0.0.2', 'fd00::2']) {
    const bytes = 20_000;
    const { frames } = captureTransfer(bytes, dst);
    const segs = frames.map((f) => {
      const d = dissect(f);
      assert.equal(d.drop, null);
      for (const l of d.layers) assert.notEqual(l.checksumOk, false, `${l.kind} checksum`);
      const t = d.layers.find((l) => l.kind === 'tcp');
      assert.ok(t !== undefined && t.kind === 'tcp' && t.checksumOk === true);
      const data = d.layers.find((l) => l.kind === 'data');
      return { r: t.repr, len: data === undefined ? 0 : data.len };
    });
    const mss = dst.includes(':') ? 1440 : 1460;
    const syn = segs[0]!.r;
    const synAck = segs[1]!.r;
    assert.equal(syn.flags, TCP_SYN);
    assert.deepEqual(syn.options, [{ kind: 'mss', value: mss }]);
    assert.equal(synAck.flags, TCP_SYN | TCP_ACK);
    assert.deepEqual(synAck.options, [{ kind: 'mss', value: mss }]);
    assert.equal(synAck.ack, (syn.seq + 1) >>> 0);
    // Data from a to b: contiguous, starting at ISS + 1; FIN on the last one; nothing resent.
    const data = segs.filter((s) => s.r.srcPort === 40000 && s.len > 0);
    let next = (syn.seq + 1) >>> 0;
    for (const s of data) {
      assert.equal(s.r.seq, next);
      next = (next + s.len) >>> 0;
    }
    assert.equal(
      data.reduce((a, s) => a + s.len, 0),
      bytes,
    );
    assert.ok((data.at(-1)!.r.flags & TCP_FIN) !== 0);
    // b's FIN acknowledges a's, and a acknowledges b's.
    const finB = segs.find((s) => s.r.srcPort === 8080 && (s.r.flags & TCP_FIN) !== 0)!;
    assert.equal(finB.r.ack, (next + 1) >>> 0);
    const last = segs.at(-1)!.r;
    assert.equal(last.srcPort, 40000);
    assert.equal(last.flags, TCP_ACK);
    assert.equal(last.ack, (finB.r.seq + 1) >>> 0);
  }
});

test('tcp: tshark reads the capture without checksum errors, malformed frames or retransmissions (skipped without tshark)', (t) => {
  const which = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  if (which.error !== undefined || which.status !== 0) {
    t.skip('tshark is not installed: SKIPPING the Wireshark check');
    return;
  }
  const { frames, times } = captureTransfer(50_000, '10.0.0.2');
  const chunks: Uint8Array[] = [];
  const w = new PcapWriter((c) => {
    chunks.push(c.slice());
  });
  w.addInterface('sim');
  frames.forEach((f, i) => w.writePacket(0, BigInt(times[i]!), f));
  const dir = mkdtempSync(join(tmpdir(), 'seine-tcp-'));
  const file = join(dir, 'tcp.pcap');
  writeFileSync(file, Buffer.concat(chunks));
  try {
    const run = (filter: string): string[] => {
      const r = spawnSync(
        'tshark',
        ['-n', '-r', file, '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-Y', filter, '-T', 'fields', '-e', 'frame.number'],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter((x) => x !== '');
    };
    assert.equal(run('tcp').length, frames.length);
    assert.deepEqual(run('tcp.checksum.status == 2 || ip.checksum.status == 2 || _ws.malformed || _ws.expert.severity >= "error"'), []);
    assert.deepEqual(run('tcp.analysis.retransmission || tcp.analysis.out_of_order || tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment'), []);
    assert.equal(run('tcp.options.mss_val == 1460').length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Host a — link — box — link — host b, where the box drops the `nth` (from 1) data-carrying segment a
 * sends, its first transmission only; the links have `latencyNs` and no bandwidth limit.
 */
function droppingOne(latencyNs: number, nth: number): Rig & { dropped: () => number } {
  const sim = new Simulator(1);
  const pool = new PacketPool({ count: 4096, frameCapacity: 2048 });
  const [a, b] = hosts(sim, pool);
  const la = new SimLink(sim, pool, { latencyNs });
  const lb = new SimLink(sim, pool, { latencyNs });
  a.connect(la.a);
  b.connect(lb.b);
  a.addNeighbor('10.0.0.2', MAC_B);
  b.addNeighbor('10.0.0.1', MAC_A);
  let seen = 0,
    dropped = 0;
  const out = new PacketBatch(1);
  const forward =
    (to: SimLinkEnd, fromA: boolean) =>
    (batch: PacketBatch): void => {
      for (let i = 0; i < batch.length; i++) {
        const p = batch.get(i);
        const d = p.data,
          ip = p.start + 14;
        const payload = rd16(d, ip + 2) - (d[ip]! & 0x0f) * 4 - (d[ip + (d[ip]! & 0x0f) * 4 + 12]! >> 4) * 4;
        if (fromA && rd16(d, p.start + 12) === ETHERTYPE_IPV4 && d[ip + 9] === 6 && payload > 0 && ++seen === nth) {
          dropped++;
          p.release();
          continue;
        }
        out.clear();
        out.add(p);
        to.transmit(out);
      }
      batch.clear();
    };
  la.b.setReceiver(forward(lb.a, true));
  lb.a.setReceiver(forward(la.b, false));
  return { sim, pool, a, b, dropped: () => dropped };
}

test("tcp: the sender's FIN arrives before a lost segment: once the retransmission fills the gap the receiver sends its FIN and both close", () => {
  const r = droppingOne(1 * MS, 9);
  const lst = r.b.tcpListen(80);
  const bytes = 10 * 1460;
  const f = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes });
  r.sim.run(10e9);
  assert.equal(r.dropped(), 1);
  assert.ok(lst.stats.outOfOrder > 0, 'the last segment, with FIN, came before the gap was filled');
  assertDelivered(lst.stats, bytes);
  assert.equal(lst.connections[0]!.state, 'closed');
  assert.equal(f.stats.state, 'closed');
  assertPoolFull(r.pool);
});

test('tcp: on a zero-delay path (pods on one bridge: the whole exchange runs inside the first send) a lost last segment is recovered by the timer', () => {
  const sim = new Simulator(1);
  const pool = new PacketPool({ count: 4096, frameCapacity: 2048 });
  const br = new Bridge({ name: 'br', pool, clock: sim.clock });
  const [a, b] = hosts(sim, pool);
  // a's frames reach the bridge through a wrapper that loses the last data-carrying one (with the FIN):
  // no duplicate ACK follows it, only the retransmission timer can recover it.
  let seen = 0,
    dropped = 0;
  const lossy: Device = {
    name: a.name,
    mac: a.mac,
    mtu: a.mtu,
    get linkUp() {
      return a.linkUp;
    },
    transmit: (batch) => a.transmit(batch),
    setLinkListener: (fn) => a.setLinkListener(fn),
    setReceiver: (rx) =>
      a.setReceiver(
        rx === null
          ? null
          : (batch) => {
              batch.retain(
                (p) => {
                  const d = p.data,
                    ip = p.start + 14,
                    hl = (d[ip]! & 0x0f) * 4;
                  const payload = rd16(d, ip + 2) - hl - (d[ip + hl + 12]! >> 4) * 4;
                  return !(d[ip + 9] === 6 && payload > 0 && ++seen === 20 && ++dropped > 0);
                },
                (p) => p.release(),
              );
              rx(batch);
            },
      ),
  };
  br.addPort('a', lossy);
  br.addPort('b', b);
  // Known neighbours (as pods know their gateway's MAC): the SYN leaves at once, the SYN-ACK comes back in the same call.
  a.addNeighbor('10.0.0.2', MAC_B);
  b.addNeighbor('10.0.0.1', MAC_A);
  const lst = b.tcpListen(80);
  const bytes = 20 * 1460;
  const f = a.tcpSend({ dst: '10.0.0.2', dstPort: 80, bytes });
  sim.run(10e9);
  assert.equal(dropped, 1);
  assert.equal(f.stats.establishedNs, f.stats.startNs, 'the handshake takes no time: no SYN-ACK refused, no SYN retransmitted');
  assert.equal(f.stats.timeouts, 1, 'the timer fires once and the retransmission gets through');
  assertDelivered(lst.stats, bytes);
  assert.equal(f.stats.state, 'closed');
  assertPoolFull(pool);
});

test('tcp: a finished connection frees its ports: the same four-tuple connects again', () => {
  const r = direct({ latencyNs: 1 * MS });
  const lst = r.b.tcpListen(80);
  const first = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, srcPort: 40000, bytes: 5000 });
  r.sim.run(1e9);
  assert.equal(first.stats.state, 'closed');
  const again = r.a.tcpSend({ dst: '10.0.0.2', dstPort: 80, srcPort: 40000, bytes: 7000 });
  r.sim.run(2e9);
  assert.equal(again.stats.state, 'closed');
  assert.equal(lst.stats.connections, 2);
  assert.equal(lst.stats.bytesReceived, 12000);
});
