import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  CaptureError,
  createParser,
  PcapngParser,
  PcapngWriter,
  PcapParser,
  PcapWriter,
  readCapture,
  type CaptureErrorCode,
  type CaptureRecord,
} from '../../src/capture/index.js';
import { fromHex } from '../helpers.js';
import { Body, block, concat, feed, memorySink, splitAt, text, withTempDir } from './util.js';

/** A capture in one format, with the stream offset where each chunk (header, block, record) ends. */
interface Sample {
  bytes: Uint8Array;
  /** End offsets of every chunk. */
  ends: number[];
  /** End offset of each packet's chunk, with its record. */
  packets: { end: number; record: CaptureRecord }[];
}

function build(format: 'pcap' | 'pcapng', packets: { ts: bigint; data: Uint8Array }[], le = true, ifaces = 1): Sample {
  const m = memorySink();
  const w = format === 'pcap' ? new PcapWriter(m.sink, { littleEndian: le }) : new PcapngWriter(m.sink, { littleEndian: le });
  for (let i = 0; i < ifaces && format === 'pcapng'; i++) w.addInterface(`if${i}`);
  const out: Sample['packets'] = [];
  packets.forEach((p, i) => {
    const ifIndex = format === 'pcap' ? 0 : i % ifaces;
    w.writePacket(ifIndex, p.ts, p.data);
    out.push({ end: -1, record: { ifIndex, linkType: 1, timestampNs: p.ts, data: p.data, origLen: p.data.length } });
  });
  const ends: number[] = [];
  let o = 0;
  for (const c of m.chunks) ends.push((o += c.length));
  const first = ends.length - packets.length;
  out.forEach((p, i) => (p.end = ends[first + i]!));
  return { bytes: m.bytes(), ends, packets: out };
}

const SMALL = [
  { ts: 1n, data: text('a') },
  { ts: 1_000_000_002_000n, data: text('hello, world') },
  { ts: 3_000_000_000n, data: new Uint8Array(0) },
  { ts: 4_000_000_000n, data: new Uint8Array(70).fill(9) },
];

for (const format of ['pcap', 'pcapng'] as const) {
  test(`${format}: truncated at every cut point — earlier records delivered, then Truncated at the cut block`, () => {
    const s = build(format, SMALL, format === 'pcap', 2);
    for (let cut = 0; cut <= s.bytes.length; cut++) {
      const want = s.packets.filter((p) => p.end <= cut).map((p) => p.record);
      const boundary = cut > 0 && s.ends.includes(cut);
      const blockStart = Math.max(0, ...s.ends.filter((e) => e <= cut));
      for (const chunks of [[s.bytes.subarray(0, cut)], splitAt(s.bytes.subarray(0, cut), [cut >> 1, cut - 1])]) {
        const { records, error } = feed(chunks);
        assert.deepEqual(records, want, `cut ${cut}`);
        if (boundary) assert.equal(error, null, `cut ${cut}`);
        else {
          assert.equal(error?.code, 'Truncated', `cut ${cut}`);
          assert.equal(error.offset, blockStart, `cut ${cut}`);
        }
      }
    }
  });

  test(`${format}: any damage to a valid capture gives only CaptureError, after every record before it`, () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ ts: fc.bigInt({ min: 0n, max: 2n ** 32n * 1_000_000_000n - 1n }), data: fc.uint8Array({ maxLength: 80 }) }), { maxLength: 6 }),
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.array(fc.nat(1000), { maxLength: 6 }),
        (packets, le, flips, cutPick, splits) => {
          const s = build(format, packets, le, 3);
          const bad = s.bytes.slice();
          for (const [at, v] of flips) bad[at % bad.length] = v;
          let firstDiff = bad.findIndex((x, i) => x !== s.bytes[i]);
          if (firstDiff < 0) firstDiff = bad.length;
          const cut = cutPick % (bad.length + 1);
          const damaged = bad.subarray(0, cut);
          const { records } = feed(splitAt(damaged, splits));
          const intact = s.packets.filter((p) => p.end <= Math.min(firstDiff, cut)).map((p) => p.record);
          assert.deepEqual(records.slice(0, intact.length), intact);
        },
      ),
      { numRuns: 500 },
    );
  });
}

test('random garbage, bare or behind a valid header, gives only CaptureError', () => {
  const pcapHeader = build('pcap', []).bytes;
  const ngHeader = build('pcapng', [], true, 2).bytes;
  fc.assert(
    fc.property(
      fc.constantFrom(new Uint8Array(0), pcapHeader, ngHeader, ngHeader.subarray(0, 12)),
      fc.uint8Array({ maxLength: 200 }),
      fc.array(fc.nat(300), { maxLength: 5 }),
      (prefix, garbage, splits) => {
        feed(splitAt(concat([prefix, garbage]), splits)); // feed() rethrows anything but a CaptureError
      },
    ),
    { numRuns: 2000 },
  );
  // Structured garbage: well-framed pcapng blocks of any type with random bodies.
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(1, 2, 3, 4, 5, 6, 0x0a0d0d0a, 0xbad), fc.uint8Array({ maxLength: 64 }), fc.boolean()), { maxLength: 6 }),
      (blocks) => {
        feed([concat([ngHeader, ...blocks.map(([t, body, le]) => block(t, body, le))])]);
      },
    ),
    { numRuns: 2000 },
  );
});

/** The error the parser raises for `bytes`, given without end(): damage must be seen without waiting. */
function errorOf(bytes: Uint8Array, ended = false): CaptureError {
  const p = createParser();
  p.push(bytes);
  if (ended) p.end();
  try {
    while (p.next() !== null);
  } catch (e) {
    assert.ok(e instanceof CaptureError, `not a CaptureError: ${String(e)}`);
    assert.throws(
      () => p.next(),
      (again) => again === e,
    ); // the parser stays failed
    return e;
  }
  assert.fail('no error');
}

function expectError(bytes: Uint8Array, code: CaptureErrorCode, offset: number, ended = false): void {
  const e = errorOf(bytes, ended);
  assert.equal(e.code, code, e.message);
  assert.equal(e.offset, offset, e.message);
}

const SHB = fromHex('0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffff ffffffff 1c000000');
const IDB = fromHex('01000000 14000000 0100 0000 00000000 14000000');
const PCAP_HDR = fromHex('d4c3b2a1 0200 0400 00000000 00000000 00000400 01000000');

test('pcapng: absurd or malformed block lengths are rejected at once, nothing allocated or awaited', () => {
  expectError(concat([SHB, fromHex('06000000 fcffffff')]), 'BadBlockLength', 32); // 4 GiB
  expectError(concat([SHB, fromHex('06000000 00000110')]), 'BadBlockLength', 32); // 256 MiB + 4 KiB … over the limit
  expectError(concat([SHB, fromHex('06000000 0d000000')]), 'BadBlockLength', 32); // not a multiple of 4
  expectError(concat([SHB, fromHex('06000000 08000000')]), 'BadBlockLength', 32); // below 12
  expectError(fromHex('0a0d0d0a fcffff7f 4d3c2b1a'), 'BadBlockLength', 4); // absurd SHB
  expectError(fromHex('0a0d0d0a 18000000 4d3c2b1a'), 'BadBlockLength', 4); // SHB below its 28
  expectError(concat([SHB, IDB, fromHex('06000000 10000000 00000000 10000000')]), 'BadBlockLength', 52); // EPB below its 32
  expectError(concat([SHB, fromHex('01000000 10000000 00000000 10000000')]), 'BadBlockLength', 32); // IDB below its 20
  expectError(concat([SHB, fromHex('01000000 14000000 0100 0000 00000000 18000000')]), 'BadBlockLength', 44); // trailing copy differs
  const p = new PcapngParser({ maxBlockLen: 64 });
  p.push(concat([SHB, fromHex('06000000 44000000')]));
  assert.throws(
    () => p.next(),
    (e) => e instanceof CaptureError && e.code === 'BadBlockLength',
  );
});

test('pcapng: bad magic, version, options, lengths and interfaces each have their code and offset', () => {
  expectError(fromHex('06000000 0c000000 0c000000'), 'BadMagic', 0);
  expectError(fromHex('0a0d0d0a 1c000000 11223344'), 'BadMagic', 8);
  expectError(fromHex('0a0d0d0a 1c000000 4d3c2b1a 0200 0000 ffffffff ffffffff 1c000000'), 'BadVersion', 12);
  // if_name claiming 100 bytes in a 24-byte block.
  expectError(concat([SHB, fromHex('01000000 18000000 0100 0000 00000000 0200 6400 18000000')]), 'BadOption', 44);
  // if_tsresol of length 2, and if_tsoffset of length 4.
  expectError(concat([SHB, fromHex('01000000 1c000000 0100 0000 00000000 0900 0200 06000000 1c000000')]), 'BadOption', 44);
  expectError(concat([SHB, fromHex('01000000 1c000000 0100 0000 00000000 0e00 0400 00000000 1c000000')]), 'BadOption', 44);
  // EPB captured length 100 in a block with room for 4.
  expectError(concat([SHB, IDB, fromHex('06000000 24000000 00000000 00000000 00000000 64000000 64000000 61626300 24000000')]), 'BadRecordLength', 68);
  // EPB option running past the block.
  expectError(concat([SHB, IDB, fromHex('06000000 28000000 00000000 00000000 00000000 00000000 00000000 0200 0800 00000000 28000000')]), 'BadOption', 76);
  // EPB for interface 1 when only 0 exists; SPB before any IDB; interfaces do not survive a new section.
  const epb1 = fromHex('06000000 20000000 01000000 00000000 00000000 00000000 00000000 20000000');
  expectError(concat([SHB, IDB, epb1]), 'UnknownInterface', 56);
  expectError(concat([SHB, fromHex('03000000 10000000 00000000 10000000')]), 'UnknownInterface', 28);
  const epb0 = fromHex('06000000 20000000 00000000 00000000 00000000 00000000 00000000 20000000');
  const p = createParser();
  const { records, error } = feed([concat([SHB, IDB, epb0, SHB, epb0])], p);
  assert.equal(records.length, 1);
  assert.equal(error?.code, 'UnknownInterface');
  assert.equal(error.offset, 28 + 20 + 32 + 28 + 8);
});

test('pcap: bad magic, version and absurd record lengths', () => {
  expectError(fromHex('d4c3b2a2 0200 0400'), 'BadMagic', 0); // undecided format: the auto parser says so
  expectError(new Uint8Array(0), 'Truncated', 0, true);
  expectError(fromHex('d4c3'), 'Truncated', 0, true);
  const p = new PcapParser();
  p.push(fromHex('0a0d0d0a'));
  assert.equal(p.next(), null); // waits for the 24-byte header…
  p.end();
  assert.throws(
    () => p.next(),
    (e) => e instanceof CaptureError && e.code === 'Truncated' && e.offset === 0,
  );
  const q = new PcapParser();
  q.push(fromHex('0a0d0d0a 1c000000 4d3c2b1a 0100 0000 ffffffff ffffffff'));
  assert.throws(
    () => q.next(),
    (e) => e instanceof CaptureError && e.code === 'BadMagic' && e.offset === 0,
  ); // …then names the magic
  expectError(fromHex('d4c3b2a1 0100 0400 00000000 00000000 00000400 01000000'), 'BadVersion', 4);
  expectError(concat([PCAP_HDR, fromHex('00000000 00000000 00000020 00000020')]), 'BadRecordLength', 32); // 512 MiB
  const small = new PcapParser({ maxRecordLen: 10 });
  small.push(concat([PCAP_HDR, fromHex('00000000 00000000 0b000000 0b000000')]));
  assert.throws(
    () => small.next(),
    (e) => e instanceof CaptureError && e.code === 'BadRecordLength',
  );
});

test('readCapture: a damaged file yields its good records, then throws the CaptureError', async () => {
  await withTempDir(async (dir) => {
    const s = build('pcapng', SMALL, true, 1);
    const path = join(dir, 'cut.pcapng');
    writeFileSync(path, s.bytes.subarray(0, s.packets[2]!.end + 5));
    const got: CaptureRecord[] = [];
    await assert.rejects(
      (async () => {
        for await (const r of readCapture(path, { chunkBytes: 16 })) got.push(r);
      })(),
      (e) => e instanceof CaptureError && e.code === 'Truncated' && e.offset === s.packets[2]!.end,
    );
    assert.deepEqual(
      got,
      s.packets.slice(0, 3).map((p) => p.record),
    );
    const garbage = join(dir, 'garbage');
    writeFileSync(garbage, 'not a capture at all');
    await assert.rejects(
      (async () => {
        for await (const r of readCapture(garbage)) void r;
      })(),
      (e) => e instanceof CaptureError && e.code === 'BadMagic',
    );
  });
});

test('an option block built by hand is read by the same rules (sanity for the Body helper)', () => {
  const opts = new Body(true).opt(2, text('eth0')).u32(0).done();
  const idb = block(1, new Body(true).u16(1).u16(0).u32(0).bytes(opts).done());
  const p = new PcapngParser();
  p.push(concat([SHB, idb]));
  p.end();
  assert.equal(p.next(), null);
  assert.equal(p.interfaces[0]?.name, 'eth0');
});
