/**
 * What a simulated host's protocol modules (neigh.ts, icmp.ts, ping.ts, udp.ts, hosttcp.ts, tcp.ts) use of
 * the host (`SimHost`, host.ts): its addresses, its counters and its IP sending path. They depend on this
 * interface, not on host.ts, so host.ts imports them and nothing imports host.ts back.
 */
import type { PacketBuf, PacketPool } from '../packet/buf.js';
import type { Addr } from '../wire/addr.js';
import type { Simulator } from './engine.js';

/** What the host counted. */
export interface HostCounters {
  rxFrames: number;
  txFrames: number;
  /** Frames not for this host (another MAC or address), or of a protocol it does not speak. */
  rxIgnored: number;
  /** Frames that failed a length or checksum check. */
  rxBad: number;
  arpRequestsSent: number;
  arpRepliesSent: number;
  nsSent: number;
  naSent: number;
  echoRepliesSent: number;
  /** Packets dropped because their next hop never answered, or the neighbour queue was full. */
  neighDrops: number;
  /** Packets without a route (off-link and no gateway). */
  noRoute: number;
  /** Buffers the pool could not give. */
  poolEmpty: number;
  /** ICMP too-big messages that lowered a PMTU. */
  pmtuUpdates: number;
  /** UDP datagrams to a port without a sink. */
  udpNoPort: number;
  /** Packets larger than the MTU that could not be fragmented (DF set, e.g. an echo reply to a larger DF request). */
  unsendable: number;
  /** IPv4 packets sent in fragments (larger than the MTU, no DF), and the fragments that made. */
  fragmented: number;
  fragmentsSent: number;
  /** Datagrams reassembled from received fragments, and fragments dropped by reassembly (bad, overlapping, …). */
  reassembled: number;
  fragmentDrops: number;
  /** TCP segments of no connection (answered with RST unless they were one). */
  tcpNoConn: number;
  /** RSTs sent for them. */
  tcpRstSent: number;
}

/** A simulated host's stack as its protocol modules see it. @internal */
export interface HostStack {
  readonly name: string;
  readonly sim: Simulator;
  readonly pool: PacketPool;
  readonly counters: HostCounters;
  readonly mac: number;
  /** L3 MTU of the interface. */
  readonly mtu: number;
  readonly v4: number;
  /** Null without an IPv6 address. */
  readonly v6: Uint8Array | null;
  /** Answer ARP requests and Neighbor Solicitations for its own addresses (`HostConfig.answerNeighbors`). */
  readonly answerNeighbors: boolean;
  /** The path MTU towards a parsed address (the interface MTU until a too-big message says less). */
  pathMtuTo(dst: Addr): number;
  /** Whether an IP packet of `len` bytes may go to `dst`: within the interface MTU, and the PMTU when DF. */
  fits(dst: Addr, len: number, df: boolean): boolean;
  /** A buffer holding an Ethernet header and `ipLen` bytes of IP (not yet written); null when the pool is empty (counted). */
  allocIp(ipLen: number): PacketBuf | null;
  /** Writes the IP header of a `ipLen`-byte packet to `dst`; returns the L4 offset. */
  ipHeader(p: PacketBuf, dst: Addr, proto: number, ipLen: number, df: boolean): number;
  /** Fills the checksum of the L4 segment at `l4` (`len` bytes; ICMPv4 `proto` -1: no pseudo-header); only its first `sumLen` bytes can be non-zero. */
  fillL4Checksum(p: PacketBuf, family: 4 | 6, l4: number, len: number, proto: number, sumLen?: number): void;
  /** Sends an IP packet (IP at start + 14) towards `v4` or the IPv6 address at `b6[o6]`: to its next hop, or queued while that resolves. */
  route(p: PacketBuf, family: 4 | 6, v4: number, b6: Uint8Array | null, o6: number): void;
  /** Writes the Ethernet header and hands the frame on (fragmenting IPv4 above the MTU). */
  sendTo(p: PacketBuf, dstMac: number, etherType: number): void;
}
