/**
 * Shared pieces of the datapath tests: a warpable clock, bridges with hosts plugged in, frames that carry
 * an id so a receiver can say which frame it got, the two accounting identities the bridge promises, and
 * a veth pair that keeps a copy of what crosses it (to look at outer tunnel headers).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Bridge, type Clock } from '../../src/datapath/bridge.js';
import { Endpoint, VethEnd } from '../../src/datapath/device.js';
import { EspSadb } from '../../src/esp/sadb.js';
import type { Port, VlanConfig } from '../../src/datapath/port.js';
import { PacketPool, type PacketBatch } from '../../src/packet/buf.js';
import { rd32, wr32 } from '../../src/wire/bytes.js';
import type { DropReason } from '../../src/wire/drop.js';
import { compose, dissect, type Layer } from '../../src/wire/stack.js';
import type { VlanTag } from '../../src/wire/ethernet.js';
export { rng } from '../helpers.js';

/** Local experimental EtherType (IEEE 802): frames the bridge switches without looking inside. */
export const ETHERTYPE_TEST = 0x88b5;
export const BROADCAST = 0xffffffffffff;

/** A clock the test moves by hand (nanoseconds). */
export class VirtualClock implements Clock {
  t = 0;
  now(): number {
    return this.t;
  }
}

/** A locally administered unicast MAC from a small number (distinct numbers, distinct MACs). */
export function hostMac(n: number): number {
  return 0x02_00_00_00_00_00 + n;
}

export interface Net {
  pool: PacketPool;
  clock: VirtualClock;
}

export function newNet(poolCount = 256): Net {
  return { pool: new PacketPool({ count: poolCount, frameCapacity: 2048 }), clock: new VirtualClock() };
}

export function newBridge(net: Net, name: string, macTable?: { capacity?: number; agingNs?: number }): Bridge {
  return new Bridge({ name, pool: net.pool, clock: net.clock, ...(macTable !== undefined ? { macTable } : {}) });
}

export interface Host {
  name: string;
  mac: number;
  ep: Endpoint;
  port: Port;
  bridge: Bridge;
  cfg: VlanConfig;
}

/** An endpoint on a new port of `bridge`. */
export function addHost(bridge: Bridge, net: Net, name: string, mac: number, cfg: VlanConfig = {}): Host {
  const ep = new Endpoint(name, net.pool, mac);
  const port = bridge.addPort(name, ep, cfg);
  return { name, mac, ep, port, bridge, cfg };
}

export interface FrameSpec {
  dst: number;
  src: number;
  /** 802.1Q tags, outermost first (tpid 0x8100 unless given). */
  tags?: Array<Partial<VlanTag> & { vid: number }>;
  id?: number;
  /** Payload length after the 4-byte id (default 42: a minimum-size frame). */
  pad?: number;
  etherType?: number;
}

/** An Ethernet frame of the test EtherType whose payload starts with a 32-bit id. */
export function frame(s: FrameSpec): Uint8Array {
  const body = new Uint8Array(4 + (s.pad ?? 42));
  wr32(body, 0, s.id ?? 0);
  for (let i = 4; i < body.length; i++) body[i] = (i * 7 + (s.id ?? 0)) & 0xff;
  const vlans = (s.tags ?? []).map((t) => ({ tpid: t.tpid ?? 0x8100, pcp: t.pcp ?? 0, dei: t.dei ?? false, vid: t.vid }));
  const layers: Layer[] = [
    { kind: 'eth', repr: { dst: s.dst, src: s.src, vlans, etherType: s.etherType ?? ETHERTYPE_TEST } },
    { kind: 'data', bytes: body },
  ];
  return compose(layers);
}

export interface Seen {
  dst: number;
  src: number;
  vlans: VlanTag[];
  etherType: number;
  id: number;
}

/** What a received test frame says about itself. */
export function seen(bytes: Uint8Array): Seen {
  const d = dissect(bytes);
  const e = d.layers[0];
  assert.ok(e !== undefined && e.kind === 'eth', 'received frame has an Ethernet header');
  const data = d.layers[1];
  const id = data !== undefined && data.kind === 'data' && data.bytes.length >= 4 ? rd32(data.bytes, 0) : -1;
  return { dst: e.repr.dst, src: e.repr.src, vlans: e.repr.vlans, etherType: e.repr.etherType, id };
}

/** Sum of port counters over the given ports (default: the bridge's current ports). */
export function books(bridge: Bridge, ports: readonly Port[] = bridge.ports.filter((p): p is Port => p !== null)): { rx: number; tx: number; drops: number } {
  let rx = 0,
    tx = 0,
    drops = 0;
  for (const p of ports) {
    rx += p.counters.rxPackets;
    tx += p.counters.txPackets;
    drops += p.counters.dropped;
  }
  return { rx, tx, drops };
}

/**
 * The bridge's identity: Σ rx + flood copies + frames it generated + extra fragments it made = Σ tx + Σ drops
 * + fragments merged by reassembly + fragments held + packets waiting for ESP (and the gateway's, when it has one).
 */
export function assertBooks(bridge: Bridge, ports?: readonly Port[]): void {
  const b = books(bridge, ports);
  const made = bridge.floodCopies + bridge.generated + bridge.fragmentsMade + bridge.segmentsMade;
  const gone = bridge.fragmentsMerged + bridge.heldFragments + bridge.heldForEsp;
  assert.equal(
    b.rx + made,
    b.tx + b.drops + gone,
    `bridge ${bridge.name}: rx ${b.rx} + flood copies ${bridge.floodCopies} + generated ${bridge.generated} + fragments made ${bridge.fragmentsMade} + segments made ${bridge.segmentsMade} ≠ tx ${b.tx} + drops ${b.drops} + fragments merged ${bridge.fragmentsMerged} + held ${bridge.heldFragments} + waiting for ESP ${bridge.heldForEsp}`,
  );
  const gw = bridge.gateway;
  if (gw !== null) {
    const port = bridge.ports.find((q) => q?.kind === 'gateway')!;
    const rhs = gw.counters.rxPackets - gw.generated + gw.counters.dropped + gw.consumed;
    assert.equal(
      port.counters.txPackets,
      rhs,
      `bridge ${bridge.name}: gateway tx ${port.counters.txPackets} ≠ rx ${gw.counters.rxPackets} − generated ${gw.generated} + drops ${gw.counters.dropped} + consumed ${gw.consumed}`,
    );
  }
}

/**
 * Introduces the ESP tunnels `port` of two bridges to each other, as the simulator's control plane does:
 * their announcements are exchanged directly, not over the underlay (esp/sadb.ts).
 */
export function introduceEsp(a: Bridge, b: Bridge, port = 'tun0'): void {
  const sa = a.tunnel(port).sadb!;
  const sb = b.tunnel(port).sadb!;
  EspSadb.introduce(sa, a.tunnel(port).findVtep(sb.ident.localAddr), sb, b.tunnel(port).findVtep(sa.ident.localAddr), 0);
}

/** Every buffer is back in the pool. */
export function assertPoolFull(pool: PacketPool): void {
  assert.equal(pool.available, pool.size, `pool: ${pool.size - pool.available} buffers not returned`);
}

export function drops(port: Port, reason: DropReason): number {
  return port.counters.drops[reason]!;
}

/** Frames received by each host so far (their `count`). */
export function counts(hosts: readonly Host[]): number[] {
  return hosts.map((h) => h.ep.count);
}

/** A veth end that keeps a copy of every frame transmitted through it (the outer frames of a tunnel). */
export class TapEnd extends VethEnd {
  readonly sent: Uint8Array[] = [];
  override transmit(batch: PacketBatch): void {
    for (let i = 0; i < batch.length; i++) this.sent.push(batch.get(i).bytes().slice());
    super.transmit(batch);
  }
}

/** Two linked tapping veth ends. */
export function tapPair(nameA: string, nameB: string, macA: number, macB: number, mtu = 1500): [TapEnd, TapEnd] {
  const a = new TapEnd(nameA, macA, mtu);
  const b = new TapEnd(nameB, macB, mtu);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

// ---- a model of VLAN membership, written from the port documentation ----

/** VLANs the random port configurations use. */
export const VIDS = [1, 2, 3, 10] as const;

/** Random access or trunk configurations (trunks with random allowed sets and natives, native sometimes default). */
export const vlanConfigArb: fc.Arbitrary<VlanConfig> = fc.oneof(
  fc.constantFrom(0, ...VIDS).map((vlan): VlanConfig => ({ vlan })),
  fc.record({ trunk: fc.subarray([...VIDS], { minLength: 1 }), native: fc.constantFrom(0, ...VIDS) }, { requiredKeys: ['trunk'] }),
);

/** The untagged VLAN of a port: its access VLAN or its trunk's native VLAN. */
export function untaggedVlan(cfg: VlanConfig): number {
  return cfg.trunk !== undefined ? (cfg.native ?? 0) : (cfg.vlan ?? 0);
}

export function carries(cfg: VlanConfig, segment: number): boolean {
  return segment === untaggedVlan(cfg) || cfg.trunk?.includes(segment) === true;
}

/** The segment a frame with these tags belongs to when it enters a port with `cfg`, or null when refused. */
export function ingressSegment(cfg: VlanConfig, tags: ReadonlyArray<{ tpid?: number; vid: number }>): number | null {
  const t = tags[0];
  if (t === undefined) return untaggedVlan(cfg);
  if ((t.tpid ?? 0x8100) !== 0x8100) return null;
  if (t.vid === 0) return untaggedVlan(cfg); // priority tag
  if (cfg.trunk === undefined) return null;
  return carries(cfg, t.vid) ? t.vid : null;
}
