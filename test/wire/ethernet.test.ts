import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { macFromString, macToString } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import {
  emitEthernet,
  ethernetBufferLen,
  ethPayload,
  EthernetView,
  parseEthernet,
  VlanView,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_QINQ,
  ETHERTYPE_VLAN,
  MAX_VLAN_TAGS,
  type EthernetRepr,
} from '../../src/wire/ethernet.js';
import { ethernetReprArb } from '../arbitraries.js';
import { dirty, fromHex, guarded } from '../helpers.js';

// scapy: raw(Ether(dst="01:00:5e:00:00:fb", src="02:42:ac:11:00:02", type=0x0800))
const PLAIN = fromHex('01005e0000fb0242ac1100020800');
const PLAIN_REPR: EthernetRepr = { dst: 0x01005e0000fb, src: 0x0242ac110002, vlans: [], etherType: ETHERTYPE_IPV4 };
// scapy: raw(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01", type=0x88a8)/Dot1AD(prio=5, id=1, vlan=100)/Dot1Q(prio=3, vlan=200, type=0x86dd))
const QINQ = fromHex('ffffffffffff02000000000188a8b064810060c886dd');
const QINQ_REPR: EthernetRepr = {
  dst: 0xffffffffffff,
  src: 0x020000000001,
  etherType: ETHERTYPE_IPV6,
  vlans: [
    { tpid: ETHERTYPE_QINQ, pcp: 5, dei: true, vid: 100 },
    { tpid: ETHERTYPE_VLAN, pcp: 3, dei: false, vid: 200 },
  ],
};

test('ethernet: deconstruct', () => {
  const v = new EthernetView(QINQ, 0);
  assert.equal(v.check(QINQ.length), null);
  assert.equal(v.dst, 0xffffffffffff);
  assert.equal(v.src, 0x020000000001);
  assert.equal(v.etherType, ETHERTYPE_QINQ);
  const s = new VlanView(QINQ, 14);
  assert.deepEqual([s.pcp, s.dei, s.vid, s.etherType], [5, true, 100, ETHERTYPE_VLAN]);
  const c = new VlanView(QINQ, 18);
  assert.deepEqual([c.pcp, c.dei, c.vid, c.etherType], [3, false, 200, ETHERTYPE_IPV6]);
});

test('ethernet: construct', () => {
  const b = dirty(PLAIN.length);
  const v = new EthernetView(b, 0);
  v.dst = 0x01005e0000fb;
  v.src = 0x0242ac110002;
  v.etherType = ETHERTYPE_IPV4;
  assert.deepEqual(b, PLAIN);
});

test('ethernet: parse', () => {
  assert.deepEqual(parseEthernet(new EthernetView(PLAIN, 0), PLAIN.length), PLAIN_REPR);
  assert.deepEqual(parseEthernet(new EthernetView(QINQ, 0), QINQ.length), QINQ_REPR);
  const out = new Uint16Array(1);
  assert.equal(ethPayload(QINQ, 0, QINQ.length, out), 22);
  assert.equal(out[0], ETHERTYPE_IPV6);
});

test('ethernet: emit', () => {
  for (const [repr, golden] of [
    [PLAIN_REPR, PLAIN],
    [QINQ_REPR, QINQ],
  ] as const) {
    const b = dirty(ethernetBufferLen(repr));
    emitEthernet(repr, b, 0);
    assert.deepEqual(b, golden);
  }
});

test('ethernet: truncated frames and tag stacks are drop reasons', () => {
  assert.equal(parseEthernet(new EthernetView(QINQ, 0), 13), DropReason.EthTruncated);
  assert.equal(parseEthernet(new EthernetView(QINQ, 0), 20), DropReason.VlanTruncated);
  const deep = new Uint8Array(14 + 4 * (MAX_VLAN_TAGS + 1)).fill(0x81);
  for (let i = 12; i < deep.length; i += 4) {
    deep[i] = 0x81;
    deep[i + 1] = 0x00;
  }
  assert.equal(parseEthernet(new EthernetView(deep, 0), deep.length), DropReason.VlanTooManyTags);
  assert.equal(ethPayload(deep, 0, deep.length, new Uint16Array(1)), -DropReason.VlanTooManyTags);
});

test('ethernet: emit then parse is the identity', () => {
  fc.assert(
    fc.property(ethernetReprArb, (repr) => {
      const b = dirty(ethernetBufferLen(repr));
      emitEthernet(repr, b, 0);
      assert.deepEqual(parseEthernet(new EthernetView(b, 0), b.length), repr);
    }),
  );
});

test('ethernet: arbitrary bytes never throw or read outside the frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
      const g = guarded(bytes);
      parseEthernet(new EthernetView(g, 0), g.length);
      ethPayload(g, 0, g.length, new Uint16Array(1));
    }),
  );
});

test('MAC text: macFromString reads what macToString writes, either separator and case, and refuses anything else (as the pattern it replaced)', () => {
  const pattern = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i;
  const byPattern = (s: string): number | null => {
    const m = pattern.exec(s);
    if (m === null) return null;
    let v = 0;
    for (let i = 1; i <= 6; i++) v = v * 256 + parseInt(m[i]!, 16);
    return v;
  };
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.boolean(), fc.boolean(), (mac, dash, upper) => {
      let s = macToString(mac);
      if (dash) s = s.replaceAll(':', '-');
      if (upper) s = s.toUpperCase();
      assert.equal(macFromString(s), mac);
    }),
  );
  // One character of a MAC's text replaced: about half stay valid (another digit, the other separator).
  const mutated = fc.tuple(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.nat(16), fc.constantFrom(...'09afAFgG:-. /`@')).map(([m, i, c]) => {
    const t = macToString(m);
    return t.slice(0, i) + c + t.slice(i + 1);
  });
  fc.assert(
    fc.property(fc.oneof(mutated, fc.stringMatching(/^[0-9a-fA-F:-]{15,19}$/)), (s) => {
      assert.equal(macFromString(s), byPattern(s), JSON.stringify(s));
    }),
    { numRuns: 2000 },
  );
});
