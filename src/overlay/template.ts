/**
 * Outer headers for VXLAN (RFC 7348), Geneve (RFC 8926) and Ethernet-over-GRE (RFC 2784, protocol type
 * 0x6558, the RFC 2890 key carrying the VNI) encapsulation, built once per tunnel and patched per packet
 * (as OVS's native tunnels do): the IP length, the IPv4 identification and header checksum, the UDP
 * length, the VNI (GRE: the key), and the UDP source port taken from the inner flow's hash (RFC 7348 §5,
 * RFC 8926 §3.3) in a configurable range. GRE has no UDP header, so no source port to spread flows with
 * and no UDP checksum; it sends no GRE checksum either (as Linux's gretap and OVS do by default).
 *
 * The IPv4 header checksum is finished from a precomputed partial sum of the fixed fields plus the length
 * and identification (the VNI and the ports lie outside the IP header and do not touch it), so the
 * per-packet cost is one header copy and a handful of stores.
 * Over IPv4 the UDP checksum is zero by default, as Linux sends it; over IPv6 it is always computed
 * (RFC 8200 §8.1; the zero checksum RFC 6935 allows for tunnels is refused by a receiver unless enabled
 * for the port, RFC 6935 §5). When computed it covers the whole datagram, so it is filled in after the
 * VNI is written.
 *
 * Geneve options given in the configuration are sent on every packet, and the header's C bit is set if
 * and only if one of them is critical (RFC 8926 §3.4, §3.5).
 */
import type { PacketBuf } from '../packet/buf.js';
import { wr16 } from '../wire/bytes.js';
import { fold, onesSum, pseudoSumV6At } from '../wire/checksum.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, ETH_HEADER_LEN } from '../wire/ethernet.js';
import {
  geneveCriticalFlag,
  GENEVE_MAX_OPTION_DATA_LEN,
  GENEVE_MAX_OPTIONS_LEN,
  GENEVE_OPTION_HEADER_LEN,
  GENEVE_UDP_PORT,
  type GeneveOption,
} from '../wire/geneve.js';
import { GRE_PROTO_TEB } from '../wire/gre.js';
import { IPV4_HEADER_LEN, IPPROTO_GRE, IPPROTO_UDP } from '../wire/ipv4.js';
import { IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { compose, type Layer } from '../wire/stack.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';
import { VXLAN_UDP_PORT } from '../wire/vxlan.js';

/** The tunnel header a template emits after the outer UDP header (VXLAN, Geneve) or IP header (GRE). */
export type TunnelKind = 'vxlan' | 'geneve' | 'gre';

/** Every tunnel kind, in the order lists and errors name them (scenario files, node and agent configs). */
export const TUNNEL_KINDS: readonly TunnelKind[] = ['vxlan', 'geneve', 'gre'];

export type Underlay = { family: 4; src: number; dst: number } | { family: 6; src: Uint8Array; dst: Uint8Array };

export interface TunnelTemplateConfig {
  kind: TunnelKind;
  /** Outer Ethernet source and destination (48-bit numbers). */
  srcMac: number;
  dstMac: number;
  underlay: Underlay;
  /** The VNI written into `header`; `encap` overwrites it per packet. 24 bits. */
  vni: number;
  /**
   * GRE only: send the key field (RFC 2890 §2.1) holding the VNI, as Antrea's and OVS's GRE ports do (an
   * 8-byte GRE header). Without it the header is 4 bytes and carries no VNI. Default true.
   */
  greKey?: boolean;
  /** Default 64. */
  ttl?: number;
  /** Default false, like Linux vxlan's `df unset`. */
  dontFrag?: boolean;
  /** UDP source port range from the flow hash; default 49152–65535 (RFC 7348 §5). */
  srcPortMin?: number;
  srcPortMax?: number;
  /** Default 4789 for VXLAN, 6081 for Geneve; GRE has no UDP header and refuses one. */
  dstPort?: number;
  /** Compute the outer UDP checksum over IPv4 too (always over IPv6). Default false. GRE refuses true. */
  udpChecksum?: boolean;
  /**
   * Geneve only: options sent on every packet, in this order. Each option's data is a multiple of 4
   * bytes, at most 124; the options with their 4-byte headers take at most 252 bytes (RFC 8926 §3.4).
   */
  options?: readonly GeneveOption[];
}

/** Offset of the 24-bit VNI within both the VXLAN and the Geneve header. */
const isUint = (v: number, max: number): boolean => Number.isInteger(v) && v >= 0 && v <= max;

/** Checks a configuration, throwing a RangeError that names the first bad field. */
function validate(cfg: TunnelTemplateConfig): void {
  if (!TUNNEL_KINDS.includes(cfg.kind)) throw new RangeError(`tunnel kind ${String(cfg.kind)} is not one of ${TUNNEL_KINDS.join(', ')}`);
  if (cfg.kind === 'gre') {
    if (cfg.dstPort !== undefined) throw new RangeError('gre has no UDP header: no destination port');
    if (cfg.udpChecksum === true) throw new RangeError('gre has no UDP header: no UDP checksum');
  } else if (cfg.greKey !== undefined) throw new RangeError(`${cfg.kind} has no GRE key: greKey is for gre only`);
  if (!isUint(cfg.vni, 0xffffff)) throw new RangeError(`VNI ${cfg.vni} is not a 24-bit number`);
  const min = cfg.srcPortMin ?? 49152;
  const max = cfg.srcPortMax ?? 65535;
  if (!(isUint(min, 65535) && isUint(max, 65535) && min >= 1 && min <= max))
    throw new RangeError(`${cfg.kind} source port range ${min}-${max} is not within 1-65535`);
  if (cfg.dstPort !== undefined && !(isUint(cfg.dstPort, 65535) && cfg.dstPort >= 1))
    throw new RangeError(`${cfg.kind} destination port ${cfg.dstPort} is not within 1-65535`);
  if (cfg.ttl !== undefined && !(isUint(cfg.ttl, 255) && cfg.ttl >= 1)) throw new RangeError(`TTL ${cfg.ttl} is not within 1-255`);
  const opts = cfg.options ?? [];
  if (cfg.kind !== 'geneve' && opts.length > 0) throw new RangeError(`${cfg.kind} carries no options: options are for geneve only`);
  let total = 0;
  for (let i = 0; i < opts.length; i++) {
    const o = opts[i]!;
    if (!isUint(o.class, 0xffff)) throw new RangeError(`geneve option ${i}: class ${o.class} is not a 16-bit number`);
    if (!isUint(o.type, 0xff)) throw new RangeError(`geneve option ${i}: type ${o.type} is not an 8-bit number`);
    const n = o.data.length;
    if (n % 4 !== 0 || n > GENEVE_MAX_OPTION_DATA_LEN)
      throw new RangeError(`geneve option ${i}: data of ${n} bytes must be a multiple of 4, at most ${GENEVE_MAX_OPTION_DATA_LEN}`);
    total += GENEVE_OPTION_HEADER_LEN + n;
  }
  if (total > GENEVE_MAX_OPTIONS_LEN) throw new RangeError(`geneve options take ${total} bytes: at most ${GENEVE_MAX_OPTIONS_LEN}`);
}

/**
 * Templates' bytes come from shared slabs, 4-byte aligned: the bench's 1,000-node simulated cluster builds
 * one per VTEP in use (about 95,000, counted by hand), and two typed arrays of their own each would be
 * twice as many backing stores for the collector.
 */
const SLAB_BYTES = 64 * 1024;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabAt = 0;

/** `n` zeroed bytes (a multiple of 4 is taken) at a 4-byte boundary of a slab. */
function carve(n: number): Uint8Array {
  const take = (n + 3) & ~3;
  if (take > SLAB_BYTES) return new Uint8Array(n);
  if (slabAt + take > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabAt = 0;
  }
  const out = new Uint8Array(slab, slabAt, n);
  slabAt += take;
  return out;
}

/**
 * The outer Ethernet, IP, UDP and tunnel headers of one tunnel. Build it when the tunnel is configured;
 * `encap` then costs a copy of `header` and a few stores per packet, and allocates nothing.
 */
export class TunnelTemplate {
  readonly kind: TunnelKind;
  /**
   * The outer headers with every per-packet field zero (IP length, IPv4 id and checksum, UDP source
   * port, length and checksum), except the VNI, which holds the configured default.
   */
  readonly header: Uint8Array;
  /** Length of all the outer headers: what `encap` prepends. */
  readonly headerLen: number;
  /** Length of the tunnel header itself (8 for VXLAN, 8 + options for Geneve, 8 for GRE with a key, 4 without). */
  readonly tunnelHeaderLen: number;
  /** The configured default VNI (the one in `header`). */
  readonly vni: number;
  private readonly v6: boolean;
  /** GRE: no UDP header; the key, when sent, is the word after the first. */
  private readonly gre: boolean;
  private readonly greKey: boolean;
  private readonly l3: number;
  private readonly l4: number;
  private readonly portMin: number;
  private readonly portSpan: number;
  private readonly csumV4: boolean;
  /** Partial one's-complement sum of the IPv4 header with length, id and checksum zero. */
  private readonly ipSum: number;
  /** Partial pseudo-header sum without the length (IPv6, or IPv4 with UDP checksums). */
  private readonly pseudo: number;
  private ident = 0;
  /**
   * Per-packet stores, from the layout every template shares: the outer headers are 2 bytes longer than a
   * multiple of 4 (14 + 20 or 40 + 8 + 8 + options), so after a 16-bit store of the first two bytes every
   * header field of interest starts on a 4-byte boundary. `mid` holds the header from offset 2 as 32-bit
   * words read little-endian (a little-endian store writes the bytes back in order without a byte swap);
   * the words with per-packet fields are built as big-endian values from the constants below instead.
   */
  private readonly head16: number;
  private readonly mid: Int32Array;
  /** Index in `mid` of the first Geneve option word (`mid.length` when none). */
  private readonly optWord: number;
  /** IPv4: version/IHL and TOS; flags and fragment offset; TTL and protocol (each 16 bits). */
  private readonly ipVerTos: number;
  private readonly ipFlagsFrag: number;
  private readonly ipTtlProto: number;
  /** IPv6: next header and hop limit. */
  private readonly ip6NextHop: number;
  /** The UDP destination port; the first word of the tunnel header (VXLAN flags, Geneve ver/length/flags/protocol, GRE flags/protocol). */
  private readonly dstPort: number;
  private readonly tunWord0: number;

  /** Throws a RangeError for a configuration that cannot be encoded (see `TunnelTemplateConfig`). */
  constructor(cfg: TunnelTemplateConfig) {
    validate(cfg);
    const u = cfg.underlay;
    this.kind = cfg.kind;
    this.vni = cfg.vni;
    this.v6 = u.family === 6;
    this.portMin = cfg.srcPortMin ?? 49152;
    this.portSpan = (cfg.srcPortMax ?? 65535) - this.portMin + 1;
    this.csumV4 = cfg.udpChecksum ?? false;
    const ttl = cfg.ttl ?? 64;
    const geneve = cfg.kind === 'geneve';
    this.gre = cfg.kind === 'gre';
    this.greKey = this.gre && (cfg.greKey ?? true);
    const options = [...(cfg.options ?? [])];
    const eth: Layer = { kind: 'eth', repr: { dst: cfg.dstMac, src: cfg.srcMac, vlans: [], etherType: this.v6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4 } };
    const ip: Layer =
      u.family === 4
        ? {
            kind: 'ipv4',
            repr: {
              src: u.src,
              dst: u.dst,
              protocol: this.gre ? IPPROTO_GRE : IPPROTO_UDP,
              ttl,
              dscp: 0,
              ecn: 0,
              ident: 0,
              dontFrag: cfg.dontFrag ?? false,
              moreFrags: false,
              fragOffset: 0,
              options: new Uint8Array(0),
              payloadLen: 0,
            },
          }
        : {
            kind: 'ipv6',
            repr: { src: u.src, dst: u.dst, nextHeader: this.gre ? IPPROTO_GRE : IPPROTO_UDP, hopLimit: ttl, trafficClass: 0, flowLabel: 0, payloadLen: 0 },
          };
    const udp: Layer = { kind: 'udp', repr: { srcPort: 0, dstPort: cfg.dstPort ?? (geneve ? GENEVE_UDP_PORT : VXLAN_UDP_PORT) }, zeroChecksum: true };
    const tunnel: Layer = geneve
      ? { kind: 'geneve', repr: { vni: cfg.vni, protocolType: ETHERTYPE_TEB, oam: false, critical: geneveCriticalFlag(options), options } }
      : this.gre
        ? { kind: 'gre', repr: { protocolType: GRE_PROTO_TEB, checksum: false, key: this.greKey ? cfg.vni : null, sequence: null } }
        : { kind: 'vxlan', repr: { vni: cfg.vni } };
    // compose copies the option data: later changes to the caller's arrays do not reach the template.
    const composed = compose(this.gre ? [eth, ip, tunnel] : [eth, ip, udp, tunnel]);
    this.header = carve(composed.length);
    this.header.set(composed);
    this.headerLen = this.header.length;
    this.l3 = ETH_HEADER_LEN;
    this.l4 = ETH_HEADER_LEN + (this.v6 ? IPV6_HEADER_LEN : IPV4_HEADER_LEN);
    this.tunnelHeaderLen = this.headerLen - this.l4 - (this.gre ? 0 : UDP_HEADER_LEN);
    const h = this.header;
    // Zero what is patched per packet, then take the partial sums.
    if (!this.v6) {
      wr16(h, this.l3 + 2, 0);
      wr16(h, this.l3 + 10, 0);
    } else wr16(h, this.l3 + 4, 0);
    if (!this.gre) {
      wr16(h, this.l4 + 4, 0);
      wr16(h, this.l4 + 6, 0);
    }
    this.ipSum = this.v6 ? 0 : onesSum(h, this.l3, IPV4_HEADER_LEN);
    this.dstPort = this.gre ? 0 : (h[this.l4 + 2]! << 8) | h[this.l4 + 3]!;
    const hv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    if (this.headerLen % 4 !== 2) throw new Error(`tunnel template: ${this.headerLen}-byte header breaks the word layout`);
    this.head16 = hv.getUint16(0);
    const mid = carve(this.headerLen - 2);
    this.mid = new Int32Array(mid.buffer, mid.byteOffset, (this.headerLen - 2) >>> 2);
    for (let i = 0; i < this.mid.length; i++) this.mid[i] = hv.getInt32(2 + 4 * i, true);
    this.optWord = (this.l4 + UDP_HEADER_LEN + 8 - 2) >>> 2;
    this.ipVerTos = hv.getUint16(this.l3);
    this.ipFlagsFrag = this.v6 ? 0 : hv.getUint16(this.l3 + 6);
    this.ipTtlProto = this.v6 ? 0 : hv.getUint16(this.l3 + 8);
    this.ip6NextHop = this.v6 ? hv.getUint16(this.l3 + 6) : 0;
    this.tunWord0 = hv.getInt32(this.gre ? this.l4 : this.l4 + UDP_HEADER_LEN);
    this.pseudo = this.v6 ? pseudoSumV6At(h, this.l3 + 8, this.l3 + 24, IPPROTO_UDP, 0) : onesSum(h, this.l3 + 12, 8, IPPROTO_UDP);
  }

  /**
   * The UDP source port for a flow hash: multiply-shift into the range, as Linux does, from the hash's
   * high 16 bits (a range holds at most 65,536 ports, and the product stays in 32-bit integer arithmetic),
   * so the hash must be well mixed there (`innerFlowHash` is).
   */
  srcPort(flowHash: number): number {
    return this.portMin + (Math.imul(flowHash >>> 16, this.portSpan) >>> 16);
  }

  /**
   * Prepends the outer headers to the frame in `p` (moving `start` into the headroom), writes the low 24
   * bits of `vni` into the VXLAN or Geneve header (GRE: into the key, when sent), and sets `p.l2/l3/l4`
   * to the outer layers (`l4` is the GRE header for GRE) and `p.innerL2` to the old start. Returns false, changing nothing, when the headroom is short.
   */
  encap(p: PacketBuf, flowHash: number, vni: number): boolean {
    const innerLen = p.end - p.start;
    const at = p.push(this.headerLen);
    if (at < 0) return false;
    const dv = p.view;
    const m = this.mid;
    // Whole words, each written once (a copy of the template patched afterwards wrote some twice): the
    // first two bytes, the rest of the Ethernet header, IP, UDP, the tunnel header, Geneve options. GRE's
    // outer headers (14 + 20 or 40 + 4 or 8) keep the same layout, 2 bytes past a multiple of 4.
    dv.setUint16(at, this.head16);
    dv.setInt32(at + 2, m[0]!, true);
    dv.setInt32(at + 6, m[1]!, true);
    dv.setInt32(at + 10, m[2]!, true);
    const l3 = at + ETH_HEADER_LEN;
    // The outer IP payload: the UDP datagram, or (GRE) the GRE header and the frame.
    const udpLen = innerLen + this.tunnelHeaderLen + (this.gre ? 0 : UDP_HEADER_LEN);
    let l4: number;
    if (this.v6) {
      dv.setInt32(l3, m[3]!, true);
      dv.setInt32(l3 + 4, (udpLen << 16) | this.ip6NextHop);
      for (let i = 5, o = l3 + 8; i < 13; i++, o += 4) dv.setInt32(o, m[i]!, true);
      l4 = l3 + IPV6_HEADER_LEN;
    } else {
      const total = udpLen + IPV4_HEADER_LEN;
      const id = (this.ident = (this.ident + 1) & 0xffff);
      dv.setInt32(l3, (this.ipVerTos << 16) | total);
      dv.setInt32(l3 + 4, (id << 16) | this.ipFlagsFrag);
      dv.setInt32(l3 + 8, (this.ipTtlProto << 16) | (~fold(this.ipSum + total + id) & 0xffff));
      dv.setInt32(l3 + 12, m[6]!, true);
      dv.setInt32(l3 + 16, m[7]!, true);
      l4 = l3 + IPV4_HEADER_LEN;
    }
    if (this.gre) {
      // Flags and protocol type; the key (RFC 2890 §2.1) is the whole next word, the VNI in its low 24 bits.
      dv.setInt32(l4, this.tunWord0);
      if (this.greKey) dv.setInt32(l4 + 4, vni & 0xffffff);
    } else {
      // Source port from the flow hash, destination port; length and a zero checksum; the tunnel header.
      dv.setInt32(l4, (this.srcPort(flowHash) << 16) | this.dstPort);
      dv.setInt32(l4 + 4, udpLen << 16);
      dv.setInt32(l4 + 8, this.tunWord0);
      // The VNI and the reserved byte after it (zero in both VXLAN and Geneve).
      dv.setInt32(l4 + 12, (vni & 0xffffff) << 8);
      for (let i = this.optWord, o = l4 + 16; i < m.length; i++, o += 4) dv.setInt32(o, m[i]!, true);
      if (this.v6 || this.csumV4) this.fillUdpChecksum(p.data, l4, udpLen);
    }
    p.innerL2 = at + this.headerLen;
    p.l2 = at;
    p.l3 = l3;
    p.l4 = l4;
    return true;
  }

  /** Over the whole datagram (header, tunnel header with its VNI, inner frame); 0 is sent as 0xffff. */
  private fillUdpChecksum(b: Uint8Array, l4: number, udpLen: number): void {
    const c = ~fold(onesSum(b, l4, udpLen, this.pseudo + udpLen)) & 0xffff;
    wr16(b, l4 + 6, c === 0 ? 0xffff : c);
  }
}
