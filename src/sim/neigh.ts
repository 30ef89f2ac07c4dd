/**
 * A simulated host's neighbours: ARP (RFC 826) and Neighbor Discovery (RFC 4861 §7.2). It answers for the
 * host's own addresses, gleans the asker, resolves next hops itself (a few packets queued per unresolved
 * neighbour, solicitations retried on a timer, queued packets dropped when resolution fails); static
 * neighbours are allowed. Entries do not age.
 */
import { Ipv6Table } from '../packet/addrtable.js';
import type { PacketBuf } from '../packet/buf.js';
import { eq16, ipv4ToString, ipv6ToString, MAC_BROADCAST, rd16, rd32, rdMac, wr16, wr32, wrMac } from '../wire/bytes.js';
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT } from '../wire/icmpv6.js';
import { IPPROTO_ICMPV6 } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import type { SimTask } from './engine.js';
import type { HostStack } from './stack.js';

/** Packets held per unresolved neighbour (Linux's unres_qlen is larger; a few show the behaviour). */
const NEIGH_QUEUE = 3;
/** Solicitations sent before a neighbour is declared unreachable (Linux mcast_solicit). */
const NEIGH_TRIES = 3;
/** Time between solicitations (Linux retrans_time). */
const NEIGH_RETRANS_NS = 1e9;

export const SNM_PREFIX = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0]);
const ALL_NODES = new Uint8Array([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);

/** The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1). */
export function snmOf(a: Uint8Array): Uint8Array {
  const s = SNM_PREFIX.slice();
  s[13] = a[13]!;
  s[14] = a[14]!;
  s[15] = a[15]!;
  return s;
}

/** A neighbour entry; `queue` holds packets (IP at `start + 14`) waiting for the MAC. */
interface Neigh {
  /** Its index in the table (the argument of its retransmission timer). */
  index: number;
  family: 4 | 6;
  v4: number;
  v6: Uint8Array | null;
  mac: number;
  state: 'incomplete' | 'reachable' | 'static' | 'failed';
  tries: number;
  queue: PacketBuf[];
}

/** The neighbour table of one host, and its ARP and ND; one simulator task: `run(i)` is entry i's retransmission timer. */
export class Neighbours implements SimTask {
  private readonly neighs: Neigh[] = [];
  private readonly neigh4 = new Map<number, number>();
  private readonly neigh6 = new Ipv6Table<number>();

  constructor(private readonly host: HostStack) {}

  /** A static neighbour (never solicited, never replaced by what is learned). */
  addStatic(family: 4 | 6, v4: number, v6: Uint8Array | null, mac: number): void {
    const n = this.neighFor(family, v4, v6, 0, true);
    n.mac = mac;
    n.state = 'static';
    this.flush(n);
  }

  /** The table, for display and tests. */
  list(): Array<{ ip: string; mac: number; state: string }> {
    return this.neighs.map((n) => ({ ip: n.family === 4 ? ipv4ToString(n.v4) : ipv6ToString(n.v6!), mac: n.mac, state: n.state }));
  }

  /** Sends an IP packet to the next hop `v4` (or the IPv6 address at `b6[o6]`), or queues it while the hop resolves. */
  send(p: PacketBuf, family: 4 | 6, v4: number, b6: Uint8Array | null, o6: number): void {
    const n = this.neighFor(family, v4, b6, o6, true);
    if (n.state === 'reachable' || n.state === 'static') {
      this.host.sendTo(p, n.mac, family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6);
      return;
    }
    if (n.queue.length >= NEIGH_QUEUE) {
      // Linux drops the oldest queued packet.
      n.queue.shift()!.release();
      this.host.counters.neighDrops++;
    }
    n.queue.push(p);
    if (n.state !== 'incomplete') {
      n.state = 'incomplete';
      n.tries = 0;
      this.solicit(n);
    }
  }

  /** Retransmission timer: `arg` is the entry's index. */
  run(arg: number): void {
    const n = this.neighs[arg];
    if (n === undefined || n.state !== 'incomplete') return;
    if (n.tries >= NEIGH_TRIES) {
      n.state = 'failed';
      this.host.counters.neighDrops += n.queue.length;
      for (const q of n.queue) q.release();
      n.queue.length = 0;
      return;
    }
    this.solicit(n);
  }

  /** Broadcasts an ARP request for `target` from the host's MAC and address. */
  arpRequest(target: number): void {
    const h = this.host;
    const p = h.pool.alloc();
    if (p === null) {
      h.counters.poolEmpty++;
      return;
    }
    const b = p.data;
    p.put(ETH_HEADER_LEN + 28);
    const a = p.start + ETH_HEADER_LEN;
    wr16(b, a, 1);
    wr16(b, a + 2, ETHERTYPE_IPV4);
    b[a + 4] = 6;
    b[a + 5] = 4;
    wr16(b, a + 6, 1);
    wrMac(b, a + 8, h.mac);
    wr32(b, a + 14, h.v4);
    wrMac(b, a + 18, 0);
    wr32(b, a + 24, target);
    h.counters.arpRequestsSent++;
    h.sendTo(p, MAC_BROADCAST, ETHERTYPE_ARP);
  }

  private solicit(n: Neigh): void {
    const h = this.host;
    n.tries++;
    h.sim.after(NEIGH_RETRANS_NS, this, n.index);
    if (n.family === 4) {
      this.arpRequest(n.v4);
      return;
    }
    const p = h.pool.alloc();
    if (p === null) {
      h.counters.poolEmpty++;
      return;
    }
    const b = p.data;
    // NS to the solicited-node multicast address ff02::1:ffXX:XXXX (RFC 4291 §2.7.1) with our link-layer address.
    const t = n.v6!;
    p.put(ETH_HEADER_LEN + IPV6_HEADER_LEN + 32);
    const ip = p.start + ETH_HEADER_LEN;
    wr32(b, ip, 0x60000000);
    wr16(b, ip + 4, 32);
    b[ip + 6] = IPPROTO_ICMPV6;
    b[ip + 7] = 255;
    b.set(h.v6!, ip + 8);
    b.set(SNM_PREFIX, ip + 24);
    b[ip + 37] = t[13]!;
    b[ip + 38] = t[14]!;
    b[ip + 39] = t[15]!;
    const l4 = ip + IPV6_HEADER_LEN;
    b[l4] = ICMPV6_NEIGHBOR_SOLICIT;
    b[l4 + 1] = 0;
    wr16(b, l4 + 2, 0);
    wr32(b, l4 + 4, 0);
    b.set(t, l4 + 8);
    b[l4 + 24] = 1;
    b[l4 + 25] = 1;
    wrMac(b, l4 + 26, h.mac);
    h.fillL4Checksum(p, 6, l4, 32, IPPROTO_ICMPV6);
    h.counters.nsSent++;
    h.sendTo(p, 0x3333ff000000 + ((t[13]! << 16) | (t[14]! << 8) | t[15]!), ETHERTYPE_IPV6);
  }

  private neighFor(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, create: true): Neigh;
  private neighFor(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, create: boolean): Neigh | undefined;
  private neighFor(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, create: boolean): Neigh | undefined {
    const i = family === 4 ? this.neigh4.get(v4) : this.neigh6.get(b!, o);
    if (i !== undefined) return this.neighs[i]!;
    if (!create) return undefined;
    const index = this.neighs.length;
    const n: Neigh = { index, family, v4, v6: family === 6 ? b!.slice(o, o + 16) : null, mac: 0, state: 'failed', tries: 0, queue: [] };
    this.neighs.push(n);
    if (family === 4) this.neigh4.set(v4, index);
    else this.neigh6.set(n.v6!, index);
    return n;
  }

  /** A neighbour's MAC became known: remember it (static entries stay) and send what waited for it. */
  private learn(family: 4 | 6, v4: number, b: Uint8Array | null, o: number, mac: number, create: boolean): void {
    const n = this.neighFor(family, v4, b, o, create);
    if (n === undefined || n.state === 'static') return;
    n.mac = mac;
    n.state = 'reachable';
    this.flush(n);
  }

  private flush(n: Neigh): void {
    const q = n.queue.splice(0);
    for (const p of q) this.host.sendTo(p, n.mac, n.family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6);
  }

  /** A received ARP packet; true when the buffer was reused (the reply), false to release it. */
  arp(p: PacketBuf): boolean {
    const h = this.host;
    const b = p.data;
    const a = p.start + ETH_HEADER_LEN;
    if (p.end - a < 28 || rd16(b, a) !== 1 || rd16(b, a + 2) !== ETHERTYPE_IPV4 || b[a + 4] !== 6 || b[a + 5] !== 4) {
      h.counters.rxBad++;
      return false;
    }
    const op = rd16(b, a + 6);
    const senderMac = rdMac(b, a + 8);
    const senderIp = rd32(b, a + 14);
    const targetIp = rd32(b, a + 24);
    const forUs = targetIp === h.v4;
    // RFC 826: update an existing entry; add one when the packet is for us.
    if (senderIp !== 0) this.learn(4, senderIp, null, 0, senderMac, forUs);
    if (op !== 1 || !forUs || !h.answerNeighbors) return false;
    wr16(b, a + 6, 2);
    wrMac(b, a + 18, senderMac);
    wr32(b, a + 24, senderIp);
    wrMac(b, a + 8, h.mac);
    wr32(b, a + 14, h.v4);
    p.end = a + 28;
    h.counters.arpRepliesSent++;
    h.sendTo(p, senderMac, ETHERTYPE_ARP);
    return true;
  }

  /** NS for our address → NA in place (RFC 4861 §7.2.4); NS/NA teach us the sender's or target's MAC. */
  nd(p: PacketBuf, ip: number, l4: number, len: number): boolean {
    const h = this.host;
    const b = p.data;
    if (len < 24 || b[ip + 7] !== 255 || b[l4 + 1] !== 0) {
      h.counters.rxBad++;
      return false;
    }
    const t = b[l4]!;
    let lla = -1;
    for (let o = l4 + 24; o + 8 <= l4 + len; ) {
      const ol = b[o + 1]! * 8;
      if (ol === 0 || o + ol > l4 + len) {
        h.counters.rxBad++;
        return false;
      }
      if (b[o] === (t === ICMPV6_NEIGHBOR_SOLICIT ? 1 : 2)) lla = rdMac(b, o + 2);
      o += ol;
    }
    const me = h.v6!;
    if (t === ICMPV6_NEIGHBOR_ADVERT) {
      if (lla >= 0) this.learn(6, 0, b, l4 + 8, lla, false);
      return false;
    }
    if (!eq16(b, l4 + 8, me)) return false;
    let unspecified = true;
    for (let i = 0; i < 16; i++) if (b[ip + 8 + i] !== 0) unspecified = false;
    // Learn the asker, as ARP does, whether or not this host answers.
    if (lla >= 0 && !unspecified) this.learn(6, 0, b, ip + 8, lla, true);
    if (!h.answerNeighbors) return false;
    const dstMac = unspecified ? 0x333300000001 : rdMac(b, p.start + 6);
    if (unspecified) b.set(ALL_NODES, ip + 24);
    else b.copyWithin(ip + 24, ip + 8, ip + 24);
    b.set(me, ip + 8);
    const naLen = 32;
    p.end = l4;
    if (p.put(naLen) < 0) return false;
    b[l4] = ICMPV6_NEIGHBOR_ADVERT;
    b[l4 + 1] = 0;
    wr16(b, l4 + 2, 0);
    wr32(b, l4 + 4, unspecified ? 0x20000000 : 0x60000000);
    b.set(me, l4 + 8);
    b[l4 + 24] = 2;
    b[l4 + 25] = 1;
    wrMac(b, l4 + 26, h.mac);
    wr16(b, ip + 4, naLen);
    b[ip + 6] = IPPROTO_ICMPV6;
    b[ip + 7] = 255;
    h.fillL4Checksum(p, 6, l4, naLen, IPPROTO_ICMPV6);
    h.counters.naSent++;
    h.sendTo(p, dstMac, ETHERTYPE_IPV6);
    return true;
  }
}
