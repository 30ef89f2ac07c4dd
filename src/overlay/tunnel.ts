/**
 * A tunnel endpoint (VTEP) of one kind, VXLAN (RFC 7348), Geneve (RFC 8926) or Ethernet-over-GRE
 * (RFC 2784, protocol type 0x6558, the RFC 2890 key as the VNI), over an IPv4 or IPv6 underlay: the
 * remote-VTEP table with one outer-header template per remote, decapsulation with every outer check a
 * receiver owes, and encapsulation from the template.
 *
 * Two modes, as shared/DESIGN.md describes:
 * - `routed` (Antrea/Flannel style): one VNI; decapsulated frames go to the node's gateway, which routes
 *   them; the bridge neither learns nor floods through the tunnel.
 * - `l2` (Linux vxlan style, flood-and-learn): each VNI maps to a bridge segment; inner source MACs are
 *   learned against the remote VTEP; broadcast, unknown unicast and multicast are replicated to every
 *   VTEP that is a member of the VNI (head-end replication).
 */
import { Ipv6Table, U32Map } from '../packet/addrtable.js';
import type { PacketBuf } from '../packet/buf.js';
import { type Addr, parseAddr } from '../wire/addr.js';
import { ipv4FromString, ipv6FromString, wr16, wr32, wrMac } from '../wire/bytes.js';
import { finish, ipv4HeaderValid, onesSum, pseudoSumV4At, pseudoSumV6At } from '../wire/checksum.js';
import { DropReason } from '../wire/drop.js';
import { ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, ETH_HEADER_LEN } from '../wire/ethernet.js';
import { GENEVE_HEADER_LEN, GENEVE_OPTION_HEADER_LEN, geneveOptionKey, GENEVE_UDP_PORT, OptionKeys, type GeneveOption } from '../wire/geneve.js';
import { GRE_HEADER_LEN, GRE_PROTO_TEB, greCheck, greHeaderLen } from '../wire/gre.js';
import { Ipv4View, IPPROTO_GRE, IPPROTO_UDP } from '../wire/ipv4.js';
import { Ipv6View, Ipv6Walk, walkIpv6, IPV6_HEADER_LEN } from '../wire/ipv6.js';
import { UDP_HEADER_LEN } from '../wire/udp.js';
import { VxlanView, VXLAN_HEADER_LEN, VXLAN_UDP_PORT } from '../wire/vxlan.js';
import { packetFlowHash } from './flowhash.js';
import { EspSadb, type EspConfig, type EspPeerConfig } from '../esp/sadb.js';
import type { OutboundSa } from '../esp/sa.js';
import { ESP_DUMMY, ESP_NOT_ESP, EspOpenBatch, espProtect, EspSealBatch, espUnprotect, EspRxInfo, type EspProtectOptions } from '../esp/esp.js';
import { HELLO_LEN, looksLikeHello } from '../esp/hello.js';
import { pathMtu, type OverheadSpec } from '../mtu/overhead.js';
import { TUNNEL_KINDS, TunnelTemplate, type TunnelKind, type Underlay } from './template.js';

/**
 * GRE carries no UDP, but an ESP tunnel's epoch announcements (esp/hello.ts) travel in UDP to the tunnel's
 * port: a GRE tunnel's is the GRE-in-UDP port (RFC 8086). A GRE-in-UDP receiver drops a hello as malformed
 * (its first bits, 'S' = 0x53, set GRE's reserved bit 1: RFC 2784 §2.3 says discard).
 */
export const GRE_HELLO_PORT = 4754;

export type TunnelMode = 'routed' | 'l2';

export interface TunnelConfig {
  kind: TunnelKind;
  mode: TunnelMode;
  /** This node's underlay address (IPv4 or IPv6; the remotes must be of the same family). */
  localIp: string;
  /** This node's underlay MAC (outer source MAC). */
  localMac: number;
  /** Routed mode: the VNI every packet carries. Default 1 (as Flannel). */
  vni?: number;
  /**
   * Default 4789 (VXLAN) or 6081 (Geneve). GRE has no UDP: its port is where ESP's announcements go
   * (default `GRE_HELLO_PORT`).
   */
  dstPort?: number;
  /** Outer UDP checksum over IPv4 (always over IPv6). Default false, like Linux. Not for GRE. */
  udpChecksum?: boolean;
  /**
   * GRE: send and expect the key field (RFC 2890) with the VNI in it — Antrea's and OVS's GRE ports, an
   * 8-byte header, 42 bytes of overhead over IPv4. False: a 4-byte header without key, 38 bytes; every
   * packet then belongs to `vni`. A packet with a key where none is configured, or the reverse, is
   * dropped (`GreKeyMismatch`). Default true; only for GRE.
   */
  greKey?: boolean;
  /** Accept zero-checksum UDP over IPv6 (RFC 6935; Linux's udp6zerocsumrx). Default false. */
  acceptZeroChecksumV6?: boolean;
  /** Outer UDP source port range for the inner flow hash. Default 49152–65535. */
  srcPortMin?: number;
  srcPortMax?: number;
  /** Outer TTL / hop limit. Default 64. */
  ttl?: number;
  /** Set DF on the outer IPv4 header. Default false. */
  dontFrag?: boolean;
  /** Geneve: options sent on every packet. */
  options?: readonly GeneveOption[];
  /** Geneve: the (class, type) pairs this node understands; a critical option not listed is dropped (RFC 8926 §3.5). */
  knownOptions?: ReadonlyArray<{ class: number; type: number }>;
  /**
   * A packet too big for the tunnel's path (IPv4 with DF, or IPv6) is dropped and an ICMP
   * fragmentation-needed / ICMPv6 Packet Too Big goes back to its sender. Default true; false drops
   * silently, the PMTU black hole labs show.
   */
  icmpTooBig?: boolean;
  /** Those messages are rate-limited per tunnel port: tokens per second and bucket size. Default 100/s, burst 50. */
  icmpRate?: { perSecond: number; burst: number };
  /**
   * Inner IPv4 without DF that is too big: fragment the outer packet after encapsulation (default, as
   * Linux vxlan does; with `dontFrag` set on the outer header the inner packet is fragmented instead),
   * fragment the inner packet before encapsulation, or drop it.
   */
  fragmentPolicy?: FragmentPolicy;
  /** Clamp the TCP MSS of SYN and SYN-ACK segments entering or leaving the tunnel to the path MTU. Default true. */
  mssClamp?: boolean;
  /**
   * ESP between the nodes (RFC 4303, transport mode over the outer packet): every outer packet is
   * protected, and cleartext tunnel packets are refused (`EspRequired`). See esp/sadb.ts.
   */
  esp?: EspConfig;
}

export type FragmentPolicy = 'outer' | 'inner' | 'drop';

/** What the tunnel did about MTUs, since it was made. */
export interface TunnelMtuStats {
  /** ICMP frag-needed / Packet Too Big messages sent back, suppressed by configuration, held back by the rate limit. */
  icmpSent: number;
  icmpSuppressed: number;
  icmpRateLimited: number;
  /** Packets split (outer or inner) and the fragments that made. */
  fragmented: number;
  fragments: number;
  /** Datagrams reassembled from outer fragments. */
  reassembled: number;
  /** SYN / SYN-ACK segments whose MSS was lowered. */
  mssClamped: number;
}

export interface VtepConfig {
  /** The remote's underlay address. */
  ip: string;
  /** The MAC of the next hop towards it on the underlay (the remote itself on a shared L2 underlay). */
  mac: number;
  /** L2 mode: the VNIs whose broadcast and unknown traffic this VTEP receives. */
  vnis?: readonly number[];
  /** ESP towards and from this VTEP: its name and epoch for derived keys, or explicit keys. */
  esp?: EspPeerConfig;
}

export interface Vtep {
  readonly index: number;
  readonly ip: string;
  readonly mac: number;
  readonly vnis: ReadonlySet<number>;
  readonly template: TunnelTemplate;
  /** Frames sent to / accepted from this VTEP. */
  txPackets: number;
  rxPackets: number;
  /** Bytes of the inner frames sent to this VTEP (before encapsulation). */
  txInnerBytes: number;
  /**
   * Removed (`Tunnel.removeVtep`): nothing is sent to it and nothing from its address is accepted. Its
   * slot stays, so indexes held elsewhere (MAC entries, routes, packets in flight) never name another VTEP.
   */
  readonly removed: boolean;
}

const NO_SEGMENT = -1;
const EMPTY_LIST = new Int32Array(0);
/** The VNIs of every VTEP added without any (all of a routed tunnel's): one set, never changed. */
const NO_VNIS: ReadonlySet<number> = new Set<number>();
/** The VNIs of a removed VTEP (none: it receives no floods); being this very set is what marks it removed. */
const REMOVED_VNIS: ReadonlySet<number> = new Set<number>();

/**
 * A VTEP of the table. Its template (the outer headers and their views) is built on first use: a routed
 * node of a 1,000-node cluster has 999 VTEPs and sends to few of them, and templates for all would be
 * 999,000 of them across the cluster. What could make building it fail is checked when the VTEP is added.
 */
class VtepEntry implements Vtep {
  txPackets = 0;
  rxPackets = 0;
  txInnerBytes = 0;
  private tpl: TunnelTemplate | null = null;
  constructor(
    readonly index: number,
    readonly ip: string,
    readonly mac: number,
    public vnis: ReadonlySet<number>,
    private readonly make: (ip: string, mac: number) => TunnelTemplate,
  ) {}
  /** A getter over `vnis` rather than a field: a field would cost every VTEP of a large simulated cluster 8 bytes. */
  get removed(): boolean {
    return this.vnis === REMOVED_VNIS;
  }
  get template(): TunnelTemplate {
    return this.tpl ?? (this.tpl = this.make(this.ip, this.mac));
  }
}

function checkVni(v: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffff) throw new RangeError(`${what}: VNI ${v} is not a 24-bit number`);
  return v;
}

export class Tunnel {
  readonly kind: TunnelKind;
  readonly mode: TunnelMode;
  readonly family: 4 | 6;
  readonly dstPort: number;
  /** Routed mode's VNI. */
  readonly vni: number;
  readonly vteps: Vtep[] = [];
  readonly icmpTooBig: boolean;
  readonly fragmentPolicy: FragmentPolicy;
  readonly mssClamp: boolean;
  readonly icmpRate: { perSecond: number; burst: number };
  readonly mtuStats: TunnelMtuStats = { icmpSent: 0, icmpSuppressed: 0, icmpRateLimited: 0, fragmented: 0, fragments: 0, reassembled: 0, mssClamped: 0 };
  /** Identification for IPv6 fragments of outer packets (IPv4 uses the template's IP id). */
  fragIdent = 0;
  /** The security associations when the tunnel runs ESP, else null. */
  /**
   * The time (ns) of the batch the bridge is processing, for `decap` called without one: the bridge sets
   * it per batch rather than passing a double per packet (boxed where V8 does not inline the call).
   */
  now = 0;
  readonly sadb: EspSadb | null;
  /** What the last `decap` of an ESP packet found (SPI, sequence number): for trace records. */
  readonly espRx = new EspRxInfo();
  private readonly espOpts: EspProtectOptions;
  /**
   * Batched AEAD (`EspConfig.batchAead`), else null: packets encapsulated are sealed when the tunnel port's
   * queue goes out (`sealPending`), and a received batch is checked and opened in one call before it is
   * decapsulated packet by packet (`espOpenBatch`; then `espIn` finishes each in the same order).
   */
  private readonly espSeal: EspSealBatch | null;
  private readonly espOpen: EspOpenBatch | null;
  /** The received batch `espOpenBatch` works through: its packets, count, and the next one `espIn` expects. */
  private espPk: PacketBuf[] | null = null;
  private espN = 0;
  private espNext = 0;
  /** The chunk of it checked and opened so far: [espFrom, espTo); per packet its job (≥ 0) or what to do. */
  private espFrom = 0;
  private espTo = 0;
  private espJob: Int32Array = new Int32Array(0);
  private espVtep: Int32Array = new Int32Array(0);
  private espInfos: EspRxInfo[] = [];
  private espGen = 0;
  /** What the tunnel adds, for `pathMtu`; and the path MTU of the last underlay MTU asked. */
  private readonly spec: OverheadSpec;
  private mtuFor = -1;
  private mtuIs = 0;
  private readonly cfg: TunnelConfig;
  private readonly localV4: number = 0;
  private readonly localV6: Uint8Array | null = null;
  private readonly known: OptionKeys;
  private readonly byV4 = new U32Map();
  private readonly byV6 = new Ipv6Table<number>();
  /** L2 mode: VNI → segment, segment → VNI, and the flood list of each VNI. */
  private readonly vniSegment = new U32Map();
  private readonly segmentVni = new Int32Array(4096).fill(NO_SEGMENT);
  /** l2 only (a routed tunnel never floods): 32 KiB a tunnel that 1,000 simulated routed nodes need not hold. */
  private readonly floodLists: Int32Array[];
  private readonly v4 = new Ipv4View();
  private readonly v6 = new Ipv6View();
  private readonly walk = new Ipv6Walk();
  private readonly vx = new VxlanView();
  /** The outer IP protocol (UDP, or GRE) and, for GRE, whether the key is sent and expected. */
  private readonly proto: number;
  private readonly greKey: boolean;

  constructor(cfg: TunnelConfig) {
    this.cfg = cfg;
    this.kind = cfg.kind;
    this.mode = cfg.mode;
    if (!TUNNEL_KINDS.includes(cfg.kind)) throw new RangeError(`tunnel kind "${String(cfg.kind)}" is not one of ${TUNNEL_KINDS.join(', ')}`);
    if (cfg.kind === 'gre') {
      if (cfg.udpChecksum === true || cfg.acceptZeroChecksumV6 === true)
        throw new RangeError('tunnel: gre has no UDP header (udpChecksum, acceptZeroChecksumV6)');
    } else if (cfg.greKey !== undefined) throw new RangeError(`tunnel: greKey is for gre only, not ${cfg.kind}`);
    this.proto = cfg.kind === 'gre' ? IPPROTO_GRE : IPPROTO_UDP;
    this.greKey = cfg.kind === 'gre' && (cfg.greKey ?? true);
    if (cfg.mode !== 'routed' && cfg.mode !== 'l2') throw new RangeError(`tunnel mode "${String(cfg.mode)}" is not routed or l2`);
    this.floodLists = cfg.mode === 'l2' ? new Array<Int32Array>(4096).fill(EMPTY_LIST) : [];
    const local = parseAddr(cfg.localIp, 'tunnel localIp');
    this.family = local.family;
    if (local.family === 4) this.localV4 = local.v4;
    else this.localV6 = local.v6;
    this.vni = checkVni(cfg.vni ?? 1, 'tunnel vni');
    this.dstPort = cfg.dstPort ?? (cfg.kind === 'vxlan' ? VXLAN_UDP_PORT : cfg.kind === 'geneve' ? GENEVE_UDP_PORT : GRE_HELLO_PORT);
    this.known = new OptionKeys((cfg.knownOptions ?? []).map((k) => geneveOptionKey(k.class, k.type)));
    // A routed tunnel sends every segment's traffic with its one VNI.
    if (this.mode === 'routed') this.segmentVni.fill(this.vni);
    this.icmpTooBig = cfg.icmpTooBig ?? true;
    this.mssClamp = cfg.mssClamp ?? true;
    const fp = cfg.fragmentPolicy ?? 'outer';
    if (fp !== 'outer' && fp !== 'inner' && fp !== 'drop') throw new RangeError(`tunnel fragmentPolicy "${String(fp)}" is not outer, inner or drop`);
    this.fragmentPolicy = fp;
    const rate = cfg.icmpRate ?? { perSecond: 100, burst: 50 };
    if (!(rate.perSecond > 0 && Number.isFinite(rate.perSecond)) || !(Number.isInteger(rate.burst) && rate.burst >= 1)) {
      throw new RangeError(`tunnel icmpRate: perSecond must be > 0 and burst an integer ≥ 1, got ${rate.perSecond}/s burst ${rate.burst}`);
    }
    this.icmpRate = { perSecond: rate.perSecond, burst: rate.burst };
    // Build one template to validate the options and ranges early.
    this.makeTemplate({ ip: cfg.localIp, mac: 0 }, this.vni);
    this.sadb =
      cfg.esp === undefined ? null : new EspSadb(cfg.esp, cfg.esp.node ?? cfg.localIp, { kind: this.kind, port: this.dstPort, localAddr: cfg.localIp });
    this.espOpts = cfg.esp?.udpEncap === true ? { udpEncap: { srcPort: 4500, dstPort: 4500 } } : {};
    const batch = cfg.esp?.batchAead;
    this.espSeal = batch === undefined ? null : new EspSealBatch(batch.native);
    this.espOpen = batch === undefined ? null : new EspOpenBatch(batch.native);
    if (this.espOpen !== null) {
      const c = this.espOpen.capacity;
      this.espJob = new Int32Array(c);
      this.espVtep = new Int32Array(c);
      this.espInfos = Array.from({ length: c }, () => new EspRxInfo());
    }
    const opts = this.options.reduce((n, o) => n + GENEVE_OPTION_HEADER_LEN + o.data.length, 0);
    this.spec = {
      tunnel: this.kind,
      underlay: this.family,
      ...(opts > 0 ? { geneveOptionBytes: opts } : {}),
      ...(this.kind === 'gre' ? { greKey: this.greKey } : {}),
      ...(this.sadb !== null ? { esp: { cipher: this.sadb.cipher, udpEncap: this.sadb.udpEncap } } : {}),
    };
  }

  /** Builds a VTEP's template when it is first used (see `VtepEntry`). */
  private readonly makeVtepTemplate = (ip: string, mac: number): TunnelTemplate => this.makeTemplate({ ip, mac }, this.vni);

  private makeTemplate(v: VtepConfig, vni: number): TunnelTemplate {
    const remote = parseAddr(v.ip, 'VTEP ip');
    if (remote.family !== this.family) throw new RangeError(`VTEP ${v.ip}: underlay family IPv${remote.family} differs from the tunnel's IPv${this.family}`);
    const underlay: Underlay = remote.family === 4 ? { family: 4, src: this.localV4, dst: remote.v4 } : { family: 6, src: this.localV6!, dst: remote.v6 };
    const c = this.cfg;
    return new TunnelTemplate({
      kind: c.kind,
      srcMac: c.localMac,
      dstMac: v.mac,
      underlay,
      vni,
      ...(c.ttl !== undefined ? { ttl: c.ttl } : {}),
      ...(c.dontFrag !== undefined ? { dontFrag: c.dontFrag } : {}),
      ...(c.srcPortMin !== undefined ? { srcPortMin: c.srcPortMin } : {}),
      ...(c.srcPortMax !== undefined ? { srcPortMax: c.srcPortMax } : {}),
      ...(c.kind === 'gre' ? { greKey: this.greKey } : { dstPort: this.dstPort }),
      ...(c.udpChecksum !== undefined && c.kind !== 'gre' ? { udpChecksum: c.udpChecksum } : {}),
      ...(c.options !== undefined ? { options: c.options } : {}),
    });
  }

  /** Adds a remote VTEP (at `now`, for its SAs' lifetimes); returns its index. Adding the same address twice throws. */
  addVtep(v: VtepConfig, now = 0): number {
    const remote = parseAddr(v.ip, 'VTEP ip');
    if (this.vtepAt(remote) >= 0) throw new RangeError(`VTEP ${v.ip} is already in the table`);
    // No set of its own for a VTEP without VNIs (every one of a routed tunnel's: a million in a 1,000-node cluster).
    let vnis: Set<number> | null = null;
    for (const n of v.vnis ?? []) (vnis ??= new Set<number>()).add(checkVni(n, `VTEP ${v.ip}`));
    if (this.mode === 'routed' && vnis !== null) throw new RangeError(`VTEP ${v.ip}: vnis apply to l2 tunnels only`);
    const index = this.vteps.length;
    // The one check of `makeTemplate` that depends on the VTEP (the rest was made on the tunnel's own template).
    if (remote.family !== this.family) throw new RangeError(`VTEP ${v.ip}: underlay family IPv${remote.family} differs from the tunnel's IPv${this.family}`);
    this.sadb?.addPeer(index, v.ip, v.esp, now);
    this.vteps.push(new VtepEntry(index, v.ip, v.mac, vnis ?? NO_VNIS, this.makeVtepTemplate));
    if (remote.family === 4) this.byV4.set(remote.v4, index);
    else this.byV6.set(remote.v6, index);
    this.rebuildFloodLists();
    return index;
  }

  /**
   * Removes the VTEP with this address (a peer left); returns its index. Packets still heading for it are
   * dropped as `UnknownVtep`, and so are packets from its address (with ESP too, before any decryption;
   * its inbound SAs go with it). Adding the address again makes a new VTEP at a new index; with ESP its SAs
   * carry on where they were (see `EspSadb.removePeer`).
   */
  removeVtep(ip: string): number {
    const a = parseAddr(ip, 'VTEP ip');
    const index = this.vtepAt(a);
    if (index < 0) throw new RangeError(`VTEP ${ip} is not in the table`);
    const v = this.vteps[index] as VtepEntry;
    v.vnis = REMOVED_VNIS;
    if (a.family === 4) this.byV4.delete(a.v4);
    else this.byV6.delete(a.v6);
    this.sadb?.removePeer(index);
    this.rebuildFloodLists();
    return index;
  }

  /** Index of the VTEP with this address, or -1. */
  findVtep(ip: string): number {
    return this.vtepAt(parseAddr(ip, 'VTEP ip'));
  }

  /** `findVtep` for an address already parsed (addVtep and removeVtep parse theirs once). */
  private vtepAt(a: Addr): number {
    if (a.family !== this.family) return -1;
    if (a.family === 4) return this.byV4.get(a.v4);
    return this.vtepAtV6(a.v6, 0);
  }

  private vtepAtV6(b: Uint8Array, o: number): number {
    return this.byV6.get(b, o) ?? -1;
  }

  /** L2 mode: binds a VNI to a bridge segment (VLAN id 0–4094). */
  mapVni(vni: number, segment: number): void {
    if (this.mode !== 'l2') throw new RangeError('mapVni: only l2 tunnels map VNIs to segments');
    checkVni(vni, 'mapVni');
    if (!Number.isInteger(segment) || segment < 0 || segment > 4094) throw new RangeError(`mapVni: segment ${segment} is not 0-4094`);
    if (this.vniSegment.get(vni) >= 0) throw new RangeError(`mapVni: VNI ${vni} is already mapped to segment ${this.vniSegment.get(vni)}`);
    if (this.segmentVni[segment] !== NO_SEGMENT) throw new RangeError(`mapVni: segment ${segment} already carries VNI ${this.segmentVni[segment]}`);
    this.vniSegment.set(vni, segment);
    this.segmentVni[segment] = vni;
    this.rebuildFloodLists();
  }

  /** Per segment, the VTEPs of its VNI (l2 mode; a routed tunnel never floods). */
  private rebuildFloodLists(): void {
    if (this.mode !== 'l2') return;
    for (let seg = 0; seg < this.floodLists.length; seg++) {
      const vni = this.segmentVni[seg]!;
      this.floodLists[seg] = vni < 0 ? EMPTY_LIST : Int32Array.from(this.vteps.filter((v) => v.vnis.has(vni)).map((v) => v.index));
    }
  }

  /** The VNI a frame of `segment` leaves with (l2), the tunnel's VNI (routed), or -1 when the segment has none. */
  vniFor(segment: number): number {
    return segment >= 0 && segment < 4096 ? this.segmentVni[segment]! : -1;
  }

  /** L2 mode: the VTEPs a flooded frame of `segment` is replicated to (empty when none). */
  floodList(segment: number): Int32Array {
    return segment >= 0 && segment < 4096 && this.mode === 'l2' ? this.floodLists[segment]! : EMPTY_LIST;
  }

  /**
   * Validates and strips the outer headers of the frame in `p` (outer Ethernet at `p.start`): Ethernet type,
   * IP header (and the IPv4 header checksum), that the packet is for this VTEP and not a fragment, UDP
   * length, port and checksum (verified when non-zero; zero over IPv6 refused unless configured), the
   * VXLAN/Geneve header, Geneve critical options, the remote VTEP and the VNI; for GRE, the outer IP
   * protocol 47 and the GRE header in place of UDP (`greDecap`). On success the window is the
   * inner frame, `p.tunVni`, `p.tunVtep`, `p.tunOptOff/Len` and `p.segment` (l2) are set, and it returns 0;
   * otherwise a DropReason. With ESP the outer IP header is checked first (checksum, for this VTEP, from a
   * known VTEP: `espIn`), then the packet is authenticated and decrypted in place (esp/esp.ts), so after a
   * later check fails it is no longer as received; without ESP a failed `p` is unchanged. An ESP tunnel's
   * announcements (esp/hello.ts) are consumed here (`EspControl`).
   */
  decap(p: PacketBuf): number {
    if (p.end - p.start < ETH_HEADER_LEN) return DropReason.EthTruncated;
    if (this.sadb !== null) {
      // ESP first: authenticated and decrypted in place, the outer packet is then checked as any other.
      // ESP fragments come back as TunnelFragment, for reassembly first.
      const r = this.espIn(p, this.now);
      if (r !== 0) return r;
    }
    const b = p.data;
    const o = p.start;
    const end = p.end;
    const dv = p.view;
    const type = dv.getUint16(o + 12);
    const ip = o + ETH_HEADER_LEN;
    let udp: number;
    let l3End: number;
    let vtep: number;
    if (type === ETHERTYPE_IPV4 && this.family === 4) {
      const r = this.v4.at(b, ip).check(end - ip);
      if (r !== null) return r;
      const hl = (b[ip]! & 0x0f) << 2;
      if (!ipv4HeaderValid(dv, ip, hl)) return DropReason.Ipv4BadChecksum;
      // Protocol must be UDP (GRE) and the packet addressed to this VTEP; fragments wait for reassembly.
      if (dv.getUint32(ip + 16) !== this.localV4 || b[ip + 9] !== this.proto) return DropReason.TunnelNotForUs;
      if ((dv.getUint16(ip + 6) & 0x3fff) !== 0) return DropReason.TunnelFragment;
      l3End = ip + dv.getUint16(ip + 2);
      udp = ip + hl;
      vtep = this.byV4.get(dv.getInt32(ip + 12));
    } else if (type === ETHERTYPE_IPV6 && this.family === 6) {
      const v = this.v6.at(b, ip);
      const r = v.check(end - ip);
      if (r !== null) return r;
      const local = this.localV6!;
      for (let k = 0; k < 16; k++) if (b[ip + 24 + k] !== local[k]) return DropReason.TunnelNotForUs;
      l3End = ip + IPV6_HEADER_LEN + v.payloadLen;
      const wr = walkIpv6(b, ip, l3End, this.walk);
      if (wr !== null) return wr;
      if (this.walk.fragOff >= 0) return DropReason.TunnelFragment;
      if (this.walk.upperProto !== this.proto) return DropReason.TunnelNotForUs;
      udp = this.walk.upperOff;
      vtep = this.vtepAtV6(b, ip + 8);
    } else {
      return DropReason.TunnelNotForUs;
    }
    if (this.proto === IPPROTO_GRE) return this.greDecap(p, udp, l3End, vtep);
    if (l3End - udp < UDP_HEADER_LEN) return DropReason.UdpTruncated;
    const udpLen = dv.getUint16(udp + 4);
    if (udpLen < UDP_HEADER_LEN || udpLen > l3End - udp) return DropReason.UdpBadLength;
    if (dv.getUint16(udp + 2) !== this.dstPort) return DropReason.TunnelNotForUs;
    const udpEnd = udp + udpLen;
    if (dv.getUint16(udp + 6) === 0) {
      if (this.family === 6 && this.cfg.acceptZeroChecksumV6 !== true) return DropReason.UdpZeroChecksumV6;
    } else {
      const pseudo =
        this.family === 4 ? pseudoSumV4At(b, ip + 12, ip + 16, IPPROTO_UDP, udpLen) : pseudoSumV6At(b, ip + 8, this.walk.pseudoDstOff, IPPROTO_UDP, udpLen);
      if (finish(onesSum(b, udp, udpLen, pseudo)) !== 0) return DropReason.UdpBadChecksum;
    }
    const th = udp + UDP_HEADER_LEN;
    let vni: number;
    let inner: number;
    let optOff = -1;
    let optLen = 0;
    if (this.kind === 'vxlan') {
      const r = this.vx.at(b, th).check(udpEnd - th);
      if (r !== null) return r;
      vni = dv.getUint32(th + 4) >>> 8;
      inner = th + VXLAN_HEADER_LEN;
    } else {
      // GeneveView.check's checks and the scan for unknown critical options in one walk over the options,
      // a word per option (class, type with its critical bit, length), reporting in check's order.
      if (udpEnd - th < GENEVE_HEADER_LEN) return DropReason.GeneveTruncated;
      const w0 = dv.getUint32(th);
      if (w0 >>> 30 !== 0) return DropReason.GeneveBadVersion;
      inner = th + GENEVE_HEADER_LEN + ((w0 >>> 24) & 0x3f) * 4;
      if (inner > udpEnd) return DropReason.GeneveTruncated;
      let unknownCritical = false;
      for (let o = th + GENEVE_HEADER_LEN; o < inner; ) {
        if (o + GENEVE_OPTION_HEADER_LEN > inner) return DropReason.GeneveOptionTruncated;
        const ow = dv.getUint32(o);
        const next = o + GENEVE_OPTION_HEADER_LEN + (ow & 0x1f) * 4;
        if (next > inner) return DropReason.GeneveBadOptionLen;
        // The type's high bit is the critical bit; class and type are the option's key.
        if ((ow & 0x8000) !== 0 && !this.known.has(ow >>> 8)) unknownCritical = true;
        o = next;
      }
      if ((w0 & 0xffff) !== ETHERTYPE_TEB) return DropReason.GeneveNotEthernet;
      if (unknownCritical) return DropReason.GeneveUnknownCriticalOption;
      vni = dv.getUint32(th + 4) >>> 8;
      optOff = th + GENEVE_HEADER_LEN;
      optLen = inner - optOff;
    }
    return this.accept(p, vtep, vni, inner, udpEnd, optOff, optLen);
  }

  /**
   * `decap`'s part after the outer IP header of a GRE tunnel: the GRE header at `gre` runs to `l3End`.
   * RFC 2784 §2.3's discard rules (`GreView.check`), an Ethernet payload, the checksum when present
   * (§2.5), the key as configured (RFC 2890 §2.1: with it, the VNI). A sequence number (RFC 2890 §2.2) is
   * accepted and not used: seine sends none, and reordering is the inner transport's business.
   */
  private greDecap(p: PacketBuf, gre: number, l3End: number, vtep: number): number {
    // GreView.check's checks (greCheck) from one read of the first word, as Geneve's above.
    const dv = p.view;
    const avail = l3End - gre;
    if (avail < GRE_HEADER_LEN) return DropReason.GreTruncated;
    const w0 = dv.getUint32(gre);
    const fv = w0 >>> 16;
    const bad = greCheck(fv, avail);
    if (bad !== null) return bad;
    const csum = (fv & 0x8000) !== 0;
    const key = (fv & 0x2000) !== 0;
    if ((w0 & 0xffff) !== GRE_PROTO_TEB) return DropReason.GreNotEthernet;
    if (csum && finish(onesSum(p.data, gre, avail)) !== 0) return DropReason.GreBadChecksum;
    if (key !== this.greKey) return DropReason.GreKeyMismatch;
    // The key follows the checksum word when there is one; without a key every packet carries the tunnel's VNI.
    const vni = key ? dv.getUint32(gre + (csum ? 8 : 4)) : this.vni;
    return this.accept(p, vtep, vni, gre + greHeaderLen(fv), l3End, -1, 0);
  }

  /** The checks every kind shares after its own header: remote VTEP, VNI, an inner frame; then the window. */
  private accept(p: PacketBuf, vtep: number, vni: number, inner: number, end: number, optOff: number, optLen: number): number {
    if (vtep < 0) return DropReason.UnknownVtep;
    let segment = 0;
    if (this.mode === 'routed') {
      if (vni !== this.vni) return DropReason.UnknownVni;
    } else {
      const s = this.vniSegment.get(vni);
      if (s < 0) return DropReason.UnknownVni;
      segment = s;
    }
    if (end - inner < ETH_HEADER_LEN) return DropReason.EthTruncated;
    this.vteps[vtep]!.rxPackets++;
    p.tunVni = vni;
    p.tunVtep = vtep;
    p.tunOptOff = optOff;
    p.tunOptLen = optLen;
    p.segment = segment;
    p.start = inner;
    p.end = end;
    p.l2 = inner;
    p.l3 = p.l4 = p.innerL2 = p.innerL3 = p.innerL4 = -1;
    return 0;
  }

  /**
   * Prepends the outer headers towards VTEP `vtep` with `vni`; returns 0, a DropReason, or (ESP) `ESP_WAIT`:
   * the peer's SAs are not there yet (its announcement is awaited) — the packet is as it was, to hold.
   */
  encap(p: PacketBuf, vtep: number, vni: number, now = 0): number {
    const v = this.vteps[vtep];
    if (v === undefined || v.removed) return DropReason.UnknownVtep;
    let sa: OutboundSa | null = null;
    if (this.sadb !== null) {
      const r = this.sadb.outbound(vtep, now);
      if (typeof r === 'number') return r;
      sa = r;
    }
    const hash = packetFlowHash(p);
    p.flowHash = hash;
    const innerLen = p.end - p.start;
    if (!v.template.encap(p, hash, vni)) return DropReason.HeadroomShort;
    if (sa !== null) {
      const seal = this.espSeal;
      const r =
        seal === null ? espProtect(p, p.start + ETH_HEADER_LEN, sa, now, this.espOpts) : seal.protect(p, p.start + ETH_HEADER_LEN, sa, now, this.espOpts);
      if (r !== 0) return r;
    }
    v.txPackets++;
    v.txInnerBytes += innerLen;
    return 0;
  }

  /**
   * Batched AEAD: seals the packets `encap` queued (their payload is plaintext until then). The bridge
   * calls it before the tunnel port's queue goes out, and before it fragments an encapsulated packet.
   */
  sealPending(): void {
    this.espSeal?.seal();
  }

  /**
   * Batched AEAD: the received batch `pk[0, n)` is about to be decapsulated in this order. Its ESP packets
   * are checked and opened here, a chunk (the batch's capacity) at a time, and `decap` finishes each as it
   * comes to it — so what follows the AEAD (window update, SA rotation, hellos, counters) happens in the
   * packets' order as without batching. Call `espBatchEnd` after the last `decap` of the batch.
   */
  espOpenBatch(pk: PacketBuf[], n: number, now: number): void {
    if (this.espOpen === null) return;
    this.espPk = pk;
    this.espN = n;
    this.espNext = this.espFrom = this.espTo = 0;
    this.espChunk(now);
  }

  /** Forgets the batch `espOpenBatch` was given. */
  espBatchEnd(): void {
    this.espPk = null;
    this.espN = this.espNext = this.espFrom = this.espTo = 0;
    this.espOpen?.clear();
  }

  /** Job codes of `espJob` other than a job index: decapsulate one at a time, or drop with -code. */
  private static readonly ESP_ALONE = -1_000_000;

  /** Checks and opens the next chunk of the batch, from `espTo`. */
  private espChunk(now: number): void {
    const ob = this.espOpen!;
    ob.clear();
    const pk = this.espPk!;
    const from = this.espTo;
    const to = Math.min(this.espN, from + ob.capacity);
    const sadb = this.sadb!;
    this.espGen = sadb.generation;
    for (let i = from; i < to; i++) {
      const p = pk[i]!;
      const j = i - from;
      if (p.end - p.start < ETH_HEADER_LEN) {
        this.espJob[j] = Tunnel.ESP_ALONE;
        continue;
      }
      const vtep = this.espSource(p);
      if (vtep < 0) {
        this.espJob[j] = vtep; // -reason
        continue;
      }
      this.espVtep[j] = vtep;
      sadb.begin(vtep, now);
      const k = ob.length;
      const r = ob.check(p, p.start + ETH_HEADER_LEN, sadb.lookup, now, this.espInfos[j]);
      // Not ESP (a hello) and SPIs not found go one at a time, in order (the lookup then sees the table as
      // the packets before left it); other refusals stand, counted where espUnprotect counts them.
      this.espJob[j] = r === 0 ? k : r === ESP_NOT_ESP || (r === DropReason.EspUnknownSpi && this.espInfos[j]!.sa === null) ? Tunnel.ESP_ALONE : -r;
    }
    ob.open();
    this.espFrom = from;
    this.espTo = to;
  }

  /**
   * ESP's part of `decap`. The cheap outer checks come first — IP header and IPv4 header checksum,
   * addressed to this VTEP, from a VTEP of the table — so a forged or misdirected packet costs no cipher;
   * then the SA by (SPI, that VTEP) (`EspPeerMismatch` for another peer's SPI: RFC 4301's selector
   * check), and authentication and decryption in place. A hello (esp/hello.ts) goes to the SA database.
   * A packet of the batch `espOpenBatch` was given is finished from what it did.
   */
  private espIn(p: PacketBuf, now: number): number {
    const pk = this.espPk;
    if (pk !== null) {
      // The packets come in the batch's order, minus those decap refused before ESP (too short).
      let i = this.espNext;
      while (i < this.espN && pk[i] !== p) i++;
      if (i < this.espN) {
        this.espNext = i + 1;
        if (i >= this.espTo) {
          this.espTo = i;
          this.espChunk(now);
        }
        return this.espFinish(p, i - this.espFrom, now);
      }
    }
    const vtep = this.espSource(p);
    return vtep < 0 ? -vtep : this.espUnprotect(p, vtep, now);
  }

  /** Packet `j` of the current chunk, checked and opened: finished as `espUnprotect` would. */
  private espFinish(p: PacketBuf, j: number, now: number): number {
    const job = this.espJob[j]!;
    if (job === Tunnel.ESP_ALONE) {
      const vtep = this.espSource(p);
      return vtep < 0 ? -vtep : this.espUnprotect(p, vtep, now);
    }
    const rx = this.espRx;
    rx.copy(this.espInfos[j]!);
    if (job < 0) return -job;
    const sadb = this.sadb!;
    const vtep = this.espVtep[j]!;
    sadb.begin(vtep, now);
    const ob = this.espOpen!;
    const sa = ob.saOf(job);
    // A packet before this one changed the SPI table: the SA must still be the one this packet names now.
    if (sadb.generation !== this.espGen) {
      const current = sadb.lookup(rx.spi);
      if (current !== sa) return current === null ? sadb.missReason : DropReason.EspUnknownSpi;
    }
    const r = ob.finish(job, p, now, rx);
    return this.espVerdict(r, p, vtep, now);
  }

  /** The outer checks of `espIn`: the VTEP index of the packet's source, or -reason. */
  private espSource(p: PacketBuf): number {
    const b = p.data;
    const ip = p.start + ETH_HEADER_LEN;
    const end = p.end;
    const dv = p.view;
    const type = dv.getUint16(p.start + 12);
    let vtep: number;
    if (type === ETHERTYPE_IPV4 && this.family === 4) {
      const r = this.v4.at(b, ip).check(end - ip);
      if (r !== null) return -r;
      if (!ipv4HeaderValid(dv, ip, (b[ip]! & 0x0f) << 2)) return -DropReason.Ipv4BadChecksum;
      if (dv.getUint32(ip + 16) !== this.localV4) return -DropReason.TunnelNotForUs;
      vtep = this.byV4.get(dv.getInt32(ip + 12));
    } else if (type === ETHERTYPE_IPV6 && this.family === 6) {
      const r = this.v6.at(b, ip).check(end - ip);
      if (r !== null) return -r;
      const local = this.localV6!;
      for (let k = 0; k < 16; k++) if (b[ip + 24 + k] !== local[k]) return -DropReason.TunnelNotForUs;
      vtep = this.vtepAtV6(b, ip + 8);
    } else {
      return -DropReason.TunnelNotForUs;
    }
    return vtep < 0 ? -DropReason.UnknownVtep : vtep;
  }

  /** `espUnprotect` of one packet from VTEP `vtep`, and what it means for the SA database. */
  private espUnprotect(p: PacketBuf, vtep: number, now: number): number {
    const sadb = this.sadb!;
    sadb.begin(vtep, now);
    const r = espUnprotect(p, p.start + ETH_HEADER_LEN, sadb.lookup, now, this.espRx);
    return this.espVerdict(r, p, vtep, now);
  }

  private espVerdict(r: number, p: PacketBuf, vtep: number, now: number): number {
    const sadb = this.sadb!;
    const rx = this.espRx;
    if (r === 0) {
      sadb.accepted(rx.sa!, now);
      return 0;
    }
    if (r === ESP_NOT_ESP) return this.helloIn(p, vtep, now);
    if (r === ESP_DUMMY) return DropReason.EspDummy;
    if (r === DropReason.EspUnknownSpi && rx.sa === null) return sadb.missReason;
    if (r === DropReason.EspAuthFailed) sadb.authFailed(rx.sa!, now);
    return r;
  }

  /** A packet that is not ESP on an ESP tunnel: a hello from VTEP `vtep` (UDP to the tunnel's port), else `EspRequired`. */
  private helloIn(p: PacketBuf, vtep: number, now: number): number {
    const b = p.data;
    const dv = p.view;
    const ip = p.start + ETH_HEADER_LEN;
    let udp: number;
    let l3End: number;
    if (this.family === 4) {
      if (b[ip + 9] !== IPPROTO_UDP || (dv.getUint16(ip + 6) & 0x3fff) !== 0) return DropReason.EspRequired;
      udp = ip + ((b[ip]! & 0x0f) << 2);
      l3End = ip + dv.getUint16(ip + 2);
    } else {
      l3End = ip + IPV6_HEADER_LEN + dv.getUint16(ip + 4);
      if (l3End > p.end || walkIpv6(b, ip, l3End, this.walk) !== null || this.walk.fragOff >= 0 || this.walk.upperProto !== IPPROTO_UDP)
        return DropReason.EspRequired;
      udp = this.walk.upperOff;
    }
    if (l3End - udp !== UDP_HEADER_LEN + HELLO_LEN || dv.getUint16(udp + 4) !== UDP_HEADER_LEN + HELLO_LEN || dv.getUint16(udp + 2) !== this.dstPort)
      return DropReason.EspRequired;
    const off = udp + UDP_HEADER_LEN;
    if (!looksLikeHello(b, off, l3End)) return DropReason.EspRequired;
    return this.sadb!.receiveHello(vtep, b, off, l3End, now);
  }

  /**
   * Builds a frame for each hello the SA database wants sent (UDP from and to the tunnel's port, from
   * this VTEP to the peer's, esp/hello.ts) in a buffer from `alloc`, and hands it to `emit`. Returns how
   * many; without a buffer the rest wait for the database to ask again.
   */
  emitHellos(alloc: () => PacketBuf | null, emit: (p: PacketBuf) => void): number {
    const sadb = this.sadb;
    if (sadb === null || sadb.outbox.length === 0) return 0;
    let n = 0;
    for (const { index, msg } of sadb.takeOutbox()) {
      const v = this.vteps[index];
      if (v === undefined || v.removed) continue;
      const p = alloc();
      if (p === null) break;
      this.writeHello(p, v, msg);
      emit(p);
      n++;
    }
    return n;
  }

  private writeHello(p: PacketBuf, v: Vtep, msg: Uint8Array): void {
    p.clearMeta();
    const d = p.data;
    const e = p.start;
    wrMac(d, e, v.mac);
    wrMac(d, e + 6, this.cfg.localMac);
    const ip = e + ETH_HEADER_LEN;
    const udpLen = UDP_HEADER_LEN + msg.length;
    const ttl = this.cfg.ttl ?? 64;
    let udp: number;
    let pseudo: number;
    if (this.family === 4) {
      wr16(d, e + 12, ETHERTYPE_IPV4);
      d[ip] = 0x45;
      d[ip + 1] = 0;
      wr16(d, ip + 2, 20 + udpLen);
      wr32(d, ip + 4, 0x0000_4000); // id 0, DF: 106 bytes need no fragmenting
      d[ip + 8] = ttl;
      d[ip + 9] = IPPROTO_UDP;
      wr16(d, ip + 10, 0);
      wr32(d, ip + 12, this.localV4);
      wr32(d, ip + 16, ipv4FromString(v.ip)!);
      wr16(d, ip + 10, finish(onesSum(d, ip, 20)));
      udp = ip + 20;
      pseudo = pseudoSumV4At(d, ip + 12, ip + 16, IPPROTO_UDP, udpLen);
    } else {
      wr16(d, e + 12, ETHERTYPE_IPV6);
      wr32(d, ip, 0x6000_0000);
      wr16(d, ip + 4, udpLen);
      d[ip + 6] = IPPROTO_UDP;
      d[ip + 7] = ttl;
      d.set(this.localV6!, ip + 8);
      d.set(ipv6FromString(v.ip)!, ip + 24);
      udp = ip + IPV6_HEADER_LEN;
      pseudo = pseudoSumV6At(d, ip + 8, ip + 24, IPPROTO_UDP, udpLen);
    }
    wr16(d, udp, this.dstPort);
    wr16(d, udp + 2, this.dstPort);
    wr16(d, udp + 4, udpLen);
    wr16(d, udp + 6, 0);
    d.set(msg, udp + UDP_HEADER_LEN);
    const c = finish(onesSum(d, udp, udpLen, pseudo));
    wr16(d, udp + 6, c === 0 ? 0xffff : c);
    p.end = udp + udpLen;
  }

  /** True when the outer IPv4 header carries DF (then outer packets are never fragmented). */
  get dontFrag(): boolean {
    return this.cfg.dontFrag ?? false;
  }

  /**
   * The largest inner IP packet an underlay of `underlayMtu` bytes carries through this tunnel (0 when
   * none fits): `pathMtu` of src/mtu/overhead.ts — outer IP, UDP, tunnel header with its options, inner
   * Ethernet and, with ESP, its exact overhead — not capped as a pod MTU is. Kept for the last MTU asked.
   */
  innerMtu(underlayMtu: number): number {
    if (underlayMtu !== this.mtuFor) {
      this.mtuIs = pathMtu(underlayMtu, this.spec);
      this.mtuFor = underlayMtu;
    }
    return this.mtuIs;
  }

  /** The configured options (Geneve), for display. */
  get options(): readonly GeneveOption[] {
    return this.cfg.options ?? [];
  }
}
