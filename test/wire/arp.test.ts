import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ARP_HEADER_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ArpView, arpBufferLen, emitArp, parseArp, type ArpRepr } from '../../src/wire/arp.js';
import { DropReason } from '../../src/wire/drop.js';
import { dirty, fromHex, guarded } from '../helpers.js';

interface Golden {
  name: string;
  bytes: Uint8Array;
  repr: ArpRepr;
}

const GOLDENS: Golden[] = [
  {
    // scapy: raw(ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="10.0.0.1", hwdst="00:00:00:00:00:00", pdst="10.0.0.2"))
    name: 'request',
    bytes: fromHex('0001080006040001' + '020000000001' + '0a000001' + '000000000000' + '0a000002'),
    repr: { operation: ARP_OP_REQUEST, senderMac: 0x020000000001, senderIp: 0x0a000001, targetMac: 0, targetIp: 0x0a000002 },
  },
  {
    // scapy: raw(ARP(op=2, hwsrc="02:00:00:00:00:02", psrc="10.0.0.2", hwdst="02:00:00:00:00:01", pdst="10.0.0.1"))
    name: 'reply',
    bytes: fromHex('0001080006040002' + '020000000002' + '0a000002' + '020000000001' + '0a000001'),
    repr: { operation: ARP_OP_REPLY, senderMac: 0x020000000002, senderIp: 0x0a000002, targetMac: 0x020000000001, targetIp: 0x0a000001 },
  },
  {
    // An operation this switch does not know (9, InARP request) survives.
    // scapy: raw(ARP(op=9, hwsrc="de:ad:be:ef:00:01", psrc="192.168.1.1", hwdst="ff:ff:ff:ff:ff:ff", pdst="192.168.1.254"))
    name: 'unknown operation',
    bytes: fromHex('0001080006040009' + 'deadbeef0001' + 'c0a80101' + 'ffffffffffff' + 'c0a801fe'),
    repr: { operation: 9, senderMac: 0xdeadbeef0001, senderIp: 0xc0a80101, targetMac: 0xffffffffffff, targetIp: 0xc0a801fe },
  },
];

for (const g of GOLDENS) {
  test(`arp ${g.name}: deconstruct`, () => {
    const v = new ArpView(g.bytes, 0);
    assert.equal(v.check(g.bytes.length), null);
    assert.equal(v.htype, 1);
    assert.equal(v.ptype, 0x0800);
    assert.equal(v.hlen, 6);
    assert.equal(v.plen, 4);
    assert.equal(v.operation, g.repr.operation);
    assert.equal(v.senderMac, g.repr.senderMac);
    assert.equal(v.senderIp, g.repr.senderIp);
    assert.equal(v.targetMac, g.repr.targetMac);
    assert.equal(v.targetIp, g.repr.targetIp);
  });

  test(`arp ${g.name}: construct`, () => {
    const b = dirty(ARP_HEADER_LEN);
    const v = new ArpView(b, 0);
    v.htype = 1;
    v.ptype = 0x0800;
    v.hlen = 6;
    v.plen = 4;
    v.operation = g.repr.operation;
    v.senderMac = g.repr.senderMac;
    v.senderIp = g.repr.senderIp;
    v.targetMac = g.repr.targetMac;
    v.targetIp = g.repr.targetIp;
    assert.deepEqual(b, g.bytes);
  });

  test(`arp ${g.name}: parse`, () => {
    assert.deepEqual(parseArp(new ArpView(g.bytes, 0), g.bytes.length), g.repr);
  });

  test(`arp ${g.name}: emit`, () => {
    assert.equal(arpBufferLen(g.repr), ARP_HEADER_LEN);
    const b = dirty(ARP_HEADER_LEN + 4);
    emitArp(g.repr, b, 2);
    assert.deepEqual(b.subarray(2, 2 + ARP_HEADER_LEN), g.bytes);
    assert.deepEqual(b.subarray(0, 2), dirty(2));
    assert.deepEqual(b.subarray(2 + ARP_HEADER_LEN), dirty(2));
  });
}

test('arp: a frame padded to the Ethernet minimum parses', () => {
  const b = new Uint8Array(46);
  b.set(GOLDENS[0]!.bytes);
  assert.deepEqual(parseArp(new ArpView(b, 0), b.length), GOLDENS[0]!.repr);
});

test('arp: truncated is ArpTruncated', () => {
  const g = GOLDENS[0]!.bytes;
  for (const n of [0, 7, 8, 27]) assert.equal(new ArpView(g, 0).check(n), DropReason.ArpTruncated, `avail ${n}`);
});

test('arp: anything but Ethernet/IPv4 is ArpUnsupportedHardware', () => {
  // scapy: raw(ARP(ptype=0x86dd, plen=16, op=1)) — hlen 6, plen 16; the fixed part is enough to say so.
  const v6 = fromHex('000186dd0610000102fc00000001fd00000000000000000000000000000200000000000000000000000000000000000000000000');
  assert.equal(new ArpView(v6, 0).check(v6.length), DropReason.ArpUnsupportedHardware);
  assert.equal(parseArp(new ArpView(v6, 0), 8), DropReason.ArpUnsupportedHardware);
  for (const [at, val] of [
    [1, 6],
    [2, 0x86],
    [4, 8],
    [5, 6],
  ] as const) {
    const b = GOLDENS[0]!.bytes.slice();
    b[at] = val;
    assert.equal(new ArpView(b, 0).check(b.length), DropReason.ArpUnsupportedHardware, `byte ${at} = ${val}`);
  }
});

const arpRepr: fc.Arbitrary<ArpRepr> = fc.record(
  {
    operation: fc.integer({ min: 0, max: 0xffff }),
    senderMac: fc.integer({ min: 0, max: 0xffff_ffff_ffff }),
    senderIp: fc.nat({ max: 0xffff_ffff }),
    targetMac: fc.integer({ min: 0, max: 0xffff_ffff_ffff }),
    targetIp: fc.nat({ max: 0xffff_ffff }),
  },
  { noNullPrototype: true },
);

test('arp: emit then parse is the identity', () => {
  fc.assert(
    fc.property(arpRepr, fc.nat(8), (repr, off) => {
      const b = dirty(off + ARP_HEADER_LEN);
      emitArp(repr, b, off);
      assert.deepEqual(parseArp(new ArpView(b, off), ARP_HEADER_LEN), repr);
    }),
  );
});

function checkNeverThrows(frame: Uint8Array): void {
  const r = parseArp(new ArpView(frame, 0), frame.length);
  if (typeof r === 'number') assert.ok(DropReason[r] !== undefined);
  else assert.equal(typeof r.senderMac, 'number');
}

test('arp: arbitrary and truncated bytes never throw and never read outside the frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 40 }), fc.nat(40), (bytes, cut) => {
      checkNeverThrows(guarded(bytes.subarray(0, Math.min(cut, bytes.length))));
    }),
  );
});

test('arp: mutated golden bytes never throw and never read outside the frame', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...GOLDENS.map((g) => g.bytes)),
      fc.array(fc.tuple(fc.nat(27), fc.nat(255)), { maxLength: 4 }),
      fc.nat(28),
      (golden, muts, cut) => {
        const b = golden.slice(0, cut);
        for (const [i, x] of muts) if (i < b.length) b[i] = x;
        checkNeverThrows(guarded(b));
      },
    ),
  );
});
