import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fragmentIpv4, fragmentIpv6, IPV4_MIN_MTU, IPV6_MIN_MTU } from '../../src/mtu/fragment.js';
import { PacketBuf } from '../../src/packet/buf.js';
import { hex } from '../../src/wire/bytes.js';
import { ipv4HeaderValid } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop.js';
import { Ipv6Walk, walkIpv6, IPV6_NH_FRAGMENT } from '../../src/wire/ipv6.js';
import { fromHex } from '../helpers.js';
import { bufOf, IPV6_NH_DEST_OPTS, IPV6_NH_HOP_BY_HOP, IPV6_NH_ROUTING, pool, v4Frame, v6Frame } from './util.js';

const ETH = 14;
const rd16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;

/** The frames in `out`, copied out (so buffers can be released and the pool checked). */
const framesOf = (out: PacketBuf[]): Uint8Array[] => out.map((q) => q.bytes().slice());

const releaseAll = (out: PacketBuf[]): void => {
  for (const q of out) q.release();
  out.length = 0;
};

interface V4Piece {
  offset: number;
  more: boolean;
  hl: number;
  data: Uint8Array;
  header: Uint8Array;
}

/** Reads an IPv4 fragment with its own offsets (not the module's), checking what every fragment must satisfy. */
function v4Piece(f: Uint8Array, linkLen: number, mtu: number): V4Piece {
  const ip = linkLen;
  const hl = (f[ip]! & 0x0f) * 4;
  const tl = rd16(f, ip + 2);
  assert.equal(f.length, linkLen + tl, 'frame is link header + total length');
  assert.ok(tl <= mtu, `fragment of ${tl} bytes over MTU ${mtu}`);
  assert.ok(ipv4HeaderValid(new DataView(f.buffer, f.byteOffset, f.byteLength), ip, hl), 'header checksum');
  const ff = rd16(f, ip + 6);
  return { offset: (ff & 0x1fff) * 8, more: (ff & 0x2000) !== 0, hl, data: f.subarray(ip + hl, ip + tl), header: f.subarray(ip, ip + hl) };
}

/**
 * Puts IPv4 fragments back together independently of the reassembler: every byte covered exactly once,
 * data a multiple of 8 in all but the last, MF set on all but the last. Returns the data.
 */
function joinV4(frames: Uint8Array[], linkLen: number, mtu: number): { data: Uint8Array; pieces: V4Piece[] } {
  const pieces = frames.map((f) => v4Piece(f, linkLen, mtu));
  const total = Math.max(...pieces.map((p) => p.offset + p.data.length));
  const data = new Uint8Array(total);
  const seen = new Uint8Array(total);
  pieces.forEach((p, i) => {
    const last = i === pieces.length - 1;
    if (!last) assert.equal(p.data.length % 8, 0, `fragment ${i} data length ${p.data.length} not a multiple of 8`);
    if (!last) assert.ok(p.more, `fragment ${i} lacks MF`);
    for (let k = 0; k < p.data.length; k++) {
      if (seen[p.offset + k] !== 0) assert.fail(`byte ${p.offset + k} covered twice`);
      seen[p.offset + k] = 1;
    }
    data.set(p.data, p.offset);
  });
  assert.ok(
    seen.every((x) => x === 1),
    'every byte covered',
  );
  return { data, pieces };
}

// ---- IPv4 ------------------------------------------------------------------------------------------------

test('fragmentIpv4: 4000 bytes at MTU 1500 make three fragments laid out as RFC 791 says', () => {
  const frame = v4Frame({ payload: 4000 - 28, seed: 7, ident: 0xbeef });
  const pl = pool(4, 9216);
  const p = bufOf(pl, frame);
  const start = p.start;
  const out: PacketBuf[] = [];
  assert.equal(fragmentIpv4(p, p.start + ETH, 1500, pl, out), 3);
  assert.equal(out[0], p, 'the first fragment is p');
  assert.equal(p.start, start);
  const frames = framesOf(out);
  assert.deepEqual(
    frames.map((f) => f.length),
    [ETH + 1500, ETH + 1500, ETH + 1040],
  );
  const { data, pieces } = joinV4(frames, ETH, 1500);
  assert.deepEqual(
    pieces.map((x) => x.offset),
    [0, 1480, 2960],
  );
  assert.deepEqual(
    pieces.map((x) => x.more),
    [true, true, false],
  );
  assert.equal(hex(data), hex(frame.subarray(ETH + 20)));
  for (const f of frames) {
    assert.equal(hex(f.subarray(0, ETH)), hex(frame.subarray(0, ETH)), 'link header copied');
    assert.equal(rd16(f, ETH + 4), 0xbeef, 'identification');
    assert.equal(hex(f.subarray(ETH + 8, ETH + 10)), hex(frame.subarray(ETH + 8, ETH + 10)), 'TTL and protocol');
    assert.equal(hex(f.subarray(ETH + 12, ETH + 20)), hex(frame.subarray(ETH + 12, ETH + 20)), 'addresses');
  }
  assert.equal(out[1]!.l3, out[1]!.start + ETH);
  assert.equal(out[1]!.l2, out[1]!.start);
  releaseAll(out);
  assert.equal(pl.available, 4);
});

test('fragmentIpv4: a packet that fits is pushed unchanged and counts 1; out keeps what it held', () => {
  const frame = v4Frame({ payload: 1472 });
  const pl = pool(2, 2048);
  const p = bufOf(pl, frame);
  const other = new PacketBuf(new Uint8Array(600));
  const out: PacketBuf[] = [other];
  assert.equal(fragmentIpv4(p, p.start + ETH, 1500, pl, out), 1);
  assert.deepEqual(out, [other, p]);
  assert.equal(hex(p.bytes()), hex(frame));
  assert.equal(pl.available, 1);
});

test('fragmentIpv4: DF set is not fragmented (-FragNeededDf), p untouched', () => {
  const frame = v4Frame({ payload: 3000, dontFrag: true });
  const pl = pool(4, 9216);
  const p = bufOf(pl, frame);
  const out: PacketBuf[] = [];
  assert.equal(fragmentIpv4(p, p.start + ETH, 1500, pl, out), -DropReason.FragNeededDf);
  assert.equal(out.length, 0);
  assert.equal(hex(p.bytes()), hex(frame));
  assert.equal(pl.available, 3);
});

test('fragmentIpv4: an MTU below 68 is a configuration error (RangeError); 68 works even with a 60-byte header', () => {
  const frame = v4Frame({ payload: 100 });
  const pl = pool(32, 256);
  const p = bufOf(pl, frame);
  for (const bad of [67, 0, -1, Number.NaN, 1500.5]) assert.throws(() => fragmentIpv4(p, p.start + ETH, bad, pl, []), RangeError);
  assert.equal(hex(p.bytes()), hex(frame));
  // 40 bytes of options whose copied flag is set: every fragment has a 60-byte header and 8 bytes of data.
  const opts = fromHex('8327' + '04' + '00'.repeat(36) + '00');
  const big = v4Frame({ payload: 40, options: opts });
  const q = bufOf(pl, big);
  const out: PacketBuf[] = [];
  const n = fragmentIpv4(q, q.start + ETH, 68, pl, out);
  assert.equal(n, Math.ceil(48 / 8));
  const { data, pieces } = joinV4(framesOf(out), ETH, 68);
  assert.ok(pieces.every((x) => x.hl === 60));
  assert.equal(hex(data), hex(big.subarray(ETH + 60)));
  releaseAll(out);
  p.release();
  assert.equal(pl.available, 32);
});

test('fragmentIpv4: later fragments carry only the options with the copied flag (RFC 791 §3.2)', () => {
  // NOP, Record Route (7, not copied), Loose Source Route (0x83, copied), End.
  const rr = '07' + '07' + '04' + 'c0a80001';
  const lsrr = '83' + '07' + '04' + 'c0a80063';
  const options = fromHex('01' + rr + lsrr + '00');
  const frame = v4Frame({ payload: 3000, options });
  const pl = pool(4, 9216);
  const p = bufOf(pl, frame);
  const out: PacketBuf[] = [];
  const n = fragmentIpv4(p, p.start + ETH, 1000, pl, out);
  const { data, pieces } = joinV4(framesOf(out), ETH, 1000);
  assert.equal(n, pieces.length);
  assert.equal(hex(pieces[0]!.header.subarray(20)), hex(options), 'the first fragment keeps every option');
  for (const x of pieces.slice(1)) assert.equal(hex(x.header.subarray(20)), lsrr + '00', 'copied options, padded with End');
  assert.equal(hex(data), hex(frame.subarray(ETH + 20 + options.length)));
  releaseAll(out);
});

test('fragmentIpv4: refragmenting a fragment keeps its offset and, in the last piece, its MF flag', () => {
  const frame = v4Frame({ payload: 8000, seed: 3 });
  const pl = pool(32, 9216);
  const p = bufOf(pl, frame);
  const first: PacketBuf[] = [];
  assert.equal(fragmentIpv4(p, p.start + ETH, 3000, pl, first), 3);
  // Each of the three goes through a smaller link: its pieces must still fit the original datagram.
  const all: Uint8Array[] = [];
  for (const f of first) {
    const out: PacketBuf[] = [];
    const n = fragmentIpv4(f, f.start + ETH, 576, pl, out);
    assert.ok(n > 1);
    all.push(...framesOf(out));
    releaseAll(out);
  }
  const { data, pieces } = joinV4(all, ETH, 576);
  assert.equal(hex(data), hex(frame.subarray(ETH + 20)));
  assert.equal(pieces.filter((x) => !x.more).length, 1, 'one last fragment');
  assert.equal(pl.available, 32);
});

test('fragmentIpv4: a pool that runs dry gives -PoolExhausted, and p, out and the pool are as they were', () => {
  const frame = v4Frame({ payload: 5000 });
  const big = pool(1, 9216);
  const small = pool(2, 1600); // four fragments need three
  const p = bufOf(big, frame);
  const keep = new PacketBuf(new Uint8Array(600));
  const out: PacketBuf[] = [keep];
  assert.equal(fragmentIpv4(p, p.start + ETH, 1500, small, out), -DropReason.PoolExhausted);
  assert.deepEqual(out, [keep]);
  assert.equal(small.available, 2);
  assert.equal(hex(p.bytes()), hex(frame));
  // Buffers too small for a fragment: -FrameTooLong, nothing taken.
  const tiny = pool(8, 1000);
  assert.equal(fragmentIpv4(p, p.start + ETH, 1500, tiny, out), -DropReason.FrameTooLong);
  assert.equal(tiny.available, 8);
  assert.equal(hex(p.bytes()), hex(frame));
});

test('fragmentIpv4: malformed headers return a negative reason and never throw', () => {
  const pl = pool(8, 2048);
  const frame = v4Frame({ payload: 1800 });
  const cases: Array<[string, (b: Uint8Array) => void, DropReason]> = [
    [
      'version',
      (b) => {
        b[ETH] = 0x55;
      },
      DropReason.Ipv4BadVersion,
    ],
    [
      'header length',
      (b) => {
        b[ETH] = 0x44;
      },
      DropReason.Ipv4BadHeaderLen,
    ],
    [
      'total length',
      (b) => {
        b[ETH + 2] = 0xff;
      },
      DropReason.Ipv4BadTotalLen,
    ],
    [
      'offset past 65,535',
      (b) => {
        b[ETH + 6] = 0x1f;
        b[ETH + 7] = 0xf0;
      },
      DropReason.FragBadLength,
    ],
  ];
  for (const [what, poke, want] of cases) {
    const f = frame.slice();
    poke(f);
    const p = bufOf(pl, f);
    const out: PacketBuf[] = [];
    assert.equal(fragmentIpv4(p, p.start + ETH, 1500, pl, out), -want, what);
    assert.equal(hex(p.bytes()), hex(f), what);
    p.release();
  }
  const p = bufOf(pl, frame.subarray(0, ETH + 10));
  assert.equal(fragmentIpv4(p, p.start + ETH, 1500, pl, []), -DropReason.Ipv4Truncated);
  p.release();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), (junk) => {
      const q = pl.alloc()!;
      q.load(junk);
      const out: PacketBuf[] = [];
      const n = fragmentIpv4(q, q.start, 576, pl, out);
      assert.ok(n !== 0);
      if (n > 0) for (const x of out) if (x !== q) x.release();
      q.release();
      assert.equal(pl.available, 8);
    }),
  );
});

/** Fragments a random datagram and checks it with `joinV4`; the pool must get every buffer back. */
function v4Property(maxPayload: number, runs: number): void {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: maxPayload }),
      fc.integer({ min: IPV4_MIN_MTU, max: Math.min(9000, maxPayload) }),
      fc.boolean(),
      fc.boolean(),
      fc.integer({ min: 0, max: 9 }),
      fc.integer({ min: 1, max: 1 << 30 }),
      (payload, mtu, vlan, withTcp, optWords, seed) => {
        // NOPs (not copied), led by a Loose Source Route (copied) when there is room.
        const options = new Uint8Array(optWords * 4).fill(1);
        if (optWords >= 2) options.set([0x83, 7, 4, 10, 0, 0, 1]);
        const frame = v4Frame({ payload, seed, vlan, tcp: withTcp, options });
        const linkLen = vlan ? 18 : 14;
        const hl = 20 + options.length;
        const fragCount = Math.ceil((frame.length - linkLen) / 8) + 1;
        const big = pool(1, 65535 + 18);
        const pl = pool(fragCount, mtu + 18);
        const p = bufOf(big, frame, linkLen);
        const out: PacketBuf[] = [];
        const n = fragmentIpv4(p, p.start + linkLen, mtu, pl, out);
        assert.equal(n, out.length);
        const frames = framesOf(out);
        if (frame.length - linkLen <= mtu) {
          assert.equal(n, 1);
          assert.equal(hex(frames[0]!), hex(frame));
        } else {
          const { data } = joinV4(frames, linkLen, mtu);
          assert.equal(hex(data), hex(frame.subarray(linkLen + hl)));
          for (const f of frames) assert.equal(hex(f.subarray(0, linkLen)), hex(frame.subarray(0, linkLen)));
        }
        releaseAll(out);
        assert.equal(pl.available, pl.size);
        assert.equal(big.available, 1);
      },
    ),
    { numRuns: runs },
  );
}

test('fragmentIpv4: random datagrams up to 9000 bytes at random MTUs reassemble to the original', () => v4Property(9000, 150));
test('fragmentIpv4: random datagrams up to 65,000 bytes reassemble to the original', () => v4Property(65000 - 100, 25));

// ---- IPv6 ------------------------------------------------------------------------------------------------

interface V6Piece {
  offset: number;
  more: boolean;
  ident: number;
  nextHeader: number;
  unfrag: Uint8Array;
  data: Uint8Array;
}

const walk = new Ipv6Walk();

function v6Piece(f: Uint8Array, mtu: number): V6Piece {
  const ip = ETH;
  const end = ip + 40 + rd16(f, ip + 4);
  assert.equal(f.length, end, 'frame is link header + IPv6 packet');
  assert.ok(end - ip <= mtu, `fragment of ${end - ip} bytes over MTU ${mtu}`);
  assert.equal(walkIpv6(f, ip, end, walk), null);
  const fh = walk.fragOff;
  assert.ok(fh > 0, 'has a Fragment header');
  assert.equal(f[fh + 1], 0, 'reserved octet');
  const om = rd16(f, fh + 2);
  assert.equal(om & 6, 0, 'reserved bits');
  const ident = ((f[fh + 4]! << 24) | (f[fh + 5]! << 16) | (f[fh + 6]! << 8) | f[fh + 7]!) >>> 0;
  return { offset: om & 0xfff8, more: (om & 1) === 1, ident, nextHeader: f[fh]!, unfrag: f.subarray(ip, fh), data: f.subarray(fh + 8, end) };
}

/** The independent IPv6 counterpart of `joinV4`; also checks the per-fragment headers are the same in all. */
function joinV6(frames: Uint8Array[], mtu: number): { data: Uint8Array; pieces: V6Piece[] } {
  const pieces = frames.map((f) => v6Piece(f, mtu));
  const total = Math.max(...pieces.map((p) => p.offset + p.data.length));
  const data = new Uint8Array(total);
  const seen = new Uint8Array(total);
  pieces.forEach((p, i) => {
    const last = i === pieces.length - 1;
    if (!last) assert.equal(p.data.length % 8, 0);
    assert.equal(p.more, !last);
    assert.equal(p.ident, pieces[0]!.ident);
    assert.equal(p.nextHeader, pieces[0]!.nextHeader);
    // Everything but the payload length is the same in every copy of the unfragmentable part.
    const a = p.unfrag.slice();
    const b0 = pieces[0]!.unfrag.slice();
    a[4] = a[5] = b0[4] = b0[5] = 0;
    assert.equal(hex(a), hex(b0));
    for (let k = 0; k < p.data.length; k++) {
      if (seen[p.offset + k] !== 0) assert.fail(`byte ${p.offset + k} covered twice`);
      seen[p.offset + k] = 1;
    }
    data.set(p.data, p.offset);
  });
  assert.ok(
    seen.every((x) => x === 1),
    'every byte covered',
  );
  return { data, pieces };
}

test('fragmentIpv6: 3000 bytes at MTU 1280: Fragment header after the IPv6 header, p moved 8 bytes into its headroom', () => {
  const frame = v6Frame({ payload: 3000 - 48, seed: 5 });
  const pl = pool(4, 2048);
  const big = pool(1, 9216);
  const p = bufOf(big, frame);
  const start = p.start;
  const out: PacketBuf[] = [];
  assert.equal(fragmentIpv6(p, p.start + ETH, 1280, pl, out, 0xdeadbeef), 3);
  assert.equal(p.start, start - 8);
  assert.equal(p.l2, start - 8);
  assert.equal(p.l3, start - 8 + ETH);
  const frames = framesOf(out);
  assert.deepEqual(
    frames.map((f) => f.length),
    [ETH + 1280, ETH + 1280, ETH + 3000 - 2 * 1232 + 48 - 40],
  );
  const { data, pieces } = joinV6(frames, 1280);
  assert.deepEqual(
    pieces.map((x) => x.offset),
    [0, 1232, 2464],
  );
  assert.ok(pieces.every((x) => x.ident === 0xdeadbeef && x.nextHeader === 17));
  for (const f of frames) {
    assert.equal(f[ETH + 6], IPV6_NH_FRAGMENT);
    assert.equal(hex(f.subarray(0, ETH + 4)), hex(frame.subarray(0, ETH + 4)), 'link header, version, class, flow label');
    assert.equal(hex(f.subarray(ETH + 7, ETH + 40)), hex(frame.subarray(ETH + 7, ETH + 40)), 'hop limit, addresses');
  }
  assert.equal(hex(data), hex(frame.subarray(ETH + 40)));
  releaseAll(out);
  assert.equal(pl.available, 4);
});

test('fragmentIpv6: the unfragmentable part runs to the last Routing header, Destination Options before it included (RFC 8200 §4.5)', () => {
  // `nhAt`: the next-header octet (from the IPv6 header) that must now name the Fragment header.
  const cases: Array<{ ext: number[]; unfrag: number; next: number; nhAt: number }> = [
    { ext: [IPV6_NH_HOP_BY_HOP, IPV6_NH_DEST_OPTS, IPV6_NH_ROUTING, IPV6_NH_DEST_OPTS], unfrag: 40 + 8 + 8 + 24, next: IPV6_NH_DEST_OPTS, nhAt: 56 },
    { ext: [IPV6_NH_HOP_BY_HOP, IPV6_NH_DEST_OPTS], unfrag: 40 + 8, next: IPV6_NH_DEST_OPTS, nhAt: 40 },
    { ext: [IPV6_NH_DEST_OPTS], unfrag: 40, next: IPV6_NH_DEST_OPTS, nhAt: 6 },
    { ext: [IPV6_NH_ROUTING], unfrag: 40 + 24, next: 17, nhAt: 40 },
  ];
  for (const c of cases) {
    const frame = v6Frame({ payload: 4000, ext: c.ext });
    const big = pool(1, 9216);
    const pl = pool(8, 1400);
    const p = bufOf(big, frame);
    const out: PacketBuf[] = [];
    const n = fragmentIpv6(p, p.start + ETH, 1280, pl, out, 77);
    const frames = framesOf(out);
    const { data, pieces } = joinV6(frames, 1280);
    assert.equal(n, pieces.length);
    for (const x of pieces) {
      assert.equal(x.unfrag.length, c.unfrag, `${c.ext.join(',')}: unfragmentable length`);
      assert.equal(x.nextHeader, c.next, `${c.ext.join(',')}: Fragment header's next header`);
      // The unfragmentable part is the original's, but for the payload length and the octet naming the Fragment header.
      const u = x.unfrag.slice();
      const o = frame.slice(ETH, ETH + c.unfrag);
      u[4] = u[5] = o[4] = o[5] = 0;
      assert.equal(u[c.nhAt], IPV6_NH_FRAGMENT, `${c.ext.join(',')}: chain points at the Fragment header`);
      u[c.nhAt] = o[c.nhAt]!;
      assert.equal(hex(u), hex(o));
    }
    assert.equal(hex(data), hex(frame.subarray(ETH + c.unfrag)));
    releaseAll(out);
  }
});

test('fragmentIpv6: an MTU below 1280 is a configuration error (RangeError)', () => {
  const pl = pool(4, 2048);
  const p = bufOf(pl, v6Frame({ payload: 1500 }));
  for (const bad of [1279, 576, 68, Number.NaN, 1280.5]) assert.throws(() => fragmentIpv6(p, p.start + ETH, bad, pl, [], 1), RangeError);
});

test('fragmentIpv6: unfragmentable part too long (-MtuExceeded), no headroom (-HeadroomShort), pool dry (-PoolExhausted): p untouched', () => {
  const pl = pool(2, 9216);
  const out: PacketBuf[] = [];
  // A Routing header with 80 addresses: 1288 bytes that every fragment would have to repeat.
  const longRh = { kind: 'ipv6ext' as const, repr: { headerType: IPV6_NH_ROUTING, nextHeader: 17, data: new Uint8Array(6 + 80 * 16) } };
  const withRh = v6Frame({ payload: 100 });
  const raw = new Uint8Array(withRh.length + 1288);
  raw.set(withRh.subarray(0, ETH + 40));
  raw[ETH + 6] = IPV6_NH_ROUTING;
  raw[ETH + 40] = 17;
  raw[ETH + 41] = (1288 >> 3) - 1;
  raw.set(longRh.repr.data, ETH + 42);
  raw.set(withRh.subarray(ETH + 40), ETH + 40 + 1288);
  raw[ETH + 4] = (raw.length - ETH - 40) >> 8;
  raw[ETH + 5] = (raw.length - ETH - 40) & 0xff;
  const p = bufOf(pl, raw);
  assert.equal(fragmentIpv6(p, p.start + ETH, 1280, pl, out, 1), -DropReason.MtuExceeded);
  assert.equal(hex(p.bytes()), hex(raw));
  p.release();

  const frame = v6Frame({ payload: 3000 });
  const q = pl.alloc()!;
  q.start = 4;
  q.data.set(frame, 4);
  q.end = 4 + frame.length;
  assert.equal(fragmentIpv6(q, q.start + ETH, 1280, pl, out, 1), -DropReason.HeadroomShort);
  assert.equal(hex(q.bytes()), hex(frame));
  q.load(frame);
  const dry = pool(1, 2048);
  assert.equal(fragmentIpv6(q, q.start + ETH, 1280, dry, out, 1), -DropReason.PoolExhausted);
  assert.equal(hex(q.bytes()), hex(frame));
  assert.equal(dry.available, 1);
  assert.equal(out.length, 0);
  const tiny = pool(4, 1000);
  assert.equal(fragmentIpv6(q, q.start + ETH, 1280, tiny, out, 1), -DropReason.FrameTooLong);
  assert.equal(tiny.available, 4);
  assert.equal(hex(q.bytes()), hex(frame));
});

test('fragmentIpv6: refragmenting a fragment keeps its identification, offset and last M flag', () => {
  const frame = v6Frame({ payload: 9000, seed: 11 });
  const pl = pool(40, 9216);
  const p = bufOf(pl, frame);
  const first: PacketBuf[] = [];
  assert.equal(fragmentIpv6(p, p.start + ETH, 4000, pl, first, 0x01020304), 3);
  const all: Uint8Array[] = [];
  for (const f of first) {
    const out: PacketBuf[] = [];
    assert.ok(fragmentIpv6(f, f.start + ETH, 1280, pl, out, 0x99) >= 1);
    all.push(...framesOf(out));
    releaseAll(out);
  }
  assert.equal(all.length, 4 + 4 + 1, 'two 3952-byte pieces in four each (1232 per piece), the 1144-byte last one fits');
  const byOffset = all
    .map((f) => ({ f, off: v6Piece(f, 1280).offset }))
    .sort((a, b) => a.off - b.off)
    .map((x) => x.f);
  const { data, pieces } = joinV6(byOffset, 1280);
  assert.ok(
    pieces.every((x) => x.ident === 0x01020304),
    'identification kept, not replaced',
  );
  assert.equal(hex(data), hex(frame.subarray(ETH + 40)));
  assert.equal(pl.available, 40);
});

test('fragmentIpv6: random datagrams (extension headers, sizes up to 65,000, MTUs) reassemble to the original', () => {
  const extArb = fc.constantFrom<number[]>(
    [],
    [IPV6_NH_HOP_BY_HOP],
    [IPV6_NH_ROUTING],
    [IPV6_NH_DEST_OPTS],
    [IPV6_NH_HOP_BY_HOP, IPV6_NH_DEST_OPTS, IPV6_NH_ROUTING, IPV6_NH_DEST_OPTS],
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 65000 - 200 }),
      fc.integer({ min: IPV6_MIN_MTU, max: 9000 }),
      extArb,
      fc.integer({ min: 1, max: 1 << 30 }),
      fc.nat(),
      (payload, mtu, ext, seed, ident) => {
        const frame = v6Frame({ payload, ext, seed });
        const big = pool(1, 65535 + 14);
        const pl = pool(Math.ceil(frame.length / 1000) + 1, mtu + 14);
        const p = bufOf(big, frame);
        const out: PacketBuf[] = [];
        const n = fragmentIpv6(p, p.start + ETH, mtu, pl, out, ident);
        assert.equal(n, out.length);
        const frames = framesOf(out);
        if (frame.length - ETH <= mtu) assert.equal(hex(frames[0]!), hex(frame));
        else {
          const { data, pieces } = joinV6(frames, mtu);
          const unfrag = pieces[0]!.unfrag.length;
          assert.equal(hex(data), hex(frame.subarray(ETH + unfrag)));
          assert.ok(pieces.every((x) => x.ident === ident >>> 0));
        }
        releaseAll(out);
        assert.equal(pl.available, pl.size);
      },
    ),
    { numRuns: 60 },
  );
});
