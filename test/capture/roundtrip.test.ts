import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  createParser,
  detectFormat,
  FileSink,
  PcapngParser,
  PcapngWriter,
  PcapParser,
  PcapWriter,
  readCapture,
  type CaptureRecord,
} from '../../src/capture/index.js';
import { fromHex } from '../helpers.js';
import { Body, block, concat, feed, memorySink, splitAt, text, withTempDir } from './util.js';

const TS = 1_700_000_000_123_456_789n; // 0x17979cfe3d85cd15
const ABC = text('abc');

// ------------------------------------------------------------------------------------------------ golden

const SHB_SEINE_LE = fromHex('0a0d0d0a 2c000000 4d3c2b1a 0100 0000 ffffffff ffffffff 0400 0500 7365696e 65000000 0000 0000 2c000000');
const IDB_ETH0_LE = fromHex('01000000 28000000 0100 0000 00000400 0200 0400 65746830 0900 0100 09000000 0000 0000 28000000');
const EPB_ABC_LE = fromHex('06000000 24000000 00000000 fe9c9717 15cd853d 03000000 03000000 61626300 24000000');

test('pcapng: construct (golden bytes, little-endian)', () => {
  const m = memorySink();
  const w = new PcapngWriter(m.sink);
  assert.equal(w.addInterface('eth0'), 0);
  w.writePacket(0, TS, ABC);
  assert.deepEqual(m.chunks, [SHB_SEINE_LE, IDB_ETH0_LE, EPB_ABC_LE]);
});

test('pcapng: construct (golden bytes, big-endian, no application name, snaplen cut)', () => {
  const m = memorySink();
  const w = new PcapngWriter(m.sink, { littleEndian: false, userAppl: '' });
  w.addInterface('', 101, 2);
  w.writePacket(0, 1n, ABC, 40);
  assert.deepEqual(m.chunks, [
    fromHex('0a0d0d0a 0000001c 1a2b3c4d 0001 0000 ffffffff ffffffff 0000001c'),
    fromHex('00000001 00000020 0065 0000 00000002 0009 0001 09000000 0000 0000 00000020'),
    fromHex('00000006 00000024 00000000 00000000 00000001 00000002 00000028 61620000 00000024'),
  ]);
});

test('pcapng: deconstruct (golden bytes)', () => {
  const p = new PcapngParser();
  const { records, error } = feed([concat([SHB_SEINE_LE, IDB_ETH0_LE, EPB_ABC_LE])], p);
  assert.equal(error, null);
  assert.deepEqual(records, [{ ifIndex: 0, linkType: 1, timestampNs: TS, data: ABC, origLen: 3 }]);
  assert.deepEqual(p.interfaces, [{ name: 'eth0', linkType: 1, snaplen: 262144 }]);
  assert.deepEqual(p.section, { index: 0, littleEndian: true, major: 1, minor: 0, userAppl: 'seine' });
});

const PCAP_US_BE = fromHex('a1b2c3d4 0002 0004 00000000 00000000 00040000 00000001' + '6553f100 0001e240 00000003 00000003 616263');
const PCAP_NS_LE = fromHex('4d3cb2a1 0200 0400 00000000 00000000 ffff0000 65000000' + '00f15365 15cd5b07 02000000 03000000 6162');

test('pcap: construct (golden bytes, both resolutions and byte orders)', () => {
  const a = memorySink();
  new PcapWriter(a.sink, { resolution: 'us', littleEndian: false }).writePacket(0, TS, ABC);
  assert.deepEqual(a.bytes(), PCAP_US_BE);
  const b = memorySink();
  new PcapWriter(b.sink, { linkType: 101, snaplen: 0xffff }).writePacket(0, TS, ABC.subarray(0, 2), 3);
  assert.deepEqual(b.bytes(), PCAP_NS_LE);
});

test('pcap: deconstruct (golden bytes)', () => {
  const p = new PcapParser();
  assert.deepEqual(feed([PCAP_US_BE], p).records, [{ ifIndex: 0, linkType: 1, timestampNs: 1_700_000_000_123_456_000n, data: ABC, origLen: 3 }]);
  assert.equal(p.nanosecond, false);
  assert.deepEqual(p.interfaces, [{ name: '', linkType: 1, snaplen: 262144 }]);
  const q = new PcapParser();
  assert.deepEqual(feed([PCAP_NS_LE], q).records, [{ ifIndex: 0, linkType: 101, timestampNs: TS, data: ABC.subarray(0, 2), origLen: 3 }]);
  assert.equal(q.nanosecond, true);
});

test('detectFormat and createParser pick the format from the magic number', () => {
  assert.equal(detectFormat(PCAP_US_BE), 'pcap');
  assert.equal(detectFormat(PCAP_NS_LE), 'pcap');
  assert.equal(detectFormat(SHB_SEINE_LE), 'pcapng');
  assert.equal(detectFormat(fromHex('00000000')), null);
  assert.equal(detectFormat(fromHex('0a0d0d')), null);
  const p = createParser();
  assert.equal(p.format, null);
  p.push(PCAP_NS_LE.subarray(0, 3)); // not enough to decide yet
  assert.equal(p.next(), null);
  p.push(PCAP_NS_LE.subarray(3));
  assert.equal(p.next()?.timestampNs, TS);
  assert.equal(p.format, 'pcap');
});

// ------------------------------------------------------------------------------------------ round trips

const arbPacket = fc.record({
  ifPick: fc.nat(),
  timestampNs: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  data: fc.uint8Array({ maxLength: 300 }),
  extra: fc.oneof(fc.constant(0), fc.nat(2000)),
});
const arbIface = fc.record({
  name: fc.string({ unit: 'binary', maxLength: 40 }).filter((n) => !n.includes('\0')),
  linkType: fc.oneof(fc.constantFrom(1, 101), fc.integer({ min: 0, max: 0xffff })),
  snaplen: fc.oneof(fc.constant(0), fc.constant(262144), fc.integer({ min: 1, max: 400 })),
});
const arbSplits = fc.array(fc.nat(4000), { maxLength: 12 });

test('pcapng: writer then reader is the identity, however the stream is chunked', () => {
  fc.assert(
    fc.property(
      fc.array(arbIface, { minLength: 1, maxLength: 4 }),
      fc.array(arbPacket, { maxLength: 12 }),
      fc.boolean(),
      arbSplits,
      (ifaces, packets, le, splits) => {
        const m = memorySink();
        const w = new PcapngWriter(m.sink, { littleEndian: le });
        for (const i of ifaces) w.addInterface(i.name, i.linkType, i.snaplen);
        const expected: CaptureRecord[] = [];
        for (const p of packets) {
          const ifIndex = p.ifPick % ifaces.length;
          const { linkType, snaplen } = ifaces[ifIndex]!;
          const origLen = p.data.length + p.extra;
          w.writePacket(ifIndex, p.timestampNs, p.data, origLen);
          const data = snaplen === 0 ? p.data : p.data.subarray(0, snaplen);
          expected.push({ ifIndex, linkType, timestampNs: p.timestampNs, data, origLen });
        }
        const parser = createParser();
        const { records, error } = feed(splitAt(m.bytes(), splits), parser);
        assert.equal(error, null);
        assert.deepEqual(records, expected);
        assert.deepEqual(
          parser.interfaces,
          ifaces.map((i) => ({ name: i.name, linkType: i.linkType, snaplen: i.snaplen })),
        );
        assert.equal(parser.section?.littleEndian, le);
      },
    ),
  );
});

test('pcap: writer then reader is the identity (µs timestamps truncated), however the stream is chunked', () => {
  fc.assert(
    fc.property(
      fc.array(
        arbPacket.map((p) => ({ ...p, timestampNs: p.timestampNs % (2n ** 32n * 1_000_000_000n) })),
        { maxLength: 12 },
      ),
      fc.constantFrom('ns' as const, 'us' as const),
      fc.boolean(),
      arbIface,
      arbSplits,
      (packets, resolution, le, iface, splits) => {
        const snaplen = iface.snaplen === 0 ? 65535 : iface.snaplen;
        const m = memorySink();
        const w = new PcapWriter(m.sink, { resolution, littleEndian: le, linkType: iface.linkType, snaplen });
        assert.equal(w.addInterface(iface.name, iface.linkType, snaplen), 0);
        const expected = packets.map((p): CaptureRecord => {
          const origLen = p.data.length + p.extra;
          w.writePacket(0, p.timestampNs, p.data, origLen);
          const timestampNs = resolution === 'ns' ? p.timestampNs : p.timestampNs - (p.timestampNs % 1000n);
          return { ifIndex: 0, linkType: iface.linkType, timestampNs, data: p.data.subarray(0, snaplen), origLen };
        });
        const parser = createParser();
        const { records, error } = feed(splitAt(m.bytes(), splits), parser);
        assert.equal(error, null);
        assert.deepEqual(records, expected);
        assert.deepEqual(parser.interfaces, [{ name: '', linkType: iface.linkType, snaplen }]);
      },
    ),
  );
});

/** A small capture with records of several sizes, in both formats. */
function sample(): { pcapng: Uint8Array; pcap: Uint8Array; records: CaptureRecord[] } {
  const a = memorySink();
  const ng = new PcapngWriter(a.sink);
  ng.addInterface('gw0');
  const b = memorySink();
  const pc = new PcapWriter(b.sink);
  const records: CaptureRecord[] = [];
  for (let i = 0; i < 5; i++) {
    const data = Uint8Array.from({ length: 1 + i * 37 }, (_, k) => (k * 7 + i) & 0xff);
    const ts = 1_000_000_000n * BigInt(i) + BigInt(i * 999);
    ng.writePacket(0, ts, data);
    pc.writePacket(0, ts, data);
    records.push({ ifIndex: 0, linkType: 1, timestampNs: ts, data, origLen: data.length });
  }
  return { pcapng: a.bytes(), pcap: b.bytes(), records };
}

test('streaming: one byte at a time, and every two-chunk split, give the same records', () => {
  const s = sample();
  for (const bytes of [s.pcapng, s.pcap]) {
    const bytewise = Array.from(bytes, (x) => Uint8Array.of(x));
    assert.deepEqual(feed(bytewise), { records: s.records, error: null });
    for (let cut = 0; cut <= bytes.length; cut++) {
      assert.deepEqual(feed([bytes.subarray(0, cut), bytes.subarray(cut)]), { records: s.records, error: null }, `cut at ${cut}`);
    }
  }
});

test('streaming: records come out as soon as they are complete, not at the end', () => {
  const s = sample();
  const p = createParser();
  const got: CaptureRecord[] = [];
  for (const x of s.pcapng) {
    p.push(Uint8Array.of(x));
    for (const r of p.records()) got.push(r);
  }
  assert.deepEqual(got, s.records); // before end() was called
  p.end();
  assert.equal(p.next(), null);
});

test('streaming: records own their bytes (pushed chunks can be dropped, records stay intact)', () => {
  const s = sample();
  const copy = s.pcapng.slice();
  const p = createParser();
  p.push(copy);
  const got = [...p.records()];
  copy.fill(0);
  assert.deepEqual(got, s.records);
});

// ------------------------------------------------------------------------------------- pcapng features

/** A Section Header Block built by hand. */
function shb(le: boolean, options: Uint8Array = new Uint8Array(0)): Uint8Array {
  return block(0x0a0d0d0a, new Body(le).u32(0x1a2b3c4d).u16(1).u16(0).u64(-1n).bytes(options).done(), le);
}
function idb(le: boolean, linkType: number, snaplen: number, options: Uint8Array = new Uint8Array(0)): Uint8Array {
  return block(1, new Body(le).u16(linkType).u16(0).u32(snaplen).bytes(options).done(), le);
}
function epb(le: boolean, ifId: number, ts: bigint, data: Uint8Array, origLen = data.length, options: Uint8Array = new Uint8Array(0)): Uint8Array {
  return block(
    6,
    new Body(le)
      .u32(ifId)
      .u32(Number(ts >> 32n))
      .u32(Number(ts & 0xffffffffn))
      .u32(data.length)
      .u32(origLen)
      .bytes(data)
      .pad()
      .bytes(options)
      .done(),
    le,
  );
}

test('pcapng: several sections in both byte orders, each with its own interfaces', () => {
  const input = concat([
    shb(true, new Body(true).opt(2, text('box')).opt(3, text('os\0')).opt(4, text('app')).u32(0).done()),
    idb(true, 1, 0, new Body(true).opt(2, text('a')).opt(9, Uint8Array.of(9)).u32(0).done()),
    idb(true, 101, 0, new Body(true).opt(2, text('b')).opt(9, Uint8Array.of(9)).u32(0).done()),
    epb(true, 1, 5n, ABC),
    shb(false),
    idb(false, 113, 1500, new Body(false).opt(2, text('c')).opt(9, Uint8Array.of(9)).done()), // no opt_endofopt: allowed
    epb(
      false,
      0,
      7n,
      ABC,
      3,
      new Body(false)
        .opt(2, Uint8Array.of(0, 0, 0, 1))
        .u32(0)
        .done(),
    ), // epb_flags
  ]);
  const p = new PcapngParser();
  p.push(input);
  assert.deepEqual(p.next(), { ifIndex: 1, linkType: 101, timestampNs: 5n, data: ABC, origLen: 3 });
  assert.deepEqual(
    p.interfaces.map((i) => i.name),
    ['a', 'b'],
  );
  assert.deepEqual(p.section, { index: 0, littleEndian: true, major: 1, minor: 0, hardware: 'box', os: 'os', userAppl: 'app' });
  assert.deepEqual(p.next(), { ifIndex: 0, linkType: 113, timestampNs: 7n, data: ABC, origLen: 3 });
  assert.deepEqual(p.interfaces, [{ name: 'c', linkType: 113, snaplen: 1500 }]);
  assert.deepEqual(p.section, { index: 1, littleEndian: false, major: 1, minor: 0 });
  p.end();
  assert.equal(p.next(), null);
});

test('pcapng: if_tsresol (powers of 10 and 2), its default, and if_tsoffset are honoured', () => {
  const le = true;
  const input = concat([
    shb(le),
    idb(le, 1, 0), // no if_tsresol: microseconds
    idb(le, 1, 0, new Body(le).opt(9, Uint8Array.of(3)).u32(0).done()), // milliseconds
    idb(
      le,
      1,
      0,
      new Body(le)
        .opt(9, Uint8Array.of(0x80 | 10))
        .u32(0)
        .done(),
    ), // 2^-10 s
    idb(le, 1, 0, new Body(le).opt(9, Uint8Array.of(12)).u32(0).done()), // picoseconds
    idb(
      le,
      1,
      0,
      new Body(le)
        .opt(9, Uint8Array.of(0x80 | 0))
        .opt(14, new Body(le).u64(-5n).done())
        .u32(0)
        .done(),
    ), // s, offset -5 s
    epb(le, 0, 1_500_000n, ABC),
    epb(le, 1, 1_500n, ABC),
    epb(le, 2, 1024n * 3n + 512n, ABC),
    epb(le, 3, 1_234_567_891_234n, ABC),
    epb(le, 4, 1_700_000_005n, ABC),
  ]);
  const got = feed([input]).records.map((r) => r.timestampNs);
  assert.deepEqual(got, [1_500_000_000n, 1_500_000_000n, 3_500_000_000n, 1_234_567_891n, 1_700_000_000_000_000_000n]);
});

test('pcapng: Simple Packet Blocks, obsolete Packet Blocks, and unknown blocks', () => {
  const le = false;
  const input = concat([
    shb(le),
    block(0x0badcafe, text('anything at all'), le), // unknown: skipped
    idb(le, 1, 4),
    block(4, new Body(le).u16(0).u16(0).done(), le), // Name Resolution Block: skipped
    block(3, new Body(le).u32(6).bytes(text('abcdef')).done(), le), // SPB: cut to snaplen 4
    block(3, new Body(le).u32(2).bytes(text('xy')).done(), le),
    block(2, new Body(le).u16(0).u16(0).u32(0).u32(9).u32(3).u32(3).bytes(ABC).pad().done(), le), // PB, µs
    block(0x40000bad, new Uint8Array(0), le), // custom-range type, empty body
  ]);
  const { records, error } = feed([input]);
  assert.equal(error, null);
  assert.deepEqual(records, [
    { ifIndex: 0, linkType: 1, timestampNs: 0n, data: text('abcd'), origLen: 6 },
    { ifIndex: 0, linkType: 1, timestampNs: 0n, data: text('xy'), origLen: 2 },
    { ifIndex: 0, linkType: 1, timestampNs: 9000n, data: ABC, origLen: 3 },
  ]);
});

// ---------------------------------------------------------------------------------------------- files

test('FileSink + readCapture: the file holds exactly what the writer emitted, read back in small chunks', async () => {
  await withTempDir(async (dir) => {
    for (const bufferBytes of [0, 10, 65536]) {
      const path = join(dir, `f${bufferBytes}.pcapng`);
      const file = new FileSink(path, bufferBytes);
      const m = memorySink();
      const tee = (c: Uint8Array): void => {
        m.sink(c);
        file.write(c);
      };
      const w = new PcapngWriter(tee);
      w.addInterface('eth0');
      w.addInterface('eth1', 101);
      const expected: CaptureRecord[] = [];
      for (let i = 0; i < 50; i++) {
        const data = new Uint8Array(i * 13).fill(i);
        w.writePacket(i % 2, BigInt(i) * 1_000_001n, data);
        expected.push({ ifIndex: i % 2, linkType: i % 2 === 0 ? 1 : 101, timestampNs: BigInt(i) * 1_000_001n, data, origLen: data.length });
      }
      file.close();
      file.close();
      assert.throws(() => file.write(ABC));
      assert.deepEqual(new Uint8Array(readFileSync(path)), m.bytes());
      const c = readCapture(path, { chunkBytes: 7 });
      const got: CaptureRecord[] = [];
      for await (const r of c) {
        assert.equal(c.interfaces[r.ifIndex]?.name, r.ifIndex === 0 ? 'eth0' : 'eth1');
        got.push(r);
      }
      assert.deepEqual(got, expected);
      assert.equal(c.format, 'pcapng');
      assert.equal(c.section?.userAppl, 'seine');
    }
  });
});

test('writers reject caller mistakes with RangeError (not CaptureError: those are for input)', () => {
  const w = new PcapngWriter(() => {});
  assert.throws(() => w.writePacket(0, 0n, ABC), RangeError);
  w.addInterface('x');
  assert.throws(() => w.writePacket(0, -1n, ABC), RangeError);
  assert.throws(() => w.writePacket(0, 2n ** 64n, ABC), RangeError);
  assert.throws(() => w.writePacket(0, 0n, ABC, 2), RangeError);
  assert.throws(() => w.addInterface('y', 70000), RangeError);
  assert.throws(() => w.addInterface('nul\0'), RangeError);
  const p = new PcapWriter(() => {}, { linkType: 101 });
  assert.throws(() => p.addInterface('x', 1), RangeError);
  assert.equal(p.addInterface('x', 101), 0);
  assert.throws(() => p.addInterface('y', 101), RangeError);
  assert.throws(() => p.writePacket(1, 0n, ABC), RangeError);
  assert.throws(() => p.writePacket(0, 2n ** 32n * 1_000_000_000n, ABC), RangeError);
  assert.throws(() => new PcapWriter(() => {}, { snaplen: 0 }), RangeError);
});
