import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { clampMss, mssFor } from '../../src/mtu/mss.js';
import { HEADROOM, PacketBuf, TAILROOM } from '../../src/packet/buf.js';
import { ipv4FromString, ipv6FromString, rd16 } from '../../src/wire/bytes.js';
import { finish, onesSum, pseudoSumV4At, pseudoSumV6At } from '../../src/wire/checksum.js';
import { Ipv6Walk, walkIpv6 } from '../../src/wire/ipv6.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpOption } from '../../src/wire/tcp.js';
import { fromHex, guarded, hex } from '../helpers.js';

const ETH = 14;

/** A buffer holding `frame` at HEADROOM, as a port would hand it over. */
function buf(frame: Uint8Array): PacketBuf {
  const p = new PacketBuf(new Uint8Array(HEADROOM + frame.length + TAILROOM));
  assert.ok(p.load(frame));
  return p;
}

/** The packet's TCP checksum checked by summing the whole segment again (the independent check). */
function tcpChecksumOk(frame: Uint8Array): boolean {
  const b = frame;
  if (b[ETH]! >>> 4 === 4) {
    const hl = (b[ETH]! & 15) << 2;
    const tl = rd16(b, ETH + 2);
    return finish(onesSum(b, ETH + hl, tl - hl, pseudoSumV4At(b, ETH + 12, ETH + 16, 6, tl - hl))) === 0;
  }
  const w = new Ipv6Walk();
  const end = ETH + 40 + rd16(b, ETH + 4);
  assert.equal(walkIpv6(b, ETH, end, w), null);
  const len = end - w.upperOff;
  return finish(onesSum(b, w.upperOff, len, pseudoSumV6At(b, ETH + 8, w.pseudoDstOff, 6, len))) === 0;
}

// ---- goldens (scapy) ----------------------------------------------------------------------------------

interface Golden {
  name: string;
  before: string;
  after: string;
  maxMss: number;
  old: number;
}

const GOLDENS: Golden[] = [
  {
    // scapy: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:0b")/IP(src="10.0.0.1", dst="10.0.0.2", id=1)/TCP(sport=40000,
    //   dport=80, seq=0xdeadbeef, flags="S", window=64240, options=[('MSS',mss),('SAckOK',b''),('Timestamp',(123456,0)),('NOP',None),('WScale',7)])
    // with mss = 1460 and 1360: the MSS value at an even offset (22) of the TCP header.
    name: 'ipv4 SYN, MSS first (even offset)',
    before:
      '02000000000b02000000000108004500003c00010000400666b90a0000010a0000029c400050deadbeef00000000a002faf01c9d0000020405b40402080a0001e2400000000001030307',
    after:
      '02000000000b02000000000108004500003c00010000400666b90a0000010a0000029c400050deadbeef00000000a002faf01d010000020405500402080a0001e2400000000001030307',
    maxMss: 1360,
    old: 1460,
  },
  {
    // scapy: …/IP(src="10.0.0.1", dst="10.0.0.2", id=2)/TCP(sport=40001, dport=443, seq=7, flags="S", window=65535,
    //   options=[('NOP',None),('MSS',mss),('WScale',7),('SAckOK',b'')]) — the value at offset 23, straddling two checksum words.
    name: 'ipv4 SYN, MSS after a NOP (odd offset)',
    before: '02000000000b02000000000108004500003400020000400666c00a0000010a0000029c4101bb00000007000000008002ffff0dbd000001020405b403030704020000',
    after: '02000000000b02000000000108004500003400020000400666c00a0000010a0000029c4101bb00000007000000008002ffff71bd0000010204055003030704020000',
    maxMss: 1360,
    old: 1460,
  },
  {
    // scapy: Ether(…)/IPv6(src="fd00:10:244:2::b", dst="fd00:10:244:1::a")/IPv6ExtHdrHopByHop(options=[PadN(optdata=b'\x00'*4)])
    //   /TCP(sport=443, dport=40001, seq=100, ack=8, flags="SA", window=64800, options=[('MSS',mss),('NOP',None),('NOP',None),('SAckOK',b''),('NOP',None),('WScale',7)])
    name: 'ipv6 SYN-ACK behind a hop-by-hop header',
    before:
      '02000000000102000000000b86dd6000000000280040fd00001002440002000000000000000bfd00001002440001000000000000000a060001040000000001bb9c4100000064000000088012fd20d4ca0000020405a00101040201030307',
    after:
      '02000000000102000000000b86dd6000000000280040fd00001002440002000000000000000bfd00001002440001000000000000000a060001040000000001bb9c4100000064000000088012fd20d5a60000020404c40101040201030307',
    maxMss: 1220,
    old: 1440,
  },
];

for (const g of GOLDENS) {
  test(`golden: ${g.name}: clamped to scapy's bytes`, () => {
    const p = buf(fromHex(g.before));
    assert.equal(clampMss(p, p.start + ETH, g.maxMss), g.old);
    assert.equal(hex(p.bytes()), g.after);
  });
  test(`golden: ${g.name}: a second clamp, or one to a larger value, changes nothing`, () => {
    const p = buf(fromHex(g.after));
    assert.equal(clampMss(p, p.start + ETH, g.maxMss), 0);
    assert.equal(clampMss(p, p.start + ETH, g.old), 0);
    assert.equal(hex(p.bytes()), g.after);
  });
}

test('golden: the SYN flag decides — the same segment without SYN keeps its MSS', () => {
  // The odd-offset golden with its flags byte changed from SYN (0x02) to ACK (0x10): the checksum is left
  // wrong (it does not matter here; nothing may be touched).
  const f = fromHex(GOLDENS[1]!.before);
  f[ETH + 20 + 13] = TCP_ACK;
  const p = buf(f);
  assert.equal(clampMss(p, p.start + ETH, 536), 0);
  assert.deepEqual(p.bytes(), f);
});

// ---- frames by layers ----------------------------------------------------------------------------------

const MAC_A = 0x020000000001;
const MAC_B = 0x02000000000b;
const v4 = (s: string): number => ipv4FromString(s)!;
const v6 = (s: string): Uint8Array => ipv6FromString(s)!;

type Ext = { kind: 'hbh' | 'dst'; padWords: number } | { kind: 'rt'; segmentsLeft: number; segments: number } | { kind: 'frag'; more: boolean };

interface Seg {
  family: 4 | 6;
  ipOptionWords: number;
  moreFrags: boolean;
  exts: Ext[];
  flags: number;
  options: TcpOption[];
  payload: Uint8Array;
}

function extLayer(e: Ext, next: number): Layer {
  switch (e.kind) {
    case 'hbh':
    case 'dst':
      // PadN filling 6 + 8k bytes.
      return {
        kind: 'ipv6ext',
        repr: {
          headerType: e.kind === 'hbh' ? 0 : 60,
          nextHeader: next,
          data: Uint8Array.from({ length: 6 + 8 * e.padWords }, (_, i) => (i === 0 ? 1 : i === 1 ? 4 + 8 * e.padWords : 0)),
        },
      };
    case 'rt': {
      // Segment Routing header (type 4): the final destination is the first segment (RFC 8754 §4.1).
      const data = new Uint8Array(6 + 16 * e.segments);
      data[0] = 4;
      data[1] = e.segmentsLeft;
      data[2] = e.segments - 1;
      for (let k = 0; k < e.segments; k++) data.set(v6(`fd00:5e9::${k + 1}`), 6 + 16 * k);
      return { kind: 'ipv6ext', repr: { headerType: 43, nextHeader: next, data } };
    }
    case 'frag':
      return { kind: 'ipv6frag', repr: { nextHeader: next, fragOffset: 0, moreFrags: e.more, ident: 0x1234567 } };
  }
}

const EXT_TYPE: Record<Ext['kind'], number> = { hbh: 0, dst: 60, rt: 43, frag: 44 };

function layers(s: Seg, opts = s.options, flags = s.flags): Layer[] {
  const tcp: Layer = {
    kind: 'tcp',
    repr: { srcPort: 40000, dstPort: 443, seq: 0x01020304, ack: flags & TCP_ACK ? 0x0a0b0c0d : 0, flags, window: 64240, urgent: 0, options: opts },
  };
  const data: Layer = { kind: 'data', bytes: s.payload };
  if (s.family === 4) {
    return [
      { kind: 'eth', repr: { dst: MAC_B, src: MAC_A, vlans: [], etherType: 0x0800 } },
      {
        kind: 'ipv4',
        repr: {
          src: v4('10.244.1.10'),
          dst: v4('10.244.2.20'),
          protocol: 6,
          ttl: 64,
          dscp: 0,
          ecn: 0,
          ident: 7,
          dontFrag: !s.moreFrags,
          moreFrags: s.moreFrags,
          fragOffset: 0,
          options: new Uint8Array(4 * s.ipOptionWords).fill(1),
          payloadLen: 0,
        },
      },
      tcp,
      data,
    ];
  }
  const chain: Layer[] = s.exts.map((e, i) => extLayer(e, i + 1 < s.exts.length ? EXT_TYPE[s.exts[i + 1]!.kind] : 6));
  return [
    { kind: 'eth', repr: { dst: MAC_B, src: MAC_A, vlans: [], etherType: 0x86dd } },
    {
      kind: 'ipv6',
      repr: {
        src: v6('fd00:10:244:1::a'),
        dst: v6('fd00:10:244:2::14'),
        nextHeader: s.exts.length > 0 ? EXT_TYPE[s.exts[0]!.kind] : 6,
        hopLimit: 64,
        trafficClass: 0,
        flowLabel: 0,
        payloadLen: 0,
      },
    },
    ...chain,
    tcp,
    data,
  ];
}

const optLen = (o: TcpOption): number =>
  o.kind === 'nop'
    ? 1
    : o.kind === 'mss'
      ? 4
      : o.kind === 'wscale'
        ? 3
        : o.kind === 'sackPermitted'
          ? 2
          : o.kind === 'timestamps'
            ? 10
            : o.kind === 'sack'
              ? 2 + 8 * o.blocks.length
              : 2 + o.data.length;
const optionsLen = (os: TcpOption[]): number => os.reduce((n, o) => n + optLen(o), 0);

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const mssArb = fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.constantFrom(536, 1220, 1360, 1410, 1440, 1460, 8960, 65495));
const mssOpt = mssArb.map((value): TcpOption => ({ kind: 'mss', value }));
/** Any option but MSS: including an unknown kind, and kind 2 with a length other than 4 (not an MSS option). */
const otherOpt: fc.Arbitrary<TcpOption> = fc.oneof(
  fc.constant<TcpOption>({ kind: 'nop' }),
  fc.integer({ min: 0, max: 14 }).map((shift): TcpOption => ({ kind: 'wscale', shift })),
  fc.constant<TcpOption>({ kind: 'sackPermitted' }),
  fc.tuple(u32, u32).map(([tsval, tsecr]): TcpOption => ({ kind: 'timestamps', tsval, tsecr })),
  fc.array(fc.tuple(u32, u32), { minLength: 1, maxLength: 3 }).map((blocks): TcpOption => ({ kind: 'sack', blocks })),
  fc.tuple(fc.integer({ min: 9, max: 254 }), fc.uint8Array({ maxLength: 9 })).map(([type, data]): TcpOption => ({ kind: 'unknown', type, data })),
  fc
    .uint8Array({ maxLength: 7 })
    .filter((d) => d.length !== 2)
    .map((data): TcpOption => ({ kind: 'unknown', type: 2, data })),
);
/** Options with at least one MSS somewhere (sometimes two), at any byte offset. */
const withMss = fc
  .tuple(fc.array(otherOpt, { maxLength: 6 }), mssOpt, fc.array(fc.oneof(otherOpt, otherOpt, mssOpt), { maxLength: 6 }))
  .map(([a, m, b]) => [...a, m, ...b])
  .filter((os) => optionsLen(os) <= 40);
const withoutMss = fc.array(otherOpt, { maxLength: 8 }).filter((os) => optionsLen(os) <= 40);

const extArb: fc.Arbitrary<Ext> = fc.oneof(
  fc.record({ kind: fc.constantFrom('hbh' as const, 'dst' as const), padWords: fc.integer({ min: 0, max: 2 }) }),
  fc.record({ kind: fc.constant('rt' as const), segmentsLeft: fc.integer({ min: 0, max: 2 }), segments: fc.integer({ min: 1, max: 3 }) }),
);
/**
 * Up to two headers, then maybe a Fragment header: RFC 8200 §4.1 order puts a Routing header before the
 * Fragment header (and `compose` only looks for one there when it builds the pseudo-header).
 */
const extsArb: fc.Arbitrary<Ext[]> = fc
  .tuple(fc.array(extArb, { maxLength: 2 }), fc.option(fc.boolean(), { nil: undefined }))
  .map(([es, frag]) => (frag === undefined ? es : [...es, { kind: 'frag', more: frag }]));

function segArb(options: fc.Arbitrary<TcpOption[]>, flags: fc.Arbitrary<number>): fc.Arbitrary<Seg> {
  return fc.record(
    {
      family: fc.constantFrom(4 as const, 6 as const),
      ipOptionWords: fc.integer({ min: 0, max: 3 }),
      moreFrags: fc.boolean(),
      exts: extsArb,
      flags,
      options,
      payload: fc.uint8Array({ maxLength: 40 }),
    },
    { noNullPrototype: true },
  );
}

const synFlags = fc.integer({ min: 0, max: 0xfff }).map((f) => f | TCP_SYN);
const nonSynFlags = fc.integer({ min: 0, max: 0xfff }).map((f) => f & ~TCP_SYN);

/** What clamping must do to the option list, and the value it must return. */
function model(os: TcpOption[], maxMss: number): { options: TcpOption[]; old: number } {
  let old = 0;
  const options = os.map((o) => {
    if (o.kind !== 'mss' || o.value <= maxMss) return o;
    if (old === 0) old = o.value;
    return { kind: 'mss', value: maxMss } as const;
  });
  return { options, old };
}

test('property: a SYN or SYN-ACK (IPv4, IPv6 with extension headers, first fragments) is clamped to exactly the frame built with the clamped options, checksum valid', () => {
  let clamped = 0;
  let odd = 0;
  fc.assert(
    fc.property(segArb(withMss, synFlags), fc.integer({ min: 0, max: 0xffff }), (s, maxMss) => {
      const before = compose(layers(s));
      const p = buf(before);
      const l3 = p.start + ETH;
      const m = model(s.options, maxMss);
      const r = clampMss(p, l3, maxMss);
      assert.equal(r, m.old);
      assert.equal(hex(p.bytes()), hex(compose(layers(s, m.options))));
      assert.ok(tcpChecksumOk(p.bytes()), 'TCP checksum by full recomputation');
      if (r > 0) {
        clamped++;
        // Where was the first MSS value? Count the odd offsets to be sure they were exercised.
        let at = 22;
        for (const o of s.options) {
          if (o.kind === 'mss') break;
          at += optLen(o);
        }
        if (at & 1) odd++;
      }
    }),
    { numRuns: 2000 },
  );
  assert.ok(clamped > 500 && odd > 100, `clamped ${clamped}, at odd offsets ${odd}`);
});

test('property: segments without SYN are left alone byte for byte, MSS options or not', () => {
  fc.assert(
    fc.property(segArb(fc.oneof(withMss, withoutMss), nonSynFlags), fc.integer({ min: 0, max: 0xffff }), (s, maxMss) => {
      const before = compose(layers(s));
      const p = buf(before);
      assert.equal(clampMss(p, p.start + ETH, maxMss), 0);
      assert.deepEqual(p.bytes(), before);
    }),
    { numRuns: 500 },
  );
});

test('property: a SYN without an MSS option, or with one already small enough, is left alone byte for byte', () => {
  fc.assert(
    fc.property(segArb(fc.oneof(withMss, withoutMss), synFlags), (s) => {
      const before = compose(layers(s));
      const p = buf(before);
      const largest = Math.max(0, ...s.options.map((o) => (o.kind === 'mss' ? o.value : 0)));
      assert.equal(clampMss(p, p.start + ETH, largest), 0);
      assert.equal(clampMss(p, p.start + ETH, 0xffff), 0);
      assert.deepEqual(p.bytes(), before);
    }),
    { numRuns: 500 },
  );
});

test('property: a SYN with the flags of every other kind too (SYN|RST, SYN|FIN|PSH) still counts as a SYN', () => {
  for (const flags of [TCP_SYN | TCP_RST, TCP_SYN | TCP_FIN | TCP_PSH, TCP_SYN | 0x800]) {
    const s: Seg = { family: 4, ipOptionWords: 0, moreFrags: false, exts: [], flags, options: [{ kind: 'mss', value: 1460 }], payload: new Uint8Array(0) };
    const p = buf(compose(layers(s)));
    assert.equal(clampMss(p, p.start + ETH, 1000), 1460, `flags ${flags}`);
    assert.ok(tcpChecksumOk(p.bytes()));
  }
});

test('two MSS options: both are clamped (receivers keep the last one), the first old value is returned', () => {
  const s: Seg = {
    family: 4,
    ipOptionWords: 0,
    moreFrags: false,
    exts: [],
    flags: TCP_SYN,
    options: [{ kind: 'mss', value: 1460 }, { kind: 'nop' }, { kind: 'mss', value: 9000 }],
    payload: new Uint8Array(0),
  };
  const p = buf(compose(layers(s)));
  assert.equal(clampMss(p, p.start + ETH, 1400), 1460);
  assert.equal(hex(p.bytes()), hex(compose(layers(s, [{ kind: 'mss', value: 1400 }, { kind: 'nop' }, { kind: 'mss', value: 1400 }]))));
});

test('options are walked as a receiver walks them: End of Option List, a zero or overlong length, stop the walk', () => {
  const base: Seg = { family: 4, ipOptionWords: 0, moreFrags: false, exts: [], flags: TCP_SYN, options: [], payload: new Uint8Array(0) };
  // EOL, then what would be an MSS option.
  for (const [name, opts] of [
    [
      'after EOL',
      [
        { kind: 'unknown', type: 0, data: new Uint8Array(0) },
        { kind: 'mss', value: 1460 },
      ],
    ],
    [
      'after an option of length 2 that claims 40',
      [
        { kind: 'unknown', type: 30, data: new Uint8Array(0) },
        { kind: 'mss', value: 1460 },
      ],
    ],
  ] as Array<[string, TcpOption[]]>) {
    const f = compose(layers({ ...base, options: opts }));
    if (name.startsWith('after an option')) f[ETH + 20 + 20 + 1] = 40;
    const p = buf(f);
    assert.equal(clampMss(p, p.start + ETH, 1000), 0, name);
    assert.deepEqual(p.bytes(), f, name);
  }
  // An option with length 0 or 1 would loop forever if taken at its word.
  for (const len of [0, 1]) {
    const f = compose(
      layers({
        ...base,
        options: [
          { kind: 'unknown', type: 30, data: new Uint8Array(0) },
          { kind: 'mss', value: 1460 },
        ],
      }),
    );
    f[ETH + 20 + 20 + 1] = len;
    const p = buf(f);
    assert.equal(clampMss(p, p.start + ETH, 1000), 0);
    assert.deepEqual(p.bytes(), f);
  }
  // An MSS option whose value would run past the header (length 4, 2 bytes left) is not touched.
  const f = compose(
    layers({
      ...base,
      options: [
        { kind: 'unknown', type: 30, data: new Uint8Array(0) },
        { kind: 'mss', value: 1460 },
      ],
    }),
  );
  f[ETH + 20 + 12] = 0x60; // data offset 24: the MSS option is cut after its length byte
  const p = buf(f);
  assert.equal(clampMss(p, p.start + ETH, 1000), 0);
  assert.deepEqual(p.bytes(), f);
});

test('fragments: a later fragment is never clamped; a first fragment only when it holds the whole TCP header', () => {
  const syn: TcpOption[] = [{ kind: 'nop' }, { kind: 'nop' }, { kind: 'sackPermitted' }, { kind: 'mss', value: 1460 }];
  // IPv4 later fragment: a TCP-looking payload at offset 8 × 185.
  {
    const f = compose(layers({ family: 4, ipOptionWords: 0, moreFrags: true, exts: [], flags: TCP_SYN, options: syn, payload: new Uint8Array(0) }));
    const ip = ETH;
    f[ip + 6] = 0x20;
    f[ip + 7] = 185; // MF, offset 1480
    const p = buf(f);
    assert.equal(clampMss(p, p.start + ETH, 1000), 0);
    assert.deepEqual(p.bytes(), f);
  }
  // IPv4 first fragment (MF) cut inside the TCP options: the total length ends before the MSS option.
  {
    const f = compose(layers({ family: 4, ipOptionWords: 0, moreFrags: true, exts: [], flags: TCP_SYN, options: syn, payload: new Uint8Array(0) }));
    f[ETH + 3] = 20 + 24; // total length: IP header + 24 bytes of the 28-byte TCP header
    const p = buf(f);
    assert.equal(clampMss(p, p.start + ETH, 1000), 0);
    assert.deepEqual(p.bytes(), f);
  }
  // IPv6 later fragment: Fragment header with offset 1448, then bytes that look like a SYN.
  {
    const s: Seg = {
      family: 6,
      ipOptionWords: 0,
      moreFrags: false,
      exts: [{ kind: 'frag', more: false }],
      flags: TCP_SYN,
      options: syn,
      payload: new Uint8Array(0),
    };
    const f = compose(layers(s));
    f[ETH + 40 + 2] = 1448 >> 8;
    f[ETH + 40 + 3] = 1448 & 0xf8;
    const p = buf(f);
    assert.equal(clampMss(p, p.start + ETH, 1000), 0);
    assert.deepEqual(p.bytes(), f);
    // …while the first fragment, offset 0 with M set, is clamped.
    const first = buf(
      compose(
        layers({
          ...s,
          exts: [
            { kind: 'dst', padWords: 0 },
            { kind: 'frag', more: true },
          ],
        }),
      ),
    );
    assert.equal(clampMss(first, first.start + ETH, 1000), 1460);
    assert.ok(tcpChecksumOk(first.bytes()));
  }
});

test('the packet must end within the window: a truncated frame, or an IP length past it, is left alone', () => {
  const s: Seg = {
    family: 6,
    ipOptionWords: 0,
    moreFrags: false,
    exts: [{ kind: 'hbh', padWords: 0 }],
    flags: TCP_SYN,
    options: [{ kind: 'mss', value: 1460 }],
    payload: new Uint8Array(0),
  };
  const f = compose(layers(s));
  for (const cut of [1, 4, 20, f.length - ETH - 40]) {
    const p = buf(f);
    p.end -= cut;
    assert.equal(clampMss(p, p.start + ETH, 1000), 0, `cut ${cut}`);
    assert.deepEqual(p.bytes(), f.subarray(0, f.length - cut));
  }
  // Ethernet padding after the packet is fine.
  const padded = new Uint8Array(f.length + 6);
  padded.set(f);
  const p = buf(padded);
  assert.equal(clampMss(p, p.start + ETH, 1000), 1460);
});

test('l3 outside the window or a bad maxMss clamps nothing and does not throw', () => {
  const f = fromHex(GOLDENS[0]!.before);
  for (const l3 of [-1, -100, Number.NaN, 0, 1e9]) {
    const p = buf(f);
    assert.equal(clampMss(p, l3, 1000), 0, `l3 ${l3}`);
    assert.deepEqual(p.bytes(), f);
  }
  for (const maxMss of [-1, 1000.5, 70000, Number.NaN]) {
    const p = buf(f);
    assert.equal(clampMss(p, p.start + ETH, maxMss), 0, `maxMss ${maxMss}`);
    assert.deepEqual(p.bytes(), f);
  }
});

/** A buffer whose backing array is exactly the frame, every access outside it throwing. */
function guardedBuf(frame: Uint8Array): PacketBuf {
  const p = new PacketBuf(guarded(frame.slice()));
  p.start = 0;
  p.end = frame.length;
  return p;
}

/** Random bytes, half of them shaped to get past the first checks: version 4 or 6, TCP or an extension header next. */
const garbageArb = fc
  .tuple(fc.uint8Array({ maxLength: 120 }), fc.boolean(), fc.constantFrom(0x45, 0x46, 0x4f, 0x60), fc.constantFrom(6, 0, 43, 44, 51, 60))
  .map(([f, shape, vihl, nh]) => {
    if (shape && f.length > 14 + 9) {
      f[14] = vihl;
      f[14 + (vihl === 0x60 ? 6 : 9)] = nh;
    }
    return f;
  });

test('property: garbage never throws, never reads outside the frame, and returns 0 or a 16-bit MSS', () => {
  fc.assert(
    fc.property(garbageArb, fc.oneof(fc.constant(14), fc.integer({ min: -4, max: 124 })), fc.integer({ min: -1, max: 0x10000 }), (f, l3, maxMss) => {
      const r = clampMss(guardedBuf(f), l3, maxMss);
      assert.ok(Number.isInteger(r) && r >= 0 && r <= 0xffff);
    }),
    { numRuns: 5000 },
  );
  // A hop-by-hop header announced, none there: walkIpv6 once read its length byte past the end.
  const f = new Uint8Array(14 + 40);
  f[14] = 0x60;
  assert.equal(clampMss(guardedBuf(f), 14, 1000), 0);
});

test('property: valid SYNs with random bytes changed and random lengths never throw; a clamp keeps the checksum as right (or wrong) as it was', () => {
  fc.assert(
    fc.property(segArb(withMss, synFlags), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(8), (s, edits, cut) => {
      const f = compose(layers(s));
      for (const [at, v] of edits) f[at % f.length] = v;
      const frame = f.subarray(0, Math.max(0, f.length - cut));
      const p = guardedBuf(frame);
      const okBefore = frame.length > ETH ? safeChecksumOk(frame) : null;
      const r = clampMss(p, ETH, 1000);
      assert.ok(Number.isInteger(r) && r >= 0 && r <= 0xffff);
      // Where the header still parses as it did, the clamp cannot change whether the checksum verifies.
      if (r > 0 && okBefore !== null) assert.equal(safeChecksumOk(frame), okBefore);
    }),
    { numRuns: 2000 },
  );
});

/** `tcpChecksumOk` when the frame still parses as IPv4/IPv6 with TCP within it, else null. */
function safeChecksumOk(f: Uint8Array): boolean | null {
  try {
    const v = f[ETH]! >>> 4;
    if (v === 4) {
      const hl = (f[ETH]! & 15) << 2;
      const tl = rd16(f, ETH + 2);
      if (hl < 20 || tl < hl + 20 || ETH + tl > f.length) return null;
      return tcpChecksumOk(f);
    }
    if (v === 6) {
      const end = ETH + 40 + rd16(f, ETH + 4);
      if (end > f.length) return null;
      const w = new Ipv6Walk();
      if (walkIpv6(f, ETH, end, w) !== null || w.upperProto !== 6) return null;
      return tcpChecksumOk(f);
    }
    return null;
  } catch {
    return null;
  }
}

test('mssFor: MTU less 40 (IPv4) or 60 (IPv6); impossible MTUs throw', () => {
  assert.equal(mssFor(1500, 4), 1460);
  assert.equal(mssFor(1450, 4), 1410);
  assert.equal(mssFor(1500, 6), 1440);
  assert.equal(mssFor(1430, 6), 1370);
  assert.equal(mssFor(68, 4), 28);
  assert.equal(mssFor(1280, 6), 1220);
  assert.equal(mssFor(65535, 4), 65495);
  for (const [mtu, fam] of [
    [67, 4],
    [1279, 6],
    [65536, 4],
    [1500.5, 4],
    [Number.NaN, 6],
  ] as const) {
    assert.throws(() => mssFor(mtu, fam), RangeError, `${mtu}/${fam}`);
  }
});
