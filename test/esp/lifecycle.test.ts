/**
 * ESP's lifecycle on a real node (issue 17): what a simulator never does and a live node always does —
 * restarts, two tunnels on one node, a peer that comes back, a spoofed source, lost epochs, a long-running
 * SA. Nodes are bridges joined by veth pairs (synchronous: a frame sent is received before `send`
 * returns); a restart is a new bridge (a new SA database) on the same wire. Unless a test introduces
 * them, nodes meet over the wire, announcements and all, as live nodes do.
 *
 * The nonce property is recorded, not inferred: the AEAD's test hook (esp/aead.ts `setAeadObserver`)
 * sees every (key fingerprint, nonce) each AEAD seals under.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint } from '../../src/datapath/device.js';
import { createAead, setAeadObserver } from '../../src/esp/aead.js';
import { espProtect, espUnprotect, EspRxInfo } from '../../src/esp/esp.js';
import { SeqJournal, type JournalFs } from '../../src/esp/journal.js';
import { ClusterSecret, spiFor } from '../../src/esp/keys.js';
import { InboundSa, OutboundSa, type EspLifetime } from '../../src/esp/sa.js';
import { ESP_AEAD_LIMITS, ESP_REKEY_FRACTION, EspSadb, type EspConfig, type EspExplicitSa } from '../../src/esp/sadb.js';
import type { EspCipher } from '../../src/mtu/overhead.js';
import { PacketBatch, PacketPool } from '../../src/packet/buf.js';
import { checksum } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop.js';
import { compose } from '../../src/wire/stack.js';
import { eth, ip4, udp, zeros } from '../peers/catalogue.js';
import { assertBooks, assertPoolFull, drops, introduceEsp, TapEnd, VirtualClock } from '../datapath/topology.js';
import { randomBytesFrom } from '../helpers.js';

const SECRET = new ClusterSecret(new Uint8Array(32).map((_, i) => (i * 29 + 3) & 0xff));
const dir = mkdtempSync(join(tmpdir(), 'seine-lifecycle-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const freshPath = (): string => join(dir, `journal-${fileNo++}`);

const IP = (i: number): string => `10.9.0.${i}`;
const UMAC = (i: number): number => 0x0e0000000000 + i;
const PMAC = (i: number): number => 0x020000000000 + i;

/** A veth end that keeps a copy of what it sends and can lose frames on the way (`lose`). */
class Wire extends TapEnd {
  lose: ((f: Uint8Array) => boolean) | null = null;
  override transmit(batch: PacketBatch): void {
    if (this.lose !== null) {
      let w = 0;
      for (let i = 0; i < batch.length; i++) {
        const p = batch.get(i);
        if (this.lose(p.bytes())) p.release();
        else batch.pkts[w++] = p;
      }
      batch.length = w;
    }
    super.transmit(batch);
  }
}

function wire(a: number, b: number, mtu = 1500): [Wire, Wire] {
  const x = new Wire(`u${a}${b}`, UMAC(a), mtu);
  const y = new Wire(`u${b}${a}`, UMAC(b), mtu);
  x.peer = y;
  y.peer = x;
  return [x, y];
}

/** Randomness from a seed: another seed, another incarnation. */
function randomFrom(seed: number): (n: number) => Uint8Array {
  return randomBytesFrom(seed * 2654435761 + 1);
}

interface NodeOpts {
  kind?: 'vxlan' | 'geneve';
  esp?: Partial<EspConfig>;
  /** Explicit keys towards each peer (by node number). */
  explicit?: Record<number, { out: EspExplicitSa; in: EspExplicitSa }>;
}

interface Side {
  i: number;
  br: Bridge;
  pod: Endpoint;
  ports: string[];
}

/**
 * Node `i` (underlay 10.9.0.i, pod MAC 02:..:i) with one l2 tunnel port per entry of `links` — the wire
 * end and the peers (node numbers) behind it — on VNI 7, and a pod.
 */
function node(
  i: number,
  net: { pool: PacketPool; clock: VirtualClock },
  links: Array<{ port: string; under: Wire; peers: number[]; opts?: NodeOpts }>,
  pod?: Endpoint,
): Side {
  const br = new Bridge({ name: `n${i}`, pool: net.pool, clock: net.clock });
  for (const l of links) {
    const o = l.opts ?? {};
    br.addTunnel(l.port, l.under, {
      kind: o.kind ?? 'vxlan',
      mode: 'l2',
      localIp: IP(i),
      esp: { cipher: 'chacha20-poly1305', secret: SECRET, node: `n${i}`, ...o.esp },
    });
    for (const p of l.peers) {
      const x = o.explicit?.[p];
      br.addVtep(l.port, { ip: IP(p), mac: UMAC(p), vnis: [7], esp: x !== undefined ? { out: x.out, in: x.in } : { node: `n${p}` } });
    }
    br.mapVni(l.port, 7, 0);
  }
  const ep = pod ?? new Endpoint(`pod${i}`, net.pool, PMAC(i));
  br.addPort('pod', ep);
  return { i, br, pod: ep, ports: links.map((l) => l.port) };
}

/** A node stops (its bridge goes away; what it knew is lost, its wire stays). */
function stop(s: Side): void {
  for (const p of s.ports) s.br.removePort(p);
  s.br.removePort('pod');
}

const frame = (from: number, to: number, k: number): Uint8Array =>
  compose([eth(0x0800, [], PMAC(from), PMAC(to)), ip4(`10.0.0.${from}`, `10.0.0.${to}`, 17), udp(1000 + k, 2), zeros(20 + (k % 5))]);
const bigFrame = (from: number, to: number, len: number): Uint8Array =>
  compose([eth(0x0800, [], PMAC(from), PMAC(to)), ip4(`10.0.0.${from}`, `10.0.0.${to}`, 17, { dontFrag: false }), udp(7, 8), zeros(len - 28)]);

/** ESP packets (IP protocol 50, or UDP 4500) among outer frames; the offset of their ESP header. */
function espFrames(sent: readonly Uint8Array[]): Array<{ f: Uint8Array; esp: number }> {
  const out: Array<{ f: Uint8Array; esp: number }> = [];
  for (const f of sent) {
    if (f[23] === 50) out.push({ f, esp: 34 });
    else if (f[23] === 17 && ((f[36]! << 8) | f[37]!) === 4500) out.push({ f, esp: 42 });
  }
  return out;
}
const spiOf = (e: { f: Uint8Array; esp: number }): number => ((e.f[e.esp]! << 24) | (e.f[e.esp + 1]! << 16) | (e.f[e.esp + 2]! << 8) | e.f[e.esp + 3]!) >>> 0;
const seqOf = (e: { f: Uint8Array; esp: number }): number =>
  ((e.f[e.esp + 4]! << 24) | (e.f[e.esp + 5]! << 16) | (e.f[e.esp + 6]! << 8) | e.f[e.esp + 7]!) >>> 0;

/** Every (key, nonce) sealed and the opens, while the hook is installed. */
class NonceLog {
  readonly seals: string[] = [];
  opens = 0;
  private was: ReturnType<typeof setAeadObserver> = null;
  install(): this {
    this.was = setAeadObserver((op, key, nonce) => {
      if (op === 'seal') this.seals.push(`${key}:${Buffer.from(nonce).toString('hex')}`);
      else this.opens++;
    });
    return this;
  }
  remove(): void {
    setAeadObserver(this.was);
  }
  /** (key, nonce) pairs sealed more than once. */
  repeats(): string[] {
    const seen = new Set<string>();
    const rep: string[] = [];
    for (const s of this.seals) {
      if (seen.has(s)) rep.push(s);
      seen.add(s);
    }
    return rep;
  }
}

function withLog<T>(f: (log: NonceLog) => T): T {
  const log = new NonceLog().install();
  try {
    return f(log);
  } finally {
    log.remove();
  }
}

function inject(w: Wire, frames: readonly Uint8Array[], pool: PacketPool): void {
  const b = new PacketBatch();
  for (const f of frames) {
    const p = pool.alloc()!;
    p.load(f);
    b.add(p);
  }
  w.transmit(b);
}

/** Rewrites an outer IPv4 source address (and the header checksum), as an on-path attacker would. */
function rewriteSource(f: Uint8Array, src: string): Uint8Array {
  const g = f.slice();
  g.set(src.split('.').map(Number), 26);
  g[24] = g[25] = 0;
  const c = checksum(g, 14, 20);
  g[24] = c >>> 8;
  g[25] = c & 0xff;
  return g;
}

// ---- defect 1: a restart without a journal ----------------------------------------------------------------

test('defect 1: a sender restarted without a journal never puts a (key, nonce) on the wire again — its new incarnation means new keys', () => {
  withLog((log) => {
    const net = { pool: new PacketPool({ count: 256, frameCapacity: 2048 }), clock: new VirtualClock() };
    const [u1, u2] = wire(1, 2);
    const b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp: { random: randomFrom(2) } } }]);
    let a = node(1, net, [{ port: 't', under: u1, peers: [2], opts: { esp: { random: randomFrom(10) } } }]);
    const spis: number[][] = [];
    for (let life = 0; life < 4; life++) {
      for (let k = 0; k < 5; k++) a.pod.send([frame(1, 2, k)]);
      assert.equal(b.pod.take().length, 5, `life ${life}: every packet arrives (the first waited for the announcements)`);
      const esp = espFrames(u1.sent.splice(0));
      assert.deepEqual(esp.map(seqOf), [1, 2, 3, 4, 5], 'each life starts its sequence numbers again...');
      spis.push([...new Set(esp.map(spiOf))]);
      stop(a);
      // A restart takes a moment: node 2's hellos to node 1 (two per meeting) are rate-limited per second.
      net.clock.t += 1e9;
      a = node(1, net, [{ port: 't', under: u1, peers: [2], opts: { esp: { random: randomFrom(11 + life) } } }], a.pod);
    }
    assert.equal(new Set(spis.flat()).size, 4, '...under another SA each time');
    assert.deepEqual(log.repeats(), [], 'no (key, nonce) sealed twice');
    assert.equal(log.seals.length, 20);
    assertPoolFull(net.pool);
  });
});

test('defect 1: hand-configured keys cannot change on a restart — without a journal they are refused; with one they resume past every sequence number used', () => {
  const x = { out: { spi: 0x1001, key: '11'.repeat(32), salt: 'a1a2a3a4' }, in: { spi: 0x2002, key: '22'.repeat(32), salt: 'b1b2b3b4' } };
  const net = { pool: new PacketPool({ count: 64, frameCapacity: 2048 }), clock: new VirtualClock() };
  const [u1] = wire(1, 2);
  assert.throws(
    () => node(1, net, [{ port: 't', under: u1, peers: [2], opts: { explicit: { 2: x } } }]),
    /hand-configured keys need a journal \(esp\.journal\)/,
  );
  withLog((log) => {
    const path = freshPath();
    const [w1, w2] = wire(1, 2);
    const mirror = { out: x.in, in: x.out };
    const b = node(2, net, [{ port: 't', under: w2, peers: [1], opts: { explicit: { 1: mirror }, esp: { freshExplicitKeys: true } } }]);
    for (let life = 0; life < 3; life++) {
      const j = SeqJournal.open(path, { node: 'n1', block: 3n, pidAlive: () => false });
      const a = node(1, net, [{ port: 't', under: w1, peers: [2], opts: { explicit: { 2: x }, esp: { journal: j } } }]);
      for (let k = 0; k < 4; k++) a.pod.send([frame(1, 2, k)]);
      stop(a); // a crash: the journal is not closed, its lock is left behind
    }
    assert.equal(b.pod.take().length, 12, 'the receiver took every packet: none was a replay');
    const seqs = espFrames(w1.sent).map(seqOf);
    for (let k = 1; k < seqs.length; k++) assert.ok(seqs[k]! > seqs[k - 1]!, `${seqs.join(' ')}`);
    assert.deepEqual(log.repeats(), []);
  });
});

// ---- defect 2: two SA databases on one node ---------------------------------------------------------------

test('defect 2: two tunnel ports of one node towards one peer (VXLAN and Geneve) derive different keys, even from the same randomness', () => {
  withLog((log) => {
    const net = { pool: new PacketPool({ count: 256, frameCapacity: 2048 }), clock: new VirtualClock() };
    const [v1, v2] = wire(1, 2);
    const [g1, g2] = wire(1, 2);
    // The same "random" bytes for both tunnels of a node: only the tunnel's identity tells them apart.
    const same = (): ((n: number) => Uint8Array) => randomFrom(5);
    const a = node(1, net, [
      { port: 'vx', under: v1, peers: [2], opts: { esp: { random: same() } } },
      { port: 'gn', under: g1, peers: [2], opts: { kind: 'geneve', esp: { random: same() } } },
    ]);
    const b = node(2, net, [
      { port: 'vx', under: v2, peers: [1], opts: { esp: { random: same() } } },
      { port: 'gn', under: g2, peers: [1], opts: { kind: 'geneve', esp: { random: same() } } },
    ]);
    introduceEsp(a.br, b.br, 'vx');
    introduceEsp(a.br, b.br, 'gn');
    assert.deepEqual([...a.br.tunnel('vx').sadb!.incarnation], [...a.br.tunnel('gn').sadb!.incarnation], 'one incarnation for both');
    // A frame for a MAC not learnt yet is flooded to both tunnels: each sends sequence number 1.
    a.pod.send([frame(1, 2, 0)]);
    const vx = espFrames(v1.sent);
    const gn = espFrames(g1.sent);
    assert.deepEqual([vx.map(seqOf), gn.map(seqOf)], [[1], [1]]);
    assert.notEqual(spiOf(vx[0]!), spiOf(gn[0]!));
    assert.deepEqual(log.repeats(), [], 'sequence number 1 twice, under two keys');
    assert.equal(new Set(log.seals.map((s) => s.split(':')[0])).size, 2);
    assert.equal(b.pod.take().length, 2);
  });
});

test('defect 2: a journal serves one SA database: a second tunnel on it is refused, and so is a second process (the lock)', () => {
  const net = { pool: new PacketPool({ count: 16, frameCapacity: 2048 }), clock: new VirtualClock() };
  const path = freshPath();
  const j = SeqJournal.open(path, { node: 'n1' });
  const [v1] = wire(1, 2);
  const [g1] = wire(1, 2);
  node(1, net, [{ port: 'vx', under: v1, peers: [2], opts: { esp: { journal: j } } }]);
  assert.throws(
    () => node(1, net, [{ port: 'gn', under: g1, peers: [2], opts: { kind: 'geneve', esp: { journal: j } } }]),
    /already serves another SA database/,
  );
  assert.throws(() => SeqJournal.open(path, { node: 'n1' }), /locked by process/);
  j.close();
});

// ---- defect 3: a restarted receiver --------------------------------------------------------------------------

test('defect 3: packets captured before a receiver restarts are refused after it; traffic after the restart passes', () => {
  const net = { pool: new PacketPool({ count: 256, frameCapacity: 2048 }), clock: new VirtualClock() };
  const [u1, u2] = wire(1, 2);
  const a = node(1, net, [{ port: 't', under: u1, peers: [2], opts: { esp: { random: randomFrom(1) } } }]);
  let b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp: { random: randomFrom(2) } } }]);
  for (let k = 0; k < 10; k++) a.pod.send([frame(1, 2, k)]);
  assert.equal(b.pod.take().length, 10);
  const captured = espFrames(u1.sent.splice(0)).map((e) => e.f);
  assert.equal(captured.length, 10);
  stop(b);
  b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp: { random: randomFrom(3) } } }], b.pod);
  // The restarted receiver meets the sender again (a packet of the old SA makes it ask).
  a.pod.send([frame(1, 2, 100)]);
  for (let k = 0; k < 5; k++) a.pod.send([frame(1, 2, 101 + k)]);
  assert.equal(b.pod.take().length, 5, 'after the announcements, the new SA carries traffic (the packet that made it ask was under the old keys)');
  inject(u1, captured, net.pool);
  assert.equal(b.pod.take().length, 0, 'no captured packet is accepted again');
  const port = b.br.port('t');
  assert.equal(drops(port, DropReason.EspUnknownSpi), 11, 'the old SPIs mean nothing to the new incarnation');
  assert.equal(drops(port, DropReason.EspAuthFailed) + drops(port, DropReason.EspReplay), 0);
  assertBooks(a.br);
  assertBooks(b.br);
});

test('defect 3: an ESN sender past 2^32 and a restarted receiver resynchronise (a new SA from sequence number 1)', () => {
  const net = { pool: new PacketPool({ count: 128, frameCapacity: 2048 }), clock: new VirtualClock() };
  const [u1, u2] = wire(1, 2);
  const a = node(1, net, [{ port: 't', under: u1, peers: [2], opts: { esp: { random: randomFrom(1) } } }]);
  let b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp: { random: randomFrom(2) } } }]);
  introduceEsp(a.br, b.br, 't');
  a.pod.send([frame(1, 2, 0)]);
  assert.equal(b.pod.take().length, 1);
  // A long-running SA: 2^32 + 5 packets sent, the receiver's window following it (as it would have).
  const out = a.br.tunnel('t').sadb!.peers[0]!.out!;
  out.seqHi = 1;
  out.seqLo = 5;
  b.br.tunnel('t').sadb!.peers[0]!.inCur!.resetWindow((1n << 32n) + 5n);
  a.pod.send([frame(1, 2, 1)]);
  assert.equal(b.pod.take().length, 1, 'ESN: the high bits are inferred while the receiver follows');
  stop(b);
  b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp: { random: randomFrom(3) } } }], b.pod);
  for (let k = 0; k < 6; k++) a.pod.send([frame(1, 2, 10 + k)]);
  assert.equal(b.pod.take().length, 5, 'all but the packet that made the restarted receiver ask');
  const now = espFrames(u1.sent).slice(-5);
  assert.deepEqual(now.map(seqOf), [1, 2, 3, 4, 5], 'the pair moved to a new SA: sequence numbers from 1');
  assert.equal(drops(b.br.port('t'), DropReason.EspAuthFailed), 0, 'no guessing of high bits that can never verify');
});

// ---- defect 4: the outer source is bound to the SA -------------------------------------------------------

test("defect 4: a packet whose outer source is another peer than its SA's is dropped (EspPeerMismatch) before decryption, and learns nothing; the real peer is unaffected", () => {
  withLog((log) => {
    const net = { pool: new PacketPool({ count: 128, frameCapacity: 2048 }), clock: new VirtualClock() };
    // Node 3 has two peers, 1 and 2; only 2 is on this wire (1 is elsewhere: its VTEP is known).
    const [u2, u3] = wire(2, 3);
    const b = node(2, net, [{ port: 't', under: u2, peers: [3] }]);
    const c = node(3, net, [{ port: 't', under: u3, peers: [1, 2] }]);
    introduceEsp(b.br, c.br, 't');
    b.pod.send([frame(2, 3, 0)]);
    assert.equal(c.pod.take().length, 1);
    const tun = c.br.tunnel('t');
    const learnt = (): number => c.br.macs.entries().find((e) => e.mac === PMAC(2))!.aux;
    assert.equal(learnt(), tun.findVtep(IP(2)), 'pod 2 is behind VTEP 2');
    // An on-path rewrite of node 2's next packet: outer source node 1.
    b.pod.send([frame(2, 3, 1)]);
    c.pod.take();
    const good = espFrames(u2.sent).at(-1)!.f;
    const opens = log.opens;
    inject(u2, [rewriteSource(good, IP(1))], net.pool);
    assert.equal(c.pod.take().length, 0);
    assert.equal(drops(c.br.port('t'), DropReason.EspPeerMismatch), 1);
    assert.equal(log.opens, opens, 'refused before any decryption');
    assert.equal(learnt(), tun.findVtep(IP(2)), 'pod 2 is still behind VTEP 2, not VTEP 1');
    for (let k = 0; k < 3; k++) b.pod.send([frame(2, 3, 10 + k)]);
    assert.equal(c.pod.take().length, 3, 'the real peer carries on');
  });
});

test('cheap outer checks first: a packet not for this node, with a bad IPv4 checksum, or from no VTEP costs no decryption', () => {
  withLog((log) => {
    const net = { pool: new PacketPool({ count: 64, frameCapacity: 2048 }), clock: new VirtualClock() };
    const [u1, u2] = wire(1, 2);
    const a = node(1, net, [{ port: 't', under: u1, peers: [2] }]);
    const b = node(2, net, [{ port: 't', under: u2, peers: [1] }]);
    introduceEsp(a.br, b.br, 't');
    a.pod.send([frame(1, 2, 0)]);
    assert.equal(b.pod.take().length, 1);
    const good = espFrames(u1.sent)[0]!.f;
    const badSum = good.slice();
    badSum[24] = badSum[24]! ^ 0xff;
    const notUs = good.slice();
    notUs.set([10, 9, 0, 77], 30);
    const fixed = rewriteSource(notUs, IP(1));
    const opens = log.opens;
    inject(u1, [badSum, fixed, rewriteSource(good, '10.9.0.99')], net.pool);
    const port = b.br.port('t');
    assert.deepEqual([drops(port, DropReason.Ipv4BadChecksum), drops(port, DropReason.TunnelNotForUs), drops(port, DropReason.UnknownVtep)], [1, 1, 1]);
    assert.equal(log.opens, opens, 'no AEAD was asked');
  });
});

// ---- defect 5: the SPI table ---------------------------------------------------------------------------------

test('defect 5: 200,000 rekeys on one tunnel — the SPI table stays at three SAs, no rekey throws, every packet is taken', () => {
  const clock = 0;
  const id = (local: string): { kind: string; port: number; localAddr: string } => ({ kind: 'vxlan', port: 4789, localAddr: local });
  const cfg = (seed: number): EspConfig => ({ cipher: 'chacha20-poly1305', secret: SECRET, lifetime: { packets: 1 }, random: randomFrom(seed), graceNs: 0 });
  const s = new EspSadb(cfg(1), 'n1', id(IP(1)));
  const r = new EspSadb(cfg(2), 'n2', id(IP(2)));
  s.addPeer(0, IP(2), { node: 'n2' });
  r.addPeer(0, IP(1), { node: 'n1' });
  EspSadb.introduce(s, 0, r, 0, clock);
  const pool = new PacketPool({ count: 2, frameCapacity: 2048 });
  const plain = compose([eth(0x0800), ip4(IP(1), IP(2), 17), udp(1, 4789), zeros(32)]);
  const p = pool.alloc()!;
  const info = new EspRxInfo();
  let maxTable = 0;
  const N = 200_000;
  for (let k = 0; k < N; k++) {
    const sa = s.outbound(0, clock);
    assert.ok(sa instanceof OutboundSa);
    p.load(plain);
    assert.equal(espProtect(p, p.start + 14, sa, clock), 0);
    r.begin(0, clock);
    const got = espUnprotect(p, p.start + 14, r.lookup, clock, info);
    if (got !== 0) assert.fail(`packet ${k}: ${DropReason[got] ?? got}`);
    r.accepted(info.sa!, clock);
    if (k % 1000 === 0) r.expire(clock);
    maxTable = Math.max(maxTable, r.spiTableSize);
  }
  assert.equal(s.peers[0]!.rekeys, N - 1);
  assert.ok(maxTable <= 3, `the SPI table held ${maxTable} SAs`);
  p.release();
});

test('defect 5: two peers whose SAs derive one SPI both carry traffic — the table resolves (SPI, peer); and the explicit-SPI message names no spiTweak', () => {
  // Incarnations that make peer 1's and peer 2's epoch-0 SPIs towards node 3 equal: a birthday search
  // (2^17 candidates for one, then tries for the other until one matches: about 2^15 expected).
  const inc3 = randomFrom(3)(16);
  const incOf = (seed: number): Uint8Array => randomFrom(1000 + seed)(16);
  const spi = (p: number, seed: number): number =>
    spiFor(SECRET, {
      cipher: 'chacha20-poly1305',
      src: `n${p}`,
      dst: 'n3',
      tunnel: { kind: 'vxlan', port: 4789, srcAddr: IP(p), dstAddr: IP(3) },
      srcIncarnation: incOf(seed),
      dstIncarnation: inc3,
      epoch: 0,
    });
  const table = new Map<number, number>();
  for (let s = 0; s < 1 << 17; s++) table.set(spi(1, s), s);
  let hit: [number, number] | null = null;
  for (let s = 1 << 17; hit === null && s < 1 << 20; s++) {
    const t = table.get(spi(2, s));
    if (t !== undefined) hit = [t, s];
  }
  assert.ok(hit !== null, 'a collision');
  const fixed =
    (b: Uint8Array) =>
    (n: number): Uint8Array =>
      b.slice(0, n);
  const db = (name: string, local: string, inc: Uint8Array): EspSadb =>
    new EspSadb({ cipher: 'chacha20-poly1305', secret: SECRET, random: fixed(inc) }, name, { kind: 'vxlan', port: 4789, localAddr: local });
  const s1 = db('n1', IP(1), incOf(hit[0]));
  const s2 = db('n2', IP(2), incOf(hit[1]));
  const hub = db('n3', IP(3), inc3);
  s1.addPeer(0, IP(3), { node: 'n3' });
  s2.addPeer(0, IP(3), { node: 'n3' });
  hub.addPeer(0, IP(1), { node: 'n1' });
  hub.addPeer(1, IP(2), { node: 'n2' });
  EspSadb.introduce(s1, 0, hub, 0, 0);
  EspSadb.introduce(s2, 0, hub, 1, 0);
  assert.equal(hub.peers[0]!.inCur!.spi, hub.peers[1]!.inCur!.spi, 'one SPI, two peers');
  assert.equal(hub.spiTableSize, 4, 'current and next of each');
  const pool = new PacketPool({ count: 2, frameCapacity: 2048 });
  for (const [from, sender] of [
    [0, s1],
    [1, s2],
  ] as const) {
    for (let k = 0; k < 3; k++) {
      const sa = sender.outbound(0, 0) as OutboundSa;
      const p = pool.alloc()!;
      p.load(compose([eth(0x0800), ip4(IP(from + 1), IP(3), 17), udp(1, 4789), zeros(20 + k)]));
      assert.equal(espProtect(p, p.start + 14, sa, 0), 0);
      hub.begin(from, 0);
      assert.equal(espUnprotect(p, p.start + 14, hub.lookup, 0), 0, `peer ${from + 1}'s packet ${k}, found by (SPI, peer)`);
      p.release();
    }
  }
  // Hand-configured SPIs are the operator's to keep apart: the error says how, and names no option that does not exist.
  const x = new EspSadb({ cipher: 'aes-gcm-128', freshExplicitKeys: true }, 'n', { kind: 'vxlan', port: 4789, localAddr: IP(3) });
  const k = (n: number, spi: number): EspExplicitSa => ({ spi, key: n.toString(16).padStart(2, '0').repeat(16), salt: '01020304' });
  x.addPeer(0, IP(1), { out: k(1, 0x500), in: k(2, 0x600) });
  assert.throws(
    () => x.addPeer(1, IP(2), { out: k(3, 0x501), in: k(4, 0x600) }),
    (e: unknown) => e instanceof RangeError && /choose another explicit SPI/.test(e.message) && !/spiTweak/.test(e.message),
  );
});

// ---- defect 6: lost epochs --------------------------------------------------------------------------------------

test("defect 6: every packet of an epoch lost (or of several) does not blackhole the peer: a few epochs ahead are found, and past them the peer's announcement resynchronises", () => {
  const net = { pool: new PacketPool({ count: 256, frameCapacity: 2048 }), clock: new VirtualClock() };
  const [u1, u2] = wire(1, 2);
  const lifetime: EspLifetime = { packets: 2 };
  const a = node(1, net, [{ port: 't', under: u1, peers: [2], opts: { esp: { lifetime } } }]);
  const b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp: { lifetime } } }]);
  introduceEsp(a.br, b.br, 't');
  let sent = 0;
  const send = (n: number): void => {
    for (let k = 0; k < n; k++) a.pod.send([frame(1, 2, sent++)]);
  };
  send(2); // epoch 0
  assert.equal(b.pod.take().length, 2);
  // Epoch 1 (two packets) lost entirely.
  u1.lose = (f) => f[23] === 50;
  send(2);
  u1.lose = null;
  send(4); // epochs 2 and 3
  assert.equal(b.pod.take().length, 4, 'epoch 2 found two ahead of the current one');
  // Eight epochs lost: past the lookahead of four. (A second later: asks for announcements are rate-limited.)
  net.clock.t += 1e9;
  u1.lose = (f) => f[23] === 50;
  send(16);
  u1.lose = null;
  send(1);
  assert.equal(b.pod.take().length, 0, 'too far ahead: the receiver asks the sender where it is...');
  send(5);
  assert.equal(b.pod.take().length, 5, '...and its announcement brings the receiver to its epoch');
  const inb = b.br.tunnel('t').sadb!;
  assert.equal(inb.peers[0]!.inEpoch >= 13, true, `receiver at epoch ${inb.peers[0]!.inEpoch}`);
  assert.ok(inb.resyncs >= 1);
  assert.equal(drops(b.br.port('t'), DropReason.EspAuthFailed), 0);
});

test('defect 6: a packet on a lookahead SPI changes nothing before it authenticates, and forgeries cost one derivation per epoch, not one each', () => {
  const s = new EspSadb({ cipher: 'aes-gcm-128', secret: SECRET, random: randomFrom(1) }, 'n1', { kind: 'vxlan', port: 4789, localAddr: IP(1) });
  const r = new EspSadb({ cipher: 'aes-gcm-128', secret: SECRET, random: randomFrom(2) }, 'n2', { kind: 'vxlan', port: 4789, localAddr: IP(2) });
  s.addPeer(0, IP(2), { node: 'n2' });
  r.addPeer(0, IP(1), { node: 'n1' });
  EspSadb.introduce(s, 0, r, 0, 0);
  const peer = r.peers[0]!;
  const next = peer.inNext;
  r.begin(0, 0);
  assert.equal(r.lookup(0x0bad_0bad), null, 'an SPI of no epoch');
  const spis = peer.aheadSpis;
  assert.ok(spis.length >= 3);
  const seen = new Map<number, unknown>();
  for (let i = 0; i < 200; i++) {
    const spi = spis[1 + (i % 2)]!;
    r.begin(0, i);
    const sa = r.lookup(spi);
    assert.ok(sa !== null && sa.spi === spi, 'the candidate for that epoch');
    if (seen.has(spi)) assert.equal(sa, seen.get(spi), 'derived once, not per packet');
    seen.set(spi, sa);
  }
  assert.equal(peer.inNext, next, 'no forged packet installed an SA');
  assert.equal(r.find(spis[1]!, 0), null, 'nor registered one');
  // The candidate that authenticates becomes the next epoch, then the current one.
  const e0 = peer.inEpoch;
  const cand = r.lookup(spis[2]!)!;
  r.accepted(cand, 300);
  assert.equal(peer.inCur, cand);
  assert.equal(peer.inEpoch, e0 + 3, 'the lookahead starts one past the current epoch');
  assert.equal(r.find(spis[2]!, 0), cand);
  // More packets on it change nothing: it is current, the old epoch keeps its grace, the next is not derived again.
  const [old, nx, gen] = [peer.inOld, peer.inNext, r.generation];
  for (let i = 0; i < 3; i++) {
    r.begin(0, 400 + i);
    assert.equal(r.lookup(cand.spi), cand);
    r.accepted(cand, 400 + i);
  }
  assert.deepEqual([peer.inCur === cand, peer.inOld === old, peer.inNext === nx, peer.inEpoch, r.generation], [true, true, true, e0 + 3, gen]);
});

// ---- defect 7: lifetimes and ICV failures ----------------------------------------------------------------------

test('defect 7: default lifetimes are the AEAD limits (AES-GCM 2^34 packets / 2^39 bytes, ChaCha20-Poly1305 2^60 packets); the sender rekeys at 7/8 of them', () => {
  for (const cipher of ['aes-gcm-128', 'aes-gcm-256', 'chacha20-poly1305'] as const) {
    const s = new EspSadb({ cipher, secret: SECRET, random: randomFrom(1) }, 'n1', { kind: 'vxlan', port: 4789, localAddr: IP(1) });
    const r = new EspSadb({ cipher, secret: SECRET, random: randomFrom(2) }, 'n2', { kind: 'vxlan', port: 4789, localAddr: IP(2) });
    s.addPeer(0, IP(2), { node: 'n2' });
    r.addPeer(0, IP(1), { node: 'n1' });
    EspSadb.introduce(s, 0, r, 0, 0);
    const lim = ESP_AEAD_LIMITS[cipher];
    const sa = s.outbound(0, 0) as OutboundSa;
    const soft = Math.floor(lim.packets * ESP_REKEY_FRACTION);
    sa.packets = soft - 1024; // (2^60 · 7/8 − 1 is not a double)
    assert.equal(s.outbound(0, 0), sa, `${cipher}: below 7/8 of ${lim.packets} packets`);
    sa.packets = soft;
    const next = s.outbound(0, 0) as OutboundSa;
    assert.notEqual(next, sa, `${cipher}: rekeyed at 7/8 of the packet limit`);
    assert.ok(!sa.expired(0) && sa.due(0));
    sa.packets = lim.packets;
    assert.ok(sa.expired(0), 'the hard limit is the AEAD limit');
    if (lim.bytes !== undefined) {
      next.bytes = Math.floor(lim.bytes * ESP_REKEY_FRACTION);
      assert.notEqual(s.outbound(0, 0), next, `${cipher}: rekeyed at 7/8 of the byte limit`);
    }
    // A long-lived SA with a real clock (ns since 1970) is not expired at once: created when made.
    const t = 1.7e18;
    const x = new EspSadb({ cipher, freshExplicitKeys: true, lifetime: { ns: 3600e9 } }, 'n', { kind: 'vxlan', port: 4789, localAddr: IP(1) });
    const key = 'ab'.repeat(cipher === 'aes-gcm-128' ? 16 : 32);
    x.addPeer(0, IP(2), { out: { spi: 0x300, key, salt: '01020304' }, in: { spi: 0x301, key: 'cd'.repeat(key.length / 2), salt: '01020304' } }, t);
    const xs = x.outbound(0, t + 1e9);
    assert.ok(xs instanceof OutboundSa, `${cipher}: an SA made at ${t} is good an hour later (${DropReason[xs as number] ?? ''})`);
    assert.equal(x.outbound(0, t + 3600e9), DropReason.EspSaExhausted, 'and expired after its hour');
  }
});

test("defect 7: ICV failures are counted; at the AEAD's integrity limit the SA is retired and the sender asked to rekey — traffic goes on under the next epoch", () => {
  const net = { pool: new PacketPool({ count: 128, frameCapacity: 2048 }), clock: new VirtualClock() };
  const [u1, u2] = wire(1, 2);
  const a = node(1, net, [{ port: 't', under: u1, peers: [2] }]);
  // A tiny integrity limit (the real one is 2^34 for ChaCha20-Poly1305), to reach it.
  const b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp: { lifetime: { authFailures: 3 } } } }]);
  introduceEsp(a.br, b.br, 't');
  a.pod.send([frame(1, 2, 0)]);
  assert.equal(b.pod.take().length, 1);
  const good = espFrames(u1.sent)[0]!.f;
  const forged = (k: number): Uint8Array => {
    const f = good.slice();
    f[41] = 10 + k;
    f[f.length - 1] = f[f.length - 1]! ^ 1;
    return f;
  };
  const inb = b.br.tunnel('t').sadb!;
  const before = inb.peers[0]!.inCur;
  inject(u1, [forged(0), forged(1)], net.pool);
  assert.equal(inb.icvFailures, 2);
  assert.equal(inb.peers[0]!.inCur, before, 'below the limit the SA stays');
  inject(u1, [forged(2)], net.pool);
  assert.equal(inb.icvFailures, 3);
  assert.equal(inb.peers[0]!.inCur, null, 'at the limit it is retired');
  assert.equal(a.br.tunnel('t').sadb!.peers[0]!.rekeys, 1, 'the sender took the rekey request');
  for (let k = 1; k < 4; k++) a.pod.send([frame(1, 2, k)]);
  assert.equal(b.pod.take().length, 3, 'and traffic goes on in the next epoch');
  assert.equal(drops(b.br.port('t'), DropReason.EspAuthFailed), 3);
  // The request replayed by someone on the path: no second rekey (once per SA, at most once a second).
  const request = u2.sent.filter((f) => f[23] === 17).at(-1)!;
  inject(u2, [request, request], net.pool);
  assert.equal(a.br.tunnel('t').sadb!.peers[0]!.rekeys, 1);
});

// ---- the smaller ones (8) ---------------------------------------------------------------------------------------

test('8: a hand-configured key may serve one direction of one peer only', () => {
  const x = new EspSadb({ cipher: 'aes-gcm-128', freshExplicitKeys: true }, 'n', { kind: 'vxlan', port: 4789, localAddr: IP(1) });
  const k = (n: number, spi: number): EspExplicitSa => ({ spi, key: n.toString(16).padStart(2, '0').repeat(16), salt: '01020304' });
  assert.throws(() => x.addPeer(0, IP(2), { out: k(1, 0x500), in: k(1, 0x600) }), /the same key in both directions/);
  x.addPeer(0, IP(2), { out: k(1, 0x500), in: k(2, 0x600) });
  assert.throws(() => x.addPeer(1, IP(3), { out: k(1, 0x501), in: k(3, 0x601) }), /a key already used by VTEP 10\.9\.0\.2 \(outbound\)/);
  assert.throws(() => x.addPeer(1, IP(3), { out: k(3, 0x501), in: k(2, 0x601) }), /a key already used by VTEP 10\.9\.0\.2 \(inbound\)/);
  // The same salt with another key is another key: fine.
  x.addPeer(1, IP(3), { out: k(3, 0x501), in: k(4, 0x601) });
});

test('8: printing an SA, its transform or its AEAD (util.inspect, JSON.stringify) shows neither key nor salt', () => {
  const hexKey = '8f3a61c2d94e07b5a1c3e5f7092b4d6f8e1a3c5e7f9b2d4f6a8c0e1f3a5c7e9b';
  const hexSalt = 'c0ffee42';
  for (const cipher of ['chacha20-poly1305', 'aes-gcm-256'] as EspCipher[]) {
    const keying = { cipher, key: Buffer.from(hexKey, 'hex'), salt: Buffer.from(hexSalt, 'hex') };
    const out = new OutboundSa({ spi: 0x1234, keying });
    const inb = new InboundSa({ spi: 0x1235, keying });
    const aead = createAead(cipher, keying.key);
    for (const o of [out, inb, out.crypto, inb.crypto, aead, { sa: out }]) {
      for (const text of [inspect(o, { depth: 10, showHidden: true }), JSON.stringify(o), String(JSON.stringify({ o }))]) {
        for (const secret of [hexKey.slice(0, 12), hexSalt, [...keying.key.subarray(0, 4)].join(', '), [...keying.salt].join(', ')]) {
          assert.ok(!text.toLowerCase().replace(/\s+/g, ' ').includes(secret), `${cipher}: ${text} shows ${secret}`);
        }
      }
    }
    assert.match(inspect(out), /OutboundSa .*"spi":"0x1234".*"keying":"<redacted>"/);
  }
});

test('8: fragmented ESP-in-UDP reassembles (the non-first fragments have no port to recognise them by)', () => {
  const net = { pool: new PacketPool({ count: 128, frameCapacity: 9216 }), clock: new VirtualClock() };
  const [u1, u2] = wire(1, 2);
  const esp = { udpEncap: true };
  const a = node(1, net, [{ port: 't', under: u1, peers: [2], opts: { esp } }], new Endpoint('pod1', net.pool, PMAC(1), 9000));
  const b = node(2, net, [{ port: 't', under: u2, peers: [1], opts: { esp } }], new Endpoint('pod2', net.pool, PMAC(2), 9000));
  introduceEsp(a.br, b.br, 't');
  const big = bigFrame(1, 2, 4000);
  a.pod.send([big]);
  const frags = u1.sent.filter((f) => f[23] === 17 && (((f[20]! << 8) | f[21]!) & 0x3fff) !== 0);
  assert.ok(frags.length >= 3, `fragments on the wire: ${frags.length}`);
  assert.deepEqual(b.pod.take(), [big]);
  assert.equal(drops(b.br.port('t'), DropReason.EspRequired), 0);
  assertBooks(b.br);
});

// ---- in the wild: nodes meeting over the wire ------------------------------------------------------------------

test('announcements over the wire: the first packets wait for them and then go; a forged or replayed one is refused; the books balance', () => {
  const net = { pool: new PacketPool({ count: 128, frameCapacity: 2048 }), clock: new VirtualClock() };
  const [u1, u2] = wire(1, 2);
  const a = node(1, net, [{ port: 't', under: u1, peers: [2] }]);
  const b = node(2, net, [{ port: 't', under: u2, peers: [1] }]);
  a.pod.send([frame(1, 2, 0), frame(1, 2, 1)]);
  assert.equal(b.pod.take().length, 2, 'they waited for the announcements, then went');
  assert.equal(a.br.heldForEsp, 0);
  const hellos = u1.sent.filter((f) => f[23] === 17);
  assert.equal(hellos.length, 2, "a → b: hello, then the answer to b's answer");
  const sa = b.br.tunnel('t').sadb!;
  assert.equal(sa.hellosReceived, 2);
  // A forged hello (one bit) is refused; a replayed one changes nothing.
  const forged = hellos[1]!.slice();
  forged[forged.length - 20] = forged[forged.length - 20]! ^ 1;
  const epochBefore = sa.peers[0]!.inEpoch;
  inject(u1, [forged, hellos[0]!, hellos[1]!], net.pool);
  assert.equal(sa.hellosRefused, 1);
  assert.equal(drops(b.br.port('t'), DropReason.EspControl), 4);
  assert.equal(sa.peers[0]!.inEpoch, epochBefore);
  a.pod.send([frame(1, 2, 2)]);
  assert.equal(b.pod.take().length, 1);
  // No answer: the packets wait `waitNs` (10 s), then are dropped as EspNoSa.
  const [v1] = wire(1, 3);
  const lonely = node(1, net, [{ port: 't', under: v1, peers: [3] }]);
  lonely.pod.send([frame(1, 3, 0)]);
  assert.equal(lonely.br.heldForEsp, 1);
  net.clock.t += 1e9;
  lonely.br.tick();
  assert.equal(lonely.br.heldForEsp, 1, 'still waiting after 1 s (and asked again)');
  net.clock.t += 8.9e9;
  lonely.br.tick();
  assert.equal(lonely.br.heldForEsp, 1, 'still waiting after 9.9 s');
  net.clock.t += 0.2e9;
  lonely.br.tick();
  assert.equal(lonely.br.heldForEsp, 0);
  assert.equal(drops(lonely.br.port('t'), DropReason.EspNoSa), 1);
  for (const s of [a, b, lonely]) assertBooks(s.br);
  assertPoolFull(net.pool);
});

// ---- the property ------------------------------------------------------------------------------------------------

type Op = { t: 'send'; from: 1 | 2; tunnel: number; n: number } | { t: 'restart'; who: 1 | 2; crash: boolean } | { t: 'tick' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record(
      { t: fc.constant('send' as const), from: fc.constantFrom(1 as const, 2 as const), tunnel: fc.nat({ max: 2 }), n: fc.integer({ min: 1, max: 6 }) },
      { noNullPrototype: true },
    ),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('restart' as const), who: fc.constantFrom(1 as const, 2 as const), crash: fc.boolean() }, { noNullPrototype: true }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('tick' as const) }, { noNullPrototype: true }) },
);

/** A file system in memory, for journals that outlive the nodes of one property run (durable at once). */
function memFs(): JournalFs {
  const files = new Map<string, Uint8Array>();
  const open = new Map<number, { path: string; data: Uint8Array[] }>();
  let fd = 3;
  return {
    readFile: (p) => files.get(p)?.slice() ?? null,
    openWrite: (p) => {
      open.set(++fd, { path: p, data: [] });
      return fd;
    },
    openDir: () => ++fd,
    write: (f, d) => {
      open.get(f)?.data.push(d.slice());
    },
    fsync: () => {},
    close: (f) => {
      const o = open.get(f);
      if (o !== undefined) files.set(o.path, Buffer.concat(o.data));
      open.delete(f);
    },
    rename: (a, b) => {
      files.set(b, files.get(a)!);
      files.delete(a);
    },
    unlink: (p) => {
      files.delete(p);
    },
    createExclusive: (p, d) => {
      if (files.has(p)) return false;
      files.set(p, d.slice());
      return true;
    },
  };
}

/** How each node keeps (or not) its derived tunnels' state: no journal, a journal, or a journal and no randomness at all. */
type Keeping = 'none' | 'journal' | 'journal-fixed';

test('property: across restarts (with and without journal, derived and explicit keys), rekeys, two tunnels of one node and peer restarts, no (key, nonce) is sealed twice', () => {
  const explicitA2B = { spi: 0x7001, key: '71'.repeat(32), salt: '07010701' };
  const explicitB2A = { spi: 0x7002, key: '72'.repeat(32), salt: '07020702' };
  let total = 0;
  let restarts = 0;
  fc.assert(
    fc.property(
      fc.array(opArb, { minLength: 1, maxLength: 25 }),
      fc.integer({ min: 1, max: 6 }),
      fc.constantFrom<Keeping>('none', 'journal', 'journal-fixed'),
      fc.nat(),
      (ops, perSa, keeping, seed) => {
        withLog((log) => {
          const net = { pool: new PacketPool({ count: 256, frameCapacity: 2048 }), clock: new VirtualClock() };
          // Three tunnels between nodes 1 and 2: VXLAN and Geneve with derived keys, and a hand-keyed one.
          const wires = [wire(1, 2), wire(1, 2), wire(1, 2)];
          const paths = [1, 2].map((n) => [0, 1, 2].map((t) => `/journal/n${n}-${t}`));
          const fs = memFs();
          let draws = seed;
          const journals: SeqJournal[][] = [[], []];
          const make = (who: 1 | 2, pod?: Endpoint): Side => {
            const w = who - 1;
            const other = 3 - who;
            const mine = journals[w]!;
            mine.length = 0;
            const journal = (t: number): SeqJournal => {
              const j = SeqJournal.open(paths[w]![t]!, { node: `n${who}`, block: 4n, fs, pidAlive: () => false });
              mine.push(j);
              return j;
            };
            const random = keeping === 'journal-fixed' ? undefined : randomFrom(++draws);
            const derived = (t: number): Partial<EspConfig> => ({
              lifetime: { packets: perSa },
              ...(random !== undefined ? { random } : {}),
              ...(keeping !== 'none' ? { journal: journal(t) } : {}),
            });
            return node(
              who,
              net,
              [
                { port: 'vx', under: wires[0]![w]!, peers: [other], opts: { esp: derived(0) } },
                { port: 'gn', under: wires[1]![w]!, peers: [other], opts: { kind: 'geneve', esp: derived(1) } },
                {
                  port: 'hx',
                  under: wires[2]![w]!,
                  peers: [other],
                  opts: {
                    kind: 'vxlan',
                    explicit: { [other]: who === 1 ? { out: explicitA2B, in: explicitB2A } : { out: explicitB2A, in: explicitA2B } },
                    esp: { journal: journal(2), lifetime: {} },
                  },
                },
              ],
              pod,
            );
          };
          const sides: [Side, Side] = [make(1), make(2)];
          for (const op of ops) {
            if (op.t === 'send') {
              const s = sides[op.from - 1]!;
              const port = s.ports[op.tunnel]!;
              // Only the chosen tunnel carries it: the others forget the peer for the moment.
              for (const other of s.ports) if (other !== port && s.br.tunnel(other).findVtep(IP(3 - op.from)) >= 0) s.br.removeVtep(other, IP(3 - op.from));
              if (s.br.tunnel(port).findVtep(IP(3 - op.from)) < 0) {
                s.br.addVtep(port, {
                  ip: IP(3 - op.from),
                  mac: UMAC(3 - op.from),
                  vnis: [7],
                  esp:
                    port === 'hx'
                      ? op.from === 1
                        ? { out: explicitA2B, in: explicitB2A }
                        : { out: explicitB2A, in: explicitA2B }
                      : { node: `n${3 - op.from}` },
                });
              }
              for (let k = 0; k < op.n; k++) s.pod.send([frame(op.from, 3 - op.from, k)]);
            } else if (op.t === 'restart') {
              const w = op.who - 1;
              const s = sides[w]!;
              stop(s);
              // A clean stop closes the journals; a crash leaves their locks (whose process is then gone).
              if (!op.crash) for (const j of journals[w]!) j.close();
              sides[w] = make(op.who, s.pod);
              restarts++;
            } else {
              net.clock.t += 1e9;
              for (const s of sides) s.br.tick();
            }
          }
          for (const s of sides) {
            s.pod.take();
          }
          for (const j of journals.flat()) j.close();
          total += log.seals.length;
          assert.deepEqual(log.repeats(), [], `a (key, nonce) sealed twice (keeping: ${keeping})`);
        });
      },
    ),
    { numRuns: 200 },
  );
  assert.ok(total > 1500 && restarts > 100, `the property saw ${total} seals across ${restarts} restarts`);
});
