/**
 * Every kind of frame seine's wire modules can emit, as layer stacks. The independent-decoder tests
 * (tshark, scapy) run over this list; `expect` names, per Wireshark field, every value the frame must
 * show, outer to inner — taken from the reprs, not from our decoder.
 */
import { fromHex, ipv4FromString, ipv6FromString } from '../../src/wire/bytes.js';
import type { Layer } from '../../src/wire/stack.js';
import { compose } from '../../src/wire/stack.js';

const v4 = (s: string): number => ipv4FromString(s)!;
const v6 = (s: string): Uint8Array => ipv6FromString(s)!;

export const MAC_A = 0x020000000001;
export const MAC_B = 0x02000000000b;

export function eth(etherType: number, vlans: { tpid: number; pcp: number; dei: boolean; vid: number }[] = [], src = MAC_A, dst = MAC_B): Layer {
  return { kind: 'eth', repr: { dst, src, vlans, etherType } };
}
export function ip4(src: string, dst: string, protocol: number, extra: Partial<Extract<Layer, { kind: 'ipv4' }>['repr']> = {}): Layer {
  return {
    kind: 'ipv4',
    repr: {
      src: v4(src),
      dst: v4(dst),
      protocol,
      ttl: 64,
      dscp: 0,
      ecn: 0,
      ident: 0x1234,
      dontFrag: true,
      moreFrags: false,
      fragOffset: 0,
      options: new Uint8Array(0),
      payloadLen: 0,
      ...extra,
    },
  };
}
export function ip6(src: string, dst: string, nextHeader: number, extra: Partial<Extract<Layer, { kind: 'ipv6' }>['repr']> = {}): Layer {
  return { kind: 'ipv6', repr: { src: v6(src), dst: v6(dst), nextHeader, hopLimit: 64, trafficClass: 0, flowLabel: 0, payloadLen: 0, ...extra } };
}
export function udp(srcPort: number, dstPort: number, zeroChecksum = false): Layer {
  return { kind: 'udp', repr: { srcPort, dstPort }, zeroChecksum };
}
export function tcp(srcPort: number, dstPort: number, flags: number, options: Extract<Layer, { kind: 'tcp' }>['repr']['options'] = []): Layer {
  return { kind: 'tcp', repr: { srcPort, dstPort, seq: 0x01020304, ack: flags & 0x10 ? 0x0a0b0c0d : 0, flags, window: 64240, urgent: 0, options } };
}
export const data = (s: string): Layer => ({ kind: 'data', bytes: new TextEncoder().encode(s) });
export const zeros = (n: number): Layer => ({ kind: 'data', bytes: new Uint8Array(n) });

/** An inner datagram, quoted (IP header + 8 bytes) in ICMP errors. */
const quotedV4 = compose([ip4('10.0.1.5', '10.0.2.7', 17, { ident: 0x4242 }), udp(40000, 8080), zeros(1400)]).subarray(0, 28);
/** One 2008-byte UDP datagram, cut into two IPv4 fragments and two IPv6 fragments below. */
const bigUdp4 = compose([ip4('10.0.0.1', '10.0.0.2', 17), udp(7000, 7001), zeros(2000)]).subarray(20);
const bigUdp6 = compose([ip6('fd00::1', 'fd00::2', 17), udp(7000, 7001), zeros(2000)]).subarray(40);
const quotedV6 = compose([ip6('fd00:1::5', 'fd00:2::7', 17), udp(40001, 8081), zeros(1400)]).subarray(0, 48);

export interface CatalogueFrame {
  name: string;
  layers: Layer[];
  expect: Record<string, (string | number | boolean)[]>;
}

const SYN_OPTS = [
  { kind: 'mss', value: 1460 },
  { kind: 'sackPermitted' },
  { kind: 'timestamps', tsval: 1000, tsecr: 0 },
  { kind: 'nop' },
  { kind: 'wscale', shift: 7 },
] as const;

export const CATALOGUE: CatalogueFrame[] = [
  {
    name: 'ipv4 udp',
    layers: [eth(0x0800), ip4('10.0.0.1', '10.0.0.2', 17), udp(33333, 9999), data('hello, seine')],
    expect: {
      'eth.src': ['02:00:00:00:00:01'],
      'ip.src': ['10.0.0.1'],
      'ip.dst': ['10.0.0.2'],
      'udp.srcport': [33333],
      'udp.dstport': [9999],
      'udp.length': [20],
    },
  },
  {
    name: 'ipv4 with options, 802.1Q, tcp SYN with options',
    layers: [
      eth(0x0800, [{ tpid: 0x8100, pcp: 5, dei: false, vid: 42 }]),
      ip4('10.0.0.1', '10.0.0.2', 6, { options: fromHex('07070401020304' + '00'), dscp: 46, ecn: 1 }),
      tcp(40000, 80, 0x002, [...SYN_OPTS]),
    ],
    expect: {
      'vlan.id': [42],
      'vlan.priority': [5],
      'ip.hdr_len': [28],
      'ip.dsfield.dscp': [46],
      'tcp.srcport': [40000],
      'tcp.options.mss_val': [1460],
      'tcp.options.wscale.shift': [7],
      'tcp.seq_raw': [0x01020304],
    },
  },
  {
    name: '802.1ad + 802.1Q, ipv6 udp',
    layers: [
      eth(0x86dd, [
        { tpid: 0x88a8, pcp: 1, dei: true, vid: 100 },
        { tpid: 0x8100, pcp: 0, dei: false, vid: 200 },
      ]),
      ip6('2001:db8::1', '2001:db8::2', 17, { trafficClass: 0xb8, flowLabel: 0xabcde }),
      udp(40053, 40054),
      data('v6'),
    ],
    expect: { 'ieee8021ad.id': [100], 'vlan.id': [200], 'ipv6.src': ['2001:db8::1'], 'ipv6.flow': [0xabcde], 'udp.dstport': [40054] },
  },
  {
    name: 'arp request and reply',
    layers: [
      eth(0x0806, [], MAC_A, 0xffffffffffff),
      { kind: 'arp', repr: { operation: 1, senderMac: MAC_A, senderIp: v4('10.0.0.1'), targetMac: 0, targetIp: v4('10.0.0.2') } },
    ],
    expect: { 'arp.opcode': [1], 'arp.src.hw_mac': ['02:00:00:00:00:01'], 'arp.dst.proto_ipv4': ['10.0.0.2'] },
  },
  {
    name: 'icmp echo request',
    layers: [
      eth(0x0800),
      ip4('10.0.0.1', '10.0.0.2', 1),
      { kind: 'icmpv4', repr: { kind: 'echoRequest', ident: 0x77, seq: 3, data: new Uint8Array(56).fill(0x61) } },
    ],
    expect: { 'icmp.type': [8], 'icmp.ident': [0x77], 'icmp.seq': [3] },
  },
  {
    name: 'icmp fragmentation needed with quoted header',
    layers: [
      eth(0x0800),
      ip4('10.0.1.1', '10.0.1.5', 1, { dontFrag: false }),
      { kind: 'icmpv4', repr: { kind: 'destUnreachable', code: 4, nextHopMtu: 1450, data: quotedV4 } },
    ],
    expect: {
      'icmp.type': [3],
      'icmp.code': [4],
      'icmp.mtu': [1450],
      'ip.src': ['10.0.1.1', '10.0.1.5'],
      'ip.dst': ['10.0.1.5', '10.0.2.7'],
      'udp.dstport': [8080],
    },
  },
  {
    name: 'icmp time exceeded',
    layers: [eth(0x0800), ip4('10.0.1.1', '10.0.1.5', 1), { kind: 'icmpv4', repr: { kind: 'timeExceeded', code: 0, data: quotedV4 } }],
    expect: { 'icmp.type': [11], 'icmp.code': [0] },
  },
  {
    name: 'icmpv6 echo request',
    layers: [eth(0x86dd), ip6('fd00::1', 'fd00::2', 58), { kind: 'icmpv6', repr: { kind: 'echoRequest', ident: 9, seq: 1, data: fromHex('0102030405') } }],
    expect: { 'icmpv6.type': [128], 'icmpv6.echo.identifier': [9], 'icmpv6.echo.sequence_number': [1] },
  },
  {
    name: 'icmpv6 packet too big with quoted header',
    layers: [eth(0x86dd), ip6('fd00::fe', 'fd00:1::5', 58), { kind: 'icmpv6', repr: { kind: 'packetTooBig', mtu: 1280, data: quotedV6 } }],
    expect: { 'icmpv6.type': [2], 'icmpv6.mtu': [1280], 'ipv6.src': ['fd00::fe', 'fd00:1::5'] },
  },
  {
    name: 'icmpv6 neighbour solicitation',
    layers: [
      eth(0x86dd, [], MAC_A, 0x3333ff000002),
      ip6('fd00::1', 'ff02::1:ff00:2', 58, { hopLimit: 255 }),
      { kind: 'icmpv6', repr: { kind: 'neighborSolicit', target: v6('fd00::2'), sourceLinkAddr: MAC_A } },
    ],
    expect: { 'icmpv6.type': [135], 'icmpv6.nd.ns.target_address': ['fd00::2'], 'icmpv6.opt.linkaddr': ['02:00:00:00:00:01'] },
  },
  {
    name: 'icmpv6 neighbour advertisement',
    layers: [
      eth(0x86dd, [], MAC_B, MAC_A),
      ip6('fd00::2', 'fd00::1', 58, { hopLimit: 255 }),
      { kind: 'icmpv6', repr: { kind: 'neighborAdvert', router: false, solicited: true, override: true, target: v6('fd00::2'), targetLinkAddr: MAC_B } },
    ],
    expect: { 'icmpv6.type': [136], 'icmpv6.nd.na.flag.s': [true], 'icmpv6.nd.na.flag.r': [false], 'icmpv6.nd.na.target_address': ['fd00::2'] },
  },
  {
    name: 'vxlan over ipv4 (zero outer checksum) carrying ipv4 tcp',
    layers: [
      eth(0x0800),
      ip4('192.168.10.1', '192.168.10.2', 17),
      udp(51234, 4789, true),
      { kind: 'vxlan', repr: { vni: 5001 } },
      eth(0x0800, [], 0x0a0000000001, 0x0a0000000002),
      ip4('10.244.1.5', '10.244.2.7', 6),
      tcp(45678, 443, 0x018),
      data('GET / HTTP/1.1\r\n'),
    ],
    expect: {
      'vxlan.vni': [5001],
      'ip.src': ['192.168.10.1', '10.244.1.5'],
      'udp.dstport': [4789],
      'udp.checksum': [0],
      'eth.src': ['02:00:00:00:00:01', '0a:00:00:00:00:01'],
      'tcp.dstport': [443],
    },
  },
  {
    name: 'vxlan over ipv6 carrying ipv6 udp',
    layers: [
      eth(0x86dd),
      ip6('fd00:10::1', 'fd00:10::2', 17),
      udp(60000, 4789),
      { kind: 'vxlan', repr: { vni: 0xabcdef } },
      eth(0x86dd),
      ip6('fd00:244:1::5', 'fd00:244:2::7', 17),
      udp(1000, 2000),
      data('inner'),
    ],
    expect: { 'vxlan.vni': [0xabcdef], 'ipv6.dst': ['fd00:10::2', 'fd00:244:2::7'], 'udp.srcport': [60000, 1000] },
  },
  {
    name: 'geneve over ipv6 with options carrying ipv4 icmp',
    layers: [
      eth(0x86dd),
      ip6('fd00:10::1', 'fd00:10::2', 17),
      udp(61000, 6081),
      {
        kind: 'geneve',
        repr: {
          vni: 7,
          protocolType: 0x6558,
          oam: false,
          critical: true,
          options: [
            { class: 0x0104, type: 0x80, data: fromHex('0000000a') },
            { class: 0xffff, type: 0x03, data: fromHex('0102030405060708') },
          ],
        },
      },
      eth(0x0800),
      ip4('10.244.1.5', '10.244.2.7', 1),
      { kind: 'icmpv4', repr: { kind: 'echoReply', ident: 1, seq: 2, data: new Uint8Array(8) } },
    ],
    expect: {
      'geneve.vni': [7],
      'geneve.option.class': [0x0104, 0xffff],
      'geneve.option.type': [0x80, 0x03],
      'geneve.flags.critical': [true],
      'icmp.type': [0],
    },
  },
  {
    name: 'geneve over ipv4 without options carrying ipv6 tcp',
    layers: [
      eth(0x0800),
      ip4('192.168.10.1', '192.168.10.2', 17),
      udp(52000, 6081, true),
      { kind: 'geneve', repr: { vni: 0xfffffe, protocolType: 0x6558, oam: true, critical: false, options: [] } },
      eth(0x86dd),
      ip6('fd00:244:1::5', 'fd00:244:2::7', 6),
      tcp(1, 2, 0x011),
    ],
    expect: { 'geneve.vni': [0xfffffe], 'geneve.flags.oam': [true], 'tcp.flags': [0x011] },
  },
  {
    name: 'gre with key carrying ethernet',
    layers: [
      eth(0x0800),
      ip4('192.168.10.1', '192.168.10.2', 47),
      { kind: 'gre', repr: { protocolType: 0x6558, checksum: false, key: 0x1234, sequence: null } },
      eth(0x0800),
      ip4('10.0.0.1', '10.0.0.2', 17),
      udp(7, 7),
      data('gre'),
    ],
    expect: { 'gre.key': [0x1234], 'gre.proto': [0x6558], 'ip.dst': ['192.168.10.2', '10.0.0.2'] },
  },
  {
    name: 'gre with checksum, key and sequence carrying ipv4',
    layers: [
      eth(0x0800),
      ip4('192.168.10.1', '192.168.10.2', 47),
      { kind: 'gre', repr: { protocolType: 0x0800, checksum: true, key: 99, sequence: 12345 } },
      ip4('10.0.0.1', '10.0.0.2', 17),
      udp(8, 9),
      data('gre2'),
    ],
    expect: { 'gre.key': [99], 'gre.sequence_number': [12345], 'gre.proto': [0x0800] },
  },
  {
    name: 'ipv4 first fragment',
    layers: [
      eth(0x0800),
      ip4('10.0.0.1', '10.0.0.2', 17, { dontFrag: false, moreFrags: true, ident: 0xbeef }),
      { kind: 'data', bytes: bigUdp4.subarray(0, 1480) },
    ],
    expect: { 'ip.flags.mf': [true], 'ip.frag_offset': [0], 'ip.id': [0xbeef] },
  },
  {
    name: 'ipv4 last fragment',
    layers: [
      eth(0x0800),
      ip4('10.0.0.1', '10.0.0.2', 17, { dontFrag: false, moreFrags: false, fragOffset: 1480, ident: 0xbeef }),
      { kind: 'data', bytes: bigUdp4.subarray(1480) },
    ],
    // Wireshark 4.0 shows the offset in 8-byte units; tshark reassembles the datagram in this frame.
    expect: { 'ip.flags.mf': [false], 'ip.frag_offset': [185], 'udp.srcport': [7000], 'udp.length': [2008] },
  },
  {
    name: 'ipv6 first fragment',
    layers: [
      eth(0x86dd),
      ip6('fd00::1', 'fd00::2', 44),
      { kind: 'ipv6frag', repr: { nextHeader: 17, fragOffset: 0, moreFrags: true, ident: 0xcafef00d } },
      { kind: 'data', bytes: bigUdp6.subarray(0, 1232) },
    ],
    expect: { 'ipv6.nxt': [44], 'ipv6.fraghdr.nxt': [17], 'ipv6.fraghdr.offset': [0], 'ipv6.fraghdr.more': [true], 'ipv6.fraghdr.ident': [0xcafef00d] },
  },
  {
    name: 'ipv6 last fragment',
    layers: [
      eth(0x86dd),
      ip6('fd00::1', 'fd00::2', 44),
      { kind: 'ipv6frag', repr: { nextHeader: 17, fragOffset: 1232, moreFrags: false, ident: 0xcafef00d } },
      { kind: 'data', bytes: bigUdp6.subarray(1232) },
    ],
    expect: { 'ipv6.fraghdr.offset': [154], 'ipv6.fraghdr.more': [false], 'udp.srcport': [7000], 'udp.length': [2008] },
  },
  {
    name: 'ipv6 hop-by-hop then udp',
    layers: [
      eth(0x86dd),
      ip6('fd00::1', 'fd00::2', 0),
      { kind: 'ipv6ext', repr: { headerType: 0, nextHeader: 17, data: fromHex('010400000000') } },
      udp(1234, 4321),
      data('hbh'),
    ],
    expect: { 'ipv6.nxt': [0], 'udp.srcport': [1234] },
  },
  {
    name: 'esp transport over ipv4',
    layers: [
      eth(0x0800),
      ip4('192.168.10.1', '192.168.10.2', 50),
      { kind: 'esp', repr: { spi: 0x1000a, seq: 7 } },
      { kind: 'data', bytes: new Uint8Array(64).fill(0x5a) },
    ],
    expect: { 'esp.spi': [0x1000a], 'esp.sequence': [7] },
  },
  {
    name: 'esp in udp (RFC 3948)',
    layers: [
      eth(0x0800),
      ip4('192.168.10.1', '192.168.10.2', 17),
      udp(4500, 4500, true),
      { kind: 'esp', repr: { spi: 0xdeadbeef, seq: 1 } },
      { kind: 'data', bytes: new Uint8Array(48).fill(0x33) },
    ],
    expect: { 'esp.spi': [0xdeadbeef], 'esp.sequence': [1], 'udp.dstport': [4500] },
  },
];
