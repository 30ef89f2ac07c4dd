import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Tunnel } from '../../src/overlay/tunnel.js';
import { PacketPool } from '../../src/packet/buf.js';
import { DropReason, dropReasonName } from '../../src/wire/drop.js';
import { GeneveView, geneveOptionKey, type GeneveOption } from '../../src/wire/geneve.js';
import { compose } from '../../src/wire/stack.js';
import { eth, ip4, udp, zeros } from '../peers/catalogue.js';

const KNOWN = [
  { class: 0x0102, type: 0x80 },
  { class: 0xffff, type: 0x81 },
];
const UDP_AT = 14 + 20;
const GENEVE_AT = UDP_AT + 8;

/**
 * Tunnel.decap walks Geneve options once, with its own reads. It must classify every Geneve header like
 * GeneveView does (check, then the protocol type, then unknown critical options), then the VNI map and
 * the inner frame's length: a differential test over valid frames with random bytes written over the
 * Geneve header and options.
 */
test('tunnel: Geneve decapsulation drops exactly what GeneveView rejects, with the same reason', () => {
  const t = new Tunnel({ kind: 'geneve', mode: 'l2', localIp: '192.168.1.2', localMac: 0x0a0000000002, knownOptions: KNOWN });
  t.addVtep({ ip: '192.168.1.1', mac: 0x0a0000000001, vnis: [5] });
  t.mapVni(5, 0);
  const known = new Set(KNOWN.map((k) => geneveOptionKey(k.class, k.type)));
  const pool = new PacketPool({ count: 1, frameCapacity: 1024 });
  const optArb: fc.Arbitrary<GeneveOption> = fc.record(
    {
      class: fc.constantFrom(0x0102, 0xffff, 0x0103),
      type: fc.constantFrom(0x80, 0x81, 0x01, 0x7f),
      data: fc.integer({ min: 0, max: 3 }).map((w) => new Uint8Array(4 * w).fill(7)),
    },
    { noNullPrototype: true },
  );
  const pokeArb = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 });
  const seen = new Set<number>();
  fc.assert(
    fc.property(fc.array(optArb, { maxLength: 4 }), fc.integer({ min: 0, max: 20 }), pokeArb, (options, innerLen, pokes) => {
      const inner = innerLen === 0 ? [] : [eth(0x0800), zeros(Math.max(0, innerLen - 14))];
      const frame = compose([
        eth(0x0800, [], 0x0a0000000001, 0x0a0000000002),
        ip4('192.168.1.1', '192.168.1.2', 17),
        udp(50000, 6081, true),
        { kind: 'geneve', repr: { vni: 5, protocolType: 0x6558, oam: false, critical: false, options } },
        ...inner,
      ]);
      const optEnd = GENEVE_AT + 8 + options.reduce((a, o) => a + 4 + o.data.length, 0);
      // Random bytes over the Geneve header and options (never the VNI's reserved byte: decap ignores it).
      for (const [at, v] of pokes) {
        const o = GENEVE_AT + (at % (optEnd - GENEVE_AT));
        if (o !== GENEVE_AT + 7) frame[o] = v;
      }
      const g = new GeneveView().at(frame, GENEVE_AT);
      const udpEnd = frame.length;
      let want: number = g.check(udpEnd - GENEVE_AT) ?? 0;
      if (want === 0 && g.protocolType !== 0x6558) want = DropReason.GeneveNotEthernet;
      if (want === 0 && g.firstUnknownCritical(known) >= 0) want = DropReason.GeneveUnknownCriticalOption;
      if (want === 0 && g.vni !== 5) want = DropReason.UnknownVni;
      if (want === 0 && udpEnd - g.optionsEnd < 14) want = DropReason.EthTruncated;
      const p = pool.alloc()!;
      p.load(frame);
      const start = p.start;
      const got = t.decap(p);
      seen.add(want);
      assert.equal(got === 0 ? 'ok' : dropReasonName(got as DropReason), want === 0 ? 'ok' : dropReasonName(want as DropReason));
      if (got === 0) {
        assert.equal(p.start - start, g.optionsEnd);
        assert.equal(p.tunOptOff - start, GENEVE_AT + 8);
        assert.equal(p.tunOptLen, g.optionsEnd - GENEVE_AT - 8);
      }
      p.release();
    }),
    { numRuns: 2000 },
  );
  // The generator reaches every outcome.
  const outcomes = [
    0,
    DropReason.GeneveBadVersion,
    DropReason.GeneveTruncated,
    DropReason.GeneveBadOptionLen,
    DropReason.GeneveNotEthernet,
    DropReason.GeneveUnknownCriticalOption,
    DropReason.UnknownVni,
    DropReason.EthTruncated,
  ];
  for (const r of outcomes) assert.ok(seen.has(r), `never saw ${r === 0 ? 'success' : dropReasonName(r)}`);
});
