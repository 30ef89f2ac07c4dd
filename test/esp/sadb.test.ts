/**
 * The SA database on a tunnel: nonces ((key, salt, sequence number) triples) never repeat across rekeys
 * or across a restart that resumes from the journal, and the receiver takes every packet exactly once.
 * (lifecycle.test.ts has the issue-17 lifecycle: restarts without a journal, peer restarts, two tunnels,
 * spoofed sources, lost epochs, the SPI table.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint } from '../../src/datapath/device.js';
import { setAeadObserver } from '../../src/esp/aead.js';
import { SeqJournal } from '../../src/esp/journal.js';
import { ClusterSecret } from '../../src/esp/keys.js';
import type { EspLifetime } from '../../src/esp/sa.js';
import { PacketPool } from '../../src/packet/buf.js';
import { compose } from '../../src/wire/stack.js';
import { eth, ip4, udp, zeros } from '../peers/catalogue.js';
import { introduceEsp, tapPair, VirtualClock, type TapEnd } from '../datapath/topology.js';

const SECRET = new ClusterSecret(new Uint8Array(40).map((_, i) => 255 - i));
const dir = mkdtempSync(join(tmpdir(), 'seine-sadb-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Side {
  br: Bridge;
  pod: Endpoint;
}

/** Randomness from a counter: each call another incarnation, reproducibly. */
function counter(seed: number): (n: number) => Uint8Array {
  let c = seed;
  return (n) => Uint8Array.from({ length: n }, (_, i) => (i === 0 ? c++ : seed * 7 + i) & 0xff);
}

/** Node 1 → node 2 over VXLAN with ESP; node 1 may keep a journal. Introduced to each other unless `inBand`. */
function nodes(
  pool: PacketPool,
  clock: VirtualClock,
  u: [TapEnd, TapEnd],
  lifetime: EspLifetime | undefined,
  journal?: SeqJournal,
  inBand = false,
): [Side, Side] {
  const side = (i: 1 | 2): Side => {
    const br = new Bridge({ name: `n${i}`, pool, clock });
    br.addTunnel('tun0', u[i - 1]!, {
      kind: 'vxlan',
      mode: 'l2',
      localIp: `10.9.0.${i}`,
      esp: {
        cipher: 'chacha20-poly1305',
        secret: SECRET,
        random: counter(i * 100),
        ...(lifetime !== undefined ? { lifetime } : {}),
        ...(i === 1 && journal !== undefined ? { journal } : {}),
      },
    });
    br.addVtep('tun0', { ip: `10.9.0.${3 - i}`, mac: 0x0e00000000 + 3 - i, vnis: [7] });
    br.mapVni('tun0', 7, 0);
    const pod = new Endpoint(`pod${i}`, pool, 0x0200000000 + i);
    br.addPort('pod', pod);
    return { br, pod };
  };
  const a = side(1);
  const b = side(2);
  if (!inBand) introduceEsp(a.br, b.br);
  return [a, b];
}

const frameK = (k: number): Uint8Array =>
  compose([eth(0x0800, [], 0x0200000001, 0x0200000002), ip4('10.0.0.1', '10.0.0.2', 17), udp(1, 2), zeros(20 + (k % 7))]);

/** The ESP packets among outer frames (IP protocol 50; announcements are UDP). */
const espOnly = (sent: readonly Uint8Array[]): Uint8Array[] => sent.filter((f) => f[23] === 50);

/** (SPI, sequence number) of every ESP packet node 1 put on the wire. */
function spiSeq(sent: readonly Uint8Array[]): string[] {
  return espOnly(sent).map((f) => `${Buffer.from(f.subarray(34, 38)).toString('hex')}:${Buffer.from(f.subarray(38, 42)).toString('hex')}`);
}

/** Records every (key, nonce) sealed while `f` runs (the AEAD's test hook). */
function sealed<T>(f: () => T): { result: T; pairs: string[]; keys: Set<string> } {
  const pairs: string[] = [];
  const keys = new Set<string>();
  const was = setAeadObserver((op, key, nonce) => {
    if (op !== 'seal') return;
    keys.add(key);
    pairs.push(`${key}:${Buffer.from(nonce).toString('hex')}`);
  });
  try {
    return { result: f(), pairs, keys };
  } finally {
    setAeadObserver(was);
  }
}

test('esp sadb: across random lifetimes and rekeys, no (SPI, sequence) repeats, every epoch has its own key, and all arrive', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 60 }), (perSa, count) => {
      const pool = new PacketPool({ count: 128, frameCapacity: 2048 });
      const clock = new VirtualClock();
      const u = tapPair('a', 'b', 0x0e0000000001, 0x0e0000000002);
      const {
        result: [a, b],
        keys,
        pairs,
      } = sealed(() => {
        const both = nodes(pool, clock, u, { packets: perSa });
        for (let k = 0; k < count; k++) both[0].pod.send([frameK(k)]);
        return both;
      });
      assert.equal(b.pod.take().length, count);
      const wire = spiSeq(u[0].sent);
      assert.equal(new Set(wire).size, wire.length, 'no (SPI, sequence) twice');
      assert.equal(new Set(pairs).size, pairs.length, 'no (key, nonce) twice');
      const epochs = a.br.tunnel('tun0').sadb!.peers[0]!.rekeys + 1;
      assert.equal(keys.size, epochs, 'one key per epoch');
      assert.equal(epochs, Math.ceil(count / perSa));
      assert.equal(pool.available, pool.size);
    }),
    { numRuns: 40 },
  );
});

test('esp sadb: a node restarted from its journal resumes past every sequence number it used; the receiver accepts it all once', () => {
  const path = join(dir, 'n1.journal');
  const pool = new PacketPool({ count: 128, frameCapacity: 2048 });
  const clock = new VirtualClock();
  const u = tapPair('a', 'b', 0x0e0000000001, 0x0e0000000002);
  // A small reservation block, so the runs cross several reservations.
  let j = SeqJournal.open(path, { node: '10.9.0.1', block: 5n });
  const epoch = j.epoch('10.9.0.2');
  const both = nodes(pool, clock, u, undefined, j);
  let a = both[0];
  const b = both[1];
  const sentBefore: Uint8Array[] = [];
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < 12; k++) a.pod.send([frameK(k)]);
    // Crash: node 1 is rebuilt from the journal file as it is on disk (its lock is a dead process's);
    // node 2 keeps running. They meet again over the wire: node 1 is a new incarnation.
    sentBefore.push(...u[0].sent.splice(0));
    a.br.removePort('tun0');
    j = SeqJournal.open(path, { node: '10.9.0.1', block: 5n, pidAlive: () => false });
    assert.equal(j.epoch('10.9.0.2'), epoch, 'the epoch survives the restart');
    const br = new Bridge({ name: 'n1', pool, clock });
    br.addTunnel('tun0', u[0], {
      kind: 'vxlan',
      mode: 'l2',
      localIp: '10.9.0.1',
      esp: { cipher: 'chacha20-poly1305', secret: SECRET, journal: j, random: counter(1000 + round) },
    });
    br.addVtep('tun0', { ip: '10.9.0.2', mac: 0x0e0000000002, vnis: [7] });
    br.mapVni('tun0', 7, 0);
    br.addPort('pod', a.pod);
    a = { br, pod: a.pod };
  }
  const pairs = spiSeq(sentBefore);
  assert.equal(pairs.length, 36);
  assert.equal(new Set(pairs).size, 36, 'no nonce twice across restarts');
  const seqs = espOnly(sentBefore).map((f) => ((f[38]! << 24) | (f[39]! << 16) | (f[40]! << 8) | f[41]!) >>> 0);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `sequence numbers only grow (${seqs[i - 1]} then ${seqs[i]})`);
  assert.equal(b.pod.take().length, 36, 'the receiver took every packet, none as a replay');
  j.close();
});

test('esp sadb (property): a peer removed and added back at random moments, across rekeys, never repeats an (SPI, sequence) and the receiver takes every packet sent while it was there', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 9 }), fc.array(fc.integer({ min: 0, max: 12 }), { minLength: 1, maxLength: 5 }), (perSa, bursts) => {
      const pool = new PacketPool({ count: 128, frameCapacity: 2048 });
      const clock = new VirtualClock();
      const u = tapPair('a', 'b', 0x0e0000000001, 0x0e0000000002);
      const [a, b] = nodes(pool, clock, u, { packets: perSa });
      let sent = 0;
      for (const n of bursts) {
        for (let k = 0; k < n; k++) a.pod.send([frameK(sent++)]);
        // Node 1 forgets node 2 and learns it again (a reload that changed its entry): new index, old SAs.
        a.br.removeVtep('tun0', '10.9.0.2');
        a.br.addVtep('tun0', { ip: '10.9.0.2', mac: 0x0e00000002, vnis: [7], esp: {} });
        // Node 2 answers, so node 1's inbound SAs are exercised across the change too.
        b.pod.send([frameK(1)]);
      }
      assert.equal(b.pod.take().length, sent);
      assert.equal(a.pod.take().length, bursts.length);
      const pairs = spiSeq(u[0].sent);
      assert.equal(new Set(pairs).size, pairs.length, 'no (SPI, sequence) twice');
      assert.equal(espOnly(u[0].sent).length, u[0].sent.length, 'nothing but ESP on the wire: the peer added back needs no announcement');
      for (const s of [a, b]) assert.deepEqual(s.br.port('tun0').counters.dropsByReason(), {});
      assert.equal(pool.available, pool.size);
    }),
    { numRuns: 40 },
  );
});

test('esp sadb: an explicitly keyed peer added back keeps its SAs; with other inbound keys it gets a new inbound SA', () => {
  const pool = new PacketPool({ count: 16, frameCapacity: 2048 });
  const br = new Bridge({ name: 'n', pool, clock: new VirtualClock() });
  br.addTunnel('tun0', new Endpoint('u', pool, 1), {
    kind: 'vxlan',
    mode: 'routed',
    localIp: '10.9.0.1',
    esp: { cipher: 'aes-gcm-128', freshExplicitKeys: true },
  });
  const sa = (spi: number, k: string) => ({ spi, key: k.repeat(16), salt: '01020304' });
  br.addVtep('tun0', { ip: '10.9.0.2', mac: 2, esp: { out: sa(0x500, '33'), in: sa(0x600, '44') } });
  const sadb = br.tunnel('tun0').sadb!;
  const first = sadb.peers[0]!;
  br.removeVtep('tun0', '10.9.0.2');
  assert.equal(sadb.find(0x600, 0), null, 'its inbound SPI is unknown while it is gone');
  br.addVtep('tun0', { ip: '10.9.0.2', mac: 2, esp: { out: sa(0x500, '33'), in: sa(0x600, '44') } });
  assert.equal(sadb.peers[1]!.out, first.out);
  assert.equal(sadb.peers[1]!.inCur, first.inCur);
  assert.equal(sadb.find(0x600, 1), first.inCur);
  br.removeVtep('tun0', '10.9.0.2');
  br.addVtep('tun0', { ip: '10.9.0.2', mac: 2, esp: { out: sa(0x500, '33'), in: sa(0x600, '55') } });
  assert.equal(sadb.peers[2]!.out, first.out, 'the outbound SA goes on: its nonces must not repeat');
  assert.notEqual(sadb.peers[2]!.inCur, first.inCur, 'another inbound key: a new SA');
  assert.equal(sadb.spiTableSize, 1, 'the table holds the live SA only');
});
