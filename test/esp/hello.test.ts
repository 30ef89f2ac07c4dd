/**
 * The announcements one message at a time, between two SA databases and no wire: who may send when. A
 * node takes its peer's incarnation from the first fresh hello, and sends only once a fresh hello of the
 * peer says it has taken this node's (`HELLO_TAKEN`) — not when it has merely taken the peer's itself.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeHello, encodeHello, HELLO_ANSWER, HELLO_REKEY, HELLO_TAKEN, HELLO_LEN } from '../../src/esp/hello.js';
import { ClusterSecret } from '../../src/esp/keys.js';
import { ESP_WAIT, EspSadb } from '../../src/esp/sadb.js';
import { randomBytesFrom } from '../helpers.js';

const SECRET = new ClusterSecret(new Uint8Array(32).map((_, i) => (i * 13 + 5) & 0xff));

/** Node `i`'s database towards node `peer`; another `life`, another incarnation. */
function db(i: number, peer: number, life = 0): EspSadb {
  const d = new EspSadb({ cipher: 'aes-gcm-128', secret: SECRET, random: randomBytesFrom(i * 104729 + life * 7919 + 3) }, `n${i}`, {
    kind: 'vxlan',
    port: 4789,
    localAddr: `10.9.0.${i}`,
  });
  d.addPeer(0, `10.9.0.${peer}`, { node: `n${peer}` });
  return d;
}

/** Hands `from`'s queued hellos to `to`; returns the flags of each. */
function deliver(from: EspSadb, to: EspSadb, now = 0): number[] {
  const flags: number[] = [];
  for (const { msg } of from.takeOutbox()) {
    flags.push(msg[4]!);
    to.receiveHello(0, msg, 0, msg.length, now);
  }
  return flags;
}

test('hello: the taken flag survives encode and decode; an unknown flag bit is refused', () => {
  const key = new Uint8Array(32).fill(7);
  const h = { flags: HELLO_ANSWER | HELLO_REKEY | HELLO_TAKEN, incarnation: new Uint8Array(16).fill(1), echo: new Uint8Array(16).fill(2), epoch: 9 };
  const b = encodeHello(h, key);
  assert.equal(b.length, HELLO_LEN);
  assert.deepEqual(decodeHello(b, 0, b.length, key), h);
  // 0x08 is no flag: a hello carrying it (correctly tagged) is refused.
  const odd = encodeHello({ ...h, flags: 0 }, key);
  odd[4] = 0x08;
  const fixed = encodeHello({ ...h, flags: 0 }, key);
  assert.equal(decodeHello(odd, 0, odd.length, key), null);
  assert.notEqual(decodeHello(fixed, 0, fixed.length, key), null);
});

test('hello: the node that takes first does not send until the peer says it took it too (four messages); then both send', () => {
  const a = db(1, 2);
  const b = db(2, 1);
  // Both announced themselves on addPeer; A's first hello gets there, B's is lost (B started later, say).
  b.takeOutbox();
  assert.deepEqual(deliver(a, b), [HELLO_ANSWER], '1: A → B, who does not know whether it is fresh');
  assert.deepEqual(deliver(b, a), [HELLO_ANSWER], '2: B → A echoes A: fresh for A, A takes B');
  assert.notEqual(a.peers[0]!.out, null, 'A has its outbound SA');
  assert.equal(a.peers[0]!.ready, false, '...but B does not hold the inbound side yet');
  assert.equal(a.outbound(0, 0), ESP_WAIT, 'so A waits');
  assert.deepEqual(deliver(a, b), [HELLO_TAKEN | HELLO_ANSWER], '3: A → B: taken, answer me');
  assert.equal(b.peers[0]!.ready, true, 'B took A, and A holds B: B sends');
  assert.notEqual(b.outbound(0, 0), ESP_WAIT);
  assert.deepEqual(deliver(b, a), [HELLO_TAKEN], '4: B → A: taken');
  assert.equal(a.peers[0]!.ready, true);
  assert.deepEqual(a.readied, [0], 'A lets its waiting packets go');
  assert.notEqual(a.outbound(0, 0), ESP_WAIT);
  assert.deepEqual(deliver(a, b), [], 'nothing more to say');
});

test('hello: a taken hello that echoes another life of this node (a replay from before a restart) lets nothing be sent', () => {
  const a = db(1, 2);
  const b = db(2, 1);
  b.takeOutbox();
  deliver(a, b);
  deliver(b, a); // A takes B, and waits for B's word
  a.takeOutbox();
  // An earlier life of node 1 met node 2 in full: node 2's last hello to it said taken.
  const before = db(1, 2, 1);
  const b2 = db(2, 1, 1);
  b2.takeOutbox();
  deliver(before, b2);
  deliver(b2, before);
  deliver(before, b2);
  const taken = b2.takeOutbox();
  assert.equal(taken.length, 1);
  assert.equal(taken[0]!.msg[4], HELLO_TAKEN);
  assert.equal(b2.peers[0]!.ready, true);
  // Replayed to this life of node 1: it echoes the earlier life, so it is not fresh and confirms nothing.
  a.receiveHello(0, taken[0]!.msg, 0, taken[0]!.msg.length, 0);
  assert.equal(a.peers[0]!.ready, false);
  assert.equal(a.outbound(0, 0), ESP_WAIT);
  // The real exchange does (node 2 had not taken node 1 yet: its third message was never delivered).
  for (let round = 0; round < 4 && !a.peers[0]!.ready; round++) {
    deliver(a, b);
    deliver(b, a);
  }
  assert.equal(a.peers[0]!.ready, true);
});
