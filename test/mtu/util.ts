/** Helpers shared by the fragmentation and reassembly tests (not a test file itself). */
import { PacketPool, type PacketBuf } from '../../src/packet/buf.js';
import { fromHex } from '../../src/wire/bytes.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6 } from '../../src/wire/ethernet.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/wire/ipv4.js';
import { IPV6_NH_DEST_OPTS, IPV6_NH_HOP_BY_HOP, IPV6_NH_ROUTING } from '../../src/wire/ipv6.js';
import { compose, type Layer } from '../../src/wire/stack.js';
import { rng } from '../helpers.js';
import { eth, ip4, ip6, tcp, udp } from '../peers/catalogue.js';

/** Bytes from a seeded generator (payloads must differ byte to byte, or misplaced data would not show). */
export function randomBytes(n: number, seed: number): Uint8Array {
  const r = rng(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() & 0xff;
  return out;
}

export interface V4Opts {
  /** Bytes after the UDP (or TCP) header. */
  payload: number;
  seed?: number;
  vlan?: boolean;
  tcp?: boolean;
  /** Raw IPv4 option bytes (a multiple of 4). */
  options?: Uint8Array;
  ident?: number;
  src?: string;
  dst?: string;
  dontFrag?: boolean;
}

/** Ethernet (optionally tagged) + IPv4 + UDP/TCP + random bytes; DF clear unless asked. */
export function v4Frame(o: V4Opts): Uint8Array {
  const tags = o.vlan === true ? [{ tpid: 0x8100, pcp: 0, dei: false, vid: 7 }] : [];
  const layers: Layer[] = [
    eth(ETHERTYPE_IPV4, tags),
    ip4(o.src ?? '192.168.10.1', o.dst ?? '192.168.10.2', o.tcp === true ? IPPROTO_TCP : IPPROTO_UDP, {
      dontFrag: o.dontFrag ?? false,
      ident: o.ident ?? 0x4242,
      options: o.options ?? new Uint8Array(0),
    }),
    o.tcp === true ? tcp(40000, 443, 0x018) : udp(50000, 4789),
    { kind: 'data', bytes: randomBytes(o.payload, o.seed ?? 1) },
  ];
  return compose(layers);
}

export interface V6Opts {
  payload: number;
  seed?: number;
  /** Extension headers between the IPv6 header and UDP, by type (8 bytes each, Routing with one address). */
  ext?: number[];
  src?: string;
  dst?: string;
}

/** Ethernet + IPv6 + the extension headers asked for + UDP + random bytes. */
export function v6Frame(o: V6Opts): Uint8Array {
  const ext = o.ext ?? [];
  const layers: Layer[] = [eth(ETHERTYPE_IPV6), ip6(o.src ?? 'fd00:cafe::a', o.dst ?? 'fd00:cafe::b', ext[0] ?? IPPROTO_UDP)];
  ext.forEach((t, i) => {
    const next = ext[i + 1] ?? IPPROTO_UDP;
    // A Routing header type 0 with segments left 0 and one address (24 bytes); options headers padded (PadN).
    const data =
      t === IPV6_NH_ROUTING ? fromHex('0000' + '00000000' + '20010db8000000000000000000000001') : fromHex('01040000000000000000000000000000'.slice(0, 12));
    layers.push({ kind: 'ipv6ext', repr: { headerType: t, nextHeader: next, data } });
  });
  layers.push(udp(50000, 4789), { kind: 'data', bytes: randomBytes(o.payload, o.seed ?? 1) });
  return compose(layers);
}

export { IPV6_NH_DEST_OPTS, IPV6_NH_HOP_BY_HOP, IPV6_NH_ROUTING };

/** A buffer from `pool` holding `frame`, with l2/l3 set as a receive path would. */
export function bufOf(pool: PacketPool, frame: Uint8Array, linkLen = 14): PacketBuf {
  const p = pool.alloc();
  if (p === null) throw new Error('test pool exhausted');
  if (!p.load(frame)) throw new Error(`frame of ${frame.length} does not fit`);
  p.l2 = p.start;
  p.l3 = p.start + linkLen;
  return p;
}

/** A pool whose buffers hold `frameCapacity`-byte frames. */
export function pool(count: number, frameCapacity: number): PacketPool {
  return new PacketPool({ count, frameCapacity });
}

/** Fisher–Yates with a seeded generator. */
export function shuffle<T>(xs: T[], seed: number): T[] {
  const r = rng(seed);
  for (let i = xs.length - 1; i > 0; i--) {
    const j = r() % (i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** A copy of the frame in `p` in a fresh buffer of `into` (a duplicate on the wire). */
export function dup(into: PacketPool, p: PacketBuf): PacketBuf {
  const q = into.alloc();
  if (q === null) throw new Error('test pool exhausted');
  q.load(p.bytes());
  return q;
}
