import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { rd16, wr16 } from '../../src/wire/bytes.js';
import { pseudoSumV4At, updateChecksum16 } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop.js';
import {
  emitTcp,
  parseTcp,
  TCP_ACK,
  TCP_CWR,
  TCP_ECE,
  TCP_FIN,
  TCP_HEADER_LEN,
  TCP_OPT_MSS,
  TCP_OPT_SACK,
  TCP_OPT_TIMESTAMPS,
  TCP_OPT_WSCALE,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  TCP_URG,
  tcpBufferLen,
  TcpView,
  type TcpOption,
  type TcpRepr,
} from '../../src/wire/tcp.js';
import { dirty, fromHex, guarded } from '../helpers.js';

const IP4 = 20;
const pseudo = (frame: Uint8Array): number => pseudoSumV4At(frame, 12, 16, 6, frame.length - IP4);

interface Golden {
  name: string;
  /** The whole IPv4 packet; the segment starts at byte 20. */
  frame: Uint8Array;
  repr: TcpRepr;
  checksum: number;
  payloadLen: number;
  /** Offset of the MSS value in `frame`, or -1. */
  mssAt: number;
}

const GOLDENS: Golden[] = [
  {
    // A Linux-style SYN.
    // scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=40000, dport=80, seq=0xdeadbeef, ack=0, flags="S", window=64240,
    //   options=[('MSS',1460),('SAckOK',b''),('Timestamp',(123456,0)),('NOP',None),('WScale',7)]))
    name: 'syn with options',
    frame: fromHex(
      '4500003c00010000400666b90a0000010a000002' + '9c400050deadbeef00000000a002faf01c9d0000' + '020405b4' + '0402' + '080a0001e24000000000' + '01' + '030307',
    ),
    repr: {
      srcPort: 40000,
      dstPort: 80,
      seq: 0xdeadbeef,
      ack: 0,
      flags: TCP_SYN,
      window: 64240,
      urgent: 0,
      options: [
        { kind: 'mss', value: 1460 },
        { kind: 'sackPermitted' },
        { kind: 'timestamps', tsval: 123456, tsecr: 0 },
        { kind: 'nop' },
        { kind: 'wscale', shift: 7 },
      ],
    },
    checksum: 0x1c9d,
    payloadLen: 0,
    mssAt: IP4 + 22,
  },
  {
    // scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=80, dport=40000, seq=1000, ack=0xdeadbef0, flags="PA", window=502,
    //   options=[('NOP',None),('NOP',None),('SAck',(1000,2000,3000,4000))])/b"hello")
    name: 'sack with payload',
    frame: fromHex(
      '4500004100010000400666b40a0000010a000002' + '00509c40000003e8deadbef0a01801f69aae0000' + '0101' + '0512000003e8000007d000000bb800000fa0' + '68656c6c6f',
    ),
    repr: {
      srcPort: 80,
      dstPort: 40000,
      seq: 1000,
      ack: 0xdeadbef0,
      flags: TCP_PSH | TCP_ACK,
      window: 502,
      urgent: 0,
      options: [
        { kind: 'nop' },
        { kind: 'nop' },
        {
          kind: 'sack',
          blocks: [
            [1000, 2000],
            [3000, 4000],
          ],
        },
      ],
    },
    checksum: 0x9aae,
    payloadLen: 5,
    mssAt: -1,
  },
  {
    // scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=1234, dport=23, seq=5, ack=6, flags="UAEC", window=1024, urgptr=3)/b"abc")
    name: 'urgent with ECN flags',
    frame: fromHex('4500002b00010000400666ca0a0000010a000002' + '04d20017000000050000000650f00400cd950003' + '616263'),
    repr: { srcPort: 1234, dstPort: 23, seq: 5, ack: 6, flags: TCP_URG | TCP_ACK | TCP_ECE | TCP_CWR, window: 1024, urgent: 3, options: [] },
    checksum: 0xcd95,
    payloadLen: 3,
    mssAt: -1,
  },
  {
    // An unknown option kind survives; scapy pads with End of Option List.
    // scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=1, dport=2, seq=3, ack=4, flags="A", window=5,
    //   options=[(253, b'\x01\x02\x03'), ('NOP',None), ('MSS', 536)]))
    name: 'unknown option',
    frame: fromHex('4500003400010000400666c10a0000010a000002' + '0001000200000003000000048010000566920000' + 'fd05010203' + '01' + '02040218' + '0000'),
    repr: {
      srcPort: 1,
      dstPort: 2,
      seq: 3,
      ack: 4,
      flags: TCP_ACK,
      window: 5,
      urgent: 0,
      options: [{ kind: 'unknown', type: 253, data: fromHex('010203') }, { kind: 'nop' }, { kind: 'mss', value: 536 }],
    },
    checksum: 0x6692,
    payloadLen: 0,
    mssAt: IP4 + 28,
  },
  {
    // scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=1, dport=2, seq=3, ack=4, flags="A", window=5, options=[('WScale',2), ('EOL',None)]))
    name: 'explicit end of option list',
    frame: fromHex('4500002c00010000400666c90a0000010a000002' + '0001000200000003000000046010000586bc0000' + '030302' + '00'),
    repr: { srcPort: 1, dstPort: 2, seq: 3, ack: 4, flags: TCP_ACK, window: 5, urgent: 0, options: [{ kind: 'wscale', shift: 2 }] },
    checksum: 0x86bc,
    payloadLen: 0,
    mssAt: -1,
  },
  {
    // scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=80, dport=40000, seq=0xffffffff, ack=0x80000000, flags="RA", window=0))
    name: 'rst with high sequence numbers',
    frame: fromHex('4500002800010000400666cd0a0000010a000002' + '00509c40ffffffff80000000501400007f3d0000'),
    repr: { srcPort: 80, dstPort: 40000, seq: 0xffffffff, ack: 0x80000000, flags: TCP_RST | TCP_ACK, window: 0, urgent: 0, options: [] },
    checksum: 0x7f3d,
    payloadLen: 0,
    mssAt: -1,
  },
  {
    // All nine flags plus the three reserved bits.
    // scapy: raw(IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=7, dport=9, seq=1, ack=2, reserved=7, flags=0x1ff, window=3, urgptr=4))
    name: 'all twelve flag bits',
    frame: fromHex('4500002800010000400666cd0a0000010a000002' + '0007000900000001000000025fff00038bc90004'),
    repr: { srcPort: 7, dstPort: 9, seq: 1, ack: 2, flags: 0xfff, window: 3, urgent: 4, options: [] },
    checksum: 0x8bc9,
    payloadLen: 0,
    mssAt: -1,
  },
];

for (const g of GOLDENS) {
  const segLen = g.frame.length - IP4;
  const hl = segLen - g.payloadLen;

  test(`tcp ${g.name}: deconstruct`, () => {
    assert.equal(g.frame[9], 6);
    const v = new TcpView(g.frame, IP4);
    assert.equal(v.check(segLen), null);
    assert.equal(v.srcPort, g.repr.srcPort);
    assert.equal(v.dstPort, g.repr.dstPort);
    assert.equal(v.seqNumber, g.repr.seq);
    assert.equal(v.ackNumber, g.repr.ack);
    assert.equal(v.headerLen, hl);
    assert.equal(v.dataOffset, hl / 4);
    assert.equal(v.flags, g.repr.flags);
    assert.equal(v.window, g.repr.window);
    assert.equal(v.checksum, g.checksum);
    assert.equal(v.urgent, g.repr.urgent);
    assert.equal(v.optionsOffset, IP4 + TCP_HEADER_LEN);
    assert.equal(v.optionsLen, hl - TCP_HEADER_LEN);
    assert.equal(v.payloadOffset, IP4 + hl);
    assert.equal(v.payloadLen(segLen), g.payloadLen);
    assert.equal(v.mssOptionOffset(), g.mssAt);
    assert.ok(v.verifyChecksum(pseudo(g.frame), segLen));
  });

  test(`tcp ${g.name}: construct`, () => {
    const b = dirty(g.frame.length);
    b.set(g.frame.subarray(0, IP4));
    // Options and payload are copied in as they are, as UDP's test does with its payload.
    b.set(g.frame.subarray(IP4 + TCP_HEADER_LEN), IP4 + TCP_HEADER_LEN);
    const v = new TcpView(b, IP4);
    v.srcPort = g.repr.srcPort;
    v.dstPort = g.repr.dstPort;
    v.seqNumber = g.repr.seq;
    v.ackNumber = g.repr.ack;
    v.headerLen = hl;
    v.flags = g.repr.flags;
    v.window = g.repr.window;
    v.urgent = g.repr.urgent;
    v.fillChecksum(pseudo(b), segLen);
    assert.deepEqual(b, g.frame);
  });

  test(`tcp ${g.name}: parse`, () => {
    assert.deepEqual(parseTcp(new TcpView(g.frame, IP4), segLen), g.repr);
  });

  test(`tcp ${g.name}: emit`, () => {
    assert.equal(tcpBufferLen(g.repr), hl);
    const b = dirty(g.frame.length + 3);
    b.set(g.frame.subarray(0, IP4));
    b.set(g.frame.subarray(IP4 + hl), IP4 + hl);
    emitTcp(g.repr, b, IP4, g.payloadLen, pseudo(g.frame));
    assert.deepEqual(b.subarray(0, g.frame.length), g.frame);
    assert.deepEqual(b.subarray(g.frame.length), dirty(3));
  });
}

test('tcp: flag constants are the RFC 9293 bits', () => {
  assert.deepEqual([TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR], [1, 2, 4, 8, 16, 32, 64, 128]);
  const b = GOLDENS[6]!.frame.slice();
  const v = new TcpView(b, IP4);
  v.flags = TCP_SYN;
  assert.equal(v.dataOffset, 5, 'setting flags keeps the data offset');
  v.dataOffset = 6;
  assert.equal(v.flags, TCP_SYN, 'setting the data offset keeps the flags');
});

test("tcp: clamping the MSS in place with an incremental checksum update gives scapy's bytes", () => {
  // scapy: the SYN above with ('MSS',1400)
  const clamped = fromHex(
    '4500003c00010000400666b90a0000010a000002' + '9c400050deadbeef00000000a002faf01cd90000' + '02040578' + '0402' + '080a0001e24000000000' + '01' + '030307',
  );
  const b = GOLDENS[0]!.frame.slice();
  const v = new TcpView(b, IP4);
  const at = v.mssOptionOffset();
  const old = rd16(b, at);
  assert.equal(old, 1460);
  wr16(b, at, 1400);
  v.checksum = updateChecksum16(v.checksum, old, 1400);
  assert.deepEqual(b, clamped);
  assert.ok(v.verifyChecksum(pseudo(b), b.length - IP4));
});

test('tcp: findOption walks past NOPs and stops at End of Option List', () => {
  const syn = new TcpView(GOLDENS[0]!.frame, IP4);
  assert.equal(syn.findOption(TCP_OPT_TIMESTAMPS), IP4 + 26);
  assert.equal(syn.findOption(TCP_OPT_WSCALE), IP4 + 37);
  assert.equal(syn.findOption(TCP_OPT_SACK), -1);
  // A MSS-looking option after End of Option List is padding, not an option.
  const b = GOLDENS[4]!.frame.slice();
  const v = new TcpView(b, IP4);
  assert.equal(v.findOption(TCP_OPT_WSCALE), IP4 + 20);
  b[IP4 + 23] = TCP_OPT_MSS;
  assert.equal(v.findOption(TCP_OPT_MSS), -1);
});

test('tcp: truncated, bad data offsets and malformed options are drop reasons', () => {
  const syn = GOLDENS[0]!.frame;
  const segLen = syn.length - IP4;
  const at = (b: Uint8Array, len = segLen): TcpRepr | DropReason => parseTcp(new TcpView(b, IP4), len);
  assert.equal(at(syn, 19), DropReason.TcpTruncated);
  assert.equal(at(syn, 39), DropReason.TcpBadDataOffset);
  const mod = (i: number, ...xs: number[]): Uint8Array => {
    const b = syn.slice();
    b.set(xs, IP4 + i);
    return b;
  };
  assert.equal(at(mod(12, 0x40)), DropReason.TcpBadDataOffset);
  assert.equal(at(mod(12, 0x00)), DropReason.TcpBadDataOffset);
  assert.equal(at(mod(12, 0xf0)), DropReason.TcpBadDataOffset);
  assert.equal(at(mod(21, 1)), DropReason.TcpBadOption, 'MSS length 1');
  assert.equal(at(mod(21, 0)), DropReason.TcpBadOption, 'MSS length 0');
  assert.equal(at(mod(27, 20)), DropReason.TcpBadOption, 'timestamps running past the header');
  assert.equal(at(mod(37, 1, 1, TCP_OPT_SACK)), DropReason.TcpBadOption, 'a kind in the last byte has no length byte');
  // Garbage after End of Option List is padding.
  assert.notEqual(typeof at(mod(36, 0)), 'number');
});

test('tcp: a known option with the wrong length is kept as unknown and is not the MSS', () => {
  // The SYN's SACK-permitted (len 2) and timestamps (len 10) regrouped: MSS with length 6.
  const b = GOLDENS[0]!.frame.slice();
  b[IP4 + 21] = 6;
  const v = new TcpView(b, IP4);
  assert.equal(v.mssOptionOffset(), -1);
  const r = parseTcp(v, b.length - IP4);
  assert.ok(typeof r !== 'number');
  assert.deepEqual(r.options[0], { kind: 'unknown', type: TCP_OPT_MSS, data: fromHex('05b40402') });
  const out = dirty(b.length);
  out.set(b.subarray(0, IP4));
  emitTcp(r, out, IP4, 0, pseudo(b));
  assert.deepEqual(out.subarray(IP4 + TCP_HEADER_LEN), b.subarray(IP4 + TCP_HEADER_LEN));
});

test('tcp: options that do not fit in 40 bytes cannot be emitted', () => {
  const options: TcpOption[] = Array.from({ length: 11 }, () => ({ kind: 'mss', value: 1 }));
  assert.throws(() => emitTcp({ ...GOLDENS[5]!.repr, options }, new Uint8Array(80), 0, 0, 0), RangeError);
});

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.nat({ max: 0xffff_ffff });
const opts = { noNullPrototype: true } as const;
const KNOWN = [0, 1, 2, 3, 4, 5, 8];
const tcpOption: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.record({ kind: fc.constant('mss' as const), value: u16 }, opts),
  fc.record({ kind: fc.constant('wscale' as const), shift: u8 }, opts),
  fc.record({ kind: fc.constant('sackPermitted' as const) }, opts),
  fc.record({ kind: fc.constant('sack' as const), blocks: fc.array(fc.tuple(u32, u32), { maxLength: 4 }) }, opts),
  fc.record({ kind: fc.constant('timestamps' as const), tsval: u32, tsecr: u32 }, opts),
  fc.record({ kind: fc.constant('nop' as const) }, opts),
  fc.record({ kind: fc.constant('unknown' as const), type: u8.filter((t) => !KNOWN.includes(t)), data: fc.uint8Array({ maxLength: 8 }) }, opts),
);
const tcpRepr: fc.Arbitrary<TcpRepr> = fc
  .record(
    {
      srcPort: u16,
      dstPort: u16,
      seq: u32,
      ack: u32,
      flags: fc.integer({ min: 0, max: 0xfff }),
      window: u16,
      urgent: u16,
      options: fc.array(tcpOption, { maxLength: 8 }),
    },
    opts,
  )
  .filter((r) => tcpBufferLen(r) <= 60);

test('tcp: emit then parse is the identity', () => {
  fc.assert(
    fc.property(tcpRepr, fc.uint8Array({ maxLength: 32 }), fc.nat(8), u32, (repr, payload, off, pseudoSum) => {
      const hl = tcpBufferLen(repr);
      const b = dirty(off + hl + payload.length + 4);
      b.set(payload, off + hl);
      emitTcp(repr, b, off, payload.length, pseudoSum);
      const v = new TcpView(b, off);
      const segLen = hl + payload.length;
      assert.ok(v.verifyChecksum(pseudoSum, segLen));
      assert.deepEqual(parseTcp(v, segLen), repr);
      assert.deepEqual(b.subarray(v.payloadOffset, off + segLen), payload);
    }),
  );
});

function checkNeverThrows(frame: Uint8Array): void {
  const v = new TcpView(frame, 0);
  const r = parseTcp(v, frame.length);
  if (typeof r === 'number') {
    assert.ok([DropReason.TcpTruncated, DropReason.TcpBadDataOffset, DropReason.TcpBadOption].includes(r));
    return;
  }
  assert.ok(v.payloadLen(frame.length) >= 0);
  v.verifyChecksum(0, frame.length);
  const m = v.mssOptionOffset();
  if (m >= 0) rd16(frame, m);
  for (const k of KNOWN) v.findOption(k);
}

test('tcp: arbitrary and truncated bytes never throw and never read outside the frame', () => {
  // Half the time the data offset is forced to something plausible so the option walk is reached.
  const seg = fc.tuple(fc.uint8Array({ maxLength: 80 }), fc.integer({ min: 5, max: 15 }), fc.boolean()).map(([b, doff, force]) => {
    if (force && b.length > 12) b[12] = (doff << 4) | (b[12]! & 0x0f);
    return b;
  });
  fc.assert(
    fc.property(seg, fc.nat(80), (bytes, cut) => {
      checkNeverThrows(guarded(bytes.subarray(0, Math.min(cut, bytes.length))));
    }),
  );
});

test('tcp: mutated golden bytes never throw and never read outside the frame', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...GOLDENS.map((g) => g.frame.subarray(IP4))),
      fc.array(fc.tuple(fc.nat(45), u8), { maxLength: 4 }),
      fc.nat(46),
      (golden, muts, cut) => {
        const b = golden.slice(0, cut);
        for (const [i, x] of muts) if (i < b.length) b[i] = x;
        checkNeverThrows(guarded(b));
      },
    ),
  );
});
