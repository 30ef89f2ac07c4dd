/**
 * `seine decode`: every frame of a capture, dissected by seine's own wire modules, as a one-line summary
 * or as JSON whose field names are Wireshark's display-filter names (`ip.src`, `vxlan.vni`, …) so that
 * the output compares field by field with `tshark -T json`.
 *
 * Values are JSON-native: numbers for numeric fields, booleans for flags, strings for addresses, arrays
 * for fields that repeat inside one layer (Geneve options). Checksum status reads "good", "bad",
 * "not present" or "unverified".
 */
import { CaptureError, LINKTYPE_ETHERNET, LINKTYPE_RAW, readCapture } from '../capture/index.js';
import { ArpView } from '../wire/arp.js';
import { hex, ipv4ToString, ipv6ToString, macToString, rd16, rd32 } from '../wire/bytes.js';
import { dropReasonName } from '../wire/drop.js';
import { EthernetView, VlanView, ETHERTYPE_QINQ } from '../wire/ethernet.js';
import { GeneveView } from '../wire/geneve.js';
import { GreView } from '../wire/gre.js';
import { Icmpv4View, ICMPV4_DEST_UNREACHABLE, ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST, ICMPV4_TIME_EXCEEDED, ICMPV4_CODE_FRAG_NEEDED } from '../wire/icmpv4.js';
import { Icmpv6View, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, ICMPV6_NEIGHBOR_ADVERT, ICMPV6_NEIGHBOR_SOLICIT, ICMPV6_PACKET_TOO_BIG } from '../wire/icmpv6.js';
import { Ipv4View } from '../wire/ipv4.js';
import { Ipv6FragView, Ipv6View, IPV6_NH_DEST_OPTS, IPV6_NH_HOP_BY_HOP, IPV6_NH_ROUTING } from '../wire/ipv6.js';
import { dissect, type Dissected, type Dissection } from '../wire/stack.js';
import { TcpView, TCP_OPT_MSS, TCP_OPT_WSCALE } from '../wire/tcp.js';
import { UdpView } from '../wire/udp.js';
import { VxlanView } from '../wire/vxlan.js';
import { type Args, CliError, type Command, type RunIo } from './command.js';
import { fsErrorText } from '../live/fs.js';

export type FieldValue = number | boolean | string | number[] | boolean[];
export interface DecodedLayer {
  /** Wireshark's protocol name for the layer: eth, vlan, ieee8021ad, arp, ip, ipv6, icmp, icmpv6, udp, tcp, vxlan, geneve, gre, esp, data. */
  name: string;
  fields: Record<string, FieldValue>;
  /** For ICMP errors: the quoted datagram's IP header and ports. */
  quoted?: DecodedLayer[];
}
export interface DecodedFrame {
  frame: number;
  /** Capture timestamp, nanoseconds since the epoch, as a decimal string (exact). */
  timestampNs: string;
  interface: string | null;
  len: number;
  origLen: number;
  layers: DecodedLayer[];
  /** Why decoding stopped early, e.g. "Ipv4BadTotalLen", with the byte offset. */
  drop?: { reason: string; offset: number };
}

function checksumStatus(ok: boolean | null): string {
  return ok === null ? 'not present' : ok ? 'good' : 'bad';
}

/** A layer's checksum status; in a first fragment the sum covers bytes that are not here: "unverified", as Wireshark says. */
function statusOf(d: Dissected): string {
  return d.partial === true ? 'unverified' : checksumStatus(d.checksumOk);
}

function ipv4Fields(b: Uint8Array, off: number): Record<string, FieldValue> {
  const v = new Ipv4View(b, off);
  return {
    'ip.version': v.version,
    'ip.hdr_len': v.headerLen,
    'ip.dsfield.dscp': v.dscp,
    'ip.dsfield.ecn': v.ecn,
    'ip.len': v.totalLen,
    'ip.id': v.ident,
    'ip.flags.rb': v.reservedFlag,
    'ip.flags.df': v.dontFrag,
    'ip.flags.mf': v.moreFrags,
    // Wireshark 4.0 shows the offset as on the wire, in 8-byte units.
    'ip.frag_offset': v.fragOffset >>> 3,
    'ip.ttl': v.ttl,
    'ip.proto': v.protocol,
    'ip.checksum': v.checksum,
    'ip.src': ipv4ToString(v.src),
    'ip.dst': ipv4ToString(v.dst),
  };
}

function ipv6Fields(b: Uint8Array, off: number): Record<string, FieldValue> {
  const v = new Ipv6View(b, off);
  return {
    'ipv6.version': v.version,
    'ipv6.tclass': v.trafficClass,
    'ipv6.flow': v.flowLabel,
    'ipv6.plen': v.payloadLen,
    'ipv6.nxt': v.nextHeader,
    'ipv6.hlim': v.hopLimit,
    'ipv6.src': ipv6ToString(b, v.srcOffset),
    'ipv6.dst': ipv6ToString(b, v.dstOffset),
  };
}

/**
 * The quoted datagram of an ICMP error: its IP header and every field of the transport header that the
 * quote holds — RFC 792 asks for 8 bytes (UDP's whole header; TCP's ports and sequence number), RFC 4443
 * for as much as fits, so a TCP quote may go on to the acknowledgement number, flags and window.
 */
function quoted(b: Uint8Array, off: number, end: number): DecodedLayer[] {
  const out: DecodedLayer[] = [];
  const version = end > off ? b[off]! >>> 4 : 0;
  let proto = -1;
  let p = off;
  if (version === 4 && end - off >= 20 && (b[off]! & 0x0f) >= 5 && off + ((b[off]! & 0x0f) << 2) <= end) {
    out.push({ name: 'ip', fields: ipv4Fields(b, off) });
    proto = b[off + 9]!;
    p = off + ((b[off]! & 0x0f) << 2);
  } else if (version === 6 && end - off >= 40) {
    const v = new Ipv6View(b, off);
    out.push({ name: 'ipv6', fields: ipv6Fields(b, off) });
    proto = v.nextHeader;
    p = off + 40;
  }
  const have = end - p;
  if (proto === 17 && have >= 4) {
    const f: Record<string, FieldValue> = { 'udp.srcport': rd16(b, p), 'udp.dstport': rd16(b, p + 2) };
    if (have >= 6) f['udp.length'] = rd16(b, p + 4);
    if (have >= 8) f['udp.checksum'] = rd16(b, p + 6);
    out.push({ name: 'udp', fields: f });
  } else if (proto === 6 && have >= 4) {
    const f: Record<string, FieldValue> = { 'tcp.srcport': rd16(b, p), 'tcp.dstport': rd16(b, p + 2) };
    // Wireshark names a quoted TCP's numbers tcp.seq and tcp.ack (absolute: no stream to be relative to).
    if (have >= 8) f['tcp.seq'] = rd32(b, p + 4);
    if (have >= 12) f['tcp.ack'] = rd32(b, p + 8);
    if (have >= 14) {
      f['tcp.hdr_len'] = (b[p + 12]! >>> 4) * 4;
      f['tcp.flags'] = ((b[p + 12]! & 0x0f) << 8) | b[p + 13]!;
    }
    if (have >= 16) f['tcp.window_size_value'] = rd16(b, p + 14);
    if (have >= 18) f['tcp.checksum'] = rd16(b, p + 16);
    if (have >= 20) f['tcp.urgent_pointer'] = rd16(b, p + 18);
    out.push({ name: 'tcp', fields: f });
  }
  return out;
}

/** Fields of one dissected layer; IPv6 extension headers are folded into their IPv6 layer, as Wireshark does. */
function layerFields(d: Dissected, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  switch (d.kind) {
    case 'eth':
      ethLayers(d, b, out);
      return;
    case 'arp':
      arpLayer(d, b, out);
      return;
    case 'ipv4':
      out.push({ name: 'ip', fields: { ...ipv4Fields(b, o), 'ip.checksum.status': checksumStatus(d.checksumOk) } });
      return;
    case 'ipv6':
      out.push({ name: 'ipv6', fields: ipv6Fields(b, o) });
      return;
    case 'ipv6ext': {
      const last = out[out.length - 1];
      const t = d.repr.headerType;
      const name = t === IPV6_NH_HOP_BY_HOP ? 'hopopts' : t === IPV6_NH_ROUTING ? 'routing' : t === IPV6_NH_DEST_OPTS ? 'dstopts' : `ext${t}`;
      const f: Record<string, FieldValue> = { [`ipv6.${name}.nxt`]: d.repr.nextHeader, [`ipv6.${name}.len`]: b[o + 1]! };
      if (t === IPV6_NH_ROUTING) {
        f['ipv6.routing.type'] = b[o + 2]!;
        f['ipv6.routing.segleft'] = b[o + 3]!;
      }
      if (last !== undefined) Object.assign(last.fields, f);
      return;
    }
    case 'ipv6frag': {
      const v = new Ipv6FragView(b, o);
      const last = out[out.length - 1];
      if (last !== undefined) {
        Object.assign(last.fields, {
          'ipv6.fraghdr.nxt': v.nextHeader,
          'ipv6.fraghdr.offset': v.fragOffset >>> 3,
          'ipv6.fraghdr.more': v.moreFrags,
          'ipv6.fraghdr.ident': v.ident,
        });
      }
      return;
    }
    case 'icmpv4':
      icmpv4Layer(d, b, out);
      return;
    case 'icmpv6':
      icmpv6Layer(d, b, out);
      return;
    case 'udp': {
      const v = new UdpView(b, o);
      out.push({
        name: 'udp',
        fields: {
          'udp.srcport': v.srcPort,
          'udp.dstport': v.dstPort,
          'udp.length': v.length,
          'udp.checksum': v.checksum,
          'udp.checksum.status': d.zeroChecksum && d.checksumOk === null ? 'not present' : statusOf(d),
        },
      });
      return;
    }
    case 'tcp':
      tcpLayer(d, b, out);
      return;
    case 'vxlan': {
      const v = new VxlanView(b, o);
      // Wireshark's vxlan.flags is the first 16 bits (flags byte and the reserved byte after it).
      out.push({ name: 'vxlan', fields: { 'vxlan.flags': rd16(b, o), 'vxlan.vni': v.vni } });
      return;
    }
    case 'geneve':
      geneveLayer(d, b, out);
      return;
    case 'gre':
      greLayer(d, b, out);
      return;
    case 'esp':
      out.push({ name: 'esp', fields: { 'esp.spi': rd32(b, o), 'esp.sequence': rd32(b, o + 4) } });
      return;
    case 'data':
      out.push({ name: 'data', fields: { 'data.len': d.len, 'data.data': hex(b, o, Math.min(d.len, 64)) } });
      return;
  }
}

/** Ethernet and its 802.1Q/802.1ad tags, one layer each. */
function ethLayers(d: Extract<Dissected, { kind: 'eth' }>, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  const v = new EthernetView(b, o);
  out.push({ name: 'eth', fields: { 'eth.dst': macToString(v.dst), 'eth.src': macToString(v.src), 'eth.type': v.etherType } });
  d.repr.vlans.forEach((t, i) => {
    const tag = new VlanView(b, o + 14 + 4 * i);
    if (t.tpid === ETHERTYPE_QINQ) {
      // Wireshark keys the EtherType after an 802.1ad tag as ieee8021ah.etype.
      out.push({
        name: 'ieee8021ad',
        fields: { 'ieee8021ad.priority': tag.pcp, 'ieee8021ad.dei': tag.dei, 'ieee8021ad.id': tag.vid, 'ieee8021ah.etype': tag.etherType },
      });
    } else {
      out.push({ name: 'vlan', fields: { 'vlan.priority': tag.pcp, 'vlan.dei': tag.dei, 'vlan.id': tag.vid, 'vlan.etype': tag.etherType } });
    }
  });
}

/** An ARP message. */
function arpLayer(d: Extract<Dissected, { kind: 'arp' }>, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  const v = new ArpView(b, o);
  out.push({
    name: 'arp',
    fields: {
      'arp.hw.type': v.htype,
      'arp.proto.type': v.ptype,
      'arp.hw.size': v.hlen,
      'arp.proto.size': v.plen,
      'arp.opcode': v.operation,
      'arp.src.hw_mac': macToString(v.senderMac),
      'arp.src.proto_ipv4': ipv4ToString(v.senderIp),
      'arp.dst.hw_mac': macToString(v.targetMac),
      'arp.dst.proto_ipv4': ipv4ToString(v.targetIp),
    },
  });
}

/** ICMP: echo's identifier and sequence, an error's MTU and the quote it holds. */
function icmpv4Layer(d: Extract<Dissected, { kind: 'icmpv4' }>, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  const v = new Icmpv4View(b, o);
  const f: Record<string, FieldValue> = {
    'icmp.type': v.type,
    'icmp.code': v.code,
    'icmp.checksum': v.checksum,
    'icmp.checksum.status': statusOf(d),
  };
  const layer: DecodedLayer = { name: 'icmp', fields: f };
  if (v.type === ICMPV4_ECHO_REQUEST || v.type === ICMPV4_ECHO_REPLY) {
    f['icmp.ident'] = v.ident;
    f['icmp.seq'] = v.seq;
  }
  if (v.type === ICMPV4_DEST_UNREACHABLE || v.type === ICMPV4_TIME_EXCEEDED) {
    if (v.type === ICMPV4_DEST_UNREACHABLE && v.code === ICMPV4_CODE_FRAG_NEEDED) f['icmp.mtu'] = v.nextHopMtu;
    layer.quoted = quoted(b, o + 8, o + d.len);
  }
  out.push(layer);
}

/** ICMPv6: echo's identifier and sequence, too-big's MTU, an error's quote, neighbor discovery's target and link address. */
function icmpv6Layer(d: Extract<Dissected, { kind: 'icmpv6' }>, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  const v = new Icmpv6View(b, o);
  const f: Record<string, FieldValue> = {
    'icmpv6.type': v.type,
    'icmpv6.code': v.code,
    'icmpv6.checksum': v.checksum,
    'icmpv6.checksum.status': statusOf(d),
  };
  const layer: DecodedLayer = { name: 'icmpv6', fields: f };
  const r = d.repr;
  if (v.type === ICMPV6_ECHO_REQUEST || v.type === ICMPV6_ECHO_REPLY) {
    f['icmpv6.echo.identifier'] = v.ident;
    f['icmpv6.echo.sequence_number'] = v.seq;
  }
  if (v.type === ICMPV6_PACKET_TOO_BIG) f['icmpv6.mtu'] = v.mtu;
  if (v.type < 128) layer.quoted = quoted(b, o + 8, o + d.len);
  if (v.type === ICMPV6_NEIGHBOR_SOLICIT && r.kind === 'neighborSolicit') {
    f['icmpv6.nd.ns.target_address'] = ipv6ToString(r.target);
    if (r.sourceLinkAddr !== null) f['icmpv6.opt.linkaddr'] = macToString(r.sourceLinkAddr);
  }
  if (v.type === ICMPV6_NEIGHBOR_ADVERT && r.kind === 'neighborAdvert') {
    Object.assign(f, {
      'icmpv6.nd.na.flag.r': r.router,
      'icmpv6.nd.na.flag.s': r.solicited,
      'icmpv6.nd.na.flag.o': r.override,
      'icmpv6.nd.na.target_address': ipv6ToString(r.target),
    });
    if (r.targetLinkAddr !== null) f['icmpv6.opt.linkaddr'] = macToString(r.targetLinkAddr);
  }
  out.push(layer);
}

/** TCP with the options Wireshark names (MSS, window scale) and every option kind present. */
function tcpLayer(d: Extract<Dissected, { kind: 'tcp' }>, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  const v = new TcpView(b, o);
  const f: Record<string, FieldValue> = {
    'tcp.srcport': v.srcPort,
    'tcp.dstport': v.dstPort,
    'tcp.seq_raw': v.seqNumber,
    'tcp.ack_raw': v.ackNumber,
    'tcp.hdr_len': v.headerLen,
    'tcp.flags': v.flags,
    'tcp.window_size_value': v.window,
    'tcp.checksum': v.checksum,
    'tcp.checksum.status': statusOf(d),
    'tcp.urgent_pointer': v.urgent,
  };
  const mss = v.findOption(TCP_OPT_MSS);
  if (mss >= 0) f['tcp.options.mss_val'] = rd16(b, mss + 2);
  const ws = v.findOption(TCP_OPT_WSCALE);
  if (ws >= 0) f['tcp.options.wscale.shift'] = b[ws + 2]!;
  const kinds: number[] = [];
  for (let p = v.optionsOffset, e = v.optionsOffset + v.optionsLen; p < e; ) {
    const k = b[p]!;
    if (k === 0) break;
    kinds.push(k);
    p += k === 1 ? 1 : Math.max(2, b[p + 1] ?? 2);
  }
  if (kinds.length > 0) f['tcp.option_kind'] = kinds;
  out.push({ name: 'tcp', fields: f });
}

/** Geneve with its options, one list per option field as Wireshark gives them. */
function geneveLayer(d: Extract<Dissected, { kind: 'geneve' }>, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  const v = new GeneveView(b, o);
  const cls: number[] = [],
    type: number[] = [],
    crit: boolean[] = [],
    len: number[] = [];
  for (let p = v.firstOptionOffset; p < v.optionsEnd; p = v.nextOptionOffset(p)) {
    cls.push(v.optionClass(p));
    type.push(v.optionType(p));
    crit.push(v.optionCritical(p));
    len.push(4 + v.optionDataLen(p)); // Wireshark counts the option header in its length
  }
  const f: Record<string, FieldValue> = {
    'geneve.version': v.version,
    'geneve.flags.oam': v.oam,
    'geneve.flags.critical': v.critical,
    'geneve.proto_type': v.protocolType,
    'geneve.vni': v.vni,
  };
  if (cls.length > 0)
    Object.assign(f, { 'geneve.option.class': cls, 'geneve.option.type': type, 'geneve.option.type.critical': crit, 'geneve.option.length': len });
  out.push({ name: 'geneve', fields: f });
}

/** GRE with the optional fields its flags say are there. */
function greLayer(d: Extract<Dissected, { kind: 'gre' }>, b: Uint8Array, out: DecodedLayer[]): void {
  const o = d.off;
  const v = new GreView(b, o);
  const f: Record<string, FieldValue> = {
    'gre.flags_and_version': v.flagsVersion,
    'gre.flags.checksum': v.checksumPresent,
    'gre.flags.key': v.keyPresent,
    'gre.flags.sequence_number': v.sequencePresent,
    'gre.flags.version': v.version,
    'gre.proto': v.protocolType,
  };
  if (v.checksum !== null) {
    f['gre.checksum'] = v.checksum;
    f['gre.checksum.status'] = checksumStatus(d.checksumOk);
  }
  if (v.key !== null) f['gre.key'] = v.key;
  if (v.sequence !== null) f['gre.sequence_number'] = v.sequence;
  out.push({ name: 'gre', fields: f });
}

/** As tshark with reassembly off: a first fragment's transport header is decoded, later fragments are data. */
const DECODE_OPTIONS = { firstFragments: true } as const;

/** Decodes one frame's bytes into Wireshark-named layers. */
export function decodeLayers(bytes: Uint8Array, d: Dissection = dissect(bytes, 0, bytes.length, 'eth', DECODE_OPTIONS)): DecodedLayer[] {
  const out: DecodedLayer[] = [];
  for (const l of d.layers) layerFields(l, bytes, out);
  return out;
}

/** `link`: 'eth' for Ethernet frames, 'raw' for bare IPv4/IPv6 packets (LINKTYPE_RAW). */
export function decodeFrame(
  frame: number,
  timestampNs: bigint,
  iface: string | null,
  bytes: Uint8Array,
  origLen: number,
  link: 'eth' | 'raw' = 'eth',
): DecodedFrame {
  const first = link === 'eth' ? 'eth' : bytes.length > 0 && bytes[0]! >>> 4 === 6 ? 'ipv6' : 'ipv4';
  const d = dissect(bytes, 0, bytes.length, first, DECODE_OPTIONS);
  const out: DecodedFrame = { frame, timestampNs: timestampNs.toString(), interface: iface, len: bytes.length, origLen, layers: decodeLayers(bytes, d) };
  if (d.drop !== null) out.drop = { reason: dropReasonName(d.drop), offset: d.dropOff };
  return out;
}

const TCP_FLAG_NAMES: [number, string][] = [
  [0x002, 'SYN'],
  [0x010, 'ACK'],
  [0x001, 'FIN'],
  [0x004, 'RST'],
  [0x008, 'PSH'],
  [0x020, 'URG'],
  [0x040, 'ECE'],
  [0x080, 'CWR'],
];

/** ICMP message names (RFC 792, RFC 1191, RFC 1812) by type, and by code where one type has several. */
const ICMPV4_NAMES: Record<number, string | Record<number, string>> = {
  0: 'echo reply',
  3: {
    0: 'destination unreachable (net unreachable)',
    1: 'destination unreachable (host unreachable)',
    2: 'destination unreachable (protocol unreachable)',
    3: 'destination unreachable (port unreachable)',
    4: 'destination unreachable (fragmentation needed)',
    5: 'destination unreachable (source route failed)',
    9: 'destination unreachable (network administratively prohibited)',
    10: 'destination unreachable (host administratively prohibited)',
    13: 'destination unreachable (communication administratively prohibited)',
  },
  4: 'source quench',
  5: 'redirect',
  8: 'echo request',
  9: 'router advertisement',
  10: 'router solicitation',
  11: { 0: 'time exceeded (TTL exceeded in transit)', 1: 'time exceeded (fragment reassembly time exceeded)' },
  12: 'parameter problem',
  13: 'timestamp request',
  14: 'timestamp reply',
};

/** ICMPv6 message names (RFC 4443, RFC 4861, RFC 3810) by type, and by code where one type has several. */
const ICMPV6_NAMES: Record<number, string | Record<number, string>> = {
  1: {
    0: 'destination unreachable (no route)',
    1: 'destination unreachable (administratively prohibited)',
    3: 'destination unreachable (address unreachable)',
    4: 'destination unreachable (port unreachable)',
  },
  2: 'packet too big',
  3: { 0: 'time exceeded (hop limit exceeded in transit)', 1: 'time exceeded (fragment reassembly time exceeded)' },
  4: 'parameter problem',
  128: 'echo request',
  129: 'echo reply',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbor solicitation',
  136: 'neighbor advertisement',
  137: 'redirect',
  143: 'multicast listener report v2',
};

/** The message's name, or its type and code when seine has no name for them. */
function icmpName(names: Record<number, string | Record<number, string>>, type: number, code: number): string {
  const n = names[type];
  if (typeof n === 'string') return code === 0 ? n : `${n} code ${code}`;
  const byCode = n?.[code];
  if (byCode !== undefined) return byCode;
  return n !== undefined ? `${Object.values(n)[0]!.replace(/ \(.*\)$/, '')} code ${code}` : `type ${type} code ${code}`;
}

/** What an ICMP error quotes, as "(for src > dst proto sport > dport)". */
function quotedText(l: DecodedLayer): string {
  const ip = l.quoted?.[0]?.fields;
  if (ip === undefined) return '';
  const src = ip['ip.src'] ?? ip['ipv6.src'],
    dst = ip['ip.dst'] ?? ip['ipv6.dst'];
  const t = l.quoted?.[1];
  const ports = t !== undefined ? ` ${t.name.toUpperCase()} ${t.fields[`${t.name}.srcport`]} > ${t.fields[`${t.name}.dstport`]}` : '';
  return ` (for ${src} > ${dst}${ports})`;
}

/** One readable line per layer, joined: what a student reads first. */
export function summarize(f: DecodedFrame): string {
  const parts: string[] = [];
  // Past a fragment other than the first, the bytes are the middle of a datagram.
  let laterFragment = false;
  for (const l of f.layers) {
    const x = l.fields;
    if (l.name === 'ip') laterFragment = Number(x['ip.frag_offset']) !== 0;
    if (l.name === 'ipv6') laterFragment = x['ipv6.fraghdr.offset'] !== undefined && Number(x['ipv6.fraghdr.offset']) !== 0;
    switch (l.name) {
      case 'eth':
        parts.push(`${x['eth.src']} > ${x['eth.dst']}`);
        break;
      case 'vlan':
        parts.push(`vlan ${x['vlan.id']}`);
        break;
      case 'ieee8021ad':
        parts.push(`s-vlan ${x['ieee8021ad.id']}`);
        break;
      case 'arp':
        parts.push(
          x['arp.opcode'] === 1
            ? `ARP who-has ${x['arp.dst.proto_ipv4']} tell ${x['arp.src.proto_ipv4']}`
            : `ARP ${x['arp.src.proto_ipv4']} is-at ${x['arp.src.hw_mac']}`,
        );
        break;
      case 'ip': {
        const frag =
          x['ip.flags.mf'] === true || x['ip.frag_offset'] !== 0 ? ` frag off=${Number(x['ip.frag_offset']) * 8}${x['ip.flags.mf'] === true ? ' MF' : ''}` : '';
        parts.push(
          `IPv4 ${x['ip.src']} > ${x['ip.dst']} ttl ${x['ip.ttl']}${x['ip.flags.df'] === true ? ' DF' : ''}${frag}${x['ip.checksum.status'] === 'bad' ? ' BAD-CHECKSUM' : ''}`,
        );
        break;
      }
      case 'ipv6': {
        const frag =
          x['ipv6.fraghdr.offset'] !== undefined
            ? ` frag off=${Number(x['ipv6.fraghdr.offset']) * 8}${x['ipv6.fraghdr.more'] === true ? ' M' : ''} id ${x['ipv6.fraghdr.ident']}`
            : '';
        parts.push(`IPv6 ${x['ipv6.src']} > ${x['ipv6.dst']} hlim ${x['ipv6.hlim']}${frag}`);
        break;
      }
      case 'udp':
        parts.push(
          `UDP ${x['udp.srcport']} > ${x['udp.dstport']} len ${Number(x['udp.length']) - 8}${x['udp.checksum.status'] === 'bad' ? ' BAD-CHECKSUM' : ''}`,
        );
        break;
      case 'tcp': {
        const flags = Number(x['tcp.flags']);
        const names = TCP_FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0)
          .map(([, n]) => n)
          .join(',');
        const mss = x['tcp.options.mss_val'] !== undefined ? ` mss ${x['tcp.options.mss_val']}` : '';
        parts.push(
          `TCP ${x['tcp.srcport']} > ${x['tcp.dstport']} [${names}] seq ${x['tcp.seq_raw']}${mss}${x['tcp.checksum.status'] === 'bad' ? ' BAD-CHECKSUM' : ''}`,
        );
        break;
      }
      case 'icmp': {
        const t = Number(x['icmp.type']),
          c = Number(x['icmp.code']);
        const what =
          t === 8 || t === 0
            ? `${icmpName(ICMPV4_NAMES, t, c)} id ${x['icmp.ident']} seq ${x['icmp.seq']}`
            : x['icmp.mtu'] !== undefined
              ? `fragmentation needed, next-hop MTU ${x['icmp.mtu']}`
              : icmpName(ICMPV4_NAMES, t, c);
        parts.push(`ICMP ${what}${quotedText(l)}`);
        break;
      }
      case 'icmpv6': {
        const t = Number(x['icmpv6.type']),
          c = Number(x['icmpv6.code']);
        const what =
          t === 2
            ? `packet too big, MTU ${x['icmpv6.mtu']}`
            : t === 135
              ? `neighbor solicitation for ${x['icmpv6.nd.ns.target_address']}`
              : t === 136
                ? `neighbor advertisement ${x['icmpv6.nd.na.target_address']}`
                : icmpName(ICMPV6_NAMES, t, c);
        parts.push(`ICMPv6 ${what}${quotedText(l)}`);
        break;
      }
      case 'vxlan':
        parts.push(`VXLAN vni ${x['vxlan.vni']}`);
        break;
      case 'geneve': {
        const n = Array.isArray(x['geneve.option.class']) ? x['geneve.option.class'].length : 0;
        parts.push(`Geneve vni ${x['geneve.vni']}${n > 0 ? ` ${n} option${n > 1 ? 's' : ''}` : ''}${x['geneve.flags.critical'] === true ? ' C' : ''}`);
        break;
      }
      case 'gre':
        parts.push(`GRE proto 0x${Number(x['gre.proto']).toString(16).padStart(4, '0')}${x['gre.key'] !== undefined ? ` key ${x['gre.key']}` : ''}`);
        break;
      case 'esp':
        parts.push(`ESP spi 0x${Number(x['esp.spi']).toString(16).padStart(8, '0')} seq ${x['esp.sequence']}`);
        break;
      case 'data':
        parts.push(laterFragment ? `fragment data ${x['data.len']} bytes (not reassembled)` : `data ${x['data.len']} bytes`);
        break;
    }
  }
  const ts = BigInt(f.timestampNs);
  const stamp = `${ts / 1_000_000_000n}.${(ts % 1_000_000_000n).toString().padStart(9, '0')}`;
  const drop = f.drop !== undefined ? ` !! ${f.drop.reason} at byte ${f.drop.offset}` : '';
  return `${String(f.frame).padStart(5)} ${stamp} ${parts.join(' / ')}${drop}`;
}

export const DECODE: Command = {
  name: 'decode',
  operands: '<capture>',
  summary:
    "Decode every frame of a pcap or pcapng file with seine's own wire modules, through tunnels (VXLAN, Geneve, GRE), one summary line per frame; with --json one JSON object per line whose fields carry Wireshark's display-filter names (ip.src, vxlan.vni, geneve.option.class, ...).",
  options: {
    json: { type: 'boolean', help: "one JSON object per frame, with Wireshark's field names" },
    limit: { type: 'string', arg: 'N', expects: 'a positive integer', help: 'stop after N frames' },
  },
  footer: `exit status: 0 decoded, 1 the capture is damaged (the frames before the damage are printed), 2 a usage
error or the file cannot be read`,
  run: (a, io) => decodeCommand(a, io),
};

async function decodeCommand(a: Args, io: RunIo): Promise<number> {
  let limit = Infinity;
  const l = a.str('limit');
  if (l !== undefined) {
    const n = Number(l);
    if (!/^\d+$/.test(l) || !Number.isSafeInteger(n) || n < 1) throw new CliError(`decode: --limit expects a positive integer, got '${l}'`);
    limit = n;
  }
  if (a.operands.length === 0) throw new CliError(`decode: which capture? usage: seine decode <capture> [--json] [--limit N]`);
  if (a.operands.length > 1) throw new CliError(`decode: one capture file at a time (got '${a.operands[0]}' and '${a.operands[1]}')`);
  const path = a.operands[0]!;
  const json = a.has('json');
  const file = readCapture(path);
  let n = 0;
  try {
    for await (const rec of file) {
      n++;
      const iface = file.interfaces[rec.ifIndex]?.name ?? null;
      let f: DecodedFrame;
      if (rec.linkType === LINKTYPE_ETHERNET || rec.linkType === LINKTYPE_RAW) {
        f = decodeFrame(n, rec.timestampNs, iface === '' ? null : iface, rec.data, rec.origLen, rec.linkType === LINKTYPE_RAW ? 'raw' : 'eth');
      } else {
        f = {
          frame: n,
          timestampNs: rec.timestampNs.toString(),
          interface: iface,
          len: rec.data.length,
          origLen: rec.origLen,
          layers: [],
          drop: { reason: `UnsupportedLinkType(${rec.linkType})`, offset: 0 },
        };
      }
      io.out(json ? JSON.stringify(f) : summarize(f));
      if (n >= limit) break;
    }
  } catch (e: unknown) {
    if (e instanceof CaptureError) {
      io.err(`seine decode: ${path}: damaged capture after ${n} frame(s): ${e.message}\n`);
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string' && typeof err.syscall === 'string') throw new CliError(`decode: cannot read '${path}': ${fsErrorText(err)}`);
    throw e;
  }
  return 0;
}
