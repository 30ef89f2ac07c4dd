import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fragmentIpv4, fragmentIpv6, IPV4_MIN_MTU, IPV6_MIN_MTU } from '../../src/mtu/fragment.js';
import { DONE, HELD, PASS, Reassembler, type ReassemblerOptions } from '../../src/mtu/reassembly.js';
import type { PacketBuf, PacketPool } from '../../src/packet/buf.js';
import { hex } from '../../src/wire/bytes.js';
import { ipv4HeaderValid } from '../../src/wire/checksum.js';
import { DropReason, dropReasonName } from '../../src/wire/drop.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/wire/ethernet.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { IPV6_NH_DEST_OPTS, IPV6_NH_FRAGMENT } from '../../src/wire/ipv6.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { rng } from '../helpers.js';
import { eth, ip4, ip6 } from '../peers/catalogue.js';
import { bufOf, dup, pool, shuffle, v4Frame, v6Frame } from './util.js';

const ETH = 14;
const SEC = 1e9;

/** The name of an `add` result, so that failures read as words. */
function res(r: number): string {
  return r === HELD ? 'HELD' : r === DONE ? 'DONE' : r === PASS ? 'PASS' : dropReasonName(r as DropReason);
}

/** Byte `i` of every datagram built by `v4Frag`/`v6Frag`: fragments of one datagram agree by construction. */
const pattern = (i: number, salt = 0): number => (Math.imul(i + salt, 2654435761) >>> 24) & 0xff;

interface FragSpec {
  start: number;
  len: number;
  more: boolean;
  ident?: number;
  proto?: number;
  src?: string;
  dst?: string;
  salt?: number;
  /** First bytes of the data, overriding the pattern (e.g. headers after an IPv6 Fragment header). */
  head?: Uint8Array;
}

function fragData(s: FragSpec): Uint8Array {
  const d = new Uint8Array(s.len);
  for (let k = 0; k < s.len; k++) d[k] = pattern(s.start + k, s.salt);
  if (s.head !== undefined) d.set(s.head.subarray(0, s.len));
  return d;
}

function v4Frag(s: FragSpec): Uint8Array {
  return compose([
    eth(ETHERTYPE_IPV4),
    ip4(s.src ?? '192.168.10.1', s.dst ?? '192.168.10.2', s.proto ?? IPPROTO_UDP, {
      dontFrag: false,
      moreFrags: s.more,
      fragOffset: s.start,
      ident: s.ident ?? 7,
    }),
    { kind: 'data', bytes: fragData(s) },
  ]);
}

function v6Frag(s: FragSpec): Uint8Array {
  const layers: Layer[] = [
    eth(ETHERTYPE_IPV6),
    ip6(s.src ?? 'fd00:cafe::a', s.dst ?? 'fd00:cafe::b', IPV6_NH_FRAGMENT),
    { kind: 'ipv6frag', repr: { nextHeader: s.proto ?? IPPROTO_UDP, fragOffset: s.start, moreFrags: s.more, ident: s.ident ?? 7 } },
    { kind: 'data', bytes: fragData(s) },
  ];
  return compose(layers);
}

interface Rig {
  r: Reassembler;
  big: PacketPool;
  frags: PacketPool;
  /** Adds a frame (copied into a fragment buffer); a rejected buffer is released here, as a caller would. */
  add(frame: Uint8Array, now?: number): number;
  /** Every buffer back in its pool (after `take`n results are released). */
  assertAllFree(): void;
}

function rig(opts: Partial<ReassemblerOptions> = {}, fragCount = 64, fragCapacity = 1500): Rig {
  const big = pool(2, 65535 + 18);
  const frags = pool(fragCount, fragCapacity);
  const r = new Reassembler({ pool: big, ...opts });
  return {
    r,
    big,
    frags,
    add(frame, now = 0) {
      const p = bufOf(frags, frame);
      const x = r.add(p, p.start + ETH, now);
      if (x > 0 || x === PASS) p.release();
      return x;
    },
    assertAllFree() {
      assert.equal(frags.available, frags.size, 'fragment pool');
      assert.equal(big.available, big.size, 'big-buffer pool');
      assert.equal(r.heldFragments, 0);
      assert.equal(r.heldBytes, 0);
      assert.equal(r.datagrams, 0);
    },
  };
}

/** Takes the result, checks it and returns its bytes (the buffer released). */
function takeBytes(r: Reassembler): Uint8Array {
  const q = r.take();
  assert.ok(q !== null, 'a result to take');
  const b = q.bytes().slice();
  assert.equal(q.l3, q.start + ETH);
  q.release();
  return b;
}

// ---- fragment, then reassemble -------------------------------------------------------------------------------

/**
 * Fragments `frame` with seine's fragmenter, feeds the pieces in a shuffled order with duplicates mixed
 * in (never after the piece that completes the datagram), and expects the original bytes back.
 */
function roundTrip(frame: Uint8Array, family: 4 | 6, mtu: number, seed: number, dups: number): void {
  const src = pool(1, 65535 + 18);
  const fragPool = pool(Math.ceil(frame.length / (mtu - 100)) + dups + 2, mtu + 14);
  const big = pool(1, 65535 + 18);
  const r = new Reassembler({ pool: big, memoryCap: 16 << 20, perSourceCap: 16 << 20, maxFragments: 2048 });
  const p = bufOf(src, frame);
  const out: PacketBuf[] = [];
  const n = family === 4 ? fragmentIpv4(p, p.start + ETH, mtu, fragPool, out) : fragmentIpv6(p, p.start + ETH, mtu, fragPool, out, seed);
  assert.ok(n >= 1);
  if (n === 1) {
    assert.equal(r.add(p, p.l3, 0), PASS, 'a packet that fits is not a fragment');
    p.release();
    return;
  }
  const order = shuffle([...out], seed);
  const lastOne = order.pop()!;
  const rr = rng(seed ^ 0x5bd1e995);
  for (let k = 0; k < dups && order.length > 0; k++) {
    const copy = dup(fragPool, order[rr() % order.length]!);
    copy.l3 = copy.start + ETH;
    order.splice(rr() % (order.length + 1), 0, copy);
  }
  order.push(lastOne);
  let duplicates = 0;
  order.forEach((f, i) => {
    const x = r.add(f, f.start + ETH, i);
    if (i === order.length - 1) assert.equal(res(x), 'DONE');
    else if (x === DropReason.FragDuplicate) {
      duplicates++;
      f.release();
    } else assert.equal(res(x), 'HELD');
  });
  assert.equal(duplicates, dups, 'each copy is a duplicate, whichever of the two came first');
  const q = r.take()!;
  assert.equal(hex(q.bytes()), hex(frame));
  if (family === 4) assert.ok(ipv4HeaderValid(q.view, q.l3, 20));
  q.release();
  assert.equal(r.reassembled, 1);
  assert.equal(r.fragmentsIn, order.length);
  assert.equal(
    r.drops.reduce((a, b) => a + b, 0),
    0,
    'nothing dropped by the reassembler',
  );
  assert.equal(fragPool.available, fragPool.size);
  assert.equal(src.available, 1);
  assert.equal(big.available, 1);
  assert.equal(r.heldBytes, 0);
}

test('reassembly: IPv4 datagrams up to 9000 bytes fragmented at random MTUs come back byte for byte, whatever the order and duplicates', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 9000 - 28 }),
      fc.integer({ min: IPV4_MIN_MTU + 100, max: 9000 }),
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.integer({ min: 0, max: 4 }),
      fc.boolean(),
      (payload, mtu, seed, dups, withTcp) => roundTrip(v4Frame({ payload, seed, tcp: withTcp }), 4, mtu, seed, dups),
    ),
    { numRuns: 150 },
  );
});

test('reassembly: IPv4 datagrams up to 65,000 bytes (small MTUs too)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 9000, max: 65000 - 28 }),
      fc.integer({ min: IPV4_MIN_MTU + 100, max: 9000 }),
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.integer({ min: 0, max: 3 }),
      (payload, mtu, seed, dups) => roundTrip(v4Frame({ payload, seed }), 4, mtu, seed, dups),
    ),
    { numRuns: 20 },
  );
});

test('reassembly: IPv6 datagrams (extension headers included) up to 9000 and 65,000 bytes', () => {
  const extArb = fc.constantFrom<number[]>([], [0], [43], [60], [0, 60, 43, 60]);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 9000 }),
      fc.integer({ min: IPV6_MIN_MTU, max: 9000 }),
      extArb,
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.integer({ min: 0, max: 4 }),
      (payload, mtu, ext, seed, dups) => roundTrip(v6Frame({ payload, ext, seed }), 6, mtu, seed, dups),
    ),
    { numRuns: 150 },
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 9000, max: 65000 - 200 }),
      fc.integer({ min: IPV6_MIN_MTU, max: 9000 }),
      extArb,
      fc.integer({ min: 1, max: 1 << 30 }),
      (payload, mtu, ext, seed) => roundTrip(v6Frame({ payload, ext, seed }), 6, mtu, seed, 2),
    ),
    { numRuns: 20 },
  );
});

test("reassembly: the result keeps the first fragment's link header and options, with total length, flags and checksum fixed", () => {
  const t = rig();
  const a = v4Frag({ start: 0, len: 16, more: true });
  const b = v4Frag({ start: 16, len: 5, more: false });
  b[6] = 0x55; // a different source MAC on the later fragment
  const reordered = t.add(b);
  assert.equal(res(reordered), 'HELD');
  assert.equal(res(t.add(a)), 'DONE');
  const got = takeBytes(t.r);
  const want = v4Frag({ start: 0, len: 21, more: false });
  assert.equal(hex(got), hex(want));
  t.assertAllFree();
  // A DONE result must be taken before the next add: a programming error, thrown.
  assert.equal(res(t.add(v4Frag({ start: 16, len: 5, more: false, ident: 1 }))), 'HELD');
  assert.equal(res(t.add(v4Frag({ start: 0, len: 16, more: true, ident: 1 }))), 'DONE');
  const p = bufOf(t.frags, a);
  assert.throws(() => t.r.add(p, p.start + ETH, 0), /take/);
  p.release();
  takeBytes(t.r);
  t.assertAllFree();
});

// ---- the rules, each with its reason ---------------------------------------------------------------------------

test('reassembly: a non-fragment passes (PASS, untouched, not counted)', () => {
  const t = rig();
  const frame = v4Frame({ payload: 100 });
  const p = bufOf(t.frags, frame);
  assert.equal(t.r.add(p, p.start + ETH, 0), PASS);
  assert.equal(hex(p.bytes()), hex(frame));
  p.release();
  assert.equal(res(t.add(v6Frame({ payload: 100 }))), 'PASS');
  assert.equal(t.r.fragmentsIn, 0);
  t.assertAllFree();
});

test('reassembly: an IPv6 atomic fragment (offset 0, M clear) is a whole packet, never mixed with a queue (RFC 6946)', () => {
  const t = rig();
  assert.equal(res(t.add(v6Frag({ start: 16, len: 8, more: true }))), 'HELD');
  assert.equal(res(t.add(v6Frag({ start: 0, len: 24, more: false }))), 'DONE');
  const got = takeBytes(t.r);
  const want = compose([
    eth(ETHERTYPE_IPV6),
    ip6('fd00:cafe::a', 'fd00:cafe::b', IPPROTO_UDP),
    { kind: 'data', bytes: fragData({ start: 0, len: 24, more: false }) },
  ]);
  assert.equal(hex(got), hex(want));
  assert.equal(t.r.datagrams, 1, 'the queued fragment is still waiting');
  t.r.clear();
  t.assertAllFree();
});

test('reassembly: an exact duplicate is dropped alone (FragDuplicate); the datagram still completes', () => {
  for (const mk of [v4Frag, v6Frag]) {
    const t = rig();
    assert.equal(res(t.add(mk({ start: 0, len: 16, more: true }))), 'HELD');
    assert.equal(res(t.add(mk({ start: 32, len: 3, more: false }))), 'HELD');
    assert.equal(res(t.add(mk({ start: 0, len: 16, more: true }))), 'FragDuplicate');
    assert.equal(res(t.add(mk({ start: 32, len: 3, more: false }))), 'FragDuplicate');
    assert.equal(t.r.heldFragments, 2);
    assert.equal(res(t.add(mk({ start: 16, len: 16, more: true }))), 'DONE');
    takeBytes(t.r);
    assert.equal(t.r.drops[DropReason.FragDuplicate], 0, 'the caller counts the duplicates it was told about');
    t.assertAllFree();
  }
});

test('reassembly: any overlap discards the whole datagram, the new fragment included (RFC 5722)', () => {
  const cases: Array<[string, Array<[number, number, boolean]>]> = [
    [
      'into the previous',
      [
        [0, 16, true],
        [8, 16, true],
      ],
    ],
    [
      'into the next',
      [
        [16, 16, true],
        [8, 16, true],
      ],
    ],
    [
      'same start, longer',
      [
        [0, 16, true],
        [0, 24, true],
      ],
    ],
    [
      'inside',
      [
        [0, 32, true],
        [8, 8, true],
      ],
    ],
    [
      'covering',
      [
        [8, 8, true],
        [0, 32, true],
      ],
    ],
    [
      'last overlapping a held one',
      [
        [0, 16, true],
        [8, 12, false],
      ],
    ],
    [
      'between two, touching both',
      [
        [0, 16, true],
        [32, 16, true],
        [8, 32, true],
      ],
    ],
  ];
  for (const mk of [v4Frag, v6Frag]) {
    for (const [what, specs] of cases) {
      const t = rig();
      const got = specs.map(([start, len, more]) => res(t.add(mk({ start, len, more }))));
      assert.equal(got[got.length - 1], 'FragOverlap', `${what}: ${got.join(' ')}`);
      assert.ok(
        got.slice(0, -1).every((x) => x === 'HELD'),
        what,
      );
      assert.equal(t.r.drops[DropReason.FragOverlap], specs.length - 1, `${what}: every held fragment counted`);
      t.assertAllFree();
    }
  }
});

test('reassembly: fragments that disagree on the end discard the datagram (FragInconsistent)', () => {
  const cases: Array<[string, Array<[number, number, boolean]>]> = [
    [
      'two different last fragments',
      [
        [0, 8, true],
        [16, 8, false],
        [24, 3, false],
      ],
    ],
    [
      'data past the known end',
      [
        [24, 3, false],
        [32, 8, true],
      ],
    ],
    [
      'a non-last fragment reaching the known end',
      [
        [24, 8, false],
        [0, 8, true],
        [16, 16, true],
      ],
    ],
    [
      'a last fragment before held data',
      [
        [32, 16, true],
        [8, 8, false],
      ],
    ],
    [
      'a last fragment ending where a non-last one ends',
      [
        [16, 16, true],
        [24, 8, false],
      ],
    ],
  ];
  for (const mk of [v4Frag, v6Frag]) {
    for (const [what, specs] of cases) {
      const t = rig();
      const got = specs.map(([start, len, more]) => res(t.add(mk({ start, len, more }))));
      assert.equal(got[got.length - 1], 'FragInconsistent', `${what}: ${got.join(' ')}`);
      assert.equal(t.r.drops[DropReason.FragInconsistent], specs.length - 1, what);
      t.assertAllFree();
    }
  }
});

test('reassembly: bad lengths (not a multiple of 8 before the end, empty, past 65,535) are dropped alone (FragBadLength)', () => {
  for (const mk of [v4Frag, v6Frag]) {
    const t = rig();
    assert.equal(res(t.add(mk({ start: 0, len: 16, more: true }))), 'HELD');
    assert.equal(res(t.add(mk({ start: 16, len: 12, more: true }))), 'FragBadLength');
    assert.equal(res(t.add(mk({ start: 16, len: 0, more: true }))), 'FragBadLength');
    assert.equal(res(t.add(mk({ start: 65528, len: 16, more: false }))), 'FragBadLength');
    assert.equal(res(t.add(mk({ start: 65496, len: 16, more: false }))), 'HELD', 'ending within 65,535 is fine');
    assert.equal(t.r.heldFragments, 2, 'the datagram is not discarded');
    t.r.clear();
    t.assertAllFree();
  }
});

test('reassembly: tiny first fragments are refused (RFC 1858 for IPv4, RFC 7112 for IPv6)', () => {
  const t = rig();
  // IPv4 TCP: the first fragment must hold the 20-byte header; offset 1 (8 bytes) with TCP is an attack.
  assert.equal(res(t.add(v4Frag({ start: 0, len: 16, more: true, proto: IPPROTO_TCP }))), 'FragTinyFirst');
  assert.equal(res(t.add(v4Frag({ start: 8, len: 16, more: true, proto: IPPROTO_TCP, ident: 1 }))), 'FragTinyFirst');
  assert.equal(res(t.add(v4Frag({ start: 0, len: 24, more: true, proto: IPPROTO_TCP, ident: 2 }))), 'HELD');
  assert.equal(res(t.add(v4Frag({ start: 8, len: 16, more: true, proto: IPPROTO_UDP, ident: 3 }))), 'HELD', 'offset 1 is fine for UDP');
  assert.equal(res(t.add(v4Frag({ start: 0, len: 8, more: true, proto: IPPROTO_UDP, ident: 4 }))), 'HELD', '8 bytes hold a UDP header');
  // IPv6: the headers after the Fragment header and the upper-layer header, all in the first fragment.
  assert.equal(res(t.add(v6Frag({ start: 0, len: 16, more: true, proto: IPPROTO_TCP }))), 'FragTinyFirst');
  const destOpts = Uint8Array.from([IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
  assert.equal(
    res(t.add(v6Frag({ start: 0, len: 8, more: true, proto: IPV6_NH_DEST_OPTS, head: destOpts, ident: 5 }))),
    'FragTinyFirst',
    'options but no UDP header',
  );
  const longOpts = Uint8Array.from([IPPROTO_UDP, 2, 1, 20, 0, 0, 0, 0]); // 24 bytes of options, 8 present
  assert.equal(res(t.add(v6Frag({ start: 0, len: 8, more: true, proto: IPV6_NH_DEST_OPTS, head: longOpts, ident: 6 }))), 'FragTinyFirst', 'options cut off');
  assert.equal(res(t.add(v6Frag({ start: 0, len: 16, more: true, proto: IPV6_NH_DEST_OPTS, head: destOpts, ident: 7 }))), 'HELD');
  assert.equal(t.r.heldFragments, 4);
  t.r.clear();
  t.assertAllFree();
});

test('reassembly: a bad IPv4 header checksum or a malformed header is dropped with its parse reason, never thrown', () => {
  const t = rig();
  const f = v4Frag({ start: 0, len: 16, more: true });
  f[ETH + 8] = f[ETH + 8]! ^ 1;
  assert.equal(res(t.add(f)), 'Ipv4BadChecksum');
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.boolean(), (junk, v6) => {
      const base = v6 ? v6Frag({ start: 8, len: 16, more: true }) : v4Frag({ start: 8, len: 16, more: true });
      const frame = new Uint8Array(ETH + 1 + junk.length);
      frame.set(base.subarray(0, ETH + 1));
      frame.set(junk, ETH + 1);
      const x = t.add(frame);
      assert.ok(x === HELD || x === PASS || x === DONE || x > 0, res(x));
      if (x === DONE) takeBytes(t.r);
    }),
    { numRuns: 300 },
  );
  t.r.clear();
  t.assertAllFree();
});

test('reassembly: datagrams of different keys never mix (IPv4 source, destination, protocol, identification; IPv6 source, destination, identification)', () => {
  const t = rig();
  const v4Keys: FragSpec[] = [
    { start: 0, len: 0, more: true },
    { start: 0, len: 0, more: true, src: '192.168.10.9' },
    { start: 0, len: 0, more: true, dst: '192.168.10.9' },
    { start: 0, len: 0, more: true, proto: 50 },
    { start: 0, len: 0, more: true, ident: 8 },
  ];
  const v6Keys: FragSpec[] = [
    { start: 0, len: 0, more: true },
    { start: 0, len: 0, more: true, src: 'fd00:cafe::9' },
    { start: 0, len: 0, more: true, dst: 'fd00:cafe::9' },
    { start: 0, len: 0, more: true, ident: 0x80000007 },
  ];
  for (const [mk, keys] of [
    [v4Frag, v4Keys],
    [v6Frag, v6Keys],
  ] as const) {
    // First halves of every key, then second halves: each must complete its own datagram with its own bytes.
    keys.forEach((k, i) => assert.equal(res(t.add(mk({ ...k, start: 0, len: 16, more: true, salt: i }))), 'HELD'));
    assert.equal(t.r.datagrams, keys.length);
    keys.forEach((k, i) => {
      assert.equal(res(t.add(mk({ ...k, start: 16, len: 9, more: false, salt: i }))), 'DONE');
      assert.equal(hex(takeBytes(t.r)), hex(takeWant(mk, k, i)));
    });
  }
  t.assertAllFree();
});

/** The unfragmented packet a `v4Frag`/`v6Frag` datagram reassembles to. */
function takeWant(mk: typeof v4Frag, k: FragSpec, salt: number): Uint8Array {
  const data = fragData({ start: 0, len: 25, more: false, salt });
  if (mk === v4Frag) return v4Frag({ ...k, start: 0, len: 25, more: false, salt });
  return compose([eth(ETHERTYPE_IPV6), ip6(k.src ?? 'fd00:cafe::a', k.dst ?? 'fd00:cafe::b', k.proto ?? IPPROTO_UDP), { kind: 'data', bytes: data }]);
}

// ---- a model of the rules, checked against random fragment sequences ----------------------------------------------

test('reassembly: random fragment sequences of one datagram follow the rules exactly (model check)', () => {
  const specArb = fc.record(
    {
      start: fc.integer({ min: 0, max: 8 }).map((x) => x * 8),
      units: fc.integer({ min: 1, max: 4 }),
      tail: fc.integer({ min: 1, max: 8 }),
      more: fc.boolean(),
    },
    { noNullPrototype: true },
  );
  fc.assert(
    fc.property(fc.array(specArb, { minLength: 1, maxLength: 12 }), fc.boolean(), (specs, v6) => {
      const mk = v6 ? v6Frag : v4Frag;
      const t = rig();
      type H = { s: number; e: number; more: boolean };
      let held: H[] = [];
      let known = -1;
      const dropped = new Float64Array(t.r.drops.length);
      for (const sp of specs) {
        const len = sp.more ? sp.units * 8 : sp.units * 8 - 8 + sp.tail;
        const s = sp.start;
        const e = s + len;
        let want: string;
        if (s === 0 && !sp.more) want = v6 ? 'DONE' : 'PASS';
        else if (held.length === 0) want = 'HELD';
        else {
          const maxEnd = Math.max(...held.map((h) => h.e));
          const maxMoreEnd = Math.max(-1, ...held.filter((h) => h.more).map((h) => h.e));
          const inconsistent = sp.more ? known >= 0 && e >= known : (known >= 0 && known !== e) || e < maxEnd || e <= maxMoreEnd;
          if (inconsistent) want = 'FragInconsistent';
          else if (held.some((h) => h.s === s && h.e === e)) want = 'FragDuplicate';
          else if (held.some((h) => h.s < e && s < h.e)) want = 'FragOverlap';
          else {
            const end = sp.more ? known : e;
            want = end >= 0 && held.reduce((a, h) => a + h.e - h.s, 0) + len === end ? 'DONE' : 'HELD';
          }
        }
        const got = res(t.add(mk({ start: s, len, more: sp.more })));
        assert.equal(got, want, `${JSON.stringify(sp)} with ${JSON.stringify(held)}, end ${known}`);
        if (want === 'DONE') {
          const bytes = takeBytes(t.r);
          const end = s === 0 && !sp.more ? e : sp.more ? known : e;
          const dataAt = bytes.length - end;
          for (let i = 0; i < end; i++) if (bytes[dataAt + i] !== pattern(i)) assert.fail(`reassembled byte ${i}`);
          if (!(s === 0 && !sp.more)) {
            held = [];
            known = -1;
          }
        } else if (want === 'FragInconsistent' || want === 'FragOverlap') {
          const reason = want === 'FragOverlap' ? DropReason.FragOverlap : DropReason.FragInconsistent;
          dropped[reason] = dropped[reason]! + held.length;
          held = [];
          known = -1;
        } else if (want === 'HELD') {
          held.push({ s, e, more: sp.more });
          if (!sp.more) known = e;
        }
      }
      assert.deepEqual([...t.r.drops], [...dropped]);
      assert.equal(t.r.heldFragments, held.length);
      t.r.clear();
      t.assertAllFree();
    }),
    { numRuns: 400 },
  );
});

// ---- memory ------------------------------------------------------------------------------------------------------------

test('reassembly: a flood of incomplete datagrams from many sources never holds more than memoryCap; the oldest go first', () => {
  const memoryCap = 64 * 1024;
  const t = rig({ memoryCap, perSourceCap: memoryCap, maxDatagrams: 4096 }, 256);
  const size = t.frags.bufferSize;
  const r = rng(42);
  const sent: Array<{ src: string; ident: number; start: number }> = [];
  for (let i = 0; i < 3000; i++) {
    const k = { src: `10.${(i >> 8) & 0xff}.${i & 0xff}.1`, ident: r() & 0xffff, start: 8 * (r() % 100) };
    const x = t.add(v4Frag({ ...k, len: 16, more: true }), i);
    assert.equal(res(x), 'HELD');
    sent.push(k);
    assert.ok(t.r.heldBytes <= memoryCap, `${t.r.heldBytes} held after ${sent.length}`);
    assert.equal(t.r.heldBytes, t.r.heldFragments * size, 'each fragment counted by its whole buffer');
    assert.equal(t.frags.available, t.frags.size - t.r.heldFragments, 'evicted fragments went back to their pool');
  }
  const capacity = Math.floor(memoryCap / size);
  assert.equal(t.r.heldFragments, capacity);
  assert.equal(t.r.drops[DropReason.FragMemoryCap], sent.length - capacity);
  // Oldest first: the last `capacity` datagrams sent are the ones held. The oldest of them completes;
  // the one sent just before it is gone (its pieces start a new datagram).
  const complete = (k: { src: string; ident: number; start: number }, now: number): string[] => [
    ...(k.start > 0 ? [res(t.add(v4Frag({ ...k, start: 0, len: k.start, more: true }), now))] : []),
    res(t.add(v4Frag({ ...k, start: k.start + 16, len: 1, more: false }), now)),
  ];
  assert.equal(complete(sent[sent.length - capacity]!, 5000).at(-1), 'DONE');
  takeBytes(t.r);
  assert.equal(complete(sent[sent.length - capacity - 1]!, 5001).at(-1), 'HELD');
  t.r.clear();
  t.assertAllFree();
});

test('reassembly: when the table of datagrams or fragments is full, the oldest datagram is evicted (FragMemoryCap)', () => {
  const t = rig({ maxDatagrams: 4, maxFragments: 6 }, 32);
  for (let i = 0; i < 4; i++) assert.equal(res(t.add(v4Frag({ start: 0, len: 8, more: true, ident: i }), i)), 'HELD');
  assert.equal(res(t.add(v4Frag({ start: 0, len: 8, more: true, ident: 4 }), 4)), 'HELD');
  assert.equal(t.r.datagrams, 4);
  assert.equal(t.r.drops[DropReason.FragMemoryCap], 1);
  // ident 0 went first: its second half now starts a new datagram instead of completing it.
  assert.equal(res(t.add(v4Frag({ start: 8, len: 3, more: false, ident: 0 }), 5)), 'HELD');
  assert.equal(t.r.drops[DropReason.FragMemoryCap], 2, 'ident 1 made room');
  for (let k = 1; k < 4; k++) assert.equal(res(t.add(v4Frag({ start: 8 * k, len: 8, more: true, ident: 4 }), 6)), 'HELD');
  assert.ok(t.r.heldFragments <= 6);
  assert.equal(t.r.drops[DropReason.FragMemoryCap], 3, 'ident 2 made room for the seventh fragment');
  assert.equal(res(t.add(v4Frag({ start: 32, len: 1, more: false, ident: 4 }), 7)), 'DONE');
  takeBytes(t.r);
  t.r.clear();
  t.assertAllFree();
});

test('reassembly: one datagram needing more fragments than the table holds is discarded (FragMemoryCap), not left half held', () => {
  const t = rig({ maxFragments: 3 }, 16);
  for (let k = 0; k < 3; k++) assert.equal(res(t.add(v4Frag({ start: 8 * k, len: 8, more: true }))), 'HELD');
  assert.equal(res(t.add(v4Frag({ start: 24, len: 8, more: true }))), 'FragMemoryCap');
  assert.equal(t.r.drops[DropReason.FragMemoryCap], 3);
  t.assertAllFree();
  // By bytes, a single source reaches its own share first (perSourceCap ≤ memoryCap): that fragment alone goes.
  const u = rig({ memoryCap: 3 * 2048, perSourceCap: 3 * 2048 }, 16);
  for (let k = 0; k < 3; k++) assert.equal(res(u.add(v4Frag({ start: 8 * k, len: 8, more: true }))), 'HELD');
  assert.equal(res(u.add(v4Frag({ start: 24, len: 8, more: true }))), 'FragPerSourceCap');
  assert.equal(u.r.heldFragments, 3);
  u.r.clear();
  u.assertAllFree();
});

test('reassembly: a source over its share gets FragPerSourceCap while others still get through', () => {
  const size = pool(1, 1500).bufferSize;
  const t = rig({ memoryCap: 64 * size, perSourceCap: 5 * size }, 128);
  const got: string[] = [];
  for (let i = 0; i < 8; i++) got.push(res(t.add(v4Frag({ start: 0, len: 16, more: true, src: '10.0.0.66', ident: i }), i)));
  assert.deepEqual(got, ['HELD', 'HELD', 'HELD', 'HELD', 'HELD', 'FragPerSourceCap', 'FragPerSourceCap', 'FragPerSourceCap']);
  assert.equal(res(t.add(v4Frag({ start: 0, len: 16, more: true, src: '10.0.0.67' }), 9)), 'HELD');
  assert.equal(res(t.add(v6Frag({ start: 0, len: 16, more: true }), 9)), 'HELD');
  // Completing one of the source's datagrams frees its share.
  assert.equal(res(t.add(v4Frag({ start: 16, len: 1, more: false, src: '10.0.0.66', ident: 0 }), 10)), 'DONE');
  takeBytes(t.r);
  assert.equal(res(t.add(v4Frag({ start: 0, len: 16, more: true, src: '10.0.0.66', ident: 99 }), 11)), 'HELD');
  assert.equal(t.r.drops[DropReason.FragPerSourceCap], 0, 'the caller counts the fragments it was told to drop');
  t.r.clear();
  t.assertAllFree();
});

// ---- time ------------------------------------------------------------------------------------------------------------

test('reassembly: a datagram times out exactly timeoutNs after its first fragment (virtual clock), in expire and lazily in add', () => {
  const timeoutNs = 5 * SEC;
  const t = rig({ timeoutNs });
  const t0 = 1_000_000;
  assert.equal(res(t.add(v4Frag({ start: 0, len: 16, more: true }), t0)), 'HELD');
  assert.equal(res(t.add(v4Frag({ start: 16, len: 8, more: true }), t0 + SEC)), 'HELD');
  assert.equal(res(t.add(v6Frag({ start: 0, len: 16, more: true }), t0 + 2 * SEC)), 'HELD');
  assert.equal(t.r.expire(t0 + timeoutNs - 1), 0, 'one nanosecond early');
  assert.equal(t.r.datagrams, 2);
  assert.equal(t.r.expire(t0 + timeoutNs), 2, 'both fragments of the first datagram');
  assert.equal(t.r.drops[DropReason.FragTimeout], 2);
  assert.equal(t.r.datagrams, 1);
  assert.equal(t.frags.available, t.frags.size - 1);
  // Lazily: the fragment that would have completed the IPv6 datagram arrives just too late and starts a new one.
  assert.equal(res(t.add(v6Frag({ start: 16, len: 3, more: false }), t0 + 2 * SEC + timeoutNs)), 'HELD');
  assert.equal(t.r.drops[DropReason.FragTimeout], 3);
  assert.equal(t.r.heldFragments, 1);
  assert.equal(res(t.add(v6Frag({ start: 0, len: 16, more: true }), t0 + 2 * SEC + 2 * timeoutNs - 1)), 'DONE', 'the new one completes in time');
  takeBytes(t.r);
  t.assertAllFree();
});

// ---- buffers ------------------------------------------------------------------------------------------------------------

test('reassembly: no big buffer (pool empty, or too small) discards the datagram (FragNoBuffer)', () => {
  const t = rig();
  const taken = [t.big.alloc()!, t.big.alloc()!];
  assert.equal(res(t.add(v4Frag({ start: 0, len: 16, more: true }))), 'HELD');
  assert.equal(res(t.add(v4Frag({ start: 16, len: 16, more: true }))), 'HELD');
  assert.equal(res(t.add(v4Frag({ start: 32, len: 1, more: false }))), 'FragNoBuffer');
  assert.equal(t.r.drops[DropReason.FragNoBuffer], 2);
  for (const b of taken) b.release();
  const small = pool(1, 1000);
  const r = new Reassembler({ pool: small });
  const frags = pool(4, 1500);
  for (const [start, len, more] of [
    [0, 1000, true],
    [1000, 10, false],
  ] as const) {
    const p = bufOf(frags, v4Frag({ start, len, more }));
    const x = r.add(p, p.start + ETH, 0);
    if (x > 0) p.release();
    if (!more) assert.equal(res(x), 'FragNoBuffer');
  }
  assert.equal(frags.available, 4);
  assert.equal(small.available, 1);
  t.assertAllFree();
});

test('reassembly: options are validated, each RangeError naming its option', () => {
  const big = pool(1, 2048);
  const bad: Array<[keyof ReassemblerOptions, unknown]> = [
    ['timeoutNs', 0],
    ['timeoutNs', -1],
    ['timeoutNs', Number.NaN],
    ['timeoutNs', Infinity],
    ['memoryCap', 0],
    ['memoryCap', 1.5],
    ['memoryCap', 'big'],
    ['perSourceCap', 0],
    ['perSourceCap', 8 << 20],
    ['maxDatagrams', 0],
    ['maxDatagrams', 2.5],
    ['maxFragments', 0],
    ['maxFragments', -3],
  ];
  for (const [name, v] of bad) {
    assert.throws(
      () => new Reassembler({ pool: big, [name]: v } as ReassemblerOptions),
      (e: unknown) => e instanceof RangeError && e.message.includes(name),
      `${name} = ${String(v)}`,
    );
  }
  assert.throws(
    () => new Reassembler({} as ReassemblerOptions),
    (e: unknown) => e instanceof RangeError && e.message.includes('pool'),
  );
  const r = new Reassembler({ pool: big });
  assert.equal(r.timeoutNs, 30e9);
  assert.equal(r.memoryCap, 4 << 20);
  assert.equal(r.perSourceCap, 1 << 20);
});
