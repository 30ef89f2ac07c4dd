import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  buildFragNeeded,
  buildPacketTooBig,
  ICMPV4_ERROR_MAX_LEN,
  ICMPV6_ERROR_MAX_LEN,
  TooBigLimiter,
  type TooBigSourceV4,
  type TooBigSourceV6,
} from '../../src/mtu/icmp.js';
import { HEADROOM, PacketBuf, TAILROOM } from '../../src/packet/buf.js';
import { ipv4FromString, ipv6FromString, rd16, rd32, rdMac } from '../../src/wire/bytes.js';
import { finish, onesSum, pseudoSumV6At } from '../../src/wire/checksum.js';
import { DropReason, dropReasonName } from '../../src/wire/drop.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { fromHex, hex } from '../helpers.js';

const ETH = 14;
const v4 = (s: string): number => ipv4FromString(s)!;
const v6 = (s: string): Uint8Array => ipv6FromString(s)!;

const POD_MAC = 0x02000000000a;
const GW_MAC = 0x0200000000aa;
const FROM4: TooBigSourceV4 = { mac: GW_MAC, ipv4: v4('10.244.1.1') };
const FROM6: TooBigSourceV6 = { mac: GW_MAC, ipv6: v6('fd00:10:244:1::1') };

/** A buffer holding `frame` at HEADROOM. */
function buf(frame: Uint8Array, capacity = frame.length): PacketBuf {
  const p = new PacketBuf(new Uint8Array(HEADROOM + capacity + TAILROOM));
  assert.ok(p.load(frame));
  return p;
}

/** An output buffer full of 0xa5, so a field the builder forgot shows in a byte comparison. */
function dirtyOut(capacity = 2048): PacketBuf {
  const p = new PacketBuf(new Uint8Array(HEADROOM + capacity + TAILROOM).fill(0xa5));
  p.reset();
  return p;
}

const reason = (r: number): string => (r < 0 ? dropReasonName(-r as DropReason) : `length ${r}`);

// ---- goldens (scapy) ----------------------------------------------------------------------------------

// scapy: Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:aa")/IP(src="10.244.1.10", dst="10.244.2.20", id=0x4242, flags="DF", ttl=63)
//   /UDP(sport=40000, dport=8080)/(b"x"*60)
const ORIG4 =
  '0200000000aa02000000000a080045000058424240003f11e04d0af4010a0af402149c401f9000440c72787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878';
// scapy: Ether(dst="02:00:00:00:00:0a", src="02:00:00:00:00:aa")/IP(src="10.244.1.1", dst="10.244.1.10", tos=0xc0, id=0x4242, flags=0, ttl=64)
//   /ICMP(type=3, code=4, nexthopmtu=1450)/raw(orig[IP])
const REPLY4 =
  '02000000000a0200000000aa080045c000744242000040011f950af401010af4010a030410ad000005aa45000058424240003f11e04d0af4010a0af402149c401f9000440c72787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878';
// scapy: Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:aa")/IPv6(src="fd00:10:244:1::a", dst="fd00:10:244:2::14", hlim=63)
//   /IPv6ExtHdrDestOpt(options=[PadN(optdata=b'\x00'*4)])/UDP(sport=40000, dport=8080)/(b"y"*50)
const ORIG6 =
  '0200000000aa02000000000a86dd6000000000423c3ffd00001002440001000000000000000afd00001002440002000000000000001411000104000000009c401f90003a68027979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979';
// scapy: Ether(dst="02:00:00:00:00:0a", src="02:00:00:00:00:aa")/IPv6(src="fd00:10:244:1::1", dst="fd00:10:244:1::a", hlim=64)
//   /ICMPv6PacketTooBig(mtu=1400)/raw(orig[IPv6])
const REPLY6 =
  '02000000000a0200000000aa86dd6000000000723a40fd000010024400010000000000000001fd00001002440001000000000000000a02004aea000005786000000000423c3ffd00001002440001000000000000000afd00001002440002000000000000001411000104000000009c401f90003a68027979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979797979';

test("golden: fragmentation needed for a small UDP datagram is scapy's frame, the whole datagram quoted", () => {
  const orig = buf(fromHex(ORIG4));
  const out = dirtyOut();
  const n = buildFragNeeded(orig, orig.start + ETH, 1450, FROM4, out);
  assert.equal(n, REPLY4.length / 2);
  assert.equal(hex(out.bytes()), REPLY4);
  assert.deepEqual([out.l2, out.l3, out.l4], [out.start, out.start + 14, out.start + 34]);
  assert.equal(hex(orig.bytes()), ORIG4, 'the original is not touched');
});

test("golden: Packet Too Big for a UDP packet behind a destination options header is scapy's frame", () => {
  const orig = buf(fromHex(ORIG6));
  const out = dirtyOut();
  const n = buildPacketTooBig(orig, orig.start + ETH, 1400, FROM6, out);
  assert.equal(n, REPLY6.length / 2);
  assert.equal(hex(out.bytes()), REPLY6);
  assert.deepEqual([out.l2, out.l3, out.l4], [out.start, out.start + 14, out.start + 54]);
  assert.equal(hex(orig.bytes()), ORIG6);
});

test('golden: built in place (out = orig), wherever the original sits in its buffer', () => {
  for (const shift of [-30, 0, 17, 200]) {
    for (const [o, r, build] of [
      [ORIG4, REPLY4, (p: PacketBuf) => buildFragNeeded(p, p.start + ETH, 1450, FROM4, p)],
      [ORIG6, REPLY6, (p: PacketBuf) => buildPacketTooBig(p, p.start + ETH, 1400, FROM6, p)],
    ] as const) {
      const f = fromHex(o);
      const p = new PacketBuf(new Uint8Array(HEADROOM + 2048 + TAILROOM).fill(0xa5));
      p.start = p.end = HEADROOM + shift;
      p.data.set(f, p.start);
      p.end += f.length;
      assert.equal(build(p), r.length / 2, `shift ${shift}`);
      assert.equal(hex(p.bytes()), r, `shift ${shift}`);
    }
  }
});

test('golden: no source address configured → the original destination is the source (Linux bridged tunnels)', () => {
  const out = dirtyOut();
  const orig = buf(fromHex(ORIG4));
  assert.ok(buildFragNeeded(orig, orig.start + ETH, 1450, { mac: GW_MAC, ipv4: 0 }, out) > 0);
  assert.equal(rd32(out.data, out.l3 + 12), v4('10.244.2.20'));
  assert.equal(finish(onesSum(out.data, out.l3, 20)), 0);
  const orig6 = buf(fromHex(ORIG6));
  assert.ok(buildPacketTooBig(orig6, orig6.start + ETH, 1400, { mac: GW_MAC, ipv6: null }, out) > 0);
  assert.equal(hex(out.data, out.l3 + 8, 16), hex(v6('fd00:10:244:2::14')));
  assert.equal(icmpv6Residual(out), 0);
});

// ---- properties ---------------------------------------------------------------------------------------

/** A unicast IPv4 address a pod could have (first octet 1–223, not 127). */
const unicast4 = fc
  .tuple(
    fc.integer({ min: 1, max: 223 }).filter((a) => a !== 127),
    fc.integer({ min: 0, max: 0xffffff }),
  )
  .map(([a, r]) => ((a << 24) | r) >>> 0);
/** A global or ULA unicast IPv6 address. */
const unicast6 = fc.tuple(fc.constantFrom(0x20, 0xfd, 0x26), fc.uint8Array({ minLength: 15, maxLength: 15 })).map(([a, r]) => Uint8Array.from([a, ...r]));
const macUnicast = fc.integer({ min: 0, max: 0xffff_ffff_ffff }).map((m) => m - (Math.floor(m / 0x100_0000_0000) & 1) * 0x100_0000_0000);

interface Orig4 {
  src: number;
  dst: number;
  proto: number;
  optWords: number;
  ident: number;
  len: number;
  pad: number;
  srcMac: number;
  mf: boolean;
}
const orig4Arb: fc.Arbitrary<Orig4> = fc.record(
  {
    src: unicast4,
    dst: unicast4,
    proto: fc.constantFrom(1, 6, 17, 47, 50),
    optWords: fc.integer({ min: 0, max: 10 }),
    ident: fc.integer({ min: 0, max: 0xffff }),
    len: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer({ min: 0, max: 1600 })),
    pad: fc.integer({ min: 0, max: 20 }),
    srcMac: macUnicast,
    mf: fc.boolean(),
  },
  { noNullPrototype: true },
);

function frame4(o: Orig4): Uint8Array {
  const payload = Uint8Array.from({ length: o.len }, (_, i) => (i * 7 + 3) & 0xff);
  if (o.proto === 1 && o.len > 0) payload[0] = 8; // echo request: informational
  const f = compose([
    { kind: 'eth', repr: { dst: GW_MAC, src: o.srcMac, vlans: [], etherType: 0x0800 } },
    {
      kind: 'ipv4',
      repr: {
        src: o.src,
        dst: o.dst,
        protocol: o.proto,
        ttl: 63,
        dscp: 10,
        ecn: 2,
        ident: o.ident,
        dontFrag: !o.mf,
        moreFrags: o.mf,
        fragOffset: 0,
        options: new Uint8Array(4 * o.optWords).fill(1),
        payloadLen: 0,
      },
    },
    { kind: 'data', bytes: payload },
  ]);
  const padded = new Uint8Array(f.length + o.pad).fill(0xee);
  padded.set(f);
  return padded;
}

test('property: fragmentation needed — addresses, fields, checksums by recomputation, quote within 576 bytes', () => {
  fc.assert(
    fc.property(orig4Arb, fc.integer({ min: -5, max: 70000 }), fc.oneof(fc.constant(0), unicast4), macUnicast, (o, mtu, fromIp, fromMac) => {
      if (o.proto === 1 && o.len === 0) return; // no ICMP type to judge by: covered by the never-reply test
      const f = frame4(o);
      const orig = buf(f);
      const out = dirtyOut();
      const n = buildFragNeeded(orig, orig.start + ETH, mtu, { mac: fromMac, ipv4: fromIp }, out);
      const hl = 20 + 4 * o.optWords;
      const total = hl + o.len;
      const quote = Math.min(total, ICMPV4_ERROR_MAX_LEN - 28);
      assert.equal(n, 14 + 28 + quote, reason(n));
      assert.equal(out.length, n);
      const d = out.data;
      const e = out.start;
      const ip = out.l3;
      const ic = out.l4;
      assert.equal(rdMac(d, e), o.srcMac);
      assert.equal(rdMac(d, e + 6), fromMac);
      assert.equal(rd16(d, e + 12), 0x0800);
      assert.equal(d[ip], 0x45);
      assert.equal(d[ip + 1], 0xc0, 'precedence 6 (RFC 1812 §4.3.2.5)');
      assert.equal(rd16(d, ip + 2), 28 + quote);
      assert.ok(rd16(d, ip + 2) <= ICMPV4_ERROR_MAX_LEN);
      assert.equal(rd16(d, ip + 4), o.ident);
      assert.equal(rd16(d, ip + 6), 0, 'DF, MF and offset clear');
      assert.equal(d[ip + 8], 64);
      assert.equal(d[ip + 9], 1);
      assert.equal(rd32(d, ip + 12), fromIp === 0 ? o.dst : fromIp);
      assert.equal(rd32(d, ip + 16), o.src);
      assert.equal(finish(onesSum(d, ip, 20)), 0, 'IP header checksum');
      assert.equal(d[ic], 3);
      assert.equal(d[ic + 1], 4);
      assert.equal(rd16(d, ic + 4), 0, 'unused');
      assert.equal(rd16(d, ic + 6), Math.min(0xffff, Math.max(68, mtu)));
      assert.equal(finish(onesSum(d, ic, 8 + quote)), 0, 'ICMP checksum over the whole message');
      assert.equal(hex(d, ic + 8, quote), hex(f, ETH, quote), 'the quote is the start of the original datagram');
      assert.ok(quote >= Math.min(total, hl + 8), 'header + 8 bytes at least (RFC 792)');
    }),
    { numRuns: 1000 },
  );
});

interface Orig6 {
  src: Uint8Array;
  dst: Uint8Array;
  exts: number[];
  proto: number;
  len: number;
  pad: number;
  srcMac: number;
}
const orig6Arb: fc.Arbitrary<Orig6> = fc.record(
  {
    src: unicast6,
    dst: fc.oneof(unicast6, fc.constant(v6('ff0e::1'))),
    exts: fc.array(fc.constantFrom(0, 60, 43, 44), { maxLength: 3 }),
    proto: fc.constantFrom(6, 17, 58),
    len: fc.oneof(fc.integer({ min: 8, max: 24 }), fc.integer({ min: 8, max: 1600 })),
    pad: fc.integer({ min: 0, max: 20 }),
    srcMac: macUnicast,
  },
  { noNullPrototype: true },
);

function extLayer(t: number, next: number): Layer {
  if (t === 44) return { kind: 'ipv6frag', repr: { nextHeader: next, fragOffset: 0, moreFrags: true, ident: 99 } };
  // Routing type 4 with segments left 0 (the final destination stays the IPv6 destination).
  if (t === 43) return { kind: 'ipv6ext', repr: { headerType: 43, nextHeader: next, data: Uint8Array.from([4, 0, 0, 0, 0, 0, ...v6('fd00::5')]) } };
  return { kind: 'ipv6ext', repr: { headerType: t, nextHeader: next, data: Uint8Array.from([1, 4, 0, 0, 0, 0]) } };
}

function frame6(o: Orig6): Uint8Array {
  const payload = Uint8Array.from({ length: o.len }, (_, i) => (i * 5 + 1) & 0xff);
  if (o.proto === 58) payload[0] = 128; // echo request: informational
  const f = compose([
    { kind: 'eth', repr: { dst: GW_MAC, src: o.srcMac, vlans: [], etherType: 0x86dd } },
    { kind: 'ipv6', repr: { src: o.src, dst: o.dst, nextHeader: o.exts[0] ?? o.proto, hopLimit: 63, trafficClass: 0x28, flowLabel: 0x12345, payloadLen: 0 } },
    ...o.exts.map((t, i) => extLayer(t, o.exts[i + 1] ?? o.proto)),
    { kind: 'data', bytes: payload },
  ]);
  const padded = new Uint8Array(f.length + o.pad).fill(0xee);
  padded.set(f);
  return padded;
}

function icmpv6Residual(out: PacketBuf): number {
  const d = out.data;
  const len = rd16(d, out.l3 + 4);
  return finish(onesSum(d, out.l4, len, pseudoSumV6At(d, out.l3 + 8, out.l3 + 24, 58, len)));
}

test('property: Packet Too Big — addresses, fields, MTU ≥ 1280, checksum by recomputation, whole packet within 1280 bytes', () => {
  fc.assert(
    fc.property(orig6Arb, fc.integer({ min: -5, max: 2 ** 32 + 5 }), fc.option(unicast6, { nil: null }), macUnicast, (o, mtu, fromIp, fromMac) => {
      const f = frame6(o);
      const orig = buf(f);
      const out = dirtyOut();
      const n = buildPacketTooBig(orig, orig.start + ETH, mtu, { mac: fromMac, ipv6: fromIp }, out);
      if (fromIp === null && o.dst[0] === 0xff) {
        assert.equal(n, -DropReason.PacketTooBigV6, 'a multicast destination cannot be the source (RFC 4443 §2.2)');
        return;
      }
      const total = 40 + o.exts.reduce((n, t) => n + (t === 43 ? 24 : 8), 0) + o.len;
      const quote = Math.min(total, ICMPV6_ERROR_MAX_LEN - 48);
      assert.equal(n, 14 + 48 + quote, reason(n));
      const d = out.data;
      const e = out.start;
      const ip = out.l3;
      const ic = out.l4;
      assert.equal(rdMac(d, e), o.srcMac);
      assert.equal(rdMac(d, e + 6), fromMac);
      assert.equal(rd16(d, e + 12), 0x86dd);
      assert.equal(rd32(d, ip), 0x60000000, 'version 6, traffic class and flow label 0');
      assert.equal(rd16(d, ip + 4), 8 + quote);
      assert.ok(40 + rd16(d, ip + 4) <= ICMPV6_ERROR_MAX_LEN);
      assert.equal(d[ip + 6], 58);
      assert.equal(d[ip + 7], 64);
      assert.equal(hex(d, ip + 8, 16), hex(fromIp ?? o.dst));
      assert.equal(hex(d, ip + 24, 16), hex(o.src));
      assert.equal(d[ic], 2);
      assert.equal(d[ic + 1], 0);
      assert.equal(rd32(d, ic + 4), Math.min(2 ** 32 - 1, Math.max(1280, mtu)));
      assert.equal(icmpv6Residual(out), 0, 'ICMPv6 checksum with the pseudo-header');
      assert.equal(hex(d, ic + 8, quote), hex(f, ETH, quote));
    }),
    { numRuns: 1000 },
  );
});

// ---- never-reply rules --------------------------------------------------------------------------------

function build4(f: Uint8Array, from = FROM4): number {
  const orig = buf(f);
  return buildFragNeeded(orig, orig.start + ETH, 1400, from, dirtyOut());
}

function base4(): Orig4 {
  return { src: v4('10.244.1.10'), dst: v4('10.244.2.20'), proto: 17, optWords: 0, ident: 1, len: 100, pad: 0, srcMac: POD_MAC, mf: false };
}

/** The frame of `base4` changed by `edit`; the unchanged frame is always answered (the control). */
function edited4(edit: (f: Uint8Array) => void, o: Partial<Orig4> = {}): Uint8Array {
  const f = frame4({ ...base4(), ...o });
  assert.ok(build4(f) > 0, 'control is answered');
  edit(f);
  return f;
}

/** Rewrites the IPv4 header checksum after an edit. */
function fixIpSum(f: Uint8Array): void {
  const hl = (f[ETH]! & 15) << 2;
  f[ETH + 10] = f[ETH + 11] = 0;
  const c = finish(onesSum(f, ETH, hl));
  f[ETH + 10] = c >> 8;
  f[ETH + 11] = c & 0xff;
}

test('never answered (IPv4): an ICMP error; informational ICMP is answered', () => {
  for (const type of [3, 4, 5, 11, 12]) {
    const f = edited4(() => {}, { proto: 1 });
    f[ETH + 20] = type;
    assert.equal(build4(f), -DropReason.FragNeededDf, `type ${type}`);
  }
  for (const type of [0, 8, 13, 14, 17, 42]) {
    const f = frame4({ ...base4(), proto: 1 });
    f[ETH + 20] = type;
    assert.ok(build4(f) > 0, `type ${type}`);
  }
  // An ICMP datagram without even a type byte cannot be told apart from an error.
  assert.equal(build4(frame4({ ...base4(), proto: 1, len: 0 })), -DropReason.FragNeededDf);
});

test('never answered (IPv4): a fragment other than the first; a first fragment is', () => {
  assert.ok(build4(frame4({ ...base4(), mf: true })) > 0, 'first fragment (MF, offset 0)');
  for (const ff of [0x2001, 0x0001, 0x1fff, 0x4010]) {
    const f = edited4((g) => {
      g[ETH + 6] = ff >> 8;
      g[ETH + 7] = ff & 0xff;
      fixIpSum(g);
    });
    assert.equal(build4(f), -DropReason.FragNeededDf, `flags/offset ${ff.toString(16)}`);
  }
});

test('never answered (IPv4): a source that is not one host; a destination that is broadcast or multicast', () => {
  for (const s of ['0.0.0.0', '0.1.2.3', '127.0.0.1', '127.255.0.9', '224.0.0.1', '239.1.2.3', '240.0.0.1', '255.255.255.255']) {
    assert.equal(build4(frame4({ ...base4(), src: v4(s) })), -DropReason.FragNeededDf, `src ${s}`);
  }
  for (const s of ['1.0.0.1', '126.255.255.255', '128.0.0.1', '223.255.255.254']) {
    assert.ok(build4(frame4({ ...base4(), src: v4(s) })) > 0, `src ${s}`);
  }
  for (const d of ['255.255.255.255', '224.0.0.5', '239.255.255.250']) {
    assert.equal(build4(frame4({ ...base4(), dst: v4(d) })), -DropReason.FragNeededDf, `dst ${d}`);
  }
  // Sent as a link-layer broadcast or multicast (RFC 1812 §4.3.2.7), or from a group MAC.
  assert.equal(build4(edited4((f) => f.fill(0xff, 0, 6))), -DropReason.FragNeededDf);
  assert.equal(
    build4(
      edited4((f) => {
        f[0] = 0x01;
        f[1] = 0x00;
        f[2] = 0x5e;
      }),
    ),
    -DropReason.FragNeededDf,
  );
  assert.equal(
    build4(
      edited4((f) => {
        f[6] = f[6]! | 1;
      }),
    ),
    -DropReason.FragNeededDf,
  );
  // With no address of our own, the original destination must be usable as the source.
  assert.equal(build4(frame4({ ...base4(), dst: v4('127.0.0.1') }), { mac: GW_MAC, ipv4: 0 }), -DropReason.FragNeededDf);
  assert.ok(build4(frame4({ ...base4(), dst: v4('127.0.0.1') })) > 0, '…but with one, the destination does not matter');
});

test('malformed IPv4 originals give their parse reason', () => {
  assert.equal(
    build4(
      edited4((f) => {
        f[ETH] = 0x65;
      }),
    ),
    -DropReason.Ipv4BadVersion,
  );
  assert.equal(
    build4(
      edited4((f) => {
        f[ETH] = 0x44;
      }),
    ),
    -DropReason.Ipv4BadHeaderLen,
  );
  assert.equal(
    build4(
      edited4((f) => {
        f[ETH + 10] = f[ETH + 10]! ^ 1;
      }),
    ),
    -DropReason.Ipv4BadChecksum,
  );
  const f = frame4(base4());
  const orig = buf(f);
  orig.end -= 1; // the datagram runs past the window
  assert.equal(buildFragNeeded(orig, orig.start + ETH, 1400, FROM4, dirtyOut()), -DropReason.Ipv4BadTotalLen);
  orig.end = orig.start + ETH + 19;
  assert.equal(buildFragNeeded(orig, orig.start + ETH, 1400, FROM4, dirtyOut()), -DropReason.Ipv4Truncated);
  for (const l3 of [orig.start, orig.start + 13, -1, Number.NaN, 1e9]) {
    assert.equal(buildFragNeeded(buf(f), l3, 1400, FROM4, dirtyOut()), -DropReason.EthTruncated, `l3 ${l3}`);
  }
});

function build6(f: Uint8Array, from = FROM6): number {
  const orig = buf(f);
  return buildPacketTooBig(orig, orig.start + ETH, 1400, from, dirtyOut());
}

function base6(): Orig6 {
  return { src: v6('fd00:10:244:1::a'), dst: v6('fd00:10:244:2::14'), exts: [], proto: 17, len: 100, pad: 0, srcMac: POD_MAC };
}

test('never answered (IPv6): an ICMPv6 error or a Redirect, behind extension headers too; informational messages are', () => {
  for (const exts of [[], [60], [0, 43, 44]]) {
    const at = ETH + 40 + exts.reduce((n, t) => n + (t === 43 ? 24 : 8), 0);
    for (const type of [1, 2, 3, 4, 100, 127, 137]) {
      const f = frame6({ ...base6(), exts, proto: 58 });
      f[at] = type;
      assert.equal(build6(f), -DropReason.PacketTooBigV6, `type ${type} behind ${exts.join(',')}`);
    }
    for (const type of [128, 129, 135, 136, 200]) {
      const f = frame6({ ...base6(), exts, proto: 58 });
      f[at] = type;
      assert.ok(build6(f) > 0, `type ${type} behind ${exts.join(',')}`);
    }
  }
  // ICMPv6 with no type byte.
  assert.equal(build6(frame6({ ...base6(), proto: 58, len: 0 })), -DropReason.PacketTooBigV6);
});

test('never answered (IPv6): a later fragment; a first fragment is', () => {
  assert.ok(build6(frame6({ ...base6(), exts: [60, 44] })) > 0);
  const f = frame6({ ...base6(), exts: [60, 44] });
  f[ETH + 48 + 3] = 8; // offset 8
  assert.equal(build6(f), -DropReason.PacketTooBigV6);
});

test('never answered (IPv6): a source that is ::, ::1 or multicast, or a group source MAC', () => {
  for (const s of ['::', '::1', 'ff02::1', 'ff0e::1234']) {
    assert.equal(build6(frame6({ ...base6(), src: v6(s) })), -DropReason.PacketTooBigV6, `src ${s}`);
  }
  for (const s of ['::2', 'fe80::1', '2001:db8::1']) assert.ok(build6(frame6({ ...base6(), src: v6(s) })) > 0, `src ${s}`);
  const f = frame6(base6());
  f[6] = f[6]! | 1;
  assert.equal(build6(f), -DropReason.PacketTooBigV6);
});

test('answered (IPv6): a multicast destination, also sent as link-layer multicast (RFC 4443 §2.4(e.3)) — from our own address only', () => {
  const f = frame6({ ...base6(), dst: v6('ff0e::101') });
  f.set([0x33, 0x33, 0, 0, 1, 1], 0);
  assert.ok(build6(f) > 0);
  assert.equal(build6(f, { mac: GW_MAC, ipv6: null }), -DropReason.PacketTooBigV6);
});

test('Packet Too Big: the MTU field is never below 1280 (RFC 8201 §4)', () => {
  for (const [mtu, want] of [
    [0, 1280],
    [576, 1280],
    [1279, 1280],
    [1280, 1280],
    [1400, 1400],
    [9000, 9000],
    [65536, 65536],
  ]) {
    const orig = buf(frame6(base6()));
    const out = dirtyOut();
    assert.ok(buildPacketTooBig(orig, orig.start + ETH, mtu!, FROM6, out) > 0);
    assert.equal(rd32(out.data, out.l4 + 4), want, `mtu ${mtu}`);
  }
});

test('malformed IPv6 originals give their parse reason', () => {
  const f = frame6({ ...base6(), exts: [0] });
  const orig = buf(f);
  orig.end -= 1;
  assert.equal(buildPacketTooBig(orig, orig.start + ETH, 1400, FROM6, dirtyOut()), -DropReason.Ipv6BadPayloadLen);
  const g = frame6({ ...base6(), exts: [0] });
  g[ETH + 40 + 1] = 200; // hop-by-hop header longer than the packet
  assert.equal(build6(g), -DropReason.Ipv6ExtTruncated);
  const h = frame6(base6());
  h[ETH] = 0x40;
  assert.equal(build6(h), -DropReason.Ipv6BadVersion);
});

test('quote lengths at the limits: 576 and 1280 exactly, never the Ethernet padding', () => {
  // Exactly the largest quote, one byte more, and a short datagram with padding behind it.
  for (const [len, want] of [
    [528, 548],
    [529, 548],
    [2000, 548],
    [10, 30],
  ]) {
    const orig = buf(frame4({ ...base4(), len: len!, pad: 30 }));
    const out = dirtyOut();
    const n = buildFragNeeded(orig, orig.start + ETH, 1400, FROM4, out);
    assert.equal(n, 14 + 28 + want!, `len ${len}`);
    assert.equal(rd16(out.data, out.l3 + 2), 28 + want!);
  }
  for (const [len, want] of [
    [1192, 1232],
    [1193, 1232],
    [5000, 1232],
    [8, 48],
  ]) {
    const orig = buf(frame6({ ...base6(), len: len!, pad: 30 }));
    const out = dirtyOut(8000);
    const n = buildPacketTooBig(orig, orig.start + ETH, 1400, FROM6, out);
    assert.equal(n, 14 + 48 + want!, `len ${len}`);
    assert.equal(40 + rd16(out.data, out.l3 + 4), Math.min(1280, 48 + want!));
  }
});

test('a small output buffer shortens the quote down to header + 8 bytes, then refuses', () => {
  const f = frame4({ ...base4(), len: 500 });
  for (const [cap, want] of [
    [14 + 28 + 28, 14 + 28 + 28],
    [14 + 28 + 100, 14 + 28 + 100],
    [14 + 28 + 27, -DropReason.PoolExhausted],
  ]) {
    const out = new PacketBuf(new Uint8Array(HEADROOM + cap!));
    const orig = buf(f);
    const n = buildFragNeeded(orig, orig.start + ETH, 1400, FROM4, out);
    assert.equal(n, want, `capacity ${cap}`);
    if (n > 0) assert.equal(finish(onesSum(out.data, out.l4, n - 34)), 0);
  }
  const g = frame6({ ...base6(), len: 500 });
  for (const [cap, want] of [
    [14 + 48 + 48, 14 + 48 + 48],
    [14 + 48 + 47, -DropReason.PoolExhausted],
  ]) {
    const out = new PacketBuf(new Uint8Array(HEADROOM + cap!));
    const orig = buf(g);
    const n = buildPacketTooBig(orig, orig.start + ETH, 1400, FROM6, out);
    assert.equal(n, want, `capacity ${cap}`);
    if (n > 0) assert.equal(icmpv6Residual(out), 0);
  }
});

test('property: garbage never throws; the result is a frame in out or a known drop reason', () => {
  const known = new Set(Object.values(DropReason).filter((v) => typeof v === 'number'));
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 200 }),
      fc.boolean(),
      fc.integer({ min: -2, max: 210 }),
      fc.integer({ min: 0, max: 120 }),
      fc.integer(),
      (f, shape, l3off, cap, mtu) => {
        if (shape && f.length > 40) {
          f[14] = f[14]! & 1 ? 0x45 : 0x60;
          f[12] = f[14] === 0x45 ? 0x08 : 0x86;
        }
        for (const six of [false, true]) {
          const orig = buf(f);
          const out = new PacketBuf(new Uint8Array(HEADROOM + cap));
          const n = six ? buildPacketTooBig(orig, orig.start + l3off, mtu, FROM6, out) : buildFragNeeded(orig, orig.start + l3off, mtu, FROM4, out);
          if (n < 0) assert.ok(known.has(-n), `${n}`);
          else assert.equal(out.length, n);
        }
      },
    ),
    { numRuns: 3000 },
  );
});

// ---- limiter ------------------------------------------------------------------------------------------

test("limiter: defaults are Linux's global ICMP limit, 1000 a second with a burst of 50", () => {
  const l = new TooBigLimiter();
  assert.equal(l.ratePerSec, 1000);
  assert.equal(l.burst, 50);
  let sent = 0;
  for (let i = 0; i < 200; i++) if (l.allow(5e9)) sent++;
  assert.equal(sent, 50);
  assert.equal(l.denied, 150);
  // One token per millisecond afterwards, exactly.
  assert.equal(l.allow(5e9 + 999_999), false);
  assert.equal(l.allow(5e9 + 1_000_000), true);
  assert.equal(l.allow(5e9 + 1_000_000), false);
  // Over one second, 1000 more.
  sent = 0;
  for (let t = 0; t <= 1e9; t += 100_000) if (l.allow(5e9 + 1e6 + t)) sent++;
  assert.equal(sent, 1000);
});

test('limiter: exact with a rate that does not divide a second (3/s: a token every 333,333,333.3 ns)', () => {
  const l = new TooBigLimiter({ ratePerSec: 3, burst: 2 });
  assert.equal(l.allow(0), true);
  assert.equal(l.allow(0), true);
  assert.equal(l.allow(0), false);
  assert.equal(l.allow(333_333_333), false);
  assert.equal(l.allow(333_333_334), true);
  // The 0.3 ns left over from each token is kept: three tokens take exactly one second.
  assert.equal(l.allow(666_666_666), false);
  assert.equal(l.allow(666_666_667), true);
  assert.equal(l.allow(999_999_999), false);
  assert.equal(l.allow(1_000_000_000), true);
});

test('limiter: a full bucket keeps no fraction beyond the burst', () => {
  // burst 1: the 2/10⁹ of a token earned past 333,333,333.3 ns is lost when the bucket is full.
  const l = new TooBigLimiter({ ratePerSec: 3, burst: 1 });
  assert.equal(l.allow(0), true);
  assert.equal(l.allow(333_333_333), false);
  assert.equal(l.allow(333_333_334), true);
  assert.equal(l.allow(666_666_667), false);
  assert.equal(l.allow(666_666_668), true);
});

test('limiter: the bucket never holds more than the burst, and a clock going backwards adds nothing', () => {
  const l = new TooBigLimiter({ ratePerSec: 10, burst: 3 });
  let sent = 0;
  for (let i = 0; i < 10; i++) if (l.allow(1e15)) sent++;
  assert.equal(sent, 3, 'a long quiet spell fills the bucket to the burst only');
  assert.equal(l.allow(1e15 - 1e9), false);
  assert.equal(l.allow(0), false);
  assert.equal(l.allow(1e15 + 99_999_999), false, 'going back did not move the clock either');
  assert.equal(l.allow(1e15 + 100_000_000), true);
  assert.equal(l.allow(Number.NaN), false);
});

test('property: limiter matches an exact bigint token bucket for any call times', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 100_000 }),
      fc.integer({ min: 1, max: 100 }),
      fc.array(fc.oneof(fc.integer({ min: 0, max: 2_000_000 }), fc.integer({ min: 0, max: 3e12 })), { maxLength: 200 }),
      (rate, burst, gaps) => {
        const l = new TooBigLimiter({ ratePerSec: rate, burst });
        const cap = BigInt(burst) * 1_000_000_000n;
        let credit = cap;
        let t = 1_000_000;
        let last = BigInt(t);
        for (const g of gaps) {
          t += g;
          const now = BigInt(t);
          credit += (now - last) * BigInt(rate);
          if (credit > cap) credit = cap;
          last = now;
          const want = credit >= 1_000_000_000n;
          if (want) credit -= 1_000_000_000n;
          assert.equal(l.allow(t), want);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('limiter: options are validated', () => {
  for (const o of [
    { ratePerSec: 0 },
    { ratePerSec: 1.5 },
    { ratePerSec: -1 },
    { ratePerSec: Number.NaN },
    { ratePerSec: 2e9 },
    { burst: 0 },
    { burst: 2.5 },
    { burst: 1e7 },
  ]) {
    assert.throws(() => new TooBigLimiter(o), RangeError, JSON.stringify(o));
  }
});
