import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { HEADROOM, PacketPool } from '../../src/packet/buf.js';
import { completeChecksum, readVnetHeader, VNET_GSO_TCPV4, VNET_HDR_LEN, writeVnetHeader } from '../../src/packet/vnet.js';
import { compose } from '../../src/wire/stack.js';
import { dissect } from '../../src/wire/stack.js';
import { fold, onesSum, pseudoSumV4At, pseudoSumV6At } from '../../src/wire/checksum.js';
import { DropReason } from '../../src/wire/drop.js';
import { eth, ip4, ip6, tcp, udp } from '../peers/catalogue.js';

const pool = new PacketPool({ count: 4, frameCapacity: 2048 });

/** Loads `frame` and replaces its transport checksum by the pseudo-header sum, as a sender with checksum offload leaves it. */
function partial(frame: Uint8Array, family: 4 | 6, proto: 6 | 17) {
  const p = pool.alloc()!;
  p.load(frame);
  const ip = p.start + 14;
  const l4 = ip + (family === 4 ? 20 : 40);
  const len = p.end - l4;
  const off = proto === 6 ? 16 : 6;
  const sum = family === 4 ? pseudoSumV4At(p.data, ip + 12, ip + 16, proto, len) : pseudoSumV6At(p.data, ip + 8, ip + 24, proto, len);
  const f = fold(sum);
  p.data[l4 + off] = f >>> 8;
  p.data[l4 + off + 1] = f & 0xff;
  return { p, l4, off };
}

test('vnet: a header written and read back keeps every field; csum_start is relative on the wire, absolute in the buffer', () => {
  const p = pool.alloc()!;
  p.load(new Uint8Array(100));
  p.gsoType = VNET_GSO_TCPV4;
  p.gsoSize = 1448;
  p.hdrLen = 66;
  p.csumStart = p.start + 34;
  p.csumOffset = 16;
  const at = p.start - VNET_HDR_LEN;
  p.data.fill(0xa5, at, p.start);
  writeVnetHeader(p, at);
  assert.deepEqual([...p.data.subarray(at, p.start)], [1, 1, 66, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]);
  const q = pool.alloc()!;
  q.load(new Uint8Array(100));
  q.data.set(p.data.subarray(at, p.start), q.start - VNET_HDR_LEN);
  assert.equal(readVnetHeader(q, q.start - VNET_HDR_LEN), null);
  assert.deepEqual([q.gsoType, q.gsoSize, q.hdrLen, q.csumStart - q.start, q.csumOffset], [1, 1448, 66, 34, 16]);
  p.release();
  q.release();
});

test('vnet: a checksum field outside the frame, or GSO without a size, is refused with VnetHdrBad', () => {
  const p = pool.alloc()!;
  p.load(new Uint8Array(60));
  const at = p.start - VNET_HDR_LEN;
  p.data.fill(0, at, p.start);
  p.data[at] = 1;
  p.data[at + 6] = 50;
  p.data[at + 8] = 9; // 50 + 9 + 2 > 60
  assert.equal(readVnetHeader(p, at), DropReason.VnetHdrBad);
  p.data.fill(0, at, p.start);
  p.data[at + 1] = VNET_GSO_TCPV4;
  assert.equal(readVnetHeader(p, at), DropReason.VnetHdrBad);
  p.data.fill(0, at, p.start);
  assert.equal(readVnetHeader(p, at), null);
  assert.equal(p.csumStart, -1);
  p.release();
  assert.equal(HEADROOM >= VNET_HDR_LEN, true);
});

test('vnet: completing a partial checksum gives the checksum the sender would have computed (TCP/UDP, IPv4/IPv6, random payloads)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 1400 }), fc.constantFrom(4, 6), fc.constantFrom(6, 17), (payload, family, proto) => {
      const l4 = proto === 6 ? tcp(40000, 80, 0x18) : udp(5353, 53);
      const l3 = family === 4 ? ip4('10.0.0.1', '10.0.0.2', proto) : ip6('fd00::1', 'fd00::2', proto);
      const frame = compose([eth(family === 4 ? 0x0800 : 0x86dd), l3, l4, { kind: 'data', bytes: payload }]);
      const { p, l4: at, off } = partial(frame, family as 4 | 6, proto as 6 | 17);
      p.csumStart = at;
      p.csumOffset = off;
      completeChecksum(p);
      assert.equal(p.csumStart, -1);
      // A checksum that verifies (the sum over pseudo-header and segment folds to 0xffff) and what compose wrote.
      const d = dissect(p.data, p.start, p.end);
      assert.ok(
        d.layers.every((x) => x.checksumOk !== false),
        'checksums verify',
      );
      const ip = p.start + 14;
      const len = p.end - at;
      const ps = family === 4 ? pseudoSumV4At(p.data, ip + 12, ip + 16, proto, len) : pseudoSumV6At(p.data, ip + 8, ip + 24, proto, len);
      assert.equal(fold(onesSum(p.data, at, len, ps)), 0xffff);
      const want = frame[at - p.start + off]! * 256 + frame[at - p.start + off + 1]!;
      const got = p.data[at + off]! * 256 + p.data[at + off + 1]!;
      assert.ok(got === want || (got === 0xffff && want === 0) || (got === 0 && want === 0xffff), `checksum ${got} vs ${want}`);
      p.release();
    }),
    { numRuns: 300 },
  );
});
