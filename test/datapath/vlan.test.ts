/**
 * VLANs: isolation between segments over random access and trunk configurations, and the exact bytes of
 * 802.1Q pop and push.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Endpoint } from '../../src/datapath/device.js';
import { wr16, wrMac } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import {
  addHost,
  assertBooks,
  assertPoolFull,
  BROADCAST,
  carries,
  drops,
  hostMac,
  frame,
  ingressSegment,
  newBridge,
  newNet,
  seen,
  untaggedVlan,
  vlanConfigArb,
  type Host,
} from './topology.js';

/** Checks a frame host `h` received against the segment the frame was switched on. */
export function assertRightVlan(h: Host, segment: number, f: Uint8Array, what: string): void {
  const s = seen(f);
  assert.ok(carries(h.cfg, segment), `${what}: ${h.name} (${JSON.stringify(h.cfg)}) received a frame of segment ${segment}`);
  if (segment === untaggedVlan(h.cfg)) {
    assert.equal(s.vlans.length, 0, `${what}: frames of the untagged VLAN leave ${h.name} untagged`);
  } else {
    assert.ok(h.cfg.trunk !== undefined, `${what}: only a trunk sends tagged frames`);
    assert.equal(s.vlans.length, 1, `${what}: one tag`);
    assert.deepEqual(s.vlans[0], { tpid: 0x8100, pcp: 0, dei: false, vid: segment }, `${what}: tag on ${h.name}`);
  }
}

const TAGS: fc.Arbitrary<Array<{ vid: number; tpid: number }>> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<Array<{ vid: number; tpid: number }>>([]) },
  {
    weight: 3,
    arbitrary: fc
      .record({ vid: fc.constantFrom(0, 1, 2, 3, 10, 20, 4095), tpid: fc.constantFrom(0x8100, 0x8100, 0x8100, 0x88a8) }, { noNullPrototype: true })
      .map((t) => [t]),
  },
);

test('no frame is ever delivered to a port of another VLAN, and tagging on egress is right', () => {
  fc.assert(
    fc.property(
      fc.array(vlanConfigArb, { minLength: 2, maxLength: 7 }),
      fc.array(fc.record({ from: fc.nat(), src: fc.nat({ max: 9 }), dst: fc.nat({ max: 11 }), tags: TAGS }, { noNullPrototype: true }), {
        minLength: 1,
        maxLength: 60,
      }),
      (cfgs, sends) => {
        const net = newNet();
        const br = newBridge(net, 'br');
        const hosts = cfgs.map((cfg, i) => addHost(br, net, `p${i}`, hostMac(i + 1), cfg));
        // Sources: the hosts' own addresses and a few shared ones that move between ports.
        const srcs = Array.from({ length: 10 }, (_, i) => hostMac(i + 1));
        const dsts = [...srcs, BROADCAST, 0x01005e0000fb];
        const segmentOf = new Map<number, number | null>();
        sends.forEach((s, i) => {
          const h = hosts[s.from % hosts.length]!;
          const seg = ingressSegment(h.cfg, s.tags);
          segmentOf.set(i, seg);
          const vlanDrops = drops(h.port, DropReason.VlanNotAllowed);
          h.ep.send([frame({ src: srcs[s.src]!, dst: dsts[s.dst]!, tags: s.tags, id: i })]);
          assert.equal(drops(h.port, DropReason.VlanNotAllowed) - vlanDrops, seg === null ? 1 : 0, `frame ${i}: refused iff the model says so`);
        });
        for (const h of hosts) {
          for (const f of h.ep.take()) {
            const id = seen(f).id;
            const seg = segmentOf.get(id);
            assert.ok(seg !== null && seg !== undefined, `frame ${id} was refused at ingress, yet ${h.name} received it`);
            assertRightVlan(h, seg, f, `frame ${id}`);
          }
        }
        assertBooks(br);
        assertPoolFull(net.pool);
      },
    ),
    { numRuns: 200 },
  );
});

/** An Ethernet frame built by hand: the test's reference for what tagging does to the bytes. */
function raw(dst: number, src: number, vid: number | null, etherType: number, payload: Uint8Array, pcp = 0): Uint8Array {
  const tag = vid === null ? 0 : 4;
  const f = new Uint8Array(14 + tag + payload.length);
  wrMac(f, 0, dst);
  wrMac(f, 6, src);
  if (vid !== null) {
    wr16(f, 12, 0x8100);
    wr16(f, 14, (pcp << 13) | vid);
  }
  wr16(f, 12 + tag, etherType);
  f.set(payload, 14 + tag);
  return f;
}

test('802.1Q pop and push: only the tag changes, byte for byte', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 0xffffff }),
      fc.integer({ min: 1, max: 0xffffff }),
      fc.integer({ min: 0x0600, max: 0xffff }).filter((t) => t !== 0x8100 && t !== 0x88a8 && t !== 0x9100),
      fc.uint8Array({ maxLength: 300 }),
      fc.constantFrom(BROADCAST, 0),
      (s, d, etherType, payload, dstKind) => {
        const net = newNet();
        const br = newBridge(net, 'br');
        const trunk = addHost(br, net, 'trunk', hostMac(0x1000001), { trunk: [10, 20] });
        const access10 = addHost(br, net, 'a10', hostMac(0x1000002), { vlan: 10 });
        const trunk2 = addHost(br, net, 'trunk2', hostMac(0x1000003), { trunk: [10], native: 20 });
        const access0 = addHost(br, net, 'a0', hostMac(0x1000004), { vlan: 0 });
        const all = [trunk, access10, trunk2, access0];
        const src = 0x020000000000 + s;
        const dst = dstKind === 0 ? 0x0a0000000000 + d : BROADCAST; // unknown unicast or broadcast: both flood
        const got = (): Uint8Array[][] => all.map((h) => h.ep.take());

        // Trunk, tagged 10 → the access port of VLAN 10 untagged; the other trunk keeps the same tag.
        trunk.ep.send([raw(dst, src, 10, etherType, payload)]);
        assert.deepEqual(got(), [[], [raw(dst, src, null, etherType, payload)], [raw(dst, src, 10, etherType, payload)], []]);
        // Access port of VLAN 10, untagged → tagged 10 on both trunks.
        access10.ep.send([raw(dst, src + 1, null, etherType, payload)]);
        assert.deepEqual(got(), [[raw(dst, src + 1, 10, etherType, payload)], [], [raw(dst, src + 1, 10, etherType, payload)], []]);
        // Trunk, tagged 20: trunk2's native VLAN, so it leaves there untagged.
        trunk.ep.send([raw(dst, src + 2, 20, etherType, payload)]);
        assert.deepEqual(got(), [[], [], [raw(dst, src + 2, null, etherType, payload)], []]);
        // trunk2 untagged (native 20) → tagged 20 on the first trunk.
        trunk2.ep.send([raw(dst, src + 3, null, etherType, payload)]);
        assert.deepEqual(got(), [[raw(dst, src + 3, 20, etherType, payload)], [], [], []]);
        // Trunk untagged: native VLAN 0 → the access port of VLAN 0, untagged and unchanged.
        trunk.ep.send([raw(dst, src + 4, null, etherType, payload)]);
        assert.deepEqual(got(), [[], [], [], [raw(dst, src + 4, null, etherType, payload)]]);
        // A priority tag (VID 0) on an access port is the access VLAN; its priority rides on the trunks' tags.
        access10.ep.send([raw(dst, src + 5, 0, etherType, payload, 3)]);
        assert.deepEqual(got(), [[raw(dst, src + 5, 10, etherType, payload, 3)], [], [raw(dst, src + 5, 10, etherType, payload, 3)], []]);
        // Trunk to trunk keeps the 802.1p priority (PCP) of the tag.
        trunk.ep.send([raw(dst, src + 8, 10, etherType, payload, 5)]);
        assert.deepEqual(got(), [[], [raw(dst, src + 8, null, etherType, payload)], [raw(dst, src + 8, 10, etherType, payload, 5)], []]);
        // Tagged frames on an access port, or of a VLAN the trunk does not carry, are refused.
        access0.ep.send([raw(dst, src + 6, 10, etherType, payload)]);
        trunk.ep.send([raw(dst, src + 7, 30, etherType, payload)]);
        assert.deepEqual(got(), [[], [], [], []]);
        assert.equal(drops(access0.port, DropReason.VlanNotAllowed), 1);
        assert.equal(drops(trunk.port, DropReason.VlanNotAllowed), 1);
        assertBooks(br);
        assertPoolFull(net.pool);
      },
    ),
    { numRuns: 150 },
  );
});

test('a learned unicast crosses from trunk to access and back with the tag popped and pushed', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const t = addHost(br, net, 't', hostMac(1), { trunk: [10] });
  const a = addHost(br, net, 'a', hostMac(2), { vlan: 10 });
  const other = addHost(br, net, 'o', hostMac(3), { vlan: 10 });
  const hostBehindTrunk = hostMac(0x10);
  t.ep.send([raw(BROADCAST, hostBehindTrunk, 10, 0x0800, new Uint8Array(46))]);
  a.ep.send([raw(BROADCAST, a.mac, null, 0x0800, new Uint8Array(46))]);
  for (const h of [t, a, other]) h.ep.take();
  const p = new Uint8Array(50).map((_, i) => i);
  t.ep.send([raw(a.mac, hostBehindTrunk, 10, 0x86dd, p)]);
  a.ep.send([raw(hostBehindTrunk, a.mac, null, 0x86dd, p)]);
  assert.deepEqual(a.ep.take(), [raw(a.mac, hostBehindTrunk, null, 0x86dd, p)]);
  assert.deepEqual(t.ep.take(), [raw(hostBehindTrunk, a.mac, 10, 0x86dd, p)]);
  assert.equal(other.ep.count, 2, 'the third port only saw the two broadcasts');
  // The same MAC on another VLAN is another station: a frame on VLAN 0 to it is not sent to VLAN 10's port.
  const v0 = addHost(br, net, 'v0', hostMac(4), { vlan: 0 });
  const z = addHost(br, net, 'z', hostMac(5), { vlan: 0 });
  v0.ep.send([raw(a.mac, v0.mac, null, 0x0800, new Uint8Array(46))]);
  assert.equal(a.ep.count, 2, 'no cross-VLAN delivery of a MAC known on another VLAN');
  assert.equal(z.ep.take().length, 1, 'flooded on VLAN 0 instead');
  assertBooks(br);
});

test('VLAN configuration is validated when a port is added', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const ep = (): Endpoint => new Endpoint('x', net.pool, hostMac(9));
  assert.throws(() => br.addPort('bad1', ep(), { vlan: 4095 }), RangeError);
  assert.throws(() => br.addPort('bad2', ep(), { trunk: [0] }), RangeError);
  assert.throws(() => br.addPort('bad3', ep(), { trunk: [5], vlan: 5 }), RangeError);
  assert.throws(() => br.addPort('bad4', ep(), { vlan: 5, native: 5 }), RangeError);
  assert.throws(() => br.addPort('bad5', ep(), { trunk: [5], native: -1 }), RangeError);
  // A refused port leaves nothing behind: the name is free again.
  br.addPort('bad1', ep(), { vlan: 5 });
});

test('a static MAC entry never sends a frame out of a port that does not carry its VLAN', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const t = addHost(br, net, 't', hostMac(1), { trunk: [10] });
  const a0 = addHost(br, net, 'a0', hostMac(2), { vlan: 0 });
  const pinned = hostMac(0x99);
  let refused = false;
  try {
    br.addStaticMac(10, pinned, a0.port);
  } catch (e) {
    refused = e instanceof RangeError;
  }
  t.ep.send([frame({ src: t.mac, dst: pinned, tags: [{ vid: 10 }] })]);
  assert.ok(refused || a0.ep.count === 0, 'either the entry is refused or the frame is not delivered onto VLAN 0');
  assertBooks(br);
  assertPoolFull(net.pool);
});
