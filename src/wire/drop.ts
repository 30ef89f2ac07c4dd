/**
 * The closed set of reasons a frame is dropped. Parsers return one instead of throwing; datapath stages
 * count drops per reason and port. Later layers append their reasons here, so the set stays one list
 * with one counter slot each (`DROP_REASON_COUNT`).
 *
 * `DropReason[n]` gives the name (TypeScript numeric enums map both ways), which is what reports print.
 */
export enum DropReason {
  // Ethernet and tags
  EthTruncated = 1,
  VlanTruncated,
  VlanTooManyTags,
  // ARP
  ArpTruncated,
  ArpUnsupportedHardware,
  // IPv4
  Ipv4Truncated,
  Ipv4BadVersion,
  Ipv4BadHeaderLen,
  Ipv4BadTotalLen,
  Ipv4BadChecksum,
  // IPv6 and its extension headers
  Ipv6Truncated,
  Ipv6BadVersion,
  Ipv6BadPayloadLen,
  Ipv6ExtTruncated,
  Ipv6TooManyExtHeaders,
  Ipv6FragTruncated,
  // ICMP
  Icmpv4Truncated,
  Icmpv4BadChecksum,
  Icmpv6Truncated,
  Icmpv6BadChecksum,
  Icmpv6BadNdOption,
  // UDP and TCP
  UdpTruncated,
  UdpBadLength,
  UdpBadChecksum,
  TcpTruncated,
  TcpBadDataOffset,
  TcpBadOption,
  TcpBadChecksum,
  // Tunnels
  VxlanTruncated,
  VxlanBadFlags,
  GeneveTruncated,
  GeneveBadVersion,
  GeneveBadOptionLen,
  GeneveOptionTruncated,
  GreTruncated,
  GreBadVersion,
  GreUnsupportedFlags,
  // ESP layout (cryptographic failures come with the crypto layer)
  EspTruncated,
  EspBadTrailer,
  // Frames as a whole
  FrameTooShort,
  FrameTooLong,
  TooManyLayers,
  // Datapath: ports and switching
  PortDown,
  VlanNotAllowed,
  SrcMacGroup,
  SameAsIngress,
  NoEgressPort,
  PoolExhausted,
  QueueFull,
  MtuExceeded,
  HeadroomShort,
  // Datapath: gateway routing
  NoRoute,
  NeighborUnresolved,
  TtlExceeded,
  GatewayNotHandled,
  // Datapath: tunnel ports
  TunnelNotForUs,
  TunnelFragment,
  UnknownVni,
  UnknownVtep,
  RoutedNotForGateway,
  UdpZeroChecksumV6,
  GeneveNotEthernet,
  GeneveUnknownCriticalOption,
  // MTU: a packet too big for the tunnel's path
  /** Inner IPv4 with DF set: dropped; an ICMP fragmentation-needed goes back unless suppressed or rate-limited. */
  FragNeededDf,
  /** Inner IPv6: dropped; an ICMPv6 Packet Too Big goes back unless suppressed or rate-limited. */
  PacketTooBigV6,
  /** Inner IPv4 without DF while the fragmentation policy is `drop`. */
  TooBigPolicyDrop,
  /** Too big and neither IPv4 nor IPv6: nothing can be fragmented or told. */
  TooBigNotIp,
  // MTU: reassembly of outer fragments (each discarded fragment is counted once)
  /** The datagram was not complete within the reassembly timeout. */
  FragTimeout,
  /** Reassembly memory was over its cap: the oldest incomplete datagram was discarded. */
  FragMemoryCap,
  /** This source already holds its share of reassembly memory. */
  FragPerSourceCap,
  /** Fragments overlap (RFC 5722): the whole datagram is discarded. */
  FragOverlap,
  /** An exact duplicate of a fragment already held. */
  FragDuplicate,
  /** A first fragment too small to hold the headers (RFC 1858, RFC 7112), or IPv4 offset 1 for TCP. */
  FragTinyFirst,
  /** A non-last fragment whose length is not a multiple of 8, or a fragment past 65,535 bytes. */
  FragBadLength,
  /** Fragments disagree on where the datagram ends. */
  FragInconsistent,
  /** No buffer large enough for the reassembled datagram. */
  FragNoBuffer,
  // ESP (RFC 4303): inbound
  /** No inbound SA for the packet's SPI (nor an old one still in its grace period). */
  EspUnknownSpi,
  /** The ICV did not verify: the packet was forged, damaged or keyed differently. Nothing of it is used. */
  EspAuthFailed,
  /** The sequence number was already received (RFC 4303 §3.4.3). */
  EspReplay,
  /** The sequence number is older than the anti-replay window. */
  EspOutsideWindow,
  /** After decryption the padding or pad length is wrong (RFC 4303 §2.4). */
  EspBadPadding,
  // ESP: outbound
  /** No outbound SA towards the packet's peer. */
  EspNoSa,
  /** The SA's sequence numbers or lifetime are used up and no new SA is in place yet. */
  EspSaExhausted,
  /** A cleartext tunnel packet on a tunnel that requires ESP. */
  EspRequired,
  /** An authenticated dummy packet (next header 59, RFC 4303 §2.6): discarded by design. */
  EspDummy,
  // Live devices (TAP and tunnel sockets)
  /** A virtio-net header that cannot describe its frame (checksum field outside it, GSO without a size). */
  VnetHdrBad,
  /** A super-frame (GSO) from a TAP whose segmentation offload was not enabled. */
  GsoUnsupported,
  /** The device would block (its queue in the kernel is full): the frame is not sent. */
  DeviceBusy,
  /** The kernel refused to send the frame (an error other than would-block). */
  DeviceSendError,
  /** A frame the tunnel device cannot send: not IPv4/IPv6, or neither UDP on a tunnel port nor IP it may send raw. */
  DeviceNotSendable,
  // ESP: the SA database's lifecycle (esp/sadb.ts)
  /**
   * The outer source address is not the peer of the SA the SPI names (RFC 4301 §5.2, the inbound
   * selector check): a rewritten or spoofed source. Dropped before any decryption.
   */
  EspPeerMismatch,
  /** An ESP control message (a peer's epoch announcement, esp/hello.ts): consumed by the SA database. */
  EspControl,
  // Super-frames (packet/gso.ts): software segmentation of TSO/USO frames
  /** The GSO type does not match the frame: not IPv4/IPv6, a TCP type on UDP (or the reverse), TCPV4 on IPv6, UFO or an unknown type. */
  GsoBadType,
  /** The super-frame's gsoSize is 0, the segment size asked for is below 1, or one segment would not fit in a pool buffer. */
  GsoBadSize,
  /** The super-frame's hdrLen runs past its end, or its checksum request (csumStart, csumOffset) is not the transport header's checksum. */
  GsoBadHeaderLen,
  /** Headers that segmentation does not rewrite: IPv6 extension headers, an IPv4 fragment. */
  GsoUnsupportedHeaders,
  // GRE tunnel ports (the header's own checks are GreTruncated, GreBadVersion, GreUnsupportedFlags)
  /** A GRE packet whose protocol type is not transparent Ethernet bridging (0x6558). */
  GreNotEthernet,
  /** The GRE checksum (RFC 2784 §2.5) is present and wrong. */
  GreBadChecksum,
  /** A GRE key where the tunnel expects none, or none where it expects one (RFC 2890: the key names the tunnel). */
  GreKeyMismatch,
}

/** Size for per-reason counter arrays indexed by `DropReason`. */
export const DROP_REASON_COUNT: number = Object.values(DropReason).filter((v) => typeof v === 'number').length + 1;

/** The reason's name, e.g. `Ipv4BadChecksum`. */
export function dropReasonName(r: DropReason): string {
  return DropReason[r] ?? `Unknown(${r})`;
}
