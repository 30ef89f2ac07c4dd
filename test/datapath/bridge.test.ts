/**
 * The bridge as a learning switch: learning, flooding, aging, the table cap, port state, malformed input
 * and the accounting identity, driven through endpoints and veth pairs with a virtual clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Bridge } from '../../src/datapath/bridge.js';
import { Endpoint, vethPair } from '../../src/datapath/device.js';
import type { Port, VlanConfig } from '../../src/datapath/port.js';
import { rdMac, wrMac } from '../../src/wire/bytes.js';
import { DropReason } from '../../src/wire/drop.js';
import {
  addHost,
  assertBooks,
  assertPoolFull,
  BROADCAST,
  carries,
  counts,
  drops,
  frame,
  hostMac,
  ingressSegment,
  newBridge,
  newNet,
  rng,
  seen,
  untaggedVlan,
  vlanConfigArb,
  type Host,
} from './topology.js';

const S = 1e9;

test('learning converges: once every host has sent a frame, unicast reaches exactly its destination and nothing floods', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 0xffffff }), { minLength: 2, maxLength: 8 }),
      fc.constantFrom(0, 7),
      fc.infiniteStream(fc.boolean()),
      (ids, vlan, firstIsBroadcast) => {
        const net = newNet();
        const br = newBridge(net, 'br');
        const hosts = ids.map((n, i) => addHost(br, net, `h${i}`, hostMac(n), { vlan }));
        // First frames: broadcasts, or unicasts to an address nobody has.
        const it = firstIsBroadcast[Symbol.iterator]();
        hosts.forEach((h, i) => h.ep.send([frame({ src: h.mac, dst: it.next().value ? BROADCAST : 0x0600000000 + i, id: i })]));
        for (const h of hosts) h.ep.take();
        const floods = br.floodCopies;
        let id = 1000;
        for (const a of hosts) {
          for (const b of hosts) {
            if (a === b) continue;
            const before = counts(hosts);
            const f = frame({ src: a.mac, dst: b.mac, id: ++id });
            assert.equal(a.ep.send([f]), 1);
            const after = counts(hosts);
            hosts.forEach((h, k) =>
              assert.equal(after[k]! - before[k]!, h === b ? 1 : 0, `${a.name} → ${b.name}: ${h.name} received ${after[k]! - before[k]!}`),
            );
            assert.deepEqual(b.ep.take(), [f], 'delivered byte for byte');
          }
        }
        assert.equal(br.floodCopies, floods, 'no flood once learned');
        assertBooks(br);
        assertPoolFull(net.pool);
      },
    ),
    { numRuns: 60 },
  );
});

test('a flood reaches every other port of its segment exactly once and never its ingress port', () => {
  const FLOOD_DSTS = [BROADCAST, 0x01005e000001, 0x333300000001, 0x060000000001];
  fc.assert(
    fc.property(
      fc.array(vlanConfigArb, { minLength: 2, maxLength: 7 }),
      fc.array(
        fc.record(
          {
            from: fc.nat(),
            dst: fc.constantFrom(...FLOOD_DSTS),
            tag: fc.option(fc.constantFrom(0, 1, 2, 3, 10, 99), { nil: null }),
            down: fc.option(fc.nat(), { nil: null }),
          },
          { noNullPrototype: true },
        ),
        { minLength: 1, maxLength: 25 },
      ),
      (cfgs, sends) => {
        const net = newNet();
        const br = newBridge(net, 'br');
        const hosts = cfgs.map((cfg, i) => addHost(br, net, `p${i}`, hostMac(i + 1), cfg));
        const up = hosts.map(() => true);
        let id = 0;
        for (const s of sends) {
          if (s.down !== null) {
            // Take a random port down (or back up) between frames.
            const k = s.down % hosts.length;
            up[k] = !up[k];
            br.setAdmin(hosts[k]!.port, up[k]!);
          }
          const from = s.from % hosts.length;
          const h = hosts[from]!;
          const tags = s.tag === null ? [] : [{ vid: s.tag }];
          const f = frame({ src: h.mac, dst: s.dst, tags, id: ++id });
          const before = counts(hosts);
          const copies = br.floodCopies;
          h.ep.send([f]);
          const seg = up[from]! ? ingressSegment(h.cfg, tags) : null;
          const after = counts(hosts);
          let reached = 0;
          hosts.forEach((o, k) => {
            const expect = seg !== null && k !== from && up[k]! && carries(o.cfg, seg) ? 1 : 0;
            reached += expect;
            assert.equal(after[k]! - before[k]!, expect, `frame ${id} from ${h.name} (segment ${seg}) to ${o.name}`);
          });
          assert.equal(br.floodCopies - copies, Math.max(0, reached - 1), 'k destinations take k − 1 copies');
        }
        assertBooks(br);
        for (const o of hosts) o.ep.take();
        assertPoolFull(net.pool);
      },
    ),
    { numRuns: 150 },
  );
});

interface TreeSpec {
  parents: number[];
  hosts: number[][];
}

const treeArb: fc.Arbitrary<TreeSpec> = fc.integer({ min: 2, max: 6 }).chain((n) =>
  fc.record(
    {
      parents: fc.tuple(...Array.from({ length: n - 1 }, (_, i) => fc.nat({ max: i }))),
      hosts: fc.array(fc.array(fc.constantFrom(0, 10, 20), { minLength: 1, maxLength: 3 }), { minLength: n, maxLength: n }),
    },
    { noNullPrototype: true },
  ),
);

test('random trees of bridges: after one broadcast per host, every unicast is delivered exactly once and to nobody else', () => {
  fc.assert(
    fc.property(treeArb, fc.boolean(), (spec, trunkLinks) => {
      const net = newNet();
      const bridges = spec.hosts.map((_, i) => newBridge(net, `b${i}`));
      // Bridge links: trunks carrying 10 and 20 (native 0), or plain ports when every host is on VLAN 0.
      const allZero = spec.hosts.every((hs) => hs.every((v) => v === 0));
      const linkCfg: VlanConfig = trunkLinks || !allZero ? { trunk: [10, 20] } : {};
      spec.parents.forEach((parent, k) => {
        const child = k + 1;
        const [a, b] = vethPair(`l${child}a`, `l${child}b`, { macA: 0x0e0000000000 + child, macB: 0x0e0000001000 + child });
        bridges[parent]!.addPort(`down${child}`, a, linkCfg, 'veth');
        bridges[child]!.addPort('up', b, linkCfg, 'veth');
      });
      const hosts: Host[] = [];
      spec.hosts.forEach((vlans, bi) =>
        vlans.forEach((vlan, j) => hosts.push(addHost(bridges[bi]!, net, `h${bi}.${j}`, hostMac(0x100 * (bi + 1) + j), { vlan }))),
      );
      const vlanOf = (h: Host): number => h.cfg.vlan ?? 0;
      // Broadcasts: each reaches every other host of its VLAN once, never its sender.
      let id = 0;
      for (const h of hosts) {
        const before = counts(hosts);
        h.ep.send([frame({ src: h.mac, dst: BROADCAST, id: ++id })]);
        const after = counts(hosts);
        hosts.forEach((o, k) => assert.equal(after[k]! - before[k]!, o !== h && vlanOf(o) === vlanOf(h) ? 1 : 0, `broadcast from ${h.name} at ${o.name}`));
        for (const o of hosts) for (const f of o.ep.take()) assert.equal(seen(f).vlans.length, 0, 'hosts get untagged frames');
      }
      const floods = bridges.map((b) => b.floodCopies);
      for (const a of hosts) {
        for (const b of hosts) {
          if (a === b || vlanOf(a) !== vlanOf(b)) continue;
          const before = counts(hosts);
          const f = frame({ src: a.mac, dst: b.mac, id: ++id });
          a.ep.send([f]);
          const after = counts(hosts);
          hosts.forEach((o, k) => assert.equal(after[k]! - before[k]!, o === b ? 1 : 0, `unicast ${a.name} → ${b.name} at ${o.name}`));
          assert.deepEqual(b.ep.take(), [f]);
        }
      }
      assert.deepEqual(
        bridges.map((b) => b.floodCopies),
        floods,
        'no bridge flooded a learned unicast',
      );
      for (const b of bridges) assertBooks(b);
      assertPoolFull(net.pool);
    }),
    { numRuns: 80 },
  );
});

test('aging: an address learned at t is used until t + A − 1, floods at t + A, and tick() removes it then', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 1e12 }), fc.integer({ min: 0, max: 1e12 }), (A, t0) => {
      const net = newNet();
      const br = newBridge(net, 'br', { agingNs: A });
      const [a, b, c] = [1, 2, 3].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host, Host];
      net.clock.t = t0;
      a.ep.send([frame({ src: a.mac, dst: BROADCAST })]);
      net.clock.t = t0 + A - 1;
      assert.equal(br.tick(), 0, 'nothing has expired at t + A − 1');
      let before = counts([a, b, c]);
      const copies = br.floodCopies;
      b.ep.send([frame({ src: b.mac, dst: a.mac, id: 1 })]);
      assert.deepEqual(
        counts([a, b, c]).map((n, i) => n - before[i]!),
        [1, 0, 0],
        'at t + A − 1 the entry is used',
      );
      assert.equal(br.floodCopies, copies);
      net.clock.t = t0 + A;
      before = counts([a, b, c]);
      b.ep.send([frame({ src: b.mac, dst: a.mac, id: 2 })]);
      assert.deepEqual(
        counts([a, b, c]).map((n, i) => n - before[i]!),
        [1, 0, 1],
        'at t + A the frame floods',
      );
      assert.equal(br.floodCopies, copies + 1);
      const size = br.macs.size;
      assert.equal(br.tick(), 1, 'tick() at t + A ages out exactly the entry learned at t');
      assert.equal(br.macs.size, size - 1);
      assert.deepEqual(
        br.macs.entries().map((e) => e.mac),
        [b.mac],
        'b (learned at t + A − 1, refreshed at t + A) stays',
      );
      assertBooks(br);
    }),
    { numRuns: 200 },
  );
});

test('the table cap holds under a random-MAC flood and eviction spares the ports that hold fewer entries', () => {
  const net = newNet(256);
  const br = newBridge(net, 'br', { capacity: 512 });
  const hosts = [1, 2, 3].map((n) => addHost(br, net, `h${n}`, hostMac(n)));
  const sprayer = addHost(br, net, 'spray', hostMac(4));
  for (const h of hosts) h.ep.keep = false;
  sprayer.ep.keep = false;
  // Three ports learn 100 addresses each (a switch behind each port).
  const macsOf = hosts.map((_, p) => Array.from({ length: 100 }, (_, i) => 0x020100000000 + p * 0x10000 + i));
  hosts.forEach((h, p) => h.ep.send(macsOf[p]!.map((m) => frame({ src: m, dst: BROADCAST }))));
  assert.equal(br.macs.size, 300);
  // The fourth port sprays 20,000 random source addresses, unicast to an address of h1 (no flood).
  const next = rng(0x5eed);
  const tmpl = frame({ src: 0, dst: macsOf[0]![0]! });
  const spray: Uint8Array[] = [];
  for (let i = 0; i < 20000; i++) {
    const f = tmpl.slice();
    wrMac(f, 6, ((next() & 0xfeff) | 0x0200) * 0x1_0000_0000 + next()); // unicast, locally administered
    spray.push(f);
  }
  const delivered = hosts[0]!.ep.count;
  assert.equal(sprayer.ep.send(spray), 20000);
  assert.equal(hosts[0]!.ep.count - delivered, 20000, 'the spray itself went to h1 only');
  assert.ok(br.macs.size <= 512, `table holds ${br.macs.size} > capacity`);
  assert.equal(br.macs.size, 512);
  hosts.forEach((_, p) => assert.equal(br.macs.countOf(hosts[p]!.port.index), 100, `port h${p + 1} kept all its entries`));
  assert.equal(br.macs.countOf(sprayer.port.index), 212);
  // Unicast from the sprayer's port to every address behind the first three: delivered, never flooded.
  const copies = br.floodCopies;
  hosts.forEach((h, p) => {
    const before = counts(hosts);
    sprayer.ep.send(macsOf[p]!.map((m) => frame({ src: sprayer.mac, dst: m })));
    const after = counts(hosts);
    hosts.forEach((o, k) => assert.equal(after[k]! - before[k]!, o === h ? 100 : 0));
  });
  assert.equal(br.floodCopies, copies, 'no unicast to a fairly kept address flooded');
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('station move: an address seen on another port is forwarded there', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const [a, b, c] = [1, 2, 3].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host, Host];
  const roaming = hostMac(0x99);
  a.ep.send([frame({ src: roaming, dst: BROADCAST })]);
  c.ep.send([frame({ src: c.mac, dst: roaming, id: 1 })]);
  assert.deepEqual(
    [a, b, c].map((h) => h.ep.take().map((f) => seen(f).id)),
    [[1], [0], [0]],
    'learned at a: the unicast went there only',
  );
  b.ep.send([frame({ src: roaming, dst: c.mac })]);
  assert.equal(br.macs.stats.moved, 1);
  c.ep.send([frame({ src: c.mac, dst: roaming, id: 2 })]);
  const got = [a, b, c].map((h) => h.ep.take().map((f) => seen(f).id));
  assert.deepEqual(got, [[], [2], [0]], 'now at b, and only b');
  assertBooks(br);
});

test('removing a port flushes its addresses (static ones too): frames to them flood again', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const [a, b, c] = [1, 2, 3].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host, Host];
  const ports: Port[] = [a.port, b.port, c.port];
  const pinned = hostMac(0x77);
  br.addStaticMac(0, pinned, c.port);
  c.ep.send([frame({ src: c.mac, dst: BROADCAST })]);
  a.ep.send([frame({ src: a.mac, dst: c.mac })]);
  assert.equal(b.ep.count, 1, 'learned: only the broadcast reached b');
  br.removePort(c.port);
  assert.equal(
    br.macs.entries().some((e) => e.port === c.port.index),
    false,
    'no entry points at the removed port',
  );
  const copies = br.floodCopies;
  a.ep.send([frame({ src: a.mac, dst: c.mac, id: 5 }), frame({ src: a.mac, dst: pinned, id: 6 })]);
  assert.deepEqual(
    b.ep
      .take()
      .map((f) => seen(f).id)
      .slice(-2),
    [5, 6],
    'both flood to b',
  );
  assert.equal(c.ep.count, 1, 'the removed port gets nothing more');
  assert.equal(br.floodCopies, copies, 'one destination left: no copies');
  assert.throws(() => br.port('h3'), RangeError);
  const aGot = a.ep.count;
  assert.equal(c.ep.send([frame({ src: c.mac, dst: a.mac })]), 0, 'an unplugged device no longer reaches the bridge');
  assert.equal(a.ep.count, aGot);
  assertBooks(br, ports);
  assertPoolFull(net.pool);
});

test("link down flushes the port's learned addresses; frames to them flood once it is back up", () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const [a, b, c] = [1, 2, 3].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host, Host];
  c.ep.send([frame({ src: c.mac, dst: BROADCAST })]);
  assert.equal(br.macs.countOf(c.port.index), 1);
  c.ep.setLink(false);
  assert.equal(c.port.linkUp, false);
  assert.equal(br.macs.countOf(c.port.index), 0, 'flushed on carrier loss');
  a.ep.send([frame({ src: a.mac, dst: c.mac, id: 1 })]);
  assert.equal(c.ep.count, 0, 'nothing goes out of a port without carrier');
  assert.deepEqual(
    b.ep.take().map((f) => seen(f).id),
    [0, 1],
    'the unknown destination floods to b',
  );
  c.ep.setLink(true);
  a.ep.send([frame({ src: a.mac, dst: c.mac, id: 2 })]);
  assert.deepEqual(
    b.ep.take().map((f) => seen(f).id),
    [2],
    'still flooding after carrier returns',
  );
  assert.deepEqual(
    c.ep.take().map((f) => seen(f).id),
    [2],
  );
  assertBooks(br);
});

test('admin down: frames in are dropped with PortDown, floods skip the port, unicast to it is dropped with PortDown', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const [a, b, c] = [1, 2, 3].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host, Host];
  br.addStaticMac(0, c.mac, c.port);
  b.ep.send([frame({ src: b.mac, dst: BROADCAST })]);
  assert.equal(br.macs.countOf(b.port.index), 1);
  br.setAdmin('h2', false);
  assert.equal(br.macs.countOf(b.port.index), 0, 'admin down flushes learned addresses');
  b.ep.send([frame({ src: b.mac, dst: a.mac }), frame({ src: b.mac, dst: BROADCAST })]);
  assert.equal(drops(b.port, DropReason.PortDown), 2);
  assert.equal(a.ep.count + c.ep.count, 2, 'only the first broadcast got through');
  a.ep.send([frame({ src: a.mac, dst: BROADCAST })]);
  assert.equal(b.ep.count, 0, 'floods skip a port that is down');
  br.setAdmin('h3', false);
  a.ep.send([frame({ src: a.mac, dst: c.mac })]);
  assert.equal(drops(c.port, DropReason.PortDown), 1, 'unicast to a static entry on a down port is dropped there');
  assert.equal(c.ep.count, 2, 'the two broadcasts, not the unicast');
  br.setAdmin('h2', true);
  b.ep.send([frame({ src: b.mac, dst: a.mac })]);
  assert.equal(a.ep.take().length, 2, 'back up: forwarding again');
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('frames with a group source address are dropped with SrcMacGroup and never learned', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const [a, b] = [1, 2].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host];
  a.ep.send([frame({ src: 0x01005e000001, dst: BROADCAST }), frame({ src: BROADCAST, dst: b.mac })]);
  assert.equal(drops(a.port, DropReason.SrcMacGroup), 2);
  assert.equal(br.macs.size, 0);
  assert.equal(b.ep.count, 0);
  assertBooks(br);
});

test('a frame to an address learned on its own ingress port is dropped with SameAsIngress', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const [a, b] = [1, 2].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host];
  a.ep.send([frame({ src: hostMac(0x50), dst: BROADCAST }), frame({ src: a.mac, dst: hostMac(0x50) })]);
  assert.equal(drops(a.port, DropReason.SameAsIngress), 1);
  assert.equal(b.ep.count, 1);
  assertBooks(br);
});

test("MTU: a frame larger than the egress port's MTU is dropped there with MtuExceeded (the tag does not count)", () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const a = addHost(br, net, 'a', hostMac(1), { trunk: [5] });
  const ep = new Endpoint('small', net.pool, hostMac(2), 1000);
  const small = br.addPort('small', ep, { vlan: 5 });
  br.addStaticMac(5, hostMac(2), small);
  // 1000 bytes of payload after the Ethernet header fit; 1001 do not.
  a.ep.send([frame({ src: a.mac, dst: hostMac(2), tags: [{ vid: 5 }], pad: 996 }), frame({ src: a.mac, dst: hostMac(2), tags: [{ vid: 5 }], pad: 997 })]);
  assert.equal(ep.count, 1);
  assert.equal(ep.take()[0]!.length, 1014);
  assert.equal(drops(small, DropReason.MtuExceeded), 1);
  assertBooks(br);
  assertPoolFull(net.pool);
});

test('pool exhaustion while flooding: copies that cannot be made are counted as drops and the books balance', () => {
  const net = newNet(6);
  const br = newBridge(net, 'br');
  const hosts = Array.from({ length: 8 }, (_, i) => addHost(br, net, `h${i}`, hostMac(i + 1)));
  // Four frames in one batch hold four buffers; each floods to 7 ports with 2 buffers left for copies.
  hosts[0]!.ep.send([0, 1, 2, 3].map((id) => frame({ src: hostMac(1), dst: BROADCAST, id })));
  const exhausted = hosts.reduce((n, h) => n + drops(h.port, DropReason.PoolExhausted), 0);
  const delivered = hosts.reduce((n, h) => n + h.ep.count, 0);
  assert.ok(exhausted > 0, 'some copies could not be made');
  assert.equal(delivered + exhausted, 4 * 7, 'every destination either got its frame or counted a drop');
  assertBooks(br);
  for (const h of hosts) h.ep.take();
  assertPoolFull(net.pool);
});

test('frames arriving while the bridge is busy wait in the queue; beyond its capacity they drop with QueueFull', () => {
  const net = newNet();
  const br = newBridge(net, 'br');
  const small = new Bridge({ name: 'q', pool: net.pool, clock: net.clock, queueCapacity: 3 });
  for (const bridge of [br, small]) {
    const [a, b, c] = [1, 2, 3].map((n) => addHost(bridge, net, `h${n}`, hostMac(n))) as [Host, Host, Host];
    c.ep.send([frame({ src: c.mac, dst: BROADCAST })]);
    b.ep.send([frame({ src: b.mac, dst: BROADCAST })]);
    for (const h of [a, b, c]) h.ep.take();
    // b answers each frame it gets with five frames to c, sent from inside the bridge's batch.
    b.ep.onFrame = () => {
      b.ep.send([1, 2, 3, 4, 5].map((id) => frame({ src: b.mac, dst: c.mac, id })));
    };
    a.ep.send([frame({ src: a.mac, dst: b.mac })]);
    b.ep.onFrame = null;
    const got = c.ep.take().map((f) => seen(f).id);
    if (bridge === br) {
      assert.deepEqual(got, [1, 2, 3, 4, 5], 'the default queue holds them all, in order');
    } else {
      assert.deepEqual(got, [1, 2, 3], 'three fit in the queue');
      assert.equal(drops(b.port, DropReason.QueueFull), 2);
    }
    assertBooks(bridge);
  }
  assertPoolFull(net.pool);
});

// ---- counters and malformed input ----

const GROUP_SRC = 0x010000000001;

/** Frames of every kind a port may see: valid, tagged, truncated, from group addresses, random bytes. */
function anyFrameArb(macs: number[]): fc.Arbitrary<Uint8Array> {
  const mac = fc.constantFrom(...macs);
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc
        .record(
          {
            src: fc.oneof({ weight: 9, arbitrary: mac }, { weight: 1, arbitrary: fc.constant(GROUP_SRC) }),
            dst: fc.oneof(mac, fc.constant(BROADCAST), fc.constant(0x060000000009)),
            tags: fc.array(
              fc.record({ vid: fc.constantFrom(0, 1, 2, 3, 10, 4095), tpid: fc.constantFrom(0x8100, 0x8100, 0x88a8) }, { noNullPrototype: true }),
              { maxLength: 2 },
            ),
            id: fc.nat(),
          },
          { noNullPrototype: true },
        )
        .map((s) => frame(s)),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 17 }) },
    {
      weight: 1,
      arbitrary: fc.tuple(mac, fc.constantFrom(0x8100, 0x88a8), fc.uint8Array({ maxLength: 3 })).map(([src, tpid, rest]) => {
        const f = new Uint8Array(14 + rest.length);
        wrMac(f, 0, BROADCAST);
        wrMac(f, 6, src);
        f[12] = tpid >> 8;
        f[13] = tpid & 0xff;
        f.set(rest, 14);
        return f;
      }),
    },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 14, maxLength: 100 }) },
  );
}

test('counters add up for every port and batch, and every buffer returns to the pool', () => {
  fc.assert(
    fc.property(
      fc.array(vlanConfigArb, { minLength: 2, maxLength: 6 }),
      fc.array(
        fc.oneof(
          {
            weight: 6,
            arbitrary: fc.record(
              {
                kind: fc.constant('send' as const),
                port: fc.nat(),
                frames: fc.array(anyFrameArb([hostMac(1), hostMac(2), hostMac(3), hostMac(4), hostMac(5)]), { minLength: 1, maxLength: 20 }),
              },
              { noNullPrototype: true },
            ),
          },
          { weight: 1, arbitrary: fc.record({ kind: fc.constant('admin' as const), port: fc.nat(), up: fc.boolean() }, { noNullPrototype: true }) },
          { weight: 1, arbitrary: fc.record({ kind: fc.constant('link' as const), port: fc.nat(), up: fc.boolean() }, { noNullPrototype: true }) },
          { weight: 1, arbitrary: fc.record({ kind: fc.constant('time' as const), ns: fc.integer({ min: 0, max: 400 * S }) }, { noNullPrototype: true }) },
        ),
        { minLength: 1, maxLength: 15 },
      ),
      (cfgs, actions) => {
        const net = newNet(512);
        const br = newBridge(net, 'br');
        const hosts = cfgs.map((cfg, i) => addHost(br, net, `p${i}`, hostMac(i + 1), cfg));
        for (const a of actions) {
          const h = hosts[('port' in a ? a.port : 0) % hosts.length]!;
          const rx0 = h.port.counters.rxPackets;
          switch (a.kind) {
            case 'send':
              assert.equal(h.ep.send(a.frames), a.frames.length);
              assert.equal(h.port.counters.rxPackets - rx0, a.frames.length, 'every frame sent is counted received');
              break;
            case 'admin':
              br.setAdmin(h.port, a.up);
              break;
            case 'link':
              h.ep.setLink(a.up);
              break;
            case 'time':
              net.clock.t += a.ns;
              br.tick();
              break;
          }
          assertBooks(br);
        }
        for (const h of hosts) h.ep.take();
        assertPoolFull(net.pool);
      },
    ),
    { numRuns: 150 },
  );
});

test('malformed frames are counted and dropped with a reason, and never throw', () => {
  fc.assert(
    fc.property(vlanConfigArb, fc.array(fc.uint8Array({ maxLength: 100 }), { minLength: 1, maxLength: 40 }), (cfg, frames) => {
      const net = newNet();
      const br = newBridge(net, 'br');
      const a = addHost(br, net, 'a', hostMac(1), cfg);
      const b = addHost(br, net, 'b', hostMac(2), { trunk: [...[1, 2, 3, 10]] });
      a.ep.send(frames);
      assert.equal(a.port.counters.rxPackets, frames.length);
      const short = frames.filter((f) => f.length < 14).length;
      assert.equal(drops(a.port, DropReason.EthTruncated), short, 'every frame under 14 bytes is EthTruncated');
      // Whatever was not dropped at ingress went out to b (the only other port) or was dropped with a reason.
      const dropped = a.port.counters.dropped + b.port.counters.dropped;
      assert.equal(b.ep.count + dropped, frames.length);
      for (const f of b.ep.take()) assert.equal(f[6]! & 1, 0, 'no group source address is forwarded');
      assertBooks(br);
      assertPoolFull(net.pool);
    }),
    { numRuns: 300 },
  );
});

test('ingress segment model agrees with the bridge on single tagged frames', () => {
  // A sanity check of the test model itself against a handful of cases the port documentation spells out.
  assert.equal(ingressSegment({ vlan: 5 }, []), 5);
  assert.equal(ingressSegment({ vlan: 5 }, [{ vid: 0 }]), 5, 'priority tag');
  assert.equal(ingressSegment({ vlan: 5 }, [{ vid: 5 }]), null, 'access ports take no tagged frames');
  assert.equal(ingressSegment({ trunk: [1, 2], native: 3 }, []), 3);
  assert.equal(ingressSegment({ trunk: [1, 2] }, [{ vid: 2 }]), 2);
  assert.equal(ingressSegment({ trunk: [1, 2] }, [{ vid: 4 }]), null);
  assert.equal(ingressSegment({ trunk: [1, 2] }, [{ vid: 1, tpid: 0x88a8 }]), null);
  assert.equal(untaggedVlan({ trunk: [1] }), 0);
  const net = newNet();
  const br: Bridge = newBridge(net, 'br');
  const t = addHost(br, net, 't', hostMac(1), { trunk: [1, 2], native: 3 });
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((s) => t.port.carries(s)),
    [0, 1, 2, 3, 4].map((s) => carries(t.cfg, s)),
  );
});

test('a received frame with a bad length never corrupts the next one in the same batch', () => {
  // A short frame in the middle of a batch is dropped; the frames around it are delivered intact.
  const net = newNet();
  const br = newBridge(net, 'br');
  const [a, b] = [1, 2].map((n) => addHost(br, net, `h${n}`, hostMac(n))) as [Host, Host];
  const f1 = frame({ src: a.mac, dst: b.mac, id: 1 });
  const f3 = frame({ src: a.mac, dst: b.mac, id: 3, pad: 100 });
  a.ep.send([f1, new Uint8Array(13), f3]);
  assert.deepEqual(b.ep.take(), [f1, f3]);
  assert.equal(rdMac(f3, 6), a.mac);
  assertBooks(br);
});
